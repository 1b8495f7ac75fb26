/* SPDX-License-Identifier: MIT */
/*
 * inject.c - the global injection queue: tasks spawned or woken from
 * outside the runtime's workers.
 *
 * Design
 *   A mutex-protected FIFO of intrusive task links, with an atomic length read
 *   without the lock, as Tokio's scheduler/inject.rs. Workers look at it every
 *   61st tick (worker.c) (so outside submissions never starve behind local
 *   work) and whenever their own queues are empty. It is not on any hot path
 *   of task-to-task work, which stays in the per-worker deques.
 *
 * Invariants
 *   - len equals the number of linked tasks whenever lock is free.
 *
 * Concurrency
 *   - push: any thread; pop: workers. The FIFO q under lock.
 *
 * Memory ordering
 *   - The mutex orders the links. len is changed with seq_cst under the
 *     lock and read seq_cst by br__inject_nonempty(), the read a parking
 *     worker's re-check uses (see idle.c).
 */
#include "inject.h"
#include "task.h"

int br__inject_init(struct br__inject *q)
{
	q->q.head = q->q.tail = NULL;
	atomic_init(&q->len, 0);
	return -pthread_mutex_init(&q->lock, NULL);
}

void br__inject_term(struct br__inject *q)
{
	pthread_mutex_destroy(&q->lock);
}

void br__inject_push(struct br__inject *q, struct br__task *t)
{
	pthread_mutex_lock(&q->lock);
	br__task_fifo_push(&q->q, t);
	/* seq_cst: read by the parker's re-check; see idle.c. */
	atomic_fetch_add_explicit(&q->len, 1, memory_order_seq_cst);
	pthread_mutex_unlock(&q->lock);
}

struct br__task *br__inject_pop(struct br__inject *q)
{
	struct br__task *t;

	/* Relaxed: only a hint; the lock orders the real check. */
	if (!atomic_load_explicit(&q->len, memory_order_relaxed))
		return NULL;
	pthread_mutex_lock(&q->lock);
	t = br__task_fifo_pop(&q->q);
	if (t)
		atomic_fetch_sub_explicit(&q->len, 1, memory_order_seq_cst);
	pthread_mutex_unlock(&q->lock);
	return t;
}
