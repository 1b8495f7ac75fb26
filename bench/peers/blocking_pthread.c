/* SPDX-License-Identifier: MIT */
/*
 * blocking_pthread.c - the blocking peer: a plain pthread pool.
 *
 * The pool is what C programs usually write (libuv's threadpool.c has
 * the same shape): --workers (default 4, libuv's default) threads started
 * up front take jobs from a FIFO guarded by one mutex, sleeping on a
 * condition variable while it is empty. Each job records its result and
 * a done flag under the mutex, and waiters of finished jobs sleep on a
 * second condition variable (signalled only when someone waits).
 *
 *   --mode burst: submit n (default 100,000) jobs of an empty function,
 *   then wait for each in order. Reported in us per call.
 *   --mode serial: submit and wait for n (default 10,000) jobs one at a
 *   time. Reported in us per call.
 *
 * A first, untimed run of the same size (--warmup N to change it, 0 for
 * none) warms the threads, the caches and the job array, as the braid
 * bench does. The clock runs from the first submission to the last wait
 * returning; starting the threads is not timed.
 *
 * Output: JSON lines from bench/bench.h's bench_report(), impl
 * "pthread"; the threads field is the machine's CPU count, as for the
 * braid bench's workers (the pool size is in the command line).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "../bench.h"

struct job {
	void *(*fn)(void *);
	void *arg;
	void *result;
	int done; /* under pool.lock */
	struct job *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work; /* jobs queued */
	pthread_cond_t done; /* a job some waiter waits for finished */
	struct job *head, *tail;
	int waiting; /* waiters on done */
	int stop;
} pool = { PTHREAD_MUTEX_INITIALIZER,
	   PTHREAD_COND_INITIALIZER,
	   PTHREAD_COND_INITIALIZER,
	   NULL,
	   NULL,
	   0,
	   0 };

static void *worker(void *arg)
{
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		struct job *j;

		while (!pool.head && !pool.stop)
			pthread_cond_wait(&pool.work, &pool.lock);
		if (!pool.head)
			break;
		j = pool.head;
		pool.head = j->next;
		if (!pool.head)
			pool.tail = NULL;
		pthread_mutex_unlock(&pool.lock);
		j->result = j->fn(j->arg);
		pthread_mutex_lock(&pool.lock);
		j->done = 1;
		if (pool.waiting)
			pthread_cond_broadcast(&pool.done);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

static void submit(struct job *j)
{
	j->done = 0;
	j->next = NULL;
	pthread_mutex_lock(&pool.lock);
	if (pool.tail)
		pool.tail->next = j;
	else
		pool.head = j;
	pool.tail = j;
	pthread_cond_signal(&pool.work);
	pthread_mutex_unlock(&pool.lock);
}

static void *wait_job(struct job *j)
{
	pthread_mutex_lock(&pool.lock);
	while (!j->done) {
		pool.waiting++;
		pthread_cond_wait(&pool.done, &pool.lock);
		pool.waiting--;
	}
	pthread_mutex_unlock(&pool.lock);
	return j->result;
}

static void *empty(void *arg)
{
	return arg;
}

/* Submit n jobs and wait for each (serial: one at a time). */
static void run_round(struct job *jobs, long n, const char *mode)
{
	for (long i = 0; i < n; i++) {
		jobs[i].fn = empty;
		submit(&jobs[i]);
		if (!strcmp(mode, "serial"))
			wait_job(&jobs[i]);
	}
	for (long i = 0; i < n; i++)
		wait_job(&jobs[i]);
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.n = 0, .workers = 4, .mode = "burst", .warmup = -1
	};
	pthread_t th[256];
	struct job *jobs;
	int64_t t0, t1;
	long n, warmup;

	bench_parse(&o, argc, argv,
		    "[--mode burst|serial] [--n N] [--workers N] [--warmup N]");
	if (o.workers < 1 || o.workers > 256 ||
	    (strcmp(o.mode, "burst") && strcmp(o.mode, "serial")))
		bench_die("blocking_pthread: --mode is burst or serial; "
			  "--workers 1..256");
	n = o.n ? o.n : !strcmp(o.mode, "burst") ? 100000 : 10000;
	warmup = o.warmup < 0 ? n : o.warmup;
	jobs = calloc((size_t)(n > warmup ? n : warmup), sizeof(*jobs));
	if (!jobs)
		bench_die("blocking_pthread: out of memory");
	for (unsigned i = 0; i < o.workers; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	if (warmup)
		run_round(jobs, warmup, o.mode);
	t0 = bench_now_ns();
	run_round(jobs, n, o.mode);
	t1 = bench_now_ns();
	pthread_mutex_lock(&pool.lock);
	pool.stop = 1;
	pthread_cond_broadcast(&pool.work);
	pthread_mutex_unlock(&pool.lock);
	for (unsigned i = 0; i < o.workers; i++)
		pthread_join(th[i], NULL);
	free(jobs);
	bench_report("blocking", "pthread", o.mode, "us", n,
		     (unsigned)sysconf(_SC_NPROCESSORS_ONLN),
		     (double)(t1 - t0) / 1000.0 / (double)n, argc, argv);
	return 0;
}
