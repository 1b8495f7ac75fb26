/* SPDX-License-Identifier: MIT */
/*
 * mpi_pool.c - a process pool across the ranks of an MPI job: results,
 * order, mixing with local futures, crashes and time limits on remote
 * ranks, initializers' limits on every rank, cancel, br_imap, 100,000
 * jobs with every result checked, tiny jobs kept off ranks that would
 * only take CPU from rank 0, and nothing left behind. Run under mpirun -np 3 (tests.mk's test-mpi runs
 * it over shared memory and over TCP).
 *
 * Not a Criterion program: Criterion forks every test into a process of
 * its own, and an MPI process cannot be forked and go on. It checks with
 * CHECK, prints what failed, and exits 1.
 *
 * With BRAID_MPI_KILL_RANK=r (under mpirun --enable-recovery) it instead
 * kills rank r in the middle of a run, checks that only the jobs rank r
 * held fail, with BR_EWORKERDIED naming the rank, within 2 s, and that
 * the pool goes on; it prints "mpi: recovery ok".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "braid.h"

static int failures;

#define CHECK(cond, ...)                                                 \
	do {                                                             \
		if (!(cond)) {                                           \
			fprintf(stderr, "mpi_pool.c:%d: %s: ", __LINE__, \
				#cond);                                  \
			fprintf(stderr, __VA_ARGS__);                    \
			fputc('\n', stderr);                             \
			failures++;                                      \
		}                                                        \
	} while (0)

/* The rank a job runs on, from the launcher's environment. */
static int32_t my_rank(void)
{
	const char *s = getenv("OMPI_COMM_WORLD_RANK");

	if (!s)
		s = getenv("PMI_RANK");
	return s ? (int32_t)atoi(s) : -1;
}

/* Sum of the ints of its input; the output is {sum, rank}. */
static int sum_job(br_job *job, const void *in, size_t len)
{
	const int32_t *v = in;
	int64_t out[2] = { 0, my_rank() };

	for (size_t i = 0; i < len / sizeof(*v); i++)
		out[0] += v[i];
	return br_job_write(job, out, sizeof(out));
}

/* {a, b, c, ms}: sleeps ms, then answers {a + b + c, rank}. */
static int sum_nap_job(br_job *job, const void *in, size_t len)
{
	const int32_t *v = in;

	usleep((useconds_t)v[3] * 1000);
	return sum_job(job, in, 3 * sizeof(*v));
}

/* Answers {when it started (CLOCK_MONOTONIC, ns), rank}. */
static int when_job(br_job *job, const void *in, size_t len)
{
	struct timespec ts;
	int64_t out[2] = { 0, my_rank() };

	clock_gettime(CLOCK_MONOTONIC, &ts);
	out[0] = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	return br_job_write(job, out, sizeof(out));
}

static int crash_job(br_job *job, const void *in, size_t len)
{
	abort();
	return 0;
}

static int nap_job(br_job *job, const void *in, size_t len)
{
	uint32_t ms;
	int64_t out[2] = { getppid(), my_rank() };

	memcpy(&ms, in, sizeof(ms));
	usleep(ms * 1000);
	return br_job_write(job, out, sizeof(out));
}

static int fail_job(br_job *job, const void *in, size_t len)
{
	return br_job_fail(job, -EDOM, "a job that fails");
}

static const int64_t *pair_of(br_future *f)
{
	size_t n = 0;
	const int64_t *p = br_future_bytes(f, &n);

	return n == 2 * sizeof(int64_t) ? p : NULL;
}

/* ---- from tasks ---- */

enum {
	TASKS = 16,
	PER_TASK = 400, /* tiny jobs */
	NAPS_PER_TASK = 8,
	NAP_MS = 2
};

static br_pool *pool;
static atomic_int ranks_seen[8];
static int32_t nap_ms; /* 0: the submitters' jobs are tiny */

