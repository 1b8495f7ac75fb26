/* SPDX-License-Identifier: MIT */
/*
 * waitq.c - the waiting machinery under every synchronisation object and
 * channel: waiter queues, claiming and completing a waiter, and the wait
 * itself for tasks (suspend the fiber) and plain threads (futex).
 *
 * Design
 *   Every object (mutex, semaphore, event, condition, wait group, rwlock,
 *   channel) keeps its waiters in a FIFO of struct br__wqe, guarded by
 *   a one-word spin lock of the object's own; the lock is held for a few
 *   instructions and never across a call that can suspend, block or make
 *   a system call. Waiters live on the waiting party's stack, as future
 *   waiters do (future.c), so a wait allocates nothing (a timed wait by a
 *   task allocates its timer).
 *
 *   A waiter belongs to a struct br__wait, the one thing a waker and the
 *   waiter race on. Its state word moves once out of WAITING:
 *
 *     waker (holding the queue's lock):  WAITING -> CLAIMED
 *       then, with or without the lock: fill index and result,
 *       CLAIMED -> DONE (release), wake the fiber or the futex
 *     waiter giving up (deadline, cancellation): WAITING -> ABORTED,
 *       then unlink its waiters and repair the object (wt->abort)
 *
 *   A plain wait (one queue) changes phase only under that queue's lock,
 *   so for a task a claim is a plain store. A select links one waiter per
 *   case into several queues under several locks; there both sides use a
 *   CAS, and whoever wins the CAS owns the wait. A waker meeting a waiter
 *   whose wait another queue already claimed, or that aborted, unlinks it
 *   and moves on. A CLAIMED wait is never abandoned: the waiter, woken by
 *   its timer or a cancellation in between, spins until DONE (the waker
 *   is a few instructions from it and holds no lock the waiter needs).
 *
 *   So an outcome is delivered exactly once and never dropped: if the
 *   waker claims first the waiter returns its result even when its
 *   deadline passed or it was cancelled meanwhile (a lock handed over is
 *   held, a value received is returned), and if the waiter aborts first
 *   the waker skips it and gives the outcome to the next waiter.
 *
 *   Rejected: a lock-free waiter stack (removal from the middle, needed
 *   for deadlines and cancellation, wants an ABA scheme), and one mutex
 *   per object from pthreads (a pthread mutex is 40 bytes, and a blocked
 *   lock holder would stall every worker that touches the object).
 *
 * No lost wake-ups
 *   - A task arms its fiber (fiber.c) before its waiter is linked, so a
 *     waker that finds the waiter can wake that suspension, and a wake-up
 *     that comes before the fiber has switched out is kept by the wake
 *     word (ARMED -> NOTIFIED, and the worker requeues it).
 *   - br__wq_complete() copies the fiber and seq before its DONE store, so
 *     it touches nothing on the waiter's stack after the waiter may have
 *     returned; a late wake-up of an old seq fails harmlessly.
 *   - A thread first spins on the state word for a while
 *     (br__thread_spin: up to about a futex sleep and wake-up, less when
 *     its recent spins found nothing), so a task that completes its wait
 *     within microseconds costs neither side a system call. Then it sets
 *     SLEEP in the state word with a CAS before it sleeps on
 *     the word; the completer's exchange to DONE returns the old word, and
 *     it calls FUTEX_WAKE exactly when SLEEP was set. Either the exchange
 *     comes first (the futex wait then sees a changed word and returns) or
 *     the CAS does (the completer then sees SLEEP). Claims of thread
 *     waits are CASes too, so they never drop SLEEP.
 *   - A task woken for nothing (a stale cancellation hint, fiber.c)
 *     re-arms under the queue's lock, where the waker also reads seq, so
 *     the waker presents the new seq. A multi wait instead aborts and the
 *     caller starts again (it is rare, and a select has no place in line
 *     to lose).
 *
 * Invariants
 *   - A linked waiter of a plain wait is WAITING.
 *   - A wait leaves WAITING once; CLAIMED is followed by DONE.
 *   - Nobody touches a waiter after its wait is DONE, or after the waiter
 *     has taken the lock of each queue it was linked into once since it
 *     aborted.
 *
 * Concurrency
 *   - Queue operations and claims: the holder of the queue's lock.
 *   - br__wq_complete(): the claimer, with or without the lock.
 *   - br__wait_*(): the waiting task or thread.
 *
 * Memory ordering
 *   - Spin lock: acquire CAS / release store, the ordinary pair. Every
 *     field of a waiter and its wait is written before it is linked, so
 *     a waker holding the lock sees them.
 *   - DONE is stored with release after index, result and any data the
 *     waker copied for the waiter (a channel element); the waiter's
 *     acquire load of the state pairs with it.
 *   - Claim and abort CASes of multi waits are relaxed: only their
 *     atomicity matters; what each side reads next it reads under a
 *     queue's lock or after an acquire of DONE.
 *   - Thread sleep: SLEEP CAS and the completer's exchange act on the
 *     same word, so their order is the word's modification order; the
 *     kernel rechecks the word under its own lock in FUTEX_WAIT.
 *
 * Lifetime
 *   Waits and waiters are the waiting party's stack memory, valid until
 *   br__wait_end() (or br__wait_undo()) returns.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "fiber.h"
#include "task.h"
#include "timer.h"
#include "waitq.h"
#include "worker.h"

/* ---- the waker's side ---- */

