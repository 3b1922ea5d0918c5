/* SPDX-License-Identifier: MIT */
/* The flatten job: copy what a clone still reads from its origin, then
 * forget the origin. It runs as a background job in dlvmd (inside the
 * command otherwise), taking the VG lease only for its short steps. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/pool/family.h"
#include "lib/agent/agent.h"
#include "lib/jobs/jobs.h"
#include "lib/lvops/lvops.h"

/*
 * Flatten of a clone of a shared VG (a family reading through to a
 * snapshot): copy what it still reads from its origin into its own chunks,
 * then forget the origin in the journal. In dlvmd the copy is a background
 * job (jobs.c): the command checks, holds the family and starts it; the
 * copy runs without the command lock or the VG lease (the clone may be
 * active and written here meanwhile, other hosts change the VG); adding a
 * slab and the final commit take both. Without a command lock the copy
 * runs inside the command.
 */
struct flatten {
	struct dlvm_ctx *ctx;
	struct dlvm_job *job; /* NULL: inside the command (set by the job) */
	char vg[DLVM_NAME_MAX + 1];
	char name[DLVM_NAME_MAX + 1];  /* the clone's, at the start */
	char oname[DLVM_NAME_MAX + 1]; /* its origin's */
	uint64_t id, meta_id, src_id, vchunks;
	uint32_t chunk_size;
	uint64_t rate; /* bytes per second, 0: no limit */
	uint64_t t0_ms;
	uint64_t copied;             /* chunks */
	struct dlvm_thin_pool *pool; /* a reference, NULL once let go */
};

static void flatten_free(void *arg)
{
	struct flatten *f = arg;
	if (f->pool)
		dlvm_thin_pool_unref(f->pool);
	free(f);
}

/* What a step under the VG lease (shared_vg_locked) works with. */
struct flatten_step {
	struct flatten *f;
	json_t *resp;
	struct dlvm_err *err;
	int copy_r;
};

/* Under the VG lease: give the clone's family a slab from its pool. */
static int flatten_slab_step(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg)
{
	struct flatten_step *s = arg;
	struct flatten *f = s->f;
	int r;

	(void)ctx;
	const struct dlvm_lv *meta = dlvm_lv_find_id(vg, f->meta_id);
	const struct dlvm_lv *data = dlvm_thin_family_data(vg, f->meta_id);
	const struct dlvm_lv *pool = meta ? dlvm_lv_find_id(vg, meta->thin.pool_id) : NULL;
	if (!meta || !data || !pool)
		return dlvm_err_set(s->err, -EBADMSG, "%s: the clone's family is incomplete",
				    f->vg);
	struct dlvm_txn t;
	dlvm_txn_init(&t);
	if (!(r = slab_move_edits(vg, pool, data, data->id, f->meta_id, &t, s->err)))
		r = dlvm_txn_commit(vg, &t, s->err);
	dlvm_txn_release(&t);
	return r ? r : dlvm_thin_family_grown(vg, f->meta_id, s->err);
}

/* Run step fn of the flatten under the VG lease: a job takes the command
 * lock and the lease; inside the command both are held already. */
static int flatten_locked(struct flatten *f, int (*fn)(struct dlvm_ctx *, struct dlvm_vg *, void *),
			  void *arg, struct dlvm_err *err)
{
	struct dlvm_vg *vg;
	int r;

	if (!f->job)
		return (r = dlvm_ctx_vg(f->ctx, f->vg, &vg, err)) ? r : fn(f->ctx, vg, arg);
	job_lock(f->job);
	r = shared_vg_locked(f->ctx, f->vg, fn, arg, err);
	job_unlock(f->job);
	return r;
}

static int flatten_add_slab(void *arg, struct dlvm_err *err)
{
	struct flatten *f = arg;
	struct flatten_step s = { f, NULL, err, 0 };

	return flatten_locked(f, flatten_slab_step, &s, err);
}

/* After each chunk copied: show the progress, stop when dlvmd stops, keep
 * to the rate. */
static int flatten_progress(void *arg, uint64_t done, uint64_t copied, struct dlvm_err *err)
{
	struct flatten *f = arg;

	f->copied = copied;
	if (f->job) {
		atomic_store(&f->job->done, done);
		atomic_store(&f->job->copied, copied * f->chunk_size);
	}
	for (;;) {
		if (f->job && atomic_load(&f->job->stop))
			return dlvm_err_set(err, -ECANCELED,
					    "stopped with dlvmd after %" PRIu64
					    " chunks (the next start of dlvmd goes on from "
					    "there)",
					    copied);
		if (!f->rate)
			return 0;
		uint64_t due = (uint64_t)((double)copied * f->chunk_size * 1000.0 /
					  (double)f->rate);
		uint64_t spent = dlvm_now_ms() - f->t0_ms;
		if (spent >= due)
			return 0;
		uint64_t ms = DLVM_MIN(due - spent, (uint64_t)100);
		struct timespec d = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
		nanosleep(&d, NULL);
	}
}

