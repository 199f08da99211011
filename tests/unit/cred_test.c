/* cred_test.c: refcounted credentials, the environment source and the static provider's
 * asynchronous contract (exactly one callback, never from inside cred_provider_get). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cred.h"

/* A fake event loop: deferred tasks queue up until the test runs them. */
struct fake_loop {
    cred_task_fn fn[8];
    void *arg[8];
    int n;
};

static void fake_defer(void *ctx, cred_task_fn fn, void *arg)
{
    struct fake_loop *l = ctx;
    assert_true(l->n < 8);
    l->fn[l->n] = fn;
    l->arg[l->n] = arg;
    l->n++;
}

static void fake_run(struct fake_loop *l)
{
    int n = l->n;
    l->n = 0;
    for (int i = 0; i < n; i++)
        l->fn[i](l->arg[i]);
}

struct answer {
    int calls;
    struct cred *creds;
    enum cred_err err;
};

static void on_creds(struct cred *creds, enum cred_err err, void *arg)
{
    struct answer *a = arg;
    a->calls++;
    a->creds = creds;
    a->err = err;
}

static void test_provider_defers_and_answers_once(void **state)
{
    (void)state;
    struct cred *c;
    assert_int_equal(
        cred_new(SIG_SLICE_LIT("AKIDEXAMPLE"), SIG_SLICE_LIT("secret"), SIG_SLICE_LIT("token"), &c),
        CRED_OK);
    struct fake_loop loop = {0};
    struct cred_io io = {.ctx = &loop, .defer = fake_defer};
    struct cred_provider *p = cred_provider_new_static(&io, c, CRED_OK);
    cred_unref(c); /* the provider holds its own reference */
    struct answer a = {0}, b = {0};
    cred_provider_get(p, on_creds, &a);
    cred_provider_get(p, on_creds, &b);
    assert_int_equal(a.calls, 0); /* never from inside the call, even on a known answer */
    assert_int_equal(b.calls, 0);
    fake_run(&loop);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.err, CRED_OK);
    struct sig_credentials v = cred_view(a.creds);
    assert_true(sig_slice_eq(v.access_key_id, SIG_SLICE_LIT("AKIDEXAMPLE")));
    assert_true(sig_slice_eq(v.secret_access_key, SIG_SLICE_LIT("secret")));
    assert_true(sig_slice_eq(v.session_token, SIG_SLICE_LIT("token")));
    char id[8];
    cred_redacted_id(a.creds, id);
    assert_string_equal(id, "...MPLE");
    /* The callers' references outlive the provider. */
    cred_provider_free(p);
    assert_true(sig_slice_eq(cred_view(b.creds).secret_access_key, SIG_SLICE_LIT("secret")));
    cred_unref(a.creds);
    cred_unref(b.creds);
    fake_run(&loop);
    assert_int_equal(a.calls, 1);
}

static void test_provider_without_creds(void **state)
{
    (void)state;
    struct fake_loop loop = {0};
    struct cred_io io = {.ctx = &loop, .defer = fake_defer};
    struct cred_provider *p = cred_provider_new_static(&io, NULL, CRED_ERR_INVALID);
    struct answer a = {0};
    cred_provider_get(p, on_creds, &a);
    assert_int_equal(a.calls, 0);
    fake_run(&loop);
    assert_int_equal(a.calls, 1);
    assert_null(a.creds);
    assert_int_equal(a.err, CRED_ERR_INVALID);
    cred_provider_free(p);
}

static void test_cred_new_limits(void **state)
{
    (void)state;
    struct cred *c = (struct cred *)1;
    assert_int_equal(cred_new(SIG_SLICE_LIT(""), SIG_SLICE_LIT("s"), SIG_SLICE_LIT(""), &c),
                     CRED_ERR_INVALID);
    assert_null(c);
    assert_int_equal(cred_new(SIG_SLICE_LIT("a"), SIG_SLICE_LIT(""), SIG_SLICE_LIT(""), &c),
                     CRED_ERR_INVALID);
    static uint8_t big[CRED_MAX_VALUE + 1];
    struct sig_slice too_long = {big, sizeof(big)};
    assert_int_equal(cred_new(SIG_SLICE_LIT("a"), SIG_SLICE_LIT("s"), too_long, &c),
                     CRED_ERR_TOO_LONG);
    assert_int_equal(cred_new(SIG_SLICE_LIT("a"), SIG_SLICE_LIT("s"), SIG_SLICE_LIT(""), &c),
                     CRED_OK);
    assert_int_equal(cred_view(c).session_token.len, 0);
    assert_ptr_equal(cred_ref(c), c);
    cred_unref(c);
    cred_unref(c);
    cred_unref(NULL);
}

static void test_from_env(void **state)
{
    (void)state;
    struct cred *c;
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    assert_int_equal(cred_from_env(&c), CRED_ERR_NOT_FOUND);
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    assert_int_equal(cred_from_env(&c), CRED_ERR_INVALID);
    setenv("AWS_SECRET_ACCESS_KEY", "sekrit", 1);
    setenv("AWS_SESSION_TOKEN", "tok", 1);
    assert_int_equal(cred_from_env(&c), CRED_OK);
    assert_true(sig_slice_eq(cred_view(c).session_token, SIG_SLICE_LIT("tok")));
    cred_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_defers_and_answers_once),
        cmocka_unit_test(test_provider_without_creds),
        cmocka_unit_test(test_cred_new_limits),
        cmocka_unit_test(test_from_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
