/*
 * sig_vectors_test.c: every case of AWS's official SigV4/SigV4a test suite (as published in
 * awslabs/aws-c-auth), read in place from SIGV4_TEST_SUITE_DIR.
 *
 * The case directories are enumerated at run time and their number asserted, so a case that
 * fails to load, or a suite that shrank, fails the test instead of being skipped. Each case is
 * one cmocka test per signing form ("v4/get-vanilla/header", ...).
 *
 * Per case: context.json is parsed with libyaml (JSON is YAML 1.2, and libyaml reads it), and
 * request.txt by hand (LF line ends; an indented line continues the previous header value and
 * is passed to the signer with its line break, which the signer must fold; the body follows
 * the blank line).
 *
 * v4: canonical request, string to sign and signature must equal the expected files exactly,
 * and so must the signed request rebuilt from the signer's outputs.
 * v4a: ECDSA signatures are randomized, so the canonical request and string to sign are
 * compared exactly, the public key derived from the credentials must equal public-key.json,
 * our signature and the vector's signatures must verify with that key, and the signed request
 * must equal the expected one outside the signature's hex digits.
 *
 * The published v4a suite ships two cases (get-vanilla-query-order-key/-value) with only
 * context.json and request.txt. They are still signed and checked: their expected canonical
 * request is get-vanilla's with the query line the SigV4 rule gives (sort by name, then by
 * value, by byte; "Create a canonical request" in the AWS SigV4 documentation). See
 * derived_v4a_cases below.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yaml.h>

#include "sig_sha256.h"
#include "sig_sign.h"
#include "sig_types.h"
#include "sig_v4a.h"

#ifndef SIGV4_TEST_SUITE_DIR
#error "SIGV4_TEST_SUITE_DIR must name the official test suite directory"
#endif

/* The published suite: 38 v4 cases and 40 v4a cases (2 of them without expected files). */
#define V4_CASE_COUNT 38
#define V4A_CASE_COUNT 40
#define MAX_CASES 64
#define MAX_REQ_HEADERS 64
#define FILE_MAX_BYTES (256 * 1024)
#define WORKSPACE_BYTES (64 * 1024)
#define TEXT_BYTES (64 * 1024)

/* Cases shipped without expected results, and the canonical query the SigV4 rules give them. */
static const struct {
    const char *name;
    const char *canonical_query;
} derived_v4a_cases[] = {
    {"get-vanilla-query-order-key", "Param1=Value1&Param1=value2"},
    {"get-vanilla-query-order-value", "Param1=value1&Param1=value2"},
};
/* The case whose expectations those two are derived from (same context, no query). */
#define DERIVED_TEMPLATE_CASE "get-vanilla"

/* ---- small utilities ---------------------------------------------------------------- */

static struct sig_slice cstr(const char *s)
{
    return sig_slice_from_cstr(s);
}

/*
 * What the running test allocated. A failed assertion leaves the test function at once, so
 * nothing is freed along the way: the test's teardown releases it all, pass or fail (and
 * LeakSanitizer stays quiet either way).
 */
#define MAX_OWNED 64
static struct {
    void *mem[MAX_OWNED];
    size_t mem_count;
    yaml_document_t *docs[MAX_OWNED];
    size_t doc_count;
    struct sig_v4a_key *key;
} g_owned;

static void *owned_alloc(size_t n)
{
    assert_true(g_owned.mem_count < MAX_OWNED);
    void *p = calloc(1, n);
    assert_non_null(p);
    g_owned.mem[g_owned.mem_count++] = p;
    return p;
}

/* A zeroed document to load into; the teardown deletes it once it is loaded. */
static yaml_document_t *owned_doc(void)
{
    return owned_alloc(sizeof(yaml_document_t));
}

static void own_loaded_doc(yaml_document_t *doc)
{
    assert_true(g_owned.doc_count < MAX_OWNED);
    g_owned.docs[g_owned.doc_count++] = doc;
}

static int release_owned(void **state)
{
    (void)state;
    for (size_t i = 0; i < g_owned.doc_count; i++)
        yaml_document_delete(g_owned.docs[i]);
    for (size_t i = 0; i < g_owned.mem_count; i++)
        free(g_owned.mem[i]);
    sig_v4a_key_free(g_owned.key);
    g_owned.key = NULL;
    g_owned.doc_count = 0;
    g_owned.mem_count = 0;
    return 0;
}

/* A file's bytes, owned by the running test. */
struct file_data {
    uint8_t *ptr;
    size_t len;
};

/* Joins dir components into `out` (NUL-terminated); fails the test if it does not fit. */
static const char *path_join(char *out, size_t cap, const char *a, const char *b, const char *c)
{
    struct sig_buf buf;
    sig_buf_init(&buf, out, cap - 1);
    assert_int_equal(sig_buf_append_slice(&buf, cstr(a)), SIG_OK);
    if (b != NULL) {
        assert_int_equal(sig_buf_append_byte(&buf, '/'), SIG_OK);
        assert_int_equal(sig_buf_append_slice(&buf, cstr(b)), SIG_OK);
    }
    if (c != NULL) {
        assert_int_equal(sig_buf_append_byte(&buf, '/'), SIG_OK);
        assert_int_equal(sig_buf_append_slice(&buf, cstr(c)), SIG_OK);
    }
    out[buf.len] = '\0';
    return out;
}

