/* SPDX-License-Identifier: MIT */
/*
 * parallel_primes.c - CPU-bound work in worker processes, awaited from
 * tasks: count the primes below a limit, one range per job.
 *
 * The range [2, limit) is cut into jobs of --chunk numbers. A few tasks
 * of the runtime each submit their share of the ranges to the process
 * pool with br_submit() and await the futures as they complete
 * (br_as_completed), the way an asyncio program would run
 * loop.run_in_executor() over a ProcessPoolExecutor. Each job answers its
 * count, the pid of the worker that ran it and how long it took, so the
 * program can print what each worker process did.
 *
 * Run it: build/release/examples/parallel_primes [--limit N] [--chunk N]
 *         [--workers N]   (--help says more)
 */
#include <braid.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TASKS 4
#define MAX_WORKERS 64

struct range {
	uint64_t lo, hi;
};

struct answer {
	uint64_t count;
	int64_t ns;
	pid_t pid;
};

struct share {
	br_pool *pool;
	uint64_t limit, chunk;
	unsigned index; /* this task's share: every TASKS-th range */
	uint64_t count;
	int err;
	struct answer *answers; /* one per range, by range number */
};

static int is_prime(uint64_t n)
{
	if (n < 2)
		return 0;
	if (n % 2 == 0)
		return n == 2;
	for (uint64_t d = 3; d * d <= n; d += 2)
		if (n % d == 0)
			return 0;
	return 1;
}

/* Runs in a worker process. */
static int count_job(br_job *job, const void *in, size_t len)
{
	struct range r;
	struct answer a = { 0, 0, getpid() };
	struct timespec t0, t1;

	if (len != sizeof(r))
		return br_job_fail(job, -EINVAL, "not a range");
	memcpy(&r, in, sizeof(r));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t n = r.lo; n < r.hi; n++)
		a.count += is_prime(n);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	a.ns = (t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
	return br_job_write(job, &a, sizeof(a));
}

/* A task: submits its ranges, then takes answers as they come. */
static void *share_task(void *arg)
{
	struct share *s = arg;
	uint64_t nranges = (s->limit + s->chunk - 1) / s->chunk;
	br_future **fs = calloc(nranges, sizeof(*fs));
	size_t *which = calloc(nranges, sizeof(*which));
	size_t n = 0;
	br_as_completed *ac;
	br_future *f;

	if (!fs || !which) {
		s->err = -ENOMEM;
		goto out;
	}
	for (uint64_t i = s->index; i < nranges; i += TASKS) {
		struct range r = { i * s->chunk, (i + 1) * s->chunk };

		if (r.hi > s->limit)
			r.hi = s->limit;
		which[n] = i;
		fs[n++] = br_submit(s->pool, count_job, &r, sizeof(r));
	}
	ac = br_as_completed_new(fs, n);
	while (ac && (f = br_as_completed_next(ac))) {
		size_t k = 0, len;
		const struct answer *a;

		while (fs[k] != f)
			k++;
		if (br_future_state(f) != BR_DONE) {
			fprintf(stderr, "range %zu failed: %s\n", which[k],
				br_future_message(f));
			s->err = br_future_error(f);
			continue;
		}
		a = br_future_bytes(f, &len);
		s->answers[which[k]] = *a;
		s->count += a->count;
	}
	br_as_completed_free(ac);
	for (size_t k = 0; k < n; k++)
		br_future_release(fs[k]);
out:
	free(fs);
	free(which);
	return NULL;
}

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void usage(const char *name, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--limit N] [--chunk N] [--workers N]\n"
		"Counts the primes below N in worker processes.\n"
		"  -l, --limit N    count below N (default 5000000)\n"
		"  -c, --chunk N    numbers per job (default 100000)\n"
		"  -w, --workers N  worker processes, at most %d (default: one "
		"per CPU)\n"
		"  -h, --help       print this and exit\n",
		name, MAX_WORKERS);
	exit(status);
}

/* A positive decimal number, or the usage. */
static uint64_t arg_u64(const char *name, const char *s)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		usage(name, 2);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'l' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "workers", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t limit = 5000000, chunk = 100000, workers = 0;
	struct share shares[TASKS];
	br_future *tasks[TASKS];
	struct answer *answers;
	pid_t pids[MAX_WORKERS];
	uint64_t total = 0, nranges;
	br_runtime *rt;
	br_pool *pool;
	int64_t t0, wall;
	int err, npids, c;

	while ((c = getopt_long(argc, argv, "l:c:w:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			limit = arg_u64(argv[0], optarg);
			break;
		case 'c':
			chunk = arg_u64(argv[0], optarg);
			break;
		case 'w':
			workers = arg_u64(argv[0], optarg);
			break;
		case 'h':
			usage(argv[0], 0);
		default:
			usage(argv[0], 2);
		}
	}
	if (optind < argc || !limit || !chunk || workers > MAX_WORKERS)
		usage(argv[0], 2);
	nranges = (limit + chunk - 1) / chunk;
	answers = calloc(nranges, sizeof(*answers));
	/* The runtime forks the pool's zygote before its threads start. */
	err = br_runtime_new(&rt, NULL);
	if (err == 0)
		err = br_pool_new(
			&pool, rt,
			&(br_pool_config){ .workers = (unsigned)workers });
	if (err < 0 || !answers) {
		fprintf(stderr, "start: %s\n", br_strerror(err));
		return 1;
	}
	npids = br_pool_pids(pool, pids, MAX_WORKERS);
	printf("counting primes below %llu in %llu ranges on %d worker "
	       "processes, from %d tasks\n",
	       (unsigned long long)limit, (unsigned long long)nranges, npids,
	       TASKS);
	t0 = br_now_ns();
	for (unsigned i = 0; i < TASKS; i++) {
		shares[i] =
			(struct share){ pool, limit, chunk, i, 0, 0, answers };
		tasks[i] = br_spawn(rt, share_task, &shares[i]);
	}
	err = br_gather(tasks, TASKS, NULL);
	wall = br_now_ns() - t0;
	for (unsigned i = 0; i < TASKS; i++) {
		total += shares[i].count;
		if (shares[i].err && !err)
			err = shares[i].err;
		br_future_release(tasks[i]);
	}
	printf("%llu primes in %.3f s\n", (unsigned long long)total,
	       (double)wall / 1e9);
	/* What each worker process did (a replaced worker has a new pid). */
	for (uint64_t i = 0; i < nranges; i++) {
		pid_t pid = answers[i].pid;
		uint64_t jobs = 0, nums = 0;
		int64_t ns = 0;

		if (!pid)
			continue;
		for (uint64_t k = i; k < nranges; k++) {
			if (answers[k].pid != pid)
				continue;
			jobs++;
			ns += answers[k].ns;
			nums += (k + 1) * chunk > limit ? limit - k * chunk :
							  chunk;
			if (k > i)
				answers[k].pid = 0;
		}
		printf("  worker %d: %llu jobs, %.2f M numbers/s while busy, "
		       "busy %.0f%% of the wall time\n",
		       (int)pid, (unsigned long long)jobs,
		       ns ? (double)nums / ((double)ns / 1e9) / 1e6 : 0.0,
		       100.0 * (double)ns / (double)wall);
	}
	br_pool_free(pool);
	br_runtime_free(rt);
	free(answers);
	return err < 0 ? 1 : 0;
}
