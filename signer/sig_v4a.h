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

/* Opaque; owns an EVP_PKEY and the public coordinates. */
struct sig_v4a_key;

/* Derives the key pair for these credentials. On success *out is owned by the caller and
 * released with sig_v4a_key_free. Errors: SIG_ERR_BAD_CREDENTIALS, SIG_ERR_CRYPTO. */
SIG_MUST_USE enum sig_err sig_v4a_key_derive(struct sig_slice access_key_id,
                                             struct sig_slice secret_access_key,
                                             struct sig_v4a_key **out);

/* Frees the key (wiping the private scalar). Accepts NULL. */
void sig_v4a_key_free(struct sig_v4a_key *key);

/* The public point as big-endian X and Y coordinates. */
void sig_v4a_key_public(const struct sig_v4a_key *key, uint8_t x[SIG_V4A_COORD_LEN],
                        uint8_t y[SIG_V4A_COORD_LEN]);

/* Signs SHA-256(msg) with ECDSA; writes the DER signature (<= SIG_V4A_MAX_DER bytes) to
 * der and its length to *der_len. Randomized (as ECDSA is). Error: SIG_ERR_CRYPTO. */
SIG_MUST_USE enum sig_err sig_v4a_sign(const struct sig_v4a_key *key, const void *msg, size_t n,
                                       uint8_t der[SIG_V4A_MAX_DER], size_t *der_len);

/* Verifies a DER signature over SHA-256(msg) with the public point (x, y). SIG_OK when it
 * verifies, SIG_ERR_CRYPTO otherwise. For tests and diagnostics. */
SIG_MUST_USE enum sig_err sig_v4a_verify(const uint8_t x[SIG_V4A_COORD_LEN],
                                         const uint8_t y[SIG_V4A_COORD_LEN], const void *msg,
                                         size_t n, const uint8_t *der, size_t der_len);

#endif
