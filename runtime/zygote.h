/* SPDX-License-Identifier: MIT */
/*
 * zygote.h - the process-wide zygote that forks process-pool workers.
 * See zygote.c.
 */
#ifndef BR_ZYGOTE_H
#define BR_ZYGOTE_H

#include <stdint.h>
#include <sys/types.h>

/*
 * br__zygote_get - take a reference to the zygote, forking it first if
 * there is none and the process has one thread. Returns 1 with a
 * reference, 0 without (multi-threaded, or it could not be forked).
 * Context: br_runtime_new(), before its threads start.
 */
int br__zygote_get(void);

/* br__zygote_put - drop a reference; the last one ends and reaps the
 * zygote. Context: br_runtime_free(), after its threads are joined. */
void br__zygote_put(void);

/*
 * br__zygote_fork - have the zygote fork a pool worker that runs
 * br__pool_worker_main(memfd, efd, idx, gen) as a child of this process.
 * Returns its pid, or a negative errno (-ENOTSUP without a zygote);
 * -ENOLINK if the zygote took the request and its answer was lost: a
 * worker may have been made, and says so in the pool's memory
 * (BR__PW_OWNER).
 * Blocks for the fork (about a millisecond). Context: a plain thread (the
 * blocking pool), never a loop.
 */
pid_t br__zygote_fork(int memfd, int efd, unsigned idx, uint32_t gen);

#endif /* BR_ZYGOTE_H */
