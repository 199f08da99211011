/*
 * profile_fuzz: libFuzzer target for the shared config and credentials file parser
 * (providers/profile.c) and cred_from_profile.
 *
 * Input layout: the config file's bytes up to the first NUL, then the credentials file's
 * bytes (everything after that NUL, further NULs included; with no NUL, the credentials file
 * is empty). Both go through prof_set_parse, the in-memory twin of prof_set_load.
 *
 * abort() unless:
 *   - a refused file gets a message that is exactly "<file name> line N: <fixed reason>" (or
 *     the size limit's), so no byte of the input reaches it;
 *   - every property prof_each reports is what prof_find returns for the same key (the same
 *     bytes in the set), keys are non-empty, lowercase and without blanks, values hold no NUL
 *     and section names are printable ASCII;
 *   - for "default", a missing profile and every profile in the files (a few), cred_from_profile
 *     either succeeds with exactly the keys prof_get returns, or fails with a message that is
 *     one of its fixed forms around the profile name (never a value);
 *   - prof_set_free leaves every block it frees wiped.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cred.h"
#include "profile.h"
#include "sig_types.h"

#define MAX_PROFILES 8
#define MSG_BYTES 1024

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* Not instrumented: tracing each byte's comparison would cost most of the run time (the
 * sections array alone is tens of KiB) and tells the fuzzer nothing about the parser. */
__attribute__((no_sanitize("coverage"))) static void check_wiped(const void *ptr, size_t len)
{
    const uint8_t *b = ptr;
    for (size_t i = 0; i < len; i++)
        CHECK(b[i] == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    prof_wipe_observer = check_wiped;
    return 0;
}

static bool starts_with(const char **s, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(*s, prefix, n) != 0)
        return false;
    *s += n;
    return true;
}

static bool skip_digits(const char **s)
{
    const char *start = *s;
    while (**s >= '0' && **s <= '9')
        (*s)++;
    return *s > start;
}

