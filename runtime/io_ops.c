/* SPDX-License-Identifier: MIT */
/*
 * io_ops.c - the public I/O calls: each prepares one SQE for its
 * operation, or makes the plain syscall (see io.c for which, and for the
 * wait).
 *
 * Every call has the same shape:
 *
 *     m = br__io_start(&io, fd, readiness, timeout);
 *     if (m == BR__IO_RING)   prepare io.sqe, return br__io_wait(&io)
 *     if (m != BR__IO_SYS)    return m            (error before starting)
 *     return the syscall's result as -errno or the count
 *
 * Without a ring, no call may block the worker thread, whatever mode the
 * caller left its fd in (transfer_nowait). O_NONBLOCK belongs to the open
 * file description, which other processes may share (a terminal, a pipe
 * to a shell), so braid never sets it on an fd it was given for a
 * transfer; each call is made non-blocking by itself, tried first, and
 * waits on the loop for readiness only when it says EAGAIN:
 *   - socket calls with MSG_DONTWAIT;
 *   - reads and writes with preadv2/pwritev2(RWF_NOWAIT), which sockets,
 *     pipes (Linux 6.x) and regular files of most file systems honour;
 *   - what refuses RWF_NOWAIT: a socket on an older kernel through its
 *     socket call, an fd already O_NONBLOCK as it is, and anything else
 *     (a terminal, a character device, an older kernel's pipe) by waiting
 *     for readiness and then making the call on the blocking pool, a
 *     write cut to PIPE_BUF so that it fits what readiness promised;
 *   - regular files and block devices, where readiness means nothing:
 *     a read the page cache cannot serve at once (RWF_NOWAIT's EAGAIN),
 *     or any transfer where RWF_NOWAIT is refused, goes to the blocking
 *     pool, as io_uring punts it to its own workers.
 * A call on the blocking pool is awaited without cancellation, since its
 * buffers are the caller's; it is short (readiness came first) or a file
 * system's. That is what libuv does for files (its thread pool) and
 * roughly what Go does for fds it did not open non-blocking (a thread
 * blocks, and the scheduler carries on elsewhere). accept() and connect()
 * have no per-call form: on a blocking socket, O_NONBLOCK is set around
 * the one call, under a lock, and restored. openat, statx and fsync are
 * in io_fs.c.
 *
 * Every call that takes a descriptor refuses a negative one first
 * (-EBADF at once): poll() skips negative fds, so a plain thread with a
 * deadline, and a loop without a ring, would otherwise wait out the
 * deadline; and io_uring may wait for one fd's readiness before it looks
 * at the other (splice).
 *
 * br_close() is not cancellable (br__io_start_release): a cancelled task
 * must be able to close what it holds.
 *
 * A receive right after the task's send on the same socket is the
 * request/response pattern: the answer cannot have arrived yet, so the
 * recv asks the kernel to wait for readiness before its first attempt
 * (IORING_RECVSEND_POLL_FIRST), which saves a failed receive per
 * exchange (docs/ARCHITECTURE.md measures what it is worth to a server).
 *
 * Concurrency: each call touches only its arguments and its own
 * br__io; any thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "braid.h"
#include "io.h"
#include "task.h"
#include "wait.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

#define NONE (-1) /* no timeout of the call's own: the task's */

/* The kernel rejected IORING_RECVSEND_POLL_FIRST once: never ask again.
 * A property of the kernel, so one flag for the process. */
static _Atomic int no_poll_first;

/* SQE lengths are 32-bit: clamp, the result is a short transfer. */
static size_t clamp_len(size_t len)
{
	return len > 0x7ffff000u ? 0x7ffff000u : len;
}

static int is_socket_op(int op)
{
	return op == IORING_OP_RECV || op == IORING_OP_SEND ||
	       op == IORING_OP_RECVMSG || op == IORING_OP_SENDMSG;
}

/* The plain syscall for op; off < 0 means the fd's own position. */
static long sys_transfer(int op, int fd, void *addr, size_t len, int64_t off,
			 int flags)
{
	switch (op) {
	case IORING_OP_READ:
		return off < 0 ? read(fd, addr, len) :
				 pread(fd, addr, len, off);
	case IORING_OP_WRITE:
		return off < 0 ? write(fd, addr, len) :
				 pwrite(fd, addr, len, off);
	case IORING_OP_READV:
		return readv(fd, addr, (int)len);
	case IORING_OP_WRITEV:
		return writev(fd, addr, (int)len);
	case IORING_OP_RECV:
		return recv(fd, addr, len, flags);
	case IORING_OP_SEND:
		return send(fd, addr, len, flags);
	case IORING_OP_RECVMSG:
		return recvmsg(fd, addr, flags);
	default:
		return sendmsg(fd, addr, flags);
	}
}

