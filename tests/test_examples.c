/* SPDX-License-Identifier: MIT */
/*
 * test_examples.c - the example servers as their users run them: started
 * as processes on 127.0.0.1 with a free port, spoken to over TCP, and
 * stopped with SIGTERM, after which they must exit 0. The HTTP server
 * must answer pipelined requests in order with correct lengths, meet
 * malformed or ambiguous requests with an error answer and a closed
 * connection, never a crash, and drop connections that stall, so that
 * idle clients cannot lock new ones out at the descriptor limit. Each
 * HTTP test runs the server on both backends (io_uring and
 * BRAID_NO_URING=1). The subprocess example must print its pipeline and
 * gathered results. Every example prints its usage on stdout and exits 0
 * for --help, and on stderr with status 2 for an option it does not know.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(examples, .init = t_leak_init, .fini = t_leak_fini);

struct server {
	pid_t pid;
	int port;
	int err; /* the server's stderr, when captured; else -1 */
};

struct server_opts {
	int no_uring;		 /* run with BRAID_NO_URING=1 */
	const char *const *args; /* more arguments, NULL-terminated */
	long nofile;		 /* RLIMIT_NOFILE for the server, 0: ours */
	int capture_stderr;	 /* read it with server_stderr() */
	int bare;		 /* args only, not --port 0 --workers 2 */
};

/* The backends every HTTP test runs the server on. */
#define BACKENDS 2
static const char *const backend_names[BACKENDS] = { "io_uring",
						     "BRAID_NO_URING=1" };

/* Start build/<variant>/examples/<name> next to this test's directory. */
static struct server start_ex(const char *name, const struct server_opts *o)
{
	static char exe[4096], path[4200];
	static const struct server_opts none = { 0 };
	const char *argv[32] = { name, "--port", "0", "--workers", "2" };
	char line[128];
	struct server s = { .err = -1 };
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int out[2], err[2] = { -1, -1 }, argc;
	FILE *f;
	int first;

	if (!o)
		o = &none;
	first = o->bare ? 1 : 5;

