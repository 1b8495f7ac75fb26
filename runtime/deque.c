/* SPDX-License-Identifier: MIT */
/*
 * deque.c - per-worker work-stealing deque of runnable tasks.
 *
 * Design
 *   Chase-Lev in the C11 form of Le, Pop, Cohen and Zappa Nardelli
 *   (PPoPP 2013). The owner pushes and pops at the bottom without any
 *   read-modify-write except when one item is left; thieves take one item
 *   at a time from the top with a CAS. Fork-join work wants this shape:
 *   the owner's newest child stays hot, a thief takes the oldest (usually
 *   the largest) piece. Tokio's and Go's bounded FIFO rings lose here:
 *   their owner pops the oldest item, which breaks the "await the child
 *   you just spawned" pattern that lets br_await() run a child inline.
 *   Thieves wanting half a queue call br__deque_steal() repeatedly: a
 *   batched CAS of top past several items is unsafe against the owner's
 *   fence-only pop (the owner may take an item the batch also covers).
 *
 * Invariants
 *   - top <= bottom + 1 at all times; items live in [top, bottom).
 *   - Indices are signed 64-bit and never wrap in practice.
 *   - A buffer replaced by growth stays readable until br__deque_destroy(),
 *     because a thief may still be reading a slot of it.
 *
 * Concurrency
 *   - br__deque_push(), br__deque_pop(): owner only.
 *   - br__deque_steal(): any thread, the owner included (worker.c takes
 *     its oldest item so now and then), since it never pops meanwhile.
 *
 * Memory ordering
 *   - push: the slot store (relaxed) is published by the release store of
 *     bottom; a thief's acquire load of bottom pairs with it.
 *   - pop: bottom is decremented with a seq_cst exchange and top read
 *     seq_cst, so the owner and a thief cannot both miss each other's
 *     claim on the last item; the paper uses a standalone seq_cst fence,
 *     which TSan does not model, and the exchange costs the same on x86.
 *   - steal: top is read seq_cst before bottom (seq_cst) so the pair is
 *     ordered against the owner's exchange; the slot is read before the
 *     CAS on top (seq_cst), which validates it.
 *   - buf is published with release (growth) and read with acquire by
 *     thieves, so a thief sees the copied slots of a new buffer.
 *
 * Lifetime
 *   Buffers are malloc'd by init and growth and chained through prev;
 *   destroy frees the chain.
 */
#include <errno.h>
#include <stdlib.h>

#include "deque.h"

static struct br__deque_buf *buf_new(int64_t cap, struct br__deque_buf *prev)
{
	struct br__deque_buf *b;

	b = malloc(sizeof(*b) + (size_t)cap * sizeof(b->slot[0]));
	if (!b)
		return NULL;
	b->mask = cap - 1;
	b->prev = prev;
	return b;
}

int br__deque_init(struct br__deque *dq, unsigned log2cap)
{
	struct br__deque_buf *b = buf_new((int64_t)1 << log2cap, NULL);

	if (!b)
		return -ENOMEM;
	atomic_init(&dq->top, 0);
	atomic_init(&dq->bottom, 0);
	atomic_init(&dq->buf, b);
	return 0;
}

void br__deque_destroy(struct br__deque *dq)
{
	struct br__deque_buf *b =
		atomic_load_explicit(&dq->buf, memory_order_relaxed);

	while (b) {
		struct br__deque_buf *prev = b->prev;

		free(b);
		b = prev;
	}
	atomic_store_explicit(&dq->buf, NULL, memory_order_relaxed);
}

static BR__COLD struct br__deque_buf *
grow(struct br__deque *dq, struct br__deque_buf *old, int64_t t, int64_t b)
{
	struct br__deque_buf *nb = buf_new((old->mask + 1) * 2, old);
	int64_t i;

	if (!nb)
		return NULL;
	for (i = t; i < b; i++) {
		void *x = atomic_load_explicit(&old->slot[i & old->mask],
					       memory_order_relaxed);

		atomic_store_explicit(&nb->slot[i & nb->mask], x,
				      memory_order_relaxed);
	}
	/* Release: pairs with the acquire load of buf in steal(). */
	atomic_store_explicit(&dq->buf, nb, memory_order_release);
	return nb;
}

int br__deque_push(struct br__deque *dq, void *item)
{
	int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
	/* Acquire: pairs with the thieves' CAS on top, so a slot a thief
	 * has taken is not overwritten before it read it. */
	int64_t t = atomic_load_explicit(&dq->top, memory_order_acquire);
	struct br__deque_buf *a =
		atomic_load_explicit(&dq->buf, memory_order_relaxed);

	if (br__unlikely(b - t > a->mask)) {
		a = grow(dq, a, t, b);
		if (!a)
			return -ENOMEM;
	}
	atomic_store_explicit(&a->slot[b & a->mask], item,
			      memory_order_relaxed);
	/* Release: publishes the slot; pairs with steal()'s load of
	 * bottom. */
	atomic_store_explicit(&dq->bottom, b + 1, memory_order_release);
	return 0;
}

void *br__deque_pop(struct br__deque *dq)
{
	int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
	int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);
	struct br__deque_buf *a;
	void *x;

	/* Empty for sure (top only grows): skip the exchange. */
	if (b <= t)
		return NULL;
	a = atomic_load_explicit(&dq->buf, memory_order_relaxed);
	b = b - 1;
	/* seq_cst: orders the claim of slot b before the load of top;
	 * pairs with steal()'s seq_cst loads of top and bottom. */
	atomic_exchange_explicit(&dq->bottom, b, memory_order_seq_cst);
	t = atomic_load_explicit(&dq->top, memory_order_seq_cst);
	if (t > b) {
		/* A thief took the last item meanwhile. */
		atomic_store_explicit(&dq->bottom, b + 1, memory_order_relaxed);
		return NULL;
	}
	x = atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
	if (t == b) {
		/* Last item: race the thieves for it on top. */
		if (!atomic_compare_exchange_strong_explicit(
			    &dq->top, &t, t + 1, memory_order_seq_cst,
			    memory_order_relaxed))
			x = NULL;
		atomic_store_explicit(&dq->bottom, b + 1, memory_order_relaxed);
	}
	return x;
}

void *br__deque_steal(struct br__deque *dq)
{
	/* seq_cst pair: see the header's memory-ordering notes. */
	int64_t t = atomic_load_explicit(&dq->top, memory_order_seq_cst);
	int64_t b = atomic_load_explicit(&dq->bottom, memory_order_seq_cst);
	struct br__deque_buf *a;
	void *x;

	if (t >= b)
		return NULL;
	/* Acquire: pairs with grow()'s release store of buf. */
	a = atomic_load_explicit(&dq->buf, memory_order_acquire);
	x = atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
	/* seq_cst CAS: claims slot t; pairs with pop()'s exchange. */
	if (!atomic_compare_exchange_strong_explicit(&dq->top, &t, t + 1,
						     memory_order_seq_cst,
						     memory_order_relaxed))
		return NULL;
	return x;
}

int64_t br__deque_size(struct br__deque *dq)
{
	int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
	int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);

	return b > t ? b - t : 0;
}

void *br__deque_peek(struct br__deque *dq)
{
	int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
	int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);
	struct br__deque_buf *a;

	if (b <= t)
		return NULL;
	a = atomic_load_explicit(&dq->buf, memory_order_relaxed);
	return atomic_load_explicit(&a->slot[(b - 1) & a->mask],
				    memory_order_relaxed);
}
