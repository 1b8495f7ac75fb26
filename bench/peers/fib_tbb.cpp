/* SPDX-License-Identifier: MIT */
/*
 * fib_tbb.cpp - the fib peer on oneTBB's tbb::task_group.
 *
 * Same recursion as bench/fib.c: each call with n >= 2 runs fib(n - 1) in
 * the task group, computes fib(n - 2) itself and waits for the group.
 * --threads N caps TBB at N threads with tbb::global_control
 * (max_allowed_parallelism). One untimed warm-up run of fib(--warmup)
 * (default 20) starts TBB's threads; the clock covers the timed fib(--n)
 * (default 30) called from the main thread, which joins the arena.
 *
 * Output: one JSON line as bench/bench.h writes it, impl "tbb".
 */
#include <tbb/global_control.h>
#include <tbb/task_group.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cmdline.hpp"

static long fib(long n)
{
	if (n < 2)
		return n;
	long a, b;
	tbb::task_group g;

	g.run([&] { a = fib(n - 1); });
	b = fib(n - 2);
	g.wait();
	return a + b;
}

static long fib_iter(long n)
{
	long a = 0, b = 1;

	while (n-- > 0) {
		long t = a + b;
		a = b;
		b = t;
	}
	return a;
}

int main(int argc, char **argv)
{
	long n = 30, warmup = 20, threads = 2;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--n"))
			n = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--warmup"))
			warmup = atol(argv[i + 1]);
		else {
			fprintf(stderr,
				"usage: %s [--threads N] [--n N] "
				"[--warmup N]\n",
				argv[0]);
			return 2;
		}
	}
	if (threads < 1 || n < 0 || n > 60 || warmup < 0 || warmup > 60) {
		fprintf(stderr, "fib_tbb: bad arguments\n");
		return 2;
	}
	tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
			       (size_t)threads);

	if (warmup > 0 && fib(warmup) != fib_iter(warmup)) {
		fprintf(stderr, "fib_tbb: wrong warm-up result\n");
		return 1;
	}
	auto t0 = std::chrono::steady_clock::now();
	long got = fib(n);
	auto t1 = std::chrono::steady_clock::now();
	if (got != fib_iter(n)) {
		fprintf(stderr, "fib_tbb: fib(%ld) gave %ld\n", n, got);
		return 1;
	}
	double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
	size_t active = tbb::global_control::active_value(
		tbb::global_control::max_allowed_parallelism);

	printf("{\"workload\": \"fib\", \"impl\": \"tbb\", "
	       "\"metric\": \"wall\", \"unit\": \"ms\", \"n\": %ld, "
	       "\"threads\": %zu, \"median\": %.6g, \"min\": %.6g, "
	       "\"max\": %.6g, \"runs\": 1, \"values\": [%.6g], "
	       "\"cmd\": \"%s\"}\n",
	       n, active, ms, ms, ms, ms, cmdline(argc, argv).c_str());
	return 0;
}
