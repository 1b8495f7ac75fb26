/* SPDX-License-Identifier: MIT */
/*
 * hashwalk.c - recipe: the 64-bit FNV-1a hash of every regular file under
 * a directory, computed in a pool of worker processes. The tree is listed
 * with br_listdir (sorted, so the output is too), every path goes to the
 * pool in one br_map_ex, and a file that cannot be read fails only its
 * own line (BR_MAP_ITEM_ERRORS).
 *
 *   hashwalk DIR      prints "HASH  PATH" per file; errors on stderr
 *
 * Exits 1 if a file could not be hashed. Its Python twin is hashwalk.py.
 */
#include <braid.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct item {
	char path[PATH_MAX];
};

static struct item *items;
static size_t n, cap;
static int failed;

/* In a worker process: the file's hash, as 16 hex digits. */
static int fnv1a(br_job *job, const void *path, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u;
	unsigned char buf[4096];
	char hex[17];
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	(void)len;
	if (fd < 0)
		return -errno;
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < got; i++)
			h = (h ^ buf[i]) * 0x100000001b3u;
	got = got < 0 ? -errno : 0;
	close(fd);
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
	return got < 0 ? (int)got : br_job_write(job, hex, 16);
}

/* Every regular file under dir, depth first, in name order. */
static void walk(const char *dir)
{
	char **names;
	ssize_t k = br_listdir(dir, &names);

	if (k < 0) {
		fprintf(stderr, "%s: %s\n", dir, br_strerror((int)k));
		failed = 1;
		return;
	}
	for (ssize_t i = 0; i < k; i++) {
		struct item it;
		struct stat st;

		snprintf(it.path, sizeof(it.path), "%s/%s", dir, names[i]);
		if (lstat(it.path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			walk(it.path);
		if (!S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			items = realloc(items, cap * sizeof(*items));
			if (!items)
				abort();
		}
		items[n++] = it;
	}
	free(names);
}

int main(int argc, char **argv)
{
	br_runtime *rt;
	br_pool *pool;
	br_future *f;
	int err;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	if (br_runtime_new(&rt, NULL) < 0 || br_pool_new(&pool, rt, NULL) < 0)
		return 1;
	walk(argv[1]);
	f = br_map_ex(pool, fnv1a, items, sizeof(*items), n, 0,
		      BR_MAP_ITEM_ERRORS);
	err = br_await(f, NULL);
	for (size_t i = 0; i < n && !err; i++) {
		size_t len;
		int ierr;
		const char *hex = br_map_item(f, i, &len, &ierr);

		if (hex)
			printf("%.16s  %s\n", hex, items[i].path);
		else
			fprintf(stderr, "%s: %s\n", items[i].path,
				br_strerror(ierr));
		failed |= !hex;
	}
	if (err)
		fprintf(stderr, "hashwalk: %s\n", br_strerror(err));
	br_future_release(f);
	br_pool_free(pool);
	br_runtime_free(rt);
	free(items);
	return failed || err;
}