/* Reads a whole file; returns false if it does not exist. Other errors fail the test. */
static bool read_file(const char *path, struct file_data *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    out->ptr = owned_alloc(FILE_MAX_BYTES);
    out->len = fread(out->ptr, 1, FILE_MAX_BYTES, f);
    bool read_ok = ferror(f) == 0;
    fclose(f);
    assert_true(read_ok);
    /* Refuse to silently truncate a file larger than the buffer. */
    assert_true(out->len < FILE_MAX_BYTES);
    return true;
}

static void must_read_file(const char *dir, const char *name, struct file_data *out)
{
    char path[1024];
    path_join(path, sizeof(path), dir, name, NULL);
    if (!read_file(path, out))
        fail_msg("cannot read %s", path);
}

static struct sig_slice file_slice(const struct file_data *f)
{
    return (struct sig_slice){f->ptr, f->len};
}

/* Decodes hex into out (cap bytes); returns the byte count, or -1 on bad or oversize hex. */
static long hex_decode(struct sig_slice hex, uint8_t *out, size_t cap)
{
    if (hex.len % 2 != 0 || hex.len / 2 > cap)
        return -1;
    for (size_t i = 0; i < hex.len / 2; i++) {
        int hi = sig_hex_digit(hex.ptr[2 * i]);
        int lo = sig_hex_digit(hex.ptr[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(hex.len / 2);
}

/* Prints both texts and the first differing offset when they differ; returns equality. */
static bool text_eq(const char *what, struct sig_slice want, struct sig_slice got)
{
    if (sig_slice_eq(want, got))
        return true;
    size_t i = 0;
    while (i < want.len && i < got.len && want.ptr[i] == got.ptr[i])
        i++;
    /* Straight to stderr: cmocka's print_error truncates long messages. */
    fprintf(stderr, "%s differs at byte %zu (want %zu bytes, got %zu)\n--- want\n", what, i,
            want.len, got.len);
    if (want.len > 0)
        fwrite(want.ptr, 1, want.len, stderr);
    fputs("\n--- got\n", stderr);
    if (got.len > 0)
        fwrite(got.ptr, 1, got.len, stderr);
    fputs("\n---\n", stderr);
    return false;
}

static void assert_text_eq(const char *what, struct sig_slice want, struct sig_slice got)
{
    if (!text_eq(what, want, got))
        fail_msg("%s mismatch", what);
}

/* ---- context.json through libyaml --------------------------------------------------- */

struct context {
    yaml_document_t *doc; /* owns every scalar the slices below point into */
    struct sig_slice access_key_id;
    struct sig_slice secret_access_key;
    struct sig_slice token; /* empty: none */
    struct sig_slice region;
    struct sig_slice service;
    struct sig_slice timestamp;
    int64_t unix_time;
    uint32_t expires_s;
    bool normalize;
    bool sign_body;
    bool omit_session_token;
};

static struct sig_slice node_scalar(yaml_node_t *n, const char *what)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE)
        fail_msg("%s: expected a scalar", what);
    return (struct sig_slice){n->data.scalar.value, n->data.scalar.length};
}

/* A JSON string is a quoted scalar: refuse a bare word where a string belongs. */
static struct sig_slice node_string(yaml_node_t *n, const char *what)
{
    struct sig_slice s = node_scalar(n, what);
    if (n->data.scalar.style != YAML_DOUBLE_QUOTED_SCALAR_STYLE)
        fail_msg("%s: expected a JSON string", what);
    return s;
}

static bool node_bool(yaml_node_t *n, const char *what)
{
    struct sig_slice s = node_scalar(n, what);
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && sig_slice_eq(s, SIG_SLICE_LIT("true")))
        return true;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && sig_slice_eq(s, SIG_SLICE_LIT("false")))
        return false;
    fail_msg("%s: expected true or false", what);
    return false;
}

