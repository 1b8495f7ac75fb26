/* SPDX-License-Identifier: MIT */
/*
 * worker.c - a worker thread: its scheduler loop, run queues, stealing
 * and parking.
 *
 * Design
 *   One tick picks the next task in this order (DESIGN 2; Tokio's
 *   worker.rs and Go's findRunnable):
 *     1. every GLOBAL_POLL_INTERVAL-th tick, the injection queue and the
 *        yielded list first,
 *        so outside submissions and yielders are never starved by local
 *        work; timers and I/O are looked at then too;
 *     2. the LIFO slot (the task woken last), at most LIFO_RUNS_MAX runs
 *        in a row so
 *        two tasks waking each other cannot starve the rest;
 *     3. pinned tasks sent here from other threads;
 *     4. the local deque (newest first);
 *     5. the yielded list (FIFO, so br_yield goes behind everybody);
 *     6. expired timers, then the ring's poll point: submit what tasks
 *        prepared and reap what completed, in one io_uring_enter;
 *     7. the injection queue;
 *     8. stealing: as a searcher (idle.c), half of a random victim's deque,
 *        spinning before giving up (below); a runtime of one worker
 *        has nobody to steal from and parks at once (spinning for I/O
 *        costs an HTTP server requests per CPU-second, as
 *        docs/ARCHITECTURE.md measures);
 *     9. park in the ring wait until the next timer.
 *   A task that keeps its worker busy in long turns (a pool's collector
 *   through a big map) reaches step 6 itself, on its own stack, once per
 *   slice of work (br__worker_run_due, through br__yield_to_loop): a
 *   yield behind nobody else comes straight back, and 1. comes only every
 *   GLOBAL_POLL_INTERVAL turns however long they are. It has no timer or
 *   I/O of its own in flight then, and what the step wakes is queued.
 *
 * Start order
 *   Tasks spawned from a task of this worker go to the bottom of its deque,
 *   and the worker pops the bottom: the newest starts first, as in Cilk, TBB
 *   and Lace, so a fork-join child is still in cache when it runs and
 *   br_await() can run an unstarted child inline (wait.c); thieves take the
 *   oldest from the top. Popped alone that order would let a task wait for
 *   ever behind newer ones (a task that keeps spawning keeps the bottom
 *   full), so on one tick in GLOBAL_POLL_INTERVAL (OLDEST_TICK) the worker
 *   takes its deque's oldest task instead, with a thief's CAS on the top: a
 *   task with k older ones queued on its worker starts within about
 *   GLOBAL_POLL_INTERVAL * (k + 1) ticks however many newer ones arrive.
 *   Tasks from plain threads go through the injection queue in creation
 *   order, and pinned tasks through their worker's FIFO queues (braid.h
 *   states both for users).
 *
 * Woken tasks
 *   A task woken by a task of this worker goes to its LIFO slot (task.c),
 *   where it runs as soon as the waker suspends, often straight from the
 *   waker's fiber (br__worker_leave()): the message it was woken for is
 *   still in cache, as with Go's runnext and Tokio's LIFO slot. A waker
 *   that goes on running instead would keep it waiting, so the slot is
 *   also open to searchers, as Go's runnext is: a searcher that sees the
 *   same task in a worker's slot for LIFO_GRACE_NS while that worker's
 *   tick does not move (one slice running all along) takes it with a CAS.
 *   The owner puts tasks in with an exchange and takes them out with an
 *   exchange or a CAS, so a task leaves the slot exactly once. A pinned
 *   task taken so goes back to its worker's remote queue. A runtime of
 *   one worker has no searchers: its worker takes from its slot with a
 *   plain load and store (lifo_claim()), which keeps a locked instruction
 *   off every hand-off between its tasks.
 *
 * Remote wake-ups
 *   A pinned task woken from another thread goes to its worker's mail
 *   slot, a pointer on a line of its own, when that is empty (a CAS from
 *   NULL), and to its remote queue when it is not. Between two workers
 *   passing a task back and forth, the slot is the only line the hand-off
 *   moves besides the task's own: the queue needs its lock and the
 *   task's link written by the waker, then the lock taken again and the
 *   link read by the owner, each a line crossing between CPUs while the
 *   other side waits for it. Wake-ups have no order to keep among
 *   themselves (pinned tasks start in creation order, which is why new
 *   ones always take the queue), but the woken task goes behind what the
 *   queue held: the owner takes the slot, then the queue
 *   (drain_remote()). When nothing else is queued it runs the slot's
 *   task at once: queueing it would write the task's link, on the line
 *   its waker reads the next time it wakes it, so that line too would
 *   cross back on every hand-off (docs/ARCHITECTURE.md, "Fewer lines
 *   each way", has what it cost).
 *
 * Spinning
 *   A wake-up through the kernel costs far more than a spin that finds
 *   work, so a worker out of work spins before it parks: it
 *   steals, takes from the injection queue and watches its own queues
 *   (pinned tasks, and I/O every 16 rounds). Only searchers spin (at most
 *   half the workers, idle.c), so an idle runtime never has every worker
 *   spinning; a worker that may not search watches its own queues and the
 *   injection queue for SLOT_WAIT_NS and takes a searcher's place if one
 *   comes free meanwhile
 *   (two workers passing messages change roles at every hand-off, and the
 *   one that has just sent usually finds the other still counted as
 *   searching for a few hundred ns), else parks.
 *
 *   How long a searcher spins adapts, as glibc's adaptive mutexes do. A spin
 *   that found work leaves the next one at SPIN_NS (about a park and a
 *   wake-up through the kernel) or more. One that found nothing is judged by
 *   the park that follows: if work came within SPIN_MAX_NS, the next spin
 *   lasts half as long again as that park did (for the first two such misses
 *   in a row, then one in 16: on a machine with more runnable threads than
 *   CPUs the sender may just not be running); if not, it is half as long as
 *   this one (down to SPIN_MIN_NS). Judging by the failed spin alone would
 *   trap two workers passing messages: once both park, each answer comes
 *   after the other's wake-up through the kernel, later than a spin of about
 *   that cost, so every spin fails and every hand-off parks (BRAID_TRACE
 *   of bench/handoff --mode promise showed it; docs/ARCHITECTURE.md,
 *   "Spinning", has the figures). A spin longer than the last short park
 *   outlasts the partner's wake-up, the partner then finds this worker still
 *   spinning and sends no wake-up, and both stay out of the kernel. Work
 *   that trickles in (one task per millisecond from a plain thread) shrinks
 *   the spin to SPIN_MIN_NS, so the wake-up it needs anyway is most of what
 *   it costs: a fixed spin after each such task was most of the CPU a
 *   lightly loaded runtime used. Work that comes a little later than a
 *   wake-up, but within SPIN_MAX_NS, wastes two long spins in every 16
 *   misses: that is the price of catching the faster cases.
 *
 *   The scheduler runs on the worker thread's own stack. A fiber that
 *   stops running tells it why in w->after before switching out; the
 *   scheduler then finishes the job off the fiber's stack (fiber.c).
 *
 *   Fiber hazards (STYLE 4.3), obeyed by every function that can run on a
 *   fiber: after any call that can suspend, the fiber may be on another
 *   thread; never keep the worker pointer, a thread-local's address or
 *   errno across such a call, and re-read br__worker_current() (noinline)
 *   after it. A compiler keeps the thread pointer in a register across
 *   calls, and release builds optimise across files (Makefile, LTOFLAGS),
 *   so a function that reads a thread-local inline may end up inside one
 *   that suspends. Hence: a thread-local a fiber can reach (br__tls_worker,
 *   select's random state, the thread's task-local values, the blocking
 *   pool's mark of its own threads) is touched only inside BR__NOINLINE
 *   functions, which take the thread pointer afresh at each call; those
 *   of plain threads alone (a thread's deadline scopes, spin budget and
 *   I/O timeout) only on paths that a task never takes. Per-worker caches
 *   (task and promise records, stacks) live in struct br__worker.
 *
 * Invariants
 *   - Pinned tasks are never in a deque or the injection queue.
 *   - A fiber in the live list has a root task that has not ended.
 *   - w->searching is 1 exactly while idle.c counts w as searching.
 *
 * Concurrency
 *   - Everything in the "owner-only" part of struct br__worker: its own
 *     thread, except tick and fiber, which the stall detector's watchdog
 *     reads (relaxed and acquire loads; stats.c). The deque: owner
 *     push/pop, thieves steal.
 *   - remote queue: under remote_lock, from any thread. Mail slot: any
 *     thread but the owner puts a task in with a CAS from NULL; the owner
 *     takes it out with an exchange.
 *   - live list: under reg_lock; fibers are added by the worker that
 *     starts them and removed by the worker they end on.
 *   - Lock order: reg_lock, then remote_lock / inject lock / idle lock.
 *
 * Waking a parked worker
 *   w->parked says whether w needs a wake-up message (AWAKE: no, it will
 *   look at its queues; ASLEEP: yes; WOKEN: one is on its way). A waker
 *   makes its work visible, then br__worker_wake() moves ASLEEP to WOKEN
 *   with a CAS and only the winner sends the message: a burst of pinned
 *   tasks, or a pinned task and an idle.c notification, wake a parked
 *   worker once, not once each (each message is a system call for the
 *   sender and a pass through the wait for the worker).
 *
 *   The worker stores ASLEEP before it puts itself on idle.c's list of
 *   sleepers, so a notifier that picks it from the list always finds it
 *   ASLEEP or WOKEN and never skips a needed message; it re-checks its
 *   queues after the store and sleeps only if they are empty. After the
 *   wait it exchanges parked back to AWAKE and looks at its queues before
 *   it can park again. A message that was sent but not needed (the
 *   re-check found work, or I/O or a timer ended the wait first) stays in
 *   the ring and ends the next wait at once: one extra pass, never a lost
 *   wake-up.
 *
 * Memory ordering
 *   - rq_len and parked form a Dekker pair: the sender increments rq_len
 *     (seq_cst, under the lock) then reads parked (seq_cst, in
 *     br__worker_wake()); the worker stores parked = ASLEEP (seq_cst) then
 *     reads rq_len (seq_cst) before it sleeps. The mail slot pairs with
 *     parked the same way (the sender's CAS, the worker's load). Either
 *     the worker sees the task or the sender sees it asleep and wakes it.
 *     A sender that finds WOKEN read it before the worker's exchange back
 *     to AWAKE (seq_cst), which the worker's next look at its queues
 *     follows: it sees the task. idle.c's notifications pair the same way
 *     through the idle state.
 *   - The ARMED -> PARKED CAS is release (fiber.c).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "fiber.h"
#include "task.h"
#include "worker.h"

#ifdef BR__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* How long an idle worker searches before it parks (header: "Spinning";
 * futex.h's struct br__spin_budget): SPIN_NS or more after a spin that
 * found work, between SPIN_MIN_NS and SPIN_MAX_NS otherwise. */
