/* SPDX-License-Identifier: MIT */
/*
 * clock.c - br_now_ns(), the one clock of the runtime. See clock.h for
 * the units and the deadline helpers.
 *
 * Concurrency
 *   None: a vDSO read of CLOCK_MONOTONIC, safe from any thread and from
 *   a forked pool worker.
 */
#include <time.h>

#include "clock.h"

int64_t br_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * BR__NS_PER_S + ts.tv_nsec;
}