static uint64_t parse_uint(struct sig_slice s, uint64_t max, const char *what)
{
    uint64_t v = 0;
    if (s.len == 0 || s.len > 19)
        fail_msg("%s: expected a number", what);
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            fail_msg("%s: expected a number", what);
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    if (v > max)
        fail_msg("%s: out of range", what);
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned mp = m > 2 ? m - 3 : m + 9; /* months since March */
    const unsigned doy = (153 * mp + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SSZ" (the only form the suite uses) to seconds since the epoch. */
static int64_t parse_timestamp(struct sig_slice s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (s.len != sizeof(shape) - 1)
        fail_msg("timestamp: expected YYYY-MM-DDTHH:MM:SSZ");
    for (size_t i = 0; i < s.len; i++) {
        bool ok = shape[i] == 'd' ? (s.ptr[i] >= '0' && s.ptr[i] <= '9') : s.ptr[i] == shape[i];
        if (!ok)
            fail_msg("timestamp: expected YYYY-MM-DDTHH:MM:SSZ");
    }
    int64_t year = (int64_t)parse_uint((struct sig_slice){s.ptr, 4}, 9999, "year");
    unsigned mon = (unsigned)parse_uint((struct sig_slice){s.ptr + 5, 2}, 12, "month");
    unsigned day = (unsigned)parse_uint((struct sig_slice){s.ptr + 8, 2}, 31, "day");
    int64_t hh = (int64_t)parse_uint((struct sig_slice){s.ptr + 11, 2}, 23, "hour");
    int64_t mm = (int64_t)parse_uint((struct sig_slice){s.ptr + 14, 2}, 59, "minute");
    int64_t ss = (int64_t)parse_uint((struct sig_slice){s.ptr + 17, 2}, 59, "second");
    assert_true(mon >= 1 && day >= 1);
    return days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
}

/* Loads a JSON document whose root is a mapping; the caller deletes doc. */
static yaml_node_t *load_json_mapping(const struct file_data *f, yaml_document_t *doc,
                                      const char *what)
{
    yaml_parser_t parser;
    assert_int_equal(yaml_parser_initialize(&parser), 1);
    yaml_parser_set_input_string(&parser, f->ptr, f->len);
    int loaded = yaml_parser_load(&parser, doc);
    yaml_parser_delete(&parser);
    if (!loaded)
        fail_msg("%s: libyaml cannot load it", what);
    own_loaded_doc(doc);
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE)
        fail_msg("%s: expected a JSON object", what);
    return root;
}

static void parse_credentials(yaml_document_t *doc, yaml_node_t *map, struct context *ctx)
{
    if (map->type != YAML_MAPPING_NODE)
        fail_msg("credentials: expected an object");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        struct sig_slice key = node_scalar(yaml_document_get_node(doc, p->key), "key");
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (sig_slice_eq(key, SIG_SLICE_LIT("access_key_id")))
            ctx->access_key_id = node_string(v, "access_key_id");
        else if (sig_slice_eq(key, SIG_SLICE_LIT("secret_access_key")))
            ctx->secret_access_key = node_string(v, "secret_access_key");
        else if (sig_slice_eq(key, SIG_SLICE_LIT("token")))
            ctx->token = node_string(v, "token");
        else
            fail_msg("credentials: unknown key %.*s", (int)key.len, (const char *)key.ptr);
    }
}

/* Parses context.json. Unknown keys fail: a new suite field must not be silently ignored. */
static void load_context(const char *dir, struct context *ctx)
{
    struct file_data f;
    must_read_file(dir, "context.json", &f);
    *ctx = (struct context){.doc = owned_doc()};
    yaml_node_t *root = load_json_mapping(&f, ctx->doc, "context.json");
    bool seen_time = false, seen_expires = false, seen_norm = false, seen_body = false;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        struct sig_slice key = node_scalar(yaml_document_get_node(ctx->doc, p->key), "key");
        yaml_node_t *v = yaml_document_get_node(ctx->doc, p->value);
        if (sig_slice_eq(key, SIG_SLICE_LIT("credentials"))) {
            parse_credentials(ctx->doc, v, ctx);
        } else if (sig_slice_eq(key, SIG_SLICE_LIT("expiration_in_seconds"))) {
            ctx->expires_s = (uint32_t)parse_uint(node_scalar(v, "expiration_in_seconds"),
                                                  UINT32_MAX, "expiration_in_seconds");
            seen_expires = true;
        } else if (sig_slice_eq(key, SIG_SLICE_LIT("normalize"))) {
            ctx->normalize = node_bool(v, "normalize");
            seen_norm = true;
        } else if (sig_slice_eq(key, SIG_SLICE_LIT("region"))) {
            ctx->region = node_string(v, "region");
        } else if (sig_slice_eq(key, SIG_SLICE_LIT("service"))) {
            ctx->service = node_string(v, "service");
        } else if (sig_slice_eq(key, SIG_SLICE_LIT("sign_body"))) {
            ctx->sign_body = node_bool(v, "sign_body");
            seen_body = true;
        } else if (sig_slice_eq(key, SIG_SLICE_LIT("timestamp"))) {
            ctx->timestamp = node_string(v, "timestamp");
            ctx->unix_time = parse_timestamp(ctx->timestamp);
            seen_time = true;
        } else if (sig_slice_eq(key, SIG_SLICE_LIT("omit_session_token"))) {
            ctx->omit_session_token = node_bool(v, "omit_session_token");
        } else {
            fail_msg("context.json: unknown key %.*s", (int)key.len, (const char *)key.ptr);
        }
    }
    assert_true(ctx->access_key_id.len > 0 && ctx->secret_access_key.len > 0);
    assert_true(ctx->region.len > 0 && ctx->service.len > 0);
    assert_true(seen_time && seen_expires && seen_norm && seen_body);
}

