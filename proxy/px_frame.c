/*
 * px_frame.c: the strict framing check (see px_frame.h for why).
 */
#include "px_frame.h"

#include <string.h>

enum {
    FS_START = 0,   /* before the request line; empty lines (CRLF) are skipped, RFC 9112 2.2 */
    FS_START_CR,    /* CR of an empty line before the request line */
    FS_LINE,        /* inside the request line or a field line */
    FS_LINE_CR,     /* a line's CR: LF must follow */
    FS_LINE_START,  /* at the start of a field line, or of the empty line ending the head */
    FS_HEAD_END_CR, /* CR of the empty line ending the head */
    FS_HEAD_DONE,   /* head checked; waiting for px_frame_body */
    FS_CL_BODY,     /* Content-Length body: `remaining` bytes */
    FS_CHUNK_SIZE,  /* chunk-size hex digits */
    FS_EXT_NAME,    /* after ';': a chunk-ext-name (token) */
    FS_EXT_VALUE,   /* after '=': a token or a quoted string */
    FS_EXT_TOKEN,   /* inside a token value */
    FS_EXT_QUOTED,  /* inside a quoted-string value */
    FS_EXT_QESC,    /* after a backslash inside a quoted string */
    FS_EXT_QEND,    /* after the closing quote */
    FS_SIZE_CR,     /* CR ending the chunk-size line: LF must follow */
    FS_DATA,        /* chunk data: `remaining` bytes */
    FS_DATA_CR,     /* the CR that must follow chunk data */
    FS_DATA_LF,     /* the LF that must follow it */
    FS_TR_START,    /* start of a trailer field line or of the final empty line */
    FS_TR_LINE,     /* inside a trailer field line */
    FS_TR_CR,       /* a trailer line's CR */
    FS_TR_END_CR,   /* CR of the final empty line */
    FS_MSG_DONE,    /* message checked; waiting for px_frame_reset */
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

/* Bytes a request line or field line may not contain: controls other than HTAB, and DEL
 * (RFC 9110 5.5 field-vchar; RFC 9112 3 request-line). CR and LF are handled as line ends. */
static bool is_bad_line_byte(uint8_t c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Where and why the check failed. */
static enum px_frame_result bad(size_t *used, const char **why, size_t at, const char *reason)
{
    *used = at;
    *why = reason;
    return PX_FRAME_BAD;
}

enum px_frame_result px_frame_scan(struct px_frame *f, const uint8_t *p, size_t n, size_t *used,
                                   const char **why)
{
    size_t i = 0;
    *why = NULL;
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
            if (c == '\r')
                f->state = FS_LINE_CR;
            else if (c == '\n')
                return bad(used, why, i, "bare LF in the request head (lines end in CRLF)");
            else if (is_bad_line_byte(c))
                return bad(used, why, i, "control byte in the request head");
            break;
        case FS_LINE_CR:
            if (c != '\n')
                return bad(used, why, i, "CR not followed by LF in the request head");
            f->state = FS_LINE_START;
            break;
        case FS_LINE_START:
            if (c == '\r')
                f->state = FS_HEAD_END_CR;
            else if (c == '\n')
                return bad(used, why, i, "bare LF in the request head (lines end in CRLF)");
            else if (c == ' ' || c == '\t')
                return bad(used, why, i,
                           "obsolete line folding or a field line starting with whitespace");
            else if (c == ':')
                return bad(used, why, i, "empty header field name");
            else if (is_bad_line_byte(c))
                return bad(used, why, i, "control byte in the request head");
            else
                f->state = FS_LINE;
            break;
        case FS_HEAD_END_CR:
            if (c != '\n')
                return bad(used, why, i, "CR not followed by LF at the end of the request head");
            f->state = FS_HEAD_DONE;
            *used = i + 1;
            return PX_FRAME_HEAD_END;
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
            int h = hex_value(c);
            if (h >= 0) {
                if (f->chunk_size > (UINT64_MAX >> 4))
                    return bad(used, why, i, "chunk size overflow");
                f->chunk_size = (f->chunk_size << 4) | (uint64_t)h;
                f->hex_digits++;
            } else if (f->hex_digits == 0) {
                return bad(used, why, i, "invalid chunk size");
            } else if (c == ';') {
                f->state = FS_EXT_NAME;
                f->tok_len = 0;
            } else if (c == '\r') {
                f->state = FS_SIZE_CR;
            } else {
                return bad(used, why, i, "invalid character in chunk size");
            }
            break;
        }
        case FS_EXT_NAME:
            if (is_tchar(c)) {
                f->tok_len++;
            } else if (f->tok_len == 0) {
                return bad(used, why, i, "empty or invalid chunk extension name");
            } else if (c == '=') {
                f->state = FS_EXT_VALUE;
            } else if (c == ';') {
                f->tok_len = 0;
            } else if (c == '\r') {
                f->state = FS_SIZE_CR;
            } else {
                return bad(used, why, i, "invalid character in a chunk extension name");
            }
            break;
        case FS_EXT_VALUE:
            if (c == '"') {
                f->state = FS_EXT_QUOTED;
            } else if (is_tchar(c)) {
                f->state = FS_EXT_TOKEN;
            } else {
                return bad(used, why, i, "empty or invalid chunk extension value");
            }
            break;
        case FS_EXT_TOKEN:
            if (is_tchar(c))
                break;
            if (c == ';') {
                f->state = FS_EXT_NAME;
                f->tok_len = 0;
            } else if (c == '\r') {
                f->state = FS_SIZE_CR;
            } else {
                return bad(used, why, i, "invalid character in a chunk extension value");
            }
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
            if (c != '\t' && c != ' ' && !(c >= 0x21 && c <= 0x7e) && c < 0x80)
                return bad(used, why, i, "invalid escaped character in a chunk extension value");
            f->state = FS_EXT_QUOTED;
            break;
        case FS_EXT_QEND:
            if (c == ';') {
                f->state = FS_EXT_NAME;
                f->tok_len = 0;
            } else if (c == '\r') {
                f->state = FS_SIZE_CR;
            } else {
                return bad(used, why, i, "invalid character after a quoted chunk extension value");
            }
            break;
        case FS_SIZE_CR:
            if (c != '\n')
                return bad(used, why, i, "CR not followed by LF after the chunk size");
            if (f->chunk_size == 0) {
                f->state = FS_TR_START;
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
        case FS_TR_START:
            if (c == '\r')
                f->state = FS_TR_END_CR;
            else if (c == '\n')
                return bad(used, why, i, "bare LF in the trailer section (lines end in CRLF)");
            else if (c == ' ' || c == '\t')
                return bad(used, why, i, "obsolete line folding in the trailer section");
            else if (c == ':')
                return bad(used, why, i, "empty trailer field name");
            else if (is_bad_line_byte(c))
                return bad(used, why, i, "control byte in the trailer section");
            else
                f->state = FS_TR_LINE;
            break;
        case FS_TR_LINE:
            if (c == '\r')
                f->state = FS_TR_CR;
            else if (c == '\n')
                return bad(used, why, i, "bare LF in the trailer section (lines end in CRLF)");
            else if (is_bad_line_byte(c))
                return bad(used, why, i, "control byte in the trailer section");
            break;
        case FS_TR_CR:
            if (c != '\n')
                return bad(used, why, i, "CR not followed by LF in the trailer section");
            f->state = FS_TR_START;
            break;
        case FS_TR_END_CR:
            if (c != '\n')
                return bad(used, why, i, "CR not followed by LF at the end of the chunked body");
            f->state = FS_MSG_DONE;
            *used = i + 1;
            return PX_FRAME_MSG_END;
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
