/*
 * sig_checksum_test.c: CRC-32, CRC-32C, base64 and the checksum trailer values.
 *
 * Expected values come from outside this code: the check values of the CRC catalogue
 * ("123456789"), the RFC 4648 section 10 base64 vectors, the S3 trailer example
 * (sigv4-streaming-trailers.html: CRC32C of 66560 'a' is sOO8/Q==), and values computed once
 * with /usr/bin/python3 (zlib.crc32, hashlib.sha256, base64.b64encode, and a bit-at-a-time
 * CRC-32C in Python, botocore's crc32c needing awscrt, which is not installed):
 *
 *   pat = bytes(((i * 31 + 7) & 0xff) for i in range(4096))
 *   zlib.crc32(d); crc32c_bitwise(d); base64.b64encode(struct.pack(">I", crc))
 *   base64.b64encode(hashlib.sha256(d).digest())
 *
 * Every length 0..1000 is also checked against a bit-at-a-time C reference below, and the
 * accelerated paths (PCLMULQDQ CRC-32, SSE4.2 CRC-32C) against the tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sig_checksum.h"

#define PAT_LEN 4096

static uint8_t pat[PAT_LEN];
static uint8_t a66560[66560];

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < PAT_LEN; i++)
        pat[i] = (uint8_t)((i * 31 + 7) & 0xff);
    memset(a66560, 'a', sizeof(a66560));
    return 0;
}

/* The definition, one bit at a time (reflected, init and final XOR all ones). */
static uint32_t crc_bitwise(uint32_t poly, const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    }
    return ~c;
}

static void test_crc_check_values(void **state)
{
    (void)state;
    const char *check = "123456789";
    assert_int_equal(sig_crc32_update(0, check, 9), 0xcbf43926u);
    assert_int_equal(sig_crc32c_update(0, check, 9), 0xe3069283u);
    assert_int_equal(sig_crc32c_update_portable(0, check, 9), 0xe3069283u);
    /* Empty input leaves the value alone, and NULL is allowed then. */
    assert_int_equal(sig_crc32_update(0, NULL, 0), 0);
    assert_int_equal(sig_crc32c_update(0x12345678u, NULL, 0), 0x12345678u);
}

