/*
 * px_credsetup.h: which credentials sigv4d signs with, decided once at start-up.
 *
 * The order follows the SDKs' chain: the environment's keys; else the selected profile of the
 * shared files, either its static keys or, when it has role_arn, the role it assumes (base
 * keys from its source_profile or, with credential_source = Environment, the environment);
 * --role-arn assumes a role from whichever base credentials that gave. A role is assumed
 * and refreshed by the credentials thread (px_creds.h); static keys are used as they are.
 */
#ifndef PX_CREDSETUP_H
#define PX_CREDSETUP_H

#include <stdbool.h>

#include "cred.h"
#include "px_config.h"
#include "px_creds.h"

struct px_cred_setup {
    struct cred *creds;      /* static credentials (NULL when a role is assumed or none) */
    struct cred_slot *slot;  /* a role's credentials, kept fresh by `thread` */
    struct px_creds *thread; /* NULL unless a role is assumed */
    int exit_code;           /* when px_cred_setup returns false: 1 or 2 (a bad value) */
};

/*
 * Resolves the credentials (reading the shared files only when the environment leaves keys or
 * the region open; they may set cfg's fallback region) and, for a role, starts the credentials
 * thread. Call with signals already blocked (the thread inherits the mask). False after
 * printing one line when sigv4d must not start. No credentials at all is not an error:
 * requests then get 503.
 */
bool px_cred_setup(struct px_config *cfg, struct px_cred_setup *out);
/* Stops the thread and drops every reference. */
void px_cred_setup_cleanup(struct px_cred_setup *s);

#endif
