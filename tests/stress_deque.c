/* SPDX-License-Identifier: MIT */
/*
 * stress_deque.c - the Chase-Lev deque (deque.c) under an owner and
 * several thieves with randomised interleavings: bursts of pushes and
 * pops of random lengths, thieves pausing at random, and the buffer
 * growing from a tiny start while thieves read it. Every item must be
 * taken exactly once.
 *
 * Sizes scale with BRAID_STRESS_SCALE (default 1: a million items per
 * test; 10 for `make stress`).
 */
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "deque.h"
#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(stress_deque, .init = t_leak_init, .fini = t_leak_fini);

#define ITEM(i) ((void *)(uintptr_t)((i) + 1))
#define INDEX(p) ((uintptr_t)(p)-1)
#define MAX_THIEVES 4

struct race {
	struct br__deque dq;
	atomic_int done;
	_Atomic uint8_t *taken;
	size_t items;
};

struct thief {
	struct race *r;
	uint64_t seed;
	size_t stolen;
};

static void take(struct race *r, void *p)
{
	atomic_fetch_add_explicit(&r->taken[INDEX(p)], 1, memory_order_relaxed);
}

static void *thief_main(void *arg)
{
	struct thief *t = arg;
	struct race *r = t->r;

	for (;;) {
		int done = atomic_load(&r->done);
		void *p = br__deque_steal(&r->dq);

		if (p) {
			take(r, p);
			t->stolen++;
		} else if (done) {
			break;
		}
		/* Random pauses shift the thieves against the owner. */
		if (t_rand(&t->seed) % 64 == 0)
			t_busy_ns((int64_t)(t_rand(&t->seed) % 5000));
	}
	return NULL;
}

/*
 * Run one race: the owner pushes every item in bursts, popping some of
 * them back between bursts, while nthieves steal. Returns nothing; asserts
 * that each item was taken once.
 */
static void run_race(unsigned nthieves, unsigned log2cap, size_t items,
		     uint64_t seed)
{
	static struct race r;
	struct thief th[MAX_THIEVES];
	pthread_t tid[MAX_THIEVES];
	size_t popped = 0, stolen = 0, bad = 0;
	uintptr_t next = 0;
	void *p;

	r = (struct race){ .items = items };
	r.taken = calloc(items, 1);
	cr_assert_not_null(r.taken);
	cr_assert_eq(br__deque_init(&r.dq, log2cap), 0);
	for (unsigned i = 0; i < nthieves; i++) {
		th[i] = (struct thief){ .r = &r, .seed = seed + i + 1 };
		t_thread_start(&tid[i], thief_main, &th[i]);
	}
	while (next < items) {
		uint64_t x = t_rand(&seed);
		unsigned burst = 1 + (unsigned)(x % 64);
		unsigned pops = (unsigned)((x >> 8) % 48);

		for (unsigned k = 0; k < burst && next < items; k++)
			cr_assert_eq(br__deque_push(&r.dq, ITEM(next++)), 0);
		for (unsigned k = 0; k < pops; k++) {
			p = br__deque_pop(&r.dq);
			if (!p)
				break;
			take(&r, p);
			popped++;
		}
		if ((x >> 16) % 128 == 0)
			t_busy_ns((int64_t)((x >> 24) % 20000));
	}
	while ((p = br__deque_pop(&r.dq)) != NULL) {
		take(&r, p);
		popped++;
	}
	atomic_store(&r.done, 1);
	for (unsigned i = 0; i < nthieves; i++) {
		t_thread_join(tid[i]);
		stolen += th[i].stolen;
	}
	for (size_t i = 0; i < items; i++)
		if (atomic_load(&r.taken[i]) != 1 && bad++ == 0)
			cr_log_error("item %zu taken %d times", i,
				     (int)atomic_load(&r.taken[i]));
	cr_assert_eq(bad, 0, "%zu items not taken exactly once", bad);
	cr_assert_eq(popped + stolen, items, "popped %zu + stolen %zu", popped,
		     stolen);
	cr_assert_eq(br__deque_size(&r.dq), 0);
	br__deque_destroy(&r.dq);
	free((void *)r.taken);
}

Test(stress_deque, owner_and_two_thieves_take_each_item_once, .timeout = 300.0)
{
	run_race(2, 4, 1000000 * (size_t)t_stress_scale(), 1);
}

Test(stress_deque, owner_and_four_thieves_take_each_item_once, .timeout = 300.0)
{
	run_race(4, 6, 1000000 * (size_t)t_stress_scale(), 2);
}

Test(stress_deque, growth_from_two_slots_under_thieves, .timeout = 300.0)
{
	/* Many short races, each growing the buffer from 2 slots. */
	size_t per = 20000;
	unsigned runs = 25 * t_stress_scale();

	for (unsigned i = 0; i < runs; i++)
		run_race(3, 1, per, 100 + i);
}
