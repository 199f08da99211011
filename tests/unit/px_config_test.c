/* px_config_test.c: command-line parsing, defaults, validation and the allow-list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "px_config.h"

#define ARGV(...) ((char *[]){"sigv4d", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"sigv4d", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...)                                                                       \
    px_config_parse(cfg, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof(err))

/* No flags and no region in the environment. */
static void parse_bare(struct px_config *cfg)
{
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    char err[256];
    char *argv[] = {"sigv4d", NULL};
    assert_true(px_config_parse(cfg, 1, argv, err, sizeof(err)));
}

static void test_defaults(void **state)
{
    (void)state;
    struct px_config cfg;
    char err[256];
    char *argv[] = {"sigv4d", NULL};
    parse_bare(&cfg);
    assert_int_equal(cfg.action, PX_ACTION_RUN);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_true(cfg.upstream_tls);
    assert_true(cfg.verify_tls);
    assert_int_equal(cfg.max_buffer_bytes, 8u << 20);
    assert_int_equal(cfg.idle_conn_timeout_ms, 40000);
    assert_int_equal(cfg.max_connections, 4096);
    assert_true(cfg.workers >= 1);
    assert_true(sig_slice_eq(cfg.fallback_region, SIG_SLICE_LIT("us-east-1")));
    assert_int_equal(cfg.allow_host_count, 4);
    px_config_cleanup(&cfg);

    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    assert_true(px_config_parse(&cfg, 1, argv, err, sizeof(err)));
    assert_true(sig_slice_eq(cfg.fallback_region, SIG_SLICE_LIT("eu-west-1")));
    px_config_cleanup(&cfg);
    setenv("AWS_REGION", "ap-south-1", 1);
    assert_true(px_config_parse(&cfg, 1, argv, err, sizeof(err)));
    assert_true(sig_slice_eq(cfg.fallback_region, SIG_SLICE_LIT("ap-south-1")));
    px_config_cleanup(&cfg);
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
}

/* The region order: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1. */
static void test_profile_region(void **state)
{
    (void)state;
    struct px_config cfg;
    char err[256];
    char *argv[] = {"sigv4d", NULL};
    parse_bare(&cfg);
    assert_true(px_config_set_profile_region(&cfg, SIG_SLICE_LIT("eu-north-1")));
    assert_true(sig_slice_eq(cfg.fallback_region, SIG_SLICE_LIT("eu-north-1")));
    /* Not a region (a slash, an empty value, too long): refused, the fallback unchanged. */
    assert_false(px_config_set_profile_region(&cfg, SIG_SLICE_LIT("eu/north")));
    assert_false(px_config_set_profile_region(&cfg, SIG_SLICE_LIT("")));
    char longer[80];
    memset(longer, 'a', sizeof(longer));
    assert_false(px_config_set_profile_region(
        &cfg, (struct sig_slice){(const uint8_t *)longer, sizeof(longer)}));
    assert_true(sig_slice_eq(cfg.fallback_region, SIG_SLICE_LIT("eu-north-1")));
    px_config_cleanup(&cfg);

    /* The environment comes first: the profile's region is accepted but not used. */
    setenv("AWS_DEFAULT_REGION", "eu-west-1", 1);
    assert_true(px_config_parse(&cfg, 1, argv, err, sizeof(err)));
    assert_true(px_config_set_profile_region(&cfg, SIG_SLICE_LIT("eu-north-1")));
    assert_true(sig_slice_eq(cfg.fallback_region, SIG_SLICE_LIT("eu-west-1")));
    px_config_cleanup(&cfg);
    unsetenv("AWS_DEFAULT_REGION");
}

