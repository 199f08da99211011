/* px_config.c: command-line parsing and validation. */
#include "px_config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "px_common.h"

static const char *const default_allow_hosts[] = {
    "*.amazonaws.com",
    "*.amazonaws.com.cn",
    "*.api.aws",
    "*.on.aws",
};

enum flag_id {
    F_PORT,
    F_NAME,
    F_REGION,
    F_HOST,
    F_SIGN_HOST,
    F_SCHEME,
    F_UNSIGNED,
    F_STRIP,
    F_CUSTOM_HEADERS,
    F_DUPLICATE_HEADERS,
    F_NO_VERIFY_SSL,
    F_IDLE_CONN_TIMEOUT,
    F_LOG_FAILED,
    F_VERBOSE,
    F_ROLE_ARN,
    F_CA_FILE,
    F_CONNECT_TO,
    F_ALLOW_HOST,
    F_WORKERS,
    F_MAX_BUFFER,
    F_MAX_BODY,
    F_SPOOL_DIR,
    F_MAX_HEADER_BYTES,
    F_MAX_URL_BYTES,
    F_MAX_HEADERS,
    F_MAX_CONNECTIONS,
    F_MAX_RESP_HEADER_BYTES,
    F_CLIENT_HEADER_TIMEOUT,
    F_CLIENT_IDLE_TIMEOUT,
    F_CONNECT_TIMEOUT,
    F_FIRST_BYTE_TIMEOUT,
    F_UPSTREAM_IDLE_TIMEOUT,
    F_SHUTDOWN_TIMEOUT,
    F_VERSION,
    F_HELP,
};

struct flag {
    enum flag_id id;
    const char *name; /* long name without "--" */
    char short_name;  /* 0 if none */
    const char *arg;  /* value placeholder, NULL for booleans */
    const char *help;
};

