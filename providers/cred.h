/*
 * cred.h: credentials and the asynchronous credential-provider interface.
 *
 * Credentials are immutable and refcounted: a signing operation holds a reference, so a
 * provider that refreshes can drop its own reference without freeing them mid-use.
 *
 * Providers never include libevent: everything that waits goes through `struct cred_io`,
 * which proxy/ implements on its event_base and tests implement with fakes.
 */
#ifndef CRED_H
#define CRED_H

#include <stddef.h>
#include <stdint.h>

#include "sig_sign.h"
#include "sig_types.h"

/* Provider error codes occupy 200..299. */
enum cred_err {
    CRED_OK = 0,
    CRED_ERR_NOT_FOUND = 200, /* this source has no credentials */
    CRED_ERR_INVALID = 201,   /* credentials present but malformed (e.g. key without secret) */
    CRED_ERR_TOO_LONG = 202,  /* a value is longer than CRED_MAX_VALUE */
    /* The shared config and credentials files (providers/profile.h). */
    CRED_ERR_UNSUPPORTED = 203,     /* the profile uses a source sigv4d does not support yet */
    CRED_ERR_NO_PROFILE = 204,      /* the selected profile is in neither file */
    CRED_ERR_FILE_UNREADABLE = 205, /* a file exists but cannot be read */
    CRED_ERR_FILE_LIMIT = 206,      /* a file is over a size, line or count limit */
    CRED_ERR_FILE_SYNTAX = 207,     /* a file is malformed */
    /* Sources that fetch credentials over the network (providers/sts.h, px_creds.c). */
    CRED_ERR_FETCH = 208,      /* the credential service refused (its code and message logged) */
    CRED_ERR_BAD_ANSWER = 209, /* the credential service's answer is malformed */
    CRED_ERR_UNREACHABLE =
        210,                /* the credential service cannot be reached (connect, TLS, timeout) */
    CRED_ERR_PENDING = 211, /* the first fetch has not answered yet */
    CRED_ERR_EXPIRED = 212, /* the last credentials expired and no refresh succeeded */
    CRED_ERR_PROCESS = 213, /* a credential_process program failed (exit, signal, timeout) */
};

/* A fixed message per code; never contains input. */
const char *cred_err_str(enum cred_err err);

/* Writes a one-line reason into msg[msg_len] (when msg is not NULL) and returns `code`: the
 * providers' error path. Callers pass only fixed text, names and numbers, never a value that
 * may carry a secret. */
enum cred_err cred_fail(char *msg, size_t msg_len, enum cred_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CRED_MAX_VALUE 4096

/* Immutable after creation. The secret and token are wiped (OPENSSL_cleanse) on release. */
struct cred;

/* Takes one more reference; returns `c` (NULL gives NULL). Thread-safe. */
struct cred *cred_ref(struct cred *c);
/* Drops one reference; the last one wipes and frees. NULL is ignored. Thread-safe. */
void cred_unref(struct cred *c);
/* Borrowed views into `c`, valid while the caller holds a reference. */
struct sig_credentials cred_view(const struct cred *c);
/* The access key id redacted to its last 4 characters, for logs ("...WXYZ"). */
void cred_redacted_id(const struct cred *c, char out[8]);

/*
 * Builds credentials from copies of the three values (session_token may be empty).
 * Errors: CRED_ERR_INVALID if the key id or secret is empty, CRED_ERR_TOO_LONG. On success
 * *out holds the only reference (the caller owns it).
 */
SIG_MUST_USE enum cred_err cred_new(struct sig_slice access_key_id, struct sig_slice secret,
                                    struct sig_slice session_token, struct cred **out);

/*
 * Reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN once (synchronous: for
 * start-up, before any event loop runs). CRED_ERR_NOT_FOUND if the key id and the secret are
 * both unset, CRED_ERR_INVALID if only one of them is set.
 */
SIG_MUST_USE enum cred_err cred_from_env(struct cred **out);

typedef void (*cred_task_fn)(void *arg);

/* The I/O a provider may use, injected by its owner. */
struct cred_io {
    void *ctx;
    /* Runs fn(arg) once, soon, from the event loop (never from inside this call). */
    void (*defer)(void *ctx, cred_task_fn fn, void *arg);
    /* Wall-clock seconds since the epoch (credential expirations are wall-clock times). Used
     * by slot providers; NULL for providers that never expire. */
    int64_t (*now)(void *ctx);
};

/*
 * The result of a fetch: on CRED_OK `creds` is a new reference the callback owns (it must
 * cred_unref it); otherwise `creds` is NULL and `err` says why.
 */
typedef void (*cred_get_fn)(struct cred *creds, enum cred_err err, void *arg);

struct cred_provider;

/*
 * A provider that always answers with `creds` (which may be NULL: then every fetch fails with
 * `err`). Takes its own reference to `creds`. `io` is copied; io->ctx is borrowed and must
 * outlive the provider. One provider per event loop (not thread-safe).
 */
struct cred_provider *cred_provider_new_static(const struct cred_io *io, struct cred *creds,
                                               enum cred_err err);

/*
 * Asynchronous fetch: calls cb(creds, err, arg) exactly once, never from inside this call,
 * even when the answer is already known. The provider must outlive the pending callback.
 */
void cred_provider_get(struct cred_provider *p, cred_get_fn cb, void *arg);

/* Frees the provider and drops its reference. Pending callbacks must have run. NULL ok. */
void cred_provider_free(struct cred_provider *p);

/*
 * A slot: the current credentials of a source that refreshes them (STS), written by one
 * thread (the refresher) and read by the workers' providers. Thread-safe.
 */
#define CRED_MAX_REASON 384

struct cred_slot;

struct cred_slot *cred_slot_new(void);
/* Drops the slot's reference to its credentials. NULL ok. */
void cred_slot_free(struct cred_slot *s);
/* New credentials valid until `expires` (seconds since the epoch; 0 = no expiry): replaces the
 * old ones (the slot takes its own reference) and clears the failure. */
void cred_slot_publish(struct cred_slot *s, struct cred *creds, int64_t expires);
/* A failed fetch: `err` and a one-line `reason` (no secrets) for requests that find no usable
 * credentials. Credentials still valid are kept and go on being used. */
void cred_slot_fail(struct cred_slot *s, enum cred_err err, const char *reason);
/*
 * The credentials usable at `now`: a new reference (the caller owns it), or NULL with *err set
 * (CRED_ERR_PENDING before any answer, CRED_ERR_EXPIRED past the expiry, else the last
 * failure) and, if reason != NULL, the reason copied into reason[cap].
 */
struct cred *cred_slot_get(struct cred_slot *s, int64_t now, enum cred_err *err, char *reason,
                           size_t cap);

/*
 * A provider answering from `slot` (borrowed: it must outlive the provider) at the time each
 * answer runs; io->now is required. One provider per event loop, like the static one.
 */
struct cred_provider *cred_provider_new_slot(const struct cred_io *io, struct cred_slot *slot);
/* Why the last failed answer of this provider failed, one line (a slot's reason, else
 * cred_err_str of its error). Valid until the next answer runs. */
const char *cred_provider_reason(const struct cred_provider *p);

#endif
