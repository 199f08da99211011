/* process_test.c: credential_process's pure part: the command line's words (shlex.split's
 * rules; tests/differential/test_process_diff.py compares with Python's shlex) and the
 * program's JSON output (compared with botocore's ProcessProvider in the same file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "process.h"

static struct sig_slice cstr(const char *s)
{
    return sig_slice_from_cstr(s);
}

static bool contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* ---- the command line ---- */

static struct proc_argv words;

/* Splits `line` and checks the words against the NULL-terminated list that follows. */
static void expect_words(const char *line, ...)
{
    char msg[128];
    assert_int_equal(proc_split(cstr(line), &words, msg, sizeof(msg)), CRED_OK);
    assert_string_equal(msg, "");
    va_list ap;
    va_start(ap, line);
    unsigned n = 0;
    for (const char *w = va_arg(ap, const char *); w != NULL; w = va_arg(ap, const char *)) {
        assert_true(n < words.argc);
        assert_string_equal(words.argv[n], w);
        n++;
    }
    va_end(ap);
    assert_int_equal(words.argc, n);
    assert_null(words.argv[n]);
}

static void expect_split_error(struct sig_slice line, enum cred_err want, const char *why)
{
    char msg[128];
    assert_int_equal(proc_split(line, &words, msg, sizeof(msg)), want);
    assert_true(contains(msg, why));
    assert_int_equal(words.argc, 0);
    assert_null(words.argv[0]);
}

static void test_split_words(void **state)
{
    (void)state;
    expect_words("/opt/bin/get-creds", "/opt/bin/get-creds", NULL);
    expect_words("  get-creds   --profile  x  ", "get-creds", "--profile", "x", NULL);
    /* shlex's white space is space, tab, CR and LF only. */
    expect_words("a\tb\nc\rd", "a", "b", "c", "d", NULL);
    expect_words("a\vb\fc", "a\vb\fc", NULL);
    /* No comments, variables, globs or operators. */
    expect_words("a #b $HOME *.txt | x; y", "a", "#b", "$HOME", "*.txt", "|", "x;", "y", NULL);
}

static void test_split_quotes(void **state)
{
    (void)state;
    expect_words("'a b' \"c d\"", "a b", "c d", NULL);
    expect_words("'a\\b' '\"'", "a\\b", "\"", NULL);
    expect_words("\"'\"", "'", NULL);
    /* Adjacent parts join. */
    expect_words("a'b'c\"d\"e f", "abcde", "f", NULL);
    expect_words("'it'\\''s'", "it's", NULL);
    /* Quotes alone make a word, empty or not. */
    expect_words("''", "", NULL);
    expect_words("a '' \"\" b", "a", "", "", "b", NULL);
    expect_words("x''", "x", NULL);
    expect_words("'a\nb'", "a\nb", NULL);
}

static void test_split_escapes(void **state)
{
    (void)state;
    /* Outside quotes a backslash takes the next byte, white space and newline included. */
    expect_words("a\\ b c\\\\d \\'e\\\" f\\\ng", "a b", "c\\d", "'e\"", "f\ng", NULL);
    /* In double quotes only \" and \\ are escapes (shlex, not a POSIX shell). */
    expect_words("\"a\\\"b\\\\c\"", "a\"b\\c", NULL);
    expect_words("\"\\$ \\` \\n \\\n\"", "\\$ \\` \\n \\\n", NULL);
}

static void test_split_errors(void **state)
{
    (void)state;
    expect_split_error(cstr("get-creds 'abc"), CRED_ERR_INVALID, "unterminated single quote");
    expect_split_error(cstr("get-creds \"abc"), CRED_ERR_INVALID, "unterminated double quote");
    expect_split_error(cstr("\"abc\\"), CRED_ERR_INVALID, "unterminated double quote");
    expect_split_error(cstr("get-creds \\"), CRED_ERR_INVALID, "ends with a backslash");
    expect_split_error(cstr(""), CRED_ERR_INVALID, "empty");
    expect_split_error(cstr(" \t\r\n "), CRED_ERR_INVALID, "empty");
    expect_split_error(SIG_SLICE_LIT("get-creds a\0b"), CRED_ERR_INVALID, "NUL");
    expect_split_error(SIG_SLICE_LIT("'\0'"), CRED_ERR_INVALID, "NUL");

    /* A secret on the command line never reaches the message. */
    char msg[256];
    assert_int_equal(
        proc_split(cstr("get-creds --secret=SECRETVALUE 'unterminated"), &words, msg, sizeof(msg)),
        CRED_ERR_INVALID);
    assert_false(contains(msg, "SECRET"));
    assert_false(contains(msg, "unterminated'"));
    for (size_t i = 0; i < sizeof(words.mem); i++)
        assert_false(words.mem[i] == 'S' && words.mem[i + 1] == 'E' && words.mem[i + 2] == 'C');
    /* A NULL message is allowed. */
    assert_int_equal(proc_split(cstr("'x"), &words, NULL, 0), CRED_ERR_INVALID);
}