static const struct flag flags[] = {
    {F_PORT, "port", 0, "ADDR",
     "listen address, \":8080\" (all interfaces) or "
     "\"127.0.0.1:8080\" (default 127.0.0.1:8080)"},
    {F_NAME, "name", 0, "SERVICE", "signing name of the service (default: inferred from host)"},
    {F_REGION, "region", 0, "REGION",
     "signing region (default: inferred from host, then "
     "AWS_REGION, AWS_DEFAULT_REGION, the AWS_PROFILE's region, us-east-1)"},
    {F_HOST, "host", 0, "HOST[:PORT]",
     "fixed upstream host (default: the request's Host or "
     "absolute-form authority, if allowed)"},
    {F_SIGN_HOST, "sign-host", 0, "HOST", "Host header to send and sign (default: upstream)"},
    {F_SCHEME, "upstream-url-scheme", 0, "https|http", "upstream scheme (default https)"},
    {F_UNSIGNED, "unsigned-payload", 0, NULL, "stream bodies unhashed with UNSIGNED-PAYLOAD"},
    {F_STRIP, "strip", 's', "HEADER", "remove this header before signing (repeatable)"},
    {F_CUSTOM_HEADERS, "custom-headers", 0, "K=V,K2=V2", "add headers before signing"},
    {F_DUPLICATE_HEADERS, "duplicate-headers", 0, "HEADER",
     "copy this header to X-Original-HEADER before signing (repeatable)"},
    {F_NO_VERIFY_SSL, "no-verify-ssl", 0, NULL, "do not verify the upstream TLS certificate"},
    {F_IDLE_CONN_TIMEOUT, "transport.idle-conn-timeout", 0, "DURATION",
     "idle time before a pooled upstream connection closes (default 40s; 0: no limit)"},
    {F_LOG_FAILED, "log-failed-requests", 0, NULL, "log requests that fail (status >= 400)"},
    {F_VERBOSE, "verbose", 'v', NULL, "log one line per request (twice: debug)"},
    {F_ROLE_ARN, "role-arn", 0, "ARN", "assume this role with STS and sign with its credentials"},
    {F_CA_FILE, "ca-file", 0, "FILE",
     "PEM CA bundle for upstream verification (default: the "
     "system store; SSL_CERT_FILE and SSL_CERT_DIR honoured)"},
    {F_CONNECT_TO, "connect-to", 0, "H1:P1:H2:P2",
     "connect to H2:P2 for upstream H1:P1 (curl's meaning; repeatable)"},
    {F_ALLOW_HOST, "allow-host", 0, "PATTERN",
     "also allow this upstream host or *.suffix "
     "(repeatable; default AWS endpoint domains)"},
    {F_WORKERS, "workers", 0, "N", "worker threads (default: one per CPU)"},
    {F_MAX_BUFFER, "max-buffer-bytes", 0, "N",
     "request body kept in memory before spooling, or for S3 with a known length before "
     "signing it as aws-chunked (default 8MiB; K/M/G suffixes)"},
    {F_MAX_BODY, "max-body-bytes", 0, "N", "largest hashed request body (default 5GiB)"},
    {F_SPOOL_DIR, "spool-dir", 0, "DIR",
     "directory for body spool files (default $TMPDIR "
     "or /tmp)"},
    {F_MAX_HEADER_BYTES, "max-header-bytes", 0, "N", "request line + headers (default 64KiB)"},
    {F_MAX_URL_BYTES, "max-url-bytes", 0, "N", "request target length (default 16KiB)"},
    {F_MAX_HEADERS, "max-headers", 0, "N", "request header count (default 100)"},
    {F_MAX_CONNECTIONS, "max-connections", 0, "N",
     "client connections per worker; at the limit the worker stops accepting until one "
     "closes (default 4096)"},
    {F_MAX_RESP_HEADER_BYTES, "max-response-header-bytes", 0, "N",
     "upstream response head (default 64KiB)"},
    {F_CLIENT_HEADER_TIMEOUT, "client-header-timeout", 0, "DURATION",
     "time to receive a request head (default 10s)"},
    {F_CLIENT_IDLE_TIMEOUT, "client-idle-timeout", 0, "DURATION",
     "client keep-alive idle and body stall limit (default 60s)"},
    {F_CONNECT_TIMEOUT, "upstream-connect-timeout", 0, "DURATION",
     "DNS + TCP + TLS to the upstream (default 10s)"},
    {F_FIRST_BYTE_TIMEOUT, "upstream-first-byte-timeout", 0, "DURATION",
     "wait for the response after the request is sent (default 120s)"},
    {F_UPSTREAM_IDLE_TIMEOUT, "upstream-idle-timeout", 0, "DURATION",
     "upstream stall limit while streaming (default 120s)"},
    {F_SHUTDOWN_TIMEOUT, "shutdown-timeout", 0, "DURATION",
     "drain deadline after SIGTERM/SIGINT (default 10s)"},
    {F_VERSION, "version", 0, NULL, "print the version and exit"},
    {F_HELP, "help", 'h', NULL, "print this help and exit"},
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

void px_config_usage(FILE *f)
{
    fputs(
        "usage: sigv4d [flags]\n"
        "A SigV4 signing reverse proxy for AWS APIs: plain HTTP/1.1 in, signed HTTPS out.\n"
        "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; else the\n"
        "static keys of profile AWS_PROFILE (default \"default\") in AWS_SHARED_CREDENTIALS_FILE\n"
        "(~/.aws/credentials) or AWS_CONFIG_FILE (~/.aws/config).\n\nflags:\n",
        f);
    for (size_t i = 0; i < NFLAGS; i++) {
        char left[64];
        if (flags[i].short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", flags[i].short_name, flags[i].name,
                     flags[i].arg ? " " : "", flags[i].arg ? flags[i].arg : "");
        else
            snprintf(left, sizeof(left), "    --%s%s%s", flags[i].name, flags[i].arg ? " " : "",
                     flags[i].arg ? flags[i].arg : "");
        fprintf(f, "  %-40s %s\n", left, flags[i].help);
    }
    fputs("\nDURATION: Go syntax (\"40s\", \"1m30s\", \"500ms\") or plain seconds.\n", f);
}

static bool fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return false;
}

static bool cstr_eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* Go-style duration into milliseconds: a sequence of <number><unit>, unit one of
 * ns us ms s m h; a bare number means seconds. Limited to about 49 days (uint32 ms). */
static bool parse_duration_ms(const char *s, uint32_t *out)
{
    if (*s == '\0')
        return false;
    char *end;
    double total_ms = 0;
    const char *p = s;
    while (*p) {
        double v = strtod(p, &end);
        if (end == p || v < 0)
            return false;
        p = end;
        double mult;
        if (*p == '\0') {
            if (p != end || total_ms != 0 || end == s)
                return false;
            mult = 1000; /* bare number: seconds */
        } else if (strncmp(p, "ns", 2) == 0) {
            mult = 1e-6, p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            mult = 1e-3, p += 2;
        } else if (strncmp(p, "ms", 2) == 0) {
            mult = 1, p += 2;
        } else if (*p == 's') {
            mult = 1000, p += 1;
        } else if (*p == 'm') {
            mult = 60000, p += 1;
        } else if (*p == 'h') {
            mult = 3600000, p += 1;
        } else {
            return false;
        }
        total_ms += v * mult;
    }
    if (total_ms > 4.0e9)
        return false;
    *out = (uint32_t)total_ms;
    return true;
}

