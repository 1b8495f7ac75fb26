/* SPDX-License-Identifier: MIT */
/*
 * test_io_net.c - sockets through the loops: TCP, Unix and UDP round
 * trips, the errors a peer causes (reset, refused, closed), name
 * resolution, deadlines, and many concurrent connections. Servers listen
 * on 127.0.0.1 (or an abstract Unix name) and stop by themselves.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(net, .init = t_leak_init, .fini = t_leak_fini);

static void await_ok(br_future *f)
{
	const char *msg = t_await_value(f);

	cr_assert_null(msg, "%s", msg);
	br_future_release(f);
}

/* An echo server task on listener lfd serving `conns` connections, each
 * in its own task, then returning. */
struct echo_srv {
	br_runtime *rt;
	int lfd;
	int conns;
	int reader; /* connections receive through a br_reader */
};

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[512];
	ssize_t n;

	while ((n = br_recv(fd, buf, sizeof(buf), 0)) > 0)
		if (br_send_all(fd, buf, (size_t)n, 0) != n)
			break;
	br_close(fd);
	return n < 0 && n != -ECONNRESET ? (void *)"echo recv failed" : NULL;
}

/* echo_conn through a reader: lent buffers from the worker's group. */
static void *echo_conn_reader(void *arg)
{
	int fd = (int)(intptr_t)arg;
	const void *data;
	br_reader *r;
	ssize_t n;

	T_REQUIRE(br_reader_new(&r, fd) == 0);
	while ((n = br_reader_recv(r, &data)) > 0)
		if (br_send_all(fd, data, (size_t)n, 0) != n)
			break;
	br_reader_free(r);
	br_close(fd);
	return n < 0 && n != -ECONNRESET ? (void *)"echo recv failed" : NULL;
}

static void *echo_srv(void *arg)
{
	struct echo_srv *s = arg;
	br_future **fs = calloc((size_t)s->conns, sizeof(*fs));
	int i, err;

	T_REQUIRE(fs);
	for (i = 0; i < s->conns; i++) {
		int fd = br_accept(s->lfd, NULL, NULL, 0);

		T_REQUIRE(fd >= 0);
		fs[i] = br_spawn(s->rt,
				 s->reader ? echo_conn_reader : echo_conn,
				 (void *)(intptr_t)fd);
	}
	err = br_gather(fs, (size_t)s->conns, NULL);
	for (i = 0; i < s->conns; i++)
		br_future_release(fs[i]);
	free(fs);
	T_REQUIRE(err == 0);
	return NULL;
}

struct client {
	const char *host;
	int port;
	int rounds;
};

static void *echo_client(void *arg)
{
	struct client *c = arg;
	char out[64], in[64];
	int fd = br_tcp_connect(c->host, (uint16_t)c->port), i;
	int fl;

	T_REQUIRE(fd >= 0);
	fl = fcntl(fd, F_GETFD);
	T_REQUIRE(fl & FD_CLOEXEC);
	for (i = 0; i < c->rounds; i++) {
		size_t got = 0;

		memset(out, 'a' + i % 26, sizeof(out));
		T_REQUIRE(br_send_all(fd, out, sizeof(out), 0) == sizeof(out));
		while (got < sizeof(in)) {
			ssize_t n = br_recv(fd, in + got, sizeof(in) - got, 0);

			T_REQUIRE(n > 0);
			got += (size_t)n;
		}
		T_REQUIRE(memcmp(in, out, sizeof(in)) == 0);
	}
	T_REQUIRE(br_shutdown(fd, SHUT_WR) == 0);
	T_REQUIRE(br_recv(fd, in, sizeof(in), 0) == 0);
	T_REQUIRE(br_close(fd) == 0);
	return NULL;
}

static void tcp_echo(unsigned workers, unsigned flags, const char *host,
		     int nclients, int rounds)
{
	br_runtime *rt = t_runtime(workers, flags);
	struct echo_srv s = { .rt = rt, .conns = nclients };
	struct client c = { .host = host, .rounds = rounds };
	br_future *srv, **cl = calloc((size_t)nclients, sizeof(*cl));
	int i;

	cr_assert_not_null(cl);
	s.lfd = br_tcp_listen("127.0.0.1", 0, 0);
	cr_assert_geq(s.lfd, 0, "listen: %s", br_strerror(s.lfd));
	c.port = br_local_port(s.lfd);
	cr_assert_gt(c.port, 0);
	srv = br_spawn(rt, echo_srv, &s);
	for (i = 0; i < nclients; i++)
		cl[i] = br_spawn(rt, echo_client, &c);
	for (i = 0; i < nclients; i++)
		await_ok(cl[i]);
	await_ok(srv);
	close(s.lfd);
	free(cl);
	br_runtime_free(rt);
}

Test(net, tcp_echo_round_trips_over_loopback, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		tcp_echo(2, flags, "127.0.0.1", 8, 200);
	}
}

Test(net, tcp_connect_resolves_names_off_the_loop, .timeout = 30.0)
{
	tcp_echo(1, 0, "localhost", 2, 10);
}

static void *unknown_name(void *arg)
{
	int fd = br_tcp_connect("no-such-host.invalid", 80);

	(void)arg;
	T_REQUIRE(fd == -ENOENT || fd == -EAGAIN);
	T_REQUIRE(br_tcp_connect(NULL, 80) == -EINVAL);
	return NULL;
}

Test(net, an_unknown_name_gives_enoent, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		await_ok(br_spawn(rt, unknown_name, NULL));
		br_runtime_free(rt);
	}
}

static void *refused(void *arg)
{
	int port = *(int *)arg;
	int fd = br_tcp_connect("127.0.0.1", (uint16_t)port);

	T_REQUIRE(fd == -ECONNREFUSED);
	return NULL;
}

Test(net, connecting_to_a_closed_port_gives_econnrefused, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int lfd = br_tcp_listen("127.0.0.1", 0, 0);
		int port = br_local_port(lfd);

		close(lfd); /* nobody listens there now */
		await_ok(br_spawn(rt, refused, &port));
		br_runtime_free(rt);
	}
}

struct pair {
	int a, b;
};

static void *reset_peer(void *arg)
{
	int fd = *(int *)arg;
	char buf[16];
	ssize_t n;

	n = br_recv(fd, buf, sizeof(buf), 0);
	T_REQUIRE(n == -ECONNRESET);
	/* Sending on a reset socket: EPIPE (and no SIGPIPE). */
	n = br_send(fd, "x", 1, 0);
	T_REQUIRE(n == -EPIPE || n == -ECONNRESET);
	br_close(fd);
	return NULL;
}

static struct pair tcp_pair(void)
{
	int lfd = br_tcp_listen("127.0.0.1", 0, 0);
	struct pair p;

	cr_assert_geq(lfd, 0);
	p.a = br_tcp_connect("127.0.0.1", (uint16_t)br_local_port(lfd));
	cr_assert_geq(p.a, 0);
	p.b = br_accept(lfd, NULL, NULL, 0);
	cr_assert_geq(p.b, 0);
	close(lfd);
	return p;
}

/* In each mode, fn(&fd) as a task, on a TCP connection whose peer
 * closed it with a zero linger: fd's next receive sees RST. fn closes fd. */
static void after_peer_reset(void *(*fn)(void *))
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct pair p = tcp_pair();
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		cr_assert_eq(setsockopt(p.b, SOL_SOCKET, SO_LINGER, &lg,
					sizeof(lg)),
			     0);
		cr_assert_eq(br_close(p.b), 0);
		await_ok(br_spawn(rt, fn, &p.a));
		br_runtime_free(rt);
	}
}

Test(net, a_peer_reset_gives_econnreset_then_epipe, .timeout = 30.0)
{
	after_peer_reset(reset_peer);
}

