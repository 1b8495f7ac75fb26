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
 *   Like every ring operation, the acceptor's state is touched only on
 *   its owner: a task calling next() or free() from another worker moves
 *   there first (BR__AFTER_MOVE), so no lock is needed, and the no-lost-
 *   wake-up argument is io.c's: the waiter arms, then checks the queue;
 *   the owner queues, then wakes the recorded (fiber, seq), all on one
 *   thread.
 *
 *   Freeing cancels the multishot request (IORING_OP_ASYNC_CANCEL) and
 *   waits for its last CQE, because each CQE points at the acceptor;
 *   connections accepted but never taken are closed. From a plain thread
 *   that wait runs as a task pinned to the owner.
 *
 * Concurrency: all fields after creation, the owner worker only (magic
 * and lfd are read anywhere).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fiber.h"
#include "io.h"
#include "task.h"
#include "worker.h"

struct br_acceptor {
	struct br__mshot m; /* first: CQEs carry its address */
	uint32_t magic;
	int lfd;
	struct br__worker *w; /* the owner, once armed */
	int armed;	      /* the multishot request is live */
	int fallback;	      /* no multishot accept here: br_accept */
	int *q;		      /* accepted fds (or errors), FIFO */
	unsigned qhead, qlen, qcap;
	struct br__fiber *waiter; /* a task in next() or free() */
	uint64_t seq;
};

static int queue_push(struct br_acceptor *a, int v)
{
	if (a->qlen == a->qcap) {
		unsigned cap = a->qcap ? a->qcap * 2 : 16, i;
		int *q = malloc(cap * sizeof(*q));

		if (!q)
			return -ENOMEM;
		for (i = 0; i < a->qlen; i++)
			q[i] = a->q[(a->qhead + i) % a->qcap];
		free(a->q);
		a->q = q;
		a->qhead = 0;
		a->qcap = cap;
	}
	a->q[(a->qhead + a->qlen) % a->qcap] = v;
	a->qlen++;
	return 0;
}

static int queue_pop(struct br_acceptor *a)
{
	int v = a->q[a->qhead];

	a->qhead = (a->qhead + 1) % a->qcap;
	a->qlen--;
	return v;
}

/* A CQE of the multishot accept, on the owner. */
static void on_cqe(struct br__mshot *m, int res, uint32_t flags)
{
	struct br_acceptor *a = (struct br_acceptor *)m;

	if (!(flags & IORING_CQE_F_MORE)) {
		a->armed = 0;
		a->w->ring.inflight--;
	}
	if (res == -ECANCELED && !(flags & IORING_CQE_F_MORE))
		; /* our own cancellation (free) ended it */
	else if (res == -EINVAL && !(flags & IORING_CQE_F_MORE))
		a->fallback = 1; /* no multishot accept in this kernel */
	else if (queue_push(a, res) < 0 && res >= 0)
		close(res); /* out of memory: the client sees a reset */
	if (a->waiter)
		br__fiber_wake(a->waiter, a->seq);
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
	a->m.cqe = on_cqe;
	a->magic = BR__MAGIC_ACCEPTOR;
	a->lfd = lfd;
	*out = a;
	return 0;
}

static int acceptor_ok(const struct br_acceptor *a)
{
	return a && a->magic == BR__MAGIC_ACCEPTOR;
}

/* Arm the multishot accept on w. */
static void arm(struct br_acceptor *a, struct br__worker *w)
{
	struct io_uring *ring = &w->ring.ring;
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
		if (!sqe)
			return; /* cannot happen after a flush */
	}
	io_uring_prep_multishot_accept(sqe, a->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)a | BR__UD_MSHOT);
	a->w = w;
	a->armed = 1;
	w->ring.inflight++;
}

/*
 * Wait on the owner until cond(a) holds. Returns 0, or -ECANCELED when
 * cancellable and the task is cancelled first.
 */
static int wait_owner(struct br_acceptor *a, struct br__task *t,
		      int (*cond)(const struct br_acceptor *), int cancellable)
{
	struct br__fiber *f;
	uint64_t seq;

	for (;;) {
		struct br__worker *w = br__worker_current();

		if (a->w && w != a->w) {
			br__worker_move(w, w->fiber, a->w);
			continue;
		}
		a->waiter = NULL;
		f = w->fiber;
		seq = br__fiber_arm(f);
		if (cond(a)) {
			br__fiber_disarm(f, seq);
			return 0;
		}
		if (cancellable && br__task_cancel_pending(t)) {
			br__fiber_disarm(f, seq);
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		a->waiter = f;
		a->seq = seq;
		br__task_suspend(cancellable);
	}
}

static int has_conn(const struct br_acceptor *a)
{
	return a->qlen > 0 || !a->armed || a->fallback;
}

int br_acceptor_next(br_acceptor *a)
{
	struct br__task *t = br__task_current();
	struct br__worker *w;
	int err;

	if (!acceptor_ok(a))
		return a ? BR_EBADOBJ : -EINVAL;
	w = br__worker_current();
	if (!t || !w->ring.on || a->fallback)
		return br_accept(a->lfd, NULL, NULL, 0);
	if (a->w && a->w->rt != w->rt)
		return -EINVAL; /* armed by another runtime's task */
	if (br__task_cancel_pending(t)) {
		t->cancel_seen = 1;
		return -ECANCELED;
	}
	for (;;) {
		if (a->w && w != a->w) {
			br__worker_move(w, w->fiber, a->w);
			w = br__worker_current();
			continue;
		}
		if (a->qlen)
			return queue_pop(a);
		if (a->fallback)
			return br_accept(a->lfd, NULL, NULL, 0);
		if (!a->armed)
			arm(a, w);
		err = wait_owner(a, t, has_conn, 1);
		if (err < 0)
			return err;
		w = br__worker_current();
	}
}

static int disarmed(const struct br_acceptor *a)
{
	return !a->armed;
}

static void release(struct br_acceptor *a)
{
	while (a->qlen) {
		int fd = queue_pop(a);

		if (fd >= 0)
			close(fd);
	}
	a->magic = BR__MAGIC_DEAD;
	free(a->q);
	free(a);
}

/* On the owner: end the multishot request and wait for its last CQE. */
static void *cancel_and_free(void *arg)
{
	struct br_acceptor *a = arg;
	struct br__task *t = br__task_current();

	if (a->armed) {
		struct br__worker *w = a->w;
		struct io_uring_sqe *sqe;

		if (br__worker_current() != w) {
			br__worker_move(br__worker_current(),
					br__worker_current()->fiber, w);
		}
		sqe = io_uring_get_sqe(&w->ring.ring);
		if (!sqe) {
			io_uring_submit(&w->ring.ring);
			sqe = io_uring_get_sqe(&w->ring.ring);
		}
		if (sqe) {
			io_uring_prep_cancel64(
				sqe, (uint64_t)(uintptr_t)a | BR__UD_MSHOT, 0);
			io_uring_sqe_set_data64(sqe, BR__UD_IGNORE);
		}
		wait_owner(a, t, disarmed, 0);
	}
	release(a);
	return NULL;
}

void br_acceptor_free(br_acceptor *a)
{
	br_future *f;

	if (!acceptor_ok(a))
		return;
	if (!a->armed) {
		release(a);
		return;
	}
	if (br__task_current() && br__worker_current()->rt == a->w->rt) {
		cancel_and_free(a);
		return;
	}
	/* A plain thread (or another runtime): do it as a task on the
	 * owner, and wait. */
	f = br_spawn_on(a->w->rt, a->w->id, cancel_and_free, a);
	br_await(f, NULL);
	br_future_release(f);
}
