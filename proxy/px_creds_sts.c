/* px_creds_sts.c: one STS AssumeRole call of the credentials thread (see px_creds.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "px_common.h"
#include "px_creds_int.h"

/* Room for the status line and headers of STS's answer, on top of the body limit. */
#define PX_CREDS_MAX_HEAD_BYTES (16u * 1024)
#define PX_CREDS_BODY_BYTES 4096u /* the form body: role ARN and session name, encoded */
#define PX_CREDS_WORKSPACE_BYTES (16u * 1024) /* the signer's, for one small request */

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
        px_creds_succeeded(c, ans.creds, ans.expiration);
        return;
    }
    char reason[CRED_MAX_REASON];
    if (ans.error_code[0] != '\0')
        snprintf(reason, sizeof(reason), "HTTP %d %.63s: %.255s", status, ans.error_code,
                 ans.error_message);
    else
        snprintf(reason, sizeof(reason), "HTTP %d: %s", status, cred_err_str(e));
    px_creds_failed(c, e, reason);
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
            px_creds_failed(c, CRED_ERR_BAD_ANSWER, "the answer is too large");
            return;
        }
        if (err != HPE_OK) {
            char reason[CRED_MAX_REASON];
            snprintf(reason, sizeof(reason), "malformed HTTP answer: %s", llhttp_errno_name(err));
            px_creds_failed(c, CRED_ERR_BAD_ANSWER, reason);
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
    px_creds_failed(c, CRED_ERR_UNREACHABLE, reason);
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
        .external_id = sig_slice_from_cstr(c->external_id),
        .duration_s = c->duration_s,
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

void px_creds_sts_start(struct px_creds *c)
{
    char reason[CRED_MAX_REASON];
    SSL *ssl = new_ssl(c);
    if (ssl != NULL)
        c->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        SSL_free(ssl);
        px_creds_failed(c, CRED_ERR_UNREACHABLE, "cannot create a TLS connection");
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
        px_creds_failed(c, CRED_ERR_BAD_ANSWER, reason);
        return;
    }
    struct timeval tv = {.tv_sec = PX_CREDS_CALL_TIMEOUT_MS / 1000,
                         .tv_usec = (PX_CREDS_CALL_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(c->deadline_ev, &tv);
    if (bufferevent_socket_connect_hostname(c->bev, c->dns, AF_UNSPEC, c->connect_host,
                                            c->connect_port) != 0) {
        describe_failure(c, BEV_EVENT_ERROR, reason, sizeof(reason));
        px_creds_failed(c, CRED_ERR_UNREACHABLE, reason);
    }
}

void px_creds_sts_end(struct px_creds *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
}

void px_creds_sts_init(struct px_creds *c)
{
    llhttp_settings_init(&c->settings);
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
}
