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
 *   The workers are raw clones of a single-threaded process, without
 *   glibc's fork handlers: nothing can hold a lock in the zygote, and
 *   glibc (2.34 on) asks the kernel for the thread id in raise(), so
 *   abort() in a job is still SIGABRT.
 *
 * Concurrency
 *   - get/put: under zlock. fork: any plain thread; requests are
 *     serialised by xlock (one request and its answer at a time).
 */
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

struct zreq {
	unsigned idx;
};

static pthread_mutex_t zlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t xlock = PTHREAD_MUTEX_INITIALIZER;
static int zsock = -1;
static pid_t zpid;
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

static int recv_fds(int sock, struct zreq *rq, int fds[2])
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { rq, sizeof(*rq) };
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
	if (n <= 0)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (n != sizeof(*rq) || !c || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
		return -1;
	memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
	return 0;
}

__attribute__((noreturn)) static void zygote_main(int sock, pid_t parent)
{
	struct sigaction sa;
	sigset_t all;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "braid-zygote");
	/* Its own process group: a terminal's ^C goes to the program,
	 * which decides; workers die with it anyway. */
	setpgid(0, 0);
	if (sock != ZFD) {
		if (dup2(sock, ZFD) < 0)
			_exit(1);
	}
	if (syscall(SYS_close_range, ZFD + 1, ~0u, 0) < 0) {
		for (int fd = ZFD + 1; fd < 65536; fd++)
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

	for (;;) {
		struct zreq rq;
		int fds[2];
		long pid;

		if (recv_fds(ZFD, &rq, fds) < 0)
			_exit(0); /* the program closed us, or died */
		pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
		if (pid == 0) {
			close(ZFD);
			br__pool_worker_main(fds[0], fds[1], rq.idx);
		}
		if (pid < 0)
			pid = -errno;
		close(fds[0]);
		close(fds[1]);
		if (send(ZFD, &pid, sizeof(pid), MSG_NOSIGNAL) != sizeof(pid))
			_exit(0);
	}
}

static int start(void)
{
	int sv[2];
	pid_t me = getpid(), pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
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
	zsock = sv[0];
	zpid = pid;
	return 0;
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
	int sock = -1;
	pid_t pid = 0;

	pthread_mutex_lock(&zlock);
	if (zrefs > 0 && --zrefs == 0) {
		sock = zsock;
		pid = zpid;
		zsock = -1;
		zpid = 0;
	}
	pthread_mutex_unlock(&zlock);
	if (sock < 0)
		return;
	close(sock); /* its recvmsg sees end of file and it exits */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

pid_t br__zygote_fork(int memfd, int efd, unsigned idx)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct zreq rq = { .idx = idx };
	struct iovec iov = { &rq, sizeof(rq) };
	struct msghdr mh = { 0 };
	struct cmsghdr *c;
	long pid = -ENOTSUP;
	ssize_t n;
	int sock;

	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), (int[2]){ memfd, efd }, 2 * sizeof(int));

	pthread_mutex_lock(&xlock);
	pthread_mutex_lock(&zlock);
	sock = zsock;
	pthread_mutex_unlock(&zlock);
	if (sock >= 0) {
		do
			n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n != sizeof(rq)) {
			pid = n < 0 ? -errno : -EIO;
		} else {
			do
				n = recv(sock, &pid, sizeof(pid), 0);
			while (n < 0 && errno == EINTR);
			if (n != sizeof(pid))
				pid = n < 0 ? -errno : -EPIPE;
		}
	}
	pthread_mutex_unlock(&xlock);
	return (pid_t)pid;
}
