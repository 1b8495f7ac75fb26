/* SPDX-License-Identifier: MIT */
/*
 * test_blocking.c - the blocking pool (blocking.c): values, awaiting
 * from tasks without blocking a worker, growing to demand and to no more
 * than the maximum, shrinking after the idle time (thread counts from
 * /proc/self/task), the bounded queue, cancellation, and shutdown.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(blocking, .init = t_leak_init, .fini = t_leak_fini);

static br_runtime *pool_runtime(unsigned workers, unsigned max_threads,
				unsigned max_queue, unsigned idle_ms)
{
	br_config cfg = { .workers = workers,
			  .blocking_threads = max_threads,
			  .blocking_queue = max_queue,
			  .blocking_idle_ms = idle_ms };

	return t_runtime_cfg(&cfg);
}

static void *twice(void *arg)
{
	return (void *)((intptr_t)arg * 2);
}

Test(blocking, a_call_returns_its_value_to_a_thread_and_a_task, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *f = br_spawn_blocking(rt, twice, (void *)21);

	cr_assert_eq((intptr_t)t_await_value(f), 42);
	br_future_release(f);
	br_runtime_free(rt);
}

Test(blocking, spawn_blocking_validates_its_arguments, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *f = br_spawn_blocking(rt, NULL, NULL);
	void *fake = aligned_alloc(64, 4096); /* as a runtime is aligned */

	cr_assert_eq(br_future_state(f), BR_FAILED);
	cr_assert_eq(br_future_error(f), -EINVAL);
	br_future_release(f);
	f = br_spawn_blocking(NULL, twice, NULL);
	cr_assert_eq(br_future_error(f), BR_EBADOBJ);
	br_future_release(f);
	cr_assert_not_null(fake);
	memset(fake, 0x5a, 4096);
	f = br_spawn_blocking(fake, twice, NULL);
	cr_assert_eq(br_future_error(f), BR_EBADOBJ);
	br_future_release(f);
	free(fake);
	br_runtime_free(rt);
}

/*
 * On a single worker, a task awaits a blocking call that waits for an
 * event which only a second task sets: if the await blocked the worker,
 * the second task could never run.
 */
static br_event ev = BR_EVENT_INIT;

static void *wait_event(void *arg)
{
	return (void *)(intptr_t)br_event_wait(&ev);
}

static void *awaiter(void *arg)
{
	br_future *f =
		br_spawn_blocking(br_current_runtime(), wait_event, NULL);
	void *v = (void *)1;
	int r = br_await(f, &v);

	br_future_release(f);
	T_REQUIRE(r == 0);
	T_REQUIRE(v == NULL);
	return NULL;
}

static void *setter(void *arg)
{
	br_sleep_ms(20);
	br_event_set(&ev);
	return NULL;
}

Test(blocking, awaiting_from_a_task_suspends_only_that_task, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *a = br_spawn(rt, awaiter, NULL);
	br_future *s = br_spawn(rt, setter, NULL);

	t_assert_task_ok(a);
	t_assert_task_ok(s);
	br_runtime_free(rt);
}

/* Calls that hold their thread until the gate opens. */
static br_event gate = BR_EVENT_INIT;
static atomic_int inside, ran;

static void *gated(void *arg)
{
	atomic_fetch_add(&inside, 1);
	br_event_wait(&gate);
	atomic_fetch_add(&ran, 1);
	atomic_fetch_sub(&inside, 1);
	return arg;
}

Test(blocking, the_pool_grows_to_demand_and_shrinks_when_idle, .timeout = 30.0)
{
	br_runtime *rt = pool_runtime(1, 8, 16, 150);
	int base = t_count_threads();
	br_future *fs[5];
	int64_t t0;

	for (int i = 0; i < 5; i++)
		fs[i] = br_spawn_blocking(rt, gated, (void *)(intptr_t)i);
	cr_assert_eq(t_spin_until(&inside, 5, 5000 * T_NS_PER_MS), 0,
		     "only %d calls started", atomic_load(&inside));
	cr_assert_eq(t_count_threads(), base + 5);
	br_event_set(&gate);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq((intptr_t)t_await_value(fs[i]), i);
		br_future_release(fs[i]);
	}
	t0 = br_now_ns();
	/* Idle threads leave after 150 ms, not before. */
	br_sleep_ms(60);
	cr_assert_eq(t_count_threads(), base + 5, "left before the idle time");
	while (t_count_threads() > base && t_elapsed_ms(t0) < 5000)
		br_sleep_ms(5);
	cr_assert_eq(t_count_threads(), base, "%d threads stayed",
		     t_count_threads() - base);
	cr_assert_geq(t_elapsed_ms(t0), 150);
	/* And it grows again. */
	fs[0] = br_spawn_blocking(rt, twice, (void *)4);
	cr_assert_eq((intptr_t)t_await_value(fs[0]), 8);
	br_future_release(fs[0]);
	br_runtime_free(rt);
	/* The worker and the stall detector's watchdog go too. */
	t_assert_threads_return_to(base - 2);
}

