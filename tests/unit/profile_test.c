/* profile_test.c: the shared config/credentials file parser (providers/profile.c): locations,
 * every parsing rule in profile.h, the limits, error messages (file and line, never a value),
 * wipe-on-free, and the static credentials of a profile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "profile.h"

static char err[512];

static struct prof_set *parse2(const char *config, const char *credentials)
{
    struct prof_set *set = NULL;
    err[0] = '\0';
    enum cred_err e =
        prof_set_parse(sig_slice_from_cstr(config), "cfg", sig_slice_from_cstr(credentials),
                       "creds", &set, err, sizeof(err));
    if (e != CRED_OK)
        fail_msg("parse failed (%d): %s", (int)e, err);
    return set;
}

static struct prof_set *parse(const char *config)
{
    return parse2(config, "");
}

/* Expects a parse error with this code; returns the message. */
static const char *parse_error(const char *config, const char *credentials, enum cred_err code)
{
    struct prof_set *set = NULL;
    err[0] = '\0';
    enum cred_err e =
        prof_set_parse(sig_slice_from_cstr(config), "cfg", sig_slice_from_cstr(credentials),
                       "creds", &set, err, sizeof(err));
    assert_int_equal(e, code);
    assert_null(set);
    return err;
}

/* The value as a C string, or "<absent>". */
static const char *get_in(const struct prof_set *set, enum prof_kind kind, const char *name,
                          const char *key)
{
    static char buf[4096];
    struct sig_slice v;
    if (!prof_find(set, kind, sig_slice_from_cstr(name), sig_slice_from_cstr(key), &v))
        return "<absent>";
    assert_true(v.len < sizeof(buf));
    if (v.len)
        memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    return buf;
}

static const char *get(const struct prof_set *set, const char *profile, const char *key)
{
    return get_in(set, PROF_KIND_PROFILE, profile, key);
}

static bool has(const struct prof_set *set, const char *profile)
{
    return prof_has_profile(set, sig_slice_from_cstr(profile));
}

/* ---- locations ---- */

static void test_paths_defaults_and_overrides(void **state)
{
    (void)state;
    struct prof_paths p;
    assert_int_equal(prof_paths_resolve(NULL, NULL, NULL, "/home/u", &p), CRED_OK);
    assert_string_equal(p.config, "/home/u/.aws/config");
    assert_string_equal(p.credentials, "/home/u/.aws/credentials");
    assert_string_equal(p.profile, "default");
    assert_false(p.profile_from_env);

    /* Empty values count as unset. */
    assert_int_equal(prof_paths_resolve("", "", "", "/home/u", &p), CRED_OK);
    assert_string_equal(p.config, "/home/u/.aws/config");
    assert_string_equal(p.profile, "default");

    assert_int_equal(prof_paths_resolve("/etc/c", "rel/creds", "dev", "/home/u", &p), CRED_OK);
    assert_string_equal(p.config, "/etc/c");
    assert_string_equal(p.credentials, "rel/creds");
    assert_string_equal(p.profile, "dev");
    assert_true(p.profile_from_env);

    /* "~" and "~/" expand to HOME; "~user" and a "~" elsewhere stay literal. */
    assert_int_equal(prof_paths_resolve("~/x/config", "~", NULL, "/h", &p), CRED_OK);
    assert_string_equal(p.config, "/h/x/config");
    assert_string_equal(p.credentials, "/h");
    assert_int_equal(prof_paths_resolve("~bob/c", "/a/~/b", NULL, "/h", &p), CRED_OK);
    assert_string_equal(p.config, "~bob/c");
    assert_string_equal(p.credentials, "/a/~/b");

    /* Without HOME there is no default location. */
    assert_int_equal(prof_paths_resolve(NULL, "/x/creds", NULL, NULL, &p), CRED_OK);
    assert_string_equal(p.config, "");
    assert_string_equal(p.credentials, "/x/creds");
}

static void test_paths_too_long(void **state)
{
    (void)state;
    static char long_path[PROF_MAX_PATH + 8];
    memset(long_path, 'a', sizeof(long_path) - 1);
    struct prof_paths p;
    assert_int_equal(prof_paths_resolve(long_path, NULL, NULL, "/h", &p), CRED_ERR_TOO_LONG);
    /* HOME + "/.aws/config" must fit too. */
    long_path[PROF_MAX_PATH - 5] = '\0';
    assert_int_equal(prof_paths_resolve(NULL, NULL, NULL, long_path, &p), CRED_ERR_TOO_LONG);
    static char long_name[PROF_MAX_NAME + 1];
    memset(long_name, 'p', sizeof(long_name) - 1);
    assert_int_equal(prof_paths_resolve(NULL, NULL, long_name, "/h", &p), CRED_ERR_TOO_LONG);
}

/* ---- sections ---- */

