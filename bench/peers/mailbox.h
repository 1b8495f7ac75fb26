/* SPDX-License-Identifier: MIT */
/*
 * mailbox.h - a one-slot mailbox guarded by a pthread mutex and condition
 * variable: the classic way two threads hand each other a value, shared
 * by the pthread peers that measure it (chan_pthread.c, handoff_pthread.c).
 *
 * Concurrency
 *   Any threads; mailbox_put() waits while the slot is full and
 *   mailbox_take() while it is empty, each signalling the other side.
 *   mailbox_ping() and mailbox_pong() run on two threads.
 */
#ifndef BENCH_PEERS_MAILBOX_H
#define BENCH_PEERS_MAILBOX_H

#include <pthread.h>

struct mailbox {
	pthread_mutex_t m;
	pthread_cond_t c;
	int full;
	long v;
};

#define MAILBOX_INIT                                                      \
	{                                                                 \
		PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 \
	}

static inline void mailbox_put(struct mailbox *b, long v)
{
	pthread_mutex_lock(&b->m);
	while (b->full)
		pthread_cond_wait(&b->c, &b->m);
	b->v = v;
	b->full = 1;
	pthread_cond_signal(&b->c);
	pthread_mutex_unlock(&b->m);
}

static inline long mailbox_take(struct mailbox *b)
{
	long v;

	pthread_mutex_lock(&b->m);
	while (!b->full)
		pthread_cond_wait(&b->c, &b->m);
	v = b->v;
	b->full = 0;
	pthread_cond_signal(&b->c);
	pthread_mutex_unlock(&b->m);
	return v;
}

/* The two sides of a ping-pong of rounds round trips through box[0]
 * (ping) and box[1] (pong). mailbox_ping() returns -1 if a pong came back
 * out of order, else 0. */
static inline int mailbox_ping(struct mailbox box[2], long rounds)
{
	for (long i = 0; i < rounds; i++) {
		mailbox_put(&box[0], i);
		if (mailbox_take(&box[1]) != i)
			return -1;
	}
	return 0;
}

static inline void mailbox_pong(struct mailbox box[2], long rounds)
{
	for (long i = 0; i < rounds; i++)
		mailbox_put(&box[1], mailbox_take(&box[0]));
}

#endif
