/*
 * sig_types.h: the signer's shared vocabulary: error codes, borrowed slices and
 * fixed-capacity buffers over caller-provided memory.
 *
 * The signer never allocates: every output lands in memory the caller owns.
 */
#ifndef SIG_TYPES_H
#define SIG_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIG_MUST_USE __attribute__((warn_unused_result))

/* Signer error codes occupy 100..199 (providers 200s, proxy 300s). */
enum sig_err {
    SIG_OK = 0,
    SIG_ERR_INVALID_ARG = 100,
    SIG_ERR_BAD_PERCENT_ENCODING = 101,
    SIG_ERR_BAD_HEADER_NAME = 102,
    SIG_ERR_BAD_HEADER_VALUE = 103,
    SIG_ERR_TOO_MANY_HEADERS = 104,
    SIG_ERR_TOO_MANY_QUERY_PARAMS = 105,
    SIG_ERR_TOO_LARGE = 106,
    SIG_ERR_BAD_METHOD = 107,
    SIG_ERR_BAD_PATH = 108,
    SIG_ERR_BAD_PAYLOAD_HASH = 109,
    SIG_ERR_BAD_TIME = 110,
    SIG_ERR_CRYPTO = 111,
    SIG_ERR_BAD_CHUNK = 112,
    SIG_ERR_BAD_CREDENTIALS = 113,
    SIG_ERR_BAD_SCOPE = 114,
    SIG_ERR_BAD_EXPIRES = 115,
    SIG_ERR_BAD_HOST = 116,
};

/* The highest signer error code (for range checks in tests). */
#define SIG_ERR_LAST SIG_ERR_BAD_HOST

/* A fixed, human-readable message for the code; never NULL, never contains input. */
const char *sig_err_str(enum sig_err err);

#define SIG_TRY(expr)                                                                              \
    do {                                                                                           \
        enum sig_err sig_try_err_ = (expr);                                                        \
        if (sig_try_err_ != SIG_OK)                                                                \
            return sig_try_err_;                                                                   \
    } while (0)

#define SIG_ENSURE(cond, code)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return (code);                                                                         \
    } while (0)

/* The value of one hex digit (either case), or -1. */
static inline int sig_hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A borrowed view of bytes. Never freed through the slice; must not outlive its backing store. */
struct sig_slice {
    const uint8_t *ptr;
    size_t len;
};

#define SIG_SLICE_LIT(s) ((struct sig_slice){(const uint8_t *)(s), sizeof(s) - 1})

/* A slice over a NUL-terminated string (NULL gives the empty slice). */
struct sig_slice sig_slice_from_cstr(const char *s);
bool sig_slice_eq(struct sig_slice a, struct sig_slice b);
/* Byte-wise order: negative, zero or positive as memcmp; a prefix sorts first. */
int sig_slice_cmp(struct sig_slice a, struct sig_slice b);
/* ASCII case-insensitive equality. */
bool sig_slice_eq_nocase(struct sig_slice a, struct sig_slice b);

/*
 * A fixed-capacity byte buffer over caller-owned memory. Appends that would pass `cap`
 * fail with SIG_ERR_TOO_LARGE and leave the buffer unchanged.
 */
struct sig_buf {
    uint8_t *ptr; /* caller-owned storage */
    size_t len;
    size_t cap;
};

void sig_buf_init(struct sig_buf *b, void *mem, size_t cap);

/* The appends are inline: canonicalization appends byte by byte on the signing hot path. */
SIG_MUST_USE static inline enum sig_err sig_buf_append(struct sig_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return SIG_OK;
    if (b->cap - b->len < n)
        return SIG_ERR_TOO_LARGE;
    __builtin_memcpy(b->ptr + b->len, p, n);
    b->len += n;
    return SIG_OK;
}

SIG_MUST_USE static inline enum sig_err sig_buf_append_slice(struct sig_buf *b, struct sig_slice s)
{
    return sig_buf_append(b, s.ptr, s.len);
}

SIG_MUST_USE static inline enum sig_err sig_buf_append_byte(struct sig_buf *b, uint8_t c)
{
    if (b->len >= b->cap)
        return SIG_ERR_TOO_LARGE;
    b->ptr[b->len++] = c;
    return SIG_OK;
}

struct sig_slice sig_buf_slice(const struct sig_buf *b);
/* Wipes the used bytes (OPENSSL_cleanse) and empties the buffer. */
void sig_buf_wipe(struct sig_buf *b);

#endif
