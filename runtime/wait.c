/* SPDX-License-Identifier: MIT */
/*
 * wait.c - how a caller waits for futures: a task suspends its fiber, a
 * plain thread sleeps on a futex; br_await, br_wait_any, br_wait_for.
 *
 * Design
 *   One primitive, br__wait_any(), links a waiter into each future,
 *   suspends (or sleeps), and unlinks every waiter before returning, so no
 *   waiter ever outlives the wait and a waiter may live on the waiting
 *   task's stack. A task's wait on one future uses the waiter in its
 *   fiber's header instead, on the line its waker writes anyway (the wake
 *   word): a hand-off between workers then moves one line less each way
 *   (docs/ARCHITECTURE.md, "Hand-offs between threads"). A task's waiters
 *   and its timeout timer all carry the seq of one suspension (fiber.c);
 *   the first to fire wakes the fiber, the rest fail their CAS. A
 *   thread's waiters share one futex word.
 *
 *   br_await() first looks for the fork-join case: the awaited future is a
 *   task of this runtime that no worker has started and that sits at the
 *   bottom of this worker's deque (it is usually the child the caller just
 *   spawned). The caller pops it and runs it inline on its own stack, as Lace
 *   and TBB do: no fiber, no stack, no switch. Other children of the caller
 *   that sit above it (spawned later) run inline first. Only if a thief took
 *   the child does the parent suspend. A child run inline shares its parent's
 *   fiber; if it suspends, the fiber is woken on its behalf, and a
 *   cancellation of the parent reaches it (br__task_cancel_pending() walks
 *   inline_parent).
 *
 *   A deadline scope (deadline.c) bounds every wait that a cancellation
 *   may end, as a cancellation that comes at a time: the wait's deadline
 *   is the nearer of its own and the scope's, and br_await() passes the
 *   end on to what it awaited, as it does a cancellation. A task inside
 *   a scope runs no child inline: the child would hold the wait past
 *   the deadline.
 *
 *   Wake-ups may be spurious (a late cancellation request, fiber.c), so
 *   every wait re-checks its condition and waits again if nothing it
 *   waits for has happened.
 *
 * Concurrency
 *   Any thread. A loop callback (a worker outside any task) may only
 *   collect futures that are already complete: anything else would block
 *   the loop that has to complete them (BR_EDEADLK).
 *
 *   A plain thread spins on its wait word before it sleeps
 *   (br__thread_spin, futex.c: up to about a futex sleep and wake-up, less
 *   when its recent spins found nothing): a task that answers within
 *   microseconds then costs neither side a system call. It announces its
 *   sleep by moving the word WAITING -> ASLEEP, and a firing waiter calls
 *   FUTEX_WAKE only if its exchange to DONE returns ASLEEP: one wake-up,
 *   and only for a sleeper.
 *
 *   A task's waiter stores its DONE before it wakes the fiber, for the
 *   same reason as below: the woken task unlinks its waiters at once, and
 *   waited in br__future_unwait() for a DONE that came only after the
 *   waker had queued it on its worker and woken that worker, a system
 *   call when the worker was parked (docs/ARCHITECTURE.md, "Hand-offs
 *   between threads", traced it). It copies
 *   the fiber and seq first; a wake-up that comes after the task has moved
 *   on to another suspension fails its seq check (fiber.c).
 *
 *   The firing waiter stores its DONE before the FUTEX_WAKE, so the woken
 *   thread never waits in br__future_unwait() for the waker to come back
 *   from the system call (with DONE after the wake, the woken thread
 *   spun on the waiter until its waker returned from the kernel, a
 *   convoy of two threads on one wake-up). The thread may then return
 *   and its stack, where the word lives, be reused before the wake-up
 *   is made: a FUTEX_WAKE on such an address at worst wakes whatever
 *   waits there then, and every futex wait in braid (and glibc's)
 *   re-checks its word after waking, as waitq.c's completions already
 *   rely on.
 *
 * Memory ordering
 *   - fire_thread: the release exchange of the futex word pairs with the
 *     waiter's acquire loads (the spin, the CAS to ASLEEP and the load
 *     after the futex wait); the exchange and the CAS act on one word, so
 *     either the CAS sees DONE and the thread does not sleep, or the
 *     exchange sees ASLEEP and wakes it.
 */
#include <errno.h>
#include <stdlib.h>

#include "clock.h"
#include "fiber.h"
#include "futex.h"
#include "future.h"
#include "task.h"
#include "timer.h"
#include "wait.h"
#include "worker.h"

#define STACK_WAITERS 4

