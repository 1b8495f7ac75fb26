/* SPDX-License-Identifier: MIT */
/*
 * io_fs.c - file-system calls: open, stat, fsync, unlink, rename, mkdir,
 * a directory listing, and a whole file read or written in one call.
 *
 * Design
 *   openat, statx and fsync prepare their SQE as io_ops.c's calls do.
 *   Without a ring, openat tries a lookup from the kernel's caches with
 *   O_NONBLOCK first, as the ring does (openat_nowait); statx and fsync,
 *   and the openat that needs more, go to the blocking pool as a copy
 *   (fs_off_loop), so that a task cancelled or past its deadline scope
 *   stops waiting for them.
 *
 *   What io_uring has (IORING_OP_UNLINKAT and RENAMEAT since Linux 5.11,
 *   MKDIRAT since 5.15) goes through the worker's ring like any other
 *   operation (io.c), and its -EINVAL is the call's answer: which of
 *   them the kernel has is known from the ring's probe at set-up
 *   (ring.c, br__ring.ops). One it lacks runs on the runtime's blocking
 *   pool, as a listing always does (io_uring has no getdents). So does
 *   every one of them in a task on a worker without a ring: a file-system
 *   call may block for as long as the disk takes, and a loop must not.
 *   From a plain thread each is the plain system call.
 *
 *   br_read_file and br_write_file are built on br_openat, br_read and
 *   br_write: a task suspends for each.
 *
 * Concurrency
 *   Each call touches its arguments and its own records, and reads its
 *   worker's probed opcodes, which are written before the worker runs
 *   any task.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "blocking.h"
#include "braid.h"
#include "io.h"
#include "task.h"
#include "worker.h"

#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif

/* A call; a blocking-pool thread makes a copy of it for a task. */
struct fs_call {
	struct br__offload oc; /* the copy's */
	int op;
	int dirfd, dirfd2, flags; /* FS_FSYNC: dirfd is the file */
	const char *path, *path2;
	mode_t mode;
	unsigned mask;	   /* FS_STATX */
	struct statx *out; /* FS_STATX: the caller's */
	struct statx stx;  /* FS_STATX: the copy's result */
	char **names;	   /* FS_LIST: the result */
	long ret;	   /* FS_OPEN: an fd nobody took is closed */
};

/* The first three have ring opcodes that older kernels refuse. */
enum {
	FS_UNLINK,
	FS_RENAME,
	FS_MKDIR,
	FS_LIST,
	FS_OPEN,
	FS_FSYNC,
	FS_STATX
};

/* The ring opcode of each of the first three, as a bit of br__ring.ops. */
static const unsigned ring_op[FS_LIST] = {
	[FS_UNLINK] = BR__OP_UNLINKAT,
	[FS_RENAME] = BR__OP_RENAMEAT,
	[FS_MKDIR] = BR__OP_MKDIRAT,
};

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in path but . and .., sorted, in one allocation: an array
 * of pointers, NULL-terminated, followed by the strings. */
static long list(const char *path, char ***out)
{
	DIR *d = opendir(path);
	struct dirent *e;
	size_t n = 0, bytes = 0, at;
	char **v, *s;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		n++;
		bytes += strlen(e->d_name) + 1;
	}
	v = malloc((n + 1) * sizeof(*v) + bytes);
	if (!v) {
		closedir(d);
		return -ENOMEM;
	}
	rewinddir(d);
	s = (char *)(v + n + 1);
	at = 0;
	/* Entries made since the count are left out, not overrun. */
	while (at < n && (e = readdir(d))) {
		size_t len = strlen(e->d_name) + 1;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (len > bytes)
			break;
		memcpy(s, e->d_name, len);
		v[at++] = s;
		s += len;
		bytes -= len;
	}
	closedir(d);
	v[at] = NULL;
	qsort(v, at, sizeof(*v), by_name);
	*out = v;
	return (long)at;
}

static long fs_sys(struct fs_call *c)
{
	switch (c->op) {
	case FS_UNLINK:
		return BR__SYS(unlinkat(c->dirfd, c->path, c->flags));
	case FS_RENAME:
		return BR__SYS(
			renameat(c->dirfd, c->path, c->dirfd2, c->path2));
	case FS_MKDIR:
		return BR__SYS(mkdirat(c->dirfd, c->path, c->mode));
	case FS_OPEN:
		return BR__SYS(openat(c->dirfd, c->path, c->flags, c->mode));
	case FS_FSYNC:
		return BR__SYS(c->flags ? fdatasync(c->dirfd) :
					  fsync(c->dirfd));
	case FS_STATX:
		return BR__SYS(
			statx(c->dirfd, c->path, c->flags, c->mask, c->out));
	default:
		return list(c->path, &c->names);
	}
}

