/* SPDX-License-Identifier: MIT */
/*
 * zygote.c - one process per program that forks process-pool workers.
 *
 * Design
 *   Forking a multi-threaded process copies only the forking thread, with
 *   every lock the others held stuck forever. So the first br_runtime_new
 *   of a process, if the process still has one thread, forks a zygote
 *   before starting any thread; pools ask it for workers (and their
 *   replacements) over a SOCK_SEQPACKET socketpair. A request carries the
 *   pool's memfd and eventfd as SCM_RIGHTS and the worker's index; the
 *   zygote clones with CLONE_PARENT, so the worker is a child of the
 *   program, which waits for it through a pidfd and reads its exit status
 *   itself, and answers with the pid.
 *
 *   A program that starts threads of its own before its first runtime
 *   (or a library that does, before main) calls br_zygote_start() first
 *   thing instead; that zygote then lives as long as the process.
 *
 *   The zygote closes every fd but its socket and 0-2 at birth: a copy of
 *   a listening socket or of a pipe's write end living on in it would
 *   keep connections and pipes open behind the program's back. It dies
 *   with the thread that forked it (PR_SET_PDEATHSIG, re-checked with
 *   getppid), sits in its own process group so that a terminal's ^C
 *   reaches only the program, and leaves when its socket closes: the last
 *   br__zygote_put() closes it and reaps the zygote.
 *
 *   Each worker moves to a process group of its own as it starts, so a
 *   job that signals its group (kill(0, ...), as shell-like code does)
 *   reaches its worker and the worker's own children, never the zygote
 *   or another worker; and the parent kills a dead worker's whole group,
 *   so that no grandchild outlives it.
 *
 *   A lost answer (the zygote died after its clone, or the program's
 *   receive failed) is not asked again, which could make a second worker
 *   for one index; the spare takes over, and the pool finds the worker
 *   by what it writes in the pool's memory (pool_shm.h, BR__PW_OWNER).
 *
 *   A zygote can still die (a user's kill, the OOM killer), and a process
 *   with threads cannot fork a clean one again. So each zygote keeps a
 *   spare: a clone of itself, made before it serves its first request,
 *   that waits in a group of its own on a socket of its own whose other
 *   end the zygote hands to the program in its hello. When a request
 *   finds the zygote gone (EPIPE, or end of file), the program reaps it,
 *   promotes the spare, which makes a spare of its own and says hello in
 *   turn, and sends the request again.
 *
 *   The zygote (and so every worker and spare) is a copy of the program
 *   made in the middle of br__zygote_get(), with zlock held and the
 *   program's zygote state in its memory: the copy resets both at birth,
 *   so that a job may create a runtime of its own, which forks its own
 *   zygote.
 *
 *   The workers are raw clones of a single-threaded process, without
 *   glibc's fork handlers: nothing can hold a lock in the zygote, and
 *   glibc (2.34 on) asks the kernel for the thread id in raise(), so
 *   abort() in a job is still SIGABRT.
 *
 * Concurrency
 *   - get/put: under zlock. fork: any plain thread; requests are
 *     serialised by xlock (one request and its answer at a time), and a
 *     promotion happens under xlock too. Lock order: xlock, then zlock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "braid.h"
#include "pool_shm.h"
#include "zygote.h"

#define ZFD 3 /* the zygote's socket, after it moved it */

enum {
	Z_FORK,	   /* fork a worker; the answer is its pid */
	Z_PROMOTE, /* (to a spare) become the zygote; the answer a hello */
};

struct zreq {
	unsigned op;
	unsigned idx;
	uint32_t gen; /* Z_FORK: the worker takes index idx for it */
};

/* A new zygote's first message: its spare's pid (or a negative errno if
 * it has none) and, as SCM_RIGHTS, the socket to the spare. */
struct zhello {
	long spare;
};

static pthread_mutex_t zlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;
static int zsock = -1; /* to the zygote; under zlock */
static pid_t zpid;
static int ssock = -1; /* to its spare, or -1; under xlock */
static pid_t spid;
static unsigned zrefs;
static int pinned; /* br_zygote_start() holds a reference for good */

/* Threads of this process, from /proc/self/stat; 0 if unknown. */
static long threads_now(void)
{
	char buf[1024];
	const char *p;
	ssize_t n;
	long v = 0;
	int fd, field;

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p)
		return 0;
	/* After ')' come fields 3.. ; num_threads is field 20. */
	for (field = 2; *p && field < 20; p++)
		if (*p == ' ')
			field++;
	if (field == 20)
		v = strtol(p, NULL, 10);
	return v;
}

