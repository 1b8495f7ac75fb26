/* SPDX-License-Identifier: MIT */
/*
 * stress_io.c - cancellation racing completion, a million times: every
 * read either returns its byte or -ECANCELED with the byte still in the
 * pipe; no result is lost, none is delivered twice, and no buffer is
 * written after its call returned.
 *
 * Drivers on both workers each own a pipe. Per round a driver writes a
 * byte before or after spawning a reader, cancels the reader at a random
 * point (before it starts, with its read prepared, or with its read in
 * the kernel; before or after the byte arrives), and awaits it; then it
 * checks the pipe holds exactly the bytes nobody read.
 *
 * Writers: a million writes of random sizes from tasks that yield (and
 * so move between workers), drain now and then, and meet backpressure
 * from slow peers; every peer gets its stream whole and in order.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(io_stress, .init = t_leak_init, .fini = t_leak_fini);

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ROUNDS_TOTAL 100000 /* sanitizers run ten times slower */
#else
#define ROUNDS_TOTAL 1000000
#endif
#define DRIVERS 8

struct reader_arg {
	int fd;
	char *buf; /* owned by the driver: checked after the call */
	ssize_t ret;
	atomic_int *completions;
};

static void *reader(void *arg)
{
	struct reader_arg *r = arg;

	r->ret = br_read(r->fd, r->buf, 1);
	atomic_fetch_add(r->completions, 1);
	return NULL;
}

struct driver {
	br_runtime *rt;
	long rounds;
	uint64_t seed;
	long won, cancelled, in_flight; /* in_flight: -ECANCELED */
};

/* Bytes left in fd, consumed without blocking. */
static int drain(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c[16];
	int n = 0;

	while (poll(&p, 1, 0) == 1) {
		ssize_t k = read(fd, c, sizeof(c));

		if (k <= 0)
			break;
		n += (int)k;
	}
	return n;
}

static void *drive(void *arg)
{
	struct driver *d = arg;
	atomic_int completions = 0;
	char *buf = malloc(1);
	int p[2];
	long i;

	T_REQUIRE(buf && pipe2(p, O_CLOEXEC) == 0);
	for (i = 0; i < d->rounds; i++) {
		struct reader_arg r = { .fd = p[0],
					.buf = buf,
					.completions = &completions };
		uint64_t x = t_rand(&d->seed);
		int before = x & 1, when = (int)((x >> 1) % 5), left;
		br_future *f;
		br_state st;

		*buf = 0;
		if (before)
			T_REQUIRE(write(p[1], "b", 1) == 1);
		f = br_spawn(d->rt, reader, &r);
		/* 0: cancel before it starts; 1, 2: once it has prepared its
		 * read; 3, 4: once the read is in the kernel (our own poll
		 * passes the loop's submit point). Odd: cancel first, then
		 * the byte; even: the byte first. */
		if (when >= 1)
			br_yield();
		if (when >= 3)
			T_REQUIRE(br_poll(p[1], POLLOUT) & POLLOUT);
		if (when % 2 == 0 && when && !before)
			T_REQUIRE(write(p[1], "a", 1) == 1);
		br_cancel(f);
		if ((when % 2 == 1 || !when) && !before)
			T_REQUIRE(write(p[1], "a", 1) == 1);
		br_await(f, NULL);
		st = br_future_state(f);
		br_future_release(f);
		/* Exactly one byte was written this round. */
		left = drain(p[0]);
		if (r.ret == 1) {
			T_REQUIRE(left == 0);
			T_REQUIRE(*buf == 'a' || *buf == 'b');
			d->won++;
		} else {
			/* Cancelled before it started (ret untouched, 0)
			 * or in flight (-ECANCELED): the byte is still in
			 * the pipe and the buffer was never written. */
			T_REQUIRE(r.ret == -ECANCELED || r.ret == 0);
			T_REQUIRE(st == BR_CANCELLED);
			T_REQUIRE(left == 1);
			T_REQUIRE(*buf == 0);
			d->cancelled++;
			d->in_flight += r.ret == -ECANCELED;
		}
	}
	/* Every reader that started completed exactly once. */
	T_REQUIRE(atomic_load(&completions) <= d->rounds);
	T_REQUIRE(atomic_load(&completions) >= d->won);
	close(p[0]);
	close(p[1]);
	free(buf);
	return NULL;
}

static void run(unsigned flags, long total)
{
	br_runtime *rt = t_runtime(2, flags);
	struct driver d[DRIVERS];
	br_future *f[DRIVERS];
	long won = 0, cancelled = 0, in_flight = 0;
	int i;

	for (i = 0; i < DRIVERS; i++) {
		d[i] = (struct driver){ .rt = rt,
					.rounds = total / DRIVERS,
					.seed = 0x9e3779b97f4a7c15ull *
						(i + 1) };
		f[i] = br_spawn(rt, drive, &d[i]);
	}
	for (i = 0; i < DRIVERS; i++) {
		const char *msg = t_await_value(f[i]);

		cr_assert_null(msg, "%s", msg);
		br_future_release(f[i]);
		won += d[i].won;
		cancelled += d[i].cancelled;
		in_flight += d[i].in_flight;
	}
	cr_log_info("%ld rounds: %ld reads won, %ld cancelled (%ld in flight)",
		    won + cancelled, won, cancelled, in_flight);
	cr_assert_eq(won + cancelled, (total / DRIVERS) * DRIVERS);
	/* Both outcomes must have happened for the race to be a race. */
	cr_assert_gt(won, 0);
	cr_assert_gt(cancelled, 0);
	cr_assert_gt(in_flight, 0, "no read was cancelled in flight");
	br_runtime_free(rt);
}

