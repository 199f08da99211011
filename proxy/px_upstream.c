/*
 * px_upstream.c: upstream connections (TLS or plain, async DNS, keep-alive pool), sending
 * the signed request, and streaming the parsed response back to the client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "px_io.h"
#include "px_proxy.h"

#define PX_MAX_RESP_HEADERS 256
#define PX_MAX_IDLE_PER_WORKER 256

int px_ssl_upstream_index = -1;

static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);
static void start_connection(struct px_conn *conn, bool fresh);

static void up_free(struct px_upstream *up)
{
    if (up == NULL)
        return;
    if (up->ssl != NULL) {
        SSL_set_ex_data(up->ssl, px_ssl_upstream_index, NULL);
        /* Mark the session as shut down cleanly: OpenSSL otherwise flags the session of a
         * connection freed mid-stream as not resumable. We never send close_notify on
         * pooled connections; the HTTP framing already says where responses end. */
        SSL_set_quiet_shutdown(up->ssl, 1);
        SSL_shutdown(up->ssl);
    }
    px_io_free(up->io);
    if (up->bev != NULL)
        bufferevent_free(up->bev); /* BEV_OPT_CLOSE_ON_FREE: closes the socket, frees SSL */
    up->bev = NULL;
    free(up);
}

static void pool_unlink(struct px_worker *w, struct px_upstream *up)
{
    for (struct px_upstream **pp = &w->idle; *pp; pp = &(*pp)->next_idle) {
        if (*pp == up) {
            *pp = up->next_idle;
            up->next_idle = NULL;
            return;
        }
    }
}

void px_upstream_pool_free(struct px_worker *w)
{
    while (w->idle != NULL) {
        struct px_upstream *up = w->idle;
        w->idle = up->next_idle;
        up_free(up);
    }
}

void px_upstream_release(struct px_conn *conn, bool reusable)
{
    struct px_upstream *up = conn->up;
    if (up == NULL)
        return;
    conn->up = NULL;
    up->conn = NULL;
    struct px_worker *w = up->w;
    size_t idle_count = 0;
    for (struct px_upstream *i = w->idle; i; i = i->next_idle)
        idle_count++;
    if (!reusable || w->stopping || idle_count >= PX_MAX_IDLE_PER_WORKER ||
        evbuffer_get_length(bufferevent_get_input(up->bev)) != 0 ||
        evbuffer_get_length(bufferevent_get_output(up->bev)) != 0) {
        up_free(up);
        return;
    }
    /* Idle in the pool: a read timeout closes it after --transport.idle-conn-timeout, and EOF
     * or stray bytes from the server close it at once. */
    /* 0 means no idle limit, as in Go's http.Transport (aws-sigv4-proxy's flag). */
    uint32_t ms = w->cfg->idle_conn_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    bufferevent_set_timeouts(up->bev, ms != 0 ? &tv : NULL, NULL);
    bufferevent_enable(up->bev, EV_READ);
    up->next_idle = w->idle;
    w->idle = up;
}

int px_upstream_new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct px_upstream *up = SSL_get_ex_data(ssl, px_ssl_upstream_index);
    if (up == NULL)
        return 0;
    /* Runs on the worker thread doing the handshake: the worker's cache needs no lock. */
    struct px_worker *w = up->w;
    struct px_tls_session *slot = NULL;
    for (unsigned i = 0; i < PX_TLS_SESSIONS && slot == NULL; i++)
        if (w->tls_sessions[i].sess != NULL && strcmp(w->tls_sessions[i].key, up->key) == 0)
            slot = &w->tls_sessions[i];
    if (slot == NULL)
        slot = &w->tls_sessions[w->tls_next++ % PX_TLS_SESSIONS];
    SSL_SESSION_free(slot->sess);
    snprintf(slot->key, sizeof(slot->key), "%s", up->key);
    slot->sess = sess;
    px_log(PX_LOG_DEBUG, "TLS session stored for %s", up->key);
    return 1; /* we keep the reference */
}

void px_upstream_tls_sessions_free(struct px_worker *w)
{
    for (unsigned i = 0; i < PX_TLS_SESSIONS; i++) {
        SSL_SESSION_free(w->tls_sessions[i].sess);
        w->tls_sessions[i].sess = NULL;
    }
}

static void make_key(const struct px_conn *conn, char *key, size_t n)
{
    /* Built by hand: this runs for every request, and snprintf showed in profiles. */
    char port1[PX_DEC_MAX + 1], port2[PX_DEC_MAX + 1];
    port1[px_fmt_dec(port1, conn->up_port)] = '\0';
    port2[px_fmt_dec(port2, conn->connect_port)] = '\0';
    const char *parts[] = {conn->w->cfg->upstream_tls ? "1" : "0", conn->up_host, port1,
                           conn->connect_host, port2};
    size_t len = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        for (const char *c = parts[i]; *c != '\0' && len + 1 < n; c++)
            key[len++] = *c;
        if (i + 1 < sizeof(parts) / sizeof(parts[0]) && len + 1 < n)
            key[len++] = '|';
    }
    key[len] = '\0';
}