static void test_split_limits(void **state)
{
    (void)state;
    static char line[PROC_MAX_LINE_BYTES + 2];
    /* One word as long as the line may be: it and its NUL fill `mem`. */
    memset(line, 'a', PROC_MAX_LINE_BYTES);
    line[PROC_MAX_LINE_BYTES] = '\0';
    char msg[128];
    assert_int_equal(proc_split(cstr(line), &words, msg, sizeof(msg)), CRED_OK);
    assert_int_equal(words.argc, 1);
    assert_int_equal(strlen(words.argv[0]), PROC_MAX_LINE_BYTES);
    line[PROC_MAX_LINE_BYTES] = 'a';
    line[PROC_MAX_LINE_BYTES + 1] = '\0';
    expect_split_error(cstr(line), CRED_ERR_TOO_LONG, "over 4096 bytes");

    /* PROC_MAX_ARGS words, then one more. */
    size_t n = 0;
    for (unsigned i = 0; i < PROC_MAX_ARGS; i++) {
        line[n++] = 'w';
        line[n++] = ' ';
    }
    line[n] = '\0';
    assert_int_equal(proc_split(cstr(line), &words, msg, sizeof(msg)), CRED_OK);
    assert_int_equal(words.argc, PROC_MAX_ARGS);
    assert_null(words.argv[PROC_MAX_ARGS]);
    line[n++] = '\'';
    line[n++] = '\'';
    line[n] = '\0';
    expect_split_error(cstr(line), CRED_ERR_TOO_LONG, "over 64 words");

    /* Empty words use only their NUL: the most words a line can give still fit. */
    n = 0;
    for (unsigned i = 0; i < PROC_MAX_ARGS; i++) {
        line[n++] = '\'';
        line[n++] = '\'';
        line[n++] = '\t';
    }
    line[n] = '\0';
    assert_int_equal(proc_split(cstr(line), &words, msg, sizeof(msg)), CRED_OK);
    assert_int_equal(words.argc, PROC_MAX_ARGS);
    for (unsigned i = 0; i < PROC_MAX_ARGS; i++)
        assert_string_equal(words.argv[i], "");
}

/* ---- the output ---- */

#define AKID "\"AccessKeyId\": \"AKIDEXAMPLE\""
#define SECRET_VALUE "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SECRET "\"SecretAccessKey\": \"" SECRET_VALUE "\""
#define TOKEN_VALUE "IQoJb3JpZ2luX2VjEXAMPLE/+="
#define TOKEN "\"SessionToken\": \"" TOKEN_VALUE "\""
#define EXPIRATION "\"Expiration\": \"2026-11-29T08:00:00Z\""
#define V1 "\"Version\": 1"
#define EXPIRATION_S 1795939200 /* 2026-11-29T08:00:00Z */

static enum cred_err parse(const char *doc, struct proc_answer *ans, char *msg, size_t cap)
{
    return proc_parse_output((const uint8_t *)doc, strlen(doc), ans, msg, cap);
}

static void expect_creds(const char *doc, const char *akid, const char *secret, const char *token,
                         int64_t expiration)
{
    struct proc_answer ans;
    char msg[256];
    assert_int_equal(parse(doc, &ans, msg, sizeof(msg)), CRED_OK);
    assert_string_equal(msg, "");
    assert_non_null(ans.creds);
    struct sig_credentials v = cred_view(ans.creds);
    assert_true(sig_slice_eq(v.access_key_id, cstr(akid)));
    assert_true(sig_slice_eq(v.secret_access_key, cstr(secret)));
    assert_true(sig_slice_eq(v.session_token, cstr(token)));
    assert_int_equal(ans.expiration, expiration);
    cred_unref(ans.creds);
}

