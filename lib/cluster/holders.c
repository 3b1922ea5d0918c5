/* SPDX-License-Identifier: MIT */
/* Activation locks of LVs in shared VGs: LV_SET_HOLDERS records in the
 * journal, written under the VG lease, judged against the lockspace. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/cluster/cluster_int.h"

/* ---- activation locks: LV_SET_HOLDERS records under the VG lease ---- */

/* The lockspace view of this host for vg (NULL when it has not joined). */
static struct shared_vg *joined(struct dlvm_ctx *ctx, const struct dlvm_vg *vg)
{
	struct shared_vg *s = shared_find(ctx, vg);
	return s && s->ls && !s->refused[0] && dlvm_lockspace_deadline_ms(s->ls) ? s : NULL;
}

struct holders_view {
	struct dlvm_host_info *hosts;
	size_t n;
	uint32_t my_id;
	uint64_t my_gen;
};

static int view_get(struct shared_vg *s, struct holders_view *v, struct dlvm_err *err)
{
	memset(v, 0, sizeof(*v));
	v->my_id = dlvm_lockspace_host_id(s->ls);
	v->my_gen = dlvm_lockspace_generation(s->ls);
	return dlvm_lockspace_hosts(s->ls, &v->hosts, &v->n, err);
}

static const struct dlvm_host_info *view_host(const struct holders_view *v, uint32_t id)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->hosts[i].host_id == id)
			return &v->hosts[i];
	return NULL;
}

/*
 * Does a record still stand? Ours only at our current generation. Another
 * host's while its delta lease carries the record's generation and is live,
 * failing (it may still be writing until its deadline) or unreadable; a dead,
 * released or restarted host's record is stale.
 */
static bool holder_stands(const struct holders_view *v, const struct dlvm_lv_holder *h)
{
	if (h->host_id == v->my_id)
		return h->generation == v->my_gen;
	const struct dlvm_host_info *hi = view_host(v, h->host_id);
	if (!hi)
		return false;
	if (hi->state == DLVM_HOST_BAD)
		return true;
	return hi->generation == h->generation &&
	       (hi->state == DLVM_HOST_LIVE || hi->state == DLVM_HOST_FAIL);
}

static void holder_name(const struct holders_view *v, const struct dlvm_lv_holder *h, char *out,
			size_t len)
{
	const struct dlvm_host_info *hi = view_host(v, h->host_id);
	snprintf(out, len, "host id %" PRIu32 " '%s'", h->host_id, hi ? hi->name : "?");
}

/* Commit lv's new holder list (n entries of hs, sorted by host id) if it
 * differs from the current one. */