/* Copies an IP literal without URL brackets into out; false for DNS names. */
static bool ip_literal(const char *host, char *out, size_t cap)
{
    unsigned char buf[16];
    size_t n = sig_slice_from_cstr(host).len;
    size_t start = 0;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        start = 1;
        n -= 2;
    }
    if (n + 1 > cap)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = host[start + i];
    out[n] = '\0';
    return inet_pton(AF_INET, out, buf) == 1 || inet_pton(AF_INET6, out, buf) == 1;
}

/* ---- response parsing ---- */

static struct px_conn *rconn(llhttp_t *p)
{
    return p->data;
}

static int resp_refuse(struct px_conn *conn, const char *why)
{
    snprintf(conn->fail_reason, sizeof(conn->fail_reason), "%s", why);
    return -1;
}

static int resp_append(struct px_conn *conn, const char *at, size_t len)
{
    if (sig_buf_append(&conn->resp_head, at, len) != SIG_OK)
        return resp_refuse(conn, "upstream response head exceeds --max-response-header-bytes");
    return 0;
}

static int r_on_message_begin(llhttp_t *p)
{
    struct px_conn *conn = rconn(p);
    conn->resp_head.len = 0;
    conn->resp_hdr_count = 0;
    conn->resp_in_value = false;
    conn->status_off = conn->status_len = 0;
    return 0;
}

static int r_on_status(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = rconn(p);
    if (conn->status_len == 0)
        conn->status_off = (uint32_t)conn->resp_head.len;
    conn->status_len += (uint32_t)len;
    return resp_append(conn, at, len);
}

static int r_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = rconn(p);
    if (conn->resp_in_value || conn->resp_hdr_count == 0) {
        if (conn->resp_hdr_count == PX_MAX_RESP_HEADERS)
            return resp_refuse(conn, "upstream response has too many headers");
        conn->resp_hdrs[conn->resp_hdr_count++] = (struct px_hdr){
            .name_off = (uint32_t)conn->resp_head.len, .value_off = (uint32_t)conn->resp_head.len};
        conn->resp_in_value = false;
    }
    conn->resp_hdrs[conn->resp_hdr_count - 1].name_len += (uint32_t)len;
    return resp_append(conn, at, len);
}

static int r_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = rconn(p);
    struct px_hdr *h = &conn->resp_hdrs[conn->resp_hdr_count - 1];
    if (!conn->resp_in_value) {
        conn->resp_in_value = true;
        h->value_off = (uint32_t)conn->resp_head.len;
    }
    h->value_len += (uint32_t)len;
    return resp_append(conn, at, len);
}

static struct sig_slice rslice(const struct px_conn *conn, uint32_t off, uint32_t len)
{
    return (struct sig_slice){conn->resp_head.ptr + off, len};
}

static bool is_resp_hop_by_hop(struct sig_slice name)
{
    static const struct sig_slice hop[] = {SIG_SLICE_LIT("connection"),
                                           SIG_SLICE_LIT("keep-alive"),
                                           SIG_SLICE_LIT("proxy-connection"),
                                           SIG_SLICE_LIT("transfer-encoding"),
                                           SIG_SLICE_LIT("te"),
                                           SIG_SLICE_LIT("trailer"),
                                           SIG_SLICE_LIT("upgrade"),
                                           SIG_SLICE_LIT("content-length")};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (name.len == hop[i].len && sig_slice_eq_nocase(name, hop[i]))
            return true;
    return false;
}

/* Writes into space reserved beforehand for all of it: the response head is one reservation
 * and one commit on the client's output, not an evbuffer_add per piece. */
struct head_out {
    char *p;
};

static void put(struct head_out *h, const void *s, size_t n)
{
    memcpy(h->p, s, n);
    h->p += n;
}

#define PUT_LIT(h, s) put((h), (s), sizeof(s) - 1)

static void put_dec(struct head_out *h, uint64_t v)
{
    h->p += px_fmt_dec(h->p, v);
}

/* The upstream's Content-Length header, and the Connection tokens naming more hop-by-hop
 * headers (RFC 9110 7.6.1). */
static const struct px_hdr *scan_resp_headers(const struct px_conn *conn,
                                              struct sig_slice *connection)
{
    const struct px_hdr *cl = NULL;
    *connection = (struct sig_slice){0};
    for (size_t i = 0; i < conn->resp_hdr_count; i++) {
        const struct px_hdr *h = &conn->resp_hdrs[i];
        struct sig_slice name = rslice(conn, h->name_off, h->name_len);
        if (name.len == 10 && sig_slice_eq_nocase(name, SIG_SLICE_LIT("connection")))
            *connection = rslice(conn, h->value_off, h->value_len);
        else if (name.len == 14 && sig_slice_eq_nocase(name, SIG_SLICE_LIT("content-length")))
            cl = h;
    }
    return cl;
}

