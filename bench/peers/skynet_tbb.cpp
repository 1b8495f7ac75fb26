/* SPDX-License-Identifier: MIT */
/*
 * skynet_tbb.cpp - the skynet peer on oneTBB's tbb::task_group.
 *
 * Same tree as bench/skynet.c: each inner node runs its 10 children in a
 * task_group, waits for them and sums their values; each of the --n
 * leaves (default 1,000,000) returns its number. --threads N caps TBB at
 * N threads with tbb::global_control. One untimed warm-up tree of
 * --warmup leaves (default 10,000) starts TBB's threads; the clock covers
 * the timed tree, started from the main thread.
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

static long long skynet(long long num, long long size)
{
	if (size == 1)
		return num;
	long long vals[10];
	long long step = size / 10, sum = 0;
	tbb::task_group g;

	for (int i = 0; i < 10; i++)
		g.run([&vals, i, num, step] {
			vals[i] = skynet(num + i * step, step);
		});
	g.wait();
	for (int i = 0; i < 10; i++)
		sum += vals[i];
	return sum;
}

static bool power_of_10(long long n)
{
	while (n > 1 && n % 10 == 0)
		n /= 10;
	return n == 1;
}

int main(int argc, char **argv)
{
	long long n = 1000000, warmup = 10000, threads = 2;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--n"))
			n = atoll(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoll(argv[i + 1]);
		else if (!strcmp(argv[i], "--warmup"))
			warmup = atoll(argv[i + 1]);
		else {
			fprintf(stderr,
				"usage: %s [--threads N] [--n LEAVES] "
				"[--warmup N]\n",
				argv[0]);
			return 2;
		}
	}
	if (threads < 1 || !power_of_10(n) ||
	    (warmup && !power_of_10(warmup))) {
		fprintf(stderr, "skynet_tbb: --n and --warmup must be powers "
				"of 10, --threads at least 1\n");
		return 2;
	}
	tbb::global_control gc(tbb::global_control::max_allowed_parallelism,
			       (size_t)threads);

	if (warmup && skynet(0, warmup) != warmup * (warmup - 1) / 2) {
		fprintf(stderr, "skynet_tbb: wrong warm-up sum\n");
		return 1;
	}
	auto t0 = std::chrono::steady_clock::now();
	long long got = skynet(0, n);
	auto t1 = std::chrono::steady_clock::now();
	if (got != n * (n - 1) / 2) {
		fprintf(stderr, "skynet_tbb: sum %lld, want %lld\n", got,
			n * (n - 1) / 2);
		return 1;
	}
	double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
	size_t active = tbb::global_control::active_value(
		tbb::global_control::max_allowed_parallelism);

	printf("{\"workload\": \"skynet\", \"impl\": \"tbb\", "
	       "\"metric\": \"wall\", \"unit\": \"ms\", \"n\": %lld, "
	       "\"threads\": %zu, \"median\": %.6g, \"min\": %.6g, "
	       "\"max\": %.6g, \"runs\": 1, \"values\": [%.6g], "
	       "\"cmd\": \"%s\"}\n",
	       n, active, ms, ms, ms, ms, cmdline(argc, argv).c_str());
	return 0;
}
