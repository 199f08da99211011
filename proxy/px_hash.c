/*
 * px_hash.c: see px_hash.h.
 */
#include "px_hash.h"

#include <stdlib.h>
#include <string.h>

#include "px_proxy.h"

void px_hasher_init(struct px_worker *w)
{
    struct px_hasher *h = &w->hasher;
    memset(h, 0, sizeof(*h));
    if (pthread_mutex_init(&h->mu, NULL) != 0)
        return;
    if (pthread_cond_init(&h->cv, NULL) != 0) {
        pthread_mutex_destroy(&h->mu);
        return;
    }
    h->ready = true;
}

/* Hashes each chunk of the job from its evbuffer segments, in place. */
static void hash_job(struct px_hash_job *job)
{
    struct evbuffer_iovec v[64];
    int n = evbuffer_peek(job->data, -1, NULL, NULL, 0);
    if (n > 64) {
        /* Only when the bytes arrived in many small pieces: made contiguous, one copy. */
        if (evbuffer_pullup(job->data, -1) == NULL)
            n = 0;
    }
    n = n > 0 ? evbuffer_peek(job->data, -1, NULL, v, 64) : 0;
    if (n > 64)
        n = 64;
    int seg = 0;
    size_t at = 0; /* offset inside v[seg] */
    for (unsigned c = 0; c < job->count; c++) {
        struct sig_sha256 s;
        sig_sha256_init(&s);
        size_t left = job->lens[c];
        while (left > 0 && seg < n) {
            size_t take = v[seg].iov_len - at < left ? v[seg].iov_len - at : left;
            sig_sha256_update(&s, (const uint8_t *)v[seg].iov_base + at, take);
            left -= take;
            at += take;
            if (at == v[seg].iov_len) {
                seg++;
                at = 0;
            }
        }
        sig_sha256_final(&s, job->hash[c]);
    }
}

static struct px_hash_job *pop(struct px_hash_job **head, struct px_hash_job **tail)
{
    struct px_hash_job *j = *head;
    if (j != NULL) {
        *head = j->queue;
        if (*head == NULL)
            *tail = NULL;
        j->queue = NULL;
    }
    return j;
}

static void push(struct px_hash_job **head, struct px_hash_job **tail, struct px_hash_job *j)
{
    j->queue = NULL;
    if (*tail != NULL)
        (*tail)->queue = j;
    else
        *head = j;
    *tail = j;
}

static void *hasher_main(void *arg)
{
    struct px_worker *w = arg;
    struct px_hasher *h = &w->hasher;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->todo == NULL && !h->quit)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->quit)
            break;
        struct px_hash_job *job = pop(&h->todo, &h->todo_tail);
        pthread_mutex_unlock(&h->mu);
        hash_job(job);
        pthread_mutex_lock(&h->mu);
        bool was_empty = h->done == NULL;
        push(&h->done, &h->done_tail, job);
        if (was_empty) /* one wake-up for everything the worker has not collected yet */
            px_worker_wake(w);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static bool ensure_started(struct px_worker *w)
{
    struct px_hasher *h = &w->hasher;
    if (h->started)
        return true;
    if (!h->ready || pthread_create(&h->thread, NULL, hasher_main, w) != 0) {
        px_log(PX_LOG_ERROR, "worker %u: cannot start the hashing thread", w->index);
        return false;
    }
    h->started = true;
    return true;
}

static void free_job(struct px_hash_job *j)
{
    evbuffer_free(j->data);
    free(j);
}

void px_hasher_cleanup(struct px_worker *w)
{
    struct px_hasher *h = &w->hasher;
    if (!h->ready)
        return;
    if (h->started) {
        pthread_mutex_lock(&h->mu);
        h->quit = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
        h->started = false;
    }
    /* Every connection is gone by now: what is left in the queues is orphaned. */
    struct px_hash_job *j;
    while ((j = pop(&h->todo, &h->todo_tail)) != NULL)
        free_job(j);
    while ((j = pop(&h->done, &h->done_tail)) != NULL)
        free_job(j);
    while ((j = h->spare) != NULL) {
        h->spare = j->next;
        free_job(j);
    }
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    h->ready = false;
}