/* The body framing towards the client; sets resp_chunked_out / resp_close_delimited. */
static void put_framing(struct px_conn *conn, llhttp_t *p, const struct px_hdr *cl,
                        struct head_out *h)
{
    int status = conn->status;
    if (conn->is_head || status == 204 || status == 304) {
        if (cl != NULL && status != 204) {
            PUT_LIT(h, "Content-Length: ");
            put(h, conn->resp_head.ptr + cl->value_off, cl->value_len);
            PUT_LIT(h, "\r\n");
        }
    } else if (p->flags & F_CONTENT_LENGTH) {
        PUT_LIT(h, "Content-Length: ");
        put_dec(h, p->content_length);
        PUT_LIT(h, "\r\n");
    } else if (conn->http_minor >= 1) {
        /* chunked or close-delimited upstream: chunked to an HTTP/1.1 client, so the client
         * connection can stay open and every byte is flushed as it arrives */
        PUT_LIT(h, "Transfer-Encoding: chunked\r\n");
        conn->resp_chunked_out = true;
    } else {
        conn->resp_close_delimited = true; /* HTTP/1.0 client: end of body is the close */
    }
}

static int r_on_headers_complete(llhttp_t *p)
{
    struct px_conn *conn = rconn(p);
    int status = p->status_code;
    if (status < 200)
        return 0; /* interim (e.g. 100 Continue): not forwarded, the final answer follows */
    conn->status = status;
    struct sig_slice text = rslice(conn, conn->status_off, conn->status_len);
    if (text.len == 0)
        text = sig_slice_from_cstr(px_status_reason(status));
    /* Room for the status line (32 bytes besides its text), each header as received (name,
     * value, ": ", CRLF) and the lines added here (framing, Connection, blank line: < 128). */
    size_t room = 32 + text.len + conn->resp_head.len + 4 * conn->resp_hdr_count + 128;
    struct evbuffer *out = bufferevent_get_output(conn->client);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)room, &v, 1) < 1)
        return resp_refuse(conn, "out of memory for the response head");
    struct head_out h = {v.iov_base};
    PUT_LIT(&h, "HTTP/1.1 ");
    put_dec(&h, (uint64_t)status);
    PUT_LIT(&h, " ");
    put(&h, text.ptr, text.len);
    PUT_LIT(&h, "\r\n");
    struct sig_slice connection;
    const struct px_hdr *cl = scan_resp_headers(conn, &connection);
    for (size_t i = 0; i < conn->resp_hdr_count; i++) {
        const struct px_hdr *hd = &conn->resp_hdrs[i];
        struct sig_slice name = rslice(conn, hd->name_off, hd->name_len);
        if (is_resp_hop_by_hop(name) || (connection.len != 0 && px_list_has(connection, name)))
            continue;
        put(&h, name.ptr, name.len);
        PUT_LIT(&h, ": ");
        put(&h, conn->resp_head.ptr + hd->value_off, hd->value_len);
        PUT_LIT(&h, "\r\n");
    }
    put_framing(conn, p, cl, &h);
    bool keep =
        conn->keep_alive && conn->req_complete && !conn->resp_close_delimited && !conn->w->stopping;
    if (!keep)
        PUT_LIT(&h, "Connection: close\r\n");
    else if (conn->http_minor == 0)
        PUT_LIT(&h, "Connection: keep-alive\r\n");
    PUT_LIT(&h, "\r\n");
    v.iov_len = (size_t)(h.p - (char *)v.iov_base);
    evbuffer_commit_space(out, &v, 1);
    conn->bytes_out += v.iov_len;
    conn->resp_head_sent = true;
    px_conn_set_state(conn, PX_STATE_STREAM_BODY);
    px_conn_arm_timer(conn, conn->w->cfg->upstream_idle_timeout_ms);
    /* A response to HEAD has no body whatever its headers say (RFC 9110 9.3.2). */
    return conn->is_head ? 1 : 0;
}

static int r_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = rconn(p);
    if (conn->resp_chunked_out) {
        char size[PX_HEX_MAX + 2];
        size_t n = px_fmt_hex(size, len);
        size[n++] = '\r';
        size[n++] = '\n';
        px_conn_client_write(conn, size, n);
        px_conn_client_write(conn, at, len);
        px_conn_client_write(conn, "\r\n", 2);
    } else {
        px_conn_client_write(conn, at, len);
    }
    return 0;
}

