/* profile.c: the AWS shared config and credentials files, parsed in place (rules in
 * profile.h), and the static credentials of a profile. */
#include "profile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

void (*prof_wipe_observer)(const void *ptr, size_t len);

enum { FILE_CONFIG = 0, FILE_CREDENTIALS = 1, FILE_COUNT = 2 };

/* A kept section header. Its name is a view into the file's bytes. */
struct prof_section {
    enum prof_kind kind;
    struct sig_slice name;
    bool bare_default; /* [default] in the config file: dropped if [profile default] exists */
    bool dropped;
};

/* One property: key (lowercased in place) and, for a sub-property, sub; views into bytes. */
struct prof_entry {
    uint32_t section; /* index into the file's sections */
    struct sig_slice key;
    struct sig_slice sub;
    struct sig_slice value;
};

struct prof_file {
    uint8_t *bytes; /* owned: the file, rewritten in place by the parser; wiped on free */
    size_t len;
    struct prof_section *sections; /* owned, PROF_MAX_SECTIONS at most */
    size_t section_count;
    struct prof_entry *entries; /* owned, entry_cap <= PROF_MAX_PROPERTIES */
    size_t entry_count, entry_cap;
};

struct prof_set {
    struct prof_file files[FILE_COUNT];
};

static void *prof_xmalloc(size_t n)
{
    void *p = calloc(1, n != 0 ? n : 1);
    if (p == NULL)
        abort(); /* the PROF_MAX_* limits bound every allocation; OOM is fatal */
    return p;
}

static void wipe_free(void *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    if (prof_wipe_observer != NULL)
        prof_wipe_observer(p, len);
    free(p);
}

/* ---- locations ---- */

/* Writes a + b into out (NUL-terminated); false if it does not fit. */
static bool join(char *out, size_t cap, struct sig_slice a, struct sig_slice b)
{
    if (a.len + b.len + 1 > cap)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < a.len; i++)
        out[n++] = (char)a.ptr[i];
    for (size_t i = 0; i < b.len; i++)
        out[n++] = (char)b.ptr[i];
    out[n] = '\0';
    return true;
}

/* The environment's path (with "~" or "~/" expanded to HOME), else HOME + fallback, else "". */
static bool resolve_path(char *out, size_t cap, const char *env_value, struct sig_slice home,
                         struct sig_slice fallback)
{
    struct sig_slice v = sig_slice_from_cstr(env_value);
    out[0] = '\0';
    if (v.len == 0) {
        /* Without HOME there is no default location: nothing to read. */
        return home.len == 0 || join(out, cap, home, fallback);
    }
    /* Only the user's own home: "~user" stays literal, as the SDKs other than Python do. */
    if (home.len != 0 && v.ptr[0] == '~' && (v.len == 1 || v.ptr[1] == '/'))
        return join(out, cap, home, (struct sig_slice){v.ptr + 1, v.len - 1});
    return join(out, cap, v, (struct sig_slice){NULL, 0});
}

enum cred_err prof_paths_resolve(const char *aws_config_file,
                                 const char *aws_shared_credentials_file, const char *aws_profile,
                                 const char *home, struct prof_paths *out)
{
    *out = (struct prof_paths){0};
    struct sig_slice h = sig_slice_from_cstr(home);
    struct sig_slice profile = sig_slice_from_cstr(aws_profile);
    out->profile_from_env = profile.len != 0;
    if (profile.len == 0)
        profile = SIG_SLICE_LIT("default");
    if (!resolve_path(out->config, sizeof(out->config), aws_config_file, h,
                      SIG_SLICE_LIT("/.aws/config")) ||
        !resolve_path(out->credentials, sizeof(out->credentials), aws_shared_credentials_file, h,
                      SIG_SLICE_LIT("/.aws/credentials")) ||
        !join(out->profile, sizeof(out->profile), profile, (struct sig_slice){NULL, 0}))
        return CRED_ERR_TOO_LONG;
    return CRED_OK;
}

enum cred_err prof_paths_from_env(struct prof_paths *out)
{
    return prof_paths_resolve(getenv("AWS_CONFIG_FILE"), getenv("AWS_SHARED_CREDENTIALS_FILE"),
                              getenv("AWS_PROFILE"), getenv("HOME"), out);
}

