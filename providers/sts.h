/*
 * sts.h: STS AssumeRole over the Query API: the request to send and its answer.
 *
 * Pure, like the signer: no I/O, no clock, no getenv; the caller supplies the time and the
 * base credentials, and sends the bytes. The request is what the AWS SDKs send:
 *
 *   POST / HTTP/1.1
 *   Host: sts.REGION.amazonaws.com
 *   Content-Type: application/x-www-form-urlencoded; charset=utf-8
 *   X-Amz-Date, [X-Amz-Security-Token,] Authorization (SigV4, service "sts")
 *
 *   Action=AssumeRole&Version=2011-06-15&RoleArn=..&RoleSessionName=..&DurationSeconds=N
 *   [&ExternalId=..]
 *
 * (botocore's order, byte for byte: tests/differential/test_sts_diff.py checks it.)
 *
 * The answer is XML (AssumeRoleResponse, or ErrorResponse with an HTTP error status), parsed
 * with libxml2 with network access and entity expansion off, at most STS_MAX_RESPONSE_BYTES.
 * It holds the new secret and token: sts_init() makes libxml2 wipe every block it frees, and
 * the caller wipes its own copy of the response.
 * Spec: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
 */
#ifndef STS_H
#define STS_H

#include <stddef.h>
#include <stdint.h>

#include "cred.h"
#include "sig_sign.h"
#include "sig_types.h"

#define STS_MAX_RESPONSE_BYTES (64u * 1024)
#define STS_MIN_DURATION_S 900u
#define STS_MAX_DURATION_S 43200u
#define STS_DEFAULT_DURATION_S 3600u
/* RoleSessionName: 2..64 characters of [A-Za-z0-9+=,.@_-]. */
#define STS_MAX_SESSION_NAME 64u
/* Room for the request head lines sts_sign_request writes (without the body). */
#define STS_MAX_HEAD_BYTES 8192u

/* Once, at start-up, before any thread uses libxml2: installs libxml2 allocators that wipe
 * (OPENSSL_cleanse) every block before freeing it, and initialises the parser. */
void sts_init(void);

/* Test hook: when set, every block libxml2 frees (after sts_init) is passed to it just before
 * it is wiped, so a test can see which blocks held the secret. NULL in production. */
extern void (*sts_free_observer)(const void *ptr, size_t len);

/* What to ask for. All borrowed. */
struct sts_assume_role {
    struct sig_slice role_arn;     /* arn:PARTITION:iam::ACCOUNT:role/NAME (checked) */
    struct sig_slice session_name; /* checked against the rule above */
    struct sig_slice external_id;  /* optional: len 0 means none */
    uint32_t duration_s;           /* STS_MIN_DURATION_S..STS_MAX_DURATION_S */
};

/*
 * The regional endpoint's host name for `region`, NUL-terminated into out[cap]:
 * "sts.REGION.amazonaws.com", or "sts.REGION.amazonaws.com.cn" for cn-* regions.
 * CRED_ERR_INVALID for an empty region, one over 63 bytes (a DNS label) or with characters
 * outside [a-z0-9-];
 * CRED_ERR_TOO_LONG if it does not fit.
 */
SIG_MUST_USE enum cred_err sts_endpoint_host(struct sig_slice region, char *out, size_t cap);

/*
 * Checks a role session name (2..64 of [A-Za-z0-9+=,.@_-]). True if valid.
 */
bool sts_session_name_valid(struct sig_slice name);

/*
 * The form body above, parameters in that order, values URI-encoded (RFC 3986 unreserved
 * kept), into `out` (appended). CRED_ERR_INVALID for a malformed role ARN, session name,
 * external id (2..1224 of [A-Za-z0-9_+=,.@:/-]) or duration; CRED_ERR_TOO_LONG if `out` is
 * full (then `out` is as it was).
 */
SIG_MUST_USE enum cred_err sts_assume_role_body(const struct sts_assume_role *p,
                                                struct sig_buf *out);

/*
 * Signs POST / on `host` with `body` for `region` at `unix_time` with the base credentials,
 * and appends to `head` the complete request head: request line, Host, Content-Type,
 * Content-Length, X-Amz-Date, X-Amz-Security-Token (when the base credentials have one),
 * Authorization, "Accept-Encoding: identity" and "Connection: close" (one call per
 * connection: calls are minutes apart), each line ending in CRLF, then the empty line. `ws` is the
 * signer's workspace (its memory is reused; call sig_workspace_cleanup afterwards: it held the
 * token). The head holds the token: the caller wipes it after sending. CRED_ERR_INVALID if the
 * signer refused an input or `host` is not a host name, CRED_ERR_TOO_LONG if `head` or the
 * workspace is full (then `head` is as it was).
 */
SIG_MUST_USE enum cred_err sts_sign_request(struct sig_slice host, struct sig_slice region,
                                            struct sig_slice body, int64_t unix_time,
                                            const struct sig_credentials *base,
                                            struct sig_workspace *ws, struct sig_buf *head);

/* What an AssumeRole call answered. */
struct sts_answer {
    struct cred *creds;      /* CRED_OK: a new reference the caller owns */
    int64_t expiration;      /* CRED_OK: Credentials/Expiration as seconds since the epoch */
    char error_code[64];     /* STS's Error/Code (e.g. "AccessDenied"), else "" */
    char error_message[256]; /* STS's Error/Message, control characters replaced, else "" */
};

/*
 * Parses the body of STS's answer given its HTTP status. Status 200 with a well-formed
 * AssumeRoleResponse (AssumeRoleResult/Credentials with AccessKeyId, SecretAccessKey,
 * SessionToken and Expiration, ISO 8601 UTC such as 2026-11-29T08:00:00Z, fractional
 * seconds allowed) gives CRED_OK. Otherwise error_code/error_message are filled from an
 * ErrorResponse when there is one and the result is CRED_ERR_FETCH (the service refused: any
 * status but 200, or an ErrorResponse) or CRED_ERR_BAD_ANSWER (status 200 and not XML, not
 * the expected document, a field missing, empty, duplicated or not printable ASCII, a bad
 * time, a document type declaration, over STS_MAX_RESPONSE_BYTES). Error text never
 * contains the secret or the token. Synchronous; `body` is borrowed (the caller wipes it).
 */
SIG_MUST_USE enum cred_err sts_parse_answer(int http_status, const uint8_t *body, size_t len,
                                            struct sts_answer *out);

/* ISO 8601 UTC timestamp "YYYY-MM-DDTHH:MM:SS[.fraction]Z" to seconds since the epoch.
 * False for anything else (offsets other than Z, out-of-range fields, trailing bytes). */
bool sts_parse_time(struct sig_slice s, int64_t *out);

#endif