static void test_sections_config_file(void **state)
{
    (void)state;
    struct prof_set *s = parse("[default]\na = 1\n"
                               "[profile dev]\na = 2\n"
                               "[profile\tTabbed]\na = 3\n"
                               "[  profile  spaced  ]\na = 4\n"
                               "[plain]\na = 5\n"      /* no "profile ": ignored */
                               "[profilefoo]\na = 6\n" /* not "profile " + name */
                               "[profile two words]\na = 7\n"
                               "[profile q\"x]\na = 8\n"
                               "[profile a.b@c-d_e/f+g:h%i]\na = 9\n");
    assert_string_equal(get(s, "default", "a"), "1");
    assert_string_equal(get(s, "dev", "a"), "2");
    assert_string_equal(get(s, "Tabbed", "a"), "3");
    assert_string_equal(get(s, "spaced", "a"), "4");
    assert_false(has(s, "plain"));
    assert_false(has(s, "profilefoo"));
    assert_false(has(s, "foo"));
    assert_false(has(s, "two words"));
    assert_false(has(s, "q\"x"));
    assert_string_equal(get(s, "a.b@c-d_e/f+g:h%i", "a"), "9");
    /* Profile names are case-sensitive. */
    assert_false(has(s, "DEV"));
    assert_string_equal(get(s, "dev", "A"), "<absent>"); /* lookups take lowercase keys */
    prof_set_free(s);
}

static void test_sections_credentials_file(void **state)
{
    (void)state;
    struct prof_set *s = parse2("", "[default]\nk = 1\n[dev]\nk = 2\n[profile x]\nk = 3\n"
                                    "[ padded ]\nk = 4\n");
    assert_string_equal(get(s, "default", "k"), "1");
    assert_string_equal(get(s, "dev", "k"), "2");
    assert_false(has(s, "x"));
    assert_false(has(s, "profile x"));
    assert_string_equal(get(s, "padded", "k"), "4");
    prof_set_free(s);
}

static void test_empty_profiles_exist(void **state)
{
    (void)state;
    struct prof_set *s = parse2("[profile empty]\n[profile other]", "[creds-only]");
    assert_true(has(s, "empty"));
    assert_true(has(s, "other"));
    assert_true(has(s, "creds-only"));
    assert_false(has(s, "default"));
    prof_set_free(s);
    /* Empty files have no profiles. */
    s = parse2("", "");
    assert_false(has(s, "default"));
    prof_set_free(s);
}

static void test_profile_default_beats_plain_default(void **state)
{
    (void)state;
    struct prof_set *s = parse("[profile default]\na = 1\n[default]\nb = 2\n");
    assert_string_equal(get(s, "default", "a"), "1");
    assert_string_equal(get(s, "default", "b"), "<absent>");
    prof_set_free(s);
    s = parse("[default]\nb = 2\n[profile default]\na = 1\n");
    assert_string_equal(get(s, "default", "a"), "1");
    assert_string_equal(get(s, "default", "b"), "<absent>");
    prof_set_free(s);
}

static void test_sso_session_and_services_sections(void **state)
{
    (void)state;
    struct prof_set *s = parse("[sso-session corp]\nsso_region = eu-west-1\n"
                               "[services api]\ns3 =\n  endpoint_url = http://localhost:9000\n"
                               "[profile p]\nsso_session = corp\nservices = api\n");
    assert_true(prof_has_section(s, PROF_KIND_SSO_SESSION, SIG_SLICE_LIT("corp")));
    assert_true(prof_has_section(s, PROF_KIND_SERVICES, SIG_SLICE_LIT("api")));
    assert_false(prof_has_section(s, PROF_KIND_SSO_SESSION, SIG_SLICE_LIT("api")));
    assert_false(has(s, "corp")); /* not a profile */
    assert_string_equal(get_in(s, PROF_KIND_SSO_SESSION, "corp", "sso_region"), "eu-west-1");
    assert_string_equal(get_in(s, PROF_KIND_SERVICES, "api", "s3.endpoint_url"),
                        "http://localhost:9000");
    assert_string_equal(get(s, "p", "services"), "api");
    prof_set_free(s);
}

/* ---- properties ---- */

static void test_properties_trim_case_and_equals(void **state)
{
    (void)state;
    struct prof_set *s = parse("[profile p]\n"
                               "name \t=  \tvalue \t\n"
                               "AWS_Access_Key_ID = AKIDMixedCase\n"
                               "b64=aGVsbG8=\n"
                               "empty =\n"
                               "url = https://x/?a=b&c=d\n");
    assert_string_equal(get(s, "p", "name"), "value");
    /* Keys are case-insensitive (lowercased); values keep their case. */
    assert_string_equal(get(s, "p", "aws_access_key_id"), "AKIDMixedCase");
    assert_string_equal(get(s, "p", "b64"), "aGVsbG8=");
    assert_string_equal(get(s, "p", "empty"), "");
    assert_string_equal(get(s, "p", "url"), "https://x/?a=b&c=d");
    assert_string_equal(get(s, "p", "missing"), "<absent>");
    /* prof_get gives the empty slice for an absent key. */
    assert_int_equal(prof_get(s, SIG_SLICE_LIT("p"), SIG_SLICE_LIT("missing")).len, 0);
    prof_set_free(s);
}

