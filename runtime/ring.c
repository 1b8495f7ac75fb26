/* SPDX-License-Identifier: MIT */
/*
 * ring.c - each worker's io_uring: set-up, feature probes, parking inside
 * the ring wait, and wake-ups from other workers and plain threads.
 *
 * Design
 *   Every worker creates its own ring on its own thread with
 *   SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN when the kernel has them,
 *   dropping flags one step at a time when it does not. Parking is the
 *   ring wait itself (io_uring_submit_and_wait_timeout for one CQE, the
 *   earliest timer as the deadline): a parked worker sleeps in the same
 *   call that will later deliver its I/O completions, and needs no other
 *   blocking primitive.
 *
 *   A parked worker is woken by a CQE posted into its ring:
 *     - from another worker with a ring: IORING_OP_MSG_RING submitted on
 *       the waker's own ring (CQE_SKIP_SUCCESS, so the waker gets no CQE);
 *     - from a plain thread: IORING_REGISTER_SEND_MSG_RING (Linux 6.13+,
 *       a raw io_uring_register(-1, 31, sqe, 1) since liburing 2.3 has no
 *       wrapper), probed once per ring;
 *     - failing that, a write to an eventfd the ring always has a read
 *       pending on.
 *   A CQE, once posted, stays until reaped, so a wake-up sent before the
 *   target enters its wait is never lost (idle.c relies on this).
 *
 *   Without io_uring (old kernel, seccomp, io_uring_disabled, or
 *   BR_CONFIG_NO_URING) the worker parks in ppoll() on an eventfd, which
 *   wake writes, together with the fds its tasks wait on (io.c). The
 *   eventfd's count is sticky like a CQE, so no wake-up is lost either.
 *   BRAID_NO_SEND_MSG_RING=1 skips the ring-less wake-up probe, so tests
 *   can run the eventfd path on kernels that have it.
 *
 *   I/O: tasks prepare SQEs without submitting; br__ring_poll() submits
 *   them and collects completions in one io_uring_enter, and only when
 *   there is something to submit or the kernel has flagged pending
 *   completions (IORING_SQ_TASKRUN, asked for with TASKRUN_FLAG), so a
 *   busy loop pays two loads per poll point and no syscall.
 *
 *   Opcodes: one probe at set-up (IORING_REGISTER_PROBE) tells which of
 *   the operations newer than the ring itself the kernel has (MSG_RING,
 *   and the file-system calls io_fs.c otherwise runs on the blocking
 *   pool), so that no call has to fail first to find out.
 *
 *   Registered files: each ring has a sparse file table, set up with it,
 *   whose slots writers (writer.c) fill and empty with io_uring_register
 *   calls on the owner (SINGLE_ISSUER wants every call from there).
 *
 * Invariants
 *   - With the eventfd fallback, exactly one read of efd is in flight
 *     whenever the worker is not reaping.
 *
 * Concurrency
 *   - Everything but br__ring_wake(): the owning worker only (the ring is
 *     SINGLE_ISSUER).
 *   - br__ring_wake(): any thread. It reads ring_fd, efd and on, which
 *     are written before the worker reports itself started.
 *
 * Memory ordering
 *   - The fallback eventfd: the kernel orders the write against ppoll.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "braid.h"
#include "clock.h"
#include "io.h"
#include "ring.h"
#include "worker.h"

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif
#define BR__REGISTER_SEND_MSG_RING 31

static int send_msg_ring(int fd)
{
	struct io_uring_sqe sqe;

	memset(&sqe, 0, sizeof(sqe));
	io_uring_prep_msg_ring(&sqe, fd, 0, BR__UD_WAKE, 0);
	return (int)syscall(__NR_io_uring_register, -1,
			    BR__REGISTER_SEND_MSG_RING, &sqe, 1);
}

struct io_uring_sqe *br__ring_sqe(struct br__ring *r)
{
	struct io_uring_sqe *sqe;

	if (BR__FAULT("braid/ring/sqe"))
		return NULL;
	sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) {
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

int br__ring_cancel(struct br__worker *w, uint64_t ud)
{
	struct io_uring_sqe *sqe = br__ring_sqe(&w->ring);

	if (!sqe)
		return -EBUSY; /* the ring took no submission: ask again */
	io_uring_prep_cancel64(sqe, ud, 0);
	io_uring_sqe_set_data64(sqe, BR__UD_IGNORE);
	return 0;
}

