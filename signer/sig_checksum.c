/*
 * sig_checksum.c: CRC-32, CRC-32C, base64 and the S3 checksum trailer values.
 *
 * Both CRCs are the reflected (LSB-first) forms with initial value and final XOR 0xFFFFFFFF,
 * as in zlib and RFC 3720 (iSCSI) section 12.1. The tables are built once by a load-time
 * constructor rather than spelled out as 4096 literals: they are cheap to compute (a few
 * microseconds) and a generated table is easier to trust than a pasted one.
 */
#include "sig_checksum.h"

#include <assert.h>

#include <openssl/crypto.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <smmintrin.h>
#include <wmmintrin.h>
#endif

#define CRC32_POLY 0xEDB88320u
#define CRC32C_POLY 0x82F63B78u

/* Slice-by-8 tables: t[0] is the classic byte table; t[k][b] is the CRC of byte b followed by
 * k zero bytes, so eight table lookups advance the CRC by eight input bytes at once. */
static uint32_t crc32_table[8][256];
static uint32_t crc32c_table[8][256];
static bool crc32c_hw;
static bool crc32_clmul;

static void build_table(uint32_t t[8][256], uint32_t poly)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
        t[0][i] = c;
    }
    for (int k = 1; k < 8; k++) {
        for (uint32_t i = 0; i < 256; i++)
            t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
}

__attribute__((constructor)) static void checksum_tables_init(void)
{
    build_table(crc32_table, CRC32_POLY);
    build_table(crc32c_table, CRC32C_POLY);
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc32c_hw = __builtin_cpu_supports("sse4.2");
    crc32_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
}

/* Little-endian loads built from bytes: no alignment or aliasing assumptions, and compilers
 * turn them into single loads on x86 and ARM. */
static inline uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t load_le64(const uint8_t *p)
{
    return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}

/* Runs on the inverted register; callers do the pre- and post-inversion. */
static uint32_t crc_slice8(const uint32_t t[8][256], uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = c ^ load_le32(p);
        uint32_t hi = load_le32(p + 4);
        c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
            t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
/*
 * CRC-32 by carry-less multiplication: Gopal et al., "Fast CRC Computation for Generic
 * Polynomials Using PCLMULQDQ Instruction" (Intel, 2009), in its bit-reflected form. Four
 * 128-bit lanes are folded forward over 64 bytes per step, then into one lane, then reduced
 * 128 -> 64 -> 32 bits, the last step by Barrett reduction. The constants are powers of x
 * modulo the CRC-32 polynomial, bit-reflected and shifted one bit (the reflected product of
 * two 64-bit values is 127 bits):
 *   k1 = x^(4*128+32) mod P, k2 = x^(4*128-32) mod P  (fold by 512 bits)
 *   k3 = x^(128+32) mod P,   k4 = x^(128-32) mod P    (fold by 128 bits)
 *   k5 = x^64 mod P; mu = floor(x^64 / P); P itself with its x^32 term.
 * Runs on the inverted register like crc_slice8; needs n >= 64 and consumes whole 16-byte
 * blocks, returning how many bytes it used in *used.
 */
static inline __attribute__((target("pclmul,sse4.1"))) __m128i fold128(__m128i x, __m128i k,
                                                                       __m128i next)
{
    __m128i lo = _mm_clmulepi64_si128(x, k, 0x00);
    __m128i hi = _mm_clmulepi64_si128(x, k, 0x11);
    return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

static inline __attribute__((target("pclmul,sse4.1"))) __m128i load128(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_pclmul(uint32_t c, const uint8_t *p,
                                                                      size_t n, size_t *used)
{
    const __m128i k1k2 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);
    const __m128i k3k4 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);
    const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124);
    const __m128i poly_mu = _mm_set_epi64x(0x1f7011641, 0x1db710641);
    const __m128i mask32 = _mm_set_epi32(0, 0, 0, -1);
    size_t start_n = n;

    __m128i x1 = _mm_xor_si128(load128(p), _mm_cvtsi32_si128((int)c));
    __m128i x2 = load128(p + 16);
    __m128i x3 = load128(p + 32);
    __m128i x4 = load128(p + 48);
    p += 64;
    n -= 64;
    while (n >= 64) {
        x1 = fold128(x1, k1k2, load128(p));
        x2 = fold128(x2, k1k2, load128(p + 16));
        x3 = fold128(x3, k1k2, load128(p + 32));
        x4 = fold128(x4, k1k2, load128(p + 48));
        p += 64;
        n -= 64;
    }
    x1 = fold128(x1, k3k4, x2);
    x1 = fold128(x1, k3k4, x3);
    x1 = fold128(x1, k3k4, x4);
    while (n >= 16) {
        x1 = fold128(x1, k3k4, load128(p));
        p += 16;
        n -= 16;
    }

    /* 128 -> 64 bits. */
    __m128i t = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), t);
    /* 64 -> 32 bits (appending the 32 zero bits of the CRC definition). */
    t = _mm_srli_si128(x1, 4);
    x1 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00);
    x1 = _mm_xor_si128(x1, t);
    /* Barrett reduction to the 32-bit remainder. */
    t = x1;
    x1 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly_mu, 0x10);
    x1 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly_mu, 0x00);
    x1 = _mm_xor_si128(x1, t);

    *used = start_n - n;
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

