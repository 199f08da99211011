/*
 * sig_cli: signs a stream of requests read from stdin and writes each result to stdout, so
 * a test in another language (tests/differential) can drive the signer in one process.
 *
 * Wire format: every field is a netstring, "<decimal length>:<bytes>," (length without
 * leading zeros, at most MAX_FIELD_BYTES), so any byte, NUL included, can be passed.
 *
 * A request is these fields, in order:
 *    1 alg          "v4" | "v4a"
 *    2 form         "header" | "query"
 *    3 uri mode     "normalize" | "encode-only" | "s3"
 *    4 region       (v4a: the region set)
 *    5 service
 *    6 unix time    decimal seconds, optionally negative
 *    7 payload hash passed as is (empty: the signer's default, the hash of no bytes)
 *    8 flags        any of 'c' (add_content_sha256), 'o' (omit_session_token); may be empty
 *    9 expires      decimal seconds (query form)
 *   10 access key id
 *   11 secret access key
 *   12 session token (empty: none)
 *   13 method
 *   14 path        wire form, without the query
 *   15 query       wire form after '?', without it
 *   16 header count decimal, at most MAX_HEADERS
 *   then count pairs of fields: header name, raw header value
 *
 * A result is, in order:
 *    status        decimal enum sig_err: "0" on success
 *    on success:   canonical request, string to sign, signature, signed headers, credential
 *                  scope, query (query form), added header count, then name/value pairs
 *    on failure:   sig_err_str(status)
 *
 * The stream ends at EOF between requests. A malformed stream (bad netstring, unknown
 * alg/form/mode/flag, bad number) ends the program with exit status 2 and one line on
 * stderr naming the request and field; signer errors are results, not failures.
 *
 * This is a test tool: it prints canonical requests and strings to sign, which would be
 * secrets in production (they may embed the session token). Never point it at real
 * credentials.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sig_sha256.h"
#include "sig_sign.h"
#include "sig_types.h"
#include "sig_v4a.h"

/* Above SIG_MAX_HEADERS so that the signer, not this tool, refuses too many headers. */
#define MAX_HEADERS 1024
#define MAX_FIELD_BYTES (1024 * 1024)
/* Every field of one request lives here; reset per request. */
#define ARENA_BYTES (8 * 1024 * 1024)
/* The workspace a proxy thread would give the signer. */
#define WORKSPACE_BYTES (64 * 1024)

enum read_status { READ_OK, READ_EOF, READ_BAD };

struct cli {
    struct sig_buf arena;
    uint64_t request_index;
    const char *field_name; /* for the error line */
    struct sig_header headers[MAX_HEADERS];
    struct sig_key_cache cache;
    struct sig_workspace ws;
    uint8_t ws_mem[WORKSPACE_BYTES];
    /* The last v4a key and the credentials it was derived from. */
    struct sig_v4a_key *v4a_key;
    uint8_t key_creds_mem[2 * MAX_FIELD_BYTES];
    struct sig_buf key_creds;
};

static int fail(struct cli *c, const char *why)
{
    fprintf(stderr, "sig_cli: request %" PRIu64 ", field %s: %s\n", c->request_index, c->field_name,
            why);
    return 2;
}

/* Reads one netstring into the arena. READ_EOF only if the stream ends before its first byte
 * and at_record_start is true. */
static enum read_status read_field(struct cli *c, FILE *in, bool at_record_start,
                                   struct sig_slice *out)
{
    size_t len = 0;
    int digits = 0;
    int ch;
    while ((ch = getc(in)) != EOF && ch >= '0' && ch <= '9') {
        if (digits > 0 && len == 0)
            return READ_BAD; /* a leading zero */
        len = len * 10 + (size_t)(ch - '0');
        if (len > MAX_FIELD_BYTES)
            return READ_BAD;
        digits++;
    }
    if (ch == EOF && digits == 0 && at_record_start && !ferror(in))
        return READ_EOF;
    if (ch != ':' || digits == 0)
        return READ_BAD;
    if (c->arena.cap - c->arena.len < len)
        return READ_BAD;
    uint8_t *dst = c->arena.ptr + c->arena.len;
    if (fread(dst, 1, len, in) != len)
        return READ_BAD;
    c->arena.len += len;
    if (getc(in) != ',')
        return READ_BAD;
    *out = (struct sig_slice){dst, len};
    return READ_OK;
}