#define SPIN_NS (32 * BR__NS_PER_US)
#define SPIN_MIN_NS (2 * BR__NS_PER_US)
#define SPIN_MAX_NS (128 * BR__NS_PER_US)
/* How long a worker that may not search (half the workers do) watches
 * its own queues for a searcher to give up its place. */
#define SLOT_WAIT_NS (2 * BR__NS_PER_US)
/* Every GLOBAL_POLL_INTERVAL-th tick looks at the injection queue, the
 * yielded list, the timers and the ring before local work, so that none
 * of them starves behind a busy loop (Go's schedule() checks its global
 * queue every 61st time too; a prime keeps the check out of step with
 * periodic patterns of tasks). */
#define GLOBAL_POLL_INTERVAL 61
/* The tick, out of every GLOBAL_POLL_INTERVAL, on which the deque's
 * oldest task goes first (header: "Start order"): half-way between the
 * ticks that look at the injection queue. */
#define OLDEST_TICK (GLOBAL_POLL_INTERVAL / 2)
/* Runs in a row from the LIFO slot before its occupant goes behind the
 * rest: two tasks waking each other keep their data in cache, but cannot
 * starve the others (Tokio's MAX_LIFO_POLLS_PER_TICK). */
#define LIFO_RUNS_MAX 3
/* How long a woken task may wait in the LIFO slot of a worker that keeps
 * running one slice before a searcher takes it (Go's thieves wait about
 * 3 us before taking a running P's runnext). */
