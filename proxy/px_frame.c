/*
 * px_frame.c: the strict framing check (see px_frame.h for why).
 */
#include "px_frame.h"

#include <string.h>

#include "sig_types.h"

enum {
    FS_START = 0,  /* before the request line; empty lines (CRLF) are skipped, RFC 9112 2.2 */
    FS_START_CR,   /* CR of an empty line before the request line */
    FS_LINE,       /* inside the request line or a field line (head or trailer section) */
    FS_LINE_CR,    /* a line's CR: LF must follow */
    FS_LINE_START, /* at the start of a field line, or of the empty line ending the section */
    FS_END_CR,     /* CR of the empty line ending the head or the trailer section */
    FS_HEAD_DONE,  /* head checked; waiting for px_frame_body */
    FS_CL_BODY,    /* Content-Length body: `remaining` bytes */
    FS_CHUNK_SIZE, /* chunk-size hex digits */
    FS_EXT_BWS,    /* after the size or a value: ';' must follow, after any whitespace */
    FS_EXT_NAME0,  /* after ';' (and whitespace): a chunk-ext-name (token) must follow */
    FS_EXT_NAME,   /* inside a chunk-ext-name */
    FS_EXT_NWS,    /* whitespace after a name: '=' or ';' must follow */
    FS_EXT_VALUE0, /* after '=' (and whitespace): a token or a quoted string must follow */
    FS_EXT_TOKEN,  /* inside a token value */
    FS_EXT_QUOTED, /* inside a quoted-string value */
    FS_EXT_QESC,   /* after a backslash inside a quoted string */
    FS_EXT_QEND,   /* after the closing quote */
    FS_EXT_END,    /* the extensions were dropped: the line's CR comes next */
    FS_SIZE_CR,    /* CR ending the chunk-size line: LF must follow */
    FS_DATA,       /* chunk data: `remaining` bytes */
    FS_DATA_CR,    /* the CR that must follow chunk data */
    FS_DATA_LF,    /* the LF that must follow it */
    FS_MSG_DONE,   /* message checked; waiting for px_frame_reset */
};

void px_frame_reset(struct px_frame *f)
{
    *f = (struct px_frame){.state = FS_START};
}

void px_frame_body(struct px_frame *f, bool chunked, uint64_t content_length)
{
    if (chunked) {
        f->state = FS_CHUNK_SIZE;
        f->chunk_size = 0;
        f->hex_digits = 0;
    } else if (content_length > 0) {
        f->state = FS_CL_BODY;
        f->remaining = content_length;
    } else {
        f->state = FS_MSG_DONE;
    }
}

bool px_frame_wants_body(const struct px_frame *f)
{
    return f->state == FS_HEAD_DONE;
}

bool px_frame_done(const struct px_frame *f)
{
    return f->state == FS_MSG_DONE;
}

/* tchar (RFC 9110 5.6.2) */
static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return memchr(extra, c, sizeof(extra) - 1) != NULL;
}

