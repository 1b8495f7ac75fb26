/* SPDX-License-Identifier: MIT */
/*
 * combine.c - combinators over futures of any origin: gather, shield and
 * as_completed (asyncio's names and semantics).
 *
 * Design
 *   gather awaits each input in argument order: the total wait is the
 *   slowest input either way, and it needs no allocation. Its fail-fast
 *   form waits for whichever input completes next (br__wait_any) so it
 *   can cancel the rest at the first failure.
 *
 *   shield is a promise fed by an on_done callback of its input: cancelling
 *   the promise completes only the promise.
 *
 *   as_completed links one waiter per input, embedded in the iterator.
 *   Each fires into a queue of completed indices under the iterator's
 *   lock and wakes the consumer if it waits. br_as_completed_free unlinks
 *   every waiter (br__future_unwait waits for a firing one to finish), so
 *   no callback can run on a freed iterator.
 *
 *   Every wait here honours the caller's deadline scope (deadline.c):
 *   br_as_completed_next_ex() with a timer, a gather by cancelling the
 *   inputs it still waits for when the scope passes, as a cancellation
 *   of the gathering task does.
 *
 * Invariants
 *   - as_completed: head <= ndone <= n; done[0..ndone) are distinct.
 *
 * Concurrency
 *   - as_completed: fire() runs on the completing thread; next() and
 *     free() on the consumer's. done, ndone, waiting, wfiber, wseq and
 *     wword are protected by it->lock.
 *   - Lock order: a future's lock, then it->lock (fire runs outside the
 *     future's lock, so in practice it->lock is taken alone).
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "fiber.h"
#include "future.h"
#include "futex.h"
#include "task.h"
#include "timer.h"
#include "wait.h"
#include "worker.h"

int br_gather_ex(br_future *const *fs, size_t n, void **values, unsigned flags)
{
	size_t i;
	int first = 0, r;

	if (n && !fs)
		return -EINVAL;
	if (flags & ~BR_GATHER_FAIL_FAST)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!br__future_ok(fs[i]))
			return BR_EBADOBJ;
	if (!(flags & BR_GATHER_FAIL_FAST)) {
		/* Newest first: children spawned in a loop sit in the deque
		 * in that order, so each is at the bottom when it is awaited
		 * and runs inline (wait.c). The error reported is still the
		 * first in argument order. */
		for (i = n; i-- > 0;) {
			r = br_await(fs[i], values ? &values[i] : NULL);
			/* Still pending after br_await, or ended otherwise
			 * than it says: the wait itself failed (the gathering
			 * task was cancelled, its deadline scope passed and
			 * br_await cancelled the input, a loop callback cannot
			 * wait, no memory); that is the answer. */
			if (r < 0 && (br__future_state(fs[i]) == BR_PENDING ||
				      br__future_result(fs[i], NULL) != r))
				first = r;
		}
		for (i = 0; i < n && !first; i++)
			first = br__future_result(fs[i], NULL);
		return first;
	}
	for (;;) {
		br_future **pend = malloc(n * sizeof(*pend));
		size_t np = 0;

		if (!pend)
			return -ENOMEM;
		for (i = 0; i < n; i++)
			if (br__future_state(fs[i]) == BR_PENDING)
				pend[np++] = fs[i];
			else if (!first && br__future_state(fs[i]) != BR_DONE)
				first = br_future_error(fs[i]);
		if (first)
			for (i = 0; i < np; i++)
				br_cancel(pend[i]);
		if (np)
			r = br__wait_any(pend, np, -1,
					 first ? BR__WAIT_NOCANCEL : 0);
		else
			r = 0;
		free(pend);
		/* The gathering task was cancelled, or its deadline scope
		 * passed: cancel the rest as for a failure, and wait for
		 * them all the same. */
		if ((r == -ECANCELED || r == -ETIMEDOUT) && !first) {
			first = r;
			continue;
		}
		if (r < 0 && r != -ECANCELED)
			return r;
		if (!np)
			break;
	}
	for (i = 0; i < n; i++)
		br__future_result(fs[i], values ? &values[i] : NULL);
	return first;
}

