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

#include "profile.h"
#include "px_creds.h"
#include "px_io.h"
#include "px_proxy.h"
#include "sts.h"

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

/* How long start-up waits for the first AssumeRole answer before accepting connections. */
#define PX_FIRST_CREDS_WAIT_MS 5000u

/* RoleSessionName: AWS_ROLE_SESSION_NAME as the SDKs read it, else sigv4d-UNIXTIME. False after
 * printing one line if the variable is malformed. */
static bool role_session_name(char *out, size_t cap)
{
    const char *env = getenv("AWS_ROLE_SESSION_NAME");
    if (env != NULL && env[0] != '\0') {
        if (!sts_session_name_valid(sig_slice_from_cstr(env)) ||
            !px_copy_cstr(out, cap, sig_slice_from_cstr(env))) {
            fprintf(stderr, "sigv4d: invalid AWS_ROLE_SESSION_NAME: want 2-64 characters of "
                            "A-Z a-z 0-9 + = , . @ _ -\n");
            return false;
        }
        return true;
    }
    snprintf(out, cap, "sigv4d-%lld", (long long)time(NULL));
    return true;
}

/*
 * The shared config and credentials files, read once at start-up when the environment leaves
 * something open: the region (after AWS_REGION and AWS_DEFAULT_REGION, before us-east-1) and,
 * if the environment has no keys (*cerr == CRED_ERR_NOT_FOUND), the profile's static keys.
 * Returns false after printing one line when sigv4d must not start: a malformed or unreadable
 * file, a profile named by AWS_PROFILE that does not exist, or a profile whose credentials
 * sigv4d cannot use (so that it never silently signs with nothing).
 */
static bool use_shared_files(struct px_config *cfg, struct cred **creds, enum cred_err *cerr)
{
    struct prof_paths paths;
    struct prof_set *set = NULL;
    char msg[512];
    if (prof_paths_from_env(&paths) != CRED_OK) {
        fprintf(stderr, "sigv4d: AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE or AWS_PROFILE "
                        "is too long\n");
        return false;
    }
    if (prof_set_load(&paths, &set, msg, sizeof(msg)) != CRED_OK) {
        fprintf(stderr, "sigv4d: %s\n", msg);
        return false;
    }
    struct sig_slice profile = sig_slice_from_cstr(paths.profile);
    struct sig_slice region = prof_get(set, profile, SIG_SLICE_LIT("region"));
    if (region.len != 0 && !px_config_set_profile_region(cfg, region))
        px_log(PX_LOG_ERROR, "profile %s: region is not a valid region name: ignored",
               paths.profile);
    bool ok = true;
    if (*creds == NULL && *cerr == CRED_ERR_NOT_FOUND) {
        enum cred_err e = cred_from_profile(set, profile, creds, msg, sizeof(msg));
        if (e == CRED_OK) {
            char id[8];
            cred_redacted_id(*creds, id);
            px_log(PX_LOG_INFO, "credentials from profile %s (shared files), access key %s",
                   paths.profile, id);
            *cerr = CRED_OK;
        } else if (e == CRED_ERR_NOT_FOUND ||
                   (e == CRED_ERR_NO_PROFILE && !paths.profile_from_env)) {
            /* No keys anywhere: serve 503s, as without the files (the log says why). */
        } else {
            fprintf(stderr, "sigv4d: %s%s\n", msg,
                    e == CRED_ERR_NO_PROFILE ? " (AWS_PROFILE)" : "");
            ok = false;
        }
    }
    prof_set_free(set);
    return ok;
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
    struct cred *creds = NULL;
    struct cred_slot *slot = NULL;
    struct px_creds *cthread = NULL;

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
    char session_name[STS_MAX_SESSION_NAME + 1];
    if (cfg.role_arn != NULL && !role_session_name(session_name, sizeof(session_name))) {
        rc = 2;
        goto out;
    }

    enum cred_err cerr = cred_from_env(&creds);
    if (cerr == CRED_OK) {
        char id[8];
        cred_redacted_id(creds, id);
        px_log(PX_LOG_INFO, "credentials from the environment, access key %s", id);
    }
    /* The shared files only when needed: with keys and a region in the environment (or
     * --region) a broken ~/.aws/config cannot stop sigv4d. */
    if ((cerr == CRED_ERR_NOT_FOUND || (cfg.region.len == 0 && !cfg.fallback_region_from_env)) &&
        !use_shared_files(&cfg, &creds, &cerr))
        goto out;
    if (cfg.role_arn != NULL) {
        if (cerr != CRED_OK) {
            fprintf(stderr,
                    "sigv4d: --role-arn needs base credentials (environment or profile): "
                    "%s\n",
                    cred_err_str(cerr));
            goto out;
        }
        sts_init();
        slot = cred_slot_new();
        char region[64];
        px_copy_cstr(region, sizeof(region), cfg.region.len ? cfg.region : cfg.fallback_region);
        struct px_creds_params cp = {.cfg = &cfg,
                                     .base = creds,
                                     .slot = slot,
                                     .role_arn = cfg.role_arn,
                                     .session_name = session_name,
                                     .region = region};
        cthread = px_creds_start(&cp);
        if (cthread == NULL)
            goto out;
    } else if (cerr != CRED_OK) {
        /* Keep serving: every request gets 503 with the reason, which is easier to diagnose
         * from a client than a proxy that refuses to start. */
        px_log(PX_LOG_ERROR,
               "no usable credentials in the environment or the shared files (%s): requests "
               "will get 503",
               cred_err_str(cerr));
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
        workers[i].creds = creds;
        workers[i].slot = slot;
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
        if (cthread != NULL && !px_creds_wait_first(cthread, PX_FIRST_CREDS_WAIT_MS))
            px_log(PX_LOG_ERROR, "credentials: no answer from STS yet; serving (requests get "
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
    px_creds_stop(cthread);
    cred_slot_free(slot);
    cred_unref(creds);
    SSL_CTX_free(ssl_ctx);
    px_config_cleanup(&cfg);
    libevent_global_shutdown();
    return rc;
}