/* The dispatch follows the CPU (so the hardware path really is the one under test here). */
static void test_crc32c_dispatch(void **state)
{
    (void)state;
#if defined(__x86_64__)
    __builtin_cpu_init();
    assert_int_equal(sig_crc32c_hw_available(), __builtin_cpu_supports("sse4.2") != 0);
    assert_int_equal(sig_crc32_hw_available(),
                     __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1"));
#else
    assert_false(sig_crc32c_hw_available());
    assert_false(sig_crc32_hw_available());
#endif
}

static void test_crc_python_values(void **state)
{
    (void)state;
    const char *fox = "The quick brown fox jumps over the lazy dog";
    assert_int_equal(sig_crc32_update(0, "a", 1), 0xe8b7be43u);
    assert_int_equal(sig_crc32c_update(0, "a", 1), 0xc1d04330u);
    assert_int_equal(sig_crc32_update(0, fox, 43), 0x414fa339u);
    assert_int_equal(sig_crc32c_update(0, fox, 43), 0x22620404u);
    assert_int_equal(sig_crc32_update(0, pat, 1000), 0x8902161eu);
    assert_int_equal(sig_crc32c_update(0, pat, 1000), 0xff52ee97u);
    assert_int_equal(sig_crc32_update(0, pat, PAT_LEN), 0x5d1c4ee3u);
    assert_int_equal(sig_crc32c_update(0, pat, PAT_LEN), 0xe1c2f7e8u);
    assert_int_equal(sig_crc32c_update_portable(0, pat, PAT_LEN), 0xe1c2f7e8u);
    assert_int_equal(sig_crc32_update(0, a66560, sizeof(a66560)), 0xb0ae18ecu);
    assert_int_equal(sig_crc32c_update(0, a66560, sizeof(a66560)), 0xb0e3bcfdu);
}

/* Every length and several misalignments against the definition: exercises the 8-byte loops,
 * their tails, and the hardware path's unaligned loads. */
static void test_crc_all_lengths_vs_bitwise(void **state)
{
    (void)state;
    for (size_t off = 0; off < 8; off += 3) {
        for (size_t n = 0; n <= 1000; n++) {
            const uint8_t *p = pat + off;
            uint32_t want32 = crc_bitwise(0xEDB88320u, p, n);
            uint32_t want32c = crc_bitwise(0x82F63B78u, p, n);
            assert_int_equal(sig_crc32_update(0, p, n), want32);
            assert_int_equal(sig_crc32_update_portable(0, p, n), want32);
            assert_int_equal(sig_crc32c_update(0, p, n), want32c);
            assert_int_equal(sig_crc32c_update_portable(0, p, n), want32c);
        }
    }
}

/* Longer inputs around the accelerated paths' block boundaries (64-byte folds, 16-byte tail
 * blocks, byte tails) and every alignment, against the tables. */
static void test_crc_long_vs_portable(void **state)
{
    (void)state;
    for (size_t off = 0; off < 16; off++) {
        for (size_t n = PAT_LEN - 16 - 130; n <= PAT_LEN - 16; n++) {
            const uint8_t *p = pat + off;
            assert_int_equal(sig_crc32_update(0, p, n), sig_crc32_update_portable(0, p, n));
            assert_int_equal(sig_crc32c_update(0, p, n), sig_crc32c_update_portable(0, p, n));
        }
    }
    /* A non-zero incoming CRC goes through the accelerated path correctly too. */
    uint32_t c = sig_crc32_update(0, pat, 5);
    assert_int_equal(sig_crc32_update(c, pat + 5, PAT_LEN - 5), 0x5d1c4ee3u);
    c = sig_crc32c_update(0, pat, 5);
    assert_int_equal(sig_crc32c_update(c, pat + 5, PAT_LEN - 5), 0xe1c2f7e8u);
}

/* Feeding the data in pieces of every split gives the one-shot value. */
static void test_crc_incremental(void **state)
{
    (void)state;
    const size_t n = 300;
    uint32_t one32 = sig_crc32_update(0, pat, n);
    uint32_t one32c = sig_crc32c_update(0, pat, n);
    for (size_t a = 0; a <= n; a += 7) {
        for (size_t b = a; b <= n; b += 13) {
            uint32_t c = sig_crc32_update(0, pat, a);
            c = sig_crc32_update(c, pat + a, b - a);
            c = sig_crc32_update(c, pat + b, n - b);
            assert_int_equal(c, one32);
            c = sig_crc32c_update(0, pat, a);
            c = sig_crc32c_update(c, pat + a, b - a);
            c = sig_crc32c_update(c, pat + b, n - b);
            assert_int_equal(c, one32c);
            c = sig_crc32c_update_portable(0, pat, a);
            c = sig_crc32c_update(c, pat + a, b - a);
            c = sig_crc32c_update_portable(c, pat + b, n - b);
            assert_int_equal(c, one32c);
        }
    }
}

static void check_b64(const char *in, size_t n, const char *want)
{
    char mem[512];
    struct sig_buf b;
    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_base64_append(&b, (struct sig_slice){(const uint8_t *)in, n}), SIG_OK);
    assert_int_equal(b.len, sig_slice_from_cstr(want).len);
    assert_int_equal(b.len, SIG_BASE64_LEN(n));
    assert_memory_equal(mem, want, b.len);
}

static void test_base64_rfc4648(void **state)
{
    (void)state;
    check_b64("", 0, "");
    check_b64("f", 1, "Zg==");
    check_b64("fo", 2, "Zm8=");
    check_b64("foo", 3, "Zm9v");
    check_b64("foob", 4, "Zm9vYg==");
    check_b64("fooba", 5, "Zm9vYmE=");
    check_b64("foobar", 6, "Zm9vYmFy");
}

/* All 256 byte values, longer than the encoder's internal block: from Python's b64encode. */
static void test_base64_all_bytes(void **state)
{
    (void)state;
    char in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (char)i;
    check_b64(in, sizeof(in),
              "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7"
              "PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3"
              "eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKz"
              "tLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v"
              "8PHy8/T19vf4+fr7/P3+/w==");
}