	for (argc = first; o->args && o->args[argc - first]; argc++) {
		cr_assert_lt(argc, 31);
		argv[argc] = o->args[argc - first];
	}
	argv[argc] = NULL;
	cr_assert_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0'; /* .../tests */
	snprintf(path, sizeof(path), "%s/../examples/%s", exe, name);
	if (access(path, X_OK) != 0)
		cr_skip_test("%s is not built (make examples)", path);
	cr_assert_eq(pipe(out), 0);
	if (o->capture_stderr)
		cr_assert_eq(pipe(err), 0);
	s.pid = fork();
	cr_assert_geq(s.pid, 0);
	if (s.pid == 0) {
		int fd;

		/* A failed assertion ends this test's process before stop():
		 * the server then goes with it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(out[1], 1);
		if (err[1] >= 0)
			dup2(err[1], 2);
		/* Only 0, 1 and 2, so that the descriptor limit is the
		 * server's alone. */
		for (fd = 3; fd < 1024; fd++)
			close(fd);
		if (o->no_uring)
			setenv("BRAID_NO_URING", "1", 1);
		else
			unsetenv("BRAID_NO_URING");
		if (o->nofile > 0) {
			struct rlimit rl = { (rlim_t)o->nofile,
					     (rlim_t)o->nofile };

			if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
				_exit(126);
		}
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	if (err[1] >= 0) {
		close(err[1]);
		s.err = err[0];
	}
	f = fdopen(out[0], "r");
	cr_assert_not_null(fgets(line, sizeof(line), f), "%s said nothing",
			   name);
	cr_assert_eq(sscanf(line, "listening on 127.0.0.1:%d", &s.port), 1,
		     "%s", line);
	fclose(f);
	return s;
}

static struct server start(const char *name)
{
	return start_ex(name, NULL);
}

static void stop(struct server s)
{
	int status;

	cr_assert_eq(kill(s.pid, SIGTERM), 0);
	cr_assert_eq(waitpid(s.pid, &status, 0), s.pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "server status %#x", status);
}

/* After stop(): everything the server wrote on its captured stderr,
 * NUL-terminated, in buf. */
static void server_stderr(struct server s, char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;

	cr_assert_geq(s.err, 0);
	while (got < cap - 1 && (n = read(s.err, buf + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(s.err);
}

static int dial(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Send req, then read until the server closes (or want bytes arrive when
 * want > 0). Returns the bytes read, NUL-terminated, in buf. */
static size_t exchange(int fd, const char *req, char *buf, size_t cap,
		       size_t want)
{
	size_t got = 0;

	cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL),
		     (ssize_t)strlen(req));
	while (got < cap - 1 && (!want || got < want)) {
		ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);

		cr_assert_geq(n, 0, "recv: %s", strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

static size_t count(const char *hay, const char *needle)
{
	size_t k = 0;

	for (; (hay = strstr(hay, needle)); hay++)
		k++;
	return k;
}

/* Milliseconds until the server closes fd (what comes first is read and
 * dropped), or -1 if it has not closed within limit_ms. */
static int64_t ms_until_closed(int fd, int64_t limit_ms)
{
	int64_t t0 = br_now_ns();
	char buf[512];

	for (;;) {
		int64_t left = limit_ms - t_elapsed_ms(t0);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return t_elapsed_ms(t0);
	}
}

static const char ok_answer[] = "HTTP/1.1 200 OK\r\nContent-Type: "
				"text/plain\r\nContent-Length: 5\r\n\r\nhello";

Test(examples, http_server_answers_pipelined_requests_in_order, .timeout = 60.0)
{
	static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Type: "
				 "text/plain\r\nContent-Length: 9\r\n\r\n"
				 "Not Found";
	char want[1024], buf[4096];
	int b;

	snprintf(want, sizeof(want), "%s%s%s", ok_answer, nf, ok_answer);
	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b };
		struct server s = start_ex("http_server", &o);
		int fd = dial(s.port);

		exchange(fd,
			 "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
			 "GET /missing HTTP/1.1\r\nHost: a\r\n\r\n"
			 "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
			 "4\r\n\r\nbody"
			 "GET / HTTP/1.1\r\nHost: a\r\nConnection: "
			 "close\r\n\r\n",
			 buf, sizeof(buf), 0);
		/* 200, 404, 405 for the POST (its body skipped), then 200
		 * with Connection: close, after which the server closed. */
		cr_assert_eq(count(buf, "HTTP/1.1 "), 4, "%s: %s",
			     backend_names[b], buf);
		cr_assert_eq(strncmp(buf, want, strlen(ok_answer) + strlen(nf)),
			     0, "%s: %s", backend_names[b], buf);
		cr_assert_not_null(strstr(buf, "405 Method Not Allowed"), "%s",
				   buf);
		cr_assert_not_null(strstr(buf, "Connection: close\r\n"), "%s",
				   buf);
		close(fd);
		stop(s);
	}
}

Test(examples, http_server_assembles_requests_that_arrive_in_pieces,
     .timeout = 60.0)
{
	static const char req[] =
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	int b;

	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b };
		struct server s = start_ex("http_server", &o);
		int fd = dial(s.port), one = 1;
		const char *p;
		char buf[4096];
		size_t i;

		/* Byte by byte, each its own segment: heads, a body and the
		 * next head are cut at every possible place. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		for (i = 0; i + 1 < sizeof(req); i++) {
			cr_assert_eq(send(fd, req + i, 1, MSG_NOSIGNAL), 1);
			usleep(200);
		}
		exchange(fd, "", buf, sizeof(buf), 0);
		cr_assert_eq(count(buf, "HTTP/1.1 "), 4, "%s: %s",
			     backend_names[b], buf);
		p = strstr(buf, "200 OK");
		cr_assert_not_null(p, "%s", buf);
		p = strstr(p, "404 Not Found");
		cr_assert_not_null(p, "%s", buf);
		p = strstr(p, "405 Method Not Allowed");
		cr_assert_not_null(p, "%s", buf);
		p = strstr(p, "200 OK");
		cr_assert_not_null(p, "%s", buf);
		cr_assert_not_null(strstr(p, "Connection: close\r\n"), "%s",
				   buf);
		close(fd);
		stop(s);
	}
}

/* An answer to HEAD has no body, whatever its status: a body there would
 * be read as the start of the next answer. */
Test(examples, http_server_answers_head_without_a_body, .timeout = 60.0)
{
	static const char want[] =
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		"Content-Length: 5\r\n\r\n"
		"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
		"Content-Length: 9\r\n\r\n"
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		"Content-Length: 5\r\nConnection: close\r\n\r\nhello";
	char buf[4096];
	int b;

	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b };
		struct server s = start_ex("http_server", &o);
		int fd = dial(s.port);

		exchange(fd,
			 "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
			 "HEAD /missing HTTP/1.1\r\nHost: a\r\n\r\n"
			 "GET / HTTP/1.1\r\nHost: a\r\nConnection: "
			 "close\r\n\r\n",
			 buf, sizeof(buf), 0);
		cr_assert_str_eq(buf, want, "%s", backend_names[b]);
		close(fd);
		stop(s);
	}
}

/* A request, and the start of the one answer it must get before the
 * server closes the connection. */
struct refusal {
	const char *req;
	const char *status; /* "400 ", ... */
};

static void expect_refusals(const struct refusal *r, size_t n)
{
	char buf[4096];
	size_t i;
	int b;

	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b };
		struct server s = start_ex("http_server", &o);
		int fd;

