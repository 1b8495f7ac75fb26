/* SPDX-License-Identifier: MIT */
/*
 * runtime.c - br_runtime_new/free: configuration, start-up and the
 * ordered shutdown; br_run.
 *
 * Design
 *   Configuration is a struct whose zero fields mean "the environment
 *   variable if set, else the default" (BRAID_WORKERS, BRAID_STACK_SIZE,
 *   BRAID_NO_URING). br_runtime_new starts the workers and waits until
 *   each has created its ring on its own thread, so the features it
 *   reports are the ones in force. A kernel without io_uring is not an
 *   error: the runtime says so once (log.c) and parks in ppoll().
 *
 *   Shutdown, in order (Tokio's worker.rs shutdown comment):
 *     1. closing = 1: spawns fail with BR_ECLOSED from now on;
 *     2. every live fiber's task is cancelled, and tasks not started yet
 *        are dropped by the worker that picks them up; repeat until no
 *        task is left (a task may start a new wait after the first
 *        request; cancellation is sticky, so that wait returns at once);
 *     3. calls from threads outside the runtime still under way are
 *        waited for: wake-ups that made a task runnable and have not yet
 *        woken its worker (the task may have run and ended meanwhile),
 *        and spawns, callbacks and blocking calls that saw the runtime
 *        open (task.c); then step 2 again, for a task such a spawn
 *        started;
 *     4. the blocking pool's running calls are waited for and its
 *        threads joined (its queued calls were cancelled in step 1);
 *     5. stop = 1 and every worker is woken; each drops leftover
 *        callbacks, tears down its ring and exits; join;
 *     6. free.
 *
 * Concurrency
 *   - br_runtime_new/free: a plain thread. The rest: any thread.
 *
 * Memory ordering
 *   - The live count is a sum of per-worker counters (br__live_add), read
 *     one after another. Once closing is set no task starts, so the counts
 *     only fall, and a sum read counter by counter is at least the true
 *     count when the last one is read: a sum of 0 means no task is
 *     running. A spawn from outside that counted itself before closing
 *     was stored (task.c, br__outside_enter) may count and queue its task
 *     after the sum read 0: br_runtime_free waits for such calls and then
 *     for the sum again, and workers drop tasks not started yet while
 *     closing, so its future still completes.
 *   - outside_calls: seq_cst loads here, after the live count reads 0:
 *     with the seq_cst store of closing, the Dekker pair of task.c's
 *     br__outside_enter(), and acquiring the callers' release decrements.
 *   - stop: release store, acquire load in the worker loop.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blocking.h"
#include "clock.h"
#include "log.h"
#include "task.h"
#include "worker.h"
#include "zygote.h"

#define MAX_WORKERS 1024
#define MAX_BLOCKING_THREADS 4096
#define DEFAULT_BLOCKING_THREADS 64
#define DEFAULT_BLOCKING_QUEUE 65536
#define DEFAULT_BLOCKING_IDLE_MS 10000
#define DEFAULT_STALL_MS 25
#define MAX_STALL_MS 3600000
/* While it waits for tasks to end, br_runtime_free cancels every live
 * task this often, so that one spawned after a sweep is cancelled too. */
#define SWEEP_NS (10 * BR__NS_PER_MS)

const char *br_version_string(void)
{
#define BR__STR2(x) #x
#define BR__STR(x) BR__STR2(x)
	return BR__STR(BR_VERSION_MAJOR) "." BR__STR(
		BR_VERSION_MINOR) "." BR__STR(BR_VERSION_PATCH);
}

/* "64K", "1M", "65536": a size, or 0 if unset or unparsable. */
static size_t env_size(const char *name)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return 0;
	v = strtoull(s, &end, 10);
	if (*end == 'k' || *end == 'K')
		v <<= 10;
	else if (*end == 'm' || *end == 'M')
		v <<= 20;
	return (size_t)v;
}

/* BRAID_STALL_MS: unset or unparsable gives the default; 0 turns the
 * detector off (-1). */