static void test_invalid_property_names_are_ignored(void **state)
{
    (void)state;
    struct prof_set *s = parse("[profile p]\nin valid = x\nok = y\n");
    assert_string_equal(get(s, "p", "in valid"), "<absent>");
    assert_string_equal(get(s, "p", "ok"), "y");
    prof_set_free(s);
}

static void test_comments(void **state)
{
    (void)state;
    struct prof_set *s = parse("# full line\n"
                               "; full line\n"
                               "[profile p] # after the header\n"
                               "   # indented comment line\n"
                               "a = value # inline\n"
                               "b = value ; inline\n"
                               "c = value#adjacent\n"
                               "d = value;adjacent\n"
                               "e = value\t# after a tab\n"
                               "f = ;\n"
                               "[profile q]; adjacent to the header\n"
                               "g = 1\n"
                               "[profile r]# adjacent\n"
                               "h = 2\n");
    assert_string_equal(get(s, "p", "a"), "value");
    assert_string_equal(get(s, "p", "b"), "value");
    assert_string_equal(get(s, "p", "c"), "value#adjacent");
    assert_string_equal(get(s, "p", "d"), "value;adjacent");
    assert_string_equal(get(s, "p", "e"), "value");
    assert_string_equal(get(s, "p", "f"), "");
    assert_string_equal(get(s, "q", "g"), "1");
    assert_string_equal(get(s, "r", "h"), "2");
    prof_set_free(s);
}

static void test_continuations(void **state)
{
    (void)state;
    struct prof_set *s = parse("[profile p]\r\n"
                               "a = value\r\n"
                               " -continued\r\n"
                               "\t \t-and-continued \t\r\n"
                               "   # a comment line in between\r\n"
                               "  -kept # not a comment here ; nor here\r\n"
                               "b = value # inline\n"
                               "  more\n"
                               "c = last");
    assert_string_equal(get(s, "p", "a"),
                        "value\n-continued\n-and-continued\n-kept # not a comment here ; nor here");
    assert_string_equal(get(s, "p", "b"), "value\nmore");
    assert_string_equal(get(s, "p", "c"), "last");
    prof_set_free(s);
}

static void test_sub_properties(void **state)
{
    (void)state;
    struct prof_set *s = parse("[default]\n"
                               "s3 =\n"
                               "  addressing_style = path\n"
                               "\n"
                               "  Max_Concurrent = 4\n"
                               "  empty =\n"
                               "  weird = a = b # kept\n"
                               "region = us-west-2\n");
    assert_string_equal(get(s, "default", "s3"), "");
    assert_string_equal(get(s, "default", "s3.addressing_style"), "path");
    /* Sub-keys keep their case, as botocore keeps them. */
    assert_string_equal(get(s, "default", "s3.Max_Concurrent"), "4");
    assert_string_equal(get(s, "default", "s3.max_concurrent"), "<absent>");
    assert_string_equal(get(s, "default", "s3.empty"), "");
    assert_string_equal(get(s, "default", "s3.weird"), "a = b # kept");
    assert_string_equal(get(s, "default", "region"), "us-west-2");
    assert_string_equal(get(s, "default", "s3."), "<absent>");
    assert_string_equal(get(s, "default", "s3x"), "<absent>");
    prof_set_free(s);
}

static void test_redefined_parent_hides_old_sub_properties(void **state)
{
    (void)state;
    struct prof_set *s = parse("[default]\ns3 =\n  a = 1\ns3 =\n  b = 2\n");
    assert_string_equal(get(s, "default", "s3.a"), "<absent>");
    assert_string_equal(get(s, "default", "s3.b"), "2");
    prof_set_free(s);
    s = parse("[default]\ns3 =\n  a = 1\ns3 = flat\n");
    assert_string_equal(get(s, "default", "s3.a"), "<absent>");
    assert_string_equal(get(s, "default", "s3"), "flat");
    prof_set_free(s);
}

static void test_duplicates_last_wins_and_sections_merge(void **state)
{
    (void)state;
    struct prof_set *s = parse("[profile p]\na = 1\nb = 1\na = 2\n[profile q]\na = q\n"
                               "[profile p]\nb = 3\nc = 3\n");
    assert_string_equal(get(s, "p", "a"), "2");
    assert_string_equal(get(s, "p", "b"), "3");
    assert_string_equal(get(s, "p", "c"), "3");
    assert_string_equal(get(s, "q", "a"), "q");
    prof_set_free(s);
}

static void test_credentials_file_wins_key_by_key(void **state)
{
    (void)state;
    struct prof_set *s =
        parse2("[profile dev]\naws_access_key_id = FROMCONFIG\nregion = eu-west-1\n",
               "[dev]\naws_access_key_id = FROMCREDS\n");
    assert_string_equal(get(s, "dev", "aws_access_key_id"), "FROMCREDS");
    assert_string_equal(get(s, "dev", "region"), "eu-west-1"); /* config-only keys remain */
    prof_set_free(s);
    /* [default] in the credentials file merges with [profile default] in the config file. */
    s = parse2("[profile default]\na = cfg\n[default]\nb = plain\n", "[default]\nsecret = foo\n");
    assert_string_equal(get(s, "default", "a"), "cfg");
    assert_string_equal(get(s, "default", "b"), "<absent>");
    assert_string_equal(get(s, "default", "secret"), "foo");
    prof_set_free(s);
}