/* Decimal with optional K/M/G/T (binary multiples, optional "i"/"iB"/"B"). */
static bool parse_size(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mult = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = 1ull << 10;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1ull << 20;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1ull << 30;
        end++;
        break;
    case 't':
    case 'T':
        mult = 1ull << 40;
        end++;
        break;
    default:
        return false;
    }
    if (mult > 1) {
        if (*end == 'i')
            end++;
        if (*end == 'B')
            end++;
    }
    if (*end != '\0' || v > UINT64_MAX / mult)
        return false;
    *out = (uint64_t)v * mult;
    return true;
}

static bool parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool is_tchar(unsigned char c)
{
    /* RFC 9110 5.6.2 token characters */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(struct sig_slice s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar(s.ptr[i]))
            return false;
    return true;
}

static bool is_field_value(struct sig_slice s)
{
    /* RFC 9110 5.5: visible characters, SP and HTAB; no CR, LF or NUL */
    for (size_t i = 0; i < s.len; i++)
        if ((s.ptr[i] < 0x20 && s.ptr[i] != '\t') || s.ptr[i] == 0x7f)
            return false;
    return true;
}

/* A DNS name or IP literal: letters, digits, '-', '.', and for IPv6 in brackets ':'. */
static bool is_hostname(struct sig_slice s)
{
    if (s.len == 0 || s.len > 253)
        return false;
    if (s.ptr[0] == '[') {
        if (s.ptr[s.len - 1] != ']')
            return false;
        for (size_t i = 1; i + 1 < s.len; i++) {
            unsigned char c = s.ptr[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.'))
                return false;
        }
        return true;
    }
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

/* HOST[:PORT] with HOST a name or [v6]; the port, if any, 1..65535. */
static bool is_authority(struct sig_slice s)
{
    size_t host_len = s.len;
    const uint8_t *colon = NULL;
    for (size_t i = s.len; i > 0; i--) {
        if (s.ptr[i - 1] == ':') {
            colon = s.ptr + i - 1;
            break;
        }
        if (s.ptr[i - 1] == ']')
            break;
    }
    if (colon != NULL) {
        uint16_t port;
        host_len = (size_t)(colon - s.ptr);
        if (!parse_port((const char *)colon + 1, s.len - host_len - 1, &port))
            return false;
    }
    return is_hostname((struct sig_slice){s.ptr, host_len});
}

static bool parse_listen(struct px_config *cfg, const char *v)
{
    const char *colon = strrchr(v, ':');
    const char *host = v;
    size_t host_len;
    const char *port;
    if (colon == NULL) {
        /* A bare port number: loopback, like the default. */
        host = "127.0.0.1";
        host_len = 9;
        port = v;
    } else {
        host_len = (size_t)(colon - v);
        port = colon + 1;
    }
    if (!parse_port(port, (size_t)(v + sig_slice_from_cstr(v).len - port), &cfg->listen_port))
        return false;
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    if (host_len >= sizeof(cfg->listen_host))
        return false;
    for (size_t i = 0; i < host_len; i++)
        cfg->listen_host[i] = host[i];
    cfg->listen_host[host_len] = '\0';
    if (host_len == 0)
        return true;
    unsigned char addr[16];
    return inet_pton(AF_INET, cfg->listen_host, addr) == 1 ||
           inet_pton(AF_INET6, cfg->listen_host, addr) == 1;
}

static bool parse_custom_headers(struct px_config *cfg, const char *v, int max)
{
    const char *p = v;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + sig_slice_from_cstr(p).len;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq == NULL)
            return false;
        struct px_kv kv = {
            .name = {(const uint8_t *)p, (size_t)(eq - p)},
            .value = {(const uint8_t *)eq + 1, (size_t)(end - eq - 1)},
        };
        if (!is_token(kv.name) || !is_field_value(kv.value))
            return false;
        if (cfg->custom_header_count >= (size_t)max)
            return false;
        cfg->custom_headers[cfg->custom_header_count++] = kv;
        p = comma ? comma + 1 : end;
    }
    return cfg->custom_header_count > 0;
}

