/*
 * px_conn.c: one client connection: request parsing (llhttp), upstream choice, header
 * rewriting, body hashing/spooling, signing, error responses and the state machine.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>

#include "px_io.h"
#include "px_proxy.h"

static const char *const state_names[] = {
    [PX_STATE_READ_HEAD] = "read-head",
    [PX_STATE_READ_BODY] = "read-body",
    [PX_STATE_WAIT_CREDS] = "wait-creds",
    [PX_STATE_CONNECT_UP] = "connect-upstream",
    [PX_STATE_SEND_REQ] = "send-request",
    [PX_STATE_READ_RESP_HEAD] = "read-response-head",
    [PX_STATE_STREAM_BODY] = "stream-response",
    [PX_STATE_DRAIN] = "drain",
    [PX_STATE_CLOSED] = "closed",
};

const char *px_state_name(enum px_state s)
{
    return s <= PX_STATE_CLOSED ? state_names[s] : "?";
}

uint64_t px_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The legal transitions; DRAIN and CLOSED are reachable from everywhere (failures). */
static bool transition_ok(enum px_state from, enum px_state to)
{
    if (to == PX_STATE_DRAIN || to == PX_STATE_CLOSED)
        return from != PX_STATE_CLOSED;
    switch (from) {
    case PX_STATE_READ_HEAD:
        return to == PX_STATE_READ_BODY || to == PX_STATE_WAIT_CREDS;
    case PX_STATE_READ_BODY:
        return to == PX_STATE_WAIT_CREDS;
    case PX_STATE_WAIT_CREDS:
        return to == PX_STATE_CONNECT_UP;
    case PX_STATE_CONNECT_UP:
        return to == PX_STATE_SEND_REQ || to == PX_STATE_CONNECT_UP;
    case PX_STATE_SEND_REQ:
        return to == PX_STATE_READ_RESP_HEAD || to == PX_STATE_STREAM_BODY ||
               to == PX_STATE_CONNECT_UP;
    case PX_STATE_READ_RESP_HEAD:
        return to == PX_STATE_STREAM_BODY || to == PX_STATE_CONNECT_UP;
    case PX_STATE_STREAM_BODY:
        return to == PX_STATE_READ_HEAD;
    case PX_STATE_DRAIN:
    case PX_STATE_CLOSED:
        return false;
    }
    return false;
}

void px_conn_set_state(struct px_conn *conn, enum px_state next)
{
    if (!transition_ok(conn->state, next)) {
        px_log(PX_LOG_ERROR, "internal: illegal transition %s -> %s", px_state_name(conn->state),
               px_state_name(next));
        abort();
    }
    px_log(PX_LOG_DEBUG, "conn %s: %s -> %s", conn->peer, px_state_name(conn->state),
           px_state_name(next));
    conn->state = next;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void free_cb(evutil_socket_t fd, short what, void *arg);
static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_feed(struct px_conn *conn);
static void reset_request(struct px_conn *conn);
static void drain_done(struct px_conn *conn);
static void set_read_lowmark(struct px_conn *conn);

void px_conn_arm_timer(struct px_conn *conn, uint32_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(conn->timer, &tv);
}

/* ---- llhttp request callbacks ---- */

static struct px_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int refuse(struct px_conn *conn, enum px_err err, const char *reason)
{
    conn->parse_err = err;
    snprintf(conn->parse_reason, sizeof(conn->parse_reason), "%s", reason);
    return -1;
}

static int on_message_begin(llhttp_t *p)
{
    struct px_conn *conn = conn_of(p);
    reset_request(conn);
    conn->start_ms = px_now_ms();
    return 0;
}

static int head_append(struct px_conn *conn, const char *at, size_t len)
{
    if (sig_buf_append(&conn->head, at, len) != SIG_OK)
        return refuse(conn, PX_ERR_HEADERS_TOO_LARGE, "request head exceeds --max-header-bytes");
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = conn_of(p);
    if (conn->url_len == 0)
        conn->url_off = (uint32_t)conn->head.len;
    if (conn->url_len + len > conn->w->cfg->max_url_bytes)
        return refuse(conn, PX_ERR_URL_TOO_LONG, "request target exceeds --max-url-bytes");
    conn->url_len += (uint32_t)len;
    return head_append(conn, at, len);
}

/* Trailer fields of a chunked request come through the same callbacks after the head. They
 * are discarded, as RFC 9112 7.1.2 allows when the chunked coding is removed: merged into the
 * head they would be signed and sent as header fields the client never put there (RFC 9110
 * 6.5.1 forbids that merge). */
static bool in_trailers(const struct px_conn *conn)
{
    return conn->state != PX_STATE_READ_HEAD;
}

static struct sig_slice head_slice(const struct px_conn *conn, uint32_t off, uint32_t len)
{
    return (struct sig_slice){conn->head.ptr + off, len};
}

static struct sig_slice hdr_name(const struct px_conn *conn, const struct px_hdr *h)
{
    return head_slice(conn, h->name_off, h->name_len);
}

static struct sig_slice hdr_value(const struct px_conn *conn, const struct px_hdr *h)
{
    /* RFC 9110 5.5: leading and trailing whitespace is not part of the value (llhttp already
     * skips the leading OWS; trailing OWS may remain). */
    struct sig_slice v = head_slice(conn, h->value_off, h->value_len);
    while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return v;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = conn_of(p);
    if (in_trailers(conn))
        return 0;
    if (conn->in_value || conn->hdr_count == 0) {
        if (conn->hdr_count == conn->w->cfg->max_headers)
            return refuse(conn, PX_ERR_HEADERS_TOO_LARGE, "more headers than --max-headers");
        conn->hdrs[conn->hdr_count++] = (struct px_hdr){.name_off = (uint32_t)conn->head.len,
                                                        .value_off = (uint32_t)conn->head.len};
        conn->in_value = false;
    }
    struct px_hdr *h = &conn->hdrs[conn->hdr_count - 1];
    h->name_len += (uint32_t)len;
    h->value_off = (uint32_t)(conn->head.len + len);
    return head_append(conn, at, len);
}

/* Credentials a client may send that sigv4d strips: the bytes are wiped where they were read
 * (and in the head buffer once signed) so they do not stay behind in freed memory. */
static bool is_client_secret(struct sig_slice name)
{
    return sig_slice_eq_nocase(name, SIG_SLICE_LIT("authorization")) ||
           sig_slice_eq_nocase(name, SIG_SLICE_LIT("x-amz-security-token")) ||
           sig_slice_eq_nocase(name, SIG_SLICE_LIT("proxy-authorization"));
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = conn_of(p);
    if (in_trailers(conn))
        return 0;
    struct px_hdr *h = &conn->hdrs[conn->hdr_count - 1];
    if (!conn->in_value) {
        conn->in_value = true;
        h->value_off = (uint32_t)conn->head.len;
        conn->value_secret = is_client_secret(hdr_name(conn, h));
    } else if (!(at == conn->seg_start && conn->value_cont_ok)) {
        /* A second span of the same value that does not simply continue the previous input
         * segment: llhttp skipped a line break, i.e. obs-fold (RFC 9112 5.2), refused because
         * intermediaries disagree about it. */
        return refuse(conn, PX_ERR_BAD_REQUEST, "obsolete line folding in a header value");
    }
    h->value_len += (uint32_t)len;
    /* Only a span that ran to the end of its segment may continue at the very start of the
     * next segment. */
    conn->value_at_seg_end = at + len == conn->seg_end;
    int rc = head_append(conn, at, len);
    if (conn->value_secret) {
        /* `at` lies in the client input's own segment (client_feed hands llhttp the writable
         * memory evbuffer_peek returned), which neither llhttp nor the framing check reads
         * again; libevent would free it unwiped. */
        OPENSSL_cleanse((void *)(uintptr_t)at, len);
        conn->head_secrets = true;
    }
    return rc;
}

static const struct px_hdr *find_hdr(const struct px_conn *conn, const char *name)
{
    struct sig_slice n = sig_slice_from_cstr(name);
    for (size_t i = 0; i < conn->hdr_count; i++)
        if (sig_slice_eq_nocase(hdr_name(conn, &conn->hdrs[i]), n))
            return &conn->hdrs[i];
    return NULL;
}

static bool slice_has_token(struct sig_slice list, const char *token)
{
    /* comma-separated, case-insensitive (Connection, Expect, Content-Encoding) */
    struct sig_slice t = sig_slice_from_cstr(token);
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.ptr[i] == ' ' || list.ptr[i] == '\t' || list.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < list.len && list.ptr[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (list.ptr[end - 1] == ' ' || list.ptr[end - 1] == '\t'))
            end--;
        if (sig_slice_eq_nocase((struct sig_slice){list.ptr + start, end - start}, t))
            return true;
    }
    return false;
}

