/*
 * px_frame_test.c: the strict framing check, driven the way client_feed drives it. Each message
 * is cut into segments of every size from 1 byte to the whole message; the bytes px_frame passes
 * go to a real llhttp (Debian's 8.1), the bytes it drops (chunk extensions) do not. The result,
 * the refused byte's offset and the reason must not depend on the cuts, and llhttp must read the
 * exact body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "llhttp.h"
#include "px_frame.h"

#define HEAD "PUT /b/k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
#define MAX_MSG 16384

struct outcome {
    enum px_frame_result result; /* PX_FRAME_MSG_END, or PX_FRAME_BAD */
    size_t bad_at;               /* offset in the whole message */
    const char *why;
    uint8_t fed[MAX_MSG]; /* what the parser was given */
    size_t fed_len;
    bool parser_done; /* llhttp reached on_message_complete without an error */
    char body[MAX_MSG];
    size_t body_len;
};

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct outcome *o = p->data;
    assert_true(o->body_len + len <= sizeof(o->body));
    memcpy(o->body + o->body_len, at, len);
    o->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct outcome *o = p->data;
    o->parser_done = true;
    return 0;
}

static const llhttp_settings_t settings = {
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/*
 * As client_feed does: the stream arrives in segments of seg bytes; px_frame_scan sees the rest
 * of the current segment; MORE/HEAD_END/MSG_END bytes go to llhttp, SKIP bytes are dropped.
 * The head says how the body is framed (chunked, or content_length).
 */
static void run(const uint8_t *msg, size_t len, size_t seg, bool chunked, uint64_t content_length,
                struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = o;
    struct px_frame f;
    px_frame_reset(&f);
    size_t pos = 0;
    for (int calls = 0; calls < 100000; calls++) {
        assert_true(pos < len); /* the message must end before the bytes do */
        size_t seg_end = (pos / seg + 1) * seg;
        if (seg_end > len)
            seg_end = len;
        size_t used = 0;
        const char *why = NULL;
        enum px_frame_result r = px_frame_scan(&f, msg + pos, seg_end - pos, &used, &why);
        if (r == PX_FRAME_BAD) {
            assert_non_null(why);
            o->result = r;
            o->bad_at = pos + used;
            o->why = why;
            return;
        }
        assert_null(why);
        assert_true(used > 0 && used <= seg_end - pos);
        if (r != PX_FRAME_SKIP) {
            memcpy(o->fed + o->fed_len, msg + pos, used);
            o->fed_len += used;
            enum llhttp_errno e = llhttp_execute(&parser, (const char *)msg + pos, used);
            assert_int_equal(e, HPE_OK);
        }
        pos += used;
        if (r == PX_FRAME_HEAD_END) {
            assert_true(px_frame_wants_body(&f));
            px_frame_body(&f, chunked, content_length);
            if (px_frame_done(&f)) { /* no body: the head was the whole message */
                o->result = PX_FRAME_MSG_END;
                return;
            }
        } else if (r == PX_FRAME_MSG_END) {
            assert_true(px_frame_done(&f));
            o->result = r;
            return;
        }
    }
    fail_msg("px_frame_scan made no progress");
}

/* The message has the same outcome for every cut; returns it for the whole message. */
static void run_all_cuts(const uint8_t *msg, size_t len, bool chunked, uint64_t content_length,
                         struct outcome *whole)
{
    static struct outcome o;
    run(msg, len, len, chunked, content_length, whole);
    for (size_t seg = 1; seg < len; seg += (seg < 16 || len < 600) ? 1 : 97) {
        run(msg, len, seg, chunked, content_length, &o);
        assert_int_equal(o.result, whole->result);
        assert_int_equal(o.bad_at, whole->bad_at);
        assert_ptr_equal(o.why, whole->why);
        if (whole->result != PX_FRAME_MSG_END)
            continue; /* how much reached the parser before the refusal depends on the cuts */
        assert_int_equal(o.parser_done, whole->parser_done);
        assert_int_equal(o.fed_len, whole->fed_len);
        assert_memory_equal(o.fed, whole->fed, whole->fed_len);
        assert_int_equal(o.body_len, whole->body_len);
        assert_memory_equal(o.body, whole->body, whole->body_len);
    }
}

/* Builds HEAD "5" ext "\r\nhello\r\n0\r\n\r\n", or with ext on the last chunk. Returns the
 * length; *ext_at is where ext starts. */
static size_t build(uint8_t *out, const char *ext, size_t ext_len, bool on_last, size_t *ext_at)
{
    const char *pre = on_last ? HEAD "5\r\nhello\r\n0" : HEAD "5";
    const char *post = on_last ? "\r\n\r\n" : "\r\nhello\r\n0\r\n\r\n";
    size_t n = 0;
    memcpy(out, pre, strlen(pre));
    n += strlen(pre);
    *ext_at = n;
    assert_true(n + ext_len + strlen(post) <= MAX_MSG);
    memcpy(out + n, ext, ext_len);
    n += ext_len;
    memcpy(out + n, post, strlen(post));
    return n + strlen(post);
}

static const char stripped[] = HEAD "5\r\nhello\r\n0\r\n\r\n";

static void expect_valid(const char *ext, size_t ext_len)
{
    static uint8_t msg[MAX_MSG];
    static struct outcome o;
    for (int on_last = 0; on_last < 2; on_last++) {
        size_t at;
        size_t len = build(msg, ext, ext_len, on_last, &at);
        run_all_cuts(msg, len, true, 0, &o);
        if (o.result != PX_FRAME_MSG_END)
            fail_msg("refused valid extension \"%s\" (last chunk: %d): %s", ext, on_last, o.why);
        /* llhttp got the message without its extensions, and read the exact body. */
        assert_int_equal(o.fed_len, sizeof(stripped) - 1);
        assert_memory_equal(o.fed, stripped, o.fed_len);
        assert_true(o.parser_done);
        assert_int_equal(o.body_len, 5);
        assert_memory_equal(o.body, "hello", 5);
    }
}

/* Every form RFC 9112 7.1.1 allows, on a data chunk and on the last chunk. */
static const struct valid {
    const char *ext;
    bool llhttp_8_1_refuses; /* Debian's llhttp 8.1.0 alone refuses it */
} valid_exts[] = {
    {"", false},
    {";a", false},
    {";a=b", false},
    {";a=b;c=d", true},
    {";a=b;c", true},
    {";a;b", false},
    {";a;c=d", false},
    {";a=\"q\"", false},
    {";name=\"q\\\"x\"", true},
    {";a=\"\"", false},
    {";a=\"x y\"", false},
    {";a=\"x;y\"", false},
    {";a=\"q\";b=c", false},
    {";a=\"q\";b", false},
    {";a=b;c=\"d\"", true},
    {" ;a=b", true},
    {"\t;a=b", true},
    {"; a=b", true},
    {";a =b", true},
    {";a= b", true},
    {";a = b", true},
    {" ; a = b ; c = d", true},
    {" \t ;\t a \t=\t \"v\" \t; b", true},
    {";a ;b", true},
    {";a=\"q\" ;b", true},
    {";a=\"x\\\\\"", true},
    {";a=\"\\\\\\\"\"", true},
    {";a=\"\x80\xff\"", false},
    {";a=\"\\\x80\"", true},
    {";a=\"x\ty\"", false},
    {";a=\"\\\t\"", true},
    {";a=\"\\ \"", true},
    {";a=\"!#[]~\"", false},
    {";!#$%&'*+-.^_`|~09azAZ=!#$%&'*+-.^_`|~09azAZ", false},
    {";chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648", false},
};

static void test_valid_chunk_extensions(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid_exts) / sizeof(valid_exts[0]); i++)
        expect_valid(valid_exts[i].ext, strlen(valid_exts[i].ext));
}

