/* px_credsetup.c: see px_credsetup.h. */
#include "px_credsetup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "process.h"
#include "profile.h"
#include "px_common.h"
#include "sts.h"

/* Where the credentials come from when they must be fetched: a role to assume (--role-arn or a
 * profile's role_arn) or a profile's credential_process; copied out of the flags and the shared
 * files (freed after start-up). */
struct cred_plan {
    bool assume;                   /* a role is assumed */
    char from[PROF_MAX_NAME + 16]; /* "--role-arn" or "profile NAME": for messages */
    char arn[2048];
    char session_name[STS_MAX_SESSION_NAME + 1];
    char external_id[1300];
    uint32_t duration_s;
    /* Or the profile's credential_process (then `assume` is false). */
    char command[PROC_MAX_LINE_BYTES + 1]; /* "" when none */
    char profile[PROF_MAX_NAME];
};

static bool copy_value(char *out, size_t cap, struct sig_slice v, const char *what,
                       const char *from)
{
    if (px_copy_cstr(out, cap, v))
        return true;
    fprintf(stderr, "sigv4d: %s: %s is too long\n", from, what);
    return false;
}

/* The session name: the profile's role_session_name, else AWS_ROLE_SESSION_NAME as the SDKs
 * read it, else sigv4d-UNIXTIME. */
static bool set_session_name(struct cred_plan *r, struct sig_slice from_profile)
{
    const char *env = getenv("AWS_ROLE_SESSION_NAME");
    struct sig_slice name = from_profile.len != 0 ? from_profile : sig_slice_from_cstr(env);
    const char *where = from_profile.len != 0 ? "role_session_name" : "AWS_ROLE_SESSION_NAME";
    if (name.len == 0) {
        snprintf(r->session_name, sizeof(r->session_name), "sigv4d-%lld", (long long)time(NULL));
        return true;
    }
    if (!sts_session_name_valid(name) ||
        !px_copy_cstr(r->session_name, sizeof(r->session_name), name)) {
        fprintf(stderr,
                "sigv4d: %s: invalid %s: want 2-64 characters of A-Z a-z 0-9 + = , . @ _ -\n",
                r->from, where);
        return false;
    }
    return true;
}

/* Every value STS will get, checked now: a bad one stops start-up instead of failing every
 * refresh. */
static bool check_role(const struct cred_plan *r)
{
    uint8_t mem[4096];
    struct sig_buf body;
    sig_buf_init(&body, mem, sizeof(mem));
    struct sts_assume_role p = {
        .role_arn = sig_slice_from_cstr(r->arn),
        .session_name = sig_slice_from_cstr(r->session_name),
        .external_id = sig_slice_from_cstr(r->external_id),
        .duration_s = r->duration_s != 0 ? r->duration_s : STS_DEFAULT_DURATION_S,
    };
    if (sts_assume_role_body(&p, &body) == CRED_OK)
        return true;
    fprintf(stderr,
            "sigv4d: %s: the role ARN or external_id is malformed (want "
            "arn:PARTITION:iam::ACCOUNT:role/NAME)\n",
            r->from);
    return false;
}

/* The role the selected profile assumes, and its base keys. CRED_ERR_NOT_FOUND: no role. */
static enum cred_err profile_role(const struct prof_set *set, const struct prof_paths *paths,
                                  struct cred_plan *r, struct cred **base, bool *ok)
{
    struct sig_slice profile = sig_slice_from_cstr(paths->profile);
    struct prof_role pr;
    char msg[512];
    enum cred_err e = prof_role(set, profile, &pr, msg, sizeof(msg));
    if (e == CRED_ERR_NOT_FOUND || (e == CRED_ERR_NO_PROFILE && !paths->profile_from_env))
        return CRED_ERR_NOT_FOUND;
    *ok = false;
    if (e == CRED_OK && r->assume) {
        snprintf(msg, sizeof(msg),
                 "--role-arn with profile %s, which assumes a role itself: chained roles are not "
                 "supported yet",
                 paths->profile);
        e = CRED_ERR_UNSUPPORTED;
    } else if (e == CRED_OK && pr.source_environment) {
        snprintf(msg, sizeof(msg),
                 "profile %s: credential_source is Environment but the environment has no keys",
                 paths->profile);
        e = CRED_ERR_INVALID; /* not NOT_FOUND: that means "no role" to the caller */
    } else if (e == CRED_OK) {
        e = sig_slice_eq(pr.source_profile, profile)
                ? cred_from_profile_keys(set, pr.source_profile, base, msg, sizeof(msg))
                : cred_from_profile(set, pr.source_profile, base, msg, sizeof(msg));
    }
    if (e != CRED_OK) {
        fprintf(stderr, "sigv4d: %s%s\n", msg, e == CRED_ERR_NO_PROFILE ? " (AWS_PROFILE)" : "");
        return e;
    }
    r->assume = true;
    snprintf(r->from, sizeof(r->from), "profile %s", paths->profile);
    r->duration_s = pr.duration_s;
    *ok = copy_value(r->arn, sizeof(r->arn), pr.role_arn, "role_arn", r->from) &&
          copy_value(r->external_id, sizeof(r->external_id), pr.external_id, "external_id",
                     r->from) &&
          set_session_name(r, pr.session_name) && check_role(r);
    return CRED_OK;
}

