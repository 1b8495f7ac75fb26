/* SPDX-License-Identifier: MIT */
/*
 * worker.h - a worker thread's state. See worker.c for the scheduler
 * loop; runtime.h for the runtime that owns the workers.
 */
#ifndef BR_WORKER_H
#define BR_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "braid.h"
#include "deque.h"
#include "fiber.h"
#include "futex.h"
#include "internal.h"
#include "ring.h"
#include "runtime.h"
#include "stats.h"
#include "timer.h"

/* What the scheduler does with the fiber that just switched out. */
enum {
	BR__AFTER_NONE,
	BR__AFTER_PARK,	 /* finish the suspension: ARMED -> PARKED */
	BR__AFTER_YIELD, /* queue it behind the runnable tasks */
	BR__AFTER_EXIT,	 /* its root task ended: recycle the fiber */
	BR__AFTER_MOVE,	 /* queue it on after_target (io.c) */
};

/* br__worker.parked: whether a wake-up must be sent, and whether one is. */
enum {
	BR__PARK_AWAKE,	 /* running or spinning: it will see its queues */
	BR__PARK_ASLEEP, /* in or near the ring wait: send it a wake-up */
	BR__PARK_WOKEN,	 /* a wake-up is on its way: send no other */
};

struct br__blocking;

struct br__worker {
	/* ---- owner-only: touched by this worker's thread alone ---- */
	struct br_runtime *rt;
	unsigned id;
	struct br__deque dq; /* spawned tasks; thieves steal */
	unsigned lifo_runs;  /* LIFO runs in a row, capped (worker.c) */
	struct br__fifo yq;  /* yielded tasks */
	struct br__fifo pq;  /* pinned tasks: remote queue's, mail, lifo's */
	/* Scheduler ticks plus direct hand-offs: it moves before every switch
	 * into a fiber, so with fiber it tells run slices apart (the stall
	 * detector's heartbeat, stats.c); written by the owner, read by the
	 * watchdog. */
	_Atomic uint32_t tick;
	uint32_t rng;
	/* Tasks spawned here minus tasks ended here; written by the owner only,
	 * summed by br_runtime_free. */
	_Atomic int64_t live;
	int searching;
	struct br__spin_budget spin; /* the next spin's length (worker.c) */
	/* A searcher's note of another worker's LIFO slot: which worker,
	 * the task and tick seen there, since when (worker.c). */
	struct br__worker *lv_worker;
	struct br__task *lv_task;
	uint32_t lv_tick;
	int64_t lv_since;
	void *sched_sp;		  /* scheduler context while a fiber runs */
	struct br__task *current; /* task on top of the running fiber */
	/* The running fiber, or NULL; written by the owner at every switch
	 * (fiber.c), read by the watchdog; owner reads go through
	 * br__worker_fiber() */
	_Atomic(struct br__fiber *) fiber;
	int after; /* BR__AFTER_*, set before switch-out */
	struct br__fiber *after_fiber;
	struct br__worker *after_target; /* MOVE: where to */
	int after_cancellable; /* PARK: a cancellation request wakes it */
	struct br__timers timers;
	struct br__stack_cache stacks;
	/* Task and promise records freed on this thread, kept for the next
	 * ones made here (task.c, future.c; task records: empty in ASan
	 * builds, promises: in sanitizer builds). Kept here rather than in
	 * thread-locals (header, "Fiber hazards"). */
	struct br__snode *free_tasks;
	struct br_future *free_promises;
	unsigned nfree_tasks, nfree_promises;
	struct br__ring ring;
	void *sched_stack_lo; /* the thread's own stack, for ASan */
	size_t sched_stack_size;
	void *tsan_sched; /* the thread's TSan fiber */
	void *altstack;	  /* sigaltstack for overflow reports */
	pthread_t thread;
	/* Task records made here that other workers sent back (taken from
	 * returns), and the batch of records made elsewhere that this one
	 * freed, sent back when full or when one from another place comes
	 * (task.c: "Records go home"). */
	struct br__snode *returned;
	struct br__snode *out_head, *out_tail;
	struct br__returns *out_home;
	unsigned out_n;
	/* The task ids this worker gives next, a block at a time (task.c) */
	uint64_t next_id, end_id;
	/* Counters and trace ring (stats.h): last, so that every other field
	 * keeps the place it has with make OBS=0. */
	struct br__obs obs;

	/* ---- shared: touched by other threads ---- */
	/* The task woken last: put in and taken out by the owner, taken by
	 * searchers after a grace (worker.c: "Woken tasks"). On a line of
	 * its own, away from what remote pushers write. */
	BR__CACHE_ALIGNED _Atomic(struct br__task *) lifo;
	/* A pinned task woken by another thread: put in by its waker with a
	 * CAS from NULL (when taken, the waker uses the remote queue), taken
	 * out by the owner with an exchange (worker.c: "Remote wake-ups").
	 * On a line of its own: it is what a spinning owner watches. */
	BR__CACHE_ALIGNED _Atomic(struct br__task *) mail;
	/* Task records made here and freed on the other workers: they push
	 * batches with a CAS, the owner takes the whole stack with an
	 * exchange (task.c). */
	BR__CACHE_ALIGNED struct br__returns returns;
	/* A spin lock (futex.h), held for a few instructions. */
	BR__CACHE_ALIGNED _Atomic uint32_t remote_lock;
	struct br__fifo rq;	 /* pinned tasks sent here; under remote_lock */
	_Atomic uint32_t rq_len; /* seq_cst; see worker.c */
	_Atomic uint32_t parked; /* BR__PARK_*, seq_cst; see worker.c */
	/* Times parked went to ASLEEP (the owner writes) and wake-up messages
	 * sent for that (any waker): the second never exceeds the first
	 * (tests; relaxed). */
	_Atomic uint64_t asleep;
	_Atomic uint64_t wakes_sent;
	pthread_mutex_t reg_lock;    /* protects live_fibers */
	struct br__list live_fibers; /* of struct br__fiber, through reg */
};

