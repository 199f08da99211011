/*
 * px_request.c: the request side of a client connection: the llhttp request callbacks, the
 * request target and Host, the choice of upstream (allow-list, --connect-to, service and
 * region), the body mode, and hashing/buffering/spooling the body.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "px_request.h"

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
    px_request_reset(conn);
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
        conn->value_secret = is_client_secret(px_hdr_name(conn, h));
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

const struct px_hdr *px_find_hdr(const struct px_conn *conn, const char *name)
{
    struct sig_slice n = sig_slice_from_cstr(name);
    for (size_t i = 0; i < conn->hdr_count; i++)
        if (sig_slice_eq_nocase(px_hdr_name(conn, &conn->hdrs[i]), n))
            return &conn->hdrs[i];
    return NULL;
}

static bool slice_starts_nocase(struct sig_slice s, const char *prefix)
{
    struct sig_slice p = sig_slice_from_cstr(prefix);
    return s.len >= p.len && sig_slice_eq_nocase((struct sig_slice){s.ptr, p.len}, p);
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
    struct sig_slice t = px_head_slice(conn, conn->url_off, conn->url_len);
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

/* The authority the upstream comes from unless --host is set: the absolute-form target's, else
 * the one Host header's. */
static int request_authority(struct px_conn *conn, struct sig_slice *authority)
{
    const struct px_hdr *host_hdr = NULL;
    for (size_t i = 0; i < conn->hdr_count; i++) {
        if (sig_slice_eq_nocase(px_hdr_name(conn, &conn->hdrs[i]), SIG_SLICE_LIT("host"))) {
            if (host_hdr != NULL)
                return refuse(conn, PX_ERR_BAD_REQUEST, "more than one Host header");
            host_hdr = &conn->hdrs[i];
        }
    }
    if (host_hdr == NULL && conn->http_minor >= 1 && authority->len == 0 &&
        conn->w->cfg->host.len == 0)
        return refuse(conn, PX_ERR_BAD_REQUEST, "HTTP/1.1 request without Host");
    if (authority->len == 0 && host_hdr != NULL)
        *authority = px_hdr_value(conn, host_hdr);
    return 0;
}

static uint16_t default_port(const struct px_config *cfg)
{
    return cfg->upstream_tls ? 443 : 80;
}

/* up_host (lower case) and up_port: --host, else the request's authority if allowed. */
static int set_upstream_host(struct px_conn *conn, struct sig_slice authority)
{
    const struct px_config *cfg = conn->w->cfg;
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
        if (!px_copy_cstr(conn->up_host, sizeof(conn->up_host), host))
            return refuse(conn, PX_ERR_BAD_REQUEST, "upstream host name too long");
        if (!px_config_host_allowed(cfg, host)) {
            conn->parse_err = PX_ERR_HOST_NOT_ALLOWED;
            snprintf(conn->parse_reason, sizeof(conn->parse_reason),
                     "upstream host %.*s is not allowed (see --allow-host)", (int)host.len,
                     (const char *)host.ptr);
            return -1;
        }
    }
    if (!px_copy_cstr(conn->up_host, sizeof(conn->up_host), host))
        return refuse(conn, PX_ERR_BAD_REQUEST, "upstream host name too long");
    for (char *c = conn->up_host; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    conn->up_port = port != 0 ? port : default_port(cfg);
    return 0;
}

/* Host sent and signed: --sign-host, else the logical upstream (port only if unusual). */
static int set_host_header(struct px_conn *conn)
{
    const struct px_config *cfg = conn->w->cfg;
    if (cfg->sign_host.len != 0) {
        if (!px_copy_cstr(conn->host_header, sizeof(conn->host_header), cfg->sign_host))
            return refuse(conn, PX_ERR_INTERNAL, "bad --sign-host");
    } else if (conn->up_port == default_port(cfg)) {
        snprintf(conn->host_header, sizeof(conn->host_header), "%s", conn->up_host);
    } else {
        snprintf(conn->host_header, sizeof(conn->host_header), "%s:%u", conn->up_host,
                 conn->up_port);
    }
    return 0;
}