#define LIFO_GRACE_NS (3 * BR__NS_PER_US)
/* At most this many tasks taken from a victim in one steal. */
#define STEAL_MAX 32
/* In a faults build, how long braid/sched/outside_late holds a thread
 * outside a runtime up unless the point's failinfo says otherwise: long
 * enough for a task to end and the runtime to be freed meanwhile. */
#define OUTSIDE_LATE_MS 20
#define OUTSIDE_LATE_MAX_MS 10000

__thread struct br__worker *br__tls_worker;

BR__NOINLINE struct br__worker *br__worker_current(void)
{
	return br__tls_worker;
}

void br__fiber_entered(void);

/* ---- queues ---- */

void br__worker_push_local(struct br__worker *w, struct br__task *t)
{
	BR__ASSERT_OWNER(w);
	br__obs_ready(&w->rt->obs, &t->ready_ns);
	if (br__unlikely(br__deque_push(&w->dq, t) < 0)) {
		br__inject_push(&w->rt->inject, t);
		br__idle_notify(w->rt, 1);
		return;
	}
	/* br__idle_notify(rt, 0)'s relaxed first look, here: a spawn in a
	 * busy runtime (somebody searching, or nobody parked) makes no call.
	 * Relaxed: as that function's local path (idle.c). */
	if (br__idle_wants_notify(&w->rt->idle,
				  atomic_load_explicit(&w->rt->idle.state,
						       memory_order_relaxed)))
		br__idle_notify(w->rt, 0);
}

static int is_pinned(struct br__task *t)
{
	struct br__fiber *f =
		atomic_load_explicit(&t->fiber, memory_order_relaxed);

	return (t->flags & BR__T_PINNED) || (f && f->pinned);
}

/*
 * t runs next. The task it displaces from the slot was to run next too,
 * so it keeps that place: first of the pinned queue, or on top of the
 * deque (which runs newest first). A burst of wake-ups then runs newest
 * first, whichever queue its tasks go to.
 */
void br__worker_push_lifo(struct br__worker *w, struct br__task *t)
{
	struct br__task *old;

	BR__ASSERT_OWNER(w);
	br__obs_ready(&w->rt->obs, &t->ready_ns);
	/* Only this worker fills the slot, so an empty one stays empty
	 * until it does: a plain release store then, which publishes t to
	 * a thief's CAS. The usual hand-off so pays no locked instruction
	 * here. */
	if (!atomic_load_explicit(&w->lifo, memory_order_relaxed)) {
		atomic_store_explicit(&w->lifo, t, memory_order_release);
		return;
	}
	/* acq_rel: publishes t to a thief's CAS (header: "Woken tasks"),
	 * and takes back an occupant no thief took. */
	old = atomic_exchange_explicit(&w->lifo, t, memory_order_acq_rel);
	if (!old)
		return;
	if (is_pinned(old))
		br__fifo_push_front(&w->pq, &old->link);
	else
		br__worker_push_local(w, old);
}

void br__worker_push_pinned(struct br__worker *w, struct br__task *t)
{
	br__obs_ready(&w->rt->obs, &t->ready_ns);
	br__task_fifo_push(&w->pq, t);
}

void br__worker_remote_push(struct br__worker *w, struct br__task *t)
{
	br__obs_ready(&w->rt->obs, &t->ready_ns);
	br__spin_lock(&w->remote_lock);
	br__task_fifo_push(&w->rq, t);
	/* seq_cst: Dekker pair with parked; see the header. */
	atomic_fetch_add_explicit(&w->rq_len, 1, memory_order_seq_cst);
	br__spin_unlock(&w->remote_lock);
	br__outside_late(w->rt);
	br__worker_wake(w);
}

