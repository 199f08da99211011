/*
 * Unit tests for signer/sig_sign.c and sig_key.c: argument validation, limits, the headers
 * and query the signer adds, the key cache, and date formatting. Signature values are checked
 * against the official vectors and botocore elsewhere (sig_vectors_test, differential tests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sig_sign.h"

static uint8_t mem[1 << 16];
static struct sig_workspace ws;
static struct sig_key_cache cache;
static struct sig_header hdrs[4];
static struct sig_request req;
static struct sig_params params;
static struct sig_credentials creds;
static struct sig_result res;

static struct sig_slice S(const char *s) {
    return sig_slice_from_cstr(s);
}

static void
assert_slice(struct sig_slice got, const char *want)
{
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.ptr, want, got.len);
}

static int setup(void **state)
{
    (void)state;
    sig_workspace_init(&ws, mem, sizeof(mem));
    sig_key_cache_init(&cache);
    hdrs[0] = (struct sig_header){S("Host"), S("example.amazonaws.com")};
    req = (struct sig_request){S("GET"), S("/"), S(""), hdrs, 1};
    params = (struct sig_params){
        .region = S("us-east-1"),
        .service = S("service"),
        .unix_time = 1440938160, /* 2015-08-30T12:36:00Z */
    };
    creds = (struct sig_credentials){S("AKIDEXAMPLE"),
                                     S("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), S("")};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sig_workspace_cleanup(&ws);
    sig_key_cache_cleanup(&cache);
    return 0;
}

static enum sig_err sign(void)
{
    return sig_sign(&req, &params, &creds, &cache, &ws, &res);
}

static void expect_date(int64_t t, const char *want)
{
    char out[SIG_AMZ_DATE_LEN + 1];
    assert_int_equal(sig_format_amz_date(t, out), SIG_OK);
    assert_string_equal(out, want);
}

static void test_amz_date(void **state)
{
    (void)state;
    char out[SIG_AMZ_DATE_LEN + 1];
    expect_date(0, "19700101T000000Z");
    expect_date(1440938160, "20150830T123600Z");
    expect_date(951782400, "20000229T000000Z");
    expect_date(4107542399, "21000228T235959Z");
    expect_date(4107542400, "21000301T000000Z");
    expect_date(253402300799LL, "99991231T235959Z");
    assert_int_equal(sig_format_amz_date(-1, out), SIG_ERR_BAD_TIME);
    assert_int_equal(sig_format_amz_date(253402300800LL, out), SIG_ERR_BAD_TIME);
}

static void test_header_form_added_headers(void **state)
{
    (void)state;
    creds.session_token = S("TOKEN/+=");
    params.add_content_sha256 = true;
    params.payload_hash = S(SIG_UNSIGNED_PAYLOAD);
    assert_int_equal(sign(), SIG_OK);
    assert_int_equal(res.add_header_count, 4);
    assert_slice(res.add_headers[0].name, "X-Amz-Security-Token");
    assert_slice(res.add_headers[0].value, "TOKEN/+=");
    assert_slice(res.add_headers[1].name, "X-Amz-Date");
    assert_slice(res.add_headers[1].value, "20150830T123600Z");
    assert_slice(res.add_headers[2].name, "x-amz-content-sha256");
    assert_slice(res.add_headers[2].value, "UNSIGNED-PAYLOAD");
    assert_slice(res.add_headers[3].name, "Authorization");
    assert_slice(res.signed_headers, "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
    assert_slice(res.credential_scope, "20150830/us-east-1/service/aws4_request");

    char want[512];
    snprintf(want, sizeof(want),
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
             "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
             "Signature=%.*s",
             (int)res.signature.len, (const char *)res.signature.ptr);
    assert_slice(res.add_headers[3].value, want);
    /* The canonical request ends in the payload hash given. */
    assert_true(res.canonical_request.len > 16);
    assert_memory_equal(res.canonical_request.ptr + res.canonical_request.len - 16,
                        "UNSIGNED-PAYLOAD", 16);
}

static void test_omitted_token_is_sent_not_signed(void **state)
{
    (void)state;
    creds.session_token = S("TOKEN");
    params.omit_session_token = true;
    assert_int_equal(sign(), SIG_OK);
    assert_slice(res.signed_headers, "host;x-amz-date");
    assert_slice(res.add_headers[0].name, "X-Amz-Security-Token");
}

static void test_query_form(void **state)
{
    (void)state;
    params.form = SIG_FORM_QUERY;
    params.expires_s = 86400;
    req.query = S("b=2&a=1");
    creds.session_token = S("T/K");
    assert_int_equal(sign(), SIG_OK);
    assert_int_equal(res.add_header_count, 0);
    char want[1024];
    snprintf(want, sizeof(want),
             "b=2&a=1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%%2F20150830%%2F"
             "us-east-1%%2Fservice%%2Faws4_request&X-Amz-Date=20150830T123600Z&"
             "X-Amz-SignedHeaders=host&X-Amz-Expires=86400&X-Amz-Security-Token=T%%2FK&"
             "X-Amz-Signature=%.*s",
             (int)res.signature.len, (const char *)res.signature.ptr);
    assert_slice(res.query, want);

    req.query = S("");
    assert_int_equal(sign(), SIG_OK);
    assert_true(res.query.len > 16);
    assert_memory_equal(res.query.ptr, "X-Amz-Algorithm=", 16);
}

static void test_validation_errors(void **state)
{
    (void)state;
    struct sig_params good = params;

    req.method = S("");
    assert_int_equal(sign(), SIG_ERR_BAD_METHOD);
    req.method = S("G T");
    assert_int_equal(sign(), SIG_ERR_BAD_METHOD);
    req.method = S("GET");

    const char *bad_scopes[] = {"", "us/east", "us east", "a\n", "us-east-1,us-west-2"};
    for (size_t i = 0; i < sizeof(bad_scopes) / sizeof(bad_scopes[0]); i++) {
        params.region = S(bad_scopes[i]);
        assert_int_equal(sign(), SIG_ERR_BAD_SCOPE);
    }
    params = good;
    char long_scope[SIG_MAX_SCOPE_PART + 2];
    memset(long_scope, 'a', sizeof(long_scope) - 1);
    long_scope[sizeof(long_scope) - 1] = '\0';
    params.service = S(long_scope);
    assert_int_equal(sign(), SIG_ERR_BAD_SCOPE);
    params = good;

    const char *bad_hashes[] = {
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "UNSIGNED_PAYLOAD",
        "STREAMING-FOO",
    };
    for (size_t i = 0; i < sizeof(bad_hashes) / sizeof(bad_hashes[0]); i++) {
        params.payload_hash = S(bad_hashes[i]);
        assert_int_equal(sign(), SIG_ERR_BAD_PAYLOAD_HASH);
    }
    params = good;

    params.form = SIG_FORM_QUERY;
    params.expires_s = 0;
    assert_int_equal(sign(), SIG_ERR_BAD_EXPIRES);
    params.expires_s = SIG_MAX_EXPIRES_S + 1;
    assert_int_equal(sign(), SIG_ERR_BAD_EXPIRES);
    params.expires_s = SIG_MAX_EXPIRES_S;
    assert_int_equal(sign(), SIG_OK);
    params = good;

    params.alg = SIG_ALG_V4A;
    assert_int_equal(sign(), SIG_ERR_INVALID_ARG);
    params = good;
    params.unix_time = -5;
    assert_int_equal(sign(), SIG_ERR_BAD_TIME);
    params = good;
}

static void test_credential_errors(void **state)
{
    (void)state;
    struct sig_credentials good = creds;
    char long_secret[SIG_KEY_CACHE_MAX_SECRET + 2];
    memset(long_secret, 'k', sizeof(long_secret) - 1);
    long_secret[sizeof(long_secret) - 1] = '\0';

    creds.access_key_id = S("");
    assert_int_equal(sign(), SIG_ERR_BAD_CREDENTIALS);
    creds.access_key_id = S("AKID/X");
    assert_int_equal(sign(), SIG_ERR_BAD_CREDENTIALS);
    creds = good;
    creds.secret_access_key = S("");
    assert_int_equal(sign(), SIG_ERR_BAD_CREDENTIALS);
    creds.secret_access_key = S(long_secret);
    assert_int_equal(sign(), SIG_ERR_BAD_CREDENTIALS);
    creds = good;
    creds.session_token = S("tok\r\nInjected: 1");
    assert_int_equal(sign(), SIG_ERR_BAD_CREDENTIALS);
    creds = good;
}

static void test_client_copies_refused(void **state)
{
    (void)state;
    const char *names[] = {"X-Amz-Date", "x-amz-security-token", "X-Amz-Region-Set"};
    for (size_t i = 0; i < 3; i++) {
        hdrs[1] = (struct sig_header){S(names[i]), S("x")};
        req.header_count = 2;
        assert_int_equal(sign(), SIG_ERR_INVALID_ARG);
    }
    hdrs[1] = (struct sig_header){S("X-Amz-Content-Sha256"), S("x")};
    params.add_content_sha256 = true;
    assert_int_equal(sign(), SIG_ERR_INVALID_ARG);
    /* A client's Authorization is never signed, so it cannot collide. */
    hdrs[1] = (struct sig_header){S("Authorization"), S("AWS4-HMAC-SHA256 forged")};
    params.add_content_sha256 = false;
    assert_int_equal(sign(), SIG_OK);
    assert_slice(res.signed_headers, "host;x-amz-date");
}

/* Every workspace size from 0 up: either SIG_ERR_TOO_LARGE or the full, identical result. */
static void test_every_workspace_size(void **state)
{
    (void)state;
    hdrs[1] = (struct sig_header){S("X-Custom"), S("  a   b  ")};
    req.header_count = 2;
    req.query = S("z=1&a=%41+b");
    req.path = S("/a/../b c/");
    assert_int_equal(sign(), SIG_OK);
    char want[65];
    assert_int_equal(res.signature.len, 64);
    memcpy(want, res.signature.ptr, 64);
    want[64] = '\0';

    size_t ok_from = 0;
    for (size_t cap = 0; cap <= 2048; cap++) {
        uint8_t *small = malloc(cap == 0 ? 1 : cap);
        struct sig_workspace w;
        sig_workspace_init(&w, small, cap);
        enum sig_err err = sig_sign(&req, &params, &creds, &cache, &w, &res);
        if (err == SIG_OK) {
            if (ok_from == 0)
                ok_from = cap;
            assert_slice(res.signature, want);
        } else {
            assert_int_equal(err, SIG_ERR_TOO_LARGE);
            assert_int_equal(ok_from, 0);
        }
        sig_workspace_cleanup(&w);
        free(small);
    }
    assert_true(ok_from > 0);
}

static void test_key_cache(void **state)
{
    (void)state;
    assert_int_equal(sign(), SIG_OK);
    char first[65];
    memcpy(first, res.signature.ptr, 64);
    first[64] = '\0';
    assert_int_equal(cache.misses, 1);
    assert_int_equal(sign(), SIG_OK);
    assert_int_equal(cache.hits, 1);
    assert_slice(res.signature, first);

    /* Without a cache, the same signature. */
    assert_int_equal(sig_sign(&req, &params, &creds, NULL, &ws, &res), SIG_OK);
    assert_slice(res.signature, first);

    /* A new day derives a new key. */
    params.unix_time += 86400;
    assert_int_equal(sign(), SIG_OK);
    assert_int_equal(cache.misses, 2);
    params.unix_time -= 86400;

    /* A different secret never hits another secret's slot. */
    creds.secret_access_key = S("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ");
    assert_int_equal(sign(), SIG_OK);
    assert_int_equal(cache.misses, 3);
    assert_false(res.signature.len == 64 && memcmp(res.signature.ptr, first, 64) == 0);

    /* More distinct keys than slots evict, and results stay right. */
    static char names[SIG_KEY_CACHE_SLOTS + 2][8];
    for (int i = 0; i < SIG_KEY_CACHE_SLOTS + 2; i++) {
        snprintf(names[i], sizeof(names[i]), "svc%d", i);
        params.service = S(names[i]);
        assert_int_equal(sign(), SIG_OK);
    }
    params.service = S("service");
    creds.secret_access_key = S("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    uint64_t misses = cache.misses;
    assert_int_equal(sign(), SIG_OK);
    assert_int_equal(cache.misses, misses + 1);
    assert_slice(res.signature, first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amz_date),
        cmocka_unit_test_setup_teardown(test_header_form_added_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_omitted_token_is_sent_not_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credential_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_copies_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_workspace_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
