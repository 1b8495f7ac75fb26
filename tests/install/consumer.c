/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - a program built against an installed braid, the way a
 * user builds one: tests/install_check.sh compiles it with pkg-config's
 * flags and through CMake's find_package(braid), then runs it.
 *
 * It runs one task, checks that the header and the library it was
 * linked with agree on the version, and prints what the script checks:
 * the task's value, the version, and the file braid's code was loaded
 * from (the shared library, or the program itself when linked
 * statically).
 */
#define _GNU_SOURCE /* dladdr */
#include <braid.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void *square(void *arg)
{
	intptr_t n = (intptr_t)arg;

	br_sleep_ms(1);
	return (void *)(n * n);
}

int main(void)
{
	char header[32];
	Dl_info info;
	void *value = NULL;
	int err;

	err = br_run(&(br_config){ .workers = 2 }, square, (void *)(intptr_t)12,
		     &value);
	if (err) {
		fprintf(stderr, "consumer: br_run: %s\n", br_strerror(err));
		return 1;
	}
	snprintf(header, sizeof(header), "%d.%d.%d", BR_VERSION_HEX >> 16,
		 (BR_VERSION_HEX >> 8) & 0xff, BR_VERSION_HEX & 0xff);
	if (strcmp(header, br_version_string()) != 0) {
		fprintf(stderr, "consumer: header %s, library %s\n", header,
			br_version_string());
		return 1;
	}
	printf("value %ld\n", (long)(intptr_t)value);
	printf("version %s\n", br_version_string());
	if (dladdr((void *)br_version_string, &info) && info.dli_fname)
		printf("library %s\n", info.dli_fname);
	return 0;
}
