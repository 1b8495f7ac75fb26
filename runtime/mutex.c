/* SPDX-License-Identifier: MIT */
/*
 * mutex.c - the mutex: tasks and plain threads lock the same object; a
 * waiting task suspends, a waiting thread sleeps on a futex.
 *
 * Design
 *   Go's sync.Mutex, adapted to fibers and to waiters of two kinds.
 *
 *   Normal mode. Locking is one CAS when the mutex is free. A plain thread
 *   that finds it held spins for a bounded time (a few microseconds: sleeping
 *   and waking through the kernel costs several times that) before it queues;
 *   a task queues at once, FIFO, and suspends: that costs tens of nanoseconds
 *   and its worker has other tasks to run, while a spinning task would keep
 *   its worker, and the holder may be a task waiting for that very worker.
 *   (Measured: with two workers hammering one mutex, every spin length tried
 *   made the mutex slower.) Unlocking is one CAS when nobody waits. With
 *   waiters, unlock frees the mutex and wakes exactly one (the WOKEN bit keeps
 *   a second unlock from waking another before the first has run: no
 *   thundering herd); the woken waiter competes with lockers that arrive
 *   meanwhile and, if it loses, goes back to the head of the queue.
 *
 *   Hand-off mode. A woken waiter that loses again after waiting more
 *   than 1 ms sets STARVING as it goes back to the head of the queue.
 *   The next unlock then hands the mutex straight to it (the mutex stays
 *   LOCKED throughout; meanwhile arrivals queue behind instead of
 *   barging) and returns to normal mode. Every unlock with waiters wakes
 *   the head, and a head that has waited 1 ms gets the hand-off, so the
 *   queue always drains: no waiter starves.
 *
 *   Why not hand off always: a pure FIFO hand-off costs a suspension and
 *   a wake-up per lock once a queue forms, and the queue never drains
 *   while lockers keep coming (a convoy). Letting the running locker
 *   barge keeps a contended mutex running at the speed of one CAS, which
 *   is also why pthread and Go mutexes are unfair by default. For the
 *   same reason hand-off mode is one-shot, unlike Go's, which stays on
 *   while the queue holds old waiters: with a thousand tasks queued,
 *   Go's rule makes every lock a hand-off to another worker.
 *
 * No lost wake-ups
 *   A locker queues only after a CAS that sets WAITERS while LOCKED (or
 *   STARVING) is still set, done with the queue lock held: the holder's
 *   unlock then sees WAITERS, and, unless WOKEN says a woken waiter is
 *   already on its way, takes the queue lock and wakes the head. The
 *   woken waiter clears WOKEN in the same CAS that takes the mutex or
 *   queues it again, so WOKEN never outlives its waiter; a waiter that
 *   leaves (deadline, cancellation) clears WAITERS (and STARVING) when it
 *   was the last. waitq.c covers the race with suspension.
 *
 * Invariants
 *   - Under m->lock: WAITERS <=> the queue is not empty.
 *   - STARVING => WAITERS; STARVING without LOCKED never persists.
 *   - At most one woken waiter at a time (WOKEN).
 *
 * Concurrency
 *   Any task or thread; any of them may unlock a locked mutex (as Go
 *   allows). st: CAS from anywhere; the queue: under m->lock, which is
 *   taken after (never while spinning on) st.
 *
 * Memory ordering
 *   - Lock: CAS with acquire; unlock: CAS with release. They pair, so the
 *     next owner sees the critical section. A hand-off is published by
 *     the release CAS that keeps LOCKED, then by waitq.c's DONE pair.
 *   - WAITERS, WOKEN and STARVING changes made under m->lock are
 *     relaxed: the lock orders them against the queue.
 *
 * Lifetime
 *   The mutex is the caller's memory (sync.h).
 */
#include <errno.h>

#include "sync.h"
#include "worker.h"

#define M_LOCKED 0x1ull
#define M_WOKEN 0x2ull
#define M_STARVING 0x4ull
#define M_WAITERS 0x8ull
#define M_FLAGS 0xfull

/* What a waker gives a waiter. */
#define M_HANDOFF 1 /* the mutex is yours */
#define M_WAKE 2    /* it is free: compete for it */