static void test_all_flags(void **state)
{
    (void)state;
    struct px_config cfg;
    char err[256];
    bool ok = PARSE(&cfg, err, "--port", ":9000", "--name", "execute-api", "--region=eu-west-1",
                    "--host", "s3.eu-west-1.amazonaws.com:8443", "--sign-host", "example.org",
                    "--upstream-url-scheme", "http", "--unsigned-payload", "-s", "X-A",
                    "--strip=X-B", "--custom-headers", "X-C=1,X-D=two words", "--duplicate-headers",
                    "Authorization", "--no-verify-ssl", "--transport.idle-conn-timeout", "1m30s",
                    "--log-failed-requests", "-vv", "--ca-file", "/dev/null", "--connect-to",
                    "a.com:443:127.0.0.1:9443", "--connect-to", "::[::1]:", "--allow-host",
                    "*.example.com", "--workers", "3", "--max-buffer-bytes", "1M", "--spool-dir",
                    "/tmp", "--client-header-timeout", "500ms", "--upstream-connect-timeout", "2");
    assert_true(ok);
    assert_string_equal(cfg.listen_host, "");
    assert_int_equal(cfg.listen_port, 9000);
    assert_true(sig_slice_eq(cfg.service, SIG_SLICE_LIT("execute-api")));
    assert_true(sig_slice_eq(cfg.region, SIG_SLICE_LIT("eu-west-1")));
    assert_false(cfg.upstream_tls);
    assert_true(cfg.unsigned_payload);
    assert_int_equal(cfg.strip_count, 2);
    assert_int_equal(cfg.custom_header_count, 2);
    assert_true(sig_slice_eq(cfg.custom_headers[1].value, SIG_SLICE_LIT("two words")));
    assert_int_equal(cfg.duplicate_header_count, 1);
    assert_false(cfg.verify_tls);
    assert_int_equal(cfg.idle_conn_timeout_ms, 90000);
    assert_true(cfg.log_failed_requests);
    assert_int_equal(cfg.verbose, 2);
    assert_int_equal(cfg.connect_to_count, 2);
    assert_true(sig_slice_eq(cfg.connect_to[0].from_host, SIG_SLICE_LIT("a.com")));
    assert_int_equal(cfg.connect_to[0].from_port, 443);
    assert_int_equal(cfg.connect_to[0].to_port, 9443);
    assert_int_equal(cfg.connect_to[1].from_host.len, 0);
    assert_true(sig_slice_eq(cfg.connect_to[1].to_host, SIG_SLICE_LIT("[::1]")));
    assert_int_equal(cfg.connect_to[1].to_port, 0);
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(cfg.max_buffer_bytes, 1u << 20);
    assert_int_equal(cfg.client_header_timeout_ms, 500);
    assert_int_equal(cfg.connect_timeout_ms, 2000);
    assert_true(px_config_host_allowed(&cfg, SIG_SLICE_LIT("a.b.example.com")));
    assert_false(px_config_host_allowed(&cfg, SIG_SLICE_LIT("example.com")));
    assert_true(px_config_host_allowed(&cfg, SIG_SLICE_LIT("S3.AMAZONAWS.COM")));
    assert_false(px_config_host_allowed(&cfg, SIG_SLICE_LIT("amazonaws.com")));
    assert_false(px_config_host_allowed(&cfg, SIG_SLICE_LIT("evilamazonaws.com")));
    assert_false(px_config_host_allowed(&cfg, SIG_SLICE_LIT("s3.amazonaws.com.evil.org")));
    px_config_cleanup(&cfg);
}

static void test_help_version(void **state)
{
    (void)state;
    struct px_config cfg;
    char err[256];
    assert_true(PARSE(&cfg, err, "--version"));
    assert_int_equal(cfg.action, PX_ACTION_VERSION);
    px_config_cleanup(&cfg);
    assert_true(PARSE(&cfg, err, "--version", "-h"));
    assert_int_equal(cfg.action, PX_ACTION_HELP);
    px_config_cleanup(&cfg);
}

static void expect_refused(const char *flag, const char *value, const char *needle)
{
    struct px_config cfg;
    char err[256] = "";
    char *argv[] = {"sigv4d", (char *)flag, (char *)value, NULL};
    int argc = value ? 3 : 2;
    print_message("%s %s\n", flag, value ? value : "");
    assert_false(px_config_parse(&cfg, argc, argv, err, sizeof(err)));
    assert_non_null(strstr(err, needle));
    assert_null(strchr(err, '\n')); /* one line */
    px_config_cleanup(&cfg);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused("--bogus", NULL, "unknown flag");
    expect_refused("--port", "x", "--port");
    expect_refused("--port", "127.0.0.1:0", "--port");
    expect_refused("--port", "999.1.1.1:80", "--port");
    expect_refused("--port", NULL, "needs a value");
    expect_refused("--name", "a b", "--name");
    expect_refused("--host", "a.com:99999", "--host");
    expect_refused("--host", "a/b", "--host");
    expect_refused("--upstream-url-scheme", "ftp", "https or http");
    expect_refused("--custom-headers", "a=b,c", "--custom-headers");
    expect_refused("--custom-headers", "bad name=1", "--custom-headers");
    expect_refused("--transport.idle-conn-timeout", "soon", "duration");
    expect_refused("--transport.idle-conn-timeout", "10x", "duration");
    expect_refused("--client-header-timeout", "0s", "duration");
    expect_refused("--workers", "0", "--workers");
    expect_refused("--workers", "abc", "--workers");
    expect_refused("--max-connections", "0", "--max-connections");
    expect_refused("--max-connections", "1000001", "--max-connections");
    expect_refused("--max-buffer-bytes", "12Q", "--max-buffer-bytes");
    expect_refused("--ca-file", "/nonexistent/ca.pem", "--ca-file");
    expect_refused("--spool-dir", "/nonexistent", "--spool-dir");
    expect_refused("--connect-to", "a:1:b", "--connect-to");
    expect_refused("--connect-to", "a:x:b:1", "--connect-to");
    expect_refused("--allow-host", "*.", "--allow-host");
    expect_refused("--role-arn", "nope", "--role-arn");
    expect_refused("--unsigned-payload=yes", NULL, "takes no value");
    expect_refused("-x", NULL, "unknown flag");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),  cmocka_unit_test(test_profile_region),
        cmocka_unit_test(test_all_flags), cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
