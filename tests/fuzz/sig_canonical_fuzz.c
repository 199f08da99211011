/*
 * sig_canonical_fuzz: libFuzzer target for the canonicaliser behind sig_sign.
 *
 * Input layout (so a corpus file is readable, like the suite's request.txt):
 *   byte 0     flags: bit 0 session token, bit 1 omit_session_token, bit 2 add_content_sha256,
 *              bit 3 also sign with SigV4a, bit 4 unsigned payload
 *   then lines split at LF: method, path, query, then one header per line as "name:value"
 *   (no ':' means an empty value); a line starting with SP or HT continues the previous
 *   header's value, line break included (obs-fold, which the signer must fold).
 * Every byte, NUL and CR included, reaches the signer as is.
 *
 * Each input is signed in every uri mode and both forms. Beyond "no crash, no sanitizer
 * report", each success must satisfy properties that hold for any request, and abort()
 * otherwise:
 *   - signing twice gives identical results (the second through the key cache);
 *   - the string to sign ends in the SHA-256 of the canonical request;
 *   - the signature is 64 lowercase hex digits, the canonical URI and query use only
 *     unreserved bytes, '/', '=', '&' and %XX with uppercase hex, and the signed header
 *     names are lowercase, sorted and distinct;
 *   - S3 and query canonicalization are idempotent: signing the canonical URI and query
 *     again yields the same canonical URI (S3 mode) and query (all modes).
 * SigV4a signatures are randomized, but only inside OpenSSL, which is not instrumented, so
 * the coverage the fuzzer sees stays deterministic.
 */
#include <stdint.h>
#include <stdlib.h>

#include "sig_sha256.h"
#include "sig_sign.h"
#include "sig_types.h"
#include "sig_v4a.h"

#define MAX_FUZZ_HEADERS (SIG_MAX_HEADERS + 16)
#define WORKSPACE_BYTES (64 * 1024)

enum {
    FLAG_TOKEN = 1 << 0,
    FLAG_OMIT_TOKEN = 1 << 1,
    FLAG_CONTENT_SHA256 = 1 << 2,
    FLAG_V4A = 1 << 3,
    FLAG_UNSIGNED = 1 << 4,
};

static struct sig_key_cache g_cache;
static struct sig_v4a_key *g_v4a_key;
static uint8_t g_mem[2][WORKSPACE_BYTES];
static struct sig_workspace g_ws[2];
static uint8_t g_copy[WORKSPACE_BYTES];

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static const struct sig_credentials g_creds = {
    .access_key_id = SIG_SLICE_LIT("AKIDEXAMPLE"),
    .secret_access_key = SIG_SLICE_LIT("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sig_key_cache_init(&g_cache);
    if (sig_v4a_key_derive(g_creds.access_key_id, g_creds.secret_access_key, &g_v4a_key) != SIG_OK)
        abort();
    return 0;
}

static bool is_upper_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static bool is_unreserved(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Only unreserved bytes, the given extras and well-formed uppercase %XX escapes. */
static bool canonical_encoded(struct sig_slice s, const char *extra)
{
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '%') {
            if (s.len - i < 3 || !is_upper_hex(s.ptr[i + 1]) || !is_upper_hex(s.ptr[i + 2]))
                return false;
            i += 2;
            continue;
        }
        bool ok = is_unreserved(c);
        for (const char *e = extra; !ok && *e != '\0'; e++)
            ok = c == (uint8_t)*e;
        if (!ok)
            return false;
    }
    return true;
}

/* Line n (0-based) of text, without its LF. */
static struct sig_slice line_at(struct sig_slice text, unsigned n)
{
    size_t start = 0;
    for (size_t i = 0; i < text.len; i++) {
        if (text.ptr[i] != '\n')
            continue;
        if (n == 0)
            return (struct sig_slice){text.ptr + start, i - start};
        n--;
        start = i + 1;
    }
    return n == 0 ? (struct sig_slice){text.ptr + start, text.len - start}
                  : (struct sig_slice){NULL, 0};
}

