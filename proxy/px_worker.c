/* px_worker.c: one worker thread: event loop, connections from its inbox, graceful stop. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "px_proxy.h"

void px_worker_conn_added(struct px_worker *w)
{
    w->conn_count++;
    w->conns_accepted++;
}

void px_worker_conn_removed(struct px_worker *w)
{
    w->conn_count--;
    atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
}

/*
 * struct cred_io on libevent. Deferred tasks (one per request: the credential answer) wait in
 * a FIFO that one persistent event runs from the loop; their records are recycled, so
 * deferring allocates nothing in steady state (event_base_once would allocate an event and we
 * a record per call).
 */
struct px_deferred_task {
    cred_task_fn fn;
    void *arg;
    struct px_deferred_task *next;
};

static void defer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_worker *w = arg;
    /* Only the tasks queued so far: one deferred from a task runs on the next pass. */
    struct px_deferred_task *t = w->defer_head;
    w->defer_head = w->defer_tail = NULL;
    while (t != NULL) {
        struct px_deferred_task *next = t->next;
        cred_task_fn fn = t->fn;
        void *task_arg = t->arg;
        t->fn = NULL;
        t->arg = NULL;
        t->next = w->defer_free;
        w->defer_free = t;
        fn(task_arg);
        t = next;
    }
}

static int64_t io_now(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

static void io_defer(void *ctx, cred_task_fn fn, void *arg)
{
    struct px_worker *w = ctx;
    struct px_deferred_task *t = w->defer_free;
    if (t != NULL)
        w->defer_free = t->next;
    else
        t = px_xmalloc(sizeof(*t));
    *t = (struct px_deferred_task){.fn = fn, .arg = arg};
    if (w->defer_tail != NULL)
        w->defer_tail->next = t;
    else
        w->defer_head = t;
    w->defer_tail = t;
    event_active(w->defer_ev, EV_TIMEOUT, 0); /* no-op while already active */
}

static void free_task_list(struct px_deferred_task *t)
{
    while (t != NULL) {
        struct px_deferred_task *next = t->next;
        free(t);
        t = next;
    }
}

static void maybe_finish_drain(struct px_worker *w)
{
    if (w->stopping && w->conns == NULL)
        event_base_loopbreak(w->base);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_worker *w = arg;
    if (w->conns != NULL)
        px_log(PX_LOG_INFO, "worker %u: drain deadline passed, closing connections", w->index);
    event_base_loopbreak(w->base);
}

static void poll_drained_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    maybe_finish_drain(arg);
}

static void begin_stop(struct px_worker *w)
{
    w->stopping = true;
    /* Idle keep-alive connections have nothing to drain. */
    for (struct px_conn *c = w->conns; c; c = c->next)
        if (c->state == PX_STATE_READ_HEAD && !c->head_started)
            px_conn_close(c);
    px_upstream_pool_free(w);
    uint32_t ms = w->cfg->shutdown_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(w->deadline_ev, &tv);
    /* Connections free themselves as they finish; check every 50 ms whether all are gone. */
    struct event *poll = event_new(w->base, -1, EV_PERSIST, poll_drained_cb, w);
    struct timeval p = {0, 50000};
    if (poll != NULL) {
        event_add(poll, &p);
        w->poll_ev = poll; /* freed by worker_cleanup */
    }
}

/* The main thread handed over connections or asked this worker to stop (px_accept.c), or
 * the hasher finished jobs (px_hash.c). */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct px_worker *w = arg;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        px_log(PX_LOG_ERROR, "worker %u: wake-up read failed: %s", w->index, strerror(errno));
    struct px_inbox_entry batch[16];
    bool stop = false;
    size_t got;
    while ((got = px_inbox_take(w, batch, 16, &stop)) > 0) {
        for (size_t i = 0; i < got; i++) {
            if (w->stopping || stop) {
                close(batch[i].fd); /* arrived as the stop did: never served */
                atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
                continue;
            }
            uint64_t before = w->conns_accepted;
            px_conn_accept(w, batch[i].fd, (struct sockaddr *)&batch[i].addr,
                           (int)batch[i].addr_len);
            if (w->conns_accepted == before) /* refused for want of memory: never counted */
                atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
            else
                px_log(PX_LOG_DEBUG, "worker %u: took a connection (%zu open)", w->index,
                       w->conn_count);
        }
    }
    if (stop && !w->stopping)
        begin_stop(w);
    px_hasher_collect(w);
}

const struct timeval *px_worker_timeout(const struct px_worker *w, uint32_t ms,
                                        struct timeval *scratch)
{
    for (size_t i = 0; i < w->timeout_count; i++)
        if (w->timeouts[i].ms == ms)
            return w->timeouts[i].tv;
    scratch->tv_sec = ms / 1000;
    scratch->tv_usec = (ms % 1000) * 1000;
    return scratch;
}

static void init_common_timeouts(struct px_worker *w)
{
    const struct px_config *cfg = w->cfg;
    const uint32_t all[] = {cfg->client_header_timeout_ms, cfg->client_idle_timeout_ms,
                            cfg->connect_timeout_ms,       cfg->first_byte_timeout_ms,
                            cfg->upstream_idle_timeout_ms, PX_LINGER_MS};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        struct timeval scratch;
        if (px_worker_timeout(w, all[i], &scratch) != &scratch ||
            w->timeout_count == PX_COMMON_TIMEOUTS)
            continue; /* already there */
        const struct timeval *tv = event_base_init_common_timeout(w->base, &scratch);
        if (tv != NULL)
            w->timeouts[w->timeout_count++] = (struct px_common_timeout){all[i], tv};
    }
}

