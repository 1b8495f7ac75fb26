/* SPDX-License-Identifier: MIT */
/*
 * io.c - a task's I/O operation: submission through its worker's ring,
 * the wait for the final completion, cancellation, deadlines, and the
 * readiness fallback for workers without a ring.
 *
 * Design
 *   An operation is a struct br__io on the calling task's stack. The task
 *   prepares one SQE (two with a deadline: the operation linked to an
 *   IORING_OP_LINK_TIMEOUT) on the ring of the worker it runs on, the
 *   owner, and suspends without submitting: the owner submits everything
 *   prepared during a tick with one io_uring_enter at its next poll point
 *   (worker.c: before stealing, every 61st tick, and the park itself; and
 *   br__yield_to_loop, from a task that keeps busy).
 *   The CQE's user_data is the br__io; the owner reaps it, stores the
 *   result, sets done and wakes the fiber for the suspension recorded in
 *   io->seq. The woken task then runs wherever the scheduler puts it.
 *
 *   Rings are SINGLE_ISSUER and completions arrive only on the owner
 *   (DEFER_TASKRUN), so every decision about an operation is taken on the
 *   owner thread: the wait loop re-arms and checks done only while it
 *   runs there. A task woken for another reason while its operation is in
 *   flight (a cancellation request wakes whatever suspension a fiber is
 *   in) may have been resumed on another worker; it moves itself back to
 *   the owner first (BR__AFTER_MOVE, through the owner's remote queue).
 *
 *   Cancellation: on the owner, a task that finds its cancel flag set
 *   submits IORING_OP_ASYNC_CANCEL keyed by the br__io and goes on
 *   waiting, now ignoring further requests, for the final CQE: the
 *   operation's buffer is on the task's stack and the kernel may write it
 *   until then. The call returns the CQE's result: -ECANCELED, or the real
 *   result if the operation won the race. A cancelled operation that had
 *   a deadline and was not cancelled by braid timed out: -ETIMEDOUT (as
 *   is one that an io-wq thread was blocked in, which the timeout's
 *   cancellation interrupts: -EINTR once the deadline has passed). The
 *   deadline is the nearer of the call's own (its timeout, or the task's
 *   br_io_timeout) and the task's deadline scope's (deadline.c).
 *   A release (br_close, br__io_start_release) is never cancelled and
 *   has no deadline, not even a scope's: it starts in a task already
 *   cancelled and waits out its completion without waking for
 *   cancellation requests, since a cancelled task must still be able to
 *   let go of its descriptors (a close cancelled in the kernel before it
 *   ran would leave the fd open).
 *
 *   No lost completion: done is written and read only on the owner
 *   thread, so the waiter's "arm, then check done" and the owner's "set
 *   done, then wake the recorded seq" are ordered by program order on
 *   that thread. The fiber is either suspended with io->seq current (the
 *   wake-up succeeds), queued or moving (its wake word is NOTIFIED for an
 *   older seq, the wake-up fails harmlessly, and it will see done when it
 *   next runs on the owner), or running on the owner (impossible while
 *   the owner reaps: it reaps between tasks, or from a task with no
 *   operation in flight, br__yield_to_loop).
 *
 *   Without a ring the loop waits for readiness instead: the task
 *   registers (fd, events) with its worker, which ppoll()s them together
 *   with its wake-up eventfd when it parks (only to sleep until one is
 *   ready) and without waiting at its poll points, which wake the ready
 *   ones; once the fd is ready, the task makes the syscall itself. The
 *   transfers try the call first (io_ops.c makes it one that cannot
 *   block) and wait only when it says EAGAIN (br__io_ready). Calls with
 *   no readiness notion run as plain syscalls.
 *
 *   A plain thread makes the syscall itself; with a deadline, it first
 *   poll()s for readiness until then, a day at most per poll() (which
 *   takes an int of ms) so that a deadline months away is still kept.
 *
 * Invariants
 *   - An operation's br__io stays valid until done is set: its task is
 *     suspended in br__io_wait() the whole time.
 *
 * Concurrency
 *   - Everything in a br__io after br__io_start(): the owner worker only
 *     (the waiting task runs there whenever it touches it).
 *   - The fallback poll list: the owner only.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "clock.h"
#include "fiber.h"
#include "io.h"
#include "task.h"
#include "worker.h"

/* The calling plain thread's br_io_timeout(). */
static __thread int64_t thread_io_timeout = -1;