struct each_seen {
    int count;
    char lines[16][128];
};

static void on_each(enum prof_kind kind, struct sig_slice name, struct sig_slice key,
                    struct sig_slice sub, struct sig_slice value, void *arg)
{
    struct each_seen *seen = arg;
    assert_true(seen->count < 16);
    snprintf(seen->lines[seen->count++], 128, "%d %.*s %.*s%s%.*s=%.*s", (int)kind, (int)name.len,
             (const char *)name.ptr, (int)key.len, (const char *)key.ptr, sub.len ? "." : "",
             (int)sub.len, (const char *)sub.ptr, (int)value.len, (const char *)value.ptr);
}

static bool seen_line(const struct each_seen *seen, const char *line)
{
    for (int i = 0; i < seen->count; i++)
        if (strcmp(seen->lines[i], line) == 0)
            return true;
    return false;
}

static void test_each_reports_only_values_in_effect(void **state)
{
    (void)state;
    struct prof_set *s = parse2("[profile p]\na = old\na = new\nb = cfg\ns3 =\n  x = 1\n"
                                "[sso-session z]\nr = 1\n",
                                "[p]\nb = creds\n");
    struct each_seen seen = {0};
    prof_each(s, on_each, &seen);
    assert_int_equal(seen.count, 5);
    assert_true(seen_line(&seen, "0 p a=new"));
    assert_true(seen_line(&seen, "0 p b=creds"));
    assert_true(seen_line(&seen, "0 p s3="));
    assert_true(seen_line(&seen, "0 p s3.x=1"));
    assert_true(seen_line(&seen, "1 z r=1"));
    prof_set_free(s);
}

/* ---- errors: file and line, never a value ---- */

static void assert_names_line_without_value(const char *msg, const char *file, const char *line,
                                            const char *secret)
{
    assert_non_null(strstr(msg, file));
    assert_non_null(strstr(msg, line));
    assert_null(strstr(msg, secret));
}

