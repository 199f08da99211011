/* sts.c: STS AssumeRole over the Query API: the signed request and the parsed answer (the
 * contract is in sts.h). Pure: the caller sends the bytes and supplies the time. */
#include "sts.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlmemory.h>
#include <openssl/crypto.h>

void (*sts_free_observer)(const void *ptr, size_t len);

/* ---- libxml2 allocators that wipe ---- */

/*
 * The parsed answer holds the new secret and token in libxml2's own blocks (the input copy,
 * text nodes, the dictionary), which xmlFreeDoc releases without clearing. These wrappers
 * clear every block over its whole usable size before it goes back to the C library.
 */
static void wipe_free(void *p)
{
    if (p == NULL)
        return;
    size_t n = malloc_usable_size(p);
    if (sts_free_observer != NULL)
        sts_free_observer(p, n);
    OPENSSL_cleanse(p, n);
    free(p);
}

static void *wipe_malloc(size_t n)
{
    return malloc(n != 0 ? n : 1);
}

/* realloc may move the block and free the old one without clearing it: always move by hand. */
static void *wipe_realloc(void *p, size_t n)
{
    if (p == NULL)
        return wipe_malloc(n);
    void *q = wipe_malloc(n);
    if (q == NULL)
        return NULL; /* libxml2 handles a failed realloc; the old block stays valid */
    size_t old = malloc_usable_size(p);
    struct sig_buf copy;
    sig_buf_init(&copy, q, n);
    if (sig_buf_append(&copy, p, old < n ? old : n) != SIG_OK) {
        free(q); /* cannot happen: at most n bytes go into n */
        return NULL;
    }
    wipe_free(p);
    return q;
}

