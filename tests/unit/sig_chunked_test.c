/*
 * sig_chunked_test.c: aws-chunked seed, chunk and trailer signatures, framing and length.
 *
 * Reference values:
 *  - AWS S3 API reference, sigv4-streaming.html, "Example: PUT Object": the seed, the three
 *    chunk signatures and Content-Length 66824 of PUT /examplebucket/chunkObject.txt,
 *    66560 bytes of 'a' in 64 KiB chunks.
 *  - sigv4-streaming-trailers.html, "Example: PUT Object": the same upload with a CRC32C
 *    trailer (x-amz-checksum-crc32c:sOO8/Q==): its seed, chunk and trailer signatures.
 *  - Values computed once with /usr/bin/python3 (hashlib, hmac), which reproduce every
 *    documented value above before giving the new ones (botocore 1.29 has no streaming
 *    signer, so there is no differential test):
 *      k = HMAC chain "AWS4"+secret, "20130524", "us-east-1", "s3", "aws4_request"
 *      chunk(prev, d) = hmac(k, "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", date, scope, prev,
 *                                          sha256(b"").hex(), sha256(d).hex()])).hex()
 *      trailer(prev, canon) = hmac(k, "\n".join(["AWS4-HMAC-SHA256-TRAILER", date, scope,
 *                                                prev, sha256(canon).hex()])).hex()
 *    The two-trailer signature below is trailer(final chunk signature of the trailer example,
 *    "x-amz-checksum-crc32:sK4Y7A==\nx-amz-checksum-sha256:zWnTiHxq+SZLEA17dgIzEzXZqn4718MM3G1v
 *    S/uzyIg=\n"), where the values are base64(crc32 big-endian) and base64(sha256) of the
 *    66560 bytes (zlib.crc32, hashlib.sha256). The body hashes are sha256 of the bodies
 *    assembled in Python with the framing of the documents.
 *  - The unsigned-trailer bodies are byte for byte what botocore 1.29's AwsChunkedWrapper
 *    produces (chunk_size=65536, Crc32Checksum, name x-amz-checksum-crc32): its sha256 for the
 *    66560 bytes is the one below, and for an empty body it is the literal below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sig_checksum.h"
#include "sig_chunked.h"

#define DOC_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define DOC_TIME 1369353600 /* 20130524T000000Z */
#define DOC_DECODED 66560
#define DOC_CHUNK 65536

#define DOC_SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define DOC_SIG1 "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
#define DOC_SIG2 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
#define DOC_SIG3 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"

#define TRL_SEED "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
#define TRL_SIG1 "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"
#define TRL_SIG2 "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"
#define TRL_SIG3 "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"
#define TRL_TRAILER_SIG "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
/* Python-derived (see the top of the file). */
#define TWO_TRAILER_SIG "829f1ceb25004f3dca7bb701b1e0a3363be4493b004fca1d9491ee6b344d50fc"

static uint8_t data[DOC_DECODED];
static uint8_t body[70000];
static uint8_t ws_mem[1 << 16];
static struct sig_workspace ws;
static struct sig_key_cache cache;
static struct sig_result seed;

static int setup(void **state)
{
    (void)state;
    memset(data, 'a', sizeof(data));
    return 0;
}

static int before(void **state)
{
    (void)state;
    sig_workspace_init(&ws, ws_mem, sizeof(ws_mem));
    sig_key_cache_init(&cache);
    memset(&seed, 0, sizeof(seed));
    return 0;
}

static int after(void **state)
{
    (void)state;
    sig_workspace_cleanup(&ws);
    sig_key_cache_cleanup(&cache);
    return 0;
}

/* The literal's bytes (without its NUL) are at p. */
#define assert_bytes_at(p, lit) assert_memory_equal((p), (lit), sizeof(lit) - 1)

static struct sig_slice S(const char *s) {
    return sig_slice_from_cstr(s);
}

static void
assert_slice(struct sig_slice got, const char *want)
{
    struct sig_slice w = S(want);
    assert_int_equal(got.len, w.len);
    assert_memory_equal(got.ptr, w.ptr, w.len);
}

static void assert_sha256_hex(const uint8_t *p, size_t n, const char *want)
{
    struct sig_sha256 h;
    char hex[SIG_SHA256_HEX_LEN + 1];
    sig_sha256_init(&h);
    sig_sha256_update(&h, p, n);
    sig_sha256_final_hex(&h, hex);
    assert_string_equal(hex, want);
}

/* Signs the documents' request with sig_sign: the seed. */
static void sign_doc_seed(enum sig_chunked_mode mode)
{
    struct sig_header h[5];
    size_t n = 0;
    h[n++] = (struct sig_header){S("Host"), S("s3.amazonaws.com")};
    h[n++] = (struct sig_header){S("x-amz-storage-class"), S("REDUCED_REDUNDANCY")};
    h[n++] = (struct sig_header){S("Content-Encoding"), S("aws-chunked")};
    h[n++] = (struct sig_header){S("x-amz-decoded-content-length"), S("66560")};
    if (mode == SIG_CHUNKED_SIGNED)
        h[n++] = (struct sig_header){S("Content-Length"), S("66824")};
    else
        h[n++] = (struct sig_header){S("x-amz-trailer"), S("x-amz-checksum-crc32c")};

    const struct sig_request req = {S("PUT"), S("/examplebucket/chunkObject.txt"), S(""), h, n};
    const struct sig_params p = {
        .alg = SIG_ALG_V4,
        .form = SIG_FORM_HEADER,
        .uri_mode = SIG_URI_S3,
        .region = S("us-east-1"),
        .service = S("s3"),
        .unix_time = DOC_TIME,
        .payload_hash = sig_chunked_content_sha256(mode),
        .add_content_sha256 = true,
    };
    const struct sig_credentials creds = {S("AKIAIOSFODNN7EXAMPLE"), S(DOC_SECRET), S("")};
    assert_int_equal(sig_sign(&req, &p, &creds, &cache, &ws, &seed), SIG_OK);
}