/* Add to t the edits that mark clone c as being flattened at `rate`
 * (bytes per second, 0: no limit), or that take the mark and the rate
 * away (on false); none where c is so already. The rate is kept so that
 * a flatten dlvmd goes on with at its next start copies at the rate asked
 * for. */
static int flatten_mark_edits(const struct dlvm_lv *c, bool on, uint64_t rate, struct dlvm_txn *t,
			      struct dlvm_err *err)
{
	uint64_t flags = on ? c->flags | DLVM_LV_FLATTEN : c->flags & ~DLVM_LV_FLATTEN;
	int r = 0;

	if (!on)
		rate = 0;
	if (flags != c->flags) {
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_FLAGS };
		e.u.lv.id = c->id;
		e.u.lv.flags = flags;
		r = dlvm_txn_push(t, &e, err);
	}
	if (!r && rate != c->copy_rate) {
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_COPY_RATE,
				       .flags = DLVM_EDIT_IGNORABLE };
		e.u.lv.id = c->id;
		e.u.lv.copy_rate = rate;
		r = dlvm_txn_push(t, &e, err);
	}
	return r;
}

/* Mark (or unmark) clone c, in its own transaction. */
static int set_flatten_flag(struct dlvm_vg *vg, struct dlvm_lv *c, bool on, uint64_t rate,
			    struct dlvm_err *err)
{
	struct dlvm_txn t;
	int r;

	dlvm_txn_init(&t);
	if (!(r = flatten_mark_edits(c, on, rate, &t, err)) && t.n)
		r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	return r;
}

/* Under the VG lease, after the copy: forget the origin (when the copy
 * succeeded), then let the family go if nothing here writes it. */
static int flatten_end_step(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg)
{
	struct flatten_step *s = arg;
	struct flatten *f = s->f;
	struct dlvm_lv *c = dlvm_lv_find_id(vg, f->id), *m = dlvm_lv_find_id(vg, f->meta_id);
	struct dlvm_err e = { 0 };
	int r = 0;

	if (!s->copy_r && (!c || !m))
		r = dlvm_err_set(s->err, -ENOENT, "%s/%s: gone while being flattened", f->vg,
				 f->name);
	if (!s->copy_r && !r) {
		struct dlvm_txn t;
		struct dlvm_edit ce = { .type = DLVM_EDIT_LV_SET_THIN };
		struct dlvm_edit me = { .type = DLVM_EDIT_LV_SET_THIN };
		ce.u.lv.id = c->id;
		ce.u.lv.thin = c->thin;
		ce.u.lv.thin.origin_id = 0;
		me.u.lv.id = m->id;
		me.u.lv.thin = m->thin;
		me.u.lv.thin.origin_id = 0;
		dlvm_txn_init(&t);
		if (!(r = dlvm_txn_push(&t, &ce, s->err)) &&
		    !(r = dlvm_txn_push(&t, &me, s->err)) &&
		    !(r = flatten_mark_edits(c, false, 0, &t, s->err)))
			r = dlvm_txn_commit(vg, &t, s->err);
		dlvm_txn_release(&t);
	} else if (s->copy_r && s->copy_r != -ECANCELED && c) {
		/* a failed copy is not tried again at the next start; one that
		 * stopped with dlvmd is */
		struct dlvm_err fe_err = { 0 };
		if (set_flatten_flag(vg, c, false, 0, &fe_err))
			resp_warning(s->resp, "%s/%s: %s", f->vg, c->name, fe_err.msg);
	}
	if (f->pool) {
		dlvm_thin_pool_unref(f->pool);
		f->pool = NULL;
	}
	if (f->job && shared_family_release_idle(ctx, vg, f->meta_id, c, &e))
		resp_warning(s->resp, "%s/%s: its family store stays open here: %s", f->vg, f->name,
			     e.msg);
	if (s->copy_r || r)
		return r;
	resp_message(s->resp, "%s/%s no longer depends on %s (%" PRIu64 " chunks copied).", f->vg,
		     c->name, f->oname, f->copied);
	drop_clone_source(ctx, vg, f->src_id, s->resp);
	return 0;
}

