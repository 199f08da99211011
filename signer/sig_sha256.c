/*
 * sig_sha256.c: SHA-256 and HMAC on OpenSSL's low-level SHA-256.
 *
 * The low-level API is deprecated in OpenSSL 3 in favour of EVP, but EVP allocates and
 * dispatches through providers on every init, which would dominate the cost of a SigV4
 * signature (a few SHA-256 blocks). This file is the only user of the deprecated calls.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "sig_sha256.h"

#include <string.h>

#include <openssl/crypto.h>

#define HMAC_BLOCK 64

void sig_sha256_init(struct sig_sha256 *h)
{
    SHA256_Init(&h->ctx);
}

void sig_sha256_update(struct sig_sha256 *h, const void *p, size_t n)
{
    if (n > 0)
        SHA256_Update(&h->ctx, p, n);
}

void sig_sha256_update_iov(struct sig_sha256 *h, const struct sig_slice *segs, size_t count)
{
    for (size_t i = 0; i < count; i++)
        sig_sha256_update(h, segs[i].ptr, segs[i].len);
}

void sig_sha256_final(struct sig_sha256 *h, uint8_t out[SIG_SHA256_LEN])
{
    SHA256_Final(out, &h->ctx);
    OPENSSL_cleanse(h, sizeof(*h));
}

void sig_sha256_final_hex(struct sig_sha256 *h, char out[SIG_SHA256_HEX_LEN + 1])
{
    uint8_t md[SIG_SHA256_LEN];
    sig_sha256_final(h, md);
    sig_hex_lower(md, sizeof(md), out);
}

void sig_sha256(const void *p, size_t n, uint8_t out[SIG_SHA256_LEN])
{
    struct sig_sha256 h;
    sig_sha256_init(&h);
    sig_sha256_update(&h, p, n);
    sig_sha256_final(&h, out);
}

void sig_hex_lower(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

bool sig_is_sha256_hex(struct sig_slice s)
{
    if (s.len != SIG_SHA256_HEX_LEN)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

void sig_hmac_init(struct sig_hmac *k, const void *key, size_t key_len)
{
    uint8_t block[HMAC_BLOCK] = {0};
    uint8_t pad[HMAC_BLOCK];

    /* RFC 2104: keys longer than the block are hashed first. */
    if (key_len > HMAC_BLOCK)
        sig_sha256(key, key_len, block);
    else if (key_len > 0)
        memcpy(block, key, key_len);

    for (size_t i = 0; i < HMAC_BLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    sig_sha256_init(&k->inner);
    sig_sha256_update(&k->inner, pad, HMAC_BLOCK);
    for (size_t i = 0; i < HMAC_BLOCK; i++)
        pad[i] = block[i] ^ 0x5c;
    sig_sha256_init(&k->outer);
    sig_sha256_update(&k->outer, pad, HMAC_BLOCK);

    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
}

void sig_hmac_iov(const struct sig_hmac *k, const struct sig_slice *segs, size_t count,
                  uint8_t out[SIG_SHA256_LEN])
{
    struct sig_sha256 h = k->inner;
    uint8_t inner_md[SIG_SHA256_LEN];

    sig_sha256_update_iov(&h, segs, count);
    sig_sha256_final(&h, inner_md);
    h = k->outer;
    sig_sha256_update(&h, inner_md, sizeof(inner_md));
    sig_sha256_final(&h, out);
    OPENSSL_cleanse(inner_md, sizeof(inner_md));
}

void sig_hmac(const struct sig_hmac *k, const void *msg, size_t n, uint8_t out[SIG_SHA256_LEN])
{
    struct sig_slice seg = {msg, n};
    sig_hmac_iov(k, &seg, 1, out);
}

void sig_hmac_cleanup(struct sig_hmac *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

void sig_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t n,
                     uint8_t out[SIG_SHA256_LEN])
{
    struct sig_hmac k;
    sig_hmac_init(&k, key, key_len);
    sig_hmac(&k, msg, n, out);
    sig_hmac_cleanup(&k);
}
