/* SPDX-License-Identifier: MIT */
/*
 * test_task.c - tasks (worker.c, fiber.c): spawning and results, pinning,
 * yielding, br_fail(), cancellation before and during a run, the rule
 * that a result is never dropped, br_current()/br_cancelled(), fork-join
 * recursion with inline execution of unstarted children, and per-spawn
 * stack sizes.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(task, .init = t_leak_init, .fini = t_leak_fini);
TestSuite(task_local, .init = t_leak_init, .fini = t_leak_fini);

static void *add_one(void *arg)
{
	return (void *)((uintptr_t)arg + 1);
}

Test(task, spawn_returns_the_functions_value, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *f = br_spawn(rt, add_one, (void *)41);

	cr_assert_not_null(f);
	cr_assert_eq((uintptr_t)t_await_value(f), 42);
	cr_assert_eq(br_future_error(f), 0);
	cr_assert_str_empty(br_future_message(f));
	br_future_release(f);
	br_runtime_free(rt);
}

#define MANY 10000

static atomic_int ran_count;

static void *count_and_return(void *arg)
{
	atomic_fetch_add(&ran_count, 1);
	return arg;
}

Test(task, ten_thousand_spawned_tasks_all_complete, .timeout = 60.0)
{
	br_runtime *rt = t_runtime(2, 0);
	static br_future *fs[MANY];

	for (uintptr_t i = 0; i < MANY; i++)
		fs[i] = br_spawn(rt, count_and_return, (void *)i);
	for (uintptr_t i = 0; i < MANY; i++) {
		cr_assert_eq((uintptr_t)t_await_value(fs[i]), i);
		br_future_release(fs[i]);
	}
	cr_assert_eq(atomic_load(&ran_count), MANY);
	br_runtime_free(rt);
}

static void *spawn_many_from_a_task(void *arg)
{
	static br_future *fs[MANY];
	br_runtime *rt = br_current_runtime();

	T_REQUIRE(rt != NULL);
	for (uintptr_t i = 0; i < MANY; i++)
		fs[i] = br_spawn(rt, count_and_return, (void *)i);
	for (uintptr_t i = 0; i < MANY; i++) {
		void *v = NULL;
		int ret = br_await(fs[i], &v);

		br_future_release(fs[i]);
		T_REQUIRE(ret == 0);
		T_REQUIRE((uintptr_t)v == i);
	}
	return NULL;
}

Test(task, ten_thousand_tasks_spawned_from_a_task_all_complete, .timeout = 60.0)
{
	br_runtime *rt = t_runtime(2, 0);

	t_assert_task_ok(br_spawn(rt, spawn_many_from_a_task, NULL));
	cr_assert_eq(atomic_load(&ran_count), MANY);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Pinning                                                             */
/* ------------------------------------------------------------------ */

static void *stay_pinned(void *arg)
{
	int want = (int)(uintptr_t)arg;

	T_REQUIRE(br_worker_id() == want);
	for (int i = 0; i < 200; i++) {
		if (i % 3 == 0)
			T_REQUIRE(br_yield() == 0);
		else if (i % 3 == 1)
			T_REQUIRE(br_sleep_ms(0) == 0);
		else
			T_REQUIRE(br_sleep_ns(100000) == 0);
		T_REQUIRE(br_worker_id() == want);
	}
	return NULL;
}

static void *busy_yielder(void *arg)
{
	for (int i = 0; i < 200; i++) {
		t_busy_ns(20000);
		br_yield();
	}
	return NULL;
}

Test(task, spawn_on_pins_the_task_to_its_worker, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *pinned[8], *noise[8];

	/* Unpinned busy tasks keep both workers stealing meanwhile. */
	for (int i = 0; i < 8; i++)
		noise[i] = br_spawn(rt, busy_yielder, NULL);
	for (uintptr_t i = 0; i < 8; i++)
		pinned[i] =
			br_spawn_on(rt, i % 2, stay_pinned, (void *)(i % 2));
	for (int i = 0; i < 8; i++) {
		t_assert_task_ok(pinned[i]);
		t_await_value(noise[i]);
		br_future_release(noise[i]);
	}
	br_runtime_free(rt);
}

Test(task, spawn_ex_pinned_flag_pins_the_task, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_spawn_opts o = { .worker = 1, .flags = BR_SPAWN_PINNED };
	br_future *noise[4];

	for (int i = 0; i < 4; i++)
		noise[i] = br_spawn(rt, busy_yielder, NULL);
	t_assert_task_ok(br_spawn_ex(rt, stay_pinned, (void *)1, &o));
	for (int i = 0; i < 4; i++) {
		t_await_value(noise[i]);
		br_future_release(noise[i]);
	}
	br_runtime_free(rt);
}

static void *report_context(void *arg)
{
	br_runtime *want = arg;
	int w = br_worker_id();

	T_REQUIRE(br_current_runtime() == want);
	T_REQUIRE(w >= 0 && (unsigned)w < br_runtime_workers(want));
	T_REQUIRE(br_current() != NULL);
	T_REQUIRE(br_cancelled() == 0);
	return NULL;
}

Test(task, tasks_see_their_runtime_worker_and_future, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);

	t_assert_task_ok(br_spawn(rt, report_context, rt));
	cr_assert_null(br_current_runtime());
	cr_assert_eq(br_worker_id(), -1);
	cr_assert_null(br_current());
	cr_assert_eq(br_cancelled(), 0);
	br_runtime_free(rt);
}

static void *return_current(void *arg)
{
	return br_current();
}