/* ---- transfers that cannot block a loop without a ring ---- */

/* How transfer_nowait() makes a call on one fd. */
enum how {
	BY_NOWAIT,     /* preadv2/pwritev2 with RWF_NOWAIT */
	BY_SOCKET,     /* a socket call with MSG_DONTWAIT */
	BY_PLAIN,      /* the fd is O_NONBLOCK already */
	BY_POOL,       /* a file: on the blocking pool */
	BY_POOL_READY, /* readiness on the loop, then the blocking pool */
};

/* A call made on the blocking pool for a task. */
struct pool_fn {
	long (*fn)(void *arg); /* returns the count or -errno */
	void *arg;
	long ret;
};

static void *pool_fn_run(void *arg)
{
	struct pool_fn *p = arg;

	p->ret = p->fn(p->arg);
	return NULL;
}

/* fn(arg) on the blocking pool, waited for not cancellably: a transfer's
 * buffer is the caller's until it returns. fn's result (a count or
 * -errno), or the pool's error. Context: a task. */
static long on_pool_fn(long (*fn)(void *), void *arg)
{
	struct pool_fn p = { fn, arg, -EIO };
	br_future *f = br_spawn_blocking(br_current_runtime(), pool_fn_run, &p);
	int err = br__wait_any(&f, 1, -1, BR__WAIT_NOCANCEL);

	if (err >= 0)
		err = br_future_error(f);
	br_future_release(f);
	return err < 0 ? err : p.ret;
}

struct pool_transfer {
	int op, fd, flags;
	void *addr;
	size_t len;
	int64_t off;
};

static long pool_transfer_run(void *arg)
{
	struct pool_transfer *c = arg;

	return BR__SYS(
		sys_transfer(c->op, c->fd, c->addr, c->len, c->off, c->flags));
}

/* A transfer on the blocking pool. */
static ssize_t on_pool(int op, int fd, void *addr, size_t len, int64_t off,
		       int flags)
{
	struct pool_transfer c = { op, fd, flags, addr, len, off };

	return on_pool_fn(pool_transfer_run, &c);
}

/* The readiness a transfer waits for. */
static short direction(int op)
{
	return op == IORING_OP_READ || op == IORING_OP_READV ||
			       op == IORING_OP_RECV || op == IORING_OP_RECVMSG ?
		       POLLIN :
		       POLLOUT;
}

/* How to make calls on fd that RWF_NOWAIT refused (or, after EAGAIN,
 * whether fd is a file). */
static enum how classify(int fd, int after_eagain)
{
	struct stat st;
	int fl;

	if (fstat(fd, &st) < 0)
		return BY_PLAIN; /* the call itself will give the error */
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
		return BY_POOL;
	if (after_eagain)
		return BY_NOWAIT;
	if (S_ISSOCK(st.st_mode))
		return BY_SOCKET;
	fl = fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK) ? BY_PLAIN : BY_POOL_READY;
}

/* A read or write op on a socket as the socket call it amounts to:
 * read(2) and write(2) are recv and send with no flags (so a write
 * still raises SIGPIPE, as write(2) and the ring's write do). */
static ssize_t as_socket_call(int op, int fd, void *addr, size_t len)
{
	struct msghdr m = { .msg_iov = addr, .msg_iovlen = len };

	switch (op) {
	case IORING_OP_READ:
		return BR__SYS(recv(fd, addr, len, MSG_DONTWAIT));
	case IORING_OP_WRITE:
		return BR__SYS(send(fd, addr, len, MSG_DONTWAIT));
	case IORING_OP_READV:
		return BR__SYS(recvmsg(fd, &m, MSG_DONTWAIT));
	default:
		return BR__SYS(sendmsg(fd, &m, MSG_DONTWAIT));
	}
}

/* A write on the blocking pool after readiness: at most PIPE_BUF bytes
 * (of the first non-empty buffer, for a vector), which a pipe that polled
 * writable takes without blocking. A short write, as a non-blocking
 * write would be. */
