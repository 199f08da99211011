/*
 * sts_dump: drives providers/sts.c for tests/differential/test_sts_diff.py, which compares
 * what it prints with botocore's STS client.
 *
 *   sts_dump host REGION                      the endpoint host name
 *   sts_dump body ROLE_ARN SESSION EXTERNAL_ID DURATION_S
 *                                             the AssumeRole form body ("" = no external id)
 *   sts_dump sign HOST REGION UNIX_TIME AKID SECRET TOKEN
 *                                             the signed head for the body read from stdin
 *                                             ("" = no token)
 *   sts_dump parse STATUS                     the answer read from stdin: one line
 *                                             "OK\tAKID\tSECRET\tTOKEN\tEXPIRATION" or
 *                                             "ERR\tCODE_NUMBER\tERROR_CODE\tERROR_MESSAGE"
 *
 * Output goes to stdout with no trailing newline for host, body and sign; a refused input
 * prints "ERR CODE_NUMBER" and exits 1. This is a test tool: it prints secrets. Never give
 * it real credentials.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sts.h"

static struct sig_slice arg(const char *s)
{
    return sig_slice_from_cstr(s);
}

static int refused(enum cred_err e)
{
    printf("ERR %d", (int)e);
    return 1;
}

static size_t read_stdin(uint8_t *buf, size_t cap)
{
    size_t n = 0, got;
    while (n < cap && (got = fread(buf + n, 1, cap - n, stdin)) > 0)
        n += got;
    return n;
}

static int do_sign(char **argv)
{
    static uint8_t body[65536], ws_mem[65536], head_mem[STS_MAX_HEAD_BYTES];
    size_t body_len = read_stdin(body, sizeof(body));
    const struct sig_credentials base = {arg(argv[4]), arg(argv[5]), arg(argv[6])};
    struct sig_workspace ws;
    sig_workspace_init(&ws, ws_mem, sizeof(ws_mem));
    struct sig_buf head;
    sig_buf_init(&head, head_mem, sizeof(head_mem));
    enum cred_err e =
        sts_sign_request(arg(argv[1]), arg(argv[2]), (struct sig_slice){body, body_len},
                         strtoll(argv[3], NULL, 10), &base, &ws, &head);
    sig_workspace_cleanup(&ws);
    if (e != CRED_OK)
        return refused(e);
    fwrite(head.ptr, 1, head.len, stdout);
    return 0;
}

static int do_parse(int status)
{
    static uint8_t body[STS_MAX_RESPONSE_BYTES + 2];
    size_t len = read_stdin(body, sizeof(body));
    struct sts_answer a;
    enum cred_err e = sts_parse_answer(status, body, len, &a);
    if (e != CRED_OK) {
        printf("ERR\t%d\t%s\t%s\n", (int)e, a.error_code, a.error_message);
        return 0;
    }
    struct sig_credentials v = cred_view(a.creds);
    printf("OK\t%.*s\t%.*s\t%.*s\t%lld\n", (int)v.access_key_id.len, v.access_key_id.ptr,
           (int)v.secret_access_key.len, v.secret_access_key.ptr, (int)v.session_token.len,
           v.session_token.ptr, (long long)a.expiration);
    cred_unref(a.creds);
    return 0;
}

int main(int argc, char **argv)
{
    sts_init();
    struct sig_slice cmd = arg(argc > 1 ? argv[1] : "");
    if (sig_slice_eq(cmd, SIG_SLICE_LIT("host")) && argc == 3) {
        char host[256];
        enum cred_err e = sts_endpoint_host(arg(argv[2]), host, sizeof(host));
        if (e != CRED_OK)
            return refused(e);
        fputs(host, stdout);
        return 0;
    }
    if (sig_slice_eq(cmd, SIG_SLICE_LIT("body")) && argc == 6) {
        static uint8_t mem[16384];
        struct sig_buf b;
        sig_buf_init(&b, mem, sizeof(mem));
        const struct sts_assume_role p = {arg(argv[2]), arg(argv[3]), arg(argv[4]),
                                          (uint32_t)strtoul(argv[5], NULL, 10)};
        enum cred_err e = sts_assume_role_body(&p, &b);
        if (e != CRED_OK)
            return refused(e);
        fwrite(b.ptr, 1, b.len, stdout);
        return 0;
    }
    if (sig_slice_eq(cmd, SIG_SLICE_LIT("sign")) && argc == 8)
        return do_sign(argv + 1);
    if (sig_slice_eq(cmd, SIG_SLICE_LIT("parse")) && argc == 3)
        return do_parse((int)strtol(argv[2], NULL, 10));
    fprintf(stderr, "usage: see the comment at the top of sts_dump.c\n");
    return 2;
}
