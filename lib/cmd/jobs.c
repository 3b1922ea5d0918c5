/* SPDX-License-Identifier: MIT */
/* dlvm jobs [ID]: background jobs and their progress. */
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
#include "lib/cmd/cmd_int.h"

static void job_row(json_t *rows, const struct dlvm_job *j, json_t *resp, bool detail)
{
	json_t *row = json_object();
	uint64_t end = j->state == JOB_RUNNING ? dlvm_now_ms() : j->ended_ms;
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
	json_object_set_new(row, "job_state", json_string(job_state_name(j->state)));
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
		json_t *m = json_object_get(j->resp, "messages"),
		       *w = json_object_get(j->resp, "warnings");
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
			r = dlvm_err_set(err, -ENOENT,
					 "jobs: no job %" PRIu64 " (dlvm jobs lists "
					 "them; they are forgotten when dlvmd stops)",
					 ids[i]);
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