/* --connect-to: logical HOST1:PORT1 stays for SNI, certificate, Host and signature; only the
 * TCP destination changes. */
static int set_connect_target(struct px_conn *conn)
{
    if (!px_connect_target(conn->w->cfg, conn->up_host, conn->up_port, conn->connect_host,
                           sizeof(conn->connect_host), &conn->connect_port))
        return refuse(conn, PX_ERR_INTERNAL, "bad --connect-to");
    return 0;
}

/* Service and region: flags first, then the host name, then the fallback region. */
static int set_endpoint(struct px_conn *conn)
{
    const struct px_config *cfg = conn->w->cfg;
    struct sig_slice sign_name = sig_slice_from_cstr(conn->up_host);
    if (cfg->sign_host.len != 0) {
        uint16_t ignored;
        if (!split_authority(cfg->sign_host, &sign_name, &ignored))
            sign_name = cfg->sign_host;
    }
    px_endpoint_infer(sign_name, &conn->ep);
    if (cfg->service.len != 0 &&
        !px_copy_cstr(conn->ep.service, sizeof(conn->ep.service), cfg->service))
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
    if (!px_copy_cstr(region_copy, sizeof(region_copy), region) ||
        !px_copy_cstr(conn->ep.region, sizeof(conn->ep.region), sig_slice_from_cstr(region_copy)))
        return refuse(conn, PX_ERR_INTERNAL, "bad region");
    conn->ep.region_len = sig_slice_from_cstr(conn->ep.region).len;
    return 0;
}

/* The worker's last route, if it was worked out for the same key (struct px_route). */
static bool route_cached(struct px_conn *conn, struct sig_slice key)
{
    const struct px_route *r = &conn->w->route;
    if (!r->valid || r->key_len != key.len || memcmp(r->key, key.ptr, key.len) != 0)
        return false;
    memcpy(conn->up_host, r->up_host, sizeof(conn->up_host));
    conn->up_port = r->up_port;
    memcpy(conn->host_header, r->host_header, sizeof(conn->host_header));
    memcpy(conn->connect_host, r->connect_host, sizeof(conn->connect_host));
    conn->connect_port = r->connect_port;
    conn->ep = r->ep;
    return true;
}

static void route_remember(const struct px_conn *conn, struct sig_slice key)
{
    struct px_route *r = &conn->w->route;
    r->valid = key.len <= sizeof(r->key);
    if (!r->valid)
        return;
    memcpy(r->key, key.ptr, key.len);
    r->key_len = key.len;
    memcpy(r->up_host, conn->up_host, sizeof(r->up_host));
    r->up_port = conn->up_port;
    memcpy(r->host_header, conn->host_header, sizeof(r->host_header));
    memcpy(r->connect_host, conn->connect_host, sizeof(r->connect_host));
    r->connect_port = conn->connect_port;
    r->ep = conn->ep;
}

/* Routing (ARCHITECTURE.md step 3): where the request goes and how it is signed. Everything
 * here follows from the authority alone (with --host, from nothing that varies). */
static int choose_upstream(struct px_conn *conn, struct sig_slice authority)
{
    if (request_authority(conn, &authority) != 0)
        return -1;
    struct sig_slice key = conn->w->cfg->host.len != 0 ? SIG_SLICE_LIT("") : authority;
    if (route_cached(conn, key))
        return 0;
    if (set_upstream_host(conn, authority) != 0 || set_host_header(conn) != 0 ||
        set_connect_target(conn) != 0 || set_endpoint(conn) != 0)
        return -1;
    route_remember(conn, key);
    return 0;
}

/* Ambiguous framing is refused, never forwarded (RFC 9112 6.1, 6.3, 5.2). llhttp (strict mode)
 * already rejects Content-Length with Transfer-Encoding, duplicate Content-Length and bad chunk
 * sizes; a line folded onto the previous header (obs-fold) reaches us as a CR/LF inside the
 * value. */
static int check_header_values(struct px_conn *conn)
{
    for (size_t i = 0; i < conn->hdr_count; i++) {
        struct sig_slice v = px_head_slice(conn, conn->hdrs[i].value_off, conn->hdrs[i].value_len);
        for (size_t k = 0; k < v.len; k++)
            if (v.ptr[k] == '\r' || v.ptr[k] == '\n' || v.ptr[k] == 0)
                return refuse(conn, PX_ERR_BAD_REQUEST,
                              "obsolete line folding or control byte in a header value");
    }
    return 0;
}

