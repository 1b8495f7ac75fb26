/* SPDX-License-Identifier: MIT */
/*
 * test_timer.c - timers (timer.c): sleeps in tasks and plain threads,
 * zero and negative delays, absolute deadlines, wake-up order, and
 * br_call_soon()/br_call_later() callbacks including their cancellation.
 *
 * Lower bounds on time are strict; upper bounds are loose because the
 * machines are small and noisy.
 */
#include <errno.h>
#include <stdint.h>
#include <time.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(timer, .init = t_leak_init, .fini = t_leak_fini);
TestSuite(ticker, .init = t_leak_init, .fini = t_leak_fini);
TestSuite(call_every, .init = t_leak_init, .fini = t_leak_fini);

struct sleep_rec {
	int64_t ask_ns;
	int ret;
	int64_t took_ns;
};

static void *timed_sleep_ms(void *arg)
{
	struct sleep_rec *s = arg;
	int64_t t0 = br_now_ns();

	s->ret = br_sleep_ms(s->ask_ns / T_NS_PER_MS);
	s->took_ns = br_now_ns() - t0;
	return NULL;
}

static void *timed_sleep_ns(void *arg)
{
	struct sleep_rec *s = arg;
	int64_t t0 = br_now_ns();

	s->ret = br_sleep_ns(s->ask_ns);
	s->took_ns = br_now_ns() - t0;
	return NULL;
}

Test(timer, sleep_ms_waits_at_least_the_delay, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct sleep_rec s = { .ask_ns = 50 * T_NS_PER_MS };
	br_future *f = br_spawn(rt, timed_sleep_ms, &s);

	t_await_value(f);
	cr_assert_eq(s.ret, 0);
	cr_assert_geq(s.took_ns, 50 * T_NS_PER_MS, "woke after %lld ns",
		      (long long)s.took_ns);
	cr_assert_lt(s.took_ns, 500 * T_NS_PER_MS);
	br_future_release(f);
	br_runtime_free(rt);
}

Test(timer, sleep_ns_waits_at_least_the_delay, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct sleep_rec s = { .ask_ns = 3 * T_NS_PER_MS + 1234 };
	br_future *f = br_spawn(rt, timed_sleep_ns, &s);

	t_await_value(f);
	cr_assert_eq(s.ret, 0);
	cr_assert_geq(s.took_ns, s.ask_ns);
	cr_assert_lt(s.took_ns, 500 * T_NS_PER_MS);
	br_future_release(f);
	br_runtime_free(rt);
}

static void *zero_sleeps(void *arg)
{
	int64_t t0 = br_now_ns();

	T_REQUIRE(br_sleep_ms(0) == 0);
	T_REQUIRE(br_sleep_ms(-5) == 0);
	T_REQUIRE(br_sleep_ns(0) == 0);
	T_REQUIRE(br_sleep_ns(-1) == 0);
	T_REQUIRE(br_sleep_ns(INT64_MIN) == 0);
	T_REQUIRE(br_sleep_until(0) == 0);
	T_REQUIRE(br_sleep_until(br_now_ns() - T_NS_PER_MS) == 0);
	T_REQUIRE(br_now_ns() - t0 < 20 * T_NS_PER_MS);
	return NULL;
}

Test(timer, zero_and_negative_sleeps_return_at_once, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);

	t_assert_task_ok(br_spawn(rt, zero_sleeps, NULL));
	/* The same calls from a plain thread. */
	cr_assert_null(zero_sleeps(NULL));
	br_runtime_free(rt);
}

static void *zero_sleep_yields(void *arg)
{
	atomic_int flag = 0;
	br_future *sib = br_spawn(br_current_runtime(), (br_task_fn)arg, &flag);
	int ret = br_sleep_ms(0);
	int seen = atomic_load(&flag);

	br_await(sib, NULL);
	br_future_release(sib);
	T_REQUIRE(ret == 0);
	T_REQUIRE(seen == 1);
	return NULL;
}