/* ---- parsing ---- */

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static bool is_comment(uint8_t c)
{
    return c == '#' || c == ';';
}

static struct sig_slice trim(struct sig_slice s)
{
    while (s.len > 0 && is_blank(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && is_blank(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

static struct sig_slice sub_slice(struct sig_slice s, size_t from, size_t to)
{
    return (struct sig_slice){s.ptr + from, to - from};
}

/* Index of the first byte c in s, or s.len. */
static size_t find_byte(struct sig_slice s, uint8_t c)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] == c)
            return i;
    return s.len;
}

static bool has_blank(struct sig_slice s)
{
    for (size_t i = 0; i < s.len; i++)
        if (is_blank(s.ptr[i]))
            return true;
    return false;
}

/* Profile, sso-session and services names: printable ASCII without the characters that
 * delimit sections, comments or (in botocore) quoted names. */
static bool is_valid_name(struct sig_slice s)
{
    if (s.len == 0 || s.len >= PROF_MAX_NAME)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c <= 0x20 || c >= 0x7f || c == '[' || c == ']' || c == '#' || c == ';' || c == '"' ||
            c == '\'' || c == '\\')
            return false;
    }
    return true;
}

/* If s is "word" + blanks + rest, sets *rest to the trimmed rest. */
static bool strip_word(struct sig_slice s, struct sig_slice word, struct sig_slice *rest)
{
    if (s.len <= word.len || !sig_slice_eq(sub_slice(s, 0, word.len), word) ||
        !is_blank(s.ptr[word.len]))
        return false;
    *rest = trim(sub_slice(s, word.len, s.len));
    return true;
}

struct parser {
    struct prof_file *f;
    int which; /* FILE_CONFIG or FILE_CREDENTIALS */
    const char *file_name;
    size_t line_no;
    char *err;
    size_t err_len;
    size_t headers;              /* section headers seen, kept or not */
    bool in_section;             /* a header was seen: properties are allowed */
    bool section_kept;           /* ... and its properties are stored */
    bool have_property;          /* a property line was seen in this section */
    bool property_kept;          /* ... and stored: entries[entry_count - 1] */
    bool property_is_parent;     /* its value was empty: indented lines are sub-properties */
    struct sig_slice parent_key; /* that property's key */
    bool profile_default_seen;   /* config file: [profile default] exists */
};

static enum cred_err syntax(struct parser *p, const char *what)
{
    return cred_fail(p->err, p->err_len, CRED_ERR_FILE_SYNTAX, "%s line %zu: %s", p->file_name,
                     p->line_no, what);
}

static enum cred_err add_entry(struct parser *p, struct sig_slice key, struct sig_slice sub,
                               struct sig_slice value)
{
    if (p->f->entry_count >= p->f->entry_cap)
        return cred_fail(p->err, p->err_len, CRED_ERR_FILE_LIMIT,
                         "%s line %zu: more than %u properties", p->file_name, p->line_no,
                         PROF_MAX_PROPERTIES);
    p->f->entries[p->f->entry_count++] = (struct prof_entry){
        .section = (uint32_t)(p->f->section_count - 1), .key = key, .sub = sub, .value = value};
    return CRED_OK;
}