static int env_stall_ms(void)
{
	const char *s = getenv("BRAID_STALL_MS");
	char *end;
	long v;

	if (!s || !*s)
		return DEFAULT_STALL_MS;
	v = strtol(s, &end, 10);
	if (*end || v < 0)
		return DEFAULT_STALL_MS;
	if (v > MAX_STALL_MS)
		v = MAX_STALL_MS;
	return v ? (int)v : -1;
}

static int configure(struct br_runtime *rt, const br_config *cfg)
{
	br_config c = cfg ? *cfg : (br_config){ 0 };
	long ncpu;

	if (c.flags &
	    ~(BR_CONFIG_NO_URING | BR_CONFIG_QUIET | BR_CONFIG_NO_ZYGOTE))
		return -EINVAL;
	if (!c.workers)
		c.workers = (unsigned)env_size("BRAID_WORKERS");
	if (!c.workers) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		c.workers = ncpu > 0 ? (unsigned)ncpu : 1;
	}
	if (c.workers > MAX_WORKERS)
		return -EINVAL;
	if (!c.stack_size)
		c.stack_size = env_size("BRAID_STACK_SIZE");
	if (!c.stack_size)
		c.stack_size = BR__STACK_DEFAULT;
	if (c.stack_size > BR__STACK_MAX)
		return -EINVAL;
	if (c.stack_size < BR__STACK_MIN)
		c.stack_size = BR__STACK_MIN;
	c.stack_size = br__page_round(c.stack_size);
	if (!c.ring_entries)
		c.ring_entries = 256;
	if (c.ring_entries > 32768)
		return -EINVAL;
	if (env_size("BRAID_NO_URING"))
		c.flags |= BR_CONFIG_NO_URING;
	if (env_size("BRAID_NO_ZYGOTE"))
		c.flags |= BR_CONFIG_NO_ZYGOTE;
	if (!c.blocking_threads)
		c.blocking_threads =
			(unsigned)env_size("BRAID_BLOCKING_THREADS");
	if (!c.blocking_threads)
		c.blocking_threads = DEFAULT_BLOCKING_THREADS;
	if (c.blocking_threads > MAX_BLOCKING_THREADS)
		return -EINVAL;
	if (!c.blocking_queue)
		c.blocking_queue = DEFAULT_BLOCKING_QUEUE;
	if (!c.blocking_idle_ms)
		c.blocking_idle_ms = DEFAULT_BLOCKING_IDLE_MS;
	if (!c.stall_ms)
		c.stall_ms = env_stall_ms();
	if (c.stall_ms > MAX_STALL_MS)
		return -EINVAL;
	rt->obs.stall_ms = c.stall_ms > 0 ? c.stall_ms : 0;
	rt->blocking = br__blocking_new(c.blocking_threads, c.blocking_queue,
					c.blocking_idle_ms);
	if (!rt->blocking)
		return -ENOMEM;
	rt->nworkers = c.workers;
	rt->stack_size = c.stack_size;
	rt->ring_entries = c.ring_entries;
	rt->flags = c.flags;
	rt->log = (struct br__log_sink){ c.log, c.log_arg };
	return 0;
}

void br__signals_block(sigset_t *old)
{
	sigset_t all;

	/* Workers and pool threads take no asynchronous signals: those
	 * belong to the application's threads. Faults stay deliverable. */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGABRT);
	sigdelset(&all, SIGTRAP);
	pthread_sigmask(SIG_SETMASK, &all, old);
}

