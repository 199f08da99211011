/*
 * sig_canonical.c: canonical URI, query string and headers for SigV4.
 *
 * Every function appends to the workspace buffer and checks capacity on each append, so a
 * hostile request can only ever fail with SIG_ERR_TOO_LARGE, never overrun.
 */
#include "sig_canonical.h"

#include <string.h>

/* Byte classes, looked up once per input byte on the signing hot path. */
enum {
    C_UNRESERVED = 1, /* RFC 3986 section 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~" */
    C_TCHAR = 2,      /* RFC 9110 section 5.6.2 */
    C_CTL = 4,        /* 0x00-0x1f and 0x7f */
    C_WS = 8,         /* SP, HTAB, CR, LF: folded in header values */
};

#define UT (C_UNRESERVED | C_TCHAR)
static const uint8_t byte_class[256] = {
    [0x00 ... 0x08] = C_CTL,
    ['\t'] = C_CTL | C_WS,
    ['\n'] = C_CTL | C_WS,
    [0x0b ... 0x0c] = C_CTL,
    ['\r'] = C_CTL | C_WS,
    [0x0e ... 0x1f] = C_CTL,
    [' '] = C_WS,
    [0x7f] = C_CTL,
    ['0' ... '9'] = UT,
    ['A' ... 'Z'] = UT,
    ['a' ... 'z'] = UT,
    ['-'] = UT,
    ['.'] = UT,
    ['_'] = UT,
    ['~'] = UT,
    ['!'] = C_TCHAR,
    ['#'] = C_TCHAR,
    ['$'] = C_TCHAR,
    ['%'] = C_TCHAR,
    ['&'] = C_TCHAR,
    ['\''] = C_TCHAR,
    ['*'] = C_TCHAR,
    ['+'] = C_TCHAR,
    ['^'] = C_TCHAR,
    ['`'] = C_TCHAR,
    ['|'] = C_TCHAR,
};
#undef UT

static bool is_unreserved(uint8_t c)
{
    return byte_class[c] & C_UNRESERVED;
}

static bool is_tchar(uint8_t c)
{
    return byte_class[c] & C_TCHAR;
}

static bool is_ctl(uint8_t c)
{
    return byte_class[c] & C_CTL;
}

