/* SPDX-License-Identifier: MIT */
/*
 * stats.c - br_stats(), the BRAID_STATS table, and the stall detector's
 * watchdog thread.
 *
 * Design
 *   Counters are per worker, in the owner-only part of its struct, and
 *   bumped by the owner with a plain load and store (stats.h): a shared
 *   counter bounced between cores would cost a locked instruction and a
 *   cache miss per event. br_stats() sums them without stopping anybody.
 *   Events of threads that are not workers (a blocking call submitted
 *   from main, a process job completed by a pool thread) go to per-runtime
 *   atomics instead, which only those slower paths touch.
 *
 *   The stall detector (Seastar's reactor stall detector, with a thread in
 *   place of its timer signal). Its heartbeat costs the workers nothing of
 *   their own: each worker already stores the fiber it runs (w->fiber, NULL
 *   while it is in its scheduler) at every switch, and moves its tick before
 *   every switch into a fiber (a scheduler tick, or a direct hand-off), so the
 *   pair (fiber, tick) changes from one run slice to the next even when the
 *   same fiber runs again. The watchdog samples both every quarter of the
 *   threshold: a worker seen with the same fiber and the same tick at two
 *   samples threshold apart has been running one slice for at least that long,
 *   and is reported once, while it still runs. The slice began after the
 *   previous sample that saw something else, so the duration given, counted
 *   from the first sample that saw it, is a lower bound, short by at most one
 *   period; a slice is never reported before it has really run for the
 *   threshold. The report names the task through its fiber's header
 *   (obs_id, obs_name, obs_fn), which is never freed (fiber.c), so a
 *   stale read is at worst a wrong name, and the fiber and tick are
 *   re-read after the name to drop a slice that ended meanwhile. Reading
 *   the clock at every switch instead would cost more than the switch
 *   itself.
 *
 *   The watchdog costs the workers nothing while they run. When every
 *   worker is parked and none has parked again for a few samples, it stops
 *   sampling and sleeps on the wd_sleep futex until a worker leaves its
 *   park (br__watchdog_unparked: one load per unpark, and a wake-up only
 *   after such a sleep). A runtime that wakes often (a periodic timer)
 *   keeps the watchdog sampling at its period instead, which costs the
 *   watchdog's thread, not the workers.
 *
 * Invariants
 *   - A stalled slice is reported at most once (seen[].reported).
 *
 * Concurrency
 *   - Counters: one writer each (the owner worker; stalls: the watchdog);
 *     readers anywhere, relaxed.
 *   - seen[]: the watchdog thread only.
 *   - ext[]: any thread, relaxed RMWs.
 *
 * Memory ordering
 *   - wd_sleep and the idle state form a Dekker pair: the watchdog stores
 *     wd_sleep = 1 (seq_cst) then loads the idle state (seq_cst) and
 *     sleeps only if no worker is unparked; a worker's unpark is a seq_cst
 *     RMW of the idle state (its own, or its notifier's, which happens
 *     before the worker runs on) followed by its seq_cst load of wd_sleep
 *     (br__watchdog_unparked). Either the watchdog sees the worker
 *     unparked, or the worker sees wd_sleep and wakes it.
 *   - w->fiber is stored with release at the switch, after the fiber's
 *     header labels (obs_id, obs_fn) and the tick's move, and loaded with
 *     acquire by the watchdog before the tick: the name it prints belongs
 *     to the fiber it saw, and a tick read after a fiber is at least the
 *     one that fiber's switch followed (so one fiber switched in twice
 *     between two samples never looks like one slice).
 *
 * Lifetime
 *   The watchdog starts after the workers (br__obs_start) and is stopped
 *   and joined first thing in free_runtime (br__obs_term), before any
 *   worker struct goes away.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blocking.h"
#include "clock.h"
#include "fiber.h"
#include "futex.h"
#include "log.h"
#include "stats.h"
#include "task.h"
#include "worker.h"

_Static_assert(sizeof(br_worker_stats) == 32 * sizeof(uint64_t),
	       "br_worker_stats keeps its size");
_Static_assert(offsetof(br_worker_stats, tasks_run) ==
		       BR__ST_TASKS_RUN * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, slices) ==
		       BR__ST_SLICES * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, steals_tried) ==
		       BR__ST_STEALS_TRIED * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, steals_won) ==
		       BR__ST_STEALS_WON * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, parks) ==
		       BR__ST_PARKS * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, wakeups) ==
		       BR__ST_WAKEUPS * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, io_submitted) ==
		       BR__ST_IO_SUBMITTED * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, io_completed) ==
		       BR__ST_IO_COMPLETED * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, timers_fired) ==
		       BR__ST_TIMERS_FIRED * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, blocking_calls) ==
		       BR__ST_BLOCKING_CALLS * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, proc_jobs) ==
		       BR__ST_PROC_JOBS * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, stalls) ==
		       BR__ST_STALLS * sizeof(uint64_t),
	       "");
_Static_assert(offsetof(br_worker_stats, reserved) ==
		       BR__ST_COUNT * sizeof(uint64_t),
	       "every counter has a field");

#ifndef BR_NO_OBS
/* Samples with every worker parked and no new park before the watchdog
 * stops sampling and sleeps until a worker unparks. */
