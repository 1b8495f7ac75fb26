/* SPDX-License-Identifier: MIT */
/*
 * futex.c - futex sleeps and wake-ups, the spin a plain thread makes
 * before one, and the spin lock's slow path. See futex.h.
 *
 * Concurrency
 *   Any thread; no shared state of its own (a plain thread's spin budget
 *   is a thread-local).
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "futex.h"

void br__spin_lock_slow(_Atomic uint32_t *l)
{
	unsigned spins = 0;

	for (;;) {
		uint32_t exp = 0;

		/* Test before the CAS, so waiters share the line read-only. */
		while (atomic_load_explicit(l, memory_order_relaxed))
			br__backoff(&spins);
		/* Acquire: pairs with br__spin_unlock()'s release. */
		if (atomic_compare_exchange_weak_explicit(l, &exp, 1,
							  memory_order_acquire,
							  memory_order_relaxed))
			return;
	}
}

/* private: the word is in this process only (FUTEX_PRIVATE_FLAG). */
static void futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t deadline,
		       int private)
{
	struct timespec ts, *tp = NULL;

	if (deadline >= 0) {
		ts = br__ns_to_ts(deadline);
		tp = &ts;
	}
	/* BITSET takes an absolute CLOCK_MONOTONIC deadline. */
	syscall(SYS_futex, word,
		FUTEX_WAIT_BITSET | (private ? FUTEX_PRIVATE_FLAG : 0), val, tp,
		NULL, FUTEX_BITSET_MATCH_ANY);
}

void br__futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t deadline)
{
	futex_wait(word, val, deadline, 1);
}

void br__futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* A plain thread's spin before it sleeps (br__thread_spin): a waker that
 * is a task a few hundred ns from answering then costs neither side a
 * system call. THREAD_SPIN_NS (about a futex sleep and wake-up) or more
 * after a spin that succeeds; after one that failed, the sleep decides
 * (br__thread_slept, struct br__spin_budget in futex.h), so a thread
 * waiting for slow work soon spins 1 us (worker.c's "Spinning" explains
 * the same rule for workers). */
#define THREAD_SPIN_NS (32 * BR__NS_PER_US)
#define THREAD_SPIN_MIN_NS (1 * BR__NS_PER_US)
#define THREAD_SPIN_MAX_NS (128 * BR__NS_PER_US)

static __thread struct br__spin_budget thread_spin = { THREAD_SPIN_NS, 0 };

int br__thread_spin(_Atomic uint32_t *word, uint32_t mask, uint32_t want,
		    int64_t deadline)
{
	int64_t until = -1; /* set at the first look at the clock */
	unsigned round;

	for (round = 0;; round++) {
		/* Acquire: pairs with the completer's release of the word. */
		if ((atomic_load_explicit(word, memory_order_acquire) & mask) ==
		    want)
			break;
		if ((round & 15) == 15) {
			int64_t now = br_now_ns();

			if (until < 0) {
				/* A deadline may be 0 or past: then the spin
				 * ends at the next look. */
				until = now + thread_spin.ns;
				if (deadline >= 0 && deadline < until)
					until = deadline;
			} else if (now >= until) {
				return 0; /* br__thread_slept() judges */
			}
		}
		br__cpu_relax();
	}
	br__spin_paid(&thread_spin, THREAD_SPIN_NS);
	return 1;
}

void br__thread_slept(int64_t ns)
{
	br__spin_missed(&thread_spin, ns, THREAD_SPIN_NS, THREAD_SPIN_MIN_NS,
			THREAD_SPIN_MAX_NS);
}

int64_t br__thread_spin_budget(void)
{
	return thread_spin.ns;
}

void br__futex_wait_shared(_Atomic uint32_t *word, uint32_t val)
{
	futex_wait(word, val, -1, 0);
}

void br__futex_wake_shared(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}
