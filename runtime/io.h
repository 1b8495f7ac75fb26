/* SPDX-License-Identifier: MIT */
/*
 * io.h - one I/O operation of a task, from submission to its final
 * completion. See io.c; the public calls are in io_ops.c and net.c.
 */
#ifndef BR_IO_H
#define BR_IO_H

#include <liburing.h>
#include <stdint.h>

struct br__fiber;
struct br__worker;

/* How an operation runs, as decided by br__io_start(). */
enum {
	BR__IO_RING = 0, /* prepare io->sqe, then br__io_wait() */
	BR__IO_SYS = 1,	 /* make the syscall now (plain thread, or ready) */
};

/*
 * An operation in flight. It lives on the calling task's stack, which
 * stays put until the final completion has been reaped, so the kernel
 * and the owner worker may point into it until then.
 */
struct br__io {
	struct br__worker *w;	 /* the worker whose ring owns it */
	struct br__task *task;	 /* the calling task */
	struct br__fiber *fiber; /* the waiting task's fiber */
	struct io_uring_sqe *sqe;
	uint64_t seq;	  /* the fiber's current suspension, for the owner */
	int64_t deadline; /* absolute CLOCK_MONOTONIC ns, or -1 */
	struct __kernel_timespec ts; /* the linked timeout's deadline */
	int res;		     /* the CQE's result, once done */
	uint32_t cqe_flags;
	short events;	     /* readiness wanted (poll fallback) */
	short revents;	     /* readiness seen (poll fallback) */
	int fd;		     /* for the poll fallback */
	uint8_t done;	     /* final completion reaped; owner thread only */
	uint8_t cancel_sent; /* ASYNC_CANCEL submitted; owner thread only */
	uint8_t nocancel;    /* a release (close): never cancelled */
	struct br__io *poll_next; /* the owner's fallback poll list */
};

/*
 * br__io_start - begin an operation on fd wanting readiness events
 * (POLLIN/POLLOUT; 0 for calls without one) with a timeout in ms (< 0:
 * the task's default). Returns BR__IO_RING with io->sqe ready to prepare
 * (it carries user_data already), BR__IO_SYS when the caller should make
 * the syscall now, or a negative error (-ETIMEDOUT, -ECANCELED,
 * BR_ENOTTASK) that the call returns as is. A plain thread with a
 * deadline has waited for the readiness events by then. A task on a
 * worker without a ring has not (br__io_nowait()). Context: any thread.
 */
int br__io_start(struct br__io *io, int fd, short events, int64_t timeout_ms);

/*
 * br__io_nowait - after br__io_start() gave BR__IO_SYS: 1 for a task on
 * a worker without a ring, whose call must not block the worker (make it
 * non-blocking, and on EAGAIN wait with br__io_ready()); 0 for a plain
 * thread, which makes the plain blocking call.
 */
static inline int br__io_nowait(const struct br__io *io)
{
	return io->task != NULL;
}

/*
 * br__io_ready - on a worker without a ring, after br__io_start() gave
 * BR__IO_SYS: wait on the loop until the fd is ready for events (POLLIN,
 * POLLOUT), within the call's deadline; an fd ready already is ready
 * even past it. Returns BR__IO_SYS, -ETIMEDOUT or -ECANCELED.
 * Context: the task that called br__io_start().
 */
int br__io_ready(struct br__io *io, short events);

/*
 * br__io_start_release - br__io_start() for an operation that lets go of
 * something (a close): a task cancelled before or during it still does
 * it, and waits for its completion without cancelling it in the kernel,
 * so that a cancelled task can release what it holds. No readiness and
 * no deadline. Context: any thread.
 */
int br__io_start_release(struct br__io *io, int fd);

/*
 * br__io_wait - submit the prepared SQE (batched with the tick's others)
 * and wait for its final completion. Returns the result as the call
 * reports it. Context: the task that called br__io_start().
 */
int br__io_wait(struct br__io *io);

/*
 * br__fd_stream - whether fd can carry a stream in the direction asked
 * (writing when write, else reading), as br_reader_new() and
 * br_writer_new() ask the kernel: 1 for a socket, 0 for anything else
 * open that way; -EBADF for a negative fd, one open only the other way
 * or a directory (nothing could ever go through it), or -errno.
 * Context: any thread.
 */
int br__fd_stream(int fd, int write);

/* A plain syscall's return in braid's convention: the count, or -errno
 * read after the call (a function argument would be read in any order). */
#define BR__SYS(call)                               \
	({                                          \
		long br__r_ = (long)(call);         \
		br__r_ < 0 ? (long)-errno : br__r_; \
	})

/*
 * A multishot operation's record: its CQEs carry (uintptr_t)m | 1 and go
 * to m->cqe on the owner thread. The record must outlive the last CQE
 * (the one without IORING_CQE_F_MORE).
 */
struct br__mshot {
	void (*cqe)(struct br__mshot *m, int res, uint32_t flags);
};

#define BR__UD_MSHOT 1ull /* low bit of a multishot record's user_data */

/* Called by the ring for a CQE whose user_data is an operation. Owner. */
void br__io_complete(struct br__io *io, int res, uint32_t flags);

/*
 * br__io_poll_fallback - without a ring: wait up to timeout_ns (< 0: until
 * a wake-up, 0: not at all) for w's readiness waiters and its wake-up
 * eventfd, then, if wake, wake the ready waiters. The park passes 0: it
 * only sleeps, and the poll point after it, once the worker no longer
 * counts as parked, wakes them (as the ring's park leaves the reaping).
 * Context: worker w.
 */
void br__io_poll_fallback(struct br__worker *w, int64_t timeout_ns, int wake);

#endif /* BR_IO_H */
