/* SPDX-License-Identifier: MIT */
/* Background jobs (lib/jobs/): start, progress, the command lock, stop.
 * The jobs themselves live with what starts them (lib/lvops/flatten.c). */
#ifndef DLVM_JOBS_H
#define DLVM_JOBS_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "dlvm/cmd.h"
#include "dlvm/vg.h"

/* ---- background jobs (job.c) ---- */
enum job_state { JOB_RUNNING, JOB_DONE, JOB_FAILED };
struct dlvm_job {
	struct dlvm_job *next;
	struct dlvm_ctx *ctx;
	uint64_t id;
	const char *type; /* "flatten" */
	char vg[DLVM_NAME_MAX + 1];
	char lv[DLVM_NAME_MAX + 1]; /* the LV's name when the job started */
	uint64_t lv_id;
	_Atomic uint64_t done, total; /* progress, in the job's own units */
	_Atomic uint64_t copied;      /* bytes copied so far */
	uint64_t rate;                /* the limit it copies at, bytes per second; 0 none */
	atomic_bool stop;             /* dlvmd stops: end soon, keep what is done */
	/* under the command lock: */
	enum job_state state;
	int r; /* the outcome, with err */
	struct dlvm_err err;
	json_t *resp; /* the messages and warnings it ended with */
	uint64_t started_ms, ended_ms;
	int (*run)(struct dlvm_job *j, json_t *resp, struct dlvm_err *err);
	void *arg;
	void (*free_arg)(void *arg);
	pthread_t thread;
};
/*
 * From a command (the command lock held, ctx->cmd_lock set): start job
 * `type` on lv, its progress going from 0 to total. run(j, resp, err) runs
 * in a thread of its own, without the command lock: it takes it (job_lock)
 * around its steps that need the context. Once started, arg belongs to the
 * job's thread. resp gets "job": {id, type, lv}. arg is freed with free_arg when
 * the job is forgotten (also when it cannot start).
 */
int job_start(struct dlvm_ctx *ctx, const char *type, const struct dlvm_vg *vg,
	      const struct dlvm_lv *lv, uint64_t total,
	      int (*run)(struct dlvm_job *j, json_t *resp, struct dlvm_err *err), void *arg,
	      void (*free_arg)(void *arg), json_t *resp, struct dlvm_err *err);
/* "running", "done", "failed". */
const char *job_state_name(enum job_state s);
void job_lock(struct dlvm_job *j);
void job_unlock(struct dlvm_job *j);
/* How far job j is, 0 to 100. */
double job_percent(const struct dlvm_job *j);
/* The running job on LV lv_id of vg, or NULL. */
const struct dlvm_job *job_running_on(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
				      uint64_t lv_id);
/* -EBUSY when a mutating command c names the LV of a running job (or
 * removes, renames or changes its VG). */
int jobs_refuse(struct dlvm_ctx *ctx, const struct dlvm_cmd_def *c, json_t *args,
		struct dlvm_err *err);

#endif
