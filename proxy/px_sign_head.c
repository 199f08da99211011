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
        if (px_copy_cstr(tok, sizeof(tok), name) && px_slice_has_token(connection_value, tok))
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

    const struct px_hdr *conn_hdr = px_find_hdr(conn, "connection");
    struct sig_slice connection_value =
        conn_hdr ? px_hdr_value(conn, conn_hdr) : (struct sig_slice){0};

    all[n_all++] =
        (struct sig_header){SIG_SLICE_LIT("Host"), sig_slice_from_cstr(conn->host_header)};
    /* --duplicate-headers copies before stripping (to keep e.g. the client's Authorization
     * as X-Original-Authorization). */
    struct sig_buf dup;
    sig_buf_init(&dup, w->sign_dup_mem, w->sign_dup_cap);
    for (size_t i = 0; i < conn->hdr_count; i++) {
        struct sig_slice name = px_hdr_name(conn, &conn->hdrs[i]);
        struct sig_slice value = px_hdr_value(conn, &conn->hdrs[i]);
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
        .path = px_head_slice(conn, conn->path_off, conn->path_len),
        .query = px_head_slice(conn, conn->query_off, conn->query_len),
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
    px_request_wipe_secrets(conn);
    if (perr != PX_OK) {
        px_conn_fail(conn, perr, "%s", why);
        return;
    }
    px_conn_set_state(conn, PX_STATE_CONNECT_UP);
    px_upstream_start(conn);
}