static bool slice_starts_nocase(struct sig_slice s, const char *prefix)
{
    struct sig_slice p = sig_slice_from_cstr(prefix);
    return s.len >= p.len && sig_slice_eq_nocase((struct sig_slice){s.ptr, p.len}, p);
}

static bool copy_cstr(char *dst, size_t cap, struct sig_slice s)
{
    if (s.len >= cap)
        return false;
    struct sig_buf b;
    sig_buf_init(&b, dst, cap - 1);
    if (sig_buf_append_slice(&b, s) != SIG_OK)
        return false;
    dst[b.len] = '\0';
    return true;
}

/* Splits HOST[:PORT] (IPv6 in brackets); port 0 when absent. */
static bool split_authority(struct sig_slice a, struct sig_slice *host, uint16_t *port)
{
    *port = 0;
    *host = a;
    if (a.len == 0)
        return false;
    size_t colon = a.len;
    for (size_t i = a.len; i > 0; i--) {
        if (a.ptr[i - 1] == ':') {
            colon = i - 1;
            break;
        }
        if (a.ptr[i - 1] == ']')
            break;
    }
    if (colon < a.len) {
        unsigned v = 0;
        if (colon + 1 == a.len || a.len - colon - 1 > 5)
            return false;
        for (size_t i = colon + 1; i < a.len; i++) {
            if (a.ptr[i] < '0' || a.ptr[i] > '9')
                return false;
            v = v * 10 + (unsigned)(a.ptr[i] - '0');
        }
        if (v == 0 || v > 65535)
            return false;
        *port = (uint16_t)v;
        host->len = colon;
    }
    if (host->len == 0)
        return false;
    for (size_t i = 0; i < host->len; i++) {
        uint8_t c = host->ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c == '[' || c == ']' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

/* Sets path/query (and the absolute-form authority) from the request target. */
static int parse_target(struct px_conn *conn, struct sig_slice *authority)
{
    struct sig_slice t = head_slice(conn, conn->url_off, conn->url_len);
    *authority = (struct sig_slice){0};
    size_t i = 0;
    if (slice_starts_nocase(t, "http://") || slice_starts_nocase(t, "https://")) {
        /* absolute-form (RFC 9112 3.2.2): the authority replaces Host */
        i = t.ptr[4] == ':' ? 7 : 8;
        size_t start = i;
        while (i < t.len && t.ptr[i] != '/' && t.ptr[i] != '?' && t.ptr[i] != '#')
            i++;
        *authority = (struct sig_slice){t.ptr + start, i - start};
        for (size_t k = 0; k < authority->len; k++)
            if (authority->ptr[k] == '@')
                return refuse(conn, PX_ERR_BAD_REQUEST, "userinfo in the request target");
    } else if (t.len == 0 || t.ptr[0] != '/') {
        return refuse(conn, PX_ERR_BAD_REQUEST,
                      "request target must be origin-form (/path) or absolute-form");
    }
    size_t path_start = i;
    while (i < t.len && t.ptr[i] != '?' && t.ptr[i] != '#')
        i++;
    conn->path_off = (uint32_t)(conn->url_off + path_start);
    conn->path_len = (uint32_t)(i - path_start);
    if (i < t.len && t.ptr[i] == '?') {
        size_t q = ++i;
        while (i < t.len && t.ptr[i] != '#')
            i++;
        conn->query_off = (uint32_t)(conn->url_off + q);
        conn->query_len = (uint32_t)(i - q);
    }
    return 0;
}

static int choose_upstream(struct px_conn *conn, struct sig_slice authority)
{
    const struct px_config *cfg = conn->w->cfg;
    const struct px_hdr *host_hdr = NULL;
    for (size_t i = 0; i < conn->hdr_count; i++) {
        if (sig_slice_eq_nocase(hdr_name(conn, &conn->hdrs[i]), SIG_SLICE_LIT("host"))) {
            if (host_hdr != NULL)
                return refuse(conn, PX_ERR_BAD_REQUEST, "more than one Host header");
            host_hdr = &conn->hdrs[i];
        }
    }
    if (host_hdr == NULL && conn->http_minor >= 1 && authority.len == 0 && cfg->host.len == 0)
        return refuse(conn, PX_ERR_BAD_REQUEST, "HTTP/1.1 request without Host");
    if (authority.len == 0 && host_hdr != NULL)
        authority = hdr_value(conn, host_hdr);

    struct sig_slice host;
    uint16_t port;
    if (cfg->host.len != 0) {
        if (!split_authority(cfg->host, &host, &port))
            return refuse(conn, PX_ERR_INTERNAL, "bad --host");
    } else {
        if (authority.len == 0)
            return refuse(conn, PX_ERR_BAD_REQUEST, "no upstream host: send Host or use --host");
        if (!split_authority(authority, &host, &port))
            return refuse(conn, PX_ERR_BAD_REQUEST, "malformed Host or request authority");
        if (!copy_cstr(conn->up_host, sizeof(conn->up_host), host))
            return refuse(conn, PX_ERR_BAD_REQUEST, "upstream host name too long");
        if (!px_config_host_allowed(cfg, host)) {
            conn->parse_err = PX_ERR_HOST_NOT_ALLOWED;
            snprintf(conn->parse_reason, sizeof(conn->parse_reason),
                     "upstream host %.*s is not allowed (see --allow-host)", (int)host.len,
                     (const char *)host.ptr);
            return -1;
        }
    }
    if (!copy_cstr(conn->up_host, sizeof(conn->up_host), host))
        return refuse(conn, PX_ERR_BAD_REQUEST, "upstream host name too long");
    for (char *c = conn->up_host; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    uint16_t default_port = cfg->upstream_tls ? 443 : 80;
    conn->up_port = port != 0 ? port : default_port;

    /* Host sent and signed: --sign-host, else the logical upstream (port only if unusual). */
    if (cfg->sign_host.len != 0) {
        if (!copy_cstr(conn->host_header, sizeof(conn->host_header), cfg->sign_host))
            return refuse(conn, PX_ERR_INTERNAL, "bad --sign-host");
    } else if (conn->up_port == default_port) {
        snprintf(conn->host_header, sizeof(conn->host_header), "%s", conn->up_host);
    } else {
        snprintf(conn->host_header, sizeof(conn->host_header), "%s:%u", conn->up_host,
                 conn->up_port);
    }

    /* --connect-to: logical HOST1:PORT1 stays for SNI, certificate, Host and signature;
     * only the TCP destination changes. First match wins. */
    snprintf(conn->connect_host, sizeof(conn->connect_host), "%s", conn->up_host);
    conn->connect_port = conn->up_port;
    struct sig_slice up = sig_slice_from_cstr(conn->up_host);
    for (size_t i = 0; i < cfg->connect_to_count; i++) {
        const struct px_connect_to *ct = &cfg->connect_to[i];
        if (ct->from_host.len != 0 && !sig_slice_eq_nocase(ct->from_host, up))
            continue;
        if (ct->from_port != 0 && ct->from_port != conn->up_port)
            continue;
        if (ct->to_host.len != 0 &&
            !copy_cstr(conn->connect_host, sizeof(conn->connect_host), ct->to_host))
            return refuse(conn, PX_ERR_INTERNAL, "bad --connect-to");
        if (ct->to_port != 0)
            conn->connect_port = ct->to_port;
        break;
    }
    /* Brackets are URL syntax; resolvers want the bare IPv6 literal. */
    if (conn->connect_host[0] == '[') {
        size_t len = sig_slice_from_cstr(conn->connect_host).len;
        if (len >= 2 && conn->connect_host[len - 1] == ']') {
            for (size_t k = 0; k + 2 < len; k++)
                conn->connect_host[k] = conn->connect_host[k + 1];
            conn->connect_host[len - 2] = '\0';
        }
    }

    /* Service and region: flags first, then the host name, then the fallback region. */
    struct sig_slice sign_name = sig_slice_from_cstr(conn->up_host);
    if (cfg->sign_host.len != 0) {
        uint16_t ignored;
        if (!split_authority(cfg->sign_host, &sign_name, &ignored))
            sign_name = cfg->sign_host;
    }
    px_endpoint_infer(sign_name, &conn->ep);
    if (cfg->service.len != 0 &&
        !copy_cstr(conn->ep.service, sizeof(conn->ep.service), cfg->service))
        return refuse(conn, PX_ERR_INTERNAL, "bad --name");
    conn->ep.service_len = sig_slice_from_cstr(conn->ep.service).len;
    if (conn->ep.service_len == 0) {
        conn->parse_err = PX_ERR_BAD_REQUEST;
        snprintf(conn->parse_reason, sizeof(conn->parse_reason),
                 "cannot infer the signing service from host %s: use --name", conn->up_host);
        return -1;
    }
    struct sig_slice region =
        cfg->region.len != 0 ? cfg->region
        : conn->ep.region_len != 0
            ? (struct sig_slice){(const uint8_t *)conn->ep.region, conn->ep.region_len}
            : cfg->fallback_region;
    char region_copy[PX_ENDPOINT_MAX_PART];
    if (!copy_cstr(region_copy, sizeof(region_copy), region) ||
        !copy_cstr(conn->ep.region, sizeof(conn->ep.region), sig_slice_from_cstr(region_copy)))
        return refuse(conn, PX_ERR_INTERNAL, "bad region");
    conn->ep.region_len = sig_slice_from_cstr(conn->ep.region).len;
    return 0;
}

static void send_simple(struct px_conn *conn, int status, const char *reason_line, bool close_after)
{
    char head[256];
    size_t body_len = sig_slice_from_cstr(reason_line).len + 1;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nServer: sigv4d\r\n%s\r\n",
                     status, px_status_reason(status), body_len,
                     close_after ? "Connection: close\r\n" : "");
    if (n > 0)
        px_conn_client_write(conn, head, (size_t)n);
    px_conn_client_write(conn, reason_line, body_len - 1);
    px_conn_client_write(conn, "\n", 1);
}

static int on_headers_complete(llhttp_t *p)
{
    struct px_conn *conn = conn_of(p);
    const struct px_config *cfg = conn->w->cfg;
    conn->http_minor = p->http_major == 1 ? p->http_minor : 0;
    conn->method_name = llhttp_method_name((llhttp_method_t)p->method);
    conn->is_head = p->method == HTTP_HEAD;
    if (p->method == HTTP_CONNECT || p->upgrade)
        return refuse(conn, PX_ERR_NOT_IMPLEMENTED,
                      "CONNECT and protocol upgrades are not "
                      "supported");

    /* Ambiguous framing is refused, never forwarded (RFC 9112 6.1, 6.3, 5.2). llhttp (strict
     * mode) already rejects Content-Length with Transfer-Encoding, duplicate Content-Length and
     * bad chunk sizes; a line folded onto the previous header (obs-fold) reaches us as a CR/LF
     * inside the value. */
    for (size_t i = 0; i < conn->hdr_count; i++) {
        struct sig_slice v = head_slice(conn, conn->hdrs[i].value_off, conn->hdrs[i].value_len);
        for (size_t k = 0; k < v.len; k++)
            if (v.ptr[k] == '\r' || v.ptr[k] == '\n' || v.ptr[k] == 0)
                return refuse(conn, PX_ERR_BAD_REQUEST,
                              "obsolete line folding or control byte in a header value");
    }

    struct sig_slice authority;
    if (parse_target(conn, &authority) != 0 || choose_upstream(conn, authority) != 0)
        return -1;

    conn->body_chunked = (p->flags & F_CHUNKED) != 0;
    /* Only "chunked" is decoded here; forwarding e.g. "gzip, chunked" de-chunked but still
     * gzip-coded under a Content-Length would change the body's meaning (RFC 9112 6.1). */
    for (size_t i = 0; i < conn->hdr_count; i++)
        if (sig_slice_eq_nocase(hdr_name(conn, &conn->hdrs[i]),
                                SIG_SLICE_LIT("transfer-encoding")) &&
            !sig_slice_eq_nocase(hdr_value(conn, &conn->hdrs[i]), SIG_SLICE_LIT("chunked")))
            return refuse(conn, PX_ERR_NOT_IMPLEMENTED,
                          "unsupported Transfer-Encoding (only chunked)");
    conn->content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    bool has_body = conn->body_chunked || conn->content_length > 0;
    /* HTTP/1.0 has no Transfer-Encoding: such a message's framing is faulty (RFC 9112 6.1). */
    if (conn->http_minor == 0 && find_hdr(conn, "transfer-encoding") != NULL)
        return refuse(conn, PX_ERR_BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request");
    px_frame_body(&conn->frame, conn->body_chunked, conn->content_length);

    /* A client that already framed its body as aws-chunked without signatures keeps that
     * framing; signed aws-chunked bodies carry the client's own chunk signatures, which we
     * cannot re-sign. */
    const struct px_hdr *csha = find_hdr(conn, "x-amz-content-sha256");
    if (csha != NULL) {
        struct sig_slice v = hdr_value(conn, csha);
        if (sig_slice_eq(v, SIG_SLICE_LIT(SIG_STREAMING_UNSIGNED_TRAILER)))
            conn->aws_chunked_passthrough = true;
        else if (slice_starts_nocase(v, "STREAMING-"))
            return refuse(conn, PX_ERR_BAD_REQUEST,
                          "client-signed aws-chunked bodies cannot be re-signed: send "
                          "STREAMING-UNSIGNED-PAYLOAD-TRAILER or a plain body");
    }

    if (!has_body)
        conn->body_mode = PX_BODY_NONE;
    else if ((cfg->unsigned_payload || conn->aws_chunked_passthrough) && !conn->body_chunked)
        conn->body_mode = PX_BODY_STREAM;
    else if (!conn->body_chunked && conn->content_length > cfg->max_buffer_bytes &&
             sig_slice_eq(
                 (struct sig_slice){(const uint8_t *)conn->ep.service, conn->ep.service_len},
                 SIG_SLICE_LIT("s3")) &&
             find_hdr(conn, "content-encoding") == NULL)
        conn->body_mode = PX_BODY_AWS_CHUNKED;
    else
        conn->body_mode = PX_BODY_BUFFER;
    if (conn->body_mode == PX_BODY_BUFFER && !conn->body_chunked &&
        conn->content_length > cfg->max_body_bytes)
        return refuse(conn, PX_ERR_BODY_TOO_LARGE, "request body exceeds --max-body-bytes");
    sig_sha256_init(&conn->body_hash);

    const struct px_hdr *expect = find_hdr(conn, "expect");
    if (expect != NULL) {
        if (!slice_has_token(hdr_value(conn, expect), "100-continue"))
            return refuse(conn, PX_ERR_BAD_REQUEST, "unsupported Expect");
        if (has_body && conn->http_minor >= 1) {
            /* Everything that can refuse the request before the body has been checked. */
            px_conn_client_write(conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            conn->sent_100 = true;
        }
    }

    px_conn_arm_timer(conn, cfg->client_idle_timeout_ms);
    if (conn->body_mode == PX_BODY_STREAM || conn->body_mode == PX_BODY_AWS_CHUNKED) {
        px_conn_set_state(conn, PX_STATE_WAIT_CREDS);
        px_conn_fetch_creds(conn);
    } else {
        px_conn_set_state(conn, PX_STATE_READ_BODY);
    }
    return 0;
}

static enum px_err spool_open(struct px_conn *conn)
{
    const char *dir = conn->w->cfg->spool_dir;
    /* O_TMPFILE: never visible in the directory, so nothing is left behind on a crash. */
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/sigv4d-spool-XXXXXX", dir);
        fd = mkstemp(path);
        if (fd >= 0)
            unlink(path);
    }
    if (fd < 0) {
        px_log(PX_LOG_ERROR, "cannot create a spool file in %s: %s", dir, strerror(errno));
        return PX_ERR_SPOOL;
    }
    conn->spool_fd = fd;
    return PX_OK;
}

/*
 * Writes body bytes to the spool file. This is a blocking write(2) on the event loop, accepted
 * deliberately: the file is a regular file on a local disk, so the write lands in the page
 * cache and never waits for a remote peer; each call writes at most one received segment
 * (bounded by the socket read size), and the kernel's dirty-page throttling is the only wait.
 */
static enum px_err spool_write(struct px_conn *conn, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(conn->spool_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            px_log(PX_LOG_ERROR, "spool write failed: %s", strerror(errno));
            return PX_ERR_SPOOL;
        }
        p += w;
        n -= (size_t)w;
        conn->spool_len += (uint64_t)w;
    }
    return PX_OK;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = conn_of(p);
    const struct px_config *cfg = conn->w->cfg;
    conn->body_len += len;
    if (conn->body_mode == PX_BODY_STREAM) {
        if (conn->req_head_sent && conn->up != NULL)
            evbuffer_add(bufferevent_get_output(conn->up->bev), at, len);
        else
            evbuffer_add(conn->body, at, len);
        return 0;
    }
    if (conn->body_mode == PX_BODY_AWS_CHUNKED) {
        /* Held only until a chunk is complete (px_upstream_pump_body signs and frames it). */
        evbuffer_add(conn->body, at, len);
        return 0;
    }
    if (conn->body_len > cfg->max_body_bytes)
        return refuse(conn, PX_ERR_BODY_TOO_LARGE, "request body exceeds --max-body-bytes");
    /* `at` points into the client evbuffer's own segment (client_feed hands llhttp the
     * segments from evbuffer_peek), so the hash reads the received bytes in place. */
    if (!cfg->unsigned_payload) /* chunked bodies are buffered then, but never hashed */
        sig_sha256_update(&conn->body_hash, at, len);
    if (conn->spool_fd < 0 && evbuffer_get_length(conn->body) + len <= cfg->max_buffer_bytes) {
        evbuffer_add(conn->body, at, len);
        return 0;
    }
    if (conn->spool_fd < 0 && spool_open(conn) != PX_OK)
        return refuse(conn, PX_ERR_SPOOL, "cannot create a spool file in --spool-dir");
    if (spool_write(conn, at, len) != PX_OK)
        return refuse(conn, PX_ERR_SPOOL, "spool file write failed");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct px_conn *conn = conn_of(p);
    conn->req_complete = true;
    conn->keep_alive = llhttp_should_keep_alive(p) != 0;
    /* Pause: pipelined requests stay in the input buffer until this response is done. */
    return HPE_PAUSED;
}

static const llhttp_settings_t req_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- credentials and signing ---- */

static void creds_cb(struct cred *creds, enum cred_err err, void *arg);

void px_conn_fetch_creds(struct px_conn *conn)
{
    conn->creds_pending = true;
    cred_provider_get(conn->w->provider, creds_cb, conn);
}

static bool name_in(struct sig_slice name, const struct sig_slice *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sig_slice_eq_nocase(name, list[i]))
            return true;
    return false;
}

/* Hop-by-hop headers (RFC 9110 7.6.1) and everything we regenerate. */
static bool is_dropped(const struct px_conn *conn, struct sig_slice name,
                       struct sig_slice connection_value)
{
    static const char *const dropped[] = {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    };
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        if (sig_slice_eq_nocase(name, sig_slice_from_cstr(dropped[i])))
            return true;
    const struct px_config *cfg = conn->w->cfg;
    if (name_in(name, cfg->strip, cfg->strip_count))
        return true;
    for (size_t i = 0; i < cfg->custom_header_count; i++)
        if (sig_slice_eq_nocase(name, cfg->custom_headers[i].name))
            return true; /* replaced by the custom value */
    /* Headers the client named in Connection are hop-by-hop too. */
    if (connection_value.len != 0) {
        char tok[64];
        if (copy_cstr(tok, sizeof(tok), name) && slice_has_token(connection_value, tok))
            return true;
    }
    return false;
}

size_t px_sign_header_cap(const struct px_config *cfg)
{
    return 1 + cfg->max_headers * (1 + cfg->duplicate_header_count) + cfg->custom_header_count + 3;
}

/* ---- the signed head's memory ---- */

/* A head of a few KiB (a session token is ~1 KiB) fits the first allocation. */
#define PX_SIGNED_HEAD_MIN_BYTES 4096u

size_t px_signed_head_max_bytes(const struct px_config *cfg)
{
    size_t custom = 0, dup_names = 0;
    for (size_t i = 0; i < cfg->custom_header_count; i++)
        custom += cfg->custom_headers[i].name.len + cfg->custom_headers[i].value.len + 4;
    for (size_t i = 0; i < cfg->duplicate_header_count; i++)
        dup_names += sizeof("X-Original-") + cfg->duplicate_headers[i].len;
    /* 1 KiB: request line words, Host, the aws-chunked and Content-Length lines, CRLFs. */
    return PX_WORKSPACE_BYTES + 1024 + custom + dup_names * cfg->max_headers +
           (1 + cfg->duplicate_header_count) * (cfg->max_header_bytes + 4 * cfg->max_headers);
}

void px_signed_head_wipe(struct px_signed_head *h)
{
    if (h == NULL || h->len == 0)
        return;
    OPENSSL_cleanse(h->mem, h->len);
    h->len = 0;
}

static void signed_head_unref(struct px_signed_head *h)
{
    if (h == NULL || --h->refs != 0)
        return;
    px_signed_head_wipe(h);
    free(h);
}

/* evbuffer_ref_cleanup_cb: libevent wrote the referenced bytes out or freed the chain. */
static void signed_head_ref_done(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    signed_head_unref(arg);
}

bool px_signed_head_queue(struct px_signed_head *h, struct evbuffer *out)
{
    h->refs++; /* first: the cleanup may run as soon as the chain is in `out` */
    if (evbuffer_add_reference(out, h->mem, h->len, signed_head_ref_done, h) == 0)
        return true;
    h->refs--;
    return false;
}

/*
 * The connection's head memory, wiped and with room for `cap` bytes. A head still referenced
 * by an output (an upstream given up on, whose buffers libevent has not freed yet) is never
 * written over: it is left to its last reference and a new one is allocated.
 */
static struct px_signed_head *signed_head_reserve(struct px_conn *conn, size_t cap)
{
    struct px_signed_head *h = conn->up_head;
    px_signed_head_wipe(h);
    if (h != NULL && h->refs == 1 && h->cap >= cap)
        return h;
    signed_head_unref(h);
    h = px_xmalloc(sizeof(*h) + cap);
    *h = (struct px_signed_head){.refs = 1, .cap = cap};
    conn->up_head = h;
    return h;
}

static enum sig_err append_cstr(struct sig_buf *b, const char *s)
{
    return sig_buf_append_slice(b, sig_slice_from_cstr(s));
}

static enum sig_err append_header_line(struct sig_buf *b, struct sig_slice name,
                                       struct sig_slice value)
{
    SIG_TRY(sig_buf_append_slice(b, name));
    SIG_TRY(sig_buf_append(b, ": ", 2));
    SIG_TRY(sig_buf_append_slice(b, value));
    return sig_buf_append(b, "\r\n", 2);
}

/* Serialises the signed head into `b`: SIG_ERR_TOO_LARGE when it does not fit. */
static enum sig_err write_head(const struct px_conn *conn, struct sig_buf *b,
                               const struct sig_header *all, size_t n_all,
                               const struct sig_result *res)
{
    /* Request line: the path exactly as received (what was signed). */
    SIG_TRY(append_cstr(b, conn->method_name));
    SIG_TRY(sig_buf_append_byte(b, ' '));
    struct sig_slice path = head_slice(conn, conn->path_off, conn->path_len);
    SIG_TRY(sig_buf_append_slice(b, path.len == 0 ? SIG_SLICE_LIT("/") : path));
    /* The query goes out in its canonical form (sorted, encoded exactly as signed), so the
     * service cannot decode it differently from what was signed (e.g. '+' vs space). */
    if (res->canonical_query.len != 0) {
        SIG_TRY(sig_buf_append_byte(b, '?'));
        SIG_TRY(sig_buf_append_slice(b, res->canonical_query));
    }
    SIG_TRY(sig_buf_append_slice(b, SIG_SLICE_LIT(" HTTP/1.1\r\n")));
    for (size_t i = 0; i < n_all; i++)
        SIG_TRY(append_header_line(b, all[i].name, all[i].value));
    for (size_t i = 0; i < res->add_header_count; i++)
        SIG_TRY(append_header_line(b, res->add_headers[i].name, res->add_headers[i].value));
    uint64_t len = conn->body_mode == PX_BODY_STREAM ? conn->content_length : conn->body_len;
    /* aws-chunked: Content-Length is among the signed headers already. */
    if (conn->body_mode != PX_BODY_AWS_CHUNKED &&
        (conn->body_mode != PX_BODY_NONE || conn->content_length > 0 ||
         conn->method_name[0] == 'P')) {
        char cl[32];
        int n = snprintf(cl, sizeof(cl), "%llu", (unsigned long long)len);
        SIG_TRY(append_header_line(b, SIG_SLICE_LIT("Content-Length"),
                                   (struct sig_slice){(const uint8_t *)cl, (size_t)n}));
    }
    return sig_buf_append(b, "\r\n", 2);
}

/* Builds, signs and serialises the upstream request head into conn->up_head. Runs
 * synchronously inside the credentials callback. The header arrays are the worker's scratch
 * (px_sign_header_cap entries: conn->hdr_count <= --max-headers), so nothing is allocated per
 * request; the head memory is allocated on a connection's first request. */
static enum px_err build_signed_head(struct px_conn *conn, char *why, size_t why_len)
{
    struct px_worker *w = conn->w;
    const struct px_config *cfg = w->cfg;
    struct sig_header *all = w->sign_all;
    struct sig_header *signed_hdrs = w->sign_signed;
    assert(conn->hdr_count <= cfg->max_headers);
    size_t n_all = 0, n_signed = 0;
    enum px_err err = PX_OK;

    const struct px_hdr *conn_hdr = find_hdr(conn, "connection");
    struct sig_slice connection_value =
        conn_hdr ? hdr_value(conn, conn_hdr) : (struct sig_slice){0};

    all[n_all++] =
        (struct sig_header){SIG_SLICE_LIT("Host"), sig_slice_from_cstr(conn->host_header)};
    /* --duplicate-headers copies before stripping (to keep e.g. the client's Authorization
     * as X-Original-Authorization). */
    struct sig_buf dup;
    sig_buf_init(&dup, w->sign_dup_mem, w->sign_dup_cap);
    for (size_t i = 0; i < conn->hdr_count; i++) {
        struct sig_slice name = hdr_name(conn, &conn->hdrs[i]);
        struct sig_slice value = hdr_value(conn, &conn->hdrs[i]);
        for (size_t d = 0; d < cfg->duplicate_header_count; d++) {
            if (!sig_slice_eq_nocase(name, cfg->duplicate_headers[d]))
                continue;
            size_t start = dup.len;
            if (sig_buf_append_slice(&dup, SIG_SLICE_LIT("X-Original-")) == SIG_OK &&
                sig_buf_append_slice(&dup, cfg->duplicate_headers[d]) == SIG_OK)
                all[n_all++] = (struct sig_header){{dup.ptr + start, dup.len - start}, value};
        }
        if (is_dropped(conn, name, connection_value))
            continue;
        all[n_all++] = (struct sig_header){name, value};
    }
    for (size_t i = 0; i < cfg->custom_header_count; i++)
        all[n_all++] =
            (struct sig_header){cfg->custom_headers[i].name, cfg->custom_headers[i].value};
    /* aws-chunked re-framing: S3 wants these signed (sig_chunked.h). */
    char decoded_len[24], encoded_len[24];
    if (conn->body_mode == PX_BODY_AWS_CHUNKED) {
        uint64_t enc;
        enum sig_err cerr = sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, conn->content_length,
                                                       PX_AWS_CHUNK_BYTES, NULL, 0, &enc);
        if (cerr != SIG_OK) {
            snprintf(why, why_len, "cannot frame the body as aws-chunked: %s", sig_err_str(cerr));
            err = PX_ERR_BODY_TOO_LARGE;
            goto out;
        }
        snprintf(decoded_len, sizeof(decoded_len), "%llu",
                 (unsigned long long)conn->content_length);
        snprintf(encoded_len, sizeof(encoded_len), "%llu", (unsigned long long)enc);
        all[n_all++] =
            (struct sig_header){SIG_SLICE_LIT("Content-Encoding"), SIG_SLICE_LIT("aws-chunked")};
        all[n_all++] = (struct sig_header){SIG_SLICE_LIT("x-amz-decoded-content-length"),
                                           sig_slice_from_cstr(decoded_len)};
        all[n_all++] =
            (struct sig_header){SIG_SLICE_LIT("Content-Length"), sig_slice_from_cstr(encoded_len)};
    }
    for (size_t i = 0; i < n_all; i++)
        if (!sig_header_is_unsignable(all[i].name))
            signed_hdrs[n_signed++] = all[i];

    char hash_hex[SIG_SHA256_HEX_LEN + 1];
    struct sig_slice payload_hash;
    bool s3 = px_service_is_s3(
        (struct sig_slice){(const uint8_t *)conn->ep.service, conn->ep.service_len});
    if (conn->aws_chunked_passthrough) {
        payload_hash = SIG_SLICE_LIT(SIG_STREAMING_UNSIGNED_TRAILER);
    } else if (conn->body_mode == PX_BODY_AWS_CHUNKED) {
        payload_hash = sig_chunked_content_sha256(SIG_CHUNKED_SIGNED);
    } else if (conn->body_mode == PX_BODY_STREAM ||
               (cfg->unsigned_payload && conn->body_mode != PX_BODY_NONE)) {
        payload_hash = SIG_SLICE_LIT(SIG_UNSIGNED_PAYLOAD);
    } else {
        sig_sha256_final_hex(&conn->body_hash, hash_hex);
        payload_hash = (struct sig_slice){(const uint8_t *)hash_hex, SIG_SHA256_HEX_LEN};
    }
    struct sig_request req = {
        .method = sig_slice_from_cstr(conn->method_name),
        .path = head_slice(conn, conn->path_off, conn->path_len),
        .query = head_slice(conn, conn->query_off, conn->query_len),
        .headers = signed_hdrs,
        .header_count = n_signed,
    };
    struct sig_params params = {
        .alg = SIG_ALG_V4,
        .form = SIG_FORM_HEADER,
        .uri_mode = s3 ? SIG_URI_S3 : SIG_URI_NORMALIZE,
        .region = {(const uint8_t *)conn->ep.region, conn->ep.region_len},
        .service = {(const uint8_t *)conn->ep.service, conn->ep.service_len},
        .unix_time = (int64_t)time(NULL),
        .payload_hash = payload_hash,
        /* S3 requires the header; for other services it tells the upstream the body is not
         * signed, which only matters for UNSIGNED-PAYLOAD and aws-chunked. */
        .add_content_sha256 = s3 || payload_hash.len != SIG_SHA256_HEX_LEN,
    };
    struct sig_credentials creds = cred_view(conn->creds);
    struct sig_result res;
    enum sig_err serr = sig_sign(&req, &params, &creds, &w->keys, &w->ws, &res);
    if (serr != SIG_OK) {
        snprintf(why, why_len, "cannot sign the request: %s", sig_err_str(serr));
        err = serr == SIG_ERR_TOO_LARGE || serr == SIG_ERR_TOO_MANY_HEADERS
                  ? PX_ERR_HEADERS_TOO_LARGE
              : serr == SIG_ERR_BAD_CREDENTIALS || serr == SIG_ERR_CRYPTO ? PX_ERR_INTERNAL
                                                                          : PX_ERR_BAD_REQUEST;
        goto out;
    }
    if (conn->body_mode == PX_BODY_AWS_CHUNKED) {
        /* The chunk signatures chain from this (seed) signature. */
        sig_chunk_signer_cleanup(&conn->chunk_signer);
        serr = sig_chunk_signer_init(&conn->chunk_signer, SIG_CHUNKED_SIGNED, &res,
                                     creds.secret_access_key, &w->keys);
        if (serr != SIG_OK) {
            snprintf(why, why_len, "cannot start aws-chunked signing: %s", sig_err_str(serr));
            err = PX_ERR_INTERNAL;
            goto out;
        }
        conn->chunked_sent = 0;
        conn->chunked_final_sent = false;
    }

    /* Written into the connection's own head memory (see struct px_signed_head); a head
     * larger than that memory gets a larger one, up to what the limits allow. */
    size_t cap = conn->up_head != NULL ? conn->up_head->cap : PX_SIGNED_HEAD_MIN_BYTES;
    size_t max = px_signed_head_max_bytes(cfg);
    for (;;) {
        struct px_signed_head *h = signed_head_reserve(conn, cap);
        struct sig_buf b;
        sig_buf_init(&b, h->mem, h->cap);
        serr = write_head(conn, &b, all, n_all, &res);
        h->len = b.len;
        if (serr == SIG_OK)
            break;
        px_signed_head_wipe(h);
        if (cap >= max) {
            snprintf(why, why_len, "the signed request head exceeds %zu bytes", max);
            err = PX_ERR_HEADERS_TOO_LARGE;
            goto out;
        }
        cap = cap > max / 2 ? max : 2 * cap;
    }
out:
    sig_workspace_cleanup(&w->ws);
    OPENSSL_cleanse(hash_hex, sizeof(hash_hex));
    /* The scratch held views into conn->head and this frame's locals: none may outlive us. */
    memset(all, 0, n_all * sizeof(*all));
    memset(signed_hdrs, 0, n_signed * sizeof(*signed_hdrs));
    return err;
}

