/* SPDX-License-Identifier: MIT */
/*
 * pool.h - what the rest of the runtime calls in the process pool: the
 * cancel and free of BR__F_JOB futures (future.c). See pool.c.
 */
#ifndef BR_POOL_H
#define BR_POOL_H

struct br_future;

/* br_cancel() of a job or br_map future. Returns 0 or BR_EDONE. */
int br__job_cancel(struct br_future *f);

/* The last reference to a job or br_map future went. */
void br__job_free(struct br_future *f);

#endif /* BR_POOL_H */