struct invalid {
    const char *ext;
    int bad_at; /* offset in ext of the refused byte; -1: the CR after ext */
    const char *why;
};

static const struct invalid invalid_exts[] = {
    {";", -1, "empty or invalid chunk extension name"},
    {"; ", -1, "empty or invalid chunk extension name"},
    {";=b", 1, "empty or invalid chunk extension name"},
    {";a=b;", -1, "empty or invalid chunk extension name"},
    {";;a", 1, "empty or invalid chunk extension name"},
    {";\xc3\xa4", 1, "empty or invalid chunk extension name"},
    {";a=", -1, "empty or invalid chunk extension value"},
    {";a= ", -1, "empty or invalid chunk extension value"},
    {";a=(", 3, "empty or invalid chunk extension value"},
    {";a==b", 3, "empty or invalid chunk extension value"},
    {";a=;b", 3, "empty or invalid chunk extension value"},
    {";a\x01"
     "b",
     2, "invalid character in a chunk extension name"},
    {";a,b", 2, "invalid character in a chunk extension name"},
    {";a\nb", 2, "invalid character in a chunk extension name"},
    {";a b", 3, "invalid character after a chunk extension name"},
    {";a ", -1, "invalid character after a chunk extension name"},
    {";a=b=c", 4, "invalid character in a chunk extension value"},
    {";a=b\nc", 4, "invalid character in a chunk extension value"},
    {";a=b\"", 4, "invalid character in a chunk extension value"},
    {";a=\"x\"y", 6, "invalid character after a quoted chunk extension value"},
    {";a=\"x\"\"", 6, "invalid character after a quoted chunk extension value"},
    {";a=\"x", -1, "invalid character in a quoted chunk extension value"},
    {";a=\"\x01\"", 4, "invalid character in a quoted chunk extension value"},
    {";a=\"\x7f\"", 4, "invalid character in a quoted chunk extension value"},
    {";a=\"\n\"", 4, "invalid character in a quoted chunk extension value"},
    {";a=\"x\\\x01\"", 6, "invalid escaped character in a chunk extension value"},
    {";a=\"x\\\x7f\"", 6, "invalid escaped character in a chunk extension value"},
    {";a=\"x\\", -1, "invalid escaped character in a chunk extension value"},
    {" ", -1, "whitespace not followed by ';' in a chunk-size line"},
    {";a=b ", -1, "whitespace not followed by ';' in a chunk-size line"},
    {";a=\"b\" ", -1, "whitespace not followed by ';' in a chunk-size line"},
    {";a=b c", 5, "whitespace not followed by ';' in a chunk-size line"},
    {" 6", 1, "whitespace not followed by ';' in a chunk-size line"},
    {" =", 1, "whitespace not followed by ';' in a chunk-size line"},
    {"x", 0, "invalid character in chunk size"},
    {"=a", 0, "invalid character in chunk size"},
};

