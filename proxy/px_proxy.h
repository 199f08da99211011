/*
 * px_proxy.h: workers, client connections and upstream connections.
 *
 * Threading: each worker thread owns one event_base and everything reachable from it
 * (connections, upstream pool, DNS, signer workspace, key cache). Nothing is shared between
 * workers except the read-only config, the SSL_CTX (thread-safe) and the immutable
 * credentials; the main thread reaches a worker only through its inbox (px_accept.c) and a
 * worker's hasher thread only through its job lists (px_hash.c).
 */
#ifndef PX_PROXY_H
#define PX_PROXY_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include <llhttp.h>

#include "cred.h"
#include "px_common.h"
#include "px_config.h"
#include "px_endpoint.h"
#include "px_frame.h"
#include "px_hash.h"
#include "sig_chunked.h"
#include "sig_sha256.h"
#include "sig_sign.h"

/* Output above this stops reading the other side; reading resumes at half. */
#define PX_HIGH_WATERMARK (256u * 1024)
#define PX_LOW_WATERMARK (PX_HIGH_WATERMARK / 2)
#define PX_WORKSPACE_BYTES (64u * 1024)
/* A body with a known length is handed to us in batches of at least this much (read low
 * watermark), not per TCP segment; px_io reads whatever the socket holds each time. */
#define PX_READ_BATCH_BYTES 4096u
/* Largest single read or write on a socket. */
#define PX_IO_BYTES (256u * 1024)
#define PX_SPOOL_READ_BYTES (64u * 1024)
/* Body pieces of one parsed segment moved rather than copied (struct px_conn). */
#define PX_BODY_SPANS 8
/* Lingering close: how long unread request bytes are discarded after the final response. */
#define PX_LINGER_MS 2000u
/* aws-chunked chunk size: what the AWS SDKs use; each chunk is signed once it is complete. */
#define PX_AWS_CHUNK_BYTES (64u * 1024)
/* An upload sent as aws-chunked reads on while what it holds (body not yet given to the
 * hasher, plus upstream output) is at most this, and again from half of it. Larger than the
 * streaming watermark: at 256 KiB the client's window closed about 2000 times per GiB and the
 * loop thread spent 0.8 s per GiB instead of 0.55 (bench/load/README.md). With the jobs at
 * the hasher (PX_HASH_DEPTH x PX_HASH_BATCH chunks) an upload holds at most 2 MiB. */
#define PX_AWS_CHUNKED_WINDOW (1024u * 1024)

struct px_conn;
struct px_upstream;
struct px_deferred_task;

/* Client TLS sessions per upstream, for resumption on new connections (per worker). */
#define PX_TLS_SESSIONS 16
struct px_tls_session {
    char key[600];
    SSL_SESSION *sess; /* owned reference */
};

/* SSL ex_data slot holding the struct px_upstream of a connection (set up by main). */
extern int px_ssl_upstream_index;

/* A connection accepted by the main thread, waiting for its worker (px_accept.c). */
struct px_inbox_entry {
    int fd;
    socklen_t addr_len;
    struct sockaddr_storage addr;
};
/* Connections that may wait in one worker's inbox; beyond, the main thread closes them. */
#define PX_INBOX_CAP 256

/* A duration libevent keeps in a queue of its own (event_base_init_common_timeout). */
struct px_common_timeout {
    uint32_t ms;
    const struct timeval *tv;
};
#define PX_COMMON_TIMEOUTS 8

/* The last route worked out on this worker (px_request.c): clients send the same Host
 * request after request, so the upstream, Host header, TCP target and signing scope are
 * looked up once, not per request. Only successful routes are kept. */
struct px_route {
    bool valid;
    size_t key_len; /* the authority it was worked out for ("" with --host) */
    char key[256];
    char up_host[256];
    uint16_t up_port;
    char host_header[300];
    char connect_host[256];
    uint16_t connect_port;
    struct px_endpoint ep;
};