static void test_syntax_errors(void **state)
{
    (void)state;
    const char *m;
    m = parse_error("aws_secret_access_key = SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 1:", "SECRETVALUE");
    m = parse_error("[profile p]\nok = 1\n[profile SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 3:", "SECRETVALUE");
    assert_non_null(strstr(m, "]"));
    m = parse_error("", "[p]\n\nSECRETVALUE\n", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "creds", "line 3:", "SECRETVALUE");
    assert_non_null(strstr(m, "'='"));
    m = parse_error("[p]\nkey : SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX); /* only '=' */
    assert_names_line_without_value(m, "cfg", "line 2:", "SECRETVALUE");
    m = parse_error("[profile p]\n= SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 2:", "SECRETVALUE");
    assert_non_null(strstr(m, "no name"));
    m = parse_error("[profile p]\ns3 =\n  SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 3:", "SECRETVALUE");
    assert_non_null(strstr(m, "sub-property"));
    m = parse_error("[profile p]\ns3 =\n  = SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 3:", "SECRETVALUE");
    m = parse_error("[profile p]\n  -SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 2:", "SECRETVALUE");
    /* A continuation does not carry over a new section header. */
    m = parse_error("[profile p]\na = 1\n[profile p]\n -SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 4:", "SECRETVALUE");
    m = parse_error("  -SECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 1:", "SECRETVALUE");
    /* Lines inside ignored sections are still checked. */
    m = parse_error("[plain]\nSECRETVALUE\n", "", CRED_ERR_FILE_SYNTAX);
    assert_names_line_without_value(m, "cfg", "line 2:", "SECRETVALUE");
}

static void test_nul_byte_is_an_error(void **state)
{
    (void)state;
    static const char bytes[] = "[p]\na = x\0y\n";
    struct prof_set *set = NULL;
    assert_int_equal(prof_set_parse((struct sig_slice){NULL, 0}, "cfg",
                                    (struct sig_slice){(const uint8_t *)bytes, sizeof(bytes) - 1},
                                    "creds", &set, err, sizeof(err)),
                     CRED_ERR_FILE_SYNTAX);
    assert_null(set);
    assert_non_null(strstr(err, "creds line 2:"));
}

static void test_limits(void **state)
{
    (void)state;
    /* Line length: exactly the limit is fine, one more byte is not. */
    size_t n = PROF_MAX_LINE_BYTES + 64;
    char *buf = calloc(1, n + 64);
    assert_non_null(buf);
    int head = snprintf(buf, 64, "[p]\nk = ");
    memset(buf + head, 'v', PROF_MAX_LINE_BYTES - 4);
    struct prof_set *s = parse2("", buf);
    assert_int_equal(prof_get(s, SIG_SLICE_LIT("p"), SIG_SLICE_LIT("k")).len,
                     PROF_MAX_LINE_BYTES - 4);
    prof_set_free(s);
    buf[head + PROF_MAX_LINE_BYTES - 4] = 'v';
    const char *m = parse_error("", buf, CRED_ERR_FILE_LIMIT);
    assert_non_null(strstr(m, "creds line 2:"));
    free(buf);

    /* Section headers per file. */
    size_t cap = (PROF_MAX_SECTIONS + 2) * 8 + 1;
    buf = calloc(1, cap);
    assert_non_null(buf);
    size_t len = 0;
    for (unsigned i = 0; i < PROF_MAX_SECTIONS; i++)
        len += (size_t)snprintf(buf + len, cap - len, "[s%u]\n", i % 1000);
    s = parse2("", buf);
    prof_set_free(s);
    snprintf(buf + len, cap - len, "[x]\n");
    m = parse_error("", buf, CRED_ERR_FILE_LIMIT);
    assert_non_null(strstr(m, "sections"));
    free(buf);

    /* Properties per file. */
    cap = (PROF_MAX_PROPERTIES + 2) * 8 + 16;
    buf = calloc(1, cap);
    assert_non_null(buf);
    len = (size_t)snprintf(buf, cap, "[p]\n");
    for (unsigned i = 0; i < PROF_MAX_PROPERTIES; i++)
        len += (size_t)snprintf(buf + len, cap - len, "k%u=v\n", i % 100);
    s = parse2("", buf);
    prof_set_free(s);
    snprintf(buf + len, cap - len, "k=v\n");
    m = parse_error("", buf, CRED_ERR_FILE_LIMIT);
    assert_non_null(strstr(m, "properties"));
    free(buf);

    /* File size. */
    buf = malloc(PROF_MAX_FILE_BYTES + 1);
    assert_non_null(buf);
    memset(buf, '\n', PROF_MAX_FILE_BYTES + 1);
    struct prof_set *set = NULL;
    assert_int_equal(prof_set_parse((struct sig_slice){(uint8_t *)buf, PROF_MAX_FILE_BYTES + 1},
                                    "big", (struct sig_slice){NULL, 0}, "creds", &set, err,
                                    sizeof(err)),
                     CRED_ERR_FILE_LIMIT);
    assert_null(set);
    assert_non_null(strstr(err, "big"));
    assert_int_equal(prof_set_parse((struct sig_slice){(uint8_t *)buf, PROF_MAX_FILE_BYTES}, "big",
                                    (struct sig_slice){NULL, 0}, "creds", &set, err, sizeof(err)),
                     CRED_OK);
    prof_set_free(set);
    free(buf);
}

/* ---- files on disk ---- */

static char tmpdir[] = "/tmp/profile_test.XXXXXX";

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_load_files(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    char config[512], creds[512], dir[512];
    snprintf(config, sizeof(config), "%s/config", tmpdir);
    snprintf(creds, sizeof(creds), "%s/credentials", tmpdir);
    snprintf(dir, sizeof(dir), "%s/adir", tmpdir);
    static const char c[] = "[profile dev]\nregion = eu-west-3\n";
    static const char k[] = "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = S\n";
    write_file(config, c, sizeof(c) - 1);
    write_file(creds, k, sizeof(k) - 1);

    struct prof_paths p;
    assert_int_equal(prof_paths_resolve(config, creds, "dev", NULL, &p), CRED_OK);
    struct prof_set *s = NULL;
    assert_int_equal(prof_set_load(&p, &s, err, sizeof(err)), CRED_OK);
    assert_string_equal(get(s, "dev", "region"), "eu-west-3");
    assert_string_equal(get(s, "dev", "aws_access_key_id"), "AKIDDEV");
    prof_set_free(s);

    /* Missing files (and a path through a regular file: ENOTDIR) are empty, not errors. */
    char missing[600], notdir[600];
    snprintf(missing, sizeof(missing), "%s/nope", tmpdir);
    snprintf(notdir, sizeof(notdir), "%s/x", config);
    assert_int_equal(prof_paths_resolve(missing, notdir, NULL, NULL, &p), CRED_OK);
    assert_int_equal(prof_set_load(&p, &s, err, sizeof(err)), CRED_OK);
    assert_false(has(s, "default"));
    prof_set_free(s);

    /* A directory is not a regular file. */
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(prof_paths_resolve(dir, NULL, NULL, NULL, &p), CRED_OK);
    assert_int_equal(prof_set_load(&p, &s, err, sizeof(err)), CRED_ERR_FILE_UNREADABLE);
    assert_null(s);
    assert_non_null(strstr(err, dir));

    /* Too large on disk: refused before reading, naming the file. */
    char *big = malloc(PROF_MAX_FILE_BYTES + 1);
    assert_non_null(big);
    memset(big, '#', PROF_MAX_FILE_BYTES + 1);
    write_file(creds, big, PROF_MAX_FILE_BYTES + 1);
    free(big);
    assert_int_equal(prof_paths_resolve(config, creds, NULL, NULL, &p), CRED_OK);
    assert_int_equal(prof_set_load(&p, &s, err, sizeof(err)), CRED_ERR_FILE_LIMIT);
    assert_non_null(strstr(err, creds));

    /* A syntax error names the path and the line. */
    static const char bad[] = "[profile dev]\n\nnot a property\n";
    write_file(config, bad, sizeof(bad) - 1);
    assert_int_equal(prof_paths_resolve(config, missing, NULL, NULL, &p), CRED_OK);
    assert_int_equal(prof_set_load(&p, &s, err, sizeof(err)), CRED_ERR_FILE_SYNTAX);
    char want[600];
    snprintf(want, sizeof(want), "%s line 3:", config);
    assert_non_null(strstr(err, want));

    assert_int_equal(unlink(config), 0);
    assert_int_equal(unlink(creds), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(rmdir(tmpdir), 0);
}

/* ---- wipe on free ---- */

static int wiped_blocks;
static size_t wiped_bytes;

static void check_wiped(const void *ptr, size_t len)
{
    const uint8_t *p = ptr;
    for (size_t i = 0; i < len; i++)
        assert_int_equal(p[i], 0);
    wiped_blocks++;
    wiped_bytes += len;
}

/* A failed assertion inside the observer must not leave it set for the next tests. */
static int reset_observer(void **state)
{
    (void)state;
    prof_wipe_observer = NULL;
    return 0;
}

static void test_free_wipes_every_block(void **state)
{
    (void)state;
    static const char cfg[] = "[profile p]\naws_secret_access_key = SECRET1\n";
    static const char creds[] = "[p]\naws_session_token = TOKEN22\n";
    struct prof_set *s = parse2(cfg, creds);
    wiped_blocks = 0;
    wiped_bytes = 0;
    prof_wipe_observer = check_wiped;
    prof_set_free(s);
    prof_wipe_observer = NULL;
    /* Two files, each: bytes, sections, entries. */
    assert_int_equal(wiped_blocks, 6);
    assert_true(wiped_bytes >= sizeof(cfg) - 1 + sizeof(creds) - 1);
    prof_set_free(NULL);
}

/* ---- static credentials ---- */

static enum cred_err creds_of(const char *config, const char *credentials, const char *profile,
                              struct cred **out)
{
    struct prof_set *s = parse2(config, credentials);
    err[0] = '\0';
    enum cred_err e = cred_from_profile(s, sig_slice_from_cstr(profile), out, err, sizeof(err));
    prof_set_free(s); /* the credentials are copies: they outlive the set */
    return e;
}

static void assert_slice_str(struct sig_slice s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static void test_cred_static_keys(void **state)
{
    (void)state;
    struct cred *c = NULL;
    assert_int_equal(creds_of("[profile dev]\nregion = x\n",
                              "[dev]\naws_access_key_id = AKIDDEV\n"
                              "aws_secret_access_key = SECRETDEV\naws_session_token = TOKDEV\n",
                              "dev", &c),
                     CRED_OK);
    struct sig_credentials v = cred_view(c);
    assert_slice_str(v.access_key_id, "AKIDDEV");
    assert_slice_str(v.secret_access_key, "SECRETDEV");
    assert_slice_str(v.session_token, "TOKDEV");
    cred_unref(c);

    /* From the config file alone, without a token. */
    assert_int_equal(
        creds_of("[default]\naws_access_key_id=A1\naws_secret_access_key=S1\n", "", "default", &c),
        CRED_OK);
    v = cred_view(c);
    assert_slice_str(v.access_key_id, "A1");
    assert_int_equal(v.session_token.len, 0);
    cred_unref(c);

    /* The credentials file wins over the config file. */
    assert_int_equal(creds_of("[default]\naws_access_key_id=CFG\naws_secret_access_key=CFGS\n",
                              "[default]\naws_access_key_id=CRED\naws_secret_access_key=CREDS\n",
                              "default", &c),
                     CRED_OK);
    v = cred_view(c);
    assert_slice_str(v.access_key_id, "CRED");
    assert_slice_str(v.secret_access_key, "CREDS");
    cred_unref(c);

    /* Static keys come before credential_process in the chain. */
    assert_int_equal(creds_of("[profile p]\ncredential_process = /bin/x\n",
                              "[p]\naws_access_key_id=A\naws_secret_access_key=S\n", "p", &c),
                     CRED_OK);
    cred_unref(c);
}

static void test_cred_incomplete_or_missing(void **state)
{
    (void)state;
    struct cred *c = NULL;
    assert_int_equal(creds_of("", "[dev]\naws_access_key_id = AKIDONLY\n", "dev", &c),
                     CRED_ERR_INVALID);
    assert_null(c);
    assert_non_null(strstr(err, "profile dev"));
    assert_non_null(strstr(err, "aws_secret_access_key"));
    assert_null(strstr(err, "AKIDONLY"));
    assert_int_equal(creds_of("", "[dev]\naws_secret_access_key = SECRETONLY\n", "dev", &c),
                     CRED_ERR_INVALID);
    assert_null(strstr(err, "SECRETONLY"));
    assert_non_null(strstr(err, "aws_access_key_id"));

    assert_int_equal(creds_of("[profile dev]\nregion = x\n", "", "dev", &c), CRED_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "profile dev"));
    assert_int_equal(creds_of("[profile dev]\n", "", "other", &c), CRED_ERR_NO_PROFILE);
    assert_non_null(strstr(err, "profile other"));
    /* [NAME] without "profile " in the config file is not a profile. */
    assert_int_equal(
        creds_of("[dev]\naws_access_key_id=A\naws_secret_access_key=S\n", "", "dev", &c),
        CRED_ERR_NO_PROFILE);
    assert_null(c);
}

static void test_cred_unsupported_sources_are_named(void **state)
{
    (void)state;
    static const struct {
        const char *config;
        const char *setting;
    } cases[] = {
        {"[profile p]\ncredential_process = /usr/bin/get-creds --secret\n", "credential_process"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n"
         "aws_access_key_id = A\naws_secret_access_key = S\n",
         "role_arn"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nweb_identity_token_file = /t\n",
         "role_arn"},
        {"[profile p]\nweb_identity_token_file = /t\n", "web_identity_token_file"},
        {"[profile p]\nsso_session = corp\n[sso-session corp]\nsso_region = us-east-1\n",
         "sso_session"},
        {"[profile p]\nsso_start_url = https://x\nsso_account_id = 1\n", "sso_start_url"},
        {"[profile p]\ncredential_source = Ec2InstanceMetadata\n", "credential_source"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cred *c = NULL;
        assert_int_equal(creds_of(cases[i].config, "", "p", &c), CRED_ERR_UNSUPPORTED);
        assert_null(c);
        assert_non_null(strstr(err, "profile p uses "));
        assert_non_null(strstr(err, cases[i].setting));
        assert_non_null(strstr(err, "does not support"));
        assert_null(strstr(err, "get-creds"));
    }
}

/* ---- roles ---- */

static const char role_cfg[] =
    "[profile base]\nregion = us-east-1\n"
    "[profile reader]\nrole_arn = arn:aws:iam::123456789012:role/reader\n"
    "source_profile = base\nrole_session_name = s1\nexternal_id = ext-1\n"
    "duration_seconds = 1800\n"
    "[profile self]\nrole_arn = arn:aws:iam::123456789012:role/self\nsource_profile = self\n"
    "aws_access_key_id = AKIDSELF\naws_secret_access_key = selfsecret\n"
    "[profile env]\nrole_arn = arn:aws:iam::123456789012:role/e\n"
    "credential_source = Environment\n"
    "[profile plain]\naws_access_key_id = A\naws_secret_access_key = S\n";
static const char role_creds[] = "[base]\naws_access_key_id = AKIDBASE\n"
                                 "aws_secret_access_key = basesecret\n";

static enum cred_err role_of(const char *config, const char *profile, struct prof_role *r)
{
    struct prof_set *s = parse2(config, role_creds);
    err[0] = '\0';
    enum cred_err e = prof_role(s, sig_slice_from_cstr(profile), r, err, sizeof(err));
    /* The views die with the set: copy what the test looks at first. */
    static char arn[128], src[64], ext[64], sess[64];
    snprintf(arn, sizeof(arn), "%.*s", (int)r->role_arn.len, (const char *)r->role_arn.ptr);
    snprintf(src, sizeof(src), "%.*s", (int)r->source_profile.len,
             (const char *)r->source_profile.ptr);
    snprintf(ext, sizeof(ext), "%.*s", (int)r->external_id.len, (const char *)r->external_id.ptr);
    snprintf(sess, sizeof(sess), "%.*s", (int)r->session_name.len,
             (const char *)r->session_name.ptr);
    r->role_arn = sig_slice_from_cstr(arn);
    r->source_profile = sig_slice_from_cstr(src);
    r->external_id = sig_slice_from_cstr(ext);
    r->session_name = sig_slice_from_cstr(sess);
    prof_set_free(s);
    return e;
}

static void test_role_profiles(void **state)
{
    (void)state;
    struct prof_role r;
    assert_int_equal(role_of(role_cfg, "reader", &r), CRED_OK);
    assert_slice_str(r.role_arn, "arn:aws:iam::123456789012:role/reader");
    assert_slice_str(r.source_profile, "base");
    assert_false(r.source_environment);
    assert_slice_str(r.external_id, "ext-1");
    assert_slice_str(r.session_name, "s1");
    assert_int_equal(r.duration_s, 1800);

    assert_int_equal(role_of(role_cfg, "self", &r), CRED_OK); /* names itself */
    assert_slice_str(r.source_profile, "self");
    assert_int_equal(r.duration_s, 0); /* absent: the caller's default */

    assert_int_equal(role_of(role_cfg, "env", &r), CRED_OK);
    assert_true(r.source_environment);

    assert_int_equal(role_of(role_cfg, "plain", &r), CRED_ERR_NOT_FOUND); /* no role_arn */
    assert_int_equal(role_of(role_cfg, "nosuch", &r), CRED_ERR_NO_PROFILE);

    /* A profile with its own keys that names itself: those keys sign the call. */
    struct prof_set *s = parse2(role_cfg, role_creds);
    struct cred *c = NULL;
    assert_int_equal(cred_from_profile_keys(s, SIG_SLICE_LIT("self"), &c, err, sizeof(err)),
                     CRED_OK);
    assert_true(sig_slice_eq(cred_view(c).access_key_id, SIG_SLICE_LIT("AKIDSELF")));
    cred_unref(c);
    /* ... while cred_from_profile still refuses to use a role profile's keys directly. */
    assert_int_equal(cred_from_profile(s, SIG_SLICE_LIT("self"), &c, err, sizeof(err)),
                     CRED_ERR_UNSUPPORTED);
    prof_set_free(s);
}

static void test_role_profiles_refused(void **state)
{
    (void)state;
    static const struct {
        const char *config;
        enum cred_err code;
        const char *says;
    } cases[] = {
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\n", CRED_ERR_INVALID,
         "exactly one of source_profile and credential_source"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n"
         "credential_source = Environment\n",
         CRED_ERR_INVALID, "exactly one of"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = EcsContainer\n",
         CRED_ERR_UNSUPPORTED, "credential_source other than Environment"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nweb_identity_token_file = /t\n",
         CRED_ERR_UNSUPPORTED, "web_identity_token_file"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = q\n"
         "[profile q]\nrole_arn = arn:aws:iam::1:role/q\nsource_profile = base\n",
         CRED_ERR_UNSUPPORTED, "chained roles"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = gone\n",
         CRED_ERR_NO_PROFILE, "source_profile gone"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n"
         "duration_seconds = 899\n",
         CRED_ERR_INVALID, "duration_seconds"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n"
         "duration_seconds = 43201\n",
         CRED_ERR_INVALID, "duration_seconds"},
        {"[profile p]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\n"
         "duration_seconds = 1h\n",
         CRED_ERR_INVALID, "duration_seconds"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct prof_role r;
        assert_int_equal(role_of(cases[i].config, "p", &r), cases[i].code);
        if (strstr(err, cases[i].says) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].says);
    }
}

static void test_credential_process_profiles(void **state)
{
    (void)state;
    struct prof_set *s = parse2(
        "[profile tool]\ncredential_process = /opt/get-creds --x \"a b\"\n"
        "[profile keys]\ncredential_process = /opt/get-creds\naws_access_key_id = A\n"
        "aws_secret_access_key = S\n"
        "[profile role]\ncredential_process = /opt/get-creds\nrole_arn = arn:aws:iam::1:role/r\n"
        "source_profile = tool\n"
        "[profile none]\nregion = us-east-1\n",
        "");
    struct sig_slice cmd;
    assert_int_equal(prof_credential_process(s, SIG_SLICE_LIT("tool"), &cmd), CRED_OK);
    assert_slice_str(cmd, "/opt/get-creds --x \"a b\"");
    /* Static keys win; a role comes first; no setting or no profile: not this source. */
    assert_int_equal(prof_credential_process(s, SIG_SLICE_LIT("keys"), &cmd), CRED_ERR_NOT_FOUND);
    assert_int_equal(prof_credential_process(s, SIG_SLICE_LIT("role"), &cmd), CRED_ERR_NOT_FOUND);
    assert_int_equal(prof_credential_process(s, SIG_SLICE_LIT("none"), &cmd), CRED_ERR_NOT_FOUND);
    assert_int_equal(prof_credential_process(s, SIG_SLICE_LIT("gone"), &cmd), CRED_ERR_NOT_FOUND);
    prof_set_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_defaults_and_overrides),
        cmocka_unit_test(test_paths_too_long),
        cmocka_unit_test(test_sections_config_file),
        cmocka_unit_test(test_sections_credentials_file),
        cmocka_unit_test(test_empty_profiles_exist),
        cmocka_unit_test(test_profile_default_beats_plain_default),
        cmocka_unit_test(test_sso_session_and_services_sections),
        cmocka_unit_test(test_properties_trim_case_and_equals),
        cmocka_unit_test(test_invalid_property_names_are_ignored),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_continuations),
        cmocka_unit_test(test_sub_properties),
        cmocka_unit_test(test_redefined_parent_hides_old_sub_properties),
        cmocka_unit_test(test_duplicates_last_wins_and_sections_merge),
        cmocka_unit_test(test_credentials_file_wins_key_by_key),
        cmocka_unit_test(test_each_reports_only_values_in_effect),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_nul_byte_is_an_error),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_load_files),
        cmocka_unit_test_teardown(test_free_wipes_every_block, reset_observer),
        cmocka_unit_test(test_cred_static_keys),
        cmocka_unit_test(test_role_profiles),
        cmocka_unit_test(test_role_profiles_refused),
        cmocka_unit_test(test_credential_process_profiles),
        cmocka_unit_test(test_cred_incomplete_or_missing),
        cmocka_unit_test(test_cred_unsupported_sources_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