/* The watchdog never looks more often than this. */
#define WATCH_MIN_NS BR__NS_PER_MS
#define QUIET_SAMPLES 4

/* What the watchdog saw of one worker at its last sample. */
struct seen {
	uint32_t tick;		 /* the worker's tick */
	struct br__fiber *fiber; /* running then, or NULL */
	int64_t since;		 /* first sample that saw this slice */
	int reported;		 /* this slice has been reported */
};

struct br__watchdog {
	struct br_runtime *rt;
	pthread_t thread;
	_Atomic uint32_t stop; /* futex word of the timed sleeps */
	int64_t period_ns;
	int64_t threshold_ns;
	struct seen seen[]; /* one per worker */
};

/* ---- counters ---- */

void br__stats_count(struct br_runtime *rt, unsigned i)
{
	struct br__worker *w = br__worker_current();

	if (br__worker_of(w, rt))
		br__stat_add(&w->obs, i, 1);
	else
		/* Relaxed: a count, read only for its value. */
		atomic_fetch_add_explicit(&rt->obs.ext[i], 1,
					  memory_order_relaxed);
}

void br__stats_proc_job(struct br_runtime *rt)
{
	if (br__runtime_ok(rt))
		br__stats_count(rt, BR__ST_PROC_JOBS);
}

static void read_worker(struct br__worker *w, br_worker_stats *out)
{
	uint64_t *c = (uint64_t *)out;
	unsigned i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < BR__ST_COUNT; i++)
		c[i] = atomic_load_explicit(&w->obs.st[i],
					    memory_order_relaxed);
}

static void add_to(br_worker_stats *sum, const br_worker_stats *x)
{
	uint64_t *s = (uint64_t *)sum;
	const uint64_t *v = (const uint64_t *)x;
	unsigned i;

	for (i = 0; i < BR__ST_COUNT; i++)
		s[i] += v[i];
}

/* Fill total with the runtime's sums, and ext with the plain threads'. */
static void read_totals(struct br_runtime *rt, br_worker_stats *total,
			br_worker_stats *ext)
{
	br_worker_stats one;
	uint64_t *e = (uint64_t *)ext;
	unsigned i;

	memset(total, 0, sizeof(*total));
	memset(ext, 0, sizeof(*ext));
	for (i = 0; i < rt->nworkers; i++) {
		read_worker(&rt->workers[i], &one);
		add_to(total, &one);
	}
	for (i = 0; i < BR__ST_COUNT; i++)
		e[i] = atomic_load_explicit(&rt->obs.ext[i],
					    memory_order_relaxed);
	add_to(total, ext);
}

int br_stats(br_runtime *rt, br_runtime_stats *stats)
{
	br_worker_stats ext;
	unsigned i;

	if (!br__runtime_ok(rt))
		return BR_EBADOBJ;
	if (!stats || (!stats->workers && stats->nworkers))
		return -EINVAL;
	for (i = 0; i < stats->nworkers && i < rt->nworkers; i++)
		read_worker(&rt->workers[i], &stats->workers[i]);
	read_totals(rt, &stats->total, &ext);
	stats->nworkers = rt->nworkers;
	return (int)rt->nworkers;
}

static void print_row(FILE *f, const char *label, const br_worker_stats *s)
{
	fprintf(f,
		"%-9s %9llu %9llu %7llu/%-7llu %8llu %8llu %9llu %9llu "
		"%8llu %8llu %7llu %6llu\n",
		label, (unsigned long long)s->tasks_run,
		(unsigned long long)s->slices,
		(unsigned long long)s->steals_won,
		(unsigned long long)s->steals_tried,
		(unsigned long long)s->parks, (unsigned long long)s->wakeups,
		(unsigned long long)s->io_submitted,
		(unsigned long long)s->io_completed,
		(unsigned long long)s->timers_fired,
		(unsigned long long)s->blocking_calls,
		(unsigned long long)s->proc_jobs,
		(unsigned long long)s->stalls);
}

