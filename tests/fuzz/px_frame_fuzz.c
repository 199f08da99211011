/*
 * px_frame_fuzz: libFuzzer target for the strict framing check (proxy/px_frame.c) and the
 * llhttp it guards, driven the way proxy/px_conn.c's client_feed drives them.
 *
 * Input layout (so a corpus file is mostly a readable HTTP stream):
 *   byte 0       low 3 bits: the number of cut points k (0..7)
 *   2k bytes     the cut points, 16-bit little endian, each taken modulo the stream's length
 *   the rest     the client's byte stream (one request or several, pipelined)
 *
 * The stream is fed three ways: in one piece, in the segments the cut points give, and (when
 * short) one byte at a time. Each segment sits in a heap block of exactly its size, so ASan
 * reports any read past the length px_frame_scan or llhttp was given. As client_feed does,
 * bytes px_frame passes go to llhttp, SKIP bytes (chunk extensions) are dropped, the head's
 * end and the message's end must be agreed by both, and a new message starts after each.
 *
 * abort() unless, for every call: *used <= n; MORE and SKIP make progress; MORE stops short of
 * n only when chunk extensions follow (the next call gives SKIP or BAD); SKIP bytes hold no CR
 * or LF; BAD comes with a non-empty reason and an offset inside the segment, and no other
 * result has a reason; the calls end (a bounded number). For every way of cutting: the same
 * messages are accepted, with the same ends and bodies, the same refusal or none, and the same
 * px_frame verdict when px_frame refuses in both. For every message both accept, an
 * independent strict reading of the bytes (RFC 9112: head lines, Content-Length, chunked with
 * the 7.1.1 extension grammar and trailers) must find the same head end, message end and body:
 * llhttp must never read a framing other than the one px_frame checked. Conversely, px_frame
 * must not refuse a byte of a chunked body that reading finds valid (but for its extension
 * length limit).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llhttp.h"
#include "px_frame.h"

#define MAX_CUTS 7
#define MAX_MSGS 64
#define MAX_BODY 8192
#define BYTEWISE_MAX 1024 /* longer streams are not also fed one byte at a time */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

enum ending {
    END_INPUT = 0, /* the bytes ran out (between messages or inside one) */
    END_PX_BAD,    /* px_frame refused a byte */
    END_REFUSED,   /* llhttp refused, or the two disagreed about a boundary */
};

struct outcome {
    size_t msgs;
    size_t head_end[MAX_MSGS]; /* offsets in the stream, one past the last byte */
    size_t msg_end[MAX_MSGS];
    size_t body_len[MAX_MSGS];
    bool chunked[MAX_MSGS]; /* the framing llhttp read from the head */
    uint64_t content_length[MAX_MSGS];
    uint8_t body[MAX_BODY]; /* all messages' bodies, one after another */
    size_t body_total;
    enum ending ending;
    size_t bad_at; /* END_PX_BAD: offset in the stream */
    const char *why;
    /* Parser state shared with the llhttp callbacks. */
    struct px_frame *frame;
    bool complete;
    bool refused_in_callback;
};

static int on_headers_complete(llhttp_t *p)
{
    struct outcome *o = p->data;
    /* As px_conn: CONNECT and upgrades are refused, so their framing never matters. */
    if (p->method == HTTP_CONNECT || p->upgrade) {
        o->refused_in_callback = true;
        return -1;
    }
    /* llhttp ends the head only on the last byte px_frame gave it with PX_FRAME_HEAD_END; a
     * head that ends earlier for llhttp would switch px_frame to the body mid-head, which
     * client_feed could not notice. */
    CHECK(px_frame_wants_body(o->frame));
    CHECK(o->msgs < MAX_MSGS);
    o->chunked[o->msgs] = (p->flags & F_CHUNKED) != 0;
    o->content_length[o->msgs] = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    px_frame_body(o->frame, o->chunked[o->msgs], o->content_length[o->msgs]);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct outcome *o = p->data;
    CHECK(len <= MAX_BODY - o->body_total); /* a body never exceeds its stream */
    memcpy(o->body + o->body_total, at, len);
    o->body_total += len;
    o->body_len[o->msgs] += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct outcome *o = p->data;
    o->complete = true;
    return HPE_PAUSED; /* as px_conn: the next request waits for this one's response */
}