/* public-key.json: {"X": hex, "Y": hex}, big-endian P-256 coordinates. */
static void load_public_key(const char *dir, uint8_t x[SIG_V4A_COORD_LEN],
                            uint8_t y[SIG_V4A_COORD_LEN])
{
    struct file_data f;
    yaml_document_t *doc = owned_doc();
    bool seen_x = false, seen_y = false;
    must_read_file(dir, "public-key.json", &f);
    yaml_node_t *root = load_json_mapping(&f, doc, "public-key.json");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        struct sig_slice key = node_scalar(yaml_document_get_node(doc, p->key), "key");
        struct sig_slice v = node_string(yaml_document_get_node(doc, p->value), "coordinate");
        uint8_t *dst = NULL;
        if (sig_slice_eq(key, SIG_SLICE_LIT("X"))) {
            dst = x;
            seen_x = true;
        } else if (sig_slice_eq(key, SIG_SLICE_LIT("Y"))) {
            dst = y;
            seen_y = true;
        } else {
            fail_msg("public-key.json: unknown key");
        }
        assert_int_equal(hex_decode(v, dst, SIG_V4A_COORD_LEN), SIG_V4A_COORD_LEN);
    }
    assert_true(seen_x && seen_y);
}

/* ---- request.txt -------------------------------------------------------------------- */

struct raw_request {
    struct file_data file; /* every slice below points into it */
    struct sig_slice method;
    struct sig_slice target;  /* as on the request line, with the query */
    struct sig_slice path;    /* target before '?' */
    struct sig_slice query;   /* target after '?' */
    struct sig_slice version; /* "HTTP/1.1" */
    struct sig_header headers[MAX_REQ_HEADERS];
    struct sig_slice header_lines[MAX_REQ_HEADERS]; /* raw bytes, continuation lines included */
    size_t header_count;
    struct sig_slice body;
};

/* Index of the next LF at or after i, or len. */
static size_t line_end(struct sig_slice s, size_t i)
{
    while (i < s.len && s.ptr[i] != '\n')
        i++;
    return i;
}

/*
 * The request line is METHOD SP target SP version; the target may itself contain spaces
 * (get-space-*), so the method ends at the first space and the version starts after the last.
 * Header lines end at LF; a line starting with SP or HT continues the previous value
 * (obsolete line folding, RFC 9112 5.2), kept with its LF. Headers end at a blank line or at
 * the end of the file; the body is everything after the blank line.
 */
static void load_request(const char *dir, struct raw_request *r)
{
    *r = (struct raw_request){0};
    must_read_file(dir, "request.txt", &r->file);
    struct sig_slice s = file_slice(&r->file);

    size_t eol = line_end(s, 0);
    size_t sp1 = 0, sp2 = eol;
    while (sp1 < eol && s.ptr[sp1] != ' ')
        sp1++;
    while (sp2 > sp1 && s.ptr[sp2 - 1] != ' ')
        sp2--;
    assert_true(sp1 > 0 && sp1 < eol && sp2 > sp1 + 1);
    r->method = (struct sig_slice){s.ptr, sp1};
    r->target = (struct sig_slice){s.ptr + sp1 + 1, sp2 - 1 - (sp1 + 1)};
    r->version = (struct sig_slice){s.ptr + sp2, eol - sp2};
    size_t q = 0;
    while (q < r->target.len && r->target.ptr[q] != '?')
        q++;
    r->path = (struct sig_slice){r->target.ptr, q};
    if (q < r->target.len)
        r->query = (struct sig_slice){r->target.ptr + q + 1, r->target.len - q - 1};

    size_t i = eol + 1;
    while (i < s.len) {
        eol = line_end(s, i);
        if (eol == i) { /* blank line: the body follows */
            r->body = (struct sig_slice){s.ptr + eol + 1, s.len - (eol + 1)};
            break;
        }
        if (s.ptr[i] == ' ' || s.ptr[i] == '\t') {
            assert_true(r->header_count > 0);
            struct sig_header *h = &r->headers[r->header_count - 1];
            h->value.len = (size_t)(s.ptr + eol - h->value.ptr);
            struct sig_slice *line = &r->header_lines[r->header_count - 1];
            line->len = (size_t)(s.ptr + eol - line->ptr);
        } else {
            assert_true(r->header_count < MAX_REQ_HEADERS);
            size_t colon = i;
            while (colon < eol && s.ptr[colon] != ':')
                colon++;
            assert_true(colon < eol);
            r->headers[r->header_count] = (struct sig_header){
                .name = {s.ptr + i, colon - i},
                .value = {s.ptr + colon + 1, eol - (colon + 1)},
            };
            r->header_lines[r->header_count] = (struct sig_slice){s.ptr + i, eol - i};
            r->header_count++;
        }
        i = eol + 1;
    }
}

/* ---- signing and the signed request ------------------------------------------------- */

struct signer_env {
    uint8_t mem[WORKSPACE_BYTES];
    struct sig_workspace ws;
    struct sig_key_cache cache;
    char payload_hex[SIG_SHA256_HEX_LEN + 1];
};

