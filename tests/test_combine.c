/* SPDX-License-Identifier: MIT */
/*
 * test_combine.c - combinators (combine.c): br_gather(), br_gather_ex(),
 * br_wait_any(), br_wait_for(), br_as_completed_*() and br_shield(), over
 * tasks and promises, called from plain threads and from tasks.
 *
 * Most checks are written once as a scenario that returns NULL or a
 * failure string (T_REQUIRE), then run both from the test thread and from
 * inside a task, since every combinator promises to work from either.
 */
#include <errno.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(combine, .init = t_leak_init, .fini = t_leak_fini);

/* A task that sleeps ms, then returns value or fails with error. */
struct job {
	int ms;
	int error;
	uintptr_t value;
	int sleep_ret;
};

static void *run_job(void *arg)
{
	struct job *j = arg;

	j->sleep_ret = br_sleep_ms(j->ms);
	/* A cancelled job just returns: it must end CANCELLED. */
	if (j->error && j->sleep_ret == 0)
		return br_fail(j->error, "job failed");
	return (void *)j->value;
}

static void release_all(br_future **fs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		br_future_release(fs[i]);
}

/* ------------------------------------------------------------------ */
/* Scenarios, each run from a plain thread and from a task             */
/* ------------------------------------------------------------------ */

static void *scn_gather_preserves_order(br_runtime *rt)
{
	struct job j[3] = { { .ms = 60, .value = 1 },
			    { .ms = 20, .value = 2 },
			    { .ms = 40, .value = 3 } };
	br_future *fs[3];
	void *v[3] = { 0 };
	int ret;

	for (int i = 0; i < 3; i++)
		fs[i] = br_spawn(rt, run_job, &j[i]);
	ret = br_gather(fs, 3, v);
	for (int i = 0; i < 3; i++)
		T_REQUIRE(br_future_state(fs[i]) == BR_DONE);
	release_all(fs, 3);
	T_REQUIRE(ret == 0);
	T_REQUIRE((uintptr_t)v[0] == 1);
	T_REQUIRE((uintptr_t)v[1] == 2);
	T_REQUIRE((uintptr_t)v[2] == 3);
	T_REQUIRE(br_gather(fs, 0, NULL) == 0);
	return NULL;
}

static void *scn_gather_first_error_in_argument_order(br_runtime *rt)
{
	struct job j[4] = { { .ms = 10, .value = 1 },
			    { .ms = 80, .error = -EIO },
			    { .ms = 20, .error = -EPIPE },
			    { .ms = 120, .value = 4 } };
	br_future *fs[4];
	void *v[4] = { (void *)9, (void *)9, (void *)9, (void *)9 };
	int64_t t0 = br_now_ns();
	int ret;

	for (int i = 0; i < 4; i++)
		fs[i] = br_spawn(rt, run_job, &j[i]);
	ret = br_gather(fs, 4, v);
	T_REQUIRE(br_now_ns() - t0 >= 120 * T_NS_PER_MS);
	for (int i = 0; i < 4; i++)
		T_REQUIRE(br_future_state(fs[i]) != BR_PENDING);
	T_REQUIRE(br_future_state(fs[3]) == BR_DONE);
	T_REQUIRE(j[3].sleep_ret == 0);
	release_all(fs, 4);
	/* -EPIPE failed first in time, but -EIO comes first in fs. */
	T_REQUIRE(ret == -EIO);
	T_REQUIRE((uintptr_t)v[0] == 1);
	T_REQUIRE(v[1] == NULL);
	T_REQUIRE(v[2] == NULL);
	T_REQUIRE((uintptr_t)v[3] == 4);
	return NULL;
}

