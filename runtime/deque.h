/* SPDX-License-Identifier: MIT */
/*
 * deque.h - per-worker work-stealing deque (Chase-Lev, C11 form).
 *
 * The owner pushes and pops at the bottom (LIFO, so fork-join work stays
 * hot in cache); thieves take from the top (the oldest, usually the
 * biggest piece of work). See deque.c for the algorithm and its
 * memory-ordering argument.
 */
#ifndef BR_DEQUE_H
#define BR_DEQUE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

struct br__deque_buf {
	int64_t mask;		    /* capacity - 1; capacity is 2^k */
	struct br__deque_buf *prev; /* retired buffer, freed at destroy */
	_Atomic(void *) slot[];	    /* relaxed: published by bottom */
};

struct br__deque {
	/* Thieves' side, on its own cache line. */
	BR__CACHE_ALIGNED _Atomic int64_t top;
	/* Owner's side. */
	BR__CACHE_ALIGNED _Atomic int64_t bottom;
	_Atomic(struct br__deque_buf *) buf;
};

/*
 * br__deque_init - make an empty deque with room for 2^log2cap items
 * before it grows. Returns 0 or -ENOMEM. Context: any thread, before the
 * deque is shared.
 */
BR__MUST_CHECK int br__deque_init(struct br__deque *dq, unsigned log2cap);

/*
 * br__deque_destroy - free the buffers, including retired ones. No
 * operation may be in progress. Items still inside are not touched.
 */
void br__deque_destroy(struct br__deque *dq);

/*
 * br__deque_push - add item (not NULL) at the bottom, doubling the buffer
 * when full. Returns 0 or -ENOMEM (the item was not added).
 * Context: owner only.
 */
BR__MUST_CHECK int br__deque_push(struct br__deque *dq, void *item);

/*
 * br__deque_pop - take the newest item, or NULL if empty.
 * Context: owner only.
 */
void *br__deque_pop(struct br__deque *dq);

/*
 * br__deque_steal - take the oldest item, or NULL if the deque looked
 * empty or another thief (or the owner) won the race for it.
 * Context: any thread; the owner too, for its oldest item (it is then
 * one more thief: it never pops at the same time).
 */
void *br__deque_steal(struct br__deque *dq);

/*
 * br__deque_peek - the newest item without taking it, or NULL if empty.
 * Context: owner only.
 */
void *br__deque_peek(struct br__deque *dq);

/*
 * br__deque_size - the number of items, exact for the owner, a snapshot
 * for anybody else. Context: any thread.
 */
int64_t br__deque_size(struct br__deque *dq);

#endif /* BR_DEQUE_H */
