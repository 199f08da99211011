/*
 * sig_sha256.h: SHA-256, HMAC-SHA-256 and hex helpers without heap allocation.
 *
 * Built on OpenSSL's low-level SHA-256 (which uses SHA-NI/AVX2 where the CPU has them).
 * The EVP interface allocates a context per digest and dispatches through providers,
 * which costs more than the hashing itself for the short messages SigV4 signs.
 */
#ifndef SIG_SHA256_H
#define SIG_SHA256_H

#include <openssl/sha.h>

#include "sig_types.h"

#define SIG_SHA256_LEN 32
#define SIG_SHA256_HEX_LEN 64

/* The hex of the SHA-256 of zero bytes. */
#define SIG_EMPTY_SHA256_HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A streaming SHA-256 state; caller-owned storage (stack, struct member). */
struct sig_sha256 {
    SHA256_CTX ctx;
};

void sig_sha256_init(struct sig_sha256 *h);
void sig_sha256_update(struct sig_sha256 *h, const void *p, size_t n);
/* Hashes `count` non-contiguous segments in order, as if concatenated; no copy is made. */
void sig_sha256_update_iov(struct sig_sha256 *h, const struct sig_slice *segs, size_t count);
/* Writes the digest and wipes the state. */
void sig_sha256_final(struct sig_sha256 *h, uint8_t out[SIG_SHA256_LEN]);
/* Writes 64 lowercase hex digits and a NUL, and wipes the state. */
void sig_sha256_final_hex(struct sig_sha256 *h, char out[SIG_SHA256_HEX_LEN + 1]);
void sig_sha256(const void *p, size_t n, uint8_t out[SIG_SHA256_LEN]);

/* True if s is exactly 64 lowercase hex digits (a SHA-256 or SigV4 signature in hex). */
bool sig_is_sha256_hex(struct sig_slice s);

/* Writes 2*n lowercase hex digits and a NUL to `out` (which holds 2*n+1 bytes). */
void sig_hex_lower(const uint8_t *in, size_t n, char *out);

/*
 * A keyed HMAC-SHA-256 state: the inner and outer hashes after absorbing the padded key,
 * so each MAC costs only the message blocks plus one outer block. Holds key material:
 * release with sig_hmac_cleanup.
 */
struct sig_hmac {
    struct sig_sha256 inner;
    struct sig_sha256 outer;
};

void sig_hmac_init(struct sig_hmac *k, const void *key, size_t key_len);
/* MAC of msg under k; k is not modified, so one keyed state serves many messages. */
void sig_hmac(const struct sig_hmac *k, const void *msg, size_t n, uint8_t out[SIG_SHA256_LEN]);
/* MAC of the concatenation of segments. */
void sig_hmac_iov(const struct sig_hmac *k, const struct sig_slice *segs, size_t count,
                  uint8_t out[SIG_SHA256_LEN]);
void sig_hmac_cleanup(struct sig_hmac *k);
/* One-shot HMAC-SHA-256; intermediate state is wiped. */
void sig_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t n,
                     uint8_t out[SIG_SHA256_LEN]);

#endif