static void *scn_gather_fail_fast_cancels_the_rest(br_runtime *rt)
{
	struct job j[3] = { { .ms = 10000, .value = 1 },
			    { .ms = 20, .error = -EIO },
			    { .ms = 10000, .value = 3 } };
	br_future *fs[3];
	void *v[3];
	int64_t t0 = br_now_ns();
	int ret;

	for (int i = 0; i < 3; i++)
		fs[i] = br_spawn(rt, run_job, &j[i]);
	ret = br_gather_ex(fs, 3, v, BR_GATHER_FAIL_FAST);
	T_REQUIRE(br_now_ns() - t0 < 5000 * T_NS_PER_MS);
	T_REQUIRE(ret == -EIO);
	/* It still waited for every input. */
	T_REQUIRE(br_future_state(fs[0]) == BR_CANCELLED);
	T_REQUIRE(br_future_state(fs[1]) == BR_FAILED);
	T_REQUIRE(br_future_state(fs[2]) == BR_CANCELLED);
	T_REQUIRE(j[0].sleep_ret == -ECANCELED);
	T_REQUIRE(j[2].sleep_ret == -ECANCELED);
	T_REQUIRE(v[0] == NULL && v[1] == NULL && v[2] == NULL);
	release_all(fs, 3);
	return NULL;
}

static void *scn_wait_any(br_runtime *rt)
{
	struct job j[3] = { { .ms = 10000 }, { .ms = 30 }, { .ms = 10000 } };
	br_future *fs[3];
	int64_t t0 = br_now_ns();
	int ret;

	for (int i = 0; i < 3; i++)
		fs[i] = br_spawn(rt, run_job, &j[i]);
	ret = br_wait_any(fs, 3, -1);
	T_REQUIRE(ret == 1);
	T_REQUIRE(br_now_ns() - t0 >= 30 * T_NS_PER_MS);
	T_REQUIRE(br_future_state(fs[1]) == BR_DONE);
	/* It cancels nothing. */
	T_REQUIRE(br_future_state(fs[0]) == BR_PENDING);
	T_REQUIRE(br_future_state(fs[2]) == BR_PENDING);
	br_cancel(fs[0]);
	br_cancel(fs[2]);
	T_REQUIRE(br_gather(fs, 3, NULL) == -ECANCELED);
	release_all(fs, 3);
	return NULL;
}

static void *scn_wait_any_times_out(br_runtime *rt)
{
	struct job j = { .ms = 10000 };
	br_future *f = br_spawn(rt, run_job, &j);
	int64_t t0 = br_now_ns();
	int ret = br_wait_any(&f, 1, 50);
	int64_t took = br_now_ns() - t0;
	br_state st = br_future_state(f);

	br_cancel(f);
	br_await(f, NULL);
	br_future_release(f);
	T_REQUIRE(ret == -ETIMEDOUT);
	T_REQUIRE(took >= 50 * T_NS_PER_MS);
	T_REQUIRE(took < 2000 * T_NS_PER_MS);
	T_REQUIRE(st == BR_PENDING);
	return NULL;
}

static void *scn_wait_any_polls_with_zero_timeout(br_runtime *rt)
{
	br_future *p[3] = { br_promise_new(), br_promise_new(),
			    br_promise_new() };
	int64_t t0 = br_now_ns();
	int none = br_wait_any(p, 3, 0);
	int64_t took = br_now_ns() - t0;
	int two, one;

	br_promise_resolve(p[2], NULL);
	two = br_wait_any(p, 3, 0);
	br_promise_reject(p[1], -EIO, NULL);
	one = br_wait_any(p, 3, 0);
	release_all(p, 3);
	T_REQUIRE(none == -ETIMEDOUT);
	T_REQUIRE(took < 100 * T_NS_PER_MS);
	T_REQUIRE(two == 2);
	T_REQUIRE(one == 1); /* the lowest completed index */
	return NULL;
}

static void *scn_wait_for_times_out_and_cancels(br_runtime *rt)
{
	struct job j = { .ms = 10000, .value = 5 };
	br_future *f = br_spawn(rt, run_job, &j);
	void *v = (void *)1;
	int64_t t0 = br_now_ns();
	int ret = br_wait_for(f, 50, &v);
	int64_t took = br_now_ns() - t0;
	int final;

	final = br_await(f, NULL);
	T_REQUIRE(br_future_state(f) == BR_CANCELLED);
	br_future_release(f);
	T_REQUIRE(ret == -ETIMEDOUT);
	T_REQUIRE(v == NULL);
	T_REQUIRE(took >= 50 * T_NS_PER_MS);
	T_REQUIRE(took < 2000 * T_NS_PER_MS);
	T_REQUIRE(final == -ECANCELED);
	T_REQUIRE(j.sleep_ret == -ECANCELED);
	return NULL;
}

