/* SPDX-License-Identifier: MIT */
/* The pool pass of the host agent: commit every open thin pool, warn as
 * pools fill, grow pools (autoextend) and give families slabs and metadata
 * space under the VG lease. */
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

/*
 * Autoextend (dlvmd --thin-pool-autoextend-threshold): grow pool by
 * thin_autoextend_percent of its size (a whole number of slabs in a shared
 * VG) with lvextend, from the VG's free extents. Said once on stderr, as
 * is a failure.
 */
/* What lvextend -l +add does to a thin pool: grow it (its last segment's
 * stripes kept, as LVM does), then let its store hand out the new chunks. */
static int pool_grow(struct dlvm_vg *vg, struct dlvm_lv *pool, uint64_t add, struct dlvm_err *err)
{
	const struct dlvm_seg_desc *last = pool->nseg ? pool->segs[pool->nseg - 1] : NULL;
	uint16_t stripes = last && last->stripes > 1 ? last->stripes : 1;
	uint32_t ssize = stripes > 1 ? last->stripe_size : 0;
	struct dlvm_err pe = { 0 };
	int r;

	if ((r = dlvm_lv_extend(vg, pool, add, stripes, ssize, NULL, 0, err)))
		return r;
	if (dlvm_thin_pool_resized(vg, pool, &pe))
		log_warning(DLVM_LOG_THIN,
			    "%s/%s: extended, but the pool does not use the new "
			    "space yet: %s",
			    vg->info.name, pool->name, pe.msg);
	return 0;
}

int pool_autoextend(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *pool)
{
	uint64_t es = vg->info.extent_size, all = dlvm_lv_bytes(vg, pool) / es;
	uint64_t add = all * ctx->thin_autoextend_percent / 100, slab = pool->thin.slab_extents;
	char name[2 * DLVM_NAME_MAX + 2];
	struct dlvm_err e = { 0 };

	if (!add)
		add = 1;
	if (slab && add % slab)
		add += slab - add % slab;
	if (add > dlvm_vg_free_extents(vg))
		add = slab ? dlvm_vg_free_extents(vg) / slab * slab : dlvm_vg_free_extents(vg);
	snprintf(name, sizeof(name), "%s/%s", vg->info.name, pool->name);
	if (!add) {
		log_warning(DLVM_LOG_THIN,
			    "thin pool %s: no free space in the VG to extend it "
			    "(autoextend)",
			    name);
		return -ENOSPC;
	}
	int r = pool_grow(vg, pool, add, &e);
	char sz[32];
	dlvm_format_size(add * es, 'h', sz, sizeof(sz));
	if (r)
		log_warning(DLVM_LOG_THIN, "thin pool %s: autoextend by %s failed: %s", name, sz,
			    e.msg);
	else
		log_info(DLVM_LOG_THIN, "thin pool %s: extended by %s (autoextend)", name, sz);
	return r;
}

bool autoextend_on(struct dlvm_ctx *ctx)
{
	return ctx->thin_autoextend_threshold && ctx->thin_autoextend_threshold < 100;
}

/* Under the VG lease (host agent): one more slab for a family this host
 * writes. */
int family_add_slab(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg)
{
	uint64_t meta_id = ((struct slab_req *)arg)->meta_id;
	const struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	const struct dlvm_lv *data = dlvm_thin_family_data(vg, meta_id);
	const struct dlvm_lv *pool = meta ? dlvm_lv_find_id(vg, meta->thin.pool_id) : NULL;
	struct dlvm_err e = { 0 };
	struct dlvm_txn t;
	int r;

	if (!meta || !data || !pool || !shared_lv_held_here(ctx, vg, meta))
		return -ENOENT;
	if (pool->le_count < pool->thin.slab_extents && autoextend_on(ctx)) {
		/* no slab left: the pool grows first */
		uint64_t pool_id = pool->id;
		pool_autoextend(ctx, vg, (struct dlvm_lv *)pool);
		meta = dlvm_lv_find_id(vg, meta_id);
		data = dlvm_thin_family_data(vg, meta_id);
		pool = dlvm_lv_find_id(vg, pool_id);
		if (!meta || !data || !pool)
			return -ENOENT;
	}
	dlvm_txn_init(&t);
	if (!(r = slab_move_edits(vg, pool, data, data->id, meta_id, &t, &e)))
		r = dlvm_txn_commit(vg, &t, &e);
	dlvm_txn_release(&t);
	if (!r && autoextend_on(ctx)) {
		uint64_t all = dlvm_lv_bytes(vg, pool) / vg->info.extent_size;
		if ((all - pool->le_count) * 100 >= all * ctx->thin_autoextend_threshold)
			pool_autoextend(ctx, vg, (struct dlvm_lv *)pool);
		data = dlvm_thin_family_data(vg, meta_id);
	}
	if (!r && (r = dlvm_thin_family_grown(vg, meta_id, &e)))
		log_error(DLVM_LOG_THIN, "%s/%s: %s", vg->info.name, meta->name, e.msg);
	if (r) {
		struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, true);
		if (p && !dlvm_thin_family_no_slab(p, pool->le_count))
			log_error(DLVM_LOG_THIN, "%s/%s: no slab for the family: %s", vg->info.name,
				  pool->name, e.msg);
	}
	return r;
}