struct px_worker {
    unsigned index;
    const struct px_config *cfg; /* borrowed, outlives the worker */
    SSL_CTX *ssl_ctx;            /* borrowed (shared, thread-safe); NULL for plain http */
    struct cred *creds;          /* borrowed from main; the provider takes its own ref */
    struct cred_slot *slot;      /* borrowed from main (--role-arn): answers come from it */
    struct event_base *base;
    struct evdns_base *dns;
    /* Shared with the main thread (px_accept.c): accepted connections handed over, the stop
     * request, and the count of connections the balancer goes by. */
    pthread_mutex_t inbox_mu; /* guards inbox* and stop_requested */
    struct px_inbox_entry inbox[PX_INBOX_CAP];
    size_t inbox_head, inbox_count;
    bool stop_requested;
    bool inbox_ready;          /* inbox_mu and wake_fd exist */
    int wake_fd;               /* eventfd: written after a push or the stop request (owned) */
    atomic_size_t load;        /* connections handed over and not yet closed */
    struct event *wake_ev;     /* reads wake_fd, takes the inbox */
    uint64_t conns_accepted;   /* px_conn_accept calls that counted a connection */
    struct event *deadline_ev; /* drain deadline after stop */
    struct event *poll_ev;     /* while draining: are all connections gone? */
    struct event *defer_ev;    /* runs the deferred tasks (px_worker.c, struct cred_io) */
    struct px_deferred_task *defer_head, *defer_tail; /* queued, FIFO (owned) */
    struct px_deferred_task *defer_free;              /* recycled records (owned) */
    struct cred_provider *provider;
    struct sig_workspace ws; /* one signature at a time: the loop is single-threaded */
    uint8_t *ws_mem;
    /* Scratch of build_signed_head (px_sign_head.c), sized once from the config in px_worker_init
     * so that signing a request allocates nothing; one request is signed at a time. */
    struct sig_header *sign_all;    /* every header sent (owned) */
    struct sig_header *sign_signed; /* the signed subset (owned) */
    size_t sign_cap;                /* entries in each */
    uint8_t *sign_dup_mem;          /* X-Original-* names for --duplicate-headers (owned) */
    size_t sign_dup_cap;
    struct sig_key_cache keys;
    /* The credentials whose secret the key cache holds (a reference, so the pointer cannot be
     * reused): when a refreshed role replaces them, the cache is wiped (px_sign_keys). */
    struct cred *keys_creds;
    struct px_conn *conns;    /* all live client connections (doubly linked) */
    size_t conn_count;        /* entries in conns */
    struct px_upstream *idle; /* pooled idle upstream connections */
    struct px_tls_session tls_sessions[PX_TLS_SESSIONS];
    struct px_hasher hasher; /* aws-chunked hashing thread, started on first use */
    struct px_common_timeout timeouts[PX_COMMON_TIMEOUTS];
    size_t timeout_count;
    struct px_route route;
    unsigned tls_next;
    bool stopping;
    bool start_failed;
    pthread_t thread;
};

/* Most header lines build_signed_head can produce for a request with --max-headers headers:
 * Host, each header plus one X-Original- copy per --duplicate-headers entry it matches, the
 * custom headers, and the three aws-chunked headers. */
size_t px_sign_header_cap(const struct px_config *cfg);

/*
 * The signed request head. It carries the session token (X-Amz-Security-Token) and the
 * request's signature (Authorization), so its bytes live only here: upstream outputs take it by
 * reference (px_signed_head_queue), never by copy, and it is wiped before reuse and release.
 * libevent frees a bufferevent's buffers from the loop after bufferevent_free returns (its
 * finalizer), possibly after the connection is gone: each queued reference therefore holds a
 * count, and the memory is wiped and freed by whichever of the connection and the output
 * chains lets go last. One worker thread touches it: the count needs no atomics.
 */
struct px_signed_head {
    unsigned refs; /* the connection's own, plus one per reference queued in an output */
    size_t len;    /* bytes of the current head; mem past len holds nothing (wiped) */
    size_t cap;
    uint8_t mem[];
};

