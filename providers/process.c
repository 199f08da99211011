/* process.c: credential_process's pure part: the command line's words and the program's
 * answer (the contract is in process.h). Pure: proxy/px_creds.c runs the program. */
#include "process.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "sig_sha256.h"
#include "sts.h"

/* ---- the command line ---- */

/* Python's shlex.whitespace: only these four (a vertical tab or form feed is a word byte). */
static bool is_split_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * botocore runs the program with compat_shell_split(line), which is shlex.split(line) outside
 * Windows (posix=True, comments=False, whitespace_split=True). Its rules, followed here:
 *   - outside quotes, a backslash takes the next byte literally (a newline too);
 *   - '...' is literal;
 *   - in "...", a backslash escapes only '"' and '\' (shlex's escapedquotes is '"' and it
 *     keeps the backslash before any other byte: "\$" is two bytes, unlike a POSIX shell);
 *   - quoted and unquoted parts next to each other make one word, and quotes alone make a
 *     word even when empty ('' is the empty word).
 */
enum cred_err proc_split(struct sig_slice line, struct proc_argv *out, char *msg, size_t msg_len)
{
    out->argc = 0;
    out->argv[0] = NULL;
    if (msg != NULL && msg_len > 0)
        msg[0] = '\0';
    if (line.len > PROC_MAX_LINE_BYTES)
        return cred_fail(msg, msg_len, CRED_ERR_TOO_LONG, "the command line is over %u bytes",
                         PROC_MAX_LINE_BYTES);
    for (size_t i = 0; i < line.len; i++) {
        if (line.ptr[i] == '\0')
            return cred_fail(msg, msg_len, CRED_ERR_INVALID,
                             "the command line contains a NUL byte");
    }

    enum { OUTSIDE, SINGLE, DOUBLE } state = OUTSIDE;
    bool in_word = false;
    size_t n = 0; /* bytes used in out->mem: never over line.len + 1 (one separator per NUL) */
    enum cred_err err = CRED_OK;
    for (size_t i = 0; i < line.len && err == CRED_OK; i++) {
        uint8_t c = line.ptr[i];
        if (state == SINGLE) {
            if (c == '\'')
                state = OUTSIDE;
            else
                out->mem[n++] = (char)c;
            continue;
        }
        if (state == DOUBLE) {
            if (c == '"') {
                state = OUTSIDE;
            } else if (c == '\\' && i + 1 < line.len &&
                       (line.ptr[i + 1] == '"' || line.ptr[i + 1] == '\\')) {
                out->mem[n++] = (char)line.ptr[++i];
            } else if (c == '\\' && i + 1 == line.len) {
                err = cred_fail(msg, msg_len, CRED_ERR_INVALID,
                                "the command line has an unterminated double quote");
            } else {
                out->mem[n++] = (char)c;
            }
            continue;
        }
        if (is_split_space(c)) {
            if (in_word) {
                out->mem[n++] = '\0';
                in_word = false;
            }
            continue;
        }
        if (!in_word) {
            if (out->argc == PROC_MAX_ARGS) {
                err = cred_fail(msg, msg_len, CRED_ERR_TOO_LONG,
                                "the command line has over %u words", PROC_MAX_ARGS);
                break;
            }
            out->argv[out->argc++] = &out->mem[n];
            in_word = true;
        }
        if (c == '\'') {
            state = SINGLE;
        } else if (c == '"') {
            state = DOUBLE;
        } else if (c == '\\') {
            if (i + 1 == line.len)
                err = cred_fail(msg, msg_len, CRED_ERR_INVALID,
                                "the command line ends with a backslash");
            else
                out->mem[n++] = (char)line.ptr[++i];
        } else {
            out->mem[n++] = (char)c;
        }
    }
    if (err == CRED_OK && state != OUTSIDE)
        err = cred_fail(msg, msg_len, CRED_ERR_INVALID,
                        "the command line has an unterminated %s quote",
                        state == SINGLE ? "single" : "double");
    if (err == CRED_OK && out->argc == 0)
        err = cred_fail(msg, msg_len, CRED_ERR_INVALID, "the command line is empty");
    if (err != CRED_OK) {
        /* The words may hold a secret passed as an argument. */
        OPENSSL_cleanse(out->mem, n);
        out->argc = 0;
        out->argv[0] = NULL;
        return err;
    }
    if (in_word)
        out->mem[n++] = '\0';
    out->argv[out->argc] = NULL;
    return CRED_OK;
}