static enum sig_err encode_byte(struct sig_buf *out, uint8_t c, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";

    if (is_unreserved(c) || (keep_slash && c == '/'))
        return sig_buf_append_byte(out, c);
    uint8_t esc[3] = {'%', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
    return sig_buf_append(out, esc, sizeof(esc));
}

enum sig_err sig_uri_encode(struct sig_buf *out, struct sig_slice in, bool keep_slash)
{
    size_t i = 0;
    while (i < in.len) {
        /* Copy each run of bytes that need no escape in one append. */
        size_t run = i;
        while (run < in.len && (is_unreserved(in.ptr[run]) || (keep_slash && in.ptr[run] == '/')))
            run++;
        SIG_TRY(sig_buf_append(out, in.ptr + i, run - i));
        if (run == in.len)
            break;
        SIG_TRY(encode_byte(out, in.ptr[run], keep_slash));
        i = run + 1;
    }
    return SIG_OK;
}

/*
 * Decodes percent-escapes in `in` and re-encodes every byte (RFC 3986 section 2.1). With
 * plus_is_space, a '+' decodes to a space (application/x-www-form-urlencoded, as AWS's
 * query parsers read it); otherwise it is a literal plus (S3 paths).
 */
static enum sig_err decode_encode(struct sig_buf *out, struct sig_slice in, bool keep_slash,
                                  bool plus_is_space)
{
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        if (c == '%') {
            SIG_ENSURE(in.len - i >= 3, SIG_ERR_BAD_PERCENT_ENCODING);
            int hi = sig_hex_digit(in.ptr[i + 1]);
            int lo = sig_hex_digit(in.ptr[i + 2]);
            SIG_ENSURE(hi >= 0 && lo >= 0, SIG_ERR_BAD_PERCENT_ENCODING);
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        SIG_TRY(encode_byte(out, c, keep_slash));
    }
    return SIG_OK;
}

/*
 * Dot-segment removal as the AWS SDKs apply it (botocore's remove_dot_segments): empty and
 * "." segments are dropped (so duplicate slashes collapse), ".." removes the previous segment,
 * and a trailing slash survives when the path ends in one and anything is left.
 */
static enum sig_err normalize_and_encode(struct sig_buf *out, struct sig_slice path)
{
    size_t base = out->len;
    size_t i = 0;

    while (i < path.len) {
        size_t start = ++i; /* skip the '/' */
        while (i < path.len && path.ptr[i] != '/')
            i++;
        struct sig_slice seg = {path.ptr + start, i - start};
        if (seg.len == 0 || (seg.len == 1 && seg.ptr[0] == '.'))
            continue;
        if (seg.len == 2 && seg.ptr[0] == '.' && seg.ptr[1] == '.') {
            while (out->len > base && out->ptr[out->len - 1] != '/')
                out->len--;
            if (out->len > base)
                out->len--; /* and the slash that led into the popped segment */
            continue;
        }
        SIG_TRY(sig_buf_append_byte(out, '/'));
        SIG_TRY(sig_uri_encode(out, seg, false));
    }
    if (out->len == base)
        return sig_buf_append_byte(out, '/');
    if (path.ptr[path.len - 1] == '/')
        return sig_buf_append_byte(out, '/');
    return SIG_OK;
}

enum sig_err sig_canonical_uri(struct sig_buf *out, struct sig_slice path, enum sig_uri_mode mode)
{
    if (path.len == 0)
        return sig_buf_append_byte(out, '/');
    SIG_ENSURE(path.ptr[0] == '/', SIG_ERR_BAD_PATH);
    for (size_t i = 0; i < path.len; i++)
        SIG_ENSURE(!is_ctl(path.ptr[i]), SIG_ERR_BAD_PATH);

    switch (mode) {
    case SIG_URI_NORMALIZE:
        return normalize_and_encode(out, path);
    case SIG_URI_ENCODE_ONLY:
        return sig_uri_encode(out, path, true);
    case SIG_URI_S3:
        return decode_encode(out, path, true, false);
    }
    return SIG_ERR_INVALID_ARG;
}

/* ---- query ---- */

static enum sig_err query_push(struct sig_query *q, size_t key_off, size_t val_off)
{
    struct sig_buf *b = &q->ws->buf;
    SIG_ENSURE(q->count < SIG_MAX_QUERY_PARAMS, SIG_ERR_TOO_MANY_QUERY_PARAMS);
    SIG_ENSURE(b->len <= UINT32_MAX, SIG_ERR_TOO_LARGE);
    q->ws->params[q->count++] = (struct sig_span){
        .off = (uint32_t)key_off,
        .len = (uint32_t)(val_off - key_off),
        .off2 = (uint32_t)val_off,
        .len2 = (uint32_t)(b->len - val_off),
    };
    return SIG_OK;
}

static enum sig_err query_parse_pair(struct sig_query *q, struct sig_slice pair)
{
    struct sig_buf *b = &q->ws->buf;
    const uint8_t *eq = memchr(pair.ptr, '=', pair.len);
    size_t key_len = eq == NULL ? pair.len : (size_t)(eq - pair.ptr);
    struct sig_slice key = {pair.ptr, key_len};
    struct sig_slice val = {NULL, 0};

    if (eq != NULL)
        val = (struct sig_slice){eq + 1, pair.len - key_len - 1};
    size_t key_off = b->len;
    SIG_TRY(decode_encode(b, key, false, false));
    size_t val_off = b->len;
    SIG_TRY(decode_encode(b, val, false, false));
    return query_push(q, key_off, val_off);
}

enum sig_err sig_query_parse(struct sig_query *q, struct sig_slice wire)
{
    size_t i = 0;

    while (i < wire.len) {
        size_t start = i;
        while (i < wire.len && wire.ptr[i] != '&')
            i++;
        /* Empty pieces ("a=1&&b=2", a trailing '&') carry no parameter. */
        if (i > start)
            SIG_TRY(query_parse_pair(q, (struct sig_slice){wire.ptr + start, i - start}));
        i++;
    }
    return SIG_OK;
}

enum sig_err sig_query_add(struct sig_query *q, struct sig_slice key, struct sig_slice raw_value)
{
    struct sig_buf *b = &q->ws->buf;
    size_t key_off = b->len;

    SIG_TRY(sig_buf_append_slice(b, key));
    size_t val_off = b->len;
    SIG_TRY(sig_uri_encode(b, raw_value, false));
    return query_push(q, key_off, val_off);
}

static int bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

static int param_cmp(const uint8_t *base, const struct sig_span *x, const struct sig_span *y)
{
    int c = bytes_cmp(base + x->off, x->len, base + y->off, y->len);
    if (c != 0)
        return c;
    return bytes_cmp(base + x->off2, x->len2, base + y->off2, y->len2);
}

/* Insertion sort: stable, allocation-free, and fast for the handful of entries requests have. */
static void spans_sort(struct sig_span *v, size_t n, const uint8_t *base, bool by_value_too)
{
    for (size_t i = 1; i < n; i++) {
        struct sig_span cur = v[i];
        size_t j = i;
        while (j > 0) {
            int c = by_value_too
                        ? param_cmp(base, &v[j - 1], &cur)
                        : bytes_cmp(base + v[j - 1].off, v[j - 1].len, base + cur.off, cur.len);
            if (c <= 0)
                break;
            v[j] = v[j - 1];
            j--;
        }
        v[j] = cur;
    }
}

enum sig_err sig_query_write(struct sig_query *q, struct sig_slice *out)
{
    struct sig_buf *b = &q->ws->buf;
    size_t start = b->len;

    spans_sort(q->ws->params, q->count, b->ptr, true);
    for (size_t i = 0; i < q->count; i++) {
        const struct sig_span *s = &q->ws->params[i];
        if (i > 0)
            SIG_TRY(sig_buf_append_byte(b, '&'));
        /* The spans point into b itself, which never moves: append from the same memory. */
        SIG_TRY(sig_buf_append(b, b->ptr + s->off, s->len));
        SIG_TRY(sig_buf_append_byte(b, '='));
        SIG_TRY(sig_buf_append(b, b->ptr + s->off2, s->len2));
    }
    *out = (struct sig_slice){b->ptr + start, b->len - start};
    return SIG_OK;
}

/* ---- headers ---- */

/*
 * Line breaks are accepted only as obs-fold (RFC 9112 section 5.2), so multi-line values from
 * the signing test suite canonicalize: a CR must precede LF, and LF must be followed by SP or
 * HTAB. Other control bytes (NUL among them) are refused (RFC 9110 section 5.5).
 */
static bool line_break_ok(struct sig_slice v, size_t i)
{
    if (v.ptr[i] == '\r')
        return i + 1 < v.len && v.ptr[i + 1] == '\n';
    return i + 1 < v.len && (v.ptr[i + 1] == ' ' || v.ptr[i + 1] == '\t');
}

/*
 * Validates a header value and appends it trimmed, each run of whitespace collapsed to one
 * space (SigV4 "Trimall"), in one pass that copies runs of ordinary bytes in bulk. The output
 * is never longer than the input, so room for the input is reserved up front.
 */
static enum sig_err append_folded(struct sig_buf *b, struct sig_slice v)
{
    SIG_ENSURE(b->cap - b->len >= v.len, SIG_ERR_TOO_LARGE);
    uint8_t *out = b->ptr + b->len;
    size_t o = 0;
    bool pending_space = false;
    size_t i = 0;

    while (i < v.len) {
        uint8_t cls = byte_class[v.ptr[i]];
        if (cls & C_WS) {
            if ((v.ptr[i] == '\r' || v.ptr[i] == '\n') && !line_break_ok(v, i))
                return SIG_ERR_BAD_HEADER_VALUE;
            pending_space = o > 0;
            i++;
            continue;
        }
        if (cls & C_CTL)
            return SIG_ERR_BAD_HEADER_VALUE;
        if (pending_space)
            out[o++] = ' ';
        pending_space = false;
        size_t start = i;
        while (i < v.len && !(byte_class[v.ptr[i]] & (C_WS | C_CTL)))
            i++;
        memcpy(out + o, v.ptr + start, i - start);
        o += i - start;
    }
    b->len += o;
    return SIG_OK;
}

static bool eq_nocase(struct sig_slice name, const char *lower, size_t len)
{
    return name.len == len &&
           sig_slice_eq_nocase(name, (struct sig_slice){(const uint8_t *)lower, len});
}

#define EQ(lit) eq_nocase(name, lit, sizeof(lit) - 1)

/* Dispatches on length first: this runs for every header of every request. */
bool sig_header_is_unsignable(struct sig_slice name)
{
    if (name.len >= 6 &&
        sig_slice_eq_nocase((struct sig_slice){name.ptr, 6}, SIG_SLICE_LIT("proxy-")))
        return true;
    switch (name.len) {
    case 2:
        return EQ("te");
    case 6:
        return EQ("expect");
    case 7:
        return EQ("upgrade") || EQ("trailer");
    case 10:
        return EQ("connection") || EQ("keep-alive") || EQ("user-agent");
    case 13:
        return EQ("authorization");
    case 15:
        return EQ("x-amzn-trace-id");
    case 17:
        return EQ("transfer-encoding");
    default:
        return false;
    }
}

#undef EQ

/* Bits of struct sig_headers.reserved_seen: the headers the signer itself adds. */
static unsigned reserved_bit(struct sig_slice lower)
{
    static const struct sig_slice reserved[] = {
        SIG_SLICE_LIT("x-amz-date"),
        SIG_SLICE_LIT("x-amz-security-token"),
        SIG_SLICE_LIT("x-amz-region-set"),
        SIG_SLICE_LIT("x-amz-content-sha256"),
    };
    if (lower.len < 10 || lower.ptr[0] != 'x')
        return 0;
    for (unsigned i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (sig_slice_eq(lower, reserved[i]))
            return 1u << i;
    }
    return 0;
}

static enum sig_err push_header(struct sig_headers *h, size_t name_off, size_t name_len,
                                size_t val_off)
{
    struct sig_buf *b = &h->ws->buf;
    SIG_ENSURE(b->len <= UINT32_MAX, SIG_ERR_TOO_LARGE);
    struct sig_slice lower = {b->ptr + name_off, name_len};
    h->reserved_seen |= reserved_bit(lower);
    h->host_count += sig_slice_eq(lower, SIG_SLICE_LIT("host"));
    h->ws->headers[h->count++] = (struct sig_span){
        .off = (uint32_t)name_off,
        .len = (uint32_t)name_len,
        .off2 = (uint32_t)val_off,
        .len2 = (uint32_t)(b->len - val_off),
    };
    return SIG_OK;
}

enum sig_err sig_headers_add_verbatim(struct sig_headers *h, struct sig_slice lower_name,
                                      struct sig_slice value)
{
    struct sig_buf *b = &h->ws->buf;
    SIG_ENSURE(h->count < SIG_MAX_HEADERS, SIG_ERR_TOO_MANY_HEADERS);
    size_t name_off = b->len;
    SIG_TRY(sig_buf_append_slice(b, lower_name));
    size_t val_off = b->len;
    SIG_TRY(sig_buf_append_slice(b, value));
    return push_header(h, name_off, lower_name.len, val_off);
}

enum sig_err sig_headers_add(struct sig_headers *h, struct sig_slice name, struct sig_slice value)
{
    struct sig_buf *b = &h->ws->buf;

    SIG_ENSURE(name.len > 0, SIG_ERR_BAD_HEADER_NAME);
    for (size_t i = 0; i < name.len; i++)
        SIG_ENSURE(is_tchar(name.ptr[i]), SIG_ERR_BAD_HEADER_NAME);
    if (sig_header_is_unsignable(name)) {
        /* Still validated: an unsigned header is forwarded all the same. */
        size_t mark = h->ws->buf.len;
        enum sig_err err = append_folded(b, value);
        h->ws->buf.len = mark;
        return err == SIG_ERR_TOO_LARGE ? SIG_OK : err;
    }
    SIG_ENSURE(h->count < SIG_MAX_HEADERS, SIG_ERR_TOO_MANY_HEADERS);

    size_t name_off = b->len;
    SIG_ENSURE(b->cap - b->len >= name.len, SIG_ERR_TOO_LARGE);
    for (size_t i = 0; i < name.len; i++) {
        uint8_t c = name.ptr[i];
        b->ptr[b->len + i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
    }
    b->len += name.len;
    size_t val_off = b->len;
    SIG_TRY(append_folded(b, value));
    return push_header(h, name_off, name.len, val_off);
}

bool sig_headers_has(const struct sig_headers *h, struct sig_slice lower_name)
{
    unsigned bit = reserved_bit(lower_name);
    if (bit != 0)
        return (h->reserved_seen & bit) != 0;
    for (size_t i = 0; i < h->count; i++) {
        const struct sig_span *s = &h->ws->headers[i];
        if (sig_slice_eq((struct sig_slice){h->ws->buf.ptr + s->off, s->len}, lower_name))
            return true;
    }
    return false;
}

enum sig_err sig_headers_write(struct sig_headers *h, struct sig_slice *canonical,
                               struct sig_slice *signed_headers)
{
    struct sig_buf *b = &h->ws->buf;
    struct sig_span *v = h->ws->headers;
    size_t start = b->len;

    spans_sort(v, h->count, b->ptr, false);
    for (size_t i = 0; i < h->count; i++) {
        bool repeat = i > 0 && bytes_cmp(b->ptr + v[i - 1].off, v[i - 1].len, b->ptr + v[i].off,
                                         v[i].len) == 0;
        if (repeat) {
            /* Repeated headers join with commas, in the order they came (SigV4 spec). */
            b->len--; /* the previous line's '\n' */
            SIG_TRY(sig_buf_append_byte(b, ','));
        } else {
            SIG_TRY(sig_buf_append(b, b->ptr + v[i].off, v[i].len));
            SIG_TRY(sig_buf_append_byte(b, ':'));
        }
        SIG_TRY(sig_buf_append(b, b->ptr + v[i].off2, v[i].len2));
        SIG_TRY(sig_buf_append_byte(b, '\n'));
    }
    *canonical = (struct sig_slice){b->ptr + start, b->len - start};

    start = b->len;
    for (size_t i = 0; i < h->count; i++) {
        if (i > 0 &&
            bytes_cmp(b->ptr + v[i - 1].off, v[i - 1].len, b->ptr + v[i].off, v[i].len) == 0)
            continue;
        if (b->len > start)
            SIG_TRY(sig_buf_append_byte(b, ';'));
        SIG_TRY(sig_buf_append(b, b->ptr + v[i].off, v[i].len));
    }
    *signed_headers = (struct sig_slice){b->ptr + start, b->len - start};
    return SIG_OK;
}
