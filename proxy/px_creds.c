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

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <llhttp.h>

#include "px_common.h"
#include "sts.h"

/* Room for the status line and headers of STS's answer, on top of the body limit. */
#define PX_CREDS_MAX_HEAD_BYTES (16u * 1024)
#define PX_CREDS_BODY_BYTES 4096u /* the form body: role ARN and session name, encoded */
#define PX_CREDS_WORKSPACE_BYTES (16u * 1024) /* the signer's, for one small request */

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
    struct cred *base_creds; /* owned reference */
    struct cred_slot *slot;
    char role_arn[2048];
    char session_name[STS_MAX_SESSION_NAME + 1];
    char region[64];
    char host[256]; /* sts.REGION.amazonaws.com: SNI, certificate name, Host, signature */
    char connect_host[256];
    uint16_t connect_port;

    /* The call in flight (bev != NULL). */
    struct bufferevent *bev;
    llhttp_t parser;
    llhttp_settings_t settings;
    uint8_t *answer; /* STS_MAX_RESPONSE_BYTES, wiped after each call */
    size_t answer_len;
    size_t bytes_in;  /* everything read, head included */
    bool answer_full; /* the body went over STS_MAX_RESPONSE_BYTES */
    bool complete;
    unsigned backoff_s;

    /* The first answer, for px_creds_wait_first (under mu). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool answered;
};

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

/* Wipes and forgets the answer, closes the connection. */
static void end_call(struct px_creds *c)
{
    OPENSSL_cleanse(c->answer, c->answer_len);
    c->answer_len = 0;
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    evtimer_del(c->deadline_ev);
}

static void call_failed(struct px_creds *c, enum cred_err err, const char *reason)
{
    end_call(c);
    cred_slot_fail(c->slot, err, reason);
    unsigned wait = c->backoff_s;
    c->backoff_s =
        c->backoff_s * 2 > PX_CREDS_MAX_BACKOFF_S ? PX_CREDS_MAX_BACKOFF_S : c->backoff_s * 2;
    px_log(PX_LOG_ERROR, "credentials: STS AssumeRole of %s failed: %s; retrying in %u s",
           c->role_arn, reason, wait);
    schedule_in(c, wait);
    note_answered(c);
}

static void call_succeeded(struct px_creds *c, struct cred *creds, int64_t expiration)
{
    end_call(c);
    int64_t now = (int64_t)time(NULL);
    int64_t life = expiration - now;
    int64_t ahead = life / 2 < PX_CREDS_REFRESH_AHEAD_S ? life / 2 : PX_CREDS_REFRESH_AHEAD_S;
    int64_t refresh_in = life - ahead < 1 ? 1 : life - ahead;
    cred_slot_publish(c->slot, creds, expiration);
    char id[8];
    cred_redacted_id(creds, id);
    cred_unref(creds);
    c->backoff_s = 1;
    px_log(PX_LOG_INFO,
           "credentials: assumed %s as session %s: access key %s, valid for %lld s, refresh in "
           "%lld s",
           c->role_arn, c->session_name, id, (long long)life, (long long)refresh_in);
    schedule_in(c, refresh_in);
    note_answered(c);
}

/* ---- the answer ---- */

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct px_creds *c = p->data;
    if (len > STS_MAX_RESPONSE_BYTES - c->answer_len) {
        c->answer_full = true;
        return HPE_USER;
    }
    memcpy(c->answer + c->answer_len, at, len);
    c->answer_len += len;
    return HPE_OK;
}

static int on_message_complete(llhttp_t *p)
{
    struct px_creds *c = p->data;
    c->complete = true;
    return HPE_PAUSED;
}

static void finish_answer(struct px_creds *c)
{
    struct sts_answer ans;
    memset(&ans, 0, sizeof(ans));
    int status = c->parser.status_code;
    enum cred_err e = sts_parse_answer(status, c->answer, c->answer_len, &ans);
    if (e == CRED_OK) {
        call_succeeded(c, ans.creds, ans.expiration);
        return;
    }
    char reason[CRED_MAX_REASON];
    if (ans.error_code[0] != '\0')
        snprintf(reason, sizeof(reason), "HTTP %d %.63s: %.255s", status, ans.error_code,
                 ans.error_message);
    else
        snprintf(reason, sizeof(reason), "HTTP %d: %s", status, cred_err_str(e));
    call_failed(c, e, reason);
}