/* Wipes the client's stripped credentials from the head buffer; the rest of the head (path,
 * for the log line) stays. */
static void wipe_client_secrets(struct px_conn *conn)
{
    if (!conn->head_secrets)
        return;
    for (size_t i = 0; i < conn->hdr_count; i++) {
        const struct px_hdr *h = &conn->hdrs[i];
        if (is_client_secret(hdr_name(conn, h)))
            OPENSSL_cleanse(conn->head.ptr + h->value_off, h->value_len);
    }
    conn->head_secrets = false;
}

static void creds_cb(struct cred *creds, enum cred_err err, void *arg)
{
    struct px_conn *conn = arg;
    conn->creds_pending = false;
    if (conn->closing) {
        cred_unref(creds);
        event_active(conn->free_ev, 0, 0);
        return;
    }
    if (err != CRED_OK) {
        px_conn_fail(conn, PX_ERR_NO_CREDENTIALS,
                     "no credentials: %s (set AWS_ACCESS_KEY_ID "
                     "and AWS_SECRET_ACCESS_KEY)",
                     cred_err_str(err));
        return;
    }
    cred_unref(conn->creds);
    conn->creds = creds;
    char why[200];
    enum px_err perr = build_signed_head(conn, why, sizeof(why));
    /* The client's own credentials were needed only for --duplicate-headers copies. */
    wipe_client_secrets(conn);
    if (perr != PX_OK) {
        px_conn_fail(conn, perr, "%s", why);
        return;
    }
    px_conn_set_state(conn, PX_STATE_CONNECT_UP);
    px_upstream_start(conn);
}