static int claim(struct br__wait *wt)
{
	uint32_t s;

	if (!wt->multi && wt->fiber) {
		/* A task's plain wait changes phase only under the lock the
		 * caller holds. Relaxed: the waiter reads it under that lock
		 * or reads DONE, which is released later. */
		BR_DEBUG_ASSERT(atomic_load_explicit(&wt->state,
						     memory_order_relaxed) ==
				BR__WS_WAITING);
		atomic_store_explicit(&wt->state, BR__WS_CLAIMED,
				      memory_order_relaxed);
		return 1;
	}
	s = atomic_load_explicit(&wt->state, memory_order_relaxed);
	do {
		if ((s & BR__WS_PHASE) != BR__WS_WAITING)
			return 0;
		/* Relaxed: atomicity decides the race (header); SLEEP is
		 * kept so the completer knows to wake the thread. */
	} while (!atomic_compare_exchange_weak_explicit(
		&wt->state, &s, BR__WS_CLAIMED | (s & BR__WS_SLEEP),
		memory_order_relaxed, memory_order_relaxed));
	return 1;
}

struct br__wqe *br__wq_claim_slow(struct br__wq *q, const struct br__wait *self)
{
	struct br__list_node *n, *next;

	for (n = q->list.head; n; n = next) {
		struct br__wqe *w = br__list_entry(n, struct br__wqe, link);

		next = n->next;
		if (w->wait == self)
			continue;
		br__wq_remove(q, w);
		if (claim(w->wait))
			return w;
	}
	return NULL;
}

struct br__wqe *br__wq_claim_all(struct br__wq *q)
{
	struct br__wqe *head = NULL, **tail = &head, *w;

	while ((w = br__wq_first(q)) != NULL) {
		br__wq_remove(q, w);
		if (!claim(w->wait))
			continue;
		w->chain = NULL;
		*tail = w;
		tail = &w->chain;
	}
	return head;
}

void br__wq_complete(struct br__wqe *w, int result)
{
	struct br__wait *wt = w->wait;
	struct br__fiber *f = wt->fiber;
	uint64_t seq = wt->seq; /* stable once claimed (header) */

	wt->index = w->index;
	wt->result = result;
	if (f) {
		/* Release: pairs with the waiter's acquire load of DONE. */
		atomic_store_explicit(&wt->state, BR__WS_DONE,
				      memory_order_release);
		br__fiber_wake(f, seq);
		return;
	}
	/* Release as above; the exchange tells whether it sleeps. */
	if (atomic_exchange_explicit(&wt->state, BR__WS_DONE,
				     memory_order_release) &
	    BR__WS_SLEEP)
		br__futex_wake(&wt->state);
}

void br__wq_complete_all(struct br__wqe *chain, int result)
{
	while (chain) {
		struct br__wqe *next = chain->chain; /* before it goes */

		br__wq_complete(chain, result);
		chain = next;
	}
}

/* ---- the waiting side ---- */

