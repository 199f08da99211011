/* Unit tests for signer/sig_canonical.c: canonical URI, query and headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sig_canonical.h"

static uint8_t mem[1 << 16];
static struct sig_workspace ws;

static int setup(void **state)
{
    (void)state;
    sig_workspace_init(&ws, mem, sizeof(mem));
    return 0;
}

static struct sig_slice S(const char *s) {
    return sig_slice_from_cstr(s);
}

static void
assert_slice(struct sig_slice got, const char *want)
{
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.ptr, want, got.len);
}

static enum sig_err uri(const char *path, enum sig_uri_mode mode, struct sig_slice *out)
{
    ws.buf.len = 0;
    enum sig_err err = sig_canonical_uri(&ws.buf, S(path), mode);
    *out = sig_buf_slice(&ws.buf);
    return err;
}

static void expect_uri(const char *path, enum sig_uri_mode mode, const char *want)
{
    struct sig_slice got;
    assert_int_equal(uri(path, mode, &got), SIG_OK);
    assert_slice(got, want);
}

static void test_uri_normalize(void **state)
{
    (void)state;
    expect_uri("", SIG_URI_NORMALIZE, "/");
    expect_uri("/", SIG_URI_NORMALIZE, "/");
    expect_uri("//example//", SIG_URI_NORMALIZE, "/example/");
    expect_uri("/./", SIG_URI_NORMALIZE, "/");
    expect_uri("/a/./b/../c", SIG_URI_NORMALIZE, "/a/c");
    expect_uri("/a/b/..", SIG_URI_NORMALIZE, "/a");
    expect_uri("/a/b/../", SIG_URI_NORMALIZE, "/a/");
    expect_uri("/../../a", SIG_URI_NORMALIZE, "/a");
    expect_uri("/example1/example2/../..", SIG_URI_NORMALIZE, "/");
    /* The wire path is encoded once more: '%' itself becomes %25 ("double encoding"). */
    expect_uri("/a%20b", SIG_URI_NORMALIZE, "/a%2520b");
    expect_uri("/example space/", SIG_URI_NORMALIZE, "/example%20space/");
    expect_uri("/\xe1\x88\xb4", SIG_URI_NORMALIZE, "/%E1%88%B4");
    expect_uri("/-._~AZaz09", SIG_URI_NORMALIZE, "/-._~AZaz09");
    expect_uri("/a=b+c:d", SIG_URI_NORMALIZE, "/a%3Db%2Bc%3Ad");
    /* Encoded dots are not dot segments. */
    expect_uri("/a/%2E%2E/b", SIG_URI_NORMALIZE, "/a/%252E%252E/b");
}

static void test_uri_encode_only(void **state)
{
    (void)state;
    expect_uri("//example//", SIG_URI_ENCODE_ONLY, "//example//");
    expect_uri("/./a/../b", SIG_URI_ENCODE_ONLY, "/./a/../b");
    expect_uri("/example space/", SIG_URI_ENCODE_ONLY, "/example%20space/");
}

static void test_uri_s3(void **state)
{
    (void)state;
    /* A raw '=' and "%3D" sign the same; '+' is a literal plus; no normalization. */
    expect_uri("/bucket/a=b", SIG_URI_S3, "/bucket/a%3Db");
    expect_uri("/bucket/a%3Db", SIG_URI_S3, "/bucket/a%3Db");
    expect_uri("/bucket/a%3db", SIG_URI_S3, "/bucket/a%3Db");
    expect_uri("/bucket/a+b", SIG_URI_S3, "/bucket/a%2Bb");
    expect_uri("/bucket/a%20b", SIG_URI_S3, "/bucket/a%20b");
    expect_uri("/bucket/a b", SIG_URI_S3, "/bucket/a%20b");
    expect_uri("/bucket//x/./y/../z", SIG_URI_S3, "/bucket//x/./y/../z");
    expect_uri("/bucket/%7E%41", SIG_URI_S3, "/bucket/~A");
    /* S3 signs the decoded key encoded once with '/' kept, so "%2F" signs as a slash. */
    expect_uri("/bucket/a%2Fb", SIG_URI_S3, "/bucket/a/b");
}

