/* SPDX-License-Identifier: MIT */
/*
 * test_io.c - file and pipe I/O through the loops: results as the kernel
 * gives them, deadlines, cancellation, and the same calls from plain
 * threads. Each test runs with io_uring (when the kernel has it) and with
 * the readiness fallback.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(io, .init = t_leak_init, .fini = t_leak_fini);

/* Await a task whose function returns NULL or a T_REQUIRE message. */
static void await_ok(br_future *f)
{
	const char *msg = t_await_value(f);

	cr_assert_null(msg, "%s", msg);
}

static void make_pipe(int p[2])
{
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
}

static char *temp_path(void)
{
	char *p = strdup("/tmp/braid-io-XXXXXX");
	int fd = mkstemp(p);

	cr_assert_geq(fd, 0);
	close(fd);
	return p;
}

struct rw {
	int fd;
	char buf[64];
	size_t len;
	ssize_t ret;
	int64_t timeout_ms;
	int64_t took_ns;
};

/* Readers that have started: on a loaded machine, a fixed pause is no
 * proof that a task has reached its read. */
static atomic_int readers_started;

static void *reader(void *arg)
{
	struct rw *r = arg;
	int64_t t0 = br_now_ns();

	atomic_fetch_add(&readers_started, 1);
	r->ret = r->timeout_ms ?
			 br_read_timeout(r->fd, r->buf, r->len, r->timeout_ms) :
			 br_read(r->fd, r->buf, r->len);
	r->took_ns = br_now_ns() - t0;
	return NULL;
}

static void *writer(void *arg)
{
	struct rw *r = arg;

	r->ret = br_write(r->fd, r->buf, r->len);
	return NULL;
}

Test(io, pipe_bytes_go_from_one_task_to_another, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		int p[2];
		struct rw rd = { .len = sizeof(rd.buf) }, wr = { .len = 5 };
		br_future *fr, *fw;

		make_pipe(p);
		rd.fd = p[0];
		wr.fd = p[1];
		memcpy(wr.buf, "hello", 5);
		fr = br_spawn(rt, reader, &rd);
		br_sleep_ms(20); /* the reader waits first */
		fw = br_spawn(rt, writer, &wr);
		await_ok(fw);
		await_ok(fr);
		cr_assert_eq(wr.ret, 5);
		cr_assert_eq(rd.ret, 5, "read returned %zd (flags %u)", rd.ret,
			     flags);
		cr_assert_eq(memcmp(rd.buf, "hello", 5), 0);
		br_future_release(fr);
		br_future_release(fw);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

struct file_job {
	const char *path;
	size_t size;
	ssize_t got_short, got_eof, wrote;
	int cmp, fd;
};

static void *file_round_trip(void *arg)
{
	struct file_job *j = arg;
	char *out = malloc(j->size), *in = malloc(j->size + 4096);
	size_t i;
	int fd;

	T_REQUIRE(out && in);
	for (i = 0; i < j->size; i++)
		out[i] = (char)(i * 131 + 7);
	fd = br_openat(AT_FDCWD, j->path, O_RDWR | O_TRUNC, 0);
	T_REQUIRE(fd >= 0);
	j->wrote = br_write_all(fd, out, j->size);
	T_REQUIRE(br_fsync(fd, 0) == 0);
	/* Ask for more than there is: a short read, then EOF. */
	j->got_short = br_pread(fd, in, j->size + 4096, 0);
	j->got_eof = br_pread(fd, in, 4096, (off_t)j->size);
	j->cmp = memcmp(in, out, j->size);
	j->fd = fcntl(fd, F_GETFD);
	T_REQUIRE(br_close(fd) == 0);
	free(out);
	free(in);
	return NULL;
}

Test(io, regular_files_give_short_reads_at_eof_and_whole_large_writes,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct file_job j = { .size = 8u << 20 };
		char *path = temp_path();
		br_future *f;

		j.path = path;
		f = br_spawn(rt, file_round_trip, &j);
		await_ok(f);
		cr_assert_eq(j.wrote, (ssize_t)j.size);
		cr_assert_eq(j.got_short, (ssize_t)j.size);
		cr_assert_eq(j.got_eof, 0);
		cr_assert_eq(j.cmp, 0);
		cr_assert(j.fd & FD_CLOEXEC, "br_openat adds O_CLOEXEC");
		br_future_release(f);
		unlink(path);
		free(path);
		br_runtime_free(rt);
	}
}

static void *vector_round_trip(void *arg)
{
	int *p = arg;
	char a[3] = "abc", b[4] = "defg", x[2], y[5];
	struct iovec out[2] = { { a, 3 }, { b, 4 } };
	struct iovec in[2] = { { x, 2 }, { y, 5 } };

	T_REQUIRE(br_writev(p[1], out, 2) == 7);
	T_REQUIRE(br_readv(p[0], in, 2) == 7);
	T_REQUIRE(memcmp(x, "ab", 2) == 0);
	T_REQUIRE(memcmp(y, "cdefg", 5) == 0);
	T_REQUIRE(br_readv(p[0], in, -1) == -EINVAL);
	return NULL;
}

