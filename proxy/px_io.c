/*
 * px_io.c: see px_io.h.
 */
#include "px_io.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h> /* ev_write: is EV_WRITE armed? */
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* One reservation per read. An evbuffer chain holds its header and the data in one
 * allocation rounded up to a power of two: 60 KiB makes 64 KiB blocks, below glibc's mmap
 * threshold (128 KiB), so chains come from the heap and are reused instead of being mmapped,
 * faulted in and unmapped for every read. */
#define PX_IO_READ_CHUNK (60u * 1024)

/*
 * libevent's own read callback (bufferevent_readcb) asks FIONREAD before every read and reads
 * at most 4 KiB; on a keep-alive proxy that is one extra syscall per read and, for bodies,
 * one loop pass per 4 KiB. px_io re-points the bufferevent's read event at own_readcb, which
 * reads with recv(2) until the socket is empty or the read high watermark is reached and then
 * behaves as libevent's does towards the bufferevent: the read callback runs when the input
 * reaches the low watermark, EOF and errors disable EV_READ and go to the event callback, a
 * timeout likewise. Everything else stays libevent's: enabling and disabling EV_READ (which
 * adds and deletes this same event), the watermark suspension (an input callback that
 * deletes and re-adds it), timeouts, freeing. Only the callback differs.
 */
static bool read_all(struct bufferevent *bev, evutil_socket_t fd, size_t limit, short *what)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    bool got = false;
    /* bufferevent_socket keeps the input's end frozen outside its own reads. */
    evbuffer_unfreeze(in, 0);
    while (len < limit) {
        size_t want = limit - len < PX_IO_READ_CHUNK ? limit - len : PX_IO_READ_CHUNK;
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1) {
            *what = BEV_EVENT_READING | BEV_EVENT_ERROR;
            errno = ENOMEM;
            break;
        }
        if (v.iov_len > want)
            v.iov_len = want;
        ssize_t r;
        do
            r = recv(fd, v.iov_base, v.iov_len, 0);
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
            int saved = errno;
            evbuffer_commit_space(in, &v, 0);
            if (r == 0)
                *what = BEV_EVENT_READING | BEV_EVENT_EOF;
            else if (saved != EAGAIN && saved != EWOULDBLOCK)
                *what = BEV_EVENT_READING | BEV_EVENT_ERROR;
            errno = saved;
            break;
        }
        want = v.iov_len;
        v.iov_len = (size_t)r;
        evbuffer_commit_space(in, &v, 1);
        len += (size_t)r;
        got = true;
        if ((size_t)r < want)
            break; /* a short read: the socket is empty now, spare the EAGAIN round */
    }
    evbuffer_freeze(in, 0);
    return got;
}

static void own_readcb(evutil_socket_t fd, short events, void *arg)
{
    struct bufferevent *bev = arg;
    /* The callbacks below may free bev; the reference keeps it valid until the end here. */
    bufferevent_incref(bev);
    short what = 0;
    if (events & EV_TIMEOUT) {
        what = BEV_EVENT_READING | BEV_EVENT_TIMEOUT;
    } else {
        size_t limit = bev->wm_read.high != 0 ? bev->wm_read.high : SIZE_MAX;
        if (read_all(bev, fd, limit, &what))
            bufferevent_trigger(bev, EV_READ, 0);
    }
    if (what != 0) {
        int saved = errno; /* the event callback reads the socket error from errno */
        bufferevent_disable(bev, EV_READ);
        errno = saved;
        bufferevent_trigger_event(bev, what, 0);
    }
    bufferevent_decref(bev);
}

/* Points bev's read event at own_readcb, keeping its pending state and timeout. */
static void own_reads(struct bufferevent *bev)
{
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || event_get_callback(&bev->ev_read) == own_readcb)
        return;
    struct timeval tv;
    int pending = event_pending(&bev->ev_read, EV_READ | EV_TIMEOUT, &tv);
    bool timed = (pending & EV_TIMEOUT) != 0;
    if (pending)
        event_del(&bev->ev_read);
    event_assign(&bev->ev_read, bufferevent_get_base(bev), fd, EV_READ | EV_PERSIST | EV_FINALIZE,
                 own_readcb, bev);
    if (pending) {
        struct timeval now, left = {0, 0};
        if (timed) {
            evutil_gettimeofday(&now, NULL);
            if (evutil_timercmp(&tv, &now, >))
                evutil_timersub(&tv, &now, &left);
        }
        event_add(&bev->ev_read, timed ? &left : NULL);
    }
}

