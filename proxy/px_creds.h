/*
 * px_creds.h: the credentials thread for --role-arn.
 *
 * One thread with its own event_base calls STS AssumeRole with the base credentials (from the
 * environment or the profile), publishes the answer into a cred_slot that every worker's
 * provider reads, and calls again before the credentials expire: at
 * Expiration - min(5 min, lifetime / 2). A failed call is retried after 1, 2, 4 ... 60 s;
 * credentials still valid go on being used meanwhile, and once they expire requests get 503
 * with the reason. So there is one STS call per refresh for the whole process, however many
 * workers there are, and no worker ever waits for STS.
 *
 * The call goes over TLS (verification always on: --ca-file or the system store; SNI and the
 * certificate name are the STS host) to sts.REGION.amazonaws.com, or where --connect-to sends
 * that host. One call per connection; the request head (which holds the base session token)
 * and the answer (the new secret and token) are wiped from memory once used.
 */
#ifndef PX_CREDS_H
#define PX_CREDS_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "cred.h"
#include "px_config.h"

/* How long one AssumeRole call may take (DNS, connect, TLS, answer). */
#define PX_CREDS_CALL_TIMEOUT_MS 10000u
/* How long a credential_process program may take to answer and exit (then it is killed). */
#define PX_CREDS_PROC_TIMEOUT_MS 20000u
/* The longest wait between retries of a failed call. */
#define PX_CREDS_MAX_BACKOFF_S 60u
/* Refresh this long before expiry at most (less for short-lived credentials: half their life). */
#define PX_CREDS_REFRESH_AHEAD_S 300

struct px_creds;

enum px_creds_kind {
    PX_CREDS_STS = 0,     /* assume role_arn with the base credentials */
    PX_CREDS_PROCESS = 1, /* run a profile's credential_process */
};

struct px_creds_params {
    enum px_creds_kind kind;
    const struct px_config *cfg; /* borrowed; outlives the thread */
    /* PX_CREDS_PROCESS: */
    const char *command; /* the credential_process line (valid: proc_split accepts it) */
    const char *profile; /* its profile, for messages */
    /* PX_CREDS_STS: */
    struct cred *base;      /* borrowed; the thread takes its own reference */
    struct cred_slot *slot; /* borrowed; outlives the thread */
    const char *role_arn;
    const char *session_name; /* valid RoleSessionName */
    const char *external_id;  /* NULL or "" for none */
    uint32_t duration_s;      /* DurationSeconds; 0: STS_DEFAULT_DURATION_S */
    const char *region;       /* STS region */
};

/* Loads CA certificates into ctx for a verifying client: --ca-file replaces the system store
 * (curl's --cacert); otherwise OpenSSL's default paths (SSL_CERT_FILE, SSL_CERT_DIR). Logs and
 * returns false if they cannot be loaded. */
bool px_tls_trust(SSL_CTX *ctx, const char *ca_file);

/* Starts the thread; its first call begins at once. NULL (after logging why) on failure. */
struct px_creds *px_creds_start(const struct px_creds_params *p);
/* Waits until the first call has answered (credentials or a failure) or timeout_ms passed.
 * True if it answered. */
bool px_creds_wait_first(struct px_creds *c, unsigned timeout_ms);
/* Stops and joins the thread, frees everything. NULL ok. */
void px_creds_stop(struct px_creds *c);

#endif
