/*
 * profile.h: the AWS shared config and credentials files (~/.aws/config, ~/.aws/credentials)
 * and the static credentials of a profile.
 *
 * The format follows the AWS SDKs and Tools Reference Guide ("Location of the shared config
 * and credentials files", "Format of the config file") and the SDKs' shared parser rules:
 *
 *   - Lines end with LF or CRLF. Blank lines, and lines whose first non-blank character is
 *     '#' or ';', are comments.
 *   - "[name]" starts a section; text after the ']' that starts with '#' or ';' is a comment.
 *     In the config file: [default], [profile NAME], [sso-session NAME], [services NAME];
 *     any other section (such as [NAME] without "profile ") is ignored. When the config file
 *     has [profile default], its plain [default] sections are ignored. In the credentials
 *     file every [NAME] is a profile; [profile NAME] there is ignored. Names with characters
 *     outside printable ASCII, or with '[', ']', '#', ';', quotes or '\', are ignored.
 *   - "key = value": whitespace around both is trimmed; the value runs to the end of the
 *     line or to a '#' or ';' preceded by whitespace (an inline comment); "a=b#c" keeps
 *     "b#c". Keys are ASCII case-insensitive (stored lowercased, as botocore and the Rust SDK
 *     do); values are kept exactly. A key containing whitespace is ignored. Within a section
 *     the last definition wins; a section repeated in one file adds to the first.
 *   - A line starting with whitespace continues the property above it: "key = a" then
 *     "  b" gives "a\nb" (no comment stripping in continuations). When the property's value
 *     is empty, the indented lines are sub-properties instead: "s3 =" then "  addressing_style
 *     = path" is stored as key "s3.addressing_style" (the sub-key keeps its case).
 *   - The credentials file wins over the config file, key by key, for the same profile.
 *
 * Everything lives in one `struct prof_set`: the bytes of both files (parsed in place) and an
 * index of sections and properties. The set holds secrets (access keys, tokens): its memory is
 * wiped with OPENSSL_cleanse when freed. Error messages name the file and the line, never a
 * value. Loading is synchronous: it is meant for start-up, before any event loop runs.
 */
#ifndef PROFILE_H
#define PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "cred.h"
#include "sig_types.h"

#define PROF_MAX_FILE_BYTES (1u << 20) /* per file: CRED_ERR_FILE_LIMIT above it */
#define PROF_MAX_LINE_BYTES 8192u      /* per line, without the line end */
#define PROF_MAX_SECTIONS 1024u        /* section headers per file */
#define PROF_MAX_PROPERTIES 8192u      /* properties and sub-properties per file */
#define PROF_MAX_PATH 4096u            /* resolved file name, with its NUL */
#define PROF_MAX_NAME 256u             /* profile name, with its NUL */

/* The kinds of sections a set keeps. */
enum prof_kind {
    PROF_KIND_PROFILE = 0,     /* [default], [profile NAME]; [NAME] in the credentials file */
    PROF_KIND_SSO_SESSION = 1, /* [sso-session NAME] (kept for later providers) */
    PROF_KIND_SERVICES = 2,    /* [services NAME] (kept for later use) */
};

/* Where the files are and which profile is selected. NUL-terminated strings. */
struct prof_paths {
    char config[PROF_MAX_PATH];      /* "" if there is none to read (no HOME) */
    char credentials[PROF_MAX_PATH]; /* "" if there is none to read (no HOME) */
    char profile[PROF_MAX_NAME];     /* AWS_PROFILE, else "default" */
    bool profile_from_env;           /* AWS_PROFILE chose it: a missing profile is an error */
};

/*
 * Resolves the locations from the given environment values (each may be NULL or empty, which
 * means unset): AWS_CONFIG_FILE, else HOME/.aws/config; AWS_SHARED_CREDENTIALS_FILE, else
 * HOME/.aws/credentials; a leading "~" or "~/" expands to HOME. The profile is AWS_PROFILE,
 * else "default". Pure: no environment access, so it is testable without setenv.
 * Errors: CRED_ERR_TOO_LONG if a path or the profile name does not fit.
 */
SIG_MUST_USE enum cred_err prof_paths_resolve(const char *aws_config_file,
                                              const char *aws_shared_credentials_file,
                                              const char *aws_profile, const char *home,
                                              struct prof_paths *out);

/* prof_paths_resolve with AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE and HOME
 * from the process environment: the only place this module reads the environment. */
SIG_MUST_USE enum cred_err prof_paths_from_env(struct prof_paths *out);

/* The parsed files. Immutable once loaded, so it may be read from several threads. */
struct prof_set;

/*
 * Reads and parses both files (synchronous). A missing file (ENOENT, ENOTDIR, or an empty
 * path) counts as empty, not as an error. On success *out is a new set the caller owns (free
 * it with prof_set_free). Errors, with a one-line message in err (file and line, never a
 * value): CRED_ERR_FILE_UNREADABLE (not a regular file, permissions, I/O),
 * CRED_ERR_FILE_LIMIT (a PROF_MAX_* limit), CRED_ERR_FILE_SYNTAX. *out is NULL on error.
 */
SIG_MUST_USE enum cred_err prof_set_load(const struct prof_paths *paths, struct prof_set **out,
                                         char *err, size_t err_len);