static ssize_t write_ready_on_pool(int op, int fd, void *addr, size_t len)
{
	const struct iovec *iov = addr;

	if (op == IORING_OP_WRITEV) {
		size_t i;

		for (i = 0; i < len && !iov[i].iov_len; i++)
			;
		if (i == len)
			return on_pool(op, fd, addr, len, -1, 0);
		addr = iov[i].iov_base;
		len = iov[i].iov_len;
	}
	return on_pool(IORING_OP_WRITE, fd, addr,
		       len > PIPE_BUF ? PIPE_BUF : len, -1, 0);
}

/*
 * transfer_nowait - op on a loop without a ring (header). io came from
 * br__io_start(), which has not waited; flags are the caller's MSG_* flags for
 * socket ops, with MSG_NOSIGNAL added for sends.
 */
static ssize_t transfer_nowait(struct br__io *io, int op, int fd, void *addr,
			       size_t len, int64_t off, int flags)
{
	enum how how = is_socket_op(op) ? BY_SOCKET : BY_NOWAIT;
	size_t got = 0; /* MSG_WAITALL's bytes so far */
	short ev = direction(op);
	int in = ev == POLLIN, kind_known = 0, m;
	struct iovec one = { addr, len };
	const struct iovec *iov = &one;
	int cnt = 1;
	ssize_t r;

	if (op == IORING_OP_READV || op == IORING_OP_WRITEV) {
		iov = addr;
		cnt = (int)len;
	}
	for (;;) {
		switch (how) {
		case BY_NOWAIT:
			r = BR__SYS(
				in ? preadv2(fd, iov, cnt, off, RWF_NOWAIT) :
				     pwritev2(fd, iov, cnt, off, RWF_NOWAIT));
			if (r == -EOPNOTSUPP || r == -ENOSYS) {
				how = classify(fd, 0);
				kind_known = 1;
				continue;
			}
			if (r == -EAGAIN && !kind_known) {
				how = classify(fd, 1);
				kind_known = 1;
				if (how == BY_POOL)
					continue;
			}
			break;
		case BY_SOCKET:
			r = is_socket_op(op) ?
				    BR__SYS(sys_transfer(op, fd, addr, len, off,
							 flags | MSG_DONTWAIT)) :
				    as_socket_call(op, fd, addr, len);
			if (flags & MSG_DONTWAIT)
				return r; /* the caller's own: no wait */
			/* MSG_WAITALL with MSG_DONTWAIT stops at what has
			 * arrived: go on until the whole length, EOF or an
			 * error, as the ring's receive does. */
			if (op == IORING_OP_RECV && (flags & MSG_WAITALL) &&
			    (r > 0 || (r == -EAGAIN && got))) {
				if (r > 0) {
					got += (size_t)r;
					if ((size_t)r == len)
						return (ssize_t)got;
					addr = (char *)addr + r;
					len -= (size_t)r;
					continue;
				}
			} else if (got) {
				return (ssize_t)got; /* EOF or an error */
			}
			break;
		case BY_PLAIN:
			r = BR__SYS(sys_transfer(op, fd, addr, len, off, 0));
			break;
		case BY_POOL:
			return on_pool(op, fd, addr, len, off, 0);
		default: /* BY_POOL_READY */
			m = br__io_ready(io, ev);
			if (m != BR__IO_SYS)
				return m;
			return in ? on_pool(op, fd, addr, len, off, 0) :
				    write_ready_on_pool(op, fd, addr, len);
		}
		if (r != -EAGAIN && r != -EWOULDBLOCK)
			return r;
		m = br__io_ready(io, ev);
		if (m != BR__IO_SYS)
			return got ? (ssize_t)got : m; /* keep what came */
	}
}

/*
 * transfer - one read, write, vector or socket transfer (op): through the
 * ring, or as the plain syscall on a plain thread, or one that cannot
 * block on a loop without a ring (transfer_nowait). len is the iovec
 * count for vectors and 1 for messages; off is -1 for the fd's own
 * position; flags are MSG_* for socket ops.
 */