static void *submitter(void *arg)
{
	intptr_t t = (intptr_t)arg;
	int bad = 0, n = nap_ms ? NAPS_PER_TASK : PER_TASK;

	for (int i = 0; i < n; i++) {
		int32_t in[4] = { (int32_t)t, i, 1, nap_ms };
		br_future *f =
			nap_ms ?
				br_submit(pool, sum_nap_job, in, sizeof(in)) :
				br_submit(pool, sum_job, in, 3 * sizeof(in[0]));
		const int64_t *out;

		if (br_await(f, NULL) < 0 || !(out = pair_of(f)) ||
		    out[0] != t + i + 1)
			bad++;
		else if (out[1] >= 0 && out[1] < 8)
			atomic_fetch_add(&ranks_seen[out[1]], 1);
		br_future_release(f);
	}
	return (void *)(intptr_t)bad;
}

static void *local_task(void *arg)
{
	return arg;
}

static void *blocking_call(void *arg)
{
	usleep(1000);
	return arg;
}

/* ---- the checks ---- */

/* One round of TASKS submitters on pool; returns how many jobs came back
 * wrong. */
static int round_of_submitters(br_runtime *rt)
{
	br_future *fs[TASKS];
	int bad = 0;

	for (intptr_t t = 0; t < TASKS; t++)
		fs[t] = br_spawn(rt, submitter, (void *)t);
	for (int t = 0; t < TASKS; t++) {
		void *v = NULL;

		CHECK(br_await(fs[t], &v) == 0, "%s", br_future_message(fs[t]));
		bad += (int)(intptr_t)v;
		br_future_release(fs[t]);
	}
	return bad;
}

/*
 * Rounds of TASKS submitters of jobs that sleep NAP_MS, on pool, until
 * every rank has run jobs (at most ROUNDS_MAX): sleeping jobs keep rank
 * 0's workers from keeping up, which is when the other ranks, sharing
 * these CPUs, get jobs (driver.c); a rank joins a new pool when its
 * server next looks, which an idle server does only every 20 ms, and one
 * round can be over by then. Returns how many ranks ran jobs; *bad
 * counts wrong results.
 */
#define ROUNDS_MAX 50

static int rounds_until_every_rank(br_runtime *rt, int *bad)
{
	int ranks = 0;

	*bad = 0;
	for (int r = 0; r < 8; r++)
		atomic_store(&ranks_seen[r], 0);
	nap_ms = NAP_MS;
	for (int round = 0; round < ROUNDS_MAX && ranks < 3; round++) {
		*bad += round_of_submitters(rt);
		ranks = 0;
		for (int r = 0; r < 8; r++)
			ranks += atomic_load(&ranks_seen[r]) > 0;
	}
	nap_ms = 0;
	return ranks;
}

static void check_tasks(br_runtime *rt)
{
	int bad = round_of_submitters(rt), ranks;

	CHECK(bad == 0, "%d tiny jobs came back wrong", bad);
	ranks = rounds_until_every_rank(rt, &bad);
	CHECK(bad == 0, "%d jobs came back wrong", bad);
	CHECK(ranks == 3, "jobs ran on %d ranks, not 3", ranks);
}

/* The CPUs this process may run on. */
static int my_cpus(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) :
							      1;
}

/*
 * Bursts of tiny jobs, more than rank 0's ring holds, which its two
 * workers drain in well under a millisecond: when the other ranks share
 * rank 0's CPUs and leave none free (here, 3 CPUs or fewer), a job goes
 * to them only once it has waited SHARED_WAIT_NS (1 ms, driver.c), so
 * every job that ran there started at least 1 ms after it was
 * submitted. Shipped at once, they took CPU from rank 0's own workers and
 * could hold the pool in a slower state for a whole run.
 */
static void check_held_back(void)
{
	enum {
		BURSTS = 40,
		BURST = 64
	};
	br_future *fs[BURST];
	int64_t sent[BURST];
	int remote = 0, early = 0, cpus = my_cpus();

	if (cpus > 3) {
		printf("mpi: held-back check not run: %d CPUs leave the other "
		       "ranks room of their own\n",
		       cpus);
		return;
	}
	for (int b = 0; b < BURSTS; b++) {
		for (int i = 0; i < BURST; i++) {
			sent[i] = br_now_ns();
			fs[i] = br_submit(pool, when_job, NULL, 0);
		}
		for (int i = 0; i < BURST; i++) {
			const int64_t *out = NULL;

			CHECK(br_await(fs[i], NULL) == 0 &&
				      (out = pair_of(fs[i])),
			      "burst job: %s", br_future_message(fs[i]));
			if (out && out[1] != 0) {
				remote++;
				early += out[0] - sent[i] < 1000000;
			}
			br_future_release(fs[i]);
		}
	}
	CHECK(early == 0, "%d of %d jobs on other ranks started within 1 ms",
	      early, remote);
}

