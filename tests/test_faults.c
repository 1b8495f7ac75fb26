/* SPDX-License-Identifier: MIT */
/*
 * test_faults.c - regression tests for what the fault sweep found: each
 * test fails one of braid's fault points (runtime/internal.h) with
 * libfiu and checks that the failure ends as an error, never as a hang,
 * a crash or a leak. The points exist only in a faults build (make
 * FAULTS=1, run by make test-faults-short); elsewhere the tests skip.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(faults, .init = t_leak_init, .fini = t_leak_fini);

#ifdef BR_FAULTS
#define FIU_ENABLE 1 /* else fiu.h makes fiu_init() a constant */
#include <fiu-control.h>
#include <fiu.h>

/* Make fault point name fail every time it is reached, or only the
 * next time (once). */
static void fail_point(const char *name, int once)
{
	cr_assert_eq(fiu_init(0), 0);
	cr_assert_eq(fiu_enable(name, 1, NULL, once ? FIU_ONETIME : 0), 0);
}
#define NEED_FAULTS() ((void)0)
#else
static void fail_point(const char *name, int once)
{
	(void)name;
	(void)once;
}
#define NEED_FAULTS() cr_skip_test("needs a faults build (make FAULTS=1)")
#endif

/* A worker thread that cannot start fails br_runtime_new with -EAGAIN;
 * the workers never started have no ring, and freeing them closed their
 * eventfd, which read 0 from the zeroed record: stdin. */
Test(faults, runtime_whose_thread_cannot_start_leaves_stdin_open, .timeout = 30)
{
	br_config cfg = { .workers = 2, .flags = BR_CONFIG_QUIET };
	br_runtime *rt = NULL;
	int fds, r;

	NEED_FAULTS();
	if (fcntl(0, F_GETFD) < 0) {
		cr_assert_eq(open("/dev/null", O_RDONLY), 0);
		t_leak_expect(1, 0, 0); /* stays open */
	}
	fds = t_count_fds();
	fail_point("braid/runtime/thread", 1);
	r = br_runtime_new(&rt, &cfg);
	cr_assert_eq(r, -EAGAIN, "br_runtime_new: %s", br_strerror(r));
	cr_assert_null(rt);
	cr_assert_geq(fcntl(0, F_GETFD), 0, "stdin was closed");
	t_assert_no_leaked_fds(fds);
}
