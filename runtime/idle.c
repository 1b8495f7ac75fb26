/* SPDX-License-Identifier: MIT */
/*
 * idle.c - which workers search for work and which are parked, and the
 * protocol that wakes them: no lost wake-ups, no thundering herd.
 *
 * Design
 *   Go's and Tokio's protocol (proc.go's "Worker thread parking/unparking"
 *   comment; Tokio's scheduler/multi_thread/idle.rs). One atomic word
 *   counts unparked and searching workers; a mutex guards the stack of
 *   parked worker ids.
 *     - A worker out of local work becomes a searcher only while fewer
 *       than half the workers search, so an idle runtime does not have
 *       every worker hammering every other's deque.
 *     - When a searcher finds work it stops searching; if it was the last
 *       searcher and more work is in sight (the injection queue or a
 *       deque), it wakes one parked worker, which starts searching in its
 *       place: work that appears in bursts fans out one worker at a time.
 *       Go and Tokio wake one whether or not more work is in sight, which
 *       costs a wake-up and a search per hand-off when tasks come one at a
 *       time (a plain thread resolving a promise each millisecond woke
 *       both workers of a 2-worker runtime, twice the CPU of one).
 *     - Whoever makes work visible to other workers calls
 *       br__idle_notify(): it wakes one parked worker, and only if nobody
 *       is searching (a searcher will find the work).
 *     - A worker parks by decrementing the counts; if it was the last
 *       searcher it re-checks every queue before it sleeps.
 *
 *   Why no wake-up is lost. Let a submitter S make task T visible (push,
 *   then a seq_cst read-modify-write of the state in notify) while the
 *   last searcher P parks (seq_cst RMW of the state, then the re-check).
 *   Both RMWs are on one word, so one comes first in its modification
 *   order:
 *     - S's first: S saw P unparked or searching and did not wake anyone;
 *       but P's RMW comes later and P's re-check, which follows it, sees
 *       T (S pushed T before its RMW).
 *     - P's first: S sees no searcher and P parked, so S wakes a parked
 *       worker (P or another, which then searches and finds T).
 *   Non-last parkers skip the re-check of the deques: some searcher
 *   remains, and it will either find T or be the last one and re-check.
 *   Every parker does re-check the injection queue (worker.c), as Go's
 *   findRunnable looks at the global queue before it parks: a worker
 *   that was denied a searcher's place and parks just after the last
 *   searcher found other work and woke nobody (everybody was still
 *   awake) would otherwise leave outside submissions to the busy worker's
 *   61st ticks. Wake-ups themselves are
 *   sticky (a CQE posted to the ring, or a futex word set to 1), so a
 *   wake-up sent before the target enters its wait is not lost either.
 *
 *   The last searcher that finds work plays the parker's part too: it
 *   leaves with a seq_cst RMW of the state and then looks for more work,
 *   so a submitter that saw it searching and woke nobody (S's RMW first)
 *   has its task seen by that look, and one that came after it sees no
 *   searcher and wakes somebody itself.
 *
 *   A wake-up goes through br__worker_wake(), which sends a parked worker
 *   one message per park however many wakers find it (worker.c), so a
 *   notification and pinned tasks sent to the same worker never wake it
 *   twice.
 *
 *   Local pushes (a task spawned on its own worker's deque) call notify
 *   without the full fence: such work can never be lost, because the
 *   pushing worker is awake and will run it itself; a missed notification
 *   costs only parallelism, and the worker's next tick repeats it. This is
 *   Go's choice in newproc/wakep and saves a locked instruction per spawn.
 *
 * Invariants
 *   - searching <= unparked <= nworkers.
 *   - nsleepers == nworkers - unparked whenever lock is free.
 *
 * Concurrency
 *   - Any thread may notify; workers change their own state.
 *   - Lock order: idle.lock is taken alone; the wake-up is sent after it
 *     is dropped.
 *
 * Memory ordering
 *   - All RMWs of state are seq_cst (the argument above); the local-push
 *     path reads it relaxed on purpose.
 */
