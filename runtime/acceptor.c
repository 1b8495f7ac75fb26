/* SPDX-License-Identifier: MIT */
/*
 * acceptor.c - a listener's connections from one multishot accept.
 *
 * Design
 *   br_acceptor_next() arms one IORING_OP_ACCEPT with
 *   IORING_ACCEPT_MULTISHOT on the ring of the worker it first runs on
 *   (the owner). The kernel then posts a CQE per connection for as long
 *   as the request lives, without another SQE; the owner queues each new
 *   fd and wakes the task waiting in next(), if any. When a CQE comes
 *   without IORING_CQE_F_MORE the request has ended (an error, or the
 *   kernel dropped it) and the next call arms it again. A kernel without
 *   multishot accept answers -EINVAL at once; the acceptor then falls
 *   back to br_accept() for good, as it does on workers without a ring
 *   and on plain threads.
 *
 *   The owner, the waiting and the freeing are mshot.c's: state is
 *   touched only on the owner, and freeing waits for the request's last
 *   CQE. Connections accepted but never taken are closed then.
 *
 * Concurrency: all fields after creation, the owner worker only (magic
 * and lfd are read anywhere), except busy: taken by compare-and-swap by
 * the caller of br_acceptor_next on any thread (acquire), given back by
 * it (release), so that a second concurrent caller gets -EBUSY on every
 * path, with or without a ring.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mshot.h"
#include "quarantine.h"
#include "task.h"
#include "worker.h"

struct br_acceptor {
	struct br__mshot_obj o; /* first */
	uint32_t magic;
	int lfd;
	int fallback; /* no multishot accept here: br_accept */
	/* A caller is inside br_acceptor_next (any thread; see next()). */
	_Atomic int busy;
};

/* Freed acceptors, whose magic a stale call may still check. */
static struct br__quarantine freed =
	BR__QUARANTINE_INIT(struct br_acceptor, magic);

/* A CQE of the multishot accept, on the owner. */
static void on_cqe(struct br__mshot *m, int res, uint32_t flags)
{
	struct br_acceptor *a = (struct br_acceptor *)m;
	int last = !(flags & IORING_CQE_F_MORE);

	if (last && res == -ECANCELED)
		; /* our own cancellation (free) ended it */
	else if (last && res == -EINVAL)
		a->fallback = 1; /* no multishot accept in this kernel */
	else if (br__mshot_push(&a->o, res, 0) < 0 && res >= 0)
		close(res); /* out of memory: the client sees a reset */
	br__mshot_cqe_seen(&a->o, flags);
}

int br_acceptor_new(br_acceptor **out, int lfd)
{
	struct br_acceptor *a;

	if (!out)
		return -EINVAL;
	if (lfd < 0)
		return -EBADF;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->o.m.cqe = on_cqe;
	a->magic = BR__MAGIC_ACCEPTOR;
	a->lfd = lfd;
	*out = a;
	return 0;
}

static int has_conn(const struct br__mshot_obj *o)
{
	const struct br_acceptor *a = (const struct br_acceptor *)o;

	return o->qlen > 0 || !o->armed || a->fallback;
}

static void *next_on_owner(void *arg)
{
	br_acceptor *a = *(br_acceptor **)arg;

	return (void *)(intptr_t)br_acceptor_next(a);
}

static int next(br_acceptor *a, struct br__task *t, struct br__worker *w);

int br_acceptor_next(br_acceptor *a)
{
	struct br__task *t = br__task_current();
	struct br__worker *w;
	int expect = 0, r;

	if (!a || a->magic != BR__MAGIC_ACCEPTOR)
		return a ? BR_EBADOBJ : -EINVAL;
	w = br__worker_current();
	if (!t && a->o.w) {
		/* Tied to a worker whose ring may hold connections for us:
		 * take one there, as a task, and wait. */
		void *v = NULL;

		r = br__mshot_on_worker(a->o.w, next_on_owner, &a, &v);
		return r < 0 ? r : (int)(intptr_t)v;
	}
	/* One caller at a time, on every path: the ring's waiter slot
	 * would say so too, but a loop without a ring, a plain thread and
	 * the fallback to br_accept() have none. */
	if (!atomic_compare_exchange_strong_explicit(&a->busy, &expect, 1,
						     memory_order_acquire,
						     memory_order_relaxed))
		return -EBUSY;
	r = next(a, t, w);
	atomic_store_explicit(&a->busy, 0, memory_order_release);
	return r;
}

static int next(br_acceptor *a, struct br__task *t, struct br__worker *w)
{
	int err;

	if (!t || !w->ring.on || a->fallback)
		return br_accept(a->lfd, NULL, NULL, 0);
	err = br__mshot_tie(&a->o);
	if (err < 0)
		return err; /* tied to another runtime's worker */
	if (br__task_cancel_pending(t)) {
		t->cancel_seen = 1;
		return -ECANCELED;
	}
	for (;;) {
		br__mshot_go_home(&a->o);
		if (a->o.qlen)
			return br__mshot_pop(&a->o).res;
		if (a->fallback)
			return br_accept(a->lfd, NULL, NULL, 0);
		if (!a->o.armed) {
			struct io_uring_sqe *sqe = br__mshot_arm(&a->o);

			if (!sqe)
				return -EBUSY;
			io_uring_prep_multishot_accept(sqe, a->lfd, NULL, NULL,
						       SOCK_CLOEXEC);
		}
		err = br__mshot_wait(&a->o, t, has_conn, 1);
		if (err < 0)
			return err;
	}
}

static void release(struct br__mshot_obj *o)
{
	struct br_acceptor *a = (struct br_acceptor *)o;

	while (o->qlen) {
		int fd = br__mshot_pop(o).res;

		if (fd >= 0)
			close(fd);
	}
	a->magic = BR__MAGIC_DEAD;
	br__mshot_queue_free(o);
	br__quarantine_free(&freed, a);
}

void br_acceptor_free(br_acceptor *a)
{
	if (!a || a->magic != BR__MAGIC_ACCEPTOR)
		return;
	br__mshot_finish(&a->o, release);
}