static int r_on_message_complete(llhttp_t *p)
{
    struct px_conn *conn = rconn(p);
    if (p->status_code < 200)
        return 0;
    conn->resp_complete = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t resp_settings = {
    .on_message_begin = r_on_message_begin,
    .on_status = r_on_status,
    .on_header_field = r_on_header_field,
    .on_header_value = r_on_header_value,
    .on_headers_complete = r_on_headers_complete,
    .on_body = r_on_body,
    .on_message_complete = r_on_message_complete,
};

static void response_complete(struct px_conn *conn)
{
    if (conn->resp_chunked_out)
        px_conn_client_write(conn, "0\r\n\r\n", 5);
    bool reusable = llhttp_should_keep_alive(&conn->resp_parser) && conn->req_body_sent;
    px_upstream_release(conn, reusable);
    px_conn_response_done(conn);
}

static void fail_upstream_protocol(struct px_conn *conn, const char *what)
{
    px_conn_fail(conn, PX_ERR_UPSTREAM_PROTOCOL, "upstream %s sent a malformed response: %s",
                 conn->up_host, what);
}

static void finish_at_eof(struct px_conn *conn);

static void feed_response(struct px_conn *conn)
{
    struct evbuffer *in = bufferevent_get_input(conn->up->bev);
    while (!conn->closing && conn->up != NULL && !conn->resp_complete) {
        struct evbuffer_iovec v;
        if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        conn->resp_started = true;
        const char *p = v.iov_base;
        enum llhttp_errno e = llhttp_execute(&conn->resp_parser, p, v.iov_len);
        size_t used = v.iov_len;
        if (e == HPE_PAUSED)
            used = (size_t)(llhttp_get_error_pos(&conn->resp_parser) - p);
        else if (e != HPE_OK) {
            fail_upstream_protocol(conn, conn->fail_reason[0]
                                             ? conn->fail_reason
                                             : llhttp_get_error_reason(&conn->resp_parser));
            return;
        }
        evbuffer_drain(in, used);
        if (conn->resp_complete) {
            response_complete(conn);
            return;
        }
        if (evbuffer_get_length(bufferevent_get_output(conn->client)) > PX_HIGH_WATERMARK) {
            /* Backpressure: the client reads slower than the upstream sends. */
            bufferevent_disable(conn->up->bev, EV_READ);
            return;
        }
    }
}

/*
 * A close-delimited body ended by a TLS close without close_notify. The client must not take
 * it for complete: an HTTP/1.1 client (re-chunked) gets no last chunk, and an HTTP/1.0 client,
 * whose body also ends at the close, gets a reset (SO_LINGER 0) instead of a clean FIN.
 */
static void truncated_at_eof(struct px_conn *conn)
{
    if (conn->resp_close_delimited && conn->client != NULL) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        int fd = bufferevent_getfd(conn->client);
        if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
            px_log(PX_LOG_DEBUG, "%s: SO_LINGER: %s", conn->peer, strerror(errno));
    }
    px_conn_fail(conn, PX_ERR_UPSTREAM_PROTOCOL,
                 "upstream %s closed TLS without close_notify mid-response: body may be truncated",
                 conn->up_host);
}

/*
 * The upstream closed (conn->resp_up_eof). Whatever it sent before closing may still wait in
 * the input buffer, held back by client backpressure: the end of the response is decided only
 * once all of it has gone through the parser, so a close-delimited body loses no bytes.
 */
static void finish_at_eof(struct px_conn *conn)
{
    feed_response(conn);
    if (conn->closing || conn->up == NULL || conn->resp_complete)
        return;
    if (evbuffer_get_length(bufferevent_get_input(conn->up->bev)) != 0)
        return; /* paused for backpressure; px_upstream_resume_read comes back here */
    /* A close-delimited body completes here (on_message_complete pauses, so llhttp_finish
     * then returns HPE_PAUSED); any other framing cut short is an error. */
    (void)llhttp_finish(&conn->resp_parser);
    if (conn->resp_complete && conn->up->ssl != NULL && !conn->up->close_notify) {
        /* Close-delimited over TLS: only close_notify proves the end of the body; a bare TCP
         * close may be a cut connection or a truncation attack (RFC 8446 6.1, RFC 9112 9.8). */
        truncated_at_eof(conn);
        return;
    }
    if (conn->resp_complete) {
        response_complete(conn);
        return;
    }
    px_conn_fail(conn, PX_ERR_UPSTREAM_PROTOCOL, "upstream %s closed the connection mid-response",
                 conn->up_host);
}

void px_upstream_resume_read(struct px_conn *conn)
{
    if (conn->up == NULL || conn->resp_complete)
        return;
    if (conn->resp_up_eof) {
        /* Nothing more can be read: only the buffered rest is left to parse. */
        finish_at_eof(conn);
        return;
    }
    bufferevent_enable(conn->up->bev, EV_READ);
    feed_response(conn);
}

/* ---- sending the request ---- */

static void request_sent(struct px_conn *conn)
{
    conn->req_body_sent = true;
    if (conn->state == PX_STATE_SEND_REQ) {
        px_conn_set_state(conn, PX_STATE_READ_RESP_HEAD);
        px_conn_arm_timer(conn, conn->w->cfg->first_byte_timeout_ms);
    }
}

/*
 * aws-chunked. The body's chunks are hashed on the worker's hasher thread (px_hash.c) while
 * more arrive; back on the loop, each is signed in order (one HMAC over its hash, chaining
 * from the previous signature) and its bytes are moved, not copied, upstream between its
 * header and CRLF. The last data chunk is whatever remains of the Content-Length; then the
 * signed zero-length chunk ends the body.
 */

/* Frames one chunk: header with its signature, the bytes moved from src (none for the final
 * chunk, which ends with the empty trailer section instead), CRLF. */
