/* SPDX-License-Identifier: MIT */
/*
 * cond.c - the condition variable, used with a braid mutex.
 *
 * Design
 *   A FIFO of waiters (waitq.c) and nothing else: the condition has no
 *   state of its own, as pthread_cond_t has none that callers may see.
 *   br_cond_wait() links its waiter with the condition's lock held,
 *   unlocks the mutex, waits, then locks the mutex again. The re-lock
 *   ignores cancellation and deadlines, so whatever the wait returns the
 *   caller holds the mutex again, as POSIX requires.
 *
 *   signal() claims the first waiter, broadcast() all of them; waking is
 *   done after the condition's lock is dropped. A woken waiter competes
 *   for the mutex like any locker (mutex.c); broadcast does not requeue
 *   waiters onto the mutex (futex requeue), since braid's mutex queue
 *   mixes tasks and threads.
 *
 * No lost wake-ups
 *   The waiter is linked before the mutex is released. A signaller that
 *   changed the predicate under the mutex and then signals therefore
 *   finds it: it took the mutex after the waiter released it, and the
 *   waiter was linked before that. A signal that races the waiter's
 *   deadline or cancellation is not lost: if it claimed the waiter first,
 *   the wait reports success (the waiter consumed it); if the waiter left
 *   first, the signal goes to the next one (waitq.c).
 *
 * Invariants
 *   - Every linked waiter is WAITING (waitq.h, plain waits).
 *
 * Concurrency
 *   Any task or thread; the queue under c->lock. Lock order: the
 *   condition's lock is never held while the mutex is taken or released.
 *
 * Memory ordering
 *   The mutex carries the data; the condition only wakes (waitq.c).
 *
 * Lifetime
 *   The condition is the caller's memory (sync.h).
 */
#include <errno.h>

#include "sync.h"

static void cond_abort(struct br__wait *wt)
{
	br__wq_remove(&br__sync_of(wt)->q, wt->ws);
}

int br_cond_init(br_cond *cv)
{
	if (!cv)
		return -EINVAL;
	br__sync_init(cv, BR__MAGIC_COND, 0);
	return 0;
}

int br_cond_destroy(br_cond *cv)
{
	return br__sync_destroy(cv, BR__MAGIC_COND, 0);
}

int br_cond_wait_until(br_cond *cv, br_mutex *mu, int64_t deadline_ns)
{
	struct br__wqe w;
	struct br__sync *c, *m;
	struct br__wait wt;
	int r, r2;

	r = br__sync_get(cv, BR__MAGIC_COND, &c);
	if (r == 0)
		r = br__sync_get(mu, BR__MAGIC_MUTEX, &m);
	if (r < 0)
		return r;
	if (!br__mutex_locked(m))
		return -EPERM;
	br__spin_lock(&c->lock);
	r = br__wait_begin(&wt, 0);
	if (r < 0) {
		br__spin_unlock(&c->lock);
		return r; /* the mutex is still held */
	}
	wt.lock = &c->lock;
	wt.abort = cond_abort;
	wt.obj = c;
	wt.ws = &w;
	br__wqe_init(&w, &wt, 0, 0, NULL, 0);
	br__wq_push(&c->q, &w);
	br__spin_unlock(&c->lock);
	/* Never suspends: the armed fiber is safe across it. */
	br__mutex_unlock(m);
	r = br__wait_end(&wt, deadline_ns);
	r2 = br__mutex_lock(m, -1, BR__WAIT_NOCANCEL);
	if (r2 < 0)
		return r2; /* only BR_EDEADLK from a loop callback */
	return r < 0 ? r : 0;
}

int br_cond_wait(br_cond *cv, br_mutex *mu)
{
	return br_cond_wait_until(cv, mu, -1);
}

int br_cond_wait_for(br_cond *cv, br_mutex *mu, int64_t timeout_ms)
{
	return br_cond_wait_until(cv, mu, br__deadline_ms(timeout_ms));
}

/* Wake one waiter (all when all is set). */
static int wake(br_cond *cv, int all)
{
	struct br__wqe *chain;
	struct br__sync *c;
	int r = br__sync_get(cv, BR__MAGIC_COND, &c);

	if (r < 0)
		return r;
	br__spin_lock(&c->lock);
	if (all)
		chain = br__wq_claim_all(&c->q);
	else if ((chain = br__wq_claim(&c->q, NULL)) != NULL)
		chain->chain = NULL;
	br__spin_unlock(&c->lock);
	br__wq_complete_all(chain, 0);
	return 0;
}

int br_cond_signal(br_cond *cv)
{
	return wake(cv, 0);
}

int br_cond_broadcast(br_cond *cv)
{
	return wake(cv, 1);
}