void br__worker_wake(struct br__worker *w)
{
	/* seq_cst: the Dekker pair with park() (header). */
	uint32_t p = atomic_load_explicit(&w->parked, memory_order_seq_cst);

	if (p == BR__PARK_ASLEEP &&
	    atomic_compare_exchange_strong_explicit(
		    &w->parked, &p, BR__PARK_WOKEN, memory_order_seq_cst,
		    memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&w->wakes_sent, 1,
					  memory_order_relaxed);
		br__ring_wake(w);
	}
}

void br__worker_remote_wake(struct br__worker *w, struct br__task *t)
{
	struct br__task *none = NULL;

	br__obs_ready(&w->rt->obs, &t->ready_ns);
	/* seq_cst: the Dekker pair with parked, as rq_len's (header). */
	if (atomic_compare_exchange_strong_explicit(&w->mail, &none, t,
						    memory_order_seq_cst,
						    memory_order_relaxed)) {
		br__outside_late(w->rt);
		br__worker_wake(w);
		return;
	}
	br__worker_remote_push(w, t);
}

#ifdef BR_FAULTS
void br__outside_late(struct br_runtime *rt)
{
	uintptr_t ms;

	/* Outside rt only, so that a "once" failing is spent on such a
	 * thread; the failinfo given with the point, if any, is the delay
	 * in milliseconds (at most OUTSIDE_LATE_MAX_MS). */
	if (br__worker_of(br__worker_current(), rt) ||
	    !BR__FAULT("braid/sched/outside_late"))
		return;
	ms = (uintptr_t)fiu_failinfo();
	if (!ms)
		ms = OUTSIDE_LATE_MS;
	usleep((useconds_t)(ms < OUTSIDE_LATE_MAX_MS ? ms :
						       OUTSIDE_LATE_MAX_MS) *
	       1000);
}
#endif

/* Whether other threads left w work in its mail slot or remote queue.
 * Relaxed: a first look, before drain_remote(). Context: worker w. */
static inline int remote_waiting(struct br__worker *w)
{
	return atomic_load_explicit(&w->mail, memory_order_relaxed) ||
	       atomic_load_explicit(&w->rq_len, memory_order_relaxed);
}

/*
 * Take the task in w's mail slot, then move the remote queue's tasks to
 * its pinned queue; return the mail's task, or NULL, which the caller
 * queues behind them or runs. The slot first: its acquire makes whatever
 * the task's waker queued here before it visible to the look at the
 * queue that follows, so a pinned task that thread spawned earlier goes
 * ahead of anything the woken task spawns (braid.h: pinned tasks start
 * in creation order). Context: worker w.
 */
static struct br__task *drain_remote(struct br__worker *w)
{
	struct br__task *m = NULL;

	/* Acquire: pairs with the waker's CAS, which published the task. */
	if (atomic_load_explicit(&w->mail, memory_order_relaxed))
		m = atomic_exchange_explicit(&w->mail, NULL,
					     memory_order_acquire);
	if (atomic_load_explicit(&w->rq_len, memory_order_relaxed)) {
		struct br__fifo got;

		br__spin_lock(&w->remote_lock);
		got = w->rq;
		w->rq.head = w->rq.tail = NULL;
		atomic_store_explicit(&w->rq_len, 0, memory_order_seq_cst);
		br__spin_unlock(&w->remote_lock);
		br__fifo_append(&w->pq, &got);
	}
	return m;
}

/* ---- the tick ---- */

/* Fire the timers that are due; the clock is read only if there are
 * any, which spares an I/O loop without timers a read per poll point. */
static void run_timers(struct br__worker *w)
{
	if (w->timers.n)
		br__timers_run(w, br_now_ns());
}

void br__worker_run_due(struct br__worker *w)
{
	BR__ASSERT_OWNER(w);
	run_timers(w);
	br__ring_poll(w);
}

/* Advance w's tick and return it. Relaxed load and store, not an RMW: only
 * the owner writes it; the watchdog reads it after w->fiber (stats.c). */
static inline uint32_t tick_next(struct br__worker *w)
{
	uint32_t t = atomic_load_explicit(&w->tick, memory_order_relaxed) + 1;

	atomic_store_explicit(&w->tick, t, memory_order_relaxed);
	return t;
}

/*
 * Empty the LIFO slot, which held t when its owner w looked: 1 if t is
 * w's to run, 0 if a thief took it first. Alone in its runtime, w has no
 * thieves (header: "Woken tasks"), so a plain store empties the slot.
 */
static inline int lifo_claim(struct br__worker *w, struct br__task *t)
{
	if (w->rt->nworkers == 1) {
		atomic_store_explicit(&w->lifo, NULL, memory_order_relaxed);
		return 1;
	}
	/* acq_rel: pairs with the thieves' CAS (header). */
	return atomic_compare_exchange_strong_explicit(
		&w->lifo, &t, NULL, memory_order_acq_rel, memory_order_relaxed);
}

static struct br__task *next_local(struct br__worker *w)
{
	struct br_runtime *rt = w->rt;
	struct br__task *t;

	uint32_t tick = tick_next(w) % GLOBAL_POLL_INTERVAL;

