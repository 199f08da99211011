/*
 * px_creds_int.h: the credentials thread's internals, shared by px_creds.c (the thread, the
 * schedule, publishing), px_creds_sts.c (STS AssumeRole over TLS) and px_creds_proc.c
 * (credential_process). Everything here belongs to the credentials thread, except `mu`,
 * `cv` and `answered` (px_creds_wait_first).
 */
#ifndef PX_CREDS_INT_H
#define PX_CREDS_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <llhttp.h>

#include "process.h"
#include "px_creds.h"
#include "sts.h"

/* The answer buffer: the larger of an STS answer body and a program's output. */
#define PX_CREDS_ANSWER_BYTES                                                                      \
    (STS_MAX_RESPONSE_BYTES > PROC_MAX_OUTPUT_BYTES ? STS_MAX_RESPONSE_BYTES                       \
                                                    : PROC_MAX_OUTPUT_BYTES)

struct px_creds {
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl_ctx;
    int stop_fd; /* eventfd: the main thread asks the loop to stop */
    struct event *stop_ev;
    struct event *next_ev;     /* the next call (first, refresh or retry) */
    struct event *deadline_ev; /* the call in flight takes too long */

    const struct px_config *cfg;
    enum px_creds_kind kind;
    char what[2100]; /* "STS AssumeRole of ARN", "credential_process of profile P" */
    struct cred_slot *slot;
    unsigned backoff_s;
    uint8_t *answer; /* PX_CREDS_ANSWER_BYTES, wiped after each call */
    size_t answer_len;
    bool answer_full; /* more than the answer's limit arrived */

    /* STS (px_creds_sts.c) */
    struct cred *base_creds; /* owned reference */
    char role_arn[2048];
    char session_name[STS_MAX_SESSION_NAME + 1];
    char external_id[1300];
    uint32_t duration_s;
    char region[64];
    char host[256]; /* sts.REGION.amazonaws.com: SNI, certificate name, Host, signature */
    char connect_host[256];
    uint16_t connect_port;
    struct bufferevent *bev; /* the call in flight */
    llhttp_t parser;
    llhttp_settings_t settings;
    size_t bytes_in; /* everything read, head included */
    bool complete;

    /* credential_process (px_creds_proc.c) */
    char command[PROC_MAX_LINE_BYTES + 1];
    pid_t pid;  /* the running program, or 0 */
    int out_fd; /* its standard output, or -1 */
    int pid_fd; /* pidfd_open(pid), or -1 where the kernel has none */
    struct event *out_ev;
    struct event *exit_ev; /* readable pid_fd, or a polling timer */
    bool out_eof;
    bool exited;
    int status; /* waitpid's */

    /* The first answer, for px_creds_wait_first (under mu). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool answered;
};

/* The call failed: wipes and ends it, records the failure in the slot, logs one line and
 * retries after the back-off. */
void px_creds_failed(struct px_creds *c, enum cred_err err, const char *reason);
/* The call answered: ends it, publishes (the slot takes its own reference; `creds` is
 * released) and schedules the refresh (none when expiration is 0: no expiry). */
void px_creds_succeeded(struct px_creds *c, struct cred *creds, int64_t expiration);

void px_creds_sts_init(struct px_creds *c);
void px_creds_sts_start(struct px_creds *c);
void px_creds_sts_end(struct px_creds *c);
void px_creds_proc_start(struct px_creds *c);
void px_creds_proc_end(struct px_creds *c);

#endif