Test(task, br_current_is_the_tasks_own_future, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *f = br_spawn(rt, return_current, NULL);

	cr_assert_eq(t_await_value(f), f);
	br_future_release(f);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Yield                                                               */
/* ------------------------------------------------------------------ */

static void *set_flag(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

static void *yield_to_sibling(void *arg)
{
	atomic_int flag = 0;
	br_future *sib = br_spawn(br_current_runtime(), set_flag, &flag);
	int seen, ret;

	/*
	 * On one worker the sibling is runnable on this worker's queue, so a
	 * single yield must let it run before this task resumes.
	 */
	T_REQUIRE(atomic_load(&flag) == 0);
	ret = br_yield();
	seen = atomic_load(&flag);
	br_await(sib, NULL);
	br_future_release(sib);
	T_REQUIRE(ret == 0);
	T_REQUIRE(seen == 1);
	return NULL;
}

Test(task, yield_lets_a_runnable_sibling_run_first, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);

	t_assert_task_ok(br_spawn(rt, yield_to_sibling, NULL));
	br_runtime_free(rt);
}

struct spinner {
	atomic_int go;
	atomic_int spins;
};

static void *spin_with_yield(void *arg)
{
	struct spinner *s = arg;

	/* Without yielding this would hold the only worker forever. */
	while (!atomic_load(&s->go)) {
		if (atomic_fetch_add(&s->spins, 1) > 10000000)
			return (void *)"the other task never ran";
		br_yield();
	}
	return NULL;
}

static void *release_spinner(void *arg)
{
	struct spinner *s = arg;

	atomic_store(&s->go, 1);
	return NULL;
}

Test(task, yield_keeps_one_worker_fair, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct spinner s = { 0 };
	br_future *a = br_spawn(rt, spin_with_yield, &s);
	br_future *b = br_spawn(rt, release_spinner, &s);

	t_assert_task_ok(a);
	t_await_value(b);
	br_future_release(b);
	cr_assert_eq(br_yield(), 0, "plain thread yield returns 0");
	br_runtime_free(rt);
}

/* Cancelled, it still yields: -ECANCELED says so, and the sibling it
 * waits for runs meanwhile. */
static void *cancelled_yields_to_sibling(void)
{
	atomic_int flag = 0;
	br_future *sib;
	long spins = 0;

	T_REQUIRE(br_cancel(br_current()) == 0);
	sib = br_spawn(br_current_runtime(), set_flag, &flag);
	while (!atomic_load(&flag) && spins < 1000000) {
		T_REQUIRE(br_yield() == -ECANCELED);
		spins++;
	}
	T_REQUIRE(atomic_load(&flag) == 1);
	T_REQUIRE(spins == 1);
	br_future_release(sib);
	return NULL;
}

/* A cancelled task ends CANCELLED whatever it returns: the verdict goes
 * out through arg. */
static void *cancelled_yield(void *arg)
{
	*(void **)arg = cancelled_yields_to_sibling();
	return NULL;
}

Test(task, a_cancelled_task_that_yields_lets_its_sibling_run, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	void *why = (void *)"never ran";
	br_future *f = br_spawn(rt, cancelled_yield, &why);

	cr_assert_eq(br_await(f, NULL), -ECANCELED);
	cr_assert_null(why, "%s", (const char *)why);
	br_future_release(f);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* br_fail                                                             */
/* ------------------------------------------------------------------ */

static void *fail_eio(void *arg)
{
	return br_fail(-EIO, "disk gone");
}

Test(task, fail_makes_the_task_failed_with_code_and_message, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *f = br_spawn(rt, fail_eio, NULL);
	void *v = (void *)1;

	cr_assert_eq(br_await(f, &v), -EIO);
	cr_assert_null(v);
	cr_assert_eq(br_future_state(f), BR_FAILED);
	cr_assert_eq(br_future_error(f), -EIO);
	cr_assert_str_eq(br_future_message(f), "disk gone");
	br_future_release(f);
	br_runtime_free(rt);
}

static void *fail_with_stack_message(void *arg)
{
	char msg[32];
	void *r;

	strcpy(msg, "from the stack");
	r = br_fail(-EPIPE, msg);
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	/* Suspending after br_fail() must not lose the failure. */
	br_sleep_ms(1);
	return r;
}

Test(task, fail_copies_the_message, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *f = br_spawn(rt, fail_with_stack_message, NULL);

	cr_assert_eq(br_await(f, NULL), -EPIPE);
	cr_assert_str_eq(br_future_message(f), "from the stack");
	br_future_release(f);
	br_runtime_free(rt);
}

static void *fail_nonnegative(void *arg)
{
	return br_fail((int)(intptr_t)arg, "bad code");
}

Test(task, fail_with_a_nonnegative_code_gives_etaskfailed, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);

	for (intptr_t code = 0; code <= 5; code += 5) {
		br_future *f = br_spawn(rt, fail_nonnegative, (void *)code);

		cr_assert_eq(br_await(f, NULL), BR_ETASKFAILED, "code %d",
			     (int)code);
		cr_assert_eq(br_future_state(f), BR_FAILED);
		cr_assert_str_eq(br_future_message(f), "bad code");
		br_future_release(f);
	}
	br_runtime_free(rt);
}

static void *fail_then_return_a_value(void *arg)
{
	br_fail(-EIO, "failed first");
	return (void *)0x1234;
}

Test(task, fail_wins_over_a_later_return_value, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *f = br_spawn(rt, fail_then_return_a_value, NULL);
	void *v = (void *)1;

	cr_assert_eq(br_await(f, &v), -EIO);
	cr_assert_null(v);
	cr_assert_eq(br_future_state(f), BR_FAILED);
	br_future_release(f);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Cancellation                                                        */
/* ------------------------------------------------------------------ */

struct blocker {
	atomic_int running;
	atomic_int release;
};

/* Holds its worker without ever suspending until released. */
static void *block_worker(void *arg)
{
	struct blocker *b = arg;

	atomic_store(&b->running, 1);
	t_spin_until(&b->release, 1, 10000 * T_NS_PER_MS);
	return NULL;
}

Test(task, cancel_before_start_never_runs_the_function, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct blocker b = { 0 };
	atomic_int ran = 0;
	br_future *blk, *victim;
	void *v = (void *)1;

	blk = br_spawn(rt, block_worker, &b);
	cr_assert_eq(t_spin_until(&b.running, 1, 5000 * T_NS_PER_MS), 0);
	victim = br_spawn(rt, set_flag, &ran);
	cr_assert_eq(br_cancel(victim), 0);
	atomic_store(&b.release, 1);
	cr_assert_eq(br_await(victim, &v), -ECANCELED);
	cr_assert_null(v);
	cr_assert_eq(br_future_state(victim), BR_CANCELLED);
	cr_assert_eq(br_future_error(victim), -ECANCELED);
	t_await_value(blk);
	br_sleep_ms(20);
	cr_assert_eq(atomic_load(&ran), 0, "a cancelled unstarted task ran");
	br_future_release(victim);
	br_future_release(blk);
	br_runtime_free(rt);
}

struct sleeper {
	atomic_int started;
	int first, second, yield_ret, cancelled_seen;
	int64_t slept_ns;
};

static void *sleep_long(void *arg)
{
	struct sleeper *s = arg;
	int64_t t0 = br_now_ns();

	atomic_store(&s->started, 1);
	s->first = br_sleep_ms(10000);
	s->slept_ns = br_now_ns() - t0;
	s->cancelled_seen = br_cancelled();
	/* Every later suspension point reports the cancellation too. */
	s->second = br_sleep_ms(10000);
	s->yield_ret = br_yield();
	return (void *)0x77;
}

Test(task, cancel_wakes_a_sleeping_task_with_ecanceled, .timeout = 20.0)
{
	for (unsigned workers = 1; workers <= 2; workers++) {
		br_runtime *rt = t_runtime(workers, 0);
		struct sleeper s = { 0 };
		br_future *f = br_spawn(rt, sleep_long, &s);
		void *v = (void *)1;
		int64_t t0;

		cr_assert_eq(t_spin_until(&s.started, 1, 5000 * T_NS_PER_MS),
			     0);
		br_sleep_ms(20);
		t0 = br_now_ns();
		cr_assert_eq(br_cancel(f), 0);
		cr_assert_eq(br_await(f, &v), -ECANCELED);
		cr_assert_lt(t_elapsed_ms(t0), 2000, "cancel was slow");
		cr_assert_null(v);
		cr_assert_eq(br_future_state(f), BR_CANCELLED);
		cr_assert_eq(s.first, -ECANCELED);
		cr_assert_eq(s.second, -ECANCELED);
		cr_assert_eq(s.yield_ret, -ECANCELED);
		cr_assert_eq(s.cancelled_seen, 1);
		cr_assert_lt(s.slept_ns, 5000 * T_NS_PER_MS);
		cr_assert_eq(br_cancel(f), BR_EDONE);
		br_future_release(f);
		br_runtime_free(rt);
	}
}

struct handshake {
	atomic_int started;
	atomic_int cancel_requested;
	int cancelled_seen;
};

static void *finish_without_suspending(void *arg)
{
	struct handshake *h = arg;

	atomic_store(&h->started, 1);
	t_spin_until(&h->cancel_requested, 1, 10000 * T_NS_PER_MS);
	h->cancelled_seen = br_cancelled();
	return (void *)0x42;
}

Test(task, a_task_returning_without_suspending_after_cancel_keeps_its_value,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct handshake h = { 0 };
	br_future *f = br_spawn(rt, finish_without_suspending, &h);

	cr_assert_eq(t_spin_until(&h.started, 1, 5000 * T_NS_PER_MS), 0);
	cr_assert_eq(br_cancel(f), 0);
	atomic_store(&h.cancel_requested, 1);
	cr_assert_eq((uintptr_t)t_await_value(f), 0x42, "result dropped");
	cr_assert_eq(br_future_state(f), BR_DONE);
	cr_assert_eq(h.cancelled_seen, 1, "br_cancelled() missed the request");
	br_future_release(f);
	br_runtime_free(rt);
}

struct parent_arg {
	br_future *child;
	atomic_int awaiting;
	int ret;
};

static void *sleep_10s(void *arg)
{
	return (void *)(intptr_t)br_sleep_ms(10000);
}

static void *await_child(void *arg)
{
	struct parent_arg *p = arg;

	p->child = br_spawn(br_current_runtime(), sleep_10s, NULL);
	atomic_store(&p->awaiting, 1);
	p->ret = br_await(p->child, NULL);
	return NULL;
}

Test(task, cancelling_an_awaiting_task_passes_cancellation_to_the_child,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct parent_arg p = { 0 };
	br_future *parent = br_spawn(rt, await_child, &p);
	int64_t t0;

	cr_assert_eq(t_spin_until(&p.awaiting, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	t0 = br_now_ns();
	cr_assert_eq(br_cancel(parent), 0);
	br_await(parent, NULL);
	cr_assert_eq(p.ret, -ECANCELED, "the await returned %d", p.ret);
	cr_assert_eq(br_await(p.child, NULL), -ECANCELED);
	cr_assert_eq(br_future_state(p.child), BR_CANCELLED);
	cr_assert_lt(t_elapsed_ms(t0), 2000);
	br_future_release(p.child);
	br_future_release(parent);
	br_runtime_free(rt);
}

static atomic_int detached_done;

static void *sleep_then_mark(void *arg)
{
	int ret = br_sleep_ms(30);

	atomic_store(&detached_done, ret == 0 ? 1 : -1);
	return NULL;
}

Test(task, releasing_a_task_future_does_not_cancel_the_task, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);

	br_future_release(br_spawn(rt, sleep_then_mark, NULL));
	cr_assert_eq(t_wait_until(&detached_done, 1, 5000 * T_NS_PER_MS), 0,
		     "detached task did not finish cleanly (%d)",
		     atomic_load(&detached_done));
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Fork-join                                                           */
/* ------------------------------------------------------------------ */

static void *fib(void *arg)
{
	uintptr_t n = (uintptr_t)arg;
	br_runtime *rt = br_current_runtime();
	br_future *a, *b;
	void *x = NULL, *y = NULL;
	int ra, rb;

	if (n < 2)
		return arg;
	a = br_spawn(rt, fib, (void *)(n - 1));
	b = br_spawn(rt, fib, (void *)(n - 2));
	ra = br_await(a, &x);
	rb = br_await(b, &y);
	br_future_release(a);
	br_future_release(b);
	if (ra < 0 || rb < 0)
		return br_fail(ra < 0 ? ra : rb, "child failed");
	return (void *)((uintptr_t)x + (uintptr_t)y);
}

Test(task, fork_join_fib_20_is_6765_on_one_and_two_workers, .timeout = 60.0)
{
	for (unsigned workers = 1; workers <= 2; workers++) {
		br_runtime *rt = t_runtime(workers, 0);
		br_future *f = br_spawn(rt, fib, (void *)20);

		cr_assert_eq((uintptr_t)t_await_value(f), 6765, "%u workers",
			     workers);
		br_future_release(f);
		br_runtime_free(rt);
	}
}

/*
 * As fib(), but every node suspends before it spawns (a yield or a short
 * sleep), so children that a parent runs inline on its own stack suspend
 * and resume there, and may move to the other worker meanwhile.
 */
static void *fib_suspending(void *arg)
{
	uintptr_t n = (uintptr_t)arg;
	br_runtime *rt = br_current_runtime();
	br_future *a, *b;
	void *x = NULL, *y = NULL;
	int ra, rb;

	if (n % 2)
		ra = br_yield();
	else
		ra = br_sleep_ns(10000);
	if (ra < 0)
		return br_fail(ra, "suspension failed");
	if (n < 2)
		return arg;
	a = br_spawn(rt, fib_suspending, (void *)(n - 1));
	b = br_spawn(rt, fib_suspending, (void *)(n - 2));
	ra = br_await(a, &x);
	rb = br_await(b, &y);
	br_future_release(a);
	br_future_release(b);
	if (ra < 0 || rb < 0)
		return br_fail(ra < 0 ? ra : rb, "child failed");
	return (void *)((uintptr_t)x + (uintptr_t)y);
}

Test(task, fork_join_children_that_suspend_give_the_right_sum, .timeout = 60.0)
{
	for (unsigned workers = 1; workers <= 2; workers++) {
		br_runtime *rt = t_runtime(workers, 0);
		br_future *f = br_spawn(rt, fib_suspending, (void *)20);

		cr_assert_eq((uintptr_t)t_await_value(f), 6765, "%u workers",
			     workers);
		br_future_release(f);
		br_runtime_free(rt);
	}
}

/* ------------------------------------------------------------------ */
/* Stack size                                                          */
/* ------------------------------------------------------------------ */

#define FRAME_BYTES 1024

/* Uses about depth * FRAME_BYTES of stack; the volatile array stays. */
__attribute__((noinline)) static unsigned long use_stack(unsigned depth)
{
	volatile unsigned char buf[FRAME_BYTES];
	unsigned long sum;

	for (unsigned i = 0; i < sizeof(buf); i += 256)
		buf[i] = (unsigned char)(depth + i);
	if (depth == 0)
		return buf[0];
	sum = use_stack(depth - 1);
	return sum + buf[FRAME_BYTES - 256];
}

static void *use_200k_of_stack(void *arg)
{
	return (void *)use_stack(200);
}

Test(task, spawn_ex_stack_size_gives_a_bigger_stack, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_spawn_opts o = { .stack_size = 512 * 1024 };
	br_future *f = br_spawn_ex(rt, use_200k_of_stack, NULL, &o);

	cr_assert_eq((uintptr_t)t_await_value(f), use_stack(200));
	br_future_release(f);
	br_runtime_free(rt);
}

/*
 * Tasks that run one after another reuse one fiber. Each run ends with a
 * switch that never returns, and under TSan that left its frames on the
 * fiber's shadow stack, which TSan caps at 65536 frames: a TSan build
 * died on a CHECK after some tens of thousands of runs (fiber.c).
 */
static void *return_arg(void *arg)
{
	return arg;
}

Test(task, one_fiber_runs_a_hundred_thousand_tasks_in_turn, .timeout = 120.0)
{
	enum {
		N = 100000
	};
	br_runtime *rt = t_runtime(1, 0);
	br_future **fs = calloc(N, sizeof(*fs));

	cr_assert_not_null(fs);
	for (uintptr_t i = 0; i < N; i++)
		fs[i] = br_spawn(rt, return_arg, (void *)(i + 1));
	for (uintptr_t i = 0; i < N; i++) {
		cr_assert_eq((uintptr_t)t_await_value(fs[i]), i + 1);
		br_future_release(fs[i]);
	}
	free(fs);
	br_runtime_free(rt);
}

/* ---- the order in which tasks spawned together start (braid.h) ---- */

#define ORDER_N 40

static atomic_int order_next;
static int order_seen[ORDER_N * 2];

static void *record_start(void *arg)
{
	order_seen[atomic_fetch_add(&order_next, 1)] = (int)(intptr_t)arg;
	return NULL;
}

static br_future *order_fs[ORDER_N * 2];

static void *spawn_order_children(void *arg)
{
	br_runtime *rt = br_current_runtime();

	T_REQUIRE(rt != NULL);
	for (intptr_t i = 0; i < ORDER_N; i++)
		order_fs[i] = br_spawn(rt, record_start, (void *)i);
	return NULL; /* the test thread awaits them */
}

/*
 * Checks that order_seen[0..n) starts newest first, except that one pick
 * in 61 may take the oldest task left instead (worker.c's OLDEST_TICK);
 * with n < 61 that happens at most once.
 */
static void assert_newest_first(int n)
{
	char left[ORDER_N] = { 0 };
	int out_of_turn = 0;

	memset(left, 1, (size_t)n);
	for (int k = 0; k < n; k++) {
		int v = order_seen[k], lo = 0, hi = n - 1;

		while (!left[lo])
			lo++;
		while (!left[hi])
			hi--;
		if (v != hi) {
			cr_assert_eq(v, lo,
				     "start %d: task %d, want the newest (%d) "
				     "or, once, the oldest (%d)",
				     k, v, hi, lo);
			out_of_turn++;
		}
		left[v] = 0;
	}
	cr_assert_leq(out_of_turn, 1);
}

Test(task, tasks_spawned_from_a_task_start_newest_first, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *p = br_spawn(rt, spawn_order_children, NULL);

	t_assert_task_ok(p);
	for (int i = 0; i < ORDER_N; i++) {
		t_assert_task_ok(order_fs[i]);
	}
	cr_assert_eq(atomic_load(&order_next), ORDER_N);
	assert_newest_first(ORDER_N);
	br_runtime_free(rt);
}

/* The task spawned first waits behind a chain of newer tasks that each
 * spawn the next: it must start long before the chain ends. */
#define CHAIN_LEN 5000

static atomic_int chain_gen;
static atomic_int first_started_at = -1;

static void *first_task(void *arg)
{
	atomic_store(&first_started_at, atomic_load(&chain_gen));
	return NULL;
}

static void *chain_link(void *arg)
{
	br_runtime *rt = br_current_runtime();
	int g = atomic_fetch_add(&chain_gen, 1) + 1;

	if (g < CHAIN_LEN)
		br_future_release(br_spawn(rt, chain_link, NULL));
	return NULL;
}

static void *spawn_first_then_chain(void *arg)
{
	br_runtime *rt = br_current_runtime();

	T_REQUIRE(rt != NULL);
	order_fs[0] = br_spawn(rt, first_task, NULL);
	br_future_release(br_spawn(rt, chain_link, NULL));
	return NULL;
}

Test(task, an_older_task_starts_while_newer_ones_keep_coming, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *p = br_spawn(rt, spawn_first_then_chain, NULL);

	t_assert_task_ok(p);
	t_assert_task_ok(order_fs[0]);
	/* Newest first alone would start it after all CHAIN_LEN links; the
	 * bound is one pick in 61 (braid.h), with slack for the other
	 * ticks a worker counts. */
	cr_assert_geq(atomic_load(&first_started_at), 0);
	cr_assert_lt(atomic_load(&first_started_at), 4 * 61,
		     "the oldest task started after %d newer ones",
		     atomic_load(&first_started_at));
	br_runtime_free(rt);
}

/* All n tasks started (started of them did), task k as the k-th. */
static void assert_creation_order(const int *seen, int started, int n)
{
	cr_assert_eq(started, n);
	for (int i = 0; i < n; i++)
		cr_assert_eq(seen[i], i, "start %d: task %d", i, seen[i]);
}

Test(task, tasks_spawned_from_a_plain_thread_start_in_creation_order,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);

	for (intptr_t i = 0; i < ORDER_N; i++)
		order_fs[i] = br_spawn(rt, record_start, (void *)i);
	for (int i = 0; i < ORDER_N; i++) {
		t_assert_task_ok(order_fs[i]);
	}
	assert_creation_order(order_seen, atomic_load(&order_next), ORDER_N);
	br_runtime_free(rt);
}

/*
 * Tasks that pile up in the injection queue while the only worker is
 * busy start in creation order once it is free, over more picks than
 * one GLOBAL_POLL_INTERVAL (worker.c), whose ticks take from other
 * queues first.
 */
#define QUEUED_N 300

static atomic_int queued_next, gate_held, gate_open;
static int queued_seen[QUEUED_N];

static void *record_queued(void *arg)
{
	queued_seen[atomic_fetch_add(&queued_next, 1)] = (int)(intptr_t)arg;
	return NULL;
}

static void *hold_the_worker(void *arg)
{
	(void)arg;
	atomic_store(&gate_held, 1);
	while (!atomic_load(&gate_open))
		sched_yield();
	return NULL;
}

Test(task, tasks_queued_behind_a_busy_worker_start_in_creation_order,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_future *gate, *fs[QUEUED_N];

	atomic_store(&gate_held, 0);
	atomic_store(&gate_open, 0);
	atomic_store(&queued_next, 0);
	gate = br_spawn(rt, hold_the_worker, NULL);
	/* A gate that cannot be made (a fault) never starts. */
	while (!atomic_load(&gate_held) && br_future_state(gate) == BR_PENDING)
		sched_yield();
	cr_assert(atomic_load(&gate_held), "the gate never started: %s",
		  br_future_message(gate));
	for (intptr_t i = 0; i < QUEUED_N; i++)
		fs[i] = br_spawn(rt, record_queued, (void *)i);
	atomic_store(&gate_open, 1);
	t_assert_task_ok(gate);
	for (int i = 0; i < QUEUED_N; i++)
		t_assert_task_ok(fs[i]);
	assert_creation_order(queued_seen, atomic_load(&queued_next), QUEUED_N);
	br_runtime_free(rt);
}

/* Pinned tasks spawned from a task start in creation order, on the
 * spawning worker (its own FIFO queue) as on another (its remote
 * queue). */
static atomic_int pinned_next[2];
static int pinned_seen[2][ORDER_N];

static void *record_pinned(void *arg)
{
	intptr_t i = (intptr_t)arg;
	int w = (int)(i / ORDER_N);

	pinned_seen[w][atomic_fetch_add(&pinned_next[w], 1)] =
		(int)(i % ORDER_N);
	return NULL;
}

static void *spawn_pinned_children(void *arg)
{
	br_runtime *rt = br_current_runtime();

	T_REQUIRE(rt != NULL);
	for (intptr_t i = 0; i < ORDER_N; i++) {
		order_fs[i] = br_spawn_on(rt, 0, record_pinned, (void *)i);
		order_fs[ORDER_N + i] = br_spawn_on(rt, 1, record_pinned,
						    (void *)(ORDER_N + i));
	}
	return NULL;
}

Test(task, pinned_tasks_start_in_creation_order, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_spawn_opts o = { .worker = 0, .flags = BR_SPAWN_PINNED };
	br_future *p = br_spawn_ex(rt, spawn_pinned_children, NULL, &o);

	t_assert_task_ok(p);
	for (int i = 0; i < 2 * ORDER_N; i++) {
		t_assert_task_ok(order_fs[i]);
	}
	for (int w = 0; w < 2; w++) {
		cr_assert_eq(atomic_load(&pinned_next[w]), ORDER_N);
		for (int i = 0; i < ORDER_N; i++)
			cr_assert_eq(pinned_seen[w][i], i,
				     "worker %d, start %d: task %d", w, i,
				     pinned_seen[w][i]);
	}
	br_runtime_free(rt);
}

/* ---- a woken task is not stuck behind a waker that keeps running ---- */

static atomic_int woken_ran;
static br_future *wake_promise;

static void *await_the_wake(void *arg)
{
	int r = br_await(wake_promise, NULL);

	T_REQUIRE(r == 0);
	atomic_store(&woken_ran, 1);
	return NULL;
}

/* Wakes await_the_wake (into this worker's LIFO slot), then computes for
 * up to 2 s without suspending. Returns 1 if the woken task ran
 * meanwhile, on another worker. */
static void *wake_then_compute(void *arg)
{
	int64_t t0;

	if (br_promise_resolve(wake_promise, NULL) < 0)
		return NULL;
	t0 = br_now_ns();
	while (!atomic_load(&woken_ran) && br_now_ns() - t0 < 2000000000)
		;
	return (void *)(intptr_t)atomic_load(&woken_ran);
}

static void *nothing(void *arg)
{
	return arg;
}

Test(task, a_task_woken_by_a_running_task_is_taken_by_an_idle_worker,
     .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *waiter, *waker;

	wake_promise = br_promise_new();
	waiter = br_spawn(rt, await_the_wake, NULL);
	br_sleep_ms(50); /* until it waits */
	waker = br_spawn(rt, wake_then_compute, NULL);
	/* Tasks from here keep the other worker waking up and searching,
	 * which is when it looks at the waker's LIFO slot. */
	while (br_future_state(waker) == BR_PENDING) {
		br_future_release(br_spawn(rt, nothing, NULL));
		br_sleep_ms(1);
	}
	cr_assert_eq((intptr_t)t_await_value(waker), 1,
		     "the woken task waited for its waker to finish");
	t_assert_task_ok(waiter);
	br_future_release(waker);
	br_future_release(wake_promise);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Task records                                                        */
/* ------------------------------------------------------------------ */

/*
 * A task record freed on another worker goes back to where it was made,
 * a worker or the runtime's plain threads (task.c: "Records go home"), so
 * that a spawner whose tasks are freed elsewhere does not take every
 * record from malloc. Spawning again from there gives the same records
 * back. ASan builds never recycle (every record is malloc's): there the
 * tests only run the same calls.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RECYCLES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RECYCLES 0
#endif
#endif
#ifndef RECYCLES
#define RECYCLES 1
#endif

/* Two of the batches a worker sends home; more than a spawner's own
 * cache (task.c's CACHE_MAX) holds, spawned on top. */
#define RECORDS 64
#define RESPAWNS (256 + RECORDS + 16)

struct records {
	br_runtime *rt;
	br_future *fs[RESPAWNS];
	uintptr_t first[RECORDS]; /* the records of the first round */
	int found;		  /* how many of them came back */
};

static void *release_records(void *arg)
{
	struct records *r = arg;

	for (int i = 0; i < RECORDS; i++)
		br_future_release(r->fs[i]);
	return NULL;
}

/* Frees r's first RECORDS futures, all complete, on worker 1. */
static void *release_on_worker_1(struct records *r)
{
	br_future *d = br_spawn_on(r->rt, 1, release_records, r);

	T_REQUIRE(br_await(d, NULL) == 0);
	br_future_release(d);
	return NULL;
}

/* Counts how many of the first round's records r->fs[0..n) reuse. */
static void count_found(struct records *r, int n)
{
	r->found = 0;
	for (int i = 0; i < RECORDS; i++)
		for (int k = 0; k < n; k++)
			if ((uintptr_t)r->fs[k] == r->first[i]) {
				r->found++;
				break;
			}
}

static struct records *records_new(br_runtime *rt)
{
	struct records *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	r->rt = rt;
	return r;
}

/* Asserts that every record of the first round came back, where
 * records are recycled, and frees r and its runtime. */
static void records_check_and_free(struct records *r, const char *where)
{
	int found = r->found;

	br_runtime_free(r->rt);
	free(r);
	cr_assert(!RECYCLES || found == RECORDS,
		  "%d of the %d records freed on a worker came back to %s",
		  found, RECORDS, where);
}

static void *spawn_twice_from_worker_0(void *arg)
{
	struct records *r = arg;
	void *err;

	for (int i = 0; i < RECORDS; i++) {
		r->fs[i] = br_spawn_on(r->rt, 1, nothing, NULL);
		T_REQUIRE(br_await(r->fs[i], NULL) == 0);
		r->first[i] = (uintptr_t)r->fs[i];
	}
	err = release_on_worker_1(r);
	if (err)
		return err;
	for (int k = 0; k < RESPAWNS; k++)
		r->fs[k] = br_spawn_on(r->rt, 1, nothing, NULL);
	count_found(r, RESPAWNS);
	for (int k = 0; k < RESPAWNS; k++) {
		T_REQUIRE(br_await(r->fs[k], NULL) == 0);
		br_future_release(r->fs[k]);
	}
	return NULL;
}

Test(task, records_freed_on_another_worker_go_back_to_their_spawner,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct records *r = records_new(rt);

	t_assert_task_ok(br_spawn_on(rt, 0, spawn_twice_from_worker_0, r));
	records_check_and_free(r, "worker 0");
}

static void *release_on_worker_1_task(void *arg)
{
	return release_on_worker_1(arg);
}

Test(task, records_freed_on_a_worker_go_back_to_the_plain_threads,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct records *r = records_new(rt);

	for (int i = 0; i < RECORDS; i++) {
		r->fs[i] = br_spawn(rt, nothing, NULL);
		cr_assert_eq(br_await(r->fs[i], NULL), 0);
		r->first[i] = (uintptr_t)r->fs[i];
	}
	t_assert_task_ok(br_spawn(rt, release_on_worker_1_task, r));
	for (int k = 0; k < RECORDS; k++)
		r->fs[k] = br_spawn(rt, nothing, NULL);
	count_found(r, RECORDS);
	for (int k = 0; k < RECORDS; k++) {
		cr_assert_eq(br_await(r->fs[k], NULL), 0);
		br_future_release(r->fs[k]);
	}
	records_check_and_free(r, "the plain thread");
}

/*
 * br_await() runs the awaiter's own unstarted children inline. A task
 * whose record once belonged to another task is not that task's
 * spawner: here s spawns b and ends, p is made from s's freed record,
 * and p, cancelled, awaits a sibling that b sits above in the deque.
 * b must not run as p's child (it would see p's cancellation); it runs
 * later, as itself.
 */
static br_future *older_sibling;
static _Atomic int b_saw_cancel = -1;

static void *see_cancel(void *arg)
{
	(void)arg;
	atomic_store(&b_saw_cancel, br_cancelled());
	return NULL;
}

static void *spawn_b_and_end(void *arg)
{
	(void)arg;
	br_future_release(br_spawn(br_current_runtime(), see_cancel, NULL));
	return NULL;
}

static void *cancelled_awaiter(void *arg)
{
	(void)arg;
	br_cancel(br_current());
	/* -ECANCELED: its own cancellation; what matters is what b saw. */
	br_await(older_sibling, NULL);
	return NULL;
}

static void *reuse_the_spawners_record(void *arg)
{
	br_runtime *rt = arg;
	br_future *s, *p;
	uintptr_t was;

	older_sibling = br_spawn(rt, nothing, NULL);
	s = br_spawn(rt, spawn_b_and_end, NULL);
	T_REQUIRE(br_await(s, NULL) == 0); /* inline: b is left unstarted */
	was = (uintptr_t)s;
	br_future_release(s);
	p = br_spawn(rt, cancelled_awaiter, NULL);
	if (RECYCLES)
		T_REQUIRE((uintptr_t)p == was); /* the case under test */
	br_await(p, NULL);
	br_future_release(p);
	/* p's cancellation passed on to what it awaited, if that had not
	 * run yet: done or cancelled, either is right here. */
	br_await(older_sibling, NULL);
	br_future_release(older_sibling);
	return NULL;
}

Test(task, a_reused_record_is_not_the_spawner_of_its_old_tasks_children,
     .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);

	t_assert_task_ok(br_spawn(rt, reuse_the_spawners_record, rt));
	/* b may still be queued: br_runtime_free() waits for it. */
	for (int i = 0; i < 1000 && atomic_load(&b_saw_cancel) < 0; i++)
		br_sleep_ms(1);
	br_runtime_free(rt);
	cr_assert_eq(atomic_load(&b_saw_cancel), 0,
		     "a task run as a child of the task that took its "
		     "spawner's record saw that task's cancellation");
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

struct names {
	br_runtime *rt;
	char seen[6][BR_TASK_NAME_MAX + 8];
};

static void note_name(char *out)
{
	const char *n = br_task_name();

	strcpy(out, n ? n : "(none)");
}

static void *named_child(void *arg)
{
	struct names *nm = arg;

	note_name(nm->seen[3]);
	return NULL;
}

static void *named_parent(void *arg)
{
	struct names *nm = arg;
	br_spawn_opts o = { .name = "child" };
	br_future *c;

	note_name(nm->seen[0]);
	T_REQUIRE(br_task_set_name("renamed") == 0);
	note_name(nm->seen[1]);
	T_REQUIRE(br_task_set_name("a name that is longer than thirty-one "
				   "bytes") == 0);
	note_name(nm->seen[2]);
	/* Awaited at once: it runs inline, on this stack, as itself. */
	c = br_spawn_ex(nm->rt, named_child, nm, &o);
	T_REQUIRE(br_await(c, NULL) == 0);
	br_future_release(c);
	note_name(nm->seen[4]);
	T_REQUIRE(br_task_set_name(NULL) == 0);
	note_name(nm->seen[5]);
	return NULL;
}

Test(task, a_name_given_at_spawn_or_set_later_is_the_tasks_own, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct names nm = { .rt = rt };
	br_spawn_opts o = { .name = "parent" };

	t_assert_task_ok(br_spawn_ex(rt, named_parent, &nm, &o));
	cr_assert_str_eq(nm.seen[0], "parent");
	cr_assert_str_eq(nm.seen[1], "renamed");
	cr_assert_eq(strlen(nm.seen[2]), BR_TASK_NAME_MAX - 1);
	cr_assert_eq(strncmp(nm.seen[2], "a name that is longer", 21), 0);
	cr_assert_str_eq(nm.seen[3], "child");
	cr_assert_eq(strncmp(nm.seen[4], "a name that is longer", 21), 0);
	cr_assert_str_eq(nm.seen[5], "(none)");
	cr_assert_eq(br_task_set_name("x"), BR_ENOTTASK);
	cr_assert_null(br_task_name());
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Task-local values                                                   */
/* ------------------------------------------------------------------ */

static br_task_local_key req_key, ctx_key, buf_key;
static atomic_int destroyed;
static void *destroyed_value;

static void destroy_buf(void *v)
{
	destroyed_value = v;
	atomic_fetch_add(&destroyed, 1);
	free(v);
}

static void make_keys(void)
{
	cr_assert_eq(br_task_local_key_new(&req_key, NULL,
					   BR_TASK_LOCAL_INHERIT),
		     0);
	cr_assert_eq(br_task_local_key_new(&ctx_key, NULL, 0), 0);
	cr_assert_eq(br_task_local_key_new(&buf_key, destroy_buf, 0), 0);
	cr_assert_neq(req_key, 0);
	cr_assert_neq(req_key, ctx_key);
}

struct locals_seen {
	br_runtime *rt;
	void *req, *ctx, *buf;
	void *req_after_child;
	int destroyed_before_await;
	void *buf_set;
};

static void *child_reads_locals(void *arg)
{
	struct locals_seen *s = arg;

	s->req = br_task_local_get(req_key);
	s->ctx = br_task_local_get(ctx_key);
	s->buf = br_task_local_get(buf_key);
	/* Its own values: changing them leaves the parent's alone. */
	br_task_local_set(req_key, (void *)43);
	br_task_local_set(ctx_key, (void *)44);
	return NULL;
}

static void *sets_a_buffer(void *arg)
{
	struct locals_seen *s = arg;

	s->buf_set = malloc(16);
	T_REQUIRE(br_task_local_set(buf_key, s->buf_set) == 0);
	T_REQUIRE(br_task_local_get(buf_key) == s->buf_set);
	return NULL;
}

static void *parent_with_locals(void *arg)
{
	struct locals_seen *s = arg;
	br_future *c;

	T_REQUIRE(br_task_local_get(req_key) == NULL);
	T_REQUIRE(br_task_local_set(req_key, (void *)42) == 0);
	T_REQUIRE(br_task_local_set(ctx_key, (void *)7) == 0);
	T_REQUIRE(br_task_local_set(buf_key, NULL) == 0);
	/* Awaited at once, so run inline on this stack: still a task of
	 * its own, with the inherited value only. */
	c = br_spawn(s->rt, child_reads_locals, s);
	T_REQUIRE(br_await(c, NULL) == 0);
	br_future_release(c);
	s->req_after_child = br_task_local_get(req_key);
	T_REQUIRE(br_task_local_get(ctx_key) == (void *)7);
	c = br_spawn(s->rt, sets_a_buffer, s);
	T_REQUIRE(br_await(c, NULL) == 0);
	/* The destructor ran before the future completed. */
	s->destroyed_before_await = atomic_load(&destroyed);
	br_future_release(c);
	return NULL;
}

Test(task_local, values_are_per_task_and_destroyed_at_its_end, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct locals_seen s = {
		.rt = rt, .req = (void *)1, .ctx = (void *)1, .buf = (void *)1
	};

	make_keys();
	t_assert_task_ok(br_spawn(rt, parent_with_locals, &s));
	cr_assert_eq(s.req, (void *)42, "an inheriting key passes on");
	cr_assert_null(s.ctx, "a plain key does not");
	cr_assert_null(s.buf);
	cr_assert_eq(s.req_after_child, (void *)42);
	cr_assert_eq(s.destroyed_before_await, 1);
	cr_assert_eq(destroyed_value, s.buf_set);
	br_runtime_free(rt);
}

static void *thread_sets_a_buffer(void *arg)
{
	void *b = malloc(8);

	(void)arg;
	T_REQUIRE(br_task_local_get(buf_key) == NULL);
	T_REQUIRE(br_task_local_set(buf_key, b) == 0);
	T_REQUIRE(br_task_local_get(buf_key) == b);
	return NULL;
}

static void *spawned_from_a_thread(void *arg)
{
	return br_task_local_get(req_key);
}

Test(task_local, plain_threads_have_their_own_and_pass_inherited_ones_on,
     .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	pthread_t th;
	const char *msg;
	br_future *f;

	make_keys();
	t_thread_start(&th, thread_sets_a_buffer, NULL);
	msg = t_thread_join(th);
	cr_assert_null(msg, "%s", msg);
	/* Destroyed when the thread exited. */
	cr_assert_eq(atomic_load(&destroyed), 1);
	cr_assert_null(br_task_local_get(buf_key), "another thread's value");
	cr_assert_eq(br_task_local_set(req_key, (void *)99), 0);
	f = br_spawn(rt, spawned_from_a_thread, NULL);
	cr_assert_eq(t_await_value(f), (void *)99);
	br_future_release(f);
	cr_assert_eq(br_task_local_set(req_key, NULL), 0);
	f = br_spawn(rt, spawned_from_a_thread, NULL);
	cr_assert_null(t_await_value(f));
	br_future_release(f);
	br_runtime_free(rt);
}

Test(task_local, bad_keys_are_refused, .timeout = 10.0)
{
	br_task_local_key k;
	unsigned made = 0;
	int r;

	cr_assert_eq(br_task_local_key_new(NULL, NULL, 0), -EINVAL);
	cr_assert_eq(br_task_local_key_new(&k, NULL, 0x100), -EINVAL);
	cr_assert_eq(br_task_local_key_new(&k, destroy_buf,
					   BR_TASK_LOCAL_INHERIT),
		     -EINVAL, "an inherited value has several owners");
	cr_assert_eq(br_task_local_set(0, (void *)1), -EINVAL);
	cr_assert_eq(br_task_local_set(BR_TASK_LOCAL_KEYS + 1, (void *)1),
		     -EINVAL);
	cr_assert_eq(br_task_local_set(5, (void *)1), -EINVAL, "not made");
	cr_assert_null(br_task_local_get(0));
	cr_assert_null(br_task_local_get(5));
	while ((r = br_task_local_key_new(&k, NULL, 0)) == 0)
		made++;
	cr_assert_eq(r, -EAGAIN);
	cr_assert_eq(made, BR_TASK_LOCAL_KEYS);
	cr_assert_eq(br_task_local_set(k, (void *)3), 0, "the last key works");
	cr_assert_eq(br_task_local_get(k), (void *)3);
	cr_assert_eq(br_task_local_set(k, NULL), 0);
}