/* Frames the documents' 66560 bytes into `body` with the signer's chain; returns the length.
 * The data is hashed in three uneven segments per chunk to go through the iov path. */
static size_t frame_doc_body(struct sig_chunk_signer *cs, const char *want_sigs[3])
{
    struct sig_buf b;
    char sig[SIG_SHA256_HEX_LEN + 1];
    size_t off = 0;
    int i = 0;

    sig_buf_init(&b, body, sizeof(body));
    while (off < DOC_DECODED) {
        size_t n = DOC_DECODED - off < DOC_CHUNK ? DOC_DECODED - off : DOC_CHUNK;
        const struct sig_slice segs[3] = {
            {data + off, 1}, {data + off + 1, n / 2}, {data + off + 1 + n / 2, n - 1 - n / 2}};
        assert_int_equal(sig_chunk_sign_iov(cs, segs, 3, sig), SIG_OK);
        assert_string_equal(sig, want_sigs[i++]);
        assert_int_equal(sig_chunk_header(&b, n, S(sig)), SIG_OK);
        assert_int_equal(sig_buf_append(&b, data + off, n), SIG_OK);
        assert_int_equal(sig_buf_append(&b, "\r\n", 2), SIG_OK);
        off += n;
    }
    assert_int_equal(sig_chunk_sign_iov(cs, NULL, 0, sig), SIG_OK);
    assert_string_equal(sig, want_sigs[i]);
    assert_int_equal(sig_chunk_header(&b, 0, S(sig)), SIG_OK);
    return b.len;
}

/* sigv4-streaming.html, Example: PUT Object, end to end. */
static void test_doc_chunked_example(void **state)
{
    (void)state;
    struct sig_chunk_signer cs;
    const char *sigs[3] = {DOC_SIG1, DOC_SIG2, DOC_SIG3};

    sign_doc_seed(SIG_CHUNKED_SIGNED);
    assert_slice(seed.canonical_request,
                 "PUT\n/examplebucket/chunkObject.txt\n\n"
                 "content-encoding:aws-chunked\ncontent-length:66824\nhost:s3.amazonaws.com\n"
                 "x-amz-content-sha256:STREAMING-AWS4-HMAC-SHA256-PAYLOAD\n"
                 "x-amz-date:20130524T000000Z\nx-amz-decoded-content-length:66560\n"
                 "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
                 "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                 "x-amz-decoded-content-length;x-amz-storage-class\n"
                 "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    assert_slice(seed.string_to_sign,
                 "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                 "cee3fed04b70f867d036f722359b0b1f2f0e5dc0efadbc082b76c4c60e316455");
    assert_slice(seed.signature, DOC_SEED);

    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &seed, S(DOC_SECRET), &cache),
                     SIG_OK);
    size_t len = frame_doc_body(&cs, sigs);
    struct sig_buf b = {body, len, sizeof(body)};
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_SIGNED, NULL, 0, S("")), SIG_OK);
    sig_chunk_signer_cleanup(&cs);

    /* The documented Content-Length, and the exact bytes. */
    assert_int_equal(b.len, 66824);
    uint64_t clen = 0;
    assert_int_equal(
        sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, DOC_DECODED, DOC_CHUNK, NULL, 0, &clen),
        SIG_OK);
    assert_int_equal(clen, 66824);
    assert_bytes_at(body, "10000;chunk-signature=" DOC_SIG1 "\r\naaaa");
    assert_bytes_at(body + 88 + 65536, "\r\n400;chunk-signature=" DOC_SIG2 "\r\na");
    assert_bytes_at(body + b.len - 88, "\r\n0;chunk-signature=" DOC_SIG3 "\r\n\r\n");
    assert_sha256_hex(body, b.len,
                      "86ba876e2a8457dbc4bfe805f155e5d0560d8328ce92b64e0c42d3e973fcfa62");
}

/* sigv4-streaming-trailers.html, Example: PUT Object, with the CRC32C computed here. */
static void test_doc_trailer_example(void **state)
{
    (void)state;
    struct sig_chunk_signer cs;
    struct sig_checksum ck;
    char crc_b64[SIG_CHECKSUM_MAX_B64 + 1];
    char tsig[SIG_SHA256_HEX_LEN + 1];
    const char *sigs[3] = {TRL_SIG1, TRL_SIG2, TRL_SIG3};

    sign_doc_seed(SIG_CHUNKED_SIGNED_TRAILER);
    assert_slice(seed.signed_headers, "content-encoding;host;x-amz-content-sha256;x-amz-date;"
                                      "x-amz-decoded-content-length;x-amz-storage-class;"
                                      "x-amz-trailer");
    assert_slice(seed.signature, TRL_SEED);

    assert_int_equal(
        sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED_TRAILER, &seed, S(DOC_SECRET), &cache),
        SIG_OK);
    size_t len = frame_doc_body(&cs, sigs);

    assert_int_equal(sig_checksum_init(&ck, SIG_CHECKSUM_CRC32C), SIG_OK);
    sig_checksum_update(&ck, data, 1000);
    sig_checksum_update(&ck, data + 1000, DOC_DECODED - 1000);
    assert_int_equal(sig_checksum_final_b64(&ck, crc_b64), 8);
    assert_string_equal(crc_b64, "sOO8/Q==");

    const struct sig_header trailer = {S("x-amz-checksum-crc32c"), S(crc_b64)};
    assert_int_equal(sig_chunk_sign_trailer(&cs, &trailer, 1, tsig), SIG_OK);
    assert_string_equal(tsig, TRL_TRAILER_SIG);
    struct sig_buf b = {body, len, sizeof(body)};
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_SIGNED_TRAILER, &trailer, 1, S(tsig)),
                     SIG_OK);
    sig_chunk_signer_cleanup(&cs);

    const char tail[] = "\r\n0;chunk-signature=" TRL_SIG3 "\r\n"
                        "x-amz-checksum-crc32c:sOO8/Q==\r\n"
                        "x-amz-trailer-signature:" TRL_TRAILER_SIG "\r\n\r\n";
    assert_memory_equal(body + b.len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    assert_int_equal(b.len, 66946);
    const struct sig_trailer_size ts = {S("x-amz-checksum-crc32c"),
                                        sig_checksum_b64_len(SIG_CHECKSUM_CRC32C)};
    uint64_t clen = 0;
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED_TRAILER, DOC_DECODED, DOC_CHUNK,
                                                &ts, 1, &clen),
                     SIG_OK);
    assert_int_equal(clen, b.len);
    assert_sha256_hex(body, b.len,
                      "dd4bd64a7debecf7307c9df56d8cbc09a990df0f62f5343c154a2a1c048b4f86");
}