struct px_hash_job *px_hash_job_get(struct px_worker *w)
{
    struct px_hash_job *job = w->hasher.spare;
    if (job != NULL) {
        w->hasher.spare = job->next;
    } else {
        job = calloc(1, sizeof(*job));
        if (job == NULL)
            return NULL;
        job->data = evbuffer_new();
        if (job->data == NULL) {
            free(job);
            return NULL;
        }
    }
    job->next = job->queue = NULL;
    job->conn = NULL;
    job->count = 0;
    job->done = false;
    return job;
}

void px_hash_job_put(struct px_worker *w, struct px_hash_job *job)
{
    evbuffer_drain(job->data, evbuffer_get_length(job->data));
    job->conn = NULL;
    job->next = w->hasher.spare;
    w->hasher.spare = job;
}

static size_t job_bytes(const struct px_hash_job *job)
{
    size_t n = 0;
    for (unsigned i = 0; i < job->count; i++)
        n += job->lens[i];
    return n;
}

bool px_hash_submit(struct px_conn *conn, struct px_hash_job *job)
{
    struct px_worker *w = conn->w;
    if (!ensure_started(w)) {
        px_hash_job_put(w, job);
        return false;
    }
    job->conn = conn;
    job->next = NULL;
    if (conn->hq_tail != NULL)
        conn->hq_tail->next = job;
    else
        conn->hq_head = job;
    conn->hq_tail = job;
    conn->hq_bytes += job_bytes(job);
    conn->hq_count++;
    struct px_hasher *h = &w->hasher;
    pthread_mutex_lock(&h->mu);
    push(&h->todo, &h->todo_tail, job);
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return true;
}

static void unlink_head(struct px_conn *conn)
{
    struct px_hash_job *job = conn->hq_head;
    conn->hq_head = job->next;
    if (conn->hq_head == NULL)
        conn->hq_tail = NULL;
    conn->hq_bytes -= job_bytes(job);
    conn->hq_count--;
    job->next = NULL;
}

struct px_hash_job *px_hash_take_done(struct px_conn *conn)
{
    struct px_hash_job *job = conn->hq_head;
    if (job == NULL || !job->done)
        return NULL;
    unlink_head(conn);
    job->conn = NULL;
    return job;
}

void px_hash_abandon(struct px_conn *conn)
{
    while (conn->hq_head != NULL) {
        struct px_hash_job *job = conn->hq_head;
        unlink_head(conn);
        if (job->done)
            px_hash_job_put(conn->w, job);
        else
            job->conn = NULL; /* the hasher still has it: recycled when collected */
    }
}

void px_hasher_collect(struct px_worker *w)
{
    struct px_hasher *h = &w->hasher;
    if (!h->started)
        return;
    pthread_mutex_lock(&h->mu);
    struct px_hash_job *list = h->done;
    h->done = h->done_tail = NULL;
    pthread_mutex_unlock(&h->mu);
    /* First take the list apart (a pump below may recycle and resubmit any of its jobs),
     * noting each connection once; then pump those connections. */
    struct px_conn *to_pump = NULL;
    while (list != NULL) {
        struct px_hash_job *j = list;
        list = j->queue;
        j->queue = NULL;
        j->done = true;
        struct px_conn *c = j->conn;
        if (c == NULL) {
            px_hash_job_put(w, j);
        } else if (!c->hq_pump_listed) {
            c->hq_pump_listed = true;
            c->hq_pump_next = to_pump;
            to_pump = c;
        }
    }
    while (to_pump != NULL) {
        struct px_conn *c = to_pump;
        to_pump = c->hq_pump_next;
        c->hq_pump_next = NULL;
        c->hq_pump_listed = false;
        px_upstream_pump_body(c);
    }
}