/* A waiter that waited this long asks for a hand-off. */
#define STARVE_NS BR__NS_PER_MS
/* Spin rounds of a plain thread (a PAUSE and a reload each) before it
 * queues: a few microseconds. */
#define SPIN_THREAD 200

/* A waiter leaves (or could not begin). Caller holds m->lock. */
static void mutex_abort(struct br__wait *wt)
{
	struct br__sync *m = br__sync_of(wt);

	br__wq_remove(&m->q, wt->ws);
	if (br__wq_empty(&m->q))
		atomic_fetch_and_explicit(&m->st, ~(M_WAITERS | M_STARVING),
					  memory_order_relaxed);
}

int br__mutex_locked(struct br__sync *m)
{
	return (atomic_load_explicit(&m->st, memory_order_relaxed) &
		M_LOCKED) != 0;
}

/*
 * Queue behind the holder: set WAITERS (and STARVING when starving, and
 * clear WOKEN when woken) with m->lock held, unless the mutex turned out
 * to be free. Returns 1 if the caller must queue, 0 to retry the lock.
 */
static int prepare_queue(struct br__sync *m, int woken, int starving)
{
	uint64_t v = atomic_load_explicit(&m->st, memory_order_relaxed);
	uint64_t nv;

	do {
		if (!(v & (M_LOCKED | M_STARVING)))
			return 0;
		nv = v | M_WAITERS;
		if (woken)
			nv &= ~M_WOKEN;
		if (starving && (v & M_LOCKED))
			nv |= M_STARVING;
		/* Relaxed: under m->lock (header). */
	} while (!atomic_compare_exchange_weak_explicit(
		&m->st, &v, nv, memory_order_relaxed, memory_order_relaxed));
	return 1;
}

static int lock_slow(struct br__sync *m, int64_t deadline, unsigned flags)
{
	unsigned spins = 0;
	int woken = 0, starving = 0, front = 0;
	int64_t since = 0;

	for (;;) {
		uint64_t v = atomic_load_explicit(&m->st, memory_order_relaxed);
		uint64_t nv;
		int r;

		if (!(v & (M_LOCKED | M_STARVING))) {
			nv = v | M_LOCKED;
			if (woken)
				nv &= ~M_WOKEN;
			/* Acquire: pairs with the unlocking release. */
			if (atomic_compare_exchange_weak_explicit(
				    &m->st, &v, nv, memory_order_acquire,
				    memory_order_relaxed))
				return 0;
			continue;
		}
		if (!(v & M_STARVING) && spins < SPIN_THREAD &&
		    !br__worker_current()) {
			spins++;
			br__cpu_relax();
			continue;
		}
		br__spin_lock(&m->lock);
		if (!prepare_queue(m, woken, starving)) {
			br__spin_unlock(&m->lock);
			continue;
		}
		woken = 0;
		if (!since)
			since = br_now_ns();
		/* A waiter woken once goes back to the head (Go's LIFO). */
		r = br__sync_queue(m, 0, (uint64_t)since, deadline,
				   flags | (front ? BR__WAIT_FRONT : 0),
				   mutex_abort);
		if (r == M_HANDOFF)
			return 0;
		if (r < 0)
			return r;
		woken = 1;
		front = 1;
		spins = 0;
		if (br_now_ns() - since > STARVE_NS)
			starving = 1;
	}
}

int br__mutex_lock(struct br__sync *m, int64_t deadline, unsigned flags)
{
	uint64_t v = 0;

	/* Acquire: pairs with the unlocking release. */
	if (br__likely(atomic_compare_exchange_strong_explicit(
		    &m->st, &v, M_LOCKED, memory_order_acquire,
		    memory_order_relaxed)))
		return 0;
	return lock_slow(m, deadline, flags);
}

/*
 * Hand-off mode: give the mutex to the first waiter, still LOCKED, and
 * go back to normal mode: the mode is one-shot, for the waiter that asked
 * for it, so a long queue of old waiters cannot turn into a convoy.
 */