/* Refused with a message that contains `why` and none of the values. */
static void expect_refused_len(const char *doc, size_t len, const char *why)
{
    struct proc_answer ans;
    char msg[256];
    assert_int_equal(proc_parse_output((const uint8_t *)doc, len, &ans, msg, sizeof(msg)),
                     CRED_ERR_BAD_ANSWER);
    assert_null(ans.creds);
    if (!contains(msg, why))
        fail_msg("message \"%s\" does not say \"%s\"", msg, why);
    assert_false(contains(msg, "EXAMPLE"));
    assert_false(contains(msg, "\n"));
}

static void expect_refused(const char *doc, const char *why)
{
    expect_refused_len(doc, strlen(doc), why);
}

static void test_output_full(void **state)
{
    (void)state;
    expect_creds("{" V1 ", " AKID ", " SECRET ", " TOKEN ", " EXPIRATION "}", "AKIDEXAMPLE",
                 SECRET_VALUE, TOKEN_VALUE, EXPIRATION_S);
    /* Any order, JSON's white space anywhere between tokens, fractional seconds. */
    expect_creds("\n\t{\r\n\t\"Expiration\"\n:\t\"2026-11-29T08:00:00.999Z\" ,\n" TOKEN
                 ",\n\t" SECRET "\t,\n" AKID "\n,\n\t\"Version\"\n:\n1\n}\n\n",
                 "AKIDEXAMPLE", SECRET_VALUE, TOKEN_VALUE, EXPIRATION_S);
    /* Compact, with JSON escapes. */
    expect_creds(
        "{\"Version\":1,\"AccessKeyId\":\"A\\u0042\\/C\",\"SecretAccessKey\":\"\\\"\\\\\"}", "AB/C",
        "\"\\", "", 0);
}

static void test_output_optional_fields(void **state)
{
    (void)state;
    expect_creds("{" V1 ", " AKID ", " SECRET "}", "AKIDEXAMPLE", SECRET_VALUE, "", 0);
    expect_creds("{" V1 ", " AKID ", " SECRET ", " TOKEN "}", "AKIDEXAMPLE", SECRET_VALUE,
                 TOKEN_VALUE, 0);
    expect_creds("{" V1 ", " AKID ", " SECRET ", " EXPIRATION "}", "AKIDEXAMPLE", SECRET_VALUE, "",
                 EXPIRATION_S);
    /* null is absent; an empty token is no token (botocore sends none either). */
    expect_creds("{" V1 ", " AKID ", " SECRET ", \"SessionToken\": null, \"Expiration\": null}",
                 "AKIDEXAMPLE", SECRET_VALUE, "", 0);
    expect_creds("{" V1 ", " AKID ", " SECRET ", \"SessionToken\": \"\"}", "AKIDEXAMPLE",
                 SECRET_VALUE, "", 0);
    /* Other keys are ignored, whatever their values. */
    expect_creds("{" V1 ", " AKID ", " SECRET ", \"Extra\": {\"a\": [1, -2.5e+3, {\"b\": null}], "
                 "\"c\": [], \"d\": {}}, \"version\": \"2\", \"\": true}",
                 "AKIDEXAMPLE", SECRET_VALUE, "", 0);
}

static void test_output_version(void **state)
{
    (void)state;
    expect_refused("{" AKID ", " SECRET "}", "no Version");
    expect_refused("{\"Version\": 2, " AKID ", " SECRET "}", "Version is not the number 1");
    /* botocore compares with the number 1: the string "1" is refused. */
    expect_refused("{\"Version\": \"1\", " AKID ", " SECRET "}", "Version is not the number 1");
    expect_refused("{\"Version\": 1.0, " AKID ", " SECRET "}", "Version is not the number 1");
    expect_refused("{\"Version\": true, " AKID ", " SECRET "}", "Version is not the number 1");
    expect_refused("{\"Version\": null, " AKID ", " SECRET "}", "Version is not the number 1");
    expect_refused("{\"Version\": [1], " AKID ", " SECRET "}", "Version is not a number");
}

