/* SPDX-License-Identifier: MIT */
/*
 * runtime.h - the runtime: its configuration, its workers, the queues
 * and pools they share. See runtime.c for set-up and the ordered
 * shutdown.
 */
#ifndef BR_RUNTIME_H
#define BR_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "braid.h"
#include "fiber.h"
#include "idle.h"
#include "inject.h"
#include "internal.h"
#include "log.h"
#include "stats.h"

struct br__worker;
struct br__blocking;

struct br_runtime {
	uint32_t magic; /* BR__MAGIC_RUNTIME while live */
	unsigned nworkers;
	size_t stack_size;
	unsigned ring_entries;
	unsigned flags;	     /* BR_CONFIG_* */
	unsigned features;   /* BR_FEAT_*, AND of every worker's */
	_Atomic int closing; /* spawns fail with BR_ECLOSED */
	_Atomic int stop;    /* workers leave their loops */
	/* The part of the live-task count that plain threads change; the rest
	 * is in each worker's live (br__live_add) */
	_Atomic int64_t live_ext;
	/* Calls from threads outside the runtime (plain ones, blocking
	 * threads, other runtimes' workers) that may touch it while no live
	 * task holds br_runtime_free() back, which it waits out (task.c,
	 * br__outside_enter). On a line of its own: workers never touch
	 * it. */
	BR__CACHE_ALIGNED _Atomic long outside_calls;
	struct br__inject inject;
	struct br__idle idle;
	struct br__stack_pool stacks; /* default-size stacks */
	pthread_mutex_t start_lock;   /* protects started and start_err */
	pthread_cond_t start_cond;
	unsigned started;
	int ring_err;		 /* first ring set-up error, for the warning */
	struct br__log_sink log; /* br_config.log and log_arg (log.c) */
	struct br__worker *workers;    /* nworkers of them, cache aligned */
	struct br__blocking *blocking; /* br_spawn_blocking's pool */
	int zygote;	       /* holds a reference to the zygote (pool.c) */
	struct br__obs_rt obs; /* stats, watchdog, trace (stats.h) */
	/* Task records plain threads made for it, freed on its workers and
	 * popped by the next plain thread that spawns (task.c). Last, on a
	 * line of its own. */
	BR__CACHE_ALIGNED struct br__returns plain_returns;
};

static inline int br__runtime_ok(const struct br_runtime *rt)
{
	return rt && rt->magic == BR__MAGIC_RUNTIME;
}

#endif /* BR_RUNTIME_H */