static void sign_case(struct signer_env *env, const struct context *ctx,
                      const struct raw_request *r, enum sig_alg alg, enum sig_form form,
                      const struct sig_v4a_key *v4a_key, struct sig_result *res)
{
    struct sig_request req = {
        .method = r->method,
        .path = r->path,
        .query = r->query,
        .headers = r->headers,
        .header_count = r->header_count,
    };
    struct sig_params p = {
        .alg = alg,
        .form = form,
        .uri_mode = ctx->normalize ? SIG_URI_NORMALIZE : SIG_URI_ENCODE_ONLY,
        .region = ctx->region,
        .service = ctx->service,
        .unix_time = ctx->unix_time,
        .omit_session_token = ctx->omit_session_token,
        .expires_s = ctx->expires_s,
        .v4a_key = v4a_key,
    };
    /* sign_body: the suite signs the body's hash and sends it as x-amz-content-sha256
     * (header form); otherwise the payload hash is that of no bytes and no header is added. */
    if (ctx->sign_body) {
        struct sig_sha256 h;
        sig_sha256_init(&h);
        sig_sha256_update(&h, r->body.ptr, r->body.len);
        sig_sha256_final_hex(&h, env->payload_hex);
        p.payload_hash = (struct sig_slice){(const uint8_t *)env->payload_hex, SIG_SHA256_HEX_LEN};
        p.add_content_sha256 = true;
    }
    struct sig_credentials creds = {
        .access_key_id = ctx->access_key_id,
        .secret_access_key = ctx->secret_access_key,
        .session_token = ctx->token,
    };
    sig_workspace_init(&env->ws, env->mem, sizeof(env->mem));
    enum sig_err err = sig_sign(&req, &p, &creds, &env->cache, &env->ws, res);
    if (err != SIG_OK)
        fail_msg("sig_sign failed: %d (%s)", (int)err, sig_err_str(err));
}

static void append(struct sig_buf *b, struct sig_slice s)
{
    assert_int_equal(sig_buf_append_slice(b, s), SIG_OK);
}

/*
 * The signed request as the suite prints it: the request line (the query form's target is
 * the path, '?' and the signer's complete query), the original header lines in order, the
 * headers the signer adds as "Name:value", a blank line and the body.
 */
static struct sig_slice build_signed_request(struct sig_buf *b, const struct raw_request *r,
                                             const struct sig_result *res, enum sig_form form)
{
    append(b, r->method);
    append(b, SIG_SLICE_LIT(" "));
    if (form == SIG_FORM_QUERY) {
        append(b, r->path);
        append(b, SIG_SLICE_LIT("?"));
        append(b, res->query);
    } else {
        append(b, r->target);
    }
    append(b, SIG_SLICE_LIT(" "));
    append(b, r->version);
    append(b, SIG_SLICE_LIT("\n"));
    for (size_t i = 0; i < r->header_count; i++) {
        append(b, r->header_lines[i]);
        append(b, SIG_SLICE_LIT("\n"));
    }
    assert_true(res->add_header_count <= SIG_MAX_ADD_HEADERS);
    for (size_t i = 0; i < res->add_header_count; i++) {
        append(b, res->add_headers[i].name);
        append(b, SIG_SLICE_LIT(":"));
        append(b, res->add_headers[i].value);
        append(b, SIG_SLICE_LIT("\n"));
    }
    append(b, SIG_SLICE_LIT("\n"));
    append(b, r->body);
    return sig_buf_slice(b);
}

/* Copies text with the hex run after every "Signature=" removed (v4a signatures are random),
 * and returns the first such run in *sig. */
static struct sig_slice mask_signatures(struct sig_buf *b, struct sig_slice text,
                                        struct sig_slice *sig, size_t *count)
{
    static const char marker[] = "Signature=";
    const size_t mlen = sizeof(marker) - 1;
    *count = 0;
    size_t i = 0;
    while (i < text.len) {
        if (text.len - i >= mlen && memcmp(text.ptr + i, marker, mlen) == 0) {
            append(b, (struct sig_slice){text.ptr + i, mlen});
            i += mlen;
            size_t start = i;
            while (i < text.len && sig_hex_digit(text.ptr[i]) >= 0)
                i++;
            if (*count == 0)
                *sig = (struct sig_slice){text.ptr + start, i - start};
            (*count)++;
        } else {
            assert_int_equal(sig_buf_append_byte(b, text.ptr[i]), SIG_OK);
            i++;
        }
    }
    return sig_buf_slice(b);
}

/* ---- one test per case and form ----------------------------------------------------- */

struct vector_case {
    char name[256];
    char dir[1024];
    bool v4a;
    enum sig_form form;
    const char *derived_query; /* v4a cases without expected files; else NULL */
    char test_name[300];
};

static struct signer_env g_env;

static const char *form_prefix(enum sig_form form)
{
    return form == SIG_FORM_QUERY ? "query-" : "header-";
}

/* Reads "<form>-<suffix>" (e.g. header-canonical-request.txt) from dir. */
static void read_expected(const char *dir, enum sig_form form, const char *suffix,
                          struct file_data *out)
{
    char name[128];
    struct sig_buf b;
    sig_buf_init(&b, name, sizeof(name) - 1);
    append(&b, cstr(form_prefix(form)));
    append(&b, cstr(suffix));
    name[b.len] = '\0';
    must_read_file(dir, name, out);
}

