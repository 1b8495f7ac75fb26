/* SPDX-License-Identifier: MIT */
/*
 * test_fs.c - file-system calls (io_fs.c): unlink, rename, mkdir, a
 * directory listing, and whole files read and written, from a task on
 * both backends (io_uring and BR_CONFIG_NO_URING) and from a plain
 * thread, which must all give the same answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers.h"

TestSuite(fs, .init = t_leak_init, .fini = t_leak_fini);

/* The whole story in a fresh directory under /tmp; returns NULL or the
 * failed condition. */
static void *fs_story(void *arg)
{
	char dir[] = "/tmp/braid-fs-XXXXXX", p[96], q[96];
	char **names = NULL;
	void *buf = NULL;
	ssize_t n;

	T_REQUIRE(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/sub", dir);
	T_REQUIRE(br_mkdirat(AT_FDCWD, p, 0700) == 0);
	T_REQUIRE(br_mkdirat(AT_FDCWD, p, 0700) == -EEXIST);
	snprintf(p, sizeof(p), "%s/b.txt", dir);
	T_REQUIRE(br_write_file(p, "hello, file", 11, 0600) == 11);
	snprintf(q, sizeof(q), "%s/a.txt", dir);
	T_REQUIRE(br_write_file(q, "", 0, 0600) == 0);
	n = br_listdir(dir, &names);
	T_REQUIRE(n == 3 && names && !names[3]);
	T_REQUIRE(!strcmp(names[0], "a.txt") && !strcmp(names[1], "b.txt") &&
		  !strcmp(names[2], "sub"));
	free(names);
	T_REQUIRE(br_read_file(p, &buf, 100) == 11);
	T_REQUIRE(!memcmp(buf, "hello, file", 12)); /* with its zero */
	free(buf);
	T_REQUIRE(br_read_file(p, &buf, 10) == -EFBIG && !buf);
	T_REQUIRE(br_read_file(q, &buf, 0) == 0 && buf);
	free(buf);
	snprintf(q, sizeof(q), "%s/sub/c.txt", dir);
	T_REQUIRE(br_renameat(AT_FDCWD, p, AT_FDCWD, q) == 0);
	T_REQUIRE(br_read_file(p, &buf, 100) == -ENOENT && !buf);
	T_REQUIRE(br_unlinkat(AT_FDCWD, q, 0) == 0);
	T_REQUIRE(br_unlinkat(AT_FDCWD, q, 0) == -ENOENT);
	snprintf(p, sizeof(p), "%s/sub", dir);
	T_REQUIRE(br_unlinkat(AT_FDCWD, p, 0) == -EISDIR);
	T_REQUIRE(br_unlinkat(AT_FDCWD, p, AT_REMOVEDIR) == 0);
	snprintf(p, sizeof(p), "%s/a.txt", dir);
	T_REQUIRE(br_unlinkat(AT_FDCWD, p, 0) == 0);
	T_REQUIRE(br_listdir(dir, &names) == 0 && names && !names[0]);
	free(names);
	T_REQUIRE(br_listdir("/nonexistent-braid", &names) == -ENOENT &&
		  !names);
	T_REQUIRE(br_unlinkat(AT_FDCWD, dir, AT_REMOVEDIR) == 0);
	T_REQUIRE(br_unlinkat(AT_FDCWD, NULL, 0) == -EFAULT);
	T_REQUIRE(br_renameat(AT_FDCWD, NULL, AT_FDCWD, dir) == -EFAULT);
	T_REQUIRE(br_listdir(NULL, &names) == -EFAULT);
	T_REQUIRE(br_read_file(NULL, &buf, 1) == -EFAULT);
	T_REQUIRE(br_write_file(NULL, "", 0, 0600) == -EFAULT);
	return NULL;
}

Test(fs, the_calls_answer_alike_on_both_backends_and_threads, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		t_assert_task_ok(br_spawn(rt, fs_story, NULL));
		br_runtime_free(rt);
	}
	cr_assert_null(fs_story(NULL));
}

/* A task cancelled while the pool lists a directory returns, and the
 * listing, finished on its own, is freed (ASan sees to it). */
