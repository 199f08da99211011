/*
 * px_sign_head.c: credentials and the signed request head: which client headers go upstream
 * (hop-by-hop and regenerated ones dropped, --duplicate-headers, --strip, --custom-headers),
 * signing with sig_sign, and writing the head into memory that is wiped (struct
 * px_signed_head).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "px_request.h"

/*
 * The worker's signing-key cache for `creds`. The cache keeps a copy of each secret it derived
 * keys from; when a refreshed role's credentials replace the ones it holds, it is wiped first,
 * so a replaced secret does not outlive its credentials in memory. (Requests still signing
 * with the old ones meanwhile only derive their key again.)
 */
static struct sig_key_cache *sign_keys(struct px_worker *w, struct cred *creds)
{
    if (w->keys_creds != creds) {
        sig_key_cache_cleanup(&w->keys);
        sig_key_cache_init(&w->keys);
        cred_unref(w->keys_creds);
        w->keys_creds = cred_ref(creds);
    }
    return &w->keys;
}

static void creds_cb(struct cred *creds, enum cred_err err, void *arg);

void px_conn_fetch_creds(struct px_conn *conn)
{
    conn->creds_pending = true;
    cred_provider_get(conn->w->provider, creds_cb, conn);
}

static bool name_in(struct sig_slice name, const struct sig_slice *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name.len == list[i].len && sig_slice_eq_nocase(name, list[i]))
            return true;
    return false;
}

/* Hop-by-hop headers (RFC 9110 7.6.1) and everything we regenerate. */
static bool is_dropped(const struct px_conn *conn, struct sig_slice name,
                       struct sig_slice connection_value)
{
    static const struct sig_slice dropped[] = {
        SIG_SLICE_LIT("connection"),
        SIG_SLICE_LIT("keep-alive"),
        SIG_SLICE_LIT("proxy-connection"),
        SIG_SLICE_LIT("proxy-authorization"),
        SIG_SLICE_LIT("proxy-authenticate"),
        SIG_SLICE_LIT("te"),
        SIG_SLICE_LIT("trailer"),
        SIG_SLICE_LIT("transfer-encoding"),
        SIG_SLICE_LIT("upgrade"),
        SIG_SLICE_LIT("host"),
        SIG_SLICE_LIT("content-length"),
        SIG_SLICE_LIT("expect"),
        SIG_SLICE_LIT("authorization"),
        SIG_SLICE_LIT("x-amz-date"),
        SIG_SLICE_LIT("x-amz-security-token"),
        SIG_SLICE_LIT("x-amz-content-sha256"),
    };
    if (name_in(name, dropped, sizeof(dropped) / sizeof(dropped[0])))
        return true;
    const struct px_config *cfg = conn->w->cfg;
    if (name_in(name, cfg->strip, cfg->strip_count))
        return true;
    for (size_t i = 0; i < cfg->custom_header_count; i++)
        if (sig_slice_eq_nocase(name, cfg->custom_headers[i].name))
            return true; /* replaced by the custom value */
    /* Headers the client named in Connection are hop-by-hop too. */
    return connection_value.len != 0 && px_list_has(connection_value, name);
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

void px_signed_head_release(struct px_signed_head **h)
{
    px_signed_head_wipe(*h);
    signed_head_unref(*h);
    *h = NULL;
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
    struct sig_slice path = px_head_slice(conn, conn->path_off, conn->path_len);
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
        char cl[PX_DEC_MAX];
        size_t n = px_fmt_dec(cl, len);
        SIG_TRY(append_header_line(b, SIG_SLICE_LIT("Content-Length"),
                                   (struct sig_slice){(const uint8_t *)cl, n}));
    }
    return sig_buf_append(b, "\r\n", 2);
}

/* One signing of a request head, in build_signed_head's frame. The header arrays are the
 * worker's scratch (px_sign_header_cap entries: conn->hdr_count <= --max-headers), so nothing
 * is allocated per request; their entries are views into conn->head, the config and this. */