static void *set_flag(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

Test(timer, zero_sleep_yields_once, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);

	t_assert_task_ok(br_spawn(rt, zero_sleep_yields, (void *)set_flag));
	br_runtime_free(rt);
}

static void *sleep_until_deadline(void *arg)
{
	int64_t deadline = br_now_ns() + 30 * T_NS_PER_MS;

	T_REQUIRE(br_sleep_until(deadline) == 0);
	T_REQUIRE(br_now_ns() >= deadline);
	T_REQUIRE(br_now_ns() - deadline < 500 * T_NS_PER_MS);
	return NULL;
}

Test(timer, sleep_until_wakes_at_or_after_the_deadline, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);

	t_assert_task_ok(br_spawn(rt, sleep_until_deadline, NULL));
	cr_assert_null(sleep_until_deadline(NULL), "from a plain thread");
	br_runtime_free(rt);
}

#define N_SLEEPERS 16

struct order {
	atomic_int next;
	atomic_int asleep;
	int woke[N_SLEEPERS];
	int64_t late_ns[N_SLEEPERS];
	int64_t slack_ns[N_SLEEPERS];
	int64_t woke_ns[N_SLEEPERS];
	int64_t base;
};

struct order_arg {
	struct order *o;
	int rank;
	int64_t step_ns; /* between ranks' deadlines; 0: 10 ms */
};

static void *sleep_rank(void *arg)
{
	struct order_arg *a = arg;
	int64_t step = a->step_ns ? a->step_ns : 10 * T_NS_PER_MS;
	int64_t deadline = a->o->base + (int64_t)a->rank * step;
	int ret;

	a->o->slack_ns[a->rank] = deadline - br_now_ns();
	atomic_fetch_add(&a->o->asleep, 1);
	ret = br_sleep_until(deadline);

	a->o->woke_ns[a->rank] = br_now_ns();
	a->o->late_ns[a->rank] = a->o->woke_ns[a->rank] - deadline;
	a->o->woke[atomic_fetch_add(&a->o->next, 1)] = a->rank;
	return (void *)(intptr_t)ret;
}

Test(timer, sleepers_wake_in_deadline_order, .timeout = 10.0)
{
	/* One worker, so the wake-up order is the order the loop runs. */
	br_runtime *rt = t_runtime(1, 0);
	struct order o = { .base = br_now_ns() + 300 * T_NS_PER_MS };
	struct order_arg args[N_SLEEPERS];
	br_future *fs[N_SLEEPERS];
	/* A fixed shuffle of the ranks, so spawn order differs from rank. */
	static const int perm[N_SLEEPERS] = { 7, 2, 15, 0, 11, 4, 9,  13,
					      1, 6, 14, 3, 10, 8, 12, 5 };

	for (int i = 0; i < N_SLEEPERS; i++) {
		args[i] = (struct order_arg){ .o = &o, .rank = perm[i] };
		fs[i] = br_spawn(rt, sleep_rank, &args[i]);
	}
	for (int i = 0; i < N_SLEEPERS; i++) {
		cr_assert_null(t_await_value(fs[i]));
		br_future_release(fs[i]);
	}
	cr_assert_eq(atomic_load(&o.next), N_SLEEPERS);
	/* Only meaningful if every task was asleep before its deadline. */
	for (int i = 0; i < N_SLEEPERS; i++)
		cr_assert_gt(o.slack_ns[i], 0, "rank %d started %lld ns late",
			     i, (long long)-o.slack_ns[i]);
	for (int i = 0; i < N_SLEEPERS; i++)
		cr_assert_geq(o.late_ns[i], 0, "rank %d woke early", i);
	/*
	 * Whenever a later rank ran before an earlier one, the earlier one
	 * must already have been due then: the two expired in one batch.
	 * Anything else is a timer that fired out of order.
	 */
	for (int k = 0; k < N_SLEEPERS; k++) {
		int j = o.woke[k];

		for (int m = k + 1; m < N_SLEEPERS; m++) {
			int i = o.woke[m];
			int64_t due = o.base + (int64_t)i * 10 * T_NS_PER_MS;

			if (i < j)
				cr_assert_leq(
					due, o.woke_ns[j],
					"rank %d ran before rank %d was due", j,
					i);
		}
	}
#if !defined(__SANITIZE_THREAD__)
	/*
	 * Within a batch the loop runs them in deadline order too. TSan
	 * builds shuffle runnable tasks on purpose, so only the check above
	 * holds there.
	 */
	for (int i = 0; i < N_SLEEPERS; i++)
		cr_assert_eq(o.woke[i], i, "wake %d was rank %d", i, o.woke[i]);
#endif
	br_runtime_free(rt);
}

