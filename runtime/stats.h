/* SPDX-License-Identifier: MIT */
/*
 * stats.h - what each worker records about itself for br_stats(), the
 * stall detector and BRAID_TRACE, and the inline hooks the scheduler,
 * the fibers, the ring and the pools call. See stats.c (counters, the
 * watchdog) and trace.c (the trace rings and the JSON file).
 *
 * Cost on the hot paths, by design:
 *   - a counter is bumped with a relaxed load and a relaxed store of a
 *     word in the worker's own part of struct br__worker (no locked
 *     instruction: only the owner writes it);
 *   - a task's start adds a count and two labels for the stall detector
 *     (on by default) or stats; a switch into a task adds one counter
 *     bump (the run-slice count) under BRAID_STATS or BRAID_TRACE only,
 *     and otherwise a load and a predicted branch; a switch back to the
 *     scheduler a predicted branch. The stall detector's heartbeat is
 *     the worker's tick and running fiber, which the scheduler stores at
 *     every switch anyway: it adds no store of its own;
 *   - tracing costs one predicted branch on w->obs.trace where an event
 *     could be recorded; the clock is read only when it is on;
 *   - make OBS=0 (-DBR_NO_OBS) compiles all of it out, for measuring
 *     this cost (scripts/obs_cost.py).
 */
#ifndef BR_STATS_H
#define BR_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "braid.h"
#include "fiber.h"
#include "internal.h"
#include "tasklocal.h"

struct br_runtime;
struct br__trace_buf;

/* Counter indices, in the order of br_worker_stats's fields (braid.h). */
enum {
	BR__ST_TASKS_RUN,
	BR__ST_SLICES,
	BR__ST_STEALS_TRIED,
	BR__ST_STEALS_WON,
	BR__ST_PARKS,
	BR__ST_WAKEUPS,
	BR__ST_IO_SUBMITTED,
	BR__ST_IO_COMPLETED,
	BR__ST_TIMERS_FIRED,
	BR__ST_BLOCKING_CALLS,
	BR__ST_PROC_JOBS,
	BR__ST_STALLS,
	BR__ST_COUNT
};

/*
 * A worker's observation block, in the owner-only part of its struct.
 *   st[]     counters. Each has one writer: the worker (stalls: the
 *            watchdog thread); br_stats() and the watchdog read them.
 *   trace    the worker's trace ring, set before the worker starts when
 *            BRAID_TRACE is on, else NULL; written only by the worker.
 *   on       what is watched, set before the worker starts:
 *            BR__OBS_LABEL for the stall detector alone (tasks are
 *            counted and labelled as they start; switches are not
 *            counted), BR__OBS_COUNT with BRAID_STATS (run slices are
 *            counted too), BR__OBS_TRACE with BRAID_TRACE (and recorded);
 *            else 0 (nothing counted at a task's start or a switch).
 *            Below COUNT a switch pays one load and a predicted branch.
 * The stall detector needs nothing of its own at a switch: it watches the
 * worker's fiber and tick (worker.h), which the scheduler writes anyway.
 */
enum {
	BR__OBS_LABEL = 1, /* count and label tasks as they start */
	BR__OBS_COUNT = 2, /* that, and count run slices */
	BR__OBS_TRACE = 3, /* that, and record run slices in the trace */
};

/*
 * Waits of runnable tasks (BRAID_STATS): from being queued to being
 * switched to, in buckets of 1/8 of a power of two of ns (below 8 ns, one
 * per ns), so a percentile read from them is at most 12.5% high.
 */
#define BR__WAIT_BUCKETS (8 + 60 * 8)

#ifndef BR_NO_OBS
struct br__obs {
	int on; /* BR__OBS_*, or 0 */
	struct br__trace_buf *trace;
	_Atomic uint64_t st[BR__ST_COUNT];
	/* Owner only; read by the table after the workers are joined. */
	int64_t wait_max;
	uint64_t wait_hist[BR__WAIT_BUCKETS];
};
#else
/* Compiled out (make OBS=0): no storage, and every hook below is empty. */
struct br__obs {};
#endif

/* Runtime-wide part: counters of plain threads, the watchdog, the trace
 * state. Owned by struct br_runtime; see stats.c. */
struct br__watchdog;
struct br__trace;

struct br__obs_rt {
	/* Blocking calls and process jobs from threads that are not workers:
	 * any thread, atomic increments. */
	_Atomic uint64_t ext[BR__ST_COUNT];
	/* Futex word: 1 while the watchdog sleeps because every worker is
	 * parked; see stats.c for the protocol. */
	_Atomic uint32_t wd_sleep;
	int stall_ms;		 /* 0: off */
	int print_stats;	 /* BRAID_STATS: print at br_runtime_free */
	int waits;		 /* BRAID_STATS: stamp tasks made runnable */
	struct br__watchdog *wd; /* NULL when the detector is off */
	struct br__trace *trace; /* NULL unless BRAID_TRACE */
};

