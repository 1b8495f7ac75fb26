/* SPDX-License-Identifier: MIT */
/*
 * remote.h - what the process pool offers a transport that runs its jobs
 * on other machines (libbraid-mpi), and nothing else: the exported part
 * of libbraid that braid.h does not show. See pool_remote.c.
 *
 * Design
 *   A transport registers a table of operations once. A pool made with
 *   br_pool_config.mpi hands itself to the transport, which from then on
 *   takes waiting jobs out of the pool's overflow list (br__remote_take),
 *   ships them, and settles them with what came back (br__remote_done) or
 *   fails those of a rank that died (br__remote_lost). Everything else
 *   (futures, cancellation, time limits, br_map, br_imap) stays the
 *   pool's. On the serving side, br__remote_run runs a shipped job on a
 *   local pool and gives back its encoded items, exactly as a local
 *   worker would have pushed them.
 *
 * Concurrency
 *   Every function here may be called from any thread; the pool's lock
 *   orders them (pool.h). The operations a transport registers are
 *   called with no pool lock held, and must not block.
 */
#ifndef BR_REMOTE_H
#define BR_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "braid.h"

/* Exported from libbraid.so for libbraid-mpi.so, not part of the API. */
#define BR__EXPORT __attribute__((visibility("default")))

/* A job handed to a transport. in and len stay valid until the job is
 * settled: the transport copies them before it returns from its send. */
struct br__remote_job {
	uint64_t id;
	br_job_fn fn;
	const void *in;
	size_t len;
	uint32_t nitems; /* items of len / nitems bytes each */
	int64_t timeout_ns;
};

struct br__remote_ops {
	/*
	 * A pool with br_pool_config.mpi was made: start it on the other
	 * ranks. Returns a new reference to a future whose value, once
	 * DONE, is the number of workers the other ranks add (intptr_t; 0:
	 * none, the pool stays local), or which fails br_pool_new() with its
	 * error; and stores the transport's state for the pool. The transport
	 * holds a reference to p from then on, and drops it with
	 * br__remote_put() once it is done with p (after pool_free). Context:
	 * br_pool_new()'s caller, which awaits the future.
	 */
	br_future *(*pool_new)(br_pool *p, const br_pool_config *cfg,
			       void **state);
	/* Jobs wait in the pool's overflow list. Must not block. */
	void (*kick)(void *state);
	/* The pool closes: every job it shipped has been failed. After this
	 * returns, the transport no longer touches the pool. */
	void (*pool_free)(void *state);
	/* A job shipped to rank was cancelled: tell it (best effort). */
	void (*cancel)(void *state, int rank, uint64_t id);
};

/* Register the transport, once per process. 0, or -EBUSY. */
BR__EXPORT int br__remote_register(const struct br__remote_ops *ops);

/*
 * br__remote_take - take up to max waiting jobs of p (oldest first) for
 * rank, at most max_bytes of input in all (but always one, if any may
 * go), into out. They are W_REMOTE from now on. Returns how many.
 *
 * min_wait_ns > 0: only jobs that have waited that long since they were
 * submitted; if the oldest has not, *due_ns (else untouched) gets the time
 * (br_now_ns) when it will have.
 */
BR__EXPORT size_t br__remote_take(br_pool *p, int rank,
				  struct br__remote_job *out, size_t max,
				  size_t max_bytes, int64_t min_wait_ns,
				  int64_t *due_ns);

/* br__remote_done - settle job id of p with the encoded items that came
 * back (pool_shm.h's item format). An id that names no job is ignored. */
BR__EXPORT void br__remote_done(br_pool *p, uint64_t id, const void *items,
				size_t len);

/* br__remote_fail - job id of p failed as a whole on its rank (its
 * worker died, its time limit passed): fail it with err and msg. */
BR__EXPORT void br__remote_fail(br_pool *p, uint64_t id, int err,
				const char *msg);

/* br__remote_lost - rank is gone: fail every job shipped there with
 * BR_EWORKERDIED and why. */
BR__EXPORT void br__remote_lost(br_pool *p, int rank, const char *why);

/*
 * br__remote_run - run a shipped job (nitems items of len / nitems bytes)
 * on the local pool p. Returns a new reference to a future whose bytes
 * are the encoded items when it is DONE; it FAILS as the job would
 * locally (a worker that died, a time limit, a closed pool).
 */
BR__EXPORT br_future *br__remote_run(br_pool *p, br_job_fn fn, const void *in,
				     size_t len, uint32_t nitems,
				     int64_t timeout_ns);

/* How many jobs wait in p's overflow list (a relaxed read: a hint for
 * when to call br__remote_take). */
BR__EXPORT size_t br__remote_waiting(br_pool *p);

/* Drop the transport's reference to p (see pool_new). */
BR__EXPORT void br__remote_put(br_pool *p);

/* The number of workers of the local pool p. */
BR__EXPORT unsigned br__remote_local_workers(br_pool *p);

#endif /* BR_REMOTE_H */