static void fs_run(struct br__offload *o)
{
	struct fs_call *c = (struct fs_call *)o;

	c->ret = fs_sys(c);
}

/* The copy, once the task and the call are done with it, and what
 * nobody took: a listing, an opened fd. */
static void fs_drop(struct br__offload *o)
{
	struct fs_call *c = (struct fs_call *)o;

	if (c->op == FS_OPEN && c->ret >= 0)
		close((int)c->ret);
	free(c->names);
	free(c);
}

/*
 * On the blocking pool from a task, at once from a plain thread, and
 * BR_ENOTTASK from a loop callback (br__offload_where). The pool runs a
 * copy, paths and results included: a task cancelled, or past its
 * deadline scope, stops waiting, and the call, which cannot be stopped,
 * finishes on its own and frees what it made (closes the fd an open
 * made).
 */
static long fs_off_loop(struct fs_call *c)
{
	int where = br__offload_where();
	size_t l1, l2;
	struct fs_call *h;
	long r;

	if (where <= 0)
		return where < 0 ? where : fs_sys(c);
	l1 = c->path ? strlen(c->path) + 1 : 0;
	l2 = c->path2 ? strlen(c->path2) + 1 : 0;
	h = malloc(sizeof(*h) + l1 + l2);
	if (!h)
		return -ENOMEM;
	*h = *c;
	if (l1)
		h->path = memcpy((char *)(h + 1), c->path, l1);
	if (l2)
		h->path2 = memcpy((char *)(h + 1) + l1, c->path2, l2);
	h->oc.run = fs_run;
	h->oc.drop = fs_drop;
	h->names = NULL;
	h->out = &h->stx;
	h->ret = -EINTR;
	r = br__offload(&h->oc);
	if (r == 0) {
		r = h->ret;
		c->names = h->names;
		h->names = NULL;
		if (c->op == FS_STATX && r == 0)
			*c->out = h->stx;
		h->ret = -EBADF; /* taken */
	}
	br__offload_put(&h->oc);
	return r;
}

/*
 * openat on a loop without a ring, as the ring's IORING_OP_OPENAT does
 * it: first with a lookup that only uses the kernel's caches
 * (RESOLVE_CACHED, Linux 5.12) and O_NONBLOCK, which a FIFO needs so as
 * not to wait for its other end (the ring, like this, opens a FIFO's
 * read end at once and gives ENXIO for a write end nobody reads), then
 * O_NONBLOCK taken off the new description unless the caller asked for
 * it. What needs more (O_CREAT, O_TRUNC, a lookup not in the cache, an
 * older kernel) goes to the blocking pool.
 */