struct head_build {
    struct px_conn *conn;
    struct sig_header *all; /* every header sent, in order */
    size_t n_all;
    struct sig_header *signed_hdrs; /* the signed subset of all */
    size_t n_signed;
    char decoded_len[24], encoded_len[24]; /* aws-chunked Content-Length values */
    char hash_hex[SIG_SHA256_HEX_LEN + 1]; /* the body's SHA-256, when it is signed */
    struct sig_credentials creds;          /* views into conn->creds */
    struct sig_result res;                 /* views into the worker's workspace */
    char *why;
    size_t why_len;
};

static void add_header(struct head_build *hb, struct sig_slice name, struct sig_slice value)
{
    hb->all[hb->n_all++] = (struct sig_header){name, value};
}

/* Host, then the client's headers in order: each --duplicate-headers copy comes before the
 * stripping (to keep e.g. the client's Authorization as X-Original-Authorization). */
static void add_client_headers(struct head_build *hb)
{
    const struct px_conn *conn = hb->conn;
    const struct px_config *cfg = conn->w->cfg;
    const struct px_hdr *conn_hdr = px_find_hdr(conn, "connection");
    struct sig_slice connection_value =
        conn_hdr ? px_hdr_value(conn, conn_hdr) : (struct sig_slice){0};
    add_header(hb, SIG_SLICE_LIT("Host"), sig_slice_from_cstr(conn->host_header));
    struct sig_buf dup;
    sig_buf_init(&dup, conn->w->sign_dup_mem, conn->w->sign_dup_cap);
    for (size_t i = 0; i < conn->hdr_count; i++) {
        struct sig_slice name = px_hdr_name(conn, &conn->hdrs[i]);
        struct sig_slice value = px_hdr_value(conn, &conn->hdrs[i]);
        for (size_t d = 0; d < cfg->duplicate_header_count; d++) {
            if (!sig_slice_eq_nocase(name, cfg->duplicate_headers[d]))
                continue;
            size_t start = dup.len;
            if (sig_buf_append_slice(&dup, SIG_SLICE_LIT("X-Original-")) == SIG_OK &&
                sig_buf_append_slice(&dup, cfg->duplicate_headers[d]) == SIG_OK)
                add_header(hb, (struct sig_slice){dup.ptr + start, dup.len - start}, value);
        }
        if (!is_dropped(conn, name, connection_value))
            add_header(hb, name, value);
    }
}

/* aws-chunked re-framing: S3 wants these signed (sig_chunked.h). */
static enum px_err add_aws_chunked_headers(struct head_build *hb)
{
    uint64_t decoded = hb->conn->content_length, encoded;
    enum sig_err e = sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, decoded, PX_AWS_CHUNK_BYTES,
                                                NULL, 0, &encoded);
    if (e != SIG_OK) {
        snprintf(hb->why, hb->why_len, "cannot frame the body as aws-chunked: %s", sig_err_str(e));
        return PX_ERR_BODY_TOO_LARGE;
    }
    snprintf(hb->decoded_len, sizeof(hb->decoded_len), "%llu", (unsigned long long)decoded);
    snprintf(hb->encoded_len, sizeof(hb->encoded_len), "%llu", (unsigned long long)encoded);
    add_header(hb, SIG_SLICE_LIT("Content-Encoding"), SIG_SLICE_LIT("aws-chunked"));
    add_header(hb, SIG_SLICE_LIT("x-amz-decoded-content-length"),
               sig_slice_from_cstr(hb->decoded_len));
    add_header(hb, SIG_SLICE_LIT("Content-Length"), sig_slice_from_cstr(hb->encoded_len));
    return PX_OK;
}

