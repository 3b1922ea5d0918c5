/* SPDX-License-Identifier: MIT */
/* The host agent's view of other hosts' changes: re-adoption of this
 * host's activations at start, and the refresh between commands that
 * brings exports in line with the journal. */
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
#include "lib/agent/agent.h"

/* ---- the host agent: re-adoption at start, refresh between commands ---- */

/* Exports of this VG whose LV is gone or no longer held here are torn down;
 * held LVs whose size or flags changed get a new map. old_* describe the LVs
 * that were exported before the reload (by name). */
struct exported {
	char name[DLVM_NAME_MAX + 1];
	uint8_t uuid[16];
	uint64_t le_count, flags;
};

static void reconcile(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const struct exported *old,
		      size_t nold)
{
	const struct dlvm_export_hooks *hk = ctx->hooks;

	for (size_t i = 0; i < nold; i++) {
		struct dlvm_lv *lv = dlvm_lv_find(vg, old[i].name);
		struct dlvm_err e = { 0 };
		if (lv && !memcmp(lv->uuid, old[i].uuid, 16) && shared_lv_held_here(ctx, vg, lv)) {
			if ((lv->le_count != old[i].le_count || lv->flags != old[i].flags) &&
			    hk->activate(hk->priv, vg, lv, NULL, &e))
				log_error(DLVM_LOG_AGENT, "%s", e.msg);
			continue;
		}
		/* removed, renamed or taken over elsewhere: a stale export must
		 * not stay (no write can reach the old extents through it) */
		struct dlvm_lv ghost = { 0 };
		snprintf(ghost.name, sizeof(ghost.name), "%s", old[i].name);
		if (hk->deactivate(hk->priv, vg, &ghost, true, &e))
			log_error(DLVM_LOG_AGENT, "%s", e.msg);
		else
			log_info(DLVM_LOG_AGENT, "%s/%s: %s on another host: export removed",
				 vg->info.name, old[i].name,
				 lv ? "taken over or deactivated" : "removed");
	}
}

static int snapshot_exports(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, struct exported **out,
			    size_t *n)
{
	*n = 0;
	*out = calloc(vg->nlv ? vg->nlv : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *lv = vg->lvs[i];
		if (!ctx->hooks->is_active(ctx->hooks->priv, vg, lv))
			continue;
		struct exported *x = &(*out)[(*n)++];
		snprintf(x->name, sizeof(x->name), "%s", lv->name);
		memcpy(x->uuid, lv->uuid, 16);
		x->le_count = lv->le_count;
		x->flags = lv->flags;
	}
	return 0;
}

/* The loaded VG with this uuid, or NULL. A reload replaces the object, so
 * callers look it up again after one. */
static struct dlvm_vg *loaded_vg(struct dlvm_ctx *ctx, const uint8_t uuid[16])
{
	for (size_t v = 0; v < ctx->nvg; v++)
		if (!memcmp(ctx->vgs[v]->info.uuid, uuid, 16))
			return ctx->vgs[v];
	return NULL;
}

int dlvm_ctx_refresh(struct dlvm_ctx *ctx)
{
	int changed_vgs = 0;

	if (!ctx->hooks)
		return 0;
	for (size_t i = 0; i < ctx->nshared; i++) {
		struct shared_vg *s = ctx->shared[i];
		struct dlvm_vg *vg = loaded_vg(ctx, s->vg_uuid);
		struct dlvm_err e = { 0 };
		bool changed;
		if (!vg || !s->ls || s->refused[0])
			continue;
		if (dlvm_vg_poll(vg, &changed, &e)) {
			log_error(DLVM_LOG_AGENT, "%s: refresh: %s", s->vg_name, e.msg);
			continue;
		}
		if (!changed)
			continue;
		struct exported *old;
		size_t nold;
		if (snapshot_exports(ctx, vg, &old, &nold))
			continue;
		uint8_t uuid[16];
		memcpy(uuid, vg->info.uuid, 16);
		if (reload_vg(ctx, vg, false, &e)) {
			log_error(DLVM_LOG_AGENT, "%s: refresh: %s", s->vg_name, e.msg);
			free(old);
			continue;
		}
		vg = loaded_vg(ctx, uuid); /* reloaded: a new object */
		if (vg)
			reconcile(ctx, vg, old, nold);
		free(old);
		changed_vgs++;
	}
	return changed_vgs;
}

