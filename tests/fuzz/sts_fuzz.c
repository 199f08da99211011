/*
 * sts_fuzz: libFuzzer target for STS's answer parser and time parser (providers/sts.c).
 *
 * The input goes whole to sts_parse_answer with status 200 and with 403, and to
 * sts_parse_time. abort() unless:
 *   - status 200 gives CRED_OK, CRED_ERR_BAD_ANSWER or CRED_ERR_FETCH (an ErrorResponse), and
 *     any other status never CRED_OK;
 *   - on CRED_OK the key id, secret and token are non-empty printable ASCII without spaces,
 *     the expiration is in 1970..9999, and the error text is empty;
 *   - creds is NULL on every error, and the error text is NUL-terminated within its array,
 *     without control characters, and empty unless the answer was CRED_ERR_FETCH;
 *   - sts_parse_time succeeds only on exactly YYYY-MM-DDTHH:MM:SS[.1-9 digits]Z, with a
 *     result in range that gmtime_r (the C library, a second opinion) formats back into the
 *     same first 19 characters;
 *   - a 200 answer that parses gives the same credentials the second time (no state leaks
 *     between calls).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sts.h"

#include "fuzz_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sts_init();
    return 0;
}

static void check_value(struct sig_slice v)
{
    CHECK(v.len > 0);
    for (size_t i = 0; i < v.len; i++)
        CHECK(v.ptr[i] >= 0x21 && v.ptr[i] <= 0x7e);
}

static void check_text(const char *text, size_t cap, bool may_have_text)
{
    size_t n = strnlen(text, cap);
    CHECK(n < cap);
    CHECK(may_have_text || n == 0);
    for (size_t i = 0; i < n; i++)
        CHECK((uint8_t)text[i] >= 0x20 && (uint8_t)text[i] != 0x7f);
}

static enum cred_err check_answer(int status, const uint8_t *data, size_t size,
                                  struct sts_answer *a)
{
    enum cred_err e = sts_parse_answer(status, data, size, a);
    if (status == 200)
        CHECK(e == CRED_OK || e == CRED_ERR_BAD_ANSWER || e == CRED_ERR_FETCH);
    else
        CHECK(e == CRED_ERR_FETCH);
    check_text(a->error_code, sizeof(a->error_code), e == CRED_ERR_FETCH);
    check_text(a->error_message, sizeof(a->error_message), e == CRED_ERR_FETCH);
    if (e != CRED_OK) {
        CHECK(a->creds == NULL);
        return e;
    }
    struct sig_credentials v = cred_view(a->creds);
    check_value(v.access_key_id);
    check_value(v.secret_access_key);
    check_value(v.session_token);
    CHECK(a->expiration >= 0 && a->expiration <= MAX_TIME);
    return e;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* The shape alone, independently of sts.c: digits where digits go, the separators, an
 * optional fraction of 1..9 digits, the Z. */
static bool time_shape(const uint8_t *s, size_t n)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
    if (n < 20)
        return false;
    for (size_t i = 0; i < 19; i++) {
        if (pattern[i] == 'd' ? !is_digit(s[i]) : s[i] != (uint8_t)pattern[i])
            return false;
    }
    size_t i = 19;
    if (s[i] == '.') {
        size_t digits = 0;
        while (i + 1 + digits < n && is_digit(s[i + 1 + digits]))
            digits++;
        if (digits == 0 || digits > 9)
            return false;
        i += 1 + digits;
    }
    return i + 1 == n && s[i] == 'Z';
}

static void check_time(const uint8_t *data, size_t size)
{
    int64_t t = -1;
    if (!sts_parse_time((struct sig_slice){data, size}, &t))
        return;
    CHECK(time_shape(data, size));
    CHECK(t >= 0 && t <= MAX_TIME);
    time_t tt = (time_t)t;
    struct tm tm;
    CHECK(gmtime_r(&tt, &tm) != NULL);
    char back[32];
    CHECK(strftime(back, sizeof(back), "%Y-%m-%dT%H:%M:%S", &tm) == 19);
    CHECK(memcmp(back, data, 19) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sts_answer a, again;
    if (check_answer(200, data, size, &a) == CRED_OK) {
        CHECK(check_answer(200, data, size, &again) == CRED_OK);
        struct sig_credentials v = cred_view(a.creds), w = cred_view(again.creds);
        CHECK(sig_slice_eq(v.access_key_id, w.access_key_id));
        CHECK(sig_slice_eq(v.secret_access_key, w.secret_access_key));
        CHECK(sig_slice_eq(v.session_token, w.session_token));
        CHECK(a.expiration == again.expiration);
        cred_unref(again.creds);
        cred_unref(a.creds);
    }
    (void)check_answer(403, data, size, &a);
    check_time(data, size);
    return 0;
}