		for (i = 0; i < n; i++) {
			fd = dial(s.port);
			exchange(fd, r[i].req, buf, sizeof(buf), 0);
			cr_assert_eq(strncmp(buf, "HTTP/1.1 ", 9), 0,
				     "%s: request %zu got: %s",
				     backend_names[b], i, buf);
			cr_assert_eq(strncmp(buf + 9, r[i].status,
					     strlen(r[i].status)),
				     0, "%s: request %zu (want %s) got: %s",
				     backend_names[b], i, r[i].status, buf);
			cr_assert_eq(count(buf, "HTTP/1.1 "), 1,
				     "%s: request %zu got: %s",
				     backend_names[b], i, buf);
			cr_assert_not_null(strstr(buf, "Connection: close"),
					   "%s: request %zu got: %s",
					   backend_names[b], i, buf);
			close(fd);
		}
		/* Still serving after all that. */
		fd = dial(s.port);
		exchange(fd, "GET / HTTP/1.0\r\n\r\n", buf, sizeof(buf), 0);
		cr_assert_eq(strncmp(buf, "HTTP/1.1 200 OK", 15), 0, "%s", buf);
		close(fd);
		stop(s);
	}
}

Test(examples, http_server_closes_malformed_requests_with_400, .timeout = 60.0)
{
	static const struct refusal bad[] = {
		{ "garbage\r\n\r\n", "400 " },
		{ "GET /\r\n\r\n", "400 " },
		{ "GET / HTTP/2.0\r\n\r\n", "400 " },
		{ "GET noslash HTTP/1.1\r\nHost: a\r\n\r\n", "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x1\r\n\r\n",
		  "400 " },
		{ "G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", "400 " },
		/* white space before the colon; an empty name */
		{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", "400 " },
		/* obs-fold: a line that continues the previous one */
		{ "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tY: 2\r\n\r\n",
		  "400 " },
		/* a bare LF, which another parser would take as a line end;
		 * control characters */
		{ "GET / HTTP/1.1\r\nHost: a\r\nX: 1\nContent-Length: 5\r\n"
		  "\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", "400 " },
		{ "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", "400 " },
		/* HTTP/1.1 needs exactly one Host */
		{ "GET / HTTP/1.1\r\n\r\n", "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 " },
	};

	expect_refusals(bad, sizeof(bad) / sizeof(bad[0]));
}

Test(examples, http_server_refuses_content_lengths_that_are_not_one_number,
     .timeout = 60.0)
{
	static const struct refusal bad[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
		  "400 " },
		/* 2^64 and beyond */
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: "
		  "18446744073709551616\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: "
		  "99999999999999999999999\r\n\r\n",
		  "400 " },
		/* Two framings: smuggling. */
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
		  "Content-Length: 5\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n",
		  "400 " },
		{ "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		  "Content-Length: 5\r\n\r\n",
		  "400 " },
		/* No chunked bodies here; a body over 1 MiB. */
		{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
		  "chunked\r\n\r\n0\r\n\r\n",
		  "501 " },
		{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
		  "999999999999\r\n\r\n",
		  "413 " },
	};

	expect_refusals(bad, sizeof(bad) / sizeof(bad[0]));
}

/* The smuggling case itself: with two Content-Length lines, the last one
 * winning would turn the next request into body, or a body into the next
 * request. One 400, nothing else answered. */
Test(examples, http_server_refuses_conflicting_content_lengths, .timeout = 60.0)
{
	static const char *const req[] = {
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
		"Content-Length: 36\r\n\r\n"
		"GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 36\r\n"
		"Content-Length: 0\r\n\r\n"
		"GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n",
	};
	char buf[4096];
	size_t i;
	int b;

	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b };
		struct server s = start_ex("http_server", &o);

		for (i = 0; i < 2; i++) {
			int fd = dial(s.port);

			exchange(fd, req[i], buf, sizeof(buf), 0);
			cr_assert_eq(
				strncmp(buf, "HTTP/1.1 400 Bad Request", 24), 0,
				"%s: %zu: %s", backend_names[b], i, buf);
			cr_assert_eq(count(buf, "HTTP/1.1 "), 1, "%s: %zu: %s",
				     backend_names[b], i, buf);
			close(fd);
		}
		stop(s);
	}
}