static int ring_eventfd(int flags)
{
	if (BR__FAULT_ERRNO("braid/ring/eventfd", EMFILE))
		return -1;
	return eventfd(0, flags);
}

/* Keep a read pending on the wake-up eventfd. Without an SQE for it, the
 * park tries again, and waits at most BR__RING_REARM_NS until it has. */
static void arm_eventfd(struct br__ring *r)
{
	struct io_uring_sqe *sqe = br__ring_sqe(r);

	r->efd_unarmed = !sqe;
	if (!sqe)
		return;
	io_uring_prep_read(sqe, r->efd, &r->efd_buf, sizeof(r->efd_buf), 0);
	io_uring_sqe_set_data64(sqe, BR__UD_EVENTFD);
}

/* A sparse registered-file table (5.19+), and its free slots. Optional:
 * without it writers name their socket by fd. */
static void files_init(struct br__ring *r)
{
	struct rlimit rl;
	unsigned n = BR__FILES, i;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n)
		n = (unsigned)rl.rlim_cur;
	r->files_free = malloc(n * sizeof(*r->files_free));
	if (!r->files_free || !n ||
	    io_uring_register_files_sparse(&r->ring, n) < 0) {
		free(r->files_free);
		r->files_free = NULL;
		return;
	}
	for (i = 0; i < n; i++)
		r->files_free[i] = (int)(n - 1 - i); /* slot 0 on top */
	r->files_nfree = n;
	r->features |= BR_FEAT_FIXED_FILES;
}

int br__ring_file_add(struct br__worker *w, int fd)
{
	struct br__ring *r = &w->ring;
	int slot;

	if (!r->files_nfree)
		return -1;
	slot = r->files_free[r->files_nfree - 1];
	if (io_uring_register_files_update(&r->ring, (unsigned)slot, &fd, 1) !=
	    1)
		return -1;
	r->files_nfree--;
	return slot;
}

void br__ring_file_del(struct br__worker *w, int slot)
{
	struct br__ring *r = &w->ring;
	int none = -1;

	/* At once, not by an SQE: a later br__ring_file_add() of this slot
	 * must not race an update still waiting in the SQ. */
	if (io_uring_register_files_update(&r->ring, (unsigned)slot, &none,
					   1) == 1)
		r->files_free[r->files_nfree++] = slot;
	/* else leak the slot rather than hand it out full */
}

int br__ring_init(struct br__worker *w, unsigned entries, unsigned flags)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
			IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	struct br__ring *r = &w->ring;
	struct io_uring_probe *probe;
	unsigned i;
	int ret = -ENOSYS;

	memset(r, 0, sizeof(*r));
	r->efd = -1;
	if (!(flags & BR_CONFIG_NO_URING)) {
		for (i = 0; i < BR__ARRAY_SIZE(tries); i++) {
			ret = BR__FAULT("braid/ring/setup") ?
				      -ENOMEM :
				      io_uring_queue_init(entries, &r->ring,
							  tries[i]);
			/* ENOSYS, EPERM, ENOMEM: no ring at all */
			if (ret != -EINVAL)
				break;
		}
	}
	if (ret < 0 || (flags & BR_CONFIG_NO_URING)) {
		/* Without an eventfd either, parking polls every ms (io.c). */
		r->efd = ring_eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
		return flags & BR_CONFIG_NO_URING ? 0 : ret;
	}
	r->on = 1;
	r->features = BR_FEAT_URING;
	/* Enter by a registered index, not an fd (5.18+): saves the fd
	 * lookup on every io_uring_enter. Optional. */
	(void)io_uring_register_ring_fd(&r->ring);
	if (tries[i] & IORING_SETUP_SINGLE_ISSUER)
		r->features |= BR_FEAT_SINGLE_ISSUER;
	if (tries[i] & IORING_SETUP_DEFER_TASKRUN)
		r->features |= BR_FEAT_DEFER_TASKRUN;
	if (tries[i] & IORING_SETUP_COOP_TASKRUN)
		r->features |= BR_FEAT_COOP_TASKRUN;
	/* A kernel without the probe (before 5.6) has none of these. */
	probe = io_uring_get_probe_ring(&r->ring);
	if (probe) {
		if (io_uring_opcode_supported(probe, IORING_OP_MSG_RING))
			r->features |= BR_FEAT_MSG_RING;
		if (io_uring_opcode_supported(probe, IORING_OP_UNLINKAT))
			r->ops |= BR__OP_UNLINKAT;
		if (io_uring_opcode_supported(probe, IORING_OP_RENAMEAT))
			r->ops |= BR__OP_RENAMEAT;
		if (io_uring_opcode_supported(probe, IORING_OP_MKDIRAT))
			r->ops |= BR__OP_MKDIRAT;
		io_uring_free_probe(probe);
	}
	files_init(r);
	/* Probe the ring-less wake-up on ourselves; the CQE it posts is
	 * reaped as an ordinary wake-up at the first park. */
	if (!getenv("BRAID_NO_SEND_MSG_RING") &&
	    send_msg_ring(r->ring.ring_fd) >= 0)
		r->features |= BR_FEAT_SEND_MSG_RING;
	else {
		r->efd = ring_eventfd(EFD_CLOEXEC);
		if (r->efd < 0) {
			ret = -errno;
			io_uring_queue_exit(&r->ring);
			free(r->files_free);
			r->files_free = NULL;
			r->files_nfree = 0;
			r->on = 0;
			r->features = 0;
			r->ops = 0;
			r->efd = ring_eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
			return ret;
		}
		arm_eventfd(r);
		io_uring_submit(&r->ring);
	}
	return 0;
}

