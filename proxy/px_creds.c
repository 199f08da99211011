/* px_creds.c: see px_creds.h. */
#include "px_creds.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "px_common.h"
#include "px_creds_int.h"

bool px_tls_trust(SSL_CTX *ctx, const char *ca_file)
{
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok == 1)
        return true;
    unsigned long e = ERR_get_error();
    px_log(PX_LOG_ERROR, "cannot load CA certificates%s%s: %s", ca_file ? " from " : "",
           ca_file ? ca_file : "",
           ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown error");
    return false;
}

/* ---- the schedule ---- */

static void schedule_in(struct px_creds *c, int64_t seconds)
{
    struct timeval tv = {.tv_sec = seconds > 0 ? (time_t)seconds : 0, .tv_usec = 0};
    evtimer_add(c->next_ev, &tv);
}

static void note_answered(struct px_creds *c)
{
    pthread_mutex_lock(&c->mu);
    if (!c->answered) {
        c->answered = true;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

/* Wipes and forgets the answer, ends the connection or the program. */
static void end_call(struct px_creds *c)
{
    px_creds_sts_end(c);
    px_creds_proc_end(c);
    OPENSSL_cleanse(c->answer, c->answer_len);
    c->answer_len = 0;
    evtimer_del(c->deadline_ev);
}

void px_creds_failed(struct px_creds *c, enum cred_err err, const char *reason)
{
    end_call(c);
    char named[CRED_MAX_REASON];
    if (c->kind == PX_CREDS_PROCESS) /* the 503 says which program, as the log does */
        snprintf(named, sizeof(named), "%.100s: %.250s", c->what, reason);
    cred_slot_fail(c->slot, err, c->kind == PX_CREDS_PROCESS ? named : reason);
    unsigned wait = c->backoff_s;
    c->backoff_s =
        c->backoff_s * 2 > PX_CREDS_MAX_BACKOFF_S ? PX_CREDS_MAX_BACKOFF_S : c->backoff_s * 2;
    px_log(PX_LOG_ERROR, "credentials: %s failed: %s; retrying in %u s", c->what, reason, wait);
    schedule_in(c, wait);
    note_answered(c);
}

void px_creds_succeeded(struct px_creds *c, struct cred *creds, int64_t expiration)
{
    end_call(c);
    cred_slot_publish(c->slot, creds, expiration);
    char id[8];
    cred_redacted_id(creds, id);
    cred_unref(creds);
    c->backoff_s = 1;
    note_answered(c);
    const char *as = c->kind == PX_CREDS_STS ? " as session " : "";
    const char *session = c->kind == PX_CREDS_STS ? c->session_name : "";
    if (expiration == 0) { /* static: nothing to refresh */
        px_log(PX_LOG_INFO, "credentials: %s%s%s: access key %s, no expiry", c->what, as, session,
               id);
        return;
    }
    int64_t life = expiration - (int64_t)time(NULL);
    int64_t ahead = life / 2 < PX_CREDS_REFRESH_AHEAD_S ? life / 2 : PX_CREDS_REFRESH_AHEAD_S;
    int64_t refresh_in = life - ahead < 1 ? 1 : life - ahead;
    px_log(PX_LOG_INFO, "credentials: %s%s%s: access key %s, valid for %lld s, refresh in %lld s",
           c->what, as, session, id, (long long)life, (long long)refresh_in);
    schedule_in(c, refresh_in);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_creds *c = arg;
    char reason[CRED_MAX_REASON];
    if (c->kind == PX_CREDS_STS)
        snprintf(reason, sizeof(reason), "no answer from %.255s within %u s", c->host,
                 PX_CREDS_CALL_TIMEOUT_MS / 1000);
    else
        snprintf(reason, sizeof(reason), "no output within %u s (the program was killed)",
                 PX_CREDS_PROC_TIMEOUT_MS / 1000);
    px_creds_failed(c, c->kind == PX_CREDS_STS ? CRED_ERR_UNREACHABLE : CRED_ERR_PROCESS, reason);
}

static void start_call(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_creds *c = arg;
    c->answer_len = 0;
    c->answer_full = false;
    unsigned ms = c->kind == PX_CREDS_STS ? PX_CREDS_CALL_TIMEOUT_MS : PX_CREDS_PROC_TIMEOUT_MS;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->deadline_ev, &tv);
    if (c->kind == PX_CREDS_STS)
        px_creds_sts_start(c);
    else
        px_creds_proc_start(c);
}

/* ---- the thread ---- */

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    event_base_loopbreak(arg);
}

static void *creds_main(void *arg)
{
    struct px_creds *c = arg;
    event_active(c->next_ev, EV_TIMEOUT, 0);
    event_base_dispatch(c->base);
    end_call(c);
    return NULL;
}

