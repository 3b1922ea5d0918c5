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

#include "dlvm/map.h"
#include "dlvm/util.h"
#include "ops.h"

#define JOBS_KEPT 32

static const char *state_name(enum job_state s)
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
	j->ended_ms = dlvm_monotonic_ms();
	j->state = r ? JOB_FAILED : JOB_DONE;
	fprintf(stderr, "dlvmd: job %" PRIu64 ": %s of %s/%s %s%s\n", j->id, j->type, j->vg,
		j->lv, r ? "failed: " : "done", r ? e.msg : "");
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

int job_start(struct dlvm_ctx *ctx, const char *type, const struct dlvm_vg *vg,
	      const struct dlvm_lv *lv, uint64_t total,
	      int (*run)(struct dlvm_job *j, json_t *resp, struct dlvm_err *err),
	      void *arg, void (*free_arg)(void *arg), json_t *resp, struct dlvm_err *err)
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
	j->started_ms = dlvm_monotonic_ms();
	if ((r = pthread_create(&j->thread, NULL, job_main, j))) {
		job_free(j);
		return dlvm_err_set(err, -r, "%s/%s: cannot start a %s job: %s", vg->info.name,
				    lv->name, type, strerror(r));
	}
	j->next = ctx->jobs;
	ctx->jobs = j;
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
				return dlvm_err_set(err, -EBUSY, "%s/%s: a %s job runs on it (job %"
						    PRIu64 ", %.1f%% done; dlvm jobs shows it): "
						    "wait for it to end", vg->info.name, name,
						    j->type, j->id, job_percent(j));
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

static void job_row(json_t *rows, const struct dlvm_job *j, json_t *resp, bool detail)
{
	json_t *row = json_object();
	uint64_t end = j->state == JOB_RUNNING ? dlvm_monotonic_ms() : j->ended_ms;
	const char *msg = "";

	if (j->state == JOB_FAILED)
		msg = j->err.msg;
	else if (j->state == JOB_DONE) {
		json_t *m = json_object_get(j->resp, "messages");
		if (json_array_size(m))
			msg = json_string_value(json_array_get(m, json_array_size(m) - 1));
	}
	json_object_set_new(row, "job_id", json_integer((json_int_t)j->id));
	json_object_set_new(row, "job_type", json_string(j->type));
	json_object_set_new(row, "job_lv", json_sprintf("%s/%s", j->vg, j->lv));
	json_object_set_new(row, "job_state", json_string(state_name(j->state)));
	json_object_set_new(row, "copy_percent", json_sprintf("%.2f", job_percent(j)));
	json_object_set_new(row, "job_copied", json_integer((json_int_t)atomic_load(&j->copied)));
	json_object_set_new(row, "job_seconds",
			    json_integer((json_int_t)((end - j->started_ms) / 1000)));
	json_object_set_new(row, "job_rate", json_integer((json_int_t)j->rate));
	json_object_set_new(row, "job_message", json_string(msg ? msg : ""));
	json_array_append_new(rows, row);
	if (!detail)
		return;
	/* one job asked for: what its command would have answered */
	json_t *o = json_deep_copy(row);
	if (j->state != JOB_RUNNING) {
		json_t *m = json_object_get(j->resp, "messages"), *w = json_object_get(j->resp,
											"warnings");
		if (m)
			json_object_set(o, "messages", m);
		if (w)
			json_object_set(o, "warnings", w);
		if (j->state == JOB_FAILED) {
			json_t *e = json_object();
			json_object_set_new(e, "code", json_integer(j->r));
			json_object_set_new(e, "message", json_string(j->err.msg));
			json_object_set_new(o, "error", e);
		}
	}
	json_object_set_new(resp, "job_status", o);
}

DLVM_CMD_FN(cmd_jobs)
{
	json_t *rep = json_object(), *rows = json_array();
	size_t n = json_array_size(args);
	uint64_t *ids = NULL;

	(void)opts;
	json_object_set_new(rep, "kind", json_string("job"));
	json_object_set_new(rep, "rows", rows);
	json_object_set_new(resp, "report", rep);
	if (n && !(ids = calloc(n, sizeof(*ids))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *a = arg_str(args, i);
		char *end;
		errno = 0;
		unsigned long long v = strtoull(a, &end, 10);
		if (!*a || *end || errno || !v || *a == '-' || *a == '+') {
			free(ids);
			return dlvm_err_set(err, -EINVAL, "jobs: \"%s\" is not a job id", a);
		}
		ids[i] = v;
	}
	/* oldest first, as they were started */
	size_t total = 0;
	for (const struct dlvm_job *j = ctx->jobs; j; j = j->next)
		total++;
	const struct dlvm_job **all = calloc(total ? total : (size_t)1, sizeof(*all));
	if (!all) {
		free(ids);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	size_t k = total;
	for (const struct dlvm_job *j = ctx->jobs; j; j = j->next)
		all[--k] = j;
	int r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		bool found = false;
		for (size_t x = 0; x < total; x++)
			found |= all[x]->id == ids[i];
		if (!found)
			r = dlvm_err_set(err, -ENOENT, "jobs: no job %" PRIu64 " (dlvm jobs lists "
					 "them; they are forgotten when dlvmd stops)", ids[i]);
	}
	for (size_t x = 0; x < total && !r; x++) {
		bool want = !n;
		for (size_t i = 0; i < n; i++)
			want |= all[x]->id == ids[i];
		if (want)
			job_row(rows, all[x], resp, n == 1);
	}
	free(all);
	free(ids);
	return r;
}