Test(io, readv_and_writev_scatter_and_gather, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int p[2];
		br_future *f;

		make_pipe(p);
		f = br_spawn(rt, vector_round_trip, p);
		await_ok(f);
		br_future_release(f);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

Test(io, a_read_past_its_deadline_returns_etimedout, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		int p[2];
		struct rw rd = { .len = 8, .timeout_ms = 50 };
		br_future *f;

		make_pipe(p);
		rd.fd = p[0];
		f = br_spawn(rt, reader, &rd);
		await_ok(f);
		cr_assert_eq(rd.ret, -ETIMEDOUT, "got %zd (flags %u)", rd.ret,
			     flags);
		cr_assert_geq(rd.took_ns, 50 * T_NS_PER_MS);
		cr_assert_lt(rd.took_ns, 2000 * T_NS_PER_MS);
		/* The pipe is still usable: nothing was consumed. */
		cr_assert_eq(write(p[1], "z", 1), 1);
		rd.timeout_ms = 1000;
		br_future_release(f);
		f = br_spawn(rt, reader, &rd);
		await_ok(f);
		cr_assert_eq(rd.ret, 1);
		br_future_release(f);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

static void *task_timeout_reader(void *arg)
{
	int *p = arg;
	char c;
	int64_t old = br_io_timeout(30);
	ssize_t a = br_read(p[0], &c, 1), b = br_read(p[0], &c, 1);

	T_REQUIRE(old == -1);
	T_REQUIRE(a == -ETIMEDOUT);
	T_REQUIRE(b == -ETIMEDOUT);
	T_REQUIRE(br_io_timeout(-1) == 30);
	return NULL;
}

Test(io, a_task_timeout_applies_to_each_later_call, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int p[2];
		br_future *f;

		make_pipe(p);
		f = br_spawn(rt, task_timeout_reader, p);
		await_ok(f);
		br_future_release(f);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

Test(io, cancelling_a_blocked_read_returns_ecanceled, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		int p[2];
		struct rw rd = { .len = 8 };
		br_future *f;

		make_pipe(p);
		rd.fd = p[0];
		f = br_spawn(rt, reader, &rd);
		br_sleep_ms(30);
		cr_assert_eq(br_future_state(f), BR_PENDING);
		cr_assert_eq(br_cancel(f), 0);
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		cr_assert_eq(br_future_state(f), BR_CANCELLED);
		cr_assert_eq(rd.ret, -ECANCELED, "got %zd (flags %u)", rd.ret,
			     flags);
		/* The cancelled read consumed nothing. */
		cr_assert_eq(write(p[1], "q", 1), 1);
		cr_assert_eq(read(p[0], rd.buf, 8), 1);
		br_future_release(f);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

Test(io, runtime_free_cancels_tasks_blocked_in_io, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		int p[2];
		struct rw rd[4];
		br_future *f[4];
		int i;

		make_pipe(p);
		atomic_store(&readers_started, 0);
		for (i = 0; i < 4; i++) {
			rd[i] = (struct rw){ .fd = p[0], .len = 8 };
			f[i] = br_spawn(rt, reader, &rd[i]);
		}
		cr_assert_eq(t_wait_until(&readers_started, 4,
					  10000 * T_NS_PER_MS),
			     0);
		br_sleep_ms(30);
		br_runtime_free(rt);
		for (i = 0; i < 4; i++) {
			cr_assert_eq(br_future_state(f[i]), BR_CANCELLED);
			cr_assert_eq(rd[i].ret, -ECANCELED);
			br_future_release(f[i]);
		}
		close(p[0]);
		close(p[1]);
	}
}

static void *bad_fds(void *arg)
{
	char c;
	struct iovec iov = { &c, 1 };

	(void)arg;
	T_REQUIRE(br_read(-1, &c, 1) == -EBADF);
	T_REQUIRE(br_write(-1, &c, 1) == -EBADF);
	T_REQUIRE(br_pread(1 << 20, &c, 1, 0) == -EBADF);
	T_REQUIRE(br_readv(-1, &iov, 1) == -EBADF);
	T_REQUIRE(br_close(-1) == -EBADF);
	T_REQUIRE(br_fsync(-1, 0) == -EBADF);
	T_REQUIRE(br_poll(-1, POLLIN) == -EBADF);
	T_REQUIRE(br_pread(0, &c, 1, -5) == -EINVAL);
	T_REQUIRE(br_openat(AT_FDCWD, "/nonexistent/braid", O_RDONLY, 0) ==
		  -ENOENT);
	T_REQUIRE(br_openat(AT_FDCWD, NULL, O_RDONLY, 0) == -EFAULT);
	return NULL;
}

Test(io, bad_fds_and_paths_give_the_kernels_errno, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		br_future *f = br_spawn(rt, bad_fds, NULL);

		await_ok(f);
		br_future_release(f);
		br_runtime_free(rt);
	}
	/* The same from a plain thread. */
	{
		const char *msg = bad_fds(NULL);

		cr_assert_null(msg, "%s", msg);
	}
}

Test(io, plain_threads_make_the_plain_syscalls, .timeout = 20.0)
{
	int p[2];
	char buf[8];
	int64_t t0;

	make_pipe(p);
	cr_assert_eq(br_write(p[1], "abc", 3), 3);
	cr_assert_eq(br_read(p[0], buf, sizeof(buf)), 3);
	t0 = br_now_ns();
	cr_assert_eq(br_read_timeout(p[0], buf, sizeof(buf), 40), -ETIMEDOUT);
	cr_assert_geq(br_now_ns() - t0, 40 * T_NS_PER_MS);
	cr_assert_eq(br_io_timeout(25), -1);
	cr_assert_eq(br_read(p[0], buf, 1), -ETIMEDOUT);
	cr_assert_eq(br_io_timeout(-1), 25);
	cr_assert_eq(br_poll_timeout(p[1], POLLOUT, 0) & POLLOUT, POLLOUT);
	close(p[0]);
	close(p[1]);
}

static atomic_int cb_ret;

static void io_in_callback(void *arg)
{
	char c;

	atomic_store(&cb_ret, (int)br_read(*(int *)arg, &c, 1));
}

Test(io, loop_callbacks_get_enottask, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int p[2];
		br_future *f;

		make_pipe(p);
		atomic_store(&cb_ret, 0);
		f = br_call_soon(rt, io_in_callback, &p[0]);
		await_ok(f);
		cr_assert_eq(atomic_load(&cb_ret), BR_ENOTTASK, "flags %#x",
			     flags);
		br_future_release(f);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

static void *file_meta(void *arg)
{
	const char *path = arg;
	struct statx st;
	int p[2], fd;
	char buf[16];

	T_REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	T_REQUIRE(br_write(p[1], "spliced!", 8) == 8);
	fd = br_openat(AT_FDCWD, path, O_WRONLY | O_TRUNC, 0);
	T_REQUIRE(fd >= 0);
	T_REQUIRE(br_splice(p[0], -1, fd, 0, 8, 0) == 8);
	T_REQUIRE(br_fsync(fd, 1) == 0);
	T_REQUIRE(br_close(fd) == 0);
	T_REQUIRE(br_statx(AT_FDCWD, path, 0, STATX_SIZE, &st) == 0);
	T_REQUIRE(st.stx_size == 8);
	T_REQUIRE(br_statx(AT_FDCWD, "/nonexistent/x", 0, STATX_SIZE, &st) ==
		  -ENOENT);
	fd = br_openat(AT_FDCWD, path, O_RDONLY, 0);
	T_REQUIRE(fd >= 0);
	T_REQUIRE(br_read(fd, buf, sizeof(buf)) == 8);
	T_REQUIRE(memcmp(buf, "spliced!", 8) == 0);
	T_REQUIRE(br_poll(p[1], POLLOUT) & POLLOUT);
	T_REQUIRE(br_poll_timeout(p[0], POLLIN, 20) == -ETIMEDOUT);
	br_close(fd);
	close(p[0]);
	close(p[1]);
	return NULL;
}

Test(io, openat_splice_fsync_statx_and_poll, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		char *path = temp_path();
		br_future *f = br_spawn(rt, file_meta, path);

		await_ok(f);
		br_future_release(f);
		unlink(path);
		free(path);
		br_runtime_free(rt);
	}
}

/* Many tasks each blocked on its own pipe; the writer fills them in a
 * random order: every reader gets its own byte. */
#define NPIPES 400

struct many {
	int p[NPIPES][2];
	struct rw rd[NPIPES];
};

static void *fill_pipes(void *arg)
{
	struct many *m = arg;
	uint64_t s = 88172645463325252ull;
	int order[NPIPES], i;

	for (i = 0; i < NPIPES; i++)
		order[i] = i;
	for (i = NPIPES - 1; i > 0; i--) {
		int j = (int)(t_rand(&s) % (uint64_t)(i + 1)), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	for (i = 0; i < NPIPES; i++) {
		char c = (char)order[i];

		T_REQUIRE(br_write(m->p[order[i]][1], &c, 1) == 1);
		if (i % 50 == 0)
			br_yield();
	}
	return NULL;
}

Test(io, hundreds_of_tasks_each_get_their_own_read, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct many *m = calloc(1, sizeof(*m));
		br_future *f[NPIPES], *w;
		int i;

		cr_assert_not_null(m);
		for (i = 0; i < NPIPES; i++) {
			make_pipe(m->p[i]);
			m->rd[i] = (struct rw){ .fd = m->p[i][0], .len = 4 };
			f[i] = br_spawn(rt, reader, &m->rd[i]);
		}
		w = br_spawn(rt, fill_pipes, m);
		await_ok(w);
		br_future_release(w);
		for (i = 0; i < NPIPES; i++) {
			await_ok(f[i]);
			cr_assert_eq(m->rd[i].ret, 1);
			cr_assert_eq(m->rd[i].buf[0], (char)i);
			br_future_release(f[i]);
			close(m->p[i][0]);
			close(m->p[i][1]);
		}
		free(m);
		br_runtime_free(rt);
	}
}

/* A tiny ring (4 SQEs, 8 CQEs) with 200 reads completing together: the
 * CQ overflows into the kernel's list and every completion still comes. */
struct burst {
	int p[200][2];
	struct rw rd[200];
};

static void *write_all_pipes(void *arg)
{
	struct burst *b = arg;
	int i;

	for (i = 0; i < 200; i++)
		T_REQUIRE(write(b->p[i][1], "x", 1) == 1);
	return NULL;
}

Test(io, completions_beyond_the_cq_size_are_not_lost, .timeout = 30.0)
{
	br_config cfg = { .workers = 1, .ring_entries = 4 };
	br_runtime *rt = t_runtime_cfg(&cfg);
	struct burst *b = calloc(1, sizeof(*b));
	br_future *f[200];
	int i;

	cr_assert_not_null(b);
	for (i = 0; i < 200; i++) {
		make_pipe(b->p[i]);
		b->rd[i] = (struct rw){ .fd = b->p[i][0], .len = 4 };
		f[i] = br_spawn(rt, reader, &b->rd[i]);
	}
	br_sleep_ms(50); /* every reader is waiting in the kernel */
	/* From a plain thread, all at once, while the loop is parked. */
	cr_assert_null(write_all_pipes(b));
	for (i = 0; i < 200; i++) {
		await_ok(f[i]);
		cr_assert_eq(b->rd[i].ret, 1);
		br_future_release(f[i]);
		close(b->p[i][0]);
		close(b->p[i][1]);
	}
	free(b);
	br_runtime_free(rt);
}

/* O_DIRECT needs aligned buffers, offsets and lengths, and a file system
 * that supports it (tmpfs does not). */
static void *direct_round_trip(void *arg)
{
	const char *path = arg;
	void *out, *in;
	int fd;

	T_REQUIRE(posix_memalign(&out, 4096, 8192) == 0);
	T_REQUIRE(posix_memalign(&in, 4096, 8192) == 0);
	memset(out, 0x5a, 8192);
	memset(in, 0, 8192);
	fd = br_openat(AT_FDCWD, path, O_RDWR | O_DIRECT, 0);
	T_REQUIRE(fd >= 0);
	T_REQUIRE(br_pwrite(fd, out, 8192, 0) == 8192);
	T_REQUIRE(br_pread(fd, in, 8192, 0) == 8192);
	T_REQUIRE(memcmp(in, out, 8192) == 0);
	/* A short read at EOF, still aligned. */
	T_REQUIRE(br_pread(fd, in, 8192, 4096) == 4096);
	br_close(fd);
	free(out);
	free(in);
	return NULL;
}

Test(io, o_direct_reads_and_writes_where_the_file_system_allows,
     .timeout = 20.0)
{
	static const char *const dirs[] = { "/var/tmp", "." };
	char path[256];
	size_t i;
	int fd = -1;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && fd < 0; i++) {
		snprintf(path, sizeof(path), "%s/braid-direct-XXXXXX", dirs[i]);
		fd = mkstemp(path);
		if (fd >= 0 && fcntl(fd, F_SETFL, O_DIRECT) < 0) {
			close(fd);
			unlink(path);
			fd = -1;
		}
	}
	if (fd < 0)
		cr_skip_test("no file system here supports O_DIRECT");
	close(fd);
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		await_ok(br_spawn(rt, direct_round_trip, path));
		br_runtime_free(rt);
	}
	unlink(path);
}