static void test_uri_errors(void **state)
{
    (void)state;
    struct sig_slice got;
    assert_int_equal(uri("/a%2", SIG_URI_S3, &got), SIG_ERR_BAD_PERCENT_ENCODING);
    assert_int_equal(uri("/a%", SIG_URI_S3, &got), SIG_ERR_BAD_PERCENT_ENCODING);
    assert_int_equal(uri("/a%zz", SIG_URI_S3, &got), SIG_ERR_BAD_PERCENT_ENCODING);
    assert_int_equal(uri("a/b", SIG_URI_NORMALIZE, &got), SIG_ERR_BAD_PATH);
    assert_int_equal(uri("/a\nb", SIG_URI_NORMALIZE, &got), SIG_ERR_BAD_PATH);
    assert_int_equal(uri("/a\x7f", SIG_URI_S3, &got), SIG_ERR_BAD_PATH);
    struct sig_slice nul = {(const uint8_t *)"/a\0b", 4};
    ws.buf.len = 0;
    assert_int_equal(sig_canonical_uri(&ws.buf, nul, SIG_URI_NORMALIZE), SIG_ERR_BAD_PATH);
}

static void test_uri_too_large(void **state)
{
    (void)state;
    uint8_t small[8];
    struct sig_buf b;
    sig_buf_init(&b, small, sizeof(small));
    /* Each byte of the path needs three bytes of output. */
    assert_int_equal(sig_canonical_uri(&b, S("/\x01\x02\x03"), SIG_URI_S3), SIG_ERR_BAD_PATH);
    assert_int_equal(sig_canonical_uri(&b, S("/   "), SIG_URI_S3), SIG_ERR_TOO_LARGE);
    assert_true(b.len <= b.cap);
}

static enum sig_err query(const char *wire, struct sig_slice *out)
{
    struct sig_query q = {&ws, 0};
    ws.buf.len = 0;
    SIG_TRY(sig_query_parse(&q, S(wire)));
    return sig_query_write(&q, out);
}

static void expect_query(const char *wire, const char *want)
{
    struct sig_slice got;
    assert_int_equal(query(wire, &got), SIG_OK);
    assert_slice(got, want);
}

static void test_query(void **state)
{
    (void)state;
    expect_query("", "");
    expect_query("Param2=value2&Param1=value1", "Param1=value1&Param2=value2");
    /* Repeated keys are kept and ordered by value. */
    expect_query("a=2&a=1&a=", "a=&a=1&a=2");
    /* A key without '=' has an empty value; empty pieces carry nothing. */
    expect_query("b&a=1&&", "a=1&b=");
    /* Sorting is by the encoded key, byte-wise (uppercase before lowercase). */
    expect_query("b=1&B=2&%E1%88%B4=3", "%E1%88%B4=3&B=2&b=1");
    /* Equivalent wire spellings canonicalize the same. */
    expect_query("k%7e=%41%2f", "k~=A%2F");
    expect_query("k~=A/", "k~=A%2F");
    /* '+' is a space, as form encoding has it; %2B is a plus. */
    expect_query("q=a+b&r=a%2Bb", "q=a%20b&r=a%2Bb");
    expect_query("x=a=b", "x=a%3Db");
    /* Sort by key, then value, even when a key is a prefix of another. */
    expect_query("ab=1&a=2", "a=2&ab=1");
}

static void test_query_errors(void **state)
{
    (void)state;
    struct sig_slice got;
    assert_int_equal(query("a=%", &got), SIG_ERR_BAD_PERCENT_ENCODING);
    assert_int_equal(query("a%g1=1", &got), SIG_ERR_BAD_PERCENT_ENCODING);

    static char many[SIG_MAX_QUERY_PARAMS * 4 + 8];
    size_t n = 0;
    for (int i = 0; i <= SIG_MAX_QUERY_PARAMS; i++) {
        many[n++] = 'a';
        many[n++] = '&';
    }
    many[n] = '\0';
    assert_int_equal(query(many, &got), SIG_ERR_TOO_MANY_QUERY_PARAMS);
}

static enum sig_err headers(const char *const *kv, size_t n, struct sig_slice *canon,
                            struct sig_slice *signed_list)
{
    struct sig_headers h = {.ws = &ws};
    ws.buf.len = 0;
    for (size_t i = 0; i < n; i++)
        SIG_TRY(sig_headers_add(&h, S(kv[2 * i]), S(kv[2 * i + 1])));
    return sig_headers_write(&h, canon, signed_list);
}

