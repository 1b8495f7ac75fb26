/* SPDX-License-Identifier: MIT */
/*
 * stack_frames.h - task functions with one large frame (stack_frames.c),
 * built with (_probed) and without (_plain) -fstack-clash-protection.
 */
#ifndef T_STACK_FRAMES_H
#define T_STACK_FRAMES_H

void *t_frame_72k_probed(void *arg);
void *t_frame_200k_probed(void *arg);
void *t_frame_72k_plain(void *arg);
void *t_frame_200k_plain(void *arg);

#endif /* T_STACK_FRAMES_H */