static bool parse_int64(struct sig_slice s, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (s.len > 0 && s.ptr[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == s.len || s.len - i > 18)
        return false;
    int64_t v = 0;
    for (; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    v = neg ? -v : v;
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static void write_field(FILE *out, struct sig_slice s)
{
    fprintf(out, "%zu:", s.len);
    if (s.len > 0) /* an empty slice may have a NULL ptr, which fwrite must not get */
        fwrite(s.ptr, 1, s.len, out);
    putc(',', out);
}

static void write_number(FILE *out, int64_t v)
{
    char num[24];
    size_t i = sizeof(num);
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do {
        num[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        num[--i] = '-';
    write_field(out, (struct sig_slice){(const uint8_t *)num + i, sizeof(num) - i});
}

/* Returns the v4a key for these credentials, deriving it if they differ from the last. */
static enum sig_err v4a_key_for(struct cli *c, struct sig_slice akid, struct sig_slice secret,
                                const struct sig_v4a_key **out)
{
    /* key_creds holds "<akid>\n<secret>" of the cached key. */
    struct sig_slice prev = sig_buf_slice(&c->key_creds);
    bool same = c->v4a_key != NULL && prev.len == akid.len + 1 + secret.len &&
                sig_slice_eq((struct sig_slice){prev.ptr, akid.len}, akid) &&
                prev.ptr[akid.len] == '\n' &&
                sig_slice_eq((struct sig_slice){prev.ptr + akid.len + 1, secret.len}, secret);
    if (!same) {
        sig_v4a_key_free(c->v4a_key);
        c->v4a_key = NULL;
        sig_buf_wipe(&c->key_creds);
        SIG_TRY(sig_v4a_key_derive(akid, secret, &c->v4a_key));
        /* Cannot fail: both fields are at most MAX_FIELD_BYTES. */
        if (sig_buf_append_slice(&c->key_creds, akid) != SIG_OK ||
            sig_buf_append_byte(&c->key_creds, '\n') != SIG_OK ||
            sig_buf_append_slice(&c->key_creds, secret) != SIG_OK)
            return SIG_ERR_TOO_LARGE;
    }
    *out = c->v4a_key;
    return SIG_OK;
}

#define FIELD(name_, dst_)                                                                         \
    do {                                                                                           \
        c->field_name = (name_);                                                                   \
        if (read_field(c, in, false, (dst_)) != READ_OK)                                           \
            return fail(c, "bad netstring");                                                       \
    } while (0)

/* Reads one request, signs it, writes the result. Returns 0, 1 at a clean EOF, or 2. */
static int handle_one(struct cli *c, FILE *in, FILE *out)
{
    struct sig_slice alg, form, mode, flags, num, payload_hash;
    struct sig_params p = {0};
    struct sig_credentials creds = {0};
    struct sig_request req = {0};
    int64_t v;

    c->arena.len = 0;
    c->field_name = "alg";
    enum read_status st = read_field(c, in, true, &alg);
    if (st == READ_EOF)
        return 1;
    if (st != READ_OK)
        return fail(c, "bad netstring");
    if (sig_slice_eq(alg, SIG_SLICE_LIT("v4")))
        p.alg = SIG_ALG_V4;
    else if (sig_slice_eq(alg, SIG_SLICE_LIT("v4a")))
        p.alg = SIG_ALG_V4A;
    else
        return fail(c, "expected v4 or v4a");

    FIELD("form", &form);
    if (sig_slice_eq(form, SIG_SLICE_LIT("header")))
        p.form = SIG_FORM_HEADER;
    else if (sig_slice_eq(form, SIG_SLICE_LIT("query")))
        p.form = SIG_FORM_QUERY;
    else
        return fail(c, "expected header or query");

    FIELD("uri mode", &mode);
    if (sig_slice_eq(mode, SIG_SLICE_LIT("normalize")))
        p.uri_mode = SIG_URI_NORMALIZE;
    else if (sig_slice_eq(mode, SIG_SLICE_LIT("encode-only")))
        p.uri_mode = SIG_URI_ENCODE_ONLY;
    else if (sig_slice_eq(mode, SIG_SLICE_LIT("s3")))
        p.uri_mode = SIG_URI_S3;
    else
        return fail(c, "expected normalize, encode-only or s3");

    FIELD("region", &p.region);
    FIELD("service", &p.service);
    FIELD("unix time", &num);
    if (!parse_int64(num, INT64_MIN / 2, INT64_MAX / 2, &p.unix_time))
        return fail(c, "expected a decimal number");
    FIELD("payload hash", &payload_hash);
    p.payload_hash = payload_hash;
    FIELD("flags", &flags);
    for (size_t i = 0; i < flags.len; i++) {
        if (flags.ptr[i] == 'c')
            p.add_content_sha256 = true;
        else if (flags.ptr[i] == 'o')
            p.omit_session_token = true;
        else
            return fail(c, "unknown flag");
    }
    FIELD("expires", &num);
    if (!parse_int64(num, 0, UINT32_MAX, &v))
        return fail(c, "expected a decimal number");
    p.expires_s = (uint32_t)v;
    FIELD("access key id", &creds.access_key_id);
    FIELD("secret access key", &creds.secret_access_key);
    FIELD("session token", &creds.session_token);
    FIELD("method", &req.method);
    FIELD("path", &req.path);
    FIELD("query", &req.query);
    FIELD("header count", &num);
    if (!parse_int64(num, 0, MAX_HEADERS, &v))
        return fail(c, "expected a header count of at most 1024");
    req.header_count = (size_t)v;
    for (size_t i = 0; i < req.header_count; i++) {
        FIELD("header name", &c->headers[i].name);
        FIELD("header value", &c->headers[i].value);
    }
    req.headers = c->headers;

    struct sig_result res;
    enum sig_err err = SIG_OK;
    if (p.alg == SIG_ALG_V4A)
        err = v4a_key_for(c, creds.access_key_id, creds.secret_access_key, &p.v4a_key);
    if (err == SIG_OK) {
        sig_workspace_init(&c->ws, c->ws_mem, sizeof(c->ws_mem));
        err = sig_sign(&req, &p, &creds, &c->cache, &c->ws, &res);
    }
    write_number(out, err);
    if (err != SIG_OK) {
        write_field(out, sig_slice_from_cstr(sig_err_str(err)));
    } else {
        write_field(out, res.canonical_request);
        write_field(out, res.string_to_sign);
        write_field(out, res.signature);
        write_field(out, res.signed_headers);
        write_field(out, res.credential_scope);
        write_field(out, res.query);
        write_number(out, (int64_t)res.add_header_count);
        for (size_t i = 0; i < res.add_header_count; i++) {
            write_field(out, res.add_headers[i].name);
            write_field(out, res.add_headers[i].value);
        }
    }
    sig_workspace_cleanup(&c->ws);
    return 0;
}

int main(void)
{
    static struct cli c;
    static uint8_t arena_mem[ARENA_BYTES];
    sig_buf_init(&c.arena, arena_mem, sizeof(arena_mem));
    sig_buf_init(&c.key_creds, c.key_creds_mem, sizeof(c.key_creds_mem));
    sig_key_cache_init(&c.cache);

    int rc;
    for (;;) {
        rc = handle_one(&c, stdin, stdout);
        if (rc != 0)
            break;
        c.request_index++;
    }
    sig_v4a_key_free(c.v4a_key);
    sig_buf_wipe(&c.key_creds);
    sig_buf_wipe(&c.arena);
    sig_key_cache_cleanup(&c.cache);
    if (fflush(stdout) != 0) {
        perror("sig_cli: stdout");
        return 2;
    }
    return rc == 1 ? 0 : rc;
}
