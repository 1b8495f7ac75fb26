/* SPDX-License-Identifier: MIT */
/*
 * faults.c - the scenario the fault sweep runs under every fault point
 * (scripts/faults.py, make test-faults).
 *
 * Design
 *   One pass over what a program does with braid, on each backend
 *   (io_uring, then BR_CONFIG_NO_URING): a runtime is made and freed;
 *   tasks are spawned, pinned, awaited, gathered, cancelled, iterated
 *   with as_completed; timers, loop callbacks and promises resolved from
 *   a thread; a mutex, a semaphore and channels (with a select) shared
 *   by tasks; bytes through a pipe and a TCP loopback connection; calls
 *   on the blocking pool; a process pool with br_submit (a job that
 *   crashes, one past its time limit) and br_map; br_exec with a
 *   captured output.
 *
 *   Under a fault, any call may fail, but only the documented way: an
 *   int return is 0, a count or a negative error; a future ends DONE
 *   with br_await() returning 0, or FAILED/CANCELLED with br_await()
 *   returning its br_future_error(). A call that succeeds must have done
 *   its work (the bytes, sums and counts are checked), and every
 *   resource is released on every path. No wait is unbounded: an I/O or
 *   sync wait that times out (20 s) means a lost wake-up, which is a
 *   failed check, not an error return; a -ETIMEDOUT sooner than that is
 *   a call's own (recv and connect may say it). After the runtimes are
 *   freed, the descriptors, threads and children of the process must be
 *   what they were at the start.
 *
 *   Exit status: 0 if every check held, whether the calls succeeded or
 *   failed with errors; 1 if a check failed. A crash, a hang and a
 *   sanitizer report are for the sweep to see. -v prints every error
 *   return; --strict (the sweep's run without faults) requires every
 *   awaited future to end as it would without faults (the crashing job
 *   with BR_EWORKERDIED, the one past its time limit with -ETIMEDOUT,
 *   the others DONE); -n N makes N passes on each backend instead of one (the
 *   sweep's random mode: one pass reaches most points too few times for
 *   a 1% chance to fire); the last line always counts the calls that
 *   succeeded and the ones that failed with an error.
 *
 * Concurrency
 *   The main thread drives; tasks, a helper thread and pool jobs share
 *   only what each step hands them, with atomics where they meet.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* The longest any one wait may take before it counts as a lost wake-up:
 * far past anything the scenario does on a loaded machine. */
#define WAIT_MS 20000
#define NTASKS 16
#define PIPE_BYTES (64 * 1024)
#define TCP_BYTES (32 * 1024)
#define CHAN_ITEMS 200
#define MUTEX_ROUNDS 100
#define MAP_ITEMS 64

static int verbose;
static int strict;
static atomic_int checks_failed;
static atomic_int calls_ok;
static atomic_int calls_err;

static void bad(const char *what, int line, long v)
{
	fprintf(stderr, "faults: CHECK FAILED at line %d: %s (%ld)\n", line,
		what, v);
	atomic_fetch_add(&checks_failed, 1);
}
#define BAD(what, v) bad(what, __LINE__, (long)(v))

/* An int result of a call: >= 0 is success; < 0 must be an error code,
 * never a lost wake-up. Returns 1 on success. */
/* When the current step of the pass began (CLOCK_MONOTONIC). */
static _Atomic int64_t step_start_ns;

/*
 * -ETIMEDOUT is a lost wake-up only when a wait could have lasted its
 * full WAIT_MS: recv() and connect() may also report it themselves (a
 * peer that stopped answering, or a fault in their POSIX wrappers).
 */
static int lost_wakeup(long r)
{
	return r == -ETIMEDOUT && br_now_ns() - atomic_load(&step_start_ns) >=
					  (int64_t)WAIT_MS * 1000000;
}

static int ok_ret(const char *what, long r, int line)
{
	if (r >= 0) {
		atomic_fetch_add(&calls_ok, 1);
		return 1;
	}
	atomic_fetch_add(&calls_err, 1);
	if (verbose)
		fprintf(stderr, "faults: %s: %s (%ld)\n", what,
			br_strerror((int)r), r);
	if (lost_wakeup(r)) /* every wait in here has a partner */
		bad("timed out (a lost wake-up?)", line, r);
	return 0;
}
#define OK(what, r) ok_ret(what, (long)(r), __LINE__)

