/* sts_test.c: STS AssumeRole's pure part: endpoint hosts, the form body, the signed head's
 * shape (its signature is checked against botocore in tests/differential/test_sts_diff.py),
 * the XML answer (credentials, errors, hostile documents, limits) and the time format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sts.h"

static struct sig_slice cstr(const char *s)
{
    return sig_slice_from_cstr(s);
}

static bool contains(struct sig_slice hay, const char *needle)
{
    struct sig_slice n = cstr(needle);
    for (size_t i = 0; n.len <= hay.len && i <= hay.len - n.len; i++) {
        if (sig_slice_eq((struct sig_slice){hay.ptr + i, n.len}, n))
            return true;
    }
    return false;
}

/* ---- endpoint hosts ---- */

static void test_endpoint_hosts(void **state)
{
    (void)state;
    char host[64];
    assert_int_equal(sts_endpoint_host(cstr("us-east-1"), host, sizeof(host)), CRED_OK);
    assert_string_equal(host, "sts.us-east-1.amazonaws.com");
    assert_int_equal(sts_endpoint_host(cstr("eu-west-3"), host, sizeof(host)), CRED_OK);
    assert_string_equal(host, "sts.eu-west-3.amazonaws.com");
    assert_int_equal(sts_endpoint_host(cstr("cn-north-1"), host, sizeof(host)), CRED_OK);
    assert_string_equal(host, "sts.cn-north-1.amazonaws.com.cn");
    assert_int_equal(sts_endpoint_host(cstr("cn-northwest-1"), host, sizeof(host)), CRED_OK);
    assert_string_equal(host, "sts.cn-northwest-1.amazonaws.com.cn");
    /* "cn" must be the whole first part of the name. */
    assert_int_equal(sts_endpoint_host(cstr("cnx-north-1"), host, sizeof(host)), CRED_OK);
    assert_string_equal(host, "sts.cnx-north-1.amazonaws.com");

    static const char *const bad[] = {"",          "US-EAST-1",      "us_east_1", "us-east-1.",
                                      "evil.com/", "us-east-1\r\nX", "us east 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sts_endpoint_host(cstr(bad[i]), host, sizeof(host)), CRED_ERR_INVALID);
    char label[65];
    memset(label, 'a', 64);
    label[64] = '\0';
    char big[128];
    assert_int_equal(sts_endpoint_host(cstr(label), big, sizeof(big)), CRED_ERR_INVALID);
    label[63] = '\0'; /* 63 is a DNS label's longest */
    assert_int_equal(sts_endpoint_host(cstr(label), big, sizeof(big)), CRED_OK);

    /* "sts.us-east-1.amazonaws.com" is 27 bytes: 28 with the NUL fits, 27 does not. */
    char exact[28];
    assert_int_equal(sts_endpoint_host(cstr("us-east-1"), exact, 28), CRED_OK);
    assert_string_equal(exact, "sts.us-east-1.amazonaws.com");
    assert_int_equal(sts_endpoint_host(cstr("us-east-1"), exact, 27), CRED_ERR_TOO_LONG);
    assert_string_equal(exact, "");
    assert_int_equal(sts_endpoint_host(cstr("us-east-1"), exact, 0), CRED_ERR_TOO_LONG);
}

/* ---- the form body ---- */

static const char ROLE_WITH_PATH[] =
    "arn:aws:iam::123456789012:role/team/ops/Deploy+Bot=1,a.b@c_d-e";

static enum cred_err body_of(const char *arn, const char *session, const char *external_id,
                             uint32_t duration, char *out, size_t cap)
{
    struct sts_assume_role p = {
        .role_arn = cstr(arn),
        .session_name = cstr(session),
        .external_id = cstr(external_id),
        .duration_s = duration,
    };
    struct sig_buf b;
    sig_buf_init(&b, out, cap - 1);
    enum cred_err e = sts_assume_role_body(&p, &b);
    out[b.len] = '\0';
    return e;
}

static void test_body_encoding(void **state)
{
    (void)state;
    char body[2048];
    assert_int_equal(body_of(ROLE_WITH_PATH, "sigv4d@host=1+x", "", 3600, body, sizeof(body)),
                     CRED_OK);
    /* RFC 3986: unreserved kept (A-Z a-z 0-9 - . _ ~), everything else %XX in upper case. */
    assert_string_equal(body, "Action=AssumeRole&Version=2011-06-15"
                              "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fteam%2Fops%2F"
                              "Deploy%2BBot%3D1%2Ca.b%40c_d-e"
                              "&RoleSessionName=sigv4d%40host%3D1%2Bx&DurationSeconds=3600");

    assert_int_equal(
        body_of("arn:aws-cn:iam::000000000001:role/r", "ab", "ext:id/1=+", 900, body, sizeof(body)),
        CRED_OK);
    assert_string_equal(body, "Action=AssumeRole&Version=2011-06-15"
                              "&RoleArn=arn%3Aaws-cn%3Aiam%3A%3A000000000001%3Arole%2Fr"
                              "&RoleSessionName=ab&DurationSeconds=900"
                              "&ExternalId=ext%3Aid%2F1%3D%2B");

    /* Appends after what the buffer holds. */
    char mem[512];
    struct sig_buf b;
    sig_buf_init(&b, mem, sizeof(mem));
    assert_int_equal(sig_buf_append(&b, "X", 1), SIG_OK);
    struct sts_assume_role p = {cstr("arn:aws:iam::123456789012:role/r"), cstr("s1"), {0}, 43200};
    assert_int_equal(sts_assume_role_body(&p, &b), CRED_OK);
    assert_true(sig_slice_eq(sig_buf_slice(&b), cstr("XAction=AssumeRole&Version=2011-06-15"
                                                     "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012"
                                                     "%3Arole%2Fr&RoleSessionName=s1"
                                                     "&DurationSeconds=43200")));
}

static void test_body_full_buffer_is_unchanged(void **state)
{
    (void)state;
    char body[2048];
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "", 3600, body, sizeof(body)), CRED_OK);
    size_t need = sig_slice_from_cstr(body).len;
    char small[2048];
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "", 3600, small, need + 1), CRED_OK);
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "", 3600, small, need), CRED_ERR_TOO_LONG);
    assert_string_equal(small, ""); /* nothing half-written */
}