static void test_output_keys(void **state)
{
    (void)state;
    expect_refused("{" V1 ", " SECRET "}", "no AccessKeyId");
    expect_refused("{" V1 ", " AKID "}", "no SecretAccessKey");
    expect_refused("{" V1 ", \"AccessKeyId\": \"\", " SECRET "}", "AccessKeyId is empty");
    expect_refused("{" V1 ", " AKID ", \"SecretAccessKey\": \"\"}", "SecretAccessKey is empty");
    expect_refused("{" V1 ", \"AccessKeyId\": 12, " SECRET "}", "AccessKeyId is not a string");
    expect_refused("{" V1 ", \"AccessKeyId\": null, " SECRET "}", "AccessKeyId is not a string");
    expect_refused("{" V1 ", " AKID ", \"SecretAccessKey\": [\"x\"]}",
                   "SecretAccessKey is not a string");
    expect_refused("{" V1 ", " AKID ", \"SecretAccessKey\": {}}",
                   "SecretAccessKey is not a string");
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"SessionToken\": 5}",
                   "SessionToken is not a string");
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"SessionToken\": false}",
                   "SessionToken is not a string");
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"Expiration\": 1795939200}",
                   "Expiration is not a string");
    /* Header-safe values: no space, control character or non-ASCII byte. */
    expect_refused("{" V1 ", \"AccessKeyId\": \"AKID EXAMPLE\", " SECRET "}",
                   "AccessKeyId has a byte outside printable ASCII");
    expect_refused("{" V1 ", " AKID ", \"SecretAccessKey\": \"EXAMPLE\\r\\nX: y\"}",
                   "SecretAccessKey has a byte outside printable ASCII");
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"SessionToken\": \"EXAMPLE\\u00e9\"}",
                   "SessionToken has a byte outside printable ASCII");
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"SessionToken\": \"EXAMPLE\\u0000\"}",
                   "SessionToken has a byte outside printable ASCII");
}

static void test_output_duplicates(void **state)
{
    (void)state;
    expect_refused("{" V1 ", " AKID ", " SECRET ", " AKID "}", "duplicate key");
    expect_refused("{" V1 ", " AKID ", " SECRET ", " V1 "}", "duplicate key");
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"x\": 1, \"x\": 2}", "duplicate key");
    /* The same key written with an escape is the same key (json.loads decodes it too). */
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"\\u0041ccessKeyId\": \"B\"}", "duplicate key");
    /* Keys of nested objects are not the top level's. */
    expect_creds("{" V1 ", " AKID ", " SECRET ", \"x\": {\"AccessKeyId\": 1}}", "AKIDEXAMPLE",
                 SECRET_VALUE, "", 0);
}

static void test_output_not_json(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "  \n",
        "[1, 2]",
        "\"text\"",
        "1",
        "null",
        "{" V1 ", " AKID ", " SECRET "} trailing",
        "{" V1 ", " AKID ", " SECRET "}\n{" V1 "}",
        "{" V1 ", " AKID ", " SECRET "}\n---\n",
        "---\n{" V1 ", " AKID ", " SECRET "}",
        "{" V1 ", " AKID ", " SECRET "}\n...\n",
        "%YAML 1.1\n---\n{" V1 ", " AKID ", " SECRET "}",
        "\xef\xbb\xbf{" V1 ", " AKID ", " SECRET "}",
        "{" V1 ", " AKID ", " SECRET ",}",
        "{" V1 ", " AKID ", " SECRET " # comment\n}",
        "{Version: 1, " AKID ", " SECRET "}",
        "{'Version': 1, " AKID ", " SECRET "}",
        "{" V1 ", \"AccessKeyId\": 'AKIDEXAMPLE', " SECRET "}",
        "{" V1 ", \"AccessKeyId\": AKIDEXAMPLE, " SECRET "}",
        "{" V1 ", \"AccessKeyId\": \"\\x41EXAMPLE\", " SECRET "}",
        "{" V1 ", \"AccessKeyId\": \"A\tEXAMPLE\", " SECRET "}",
        "{" V1 ", \"AccessKeyId\": \"A\nEXAMPLE\", " SECRET "}",
        "{\"Version\": !!int 1, " AKID ", " SECRET "}",
        "{\"Version\": &v 1, " AKID ", " SECRET ", \"x\": *v}",
        "{" V1 ", " AKID ", " SECRET ", \"x\": 01}",
        "{" V1 ", " AKID ", " SECRET ", \"x\": .5}",
        "{" V1 ", " AKID ", " SECRET ", \"x\": NaN}",
        "{" V1 ", " AKID ", " SECRET ", \"x\": [1,]}",
        "{" V1 ", " AKID ", " SECRET ", \"x\"}",
        "{" V1 ", " AKID ", " SECRET ", \"x\": }",
        "{" V1 ", " AKID ", " SECRET,
        "{" V1 ", " AKID ", " SECRET "}}",
        "Version: 1\nAccessKeyId: AKIDEXAMPLE\nSecretAccessKey: EXAMPLE\n",
        "{? \"Version\" : 1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("case %zu\n", i);
        expect_refused(bad[i], "the output");
    }
    /* A NUL byte inside the output (a C string would stop there). */
    expect_refused_len("{" V1 ", " AKID ", " SECRET "}\0", sizeof("{" V1 ", " AKID ", " SECRET "}"),
                       "not one JSON object");
    /* UTF-8 only. */
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"x\": \"\xff\"}", "not valid JSON");
}