static void test_base64_limits(void **state)
{
    (void)state;
    char mem[8];
    struct sig_buf b;

    /* Exactly fits. */
    sig_buf_init(&b, mem, 8);
    assert_int_equal(sig_base64_append(&b, SIG_SLICE_LIT("foobar")), SIG_OK);
    assert_int_equal(b.len, 8);
    /* One byte short: refused, buffer unchanged. */
    sig_buf_init(&b, mem, 7);
    assert_int_equal(sig_base64_append(&b, SIG_SLICE_LIT("foobar")), SIG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    /* Partly filled buffer: the check counts what is already there. */
    sig_buf_init(&b, mem, 8);
    assert_int_equal(sig_buf_append(&b, "xxxxx", 5), SIG_OK);
    assert_int_equal(sig_base64_append(&b, SIG_SLICE_LIT("f")), SIG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 5);
    /* A length whose encoding would overflow size_t is refused before anything is read. */
    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_base64_append(&b, (struct sig_slice){(const uint8_t *)mem, SIZE_MAX}),
                     SIG_ERR_TOO_LARGE);
    assert_int_equal(
        sig_base64_append(&b, (struct sig_slice){(const uint8_t *)mem, (SIZE_MAX / 4) * 3 + 1}),
        SIG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
}

static void check_final_b64(enum sig_checksum_alg alg, const uint8_t *p, size_t n, const char *want)
{
    struct sig_checksum c;
    char out[SIG_CHECKSUM_MAX_B64 + 1];
    assert_int_equal(sig_checksum_init(&c, alg), SIG_OK);
    sig_checksum_update(&c, p, n);
    size_t len = sig_checksum_final_b64(&c, out);
    assert_int_equal(len, sig_slice_from_cstr(want).len);
    assert_int_equal(len, sig_checksum_b64_len(alg));
    assert_string_equal(out, want);
}

static void test_checksum_trailer_values(void **state)
{
    (void)state;
    const uint8_t *check = (const uint8_t *)"123456789";
    check_final_b64(SIG_CHECKSUM_CRC32, check, 9, "y/Q5Jg==");
    check_final_b64(SIG_CHECKSUM_CRC32C, check, 9, "4waSgw==");
    check_final_b64(SIG_CHECKSUM_SHA256, check, 9, "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=");
    check_final_b64(SIG_CHECKSUM_CRC32, NULL, 0, "AAAAAA==");
    check_final_b64(SIG_CHECKSUM_CRC32C, NULL, 0, "AAAAAA==");
    check_final_b64(SIG_CHECKSUM_SHA256, NULL, 0, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    /* The S3 documentation's trailer example. */
    check_final_b64(SIG_CHECKSUM_CRC32C, a66560, sizeof(a66560), "sOO8/Q==");
    check_final_b64(SIG_CHECKSUM_CRC32, a66560, sizeof(a66560), "sK4Y7A==");
    check_final_b64(SIG_CHECKSUM_SHA256, a66560, sizeof(a66560),
                    "zWnTiHxq+SZLEA17dgIzEzXZqn4718MM3G1vS/uzyIg=");
    check_final_b64(SIG_CHECKSUM_CRC32, pat, PAT_LEN, "XRxO4w==");
    check_final_b64(SIG_CHECKSUM_CRC32C, pat, PAT_LEN, "4cL36A==");
    check_final_b64(SIG_CHECKSUM_SHA256, pat, PAT_LEN,
                    "1B1DjDeREMf3ssVhsfBPJsG0VJEQeR+OAi9Il0KAwT4=");
}

/* Segments of uneven sizes (as a libevent chain would give) equal the one-shot digest. */
static void test_checksum_iov_equals_one_shot(void **state)
{
    (void)state;
    const size_t cuts[] = {0, 1, 7, 8, 9, 64, 1000, 1001, 2048, 4095, PAT_LEN};
    struct sig_slice segs[10];
    for (size_t i = 0; i + 1 < sizeof(cuts) / sizeof(cuts[0]); i++)
        segs[i] = (struct sig_slice){pat + cuts[i], cuts[i + 1] - cuts[i]};

    for (int alg = SIG_CHECKSUM_CRC32; alg <= SIG_CHECKSUM_SHA256; alg++) {
        struct sig_checksum one, many;
        uint8_t d1[SIG_CHECKSUM_MAX_DIGEST], d2[SIG_CHECKSUM_MAX_DIGEST];
        assert_int_equal(sig_checksum_init(&one, (enum sig_checksum_alg)alg), SIG_OK);
        assert_int_equal(sig_checksum_init(&many, (enum sig_checksum_alg)alg), SIG_OK);
        sig_checksum_update(&one, pat, PAT_LEN);
        sig_checksum_update_iov(&many, segs, 10);
        size_t n1 = sig_checksum_final(&one, d1);
        size_t n2 = sig_checksum_final(&many, d2);
        assert_int_equal(n1, sig_checksum_digest_len((enum sig_checksum_alg)alg));
        assert_int_equal(n1, n2);
        assert_memory_equal(d1, d2, n1);
    }
}

/* The digest is big-endian: crc32("123456789") = cbf43926 -> bytes cb f4 39 26. */
static void test_checksum_digest_is_big_endian(void **state)
{
    (void)state;
    struct sig_checksum c;
    uint8_t d[SIG_CHECKSUM_MAX_DIGEST];
    assert_int_equal(sig_checksum_init(&c, SIG_CHECKSUM_CRC32), SIG_OK);
    sig_checksum_update(&c, "123456789", 9);
    assert_int_equal(sig_checksum_final(&c, d), 4);
    const uint8_t want[4] = {0xcb, 0xf4, 0x39, 0x26};
    assert_memory_equal(d, want, 4);
}

static void test_checksum_names_and_parse(void **state)
{
    (void)state;
    enum sig_checksum_alg alg = SIG_CHECKSUM_SHA256;
    assert_int_equal(sig_checksum_alg_parse(SIG_SLICE_LIT("CRC32"), &alg), SIG_OK);
    assert_int_equal(alg, SIG_CHECKSUM_CRC32);
    assert_int_equal(sig_checksum_alg_parse(SIG_SLICE_LIT("crc32c"), &alg), SIG_OK);
    assert_int_equal(alg, SIG_CHECKSUM_CRC32C);
    assert_int_equal(sig_checksum_alg_parse(SIG_SLICE_LIT("Sha256"), &alg), SIG_OK);
    assert_int_equal(alg, SIG_CHECKSUM_SHA256);

    /* Unknown, unsupported, prefixes, extensions, empty: refused, out untouched. */
    const char *bad[] = {"", "CRC", "CRC32CC", "CRC64NVME", "SHA1", "SHA-256", " CRC32", "crc32 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        alg = SIG_CHECKSUM_CRC32C;
        assert_int_equal(sig_checksum_alg_parse(sig_slice_from_cstr(bad[i]), &alg),
                         SIG_ERR_INVALID_ARG);
        assert_int_equal(alg, SIG_CHECKSUM_CRC32C);
    }

    assert_true(sig_slice_eq(sig_checksum_header_name(SIG_CHECKSUM_CRC32),
                             SIG_SLICE_LIT("x-amz-checksum-crc32")));
    assert_true(sig_slice_eq(sig_checksum_header_name(SIG_CHECKSUM_CRC32C),
                             SIG_SLICE_LIT("x-amz-checksum-crc32c")));
    assert_true(sig_slice_eq(sig_checksum_header_name(SIG_CHECKSUM_SHA256),
                             SIG_SLICE_LIT("x-amz-checksum-sha256")));
    assert_int_equal(sig_checksum_b64_len(SIG_CHECKSUM_CRC32), 8);
    assert_int_equal(sig_checksum_b64_len(SIG_CHECKSUM_CRC32C), 8);
    assert_int_equal(sig_checksum_b64_len(SIG_CHECKSUM_SHA256), 44);
}

static void test_checksum_bad_alg(void **state)
{
    (void)state;
    struct sig_checksum c;
    enum sig_checksum_alg bad = (enum sig_checksum_alg)3;
    assert_int_equal(sig_checksum_init(&c, bad), SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_checksum_init(&c, (enum sig_checksum_alg) - 1), SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_checksum_header_name(bad).len, 0);
    assert_int_equal(sig_checksum_digest_len(bad), 0);
    assert_int_equal(sig_checksum_b64_len(bad), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_check_values),
        cmocka_unit_test(test_crc32c_dispatch),
        cmocka_unit_test(test_crc_python_values),
        cmocka_unit_test(test_crc_all_lengths_vs_bitwise),
        cmocka_unit_test(test_crc_long_vs_portable),
        cmocka_unit_test(test_crc_incremental),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_all_bytes),
        cmocka_unit_test(test_base64_limits),
        cmocka_unit_test(test_checksum_trailer_values),
        cmocka_unit_test(test_checksum_iov_equals_one_shot),
        cmocka_unit_test(test_checksum_digest_is_big_endian),
        cmocka_unit_test(test_checksum_names_and_parse),
        cmocka_unit_test(test_checksum_bad_alg),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
