/*
 * sig_bench.c: how fast sig_sign is on one core, next to the SHA-256 work it cannot avoid.
 *
 * For two requests (AWS's get-vanilla test case, and a realistic S3 PUT with 12 headers and
 * a session token) it prints signatures per second and ns per signature with a warm key cache
 * and one reused workspace (as each proxy worker signs), the time of a bare SHA-256 over the
 * same bytes the signature hashes (canonical request and string to sign), their ratio, and
 * the heap allocations per signature, counted by replacing malloc and friends for the whole
 * process (OpenSSL's allocations included). Not a test: it informs and never gates CI.
 *
 * bench/run-sig-bench.sh runs it next to botocore (bench/botocore_bench.py), which signs the
 * same requests at the same fixed time; the signatures printed by both must be equal.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sig_sign.h"

/*
 * Allocation counting. Defining malloc here replaces glibc's for every caller in the process,
 * shared libraries included; the real allocator stays reachable under its __libc_ names. Only
 * what happens while `counting` is set is counted.
 */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t count, size_t n);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static int counting;
static uint64_t alloc_count;

void *malloc(size_t n)
{
    alloc_count += counting;
    return __libc_malloc(n);
}

void *calloc(size_t count, size_t n)
{
    alloc_count += counting;
    return __libc_calloc(count, n);
}

void *realloc(void *p, size_t n)
{
    alloc_count += counting;
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    alloc_count += counting;
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    alloc_count += counting;
    void *p = __libc_memalign(align, n);
    if (p == NULL)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void free(void *p)
{
    __libc_free(p);
}

/* A session token as long as those STS returns, identical to botocore_bench.py's. */
#define TOKEN_LEN 600
static char session_token[TOKEN_LEN];

static void make_session_token(void)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < TOKEN_LEN; i++)
        session_token[i] = b64[(i * 7 + 3) % 64];
}

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        SIG_SLICE_LIT(n), SIG_SLICE_LIT(v)                                                         \
    }

/* get-vanilla from AWS's SigV4 test suite (../shared/sigv4-test-suite/v4/get-vanilla). */
static const struct sig_header vanilla_headers[] = {
    HDR("Host", "example.amazonaws.com"),
};

/* A PUT as an S3 client sends it; sigv4d signs it with UNSIGNED-PAYLOAD under TLS. */
static const struct sig_header s3_put_headers[] = {
    HDR("Host", "my-bucket.s3.us-west-2.amazonaws.com"),
    HDR("Content-Type", "image/jpeg"),
    HDR("Content-Length", "1048576"),
    HDR("Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="),
    HDR("Cache-Control", "max-age=86400, public"),
    HDR("Content-Disposition", "attachment; filename=\"IMG_0001.jpg\""),
    HDR("x-amz-acl", "bucket-owner-full-control"),
    HDR("x-amz-storage-class", "STANDARD_IA"),
    HDR("x-amz-server-side-encryption", "aws:kms"),
    HDR("x-amz-server-side-encryption-aws-kms-key-id",
        "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    HDR("x-amz-meta-camera", "Pixel 8 Pro"),
    HDR("x-amz-tagging", "project=sigv4d&env=bench"),
};

struct bench_case {
    const char *name;
    struct sig_request req;
    struct sig_params params;
    struct sig_credentials creds;
};

static struct sig_workspace ws;
static uint8_t ws_mem[64 * 1024];
static struct sig_key_cache cache;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

#define ROUNDS 15
#define ROUND_NS 40e6 /* each round runs about this long */

/* The work being timed, as a function so that every measurement shares one harness. */
typedef int (*bench_fn)(const struct bench_case *c, void *arg);

struct timed {
    bench_fn fn;
    const struct bench_case *c;
    void *arg;
    uint64_t iters;
    double best_ns; /* per call, fastest round so far */
};

static int run_round(struct timed *t)
{
    double t0 = now_ns();
    for (uint64_t i = 0; i < t->iters; i++)
        if (t->fn(t->c, t->arg) != 0)
            return -1;
    double per_call = (now_ns() - t0) / (double)t->iters;
    if (t->best_ns == 0 || per_call < t->best_ns)
        t->best_ns = per_call;
    return 0;
}

/*
 * Times `n` functions in alternating rounds of about ROUND_NS each, and keeps each one's
 * fastest round. The machine is shared: alternating exposes both sides of a ratio to the
 * same load, and the fastest round is the closest to the cost on an idle core.
 */
static int time_alternating(struct timed *t, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        t[k].iters = 1;
        for (;;) { /* calibrate: double until a batch takes 1/16 of a round */
            double t0 = now_ns();
            if (run_round(&t[k]) != 0)
                return -1;
            double dt = now_ns() - t0;
            if (dt >= ROUND_NS / 16 || t[k].iters >= (1ull << 30)) {
                t[k].iters = (uint64_t)((double)t[k].iters * ROUND_NS / (dt > 1 ? dt : 1)) + 1;
                break;
            }
            t[k].iters *= 2;
        }
        t[k].best_ns = 0; /* calibration rounds are warm-up, not results */
    }
    for (int r = 0; r < ROUNDS; r++)
        for (size_t k = 0; k < n; k++)
            if (run_round(&t[k]) != 0)
                return -1;
    return 0;
}

