/* SPDX-License-Identifier: MIT */
/* The host agent's thread: the periodic pass of a daemon between commands. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "dlvm/cmd.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"

struct dlvm_agent {
	struct dlvm_ctx *ctx;
	pthread_t thread;
	pthread_cond_t cv; /* CLOCK_MONOTONIC; waited on under ctx->cmd_lock */
	bool stop;         /* under ctx->cmd_lock */
};

/* Every T/4 (with a host id) or every second, under the command lock:
 * catch up with what other hosts committed to shared VGs
 * (dlvm_ctx_refresh) and commit the thin pools' pending changes. */
static void *agent_main(void *p)
{
	struct dlvm_agent *a = p;
	struct dlvm_ctx *ctx = a->ctx;
	uint64_t period_ms = ctx->host_id ? (uint64_t)ctx->io_timeout * 1000 / 4 : 1000;
	struct timespec next = dlvm_mono_now();

	period_ms = DLVM_MAX(period_ms, 100u);
	period_ms = DLVM_MIN(period_ms, 1000u);
	pthread_mutex_lock(ctx->cmd_lock);
	while (!a->stop) {
		next = dlvm_timespec_add_ms(next, period_ms);
		while (!a->stop && pthread_cond_timedwait(&a->cv, ctx->cmd_lock, &next) == 0)
			;
		if (a->stop)
			break;
		if (ctx->host_id)
			dlvm_ctx_refresh(ctx);
		/* thin pools: what was written without a FLUSH becomes durable
		 * within about a second anyway */
		dlvm_ctx_commit_pools(ctx);
		struct timespec now = dlvm_mono_now();
		if (now.tv_sec > next.tv_sec + 1)
			next = now;
	}
	pthread_mutex_unlock(ctx->cmd_lock);
	return NULL;
}

int dlvm_agent_start(struct dlvm_ctx *ctx, struct dlvm_agent **out, struct dlvm_err *err)
{
	struct dlvm_agent *a;
	pthread_condattr_t ca;
	int r;

	if (!ctx->cmd_lock)
		return dlvm_err_set(err, -EINVAL, "the host agent needs the command lock");
	if (!(a = calloc(1, sizeof(*a))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	a->ctx = ctx;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((r = pthread_create(&a->thread, NULL, agent_main, a))) {
		pthread_cond_destroy(&a->cv);
		free(a);
		return dlvm_err_set(err, -r, "cannot start the host agent thread");
	}
	*out = a;
	return 0;
}

void dlvm_agent_stop(struct dlvm_agent *a)
{
	if (!a)
		return;
	pthread_mutex_lock(a->ctx->cmd_lock);
	a->stop = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(a->ctx->cmd_lock);
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->cv);
	free(a);
}