/* ---- the program's output: strict JSON first ---- */

/*
 * libyaml reads YAML 1.1, of which JSON is nearly a subset, but it also takes what JSON refuses
 * (comments, single quotes, bare words, trailing commas, "\x41" escapes, block style, several
 * documents) and botocore reads the output with json.loads. So the bytes are first checked
 * against RFC 8259's grammar (iteratively, nesting bounded), then libyaml reads the values.
 */
#define PROC_MAX_DEPTH 64u

struct json_cur {
    const uint8_t *p;
    size_t len, i;
};

static void json_ws(struct json_cur *c)
{
    /* RFC 8259 section 2: ws = space, tab, line feed, carriage return. */
    while (c->i < c->len &&
           (c->p[c->i] == ' ' || c->p[c->i] == '\t' || c->p[c->i] == '\n' || c->p[c->i] == '\r'))
        c->i++;
}

static bool json_digits(struct json_cur *c)
{
    size_t start = c->i;
    while (c->i < c->len && c->p[c->i] >= '0' && c->p[c->i] <= '9')
        c->i++;
    return c->i > start;
}

/* RFC 8259 section 6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number(struct json_cur *c)
{
    if (c->i < c->len && c->p[c->i] == '-')
        c->i++;
    if (c->i < c->len && c->p[c->i] == '0')
        c->i++;
    else if (!json_digits(c))
        return false;
    if (c->i < c->len && c->p[c->i] == '.') {
        c->i++;
        if (!json_digits(c))
            return false;
    }
    if (c->i < c->len && (c->p[c->i] == 'e' || c->p[c->i] == 'E')) {
        c->i++;
        if (c->i < c->len && (c->p[c->i] == '+' || c->p[c->i] == '-'))
            c->i++;
        if (!json_digits(c))
            return false;
    }
    return true;
}

/* RFC 8259 section 7: no raw control characters, only the eight escapes and \uXXXX. */
static bool json_string(struct json_cur *c)
{
    if (c->i >= c->len || c->p[c->i] != '"')
        return false;
    c->i++;
    while (c->i < c->len) {
        uint8_t ch = c->p[c->i++];
        if (ch == '"')
            return true;
        if (ch < 0x20)
            return false;
        if (ch != '\\')
            continue;
        if (c->i >= c->len)
            return false;
        ch = c->p[c->i++];
        if (ch == 'u') {
            for (int k = 0; k < 4; k++) {
                if (c->i >= c->len || sig_hex_digit(c->p[c->i++]) < 0)
                    return false;
            }
        } else if (ch != '"' && ch != '\\' && ch != '/' && ch != 'b' && ch != 'f' && ch != 'n' &&
                   ch != 'r' && ch != 't') {
            return false;
        }
    }
    return false;
}

static bool json_literal(struct json_cur *c, struct sig_slice word)
{
    if (c->len - c->i < word.len || !sig_slice_eq((struct sig_slice){c->p + c->i, word.len}, word))
        return false;
    c->i += word.len;
    return true;
}

/* A scalar value at the cursor (string, number, true, false, null). */
static bool json_scalar(struct json_cur *c)
{
    switch (c->p[c->i]) {
    case '"':
        return json_string(c);
    case 't':
        return json_literal(c, SIG_SLICE_LIT("true"));
    case 'f':
        return json_literal(c, SIG_SLICE_LIT("false"));
    case 'n':
        return json_literal(c, SIG_SLICE_LIT("null"));
    default:
        return json_number(c);
    }
}