static enum cred_err section_line(struct parser *p, struct sig_slice line)
{
    /* After the ']' only a comment may follow, which needs no blank before it. */
    size_t end = 0;
    while (end < line.len && !is_comment(line.ptr[end]))
        end++;
    struct sig_slice head = trim(sub_slice(line, 0, end));
    if (head.len < 2 || head.ptr[head.len - 1] != ']')
        return syntax(p, "a section header must end with ']'");
    if (++p->headers > PROF_MAX_SECTIONS)
        return cred_fail(p->err, p->err_len, CRED_ERR_FILE_LIMIT,
                         "%s line %zu: more than %u sections", p->file_name, p->line_no,
                         PROF_MAX_SECTIONS);
    struct sig_slice inner = trim(sub_slice(head, 1, head.len - 1));
    struct sig_slice name = {NULL, 0};
    enum prof_kind kind = PROF_KIND_PROFILE;
    bool keep = false, bare_default = false;
    if (p->which == FILE_CREDENTIALS) {
        /* Every [NAME] is a profile; a name with blanks ("profile x") is not valid. */
        name = inner;
        keep = true;
    } else if (sig_slice_eq(inner, SIG_SLICE_LIT("default"))) {
        name = inner;
        keep = bare_default = true;
    } else if (strip_word(inner, SIG_SLICE_LIT("profile"), &name)) {
        keep = true;
        if (sig_slice_eq(name, SIG_SLICE_LIT("default")))
            p->profile_default_seen = true;
    } else if (strip_word(inner, SIG_SLICE_LIT("sso-session"), &name)) {
        kind = PROF_KIND_SSO_SESSION;
        keep = true;
    } else if (strip_word(inner, SIG_SLICE_LIT("services"), &name)) {
        kind = PROF_KIND_SERVICES;
        keep = true;
    }
    /* Ignored sections ([foo] in the config file, invalid names) are still parsed, so that a
     * malformed line inside one is reported, but nothing in them is stored. */
    keep = keep && is_valid_name(name);
    p->in_section = true;
    p->section_kept = keep;
    p->have_property = p->property_kept = p->property_is_parent = false;
    if (keep)
        p->f->sections[p->f->section_count++] =
            (struct prof_section){.kind = kind, .name = name, .bare_default = bare_default};
    return CRED_OK;
}

/* Splits "key = value" at the first '='; both trimmed. */
static enum cred_err split_property(struct parser *p, struct sig_slice line, bool sub,
                                    struct sig_slice *key, struct sig_slice *value)
{
    size_t eq = find_byte(line, '=');
    if (eq == line.len)
        return syntax(p, sub ? "expected '=' in a sub-property" : "expected '=' in a property");
    *key = trim(sub_slice(line, 0, eq));
    *value = trim(sub_slice(line, eq + 1, line.len));
    if (key->len == 0)
        return syntax(p, sub ? "a sub-property has no name" : "a property has no name");
    return CRED_OK;
}

static enum cred_err property_line(struct parser *p, struct sig_slice line)
{
    if (!p->in_section)
        return syntax(p, "a property before any section header");
    /* An inline comment starts at '#' or ';' after a blank: "a=b#c" keeps "b#c". */
    for (size_t i = 1; i < line.len; i++) {
        if (is_comment(line.ptr[i]) && is_blank(line.ptr[i - 1])) {
            line.len = i;
            break;
        }
    }
    struct sig_slice key, value;
    enum cred_err e = split_property(p, line, false, &key, &value);
    if (e != CRED_OK)
        return e;
    p->have_property = true;
    p->property_is_parent = value.len == 0;
    p->parent_key = key;
    /* A key with blanks in it is not a valid name: ignored, as the SDKs do. */
    p->property_kept = p->section_kept && !has_blank(key);
    if (!p->property_kept)
        return CRED_OK;
    uint8_t *k = (uint8_t *)key.ptr; /* our own bytes, parsed in place */
    for (size_t i = 0; i < key.len; i++)
        if (k[i] >= 'A' && k[i] <= 'Z')
            k[i] = (uint8_t)(k[i] - 'A' + 'a');
    return add_entry(p, key, (struct sig_slice){NULL, 0}, value);
}

static enum cred_err continuation_line(struct parser *p, struct sig_slice line)
{
    struct sig_slice text = trim(line);
    if (!p->in_section)
        return syntax(p, "a continuation line before any section header");
    if (!p->have_property)
        return syntax(p, "a continuation line without a property above it");
    if (p->property_is_parent) {
        struct sig_slice key, value;
        enum cred_err e = split_property(p, text, true, &key, &value);
        if (e != CRED_OK || !p->property_kept)
            return e;
        return add_entry(p, p->parent_key, key, value);
    }
    if (!p->property_kept)
        return CRED_OK;
    /* Append "\n" + text to the value in place. The value ends before the line end that
     * precedes this line, and this line starts with a blank, so the destination is always
     * before the source and nothing still needed is overwritten. */
    struct prof_entry *last = &p->f->entries[p->f->entry_count - 1];
    uint8_t *dst = (uint8_t *)last->value.ptr + last->value.len;
    dst[0] = '\n';
    for (size_t i = 0; i < text.len; i++)
        dst[1 + i] = text.ptr[i];
    last->value.len += 1 + text.len;
    return CRED_OK;
}