static int openat_nowait(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = { .flags = (uint64_t)(flags | O_NONBLOCK),
				.resolve = RESOLVE_CACHED };
	struct fs_call c = { .op = FS_OPEN,
			     .dirfd = dirfd,
			     .flags = flags,
			     .path = path,
			     .mode = mode };
	int fd, fl;

	if (!(flags & (O_CREAT | O_TRUNC | O_TMPFILE))) {
		fd = (int)BR__SYS(
			syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
		if (fd >= 0) {
			fl = fcntl(fd, F_GETFL);
			if (!(flags & O_NONBLOCK) && fl >= 0)
				fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
			return fd;
		}
		/* EAGAIN: not in the cache; ENOSYS, EINVAL: no openat2 or
		 * RESOLVE_CACHED here (or a flag it refuses and openat
		 * ignores). The pool's openat gives the answer. */
		if (fd != -EAGAIN && fd != -ENOSYS && fd != -EINVAL)
			return fd;
	}
	return (int)fs_off_loop(&c);
}

int br_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	struct br__io io;
	int m;

	if (!path)
		return -EFAULT;
	flags |= O_CLOEXEC;
	m = br__io_start(&io, -1, 0, -1);
	if (m == BR__IO_RING) {
		io_uring_prep_openat(io.sqe, dirfd, path, flags, mode);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	if (br__io_nowait(&io))
		return openat_nowait(dirfd, path, flags, mode);
	return (int)BR__SYS(openat(dirfd, path, flags, mode));
}

int br_fsync(int fd, int datasync)
{
	struct fs_call c = { .op = FS_FSYNC, .dirfd = fd, .flags = datasync };
	struct br__io io;
	int m;

	if (fd < 0)
		return -EBADF;
	m = br__io_start(&io, fd, 0, -1);

	if (m == BR__IO_RING) {
		io_uring_prep_fsync(io.sqe, fd,
				    datasync ? IORING_FSYNC_DATASYNC : 0);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	if (br__io_nowait(&io))
		return (int)fs_off_loop(&c);
	return (int)BR__SYS(datasync ? fdatasync(fd) : fsync(fd));
}

int br_statx(int dirfd, const char *path, int flags, unsigned mask,
	     struct statx *out)
{
	struct fs_call c = { .op = FS_STATX,
			     .dirfd = dirfd,
			     .flags = flags,
			     .path = path,
			     .mask = mask,
			     .out = out };
	struct br__io io;
	int m;

	if (!path || !out)
		return -EFAULT;
	m = br__io_start(&io, -1, 0, -1);
	if (m == BR__IO_RING) {
		io_uring_prep_statx(io.sqe, dirfd, path, flags, mask, out);
		return br__io_wait(&io);
	}
	if (m != BR__IO_SYS)
		return m;
	if (br__io_nowait(&io))
		return (int)fs_off_loop(&c);
	return (int)BR__SYS(statx(dirfd, path, flags, mask, out));
}

/* Through the ring when the calling task's worker has one whose kernel
 * has op's opcode; else on the blocking pool (or the plain call from a
 * plain thread, BR_ENOTTASK from a loop callback: fs_off_loop). */
static long fs_call(struct fs_call *c)
{
	struct br__worker *w = br__worker_current();
	struct br__io io;
	int m;

	if (c->op == FS_LIST || !br__task_current() || !w->ring.on ||
	    !(w->ring.ops & ring_op[c->op]))
		return fs_off_loop(c);
	m = br__io_start(&io, -1, 0, -1);
	if (m != BR__IO_RING)
		return m; /* -ECANCELED, -ETIMEDOUT */
	if (c->op == FS_UNLINK)
		io_uring_prep_unlinkat(io.sqe, c->dirfd, c->path, c->flags);
	else if (c->op == FS_RENAME)
		io_uring_prep_renameat(io.sqe, c->dirfd, c->path, c->dirfd2,
				       c->path2, 0);
	else
		io_uring_prep_mkdirat(io.sqe, c->dirfd, c->path, c->mode);
	return br__io_wait(&io);
}

int br_unlinkat(int dirfd, const char *path, int flags)
{
	struct fs_call c = {
		.op = FS_UNLINK, .dirfd = dirfd, .path = path, .flags = flags
	};

	if (!path)
		return -EFAULT;
	if (flags & ~AT_REMOVEDIR)
		return -EINVAL;
	return (int)fs_call(&c);
}

int br_renameat(int olddirfd, const char *oldpath, int newdirfd,
		const char *newpath)
{
	struct fs_call c = { .op = FS_RENAME,
			     .dirfd = olddirfd,
			     .path = oldpath,
			     .dirfd2 = newdirfd,
			     .path2 = newpath };

	if (!oldpath || !newpath)
		return -EFAULT;
	return (int)fs_call(&c);
}

int br_mkdirat(int dirfd, const char *path, mode_t mode)
{
	struct fs_call c = {
		.op = FS_MKDIR, .dirfd = dirfd, .path = path, .mode = mode
	};

	if (!path)
		return -EFAULT;
	return (int)fs_call(&c);
}

ssize_t br_listdir(const char *path, char ***names)
{
	struct fs_call c = { .op = FS_LIST, .path = path };
	long r;

	if (!path || !names)
		return -EFAULT;
	*names = NULL;
	r = fs_call(&c);
	if (r >= 0)
		*names = c.names;
	return r;
}

ssize_t br_read_file(const char *path, void **buf, size_t max)
{
	/* Room for max bytes, one more (which tells the file is longer),
	 * and a terminating zero. */
	size_t len = 0, cap = 0, lim = max < SIZE_MAX - 2 ? max + 2 : SIZE_MAX;
	char *b = NULL;
	ssize_t r;
	int fd;

	if (!path || !buf)
		return -EFAULT;
	*buf = NULL;
	fd = br_openat(AT_FDCWD, path, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	for (;;) {
		if (cap - len < 2) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nb;

			if (ncap > lim)
				ncap = lim; /* one past max tells */
			nb = ncap > cap ? realloc(b, ncap) : NULL;
			if (!nb) {
				r = ncap > cap ? -ENOMEM : -EFBIG;
				goto fail;
			}
			b = nb;
			cap = ncap;
		}
		r = br_read(fd, b + len, cap - len - 1);
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max) {
			r = -EFBIG;
			goto fail;
		}
	}
	br_close(fd);
	b[len] = '\0'; /* room kept: a convenience for text */
	*buf = b;
	return (ssize_t)len;
fail:
	br_close(fd);
	free(b);
	return r;
}

ssize_t br_write_file(const char *path, const void *buf, size_t len,
		      mode_t mode)
{
	ssize_t r;
	int fd, c;

	if (!path || (!buf && len))
		return -EFAULT;
	fd = br_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return fd;
	r = br_write_all(fd, buf, len);
	c = br_close(fd);
	return r < 0 ? r : c < 0 ? c : r;
}
