/* SPDX-License-Identifier: MIT */
/*
 * mshot.c - multishot ring operations: one SQE, many CQEs, owned by the
 * worker whose ring holds the request.
 *
 * Design
 *   A multishot request (accept, recv with provided buffers) lives in one
 *   ring, so its object has an owner worker, and all its state is touched
 *   only on the owner's thread: its CQE handler runs there, and a task
 *   that uses the object moves there first (BR__AFTER_MOVE) when it
 *   resumed elsewhere. The no-lost-wake-up argument is io.c's: a waiter
 *   arms its fiber, then checks its condition; the handler changes the
 *   state, then wakes the recorded (fiber, seq); both on one thread.
 *
 *   The owner is fixed once, by the first task that uses the object: a
 *   compare-and-swap on o->w (br__mshot_tie), so that two first calls on
 *   two workers cannot each arm a request on their own ring; the loser
 *   moves to the winner.
 *
 *   A CQE without IORING_CQE_F_MORE is the request's last: the object is
 *   disarmed, and only then may it be freed, since every CQE carries its
 *   address. br__mshot_finish() cancels the request and waits for that
 *   CQE, from a plain thread through a task pinned to the owner. It sets
 *   closing first: a handler that re-arms its object from a CQE
 *   (writer.c's next send) stops, so the wait ends.
 *
 *   A wait that a cancellation may end also ends at the task's deadline
 *   scope (deadline.c), with -ETIMEDOUT. A plain thread's call, run as
 *   a task on the owner, is waited for to its end whatever happens: the
 *   task works on the caller's memory.
 *
 *   One task waits on an object at a time: a caller that finds another
 *   task's fiber in the waiter slot gets -EBUSY. The finishing wait
 *   (not cancellable) takes the slot regardless, since freeing during a
 *   call is the caller's error, and taking over at least ends the
 *   request.
 *
 * Concurrency: the owner only, as above, except o->w: set once, by the
 * compare-and-swap in br__mshot_tie() of the first task that uses the
 * object, and read anywhere (plain threads hand their calls to it).
 */
#include <errno.h>
#include <stdlib.h>

#include "clock.h"
#include "fiber.h"
#include "mshot.h"
#include "task.h"
#include "timer.h"
#include "wait.h"
#include "worker.h"

int br__mshot_tie(struct br__mshot_obj *o)
{
	struct br__worker *w = br__worker_current();
	struct br__worker *owner =
		atomic_load_explicit(&o->w, memory_order_acquire);

	/* A load first: every call comes here, and only the first ties. */
	if (!owner && atomic_compare_exchange_strong_explicit(
			      &o->w, &owner, w, memory_order_acq_rel,
			      memory_order_acquire))
		return 0;
	if (owner->rt != w->rt)
		return -EINVAL;
	br__worker_go(owner);
	return 0;
}

struct io_uring_sqe *br__mshot_arm(struct br__mshot_obj *o)
{
	struct io_uring_sqe *sqe = br__ring_sqe(&o->w->ring);

	if (!sqe)
		return NULL;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)o | BR__UD_MSHOT);
	o->armed = 1;
	return sqe;
}

