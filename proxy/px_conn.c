/*
 * px_conn.c: one client connection's lifecycle: the state machine, client I/O (feeding llhttp
 * through the strict framing check, backpressure, lingering close), per-phase timers, error
 * responses and the request log line. Parsing and routing are in px_request.c, signing in
 * px_sign_head.c.
 */
#include <stdarg.h>
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
#include "px_request.h"

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
static void drain_done(struct px_conn *conn);
static void set_read_lowmark(struct px_conn *conn);

void px_conn_arm_timer(struct px_conn *conn, uint32_t ms)
{
    struct timeval tv;
    evtimer_add(conn->timer, px_worker_timeout(conn->w, ms, &tv));
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
        conn->path_len ? px_head_slice(conn, conn->path_off, conn->path_len) : SIG_SLICE_LIT("-");
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
    px_request_reset(conn);
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
        bufferevent_setwatermark(conn->client, EV_READ, low, px_conn_body_window(conn));
        conn->read_lowmark = low;
    }
}

/* Timers and limits for n bytes about to be parsed; false when the connection failed. */
static bool note_client_bytes(struct px_conn *conn, size_t n)
{
    const struct px_config *cfg = conn->w->cfg;
    if (conn->state == PX_STATE_READ_HEAD) {
        if (!conn->head_started) {
            conn->head_started = true;
            px_conn_arm_timer(conn, cfg->client_header_timeout_ms);
        }
        /* Bytes llhttp skips without a callback (whitespace) still count. */
        conn->head_bytes_fed += n;
        if (conn->head_bytes_fed > 2 * cfg->max_header_bytes + 65536) {
            px_conn_fail(conn, PX_ERR_HEADERS_TOO_LARGE, "request head exceeds --max-header-bytes");
            return false;
        }
    } else if (conn->state == PX_STATE_READ_BODY) {
        conn->stall_in_len = 0;
        conn->read_paused = false;
        px_conn_arm_timer(conn, cfg->client_idle_timeout_ms);
    }
    return true;
}

/* Runs llhttp over n bytes the framing check passed (`fr` is its verdict) and checks that both
 * agree on where the head and the message end. Sets *used to the bytes llhttp consumed; false
 * when the connection failed. */
static bool parse_client_bytes(struct px_conn *conn, const char *p, size_t n,
                               enum px_frame_result fr, size_t *used)
{
    conn->seg_start = p;
    conn->seg_end = p + n;
    conn->body_span_count = 0;
    conn->body_span_copy = false;
    conn->value_cont_ok = conn->value_at_seg_end;
    conn->value_at_seg_end = false;
    enum llhttp_errno e = llhttp_execute(&conn->req_parser, p, n);
    *used = n;
    if (e == HPE_PAUSED) {
        *used = (size_t)(llhttp_get_error_pos(&conn->req_parser) - p);
        if (*used == n && px_frame_done(&conn->frame))
            return true;
        px_conn_fail(conn, PX_ERR_BAD_REQUEST, "malformed request: the message end is ambiguous");
        return false;
    }
    if (e == HPE_OK &&
        (px_frame_wants_body(&conn->frame) || (fr == PX_FRAME_MSG_END && !conn->req_complete))) {
        px_conn_fail(conn, PX_ERR_BAD_REQUEST, "malformed request: the %s end is ambiguous",
                     fr == PX_FRAME_MSG_END ? "message" : "head");
        return false;
    }
    if (e == HPE_OK)
        return true;
    if (conn->parse_err != PX_OK)
        px_conn_fail(conn, conn->parse_err, "%s", conn->parse_reason);
    else if (e == HPE_PAUSED_UPGRADE)
        px_conn_fail(conn, PX_ERR_NOT_IMPLEMENTED, "protocol upgrades are not supported");
    else
        px_conn_fail(conn, PX_ERR_BAD_REQUEST, "malformed request: %s",
                     llhttp_get_error_reason(&conn->req_parser));
    return false;
}

size_t px_conn_body_window(const struct px_conn *conn)
{
    return conn->body_mode == PX_BODY_AWS_CHUNKED ? PX_AWS_CHUNKED_WINDOW : PX_HIGH_WATERMARK;
}

/* A streamed body waits for the upstream: stop reading the client above the high watermark
 * (px_conn_resume_client reads on). True when reading stopped. */
static bool pause_for_upstream(struct px_conn *conn)
{
    if (conn->body_mode != PX_BODY_STREAM && conn->body_mode != PX_BODY_AWS_CHUNKED)
        return false;
    size_t pending = evbuffer_get_length(conn->body);
    if (conn->req_head_sent && conn->up)
        pending += evbuffer_get_length(bufferevent_get_output(conn->up->bev));
    if (pending <= px_conn_body_window(conn))
        return false;
    bufferevent_disable(conn->client, EV_READ);
    conn->read_paused = true;
    return true;
}

/* Parses what the client sent, one input segment at a time, in place: llhttp's callbacks see
 * pointers into the evbuffer's own memory. */