static enum cred_err parse_file(struct prof_file *f, int which, const char *file_name, char *err,
                                size_t err_len)
{
    struct parser p = {
        .f = f, .which = which, .file_name = file_name, .err = err, .err_len = err_len};
    /* At most one section per header and one property per line, within the limits. */
    f->sections = prof_xmalloc(PROF_MAX_SECTIONS * sizeof(*f->sections));
    size_t lines = 1;
    for (size_t i = 0; i < f->len; i++)
        lines += f->bytes[i] == '\n';
    f->entry_cap = lines < PROF_MAX_PROPERTIES ? lines : PROF_MAX_PROPERTIES;
    f->entries = prof_xmalloc(f->entry_cap * sizeof(*f->entries));

    struct sig_slice rest = {f->bytes, f->len};
    while (rest.len > 0) {
        size_t nl = find_byte(rest, '\n');
        struct sig_slice line = sub_slice(rest, 0, nl);
        rest =
            nl < rest.len ? sub_slice(rest, nl + 1, rest.len) : sub_slice(rest, rest.len, rest.len);
        p.line_no++;
        if (line.len > 0 && line.ptr[line.len - 1] == '\r')
            line.len--;
        if (line.len > PROF_MAX_LINE_BYTES)
            return cred_fail(err, err_len, CRED_ERR_FILE_LIMIT, "%s line %zu: longer than %u bytes",
                             file_name, p.line_no, PROF_MAX_LINE_BYTES);
        /* Values end up in C strings (paths, commands): a NUL byte has no place in them. */
        if (find_byte(line, '\0') != line.len)
            return syntax(&p, "a NUL byte");
        struct sig_slice text = trim(line);
        if (text.len == 0 || is_comment(text.ptr[0]))
            continue; /* blank, or a comment (indented ones too, as botocore reads them) */
        enum cred_err e;
        if (is_blank(line.ptr[0]))
            e = continuation_line(&p, line);
        else if (line.ptr[0] == '[')
            e = section_line(&p, line);
        else
            e = property_line(&p, line);
        if (e != CRED_OK)
            return e;
    }
    /* [profile default] takes precedence over [default] in the config file. */
    if (p.profile_default_seen)
        for (size_t i = 0; i < f->section_count; i++)
            f->sections[i].dropped = f->sections[i].bare_default;
    return CRED_OK;
}