/* Initializers that hang on rank 1, and that take 2 s on ranks 1 and 2. */
static int hang_on_rank_1(const void *arg, size_t len)
{
	if (my_rank() == 1)
		sleep(60);
	return 0;
}

static int slow_off_rank_0(const void *arg, size_t len)
{
	if (my_rank() > 0)
		usleep(2000 * 1000);
	return 0;
}

/*
 * A pool's init_timeout_ms holds on every rank: rank 1's initializer is
 * killed at 300 ms there, and rank 1 goes on serving the next pool (with
 * the default limit of 30 s its serving thread sat in br_pool_new, silent,
 * and rank 0 took it for dead). A rank whose initializer takes longer
 * than the silence that counts as death is not taken for dead either,
 * nor is its initializer held to the jobs' time limit (timeout_ms).
 */
static void check_initializers(br_runtime *rt)
{
	br_pool *saved = pool, *q;
	int bad, ranks;

	CHECK(br_pool_new(&q, rt,
			  &(br_pool_config){ .workers = 1,
					     .mpi = 1,
					     .init = hang_on_rank_1,
					     .init_timeout_ms = 300 }) == 0,
	      "a pool whose rank 1 could not start");
	br_pool_free(q);
	CHECK(br_pool_new(&q, rt,
			  &(br_pool_config){ .workers = 1,
					     .mpi = 1,
					     .init = slow_off_rank_0,
					     .init_timeout_ms = 10000,
					     /* jobs' limit, not the
					      * initializers' */
					     .timeout_ms = 1000 }) == 0,
	      "a pool with slow initializers");
	pool = q;
	ranks = rounds_until_every_rank(rt, &bad);
	pool = saved;
	CHECK(bad == 0, "%d jobs came back wrong", bad);
	CHECK(ranks == 3, "after slow initializers jobs ran on %d ranks",
	      ranks);
	br_pool_free(q);
}

static void check_mixed(br_runtime *rt)
{
	int32_t in[2] = { 20, 22 };
	br_future *fs[3];
	void *vals[3];

	fs[0] = br_submit(pool, sum_job, in, sizeof(in));
	fs[1] = br_spawn(rt, local_task, (void *)(intptr_t)7);
	fs[2] = br_spawn_blocking(rt, blocking_call, (void *)(intptr_t)9);
	CHECK(br_gather(fs, 3, vals) == 0, "gather");
	CHECK(pair_of(fs[0]) && pair_of(fs[0])[0] == 42, "the pool's job");
	CHECK((intptr_t)vals[1] == 7 && (intptr_t)vals[2] == 9, "the others");
	for (int i = 0; i < 3; i++)
		br_future_release(fs[i]);
}

static void check_map(void)
{
	enum {
		N = 100000,
		K = 100
	};
	int32_t *items = malloc((size_t)N * K * sizeof(int32_t));
	br_future *f;
	size_t len;
	int bad = 0;

	for (int i = 0; i < N; i++)
		for (int k = 0; k < K; k++)
			items[i * K + k] = (i % 1000) + k;
	f = br_map(pool, sum_job, items, K * sizeof(int32_t), N, 0);
	CHECK(br_await(f, NULL) == 0, "br_map: %s", br_future_message(f));
	for (int i = 0; i < N; i++) {
		const int64_t *out = br_map_result(f, (size_t)i, &len);

		bad += !out || len != 16 ||
		       out[0] != (int64_t)(i % 1000) * K + K * (K - 1) / 2;
	}
	CHECK(bad == 0, "%d of %d mapped items wrong", bad, N);
	br_future_release(f);
	free(items);
}

