/* SPDX-License-Identifier: MIT */
/*
 * inject.c - the global injection queue: tasks spawned or woken from
 * outside the runtime's workers.
 *
 * Design
 *   A FIFO of intrusive task links under a spin lock, with an atomic length
 *   read without the lock, as Tokio's scheduler/inject.rs. The lock is held
 *   for a few instructions; a pthread mutex there sent a storm's spawning
 *   thread and both workers into futex waits (docs/ARCHITECTURE.md,
 *   "Spawn storms"). Workers look at it every 61st tick (worker.c), so
 *   outside submissions never starve behind local work, and whenever
 *   their own queues are empty. It is not on any hot path
 *   of task-to-task work, which stays in the per-worker deques.
 *
 * Invariants
 *   - len equals the number of linked tasks whenever lock is free.
 *
 * Concurrency
 *   - push: any thread; pop: workers. The FIFO q under lock.
 *
 * Memory ordering
 *   - The lock orders the links (acquire and release, futex.h). len is
 *     changed with seq_cst under the lock and read seq_cst by
 *     br__inject_nonempty(), the read a parking worker's re-check uses
 *     (see idle.c).
 */
#include "futex.h"
#include "inject.h"
#include "task.h"

int br__inject_init(struct br__inject *q)
{
	q->q.head = q->q.tail = NULL;
	atomic_init(&q->len, 0);
	atomic_init(&q->lock, 0);
	return 0;
}

void br__inject_term(struct br__inject *q)
{
	BR_ASSERT(!atomic_load_explicit(&q->lock, memory_order_relaxed));
}

void br__inject_push(struct br__inject *q, struct br__task *t)
{
	br__spin_lock(&q->lock);
	br__task_fifo_push(&q->q, t);
	/* seq_cst: read by the parker's re-check; see idle.c. */
	atomic_fetch_add_explicit(&q->len, 1, memory_order_seq_cst);
	br__spin_unlock(&q->lock);
}

struct br__task *br__inject_pop(struct br__inject *q)
{
	struct br__task *t;

	/* Relaxed: only a hint; the lock orders the real check. */
	if (!atomic_load_explicit(&q->len, memory_order_relaxed))
		return NULL;
	br__spin_lock(&q->lock);
	t = br__task_fifo_pop(&q->q);
	if (t)
		atomic_fetch_sub_explicit(&q->len, 1, memory_order_seq_cst);
	br__spin_unlock(&q->lock);
	return t;
}