static bool frame_chunk(struct px_conn *conn, struct evbuffer *out, size_t n,
                        const uint8_t hash[SIG_SHA256_LEN], struct evbuffer *src)
{
    char sig[SIG_SHA256_HEX_LEN + 1];
    uint8_t hdr_mem[SIG_CHUNK_HEADER_MAX + 2];
    struct sig_buf hdr;
    sig_buf_init(&hdr, hdr_mem, sizeof(hdr_mem));
    enum sig_err e = sig_chunk_sign(&conn->chunk_signer, n, hash, sig);
    if (e == SIG_OK)
        e = sig_chunk_header(&hdr, n, (struct sig_slice){(const uint8_t *)sig, 64});
    if (e == SIG_OK && n == 0)
        e = sig_chunked_trailers(&hdr, SIG_CHUNKED_SIGNED, NULL, 0, (struct sig_slice){0});
    if (e != SIG_OK) {
        px_conn_fail(conn, PX_ERR_INTERNAL, "aws-chunked signing failed: %s", sig_err_str(e));
        return false;
    }
    evbuffer_add(out, hdr.ptr, hdr.len);
    if (n != 0) {
        evbuffer_remove_buffer(src, out, n);
        evbuffer_add(out, "\r\n", 2);
    }
    conn->chunked_sent += n;
    return true;
}

/* Frames the chunks whose hashes are back, oldest first. */
static bool frame_hashed(struct px_conn *conn, struct evbuffer *out)
{
    struct px_hash_job *job;
    while ((job = px_hash_take_done(conn)) != NULL) {
        bool ok = true;
        for (unsigned i = 0; ok && i < job->count; i++)
            ok = frame_chunk(conn, out, job->lens[i], job->hash[i], job->data);
        px_hash_job_put(conn->w, job);
        if (!ok)
            return false;
    }
    return true;
}

/* Moves the next complete chunks from conn->body into jobs for the hasher: at most
 * PX_HASH_DEPTH jobs out, and none while the upstream output is above the body window. */
static bool submit_chunks(struct px_conn *conn, struct evbuffer *out)
{
    size_t window = px_conn_body_window(conn);
    while (conn->hq_count < PX_HASH_DEPTH && evbuffer_get_length(out) < window) {
        uint64_t left = conn->content_length - conn->chunked_sent - conn->hq_bytes;
        size_t have = evbuffer_get_length(conn->body);
        size_t lens[PX_HASH_BATCH];
        unsigned count = 0;
        size_t take = 0;
        while (count < PX_HASH_BATCH && left > 0) {
            size_t n = left < PX_AWS_CHUNK_BYTES ? (size_t)left : PX_AWS_CHUNK_BYTES;
            if (have < take + n)
                break;
            lens[count++] = n;
            take += n;
            left -= n;
        }
        if (count == 0)
            return true;
        struct px_hash_job *job = px_hash_job_get(conn->w);
        if (job == NULL) {
            px_conn_fail(conn, PX_ERR_INTERNAL, "out of memory hashing an aws-chunked body");
            return false;
        }
        for (unsigned i = 0; i < count; i++)
            job->lens[i] = lens[i];
        job->count = count;
        evbuffer_remove_buffer(conn->body, job->data, take);
        if (!px_hash_submit(conn, job)) {
            px_conn_fail(conn, PX_ERR_INTERNAL, "cannot hash the aws-chunked body");
            return false;
        }
    }
    return true;
}

static void pump_aws_chunked(struct px_conn *conn, struct evbuffer *out)
{
    if (!frame_hashed(conn, out) || !submit_chunks(conn, out))
        return;
    if (conn->chunked_sent == conn->content_length && conn->hq_count == 0 &&
        !conn->chunked_final_sent) {
        uint8_t empty_sha[SIG_SHA256_LEN];
        sig_sha256("", 0, empty_sha);
        if (!frame_chunk(conn, out, 0, empty_sha, NULL))
            return;
        conn->chunked_final_sent = true;
        sig_chunk_signer_cleanup(&conn->chunk_signer);
    }
    if (conn->chunked_final_sent && conn->req_complete)
        request_sent(conn);
    else if (evbuffer_get_length(out) <= px_conn_body_window(conn) / 2)
        px_conn_resume_client(conn);
}

void px_upstream_pump_body(struct px_conn *conn)
{
    if (conn->up == NULL || !conn->req_head_sent || conn->req_body_sent || conn->closing)
        return;
    struct evbuffer *out = bufferevent_get_output(conn->up->bev);
    if (conn->body_mode == PX_BODY_STREAM) {
        if (evbuffer_get_length(conn->body) != 0)
            evbuffer_add_buffer(out, conn->body);
        if (conn->req_complete) {
            request_sent(conn);
        } else if (evbuffer_get_length(out) <= PX_LOW_WATERMARK) {
            px_conn_resume_client(conn);
        }
        return;
    }
    if (conn->body_mode == PX_BODY_AWS_CHUNKED) {
        pump_aws_chunked(conn, out);
        return;
    }
    /* Spooled tail: read the file in pieces as the upstream drains. pread(2) on a regular
     * file does not wait for a peer (the same argument as for the spool writes). */
    while (conn->spool_sent < conn->spool_len && evbuffer_get_length(out) < PX_HIGH_WATERMARK) {
        uint64_t left = conn->spool_len - conn->spool_sent;
        size_t want = left < PX_SPOOL_READ_BYTES ? (size_t)left : PX_SPOOL_READ_BYTES;
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) < 1) {
            px_conn_fail(conn, PX_ERR_INTERNAL, "out of buffer space sending the body");
            return;
        }
        ssize_t r = pread(conn->spool_fd, v.iov_base, want, (off_t)conn->spool_sent);
        if (r <= 0) {
            px_log(PX_LOG_ERROR, "spool read failed: %s", r < 0 ? strerror(errno) : "short file");
            px_conn_fail(conn, PX_ERR_SPOOL, "spool file read failed");
            return;
        }
        v.iov_len = (size_t)r;
        evbuffer_commit_space(out, &v, 1);
        conn->spool_sent += (uint64_t)r;
    }
    if (conn->spool_sent == conn->spool_len)
        request_sent(conn);
}

