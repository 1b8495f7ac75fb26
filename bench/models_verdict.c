/* SPDX-License-Identifier: MIT */
/*
 * models_verdict.c - the names of bench/models' models and workloads,
 * summary statistics, and the one-line verdict per workload.
 *
 * Design
 *   The verdict compares families (threads, processes, async), each by
 *   its best model, on median throughput: the question a reader brings is
 *   "which kind of concurrency suits this work", and within a family the
 *   best implementation is the fair representative. It is computed from
 *   the figures only, so a change in the runtime or the machine changes
 *   the sentence; tests/test_models.c feeds it fixed figures.
 *
 * Concurrency
 *   - Pure functions and constant tables; no shared state.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models.h"

const struct models_model_info models_models[MM_COUNT] = {
	[MM_THREAD_PER_JOB] = { "thread-per-job", "pthreads, a thread per job",
				MF_THREADS, 0 },
	[MM_THREAD_POOL] = { "thread-pool", "pthreads, a pool", MF_THREADS, 0 },
	[MM_TASKS_1] = { "tasks-1", "braid tasks, 1 worker", MF_ASYNC, 0 },
	[MM_TASKS_N] = { "tasks-n", "braid tasks, all workers", MF_ASYNC, 0 },
	[MM_PROCESS_POOL] = { "process-pool", "braid process pool",
			      MF_PROCESSES, 0 },
	[MM_BLOCKING_POOL] = { "blocking-pool", "braid blocking pool",
			       MF_THREADS, 0 },
	[MM_PY_ASYNCIO] = { "py-asyncio", "python asyncio", MF_ASYNC, 1 },
	[MM_PY_THREADING] = { "py-threading", "python threading", MF_THREADS,
			      1 },
	[MM_PY_MULTIPROCESSING] = { "py-multiprocessing",
				    "python multiprocessing", MF_PROCESSES, 1 },
};

const char *const models_family_names[MF_COUNT] = {
	[MF_THREADS] = "threads",
	[MF_PROCESSES] = "processes",
	[MF_ASYNC] = "async",
};

const char *const models_workload_names[MW_COUNT] = {
	[MW_CPU] = "cpu",     [MW_SLEEP] = "sleep", [MW_NET] = "net",
	[MW_MIXED] = "mixed", [MW_TINY] = "tiny",
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct models_stat models_stat_of(double *v, size_t n)
{
	struct models_stat s = { 0, 0, 0 };

	if (n == 0)
		return s;
	qsort(v, n, sizeof(*v), cmp_double);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

/* Append to buf as snprintf would, never past size. */
static void append(char *buf, size_t size, size_t *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t size, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*at >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *at, size - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at += (size_t)n;
	if (*at >= size)
		*at = size - 1;
}

int models_verdict(const char *title, const struct models_score *s, size_t n,
		   char *buf, size_t size)
{
	const struct models_score *best[MF_COUNT] = { NULL };
	int order[MF_COUNT], nf = 0;
	size_t at = 0;

	if (!buf || size == 0)
		return -1;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct models_score *x = &s[i];

		if (x->throughput <= 0 || (unsigned)x->family >= MF_COUNT)
			continue;
		if (!best[x->family] ||
		    x->throughput > best[x->family]->throughput)
			best[x->family] = x;
	}
	for (int f = 0; f < MF_COUNT; f++) {
		int j;

		if (!best[f])
			continue;
		/* Insertion by throughput, highest first. */
		for (j = nf; j > 0 && best[order[j - 1]]->throughput <
					      best[f]->throughput;
		     j--)
			order[j] = order[j - 1];
		order[j] = f;
		nf++;
	}
	if (nf == 0) {
		append(buf, size, &at, "%s: no figures", title);
		return -1;
	}

	const struct models_score *w = best[order[0]];
	const char *wname = models_family_names[order[0]];
	const char *verb = order[0] == MF_ASYNC ? "wins" : "win";

	if (nf == 1) {
		append(buf, size, &at, "%s: only %s measured (%s)", title,
		       wname, w->label);
		return order[0];
	}
	double r2 = w->throughput / best[order[1]]->throughput;

	if (r2 < MODELS_TIE)
		append(buf, size, &at, "%s: %s and %s tie (%.2fx)", title,
		       wname, models_family_names[order[1]], r2);
	else
		append(buf, size, &at, "%s %s %s by %.2fx over %s", wname, verb,
		       title, r2, models_family_names[order[1]]);
	/* After a tie, the others are measured against the slower of the
	 * two that tie: both are at least that far ahead. */
	for (int j = 2; j < nf; j++)
		append(buf, size, &at, "%s %.2fx over %s",
		       r2 < MODELS_TIE ? ", both ahead by" : " and",
		       best[order[r2 < MODELS_TIE ? 1 : 0]]->throughput /
			       best[order[j]]->throughput,
		       models_family_names[order[j]]);
	append(buf, size, &at, " (%s", w->label);
	for (int j = 1; j < nf; j++)
		append(buf, size, &at, "%s%s", j == 1 ? " vs " : ", ",
		       best[order[j]]->label);
	append(buf, size, &at, ")");
	return order[0];
}