static char *wipe_strdup(const char *s)
{
    struct sig_slice src = sig_slice_from_cstr(s);
    char *q = wipe_malloc(src.len + 1);
    if (q == NULL)
        return NULL;
    struct sig_buf copy;
    sig_buf_init(&copy, q, src.len + 1);
    if (sig_buf_append_slice(&copy, src) != SIG_OK) {
        free(q); /* cannot happen: the capacity is exact */
        return NULL;
    }
    q[src.len] = '\0';
    return q;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_libxml2(void)
{
    /* Before any parse, so that every block holding answer bytes is wiped. The wrappers use
     * the C library's heap, so a block libxml2 took before this point is still freed
     * correctly (and wiped too). */
    if (xmlMemSetup(wipe_free, wipe_malloc, wipe_realloc, wipe_strdup) != 0)
        abort(); /* cannot fail with non-NULL functions */
    xmlInitParser();
}

void sts_init(void)
{
    pthread_once(&init_once, init_libxml2);
}

/* ---- the request ---- */

static bool is_alnum(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* True if every byte of s is alphanumeric or one of `extra`. */
static bool all_of(struct sig_slice s, const char *extra)
{
    struct sig_slice more = sig_slice_from_cstr(extra);
    for (size_t i = 0; i < s.len; i++) {
        if (is_alnum(s.ptr[i]))
            continue;
        bool found = false;
        for (size_t j = 0; j < more.len && !found; j++)
            found = s.ptr[i] == more.ptr[j];
        if (!found)
            return false;
    }
    return true;
}

/* Takes `prefix` off the front of *s; false (and *s unchanged) if it is not there. */
static bool take_prefix(struct sig_slice *s, const char *prefix)
{
    struct sig_slice p = sig_slice_from_cstr(prefix);
    if (s->len < p.len || !sig_slice_eq((struct sig_slice){s->ptr, p.len}, p))
        return false;
    s->ptr += p.len;
    s->len -= p.len;
    return true;
}

/* Takes the bytes before the first `sep` off *s, and the separator. */
static bool take_until(struct sig_slice *s, uint8_t sep, struct sig_slice *head)
{
    for (size_t i = 0; i < s->len; i++) {
        if (s->ptr[i] == sep) {
            *head = (struct sig_slice){s->ptr, i};
            s->ptr += i + 1;
            s->len -= i + 1;
            return true;
        }
    }
    return false;
}

enum cred_err sts_endpoint_host(struct sig_slice region, char *out, size_t cap)
{
    /* A region is one DNS label of the endpoint's name (RFC 1035 2.3.4: at most 63). */
    if (region.len == 0 || region.len > 63)
        return CRED_ERR_INVALID;
    for (size_t i = 0; i < region.len; i++) {
        uint8_t c = region.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return CRED_ERR_INVALID;
    }
    /* The China partition's endpoints live under amazonaws.com.cn. */
    struct sig_slice suffix = SIG_SLICE_LIT(".amazonaws.com");
    struct sig_slice cn = region;
    if (take_prefix(&cn, "cn-"))
        suffix = SIG_SLICE_LIT(".amazonaws.com.cn");
    if (cap == 0)
        return CRED_ERR_TOO_LONG;
    struct sig_buf b;
    sig_buf_init(&b, out, cap - 1);
    if (sig_buf_append_slice(&b, SIG_SLICE_LIT("sts.")) != SIG_OK ||
        sig_buf_append_slice(&b, region) != SIG_OK || sig_buf_append_slice(&b, suffix) != SIG_OK) {
        out[0] = '\0';
        return CRED_ERR_TOO_LONG;
    }
    out[b.len] = '\0';
    return CRED_OK;
}

bool sts_session_name_valid(struct sig_slice name)
{
    return name.len >= 2 && name.len <= STS_MAX_SESSION_NAME && all_of(name, "+=,.@_-");
}

/*
 * arn:PARTITION:iam::ACCOUNT:role/PATH/NAME, as IAM writes it: the partition in lowercase
 * letters and dashes (aws, aws-cn, aws-us-gov, ...), the empty region of a global service,
 * a 12-digit account, then the role's path and name, 1..512 characters that IAM allows in
 * both, ending in the name (not a slash).
 */
static bool role_arn_valid(struct sig_slice arn)
{
    struct sig_slice partition, account;
    if (!take_prefix(&arn, "arn:") || !take_until(&arn, ':', &partition))
        return false;
    if (partition.len == 0 || partition.len > 32)
        return false;
    for (size_t i = 0; i < partition.len; i++) {
        uint8_t c = partition.ptr[i];
        if (!((c >= 'a' && c <= 'z') || c == '-'))
            return false;
    }
    if (!take_prefix(&arn, "iam::") || !take_until(&arn, ':', &account) || account.len != 12)
        return false;
    for (size_t i = 0; i < account.len; i++) {
        if (account.ptr[i] < '0' || account.ptr[i] > '9')
            return false;
    }
    if (!take_prefix(&arn, "role/"))
        return false;
    return arn.len >= 1 && arn.len <= 512 && arn.ptr[arn.len - 1] != '/' && all_of(arn, "+=,.@_/-");
}

/* ExternalId: 2..1224 characters of [\w+=,.@:/-] (the AssumeRole API reference). */
static bool external_id_valid(struct sig_slice id)
{
    return id.len >= 2 && id.len <= 1224 && all_of(id, "_+=,.@:/-");
}

static enum sig_err append_param(struct sig_buf *out, const char *name, struct sig_slice value)
{
    SIG_TRY(sig_buf_append_byte(out, '&'));
    SIG_TRY(sig_buf_append_slice(out, sig_slice_from_cstr(name)));
    SIG_TRY(sig_buf_append_byte(out, '='));
    return sig_uri_encode(out, value, false);
}

/* Decimal digits of v into out[11], returned as a slice of it. */
static struct sig_slice format_u64(uint64_t v, char out[21])
{
    size_t i = 21;
    do {
        out[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return (struct sig_slice){(const uint8_t *)out + i, 21 - i};
}

static enum sig_err write_body(const struct sts_assume_role *p, struct sig_buf *out)
{
    char digits[21];
    /* The order botocore's Query serializer writes: Action and Version, then the members in
     * the order of AssumeRoleRequest's shape. STS reads the form in any order. */
    SIG_TRY(sig_buf_append_slice(out, SIG_SLICE_LIT("Action=AssumeRole&Version=2011-06-15")));
    SIG_TRY(append_param(out, "RoleArn", p->role_arn));
    SIG_TRY(append_param(out, "RoleSessionName", p->session_name));
    SIG_TRY(append_param(out, "DurationSeconds", format_u64(p->duration_s, digits)));
    if (p->external_id.len != 0)
        SIG_TRY(append_param(out, "ExternalId", p->external_id));
    return SIG_OK;
}

enum cred_err sts_assume_role_body(const struct sts_assume_role *p, struct sig_buf *out)
{
    if (!role_arn_valid(p->role_arn) || !sts_session_name_valid(p->session_name) ||
        p->duration_s < STS_MIN_DURATION_S || p->duration_s > STS_MAX_DURATION_S ||
        (p->external_id.len != 0 && !external_id_valid(p->external_id)))
        return CRED_ERR_INVALID;
    size_t start = out->len;
    if (write_body(p, out) != SIG_OK) {
        out->len = start; /* nothing half-written */
        return CRED_ERR_TOO_LONG;
    }
    return CRED_OK;
}

/* A host name or address literal: what may follow "Host: " without breaking the head. */
static bool host_valid(struct sig_slice host)
{
    return host.len != 0 && host.len <= 255 && all_of(host, ".-:[]");
}

static enum sig_err append_header(struct sig_buf *head, struct sig_slice name,
                                  struct sig_slice value)
{
    SIG_TRY(sig_buf_append_slice(head, name));
    SIG_TRY(sig_buf_append_slice(head, SIG_SLICE_LIT(": ")));
    SIG_TRY(sig_buf_append_slice(head, value));
    return sig_buf_append_slice(head, SIG_SLICE_LIT("\r\n"));
}

#define STS_CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"

static enum sig_err write_head(struct sig_slice host, struct sig_slice content_length,
                               const struct sig_result *res, struct sig_buf *head)
{
    SIG_TRY(sig_buf_append_slice(head, SIG_SLICE_LIT("POST / HTTP/1.1\r\n")));
    SIG_TRY(append_header(head, SIG_SLICE_LIT("Host"), host));
    SIG_TRY(append_header(head, SIG_SLICE_LIT("Content-Type"), SIG_SLICE_LIT(STS_CONTENT_TYPE)));
    SIG_TRY(append_header(head, SIG_SLICE_LIT("Content-Length"), content_length));
    for (size_t i = 0; i < res->add_header_count; i++)
        SIG_TRY(append_header(head, res->add_headers[i].name, res->add_headers[i].value));
    SIG_TRY(append_header(head, SIG_SLICE_LIT("Accept-Encoding"), SIG_SLICE_LIT("identity")));
    SIG_TRY(append_header(head, SIG_SLICE_LIT("Connection"), SIG_SLICE_LIT("close")));
    return sig_buf_append_slice(head, SIG_SLICE_LIT("\r\n"));
}

enum cred_err sts_sign_request(struct sig_slice host, struct sig_slice region,
                               struct sig_slice body, int64_t unix_time,
                               const struct sig_credentials *base, struct sig_workspace *ws,
                               struct sig_buf *head)
{
    if (!host_valid(host))
        return CRED_ERR_INVALID;
    char body_hash[SIG_SHA256_HEX_LEN + 1];
    struct sig_sha256 h;
    sig_sha256_init(&h);
    sig_sha256_update(&h, body.ptr, body.len);
    sig_sha256_final_hex(&h, body_hash);

    /* Sign Host and Content-Type, as the SDKs do; Content-Length, Accept-Encoding and
     * Connection stay unsigned (the last two are hop-by-hop or may be rewritten). */
    const struct sig_header headers[] = {
        {SIG_SLICE_LIT("Host"), host},
        {SIG_SLICE_LIT("Content-Type"), SIG_SLICE_LIT(STS_CONTENT_TYPE)},
    };
    const struct sig_request req = {
        .method = SIG_SLICE_LIT("POST"),
        .path = SIG_SLICE_LIT("/"),
        .headers = headers,
        .header_count = sizeof(headers) / sizeof(headers[0]),
    };
    const struct sig_params params = {
        .alg = SIG_ALG_V4,
        .form = SIG_FORM_HEADER,
        .uri_mode = SIG_URI_NORMALIZE,
        .region = region,
        .service = SIG_SLICE_LIT("sts"),
        .unix_time = unix_time,
        .payload_hash = {(const uint8_t *)body_hash, SIG_SHA256_HEX_LEN},
    };
    struct sig_result res;
    enum sig_err e = sig_sign(&req, &params, base, NULL, ws, &res);
    if (e == SIG_ERR_TOO_LARGE)
        return CRED_ERR_TOO_LONG; /* the workspace is too small for this request */
    if (e != SIG_OK)
        return CRED_ERR_INVALID;

    char digits[21];
    size_t start = head->len;
    if (write_head(host, format_u64(body.len, digits), &res, head) != SIG_OK) {
        /* What was written may already hold the token. */
        OPENSSL_cleanse(head->ptr + start, head->len - start);
        head->len = start;
        return CRED_ERR_TOO_LONG;
    }
    return CRED_OK;
}

/* ---- the answer ---- */

#define STS_NS "https://sts.amazonaws.com/doc/2011-06-15/"

/* An element named `name`, in STS's namespace or in none (both forms are accepted). */
static bool is_element(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, (const xmlChar *)name) &&
           (n->ns == NULL || xmlStrEqual(n->ns->href, (const xmlChar *)STS_NS));
}

/* The child element `name` of `parent`; NULL if there is none, or more than one when
 * `unique` (a document that names a credential twice is ambiguous). */
static const xmlNode *child(const xmlNode *parent, const char *name, bool unique)
{
    const xmlNode *found = NULL;
    for (const xmlNode *c = parent->children; c != NULL; c = c->next) {
        if (!is_element(c, name))
            continue;
        if (found != NULL)
            return unique ? NULL : found;
        found = c;
    }
    return found;
}

/* A copy of an element's text, in storage wiped after use (it may be the secret). */
struct field {
    uint8_t mem[CRED_MAX_VALUE];
    struct sig_buf buf;
};

static bool is_xml_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct sig_slice trim(struct sig_slice s)
{
    while (s.len != 0 && is_xml_space(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len != 0 && is_xml_space(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

/*
 * The concatenated text and CDATA children of `el` into f, trimmed of XML white space.
 * Comments and processing instructions are skipped. Strict (a credential): any other child,
 * an entity reference among them (never expanded), or text over CRED_MAX_VALUE fails.
 * Lenient (error text): those are skipped, and the text is cut at what fits.
 */
static bool element_text(const xmlNode *el, bool strict, struct field *f, struct sig_slice *out)
{
    sig_buf_init(&f->buf, f->mem, sizeof(f->mem));
    for (const xmlNode *c = el->children; c != NULL; c = c->next) {
        if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE)
            continue;
        if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) {
            if (strict)
                return false;
            continue;
        }
        struct sig_slice text = sig_slice_from_cstr((const char *)c->content);
        if (sig_buf_append_slice(&f->buf, text) != SIG_OK) {
            if (strict)
                return false;
            size_t room = f->buf.cap - f->buf.len;
            if (sig_buf_append(&f->buf, text.ptr, room) != SIG_OK)
                return false; /* cannot happen: exactly the room left */
            break;
        }
    }
    *out = trim(sig_buf_slice(&f->buf));
    return true;
}

/* A credential value: non-empty printable ASCII without spaces. The token goes into an HTTP
 * header, so anything else (a CR or LF above all) would corrupt or split the request. */
static bool credential_text(const xmlNode *parent, const char *name, struct field *f,
                            struct sig_slice *out)
{
    const xmlNode *el = child(parent, name, true);
    if (el == NULL || !element_text(el, true, f, out) || out->len == 0)
        return false;
    for (size_t i = 0; i < out->len; i++) {
        if (out->ptr[i] < 0x21 || out->ptr[i] > 0x7e)
            return false;
    }
    return true;
}

/*
 * Copies error text for logs into out[cap]: control characters become spaces, and a cut
 * falls on a UTF-8 character boundary.
 */
static void copy_error_text(struct sig_slice s, char *out, size_t cap)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n < s.len) {
        /* Back off over continuation bytes (10xxxxxx) to the start of the cut character. */
        while (n > 0 && (s.ptr[n] & 0xc0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s.ptr[i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* ErrorResponse/Error (STS's shape) or a bare Error root: its Code and Message. */
static bool read_error(const xmlNode *root, struct sts_answer *out)
{
    const xmlNode *err = root;
    if (is_element(root, "ErrorResponse"))
        err = child(root, "Error", false);
    if (err == NULL || !is_element(err, "Error"))
        return false;
    struct field f;
    struct sig_slice text;
    const xmlNode *code = child(err, "Code", false);
    if (code != NULL && element_text(code, false, &f, &text))
        copy_error_text(text, out->error_code, sizeof(out->error_code));
    const xmlNode *message = child(err, "Message", false);
    if (message != NULL && element_text(message, false, &f, &text))
        copy_error_text(text, out->error_message, sizeof(out->error_message));
    OPENSSL_cleanse(&f, sizeof(f));
    return true;
}

/* AssumeRoleResponse/AssumeRoleResult/Credentials into out->creds and out->expiration. */
static enum cred_err read_credentials(const xmlNode *root, struct sts_answer *out)
{
    enum cred_err err = CRED_ERR_BAD_ANSWER;
    struct field id_f, secret_f, token_f, exp_f;
    struct sig_slice id, secret, token, exp;
    const xmlNode *creds = NULL;
    if (is_element(root, "AssumeRoleResponse")) {
        const xmlNode *result = child(root, "AssumeRoleResult", true);
        if (result != NULL)
            creds = child(result, "Credentials", true);
    }
    if (creds == NULL || !credential_text(creds, "AccessKeyId", &id_f, &id) ||
        !credential_text(creds, "SecretAccessKey", &secret_f, &secret) ||
        !credential_text(creds, "SessionToken", &token_f, &token) ||
        !credential_text(creds, "Expiration", &exp_f, &exp) ||
        !sts_parse_time(exp, &out->expiration))
        goto out;
    err = cred_new(id, secret, token, &out->creds) == CRED_OK ? CRED_OK : CRED_ERR_BAD_ANSWER;
out:
    OPENSSL_cleanse(&secret_f, sizeof(secret_f));
    OPENSSL_cleanse(&token_f, sizeof(token_f));
    OPENSSL_cleanse(&id_f, sizeof(id_f));
    if (err != CRED_OK)
        out->expiration = 0;
    return err;
}

enum cred_err sts_parse_answer(int http_status, const uint8_t *body, size_t len,
                               struct sts_answer *out)
{
    *out = (struct sts_answer){0};
    /* A refusal is a refusal whatever its body says; the body only names the reason. */
    enum cred_err err = http_status == 200 ? CRED_ERR_BAD_ANSWER : CRED_ERR_FETCH;
    if (len == 0 || len > STS_MAX_RESPONSE_BYTES)
        return err;
    /* No XML_PARSE_NOENT (entities stay references, never expanded into the tree) and no
     * XML_PARSE_DTDLOAD (no external subset is read); NONET forbids any fetch. */
    xmlDoc *doc = xmlReadMemory((const char *)body, (int)len, NULL, NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL)
        return err;
    const xmlNode *root = xmlDocGetRootElement(doc);
    /* STS never sends a document type declaration: one is refused with everything it
     * declares (entities above all). */
    if (root == NULL || xmlGetIntSubset(doc) != NULL)
        goto out;
    if (read_error(root, out)) {
        err = CRED_ERR_FETCH;
        goto out;
    }
    if (http_status == 200)
        err = read_credentials(root, out);
out:
    xmlFreeDoc(doc); /* the text nodes held the secret: sts_init's allocator wipes them */
    return err;
}

/* ---- time ---- */

/* Parses exactly n decimal digits at *s, advancing it. */
static bool take_digits(struct sig_slice *s, size_t n, int *out)
{
    if (s->len < n)
        return false;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s->ptr[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    s->ptr += n;
    s->len -= n;
    *out = v;
    return true;
}

static bool take_byte(struct sig_slice *s, uint8_t c)
{
    if (s->len == 0 || s->ptr[0] != c)
        return false;
    s->ptr++;
    s->len--;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil,
 * restated): counts whole 400-year eras from 0000-03-01, so February ends each year. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = y / 400; /* y >= 1969 here: no negative division */
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool sts_parse_time(struct sig_slice s, int64_t *out)
{
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, month, day, hour, minute, second, unused;
    if (!take_digits(&s, 4, &year) || !take_byte(&s, '-') || !take_digits(&s, 2, &month) ||
        !take_byte(&s, '-') || !take_digits(&s, 2, &day) || !take_byte(&s, 'T') ||
        !take_digits(&s, 2, &hour) || !take_byte(&s, ':') || !take_digits(&s, 2, &minute) ||
        !take_byte(&s, ':') || !take_digits(&s, 2, &second))
        return false;
    if (take_byte(&s, '.')) {
        /* A fraction of 1..9 digits, below the second: the expiry does not need it. */
        size_t n = 0;
        while (n < 9 && take_digits(&s, 1, &unused))
            n++;
        if (n == 0)
            return false;
    }
    if (!take_byte(&s, 'Z') || s.len != 0)
        return false;
    if (year < 1970 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 ||
        second > 59) /* no leap second: STS never sends one, and POSIX time cannot hold it */
        return false;
    int last = month_days[month - 1] + (month == 2 && is_leap(year));
    if (day > last)
        return false;
    *out = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    return true;
}
