/* SPDX-License-Identifier: MIT */
/*
 * chan.c - the cost of a channel hand-off and of a contended mutex.
 *
 * What it measures
 *   --mode pingpong: two tasks pass a token n times (default 1,000,000)
 *   over two unbuffered channels: A sends on ping and receives on pong, B
 *   the reverse. Reported in ns per round trip: wall time / n. The tasks
 *   are not pinned: with --workers 2 they start wherever the scheduler
 *   puts them and may move (a woken task goes to its waker's LIFO slot),
 *   as Go's goroutines do under GOMAXPROCS=2.
 *
 *   --mode pingpong-apart: the same with A pinned to worker 0 and B to
 *   worker 1 (br_spawn_on), so every hand-off crosses between threads.
 *
 *   --mode mutex: --workers (default 2) times 1,000 tasks, pinned to
 *   their worker, each lock a br_mutex, increment a shared counter and
 *   unlock, n times (default 1,000). Reported in ns per lock/unlock pair:
 *   wall time / (tasks * n). The counter is checked.
 *
 * How
 *   The ping-pong tasks first await a start promise, so neither runs
 *   ahead alone. The mutex tasks spin on a start flag instead (awaiting
 *   one promise would make its resolution wake 2,000 tasks inside the
 *   timed region); only the first task on each worker spins, the others
 *   start after it. The clock runs on the main thread from the start
 *   signal to br_await() returning for every task.
 *
 *   Peers: peers/chan_go.go (unbuffered channels; sync.Mutex with 2,000
 *   goroutines) and peers/chan_pthread.c (mutex+condvar ping-pong;
 *   pthread_mutex with 2 threads).
 *
 * Output: JSON lines, metrics "pingpong", "pingpong-apart" and "mutex",
 * in ns.
 */
#include <stdatomic.h>

#include "braid.h"
#include "bench.h"

#define MUTEX_TASKS 1000 /* per worker */

static br_runtime *rt;

static void check(int err, const char *what)
{
	if (err < 0)
		bench_die("chan: %s: %s", what, br_strerror(err));
}

/* ---- ping-pong ---- */

struct duel {
	br_future *start;
	br_chan *ping, *pong;
	long rounds;
};

static void *pinger(void *arg)
{
	struct duel *d = arg;
	long v;

	check(br_await(d->start, NULL), "await start");
	for (long i = 0; i < d->rounds; i++) {
		check(br_chan_send(d->ping, &i), "send ping");
		check(br_chan_recv(d->pong, &v), "recv pong");
		if (v != i)
			bench_die("chan: pong %ld, want %ld", v, i);
	}
	return NULL;
}

static void *ponger(void *arg)
{
	struct duel *d = arg;
	long v;

	check(br_await(d->start, NULL), "await start");
	for (long i = 0; i < d->rounds; i++) {
		check(br_chan_recv(d->ping, &v), "recv ping");
		check(br_chan_send(d->pong, &v), "send pong");
	}
	return NULL;
}

static double pingpong(long n, int apart)
{
	struct duel d = { .rounds = n };
	br_future *a, *b;
	int64_t t0, t1;

	check(br_chan_new(&d.ping, sizeof(long), 0), "br_chan_new");
	check(br_chan_new(&d.pong, sizeof(long), 0), "br_chan_new");
	d.start = br_promise_new();
	if (apart) {
		a = br_spawn_on(rt, 0, pinger, &d);
		b = br_spawn_on(rt, 1, ponger, &d);
	} else {
		a = br_spawn(rt, pinger, &d);
		b = br_spawn(rt, ponger, &d);
	}
	t0 = br_now_ns();
	check(br_promise_resolve(d.start, NULL), "resolve start");
	check(br_await(a, NULL), "task A");
	check(br_await(b, NULL), "task B");
	t1 = br_now_ns();
	br_future_release(a);
	br_future_release(b);
	br_future_release(d.start);
	br_chan_free(d.ping);
	br_chan_free(d.pong);
	return (double)(t1 - t0) / (double)n;
}

/* ---- contended mutex ---- */

static br_mutex mu = BR_MUTEX_INIT;
static long counter; /* under mu */
static atomic_int go;
static long per_task;

static void *incrementer(void *arg)
{
	while (!atomic_load_explicit(&go, memory_order_acquire))
		;
	for (long i = 0; i < per_task; i++) {
		br_mutex_lock(&mu);
		counter++;
		br_mutex_unlock(&mu);
	}
	return NULL;
}

static double mutex(long n, unsigned workers)
{
	long tasks = (long)workers * MUTEX_TASKS;
	br_future **fs = malloc((size_t)tasks * sizeof(*fs));
	int64_t t0, t1;

	if (!fs)
		bench_die("chan: out of memory");
	per_task = n;
	for (long i = 0; i < tasks; i++)
		fs[i] = br_spawn_on(rt, (unsigned)(i % workers), incrementer,
				    NULL);
	t0 = br_now_ns();
	atomic_store_explicit(&go, 1, memory_order_release);
	for (long i = 0; i < tasks; i++) {
		check(br_await(fs[i], NULL), "incrementer");
		br_future_release(fs[i]);
	}
	t1 = br_now_ns();
	free(fs);
	if (counter != tasks * n)
		bench_die("chan: counter %ld, want %ld", counter, tasks * n);
	return (double)(t1 - t0) / (double)(tasks * n);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .n = 0, .workers = 0 };
	br_config cfg = { 0 };
	const char *metric;
	double ns;
	long n;
	int err;

	bench_parse(&o, argc, argv,
		    "--mode pingpong|pingpong-apart|mutex [--workers N] "
		    "[--n N]");
	if (!o.mode)
		bench_die("chan: --mode is pingpong, pingpong-apart or mutex");
	metric = o.mode;
	if (!o.workers)
		o.workers = !strcmp(metric, "pingpong") ? 1 : 2;
	cfg.workers = o.workers;
	err = br_runtime_new(&rt, &cfg);
	if (err < 0)
		bench_die("br_runtime_new: %s", br_strerror(err));
	if (!strcmp(metric, "pingpong") || !strcmp(metric, "pingpong-apart")) {
		int apart = metric[8] != '\0';

		if (apart && o.workers < 2)
			bench_die("chan: pingpong-apart needs 2 workers");
		n = o.n ? o.n : 1000000;
		ns = pingpong(n, apart);
	} else if (!strcmp(metric, "mutex")) {
		n = o.n ? o.n : 1000;
		ns = mutex(n, o.workers);
		n *= (long)o.workers * MUTEX_TASKS;
	} else {
		bench_die("chan: unknown --mode %s", metric);
	}
	bench_report("chan", "braid", metric, "ns", n, br_runtime_workers(rt),
		     ns, argc, argv);
	br_runtime_free(rt);
	return 0;
}
