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
 *   --mode spin: the same with no kernel at all: both threads spin on one
 *   word in a cache line of its own, each waiting for its turn and
 *   handing it over with a store. This is the machine's floor for a
 *   hand-off between two CPUs: one round trip moves the line there and
 *   back. Printed with impl "spin", metric "pingpong"; n defaults to
 *   1,000,000 for it.
 *
 *   --mode spin-chain, spin-spread: --mode spin, but before handing the
 *   turn over each side writes CHAIN more lines, which the other side
 *   reads after it gets the turn: following pointers from one to the
 *   next (chain: each read waits for the one before, as a woken task's
 *   record, its fiber and its future do), or at addresses it knows
 *   (spread: the reads overlap). The first costs a line's trip per line,
 *   the second little more than spin. impl "spin-chain" or
 *   "spin-spread", metric "pingpong".
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
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../bench.h"
#include "mailbox.h"

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

static struct mailbox boxes[2] = { MAILBOX_INIT, MAILBOX_INIT };

static void *cv_pinger(void *arg)
{
	pin(0);
	pthread_barrier_wait(&start);
	if (mailbox_ping(boxes, rounds) < 0)
		die("pong out of order");
	return NULL;
}

static void *cv_ponger(void *arg)
{
	pin(1);
	pthread_barrier_wait(&start);
	mailbox_pong(boxes, rounds);
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

/* ---- two spinning threads ---- */

static struct {
	_Alignas(64) atomic_long turn; /* odd: the ponger's turn */
	char pad[64 - sizeof(atomic_long)];
} line;

static void spin_until(long v)
{
	while (atomic_load_explicit(&line.turn, memory_order_acquire) != v) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ volatile("yield");
#endif
	}
}

#define CHAIN 4

struct cline {
	_Alignas(64) struct cline *_Atomic next;
	atomic_long v;
};

/* chain[d]: written by side d, read by the other; extra lines of it
 * (0 for --mode spin). */
static struct cline chain[2][CHAIN];
static int extra, chained;

static void chain_init(void)
{
	for (int d = 0; d < 2; d++)
		for (int k = 0; k < CHAIN; k++)
			atomic_init(&chain[d][k].next,
				    k + 1 < CHAIN ? &chain[d][k + 1] : NULL);
}

static void chain_write(int d, long v)
{
	for (int k = 0; k < extra; k++)
		atomic_store_explicit(&chain[d][k].v, v, memory_order_relaxed);
}

/* Read what side d wrote for turn v (the turn's acquire orders it). */
static void chain_read(int d, long v)
{
	long bad = 0;

	if (!extra)
		return;
	if (chained) {
		for (struct cline *c = &chain[d][0]; c;
		     c = atomic_load_explicit(&c->next, memory_order_relaxed))
			bad |= atomic_load_explicit(&c->v,
						    memory_order_relaxed) ^
			       v;
	} else {
		for (int k = 0; k < extra; k++)
			bad |= atomic_load_explicit(&chain[d][k].v,
						    memory_order_relaxed) ^
			       v;
	}
	if (bad)
		die("a line came without its turn");
}

static void *spin_pinger(void *arg)
{
	pin(0);
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++) {
		chain_write(0, 2 * i + 1);
		atomic_store_explicit(&line.turn, 2 * i + 1,
				      memory_order_release);
		spin_until(2 * i + 2);
		chain_read(1, 2 * i + 2);
	}
	return NULL;
}

static void *spin_ponger(void *arg)
{
	pin(1);
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++) {
		spin_until(2 * i + 1);
		chain_read(0, 2 * i + 1);
		chain_write(1, 2 * i + 2);
		atomic_store_explicit(&line.turn, 2 * i + 2,
				      memory_order_release);
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
		mailbox_put(&boxes[0], i);
	}
	return NULL;
}

static void *tick_taker(void *arg)
{
	pthread_barrier_wait(&start);
	for (long i = 0; i < rounds; i++)
		if (mailbox_take(&boxes[0]) != i)
			die("tick out of order");
	return NULL;
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
	c0 = bench_cpu_ns();
	t0 = bench_now_ns();
	light_t0 = t0;
	pthread_barrier_wait(&start);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	*cpu = bench_cpu_ns() - c0;
	return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 0, .ms = 5000 };
	int64_t ns, cpu;

	bench_parse(&o, argc, argv,
		    "--mode condvar|eventfd|spin|spin-chain|spin-spread|light "
		    "[--n N] [--ms MS]");
	if (!o.mode)
		die("--mode is condvar, eventfd, spin, spin-chain, "
		    "spin-spread or light");
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
	} else if (!strcmp(o.mode, "spin")) {
		rounds = o.n ? o.n : 1000000;
		ns = run(spin_pinger, spin_ponger, &cpu);
		bench_report("handoff", "spin", "pingpong", "ns", rounds, 2,
			     (double)ns / (double)rounds, argc, argv);
	} else if (!strcmp(o.mode, "spin-chain") ||
		   !strcmp(o.mode, "spin-spread")) {
		rounds = o.n ? o.n : 1000000;
		extra = CHAIN;
		chained = !strcmp(o.mode, "spin-chain");
		chain_init();
		ns = run(spin_pinger, spin_ponger, &cpu);
		bench_report("handoff", o.mode, "pingpong", "ns", rounds, 2,
			     (double)ns / (double)rounds, argc, argv);
	} else if (!strcmp(o.mode, "light")) {
		rounds = o.ms;
		ns = run(ticker, tick_taker, &cpu);
		bench_report("handoff", "pthread", "light", "%", o.ms, 2,
			     (double)cpu * 100.0 / (double)ns, argc, argv);
	} else {
		die("--mode is condvar, eventfd, spin, spin-chain, "
		    "spin-spread or light");
	}
	return 0;
}
