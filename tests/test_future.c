/* SPDX-License-Identifier: MIT */
/*
 * test_future.c - futures and promises (future.c): states, values,
 * errors and messages, completing once, on_done callbacks, reference
 * counting, and waking waiters of every kind (tasks, plain threads,
 * callbacks) exactly once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(future, .init = t_leak_init, .fini = t_leak_fini);

#define SENTINEL ((void *)0x5e5e)

Test(future, promise_starts_pending, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	size_t len = 99;

	cr_assert_not_null(p);
	cr_assert_eq(br_future_state(p), BR_PENDING);
	cr_assert_eq(br_future_error(p), 0);
	cr_assert_str_empty(br_future_message(p));
	cr_assert_null(br_future_bytes(p, &len));
	cr_assert_eq(len, 0);
	br_future_release(p);
}

Test(future, resolve_makes_done_with_the_value, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	int x;
	void *v = NULL;

	cr_assert_eq(br_promise_resolve(p, &x), 0);
	cr_assert_eq(br_future_state(p), BR_DONE);
	cr_assert_eq(br_future_error(p), 0);
	cr_assert_str_empty(br_future_message(p));
	cr_assert_eq(br_await(p, &v), 0);
	cr_assert_eq(v, &x);
	cr_assert_eq(br_await(p, NULL), 0, "value may be NULL");
	cr_assert_null(br_future_bytes(p, NULL));
	br_future_release(p);
}

Test(future, reject_makes_failed_with_code_and_message, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	void *v = SENTINEL;

	cr_assert_eq(br_promise_reject(p, -EIO, "disk gone"), 0);
	cr_assert_eq(br_future_state(p), BR_FAILED);
	cr_assert_eq(br_future_error(p), -EIO);
	cr_assert_str_eq(br_future_message(p), "disk gone");
	cr_assert_eq(br_await(p, &v), -EIO);
	cr_assert_null(v, "a failed await stores NULL");
	br_future_release(p);
}

Test(future, reject_copies_the_message, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	char msg[32];

	strcpy(msg, "first words");
	cr_assert_eq(br_promise_reject(p, -EPIPE, msg), 0);
	memset(msg, 'x', sizeof(msg) - 1);
	cr_assert_str_eq(br_future_message(p), "first words");
	br_future_release(p);
}

Test(future, reject_with_null_message_still_has_a_message, .timeout = 10.0)
{
	br_future *p = br_promise_new();

	cr_assert_eq(br_promise_reject(p, -ENOENT, NULL), 0);
	cr_assert_eq(br_future_error(p), -ENOENT);
	cr_assert_not_null(br_future_message(p));
	br_future_release(p);
}

Test(future, resolve_bytes_is_read_back, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	char *buf = malloc(6);
	const char *got;
	size_t len = 0;

	cr_assert_not_null(buf);
	memcpy(buf, "hello", 6);
	cr_assert_eq(br_promise_resolve_bytes(p, buf, 5), 0);
	cr_assert_eq(br_future_state(p), BR_DONE);
	got = br_future_bytes(p, &len);
	cr_assert_not_null(got);
	cr_assert_eq(len, 5);
	cr_assert_eq(memcmp(got, "hello", 5), 0);
	/* The buffer is the future's now; releasing frees it (LSan checks). */
	br_future_release(p);
}

Test(future, resolve_twice_gives_edone_and_keeps_the_first_value,
     .timeout = 10.0)
{
	br_future *p = br_promise_new();
	int a, b;
	void *v = NULL;
	char *buf = malloc(4);

	cr_assert_eq(br_promise_resolve(p, &a), 0);
	cr_assert_eq(br_promise_resolve(p, &b), BR_EDONE);
	cr_assert_eq(br_promise_reject(p, -EIO, "late"), BR_EDONE);
	cr_assert_not_null(buf);
	/* Ownership of buf passes even on error; LSan catches a leak. */
	cr_assert_eq(br_promise_resolve_bytes(p, buf, 4), BR_EDONE);
	cr_assert_eq(br_cancel(p), BR_EDONE);
	cr_assert_eq(br_future_state(p), BR_DONE);
	cr_assert_eq(br_await(p, &v), 0);
	cr_assert_eq(v, &a);
	cr_assert_null(br_future_bytes(p, NULL));
	br_future_release(p);
}

