/*
 * sig_v4a.c: SigV4a key derivation, ECDSA P-256 signing and verification.
 *
 * The private key is a deterministic function of the credentials so that every signer
 * (and the service) derives the same key pair from the same access key. The derivation is
 * NIST SP 800-108 section 5.1 (KDF in counter mode, PRF = HMAC-SHA-256, L = 256 bits) as
 * AWS's SDKs implement it:
 *
 *   K_in   = "AWS4A" || SecretAccessKey
 *   input  = be32(1) || "AWS4-ECDSA-P256-SHA256" || 0x00 || AccessKeyId || counter || be32(256)
 *   c      = HMAC-SHA-256(K_in, input)          for counter = 1, 2, ... 254
 *   d      = c + 1                               for the first c <= n - 2
 *
 * where n is the order of P-256, so that d lands in [1, n - 1] without modular bias. The
 * 32-bit "i" of SP 800-108 is always 1 (one block of output); AWS instead varies the byte
 * it calls the counter inside the context, which is why it sits after the access key id.
 */
#include "sig_v4a.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "sig_sha256.h"

#define SIG_V4A_ALGORITHM "AWS4-ECDSA-P256-SHA256"
/* Uncompressed SEC 1 point encoding: 0x04 || X || Y. */
#define POINT_LEN (1 + 2 * SIG_V4A_COORD_LEN)
#define KEY_PREFIX "AWS4A"
/* be32(1) || label || 0x00: the part of the KDF input before the access key id. */
#define KDF_INPUT_HEAD "\x00\x00\x00\x01" SIG_V4A_ALGORITHM "\x00"
/* be32(256): the requested output length in bits, the last field of the KDF input. */
#define KDF_INPUT_TAIL "\x00\x00\x01\x00"
/* AWS stops here; a candidate fails with probability about 2^-32, so this is unreachable in
 * practice but bounds the loop. */
#define KDF_MAX_COUNTER 254

struct sig_v4a_key {
    EVP_PKEY *pkey; /* owned; holds the private scalar, which EVP_PKEY_free clears */
    uint8_t x[SIG_V4A_COORD_LEN];
    uint8_t y[SIG_V4A_COORD_LEN];
};

/* Everything sig_v4a_key_derive allocates or computes, so one cleanup wipes and frees it
 * on every exit path. Safe on a zeroed struct. */
struct derive_state {
    struct sig_hmac prf;
    uint8_t key_in[sizeof(KEY_PREFIX) - 1 + SIG_V4A_MAX_SECRET_LEN];
    uint8_t candidate[SIG_SHA256_LEN];
    uint8_t n_minus_2[SIG_V4A_COORD_LEN];
    uint8_t point[POINT_LEN];
    EC_GROUP *group;
    EC_POINT *pub;
    BN_CTX *bn_ctx;
    BIGNUM *d;
    BIGNUM *tmp;
    OSSL_PARAM_BLD *bld;
    OSSL_PARAM *params;
    EVP_PKEY_CTX *pctx;
    EVP_PKEY *pkey;
    struct sig_v4a_key *key;
};

static void derive_state_cleanup(struct derive_state *s)
{
    /* OSSL_PARAM_free clears the secure block that holds the copy of the private scalar. */
    OSSL_PARAM_free(s->params);
    OSSL_PARAM_BLD_free(s->bld);
    EVP_PKEY_CTX_free(s->pctx);
    EVP_PKEY_free(s->pkey);
    BN_clear_free(s->d);
    BN_clear_free(s->tmp);
    BN_CTX_free(s->bn_ctx);
    EC_POINT_clear_free(s->pub);
    EC_GROUP_free(s->group);
    sig_v4a_key_free(s->key);
    /* Wipes the HMAC state, the keyed input, the candidate scalar, and the (public) point
     * alike, and leaves every pointer NULL so a second cleanup is harmless. */
    OPENSSL_cleanse(s, sizeof(*s));
}

/* 1 if a > b as big-endian unsigned integers of equal length, else 0. Constant time: the
 * candidate is secret, and whether it was rejected must not leak through timing. */
