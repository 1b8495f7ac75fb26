/* SPDX-License-Identifier: MIT */
/*
 * pipeline.c - a producer, a pool of worker tasks and a consumer joined
 * by channels, with a CPU stage and a blocking stage.
 *
 *   producer --jobs--> worker x NWORKERS --results--> consumer
 *
 * The producer sends job numbers into a buffered channel and closes it
 * when done. Each worker task takes jobs until the channel is closed and
 * drained: it hashes a block of data (the CPU stage), then appends a line
 * to a log file and fsyncs it on the blocking pool (the blocking stage:
 * fsync blocks its thread, so it must not run on a worker), and sends
 * the result on. A wait group tracks the workers; once all are done, a
 * closer task closes the results channel, and the consumer, which reads
 * results and prints progress with a select that times out, sees it
 * closed and stops. Everything shuts down by closing channels, as in
 * Go, and no thread blocks but the blocking pool's.
 *
 * Run it with an optional job count: build/release/examples/pipeline 500
 * (or --jobs 500).
 */
#include <braid.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NWORKERS 8
#define BLOCK 4096 /* bytes hashed per job */

struct result {
	int job;
	int worker;
	uint64_t hash;
};

struct pipeline {
	br_chan *jobs;	  /* int: job numbers */
	br_chan *results; /* struct result */
	br_waitgroup workers;
	int njobs;
	int log_fd; /* the blocking stage appends here */
};

struct worker_arg {
	struct pipeline *p;
	int id;
};

/* CPU stage: FNV-1a over a block derived from the job number. */
static uint64_t hash_job(int job)
{
	uint64_t h = 1469598103934665603ull;
	unsigned char block[BLOCK];

	for (int i = 0; i < BLOCK; i++)
		block[i] = (unsigned char)(job * 31 + i * 7);
	for (int round = 0; round < 16; round++)
		for (int i = 0; i < BLOCK; i++) {
			h ^= block[i];
			h *= 1099511628211ull;
		}
	return h;
}

/* Blocking stage, on a pool thread: log the result durably. */
struct log_call {
	int fd;
	struct result r;
};

static void *log_and_fsync(void *arg)
{
	struct log_call *c = arg;
	char line[96];
	int n = snprintf(line, sizeof(line), "job %d worker %d hash %016llx\n",
			 c->r.job, c->r.worker, (unsigned long long)c->r.hash);

	if (write(c->fd, line, (size_t)n) != n || fsync(c->fd) != 0)
		return (void *)(intptr_t)-errno;
	return NULL;
}

static void *producer(void *arg)
{
	struct pipeline *p = arg;

	for (int job = 0; job < p->njobs; job++) {
		int r = br_chan_send(p->jobs, &job);

		if (r < 0)
			return br_fail(r, "producer: send failed");
	}
	br_chan_close(p->jobs); /* workers drain it, then stop */
	return NULL;
}

static void *worker(void *arg)
{
	struct worker_arg *w = arg;
	struct pipeline *p = w->p;
	int job, r;

	while ((r = br_chan_recv(p->jobs, &job)) == 0) {
		struct log_call call = { .fd = p->log_fd };
		br_future *f;
		void *err;

		call.r = (struct result){ job, w->id, hash_job(job) };
		/* Suspends this task only; the worker thread runs others. */
		f = br_spawn_blocking(br_current_runtime(), log_and_fsync,
				      &call);
		r = br_await(f, &err);
		br_future_release(f);
		if (r < 0 || err)
			break;
		r = br_chan_send(p->results, &call.r);
		if (r < 0)
			break;
	}
	br_waitgroup_done(&p->workers);
	return r == BR_ECLOSED ? NULL : br_fail(r, "worker stopped early");
}

/* Closes the results channel once every worker is done. */
static void *closer(void *arg)
{
	struct pipeline *p = arg;

	br_waitgroup_wait(&p->workers);
	br_chan_close(p->results);
	return NULL;
}

