/*
 * sig_chunked.c: aws-chunked framing and the chained chunk and trailer signatures.
 *
 * Every string to sign is handed to HMAC as a list of slices, so nothing is concatenated or
 * copied; the only state is the keyed kSigning HMAC and the previous signature.
 */
#include "sig_chunked.h"

#include <assert.h>

#include <openssl/crypto.h>

#define CRLF "\r\n"
#define CHUNK_SIG_EXT ";chunk-signature="
#define TRAILER_SIG_NAME "x-amz-trailer-signature"
#define SCOPE_TERMINATOR "/aws4_request"

/* sigv4-streaming.html, "Defining the Chunk Body": the chunk string to sign. */
#define CHUNK_ALGORITHM "AWS4-HMAC-SHA256-PAYLOAD"
/* sigv4-streaming-trailers.html: the trailer string to sign. */
#define TRAILER_ALGORITHM "AWS4-HMAC-SHA256-TRAILER"
#define SEED_ALGORITHM "AWS4-HMAC-SHA256"

/* PHASE_NONE is zero so that a zeroed or failed-init signer refuses to sign. */
enum phase {
    PHASE_NONE = 0,
    PHASE_DATA = 1,
    PHASE_FINAL_SIGNED = 2,
    PHASE_TRAILER_SIGNED = 3,
};

static const uint8_t empty_sha256[SIG_SHA256_LEN] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

struct sig_slice sig_chunked_content_sha256(enum sig_chunked_mode mode)
{
    switch (mode) {
    case SIG_CHUNKED_SIGNED:
        return SIG_SLICE_LIT(SIG_STREAMING_PAYLOAD);
    case SIG_CHUNKED_SIGNED_TRAILER:
        return SIG_SLICE_LIT(SIG_STREAMING_PAYLOAD_TRAILER);
    case SIG_CHUNKED_UNSIGNED_TRAILER:
        return SIG_SLICE_LIT(SIG_STREAMING_UNSIGNED_TRAILER);
    }
    return (struct sig_slice){NULL, 0};
}

static bool mode_valid(enum sig_chunked_mode mode)
{
    return sig_chunked_content_sha256(mode).len != 0;
}

static bool mode_has_trailers(enum sig_chunked_mode mode)
{
    return mode == SIG_CHUNKED_SIGNED_TRAILER || mode == SIG_CHUNKED_UNSIGNED_TRAILER;
}

/* Number of lowercase hex digits of v, without leading zeros ("0" for zero). */
static size_t hex_digits(uint64_t v)
{
    size_t n = 1;
    while (v >>= 4)
        n++;
    return n;
}

/* RFC 9110 section 5.6.2 tchar, restricted to lowercase letters. */
static bool is_lower_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

/* Validates one trailer name and its order after `prev` (prev.ptr == NULL for the first). */
static enum sig_err check_trailer_name(struct sig_slice name, struct sig_slice prev)
{
    SIG_ENSURE(name.len >= 1 && name.len <= SIG_CHUNKED_MAX_TRAILER_NAME, SIG_ERR_BAD_HEADER_NAME);
    for (size_t i = 0; i < name.len; i++)
        SIG_ENSURE(is_lower_tchar(name.ptr[i]), SIG_ERR_BAD_HEADER_NAME);
    /* The signature line is the signer's to write; a caller-supplied one would put two
     * x-amz-trailer-signature lines in the body. */
    SIG_ENSURE(!sig_slice_eq(name, SIG_SLICE_LIT(TRAILER_SIG_NAME)), SIG_ERR_BAD_HEADER_NAME);
    SIG_ENSURE(prev.ptr == NULL || sig_slice_cmp(prev, name) < 0, SIG_ERR_INVALID_ARG);
    return SIG_OK;
}

static enum sig_err check_trailer_value(struct sig_slice value)
{
    SIG_ENSURE(value.len <= SIG_CHUNKED_MAX_TRAILER_VALUE, SIG_ERR_TOO_LARGE);
    for (size_t i = 0; i < value.len; i++)
        SIG_ENSURE(value.ptr[i] >= 0x21 && value.ptr[i] <= 0x7e, SIG_ERR_BAD_HEADER_VALUE);
    return SIG_OK;
}