Test(blocking, the_pool_never_exceeds_its_maximum, .timeout = 30.0)
{
	br_runtime *rt = pool_runtime(2, 2, 16, 10000);
	int base = t_count_threads();
	br_future *fs[6];

	for (int i = 0; i < 6; i++)
		fs[i] = br_spawn_blocking(rt, gated, NULL);
	cr_assert_eq(t_spin_until(&inside, 2, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(30);
	cr_assert_eq(atomic_load(&inside), 2);
	cr_assert_eq(t_count_threads(), base + 2);
	br_event_set(&gate);
	for (int i = 0; i < 6; i++) {
		t_await_value(fs[i]);
		br_future_release(fs[i]);
	}
	cr_assert_eq(atomic_load(&ran), 6);
	br_runtime_free(rt);
}

Test(blocking, a_full_queue_gives_eagain_not_a_hang, .timeout = 20.0)
{
	br_runtime *rt = pool_runtime(1, 1, 2, 10000);
	br_future *fs[3], *over;

	/* One call runs on the pool's only thread; two fill the queue. */
	fs[0] = br_spawn_blocking(rt, gated, NULL);
	cr_assert_eq(t_spin_until(&inside, 1, 5000 * T_NS_PER_MS), 0);
	for (int i = 1; i < 3; i++) {
		fs[i] = br_spawn_blocking(rt, gated, NULL);
		cr_assert_eq(br_future_state(fs[i]), BR_PENDING);
	}
	over = br_spawn_blocking(rt, gated, NULL);
	cr_assert_eq(br_future_state(over), BR_FAILED);
	cr_assert_eq(br_future_error(over), -EAGAIN);
	br_future_release(over);
	br_event_set(&gate);
	for (int i = 0; i < 3; i++) {
		t_await_value(fs[i]);
		br_future_release(fs[i]);
	}
	cr_assert_eq(atomic_load(&ran), 3);
	br_runtime_free(rt);
}

static atomic_int never_ran;

static void *must_not_run(void *arg)
{
	atomic_fetch_add(&never_ran, 1);
	return NULL;
}

Test(blocking, cancelling_a_queued_call_keeps_it_from_running, .timeout = 20.0)
{
	br_runtime *rt = pool_runtime(1, 1, 4, 10000);
	br_future *a = br_spawn_blocking(rt, gated, NULL);
	br_future *b;

	cr_assert_eq(t_spin_until(&inside, 1, 5000 * T_NS_PER_MS), 0);
	b = br_spawn_blocking(rt, must_not_run, NULL);
	cr_assert_eq(br_cancel(b), 0);
	cr_assert_eq(br_future_state(b), BR_CANCELLED);
	br_event_set(&gate);
	t_await_value(a);
	/* The pool's one thread has passed over b by the time it takes
	 * the next call. */
	br_future_release(br_spawn_blocking(rt, twice, NULL));
	br_sleep_ms(20);
	cr_assert_eq(atomic_load(&never_ran), 0);
	br_future_release(a);
	br_future_release(b);
	br_runtime_free(rt);
}

static atomic_int slow_done;

static void *slow_call(void *arg)
{
	struct timespec ts = { 0, 100 * 1000000 };

	nanosleep(&ts, NULL);
	atomic_store(&slow_done, 1);
	return NULL;
}

Test(blocking, runtime_free_waits_for_running_calls_and_cancels_queued,
     .timeout = 20.0)
{
	int base = t_count_threads();
	br_runtime *rt = pool_runtime(1, 1, 4, 10000);
	br_future *a = br_spawn_blocking(rt, slow_call, NULL);
	br_future *b;
	int64_t t0 = br_now_ns();

	br_sleep_ms(10);
	b = br_spawn_blocking(rt, must_not_run, NULL);
	br_runtime_free(rt);
	cr_assert_eq(atomic_load(&slow_done), 1, "did not wait for the call");
	cr_assert_geq(t_elapsed_ms(t0), 80);
	cr_assert_eq(br_future_state(a), BR_DONE);
	cr_assert_eq(br_future_state(b), BR_CANCELLED);
	cr_assert_eq(atomic_load(&never_ran), 0);
	br_future_release(a);
	br_future_release(b);
	t_assert_threads_return_to(base);
}

/* Many short calls from a task: every one completes with its value. */
static void *many(void *arg)
{
	enum {
		N = 20000
	};
	br_runtime *rt = br_current_runtime();
	br_future **fs = malloc(N * sizeof(*fs));
	long sum = 0;

	T_REQUIRE(fs != NULL);
	for (intptr_t i = 0; i < N; i++)
		fs[i] = br_spawn_blocking(rt, twice, (void *)i);
	for (int i = 0; i < N; i++) {
		void *v = NULL;

		if (br_await(fs[i], &v) == 0)
			sum += (intptr_t)v;
		br_future_release(fs[i]);
	}
	free(fs);
	T_REQUIRE(sum == (long)N * (N - 1));
	return NULL;
}

Test(blocking, a_burst_of_short_calls_all_complete, .timeout = 60.0)
{
	br_runtime *rt = pool_runtime(2, 0, 1u << 20, 0);

	t_assert_task_ok(br_spawn(rt, many, NULL));
	br_runtime_free(rt);
}

/* A blocking call and a task talk through a channel. */
static void *producer_call(void *arg)
{
	br_chan *ch = arg;

	for (long i = 0; i < 1000; i++)
		if (br_chan_send(ch, &i) != 0)
			return (void *)1;
	br_chan_close(ch);
	return NULL;
}

static void *consumer_task(void *arg)
{
	br_chan *ch = arg;
	long v, expect = 0;

	while (br_chan_recv(ch, &v) == 0) {
		T_REQUIRE(v == expect);
		expect++;
	}
	T_REQUIRE(expect == 1000);
	return NULL;
}

Test(blocking, a_blocking_call_and_a_task_share_a_channel, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_chan *ch = NULL;
	br_future *c, *p;

	cr_assert_eq(br_chan_new(&ch, sizeof(long), 0), 0);
	c = br_spawn(rt, consumer_task, ch);
	p = br_spawn_blocking(rt, producer_call, ch);
	cr_assert_null(t_await_value(p));
	t_assert_task_ok(c);
	br_future_release(p);
	br_chan_free(ch);
	br_runtime_free(rt);
}