struct starve {
	int fd;
	atomic_int done;
	ssize_t got;
};

/* Yields until the reader is done, or 5 s have passed. */
static void *keep_yielding(void *arg)
{
	struct starve *s = arg;
	int64_t t0 = br_now_ns();

	while (!atomic_load(&s->done))
		if (br_now_ns() - t0 > 5000000000LL)
			return (void *)"the read never completed";
		else
			br_yield();
	return NULL;
}

static void *read_one(void *arg)
{
	struct starve *s = arg;
	char c;

	s->got = br_read(s->fd, &c, 1);
	atomic_store(&s->done, 1);
	return NULL;
}

/* A loop that always has a task to run (one that keeps yielding) still
 * submits and reaps I/O at its poll points: the byte waiting in the pipe
 * is read, not starved behind the yield queue. */
Test(io, io_completes_while_another_task_keeps_yielding, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct starve s = { 0 };
		br_future *y, *r;
		int p[2];

		make_pipe(p);
		s.fd = p[0];
		cr_assert_eq(write(p[1], "x", 1), 1);
		y = br_spawn(rt, keep_yielding, &s);
		r = br_spawn(rt, read_one, &s);
		await_ok(r);
		await_ok(y);
		cr_assert_eq(s.got, 1);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

/* ---- no call blocks a worker, whatever the fd's own mode ---- */

#define BIG_WRITE (1024 * 1024)

struct big {
	int fd;
	unsigned char *buf;
	ssize_t ret;
	atomic_int calls; /* br_write calls that returned */
};

static void *write_big(void *arg)
{
	struct big *b = arg;
	size_t done = 0;

	while (done < BIG_WRITE) {
		ssize_t r = br_write(b->fd, b->buf + done, BIG_WRITE - done);

		atomic_fetch_add(&b->calls, 1);
		if (r <= 0) {
			b->ret = r;
			return NULL;
		}
		done += (size_t)r;
	}
	b->ret = (ssize_t)done;
	return NULL;
}

/* A 1 MiB write to a blocking pipe that nobody reads yet: the writer
 * waits on the loop, and the worker goes on running other tasks and
 * firing their deadlines. Then a reader drains the pipe and every byte
 * arrives in order. */
Test(io, a_large_write_to_a_blocking_pipe_never_stalls_the_worker,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct big b = { 0 };
		unsigned char *got = malloc(BIG_WRITE);
		size_t have = 0;
		int p[2];
		br_future *w;

		cr_assert_not_null(got);
		b.buf = malloc(BIG_WRITE);
		cr_assert_not_null(b.buf);
		for (size_t i = 0; i < BIG_WRITE; i++)
			b.buf[i] = (unsigned char)(i * 131 + (i >> 12));
		make_pipe(p);
		cr_assert_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0);
		b.fd = p[1];
		w = br_spawn(rt, write_big, &b);
		br_sleep_ms(30);
		t_assert_worker_runs(rt, flags);
		cr_assert_eq(br_future_state(w), BR_PENDING);
		/* The pipe was left blocking. */
		cr_assert_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0);
		while (have < BIG_WRITE) {
			ssize_t n = read(p[0], got + have, BIG_WRITE - have);

			cr_assert_gt(n, 0);
			have += (size_t)n;
		}
		t_await_value(w);
		cr_assert_eq(b.ret, BIG_WRITE, "flags %#x: %zd", flags, b.ret);
		cr_assert_eq(memcmp(got, b.buf, BIG_WRITE), 0);
		br_future_release(w);
		close(p[0]);
		close(p[1]);
		free(got);
		free(b.buf);
		br_runtime_free(rt);
	}
}