/* ---- waits of runnable tasks ---- */

static unsigned wait_bucket(int64_t ns)
{
	unsigned m;

	if (ns < 8)
		return ns < 0 ? 0 : (unsigned)ns;
	m = 63u - (unsigned)__builtin_clzll((unsigned long long)ns);
	return 8 + (m - 3) * 8 + (unsigned)((ns >> (m - 3)) & 7);
}

/* The least ns above every wait in bucket i. */
static int64_t wait_bucket_top(unsigned i)
{
	unsigned m = (i - 8) / 8 + 3, s = (i - 8) % 8;

	if (i < 8)
		return (int64_t)i + 1;
	return (int64_t)(9 + s) << (m - 3);
}

void br__obs_wait_end(struct br__obs *o, struct br__fiber *f)
{
	struct br__task *t = f->top;
	int64_t d;

	if (!t->ready_ns)
		return;
	d = br_now_ns() - t->ready_ns;
	t->ready_ns = 0;
	if (d > o->wait_max)
		o->wait_max = d;
	o->wait_hist[wait_bucket(d)]++;
}

/* One line: how long runnable tasks waited to run, over every worker. */
static void print_waits(FILE *f, struct br_runtime *rt)
{
	static const double q[] = { 0.5, 0.99, 0.999 };
	uint64_t n = 0, seen = 0;
	int64_t max = 0, at[3] = { 0, 0, 0 };
	unsigned i, j, k = 0;

	for (i = 0; i < rt->nworkers; i++) {
		if (rt->workers[i].obs.wait_max > max)
			max = rt->workers[i].obs.wait_max;
		for (j = 0; j < BR__WAIT_BUCKETS; j++)
			n += rt->workers[i].obs.wait_hist[j];
	}
	if (!n)
		return;
	for (j = 0; j < BR__WAIT_BUCKETS && k < 3; j++) {
		for (i = 0; i < rt->nworkers; i++)
			seen += rt->workers[i].obs.wait_hist[j];
		while (k < 3 && (double)seen >= q[k] * (double)n) {
			at[k] = wait_bucket_top(j);
			if (at[k] > max)
				at[k] = max;
			k++;
		}
	}
	fprintf(f,
		"runnable waits: %llu, median %.1f us, p99 %.1f us, "
		"p99.9 %.1f us, max %.1f us (queued to running; "
		"percentiles at most 12.5%% high)\n",
		(unsigned long long)n, at[0] / 1e3, at[1] / 1e3, at[2] / 1e3,
		max / 1e3);
}

/* The BRAID_STATS table, as one message (log.c). */
static void print_stats(struct br_runtime *rt)
{
	br_worker_stats one, total, ext;
	char label[32], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	unsigned i;

	if (!f)
		return;
	fprintf(f, "stats: %u worker%s\n", rt->nworkers,
		rt->nworkers == 1 ? "" : "s");
	fprintf(f, "%-9s %9s %9s %15s %8s %8s %9s %9s %8s %8s %7s %6s\n", "",
		"tasks", "slices", "steals won/try", "parks", "wakeups",
		"io sub", "io done", "timers", "blocking", "jobs", "stalls");
	for (i = 0; i < rt->nworkers; i++) {
		read_worker(&rt->workers[i], &one);
		snprintf(label, sizeof(label), "worker %u", i);
		print_row(f, label, &one);
	}
	read_totals(rt, &total, &ext);
	print_row(f, "threads", &ext);
	print_row(f, "total", &total);
	print_waits(f, rt);
	fclose(f);
	if (buf)
		br__log(&rt->log, BR_LOG_INFO, "%s", buf);
	free(buf);
}

/* ---- naming a task's function ---- */

void br__obs_fn_name(uintptr_t fn, char *buf, size_t n)
{
	Dl_info info;
	const char *obj;

	if (fn && dladdr((void *)fn, &info)) {
		if (info.dli_sname) {
			if ((uintptr_t)info.dli_saddr == fn)
				snprintf(buf, n, "%s", info.dli_sname);
			else
				snprintf(buf, n, "%s+0x%lx", info.dli_sname,
					 (unsigned long)(fn -
							 (uintptr_t)info
								 .dli_saddr));
			return;
		}
		if (info.dli_fname) {
			obj = strrchr(info.dli_fname, '/');
			snprintf(buf, n, "%s+0x%lx",
				 obj ? obj + 1 : info.dli_fname,
				 (unsigned long)(fn -
						 (uintptr_t)info.dli_fbase));
			return;
		}
	}
	snprintf(buf, n, "0x%lx", (unsigned long)fn);
}