/* Does host id hold a writable LV of family meta_id at generation g1 or g2? */
static bool family_held_at(const struct dlvm_vg *vg, uint64_t meta_id, uint32_t id, uint64_t g1,
			   uint64_t g2)
{
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *o = vg->lvs[i];
		if (!family_writer(o) || o->thin.meta_id != meta_id)
			continue;
		for (uint32_t k = 0; k < o->nholders; k++)
			if (o->holders[k].host_id == id &&
			    (o->holders[k].generation == g1 || o->holders[k].generation == g2))
				return true;
	}
	return false;
}

/* Re-adopt lv if host id held it at generation prev: its activation record
 * moves to generation gen and it is exported again. Returns 1 when it was
 * adopted, 0 otherwise (an error is logged). */
static unsigned adopt_lv(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, uint32_t id,
			 uint64_t prev, uint64_t gen)
{
	struct dlvm_err e = { 0 };
	uint32_t k;
	int r;

	for (k = 0; k < lv->nholders; k++)
		if (lv->holders[k].host_id == id && lv->holders[k].generation == prev)
			break;
	if (k == lv->nholders)
		return 0;
	struct dlvm_lv_holder *hs = malloc(lv->nholders * sizeof(*hs));
	if (!hs) {
		log_error(DLVM_LOG_AGENT, "%s/%s: re-adopt: out of memory", vg->info.name,
			  lv->name);
		return 0;
	}
	memcpy(hs, lv->holders, lv->nholders * sizeof(*hs));
	hs[k].generation = gen;
	r = commit_holders(vg, lv, hs, lv->nholders, &e);
	free(hs);
	if (!r)
		r = ctx->hooks->activate(ctx->hooks->priv, vg, lv, NULL, &e);
	if (r) {
		log_error(DLVM_LOG_AGENT, "%s/%s: re-adopt: %s", vg->info.name, lv->name, e.msg);
		return 0;
	}
	return 1;
}

unsigned dlvm_ctx_adopt(struct dlvm_ctx *ctx)
{
	unsigned adopted = 0;

	if (!ctx->hooks)
		return 0;
	for (size_t i = 0; i < ctx->nshared; i++) {
		struct shared_vg *s = ctx->shared[i];
		struct dlvm_vg *vg = loaded_vg(ctx, s->vg_uuid);
		struct dlvm_err e = { 0 };
		if (!vg || !s->ls || s->refused[0] || !s->prev_generation)
			continue;
		uint32_t id = dlvm_lockspace_host_id(s->ls);
		uint64_t gen = dlvm_lockspace_generation(s->ls);
		if (take_vg_lease(ctx, vg, &e) || reload_vg(ctx, vg, true, &e)) {
			log_error(DLVM_LOG_AGENT, "%s: re-adopting activations: %s", s->vg_name,
				  e.msg);
			drop_vg_leases(ctx, NULL);
			continue;
		}
		vg = loaded_vg(ctx, s->vg_uuid); /* reloaded: a new object */
		for (size_t l = 0; vg && l < vg->nlv; l++) {
			struct dlvm_lv *lv = vg->lvs[l];
			/* a family lease goes with the family's writers: one left by
			 * a flatten job that died with dlvmd is not taken over */
			if ((lv->flags & DLVM_LV_THIN_META) && lv->thin.pool_id &&
			    !family_held_at(vg, lv->id, id, s->prev_generation, gen))
				continue;
			adopted += adopt_lv(ctx, vg, lv, id, s->prev_generation, gen);
		}
		drop_vg_leases(ctx, NULL);
	}
	return adopted;
}