/* Two trailers after the trailer example's chain: Python-derived signature. */
static void test_two_trailers_python(void **state)
{
    (void)state;
    struct sig_chunk_signer cs;
    char sig[SIG_SHA256_HEX_LEN + 1];
    char crc[SIG_CHECKSUM_MAX_B64 + 1], sha[SIG_CHECKSUM_MAX_B64 + 1];
    struct sig_checksum c1, c2;

    sign_doc_seed(SIG_CHUNKED_SIGNED_TRAILER);
    assert_int_equal(
        sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED_TRAILER, &seed, S(DOC_SECRET), NULL), SIG_OK);
    uint8_t d[SIG_SHA256_LEN];
    sig_sha256(data, DOC_CHUNK, d);
    assert_int_equal(sig_chunk_sign(&cs, DOC_CHUNK, d, sig), SIG_OK);
    assert_string_equal(sig, TRL_SIG1);
    sig_sha256(data, 1024, d);
    assert_int_equal(sig_chunk_sign(&cs, 1024, d, sig), SIG_OK);
    assert_string_equal(sig, TRL_SIG2);
    sig_sha256(NULL, 0, d);
    assert_int_equal(sig_chunk_sign(&cs, 0, d, sig), SIG_OK);
    assert_string_equal(sig, TRL_SIG3);

    assert_int_equal(sig_checksum_init(&c1, SIG_CHECKSUM_CRC32), SIG_OK);
    assert_int_equal(sig_checksum_init(&c2, SIG_CHECKSUM_SHA256), SIG_OK);
    const struct sig_slice segs[2] = {{data, 7}, {data + 7, DOC_DECODED - 7}};
    sig_checksum_update_iov(&c1, segs, 2);
    sig_checksum_update_iov(&c2, segs, 2);
    assert_int_equal(sig_checksum_final_b64(&c1, crc), 8);
    assert_int_equal(sig_checksum_final_b64(&c2, sha), 44);
    assert_string_equal(crc, "sK4Y7A==");
    assert_string_equal(sha, "zWnTiHxq+SZLEA17dgIzEzXZqn4718MM3G1vS/uzyIg=");

    const struct sig_header tr[2] = {{sig_checksum_header_name(SIG_CHECKSUM_CRC32), S(crc)},
                                     {sig_checksum_header_name(SIG_CHECKSUM_SHA256), S(sha)}};
    assert_int_equal(sig_chunk_sign_trailer(&cs, tr, 2, sig), SIG_OK);
    assert_string_equal(sig, TWO_TRAILER_SIG);

    uint8_t out[256];
    struct sig_buf b;
    sig_buf_init(&b, out, sizeof(out));
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_SIGNED_TRAILER, tr, 2, S(sig)), SIG_OK);
    assert_slice(sig_buf_slice(&b), "x-amz-checksum-crc32:sK4Y7A==\r\n"
                                    "x-amz-checksum-sha256:zWnTiHxq+SZLEA17dgIzEzXZqn4718MM3G1vS/"
                                    "uzyIg=\r\n"
                                    "x-amz-trailer-signature:" TWO_TRAILER_SIG "\r\n\r\n");
    sig_chunk_signer_cleanup(&cs);
}

/* STREAMING-UNSIGNED-PAYLOAD-TRAILER: plain chunk sizes, "0", trailers, CRLF (as botocore's
 * AwsChunkedWrapper frames it). */
static void test_unsigned_trailer_body(void **state)
{
    (void)state;
    struct sig_buf b;
    struct sig_checksum ck;
    char crc[SIG_CHECKSUM_MAX_B64 + 1];

    assert_int_equal(sig_checksum_init(&ck, SIG_CHECKSUM_CRC32), SIG_OK);
    sig_buf_init(&b, body, sizeof(body));
    for (size_t off = 0; off < DOC_DECODED; off += DOC_CHUNK) {
        size_t n = DOC_DECODED - off < DOC_CHUNK ? DOC_DECODED - off : DOC_CHUNK;
        sig_checksum_update(&ck, data + off, n);
        assert_int_equal(sig_chunk_header(&b, n, S("")), SIG_OK);
        assert_int_equal(sig_buf_append(&b, data + off, n), SIG_OK);
        assert_int_equal(sig_buf_append(&b, "\r\n", 2), SIG_OK);
    }
    assert_int_equal(sig_chunk_header(&b, 0, S("")), SIG_OK);
    sig_checksum_final_b64(&ck, crc);
    const struct sig_header tr = {S("x-amz-checksum-crc32"), S(crc)};
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, &tr, 1, S("")), SIG_OK);

    assert_memory_equal(body, "10000\r\naaa", 10);
    const char tail[] = "a\r\n0\r\nx-amz-checksum-crc32:sK4Y7A==\r\n\r\n";
    assert_memory_equal(body + b.len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    assert_int_equal(b.len, 66612);
    const struct sig_trailer_size ts = {S("x-amz-checksum-crc32"), 8};
    uint64_t clen = 0;
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_UNSIGNED_TRAILER, DOC_DECODED,
                                                DOC_CHUNK, &ts, 1, &clen),
                     SIG_OK);
    assert_int_equal(clen, 66612);
    assert_sha256_hex(body, b.len,
                      "342b2e21844e54fce0eb3602c31428181cf979e14a3ef1b9ed50a00a0f56263a");
}

