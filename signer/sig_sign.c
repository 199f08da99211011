/*
 * sig_sign.c: assembles the canonical request, string to sign, signature and the
 * Authorization header or presigned query (SigV4 and SigV4a).
 *
 * Spec: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 * Everything is appended to the caller's workspace buffer, which never moves during one
 * signature, so the result's slices can point into it.
 */
#include "sig_sign.h"

#include <string.h>

#include <openssl/crypto.h>

#include "sig_canonical.h"
#include "sig_v4a.h"

#define ALG_V4 "AWS4-HMAC-SHA256"
#define ALG_V4A "AWS4-ECDSA-P256-SHA256"
#define MAX_ACCESS_KEY_ID 128
#define MAX_SESSION_TOKEN 16384

void sig_workspace_init(struct sig_workspace *ws, void *mem, size_t cap)
{
    sig_buf_init(&ws->buf, mem, cap);
}

void sig_workspace_cleanup(struct sig_workspace *ws)
{
    sig_buf_wipe(&ws->buf);
}

static void put_digits(char *out, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

enum sig_err sig_format_amz_date(int64_t unix_time, char out[SIG_AMZ_DATE_LEN + 1])
{
    /* 253402300800 is 10000-01-01T00:00:00Z: the format has four year digits. */
    SIG_ENSURE(unix_time >= 0 && unix_time < 253402300800LL, SIG_ERR_BAD_TIME);
    int64_t days = unix_time / 86400;
    unsigned secs = (unsigned)(unix_time % 86400);

    /* Civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's method). */
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned day = doy - (153 * mp + 2) / 5 + 1;
    unsigned month = mp < 10 ? mp + 3 : mp - 9;
    unsigned year = (unsigned)(yoe + era * 400) + (month <= 2);

    put_digits(out, year, 4);
    put_digits(out + 4, month, 2);
    put_digits(out + 6, day, 2);
    out[8] = 'T';
    put_digits(out + 9, secs / 3600, 2);
    put_digits(out + 11, secs / 60 % 60, 2);
    put_digits(out + 13, secs % 60, 2);
    out[15] = 'Z';
    out[16] = '\0';
    return SIG_OK;
}

/* X-Amz-Expires as decimal digits in buf (at most 6: the limit is 604800). */
static struct sig_slice format_expires(uint32_t n, char buf[8])
{
    int width = 1;
    for (uint32_t v = n; v >= 10; v /= 10)
        width++;
    put_digits(buf, n, width);
    return (struct sig_slice){(const uint8_t *)buf, (size_t)width};
}

static bool is_scope_byte(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '*' || c == ',';
}

static bool scope_part_ok(struct sig_slice s)
{
    if (s.len == 0 || s.len > SIG_MAX_SCOPE_PART)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (!is_scope_byte(s.ptr[i]))
            return false;
    }
    return true;
}

/* Visible ASCII only: the value lands in a header or a credential scope. Branch-free so the
 * compiler vectorizes it: session tokens are hundreds of bytes. */
static bool visible_ascii(struct sig_slice s, bool allow_slash)
{
    unsigned bad = 0;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        bad |= (unsigned)(c <= 0x20) | (unsigned)(c >= 0x7f) | (unsigned)(!allow_slash && c == '/');
    }
    return bad == 0;
}

static enum sig_err check_credentials(const struct sig_credentials *c)
{
    SIG_ENSURE(c->access_key_id.len > 0 && c->access_key_id.len <= MAX_ACCESS_KEY_ID &&
                   visible_ascii(c->access_key_id, false),
               SIG_ERR_BAD_CREDENTIALS);
    SIG_ENSURE(c->secret_access_key.len > 0 && c->secret_access_key.len <= SIG_KEY_CACHE_MAX_SECRET,
               SIG_ERR_BAD_CREDENTIALS);
    SIG_ENSURE(c->session_token.len <= MAX_SESSION_TOKEN && visible_ascii(c->session_token, true),
               SIG_ERR_BAD_CREDENTIALS);
    return SIG_OK;
}