static void verify_v4a(const uint8_t x[SIG_V4A_COORD_LEN], const uint8_t y[SIG_V4A_COORD_LEN],
                       struct sig_slice sts, struct sig_slice sig_hex, const char *what)
{
    uint8_t der[SIG_V4A_MAX_DER];
    long n = hex_decode(sig_hex, der, sizeof(der));
    if (n <= 0)
        fail_msg("%s: not a hex DER signature of at most %d bytes", what, SIG_V4A_MAX_DER);
    enum sig_err err = sig_v4a_verify(x, y, sts.ptr, sts.len, der, (size_t)n);
    if (err != SIG_OK)
        fail_msg("%s: does not verify with the public key", what);
}

static void test_v4_case(void **state)
{
    const struct vector_case *vc = *state;
    struct context ctx;
    struct raw_request r;
    struct sig_result res;
    struct file_data want_cr, want_sts, want_sig, want_signed;
    static uint8_t text[TEXT_BYTES];
    struct sig_buf b;

    load_context(vc->dir, &ctx);
    load_request(vc->dir, &r);
    sign_case(&g_env, &ctx, &r, SIG_ALG_V4, vc->form, NULL, &res);

    read_expected(vc->dir, vc->form, "canonical-request.txt", &want_cr);
    read_expected(vc->dir, vc->form, "string-to-sign.txt", &want_sts);
    read_expected(vc->dir, vc->form, "signature.txt", &want_sig);
    read_expected(vc->dir, vc->form, "signed-request.txt", &want_signed);

    bool ok = text_eq("canonical request", file_slice(&want_cr), res.canonical_request);
    ok &= text_eq("string to sign", file_slice(&want_sts), res.string_to_sign);
    ok &= text_eq("signature", file_slice(&want_sig), res.signature);
    sig_buf_init(&b, text, sizeof(text));
    ok &= text_eq("signed request", file_slice(&want_signed),
                  build_signed_request(&b, &r, &res, vc->form));
    assert_true(ok);

    sig_workspace_cleanup(&g_env.ws);
}

/* Expected canonical request of a derived case: the template's, with its query line (the 3rd
 * line) replaced by `query` (header form) or by `query` '&' template line (query form: the
 * case's "Param1" names sort before the X-Amz-* ones). */
static struct sig_slice derive_canonical_request(struct sig_buf *b, struct sig_slice tmpl,
                                                 const char *query, enum sig_form form)
{
    size_t l1 = line_end(tmpl, 0);
    size_t l2 = line_end(tmpl, l1 + 1);
    size_t l3 = line_end(tmpl, l2 + 1);
    assert_true(l3 < tmpl.len);
    append(b, (struct sig_slice){tmpl.ptr, l2 + 1});
    append(b, cstr(query));
    if (form == SIG_FORM_QUERY) {
        append(b, SIG_SLICE_LIT("&"));
        append(b, (struct sig_slice){tmpl.ptr + l2 + 1, l3 - (l2 + 1)});
    } else {
        assert_int_equal(l3, l2 + 1); /* the template has no query of its own */
    }
    append(b, (struct sig_slice){tmpl.ptr + l3, tmpl.len - l3});
    return sig_buf_slice(b);
}

/* Template string to sign with its last line (the canonical request's hash) replaced. */
static struct sig_slice derive_string_to_sign(struct sig_buf *b, struct sig_slice tmpl,
                                              struct sig_slice cr)
{
    size_t last = tmpl.len;
    while (last > 0 && tmpl.ptr[last - 1] != '\n')
        last--;
    assert_true(last > 0);
    char hex[SIG_SHA256_HEX_LEN + 1];
    struct sig_sha256 h;
    sig_sha256_init(&h);
    sig_sha256_update(&h, cr.ptr, cr.len);
    sig_sha256_final_hex(&h, hex);
    append(b, (struct sig_slice){tmpl.ptr, last});
    append(b, (struct sig_slice){(const uint8_t *)hex, SIG_SHA256_HEX_LEN});
    return sig_buf_slice(b);
}