static enum cred_err read_file(const char *path, struct prof_file *f, char *err, size_t err_len)
{
    if (path[0] == '\0')
        return CRED_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return CRED_OK; /* a missing file is an empty one */
        return cred_fail(err, err_len, CRED_ERR_FILE_UNREADABLE, "cannot open %s: %s", path,
                         strerror(e));
    }
    enum cred_err rc = CRED_OK;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = cred_fail(err, err_len, CRED_ERR_FILE_UNREADABLE, "cannot stat %s: %s", path,
                       strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = cred_fail(err, err_len, CRED_ERR_FILE_UNREADABLE, "%s is not a regular file", path);
        goto out;
    }
    if (st.st_size > (off_t)PROF_MAX_FILE_BYTES) {
        rc = cred_fail(err, err_len, CRED_ERR_FILE_LIMIT, "%s is larger than %u bytes", path,
                       PROF_MAX_FILE_BYTES);
        goto out;
    }
    /* One byte more than the size, to notice a file that grew since fstat. */
    size_t cap = (size_t)st.st_size + 1;
    f->bytes = prof_xmalloc(cap);
    while (f->len < cap) {
        ssize_t n = read(fd, f->bytes + f->len, cap - f->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = cred_fail(err, err_len, CRED_ERR_FILE_UNREADABLE, "cannot read %s: %s", path,
                           strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        f->len += (size_t)n;
    }
    if (f->len == cap)
        rc = cred_fail(err, err_len, CRED_ERR_FILE_UNREADABLE, "%s changed while being read", path);
out:
    close(fd);
    return rc;
}

static struct prof_set *set_new(void)
{
    return prof_xmalloc(sizeof(struct prof_set));
}

static enum cred_err parse_both(struct prof_set *set, const char *config_name,
                                const char *credentials_name, char *err, size_t err_len)
{
    enum cred_err e = parse_file(&set->files[FILE_CONFIG], FILE_CONFIG, config_name, err, err_len);
    if (e == CRED_OK)
        e = parse_file(&set->files[FILE_CREDENTIALS], FILE_CREDENTIALS, credentials_name, err,
                       err_len);
    return e;
}

enum cred_err prof_set_load(const struct prof_paths *paths, struct prof_set **out, char *err,
                            size_t err_len)
{
    *out = NULL;
    struct prof_set *set = set_new();
    enum cred_err e = read_file(paths->config, &set->files[FILE_CONFIG], err, err_len);
    if (e == CRED_OK)
        e = read_file(paths->credentials, &set->files[FILE_CREDENTIALS], err, err_len);
    if (e == CRED_OK)
        e = parse_both(set, paths->config, paths->credentials, err, err_len);
    if (e != CRED_OK) {
        prof_set_free(set);
        return e;
    }
    *out = set;
    return CRED_OK;
}

static enum cred_err copy_in(struct prof_file *f, struct sig_slice bytes, const char *name,
                             char *err, size_t err_len)
{
    if (bytes.len > PROF_MAX_FILE_BYTES)
        return cred_fail(err, err_len, CRED_ERR_FILE_LIMIT, "%s is larger than %u bytes", name,
                         PROF_MAX_FILE_BYTES);
    f->bytes = prof_xmalloc(bytes.len);
    struct sig_buf b;
    sig_buf_init(&b, f->bytes, bytes.len);
    enum sig_err e = sig_buf_append_slice(&b, bytes); /* exact capacity: cannot fail */
    f->len = e == SIG_OK ? b.len : 0;
    return CRED_OK;
}

enum cred_err prof_set_parse(struct sig_slice config, const char *config_name,
                             struct sig_slice credentials, const char *credentials_name,
                             struct prof_set **out, char *err, size_t err_len)
{
    *out = NULL;
    struct prof_set *set = set_new();
    enum cred_err e = copy_in(&set->files[FILE_CONFIG], config, config_name, err, err_len);
    if (e == CRED_OK)
        e = copy_in(&set->files[FILE_CREDENTIALS], credentials, credentials_name, err, err_len);
    if (e == CRED_OK)
        e = parse_both(set, config_name, credentials_name, err, err_len);
    if (e != CRED_OK) {
        prof_set_free(set);
        return e;
    }
    *out = set;
    return CRED_OK;
}

void prof_set_free(struct prof_set *set)
{
    if (set == NULL)
        return;
    for (int i = 0; i < FILE_COUNT; i++) {
        struct prof_file *f = &set->files[i];
        wipe_free(f->bytes, f->len);
        wipe_free(f->sections, f->sections != NULL ? PROF_MAX_SECTIONS * sizeof(*f->sections) : 0);
        wipe_free(f->entries, f->entry_cap * sizeof(*f->entries));
        *f = (struct prof_file){0};
    }
    free(set);
}

/* ---- lookups ---- */

static bool has_section_in(const struct prof_file *f, enum prof_kind kind, struct sig_slice name)
{
    for (size_t i = 0; i < f->section_count; i++)
        if (!f->sections[i].dropped && f->sections[i].kind == kind &&
            sig_slice_eq(f->sections[i].name, name))
            return true;
    return false;
}

bool prof_has_profile(const struct prof_set *set, struct sig_slice profile)
{
    return has_section_in(&set->files[FILE_CREDENTIALS], PROF_KIND_PROFILE, profile) ||
           has_section_in(&set->files[FILE_CONFIG], PROF_KIND_PROFILE, profile);
}

bool prof_has_section(const struct prof_set *set, enum prof_kind kind, struct sig_slice name)
{
    return kind == PROF_KIND_PROFILE ? prof_has_profile(set, name)
                                     : has_section_in(&set->files[FILE_CONFIG], kind, name);
}

/* Whether `key` names the entry: "key", or "key.sub" for a sub-property. */
static bool key_matches(const struct prof_entry *e, struct sig_slice key)
{
    if (e->sub.len == 0)
        return sig_slice_eq(e->key, key);
    return key.len == e->key.len + 1 + e->sub.len &&
           sig_slice_eq(sub_slice(key, 0, e->key.len), e->key) && key.ptr[e->key.len] == '.' &&
           sig_slice_eq(sub_slice(key, e->key.len + 1, key.len), e->sub);
}

/* Whether the entry is the parent of the sub-property `key` ("s3" for "s3.x"). */
static bool is_parent_of(const struct prof_entry *e, struct sig_slice key)
{
    return e->sub.len == 0 && key.len > e->key.len &&
           sig_slice_eq(sub_slice(key, 0, e->key.len), e->key) && key.ptr[e->key.len] == '.';
}

enum lookup { LOOKUP_MISS, LOOKUP_HIT, LOOKUP_SHADOWED };

/* The latest definition in f wins. A later definition of the parent ("s3 =") hides earlier
 * sub-properties ("s3.x"), as redefining a property replaces its whole value. */
static enum lookup find_in(const struct prof_file *f, enum prof_kind kind, struct sig_slice name,
                           struct sig_slice key, const struct prof_entry **hit)
{
    for (size_t i = f->entry_count; i-- > 0;) {
        const struct prof_entry *e = &f->entries[i];
        const struct prof_section *s = &f->sections[e->section];
        if (s->dropped || s->kind != kind || !sig_slice_eq(s->name, name))
            continue;
        if (key_matches(e, key)) {
            *hit = e;
            return LOOKUP_HIT;
        }
        if (is_parent_of(e, key))
            return LOOKUP_SHADOWED;
    }
    return LOOKUP_MISS;
}

static const struct prof_entry *find_entry(const struct prof_set *set, enum prof_kind kind,
                                           struct sig_slice name, struct sig_slice key)
{
    const struct prof_entry *hit = NULL;
    /* The credentials file first: it wins over the config file, key by key. */
    if (kind == PROF_KIND_PROFILE) {
        enum lookup l = find_in(&set->files[FILE_CREDENTIALS], kind, name, key, &hit);
        if (l != LOOKUP_MISS)
            return hit;
    }
    (void)find_in(&set->files[FILE_CONFIG], kind, name, key, &hit);
    return hit;
}

bool prof_find(const struct prof_set *set, enum prof_kind kind, struct sig_slice name,
               struct sig_slice key, struct sig_slice *value)
{
    const struct prof_entry *e = find_entry(set, kind, name, key);
    *value = e != NULL ? e->value : (struct sig_slice){NULL, 0};
    return e != NULL;
}

struct sig_slice prof_get(const struct prof_set *set, struct sig_slice profile,
                          struct sig_slice key)
{
    struct sig_slice v;
    (void)prof_find(set, PROF_KIND_PROFILE, profile, key, &v);
    return v;
}

void prof_each(const struct prof_set *set, prof_each_fn fn, void *arg)
{
    char key_buf[2 * PROF_MAX_LINE_BYTES + 1];
    for (int i = 0; i < FILE_COUNT; i++) {
        const struct prof_file *f = &set->files[i];
        for (size_t k = 0; k < f->entry_count; k++) {
            const struct prof_entry *e = &f->entries[k];
            const struct prof_section *s = &f->sections[e->section];
            if (s->dropped)
                continue;
            struct sig_buf b;
            sig_buf_init(&b, key_buf, sizeof(key_buf));
            enum sig_err err = sig_buf_append_slice(&b, e->key);
            if (err == SIG_OK && e->sub.len != 0)
                err = sig_buf_append_byte(&b, '.');
            if (err == SIG_OK)
                err = sig_buf_append_slice(&b, e->sub);
            /* Report only the definition a lookup returns (once, though keys repeat). */
            if (err == SIG_OK && find_entry(set, s->kind, s->name, sig_buf_slice(&b)) == e)
                fn(s->kind, s->name, e->key, e->sub, e->value, arg);
        }
    }
}

/* ---- static credentials ---- */

static bool profile_has(const struct prof_set *set, struct sig_slice profile, const char *key)
{
    struct sig_slice v;
    return prof_find(set, PROF_KIND_PROFILE, profile, sig_slice_from_cstr(key), &v);
}

/* The arguments of "%.*s" for a profile name in a message, cut at PROF_MAX_NAME. */
#define NAME_ARG(s) (int)((s).len > PROF_MAX_NAME ? PROF_MAX_NAME : (s).len), (const char *)(s).ptr

static enum cred_err missing_profile(struct sig_slice profile, char *msg, size_t msg_len)
{
    return cred_fail(msg, msg_len, CRED_ERR_NO_PROFILE,
                     "profile %.*s is in neither the config nor the credentials file",
                     NAME_ARG(profile));
}

/* botocore's chain, in order: assume role and web identity and SSO come before the static keys
 * (a profile with role_arn assumes the role even when it has keys), the credential process
 * after them. */
static const char *const before_keys[] = {
    "role_arn",      "web_identity_token_file", "sso_session",
    "sso_start_url", "sso_account_id",          "sso_role_name",
};

enum cred_err prof_credential_process(const struct prof_set *set, struct sig_slice profile,
                                      struct sig_slice *command)
{
    *command = (struct sig_slice){0};
    if (!prof_has_profile(set, profile))
        return CRED_ERR_NOT_FOUND;
    for (size_t i = 0; i < sizeof(before_keys) / sizeof(before_keys[0]); i++)
        if (profile_has(set, profile, before_keys[i]))
            return CRED_ERR_NOT_FOUND;
    if (prof_get(set, profile, SIG_SLICE_LIT("aws_access_key_id")).len != 0 ||
        prof_get(set, profile, SIG_SLICE_LIT("aws_secret_access_key")).len != 0)
        return CRED_ERR_NOT_FOUND;
    *command = prof_get(set, profile, SIG_SLICE_LIT("credential_process"));
    return command->len != 0 ? CRED_OK : CRED_ERR_NOT_FOUND;
}

enum cred_err cred_from_profile(const struct prof_set *set, struct sig_slice profile,
                                struct cred **out, char *msg, size_t msg_len)
{
    *out = NULL;
    if (!prof_has_profile(set, profile))
        return missing_profile(profile, msg, msg_len);
    for (size_t i = 0; i < sizeof(before_keys) / sizeof(before_keys[0]); i++)
        if (profile_has(set, profile, before_keys[i]))
            return cred_fail(msg, msg_len, CRED_ERR_UNSUPPORTED,
                             "profile %.*s uses %s, which sigv4d does not support yet",
                             NAME_ARG(profile), before_keys[i]);
    if (prof_get(set, profile, SIG_SLICE_LIT("aws_access_key_id")).len == 0 &&
        prof_get(set, profile, SIG_SLICE_LIT("aws_secret_access_key")).len == 0) {
        static const char *const after_keys[] = {"credential_process", "credential_source"};
        for (size_t i = 0; i < sizeof(after_keys) / sizeof(after_keys[0]); i++)
            if (profile_has(set, profile, after_keys[i]))
                return cred_fail(msg, msg_len, CRED_ERR_UNSUPPORTED,
                                 "profile %.*s uses %s, which sigv4d does not support yet",
                                 NAME_ARG(profile), after_keys[i]);
    }
    return cred_from_profile_keys(set, profile, out, msg, msg_len);
}

enum cred_err cred_from_profile_keys(const struct prof_set *set, struct sig_slice profile,
                                     struct cred **out, char *msg, size_t msg_len)
{
    *out = NULL;
    struct sig_slice id = prof_get(set, profile, SIG_SLICE_LIT("aws_access_key_id"));
    struct sig_slice secret = prof_get(set, profile, SIG_SLICE_LIT("aws_secret_access_key"));
    struct sig_slice token = prof_get(set, profile, SIG_SLICE_LIT("aws_session_token"));
    if (id.len == 0 && secret.len == 0)
        return cred_fail(msg, msg_len, CRED_ERR_NOT_FOUND, "profile %.*s has no credentials",
                         NAME_ARG(profile));
    if (id.len == 0 || secret.len == 0)
        return cred_fail(msg, msg_len, CRED_ERR_INVALID, "profile %.*s has %s but no %s",
                         NAME_ARG(profile),
                         id.len == 0 ? "aws_secret_access_key" : "aws_access_key_id",
                         id.len == 0 ? "aws_access_key_id" : "aws_secret_access_key");
    enum cred_err e = cred_new(id, secret, token, out);
    if (e != CRED_OK)
        return cred_fail(msg, msg_len, e, "profile %.*s: %s", NAME_ARG(profile), cred_err_str(e));
    return CRED_OK;
}

/* ---- roles ---- */

/* duration_seconds: decimal digits only, 900..43200. */
static bool parse_duration(struct sig_slice v, uint32_t *out)
{
    if (v.len == 0 || v.len > 5)
        return false;
    uint32_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return false;
        n = n * 10 + (uint32_t)(v.ptr[i] - '0');
    }
    if (n < 900 || n > 43200)
        return false;
    *out = n;
    return true;
}