static void expect_invalid(const struct invalid *t, size_t ext_len)
{
    static uint8_t msg[MAX_MSG];
    static struct outcome o;
    for (int on_last = 0; on_last < 2; on_last++) {
        size_t at;
        size_t len = build(msg, t->ext, ext_len, on_last, &at);
        run_all_cuts(msg, len, true, 0, &o);
        if (o.result != PX_FRAME_BAD)
            fail_msg("accepted invalid extension \"%s\" (last chunk: %d)", t->ext, on_last);
        assert_string_equal(o.why, t->why);
        assert_int_equal(o.bad_at, at + (t->bad_at < 0 ? ext_len : (size_t)t->bad_at));
        /* Nothing of the refused line reached the parser but the size digits. */
        assert_true(o.fed_len <= at);
    }
}

static void test_invalid_chunk_extensions(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid_exts) / sizeof(invalid_exts[0]); i++)
        expect_invalid(&invalid_exts[i], strlen(invalid_exts[i].ext));
    /* NUL inside a quoted value (strlen cannot carry it). */
    static const struct invalid nul = {";a=\"\0\"", 4,
                                       "invalid character in a quoted chunk extension value"};
    expect_invalid(&nul, 6);
}

/* A CR must be followed by LF after extensions too. */
static void test_extension_then_cr_without_lf(void **state)
{
    (void)state;
    static const char msg[] = HEAD "5;a=b\rXhello\r\n0\r\n\r\n";
    static struct outcome o;
    run_all_cuts((const uint8_t *)msg, sizeof(msg) - 1, true, 0, &o);
    assert_int_equal(o.result, PX_FRAME_BAD);
    assert_string_equal(o.why, "CR not followed by LF after the chunk size");
    assert_int_equal(o.bad_at, strlen(HEAD "5;a=b\r"));
}