/* Parses what arrived, then wipes it in the input buffer before dropping it: it holds the
 * new secret and token. */
static void read_cb(struct bufferevent *bev, void *arg)
{
    struct px_creds *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!c->complete && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        c->bytes_in += v.iov_len;
        llhttp_errno_t err = HPE_OK;
        if (c->bytes_in <= STS_MAX_RESPONSE_BYTES + PX_CREDS_MAX_HEAD_BYTES)
            err = llhttp_execute(&c->parser, v.iov_base, v.iov_len);
        OPENSSL_cleanse(v.iov_base, v.iov_len);
        evbuffer_drain(in, v.iov_len);
        if (c->complete)
            break;
        if (c->bytes_in > STS_MAX_RESPONSE_BYTES + PX_CREDS_MAX_HEAD_BYTES || c->answer_full) {
            call_failed(c, CRED_ERR_BAD_ANSWER, "the answer is too large");
            return;
        }
        if (err != HPE_OK) {
            char reason[CRED_MAX_REASON];
            snprintf(reason, sizeof(reason), "malformed HTTP answer: %s", llhttp_errno_name(err));
            call_failed(c, CRED_ERR_BAD_ANSWER, reason);
            return;
        }
    }
    if (c->complete)
        finish_answer(c);
}

/* Why the connection failed, in one line: DNS, connect, TLS verification or TLS. */
static void describe_failure(struct px_creds *c, short what, char *out, size_t cap)
{
    int dns_err = bufferevent_socket_get_dns_error(c->bev);
    if (dns_err != 0) {
        snprintf(out, cap, "cannot resolve %.255s: %.80s", c->connect_host,
                 evutil_gai_strerror(dns_err));
        return;
    }
    int se = EVUTIL_SOCKET_ERROR();
    if (se == ECONNREFUSED || se == ETIMEDOUT || se == EHOSTUNREACH || se == ENETUNREACH ||
        se == ECONNRESET) {
        snprintf(out, cap, "cannot connect to %.255s:%u: %.80s", c->connect_host, c->connect_port,
                 evutil_socket_error_to_string(se));
        return;
    }
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long tls_err = 0, e;
    while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
        tls_err = e;
    if (vr != X509_V_OK) {
        snprintf(out, cap, "TLS verification failed for %.255s: %.80s", c->host,
                 X509_verify_cert_error_string(vr));
    } else if (tls_err != 0) {
        const char *r = ERR_reason_error_string(tls_err);
        snprintf(out, cap, "TLS handshake with %.255s failed: %.80s", c->host,
                 r ? r : "unknown error");
    } else if (what & BEV_EVENT_EOF) {
        snprintf(out, cap, "%.255s closed the connection before answering", c->host);
    } else {
        snprintf(out, cap, "cannot connect to %.255s:%u: %.80s", c->connect_host, c->connect_port,
                 se != 0 ? evutil_socket_error_to_string(se) : "connection failed");
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct px_creds *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if ((what & BEV_EVENT_EOF) && !c->complete && c->answer_len > 0 &&
        llhttp_finish(&c->parser) == HPE_OK && llhttp_message_needs_eof(&c->parser)) {
        finish_answer(c); /* an answer delimited by the close */
        return;
    }
    char reason[CRED_MAX_REASON];
    describe_failure(c, what, reason, sizeof(reason));
    call_failed(c, CRED_ERR_UNREACHABLE, reason);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_creds *c = arg;
    char reason[CRED_MAX_REASON];
    snprintf(reason, sizeof(reason), "no answer from %.255s within %u s", c->host,
             PX_CREDS_CALL_TIMEOUT_MS / 1000);
    call_failed(c, CRED_ERR_UNREACHABLE, reason);
}

/* ---- the request ---- */

static void wipe_and_free(const void *data, size_t len, void *extra)
{
    (void)extra;
    OPENSSL_cleanse((void *)data, len);
    free((void *)data);
}

/* The signed request (head and body) in one wiped block, handed to libevent by reference. */
static bool queue_request(struct px_creds *c, struct evbuffer *out, char *reason, size_t cap)
{
    size_t mem_cap = STS_MAX_HEAD_BYTES + PX_CREDS_BODY_BYTES;
    uint8_t *mem = px_xmalloc(mem_cap);
    uint8_t body_mem[PX_CREDS_BODY_BYTES];
    struct sig_buf body, req;
    sig_buf_init(&body, body_mem, sizeof(body_mem));
    sig_buf_init(&req, mem, mem_cap);
    struct sts_assume_role p = {
        .role_arn = sig_slice_from_cstr(c->role_arn),
        .session_name = sig_slice_from_cstr(c->session_name),
        .duration_s = STS_DEFAULT_DURATION_S,
    };
    uint8_t *ws_mem = px_xmalloc(PX_CREDS_WORKSPACE_BYTES);
    struct sig_workspace ws;
    sig_workspace_init(&ws, ws_mem, PX_CREDS_WORKSPACE_BYTES);
    struct sig_credentials base = cred_view(c->base_creds);
    enum cred_err e = sts_assume_role_body(&p, &body);
    if (e == CRED_OK)
        e = sts_sign_request(sig_slice_from_cstr(c->host), sig_slice_from_cstr(c->region),
                             (struct sig_slice){body.ptr, body.len}, (int64_t)time(NULL), &base,
                             &ws, &req);
    if (e == CRED_OK &&
        sig_buf_append_slice(&req, (struct sig_slice){body.ptr, body.len}) != SIG_OK)
        e = CRED_ERR_TOO_LONG;
    sig_workspace_cleanup(&ws);
    free(ws_mem);
    if (e != CRED_OK || evbuffer_add_reference(out, mem, req.len, wipe_and_free, NULL) != 0) {
        snprintf(reason, cap, "cannot build the request: %s", cred_err_str(e));
        OPENSSL_cleanse(mem, mem_cap);
        free(mem);
        return false;
    }
    return true;
}

static SSL *new_ssl(struct px_creds *c)
{
    SSL *ssl = SSL_new(c->ssl_ctx);
    if (ssl == NULL)
        return NULL;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    static const unsigned char alpn[] = "\x08http/1.1";
    if (SSL_set_tlsext_host_name(ssl, c->host) != 1 ||
        X509_VERIFY_PARAM_set1_host(param, c->host, 0) != 1 ||
        SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1) != 0) {
        SSL_free(ssl);
        return NULL;
    }
    /* The answer's plaintext (the role's secret and token) is wiped in OpenSSL's record buffer
     * too; a close without close_notify is an EOF (the answer is length-framed). */
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CLEANSE_PLAINTEXT);
    return ssl;
}