int br_gather(br_future *const *fs, size_t n, void **values)
{
	return br_gather_ex(fs, n, values, 0);
}

/* ---- shield ---- */

static void shield_done(br_future *f, void *arg)
{
	br_future *p = arg;
	void *copy = NULL;

	switch (br__future_state(f)) {
	case BR_DONE:
		if (f->bytes) {
			copy = malloc(f->len ? f->len : 1);
			if (!copy) {
				br_promise_reject(p, -ENOMEM,
						  "shield: out of memory");
				break;
			}
			memcpy(copy, f->bytes, f->len);
		}
		br__future_complete(p, BR_DONE, f->value, copy, f->len, 0,
				    NULL);
		break;
	case BR_FAILED:
		br_promise_reject(p, f->error, br_future_message(f));
		break;
	default:
		br_cancel(p);
		break;
	}
	br_future_release(p);
}

br_future *br_shield(br_future *f)
{
	br_future *p;
	int r;

	if (!br__future_ok(f))
		return br__future_failed(BR_EBADOBJ,
					 "br_shield: not a live future");
	p = br__promise_alloc(2); /* the caller's and the callback's */
	if (!p)
		return &br__future_enomem;
	r = br_future_on_done(f, shield_done, p);
	if (r < 0) {
		br_future_release(p);
		br_promise_reject(p, r, "br_shield");
	}
	return p;
}

int br__await_shielded(br_future *f)
{
	br_future *s = br_shield(f);
	int r = br_await(s, NULL);

	br_future_release(s);
	/* The caller was cancelled, or its deadline scope passed (or it
	 * cannot wait at all): f goes on. */
	if (r < 0 && br__future_state(f) == BR_PENDING)
		return r;
	return br__future_result(f, NULL);
}

/* ---- as_completed ---- */

struct br_as_completed {
	uint32_t magic;
	size_t n;
	br_future **fs;	       /* the caller's pointers, retained */
	struct br__waiter *ws; /* one per input */
	size_t *done;	       /* completed indices, in completion order */
	size_t ndone, head;
	pthread_mutex_t lock;
	int waiting; /* the consumer sleeps: wake one of: */
	struct br__fiber *wfiber;
	uint64_t wseq;
	_Atomic uint32_t *wword;
};

static void iter_fire(struct br__waiter *w, struct br_future *f)
{
	struct br_as_completed *it = w->u.obj;

	pthread_mutex_lock(&it->lock);
	it->done[it->ndone++] = w->index;
	if (it->waiting) {
		it->waiting = 0;
		if (it->wfiber) {
			br__fiber_wake(it->wfiber, it->wseq);
		} else {
			atomic_store_explicit(it->wword, 1,
					      memory_order_release);
			syscall(SYS_futex, it->wword, FUTEX_WAKE_PRIVATE, 1,
				NULL, NULL, 0);
		}
	}
	pthread_mutex_unlock(&it->lock);
	/* Release: br_as_completed_free may free w once it sees DONE. */
	atomic_store_explicit(&w->st, BR__W_DONE, memory_order_release);
}

br_as_completed *br_as_completed_new(br_future *const *fs, size_t n)
{
	struct br_as_completed *it;
	size_t i;

	if (n && !fs)
		return NULL;
	for (i = 0; i < n; i++)
		if (!br__future_ok(fs[i]))
			return NULL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	it->fs = calloc(n ? n : 1, sizeof(*it->fs));
	it->ws = calloc(n ? n : 1, sizeof(*it->ws));
	it->done = calloc(n ? n : 1, sizeof(*it->done));
	if (!it->fs || !it->ws || !it->done) {
		free(it->fs);
		free(it->ws);
		free(it->done);
		free(it);
		return NULL;
	}
	pthread_mutex_init(&it->lock, NULL);
	it->n = n;
	it->magic = BR__MAGIC_ITER;
	for (i = 0; i < n; i++) {
		it->fs[i] = br_future_retain(fs[i]);
		it->ws[i].fire = iter_fire;
		it->ws[i].u.obj = it;
		it->ws[i].index = i;
		atomic_init(&it->ws[i].st, BR__W_IDLE);
		if (!br__future_wait_on(fs[i], &it->ws[i])) {
			pthread_mutex_lock(&it->lock);
			it->done[it->ndone++] = i;
			pthread_mutex_unlock(&it->lock);
		}
	}
	return it;
}