static void *accept_with_deadline(void *arg)
{
	int lfd = *(int *)arg;
	int64_t t0 = br_now_ns();
	int fd = br_accept_timeout(lfd, NULL, NULL, 0, 40);

	T_REQUIRE(fd == -ETIMEDOUT);
	T_REQUIRE(br_now_ns() - t0 >= 40 * T_NS_PER_MS);
	return NULL;
}

Test(net, accept_timeout_returns_etimedout, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int lfd = br_tcp_listen("127.0.0.1", 0, 0);

		await_ok(br_spawn(rt, accept_with_deadline, &lfd));
		close(lfd);
		br_runtime_free(rt);
	}
}

static void *unix_round_trip(void *arg)
{
	const char *path = arg;
	int lfd = br_unix_listen(path, 0), c, s;
	char buf[8];

	T_REQUIRE(lfd >= 0);
	c = br_unix_connect(path);
	T_REQUIRE(c >= 0);
	s = br_accept(lfd, NULL, NULL, 0);
	T_REQUIRE(s >= 0);
	T_REQUIRE(br_send(c, "unix", 4, 0) == 4);
	T_REQUIRE(br_recv(s, buf, sizeof(buf), 0) == 4);
	T_REQUIRE(memcmp(buf, "unix", 4) == 0);
	br_close(c);
	T_REQUIRE(br_recv(s, buf, sizeof(buf), 0) == 0);
	br_close(s);
	br_close(lfd);
	T_REQUIRE(br_unix_connect("") == -EINVAL);
	return NULL;
}

Test(net, unix_sockets_by_path_and_abstract_name, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		char path[64], abs[64];

		snprintf(path, sizeof(path), "/tmp/braid-test-%d.sock",
			 (int)getpid());
		snprintf(abs, sizeof(abs), "@braid-test-%d", (int)getpid());
		await_ok(br_spawn(rt, unix_round_trip, path));
		await_ok(br_spawn(rt, unix_round_trip, abs));
		unlink(path);
		br_runtime_free(rt);
	}
}

static void *udp_round_trip(void *arg)
{
	int a = br_udp_bind("127.0.0.1", 0), b = br_udp_bind("127.0.0.1", 0);
	struct sockaddr_in to = { .sin_family = AF_INET };
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	char buf[16];

	(void)arg;
	T_REQUIRE(a >= 0 && b >= 0);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)br_local_port(b));
	T_REQUIRE(br_sendto(a, "dgram", 5, 0, (struct sockaddr *)&to,
			    sizeof(to)) == 5);
	T_REQUIRE(br_recvfrom(b, buf, sizeof(buf), 0, (struct sockaddr *)&from,
			      &flen) == 5);
	T_REQUIRE(memcmp(buf, "dgram", 5) == 0);
	T_REQUIRE(flen == sizeof(struct sockaddr_in));
	T_REQUIRE(ntohs(((struct sockaddr_in *)&from)->sin_port) ==
		  br_local_port(a));
	br_close(a);
	br_close(b);
	return NULL;
}

Test(net, udp_sendto_and_recvfrom, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		await_ok(br_spawn(rt, udp_round_trip, NULL));
		br_runtime_free(rt);
	}
}

/* Many connections open at once: every one echoes its own bytes. */
static void raise_nofile(rlim_t want)
{
	struct rlimit rl;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want) {
		/* Raising the hard limit needs CAP_SYS_RESOURCE. */
		struct rlimit up = { .rlim_cur = want, .rlim_max = want };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

struct hold_client {
	int port;
	atomic_int *connected;
	int total;
};

static void *hold_client(void *arg)
{
	struct hold_client *h = arg;
	int fd = br_tcp_connect("127.0.0.1", (uint16_t)h->port);
	char out[64], in[64];
	size_t got = 0;

	T_REQUIRE(fd >= 0);
	atomic_fetch_add(h->connected, 1);
	/* Wait until every client is connected, so that all are open at
	 * once, then make one round trip. */
	while (atomic_load(h->connected) < h->total)
		T_REQUIRE(br_sleep_ms(5) == 0);
	memset(out, (char)fd, sizeof(out));
	T_REQUIRE(br_send_all(fd, out, sizeof(out), 0) == sizeof(out));
	while (got < sizeof(in)) {
		ssize_t n = br_recv(fd, in + got, sizeof(in) - got, 0);

		T_REQUIRE(n > 0);
		got += (size_t)n;
	}
	T_REQUIRE(memcmp(in, out, sizeof(in)) == 0);
	br_close(fd);
	return NULL;
}

/* The clients run in a child process with a runtime of its own, so that
 * each side needs only N descriptors. Returns the child's exit code. */
static int run_clients(int port, int n)
{
	atomic_int connected = 0;
	struct hold_client h = { .port = port,
				 .connected = &connected,
				 .total = n };
	br_config cfg = { .workers = 2 };
	br_future **cl = calloc((size_t)n, sizeof(*cl));
	br_runtime *rt;
	int i, bad = 0;

	if (!cl || br_runtime_new(&rt, &cfg) < 0)
		return 3;
	for (i = 0; i < n; i++)
		cl[i] = br_spawn(rt, hold_client, &h);
	for (i = 0; i < n; i++) {
		void *msg = NULL;

		if (br_await(cl[i], &msg) < 0 || msg) {
			if (!bad++)
				fprintf(stderr, "client %d: %s\n", i,
					msg ? (char *)msg :
					      br_future_message(cl[i]));
		}
		br_future_release(cl[i]);
	}
	br_runtime_free(rt);
	free(cl);
	return bad ? 1 : 0;
}

/* TSan keeps a shadow per fiber and runs 10,000 of them too slowly for
 * a bounded test, and cannot start threads in a child forked from its
 * multi-threaded process: it checks the same code with a tenth of the
 * connections, the clients in a second runtime of this process. */
#if defined(__SANITIZE_THREAD__)
#define NCONN 1000
#define CLIENTS_IN_PROCESS 1
#else
#define NCONN 10000
#define CLIENTS_IN_PROCESS 0
#endif

struct clients_job {
	int port, n, ret;
};

static void *clients_thread(void *arg)
{
	struct clients_job *j = arg;

	j->ret = run_clients(j->port, j->n);
	return NULL;
}

static void serve_many(int reader)
{
	enum {
		N = NCONN
	};
	br_runtime *rt;
	struct echo_srv s = { .reader = reader };
	br_future *srv;
	pid_t pid;
	int status, port;

	raise_nofile(N + 256);
	s.lfd = br_tcp_listen("127.0.0.1", 0, 4096);
	cr_assert_geq(s.lfd, 0);
	port = br_local_port(s.lfd);
	if (CLIENTS_IN_PROCESS) {
		struct clients_job j = { .port = port, .n = N };
		pthread_t th;

		rt = t_runtime(reader ? 1 : 2, 0);
		s.rt = rt;
		s.conns = N;
		srv = br_spawn(rt, echo_srv, &s);
		t_thread_start(&th, clients_thread, &j);
		await_ok(srv);
		t_thread_join(th);
		cr_assert_eq(j.ret, 0);
	} else {
		fflush(NULL);
		pid = fork(); /* before any runtime thread exists */
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			/* If this test is ended, so are its clients. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(s.lfd);
			_exit(run_clients(port, N));
		}
		/* One worker: the readers share its 512 buffers. */
		rt = t_runtime(reader ? 1 : 2, 0);
		s.rt = rt;
		s.conns = N;
		srv = br_spawn(rt, echo_srv, &s);
		await_ok(srv);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "client process status %#x", status);
	}
	close(s.lfd);
	br_runtime_free(rt);
}

Test(net, ten_thousand_concurrent_connections_are_all_served, .timeout = 120.0)
{
	serve_many(0);
}

/* Ten thousand messages at once against 512 buffers per worker: the
 * group runs dry, and every reader still gets its bytes. */