static void *read_rw(void *arg)
{
	struct rw *r = arg;

	r->ret = br_read(r->fd, r->buf, r->len);
	return NULL;
}

/* A read from a terminal (a pty, blocking) that nobody types into: as
 * for the pipe. A terminal cannot be read without blocking per call
 * (RWF_NOWAIT), so the loop waits for it to be readable and reads on the
 * blocking pool. */
Test(io, a_read_from_a_silent_blocking_terminal_never_stalls_the_worker,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct rw r = { .len = 5 };
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		br_future *f;

		cr_assert_geq(m, 0);
		cr_assert_eq(grantpt(m), 0);
		cr_assert_eq(unlockpt(m), 0);
		r.fd = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
		cr_assert_geq(r.fd, 0);
		f = br_spawn(rt, read_rw, &r);
		br_sleep_ms(30);
		t_assert_worker_runs(rt, flags);
		cr_assert_eq(br_future_state(f), BR_PENDING);
		cr_assert_eq(write(m, "line\n", 5), 5);
		t_await_value(f);
		cr_assert_eq(r.ret, 5, "flags %#x: %zd", flags, r.ret);
		cr_assert_eq(memcmp(r.buf, "line\n", 5), 0);
		br_future_release(f);
		close(r.fd);
		close(m);
		br_runtime_free(rt);
	}
}