int br__wait_begin(struct br__wait *wt, unsigned flags)
{
	/* One call for both: the task is the worker's current one. */
	struct br__worker *w = br__worker_current();
	struct br__task *t = w ? w->current : NULL;

	atomic_init(&wt->state, BR__WS_WAITING);
	wt->multi = !!(flags & BR__WAIT_MULTI);
	wt->cancellable = !(flags & BR__WAIT_NOCANCEL);
	wt->index = -1;
	wt->result = 0;
	wt->later = NULL;
	wt->task = t;
	if (!t) {
		if (w)
			return BR_EDEADLK; /* a loop callback would stall */
		wt->fiber = NULL;
		wt->worker = NULL;
		wt->seq = 0;
		return 0;
	}
	wt->fiber = br__worker_fiber(w);
	wt->worker = w;
	wt->seq = br__fiber_arm(wt->fiber);
	/* After arming (fiber.c): a cancellation stored before the arm is
	 * seen here, one after it wakes the armed fiber. */
	if (wt->cancellable && br__task_cancel_pending(t)) {
		br__fiber_disarm(wt->fiber, wt->seq);
		t->cancel_seen = 1;
		return -ECANCELED;
	}
	return 0;
}

void br__wait_undo(struct br__wait *wt)
{
	if (wt->fiber)
		br__fiber_disarm(wt->fiber, wt->seq);
}

/* WAITING -> ABORTED, unlinking everything; 0 if a waker claimed it. */
static int try_abort(struct br__wait *wt)
{
	uint32_t s;

	if (wt->multi) {
		s = atomic_load_explicit(&wt->state, memory_order_relaxed);
		do {
			if ((s & BR__WS_PHASE) != BR__WS_WAITING)
				return 0;
			/* Relaxed: see claim(). */
		} while (!atomic_compare_exchange_weak_explicit(
			&wt->state, &s, BR__WS_ABORTED, memory_order_relaxed,
			memory_order_relaxed));
		wt->abort(wt);
		return 1;
	}
	br__spin_lock(wt->lock);
	s = atomic_load_explicit(&wt->state, memory_order_relaxed);
	if ((s & BR__WS_PHASE) != BR__WS_WAITING) {
		br__spin_unlock(wt->lock);
		return 0;
	}
	atomic_store_explicit(&wt->state, BR__WS_ABORTED, memory_order_relaxed);
	wt->abort(wt);
	br__spin_unlock(wt->lock);
	br__wq_complete_all(wt->later, 0);
	return 1;
}

/* A waker claimed the wait: wait for its DONE and take the result. */
static int wait_done(struct br__wait *wt)
{
	unsigned spins = 0;

	/* Acquire: pairs with br__wq_complete()'s release. */
	while ((atomic_load_explicit(&wt->state, memory_order_acquire) &
		BR__WS_PHASE) != BR__WS_DONE)
		br__backoff(&spins);
	return wt->result;
}

static int give_up(struct br__wait *wt, int err)
{
	if (try_abort(wt)) {
		if (err == -ECANCELED)
			wt->task->cancel_seen = 1;
		return err;
	}
	return wait_done(wt);
}

/*
 * A task woken with its wait still WAITING and no reason to stop: arm a
 * new suspension under the queue's lock (where wakers read seq). Returns
 * 0 to suspend again, 1 if a waker claimed the wait meanwhile, -ECANCELED
 * if a cancellation arrived.
 */
static int rearm(struct br__wait *wt)
{
	uint64_t seq;

	br__spin_lock(wt->lock);
	if ((atomic_load_explicit(&wt->state, memory_order_relaxed) &
	     BR__WS_PHASE) != BR__WS_WAITING) {
		br__spin_unlock(wt->lock);
		return 1;
	}
	seq = br__fiber_arm(wt->fiber);
	if (wt->cancellable && br__task_cancel_pending(wt->task)) {
		atomic_store_explicit(&wt->state, BR__WS_ABORTED,
				      memory_order_relaxed);
		wt->abort(wt);
		br__spin_unlock(wt->lock);
		br__fiber_disarm(wt->fiber, seq);
		br__wq_complete_all(wt->later, 0);
		wt->task->cancel_seen = 1;
		return -ECANCELED;
	}
	wt->seq = seq;
	br__spin_unlock(wt->lock);
	return 0;
}

