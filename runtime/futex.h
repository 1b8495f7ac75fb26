/* SPDX-License-Identifier: MIT */
/*
 * futex.h - the lowest layer of waiting: futex sleeps and wake-ups, and
 * the one-word spin lock every object uses for its queues.
 *
 * Design
 *   Both are leaves: they call nothing of the runtime but the clock, so
 *   a forked pool worker, which runs none of the scheduler, can use them
 *   on the memory it shares with its parent.
 *
 * Concurrency
 *   Any thread. A futex sleep blocks the thread: never call it from a
 *   task. The spin lock is held for a few instructions and never across
 *   a call that can suspend, block or make a system call.
 *
 * Memory ordering
 *   br__spin_lock()'s acquire pairs with br__spin_unlock()'s release.
 *   Futex calls order nothing themselves: callers publish with their
 *   own atomics before a wake and re-check after a sleep.
 */
#ifndef BR_FUTEX_H
#define BR_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

/*
 * br__futex_wait - sleep while *word == val, until deadline_ns (absolute
 * CLOCK_MONOTONIC; < 0: none) or a wake-up; may return early for no
 * reason, so callers loop. br__futex_wake - wake one sleeper on word.
 * Context: any thread (never a task: it blocks the thread).
 */
void br__futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t deadline_ns);
void br__futex_wake(_Atomic uint32_t *word);

/*
 * br__thread_spin - before a plain thread sleeps on word: spin while
 * (*word & mask) != want, for at most the calling thread's spin budget
 * and never past deadline_ns (< 0: none). Returns 1 if the word got
 * there (acquire load), 0 if the budget ran out. The budget adapts per
 * thread: after a spin that runs out, the caller sleeps and then reports
 * how long with br__thread_slept(), which makes the next spin outlast a
 * short sleep and halves it after a long one (futex.c).
 * Context: a plain thread (never a task).
 */
int br__thread_spin(_Atomic uint32_t *word, uint32_t mask, uint32_t want,
		    int64_t deadline_ns);
/* ns: how long the sleep after a failed spin lasted; INT64_MAX if the
 * wait ran out, nothing having come. */
void br__thread_slept(int64_t ns);
/* The calling thread's next spin, in ns (for tests). */
int64_t br__thread_spin_budget(void);

/*
 * An adaptive spin budget, for a worker before it parks (worker.c's
 * "Spinning") and a plain thread before its futex (futex.c): ns is how
 * long the next spin may last, within [min, max], and base is the spin
 * a success earns. A spin that finds nothing is judged by the sleep that
 * follows. If that sleep was short (under max), a longer spin would have
 * caught the work (at worst the sender had to be woken too), so the next
 * spin lasts half as long again as the sleep; but only for the first two
 * misses in a row, and then one in 16, since on a machine with more
 * runnable threads than CPUs the sender may simply not be running, and
 * spinning for it only takes the CPU away from it. Otherwise the next
 * spin is half as long. Owned by one thread.
 */
struct br__spin_budget {
	int64_t ns;
	unsigned misses; /* spins in a row that ended in a sleep */
};

static inline void br__spin_paid(struct br__spin_budget *b, int64_t base)
{
	b->misses = 0;
	if (b->ns < base)
		b->ns = base;
}

static inline void br__spin_missed(struct br__spin_budget *b, int64_t slept,
				   int64_t base, int64_t min, int64_t max)
{
	unsigned m = b->misses++;

	/* slept is INT64_MAX for a wait that ran out: the half-again is
	 * only worked out for a sleep under max, where it cannot overflow. */
	if (slept < max && (m < 2 || m % 16 == 0)) {
		int64_t want = slept + slept / 2;

		b->ns = want < base ? base : want > max ? max : want;
	} else if (b->ns / 2 >= min) {
		b->ns /= 2;
	}
}

/* The same on a word in memory shared between processes (the process
 * pool's rings), without a deadline; wake_shared wakes up to n. */
void br__futex_wait_shared(_Atomic uint32_t *word, uint32_t val);
void br__futex_wake_shared(_Atomic uint32_t *word, int n);

void br__spin_lock_slow(_Atomic uint32_t *l);

static inline void br__spin_lock(_Atomic uint32_t *l)
{
	uint32_t exp = 0;

	/* Acquire: pairs with br__spin_unlock()'s release. */
	if (br__likely(atomic_compare_exchange_weak_explicit(
		    l, &exp, 1, memory_order_acquire, memory_order_relaxed)))
		return;
	br__spin_lock_slow(l);
}

static inline void br__spin_unlock(_Atomic uint32_t *l)
{
	/* Release: pairs with br__spin_lock()'s acquire. */
	atomic_store_explicit(l, 0, memory_order_release);
}

/* Debug builds: the spin lock l is held (by somebody; it has no owner). */
#define BR__ASSERT_SPIN_HELD(l) \
	BR_DEBUG_ASSERT(atomic_load_explicit((l), memory_order_relaxed))

#endif /* BR_FUTEX_H */