static void check_result(const struct sig_result *r, enum sig_alg alg)
{
    /* The string to sign's last line is the hex SHA-256 of the canonical request. */
    char hex[SIG_SHA256_HEX_LEN + 1];
    struct sig_sha256 h;
    sig_sha256_init(&h);
    sig_sha256_update(&h, r->canonical_request.ptr, r->canonical_request.len);
    sig_sha256_final_hex(&h, hex);
    CHECK(r->string_to_sign.len > SIG_SHA256_HEX_LEN);
    struct sig_slice tail = {r->string_to_sign.ptr + r->string_to_sign.len - SIG_SHA256_HEX_LEN,
                             SIG_SHA256_HEX_LEN};
    CHECK(sig_slice_eq(tail, (struct sig_slice){(const uint8_t *)hex, SIG_SHA256_HEX_LEN}));

    if (alg == SIG_ALG_V4)
        CHECK(r->signature.len == SIG_SHA256_HEX_LEN);
    else
        CHECK(r->signature.len > 0 && r->signature.len <= SIG_MAX_SIGNATURE_HEX);
    for (size_t i = 0; i < r->signature.len; i++) {
        uint8_t c = r->signature.ptr[i];
        CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }

    CHECK(canonical_encoded(line_at(r->canonical_request, 1), "/"));
    CHECK(canonical_encoded(line_at(r->canonical_request, 2), "=&"));

    /* Signed header names: non-empty, lowercase, strictly increasing. (The list itself is
     * empty for a presigned request without any signable header, not even Host.) */
    struct sig_slice sh = r->signed_headers, prev = {NULL, 0};
    size_t start = 0;
    for (size_t i = 0; sh.len > 0 && i <= sh.len; i++) {
        if (i < sh.len && sh.ptr[i] != ';') {
            CHECK(!(sh.ptr[i] >= 'A' && sh.ptr[i] <= 'Z'));
            continue;
        }
        struct sig_slice name = {sh.ptr + start, i - start};
        CHECK(name.len > 0);
        if (prev.ptr != NULL)
            CHECK(sig_slice_cmp(prev, name) < 0);
        prev = name;
        start = i + 1;
    }
}

/* Copies a slice into g_copy at *off so it survives the workspace's reuse. */
static struct sig_slice keep(struct sig_slice s, size_t *off)
{
    CHECK(s.len <= sizeof(g_copy) - *off);
    struct sig_buf b;
    sig_buf_init(&b, g_copy + *off, sizeof(g_copy) - *off);
    CHECK(sig_buf_append_slice(&b, s) == SIG_OK);
    *off += s.len;
    return (struct sig_slice){g_copy + *off - s.len, s.len};
}

