/* SPDX-License-Identifier: MIT */
/*
 * soak.c - the soak's own load (scripts/soak.py): a process pool under a
 * random killer, blocking calls, channels and a mutex, all at once, in
 * rounds, with a sample of the process at the end of each.
 *
 *   soak [--seconds N] [--round-ms N] [--workers N] [--load LOAD]
 *
 * LOAD picks the parts of the load (all by default, "pkbc"): p the
 * pool's jobs, k the killer, b blocking calls, c the channel and mutex;
 * fewer, to tell which one a drift comes from.
 *
 * It runs for N seconds, or with --seconds 0 until SIGTERM or SIGINT; a
 * signal ends it after the round under way, with status 0 if all went
 * well.
 *
 * Design
 *   Each round has a busy part and a quiet part. While busy, a killer
 *   thread SIGKILLs a random pool worker every 5 to 50 ms; a task keeps
 *   batches of jobs in flight (an echo of a random size); another keeps
 *   blocking calls going; a producer and a consumer pass numbers
 *   through a channel with a select; tasks take turns on a mutex. In the
 *   quiet part everything stops and is awaited, the blocking pool's
 *   threads are left to exit (blocking_idle_ms is short here) and the
 *   pool to replace its dead workers, and one line is printed:
 *
 *     sample round=R t=S settle_ms=Q rss_kb=K shmem_kb=M heap_kb=H
 *            fds=F threads=T children=C jobs=J died=D blocking=B
 *            items=I errors=E
 *
 *   rss_kb is the private resident memory (RssAnon + RssFile); shmem_kb
 *   the resident pages of the pool's shared mapping (RssShmem), which
 *   the process shares with its workers; heap_kb what malloc has handed
 *   out and not had back (blocks in threads' caches count as in use).
 *
 *   Jobs may end DONE (their bytes are checked) or with BR_EWORKERDIED
 *   (the killer got their worker); anything else, a wrong value, a sum
 *   that does not add up, counts as an error and ends the program with
 *   status 1 after its round. So drift in the samples is braid's, not
 *   the load's: every round ends in the same quiet state.
 *
 * Concurrency
 *   The main thread drives rounds; the killer is a plain thread; the
 *   load runs in tasks. Counters are atomics.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "braid.h"
#include "census.h"

#define BATCH 32
#define JOB_INPUT_MAX 4096
#define CHAN_CAP 16
#define SETTLE_MS 60000 /* how long a quiet part may take to settle */
#define STABLE_MS 200	/* how long the quiet state must hold */

static br_runtime *rt;
static br_pool *pool;
static atomic_int busy; /* the load runs while set */
static atomic_long jobs, died, blocking, items, errors;
static unsigned nworkers = 2;
static volatile sig_atomic_t stop; /* SIGTERM or SIGINT came */
static const char *load = "pkbc";

static void on_stop(int sig)
{
	stop = 1;
}

static void err(const char *what, long v)
{
	fprintf(stderr, "soak: error: %s (%ld)\n", what, v);
	atomic_fetch_add(&errors, 1);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- the pool and its killer ---- */

static int echo_job(br_job *job, const void *in, size_t len)
{
	return br_job_write(job, in, len);
}

static void *killer(void *arg)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;

	while (atomic_load(&busy)) {
		pid_t pids[64];
		int n = br_pool_pids(pool, pids, 64);

		nap_ms(5 + (long)(rnd(&s) % 46));
		if (n > 0) {
			pid_t v = pids[rnd(&s) % (unsigned)(n < 64 ? n : 64)];

			if (v > 0)
				kill(v, SIGKILL);
		}
	}
	return NULL;
}

