/*
 * px_accept.c: the listening socket, and the hand-off of accepted connections to workers.
 *
 * The main thread accepts and gives each connection to the worker with the fewest (counting
 * those already handed to it and not yet picked up); the worker picks them up from its inbox
 * when its eventfd wakes it. The exact balance matters with keep-alive clients: a connection
 * stays on its worker for its whole life, and per-worker SO_REUSEPORT sockets (the kernel
 * hashes addresses to sockets whatever each worker's load) or a socket shared by all workers
 * (whoever wakes first takes it) both left one of two workers with 60-65 % of wrk's 32
 * connections in our measurements; that worker's queueing then set the p99 latency. Envoy's
 * exact_balance connection balancer makes the same choice.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px_proxy.h"

/* How long the main thread waits before looking again when every worker is at
 * --max-connections, or after an accept error such as EMFILE (retrying at once would spin
 * on a socket that stays readable). */
#define PX_ACCEPT_RETRY_MS 50

int px_listen_open(const struct px_config *cfg)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char addr[96];
    const char *host = cfg->listen_host[0] ? cfg->listen_host : "0.0.0.0";
    if (strchr(host, ':'))
        snprintf(addr, sizeof(addr), "[%s]:%u", host, cfg->listen_port);
    else
        snprintf(addr, sizeof(addr), "%s:%u", host, cfg->listen_port);
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
        px_log(PX_LOG_ERROR, "cannot parse listen address %s", addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 || listen(fd, 1024) != 0) {
        px_log(PX_LOG_ERROR, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- the inbox (shared by the main thread and one worker; everything under w->inbox_mu) ---- */

bool px_inbox_init(struct px_worker *w)
{
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->wake_fd < 0) {
        px_log(PX_LOG_ERROR, "worker %u: eventfd: %s", w->index, strerror(errno));
        return false;
    }
    if (pthread_mutex_init(&w->inbox_mu, NULL) != 0) {
        close(w->wake_fd);
        w->wake_fd = -1;
        return false;
    }
    w->inbox_ready = true;
    return true;
}

void px_worker_wake(struct px_worker *w)
{
    uint64_t one = 1;
    if (write(w->wake_fd, &one, sizeof(one)) != sizeof(one))
        px_log(PX_LOG_ERROR, "worker %u: cannot wake: %s", w->index, strerror(errno));
}

/* Main thread: queue an accepted connection; false if the inbox is full. */
static bool inbox_push(struct px_worker *w, int fd, const struct sockaddr_storage *ss,
                       socklen_t len)
{
    pthread_mutex_lock(&w->inbox_mu);
    bool ok = w->inbox_count < PX_INBOX_CAP && !w->stop_requested;
    if (ok) {
        struct px_inbox_entry *e = &w->inbox[(w->inbox_head + w->inbox_count) % PX_INBOX_CAP];
        e->fd = fd;
        e->addr = *ss;
        e->addr_len = len;
        w->inbox_count++;
    }
    pthread_mutex_unlock(&w->inbox_mu);
    if (ok)
        px_worker_wake(w);
    return ok;
}

size_t px_inbox_take(struct px_worker *w, struct px_inbox_entry *out, size_t cap, bool *stop)
{
    pthread_mutex_lock(&w->inbox_mu);
    size_t n = w->inbox_count < cap ? w->inbox_count : cap;
    for (size_t i = 0; i < n; i++)
        out[i] = w->inbox[(w->inbox_head + i) % PX_INBOX_CAP];
    w->inbox_head = (w->inbox_head + n) % PX_INBOX_CAP;
    w->inbox_count -= n;
    *stop = w->stop_requested;
    pthread_mutex_unlock(&w->inbox_mu);
    return n;
}

void px_worker_stop(struct px_worker *w)
{
    if (!w->inbox_ready)
        return;
    pthread_mutex_lock(&w->inbox_mu);
    w->stop_requested = true;
    pthread_mutex_unlock(&w->inbox_mu);
    px_worker_wake(w);
}

void px_inbox_cleanup(struct px_worker *w)
{
    if (!w->inbox_ready)
        return;
    /* Connections handed over but never picked up (the worker stopped first). */
    for (size_t i = 0; i < w->inbox_count; i++)
        close(w->inbox[(w->inbox_head + i) % PX_INBOX_CAP].fd);
    w->inbox_count = 0;
    pthread_mutex_destroy(&w->inbox_mu);
    close(w->wake_fd);
    w->wake_fd = -1;
    w->inbox_ready = false;
}

/* ---- the main thread's accept loop ---- */

/* Connections the worker has or will have; read without the lock (a stale value only makes
 * the balance one connection less exact). */
static size_t load_of(struct px_worker *w)
{
    return atomic_load_explicit(&w->load, memory_order_relaxed);
}

/* The least loaded worker below --max-connections, round-robin among equals; NULL if all
 * are full. */
static struct px_worker *pick(struct px_worker *workers, unsigned n, unsigned *next)
{
    struct px_worker *best = NULL;
    size_t best_load = 0;
    for (unsigned k = 0; k < n; k++) {
        struct px_worker *w = &workers[(*next + k) % n];
        size_t l = load_of(w);
        if (l >= w->cfg->max_connections)
            continue;
        if (best == NULL || l < best_load) {
            best = w;
            best_load = l;
        }
    }
    if (best != NULL)
        *next = (unsigned)(best - workers + 1) % n;
    return best;
}

/* Accepts what is waiting (until EAGAIN or every worker is full). Returns false after an
 * error that needs a pause (EMFILE and the like). */
static bool accept_ready(int listen_fd, struct px_worker *workers, unsigned n, unsigned *next)
{
    for (;;) {
        struct px_worker *w = pick(workers, n, next);
        if (w == NULL)
            return true; /* all full: the rest wait in the backlog */
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return true;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            px_log(PX_LOG_ERROR, "accept failed: %s; retrying in %d ms", strerror(e),
                   PX_ACCEPT_RETRY_MS);
            return false;
        }
        atomic_fetch_add_explicit(&w->load, 1, memory_order_relaxed);
        if (!inbox_push(w, fd, &ss, len)) {
            /* The worker is far behind (or stopping): refuse rather than queue without
             * bound. */
            atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
            px_log(PX_LOG_ERROR, "worker %u: too many connections waiting; closing one", w->index);
            close(fd);
        }
    }
}