/*
 * A body streams through buffers that are allocated and freed a few hundred KiB at a time.
 * glibc returns free memory at the top of a heap to the kernel once it exceeds the trim
 * threshold (128 KiB, or twice the largest mmapped chunk freed so far): on a worker thread's
 * arena that is an madvise(MADV_DONTNEED) and a page fault per page when the memory is used
 * again. Measured on a 1 GiB PUT: 2.1k madvise calls, page faults at the top of the profile,
 * and half of sigv4d's CPU time. Keeping up to 8 MiB per arena (each worker has one) stops
 * that and costs at most 8 MiB per worker when idle; peak RSS is unchanged. Setting a
 * threshold turns glibc's dynamic adjustment off, so the mmap threshold is set too: 1 MiB,
 * above every buffer the proxy allocates (the largest evbuffer chains are 128 KiB), so none
 * of them is mmapped and unmapped per use.
 */
void px_io_tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
}

struct px_io {
    struct bufferevent *bev;
    struct event *flush_ev;
    struct evbuffer_cb_entry *out_cb;
};

static bool write_armed(struct bufferevent *bev)
{
    return event_pending(&bev->ev_write, EV_WRITE, NULL) != 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct px_io *io = arg;
    struct bufferevent *bev = io->bev;
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t sock = bufferevent_getfd(bev);
    if (evbuffer_get_length(out) == 0 || write_armed(bev) || sock < 0)
        return;
    /* bufferevent_socket keeps the output's front frozen outside its own writes. */
    evbuffer_unfreeze(out, 1);
    int r = evbuffer_write_atmost(out, sock, -1);
    evbuffer_freeze(out, 1);
    /* A short write, EAGAIN or an error: libevent takes over (its write callback retries and
     * reports an error through the event callback, as for any write of its own). */
    if (evbuffer_get_length(out) != 0)
        bufferevent_enable(bev, EV_WRITE);
    /* Last: the write callback may free the connection, io included. bufferevent_trigger
     * holds a reference on bev while it runs. */
    if (r > 0)
        bufferevent_trigger(bev, EV_WRITE, 0);
}

/*
 * Runs before bufferevent_socket's own output callback (an evbuffer runs the newest
 * callback first), which arms EV_WRITE when bytes are added while EV_WRITE is enabled and
 * not pending. Disabling EV_WRITE here (no syscall: the event is not pending) keeps it from
 * arming; the flush writes instead.
 */
static void out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    struct px_io *io = arg;
    if (info->n_added == 0 || write_armed(io->bev))
        return;
    if (bufferevent_get_enabled(io->bev) & EV_WRITE)
        bufferevent_disable(io->bev, EV_WRITE);
    event_active(io->flush_ev, EV_WRITE, 1);
}

struct px_io *px_io_write_first(struct bufferevent *bev)
{
    struct px_io *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return NULL;
    io->bev = bev;
    own_reads(bev);
    io->flush_ev = event_new(bufferevent_get_base(bev), -1, 0, flush_cb, io);
    if (io->flush_ev != NULL)
        io->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), out_cb, io);
    if (io->out_cb == NULL) {
        if (io->flush_ev != NULL)
            event_free(io->flush_ev);
        free(io);
        return NULL;
    }
    return io;
}

/*
 * TLS. bufferevent_openssl (libevent 2.1) decrypts one TLS record per loop pass: its read
 * callback does one SSL_read, drains only what SSL_pending reports of that record, and runs
 * the read callback; so a download costs an epoll_wait, a read callback and a client write
 * per 16 KiB record. tls_readcb lets libevent's own callback run first (it keeps handling the
 * handshake states, timeouts, EOF and errors), then goes on reading whole records while
 * SSL_read has data to give, up to the read limit, and runs the read callback once more for
 * them. Each SSL_read takes one whole record (16 KiB of room), so nothing decrypted is
 * left behind in OpenSSL when the loop stops: what remains is in the socket, whose readiness
 * brings libevent back. (Read-ahead would save a read(2) per record, but records it buffered
 * would wait for a readiness that never comes: not used.)
 */
#define PX_IO_TLS_LIMIT (256u * 1024)
/* The largest TLS record's plaintext (RFC 8446 5.1): one SSL_read gives at most this. */
#define PX_IO_TLS_RECORD 16384u

/* libevent's read-event callback of every bufferevent_openssl (one function for all), taken
 * from the first one hooked. The event's argument stays the bufferevent itself, as libevent
 * assigned it: its finalizer reads that argument as the bufferevent when the bufferevent is
 * freed from inside this callback. */