static void *submitter(void *arg)
{
	static unsigned char in[JOB_INPUT_MAX];
	uint64_t s = 12345;
	br_future *fs[BATCH];
	size_t lens[BATCH];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 1);
	while (atomic_load(&busy)) {
		for (int i = 0; i < BATCH; i++) {
			lens[i] = rnd(&s) % JOB_INPUT_MAX;
			fs[i] = br_submit(pool, echo_job, in, lens[i]);
		}
		for (int i = 0; i < BATCH; i++) {
			int r = br_await(fs[i], NULL);
			size_t len;
			const void *b;

			if (r == 0) {
				b = br_future_bytes(fs[i], &len);
				if (len != lens[i] ||
				    (len && memcmp(b, in, len) != 0))
					err("job bytes", (long)len);
				atomic_fetch_add(&jobs, 1);
			} else if (r == BR_EWORKERDIED) {
				atomic_fetch_add(&died, 1);
			} else {
				err(br_future_message(fs[i]), r);
			}
			br_future_release(fs[i]);
		}
	}
	return NULL;
}

/* ---- blocking calls ---- */

static void *blocking_call(void *arg)
{
	struct timespec ts = { 0, 100000 };

	nanosleep(&ts, NULL);
	return arg;
}

static void *blocking_load(void *arg)
{
	br_future *fs[8];
	void *v;

	while (atomic_load(&busy)) {
		for (intptr_t i = 0; i < 8; i++)
			fs[i] = br_spawn_blocking(rt, blocking_call,
						  (void *)(i + 1));
		for (intptr_t i = 0; i < 8; i++) {
			int r = br_await(fs[i], &v);

			if (r < 0)
				err("blocking call", r);
			else if ((intptr_t)v != i + 1)
				err("blocking value", (long)(intptr_t)v);
			else
				atomic_fetch_add(&blocking, 1);
			br_future_release(fs[i]);
		}
	}
	return NULL;
}

/* ---- a channel with a select, and a mutex ---- */

struct pipe_line {
	br_chan *ch, *quit;
	br_mutex mu;
	long shared; /* under mu */
};

static void *producer(void *arg)
{
	struct pipe_line *pl = arg;
	long sent = 0;

	for (int x = 1; atomic_load(&busy); x++) {
		int r = br_chan_send(pl->ch, &x);

		if (r < 0) {
			err("chan_send", r);
			break;
		}
		sent += x;
		if (x % 64 == 0) {
			br_mutex_lock(&pl->mu);
			pl->shared++;
			br_mutex_unlock(&pl->mu);
		}
	}
	br_chan_close(pl->ch);
	return (void *)sent;
}

static void *consumer(void *arg)
{
	struct pipe_line *pl = arg;
	long got = 0;
	int x, q;

	for (;;) {
		br_chan_case cs[2] = {
			{ .chan = pl->ch, .op = BR_CHAN_RECV, .elem = &x },
			{ .chan = pl->quit, .op = BR_CHAN_RECV, .elem = &q },
		};
		int r = br_chan_select(cs, 2);

		if (r != 0) {
			err("select", r);
			break;
		}
		if (cs[0].result == BR_ECLOSED)
			break;
		got += x;
		atomic_fetch_add(&items, 1);
		if (x % 50 == 0) {
			br_mutex_lock(&pl->mu);
			pl->shared++;
			br_mutex_unlock(&pl->mu);
		}
	}
	return (void *)got;
}

/* ---- samples ---- */

/* What malloc has handed out and not had back, mapped blocks included. */
static long heap_kb(void)
{
	struct mallinfo2 mi = mallinfo2();

	return (long)((mi.uordblks + mi.hblkhd) / 1024);
}

/* A field of /proc/self/status, in kB; -1 if it is not there. */
static long status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(field);
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			kb = atol(line + n + 1);
			break;
		}
	if (f)
		fclose(f);
	return kb;
}

/* The quiet state: every worker alive, the blocking threads gone. */
static int settled(int threads0)
{
	pid_t pids[64];
	int n = br_pool_pids(pool, pids, 64);

	for (int i = 0; i < n && i < 64; i++)
		if (pids[i] <= 0)
			return 0;
	/* The workers, the zygote and its spare. */
	return census_dir("/proc/self/task") == threads0 &&
	       census_children(0, NULL) == (int)nworkers + 2;
}

