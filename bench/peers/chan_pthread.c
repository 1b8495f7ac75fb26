/* SPDX-License-Identifier: MIT */
/*
 * chan_pthread.c - the chan peer on plain threads.
 *
 * What it measures
 *   --mode pingpong: two threads pass a token n times (default 100,000)
 *   through a one-slot mailbox per direction guarded by a pthread mutex
 *   and condition variable: the classic way two threads hand each other
 *   a value. With --workers 1 both threads are pinned to CPU 0 (the
 *   hand-off is a context switch); with --workers 2 to CPUs 0 and 1
 *   (every hand-off wakes the other CPU). Reported in ns per round trip.
 *
 *   --mode mutex: --workers (default 2) threads each lock a
 *   pthread_mutex_t, increment a shared counter and unlock, n times
 *   (default 1,000,000). Reported in ns per lock/unlock pair: wall time /
 *   (threads * n).
 *
 * Threads wait on a start barrier; the clock runs from the barrier to
 * the last join.
 *
 * Output: JSON lines from bench/bench.h's bench_report(), impl "pthread".
 */
#define _GNU_SOURCE /* CPU_SET, pthread_setaffinity_np */
#include <pthread.h>
#include <sched.h>

#include "../bench.h"
#include "mailbox.h"

static void die(const char *what)
{
	bench_die("chan_pthread: %s", what);
}

static struct mailbox boxes[2] = { MAILBOX_INIT, MAILBOX_INIT };

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
	if (mailbox_ping(boxes, rounds) < 0)
		die("pong out of order");
	return NULL;
}

static void *ponger(void *arg)
{
	pin(cpu_of[1]);
	pthread_barrier_wait(&start);
	mailbox_pong(boxes, rounds);
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
	t0 = bench_now_ns();
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 0, .workers = 2 };
	void *(*fns[64])(void *);
	long per;
	int64_t ns;

	bench_parse(&o, argc, argv,
		    "--mode pingpong|mutex [--n N] [--workers N]");
	if (!o.mode || o.workers < 1 || o.workers > 64)
		die("--mode is pingpong or mutex; --workers 1..64");
	if (!strcmp(o.mode, "pingpong")) {
		if (o.workers > 2)
			die("pingpong runs on 1 or 2 CPUs");
		rounds = o.n ? o.n : 100000;
		cpu_of[0] = 0;
		cpu_of[1] = o.workers == 1 ? 0 : 1;
		fns[0] = pinger;
		fns[1] = ponger;
		ns = run(2, fns);
		per = rounds;
	} else if (!strcmp(o.mode, "mutex")) {
		rounds = o.n ? o.n : 1000000;
		for (unsigned k = 0; k < o.workers; k++)
			fns[k] = incrementer;
		ns = run((int)o.workers, fns);
		per = rounds * (long)o.workers;
		if (counter != per)
			die("lost increments");
	} else {
		die("--mode is pingpong or mutex");
	}
	bench_report("chan", "pthread", o.mode, "ns", per, o.workers,
		     (double)ns / (double)per, argc, argv);
	return 0;
}