/* An empty body in the unsigned-trailer mode, as botocore frames it. */
static void test_unsigned_trailer_empty_body(void **state)
{
    (void)state;
    struct sig_buf b;
    struct sig_checksum ck;
    char crc[SIG_CHECKSUM_MAX_B64 + 1];

    assert_int_equal(sig_checksum_init(&ck, SIG_CHECKSUM_CRC32), SIG_OK);
    sig_checksum_final_b64(&ck, crc);
    const struct sig_header tr = {sig_checksum_header_name(SIG_CHECKSUM_CRC32), S(crc)};
    sig_buf_init(&b, body, sizeof(body));
    assert_int_equal(sig_chunk_header(&b, 0, S("")), SIG_OK);
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, &tr, 1, S("")), SIG_OK);
    assert_slice(sig_buf_slice(&b), "0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n");

    const struct sig_trailer_size ts = {tr.name, sig_checksum_b64_len(SIG_CHECKSUM_CRC32)};
    uint64_t clen = 0;
    assert_int_equal(
        sig_chunked_encoded_length(SIG_CHUNKED_UNSIGNED_TRAILER, 0, 65536, &ts, 1, &clen), SIG_OK);
    assert_int_equal(clen, b.len);
}

/* The length formula agrees with actually framing bodies of awkward sizes in every mode. */
static void test_encoded_length_matches_framing(void **state)
{
    (void)state;
    const uint64_t chunk = 8192;
    const uint64_t sizes[] = {0, 1, 8191, 8192, 8193, 16384, 20000, 65535};
    const char *zero_sig = "0000000000000000000000000000000000000000000000000000000000000000";
    const struct sig_header tr[2] = {{S("x-amz-checksum-crc32"), S("AAAAAA==")},
                                     {S("x-amz-meta-a"), S("b")}};
    const struct sig_trailer_size ts[2] = {{S("x-amz-checksum-crc32"), 8}, {S("x-amz-meta-a"), 1}};

    for (int mode = 0; mode <= 2; mode++) {
        bool is_signed = mode != SIG_CHUNKED_UNSIGNED_TRAILER;
        size_t ntr = mode == SIG_CHUNKED_SIGNED ? 0 : 2;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            struct sig_buf b;
            sig_buf_init(&b, body, sizeof(body));
            uint64_t left = sizes[i];
            while (left > 0) {
                uint64_t n = left < chunk ? left : chunk;
                assert_int_equal(sig_chunk_header(&b, n, S(is_signed ? zero_sig : "")), SIG_OK);
                assert_int_equal(sig_buf_append(&b, data, n), SIG_OK);
                assert_int_equal(sig_buf_append(&b, "\r\n", 2), SIG_OK);
                left -= n;
            }
            assert_int_equal(sig_chunk_header(&b, 0, S(is_signed ? zero_sig : "")), SIG_OK);
            assert_int_equal(
                sig_chunked_trailers(&b, (enum sig_chunked_mode)mode, tr, ntr,
                                     S(mode == SIG_CHUNKED_SIGNED_TRAILER ? zero_sig : "")),
                SIG_OK);
            uint64_t clen = 0;
            assert_int_equal(sig_chunked_encoded_length((enum sig_chunked_mode)mode, sizes[i],
                                                        chunk, ts, ntr, &clen),
                             SIG_OK);
            assert_int_equal(clen, b.len);
        }
    }
    /* An empty body is just the final chunk: "0;chunk-signature=<64>\r\n\r\n". */
    uint64_t clen = 0;
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, 0, 65536, NULL, 0, &clen),
                     SIG_OK);
    assert_int_equal(clen, 86);
    assert_int_equal(
        sig_chunked_encoded_length(SIG_CHUNKED_UNSIGNED_TRAILER, 0, 65536, NULL, 0, &clen), SIG_OK);
    assert_int_equal(clen, 5);
    /* The largest accepted body does not overflow: 2^50 bytes in 64 MiB chunks. */
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, SIG_CHUNKED_MAX_DECODED_LEN,
                                                SIG_CHUNKED_MIN_CHUNK_SIZE, NULL, 0, &clen),
                     SIG_OK);
    /* 2^37 chunks of 8192 ("2000"): 4 + 17 + 64 + 2 + 8192 + 2 each, plus 86. */
    assert_true(clen == (UINT64_C(1) << 37) * (4 + 17 + 64 + 2 + 8192 + 2) + 86);
}