/*
 * Await f (borrowed) and check that its state agrees with what br_await
 * returned. expect is the error f ought to end with (0: it ought to end
 * DONE): any other error may come from a fault, but -ETIMEDOUT, unless
 * expected, is a wait that ran out, a lost wake-up. With --strict (the
 * run without faults), f must end exactly as expected. Returns 1 if it
 * ended DONE, with its value in *value.
 */
static int await_ok(const char *what, br_future *f, void **value, int expect,
		    int line)
{
	void *v = NULL;
	int r = br_await(f, &v);
	br_state st = br_future_state(f);
	int err = br_future_error(f);

	if (value)
		*value = v;
	if (strict && r != expect)
		bad(what, line, r);
	if (r == 0) {
		if (st != BR_DONE || err != 0)
			bad("await returned 0 but the state is", line, st);
		atomic_fetch_add(&calls_ok, 1);
		return 1;
	}
	if (r > 0 || (st != BR_FAILED && st != BR_CANCELLED) || err != r)
		bad("await's result and the state disagree", line, r);
	else if (st == BR_CANCELLED && r != -ECANCELED)
		bad("cancelled with", line, r);
	if (expect != -ETIMEDOUT && lost_wakeup(r))
		bad("timed out (a lost wake-up?)", line, r);
	if (!br_future_message(f))
		bad("no message for error", line, r);
	if (r == expect) {
		atomic_fetch_add(&calls_ok, 1);
		return 0;
	}
	atomic_fetch_add(&calls_err, 1);
	if (verbose)
		fprintf(stderr, "faults: %s: %s (%d): %s\n", what,
			br_strerror(r), r, br_future_message(f));
	return 0;
}
#define AWAIT(what, f, v) await_ok(what, f, v, 0, __LINE__)
/* f ought to fail with error err. */
#define AWAIT_ERR(what, f, err) await_ok(what, f, NULL, err, __LINE__)

static void nap_ms(long ms);

/* The index of a future of fs[0..n) that has completed: br_wait_any(),
 * or if that fails (no memory for its waiters), a poll. */
static int first_done(br_future *const *fs, size_t n)
{
	int r = br_wait_any(fs, n, -1);

	if (OK("wait_any", r))
		return r;
	for (;;) {
		for (size_t i = 0; i < n; i++)
			if (br_future_state(fs[i]) != BR_PENDING)
				return (int)i;
		nap_ms(1);
	}
}

/* ---- what is left behind ---- */

static struct census_fdset fds_at_start;

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- core: tasks, timers, callbacks, promises ---- */

static void *square(void *arg)
{
	intptr_t x = (intptr_t)arg;

	if (br_yield() < 0 && !br_cancelled())
		return (void *)(intptr_t)-1;
	return (void *)(x * x);
}

static void *sleeper(void *arg)
{
	int r = br_sleep_ms((intptr_t)arg);

	return r < 0 ? br_fail(r, "sleeper: woken early") : NULL;
}

static void on_later(void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
}

static void *resolver(void *arg)
{
	br_future *p = arg;

	int r;

	nap_ms(1);
	r = br_promise_resolve(p, (void *)(intptr_t)42);
	if (r < 0)
		BAD("promise_resolve", r);
	return NULL;
}