struct spl {
	int in, out;
	ssize_t ret;
};

static void *splice_once(void *arg)
{
	struct spl *s = arg;

	s->ret = br_splice(s->in, -1, s->out, -1, 4096, 0);
	return NULL;
}

/* A splice from a pipe with data into a full blocking pipe: the task
 * waits for room on the loop, and the worker goes on. */
Test(io, a_splice_into_a_full_blocking_pipe_never_stalls_the_worker,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int a[2], b[2];
		struct spl s;
		static char buf[65536];
		size_t filled = 0;
		br_future *f;
		ssize_t n;

		make_pipe(a);
		make_pipe(b);
		cr_assert_eq(write(a[1], "spliced", 7), 7);
		/* Fill b through a non-blocking moment of our own pipe. */
		cr_assert_eq(fcntl(b[1], F_SETFL, O_NONBLOCK), 0);
		memset(buf, 'f', sizeof(buf));
		while ((n = write(b[1], buf, sizeof(buf))) > 0)
			filled += (size_t)n;
		cr_assert_eq(fcntl(b[1], F_SETFL, 0), 0);
		s = (struct spl){ .in = a[0], .out = b[1] };
		f = br_spawn(rt, splice_once, &s);
		br_sleep_ms(30);
		t_assert_worker_runs(rt, flags);
		cr_assert_eq(br_future_state(f), BR_PENDING);
		while (filled > 0) {
			n = read(b[0], buf,
				 filled < sizeof(buf) ? filled : sizeof(buf));
			cr_assert_gt(n, 0);
			filled -= (size_t)n;
		}
		t_await_value(f);
		cr_assert_eq(s.ret, 7, "flags %#x: %zd", flags, s.ret);
		cr_assert_eq(read(b[0], buf, 7), 7);
		cr_assert_eq(memcmp(buf, "spliced", 7), 0);
		br_future_release(f);
		close(a[0]);
		close(a[1]);
		close(b[0]);
		close(b[1]);
		br_runtime_free(rt);
	}
}