static void test_encoded_length_limits(void **state)
{
    (void)state;
    uint64_t clen = 42;
    const struct sig_trailer_size ok = {S("x-amz-checksum-crc32"), 8};
    struct sig_trailer_size many[SIG_CHUNKED_MAX_TRAILERS + 1];
    for (size_t i = 0; i < SIG_CHUNKED_MAX_TRAILERS + 1; i++)
        many[i] = ok;

    assert_int_equal(sig_chunked_encoded_length((enum sig_chunked_mode)3, 1, 8192, NULL, 0, &clen),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, 1, 8191, NULL, 0, &clen),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, 1,
                                                SIG_CHUNKED_MAX_CHUNK_SIZE + 1ull, NULL, 0, &clen),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, SIG_CHUNKED_MAX_DECODED_LEN + 1,
                                                8192, NULL, 0, &clen),
                     SIG_ERR_TOO_LARGE);
    assert_int_equal(
        sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, UINT64_MAX, 8192, NULL, 0, &clen),
        SIG_ERR_TOO_LARGE);
    /* Trailers only in the trailer modes. */
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, 1, 8192, &ok, 1, &clen),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(
        sig_chunked_encoded_length(SIG_CHUNKED_SIGNED_TRAILER, 1, 8192, NULL, 1, &clen),
        SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED_TRAILER, 1, 8192, many,
                                                SIG_CHUNKED_MAX_TRAILERS + 1, &clen),
                     SIG_ERR_TOO_LARGE);
    const struct sig_trailer_size long_value = {S("x-amz-meta-a"),
                                                SIG_CHUNKED_MAX_TRAILER_VALUE + 1};
    assert_int_equal(
        sig_chunked_encoded_length(SIG_CHUNKED_UNSIGNED_TRAILER, 1, 8192, &long_value, 1, &clen),
        SIG_ERR_TOO_LARGE);
    const struct sig_trailer_size upper = {S("X-Amz-Checksum-Crc32"), 8};
    assert_int_equal(
        sig_chunked_encoded_length(SIG_CHUNKED_UNSIGNED_TRAILER, 1, 8192, &upper, 1, &clen),
        SIG_ERR_BAD_HEADER_NAME);
    const struct sig_trailer_size unsorted[2] = {{S("x-b"), 1}, {S("x-a"), 1}};
    assert_int_equal(
        sig_chunked_encoded_length(SIG_CHUNKED_UNSIGNED_TRAILER, 1, 8192, unsorted, 2, &clen),
        SIG_ERR_INVALID_ARG);
    assert_int_equal(clen, 42);

    /* The boundaries themselves are accepted. */
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED_TRAILER,
                                                SIG_CHUNKED_MAX_DECODED_LEN,
                                                SIG_CHUNKED_MAX_CHUNK_SIZE, &ok, 1, &clen),
                     SIG_OK);
    assert_int_equal(sig_chunked_encoded_length(SIG_CHUNKED_SIGNED, 1, SIG_CHUNKED_MIN_CHUNK_SIZE,
                                                NULL, 0, &clen),
                     SIG_OK);
}

static void test_chunk_header_limits(void **state)
{
    (void)state;
    uint8_t mem[SIG_CHUNK_HEADER_MAX];
    struct sig_buf b;
    const char *sig = DOC_SIG1;

    /* The longest header fits SIG_CHUNK_HEADER_MAX exactly... */
    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_chunk_header(&b, SIG_CHUNKED_MAX_CHUNK_SIZE, S(sig)), SIG_OK);
    assert_slice(sig_buf_slice(&b), "4000000;chunk-signature=" DOC_SIG1 "\r\n");
    /* ...and one byte less refuses it, leaving the buffer unchanged. */
    sig_buf_init(&b, mem, 7 + 17 + 64 + 2 - 1);
    assert_int_equal(sig_chunk_header(&b, SIG_CHUNKED_MAX_CHUNK_SIZE, S(sig)), SIG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    sig_buf_init(&b, mem, 4);
    assert_int_equal(sig_chunk_header(&b, 0x400, S("")), SIG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    sig_buf_init(&b, mem, 5);
    assert_int_equal(sig_chunk_header(&b, 0x400, S("")), SIG_OK);
    assert_slice(sig_buf_slice(&b), "400\r\n");

    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_chunk_header(&b, SIG_CHUNKED_MAX_CHUNK_SIZE + 1ull, S("")),
                     SIG_ERR_TOO_LARGE);
    assert_int_equal(sig_chunk_header(&b, UINT64_MAX, S(sig)), SIG_ERR_TOO_LARGE);
    /* Signatures: exactly 64 lowercase hex digits. */
    assert_int_equal(sig_chunk_header(&b, 1, (struct sig_slice){(const uint8_t *)sig, 63}),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunk_header(&b, 1, S(DOC_SIG1 "0")), SIG_ERR_INVALID_ARG);
    assert_int_equal(
        sig_chunk_header(&b, 1,
                         S("AD80C730A21E5B8D04586A2213DD63B9A0E99E0E2307B0ADE35A65485A288648")),
        SIG_ERR_INVALID_ARG);
    assert_int_equal(
        sig_chunk_header(&b, 1,
                         S("g d80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a28864")),
        SIG_ERR_INVALID_ARG);
    assert_int_equal(b.len, 0);
}