static uint32_t be_greater_ct(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint32_t gt = 0;
    uint32_t eq = 1;
    for (size_t i = 0; i < len; i++) {
        uint32_t ai = a[i];
        uint32_t bi = b[i];
        /* bi - ai wraps (bit 31 set) exactly when ai > bi; it counts only while all more
         * significant bytes were equal. */
        gt |= eq & ((bi - ai) >> 31);
        /* (ai ^ bi) - 1 wraps only when ai == bi. */
        eq &= ((ai ^ bi) - 1) >> 31;
    }
    return gt;
}

/* In-place big-endian increment, constant time. The caller guarantees no overflow. */
static void be_add_one_ct(uint8_t *a, size_t len)
{
    uint32_t carry = 1;
    for (size_t i = len; i-- > 0;) {
        uint32_t v = (uint32_t)a[i] + carry;
        a[i] = (uint8_t)v;
        carry = v >> 8;
    }
}

static void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static bool credential_ok(struct sig_slice s, size_t max_len)
{
    return s.len > 0 && s.len <= max_len && s.ptr != NULL;
}

/* Runs the counter-mode KDF; on success s->candidate holds the private scalar d. */
static enum sig_err derive_scalar(struct derive_state *s, struct sig_slice access_key_id,
                                  struct sig_slice secret_access_key)
{
    struct sig_buf key_in;
    sig_buf_init(&key_in, s->key_in, sizeof(s->key_in));
    SIG_TRY(sig_buf_append_slice(&key_in, SIG_SLICE_LIT(KEY_PREFIX)));
    SIG_TRY(sig_buf_append_slice(&key_in, secret_access_key));
    sig_hmac_init(&s->prf, key_in.ptr, key_in.len);
    sig_buf_wipe(&key_in);

    /* n - 2, from OpenSSL's curve rather than a transcribed constant. */
    const BIGNUM *order = EC_GROUP_get0_order(s->group);
    SIG_ENSURE(order != NULL && BN_copy(s->tmp, order) != NULL && BN_sub_word(s->tmp, 2) == 1 &&
                   BN_bn2binpad(s->tmp, s->n_minus_2, sizeof(s->n_minus_2)) ==
                       (int)sizeof(s->n_minus_2),
               SIG_ERR_CRYPTO);

    for (unsigned counter = 1; counter <= KDF_MAX_COUNTER; counter++) {
        uint8_t counter_byte = (uint8_t)counter;
        const struct sig_slice input[] = {
            SIG_SLICE_LIT(KDF_INPUT_HEAD),
            access_key_id,
            {&counter_byte, 1},
            SIG_SLICE_LIT(KDF_INPUT_TAIL),
        };
        sig_hmac_iov(&s->prf, input, sizeof(input) / sizeof(input[0]), s->candidate);
        if (!be_greater_ct(s->candidate, s->n_minus_2, sizeof(s->candidate))) {
            be_add_one_ct(s->candidate, sizeof(s->candidate));
            return SIG_OK;
        }
    }
    return SIG_ERR_CRYPTO;
}

/* Computes the public point for d = s->candidate and builds s->pkey holding both. */
static enum sig_err build_keypair(struct derive_state *s)
{
    SIG_ENSURE((s->d = BN_secure_new()) != NULL, SIG_ERR_CRYPTO);
    /* Keep OpenSSL on its constant-time paths for the secret scalar. */
    BN_set_flags(s->d, BN_FLG_CONSTTIME);
    SIG_ENSURE(BN_bin2bn(s->candidate, sizeof(s->candidate), s->d) != NULL, SIG_ERR_CRYPTO);

    SIG_ENSURE((s->pub = EC_POINT_new(s->group)) != NULL, SIG_ERR_CRYPTO);
    SIG_ENSURE(EC_POINT_mul(s->group, s->pub, s->d, NULL, NULL, s->bn_ctx) == 1, SIG_ERR_CRYPTO);
    SIG_ENSURE(EC_POINT_point2oct(s->group, s->pub, POINT_CONVERSION_UNCOMPRESSED, s->point,
                                  sizeof(s->point), s->bn_ctx) == sizeof(s->point),
               SIG_ERR_CRYPTO);