Test(net, ten_thousand_readers_are_all_served_past_the_buffers,
     .timeout = 120.0)
{
	serve_many(1);
}

/* ---- acceptors ---- */

struct acc_job {
	int lfd, n, port;
	int got;
	int cancelled;
};

static void *acc_serve(void *arg)
{
	struct acc_job *j = arg;
	br_acceptor *a;
	int i;

	T_REQUIRE(br_acceptor_new(&a, j->lfd) == 0);
	for (i = 0; i < j->n; i++) {
		int fd = br_acceptor_next(a);
		char c;

		T_REQUIRE(fd >= 0);
		T_REQUIRE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		T_REQUIRE(br_recv(fd, &c, 1, 0) == 1);
		T_REQUIRE(br_send(fd, &c, 1, 0) == 1);
		br_close(fd);
		j->got++;
		if (i % 7 == 0)
			br_yield(); /* may resume on the other worker */
	}
	br_acceptor_free(a);
	return NULL;
}

static void *acc_client(void *arg)
{
	struct acc_job *j = arg;
	int fd = br_tcp_connect("127.0.0.1", (uint16_t)j->port);
	char c = 'k';

	T_REQUIRE(fd >= 0);
	T_REQUIRE(br_send(fd, &c, 1, 0) == 1);
	T_REQUIRE(br_recv(fd, &c, 1, 0) == 1 && c == 'k');
	br_close(fd);
	return NULL;
}

Test(net, an_acceptor_serves_every_connection, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct acc_job j = { .n = 300 };
		br_future *srv, *cl[300];
		int i;

		j.lfd = br_tcp_listen("127.0.0.1", 0, 512);
		j.port = br_local_port(j.lfd);
		srv = br_spawn(rt, acc_serve, &j);
		for (i = 0; i < j.n; i++)
			cl[i] = br_spawn(rt, acc_client, &j);
		for (i = 0; i < j.n; i++)
			await_ok(cl[i]);
		await_ok(srv);
		cr_assert_eq(j.got, j.n);
		close(j.lfd);
		br_runtime_free(rt);
	}
}

static void *acc_wait_forever(void *arg)
{
	br_acceptor **a = arg;
	int fd = br_acceptor_next(*a);

	return fd == -ECANCELED ? NULL : (void *)"next was not cancelled";
}

Test(net, a_waiting_acceptor_is_cancelled_and_free_closes_queued_fds,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		int lfd = br_tcp_listen("127.0.0.1", 0, 16), c1, fds;
		br_acceptor *a;
		br_future *f;
		char c;

		cr_assert_eq(br_acceptor_new(&a, lfd), 0);
		f = br_spawn(rt, acc_wait_forever, &a);
		br_sleep_ms(30);
		cr_assert_eq(br_cancel(f), 0);
		/* next() returned -ECANCELED to it, so the task ends
		 * CANCELLED. */
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		cr_assert_eq(br_future_state(f), BR_CANCELLED);
		br_future_release(f);
		/* A connection arrives while nobody waits: the armed multishot
		 * accept takes it; freeing the acceptor must close it. */
		c1 = br_tcp_connect("127.0.0.1", (uint16_t)br_local_port(lfd));
		cr_assert_geq(c1, 0);
		br_sleep_ms(30);
		fds = t_count_fds();
		br_acceptor_free(a); /* from this plain thread */
		/* Only a ring's multishot accept takes connections ahead; the
		 * client then sees the server side closed. */
		if (br_runtime_features(rt) & BR_FEAT_URING) {
			cr_assert_eq(t_count_fds(), fds - 1);
			cr_assert_eq(br_recv_timeout(c1, &c, 1, 0, 2000), 0);
		}
		close(c1);
		close(lfd);
		cr_assert_eq(br_acceptor_next(NULL), -EINVAL);
		cr_assert_eq(br_acceptor_new(&a, -1), -EBADF);
		br_runtime_free(rt);
	}
}

static void *acc_next(void *arg)
{
	return (void *)(intptr_t)br_acceptor_next(arg);
}

Test(net, a_second_acceptor_caller_gets_ebusy_and_the_first_the_connection,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		int lfd = br_tcp_listen("127.0.0.1", 0, 16), c1;
		br_acceptor *a;
		br_future *first, *second;
		void *v;

		cr_assert_geq(lfd, 0);
		cr_assert_eq(br_acceptor_new(&a, lfd), 0);
		first = br_spawn(rt, acc_next, a);
		br_sleep_ms(30);
		cr_assert_eq(br_future_state(first), BR_PENDING);
		second = br_spawn(rt, acc_next, a);
		cr_assert_eq(br_await(second, &v), 0);
		cr_assert_eq((intptr_t)v, -EBUSY, "flags %#x: %d", flags,
			     (int)(intptr_t)v);
		br_future_release(second);
		/* From a plain thread. */
		cr_assert_eq(br_acceptor_next(a), -EBUSY, "flags %#x", flags);
		c1 = br_tcp_connect("127.0.0.1", (uint16_t)br_local_port(lfd));
		cr_assert_geq(c1, 0);
		cr_assert_eq(br_await(first, &v), 0);
		cr_assert_geq((intptr_t)v, 0,
			      "the waiting caller got no connection");
		close((int)(intptr_t)v);
		br_future_release(first);
		br_acceptor_free(a);
		close(c1);
		close(lfd);
		br_runtime_free(rt);
	}
}

/* ---- readers ---- */

#define RD_CONNS 40
#define RD_BYTES (256 * 1024)

/* Connections from plain-thread clients, one thread each, to a server
 * task that accepts them on lfd (readers' and writers' tests). */
struct stream_job {
	int lfd, port;
};

struct stream_client {
	struct stream_job *j;
	int id;
};

/* On a runtime of two workers: server(&job) accepts conns connections,
 * and client(&arg) runs for each on a thread of its own. */
static void run_streams(unsigned flags, int conns, void *(*server)(void *),
			void *(*client)(void *))
{
	br_runtime *rt = t_runtime(2, flags);
	struct stream_job j;
	struct stream_client *ca = calloc((size_t)conns, sizeof(*ca));
	pthread_t *th = calloc((size_t)conns, sizeof(*th));
	const char *msg = NULL, **cmsg = calloc((size_t)conns, sizeof(*cmsg));
	br_future *srv;
	int i, err;

	cr_assert(ca && th && cmsg);
	j.lfd = br_tcp_listen("127.0.0.1", 0, 128);
	cr_assert_geq(j.lfd, 0);
	j.port = br_local_port(j.lfd);
	srv = br_spawn(rt, server, &j);
	for (i = 0; i < conns; i++) {
		ca[i] = (struct stream_client){ &j, i };
		t_thread_start(&th[i], client, &ca[i]);
	}
	/* The server ends once every connection has. If it ends early (a
	 * fault made a spawn fail), closing the listener resets the
	 * connections it never accepted, so that no client waits for
	 * good; the verdicts come after the joins. */
	err = br_await(srv, (void **)&msg);
	close(j.lfd);
	for (i = 0; i < conns; i++)
		cmsg[i] = t_thread_join(th[i]);
	cr_assert_eq(err, 0, "the server: %s", br_future_message(srv));
	cr_assert_null(msg, "%s", msg);
	for (i = 0; i < conns; i++)
		cr_assert_null(cmsg[i], "client %d: %s", i, cmsg[i]);
	br_future_release(srv);
	free(cmsg);
	free(ca);
	free(th);
	br_runtime_free(rt);
}

/*
 * The server's side of n connections: accept each on j's listener and
 * serve it in a task of its own, fn((void *)fd), which closes fd when it
 * succeeds (returns NULL). Then await them all, and close the fds of those
 * that failed (or never ran: a fault made their spawn fail), so that no
 * client waits for good on a socket nobody serves. Returns the first
 * failure, or NULL.
 */
