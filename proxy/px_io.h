/*
 * px_io.h: cheaper socket I/O under libevent 2.1's plain-socket bufferevents.
 *
 * libevent 2.1 reads at most 4 KiB per loop pass (EVBUFFER_MAX_READ) and asks FIONREAD
 * first, and arms EV_WRITE (epoll_ctl) for every write and disarms it when the output is
 * empty. These helpers read on in large pieces, and write first, arming EV_WRITE only when
 * the kernel did not take everything. Only for bufferevent_socket (never bufferevent_openssl:
 * the bytes on its fd are TLS records).
 */
#ifndef PX_IO_H
#define PX_IO_H

#include <stddef.h>

#include <event2/bufferevent.h>

struct px_io;

/* Reads what the socket holds into bev's input until the input reaches `limit` bytes or the
 * socket has nothing more, when libevent's last read may have left data behind. Returns the
 * bytes read. EOF and errors are left in the socket for libevent's next read to report. */
size_t px_io_read_more(struct bufferevent *bev, size_t limit);

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
/* Before bufferevent_free(bev). NULL is a no-op. */
void px_io_free(struct px_io *io);

#endif
