/* SPDX-License-Identifier: MIT */
/*
 * test_examples.c - the example servers as their users run them: started
 * as processes on 127.0.0.1 with a free port, spoken to over TCP, and
 * stopped with SIGTERM, after which they must exit 0. The HTTP server
 * must answer pipelined requests in order with correct lengths, and meet
 * malformed requests with 400 and a closed connection, never a crash.
 * The subprocess example must print its pipeline and gathered results.
 * Every example prints its usage on stdout and exits 0 for --help, and
 * on stderr with status 2 for an option it does not know.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

struct server {
	pid_t pid;
	int port;
};

/* Start build/<variant>/examples/<name> next to this test's directory. */
static struct server start(const char *name)
{
	static char exe[4096], path[4200];
	char line[128];
	struct server s = { 0 };
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int out[2];
	FILE *f;

	cr_assert_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0'; /* .../tests */
	snprintf(path, sizeof(path), "%s/../examples/%s", exe, name);
	if (access(path, X_OK) != 0)
		cr_skip_test("%s is not built (make examples)", path);
	cr_assert_eq(pipe(out), 0);
	s.pid = fork();
	cr_assert_geq(s.pid, 0);
	if (s.pid == 0) {
		/* A failed assertion ends this test's process before stop():
		 * the server then goes with it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		execl(path, name, "--port", "0", "--workers", "2",
		      (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	f = fdopen(out[0], "r");
	cr_assert_not_null(fgets(line, sizeof(line), f), "%s said nothing",
			   name);
	cr_assert_eq(sscanf(line, "listening on 127.0.0.1:%d", &s.port), 1,
		     "%s", line);
	fclose(f);
	return s;
}

static void stop(struct server s)
{
	int status;

	cr_assert_eq(kill(s.pid, SIGTERM), 0);
	cr_assert_eq(waitpid(s.pid, &status, 0), s.pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "server status %#x", status);
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

Test(examples, http_server_answers_pipelined_requests_in_order, .timeout = 30.0)
{
	struct server s = start("http_server");
	int fd = dial(s.port);
	char buf[4096];
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: "
				 "text/plain\r\nContent-Length: 5\r\n\r\nhello";
	static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Type: "
				 "text/plain\r\nContent-Length: 9\r\n\r\n"
				 "Not Found";
	char want[1024];

	snprintf(want, sizeof(want), "%s%s%s", ok, nf, ok);
	exchange(fd,
		 "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
		 "GET /missing HTTP/1.1\r\nHost: a\r\n\r\n"
		 "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"
		 "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
		 buf, sizeof(buf), 0);
	/* 200, 404, 405 for the POST (its body skipped), then 200 with
	 * Connection: close, after which the server closed. */
	cr_assert_eq(count(buf, "HTTP/1.1 "), 4, "%s", buf);
	cr_assert_eq(strncmp(buf, want, strlen(ok) + strlen(nf)), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "405 Method Not Allowed"), "%s", buf);
	cr_assert_not_null(strstr(buf, "Connection: close\r\n"), "%s", buf);
	close(fd);
	stop(s);
}

Test(examples, http_server_assembles_requests_that_arrive_in_pieces,
     .timeout = 30.0)
{
	static const char req[] =
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
		"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
	struct server s = start("http_server");
	int fd = dial(s.port), one = 1;
	const char *p;
	char buf[4096];
	size_t i;

	/* Byte by byte, each its own segment: heads, a body and the next
	 * head are cut at every possible place. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (i = 0; i + 1 < sizeof(req); i++) {
		cr_assert_eq(send(fd, req + i, 1, MSG_NOSIGNAL), 1);
		usleep(200);
	}
	exchange(fd, "", buf, sizeof(buf), 0);
	cr_assert_eq(count(buf, "HTTP/1.1 "), 4, "%s", buf);
	p = strstr(buf, "200 OK");
	cr_assert_not_null(p, "%s", buf);
	p = strstr(p, "404 Not Found");
	cr_assert_not_null(p, "%s", buf);
	p = strstr(p, "405 Method Not Allowed");
	cr_assert_not_null(p, "%s", buf);
	p = strstr(p, "200 OK");
	cr_assert_not_null(p, "%s", buf);
	cr_assert_not_null(strstr(p, "Connection: close\r\n"), "%s", buf);
	close(fd);
	stop(s);
}

Test(examples, http_server_closes_malformed_requests_with_400, .timeout = 30.0)
{
	static const char *const bad[] = {
		"garbage\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET noslash HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: x1\r\n\r\n",
		"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"G\x01T / HTTP/1.1\r\n\r\n",
	};
	struct server s = start("http_server");
	static char big[12000];
	char buf[4096];
	size_t i;
	int fd;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = dial(s.port);
		exchange(fd, bad[i], buf, sizeof(buf), 0);
		cr_assert_eq(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26),
			     0, "request %zu got: %s", i, buf);
		cr_assert_not_null(strstr(buf, "Connection: close"));
		close(fd);
	}
	/* A head that never ends within 8 KiB. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	fd = dial(s.port);
	exchange(fd, big, buf, sizeof(buf), 0);
	cr_assert_eq(strncmp(buf, "HTTP/1.1 400", 12), 0, "%s", buf);
	close(fd);
	/* Still serving after all that. */
	fd = dial(s.port);
	exchange(fd, "GET / HTTP/1.0\r\n\r\n", buf, sizeof(buf), 0);
	cr_assert_eq(strncmp(buf, "HTTP/1.1 200 OK", 15), 0, "%s", buf);
	close(fd);
	stop(s);
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

/* Every example, as its users start it. */
static const char *const examples[] = { "asyncio_tour", "echo_server",
					"http_server",	"parallel_primes",
					"pipeline",	"subprocess",
					"trace_tour" };

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

	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
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

	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
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