/* Every header sent, then the signed subset. */
static enum px_err collect_headers(struct head_build *hb)
{
    const struct px_config *cfg = hb->conn->w->cfg;
    add_client_headers(hb);
    for (size_t i = 0; i < cfg->custom_header_count; i++)
        add_header(hb, cfg->custom_headers[i].name, cfg->custom_headers[i].value);
    if (hb->conn->body_mode == PX_BODY_AWS_CHUNKED) {
        enum px_err err = add_aws_chunked_headers(hb);
        if (err != PX_OK)
            return err;
    }
    for (size_t i = 0; i < hb->n_all; i++)
        if (!sig_header_is_unsignable(hb->all[i].name))
            hb->signed_hdrs[hb->n_signed++] = hb->all[i];
    return PX_OK;
}

/* X-Amz-Content-SHA256: the body's hash, or the marker of how the body is sent. */
static struct sig_slice payload_hash(struct head_build *hb)
{
    struct px_conn *conn = hb->conn;
    if (conn->aws_chunked_passthrough)
        return SIG_SLICE_LIT(SIG_STREAMING_UNSIGNED_TRAILER);
    if (conn->body_mode == PX_BODY_AWS_CHUNKED)
        return sig_chunked_content_sha256(SIG_CHUNKED_SIGNED);
    if (conn->body_mode == PX_BODY_STREAM ||
        (conn->w->cfg->unsigned_payload && conn->body_mode != PX_BODY_NONE))
        return SIG_SLICE_LIT(SIG_UNSIGNED_PAYLOAD);
    sig_sha256_final_hex(&conn->body_hash, hb->hash_hex);
    return (struct sig_slice){(const uint8_t *)hb->hash_hex, SIG_SHA256_HEX_LEN};
}

static enum px_err sign_headers(struct head_build *hb)
{
    struct px_conn *conn = hb->conn;
    struct px_worker *w = conn->w;
    struct sig_slice service = {(const uint8_t *)conn->ep.service, conn->ep.service_len};
    bool s3 = px_service_is_s3(service);
    struct sig_slice hash = payload_hash(hb);
    struct sig_request req = {
        .method = sig_slice_from_cstr(conn->method_name),
        .path = px_head_slice(conn, conn->path_off, conn->path_len),
        .query = px_head_slice(conn, conn->query_off, conn->query_len),
        .headers = hb->signed_hdrs,
        .header_count = hb->n_signed,
    };
    struct sig_params params = {
        .alg = SIG_ALG_V4,
        .form = SIG_FORM_HEADER,
        .uri_mode = s3 ? SIG_URI_S3 : SIG_URI_NORMALIZE,
        .region = {(const uint8_t *)conn->ep.region, conn->ep.region_len},
        .service = service,
        .unix_time = (int64_t)time(NULL),
        .payload_hash = hash,
        /* S3 requires the header; for other services it tells the upstream the body is not
         * signed, which only matters for UNSIGNED-PAYLOAD and aws-chunked. */
        .add_content_sha256 = s3 || hash.len != SIG_SHA256_HEX_LEN,
    };
    enum sig_err e =
        sig_sign(&req, &params, &hb->creds, sign_keys(w, conn->creds), &w->ws, &hb->res);
    if (e == SIG_OK)
        return PX_OK;
    snprintf(hb->why, hb->why_len, "cannot sign the request: %s", sig_err_str(e));
    if (e == SIG_ERR_TOO_LARGE || e == SIG_ERR_TOO_MANY_HEADERS)
        return PX_ERR_HEADERS_TOO_LARGE;
    if (e == SIG_ERR_BAD_CREDENTIALS || e == SIG_ERR_CRYPTO)
        return PX_ERR_INTERNAL;
    return PX_ERR_BAD_REQUEST;
}