static void *scn_wait_for_returns_the_value_in_time(br_runtime *rt)
{
	struct job j = { .ms = 10, .value = 7 };
	struct job k = { .ms = 10, .error = -EPIPE };
	br_future *f = br_spawn(rt, run_job, &j);
	br_future *g = br_spawn(rt, run_job, &k);
	void *v = NULL;
	int ret = br_wait_for(f, 5000, &v);
	int ret2 = br_wait_for(g, -1, NULL);

	br_future_release(f);
	br_future_release(g);
	T_REQUIRE(ret == 0);
	T_REQUIRE((uintptr_t)v == 7);
	T_REQUIRE(ret2 == -EPIPE);
	return NULL;
}

static void *scn_as_completed_in_completion_order(br_runtime *rt)
{
	struct job j[3] = { { .ms = 300, .value = 300 },
			    { .ms = 100, .value = 100 },
			    { .ms = 200, .value = 200 } };
	br_future *fs[3], *got[4];
	br_as_completed *it;

	for (int i = 0; i < 3; i++)
		fs[i] = br_spawn(rt, run_job, &j[i]);
	it = br_as_completed_new(fs, 3);
	T_REQUIRE(it != NULL);
	for (int i = 0; i < 4; i++) {
		got[i] = br_as_completed_next(it);
		if (got[i])
			T_REQUIRE(br_future_state(got[i]) == BR_DONE);
	}
	br_as_completed_free(it);
	release_all(fs, 3);
	T_REQUIRE(got[0] == fs[1]);
	T_REQUIRE(got[1] == fs[2]);
	T_REQUIRE(got[2] == fs[0]);
	T_REQUIRE(got[3] == NULL);
	return NULL;
}

static void *scn_shield_cancel_spares_the_inner(br_runtime *rt)
{
	struct job j = { .ms = 100, .value = 5 };
	br_future *f = br_spawn(rt, run_job, &j);
	br_future *s = br_shield(f);
	void *v = NULL;
	int cret = br_cancel(s);
	br_state sst = br_future_state(s);
	int sret = br_await(s, NULL);
	int fret = br_await(f, &v);

	br_future_release(s);
	br_future_release(f);
	T_REQUIRE(cret == 0);
	T_REQUIRE(sst == BR_CANCELLED);
	T_REQUIRE(sret == -ECANCELED);
	T_REQUIRE(fret == 0);
	T_REQUIRE((uintptr_t)v == 5);
	T_REQUIRE(j.sleep_ret == 0);
	return NULL;
}

static void *scn_shield_completes_as_the_inner(br_runtime *rt)
{
	struct job j = { .ms = 10, .value = 6 };
	struct job k = { .ms = 10, .error = -EIO };
	br_future *f = br_spawn(rt, run_job, &j);
	br_future *g = br_spawn(rt, run_job, &k);
	br_future *sf = br_shield(f), *sg = br_shield(g);
	void *v = NULL;
	int rf = br_await(sf, &v), rg = br_await(sg, NULL);
	br_state st = br_future_state(sg);

	br_future_release(sf);
	br_future_release(sg);
	br_future_release(f);
	br_future_release(g);
	T_REQUIRE(rf == 0);
	T_REQUIRE((uintptr_t)v == 6);
	T_REQUIRE(rg == -EIO);
	T_REQUIRE(st == BR_FAILED);
	return NULL;
}

struct late_resolve {
	br_future *p;
	void *value;
};

static void *resolve_later(void *arg)
{
	struct late_resolve *l = arg;

	br_sleep_ms(150);
	br_promise_resolve(l->p, l->value);
	return NULL;
}