/* Appends a copy of src to dst, a few segments at a time (no allocation but dst's chains). */
static void copy_evbuffer(struct evbuffer *dst, struct evbuffer *src)
{
    struct evbuffer_ptr pos;
    if (evbuffer_ptr_set(src, &pos, 0, EVBUFFER_PTR_SET) != 0)
        return;
    size_t left = evbuffer_get_length(src);
    while (left > 0) {
        struct evbuffer_iovec v[16];
        int n = evbuffer_peek(src, (ev_ssize_t)left, &pos, v, 16);
        if (n <= 0)
            return;
        if (n > 16)
            n = 16;
        size_t copied = 0;
        for (int i = 0; i < n; i++) {
            size_t l = v[i].iov_len < left - copied ? v[i].iov_len : left - copied;
            evbuffer_add(dst, v[i].iov_base, l);
            copied += l;
        }
        left -= copied;
        if (left > 0 && evbuffer_ptr_set(src, &pos, copied, EVBUFFER_PTR_ADD) != 0)
            return;
    }
}

static void on_connected(struct px_conn *conn)
{
    const struct px_config *cfg = conn->w->cfg;
    struct bufferevent *bev = conn->up->bev;
    struct evbuffer *out = bufferevent_get_output(bev);
    px_conn_set_state(conn, PX_STATE_SEND_REQ);
    px_conn_arm_timer(conn, cfg->upstream_idle_timeout_ms);
    if (conn->resp_mem == NULL) {
        conn->resp_mem = px_xmalloc(cfg->max_response_header_bytes);
        conn->resp_hdrs = px_xmalloc(PX_MAX_RESP_HEADERS * sizeof(*conn->resp_hdrs));
    }
    sig_buf_init(&conn->resp_head, conn->resp_mem, cfg->max_response_header_bytes);
    llhttp_init(&conn->resp_parser, HTTP_RESPONSE, &resp_settings);
    conn->resp_parser.data = conn;
    conn->resp_started = conn->resp_complete = conn->resp_up_eof = false;
    conn->fail_reason[0] = '\0';

    /* The head goes by reference (it holds secrets: see struct px_signed_head), an in-memory
     * body as a copy: neither is moved, so one retry on a fresh connection can replay them. */
    if (!px_signed_head_queue(conn->up_head, out)) {
        px_conn_fail(conn, PX_ERR_INTERNAL, "out of buffer space sending the request head");
        return;
    }
    conn->req_head_sent = true;
    conn->req_body_sent = false;
    /* The body is pumped again once the output drains to half this request's window. */
    bufferevent_setwatermark(bev, EV_WRITE, px_conn_body_window(conn) / 2, 0);
    struct px_upstream *up = conn->up;
    if (conn->body_mode == PX_BODY_NONE) {
        request_sent(conn);
    } else {
        if (conn->body_mode == PX_BODY_BUFFER) {
            copy_evbuffer(out, conn->body);
            conn->spool_sent = 0;
        }
        px_upstream_pump_body(conn);
    }
    if (!conn->closing && conn->up == up && up->ssl != NULL)
        px_io_tls_write_now(up->bev);
}

/* ---- connection events ---- */