/*
 * The whole output is one JSON object. A stack of open containers (true: object) replaces
 * recursion; after each value the cursor expects ',' or the container's closing bracket.
 */
static bool json_valid_object(const uint8_t *p, size_t len)
{
    struct json_cur c = {p, len, 0};
    bool is_object[PROC_MAX_DEPTH];
    unsigned depth = 0;
    json_ws(&c);
    if (c.i >= c.len || c.p[c.i] != '{')
        return false;
    for (;;) {
        /* At the start of a value. */
        json_ws(&c);
        if (c.i >= c.len)
            return false;
        uint8_t ch = c.p[c.i];
        if (ch == '{' || ch == '[') {
            if (depth == PROC_MAX_DEPTH)
                return false;
            is_object[depth++] = ch == '{';
            c.i++;
            json_ws(&c);
            if (c.i < c.len && c.p[c.i] == (ch == '{' ? '}' : ']')) {
                c.i++;
                depth--;
            } else if (ch == '{') {
                if (!json_string(&c))
                    return false;
                json_ws(&c);
                if (c.i >= c.len || c.p[c.i++] != ':')
                    return false;
                continue; /* to the member's value */
            } else {
                continue; /* to the first element */
            }
        } else if (!json_scalar(&c)) {
            return false;
        }
        /* After a value: the next member or element, or closing brackets. */
        for (;;) {
            json_ws(&c);
            if (depth == 0)
                return c.i == c.len;
            if (c.i >= c.len)
                return false;
            ch = c.p[c.i++];
            if (ch == (is_object[depth - 1] ? '}' : ']')) {
                depth--;
                continue;
            }
            if (ch != ',')
                return false;
            if (is_object[depth - 1]) {
                json_ws(&c);
                if (!json_string(&c))
                    return false;
                json_ws(&c);
                if (c.i >= c.len || c.p[c.i++] != ':')
                    return false;
            }
            break;
        }
    }
}

/*
 * Valid JSON without its white space outside strings, into out (len bytes at most). YAML
 * reads JSON's white space differently: a simple key cannot span lines ("a"\n: 1), and a tab
 * that starts a line is indentation, an error. Compact JSON has neither.
 */
static size_t json_compact(const uint8_t *p, size_t len, uint8_t *out)
{
    size_t n = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = p[i];
        if (in_string) {
            out[n++] = ch;
            if (ch == '\\')
                out[n++] = p[++i]; /* valid JSON: an escape is never the last byte */
            else if (ch == '"')
                in_string = false;
        } else if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            out[n++] = ch;
            in_string = ch == '"';
        }
    }
    return n;
}

/* ---- the program's output: the values, through libyaml ---- */

enum proc_field { F_VERSION, F_ACCESS_KEY_ID, F_SECRET, F_TOKEN, F_EXPIRATION, F_COUNT, F_OTHER };

static const char *const field_names[F_COUNT] = {"Version", "AccessKeyId", "SecretAccessKey",
                                                 "SessionToken", "Expiration"};

/* Keys at the top level, for the duplicate check (their hashes: keys are not secret, but
 * hashing keeps the memory bounded whatever their length). */
#define PROC_MAX_KEYS 64u

struct parse {
    uint8_t *compact; /* the output without JSON's white space (owned; holds the secret) */
    size_t compact_len;
    yaml_parser_t parser;
    bool parser_ready;
    yaml_event_t event;         /* the event being looked at */
    bool event_ready;           /* `event` holds memory */
    yaml_event_t kept[F_COUNT]; /* the value of each known field, until the end */
    bool have[F_COUNT];
    uint8_t key_hash[PROC_MAX_KEYS][SIG_SHA256_LEN];
    unsigned keys;
};

static void wipe_event(yaml_event_t *ev)
{
    if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.value != NULL)
        OPENSSL_cleanse(ev->data.scalar.value, ev->data.scalar.length);
    yaml_event_delete(ev);
}