int64_t br_io_timeout(int64_t timeout_ms)
{
	struct br__task *t = br__task_current();
	int64_t *slot = t ? &t->io_timeout : &thread_io_timeout;
	int64_t old = *slot;

	*slot = timeout_ms < 0 ? -1 : timeout_ms;
	return old;
}

/* ---- the readiness fallback ---- */

static void poll_unlink(struct br__ring *r, struct br__io *io)
{
	struct br__io **pp;

	for (pp = &r->pollers; *pp; pp = &(*pp)->poll_next)
		if (*pp == io) {
			*pp = io->poll_next;
			r->npollers--;
			return;
		}
}

/* Wait on the loop until fd is ready for io->events, the deadline passes
 * or the task is cancelled. Returns BR__IO_SYS or the error. */
static int wait_ready(struct br__io *io, struct br__task *t);

int br__io_ready(struct br__io *io, short events)
{
	struct br__task *t = br__task_current();

	if (br__task_cancel_pending(t)) {
		t->cancel_seen = 1;
		return -ECANCELED;
	}
	io->events = events;
	return wait_ready(io, t);
}

static int wait_ready(struct br__io *io, struct br__task *t)
{
	struct br__worker *w = br__worker_current();
	struct pollfd p = { .fd = io->fd, .events = io->events };
	struct br__timer *tm = NULL;
	uint64_t seq;
	int err = 0, n;

	/* Ready already (or a bad fd, which the syscall will report). A
	 * look that failed (an interruption) is no answer: the loop's own
	 * poll tells. */
	n = poll(&p, 1, 0);
	if (n > 0 || (n < 0 && errno != EINTR))
		return BR__IO_SYS;
	io->w = w;
	io->fiber = br__worker_fiber(w);
	io->revents = 0;
	io->poll_next = w->ring.pollers;
	w->ring.pollers = io;
	w->ring.npollers++;
	for (;;) {
		br__worker_go(io->w);
		w = io->w;
		seq = br__fiber_arm(io->fiber);
		io->seq = seq;
		if (io->revents)
			break;
		if (br__task_cancel_pending(t)) {
			t->cancel_seen = 1;
			err = -ECANCELED;
			break;
		}
		if (io->deadline >= 0 && br_now_ns() >= io->deadline) {
			err = -ETIMEDOUT;
			break;
		}
		if (io->deadline >= 0) {
			tm = br__timer_wake_at(w, io->deadline, io->fiber, seq);
			if (!tm) {
				err = -ENOMEM;
				break;
			}
		}
		br__task_suspend(1);
		if (tm) {
			br__timer_cancel(br__worker_current(), tm);
			tm = NULL;
		}
	}
	br__fiber_disarm(io->fiber, seq);
	if (!io->revents)
		poll_unlink(&w->ring, io);
	return err ? err : BR__IO_SYS;
}