/* ---- client I/O ---- */

void px_conn_client_write(struct px_conn *conn, const void *p, size_t n)
{
    if (conn->client == NULL)
        return;
    evbuffer_add(bufferevent_get_output(conn->client), p, n);
    conn->bytes_out += n;
}

static void log_request(struct px_conn *conn, int status, const char *reason)
{
    const struct px_config *cfg = conn->w->cfg;
    bool failed = status >= 400 || status == 0;
    if (!(cfg->verbose > 0 || (failed && cfg->log_failed_requests)))
        return;
    struct sig_slice path =
        conn->path_len ? head_slice(conn, conn->path_off, conn->path_len) : SIG_SLICE_LIT("-");
    px_log(PX_LOG_ERROR, "%s %s %.*s %d in=%llu out=%llu %llums%s%s",
           conn->method_name ? conn->method_name : "-", conn->up_host[0] ? conn->up_host : "-",
           (int)(path.len > 200 ? 200 : path.len), (const char *)path.ptr, status,
           (unsigned long long)conn->body_len, (unsigned long long)conn->bytes_out,
           (unsigned long long)(px_now_ms() - conn->start_ms), reason ? ": " : "",
           reason ? reason : "");
}

void px_conn_fail(struct px_conn *conn, enum px_err err, const char *fmt, ...)
{
    if (conn->closing)
        return;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    int status = px_err_status(err);
    enum px_state phase = conn->state;
    if (conn->up != NULL)
        px_upstream_release(conn, false);
    if (status == 0 || conn->resp_head_sent || conn->client == NULL) {
        /* Nothing can be said to the client any more (it left, or a response is under
         * way): cutting the connection is the only honest signal. */
        px_log(conn->w->cfg->log_failed_requests || conn->w->cfg->verbose ? PX_LOG_ERROR
                                                                          : PX_LOG_DEBUG,
               "%s: %s in phase %s; closing", conn->peer, reason, px_state_name(phase));
        px_conn_close(conn);
        return;
    }
    log_request(conn, status, reason);
    if (!(conn->w->cfg->log_failed_requests || conn->w->cfg->verbose))
        px_log(PX_LOG_DEBUG, "%s: %d %s in phase %s", conn->peer, status, reason,
               px_state_name(phase));
    send_simple(conn, status, reason, true);
    conn->resp_head_sent = true;
    px_conn_set_state(conn, PX_STATE_DRAIN);
    bufferevent_disable(conn->client, EV_READ);
    bufferevent_setwatermark(conn->client, EV_WRITE, 0, 0);
    px_conn_arm_timer(conn, conn->w->cfg->client_idle_timeout_ms);
}

