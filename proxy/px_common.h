/*
 * px_common.h: the proxy's error codes, allocation and logging.
 */
#ifndef PX_COMMON_H
#define PX_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_types.h"

/* Proxy error codes occupy 300..399. Each maps to one HTTP status (px_err_status). */
enum px_err {
    PX_OK = 0,
    PX_ERR_BAD_REQUEST = 300,       /* 400 malformed request or ambiguous framing */
    PX_ERR_HOST_NOT_ALLOWED = 301,  /* 403 */
    PX_ERR_CLIENT_TIMEOUT = 302,    /* 408 */
    PX_ERR_LENGTH_REQUIRED = 303,   /* 411 */
    PX_ERR_BODY_TOO_LARGE = 304,    /* 413 */
    PX_ERR_URL_TOO_LONG = 305,      /* 414 */
    PX_ERR_HEADERS_TOO_LARGE = 306, /* 431 */
    PX_ERR_INTERNAL = 307,          /* 500 */
    PX_ERR_NOT_IMPLEMENTED = 308,   /* 501 */
    PX_ERR_UPSTREAM_CONNECT = 309,  /* 502 */
    PX_ERR_UPSTREAM_TLS = 310,      /* 502 */
    PX_ERR_UPSTREAM_PROTOCOL = 311, /* 502 */
    PX_ERR_NO_CREDENTIALS = 312,    /* 503 */
    PX_ERR_UPSTREAM_TIMEOUT = 313,  /* 504 */
    PX_ERR_SPOOL = 314,             /* 500: spool file could not be written or read */
    PX_ERR_CLIENT_GONE = 315,       /* no response possible: the client closed or reset */
};

const char *px_err_str(enum px_err err);
/* The HTTP status a failure maps to (0 for PX_ERR_CLIENT_GONE: nothing is sent). */
int px_err_status(enum px_err err);
const char *px_status_reason(int status);

/* Decimal and lower-case hexadecimal digits of v (no terminator); return the length. For the
 * request path, where printf's format parsing shows in profiles. */
#define PX_DEC_MAX 20
size_t px_fmt_dec(char out[PX_DEC_MAX], uint64_t v);
#define PX_HEX_MAX 16
size_t px_fmt_hex(char out[PX_HEX_MAX], uint64_t v);

/* True if the comma-separated header list (Connection, Expect, ...) has `token`, compared
 * ASCII case-insensitively, elements trimmed of spaces and tabs. */
bool px_list_has(struct sig_slice list, struct sig_slice token);

/* calloc that aborts on exhaustion: configured limits keep memory bounded. */
/* Copies s into dst as a C string; false (dst unspecified) when it does not fit in cap. */
bool px_copy_cstr(char *dst, size_t cap, struct sig_slice s);
void *px_xmalloc(size_t n);
char *px_xstrndup(const char *s, size_t n);

enum px_log_level { PX_LOG_ERROR = 0, PX_LOG_INFO = 1, PX_LOG_DEBUG = 2 };

/* Set once at start-up, read by every worker. */
extern int px_log_level;

/* One line to stderr, written with a single write(2) so lines from workers don't interleave.
 * Never pass secrets, canonical requests or strings to sign. */
void px_log(enum px_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