static void *scn_mixing_promises_and_tasks(br_runtime *rt)
{
	/* Only fs[2] is complete when br_wait_any() starts. */
	struct job j = { .ms = 200, .value = 2 };
	br_future *fs[3];
	struct late_resolve l;
	pthread_t th;
	void *v[3] = { 0 };
	int ret, any;
	br_as_completed *it;
	int seen = 0;

	fs[0] = br_promise_new();
	fs[1] = br_spawn(rt, run_job, &j);
	fs[2] = br_promise_new();
	br_promise_resolve(fs[2], (void *)3);
	l = (struct late_resolve){ .p = fs[0], .value = (void *)1 };
	if (pthread_create(&th, NULL, resolve_later, &l) != 0)
		return (void *)"pthread_create failed";
	any = br_wait_any(fs, 3, -1);
	ret = br_gather(fs, 3, v);
	pthread_join(th, NULL);
	it = br_as_completed_new(fs, 3);
	T_REQUIRE(it != NULL);
	while (br_as_completed_next(it))
		seen++;
	br_as_completed_free(it);
	release_all(fs, 3);
	T_REQUIRE(any == 2);
	T_REQUIRE(ret == 0);
	T_REQUIRE((uintptr_t)v[0] == 1);
	T_REQUIRE((uintptr_t)v[1] == 2);
	T_REQUIRE((uintptr_t)v[2] == 3);
	T_REQUIRE(seen == 3);
	return NULL;
}

typedef void *(*scenario_fn)(br_runtime *rt);

static void *run_scenario_task(void *arg)
{
	scenario_fn fn = (scenario_fn)arg;

	return fn(br_current_runtime());
}

/* Run fn from the test thread, then from a task; assert both passed. */
static void run_both(scenario_fn fn)
{
	br_runtime *rt = t_runtime(2, 0);
	const char *msg = fn(rt);
	br_future *f;

	cr_assert_null(msg, "plain thread: %s", msg);
	f = br_spawn(rt, run_scenario_task, (void *)fn);
	msg = t_await_value(f);
	br_future_release(f);
	cr_assert_null(msg, "task: %s", msg);
	br_runtime_free(rt);
}

Test(combine, gather_preserves_order, .timeout = 20.0)
{
	run_both(scn_gather_preserves_order);
}

Test(combine, gather_returns_the_first_error_in_argument_order, .timeout = 20.0)
{
	run_both(scn_gather_first_error_in_argument_order);
}

Test(combine, gather_fail_fast_cancels_the_rest, .timeout = 30.0)
{
	run_both(scn_gather_fail_fast_cancels_the_rest);
}

Test(combine, wait_any_returns_the_index_of_the_done_one, .timeout = 30.0)
{
	run_both(scn_wait_any);
}

Test(combine, wait_any_times_out, .timeout = 30.0)
{
	run_both(scn_wait_any_times_out);
}

Test(combine, wait_any_with_zero_timeout_polls, .timeout = 10.0)
{
	run_both(scn_wait_any_polls_with_zero_timeout);
}

Test(combine, wait_for_times_out_and_cancels_the_target, .timeout = 30.0)
{
	run_both(scn_wait_for_times_out_and_cancels);
}

Test(combine, wait_for_returns_the_result_in_time, .timeout = 20.0)
{
	run_both(scn_wait_for_returns_the_value_in_time);
}

Test(combine, as_completed_yields_in_completion_order, .timeout = 20.0)
{
	run_both(scn_as_completed_in_completion_order);
}

Test(combine, shield_cancel_does_not_cancel_the_inner_task, .timeout = 20.0)
{
	run_both(scn_shield_cancel_spares_the_inner);
}

Test(combine, shield_completes_as_the_inner_future, .timeout = 20.0)
{
	run_both(scn_shield_completes_as_the_inner);
}

Test(combine, combinators_mix_promises_and_tasks, .timeout = 20.0)
{
	run_both(scn_mixing_promises_and_tasks);
}

/* ------------------------------------------------------------------ */
/* Single-context checks                                               */
/* ------------------------------------------------------------------ */