static void reset_request(struct px_conn *conn)
{
    /* A request refused before signing may still hold the client's credentials. */
    if (conn->head_secrets)
        OPENSSL_cleanse(conn->head.ptr, conn->head.len);
    conn->head_secrets = false;
    px_signed_head_wipe(conn->up_head);
    conn->head.len = 0;
    conn->url_off = conn->url_len = 0;
    conn->hdr_count = 0;
    conn->in_value = false;
    conn->parse_err = PX_OK;
    conn->parse_reason[0] = '\0';
    conn->req_complete = false;
    conn->keep_alive = false;
    conn->method_name = NULL;
    conn->is_head = false;
    conn->up_host[0] = conn->host_header[0] = conn->connect_host[0] = '\0';
    conn->path_off = conn->path_len = conn->query_off = conn->query_len = 0;
    conn->body_mode = PX_BODY_NONE;
    conn->body_chunked = conn->aws_chunked_passthrough = false;
    conn->content_length = conn->body_len = 0;
    evbuffer_drain(conn->body, evbuffer_get_length(conn->body));
    if (conn->spool_fd >= 0)
        close(conn->spool_fd);
    conn->spool_fd = -1;
    conn->spool_len = conn->spool_sent = 0;
    conn->req_head_sent = conn->req_body_sent = conn->retried = conn->sent_100 = false;
    sig_chunk_signer_cleanup(&conn->chunk_signer);
    conn->chunked_sent = 0;
    conn->chunked_final_sent = false;
    cred_unref(conn->creds);
    conn->creds = NULL;
    conn->resp_hdr_count = 0;
    conn->resp_head.len = 0;
    conn->resp_in_value = conn->resp_started = conn->resp_head_sent = false;
    conn->resp_chunked_out = conn->resp_close_delimited = conn->resp_complete = false;
    conn->resp_up_eof = false;
    conn->stall_out_len = 0;
    conn->stall_in_len = 0;
    conn->read_paused = false;
    conn->status = 0;
    conn->bytes_out = 0;
    conn->fail_reason[0] = '\0';
    conn->head_bytes_fed = 0;
}