int commit_holders(struct dlvm_vg *vg, struct dlvm_lv *lv, const struct dlvm_lv_holder *hs,
		   uint32_t n, struct dlvm_err *err)
{
	if (n == lv->nholders && (!n || !memcmp(hs, lv->holders, n * sizeof(*hs))))
		return 0;
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_HOLDERS };
	e.u.lv.id = lv->id;
	e.u.lv.nholders = n;
	if (n && !(e.u.lv.holders = malloc(n * sizeof(*hs))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	if (n)
		memcpy(e.u.lv.holders, hs, n * sizeof(*hs));
	return dlvm_txn_commit_edit(vg, &e, err);
}

static int need_joined(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, struct shared_vg **out,
		       struct dlvm_err *err)
{
	struct shared_vg *s = joined(ctx, vg);
	if (!s || !s->holding)
		return dlvm_err_set(err, -EROFS,
				    "%s: shared VG: this host has not joined its "
				    "lockspace (start dlvmd with --host-id)",
				    vg->info.name);
	*out = s;
	return 0;
}

static int hold_one(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		    enum dlvm_hold_mode mode, const char *family_of, struct dlvm_err *err)
{
	struct shared_vg *s = NULL;
	struct holders_view v;
	struct dlvm_lv_holder *hs;
	uint32_t n = 0;
	int r;

	if ((r = need_joined(ctx, vg, &s, err)) || (r = view_get(s, &v, err)))
		return r;
	if (!(hs = calloc(lv->nholders + 1, sizeof(*hs)))) {
		free(v.hosts);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < lv->nholders && !r; i++) {
		const struct dlvm_lv_holder *h = &lv->holders[i];
		if (h->host_id == v.my_id || !holder_stands(&v, h))
			continue;
		if (mode == DLVM_HOLD_EXCLUSIVE || h->mode == DLVM_HOLD_EXCLUSIVE) {
			char who[DLVM_LEASE_NAME_MAX + 32];
			holder_name(&v, h, who, sizeof(who));
			ctx->lock_conflict = true;
			if (family_of)
				r = dlvm_err_set(err, -EBUSY,
						 "%s/%s: its thin family is written on %s "
						 "(deactivate the family's writable volumes there "
						 "first)",
						 vg->info.name, family_of, who);
			else
				r = dlvm_err_set(err, -EBUSY, "%s/%s: active %s on %s",
						 vg->info.name, lv->name,
						 h->mode == DLVM_HOLD_EXCLUSIVE ? "exclusively"
										: "shared",
						 who);
			break;
		}
		hs[n++] = *h;
	}
	if (!r) {
		/* insert ours in host id order */
		uint32_t at = 0;
		while (at < n && hs[at].host_id < v.my_id)
			at++;
		memmove(&hs[at + 1], &hs[at], (n - at) * sizeof(*hs));
		hs[at] = (struct dlvm_lv_holder){ v.my_id, mode, v.my_gen };
		r = commit_holders(vg, lv, hs, n + 1, err);
	}
	free(hs);
	free(v.hosts);
	return r;
}

/* A thin LV of a shared VG that writes its family's store. */
bool family_writer(const struct dlvm_lv *lv)
{
	return (lv->flags & DLVM_LV_THIN) && lv->thin.meta_id && !(lv->flags & DLVM_LV_READONLY);
}

/*
 * The family lease: a writable thin LV of a shared VG is active on one host
 * at a time, and that host holds its family's metadata LV exclusively too,
 * so that no other host writes the family's store (its snapshots stay
 * readable everywhere).
 */
int shared_lv_hold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		   enum dlvm_hold_mode mode, struct dlvm_err *err)
{
	if (family_writer(lv)) {
		struct dlvm_lv *meta = dlvm_lv_find_id(vg, lv->thin.meta_id);
		int r;
		if (mode != DLVM_HOLD_EXCLUSIVE)
			return dlvm_err_set(err, -EINVAL,
					    "%s/%s: a thin volume is written from one "
					    "host at a time: activate it with -aey (its snapshots "
					    "can "
					    "be active on many hosts with -asy)",
					    vg->info.name, lv->name);
		if (!meta)
			return dlvm_err_set(err, -EBADMSG,
					    "%s/%s: its family's metadata LV is "
					    "missing",
					    vg->info.name, lv->name);
		if ((r = hold_one(ctx, vg, meta, DLVM_HOLD_EXCLUSIVE, lv->name, err)))
			return r;
	}
	return hold_one(ctx, vg, lv, mode, NULL, err);
}

static int unhold_one(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		      struct dlvm_err *err);

int shared_family_hold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const struct dlvm_lv *lv,
		       struct dlvm_err *err)
{
	struct dlvm_lv *meta;

	if (!(vg->info.flags & DLVM_VG_SHARED) || !family_writer(lv))
		return 0;
	if (!(meta = dlvm_lv_find_id(vg, lv->thin.meta_id)))
		return dlvm_err_set(err, -EBADMSG, "%s/%s: its family's metadata LV is missing",
				    vg->info.name, lv->name);
	if (shared_lv_held_here(ctx, vg, meta))
		return 0;
	return hold_one(ctx, vg, meta, DLVM_HOLD_EXCLUSIVE, lv->name, err);
}

/* Does this host still write family meta_id: is a writable LV of it
 * active here (other than `leaving`, whose hold goes now), or a job running
 * on one (other than the job of `self`, which asks)? */
static bool family_busy_here(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, uint64_t meta_id,
			     const struct dlvm_lv *leaving, const struct dlvm_lv *self)
{
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *o = vg->lvs[i];
		if (!family_writer(o) || o->thin.meta_id != meta_id)
			continue;
		if ((o != leaving && shared_lv_held_here(ctx, vg, o)) ||
		    (o != self && ctx->lv_job_running && ctx->lv_job_running(ctx, vg, o->id)))
			return true;
	}
	return false;
}

/* Commit and close the family's store, then let the family lease go. */
static int family_let_go(struct dlvm_ctx *ctx, struct dlvm_vg *vg, uint64_t meta_id,
			 struct dlvm_err *err)
{
	struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, true);
	int r;

	if (p && (r = dlvm_thin_store_drop(vg, p, err)))
		return r;
	return meta ? unhold_one(ctx, vg, meta, err) : 0;
}

int shared_family_release_idle(struct dlvm_ctx *ctx, struct dlvm_vg *vg, uint64_t meta_id,
			       const struct dlvm_lv *self, struct dlvm_err *err)
{
	if (!(vg->info.flags & DLVM_VG_SHARED) || family_busy_here(ctx, vg, meta_id, NULL, self))
		return 0;
	return family_let_go(ctx, vg, meta_id, err);
}