static const struct sig_slice payload_literals[] = {
    SIG_SLICE_LIT(SIG_UNSIGNED_PAYLOAD),
    SIG_SLICE_LIT(SIG_STREAMING_PAYLOAD),
    SIG_SLICE_LIT(SIG_STREAMING_PAYLOAD_TRAILER),
    SIG_SLICE_LIT(SIG_STREAMING_UNSIGNED_TRAILER),
    SIG_SLICE_LIT("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
    SIG_SLICE_LIT("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"),
};

static enum sig_err payload_hash_of(const struct sig_params *p, struct sig_slice *out)
{
    if (p->payload_hash.len == 0) {
        *out = SIG_SLICE_LIT(SIG_EMPTY_SHA256_HEX);
        return SIG_OK;
    }
    *out = p->payload_hash;
    if (sig_is_sha256_hex(p->payload_hash))
        return SIG_OK;
    for (size_t i = 0; i < sizeof(payload_literals) / sizeof(payload_literals[0]); i++) {
        if (sig_slice_eq(p->payload_hash, payload_literals[i]))
            return SIG_OK;
    }
    return SIG_ERR_BAD_PAYLOAD_HASH;
}

static enum sig_err check_params(const struct sig_request *req, const struct sig_params *p)
{
    SIG_ENSURE(p->alg == SIG_ALG_V4 || p->alg == SIG_ALG_V4A, SIG_ERR_INVALID_ARG);
    SIG_ENSURE(p->form == SIG_FORM_HEADER || p->form == SIG_FORM_QUERY, SIG_ERR_INVALID_ARG);
    SIG_ENSURE(req->header_count == 0 || req->headers != NULL, SIG_ERR_INVALID_ARG);
    SIG_ENSURE(req->method.len > 0 && req->method.len <= 32 && visible_ascii(req->method, false),
               SIG_ERR_BAD_METHOD);
    SIG_ENSURE(scope_part_ok(p->region) && scope_part_ok(p->service), SIG_ERR_BAD_SCOPE);
    SIG_ENSURE(p->alg == SIG_ALG_V4A || memchr(p->region.ptr, ',', p->region.len) == NULL,
               SIG_ERR_BAD_SCOPE);
    SIG_ENSURE(p->alg != SIG_ALG_V4A || p->v4a_key != NULL, SIG_ERR_INVALID_ARG);
    if (p->form == SIG_FORM_QUERY)
        SIG_ENSURE(p->expires_s >= 1 && p->expires_s <= SIG_MAX_EXPIRES_S, SIG_ERR_BAD_EXPIRES);
    return SIG_OK;
}

/* Appends the credential scope: date/region/service/aws4_request (v4) or
 * date/service/aws4_request (v4a, whose region set travels in its own header). */
static enum sig_err write_scope(struct sig_buf *b, const struct sig_params *p, const char *date,
                                struct sig_slice *out)
{
    size_t start = b->len;
    SIG_TRY(sig_buf_append(b, date, 8));
    SIG_TRY(sig_buf_append_byte(b, '/'));
    if (p->alg == SIG_ALG_V4) {
        SIG_TRY(sig_buf_append_slice(b, p->region));
        SIG_TRY(sig_buf_append_byte(b, '/'));
    }
    SIG_TRY(sig_buf_append_slice(b, p->service));
    SIG_TRY(sig_buf_append(b, "/aws4_request", 13));
    *out = (struct sig_slice){b->ptr + start, b->len - start};
    return SIG_OK;
}

static bool token_signed(const struct sig_credentials *c, const struct sig_params *p)
{
    return c->session_token.len > 0 && !p->omit_session_token;
}

/* The request's headers plus the ones the signer adds (header form). */
static enum sig_err collect_headers(const struct sig_request *req, const struct sig_params *p,
                                    const struct sig_credentials *c, struct sig_slice payload,
                                    struct sig_result *out, struct sig_headers *h)
{
    for (size_t i = 0; i < req->header_count; i++)
        SIG_TRY(sig_headers_add(h, req->headers[i].name, req->headers[i].value));
    /* SigV4 always signs the one Host (RFC 9112 section 3.2 allows exactly one). */
    SIG_ENSURE(h->host_count == 1, SIG_ERR_BAD_HOST);
    /* The caller must have removed these: signing over a client's copy would be ambiguous. */
    SIG_ENSURE(!sig_headers_has(h, SIG_SLICE_LIT("x-amz-date")), SIG_ERR_INVALID_ARG);
    SIG_ENSURE(!sig_headers_has(h, SIG_SLICE_LIT("x-amz-security-token")), SIG_ERR_INVALID_ARG);
    SIG_ENSURE(!sig_headers_has(h, SIG_SLICE_LIT("x-amz-region-set")), SIG_ERR_INVALID_ARG);
    if (p->form == SIG_FORM_QUERY)
        return SIG_OK;

    struct sig_slice date = {(const uint8_t *)out->amz_date, SIG_AMZ_DATE_LEN};
    /* The signer's own values are validated already: no folding pass over them. */
    SIG_TRY(sig_headers_add_verbatim(h, SIG_SLICE_LIT("x-amz-date"), date));
    if (token_signed(c, p))
        SIG_TRY(
            sig_headers_add_verbatim(h, SIG_SLICE_LIT("x-amz-security-token"), c->session_token));
    if (p->alg == SIG_ALG_V4A)
        SIG_TRY(sig_headers_add_verbatim(h, SIG_SLICE_LIT("x-amz-region-set"), p->region));
    if (p->add_content_sha256) {
        SIG_ENSURE(!sig_headers_has(h, SIG_SLICE_LIT("x-amz-content-sha256")), SIG_ERR_INVALID_ARG);
        SIG_TRY(sig_headers_add_verbatim(h, SIG_SLICE_LIT("x-amz-content-sha256"), payload));
    }
    return SIG_OK;
}

/* The X-Amz-* parameters a presigned URL signs (all but X-Amz-Signature). */
static enum sig_err add_presign_params(struct sig_query *q, const struct sig_params *p,
                                       const struct sig_credentials *c,
                                       const struct sig_result *out, struct sig_slice credential)
{
    char expires_buf[8];
    struct sig_slice expires = format_expires(p->expires_s, expires_buf);

    SIG_TRY(sig_query_add(q, SIG_SLICE_LIT("X-Amz-Algorithm"),
                          p->alg == SIG_ALG_V4 ? SIG_SLICE_LIT(ALG_V4) : SIG_SLICE_LIT(ALG_V4A)));
    SIG_TRY(sig_query_add(q, SIG_SLICE_LIT("X-Amz-Credential"), credential));
    SIG_TRY(sig_query_add(q, SIG_SLICE_LIT("X-Amz-Date"),
                          (struct sig_slice){(const uint8_t *)out->amz_date, SIG_AMZ_DATE_LEN}));
    SIG_TRY(sig_query_add(q, SIG_SLICE_LIT("X-Amz-Expires"), expires));
    if (p->alg == SIG_ALG_V4A)
        SIG_TRY(sig_query_add(q, SIG_SLICE_LIT("X-Amz-Region-Set"), p->region));
    if (token_signed(c, p))
        SIG_TRY(sig_query_add(q, SIG_SLICE_LIT("X-Amz-Security-Token"), c->session_token));
    SIG_TRY(sig_query_add(q, SIG_SLICE_LIT("X-Amz-SignedHeaders"), out->signed_headers));
    return SIG_OK;
}

static enum sig_err append_param(struct sig_buf *b, struct sig_slice key, struct sig_slice raw)
{
    SIG_TRY(sig_buf_append_byte(b, '&'));
    SIG_TRY(sig_buf_append_slice(b, key));
    SIG_TRY(sig_buf_append_byte(b, '='));
    return sig_uri_encode(b, raw, false);
}

/* The query to send: the original wire query, then the X-Amz-* parameters in the order the
 * AWS SDKs emit them. */
static enum sig_err write_presigned_query(struct sig_buf *b, const struct sig_request *req,
                                          const struct sig_params *p,
                                          const struct sig_credentials *c,
                                          struct sig_slice credential, struct sig_result *out)
{
    size_t start = b->len;
    char expires_buf[8];
    struct sig_slice expires = format_expires(p->expires_s, expires_buf);

    SIG_TRY(sig_buf_append_slice(b, req->query));
    SIG_TRY(append_param(b, SIG_SLICE_LIT("X-Amz-Algorithm"),
                         p->alg == SIG_ALG_V4 ? SIG_SLICE_LIT(ALG_V4) : SIG_SLICE_LIT(ALG_V4A)));
    SIG_TRY(append_param(b, SIG_SLICE_LIT("X-Amz-Credential"), credential));
    SIG_TRY(append_param(b, SIG_SLICE_LIT("X-Amz-Date"),
                         (struct sig_slice){(const uint8_t *)out->amz_date, SIG_AMZ_DATE_LEN}));
    SIG_TRY(append_param(b, SIG_SLICE_LIT("X-Amz-SignedHeaders"), out->signed_headers));
    SIG_TRY(append_param(b, SIG_SLICE_LIT("X-Amz-Expires"), expires));
    /* The token before the region set, as in the SigV4a suite's presigned URLs. */
    if (c->session_token.len > 0)
        SIG_TRY(append_param(b, SIG_SLICE_LIT("X-Amz-Security-Token"), c->session_token));
    if (p->alg == SIG_ALG_V4A)
        SIG_TRY(append_param(b, SIG_SLICE_LIT("X-Amz-Region-Set"), p->region));
    SIG_TRY(append_param(b, SIG_SLICE_LIT("X-Amz-Signature"), out->signature));
    /* With no original query the first '&' is dropped. */
    size_t skip = req->query.len == 0 ? 1 : 0;
    out->query = (struct sig_slice){b->ptr + start + skip, b->len - start - skip};
    return SIG_OK;
}

static enum sig_err write_canonical_request(struct sig_buf *b, const struct sig_request *req,
                                            const struct sig_params *p, struct sig_slice query,
                                            struct sig_slice headers, struct sig_slice payload,
                                            struct sig_result *out)
{
    size_t start = b->len;
    SIG_TRY(sig_buf_append_slice(b, req->method));
    SIG_TRY(sig_buf_append_byte(b, '\n'));
    SIG_TRY(sig_canonical_uri(b, req->path, p->uri_mode));
    SIG_TRY(sig_buf_append_byte(b, '\n'));
    SIG_TRY(sig_buf_append_slice(b, query));
    SIG_TRY(sig_buf_append_byte(b, '\n'));
    SIG_TRY(sig_buf_append_slice(b, headers));
    SIG_TRY(sig_buf_append_byte(b, '\n'));
    SIG_TRY(sig_buf_append_slice(b, out->signed_headers));
    SIG_TRY(sig_buf_append_byte(b, '\n'));
    SIG_TRY(sig_buf_append_slice(b, payload));
    out->canonical_request = (struct sig_slice){b->ptr + start, b->len - start};
    return SIG_OK;
}

static enum sig_err write_string_to_sign(struct sig_buf *b, const struct sig_params *p,
                                         struct sig_result *out)
{
    uint8_t md[SIG_SHA256_LEN];
    char hex[SIG_SHA256_HEX_LEN + 1];
    size_t start = b->len;

    sig_sha256(out->canonical_request.ptr, out->canonical_request.len, md);
    sig_hex_lower(md, sizeof(md), hex);
    SIG_TRY(sig_buf_append(b, p->alg == SIG_ALG_V4 ? ALG_V4 "\n" : ALG_V4A "\n",
                           p->alg == SIG_ALG_V4 ? sizeof(ALG_V4) : sizeof(ALG_V4A)));
    SIG_TRY(sig_buf_append(b, out->amz_date, SIG_AMZ_DATE_LEN));
    SIG_TRY(sig_buf_append_byte(b, '\n'));
    SIG_TRY(sig_buf_append_slice(b, out->credential_scope));
    SIG_TRY(sig_buf_append_byte(b, '\n'));
    SIG_TRY(sig_buf_append(b, hex, SIG_SHA256_HEX_LEN));
    out->string_to_sign = (struct sig_slice){b->ptr + start, b->len - start};
    return SIG_OK;
}

static enum sig_err write_signature(struct sig_buf *b, const struct sig_params *p,
                                    const struct sig_credentials *c, struct sig_key_cache *cache,
                                    struct sig_result *out)
{
    char hex[SIG_MAX_SIGNATURE_HEX + 1];
    size_t hex_len;

    if (p->alg == SIG_ALG_V4) {
        struct sig_hmac key;
        uint8_t mac[SIG_SHA256_LEN];
        struct sig_slice date = {(const uint8_t *)out->amz_date, 8};
        SIG_TRY(sig_signing_key(cache, c->secret_access_key, date, p->region, p->service, &key));
        sig_hmac(&key, out->string_to_sign.ptr, out->string_to_sign.len, mac);
        sig_hmac_cleanup(&key);
        sig_hex_lower(mac, sizeof(mac), hex);
        hex_len = SIG_SHA256_HEX_LEN;
    } else {
        uint8_t der[SIG_V4A_MAX_DER];
        size_t der_len = 0;
        SIG_TRY(sig_v4a_sign(p->v4a_key, out->string_to_sign.ptr, out->string_to_sign.len, der,
                             &der_len));
        sig_hex_lower(der, der_len, hex);
        hex_len = 2 * der_len;
    }
    size_t start = b->len;
    SIG_TRY(sig_buf_append(b, hex, hex_len));
    out->signature = (struct sig_slice){b->ptr + start, hex_len};
    return SIG_OK;
}

static void add_header(struct sig_result *out, struct sig_slice name, struct sig_slice value)
{
    out->add_headers[out->add_header_count++] = (struct sig_header){name, value};
}

static enum sig_err finish_header_form(struct sig_buf *b, const struct sig_params *p,
                                       const struct sig_credentials *c, struct sig_slice credential,
                                       struct sig_slice payload, struct sig_result *out)
{
    size_t start = b->len;

    SIG_TRY(sig_buf_append(b, p->alg == SIG_ALG_V4 ? ALG_V4 : ALG_V4A,
                           p->alg == SIG_ALG_V4 ? sizeof(ALG_V4) - 1 : sizeof(ALG_V4A) - 1));
    SIG_TRY(sig_buf_append(b, " Credential=", 12));
    SIG_TRY(sig_buf_append_slice(b, credential));
    SIG_TRY(sig_buf_append(b, ", SignedHeaders=", 16));
    SIG_TRY(sig_buf_append_slice(b, out->signed_headers));
    SIG_TRY(sig_buf_append(b, ", Signature=", 12));
    SIG_TRY(sig_buf_append_slice(b, out->signature));
    struct sig_slice auth = {b->ptr + start, b->len - start};

    if (c->session_token.len > 0)
        add_header(out, SIG_SLICE_LIT("X-Amz-Security-Token"), c->session_token);
    add_header(out, SIG_SLICE_LIT("X-Amz-Date"),
               (struct sig_slice){(const uint8_t *)out->amz_date, SIG_AMZ_DATE_LEN});
    if (p->alg == SIG_ALG_V4A)
        add_header(out, SIG_SLICE_LIT("X-Amz-Region-Set"), p->region);
    if (p->add_content_sha256)
        add_header(out, SIG_SLICE_LIT("x-amz-content-sha256"), payload);
    add_header(out, SIG_SLICE_LIT("Authorization"), auth);
    return SIG_OK;
}

enum sig_err sig_sign(const struct sig_request *req, const struct sig_params *p,
                      const struct sig_credentials *creds, struct sig_key_cache *cache,
                      struct sig_workspace *ws, struct sig_result *out)
{
    struct sig_buf *b = &ws->buf;
    struct sig_headers h = {.ws = ws};
    struct sig_query q = {ws, 0};
    struct sig_slice payload, canonical_headers, canonical_query, credential;

    SIG_ENSURE(req != NULL && p != NULL && creds != NULL && ws != NULL && out != NULL,
               SIG_ERR_INVALID_ARG);
    memset(out, 0, sizeof(*out));
    SIG_TRY(check_params(req, p));
    SIG_TRY(check_credentials(creds));
    SIG_TRY(payload_hash_of(p, &payload));
    SIG_TRY(sig_format_amz_date(p->unix_time, out->amz_date));
    b->len = 0;

    size_t cred_start = b->len;
    SIG_TRY(sig_buf_append_slice(b, creds->access_key_id));
    SIG_TRY(sig_buf_append_byte(b, '/'));
    SIG_TRY(write_scope(b, p, out->amz_date, &out->credential_scope));
    credential = (struct sig_slice){b->ptr + cred_start, b->len - cred_start};

    SIG_TRY(collect_headers(req, p, creds, payload, out, &h));
    SIG_TRY(sig_headers_write(&h, &canonical_headers, &out->signed_headers));
    SIG_TRY(sig_query_parse(&q, req->query));
    if (p->form == SIG_FORM_QUERY)
        SIG_TRY(add_presign_params(&q, p, creds, out, credential));
    SIG_TRY(sig_query_write(&q, &canonical_query));
    out->canonical_query = canonical_query;
    SIG_TRY(write_canonical_request(b, req, p, canonical_query, canonical_headers, payload, out));
    SIG_TRY(write_string_to_sign(b, p, out));
    SIG_TRY(write_signature(b, p, creds, cache, out));
    if (p->form == SIG_FORM_QUERY)
        return write_presigned_query(b, req, p, creds, credential, out);
    return finish_header_form(b, p, creds, credential, payload, out);
}