static _Atomic(event_callback_fn) tls_orig_readcb;

/* Decrypted records into bev's input until SSL_read has nothing to give without the socket,
 * or the limit. Returns whether anything was read; *more is set when SSL_read stopped for
 * another reason than an empty socket (close_notify, an error, a renegotiation wanting a
 * write), which libevent's callback must then see at once: the socket may never be readable
 * again to bring it back. */
static bool tls_read_more(struct bufferevent *bev, SSL *ssl, bool *more)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    bool got = false;
    *more = false;
    while (evbuffer_get_length(in) < PX_IO_TLS_LIMIT && (bufferevent_get_enabled(bev) & EV_READ)) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(in, PX_IO_TLS_RECORD, &v, 1) < 1)
            break;
        ERR_clear_error();
        int r = SSL_read(ssl, v.iov_base,
                         (int)(v.iov_len < PX_IO_TLS_RECORD ? v.iov_len : PX_IO_TLS_RECORD));
        if (r <= 0) {
            evbuffer_commit_space(in, &v, 0);
            *more = SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ;
            ERR_clear_error(); /* libevent's SSL_read sees the same state again */
            break;
        }
        v.iov_len = (size_t)r;
        evbuffer_commit_space(in, &v, 1);
        got = true;
        if (r < (int)PX_IO_TLS_RECORD)
            break; /* a short record ends a burst: asking again would mostly meet EAGAIN */
    }
    return got;
}

/* Whether bev is still in use: bufferevent_free clears the callbacks (our reference keeps the
 * memory until the end of this callback). */
static bool still_used(struct bufferevent *bev)
{
    bufferevent_data_cb readcb = NULL;
    bufferevent_getcb(bev, &readcb, NULL, NULL, NULL);
    return readcb != NULL;
}

static void tls_readcb(evutil_socket_t fd, short what, void *arg)
{
    struct bufferevent *bev = arg;
    event_callback_fn orig = atomic_load_explicit(&tls_orig_readcb, memory_order_relaxed);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    BIO *rbio = ssl != NULL ? SSL_get_rbio(ssl) : NULL;
    uint64_t before = rbio != NULL ? BIO_number_read(rbio) : 0;
    bufferevent_incref(bev);
    orig(fd, what, arg);
    /* Only after a full record (a bulk transfer): a small response is all there was. */
    bool bulk = rbio != NULL && BIO_number_read(rbio) - before >= PX_IO_TLS_RECORD;
    bool more = false;
    if (!(what & EV_TIMEOUT) && bulk && still_used(bev) && tls_read_more(bev, ssl, &more))
        bufferevent_trigger(bev, EV_READ, 0);
    if (more && still_used(bev))
        orig(fd, EV_READ, arg);
    bufferevent_decref(bev);
}

void px_io_tls_reads(struct bufferevent *bev)
{
    event_callback_fn orig = event_get_callback(&bev->ev_read);
    if (orig == tls_readcb || orig == NULL || event_get_callback_arg(&bev->ev_read) != bev)
        return; /* already ours, or not the shape this relies on: libevent's way then */
    atomic_store_explicit(&tls_orig_readcb, orig, memory_order_relaxed);
    evutil_socket_t fd = event_get_fd(&bev->ev_read);
    int pending = event_pending(&bev->ev_read, EV_READ, NULL);
    if (pending)
        event_del(&bev->ev_read);
    event_assign(&bev->ev_read, bufferevent_get_base(bev), fd, EV_READ | EV_PERSIST | EV_FINALIZE,
                 tls_readcb, bev);
    if (pending)
        event_add(&bev->ev_read, NULL);
}

void px_io_tls_write_now(struct bufferevent *bev)
{
    /* bufferevent_openssl's output callback only arms EV_WRITE (epoll_ctl), and the write
     * waits for the next epoll_wait to report writability (another epoll_ctl to disarm
     * after). Running its write event now writes in this pass; the arm and the disarm then
     * fall in the same pass and cancel out in the changelist. */
    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0 &&
        event_pending(&bev->ev_write, EV_WRITE, NULL))
        event_active(&bev->ev_write, EV_WRITE, 1);
}

void px_io_connected(struct px_io *io)
{
    if (io != NULL)
        own_reads(io->bev);
}

void px_io_free(struct px_io *io)
{
    if (io == NULL)
        return;
    evbuffer_remove_cb_entry(bufferevent_get_output(io->bev), io->out_cb);
    event_free(io->flush_ev);
    free(io);
}