/* RFC 9110 8.6 lets a recipient take repeated identical values as one. */
Test(examples, http_server_takes_identical_content_lengths_as_one,
     .timeout = 60.0)
{
	char buf[4096];
	int b;

	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b };
		struct server s = start_ex("http_server", &o);
		int fd = dial(s.port);

		exchange(fd,
			 "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
			 "content-length: 4\r\n\r\nbody"
			 "GET / HTTP/1.1\r\nHost: a\r\nConnection: "
			 "close\r\n\r\n",
			 buf, sizeof(buf), 0);
		cr_assert_eq(count(buf, "HTTP/1.1 "), 2, "%s: %s",
			     backend_names[b], buf);
		cr_assert_eq(strncmp(buf, "HTTP/1.1 405 ", 13), 0, "%s", buf);
		cr_assert_not_null(strstr(buf, "HTTP/1.1 200 OK"), "%s", buf);
		close(fd);
		stop(s);
	}
}

/* A head that does not end within 8 KiB gets 431: one long line, or many
 * short ones. */
Test(examples, http_server_answers_431_to_a_head_over_8_kib, .timeout = 60.0)
{
	static char big[12000], lines[12000];
	char buf[4096];
	size_t i;
	int b;

	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	strcpy(lines, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = strlen(lines); i + 10 < sizeof(lines); i += 9)
		memcpy(lines + i, "X: 1234\r\n", 9);
	lines[i] = '\0';
	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b };
		struct server s = start_ex("http_server", &o);
		int fd = dial(s.port);

		exchange(fd, big, buf, sizeof(buf), 0);
		cr_assert_eq(strncmp(buf, "HTTP/1.1 431 ", 13), 0, "%s: %s",
			     backend_names[b], buf);
		close(fd);
		fd = dial(s.port);
		exchange(fd, lines, buf, sizeof(buf), 0);
		cr_assert_eq(strncmp(buf, "HTTP/1.1 431 ", 13), 0, "%s: %s",
			     backend_names[b], buf);
		close(fd);
		stop(s);
	}
}

/* A client that opens a connection and sends nothing, or sends its head
 * a byte at a time and never finishes it, is cut off at the head
 * timeout: a trickle does not move the deadline. The trickling client
 * dials only after the silent one was measured, so that its whole head
 * timeout is left for the trickle. */
#define HEAD_MS 500
/* How long a trickling head may stay open before the test calls it
 * kept alive: far past HEAD_MS, for a loaded machine. */
#define HEAD_GIVE_UP_MS (10 * HEAD_MS)

Test(examples, http_server_closes_connections_whose_head_is_late,
     .timeout = 60.0)
{
	static const char *const args[] = { "--head-timeout", T_STR(HEAD_MS),
					    NULL };
	static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	int b;

	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b, .args = args };
		struct server s = start_ex("http_server", &o);
		int silent = dial(s.port), slow;
		int64_t t0, ms;
		size_t i;

		ms = ms_until_closed(silent, 5000);
		cr_assert_geq(ms, HEAD_MS * 9 / 10, "%s: closed after %lld ms",
			      backend_names[b], (long long)ms);
		close(silent);
		/* A byte every 50 ms, until the server closes; one that
		 * moved the deadline on each byte never would. */
		t0 = br_now_ns();
		slow = dial(s.port);
		for (i = 0;; i++) {
			char c = i < sizeof(head) - 1 ? head[i] : 'x';

			if (send(slow, &c, 1, MSG_NOSIGNAL) != 1 ||
			    ms_until_closed(slow, 50) >= 0)
				break;
			cr_assert_lt(t_elapsed_ms(t0), HEAD_GIVE_UP_MS,
				     "%s: a trickling head is still open "
				     "after %zu bytes",
				     backend_names[b], i + 1);
		}
		ms = t_elapsed_ms(t0);
		cr_assert_geq(i, 5, "%s: closed after %zu bytes",
			      backend_names[b], i);
		cr_assert(ms >= HEAD_MS * 9 / 10 && ms < HEAD_GIVE_UP_MS,
			  "%s: the trickling head was closed %lld ms after "
			  "its dial",
			  backend_names[b], (long long)ms);
		close(slow);
		stop(s);
	}
}

/* A kept-alive connection waits up to the idle timeout for its next
 * request, even past the head timeout, and is closed after it. */