/*
 * Receive one message of exactly len bytes on sock into msg, and up to
 * nfds descriptors (SCM_RIGHTS, close-on-exec) into fds; *got is how many
 * came. Returns 0, or -1 when the socket closed or the message has
 * another size.
 */
static int recv_with_fds(int sock, void *msg, size_t len, int *fds, int nfds,
			 int *got)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { msg, len };
	struct msghdr mh = { 0 };
	struct cmsghdr *c;
	ssize_t n;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	*got = 0;
	if (n < 0 || (size_t)n != len)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		*got = (int)(k < (size_t)nfds ? k : (size_t)nfds);
		memcpy(fds, CMSG_DATA(c), (size_t)*got * sizeof(int));
	}
	return 0;
}

/* Receive a request; a FORK request carries two descriptors. Returns 0,
 * or -1 when the socket closed or the message makes no sense. */
static int recv_req(int sock, struct zreq *rq, int fds[2])
{
	int got;

	if (recv_with_fds(sock, rq, sizeof(*rq), fds, 2, &got) < 0)
		return -1;
	return rq->op != Z_FORK || got == 2 ? 0 : -1;
}

/* Send msg (len bytes) on sock, with fd as SCM_RIGHTS when fd >= 0.
 * Returns 0 or a negative errno. */
static int send_with_fd(int sock, const void *msg, size_t len, const int *fds,
			int nfds)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { (void *)msg, len };
	struct msghdr mh = { 0 };
	ssize_t n;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Receive a hello on sock: the spare's pid, and its socket in *fd (-1 if
 * none). Returns 0, or -EPIPE if the socket closed or spoke nonsense. */
static int recv_hello(int sock, pid_t *spare, int *fd)
{
	struct zhello h;
	int got;

	*fd = -1;
	if (recv_with_fds(sock, &h, sizeof(h), fd, 1, &got) < 0)
		return -EPIPE;
	*spare = h.spare > 0 && got == 1 ? (pid_t)h.spare : 0; /* reachable */
	if (!*spare && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	return 0;
}

/* The zygote's copy of the program's state: no zygote of its own, no
 * lock held (the program held zlock while it forked us). */
static void forget_program_state(void)
{
	pthread_mutex_init(&zlock, NULL);
	pthread_mutex_init(&xlock, NULL);
	zsock = ssock = -1;
	zpid = spid = 0;
	zrefs = 0;
	pinned = 0;
}

__attribute__((noreturn)) static void serve(pid_t parent);

/*
 * Clone this zygote as its spare, a child of the program (CLONE_PARENT)
 * named braid-spare from its first instant: a spare killed before it
 * ran is still told apart from the zygote and its workers (reap_strays).
 * The zygote wears the name only for the clone, while the program waits
 * for its hello. Returns as clone.
 */
static long clone_spare(void)
{
	long pid;

	prctl(PR_SET_NAME, "braid-spare");
	pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid != 0) {
		int e = errno;

		prctl(PR_SET_NAME, "braid-zygote");
		errno = e;
	}
	return pid;
}

/*
 * A spare: wait on sock for Z_PROMOTE, then become the zygote on it. It
 * sits in a process group of its own, so that whatever kills the
 * zygote's group spares it. End of file: the program let it go.
 */
__attribute__((noreturn)) static void spare_main(int sock, pid_t parent)
{
	struct zreq rq;
	int fds[2];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "braid-spare");
	setpgid(0, 0);
	if (dup2(sock, ZFD) < 0)
		_exit(1);
	if (sock != ZFD)
		close(sock);
	if (recv_req(ZFD, &rq, fds) < 0 || rq.op != Z_PROMOTE)
		_exit(0);
	prctl(PR_SET_NAME, "braid-zygote");
	serve(parent);
}

/*
 * Make a spare of this zygote (a clone, child of the program) and say
 * hello on ZFD: the spare's pid and the socket to it. Without a spare,
 * the hello says why, and the zygote serves on: it only cannot be
 * replaced. A hello that cannot be sent ends the zygote (and its spare,
 * which nobody would know of): the program waits for that hello, and
 * sees end of file instead.
 */