/* Trace recorders (trace.c), called only when o->trace is set. */
BR__COLD void br__trace_slice_begin(struct br__trace_buf *b,
				    struct br__fiber *f);
BR__COLD void br__trace_slice_end(struct br__trace_buf *b);
/* The task of the open slice renamed itself: the slice takes the new
 * name (NULL: none). */
BR__COLD void br__trace_slice_rename(struct br__trace_buf *b, const char *name);
BR__COLD void br__trace_span(struct br__trace_buf *b, unsigned kind,
			     int64_t start, uint64_t arg);
BR__COLD void br__trace_steal(struct br__trace_buf *b, unsigned victim);

/* br__trace_span kinds. */
enum {
	BR__TR_SLICE, /* a task's run slice (trace.c records it itself) */
	BR__TR_PARK,  /* a sleep in the ring wait */
	BR__TR_IO,    /* a task waiting for one ring operation; arg: opcode */
	BR__TR_STEAL, /* an instant: tasks taken; arg: the victim */
	BR__TR_JOB,   /* a process-pool job; arg: the worker process's pid */
};

#ifndef BR_NO_OBS
/* Relaxed load and store, not an RMW: only the owner writes (header).
 * Relaxed is enough: readers want a recent value, not an ordering. */
static inline void br__stat_add(struct br__obs *o, unsigned i, uint64_t n)
{
	atomic_store_explicit(
		&o->st[i],
		atomic_load_explicit(&o->st[i], memory_order_relaxed) + n,
		memory_order_relaxed);
}

/*
 * br__obs_slice_count - count a switch into a fiber. When
 * br__obs_tracing(), the switch also records the slices it ends and
 * begins: br__obs_trace_begin() (from the scheduler into fiber f),
 * br__obs_trace_next() (from one fiber straight into f),
 * br__obs_trace_end() (back to the scheduler); fiber.c keeps those in
 * functions of their own, out of the common path. The running fiber
 * itself is published by the switch (w->fiber), not here. Context: the
 * worker owning o, at the switch (fiber.c).
 */
BR__COLD void br__obs_wait_end(struct br__obs *o, struct br__fiber *f);

static inline void br__obs_slice_count(struct br__obs *o, struct br__fiber *f)
{
	if (o->on >= BR__OBS_COUNT) {
		br__stat_add(o, BR__ST_SLICES, 1);
		br__obs_wait_end(o, f);
	}
}

/*
 * br__obs_ready - a task is being made runnable: under BRAID_STATS, stamp
 * *ready_ns (its t->ready_ns) with the time, unless it already waits
 * from an earlier stamp (a task moved from one queue to another keeps its
 * first). Context: any thread that owns the task until it queues it.
 */
static inline void br__obs_ready(const struct br__obs_rt *ort,
				 int64_t *ready_ns)
{
	if (br__unlikely(ort->waits) && !*ready_ns)
		*ready_ns = br_now_ns();
}

static inline int br__obs_tracing(struct br__obs *o)
{
	return o->on == BR__OBS_TRACE;
}

static inline void br__obs_trace_next(struct br__obs *o, struct br__fiber *f)
{
	br__trace_slice_end(o->trace);
	br__trace_slice_begin(o->trace, f);
}

static inline void br__obs_trace_begin(struct br__obs *o, struct br__fiber *f)
{
	br__trace_slice_begin(o->trace, f);
}

static inline void br__obs_trace_end(struct br__obs *o)
{
	br__trace_slice_end(o->trace);
}

/* The clock, read only while tracing: the start of a span, or 0. */
static inline int64_t br__obs_clock(struct br__obs *o)
{
	return br__unlikely(o->trace != NULL) ? br_now_ns() : 0;
}

/* A span that began at start (br__obs_clock) ends now. */
static inline void br__obs_span(struct br__obs *o, unsigned kind, int64_t start,
				uint64_t arg)
{
	if (br__unlikely(start != 0))
		br__trace_span(o->trace, kind, start, arg);
}

/* A steal from worker victim took at least one task. Owner of o. */
static inline void br__obs_steal(struct br__obs *o, unsigned victim)
{
	br__stat_add(o, BR__ST_STEALS_WON, 1);
	if (br__unlikely(o->trace != NULL))
		br__trace_steal(o->trace, victim);
}

/*
 * br__obs_task_start - worker wid starts task fn (named name, or NULL) on
 * fiber f: count it and label the fiber with the task's id (the worker
 * and its start count there), function and name, for the stall detector
 * and the trace. A child run inline only counts (wait.c). Context: the
 * worker owning o, before f is switched in.
 */
/* br__obs_task_count - count one task started (an inline child: only
 * counted, not labelled). Context: the worker owning o. */
static inline void br__obs_task_count(struct br__obs *o)
{
	if (o->on)
		br__stat_add(o, BR__ST_TASKS_RUN, 1);
}