bool px_worker_init(struct px_worker *w)
{
    const struct px_config *cfg = w->cfg;
    struct event_config *ecfg = event_config_new();
    if (ecfg != NULL) {
        /* Coalesce the epoll_ctl calls of an enable/disable pair within one loop pass (the
         * client read side toggles around every request). */
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        w->base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (w->base == NULL) {
        px_log(PX_LOG_ERROR, "worker %u: cannot create an event base", w->index);
        return false;
    }
    w->dns = evdns_base_new(w->base,
                            EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (w->dns == NULL) {
        /* No usable resolv.conf: numeric hosts and /etc/hosts still work. */
        w->dns = evdns_base_new(w->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (w->dns != NULL)
            evdns_base_load_hosts(w->dns, NULL);
    }
    if (w->dns == NULL) {
        px_log(PX_LOG_ERROR, "worker %u: cannot create a DNS resolver", w->index);
        return false;
    }
    /* The main thread reaches a worker only through its inbox and eventfd (px_accept.c):
     * libevent then needs no locks (evthread), which would otherwise be taken around every
     * event and bufferevent operation of every request. */
    init_common_timeouts(w);
    if (!px_inbox_init(w))
        return false;
    px_hasher_init(w);
    w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, wake_cb, w);
    if (w->wake_ev == NULL || event_add(w->wake_ev, NULL) != 0) {
        px_log(PX_LOG_ERROR, "worker %u: cannot watch its wake-up eventfd", w->index);
        return false;
    }
    w->defer_ev = event_new(w->base, -1, 0, defer_cb, w);
    w->deadline_ev = evtimer_new(w->base, deadline_cb, w);
    w->sign_cap = px_sign_header_cap(cfg);
    w->sign_all = px_xmalloc(w->sign_cap * sizeof(*w->sign_all));
    w->sign_signed = px_xmalloc(w->sign_cap * sizeof(*w->sign_signed));
    /* Room for one X-Original- copy of each --duplicate-headers name. */
    w->sign_dup_cap = 0;
    for (size_t i = 0; i < cfg->duplicate_header_count; i++)
        w->sign_dup_cap += cfg->duplicate_headers[i].len + 12;
    w->sign_dup_mem = px_xmalloc(w->sign_dup_cap + 1);
    w->ws_mem = px_xmalloc(PX_WORKSPACE_BYTES);
    sig_workspace_init(&w->ws, w->ws_mem, PX_WORKSPACE_BYTES);
    sig_key_cache_init(&w->keys);
    struct cred_io io = {.ctx = w, .defer = io_defer, .now = io_now};
    w->provider = w->slot != NULL ? cred_provider_new_slot(&io, w->slot)
                                  : cred_provider_new_static(&io, w->creds, CRED_ERR_NOT_FOUND);
    return w->deadline_ev != NULL && w->defer_ev != NULL;
}

static void worker_cleanup(struct px_worker *w)
{
    /* Close whatever the drain left, then let deferred frees and pending provider answers
     * run (bounded: each pass can only finish work, never start new requests). */
    for (struct px_conn *c = w->conns; c; c = c->next)
        px_conn_close(c);
    for (int i = 0; i < 100 && w->conns != NULL; i++)
        event_base_loop(w->base, EVLOOP_NONBLOCK);
    px_upstream_pool_free(w);
    px_upstream_tls_sessions_free(w);
    px_hasher_cleanup(w);
    if (w->poll_ev)
        event_free(w->poll_ev);
    w->poll_ev = NULL;
    if (w->wake_ev)
        event_free(w->wake_ev);
    w->wake_ev = NULL;
    px_inbox_cleanup(w);
    if (w->deadline_ev)
        event_free(w->deadline_ev);
    w->deadline_ev = NULL;
    if (w->dns)
        evdns_base_free(w->dns, 1);
    w->dns = NULL;
    cred_provider_free(w->provider);
    w->provider = NULL;
    if (w->defer_ev)
        event_free(w->defer_ev);
    w->defer_ev = NULL;
    /* Tasks still queued belong to connections already gone: dropped, never run. */
    free_task_list(w->defer_head);
    w->defer_head = w->defer_tail = NULL;
    free_task_list(w->defer_free);
    w->defer_free = NULL;
    sig_key_cache_cleanup(&w->keys);
    cred_unref(w->keys_creds);
    w->keys_creds = NULL;
    free(w->sign_all);
    w->sign_all = NULL;
    free(w->sign_signed);
    w->sign_signed = NULL;
    free(w->sign_dup_mem);
    w->sign_dup_mem = NULL;
    if (w->ws_mem != NULL) {
        sig_workspace_cleanup(&w->ws);
        free(w->ws_mem);
        w->ws_mem = NULL;
    }
    if (w->base)
        event_base_free(w->base);
    w->base = NULL;
}

void *px_worker_run(void *arg)
{
    struct px_worker *w = arg;
    event_base_dispatch(w->base);
    worker_cleanup(w);
    return NULL;
}

void px_worker_release(struct px_worker *w)
{
    worker_cleanup(w);
}