static void start_call(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_creds *c = arg;
    char reason[CRED_MAX_REASON];
    SSL *ssl = new_ssl(c);
    if (ssl != NULL)
        c->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        SSL_free(ssl);
        call_failed(c, CRED_ERR_UNREACHABLE, "cannot create a TLS connection");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    llhttp_init(&c->parser, HTTP_RESPONSE, &c->settings);
    c->parser.data = c;
    c->answer_len = c->bytes_in = 0;
    c->answer_full = c->complete = false;
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (!queue_request(c, bufferevent_get_output(c->bev), reason, sizeof(reason))) {
        call_failed(c, CRED_ERR_BAD_ANSWER, reason);
        return;
    }
    struct timeval tv = {.tv_sec = PX_CREDS_CALL_TIMEOUT_MS / 1000,
                         .tv_usec = (PX_CREDS_CALL_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(c->deadline_ev, &tv);
    if (bufferevent_socket_connect_hostname(c->bev, c->dns, AF_UNSPEC, c->connect_host,
                                            c->connect_port) != 0) {
        describe_failure(c, BEV_EVENT_ERROR, reason, sizeof(reason));
        call_failed(c, CRED_ERR_UNREACHABLE, reason);
    }
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
        OPENSSL_cleanse(c->answer, STS_MAX_RESPONSE_BYTES);
        free(c->answer);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static bool copy_params(struct px_creds *c, const struct px_creds_params *p)
{
    struct sig_slice region = sig_slice_from_cstr(p->region);
    if (!px_copy_cstr(c->role_arn, sizeof(c->role_arn), sig_slice_from_cstr(p->role_arn)) ||
        !px_copy_cstr(c->session_name, sizeof(c->session_name),
                      sig_slice_from_cstr(p->session_name)) ||
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
    c->answer = px_xmalloc(STS_MAX_RESPONSE_BYTES);
    llhttp_settings_init(&c->settings);
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (!copy_params(c, p) || !make_loop(c)) {
        px_log(PX_LOG_ERROR, "credentials: cannot set up the STS client");
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