Test(future, reject_twice_keeps_the_first_error, .timeout = 10.0)
{
	br_future *p = br_promise_new();

	cr_assert_eq(br_promise_reject(p, -EIO, "first"), 0);
	cr_assert_eq(br_promise_reject(p, -EPIPE, "second"), BR_EDONE);
	cr_assert_eq(br_promise_resolve(p, NULL), BR_EDONE);
	cr_assert_eq(br_future_state(p), BR_FAILED);
	cr_assert_eq(br_future_error(p), -EIO);
	cr_assert_str_eq(br_future_message(p), "first");
	br_future_release(p);
}

Test(future, cancel_of_a_pending_promise_makes_it_cancelled, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	void *v = SENTINEL;

	cr_assert_eq(br_cancel(p), 0);
	cr_assert_eq(br_future_state(p), BR_CANCELLED, "at once");
	cr_assert_eq(br_future_error(p), -ECANCELED);
	cr_assert_not_null(br_future_message(p));
	cr_assert_eq(br_await(p, &v), -ECANCELED);
	cr_assert_null(v);
	cr_assert_eq(br_cancel(p), BR_EDONE);
	cr_assert_eq(br_promise_resolve(p, NULL), BR_EDONE);
	cr_assert_eq(br_future_state(p), BR_CANCELLED);
	br_future_release(p);
}

/* ------------------------------------------------------------------ */
/* on_done                                                             */
/* ------------------------------------------------------------------ */

struct cb_rec {
	atomic_int calls;
	br_state state_seen;
	pthread_t thread;
	br_future *f_seen;
};

static void record_cb(br_future *f, void *arg)
{
	struct cb_rec *r = arg;

	r->state_seen = br_future_state(f);
	r->thread = pthread_self();
	r->f_seen = f;
	atomic_fetch_add(&r->calls, 1);
}

Test(future, on_done_fires_once_after_the_state_is_final, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	struct cb_rec r = { 0 };
	int x;

	cr_assert_eq(br_future_on_done(p, record_cb, &r), 0);
	cr_assert_eq(atomic_load(&r.calls), 0, "not before completion");
	cr_assert_eq(br_promise_resolve(p, &x), 0);
	cr_assert_eq(atomic_load(&r.calls), 1);
	cr_assert_eq(r.state_seen, BR_DONE);
	cr_assert_eq(r.f_seen, p);
	cr_assert_eq(br_promise_resolve(p, &x), BR_EDONE);
	cr_assert_eq(br_cancel(p), BR_EDONE);
	cr_assert_eq(atomic_load(&r.calls), 1, "fired twice");
	br_future_release(p);
}

Test(future, on_done_fires_at_once_when_already_done, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	struct cb_rec r = { 0 };

	cr_assert_eq(br_promise_reject(p, -EIO, "x"), 0);
	cr_assert_eq(br_future_on_done(p, record_cb, &r), 0);
	cr_assert_eq(atomic_load(&r.calls), 1, "must run before returning");
	cr_assert(pthread_equal(r.thread, pthread_self()));
	cr_assert_eq(r.state_seen, BR_FAILED);
	br_future_release(p);
}

Test(future, on_done_runs_every_callback_once, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	struct cb_rec r[8] = { 0 };

	for (int i = 0; i < 8; i++)
		cr_assert_eq(br_future_on_done(p, record_cb, &r[i]), 0);
	cr_assert_eq(br_cancel(p), 0);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(atomic_load(&r[i].calls), 1, "callback %d", i);
		cr_assert_eq(r[i].state_seen, BR_CANCELLED);
	}
	br_future_release(p);
}

struct resolver {
	br_future *p;
	void *value;
	int delay_ms;
	int ret;
	pthread_t self;
};