static void test_body_rejections(void **state)
{
    (void)state;
    char body[4096];
    static const char *const bad_arns[] = {
        "",
        "arn:aws:iam::123456789012:role/",                    /* no name */
        "arn:aws:iam::123456789012:role/a/",                  /* path without a name */
        "arn:aws:iam::12345678901:role/r",                    /* 11 digits */
        "arn:aws:iam::1234567890123:role/r",                  /* 13 digits */
        "arn:aws:iam::12345678901a:role/r",                   /* not a digit */
        "arn:aws:iam:us-east-1:123456789012:role/r",          /* IAM has no region */
        "arn:aws:sts::123456789012:role/r",                   /* wrong service */
        "arn:aws:iam::123456789012:user/r",                   /* not a role */
        "arn::iam::123456789012:role/r",                      /* empty partition */
        "arn:AWS:iam::123456789012:role/r",                   /* partitions are lower case */
        "arn:aws:iam::123456789012:role/a b",                 /* space */
        "arn:aws:iam::123456789012:role/a&RoleSessionName=x", /* form injection */
        "arn:aws:iam::123456789012:role/a\r\n",
        "xarn:aws:iam::123456789012:role/r",
    };
    for (size_t i = 0; i < sizeof(bad_arns) / sizeof(bad_arns[0]); i++) {
        assert_int_equal(body_of(bad_arns[i], "sess", "", 3600, body, sizeof(body)),
                         CRED_ERR_INVALID);
    }
    /* The path and name together: 512 characters at most. */
    char arn[700];
    int n = snprintf(arn, sizeof(arn), "arn:aws:iam::123456789012:role/");
    memset(arn + n, 'r', 512);
    arn[n + 512] = '\0';
    assert_int_equal(body_of(arn, "sess", "", 3600, body, sizeof(body)), CRED_OK);
    arn[n + 512] = 'r';
    arn[n + 513] = '\0';
    assert_int_equal(body_of(arn, "sess", "", 3600, body, sizeof(body)), CRED_ERR_INVALID);

    /* Session names: 2..64 of [A-Za-z0-9+=,.@_-]. */
    static const char *const bad_sessions[] = {"", "a", "a b", "a/b", "a:b", "a&b", "é1", "a~b"};
    for (size_t i = 0; i < sizeof(bad_sessions) / sizeof(bad_sessions[0]); i++) {
        assert_false(sts_session_name_valid(cstr(bad_sessions[i])));
        assert_int_equal(body_of(ROLE_WITH_PATH, bad_sessions[i], "", 3600, body, sizeof(body)),
                         CRED_ERR_INVALID);
    }
    char name[66];
    memset(name, 'n', 65);
    name[64] = '\0';
    assert_true(sts_session_name_valid(cstr(name)));
    name[64] = 'n';
    name[65] = '\0';
    assert_false(sts_session_name_valid(cstr(name)));
    assert_true(sts_session_name_valid(cstr("Az09+=,.@_-")));

    /* Durations: 900..43200 seconds. */
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "", 899, body, sizeof(body)),
                     CRED_ERR_INVALID);
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "", 900, body, sizeof(body)), CRED_OK);
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "", 43200, body, sizeof(body)), CRED_OK);
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "", 43201, body, sizeof(body)),
                     CRED_ERR_INVALID);
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "", 0, body, sizeof(body)), CRED_ERR_INVALID);

    /* External ids: 2..1224 of [A-Za-z0-9_+=,.@:/-]. */
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "x", 900, body, sizeof(body)),
                     CRED_ERR_INVALID);
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "a b", 900, body, sizeof(body)),
                     CRED_ERR_INVALID);
    assert_int_equal(body_of(ROLE_WITH_PATH, "sess", "a&b", 900, body, sizeof(body)),
                     CRED_ERR_INVALID);
}

