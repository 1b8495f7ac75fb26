/* SPDX-License-Identifier: MIT */
/*
 * mshot.h - what multishot ring operations share: an owner worker, a
 * waiting task, arming and cancelling. See mshot.c; used by acceptor.c
 * and reader.c.
 */
#ifndef BR_MSHOT_H
#define BR_MSHOT_H

#include <stdint.h>

#include "io.h"

struct br__task;
struct br__worker;

/*
 * Embedded first in a multishot object. Every field after set-up is the
 * owner's: touched only on the owner worker's thread.
 */
struct br__mshot_obj {
	struct br__mshot m;	  /* first: CQEs carry its address */
	struct br__worker *w;	  /* the owner, once first armed */
	int armed;		  /* the request is live in the kernel */
	struct br__fiber *waiter; /* a task in a wait, or NULL */
	uint64_t seq;
};

/* An SQE on w's ring carrying o's user_data; o becomes armed, owned by
 * w. NULL if the ring is full even after a flush. Owner (or first). */
struct io_uring_sqe *br__mshot_arm(struct br__mshot_obj *o,
				   struct br__worker *w);

/* Account a CQE with flags: the request ended without F_MORE. Then wake
 * the waiter. Owner; call last in the CQE handler. */
void br__mshot_cqe_seen(struct br__mshot_obj *o, uint32_t flags);

/* Move the calling task to o's owner if it is elsewhere. Task only. */
void br__mshot_go_home(struct br__mshot_obj *o);

/*
 * br__mshot_wait - on the owner, suspend until cond(o) holds. Returns 0,
 * or -ECANCELED when cancellable and t is cancelled first. Task only.
 */
int br__mshot_wait(struct br__mshot_obj *o, struct br__task *t,
		   int (*cond)(const struct br__mshot_obj *), int cancellable);

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