/* The source of the AssumeRole call's credentials: source_profile or credential_source. */
static enum cred_err role_source(const struct prof_set *set, struct sig_slice profile,
                                 struct prof_role *r, char *msg, size_t msg_len)
{
    struct sig_slice source = prof_get(set, profile, SIG_SLICE_LIT("credential_source"));
    r->source_profile = prof_get(set, profile, SIG_SLICE_LIT("source_profile"));
    if ((r->source_profile.len == 0) == (source.len == 0))
        return cred_fail(
            msg, msg_len, CRED_ERR_INVALID,
            "profile %.*s has role_arn and must have exactly one of source_profile and "
            "credential_source",
            NAME_ARG(profile));
    if (source.len != 0) {
        if (!sig_slice_eq(source, SIG_SLICE_LIT("Environment")))
            return cred_fail(msg, msg_len, CRED_ERR_UNSUPPORTED,
                             "profile %.*s: credential_source other than Environment is not "
                             "supported yet",
                             NAME_ARG(profile));
        r->source_environment = true;
        return CRED_OK;
    }
    if (!prof_has_profile(set, r->source_profile))
        return cred_fail(msg, msg_len, CRED_ERR_NO_PROFILE,
                         "profile %.*s: its source_profile %.*s is in neither file",
                         NAME_ARG(profile), NAME_ARG(r->source_profile));
    /* A profile may name itself: its own keys sign the call (botocore does the same). */
    if (!sig_slice_eq(r->source_profile, profile) &&
        profile_has(set, r->source_profile, "role_arn"))
        return cred_fail(
            msg, msg_len, CRED_ERR_UNSUPPORTED,
            "profile %.*s: its source_profile %.*s assumes a role too (chained roles are "
            "not supported yet)",
            NAME_ARG(profile), NAME_ARG(r->source_profile));
    return CRED_OK;
}