static void core_tasks(br_runtime *rt)
{
	br_future *fs[NTASKS], *slow, *cb, *p;
	void *vals[NTASKS], *v;
	br_as_completed *it;
	atomic_int fired = 0;
	unsigned nw = br_runtime_workers(rt);
	pthread_t th;
	size_t i;
	int r, seen;

	for (i = 0; i < NTASKS; i++)
		fs[i] = i % 3 == 0 ? br_spawn_on(rt, (unsigned)i % nw, square,
						 (void *)(intptr_t)i) :
				     br_spawn(rt, square, (void *)(intptr_t)i);
	r = br_gather(fs, NTASKS, vals);
	if (OK("gather", r)) {
		for (i = 0; i < NTASKS; i++)
			if ((intptr_t)vals[i] != (intptr_t)(i * i))
				BAD("gather value", vals[i]);
	} else {
		for (i = 0; i < NTASKS; i++)
			AWAIT("gathered task", fs[i], NULL);
	}
	for (i = 0; i < NTASKS; i++)
		br_future_release(fs[i]);

	/* as_completed over sleepers of different lengths. */
	for (i = 0; i < 4; i++)
		fs[i] = br_spawn(rt, sleeper, (void *)(intptr_t)(4 - i));
	it = br_as_completed_new(fs, 4);
	if (it) {
		seen = 0;
		while (br_as_completed_next(it))
			seen++;
		if (seen != 4)
			BAD("as_completed count", seen);
		br_as_completed_free(it);
	} else {
		atomic_fetch_add(&calls_err, 1);
	}
	for (i = 0; i < 4; i++) {
		AWAIT("as_completed sleeper", fs[i], NULL);
		br_future_release(fs[i]);
	}

	/* A cancelled sleeper, and a wait_for that gives up. */
	slow = br_spawn(rt, sleeper, (void *)(intptr_t)60000);
	r = br_wait_for(slow, 5, NULL);
	if (r != -ETIMEDOUT && br_future_state(slow) == BR_PENDING)
		BAD("wait_for on a pending task", r);
	br_cancel(slow);
	AWAIT_ERR("cancelled sleeper", slow, -ECANCELED);
	if (br_future_state(slow) == BR_DONE)
		BAD("cancelled sleeper ended DONE", 0);
	br_future_release(slow);

	/* A loop callback later, and one that is cancelled. */
	cb = br_call_later(rt, 2, on_later, &fired);
	if (AWAIT("call_later", cb, NULL) && atomic_load(&fired) != 1)
		BAD("call_later ran", atomic_load(&fired));
	br_future_release(cb);
	cb = br_call_later(rt, 60000, on_later, &fired);
	br_cancel(cb);
	AWAIT_ERR("cancelled call_later", cb, -ECANCELED);
	br_future_release(cb);

	/* A promise resolved from another thread. */
	p = br_promise_new();
	if (br_future_state(p) == BR_PENDING) {
		if (pthread_create(&th, NULL, resolver, p) == 0) {
			if (AWAIT("promise", p, &v) && (intptr_t)v != 42)
				BAD("promise value", v);
			pthread_join(th, NULL);
		} else {
			br_promise_reject(p, -EAGAIN, "no thread");
			AWAIT_ERR("rejected promise", p, -EAGAIN);
		}
	} else {
		AWAIT("promise_new", p, NULL);
	}
	br_future_release(p);
}

/* ---- sync: mutex, semaphore, channels ---- */

struct sync_ctx {
	br_mutex mu;
	br_sem sem;
	br_chan *ch, *done;
	long counter;	   /* under mu */
	atomic_long locks; /* critical sections entered, counted apart */
	atomic_int held;   /* semaphore units held at once */
	atomic_int peak;
};

/* A worker whose lock fails midway has still made its increments, so the
 * check is against the atomic count: a lost update (two holders at once)
 * leaves counter below it. */
static void *mutex_worker(void *arg)
{
	struct sync_ctx *c = arg;
	int i, r;

	for (i = 0; i < MUTEX_ROUNDS; i++) {
		r = br_mutex_lock_for(&c->mu, WAIT_MS);
		if (r < 0)
			return br_fail(r, "mutex_lock_for");
		c->counter++;
		atomic_fetch_add(&c->locks, 1);
		if (i % 10 == 0)
			br_yield();
		br_mutex_unlock(&c->mu);
	}
	return NULL;
}

static void *sem_worker(void *arg)
{
	struct sync_ctx *c = arg;
	int r, now, peak;

	r = br_sem_wait_for(&c->sem, WAIT_MS);
	if (r < 0)
		return br_fail(r, "sem_wait_for");
	now = atomic_fetch_add(&c->held, 1) + 1;
	peak = atomic_load(&c->peak);
	while (now > peak &&
	       !atomic_compare_exchange_weak(&c->peak, &peak, now))
		;
	br_sleep_ms(1);
	atomic_fetch_sub(&c->held, 1);
	br_sem_post(&c->sem);
	return NULL;
}

