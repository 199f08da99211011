/*
 * sig_chunked.h: S3 aws-chunked request bodies: per-chunk signatures chained from the
 * request's seed signature, the trailer signature, the chunk framing, and the encoded
 * Content-Length.
 *
 * Synchronous and allocation-free. The signer never sees chunk data: the caller hashes each
 * chunk where it lies (sig_sha256_update_iov over buffer segments) and passes the digest, or
 * passes the segments to sig_chunk_sign_iov. Formatting functions append to a caller's
 * sig_buf and leave it unchanged when they fail.
 *
 * Specs (AWS S3 API reference, "Authenticating Requests (AWS Signature Version 4)"):
 *  - sigv4-streaming.html: "Transferring Payload in Multiple Chunks (Chunked Upload)"
 *  - sigv4-streaming-trailers.html: "Including Trailing Headers (Chunked Upload)"
 *  - sigv4-auth-using-authorization-header.html: the x-amz-content-sha256 values.
 *
 * The body of each mode, with CRLF = "\r\n" (RFC 9112 section 7.1 chunked framing, the
 * chunk-signature being a chunk extension):
 *   SIG_CHUNKED_SIGNED:
 *     { hex(len) ";chunk-signature=" sig CRLF data CRLF }  "0;chunk-signature=" sig CRLF CRLF
 *   SIG_CHUNKED_SIGNED_TRAILER:
 *     { same }  "0;chunk-signature=" sig CRLF
 *     { name ":" value CRLF }  "x-amz-trailer-signature:" trailer-sig CRLF  CRLF
 *   SIG_CHUNKED_UNSIGNED_TRAILER:
 *     { hex(len) CRLF data CRLF }  "0" CRLF  { name ":" value CRLF }  CRLF
 * hex(len) is lowercase without leading zeros. Every data chunk but the last carries at least
 * SIG_CHUNKED_MIN_CHUNK_SIZE bytes (S3 rejects smaller ones); the last data chunk may be
 * shorter, and the zero-length chunk always ends the data.
 *
 * Request headers the caller sends with the seed (all signed, as S3 requires):
 * content-encoding: aws-chunked, x-amz-decoded-content-length: <decoded length>,
 * content-length: sig_chunked_encoded_length(), x-amz-content-sha256: sig_chunked_content_sha256()
 * (sig_sign adds this one with add_content_sha256 = true), and for the trailer modes
 * x-amz-trailer: the trailer names, comma-separated, in the order sent.
 */
#ifndef SIG_CHUNKED_H
#define SIG_CHUNKED_H

#include "sig_sha256.h"
#include "sig_sign.h"
#include "sig_types.h"

enum sig_chunked_mode {
    SIG_CHUNKED_SIGNED = 0,           /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
    SIG_CHUNKED_SIGNED_TRAILER = 1,   /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
    SIG_CHUNKED_UNSIGNED_TRAILER = 2, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
};

/* S3: "Chunk size must be at least 8 KB" for every chunk but the last. */
#define SIG_CHUNKED_MIN_CHUNK_SIZE 8192u
/* A signed chunk must be buffered whole before its header can be sent, so the chunk size
 * bounds the proxy's memory per upload; 64 MiB is far above what any SDK uses (64 KiB-1 MiB). */
#define SIG_CHUNKED_MAX_CHUNK_SIZE (64u * 1024 * 1024)
/* 1 PiB: far above S3's 5 TiB object limit, and low enough that no length sum can overflow. */
#define SIG_CHUNKED_MAX_DECODED_LEN (UINT64_C(1) << 50)
#define SIG_CHUNKED_MAX_TRAILERS 8
#define SIG_CHUNKED_MAX_TRAILER_NAME 64
#define SIG_CHUNKED_MAX_TRAILER_VALUE 256
/* Longest chunk header: 16 hex digits + ";chunk-signature=" + 64 + CRLF. */
#define SIG_CHUNK_HEADER_MAX (16 + 17 + SIG_SHA256_HEX_LEN + 2)
/* Longest scope: "YYYYMMDD/" region "/" service "/aws4_request". */
#define SIG_CHUNKED_MAX_SCOPE (9 + SIG_MAX_SCOPE_PART + 1 + SIG_MAX_SCOPE_PART + 13)

/* The value of x-amz-content-sha256 (and sig_params.payload_hash) for the mode; static
 * storage. The empty slice for a value outside the enum. */