static const char *stream_serve(struct stream_job *j, int n,
				void *(*fn)(void *))
{
	br_future **fs = calloc((size_t)n, sizeof(*fs));
	int *fds = calloc((size_t)n, sizeof(*fds));
	const char *bad = NULL;
	int i, got;

	if (!fs || !fds) {
		free(fs);
		free(fds);
		return "no memory";
	}
	for (got = 0; got < n; got++) {
		fds[got] = br_accept(j->lfd, NULL, NULL, 0);
		if (fds[got] < 0) {
			bad = "accept failed";
			break;
		}
		fs[got] = br_spawn(br_current_runtime(), fn,
				   (void *)(intptr_t)fds[got]);
	}
	for (i = 0; i < got; i++) {
		const char *msg = NULL;

		if (br_await(fs[i], (void **)&msg) != 0 && !msg)
			msg = "a connection's task failed";
		if (msg) {
			close(fds[i]);
			if (!bad)
				bad = msg;
		}
		br_future_release(fs[i]);
	}
	free(fs);
	free(fds);
	return bad;
}

/* Byte i of connection c's stream. */
static unsigned char rd_byte(int c, long i)
{
	return (unsigned char)(i * 7 + c * 13 + (i >> 9));
}

static void *rd_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	br_reader *r;
	const void *p;
	unsigned char id;
	long at = 0;
	ssize_t n;

	T_REQUIRE(br_reader_new(&r, fd) == 0);
	/* The first byte names the connection; the rest is its stream. */
	n = br_reader_recv(r, &p);
	T_REQUIRE(n > 0);
	id = *(const unsigned char *)p;
	T_REQUIRE(id < RD_CONNS);
	for (;;) {
		const unsigned char *b = p;
		ssize_t i;

		for (i = (at == 0); i < n; i++, at++)
			T_REQUIRE(b[i] == rd_byte(id, at));
		if (br_yield() < 0) /* let the group run dry sometimes */
			return (void *)"cancelled";
		n = br_reader_recv(r, &p);
		if (n == 0)
			break;
		T_REQUIRE(n > 0);
	}
	T_REQUIRE(at == RD_BYTES);
	br_reader_free(r);
	br_close(fd);
	return NULL;
}

static void *rd_server(void *arg)
{
	return (void *)stream_serve(arg, RD_CONNS, rd_conn);
}

static void *rd_client(void *arg)
{
	struct stream_client *a = arg;
	static __thread unsigned char buf[RD_BYTES + 1];
	int fd = br_tcp_connect("127.0.0.1", (uint16_t)a->j->port);
	long i;

	T_REQUIRE(fd >= 0);
	buf[0] = (unsigned char)a->id;
	for (i = 0; i < RD_BYTES; i++)
		buf[i + 1] = rd_byte(a->id, i);
	/* MSG_NOSIGNAL: a connection the server never took is reset. */
	T_REQUIRE(send(fd, buf, RD_BYTES + 1, MSG_NOSIGNAL) == RD_BYTES + 1);
	close(fd);
	return NULL;
}

Test(net, readers_lend_every_byte_in_order, .timeout = 60.0)
{
	/* Plain threads write whole streams at once, so that the worker's
	 * buffer group runs dry and refills. */
	FOR_EACH_MODE(flags)
	run_streams(flags, RD_CONNS, rd_server, rd_client);
}

static void *rd_wait(void *arg)
{
	br_reader *r = arg;
	const void *p;
	ssize_t n = br_reader_recv(r, &p);

	return n == -ECANCELED ? NULL : (void *)"recv was not cancelled";
}

Test(net, a_waiting_reader_is_cancelled_and_keeps_later_bytes, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct pair p = tcp_pair();
		br_reader *r;
		br_future *f;
		const void *d;

		cr_assert_eq(br_reader_new(&r, p.b), 0);
		f = br_spawn(rt, rd_wait, r);
		br_sleep_ms(30);
		cr_assert_eq(br_cancel(f), 0);
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		br_future_release(f);
		cr_assert_eq(write(p.a, "later", 5), 5);
		shutdown(p.a, SHUT_WR);
		/* From this plain thread now: the queued bytes come first
		 * (ring), or a plain receive gets them (fallback). */
		cr_assert_eq(br_reader_recv(r, &d), 5);
		cr_assert_eq(memcmp(d, "later", 5), 0);
		cr_assert_eq(br_reader_recv(r, &d), 0);
		br_reader_free(r);
		close(p.a);
		close(p.b);
		cr_assert_eq(br_reader_recv(NULL, &d), -EINVAL);
		cr_assert_eq(br_reader_new(&r, -1), -EBADF);
		br_runtime_free(rt);
	}
}

struct rd_first {
	br_reader *r;
	char got[8];
	ssize_t n;
};

static void *rd_first_wait(void *arg)
{
	struct rd_first *x = arg;
	const void *p;

	x->n = br_reader_recv(x->r, &p);
	if (x->n > 0)
		memcpy(x->got, p,
		       (size_t)x->n < sizeof(x->got) ? (size_t)x->n :
						       sizeof(x->got));
	return NULL;
}

static void *rd_second(void *arg)
{
	const void *p = (const void *)1;
	ssize_t n = br_reader_recv(arg, &p);

	return (void *)(intptr_t)n;
}

Test(net, a_second_reader_caller_gets_ebusy_and_the_first_its_bytes,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct pair p = tcp_pair();
		struct rd_first x = { 0 };
		br_future *first, *second;
		void *v;

		cr_assert_eq(br_reader_new(&x.r, p.b), 0);
		first = br_spawn(rt, rd_first_wait, &x);
		br_sleep_ms(30);
		cr_assert_eq(br_future_state(first), BR_PENDING);
		/* From a task, and from this plain thread. */
		second = br_spawn(rt, rd_second, x.r);
		cr_assert_eq(br_await(second, &v), 0);
		cr_assert_eq((intptr_t)v, -EBUSY, "flags %#x: %d", flags,
			     (int)(intptr_t)v);
		br_future_release(second);
		cr_assert_eq(rd_second(x.r), (void *)(intptr_t)-EBUSY,
			     "flags %#x", flags);
		/* The first caller was left waiting, and still gets the
		 * bytes. */
		cr_assert_eq(write(p.a, "first", 5), 5);
		await_ok(first);
		cr_assert_eq(x.n, 5);
		cr_assert_eq(memcmp(x.got, "first", 5), 0);
		br_reader_free(x.r);
		close(p.a);
		close(p.b);
		br_runtime_free(rt);
	}
}

/* ---- writers ---- */

#define WR_CONNS 16
#define WR_BYTES (1024 * 1024)

#define WR_CHUNK 9000

/* Sends connection id's stream (rd_byte's pattern) in chunks of random
 * sizes, yielding now and then. */
static void *wr_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint64_t rng = (uint64_t)fd * 0x9e3779b97f4a7c15ull + 1;
	unsigned char id, *chunk = malloc(WR_CHUNK);
	br_writer *w;
	long at = 0;

	/* The client names itself in its first byte. */
	T_REQUIRE(chunk);
	T_REQUIRE(br_recv(fd, &id, 1, 0) == 1);
	T_REQUIRE(br_writer_new(&w, fd) == 0);
	while (at < WR_BYTES) {
		size_t n = 1 + (size_t)(t_rand(&rng) % WR_CHUNK), i;

		if (n > (size_t)(WR_BYTES - at))
			n = (size_t)(WR_BYTES - at);
		for (i = 0; i < n; i++)
			chunk[i] = rd_byte(id, at + (long)i);
		T_REQUIRE(br_writer_write(w, chunk, n) == (ssize_t)n);
		at += (long)n;
		if (t_rand(&rng) % 8 == 0 && br_yield() < 0)
			return (void *)"cancelled";
	}
	T_REQUIRE(br_writer_drain(w) == 0);
	br_writer_free(w);
	br_close(fd);
	free(chunk);
	return NULL;
}