static void make_spare(pid_t parent)
{
	struct zhello h;
	int sp[2], r;
	long pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		h.spare = -errno;
		if (send_with_fd(ZFD, &h, sizeof(h), NULL, 0) < 0)
			_exit(1);
		return;
	}
	pid = BR__FAULT_ERRNO("braid/zygote/spare", EAGAIN) ? -1 :
							      clone_spare();
	if (pid == 0) {
		close(sp[0]);
		spare_main(sp[1], parent);
	}
	close(sp[1]);
	h.spare = pid < 0 ? -errno : pid;
	r = BR__FAULT("braid/zygote/hello") ?
		    -EIO :
		    send_with_fd(ZFD, &h, sizeof(h), &sp[0], pid < 0 ? 0 : 1);
	if (r < 0) {
		if (pid > 0)
			kill((pid_t)pid, SIGKILL);
		_exit(1);
	}
	close(sp[0]);
}

/* The zygote's life on ZFD: a spare and a hello, then requests until
 * the socket closes. */
__attribute__((noreturn)) static void serve(pid_t parent)
{
	make_spare(parent);
	for (;;) {
		struct zreq rq;
		int fds[2];
		long pid;

		if (recv_req(ZFD, &rq, fds) < 0)
			_exit(0); /* the program closed us, or died */
		if (rq.op != Z_FORK)
			continue;
		pid = BR__FAULT_ERRNO("braid/zygote/worker", EAGAIN) ?
			      -1 :
			      syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0,
				      0, 0);
		if (pid == 0) {
			close(ZFD);
			br__pool_worker_main(fds[0], fds[1], rq.idx, rq.gen);
		}
		if (pid < 0)
			pid = -errno;
		close(fds[0]);
		close(fds[1]);
		if (BR__FAULT("braid/zygote/reply") ||
		    send(ZFD, &pid, sizeof(pid), MSG_NOSIGNAL) != sizeof(pid))
			_exit(0);
	}
}

__attribute__((noreturn)) static void zygote_main(int sock, pid_t parent)
{
	struct sigaction sa;
	sigset_t all;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "braid-zygote");
	forget_program_state();
	/* Its own process group: a terminal's ^C goes to the program,
	 * which decides; workers die with it anyway. */
	setpgid(0, 0);
	if (sock != ZFD) {
		if (dup2(sock, ZFD) < 0)
			_exit(1);
	}
	if (syscall(SYS_close_range, ZFD + 1, ~0u, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);

		for (int fd = ZFD + 1; fd < (max > 0 ? max : 65536); fd++)
			close(fd);
	}
	/* Workers start with default signal handling and nothing blocked;
	 * the program's handlers may rely on threads that are not here. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	serve(parent);
}

/*
 * A zygote that gave no hello may have made a spare first: a child of
 * ours whose pid we never learnt. Reap every child named name, or named
 * as a zygote or a spare when name is NULL: at start() no other can
 * exist, as no zygote, and so no pool, is left; when a promotion failed,
 * no spare but strays is left, and a spare bears its name from its
 * first instant (clone_spare), while a worker never does.
 */
static void reap(pid_t pid);

static void reap_strays(const char *name)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[300], buf[512], *p;
		FILE *f;
		int ppid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (!p || !(p = strrchr(buf, ')')) ||
		    sscanf(p + 1, " %*c %d", &ppid) != 1 || ppid != getpid())
			continue;
		if (name ? strstr(buf, name) != NULL :
			   strstr(buf, "(braid-spare)") ||
				    strstr(buf, "(braid-zygote)"))
			reap((pid_t)atoi(e->d_name));
	}
	if (d)
		closedir(d);
}

/* Fork the zygote and take its hello. Caller holds zlock; the process
 * has one thread. */
static int start(void)
{
	int sv[2];
	pid_t me = getpid(), pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = BR__FAULT_ERRNO("braid/zygote/fork", EAGAIN) ? -1 : fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		zygote_main(sv[1], me);
	}
	close(sv[1]);
	if (recv_hello(sv[0], &spid, &ssock) < 0) {
		close(sv[0]);
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		reap_strays(NULL);
		return -EPIPE;
	}
	zsock = sv[0];
	zpid = pid;
	return 0;
}

/* Reap a zygote or spare that is gone, or going: it is our child. */
static void reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

