/* SPDX-License-Identifier: MIT */
/*
 * chan_pthread.c - the chan peer on plain threads.
 *
 * What it measures
 *   --mode pingpong: two threads pass a token n times (default 100,000)
 *   through a one-slot mailbox per direction guarded by a pthread mutex
 *   and condition variable: the classic way two threads hand each other
 *   a value. With --cpus same both threads are pinned to CPU 0 (the
 *   hand-off is a context switch); with --cpus apart to CPUs 0 and 1
 *   (every hand-off wakes the other CPU). Reported in ns per round trip.
 *
 *   --mode mutex: --threads (default 2) threads each lock a
 *   pthread_mutex_t, increment a shared counter and unlock, n times
 *   (default 1,000,000). Reported in ns per lock/unlock pair: wall time /
 *   (threads * n).
 *
 * Threads wait on a start barrier; the clock runs from the barrier to
 * the last join.
 *
 * Output: JSON lines as bench/bench.h writes them, impl "pthread".
 */
#define _GNU_SOURCE /* CPU_SET, pthread_setaffinity_np */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "chan_pthread: %s\n", what);
	exit(1);
}

struct box {
	pthread_mutex_t m;
	pthread_cond_t c;
	int full;
	long v;
};

static struct box boxes[2] = {
	{ PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 },
	{ PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 },
};

static void put(struct box *b, long v)
{
	pthread_mutex_lock(&b->m);
	while (b->full)
		pthread_cond_wait(&b->c, &b->m);
	b->v = v;
	b->full = 1;
	pthread_cond_signal(&b->c);
	pthread_mutex_unlock(&b->m);
}

static long take(struct box *b)
{
	long v;

	pthread_mutex_lock(&b->m);
	while (!b->full)
		pthread_cond_wait(&b->c, &b->m);
	v = b->v;
	b->full = 0;
	pthread_cond_signal(&b->c);
	pthread_mutex_unlock(&b->m);
	return v;
}

static long rounds;
static int cpu_of[2];
static pthread_barrier_t start;

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		die("cannot pin a thread");
}

static void *pinger(void *arg)
{
	pin(cpu_of[0]);
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++) {
		put(&boxes[0], i);
		if (take(&boxes[1]) != i)
			die("pong out of order");
	}
	return NULL;
}

static void *ponger(void *arg)
{
	pin(cpu_of[1]);
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++)
		put(&boxes[1], take(&boxes[0]));
	return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *incrementer(void *arg)
{
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++) {
		pthread_mutex_lock(&mu);
		counter++;
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

static int64_t run(int nthreads, void *(**fns)(void *))
{
	pthread_t th[64];
	int64_t t0;

	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, fns[i], NULL))
			die("pthread_create");
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	return now_ns() - t0;
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *cpus = "apart";
	void *(*fns[64])(void *);
	long n = 0, threads = 2, per;
	int64_t ns;
	int k;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--mode"))
			mode = argv[i + 1];
		else if (!strcmp(argv[i], "--n"))
			n = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--cpus"))
			cpus = argv[i + 1];
		else
			die("usage: --mode pingpong|mutex [--n N] "
			    "[--cpus same|apart] [--threads N]");
	}
	if (!mode || threads < 1 || threads > 64)
		die("usage: --mode pingpong|mutex [--n N] [--cpus same|apart] "
		    "[--threads N]");
	if (!strcmp(mode, "pingpong")) {
		rounds = n ? n : 100000;
		cpu_of[0] = 0;
		cpu_of[1] = !strcmp(cpus, "same") ? 0 : 1;
		fns[0] = pinger;
		fns[1] = ponger;
		ns = run(2, fns);
		per = rounds;
		threads = !strcmp(cpus, "same") ? 1 : 2;
	} else if (!strcmp(mode, "mutex")) {
		rounds = n ? n : 1000000;
		for (k = 0; k < threads; k++)
			fns[k] = incrementer;
		ns = run((int)threads, fns);
		per = rounds * threads;
		if (counter != per)
			die("lost increments");
	} else {
		die("--mode is pingpong or mutex");
	}
	printf("{\"workload\": \"chan\", \"impl\": \"pthread\", \"metric\": "
	       "\"%s\", \"unit\": \"ns\", \"n\": %ld, \"threads\": %ld, "
	       "\"median\": %.6g, \"min\": %.6g, \"max\": %.6g, \"runs\": 1, "
	       "\"values\": [%.6g], \"cmd\": \"",
	       mode, per, threads, (double)ns / per, (double)ns / per,
	       (double)ns / per, (double)ns / per);
	for (k = 0; k < argc; k++)
		printf("%s%s", k ? " " : "", argv[k]);
	printf("\"}\n");
	return 0;
}