/* Largest head a request within the configured limits can sign into: the workspace holds the
 * canonical query and the added headers; the rest comes from the client's head (and its
 * --duplicate-headers copies) and --custom-headers. Growth of a connection's head stops here. */
size_t px_signed_head_max_bytes(const struct px_config *cfg);
/* Wipes the head's bytes; it stays allocated for the connection's next request. NULL is ok. */
void px_signed_head_wipe(struct px_signed_head *h);
/* Wipes the head and drops the connection's reference (*h becomes NULL); the memory is freed
 * once no output refers to it. NULL is ok. */
void px_signed_head_release(struct px_signed_head **h);
/* Appends a reference to the head to `out` (no copy), counted until libevent drops it.
 * Returns false (nothing queued) when libevent cannot allocate the chain. */
bool px_signed_head_queue(struct px_signed_head *h, struct evbuffer *out);

/* Creates the worker's loop and inbox (synchronous; logs and returns false on failure). */
bool px_worker_init(struct px_worker *w);
/* Runs the loop until stopped and drained; then releases everything the worker owns. */
void *px_worker_run(void *arg);
/* Releases a worker whose init failed or whose thread never ran. */
void px_worker_release(struct px_worker *w);
/* A connection was counted in / removed from w->conn_count (px_conn.c). */
void px_worker_conn_added(struct px_worker *w);
void px_worker_conn_removed(struct px_worker *w);

/* px_accept.c. Opens the listening socket; -1 (logged) on failure. */
int px_listen_open(const struct px_config *cfg);
/* Worker side of the inbox: created by px_worker_init, released by its cleanup. */
bool px_inbox_init(struct px_worker *w);
void px_inbox_cleanup(struct px_worker *w);
/* Worker thread: moves up to `cap` handed-over connections to `out`; *stop tells whether the
 * main thread asked for a stop. */
size_t px_inbox_take(struct px_worker *w, struct px_inbox_entry *out, size_t cap, bool *stop);
/*
 * The timeval to arm a timer of `ms` with: for the configured timeouts, libevent's common
 * timeout for that duration (an O(1) queue insert instead of a heap insert: every request
 * re-arms its connection's timer at each phase); otherwise `scratch`, filled in.
 */
const struct timeval *px_worker_timeout(const struct px_worker *w, uint32_t ms,
                                        struct timeval *scratch);
/* From any thread: wake the worker (its inbox and its hasher's done list are looked at). */
void px_worker_wake(struct px_worker *w);
/* From the main thread: begin a graceful stop. */
void px_worker_stop(struct px_worker *w);
/* Main thread: accepts on listen_fd and hands each connection to the least loaded worker
 * below --max-connections, until one of `sigs` arrives (blocked in every thread); returns
 * its number, or -1 on error. */
int px_accept_run(int listen_fd, struct px_worker *workers, unsigned n, const sigset_t *sigs);

enum px_state {
    PX_STATE_READ_HEAD = 0,
    PX_STATE_READ_BODY, /* buffering + hashing the body before signing */
    PX_STATE_WAIT_CREDS,
    PX_STATE_CONNECT_UP,
    PX_STATE_SEND_REQ,
    PX_STATE_READ_RESP_HEAD,
    PX_STATE_STREAM_BODY,
    PX_STATE_DRAIN, /* flushing a final response, then close */
    PX_STATE_CLOSED,
};

struct px_hdr {
    uint32_t name_off, name_len, value_off, value_len; /* into the head buffer */
};

enum px_body_mode {
    PX_BODY_NONE = 0,
    PX_BODY_BUFFER, /* hash while receiving, keep in memory then spool, then send */
    PX_BODY_STREAM, /* known length, unsigned: straight through */
    /* S3 body above --max-buffer-bytes with a known length: re-framed as aws-chunked with
     * per-chunk signatures (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), nothing held or spooled */
    PX_BODY_AWS_CHUNKED,
};