/* Validates a trailer list; on success *lines_len is the bytes of its name:value CRLF lines. */
static enum sig_err check_trailers(const struct sig_header *trailers, size_t count,
                                   size_t *lines_len)
{
    struct sig_slice prev = {NULL, 0};
    size_t total = 0;

    SIG_ENSURE(count <= SIG_CHUNKED_MAX_TRAILERS, SIG_ERR_TOO_LARGE);
    SIG_ENSURE(count == 0 || trailers != NULL, SIG_ERR_INVALID_ARG);
    for (size_t i = 0; i < count; i++) {
        SIG_TRY(check_trailer_name(trailers[i].name, prev));
        SIG_TRY(check_trailer_value(trailers[i].value));
        total += trailers[i].name.len + 1 + trailers[i].value.len + 2;
        prev = trailers[i].name;
    }
    *lines_len = total;
    return SIG_OK;
}

enum sig_err sig_chunked_encoded_length(enum sig_chunked_mode mode, uint64_t decoded_len,
                                        uint64_t chunk_size,
                                        const struct sig_trailer_size *trailers,
                                        size_t trailer_count, uint64_t *out_len)
{
    SIG_ENSURE(mode_valid(mode), SIG_ERR_INVALID_ARG);
    SIG_ENSURE(chunk_size >= SIG_CHUNKED_MIN_CHUNK_SIZE && chunk_size <= SIG_CHUNKED_MAX_CHUNK_SIZE,
               SIG_ERR_INVALID_ARG);
    SIG_ENSURE(decoded_len <= SIG_CHUNKED_MAX_DECODED_LEN, SIG_ERR_TOO_LARGE);
    SIG_ENSURE(trailer_count == 0 || mode_has_trailers(mode), SIG_ERR_INVALID_ARG);
    SIG_ENSURE(trailer_count <= SIG_CHUNKED_MAX_TRAILERS, SIG_ERR_TOO_LARGE);
    SIG_ENSURE(trailer_count == 0 || trailers != NULL, SIG_ERR_INVALID_ARG);

    bool is_signed = mode != SIG_CHUNKED_UNSIGNED_TRAILER;
    /* Per chunk: hex size, [";chunk-signature=" sig], CRLF, data, CRLF. */
    uint64_t ext = is_signed ? sizeof(CHUNK_SIG_EXT) - 1 + SIG_SHA256_HEX_LEN : 0;
    uint64_t full_chunks = decoded_len / chunk_size;
    uint64_t rest = decoded_len % chunk_size;
    /* Bounded by the limits above: at most 2^37 chunks of under 2^27 bytes each. */
    uint64_t total = full_chunks * (hex_digits(chunk_size) + ext + 2 + chunk_size + 2);
    if (rest > 0)
        total += hex_digits(rest) + ext + 2 + rest + 2;
    /* The zero-length chunk's header. */
    total += 1 + ext + 2;

    struct sig_slice prev = {NULL, 0};
    for (size_t i = 0; i < trailer_count; i++) {
        SIG_TRY(check_trailer_name(trailers[i].name, prev));
        SIG_ENSURE(trailers[i].value_len <= SIG_CHUNKED_MAX_TRAILER_VALUE, SIG_ERR_TOO_LARGE);
        total += trailers[i].name.len + 1 + trailers[i].value_len + 2;
        prev = trailers[i].name;
    }
    if (mode == SIG_CHUNKED_SIGNED_TRAILER)
        total += sizeof(TRAILER_SIG_NAME ":") - 1 + SIG_SHA256_HEX_LEN + 2;
    /* The CRLF that ends the trailer section (in SIG_CHUNKED_SIGNED, the final chunk's empty
     * data line). */
    total += 2;

    *out_len = total;
    return SIG_OK;
}

enum sig_err sig_chunk_header(struct sig_buf *out, uint64_t data_len, struct sig_slice signature)
{
    static const char digits[] = "0123456789abcdef";
    char hex[16];