Test(combine, gather_of_a_cancelled_input_reports_ecanceled, .timeout = 10.0)
{
	br_future *p[2] = { br_promise_new(), br_promise_new() };
	void *v[2] = { (void *)1, (void *)1 };

	br_promise_resolve(p[0], (void *)8);
	br_cancel(p[1]);
	cr_assert_eq(br_gather(p, 2, v), -ECANCELED);
	cr_assert_eq((uintptr_t)v[0], 8);
	cr_assert_null(v[1]);
	cr_assert_eq(br_gather(p, 2, NULL), -ECANCELED, "values may be NULL");
	release_all(p, 2);
}

Test(combine, as_completed_over_already_completed_futures, .timeout = 10.0)
{
	br_future *p[3] = { br_promise_new(), br_promise_new(),
			    br_promise_new() };
	br_as_completed *it;
	int seen[3] = { 0 };
	br_future *f;

	br_promise_resolve(p[2], NULL);
	br_promise_reject(p[0], -EIO, "x");
	br_cancel(p[1]);
	it = br_as_completed_new(p, 3);
	cr_assert_not_null(it);
	/* The iterator holds its own references to the inputs. */
	release_all(p, 3);
	while ((f = br_as_completed_next(it)) != NULL) {
		int i = f == p[0] ? 0 : f == p[1] ? 1 : f == p[2] ? 2 : -1;

		cr_assert_geq(i, 0, "not one of the inputs");
		cr_assert_neq(br_future_state(f), BR_PENDING);
		seen[i]++;
	}
	for (int i = 0; i < 3; i++)
		cr_assert_eq(seen[i], 1, "input %d came out %d times", i,
			     seen[i]);
	cr_assert_null(br_as_completed_next(it), "NULL again at the end");
	br_as_completed_free(it);
}

Test(combine, as_completed_over_nothing_ends_at_once, .timeout = 10.0)
{
	br_as_completed *it = br_as_completed_new(NULL, 0);

	cr_assert_not_null(it);
	cr_assert_null(br_as_completed_next(it));
	br_as_completed_free(it);
	br_as_completed_free(NULL);
}

struct shield_parent {
	br_future *inner;
	atomic_int awaiting;
	int ret;
};

static void *await_through_a_shield(void *arg)
{
	struct shield_parent *p = arg;
	br_future *s = br_shield(p->inner);

	atomic_store(&p->awaiting, 1);
	p->ret = br_await(s, NULL);
	br_future_release(s);
	return NULL;
}