static void test_trailer_rules(void **state)
{
    (void)state;
    uint8_t mem[4096];
    struct sig_buf b;
    const struct sig_slice nosig = S("");
    char name65[66], value257[258];
    memset(name65, 'a', 65);
    name65[65] = '\0';
    memset(value257, 'v', 257);
    value257[257] = '\0';

    struct {
        struct sig_header tr[2];
        size_t n;
        enum sig_err want;
    } cases[] = {
        {{{S("X-Amz-Checksum-Crc32"), S("AAAAAA==")}}, 1, SIG_ERR_BAD_HEADER_NAME},
        {{{S(""), S("v")}}, 1, SIG_ERR_BAD_HEADER_NAME},
        {{{S(name65), S("v")}}, 1, SIG_ERR_BAD_HEADER_NAME},
        {{{S("x a"), S("v")}}, 1, SIG_ERR_BAD_HEADER_NAME},
        {{{S("x:a"), S("v")}}, 1, SIG_ERR_BAD_HEADER_NAME},
        {{{S("x-amz-trailer-signature"), S(DOC_SIG1)}}, 1, SIG_ERR_BAD_HEADER_NAME},
        {{{S("x-a"), S("has space")}}, 1, SIG_ERR_BAD_HEADER_VALUE},
        {{{S("x-a"), S("crlf\r\nx-b:1")}}, 1, SIG_ERR_BAD_HEADER_VALUE},
        {{{S("x-a"), S("tab\t")}}, 1, SIG_ERR_BAD_HEADER_VALUE},
        {{{S("x-a"), S("\x80")}}, 1, SIG_ERR_BAD_HEADER_VALUE},
        {{{S("x-a"), S(value257)}}, 1, SIG_ERR_TOO_LARGE},
        {{{S("x-b"), S("1")}, {S("x-a"), S("2")}}, 2, SIG_ERR_INVALID_ARG},
        {{{S("x-a"), S("1")}, {S("x-a"), S("2")}}, 2, SIG_ERR_INVALID_ARG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sig_buf_init(&b, mem, sizeof(mem));
        assert_int_equal(
            sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, cases[i].tr, cases[i].n, nosig),
            cases[i].want);
        assert_int_equal(b.len, 0);
    }

    /* Boundaries accepted: a 64-byte name, a 256-byte value, an empty value, 8 trailers. */
    name65[64] = '\0';
    value257[256] = '\0';
    const struct sig_header edge[2] = {{S("x-e"), S("")}, {S(name65), S(value257)}};
    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, &edge[1], 1, nosig),
                     SIG_OK);
    assert_int_equal(b.len, 64 + 1 + 256 + 2 + 2);
    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, edge, 1, nosig),
                     SIG_OK);
    assert_slice(sig_buf_slice(&b), "x-e:\r\n\r\n");

    struct sig_header eight[SIG_CHUNKED_MAX_TRAILERS + 1];
    char names[SIG_CHUNKED_MAX_TRAILERS + 1][4];
    for (size_t i = 0; i < SIG_CHUNKED_MAX_TRAILERS + 1; i++) {
        names[i][0] = 'x';
        names[i][1] = '-';
        names[i][2] = (char)('a' + i);
        names[i][3] = '\0';
        eight[i] = (struct sig_header){S(names[i]), S("1")};
    }
    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, eight,
                                          SIG_CHUNKED_MAX_TRAILERS, nosig),
                     SIG_OK);
    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, eight,
                                          SIG_CHUNKED_MAX_TRAILERS + 1, nosig),
                     SIG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);

    /* Mode and signature rules. */
    const struct sig_header one = {S("x-a"), S("1")};
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_SIGNED, &one, 1, nosig),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_SIGNED, NULL, 0, S(DOC_SIG1)),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_SIGNED_TRAILER, &one, 1, nosig),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, &one, 1, S(DOC_SIG1)),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_trailers(&b, (enum sig_chunked_mode)7, NULL, 0, nosig),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_UNSIGNED_TRAILER, NULL, 1, nosig),
                     SIG_ERR_INVALID_ARG);
    assert_int_equal(b.len, 0);
    /* Output one byte too small: refused, unchanged. */
    sig_buf_init(&b, mem, 3 + 1 + 1 + 2 + 24 + 64 + 2 + 2 - 1);
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_SIGNED_TRAILER, &one, 1, S(DOC_SIG1)),
                     SIG_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    b.cap++;
    assert_int_equal(sig_chunked_trailers(&b, SIG_CHUNKED_SIGNED_TRAILER, &one, 1, S(DOC_SIG1)),
                     SIG_OK);
    assert_int_equal(b.len, b.cap);
}

/* sig_chunk_sign_iov over any segmentation equals sig_chunk_sign over the digest. */
static void test_iov_equals_digest(void **state)
{
    (void)state;
    struct sig_chunk_signer a, b;
    char sa[SIG_SHA256_HEX_LEN + 1], sb[SIG_SHA256_HEX_LEN + 1];
    uint8_t d[SIG_SHA256_LEN];

    sign_doc_seed(SIG_CHUNKED_SIGNED);
    assert_int_equal(sig_chunk_signer_init(&a, SIG_CHUNKED_SIGNED, &seed, S(DOC_SECRET), &cache),
                     SIG_OK);
    assert_int_equal(sig_chunk_signer_init(&b, SIG_CHUNKED_SIGNED, &seed, S(DOC_SECRET), &cache),
                     SIG_OK);
    for (size_t n = 8192; n <= 8192 + 40; n += 8) {
        sig_sha256(data, n, d);
        assert_int_equal(sig_chunk_sign(&a, n, d, sa), SIG_OK);
        const struct sig_slice segs[4] = {
            {data, 0}, {data, n / 3}, {data + n / 3, 0}, {data + n / 3, n - n / 3}};
        assert_int_equal(sig_chunk_sign_iov(&b, segs, 4, sb), SIG_OK);
        assert_string_equal(sa, sb);
    }
    sig_chunk_signer_cleanup(&a);
    sig_chunk_signer_cleanup(&b);
}