static inline void br__obs_task_start(struct br__obs *o, unsigned wid,
				      struct br__fiber *f, void *(*fn)(void *),
				      const char *name)
{
	if (!o->on)
		return;
	/* A recycled fiber's label must not keep its last task's name. */
	if (name || atomic_load_explicit(&f->obs_name[0], memory_order_relaxed))
		br__name_label(f, name);
	br__stat_add(o, BR__ST_TASKS_RUN, 1);
	/* Relaxed: published by the release store of the worker's fiber
	 * at the switch (fiber.c). */
	atomic_store_explicit(
		&f->obs_id,
		((uint64_t)wid << 40) |
			atomic_load_explicit(&o->st[BR__ST_TASKS_RUN],
					     memory_order_relaxed),
		memory_order_relaxed);
	atomic_store_explicit(&f->obs_fn, (uintptr_t)fn, memory_order_relaxed);
}

#else  /* BR_NO_OBS: the hooks compile to nothing. */
static inline void br__stat_add(struct br__obs *o, unsigned i, uint64_t n)
{
}

static inline void br__obs_slice_count(struct br__obs *o, struct br__fiber *f)
{
}

static inline void br__obs_ready(const struct br__obs_rt *ort,
				 int64_t *ready_ns)
{
}

static inline int br__obs_tracing(struct br__obs *o)
{
	return 0;
}

static inline void br__obs_trace_next(struct br__obs *o, struct br__fiber *f)
{
}

static inline void br__obs_trace_begin(struct br__obs *o, struct br__fiber *f)
{
}

static inline void br__obs_trace_end(struct br__obs *o)
{
}

static inline int64_t br__obs_clock(struct br__obs *o)
{
	return 0;
}

static inline void br__obs_span(struct br__obs *o, unsigned kind, int64_t start,
				uint64_t arg)
{
}

static inline void br__obs_steal(struct br__obs *o, unsigned victim)
{
}

static inline void br__obs_task_count(struct br__obs *o)
{
}

static inline void br__obs_task_start(struct br__obs *o, unsigned wid,
				      struct br__fiber *f, void *(*fn)(void *),
				      const char *name)
{
}
#endif /* BR_NO_OBS */

/* br__obs_fn_name - a task function's name for reports: its symbol
 * (dladdr), else object+offset, else the address. Any thread. */
void br__obs_fn_name(uintptr_t fn, char *buf, size_t n);

/*
 * br__stats_count - count one event of counter i for rt (blocking calls,
 * process jobs): on the calling worker's counters when it is one of rt's
 * workers, else on the runtime's shared ones. Context: any thread.
 */
void br__stats_count(struct br_runtime *rt, unsigned i);

/*
 * br__stats_proc_job - the process pool's hook: count one job of rt's
 * pool finished (its result handed back, or its failure). Call it once per
 * job, from any thread (the worker or pool thread that completes the
 * job's future). Context: any thread.
 */
void br__stats_proc_job(struct br_runtime *rt);

/*
 * br__trace_proc_job - the process pool's hook for BRAID_TRACE: job `job`
 * ran in worker process pid from start_ns to end_ns (CLOCK_MONOTONIC, as
 * br_now_ns()). Shown on that process's own track of the trace. Does
 * nothing when tracing is off; cheap enough to call unconditionally.
 * Context: any thread.
 */
void br__trace_proc_job(struct br_runtime *rt, int pid, uint64_t job,
			int64_t start_ns, int64_t end_ns);

/*
 * br__watchdog_unparked - a worker has left its park (its runtime's
 * observation block ort): wake the watchdog if it sleeps because every
 * worker was parked. One load when it does not. Context: a worker, after
 * br__idle_unpark().
 */
BR__COLD void br__watchdog_wake(struct br__obs_rt *ort);

static inline void br__watchdog_unparked(struct br__obs_rt *ort)
{
#ifndef BR_NO_OBS
	/* seq_cst: pairs with the watchdog's store of wd_sleep and its
	 * load of the idle state (stats.c). */
	if (atomic_load_explicit(&ort->wd_sleep, memory_order_seq_cst))
		br__watchdog_wake(ort);
#endif
}

/* Set-up and tear-down (stats.c): read the environment (BRAID_STATS,
 * BRAID_TRACE) and stall_ms into rt->obs, make the trace rings; start
 * the watchdog once the workers run; at br_runtime_free print the stats
 * and write the trace; stop the watchdog and free everything. */
int br__obs_init(struct br_runtime *rt);
int br__obs_start(struct br_runtime *rt);
void br__obs_report(struct br_runtime *rt);
void br__obs_term(struct br_runtime *rt);

/* Trace set-up and output (trace.c). */
int br__trace_init(struct br_runtime *rt, const char *path);
void br__trace_write(struct br_runtime *rt);
void br__trace_term(struct br_runtime *rt);

#endif /* BR_STATS_H */