static void client_feed(struct px_conn *conn)
{
    struct evbuffer *in = bufferevent_get_input(conn->client);
    while (!conn->closing && !conn->req_complete && conn->state != PX_STATE_DRAIN) {
        struct evbuffer_iovec v;
        if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        /* llhttp gets only bytes the strict check passed, and at most up to the end of the
         * head or of the message, so each boundary is checked against where llhttp puts it. */
        size_t n, used;
        const char *why;
        enum px_frame_result fr = px_frame_scan(&conn->frame, v.iov_base, v.iov_len, &n, &why);
        if (fr == PX_FRAME_BAD) {
            px_conn_fail(conn, PX_ERR_BAD_REQUEST, "malformed request: %s", why);
            return;
        }
        if (!note_client_bytes(conn, n))
            return;
        if (fr == PX_FRAME_SKIP) {
            /* Chunk extensions, checked by px_frame: dropped, llhttp never sees them. */
            evbuffer_drain(in, n);
            continue;
        }
        if (!parse_client_bytes(conn, v.iov_base, n, fr, &used))
            return;
        px_request_take_body(conn, in, used);
        if (conn->closing)
            return;
        if (conn->req_complete) {
            handle_request_complete(conn);
            return;
        }
        if (conn->body_mode == PX_BODY_AWS_CHUNKED)
            px_upstream_pump_body(conn);
        if (conn->closing || pause_for_upstream(conn))
            return;
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
    px_conn_arm_timer(conn, PX_LINGER_MS);
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

/* The request body's idle timer fired: a stall unless bytes arrived meanwhile (bytes waiting
 * below the read low watermark are progress too). */
static void request_body_timeout(struct px_conn *conn)
{
    uint32_t ms = conn->w->cfg->client_idle_timeout_ms;
    size_t in = evbuffer_get_length(bufferevent_get_input(conn->client));
    if (in > conn->stall_in_len) {
        conn->stall_in_len = in;
        px_conn_arm_timer(conn, ms);
        return;
    }
    px_conn_fail(conn, PX_ERR_CLIENT_TIMEOUT, "request body stalled for %ums", ms);
}

/* The response's idle timer fired. Upstream reading may be paused because the client reads
 * slowly (backpressure): while the client keeps draining its output, that is progress. */
static void response_body_timeout(struct px_conn *conn)
{
    uint32_t ms = conn->w->cfg->upstream_idle_timeout_ms;
    size_t out = evbuffer_get_length(bufferevent_get_output(conn->client));
    if (out > 0 && (conn->stall_out_len == 0 || out < conn->stall_out_len)) {
        conn->stall_out_len = out;
        px_conn_arm_timer(conn, ms);
        return;
    }
    if (out > 0)
        px_conn_fail(conn, PX_ERR_CLIENT_GONE, "client stopped reading for %ums", ms);
    else
        px_conn_fail(conn, PX_ERR_UPSTREAM_TIMEOUT, "upstream %s stalled for %ums", conn->up_host,
                     ms);
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
    case PX_STATE_WAIT_CREDS:
        request_body_timeout(conn);
        return;
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
    case PX_STATE_STREAM_BODY:
        response_body_timeout(conn);
        return;
    case PX_STATE_DRAIN:
    case PX_STATE_CLOSED:
        px_conn_close(conn);
        return;
    }
}

/* ---- lifecycle ---- */

/* "ADDR:PORT" of the client, for log lines. */
static void format_peer(struct px_conn *conn, const struct sockaddr *sa)
{
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
}

/* Links the connection into the worker's list and count (the accepting thread reads the
 * worker's load from it: px_worker_conn_added). */
static void count_conn(struct px_worker *w, struct px_conn *conn)
{
    conn->next = w->conns;
    if (w->conns)
        w->conns->prev = conn;
    w->conns = conn;
    conn->counted = true;
    px_worker_conn_added(w);
}

/* The reverse of count_conn. */
static void uncount_conn(struct px_worker *w, struct px_conn *conn)
{
    if (conn->prev)
        conn->prev->next = conn->next;
    else if (w->conns == conn)
        w->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    if (conn->counted) {
        conn->counted = false;
        px_worker_conn_removed(w);
    }
}

static void start_client_io(struct px_conn *conn)
{
    bufferevent_setcb(conn->client, client_read_cb, client_write_cb, client_event_cb, conn);
    bufferevent_setwatermark(conn->client, EV_WRITE, PX_LOW_WATERMARK, 0);
    bufferevent_setwatermark(conn->client, EV_READ, 0, PX_HIGH_WATERMARK);
    /* libevent reads and writes 16 KiB per call by default: large bodies would cost a
     * syscall and a callback per 16 KiB. */
    bufferevent_set_max_single_read(conn->client, PX_IO_BYTES);
    bufferevent_set_max_single_write(conn->client, PX_IO_BYTES);
    bufferevent_enable(conn->client, EV_READ | EV_WRITE);
    conn->client_io = px_io_write_first(conn->client);
}

void px_conn_accept(struct px_worker *w, evutil_socket_t fd, const struct sockaddr *sa, int len)
{
    (void)len;
    struct px_conn *conn = px_xmalloc(sizeof(*conn));
    conn->w = w;
    conn->spool_fd = -1;
    format_peer(conn, sa);
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
    llhttp_init(&conn->req_parser, HTTP_REQUEST, &px_request_settings);
    conn->req_parser.data = conn;
    count_conn(w, conn);
    start_client_io(conn);
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
    uncount_conn(conn->w, conn);
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
    px_signed_head_release(&conn->up_head);
    if (conn->head_secrets)
        OPENSSL_cleanse(conn->head_mem, conn->head.len);
    if (conn->spool_fd >= 0)
        close(conn->spool_fd);
    cred_unref(conn->creds);
    px_hash_abandon(conn);
    sig_chunk_signer_cleanup(&conn->chunk_signer);
    free(conn->head_mem);
    free(conn->hdrs);
    free(conn->resp_mem);
    free(conn->resp_hdrs);
    free(conn);
}