    SIG_ENSURE(data_len <= SIG_CHUNKED_MAX_CHUNK_SIZE, SIG_ERR_TOO_LARGE);
    SIG_ENSURE(signature.len == 0 || sig_is_sha256_hex(signature), SIG_ERR_INVALID_ARG);

    size_t ndig = hex_digits(data_len);
    for (size_t i = 0; i < ndig; i++)
        hex[i] = digits[(data_len >> (4 * (ndig - 1 - i))) & 15];

    size_t need = ndig + 2;
    if (signature.len > 0)
        need += sizeof(CHUNK_SIG_EXT) - 1 + signature.len;
    SIG_ENSURE(out->cap - out->len >= need, SIG_ERR_TOO_LARGE);

    /* Cannot fail after the capacity check. */
    SIG_TRY(sig_buf_append(out, hex, ndig));
    if (signature.len > 0) {
        SIG_TRY(sig_buf_append_slice(out, SIG_SLICE_LIT(CHUNK_SIG_EXT)));
        SIG_TRY(sig_buf_append_slice(out, signature));
    }
    return sig_buf_append_slice(out, SIG_SLICE_LIT(CRLF));
}

enum sig_err sig_chunked_trailers(struct sig_buf *out, enum sig_chunked_mode mode,
                                  const struct sig_header *trailers, size_t count,
                                  struct sig_slice trailer_signature)
{
    size_t lines_len = 0;

    SIG_ENSURE(mode_valid(mode), SIG_ERR_INVALID_ARG);
    SIG_ENSURE(count == 0 || mode_has_trailers(mode), SIG_ERR_INVALID_ARG);
    if (mode == SIG_CHUNKED_SIGNED_TRAILER)
        SIG_ENSURE(sig_is_sha256_hex(trailer_signature), SIG_ERR_INVALID_ARG);
    else
        SIG_ENSURE(trailer_signature.len == 0, SIG_ERR_INVALID_ARG);
    SIG_TRY(check_trailers(trailers, count, &lines_len));

    size_t need = lines_len + 2;
    if (mode == SIG_CHUNKED_SIGNED_TRAILER)
        need += sizeof(TRAILER_SIG_NAME ":") - 1 + SIG_SHA256_HEX_LEN + 2;
    SIG_ENSURE(out->cap - out->len >= need, SIG_ERR_TOO_LARGE);

    /* Cannot fail after the capacity check. */
    for (size_t i = 0; i < count; i++) {
        SIG_TRY(sig_buf_append_slice(out, trailers[i].name));
        SIG_TRY(sig_buf_append_byte(out, ':'));
        SIG_TRY(sig_buf_append_slice(out, trailers[i].value));
        SIG_TRY(sig_buf_append_slice(out, SIG_SLICE_LIT(CRLF)));
    }
    if (mode == SIG_CHUNKED_SIGNED_TRAILER) {
        SIG_TRY(sig_buf_append_slice(out, SIG_SLICE_LIT(TRAILER_SIG_NAME ":")));
        SIG_TRY(sig_buf_append_slice(out, trailer_signature));
        SIG_TRY(sig_buf_append_slice(out, SIG_SLICE_LIT(CRLF)));
    }
    return sig_buf_append_slice(out, SIG_SLICE_LIT(CRLF));
}