int br__ring_bufs(struct br__worker *w)
{
	struct br__ring *r = &w->ring;
	struct io_uring_buf_reg reg = { 0 };
	size_t ring_len = BR__BUF_COUNT * sizeof(struct io_uring_buf);
	unsigned i;
	int ret;

	if (r->bufs_state)
		return r->bufs_state > 0 ? 0 : r->bufs_state;
	if (!r->on)
		return r->bufs_state = -EOPNOTSUPP;
	/* The ring of buffer descriptors must be page aligned. */
	r->bufring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r->bufs = malloc((size_t)BR__BUF_COUNT * BR__BUF_SIZE);
	if (r->bufring == MAP_FAILED || !r->bufs) {
		ret = -ENOMEM;
		goto fail;
	}
	io_uring_buf_ring_init(r->bufring);
	reg.ring_addr = (uint64_t)(uintptr_t)r->bufring;
	reg.ring_entries = BR__BUF_COUNT;
	reg.bgid = 0;
	ret = io_uring_register_buf_ring(&r->ring, &reg, 0);
	if (ret < 0)
		goto fail; /* before 5.19: no ring-mapped provided buffers */
	for (i = 0; i < BR__BUF_COUNT; i++)
		io_uring_buf_ring_add(r->bufring, br__ring_buf(w, i),
				      BR__BUF_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(BR__BUF_COUNT),
				      (int)i);
	io_uring_buf_ring_advance(r->bufring, BR__BUF_COUNT);
	r->bufs_state = 1;
	return 0;
fail:
	if (r->bufring != MAP_FAILED && r->bufring)
		munmap(r->bufring, ring_len);
	free(r->bufs);
	r->bufring = NULL;
	r->bufs = NULL;
	return r->bufs_state = ret;
}

char *br__ring_buf(struct br__worker *w, unsigned bid)
{
	return w->ring.bufs + (size_t)bid * BR__BUF_SIZE;
}

void br__ring_buf_return(struct br__worker *w, unsigned bid)
{
	struct br__ring *r = &w->ring;

	io_uring_buf_ring_add(r->bufring, br__ring_buf(w, bid), BR__BUF_SIZE,
			      (unsigned short)bid,
			      io_uring_buf_ring_mask(BR__BUF_COUNT), 0);
	io_uring_buf_ring_advance(r->bufring, 1);
}

