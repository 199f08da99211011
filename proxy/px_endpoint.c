/* px_endpoint.c: signing name and region from an AWS endpoint host name. */
#include "px_endpoint.h"

#define MAX_HOST 253
#define MAX_LABELS 32

struct label {
    const uint8_t *ptr;
    size_t len;
};

static bool label_is(struct label l, const char *lit)
{
    return sig_slice_eq((struct sig_slice){l.ptr, l.len}, sig_slice_from_cstr(lit));
}

static bool label_has_prefix(struct label l, const char *lit)
{
    struct sig_slice p = sig_slice_from_cstr(lit);
    return l.len >= p.len && sig_slice_eq((struct sig_slice){l.ptr, p.len}, p);
}

static bool is_lower(uint8_t c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* AWS region names: two letters, one or more letter groups, a number ("us-east-1",
 * "us-gov-west-1", "cn-north-1", "us-isob-east-1"). */
static bool is_region(struct label l)
{
    if (l.len < 6 || !is_lower(l.ptr[0]) || !is_lower(l.ptr[1]) || l.ptr[2] != '-')
        return false;
    size_t i = 3;
    size_t groups = 0;
    for (;;) {
        size_t start = i;
        while (i < l.len && is_lower(l.ptr[i]))
            i++;
        if (i == start || i >= l.len || l.ptr[i] != '-')
            return false;
        groups++;
        i++;
        if (i < l.len && is_digit(l.ptr[i]))
            break;
    }
    while (i < l.len && is_digit(l.ptr[i]))
        i++;
    return i == l.len && groups >= 1;
}

static void set_part(char *dst, size_t *dst_len, const uint8_t *p, size_t n)
{
    struct sig_buf b;
    sig_buf_init(&b, dst, PX_ENDPOINT_MAX_PART - 1);
    if (n > PX_ENDPOINT_MAX_PART - 1 || sig_buf_append(&b, p, n) != SIG_OK) {
        dst[0] = '\0';
        *dst_len = 0;
        return;
    }
    dst[b.len] = '\0';
    *dst_len = b.len;
}

static void set_lit(char *dst, size_t *dst_len, const char *lit)
{
    struct sig_slice s = sig_slice_from_cstr(lit);
    set_part(dst, dst_len, s.ptr, s.len);
}

/* Endpoint prefixes whose signing name differs (botocore's endpoint data, signingName). */
static const char *const signing_name_map[][2] = {
    {"lambda-url", "lambda"},
    {"aps-workspaces", "aps"},
    {"email", "ses"},
    {"queue", "sqs"},
    {"bedrock-runtime", "bedrock"},
    {"bedrock-agent-runtime", "bedrock"},
    {"bedrock-agent", "bedrock"},
    {"appsync-api", "appsync"},
    {"runtime-v2-lex", "lex"},
};

void px_endpoint_infer(struct sig_slice host, struct px_endpoint *out)
{
    *out = (struct px_endpoint){0};
    if (host.len == 0 || host.len > MAX_HOST)
        return;
    uint8_t lower[MAX_HOST];
    for (size_t i = 0; i < host.len; i++) {
        uint8_t c = host.ptr[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
    }
    size_t len = host.len;
    if (lower[len - 1] == '.') /* a fully qualified name's trailing dot */
        len--;

    static const struct {
        const char *suffix;
        const char *home_region; /* where the partition's global endpoints sign */
    } suffixes[] = {
        {".amazonaws.com.cn", "cn-north-1"},
        {".amazonaws.com", "us-east-1"},
        {".api.aws", "us-east-1"},
        {".on.aws", "us-east-1"},
    };
    const char *home_region = NULL;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        struct sig_slice suf = sig_slice_from_cstr(suffixes[i].suffix);
        if (len > suf.len &&
            sig_slice_eq((struct sig_slice){lower + len - suf.len, suf.len}, suf)) {
            len -= suf.len;
            home_region = suffixes[i].home_region;
            break;
        }
    }
    if (home_region == NULL)
        return;

    struct label labels[MAX_LABELS];
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || lower[i] == '.') {
            if (i == start || n == MAX_LABELS)
                return; /* empty label or absurdly deep name */
            labels[n++] = (struct label){lower + start, i - start};
            start = i + 1;
        }
    }

    /* S3 family: scan from the right, because bucket names (virtual-hosted style) may
     * themselves contain labels such as "s3". */
    for (size_t k = n; k-- > 0;) {
        struct label l = labels[k];
        const char *service = NULL;
        struct label region = {0};
        if (label_is(l, "s3") || label_is(l, "s3-fips") || label_is(l, "s3-accesspoint") ||
            label_is(l, "s3-accesspoint-fips") || label_is(l, "s3-control") ||
            label_is(l, "s3-control-fips")) {
            service = "s3";
        } else if (label_is(l, "s3-external-1")) {
            service = "s3";
            region = (struct label){(const uint8_t *)"us-east-1", 9};
        } else if (label_is(l, "s3-object-lambda") || label_is(l, "s3-object-lambda-fips")) {
            service = "s3-object-lambda";
        } else if (label_is(l, "s3-outposts")) {
            service = "s3-outposts";
        } else if (label_has_prefix(l, "s3express-")) {
            service = "s3express";
        } else if (label_has_prefix(l, "s3-") && is_region((struct label){l.ptr + 3, l.len - 3})) {
            service = "s3"; /* legacy s3-REGION */
            region = (struct label){l.ptr + 3, l.len - 3};
        }
        if (service == NULL)
            continue;
        set_lit(out->service, &out->service_len, service);
        for (size_t r = k + 1; region.len == 0 && r < n; r++)
            if (is_region(labels[r]))
                region = labels[r];
        if (region.len != 0)
            set_part(out->region, &out->region_len, region.ptr, region.len);
        else
            set_lit(out->region, &out->region_len, home_region);
        return;
    }

    /* Generic shapes, right to left:
     *   SERVICE.REGION                (most services; execute-api, lambda-url after an id)
     *   SERVICE.dualstack.REGION / SERVICE-fips.REGION
     *   ID.REGION.SERVICE             (es, aoss)
     *   SERVICE                       (global: iam, sts, route53, cloudfront: home region)
     *   SERVICE.us-gov                (GovCloud global endpoints) */
    struct label service = {0};
    struct label region = {0};
    size_t last = n - 1;
    if (is_region(labels[last])) {
        region = labels[last];
        size_t j = last;
        while (j > 0 && (label_is(labels[j - 1], "dualstack") || label_is(labels[j - 1], "fips")))
            j--;
        if (j == 0)
            return;
        service = labels[j - 1];
    } else if (n >= 2 && is_region(labels[last - 1])) {
        region = labels[last - 1];
        service = labels[last];
    } else if (n >= 2 && label_is(labels[last], "us-gov")) {
        region = (struct label){(const uint8_t *)"us-gov-west-1", 13};
        service = labels[last - 1];
    } else {
        service = labels[last];
        region = (struct label){(const uint8_t *)home_region, sig_slice_from_cstr(home_region).len};
    }
    if (service.len > 5 && label_is((struct label){service.ptr + service.len - 5, 5}, "-fips"))
        service.len -= 5;
    if (label_is(service, "iot") && service.ptr > lower && region.len != 0) {
        /* data.iot / data-ats.iot: the IoT data plane signs as iotdata */
        size_t idx = 0;
        while (labels[idx].ptr != service.ptr)
            idx++;
        if (idx > 0 && label_has_prefix(labels[idx - 1], "data")) {
            set_lit(out->service, &out->service_len, "iotdata");
            set_part(out->region, &out->region_len, region.ptr, region.len);
            return;
        }
    }
    if (label_is(service, "dualstack") || label_is(service, "fips"))
        return;
    set_part(out->service, &out->service_len, service.ptr, service.len);
    for (size_t i = 0; i < sizeof(signing_name_map) / sizeof(signing_name_map[0]); i++)
        if (label_is(service, signing_name_map[i][0]))
            set_lit(out->service, &out->service_len, signing_name_map[i][1]);
    set_part(out->region, &out->region_len, region.ptr, region.len);
}

bool px_service_is_s3(struct sig_slice service)
{
    return sig_slice_eq(service, SIG_SLICE_LIT("s3")) ||
           sig_slice_eq(service, SIG_SLICE_LIT("s3-object-lambda")) ||
           sig_slice_eq(service, SIG_SLICE_LIT("s3-outposts")) ||
           sig_slice_eq(service, SIG_SLICE_LIT("s3express"));
}