struct fifo_open {
	const char *path;
	int flags;
	int ret;
};

static void *open_fifo(void *arg)
{
	struct fifo_open *o = arg;

	o->ret = br_openat(AT_FDCWD, o->path, o->flags, 0);
	return NULL;
}

/* Open one end of path in a task; the result, which must come at once
 * (the worker would otherwise wait for the other end). */
static int open_fifo_end(br_runtime *rt, const char *path, int oflags,
			 unsigned flags)
{
	struct fifo_open o = { path, oflags, -EIO };
	br_future *f = br_spawn(rt, open_fifo, &o);

	cr_assert_eq(br_wait_for(f, 5000, NULL), 0,
		     "flags %#x: opening the FIFO (%#x) waited", flags, oflags);
	br_future_release(f);
	return o.ret;
}

/* As the ring opens it: a FIFO's read end at once, without waiting for a
 * writer, and ENXIO for a write end that nobody reads. */
Test(io, opening_a_fifo_never_waits_for_its_other_end, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		char path[] = "/tmp/braid-fifo-XXXXXX", *file;
		int r, w;
		char c = 0;

		cr_assert_not_null(mkdtemp(path));
		cr_assert_gt(asprintf(&file, "%s/fifo", path), 0);
		cr_assert_eq(mkfifo(file, 0600), 0);
		cr_assert_eq(open_fifo_end(rt, file, O_WRONLY, flags), -ENXIO);
		r = open_fifo_end(rt, file, O_RDONLY, flags);
		cr_assert_geq(r, 0, "flags %#x: %d", flags, r);
		/* The caller did not ask for O_NONBLOCK. */
		cr_assert_eq(fcntl(r, F_GETFL) & O_NONBLOCK, 0);
		w = open_fifo_end(rt, file, O_WRONLY, flags);
		cr_assert_geq(w, 0, "flags %#x: %d", flags, w);
		cr_assert_eq(write(w, "f", 1), 1);
		cr_assert_eq(read(r, &c, 1), 1);
		cr_assert_eq(c, 'f');
		close(r);
		close(w);
		unlink(file);
		rmdir(path);
		free(file);
		br_runtime_free(rt);
	}
}

/*
 * Every call that takes a descriptor, on negative ones (AT_FDCWD's value
 * included), with a deadline and a task default that would otherwise be
 * waited out: -EBADF at once, never -ETIMEDOUT.
 */
static void *negative_fds(void *arg)
{
	static const int bad[] = { -1, -100, INT32_MIN };
	char c = 0;
	struct iovec iov = { &c, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct sockaddr_storage sa = { .ss_family = AF_UNIX };
	socklen_t sl = sizeof(sa);
	int64_t t0 = br_now_ns(), old = br_io_timeout(3000);
	int *p = arg;
	void *obj;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = bad[i];

		T_REQUIRE(br_read(fd, &c, 1) == -EBADF);
		T_REQUIRE(br_write(fd, &c, 1) == -EBADF);
		T_REQUIRE(br_pread(fd, &c, 1, 0) == -EBADF);
		T_REQUIRE(br_pwrite(fd, &c, 1, 0) == -EBADF);
		T_REQUIRE(br_readv(fd, &iov, 1) == -EBADF);
		T_REQUIRE(br_writev(fd, &iov, 1) == -EBADF);
		T_REQUIRE(br_recv(fd, &c, 1, 0) == -EBADF);
		T_REQUIRE(br_send(fd, &c, 1, 0) == -EBADF);
		T_REQUIRE(br_recvmsg(fd, &msg, 0) == -EBADF);
		T_REQUIRE(br_sendmsg(fd, &msg, 0) == -EBADF);
		T_REQUIRE(br_recvfrom(fd, &c, 1, 0, (struct sockaddr *)&sa,
				      &sl) == -EBADF);
		T_REQUIRE(br_sendto(fd, &c, 1, 0, NULL, 0) == -EBADF);
		T_REQUIRE(br_accept(fd, NULL, NULL, 0) == -EBADF);
		T_REQUIRE(br_connect(fd, (struct sockaddr *)&sa,
				     sizeof(sa_family_t)) == -EBADF);
		T_REQUIRE(br_shutdown(fd, SHUT_RDWR) == -EBADF);
		T_REQUIRE(br_fsync(fd, 1) == -EBADF);
		T_REQUIRE(br_splice(fd, -1, p[1], -1, 1, 0) == -EBADF);
		T_REQUIRE(br_splice(p[0], -1, fd, -1, 1, 0) == -EBADF);
		T_REQUIRE(br_poll(fd, POLLIN) == -EBADF);
		T_REQUIRE(br_read_timeout(fd, &c, 1, 3000) == -EBADF);
		T_REQUIRE(br_write_timeout(fd, &c, 1, 3000) == -EBADF);
		T_REQUIRE(br_recv_timeout(fd, &c, 1, 0, 3000) == -EBADF);
		T_REQUIRE(br_send_timeout(fd, &c, 1, 0, 3000) == -EBADF);
		T_REQUIRE(br_accept_timeout(fd, NULL, NULL, 0, 3000) == -EBADF);
		T_REQUIRE(br_connect_timeout(fd, (struct sockaddr *)&sa,
					     sizeof(sa_family_t),
					     3000) == -EBADF);
		T_REQUIRE(br_poll_timeout(fd, POLLIN, 3000) == -EBADF);
		T_REQUIRE(br_write_all(fd, &c, 1) == -EBADF);
		T_REQUIRE(br_send_all(fd, &c, 1, 0) == -EBADF);
		T_REQUIRE(br_local_port(fd) == -EBADF);
		T_REQUIRE(br_acceptor_new((br_acceptor **)&obj, fd) == -EBADF);
		T_REQUIRE(br_reader_new((br_reader **)&obj, fd) == -EBADF);
		T_REQUIRE(br_writer_new((br_writer **)&obj, fd) == -EBADF);
		/* And br_close. */
		T_REQUIRE(br_close(fd) == -EBADF);
	}
	br_io_timeout(old);
	T_REQUIRE(br_now_ns() - t0 < 1000 * T_NS_PER_MS);
	return NULL;
}