Test(examples, http_server_closes_idle_connections_after_the_idle_timeout,
     .timeout = 60.0)
{
	static const char *const args[] = { "--head-timeout", "300",
					    "--idle-timeout", "1500", NULL };
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	char buf[4096];
	int b;

	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b, .args = args };
		struct server s = start_ex("http_server", &o);
		int fd = dial(s.port);
		int64_t t0, ms;

		exchange(fd, req, buf, sizeof(buf), strlen(ok_answer));
		cr_assert_str_eq(buf, ok_answer, "%s", backend_names[b]);
		/* Past the head timeout, within the idle one: served. */
		usleep(700 * 1000);
		exchange(fd, req, buf, sizeof(buf), strlen(ok_answer));
		cr_assert_str_eq(buf, ok_answer, "%s", backend_names[b]);
		t0 = br_now_ns();
		ms = ms_until_closed(fd, 6000);
		cr_assert_geq(ms, 0, "%s: an idle connection is still open",
			      backend_names[b]);
		cr_assert_geq(t_elapsed_ms(t0), 1400,
			      "%s: closed after %lld ms", backend_names[b],
			      (long long)ms);
		close(fd);
		stop(s);
	}
}

/*
 * At the descriptor limit, connections that sit idle must not lock new
 * clients out: they time out, the acceptor (backing off meanwhile, and
 * logging once per burst, not once per try) takes the waiting ones, and
 * a new client is served. The server runs with RLIMIT_NOFILE at 40 and
 * 60 connections are opened, each sending one request, then nothing.
 */
Test(examples, http_server_serves_new_clients_at_the_descriptor_limit,
     .timeout = 90.0)
{
	static const char *const args[] = { "--head-timeout", "1000",
					    "--idle-timeout", "1000", NULL };
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	enum {
		IDLE = 60
	};
	static char err[65536];
	int b, i;

	for (b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b,
					 .args = args,
					 .nofile = 40,
					 .capture_stderr = 1 };
		struct server s = start_ex("http_server", &o);
		int idle[IDLE], fd;
		char buf[4096];
		size_t lines;

		for (i = 0; i < IDLE; i++) {
			idle[i] = dial(s.port);
			cr_assert_eq(send(idle[i], req, strlen(req),
					  MSG_NOSIGNAL),
				     (ssize_t)strlen(req));
		}
		usleep(300 * 1000); /* the limit is reached, accepts fail */
		fd = dial(s.port);
		exchange(fd,
			 "GET / HTTP/1.1\r\nHost: a\r\nConnection: "
			 "close\r\n\r\n",
			 buf, sizeof(buf), 0);
		cr_assert_eq(strncmp(buf, "HTTP/1.1 200 OK", 15), 0,
			     "%s: the new client got: %s", backend_names[b],
			     buf);
		close(fd);
		for (i = 0; i < IDLE; i++)
			close(idle[i]);
		stop(s);
		server_stderr(s, err, sizeof(err));
		lines = count(err, "accept");
		cr_assert_geq(lines, 1, "%s: no accept failed: %s",
			      backend_names[b], err);
		cr_assert_leq(lines, 8, "%s: %zu lines about accept:\n%.2000s",
			      backend_names[b], lines, err);
	}
}

Test(examples, echo_server_echoes_and_stops_on_sigterm, .timeout = 30.0)
{
	struct server s = start("echo_server");
	int fd[8], i;
	char buf[256];

	for (i = 0; i < 8; i++)
		fd[i] = dial(s.port);
	for (i = 0; i < 8; i++) {
		char msg[64];

		snprintf(msg, sizeof(msg), "message %d", i);
		exchange(fd[i], msg, buf, sizeof(buf), strlen(msg));
		cr_assert_str_eq(buf, msg);
	}
	/* Stopped with connections still open: it must still exit 0. */
	stop(s);
	for (i = 0; i < 8; i++)
		close(fd[i]);
}

/* build/<variant>/examples/<name>, next to this test's directory; skips
 * the test if it is not built. */
static const char *example_path(const char *name)
{
	static char exe[4096], path[4200];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	cr_assert_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0'; /* .../tests */
	snprintf(path, sizeof(path), "%s/../examples/%s", exe, name);
	if (access(path, X_OK) != 0)
		cr_skip_test("%s is not built (make examples)", path);
	return path;
}