static void check_imap(unsigned flags)
{
	enum {
		N = 3000
	};
	static int32_t items[N];
	br_imap *it;
	size_t idx, len, seen = 0, next = 0;
	const void *out;
	int r, bad = 0;

	for (int i = 0; i < N; i++)
		items[i] = i;
	CHECK(br_imap_new(&it, pool, sum_job, items, sizeof(items[0]), N, 50,
			  flags) == 0,
	      "br_imap_new");
	while ((r = br_imap_next(it, &idx, &out, &len)) == 0) {
		bad += len != 16 || ((const int64_t *)out)[0] != (int64_t)idx;
		if (!(flags & BR_IMAP_UNORDERED))
			bad += idx != next++;
		seen++;
	}
	CHECK(r == BR_EDONE, "br_imap_next ended with %d", r);
	CHECK(seen == N && bad == 0, "%zu items, %d wrong", seen, bad);
	br_imap_free(it);
}

/*
 * Jobs that take a while: after them rank 0's ring holds only a few per
 * worker (after tiny ones it holds many: pool_remote.c), so that of many
 * jobs submitted at once most wait where other ranks can take them.
 */
static void shallow_ring(void)
{
	uint32_t ms = 3;
	br_future *fs[8];

	for (int i = 0; i < 8; i++)
		fs[i] = br_submit(pool, nap_job, &ms, sizeof(ms));
	for (int i = 0; i < 8; i++) {
		CHECK(br_await(fs[i], NULL) == 0, "a nap: %s",
		      br_future_message(fs[i]));
		br_future_release(fs[i]);
	}
}

static void check_faults(void)
{
	enum {
		N = 24
	};
	br_future *crash[N], *late;
	uint32_t long_ms = 5000, short_ms = 10;
	int remote = 0, r;

	/* Crashes, wherever they run, fail alone. */
	shallow_ring();
	for (int i = 0; i < N; i++)
		crash[i] = br_submit(pool, crash_job, NULL, 0);
	for (int i = 0; i < N; i++) {
		r = br_await(crash[i], NULL);
		CHECK(r == BR_EWORKERDIED, "a crash gave %d (%s)", r,
		      br_future_message(crash[i]));
		remote += strstr(br_future_message(crash[i]), "rank ") != NULL;
		br_future_release(crash[i]);
	}
	CHECK(remote > 0, "no crash ran on another rank");
	/* A job's own failure keeps its code and message. */
	late = br_submit(pool, fail_job, NULL, 0);
	CHECK(br_await(late, NULL) == -EDOM, "a failing job");
	CHECK(strstr(br_future_message(late), "a job that fails"), "%s",
	      br_future_message(late));
	br_future_release(late);
	/* Time limits, wherever the job runs. */
	for (int i = 0; i < 12; i++) {
		br_future *f = br_submit_timeout(pool, nap_job, &long_ms,
						 sizeof(long_ms), 100);

		r = br_await(f, NULL);
		CHECK(r == -ETIMEDOUT, "a timed-out job gave %d (%s)", r,
		      br_future_message(f));
		br_future_release(f);
	}
	/* Cancel, queued or running, wherever. */
	for (int i = 0; i < N; i++)
		crash[i] = br_submit(pool, nap_job, &long_ms, sizeof(long_ms));
	usleep(200 * 1000);
	for (int i = 0; i < N; i++) {
		CHECK(br_cancel(crash[i]) == 0, "cancel %d", i);
		CHECK(br_await(crash[i], NULL) == -ECANCELED, "cancelled %d",
		      i);
		br_future_release(crash[i]);
	}
	/* And the pool goes on. */
	late = br_submit(pool, nap_job, &short_ms, sizeof(short_ms));
	CHECK(br_await(late, NULL) == 0, "after the faults: %s",
	      br_future_message(late));
	br_future_release(late);
}

/* ---- a rank that dies ---- */

static int64_t ended_at[64];

static void note_end(br_future *f, void *arg)
{
	ended_at[(intptr_t)arg] = br_now_ns();
}

