/* SPDX-License-Identifier: MIT */
/*
 * stack_frames.c - task functions with one large stack frame, for
 * test_stack.c. This file is compiled twice into that program: once with
 * -fstack-clash-protection (FRAMES_SUFFIX _probed), as README asks of
 * programs built on braid, and once without it (_plain), to show what an
 * unprobed frame does. A probed frame touches every page from the top of
 * the frame down before it uses any of it, so the first touch below the
 * stack lands in its guard; an unprobed one may write anywhere in the
 * frame first, here at its lowest byte.
 */
#include <stddef.h>
#include <stdint.h>

#include "stack_frames.h"

#pragma GCC diagnostic ignored "-Wframe-larger-than="

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define NAME(base) CAT(base, FRAMES_SUFFIX)

/* Writes every 64th byte of a frame of `bytes`, lowest first, so an
 * unprobed frame's first store is the one furthest below the caller, and
 * no 64 bytes of what lies between it and the caller's frame are left
 * untouched. */
#define BIG_FRAME(bytes)                             \
	volatile unsigned char buf[bytes];           \
	unsigned long sum = 0;                       \
                                                     \
	for (size_t i = 0; i < sizeof(buf); i += 64) \
		buf[i] = (unsigned char)(i >> 6);    \
	for (size_t i = 0; i < sizeof(buf); i += 64) \
		sum += buf[i];                       \
	(void)arg;                                   \
	return (void *)(uintptr_t)sum

__attribute__((noinline)) void *NAME(t_frame_72k)(void *arg)
{
	BIG_FRAME(72 * 1024);
}

__attribute__((noinline)) void *NAME(t_frame_200k)(void *arg)
{
	BIG_FRAME(200 * 1024);
}