static void *resolve_thread(void *arg)
{
	struct resolver *r = arg;

	r->self = pthread_self();
	if (r->delay_ms)
		br_sleep_ms(r->delay_ms);
	r->ret = br_promise_resolve(r->p, r->value);
	return NULL;
}

Test(future, on_done_runs_on_the_completing_thread, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	struct cb_rec r = { 0 };
	struct resolver res = { .p = p, .value = NULL };
	pthread_t t;

	cr_assert_eq(br_future_on_done(p, record_cb, &r), 0);
	t_thread_start(&t, resolve_thread, &res);
	t_thread_join(t);
	cr_assert_eq(res.ret, 0);
	cr_assert_eq(atomic_load(&r.calls), 1);
	cr_assert(pthread_equal(r.thread, t));
	br_future_release(p);
}

struct release_rec {
	atomic_int calls;
	br_state state_after_release;
};

static void release_in_cb(br_future *f, void *arg)
{
	struct release_rec *r = arg;

	/* The last reference goes here; braid keeps f alive until return. */
	br_future_release(f);
	r->state_after_release = br_future_state(f);
	atomic_fetch_add(&r->calls, 1);
}

Test(future, on_done_callback_may_drop_the_last_reference, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	struct release_rec r = { 0 };

	cr_assert_eq(br_future_on_done(p, release_in_cb, &r), 0);
	cr_assert_eq(br_promise_resolve(p, NULL), 0);
	cr_assert_eq(atomic_load(&r.calls), 1);
	cr_assert_eq(r.state_after_release, BR_DONE);
}

/* ------------------------------------------------------------------ */
/* References                                                          */
/* ------------------------------------------------------------------ */

Test(future, retain_returns_the_future_and_keeps_it_alive, .timeout = 10.0)
{
	br_future *p = br_promise_new();
	br_future *q = br_future_retain(p);
	void *v = NULL;
	int x;

	cr_assert_eq(q, p);
	br_future_release(p);
	/* One reference is left: the future must still work. */
	cr_assert_eq(br_future_state(q), BR_PENDING);
	cr_assert_eq(br_promise_resolve(q, &x), 0);
	cr_assert_eq(br_await(q, &v), 0);
	cr_assert_eq(v, &x);
	br_future_release(q);
}

Test(future, a_resolver_thread_may_hold_its_own_reference, .timeout = 10.0)
{
	for (int i = 0; i < 200; i++) {
		br_future *p = br_promise_new();
		struct resolver res = { .p = br_future_retain(p), .value = p };
		pthread_t t;
		void *v = NULL;

		t_thread_start(&t, resolve_thread, &res);
		cr_assert_eq(br_await(p, &v), 0);
		cr_assert_eq(v, p);
		/* Drop ours first; the thread's reference may be the last. */
		br_future_release(p);
		t_thread_join(t);
		cr_assert_eq(res.ret, 0);
		br_future_release(res.p);
	}
}

/* ------------------------------------------------------------------ */
/* Awaiting across threads and tasks                                   */
/* ------------------------------------------------------------------ */

Test(future, plain_thread_awaits_a_promise_resolved_by_another_thread,
     .timeout = 10.0)
{
	br_future *p = br_promise_new();
	int x;
	struct resolver res = { .p = p, .value = &x, .delay_ms = 30 };
	pthread_t t;
	void *v = NULL;
	int64_t t0 = br_now_ns();

	t_thread_start(&t, resolve_thread, &res);
	cr_assert_eq(br_await(p, &v), 0);
	cr_assert_geq(t_elapsed_ms(t0), 30, "returned before the resolve");
	cr_assert_eq(v, &x);
	t_thread_join(t);
	cr_assert_eq(res.ret, 0);
	br_future_release(p);
}

struct await_rec {
	br_future *p;
	atomic_int started;
	atomic_int woken;
	int ret;
	void *value;
};

static void *await_task(void *arg)
{
	struct await_rec *a = arg;

	atomic_fetch_add(&a->started, 1);
	a->ret = br_await(a->p, &a->value);
	atomic_fetch_add(&a->woken, 1);
	return a->value;
}