/* ---- the signed head ---- */

static const struct sig_credentials BASE = {
    SIG_SLICE_LIT("AKIDEXAMPLE"),
    SIG_SLICE_LIT("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    SIG_SLICE_LIT("BASETOKEN/abc+def=="),
};

struct signed_head {
    uint8_t ws_mem[16384];
    struct sig_workspace ws;
    char mem[STS_MAX_HEAD_BYTES];
    struct sig_buf head;
};

static enum cred_err sign(struct signed_head *s, const char *host, const char *region,
                          const char *body, const struct sig_credentials *base, size_t cap)
{
    sig_workspace_init(&s->ws, s->ws_mem, sizeof(s->ws_mem));
    sig_buf_init(&s->head, s->mem, cap);
    enum cred_err e =
        sts_sign_request(cstr(host), cstr(region), cstr(body), 1795939200, base, &s->ws, &s->head);
    sig_workspace_cleanup(&s->ws);
    return e;
}

/* The usual endpoint and region. */
static enum cred_err sign_us(struct signed_head *s, const char *body,
                             const struct sig_credentials *base, size_t cap)
{
    return sign(s, "sts.us-east-1.amazonaws.com", "us-east-1", body, base, cap);
}

static void test_signed_head_shape(void **state)
{
    (void)state;
    static struct signed_head s;
    const char *body = "Action=AssumeRole&Version=2011-06-15&RoleArn=x";
    assert_int_equal(sign_us(&s, body, &BASE, sizeof(s.mem)), CRED_OK);
    struct sig_slice head = sig_buf_slice(&s.head);
    /* Line by line; the signature is botocore's business (the differential test). */
    static const char *const lines[] = {
        "POST / HTTP/1.1\r\n",
        "Host: sts.us-east-1.amazonaws.com\r\n",
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n",
        "Content-Length: 46\r\n",
    };
    struct sig_slice cur = head;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct sig_slice l = cstr(lines[i]);
        assert_true(cur.len >= l.len);
        assert_true(sig_slice_eq((struct sig_slice){cur.ptr, l.len}, l));
        cur.ptr += l.len;
        cur.len -= l.len;
    }
    assert_true(contains(head, "\r\nX-Amz-Date: 20261129T080000Z\r\n"));
    assert_true(contains(head, "\r\nX-Amz-Security-Token: BASETOKEN/abc+def==\r\n"));
    assert_true(contains(head, "\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
                               "20261129/us-east-1/sts/aws4_request, SignedHeaders=content-type;"
                               "host;x-amz-date;x-amz-security-token, Signature="));
    struct sig_slice tail = cstr("\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n");
    assert_true(head.len > tail.len);
    assert_true(sig_slice_eq((struct sig_slice){head.ptr + head.len - tail.len, tail.len}, tail));
    assert_false(contains(head, "wJalrXUtnFEMI")); /* the secret never goes out */
    /* Exactly one empty line, at the end. */
    assert_false(contains((struct sig_slice){head.ptr, head.len - 2}, "\r\n\r\n"));

    /* Without a token: no token header, and it is not signed. */
    struct sig_credentials no_token = BASE;
    no_token.session_token = (struct sig_slice){0};
    assert_int_equal(sign_us(&s, body, &no_token, sizeof(s.mem)), CRED_OK);
    head = sig_buf_slice(&s.head);
    assert_false(contains(head, "X-Amz-Security-Token"));
    assert_true(contains(head, "SignedHeaders=content-type;host;x-amz-date, Signature="));
}