/* The selected profile's credential_process, checked (never echoed: it may hold a secret).
 * CRED_ERR_NOT_FOUND when the profile gets its credentials otherwise. */
static enum cred_err profile_process(const struct prof_set *set, const struct prof_paths *paths,
                                     struct cred_plan *r, bool *ok)
{
    struct sig_slice command;
    if (prof_credential_process(set, sig_slice_from_cstr(paths->profile), &command) != CRED_OK)
        return CRED_ERR_NOT_FOUND;
    *ok = false;
    if (r->assume) {
        fprintf(stderr,
                "sigv4d: --role-arn with profile %s, which uses credential_process: not "
                "supported yet\n",
                paths->profile);
        return CRED_ERR_UNSUPPORTED;
    }
    struct proc_argv *av = px_xmalloc(sizeof(*av));
    char msg[256];
    enum cred_err e = proc_split(command, av, msg, sizeof(msg));
    OPENSSL_cleanse(av, sizeof(*av));
    free(av);
    if (e != CRED_OK || !px_copy_cstr(r->command, sizeof(r->command), command)) {
        fprintf(stderr, "sigv4d: profile %s: credential_process: %s\n", paths->profile,
                e != CRED_OK ? msg : "too long");
        return CRED_ERR_INVALID;
    }
    snprintf(r->profile, sizeof(r->profile), "%s", paths->profile);
    *ok = true;
    return CRED_OK;
}

/*
 * The shared config and credentials files, read once at start-up when the environment leaves
 * something open: the region (after AWS_REGION and AWS_DEFAULT_REGION, before us-east-1) and,
 * if the environment has no keys (*cerr == CRED_ERR_NOT_FOUND), the profile's role or static
 * keys. Returns false after printing one line when sigv4d must not start: a malformed or
 * unreadable file, a profile named by AWS_PROFILE that does not exist, or a profile whose
 * credentials sigv4d cannot use (so that it never silently signs with nothing).
 */
static bool use_shared_files(struct px_config *cfg, struct cred_plan *role, struct cred **creds,
                             enum cred_err *cerr)
{
    struct prof_paths paths;
    struct prof_set *set = NULL;
    char msg[512];
    if (prof_paths_from_env(&paths) != CRED_OK) {
        fprintf(stderr, "sigv4d: AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE or AWS_PROFILE "
                        "is too long\n");
        return false;
    }
    if (prof_set_load(&paths, &set, msg, sizeof(msg)) != CRED_OK) {
        fprintf(stderr, "sigv4d: %s\n", msg);
        return false;
    }
    struct sig_slice profile = sig_slice_from_cstr(paths.profile);
    struct sig_slice region = prof_get(set, profile, SIG_SLICE_LIT("region"));
    if (region.len != 0 && !px_config_set_profile_region(cfg, region))
        px_log(PX_LOG_ERROR, "profile %s: region is not a valid region name: ignored",
               paths.profile);
    bool ok = true;
    if (*creds == NULL && *cerr == CRED_ERR_NOT_FOUND) {
        enum cred_err e = profile_role(set, &paths, role, creds, &ok);
        if (e == CRED_ERR_NOT_FOUND) {
            e = profile_process(set, &paths, role, &ok);
            if (e == CRED_OK || !ok) {
                prof_set_free(set);
                return ok;
            }
        }
        if (e == CRED_ERR_NOT_FOUND) { /* no role: the profile's static keys, if any */
            e = cred_from_profile(set, profile, creds, msg, sizeof(msg));
            bool none =
                e == CRED_ERR_NOT_FOUND || (e == CRED_ERR_NO_PROFILE && !paths.profile_from_env);
            if (e != CRED_OK && !none) { /* none: serve 503s, the log says why */
                fprintf(stderr, "sigv4d: %s%s\n", msg,
                        e == CRED_ERR_NO_PROFILE ? " (AWS_PROFILE)" : "");
                ok = false;
            }
        }
        if (ok && e == CRED_OK) {
            char id[8];
            cred_redacted_id(*creds, id);
            px_log(PX_LOG_INFO, "credentials from profile %s (shared files), access key %s%s",
                   paths.profile, id, role->assume ? ", to assume its role" : "");
            *cerr = CRED_OK;
        }
    }
    prof_set_free(set);
    return ok;
}