/*
 * libyaml has no allocator hooks. What it still holds of the output when we are done: the
 * raw input buffer and the decoded working buffer (fixed blocks, reachable from the parser),
 * and scalar tokens not yet turned into events (after an error). These are wiped here; the
 * blocks it frees while growing a scalar (yaml_string_extend's realloc) are not reachable.
 */
static void parse_cleanup(struct parse *ps)
{
    if (ps->event_ready) {
        wipe_event(&ps->event);
        ps->event_ready = false;
    }
    for (int f = 0; f < F_COUNT; f++) {
        if (ps->have[f])
            wipe_event(&ps->kept[f]);
        ps->have[f] = false;
    }
    if (ps->compact != NULL) {
        OPENSSL_cleanse(ps->compact, ps->compact_len);
        free(ps->compact);
        ps->compact = NULL;
    }
    if (!ps->parser_ready)
        return;
    yaml_parser_t *p = &ps->parser;
    for (yaml_token_t *t = p->tokens.head; t != NULL && t != p->tokens.tail; t++) {
        if (t->type == YAML_SCALAR_TOKEN && t->data.scalar.value != NULL)
            OPENSSL_cleanse(t->data.scalar.value, t->data.scalar.length);
    }
    if (p->raw_buffer.start != NULL)
        OPENSSL_cleanse(p->raw_buffer.start, (size_t)(p->raw_buffer.end - p->raw_buffer.start));
    if (p->buffer.start != NULL)
        OPENSSL_cleanse(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
    yaml_parser_delete(p);
    ps->parser_ready = false;
}

/* The next event into ps->event (the previous one wiped and freed first). */
static bool next_event(struct parse *ps)
{
    if (ps->event_ready) {
        wipe_event(&ps->event);
        ps->event_ready = false;
    }
    if (!yaml_parser_parse(&ps->parser, &ps->event))
        return false;
    ps->event_ready = true;
    return true;
}

static struct sig_slice scalar_of(const yaml_event_t *ev)
{
    return (struct sig_slice){ev->data.scalar.value, ev->data.scalar.length};
}

/* JSON has no anchors, aliases or tags; a YAML document could smuggle them in. */
static bool has_anchor_or_tag(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return ev->data.scalar.anchor != NULL || ev->data.scalar.tag != NULL;
    case YAML_MAPPING_START_EVENT:
        return ev->data.mapping_start.anchor != NULL || ev->data.mapping_start.tag != NULL;
    case YAML_SEQUENCE_START_EVENT:
        return ev->data.sequence_start.anchor != NULL || ev->data.sequence_start.tag != NULL;
    case YAML_ALIAS_EVENT:
        return true;
    default:
        return false;
    }
}

/* A value of an ignored key: skipped whole (nested objects and arrays included). */
static bool skip_value(struct parse *ps)
{
    unsigned depth = 0;
    do {
        if (depth > 0 && !next_event(ps))
            return false;
        if (has_anchor_or_tag(&ps->event))
            return false;
        switch (ps->event.type) {
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            depth++;
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
            break;
        default:
            return false;
        }
    } while (depth > 0);
    return true;
}

static bool is_string(const yaml_event_t *ev)
{
    return ev->type == YAML_SCALAR_EVENT &&
           ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
}

static bool is_null(const yaml_event_t *ev)
{
    return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           sig_slice_eq(scalar_of(ev), SIG_SLICE_LIT("null"));
}

/* The values go into HTTP headers (Authorization, X-Amz-Security-Token): visible ASCII. */
static bool is_header_safe(struct sig_slice v)
{
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < 0x21 || v.ptr[i] > 0x7e)
            return false;
    }
    return true;
}

