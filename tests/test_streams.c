/* SPDX-License-Identifier: MIT */
/*
 * test_streams.c - readers and writers over any descriptor (reader.c,
 * writer.c): writers on pipes, files and sockets, readers on pipes,
 * files and sockets, and the StreamReader verbs (readline, readuntil,
 * readexactly) with their limits and what is left readable. Every test
 * runs on both backends (io_uring and BR_CONFIG_NO_URING) and from a
 * task; the answers must be the same.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "ring.h" /* BR__BUF_SIZE */

TestSuite(streams, .init = t_leak_init, .fini = t_leak_fini);

/* Runs fn(arg) as a task of a fresh runtime in each mode, asserting it
 * returned NULL (T_REQUIRE's message otherwise). */
static void in_task(unsigned flags, br_task_fn fn, void *arg)
{
	br_runtime *rt = t_runtime(1, flags);

	t_assert_task_ok(br_spawn(rt, fn, arg));
	br_runtime_free(rt);
}

/* ---- writers on anything writable ---- */

static void *write_pipe(void *arg)
{
	int *p = arg;
	br_writer *w = NULL;
	char got[64];
	ssize_t n = 0;

	T_REQUIRE(br_writer_new(&w, p[1]) == 0);
	T_REQUIRE(br_writer_write(w, "twenty bytes, a pipe", 20) == 20);
	T_REQUIRE(br_writer_write(w, "!", 1) == 1);
	T_REQUIRE(br_writer_drain(w) == 0);
	br_writer_free(w);
	while (n < 21) {
		ssize_t r = br_read(p[0], got + n, sizeof(got) - (size_t)n);

		T_REQUIRE(r > 0);
		n += r;
	}
	T_REQUIRE(n == 21 && !memcmp(got, "twenty bytes, a pipe!", 21));
	return NULL;
}

Test(streams, a_writer_on_a_pipe_sends_every_byte, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		int p[2];

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		in_task(flags, write_pipe, p);
		close(p[0]);
		close(p[1]);
	}
}

static void *write_file(void *arg)
{
	int fd = *(int *)arg;
	br_writer *w = NULL;

	T_REQUIRE(br_writer_new(&w, fd) == 0);
	for (int i = 0; i < 1000; i++)
		T_REQUIRE(br_writer_write(w, "0123456789", 10) == 10);
	T_REQUIRE(br_writer_drain(w) == 0);
	br_writer_free(w);
	return NULL;
}

Test(streams, a_writer_on_a_file_appends_in_order, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		char path[] = "/tmp/braid-streams-XXXXXX", *text;
		int fd = mkstemp(path);
		size_t len;

		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, "head:", 5), 5);
		in_task(flags, write_file, &fd);
		close(fd);
		text = t_read_file(path, &len);
		unlink(path);
		cr_assert_eq(len, 5 + 10000);
		cr_assert_eq(memcmp(text, "head:0123456789", 15), 0);
		for (size_t i = 5; i < len; i++)
			cr_assert_eq(text[i], '0' + (char)((i - 5) % 10),
				     "at %zu", i);
		free(text);
	}
}

Test(streams, a_descriptor_not_open_for_writing_fails_at_new, .timeout = 10.0)
{
	br_writer *w = (br_writer *)1;
	int p[2], fd;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(br_writer_new(&w, p[0]), -EBADF, "the read end");
	fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(br_writer_new(&w, fd), -EBADF, "a directory");
	close(fd);
	close(p[1]);
	cr_assert_eq(br_writer_new(&w, p[1]), -EBADF, "a closed descriptor");
	close(p[0]);
}

/* ---- the StreamReader verbs ---- */

struct lines {
	int fd;
};

static void *read_lines(void *arg)
{
	struct lines *l = arg;
	br_reader *r = NULL;
	char buf[64];
	const void *rest;
	ssize_t n;

	T_REQUIRE(br_reader_new(&r, l->fd) == 0);
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 6);
	T_REQUIRE(!memcmp(buf, "hello\n", 6));
	/* Too long for 8 bytes: an error, and nothing lost. */
	T_REQUIRE(br_reader_readline(r, buf, 8) == -EMSGSIZE);
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 18);
	T_REQUIRE(!memcmp(buf, "a much longer one\n", 18));
	T_REQUIRE(br_reader_readuntil(r, "--", 2, buf, sizeof(buf)) == 7);
	T_REQUIRE(!memcmp(buf, "part1--", 7));
	T_REQUIRE(br_reader_readexactly(r, buf, 4) == 4);
	T_REQUIRE(!memcmp(buf, "abcd", 4));
	/* The stream ends 3 bytes before 10: -EPIPE, the 3 stay. */
	T_REQUIRE(br_reader_readexactly(r, buf, 10) == -EPIPE);
	n = br_reader_recv(r, &rest);
	T_REQUIRE(n == 8 && !memcmp(rest, "efg\nlast", 8));
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 0);
	br_reader_free(r);
	return NULL;
}