static volatile uint8_t sink; /* keeps results observable */

static int sign_once(const struct bench_case *c, void *arg)
{
    struct sig_result *res = arg;
    if (sig_sign(&c->req, &c->params, &c->creds, &cache, &ws, res) != SIG_OK)
        return -1;
    sink ^= res->signature.ptr[0];
    return 0;
}

/* The bytes the signature hashes, copied out of the workspace before it is reused. */
struct hashed_bytes {
    uint8_t canonical_request[16 * 1024];
    size_t canonical_request_len;
    uint8_t string_to_sign[1024];
    size_t string_to_sign_len;
};

static int sha256_once(const struct bench_case *c, void *arg)
{
    (void)c;
    const struct hashed_bytes *h = arg;
    uint8_t d1[SIG_SHA256_LEN], d2[SIG_SHA256_LEN];
    sig_sha256(h->canonical_request, h->canonical_request_len, d1);
    sig_sha256(h->string_to_sign, h->string_to_sign_len, d2);
    sink ^= d1[0] ^ d2[0];
    return 0;
}

static int run_case(const struct bench_case *c)
{
    static struct hashed_bytes hashed;
    struct sig_result res;

    /* Warm the key cache and check the request signs at all. */
    enum sig_err err = sig_sign(&c->req, &c->params, &c->creds, &cache, &ws, &res);
    if (err != SIG_OK) {
        fprintf(stderr, "sig_bench: %s: sig_sign failed: %s\n", c->name, sig_err_str(err));
        return -1;
    }
    if (res.canonical_request.len > sizeof(hashed.canonical_request) ||
        res.string_to_sign.len > sizeof(hashed.string_to_sign)) {
        fprintf(stderr, "sig_bench: %s: canonical request too large for the bench\n", c->name);
        return -1;
    }
    memcpy(hashed.canonical_request, res.canonical_request.ptr, res.canonical_request.len);
    hashed.canonical_request_len = res.canonical_request.len;
    memcpy(hashed.string_to_sign, res.string_to_sign.ptr, res.string_to_sign.len);
    hashed.string_to_sign_len = res.string_to_sign.len;
    char signature[SIG_MAX_SIGNATURE_HEX + 1];
    size_t sig_len =
        res.signature.len < SIG_MAX_SIGNATURE_HEX ? res.signature.len : SIG_MAX_SIGNATURE_HEX;
    memcpy(signature, res.signature.ptr, sig_len);
    signature[sig_len] = '\0';

    /* Allocations over a fixed number of warm signatures. */
    enum { ALLOC_PROBE_SIGS = 10000 };
    alloc_count = 0;
    counting = 1;
    for (int i = 0; i < ALLOC_PROBE_SIGS; i++)
        if (sign_once(c, &res) != 0)
            break;
    counting = 0;
    double allocs_per_sig = (double)alloc_count / ALLOC_PROBE_SIGS;

    uint64_t misses_before = cache.misses;
    struct timed t[2] = {{.fn = sign_once, .c = c, .arg = &res},
                         {.fn = sha256_once, .c = c, .arg = &hashed}};
    if (time_alternating(t, 2) != 0) {
        fprintf(stderr, "sig_bench: %s: signing failed while timing\n", c->name);
        return -1;
    }
    uint64_t misses = cache.misses - misses_before;
    double sig_ns = t[0].best_ns, sha_ns = t[1].best_ns;

    size_t bytes = hashed.canonical_request_len + hashed.string_to_sign_len;
    printf("%-18s %8zu %10.0f %12.0f %12.0f %8.2f %12.2f %10.3f\n", c->name, bytes, sig_ns,
           1e9 / sig_ns, sha_ns, sig_ns / sha_ns, (double)bytes / sha_ns * 1e3, allocs_per_sig);
    /* One parseable line per case for run-sig-bench.sh. */
    printf("result\tsigv4d\t%s\t%.0f\t%.1f\t%.1f\t%.3f\t%llu\t%s\n", c->name, 1e9 / sig_ns, sig_ns,
           sha_ns, allocs_per_sig, (unsigned long long)misses, signature);
    return 0;
}