static const llhttp_settings_t settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Feeds s[0..len) in segments ending at the sorted cut points (and len). */
static void run(const uint8_t *s, size_t len, const size_t *cuts, size_t ncuts, struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    struct px_frame frame;
    px_frame_reset(&frame);
    o->frame = &frame;
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = o;

    size_t pos = 0, next_cut = 0, msg_start = 0;
    bool want_skip_or_bad = false;
    /* Each call checks at least one byte, or ends a message (at most one per byte). */
    for (size_t calls = 0; pos < len; calls++) {
        CHECK(calls <= 2 * len + 2);
        while (next_cut < ncuts && cuts[next_cut] <= pos)
            next_cut++;
        size_t seg_end = next_cut < ncuts ? cuts[next_cut] : len;
        size_t n = seg_end - pos;
        uint8_t *seg = malloc(n);
        CHECK(seg != NULL);
        memcpy(seg, s + pos, n);

        size_t used = (size_t)-1;
        const char *why = "unset";
        enum px_frame_result r = px_frame_scan(&frame, seg, n, &used, &why);
        if (r == PX_FRAME_BAD) {
            CHECK(why != NULL && why[0] != '\0');
            CHECK(used < n);
            o->ending = END_PX_BAD;
            o->bad_at = pos + used;
            o->why = why;
            free(seg);
            return;
        }
        CHECK(why == NULL);
        CHECK(used <= n);
        CHECK(r == PX_FRAME_MORE || r == PX_FRAME_SKIP || r == PX_FRAME_HEAD_END ||
              r == PX_FRAME_MSG_END);
        CHECK(used > 0);
        /* "*used < n only when chunk extensions follow" (px_frame.h). */
        CHECK(!want_skip_or_bad || r == PX_FRAME_SKIP);
        want_skip_or_bad = r == PX_FRAME_MORE && used < n;

        if (r == PX_FRAME_SKIP) {
            CHECK(memchr(seg, '\r', used) == NULL && memchr(seg, '\n', used) == NULL);
            pos += used;
            free(seg);
            continue;
        }
        enum llhttp_errno e = llhttp_execute(&parser, (const char *)seg, used);
        bool boundary_ok = true;
        if (e == HPE_PAUSED) {
            size_t parsed = (size_t)(llhttp_get_error_pos(&parser) - (const char *)seg);
            boundary_ok = o->complete && parsed == used && px_frame_done(&frame);
        } else if (e == HPE_OK) {
            /* llhttp must have finished the head (or the message) where px_frame did. */
            boundary_ok = !px_frame_wants_body(&frame) && r != PX_FRAME_MSG_END;
        }
        free(seg);
        if (e != HPE_OK && e != HPE_PAUSED) {
            o->ending = END_REFUSED;
            return;
        }
        if (!boundary_ok) {
            o->ending = END_REFUSED;
            return;
        }
        pos += used;
        if (r == PX_FRAME_HEAD_END) {
            CHECK(o->msgs < MAX_MSGS);
            o->head_end[o->msgs] = pos;
        }
        if (o->complete) {
            /* Both agree the message ends here. */
            CHECK(o->msgs < MAX_MSGS);
            CHECK(o->head_end[o->msgs] > msg_start);
            o->msg_end[o->msgs] = pos;
            o->msgs++;
            if (o->msgs == MAX_MSGS)
                return;
            msg_start = pos;
            o->complete = false;
            px_frame_reset(&frame);
            llhttp_resume(&parser);
        }
    }
    CHECK(!want_skip_or_bad);
    o->ending = END_INPUT;
}

/* ---- an independent strict reading (RFC 9112), not a state machine ---- */

static bool ref_ws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static bool ref_tchar(uint8_t c)
{
    return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

static bool ref_hex(uint8_t c, uint64_t *v)
{
    if (c >= '0' && c <= '9')
        *v = c - '0';
    else if (c >= 'a' && c <= 'f')
        *v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        *v = c - 'A' + 10;
    else
        return false;
    return true;
}

/* Offset of the next "\r\n" at or after i, or len. */
static size_t ref_crlf(const uint8_t *s, size_t len, size_t i)
{
    for (; i + 1 < len; i++)
        if (s[i] == '\r' && s[i + 1] == '\n')
            return i;
    return len;
}

/* A field line (or the request line): no CTL but HTAB, no DEL, and so no CR or LF. */
static bool ref_line_ok(const uint8_t *s, size_t from, size_t to, bool field)
{
    if (to == from)
        return false;
    if (field && (ref_ws(s[from]) || s[from] == ':'))
        return false;
    for (size_t i = from; i < to; i++)
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return false;
    return true;
}

/* chunk-ext (RFC 9112 7.1.1) over the whole of s[i..len), recursive descent. */
static bool ref_chunk_ext_ok(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && ref_ws(s[i]))
            i++;
        if (i >= len || s[i] != ';')
            return false;
        for (i++; i < len && ref_ws(s[i]); i++)
            ;
        size_t start = i;
        while (i < len && ref_tchar(s[i]))
            i++;
        if (i == start)
            return false;
        size_t eq = i;
        while (eq < len && ref_ws(s[eq]))
            eq++;
        if (eq >= len || s[eq] != '=')
            continue;
        for (i = eq + 1; i < len && ref_ws(s[i]); i++)
            ;
        start = i;
        while (i < len && ref_tchar(s[i]))
            i++;
        if (i > start)
            continue;
        if (i >= len || s[i] != '"')
            return false;
        for (i++;; i++) {
            if (i >= len)
                return false;
            uint8_t c = s[i];
            if (c == '"')
                break;
            if (c == '\\')
                c = ++i < len ? s[i] : 0;
            if (!(c == '\t' || (c >= 0x20 && c != 0x7f)))
                return false;
        }
        i++;
    }
    return true;
}