static bool flag_role(const struct px_config *cfg, struct cred_plan *r)
{
    if (cfg->role_arn == NULL)
        return true;
    r->assume = true;
    snprintf(r->from, sizeof(r->from), "--role-arn");
    return copy_value(r->arn, sizeof(r->arn), sig_slice_from_cstr(cfg->role_arn), "the ARN",
                      r->from) &&
           set_session_name(r, (struct sig_slice){0}) && check_role(r);
}

static bool start_role(const struct px_config *cfg, const struct cred_plan *r,
                       struct px_cred_setup *out)
{
    sts_init();
    out->slot = cred_slot_new();
    char region[64];
    if (!px_copy_cstr(region, sizeof(region), cfg->region.len ? cfg->region : cfg->fallback_region))
        return false;
    struct px_creds_params cp = {.cfg = cfg,
                                 .base = out->creds,
                                 .slot = out->slot,
                                 .role_arn = r->arn,
                                 .session_name = r->session_name,
                                 .external_id = r->external_id,
                                 .duration_s = r->duration_s,
                                 .region = region};
    out->thread = px_creds_start(&cp);
    /* The workers sign with the role's credentials only: drop the base keys from their view. */
    cred_unref(out->creds);
    out->creds = NULL;
    return out->thread != NULL;
}

static bool start_process(const struct px_config *cfg, const struct cred_plan *r,
                          struct px_cred_setup *out)
{
    out->slot = cred_slot_new();
    struct px_creds_params cp = {.kind = PX_CREDS_PROCESS,
                                 .cfg = cfg,
                                 .slot = out->slot,
                                 .command = r->command,
                                 .profile = r->profile};
    out->thread = px_creds_start(&cp);
    return out->thread != NULL;
}

bool px_cred_setup(struct px_config *cfg, struct px_cred_setup *out)
{
    memset(out, 0, sizeof(*out));
    out->exit_code = 1;
    struct cred_plan role;
    memset(&role, 0, sizeof(role));
    if (!flag_role(cfg, &role)) {
        out->exit_code = 2;
        return false;
    }
    enum cred_err cerr = cred_from_env(&out->creds);
    if (cerr == CRED_OK) {
        char id[8];
        cred_redacted_id(out->creds, id);
        px_log(PX_LOG_INFO, "credentials from the environment, access key %s", id);
    }
    /* The shared files only when needed: with keys and a region in the environment (or
     * --region) a broken ~/.aws/config cannot stop sigv4d. */
    if ((cerr == CRED_ERR_NOT_FOUND || (cfg->region.len == 0 && !cfg->fallback_region_from_env)) &&
        !use_shared_files(cfg, &role, &out->creds, &cerr))
        return false;
    if (role.assume && cerr != CRED_OK) {
        fprintf(stderr, "sigv4d: %s needs base credentials (environment or profile): %s\n",
                role.from, cred_err_str(cerr));
        return false;
    }
    if (role.assume)
        return start_role(cfg, &role, out);
    if (role.command[0] != '\0')
        return start_process(cfg, &role, out);
    if (cerr != CRED_OK) {
        /* Keep serving: every request gets 503 with the reason, which is easier to diagnose
         * from a client than a proxy that refuses to start. */
        px_log(PX_LOG_ERROR,
               "no usable credentials in the environment or the shared files (%s): requests "
               "will get 503",
               cred_err_str(cerr));
    }
    return true;
}

void px_cred_setup_cleanup(struct px_cred_setup *s)
{
    px_creds_stop(s->thread);
    s->thread = NULL;
    cred_slot_free(s->slot);
    s->slot = NULL;
    cred_unref(s->creds);
    s->creds = NULL;
}