static void *wr_server(void *arg)
{
	return (void *)stream_serve(arg, WR_CONNS, wr_conn);
}

static void *wr_client(void *arg)
{
	struct stream_client *a = arg;
	unsigned char id = (unsigned char)a->id, *buf = malloc(65536);
	int fd = br_tcp_connect("127.0.0.1", (uint16_t)a->j->port);
	long at = 0;
	ssize_t n;

	T_REQUIRE(buf);
	T_REQUIRE(fd >= 0);
	T_REQUIRE(send(fd, &id, 1, MSG_NOSIGNAL) == 1);
	/* Read late, so that the writers' queues fill and they wait. */
	usleep(50000);
	while ((n = read(fd, buf, 65536)) > 0) {
		for (ssize_t i = 0; i < n; i++, at++)
			T_REQUIRE(buf[i] == rd_byte(id, at));
	}
	T_REQUIRE(n == 0);
	T_REQUIRE(at == WR_BYTES);
	close(fd);
	free(buf);
	return NULL;
}

Test(net, writers_send_every_byte_in_order, .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	run_streams(flags, WR_CONNS, wr_server, wr_client);
}

/* Write into a connection whose peer reset it, until the error shows;
 * then every call reports it. */
static void *wr_after_reset(void *arg)
{
	int fd = *(int *)arg;
	br_writer *w;
	ssize_t n = 0;
	int i;

	T_REQUIRE(br_writer_new(&w, fd) == 0);
	for (i = 0; i < 1000; i++) {
		n = br_writer_write(w, "x", 1);
		if (n < 0)
			break;
		T_REQUIRE(n == 1);
		br_sleep_ms(1);
	}
	T_REQUIRE(n == -EPIPE || n == -ECONNRESET);
	T_REQUIRE(br_writer_write(w, "y", 1) == n);
	T_REQUIRE(br_writer_drain(w) == n);
	br_writer_free(w);
	br_close(fd);
	return NULL;
}

Test(net, a_writer_reports_a_send_error_on_every_later_call, .timeout = 30.0)
{
	after_peer_reset(wr_after_reset);
}

static void *wr_fill(void *arg)
{
	br_writer *w = arg;
	static char chunk[65536];
	ssize_t n;

	/* The peer never reads: the queue fills and a write waits. */
	while ((n = br_writer_write(w, chunk, sizeof(chunk))) ==
	       (ssize_t)sizeof(chunk))
		;
	return n == -ECANCELED ? NULL : (void *)"write was not cancelled";
}

Test(net, a_writer_waiting_for_room_is_cancelled_and_free_lets_go,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct pair p = tcp_pair();
		br_writer *w;
		br_future *f;

		cr_assert_eq(br_writer_new(&w, p.b), 0);
		f = br_spawn(rt, wr_fill, w);
		br_sleep_ms(50);
		cr_assert_eq(br_future_state(f), BR_PENDING);
		cr_assert_eq(br_cancel(f), 0);
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		br_future_release(f);
		/* A send is still in the kernel, blocked: free ends it. */
		br_writer_free(w);
		close(p.a);
		close(p.b);
		br_runtime_free(rt);
	}
}

#define WR_HELD (60 * 1024) /* under the writer's 64 KiB: not waited on */

static void *wr_held(void *arg)
{
	static char chunk[WR_HELD];

	memset(chunk, 'a', sizeof(chunk));
	return br_writer_write(arg, chunk, sizeof(chunk)) == WR_HELD ?
		       NULL :
		       (void *)"write";
}

Test(net, a_plain_thread_writes_after_a_task_in_order, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct pair p = tcp_pair();
		int small = 4096;
		char *got = malloc(WR_HELD + 3);
		br_writer *w;
		size_t have = 0;
		int ring = !!(br_runtime_features(rt) & BR_FEAT_URING);

		cr_assert_not_null(got);
		/* Small socket buffers: most of the task's bytes stay queued
		 * in the writer while nobody reads. */
		setsockopt(p.b, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		setsockopt(p.a, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		cr_assert_eq(br_writer_new(&w, p.b), 0);
		if (!ring) {
			/* The write is the send: it would wait for a reader. */
			cr_assert_eq(br_writer_write(w, "abc", 3), 3);
			cr_assert_eq(read(p.a, got, 3), 3);
		} else {
			await_ok(br_spawn(rt, wr_held, w));
		}
		/* From this thread now: queued on the writer's worker, after
		 * the task's bytes, not sent ahead of them. */
		cr_assert_eq(br_writer_write(w, "def", 3), 3);
		if (ring) {
			while (have < WR_HELD + 3) {
				ssize_t n = read(p.a, got + have,
						 WR_HELD + 3 - have);

				cr_assert_gt(n, 0);
				have += (size_t)n;
			}
			for (size_t i = 0; i < WR_HELD; i++)
				cr_assert_eq(got[i], 'a', "byte %zu", i);
			cr_assert_eq(memcmp(got + WR_HELD, "def", 3), 0);
		} else {
			cr_assert_eq(read(p.a, got, 3), 3);
			cr_assert_eq(memcmp(got, "def", 3), 0);
		}
		cr_assert_eq(br_writer_drain(w), 0);
		br_writer_free(w);
		/* Never used by a task: plain sends. */
		cr_assert_eq(br_writer_new(&w, p.b), 0);
		cr_assert_eq(br_writer_write(w, "ghi", 3), 3);
		cr_assert_eq(br_writer_drain(w), 0);
		cr_assert_eq(read(p.a, got, 3), 3);
		cr_assert_eq(memcmp(got, "ghi", 3), 0);
		br_writer_free(w);
		free(got);
		close(p.a);
		close(p.b);
		br_runtime_free(rt);
	}
}

/* Two tasks pinned to workers 0 and 1, released together: each makes
 * its first call on one object at the same moment. */
struct first_race {
	void *obj;
	atomic_int ready, go;
	ssize_t ret[2];
	void *(*call)(struct first_race *x, int me); /* sets ret[me] */
};

static void *first_race_one(void *arg)
{
	struct first_race *x = arg;
	int me = atomic_fetch_add(&x->ready, 1);
	unsigned k;

	for (k = 1; !atomic_load(&x->go); k++)
		if (k % 4096 == 0)
			br_yield(); /* pinned: stays on its worker */
	return x->call(x, me);
}

/* Start both tasks and release them; f[] gets their futures. */
static void first_race_start(br_runtime *rt, struct first_race *x,
			     br_future *f[2])
{
	int i;

	for (i = 0; i < 2; i++)
		f[i] = br_spawn_on(rt, (unsigned)i, first_race_one, x);
	cr_assert_eq(t_spin_until(&x->ready, 2, 2000000000), 0);
	atomic_store(&x->go, 1);
}

static void *race_write(struct first_race *x, int me)
{
	x->ret[me] = br_writer_write(x->obj, me ? "BBBB" : "AAAA", 4);
	return NULL;
}

/* Two tasks on two workers make a writer's first call at once: they
 * agree on one owner, and both writes arrive whole. */
Test(net, first_writes_from_two_workers_agree_on_one_owner, .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		int round;

		for (round = 0; round < 300; round++) {
			struct first_race x = { .call = race_write };
			br_future *f[2];
			char got[9] = { 0 };
			size_t have = 0;
			int sv[2], i;

			cr_assert_eq(socketpair(AF_UNIX,
						SOCK_STREAM | SOCK_CLOEXEC, 0,
						sv),
				     0);
			cr_assert_eq(br_writer_new((br_writer **)&x.obj, sv[0]),
				     0);
			first_race_start(rt, &x, f);
			for (i = 0; i < 2; i++)
				await_ok(f[i]);
			cr_assert(x.ret[0] == 4 && x.ret[1] == 4,
				  "round %d: %zd %zd", round, x.ret[0],
				  x.ret[1]);
			cr_assert_eq(br_writer_drain(x.obj), 0);
			while (have < 8) {
				ssize_t n = read(sv[1], got + have, 8 - have);

				cr_assert_gt(n, 0);
				have += (size_t)n;
			}
			cr_assert(!strcmp(got, "AAAABBBB") ||
					  !strcmp(got, "BBBBAAAA"),
				  "round %d: %s", round, got);
			br_writer_free(x.obj);
			close(sv[0]);
			close(sv[1]);
		}
		br_runtime_free(rt);
	}
}

