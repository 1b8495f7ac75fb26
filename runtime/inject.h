/* SPDX-License-Identifier: MIT */
/*
 * inject.h - the runtime's global injection queue. See inject.c.
 */
#ifndef BR_INJECT_H
#define BR_INJECT_H

#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"
#include "list.h"

struct br__task;

struct br__inject {
	/* A spin lock (futex.h): held for a few instructions, by a spawning
	 * thread or a worker, never across a call that can block. */
	BR__CACHE_ALIGNED _Atomic uint32_t lock;
	struct br__fifo q;    /* of tasks; protected by lock */
	_Atomic uint64_t len; /* lock-free emptiness check */
};

int br__inject_init(struct br__inject *q);
void br__inject_term(struct br__inject *q);
void br__inject_push(struct br__inject *q, struct br__task *t);
struct br__task *br__inject_pop(struct br__inject *q);

/* Queue-less reads: 1 if the queue looked non-empty. */
static inline int br__inject_nonempty(struct br__inject *q)
{
	/* seq_cst: the parking worker's re-check pairs with the pusher's
	 * fence in br__idle_notify(). */
	return atomic_load_explicit(&q->len, memory_order_seq_cst) != 0;
}

#endif /* BR_INJECT_H */
