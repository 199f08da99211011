/* cred.c: refcounted immutable credentials, the environment source, the slot and the
 * providers (static, slot). */
#include "cred.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>

struct cred {
    atomic_uint refs;
    struct sig_buf access_key_id; /* storage follows the struct, in one allocation */
    struct sig_buf secret;
    struct sig_buf token;
    size_t alloc_len;
};

const char *cred_err_str(enum cred_err err)
{
    switch (err) {
    case CRED_OK:
        return "ok";
    case CRED_ERR_NOT_FOUND:
        return "no credentials found";
    case CRED_ERR_INVALID:
        return "credentials are incomplete (access key id or secret missing)";
    case CRED_ERR_TOO_LONG:
        return "a credential value is too long";
    case CRED_ERR_UNSUPPORTED:
        return "the profile uses a credential source sigv4d does not support yet";
    case CRED_ERR_NO_PROFILE:
        return "the profile is in neither the config nor the credentials file";
    case CRED_ERR_FILE_UNREADABLE:
        return "a shared config or credentials file cannot be read";
    case CRED_ERR_FILE_LIMIT:
        return "a shared config or credentials file is over a limit";
    case CRED_ERR_FILE_SYNTAX:
        return "a shared config or credentials file is malformed";
    case CRED_ERR_FETCH:
        return "the credential service refused the request";
    case CRED_ERR_BAD_ANSWER:
        return "the credential service's answer is malformed";
    case CRED_ERR_UNREACHABLE:
        return "the credential service cannot be reached";
    case CRED_ERR_PENDING:
        return "credentials are being fetched";
    case CRED_ERR_EXPIRED:
        return "the credentials expired and could not be refreshed";
    case CRED_ERR_PROCESS:
        return "the credential_process program failed";
    }
    return "unknown credential error";
}