/* body_chunked and content_length from llhttp's reading of the framing headers. */
static int check_body_framing(struct px_conn *conn, const llhttp_t *p)
{
    conn->body_chunked = (p->flags & F_CHUNKED) != 0;
    /* Only "chunked" is decoded here; forwarding e.g. "gzip, chunked" de-chunked but still
     * gzip-coded under a Content-Length would change the body's meaning (RFC 9112 6.1). */
    for (size_t i = 0; i < conn->hdr_count; i++)
        if (sig_slice_eq_nocase(px_hdr_name(conn, &conn->hdrs[i]),
                                SIG_SLICE_LIT("transfer-encoding")) &&
            !sig_slice_eq_nocase(px_hdr_value(conn, &conn->hdrs[i]), SIG_SLICE_LIT("chunked")))
            return refuse(conn, PX_ERR_NOT_IMPLEMENTED,
                          "unsupported Transfer-Encoding (only chunked)");
    conn->content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    /* HTTP/1.0 has no Transfer-Encoding: such a message's framing is faulty (RFC 9112 6.1). */
    if (conn->http_minor == 0 && px_find_hdr(conn, "transfer-encoding") != NULL)
        return refuse(conn, PX_ERR_BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request");
    px_frame_body(&conn->frame, conn->body_chunked, conn->content_length);
    return 0;
}

/* A client that already framed its body as aws-chunked without signatures keeps that framing;
 * signed aws-chunked bodies carry the client's own chunk signatures, which we cannot re-sign. */
static int check_client_content_sha256(struct px_conn *conn)
{
    const struct px_hdr *csha = px_find_hdr(conn, "x-amz-content-sha256");
    if (csha == NULL)
        return 0;
    struct sig_slice v = px_hdr_value(conn, csha);
    if (sig_slice_eq(v, SIG_SLICE_LIT(SIG_STREAMING_UNSIGNED_TRAILER)))
        conn->aws_chunked_passthrough = true;
    else if (slice_starts_nocase(v, "STREAMING-"))
        return refuse(conn, PX_ERR_BAD_REQUEST,
                      "client-signed aws-chunked bodies cannot be re-signed: send "
                      "STREAMING-UNSIGNED-PAYLOAD-TRAILER or a plain body");
    return 0;
}

/* ARCHITECTURE.md step 4: hashed (buffered, then spooled), streamed, or re-framed aws-chunked. */
static int choose_body_mode(struct px_conn *conn)
{
    const struct px_config *cfg = conn->w->cfg;
    bool s3 =
        sig_slice_eq((struct sig_slice){(const uint8_t *)conn->ep.service, conn->ep.service_len},
                     SIG_SLICE_LIT("s3"));
    if (!conn->body_chunked && conn->content_length == 0)
        conn->body_mode = PX_BODY_NONE;
    else if ((cfg->unsigned_payload || conn->aws_chunked_passthrough) && !conn->body_chunked)
        conn->body_mode = PX_BODY_STREAM;
    else if (!conn->body_chunked && conn->content_length > cfg->max_buffer_bytes && s3 &&
             px_find_hdr(conn, "content-encoding") == NULL)
        conn->body_mode = PX_BODY_AWS_CHUNKED;
    else
        conn->body_mode = PX_BODY_BUFFER;
    if (conn->body_mode == PX_BODY_BUFFER && !conn->body_chunked &&
        conn->content_length > cfg->max_body_bytes)
        return refuse(conn, PX_ERR_BODY_TOO_LARGE, "request body exceeds --max-body-bytes");
    sig_sha256_init(&conn->body_hash);
    return 0;
}

static int handle_expect(struct px_conn *conn)
{
    const struct px_hdr *expect = px_find_hdr(conn, "expect");
    if (expect == NULL)
        return 0;
    if (!px_list_has(px_hdr_value(conn, expect), SIG_SLICE_LIT("100-continue")))
        return refuse(conn, PX_ERR_BAD_REQUEST, "unsupported Expect");
    if (conn->body_mode != PX_BODY_NONE && conn->http_minor >= 1) {
        /* Everything that can refuse the request before the body has been checked. */
        px_conn_client_write(conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        conn->sent_100 = true;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct px_conn *conn = conn_of(p);
    conn->http_minor = p->http_major == 1 ? p->http_minor : 0;
    conn->method_name = llhttp_method_name((llhttp_method_t)p->method);
    conn->is_head = p->method == HTTP_HEAD;
    if (p->method == HTTP_CONNECT || p->upgrade)
        return refuse(conn, PX_ERR_NOT_IMPLEMENTED,
                      "CONNECT and protocol upgrades are not supported");
    struct sig_slice authority;
    if (check_header_values(conn) != 0 || parse_target(conn, &authority) != 0 ||
        choose_upstream(conn, authority) != 0 || check_body_framing(conn, p) != 0 ||
        check_client_content_sha256(conn) != 0 || choose_body_mode(conn) != 0 ||
        handle_expect(conn) != 0)
        return -1;

    px_conn_arm_timer(conn, conn->w->cfg->client_idle_timeout_ms);
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

/*
 * Body bytes that go on as they are: noted as a span of the segment being parsed, and moved
 * to dst by px_request_take_body once llhttp is done with the segment (the client's input
 * must not change under llhttp). Too many spans in one segment (small client chunks): the
 * noted ones and the rest are copied, in order.
 */
static void pass_body(struct px_conn *conn, struct evbuffer *dst, const char *at, size_t len)
{
    if (!conn->body_span_copy && conn->body_span_count == PX_BODY_SPANS) {
        for (unsigned i = 0; i < conn->body_span_count; i++) {
            const struct px_body_span *sp = &conn->body_spans[i];
            evbuffer_add(sp->dst, conn->seg_start + sp->off, sp->len);
        }
        conn->body_span_count = 0;
        conn->body_span_copy = true;
    }
    if (conn->body_span_copy) {
        evbuffer_add(dst, at, len);
        return;
    }
    conn->body_spans[conn->body_span_count++] =
        (struct px_body_span){(uint32_t)(at - conn->seg_start), (uint32_t)len, dst};
}

void px_request_take_body(struct px_conn *conn, struct evbuffer *in, size_t used)
{
    size_t at = 0;
    for (unsigned i = 0; i < conn->body_span_count; i++) {
        const struct px_body_span *sp = &conn->body_spans[i];
        evbuffer_drain(in, sp->off - at);
        /* Whole chains change buffers; only a chain the span covers in part is copied. */
        evbuffer_remove_buffer(in, sp->dst, sp->len);
        at = sp->off + sp->len;
    }
    conn->body_span_count = 0;
    conn->body_span_copy = false;
    evbuffer_drain(in, used - at);
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct px_conn *conn = conn_of(p);
    const struct px_config *cfg = conn->w->cfg;
    conn->body_len += len;
    if (conn->body_mode == PX_BODY_STREAM) {
        if (conn->req_head_sent && conn->up != NULL)
            pass_body(conn, bufferevent_get_output(conn->up->bev), at, len);
        else
            pass_body(conn, conn->body, at, len);
        return 0;
    }
    if (conn->body_mode == PX_BODY_AWS_CHUNKED) {
        /* Held only until a chunk is complete (px_upstream_pump_body signs and frames it). */
        pass_body(conn, conn->body, at, len);
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

const llhttp_settings_t px_request_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Wipes the client's stripped credentials from the head buffer; the rest of the head (path,
 * for the log line) stays. */
void px_request_wipe_secrets(struct px_conn *conn)
{
    if (!conn->head_secrets)
        return;
    for (size_t i = 0; i < conn->hdr_count; i++) {
        const struct px_hdr *h = &conn->hdrs[i];
        if (is_client_secret(px_hdr_name(conn, h)))
            OPENSSL_cleanse(conn->head.ptr + h->value_off, h->value_len);
    }
    conn->head_secrets = false;
}

void px_request_reset(struct px_conn *conn)
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
    px_hash_abandon(conn);
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