/* qdtext (RFC 9110 5.6.4): HTAB, SP, VCHAR except '"' and '\', obs-text */
static bool is_qdtext(uint8_t c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/* What a quoted-pair may escape (RFC 9110 5.6.4): HTAB, SP, VCHAR, obs-text */
static bool is_qpair_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* BWS is OWS (RFC 9110 5.6.3): SP and HTAB */
static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* Bytes a request line or field line may not contain: controls other than HTAB, and DEL
 * (RFC 9110 5.5 field-vchar; RFC 9112 3 request-line). CR and LF are handled as line ends. */
static bool is_bad_line_byte(uint8_t c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Where and why the check failed. */
static enum px_frame_result bad(size_t *used, const char **why, size_t at, const char *reason)
{
    *used = at;
    *why = reason;
    return PX_FRAME_BAD;
}

/* The head's and the trailer section's lines follow the same rules (RFC 9112 2.2, 5, 7.1.2);
 * only the reasons say which one broke them. */
struct line_reasons {
    const char *bare_lf, *control, *no_lf, *fold, *empty_name, *end_no_lf;
};

static const struct line_reasons head_reasons = {
    .bare_lf = "bare LF in the request head (lines end in CRLF)",
    .control = "control byte in the request head",
    .no_lf = "CR not followed by LF in the request head",
    .fold = "obsolete line folding or a field line starting with whitespace",
    .empty_name = "empty header field name",
    .end_no_lf = "CR not followed by LF at the end of the request head",
};

static const struct line_reasons trailer_reasons = {
    .bare_lf = "bare LF in the trailer section (lines end in CRLF)",
    .control = "control byte in the trailer section",
    .no_lf = "CR not followed by LF in the trailer section",
    .fold = "obsolete line folding in the trailer section",
    .empty_name = "empty trailer field name",
    .end_no_lf = "CR not followed by LF at the end of the chunked body",
};

/*
 * One byte c of the head's lines or the trailer section's (f->in_trailer says which), in the
 * states FS_LINE..FS_END_CR. PX_FRAME_MORE: go on with the next byte; PX_FRAME_HEAD_END or
 * PX_FRAME_MSG_END: c was the last byte of the head or of the message; PX_FRAME_BAD: c is
 * refused and *why says why.
 */
static enum px_frame_result line_byte(struct px_frame *f, uint8_t c, const char **why)
{
    const struct line_reasons *r = f->in_trailer ? &trailer_reasons : &head_reasons;
    const char *reason = NULL;
    switch (f->state) {
    case FS_LINE_START:
        if (c == '\r')
            f->state = FS_END_CR;
        else if (c == '\n')
            reason = r->bare_lf;
        else if (is_ws(c))
            reason = r->fold;
        else if (c == ':')
            reason = r->empty_name;
        else if (is_bad_line_byte(c))
            reason = r->control;
        else
            f->state = FS_LINE;
        break;
    case FS_LINE:
        if (c == '\r')
            f->state = FS_LINE_CR;
        else if (c == '\n')
            reason = r->bare_lf;
        else if (is_bad_line_byte(c))
            reason = r->control;
        break;
    case FS_LINE_CR:
        if (c != '\n')
            reason = r->no_lf;
        f->state = FS_LINE_START;
        break;
    case FS_END_CR:
    default:
        if (c != '\n') {
            reason = r->end_no_lf;
            break;
        }
        f->state = f->in_trailer ? FS_MSG_DONE : FS_HEAD_DONE;
        return f->in_trailer ? PX_FRAME_MSG_END : PX_FRAME_HEAD_END;
    }
    if (reason == NULL)
        return PX_FRAME_MORE;
    *why = reason;
    return PX_FRAME_BAD;
}

static bool in_chunk_ext(const struct px_frame *f)
{
    return f->state >= FS_EXT_BWS && f->state <= FS_EXT_QEND;
}

/*
 * Chunk extensions, from the first byte after the chunk size up to the line's CR (RFC 9112
 * 7.1.1, RFC 9110 5.6):
 *   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   chunk-ext-name = token
 *   chunk-ext-val  = token / quoted-string
 * So whitespace may surround ';' and '=' but cannot end the line ("5 \r\n" is refused), and an
 * extension may follow one with a value. Checks p[0..n) and returns PX_FRAME_SKIP with *used
 * the extension bytes before the CR (or all n), or PX_FRAME_BAD.
 */
static enum px_frame_result scan_chunk_ext(struct px_frame *f, const uint8_t *p, size_t n,
                                           size_t *used, const char **why)
{
    size_t i = 0;
    for (; i < n; i++) {
        uint8_t c = p[i];
        bool can_end =
            f->state == FS_EXT_NAME || f->state == FS_EXT_TOKEN || f->state == FS_EXT_QEND;
        if (c == '\r' && can_end) {
            f->state = FS_EXT_END;
            break;
        }
        if (++f->ext_bytes > PX_FRAME_MAX_CHUNK_EXT_BYTES)
            return bad(used, why, i, "chunk extensions too long");
        switch (f->state) {
        case FS_EXT_BWS:
            if (c == ';')
                f->state = FS_EXT_NAME0;
            else if (!is_ws(c))
                return bad(used, why, i, "whitespace not followed by ';' in a chunk-size line");
            break;
        case FS_EXT_NAME0:
            if (is_tchar(c))
                f->state = FS_EXT_NAME;
            else if (!is_ws(c))
                return bad(used, why, i, "empty or invalid chunk extension name");
            break;
        case FS_EXT_NAME:
            if (c == '=')
                f->state = FS_EXT_VALUE0;
            else if (c == ';')
                f->state = FS_EXT_NAME0;
            else if (is_ws(c))
                f->state = FS_EXT_NWS;
            else if (!is_tchar(c))
                return bad(used, why, i, "invalid character in a chunk extension name");
            break;
        case FS_EXT_NWS:
            if (c == '=')
                f->state = FS_EXT_VALUE0;
            else if (c == ';')
                f->state = FS_EXT_NAME0;
            else if (!is_ws(c))
                return bad(used, why, i, "invalid character after a chunk extension name");
            break;
        case FS_EXT_VALUE0:
            if (c == '"')
                f->state = FS_EXT_QUOTED;
            else if (is_tchar(c))
                f->state = FS_EXT_TOKEN;
            else if (!is_ws(c))
                return bad(used, why, i, "empty or invalid chunk extension value");
            break;
        case FS_EXT_TOKEN:
        case FS_EXT_QEND:
            if (c == ';')
                f->state = FS_EXT_NAME0;
            else if (is_ws(c))
                f->state = FS_EXT_BWS;
            else if (f->state == FS_EXT_QEND)
                return bad(used, why, i, "invalid character after a quoted chunk extension value");
            else if (!is_tchar(c))
                return bad(used, why, i, "invalid character in a chunk extension value");
            break;
        case FS_EXT_QUOTED:
            if (c == '"')
                f->state = FS_EXT_QEND;
            else if (c == '\\')
                f->state = FS_EXT_QESC;
            else if (!is_qdtext(c))
                return bad(used, why, i, "invalid character in a quoted chunk extension value");
            break;
        case FS_EXT_QESC:
        default:
            if (!is_qpair_char(c))
                return bad(used, why, i, "invalid escaped character in a chunk extension value");
            f->state = FS_EXT_QUOTED;
            break;
        }
    }
    *used = i;
    return PX_FRAME_SKIP;
}

enum px_frame_result px_frame_scan(struct px_frame *f, const uint8_t *p, size_t n, size_t *used,
                                   const char **why)
{
    size_t i = 0;
    *why = NULL;
    if (in_chunk_ext(f)) {
        enum px_frame_result r = scan_chunk_ext(f, p, n, used, why);
        /* Nothing to drop when the extensions ended with the previous call: go on at the CR. */
        if (r != PX_FRAME_SKIP || *used > 0)
            return r;
    }
    while (i < n) {
        uint8_t c = p[i];
        switch (f->state) {
        case FS_START:
            if (c == '\r')
                f->state = FS_START_CR;
            else if (c == '\n')
                return bad(used, why, i, "bare LF before the request line");
            else if (is_bad_line_byte(c) || c == ' ')
                return bad(used, why, i, "control byte or space before the request line");
            else
                f->state = FS_LINE;
            break;
        case FS_START_CR:
            if (c != '\n')
                return bad(used, why, i, "CR not followed by LF");
            f->state = FS_START;
            break;
        case FS_LINE:
        case FS_LINE_CR:
        case FS_LINE_START:
        case FS_END_CR: {
            enum px_frame_result r = line_byte(f, c, why);
            if (r == PX_FRAME_MORE)
                break;
            *used = r == PX_FRAME_BAD ? i : i + 1;
            return r;
        }
        case FS_HEAD_DONE:
            /* The parser did not finish the head where the head ends. */
            return bad(used, why, i, "request head end not agreed by the parser");
        case FS_CL_BODY:
        case FS_DATA: {
            uint64_t take = n - i;
            if (take > f->remaining)
                take = f->remaining;
            f->remaining -= take;
            i += (size_t)take;
            if (f->remaining == 0) {
                if (f->state == FS_DATA) {
                    f->state = FS_DATA_CR;
                } else {
                    f->state = FS_MSG_DONE;
                    *used = i;
                    return PX_FRAME_MSG_END;
                }
            }
            continue; /* i already advanced */
        }
        case FS_CHUNK_SIZE: {
            int h = sig_hex_digit(c);
            if (h >= 0) {
                if (f->chunk_size > (UINT64_MAX >> 4))
                    return bad(used, why, i, "chunk size overflow");
                f->chunk_size = (f->chunk_size << 4) | (uint64_t)h;
                f->hex_digits++;
            } else if (f->hex_digits == 0) {
                return bad(used, why, i, "invalid chunk size");
            } else if (c == ';' || is_ws(c)) {
                /* Extensions start: the parser gets the size digits, then the extensions are
                 * checked and dropped in calls of their own. */
                f->state = FS_EXT_BWS;
                f->ext_bytes = 0;
                if (i > 0) {
                    *used = i;
                    return PX_FRAME_MORE;
                }
                return scan_chunk_ext(f, p, n, used, why);
            } else if (c == '\r') {
                f->state = FS_SIZE_CR;
            } else {
                return bad(used, why, i, "invalid character in chunk size");
            }
            break;
        }
        case FS_EXT_END:
            /* scan_chunk_ext stopped at this byte, the CR ending the line. */
            f->state = FS_SIZE_CR;
            break;
        case FS_SIZE_CR:
            if (c != '\n')
                return bad(used, why, i, "CR not followed by LF after the chunk size");
            if (f->chunk_size == 0) {
                f->state = FS_LINE_START;
                f->in_trailer = true;
            } else {
                f->state = FS_DATA;
                f->remaining = f->chunk_size;
            }
            break;
        case FS_DATA_CR:
            if (c != '\r')
                return bad(used, why, i, "chunk data not followed by CRLF");
            f->state = FS_DATA_LF;
            break;
        case FS_DATA_LF:
            if (c != '\n')
                return bad(used, why, i, "chunk data not followed by CRLF");
            f->state = FS_CHUNK_SIZE;
            f->chunk_size = 0;
            f->hex_digits = 0;
            break;
        case FS_MSG_DONE:
        default:
            /* The parser did not end the message where its framing ends. */
            return bad(used, why, i, "message end not agreed by the parser");
        }
        i++;
    }
    *used = n;
    return PX_FRAME_MORE;
}