struct ref_msg {
    size_t head_end, msg_end;
    uint8_t body[MAX_BODY];
    size_t body_len;
    /* The framing fields as read here (RFC 9112 6.1, 6.2). */
    int te_fields, cl_fields;
    bool te_is_chunked; /* the last Transfer-Encoding field is exactly "chunked" */
    bool cl_valid;      /* every Content-Length field is 1*DIGIT, all the same */
    uint64_t cl;
};

static bool ref_name_is(const uint8_t *s, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i] >= 'A' && s[i] <= 'Z' ? (uint8_t)(s[i] - 'A' + 'a') : s[i];
        if (c != (uint8_t)name[i])
            return false;
    }
    return true;
}

/* Notes a field line s[from..to) if it is Transfer-Encoding or Content-Length. */
static void ref_framing_field(const uint8_t *s, size_t from, size_t to, struct ref_msg *m)
{
    const uint8_t *colon = memchr(s + from, ':', to - from);
    if (colon == NULL)
        return;
    size_t name_end = (size_t)(colon - s), v = name_end + 1, v_end = to;
    while (v < v_end && ref_ws(s[v]))
        v++;
    while (v_end > v && ref_ws(s[v_end - 1]))
        v_end--;
    if (ref_name_is(s + from, name_end - from, "transfer-encoding")) {
        m->te_fields++;
        m->te_is_chunked = ref_name_is(s + v, v_end - v, "chunked");
    } else if (ref_name_is(s + from, name_end - from, "content-length")) {
        uint64_t cl = 0;
        bool ok = v_end > v;
        for (size_t i = v; ok && i < v_end; i++) {
            ok = s[i] >= '0' && s[i] <= '9' && cl <= (UINT64_MAX - 9) / 10;
            cl = cl * 10 + (uint64_t)(s[i] - '0');
        }
        m->cl_valid =
            (m->cl_fields == 0 || m->cl_valid) && ok && (m->cl_fields == 0 || cl == m->cl);
        m->cl = cl;
        m->cl_fields++;
    }
}

/* Field lines from *i up to and including the empty line that ends them: *i is then just
 * after it. Notes the framing fields in m (unless NULL). False if a line is malformed or the
 * bytes end first. */
static bool ref_field_lines(const uint8_t *s, size_t len, size_t *i, struct ref_msg *m)
{
    for (;;) {
        size_t eol = ref_crlf(s, len, *i);
        if (eol == len)
            return false;
        if (eol == *i) {
            *i = eol + 2;
            return true;
        }
        if (!ref_line_ok(s, *i, eol, true))
            return false;
        if (m != NULL)
            ref_framing_field(s, *i, eol, m);
        *i = eol + 2;
    }
}

/* Reads one message at s[0..len) with the framing llhttp reported; false if it is not one. */
static bool ref_read(const uint8_t *s, size_t len, bool chunked, uint64_t content_length,
                     struct ref_msg *m)
{
    size_t i = 0;
    m->te_fields = m->cl_fields = 0;
    m->te_is_chunked = m->cl_valid = false;
    m->cl = 0;
    while (i + 1 < len && s[i] == '\r' && s[i + 1] == '\n')
        i += 2; /* empty lines before the request line (RFC 9112 2.2) */
    size_t eol = ref_crlf(s, len, i);
    if (eol == len || !ref_line_ok(s, i, eol, false))
        return false;
    i = eol + 2;
    if (!ref_field_lines(s, len, &i, m))
        return false;
    m->head_end = i;
    m->body_len = 0;
    if (!chunked) {
        if (content_length > len - i)
            return false;
        memcpy(m->body, s + i, (size_t)content_length);
        m->body_len = (size_t)content_length;
        m->msg_end = i + (size_t)content_length;
        return true;
    }
    for (;;) {
        uint64_t size = 0, digit;
        size_t start = i;
        while (i < len && ref_hex(s[i], &digit)) {
            if (size > (UINT64_MAX >> 4))
                return false;
            size = size << 4 | digit;
            i++;
        }
        eol = ref_crlf(s, len, i);
        if (i == start || eol == len || !ref_chunk_ext_ok(s + i, eol - i))
            return false;
        i = eol + 2;
        if (size == 0)
            break;
        if (size > len - i || len - i - (size_t)size < 2)
            return false;
        memcpy(m->body + m->body_len, s + i, (size_t)size);
        m->body_len += (size_t)size;
        i += (size_t)size;
        if (s[i] != '\r' || s[i + 1] != '\n')
            return false;
        i += 2;
    }
    /* The trailer section (RFC 9112 7.1.2); its fields do not frame anything. */
    if (!ref_field_lines(s, len, &i, NULL))
        return false;
    m->msg_end = i;
    return true;
}

