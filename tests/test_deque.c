/* SPDX-License-Identifier: MIT */
/*
 * test_deque.c - the Chase-Lev work-stealing deque (deque.c), through its
 * internal API: LIFO pops and FIFO steals, growth past the initial
 * capacity, sizes, and an owner racing a thief with every item taken
 * exactly once.
 *
 * Steals always run on a thread other than the owner's, as the contract
 * requires, even in the single-threaded order tests.
 */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "deque.h"
#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(deque, .init = t_leak_init, .fini = t_leak_fini);

#define ITEM(i) ((void *)(uintptr_t)((i) + 1))
#define INDEX(p) ((uintptr_t)(p)-1)

static void init(struct br__deque *dq, unsigned log2cap)
{
	cr_assert_eq(br__deque_init(dq, log2cap), 0);
}

static void push(struct br__deque *dq, uintptr_t i)
{
	cr_assert_eq(br__deque_push(dq, ITEM(i)), 0);
}

struct steal_all {
	struct br__deque *dq;
	size_t max;
	size_t n;
	uintptr_t got[4096];
};

/* Steal until empty (or max items) on a thread that is not the owner. */
static void *steal_all_thread(void *arg)
{
	struct steal_all *s = arg;
	void *p;

	while (s->n < s->max && (p = br__deque_steal(s->dq)) != NULL)
		s->got[s->n++] = INDEX(p);
	return NULL;
}

static void steal_from_another_thread(struct steal_all *s)
{
	pthread_t t;

	t_thread_start(&t, steal_all_thread, s);
	t_thread_join(t);
}

/* Set s up for a steal of at most max items from dq. (Field by field: a
 * compound literal of the whole struct is a temporary of its size on the
 * stack in an unoptimised build.) */
static void steal_reset(struct steal_all *s, struct br__deque *dq, size_t max)
{
	memset(s, 0, sizeof(*s));
	s->dq = dq;
	s->max = max;
}

Test(deque, pop_is_lifo, .timeout = 10.0)
{
	struct br__deque dq;

	init(&dq, 4);
	cr_assert_null(br__deque_pop(&dq), "a new deque is empty");
	for (uintptr_t i = 0; i < 10; i++)
		push(&dq, i);
	cr_assert_eq(br__deque_size(&dq), 10);
	for (uintptr_t i = 10; i-- > 0;)
		cr_assert_eq(br__deque_pop(&dq), ITEM(i));
	cr_assert_null(br__deque_pop(&dq));
	cr_assert_eq(br__deque_size(&dq), 0);
	br__deque_destroy(&dq);
}

Test(deque, steal_is_fifo, .timeout = 10.0)
{
	struct br__deque dq;
	static struct steal_all s;

	init(&dq, 4);
	for (uintptr_t i = 0; i < 10; i++)
		push(&dq, i);
	steal_reset(&s, &dq, 4096);
	steal_from_another_thread(&s);
	cr_assert_eq(s.n, 10);
	for (uintptr_t i = 0; i < 10; i++)
		cr_assert_eq(s.got[i], i);
	cr_assert_null(br__deque_pop(&dq));
	br__deque_destroy(&dq);
}

Test(deque, owner_and_thief_take_from_opposite_ends, .timeout = 10.0)
{
	struct br__deque dq;
	static struct steal_all s;

	init(&dq, 3);
	for (uintptr_t i = 0; i < 8; i++)
		push(&dq, i);
	steal_reset(&s, &dq, 3);
	steal_from_another_thread(&s);
	cr_assert_eq(s.n, 3);
	for (uintptr_t i = 0; i < 3; i++)
		cr_assert_eq(s.got[i], i, "thieves take the oldest");
	cr_assert_eq(br__deque_size(&dq), 5);
	cr_assert_eq(br__deque_pop(&dq), ITEM(7));
	cr_assert_eq(br__deque_pop(&dq), ITEM(6));
	/* Push after steals and pops, then drain from both ends again. */
	push(&dq, 100);
	cr_assert_eq(br__deque_pop(&dq), ITEM(100));
	steal_reset(&s, &dq, 4096);
	steal_from_another_thread(&s);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.got[0], 3);
	cr_assert_eq(s.got[1], 4);
	cr_assert_eq(s.got[2], 5);
	cr_assert_null(br__deque_pop(&dq));
	br__deque_destroy(&dq);
}