static void test_signed_head_errors(void **state)
{
    (void)state;
    static struct signed_head s;
    const char *body = "Action=AssumeRole";
    assert_int_equal(sign_us(&s, body, &BASE, sizeof(s.mem)), CRED_OK);
    size_t need = s.head.len;
    assert_int_equal(sign_us(&s, body, &BASE, need), CRED_OK);
    memset(s.mem, 0x55, sizeof(s.mem));
    assert_int_equal(sign_us(&s, body, &BASE, need - 1), CRED_ERR_TOO_LONG);
    assert_int_equal(s.head.len, 0);
    /* What had been written (the token with it: all but the final CRLF, which did not fit)
     * is wiped. */
    for (size_t i = 0; i < need - 2; i++)
        assert_int_equal((uint8_t)s.mem[i], 0);

    /* A host that would split the head. */
    assert_int_equal(
        sign(&s, "sts.amazonaws.com\r\nX-Evil: 1", "us-east-1", body, &BASE, sizeof(s.mem)),
        CRED_ERR_INVALID);
    assert_int_equal(sign(&s, "", "us-east-1", body, &BASE, sizeof(s.mem)), CRED_ERR_INVALID);
    /* Inputs the signer refuses. */
    assert_int_equal(sign(&s, "sts.amazonaws.com", "", body, &BASE, sizeof(s.mem)),
                     CRED_ERR_INVALID);
    struct sig_credentials no_secret = BASE;
    no_secret.secret_access_key = (struct sig_slice){0};
    assert_int_equal(sign(&s, "sts.amazonaws.com", "us-east-1", body, &no_secret, sizeof(s.mem)),
                     CRED_ERR_INVALID);
    /* A workspace too small for the canonical request. */
    sig_workspace_init(&s.ws, s.ws_mem, 64);
    sig_buf_init(&s.head, s.mem, sizeof(s.mem));
    assert_int_equal(sts_sign_request(cstr("sts.amazonaws.com"), cstr("us-east-1"), cstr(body), 0,
                                      &BASE, &s.ws, &s.head),
                     CRED_ERR_TOO_LONG);
    sig_workspace_cleanup(&s.ws);
}

/* ---- time ---- */

static void test_time_valid(void **state)
{
    (void)state;
    /* Expected values from date(1): date -u -d 2026-11-29T08:00:00Z +%s, and so on. */
    static const struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-11-29T08:00:00Z", 1795939200},
        {"2026-11-29T08:00:00.5Z", 1795939200},
        {"2026-11-29T08:00:00.123456789Z", 1795939200},
        {"2019-11-09T13:34:41Z", 1573306481},
        {"2024-02-29T23:59:59Z", 1709251199}, /* leap day */
        {"2000-03-01T00:00:00Z", 951868800},  /* after 2000's leap day (div. by 400) */
        {"2100-03-01T00:00:00Z", 4107542400}, /* 2100 has none (div. by 100) */
        {"9999-12-31T23:59:59Z", 253402300799},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t t = -1;
        assert_true(sts_parse_time(cstr(ok[i].in), &t));
        assert_int_equal(t, ok[i].want);
    }
}

static void test_time_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2026-11-29T08:00:00",             /* no zone */
        "2026-11-29T08:00:00z",            /* lower case */
        "2026-11-29t08:00:00Z",            /* lower case */
        "2026-11-29 08:00:00Z",            /* space */
        "2026-11-29T08:00:00+00:00",       /* offsets other than Z */
        "2026-11-29T08:00:00Z ",           /* trailing bytes */
        "2026-11-29T08:00:00.Z",           /* empty fraction */
        "2026-11-29T08:00:00.1234567890Z", /* over nanoseconds */
        "2026-11-29T08:00Z",               /* no seconds */
        "2026-1-29T08:00:00Z",             /* short month */
        "26-11-29T08:00:00Z",              /* short year */
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-11-31T00:00:00Z", /* November has 30 days */
        "2023-02-29T00:00:00Z", /* not a leap year */
        "2100-02-29T00:00:00Z", /* not a leap year (div. by 100) */
        "2026-11-29T24:00:00Z",
        "2026-11-29T23:60:00Z",
        "2026-12-31T23:59:60Z", /* leap seconds are refused */
        "1969-12-31T23:59:59Z", /* before the epoch */
        "0000-01-01T00:00:00Z",
        "+2026-11-29T08:00:00Z",
        "2026-11-29T08:00:0aZ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t = 42;
        assert_false(sts_parse_time(cstr(bad[i]), &t));
    }
    /* An embedded NUL (slices carry lengths). */
    int64_t t;
    assert_false(
        sts_parse_time((struct sig_slice){(const uint8_t *)"2026-11-29T08:00:00Z\0", 21}, &t));
    assert_true(sts_parse_time(cstr("2000-02-29T00:00:00Z"), &t)); /* div. by 400 */
}

/* ---- answers ---- */

