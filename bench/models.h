/* SPDX-License-Identifier: MIT */
/*
 * models.h - what bench/models.c (the driver), bench/models_run.c (one
 * measurement, in a child process) and bench/models_verdict.c (the
 * summary and the verdict line) share, and what tests/test_models.c
 * calls.
 *
 * Design
 *   The workloads are defined here once, by their constants, so that the
 *   Python peer (bench/peers/models_py.py) can compute exactly the same
 *   items: a run of it with the same job count gives the same check value.
 *
 * Concurrency
 *   - Nothing here is shared between threads.
 */
#ifndef BENCH_MODELS_H
#define BENCH_MODELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- the workloads ---- */

enum models_workload {
	MW_CPU,	  /* count primes in a range by trial division */
	MW_SLEEP, /* sleep SLEEP_MS */
	MW_NET,	  /* k round trips of NET_MSG bytes to a loopback echo server */
	MW_MIXED, /* make a record, parse it, hash it, write it to a file */
	MW_TINY,  /* a few arithmetic operations */
	MW_COUNT
};

/* Job i of MW_CPU counts the primes in [CPU_BASE + (i % 16) * CPU_WIDTH,
 * + CPU_WIDTH): the ranges lie so close that every job costs the same. */
#define CPU_BASE 10000000u
#define CPU_WIDTH 4000u
#define SLEEP_MS 2
#define NET_MSG 64
/* A MW_MIXED record: MIXED_NUMS numbers of a xorshift32 sequence seeded
 * from the job's index, in decimal, each followed by a comma; hashed
 * MIXED_ROUNDS times over with FNV-1a 64. */
#define MIXED_NUMS 512
#define MIXED_ROUNDS 4
#define MIXED_MAX (MIXED_NUMS * 11 + 64)

/* ---- the models ---- */

enum models_family {
	MF_THREADS,
	MF_PROCESSES,
	MF_ASYNC,
	MF_COUNT
};

enum models_model {
	MM_THREAD_PER_JOB,
	MM_THREAD_POOL,
	MM_TASKS_1,
	MM_TASKS_N,
	MM_PROCESS_POOL,
	MM_BLOCKING_POOL,
	MM_PY_ASYNCIO,
	MM_PY_THREADING,
	MM_PY_MULTIPROCESSING,
	MM_COUNT
};

struct models_model_info {
	const char *name;  /* as in the JSON and on the command line */
	const char *label; /* for people: the table and the plots */
	enum models_family family;
	int python; /* 1: run by the Python peer */
};

extern const struct models_model_info models_models[MM_COUNT];
extern const char *const models_family_names[MF_COUNT];
extern const char *const models_workload_names[MW_COUNT];

/* ---- one measurement ---- */

struct models_result {
	double wall_s;	/* setup, the work, and teardown */
	double cpu_s;	/* user + system, self and reaped children */
	long rss_kb;	/* own peak RSS, plus each worker process's peak */
	long items;	/* units of work done (jobs, or round trips for net) */
	uint64_t check; /* a value every model must agree on */
};

/*
 * models_run - run jobs jobs of workload w under C model m (not a Python
 * one) with workers threads or processes (the pools and tasks-n; the
 * others ignore it); k is the round trips per job of MW_NET, port the
 * echo server's. Fills *r and returns 0, or prints why and returns -1.
 * Context: a process's only thread (the process pool needs its zygote).
 */
int models_run(enum models_workload w, enum models_model m, long jobs, long k,
	       unsigned workers, int port, struct models_result *r);

/* ---- summaries and the verdict ---- */

/* median, min and max of n values (n >= 1); sorts v. */
struct models_stat {
	double median, min, max;
};
struct models_stat models_stat_of(double *v, size_t n);

/* One model's figure for the verdict: higher throughput is better. */
struct models_score {
	const char *label;
	enum models_family family;
	double throughput; /* median items per second; <= 0: no figure */
};

/* Ratios under this count as a tie in the verdict. */
#define MODELS_TIE 1.05

/*
 * models_verdict - write into buf (size bytes, always terminated) one line
 * saying which family of models does the most work per second on the
 * workload called title, by how much over each other family (best model
 * against best model), and which models those are. Example: "processes
 * win CPU-bound by 1.90x over threads and 2.10x over async (braid process
 * pool vs pthread pool, braid tasks)". Ratios under MODELS_TIE are called
 * a tie. Returns the winning family, or -1 if no score is positive.
 */
int models_verdict(const char *title, const struct models_score *s, size_t n,
		   char *buf, size_t size);

#endif /* BENCH_MODELS_H */