static int flatten_copy(struct flatten *f, struct dlvm_err *err)
{
	f->t0_ms = dlvm_now_ms();
	int r = dlvm_thin_pool_flatten(f->pool, f->id, f->vchunks, flatten_add_slab, f,
				       flatten_progress, err);
	return r ? dlvm_err_prefix(err, r, "%s/%s: flatten: ", f->vg, f->name) : 0;
}

/* The copy, then the end step under the VG lease (taken even after a
 * failed copy, to let the family go and take the mark away). */
static int flatten_copy_end(struct flatten *f, json_t *resp, struct dlvm_err *err)
{
	struct dlvm_err e2 = { 0 };
	int r = flatten_copy(f, err);
	struct flatten_step s = { f, resp, r ? &e2 : err, r };
	int r2 = flatten_locked(f, flatten_end_step, &s, s.err);

	if (r && r2)
		resp_warning(resp, "%s", e2.msg);
	return r ? r : r2;
}

/* The job: the copy and the end step, each step under the command lock. */
static int flatten_run(struct dlvm_job *j, json_t *resp, struct dlvm_err *err)
{
	struct flatten *f = j->arg;

	f->job = j;
	return flatten_copy_end(f, resp, err);
}

int flatten_family(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, uint64_t rate,
		   bool background, json_t *resp, struct dlvm_err *err)
{
	struct dlvm_thin_pool *pool;
	int r;

	for (size_t i = 0; i < vg->nlv; i++)
		if (vg->lvs[i] != lv && (vg->lvs[i]->flags & DLVM_LV_THIN) &&
		    vg->lvs[i]->thin.meta_id == lv->thin.meta_id)
			return dlvm_err_set(err, -EBUSY,
					    "%s/%s: remove %s first: snapshots of a clone "
					    "read through to its origin too",
					    vg->info.name, lv->name, vg->lvs[i]->name);
	if ((r = dlvm_vg_writable(vg, err)) ||
	    (r = shared_family_refuse_elsewhere(ctx, vg, lv, "flatten", err)))
		return r;
	struct flatten *f = calloc(1, sizeof(*f));
	if (!f)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	f->ctx = ctx;
	snprintf(f->vg, sizeof(f->vg), "%s", vg->info.name);
	snprintf(f->name, sizeof(f->name), "%s", lv->name);
	const struct dlvm_lv *o = dlvm_lv_find_id(vg, lv->thin.origin_id);
	snprintf(f->oname, sizeof(f->oname), "%s", o ? o->name : "its origin");
	f->id = lv->id;
	f->meta_id = lv->thin.meta_id;
	f->src_id = lv->thin.origin_id;
	f->rate = rate;
	if (ctx->cmd_lock && (r = shared_family_hold(ctx, vg, lv, err))) {
		free(f);
		return r;
	}
	if ((r = dlvm_thin_lv_store(vg, lv, true, &pool, err))) {
		struct dlvm_err e = { 0 };
		if (ctx->cmd_lock)
			shared_family_release_idle(ctx, vg, f->meta_id, lv, &e);
		free(f);
		return r;
	}
	f->pool = dlvm_thin_pool_ref(pool);
	f->chunk_size = dlvm_thin_pool_chunk_size(pool);
	f->vchunks = lv->thin.virtual_size / f->chunk_size;
	/* from here a crash or a stop leaves the flatten to the next start */
	if ((r = set_flatten_flag(vg, lv, true, rate, err))) {
		struct dlvm_err e = { 0 };
		if (ctx->cmd_lock)
			shared_family_release_idle(ctx, vg, f->meta_id, lv, &e);
		flatten_free(f);
		return r;
	}
	if (!ctx->cmd_lock) {
		r = flatten_copy_end(f, resp, err);
		flatten_free(f);
		return r;
	}
	if ((r = job_start(ctx, "flatten", vg, lv, f->vchunks, flatten_run, f, flatten_free, resp,
			   err))) {
		struct dlvm_err e = { 0 };
		shared_family_release_idle(ctx, vg, lv->thin.meta_id, lv, &e);
		return r;
	}
	struct dlvm_job *j = ctx->jobs; /* f is the job's now */
	j->rate = f->rate;
	resp_message(resp, "%s/%s: flattening from %s (job %" PRIu64 ")%s", vg->info.name, lv->name,
		     f->oname, j->id, background ? ": dlvm jobs shows its progress." : ".");
	return 0;
}