/* The shape of the AssumeRole API reference's example response; our own values. */
#define CREDS_XML(id, secret, token, exp)                                                          \
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"                   \
    "  <AssumeRoleResult>\n"                                                                       \
    "    <SourceIdentity>sigv4d-test</SourceIdentity>\n"                                           \
    "    <AssumedRoleUser>\n"                                                                      \
    "      <Arn>arn:aws:sts::123456789012:assumed-role/Deploy/sigv4d</Arn>\n"                      \
    "      <AssumedRoleId>AROAEXAMPLEROLEID1234:sigv4d</AssumedRoleId>\n"                          \
    "    </AssumedRoleUser>\n"                                                                     \
    "    <Credentials>\n"                                                                          \
    "      <AccessKeyId>" id "</AccessKeyId>\n"                                                    \
    "      <SecretAccessKey>" secret "</SecretAccessKey>\n"                                        \
    "      <SessionToken>" token "</SessionToken>\n"                                               \
    "      <Expiration>" exp "</Expiration>\n"                                                     \
    "    </Credentials>\n"                                                                         \
    "    <PackedPolicySize>7</PackedPolicySize>\n"                                                 \
    "  </AssumeRoleResult>\n"                                                                      \
    "  <ResponseMetadata>\n"                                                                       \
    "    <RequestId>0f5b1a7e-5d0e-4c1a-9a55-0123456789ab</RequestId>\n"                            \
    "  </ResponseMetadata>\n"                                                                      \
    "</AssumeRoleResponse>\n"

#define SECRET "Zm9vYmFyU2VjcmV0S2V5Rm9yU2lndjRkVGVzdHM+/x="
#define TOKEN "IQoJb3JpZ2luX2VjEDMaCXVzLWVhc3QtMSJHMEUCIQD/sigv4d+test+token=="
#define GOOD_XML CREDS_XML("ASIASIGV4DTESTKEY001", SECRET, TOKEN, "2026-11-29T09:00:00Z")

static enum cred_err parse(int status, const char *xml, struct sts_answer *a)
{
    struct sig_slice s = cstr(xml);
    return sts_parse_answer(status, s.ptr, s.len, a);
}

/* No error text may ever hold the secret or the token. */
static void assert_no_secret_in_text(const struct sts_answer *a)
{
    for (int i = 0; i < 2; i++) {
        struct sig_slice t = cstr(i == 0 ? a->error_code : a->error_message);
        assert_false(contains(t, SECRET));
        assert_false(contains(t, TOKEN));
        assert_false(contains(t, "Zm9vYmFy"));
        assert_false(contains(t, "IQoJb3Jp"));
    }
}

static void assert_creds(const struct sts_answer *a, const char *id, const char *secret,
                         const char *token, int64_t exp)
{
    assert_non_null(a->creds);
    struct sig_credentials v = cred_view(a->creds);
    assert_true(sig_slice_eq(v.access_key_id, cstr(id)));
    assert_true(sig_slice_eq(v.secret_access_key, cstr(secret)));
    assert_true(sig_slice_eq(v.session_token, cstr(token)));
    assert_int_equal(a->expiration, exp);
    assert_string_equal(a->error_code, "");
    assert_string_equal(a->error_message, "");
}