struct sig_slice sig_chunked_content_sha256(enum sig_chunked_mode mode);

/* A trailer whose value is not known yet, only its length (a checksum's base64 length is
 * fixed: sig_checksum_b64_len). */
struct sig_trailer_size {
    struct sig_slice name; /* borrowed */
    size_t value_len;
};

/*
 * The encoded length of the body (its Content-Length) when `decoded_len` bytes are sent in
 * chunks of `chunk_size` (the last data chunk holding the remainder), followed by trailers
 * of these names and value lengths. Trailers follow the rules of sig_chunked_trailers() and
 * are only allowed in the trailer modes.
 * Errors: SIG_ERR_INVALID_ARG (mode outside the enum, trailers in SIG_CHUNKED_SIGNED, chunk_size
 * outside MIN..MAX), SIG_ERR_TOO_LARGE (decoded_len > SIG_CHUNKED_MAX_DECODED_LEN, too many
 * trailers, a value longer than SIG_CHUNKED_MAX_TRAILER_VALUE), SIG_ERR_BAD_HEADER_NAME.
 * On error *out_len is untouched.
 */
SIG_MUST_USE enum sig_err sig_chunked_encoded_length(enum sig_chunked_mode mode,
                                                     uint64_t decoded_len, uint64_t chunk_size,
                                                     const struct sig_trailer_size *trailers,
                                                     size_t trailer_count, uint64_t *out_len);

/*
 * Appends a chunk header: hex(data_len) ";chunk-signature=" signature CRLF when `signature`
 * is not empty (the signed modes; it must be 64 lowercase hex digits), or hex(data_len) CRLF
 * when it is empty (SIG_CHUNKED_UNSIGNED_TRAILER). The caller then sends the data and CRLF;
 * after the zero-length chunk's header it sends sig_chunked_trailers() instead.
 * Errors: SIG_ERR_TOO_LARGE (data_len > SIG_CHUNKED_MAX_CHUNK_SIZE, or `out` too small; at
 * most SIG_CHUNK_HEADER_MAX bytes are needed), SIG_ERR_INVALID_ARG (malformed signature).
 */
SIG_MUST_USE enum sig_err sig_chunk_header(struct sig_buf *out, uint64_t data_len,
                                           struct sig_slice signature);

/*
 * Appends what follows the zero-length chunk's header: each trailer as name ":" value CRLF,
 * then, in SIG_CHUNKED_SIGNED_TRAILER, "x-amz-trailer-signature:" trailer_signature CRLF, then
 * the closing CRLF. In SIG_CHUNKED_SIGNED that is the closing CRLF alone.
 * Trailers (borrowed): at most SIG_CHUNKED_MAX_TRAILERS; names are lowercase RFC 9110 tokens
 * of 1..SIG_CHUNKED_MAX_TRAILER_NAME bytes, in strictly ascending byte order (the order the
 * trailer signature's canonical form uses, so the wire and the signature agree), and not
 * x-amz-trailer-signature; values are 0..SIG_CHUNKED_MAX_TRAILER_VALUE visible ASCII bytes
 * (0x21-0x7E). Refusing whitespace makes the canonical value (trimmed, spaces collapsed, as
 * for request headers) the wire value byte for byte; checksum values never contain any.
 * trailer_signature: 64 lowercase hex digits in SIG_CHUNKED_SIGNED_TRAILER, empty otherwise.
 * Errors: SIG_ERR_INVALID_ARG (mode, trailers in SIG_CHUNKED_SIGNED, signature presence or
 * form, order or duplicates), SIG_ERR_TOO_LARGE (count, value length, or `out` too small),
 * SIG_ERR_BAD_HEADER_NAME, SIG_ERR_BAD_HEADER_VALUE.
 */
SIG_MUST_USE enum sig_err sig_chunked_trailers(struct sig_buf *out, enum sig_chunked_mode mode,
                                               const struct sig_header *trailers, size_t count,
                                               struct sig_slice trailer_signature);

/*
 * Signs the chunks of one body in a signed mode. Caller-owned; holds the signing key, so
 * release it with sig_chunk_signer_cleanup on every path. Not thread-safe; one per body.
 */