void br__ring_exit(struct br__worker *w)
{
	struct br__ring *r = &w->ring;

	if (r->on)
		io_uring_queue_exit(&r->ring);
	if (r->bufring)
		munmap(r->bufring, BR__BUF_COUNT * sizeof(struct io_uring_buf));
	free(r->bufs);
	free(r->files_free);
	r->bufring = NULL;
	r->bufs = NULL;
	r->files_free = NULL;
	r->files_nfree = 0;
	if (r->efd >= 0)
		close(r->efd);
	free(r->pfd);
	r->pfd = NULL;
	r->efd = -1;
	r->on = 0;
}

/* Dispatch one completion. Wake-ups carry no work: their only job was to
 * end the wait. */
static void complete(struct br__ring *r, uint64_t ud, int res, uint32_t flags)
{
	if (ud > BR__UD_IGNORE && (ud & BR__UD_MSHOT)) {
		struct br__mshot *m =
			(struct br__mshot *)(uintptr_t)(ud & ~BR__UD_MSHOT);

		m->cqe(m, res, flags);
		return;
	}
	if (ud > BR__UD_IGNORE) {
		br__io_complete((struct br__io *)(uintptr_t)ud, res, flags);
		return;
	}
	if (ud == BR__UD_EVENTFD)
		arm_eventfd(r);
}

void br__ring_reap(struct br__worker *w)
{
	struct br__ring *r = &w->ring;
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	if (!r->on)
		return;
	io_uring_for_each_cqe(&r->ring, head, cqe)
	{
		/* Copy out before the CQE is released (STYLE 4.3). */
		uint64_t ud = cqe->user_data;
		int res = cqe->res;
		uint32_t flags = cqe->flags;

		n++;
		complete(r, ud, res, flags);
	}
	io_uring_cq_advance(&r->ring, n);
}

void br__ring_poll(struct br__worker *w)
{
	struct br__ring *r = &w->ring;

	BR__ASSERT_OWNER(w);
	if (!r->on) {
		if (r->npollers)
			br__io_poll_fallback(w, 0, 1);
		return;
	}
	/* CQ_OVERFLOW: completions wait in the kernel's overflow list
	 * (the CQ was full); an enter moves them into the CQ. */
	if (io_uring_sq_ready(&r->ring) ||
	    (IO_URING_READ_ONCE(*r->ring.sq.kflags) &
	     (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)))
		io_uring_submit_and_get_events(&r->ring);
	br__ring_reap(w);
}

void br__ring_park(struct br__worker *w, int64_t deadline_ns)
{
	struct br__ring *r = &w->ring;
	struct __kernel_timespec ts, *tp = NULL;
	struct io_uring_cqe *cqe;
	int64_t rel = -1;

	if (deadline_ns >= 0) {
		rel = deadline_ns - br_now_ns();
		if (rel <= 0) {
			if (r->on)
				io_uring_submit(&r->ring);
			return;
		}
		ts = br__ns_to_kts(rel);
		tp = &ts;
	}
	if (!r->on) {
		br__io_poll_fallback(w, rel, 0);
		return;
	}
	if (r->efd_unarmed)
		arm_eventfd(r);
	if (r->efd_unarmed && (rel < 0 || rel > BR__RING_REARM_NS)) {
		/* A wake-up through the eventfd would be missed. */
		ts = br__ns_to_kts(BR__RING_REARM_NS);
		tp = &ts;
	}
	io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, tp, NULL);
}

void br__ring_wake(struct br__worker *w)
{
	struct br__ring *r = &w->ring;
	struct br__worker *me;
	struct io_uring_sqe *sqe;

	if (!r->on) {
		if (r->efd >= 0)
			eventfd_write(r->efd, 1);
		return;
	}
	me = br__worker_current();
	if (me && me != w && me->ring.on &&
	    (me->ring.features & BR_FEAT_MSG_RING)) {
		sqe = br__ring_sqe(&me->ring);
		if (sqe) {
			io_uring_prep_msg_ring(sqe, r->ring.ring_fd, 0,
					       BR__UD_WAKE, 0);
			io_uring_sqe_set_data64(sqe, BR__UD_WAKE);
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			io_uring_submit(&me->ring.ring);
			return;
		}
	}
	if ((r->features & BR_FEAT_SEND_MSG_RING) &&
	    send_msg_ring(r->ring.ring_fd) >= 0)
		return;
	if (r->efd >= 0)
		eventfd_write(r->efd, 1);
}
