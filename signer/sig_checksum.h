/*
 * sig_checksum.h: the S3 flexible checksums (CRC32, CRC32C, SHA-256) that a proxy sends as
 * aws-chunked trailers (x-amz-checksum-*), and the base64 they are sent in.
 *
 * Synchronous and allocation-free; every state lives in caller-owned storage. Data may arrive
 * as any number of non-contiguous segments (e.g. libevent buffer chains): updating segment by
 * segment gives the same result as one update over their concatenation, and nothing is copied.
 *
 * Spec: https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
 * (the trailer value is the base64 of the big-endian digest).
 */
#ifndef SIG_CHECKSUM_H
#define SIG_CHECKSUM_H

#include "sig_sha256.h"
#include "sig_types.h"

/*
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's crc32) and CRC-32C
 * (Castagnoli, reflected polynomial 0x82F63B78, as iSCSI and S3's CRC32C).
 *
 * zlib's convention: start from 0 and feed the previous result back in, so
 * update(update(0, a), b) == update(0, a || b). `p` may be NULL when n == 0.
 * CRC-32 folds with the PCLMULQDQ carry-less multiply and CRC-32C uses the SSE4.2 crc32
 * instruction when the CPU has them (checked once at load time); both fall back to slice-by-8
 * tables (and use them for short inputs and tails).
 */
uint32_t sig_crc32_update(uint32_t crc, const void *p, size_t n);
uint32_t sig_crc32c_update(uint32_t crc, const void *p, size_t n);
/* The table-driven versions, whatever the CPU; exposed so tests can hold the accelerated
 * paths against them. */
uint32_t sig_crc32_update_portable(uint32_t crc, const void *p, size_t n);
uint32_t sig_crc32c_update_portable(uint32_t crc, const void *p, size_t n);
/* True if sig_crc32_update uses PCLMULQDQ (with SSE4.1) on this CPU. */
bool sig_crc32_hw_available(void);
/* True if sig_crc32c_update uses the SSE4.2 instruction on this CPU. */
bool sig_crc32c_hw_available(void);

/* Length of the padded base64 (RFC 4648 section 4) of n bytes, without a terminator. */
#define SIG_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/*
 * Appends the padded base64 (RFC 4648 section 4, alphabet A-Z a-z 0-9 + /) of `in` to `out`.
 * SIG_ERR_TOO_LARGE if it does not fit (or its length would overflow size_t); `out` is then
 * unchanged. `in` is borrowed and only read.
 */
SIG_MUST_USE enum sig_err sig_base64_append(struct sig_buf *out, struct sig_slice in);

enum sig_checksum_alg {
    SIG_CHECKSUM_CRC32 = 0,  /* x-amz-checksum-crc32 */
    SIG_CHECKSUM_CRC32C = 1, /* x-amz-checksum-crc32c */
    SIG_CHECKSUM_SHA256 = 2, /* x-amz-checksum-sha256 */
};

/* Longest digest and longest base64 value (SHA-256: 32 bytes, 44 characters). */
#define SIG_CHECKSUM_MAX_DIGEST SIG_SHA256_LEN
#define SIG_CHECKSUM_MAX_B64 SIG_BASE64_LEN(SIG_CHECKSUM_MAX_DIGEST)

/*
 * Parses an algorithm as S3 spells it in x-amz-sdk-checksum-algorithm ("CRC32", "CRC32C",
 * "SHA256"; any case). SIG_ERR_INVALID_ARG for anything else (including CRC64NVME, SHA1,
 * which this signer does not compute); `out` is then untouched.
 */
SIG_MUST_USE enum sig_err sig_checksum_alg_parse(struct sig_slice name, enum sig_checksum_alg *out);
/* The trailer header name, lowercase ("x-amz-checksum-crc32c"); the empty slice for a value
 * outside the enum. Static storage. */
struct sig_slice sig_checksum_header_name(enum sig_checksum_alg alg);
/* Digest length in bytes (4, 4, 32); 0 for a value outside the enum. */
size_t sig_checksum_digest_len(enum sig_checksum_alg alg);
/* Length of the base64 trailer value (8, 8, 44); 0 for a value outside the enum. Known
 * before any data is seen, so a proxy can size the aws-chunked body up front. */
size_t sig_checksum_b64_len(enum sig_checksum_alg alg);

/* An incremental checksum; caller-owned storage, no cleanup needed beyond the final call. */
struct sig_checksum {
    enum sig_checksum_alg alg;
    uint32_t crc;
    struct sig_sha256 sha;
};

/* SIG_ERR_INVALID_ARG if alg is outside the enum (c is then unusable). */
SIG_MUST_USE enum sig_err sig_checksum_init(struct sig_checksum *c, enum sig_checksum_alg alg);
void sig_checksum_update(struct sig_checksum *c, const void *p, size_t n);
/* Updates with `count` segments in order, as if concatenated; no copy is made. */
void sig_checksum_update_iov(struct sig_checksum *c, const struct sig_slice *segs, size_t count);
/* Writes the big-endian digest, returns its length, and wipes the state. */
size_t sig_checksum_final(struct sig_checksum *c, uint8_t out[SIG_CHECKSUM_MAX_DIGEST]);
/* Writes the base64 of the big-endian digest and a NUL, returns its length (without the NUL),
 * and wipes the state: the value of the x-amz-checksum-* trailer. */
size_t sig_checksum_final_b64(struct sig_checksum *c, char out[SIG_CHECKSUM_MAX_B64 + 1]);

#endif