Test(io_stress, cancel_races_completion_on_the_ring, .timeout = 300.0)
{
	if (!t_uring_available())
		cr_skip_test("io_uring is not available");
	run(0, ROUNDS_TOTAL * (long)t_stress_scale());
}

Test(io_stress, cancel_races_readiness_without_a_ring, .timeout = 300.0)
{
	run(BR_CONFIG_NO_URING, ROUNDS_TOTAL / 10 * (long)t_stress_scale());
}

/* ---- writers ---- */

#define WRITERS 8
#define BIG_WRITE (20 * 1024)

static unsigned char stream_byte(int id, long i)
{
	return (unsigned char)(i * 31 + id * 7 + (i >> 11));
}

struct wstream {
	int fd[2]; /* the task writes fd[0]; the peer thread reads fd[1] */
	int id;
	long writes;
	long sent, got; /* bytes written by the task, read by the peer */
	uint64_t seed;
};

static void *stream_writer(void *arg)
{
	struct wstream *s = arg;
	unsigned char *chunk = malloc(BIG_WRITE);
	br_writer *w;
	long i, at = 0;

	T_REQUIRE(chunk);
	T_REQUIRE(br_writer_new(&w, s->fd[0]) == 0);
	for (i = 0; i < s->writes; i++) {
		uint64_t x = t_rand(&s->seed);
		size_t n = x % 97 == 0 ? BIG_WRITE : 1 + (size_t)(x % 256), k;

		for (k = 0; k < n; k++)
			chunk[k] = stream_byte(s->id, at + (long)k);
		T_REQUIRE(br_writer_write(w, chunk, n) == (ssize_t)n);
		at += (long)n;
		if ((x >> 20) % 4 == 0)
			br_yield();
		if ((x >> 24) % 64 == 0)
			T_REQUIRE(br_writer_drain(w) == 0);
	}
	T_REQUIRE(br_writer_drain(w) == 0);
	br_writer_free(w);
	T_REQUIRE(shutdown(s->fd[0], SHUT_WR) == 0);
	s->sent = at;
	free(chunk);
	return NULL;
}

static void *stream_peer(void *arg)
{
	struct wstream *s = arg;
	unsigned char *buf = malloc(65536);
	uint64_t rng = 0x5555u + (uint64_t)s->id; /* s->seed is the task's */
	long at = 0;
	ssize_t n;

	T_REQUIRE(buf);
	while ((n = read(s->fd[1], buf, 65536)) > 0) {
		for (ssize_t i = 0; i < n; i++, at++)
			T_REQUIRE(buf[i] == stream_byte(s->id, at));
		if (t_rand(&rng) % 16 == 0)
			usleep(200); /* a slow peer: the writer's queue fills */
	}
	T_REQUIRE(n == 0);
	s->got = at;
	free(buf);
	return NULL;
}

static void run_writers(unsigned flags, long total)
{
	br_runtime *rt = t_runtime(2, flags);
	struct wstream s[WRITERS];
	pthread_t peer[WRITERS];
	br_future *f[WRITERS];
	int i;

	for (i = 0; i < WRITERS; i++) {
		s[i] = (struct wstream){ .id = i,
					 .writes = total / WRITERS,
					 .seed = 0x2545f4914f6cdd1dull *
						 (i + 1) };
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					s[i].fd),
			     0);
		t_thread_start(&peer[i], stream_peer, &s[i]);
		f[i] = br_spawn(rt, stream_writer, &s[i]);
	}
	for (i = 0; i < WRITERS; i++) {
		const char *msg = t_await_value(f[i]);

		cr_assert_null(msg, "%s", msg);
		br_future_release(f[i]);
		msg = t_thread_join(peer[i]);
		cr_assert_null(msg, "%s", msg);
		cr_assert_eq(s[i].got, s[i].sent, "stream %d: %ld of %ld bytes",
			     i, s[i].got, s[i].sent);
		cr_assert_gt(s[i].got, 0);
		close(s[i].fd[0]);
		close(s[i].fd[1]);
	}
	br_runtime_free(rt);
}

Test(io_stress, writers_keep_every_stream_whole_and_in_order, .timeout = 300.0)
{
	if (!t_uring_available())
		cr_skip_test("io_uring is not available");
	run_writers(0, ROUNDS_TOTAL * (long)t_stress_scale());
}

Test(io_stress, writers_without_a_ring_keep_every_stream_whole,
     .timeout = 300.0)
{
	run_writers(BR_CONFIG_NO_URING,
		    ROUNDS_TOTAL / 10 * (long)t_stress_scale());
}