static void *read_tail(void *arg)
{
	struct lines *l = arg;
	br_reader *r = NULL;
	char buf[64];

	T_REQUIRE(br_reader_new(&r, l->fd) == 0);
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 4);
	T_REQUIRE(!memcmp(buf, "one\n", 4));
	/* A last line without a newline comes whole; readuntil says the
	 * stream ended first and leaves it. */
	T_REQUIRE(br_reader_readuntil(r, "\n", 1, buf, sizeof(buf)) == -EPIPE);
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 3);
	T_REQUIRE(!memcmp(buf, "two", 3));
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 0);
	br_reader_free(r);
	return NULL;
}

/* Writes s in pieces of at most step bytes to fd, then closes it. */
static void feed(int fd, const char *s, size_t step)
{
	size_t len = strlen(s);

	for (size_t at = 0; at < len; at += step)
		cr_assert_eq(write(fd, s + at,
				   len - at < step ? len - at : step),
			     (ssize_t)(len - at < step ? len - at : step));
	close(fd);
}

static const char text[] = "hello\na much longer one\npart1--abcdefg\nlast";

Test(streams, readline_readuntil_readexactly_on_a_pipe, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		int p[2];
		struct lines l;

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		feed(p[1], text, 5); /* the pipe holds it all */
		l.fd = p[0];
		in_task(flags, read_lines, &l);
		close(p[0]);
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		feed(p[1], "one\ntwo", 1);
		l.fd = p[0];
		in_task(flags, read_tail, &l);
		close(p[0]);
	}
}

Test(streams, the_verbs_on_a_socket_whose_bytes_come_in_pieces, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		int sv[2];
		struct lines l;

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv),
			     0);
		feed(sv[1], text, 3);
		l.fd = sv[0];
		in_task(flags, read_lines, &l);
		close(sv[0]);
	}
}

Test(streams, the_verbs_on_a_file, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		char path[] = "/tmp/braid-streams-XXXXXX";
		int fd = mkstemp(path);
		struct lines l;

		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, text, strlen(text)),
			     (ssize_t)strlen(text));
		cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
		l.fd = fd;
		in_task(flags, read_lines, &l);
		close(fd);
		unlink(path);
	}
}

/* From a plain thread the verbs work the same. */
Test(streams, the_verbs_from_a_plain_thread, .timeout = 30.0)
{
	int p[2];
	struct lines l;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	feed(p[1], text, 7);
	l.fd = p[0];
	cr_assert_null(read_lines(&l));
	close(p[0]);
}

Test(streams, a_reader_refuses_what_cannot_be_read, .timeout = 10.0)
{
	br_reader *r = (br_reader *)1;
	int p[2];
	char buf[4];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(br_reader_new(&r, p[1]), -EBADF, "the write end");
	cr_assert_eq(br_reader_readline(NULL, buf, 4), -EINVAL);
	cr_assert_eq(br_reader_readuntil(NULL, "x", 1, buf, 4), -EINVAL);
	cr_assert_eq(br_reader_readexactly(NULL, buf, 4), -EINVAL);
	close(p[0]);
	close(p[1]);
}

/* ---- delimiters split across reads ---- */

/*
 * Writes each piece to wfd only once the reader has taken everything
 * before it (nothing is left unread at rfd), so that each piece comes to
 * the reader in a read of its own, then closes wfd.
 */
static const char *feed_apart(int wfd, int rfd, const char *const *pieces)
{
	const char *fail = NULL;

	for (size_t i = 0; pieces[i] && !fail; i++) {
		size_t len = strlen(pieces[i]);
		int64_t t0 = br_now_ns();
		int left = 1;

		while (left && br_now_ns() - t0 < 10000 * T_NS_PER_MS) {
			if (ioctl(rfd, FIONREAD, &left) < 0)
				return "FIONREAD failed";
			if (left)
				br_sleep_ms(1);
		}
		if (left)
			fail = "the reader stopped reading";
		/* Not needed for a read of its own: for the reader to be
		 * parked in it when the piece comes. */
		br_sleep_ms(5);
		if (!fail && write(wfd, pieces[i], len) != (ssize_t)len)
			fail = "a write failed";
	}
	close(wfd);
	return fail;
}