struct sig_chunk_signer {
    struct sig_hmac key; /* kSigning for the seed's date/region/service; secret */
    char amz_date[SIG_AMZ_DATE_LEN + 1];
    uint8_t scope[SIG_CHUNKED_MAX_SCOPE];
    size_t scope_len;
    char prev_signature[SIG_SHA256_HEX_LEN + 1];
    enum sig_chunked_mode mode;
    uint8_t phase;    /* internal: unusable, data chunks, final chunk signed, trailer signed */
    bool short_chunk; /* internal: a data chunk shorter than the minimum was signed */
};

/*
 * Starts the chain from `seed`, the result of sig_sign() for this request with
 * alg = SIG_ALG_V4, form = SIG_FORM_HEADER, payload_hash = sig_chunked_content_sha256(mode)
 * and add_content_sha256 = true. The chunk signatures use kSigning for the seed's scope
 * (date/region/service/aws4_request), which this call gets from sig_signing_key() with the
 * same secret and cache the seed was signed with (a cache hit then; cache may be NULL).
 * `seed` and `secret_access_key` are borrowed for the call only; the signer keeps a copy of
 * the keyed HMAC state, the date, the scope and the seed signature.
 * Errors: SIG_ERR_INVALID_ARG if mode is not a signed mode, or the seed is not a v4 header
 * signature over that payload hash (its signature is not 64 lowercase hex digits, its date or
 * scope is malformed, or they disagree with its string to sign); SIG_ERR_BAD_SCOPE if the
 * scope is longer than SIG_CHUNKED_MAX_SCOPE or a part is refused by sig_signing_key;
 * SIG_ERR_BAD_CREDENTIALS for an empty or too long secret. On error `s` holds no key and
 * cannot sign (cleanup is still harmless).
 */
SIG_MUST_USE enum sig_err sig_chunk_signer_init(struct sig_chunk_signer *s,
                                                enum sig_chunked_mode mode,
                                                const struct sig_result *seed,
                                                struct sig_slice secret_access_key,
                                                struct sig_key_cache *cache);

/*
 * Signs the next chunk from the SHA-256 of its data and its length, writes the signature
 * (64 lowercase hex digits and a NUL) to `out`, and chains it. data_len == 0 is the final
 * chunk (data_sha256 must then be the hash of no bytes); after it, only
 * sig_chunk_sign_trailer is allowed.
 * Errors: SIG_ERR_BAD_CHUNK (called after the final chunk, or a data chunk follows one shorter
 * than SIG_CHUNKED_MIN_CHUNK_SIZE), SIG_ERR_TOO_LARGE (data_len > SIG_CHUNKED_MAX_CHUNK_SIZE),
 * SIG_ERR_INVALID_ARG (data_len == 0 with another digest). On error nothing changes.
 */
SIG_MUST_USE enum sig_err sig_chunk_sign(struct sig_chunk_signer *s, uint64_t data_len,
                                         const uint8_t data_sha256[SIG_SHA256_LEN],
                                         char out[SIG_SHA256_HEX_LEN + 1]);

/* sig_chunk_sign over the concatenation of `count` borrowed segments, hashed in place. */
SIG_MUST_USE enum sig_err sig_chunk_sign_iov(struct sig_chunk_signer *s,
                                             const struct sig_slice *segs, size_t count,
                                             char out[SIG_SHA256_HEX_LEN + 1]);

/*
 * In SIG_CHUNKED_SIGNED_TRAILER, after the final chunk: signs the trailers (same rules as
 * sig_chunked_trailers) and writes x-amz-trailer-signature's value (64 hex digits, NUL) to
 * `out`. The string to sign is
 *   "AWS4-HMAC-SHA256-TRAILER\n" amz-date "\n" scope "\n" final-chunk-signature "\n"
 *   hex(SHA-256({ name ":" value "\n" }))
 * (the trailers' canonical form: as canonical headers, with LF, not CRLF).
 * Errors: SIG_ERR_INVALID_ARG (wrong mode, or a trailer rule), SIG_ERR_BAD_CHUNK (before the
 * final chunk or a second time), SIG_ERR_TOO_LARGE, SIG_ERR_BAD_HEADER_NAME,
 * SIG_ERR_BAD_HEADER_VALUE. On error nothing changes.
 */
SIG_MUST_USE enum sig_err sig_chunk_sign_trailer(struct sig_chunk_signer *s,
                                                 const struct sig_header *trailers, size_t count,
                                                 char out[SIG_SHA256_HEX_LEN + 1]);

/* Wipes the key and the chain. Idempotent; safe on a zeroed or failed-init signer. */
void sig_chunk_signer_cleanup(struct sig_chunk_signer *s);

#endif
