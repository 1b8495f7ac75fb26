/* SPDX-License-Identifier: MIT */
/*
 * ring.h - each worker's io_uring: set-up and probing, parking inside the
 * ring wait, and waking a parked worker from anywhere. See ring.c.
 */
#ifndef BR_RING_H
#define BR_RING_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdint.h>

#include "clock.h"

struct br__worker;

/* CQE user_data of wake-up messages; real operations carry pointers. */
#define BR__UD_WAKE 1ull
#define BR__UD_EVENTFD 2ull
/* Linked timeouts and cancel requests: their CQEs carry nothing. */
#define BR__UD_IGNORE 3ull

struct br__io;
struct pollfd;

struct br__ring {
	struct io_uring ring;
	int on; /* ring set up; else the poll fallback */
	/* With a ring: an eventfd a read is always pending on, for wake-ups
	 * from plain threads when REGISTER_SEND_MSG_RING is missing; without:
	 * the eventfd parking polls; or -1. */
	int efd;
	unsigned features; /* BR_FEAT_* this ring got */
	unsigned ops;	   /* BR__OP_* its kernel has (probed at set-up) */
	uint64_t efd_buf;  /* the pending eventfd read's buffer */
	int efd_unarmed;   /* no SQE was had for that read: park arms it */
	/* Without a ring: tasks waiting for readiness (io.c), and ppoll's
	 * array. */
	struct br__io *pollers;
	unsigned npollers;
	struct pollfd *pfd;
	unsigned pfd_cap;
	/* Provided buffers for multishot recv (group 0), set up on first use;
	 * the owner only. */
	struct io_uring_buf_ring *bufring;
	char *bufs;
	int bufs_state; /* 0 untried, 1 on, < 0 the error */
	/* Registered-file slots not in use (a sparse table set up with the
	 * ring); the owner only. */
	int *files_free;
	unsigned files_nfree;
};

/* Opcodes newer than the ring itself that braid can do without (io_fs.c
 * runs their calls on the blocking pool instead): bits of br__ring.ops. */
#define BR__OP_UNLINKAT 0x1u /* Linux 5.11 */
#define BR__OP_RENAMEAT 0x2u /* Linux 5.11 */
#define BR__OP_MKDIRAT 0x4u  /* Linux 5.15 */

/* Registered-file slots per ring, at most (RLIMIT_NOFILE caps it). */
#define BR__FILES 4096

/* How long a park waits at most while its wake-up eventfd has no read
 * pending (no SQE was to be had): a missed wake-up costs this, not a
 * hang. */
#define BR__RING_REARM_NS BR__NS_PER_MS

/* Provided buffers: how many, and how big. */
#define BR__BUF_COUNT 512
#define BR__BUF_SIZE 4096

/*
 * br__ring_init - set up w's ring on w's own thread (SINGLE_ISSUER wants
 * the submitter to be the creator). On failure the ring stays off and the
 * worker parks on its futex; returns the reason (< 0) for the warning.
 */
int br__ring_init(struct br__worker *w, unsigned entries, unsigned flags);

/* Tear the ring down. Context: any thread, once no thread can wake w
 * any more (all workers joined). */
void br__ring_exit(struct br__worker *w);

/*
 * br__ring_park - submit what is queued and wait for a wake-up, a
 * completion, or deadline_ns (absolute CLOCK_MONOTONIC; < 0: none), in
 * one io_uring_enter. It does not reap: the caller does that once it no
 * longer counts as parked, or every task the completions wake would send
 * the worker a wake-up of its own (idle.c). Without a ring it waits in
 * ppoll() and likewise leaves the ready fds to the next poll. Context:
 * worker w.
 */
void br__ring_park(struct br__worker *w, int64_t deadline_ns);

/* Reap completions without waiting. Context: worker w. */
void br__ring_reap(struct br__worker *w);

/*
 * br__ring_poll - the loop's I/O poll point: submit what tasks prepared
 * and collect what the kernel finished, in one io_uring_enter, or none
 * when there is neither (two loads of shared ring words). Without a ring,
 * checks the readiness waiters. Context: worker w.
 */
void br__ring_poll(struct br__worker *w);

/*
 * br__ring_sqe - an SQE of r, submitting what is queued first if the SQ
 * is full; NULL only if it is still full after that. Context: r's owner.
 */
struct io_uring_sqe *br__ring_sqe(struct br__ring *r);

/* br__ring_cancel - ask the kernel to cancel the request carrying
 * user_data ud on w's ring; the cancel's own CQE is ignored. Worker w.
 * 0, or -EBUSY if the ring had no SQE for the cancel (nothing was asked;
 * the request runs on). */
int br__ring_cancel(struct br__worker *w, uint64_t ud);

/*
 * br__ring_bufs - set up w's provided-buffer ring (group 0) if it is not
 * yet. Returns 0, or a negative errno when the kernel or memory says no
 * (remembered: later calls fail at once). Context: worker w.
 */
int br__ring_bufs(struct br__worker *w);

/* Buffer bid of w's group, and giving it back to the kernel. Worker w. */
char *br__ring_buf(struct br__worker *w, unsigned bid);
void br__ring_buf_return(struct br__worker *w, unsigned bid);

/*
 * br__ring_file_add - register fd in a free slot of w's file table, for
 * requests with IOSQE_FIXED_FILE. Returns the slot, or -1 (no table, no
 * free slot, or the kernel refused fd). br__ring_file_del - empty slot
 * and free it; both are io_uring_register() calls. The file stays open
 * while registered. Worker w.
 */
int br__ring_file_add(struct br__worker *w, int fd);
void br__ring_file_del(struct br__worker *w, int slot);

/* Wake w if it is parked or about to park. Context: any thread. */
void br__ring_wake(struct br__worker *w);

#endif /* BR_RING_H */