	if (br__unlikely(tick == 0)) {
		/* Timers and I/O first: returning a task ahead of them would
		 * skip them for as long as the global or yield queue is never
		 * empty here, and a loop kept busy so (one task yielding in a
		 * loop is enough) would never submit or reap a request. */
		br__worker_run_due(w);
		t = br__inject_pop(&rt->inject);
		if (t)
			return t;
		t = br__task_fifo_pop(&w->yq);
		if (t)
			return t;
	} else if (br__unlikely(tick == OLDEST_TICK)) {
		/* The deque's oldest task instead of its newest: no task
		 * waits behind an endless stream of newer ones (header). */
		t = br__deque_steal(&w->dq);
		if (t)
			return t;
	}
	if (remote_waiting(w) && (t = drain_remote(w))) {
		/* The mail is next when nothing else is: run it without
		 * queueing it, whose write to its link would cost its waker a
		 * cache line the next time it reads the task. */
		if (!atomic_load_explicit(&w->lifo, memory_order_relaxed) &&
		    br__fifo_empty(&w->pq)) {
			w->lifo_runs = 0;
			return t;
		}
		br__task_fifo_push(&w->pq, t);
	}
	t = atomic_load_explicit(&w->lifo, memory_order_relaxed);
	if (t && lifo_claim(w, t)) {
		if (w->lifo_runs < LIFO_RUNS_MAX) {
			w->lifo_runs++;
			return t;
		}
		/* Capped: behind everybody else. */
		br__task_fifo_push(&w->yq, t);
	}
	w->lifo_runs = 0;
	t = br__task_fifo_pop(&w->pq);
	if (t)
		return t;
	t = br__deque_pop(&w->dq);
	if (t) {
		/* Work left behind: make sure somebody may come for it (a
		 * local notification may have been missed; idle.c). */
		if (br__deque_size(&w->dq) > 0)
			br__idle_notify(rt, 0);
		return t;
	}
	if (!br__fifo_empty(&w->yq)) {
		/* Yielders go behind outside submissions too. */
		t = br__inject_pop(&rt->inject);
		if (t)
			return t;
	}
	return br__task_fifo_pop(&w->yq);
}

static struct br__task *steal(struct br__worker *w)
{
	struct br_runtime *rt = w->rt;
	unsigned n = rt->nworkers, start, i;

	if (n == 1)
		return NULL;
	start = br__rand(&w->rng) % n;
	for (i = 0; i < n; i++) {
		struct br__worker *v = &rt->workers[(start + i) % n];
		struct br__task *first, *x;
		int64_t k;

		if (v == w)
			continue;
		k = br__deque_size(&v->dq);
		if (k <= 0)
			continue;
		br__stat_add(&w->obs, BR__ST_STEALS_TRIED, 1);
		first = br__deque_steal(&v->dq);
		if (!first)
			continue;
		br__obs_steal(&w->obs, (start + i) % n);
		/* Half of what was there, the first included. */
		k = k / 2 > STEAL_MAX ? STEAL_MAX : k / 2;
		while (--k > 0 && (x = br__deque_steal(&v->dq)))
			if (br__deque_push(&w->dq, x) < 0) {
				br__inject_push(&rt->inject, x);
				break;
			}
		return first;
	}
	return NULL;
}

/*
 * A searcher's look at the other workers' LIFO slots: a woken task left
 * there for LIFO_GRACE_NS while its worker ran one slice (its tick did
 * not move) is taken, as Go's thieves take a runnext (header: "Woken
 * tasks"). now is the searcher's clock. Context: worker w, searching.
 */
static struct br__task *steal_lifo(struct br__worker *w, int64_t now)
{
	struct br_runtime *rt = w->rt;
	unsigned i;

	for (i = 0; i < rt->nworkers; i++) {
		struct br__worker *v = &rt->workers[i];
		struct br__task *t =
			atomic_load_explicit(&v->lifo, memory_order_relaxed);
		uint32_t tick;

		if (v == w || !t)
			continue;
		tick = atomic_load_explicit(&v->tick, memory_order_relaxed);
		if (w->lv_worker != v || w->lv_task != t ||
		    w->lv_tick != tick) {
			w->lv_worker = v;
			w->lv_task = t;
			w->lv_tick = tick;
			w->lv_since = now;
			continue;
		}
		if (now - w->lv_since < LIFO_GRACE_NS)
			continue;
		br__stat_add(&w->obs, BR__ST_STEALS_TRIED, 1);
		/* acq_rel: pairs with the owner's exchange that put t there;
		 * success makes t ours (the owner's exchange or CAS then
		 * finds the slot empty). */
		if (!atomic_compare_exchange_strong_explicit(
			    &v->lifo, &t, NULL, memory_order_acq_rel,
			    memory_order_relaxed))
			continue;
		w->lv_worker = NULL;
		if (is_pinned(t)) {
			/* Never ours to run: back to its worker, behind
			 * the pinned tasks sent there. */
			br__worker_remote_push(v, t);
			continue;
		}
		br__obs_steal(&w->obs, i);
		return t;
	}
	return NULL;
}

/*
 * Look for work before parking, for as long as a park and a wake-up
 * through the kernel would cost when spins have been paying off lately,
 * and briefly when they have not (header: "Spinning"). Returns a task,
 * or NULL to park.
 */
static struct br__task *spin(struct br__worker *w)
{
	struct br_runtime *rt = w->rt;
	struct br__task *t;
	int64_t until = 0, now;
	unsigned round;

