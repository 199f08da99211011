/*
 * process.h: credential_process, the pure part: the command line and the program's answer.
 *
 * A profile's `credential_process = /opt/bin/get-creds --profile x` names a program whose
 * standard output is one JSON document (AWS SDKs and Tools Reference Guide, "Sourcing
 * credentials with an external process"):
 *
 *   {"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "...",
 *    "SessionToken": "...", "Expiration": "2026-11-29T08:00:00Z"}
 *
 * SessionToken and Expiration are optional (no Expiration: the credentials never expire).
 * The program is run without a shell: the line is split into words the way botocore does
 * (Python's shlex.split: '...' literal, "..." with only \" and \\ escapes (unlike a POSIX
 * shell, \$ \` and a backslash-newline keep their backslash there), \ outside quotes escapes the
 * next byte; no variables, globs, comments or operators). Pure: no I/O, no clock, no getenv;
 * proxy/px_creds.c runs the program.
 */
#ifndef PROCESS_H
#define PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "cred.h"
#include "sig_types.h"

#define PROC_MAX_OUTPUT_BYTES (64u * 1024) /* more output is an error */
#define PROC_MAX_ARGS 64u                  /* words of the command line, program included */
#define PROC_MAX_LINE_BYTES 4096u          /* the command line */

/* The words of a command line: argv[0..argc-1] point into `mem`, argv[argc] is NULL. */
struct proc_argv {
    char *argv[PROC_MAX_ARGS + 1];
    unsigned argc;
    char mem[PROC_MAX_LINE_BYTES + 1];
};

/*
 * Splits `line` into words as above. CRED_ERR_INVALID (msg says why, never echoing the line:
 * it may carry a secret) for an unterminated quote, an empty line, a NUL byte;
 * CRED_ERR_TOO_LONG over PROC_MAX_LINE_BYTES or PROC_MAX_ARGS words.
 */
SIG_MUST_USE enum cred_err proc_split(struct sig_slice line, struct proc_argv *out, char *msg,
                                      size_t msg_len);

/* What the program answered. */
struct proc_answer {
    struct cred *creds; /* CRED_OK: a new reference the caller owns */
    int64_t expiration; /* seconds since the epoch; 0 when the answer has no Expiration */
};

/*
 * Parses the program's standard output (at most PROC_MAX_OUTPUT_BYTES). It must be one JSON
 * object (RFC 8259, checked byte for byte: no YAML-only syntax, comments, trailing commas or
 * byte order mark; nesting at most 64 deep, at most 64 top-level keys, none twice), whose
 * values libyaml's parser reads. Version must be the number 1 (not "1", 1.0 or true);
 * AccessKeyId and SecretAccessKey non-empty strings; SessionToken and Expiration (ISO 8601
 * UTC, as sts_parse_time) optional strings, null meaning absent and an empty SessionToken no
 * token; the three credential values printable ASCII without spaces (they go into headers);
 * other keys ignored. CRED_ERR_BAD_ANSWER with a one-line msg (naming the field or the
 * problem, never a value) otherwise; msg is "" on CRED_OK. Every copy this function makes of
 * the output, and the buffers of libyaml's it can reach, are wiped (not the blocks libyaml
 * frees while growing a scalar: it has no allocator hooks). `out` is borrowed (the caller
 * wipes it). Synchronous; thread-safe.
 */
SIG_MUST_USE enum cred_err proc_parse_output(const uint8_t *out, size_t len,
                                             struct proc_answer *ans, char *msg, size_t msg_len);

#endif