/* An upstream connection: owned by a px_conn while in use, by the worker's pool when idle. */
struct px_upstream {
    struct px_worker *w;
    struct bufferevent *bev;
    SSL *ssl;             /* owned by bev (BEV_OPT_CLOSE_ON_FREE frees it) */
    struct px_io *io;     /* write-first state of a plain-socket bev (px_io.h) or NULL */
    char key[600];        /* "tls|host|port|connect-host|connect-port" */
    struct px_conn *conn; /* owner, NULL when idle */
    struct px_upstream *next_idle;
    bool connected;
    bool reused;
    /* The server's close_notify alert arrived (TLS only). With SSL_OP_IGNORE_UNEXPECTED_EOF a
     * clean and a dirty close both reach us as BEV_EVENT_EOF; this tells them apart. */
    bool close_notify;
    uint64_t requests;
};

struct px_conn {
    struct px_worker *w;
    struct px_conn *prev, *next; /* worker's list */
    enum px_state state;
    bool closing;       /* px_conn_close ran; freed from free_ev */
    bool creds_pending; /* a provider callback still references us */
    bool counted;       /* linked into w->conns and counted in w->conn_count */
    struct bufferevent *client;
    /* write-first state of client (px_io.h), or NULL */
    struct px_io *client_io;
    struct event *timer;   /* the current phase's timeout */
    struct event *free_ev; /* deferred free */
    char peer[64];

    /* request parsing */
    llhttp_t req_parser;
    struct px_frame frame; /* strict framing check of the bytes fed to req_parser */
    uint8_t *head_mem;
    struct sig_buf head; /* request line pieces and headers, bounded by max_header_bytes */
    uint32_t url_off, url_len;
    struct px_hdr *hdrs;
    size_t hdr_count;
    bool in_value;
    bool value_secret; /* the value being parsed is a client credential: wiped in the input */
    bool head_secrets; /* head holds a client credential (wiped after signing) */
    bool head_started;
    /* obs-fold detection: llhttp reports a folded line as a second value span */
    const char *seg_start, *seg_end;
    /* Body bytes of that segment which go on unchanged (stream and aws-chunked modes): moved
     * out of the client's input once the segment is parsed (whole buffer chains change hands,
     * px_request.c) instead of copied in on_body. Past PX_BODY_SPANS pieces, copied. */
    struct px_body_span {
        uint32_t off, len;
        struct evbuffer *dst;
    } body_spans[PX_BODY_SPANS];
    unsigned body_span_count;
    bool body_span_copy;   /* too many pieces in this segment: the rest is copied */
    bool value_cont_ok;    /* the previous segment ended inside a header value */
    bool value_at_seg_end; /* the last value span ran to the end of its segment */
    bool lingering;        /* DRAIN: write side shut, discarding input until EOF (no RST) */
    size_t head_bytes_fed;
    enum px_err parse_err; /* set by a callback that refuses input */
    char parse_reason[400];
    bool req_complete; /* client's message fully received */
    bool keep_alive;   /* client wants (and may have) another request */
    uint8_t http_minor;
    const char *method_name;
    bool is_head;

    /* the request being proxied */
    char up_host[256]; /* logical upstream host (SNI, certificate, signature) */
    uint16_t up_port;
    char host_header[300]; /* Host sent and signed */
    char connect_host[256];
    uint16_t connect_port;
    struct px_endpoint ep;                             /* service and region used for signing */
    uint32_t path_off, path_len, query_off, query_len; /* into head */
    enum px_body_mode body_mode;
    bool body_chunked; /* client used Transfer-Encoding: chunked */
    bool aws_chunked_passthrough;
    uint64_t content_length;
    uint64_t body_len; /* bytes received so far */
    struct sig_sha256 body_hash;
    struct evbuffer *body; /* in-memory part (buffer mode) or pending bytes (stream mode) */
    int spool_fd;          /* -1 unless spooled */
    uint64_t spool_len;
    uint64_t spool_sent;                  /* bytes of the spool file queued upstream */
    struct px_signed_head *up_head;       /* owned reference; kept for one retry, wiped */
    struct sig_chunk_signer chunk_signer; /* PX_BODY_AWS_CHUNKED: holds kSigning, wiped */
    uint64_t chunked_sent;                /* decoded bytes framed and queued upstream */
    bool chunked_final_sent;
    /* aws-chunked chunks out for hashing (px_hash.c), oldest first */
    struct px_hash_job *hq_head, *hq_tail;
    unsigned hq_count;
    uint64_t hq_bytes;            /* decoded bytes in those jobs */
    struct px_conn *hq_pump_next; /* px_hasher_collect's list of connections to pump */
    bool hq_pump_listed;
    bool req_head_sent;
    bool req_body_sent;
    bool retried;
    bool sent_100;
    struct cred *creds;

