/*
 * px_io.h: cheaper socket I/O under libevent 2.1's plain-socket bufferevents.
 *
 * libevent 2.1 reads at most 4 KiB per loop pass (EVBUFFER_MAX_READ) and asks FIONREAD
 * first, and arms EV_WRITE (epoll_ctl) for every write and disarms it when the output is
 * empty. px_io reads until the socket is empty with one recv(2) per 60 KiB, and writes first,
 * arming EV_WRITE only when the kernel did not take everything. Only for bufferevent_socket
 * (never bufferevent_openssl: the bytes on its fd are TLS records).
 */
#ifndef PX_IO_H
#define PX_IO_H

#include <stddef.h>

#include <event2/bufferevent.h>

struct px_io;

/* Keeps glibc from returning the body buffers' memory to the kernel after every pass (see
 * px_io.c). Call once at start-up, before the worker threads exist. */
void px_io_tune_malloc(void);

/*
 * Write first: bytes added to bev's output are written from the loop at the end of the
 * current pass (one writev for everything queued in the pass), and EV_WRITE is armed only
 * when the kernel did not take all of it; libevent then goes on as usual and reports errors
 * through the event callback. After such a write the write callback runs as libevent would
 * run it (output at or below the write low watermark). px_io owns bev's EV_WRITE flag from
 * now on. Returns NULL if out of memory: bev then keeps libevent's way, which also works.
 */
struct px_io *px_io_write_first(struct bufferevent *bev);
/*
 * Also from px_io_write_first on: bev's reads are px_io's (see px_io.c), from the moment its
 * fd is known; a bufferevent that connects (bufferevent_socket_connect assigns the fd and
 * libevent's read callback anew) calls this once the connection is up.
 */
void px_io_connected(struct px_io *io);
/*
 * bufferevent_openssl: after libevent's own read callback (one TLS record per loop pass), go
 * on decrypting whole records while the socket has them (see px_io.c). Call once the
 * handshake is done (BEV_EVENT_CONNECTED); idempotent.
 */
void px_io_tls_reads(struct bufferevent *bev);
/* bufferevent_openssl: write what its output holds in this loop pass, not after the next
 * epoll_wait (see px_io.c). */
void px_io_tls_write_now(struct bufferevent *bev);

/* Before bufferevent_free(bev). NULL is a no-op. */
void px_io_free(struct px_io *io);

#endif
