/* px_main.c: the sigv4d entry point: configuration, TLS context, credentials, workers, and
 * signal handling (the main thread only waits for SIGTERM/SIGINT). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "px_credsetup.h"
#include "px_io.h"
#include "px_proxy.h"

/* How long start-up waits for the first AssumeRole answer before accepting connections. */
#define PX_FIRST_CREDS_WAIT_MS 5000u

static SSL_CTX *make_ssl_ctx(const struct px_config *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Client-side session cache: resumption on new connections to the same upstream. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    px_ssl_upstream_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    SSL_CTX_sess_set_new_cb(ctx, px_upstream_new_session_cb);
    if (cfg->verify_tls) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (!px_tls_trust(ctx, cfg->ca_file)) {
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

int main(int argc, char **argv)
{
    struct px_config cfg;
    char err[512];
    int rc = 1;
    struct px_worker *workers = NULL;
    unsigned started = 0;
    int listen_fd = -1;
    SSL_CTX *ssl_ctx = NULL;
    struct px_cred_setup cs = {0};

    if (!px_config_parse(&cfg, argc, argv, err, sizeof(err))) {
        fprintf(stderr, "sigv4d: %s\n", err);
        px_config_cleanup(&cfg);
        return 2;
    }
    if (cfg.action == PX_ACTION_HELP) {
        px_config_usage(stdout);
        px_config_cleanup(&cfg);
        return 0;
    }
    if (cfg.action == PX_ACTION_VERSION) {
        printf("sigv4d %s\n", SIGV4D_VERSION);
        px_config_cleanup(&cfg);
        return 0;
    }
    px_log_level = cfg.verbose >= 2 ? PX_LOG_DEBUG : cfg.verbose == 1 ? PX_LOG_INFO : PX_LOG_ERROR;
    /* No evthread_use_pthreads(): each worker's libevent objects are used by that worker's
     * thread alone (the main thread stops workers through an eventfd), so no locks. */
    /* Signals are handled by the main thread alone, with sigwait; every thread (workers, hashers,
     * the credentials thread) inherits the mask, so block them before the first one starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    px_io_tune_malloc();
    if (!px_cred_setup(&cfg, &cs)) {
        rc = cs.exit_code;
        goto out;
    }

    if (cfg.upstream_tls) {
        ssl_ctx = make_ssl_ctx(&cfg);
        if (ssl_ctx == NULL)
            goto out;
    }

    listen_fd = px_listen_open(&cfg);
    if (listen_fd < 0)
        goto out;
    workers = px_xmalloc(cfg.workers * sizeof(*workers));
    for (unsigned i = 0; i < cfg.workers; i++) {
        workers[i].index = i;
        workers[i].wake_fd = -1;
        workers[i].cfg = &cfg;
        workers[i].ssl_ctx = ssl_ctx;
        workers[i].creds = cs.creds;
        workers[i].slot = cs.slot;
        if (!px_worker_init(&workers[i])) {
            for (unsigned k = 0; k <= i; k++)
                px_worker_release(&workers[k]);
            goto out_workers;
        }
    }
    for (; started < cfg.workers; started++) {
        if (pthread_create(&workers[started].thread, NULL, px_worker_run, &workers[started]) != 0) {
            px_log(PX_LOG_ERROR, "cannot start worker thread %u", started);
            break;
        }
    }
    if (started == cfg.workers) {
        px_log(PX_LOG_INFO, "listening on %s:%u with %u workers, upstream %s",
               cfg.listen_host[0] ? cfg.listen_host : "0.0.0.0", cfg.listen_port, cfg.workers,
               cfg.upstream_tls ? "https" : "http");
        /* Connections wait in the listen backlog until the first credentials (or 5 s). */
        if (cs.thread != NULL && !px_creds_wait_first(cs.thread, PX_FIRST_CREDS_WAIT_MS))
            px_log(PX_LOG_ERROR,
                   "credentials: no answer yet from the first fetch; serving (requests get "
                   "503 until credentials arrive)");
        int sig = px_accept_run(listen_fd, workers, cfg.workers, &sigs);
        if (sig > 0) {
            px_log(PX_LOG_INFO, "signal %d: draining", sig);
            rc = 0;
        }
    }
    for (unsigned i = 0; i < started; i++)
        px_worker_stop(&workers[i]);
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    for (unsigned i = started; i < cfg.workers; i++)
        px_worker_release(&workers[i]);
out_workers:
    free(workers);
out:
    if (listen_fd >= 0)
        close(listen_fd);
    px_cred_setup_cleanup(&cs);
    SSL_CTX_free(ssl_ctx);
    px_config_cleanup(&cfg);
    libevent_global_shutdown();
    return rc;
}
