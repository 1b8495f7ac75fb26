/* SPDX-License-Identifier: MIT */
/*
 * test_api_errors.c - adversarial input to every public function: NULL,
 * objects that are not live braid objects, out-of-range arguments,
 * task-only calls outside a task, waiting inside a loop callback, and
 * spawning into a runtime that is shutting down. Each gives the code the
 * header documents, and none crashes.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(api_errors, .init = t_leak_init, .fini = t_leak_fini);

/*
 * Readable memory that holds no braid object: entry points must reject it
 * by its magic rather than crash or trust it. 64 KiB is bigger than any
 * braid object, so a check that reads a header field stays inside it.
 */
static void *fake_object(void)
{
	void *p = malloc(64 * 1024);

	cr_assert_not_null(p);
	memset(p, 0x5a, 64 * 1024);
	return p;
}

static void *noop_task(void *arg)
{
	return arg;
}

static void noop_cb(void *arg)
{
}

static void noop_done(br_future *f, void *arg)
{
}

/* Assert that f came back FAILED with code and a message, and free it. */
static void assert_failed_future(br_future *f, int code)
{
	void *v = (void *)1;

	cr_assert_not_null(f, "futures are never NULL");
	cr_assert_eq(br_future_state(f), BR_FAILED);
	cr_assert_eq(br_future_error(f), code, "error %d (%s), want %d (%s)",
		     br_future_error(f), br_strerror(br_future_error(f)), code,
		     br_strerror(code));
	cr_assert_not_null(br_future_message(f));
	cr_assert_str_not_empty(br_future_message(f));
	cr_assert_eq(br_await(f, &v), code);
	cr_assert_null(v);
	br_future_release(f);
}

/* ------------------------------------------------------------------ */
/* Spawning                                                            */
/* ------------------------------------------------------------------ */

Test(api_errors, spawn_with_a_null_runtime_fails_with_ebadobj, .timeout = 10.0)
{
	assert_failed_future(br_spawn(NULL, noop_task, NULL), BR_EBADOBJ);
	assert_failed_future(br_spawn_on(NULL, 0, noop_task, NULL), BR_EBADOBJ);
	assert_failed_future(br_spawn_ex(NULL, noop_task, NULL, NULL),
			     BR_EBADOBJ);
}

Test(api_errors, spawn_on_a_fake_runtime_fails_with_ebadobj, .timeout = 10.0)
{
	void *fake = fake_object();

	assert_failed_future(br_spawn(fake, noop_task, NULL), BR_EBADOBJ);
	cr_assert_eq(br_runtime_workers(fake), 0);
	cr_assert_eq(br_runtime_features(fake), 0);
	free(fake);
}

Test(api_errors, spawn_with_a_null_function_fails_with_einval, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);

	assert_failed_future(br_spawn(rt, NULL, NULL), -EINVAL);
	assert_failed_future(br_spawn_on(rt, 0, NULL, NULL), -EINVAL);
	assert_failed_future(br_spawn_ex(rt, NULL, NULL, NULL), -EINVAL);
	br_runtime_free(rt);
}

Test(api_errors, spawn_on_a_worker_out_of_range_fails_with_einval,
     .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_spawn_opts o = { .worker = 2, .flags = BR_SPAWN_PINNED };
	br_future *ok;

	assert_failed_future(br_spawn_on(rt, 2, noop_task, NULL), -EINVAL);
	assert_failed_future(br_spawn_on(rt, UINT_MAX, noop_task, NULL),
			     -EINVAL);
	assert_failed_future(br_spawn_ex(rt, noop_task, NULL, &o), -EINVAL);
	/* The last valid index works. */
	ok = br_spawn_on(rt, 1, noop_task, (void *)3);
	cr_assert_eq((uintptr_t)t_await_value(ok), 3);
	br_future_release(ok);
	br_runtime_free(rt);
}