	for (round = 0;; round++) {
		t = NULL;
		if (!w->searching && br__idle_try_search(&rt->idle)) {
			w->searching = 1;
			until = 0; /* the searcher's budget starts now */
		}
		if (w->searching)
			t = steal(w);
		if (!t)
			t = br__inject_pop(&rt->inject);
		if (!t && remote_waiting(w))
			t = next_local(w);
		if (t || atomic_load_explicit(&rt->stop, memory_order_relaxed))
			break;
		if ((round & 15) == 15) {
			/* I/O finished meanwhile is local work too. Without
			 * a ring that check is a ppoll system call: leave it
			 * to park(), which makes it anyway. */
			if (w->ring.on)
				br__ring_poll(w);
			if (atomic_load_explicit(&w->lifo,
						 memory_order_relaxed) ||
			    !br__fifo_empty(&w->pq)) {
				t = next_local(w);
				break;
			}
			now = br_now_ns();
			if (w->searching) {
				t = steal_lifo(w, now);
				if (t)
					break;
			}
			if (!until)
				until = now + (w->searching ? w->spin.ns :
							      SLOT_WAIT_NS);
			else if (now >= until)
				break;
		}
		br__cpu_relax();
	}
	/* A searcher's spin that paid off makes the next one at least
	 * SPIN_NS; one that did not leaves the verdict to the park that
	 * follows (park()). */
	if (w->searching && t)
		br__spin_paid(&w->spin, SPIN_NS);
	return t;
}

static struct br__task *find_work(struct br__worker *w)
{
	struct br_runtime *rt = w->rt;
	struct br__task *t;

	run_timers(w);
	/* Alone, the park that follows when nothing turns up submits and
	 * waits in one system call: only take what the kernel has already
	 * posted here, or an idle loop would enter the kernel twice. */
	if (rt->nworkers == 1 && w->ring.on)
		br__ring_reap(w);
	else
		br__ring_poll(w);
	t = next_local(w);
	if (t)
		return t;
	t = br__inject_pop(&rt->inject);
	if (t)
		return t;
	if (!w->searching && br__idle_try_search(&rt->idle))
		w->searching = 1;
	/* Alone, there is nobody to steal from: whatever comes next (I/O,
	 * a timer, a task from a plain thread) ends the ring wait, and
	 * spinning for it would only burn the CPU a server is measured by.
	 * It parks as a searcher all the same, so that park() re-checks the
	 * queues (idle.c: the last searcher to park must). */
	if (rt->nworkers == 1)
		return NULL;
	return spin(w);
}

int br__work_visible(struct br_runtime *rt)
{
	unsigned i;

	if (br__inject_nonempty(&rt->inject))
		return 1;
	for (i = 0; i < rt->nworkers; i++)
		if (br__deque_size(&rt->workers[i].dq) > 0)
			return 1;
	return 0;
}

static void park(struct br__worker *w)
{
	struct br_runtime *rt = w->rt;
	int last;

	/* seq_cst: Dekker pair with br__worker_wake(); before the worker
	 * joins idle.c's sleepers, so a notifier finds it ASLEEP (header). */
	atomic_store_explicit(&w->parked, BR__PARK_ASLEEP,
			      memory_order_seq_cst);
	/* Relaxed: a count for tests; only this thread writes it. */
	atomic_store_explicit(
		&w->asleep,
		atomic_load_explicit(&w->asleep, memory_order_relaxed) + 1,
		memory_order_relaxed);
	last = br__idle_park(&rt->idle, w);
	/* Every parker looks at the injection queue again (seq_cst, after
	 * its RMW in br__idle_park()), as Go's findRunnable looks at the
	 * global queue before it gives up its P; only the last searcher
	 * looks at every deque (idle.c). */
	if (!(last && br__work_visible(rt)) &&
	    !br__inject_nonempty(&rt->inject) &&
	    !atomic_load_explicit(&w->rq_len, memory_order_seq_cst) &&
	    !atomic_load_explicit(&w->mail, memory_order_seq_cst) &&
	    !atomic_load_explicit(&rt->stop, memory_order_seq_cst)) {
		int64_t t0 = br__obs_clock(&w->obs), slept = br_now_ns();

		br__stat_add(&w->obs, BR__ST_PARKS, 1);
		br__ring_park(w, br__timers_next(w));
		br__obs_span(&w->obs, BR__TR_PARK, t0, 0);
		/* How soon work came decides the next spin (futex.h, and
		 * the header's "Spinning"). */
		br__spin_missed(&w->spin, br_now_ns() - slept, SPIN_NS,
				SPIN_MIN_NS, SPIN_MAX_NS);
	}
	/* seq_cst: a waker that saw WOKEN read it before this, and the
	 * queues are looked at after it (header). */
	atomic_exchange_explicit(&w->parked, BR__PARK_AWAKE,
				 memory_order_seq_cst);
	if (br__idle_unpark(&rt->idle, w))
		br__stat_add(&w->obs, BR__ST_WAKEUPS, 1);
	br__watchdog_unparked(&rt->obs);
}

/* ---- running tasks ---- */

static void live_remove(struct br__fiber *f);

