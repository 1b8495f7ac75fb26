/* SPDX-License-Identifier: MIT */
/*
 * task.h - the task record and the scheduling entry points tasks use.
 * See task.c.
 */
#ifndef BR_TASK_H
#define BR_TASK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "braid.h"
#include "deadline.h"
#include "future.h"
#include "internal.h"
#include "list.h"

struct br__fiber;
struct br__worker;

/* br__task.flags, fixed at spawn. */
#define BR__T_PINNED 0x1u /* runs only on worker pin */
/* br_call_soon/later: no fiber, and fn is a br_callback_fn. */
#define BR__T_CALLBACK 0x2u
/* Starts even when cancelled before it started (its first wait then ends
 * with -ECANCELED), so that it can settle what it holds; dropped unrun
 * only by a closing runtime. */
#define BR__T_RUNS_CANCELLED 0x4u

struct br__task {
	struct br_future fut; /* first: a task is its own future */
	br_task_fn fn;
	void *arg;
	struct br_runtime *rt;
	struct br__snode link; /* in whichever queue holds it */
	/* Set when it starts (its own) or runs inline (its parent's); read by
	 * br_cancel. */
	_Atomic(struct br__fiber *) fiber;
	/* Which task this is (0 until it first spawns), and which task
	 * spawned it (0: none). Ids are never given twice, while records
	 * are: a task made from a freed record must not pass for the
	 * spawner of the old task's children (wait.c, inlinable()). */
	uint64_t id, spawner_id;
	/* The task that runs it inline; read only by code on the fiber. */
	struct br__task *inline_parent;
	_Atomic uint32_t cancel; /* cancellation requested */
	uint32_t flags;		 /* BR__T_* */
	unsigned pin;		 /* worker index when pinned */
	/* Where the record was given out: a worker's index in the runtime of
	 * the thread that made it, or the plain threads (task.c) */
	unsigned home;
	size_t stack_size; /* 0: the runtime's */
	int cancel_seen;   /* a suspension returned -ECANCELED */
	int fail_code;	   /* set by br_fail() */
	char *fail_msg;
	/* Callbacks: set by the runner or by br_cancel, whichever comes first. */
	_Atomic int claimed;
	br_callback_fn cb;  /* callbacks: the function */
	int64_t deadline;   /* callbacks: not before (monotonic ns) */
	int64_t io_timeout; /* br_io_timeout(), ms; -1: none */
	/* Its deadline scopes (deadline.c); code on its fiber only. */
	struct br__dl_state dl;
	/* Its name (malloc'd, or NULL) and task-local values (tasklocal.c):
	 * set by the spawner before it is queued, then by code on its
	 * fiber only. */
	char *name;
	struct br__locals *locals;
	int last_send_fd; /* the socket of its last ring send, or -1 */
	/* br__task_set_bytes(): code on the task's fiber writes them, the
	 * finish on that fiber hands them to the future */
	void *out_bytes;
	size_t out_len;
	/* BRAID_STATS: when it was last made runnable (monotonic ns), until
	 * it runs; else 0. Written by whoever queues it, before the queue
	 * publishes it; read and cleared by the worker that switches to it. */
	int64_t ready_ns;
	int out_keep; /* the future keeps them whatever its end */
};

/* Task FIFOs (the worker's queues, the injection queue) link tasks
 * through t->link. */
static inline void br__task_fifo_push(struct br__fifo *q, struct br__task *t)
{
	br__fifo_push(q, &t->link);
}

static inline struct br__task *br__task_fifo_pop(struct br__fifo *q)
{
	struct br__snode *n = br__fifo_pop(q);

	return n ? br__fifo_entry(n, struct br__task, link) : NULL;
}

static inline struct br__task *br__task_fifo_first(const struct br__fifo *q)
{
	return q->head ? br__fifo_entry(q->head, struct br__task, link) : NULL;
}

/* The operations of a task's future: wait.c compares with its address to
 * tell a task, which it may run inline, from other futures. */
extern const struct br__future_ops br__task_ops;

static inline int br__future_is_task(const struct br_future *f)
{
	return f->ops == &br__task_ops;
}

/* Free the task records worker w keeps and send home those it holds for
 * others; at its exit, on its thread. */
void br__task_cache_drain(struct br__worker *w);

/* Free the records workers sent back to r; once all are joined. */
void br__task_returns_drain(struct br__returns *r);

/* Free a task record whose last reference is gone. */
void br__task_free(struct br__task *t);

/* br_cancel() for tasks and callbacks. */
int br__task_cancel(struct br__task *t);