#include <errno.h>
#include <stdlib.h>

#include "idle.h"
#include "ring.h"
#include "worker.h"

int br__idle_init(struct br__idle *idle, unsigned nworkers)
{
	idle->nworkers = nworkers;
	atomic_init(&idle->state, nworkers * BR__IDLE_UNPARK_ONE);
	idle->sleepers = calloc(nworkers, sizeof(*idle->sleepers));
	if (!idle->sleepers)
		return -ENOMEM;
	idle->nsleepers = 0;
	return -pthread_mutex_init(&idle->lock, NULL);
}

void br__idle_term(struct br__idle *idle)
{
	pthread_mutex_destroy(&idle->lock);
	free(idle->sleepers);
	idle->sleepers = NULL;
}

int br__idle_try_search(struct br__idle *idle)
{
	uint32_t s = atomic_load_explicit(&idle->state, memory_order_seq_cst);

	if (2 * (s & BR__IDLE_SEARCH_MASK) >= idle->nworkers)
		return 0;
	atomic_fetch_add_explicit(&idle->state, 1, memory_order_seq_cst);
	return 1;
}

void br__idle_stop_search(struct br_runtime *rt)
{
	uint32_t prev = atomic_fetch_sub_explicit(&rt->idle.state, 1,
						  memory_order_seq_cst);

	/* After the RMW, as a parking last searcher re-checks (header). */
	if ((prev & BR__IDLE_SEARCH_MASK) == 1 && br__work_visible(rt))
		br__idle_notify(rt, 1);
}

int br__idle_park(struct br__idle *idle, struct br__worker *w)
{
	uint32_t dec = BR__IDLE_UNPARK_ONE + (w->searching ? 1 : 0);
	uint32_t prev;

	pthread_mutex_lock(&idle->lock);
	prev = atomic_fetch_sub_explicit(&idle->state, dec,
					 memory_order_seq_cst);
	idle->sleepers[idle->nsleepers++] = w->id;
	pthread_mutex_unlock(&idle->lock);
	if (!w->searching)
		return 0;
	w->searching = 0;
	return (prev & BR__IDLE_SEARCH_MASK) == 1;
}

int br__idle_unpark(struct br__idle *idle, struct br__worker *w)
{
	unsigned i;

	pthread_mutex_lock(&idle->lock);
	for (i = 0; i < idle->nsleepers; i++) {
		if (idle->sleepers[i] == w->id) {
			idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
			atomic_fetch_add_explicit(&idle->state,
						  BR__IDLE_UNPARK_ONE,
						  memory_order_seq_cst);
			pthread_mutex_unlock(&idle->lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&idle->lock);
	/* The notifier took us off the stack and counted us searching. */
	w->searching = 1;
	return 1;
}

void br__idle_notify(struct br_runtime *rt, int remote)
{
	struct br__idle *idle = &rt->idle;
	unsigned id;
	uint32_t s;

	if (remote)
		/* A seq_cst RMW as a full fence (TSan does not model
		 * standalone fences); pairs with br__idle_park()'s RMW. */
		s = atomic_fetch_add_explicit(&idle->state, 0,
					      memory_order_seq_cst);
	else
		s = atomic_load_explicit(&idle->state, memory_order_relaxed);
	if (!br__idle_wants_notify(idle, s))
		return;
	pthread_mutex_lock(&idle->lock);
	s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
	if ((s & BR__IDLE_SEARCH_MASK) != 0 || !idle->nsleepers) {
		pthread_mutex_unlock(&idle->lock);
		return;
	}
	id = idle->sleepers[--idle->nsleepers];
	atomic_fetch_add_explicit(&idle->state, BR__IDLE_UNPARK_ONE + 1,
				  memory_order_seq_cst);
	pthread_mutex_unlock(&idle->lock);
	br__worker_wake(&rt->workers[id]);
}