static bool all_full(struct px_worker *workers, unsigned n)
{
    unsigned next = 0;
    return pick(workers, n, &next) == NULL;
}

int px_accept_run(int listen_fd, struct px_worker *workers, unsigned n, const sigset_t *sigs)
{
    int sfd = signalfd(-1, sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        px_log(PX_LOG_ERROR, "signalfd: %s", strerror(errno));
        return -1;
    }
    unsigned next = 0;
    for (;;) {
        /* Every worker full: leave the backlog alone and look again shortly (a worker frees
         * room without telling). */
        bool listen_now = !all_full(workers, n);
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
                              {.fd = listen_now ? listen_fd : -1, .events = POLLIN}};
        int r = poll(p, 2, listen_now ? -1 : PX_ACCEPT_RETRY_MS);
        if (r < 0 && errno != EINTR) {
            px_log(PX_LOG_ERROR, "poll: %s", strerror(errno));
            close(sfd);
            return -1;
        }
        if (r > 0 && (p[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            int sig = read(sfd, &si, sizeof(si)) == sizeof(si) ? (int)si.ssi_signo : 0;
            close(sfd);
            return sig;
        }
        if (r > 0 && (p[1].revents & POLLIN) && !accept_ready(listen_fd, workers, n, &next)) {
            struct pollfd s = {.fd = sfd, .events = POLLIN};
            (void)poll(&s, 1, PX_ACCEPT_RETRY_MS); /* a signal is read on the next pass */
        }
    }
}
