/* SPDX-License-Identifier: MIT */
/*
 * idle.h - searching and parked accounting: the wake protocol. See idle.c.
 */
#ifndef BR_IDLE_H
#define BR_IDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

struct br_runtime;
struct br__worker;

struct br__idle {
	/* (unparked << 16) | searching, changed with seq_cst RMWs. */
	BR__CACHE_ALIGNED _Atomic uint32_t state;
	unsigned nworkers;
	pthread_mutex_t lock; /* protects sleepers[] and nsleepers */
	unsigned *sleepers;   /* ids of parked workers, a stack */
	unsigned nsleepers;
};

int br__idle_init(struct br__idle *idle, unsigned nworkers);
void br__idle_term(struct br__idle *idle);

/* Enter the searching state if fewer than half the workers search.
 * Returns 1 if the caller is now searching. Context: a worker. */
int br__idle_try_search(struct br__idle *idle);

/* Leave the searching state; if it was the last searcher and more work
 * is in sight, wake a parked worker to take over. Context: a searching
 * worker. */
void br__idle_stop_search(struct br_runtime *rt);

/* Park accounting: returns 1 if the caller was the last searcher, which
 * must then re-check every queue before sleeping. Context: worker w. */
int br__idle_park(struct br__idle *idle, struct br__worker *w);

/* After waking: 1 if w was notified (it is counted as searching), 0 if it
 * woke by itself (timer, I/O) and unparked itself. Context: worker w. */
int br__idle_unpark(struct br__idle *idle, struct br__worker *w);

/* New work was made visible: wake one parked worker if nobody searches.
 * remote: the work is not in the caller's own queues, so the check needs
 * a full fence (see idle.c). Context: any thread. */
void br__idle_notify(struct br_runtime *rt, int remote);

/* state's halves: the unparked count above, the searching count below. */
#define BR__IDLE_UNPARK_ONE (1u << 16)
#define BR__IDLE_SEARCH_MASK 0xffffu

/* Whether a notification seen in state s could wake anybody: nobody
 * searches and somebody is parked. */
static inline int br__idle_wants_notify(const struct br__idle *idle, uint32_t s)
{
	return !(s & BR__IDLE_SEARCH_MASK) &&
	       (s / BR__IDLE_UNPARK_ONE) < idle->nworkers;
}

#endif /* BR_IDLE_H */