static void *consumer(void *arg)
{
	struct pipeline *p = arg;
	int per_worker[NWORKERS] = { 0 }, got = 0;
	uint64_t sum = 0;
	struct result r;
	br_chan_case c = { .chan = p->results, .op = BR_CHAN_RECV, .elem = &r };

	for (;;) {
		/* Wait at most 100 ms for a result, to show progress. */
		int k = br_chan_select_for(&c, 1, 100);

		if (k == -ETIMEDOUT) {
			printf("  ... %d of %d results so far\n", got,
			       p->njobs);
			continue;
		}
		if (k < 0)
			return br_fail(k, "consumer: select failed");
		if (c.result == BR_ECLOSED)
			break;
		got++;
		sum += r.hash;
		per_worker[r.worker]++;
	}
	printf("consumer: %d results, checksum %016llx\n", got,
	       (unsigned long long)sum);
	for (int i = 0; i < NWORKERS; i++)
		printf("  worker %d handled %d jobs\n", i, per_worker[i]);
	return (void *)(intptr_t)got;
}

static void *run_pipeline(void *arg)
{
	struct pipeline *p = arg;
	br_runtime *rt = br_current_runtime();
	struct worker_arg wa[NWORKERS];
	br_future *fs[NWORKERS + 3];
	void *got = NULL;
	int n = 0, r;

	br_waitgroup_add(&p->workers, NWORKERS);
	fs[n++] = br_spawn(rt, producer, p);
	for (int i = 0; i < NWORKERS; i++) {
		wa[i] = (struct worker_arg){ p, i };
		fs[n++] = br_spawn(rt, worker, &wa[i]);
	}
	fs[n++] = br_spawn(rt, closer, p);
	fs[n++] = br_spawn(rt, consumer, p);
	r = br_gather(fs, (size_t)n, NULL);
	br_await(fs[n - 1], &got);
	for (int i = 0; i < n; i++)
		br_future_release(fs[i]);
	if (r < 0)
		return br_fail(r, "a stage failed");
	return got;
}

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void usage(const char *name, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--jobs N | N]\n"
		"A producer, worker tasks and a consumer joined by channels.\n"
		"  -j, --jobs N  jobs to run through the pipeline (default "
		"200)\n"
		"  -h, --help    print this and exit\n",
		name);
	exit(status);
}

/* A job count from 1 to INT_MAX, or the usage. */
static int jobs_arg(const char *name, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > INT_MAX)
		usage(name, 2);
	return (int)v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pipeline p = { .njobs = 200 };
	const char *dir = getenv("TMPDIR");
	char path[512];
	int64_t t0 = br_now_ns();
	void *got = NULL;
	int r;

	while ((r = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
		if (r == 'j')
			p.njobs = jobs_arg(argv[0], optarg);
		else
			usage(argv[0], r == 'h' ? 0 : 2);
	}
	/* The job count may also come as the one operand, as it always
	 * could. */
	if (optind + 1 == argc)
		p.njobs = jobs_arg(argv[0], argv[optind]);
	else if (optind < argc)
		usage(argv[0], 2);
	snprintf(path, sizeof(path), "%s/braid-pipeline-XXXXXX",
		 dir ? dir : "/tmp");
	p.log_fd = mkstemp(path);
	if (p.log_fd < 0) {
		perror("mkstemp");
		return 1;
	}
	unlink(path); /* gone when closed */
	br_waitgroup_init(&p.workers);
	if (br_chan_new(&p.jobs, sizeof(int), 16) < 0 ||
	    br_chan_new(&p.results, sizeof(struct result), 0) < 0) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	r = br_run(NULL, run_pipeline, &p, &got);
	printf("pipeline: %s, %d of %d jobs in %lld ms\n",
	       r ? br_strerror(r) : "ok", (int)(intptr_t)got, p.njobs,
	       (long long)((br_now_ns() - t0) / 1000000));
	br_chan_free(p.jobs);
	br_chan_free(p.results);
	close(p.log_fd);
	return r == 0 && (intptr_t)got == p.njobs ? 0 : 1;
}