/* The response to the current request has been handed to the client's output. */
void px_conn_response_done(struct px_conn *conn)
{
    log_request(conn, conn->status, NULL);
    bool again =
        conn->keep_alive && conn->req_complete && !conn->resp_close_delimited && !conn->w->stopping;
    if (!again) {
        px_conn_set_state(conn, PX_STATE_DRAIN);
        bufferevent_disable(conn->client, EV_READ);
        bufferevent_setwatermark(conn->client, EV_WRITE, 0, 0);
        px_conn_arm_timer(conn, conn->w->cfg->client_idle_timeout_ms);
        if (evbuffer_get_length(bufferevent_get_output(conn->client)) == 0)
            drain_done(conn);
        return;
    }
    px_conn_set_state(conn, PX_STATE_READ_HEAD);
    reset_request(conn);
    conn->head_started = false;
    px_frame_reset(&conn->frame);
    llhttp_resume(&conn->req_parser);
    set_read_lowmark(conn);
    bufferevent_enable(conn->client, EV_READ);
    px_conn_arm_timer(conn, conn->w->cfg->client_idle_timeout_ms);
    /* A pipelined request may already be waiting in the input buffer. */
    client_feed(conn);
}

static void handle_request_complete(struct px_conn *conn)
{
    /* The parser stays paused until the response is done. Reading goes on (a read toggle per
     * request costs two epoll_ctl calls), but the client's read high watermark bounds what
     * pipelined requests can queue in memory; beyond it the rest waits in the kernel. */
    if (conn->body_mode == PX_BODY_STREAM || conn->body_mode == PX_BODY_AWS_CHUNKED) {
        px_upstream_pump_body(conn);
        return;
    }
    px_conn_set_state(conn, PX_STATE_WAIT_CREDS);
    evtimer_del(conn->timer);
    px_conn_fetch_creds(conn);
}

