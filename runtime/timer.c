/* SPDX-License-Identifier: MIT */
/*
 * timer.c - per-worker timer heap on CLOCK_MONOTONIC: sleeping tasks and
 * br_call_later callbacks.
 *
 * Design
 *   A binary min-heap of timer pointers keyed by deadline, owned by one
 *   worker. Sleeping tasks hold no ring entry: the worker's ring wait uses
 *   the earliest deadline as its timeout, so a hundred thousand sleepers
 *   cost one heap and no kernel object. A wheel would make insertion O(1)
 *   but needs a tick; at the sizes braid sees (a timer per sleeping task)
 *   the heap's O(log n) is a few dozen nanoseconds.
 *
 *   A sleeping task's timer may have to be undone from another worker: a
 *   cancelled task wakes early and may resume anywhere, but only the
 *   owner may touch the heap. So a timer has a state word:
 *     ARMED  -> FIRING -> DONE   (owner fires it; the sleeper frees it)
 *     ARMED  -> DEAD             (sleeper on another worker gives it up;
 *                                 the owner frees it when it pops it)
 *   and a sleeper on the owner worker simply removes it from the heap.
 *
 * Invariants
 *   - heap[i]->idx == i; heap[parent]->deadline <= heap[child]->deadline.
 *
 * Concurrency
 *   - The heap: owner worker only. st: the owner and the sleeper.
 *
 * Memory ordering
 *   - ARMED -> FIRING and ARMED -> DEAD are CASes, so exactly one of the
 *     owner and the sleeper wins. DONE is stored with release after the
 *     wake-up; the sleeper's acquire load of DONE means the owner no
 *     longer touches the timer, so it may be freed.
 *
 * Lifetime
 *   Fiber timers are malloc'd by the sleeper and freed by it, or by the
 *   owner when they are DEAD. Callback timers belong to the heap and hold
 *   a reference to their callback task.
 */
#include <errno.h>
#include <stdlib.h>

#include "task.h"
#include "timer.h"
#include "worker.h"

void br__timers_init(struct br__timers *tm)
{
	tm->heap = NULL;
	tm->n = tm->cap = 0;
}

static void swap(struct br__timer **h, uint32_t a, uint32_t b)
{
	struct br__timer *t = h[a];

	h[a] = h[b];
	h[b] = t;
	h[a]->idx = a;
	h[b]->idx = b;
}

static void sift_up(struct br__timer **h, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (h[p]->deadline <= h[i]->deadline)
			break;
		swap(h, i, p);
		i = p;
	}
}

static void sift_down(struct br__timer **h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < n && h[l]->deadline < h[m]->deadline)
			m = l;
		if (r < n && h[r]->deadline < h[m]->deadline)
			m = r;
		if (m == i)
			break;
		swap(h, i, m);
		i = m;
	}
}

static void heap_remove(struct br__timers *tm, uint32_t i)
{
	struct br__timer **h = tm->heap;

	tm->n--;
	if (i == tm->n)
		return;
	h[i] = h[tm->n];
	h[i]->idx = i;
	sift_down(h, tm->n, i);
	sift_up(h, i);
}

struct br__timer *br__timer_wake_at(struct br__worker *w, int64_t deadline,
				    struct br__fiber *f, uint64_t seq)
{
	struct br__timer *t =
		BR__FAULT("braid/timer/alloc") ? NULL : malloc(sizeof(*t));

	if (!t)
		return NULL;
	t->deadline = deadline;
	t->fiber = f;
	t->seq = seq;
	t->cb = NULL;
	if (br__timer_add(w, t) < 0) {
		free(t);
		return NULL;
	}
	return t;
}