static void *race_recv(struct first_race *x, int me)
{
	const void *p;

	x->ret[me] = br_reader_recv(x->obj, &p);
	return x->ret[me] == 1 && *(const char *)p != 'x' ? (void *)"byte" :
							    NULL;
}

/* Two tasks on two workers make a reader's first call at once: they
 * agree on one owner, so one receive is armed, one task waits in it and
 * the other finds it taken (-EBUSY). */
Test(net, first_receives_from_two_workers_agree_on_one_owner, .timeout = 60.0)
{
	/* Without a ring there is no owner, but still one caller at a
	 * time: the same answers. */
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		int round;

		for (round = 0; round < 300; round++) {
			struct first_race x = { .call = race_recv };
			br_future *f[2];
			int sv[2], i;

			cr_assert_eq(socketpair(AF_UNIX,
						SOCK_STREAM | SOCK_CLOEXEC, 0,
						sv),
				     0);
			cr_assert_eq(br_reader_new((br_reader **)&x.obj, sv[0]),
				     0);
			first_race_start(rt, &x, f);
			/* One of them returns at once; then the other gets a
			 * byte. */
			while (br_future_state(f[0]) == BR_PENDING &&
			       br_future_state(f[1]) == BR_PENDING)
				usleep(100);
			cr_assert_eq(write(sv[1], "x", 1), 1);
			for (i = 0; i < 2; i++)
				await_ok(f[i]);
			cr_assert((x.ret[0] == 1 && x.ret[1] == -EBUSY) ||
					  (x.ret[0] == -EBUSY && x.ret[1] == 1),
				  "flags %#x round %d: %zd %zd", flags, round,
				  x.ret[0], x.ret[1]);
			br_reader_free(x.obj);
			close(sv[0]);
			close(sv[1]);
		}
		br_runtime_free(rt);
	}
}

static void *wr_open_close(void *arg)
{
	int rounds = *(int *)arg, i;

	for (i = 0; i < rounds; i++) {
		br_writer *w;
		char c;
		int sv[2];

		T_REQUIRE(socketpair(AF_UNIX,
				     SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
				     0, sv) == 0);
		T_REQUIRE(br_writer_new(&w, sv[0]) == 0);
		T_REQUIRE(br_writer_write(w, "x", 1) == 1);
		T_REQUIRE(br_writer_drain(w) == 0);
		br_writer_free(w);
		T_REQUIRE(br_close(sv[0]) == 0);
		/* Closed for real: a registered file left behind would keep
		 * the socket open, and the read would find no EOF. */
		T_REQUIRE(read(sv[1], &c, 1) == 1 && c == 'x');
		T_REQUIRE(read(sv[1], &c, 1) == 0);
		close(sv[1]);
		if (i % 128 == 127)
			br_yield(); /* without a ring nothing here suspends */
	}
	return NULL;
}

/* More writers, one after another, than a ring has file slots: each
 * gives its slot back, and its socket closes when the fd does. */
Test(net, freed_writers_let_their_sockets_close, .timeout = 60.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int rounds = 5000;

		await_ok(br_spawn(rt, wr_open_close, &rounds));
		br_runtime_free(rt);
	}
}

/* A pipe is not a socket, and a writer writes to it all the same
 * (test_streams.c has the rest of that story). */
static void *wr_on_a_pipe(void *arg)
{
	int *fds = arg;
	br_writer *w;
	char got[3];

	T_REQUIRE(br_writer_new(&w, fds[1]) == 0);
	T_REQUIRE(br_writer_write(w, "abc", 3) == 3);
	T_REQUIRE(br_writer_drain(w) == 0);
	br_writer_free(w);
	T_REQUIRE(br_read(fds[0], got, 3) == 3 && !memcmp(got, "abc", 3));
	return NULL;
}

Test(net, writers_check_their_arguments, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int fds[2];
		br_writer *w;
		br_reader *r;

		cr_assert_eq(br_writer_new(NULL, 3), -EINVAL);
		cr_assert_eq(br_writer_new(&w, -1), -EBADF);
		cr_assert_eq(br_writer_write(NULL, "x", 1), -EINVAL);
		cr_assert_eq(br_writer_drain(NULL), -EINVAL);
		br_writer_free(NULL);
		cr_assert_eq(pipe(fds), 0);
		cr_assert_eq(br_writer_new(&w, fds[1]), 0);
		cr_assert_eq(br_writer_write(w, NULL, 1), -EINVAL);
		cr_assert_eq(br_writer_write(w, NULL, 0), 0);
		br_writer_free(w);
		/* Another object is not a writer. */
		cr_assert_eq(br_reader_new(&r, fds[0]), 0);
		cr_assert_eq(br_writer_write((br_writer *)(void *)r, "x", 1),
			     BR_EBADOBJ);
		cr_assert_eq(br_writer_drain((br_writer *)(void *)r),
			     BR_EBADOBJ);
		br_reader_free(r);
		await_ok(br_spawn(rt, wr_on_a_pipe, fds));
		close(fds[0]);
		close(fds[1]);
		br_runtime_free(rt);
	}
}

/* ---- br_getaddrinfo ---- */

static void *resolve_names(void *arg)
{
	struct addrinfo hints = { .ai_family = AF_INET,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int n = 0;

	T_REQUIRE(br_getaddrinfo("localhost", "80", &hints, &res) == 0);
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		const struct sockaddr_in *in = (const void *)a->ai_addr;

		T_REQUIRE(a->ai_family == AF_INET);
		T_REQUIRE(ntohs(in->sin_port) == 80);
		n++;
	}
	T_REQUIRE(n > 0);
	freeaddrinfo(res);
	res = NULL;
	T_REQUIRE(br_getaddrinfo("127.0.0.1", NULL, NULL, &res) == 0 && res);
	freeaddrinfo(res);
	res = (struct addrinfo *)1;
	T_REQUIRE(br_getaddrinfo("no-such-host.invalid", "80", NULL, &res) ==
			  -ENOENT ||
		  br_getaddrinfo("no-such-host.invalid", "80", NULL, &res) ==
			  -EAGAIN);
	T_REQUIRE(res == NULL);
	T_REQUIRE(br_getaddrinfo(NULL, NULL, NULL, &res) == -EINVAL);
	T_REQUIRE(br_getaddrinfo("localhost", "80", NULL, NULL) == -EINVAL);
	return NULL;
}

/* The same answers from a task (the blocking pool resolves) and from a
 * plain thread (the plain call). */
Test(net, getaddrinfo_answers_tasks_and_threads_alike, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		await_ok(br_spawn(rt, resolve_names, NULL));
		br_runtime_free(rt);
	}
	cr_assert_null(resolve_names(NULL));
}

/* A loop callback must not stall its loop on a resolver: a name, or a
 * service name (looked up through NSS), gets BR_ENOTTASK there, on both
 * backends; numbers need none and are answered at once. */
struct cb_gai {
	int name, service, numbers;
	struct addrinfo *res;
};