/* Every message both accepted is the one the independent reading finds. */
static void check_against_reference(const uint8_t *s, size_t len, const struct outcome *o)
{
    static struct ref_msg m;
    size_t start = 0, body_off = 0;
    for (size_t k = 0; k < o->msgs; k++) {
        /* With the framing llhttp read from the head (what px_conn acts on). */
        CHECK(ref_read(s + start, len - start, o->chunked[k], o->content_length[k], &m));
        CHECK(start + m.head_end == o->head_end[k]);
        /* llhttp read the framing fields as RFC 9112 6.3 says: chunked only with a
         * Transfer-Encoding field, a length only with a Content-Length field, and the value
         * this reading finds when there is no Transfer-Encoding and it is valid. */
        CHECK(!o->chunked[k] || m.te_fields > 0);
        CHECK(!(m.te_fields == 1 && m.te_is_chunked) || o->chunked[k]);
        CHECK(o->content_length[k] == 0 || m.cl_fields > 0 || o->chunked[k]);
        if (m.te_fields == 0 && m.cl_fields > 0 && m.cl_valid)
            CHECK(!o->chunked[k] && o->content_length[k] == m.cl);
        if (m.te_fields == 0 && m.cl_fields == 0)
            CHECK(!o->chunked[k] && o->content_length[k] == 0);
        CHECK(start + m.msg_end == o->msg_end[k]);
        CHECK(m.body_len == o->body_len[k]);
        CHECK(memcmp(m.body, o->body + body_off, m.body_len) == 0);
        body_off += m.body_len;
        start = o->msg_end[k];
    }
    /* The converse inside a chunked body, whose grammar the reading has in full: px_frame
     * refuses no byte of a body the reading finds valid, except for an over-long extension
     * (our limit, not the grammar's). */
    size_t k = o->msgs;
    if (o->ending == END_PX_BAD && k < MAX_MSGS && o->head_end[k] != 0 && o->chunked[k] &&
        ref_read(s + start, len - start, true, 0, &m))
        CHECK(start + m.msg_end <= o->bad_at || strcmp(o->why, "chunk extensions too long") == 0);
}

static void check_same(const struct outcome *a, const struct outcome *b)
{
    CHECK(a->msgs == b->msgs);
    size_t done_bytes = 0; /* of bodies of accepted messages: a refused one's part may vary */
    for (size_t k = 0; k < a->msgs; k++) {
        done_bytes += a->body_len[k];
        CHECK(a->head_end[k] == b->head_end[k]);
        CHECK(a->msg_end[k] == b->msg_end[k]);
        CHECK(a->body_len[k] == b->body_len[k]);
        CHECK(a->chunked[k] == b->chunked[k]);
        CHECK(a->content_length[k] == b->content_length[k]);
    }
    CHECK(memcmp(a->body, b->body, done_bytes) == 0);
    /* Refused or not must not depend on the cuts; which check refused first may (llhttp can
     * see a bad byte in an early segment before px_frame reaches a later one). */
    CHECK((a->ending == END_INPUT) == (b->ending == END_INPUT));
    if (a->ending == END_PX_BAD && b->ending == END_PX_BAD) {
        CHECK(a->bad_at == b->bad_at);
        CHECK(a->why == b->why);
    }
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return (a > b) - (a < b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct outcome whole, cut, bytewise;
    static size_t every_byte[BYTEWISE_MAX];
    if (size < 1)
        return 0;
    size_t ncuts = data[0] & 7u;
    if (size < 1 + 2 * ncuts)
        return 0;
    const uint8_t *s = data + 1 + 2 * ncuts;
    size_t len = size - 1 - 2 * ncuts;
    if (len == 0 || len > MAX_BODY)
        return 0;
    size_t cuts[MAX_CUTS];
    for (size_t k = 0; k < ncuts; k++)
        cuts[k] = (size_t)(data[1 + 2 * k] | data[2 + 2 * k] << 8) % len;
    qsort(cuts, ncuts, sizeof(cuts[0]), cmp_size);

    run(s, len, NULL, 0, &whole);
    check_against_reference(s, len, &whole);
    run(s, len, cuts, ncuts, &cut);
    check_same(&whole, &cut);
    if (len <= BYTEWISE_MAX) {
        for (size_t k = 0; k < len; k++)
            every_byte[k] = k + 1;
        run(s, len, every_byte, len, &bytewise);
        check_same(&whole, &bytewise);
    }
    return 0;
}