static void fire_task(struct br__waiter *w, struct br_future *f)
{
	/* Copied out: w is gone once DONE is stored; fiber headers are
	 * never freed, and a wake-up for a seq the task has left fails. */
	struct br__fiber *fiber = w->u.task.fiber;
	uint64_t seq = w->u.task.seq;

	/* Release: the waiter's owner may reuse w once it sees DONE. Before
	 * the wake-up (header): the woken task must not wait for it. */
	atomic_store_explicit(&w->st, BR__W_DONE, memory_order_release);
	br__fiber_wake(fiber, seq);
}

/* A plain thread's wait word (thread_wait()). */
enum {
	TW_WAITING, /* spinning, or about to sleep */
	TW_DONE,    /* a waiter fired */
	TW_ASLEEP,  /* sleeping on the futex: a firing must wake it */
};

static void fire_thread(struct br__waiter *w, struct br_future *f)
{
	_Atomic uint32_t *word = w->u.futex;
	uint32_t old;

	/* Release: pairs with thread_wait()'s acquire loads; the old value
	 * says whether the thread sleeps. */
	old = atomic_exchange_explicit(word, TW_DONE, memory_order_acq_rel);
	/* Release: the waiter may reuse w, and return, once it sees DONE. */
	atomic_store_explicit(&w->st, BR__W_DONE, memory_order_release);
	if (old == TW_ASLEEP)
		br__futex_wake(word); /* the word may be gone: see header */
}

static int first_done(br_future *const *fs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (br__future_state(fs[i]) != BR_PENDING)
			return (int)i;
	return -1;
}

/* Link ws[i] to fs[i]; returns how many were linked before one turned
 * out to be complete already (then *done is set), or n. */
static size_t link_all(br_future *const *fs, struct br__waiter *ws, size_t n,
		       int *done)
{
	size_t i;

	for (i = 0; i < n; i++) {
		atomic_init(&ws[i].st, BR__W_IDLE);
		if (!br__future_wait_on(fs[i], &ws[i])) {
			*done = 1;
			return i;
		}
	}
	return n;
}

static void unlink_all(br_future *const *fs, struct br__waiter *ws, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		br__future_unwait(fs[i], &ws[i]);
}

/* The waiter in the running task's fiber header, for a wait on one
 * future: on the line its waker writes anyway (fiber.h). Nothing else
 * runs on the fiber until the wait has unlinked it. Context: task. */
static struct br__waiter *own_waiter(void)
{
	return &br__worker_fiber(br__worker_current())->waiter;
}