static void gai_in_callback(void *arg)
{
	struct cb_gai *c = arg;
	struct addrinfo *res = NULL;

	c->name = br_getaddrinfo("localhost", "80", NULL, &res);
	if (res)
		freeaddrinfo(res);
	res = NULL;
	c->service = br_getaddrinfo(NULL, "http", NULL, &res);
	if (res)
		freeaddrinfo(res);
	c->numbers = br_getaddrinfo("127.0.0.1", "80", NULL, &c->res);
}

Test(net, getaddrinfo_from_a_loop_callback_gets_enottask, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct cb_gai c = { 0 };
		br_future *f = br_call_soon(rt, gai_in_callback, &c);

		cr_assert_eq(br_await(f, NULL), 0);
		br_future_release(f);
		cr_assert_eq(c.name, BR_ENOTTASK, "flags %#x: %d", flags,
			     c.name);
		cr_assert_eq(c.service, BR_ENOTTASK, "flags %#x: %d", flags,
			     c.service);
		cr_assert_eq(c.numbers, 0, "flags %#x: %d", flags, c.numbers);
		cr_assert_not_null(c.res);
		freeaddrinfo(c.res);
		br_runtime_free(rt);
	}
}

/* ---- the same answers on both loops, and no call blocks a worker ---- */

static void *recv_dontwait(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c;

	return (void *)(intptr_t)br_recv(fd, &c, 1, MSG_DONTWAIT);
}

Test(net, recv_with_msg_dontwait_on_an_empty_socket_gives_eagain,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int sv[2];
		br_future *f;
		void *v = NULL;

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv),
			     0);
		f = br_spawn(rt, recv_dontwait, (void *)(intptr_t)sv[0]);
		cr_assert_eq(br_wait_for(f, 5000, &v), 0,
			     "flags %#x: the receive waited for data", flags);
		cr_assert_eq((intptr_t)v, -EAGAIN, "flags %#x: %d", flags,
			     (int)(intptr_t)v);
		br_future_release(f);
		close(sv[0]);
		close(sv[1]);
		br_runtime_free(rt);
	}
}

/* Socket calls on a pipe: ENOTSOCK, whether or not it has data. */
static void *socket_calls_on_pipe(void *arg)
{
	int *p = arg;
	char c = 'x';
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	T_REQUIRE(br_recv(p[0], &c, 1, 0) == -ENOTSOCK);
	T_REQUIRE(br_recv_timeout(p[0], &c, 1, 0, 100) == -ENOTSOCK);
	T_REQUIRE(br_recvmsg(p[0], &m, 0) == -ENOTSOCK);
	T_REQUIRE(br_send(p[1], &c, 1, 0) == -ENOTSOCK);
	T_REQUIRE(br_sendmsg(p[1], &m, 0) == -ENOTSOCK);
	T_REQUIRE(br_accept(p[0], NULL, NULL, 0) == -ENOTSOCK);
	return NULL;
}

Test(net, socket_calls_on_a_pipe_give_enotsock, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int p[2];
		br_future *f;
		void *v = NULL;

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		f = br_spawn(rt, socket_calls_on_pipe, p);
		cr_assert_eq(br_wait_for(f, 5000, &v), 0,
			     "flags %#x: a call waited on the empty pipe",
			     flags);
		cr_assert_null(v, "flags %#x: %s", flags, (char *)v);
		br_future_release(f);
		close(p[0]);
		close(p[1]);
		br_runtime_free(rt);
	}
}

static void *accept_one(void *arg)
{
	return (void *)(intptr_t)br_accept((int)(intptr_t)arg, NULL, NULL, 0);
}

/* Two tasks wait to accept on one blocking listener and one client
 * comes: the readiness wakes both, one takes the connection, and the
 * other must wait again, not block the worker in accept(2). */
Test(net, tasks_racing_for_a_connection_on_a_blocking_listener_never_stall,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int lfd = br_tcp_listen("127.0.0.1", 0, 16), c1, c2;
		uint16_t port;
		br_future *a, *b;
		void *va = NULL, *vb = NULL;

		cr_assert_geq(lfd, 0);
		cr_assert_eq(fcntl(lfd, F_GETFL) & O_NONBLOCK, 0);
		port = (uint16_t)br_local_port(lfd);
		a = br_spawn(rt, accept_one, (void *)(intptr_t)lfd);
		b = br_spawn(rt, accept_one, (void *)(intptr_t)lfd);
		br_sleep_ms(30);
		c1 = br_tcp_connect("127.0.0.1", port);
		cr_assert_geq(c1, 0);
		br_sleep_ms(30);
		t_assert_worker_runs(rt, flags);
		/* The listener was left as it was. */
		cr_assert_eq(fcntl(lfd, F_GETFL) & O_NONBLOCK, 0);
		c2 = br_tcp_connect("127.0.0.1", port);
		cr_assert_geq(c2, 0);
		cr_assert_eq(br_await(a, &va), 0);
		cr_assert_eq(br_await(b, &vb), 0);
		cr_assert_geq((intptr_t)va, 0);
		cr_assert_geq((intptr_t)vb, 0);
		/* The accepted fds are blocking, as asked. */
		cr_assert_eq(fcntl((int)(intptr_t)va, F_GETFL) & O_NONBLOCK, 0);
		close((int)(intptr_t)va);
		close((int)(intptr_t)vb);
		br_future_release(a);
		br_future_release(b);
		close(c1);
		close(c2);
		close(lfd);
		br_runtime_free(rt);
	}
}

struct waitall {
	int fd;
	char buf[10];
	ssize_t ret;
};

static void *recv_waitall(void *arg)
{
	struct waitall *x = arg;

	x->ret = br_recv(x->fd, x->buf, sizeof(x->buf), MSG_WAITALL);
	return NULL;
}

/* MSG_WAITALL: the receive waits for the whole length, across several
 * arrivals, on both loops. */
Test(net, recv_with_msg_waitall_waits_for_the_whole_length, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct waitall x = { 0 };
		int sv[2];
		br_future *f;

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv),
			     0);
		x.fd = sv[0];
		f = br_spawn(rt, recv_waitall, &x);
		cr_assert_eq(write(sv[1], "01234", 5), 5);
		br_sleep_ms(50);
		cr_assert_eq(br_future_state(f), BR_PENDING,
			     "flags %#x: returned %zd", flags, x.ret);
		cr_assert_eq(write(sv[1], "56789", 5), 5);
		t_await_value(f);
		cr_assert_eq(x.ret, 10, "flags %#x: %zd", flags, x.ret);
		cr_assert_eq(memcmp(x.buf, "0123456789", 10), 0);
		br_future_release(f);
		close(sv[0]);
		close(sv[1]);
		br_runtime_free(rt);
	}
}

struct uconn {
	int fd;
	struct sockaddr_un sa;
	int64_t timeout_ms; /* < 0: br_connect's own */
	int ret;
};

static void *connect_unix(void *arg)
{
	struct uconn *u = arg;

	u->ret = br_connect_timeout(u->fd, (struct sockaddr *)&u->sa,
				    sizeof(u->sa), u->timeout_ms);
	return NULL;
}

/* A listening Unix socket at an abstract address named after tag and
 * flags, with a backlog of 0, its address in u->sa. */
static int unix_listener(struct uconn *u, const char *tag, unsigned flags)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(lfd, 0);
	u->sa.sun_family = AF_UNIX;
	snprintf(u->sa.sun_path + 1, sizeof(u->sa.sun_path) - 1,
		 "braid-%s-%d-%u", tag, (int)getpid(), flags);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&u->sa, sizeof(u->sa)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	return lfd;
}

/* A Unix listener's backlog is full: a blocking connect waits until the
 * listener accepts, on both loops (without a ring a non-blocking connect
 * says EAGAIN, which is not the answer), and the worker goes on. */