Test(combine, cancelling_a_task_awaiting_a_shield_spares_the_inner,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct job j = { .ms = 150, .value = 9 };
	struct shield_parent p = { .inner = br_spawn(rt, run_job, &j) };
	br_future *parent = br_spawn(rt, await_through_a_shield, &p);

	cr_assert_eq(t_spin_until(&p.awaiting, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	cr_assert_eq(br_cancel(parent), 0);
	br_await(parent, NULL);
	cr_assert_eq(p.ret, -ECANCELED);
	cr_assert_eq((uintptr_t)t_await_value(p.inner), 9);
	cr_assert_eq(j.sleep_ret, 0, "the inner task was cancelled");
	br_future_release(parent);
	br_future_release(p.inner);
	br_runtime_free(rt);
}

struct waiter_arg {
	br_future **fs;
	size_t n;
	atomic_int waiting;
	int ret;
	br_future *next;
};

static void *wait_any_forever(void *arg)
{
	struct waiter_arg *w = arg;

	atomic_store(&w->waiting, 1);
	w->ret = br_wait_any(w->fs, w->n, -1);
	return NULL;
}

static void *as_completed_forever(void *arg)
{
	struct waiter_arg *w = arg;
	br_as_completed *it = br_as_completed_new(w->fs, w->n);

	atomic_store(&w->waiting, 1);
	w->next = br_as_completed_next(it);
	br_as_completed_free(it);
	return NULL;
}

Test(combine, a_cancelled_waiter_stops_waiting, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *p = br_promise_new();
	struct waiter_arg a = { .fs = &p, .n = 1 };
	struct waiter_arg b = { .fs = &p, .n = 1, .next = p };
	br_future *ta = br_spawn(rt, wait_any_forever, &a);
	br_future *tb = br_spawn(rt, as_completed_forever, &b);

	cr_assert_eq(t_spin_until(&a.waiting, 1, 5000 * T_NS_PER_MS), 0);
	cr_assert_eq(t_spin_until(&b.waiting, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	br_cancel(ta);
	br_await(ta, NULL);
	cr_assert_eq(a.ret, -ECANCELED);
	/* br_wait_any cancels nothing, not even when its waiter is. */
	cr_assert_eq(br_future_state(p), BR_PENDING);
	br_cancel(tb);
	br_await(tb, NULL);
	cr_assert_null(b.next);
	br_future_release(ta);
	br_future_release(tb);
	br_future_release(p);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* br_as_completed_next_ex: the end, a cancellation and misuse apart   */
/* ------------------------------------------------------------------ */

struct ac_ex {
	br_as_completed *it;
	atomic_int waiting;
	int first, second;
	br_future *got;
};

static void *as_completed_ex_twice(void *arg)
{
	struct ac_ex *a = arg;

	a->first = br_as_completed_next_ex(a->it, &a->got);
	atomic_store(&a->waiting, 1);
	a->second = br_as_completed_next_ex(a->it, &a->got);
	return NULL;
}

static void as_completed_from_a_callback(void *arg)
{
	struct ac_ex *a = arg;

	a->first = br_as_completed_next_ex(a->it, &a->got);
	atomic_store(&a->waiting, 1);
}

Test(combine, as_completed_next_ex_tells_the_end_from_a_cancellation,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *p[2] = { br_promise_new(), br_promise_new() };
	struct ac_ex a = { .first = 1, .second = 1 };
	br_future *t, *f = p[0];

	br_promise_resolve(p[0], NULL);
	a.it = br_as_completed_new(p, 2);
	cr_assert_not_null(a.it);
	t = br_spawn(rt, as_completed_ex_twice, &a);
	cr_assert_eq(t_spin_until(&a.waiting, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20); /* in its second call, most likely waiting */
	br_cancel(t);
	br_await(t, NULL);
	cr_assert_eq(a.first, 0);
	cr_assert_eq(a.second, -ECANCELED, "got %d", a.second);
	cr_assert_null(a.got, "NULL stored on error");
	cr_assert_eq(br_future_state(p[1]), BR_PENDING, "inputs not cancelled");
	/* The iterator is still usable, from this thread now. */
	br_promise_resolve(p[1], NULL);
	cr_assert_eq(br_as_completed_next_ex(a.it, &f), 0);
	cr_assert_eq(f, p[1]);
	cr_assert_eq(br_as_completed_next_ex(a.it, &f), BR_EDONE);
	cr_assert_null(f);
	cr_assert_eq(br_as_completed_next_ex(a.it, &f), BR_EDONE, "again");
	cr_assert_null(br_as_completed_next(a.it), "the old call still works");
	br_as_completed_free(a.it);
	br_future_release(t);
	release_all(p, 2);
	br_runtime_free(rt);
}

Test(combine, as_completed_next_ex_refuses_misuse, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *p = br_promise_new(), *f = p, *cb;
	uint64_t not_an_iterator[8] = { 0 };
	struct ac_ex a = { .first = 1 };

	a.it = br_as_completed_new(&p, 1);
	cr_assert_eq(br_as_completed_next_ex(a.it, NULL), -EINVAL);
	cr_assert_eq(br_as_completed_next_ex(NULL, &f), -EINVAL);
	cr_assert_null(f);
	cr_assert_eq(br_as_completed_next_ex((br_as_completed *)not_an_iterator,
					     &f),
		     BR_EBADOBJ);
	/* A loop callback must not block its loop. */
	cb = br_call_soon(rt, as_completed_from_a_callback, &a);
	cr_assert_eq(br_await(cb, NULL), 0);
	cr_assert_eq(a.first, BR_EDEADLK, "got %d", a.first);
	cr_assert_null(a.got);
	br_future_release(cb);
	br_as_completed_free(a.it);
	br_future_release(p);
	br_runtime_free(rt);
}