/* Reads the top-level mapping's members into ps->kept; msg names what is wrong. */
static enum cred_err read_members(struct parse *ps, char *msg, size_t msg_len)
{
    for (;;) {
        if (!next_event(ps))
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output is not valid JSON");
        if (ps->event.type == YAML_MAPPING_END_EVENT)
            return CRED_OK;
        if (!is_string(&ps->event) || has_anchor_or_tag(&ps->event))
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER,
                             "a key of the output is not a string");
        struct sig_slice key = scalar_of(&ps->event);
        if (ps->keys == PROC_MAX_KEYS)
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output has over %u keys",
                             PROC_MAX_KEYS);
        sig_sha256(key.ptr, key.len, ps->key_hash[ps->keys]);
        for (unsigned k = 0; k < ps->keys; k++) {
            if (CRYPTO_memcmp(ps->key_hash[k], ps->key_hash[ps->keys], SIG_SHA256_LEN) == 0)
                return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER,
                                 "the output has a duplicate key");
        }
        ps->keys++;
        enum proc_field f = F_OTHER;
        for (int i = 0; i < F_COUNT; i++) {
            if (sig_slice_eq(key, sig_slice_from_cstr(field_names[i])))
                f = (enum proc_field)i;
        }
        if (!next_event(ps))
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output is not valid JSON");
        if (f == F_OTHER) {
            if (!skip_value(ps))
                return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output is not valid JSON");
            continue;
        }
        if (ps->event.type != YAML_SCALAR_EVENT || has_anchor_or_tag(&ps->event))
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "%s is not a %s", field_names[f],
                             f == F_VERSION ? "number" : "string");
        /* Kept whole until the credentials are built: no further copy of the value. */
        ps->kept[f] = ps->event;
        ps->have[f] = true;
        ps->event_ready = false;
    }
}

/* Checks the document's frame and reads its members. */
static enum cred_err read_document(struct parse *ps, char *msg, size_t msg_len)
{
    static const yaml_event_type_t opening[] = {YAML_STREAM_START_EVENT, YAML_DOCUMENT_START_EVENT,
                                                YAML_MAPPING_START_EVENT};
    for (size_t i = 0; i < sizeof(opening) / sizeof(opening[0]); i++) {
        /* libyaml checks the encoding as it fills its buffer: bad UTF-8 fails here. */
        if (!next_event(ps))
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output is not valid JSON");
        if (ps->event.type != opening[i] || has_anchor_or_tag(&ps->event))
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output is not a JSON object");
    }
    enum cred_err err = read_members(ps, msg, msg_len);
    if (err != CRED_OK)
        return err;
    if (!next_event(ps) || ps->event.type != YAML_DOCUMENT_END_EVENT || !next_event(ps) ||
        ps->event.type != YAML_STREAM_END_EVENT)
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER,
                         "the output has more than one document");
    return CRED_OK;
}

/* A required string (AccessKeyId, SecretAccessKey): present, non-empty, header-safe. */
static enum cred_err required_string(const struct parse *ps, enum proc_field f,
                                     struct sig_slice *out, char *msg, size_t msg_len)
{
    if (!ps->have[f])
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output has no %s", field_names[f]);
    if (!is_string(&ps->kept[f]))
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "%s is not a string", field_names[f]);
    *out = scalar_of(&ps->kept[f]);
    if (out->len == 0)
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "%s is empty", field_names[f]);
    if (out->len > CRED_MAX_VALUE)
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "%s is over %d bytes", field_names[f],
                         CRED_MAX_VALUE);
    if (!is_header_safe(*out))
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER,
                         "%s has a byte outside printable ASCII or a space", field_names[f]);
    return CRED_OK;
}

/*
 * An optional string (SessionToken, Expiration): absent or null gives the empty slice. A
 * present but empty SessionToken is no token too (botocore adds X-Amz-Security-Token only
 * when the token is non-empty); an empty Expiration is refused by the caller's time parse, as
 * botocore's date parser refuses it.
 */