/* curl syntax: HOST1:PORT1:HOST2:PORT2, any part may be empty; IPv6 literals in brackets. */
static bool parse_connect_to(struct px_connect_to *ct, const char *v)
{
    struct sig_slice parts[4];
    const char *p = v;
    for (int i = 0; i < 4; i++) {
        const char *start = p;
        if (*p == '[') {
            const char *close = strchr(p, ']');
            if (close == NULL)
                return false;
            p = close + 1;
        }
        while (*p && *p != ':')
            p++;
        parts[i] = (struct sig_slice){(const uint8_t *)start, (size_t)(p - start)};
        if (i < 3) {
            if (*p != ':')
                return false;
            p++;
        }
    }
    if (*p != '\0')
        return false;
    *ct = (struct px_connect_to){.from_host = parts[0], .to_host = parts[2]};
    if ((parts[0].len && !is_hostname(parts[0])) || (parts[2].len && !is_hostname(parts[2])))
        return false;
    if (parts[1].len && !parse_port((const char *)parts[1].ptr, parts[1].len, &ct->from_port))
        return false;
    if (parts[3].len && !parse_port((const char *)parts[3].ptr, parts[3].len, &ct->to_port))
        return false;
    return true;
}

static bool is_scope_slice(struct sig_slice s)
{
    if (s.len == 0 || s.len > 63)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static bool is_scope_part(const char *v)
{
    return is_scope_slice(sig_slice_from_cstr(v));
}

static bool apply_flag(struct px_config *cfg, const struct flag *f, const char *v, int argc,
                       char *err, size_t err_len)
{
    uint64_t n;
    switch (f->id) {
    case F_PORT:
        if (!parse_listen(cfg, v))
            return fail(err, err_len, "invalid --port '%s': want ADDR:PORT or :PORT%s", v, "");
        return true;
    case F_NAME:
        if (!is_scope_part(v))
            return fail(err, err_len, "invalid --name '%s': want a signing name like s3%s", v, "");
        cfg->service = sig_slice_from_cstr(v);
        return true;
    case F_REGION:
        if (!is_scope_part(v))
            return fail(err, err_len, "invalid --region '%s'%s", v, "");
        cfg->region = sig_slice_from_cstr(v);
        return true;
    case F_HOST:
        if (!is_authority(sig_slice_from_cstr(v)))
            return fail(err, err_len, "invalid --host '%s': want HOST or HOST:PORT%s", v, "");
        cfg->host = sig_slice_from_cstr(v);
        return true;
    case F_SIGN_HOST:
        if (!is_authority(sig_slice_from_cstr(v)))
            return fail(err, err_len, "invalid --sign-host '%s'%s", v, "");
        cfg->sign_host = sig_slice_from_cstr(v);
        return true;
    case F_SCHEME:
        if (cstr_eq(v, "https"))
            cfg->upstream_tls = true;
        else if (cstr_eq(v, "http"))
            cfg->upstream_tls = false;
        else
            return fail(err, err_len, "invalid --upstream-url-scheme '%s': want https or http%s", v,
                        "");
        return true;
    case F_UNSIGNED:
        cfg->unsigned_payload = true;
        return true;
    case F_STRIP:
        if (!is_token(sig_slice_from_cstr(v)))
            return fail(err, err_len, "invalid --strip '%s': not a header name%s", v, "");
        cfg->strip[cfg->strip_count++] = sig_slice_from_cstr(v);
        return true;
    case F_CUSTOM_HEADERS:
        if (!parse_custom_headers(cfg, v, argc))
            return fail(err, err_len, "invalid --custom-headers '%s': want NAME=VALUE,...%s", v,
                        "");
        return true;
    case F_DUPLICATE_HEADERS:
        if (!is_token(sig_slice_from_cstr(v)))
            return fail(err, err_len, "invalid --duplicate-headers '%s': not a header name%s", v,
                        "");
        cfg->duplicate_headers[cfg->duplicate_header_count++] = sig_slice_from_cstr(v);
        return true;
    case F_NO_VERIFY_SSL:
        cfg->verify_tls = false;
        return true;
    case F_LOG_FAILED:
        cfg->log_failed_requests = true;
        return true;
    case F_VERBOSE:
        cfg->verbose++;
        return true;
    case F_ROLE_ARN:
        if (strncmp(v, "arn:", 4) != 0 || strstr(v, ":role/") == NULL)
            return fail(err, err_len,
                        "invalid --role-arn '%s': want arn:PARTITION:iam::ACCOUNT:"
                        "role/NAME%s",
                        v, "");
        cfg->role_arn = v;
        return true;
    case F_CA_FILE:
        if (access(v, R_OK) != 0)
            return fail(err, err_len, "invalid --ca-file '%s': not readable%s", v, "");
        cfg->ca_file = v;
        return true;
    case F_CONNECT_TO:
        if (!parse_connect_to(&cfg->connect_to[cfg->connect_to_count++], v))
            return fail(err, err_len, "invalid --connect-to '%s': want HOST1:PORT1:HOST2:PORT2%s",
                        v, "");
        return true;
    case F_ALLOW_HOST: {
        struct sig_slice s = sig_slice_from_cstr(v);
        struct sig_slice name = s;
        if (s.len > 2 && s.ptr[0] == '*' && s.ptr[1] == '.')
            name = (struct sig_slice){s.ptr + 2, s.len - 2};
        if (!is_hostname(name))
            return fail(err, err_len, "invalid --allow-host '%s': want HOST or *.SUFFIX%s", v, "");
        cfg->allow_hosts[cfg->allow_host_count++] = s;
        return true;
    }
    case F_WORKERS:
        if (!parse_size(v, &n) || n == 0 || n > 256)
            return fail(err, err_len, "invalid --workers '%s': want 1..256%s", v, "");
        cfg->workers = (unsigned)n;
        return true;
    case F_MAX_BUFFER:
        if (!parse_size(v, &n) || n < 4096 || n > (1ull << 32))
            return fail(err, err_len, "invalid --max-buffer-bytes '%s': want 4K..4G%s", v, "");
        cfg->max_buffer_bytes = n;
        return true;
    case F_MAX_BODY:
        if (!parse_size(v, &n) || n == 0)
            return fail(err, err_len, "invalid --max-body-bytes '%s'%s", v, "");
        cfg->max_body_bytes = n;
        return true;
    case F_SPOOL_DIR:
        if (access(v, W_OK | X_OK) != 0)
            return fail(err, err_len, "invalid --spool-dir '%s': not a writable directory%s", v,
                        "");
        cfg->spool_dir = v;
        return true;
    case F_MAX_HEADER_BYTES:
        if (!parse_size(v, &n) || n < 1024 || n > (1u << 20))
            return fail(err, err_len, "invalid --max-header-bytes '%s': want 1K..1M%s", v, "");
        cfg->max_header_bytes = (size_t)n;
        return true;
    case F_MAX_URL_BYTES:
        if (!parse_size(v, &n) || n < 256 || n > (1u << 20))
            return fail(err, err_len, "invalid --max-url-bytes '%s': want 256..1M%s", v, "");
        cfg->max_url_bytes = (size_t)n;
        return true;
    case F_MAX_HEADERS:
        if (!parse_size(v, &n) || n < 8 || n > 1000)
            return fail(err, err_len, "invalid --max-headers '%s': want 8..1000%s", v, "");
        cfg->max_headers = (size_t)n;
        return true;
    case F_MAX_CONNECTIONS:
        if (!parse_size(v, &n) || n < 1 || n > 1000000)
            return fail(err, err_len, "invalid --max-connections '%s': want 1..1000000%s", v, "");
        cfg->max_connections = (size_t)n;
        return true;
    case F_MAX_RESP_HEADER_BYTES:
        if (!parse_size(v, &n) || n < 1024 || n > (1u << 20))
            return fail(err, err_len, "invalid --max-response-header-bytes '%s': want 1K..1M%s", v,
                        "");
        cfg->max_response_header_bytes = (size_t)n;
        return true;
    case F_IDLE_CONN_TIMEOUT:
    case F_CLIENT_HEADER_TIMEOUT:
    case F_CLIENT_IDLE_TIMEOUT:
    case F_CONNECT_TIMEOUT:
    case F_FIRST_BYTE_TIMEOUT:
    case F_UPSTREAM_IDLE_TIMEOUT:
    case F_SHUTDOWN_TIMEOUT: {
        uint32_t ms;
        if (!parse_duration_ms(v, &ms) || (ms == 0 && f->id != F_IDLE_CONN_TIMEOUT))
            return fail(err, err_len, "invalid --%s '%s': want a duration like 40s", f->name, v);
        switch (f->id) {
        case F_IDLE_CONN_TIMEOUT:
            cfg->idle_conn_timeout_ms = ms;
            break;
        case F_CLIENT_HEADER_TIMEOUT:
            cfg->client_header_timeout_ms = ms;
            break;
        case F_CLIENT_IDLE_TIMEOUT:
            cfg->client_idle_timeout_ms = ms;
            break;
        case F_CONNECT_TIMEOUT:
            cfg->connect_timeout_ms = ms;
            break;
        case F_FIRST_BYTE_TIMEOUT:
            cfg->first_byte_timeout_ms = ms;
            break;
        case F_UPSTREAM_IDLE_TIMEOUT:
            cfg->upstream_idle_timeout_ms = ms;
            break;
        default:
            cfg->shutdown_timeout_ms = ms;
            break;
        }
        return true;
    }
    case F_VERSION:
        if (cfg->action == PX_ACTION_RUN)
            cfg->action = PX_ACTION_VERSION;
        return true;
    case F_HELP:
        cfg->action = PX_ACTION_HELP;
        return true;
    }
    return fail(err, err_len, "internal: unhandled flag %s%s", f->name, "");
}

static void set_defaults(struct px_config *cfg)
{
    const char *loopback = "127.0.0.1";
    for (size_t i = 0; loopback[i]; i++)
        cfg->listen_host[i] = loopback[i];
    cfg->listen_port = 8080;
    cfg->upstream_tls = true;
    cfg->verify_tls = true;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus > 0 && cpus <= 256 ? (unsigned)cpus : 1;
    cfg->max_buffer_bytes = 8u << 20;
    cfg->max_body_bytes = 5ull << 30;
    const char *tmp = getenv("TMPDIR");
    cfg->spool_dir = tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp";
    cfg->max_header_bytes = 64u << 10;
    cfg->max_url_bytes = 16u << 10;
    cfg->max_headers = 100;
    cfg->max_connections = 4096;
    cfg->max_response_header_bytes = 64u << 10;
    cfg->idle_conn_timeout_ms = 40000;
    cfg->client_header_timeout_ms = 10000;
    cfg->client_idle_timeout_ms = 60000;
    cfg->connect_timeout_ms = 10000;
    cfg->first_byte_timeout_ms = 120000;
    cfg->upstream_idle_timeout_ms = 120000;
    cfg->shutdown_timeout_ms = 10000;
    const char *region = getenv("AWS_REGION");
    if (region == NULL || !is_scope_part(region))
        region = getenv("AWS_DEFAULT_REGION");
    cfg->fallback_region_from_env = region != NULL && is_scope_part(region);
    if (!cfg->fallback_region_from_env)
        region = "us-east-1";
    cfg->fallback_region = sig_slice_from_cstr(region);
}

bool px_config_set_profile_region(struct px_config *cfg, struct sig_slice region)
{
    if (cfg->fallback_region_from_env)
        return true; /* AWS_REGION and AWS_DEFAULT_REGION come before the profile */
    if (!is_scope_slice(region) || region.len >= sizeof(cfg->profile_region))
        return false;
    for (size_t i = 0; i < region.len; i++)
        cfg->profile_region[i] = (char)region.ptr[i];
    cfg->profile_region[region.len] = '\0';
    cfg->fallback_region = sig_slice_from_cstr(cfg->profile_region);
    return true;
}

bool px_config_parse(struct px_config *cfg, int argc, char **argv, char *err, size_t err_len)
{
    *cfg = (struct px_config){0};
    set_defaults(cfg);
    size_t n = argc > 0 ? (size_t)argc : 1;
    cfg->strip = px_xmalloc(n * sizeof(*cfg->strip));
    cfg->custom_headers = px_xmalloc(n * sizeof(*cfg->custom_headers));
    cfg->duplicate_headers = px_xmalloc(n * sizeof(*cfg->duplicate_headers));
    cfg->connect_to = px_xmalloc(n * sizeof(*cfg->connect_to));
    size_t ndefault = sizeof(default_allow_hosts) / sizeof(default_allow_hosts[0]);
    cfg->allow_hosts = px_xmalloc((n + ndefault) * sizeof(*cfg->allow_hosts));
    for (size_t i = 0; i < ndefault; i++)
        cfg->allow_hosts[cfg->allow_host_count++] = sig_slice_from_cstr(default_allow_hosts[i]);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct flag *f = NULL;
        const char *inline_value = NULL;
        if (a[0] == '-' && a[1] == '-' && a[2] != '\0') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t name_len = eq ? (size_t)(eq - name) : sig_slice_from_cstr(name).len;
            for (size_t k = 0; k < NFLAGS; k++)
                if (sig_slice_from_cstr(flags[k].name).len == name_len &&
                    strncmp(flags[k].name, name, name_len) == 0)
                    f = &flags[k];
            if (f != NULL && eq != NULL) {
                if (f->arg == NULL)
                    return fail(err, err_len, "flag --%s takes no value%s", f->name, "");
                inline_value = eq + 1;
            }
        } else if (a[0] == '-' && a[1] != '\0' && a[1] != '-' && a[2] == '\0') {
            for (size_t k = 0; k < NFLAGS; k++)
                if (flags[k].short_name == a[1])
                    f = &flags[k];
        } else if (a[0] == '-' && a[1] != '\0' && a[1] != '-') {
            /* -sVALUE, and -vv for debug */
            for (size_t k = 0; k < NFLAGS; k++)
                if (flags[k].short_name == a[1])
                    f = &flags[k];
            if (f != NULL && f->arg != NULL) {
                inline_value = a + 2;
            } else if (f != NULL && f->id == F_VERBOSE) {
                for (const char *p = a + 1; *p; p++)
                    if (*p != 'v')
                        return fail(err, err_len, "unknown flag '%s' (see --help)%s", a, "");
                cfg->verbose += (int)sig_slice_from_cstr(a + 1).len - 1;
            } else {
                f = NULL;
            }
        }
        if (f == NULL)
            return fail(err, err_len, "unknown flag '%s' (see --help)%s", a, "");
        const char *v = inline_value;
        if (f->arg != NULL && v == NULL) {
            if (i + 1 >= argc)
                return fail(err, err_len, "flag --%s needs a value (%s)", f->name, f->arg);
            v = argv[++i];
        }
        if (!apply_flag(cfg, f, v, argc, err, err_len))
            return false;
    }
    return true;
}

