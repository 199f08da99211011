/*
 * sig_sign.h: AWS Signature Version 4 (and 4a) for one HTTP request.
 *
 * Synchronous and allocation-free: the caller supplies the request as borrowed slices,
 * the credentials, the time, a key cache and a workspace; every result is a slice into
 * the workspace, valid until the workspace is reused or cleaned up.
 *
 * Spec: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 */
#ifndef SIG_SIGN_H
#define SIG_SIGN_H

#include "sig_sha256.h"
#include "sig_types.h"

#define SIG_MAX_HEADERS 256
#define SIG_MAX_QUERY_PARAMS 512
/* Longest accepted region, service, or region set. */
#define SIG_MAX_SCOPE_PART 64
#define SIG_MAX_EXPIRES_S 604800u
#define SIG_AMZ_DATE_LEN 16 /* YYYYMMDDTHHMMSSZ */
/* A v4 signature is 64 hex digits; a v4a DER ECDSA signature is at most 72 bytes. */
#define SIG_MAX_SIGNATURE_HEX 144

#define SIG_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIG_STREAMING_PAYLOAD "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
#define SIG_STREAMING_PAYLOAD_TRAILER "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
#define SIG_STREAMING_UNSIGNED_TRAILER "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

struct sig_header {
    struct sig_slice name;  /* any case; validated as an RFC 9110 token */
    struct sig_slice value; /* raw; may contain folded line breaks (CRLF/LF + SP/HT) */
};

/* The request to sign, all borrowed from the caller. */
struct sig_request {
    struct sig_slice method;          /* e.g. "GET" */
    struct sig_slice path;            /* wire form, without the query; empty means "/" */
    struct sig_slice query;           /* wire form after '?', without it; may be empty */
    const struct sig_header *headers; /* must not already contain the headers the signer adds */
    size_t header_count;
};

/* Credentials, borrowed. session_token.len == 0 means none. */
struct sig_credentials {
    struct sig_slice access_key_id;
    struct sig_slice secret_access_key;
    struct sig_slice session_token;
};

enum sig_alg {
    SIG_ALG_V4 = 0,  /* AWS4-HMAC-SHA256 */
    SIG_ALG_V4A = 1, /* AWS4-ECDSA-P256-SHA256 */
};

enum sig_form {
    SIG_FORM_HEADER = 0, /* Authorization header */
    SIG_FORM_QUERY = 1,  /* presigned URL (X-Amz-* query parameters) */
};

/* How the canonical URI is computed from the wire path. */
enum sig_uri_mode {
    /* All services but S3: remove dot segments and duplicate slashes (RFC 3986 5.2.4), then
     * URI-encode the wire path once more ("double encoding", as botocore and the services). */
    SIG_URI_NORMALIZE = 0,
    /* Encode the wire path once more without normalizing it. */
    SIG_URI_ENCODE_ONLY = 1,
    /* S3: no normalization; percent-decode the wire path, then encode it exactly once, as S3
     * computes it: a raw '=' and "%3D" sign the same, and '+' is a literal plus. */
    SIG_URI_S3 = 2,
};

struct sig_v4a_key;

struct sig_params {
    enum sig_alg alg;
    enum sig_form form;
    enum sig_uri_mode uri_mode;
    struct sig_slice region;  /* v4: the region; v4a: the region set (e.g. "us-east-1", "*") */
    struct sig_slice service; /* signing name, e.g. "s3", "execute-api" */
    int64_t unix_time;        /* signing time, seconds since the epoch (UTC) */
    /* 64 lowercase hex digits of the body's SHA-256, or a literal such as
     * SIG_UNSIGNED_PAYLOAD or SIG_STREAMING_PAYLOAD. Empty means the hash of no bytes. */
    struct sig_slice payload_hash;
    /* Add and sign x-amz-content-sha256: payload_hash (S3 needs it). */
    bool add_content_sha256;
    /* Send the session token without signing it (added after signing; some services). */
    bool omit_session_token;
    uint32_t expires_s; /* query form only: X-Amz-Expires, 1..SIG_MAX_EXPIRES_S */
    /* v4a only: the key derived from the credentials (sig_v4a.h), borrowed. */
    const struct sig_v4a_key *v4a_key;
};

/*
 * Per (secret, date, region, service) cache of the derived signing key as a keyed HMAC
 * state. Caller-owned, one per thread (not thread-safe). Holds secrets: cleanup wipes.
 */