int br__mshot_push(struct br__mshot_obj *o, int res, uint16_t bid)
{
	if (o->qlen == o->qcap) {
		unsigned cap = o->qcap ? o->qcap * 2 : 16, i;
		struct br__mshot_res *q = malloc(cap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		for (i = 0; i < o->qlen; i++)
			q[i] = o->q[(o->qhead + i) % o->qcap];
		free(o->q);
		o->q = q;
		o->qhead = 0;
		o->qcap = cap;
	}
	o->q[(o->qhead + o->qlen) % o->qcap] =
		(struct br__mshot_res){ .res = res, .bid = bid };
	o->qlen++;
	return 0;
}

struct br__mshot_res br__mshot_pop(struct br__mshot_obj *o)
{
	struct br__mshot_res e = o->q[o->qhead];

	o->qhead = (o->qhead + 1) % o->qcap;
	o->qlen--;
	return e;
}

void br__mshot_queue_free(struct br__mshot_obj *o)
{
	free(o->q);
	o->q = NULL;
	o->qlen = o->qcap = o->qhead = 0;
}

void br__mshot_cqe_seen(struct br__mshot_obj *o, uint32_t flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		o->armed = 0;
	if (o->waiter)
		br__fiber_wake(o->waiter, o->seq);
}

void br__mshot_go_home(struct br__mshot_obj *o)
{
	if (o->w)
		br__worker_go(o->w);
}

int br__mshot_wait(struct br__mshot_obj *o, struct br__task *t,
		   int (*cond)(const struct br__mshot_obj *), int cancellable)
{
	/* The task's deadline scope ends a wait a cancellation may end. */
	int64_t dl = cancellable ? t->dl.deadline : -1;
	struct br__timer *tm;
	struct br__worker *w;
	struct br__fiber *f;
	uint64_t seq;

	for (;;) {
		br__mshot_go_home(o);
		w = br__worker_current();
		f = br__worker_fiber(w);
		/* One caller at a time: a second would take the waiter slot
		 * and leave the first suspended for good. */
		if (cancellable && o->waiter && o->waiter != f)
			return -EBUSY;
		o->waiter = NULL;
		seq = br__fiber_arm(f);
		if (cond(o)) {
			br__fiber_disarm(f, seq);
			return 0;
		}
		if (cancellable && br__task_cancel_pending(t)) {
			br__fiber_disarm(f, seq);
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		tm = NULL;
		if (dl >= 0 && (br_now_ns() >= dl ||
				!(tm = br__timer_wake_at(w, dl, f, seq)))) {
			br__fiber_disarm(f, seq);
			return br_now_ns() >= dl ? -ETIMEDOUT : -ENOMEM;
		}
		o->waiter = f;
		o->seq = seq;
		br__task_suspend(cancellable);
		if (tm)
			br__timer_cancel(br__worker_current(), tm);
	}
}

static int disarmed(const struct br__mshot_obj *o)
{
	return !o->armed;
}

struct finish {
	struct br__mshot_obj *o;
	void (*done)(struct br__mshot_obj *o);
};

static void *finish_here(void *arg)
{
	struct finish *fin = arg;
	struct br__mshot_obj *o = fin->o;

	br__mshot_go_home(o);
	o->closing = 1;
	if (o->armed) {
		br__ring_cancel(o->w, (uint64_t)(uintptr_t)o | BR__UD_MSHOT);
		br__mshot_wait(o, br__task_current(), disarmed, 0);
	}
	fin->done(o);
	return NULL;
}

int br__mshot_on_worker(struct br__worker *w, void *(*fn)(void *), void *arg,
			void **value)
{
	br_future *f = br_spawn_on(w->rt, w->id, fn, arg);
	int err = br__wait_any(&f, 1, -1, 0);

	/* The caller was cancelled, or its deadline scope passed: the task
	 * works on the caller's memory, so it is cancelled and waited for
	 * all the same. If it finished anyway, its result stands (an fd
	 * accepted must not be lost). */
	if (err == -ECANCELED || err == -ETIMEDOUT) {
		br_cancel(f);
		br__wait_any(&f, 1, -1, BR__WAIT_NOCANCEL);
		if (br__future_state(f) == BR_DONE)
			err = 0;
	}
	if (err >= 0)
		err = br__future_result(f, value);
	br_future_release(f);
	return err;
}

void br__mshot_finish(struct br__mshot_obj *o,
		      void (*done)(struct br__mshot_obj *o))
{
	struct finish fin = { o, done };
	struct br__worker *w = br__worker_current();

	if (!o->w) { /* never armed: nothing of the owner's to give back */
		done(o);
		return;
	}
	if (br__task_current() && w->rt == o->w->rt) {
		finish_here(&fin);
		return;
	}
	/* A plain thread, or a task of another runtime. If the owner's
	 * runtime is shutting down the task cannot start, and o is left
	 * allocated: freeing it under a live request would be worse. */
	br__mshot_on_worker(o->w, finish_here, &fin, NULL);
}
