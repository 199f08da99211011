/* px_common.c: error strings, allocation and logging for the proxy. */
#include "px_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int px_log_level = PX_LOG_ERROR;

const char *px_err_str(enum px_err err)
{
    switch (err) {
    case PX_OK:
        return "ok";
    case PX_ERR_BAD_REQUEST:
        return "malformed request";
    case PX_ERR_HOST_NOT_ALLOWED:
        return "upstream host not allowed";
    case PX_ERR_CLIENT_TIMEOUT:
        return "client timed out";
    case PX_ERR_LENGTH_REQUIRED:
        return "length required";
    case PX_ERR_BODY_TOO_LARGE:
        return "request body too large";
    case PX_ERR_URL_TOO_LONG:
        return "request target too long";
    case PX_ERR_HEADERS_TOO_LARGE:
        return "request header fields too large";
    case PX_ERR_INTERNAL:
        return "internal error";
    case PX_ERR_NOT_IMPLEMENTED:
        return "not implemented";
    case PX_ERR_UPSTREAM_CONNECT:
        return "upstream connection failed";
    case PX_ERR_UPSTREAM_TLS:
        return "upstream TLS failed";
    case PX_ERR_UPSTREAM_PROTOCOL:
        return "upstream protocol error";
    case PX_ERR_NO_CREDENTIALS:
        return "no credentials";
    case PX_ERR_UPSTREAM_TIMEOUT:
        return "upstream timed out";
    case PX_ERR_SPOOL:
        return "request body spool failed";
    case PX_ERR_CLIENT_GONE:
        return "client closed the connection";
    }
    return "unknown proxy error";
}

int px_err_status(enum px_err err)
{
    switch (err) {
    case PX_OK:
        return 200;
    case PX_ERR_BAD_REQUEST:
        return 400;
    case PX_ERR_HOST_NOT_ALLOWED:
        return 403;
    case PX_ERR_CLIENT_TIMEOUT:
        return 408;
    case PX_ERR_LENGTH_REQUIRED:
        return 411;
    case PX_ERR_BODY_TOO_LARGE:
        return 413;
    case PX_ERR_URL_TOO_LONG:
        return 414;
    case PX_ERR_HEADERS_TOO_LARGE:
        return 431;
    case PX_ERR_INTERNAL:
    case PX_ERR_SPOOL:
        return 500;
    case PX_ERR_NOT_IMPLEMENTED:
        return 501;
    case PX_ERR_UPSTREAM_CONNECT:
    case PX_ERR_UPSTREAM_TLS:
    case PX_ERR_UPSTREAM_PROTOCOL:
        return 502;
    case PX_ERR_NO_CREDENTIALS:
        return 503;
    case PX_ERR_UPSTREAM_TIMEOUT:
        return 504;
    case PX_ERR_CLIENT_GONE:
        return 0;
    }
    return 500;
}

const char *px_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return "Error";
}

bool px_list_has(struct sig_slice list, struct sig_slice token)
{
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.ptr[i] == ' ' || list.ptr[i] == '\t' || list.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < list.len && list.ptr[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (list.ptr[end - 1] == ' ' || list.ptr[end - 1] == '\t'))
            end--;
        if (end > start &&
            sig_slice_eq_nocase((struct sig_slice){list.ptr + start, end - start}, token))
            return true;
    }
    return false;
}

size_t px_fmt_dec(char out[PX_DEC_MAX], uint64_t v)
{
    char tmp[PX_DEC_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t px_fmt_hex(char out[PX_HEX_MAX], uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[PX_HEX_MAX];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

void *px_xmalloc(size_t n)
{
    void *p = calloc(1, n == 0 ? 1 : n);
    if (p == NULL)
        abort();
    return p;
}

char *px_xstrndup(const char *s, size_t n)
{
    char *p = px_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = s[i];
    return p;
}

void px_log(enum px_log_level level, const char *fmt, ...)
{
    if ((int)level > px_log_level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(
        line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ sigv4d: ", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep the newline */
    line[len++] = '\n';
    /* A short or failed write of a log line is not worth more than trying once. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

bool px_copy_cstr(char *dst, size_t cap, struct sig_slice s)
{
    if (s.len >= cap)
        return false;
    struct sig_buf b;
    sig_buf_init(&b, dst, cap - 1);
    if (sig_buf_append_slice(&b, s) != SIG_OK)
        return false;
    dst[b.len] = '\0';
    return true;
}
