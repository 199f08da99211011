/* Unit tests for signer/sig_sha256.c: known answers from FIPS 180-2 and RFC 4231. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sig_sha256.h"

static void hex_of(const uint8_t *md, char out[65])
{
    sig_hex_lower(md, SIG_SHA256_LEN, out);
}

static void test_sha256_known(void **state)
{
    (void)state;
    uint8_t md[SIG_SHA256_LEN];
    char hex[65];

    sig_sha256("", 0, md);
    hex_of(md, hex);
    assert_string_equal(hex, SIG_EMPTY_SHA256_HEX);
    sig_sha256("abc", 3, md);
    hex_of(md, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sig_sha256(two, strlen(two), md);
    hex_of(md, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_iov_matches_one_shot(void **state)
{
    (void)state;
    uint8_t data[1000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    uint8_t want[SIG_SHA256_LEN], got[SIG_SHA256_LEN];
    sig_sha256(data, sizeof(data), want);

    /* Every split point, including empty segments. */
    for (size_t cut = 0; cut <= sizeof(data); cut += 37) {
        struct sig_slice segs[3] = {{data, cut}, {data + cut, 0}, {data + cut, sizeof(data) - cut}};
        struct sig_sha256 h;
        sig_sha256_init(&h);
        sig_sha256_update_iov(&h, segs, 3);
        sig_sha256_final(&h, got);
        assert_memory_equal(got, want, SIG_SHA256_LEN);
    }
}

static void test_final_hex_wipes_state(void **state)
{
    (void)state;
    struct sig_sha256 h, zero;
    char hex[65];
    memset(&zero, 0, sizeof(zero));
    sig_sha256_init(&h);
    sig_sha256_update(&h, "secret", 6);
    sig_sha256_final_hex(&h, hex);
    assert_memory_equal(&h, &zero, sizeof(h));
    assert_int_equal(strlen(hex), 64);
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the block). */
static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t mac[SIG_SHA256_LEN];
    char hex[65];
    uint8_t key1[20];
    memset(key1, 0x0b, sizeof(key1));
    sig_hmac_sha256(key1, sizeof(key1), "Hi There", 8, mac);
    hex_of(mac, hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    sig_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    hex_of(mac, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    uint8_t key6[131];
    memset(key6, 0xaa, sizeof(key6));
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    sig_hmac_sha256(key6, sizeof(key6), msg, strlen(msg), mac);
    hex_of(mac, hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_hmac_keyed_state_reusable(void **state)
{
    (void)state;
    struct sig_hmac k;
    uint8_t a[SIG_SHA256_LEN], b[SIG_SHA256_LEN], c[SIG_SHA256_LEN];
    sig_hmac_init(&k, "Jefe", 4);
    sig_hmac(&k, "what do ya want for nothing?", 28, a);
    sig_hmac(&k, "what do ya want for nothing?", 28, b);
    struct sig_slice segs[2] = {{(const uint8_t *)"what do ya ", 11},
                                {(const uint8_t *)"want for nothing?", 17}};
    sig_hmac_iov(&k, segs, 2, c);
    assert_memory_equal(a, b, SIG_SHA256_LEN);
    assert_memory_equal(a, c, SIG_SHA256_LEN);
    sig_hmac_cleanup(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known),
        cmocka_unit_test(test_sha256_iov_matches_one_shot),
        cmocka_unit_test(test_final_hex_wipes_state),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hmac_keyed_state_reusable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