    /* upstream */
    struct px_upstream *up;
    llhttp_t resp_parser;
    uint8_t *resp_mem;
    struct sig_buf resp_head;
    struct px_hdr *resp_hdrs;
    size_t resp_hdr_count;
    bool resp_in_value;
    bool resp_started; /* any response byte seen */
    bool resp_head_sent;
    bool resp_chunked_out; /* re-chunking to the client */
    bool resp_close_delimited;
    bool resp_complete;
    bool resp_up_eof;     /* the upstream closed; bytes may still wait in its input buffer */
    size_t stall_out_len; /* client output length when the stream timer last fired */
    size_t stall_in_len;  /* client input length when the body timer last fired */
    size_t read_lowmark;  /* the client's current read low watermark */
    bool read_paused;     /* client reading stopped for upstream backpressure */
    int status;
    uint32_t status_off, status_len;

    /* accounting for the log line */
    uint64_t start_ms;
    uint64_t bytes_out;
    char fail_reason[200];
};

void px_conn_accept(struct px_worker *w, evutil_socket_t fd, const struct sockaddr *sa, int len);
/* Frees the connection (deferred if a callback may still be on the stack). */
void px_conn_close(struct px_conn *conn);
/* The single failure exit: maps err to a status, answers if nothing was sent yet, logs one line
 * naming the phase, and closes. `fmt` is the one-line reason (never contains secrets). */
void px_conn_fail(struct px_conn *conn, enum px_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void px_conn_set_state(struct px_conn *conn, enum px_state next);
const char *px_state_name(enum px_state s);
uint64_t px_now_ms(void);
void px_conn_arm_timer(struct px_conn *conn, uint32_t ms);

/* Starts the asynchronous credential fetch (WAIT_CREDS); signs and connects on the answer. */
void px_conn_fetch_creds(struct px_conn *conn);

/* Upstream side (px_upstream.c). */
void px_upstream_start(struct px_conn *conn);
/* The response is complete or the request failed: release or free the upstream. */
void px_upstream_release(struct px_conn *conn, bool reusable);
void px_upstream_pool_free(struct px_worker *w);
/* SSL_CTX new-session callback: keeps the session for its upstream's worker. */
int px_upstream_new_session_cb(SSL *ssl, SSL_SESSION *sess);
void px_upstream_tls_sessions_free(struct px_worker *w);
/* Client output drained below the low watermark: resume upstream reading if paused. */
void px_upstream_resume_read(struct px_conn *conn);
/* Moves request body bytes towards the upstream when its output has room. */
void px_upstream_pump_body(struct px_conn *conn);

/* Client side hooks used by the upstream code (px_conn.c). */
void px_conn_response_done(struct px_conn *conn);
void px_conn_client_write(struct px_conn *conn, const void *p, size_t n);
/* The upstream has room again for a streamed request body: read the client again. */
void px_conn_resume_client(struct px_conn *conn);
/* The high watermark of conn's request body: PX_AWS_CHUNKED_WINDOW for aws-chunked uploads,
 * PX_HIGH_WATERMARK otherwise; reading resumes at half of it. */
size_t px_conn_body_window(const struct px_conn *conn);

#endif
