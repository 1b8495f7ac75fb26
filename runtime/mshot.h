/* SPDX-License-Identifier: MIT */
/*
 * mshot.h - what multishot ring operations share: an owner worker, a
 * waiting task, arming and cancelling. See mshot.c; used by acceptor.c
 * and reader.c, and by writer.c, whose sends are single-shot requests
 * re-armed from its CQE handler.
 */
#ifndef BR_MSHOT_H
#define BR_MSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include "io.h"

struct br__task;
struct br__worker;

/* One CQE's outcome, queued until the object's user takes it. */
struct br__mshot_res {
	int res;      /* the CQE's result */
	uint16_t bid; /* its provided buffer, when it carries one */
};

/*
 * Embedded first in a multishot object. Every field after set-up but w is
 * the owner's: touched only on the owner worker's thread. w is set once
 * (br__mshot_tie) and read anywhere.
 */
struct br__mshot_obj {
	struct br__mshot m;		/* first: CQEs carry its address */
	_Atomic(struct br__worker *) w; /* the owner, once tied */
	int armed;			/* the request is live in the kernel */
	int closing;		  /* being finished: handlers must not re-arm */
	struct br__fiber *waiter; /* a task in a wait, or NULL */
	uint64_t seq;
	struct br__mshot_res *q; /* CQE outcomes not yet taken, FIFO */
	unsigned qhead, qlen, qcap;
};

/* Queue a CQE's outcome (-ENOMEM if the queue cannot grow), take the
 * oldest (qlen > 0), free the queue. Owner. */
int br__mshot_push(struct br__mshot_obj *o, int res, uint16_t bid);
struct br__mshot_res br__mshot_pop(struct br__mshot_obj *o);
void br__mshot_queue_free(struct br__mshot_obj *o);

/* An SQE on the owner's ring carrying o's user_data; o becomes armed.
 * NULL if the ring is full even after a flush. Owner (o is tied). */
struct io_uring_sqe *br__mshot_arm(struct br__mshot_obj *o);

/* Account a CQE with flags: the request ended without F_MORE. Then wake
 * the waiter. Owner; call last in the CQE handler. */
void br__mshot_cqe_seen(struct br__mshot_obj *o, uint32_t flags);

/*
 * br__mshot_tie - make the calling task's worker o's owner unless o has
 * one (one compare-and-swap, so that first calls on two workers at once
 * agree), then move the task to the owner. Returns 0, or -EINVAL if the
 * owner is another runtime's. Task only, on a worker with a ring.
 */
int br__mshot_tie(struct br__mshot_obj *o);

/* Move the calling task to o's owner if it is elsewhere. Task only. */
void br__mshot_go_home(struct br__mshot_obj *o);

/*
 * br__mshot_wait - on the owner, suspend until cond(o) holds. Returns 0,
 * or when cancellable -ECANCELED if t is cancelled first, -ETIMEDOUT if
 * t's deadline scope passes first (-ENOMEM: no timer for it). A
 * cancellable wait (the API's) returns -EBUSY while another task waits
 * on o. Task only.
 */
int br__mshot_wait(struct br__mshot_obj *o, struct br__task *t,
		   int (*cond)(const struct br__mshot_obj *), int cancellable);

/*
 * br__mshot_on_worker - run fn(arg) as a task pinned to w (an object's
 * owner) and wait for it to end; *value gets its value. Returns 0 or
 * the task's error, or -ECANCELED / -ETIMEDOUT when the caller was
 * cancelled or its deadline scope passed (the task is cancelled then,
 * and still waited for). For plain threads (and other runtimes' tasks)
 * using an owned object.
 */
int br__mshot_on_worker(struct br__worker *w, void *(*fn)(void *), void *arg,
			void **value);

/*
 * br__mshot_finish - end o's request (ASYNC_CANCEL) and wait for its
 * last CQE, then call done(o), which frees it. From a task of the
 * owner's runtime it runs in place; from anywhere else as a task pinned
 * to the owner, awaited; done(o) runs on the owner too. If o was never
 * armed, done(o) runs at once.
 */
void br__mshot_finish(struct br__mshot_obj *o,
		      void (*done)(struct br__mshot_obj *o));

#endif /* BR_MSHOT_H */