/* Wait for the quiet state to hold for STABLE_MS: a worker the killer
 * got just before it stopped still counts as a child, and as a worker,
 * until the pool has reaped it, so one look can see a quiet state that
 * is about to end. 0 if it never held that long within SETTLE_MS. */
static int settle(int threads0)
{
	int64_t t0 = br_now_ns(), since = -1;

	while (br_now_ns() - t0 < SETTLE_MS * INT64_C(1000000)) {
		if (!settled(threads0))
			since = -1;
		else if (since < 0)
			since = br_now_ns();
		else if (br_now_ns() - since >= STABLE_MS * INT64_C(1000000))
			return 1;
		nap_ms(10);
	}
	return 0;
}

static void round_of(int ms)
{
	struct pipe_line pl = { .mu = BR_MUTEX_INIT };
	br_future *fs[4];
	pthread_t kt;
	void *sent = NULL, *got = NULL;
	int r;

	if (br_chan_new(&pl.ch, sizeof(int), CHAN_CAP) < 0 ||
	    br_chan_new(&pl.quit, sizeof(int), 0) < 0) {
		err("chan_new", 0);
		return;
	}
	atomic_store(&busy, 1);
	if (strchr(load, 'k') && pthread_create(&kt, NULL, killer, NULL) != 0)
		err("pthread_create", 0);
	fs[0] = strchr(load, 'p') ? br_spawn(rt, submitter, NULL) : NULL;
	fs[1] = strchr(load, 'b') ? br_spawn(rt, blocking_load, NULL) : NULL;
	fs[2] = strchr(load, 'c') ? br_spawn(rt, producer, &pl) : NULL;
	fs[3] = strchr(load, 'c') ? br_spawn(rt, consumer, &pl) : NULL;
	nap_ms(ms);
	atomic_store(&busy, 0);
	if (strchr(load, 'k'))
		pthread_join(kt, NULL);
	for (int i = 0; i < 4; i++) {
		if (!fs[i])
			continue;
		r = br_await(fs[i], i == 2 ? &sent : i == 3 ? &got : NULL);
		if (r < 0)
			err(br_future_message(fs[i]), r);
		br_future_release(fs[i]);
	}
	if (sent != got)
		err("channel sums differ", (long)sent - (long)got);
	br_chan_free(pl.ch);
	br_chan_free(pl.quit);
}

static void *nap_task(void *arg)
{
	br_sleep_ms(20);
	return arg;
}

/* Bring braid's bounded caches to the size they keep, so that they do
 * not grow into the samples after the warm-up. Each worker caches up to
 * 64 fibers, and stacks come from slabs of 64 that stay mapped: tasks
 * spawned from this thread take stacks from the runtime's pool and end
 * in a worker's cache, so a new slab came (268 KiB resident at once)
 * after some 60 rounds. And freed channels wait in a quarantine of 256
 * before malloc has them back: two a round, pinned in the heap, made it
 * grow for the first 128 rounds. */