    SIG_ENSURE((s->bld = OSSL_PARAM_BLD_new()) != NULL, SIG_ERR_CRYPTO);
    SIG_ENSURE(OSSL_PARAM_BLD_push_utf8_string(s->bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                               SN_X9_62_prime256v1, 0) == 1 &&
                   OSSL_PARAM_BLD_push_BN(s->bld, OSSL_PKEY_PARAM_PRIV_KEY, s->d) == 1 &&
                   OSSL_PARAM_BLD_push_octet_string(s->bld, OSSL_PKEY_PARAM_PUB_KEY, s->point,
                                                    sizeof(s->point)) == 1,
               SIG_ERR_CRYPTO);
    SIG_ENSURE((s->params = OSSL_PARAM_BLD_to_param(s->bld)) != NULL, SIG_ERR_CRYPTO);

    SIG_ENSURE((s->pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL, SIG_ERR_CRYPTO);
    SIG_ENSURE(EVP_PKEY_fromdata_init(s->pctx) == 1, SIG_ERR_CRYPTO);
    SIG_ENSURE(EVP_PKEY_fromdata(s->pctx, &s->pkey, EVP_PKEY_KEYPAIR, s->params) == 1,
               SIG_ERR_CRYPTO);
    return SIG_OK;
}

static enum sig_err derive(struct derive_state *s, struct sig_slice access_key_id,
                           struct sig_slice secret_access_key)
{
    SIG_ENSURE((s->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) != NULL,
               SIG_ERR_CRYPTO);
    SIG_ENSURE((s->bn_ctx = BN_CTX_secure_new()) != NULL, SIG_ERR_CRYPTO);
    SIG_ENSURE((s->tmp = BN_new()) != NULL, SIG_ERR_CRYPTO);

    SIG_TRY(derive_scalar(s, access_key_id, secret_access_key));
    SIG_TRY(build_keypair(s));

    SIG_ENSURE((s->key = OPENSSL_zalloc(sizeof(*s->key))) != NULL, SIG_ERR_CRYPTO);
    copy_bytes(s->key->x, s->point + 1, SIG_V4A_COORD_LEN);
    copy_bytes(s->key->y, s->point + 1 + SIG_V4A_COORD_LEN, SIG_V4A_COORD_LEN);
    s->key->pkey = s->pkey;
    s->pkey = NULL;
    return SIG_OK;
}

enum sig_err sig_v4a_key_derive(struct sig_slice access_key_id, struct sig_slice secret_access_key,
                                struct sig_v4a_key **out)
{
    SIG_ENSURE(out != NULL, SIG_ERR_INVALID_ARG);
    *out = NULL;
    SIG_ENSURE(credential_ok(access_key_id, SIG_V4A_MAX_ACCESS_KEY_ID_LEN) &&
                   credential_ok(secret_access_key, SIG_V4A_MAX_SECRET_LEN),
               SIG_ERR_BAD_CREDENTIALS);