static int hand_off(struct br__sync *m)
{
	struct br__wqe *w;
	uint64_t v, nv;

	br__spin_lock(&m->lock);
	w = br__wq_claim(&m->q, NULL);
	v = atomic_load_explicit(&m->st, memory_order_relaxed);
	do {
		nv = v & ~M_STARVING;
		if (!w)
			nv &= ~M_LOCKED;
		if (br__wq_empty(&m->q))
			nv &= ~M_WAITERS;
		/* Release: the critical section to the next owner. */
	} while (!atomic_compare_exchange_weak_explicit(
		&m->st, &v, nv, memory_order_release, memory_order_relaxed));
	br__spin_unlock(&m->lock);
	if (w)
		br__wq_complete(w, M_HANDOFF);
	return 0;
}

static int unlock_slow(struct br__sync *m)
{
	struct br__wqe *w;
	uint64_t v = atomic_load_explicit(&m->st, memory_order_relaxed), nv;

	for (;;) {
		if (!(v & M_LOCKED))
			return -EPERM;
		if (v & M_STARVING)
			return hand_off(m);
		nv = v & ~M_LOCKED;
		if ((v & M_WAITERS) && !(v & M_WOKEN))
			nv |= M_WOKEN;
		/* Release: pairs with the next locker's acquire. */
		if (atomic_compare_exchange_weak_explicit(&m->st, &v, nv,
							  memory_order_release,
							  memory_order_relaxed))
			break;
	}
	if (!(nv & M_WOKEN) || (v & M_WOKEN))
		return 0; /* nobody to wake, or one is already on its way */
	br__spin_lock(&m->lock);
	w = br__wq_claim(&m->q, NULL);
	if (w) {
		if (br__wq_empty(&m->q))
			atomic_fetch_and_explicit(&m->st, ~M_WAITERS,
						  memory_order_relaxed);
	} else {
		/* Every waiter left meanwhile: nobody carries WOKEN. */
		atomic_fetch_and_explicit(&m->st, ~M_WOKEN,
					  memory_order_relaxed);
	}
	br__spin_unlock(&m->lock);
	if (w)
		br__wq_complete(w, M_WAKE);
	return 0;
}

int br__mutex_unlock(struct br__sync *m)
{
	uint64_t v = atomic_load_explicit(&m->st, memory_order_relaxed);

	/* Release: pairs with the next locker's acquire. */
	if (br__likely((v & M_FLAGS) == M_LOCKED) &&
	    atomic_compare_exchange_strong_explicit(
		    &m->st, &v, 0, memory_order_release, memory_order_relaxed))
		return 0;
	return unlock_slow(m);
}

/* ---- public API ---- */

int br_mutex_init(br_mutex *mu)
{
	if (!mu)
		return -EINVAL;
	br__sync_init(mu, BR__MAGIC_MUTEX, 0);
	return 0;
}

int br_mutex_destroy(br_mutex *mu)
{
	return br__sync_destroy(mu, BR__MAGIC_MUTEX, M_FLAGS);
}

int br_mutex_lock_until(br_mutex *mu, int64_t deadline_ns)
{
	struct br__sync *m;
	int r = br__sync_get(mu, BR__MAGIC_MUTEX, &m);

	if (r < 0)
		return r;
	return br__mutex_lock(m, deadline_ns, 0);
}

int br_mutex_lock(br_mutex *mu)
{
	return br_mutex_lock_until(mu, -1);
}

int br_mutex_lock_for(br_mutex *mu, int64_t timeout_ms)
{
	return br_mutex_lock_until(mu, br__deadline_ms(timeout_ms));
}

int br_mutex_trylock(br_mutex *mu)
{
	struct br__sync *m;
	uint64_t v;
	int r = br__sync_get(mu, BR__MAGIC_MUTEX, &m);

	if (r < 0)
		return r;
	v = atomic_load_explicit(&m->st, memory_order_relaxed);
	while (!(v & (M_LOCKED | M_STARVING))) {
		/* Acquire: pairs with the unlocking release. */
		if (atomic_compare_exchange_weak_explicit(
			    &m->st, &v, v | M_LOCKED, memory_order_acquire,
			    memory_order_relaxed))
			return 0;
	}
	return -EBUSY;
}

int br_mutex_unlock(br_mutex *mu)
{
	struct br__sync *m;
	int r = br__sync_get(mu, BR__MAGIC_MUTEX, &m);

	if (r < 0)
		return r;
	return br__mutex_unlock(m);
}