int br__zygote_get(void)
{
	int ok = 0;

	pthread_mutex_lock(&zlock);
	if (zsock >= 0) {
		zrefs++;
		ok = 1;
	} else if (threads_now() == 1 && start() == 0) {
		zrefs = 1;
		ok = 1;
	}
	pthread_mutex_unlock(&zlock);
	return ok;
}

int br_zygote_start(void)
{
	int r = 0;

	pthread_mutex_lock(&zlock);
	if (!pinned) {
		if (zsock >= 0)
			zrefs++;
		else if (threads_now() != 1)
			r = -EBUSY;
		else if ((r = start()) == 0)
			zrefs = 1;
		pinned = r == 0;
	}
	pthread_mutex_unlock(&zlock);
	return r;
}

void br__zygote_put(void)
{
	int sock = -1, spare = -1;
	pid_t pid = 0, sp = 0;

	pthread_mutex_lock(&xlock);
	pthread_mutex_lock(&zlock);
	if (zrefs > 0 && --zrefs == 0) {
		sock = zsock;
		pid = zpid;
		spare = ssock;
		sp = spid;
		zsock = ssock = -1;
		zpid = spid = 0;
	}
	pthread_mutex_unlock(&zlock);
	pthread_mutex_unlock(&xlock);
	if (sock < 0)
		return;
	/* Their recvmsg sees end of file and they exit. */
	close(sock);
	if (spare >= 0)
		close(spare);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	while (sp > 0 && waitpid(sp, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * The zygote is gone: make its spare the zygote (it answers with a hello
 * naming a spare of its own), and reap the dead one. Returns 0, or
 * -EPIPE without a spare that answers. Caller holds xlock.
 */
static int promote(void)
{
	struct zreq rq = { .op = Z_PROMOTE };
	int sock = ssock, next = -1;
	pid_t old, next_pid = 0;

	if (sock < 0)
		return -EPIPE;
	ssock = -1;
	if (send_with_fd(sock, &rq, sizeof(rq), NULL, 0) < 0 ||
	    recv_hello(sock, &next_pid, &next) < 0) {
		close(sock);
		reap(spid);
		spid = 0;
		/* It may have made a spare before its hello was lost. */
		reap_strays("(braid-spare)");
		return -EPIPE;
	}
	pthread_mutex_lock(&zlock);
	close(zsock);
	old = zpid;
	zsock = sock;
	zpid = spid;
	pthread_mutex_unlock(&zlock);
	ssock = next;
	spid = next_pid;
	reap(old);
	return 0;
}

/* No spare to take over from a zygote that cannot be trusted to answer
 * in turn: there is none from now on (forks fail -ENOTSUP). Caller holds
 * xlock. */
static void forsake(void)
{
	pid_t old;

	pthread_mutex_lock(&zlock);
	close(zsock);
	zsock = -1;
	old = zpid;
	zpid = 0;
	pthread_mutex_unlock(&zlock);
	reap(old);
}

pid_t br__zygote_fork(int memfd, int efd, unsigned idx, uint32_t gen)
{
	struct zreq rq = { .op = Z_FORK, .idx = idx, .gen = gen };
	const int fds[2] = { memfd, efd };
	long pid = -ENOTSUP;

	pthread_mutex_lock(&xlock);
	for (int tries = 0; tries < 2; tries++) {
		ssize_t n;
		int sock, r;

		pthread_mutex_lock(&zlock);
		sock = zsock;
		pthread_mutex_unlock(&zlock);
		if (sock < 0) {
			pid = -ENOTSUP;
			break;
		}
		r = send_with_fd(sock, &rq, sizeof(rq), fds, 2);
		if (r == 0) {
			do
				n = BR__FAULT_ERRNO("braid/zygote/answer",
						    ENOMEM) ?
					    -1 :
					    recv(sock, &pid, sizeof(pid), 0);
			while (n < 0 && errno == EINTR);
			if (n == sizeof(pid))
				break;
			/* It took the request and its answer is lost: it
			 * may have made a worker, which the caller looks
			 * for. Asked again, it could make a second. A
			 * zygote whose answer may still come is no use
			 * either: its spare takes over. */
			if (promote() < 0)
				forsake();
			pid = -ENOLINK;
			break;
		}
		pid = r;
		/* The zygote was gone before it took the request: its spare
		 * takes over, and is asked again. */
		if ((r != -EPIPE && r != -ECONNRESET) || promote() < 0)
			break;
	}
	pthread_mutex_unlock(&xlock);
	return (pid_t)pid;
}