static void check_recovery(int victim)
{
	enum {
		N = 32
	};
	uint32_t ms = 1000, short_ms = 5;
	br_future *fs[N];
	pid_t server = 0;
	int64_t t0;
	int died = 0, ok = 0;
	int64_t slowest = 0;

	/* Find the victim rank's server process, a job's parent there:
	 * jobs beyond the local workers' share go to other ranks. */
	for (int tries = 0; tries < 20 && !server; tries++) {
		for (int i = 0; i < N; i++)
			fs[i] = br_submit(pool, nap_job, &short_ms,
					  sizeof(short_ms));
		for (int i = 0; i < N; i++) {
			const int64_t *out;

			if (br_await(fs[i], NULL) == 0 &&
			    (out = pair_of(fs[i])) && out[1] == victim)
				server = (pid_t)out[0];
			br_future_release(fs[i]);
		}
	}
	CHECK(server > 0, "no job ran on rank %d", victim);
	if (server <= 0)
		return;
	for (int i = 0; i < N; i++) {
		fs[i] = br_submit(pool, nap_job, &ms, sizeof(ms));
		br_future_on_done(fs[i], note_end, (void *)(intptr_t)i);
	}
	usleep(300 * 1000);
	CHECK(kill(server, SIGKILL) == 0, "kill rank %d", victim);
	t0 = br_now_ns();
	for (int i = 0; i < N; i++) {
		int r = br_await(fs[i], NULL);
		char want[32];

		snprintf(want, sizeof(want), "rank %d", victim);
		if (r == BR_EWORKERDIED &&
		    strstr(br_future_message(fs[i]), want)) {
			died++;
			CHECK(ended_at[i] - t0 < 2000 * 1000000LL,
			      "failed %lld ms after the kill",
			      (long long)((ended_at[i] - t0) / 1000000));
			slowest = ended_at[i] - t0 > slowest ?
					  ended_at[i] - t0 :
					  slowest;
		} else {
			CHECK(r == 0, "job %d: %d (%s)", i, r,
			      br_future_message(fs[i]));
			ok += r == 0;
		}
		br_future_release(fs[i]);
	}
	CHECK(died > 0, "no job failed with the rank");
	CHECK(ok > 0, "no job survived");
	/* The pool goes on without it. */
	for (int i = 0; i < 20; i++) {
		int32_t in[1] = { i };
		br_future *f = br_submit(pool, sum_job, in, sizeof(in));

		CHECK(br_await(f, NULL) == 0 && pair_of(f)[1] != victim,
		      "after: %s", br_future_message(f));
		br_future_release(f);
	}
	if (!failures)
		printf("mpi: recovery ok (%d jobs failed with rank %d at most "
		       "%lld ms after it died, %d ran elsewhere)\n",
		       died, victim, (long long)(slowest / 1000000), ok);
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 4096; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

int main(int argc, char **argv)
{
	const char *kill_rank = getenv("BRAID_MPI_KILL_RANK");
	br_runtime *rt;
	int fds;

	CHECK(br_mpi_serve(&argc, &argv) == 0, "br_mpi_serve");
	/* Only rank 0 gets here. */
	fds = count_fds();
	CHECK(br_runtime_new(&rt, &(br_config){ .workers = 2,
						.flags = BR_CONFIG_QUIET }) ==
		      0,
	      "br_runtime_new");
	CHECK(br_pool_new(&pool, rt,
			  &(br_pool_config){ .workers = 2, .mpi = 1 }) == 0,
	      "br_pool_new");
	if (failures)
		return 1;
	if (kill_rank) {
		check_recovery(atoi(kill_rank));
	} else {
		check_held_back();
		check_tasks(rt);
		check_mixed(rt);
		check_map();
		check_imap(0);
		check_imap(BR_IMAP_UNORDERED);
		check_faults();
		check_initializers(rt);
	}
	br_pool_free(pool);
	br_runtime_free(rt);
	/* Fewer is MPI's: it closes its connection to a dead rank. */
	CHECK(count_fds() <= fds, "descriptors %d -> %d", fds, count_fds());
	if (failures) {
		fprintf(stderr, "mpi_pool: %d checks failed\n", failures);
		return 1;
	}
	if (!kill_rank)
		printf("mpi: all checks passed\n");
	return 0;
}