int shared_family_refuse_elsewhere(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
				   const struct dlvm_lv *lv, const char *what, struct dlvm_err *err)
{
	const struct dlvm_lv *meta;

	if (!(vg->info.flags & DLVM_VG_SHARED) || !(lv->flags & DLVM_LV_THIN) ||
	    !lv->thin.meta_id || !(meta = dlvm_lv_find_id(vg, lv->thin.meta_id)))
		return 0;
	int r = shared_lv_refuse_elsewhere(ctx, vg, meta, what, err);
	if (r == -EBUSY)
		dlvm_err_prefix(err, r,
				"%s/%s: its thin family is written elsewhere: ", vg->info.name,
				lv->name);
	return r;
}

int shared_lv_unhold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		     struct dlvm_err *err)
{
	int r = unhold_one(ctx, vg, lv, err);

	if (r || !family_writer(lv))
		return r;
	/* the last writable LV of the family here, and no job on the family:
	 * its store is committed and closed, then the family lease goes */
	if (family_busy_here(ctx, vg, lv->thin.meta_id, lv, NULL))
		return 0;
	return family_let_go(ctx, vg, lv->thin.meta_id, err);
}

static int unhold_one(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		      struct dlvm_err *err)
{
	struct shared_vg *s = NULL;
	struct holders_view v;
	struct dlvm_lv_holder *hs;
	uint32_t n = 0;
	int r;

	if (!lv->nholders)
		return 0;
	if ((r = need_joined(ctx, vg, &s, err)) || (r = view_get(s, &v, err)))
		return r;
	if (!(hs = calloc(lv->nholders, sizeof(*hs)))) {
		free(v.hosts);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < lv->nholders; i++)
		if (lv->holders[i].host_id != v.my_id && holder_stands(&v, &lv->holders[i]))
			hs[n++] = lv->holders[i];
	r = commit_holders(vg, lv, hs, n, err);
	free(hs);
	free(v.hosts);
	return r;
}

int shared_lv_refuse_elsewhere(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
			       const struct dlvm_lv *lv, const char *what, struct dlvm_err *err)
{
	struct shared_vg *s = NULL;
	struct holders_view v;
	int r = 0;

	if (!(vg->info.flags & DLVM_VG_SHARED) || !lv->nholders)
		return 0;
	if ((r = need_joined(ctx, vg, &s, err)) || (r = view_get(s, &v, err)))
		return r;
	for (uint32_t i = 0; i < lv->nholders && !r; i++) {
		const struct dlvm_lv_holder *h = &lv->holders[i];
		if (h->host_id == v.my_id || !holder_stands(&v, h))
			continue;
		char who[DLVM_LEASE_NAME_MAX + 32];
		holder_name(&v, h, who, sizeof(who));
		ctx->lock_conflict = true;
		r = dlvm_err_set(err, -EBUSY,
				 "%s/%s: cannot %s: active on %s (deactivate it there "
				 "first)",
				 vg->info.name, lv->name, what, who);
	}
	free(v.hosts);
	return r;
}

bool shared_lv_held_here(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	struct shared_vg *s = joined(ctx, vg);
	if (!s)
		return false;
	uint32_t id = dlvm_lockspace_host_id(s->ls);
	uint64_t gen = dlvm_lockspace_generation(s->ls);
	for (uint32_t i = 0; i < lv->nholders; i++)
		if (lv->holders[i].host_id == id && lv->holders[i].generation == gen)
			return true;
	return false;
}

void shared_lv_hosts(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		     char *out, size_t len)
{
	struct shared_vg *s = joined(ctx, vg);
	struct holders_view v;
	size_t used = 0;

	*out = 0;
	if (!lv->nholders)
		return;
	if (!s || view_get(s, &v, NULL)) {
		/* no liveness view here: show the records as they are */
		for (uint32_t i = 0; i < lv->nholders && used < len; i++)
			used += (size_t)snprintf(out + used, len - used, "%s%" PRIu32 "%s",
						 i ? "," : "", lv->holders[i].host_id,
						 lv->holders[i].mode == DLVM_HOLD_SHARED ? "(sh)"
											 : "");
		return;
	}
	bool first = true;
	for (uint32_t i = 0; i < lv->nholders && used < len; i++) {
		if (!holder_stands(&v, &lv->holders[i]))
			continue;
		used += (size_t)snprintf(out + used, len - used, "%s%" PRIu32 "%s",
					 first ? "" : ",", lv->holders[i].host_id,
					 lv->holders[i].mode == DLVM_HOLD_SHARED ? "(sh)" : "");
		first = false;
	}
	free(v.hosts);
}

bool shared_vg_lease_held(struct dlvm_ctx *ctx, const struct dlvm_vg *vg)
{
	struct shared_vg *s = shared_find(ctx, vg);
	return s && s->holding;
}