/* The subprocess example, run through br_exec itself. */
Test(examples, subprocess_prints_the_pipeline_and_the_gathered_commands,
     .timeout = 30.0)
{
	const char *path = example_path("subprocess");
	br_runtime *rt = t_runtime(1, 0);
	br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
	const char *argv[] = { path, NULL };
	const char *out;
	char *text;
	size_t len;
	br_future *f;

	f = br_exec(rt, argv, &o);
	t_await_value(f);
	cr_assert_eq(br_exec_exit_code(f), 0);
	out = br_future_bytes(f, &len);
	text = strndup(out, len);
	cr_assert_not_null(text);
	cr_assert(strstr(text, "3 braid\n"), "%s", text);
	cr_assert(strstr(text, "    42\n"), "%s", text);
	cr_assert(strstr(text, "exit 3 (exit 3):\n    to stderr\n"), "%s",
		  text);
	/* The timed-out shell's group was killed, its output kept. */
	cr_assert(strstr(text, "sleep 5 & wait: "), "%s", text);
	cr_assert(strstr(text, "process group was killed"), "%s", text);
	cr_assert(strstr(text, "printed before that: working\n"), "%s", text);
	free(text);
	br_future_release(f);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* The README's recipes (examples/recipes)                             */
/* ------------------------------------------------------------------ */

/* The line server answers each line in capitals, tells a client that
 * sends half a line past the deadline "timeout" and drops it, and stops
 * on SIGTERM with a client connected. */
Test(examples, recipe_line_server_has_a_deadline_per_request, .timeout = 60.0)
{
	static const char *const args[] = { "0", "300", NULL };

	for (int b = 0; b < BACKENDS; b++) {
		struct server_opts o = { .no_uring = b,
					 .args = args,
					 .bare = 1 };
		struct server s = start_ex("recipes/upper", &o);
		int fd = dial(s.port), slow;
		int64_t t0;
		char buf[256];

		exchange(fd, "hello\nworld\n", buf, sizeof(buf), 12);
		cr_assert_str_eq(buf, "HELLO\nWORLD\n", "%s", backend_names[b]);
		/* The server's deadline starts after the connection does:
		 * it cannot end the request sooner than 300 ms from t0. */
		t0 = br_now_ns();
		slow = dial(s.port);
		exchange(slow, "half a li", buf, sizeof(buf), 0);
		cr_assert_str_eq(buf, "timeout\n", "%s", backend_names[b]);
		cr_assert_geq(t_elapsed_ms(t0), 300, "%s", backend_names[b]);
		close(slow);
		/* fd's own deadline has passed meanwhile: a new client. */
		exchange(fd, "", buf, sizeof(buf), 0);
		cr_assert_str_eq(buf, "timeout\n", "%s", backend_names[b]);
		close(fd);
		fd = dial(s.port);
		exchange(fd, "again\n", buf, sizeof(buf), 6);
		cr_assert_str_eq(buf, "AGAIN\n", "%s", backend_names[b]);
		/* Stopped with a client connected: it exits 0, and the
		 * client sees the end of the stream (after a "timeout" if
		 * a slow machine let its deadline pass first). */
		stop(s);
		exchange(fd, "", buf, sizeof(buf), 0);
		cr_assert(!strcmp(buf, "") || !strcmp(buf, "timeout\n"),
			  "%s: %s", backend_names[b], buf);
		close(fd);
	}
}

/* Run recipe argv[0] with argv[1..]; its exit code, and its stdout,
 * NUL-terminated, in *text (to free). */
static int run_recipe(br_runtime *rt, const char **argv, int no_uring,
		      char **text)
{
	static const char *const keep[] = { "PATH",	    "ASAN_OPTIONS",
					    "LSAN_OPTIONS", "UBSAN_OPTIONS",
					    "TSAN_OPTIONS", NULL };
	const char *envp[] = { "BRAID_NO_URING=1", NULL };
	br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
			   .flags = BR_EXEC_CLEAN_ENV,
			   .env_keep = keep,
			   .envp = no_uring ? envp : NULL };
	const char *out;
	size_t len;
	br_future *f;
	int code;

	argv[0] = example_path(argv[0]);
	f = br_exec(rt, argv, &o);
	t_await_value(f);
	code = br_exec_exit_code(f);
	out = br_future_bytes(f, &len);
	*text = strndup(out ? out : "", len);
	cr_assert_not_null(*text);
	br_future_release(f);
	return code;
}

/* Processes of anyone's whose command line is exactly argv: the killed
 * group's must all be gone (a zombie has no command line). */
static int count_processes(const char *const *argv)
{
	char want[256], buf[256], path[300];
	size_t wlen = 0;
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;

	cr_assert_not_null(d);
	for (int i = 0; argv[i]; i++) {
		size_t l = strlen(argv[i]) + 1;

		cr_assert_lt(wlen + l, sizeof(want));
		memcpy(want + wlen, argv[i], l);
		wlen += l;
	}
	while ((e = readdir(d))) {
		ssize_t got;
		int fd;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		got = read(fd, buf, sizeof(buf));
		close(fd);
		n += got == (ssize_t)wlen && !memcmp(buf, want, wlen);
	}
	closedir(d);
	return n;
}

/* The command runner kills a shell at its time limit with what it left
 * running in the background, keeps what it printed, and reports every
 * command in order. */