enum cred_err cred_fail(char *msg, size_t msg_len, enum cred_err code, const char *fmt, ...)
{
    if (msg != NULL && msg_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msg_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void *cred_xmalloc(size_t n)
{
    void *p = calloc(1, n);
    if (p == NULL)
        abort(); /* configured limits bound every allocation; OOM is fatal */
    return p;
}

enum cred_err cred_new(struct sig_slice access_key_id, struct sig_slice secret,
                       struct sig_slice session_token, struct cred **out)
{
    *out = NULL;
    if (access_key_id.len == 0 || secret.len == 0)
        return CRED_ERR_INVALID;
    if (access_key_id.len > CRED_MAX_VALUE || secret.len > CRED_MAX_VALUE ||
        session_token.len > CRED_MAX_VALUE)
        return CRED_ERR_TOO_LONG;
    size_t total = sizeof(struct cred) + access_key_id.len + secret.len + session_token.len;
    struct cred *c = cred_xmalloc(total);
    uint8_t *mem = (uint8_t *)(c + 1);
    atomic_init(&c->refs, 1);
    c->alloc_len = total;
    sig_buf_init(&c->access_key_id, mem, access_key_id.len);
    mem += access_key_id.len;
    sig_buf_init(&c->secret, mem, secret.len);
    mem += secret.len;
    sig_buf_init(&c->token, mem, session_token.len);
    /* The capacities are exact, so these appends cannot fail. */
    enum sig_err e = sig_buf_append_slice(&c->access_key_id, access_key_id);
    if (e == SIG_OK)
        e = sig_buf_append_slice(&c->secret, secret);
    if (e == SIG_OK)
        e = sig_buf_append_slice(&c->token, session_token);
    if (e != SIG_OK) {
        cred_unref(c);
        return CRED_ERR_TOO_LONG;
    }
    *out = c;
    return CRED_OK;
}

struct cred *cred_ref(struct cred *c)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void cred_unref(struct cred *c)
{
    if (c == NULL)
        return;
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    OPENSSL_cleanse(c, c->alloc_len);
    free(c);
}

struct sig_credentials cred_view(const struct cred *c)
{
    return (struct sig_credentials){
        .access_key_id = sig_buf_slice(&c->access_key_id),
        .secret_access_key = sig_buf_slice(&c->secret),
        .session_token = sig_buf_slice(&c->token),
    };
}

void cred_redacted_id(const struct cred *c, char out[8])
{
    struct sig_slice id = sig_buf_slice(&c->access_key_id);
    size_t n = id.len < 4 ? id.len : 4;
    out[0] = out[1] = out[2] = '.';
    for (size_t i = 0; i < n; i++)
        out[3 + i] = (char)id.ptr[id.len - n + i];
    out[3 + n] = '\0';
}

enum cred_err cred_from_env(struct cred **out)
{
    /* getenv returns the process environment itself: nothing to wipe here, and the values
     * are copied straight into the credential allocation (wiped on release). */
    struct sig_slice id = sig_slice_from_cstr(getenv("AWS_ACCESS_KEY_ID"));
    struct sig_slice secret = sig_slice_from_cstr(getenv("AWS_SECRET_ACCESS_KEY"));
    struct sig_slice token = sig_slice_from_cstr(getenv("AWS_SESSION_TOKEN"));
    *out = NULL;
    if (id.len == 0 && secret.len == 0)
        return CRED_ERR_NOT_FOUND;
    return cred_new(id, secret, token, out);
}

/* ---- static provider ---- */

struct cred_pending {
    struct cred_provider *p;
    cred_get_fn cb;
    void *arg;
    struct cred_pending *next_free;
};

struct cred_provider {
    struct cred_io io;
    struct cred *creds;           /* owned reference, may be NULL */
    enum cred_err err;            /* answer when creds is NULL */
    struct cred_slot *slot;       /* borrowed; when set, answers come from it */
    char reason[CRED_MAX_REASON]; /* why the last failed answer failed */
    /* Answered fetches' records, reused so that a fetch (one per request) allocates nothing
     * once as many are in flight as ever were; owned, freed with the provider. */
    struct cred_pending *free_pending;
};

struct cred_provider *cred_provider_new_static(const struct cred_io *io, struct cred *creds,
                                               enum cred_err err)
{
    struct cred_provider *p = cred_xmalloc(sizeof(*p));
    p->io = *io;
    p->creds = cred_ref(creds);
    p->err = creds != NULL ? CRED_OK : (err != CRED_OK ? err : CRED_ERR_NOT_FOUND);
    return p;
}

struct cred_provider *cred_provider_new_slot(const struct cred_io *io, struct cred_slot *slot)
{
    struct cred_provider *p = cred_provider_new_static(io, NULL, CRED_ERR_PENDING);
    p->slot = slot;
    return p;
}

const char *cred_provider_reason(const struct cred_provider *p)
{
    return p->reason[0] != '\0' ? p->reason : cred_err_str(p->err);
}

static void cred_pending_run(void *arg)
{
    struct cred_pending *rec = arg;
    struct cred_pending pending = *rec;
    struct cred_provider *p = pending.p;
    rec->next_free = p->free_pending;
    p->free_pending = rec;
    if (p->slot != NULL) {
        enum cred_err err = CRED_OK;
        struct cred *c =
            cred_slot_get(p->slot, p->io.now(p->io.ctx), &err, p->reason, sizeof(p->reason));
        if (c == NULL)
            p->err = err;
        pending.cb(c, c != NULL ? CRED_OK : err, pending.arg);
        return;
    }
    if (p->creds != NULL)
        pending.cb(cred_ref(p->creds), CRED_OK, pending.arg);
    else
        pending.cb(NULL, p->err, pending.arg);
}

void cred_provider_get(struct cred_provider *p, cred_get_fn cb, void *arg)
{
    struct cred_pending *pending = p->free_pending;
    if (pending != NULL)
        p->free_pending = pending->next_free;
    else
        pending = cred_xmalloc(sizeof(*pending));
    pending->p = p;
    pending->cb = cb;
    pending->arg = arg;
    /* Always deferred, even though the answer is known: callers may then rely on the callback
     * never running while they are still inside cred_provider_get (STYLE.md section 1). */
    p->io.defer(p->io.ctx, cred_pending_run, pending);
}

void cred_provider_free(struct cred_provider *p)
{
    if (p == NULL)
        return;
    cred_unref(p->creds);
    p->creds = NULL;
    while (p->free_pending != NULL) {
        struct cred_pending *next = p->free_pending->next_free;
        free(p->free_pending);
        p->free_pending = next;
    }
    free(p);
}

/* ---- slot ---- */

struct cred_slot {
    pthread_mutex_t mu;
    struct cred *creds; /* owned reference, may be NULL */
    int64_t expires;    /* 0: none */
    bool answered;      /* a fetch has published or failed */
    enum cred_err err;  /* the last failure, CRED_OK if none since the last publish */
    char reason[CRED_MAX_REASON];
};

struct cred_slot *cred_slot_new(void)
{
    struct cred_slot *s = cred_xmalloc(sizeof(*s));
    *s = (struct cred_slot){.err = CRED_OK};
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        abort(); /* only fails for lack of memory, like cred_xmalloc */
    return s;
}

void cred_slot_free(struct cred_slot *s)
{
    if (s == NULL)
        return;
    cred_unref(s->creds);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void cred_slot_publish(struct cred_slot *s, struct cred *creds, int64_t expires)
{
    struct cred *extra = cred_ref(creds);
    pthread_mutex_lock(&s->mu);
    struct cred *old = s->creds;
    s->creds = extra;
    s->expires = expires;
    s->answered = true;
    s->err = CRED_OK;
    s->reason[0] = '\0';
    pthread_mutex_unlock(&s->mu);
    cred_unref(old); /* outside the lock: the last reference wipes */
}

void cred_slot_fail(struct cred_slot *s, enum cred_err err, const char *reason)
{
    pthread_mutex_lock(&s->mu);
    s->answered = true;
    s->err = err != CRED_OK ? err : CRED_ERR_FETCH;
    snprintf(s->reason, sizeof(s->reason), "%s", reason != NULL ? reason : "");
    pthread_mutex_unlock(&s->mu);
}

struct cred *cred_slot_get(struct cred_slot *s, int64_t now, enum cred_err *err, char *reason,
                           size_t cap)
{
    struct cred *c = NULL;
    enum cred_err e = CRED_OK;
    pthread_mutex_lock(&s->mu);
    if (s->creds != NULL && (s->expires == 0 || now < s->expires))
        c = cred_ref(s->creds);
    else if (s->creds != NULL)
        e = CRED_ERR_EXPIRED;
    else
        e = s->answered ? s->err : CRED_ERR_PENDING;
    if (c == NULL && reason != NULL && cap > 0) {
        if (s->reason[0] != '\0' && e != CRED_ERR_EXPIRED)
            snprintf(reason, cap, "%s: %s", cred_err_str(e), s->reason);
        else if (s->reason[0] != '\0')
            snprintf(reason, cap, "%s (last refresh: %s)", cred_err_str(e), s->reason);
        else
            snprintf(reason, cap, "%s", cred_err_str(e));
    }
    pthread_mutex_unlock(&s->mu);
    *err = e;
    return c;
}