static void test_headers(void **state)
{
    (void)state;
    const char *kv[] = {
        "Host",
        "example.amazonaws.com",
        "My-Header1",
        "  value1   value2\t\tvalue3  ",
        "my-header2",
        "\"a   b\"",
        "MY-HEADER1",
        "second",
        "Connection",
        "keep-alive",
        "User-Agent",
        "curl/8",
        "Expect",
        "100-continue",
        "Proxy-Authorization",
        "x",
        "X-Amzn-Trace-Id",
        "Root=1",
        "Folded",
        "line1\r\n  line2\n\tline3",
        "Empty",
        "",
    };
    struct sig_slice canon, list;
    assert_int_equal(headers(kv, sizeof(kv) / sizeof(kv[0]) / 2, &canon, &list), SIG_OK);
    assert_slice(canon, "empty:\n"
                        "folded:line1 line2 line3\n"
                        "host:example.amazonaws.com\n"
                        "my-header1:value1 value2 value3,second\n"
                        "my-header2:\"a b\"\n");
    assert_slice(list, "empty;folded;host;my-header1;my-header2");
}

static void test_header_errors(void **state)
{
    (void)state;
    struct sig_slice canon, list;
    const char *bad_name[] = {"Bad Name", "v"};
    assert_int_equal(headers(bad_name, 1, &canon, &list), SIG_ERR_BAD_HEADER_NAME);
    const char *empty_name[] = {"", "v"};
    assert_int_equal(headers(empty_name, 1, &canon, &list), SIG_ERR_BAD_HEADER_NAME);
    const char *colon[] = {"a:b", "v"};
    assert_int_equal(headers(colon, 1, &canon, &list), SIG_ERR_BAD_HEADER_NAME);
    const char *ctl[] = {"a", "x\x01y"};
    assert_int_equal(headers(ctl, 1, &canon, &list), SIG_ERR_BAD_HEADER_VALUE);
    const char *bare_lf[] = {"a", "x\ny"};
    assert_int_equal(headers(bare_lf, 1, &canon, &list), SIG_ERR_BAD_HEADER_VALUE);
    const char *bare_cr[] = {"a", "x\r y"};
    assert_int_equal(headers(bare_cr, 1, &canon, &list), SIG_ERR_BAD_HEADER_VALUE);
    const char *trailing_lf[] = {"a", "x\n"};
    assert_int_equal(headers(trailing_lf, 1, &canon, &list), SIG_ERR_BAD_HEADER_VALUE);

    struct sig_headers h = {.ws = &ws};
    ws.buf.len = 0;
    struct sig_slice nul = {(const uint8_t *)"a\0b", 3};
    assert_int_equal(sig_headers_add(&h, S("x"), nul), SIG_ERR_BAD_HEADER_VALUE);
    for (int i = 0; i < SIG_MAX_HEADERS; i++)
        assert_int_equal(sig_headers_add(&h, S("x-n"), S("v")), SIG_OK);
    assert_int_equal(sig_headers_add(&h, S("x-n"), S("v")), SIG_ERR_TOO_MANY_HEADERS);
    /* Unsignable headers do not count against the limit. */
    assert_int_equal(sig_headers_add(&h, S("connection"), S("close")), SIG_OK);
}

static void test_unsignable(void **state)
{
    (void)state;
    assert_true(sig_header_is_unsignable(S("Transfer-Encoding")));
    assert_true(sig_header_is_unsignable(S("TE")));
    assert_true(sig_header_is_unsignable(S("proxy-connection")));
    assert_true(sig_header_is_unsignable(S("Authorization")));
    assert_false(sig_header_is_unsignable(S("proxy")));
    assert_false(sig_header_is_unsignable(S("host")));
    assert_false(sig_header_is_unsignable(S("content-length")));
    assert_false(sig_header_is_unsignable(S("x-amz-date")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_uri_normalize, setup),
        cmocka_unit_test_setup(test_uri_encode_only, setup),
        cmocka_unit_test_setup(test_uri_s3, setup),
        cmocka_unit_test_setup(test_uri_errors, setup),
        cmocka_unit_test_setup(test_uri_too_large, setup),
        cmocka_unit_test_setup(test_query, setup),
        cmocka_unit_test_setup(test_query_errors, setup),
        cmocka_unit_test_setup(test_headers, setup),
        cmocka_unit_test_setup(test_header_errors, setup),
        cmocka_unit_test_setup(test_unsignable, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