static void test_output_time(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "soon",
        "2026-11-29",
        "2026-11-29T08:00:00",
        "2026-11-29T08:00:00+00:00",
        "2026-13-29T08:00:00Z",
        "2026-11-29 08:00:00Z",
        "2026-11-29T08:00:00ZZ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "{" V1 ", " AKID ", " SECRET ", \"Expiration\": \"%s\"}",
                 bad[i]);
        expect_refused(doc, "Expiration is not an ISO 8601 UTC time");
    }
    /* 0 means "never expires" in the answer: the epoch itself cannot be told apart. */
    expect_refused("{" V1 ", " AKID ", " SECRET ", \"Expiration\": \"1970-01-01T00:00:00Z\"}",
                   "Expiration is the epoch");
    expect_creds("{" V1 ", " AKID ", " SECRET ", \"Expiration\": \"1970-01-01T00:00:01Z\"}",
                 "AKIDEXAMPLE", SECRET_VALUE, "", 1);
    expect_creds("{" V1 ", " AKID ", " SECRET ", \"Expiration\": \"9999-12-31T23:59:59Z\"}",
                 "AKIDEXAMPLE", SECRET_VALUE, "", 253402300799);
}

/* A document of exactly `len` bytes: the credentials, then a long ignored string. */
static char *padded_doc(size_t len)
{
    static const char head[] = "{" V1 ", " AKID ", " SECRET ", \"Pad\": \"";
    char *doc = malloc(len + 1);
    assert_non_null(doc);
    size_t n = sizeof(head) - 1;
    memcpy(doc, head, n);
    memset(doc + n, 'p', len - n - 2);
    doc[len - 2] = '"';
    doc[len - 1] = '}';
    doc[len] = '\0';
    return doc;
}

/* The credentials and "x": `levels` nested arrays. */
static void nested_doc(char *doc, size_t cap, int levels)
{
    int n = snprintf(doc, cap, "{" V1 ", " AKID ", " SECRET ", \"x\": ");
    assert_true(n > 0 && (size_t)n + 2 * (size_t)levels + 2 <= cap);
    for (int i = 0; i < levels; i++)
        doc[n++] = '[';
    for (int i = 0; i < levels; i++)
        doc[n++] = ']';
    doc[n++] = '}';
    doc[n] = '\0';
}

