/* sig_types.c: error strings, slices and fixed-capacity buffers. */
#include "sig_types.h"

#include <string.h>

#include <openssl/crypto.h>

const char *sig_err_str(enum sig_err err)
{
    switch (err) {
    case SIG_OK:
        return "ok";
    case SIG_ERR_INVALID_ARG:
        return "invalid argument";
    case SIG_ERR_BAD_PERCENT_ENCODING:
        return "malformed percent-encoding";
    case SIG_ERR_BAD_HEADER_NAME:
        return "header name is not a valid token";
    case SIG_ERR_BAD_HEADER_VALUE:
        return "header value contains a forbidden byte";
    case SIG_ERR_TOO_MANY_HEADERS:
        return "too many headers to sign";
    case SIG_ERR_TOO_MANY_QUERY_PARAMS:
        return "too many query parameters to sign";
    case SIG_ERR_TOO_LARGE:
        return "request too large to canonicalize";
    case SIG_ERR_BAD_METHOD:
        return "method is not a valid token";
    case SIG_ERR_BAD_PATH:
        return "path contains a forbidden byte";
    case SIG_ERR_BAD_PAYLOAD_HASH:
        return "payload hash is neither 64 hex digits nor a known literal";
    case SIG_ERR_BAD_TIME:
        return "signing time out of range";
    case SIG_ERR_CRYPTO:
        return "cryptographic operation failed";
    case SIG_ERR_BAD_CHUNK:
        return "invalid aws-chunked framing";
    case SIG_ERR_BAD_CREDENTIALS:
        return "credentials are empty, too long, or contain a forbidden byte";
    case SIG_ERR_BAD_SCOPE:
        return "region or service name is empty, too long, or has a forbidden byte";
    case SIG_ERR_BAD_EXPIRES:
        return "expiry must be between 1 and 604800 seconds";
    case SIG_ERR_BAD_HOST:
        return "request must have exactly one Host header";
    }
    return "unknown signer error";
}

struct sig_slice sig_slice_from_cstr(const char *s)
{
    if (s == NULL)
        return (struct sig_slice){NULL, 0};
    return (struct sig_slice){(const uint8_t *)s, strlen(s)};
}

bool sig_slice_eq(struct sig_slice a, struct sig_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int sig_slice_cmp(struct sig_slice a, struct sig_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n == 0 ? 0 : memcmp(a.ptr, b.ptr, n);
    if (c != 0)
        return c;
    return (a.len > b.len) - (a.len < b.len);
}

static uint8_t ascii_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

bool sig_slice_eq_nocase(struct sig_slice a, struct sig_slice b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        if (ascii_lower(a.ptr[i]) != ascii_lower(b.ptr[i]))
            return false;
    }
    return true;
}

void sig_buf_init(struct sig_buf *b, void *mem, size_t cap)
{
    b->ptr = mem;
    b->len = 0;
    b->cap = mem == NULL ? 0 : cap;
}

struct sig_slice sig_buf_slice(const struct sig_buf *b)
{
    return (struct sig_slice){b->ptr, b->len};
}

void sig_buf_wipe(struct sig_buf *b)
{
    if (b->ptr != NULL && b->len > 0)
        OPENSSL_cleanse(b->ptr, b->len);
    b->len = 0;
}