#define SIG_KEY_CACHE_SLOTS 8
#define SIG_KEY_CACHE_MAX_SECRET 128

struct sig_key_cache_slot {
    bool used;
    uint8_t secret_len;
    uint8_t region_len;
    uint8_t service_len;
    uint8_t secret[SIG_KEY_CACHE_MAX_SECRET];
    char date[8];
    char region[SIG_MAX_SCOPE_PART];
    char service[SIG_MAX_SCOPE_PART];
    struct sig_hmac key;
};

struct sig_key_cache {
    struct sig_key_cache_slot slots[SIG_KEY_CACHE_SLOTS];
    unsigned next_victim;
    uint64_t hits;
    uint64_t misses;
};

void sig_key_cache_init(struct sig_key_cache *c);
void sig_key_cache_cleanup(struct sig_key_cache *c);

/*
 * The keyed HMAC state for kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region),
 * service), "aws4_request"), from the cache or derived into it. `date` is YYYYMMDD.
 * `out` receives a copy (wipe it with sig_hmac_cleanup). cache may be NULL.
 */
SIG_MUST_USE enum sig_err sig_signing_key(struct sig_key_cache *cache, struct sig_slice secret,
                                          struct sig_slice date, struct sig_slice region,
                                          struct sig_slice service, struct sig_hmac *out);

/* Index entry used while sorting; internal to the signer but sized here for the caller. */
struct sig_span {
    uint32_t off;
    uint32_t len;
    uint32_t off2;
    uint32_t len2;
};

/*
 * Scratch memory for one signature at a time. The caller provides `mem` (e.g. 64 KiB per
 * thread); a request whose canonical form does not fit fails with SIG_ERR_TOO_LARGE.
 */
struct sig_workspace {
    struct sig_buf buf;
    struct sig_span headers[SIG_MAX_HEADERS];
    struct sig_span params[SIG_MAX_QUERY_PARAMS];
};

void sig_workspace_init(struct sig_workspace *ws, void *mem, size_t cap);
/* Wipes what the last signature wrote (it may include the session token). */
void sig_workspace_cleanup(struct sig_workspace *ws);

/* Headers the caller adds to the outgoing request, in this order, for the header form. */
#define SIG_MAX_ADD_HEADERS 5

/* The result; every slice points into the workspace or the params/credentials. */
struct sig_result {
    struct sig_slice canonical_request;
    struct sig_slice string_to_sign;
    struct sig_slice signed_headers;   /* "host;x-amz-date" */
    struct sig_slice credential_scope; /* "20150830/us-east-1/service/aws4_request" */
    struct sig_slice signature;        /* lowercase hex */
    /* Header form: add these (X-Amz-Security-Token, X-Amz-Date, X-Amz-Region-Set,
     * x-amz-content-sha256, Authorization) to the request. */
    struct sig_header add_headers[SIG_MAX_ADD_HEADERS];
    size_t add_header_count;
    /* Query form: the complete query string to send (original wire query first). */
    struct sig_slice query;
    char amz_date[SIG_AMZ_DATE_LEN + 1];
};

/*
 * Signs `req`. Validates every input; on error nothing in `out` is meaningful and the error
 * code says which input was refused. Never logs; the workspace holds the token afterwards
 * if there is one (sig_workspace_cleanup wipes it).
 */
SIG_MUST_USE enum sig_err sig_sign(const struct sig_request *req, const struct sig_params *p,
                                   const struct sig_credentials *creds, struct sig_key_cache *cache,
                                   struct sig_workspace *ws, struct sig_result *out);

/* Formats unix_time as YYYYMMDDTHHMMSSZ (UTC). Fails for years outside 1970..9999. */
SIG_MUST_USE enum sig_err sig_format_amz_date(int64_t unix_time, char out[SIG_AMZ_DATE_LEN + 1]);

/* True if a header with this (any-case) name is never signed: hop-by-hop headers
 * (connection, keep-alive, transfer-encoding, te, trailer, upgrade, proxy-*), expect,
 * user-agent, x-amzn-trace-id, and authorization. */
bool sig_header_is_unsignable(struct sig_slice name);

/* Appends the RFC 3986 encoding of `in` (unreserved bytes kept, others %XX uppercase);
 * with keep_slash, '/' is kept too. */
SIG_MUST_USE enum sig_err sig_uri_encode(struct sig_buf *out, struct sig_slice in, bool keep_slash);

#endif