static void free_runtime(struct br_runtime *rt, unsigned nworkers)
{
	unsigned i;

	br__obs_term(rt);
	for (i = 0; i < nworkers; i++) {
		struct br__worker *w = &rt->workers[i];

		br__ring_exit(w);
		br__task_returns_drain(&w->returns);
		br__deque_destroy(&w->dq);
		pthread_mutex_destroy(&w->reg_lock);
	}
	br__task_returns_drain(&rt->plain_returns);
	free(rt->workers);
	br__blocking_free(rt->blocking);
	br__stack_pool_term(&rt->stacks);
	br__idle_term(&rt->idle);
	br__inject_term(&rt->inject);
	if (rt->zygote)
		br__zygote_put();
	pthread_mutex_destroy(&rt->start_lock);
	pthread_cond_destroy(&rt->start_cond);
	rt->magic = BR__MAGIC_DEAD;
	free(rt);
}

static void stop_workers(struct br_runtime *rt, unsigned n)
{
	unsigned i;

	atomic_store_explicit(&rt->stop, 1, memory_order_release);
	for (i = 0; i < n; i++)
		br__ring_wake(&rt->workers[i]);
	for (i = 0; i < n; i++)
		pthread_join(rt->workers[i].thread, NULL);
}

int br_runtime_new(br_runtime **out, const br_config *cfg)
{
	struct br_runtime *rt;
	sigset_t old;
	unsigned i, feat;
	int ret;

	if (!out)
		return -EINVAL;
	/* Aligned: its cache-aligned members keep their lines to themselves
	 * only if the record starts on a line. */
	rt = aligned_alloc(BR__CACHE_LINE, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	memset(rt, 0, sizeof(*rt));
	ret = configure(rt, cfg);
	if (ret < 0) {
		free(rt);
		return ret;
	}
	br__stack_init_process();
	rt->workers = aligned_alloc(BR__CACHE_LINE,
				    rt->nworkers * sizeof(*rt->workers));
	if (!rt->workers) {
		br__blocking_free(rt->blocking);
		free(rt);
		return -ENOMEM;
	}
	memset(rt->workers, 0, rt->nworkers * sizeof(*rt->workers));
	if (br__inject_init(&rt->inject) < 0 ||
	    br__idle_init(&rt->idle, rt->nworkers) < 0 ||
	    br__stack_pool_init(&rt->stacks, rt->stack_size) < 0) {
		free(rt->workers);
		br__blocking_free(rt->blocking);
		free(rt);
		return -ENOMEM;
	}
	pthread_mutex_init(&rt->start_lock, NULL);
	pthread_cond_init(&rt->start_cond, NULL);
	if (br__obs_init(rt) < 0) {
		free_runtime(rt, 0);
		return -ENOMEM;
	}
	for (i = 0; i < rt->nworkers; i++) {
		struct br__worker *w = &rt->workers[i];

		w->rt = rt;
		w->id = i;
		w->rng = (i + 1) * 2654435761u;
		/* Its thread makes its ring; until then there is nothing for
		 * br__ring_exit() to close (0 would be stdin). */
		w->ring.efd = -1;
		atomic_init(&w->remote_lock, 0);
		atomic_init(&w->mail, NULL);
		pthread_mutex_init(&w->reg_lock, NULL);
		br__timers_init(&w->timers);
		if (br__deque_init(&w->dq, 8) < 0) {
			free_runtime(rt, i + 1);
			return -ENOMEM;
		}
	}
	/* The zygote must be forked before this runtime's first thread. */
	if (!(rt->flags & BR_CONFIG_NO_ZYGOTE))
		rt->zygote = br__zygote_get();
	br__signals_block(&old);
	for (i = 0; i < rt->nworkers; i++) {
		ret = BR__FAULT("braid/runtime/thread") ?
			      EAGAIN :
			      pthread_create(&rt->workers[i].thread, NULL,
					     br__worker_main, &rt->workers[i]);
		if (ret) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			stop_workers(rt, i);
			free_runtime(rt, rt->nworkers);
			return -EAGAIN;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_lock(&rt->start_lock);
	while (rt->started < rt->nworkers)
		pthread_cond_wait(&rt->start_cond, &rt->start_lock);
	pthread_mutex_unlock(&rt->start_lock);
	feat = ~0u;
	for (i = 0; i < rt->nworkers; i++)
		feat &= rt->workers[i].ring.features;
	if (br__stack_guard_install_works())
		feat |= BR_FEAT_GUARD_INSTALL;
	rt->features = feat;
	ret = br__obs_start(rt);
	if (ret < 0) {
		stop_workers(rt, rt->nworkers);
		free_runtime(rt, rt->nworkers);
		return ret;
	}
	if (rt->ring_err && !(rt->flags & BR_CONFIG_QUIET))
		br__log(&rt->log, BR_LOG_WARNING,
			"io_uring unavailable (%s); workers park in "
			"ppoll and I/O waits for readiness instead",
			strerror(-rt->ring_err));
	rt->magic = BR__MAGIC_RUNTIME;
	*out = rt;
	return 0;
}

/* Cancel every live task, again every SWEEP_NS, until none is left. */
static void wait_tasks(struct br_runtime *rt, unsigned *nap)
{
	int64_t next_sweep = 0;

	while (br__live_sum(rt) > 0) {
		int64_t now = br_now_ns();

		if (now >= next_sweep) {
			br__workers_cancel_all(rt);
			next_sweep = now + SWEEP_NS;
		}
		br__nap(nap);
	}
}

void br_runtime_free(br_runtime *rt)
{
	struct br__worker *me = br__worker_current();
	struct br__task *t;
	unsigned nap = 0;

	if (!br__runtime_ok(rt))
		return;
	if (br__worker_of(me, rt)) {
		br__log(&rt->log, BR_LOG_ERR,
			"br_runtime_free called from one of its own "
			"workers; ignored");
		return;
	}
	if (br__blocking_is_own_thread(rt->blocking)) {
		br__log(&rt->log, BR_LOG_ERR,
			"br_runtime_free called from its own blocking "
			"pool; ignored");
		return;
	}
	/* seq_cst: pairs with task.c's br__outside_enter() (and with a spawn's
	 * re-check of closing). */
	atomic_store_explicit(&rt->closing, 1, memory_order_seq_cst);
	br__blocking_close(rt->blocking);
	wait_tasks(rt, &nap);
	/* No task is left to be woken, and a call from outside that counts
	 * itself from now on sees closing (task.c, br__outside_enter): wait for
	 * those still under way, then for any task a spawn among them let
	 * through before closing. seq_cst: the Dekker pair with
	 * br__outside_enter(); it also acquires the callers' release decrements.
	 * Before the blocking pool goes: br_spawn_blocking() is such a
	 * call. */
	while (atomic_load_explicit(&rt->outside_calls, memory_order_seq_cst))
		br__nap(&nap);
	wait_tasks(rt, &nap);
	br__blocking_free(rt->blocking);
	rt->blocking = NULL;
	stop_workers(rt, rt->nworkers);
	while ((t = br__inject_pop(&rt->inject)))
		br__task_drop(t);
	br__obs_report(rt);
	free_runtime(rt, rt->nworkers);
}

unsigned br_runtime_workers(const br_runtime *rt)
{
	return br__runtime_ok(rt) ? rt->nworkers : 0;
}

unsigned br_runtime_features(const br_runtime *rt)
{
	return br__runtime_ok(rt) ? rt->features : 0;
}

br_runtime *br_current_runtime(void)
{
	struct br__worker *w = br__worker_current();

	return w ? w->rt : NULL;
}

int br_worker_id(void)
{
	struct br__worker *w = br__worker_current();

	return w ? (int)w->id : -1;
}

int br_run(const br_config *cfg, br_task_fn main, void *arg, void **value)
{
	br_runtime *rt;
	br_future *f;
	int ret;

	if (value)
		*value = NULL;
	if (!main)
		return -EINVAL;
	ret = br_runtime_new(&rt, cfg);
	if (ret < 0)
		return ret;
	f = br_spawn(rt, main, arg);
	ret = br_await(f, value);
	br_future_release(f);
	br_runtime_free(rt);
	return ret;
}
