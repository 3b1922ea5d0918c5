/* SPDX-License-Identifier: MIT */
/*
 * Background jobs of dlvmd. Work too long to run inside a command (a
 * flatten that copies a clone's data) runs in a thread of its own: it takes
 * the command lock (ctx->cmd_lock), and for a shared VG the VG lease, only
 * for its short steps that change metadata, as a command would, so other
 * commands on this host and changes from other hosts go on while it copies.
 * While it runs, mutating commands that name its LV (or remove, rename or
 * deactivate its VG) are refused. `dlvm jobs` reports running jobs and the
 * last JOBS_KEPT finished ones until dlvmd stops; jobs are not kept across
 * a restart (a stopped flatten goes on where it stopped when run again).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/jobs/jobs.h"

#define JOBS_KEPT 32

const char *job_state_name(enum job_state s)
{
	switch (s) {
	case JOB_RUNNING: return "running";
	case JOB_DONE: return "done";
	default: return "failed";
	}
}

double job_percent(const struct dlvm_job *j)
{
	uint64_t total = atomic_load(&j->total);

	if (j->state == JOB_DONE)
		return 100.0;
	return total ? 100.0 * (double)atomic_load(&j->done) / (double)total : 0.0;
}

static void job_free(struct dlvm_job *j)
{
	if (j->free_arg)
		j->free_arg(j->arg);
	json_decref(j->resp);
	free(j);
}

void job_lock(struct dlvm_job *j)
{
	pthread_mutex_lock(j->ctx->cmd_lock);
}

void job_unlock(struct dlvm_job *j)
{
	pthread_mutex_unlock(j->ctx->cmd_lock);
}

static void *job_main(void *p)
{
	struct dlvm_job *j = p;
	struct dlvm_err e = { 0 };
	json_t *resp = json_object();
	int r = resp ? j->run(j, resp, &e) : dlvm_err_set(&e, -ENOMEM, "out of memory");

	job_lock(j);
	j->resp = resp;
	j->r = r;
	j->err = e;
	j->ended_ms = dlvm_now_ms();
	j->state = r ? JOB_FAILED : JOB_DONE;
	log_info(DLVM_LOG_JOBS, "job %" PRIu64 ": %s of %s/%s %s%s", j->id, j->type, j->vg, j->lv,
		 r ? "failed: " : "done", r ? e.msg : "");
	job_unlock(j);
	return NULL;
}

/* Forget the oldest finished jobs beyond JOBS_KEPT (their threads have
 * ended or are about to: they only take the command lock to say so). */
static void prune(struct dlvm_ctx *ctx)
{
	unsigned kept = 0;

	for (struct dlvm_job **pp = &ctx->jobs; *pp;) {
		struct dlvm_job *j = *pp;
		if (j->state == JOB_RUNNING || ++kept <= JOBS_KEPT) {
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		pthread_join(j->thread, NULL);
		job_free(j);
	}
}

static bool lv_job_running(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, uint64_t lv_id)
{
	return job_running_on(ctx, vg, lv_id) != NULL;
}

int job_start(struct dlvm_ctx *ctx, const char *type, const struct dlvm_vg *vg,
	      const struct dlvm_lv *lv, uint64_t total,
	      int (*run)(struct dlvm_job *j, json_t *resp, struct dlvm_err *err), void *arg,
	      void (*free_arg)(void *arg), json_t *resp, struct dlvm_err *err)
{
	struct dlvm_job *j = calloc(1, sizeof(*j));
	int r;

	if (!j) {
		if (free_arg)
			free_arg(arg);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	prune(ctx);
	j->ctx = ctx;
	j->id = ++ctx->job_seq;
	j->type = type;
	snprintf(j->vg, sizeof(j->vg), "%s", vg->info.name);
	snprintf(j->lv, sizeof(j->lv), "%s", lv->name);
	j->lv_id = lv->id;
	j->total = total;
	j->run = run;
	j->arg = arg;
	j->free_arg = free_arg;
	j->state = JOB_RUNNING;
	j->started_ms = dlvm_now_ms();
	if ((r = pthread_create(&j->thread, NULL, job_main, j))) {
		job_free(j);
		return dlvm_err_set(err, -r, "%s/%s: cannot start a %s job: %s", vg->info.name,
				    lv->name, type, strerror(r));
	}
	j->next = ctx->jobs;
	ctx->jobs = j;
	ctx->stop_jobs = dlvm_ctx_stop_jobs;
	ctx->lv_job_running = lv_job_running;
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer((json_int_t)j->id));
	json_object_set_new(o, "type", json_string(type));
	json_object_set_new(o, "lv", json_sprintf("%s/%s", j->vg, j->lv));
	json_object_set_new(resp, "job", o);
	return 0;
}

const struct dlvm_job *job_running_on(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
				      uint64_t lv_id)
{
	for (const struct dlvm_job *j = ctx->jobs; j; j = j->next)
		if (j->state == JOB_RUNNING && j->lv_id == lv_id && !strcmp(j->vg, vg->info.name))
			return j;
	return NULL;
}

/* Does argument a ("VG/LV", "/dev/VG/LV") name lv of vg? */
static bool names_lv(const char *a, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	char vn[DLVM_NAME_MAX + 1], ln[DLVM_NAME_MAX + 1];

	return !split_lv_path(a, vn, ln, NULL) && !strcmp(vn, vg->info.name) &&
	       !strcmp(ln, lv->name);
}

int jobs_refuse(struct dlvm_ctx *ctx, const struct dlvm_cmd_def *c, json_t *args,
		struct dlvm_err *err)
{
	bool vg_cmd = !strcmp(c->name, "vgremove") || !strcmp(c->name, "vgrename") ||
		      !strcmp(c->name, "vgchange");

	for (const struct dlvm_job *j = ctx->jobs; j; j = j->next) {
		struct dlvm_vg *vg;
		if (j->state != JOB_RUNNING || dlvm_ctx_vg(ctx, j->vg, &vg, NULL))
			continue;
		const struct dlvm_lv *lv = dlvm_lv_find_id(vg, j->lv_id);
		const char *name = lv ? lv->name : j->lv;
		for (size_t i = 0; i < json_array_size(args); i++) {
			const char *a = arg_str(args, i);
			bool hit = a && ((lv && names_lv(a, vg, lv)) ||
					 (vg_cmd && !strcmp(a, vg->info.name)) ||
					 (lv && i == 1 && !strcmp(c->name, "lvrename") &&
					  !strcmp(arg_str(args, 0), vg->info.name) &&
					  !strcmp(a, lv->name)));
			if (hit)
				return dlvm_err_set(err, -EBUSY,
						    "%s/%s: a %s job runs on it (job %" PRIu64
						    ", %.1f%% done; dlvm jobs shows it): "
						    "wait for it to end",
						    vg->info.name, name, j->type, j->id,
						    job_percent(j));
		}
	}
	return 0;
}

void dlvm_ctx_stop_jobs(struct dlvm_ctx *ctx)
{
	for (struct dlvm_job *j = ctx->jobs; j; j = j->next)
		atomic_store(&j->stop, true);
	while (ctx->jobs) {
		struct dlvm_job *j = ctx->jobs;
		ctx->jobs = j->next;
		pthread_join(j->thread, NULL);
		job_free(j);
	}
}