/* The extensions of one line are bounded; each line has its own count. */
static void test_extension_length_limit(void **state)
{
    (void)state;
    static char ext[PX_FRAME_MAX_CHUNK_EXT_BYTES + 2]; /* one byte too many, then NUL */
    memset(ext, 'b', sizeof(ext) - 1);
    memcpy(ext, ";a=", 3);
    expect_valid(ext, PX_FRAME_MAX_CHUNK_EXT_BYTES);
    struct invalid t = {ext, PX_FRAME_MAX_CHUNK_EXT_BYTES, "chunk extensions too long"};
    expect_invalid(&t, PX_FRAME_MAX_CHUNK_EXT_BYTES + 1);

    /* Two lines each at the limit pass: the count starts again on each line. */
    static uint8_t msg[3 * PX_FRAME_MAX_CHUNK_EXT_BYTES];
    size_t n = 0;
    for (int line = 0; line < 2; line++) {
        memcpy(msg + n, line == 0 ? HEAD "1" : "1", line == 0 ? strlen(HEAD "1") : 1);
        n += line == 0 ? strlen(HEAD "1") : 1;
        memcpy(msg + n, ext, PX_FRAME_MAX_CHUNK_EXT_BYTES);
        n += PX_FRAME_MAX_CHUNK_EXT_BYTES;
        memcpy(msg + n, "\r\nx\r\n", 5);
        n += 5;
    }
    memcpy(msg + n, "0\r\n\r\n", 5);
    n += 5;
    static struct outcome o;
    run(msg, n, n, true, 0, &o);
    assert_int_equal(o.result, PX_FRAME_MSG_END);
    run(msg, n, 1000, true, 0, &o);
    assert_int_equal(o.result, PX_FRAME_MSG_END);
    assert_int_equal(o.body_len, 2);
    assert_memory_equal(o.body, "xx", 2);
}

/*
 * An independent reading of RFC 9112 7.1.1 (recursive descent over the whole string, not a
 * state machine) to compare px_frame with on many generated extensions.
 */
static bool ref_ws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static bool ref_tchar(uint8_t c)
{
    return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

static size_t ref_skip_ws(const uint8_t *s, size_t len, size_t i)
{
    while (i < len && ref_ws(s[i]))
        i++;
    return i;
}

/* Returns the end of a token at i, or i when there is none. */
static size_t ref_token(const uint8_t *s, size_t len, size_t i)
{
    while (i < len && ref_tchar(s[i]))
        i++;
    return i;
}

/* Returns the end of a quoted-string at i, or 0 when there is none. */
static size_t ref_quoted(const uint8_t *s, size_t len, size_t i)
{
    if (i >= len || s[i] != '"')
        return 0;
    for (i++; i < len; i++) {
        uint8_t c = s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (++i >= len || !(s[i] == '\t' || (s[i] >= 0x20 && s[i] != 0x7f)))
                return 0;
        } else if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) {
            return 0;
        }
    }
    return 0;
}

static bool ref_chunk_ext_ok(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        i = ref_skip_ws(s, len, i);
        if (i >= len || s[i] != ';')
            return false;
        i = ref_skip_ws(s, len, i + 1);
        size_t end = ref_token(s, len, i);
        if (end == i)
            return false;
        i = end;
        size_t eq = ref_skip_ws(s, len, i);
        if (eq < len && s[eq] == '=') {
            size_t v = ref_skip_ws(s, len, eq + 1);
            end = ref_token(s, len, v);
            if (end == v)
                end = ref_quoted(s, len, v);
            if (end == 0 || end == v)
                return false;
            i = end;
        }
    }
    return true;
}