static ssize_t transfer(int op, int fd, void *addr, size_t len, int64_t off,
			int flags, int64_t tmo)
{
	int sock = is_socket_op(op), first;
	struct br__io io;
	ssize_t r;
	int m;

	if (fd < 0)
		return -EBADF;
	if (op == IORING_OP_SEND || op == IORING_OP_SENDMSG)
		flags |= MSG_NOSIGNAL;
	for (;;) {
		m = br__io_start(&io, fd, direction(op), tmo);
		if (m == BR__IO_RING) {
			first = op == IORING_OP_RECV &&
				io.task->last_send_fd == fd &&
				!(flags & MSG_DONTWAIT) &&
				!atomic_load_explicit(&no_poll_first,
						      memory_order_relaxed);
			if (sock)
				io.task->last_send_fd =
					op == IORING_OP_SEND ||
							op == IORING_OP_SENDMSG ?
						fd :
						-1;
			io_uring_prep_rw(op, io.sqe, fd, addr, (unsigned)len,
					 (uint64_t)off);
			if (sock)
				io.sqe->msg_flags = (uint32_t)flags;
			if (first)
				io.sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
			r = br__io_wait(&io);
			if (r != -EINVAL || !first)
				return r;
			/* A kernel before 5.19: no such flag. */
			atomic_store_explicit(&no_poll_first, 1,
					      memory_order_relaxed);
			continue;
		}
		if (m != BR__IO_SYS)
			return m;
		if (br__io_nowait(&io))
			return transfer_nowait(&io, op, fd, addr, len, off,
					       flags);
		return BR__SYS(sys_transfer(op, fd, addr, len, off, flags));
	}
}

ssize_t br_read(int fd, void *buf, size_t len)
{
	return transfer(IORING_OP_READ, fd, buf, clamp_len(len), -1, 0, NONE);
}

ssize_t br_read_timeout(int fd, void *buf, size_t len, int64_t timeout_ms)
{
	return transfer(IORING_OP_READ, fd, buf, clamp_len(len), -1, 0,
			timeout_ms);
}

ssize_t br_write(int fd, const void *buf, size_t len)
{
	return transfer(IORING_OP_WRITE, fd, (void *)buf, clamp_len(len), -1, 0,
			NONE);
}

ssize_t br_write_timeout(int fd, const void *buf, size_t len,
			 int64_t timeout_ms)
{
	return transfer(IORING_OP_WRITE, fd, (void *)buf, clamp_len(len), -1, 0,
			timeout_ms);
}

ssize_t br_pread(int fd, void *buf, size_t len, off_t offset)
{
	if (offset < 0)
		return -EINVAL;
	return transfer(IORING_OP_READ, fd, buf, clamp_len(len), offset, 0,
			NONE);
}

ssize_t br_pwrite(int fd, const void *buf, size_t len, off_t offset)
{
	if (offset < 0)
		return -EINVAL;
	return transfer(IORING_OP_WRITE, fd, (void *)buf, clamp_len(len),
			offset, 0, NONE);
}

ssize_t br_readv(int fd, const struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	return transfer(IORING_OP_READV, fd, (void *)iov, (size_t)iovcnt, -1, 0,
			NONE);
}

ssize_t br_writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	return transfer(IORING_OP_WRITEV, fd, (void *)iov, (size_t)iovcnt, -1,
			0, NONE);
}

ssize_t br_recv(int fd, void *buf, size_t len, int flags)
{
	return transfer(IORING_OP_RECV, fd, buf, clamp_len(len), 0, flags,
			NONE);
}

ssize_t br_recv_timeout(int fd, void *buf, size_t len, int flags,
			int64_t timeout_ms)
{
	return transfer(IORING_OP_RECV, fd, buf, clamp_len(len), 0, flags,
			timeout_ms);
}

ssize_t br_send(int fd, const void *buf, size_t len, int flags)
{
	return transfer(IORING_OP_SEND, fd, (void *)buf, clamp_len(len), 0,
			flags, NONE);
}

ssize_t br_send_timeout(int fd, const void *buf, size_t len, int flags,
			int64_t timeout_ms)
{
	return transfer(IORING_OP_SEND, fd, (void *)buf, clamp_len(len), 0,
			flags, timeout_ms);
}

ssize_t br_recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (!msg)
		return -EFAULT;
	return transfer(IORING_OP_RECVMSG, fd, msg, 1, 0, flags, NONE);
}

ssize_t br_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (!msg)
		return -EFAULT;
	return transfer(IORING_OP_SENDMSG, fd, (void *)msg, 1, 0, flags, NONE);
}