void br__io_poll_fallback(struct br__worker *w, int64_t timeout_ns, int wake)
{
	struct br__ring *r = &w->ring;
	struct timespec ts, *tp = NULL;
	struct br__io *io, **pp;
	unsigned n = r->npollers + 1, i;
	uint64_t v;

	if (n > r->pfd_cap) {
		struct pollfd *p = realloc(r->pfd, n * sizeof(*p));

		if (!p)
			return; /* retried at the next poll point */
		r->pfd = p;
		r->pfd_cap = n;
	}
	r->pfd[0] = (struct pollfd){ .fd = r->efd, .events = POLLIN };
	for (i = 1, io = r->pollers; io; io = io->poll_next, i++)
		r->pfd[i] =
			(struct pollfd){ .fd = io->fd, .events = io->events };
	/* No eventfd (out of fds at start-up): a wake-up is seen within a
	 * millisecond instead. */
	if (r->efd < 0 && (timeout_ns < 0 || timeout_ns > BR__NS_PER_MS))
		timeout_ns = BR__NS_PER_MS;
	if (timeout_ns >= 0) {
		ts = br__ns_to_ts(timeout_ns);
		tp = &ts;
	}
	if (ppoll(r->pfd, n, tp, NULL) <= 0)
		return;
	if (r->efd >= 0 && r->pfd[0].revents)
		(void)eventfd_read(r->efd, &v);
	if (!wake)
		return;
	/* The list is in pfd order; ready waiters leave it and are woken. */
	for (i = 1, pp = &r->pollers; *pp; i++) {
		io = *pp;
		if (!r->pfd[i].revents) {
			pp = &io->poll_next;
			continue;
		}
		io->revents = r->pfd[i].revents;
		*pp = io->poll_next;
		r->npollers--;
		br__fiber_wake(io->fiber, io->seq);
	}
}

/* ---- plain threads ---- */

/*
 * The longest poll() of a plain thread, a day. poll() takes an int of
 * milliseconds, about 24.8 days at most, and a deadline may be up to a
 * century away (clock.h): a longer wait is made of polls of at most
 * this long, each followed by a look at the clock, so that it never
 * passes poll() -1 (forever) or a wrapped count for a finite deadline.
 */
#define POLL_SLICE_MS (24 * 60 * 60 * 1000)

/* Wait until fd is ready for events or the deadline dl (>= 0) passes.
 * poll()'s count: 1 ready, 0 once dl has passed; or -errno. */
static int poll_until(int fd, short events, int64_t dl)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left;
	int ms, n;

	do {
		left = dl - br_now_ns();
		if (left <= 0)
			ms = 0;
		else if (left >= POLL_SLICE_MS * BR__NS_PER_MS)
			ms = POLL_SLICE_MS;
		else
			ms = (int)((left + BR__NS_PER_MS - 1) / BR__NS_PER_MS);
		n = poll(&p, 1, ms);
		if (n < 0)
			return -errno;
	} while (n == 0 && left > 0);
	return n;
}

/* ---- the ring ---- */

static int start(struct br__io *io, int fd, short events, int64_t timeout_ms,
		 int nocancel)
{
	struct br__task *t = br__task_current();
	struct br__worker *w;
	struct io_uring *ring;
	io->task = t;
	io->nocancel = (uint8_t)nocancel;
	if (!t) {
		int64_t dl;

		if (br__worker_current())
			return BR_ENOTTASK; /* a loop callback */
		if (timeout_ms < 0)
			timeout_ms = thread_io_timeout;
		dl = br__deadline_min(br__deadline_ms(timeout_ms),
				      br__thread_dl.deadline);
		if (dl >= 0 && events) {
			int n = poll_until(fd, events, dl);

			if (n == 0)
				return -ETIMEDOUT;
			if (n < 0)
				return n;
		}
		return BR__IO_SYS;
	}
	if (!nocancel && br__task_cancel_pending(t)) {
		t->cancel_seen = 1;
		return -ECANCELED;
	}
	/* The nearer of the call's own deadline and the task's scope's:
	 * br_io_timeout() is a scope around each single call. A release
	 * has none. */
	io->deadline =
		nocancel ?
			-1 :
			br__deadline_min(br__deadline_ms(timeout_ms >= 0 ?
								 timeout_ms :
								 t->io_timeout),
					 t->dl.deadline);
	io->fd = fd;
	io->events = events;
	w = br__worker_current();
	if (!w->ring.on)
		return BR__IO_SYS; /* the caller tries, then br__io_ready() */
	ring = &w->ring.ring;
	/* Room for the operation and its linked timeout in one batch: a
	 * link must not be split across submissions. */
	if (io_uring_sq_space_left(ring) < 2)
		io_uring_submit(ring);
	io->sqe = BR__FAULT("braid/ring/sqe") ? NULL : io_uring_get_sqe(ring);
	if (!io->sqe)
		return -EBUSY; /* not reached: entries >= 2 after a flush */
	io->w = w;
	io->fiber = br__worker_fiber(w);
	io->done = 0;
	io->cancel_sent = 0;
	io->res = 0;
	io->cqe_flags = 0;
	return BR__IO_RING;
}