int br__timer_add(struct br__worker *w, struct br__timer *t)
{
	struct br__timers *tm = &w->timers;

	BR__ASSERT_OWNER(w);
	if (tm->n == tm->cap) {
		uint32_t cap = tm->cap ? tm->cap * 2 : 64;
		struct br__timer **h = realloc(tm->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		tm->heap = h;
		tm->cap = cap;
	}
	t->w = w;
	t->idx = tm->n;
	atomic_store_explicit(&t->st, BR__TM_ARMED, memory_order_relaxed);
	tm->heap[tm->n++] = t;
	sift_up(tm->heap, t->idx);
	return 0;
}

void br__timer_cancel(struct br__worker *cur, struct br__timer *t)
{
	int st = BR__TM_ARMED;
	unsigned spins = 0;

	if (cur == t->w) {
		/* Our own heap: if still armed, it is still in the heap. */
		if (atomic_load_explicit(&t->st, memory_order_relaxed) ==
		    BR__TM_ARMED)
			heap_remove(&cur->timers, t->idx);
		free(t);
		return;
	}
	if (atomic_compare_exchange_strong_explicit(&t->st, &st, BR__TM_DEAD,
						    memory_order_acq_rel,
						    memory_order_acquire))
		return; /* the owner frees it when it comes up */
	/* Acquire: pairs with the release of DONE in fire(). */
	while (atomic_load_explicit(&t->st, memory_order_acquire) !=
	       BR__TM_DONE)
		br__backoff(&spins);
	free(t);
}

/* Returns 1 if it fired, 0 if its sleeper had given it up. */
static unsigned fire(struct br__timer *t)
{
	int st = BR__TM_ARMED;

	if (t->cb) {
		struct br__task *cb = t->cb;

		free(t);
		br__task_schedule(cb);
		return 1;
	}
	if (!atomic_compare_exchange_strong_explicit(&t->st, &st, BR__TM_FIRING,
						     memory_order_acq_rel,
						     memory_order_acquire)) {
		free(t); /* DEAD: its sleeper gave it to us */
		return 0;
	}
	br__fiber_wake(t->fiber, t->seq);
	/* Release: the sleeper may free t once it sees DONE. */
	atomic_store_explicit(&t->st, BR__TM_DONE, memory_order_release);
	return 1;
}

unsigned br__timers_run(struct br__worker *w, int64_t now)
{
	struct br__timers *tm = &w->timers;
	uint32_t end = tm->n;
	unsigned n = 0;

	/*
	 * Pop the expired timers first, each into the slot the heap gives up
	 * (as heapsort does): heap[tm->n .. end) then holds them from the
	 * latest deadline to the earliest. A burst of wake-ups runs newest
	 * first (br__worker_push_lifo), so firing latest first runs a batch
	 * in deadline order. Firing adds no timer, so the slots stay ours.
	 */
	while (tm->n && tm->heap[0]->deadline <= now) {
		struct br__timer *t = tm->heap[0];

		heap_remove(tm, 0);
		tm->heap[tm->n] = t;
	}
	for (uint32_t i = tm->n; i < end; i++)
		n += fire(tm->heap[i]);
	if (n)
		br__stat_add(&w->obs, BR__ST_TIMERS_FIRED, n);
	return n;
}

int64_t br__timers_next(struct br__worker *w)
{
	struct br__timers *tm = &w->timers;

	BR__ASSERT_OWNER(w);
	while (tm->n) {
		struct br__timer *t = tm->heap[0];
		int st = BR__TM_DEAD;

		if (t->cb ||
		    atomic_load_explicit(&t->st, memory_order_acquire) != st)
			return t->deadline;
		heap_remove(tm, 0);
		free(t);
	}
	return -1;
}

void br__timers_term(struct br__worker *w)
{
	struct br__timers *tm = &w->timers;

	while (tm->n) {
		struct br__timer *t = tm->heap[0];

		heap_remove(tm, 0);
		if (t->cb) {
			br__task_drop(t->cb);
			free(t);
		} else {
			/* Tasks are all gone by now, so a fiber timer can
			 * only be one its sleeper gave up. */
			free(t);
		}
	}
	free(tm->heap);
	tm->heap = NULL;
	tm->cap = 0;
}
