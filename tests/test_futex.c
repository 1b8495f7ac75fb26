/* SPDX-License-Identifier: MIT */
/*
 * test_futex.c - the adaptive spin budget (futex.h) that workers and
 * plain threads use to decide how long to spin before they sleep, through
 * its internal API: what a spin that paid off, a short sleep and a wait
 * that never ended each make of the next spin.
 *
 * Single-threaded: a budget is owned by one thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "braid.h"
#include "futex.h"
#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(futex, .init = t_leak_init, .fini = t_leak_fini);

#define BASE 32000
#define MIN 2000
#define MAX 128000

/* The caller's value, hidden from the optimiser so that the arithmetic
 * on it happens at run time, where UBSan looks. */
static int64_t opaque(int64_t v)
{
	volatile int64_t x = v;

	return x;
}

Test(futex, a_spin_that_paid_off_lasts_at_least_the_base)
{
	struct br__spin_budget b = { .ns = MIN };

	br__spin_paid(&b, BASE);
	cr_assert_eq(b.ns, BASE);
	b.ns = 3 * BASE;
	br__spin_paid(&b, BASE);
	cr_assert_eq(b.ns, 3 * BASE, "a longer budget is kept");
}

Test(futex, a_short_sleep_makes_the_next_spin_half_as_long_again)
{
	struct br__spin_budget b = { .ns = BASE };

	br__spin_missed(&b, opaque(40000), BASE, MIN, MAX);
	cr_assert_eq(b.ns, 60000);
	br__spin_missed(&b, opaque(100000), BASE, MIN, MAX);
	cr_assert_eq(b.ns, MAX, "capped at max");
	/* The third miss in a row: halved, not lengthened. */
	br__spin_missed(&b, opaque(40000), BASE, MIN, MAX);
	cr_assert_eq(b.ns, MAX / 2);
}

/* A timed wait that ran out reports a sleep of INT64_MAX (waitq.c):
 * the budget halves, with no overflow on the way (UBSan aborts on one). */
Test(futex, a_wait_that_never_ended_halves_the_spin_down_to_min)
{
	struct br__spin_budget b = { .ns = BASE };

	br__spin_missed(&b, opaque(INT64_MAX), BASE, MIN, MAX);
	cr_assert_eq(b.ns, BASE / 2);
	for (int i = 0; i < 20; i++)
		br__spin_missed(&b, opaque(INT64_MAX), BASE, MIN, MAX);
	cr_assert_geq(b.ns, MIN);
	cr_assert_lt(b.ns, 2 * MIN);
}

/* A plain thread whose br_await() runs out at a deadline 100 us away:
 * nothing came, so its next spin must be shorter, however short the
 * sleep before the deadline was. */
static void *await_past_deadline(void *arg)
{
	br_future *p = br_promise_new();
	br_deadline scope;
	int64_t before = br__thread_spin_budget(), *after = arg;

	cr_assert_eq(br_deadline_enter_at(&scope, br_now_ns() + 100000), 0);
	cr_assert_eq(br_await(p, NULL), -ETIMEDOUT);
	br_deadline_leave(&scope);
	br_future_release(p);
	after[0] = before;
	after[1] = br__thread_spin_budget();
	return NULL;
}

Test(futex, a_thread_await_that_timed_out_shortens_the_next_spin)
{
	int64_t budget[2];
	pthread_t th;

	/* A new thread: its budget starts afresh. */
	cr_assert_eq(pthread_create(&th, NULL, await_past_deadline, budget), 0);
	pthread_join(th, NULL);
	cr_assert_lt(budget[1], budget[0], "spin %lld ns, then %lld ns",
		     (long long)budget[0], (long long)budget[1]);
}
