/*
 * px_endpoint.h: the signing name and region of an AWS endpoint, inferred from its host name.
 *
 * Pure (no I/O, no libevent, no allocation) so a unit test links it with the signer alone.
 * Covers S3 (path- and virtual-hosted style, dualstack, legacy s3-REGION and s3-external-1,
 * access points, Object Lambda, Outposts, Express), execute-api, Lambda function URLs,
 * OpenSearch (es) and OpenSearch Serverless (aoss), Managed Prometheus (aps), SageMaker
 * runtime, STS, global services such as IAM (signed for the partition's home region), the
 * China partition and the generic SERVICE[.dualstack|-fips].REGION forms.
 */
#ifndef PX_ENDPOINT_H
#define PX_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "sig_types.h"

#define PX_ENDPOINT_MAX_PART 64

struct px_endpoint {
    char service[PX_ENDPOINT_MAX_PART]; /* NUL-terminated; "" if unknown */
    size_t service_len;
    char region[PX_ENDPOINT_MAX_PART]; /* NUL-terminated; "" if the host names none */
    size_t region_len;
};

/*
 * Infers the signing name and region from `host` (a DNS name without port, any case).
 * Hosts outside the AWS domains (amazonaws.com, amazonaws.com.cn, api.aws, on.aws) and
 * unrecognised shapes give an empty service. Synchronous; cannot fail.
 */
void px_endpoint_infer(struct sig_slice host, struct px_endpoint *out);

/* True for the S3 family, whose canonical URI is not normalised (SIG_URI_S3) and which
 * requires x-amz-content-sha256. */
bool px_service_is_s3(struct sig_slice service);

#endif
