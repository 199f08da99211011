/*
 * px_request.h: the request side of a client connection, shared by the files that handle it:
 * px_conn.c (lifecycle, state machine, client I/O), px_request.c (llhttp callbacks, routing,
 * body modes) and px_sign_head.c (header filtering, signing, the signed head).
 *
 * Everything here runs on the connection's worker thread. Slices returned point into
 * conn->head and are valid until the next request on the connection (px_request_reset).
 */
#ifndef PX_REQUEST_H
#define PX_REQUEST_H

#include "px_proxy.h"

/* llhttp callbacks for client requests; parser->data is the struct px_conn. */
extern const llhttp_settings_t px_request_settings;

/* Forgets the finished request (head, body, spool, credentials, response state) so the
 * connection can read the next one; wipes the client's credentials and the signed head. */
void px_request_reset(struct px_conn *conn);

/* Wipes the client's own credentials (Authorization, X-Amz-Security-Token,
 * Proxy-Authorization) from conn->head once the signed head no longer needs them. */
void px_request_wipe_secrets(struct px_conn *conn);

/* Header lookup and helpers (px_request.c). */
static inline struct sig_slice px_head_slice(const struct px_conn *conn, uint32_t off, uint32_t len)
{
    return (struct sig_slice){conn->head.ptr + off, len};
}

static inline struct sig_slice px_hdr_name(const struct px_conn *conn, const struct px_hdr *h)
{
    return px_head_slice(conn, h->name_off, h->name_len);
}

/* RFC 9110 5.5: leading and trailing whitespace is not part of the value (llhttp already skips
 * the leading OWS; trailing OWS may remain). */
static inline struct sig_slice px_hdr_value(const struct px_conn *conn, const struct px_hdr *h)
{
    struct sig_slice v = px_head_slice(conn, h->value_off, h->value_len);
    while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return v;
}

/* The first header named `name` (case-insensitive), or NULL. */
const struct px_hdr *px_find_hdr(const struct px_conn *conn, const char *name);

/* After llhttp parsed `used` bytes of the first segment of `in`: moves the body spans noted
 * by on_body to their buffers and drains the rest of those bytes. */
void px_request_take_body(struct px_conn *conn, struct evbuffer *in, size_t used);

#endif