static void test_extensions_match_an_independent_reading(void **state)
{
    (void)state;
    /* Fragments that make valid extensions likely and every kind of byte possible; no CR (it
     * ends the line) and no hex digit (one first would extend the size). */
    static const char *const pieces[] = {
        ";",    ";",    "=",      "=",      "\"",     "\"",    "\\",    " ",      "\t",   "x",
        "yk",   "!",    "~",      "\n",     ",",      "(",     "@",     "\x01",   "\x7f", "\x80",
        "\xff", ";n",   ";n",     "=v",     "=\"",    ";n=\"", ";n=\"", "\";",    "\" ",  "\\ ",
        "\\\"", "\\\t", "\\\x80", "\\\x7f", "\\\x01", "\\\\",  "\"\"",  "!#[]^~", "\t ;", " = ",
    };
    static uint8_t msg[MAX_MSG];
    static struct outcome o;
    uint32_t rng = 12345;
    int accepted = 0;
    for (int iter = 0; iter < 50000; iter++) {
        uint8_t ext[64];
        size_t ext_len = 0;
        rng = rng * 1103515245u + 12345u;
        for (unsigned k = (rng >> 16) % 9; k > 0; k--) {
            rng = rng * 1103515245u + 12345u;
            const char *piece = pieces[(rng >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
            memcpy(ext + ext_len, piece, strlen(piece));
            ext_len += strlen(piece);
        }
        size_t at;
        size_t len = build(msg, (const char *)ext, ext_len, iter & 1, &at);
        bool want = ref_chunk_ext_ok(ext, ext_len);
        /* Whole, and one byte at a time (the two extremes of run_all_cuts, for speed). */
        static struct outcome bytewise;
        run(msg, len, len, true, 0, &o);
        run(msg, len, 1, true, 0, &bytewise);
        assert_int_equal(o.result, bytewise.result);
        assert_int_equal(o.bad_at, bytewise.bad_at);
        if ((o.result == PX_FRAME_MSG_END) != want)
            fail_msg("extension \"%.*s\": px_frame %s, the RFC reading %s", (int)ext_len,
                     (const char *)ext, o.result == PX_FRAME_MSG_END ? "accepts" : "refuses",
                     want ? "accepts" : "refuses");
        if (want) {
            accepted++;
            assert_int_equal(o.fed_len, sizeof(stripped) - 1);
            assert_memory_equal(o.fed, stripped, o.fed_len);
            assert_int_equal(o.body_len, 5);
        } else {
            assert_true(o.bad_at >= at && o.bad_at <= at + ext_len);
        }
    }
    /* The generator must reach both sides for the comparison to mean anything. */
    assert_true(accepted > 2000);
    assert_true(accepted < 48000);
}

/* Head and trailer lines are checked alike; each reason names where the line is. */
struct bad_msg {
    const char *msg;
    size_t bad_at;
    const char *why;
};

#define TE "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
#define CH "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"

static const struct bad_msg bad_lines[] = {
    {"\nPUT / HTTP/1.1\r\n\r\n", 0, "bare LF before the request line"},
    {" PUT / HTTP/1.1\r\n\r\n", 0, "control byte or space before the request line"},
    {"\rPUT / HTTP/1.1\r\n\r\n", 1, "CR not followed by LF"},
    {"PUT / HTTP/1.1\n\r\n", 14, "bare LF in the request head (lines end in CRLF)"},
    {"PUT / HTTP/1.1\r\nA: b\nc\r\n\r\n", 20, "bare LF in the request head (lines end in CRLF)"},
    {"PUT / HTTP/1.1\r\n\n", 16, "bare LF in the request head (lines end in CRLF)"},
    {"PUT / HT\x01TP/1.1\r\n\r\n", 8, "control byte in the request head"},
    {"PUT / HTTP/1.1\r\nA: \x7f\r\n\r\n", 19, "control byte in the request head"},
    {"PUT / HTTP/1.1\r\n\x01: b\r\n\r\n", 16, "control byte in the request head"},
    {"PUT / HTTP/1.1\rX\r\n\r\n", 15, "CR not followed by LF in the request head"},
    {"PUT / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 22,
     "obsolete line folding or a field line starting with whitespace"},
    {"PUT / HTTP/1.1\r\n\tA: b\r\n\r\n", 16,
     "obsolete line folding or a field line starting with whitespace"},
    {"PUT / HTTP/1.1\r\n: b\r\n\r\n", 16, "empty header field name"},
    {"PUT / HTTP/1.1\r\n\rX", 17, "CR not followed by LF at the end of the request head"},
    {CH "\n", sizeof(CH) - 1, "bare LF in the trailer section (lines end in CRLF)"},
    {CH "T: 1\n\r\n", sizeof(CH) - 1 + 4, "bare LF in the trailer section (lines end in CRLF)"},
    {CH "T: \x01\r\n\r\n", sizeof(CH) - 1 + 3, "control byte in the trailer section"},
    {CH "\x7fT: 1\r\n\r\n", sizeof(CH) - 1, "control byte in the trailer section"},
    {CH "T: 1\rX\r\n", sizeof(CH) - 1 + 5, "CR not followed by LF in the trailer section"},
    {CH "T: 1\r\n 2\r\n\r\n", sizeof(CH) - 1 + 6, "obsolete line folding in the trailer section"},
    {CH ": 1\r\n\r\n", sizeof(CH) - 1, "empty trailer field name"},
    {CH "\rX", sizeof(CH), "CR not followed by LF at the end of the chunked body"},
    {CH "T: 1\r\n\rX", sizeof(CH) - 1 + 7, "CR not followed by LF at the end of the chunked body"},
    {TE "5\r\nhelloXX", sizeof(TE) - 1 + 8, "chunk data not followed by CRLF"},
    {TE "5\r\nhello\rX", sizeof(TE) - 1 + 9, "chunk data not followed by CRLF"},
    {TE "z\r\n", sizeof(TE) - 1, "invalid chunk size"},
    {TE ";a\r\n", sizeof(TE) - 1, "invalid chunk size"},
    {TE "5\n", sizeof(TE) - 1 + 1, "invalid character in chunk size"},
    {TE "5\rX", sizeof(TE) - 1 + 2, "CR not followed by LF after the chunk size"},
    {TE "11111111111111111\r\n", sizeof(TE) - 1 + 16, "chunk size overflow"},
};

static void test_head_and_trailer_lines(void **state)
{
    (void)state;
    static struct outcome o;
    for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        const struct bad_msg *t = &bad_lines[i];
        /* Messages without a Transfer-Encoding line are given a chunked body all the same:
         * only the framing check reads them here. */
        run_all_cuts((const uint8_t *)t->msg, strlen(t->msg), true, 0, &o);
        if (o.result != PX_FRAME_BAD || strcmp(o.why, t->why) != 0 || o.bad_at != t->bad_at)
            fail_msg("case %zu: got %s at %zu, want \"%s\" at %zu", i,
                     o.result == PX_FRAME_BAD ? o.why : "accepted", o.bad_at, t->why, t->bad_at);
    }
}

/* Valid framings: empty lines before the request, trailers, Content-Length, no body. */
static void test_valid_messages(void **state)
{
    (void)state;
    static struct outcome o;
    static const char chunked[] = "\r\n\r\n" CH "T: 1\r\nU:\r\n\r\n";
    run_all_cuts((const uint8_t *)chunked, sizeof(chunked) - 1, true, 0, &o);
    assert_int_equal(o.result, PX_FRAME_MSG_END);
    assert_true(o.parser_done);
    assert_int_equal(o.fed_len, sizeof(chunked) - 1);
    assert_memory_equal(o.body, "hello", 5);

    static const char cl[] = "PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    run_all_cuts((const uint8_t *)cl, sizeof(cl) - 1, false, 3, &o);
    assert_int_equal(o.result, PX_FRAME_MSG_END);
    assert_true(o.parser_done);
    assert_int_equal(o.body_len, 3);

    static const char none[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    run_all_cuts((const uint8_t *)none, sizeof(none) - 1, false, 0, &o);
    assert_int_equal(o.result, PX_FRAME_MSG_END);
    assert_true(o.parser_done);
}

/* The scan stops at the message's end, so a pipelined request is not read as this one's. */
static void test_stops_at_message_end(void **state)
{
    (void)state;
    static const char two[] = HEAD "5;x=\"y\"\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    struct px_frame f;
    px_frame_reset(&f);
    size_t used, pos = 0;
    const char *why;
    const uint8_t *p = (const uint8_t *)two;
    assert_int_equal(px_frame_scan(&f, p, sizeof(two) - 1, &used, &why), PX_FRAME_HEAD_END);
    assert_int_equal(used, strlen(HEAD));
    assert_true(px_frame_wants_body(&f));
    /* Before px_frame_body, body bytes are refused: the parser must agree the head ended. */
    struct px_frame early = f;
    assert_int_equal(px_frame_scan(&early, p + used, 1, &used, &why), PX_FRAME_BAD);
    assert_string_equal(why, "request head end not agreed by the parser");
    pos = strlen(HEAD);
    px_frame_body(&f, true, 0);
    assert_int_equal(px_frame_scan(&f, p + pos, sizeof(two) - 1 - pos, &used, &why), PX_FRAME_MORE);
    assert_int_equal(used, 1); /* "5": the parser's part, up to the extension */
    pos += used;
    assert_int_equal(px_frame_scan(&f, p + pos, sizeof(two) - 1 - pos, &used, &why), PX_FRAME_SKIP);
    assert_int_equal(used, strlen(";x=\"y\""));
    pos += used;
    assert_int_equal(px_frame_scan(&f, p + pos, sizeof(two) - 1 - pos, &used, &why),
                     PX_FRAME_MSG_END);
    pos += used;
    assert_int_equal(pos, sizeof(HEAD "5;x=\"y\"\r\nhello\r\n0\r\n\r\n") - 1);
    assert_true(px_frame_done(&f));
    assert_int_equal(px_frame_scan(&f, p + pos, 1, &used, &why), PX_FRAME_BAD);
    assert_string_equal(why, "message end not agreed by the parser");
    px_frame_reset(&f);
    assert_int_equal(px_frame_scan(&f, p + pos, sizeof(two) - 1 - pos, &used, &why),
                     PX_FRAME_HEAD_END);
}

/*
 * Why px_frame drops extensions instead of passing them: what Debian's llhttp 8.1.0 does on its
 * own with the valid forms above (found with this table). Pinned to that version; a newer
 * llhttp may accept more, which px_frame does not depend on.
 */
#if LLHTTP_VERSION_MAJOR == 8 && LLHTTP_VERSION_MINOR == 1
static void test_llhttp_8_1_refuses_valid_extensions(void **state)
{
    (void)state;
    static uint8_t msg[MAX_MSG];
    size_t n_refused = 0;
    for (size_t i = 0; i < sizeof(valid_exts) / sizeof(valid_exts[0]); i++) {
        const struct valid *t = &valid_exts[i];
        size_t at;
        size_t len = build(msg, t->ext, strlen(t->ext), false, &at);
        static struct outcome o;
        memset(&o, 0, sizeof(o));
        llhttp_t parser;
        llhttp_init(&parser, HTTP_REQUEST, &settings);
        parser.data = &o;
        enum llhttp_errno e = llhttp_execute(&parser, (const char *)msg, len);
        if ((e != HPE_OK) != t->llhttp_8_1_refuses)
            fail_msg("llhttp %s \"%s\"", e == HPE_OK ? "accepts" : "refuses", t->ext);
        n_refused += e != HPE_OK;
    }
    /* The reason for dropping extensions: without it these valid requests would get a 400. */
    assert_true(n_refused > 0);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_chunk_extensions),
        cmocka_unit_test(test_invalid_chunk_extensions),
        cmocka_unit_test(test_extension_then_cr_without_lf),
        cmocka_unit_test(test_extension_length_limit),
        cmocka_unit_test(test_extensions_match_an_independent_reading),
        cmocka_unit_test(test_head_and_trailer_lines),
        cmocka_unit_test(test_valid_messages),
        cmocka_unit_test(test_stops_at_message_end),
#if LLHTTP_VERSION_MAJOR == 8 && LLHTTP_VERSION_MINOR == 1
        cmocka_unit_test(test_llhttp_8_1_refuses_valid_extensions),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