static void *producer(void *arg)
{
	struct sync_ctx *c = arg;
	int i, r;

	for (i = 1; i <= CHAN_ITEMS; i++) {
		r = br_chan_send_for(c->ch, &i, WAIT_MS);
		if (r < 0) {
			br_chan_close(c->ch);
			return br_fail(r, "chan_send_for");
		}
	}
	br_chan_close(c->ch);
	return NULL;
}

/* Receives with a select over the data channel and a "done" channel
 * that nobody sends on; sums what it got until the data channel closes. */
static void *consumer(void *arg)
{
	struct sync_ctx *c = arg;
	long sum = 0;
	int x = 0, y;

	for (;;) {
		br_chan_case cs[2] = {
			{ .chan = c->ch, .op = BR_CHAN_RECV, .elem = &x },
			{ .chan = c->done, .op = BR_CHAN_RECV, .elem = &y },
		};
		int r = br_chan_select_for(cs, 2, WAIT_MS);

		if (r < 0)
			return br_fail(r, "chan_select_for");
		if (r != 0)
			return br_fail(-EPROTO, "select fired the silent case");
		if (cs[0].result == BR_ECLOSED)
			break;
		sum += x;
	}
	return (void *)sum;
}

static void sync_tasks(br_runtime *rt)
{
	struct sync_ctx c = { .mu = BR_MUTEX_INIT, .sem = BR_SEM_INIT(2) };
	br_future *fs[8], *prod, *cons;
	void *v;
	int i, all_ok = 1, r;

	for (i = 0; i < 4; i++)
		fs[i] = br_spawn(rt, mutex_worker, &c);
	for (i = 0; i < 4; i++) {
		AWAIT("mutex worker", fs[i], NULL);
		br_future_release(fs[i]);
	}
	if (c.counter != atomic_load(&c.locks))
		BAD("mutex counter", c.counter);
	for (i = 0; i < 8; i++)
		fs[i] = br_spawn(rt, sem_worker, &c);
	for (i = 0; i < 8; i++) {
		AWAIT("semaphore worker", fs[i], NULL);
		br_future_release(fs[i]);
	}
	if (atomic_load(&c.peak) > 2)
		BAD("semaphore admitted", atomic_load(&c.peak));
	if (br_sem_value(&c.sem) != 2)
		BAD("semaphore units back", br_sem_value(&c.sem));

	r = br_chan_new(&c.ch, sizeof(int), 8);
	if (!OK("chan_new", r))
		return;
	r = br_chan_new(&c.done, sizeof(int), 0);
	if (!OK("chan_new", r)) {
		br_chan_free(c.ch);
		return;
	}
	fs[0] = prod = br_spawn(rt, producer, &c);
	fs[1] = cons = br_spawn(rt, consumer, &c);
	/* Whichever ends first closes the channel (again), so the other
	 * cannot wait on it for good: a consumer that never ran leaves the
	 * producer on a full channel, a producer that never ran leaves the
	 * consumer on an empty one. */
	first_done(fs, 2);
	br_chan_close(c.ch);
	all_ok &= AWAIT("consumer", cons, &v);
	all_ok &= AWAIT("producer", prod, NULL);
	if (all_ok && (long)(intptr_t)v != CHAN_ITEMS * (CHAN_ITEMS + 1) / 2)
		BAD("channel sum", v);
	br_future_release(prod);
	br_future_release(cons);
	br_chan_free(c.ch);
	br_chan_free(c.done);
}

/* ---- I/O: a pipe and a TCP loopback connection ---- */

/* A task closes its own end when it ends; one that never ran (its spawn
 * or its stack failed) leaves that to the scenario, so that the other
 * end sees EOF or EPIPE instead of waiting. */
struct pipe_ctx {
	int fd;
	atomic_int closed;
	unsigned char *buf;
};

static void pipe_end(struct pipe_ctx *c)
{
	br_close(c->fd);
	atomic_store(&c->closed, 1);
}

static void pipe_end_after(struct pipe_ctx *c)
{
	if (!atomic_load(&c->closed))
		close(c->fd);
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)((i * 131 + seed) >> 3);
}

