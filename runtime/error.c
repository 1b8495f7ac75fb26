/* SPDX-License-Identifier: MIT */
/*
 * error.c - br_strerror, message copies, the assertion failure path, and
 * the backoff used when waiting for another thread's short hold.
 *
 * Design
 *   braid's own codes sit in a reserved range far below any errno
 *   (libuv's trick), so one function names both kinds. The errno names
 *   come from strerrordesc_np, which, unlike strerror, returns a static
 *   string and is async-signal-safe.
 *
 *   In a faults build, br__fault() asks libfiu about a fault point
 *   (internal.h) and says on stderr when the first one fails.
 *
 * Concurrency
 *   None: no shared state but br__fault's flag, taken with an exchange.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "braid.h"
#include "internal.h"

#define NAP_MIN_US 50
#define NAP_MAX_US 5000

const char *br_strerror(int code)
{
	const char *s;

	if (code == INT_MIN)
		return "unknown error"; /* has no positive twin */
	if (code > 0)
		code = -code; /* either sign names the same code */
	switch (code) {
	case 0:
		return "success";
	case BR_ECLOSED:
		return "the runtime is closed";
	case BR_ENOTTASK:
		return "only valid inside a task";
	case BR_EBADOBJ:
		return "not a live braid object";
	case BR_EWORKERDIED:
		return "the worker process died";
	case BR_EDEADLK:
		return "waiting here would block the loop forever";
	case BR_EDONE:
		return "the future has already completed";
	case BR_ETASKFAILED:
		return "the task failed";
	}
	code = -code;
	s = code < 4096 ? strerrordesc_np(code) : NULL;
	return s ? s : "unknown error";
}

char *br__strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

#ifdef BR_FAULTS
int br__fault(const char *name)
{
	static _Atomic int said;
	char buf[160];
	int n;

	if (!fiu_fail(name))
		return 0;
	if (!atomic_exchange(&said, 1)) {
		n = snprintf(buf, sizeof(buf), "braid: fault point %s failed\n",
			     name);
		if (n > 0)
			(void)!write(STDERR_FILENO, buf,
				     (size_t)n < sizeof(buf) ? (size_t)n :
							       sizeof(buf) - 1);
	}
	return 1;
}
#endif

void br__backoff(unsigned *spins)
{
	if (++*spins < 128)
		br__cpu_relax();
	else
		sched_yield();
}

void br__nap(unsigned *nap_us)
{
	usleep(*nap_us ? *nap_us : NAP_MIN_US);
	*nap_us = *nap_us >= NAP_MAX_US / 2 ? NAP_MAX_US :
		  *nap_us		    ? *nap_us * 2 :
					      2 * NAP_MIN_US;
}

#if !defined(NDEBUG) && defined(__GLIBC__)
int br__gettid(void)
{
	return (int)gettid();
}
#endif

size_t br__page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) & ~(pg - 1);
}

void br__assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "braid: assertion failed: %s (%s:%d)\n", expr, file,
		line);
	abort();
}
