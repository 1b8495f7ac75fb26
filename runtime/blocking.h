/* SPDX-License-Identifier: MIT */
/*
 * blocking.h - the elastic blocking pool behind br_spawn_blocking(): the
 * hooks runtime.c calls. See blocking.c.
 */
#ifndef BR_BLOCKING_H
#define BR_BLOCKING_H

#include <signal.h>

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

#endif /* BR_BLOCKING_H */