/*
 * The same from bytes in memory, which are copied (the caller keeps and wipes its own).
 * config_name and credentials_name label error messages (e.g. the paths) and are not kept.
 * For tests, fuzzing and tools.
 */
SIG_MUST_USE enum cred_err prof_set_parse(struct sig_slice config, const char *config_name,
                                          struct sig_slice credentials,
                                          const char *credentials_name, struct prof_set **out,
                                          char *err, size_t err_len);

/* Wipes (OPENSSL_cleanse) and frees the set. NULL is ignored. */
void prof_set_free(struct prof_set *set);

/* True if either file has the profile (even with no properties). */
bool prof_has_profile(const struct prof_set *set, struct sig_slice profile);
/* True if the config file has a section of this kind and name. */
bool prof_has_section(const struct prof_set *set, enum prof_kind kind, struct sig_slice name);

/*
 * Looks up `key` (lowercase; "parent.sub" for a sub-property) in a section. On a hit *value
 * is a view into the set, valid until prof_set_free, and the result is true; otherwise *value
 * is the empty slice. A key defined with an empty value is found (and empty).
 */
bool prof_find(const struct prof_set *set, enum prof_kind kind, struct sig_slice name,
               struct sig_slice key, struct sig_slice *value);

/* prof_find for a profile; the empty slice if absent. */
struct sig_slice prof_get(const struct prof_set *set, struct sig_slice profile,
                          struct sig_slice key);

/* Called once for every property in effect (the one a lookup would return), in no set order:
 * key and sub are views (sub is empty unless it is a sub-property "key.sub"). For tools. */
typedef void (*prof_each_fn)(enum prof_kind kind, struct sig_slice name, struct sig_slice key,
                             struct sig_slice sub, struct sig_slice value, void *arg);
void prof_each(const struct prof_set *set, prof_each_fn fn, void *arg);

/*
 * Static credentials from `profile`: aws_access_key_id, aws_secret_access_key and
 * aws_session_token (optional). The order follows botocore's chain: a profile that assumes a
 * role (role_arn), uses web identity, SSO (sso_session, sso_start_url, ...) or has no keys but
 * credential_process or credential_source gives CRED_ERR_UNSUPPORTED, with a message naming
 * the profile and the setting. CRED_ERR_NO_PROFILE if neither file has the profile,
 * CRED_ERR_NOT_FOUND if it has no credentials at all, CRED_ERR_INVALID if only one of the key
 * id and the secret is set, CRED_ERR_TOO_LONG. msg gets a one-line reason on error (never a
 * value). On success *out holds the only reference.
 */
SIG_MUST_USE enum cred_err cred_from_profile(const struct prof_set *set, struct sig_slice profile,
                                             struct cred **out, char *msg, size_t msg_len);

/* The role a profile assumes, as the SDKs read it (views into the set). */
struct prof_role {
    struct sig_slice role_arn;
    struct sig_slice source_profile; /* whose static keys sign the AssumeRole call; may be the
                                        profile itself */
    bool source_environment;         /* credential_source = Environment instead */
    struct sig_slice external_id;    /* external_id, optional */
    struct sig_slice session_name;   /* role_session_name, optional */
    uint32_t duration_s;             /* duration_seconds; 0 when absent */
};

/*
 * The role `profile` assumes (role_arn). CRED_ERR_NOT_FOUND if it has no role_arn (then
 * cred_from_profile applies). CRED_ERR_UNSUPPORTED, naming the setting, for web identity
 * (web_identity_token_file), a credential_source other than Environment, a source_profile that
 * itself assumes a role (chained roles), and CRED_ERR_INVALID for neither or both of
 * source_profile and credential_source, or a duration_seconds that is not a number of 900 to
 * 43200. CRED_ERR_NO_PROFILE if the profile (or its source_profile) is in neither file.
 * msg gets a one-line reason on error (never a value but the setting names).
 */
SIG_MUST_USE enum cred_err prof_role(const struct prof_set *set, struct sig_slice profile,
                                     struct prof_role *out, char *msg, size_t msg_len);

/*
 * The credential_process command of `profile` when that is where its credentials come from, as
 * in botocore's chain: it has no role_arn, web identity or SSO settings (which come first) and
 * no static keys (which win). CRED_OK with *command a view into the set; CRED_ERR_NOT_FOUND
 * otherwise (also when the profile does not exist).
 */
SIG_MUST_USE enum cred_err prof_credential_process(const struct prof_set *set,
                                                   struct sig_slice profile,
                                                   struct sig_slice *command);

/*
 * The static keys of `profile` alone (aws_access_key_id, aws_secret_access_key,
 * aws_session_token), whatever else it sets: for a source_profile that names itself.
 * CRED_ERR_NOT_FOUND, CRED_ERR_INVALID, CRED_ERR_TOO_LONG as cred_from_profile.
 */
SIG_MUST_USE enum cred_err cred_from_profile_keys(const struct prof_set *set,
                                                  struct sig_slice profile, struct cred **out,
                                                  char *msg, size_t msg_len);

/*
 * Test hook: when set, prof_set_free calls it with each block just after wiping it and just
 * before freeing it, so a test can check that the bytes are zero. NULL in production.
 */
extern void (*prof_wipe_observer)(const void *ptr, size_t len);

#endif
