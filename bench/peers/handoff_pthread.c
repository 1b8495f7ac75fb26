/* SPDX-License-Identifier: MIT */
/*
 * handoff_pthread.c - the handoff peer on plain threads: what a wake-up
 * through the kernel costs between two CPUs.
 *
 * What it measures
 *   --mode condvar: two threads, pinned to CPUs 0 and 1, pass a token n
 *   times (default 20,000) through a one-slot mailbox per direction
 *   guarded by a pthread mutex and condition variable. ns per round trip:
 *   wall time / n. Printed with impl "pthread", metric "pingpong".
 *
 *   --mode eventfd: the same with one eventfd per direction: each thread
 *   blocks in read() on its own and write()s the other's. Printed with
 *   impl "eventfd", metric "pingpong".
 *
 *   --mode light: one hand-off every millisecond for --ms ms (default
 *   5,000): one thread sleeps to the next millisecond and signals a
 *   condition variable another thread waits on. The process's CPU time
 *   (getrusage) over the wall time, in percent of one CPU; impl
 *   "pthread", metric "light".
 *
 * Threads wait on a start barrier; the clock runs from the barrier to the
 * last join.
 *
 * Output: JSON lines from bench/bench.h's bench_report().
 */
#define _GNU_SOURCE /* CPU_SET, pthread_setaffinity_np */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../bench.h"

static void die(const char *what)
{
	bench_die("handoff_pthread: %s", what);
}

static long rounds;
static pthread_barrier_t start;

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		die("cannot pin a thread");
}

/* ---- mutex + condition variable ---- */

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

static void *cv_pinger(void *arg)
{
	pin(0);
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++) {
		put(&boxes[0], i);
		if (take(&boxes[1]) != i)
			die("pong out of order");
	}
	return NULL;
}

static void *cv_ponger(void *arg)
{
	pin(1);
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++)
		put(&boxes[1], take(&boxes[0]));
	return NULL;
}

/* ---- eventfd ---- */

static int efd[2];

static void efd_put(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		die("eventfd write");
}

static void efd_take(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		die("eventfd read");
}

static void *ev_pinger(void *arg)
{
	pin(0);
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++) {
		efd_put(efd[0]);
		efd_take(efd[1]);
	}
	return NULL;
}

static void *ev_ponger(void *arg)
{
	pin(1);
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++) {
		efd_take(efd[0]);
		efd_put(efd[1]);
	}
	return NULL;
}

/* ---- one hand-off per millisecond ---- */

static int64_t light_t0;

static void *ticker(void *arg)
{
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++) {
		int64_t t = light_t0 + (i + 1) * 1000000;
		struct timespec ts = { .tv_sec = t / 1000000000,
				       .tv_nsec = t % 1000000000 };

		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				       NULL))
			;
		put(&boxes[0], i);
	}
	return NULL;
}

static void *tick_taker(void *arg)
{
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++)
		if (take(&boxes[0]) != i)
			die("tick out of order");
	return NULL;
}

static int64_t cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		die("getrusage");
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* Run a and b from a barrier; returns the ns from the barrier to both
 * joined, and the CPU ns the process used meanwhile in *cpu. */
static int64_t run(void *(*a)(void *), void *(*b)(void *), int64_t *cpu)
{
	pthread_t th[2];
	int64_t t0, c0;

	pthread_barrier_init(&start, NULL, 3);
	if (pthread_create(&th[0], NULL, a, NULL) ||
	    pthread_create(&th[1], NULL, b, NULL))
		die("pthread_create");
	c0 = cpu_ns();
	t0 = bench_now_ns();
	light_t0 = t0;
	pthread_barrier_wait(&start);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	*cpu = cpu_ns() - c0;
	return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 0, .ms = 5000 };
	int64_t ns, cpu;

	bench_parse(&o, argc, argv,
		    "--mode condvar|eventfd|light [--n N] [--ms MS]");
	if (!o.mode)
		die("--mode is condvar, eventfd or light");
	rounds = o.n ? o.n : 20000;
	if (!strcmp(o.mode, "condvar")) {
		ns = run(cv_pinger, cv_ponger, &cpu);
		bench_report("handoff", "pthread", "pingpong", "ns", rounds, 2,
			     (double)ns / (double)rounds, argc, argv);
	} else if (!strcmp(o.mode, "eventfd")) {
		efd[0] = eventfd(0, EFD_CLOEXEC);
		efd[1] = eventfd(0, EFD_CLOEXEC);
		if (efd[0] < 0 || efd[1] < 0)
			die("eventfd");
		ns = run(ev_pinger, ev_ponger, &cpu);
		bench_report("handoff", "eventfd", "pingpong", "ns", rounds, 2,
			     (double)ns / (double)rounds, argc, argv);
	} else if (!strcmp(o.mode, "light")) {
		rounds = o.ms;
		ns = run(ticker, tick_taker, &cpu);
		bench_report("handoff", "pthread", "light", "%", o.ms, 2,
			     (double)cpu * 100.0 / (double)ns, argc, argv);
	} else {
		die("--mode is condvar, eventfd or light");
	}
	return 0;
}