/* Each delimiter below arrives cut in two: "\r\n\r" then "\n", "\r" then
 * "\n\r\n", "-" then "-", and a false start ("\r\n\rX") before it. */
static const char *const split_pieces[] = {
	"GET / HTTP/1.1\r\nHost: a\r\n\r",
	"\n",
	"one\r",
	"\n\r\nbody-",
	"-x\r\n\rX\r\n\r",
	"\n",
	NULL,
};

/* readuntil(delim) on r gives exactly the string want. */
#define REQUIRE_UNTIL(r, delim, want)                                      \
	do {                                                               \
		char b_[64];                                               \
		T_REQUIRE(br_reader_readuntil(r, delim, strlen(delim), b_, \
					      sizeof(b_)) ==               \
			  (ssize_t)strlen(want));                          \
		T_REQUIRE(!memcmp(b_, want, strlen(want)));                \
	} while (0)

static void *read_split(void *arg)
{
	struct lines *l = arg;
	br_reader *r = NULL;
	char buf[8];

	T_REQUIRE(br_reader_new(&r, l->fd) == 0);
	REQUIRE_UNTIL(r, "\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
	REQUIRE_UNTIL(r, "\r\n\r\n", "one\r\n\r\n");
	REQUIRE_UNTIL(r, "--", "body--");
	REQUIRE_UNTIL(r, "\r\n\r\n", "x\r\n\rX\r\n\r\n");
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 0);
	br_reader_free(r);
	return NULL;
}

/* The reader runs in a task while this thread feeds it the pieces
 * apart. */
static void split_in_task(unsigned flags, int rfd, int wfd)
{
	br_runtime *rt = t_runtime(1, flags);
	struct lines l = { rfd };
	br_future *f = br_spawn(rt, read_split, &l);
	const char *fed = feed_apart(wfd, rfd, split_pieces);

	t_assert_task_ok(f);
	cr_assert_null(fed, "flags %#x: %s", flags, fed);
	br_runtime_free(rt);
}

Test(streams, a_delimiter_split_across_two_reads_is_found, .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	{
		int p[2], sv[2];

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv),
			     0);
		split_in_task(flags, sv[0], sv[1]);
		close(sv[0]);
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		split_in_task(flags, p[0], p[1]);
		close(p[0]);
	}
	/* And from a plain thread, fed by another. */
	{
		int p[2];
		struct lines l;
		pthread_t th;
		const char *msg, *fed;

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		l.fd = p[0];
		t_thread_start(&th, read_split, &l);
		fed = feed_apart(p[1], p[0], split_pieces);
		msg = t_thread_join(th);
		cr_assert_null(msg, "%s", msg);
		cr_assert_null(fed, "%s", fed);
		close(p[0]);
	}
}

/* A reader takes at most one of its buffers per read (BR__BUF_SIZE):
 * written at once, "x\n", then 'a's and "\r\n" fill the first read, and
 * the "\r\n" that ends the delimiter comes with the second, after the
 * pending bytes slid and grew to take it. */
#define REFILL_AT BR__BUF_SIZE

static void *read_refill(void *arg)
{
	struct lines *l = arg;
	br_reader *r = NULL;
	static __thread char buf[2 * REFILL_AT];
	ssize_t n;

	T_REQUIRE(br_reader_new(&r, l->fd) == 0);
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 2);
	T_REQUIRE(!memcmp(buf, "x\n", 2));
	n = br_reader_readuntil(r, "\r\n\r\n", 4, buf, sizeof(buf));
	T_REQUIRE(n == REFILL_AT);
	for (ssize_t i = 0; i < REFILL_AT - 4; i++)
		T_REQUIRE(buf[i] == 'a');
	T_REQUIRE(!memcmp(buf + REFILL_AT - 4, "\r\n\r\n", 4));
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 4);
	T_REQUIRE(!memcmp(buf, "tail", 4));
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == 0);
	br_reader_free(r);
	return NULL;
}

static void feed_refill(int fd)
{
	static char data[REFILL_AT + 6];
	size_t len = 0;

	memcpy(data, "x\n", 2);
	len = 2;
	memset(data + len, 'a', REFILL_AT - 4);
	len += REFILL_AT - 4;
	memcpy(data + len, "\r\n\r\ntail", 8);
	len += 8;
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

Test(streams, a_delimiter_split_at_a_buffer_refill_is_found, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		int p[2], sv[2];
		struct lines l;

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv),
			     0);
		feed_refill(sv[1]);
		l.fd = sv[0];
		in_task(flags, read_refill, &l);
		close(sv[0]);
		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		feed_refill(p[1]);
		l.fd = p[0];
		in_task(flags, read_refill, &l);
		close(p[0]);
	}
}