static bool is_amz_date(const char *d)
{
    for (size_t i = 0; i < SIG_AMZ_DATE_LEN; i++) {
        char c = d[i];
        bool ok = (i == 8) ? c == 'T' : (i == 15) ? c == 'Z' : (c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return d[SIG_AMZ_DATE_LEN] == '\0';
}

static bool has_prefix(struct sig_slice s, struct sig_slice prefix)
{
    return s.len >= prefix.len && sig_slice_eq((struct sig_slice){s.ptr, prefix.len}, prefix);
}

static bool has_suffix(struct sig_slice s, struct sig_slice suffix)
{
    return s.len >= suffix.len &&
           sig_slice_eq((struct sig_slice){s.ptr + (s.len - suffix.len), suffix.len}, suffix);
}

/* The seed must be the v4 header signature of a request whose payload hash is the mode's
 * literal: a seed signed for another payload hash would make S3 reject every chunk, and
 * catching the mismatch here names the real mistake. */
static enum sig_err check_seed(enum sig_chunked_mode mode, const struct sig_result *seed)
{
    struct sig_slice date = {(const uint8_t *)seed->amz_date, SIG_AMZ_DATE_LEN};
    struct sig_slice scope = seed->credential_scope;
    struct sig_slice sts = seed->string_to_sign;
    struct sig_slice cr = seed->canonical_request;
    struct sig_slice literal = sig_chunked_content_sha256(mode);

    SIG_ENSURE(sig_is_sha256_hex(seed->signature), SIG_ERR_INVALID_ARG);
    SIG_ENSURE(is_amz_date(seed->amz_date), SIG_ERR_INVALID_ARG);
    SIG_ENSURE(scope.ptr != NULL && scope.len > 8 + sizeof(SCOPE_TERMINATOR) - 1,
               SIG_ERR_INVALID_ARG);
    SIG_ENSURE(scope.len <= SIG_CHUNKED_MAX_SCOPE, SIG_ERR_BAD_SCOPE);
    /* The scope starts with the date of x-amz-date and ends with the v4 terminator. */
    SIG_ENSURE(has_prefix(scope, (struct sig_slice){date.ptr, 8}) && scope.ptr[8] == '/',
               SIG_ERR_INVALID_ARG);
    SIG_ENSURE(has_suffix(scope, SIG_SLICE_LIT(SCOPE_TERMINATOR)), SIG_ERR_INVALID_ARG);

    /* String to sign: algorithm LF date LF scope LF hash (IAM "Create a string to sign"). */
    size_t alg_len = sizeof(SEED_ALGORITHM "\n") - 1;
    SIG_ENSURE(sts.ptr != NULL && sts.len > alg_len + date.len + 1 + scope.len + 1,
               SIG_ERR_INVALID_ARG);
    SIG_ENSURE(has_prefix(sts, SIG_SLICE_LIT(SEED_ALGORITHM "\n")), SIG_ERR_INVALID_ARG);
    struct sig_slice rest = {sts.ptr + alg_len, sts.len - alg_len};
    SIG_ENSURE(has_prefix(rest, date) && rest.ptr[date.len] == '\n', SIG_ERR_INVALID_ARG);
    rest = (struct sig_slice){rest.ptr + date.len + 1, rest.len - date.len - 1};
    SIG_ENSURE(has_prefix(rest, scope) && rest.ptr[scope.len] == '\n', SIG_ERR_INVALID_ARG);

    /* The canonical request's last line is the payload hash. */
    SIG_ENSURE(cr.ptr != NULL && cr.len > literal.len, SIG_ERR_INVALID_ARG);
    SIG_ENSURE(has_suffix(cr, literal) && cr.ptr[cr.len - literal.len - 1] == '\n',
               SIG_ERR_INVALID_ARG);
    return SIG_OK;
}

/* Splits "date/region/service/aws4_request" (region and service contain no '/', as
 * sig_sign refuses one there). */
static enum sig_err split_scope(struct sig_slice scope, struct sig_slice *date,
                                struct sig_slice *region, struct sig_slice *service)
{
    struct sig_slice parts[4];
    size_t n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= scope.len; i++) {
        if (i < scope.len && scope.ptr[i] != '/')
            continue;
        SIG_ENSURE(n < 4, SIG_ERR_INVALID_ARG);
        parts[n++] = (struct sig_slice){scope.ptr + start, i - start};
        start = i + 1;
    }
    SIG_ENSURE(n == 4 && parts[1].len > 0 && parts[2].len > 0, SIG_ERR_INVALID_ARG);
    *date = parts[0];
    *region = parts[1];
    *service = parts[2];
    return SIG_OK;
}

static enum sig_err signer_init(struct sig_chunk_signer *s, enum sig_chunked_mode mode,
                                const struct sig_result *seed, struct sig_slice secret,
                                struct sig_key_cache *cache)
{
    struct sig_slice date, region, service;
    struct sig_buf b;

    SIG_ENSURE(mode == SIG_CHUNKED_SIGNED || mode == SIG_CHUNKED_SIGNED_TRAILER,
               SIG_ERR_INVALID_ARG);
    SIG_ENSURE(seed != NULL, SIG_ERR_INVALID_ARG);
    SIG_TRY(check_seed(mode, seed));
    SIG_TRY(split_scope(seed->credential_scope, &date, &region, &service));

    sig_buf_init(&b, s->scope, sizeof(s->scope));
    SIG_TRY(sig_buf_append_slice(&b, seed->credential_scope));
    s->scope_len = b.len;
    sig_buf_init(&b, s->amz_date, sizeof(s->amz_date));
    SIG_TRY(sig_buf_append(&b, seed->amz_date, SIG_AMZ_DATE_LEN + 1));
    sig_buf_init(&b, s->prev_signature, sizeof(s->prev_signature));
    SIG_TRY(sig_buf_append_slice(&b, seed->signature));
    SIG_TRY(sig_buf_append_byte(&b, '\0'));
    SIG_TRY(sig_signing_key(cache, secret, date, region, service, &s->key));
    s->mode = mode;
    s->short_chunk = false;
    s->phase = PHASE_DATA;
    return SIG_OK;
}

enum sig_err sig_chunk_signer_init(struct sig_chunk_signer *s, enum sig_chunked_mode mode,
                                   const struct sig_result *seed,
                                   struct sig_slice secret_access_key, struct sig_key_cache *cache)
{
    OPENSSL_cleanse(s, sizeof(*s));
    enum sig_err err = signer_init(s, mode, seed, secret_access_key, cache);
    if (err != SIG_OK)
        sig_chunk_signer_cleanup(s);
    return err;
}

/* HMAC(kSigning, algorithm LF date LF scope LF previous-signature LF tail), where the tail's
 * segments are given by the caller; the result becomes the previous signature. */
static void sign_and_chain(struct sig_chunk_signer *s, struct sig_slice algorithm,
                           const struct sig_slice *tail, size_t tail_count,
                           char out[SIG_SHA256_HEX_LEN + 1])
{
    struct sig_slice segs[12];
    size_t n = 0;
    uint8_t mac[SIG_SHA256_LEN];

    segs[n++] = algorithm;
    segs[n++] = SIG_SLICE_LIT("\n");
    segs[n++] = (struct sig_slice){(const uint8_t *)s->amz_date, SIG_AMZ_DATE_LEN};
    segs[n++] = SIG_SLICE_LIT("\n");
    segs[n++] = (struct sig_slice){s->scope, s->scope_len};
    segs[n++] = SIG_SLICE_LIT("\n");
    segs[n++] = (struct sig_slice){(const uint8_t *)s->prev_signature, SIG_SHA256_HEX_LEN};
    segs[n++] = SIG_SLICE_LIT("\n");
    for (size_t i = 0; i < tail_count; i++)
        segs[n++] = tail[i];

    sig_hmac_iov(&s->key, segs, n, mac);
    sig_hex_lower(mac, sizeof(mac), s->prev_signature);
    OPENSSL_cleanse(mac, sizeof(mac));

    struct sig_buf b;
    sig_buf_init(&b, out, SIG_SHA256_HEX_LEN + 1);
    /* Cannot fail: out holds 65 bytes. */
    enum sig_err err = sig_buf_append(&b, s->prev_signature, SIG_SHA256_HEX_LEN + 1);
    assert(err == SIG_OK);
    (void)err;
}

enum sig_err sig_chunk_sign(struct sig_chunk_signer *s, uint64_t data_len,
                            const uint8_t data_sha256[SIG_SHA256_LEN],
                            char out[SIG_SHA256_HEX_LEN + 1])
{
    char data_hex[SIG_SHA256_HEX_LEN + 1];

    SIG_ENSURE(s->phase != PHASE_NONE, SIG_ERR_INVALID_ARG);
    SIG_ENSURE(s->phase == PHASE_DATA, SIG_ERR_BAD_CHUNK);
    SIG_ENSURE(data_len <= SIG_CHUNKED_MAX_CHUNK_SIZE, SIG_ERR_TOO_LARGE);
    if (data_len == 0) {
        SIG_ENSURE(CRYPTO_memcmp(data_sha256, empty_sha256, SIG_SHA256_LEN) == 0,
                   SIG_ERR_INVALID_ARG);
    } else {
        /* Only the last data chunk may be short; S3 rejects a short one in the middle. */
        SIG_ENSURE(!s->short_chunk, SIG_ERR_BAD_CHUNK);
    }

    sig_hex_lower(data_sha256, SIG_SHA256_LEN, data_hex);
    const struct sig_slice tail[2] = {
        SIG_SLICE_LIT(SIG_EMPTY_SHA256_HEX "\n"),
        {(const uint8_t *)data_hex, SIG_SHA256_HEX_LEN},
    };
    sign_and_chain(s, SIG_SLICE_LIT(CHUNK_ALGORITHM), tail, 2, out);

    if (data_len == 0)
        s->phase = PHASE_FINAL_SIGNED;
    else if (data_len < SIG_CHUNKED_MIN_CHUNK_SIZE)
        s->short_chunk = true;
    return SIG_OK;
}

enum sig_err sig_chunk_sign_iov(struct sig_chunk_signer *s, const struct sig_slice *segs,
                                size_t count, char out[SIG_SHA256_HEX_LEN + 1])
{
    struct sig_sha256 h;
    uint8_t digest[SIG_SHA256_LEN];
    uint64_t total = 0;

    SIG_ENSURE(count == 0 || segs != NULL, SIG_ERR_INVALID_ARG);
    for (size_t i = 0; i < count; i++) {
        SIG_ENSURE(segs[i].len <= SIG_CHUNKED_MAX_CHUNK_SIZE - total, SIG_ERR_TOO_LARGE);
        total += segs[i].len;
    }
    sig_sha256_init(&h);
    sig_sha256_update_iov(&h, segs, count);
    sig_sha256_final(&h, digest);
    return sig_chunk_sign(s, total, digest, out);
}

enum sig_err sig_chunk_sign_trailer(struct sig_chunk_signer *s, const struct sig_header *trailers,
                                    size_t count, char out[SIG_SHA256_HEX_LEN + 1])
{
    size_t lines_len = 0;
    struct sig_sha256 h;
    char canon_hex[SIG_SHA256_HEX_LEN + 1];

    SIG_ENSURE(s->mode == SIG_CHUNKED_SIGNED_TRAILER, SIG_ERR_INVALID_ARG);
    SIG_ENSURE(s->phase != PHASE_NONE, SIG_ERR_INVALID_ARG);
    SIG_ENSURE(s->phase == PHASE_FINAL_SIGNED, SIG_ERR_BAD_CHUNK);
    SIG_TRY(check_trailers(trailers, count, &lines_len));

    /* The canonical trailer: name ":" value LF per trailer, in order (validated sorted and
     * whitespace-free, so this is also what canonical-header rules would produce). */
    sig_sha256_init(&h);
    for (size_t i = 0; i < count; i++) {
        const struct sig_slice line[4] = {trailers[i].name, SIG_SLICE_LIT(":"), trailers[i].value,
                                          SIG_SLICE_LIT("\n")};
        sig_sha256_update_iov(&h, line, 4);
    }
    sig_sha256_final_hex(&h, canon_hex);

    const struct sig_slice tail[1] = {{(const uint8_t *)canon_hex, SIG_SHA256_HEX_LEN}};
    sign_and_chain(s, SIG_SLICE_LIT(TRAILER_ALGORITHM), tail, 1, out);
    s->phase = PHASE_TRAILER_SIGNED;
    return SIG_OK;
}

void sig_chunk_signer_cleanup(struct sig_chunk_signer *s)
{
    if (s == NULL)
        return;
    sig_hmac_cleanup(&s->key);
    OPENSSL_cleanse(s, sizeof(*s));
}
