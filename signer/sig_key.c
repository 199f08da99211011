/*
 * sig_key.c: SigV4 signing-key derivation and its per-thread cache.
 *
 * kSigning changes only when the date, region, service or secret does, so a proxy signing
 * thousands of requests a second derives it a few times a day. Caching the keyed HMAC state
 * (not just the 32-byte key) also saves the two key-pad blocks on every signature.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "sig_sign.h"

void sig_key_cache_init(struct sig_key_cache *c)
{
    memset(c, 0, sizeof(*c));
}

void sig_key_cache_cleanup(struct sig_key_cache *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

static void derive(struct sig_slice secret, struct sig_slice date, struct sig_slice region,
                   struct sig_slice service, struct sig_hmac *out)
{
    uint8_t key[4 + 2 * SIG_KEY_CACHE_MAX_SECRET];
    uint8_t k[SIG_SHA256_LEN];
    struct sig_hmac st;

    /* kSecret = "AWS4" + secret; kDate = HMAC(kSecret, date); ... (SigV4 "derive a signing
     * key"). Secrets longer than the buffer are refused by the caller. */
    memcpy(key, "AWS4", 4);
    memcpy(key + 4, secret.ptr, secret.len);
    sig_hmac_init(&st, key, 4 + secret.len);
    sig_hmac(&st, date.ptr, date.len, k);
    sig_hmac_init(&st, k, sizeof(k));
    sig_hmac(&st, region.ptr, region.len, k);
    sig_hmac_init(&st, k, sizeof(k));
    sig_hmac(&st, service.ptr, service.len, k);
    sig_hmac_init(&st, k, sizeof(k));
    sig_hmac(&st, "aws4_request", 12, k);
    sig_hmac_init(out, k, sizeof(k));

    sig_hmac_cleanup(&st);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(key, sizeof(key));
}

static bool slot_matches(const struct sig_key_cache_slot *s, struct sig_slice secret,
                         struct sig_slice date, struct sig_slice region, struct sig_slice service)
{
    return s->used && s->secret_len == secret.len && s->region_len == region.len &&
           s->service_len == service.len && memcmp(s->date, date.ptr, 8) == 0 &&
           memcmp(s->region, region.ptr, region.len) == 0 &&
           memcmp(s->service, service.ptr, service.len) == 0 &&
           CRYPTO_memcmp(s->secret, secret.ptr, secret.len) == 0;
}

enum sig_err sig_signing_key(struct sig_key_cache *cache, struct sig_slice secret,
                             struct sig_slice date, struct sig_slice region,
                             struct sig_slice service, struct sig_hmac *out)
{
    SIG_ENSURE(secret.len > 0 && secret.len <= SIG_KEY_CACHE_MAX_SECRET, SIG_ERR_BAD_CREDENTIALS);
    SIG_ENSURE(date.len == 8, SIG_ERR_BAD_TIME);
    SIG_ENSURE(region.len > 0 && region.len <= SIG_MAX_SCOPE_PART, SIG_ERR_BAD_SCOPE);
    SIG_ENSURE(service.len > 0 && service.len <= SIG_MAX_SCOPE_PART, SIG_ERR_BAD_SCOPE);

    if (cache == NULL) {
        derive(secret, date, region, service, out);
        return SIG_OK;
    }
    for (size_t i = 0; i < SIG_KEY_CACHE_SLOTS; i++) {
        if (slot_matches(&cache->slots[i], secret, date, region, service)) {
            cache->hits++;
            *out = cache->slots[i].key;
            return SIG_OK;
        }
    }
    cache->misses++;
    struct sig_key_cache_slot *s = &cache->slots[cache->next_victim];
    cache->next_victim = (cache->next_victim + 1) % SIG_KEY_CACHE_SLOTS;
    OPENSSL_cleanse(s, sizeof(*s));
    derive(secret, date, region, service, &s->key);
    s->used = true;
    s->secret_len = (uint8_t)secret.len;
    s->region_len = (uint8_t)region.len;
    s->service_len = (uint8_t)service.len;
    memcpy(s->secret, secret.ptr, secret.len);
    memcpy(s->date, date.ptr, 8);
    memcpy(s->region, region.ptr, region.len);
    memcpy(s->service, service.ptr, service.len);
    *out = s->key;
    return SIG_OK;
}
