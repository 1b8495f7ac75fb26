/* SPDX-License-Identifier: MIT */
/*
 * blocking.h - the elastic blocking pool behind br_spawn_blocking(): the
 * hooks runtime.c calls, and br__offload() for calls that a task may stop
 * waiting for. See blocking.c.
 */
#ifndef BR_BLOCKING_H
#define BR_BLOCKING_H

#include <signal.h>
#include <stdatomic.h>

#include "braid.h"
#include "internal.h"

struct br__blocking;

/*
 * br__blocking_new - make rt's pool from the configuration (no thread
 * starts until the first call). Returns NULL if out of memory. Context:
 * br_runtime_new().
 */
struct br__blocking *br__blocking_new(unsigned max_threads, unsigned max_queue,
				      unsigned idle_ms);

/*
 * br__blocking_close - refuse new calls (BR_ECLOSED) and cancel every
 * queued one; calls already running go on. Context: br_runtime_free().
 */
void br__blocking_close(struct br__blocking *p);

/*
 * br__blocking_free - wait for the running calls to return and every
 * thread of the pool to exit, join them, free the pool. NULL is a no-op.
 * Context: br_runtime_free(), after br__blocking_close().
 */
void br__blocking_free(struct br__blocking *p);

/*
 * br__signals_block - block every asynchronous signal in the calling
 * thread, storing the old mask in *old; threads created meanwhile inherit
 * the mask, as workers and pool threads should: signals belong to the
 * application's threads. Faults stay deliverable. (runtime.c)
 */
void br__signals_block(sigset_t *old);

/* 1 if the calling thread is one of p's threads. */
int br__blocking_is_own_thread(const struct br__blocking *p);

/*
 * A call that may block (a file-system call, a name lookup), made off the
 * loop for a task that may stop waiting for it: cancelled, or past its
 * deadline scope. Embedded in a record the caller mallocs with the call's
 * arguments and room for its results; run(c) makes the call on a pool
 * thread, and drop(c) frees the record, with any result nobody took,
 * once both the task and the call have let go of it.
 */
struct br__offload {
	void (*run)(struct br__offload *c);
	void (*drop)(struct br__offload *c);
	_Atomic int refs; /* set by br__offload(): the task's, the call's */
};

/*
 * br__offload_where - where the calling thread makes a call that may
 * block: 1 off the loop (a task: br__offload()), 0 right here (a plain
 * thread), or BR_ENOTTASK (a loop callback, which must not block and
 * cannot wait).
 */
int br__offload_where(void);

/*
 * br__offload - run c->run(c) on the runtime's blocking pool and await it
 * through a shield: 0 once it has returned (the caller takes its results
 * from the record), or what ended the wait first (-ECANCELED, -ETIMEDOUT,
 * the pool's error), while the call, which cannot be stopped, goes on.
 * Either way the caller then lets go with br__offload_put(c). Context: a
 * task.
 */
int br__offload(struct br__offload *c);

/* Let go of c; the last of the task and the call drops it. */
void br__offload_put(struct br__offload *c);

#endif /* BR_BLOCKING_H */