static void *pipe_writer(void *arg)
{
	struct pipe_ctx *c = arg;
	ssize_t r;

	br_io_timeout(WAIT_MS);
	r = br_write_all(c->fd, c->buf, PIPE_BYTES);
	pipe_end(c);
	return r < 0 ? br_fail((int)r, "pipe write") : NULL;
}

/* Reads until end of file; returns the count read. */
static void *pipe_reader(void *arg)
{
	struct pipe_ctx *c = arg;
	size_t got = 0;
	ssize_t r;

	br_io_timeout(WAIT_MS);
	while (got < PIPE_BYTES) {
		r = br_read(c->fd, c->buf + got, PIPE_BYTES - got);
		if (r < 0) {
			pipe_end(c);
			return br_fail((int)r, "pipe read");
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	pipe_end(c);
	return (void *)got;
}

static void pipe_io(br_runtime *rt)
{
	unsigned char *out = malloc(PIPE_BYTES), *in = calloc(1, PIPE_BYTES);
	struct pipe_ctx w = { 0 }, r = { 0 };
	br_future *fw, *fr, *both[2];
	int p[2];
	void *v;
	int wok, rok;

	if (!out || !in || pipe2(p, O_CLOEXEC) < 0) {
		atomic_fetch_add(&calls_err, 1);
		free(out);
		free(in);
		return;
	}
	fill(out, PIPE_BYTES, 7);
	r.fd = p[0];
	r.buf = in;
	w.fd = p[1];
	w.buf = out;
	both[0] = fr = br_spawn(rt, pipe_reader, &r);
	both[1] = fw = br_spawn(rt, pipe_writer, &w);
	/* Whichever ends first lets go of its end. */
	if (first_done(both, 2) == 0) {
		pipe_end_after(&r);
		wok = AWAIT("pipe writer", fw, NULL);
		pipe_end_after(&w);
		rok = AWAIT("pipe reader", fr, &v);
	} else {
		pipe_end_after(&w);
		rok = AWAIT("pipe reader", fr, &v);
		pipe_end_after(&r);
		wok = AWAIT("pipe writer", fw, NULL);
	}
	if (wok && rok &&
	    ((size_t)v != PIPE_BYTES || memcmp(in, out, PIPE_BYTES) != 0))
		BAD("pipe bytes", v);
	br_future_release(fw);
	br_future_release(fr);
	free(out);
	free(in);
}

struct tcp_ctx {
	int lfd;
	uint16_t port;
};

/* Accepts one connection and echoes it until end of file. */
static void *tcp_server(void *arg)
{
	struct tcp_ctx *c = arg;
	char buf[4096];
	ssize_t n, w;
	int fd;

	br_io_timeout(WAIT_MS);
	fd = br_accept(c->lfd, NULL, NULL, 0);
	if (fd < 0)
		return br_fail(fd, "accept");
	for (;;) {
		n = br_recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		w = br_send_all(fd, buf, (size_t)n, MSG_NOSIGNAL);
		if (w < 0) {
			n = w;
			break;
		}
	}
	br_close(fd);
	return n < 0 ? br_fail((int)n, "echo") : NULL;
}

static void *tcp_client(void *arg)
{
	struct tcp_ctx *c = arg;
	unsigned char *out = malloc(TCP_BYTES), *in = malloc(TCP_BYTES);
	size_t got = 0;
	ssize_t n;
	int fd, err = 0;

	if (!out || !in) {
		free(out);
		free(in);
		return br_fail(-ENOMEM, "tcp client buffers");
	}
	br_io_timeout(WAIT_MS);
	fill(out, TCP_BYTES, 3);
	fd = br_tcp_connect("127.0.0.1", c->port);
	if (fd < 0) {
		err = fd;
		goto out;
	}
	/* Sent in pieces, each echoed before the next: the socket buffers
	 * never fill on both sides at once. */
	for (size_t off = 0; off < TCP_BYTES && !err; off += 4096) {
		n = br_send_all(fd, out + off, 4096, MSG_NOSIGNAL);
		if (n < 0) {
			err = (int)n;
			break;
		}
		while (got < off + 4096) {
			n = br_recv(fd, in + got, off + 4096 - got, 0);
			if (n <= 0) {
				err = n < 0 ? (int)n : -ECONNRESET;
				break;
			}
			got += (size_t)n;
		}
	}
	br_close(fd);
	if (!err && memcmp(in, out, TCP_BYTES) != 0)
		err = -EPROTO; /* checked below: not an error return */
out:
	free(out);
	free(in);
	if (err == -EPROTO)
		return (void *)(intptr_t)1;
	return err ? br_fail(err, "tcp client") : NULL;
}

static void tcp_io(br_runtime *rt)
{
	struct tcp_ctx c;
	br_future *fs, *fc, *both[2];
	void *v;
	int port, fd;

	c.lfd = br_tcp_listen("127.0.0.1", 0, 16);
	if (!OK("tcp_listen", c.lfd))
		return;
	port = br_local_port(c.lfd);
	if (!OK("local_port", port)) {
		close(c.lfd);
		return;
	}
	c.port = (uint16_t)port;
	both[0] = fs = br_spawn(rt, tcp_server, &c);
	both[1] = fc = br_spawn(rt, tcp_client, &c);
	/* The listener is the scenario's. If the server ends first, closing
	 * it refuses or resets the client; if the client ends first, the
	 * server may still wait in accept for a connection that never came:
	 * one that closes at once wakes it, or, when that connect fails
	 * too, a cancel. */
	if (first_done(both, 2) == 0) {
		close(c.lfd);
		AWAIT("tcp server", fs, NULL);
		if (AWAIT("tcp client", fc, &v) && v)
			BAD("tcp echo bytes", v);
	} else {
		fd = br_tcp_connect("127.0.0.1", c.port);
		if (fd >= 0)
			close(fd);
		else
			br_cancel(fs);
		if (AWAIT("tcp client", fc, &v) && v)
			BAD("tcp echo bytes", v);
		AWAIT("tcp server", fs, NULL);
		close(c.lfd);
	}
	br_future_release(fs);
	br_future_release(fc);
}

/* ---- the blocking pool ---- */

static void *blocking_call(void *arg)
{
	nap_ms(1);
	return arg;
}

static void blocking_calls(br_runtime *rt)
{
	br_future *fs[8];
	void *v;
	int i;

	for (i = 0; i < 8; i++)
		fs[i] = br_spawn_blocking(rt, blocking_call,
					  (void *)(intptr_t)(i + 1));
	for (i = 0; i < 8; i++) {
		if (AWAIT("blocking call", fs[i], &v) && (intptr_t)v != i + 1)
			BAD("blocking value", v);
		br_future_release(fs[i]);
	}
}

/* ---- the process pool ---- */

static int job_echo(br_job *job, const void *in, size_t len)
{
	return br_job_write(job, in, len);
}

static int job_crash(br_job *job, const void *in, size_t len)
{
	raise(SIGKILL);
	return 0;
}

static int job_sleep(br_job *job, const void *in, size_t len)
{
	nap_ms(10000);
	return 0;
}

static int job_square(br_job *job, const void *in, size_t len)
{
	int64_t x;

	if (len != sizeof(x))
		return br_job_fail(job, -EINVAL, "bad item");
	memcpy(&x, in, sizeof(x));
	x *= x;
	return br_job_write(job, &x, sizeof(x));
}

static void process_pool(br_runtime *rt)
{
	br_pool_config cfg = { .workers = 2 };
	br_future *fs[6], *m;
	int64_t items[MAP_ITEMS];
	br_pool *pool;
	size_t len;
	int i, r;

	r = br_pool_new(&pool, rt, &cfg);
	if (!OK("pool_new", r))
		return;
	for (i = 0; i < 4; i++)
		fs[i] = br_submit(pool, job_echo, &i, sizeof(i));
	fs[4] = br_submit(pool, job_crash, NULL, 0);
	fs[5] = br_submit_timeout(pool, job_sleep, NULL, 0, 50);
	for (i = 0; i < 4; i++) {
		if (AWAIT("echo job", fs[i], NULL)) {
			const void *b = br_future_bytes(fs[i], &len);

			if (len != sizeof(i) || memcmp(b, &i, sizeof(i)))
				BAD("echo job bytes", len);
		}
	}
	if (AWAIT_ERR("crashing job", fs[4], BR_EWORKERDIED))
		BAD("crashing job ended DONE", 0);
	if (AWAIT_ERR("job past its limit", fs[5], -ETIMEDOUT))
		BAD("job past its limit ended DONE", 0);
	for (i = 0; i < 6; i++)
		br_future_release(fs[i]);

	for (i = 0; i < MAP_ITEMS; i++)
		items[i] = i;
	m = br_map(pool, job_square, items, sizeof(items[0]), MAP_ITEMS, 0);
	if (AWAIT("map", m, NULL)) {
		for (i = 0; i < MAP_ITEMS; i++) {
			const int64_t *o = br_map_result(m, (size_t)i, &len);

			if (!o || len != sizeof(*o) || *o != (int64_t)i * i) {
				BAD("map item", i);
				break;
			}
		}
	}
	br_future_release(m);
	br_pool_free(pool);
}

/* ---- subprocesses ---- */

static void subprocess(br_runtime *rt)
{
	const char *const argv[] = { "echo", "faults", NULL };
	br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
	const char *b;
	br_future *f;
	size_t len;

	f = br_exec(rt, argv, &o);
	if (AWAIT("exec", f, NULL)) {
		b = br_future_bytes(f, &len);
		if (br_exec_exit_code(f) != 0 || len != 7 ||
		    memcmp(b, "faults\n", 7) != 0)
			BAD("exec output", len);
	}
	br_future_release(f);
}

/* ---- the whole pass, from a task ---- */

static br_runtime *the_rt;

static void *io_pass(void *arg)
{
	pipe_io(the_rt);
	tcp_io(the_rt);
	return NULL;
}

/* Run one step of the pass, noting when it began. */
#define STEP(call) (atomic_store(&step_start_ns, br_now_ns()), (void)(call))

static void pass(unsigned flags)
{
	br_config cfg = { .workers = 2, .flags = flags | BR_CONFIG_QUIET };
	br_runtime *rt;
	br_future *f;
	int r;

	r = br_runtime_new(&rt, &cfg);
	if (!OK("runtime_new", r))
		return;
	the_rt = rt;
	STEP(core_tasks(rt));
	STEP(sync_tasks(rt));
	/* I/O from tasks, then the same calls from a task spawned by a
	 * task (its children run inline). */
	STEP(pipe_io(rt));
	STEP(tcp_io(rt));
	STEP(f = br_spawn(rt, io_pass, NULL));
	AWAIT("I/O from a task", f, NULL);
	br_future_release(f);
	STEP(blocking_calls(rt));
	STEP(process_pool(rt));
	STEP(subprocess(rt));
	br_runtime_free(rt);
}

int main(int argc, char **argv)
{
	int fds, threads, children, n, tries, passes = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0)
			verbose = 1;
		else if (strcmp(argv[i], "--strict") == 0)
			strict = 1;
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			passes = atoi(argv[++i]);
	}
	signal(SIGPIPE, SIG_IGN); /* a write to a closed pipe is EPIPE */
	fds = census_fds();
	threads = census_threads();
	children = census_children(0, NULL);
	if (children < 0)
		BAD("cannot count this process's children", children);
	census_fds_note(&fds_at_start);
	for (int i = 0; i < passes; i++) {
		pass(0);
		pass(BR_CONFIG_NO_URING);
	}

	/* Exited threads leave procfs a moment after their join, and a
	 * loaded machine makes that moment long. */
	for (tries = 0; (n = census_threads()) != threads && tries < 5000;
	     tries++)
		nap_ms(1);
	if (n != threads)
		BAD("threads left", n - threads);
	if ((n = census_fds()) != fds) {
		BAD("descriptors left", n - fds);
		census_fds_say(&fds_at_start, stderr, "faults: ");
	}
	if ((n = census_children(0, NULL)) != children) {
		BAD("children left", n - children);
		census_children(0, stderr);
	}
	fprintf(stderr,
		"faults: %d calls succeeded, %d failed with an error, "
		"%d checks failed\n",
		atomic_load(&calls_ok), atomic_load(&calls_err),
		atomic_load(&checks_failed));
	return atomic_load(&checks_failed) ? 1 : 0;
}