Test(api_errors, spawn_ex_rejects_huge_stacks_and_unknown_flags,
     .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_spawn_opts big = { .stack_size = ((size_t)1 << 30) + 1 };
	br_spawn_opts flags = { .flags = 0x80 };
	br_future *ok;

	assert_failed_future(br_spawn_ex(rt, noop_task, NULL, &big), -EINVAL);
	assert_failed_future(br_spawn_ex(rt, noop_task, NULL, &flags), -EINVAL);
	/* NULL options are the defaults. */
	ok = br_spawn_ex(rt, noop_task, (void *)4, NULL);
	cr_assert_eq((uintptr_t)t_await_value(ok), 4);
	br_future_release(ok);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Futures and promises                                                */
/* ------------------------------------------------------------------ */

static void *sleep_a_bit(void *arg)
{
	br_sleep_ms(20);
	return NULL;
}

Test(api_errors, future_calls_on_null_give_their_documented_codes,
     .timeout = 10.0)
{
	void *v = (void *)1;
	size_t len = 7;

	cr_assert_eq(br_await(NULL, &v), BR_EBADOBJ);
	cr_assert_eq(br_await(NULL, NULL), BR_EBADOBJ);
	cr_assert_eq(br_future_state(NULL), BR_FAILED);
	cr_assert_eq(br_future_error(NULL), BR_EBADOBJ);
	cr_assert_not_null(br_future_message(NULL));
	cr_assert_null(br_future_bytes(NULL, &len));
	cr_assert_eq(len, 0);
	cr_assert_eq(br_future_on_done(NULL, noop_done, NULL), BR_EBADOBJ);
	cr_assert_eq(br_cancel(NULL), BR_EBADOBJ);
	cr_assert_eq(br_promise_resolve(NULL, NULL), BR_EBADOBJ);
	cr_assert_eq(br_promise_reject(NULL, -EIO, "x"), BR_EBADOBJ);
	cr_assert_eq(br_wait_for(NULL, 10, &v), BR_EBADOBJ);
	br_future_release(NULL);
}

Test(api_errors, resolve_bytes_on_null_still_frees_the_buffer, .timeout = 10.0)
{
	/* Takes ownership "also on error": LSan reports a leak otherwise. */
	cr_assert_eq(br_promise_resolve_bytes(NULL, malloc(16), 16),
		     BR_EBADOBJ);
}

Test(api_errors, resolve_bytes_without_a_buffer_but_a_length_is_einval,
     .timeout = 10.0)
{
	br_future *p = br_promise_new();
	size_t len = 1;

	cr_assert_eq(br_promise_resolve_bytes(p, NULL, 100), -EINVAL);
	cr_assert_eq(br_future_state(p), BR_PENDING, "p must stay pending");
	/* No buffer and no length is a valid empty result. */
	cr_assert_eq(br_promise_resolve_bytes(p, NULL, 0), 0);
	cr_assert_eq(br_future_state(p), BR_DONE);
	cr_assert_null(br_future_bytes(p, &len));
	cr_assert_eq(len, 0);
	br_future_release(p);
}

Test(api_errors, future_calls_on_a_fake_object_give_ebadobj, .timeout = 10.0)
{
	br_future *fake = fake_object();

	cr_assert_eq(br_await(fake, NULL), BR_EBADOBJ);
	cr_assert_eq(br_future_state(fake), BR_FAILED);
	cr_assert_eq(br_future_error(fake), BR_EBADOBJ);
	cr_assert_eq(br_cancel(fake), BR_EBADOBJ);
	cr_assert_eq(br_promise_resolve(fake, NULL), BR_EBADOBJ);
	cr_assert_eq(br_future_on_done(fake, noop_done, NULL), BR_EBADOBJ);
	free(fake);
}

Test(api_errors, on_done_with_a_null_callback_fails_with_einval,
     .timeout = 10.0)
{
	br_future *p = br_promise_new();

	cr_assert_eq(br_future_on_done(p, NULL, NULL), -EINVAL);
	br_promise_resolve(p, NULL);
	cr_assert_eq(br_future_on_done(p, NULL, NULL), -EINVAL);
	br_future_release(p);
}

Test(api_errors, reject_with_a_nonnegative_error_fails_with_einval,
     .timeout = 10.0)
{
	br_future *p = br_promise_new();

	cr_assert_eq(br_promise_reject(p, 5, "x"), -EINVAL);
	cr_assert_eq(br_promise_reject(p, 0, "x"), -EINVAL);
	cr_assert_eq(br_future_state(p), BR_PENDING, "p must be unchanged");
	cr_assert_eq(br_promise_reject(p, -EIO, "x"), 0);
	br_future_release(p);
}

Test(api_errors, promise_calls_on_a_task_future_fail_with_einval,
     .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *t = br_spawn(rt, sleep_a_bit, NULL);

	cr_assert_eq(br_promise_resolve(t, NULL), -EINVAL);
	cr_assert_eq(br_promise_reject(t, -EIO, "x"), -EINVAL);
	cr_assert_eq(br_promise_resolve_bytes(t, malloc(8), 8), -EINVAL);
	cr_assert_null(t_await_value(t), "the task was disturbed");
	br_future_release(t);
	br_runtime_free(rt);
}

Test(api_errors, retain_of_null_returns_null, .timeout = 10.0)
{
	cr_assert_null(br_future_retain(NULL));
}

/* ------------------------------------------------------------------ */
/* Runtime                                                             */
/* ------------------------------------------------------------------ */

Test(api_errors, runtime_new_with_a_null_out_fails_with_einval, .timeout = 10.0)
{
	br_config cfg = { .workers = 1, .flags = BR_CONFIG_QUIET };
	int threads = t_count_threads();

	cr_assert_eq(br_runtime_new(NULL, &cfg), -EINVAL);
	cr_assert_eq(br_runtime_new(NULL, NULL), -EINVAL);
	cr_assert_eq(t_count_threads(), threads, "it started threads");
	br_runtime_free(NULL);
	cr_assert_eq(br_runtime_workers(NULL), 0);
	cr_assert_eq(br_runtime_features(NULL), 0);
}

Test(api_errors, run_with_a_null_main_fails, .timeout = 10.0)
{
	br_config cfg = { .workers = 1, .flags = BR_CONFIG_QUIET };
	void *v = (void *)1;

	cr_assert_eq(br_run(&cfg, NULL, NULL, &v), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Combinators and groups                                              */
/* ------------------------------------------------------------------ */

Test(api_errors, combinators_reject_null_arrays_and_elements, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	br_future *with_null[2] = { p, NULL };
	void *v[2];

	br_promise_resolve(p, NULL);
	cr_assert_eq(br_gather(NULL, 2, v), -EINVAL);
	cr_assert_eq(br_gather(NULL, 0, NULL), 0);
	cr_assert_eq(br_gather_ex(NULL, 2, v, BR_GATHER_FAIL_FAST), -EINVAL);
	cr_assert_eq(br_gather(with_null, 2, v), BR_EBADOBJ);
	cr_assert_eq(br_wait_any(NULL, 2, 0), -EINVAL);
	cr_assert_eq(br_wait_any(&p, 0, 0), -EINVAL);
	with_null[0] = NULL;
	with_null[1] = p;
	cr_assert_eq(br_wait_any(with_null, 2, 0), BR_EBADOBJ);
	cr_assert_null(br_as_completed_new(NULL, 1));
	cr_assert_null(br_as_completed_new(with_null, 2));
	br_as_completed_free(NULL);
	br_future_release(p);
}

Test(api_errors, shield_of_null_is_a_failed_future, .timeout = 10.0)
{
	br_future *s = br_shield(NULL);

	cr_assert_not_null(s);
	cr_assert_eq(br_future_state(s), BR_FAILED);
	/* The header names no code here; the pointer is not a future. */
	cr_assert(br_future_error(s) == BR_EBADOBJ ||
			  br_future_error(s) == -EINVAL,
		  "error %d", br_future_error(s));
	br_future_release(s);
}

Test(api_errors, group_calls_reject_bad_input, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_group *g = (br_group *)(uintptr_t)1;
	int ret;

	cr_assert_eq(br_group_new(NULL, rt), -EINVAL);
	ret = br_group_new(&g, NULL);
	cr_assert(ret == -EINVAL || ret == BR_EBADOBJ, "got %d", ret);
	cr_assert_eq(g, (br_group *)(uintptr_t)1, "*out changed on failure");
	cr_assert_eq(br_group_new(&g, rt), 0);
	assert_failed_future(br_group_spawn(g, NULL, NULL), -EINVAL);
	br_group_free(g);
	br_group_free(NULL);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Callbacks                                                           */
/* ------------------------------------------------------------------ */

Test(api_errors, call_soon_and_later_reject_bad_input, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);

	assert_failed_future(br_call_soon(NULL, noop_cb, NULL), BR_EBADOBJ);
	assert_failed_future(br_call_soon(rt, NULL, NULL), -EINVAL);
	assert_failed_future(br_call_later(NULL, 5, noop_cb, NULL), BR_EBADOBJ);
	assert_failed_future(br_call_later(rt, 5, NULL, NULL), -EINVAL);
	br_runtime_free(rt);
}

struct in_cb {
	br_future *pending, *done;
	int await_pending, await_done, gather_pending;
	void *fail_ret, *done_value;
	br_future *current;
	int cancelled;
};

static void waits_inside_a_callback(void *arg)
{
	struct in_cb *c = arg;

	c->await_pending = br_await(c->pending, NULL);
	c->gather_pending = br_gather(&c->pending, 1, NULL);
	c->await_done = br_await(c->done, &c->done_value);
	c->fail_ret = br_fail(-EIO, "not a task");
	c->current = br_current();
	c->cancelled = br_cancelled();
}

Test(api_errors, waiting_in_a_loop_callback_gives_edeadlk, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct in_cb c = { .pending = br_promise_new(),
			   .done = br_promise_new(),
			   .fail_ret = (void *)1,
			   .current = (br_future *)1 };
	br_future *f;

	br_promise_resolve(c.done, (void *)0xd0);
	f = br_call_soon(rt, waits_inside_a_callback, &c);
	/* br_fail() in a callback does nothing: the call still ends DONE. */
	cr_assert_null(t_await_value(f));
	cr_assert_eq(c.await_pending, BR_EDEADLK);
	cr_assert_eq(c.gather_pending, BR_EDEADLK, "gather gave %d (%s)",
		     c.gather_pending, br_strerror(c.gather_pending));
	cr_assert_eq(c.await_done, 0, "a completed future is no deadlock");
	cr_assert_eq((uintptr_t)c.done_value, 0xd0);
	cr_assert_null(c.fail_ret);
	cr_assert_null(c.current);
	cr_assert_eq(c.cancelled, 0);
	cr_assert_eq(br_future_state(c.pending), BR_PENDING);
	br_future_release(f);
	br_future_release(c.pending);
	br_future_release(c.done);
	br_runtime_free(rt);
}

Test(api_errors, task_only_calls_outside_a_task_do_nothing, .timeout = 10.0)
{
	cr_assert_null(br_fail(-EIO, "outside"));
	cr_assert_null(br_fail(5, NULL));
	cr_assert_null(br_current());
	cr_assert_eq(br_cancelled(), 0);
	cr_assert_eq(br_yield(), 0);
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                            */
/* ------------------------------------------------------------------ */

struct closing {
	atomic_int asleep;
	int sleep_ret;
	int spawn_state, spawn_error;
	int soon_state, soon_error;
};

static void *spawn_during_shutdown(void *arg)
{
	struct closing *c = arg;
	br_runtime *rt = br_current_runtime();
	br_future *f, *g;

	atomic_store(&c->asleep, 1);
	c->sleep_ret = br_sleep_ms(60000);
	/* Woken by br_runtime_free(): the runtime is closing now. */
	f = br_spawn(rt, noop_task, NULL);
	c->spawn_state = br_future_state(f);
	c->spawn_error = br_future_error(f);
	br_future_release(f);
	g = br_call_soon(rt, noop_cb, NULL);
	c->soon_state = br_future_state(g);
	c->soon_error = br_future_error(g);
	br_future_release(g);
	return NULL;
}

Test(api_errors, spawning_while_the_runtime_closes_gives_eclosed,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct closing c = { 0 };
	br_future *t = br_spawn(rt, spawn_during_shutdown, &c);

	cr_assert_eq(t_spin_until(&c.asleep, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	br_runtime_free(rt);
	cr_assert_eq(c.sleep_ret, -ECANCELED);
	cr_assert_eq(c.spawn_state, BR_FAILED);
	cr_assert_eq(c.spawn_error, BR_ECLOSED, "got %d (%s)", c.spawn_error,
		     br_strerror(c.spawn_error));
	cr_assert_eq(c.soon_state, BR_FAILED);
	cr_assert_eq(c.soon_error, BR_ECLOSED);
	cr_assert_eq(br_future_state(t), BR_CANCELLED);
	br_future_release(t);
}

/* ------------------------------------------------------------------ */
/* br_strerror                                                         */
/* ------------------------------------------------------------------ */

Test(api_errors, strerror_names_every_braid_code, .timeout = 10.0)
{
	static const int codes[] = { BR_ECLOSED,     BR_ENOTTASK, BR_EBADOBJ,
				     BR_EWORKERDIED, BR_EDEADLK,  BR_EDONE,
				     BR_ETASKFAILED };
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	for (size_t i = 0; i < n; i++) {
		const char *s = br_strerror(codes[i]);

		cr_assert_not_null(s);
		cr_assert_str_not_empty(s);
		cr_assert_str_neq(s, "unknown error", "code %d", codes[i]);
		cr_assert_str_eq(br_strerror(-codes[i]), s, "either sign of %d",
				 codes[i]);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(s, br_strerror(codes[j]),
					  "codes %d and %d share a text",
					  codes[i], codes[j]);
	}
}

Test(api_errors, strerror_names_errnos_with_either_sign, .timeout = 10.0)
{
	static const int errs[] = { ENOENT,    EINVAL, ENOMEM, ECANCELED,
				    ETIMEDOUT, EAGAIN, EBADF };

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *neg = br_strerror(-errs[i]);

		cr_assert_not_null(neg);
		cr_assert_str_not_empty(neg);
		cr_assert_str_neq(neg, "unknown error", "errno %d", errs[i]);
		cr_assert_str_eq(br_strerror(errs[i]), neg);
	}
	cr_assert_str_neq(br_strerror(-ENOENT), br_strerror(-EINVAL));
}

Test(api_errors, strerror_of_unknown_codes_is_unknown_error, .timeout = 10.0)
{
	static const int bad[] = { -4242,   4242,    -5000,  -5100,
				   -100000, INT_MAX, INT_MIN };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_str_eq(br_strerror(bad[i]), "unknown error",
				 "code %d", bad[i]);
}