/* SHA-256 over a large buffer: the machine's bulk rate, the bound for body hashing. */
static int sha256_bulk_once(const struct bench_case *c, void *arg)
{
    (void)c;
    static uint8_t block[1 << 20];
    uint8_t d[SIG_SHA256_LEN];
    (void)arg;
    sig_sha256(block, sizeof(block), d);
    sink ^= d[0];
    return 0;
}

int main(void)
{
    make_session_token();
    sig_workspace_init(&ws, ws_mem, sizeof(ws_mem));
    sig_key_cache_init(&cache);

    const struct sig_credentials example = {
        .access_key_id = SIG_SLICE_LIT("AKIDEXAMPLE"),
        .secret_access_key = SIG_SLICE_LIT("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    };
    struct sig_credentials with_token = example;
    with_token.session_token = (struct sig_slice){(const uint8_t *)session_token, TOKEN_LEN};

    const struct bench_case cases[] = {
        {
            .name = "get-vanilla",
            .req = {.method = SIG_SLICE_LIT("GET"),
                    .path = SIG_SLICE_LIT("/"),
                    .headers = vanilla_headers,
                    .header_count = sizeof(vanilla_headers) / sizeof(vanilla_headers[0])},
            .params = {.alg = SIG_ALG_V4,
                       .form = SIG_FORM_HEADER,
                       .uri_mode = SIG_URI_NORMALIZE,
                       .region = SIG_SLICE_LIT("us-east-1"),
                       .service = SIG_SLICE_LIT("service"),
                       .unix_time = 1440938160 /* 2015-08-30T12:36:00Z */},
            .creds = example,
        },
        {
            .name = "s3-put-12-headers",
            .req = {.method = SIG_SLICE_LIT("PUT"),
                    .path = SIG_SLICE_LIT("/photos/2024/11/IMG_0001.jpg"),
                    .headers = s3_put_headers,
                    .header_count = sizeof(s3_put_headers) / sizeof(s3_put_headers[0])},
            .params = {.alg = SIG_ALG_V4,
                       .form = SIG_FORM_HEADER,
                       .uri_mode = SIG_URI_S3,
                       .region = SIG_SLICE_LIT("us-west-2"),
                       .service = SIG_SLICE_LIT("s3"),
                       .unix_time = 1732838400, /* 2024-11-29T00:00:00Z */
                       .payload_hash = SIG_SLICE_LIT(SIG_UNSIGNED_PAYLOAD),
                       .add_content_sha256 = true},
            .creds = with_token,
        },
    };

    printf("sig_bench: SigV4 header signing on one thread, warm key cache, reused workspace\n");
    printf("%-18s %8s %10s %12s %12s %8s %12s %10s\n", "request", "bytes", "ns/sig", "sigs/s",
           "sha256 ns", "ratio", "sha MB/s", "allocs/sig");
    int rc = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (run_case(&cases[i]) != 0)
            rc = 1;
    struct timed bulk = {.fn = sha256_bulk_once};
    if (time_alternating(&bulk, 1) != 0)
        return 1;
    double bulk_ns = bulk.best_ns;
    printf("sha256 bulk (1 MiB buffers): %.0f MB/s\n", (double)(1 << 20) / bulk_ns * 1e3);
    printf("result\tsha256-bulk\t%.0f\n", (double)(1 << 20) / bulk_ns * 1e3);
    printf("bytes: canonical request + string to sign, which the signature hashes;\n"
           "sha256 ns: bare SHA-256 of those bytes; ratio: ns/sig over sha256 ns;\n"
           "times: fastest of %d alternating rounds of %.0f ms\n",
           ROUNDS, ROUND_NS / 1e6);

    sig_workspace_cleanup(&ws);
    sig_key_cache_cleanup(&cache);
    return rc;
}