/* w's running fiber. Context: worker w (relaxed: its own store). */
static inline struct br__fiber *br__worker_fiber(struct br__worker *w)
{
	return atomic_load_explicit(&w->fiber, memory_order_relaxed);
}

/* The worker running the calling thread, or NULL. noinline: a task may
 * resume on another thread after any suspension (STYLE 4.3). */
struct br__worker *br__worker_current(void);

/* Fire w's due timers and poll its I/O now, as its scheduler does
 * between tasks: what they wake queues behind the caller. Context: a task
 * running on worker w. */
void br__worker_run_due(struct br__worker *w);

extern __thread struct br__worker *br__tls_worker;

/* Debug builds: this runs on worker w's own thread (STYLE 4.3). */
#define BR__ASSERT_OWNER(w) BR_DEBUG_ASSERT(br__tls_worker == (w))

/*
 * br__worker_leave - the running fiber f gives up the CPU for `after`
 * (BR__AFTER_PARK or BR__AFTER_YIELD): straight to the next runnable
 * fiber of this worker when there is one, else to the scheduler. A PARK
 * that is cancellable is woken by a cancellation request (fiber.c).
 * Returns when f runs again, maybe on another worker. Context: code on f.
 */
void br__worker_leave(struct br__worker *w, struct br__fiber *f, int after,
		      int cancellable);

/*
 * br__worker_go - move the calling task, whose fiber is not armed, to
 * worker `to` (of its runtime) through that worker's remote queue, unless
 * it runs there already. Returns running on `to`. Context: task.
 */
void br__worker_go(struct br__worker *to);

/* Finish what the fiber that switched out last left to do. Worker w. */
void br__worker_after(struct br__worker *w);

/* Worker thread entry. */
void *br__worker_main(void *arg);

/* Queue t on worker w's remote queue and wake w. Context: any thread. */
void br__worker_remote_push(struct br__worker *w, struct br__task *t);

/* Make t, a task pinned to worker w that was woken, runnable there: its
 * mail slot when free, else its remote queue; wake w. Context: any thread
 * but w's. */
void br__worker_remote_wake(struct br__worker *w, struct br__task *t);

/* In a faults build, a thread outside rt is held up here, as a
 * preempted one would be (braid/sched/outside_late): after a spawn, a
 * callback or a blocking call saw rt open (task.c, br__outside_enter),
 * and after a wake-up or a spawn made its task runnable, before it
 * wakes the worker. Nothing elsewhere. */
#ifdef BR_FAULTS
void br__outside_late(struct br_runtime *rt);
#else
#define br__outside_late(rt) ((void)(rt))
#endif

/*
 * br__worker_wake - wake w if it is parked, with one message per park
 * however many callers find it asleep. The caller has made its work
 * visible with a seq_cst operation first (worker.c: the Dekker pair).
 * Context: any thread.
 */
void br__worker_wake(struct br__worker *w);

/* Is there work in rt's injection queue or any deque? seq_cst read of the
 * injection queue's length (idle.c). Context: any thread. */
int br__work_visible(struct br_runtime *rt);

/* Put t in w's LIFO slot, moving the previous occupant to the deque.
 * Context: worker w. */
void br__worker_push_lifo(struct br__worker *w, struct br__task *t);

/* Queue a new task pinned to w behind w's other pinned tasks (FIFO).
 * Context: worker w. */
void br__worker_push_pinned(struct br__worker *w, struct br__task *t);

/* Push a new task on w's deque and tell idle workers. Worker w. */
void br__worker_push_local(struct br__worker *w, struct br__task *t);

/* Cancel every live task of every worker (shutdown). Context: any. */
void br__workers_cancel_all(struct br_runtime *rt);

/* Whether w, the calling thread's worker (or NULL), is one of rt's. */
static inline int br__worker_of(const struct br__worker *w,
				const struct br_runtime *rt)
{
	return w && w->rt == rt;
}

/*
 * br__live_add_on - count a task spawned (+1) or ended (-1); w is the
 * calling thread's worker or NULL. On a worker of
 * rt the count is the worker's own, so spawning costs no locked
 * instruction (one shared counter bounced between cores and halved
 * fork-join throughput); elsewhere it is rt->live_ext. Only the sum means
 * anything. Release: pairs with br__live_sum()'s acquire loads.
 */
static inline void br__live_add_on(struct br__worker *w, struct br_runtime *rt,
				   int64_t d)
{
	if (br__worker_of(w, rt))
		atomic_store_explicit(
			&w->live,
			atomic_load_explicit(&w->live, memory_order_relaxed) +
				d,
			memory_order_release);
	else
		atomic_fetch_add_explicit(&rt->live_ext, d,
					  memory_order_acq_rel);
}

static inline void br__live_add(struct br_runtime *rt, int64_t d)
{
	br__live_add_on(br__worker_current(), rt, d);
}

/* The number of live tasks; see br_runtime_free() for when it is exact. */
int64_t br__live_sum(struct br_runtime *rt);

#endif /* BR_WORKER_H */