static void prime(void)
{
	enum {
		TASKS = 64 * 4,
		CHANS = 300
	};
	static br_future *fs[TASKS];
	static br_chan *chs[CHANS];
	int n = 64 * ((int)nworkers + 2);

	for (int i = 0; i < n && i < TASKS; i++)
		fs[i] = br_spawn(rt, nap_task, NULL);
	for (int i = 0; i < n && i < TASKS; i++) {
		if (br_await(fs[i], NULL) < 0)
			err("a priming task", br_future_error(fs[i]));
		br_future_release(fs[i]);
	}
	for (int i = 0; i < CHANS; i++)
		if (br_chan_new(&chs[i], sizeof(int), CHAN_CAP) < 0)
			chs[i] = NULL;
	for (int i = 0; i < CHANS; i++)
		br_chan_free(chs[i]);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "round-ms", required_argument, NULL, 'r' },
		{ "workers", required_argument, NULL, 'w' },
		{ "load", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	/* At most as many blocking threads as blocking_load keeps busy,
	 * so the first round reaches the most there will ever be (and the
	 * thread stacks glibc keeps for reuse) rather than a later one. */
	br_config cfg = { .workers = 2,
			  .blocking_threads = 8,
			  .blocking_idle_ms = 50 };
	struct sigaction sa = { .sa_handler = on_stop };
	br_pool_config pcfg = { 0 };
	long seconds = 60, round_ms = 5000;
	int64_t end, t0;
	int c, threads0, r, round = 0;

	while ((c = getopt_long(argc, argv, "s:r:w:l:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			seconds = atol(optarg);
			break;
		case 'r':
			round_ms = atol(optarg);
			break;
		case 'w':
			nworkers = (unsigned)atoi(optarg);
			break;
		case 'l':
			load = optarg;
			break;
		default:
			fprintf(stderr, "usage: soak [--seconds N] "
					"[--round-ms N] [--workers N] "
					"[--load pkbc]\n");
			return 2;
		}
	}
	if (round_ms < 100 || nworkers < 1 || nworkers > 64 || seconds < 0)
		return 2;
	/* Before the runtime's threads, which inherit nothing of it but
	 * share the process's handlers. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	r = br_runtime_new(&rt, &cfg);
	if (r < 0) {
		fprintf(stderr, "soak: runtime: %s\n", br_strerror(r));
		return 1;
	}
	pcfg.workers = nworkers;
	r = br_pool_new(&pool, rt, &pcfg);
	if (r < 0) {
		fprintf(stderr, "soak: pool: %s\n", br_strerror(r));
		br_runtime_free(rt);
		return 1;
	}
	prime();
	nap_ms(200);
	threads0 = census_dir("/proc/self/task");
	t0 = br_now_ns();
	end = t0 + (int64_t)seconds * 1000000000;
	while (!stop && (!seconds || br_now_ns() < end) &&
	       !atomic_load(&errors)) {
		int64_t q = br_now_ns(), quiet;

		/* Four fifths busy, the rest to settle. */
		round_of((int)(round_ms * 4 / 5));
		quiet = br_now_ns();
		if (!settle(threads0)) {
			pid_t pids[64];
			int n = br_pool_pids(pool, pids, 64);

			fprintf(stderr,
				"soak: not settled: %d threads (%d at the "
				"start), %d children, workers:",
				census_dir("/proc/self/task"), threads0,
				census_children(0, NULL));
			for (int i = 0; i < n && i < 64; i++)
				fprintf(stderr, " %d", (int)pids[i]);
			fputc('\n', stderr);
			err("the quiet state never came", 0);
		}
		printf("sample round=%d t=%.1f settle_ms=%ld rss_kb=%ld "
		       "shmem_kb=%ld heap_kb=%ld fds=%d threads=%d "
		       "children=%d jobs=%ld died=%ld blocking=%ld items=%ld "
		       "errors=%ld\n",
		       ++round, (double)(br_now_ns() - t0) / 1e9,
		       (long)((br_now_ns() - quiet) / 1000000),
		       status_kb("RssAnon") + status_kb("RssFile"),
		       status_kb("RssShmem"), heap_kb(),
		       census_dir("/proc/self/fd") - 1,
		       census_dir("/proc/self/task"), census_children(0, NULL),
		       atomic_load(&jobs), atomic_load(&died),
		       atomic_load(&blocking), atomic_load(&items),
		       atomic_load(&errors));
		fflush(stdout);
		/* The rest of the round, if settling was quick. */
		while (!stop && br_now_ns() - q < round_ms * 1000000)
			nap_ms(10);
	}
	br_pool_free(pool);
	br_runtime_free(rt);
	return atomic_load(&errors) ? 1 : 0;
}
