/*
 * px_hash.h: SHA-256 of aws-chunked chunks on a helper thread per worker.
 *
 * A 1 GiB upload signed as aws-chunked costs about 0.6 s of SHA-256 per GiB. On the loop
 * thread that time adds to the socket copies in series, and every other connection of the
 * worker waits 37 us per 64 KiB chunk. Here the loop thread moves each batch of chunks into
 * a job (evbuffer chains, not bytes), the worker's hasher thread hashes it, and the loop
 * thread signs the chunks in order (an HMAC each) and frames them upstream when it is told
 * the job is done: hashing overlaps with receiving and sending, and the loop stays free.
 *
 * Threads: a job and its evbuffer belong to one thread at a time; they change hands under
 * the hasher's mutex (submit, then the done list), which orders the memory accesses. The
 * hasher tells the worker through the worker's wake-up eventfd (px_accept.c).
 */
#ifndef PX_HASH_H
#define PX_HASH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "sig_sha256.h"

/* Chunks per job and jobs in flight per connection: 4 x 4 x 64 KiB = 1 MiB held. With 2 x 2
 * the hasher waited for work between jobs: a 1 GiB upload took 1.09-1.29 s here, 0.91-1.05 s
 * with 4 x 4 and PX_AWS_CHUNKED_WINDOW (bench/load/README.md). */
#define PX_HASH_BATCH 4
#define PX_HASH_DEPTH 4

struct px_conn;
struct px_worker;

struct px_hash_job {
    struct px_hash_job *next;  /* the connection's list, or the spares (worker thread only) */
    struct px_hash_job *queue; /* the hasher's todo or done list (under its mutex) */
    struct px_conn *conn;      /* NULL once the connection let go of it (worker thread only) */
    struct evbuffer *data;     /* the chunks' bytes, in order (owned) */
    size_t lens[PX_HASH_BATCH];
    unsigned count; /* chunks in this job */
    bool done;      /* the hashes are ready (worker thread's view) */
    uint8_t hash[PX_HASH_BATCH][SIG_SHA256_LEN];
};

struct px_hasher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct px_hash_job *todo, *todo_tail; /* under mu */
    struct px_hash_job *done, *done_tail; /* under mu */
    bool quit;                            /* under mu */
    bool started;                         /* the thread runs (worker thread only) */
    bool ready;                           /* mu and cv exist */
    pthread_t thread;
    struct px_hash_job *spare; /* recycled jobs (worker thread only) */
};

void px_hasher_init(struct px_worker *w);
/* Stops and joins the thread, frees every job. */
void px_hasher_cleanup(struct px_worker *w);

/* Worker thread. A job with an empty evbuffer, recycled or new; NULL if out of memory. */
struct px_hash_job *px_hash_job_get(struct px_worker *w);
/* Queues the job at the end of conn's list and hands it to the hasher (started on first use).
 * False (the job is recycled) if the thread cannot be started. */
bool px_hash_submit(struct px_conn *conn, struct px_hash_job *job);
/* The connection's first job, once it is done, taken off its list; NULL otherwise. Recycle it
 * with px_hash_job_put. */
struct px_hash_job *px_hash_take_done(struct px_conn *conn);
void px_hash_job_put(struct px_worker *w, struct px_hash_job *job);
/* The connection lets go of its jobs (request finished, failed or connection closed): done
 * ones are recycled now, the others when the hasher returns them. */
void px_hash_abandon(struct px_conn *conn);
/* Worker thread, on wake-up: marks returned jobs done and pumps their connections. */
void px_hasher_collect(struct px_worker *w);

#endif
