/*
 * sig_canonical.h: the pieces of a SigV4 canonical request (internal to the signer, exposed
 * for unit tests). All output is appended to a struct sig_buf; nothing allocates.
 *
 * Spec: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 * ("Create a canonical request"), RFC 3986 sections 2.1-2.3 and 5.2.4.
 */
#ifndef SIG_CANONICAL_H
#define SIG_CANONICAL_H

#include "sig_sign.h"

/* Appends the canonical URI of the wire `path` under `mode` (see enum sig_uri_mode).
 * Errors: SIG_ERR_BAD_PATH (control byte, or not starting with '/'),
 * SIG_ERR_BAD_PERCENT_ENCODING (S3 mode), SIG_ERR_TOO_LARGE. */
SIG_MUST_USE enum sig_err sig_canonical_uri(struct sig_buf *out, struct sig_slice path,
                                            enum sig_uri_mode mode);

/*
 * Query parameters as (encoded key, encoded value) spans into ws->buf. Parsing decodes each
 * key and value (a '+' is a space, as in form encoding) and re-encodes it with the RFC 3986
 * unreserved set, so equivalent wire spellings canonicalize the same.
 */
struct sig_query {
    struct sig_workspace *ws;
    size_t count;
};

SIG_MUST_USE enum sig_err sig_query_parse(struct sig_query *q, struct sig_slice wire);
/* Adds a parameter whose key is already canonical and whose value is encoded here. */
SIG_MUST_USE enum sig_err sig_query_add(struct sig_query *q, struct sig_slice key,
                                        struct sig_slice raw_value);
/* Sorts by encoded key, then encoded value, and appends "k=v&k2=v2" to ws->buf. */
SIG_MUST_USE enum sig_err sig_query_write(struct sig_query *q, struct sig_slice *out);

/* Canonical headers: lowercase names and whitespace-folded values as spans into ws->buf. */
struct sig_headers {
    struct sig_workspace *ws;
    size_t count;
    unsigned reserved_seen; /* which of the headers the signer adds are present */
};

/* Adds one header unless its name is never signed; validates name and value.
 * Errors: SIG_ERR_BAD_HEADER_NAME, SIG_ERR_BAD_HEADER_VALUE, SIG_ERR_TOO_MANY_HEADERS,
 * SIG_ERR_TOO_LARGE. */
SIG_MUST_USE enum sig_err sig_headers_add(struct sig_headers *h, struct sig_slice name,
                                          struct sig_slice value);
/* Adds a header whose lowercase name and value are already canonical (the signer's own). */
SIG_MUST_USE enum sig_err sig_headers_add_verbatim(struct sig_headers *h,
                                                   struct sig_slice lower_name,
                                                   struct sig_slice value);
/* True if a header with this lowercase name was added. */
bool sig_headers_has(const struct sig_headers *h, struct sig_slice lower_name);
/* Sorts (stable), appends the canonical header block ("name:v1,v2\n"...) and then the signed
 * header list ("a;b;c") to ws->buf, returning both as slices. */
SIG_MUST_USE enum sig_err sig_headers_write(struct sig_headers *h, struct sig_slice *canonical,
                                            struct sig_slice *signed_headers);

#endif