static void describe_connect_error(struct px_conn *conn, short what, char *why, size_t n,
                                   enum px_err *err)
{
    struct px_upstream *up = conn->up;
    *err = PX_ERR_UPSTREAM_CONNECT;
    int dns_err = bufferevent_socket_get_dns_error(up->bev);
    if (dns_err != 0) {
        snprintf(why, n, "cannot resolve upstream %s: %s", conn->connect_host,
                 evutil_gai_strerror(dns_err));
        return;
    }
    int se = EVUTIL_SOCKET_ERROR();
    if (!(what & BEV_EVENT_EOF) && se != 0 && se != EAGAIN && se != EINPROGRESS &&
        (up->ssl == NULL || se == ECONNREFUSED || se == ETIMEDOUT || se == EHOSTUNREACH ||
         se == ENETUNREACH || se == ECONNRESET)) {
        snprintf(why, n, "cannot connect to upstream %s:%u: %s", conn->connect_host,
                 conn->connect_port, evutil_socket_error_to_string(se));
        return;
    }
    if (up->ssl != NULL) {
        long vr = SSL_get_verify_result(up->ssl);
        unsigned long e = 0, last = 0;
        while ((e = bufferevent_get_openssl_error(up->bev)) != 0)
            last = e;
        if (vr != X509_V_OK) {
            *err = PX_ERR_UPSTREAM_TLS;
            snprintf(why, n, "upstream TLS verification failed for %s: %s", conn->up_host,
                     X509_verify_cert_error_string(vr));
            return;
        }
        if (last == SSL_ERROR_SYSCALL && ERR_GET_LIB(last) == 0) {
            /* libevent reports a socket-level failure under TLS as SSL_ERROR_SYSCALL; the
             * errno is gone by now. */
            snprintf(why, n,
                     "cannot connect to upstream %s:%u: connection refused, reset or closed "
                     "before the TLS handshake completed",
                     conn->connect_host, conn->connect_port);
            return;
        }
        if (last != 0 && ERR_GET_LIB(last) == 0) {
            /* libevent's own code (SSL_get_error value) with OpenSSL's queue already gone */
            *err = PX_ERR_UPSTREAM_TLS;
            snprintf(why, n,
                     "upstream TLS handshake with %s failed: protocol error (is %s:%u "
                     "a TLS server?)",
                     conn->up_host, conn->connect_host, conn->connect_port);
            return;
        }
        if (last != 0) {
            *err = PX_ERR_UPSTREAM_TLS;
            char ebuf[160];
            ERR_error_string_n(last, ebuf, sizeof(ebuf));
            snprintf(why, n, "upstream TLS handshake with %s failed: %s", conn->up_host, ebuf);
            return;
        }
    }
    if (what & BEV_EVENT_EOF)
        snprintf(why, n, "upstream %s:%u closed the connection during %s", conn->connect_host,
                 conn->connect_port, up->ssl ? "the TLS handshake" : "connect");
    else
        snprintf(why, n, "cannot connect to upstream %s:%u: %s", conn->connect_host,
                 conn->connect_port, se ? evutil_socket_error_to_string(se) : "connection failed");
}

static void up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct px_upstream *up = arg;
    struct px_conn *conn = up->conn;
    if (conn == NULL) {
        /* Idle in the pool: closed by the server, stray bytes, or the idle timeout. */
        pool_unlink(up->w, up);
        up_free(up);
        return;
    }
    if (conn->closing)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        up->connected = true;
        px_io_connected(up->io);
        if (up->ssl != NULL)
            px_io_tls_reads(up->bev);
        /* The head and the body go out as separate writes; without TCP_NODELAY the second
         * waits for the peer's delayed ACK (~40 ms). */
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (up->ssl != NULL)
            px_log(PX_LOG_DEBUG, "TLS to %s: %s, %s", conn->up_host, SSL_get_version(up->ssl),
                   SSL_session_reused(up->ssl) ? "resumed" : "full handshake");
        on_connected(conn);
        return;
    }
    if (!up->connected) {
        char why[800];
        enum px_err err;
        describe_connect_error(conn, what, why, sizeof(why), &err);
        px_conn_fail(conn, err, "%s", why);
        return;
    }
    /* A pooled connection the server closed before answering: retry once on a fresh one if
     * the request can be replayed (RFC 9110 9.2.2: our requests are replayable only when we
     * still hold the whole body). */
    if (up->reused && !conn->resp_started && !conn->retried && conn->body_mode != PX_BODY_STREAM &&
        conn->body_mode != PX_BODY_AWS_CHUNKED) {
        conn->retried = true;
        px_log(PX_LOG_DEBUG, "pooled connection to %s closed before responding; retrying",
               conn->up_host);
        px_upstream_release(conn, false);
        px_conn_set_state(conn, PX_STATE_CONNECT_UP);
        start_connection(conn, true);
        return;
    }
    if ((what & BEV_EVENT_EOF) && conn->resp_started && !conn->resp_complete) {
        /* Drain what is buffered, then a close-delimited body ends here. */
        conn->resp_up_eof = true;
        bufferevent_disable(bev, EV_READ);
        finish_at_eof(conn);
        return;
    }
    unsigned long ssl_err = up->ssl ? bufferevent_get_openssl_error(up->bev) : 0;
    int se = EVUTIL_SOCKET_ERROR();
    px_conn_fail(conn, PX_ERR_UPSTREAM_PROTOCOL, "upstream %s %s before responding", conn->up_host,
                 (what & BEV_EVENT_EOF) ? "closed the connection"
                 : ssl_err              ? "failed (TLS error)"
                 : se                   ? evutil_socket_error_to_string(se)
                                        : "failed");
}

static void up_read_cb(struct bufferevent *bev, void *arg)
{
    struct px_upstream *up = arg;
    struct px_conn *conn = up->conn;
    if (conn == NULL) {
        /* Bytes on an idle connection: the server is not speaking HTTP/1.1 keep-alive. */
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        pool_unlink(up->w, up);
        up_free(up);
        return;
    }
    if (conn->closing)
        return;
    if (conn->state == PX_STATE_STREAM_BODY) {
        conn->stall_out_len = 0;
        px_conn_arm_timer(conn, conn->w->cfg->upstream_idle_timeout_ms);
    }
    feed_response(conn);
}

static void up_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct px_upstream *up = arg;
    struct px_conn *conn = up->conn;
    if (conn == NULL || conn->closing)
        return;
    if (conn->state == PX_STATE_SEND_REQ)
        px_conn_arm_timer(conn, conn->w->cfg->upstream_idle_timeout_ms);
    px_upstream_pump_body(conn);
}