static void test_v4a_case(void **state)
{
    const struct vector_case *vc = *state;
    struct context ctx;
    struct raw_request r;
    struct sig_result res;
    struct file_data want_cr, want_sts, want_sig, want_signed;
    static uint8_t text[TEXT_BYTES], masked_want[TEXT_BYTES], masked_got[TEXT_BYTES];
    static uint8_t derived[TEXT_BYTES];
    struct sig_buf b, mw, mg, db;
    uint8_t x[SIG_V4A_COORD_LEN], y[SIG_V4A_COORD_LEN];
    uint8_t kx[SIG_V4A_COORD_LEN], ky[SIG_V4A_COORD_LEN];
    struct sig_v4a_key *key = NULL;
    /* Derived cases take their expectations from the template case beside them. */
    char tmpl_dir[1024];
    const char *expect_dir = vc->dir;
    if (vc->derived_query != NULL) {
        char parent[1024];
        path_join(parent, sizeof(parent), SIGV4_TEST_SUITE_DIR, "v4a", NULL);
        expect_dir = path_join(tmpl_dir, sizeof(tmpl_dir), parent, DERIVED_TEMPLATE_CASE, NULL);
    }

    load_context(vc->dir, &ctx);
    load_request(vc->dir, &r);
    load_public_key(expect_dir, x, y);
    if (vc->derived_query != NULL) {
        /* The template's public key only applies if the credentials are the same. */
        struct context tctx;
        load_context(expect_dir, &tctx);
        assert_true(sig_slice_eq(tctx.access_key_id, ctx.access_key_id));
        assert_true(sig_slice_eq(tctx.secret_access_key, ctx.secret_access_key));
        assert_true(sig_slice_eq(tctx.region, ctx.region));
        assert_true(sig_slice_eq(tctx.service, ctx.service));
        assert_true(sig_slice_eq(tctx.timestamp, ctx.timestamp));
        assert_true(ctx.token.len == 0 && tctx.token.len == 0);
        assert_true(!ctx.sign_body && !tctx.sign_body && ctx.normalize == tctx.normalize);
    }

    enum sig_err err = sig_v4a_key_derive(ctx.access_key_id, ctx.secret_access_key, &key);
    g_owned.key = key;
    if (err != SIG_OK)
        fail_msg("sig_v4a_key_derive failed: %d (%s)", (int)err, sig_err_str(err));
    /* The key is deterministic in the credentials: it must be the suite's key exactly. */
    sig_v4a_key_public(key, kx, ky);
    assert_memory_equal(kx, x, SIG_V4A_COORD_LEN);
    assert_memory_equal(ky, y, SIG_V4A_COORD_LEN);

    sign_case(&g_env, &ctx, &r, SIG_ALG_V4A, vc->form, key, &res);

    read_expected(expect_dir, vc->form, "canonical-request.txt", &want_cr);
    read_expected(expect_dir, vc->form, "string-to-sign.txt", &want_sts);
    read_expected(expect_dir, vc->form, "signature.txt", &want_sig);
    read_expected(expect_dir, vc->form, "signed-request.txt", &want_signed);

    struct sig_slice cr = file_slice(&want_cr);
    struct sig_slice sts = file_slice(&want_sts);
    if (vc->derived_query != NULL) {
        sig_buf_init(&db, derived, sizeof(derived));
        cr = derive_canonical_request(&db, cr, vc->derived_query, vc->form);
        size_t cr_end = db.len;
        struct sig_slice sts_full = derive_string_to_sign(&db, sts, cr);
        sts = (struct sig_slice){sts_full.ptr + cr_end, sts_full.len - cr_end};
    }
    bool ok = text_eq("canonical request", cr, res.canonical_request);
    ok &= text_eq("string to sign", sts, res.string_to_sign);
    assert_true(ok);

    /* Our signature, and the vector's own, must verify over the expected string to sign. */
    verify_v4a(x, y, sts, res.signature, "our signature");
    if (vc->derived_query == NULL)
        verify_v4a(x, y, sts, file_slice(&want_sig), "the vector's signature");

    sig_buf_init(&b, text, sizeof(text));
    struct sig_slice got_signed = build_signed_request(&b, &r, &res, vc->form);
    size_t n_want = 0, n_got = 0;
    struct sig_slice want_req_sig = {0}, got_req_sig = {0};
    sig_buf_init(&mw, masked_want, sizeof(masked_want));
    sig_buf_init(&mg, masked_got, sizeof(masked_got));
    struct sig_slice mwant = mask_signatures(&mw, file_slice(&want_signed), &want_req_sig, &n_want);
    struct sig_slice mgot = mask_signatures(&mg, got_signed, &got_req_sig, &n_got);
    assert_int_equal(n_want, 1);
    assert_int_equal(n_got, 1);
    assert_text_eq("signature in the signed request", res.signature, got_req_sig);
    if (vc->derived_query == NULL) {
        assert_text_eq("signed request (signature excluded)", mwant, mgot);
        verify_v4a(x, y, sts, want_req_sig, "the vector's signed-request signature");
    } else if (vc->form == SIG_FORM_QUERY) {
        /* No expected signed request: the original query must lead the presigned one. */
        assert_true(res.query.len > r.query.len);
        assert_memory_equal(res.query.ptr, r.query.ptr, r.query.len);
        assert_int_equal(res.query.ptr[r.query.len], '&');
    }

    sig_workspace_cleanup(&g_env.ws);
}

/* ---- enumeration -------------------------------------------------------------------- */

static struct vector_case g_cases[2 * MAX_CASES * 2];
static size_t g_case_count;
static size_t g_dir_count[2]; /* v4, v4a directories found */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *derived_query_for(const char *name)
{
    for (size_t i = 0; i < sizeof(derived_v4a_cases) / sizeof(derived_v4a_cases[0]); i++)
        if (strcmp(derived_v4a_cases[i].name, name) == 0)
            return derived_v4a_cases[i].canonical_query;
    return NULL;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[1024];
    FILE *f = fopen(path_join(path, sizeof(path), dir, name, NULL), "rb");
    if (f == NULL)
        return false;
    fclose(f);
    return true;
}