uint32_t sig_crc32_update(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = ~crc;

    if (n == 0)
        return crc;
#if defined(__x86_64__)
    /* Below a few blocks the setup and reduction cost more than the tables. */
    if (crc32_clmul && n >= 128) {
        size_t used = 0;
        c = crc32_pclmul(c, b, n, &used);
        b += used;
        n -= used;
    }
#endif
    return ~crc_slice8(crc32_table, c, b, n);
}

uint32_t sig_crc32_update_portable(uint32_t crc, const void *p, size_t n)
{
    if (n == 0)
        return crc;
    return ~crc_slice8(crc32_table, ~crc, p, n);
}

bool sig_crc32_hw_available(void)
{
    return crc32_clmul;
}

uint32_t sig_crc32c_update_portable(uint32_t crc, const void *p, size_t n)
{
    if (n == 0)
        return crc;
    return ~crc_slice8(crc32c_table, ~crc, p, n);
}

#if defined(__x86_64__)
/* The SSE4.2 crc32 instruction computes exactly CRC-32C (not CRC-32), 8 bytes per
 * instruction. Compiled for SSE4.2 here only, and called only after the CPUID check. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t c, const uint8_t *p,
                                                               size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        c64 = _mm_crc32_u64(c64, load_le64(p));
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n-- > 0)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

uint32_t sig_crc32c_update(uint32_t crc, const void *p, size_t n)
{
    if (n == 0)
        return crc;
#if defined(__x86_64__)
    if (crc32c_hw)
        return ~crc32c_sse42(~crc, p, n);
#endif
    return ~crc_slice8(crc32c_table, ~crc, p, n);
}

bool sig_crc32c_hw_available(void)
{
    return crc32c_hw;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum sig_err sig_base64_append(struct sig_buf *out, struct sig_slice in)
{
    /* (SIZE_MAX / 4) * 3 input bytes encode to at most SIZE_MAX - 3 characters. */
    SIG_ENSURE(in.len <= (SIZE_MAX / 4) * 3, SIG_ERR_TOO_LARGE);
    SIG_ENSURE(out->cap - out->len >= SIG_BASE64_LEN(in.len), SIG_ERR_TOO_LARGE);

    /* Encode through a small stack block so only sig_buf touches the output memory. */
    char block[64];
    size_t used = 0;
    size_t i = 0;
    while (i < in.len) {
        size_t take = in.len - i < 3 ? in.len - i : 3;
        uint32_t v = (uint32_t)in.ptr[i] << 16;
        if (take > 1)
            v |= (uint32_t)in.ptr[i + 1] << 8;
        if (take > 2)
            v |= in.ptr[i + 2];
        block[used++] = b64_alphabet[(v >> 18) & 63];
        block[used++] = b64_alphabet[(v >> 12) & 63];
        block[used++] = take > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
        block[used++] = take > 2 ? b64_alphabet[v & 63] : '=';
        i += take;
        if (used == sizeof(block) || i == in.len) {
            /* Cannot fail: the whole length was checked above. */
            SIG_TRY(sig_buf_append(out, block, used));
            used = 0;
        }
    }
    return SIG_OK;
}