Test(examples, recipe_command_runner_kills_whole_groups_at_the_limit,
     .timeout = 60.0)
{
	br_runtime *rt = t_runtime(1, 0);
	char cmd[128], s3[32], s5[32], want[512];

	/* Durations of this process's own, so that the processes found
	 * below can only be this test's. */
	snprintf(s3, sizeof(s3), "30.%d", (int)getpid());
	snprintf(s5, sizeof(s5), "50.%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "echo started; sleep %s & sleep %s", s3, s5);
	snprintf(want, sizeof(want),
		 "$ %s\nstarted\n[killed at the time limit]\n"
		 "$ echo out; echo err >&2\nout\nerr\n[exit 0]\n"
		 "$ exit 3\n[exit 3]\n",
		 cmd);
	for (int b = 0; b < BACKENDS; b++) {
		const char *argv[] = {
			"recipes/runner",	  "1000",   cmd,
			"echo out; echo err >&2", "exit 3", NULL
		};
		const char *bg[] = { "sleep", s3, NULL },
			   *fg[] = { "sleep", s5, NULL };
		char *text;
		int64_t t0 = br_now_ns();

		cr_assert_eq(run_recipe(rt, argv, b, &text), 1, "%s",
			     backend_names[b]);
		cr_assert_str_eq(text, want, "%s", backend_names[b]);
		free(text);
		/* Nothing left behind: give the killed a moment to go (a
		 * sleep that was not killed lasts much longer). */
		while ((count_processes(bg) || count_processes(fg)) &&
		       t_elapsed_ms(t0) < 10000)
			usleep(10 * 1000);
		cr_assert_eq(count_processes(bg), 0, "%s", backend_names[b]);
		cr_assert_eq(count_processes(fg), 0, "%s", backend_names[b]);
	}
	br_runtime_free(rt);
}

/* A file of len bytes of data at dir/name. */
static void put_file(const char *dir, const char *name, const char *data)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(br_write_file(path, data, strlen(data), 0644),
		     (ssize_t)strlen(data), "%s", path);
}

/* The file walker hashes every regular file in name order, in the pool,
 * and matches FNV-1a's published test vectors. */
Test(examples, recipe_file_walker_hashes_each_file_in_the_pool, .timeout = 60.0)
{
	br_runtime *rt = t_runtime(1, 0);
	char dir[] = "/tmp/braid-hashwalk-XXXXXX", sub[64], link[64];
	char want[1024], *text;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/b", dir);
	cr_assert_eq(mkdir(sub, 0755), 0);
	put_file(dir, "a", "");
	put_file(dir, "b/c", "a");
	put_file(dir, "b/d", "foobar");
	put_file(dir, "e", "chongo was here!\n");
	/* Neither a link nor what is not a regular file is hashed. */
	snprintf(link, sizeof(link), "%s/l", dir);
	cr_assert_eq(symlink("a", link), 0);
	snprintf(want, sizeof(want),
		 "cbf29ce484222325  %s/a\n"
		 "af63dc4c8601ec8c  %s/b/c\n"
		 "85944171f73967e8  %s/b/d\n"
		 "46810940eff5f915  %s/e\n",
		 dir, dir, dir, dir);
	for (int b = 0; b < BACKENDS; b++) {
		const char *argv[] = { "recipes/hashwalk", dir, NULL };

		cr_assert_eq(run_recipe(rt, argv, b, &text), 0, "%s",
			     backend_names[b]);
		cr_assert_str_eq(text, want, "%s", backend_names[b]);
		free(text);
	}
	unlink(link);
	snprintf(link, sizeof(link), "%s/a", dir);
	unlink(link);
	snprintf(link, sizeof(link), "%s/e", dir);
	unlink(link);
	snprintf(link, sizeof(link), "%s/b/c", dir);
	unlink(link);
	snprintf(link, sizeof(link), "%s/b/d", dir);
	unlink(link);
	rmdir(sub);
	rmdir(dir);
	br_runtime_free(rt);
}

/* The process-pool example counts the primes below a million right (78,498)
 * and reports each worker process. */
Test(examples, parallel_primes_counts_right_on_every_worker, .timeout = 60.0)
{
	const char *path = example_path("parallel_primes");
	br_runtime *rt = t_runtime(1, 0);
	br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
	const char *argv[] = { path,	"--limit",   "1000000", "--chunk",
			       "10000", "--workers", "2",	NULL };
	const char *out, *p;
	char *text;
	size_t len;
	int workers = 0;
	br_future *f;

	f = br_exec(rt, argv, &o);
	t_await_value(f);
	out = br_future_bytes(f, &len);
	text = strndup(out ? out : "", len);
	cr_assert_eq(br_exec_exit_code(f), 0, "%s", text);
	cr_assert(strstr(text, "\n78498 primes in "), "%s", text);
	for (p = text; (p = strstr(p, "  worker ")); p++)
		workers++;
	cr_assert_eq(workers, 2, "%s", text);
	free(text);
	br_future_release(f);
	br_runtime_free(rt);
}