static int task_wait(struct br__task *t, br_future *const *fs, size_t n,
		     struct br__waiter *ws, int64_t deadline, unsigned flags)
{
	for (;;) {
		struct br__worker *w = br__worker_current();
		struct br__fiber *f = br__worker_fiber(w);
		struct br__timer *tm = NULL;
		uint64_t seq = br__fiber_arm(f);
		size_t i, linked;
		int done = 0, r;

		if (!(flags & BR__WAIT_NOCANCEL) &&
		    br__task_cancel_pending(t)) {
			br__fiber_disarm(f, seq);
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		for (i = 0; i < n; i++) {
			ws[i].fire = fire_task;
			ws[i].u.task.fiber = f;
			ws[i].u.task.seq = seq;
		}
		linked = link_all(fs, ws, n, &done);
		if (!done && deadline >= 0) {
			tm = br__timer_wake_at(w, deadline, f, seq);
			if (!tm) {
				br__fiber_disarm(f, seq);
				unlink_all(fs, ws, linked);
				return -ENOMEM;
			}
		}
		if (done)
			br__fiber_disarm(f, seq);
		else
			br__task_suspend(!(flags & BR__WAIT_NOCANCEL));
		unlink_all(fs, ws, linked);
		if (tm)
			br__timer_cancel(br__worker_current(), tm);
		r = first_done(fs, n);
		if (r >= 0)
			return r;
		if (!(flags & BR__WAIT_NOCANCEL) &&
		    br__task_cancel_pending(t)) {
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		if (deadline >= 0 && br_now_ns() >= deadline)
			return -ETIMEDOUT;
	}
}

static int thread_wait(br_future *const *fs, size_t n, struct br__waiter *ws,
		       int64_t deadline)
{
	_Atomic uint32_t word = 0;
	size_t i, linked;
	int done = 0, r;
	int64_t slept = -1;

	for (i = 0; i < n; i++) {
		ws[i].fire = fire_thread;
		ws[i].u.futex = &word;
	}
	linked = link_all(fs, ws, n, &done);
	if (!done)
		done = br__thread_spin(&word, ~0u, TW_DONE, deadline);
	while (!done) {
		uint32_t v = TW_WAITING;

		if (deadline >= 0 && br_now_ns() >= deadline)
			break;
		/* Acquire on failure: pairs with fire_thread()'s release. */
		if (!atomic_compare_exchange_strong_explicit(
			    &word, &v, TW_ASLEEP, memory_order_acquire,
			    memory_order_acquire) &&
		    v == TW_DONE) {
			done = 1;
			break;
		}
		if (slept < 0)
			slept = br_now_ns();
		br__futex_wait(&word, TW_ASLEEP, deadline);
		/* Acquire: pairs with fire_thread()'s release. */
		done = atomic_load_explicit(&word, memory_order_acquire) ==
		       TW_DONE;
	}
	/* A failed spin is judged by what followed, as in waitq.c: the
	 * sleep's length if a waiter fired, else nothing came (INT64_MAX),
	 * however short the sleep before the deadline, or if there was none.
	 * Not done here means the spin ran and failed; slept set means it
	 * failed and a sleep followed. */
	if (!done)
		br__thread_slept(INT64_MAX);
	else if (slept >= 0)
		br__thread_slept(br_now_ns() - slept);
	unlink_all(fs, ws, linked);
	r = first_done(fs, n);
	return r >= 0 ? r : -ETIMEDOUT;
}

int br__wait_any(br_future *const *fs, size_t n, int64_t deadline,
		 unsigned flags)
{
	struct br__waiter local[STACK_WAITERS], *ws = local, *heap = NULL;
	struct br__task *t;
	int r = first_done(fs, n);

	if (r >= 0)
		return r;
	t = br__task_current();
	/* A deadline scope ends the wait as a cancellation would. */
	if (!(flags & BR__WAIT_NOCANCEL))
		deadline = br__deadline_min(deadline, br__task_deadline(t));
	if (deadline >= 0 && br_now_ns() >= deadline) {
		/* A cancellation is the more precise answer. */
		if (t && !(flags & BR__WAIT_NOCANCEL) &&
		    br__task_cancel_pending(t)) {
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		return -ETIMEDOUT;
	}
	if (!t && br__worker_current())
		return BR_EDEADLK;
	if (t && n == 1) {
		ws = own_waiter();
	} else if (n > STACK_WAITERS) {
		ws = heap = calloc(n, sizeof(*ws));
		if (!ws)
			return -ENOMEM;
	}
	if (t)
		r = task_wait(t, fs, n, ws, deadline, flags);
	else
		r = thread_wait(fs, n, ws, deadline);
	free(heap);
	return r;
}

/* May b, which this worker owns or the caller holds a reference to, run
 * inline for spawner? Only unstarted tasks: the deque also holds tasks
 * that have run and were woken (moved there from the LIFO slot), which
 * have a fiber and must be resumed, never started again. Spawners are
 * told apart by id: a record, and so a pointer, may have belonged to
 * another task, b's true spawner, which has ended. */
static int inlinable(struct br__task *b, struct br__task *want,
		     struct br__task *spawner)
{
	return !(b->flags & (BR__T_PINNED | BR__T_CALLBACK)) &&
	       (b == want || (spawner->id && b->spawner_id == spawner->id)) &&
	       !atomic_load_explicit(&b->fiber, memory_order_relaxed);
}

/* Take the bottom task of w's deque if it may run inline; NULL if not. */
static struct br__task *take_bottom(struct br__worker *w, struct br__task *want,
				    struct br__task *spawner)
{
	struct br__task *b = br__deque_peek(&w->dq);

	if (!b)
		return NULL;
	if (b == want) {
		/* The caller's reference keeps want alive: inspect, then
		 * pop, which returns it or loses it to a thief (NULL). */
		if (!inlinable(b, want, spawner))
			return NULL;
		return br__deque_pop(&w->dq) == b ? b : NULL;
	}
	/* Anything else may be stolen, run and freed the moment after the
	 * peek: own it before reading it, and put it back if it is not
	 * ours to run (the slot it left makes room, so the push cannot
	 * fail). */
	if (br__deque_pop(&w->dq) != b)
		return NULL;
	if (inlinable(b, want, spawner))
		return b;
	br__worker_push_local(w, b);
	return NULL;
}

/* Run the unstarted task c on the calling task p's fiber, from worker
 * w; awaited: c is the task p awaits (p holds a reference to it).
 * Returns the worker the fiber is on afterwards: c may have moved it. */
static struct br__worker *run_inline(struct br__worker *w, struct br__task *p,
				     struct br__task *c, int awaited)
{
	struct br__fiber *f = br__worker_fiber(w);
	void *v;

	if (br__task_start_dropped(
		    c, atomic_load_explicit(&w->rt->closing,
					    memory_order_relaxed))) {
		br__task_drop(c);
		return w;
	}
	br__obs_task_count(&w->obs);
	c->inline_parent = p;
	/* Relaxed: most children never suspend, and the one that does
	 * passes the seq_cst fence in br__fiber_arm() before it checks its
	 * cancel flag, which is what br__task_cancel() pairs with. */
	atomic_store_explicit(&c->fiber, f, memory_order_relaxed);
	f->top = c;
	w->current = c;
	v = c->fn(c->arg);
	w = br__worker_current(); /* c may have moved us */
	f->top = p;
	w->current = p;
	atomic_store_explicit(&c->fiber, NULL, memory_order_relaxed);
	c->inline_parent = NULL;
	/* The awaited child with one reference: p's, and p is right here
	 * waiting for this call, so nobody else can reach c and it completes
	 * without the future's lock (future.c). A sibling's one reference
	 * may have been handed to another task, which may be linking a
	 * waiter now: it takes the lock. Relaxed: with one reference, only
	 * its holder could change the count. */
	if (awaited &&
	    atomic_load_explicit(&c->fut.refs, memory_order_relaxed) == 1)
		br__task_finish_sole(w, c, v);
	else /* may free c: a helped sibling may be detached */
		br__task_finish(w, c, v);
	return w;
}

/*
 * The fork-join fast path: while the awaited child c has not started,
 * run unstarted tasks from the bottom of this worker's deque inline, as
 * long as they are c itself or other tasks p spawned (its children, which
 * it would await next anyway, as TBB's waiting thread does). Stops at the
 * first task that is neither, and after a bounded number, so a long run
 * of p's children cannot delay p indefinitely.
 */
static void help_inline(struct br__task *p, struct br__task *c)
{
	struct br__worker *w = br__worker_current();
	struct br__task *b;
	unsigned n;

	if (c->rt != w->rt || (c->flags & (BR__T_PINNED | BR__T_CALLBACK)))
		return;
	for (n = 0; n < 64; n++) {
		b = take_bottom(w, c, p);
		if (!b)
			return;
		w = run_inline(w, p, b, b == c);
		if (b == c)
			return;
	}
}

int br_await(br_future *f, void **value)
{
	struct br__task *t;
	int r;

	if (value)
		*value = NULL;
	if (!br__future_ok(f))
		return BR_EBADOBJ;
	if (br__future_state(f) != BR_PENDING)
		return br__future_result(f, value);
	t = br__task_current();
	if (t) {
		int64_t dl = t->dl.deadline;

		/* Inside a deadline scope the child is left to a worker of
		 * its own: run inline, it would hold this wait past the
		 * deadline. */
		if (br__future_is_task(f) && dl < 0) {
			help_inline(t, (struct br__task *)f);
			if (br__future_state(f) != BR_PENDING) {
				r = br__future_result(f, value);
				/* A child run inline ends CANCELLED when our
				 * own cancellation reached it: then we have
				 * seen it too, at this suspension point. */
				if (r == -ECANCELED &&
				    br__task_cancel_pending(t))
					t->cancel_seen = 1;
				return r;
			}
		}
		/* The message-passing path: straight to the task wait. */
		if (dl >= 0 && br_now_ns() >= dl && !br__task_cancel_pending(t))
			r = -ETIMEDOUT;
		else /* the inline run above has ended */
			r = task_wait(t, &f, 1, own_waiter(), dl, 0);
	} else {
		r = br__wait_any(&f, 1, -1, 0);
	}
	/* asyncio: cancelling the awaiter cancels what it awaits, and so
	 * does its deadline scope passing. */
	if (r == -ECANCELED || r == -ETIMEDOUT)
		br_cancel(f);
	if (r < 0)
		return r;
	return br__future_result(f, value);
}

int br_wait_any(br_future *const *fs, size_t n, int64_t timeout_ms)
{
	size_t i;

	if (!fs || !n)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!br__future_ok(fs[i]))
			return BR_EBADOBJ;
	return br__wait_any(fs, n, br__deadline_ms(timeout_ms), 0);
}

int br_wait_for(br_future *f, int64_t timeout_ms, void **value)
{
	int r;

	if (value)
		*value = NULL;
	if (!br__future_ok(f))
		return BR_EBADOBJ;
	r = br__wait_any(&f, 1, br__deadline_ms(timeout_ms), 0);
	if (r == -ETIMEDOUT || r == -ECANCELED)
		br_cancel(f);
	if (r < 0)
		return r;
	return br__future_result(f, value);
}