static void sign_all_ways(const struct sig_request *req, uint8_t flags)
{
    struct sig_credentials creds = g_creds;
    if (flags & FLAG_TOKEN)
        creds.session_token = SIG_SLICE_LIT("AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM");
    for (int alg = SIG_ALG_V4; alg <= SIG_ALG_V4A; alg++) {
        if (alg == SIG_ALG_V4A && !(flags & FLAG_V4A))
            continue;
        for (int form = SIG_FORM_HEADER; form <= SIG_FORM_QUERY; form++) {
            for (int mode = SIG_URI_NORMALIZE; mode <= SIG_URI_S3; mode++) {
                struct sig_params p = {
                    .alg = (enum sig_alg)alg,
                    .form = (enum sig_form)form,
                    .uri_mode = (enum sig_uri_mode)mode,
                    .region = alg == SIG_ALG_V4 ? SIG_SLICE_LIT("us-east-1") : SIG_SLICE_LIT("*"),
                    .service = SIG_SLICE_LIT("s3"),
                    .unix_time = 1440938160,
                    .payload_hash = (flags & FLAG_UNSIGNED) ? SIG_SLICE_LIT(SIG_UNSIGNED_PAYLOAD)
                                                            : SIG_SLICE_LIT(""),
                    .add_content_sha256 = (flags & FLAG_CONTENT_SHA256) != 0,
                    .omit_session_token = (flags & FLAG_OMIT_TOKEN) != 0,
                    .expires_s = 3600,
                    .v4a_key = alg == SIG_ALG_V4A ? g_v4a_key : NULL,
                };
                struct sig_result r1, r2;
                sig_workspace_init(&g_ws[0], g_mem[0], sizeof(g_mem[0]));
                sig_workspace_init(&g_ws[1], g_mem[1], sizeof(g_mem[1]));
                enum sig_err e1 = sig_sign(req, &p, &creds, &g_cache, &g_ws[0], &r1);
                enum sig_err e2 = sig_sign(req, &p, &creds, &g_cache, &g_ws[1], &r2);
                CHECK(e1 == e2);
                if (e1 != SIG_OK) {
                    /* Every failure is a specific signer code. */
                    CHECK(e1 >= SIG_ERR_INVALID_ARG && e1 <= SIG_ERR_LAST);
                    continue;
                }
                CHECK(sig_slice_eq(r1.canonical_request, r2.canonical_request));
                CHECK(sig_slice_eq(r1.string_to_sign, r2.string_to_sign));
                /* A v4a signature, and so a presigned v4a query, is randomized. */
                if (alg == SIG_ALG_V4) {
                    CHECK(sig_slice_eq(r1.signature, r2.signature));
                    CHECK(sig_slice_eq(r1.query, r2.query));
                }
                check_result(&r1, (enum sig_alg)alg);

                if (form != SIG_FORM_HEADER)
                    continue;
                /* Idempotence: canonical forms canonicalize to themselves. */
                size_t off = 0;
                struct sig_slice uri = keep(line_at(r1.canonical_request, 1), &off);
                struct sig_slice query = keep(line_at(r1.canonical_request, 2), &off);
                struct sig_request again = *req;
                if (mode == SIG_URI_S3)
                    again.path = uri;
                again.query = query;
                sig_workspace_init(&g_ws[1], g_mem[1], sizeof(g_mem[1]));
                enum sig_err e3 = sig_sign(&again, &p, &creds, &g_cache, &g_ws[1], &r2);
                /* The canonical forms are longer than a raw input can be, so they alone may
                 * no longer fit the workspace. */
                if (e3 == SIG_ERR_TOO_LARGE)
                    continue;
                CHECK(e3 == SIG_OK);
                if (mode == SIG_URI_S3)
                    CHECK(sig_slice_eq(uri, line_at(r2.canonical_request, 1)));
                CHECK(sig_slice_eq(query, line_at(r2.canonical_request, 2)));
            }
        }
    }
    sig_workspace_cleanup(&g_ws[0]);
    sig_workspace_cleanup(&g_ws[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sig_header headers[MAX_FUZZ_HEADERS];
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    struct sig_slice in = {data + 1, size - 1};
    struct sig_slice lines[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    size_t header_count = 0;
    size_t pos = 0;
    unsigned line_no = 0;

    while (pos <= in.len) {
        size_t end = pos;
        while (end < in.len && in.ptr[end] != '\n')
            end++;
        struct sig_slice line = {in.ptr + pos, end - pos};
        if (line_no < 3) {
            lines[line_no++] = line;
        } else if (line.len > 0 && (line.ptr[0] == ' ' || line.ptr[0] == '\t') &&
                   header_count > 0) {
            struct sig_header *h = &headers[header_count - 1];
            const uint8_t *vstart = h->value.ptr != NULL ? h->value.ptr : line.ptr;
            h->value = (struct sig_slice){vstart, (size_t)(line.ptr + line.len - vstart)};
        } else if (header_count < MAX_FUZZ_HEADERS) {
            size_t colon = 0;
            while (colon < line.len && line.ptr[colon] != ':')
                colon++;
            headers[header_count].name = (struct sig_slice){line.ptr, colon};
            headers[header_count].value =
                colon < line.len ? (struct sig_slice){line.ptr + colon + 1, line.len - colon - 1}
                                 : (struct sig_slice){NULL, 0};
            header_count++;
        }
        if (end == in.len)
            break;
        pos = end + 1;
    }

    struct sig_request req = {
        .method = lines[0],
        .path = lines[1],
        .query = lines[2],
        .headers = headers,
        .header_count = header_count,
    };
    sign_all_ways(&req, flags);
    return 0;
}
