/*
 * process_fuzz: libFuzzer target for credential_process's command line and output parsers
 * (providers/process.c).
 *
 * The input goes whole to proc_split and to proc_parse_output. abort() unless:
 *   - proc_split gives CRED_OK, CRED_ERR_INVALID or CRED_ERR_TOO_LONG, with a message; on an
 *     error argc is 0 and argv[0] NULL; on CRED_OK 1..PROC_MAX_ARGS words, argv[argc] NULL,
 *     each word NUL-terminated inside `mem` after the previous one, and the words quoted
 *     back ('...' with ' written as '\'') and split again give the same words (a property
 *     that does not depend on how the first split got them);
 *   - proc_parse_output gives CRED_OK or CRED_ERR_BAD_ANSWER; on an error creds is NULL and
 *     the message is one non-empty line; on CRED_OK the key id and secret are non-empty
 *     printable ASCII without spaces, the token is too (or empty), the expiration is 0 or in
 *     1970..9999, the message is empty, and a second parse gives the same answer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "process.h"

#include "fuzz_check.h"

static void check_msg(const char *msg, size_t cap, bool empty)
{
    size_t n = strnlen(msg, cap);
    CHECK(n < cap);
    CHECK(empty ? n == 0 : n > 0);
    for (size_t i = 0; i < n; i++)
        CHECK((uint8_t)msg[i] >= 0x20 && (uint8_t)msg[i] < 0x7f);
}

/* Each word in single quotes (a ' as '\''), separated by spaces; false if it does not fit. */
static bool quote_back(const struct proc_argv *a, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = 0;
    for (unsigned w = 0; w < a->argc; w++) {
        size_t need = 3;
        for (const char *p = a->argv[w]; *p != '\0'; p++)
            need += *p == '\'' ? 4 : 1;
        if (n + need > cap)
            return false;
        if (w > 0)
            out[n++] = ' ';
        out[n++] = '\'';
        for (const char *p = a->argv[w]; *p != '\0'; p++) {
            if (*p == '\'') {
                static const char escaped[4] = {'\'', '\\', '\'', '\''};
                for (size_t k = 0; k < sizeof(escaped); k++)
                    out[n++] = (uint8_t)escaped[k];
            } else {
                out[n++] = (uint8_t)*p;
            }
        }
        out[n++] = '\'';
    }
    *len = n;
    return true;
}

static void check_split(const uint8_t *data, size_t size)
{
    static struct proc_argv a, again;
    char msg[128];
    enum cred_err e = proc_split((struct sig_slice){data, size}, &a, msg, sizeof(msg));
    CHECK(e == CRED_OK || e == CRED_ERR_INVALID || e == CRED_ERR_TOO_LONG);
    check_msg(msg, sizeof(msg), e == CRED_OK);
    if (e != CRED_OK) {
        CHECK(a.argc == 0 && a.argv[0] == NULL);
        return;
    }
    CHECK(a.argc >= 1 && a.argc <= PROC_MAX_ARGS && a.argv[a.argc] == NULL);
    const char *next = a.mem;
    for (unsigned w = 0; w < a.argc; w++) {
        CHECK(a.argv[w] == next);
        size_t room = (size_t)(a.mem + sizeof(a.mem) - next);
        size_t n = strnlen(next, room);
        CHECK(n < room);
        next += n + 1;
    }
    static uint8_t quoted[PROC_MAX_LINE_BYTES];
    size_t qlen;
    if (!quote_back(&a, quoted, sizeof(quoted), &qlen))
        return;
    CHECK(proc_split((struct sig_slice){quoted, qlen}, &again, msg, sizeof(msg)) == CRED_OK);
    CHECK(again.argc == a.argc);
    for (unsigned w = 0; w < a.argc; w++)
        CHECK(strcmp(a.argv[w], again.argv[w]) == 0);
}

static void check_value(struct sig_slice v, bool may_be_empty)
{
    CHECK(may_be_empty || v.len > 0);
    for (size_t i = 0; i < v.len; i++)
        CHECK(v.ptr[i] >= 0x21 && v.ptr[i] <= 0x7e);
}

static enum cred_err check_parse(const uint8_t *data, size_t size, struct proc_answer *a)
{
    char msg[128];
    enum cred_err e = proc_parse_output(data, size, a, msg, sizeof(msg));
    CHECK(e == CRED_OK || e == CRED_ERR_BAD_ANSWER);
    check_msg(msg, sizeof(msg), e == CRED_OK);
    if (e != CRED_OK) {
        CHECK(a->creds == NULL);
        return e;
    }
    struct sig_credentials v = cred_view(a->creds);
    check_value(v.access_key_id, false);
    check_value(v.secret_access_key, false);
    check_value(v.session_token, true);
    CHECK(a->expiration >= 0 && a->expiration <= MAX_TIME);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_split(data, size);
    struct proc_answer a, again;
    if (check_parse(data, size, &a) == CRED_OK) {
        CHECK(check_parse(data, size, &again) == CRED_OK);
        struct sig_credentials v = cred_view(a.creds), w = cred_view(again.creds);
        CHECK(sig_slice_eq(v.access_key_id, w.access_key_id));
        CHECK(sig_slice_eq(v.secret_access_key, w.secret_access_key));
        CHECK(sig_slice_eq(v.session_token, w.session_token));
        CHECK(a.expiration == again.expiration);
        cred_unref(again.creds);
        cred_unref(a.creds);
    }
    return 0;
}