/*
 * br__task_cancel_pending - 1 if t or a task running it inline has been
 * asked to cancel. Context: code on t's fiber.
 */
int br__task_cancel_pending(struct br__task *t);

/*
 * br__yield_to_loop - br_yield(), after firing the worker's due timers
 * and polling its I/O, so that what they wake runs before the caller
 * comes back. br_yield() alone lets them run only every so many turns,
 * however long each turn: a task that keeps busy in long turns (a pool's
 * collector through a big map) calls this once per slice of work
 * instead. Context: a task.
 */
int br__yield_to_loop(void);

/*
 * br__task_schedule - make t (a spawned task, or the top task of a woken
 * fiber) runnable: the LIFO slot of the calling worker when it belongs to
 * t's runtime, the pinned worker's queue for pinned tasks, else the
 * runtime's injection queue. Context: any thread.
 */
void br__task_schedule(struct br__task *t);

/*
 * br__task_suspend - switch the calling task's fiber out after it has
 * been armed (br__fiber_arm) and its wakers registered. Returns when the
 * fiber has been woken and resumed, maybe on another worker; with
 * cancellable, a cancellation request also wakes it (fiber.c).
 * Context: task only.
 */
void br__task_suspend(int cancellable);

/*
 * br__task_finish - complete t with the value its function returned (or
 * the failure set by br_fail, or CANCELLED), and count it ended. t may be
 * freed by the time this returns: clear every pointer to it first.
 * Context: code on the fiber that ran t, on worker w's thread
 * (br__worker_current(), read after the last suspension).
 */
void br__task_finish(struct br__worker *w, struct br__task *t, void *value);

/*
 * br__task_finish_sole - br__task_finish() for a task no other thread can
 * reach (br__future_complete_sole()): the child br_await() ran inline
 * while its caller holds the only reference. Context: as br__task_finish.
 */
void br__task_finish_sole(struct br__worker *w, struct br__task *t,
			  void *value);

/*
 * br__task_set_bytes - give the calling task's future the byte buffer buf
 * (malloc'd, len bytes) if the task ends DONE; it is freed if the task ends
 * otherwise. Takes ownership of buf; replaces (and frees) an earlier one.
 * Returns 0, or BR_ENOTTASK outside a task (buf is freed).
 * Context: task only.
 */
int br__task_set_bytes(void *buf, size_t len);

/*
 * br__task_set_output - br__task_set_bytes() for bytes the future keeps
 * however the task ends, FAILED and CANCELLED included (a subprocess's
 * output up to its time limit). Context: task only.
 */
int br__task_set_output(void *buf, size_t len);

/*
 * br__outside_enter - before a spawn or call on rt from w (the calling
 * thread's worker, or NULL): -1 if rt is closing; 0 from one of rt's own
 * workers (a task holds br_runtime_free() back); 1 from any other thread,
 * which is then counted so that br_runtime_free() waits for the call (see
 * task.c). br__outside_leave() ends what it returned, br__outside_end()
 * a count.
 */
int br__outside_enter(struct br__worker *w, struct br_runtime *rt);
void br__outside_leave(struct br_runtime *rt, int entered);
void br__outside_end(struct br_runtime *rt);

/* br_spawn_ex with BR__T_* flags of the runtime's own (flags). */
br_future *br__spawn_task(br_runtime *rt, br_task_fn fn, void *arg,
			  const br_spawn_opts *opts, uint32_t flags);

/* Whether the unstarted task t is to be dropped rather than started: its
 * runtime is closing, or it was cancelled (unless BR__T_RUNS_CANCELLED). */
static inline int br__task_start_dropped(const struct br__task *t, int closing)
{
	if (closing)
		return 1;
	return atomic_load_explicit(&t->cancel, memory_order_relaxed) &&
	       !(t->flags & BR__T_RUNS_CANCELLED);
}

/* Complete t as CANCELLED without running it (it never started); t may
 * be freed by the time this returns. */
void br__task_drop(struct br__task *t);

/* Run a callback task on the scheduler stack. */
void br__task_run_callback(struct br__task *t);

/* The calling task, or NULL (noinline: never cache across suspension). */
struct br__task *br__task_current(void);

/*
 * br__task_deadline - the nearest deadline of the scopes t (the calling
 * task), or the calling plain thread when t is NULL, is inside: -1 for
 * none. Every wait that a cancellation may end takes the nearer of its
 * own deadline and this one (deadline.c). Context: code of t, or the
 * thread.
 */
static inline int64_t br__task_deadline(const struct br__task *t)
{
	return t ? t->dl.deadline : br__thread_dl.deadline;
}

#endif /* BR_TASK_H */