/* Holds the only worker until every sleeper is due. */
static void *hold_past_deadlines(void *arg)
{
	struct order *o = arg;

	while (atomic_load(&o->asleep) < N_SLEEPERS)
		br_yield();
	while (br_now_ns() < o->base + (N_SLEEPERS + 5) * T_NS_PER_MS)
		t_busy_ns(T_NS_PER_MS);
	return NULL;
}

/*
 * Timers that expire while their worker is busy fire in one batch, and
 * the batch still runs in deadline order, for sleepers pinned to the
 * worker (pinned) as for the others. Each woken task takes the LIFO slot
 * and pushes the one before it to the deque, which runs newest first, so
 * the batch once ran latest deadline first.
 */
static void sleepers_due_together(int pinned)
{
	br_runtime *rt =
		t_runtime_cfg(&(br_config){ .workers = 1, .stall_ms = -1 });
	struct order o = { .base = br_now_ns() + 1000 * T_NS_PER_MS };
	struct order_arg args[N_SLEEPERS];
	br_future *fs[N_SLEEPERS], *hold;
	static const int perm[N_SLEEPERS] = { 3, 12, 0, 9, 15, 6, 1,  10,
					      4, 14, 7, 2, 11, 5, 13, 8 };

	for (int i = 0; i < N_SLEEPERS; i++) {
		args[i] = (struct order_arg){ .o = &o,
					      .rank = perm[i],
					      .step_ns = T_NS_PER_MS };
		fs[i] = pinned ? br_spawn_on(rt, 0, sleep_rank, &args[i]) :
				 br_spawn(rt, sleep_rank, &args[i]);
	}
	hold = br_spawn(rt, hold_past_deadlines, &o);
	t_assert_task_ok(hold);
	for (int i = 0; i < N_SLEEPERS; i++) {
		cr_assert_null(t_await_value(fs[i]));
		br_future_release(fs[i]);
	}
	for (int i = 0; i < N_SLEEPERS; i++)
		cr_assert_gt(o.slack_ns[i], 0, "rank %d slept late", i);
#if !defined(__SANITIZE_THREAD__)
	for (int i = 0; i < N_SLEEPERS; i++)
		cr_assert_eq(o.woke[i], i, "wake %d was rank %d", i, o.woke[i]);
#endif
	br_runtime_free(rt);
}

Test(timer, sleepers_due_together_wake_in_deadline_order, .timeout = 10.0)
{
	sleepers_due_together(0);
}

/* Pinned sleepers wake into the pinned queue, not the deque: the batch
 * ran as 0, 15, 14, ..., 1 there while the order held for the deque. */
Test(timer, pinned_sleepers_due_together_wake_in_deadline_order,
     .timeout = 10.0)
{
	sleepers_due_together(1);
}