enum cred_err prof_role(const struct prof_set *set, struct sig_slice profile, struct prof_role *out,
                        char *msg, size_t msg_len)
{
    memset(out, 0, sizeof(*out));
    if (!prof_has_profile(set, profile))
        return missing_profile(profile, msg, msg_len);
    out->role_arn = prof_get(set, profile, SIG_SLICE_LIT("role_arn"));
    if (out->role_arn.len == 0)
        return cred_fail(msg, msg_len, CRED_ERR_NOT_FOUND, "profile %.*s assumes no role",
                         NAME_ARG(profile));
    if (profile_has(set, profile, "web_identity_token_file"))
        return cred_fail(
            msg, msg_len, CRED_ERR_UNSUPPORTED,
            "profile %.*s uses web_identity_token_file, which sigv4d does not support yet",
            NAME_ARG(profile));
    enum cred_err e = role_source(set, profile, out, msg, msg_len);
    if (e != CRED_OK)
        return e;
    out->external_id = prof_get(set, profile, SIG_SLICE_LIT("external_id"));
    out->session_name = prof_get(set, profile, SIG_SLICE_LIT("role_session_name"));
    struct sig_slice d = prof_get(set, profile, SIG_SLICE_LIT("duration_seconds"));
    if (d.len != 0 && !parse_duration(d, &out->duration_s))
        return cred_fail(msg, msg_len, CRED_ERR_INVALID,
                         "profile %.*s: duration_seconds must be a number of 900 to 43200",
                         NAME_ARG(profile));
    return CRED_OK;
}