static void fiber_main(void *arg)
{
	struct br__fiber *f = arg;
	struct br__task *root = f->root;
	struct br__worker *w;
	void *v;

	br__fiber_entered();
	br__worker_after(br__worker_current());
	v = root->fn(root->arg);
	/* Off the live list and unlinked before completing: the completion
	 * may free the task, which holds no reference of its own. */
	live_remove(f);
	atomic_store_explicit(&root->fiber, NULL, memory_order_relaxed);
	w = br__worker_current();
	br__task_finish(w, root, v);
	w->after = BR__AFTER_EXIT;
	w->after_fiber = f;
	br__fiber_switch_out(w, f, 1);
	BR_ASSERT(!"a finished fiber was resumed");
}

static void live_add(struct br__worker *w, struct br__fiber *f)
{
	f->reg_w = w;
	pthread_mutex_lock(&w->reg_lock);
	br__list_push_front(&w->live_fibers, &f->reg);
	pthread_mutex_unlock(&w->reg_lock);
}

static void live_remove(struct br__fiber *f)
{
	struct br__worker *o = f->reg_w;

	pthread_mutex_lock(&o->reg_lock);
	br__list_remove(&o->live_fibers, &f->reg);
	pthread_mutex_unlock(&o->reg_lock);
}

int64_t br__live_sum(struct br_runtime *rt)
{
	int64_t sum = atomic_load_explicit(&rt->live_ext, memory_order_acquire);
	unsigned i;

	for (i = 0; i < rt->nworkers; i++)
		sum += atomic_load_explicit(&rt->workers[i].live,
					    memory_order_acquire);
	return sum;
}

void br__workers_cancel_all(struct br_runtime *rt)
{
	unsigned i;

	for (i = 0; i < rt->nworkers; i++) {
		struct br__worker *w = &rt->workers[i];
		struct br__list_node *n;

		pthread_mutex_lock(&w->reg_lock);
		for (n = w->live_fibers.head; n; n = n->next)
			br__task_cancel(
				br__list_entry(n, struct br__fiber, reg)->root);
		pthread_mutex_unlock(&w->reg_lock);
	}
}

void br__worker_after(struct br__worker *w)
{
	struct br__fiber *f = w->after_fiber;
	uint64_t exp, seq;

	switch (w->after) {
	case BR__AFTER_NONE:
		return;
	case BR__AFTER_PARK:
		seq = f->seq;
		exp = (seq << 2) | BR__FW_ARMED;
		/* seq_cst: publishes the switched-out context to the waker,
		 * and pairs with br__task_cancel() through cancel_hint
		 * (fiber.c). Failure means a waker came first, and the fiber
		 * is still ours: requeue it. Success hands it to its waker:
		 * from here only the type-stable header may be touched. */
		if (!atomic_compare_exchange_strong_explicit(
			    &f->wake, &exp, (seq << 2) | BR__FW_PARKED,
			    memory_order_seq_cst, memory_order_acquire)) {
			/* Only a waker of this seq changes an armed word. */
			BR_DEBUG_ASSERT(exp == ((seq << 2) | BR__FW_NOTIFIED));
			br__worker_push_lifo(w, f->top);
		} else if (w->after_cancellable &&
			   atomic_load_explicit(&f->cancel_hint,
						memory_order_seq_cst))
			br__fiber_wake(f, seq);
		break;
	case BR__AFTER_EXIT:
		br__fiber_put(w, f);
		break;
	case BR__AFTER_MOVE:
		br__worker_remote_push(w->after_target, f->top);
		break;
	default:
		BR_ASSERT(!"fiber switched out with an unknown reason");
	}
	w->after = BR__AFTER_NONE;
	w->after_fiber = NULL;
}

static void run(struct br__worker *w, struct br__task *t)
{
	struct br_runtime *rt = w->rt;
	struct br__fiber *f;

	if (t->flags & BR__T_CALLBACK) {
		br__task_run_callback(t);
		return;
	}
	f = atomic_load_explicit(&t->fiber, memory_order_relaxed);
	if (!f) {
		if (br__task_start_dropped(
			    t, atomic_load_explicit(&rt->closing,
						    memory_order_relaxed))) {
			br__task_drop(t);
			return;
		}
		f = br__fiber_get(w, t->stack_size ? t->stack_size :
						     rt->stack_size);
		if (!f) {
			br__future_complete(&t->fut, BR_FAILED, NULL, NULL, 0,
					    -ENOMEM,
					    "no memory for a task stack");
			br__live_add(rt, -1);
			return;
		}
		f->root = f->top = t;
		br__obs_task_start(&w->obs, w->id, f, t->fn, t->name);
		f->pinned = !!(t->flags & BR__T_PINNED);
		f->pin = t->pin;
		br__fiber_prepare(f, fiber_main, f);
		live_add(w, f);
		/* seq_cst: pairs with br__task_cancel()'s load. */
		atomic_store_explicit(&t->fiber, f, memory_order_seq_cst);
	}
	br__fiber_switch_in(w, f);
	br__worker_after(w);
}

/* A runnable task this worker may switch to without the scheduler: the
 * LIFO slot within its cap, else the next yielder when nothing else is
 * queued; only tasks that already have a fiber. */
static struct br__task *pick_direct(struct br__worker *w)
{
	struct br__task *t =
		atomic_load_explicit(&w->lifo, memory_order_relaxed);