/* Lists <suite>/<sub>/ * directories in name order and adds a test per case and form. Returns
 * -1 if the directory cannot be read, else the number of case directories. */
static int enumerate(const char *sub, bool v4a)
{
    char dir[1024];
    path_join(dir, sizeof(dir), SIGV4_TEST_SUITE_DIR, sub, NULL);
    DIR *d = opendir(dir);
    if (d == NULL) {
        print_error("cannot open %s\n", dir);
        return -1;
    }
    char *names[MAX_CASES];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == MAX_CASES) {
            print_error("more than %d cases in %s\n", MAX_CASES, dir);
            closedir(d);
            return -1;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) {
            closedir(d);
            return -1;
        }
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_name);

    for (size_t i = 0; i < n; i++) {
        for (int f = 0; f < 2; f++) {
            struct vector_case *vc = &g_cases[g_case_count++];
            struct sig_buf b;
            sig_buf_init(&b, vc->name, sizeof(vc->name) - 1);
            if (sig_buf_append_slice(&b, cstr(names[i])) != SIG_OK)
                return -1;
            vc->name[b.len] = '\0';
            vc->v4a = v4a;
            vc->form = f == 0 ? SIG_FORM_HEADER : SIG_FORM_QUERY;
            vc->derived_query = v4a ? derived_query_for(names[i]) : NULL;
            char tmp[1024];
            path_join(tmp, sizeof(tmp), dir, names[i], NULL);
            sig_buf_init(&b, vc->dir, sizeof(vc->dir) - 1);
            if (sig_buf_append_slice(&b, cstr(tmp)) != SIG_OK)
                return -1;
            vc->dir[b.len] = '\0';
            sig_buf_init(&b, vc->test_name, sizeof(vc->test_name) - 1);
            if (sig_buf_append_slice(&b, cstr(sub)) != SIG_OK ||
                sig_buf_append_byte(&b, '/') != SIG_OK ||
                sig_buf_append_slice(&b, cstr(names[i])) != SIG_OK ||
                sig_buf_append_slice(&b, f == 0 ? SIG_SLICE_LIT("/header")
                                                : SIG_SLICE_LIT("/query")) != SIG_OK)
                return -1;
            vc->test_name[b.len] = '\0';
        }
        free(names[i]);
    }
    return (int)n;
}

/* Nothing is silently skipped: the case directories found are the published suite's, and each
 * has what its kind of test reads. */
static void test_case_inventory(void **state)
{
    (void)state;
    assert_int_equal(g_dir_count[0], V4_CASE_COUNT);
    assert_int_equal(g_dir_count[1], V4A_CASE_COUNT);
    assert_int_equal(g_case_count, 2 * (V4_CASE_COUNT + V4A_CASE_COUNT));
    size_t derived = 0;
    for (size_t i = 0; i < g_case_count; i++) {
        const struct vector_case *vc = &g_cases[i];
        assert_true(file_exists(vc->dir, "context.json"));
        assert_true(file_exists(vc->dir, "request.txt"));
        if (vc->derived_query != NULL) {
            /* A derived case must really lack expectations: once the suite ships them, use
             * them (drop the case from derived_v4a_cases). */
            assert_false(file_exists(vc->dir, "header-canonical-request.txt"));
            derived++;
            continue;
        }
        assert_true(file_exists(vc->dir, "header-canonical-request.txt"));
        assert_true(file_exists(vc->dir, "query-signed-request.txt"));
        if (vc->v4a)
            assert_true(file_exists(vc->dir, "public-key.json"));
    }
    assert_int_equal(derived, 2 * sizeof(derived_v4a_cases) / sizeof(derived_v4a_cases[0]));
}

static int group_setup(void **state)
{
    (void)state;
    sig_key_cache_init(&g_env.cache);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sig_key_cache_cleanup(&g_env.cache);
    return 0;
}

int main(void)
{
    int v4 = enumerate("v4", false);
    int v4a = enumerate("v4a", true);
    g_dir_count[0] = v4 < 0 ? 0 : (size_t)v4;
    g_dir_count[1] = v4a < 0 ? 0 : (size_t)v4a;

    const struct CMUnitTest inventory[] = {cmocka_unit_test(test_case_inventory)};
    int failed = cmocka_run_group_tests_name("sigv4 test suite inventory", inventory, NULL, NULL);

    static struct CMUnitTest tests[sizeof(g_cases) / sizeof(g_cases[0])];
    for (size_t i = 0; i < g_case_count; i++) {
        tests[i] = (struct CMUnitTest){
            .name = g_cases[i].test_name,
            .test_func = g_cases[i].v4a ? test_v4a_case : test_v4_case,
            .teardown_func = release_owned,
            .initial_state = &g_cases[i],
        };
    }
    failed += _cmocka_run_group_tests("sigv4 test suite", tests, g_case_count, group_setup,
                                      group_teardown);
    return failed == 0 ? 0 : 1;
}