    struct derive_state s = {0};
    enum sig_err err = derive(&s, access_key_id, secret_access_key);
    if (err != SIG_OK)
        goto out;
    *out = s.key;
    s.key = NULL;

out:
    /* The signer does not log: drop whatever OpenSSL queued so it cannot be misattributed
     * to a later, unrelated call on this thread. */
    if (err != SIG_OK)
        ERR_clear_error();
    derive_state_cleanup(&s);
    return err;
}

void sig_v4a_key_free(struct sig_v4a_key *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    OPENSSL_clear_free(key, sizeof(*key));
}

void sig_v4a_key_public(const struct sig_v4a_key *key, uint8_t x[SIG_V4A_COORD_LEN],
                        uint8_t y[SIG_V4A_COORD_LEN])
{
    copy_bytes(x, key->x, SIG_V4A_COORD_LEN);
    copy_bytes(y, key->y, SIG_V4A_COORD_LEN);
}

/* EVP_PKEY_sign_init or EVP_PKEY_verify_init */
typedef int ecdsa_init_fn(EVP_PKEY_CTX *ctx);

/* A context for ECDSA over a precomputed SHA-256 digest with pkey, set up by init; NULL on
 * failure (the caller clears the error queue). It is created per call so that one key can
 * serve several threads at once; the caller frees it. */
static EVP_PKEY_CTX *ecdsa_sha256_ctx(EVP_PKEY *pkey, ecdsa_init_fn *init)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx != NULL && (init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)) {
        EVP_PKEY_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* ECDSA signature of a precomputed SHA-256 digest. */
static enum sig_err sign_digest(EVP_PKEY *pkey, const uint8_t digest[SIG_SHA256_LEN],
                                uint8_t der[SIG_V4A_MAX_DER], size_t *der_len)
{
    enum sig_err err = SIG_ERR_CRYPTO;
    size_t len = SIG_V4A_MAX_DER;
    EVP_PKEY_CTX *ctx = ecdsa_sha256_ctx(pkey, EVP_PKEY_sign_init);
    if (ctx == NULL || EVP_PKEY_sign(ctx, der, &len, digest, SIG_SHA256_LEN) != 1 ||
        len > SIG_V4A_MAX_DER)
        goto out;
    *der_len = len;
    err = SIG_OK;
out:
    if (err != SIG_OK)
        ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    return err;
}

enum sig_err sig_v4a_sign(const struct sig_v4a_key *key, const void *msg, size_t n,
                          uint8_t der[SIG_V4A_MAX_DER], size_t *der_len)
{
    SIG_ENSURE(key != NULL && key->pkey != NULL && (msg != NULL || n == 0) && der != NULL &&
                   der_len != NULL,
               SIG_ERR_INVALID_ARG);
    uint8_t digest[SIG_SHA256_LEN];
    sig_sha256(msg, n, digest);
    enum sig_err err = sign_digest(key->pkey, digest, der, der_len);
    /* The digest of a string to sign is not secret, but it is cheap to be uniform. */
    OPENSSL_cleanse(digest, sizeof(digest));
    return err;
}

/* Imports (x, y) as a P-256 public key. OpenSSL rejects a point that is not on the curve. */
static EVP_PKEY *public_key_from_xy(const uint8_t x[SIG_V4A_COORD_LEN],
                                    const uint8_t y[SIG_V4A_COORD_LEN])
{
    uint8_t point[POINT_LEN];
    char group[] = SN_X9_62_prime256v1;
    point[0] = POINT_CONVERSION_UNCOMPRESSED;
    copy_bytes(point + 1, x, SIG_V4A_COORD_LEN);
    copy_bytes(point + 1 + SIG_V4A_COORD_LEN, y, SIG_V4A_COORD_LEN);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
        OSSL_PARAM_construct_end(),
    };

    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

enum sig_err sig_v4a_verify(const uint8_t x[SIG_V4A_COORD_LEN], const uint8_t y[SIG_V4A_COORD_LEN],
                            const void *msg, size_t n, const uint8_t *der, size_t der_len)
{
    SIG_ENSURE(x != NULL && y != NULL && (msg != NULL || n == 0) && der != NULL,
               SIG_ERR_INVALID_ARG);
    /* A longer input cannot be a P-256 signature; refuse before handing it to the parser. */
    SIG_ENSURE(der_len > 0 && der_len <= SIG_V4A_MAX_DER, SIG_ERR_CRYPTO);

    enum sig_err err = SIG_ERR_CRYPTO;
    uint8_t digest[SIG_SHA256_LEN];
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = public_key_from_xy(x, y);
    if (pkey == NULL)
        goto out;
    sig_sha256(msg, n, digest);
    /* OpenSSL's ECDSA verify re-encodes the parsed signature and rejects any DER that is not
     * byte-for-byte canonical, so trailing garbage or padded integers fail here. */
    ctx = ecdsa_sha256_ctx(pkey, EVP_PKEY_verify_init);
    if (ctx == NULL || EVP_PKEY_verify(ctx, der, der_len, digest, sizeof(digest)) != 1)
        goto out;
    err = SIG_OK;
out:
    if (err != SIG_OK)
        ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return err;
}