/* Records the server's close_notify: OpenSSL reports every alert it reads here. */
static void tls_info_cb(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT || (ret & 0xff) != SSL_AD_CLOSE_NOTIFY)
        return;
    struct px_upstream *up = SSL_get_ex_data(ssl, px_ssl_upstream_index);
    if (up != NULL)
        up->close_notify = true;
}

static void start_connection(struct px_conn *conn, bool fresh)
{
    struct px_worker *w = conn->w;
    const struct px_config *cfg = w->cfg;
    px_conn_arm_timer(conn, cfg->connect_timeout_ms);
    char key[sizeof(((struct px_upstream *)0)->key)];
    make_key(conn, key, sizeof(key));
    if (!fresh) {
        for (struct px_upstream *up = w->idle; up; up = up->next_idle) {
            if (strcmp(up->key, key) != 0)
                continue;
            pool_unlink(w, up);
            bufferevent_set_timeouts(up->bev, NULL, NULL);
            /* EV_WRITE stays enabled from the connect on (it is never disabled): enabling it
             * again would arm it, for TLS too (bufferevent_openssl's start_writing), only for
             * the next pass to find nothing to write: an epoll_ctl pair per request. */
            bufferevent_enable(up->bev, EV_READ);
            up->conn = conn;
            up->reused = true;
            up->requests++;
            conn->up = up;
            on_connected(conn);
            return;
        }
    }
    struct px_upstream *up = px_xmalloc(sizeof(*up));
    up->w = w;
    snprintf(up->key, sizeof(up->key), "%s", key);
    /* No BEV_OPT_DEFER_CALLBACKS: the event callback must see the socket error (errno) of
     * the failed connect, which a deferred callback would have lost. */
    int opts = BEV_OPT_CLOSE_ON_FREE;
    if (cfg->upstream_tls) {
        SSL *ssl = SSL_new(w->ssl_ctx);
        if (ssl == NULL) {
            free(up);
            px_conn_fail(conn, PX_ERR_INTERNAL, "cannot create a TLS session");
            return;
        }
        char ip_text[64];
        bool ip = ip_literal(conn->up_host, ip_text, sizeof(ip_text));
        if (!ip)
            SSL_set_tlsext_host_name(ssl, conn->up_host); /* SNI; never for IP literals */
        if (cfg->verify_tls) {
            X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, ip_text)
                        : X509_VERIFY_PARAM_set1_host(param, conn->up_host, 0);
            if (ok != 1) {
                SSL_free(ssl);
                free(up);
                px_conn_fail(conn, PX_ERR_INTERNAL, "cannot set the TLS verification name");
                return;
            }
        }
        SSL_set_ex_data(ssl, px_ssl_upstream_index, up);
        for (unsigned i = 0; i < PX_TLS_SESSIONS; i++)
            if (w->tls_sessions[i].sess != NULL && strcmp(w->tls_sessions[i].key, key) == 0)
                SSL_set_session(ssl, w->tls_sessions[i].sess); /* resumption */
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);
        up->ssl = ssl;
        up->bev =
            bufferevent_openssl_socket_new(w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
        if (up->bev == NULL)
            SSL_free(ssl);
        else {
            /* Many servers close without close_notify, idle pooled connections above all.
             * OpenSSL 3 reports such a close as a fatal protocol error (SSL_ERROR_SSL, which
             * libevent's dirty-shutdown allowance does not cover: BEV_EVENT_ERROR), and the
             * fatal error also marks the cached session not resumable. This option makes it
             * a plain EOF instead; a length- or chunk-framed response says itself whether it
             * is complete, and for a close-delimited one finish_at_eof asks whether
             * close_notify arrived (tls_info_cb), which the option hides from SSL_get_shutdown. */
            SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
            SSL_set_info_callback(ssl, tls_info_cb);
            bufferevent_openssl_set_allow_dirty_shutdown(up->bev, 1);
        }
    } else {
        up->bev = bufferevent_socket_new(w->base, -1, opts);
    }
    if (up->bev == NULL) {
        free(up);
        px_conn_fail(conn, PX_ERR_INTERNAL, "cannot create an upstream connection");
        return;
    }
    up->conn = conn;
    conn->up = up;
    bufferevent_setcb(up->bev, up_read_cb, up_write_cb, up_event_cb, up);
    bufferevent_setwatermark(up->bev, EV_WRITE, PX_LOW_WATERMARK, 0);
    bufferevent_set_max_single_read(up->bev, PX_IO_BYTES);
    bufferevent_set_max_single_write(up->bev, PX_IO_BYTES);
    bufferevent_enable(up->bev, EV_READ | EV_WRITE);
    if (up->ssl == NULL)
        up->io = px_io_write_first(up->bev);
    if (bufferevent_socket_connect_hostname(up->bev, w->dns, AF_UNSPEC, conn->connect_host,
                                            conn->connect_port) != 0) {
        char why[800];
        enum px_err err;
        describe_connect_error(conn, BEV_EVENT_ERROR, why, sizeof(why), &err);
        px_conn_fail(conn, err, "%s", why);
    }
}

void px_upstream_start(struct px_conn *conn)
{
    start_connection(conn, false);
}