static void test_output_limits(void **state)
{
    (void)state;
    char *doc = padded_doc(PROC_MAX_OUTPUT_BYTES);
    expect_creds(doc, "AKIDEXAMPLE", SECRET_VALUE, "", 0);
    free(doc);
    doc = padded_doc(PROC_MAX_OUTPUT_BYTES + 1);
    expect_refused(doc, "over 65536 bytes");
    free(doc);

    /* A value over CRED_MAX_VALUE. */
    char big[CRED_MAX_VALUE + 200];
    int n = snprintf(big, sizeof(big), "{" V1 ", " AKID ", \"SecretAccessKey\": \"");
    memset(big + n, 'K', CRED_MAX_VALUE + 1);
    snprintf(big + n + CRED_MAX_VALUE + 1, sizeof(big) - (size_t)n - CRED_MAX_VALUE - 1, "\"}");
    expect_refused(big, "SecretAccessKey is over 4096 bytes");
    big[n + CRED_MAX_VALUE] = '"';
    big[n + CRED_MAX_VALUE + 1] = '}';
    big[n + CRED_MAX_VALUE + 2] = '\0';
    struct proc_answer ans;
    assert_int_equal(parse(big, &ans, NULL, 0), CRED_OK);
    assert_int_equal(cred_view(ans.creds).secret_access_key.len, CRED_MAX_VALUE);
    cred_unref(ans.creds);

    /* Nesting: 64 levels (the top object included) parse, 65 do not. */
    char deep[512];
    nested_doc(deep, sizeof(deep), 63);
    expect_creds(deep, "AKIDEXAMPLE", SECRET_VALUE, "", 0);
    nested_doc(deep, sizeof(deep), 64);
    expect_refused(deep, "not one JSON object");

    /* At most 64 keys at the top level. */
    char many[2048];
    n = snprintf(many, sizeof(many), "{" V1 ", " AKID ", " SECRET);
    for (int i = 3; i < 64; i++)
        n += snprintf(many + n, sizeof(many) - (size_t)n, ", \"k%d\": %d", i, i);
    snprintf(many + n, sizeof(many) - (size_t)n, "}");
    expect_creds(many, "AKIDEXAMPLE", SECRET_VALUE, "", 0);
    snprintf(many + n, sizeof(many) - (size_t)n, ", \"k64\": 0}");
    expect_refused(many, "over 64 keys");
}

/* Every refusal of an output that carries the secret and the token: none of their bytes in
 * the message. */
static void test_output_messages_never_hold_values(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"Version\": \"SECRETVERSION\", " AKID ", " SECRET "}",
        "{" V1 ", \"AccessKeyId\": \"SECRET KEYID\", " SECRET "}",
        "{" V1 ", " AKID ", \"SecretAccessKey\": \"SECRET\\tVALUE\"}",
        "{" V1 ", " AKID ", " SECRET ", \"Expiration\": \"SECRETTIME\"}",
        "{" V1 ", " AKID ", " SECRET ", " TOKEN ", \"SessionToken\": \"SECRETDUP\"}",
        "{" V1 ", " AKID ", " SECRET ", \"SECRETKEY\": 1, \"SECRETKEY\": 2}",
        "{" V1 ", " AKID ", " SECRET ", \"SECRETKEY\": SECRETWORD}",
        "{" V1 ", " AKID ", " SECRET "} SECRETTRAIL",
        "{" V1 ", " AKID ", \"SecretAccessKey\": \"SECRET" SECRET_VALUE "\\x41\"}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct proc_answer ans;
        char msg[512];
        assert_int_equal(parse(docs[i], &ans, msg, sizeof(msg)), CRED_ERR_BAD_ANSWER);
        assert_true(msg[0] != '\0');
        assert_false(contains(msg, "SECRET"));
        assert_false(contains(msg, "EXAMPLE"));
        assert_false(contains(msg, "\n"));
    }
    /* A short message buffer is truncated, not overrun. */
    struct proc_answer ans;
    char tiny[8];
    assert_int_equal(parse("{}", &ans, tiny, sizeof(tiny)), CRED_ERR_BAD_ANSWER);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_words),
        cmocka_unit_test(test_split_quotes),
        cmocka_unit_test(test_split_escapes),
        cmocka_unit_test(test_split_errors),
        cmocka_unit_test(test_split_limits),
        cmocka_unit_test(test_output_full),
        cmocka_unit_test(test_output_optional_fields),
        cmocka_unit_test(test_output_version),
        cmocka_unit_test(test_output_keys),
        cmocka_unit_test(test_output_duplicates),
        cmocka_unit_test(test_output_not_json),
        cmocka_unit_test(test_output_time),
        cmocka_unit_test(test_output_limits),
        cmocka_unit_test(test_output_messages_never_hold_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