/* Sets the client's read low watermark: a batch of the known-length body still to come, or 0
 * (every byte) while reading heads, chunked bodies, or lingering. */
static void set_read_lowmark(struct px_conn *conn)
{
    size_t low = 0;
    if (!conn->req_complete && !conn->lingering && conn->state != PX_STATE_READ_HEAD &&
        conn->state != PX_STATE_DRAIN && !conn->body_chunked && conn->body_mode != PX_BODY_NONE &&
        conn->content_length > conn->body_len) {
        uint64_t left = conn->content_length - conn->body_len;
        low = left < PX_READ_BATCH_BYTES ? (size_t)left : PX_READ_BATCH_BYTES;
    }
    if (low != conn->read_lowmark && conn->client != NULL) {
        bufferevent_setwatermark(conn->client, EV_READ, low, PX_HIGH_WATERMARK);
        conn->read_lowmark = low;
    }
}

static void client_feed(struct px_conn *conn)
{
    struct evbuffer *in = bufferevent_get_input(conn->client);
    const struct px_config *cfg = conn->w->cfg;
    while (!conn->closing && !conn->req_complete && conn->state != PX_STATE_DRAIN) {
        struct evbuffer_iovec v;
        if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        /* llhttp gets only bytes the strict check passed, and at most up to the end of the
         * head or of the message, so each boundary is checked against where llhttp puts it. */
        size_t n;
        const char *why;
        enum px_frame_result fr = px_frame_scan(&conn->frame, v.iov_base, v.iov_len, &n, &why);
        if (fr == PX_FRAME_BAD) {
            px_conn_fail(conn, PX_ERR_BAD_REQUEST, "malformed request: %s", why);
            return;
        }
        if (conn->state == PX_STATE_READ_HEAD) {
            if (!conn->head_started) {
                conn->head_started = true;
                px_conn_arm_timer(conn, cfg->client_header_timeout_ms);
            }
            /* Bytes llhttp skips without a callback (whitespace) still count. */
            conn->head_bytes_fed += n;
            if (conn->head_bytes_fed > 2 * cfg->max_header_bytes + 65536) {
                px_conn_fail(conn, PX_ERR_HEADERS_TOO_LARGE,
                             "request head exceeds --max-header-bytes");
                return;
            }
        } else if (conn->state == PX_STATE_READ_BODY) {
            conn->stall_in_len = 0;
            conn->read_paused = false;
            px_conn_arm_timer(conn, cfg->client_idle_timeout_ms);
        }
        const char *p = v.iov_base;
        conn->seg_start = p;
        conn->seg_end = p + n;
        conn->value_cont_ok = conn->value_at_seg_end;
        conn->value_at_seg_end = false;
        enum llhttp_errno e = llhttp_execute(&conn->req_parser, p, n);
        size_t used = n;
        if (e == HPE_PAUSED) {
            used = (size_t)(llhttp_get_error_pos(&conn->req_parser) - p);
            if (used != n || !px_frame_done(&conn->frame)) {
                px_conn_fail(conn, PX_ERR_BAD_REQUEST,
                             "malformed request: the message end is ambiguous");
                return;
            }
        } else if (e == HPE_OK && (px_frame_wants_body(&conn->frame) ||
                                   (fr == PX_FRAME_MSG_END && !conn->req_complete))) {
            px_conn_fail(conn, PX_ERR_BAD_REQUEST, "malformed request: the %s end is ambiguous",
                         fr == PX_FRAME_MSG_END ? "message" : "head");
            return;
        } else if (e != HPE_OK) {
            if (conn->parse_err != PX_OK)
                px_conn_fail(conn, conn->parse_err, "%s", conn->parse_reason);
            else if (e == HPE_PAUSED_UPGRADE)
                px_conn_fail(conn, PX_ERR_NOT_IMPLEMENTED, "protocol upgrades are not supported");
            else
                px_conn_fail(conn, PX_ERR_BAD_REQUEST, "malformed request: %s",
                             llhttp_get_error_reason(&conn->req_parser));
            return;
        }
        evbuffer_drain(in, used);
        if (conn->closing)
            return;
        if (conn->req_complete) {
            handle_request_complete(conn);
            return;
        }
        if (conn->body_mode == PX_BODY_AWS_CHUNKED)
            px_upstream_pump_body(conn);
        if (conn->closing)
            return;
        if (conn->body_mode == PX_BODY_STREAM || conn->body_mode == PX_BODY_AWS_CHUNKED) {
            size_t pending = evbuffer_get_length(conn->body);
            if (conn->req_head_sent && conn->up)
                pending += evbuffer_get_length(bufferevent_get_output(conn->up->bev));
            if (pending > PX_HIGH_WATERMARK) {
                bufferevent_disable(conn->client, EV_READ);
                conn->read_paused = true;
                return;
            }
        }
    }
    if (!conn->closing)
        set_read_lowmark(conn);
}

/*
 * The final response is flushed. Closing now with unread request bytes in the socket would
 * make the kernel send RST, which can destroy the response before the client reads it; so
 * shut the write side and discard input until the client closes or a short timer expires
 * (lingering close, as nginx and Apache do).
 */
static void drain_done(struct px_conn *conn)
{
    if (conn->lingering)
        return;
    if (conn->req_complete && evbuffer_get_length(bufferevent_get_input(conn->client)) == 0) {
        px_conn_close(conn);
        return;
    }
    conn->lingering = true;
    set_read_lowmark(conn);
    shutdown(bufferevent_getfd(conn->client), SHUT_WR);
    bufferevent_enable(conn->client, EV_READ);
    px_conn_arm_timer(conn, 2000);
}