Test(io, negative_fds_give_ebadf_at_once_from_tasks_and_threads,
     .timeout = 60.0)
{
	int p[2];

	make_pipe(p);
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		br_future *f = br_spawn(rt, negative_fds, p);

		await_ok(f);
		br_future_release(f);
		br_runtime_free(rt);
	}
	/* The same from a plain thread, which honours its deadlines by
	 * polling first: poll() skips a negative fd and would wait. */
	{
		const char *msg = negative_fds(p);

		cr_assert_null(msg, "%s", msg);
	}
	close(p[0]);
	close(p[1]);
}

/* What a cancelled task did with its descriptors, for the test. */
struct release_rec {
	int fd[2];
	atomic_int started;
	int slept;	/* the cancelled sleep's result */
	int closed[2];	/* br_close()'s results */
	int still_open; /* descriptors left open after br_close */
};

static void *close_after_cancel(void *arg)
{
	struct release_rec *r = arg;

	atomic_store(&r->started, 1);
	r->slept = br_sleep_ms(20000);
	for (int i = 0; i < 2; i++) {
		r->closed[i] = br_close(r->fd[i]);
		if (fcntl(r->fd[i], F_GETFD) >= 0)
			r->still_open++;
	}
	return NULL;
}

/* Closing releases a descriptor: a task cancelled before the call, or
 * while it waits for the ring, still closes it. */
Test(io, a_cancelled_task_still_closes_its_fds, .timeout = 20.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct release_rec r = { 0 };
		br_future *f;

		make_pipe(r.fd);
		f = br_spawn(rt, close_after_cancel, &r);
		cr_assert_eq(t_spin_until(&r.started, 1, 5000 * T_NS_PER_MS),
			     0);
		br_sleep_ms(20);
		cr_assert_eq(br_cancel(f), 0);
		br_await(f, NULL);
		cr_assert_eq(r.slept, -ECANCELED);
		cr_assert_eq(r.closed[0], 0, "br_close: %s",
			     br_strerror(r.closed[0]));
		cr_assert_eq(r.closed[1], 0, "br_close: %s",
			     br_strerror(r.closed[1]));
		cr_assert_eq(r.still_open, 0, "the descriptors stayed open");
		br_future_release(f);
		br_runtime_free(rt);
	}
}

/* ---- deadlines beyond what one poll() can wait ---- */

#define DAY_MS (24 * 3600 * INT64_C(1000))

/* A read of one byte inside a deadline scope (scope_ms >= 0) or with a
 * timeout of its own (timeout_ms > 0), from a task or a plain thread. */
struct far_read {
	int fd;
	int64_t scope_ms, timeout_ms;
	ssize_t ret;
	atomic_int tid; /* the reading thread, for a plain thread */
	atomic_int done;
};

static void *far_read(void *arg)
{
	struct far_read *r = arg;
	br_deadline scope;
	char c;

	if (r->scope_ms >= 0)
		T_REQUIRE(br_deadline_enter(&scope, r->scope_ms) == 0);
	atomic_store(&r->tid, (int)gettid());
	r->ret = r->timeout_ms > 0 ?
			 br_read_timeout(r->fd, &c, 1, r->timeout_ms) :
			 br_read(r->fd, &c, 1);
	atomic_store(&r->done, 1);
	if (r->scope_ms >= 0)
		T_REQUIRE(br_deadline_leave(&scope) == 0);
	return NULL;
}

/*
 * The timeout, in ms, of the poll() or ppoll() that thread tid is
 * blocked in: -1 for none (forever), -2 if it is in no such call (yet).
 * Read from procfs, which shows a blocked thread's system call and its
 * arguments; a ppoll()'s timespec is in this process's memory.
 */