ssize_t br_recvfrom(int fd, void *buf, size_t len, int flags,
		    struct sockaddr *addr, socklen_t *addrlen)
{
	struct iovec iov = { .iov_base = buf, .iov_len = clamp_len(len) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (addr && !addrlen)
		return -EFAULT;
	msg.msg_name = addr;
	msg.msg_namelen = addr ? *addrlen : 0;
	r = br_recvmsg(fd, &msg, flags);
	if (r >= 0 && addr)
		*addrlen = msg.msg_namelen;
	return r;
}

ssize_t br_sendto(int fd, const void *buf, size_t len, int flags,
		  const struct sockaddr *addr, socklen_t addrlen)
{
	struct iovec iov = { .iov_base = (void *)buf,
			     .iov_len = clamp_len(len) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	msg.msg_name = (void *)addr;
	msg.msg_namelen = addr ? addrlen : 0;
	return br_sendmsg(fd, &msg, flags);
}

/*
 * accept() and connect() have no per-call non-blocking form. On a loop
 * without a ring, a blocking socket is made O_NONBLOCK for the one call
 * and then restored. The lock makes the read, set, call and restore one
 * step among braid's callers, so that two of them cannot each read the
 * other's temporary flag and leave it set for good. Another process
 * sharing the socket, or a plain thread of this one that calls accept()
 * itself, can see the flag for that moment.
 */
static pthread_mutex_t nb_lock = PTHREAD_MUTEX_INITIALIZER;

static int accept_nb(int fd, struct sockaddr *addr, socklen_t *addrlen,
		     int flags)
{
	int fl, r;

	pthread_mutex_lock(&nb_lock);
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	r = (int)BR__SYS(accept4(fd, addr, addrlen, flags));
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl);
	pthread_mutex_unlock(&nb_lock);
	return r;
}

static int connect_nb(int fd, const struct sockaddr *addr, socklen_t len)
{
	int fl, r;

	pthread_mutex_lock(&nb_lock);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0) {
		pthread_mutex_unlock(&nb_lock);
		return -errno;
	}
	if (!(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	r = (int)BR__SYS(connect(fd, addr, len));
	if (!(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl);
	pthread_mutex_unlock(&nb_lock);
	return r;
}

static int do_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
		     int flags, int64_t tmo)
{
	struct br__io io;
	int m, r;

	if (fd < 0)
		return -EBADF;
	if (addr && !addrlen)
		return -EFAULT;
	flags |= SOCK_CLOEXEC;
	m = br__io_start(&io, fd, POLLIN, tmo);
	if (m == BR__IO_RING) {
		io_uring_prep_accept(io.sqe, fd, addr, addrlen, flags);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	if (!br__io_nowait(&io))
		return (int)BR__SYS(accept4(fd, addr, addrlen, flags));
	/* Another task may take the connection that made the listener
	 * readable: try, and wait again on EAGAIN. */
	for (;;) {
		r = accept_nb(fd, addr, addrlen, flags);
		if (r != -EAGAIN && r != -EWOULDBLOCK)
			return r;
		m = br__io_ready(&io, POLLIN);
		if (m != BR__IO_SYS)
			return m;
	}
}

int br_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	return do_accept(fd, addr, addrlen, flags, NONE);
}

int br_accept_timeout(int fd, struct sockaddr *addr, socklen_t *addrlen,
		      int flags, int64_t timeout_ms)
{
	return do_accept(fd, addr, addrlen, flags, timeout_ms);
}

static int do_connect(int fd, const struct sockaddr *addr, socklen_t len,
		      int64_t tmo)
{
	struct br__io io;
	int m;

	if (fd < 0)
		return -EBADF;
	if (!addr)
		return -EFAULT;
	m = br__io_start(&io, fd, 0, tmo);
	if (m == BR__IO_RING) {
		io_uring_prep_connect(io.sqe, fd, addr, len);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	if (br__io_nowait(&io)) {
		/* Without a ring: start it non-blocking, then wait for
		 * writability and read the outcome. A Unix socket whose
		 * listener's backlog is full says EAGAIN where a blocking
		 * connect would wait: wait a little and try again. */
		int err = 0;
		socklen_t elen = sizeof(err);

		for (;;) {
			m = connect_nb(fd, addr, len);
			if (m != -EAGAIN)
				break;
			if (io.deadline >= 0 && br_now_ns() >= io.deadline)
				return -ETIMEDOUT;
			m = br_sleep_ms(1);
			if (m < 0)
				return m;
		}
		if (m != -EINPROGRESS)
			return m;
		/* Within the same deadline: a new limit here would let the
		 * call take twice its own. */
		m = br__io_ready(&io, POLLOUT);
		if (m != BR__IO_SYS)
			return m;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return -errno;
		return -err;
	}
	return (int)BR__SYS(connect(fd, addr, len));
}

int br_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	return do_connect(fd, addr, len, NONE);
}

int br_connect_timeout(int fd, const struct sockaddr *addr, socklen_t len,
		       int64_t timeout_ms)
{
	return do_connect(fd, addr, len, timeout_ms);
}

int br_close(int fd)
{
	struct br__io io;
	int m;

	if (fd < 0)
		return -EBADF;
	m = br__io_start_release(&io, fd);

	if (m == BR__IO_RING) {
		io_uring_prep_close(io.sqe, fd);
		return br__io_wait(&io);
	}
	if (m == BR_ENOTTASK)
		return m;
	/* No SQE for it (or no ring): a descriptor must not outlive its
	 * close, and close(2) never waits for a peer. */
	return (int)BR__SYS(close(fd));
}

int br_shutdown(int fd, int how)
{
	struct br__io io;
	int m;

	if (fd < 0)
		return -EBADF;
	m = br__io_start(&io, fd, 0, NONE);

	if (m == BR__IO_RING) {
		io_uring_prep_shutdown(io.sqe, fd, how);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	return (int)BR__SYS(shutdown(fd, how));
}

ssize_t br_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
		  size_t len, unsigned flags)
{
	struct br__io io;
	loff_t oi = off_in, oo = off_out;
	int m;

	ssize_t r;

	if (fd_in < 0 || fd_out < 0)
		return -EBADF;
	len = clamp_len(len);
	m = br__io_start(&io, fd_in, POLLIN, NONE);
	if (m == BR__IO_RING) {
		io_uring_prep_splice(io.sqe, fd_in, off_in, fd_out, off_out,
				     (unsigned)len, flags);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	if (!br__io_nowait(&io))
		return BR__SYS(splice(fd_in, off_in < 0 ? NULL : &oi, fd_out,
				      off_out < 0 ? NULL : &oo, len, flags));
	/* Without a ring: the pipe side(s) non-blocking for this call;
	 * on EAGAIN, wait for the side that is not ready. A socket or a
	 * file on the other side is read or written as it is. */
	for (;;) {
		struct pollfd p = { .fd = fd_in, .events = POLLIN };

		r = BR__SYS(splice(fd_in, off_in < 0 ? NULL : &oi, fd_out,
				   off_out < 0 ? NULL : &oo, len,
				   flags | SPLICE_F_NONBLOCK));
		if (r != -EAGAIN || (flags & SPLICE_F_NONBLOCK))
			return r;
		io.fd = poll(&p, 1, 0) == 1 ? fd_out : fd_in;
		m = br__io_ready(&io, io.fd == fd_in ? POLLIN : POLLOUT);
		if (m != BR__IO_SYS)
			return m;
	}
}

static int do_poll(int fd, short events, int64_t tmo)
{
	struct br__io io;
	struct pollfd p = { .fd = fd, .events = events };
	int m;

	if (fd < 0)
		return -EBADF;
	m = br__io_start(&io, fd, events, tmo);
	if (m == BR__IO_RING) {
		io_uring_prep_poll_add(io.sqe, fd, (unsigned)(uint16_t)events);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	/* A task waits on its loop, then asks what is ready, and waits
	 * again if the answer is nothing (its look failed, or what woke it
	 * is gone): br_poll() never returns 0. A plain thread blocks in
	 * poll() (within its deadline, it has waited in br__io_start()
	 * already). */
	if (br__io_nowait(&io)) {
		do {
			m = br__io_ready(&io, events);
			if (m != BR__IO_SYS)
				return m;
			m = poll(&p, 1, 0);
		} while (m == 0 || (m < 0 && errno == EINTR));
	} else {
		m = poll(&p, 1, -1);
	}
	if (m < 0)
		return -errno;
	if (p.revents & POLLNVAL)
		return -EBADF;
	return p.revents;
}

int br_poll(int fd, short events)
{
	return do_poll(fd, events, NONE);
}

int br_poll_timeout(int fd, short events, int64_t timeout_ms)
{
	return do_poll(fd, events, timeout_ms);
}

/* Write or send (a send with flags when send is set) until all of buf
 * is out: br_write_all and br_send_all. */
static ssize_t put_all(int fd, const void *buf, size_t len, int send, int flags)
{
	size_t done = 0;

	while (done < len) {
		const char *at = (const char *)buf + done;
		ssize_t r = send ? br_send(fd, at, len - done, flags) :
				   br_write(fd, at, len - done);

		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return (ssize_t)len;
}

ssize_t br_write_all(int fd, const void *buf, size_t len)
{
	return put_all(fd, buf, len, 0, 0);
}

ssize_t br_send_all(int fd, const void *buf, size_t len, int flags)
{
	return put_all(fd, buf, len, 1, flags);
}