int br__io_start(struct br__io *io, int fd, short events, int64_t timeout_ms)
{
	return start(io, fd, events, timeout_ms, 0);
}

int br__io_start_release(struct br__io *io, int fd)
{
	return start(io, fd, 0, -1, 1);
}

/* Ask the kernel to cancel io. On the owner. 0, or -EBUSY if no SQE
 * could carry the cancel: then nothing was asked, and the caller must
 * ask again, or a request that never completes by itself (a read of a
 * silent peer) keeps its task waiting for good. */
static int cancel_in_kernel(struct br__io *io)
{
	if (br__ring_cancel(io->w, (uint64_t)(uintptr_t)io) < 0)
		return -EBUSY;
	io->cancel_sent = 1;
	return 0;
}

int br__io_wait(struct br__io *io)
{
	struct br__task *t = br__task_current();
	struct br__worker *w = io->w;
	struct io_uring_sqe *lt;
	uint64_t seq;
	int64_t t0 = br__obs_clock(&w->obs);
	unsigned op = t0 ? io->sqe->opcode : 0;
	int res;

	io_uring_sqe_set_data(io->sqe, io);
	if (io->deadline >= 0) {
		io->sqe->flags |= IOSQE_IO_LINK;
		io->ts = br__ns_to_kts(io->deadline);
		lt = io_uring_get_sqe(&w->ring.ring); /* room: br__io_start */
		io_uring_prep_link_timeout(lt, &io->ts, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(lt, BR__UD_IGNORE);
	}
	br__stat_add(&w->obs, BR__ST_IO_SUBMITTED, 1);
	for (;;) {
		br__worker_go(io->w);
		w = io->w;
		seq = br__fiber_arm(io->fiber);
		if (io->done) {
			br__fiber_disarm(io->fiber, seq);
			break;
		}
		if (!io->cancel_sent && !io->nocancel &&
		    br__task_cancel_pending(t)) {
			br__fiber_disarm(io->fiber, seq);
			if (cancel_in_kernel(io) < 0) {
				/* Let the loop submit and reap, then ask
				 * again; io's completion, if it comes
				 * meanwhile, is seen at the top. */
				br__worker_leave(w, br__worker_fiber(w),
						 BR__AFTER_YIELD, 0);
			}
			continue;
		}
		io->seq = seq;
		br__task_suspend(!io->cancel_sent && !io->nocancel);
	}
	br__obs_span(&io->w->obs, BR__TR_IO, t0, op);
	res = io->res;
	if (io->cancel_sent) {
		if (res == -ECANCELED || res == -EINTR) {
			res = -ECANCELED;
			t->cancel_seen = 1;
		}
	} else if (io->deadline >= 0 &&
		   (res == -ECANCELED ||
		    (res == -EINTR && br_now_ns() >= io->deadline))) {
		/* The linked timeout cancelled it: before it ran, or while
		 * an io-wq thread blocked in it (a connect waiting for a
		 * full backlog), which the cancellation interrupts. */
		res = -ETIMEDOUT;
	}
	return res;
}

void br__io_complete(struct br__io *io, int res, uint32_t flags)
{
	struct br__fiber *f = io->fiber;
	uint64_t seq = io->seq;

	io->res = res;
	io->cqe_flags = flags;
	br__stat_add(&io->w->obs, BR__ST_IO_COMPLETED, 1);
	io->done = 1; /* from here io may be gone once f runs */
	br__fiber_wake(f, seq);
}

/* ---- descriptors for streams ---- */

int br__fd_stream(int fd, int write)
{
	struct stat st;
	int fl;

	if (fd < 0)
		return -EBADF;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fstat(fd, &st) < 0)
		return -errno;
	if ((fl & O_ACCMODE) == (write ? O_RDONLY : O_WRONLY) ||
	    S_ISDIR(st.st_mode))
		return -EBADF;
	return S_ISSOCK(st.st_mode);
}