	if (t) {
		/* Only this worker puts a task there, so t is still the one
		 * it put unless a thief took it: read, then claim. */
		if (w->lifo_runs >= LIFO_RUNS_MAX ||
		    (t->flags & BR__T_CALLBACK) ||
		    !atomic_load_explicit(&t->fiber, memory_order_relaxed) ||
		    !lifo_claim(w, t))
			return NULL;
		w->lifo_runs++;
		return t;
	}
	/* A yielder goes behind everything runnable, outside submissions
	 * and pinned tasks sent from elsewhere included. */
	t = br__task_fifo_first(&w->yq);
	if (!t || !br__fifo_empty(&w->pq) || br__deque_size(&w->dq) > 0 ||
	    remote_waiting(w) ||
	    atomic_load_explicit(&w->rt->inject.len, memory_order_relaxed) ||
	    !atomic_load_explicit(&t->fiber, memory_order_relaxed))
		return NULL;
	br__task_fifo_pop(&w->yq);
	w->lifo_runs = 0;
	return t;
}

void br__worker_leave(struct br__worker *w, struct br__fiber *f, int after,
		      int cancellable)
{
	struct br__task *next = NULL;
	struct br__fiber *nf;
	uint32_t tick;

	if (after == BR__AFTER_YIELD) {
		/* Safe before the switch: only this worker reads its yielded
		 * list, and it is busy switching away from f. Not stamped
		 * for BRAID_STATS's waits: a yield is asked for, and the
		 * stamp's check would sit on every br_yield(). */
		br__task_fifo_push(&w->yq, f->top);
		after = BR__AFTER_NONE;
	}
	/* Every GLOBAL_POLL_INTERVAL-th hand-off goes through the scheduler,
	 * so the injection queue, the remote queue and the timers keep their
	 * turn, and so does the deque's oldest task (OLDEST_TICK, when there
	 * is one: a yield among tasks that spawn nothing would otherwise
	 * pass through the scheduler twice per interval): the tick
	 * is advanced here only for a direct hand-off, so the scheduler's own
	 * increment is the one that lands on those ticks. */
	tick = (atomic_load_explicit(&w->tick, memory_order_relaxed) + 1) %
	       GLOBAL_POLL_INTERVAL;
	if (tick != 0 && (tick != OLDEST_TICK || br__deque_size(&w->dq) == 0)) {
		next = pick_direct(w);
		if (next)
			tick_next(w);
	}
	w->after_cancellable = cancellable;
	if (next) {
		nf = atomic_load_explicit(&next->fiber, memory_order_relaxed);
		if (nf == f)
			return; /* a yield with nobody else to run */
		w->after = after;
		w->after_fiber = f;
		br__fiber_switch_to(w, f, nf);
	} else {
		w->after = after;
		w->after_fiber = f;
		br__fiber_switch_out(w, f, 0);
	}
	br__worker_after(br__worker_current());
}

void br__worker_go(struct br__worker *to)
{
	struct br__worker *w;

	while ((w = br__worker_current()) != to) {
		w->after = BR__AFTER_MOVE;
		w->after_fiber = br__worker_fiber(w);
		w->after_target = to;
		br__fiber_switch_out(w, br__worker_fiber(w), 0);
		br__worker_after(br__worker_current());
	}
}

/* ---- thread ---- */

static void drop_queue(struct br__fifo *q)
{
	struct br__task *t;

	while ((t = br__task_fifo_pop(q)))
		br__task_drop(t);
}

static void worker_exit(struct br__worker *w)
{
	struct br__task *t;

	/* Only callbacks can be left: every task has ended. */
	t = atomic_exchange_explicit(&w->lifo, NULL, memory_order_acq_rel);
	if (t)
		br__task_drop(t);
	t = drain_remote(w);
	if (t)
		br__task_drop(t);
	drop_queue(&w->pq);
	drop_queue(&w->yq);
	while ((t = br__deque_pop(&w->dq)))
		br__task_drop(t);
	br__timers_term(w);
	br__stack_cache_drain(w);
	/* The ring stays open: other workers may still be waking this one.
	 * br_runtime_free closes every ring once all workers are joined. */
	br__stack_thread_exit(w);
	br__task_cache_drain(w);
	br__promise_cache_drain(w);
	br__tls_worker = NULL;
}

static void worker_start(struct br__worker *w)
{
	struct br_runtime *rt = w->rt;
	pthread_attr_t attr;
	int ret;

	br__tls_worker = w;
	w->spin.ns = SPIN_NS;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &w->sched_stack_lo,
				      &w->sched_stack_size);
		pthread_attr_destroy(&attr);
	}
#ifdef BR__TSAN
	w->tsan_sched = __tsan_get_current_fiber();
#endif
	br__stack_thread_init(w);
	ret = br__ring_init(w, rt->ring_entries, rt->flags);
	pthread_mutex_lock(&rt->start_lock);
	if (ret < 0 && !rt->ring_err)
		rt->ring_err = ret;
	rt->started++;
	pthread_cond_broadcast(&rt->start_cond);
	pthread_mutex_unlock(&rt->start_lock);
}

void *br__worker_main(void *arg)
{
	struct br__worker *w = arg;
	struct br_runtime *rt = w->rt;

	worker_start(w);
	for (;;) {
		struct br__task *t = next_local(w);

		if (!t)
			t = find_work(w);
		if (t) {
			if (w->searching) {
				w->searching = 0;
				br__idle_stop_search(rt);
			}
			run(w, t);
			continue;
		}
		if (atomic_load_explicit(&rt->stop, memory_order_acquire))
			break;
		park(w);
	}
	if (w->searching) {
		w->searching = 0;
		br__idle_stop_search(rt);
	}
	worker_exit(w);
	return NULL;
}