static bool is_one_of(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* A parse error names the file and the line and gives a fixed reason, nothing else. */
static void check_parse_error(const char *err)
{
    static const char *const reasons[] = {
        "a NUL byte",
        "a continuation line before any section header",
        "a continuation line without a property above it",
        "a property before any section header",
        "a property has no name",
        "a section header must end with ']'",
        "a sub-property has no name",
        "expected '=' in a property",
        "expected '=' in a sub-property",
        "longer than 8192 bytes",
        "more than 8192 properties",
        "more than 1024 sections",
    };
    const char *s = err;
    CHECK(starts_with(&s, "config") || starts_with(&s, "credentials"));
    if (starts_with(&s, " is larger than "))
        CHECK(strcmp(s, "1048576 bytes") == 0);
    else
        CHECK(starts_with(&s, " line ") && skip_digits(&s) && starts_with(&s, ": ") &&
              is_one_of(s, reasons, sizeof(reasons) / sizeof(reasons[0])));
}

/* cred_from_profile's messages: fixed text around the profile name. */
static void check_cred_error(const char *msg, struct sig_slice profile, enum cred_err e)
{
    static const char *const tails[] = {
        " is in neither the config nor the credentials file",
        " has no credentials",
        " uses role_arn, which sigv4d does not support yet",
        " uses web_identity_token_file, which sigv4d does not support yet",
        " uses sso_session, which sigv4d does not support yet",
        " uses sso_start_url, which sigv4d does not support yet",
        " uses sso_account_id, which sigv4d does not support yet",
        " uses sso_role_name, which sigv4d does not support yet",
        " uses credential_process, which sigv4d does not support yet",
        " uses credential_source, which sigv4d does not support yet",
        " has aws_secret_access_key but no aws_access_key_id",
        " has aws_access_key_id but no aws_secret_access_key",
    };
    char name[PROF_MAX_NAME + 1];
    size_t n = profile.len > PROF_MAX_NAME ? PROF_MAX_NAME : profile.len;
    memcpy(name, profile.ptr, n);
    name[n] = '\0';
    const char *s = msg;
    CHECK(starts_with(&s, "profile ") && starts_with(&s, name));
    if (starts_with(&s, ": "))
        CHECK(strcmp(s, cred_err_str(e)) == 0);
    else
        CHECK(is_one_of(s, tails, sizeof(tails) / sizeof(tails[0])));
}

static void check_cred(const struct prof_set *set, struct sig_slice profile)
{
    char msg[MSG_BYTES] = "";
    struct cred *c = NULL;
    enum cred_err e = cred_from_profile(set, profile, &c, msg, sizeof(msg));
    if (e != CRED_OK) {
        CHECK(c == NULL);
        CHECK(e >= CRED_ERR_NOT_FOUND && e <= CRED_ERR_FILE_SYNTAX);
        check_cred_error(msg, profile, e);
        return;
    }
    CHECK(c != NULL);
    struct sig_credentials v = cred_view(c);
    CHECK(
        sig_slice_eq(v.access_key_id, prof_get(set, profile, SIG_SLICE_LIT("aws_access_key_id"))));
    CHECK(sig_slice_eq(v.secret_access_key,
                       prof_get(set, profile, SIG_SLICE_LIT("aws_secret_access_key"))));
    CHECK(
        sig_slice_eq(v.session_token, prof_get(set, profile, SIG_SLICE_LIT("aws_session_token"))));
    CHECK(v.access_key_id.len > 0 && v.secret_access_key.len > 0);
    cred_unref(c);
}

struct each_state {
    const struct prof_set *set;
    struct sig_slice profiles[MAX_PROFILES];
    size_t profile_count;
};

static void on_property(enum prof_kind kind, struct sig_slice name, struct sig_slice key,
                        struct sig_slice sub, struct sig_slice value, void *arg)
{
    struct each_state *st = arg;
    CHECK(kind == PROF_KIND_PROFILE || kind == PROF_KIND_SSO_SESSION || kind == PROF_KIND_SERVICES);
    CHECK(name.len > 0);
    for (size_t i = 0; i < name.len; i++)
        CHECK(name.ptr[i] > 0x20 && name.ptr[i] < 0x7f);
    CHECK(key.len > 0);
    for (size_t i = 0; i < key.len; i++)
        CHECK(!(key.ptr[i] >= 'A' && key.ptr[i] <= 'Z') && key.ptr[i] != ' ' && key.ptr[i] != '\t');
    CHECK(value.len == 0 || memchr(value.ptr, '\0', value.len) == NULL);

    /* The lookup finds this very definition. */
    static uint8_t full[2 * 8192 + 2];
    CHECK(key.len + 1 + sub.len <= sizeof(full));
    memcpy(full, key.ptr, key.len);
    size_t n = key.len;
    if (sub.len > 0) {
        full[n++] = '.';
        memcpy(full + n, sub.ptr, sub.len);
        n += sub.len;
    }
    struct sig_slice found;
    CHECK(prof_find(st->set, kind, name, (struct sig_slice){full, n}, &found));
    CHECK(found.ptr == value.ptr && found.len == value.len);

    if (kind != PROF_KIND_PROFILE)
        return;
    CHECK(prof_has_profile(st->set, name));
    for (size_t i = 0; i < st->profile_count; i++)
        if (sig_slice_eq(st->profiles[i], name))
            return;
    if (st->profile_count < MAX_PROFILES)
        st->profiles[st->profile_count++] = name;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t config_len = nul != NULL ? (size_t)(nul - data) : size;
    struct sig_slice config = {data, config_len};
    struct sig_slice credentials = {NULL, 0};
    if (nul != NULL)
        credentials = (struct sig_slice){nul + 1, size - config_len - 1};

    char err[MSG_BYTES] = "";
    struct prof_set *set = NULL;
    enum cred_err e =
        prof_set_parse(config, "config", credentials, "credentials", &set, err, sizeof(err));
    if (e != CRED_OK) {
        CHECK(set == NULL);
        CHECK(e == CRED_ERR_FILE_SYNTAX || e == CRED_ERR_FILE_LIMIT);
        check_parse_error(err);
        return 0;
    }
    CHECK(set != NULL);

    struct each_state st = {.set = set};
    prof_each(set, on_property, &st);
    check_cred(set, SIG_SLICE_LIT("default"));
    check_cred(set, SIG_SLICE_LIT("no-such-profile-in-the-fuzz-corpus"));
    for (size_t i = 0; i < st.profile_count; i++)
        check_cred(set, st.profiles[i]);

    /* Lookups of other kinds and of sub-properties must not fail in any other way. */
    struct sig_slice v;
    (void)prof_find(set, PROF_KIND_SSO_SESSION, SIG_SLICE_LIT("s"), SIG_SLICE_LIT("sso_region"),
                    &v);
    (void)prof_find(set, PROF_KIND_PROFILE, SIG_SLICE_LIT("default"),
                    SIG_SLICE_LIT("s3.addressing_style"), &v);
    (void)prof_has_section(set, PROF_KIND_SERVICES, SIG_SLICE_LIT("default"));
    prof_set_free(set);
    return 0;
}