static enum cred_err optional_string(const struct parse *ps, enum proc_field f,
                                     struct sig_slice *out, char *msg, size_t msg_len)
{
    *out = (struct sig_slice){NULL, 0};
    if (!ps->have[f] || is_null(&ps->kept[f]))
        return CRED_OK;
    if (!is_string(&ps->kept[f]))
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "%s is not a string", field_names[f]);
    *out = scalar_of(&ps->kept[f]);
    if (out->len > CRED_MAX_VALUE)
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "%s is over %d bytes", field_names[f],
                         CRED_MAX_VALUE);
    /* The token goes into a header; the time is checked by its parser. */
    if (f == F_TOKEN && !is_header_safe(*out))
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER,
                         "%s has a byte outside printable ASCII or a space", field_names[f]);
    return CRED_OK;
}

/* Builds the answer from the kept values. */
static enum cred_err make_answer(const struct parse *ps, struct proc_answer *ans, char *msg,
                                 size_t msg_len)
{
    /* botocore: parsed.get('Version') != 1 refuses a missing Version and the string "1". */
    if (!ps->have[F_VERSION])
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output has no Version");
    const yaml_event_t *v = &ps->kept[F_VERSION];
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        !sig_slice_eq(scalar_of(v), SIG_SLICE_LIT("1")))
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "Version is not the number 1");

    struct sig_slice key_id, secret, token, expiration;
    enum cred_err err;
    if ((err = required_string(ps, F_ACCESS_KEY_ID, &key_id, msg, msg_len)) != CRED_OK ||
        (err = required_string(ps, F_SECRET, &secret, msg, msg_len)) != CRED_OK ||
        (err = optional_string(ps, F_TOKEN, &token, msg, msg_len)) != CRED_OK ||
        (err = optional_string(ps, F_EXPIRATION, &expiration, msg, msg_len)) != CRED_OK)
        return err;

    int64_t expires = 0;
    bool has_expiration = ps->have[F_EXPIRATION] && !is_null(&ps->kept[F_EXPIRATION]);
    if (has_expiration) {
        if (!sts_parse_time(expiration, &expires))
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER,
                             "Expiration is not an ISO 8601 UTC time (YYYY-MM-DDTHH:MM:SSZ)");
        /* 0 stands for "never expires" in proc_answer: the epoch itself is long past anyway. */
        if (expires == 0)
            return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "Expiration is the epoch");
    }
    struct cred *c = NULL;
    if (cred_new(key_id, secret, token, &c) != CRED_OK)
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the credentials are not usable");
    ans->creds = c;
    ans->expiration = expires;
    return CRED_OK;
}

enum cred_err proc_parse_output(const uint8_t *out, size_t len, struct proc_answer *ans, char *msg,
                                size_t msg_len)
{
    *ans = (struct proc_answer){0};
    if (msg != NULL && msg_len > 0)
        msg[0] = '\0';
    if (len > PROC_MAX_OUTPUT_BYTES)
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output is over %u bytes",
                         PROC_MAX_OUTPUT_BYTES);
    if (len == 0)
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output is empty");
    if (!json_valid_object(out, len))
        return cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "the output is not one JSON object");

    struct parse ps = {0};
    enum cred_err err;
    /* A copy of the output: wiped and freed in parse_cleanup. */
    ps.compact = malloc(len);
    if (ps.compact == NULL) {
        err = cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "out of memory reading the output");
        goto out;
    }
    ps.compact_len = json_compact(out, len, ps.compact);
    if (!yaml_parser_initialize(&ps.parser)) {
        err = cred_fail(msg, msg_len, CRED_ERR_BAD_ANSWER, "out of memory reading the output");
        goto out;
    }
    ps.parser_ready = true;
    /* JSON is UTF-8 (RFC 8259 section 8.1); no guessing from a byte order mark. */
    yaml_parser_set_encoding(&ps.parser, YAML_UTF8_ENCODING);
    yaml_parser_set_input_string(&ps.parser, ps.compact, ps.compact_len);
    err = read_document(&ps, msg, msg_len);
    if (err == CRED_OK)
        err = make_answer(&ps, ans, msg, msg_len);
out:
    parse_cleanup(&ps);
    return err;
}