/* Under the VG lease (host agent): grow the metadata LV of a family this
 * host writes by a quarter (at least 4 MiB), from the VG's free extents. */
int family_grow_meta(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg)
{
	uint64_t meta_id = ((struct slab_req *)arg)->meta_id;
	struct dlvm_lv *m = dlvm_lv_find_id(vg, meta_id);
	uint64_t es = vg->info.extent_size, add, nseg = 0;
	struct dlvm_seg_desc **more, **segs;
	struct dlvm_err e = { 0 };
	uint32_t nmore, ns;
	int r;

	if (!m || !shared_lv_held_here(ctx, vg, m))
		return -ENOENT;
	add = DLVM_MAX(m->le_count / 4, META_MIN / es + (META_MIN % es != 0));
	add = DLVM_MIN(add, dlvm_vg_free_extents(vg));
	struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, true);
	if (!add || (r = dlvm_alloc(vg, m, add, 1, 0, NULL, 0, &more, &nmore, &e))) {
		r = add ? r : -ENOSPC;
		if (p && !dlvm_thin_family_no_meta(p, dlvm_vg_free_extents(vg)))
			log_warning(DLVM_LOG_THIN,
				    "%s/%s: thin family metadata is filling up "
				    "and cannot grow: %s",
				    vg->info.name, m->name,
				    add ? e.msg : "no free extents in the VG");
		return r;
	}
	r = dlvm_segs_join(m->segs, m->nseg, more, nmore, &segs, &ns);
	dlvm_segs_free(more, nmore);
	if (r)
		return -ENOMEM;
	nseg = ns;
	struct dlvm_edit ed = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
	ed.u.lv.id = m->id;
	ed.u.lv.segs = segs;
	ed.u.lv.nseg = (uint32_t)nseg;
	if ((r = dlvm_txn_commit_edit(vg, &ed, &e)) ||
	    (r = dlvm_thin_family_meta_grown(vg, meta_id, &e))) {
		log_error(DLVM_LOG_THIN, "%s/%s: growing the thin family metadata: %s",
			  vg->info.name, m->name, e.msg);
		return r;
	}
	char sz[32];
	dlvm_format_size(m->le_count * es, 'h', sz, sizeof(sz));
	log_info(DLVM_LOG_THIN, "%s/%s: thin family metadata extended to %s", vg->info.name,
		 m->name, sz);
	return 0;
}
/* Warn when a pool's data or metadata use crosses 80% and every 5% above
 * (as LVM's monitoring does); say so again once it drops back. */
static void warn_level(struct dlvm_thin_pool *p, enum dlvm_thin_area area, uint64_t used,
		       uint64_t total)
{
	const char *pool = dlvm_thin_pool_name(p);
	const char *what = area == DLVM_THIN_AREA_DATA ? "data" : "metadata";
	unsigned pct = total ? (unsigned)(used * 100 / total) : 0;
	unsigned level = pct < 80 ? 0 : pct - pct % 5;
	unsigned warned = dlvm_thin_pool_warned(p, area, level);

	if (level > warned)
		log_warning(DLVM_LOG_THIN, "thin pool %s %s is now %u%% full.", pool, what, pct);
	else if (!level && warned)
		log_info(DLVM_LOG_THIN, "thin pool %s %s is below 80%% again (%u%%).", pool, what,
			 pct);
}

static void pool_warn_usage(struct dlvm_thin_pool *p)
{
	struct dlvm_thin_pool_fill f;

	dlvm_thin_pool_fill(p, &f);
	warn_level(p, DLVM_THIN_AREA_DATA, f.data_used, f.data_total);
	warn_level(p, DLVM_THIN_AREA_META, f.meta_used, f.meta_total);
}

/* What the pass knows of the pool LV of store p, for dlvm_thin_pool_wants. */
static struct dlvm_thin_pool_facts pool_facts(struct dlvm_ctx *ctx, struct dlvm_vg *vg,
					      const struct dlvm_lv *pool)
{
	struct dlvm_thin_pool_facts f = {
		.pool_found = pool != NULL,
		.extent_size = vg->info.extent_size,
		.vg_free = dlvm_vg_free_extents(vg),
		.autoextend_threshold = autoextend_on(ctx) ? ctx->thin_autoextend_threshold : 0,
	};

	if (pool) {
		f.pool_extents = pool->le_count;
		f.slab_extents = pool->thin.slab_extents;
	}
	return f;
}