void px_config_cleanup(struct px_config *cfg)
{
    free(cfg->strip);
    free(cfg->custom_headers);
    free(cfg->duplicate_headers);
    free(cfg->connect_to);
    free(cfg->allow_hosts);
    *cfg = (struct px_config){0};
}

bool px_config_host_allowed(const struct px_config *cfg, struct sig_slice host)
{
    for (size_t i = 0; i < cfg->allow_host_count; i++) {
        struct sig_slice pat = cfg->allow_hosts[i];
        if (pat.len > 2 && pat.ptr[0] == '*' && pat.ptr[1] == '.') {
            /* "*.x.y" matches "a.x.y" and "a.b.x.y", not "x.y" itself */
            struct sig_slice suffix = {pat.ptr + 1, pat.len - 1};
            if (host.len > suffix.len &&
                sig_slice_eq_nocase(
                    (struct sig_slice){host.ptr + host.len - suffix.len, suffix.len}, suffix))
                return true;
        } else if (sig_slice_eq_nocase(pat, host)) {
            return true;
        }
    }
    return false;
}

bool px_connect_target(const struct px_config *cfg, const char *host, uint16_t port, char *host_out,
                       size_t cap, uint16_t *port_out)
{
    if (!px_copy_cstr(host_out, cap, sig_slice_from_cstr(host)))
        return false;
    *port_out = port;
    struct sig_slice h = sig_slice_from_cstr(host);
    for (size_t i = 0; i < cfg->connect_to_count; i++) {
        const struct px_connect_to *ct = &cfg->connect_to[i];
        if (ct->from_host.len != 0 && !sig_slice_eq_nocase(ct->from_host, h))
            continue;
        if (ct->from_port != 0 && ct->from_port != port)
            continue;
        if (ct->to_host.len != 0 && !px_copy_cstr(host_out, cap, ct->to_host))
            return false;
        if (ct->to_port != 0)
            *port_out = ct->to_port;
        break;
    }
    /* Brackets are URL syntax; resolvers want the bare IPv6 literal. */
    size_t len = sig_slice_from_cstr(host_out).len;
    if (len >= 2 && host_out[0] == '[' && host_out[len - 1] == ']') {
        memmove(host_out, host_out + 1, len - 2);
        host_out[len - 2] = '\0';
    }
    return true;
}