static void *list_forever(void *arg)
{
	for (;;) {
		char **names = NULL;
		ssize_t n = br_listdir("/usr/bin", &names);

		free(names);
		if (n < 0)
			return (void *)(intptr_t)n;
	}
}

Test(fs, a_task_cancelled_during_a_listing_leaks_nothing, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		br_future *f = br_spawn(rt, list_forever, NULL);

		usleep(50 * 1000);
		cr_assert_eq(br_cancel(f), 0);
		cr_assert_eq(br_await(f, NULL), -ECANCELED);
		br_future_release(f);
		br_runtime_free(rt);
	}
}

/* A loop callback runs on the worker's own stack: a file-system call
 * there would stall the loop for as long as the disk takes, so it is
 * refused, on both backends, whatever the call. */
struct cb_fs {
	char dir[32];
	int list, unlink, mkdir, rename;
	char **names;
};

static void fs_in_callback(void *arg)
{
	struct cb_fs *c = arg;
	char p[64];

	snprintf(p, sizeof(p), "%s/x", c->dir);
	c->list = (int)br_listdir(c->dir, &c->names);
	c->unlink = br_unlinkat(AT_FDCWD, p, 0);
	c->mkdir = br_mkdirat(AT_FDCWD, p, 0700);
	c->rename = br_renameat(AT_FDCWD, p, AT_FDCWD, c->dir);
}

Test(fs, a_loop_callback_gets_enottask, .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);
		struct cb_fs c = { .dir = "/tmp/braid-fs-XXXXXX" };
		br_future *f;

		cr_assert_not_null(mkdtemp(c.dir));
		f = br_call_soon(rt, fs_in_callback, &c);
		cr_assert_eq(br_await(f, NULL), 0);
		br_future_release(f);
		cr_assert_eq(c.list, BR_ENOTTASK, "flags %#x: %d", flags,
			     c.list);
		cr_assert_null(c.names);
		cr_assert_eq(c.unlink, BR_ENOTTASK, "flags %#x", flags);
		cr_assert_eq(c.mkdir, BR_ENOTTASK, "flags %#x", flags);
		cr_assert_eq(c.rename, BR_ENOTTASK, "flags %#x", flags);
		cr_assert_eq(rmdir(c.dir), 0);
		br_runtime_free(rt);
	}
}

static uint64_t pool_calls(void)
{
	br_runtime_stats st = { 0 };

	br_stats(br_current_runtime(), &st);
	return st.total.blocking_calls;
}

/* A rename that works and one that is a real -EINVAL (a directory into
 * itself, the answer a kernel without the ring opcode also gives) must
 * cost the same blocking-pool calls: none where the ring has the opcode,
 * one where it has not or there is no ring. */
static void *rename_into_itself(void *arg)
{
	char dir[] = "/tmp/braid-fs-XXXXXX", a[96], b[96], in_b[128];
	uint64_t n, good, bad;

	(void)arg;
	T_REQUIRE(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(in_b, sizeof(in_b), "%s/sub", b);
	T_REQUIRE(br_mkdirat(AT_FDCWD, a, 0700) == 0);
	n = pool_calls();
	T_REQUIRE(br_renameat(AT_FDCWD, a, AT_FDCWD, b) == 0);
	good = pool_calls() - n;
	n = pool_calls();
	T_REQUIRE(br_renameat(AT_FDCWD, b, AT_FDCWD, in_b) == -EINVAL);
	bad = pool_calls() - n;
	T_REQUIRE(good <= 1 && bad == good);
	T_REQUIRE(br_unlinkat(AT_FDCWD, b, AT_REMOVEDIR) == 0);
	T_REQUIRE(rmdir(dir) == 0);
	return NULL;
}

/* Whether the ring has an fs opcode is known from its probe at set-up:
 * an -EINVAL from the ring is the answer, not run again on the blocking
 * pool to find out. */
Test(fs, a_real_einval_from_the_ring_is_not_asked_again_on_the_pool,
     .timeout = 30.0)
{
	FOR_EACH_MODE(flags)
	{
		br_runtime *rt = t_runtime(1, flags);

		t_assert_task_ok(br_spawn(rt, rename_into_itself, NULL));
		br_runtime_free(rt);
	}
}
