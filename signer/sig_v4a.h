/*
 * sig_v4a.h: SigV4a (AWS4-ECDSA-P256-SHA256) keys and signatures.
 *
 * The ECDSA P-256 private key is derived deterministically from the access key id and the
 * secret access key (NIST SP 800-108 KDF in counter mode with HMAC-SHA-256, as AWS's SDKs
 * do), so a given credential always yields the same key pair.
 *
 * Unlike the rest of the signer, a key holds an OpenSSL EVP_PKEY, which OpenSSL allocates:
 * derive it once per credential and reuse it (derivation costs a scalar multiplication).
 */
#ifndef SIG_V4A_H
#define SIG_V4A_H

#include "sig_types.h"

#define SIG_V4A_COORD_LEN 32
/* A DER ECDSA P-256 signature is at most 72 bytes. */
#define SIG_V4A_MAX_DER 72
/* Longest accepted credentials (IAM access key ids are at most 128 characters; the secret
 * matches the v4 key cache's SIG_KEY_CACHE_MAX_SECRET). */
#define SIG_V4A_MAX_ACCESS_KEY_ID_LEN 128
#define SIG_V4A_MAX_SECRET_LEN 128

/* Opaque; owns an EVP_PKEY and the public coordinates. */
struct sig_v4a_key;

/* Derives the key pair for these credentials (borrowed, read only during the call). On
 * success *out is owned by the caller and released with sig_v4a_key_free; on error *out is
 * NULL. Errors: SIG_ERR_BAD_CREDENTIALS (either slice empty or longer than its
 * SIG_V4A_MAX_*_LEN), SIG_ERR_INVALID_ARG (out is NULL), SIG_ERR_CRYPTO. */
SIG_MUST_USE enum sig_err sig_v4a_key_derive(struct sig_slice access_key_id,
                                             struct sig_slice secret_access_key,
                                             struct sig_v4a_key **out);

/* Frees the key (wiping the private scalar). Accepts NULL. */
void sig_v4a_key_free(struct sig_v4a_key *key);

/* The public point as big-endian X and Y coordinates. */
void sig_v4a_key_public(const struct sig_v4a_key *key, uint8_t x[SIG_V4A_COORD_LEN],
                        uint8_t y[SIG_V4A_COORD_LEN]);

/* Signs SHA-256(msg) with ECDSA; writes the DER signature (<= SIG_V4A_MAX_DER bytes) to
 * der and its length to *der_len. Randomized (as ECDSA is). The key may be shared by threads
 * signing concurrently. Errors: SIG_ERR_INVALID_ARG (a NULL pointer; msg may be NULL when
 * n == 0), SIG_ERR_CRYPTO. */
SIG_MUST_USE enum sig_err sig_v4a_sign(const struct sig_v4a_key *key, const void *msg, size_t n,
                                       uint8_t der[SIG_V4A_MAX_DER], size_t *der_len);

/* Verifies a DER signature over SHA-256(msg) with the public point (x, y). SIG_OK when it
 * verifies, SIG_ERR_CRYPTO otherwise (including a point not on the curve, and DER that is
 * empty, longer than SIG_V4A_MAX_DER or not canonical); SIG_ERR_INVALID_ARG for a NULL
 * pointer (msg may be NULL when n == 0). For tests and diagnostics. */
SIG_MUST_USE enum sig_err sig_v4a_verify(const uint8_t x[SIG_V4A_COORD_LEN],
                                         const uint8_t y[SIG_V4A_COORD_LEN], const void *msg,
                                         size_t n, const uint8_t *der, size_t der_len);

#endif