static void test_answer_ok(void **state)
{
    (void)state;
    struct sts_answer a;
    assert_int_equal(parse(200, GOOD_XML, &a), CRED_OK);
    /* 2026-11-29T09:00:00Z: date -u -d ... +%s */
    assert_creds(&a, "ASIASIGV4DTESTKEY001", SECRET, TOKEN, 1795942800);
    cred_unref(a.creds);

    /* Without the namespace, with an XML declaration, a CDATA token, a comment inside a
     * value, character references and fractional seconds. */
    static const char plain[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
                                "<AccessKeyId>ASIA<!-- c -->KEY2</AccessKeyId>"
                                "<SecretAccessKey>s&#101;cret&amp;2</SecretAccessKey>"
                                "<SessionToken><![CDATA[tok<en>2]]></SessionToken>"
                                "<Expiration>\n  2024-02-29T23:59:59.999Z\n</Expiration>"
                                "</Credentials></AssumeRoleResult></AssumeRoleResponse>";
    assert_int_equal(parse(200, plain, &a), CRED_OK);
    assert_creds(&a, "ASIAKEY2", "secret&2", "tok<en>2", 1709251199);
    cred_unref(a.creds);

    /* A prefix bound to STS's namespace is the same namespace. */
    static const char prefixed[] =
        "<s:AssumeRoleResponse xmlns:s=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<s:AssumeRoleResult><s:Credentials><s:AccessKeyId>A3</s:AccessKeyId>"
        "<s:SecretAccessKey>S3</s:SecretAccessKey><s:SessionToken>T3</s:SessionToken>"
        "<s:Expiration>2026-11-29T08:00:00Z</s:Expiration></s:Credentials></s:AssumeRoleResult>"
        "</s:AssumeRoleResponse>";
    assert_int_equal(parse(200, prefixed, &a), CRED_OK);
    assert_creds(&a, "A3", "S3", "T3", 1795939200);
    cred_unref(a.creds);
}

static void test_answer_error_response(void **state)
{
    (void)state;
    static const char denied[] =
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <Error>\n"
        "    <Type>Sender</Type>\n"
        "    <Code>AccessDenied</Code>\n"
        "    <Message>User: arn:aws:iam::123456789012:user/ci is not authorized to perform:"
        " sts:AssumeRole on resource: arn:aws:iam::123456789012:role/Deploy</Message>\n"
        "  </Error>\n"
        "  <RequestId>6a3f1c2e-0000-4000-8000-000000000001</RequestId>\n"
        "</ErrorResponse>\n";
    struct sts_answer a;
    assert_int_equal(parse(403, denied, &a), CRED_ERR_FETCH);
    assert_null(a.creds);
    assert_string_equal(a.error_code, "AccessDenied");
    assert_string_equal(a.error_message,
                        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform:"
                        " sts:AssumeRole on resource: arn:aws:iam::123456789012:role/Deploy");
    /* An ErrorResponse is a refusal even with status 200. */
    assert_int_equal(parse(200, denied, &a), CRED_ERR_FETCH);
    assert_string_equal(a.error_code, "AccessDenied");

    /* A bare Error root; control characters become spaces. */
    static const char bare[] = "<Error><Code>Throttling&#10;x</Code>"
                               "<Message>Rate\texceeded&#13;&#10;X-Injected: 1</Message>"
                               "</Error>";
    assert_int_equal(parse(400, bare, &a), CRED_ERR_FETCH);
    assert_string_equal(a.error_code, "Throttling x");
    assert_string_equal(a.error_message, "Rate exceeded  X-Injected: 1");
    /* XML 1.0 allows DEL (not the other C0 controls but tab, CR and LF). */
    static const char del[] = "<Error><Code>C</Code><Message>red&#x7f;x</Message></Error>";
    assert_int_equal(parse(400, del, &a), CRED_ERR_FETCH);
    assert_string_equal(a.error_message, "red x");

    /* A refusal whose body is not XML: still a refusal, with no text. */
    assert_int_equal(parse(503, "<html>Service Unavailable", &a), CRED_ERR_FETCH);
    assert_string_equal(a.error_code, "");
    assert_string_equal(a.error_message, "");
    assert_int_equal(parse(500, "", &a), CRED_ERR_FETCH);
    /* Credentials in a refusal are never taken. */
    assert_int_equal(parse(403, GOOD_XML, &a), CRED_ERR_FETCH);
    assert_null(a.creds);
    assert_no_secret_in_text(&a);
}

static void test_answer_error_text_truncated(void **state)
{
    (void)state;
    /* 60 ASCII bytes then "é" (2 bytes) across error_code's 63-byte limit, and a long
     * message. */
    char xml[2048];
    char code[80], message[400];
    memset(code, 'C', 62);
    code[62] = '\0';
    memset(message, 'm', 300);
    message[300] = '\0';
    snprintf(xml, sizeof(xml),
             "<ErrorResponse><Error><Code>%s\xc3\xa9Z</Code><Message>%s</Message>"
             "</Error></ErrorResponse>",
             code, message);
    struct sts_answer a;
    assert_int_equal(parse(400, xml, &a), CRED_ERR_FETCH);
    assert_string_equal(a.error_code, code); /* the cut character is left out whole */
    assert_int_equal(sig_slice_from_cstr(a.error_message).len, sizeof(a.error_message) - 1);
    code[61] = '\0';
    snprintf(xml, sizeof(xml), "<Error><Code>%s\xc3\xa9Z</Code></Error>", code);
    assert_int_equal(parse(400, xml, &a), CRED_ERR_FETCH);
    assert_int_equal(sig_slice_from_cstr(a.error_code).len, 63);
    assert_string_equal(a.error_message, "");
}

static void test_answer_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not xml",
        "<AssumeRoleResponse>",                    /* truncated */
        "<AssumeRoleResponse></AssumeRoleResult>", /* mismatched */
        "<AssumeRoleResponse/>",                   /* no result */
        "<Other/>",
        /* Another namespace is another element. */
        "<AssumeRoleResponse xmlns=\"urn:other\"><AssumeRoleResult><Credentials>"
        "<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
        "<SessionToken>T</SessionToken><Expiration>2026-11-29T08:00:00Z</Expiration>"
        "</Credentials></AssumeRoleResult></AssumeRoleResponse>",
        /* Credentials not under AssumeRoleResult. */
        "<AssumeRoleResponse><Credentials>"
        "<AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
        "<SessionToken>T</SessionToken><Expiration>2026-11-29T08:00:00Z</Expiration>"
        "</Credentials></AssumeRoleResponse>",
        CREDS_XML("", SECRET, TOKEN, "2026-11-29T09:00:00Z"),      /* empty */
        CREDS_XML("  \n ", SECRET, TOKEN, "2026-11-29T09:00:00Z"), /* blank */
        CREDS_XML("ASIAKEY", "", TOKEN, "2026-11-29T09:00:00Z"),
        CREDS_XML("ASIAKEY", SECRET, "", "2026-11-29T09:00:00Z"),
        CREDS_XML("ASIAKEY", SECRET, TOKEN, ""),
        CREDS_XML("ASIAKEY", SECRET, TOKEN, "2026-11-29 09:00:00"), /* bad time */
        CREDS_XML("ASIAKEY", SECRET, TOKEN, "2026-11-29T09:00:00+01:00"),
        /* A token that would split the request's head, a space, a non-ASCII byte. */
        CREDS_XML("ASIAKEY", SECRET, "IQo&#13;&#10;X-Evil: 1", "2026-11-29T09:00:00Z"),
        CREDS_XML("ASIAKEY", SECRET, "IQo J", "2026-11-29T09:00:00Z"),
        CREDS_XML("ASIAKEY", "s\xc3\xa9", TOKEN, "2026-11-29T09:00:00Z"),
        /* A child element inside a value. */
        CREDS_XML("ASIA<b>KEY</b>", SECRET, TOKEN, "2026-11-29T09:00:00Z"),
        /* A field twice. */
        CREDS_XML("ASIAKEY</AccessKeyId><AccessKeyId>ASIAOTHER", SECRET, TOKEN,
                  "2026-11-29T09:00:00Z"),
        /* Missing fields. */
        "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
        "<AccessKeyId>A</AccessKeyId><SecretAccessKey>" SECRET "</SecretAccessKey>"
        "<SessionToken>" TOKEN "</SessionToken>"
        "</Credentials></AssumeRoleResult></AssumeRoleResponse>",
        "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
        "<AccessKeyId>A</AccessKeyId><SecretAccessKey>" SECRET "</SecretAccessKey>"
        "<Expiration>2026-11-29T08:00:00Z</Expiration>"
        "</Credentials></AssumeRoleResult></AssumeRoleResponse>",
        /* Trailing garbage after the document. */
        GOOD_XML "<x/>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sts_answer a;
        assert_int_equal(parse(200, bad[i], &a), CRED_ERR_BAD_ANSWER);
        assert_null(a.creds);
        assert_int_equal(a.expiration, 0);
        assert_string_equal(a.error_code, "");
        assert_string_equal(a.error_message, "");
        assert_no_secret_in_text(&a);
    }
    /* A value over CRED_MAX_VALUE. */
    size_t n = CRED_MAX_VALUE + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'T', n);
    big[n] = '\0';
    char *xml = malloc(n + 1024);
    assert_non_null(xml);
    snprintf(xml, n + 1024, CREDS_XML("ASIAKEY", SECRET, "%s", "2026-11-29T09:00:00Z"), big);
    struct sts_answer a;
    assert_int_equal(parse(200, xml, &a), CRED_ERR_BAD_ANSWER);
    big[n - 1] = '\0'; /* exactly CRED_MAX_VALUE */
    snprintf(xml, n + 1024, CREDS_XML("ASIAKEY", SECRET, "%s", "2026-11-29T09:00:00Z"), big);
    assert_int_equal(parse(200, xml, &a), CRED_OK);
    assert_int_equal(cred_view(a.creds).session_token.len, CRED_MAX_VALUE);
    cred_unref(a.creds);
    free(xml);
    free(big);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_answer_billion_laughs(void **state)
{
    (void)state;
    /* Ten levels of ten references: 10^9 "lol"s if expanded. */
    static const char laughs[] =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE AssumeRoleResponse [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
        "]>\n" CREDS_XML("&lol9;", "&lol9;", "&lol9;&lol9;", "2026-11-29T09:00:00Z");
    double t0 = now_s();
    struct sts_answer a;
    assert_int_equal(parse(200, laughs, &a), CRED_ERR_BAD_ANSWER);
    assert_null(a.creds);
    static const char in_error[] = "<!DOCTYPE Error [\n"
                                   " <!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">\n"
                                   " <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
                                   " <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
                                   " <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
                                   " <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
                                   "]>\n<Error><Code>&e;</Code><Message>&e;&e;</Message></Error>";
    assert_int_equal(parse(403, in_error, &a), CRED_ERR_FETCH);
    assert_string_equal(a.error_code, "");
    assert_string_equal(a.error_message, "");
    /* Harmless and fast: nothing expanded (well under a second even under sanitizers). */
    assert_true(now_s() - t0 < 1.0);
}

static void test_answer_external_entity_not_fetched(void **state)
{
    (void)state;
    char path[] = "/tmp/sts_test_xxe_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("LEAKEDFILECONTENT", f);
    fclose(f);
    char xml[1024];
    snprintf(xml, sizeof(xml),
             "<?xml version=\"1.0\"?>\n<!DOCTYPE Error [<!ENTITY x SYSTEM \"file://%s\">"
             "<!ENTITY net SYSTEM \"http://127.0.0.1:9/x\">]>\n"
             "<ErrorResponse><Error><Code>&x;</Code><Message>&x;&net;</Message></Error>"
             "</ErrorResponse>",
             path);
    struct sts_answer a;
    assert_int_equal(parse(403, xml, &a), CRED_ERR_FETCH);
    assert_false(contains(cstr(a.error_code), "LEAKED"));
    assert_false(contains(cstr(a.error_message), "LEAKED"));
    /* The same with a parameter entity pulling in an external DTD, on a 200. */
    snprintf(
        xml, sizeof(xml),
        "<!DOCTYPE AssumeRoleResponse [<!ENTITY %% ext SYSTEM \"file://%s\"> %%ext;]>\n" CREDS_XML(
            "ASIAKEY", SECRET, TOKEN, "2026-11-29T09:00:00Z"),
        path);
    assert_int_equal(parse(200, xml, &a), CRED_ERR_BAD_ANSWER);
    assert_null(a.creds);
    /* And an external subset. */
    snprintf(xml, sizeof(xml),
             "<!DOCTYPE AssumeRoleResponse SYSTEM \"file://%s\">\n" CREDS_XML(
                 "ASIAKEY", SECRET, TOKEN, "2026-11-29T09:00:00Z"),
             path);
    assert_int_equal(parse(200, xml, &a), CRED_ERR_BAD_ANSWER);
    assert_null(a.creds);
    unlink(path);
}

static void test_answer_size_limit(void **state)
{
    (void)state;
    /* The good document padded with trailing white space to exactly the limit, then one
     * byte more. */
    size_t len = STS_MAX_RESPONSE_BYTES;
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    struct sig_slice good = cstr(GOOD_XML);
    memset(buf, ' ', len + 1);
    memcpy(buf, good.ptr, good.len);
    struct sts_answer a;
    assert_int_equal(sts_parse_answer(200, (const uint8_t *)buf, len, &a), CRED_OK);
    cred_unref(a.creds);
    assert_int_equal(sts_parse_answer(200, (const uint8_t *)buf, len + 1, &a), CRED_ERR_BAD_ANSWER);
    assert_null(a.creds);
    free(buf);
}

/* ---- libxml2's blocks are wiped ---- */

static int blocks_with_secret;
static int blocks_with_token;

static void observe_free(const void *ptr, size_t len)
{
    struct sig_slice block = {ptr, len};
    blocks_with_secret += contains(block, SECRET);
    blocks_with_token += contains(block, TOKEN);
}

static int reset_observer(void **state)
{
    (void)state;
    sts_free_observer = NULL;
    return 0;
}

static void test_libxml2_blocks_go_through_the_wiping_free(void **state)
{
    (void)state;
    blocks_with_secret = blocks_with_token = 0;
    sts_free_observer = observe_free;
    struct sts_answer a;
    assert_int_equal(parse(200, GOOD_XML, &a), CRED_OK);
    sts_free_observer = NULL;
    /* libxml2 held the secret and the token (at least in its copy of the input and in the
     * text nodes), and released those blocks through sts_init's allocator, which wipes. */
    assert_true(blocks_with_secret >= 2);
    assert_true(blocks_with_token >= 2);
    cred_unref(a.creds);
}

static int setup(void **state)
{
    (void)state;
    sts_init();
    sts_init(); /* idempotent */
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_hosts),
        cmocka_unit_test(test_body_encoding),
        cmocka_unit_test(test_body_full_buffer_is_unchanged),
        cmocka_unit_test(test_body_rejections),
        cmocka_unit_test(test_signed_head_shape),
        cmocka_unit_test(test_signed_head_errors),
        cmocka_unit_test(test_time_valid),
        cmocka_unit_test(test_time_invalid),
        cmocka_unit_test(test_answer_ok),
        cmocka_unit_test(test_answer_error_response),
        cmocka_unit_test(test_answer_error_text_truncated),
        cmocka_unit_test(test_answer_malformed),
        cmocka_unit_test(test_answer_billion_laughs),
        cmocka_unit_test(test_answer_external_entity_not_fetched),
        cmocka_unit_test(test_answer_size_limit),
        cmocka_unit_test_teardown(test_libxml2_blocks_go_through_the_wiping_free, reset_observer),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
