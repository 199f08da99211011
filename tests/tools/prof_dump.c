/*
 * prof_dump: parses an AWS shared config file and credentials file with providers/profile.c
 * and prints what a lookup sees, so tests/differential/test_profile_diff.py can compare it
 * with botocore's configloader.
 *
 * Usage: prof_dump CONFIG_PATH CREDENTIALS_PATH [NAME...]
 * (a path may be "" or missing: no such file). Output, one record per line, fields separated
 * by tabs, each field escaped (\\ for a backslash, \n, \r and \t for those bytes):
 *
 *   P KIND NAME KEY VALUE   every property in effect; KIND is profile, sso-session or
 *                           services; KEY is "key" or "key.sub" for a sub-property
 *   H NAME 0|1              prof_has_profile for each NAME given on the command line
 *
 * On a load error it prints "E CODE MESSAGE" and exits 1.
 *
 * This is a test tool: it prints values, secret keys included. Never point it at real files.
 */
#include <stdio.h>

#include "profile.h"

static void put_escaped(struct sig_slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (c == '\\')
            fputs("\\\\", stdout);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else
            putchar(c);
    }
}

static void on_property(enum prof_kind kind, struct sig_slice name, struct sig_slice key,
                        struct sig_slice sub, struct sig_slice value, void *arg)
{
    (void)arg;
    static const char *const kinds[] = {"profile", "sso-session", "services"};
    printf("P\t%s\t", kinds[kind]);
    put_escaped(name);
    putchar('\t');
    put_escaped(key);
    if (sub.len != 0) {
        putchar('.');
        put_escaped(sub);
    }
    putchar('\t');
    put_escaped(value);
    putchar('\n');
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: prof_dump CONFIG_PATH [CREDENTIALS_PATH [NAME...]]\n");
        return 2;
    }
    struct prof_paths paths;
    if (prof_paths_resolve(argv[1], argc > 2 ? argv[2] : NULL, NULL, NULL, &paths) != CRED_OK) {
        fprintf(stderr, "prof_dump: path too long\n");
        return 2;
    }
    struct prof_set *set;
    char err[512];
    enum cred_err e = prof_set_load(&paths, &set, err, sizeof(err));
    if (e != CRED_OK) {
        printf("E\t%d\t%s\n", (int)e, err);
        return 1;
    }
    prof_each(set, on_property, NULL);
    for (int i = 3; i < argc; i++) {
        struct sig_slice name = sig_slice_from_cstr(argv[i]);
        printf("H\t");
        put_escaped(name);
        printf("\t%d\n", prof_has_profile(set, name) ? 1 : 0);
    }
    prof_set_free(set);
    return 0;
}