static int task_end(struct br__wait *wt, int64_t deadline)
{
	for (;;) {
		struct br__timer *tm = NULL;
		uint32_t s;
		int r;

		if (deadline >= 0 && br_now_ns() >= deadline) {
			br__fiber_disarm(wt->fiber, wt->seq);
			return give_up(wt, -ETIMEDOUT);
		}
		if (deadline >= 0) {
			tm = br__timer_wake_at(br__worker_current(), deadline,
					       wt->fiber, wt->seq);
			if (!tm) {
				br__fiber_disarm(wt->fiber, wt->seq);
				return give_up(wt, -ENOMEM);
			}
		}
		/* The first time round nothing has suspended since
		 * br__wait_begin(): its worker is still ours (and one call
		 * to the noinline accessor fewer on the hot path). */
		if (wt->worker)
			br__worker_leave(wt->worker, wt->fiber, BR__AFTER_PARK,
					 wt->cancellable);
		else
			br__task_suspend(wt->cancellable);
		wt->worker = NULL;
		if (tm)
			br__timer_cancel(br__worker_current(), tm);
		/* Acquire: pairs with br__wq_complete()'s release. */
		s = atomic_load_explicit(&wt->state, memory_order_acquire) &
		    BR__WS_PHASE;
		if (s == BR__WS_DONE)
			return wt->result;
		if (s == BR__WS_CLAIMED)
			return wait_done(wt);
		if (wt->cancellable && br__task_cancel_pending(wt->task))
			return give_up(wt, -ECANCELED);
		if (deadline >= 0 && br_now_ns() >= deadline)
			return give_up(wt, -ETIMEDOUT);
		/* Woken for nothing (fiber.c: a stale cancellation hint). */
		if (wt->multi)
			return give_up(wt, BR__WAIT_AGAIN);
		r = rearm(wt);
		if (r < 0)
			return r;
		if (r > 0)
			return wait_done(wt);
	}
}

static int thread_sleep(struct br__wait *wt, int64_t deadline)
{
	int64_t slept = -1;

	for (;;) {
		/* Acquire: pairs with br__wq_complete()'s release. */
		uint32_t s =
			atomic_load_explicit(&wt->state, memory_order_acquire);
		uint32_t ph = s & BR__WS_PHASE;

		if (ph == BR__WS_DONE) {
			if (slept >= 0)
				br__thread_slept(br_now_ns() - slept);
			return wt->result;
		}
		if (ph == BR__WS_WAITING && deadline >= 0 &&
		    br_now_ns() >= deadline) {
			if (try_abort(wt)) {
				br__thread_slept(INT64_MAX);
				return -ETIMEDOUT;
			}
			continue;
		}
		if (!(s & BR__WS_SLEEP)) {
			/* Relaxed: the word itself orders it against the
			 * completer's exchange (header). */
			if (!atomic_compare_exchange_weak_explicit(
				    &wt->state, &s, s | BR__WS_SLEEP,
				    memory_order_relaxed, memory_order_relaxed))
				continue;
			s |= BR__WS_SLEEP;
		}
		if (slept < 0)
			slept = br_now_ns();
		br__futex_wait(&wt->state, s,
			       ph == BR__WS_WAITING ? deadline : -1);
	}
}

static int thread_end(struct br__wait *wt, int64_t deadline)
{
	/* A waker is usually a task a few hundred ns away from completing
	 * the wait: spin before setting SLEEP (header), and tell the spin
	 * how long the sleep was if it came to one. */
	br__thread_spin(&wt->state, BR__WS_PHASE, BR__WS_DONE, deadline);
	return thread_sleep(wt, deadline);
}

int br__wait_end(struct br__wait *wt, int64_t deadline)
{
	/* A deadline scope ends the wait as a cancellation would, at its
	 * time: not for waits a cancellation cannot end. */
	if (wt->cancellable)
		deadline =
			br__deadline_min(deadline, br__task_deadline(wt->task));
	if (wt->fiber)
		return task_end(wt, deadline);
	return thread_end(wt, deadline);
}
