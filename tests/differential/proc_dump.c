/*
 * proc_dump: drives providers/process.c for tests/differential/test_process_diff.py, which
 * compares what it prints with Python's shlex.split and botocore's ProcessProvider.
 *
 *   proc_dump split    each record read from stdin is a command line: prints one line per
 *                      record, "OK" then a tab and the hex of each word, or "ERR\tCODE"
 *   proc_dump parse    each record is a program's output: prints one line per record,
 *                      "OK\tAKID\tSECRET\tTOKEN\tEXPIRATION" (the three in hex, the expiration
 *                      in seconds, 0 for none) or "ERR\tCODE\tMESSAGE"
 *
 * A record is its length in decimal, a newline, then that many bytes (so that a run checks
 * thousands of cases in one process). This is a test tool: it prints secrets. Never give it
 * real credentials.
 */
#include <stdio.h>
#include <stdlib.h>

#include "process.h"

/* Room for an output over PROC_MAX_OUTPUT_BYTES, to check the limit. */
#define MAX_RECORD (PROC_MAX_OUTPUT_BYTES + 1024)

static void print_hex(struct sig_slice s)
{
    for (size_t i = 0; i < s.len; i++)
        printf("%02x", s.ptr[i]);
}

/* One record into buf; false at the end of the input or on a malformed record. */
static bool read_record(uint8_t *buf, size_t *len)
{
    unsigned long n;
    if (scanf("%lu", &n) != 1 || getchar() != '\n' || n > MAX_RECORD)
        return false;
    *len = fread(buf, 1, n, stdin);
    return *len == n;
}

static void do_split(const uint8_t *rec, size_t len)
{
    static struct proc_argv words;
    char msg[256];
    enum cred_err e = proc_split((struct sig_slice){rec, len}, &words, msg, sizeof(msg));
    if (e != CRED_OK) {
        printf("ERR\t%d\n", (int)e);
        return;
    }
    printf("OK");
    for (unsigned i = 0; i < words.argc; i++) {
        putchar('\t');
        print_hex(sig_slice_from_cstr(words.argv[i]));
    }
    putchar('\n');
}

static void do_parse(const uint8_t *rec, size_t len)
{
    struct proc_answer a;
    char msg[256];
    enum cred_err e = proc_parse_output(rec, len, &a, msg, sizeof(msg));
    if (e != CRED_OK) {
        printf("ERR\t%d\t%s\n", (int)e, msg);
        return;
    }
    struct sig_credentials v = cred_view(a.creds);
    printf("OK\t");
    print_hex(v.access_key_id);
    putchar('\t');
    print_hex(v.secret_access_key);
    putchar('\t');
    print_hex(v.session_token);
    printf("\t%lld\n", (long long)a.expiration);
    cred_unref(a.creds);
}

int main(int argc, char **argv)
{
    static uint8_t rec[MAX_RECORD];
    struct sig_slice cmd = sig_slice_from_cstr(argc == 2 ? argv[1] : "");
    bool split = sig_slice_eq(cmd, SIG_SLICE_LIT("split"));
    if (!split && !sig_slice_eq(cmd, SIG_SLICE_LIT("parse"))) {
        fprintf(stderr, "usage: see the comment at the top of proc_dump.c\n");
        return 2;
    }
    size_t len;
    while (read_record(rec, &len)) {
        if (split)
            do_split(rec, len);
        else
            do_parse(rec, len);
    }
    return ferror(stdin) ? 1 : 0;
}