static void test_chain_order_rules(void **state)
{
    (void)state;
    struct sig_chunk_signer cs;
    char sig[SIG_SHA256_HEX_LEN + 1] = "unchanged";
    uint8_t d_empty[SIG_SHA256_LEN], d_small[SIG_SHA256_LEN], d_full[SIG_SHA256_LEN];
    const struct sig_header tr = {S("x-amz-checksum-crc32c"), S("sOO8/Q==")};
    sig_sha256(NULL, 0, d_empty);
    sig_sha256(data, 100, d_small);
    sig_sha256(data, 8192, d_full);

    sign_doc_seed(SIG_CHUNKED_SIGNED_TRAILER);
    assert_int_equal(
        sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED_TRAILER, &seed, S(DOC_SECRET), &cache),
        SIG_OK);
    /* Trailer before the final chunk. */
    assert_int_equal(sig_chunk_sign_trailer(&cs, &tr, 1, sig), SIG_ERR_BAD_CHUNK);
    /* Oversized chunk; zero length with a non-empty digest. */
    assert_int_equal(sig_chunk_sign(&cs, SIG_CHUNKED_MAX_CHUNK_SIZE + 1ull, d_full, sig),
                     SIG_ERR_TOO_LARGE);
    assert_int_equal(sig_chunk_sign(&cs, 0, d_small, sig), SIG_ERR_INVALID_ARG);
    assert_string_equal(sig, "unchanged");
    /* Failed calls left the chain alone: the first chunk still signs as the document says. */
    uint8_t d1[SIG_SHA256_LEN];
    sig_sha256(data, DOC_CHUNK, d1);
    assert_int_equal(sig_chunk_sign(&cs, DOC_CHUNK, d1, sig), SIG_OK);
    assert_string_equal(sig, TRL_SIG1);
    /* A short chunk may only be the last data chunk. */
    assert_int_equal(sig_chunk_sign(&cs, 100, d_small, sig), SIG_OK);
    assert_int_equal(sig_chunk_sign(&cs, 8192, d_full, sig), SIG_ERR_BAD_CHUNK);
    assert_int_equal(sig_chunk_sign(&cs, 0, d_empty, sig), SIG_OK);
    /* Nothing after the final chunk but the trailer, once. */
    assert_int_equal(sig_chunk_sign(&cs, 0, d_empty, sig), SIG_ERR_BAD_CHUNK);
    assert_int_equal(sig_chunk_sign(&cs, 100, d_small, sig), SIG_ERR_BAD_CHUNK);
    const struct sig_header bad = {S("x-a"), S("a b")};
    assert_int_equal(sig_chunk_sign_trailer(&cs, &bad, 1, sig), SIG_ERR_BAD_HEADER_VALUE);
    assert_int_equal(sig_chunk_sign_trailer(&cs, &tr, 1, sig), SIG_OK);
    assert_int_equal(sig_chunk_sign_trailer(&cs, &tr, 1, sig), SIG_ERR_BAD_CHUNK);
    sig_chunk_signer_cleanup(&cs);

    /* No trailer signature in SIG_CHUNKED_SIGNED. */
    sign_doc_seed(SIG_CHUNKED_SIGNED);
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &seed, S(DOC_SECRET), &cache),
                     SIG_OK);
    assert_int_equal(sig_chunk_sign(&cs, 0, d_empty, sig), SIG_OK);
    assert_int_equal(sig_chunk_sign_trailer(&cs, &tr, 1, sig), SIG_ERR_INVALID_ARG);
    sig_chunk_signer_cleanup(&cs);

    /* A cleaned-up (or never initialised) signer refuses to sign. */
    assert_int_equal(sig_chunk_sign(&cs, 0, d_empty, sig), SIG_ERR_INVALID_ARG);
    struct sig_chunk_signer zero;
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(sig_chunk_sign(&zero, 0, d_empty, sig), SIG_ERR_INVALID_ARG);
    zero.mode = SIG_CHUNKED_SIGNED_TRAILER;
    assert_int_equal(sig_chunk_sign_trailer(&zero, &tr, 1, sig), SIG_ERR_INVALID_ARG);
    /* iov: too much data in total, NULL segments. */
    sign_doc_seed(SIG_CHUNKED_SIGNED);
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &seed, S(DOC_SECRET), &cache),
                     SIG_OK);
    const struct sig_slice huge[2] = {{data, SIG_CHUNKED_MAX_CHUNK_SIZE}, {data, 1}};
    assert_int_equal(sig_chunk_sign_iov(&cs, huge, 2, sig), SIG_ERR_TOO_LARGE);
    const struct sig_slice wrap[2] = {{data, 1}, {data, SIZE_MAX}};
    assert_int_equal(sig_chunk_sign_iov(&cs, wrap, 2, sig), SIG_ERR_TOO_LARGE);
    assert_int_equal(sig_chunk_sign_iov(&cs, NULL, 1, sig), SIG_ERR_INVALID_ARG);
    sig_chunk_signer_cleanup(&cs);
}

/* Cleanup wipes the key and is idempotent. */
static void test_cleanup_wipes(void **state)
{
    (void)state;
    struct sig_chunk_signer cs;
    static const uint8_t zeros[sizeof(struct sig_chunk_signer)];

    sign_doc_seed(SIG_CHUNKED_SIGNED);
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &seed, S(DOC_SECRET), NULL),
                     SIG_OK);
    assert_memory_not_equal(&cs.key, zeros, sizeof(cs.key));
    sig_chunk_signer_cleanup(&cs);
    assert_memory_equal(&cs, zeros, sizeof(cs));
    sig_chunk_signer_cleanup(&cs);
    sig_chunk_signer_cleanup(NULL);
}

