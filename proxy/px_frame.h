/*
 * px_frame.h: a strict check of a request's framing, run over the client's bytes before
 * llhttp sees them.
 *
 * Why: Debian's llhttp (8.1.0) is lenient where a proxy must not be. It does not look at the
 * two bytes after chunk data ("5\r\nhelloXX0\r\n\r\n" parses), takes any byte after a CR that
 * ends a chunk-size line, a chunk extension, the last chunk, the trailer section or the head
 * ("5\rXhello"), and takes a bare LF after the request line and as the empty line ending the
 * head or the trailers. Peers that read those bytes differently see a different message
 * boundary: request smuggling (RFC 9112 11.2). llhttp 9.1 added checks for some of these; until
 * then this scanner enforces RFC 9112 itself: every line ends in CRLF (2.2: we do not use the
 * MAY that allows a bare LF), chunk data is followed by CRLF (7.1), chunk extensions follow
 * 7.1.1, and head and trailer lines carry no control bytes, no empty field name and no leading
 * whitespace (5.1, 5.2 obs-fold).
 *
 * Chunk extensions are the one place where llhttp 8.1 is stricter than the RFC: it refuses
 * whitespace (BWS) around ';' and '=', a second extension after one with a token value
 * ("5;a=b;c=d") and any quoted-pair ("5;n=\"q\\\"x\""). sigv4d de-chunks and never forwards
 * extensions, so the scanner checks them completely and the caller drops them
 * (PX_FRAME_SKIP): llhttp only ever sees "5\r\n". Otherwise the scanner only checks and llhttp
 * parses. It stops at the end of the head and at the end of the message so that the caller
 * feeds llhttp exactly the checked bytes, and can see where the two disagree about a boundary
 * (also refused).
 *
 * Pure (no I/O, no allocation); one per client connection.
 */
#ifndef PX_FRAME_H
#define PX_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The extensions of one chunk-size line, from the first BWS or ';' to the CR, are at most this
 * long: they are read and dropped, and without a bound a client could keep one line going
 * forever (llhttp 9.1 added a limit for the same reason). AWS's own chunk-signature extension
 * is 81 bytes. */
#define PX_FRAME_MAX_CHUNK_EXT_BYTES 4096

enum px_frame_result {
    PX_FRAME_MORE = 0, /* the first *used bytes are checked: give them to the parser, then call
                          again with the rest (*used < n only when chunk extensions follow) */
    PX_FRAME_SKIP,     /* the first *used bytes are chunk extensions (or the whitespace before
                          them), checked: drop them without giving them to the parser */
    PX_FRAME_HEAD_END, /* stopped after the head's last byte: call px_frame_body next */
    PX_FRAME_MSG_END,  /* stopped after the message's last byte: px_frame_reset next */
    PX_FRAME_BAD,      /* framing error at byte *used; *why says which */
};

struct px_frame {
    int state;          /* internal (enum in px_frame.c); 0 = before a message */
    uint64_t remaining; /* body or chunk-data bytes still to pass */
    uint64_t chunk_size;
    unsigned hex_digits;
    unsigned ext_bytes; /* length so far of the current line's chunk extensions */
    bool in_trailer;    /* field lines are the trailer section's, not the head's */
};

/* Ready for a new message (also the state of a zeroed struct). */
void px_frame_reset(struct px_frame *f);

/* After PX_FRAME_HEAD_END, once the head has been parsed: how the body is framed. A request
 * with neither (chunked false, content_length 0) has no body (RFC 9112 6.3). */
void px_frame_body(struct px_frame *f, bool chunked, uint64_t content_length);

/* True between PX_FRAME_HEAD_END and px_frame_body. */
bool px_frame_wants_body(const struct px_frame *f);
/* True once the whole message has been checked (until px_frame_reset). */
bool px_frame_done(const struct px_frame *f);

/*
 * Checks up to n bytes of p (the next bytes of the client's stream). *used is how many were
 * checked: up to n for PX_FRAME_MORE and PX_FRAME_SKIP (never 0 when n > 0), up to and
 * including the last byte of the head or the message for PX_FRAME_HEAD_END / PX_FRAME_MSG_END,
 * the offending byte's offset for PX_FRAME_BAD with *why a fixed string for the reason. The
 * bytes of one result are either all for the parser or all dropped (SKIP). Synchronous; p is
 * only read during the call.
 */
enum px_frame_result px_frame_scan(struct px_frame *f, const uint8_t *p, size_t n, size_t *used,
                                   const char **why);

#endif