enum sig_err sig_checksum_alg_parse(struct sig_slice name, enum sig_checksum_alg *out)
{
    if (sig_slice_eq_nocase(name, SIG_SLICE_LIT("CRC32")))
        *out = SIG_CHECKSUM_CRC32;
    else if (sig_slice_eq_nocase(name, SIG_SLICE_LIT("CRC32C")))
        *out = SIG_CHECKSUM_CRC32C;
    else if (sig_slice_eq_nocase(name, SIG_SLICE_LIT("SHA256")))
        *out = SIG_CHECKSUM_SHA256;
    else
        return SIG_ERR_INVALID_ARG;
    return SIG_OK;
}

struct sig_slice sig_checksum_header_name(enum sig_checksum_alg alg)
{
    switch (alg) {
    case SIG_CHECKSUM_CRC32:
        return SIG_SLICE_LIT("x-amz-checksum-crc32");
    case SIG_CHECKSUM_CRC32C:
        return SIG_SLICE_LIT("x-amz-checksum-crc32c");
    case SIG_CHECKSUM_SHA256:
        return SIG_SLICE_LIT("x-amz-checksum-sha256");
    }
    return (struct sig_slice){NULL, 0};
}

size_t sig_checksum_digest_len(enum sig_checksum_alg alg)
{
    switch (alg) {
    case SIG_CHECKSUM_CRC32:
    case SIG_CHECKSUM_CRC32C:
        return 4;
    case SIG_CHECKSUM_SHA256:
        return SIG_SHA256_LEN;
    }
    return 0;
}

size_t sig_checksum_b64_len(enum sig_checksum_alg alg)
{
    return SIG_BASE64_LEN(sig_checksum_digest_len(alg));
}

enum sig_err sig_checksum_init(struct sig_checksum *c, enum sig_checksum_alg alg)
{
    SIG_ENSURE(sig_checksum_digest_len(alg) != 0, SIG_ERR_INVALID_ARG);
    c->alg = alg;
    c->crc = 0;
    if (alg == SIG_CHECKSUM_SHA256)
        sig_sha256_init(&c->sha);
    return SIG_OK;
}

void sig_checksum_update(struct sig_checksum *c, const void *p, size_t n)
{
    switch (c->alg) {
    case SIG_CHECKSUM_CRC32:
        c->crc = sig_crc32_update(c->crc, p, n);
        break;
    case SIG_CHECKSUM_CRC32C:
        c->crc = sig_crc32c_update(c->crc, p, n);
        break;
    case SIG_CHECKSUM_SHA256:
        sig_sha256_update(&c->sha, p, n);
        break;
    }
}

void sig_checksum_update_iov(struct sig_checksum *c, const struct sig_slice *segs, size_t count)
{
    for (size_t i = 0; i < count; i++)
        sig_checksum_update(c, segs[i].ptr, segs[i].len);
}

size_t sig_checksum_final(struct sig_checksum *c, uint8_t out[SIG_CHECKSUM_MAX_DIGEST])
{
    size_t n = sig_checksum_digest_len(c->alg);
    if (n == 0) {
        /* Not initialised with a valid algorithm: nothing to report. */
    } else if (c->alg == SIG_CHECKSUM_SHA256) {
        sig_sha256_final(&c->sha, out);
    } else {
        out[0] = (uint8_t)(c->crc >> 24);
        out[1] = (uint8_t)(c->crc >> 16);
        out[2] = (uint8_t)(c->crc >> 8);
        out[3] = (uint8_t)c->crc;
    }
    OPENSSL_cleanse(c, sizeof(*c));
    return n;
}

size_t sig_checksum_final_b64(struct sig_checksum *c, char out[SIG_CHECKSUM_MAX_B64 + 1])
{
    uint8_t digest[SIG_CHECKSUM_MAX_DIGEST];
    struct sig_buf b;
    size_t n = sig_checksum_final(c, digest);

    sig_buf_init(&b, out, SIG_CHECKSUM_MAX_B64);
    /* Cannot fail: SIG_CHECKSUM_MAX_B64 holds the base64 of the longest digest. */
    enum sig_err err = sig_base64_append(&b, (struct sig_slice){digest, n});
    assert(err == SIG_OK);
    (void)err;
    out[b.len] = '\0';
    OPENSSL_cleanse(digest, sizeof(digest));
    return b.len;
}
