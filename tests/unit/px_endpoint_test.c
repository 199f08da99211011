/* px_endpoint_test.c: signing name and region inference from endpoint host names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "px_endpoint.h"

struct vector {
    const char *host;
    const char *service; /* "" when the host must not be recognised */
    const char *region;
};

static const struct vector vectors[] = {
    /* S3: path style, virtual-hosted style, dualstack, legacy forms, access points */
    {"s3.amazonaws.com", "s3", "us-east-1"},
    {"bucket.s3.amazonaws.com", "s3", "us-east-1"},
    {"s3.us-west-2.amazonaws.com", "s3", "us-west-2"},
    {"my.bucket.s3.name.s3.eu-west-1.amazonaws.com", "s3", "eu-west-1"},
    {"bucket.s3.dualstack.ap-south-1.amazonaws.com", "s3", "ap-south-1"},
    {"s3.dualstack.us-east-2.amazonaws.com", "s3", "us-east-2"},
    {"s3-us-west-2.amazonaws.com", "s3", "us-west-2"},
    {"bucket.s3-eu-west-1.amazonaws.com", "s3", "eu-west-1"},
    {"s3-external-1.amazonaws.com", "s3", "us-east-1"},
    {"bucket.s3-external-1.amazonaws.com", "s3", "us-east-1"},
    {"s3-fips.us-gov-west-1.amazonaws.com", "s3", "us-gov-west-1"},
    {"ap-123456789012.s3-accesspoint.us-west-2.amazonaws.com", "s3", "us-west-2"},
    {"ap-123456789012.s3-accesspoint.dualstack.us-west-2.amazonaws.com", "s3", "us-west-2"},
    {"123456789012.s3-control.eu-central-1.amazonaws.com", "s3", "eu-central-1"},
    {"olap-123456789012.s3-object-lambda.us-east-1.amazonaws.com", "s3-object-lambda", "us-east-1"},
    {"bucket--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com", "s3express", "us-west-2"},
    {"s3.cn-north-1.amazonaws.com.cn", "s3", "cn-north-1"},
    {"bucket.s3.cn-northwest-1.amazonaws.com.cn", "s3", "cn-northwest-1"},
    {"S3.US-WEST-2.AMAZONAWS.COM", "s3", "us-west-2"},
    {"s3.us-west-2.amazonaws.com.", "s3", "us-west-2"},
    /* execute-api, Lambda function URLs, OpenSearch, Prometheus, SageMaker runtime */
    {"abc123.execute-api.us-east-1.amazonaws.com", "execute-api", "us-east-1"},
    {"xyz.lambda-url.eu-central-1.on.aws", "lambda", "eu-central-1"},
    {"search-dom-abc123.us-west-1.es.amazonaws.com", "es", "us-west-1"},
    {"vpc-dom-abc123.eu-west-1.es.amazonaws.com", "es", "eu-west-1"},
    {"abc123.us-east-1.aoss.amazonaws.com", "aoss", "us-east-1"},
    {"aps-workspaces.us-east-1.amazonaws.com", "aps", "us-east-1"},
    {"runtime.sagemaker.us-west-2.amazonaws.com", "sagemaker", "us-west-2"},
    /* STS and global services */
    {"sts.amazonaws.com", "sts", "us-east-1"},
    {"sts.eu-west-3.amazonaws.com", "sts", "eu-west-3"},
    {"iam.amazonaws.com", "iam", "us-east-1"},
    {"route53.amazonaws.com", "route53", "us-east-1"},
    {"iam.cn-north-1.amazonaws.com.cn", "iam", "cn-north-1"},
    {"iam.us-gov.amazonaws.com", "iam", "us-gov-west-1"},
    /* generic, dualstack (api.aws), fips, renamed signing names, IoT data plane */
    {"dynamodb.us-east-1.amazonaws.com", "dynamodb", "us-east-1"},
    {"dynamodb.us-east-1.api.aws", "dynamodb", "us-east-1"},
    {"sqs-fips.us-east-1.amazonaws.com", "sqs", "us-east-1"},
    {"email.eu-west-1.amazonaws.com", "ses", "eu-west-1"},
    {"bedrock-runtime.us-west-2.amazonaws.com", "bedrock", "us-west-2"},
    {"abc-ats.iot.us-east-1.amazonaws.com", "iot", "us-east-1"},
    {"data-ats.iot.us-east-1.amazonaws.com", "iotdata", "us-east-1"},
    {"ec2.dualstack.us-west-2.amazonaws.com", "ec2", "us-west-2"},
    /* not AWS, or malformed */
    {"example.com", "", ""},
    {"bucket.s3.amazonaws.com.evil.example", "", ""},
    {"amazonaws.com", "", ""},
    {"a..s3.amazonaws.com", "", ""},
    {"", "", ""},
};

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        struct px_endpoint ep;
        px_endpoint_infer(sig_slice_from_cstr(vectors[i].host), &ep);
        print_message("%s -> %s %s\n", vectors[i].host, ep.service, ep.region);
        assert_string_equal(ep.service, vectors[i].service);
        if (vectors[i].service[0] != '\0')
            assert_string_equal(ep.region, vectors[i].region);
        assert_int_equal(ep.service_len, sig_slice_from_cstr(vectors[i].service).len);
    }
}

static void test_too_long(void **state)
{
    (void)state;
    char host[300];
    for (size_t i = 0; i < sizeof(host) - 1; i++)
        host[i] = 'a';
    host[sizeof(host) - 1] = '\0';
    struct px_endpoint ep;
    px_endpoint_infer(sig_slice_from_cstr(host), &ep);
    assert_string_equal(ep.service, "");
}

static void test_is_s3(void **state)
{
    (void)state;
    assert_true(px_service_is_s3(SIG_SLICE_LIT("s3")));
    assert_true(px_service_is_s3(SIG_SLICE_LIT("s3-object-lambda")));
    assert_false(px_service_is_s3(SIG_SLICE_LIT("execute-api")));
    assert_false(px_service_is_s3(SIG_SLICE_LIT("s3x")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_is_s3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