/* aws-chunked: the chunk signatures chain from the request's (seed) signature. */
static enum px_err start_chunk_signer(struct head_build *hb)
{
    struct px_conn *conn = hb->conn;
    sig_chunk_signer_cleanup(&conn->chunk_signer);
    enum sig_err e =
        sig_chunk_signer_init(&conn->chunk_signer, SIG_CHUNKED_SIGNED, &hb->res,
                              hb->creds.secret_access_key, sign_keys(conn->w, conn->creds));
    if (e != SIG_OK) {
        snprintf(hb->why, hb->why_len, "cannot start aws-chunked signing: %s", sig_err_str(e));
        return PX_ERR_INTERNAL;
    }
    conn->chunked_sent = 0;
    conn->chunked_final_sent = false;
    return PX_OK;
}

/* Writes the head into the connection's own head memory (struct px_signed_head); a head
 * larger than that memory gets a larger one, up to what the limits allow. */
static enum px_err write_signed_head(struct head_build *hb)
{
    struct px_conn *conn = hb->conn;
    size_t cap = conn->up_head != NULL ? conn->up_head->cap : PX_SIGNED_HEAD_MIN_BYTES;
    size_t max = px_signed_head_max_bytes(conn->w->cfg);
    for (;;) {
        struct px_signed_head *h = signed_head_reserve(conn, cap);
        struct sig_buf b;
        sig_buf_init(&b, h->mem, h->cap);
        enum sig_err e = write_head(conn, &b, hb->all, hb->n_all, &hb->res);
        h->len = b.len;
        if (e == SIG_OK)
            return PX_OK;
        px_signed_head_wipe(h);
        if (cap >= max) {
            snprintf(hb->why, hb->why_len, "the signed request head exceeds %zu bytes", max);
            return PX_ERR_HEADERS_TOO_LARGE;
        }
        cap = cap > max / 2 ? max : 2 * cap;
    }
}

/* Builds, signs and serialises the upstream request head into conn->up_head. Runs
 * synchronously inside the credentials callback; the head memory is allocated on a
 * connection's first request. On failure, `why` is the reason (no secrets). */
static enum px_err build_signed_head(struct px_conn *conn, char *why, size_t why_len)
{
    struct px_worker *w = conn->w;
    assert(conn->hdr_count <= w->cfg->max_headers);
    struct head_build hb = {
        .conn = conn,
        .all = w->sign_all,
        .signed_hdrs = w->sign_signed,
        .creds = cred_view(conn->creds),
        .why = why,
        .why_len = why_len,
    };
    enum px_err err = collect_headers(&hb);
    if (err == PX_OK)
        err = sign_headers(&hb);
    if (err == PX_OK && conn->body_mode == PX_BODY_AWS_CHUNKED)
        err = start_chunk_signer(&hb);
    if (err == PX_OK)
        err = write_signed_head(&hb);
    sig_workspace_cleanup(&w->ws);
    OPENSSL_cleanse(hb.hash_hex, sizeof(hb.hash_hex));
    /* The scratch held views into conn->head and this frame: none may outlive it. */
    memset(hb.all, 0, hb.n_all * sizeof(*hb.all));
    memset(hb.signed_hdrs, 0, hb.n_signed * sizeof(*hb.signed_hdrs));
    return err;
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
        if (conn->w->slot != NULL) /* the credential thread's last word (px_creds.c) */
            px_conn_fail(conn, PX_ERR_NO_CREDENTIALS, "no credentials: %s",
                         cred_provider_reason(conn->w->provider));
        else
            px_conn_fail(conn, PX_ERR_NO_CREDENTIALS,
                         "no credentials: %s (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                         cred_err_str(err));
        return;
    }
    cred_unref(conn->creds);
    conn->creds = creds;
    char why[200];
    enum px_err perr = build_signed_head(conn, why, sizeof(why));
    /* The client's own credentials were needed only for --duplicate-headers copies. */
    px_request_wipe_secrets(conn);
    if (perr != PX_OK) {
        px_conn_fail(conn, perr, "%s", why);
        return;
    }
    px_conn_set_state(conn, PX_STATE_CONNECT_UP);
    px_upstream_start(conn);
}
