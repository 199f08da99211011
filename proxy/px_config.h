/*
 * px_config.h: the command line (compatible with awslabs/aws-sigv4-proxy, plus our flags).
 *
 * Every string in a px_config is borrowed from argv or the environment, which live for the
 * whole process; the arrays are owned by the config (px_config_cleanup frees them).
 */
#ifndef PX_CONFIG_H
#define PX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sig_types.h"

struct px_kv {
    struct sig_slice name;
    struct sig_slice value;
};

/* curl's --connect-to HOST1:PORT1:HOST2:PORT2; an empty host or a zero port matches anything
 * (HOST1/PORT1) or keeps the original (HOST2/PORT2). */
struct px_connect_to {
    struct sig_slice from_host;
    uint16_t from_port;
    struct sig_slice to_host;
    uint16_t to_port;
};

enum px_action { PX_ACTION_RUN = 0, PX_ACTION_HELP, PX_ACTION_VERSION };

struct px_config {
    enum px_action action;

    /* --port: where to listen; the address family comes from the literal */
    char listen_host[64]; /* numeric address, NUL-terminated ("" means all interfaces) */
    uint16_t listen_port;

    struct sig_slice service;         /* --name; empty: inferred from the host */
    struct sig_slice region;          /* --region; empty: inferred, then the fallback */
    struct sig_slice fallback_region; /* AWS_REGION, AWS_DEFAULT_REGION, profile, us-east-1 */
    bool fallback_region_from_env;    /* AWS_REGION or AWS_DEFAULT_REGION set it */
    char profile_region[64];          /* storage for the profile's region (NUL-terminated) */
    struct sig_slice host;      /* --host HOST[:PORT]: the fixed upstream; empty: from request */
    struct sig_slice sign_host; /* --sign-host: Host header sent and signed */
    bool upstream_tls;          /* --upstream-url-scheme https (default) or http */
    bool unsigned_payload;      /* --unsigned-payload */
    struct sig_slice *strip;    /* -s/--strip, repeatable */
    size_t strip_count;
    struct px_kv *custom_headers; /* --custom-headers k=v,k2=v2 (repeatable, appended) */
    size_t custom_header_count;
    struct sig_slice *duplicate_headers; /* --duplicate-headers: copy to X-Original-NAME */
    size_t duplicate_header_count;
    bool verify_tls;                  /* false with --no-verify-ssl */
    const char *ca_file;              /* --ca-file (NULL: the system store, SSL_CERT_FILE/DIR) */
    struct px_connect_to *connect_to; /* --connect-to, repeatable; first match wins */
    size_t connect_to_count;
    struct sig_slice *allow_hosts; /* default list plus --allow-host patterns */
    size_t allow_host_count;
    bool log_failed_requests; /* --log-failed-requests */
    int verbose;              /* -v/--verbose (repeat for debug) */
    const char *role_arn;     /* --role-arn: assumed by the credentials thread (px_creds.c) */

    unsigned workers;                 /* --workers N (default: one per online CPU) */
    uint64_t max_buffer_bytes;        /* --max-buffer-bytes: body kept in memory before spooling */
    uint64_t max_body_bytes;          /* --max-body-bytes: largest signed (hashed) body */
    const char *spool_dir;            /* --spool-dir (default $TMPDIR or /tmp) */
    size_t max_header_bytes;          /* --max-header-bytes: request line + headers */
    size_t max_url_bytes;             /* --max-url-bytes */
    size_t max_headers;               /* --max-headers: header count */
    size_t max_connections;           /* --max-connections: client connections per worker */
    size_t max_response_header_bytes; /* --max-response-header-bytes */

    uint32_t idle_conn_timeout_ms;     /* --transport.idle-conn-timeout: pooled upstreams */
    uint32_t client_header_timeout_ms; /* --client-header-timeout */
    uint32_t client_idle_timeout_ms;   /* --client-idle-timeout: keep-alive / body stall */
    uint32_t connect_timeout_ms;       /* --upstream-connect-timeout (DNS + TCP + TLS) */
    uint32_t first_byte_timeout_ms;    /* --upstream-first-byte-timeout */
    uint32_t upstream_idle_timeout_ms; /* --upstream-idle-timeout: response body stall */
    uint32_t shutdown_timeout_ms;      /* --shutdown-timeout: drain deadline on SIGTERM */
};

/*
 * Parses argv into cfg (zeroed first). On a bad flag or value returns false with a one-line
 * reason in err (the caller prints it and exits 2). Reads AWS_REGION/AWS_DEFAULT_REGION.
 */
bool px_config_parse(struct px_config *cfg, int argc, char **argv, char *err, size_t err_len);
void px_config_cleanup(struct px_config *cfg);
/*
 * Where a connection to the logical host:port goes (--connect-to, first match wins): the host
 * into host_out[cap] (NUL-terminated, IPv6 brackets removed) and the port. False if the host
 * does not fit.
 */
bool px_connect_target(const struct px_config *cfg, const char *host, uint16_t port, char *host_out,
                       size_t cap, uint16_t *port_out);
/*
 * The region of the selected profile (AWS_PROFILE) from the shared config file, used as the
 * fallback only when neither AWS_REGION nor AWS_DEFAULT_REGION gave one. The value is copied.
 * Returns false, leaving cfg unchanged, if it is not a valid region.
 */
bool px_config_set_profile_region(struct px_config *cfg, struct sig_slice region);
void px_config_usage(FILE *f);

/* True if host (lowercase, no port) matches one allow-list pattern: "*.suffix" matches any
 * name ending in ".suffix"; otherwise an exact match. Case-insensitive. */
bool px_config_host_allowed(const struct px_config *cfg, struct sig_slice host);

#endif