/* ---- the watchdog ---- */

void br__watchdog_wake(struct br__obs_rt *ort)
{
	/* seq_cst: one waker takes the sleep and makes the system call. */
	if (atomic_exchange_explicit(&ort->wd_sleep, 0, memory_order_seq_cst))
		br__futex_wake(&ort->wd_sleep);
}

static void report(struct br__watchdog *wd, unsigned i, struct seen *s,
		   int64_t now)
{
	struct br__worker *w = &wd->rt->workers[i];
	uint64_t id =
		atomic_load_explicit(&s->fiber->obs_id, memory_order_relaxed);
	uintptr_t fn =
		atomic_load_explicit(&s->fiber->obs_fn, memory_order_relaxed);
	char name[192], task_name[BR_TASK_NAME_MAX];

	/* The slice may have ended while we read its labels. Acquire:
	 * as in sample(). */
	if (atomic_load_explicit(&w->fiber, memory_order_acquire) != s->fiber ||
	    atomic_load_explicit(&w->tick, memory_order_relaxed) != s->tick)
		return;
	s->reported = 1;
	br__stat_add(&w->obs, BR__ST_STALLS, 1);
	/* The task's name if it has one, else its function's. */
	br__name_read(s->fiber, task_name);
	if (task_name[0])
		snprintf(name, sizeof(name), "%s", task_name);
	else
		br__obs_fn_name(fn, name, sizeof(name));
	br__log(&wd->rt->log, BR_LOG_WARNING,
		"stall: task %u.%llu (%s) has held worker %u for %lld ms "
		"(threshold %lld ms)",
		(unsigned)(id >> 40),
		(unsigned long long)(id & ((UINT64_C(1) << 40) - 1)), name, i,
		(long long)((now - s->since) / BR__NS_PER_MS),
		(long long)(wd->threshold_ns / BR__NS_PER_MS));
}

/* One sample of every worker. Returns 1 if some worker runs a task. */
static int sample(struct br__watchdog *wd, int64_t now, uint64_t *parks)
{
	struct br_runtime *rt = wd->rt;
	int busy = 0;
	unsigned i;

	*parks = 0;
	for (i = 0; i < rt->nworkers; i++) {
		struct br__worker *w = &rt->workers[i];
		struct seen *s = &wd->seen[i];
		struct br__fiber *f;
		uint32_t tick;

		*parks += atomic_load_explicit(&w->obs.st[BR__ST_PARKS],
					       memory_order_relaxed);
		/* Acquire: pairs with the release store of w->fiber at the
		 * switch, after the fiber's labels and the tick (header). */
		f = atomic_load_explicit(&w->fiber, memory_order_acquire);
		/* Relaxed: ordered after the fiber's load by its acquire. */
		tick = atomic_load_explicit(&w->tick, memory_order_relaxed);
		if (!f) {
			s->fiber = NULL;
			continue;
		}
		busy = 1;
		if (f != s->fiber || tick != s->tick) {
			s->fiber = f;
			s->tick = tick;
			s->since = now;
			s->reported = 0;
			continue;
		}
		if (!s->reported && now - s->since >= wd->threshold_ns)
			report(wd, i, s, now);
	}
	return busy;
}

/* Sleep until a worker unparks, unless one is unparked already. */
static void sleep_while_parked(struct br__watchdog *wd)
{
	struct br_runtime *rt = wd->rt;
	uint32_t st;

	/* seq_cst: Dekker pair with the workers' unpark (header). */
	atomic_store_explicit(&rt->obs.wd_sleep, 1, memory_order_seq_cst);
	st = atomic_load_explicit(&rt->idle.state, memory_order_seq_cst);
	if ((st >> 16) == 0 &&
	    !atomic_load_explicit(&wd->stop, memory_order_relaxed))
		br__futex_wait(&rt->obs.wd_sleep, 1, -1);
	/* Relaxed: only saves later unparks a needless exchange. */
	atomic_store_explicit(&rt->obs.wd_sleep, 0, memory_order_relaxed);
}

static void *watchdog_main(void *arg)
{
	struct br__watchdog *wd = arg;
	uint64_t parks, last_parks = 0;
	unsigned quiet = 0;

	for (;;) {
		/* Relaxed: stop only ends the loop; the join orders the
		 * rest. */
		if (atomic_load_explicit(&wd->stop, memory_order_relaxed))
			break;
		br__futex_wait(&wd->stop, 0, br_now_ns() + wd->period_ns);
		if (atomic_load_explicit(&wd->stop, memory_order_relaxed))
			break;
		if (sample(wd, br_now_ns(), &parks) || parks != last_parks) {
			last_parks = parks;
			quiet = 0;
			continue;
		}
		if (++quiet < QUIET_SAMPLES)
			continue;
		quiet = 0;
		sleep_while_parked(wd);
	}
	return NULL;
}