Test(net, connecting_to_a_full_unix_backlog_waits_for_an_accept,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct uconn u = { .timeout_ms = -1, .ret = 1 };
		int lfd = unix_listener(&u, "backlog", flags), c1, a;
		br_future *f;

		/* Fill the backlog. */
		c1 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    0);
		cr_assert_eq(
			connect(c1, (struct sockaddr *)&u.sa, sizeof(u.sa)), 0);
		u.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		f = br_spawn(rt, connect_unix, &u);
		br_sleep_ms(30);
		t_assert_worker_runs(rt, flags);
		cr_assert_eq(br_future_state(f), BR_PENDING,
			     "flags %#x: connect returned %d", flags, u.ret);
		a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		cr_assert_geq(a, 0);
		t_await_value(f);
		cr_assert_eq(u.ret, 0, "flags %#x: %d", flags, u.ret);
		br_future_release(f);
		close(a);
		a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		cr_assert_geq(a, 0);
		close(a);
		close(c1);
		close(u.fd);
		close(lfd);
		br_runtime_free(rt);
	}
}

/* ---- releasing from a cancelled task, and freed objects ---- */

struct held {
	int lfd, sv[2];
	atomic_int started;
	int waited; /* the reader's cancelled wait */
	int closed; /* br_close of the writer's and reader's socket */
};

/*
 * Ties an acceptor, a reader and a writer to this task's worker (the
 * reader waits, so its receive is armed), is cancelled in the reader's
 * wait, and then, cancelled, frees all three and closes the socket.
 */
static void *hold_then_release(void *arg)
{
	struct held *h = arg;
	br_acceptor *a;
	br_reader *r;
	br_writer *w;
	const void *data;

	T_REQUIRE(br_acceptor_new(&a, h->lfd) == 0);
	T_REQUIRE(br_reader_new(&r, h->sv[0]) == 0);
	T_REQUIRE(br_writer_new(&w, h->sv[0]) == 0);
	T_REQUIRE(br_writer_write(w, "hi", 2) == 2);
	T_REQUIRE(br_writer_drain(w) == 0);
	atomic_store(&h->started, 1);
	h->waited = (int)br_reader_recv(r, &data);
	br_writer_free(w);
	br_reader_free(r);
	br_acceptor_free(a);
	h->closed = br_close(h->sv[0]);
	return NULL;
}

Test(net, a_cancelled_task_frees_its_readers_writers_and_acceptors,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(2, flags);
		struct held h = { .lfd = br_tcp_listen("127.0.0.1", 0, 4) };
		br_future *f;
		char buf[4];

		cr_assert_geq(h.lfd, 0);
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					h.sv),
			     0);
		f = br_spawn(rt, hold_then_release, &h);
		cr_assert_eq(t_spin_until(&h.started, 1, 5000 * T_NS_PER_MS),
			     0);
		br_sleep_ms(30);
		cr_assert_eq(br_cancel(f), 0);
		br_await(f, NULL);
		cr_assert_eq(br_future_error(f), -ECANCELED, "%s",
			     br_future_message(f));
		cr_assert_eq(h.waited, -ECANCELED);
		cr_assert_eq(h.closed, 0, "br_close: %s",
			     br_strerror(h.closed));
		/* The socket really closed: nothing (a registered file, an
		 * armed receive) kept it open. */
		cr_assert_eq(br_recv_timeout(h.sv[1], buf, 2, 0, 5000), 2);
		cr_assert_eq(br_recv_timeout(h.sv[1], buf, 1, 0, 5000), 0);
		br_future_release(f);
		close(h.sv[1]);
		close(h.lfd);
		br_runtime_free(rt);
	}
}

static void *use_freed_objects(void *arg)
{
	int *sv = arg, lfd = br_tcp_listen("127.0.0.1", 0, 4);
	const void *data;
	char buf[8];
	br_acceptor *a, *a2;
	br_reader *r, *r2;
	br_writer *w, *w2;

	T_REQUIRE(lfd >= 0);
	T_REQUIRE(br_acceptor_new(&a, lfd) == 0);
	T_REQUIRE(br_reader_new(&r, sv[0]) == 0);
	T_REQUIRE(br_writer_new(&w, sv[0]) == 0);
	T_REQUIRE(br_writer_write(w, "x", 1) == 1);
	br_acceptor_free(a);
	br_reader_free(r);
	br_writer_free(w);
	/* New objects of the same kinds do not bring the old ones back. */
	T_REQUIRE(br_acceptor_new(&a2, lfd) == 0);
	T_REQUIRE(br_reader_new(&r2, sv[0]) == 0);
	T_REQUIRE(br_writer_new(&w2, sv[0]) == 0);
	T_REQUIRE(br_acceptor_next(a) == BR_EBADOBJ);
	T_REQUIRE(br_reader_recv(r, &data) == BR_EBADOBJ);
	T_REQUIRE(br_reader_readline(r, buf, sizeof(buf)) == BR_EBADOBJ);
	T_REQUIRE(br_reader_readexactly(r, buf, 1) == BR_EBADOBJ);
	T_REQUIRE(br_reader_readuntil(r, "\n", 1, buf, sizeof(buf)) ==
		  BR_EBADOBJ);
	T_REQUIRE(br_writer_write(w, "x", 1) == BR_EBADOBJ);
	T_REQUIRE(br_writer_drain(w) == BR_EBADOBJ);
	/* Freeing again is a no-op. */
	br_acceptor_free(a);
	br_reader_free(r);
	br_writer_free(w);
	br_acceptor_free(a2);
	br_reader_free(r2);
	br_writer_free(w2);
	close(lfd);
	return NULL;
}

/* braid.h: BR_EBADOBJ for a freed acceptor, reader or writer; under ASan
 * this also proves the check reads no freed memory. */
Test(net, calls_on_freed_acceptors_readers_and_writers_give_ebadobj,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		int sv[2];

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv),
			     0);
		await_ok(br_spawn(rt, use_freed_objects, sv));
		/* And from a plain thread. */
		{
			const char *msg = use_freed_objects(sv);

			cr_assert_null(msg, "%s", msg);
		}
		close(sv[0]);
		close(sv[1]);
		br_runtime_free(rt);
	}
}

/* A connect to a Unix listener whose backlog stays full ends when its
 * own limit passes, with -ETIMEDOUT (not the -EINTR of the io-wq thread
 * it interrupts), on both loops. */
Test(net, connecting_to_a_full_unix_backlog_ends_at_its_limit, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct uconn u = { .timeout_ms = 300, .ret = 1 };
		int lfd = unix_listener(&u, "backlog-limit", flags), c[4];
		int n = 0;
		int64_t t0, took;
		br_future *f;

		/* Fill the backlog: connect until the listener refuses. */
		for (;;) {
			cr_assert_lt(n, 4, "the backlog never filled");
			c[n] = socket(
				AF_UNIX,
				SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (connect(c[n], (struct sockaddr *)&u.sa,
				    sizeof(u.sa)) < 0) {
				cr_assert_eq(errno, EAGAIN);
				close(c[n]);
				break;
			}
			n++;
		}
		u.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		t0 = br_now_ns();
		f = br_spawn(rt, connect_unix, &u);
		t_await_value(f);
		took = br_now_ns() - t0;
		br_future_release(f);
		cr_assert_eq(u.ret, -ETIMEDOUT, "flags %#x: %d", flags, u.ret);
		cr_assert_geq(took, 300 * T_NS_PER_MS, "flags %#x", flags);
		/* Long enough for a loaded machine; a wait for good, or for
		 * the test's own timeout, is what it rules out. */
		cr_assert_lt(took, 5000 * T_NS_PER_MS,
			     "flags %#x: %lld ms for a 300 ms limit", flags,
			     (long long)(took / T_NS_PER_MS));
		while (n-- > 0)
			close(c[n]);
		close(u.fd);
		close(lfd);
		br_runtime_free(rt);
	}
}