static void creds_free(struct px_creds *c)
{
    if (c->next_ev != NULL)
        event_free(c->next_ev);
    if (c->deadline_ev != NULL)
        event_free(c->deadline_ev);
    if (c->stop_ev != NULL)
        event_free(c->stop_ev);
    if (c->dns != NULL)
        evdns_base_free(c->dns, 0);
    if (c->base != NULL)
        event_base_free(c->base);
    if (c->stop_fd >= 0)
        close(c->stop_fd);
    SSL_CTX_free(c->ssl_ctx);
    cred_unref(c->base_creds);
    if (c->answer != NULL) {
        OPENSSL_cleanse(c->answer, PX_CREDS_ANSWER_BYTES);
        free(c->answer);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static bool copy_sts_params(struct px_creds *c, const struct px_creds_params *p)
{
    struct sig_slice region = sig_slice_from_cstr(p->region);
    if (!px_copy_cstr(c->role_arn, sizeof(c->role_arn), sig_slice_from_cstr(p->role_arn)) ||
        !px_copy_cstr(c->session_name, sizeof(c->session_name),
                      sig_slice_from_cstr(p->session_name)) ||
        !px_copy_cstr(c->external_id, sizeof(c->external_id),
                      sig_slice_from_cstr(p->external_id)) ||
        !px_copy_cstr(c->region, sizeof(c->region), region) ||
        sts_endpoint_host(region, c->host, sizeof(c->host)) != CRED_OK) {
        px_log(PX_LOG_ERROR, "credentials: --role-arn, the session name or the region is too "
                             "long or malformed");
        return false;
    }
    if (!px_connect_target(p->cfg, c->host, 443, c->connect_host, sizeof(c->connect_host),
                           &c->connect_port)) {
        px_log(PX_LOG_ERROR, "credentials: bad --connect-to for %s", c->host);
        return false;
    }
    return true;
}

static bool copy_params(struct px_creds *c, const struct px_creds_params *p)
{
    if (p->kind == PX_CREDS_PROCESS) {
        snprintf(c->what, sizeof(c->what), "credential_process of profile %.256s",
                 p->profile != NULL ? p->profile : "");
        if (px_copy_cstr(c->command, sizeof(c->command), sig_slice_from_cstr(p->command)))
            return true;
        px_log(PX_LOG_ERROR, "credentials: %s: the command is too long", c->what);
        return false;
    }
    snprintf(c->what, sizeof(c->what), "STS AssumeRole of %.2048s", p->role_arn);
    return copy_sts_params(c, p);
}

static bool make_loop(struct px_creds *c)
{
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (c->ssl_ctx == NULL)
        return false;
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL); /* always, whatever --no-verify-ssl */
    if (!px_tls_trust(c->ssl_ctx, c->cfg->ca_file))
        return false;
    c->base = event_base_new();
    if (c->base == NULL)
        return false;
    c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    c->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->dns == NULL || c->stop_fd < 0)
        return false;
    c->stop_ev = event_new(c->base, c->stop_fd, EV_READ | EV_PERSIST, stop_cb, c->base);
    c->next_ev = evtimer_new(c->base, start_call, c);
    c->deadline_ev = evtimer_new(c->base, deadline_cb, c);
    return c->stop_ev != NULL && c->next_ev != NULL && c->deadline_ev != NULL &&
           event_add(c->stop_ev, NULL) == 0;
}

struct px_creds *px_creds_start(const struct px_creds_params *p)
{
    struct px_creds *c = px_xmalloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->stop_fd = -1;
    c->cfg = p->cfg;
    c->slot = p->slot;
    c->base_creds = cred_ref(p->base);
    c->backoff_s = 1;
    c->duration_s = p->duration_s != 0 ? p->duration_s : STS_DEFAULT_DURATION_S;
    c->answer = px_xmalloc(PX_CREDS_ANSWER_BYTES);
    c->kind = p->kind;
    c->out_fd = c->pid_fd = -1;
    px_creds_sts_init(c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (!copy_params(c, p) || !make_loop(c)) {
        px_log(PX_LOG_ERROR, "credentials: cannot set up the credentials thread");
        creds_free(c);
        return NULL;
    }
    if (pthread_create(&c->thread, NULL, creds_main, c) != 0) {
        px_log(PX_LOG_ERROR, "credentials: cannot start the credentials thread");
        creds_free(c);
        return NULL;
    }
    c->started = true;
    return c;
}

bool px_creds_wait_first(struct px_creds *c, unsigned timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->answered) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
            break;
    }
    bool answered = c->answered;
    pthread_mutex_unlock(&c->mu);
    return answered;
}

void px_creds_stop(struct px_creds *c)
{
    if (c == NULL)
        return;
    if (c->started) {
        uint64_t one = 1;
        ssize_t w = write(c->stop_fd, &one, sizeof(one));
        (void)w;
        pthread_join(c->thread, NULL);
    }
    creds_free(c);
}