static int watchdog_start(struct br_runtime *rt)
{
	struct br__watchdog *wd;
	sigset_t old;
	int ret;

	wd = calloc(1, sizeof(*wd) + rt->nworkers * sizeof(wd->seen[0]));
	if (!wd)
		return -ENOMEM;
	wd->rt = rt;
	wd->threshold_ns = br__ms_to_ns(rt->obs.stall_ms);
	/* A stall is seen within a quarter of the threshold past it. */
	wd->period_ns = wd->threshold_ns / 4;
	if (wd->period_ns < WATCH_MIN_NS)
		wd->period_ns = WATCH_MIN_NS;
	br__signals_block(&old);
	ret = BR__FAULT("braid/stats/thread") ?
		      EAGAIN :
		      pthread_create(&wd->thread, NULL, watchdog_main, wd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		free(wd);
		return -EAGAIN;
	}
	rt->obs.wd = wd;
	return 0;
}

static void watchdog_stop(struct br_runtime *rt)
{
	struct br__watchdog *wd = rt->obs.wd;

	if (!wd)
		return;
	/* Relaxed: the futex calls and the join order the rest. */
	atomic_store_explicit(&wd->stop, 1, memory_order_relaxed);
	br__futex_wake(&wd->stop);
	br__watchdog_wake(&rt->obs);
	pthread_join(wd->thread, NULL);
	free(wd);
	rt->obs.wd = NULL;
}

/* ---- set-up and tear-down ---- */

static int env_on(const char *name)
{
	const char *s = getenv(name);

	return s && *s && strcmp(s, "0") != 0;
}

int br__obs_init(struct br_runtime *rt)
{
	const char *path = getenv("BRAID_TRACE");
	int ret, on = 0;

	rt->obs.print_stats = env_on("BRAID_STATS");
	rt->obs.waits = rt->obs.print_stats;
	if (path && *path) {
		ret = br__trace_init(rt, path);
		if (ret < 0)
			return ret;
	}
	if (rt->obs.trace)
		on = BR__OBS_TRACE;
	else if (rt->obs.print_stats)
		on = BR__OBS_COUNT;
	else if (rt->obs.stall_ms > 0)
		on = BR__OBS_LABEL;
	for (unsigned i = 0; i < rt->nworkers; i++)
		rt->workers[i].obs.on = on;
	return 0;
}

int br__obs_start(struct br_runtime *rt)
{
	return rt->obs.stall_ms > 0 ? watchdog_start(rt) : 0;
}

void br__obs_report(struct br_runtime *rt)
{
	watchdog_stop(rt);
	if (rt->obs.print_stats)
		print_stats(rt);
	if (rt->obs.trace)
		br__trace_write(rt);
}

void br__obs_term(struct br_runtime *rt)
{
	watchdog_stop(rt);
	br__trace_term(rt);
}

#else  /* BR_NO_OBS: compiled out (make OBS=0), for measuring its cost. */

void br__stats_count(struct br_runtime *rt, unsigned i)
{
}

void br__stats_proc_job(struct br_runtime *rt)
{
}

void br__trace_proc_job(struct br_runtime *rt, int pid, uint64_t job,
			int64_t start_ns, int64_t end_ns)
{
}

void br__watchdog_wake(struct br__obs_rt *ort)
{
}

int br_stats(br_runtime *rt, br_runtime_stats *stats)
{
	if (!br__runtime_ok(rt))
		return BR_EBADOBJ;
	if (!stats || (!stats->workers && stats->nworkers))
		return -EINVAL;
	if (stats->workers)
		memset(stats->workers, 0,
		       (stats->nworkers < rt->nworkers ? stats->nworkers :
							 rt->nworkers) *
			       sizeof(stats->workers[0]));
	memset(&stats->total, 0, sizeof(stats->total));
	stats->nworkers = rt->nworkers;
	return (int)rt->nworkers;
}

int br__obs_init(struct br_runtime *rt)
{
	return 0;
}

int br__obs_start(struct br_runtime *rt)
{
	return 0;
}

void br__obs_report(struct br_runtime *rt)
{
}

void br__obs_term(struct br_runtime *rt)
{
}
#endif /* BR_NO_OBS */
