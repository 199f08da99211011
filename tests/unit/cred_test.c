/* cred_test.c: refcounted credentials, the environment source and the static provider's
 * asynchronous contract (exactly one callback, never from inside cred_provider_get). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* A fake clock for slot providers. */
static int64_t fake_now_value;
static int64_t fake_now(void *ctx)
{
    (void)ctx;
    return fake_now_value;
}

static struct cred *make_cred(const char *akid)
{
    struct cred *c;
    assert_int_equal(
        cred_new(sig_slice_from_cstr(akid), SIG_SLICE_LIT("secret"), SIG_SLICE_LIT("token"), &c),
        CRED_OK);
    return c;
}

/* Answers the slot as it is when the deferred answer runs, not when the fetch was asked. */
static void test_slot_provider_follows_the_slot(void **state)
{
    (void)state;
    struct fake_loop loop = {0};
    struct cred_io io = {.ctx = &loop, .defer = fake_defer, .now = fake_now};
    struct cred_slot *slot = cred_slot_new();
    struct cred_provider *p = cred_provider_new_slot(&io, slot);
    fake_now_value = 1000;

    struct answer a = {0};
    cred_provider_get(p, on_creds, &a);
    fake_run(&loop);
    assert_int_equal(a.calls, 1);
    assert_null(a.creds);
    assert_int_equal(a.err, CRED_ERR_PENDING); /* before the first answer */
    assert_non_null(strstr(cred_provider_reason(p), "being fetched"));

    cred_slot_fail(slot, CRED_ERR_FETCH, "HTTP 403 AccessDenied: not authorized");
    struct answer b = {0};
    cred_provider_get(p, on_creds, &b);
    fake_run(&loop);
    assert_int_equal(b.err, CRED_ERR_FETCH);
    assert_non_null(strstr(cred_provider_reason(p), "refused"));
    assert_non_null(strstr(cred_provider_reason(p), "AccessDenied"));

    struct cred *c1 = make_cred("AKIDFIRST");
    struct answer d = {0};
    cred_provider_get(p, on_creds, &d);
    cred_slot_publish(slot, c1, 2000); /* published after the fetch, before its answer */
    cred_unref(c1);                    /* the slot holds its own reference */
    fake_run(&loop);
    assert_int_equal(d.err, CRED_OK);
    assert_true(sig_slice_eq(cred_view(d.creds).access_key_id, SIG_SLICE_LIT("AKIDFIRST")));

    /* A failed refresh keeps credentials that are still valid. */
    cred_slot_fail(slot, CRED_ERR_UNREACHABLE, "cannot connect");
    struct answer e = {0};
    cred_provider_get(p, on_creds, &e);
    fake_run(&loop);
    assert_int_equal(e.err, CRED_OK);
    assert_true(sig_slice_eq(cred_view(e.creds).access_key_id, SIG_SLICE_LIT("AKIDFIRST")));

    /* Past the expiry: refused, and the reason names the expiry and the last failure. */
    fake_now_value = 2000;
    struct answer f = {0};
    cred_provider_get(p, on_creds, &f);
    fake_run(&loop);
    assert_null(f.creds);
    assert_int_equal(f.err, CRED_ERR_EXPIRED);
    assert_non_null(strstr(cred_provider_reason(p), "expired"));
    assert_non_null(strstr(cred_provider_reason(p), "cannot connect"));

    /* New credentials replace the old ones; earlier holders keep theirs. */
    struct cred *c2 = make_cred("AKIDSECOND");
    cred_slot_publish(slot, c2, 4000);
    cred_unref(c2);
    struct answer g = {0};
    cred_provider_get(p, on_creds, &g);
    fake_run(&loop);
    assert_int_equal(g.err, CRED_OK);
    assert_true(sig_slice_eq(cred_view(g.creds).access_key_id, SIG_SLICE_LIT("AKIDSECOND")));
    assert_true(sig_slice_eq(cred_view(d.creds).access_key_id, SIG_SLICE_LIT("AKIDFIRST")));

    cred_unref(d.creds);
    cred_unref(e.creds);
    cred_unref(g.creds);
    cred_provider_free(p);
    cred_slot_free(slot);
}

/* No expiry (0) never expires; a direct get returns a reference or the reason. */
static void test_slot_get(void **state)
{
    (void)state;
    struct cred_slot *slot = cred_slot_new();
    enum cred_err err = CRED_OK;
    char why[CRED_MAX_REASON];
    assert_null(cred_slot_get(slot, 5, &err, why, sizeof(why)));
    assert_int_equal(err, CRED_ERR_PENDING);
    struct cred *c = make_cred("AKIDFOREVER");
    cred_slot_publish(slot, c, 0);
    cred_unref(c);
    struct cred *got = cred_slot_get(slot, INT64_MAX, &err, why, sizeof(why));
    assert_non_null(got);
    assert_int_equal(err, CRED_OK);
    cred_unref(got);
    cred_slot_free(slot); /* drops its reference: no leak under ASan */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_defers_and_answers_once),
        cmocka_unit_test(test_provider_without_creds),
        cmocka_unit_test(test_slot_provider_follows_the_slot),
        cmocka_unit_test(test_slot_get),
        cmocka_unit_test(test_cred_new_limits),
        cmocka_unit_test(test_from_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