int br_as_completed_next_ex(br_as_completed *it, br_future **out)
{
	struct br__task *t;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!it)
		return -EINVAL;
	if (it->magic != BR__MAGIC_ITER)
		return BR_EBADOBJ;
	for (;;) {
		_Atomic uint32_t word = 0;
		struct br__timer *tm = NULL;
		struct br__worker *w;
		uint64_t seq = 0;
		int64_t dl;

		pthread_mutex_lock(&it->lock);
		if (it->head < it->ndone) {
			size_t i = it->done[it->head++];

			pthread_mutex_unlock(&it->lock);
			*out = it->fs[i];
			return 0;
		}
		if (it->head == it->n) {
			pthread_mutex_unlock(&it->lock);
			return BR_EDONE;
		}
		t = br__task_current();
		w = br__worker_current();
		dl = br__task_deadline(t);
		if (t && br__task_cancel_pending(t)) {
			pthread_mutex_unlock(&it->lock);
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		if (dl >= 0 && br_now_ns() >= dl && (t || !w)) {
			pthread_mutex_unlock(&it->lock);
			return -ETIMEDOUT; /* its deadline scope passed */
		}
		if (t) {
			seq = br__fiber_arm(br__worker_fiber(w));
			if (br__task_cancel_pending(t)) {
				br__fiber_disarm(br__worker_fiber(w), seq);
				pthread_mutex_unlock(&it->lock);
				t->cancel_seen = 1;
				return -ECANCELED;
			}
			it->wfiber = br__worker_fiber(w);
			it->wseq = seq;
		} else if (w) {
			pthread_mutex_unlock(&it->lock);
			return BR_EDEADLK; /* a loop callback must not block */
		} else {
			it->wfiber = NULL;
			it->wword = &word;
		}
		it->waiting = 1;
		pthread_mutex_unlock(&it->lock);
		if (t) {
			/* Still armed: a timer added now wakes this
			 * suspension even if it fires before the switch. */
			if (dl >= 0)
				tm = br__timer_wake_at(w, dl, it->wfiber, seq);
			if (dl < 0 || tm)
				br__task_suspend(1);
			else
				br__fiber_disarm(it->wfiber, seq);
			if (tm)
				br__timer_cancel(br__worker_current(), tm);
		} else {
			/* Acquire: pairs with iter_fire()'s release. */
			while (!atomic_load_explicit(&word,
						     memory_order_acquire) &&
			       (dl < 0 || br_now_ns() < dl))
				br__futex_wait(&word, 0, dl);
		}
		/* Under the lock: a firing that saw waiting has finished
		 * with word and the fiber once we hold it. */
		pthread_mutex_lock(&it->lock);
		it->waiting = 0;
		pthread_mutex_unlock(&it->lock);
		if (t && !tm && dl >= 0)
			return -ENOMEM; /* no timer for the deadline */
		if (t && br__task_cancel_pending(t)) {
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		/* Round again: an input that completed meanwhile comes out
		 * even past the deadline, else the deadline ends it. */
	}
}

br_future *br_as_completed_next(br_as_completed *it)
{
	br_future *f;

	br_as_completed_next_ex(it, &f);
	return f;
}

void br_as_completed_free(br_as_completed *it)
{
	size_t i;

	if (!it || it->magic != BR__MAGIC_ITER)
		return;
	for (i = 0; i < it->n; i++) {
		br__future_unwait(it->fs[i], &it->ws[i]);
		br_future_release(it->fs[i]);
	}
	pthread_mutex_destroy(&it->lock);
	it->magic = BR__MAGIC_DEAD;
	free(it->fs);
	free(it->ws);
	free(it->done);
	free(it);
}