Test(future, task_awaits_a_promise_resolved_by_a_plain_thread, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct await_rec a = { .p = br_promise_new() };
	br_future *t;
	int x;

	t = br_spawn(rt, await_task, &a);
	cr_assert_eq(t_spin_until(&a.started, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	cr_assert_eq(atomic_load(&a.woken), 0, "await returned early");
	cr_assert_eq(br_future_state(t), BR_PENDING);
	cr_assert_eq(br_promise_resolve(a.p, &x), 0);
	cr_assert_eq(t_await_value(t), &x);
	cr_assert_eq(a.ret, 0);
	cr_assert_eq(atomic_load(&a.woken), 1);
	br_future_release(t);
	br_future_release(a.p);
	br_runtime_free(rt);
}

struct resolve_task_arg {
	br_future *p;
	void *value;
	int ret;
};

static void *resolve_task(void *arg)
{
	struct resolve_task_arg *r = arg;

	br_sleep_ms(20);
	r->ret = br_promise_resolve(r->p, r->value);
	return NULL;
}

Test(future, task_awaits_a_promise_resolved_by_another_task, .timeout = 10.0)
{
	for (unsigned workers = 1; workers <= 2; workers++) {
		br_runtime *rt = t_runtime(workers, 0);
		struct await_rec a = { .p = br_promise_new() };
		int x;
		struct resolve_task_arg r = { .p = a.p, .value = &x };
		br_future *waiter, *resolver;

		waiter = br_spawn(rt, await_task, &a);
		resolver = br_spawn(rt, resolve_task, &r);
		cr_assert_eq(t_await_value(waiter), &x);
		t_await_value(resolver);
		cr_assert_eq(r.ret, 0);
		cr_assert_eq(a.ret, 0);
		br_future_release(waiter);
		br_future_release(resolver);
		br_future_release(a.p);
		br_runtime_free(rt);
	}
}

#define N_TASK_WAITERS 64
#define N_THREAD_WAITERS 4
#define N_CB_WAITERS 8

static void count_cb(br_future *f, void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

static void *await_thread(void *arg)
{
	return await_task(arg);
}

Test(future, many_waiters_of_every_kind_are_all_woken_once, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *p = br_promise_new();
	struct await_rec tw[N_TASK_WAITERS] = { 0 };
	struct await_rec hw[N_THREAD_WAITERS] = { 0 };
	atomic_int cbs[N_CB_WAITERS] = { 0 };
	br_future *tasks[N_TASK_WAITERS];
	pthread_t threads[N_THREAD_WAITERS];
	int x;

	for (int i = 0; i < N_TASK_WAITERS; i++) {
		tw[i].p = p;
		tasks[i] = br_spawn(rt, await_task, &tw[i]);
	}
	for (int i = 0; i < N_THREAD_WAITERS; i++) {
		hw[i].p = p;
		t_thread_start(&threads[i], await_thread, &hw[i]);
	}
	for (int i = 0; i < N_CB_WAITERS; i++)
		cr_assert_eq(br_future_on_done(p, count_cb, &cbs[i]), 0);

	/* Let every waiter reach its await before the resolve. */
	for (int i = 0; i < N_TASK_WAITERS; i++) {
		cr_assert_eq(
			t_spin_until(&tw[i].started, 1, 5000 * T_NS_PER_MS), 0);
	}
	for (int i = 0; i < N_THREAD_WAITERS; i++)
		cr_assert_eq(
			t_spin_until(&hw[i].started, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	cr_assert_eq(br_promise_resolve(p, &x), 0);

	for (int i = 0; i < N_THREAD_WAITERS; i++) {
		t_thread_join(threads[i]);
		cr_assert_eq(hw[i].ret, 0);
		cr_assert_eq(hw[i].value, &x);
		cr_assert_eq(atomic_load(&hw[i].woken), 1);
	}
	for (int i = 0; i < N_TASK_WAITERS; i++) {
		cr_assert_eq(t_await_value(tasks[i]), &x);
		cr_assert_eq(tw[i].ret, 0);
		cr_assert_eq(atomic_load(&tw[i].woken), 1);
		br_future_release(tasks[i]);
	}
	for (int i = 0; i < N_CB_WAITERS; i++)
		cr_assert_eq(atomic_load(&cbs[i]), 1, "callback %d", i);
	br_future_release(p);
	br_runtime_free(rt);
}

Test(future, cancelling_a_promise_wakes_task_and_thread_waiters,
     .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *p = br_promise_new();
	struct await_rec tw = { .p = p }, hw = { .p = p };
	br_future *t;
	pthread_t th;

	t = br_spawn(rt, await_task, &tw);
	t_thread_start(&th, await_thread, &hw);
	cr_assert_eq(t_spin_until(&tw.started, 1, 5000 * T_NS_PER_MS), 0);
	cr_assert_eq(t_spin_until(&hw.started, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(10);
	cr_assert_eq(br_cancel(p), 0);
	t_thread_join(th);
	cr_assert_eq(hw.ret, -ECANCELED);
	cr_assert_null(hw.value);
	/* The waiting task saw -ECANCELED but was not itself cancelled. */
	cr_assert_null(t_await_value(t));
	cr_assert_eq(tw.ret, -ECANCELED);
	br_future_release(t);
	br_future_release(p);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Only promises are filled by their users                            */
/* ------------------------------------------------------------------ */

static atomic_int kinds_release;

/* Criterion starts a thread in each test process before the test runs:
 * fork the pool's zygote while the process still has one. */
__attribute__((constructor)) static void start_zygote(void)
{
	br_zygote_start();
}

static void *kinds_wait(void *arg)
{
	t_wait_until(&kinds_release, 1, 10000 * T_NS_PER_MS);
	return arg;
}

static void kinds_cb(void *arg)
{
}

static int kinds_job(br_job *job, const void *in, size_t len)
{
	for (;;)
		pause();
	return 0;
}

Test(future, only_a_promise_can_be_resolved_or_rejected, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_pool *pool = NULL;
	char item = 1;
	br_future *fs[6];
	const char *names[6] = { "task",	"blocking call", "callback",
				 "process job", "map",		 "failed" };

	cr_assert_eq(br_pool_new(&pool, rt, &(br_pool_config){ .workers = 1 }),
		     0);
	fs[0] = br_spawn(rt, kinds_wait, NULL);
	fs[1] = br_spawn_blocking(rt, kinds_wait, NULL);
	fs[2] = br_call_later(rt, 60000, kinds_cb, NULL);
	fs[3] = br_submit(pool, kinds_job, NULL, 0);
	fs[4] = br_map(pool, kinds_job, &item, 1, 1, 0);
	fs[5] = br_spawn(NULL, kinds_wait, NULL);
	for (int i = 0; i < 6; i++) {
		br_state before = br_future_state(fs[i]);

		cr_assert_eq(br_promise_resolve(fs[i], SENTINEL), -EINVAL,
			     "resolve of a %s", names[i]);
		cr_assert_eq(br_promise_resolve_bytes(fs[i], malloc(8), 8),
			     -EINVAL, "resolve_bytes of a %s (frees buf)",
			     names[i]);
		cr_assert_eq(br_promise_reject(fs[i], -EIO, "no"), -EINVAL,
			     "reject of a %s", names[i]);
		cr_assert_eq(br_future_state(fs[i]), before,
			     "a %s is left as it was", names[i]);
	}
	cr_assert_eq(br_future_state(fs[1]), BR_PENDING);
	atomic_store(&kinds_release, 1);
	cr_assert_eq(br_await(fs[0], NULL), 0);
	cr_assert_eq(br_await(fs[1], NULL), 0);
	for (int i = 2; i < 5; i++) {
		cr_assert_eq(br_cancel(fs[i]), 0, "cancel of a %s", names[i]);
		cr_assert_eq(br_await(fs[i], NULL), -ECANCELED);
	}
	for (int i = 0; i < 6; i++)
		br_future_release(fs[i]);
	br_pool_free(pool);
	br_runtime_free(rt);
}