Test(timer, plain_thread_sleeps_for_at_least_the_delay, .timeout = 10.0)
{
	int64_t t0 = br_now_ns();
	struct timespec ts;

	cr_assert_eq(br_sleep_ms(30), 0);
	cr_assert_geq(br_now_ns() - t0, 30 * T_NS_PER_MS);
	t0 = br_now_ns();
	cr_assert_eq(br_sleep_ns(2 * T_NS_PER_MS), 0);
	cr_assert_geq(br_now_ns() - t0, 2 * T_NS_PER_MS);
	cr_assert_lt(br_now_ns() - t0, 500 * T_NS_PER_MS);

	/* br_now_ns() is CLOCK_MONOTONIC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	cr_assert_lt(br_now_ns() - t0, 100 * T_NS_PER_MS);
	cr_assert_geq(br_now_ns(), t0);
}

/* ------------------------------------------------------------------ */
/* br_call_soon, br_call_later                                         */
/* ------------------------------------------------------------------ */

struct cb_rec {
	atomic_int calls;
	int64_t at_ns;
	int worker;
	br_runtime *rt;
	br_future *current;
};

static void record_call(void *arg)
{
	struct cb_rec *r = arg;

	r->at_ns = br_now_ns();
	r->worker = br_worker_id();
	r->rt = br_current_runtime();
	r->current = br_current();
	atomic_fetch_add(&r->calls, 1);
}

Test(timer, call_soon_runs_the_callback_on_a_worker, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct cb_rec r = { 0 };
	br_future *f = br_call_soon(rt, record_call, &r);

	cr_assert_not_null(f);
	cr_assert_null(t_await_value(f), "the value is NULL");
	cr_assert_eq(atomic_load(&r.calls), 1);
	cr_assert_eq(r.rt, rt);
	cr_assert(r.worker >= 0 && r.worker < 2, "worker %d", r.worker);
	cr_assert_null(r.current, "a loop callback is not a task");
	br_future_release(f);
	br_runtime_free(rt);
	cr_assert_eq(atomic_load(&r.calls), 1);
}

Test(timer, call_later_fires_after_its_delay, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct cb_rec r = { 0 };
	int64_t t0 = br_now_ns();
	br_future *f = br_call_later(rt, 50, record_call, &r);

	cr_assert_null(t_await_value(f));
	cr_assert_eq(atomic_load(&r.calls), 1);
	cr_assert_geq(r.at_ns - t0, 50 * T_NS_PER_MS, "fired after %lld ns",
		      (long long)(r.at_ns - t0));
	cr_assert_lt(r.at_ns - t0, 500 * T_NS_PER_MS);
	cr_assert_eq(r.rt, rt);
	br_future_release(f);
	br_runtime_free(rt);
}

Test(timer, call_later_with_no_delay_runs_soon, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct cb_rec r[2] = { 0 };
	br_future *a = br_call_later(rt, 0, record_call, &r[0]);
	br_future *b = br_call_later(rt, -10, record_call, &r[1]);

	t_await_value(a);
	t_await_value(b);
	cr_assert_eq(atomic_load(&r[0].calls), 1);
	cr_assert_eq(atomic_load(&r[1].calls), 1);
	br_future_release(a);
	br_future_release(b);
	br_runtime_free(rt);
}

Test(timer, cancelling_call_later_keeps_the_callback_from_running,
     .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct cb_rec r = { 0 };
	br_future *f = br_call_later(rt, 100, record_call, &r);

	cr_assert_eq(br_cancel(f), 0);
	cr_assert_eq(br_future_state(f), BR_CANCELLED, "at once");
	cr_assert_eq(br_await(f, NULL), -ECANCELED);
	br_sleep_ms(250);
	cr_assert_eq(atomic_load(&r.calls), 0, "cancelled callback ran");
	br_future_release(f);
	br_runtime_free(rt);
	cr_assert_eq(atomic_load(&r.calls), 0);
}

struct blocker {
	atomic_int running;
	atomic_int release;
};

static void *block_worker(void *arg)
{
	struct blocker *b = arg;

	atomic_store(&b->running, 1);
	t_spin_until(&b->release, 1, 10000 * T_NS_PER_MS);
	return NULL;
}

Test(timer, cancelling_call_soon_before_it_runs_keeps_it_from_running,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct blocker b = { 0 };
	struct cb_rec r = { 0 };
	br_future *blk = br_spawn(rt, block_worker, &b);
	br_future *f;

	/* The only worker is busy, so the callback cannot have run yet. */
	cr_assert_eq(t_spin_until(&b.running, 1, 5000 * T_NS_PER_MS), 0);
	f = br_call_soon(rt, record_call, &r);
	cr_assert_eq(br_cancel(f), 0);
	cr_assert_eq(br_future_state(f), BR_CANCELLED);
	atomic_store(&b.release, 1);
	t_await_value(blk);
	br_sleep_ms(50);
	cr_assert_eq(atomic_load(&r.calls), 0, "cancelled callback ran");
	br_future_release(blk);
	br_future_release(f);
	br_runtime_free(rt);
}

Test(timer, a_pending_call_later_is_cancelled_by_runtime_free, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct cb_rec r = { 0 };
	br_future *f = br_call_later(rt, 60000, record_call, &r);
	int64_t t0 = br_now_ns();

	br_runtime_free(rt);
	cr_assert_lt(t_elapsed_ms(t0), 2000, "free waited for the timer");
	cr_assert_eq(atomic_load(&r.calls), 0);
	cr_assert_neq(br_future_state(f), BR_PENDING,
		      "the future of a callback that can never run");
	br_future_release(f);
}

/* ------------------------------------------------------------------ */
/* Tickers and br_call_every                                           */
/* ------------------------------------------------------------------ */

#define TICK_MS 10

struct tick_run {
	int ticks;	  /* how many br_ticker_next() calls */
	int64_t busy_ns;  /* work after each tick, without suspending */
	int64_t t0;	  /* br_now_ns() just before br_ticker_new() */
	int64_t k;	  /* ticks delivered plus skipped */
	int64_t elapsed;  /* from t0 to the last return */
	int64_t early_ns; /* the worst return before its tick (want 0) */
	int64_t skipped;
};

static void *run_ticks(void *arg)
{
	struct tick_run *r = arg;
	br_ticker *t;
	int64_t n;

	r->t0 = br_now_ns();
	T_REQUIRE(br_ticker_new(&t, TICK_MS) == 0);
	for (int i = 0; i < r->ticks; i++) {
		int64_t at;

		n = br_ticker_next(t);
		T_REQUIRE(n >= 0);
		at = br_now_ns();
		r->skipped += n;
		r->k += n + 1;
		/* Tick k falls at start + k * period, start >= t0. */
		if (r->t0 + r->k * TICK_MS * T_NS_PER_MS - at > r->early_ns)
			r->early_ns = r->t0 + r->k * TICK_MS * T_NS_PER_MS - at;
		r->elapsed = at - r->t0;
		if (r->busy_ns)
			t_busy_ns(r->busy_ns);
	}
	br_ticker_free(t);
	return NULL;
}

/* The grid: no tick before its time, and the ticks counted (delivered
 * and skipped) keep up with the clock instead of falling behind it. */
static void assert_on_the_grid(const struct tick_run *r)
{
	cr_assert_leq(r->early_ns, 0, "a tick came %lld ns early",
		      (long long)r->early_ns);
	cr_assert_geq(r->elapsed, r->k * TICK_MS * T_NS_PER_MS);
	/* A ticker that drifted by its callers' work would trail the clock
	 * by that work times the ticks (900 ms below); one on the grid by
	 * at most one late wake-up. */
	cr_assert_lt(r->elapsed - r->k * TICK_MS * T_NS_PER_MS,
		     600 * T_NS_PER_MS, "%lld ticks in %lld ms",
		     (long long)r->k, (long long)(r->elapsed / T_NS_PER_MS));
}

Test(ticker, a_hundred_ticks_stay_on_the_grid, .timeout = 30.0)
{
	br_runtime *rt = t_runtime_cfg(&(br_config){ .workers = 2 });
	struct tick_run r = { .ticks = 100 };

	t_assert_task_ok(br_spawn(rt, run_ticks, &r));
	cr_assert_eq(r.k, 100 + r.skipped);
	cr_assert_geq(r.elapsed, 100 * TICK_MS * T_NS_PER_MS);
	assert_on_the_grid(&r);
	br_runtime_free(rt);
}

Test(ticker, a_slow_caller_does_not_drift, .timeout = 30.0)
{
	br_runtime *rt =
		t_runtime_cfg(&(br_config){ .workers = 1, .stall_ms = -1 });
	struct tick_run r = { .ticks = 100, .busy_ns = 9 * T_NS_PER_MS };

	t_assert_task_ok(br_spawn(rt, run_ticks, &r));
	assert_on_the_grid(&r);
	br_runtime_free(rt);
}

Test(ticker, works_from_a_plain_thread, .timeout = 30.0)
{
	struct tick_run r = { .ticks = 20 };
	const char *msg = run_ticks(&r);

	cr_assert_null(msg, "%s", msg);
	assert_on_the_grid(&r);
}

struct skip {
	int64_t first, second, third;
	int64_t t_third, start_floor;
};

static void *skip_ticks(void *arg)
{
	struct skip *s = arg;
	br_ticker *t;

	s->start_floor = br_now_ns();
	T_REQUIRE(br_ticker_new(&t, 20) == 0);
	s->first = br_ticker_next(t);
	/* Away for over five periods: the ticks passed meanwhile come
	 * back as one, at once, with their count. */
	T_REQUIRE(br_sleep_ms(110) == 0);
	s->second = br_ticker_next(t);
	s->third = br_ticker_next(t);
	s->t_third = br_now_ns();
	br_ticker_free(t);
	return NULL;
}

Test(ticker, ticks_missed_are_counted_and_not_replayed, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct skip s = { 0 };

	t_assert_task_ok(br_spawn(rt, skip_ticks, &s));
	cr_assert_geq(s.first, 0);
	/* First returned at tick 1 + first (>= 20 ms), then 110 ms away:
	 * tick first + 2 onwards, at least four, passed meanwhile. */
	cr_assert_geq(s.second, 4, "skipped %lld", (long long)s.second);
	/* The third waits for the next tick on the grid. */
	cr_assert_geq(s.third, 0);
	cr_assert_geq(s.t_third - s.start_floor,
		      (s.first + s.second + s.third + 3) * 20 * T_NS_PER_MS);
	br_runtime_free(rt);
}

struct tick_stop {
	br_ticker *t;
	atomic_int waiting;
	int64_t in_scope, cancelled;
};

static void *tick_in_scope_then_wait(void *arg)
{
	struct tick_stop *s = arg;
	br_deadline d;

	br_deadline_enter(&d, 30);
	s->in_scope = br_ticker_next(s->t);
	br_deadline_leave(&d);
	atomic_store(&s->waiting, 1);
	s->cancelled = br_ticker_next(s->t);
	return NULL;
}

Test(ticker, a_wait_ends_with_its_scope_or_a_cancellation, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct tick_stop s = { .in_scope = 1, .cancelled = 1 };
	br_future *f;

	cr_assert_eq(br_ticker_new(&s.t, 60000), 0);
	f = br_spawn(rt, tick_in_scope_then_wait, &s);
	cr_assert_eq(t_spin_until(&s.waiting, 1, 5000 * T_NS_PER_MS), 0);
	cr_assert_eq(br_ticker_next(s.t), -EBUSY, "one caller at a time");
	br_cancel(f);
	cr_assert_eq(br_await(f, NULL), -ECANCELED);
	cr_assert_eq(s.in_scope, -ETIMEDOUT);
	cr_assert_eq(s.cancelled, -ECANCELED);
	/* Usable again, restarted from now. */
	cr_assert_eq(br_ticker_reset(s.t, 5), 0);
	cr_assert_geq(br_ticker_next(s.t), 0);
	br_ticker_free(s.t);
	br_future_release(f);
	br_runtime_free(rt);
}

Test(ticker, bad_arguments_are_refused, .timeout = 10.0)
{
	br_ticker *t = (br_ticker *)1;
	uint64_t not_a_ticker[8] = { 0 };

	cr_assert_eq(br_ticker_new(NULL, 10), -EINVAL);
	cr_assert_eq(br_ticker_new(&t, 0), -EINVAL);
	cr_assert_null(t);
	cr_assert_eq(br_ticker_new(&t, -5), -EINVAL);
	cr_assert_eq(br_ticker_next(NULL), -EINVAL);
	cr_assert_eq(br_ticker_next((br_ticker *)not_a_ticker), BR_EBADOBJ);
	cr_assert_eq(br_ticker_reset(NULL, 10), -EINVAL);
	cr_assert_eq(br_ticker_new(&t, INT64_MAX), 0, "saturates");
	cr_assert_eq(br_ticker_reset(t, 0), -EINVAL);
	br_ticker_free(t);
	br_ticker_free(NULL);
}

static atomic_int every_runs;
static int64_t every_first_ns;

static void count_run(void *arg)
{
	if (atomic_fetch_add(&every_runs, 1) == 0)
		every_first_ns = br_now_ns();
}

Test(call_every, runs_on_the_ticks_until_cancelled, .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	int64_t t0 = br_now_ns();
	br_future *f = br_call_every(rt, TICK_MS, count_run, NULL);
	int n;

	cr_assert_eq(t_wait_until(&every_runs, 20, 20000 * T_NS_PER_MS), 0);
	/* Twenty runs take at least twenty periods. */
	cr_assert_geq(br_now_ns() - t0, 20 * TICK_MS * T_NS_PER_MS);
	cr_assert_geq(every_first_ns - t0, TICK_MS * T_NS_PER_MS);
	cr_assert_eq(br_future_state(f), BR_PENDING);
	cr_assert_eq(br_cancel(f), 0);
	cr_assert_eq(br_await(f, NULL), -ECANCELED);
	n = atomic_load(&every_runs);
	br_sleep_ms(5 * TICK_MS);
	cr_assert_eq(atomic_load(&every_runs), n, "ran after its end");
	br_future_release(f);
	f = br_call_every(rt, 0, count_run, NULL);
	cr_assert_eq(br_await(f, NULL), -EINVAL);
	br_future_release(f);
	f = br_call_every(rt, 10, NULL, NULL);
	cr_assert_eq(br_await(f, NULL), -EINVAL);
	br_future_release(f);
	br_runtime_free(rt);
}

static void slow_run(void *arg)
{
	atomic_fetch_add(&every_runs, 1);
	t_busy_ns(3 * TICK_MS * T_NS_PER_MS); /* longer than a period */
}

Test(call_every, a_slow_callback_is_stopped_by_cancel_and_runtime_free,
     .timeout = 30.0)
{
	br_runtime *rt =
		t_runtime_cfg(&(br_config){ .workers = 1, .stall_ms = -1 });
	br_future *f = br_call_every(rt, TICK_MS, slow_run, NULL);
	br_future *g;

	cr_assert_eq(t_wait_until(&every_runs, 3, 20000 * T_NS_PER_MS), 0);
	/* Its ticks are always due: the cancellation is still seen. */
	br_cancel(f);
	cr_assert_eq(br_await(f, NULL), -ECANCELED);
	g = br_call_every(rt, TICK_MS, slow_run, NULL);
	cr_assert_eq(t_wait_until(&every_runs, 5, 20000 * T_NS_PER_MS), 0);
	br_runtime_free(rt);
	cr_assert_eq(br_future_state(g), BR_CANCELLED);
	br_future_release(f);
	br_future_release(g);
}