void px_conn_resume_client(struct px_conn *conn)
{
    if (conn->closing || conn->req_complete || !conn->read_paused)
        return;
    conn->read_paused = false;
    bufferevent_enable(conn->client, EV_READ);
    client_feed(conn);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct px_conn *conn = arg;
    if (conn->closing)
        return;
    if (conn->lingering) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    px_io_read_more(bev, PX_HIGH_WATERMARK);
    client_feed(conn);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct px_conn *conn = arg;
    if (conn->closing)
        return;
    if (conn->state == PX_STATE_DRAIN) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            drain_done(conn);
        return;
    }
    if (conn->state == PX_STATE_STREAM_BODY || conn->state == PX_STATE_READ_RESP_HEAD)
        px_upstream_resume_read(conn);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct px_conn *conn = arg;
    if (conn->closing)
        return;
    if (conn->lingering || conn->state == PX_STATE_DRAIN) {
        px_conn_close(conn);
        return;
    }
    if (conn->state == PX_STATE_READ_HEAD && !conn->head_started && conn->head.len == 0 &&
        conn->url_len == 0) {
        /* closed or reset between requests: normal end of a keep-alive connection */
        px_conn_close(conn);
        return;
    }
    if ((what & BEV_EVENT_EOF) && conn->req_complete) {
        /* Half-close after a complete request: still answer (RFC 9112 9.6), then close. A
         * client that is really gone shows up as a write error. */
        conn->keep_alive = false;
        return;
    }
    int e = EVUTIL_SOCKET_ERROR();
    px_conn_fail(conn, PX_ERR_CLIENT_GONE, "client %s",
                 (what & BEV_EVENT_EOF) ? "closed the connection"
                                        : evutil_socket_error_to_string(e));
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_conn *conn = arg;
    if (conn->closing)
        return;
    const struct px_config *cfg = conn->w->cfg;
    switch (conn->state) {
    case PX_STATE_READ_HEAD:
        if (!conn->head_started) {
            px_conn_close(conn); /* idle keep-alive connection */
            return;
        }
        px_conn_fail(conn, PX_ERR_CLIENT_TIMEOUT, "request head not received within %ums",
                     cfg->client_header_timeout_ms);
        return;
    case PX_STATE_READ_BODY:
    case PX_STATE_WAIT_CREDS: {
        /* Bytes waiting below the read low watermark are progress too. */
        size_t in = evbuffer_get_length(bufferevent_get_input(conn->client));
        if (in > conn->stall_in_len) {
            conn->stall_in_len = in;
            px_conn_arm_timer(conn, cfg->client_idle_timeout_ms);
            return;
        }
        px_conn_fail(conn, PX_ERR_CLIENT_TIMEOUT, "request body stalled for %ums",
                     cfg->client_idle_timeout_ms);
        return;
    }
    case PX_STATE_CONNECT_UP:
        px_conn_fail(conn, PX_ERR_UPSTREAM_TIMEOUT, "upstream %s:%u did not connect within %ums",
                     conn->connect_host, conn->connect_port, cfg->connect_timeout_ms);
        return;
    case PX_STATE_SEND_REQ:
        px_conn_fail(conn, PX_ERR_UPSTREAM_TIMEOUT, "request upload to %s stalled for %ums",
                     conn->up_host, cfg->upstream_idle_timeout_ms);
        return;
    case PX_STATE_READ_RESP_HEAD:
        px_conn_fail(conn, PX_ERR_UPSTREAM_TIMEOUT, "upstream %s sent no response within %ums",
                     conn->up_host, cfg->first_byte_timeout_ms);
        return;
    case PX_STATE_STREAM_BODY: {
        /* Upstream reading may be paused because the client reads slowly (backpressure):
         * while the client keeps draining its output, that is progress, not a stall. */
        size_t out = evbuffer_get_length(bufferevent_get_output(conn->client));
        if (out > 0 && (conn->stall_out_len == 0 || out < conn->stall_out_len)) {
            conn->stall_out_len = out;
            px_conn_arm_timer(conn, cfg->upstream_idle_timeout_ms);
            return;
        }
        if (out > 0)
            px_conn_fail(conn, PX_ERR_CLIENT_GONE, "client stopped reading for %ums",
                         cfg->upstream_idle_timeout_ms);
        else
            px_conn_fail(conn, PX_ERR_UPSTREAM_TIMEOUT, "upstream %s stalled for %ums",
                         conn->up_host, cfg->upstream_idle_timeout_ms);
        return;
    }
    case PX_STATE_DRAIN:
    case PX_STATE_CLOSED:
        px_conn_close(conn);
        return;
    }
}

/* ---- lifecycle ---- */

void px_conn_accept(struct px_worker *w, evutil_socket_t fd, const struct sockaddr *sa, int len)
{
    (void)len;
    struct px_conn *conn = px_xmalloc(sizeof(*conn));
    conn->w = w;
    conn->spool_fd = -1;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
        port = ntohs(in6->sin6_port);
    }
    snprintf(conn->peer, sizeof(conn->peer), "%s:%u", addr, port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    conn->client = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    conn->timer = evtimer_new(w->base, timer_cb, conn);
    conn->free_ev = event_new(w->base, -1, 0, free_cb, conn);
    conn->body = evbuffer_new();
    if (conn->client == NULL || conn->timer == NULL || conn->free_ev == NULL ||
        conn->body == NULL) {
        px_log(PX_LOG_ERROR, "out of resources accepting %s", conn->peer);
        if (conn->client == NULL)
            evutil_closesocket(fd);
        conn->closing = true;
        free_cb(-1, 0, conn);
        return;
    }
    const struct px_config *cfg = w->cfg;
    conn->head_mem = px_xmalloc(cfg->max_header_bytes);
    sig_buf_init(&conn->head, conn->head_mem, cfg->max_header_bytes);
    conn->hdrs = px_xmalloc(cfg->max_headers * sizeof(*conn->hdrs));
    llhttp_init(&conn->req_parser, HTTP_REQUEST, &req_settings);
    conn->req_parser.data = conn;

    conn->next = w->conns;
    if (w->conns)
        w->conns->prev = conn;
    w->conns = conn;
    conn->counted = true;
    /* At the limit, stop accepting: further connections wait in the kernel's backlog (or go
     * to another worker's listener) instead of each costing buffers here. */
    if (++w->conn_count >= cfg->max_connections && !w->accept_paused && w->listener != NULL) {
        evconnlistener_disable(w->listener);
        w->accept_paused = true;
    }

    bufferevent_setcb(conn->client, client_read_cb, client_write_cb, client_event_cb, conn);
    bufferevent_setwatermark(conn->client, EV_WRITE, PX_LOW_WATERMARK, 0);
    bufferevent_setwatermark(conn->client, EV_READ, 0, PX_HIGH_WATERMARK);
    /* libevent reads and writes 16 KiB per call by default: large bodies would cost a
     * syscall and a callback per 16 KiB. */
    bufferevent_set_max_single_read(conn->client, PX_IO_BYTES);
    bufferevent_set_max_single_write(conn->client, PX_IO_BYTES);
    bufferevent_enable(conn->client, EV_READ | EV_WRITE);
    conn->client_io = px_io_write_first(conn->client);
    conn->state = PX_STATE_READ_HEAD;
    conn->start_ms = px_now_ms();
    px_conn_arm_timer(conn, cfg->client_idle_timeout_ms);
}

void px_conn_close(struct px_conn *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    if (conn->state != PX_STATE_CLOSED)
        conn->state = PX_STATE_CLOSED;
    if (conn->up != NULL)
        px_upstream_release(conn, false);
    if (conn->client != NULL)
        bufferevent_disable(conn->client, EV_READ | EV_WRITE);
    evtimer_del(conn->timer);
    /* Freed from the loop: callers up the stack may still touch conn after this returns. */
    if (!conn->creds_pending)
        event_active(conn->free_ev, 0, 0);
}

static void free_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_conn *conn = arg;
    if (conn->creds_pending)
        return; /* creds_cb frees once the provider has answered */
    struct px_worker *w = conn->w;
    if (conn->prev)
        conn->prev->next = conn->next;
    else if (w->conns == conn)
        w->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    if (conn->counted) {
        conn->counted = false;
        w->conn_count--;
        if (w->accept_paused && !w->stopping && w->listener != NULL &&
            w->conn_count < w->cfg->max_connections) {
            evconnlistener_enable(w->listener);
            w->accept_paused = false;
        }
    }
    px_io_free(conn->client_io);
    if (conn->client)
        bufferevent_free(conn->client);
    conn->client = NULL;
    if (conn->timer)
        event_free(conn->timer);
    if (conn->free_ev)
        event_free(conn->free_ev);
    if (conn->body)
        evbuffer_free(conn->body);
    px_signed_head_wipe(conn->up_head);
    signed_head_unref(conn->up_head);
    conn->up_head = NULL;
    if (conn->head_secrets)
        OPENSSL_cleanse(conn->head_mem, conn->head.len);
    if (conn->spool_fd >= 0)
        close(conn->spool_fd);
    cred_unref(conn->creds);
    sig_chunk_signer_cleanup(&conn->chunk_signer);
    free(conn->head_mem);
    free(conn->hdrs);
    free(conn->resp_mem);
    free(conn->resp_hdrs);
    free(conn);
}