/* Without mpirun, the MPI example is an ordinary program: its pool is
 * local, and it counts right (tests.mk's test-mpi runs it on 3 ranks). It
 * is built only where MPI is, and the test skips elsewhere. */
Test(examples, cluster_primes_without_mpirun_counts_on_a_local_pool,
     .timeout = 60.0)
{
	const char *path = example_path("cluster_primes");
	br_runtime *rt = t_runtime(1, 0);
	br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE };
	const char *argv[] = { path,	"--limit",   "1000000", "--chunk",
			       "10000", "--workers", "2",	NULL };
	const char *out;
	char *text;
	size_t len;
	br_future *f;

	f = br_exec(rt, argv, &o);
	t_await_value(f);
	out = br_future_bytes(f, &len);
	text = strndup(out ? out : "", len);
	cr_assert_eq(br_exec_exit_code(f), 0, "%s", text);
	cr_assert(strstr(text, "\ncheck: 3 jobs and a task agree: 3245 "
			       "primes below 30000\n"),
		  "%s", text);
	cr_assert(strstr(text, "\n78498 primes below 1000000 in "), "%s", text);
	cr_assert(strstr(text, "\n  rank 0 ("), "%s", text);
	cr_assert(strstr(text, "\n1 rank took part\n"), "%s", text);
	free(text);
	br_future_release(f);
	br_runtime_free(rt);
}

/* Every example, as its users start it; the last needs MPI and is left
 * out where it is not built (see examples_built). */
static const char *const examples[] = { "asyncio_tour", "echo_server",
					"http_server",	"parallel_primes",
					"pipeline",	"subprocess",
					"trace_tour",	"cluster_primes" };

/* How many of examples[] to run: all, or all but the MPI one when there
 * was no MPI to build it with. */
static size_t examples_built(void)
{
	static char exe[4096], path[4200];
	size_t n = sizeof(examples) / sizeof(examples[0]);
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	cr_assert_gt(len, 0);
	exe[len] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(path, sizeof(path), "%s/../examples/%s", exe, examples[n - 1]);
	return access(path, X_OK) == 0 ? n : n - 1;
}

/* Run example name with one argument; return its exit code and what it
 * wrote to stdout (keep 1) or stderr (keep 2), the other going to
 * /dev/null. */
static int run_example(br_runtime *rt, const char *name, const char *arg,
		       int keep, char **text)
{
	const char *argv[] = { example_path(name), arg, NULL };
	br_exec_opts o = {
		.stdout_mode = keep == 1 ? BR_EXEC_CAPTURE : BR_EXEC_NULL,
		.stderr_mode = keep == 2 ? BR_EXEC_CAPTURE : BR_EXEC_NULL,
	};
	const char *out;
	size_t len;
	br_future *f;
	int code;

	f = br_exec(rt, argv, &o);
	t_await_value(f);
	code = br_exec_exit_code(f);
	out = br_future_bytes(f, &len);
	*text = strndup(out ? out : "", len);
	cr_assert_not_null(*text);
	br_future_release(f);
	return code;
}

Test(examples, every_example_prints_its_usage_on_stdout_for_help,
     .timeout = 30.0)
{
	br_runtime *rt = t_runtime(1, 0);
	char *text;

	for (size_t i = 0; i < examples_built(); i++) {
		cr_assert_eq(run_example(rt, examples[i], "--help", 1, &text),
			     0, "%s --help", examples[i]);
		cr_assert(!strncmp(text, "usage: ", 7), "%s --help:\n%s",
			  examples[i], text);
		free(text);
	}
	br_runtime_free(rt);
}

Test(examples, every_example_refuses_an_unknown_option_with_status_2,
     .timeout = 30.0)
{
	br_runtime *rt = t_runtime(1, 0);
	char *text;

	for (size_t i = 0; i < examples_built(); i++) {
		/* The usage goes to stderr, and nothing to stdout: the
		 * program did not start its work. */
		cr_assert_eq(run_example(rt, examples[i], "--no-such-option", 2,
					 &text),
			     2, "%s --no-such-option", examples[i]);
		cr_assert(strstr(text, "usage: "), "%s --no-such-option:\n%s",
			  examples[i], text);
		free(text);
		cr_assert_eq(run_example(rt, examples[i], "--no-such-option", 1,
					 &text),
			     2);
		cr_assert_str_eq(text, "", "%s wrote to stdout", examples[i]);
		free(text);
	}
	br_runtime_free(rt);
}
