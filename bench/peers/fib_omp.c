/* SPDX-License-Identifier: MIT */
/*
 * fib_omp.c - the fib peer on OpenMP tasks (gcc -fopenmp, libgomp).
 *
 * Same recursion as bench/fib.c: each call with n >= 2 makes fib(n - 1)
 * an explicit task (#pragma omp task), computes fib(n - 2) itself and
 * waits with #pragma omp taskwait. No cut-off and no if() clause, so every
 * call really is a task. The thread count comes from OMP_NUM_THREADS, as
 * OpenMP programs usually take it. One untimed warm-up run of
 * fib(--warmup) (default 20) starts the team; the clock covers the timed
 * fib(--n) (default 30) inside a parallel region's single construct.
 *
 * Output: one JSON line as bench/bench.h writes it, impl "openmp".
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long fib(long n)
{
	long a, b;

	if (n < 2)
		return n;
#pragma omp task shared(a) firstprivate(n)
	a = fib(n - 1);
	b = fib(n - 2);
#pragma omp taskwait
	return a + b;
}

static long fib_iter(long n)
{
	long a = 0, b = 1, t;

	while (n-- > 0) {
		t = a + b;
		a = b;
		b = t;
	}
	return a;
}

static long run(long n)
{
	long r = 0;

#pragma omp parallel
#pragma omp single
	r = fib(n);
	return r;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_escaped(const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
}

int main(int argc, char **argv)
{
	long n = 30, warmup = 20, got;
	const char *env = getenv("OMP_NUM_THREADS");
	double t0, t1;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--n")) {
			n = atol(argv[i + 1]);
		} else if (!strcmp(argv[i], "--warmup")) {
			warmup = atol(argv[i + 1]);
		} else {
			fprintf(stderr,
				"usage: OMP_NUM_THREADS=N %s [--n N] "
				"[--warmup N]\n",
				argv[0]);
			return 2;
		}
	}
	if (i != argc || n < 0 || n > 60 || warmup < 0 || warmup > 60) {
		fprintf(stderr, "fib_omp: bad arguments\n");
		return 2;
	}

	if (warmup > 0 && run(warmup) != fib_iter(warmup)) {
		fprintf(stderr, "fib_omp: wrong warm-up result\n");
		return 1;
	}
	t0 = now_ms();
	got = run(n);
	t1 = now_ms();
	if (got != fib_iter(n)) {
		fprintf(stderr, "fib_omp: fib(%ld) gave %ld\n", n, got);
		return 1;
	}

	printf("{\"workload\": \"fib\", \"impl\": \"openmp\", "
	       "\"metric\": \"wall\", \"unit\": \"ms\", \"n\": %ld, "
	       "\"threads\": %d, \"median\": %.6g, \"min\": %.6g, "
	       "\"max\": %.6g, \"runs\": 1, \"values\": [%.6g], \"cmd\": \"",
	       n, omp_get_max_threads(), t1 - t0, t1 - t0, t1 - t0, t1 - t0);
	if (env) {
		printf("OMP_NUM_THREADS=");
		print_escaped(env);
		putchar(' ');
	}
	for (i = 0; i < argc; i++) {
		if (i)
			putchar(' ');
		print_escaped(argv[i]);
	}
	printf("\"}\n");
	return 0;
}