/* Seeds that are not the mode's v4 header signature are refused, and leave no key. */
static void test_init_rejects_bad_seeds(void **state)
{
    (void)state;
    struct sig_chunk_signer cs;
    struct sig_result r;
    static const uint8_t zeros[sizeof(struct sig_chunk_signer)];
    uint8_t copy[1024];

    sign_doc_seed(SIG_CHUNKED_SIGNED);
    /* The wrong mode for this seed's payload hash, and the unsigned mode. */
    assert_int_equal(
        sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED_TRAILER, &seed, S(DOC_SECRET), &cache),
        SIG_ERR_INVALID_ARG);
    assert_memory_equal(&cs, zeros, sizeof(cs));
    assert_int_equal(
        sig_chunk_signer_init(&cs, SIG_CHUNKED_UNSIGNED_TRAILER, &seed, S(DOC_SECRET), &cache),
        SIG_ERR_INVALID_ARG);
    assert_int_equal(
        sig_chunk_signer_init(&cs, (enum sig_chunked_mode)5, &seed, S(DOC_SECRET), &cache),
        SIG_ERR_INVALID_ARG);
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, NULL, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    /* Secret refused by sig_signing_key. */
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &seed, S(""), &cache),
                     SIG_ERR_BAD_CREDENTIALS);
    assert_memory_equal(&cs, zeros, sizeof(cs));

    /* Signature: uppercase, short. */
    r = seed;
    r.signature = S("4F232C4386841EF735655705268965C44A0E4690BAA4ADEA153F7DB9FA80A0A9");
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    r.signature.len = 63;
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    /* Date: malformed, or another day than the scope's. */
    r = seed;
    r.amz_date[8] = 'X';
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    r = seed;
    r.amz_date[7] = '5';
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    /* Scope: wrong terminator, extra part, empty part, missing part; each with a string to
     * sign that agrees, so the scope itself is what is refused. */
    const char *scopes[] = {"20130524/us-east-1/s3/aws4_requesT",
                            "20130524/us/east-1/s3/aws4_request", "20130524//s3/aws4_request",
                            "20130524/us-east-1//aws4_request", "20130524/us-east-1/aws4_request"};
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        struct sig_buf sb;
        sig_buf_init(&sb, copy, sizeof(copy));
        assert_int_equal(sig_buf_append_slice(&sb, S("AWS4-HMAC-SHA256\n20130524T000000Z\n")),
                         SIG_OK);
        assert_int_equal(sig_buf_append_slice(&sb, S(scopes[i])), SIG_OK);
        assert_int_equal(sig_buf_append_slice(&sb, S("\ncee3fed04b70f867d036f722359b0b1f2f0e5dc0"
                                                     "efadbc082b76c4c60e316455")),
                         SIG_OK);
        r = seed;
        r.credential_scope = S(scopes[i]);
        r.string_to_sign = sig_buf_slice(&sb);
        assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                         SIG_ERR_INVALID_ARG);
    }
    char long_scope[SIG_CHUNKED_MAX_SCOPE + 2];
    memset(long_scope, 'r', sizeof(long_scope) - 1);
    long_scope[sizeof(long_scope) - 1] = '\0';
    r = seed;
    r.credential_scope = S(long_scope);
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_BAD_SCOPE);
    /* String to sign: a v4a seed, or one whose scope differs from the result's. */
    r = seed;
    r.string_to_sign = S("AWS4-ECDSA-P256-SHA256\n20130524T000000Z\n20130524/s3/aws4_request\n"
                         "cee3fed04b70f867d036f722359b0b1f2f0e5dc0efadbc082b76c4c60e316455");
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    r = seed;
    r.string_to_sign = S("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-west-2/s3/aws4_request\n"
                         "cee3fed04b70f867d036f722359b0b1f2f0e5dc0efadbc082b76c4c60e316455");
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    r.string_to_sign = S("");
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    /* Canonical request ending in another payload hash (a seed signed as UNSIGNED-PAYLOAD). */
    assert_true(seed.canonical_request.len < sizeof(copy));
    struct sig_buf cb;
    sig_buf_init(&cb, copy, sizeof(copy));
    struct sig_slice cr = seed.canonical_request;
    cr.len -= sizeof(SIG_STREAMING_PAYLOAD) - 1;
    assert_int_equal(sig_buf_append_slice(&cb, cr), SIG_OK);
    assert_int_equal(sig_buf_append_slice(&cb, S(SIG_UNSIGNED_PAYLOAD)), SIG_OK);
    r = seed;
    r.canonical_request = sig_buf_slice(&cb);
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &r, S(DOC_SECRET), &cache),
                     SIG_ERR_INVALID_ARG);
    assert_memory_equal(&cs, zeros, sizeof(cs));
    /* The untouched seed still works. */
    assert_int_equal(sig_chunk_signer_init(&cs, SIG_CHUNKED_SIGNED, &seed, S(DOC_SECRET), &cache),
                     SIG_OK);
    sig_chunk_signer_cleanup(&cs);
}

static void test_content_sha256_literals(void **state)
{
    (void)state;
    assert_slice(sig_chunked_content_sha256(SIG_CHUNKED_SIGNED),
                 "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    assert_slice(sig_chunked_content_sha256(SIG_CHUNKED_SIGNED_TRAILER),
                 "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER");
    assert_slice(sig_chunked_content_sha256(SIG_CHUNKED_UNSIGNED_TRAILER),
                 "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
    assert_int_equal(sig_chunked_content_sha256((enum sig_chunked_mode)3).len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_doc_chunked_example, before, after),
        cmocka_unit_test_setup_teardown(test_doc_trailer_example, before, after),
        cmocka_unit_test_setup_teardown(test_two_trailers_python, before, after),
        cmocka_unit_test_setup_teardown(test_unsigned_trailer_body, before, after),
        cmocka_unit_test_setup_teardown(test_unsigned_trailer_empty_body, before, after),
        cmocka_unit_test_setup_teardown(test_encoded_length_matches_framing, before, after),
        cmocka_unit_test_setup_teardown(test_encoded_length_limits, before, after),
        cmocka_unit_test_setup_teardown(test_chunk_header_limits, before, after),
        cmocka_unit_test_setup_teardown(test_trailer_rules, before, after),
        cmocka_unit_test_setup_teardown(test_iov_equals_digest, before, after),
        cmocka_unit_test_setup_teardown(test_chain_order_rules, before, after),
        cmocka_unit_test_setup_teardown(test_cleanup_wipes, before, after),
        cmocka_unit_test_setup_teardown(test_init_rejects_bad_seeds, before, after),
        cmocka_unit_test_setup_teardown(test_content_sha256_literals, before, after),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