/* Time a pass may spend punching freed chunks out of PV files, all pools
 * together. */
#define PUNCH_BUDGET_MS 50

/*
 * The host agent's pass over the open stores: commit what is pending, warn
 * about usage; for families (shared VGs), close the stores no map uses and
 * the ones this host no longer holds (another host may write them now: they
 * are never committed again), and give a slab more to the families that
 * need one (a VG transaction under the VG lease).
 */
void dlvm_ctx_commit_pools(struct dlvm_ctx *ctx)
{
	uint64_t punch_until = dlvm_now_ns() + PUNCH_BUDGET_MS * 1000000ull;

	for (size_t v = 0; v < ctx->nvg; v++) {
		struct dlvm_vg *vg = ctx->vgs[v];
		uint64_t grow[16], mgrow[16];
		size_t ngrow = 0, nmgrow = 0;
		struct dlvm_thin_pool *p = dlvm_thin_pool_next(vg, NULL), *next;
		for (; p; p = next) {
			struct dlvm_err e = { 0 };
			const char *pname = dlvm_thin_pool_name(p);
			struct dlvm_lv *pool = dlvm_lv_find_id(vg, dlvm_thin_pool_lv_id(p));
			struct dlvm_thin_pool_wants w;
			next = dlvm_thin_pool_next(vg, p);
			if (dlvm_thin_pool_is_family(p)) {
				uint64_t meta_id = dlvm_thin_pool_meta_id(p);
				const struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
				if (!dlvm_thin_pool_is_reader(p) &&
				    (!meta || !shared_lv_held_here(ctx, vg, meta))) {
					dlvm_thin_pool_stop(p, "the family is no longer held by "
							       "this host");
					dlvm_thin_store_drop(vg, p, NULL);
					continue;
				}
				if (!dlvm_thin_pool_in_use(p)) {
					/* the drop closes the store, and its name with it */
					char name[2 * DLVM_NAME_MAX + 2];
					snprintf(name, sizeof(name), "%s", pname);
					if (dlvm_thin_store_drop(vg, p, &e))
						log_error(DLVM_LOG_THIN, "%s: commit: %s", name,
							  e.msg);
					continue;
				}
				struct dlvm_thin_pool_facts f = pool_facts(ctx, vg, pool);
				dlvm_thin_pool_wants(p, &f, &w);
				if (w.slab && ngrow < 16)
					grow[ngrow++] = meta_id;
				if (w.meta && nmgrow < 16)
					mgrow[nmgrow++] = meta_id;
			}
			if (dlvm_thin_pool_commit_dirty(p, &e))
				log_error(DLVM_LOG_THIN, "%s: commit: %s", pname, e.msg);
			struct dlvm_err pe = { 0 };
			dlvm_thin_pool_cool(p, punch_until);
			dlvm_thin_pool_punch(p, punch_until, &pe);
			if (pe.code)
				log_error(DLVM_LOG_THIN, "%s", pe.msg);
			if (dlvm_thin_pool_is_family(p))
				continue;
			pool_warn_usage(p);
			struct dlvm_thin_pool_facts f = pool_facts(ctx, vg, pool);
			dlvm_thin_pool_wants(p, &f, &w);
			if (w.autoextend && pool_autoextend(ctx, vg, pool))
				dlvm_thin_pool_autoextend_failed(p);
		}
		char name[DLVM_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s", vg->info.name);
		for (size_t i = 0; i < nmgrow; i++) {
			struct slab_req req = { mgrow[i] };
			struct dlvm_err e = { 0 };
			if (shared_vg_locked(ctx, name, family_grow_meta, &req, &e) && e.msg[0])
				log_error(DLVM_LOG_THIN, "%s: growing thin family metadata: %s",
					  name, e.msg);
		}
		for (size_t i = 0; i < ngrow; i++) {
			struct slab_req req = { grow[i] };
			struct dlvm_err e = { 0 };
			int r = shared_vg_locked(ctx, name, family_add_slab, &req, &e);
			if (r && r != -ENOSPC && r != -ENOENT) {
				struct dlvm_vg *nv;
				struct dlvm_thin_pool *fp;
				log_error(DLVM_LOG_THIN, "%s: adding a slab: %s", name, e.msg);
				if (!dlvm_ctx_vg(ctx, name, &nv, NULL) &&
				    (fp = dlvm_thin_store_find(nv, grow[i], true))) {
					const struct dlvm_lv *pl =
							dlvm_lv_find_id(nv,
									dlvm_thin_pool_lv_id(fp));
					dlvm_thin_family_no_slab(fp, pl ? pl->le_count : 0);
				}
			}
		}
	}
}