Test(deque, growth_past_the_initial_capacity_keeps_every_item, .timeout = 10.0)
{
	struct br__deque dq;
	static struct steal_all s;
	const uintptr_t n = 3000;

	init(&dq, 1);
	for (uintptr_t i = 0; i < n; i++)
		push(&dq, i);
	cr_assert_eq(br__deque_size(&dq), (int64_t)n);
	/* Half from the top by a thief, in order; half from the bottom. */
	steal_reset(&s, &dq, n / 2);
	steal_from_another_thread(&s);
	cr_assert_eq(s.n, n / 2);
	for (uintptr_t i = 0; i < n / 2; i++)
		cr_assert_eq(s.got[i], i);
	for (uintptr_t i = n; i-- > n / 2;)
		cr_assert_eq(br__deque_pop(&dq), ITEM(i));
	cr_assert_null(br__deque_pop(&dq));
	br__deque_destroy(&dq);
}

Test(deque, wraps_around_the_buffer_many_times, .timeout = 10.0)
{
	struct br__deque dq;
	static struct steal_all s;

	/* Indices run far past the capacity without the deque growing. */
	init(&dq, 2);
	for (uintptr_t round = 0; round < 1000; round++) {
		push(&dq, round * 3);
		push(&dq, round * 3 + 1);
		push(&dq, round * 3 + 2);
		steal_reset(&s, &dq, 1);
		steal_from_another_thread(&s);
		cr_assert_eq(s.n, 1);
		cr_assert_eq(s.got[0], round * 3);
		cr_assert_eq(br__deque_pop(&dq), ITEM(round * 3 + 2));
		cr_assert_eq(br__deque_pop(&dq), ITEM(round * 3 + 1));
		cr_assert_null(br__deque_pop(&dq));
	}
	br__deque_destroy(&dq);
}

/* ------------------------------------------------------------------ */
/* Owner against one thief                                             */
/* ------------------------------------------------------------------ */

#define RACE_ITEMS 1000000

struct race {
	struct br__deque dq;
	atomic_int done;
	_Atomic uint8_t *taken;
	size_t stolen;
};

static void take(struct race *r, void *p)
{
	atomic_fetch_add_explicit(&r->taken[INDEX(p)], 1, memory_order_relaxed);
}

static void *thief(void *arg)
{
	struct race *r = arg;
	void *p;

	for (;;) {
		int done = atomic_load(&r->done);

		p = br__deque_steal(&r->dq);
		if (p) {
			take(r, p);
			r->stolen++;
		} else if (done) {
			break;
		}
	}
	return NULL;
}

Test(deque, owner_and_one_thief_take_every_item_exactly_once, .timeout = 120.0)
{
	static struct race r;
	pthread_t t;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	uintptr_t next = 0;
	size_t popped = 0;
	void *p;

	r.taken = calloc(RACE_ITEMS, 1);
	cr_assert_not_null(r.taken);
	init(&r.dq, 2);
	t_thread_start(&t, thief, &r);
	while (next < RACE_ITEMS) {
		unsigned burst = 1 + (unsigned)(t_rand(&seed) % 16);
		unsigned pops = (unsigned)(t_rand(&seed) % 12);

		for (unsigned k = 0; k < burst && next < RACE_ITEMS; k++)
			push(&r.dq, next++);
		for (unsigned k = 0; k < pops; k++) {
			p = br__deque_pop(&r.dq);
			if (!p)
				break;
			take(&r, p);
			popped++;
		}
	}
	while ((p = br__deque_pop(&r.dq)) != NULL) {
		take(&r, p);
		popped++;
	}
	/* Empty as seen by the owner: nothing is left for the thief. */
	atomic_store(&r.done, 1);
	t_thread_join(t);
	cr_assert_eq(popped + r.stolen, RACE_ITEMS, "popped %zu, stolen %zu",
		     popped, r.stolen);
	for (size_t i = 0; i < RACE_ITEMS; i++) {
		int n = atomic_load(&r.taken[i]);

		if (n != 1)
			cr_assert_fail("item %zu taken %d times", i, n);
	}
	cr_assert_eq(br__deque_size(&r.dq), 0);
	br__deque_destroy(&r.dq);
	free((void *)r.taken);
}
