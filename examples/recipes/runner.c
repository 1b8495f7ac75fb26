/* SPDX-License-Identifier: MIT */
/*
 * runner.c - recipe: run shell commands side by side, each in a process
 * group of its own with a time limit. A command still running at its limit
 * is killed with everything it started (sh -c 'sleep 9 &' leaves nothing
 * behind), and what it printed until then is kept.
 *
 *   runner LIMIT_MS COMMAND...
 *
 * Prints each command, its output (stdout and stderr) and how it ended, in
 * the order given; exits 1 if any failed. Its asyncio twin is runner.py.
 */
#include <braid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	int n = argc - 2, failed = 0;
	br_future **fs = calloc(argc, sizeof(*fs));
	br_runtime *rt;

	if (argc < 3 || argv[1][0] == '-' || !fs) {
		fprintf(stderr, "usage: %s LIMIT_MS COMMAND...\n", argv[0]);
		return 2;
	}
	if (br_runtime_new(&rt, NULL) < 0)
		return 1;
	for (int i = 0; i < n; i++) {
		const char *sh[] = { "sh", "-c", argv[i + 2], NULL };
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .stderr_mode = BR_EXEC_CAPTURE,
				   .timeout_ms = atoll(argv[1]),
				   .max_output = 1 << 20,
				   .flags = BR_EXEC_NEW_PGROUP };

		fs[i] = br_exec(rt, sh, &o);
	}
	for (int i = 0; i < n; i++) {
		int err = br_await(fs[i], NULL),
		    code = br_exec_exit_code(fs[i]);
		size_t len;
		const char *out = br_exec_output(fs[i], &len);

		printf("$ %s\n%.*s", argv[i + 2], (int)len, out ? out : "");
		if (err == -ETIMEDOUT)
			printf("[killed at the time limit]\n");
		else if (err)
			printf("[failed: %s]\n", br_strerror(err));
		else
			printf("[exit %d]\n", code);
		failed |= err || code;
		br_future_release(fs[i]);
	}
	br_runtime_free(rt);
	free(fs);
	return failed;
}