static int64_t blocked_poll_timeout_ms(int tid)
{
	char path[64], line[512];
	unsigned long a[4];
	long nr;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "r");
	if (!f)
		return -2;
	n = fgets(line, sizeof(line), f) ?
		    sscanf(line, "%ld %lx %lx %lx %lx", &nr, &a[0], &a[1],
			   &a[2], &a[3]) :
		    0;
	fclose(f);
	if (n != 5)
		return -2;
#ifdef SYS_poll
	if (nr == SYS_poll)
		return (int)a[2] < 0 ? -1 : (int)a[2];
#endif
	if (nr == SYS_ppoll) {
		const struct timespec *ts = (const struct timespec *)a[2];

		return ts ? ts->tv_sec * INT64_C(1000) +
				       ts->tv_nsec / T_NS_PER_MS :
			    -1;
	}
	return -2;
}

/* Run r on a plain thread; return the timeout of the poll it blocks
 * in, then wake it with a byte on wfd and check that it read it. */
static int64_t far_read_on_thread(struct far_read *r, int wfd)
{
	int64_t tmo = -2, t0 = br_now_ns();
	pthread_t th;
	const char *msg;

	t_thread_start(&th, far_read, r);
	while (!atomic_load(&r->tid))
		br_sleep_ms(1);
	while (tmo == -2 && br_now_ns() - t0 < 5000 * T_NS_PER_MS) {
		tmo = blocked_poll_timeout_ms(atomic_load(&r->tid));
		if (tmo == -2)
			br_sleep_ms(1);
	}
	br_sleep_ms(50);
	cr_assert_eq(atomic_load(&r->done), 0, "the read ended at once: %zd",
		     r->ret);
	cr_assert_eq(write(wfd, "x", 1), 1);
	msg = t_thread_join(th);
	cr_assert_null(msg, "%s", msg);
	cr_assert_eq(r->ret, 1, "got %zd", r->ret);
	return tmo;
}

/* The same in a task of rt. */
static void far_read_in_task(br_runtime *rt, struct far_read *r, int wfd,
			     unsigned flags)
{
	br_future *f = br_spawn(rt, far_read, r);

	/* A task that cannot be made (a fault) never starts. */
	while (!atomic_load(&r->tid) && br_future_state(f) == BR_PENDING)
		br_sleep_ms(1);
	cr_assert(atomic_load(&r->tid), "the task never started: %s",
		  br_future_message(f));
	br_sleep_ms(50);
	cr_assert_eq(atomic_load(&r->done), 0,
		     "the read ended at once: %zd (flags %u)", r->ret, flags);
	cr_assert_eq(write(wfd, "x", 1), 1);
	await_ok(f);
	br_future_release(f);
	cr_assert_eq(r->ret, 1, "got %zd (flags %u)", r->ret, flags);
}

/* poll() takes an int of ms, about 24.8 days: a plain thread whose
 * deadline is further away must still wait for that deadline, never
 * for good, so each poll() it makes is bounded. */
Test(io, a_deadline_months_away_waits_in_bounded_polls_until_an_event,
     .timeout = 30.0)
{
	int p[2];

	make_pipe(p);
	{
		struct far_read r = { .fd = p[0], .scope_ms = 60 * DAY_MS };
		int64_t tmo = far_read_on_thread(&r, p[1]);

		cr_assert_neq(tmo, -2, "the thread never polled");
		cr_assert_neq(tmo, -1, "a finite deadline polled forever");
		cr_assert_gt(tmo, 0);
		cr_assert_leq(tmo, DAY_MS, "polled for %lld ms",
			      (long long)tmo);
	}
	/* And in a task, on either loop. */
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct far_read r = { .fd = p[0], .scope_ms = 60 * DAY_MS };

		far_read_in_task(rt, &r, p[1], flags);
		br_runtime_free(rt);
	}
	close(p[0]);
	close(p[1]);
}

Test(io, a_timeout_near_int_max_ms_does_not_fire_at_once, .timeout = 30.0)
{
	static const int64_t tmos[] = { INT32_MAX - 1, INT32_MAX,
					(int64_t)INT32_MAX + 1,
					(int64_t)UINT32_MAX + 1 };
	size_t n = sizeof(tmos) / sizeof(tmos[0]);
	int p[2];

	make_pipe(p);
	for (size_t i = 0; i < n; i++) {
		struct far_read r = { .fd = p[0],
				      .scope_ms = -1,
				      .timeout_ms = tmos[i] };
		int64_t tmo = far_read_on_thread(&r, p[1]);

		cr_assert(tmo > 0 && tmo <= tmos[i],
			  "timeout %lld ms polled for %lld ms",
			  (long long)tmos[i], (long long)tmo);
	}
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		for (size_t i = 0; i < n; i++) {
			struct far_read r = { .fd = p[0],
					      .scope_ms = -1,
					      .timeout_ms = tmos[i] };

			far_read_in_task(rt, &r, p[1], flags);
		}
		br_runtime_free(rt);
	}
	close(p[0]);
	close(p[1]);
}
