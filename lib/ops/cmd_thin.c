/* SPDX-License-Identifier: MIT */
/*
 * Thin pools and thin volumes: lvcreate --type thin-pool, lvcreate -V -T,
 * their removal, resize, report and check. The VG journal records the LVs
 * (LV_CREATE, LV_SET_THIN); the pool's store (dlvm/thin.h) records the
 * mappings. Changes that touch both are ordered so that a crash between the
 * two leaves at worst an unused store device or metadata LV, which
 * `dlvm check` names:
 *   create a thin LV: store device first, then the journal;
 *   remove a thin LV: journal first, then the store device.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "ops.h"

#define DEFAULT_CHUNK (64u << 10)
#define META_MIN (4ull << 20)

uint64_t lv_bytes(const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	if (lv->flags & DLVM_LV_THIN)
		return lv->thin.virtual_size;
	uint64_t le = lv->le_count;
	if ((lv->flags & DLVM_LV_THIN_POOL) && lv->thin.slab_extents) /* slabs handed out */
		for (size_t i = 0; i < vg->nlv; i++)
			if ((vg->lvs[i]->flags & DLVM_LV_THIN_DATA) && vg->lvs[i]->thin.pool_id == lv->id)
				le += vg->lvs[i]->le_count;
	return le * vg->info.extent_size;
}

/* ---- families (shared VGs) ---- */

/* Extents per slab of a new pool of `extents` extents in a shared VG:
 * 256 MiB, less for a small pool so that it has 16 slabs, at least one
 * chunk, a whole number of chunks. */
static uint32_t slab_extents_for(uint64_t extents, uint64_t es, uint32_t chunk)
{
	uint64_t per_chunk = chunk > es ? chunk / es : 1;
	uint64_t slab = (256ull << 20) / es;
	if (slab > extents / 16)
		slab = extents / 16;
	slab -= slab % per_chunk;
	if (slab < per_chunk)
		slab = per_chunk;
	return (uint32_t)slab;
}

/* Metadata of a new family with vchunks virtual chunks in a pool of
 * pool_chunks: as for a local pool's store, for as many chunks as the
 * volume can map. */
static uint64_t family_meta_bytes(uint64_t vchunks, uint64_t pool_chunks)
{
	uint64_t c = vchunks < pool_chunks ? vchunks : pool_chunks, b = c * 48;
	return b < META_MIN ? META_MIN : b;
}

/* The last n extents of linear LV lv as segments from logical extent `at`
 * (*tail), and lv's segments without them (*head). Copies. */
static int segs_split_tail(const struct dlvm_lv *lv, uint64_t n, uint64_t at,
			   struct dlvm_seg_desc ***head, uint32_t *nhead,
			   struct dlvm_seg_desc ***tail, uint32_t *ntail, struct dlvm_err *err)
{
	uint64_t keep = lv->le_count - n;
	struct dlvm_seg_desc **t = calloc(lv->nseg ? lv->nseg : 1, sizeof(*t));
	uint32_t k = 0;

	if (!t)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < lv->nseg; i++) {
		const struct dlvm_seg_desc *s = lv->segs[i];
		uint64_t end = s->le_start + s->le_count;
		if (end <= keep)
			continue;
		if (s->stripes != 1) {
			dlvm_segs_free(t, k);
			return dlvm_err_set(err, -EINVAL, "%s: a striped pool cannot hand out slabs",
					    lv->name);
		}
		uint64_t from = s->le_start > keep ? s->le_start : keep;
		struct dlvm_seg_desc *c = calloc(1, sizeof(*c) + sizeof(c->area[0]));
		if (!c) {
			dlvm_segs_free(t, k);
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		}
		c->le_start = at + (from - keep);
		c->le_count = end - from;
		c->type = DLVM_SEG_LINEAR;
		c->stripes = 1;
		c->area[0].pv_id = s->area[0].pv_id;
		c->area[0].pe_start = s->area[0].pe_start + (from - s->le_start);
		t[k++] = c;
	}
	if (segs_cut(lv, keep, head, nhead)) {
		dlvm_segs_free(t, k);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	*tail = t;
	*ntail = k;
	return 0;
}

static int add_edit(struct dlvm_txn *t, struct dlvm_edit *e, struct dlvm_err *err)
{
	int r = dlvm_txn_add(t, e);
	return r ? dlvm_err_set(err, r, "out of memory") : 0;
}

/* Edits moving one slab from the end of pool to the end of family data LV
 * `data` (NULL: a new data LV of id data_id for family meta_id). */
static int slab_move_edits(struct dlvm_vg *vg, const struct dlvm_lv *pool,
			   const struct dlvm_lv *data, uint64_t data_id, uint64_t meta_id,
			   struct dlvm_txn *t, struct dlvm_err *err)
{
	uint64_t slab = pool->thin.slab_extents;
	struct dlvm_seg_desc **head = NULL, **tail = NULL;
	uint32_t nhead = 0, ntail = 0;
	int r;

	if (pool->le_count < slab) {
		char a[32];
		dlvm_format_size(lv_bytes(vg, pool), 'h', a, sizeof(a));
		return dlvm_err_set(err, -ENOSPC, "Thin pool %s/%s (%s) has no free slab left: "
				    "extend it (lvextend -L +SIZE %s/%s)", vg->info.name, pool->name,
				    a, vg->info.name, pool->name);
	}
	if ((r = segs_split_tail(pool, slab, data ? data->le_count : 0, &head, &nhead, &tail,
				 &ntail, err)))
		return r;
	struct dlvm_edit pe = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
	pe.u.lv.id = pool->id;
	pe.u.lv.segs = head;
	pe.u.lv.nseg = nhead;
	if ((r = add_edit(t, &pe, err))) {
		dlvm_segs_free(tail, ntail);
		return r;
	}
	if (data) {
		struct dlvm_edit de = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
		de.u.lv.id = data->id;
		r = segs_join(data->segs, data->nseg, tail, ntail, &de.u.lv.segs, &de.u.lv.nseg);
		dlvm_segs_free(tail, ntail); /* the entries taken are NULL */
		if (r)
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		return add_edit(t, &de, err);
	}
	const struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	struct dlvm_edit ce = { .type = DLVM_EDIT_LV_CREATE }, te = { .type = DLVM_EDIT_LV_SET_THIN };
	ce.u.lv.id = data_id;
	dlvm_uuid_generate(ce.u.lv.uuid);
	snprintf(ce.u.lv.name, sizeof(ce.u.lv.name), "%s_f%" PRIu64 "_tdata", pool->name, meta_id);
	(void)meta;
	ce.u.lv.flags = DLVM_LV_HIDDEN | DLVM_LV_THIN_DATA;
	ce.u.lv.ctime = (uint64_t)time(NULL);
	ce.u.lv.segs = tail;
	ce.u.lv.nseg = ntail;
	te.u.lv.id = data_id;
	te.u.lv.thin.pool_id = pool->id;
	te.u.lv.thin.meta_id = meta_id;
	if ((r = add_edit(t, &ce, err)))
		return r;
	return add_edit(t, &te, err);
}

/* Edits removing family meta_id and giving its slabs back to its pool. */
static int family_remove_edits(struct dlvm_vg *vg, uint64_t meta_id, struct dlvm_txn *t,
			       struct dlvm_err *err)
{
	const struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	const struct dlvm_lv *data = dlvm_thin_family_data(vg, meta_id);
	const struct dlvm_lv *pool = meta ? dlvm_lv_find_id(vg, meta->thin.pool_id) : NULL;
	int r;

	if (data) {
		struct dlvm_edit de = { .type = DLVM_EDIT_LV_REMOVE };
		de.u.lv.id = data->id;
		if ((r = add_edit(t, &de, err)))
			return r;
	}
	if (data && pool && data->nseg) {
		struct dlvm_seg_desc **back;
		if (dlvm_segs_dup(data->segs, data->nseg, &back))
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		for (uint32_t i = 0; i < data->nseg; i++)
			back[i]->le_start += pool->le_count;
		struct dlvm_edit pe = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
		pe.u.lv.id = pool->id;
		r = segs_join(pool->segs, pool->nseg, back, data->nseg, &pe.u.lv.segs, &pe.u.lv.nseg);
		dlvm_segs_free(back, data->nseg);
		if (r)
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		if ((r = add_edit(t, &pe, err)))
			return r;
	}
	if (meta) {
		struct dlvm_edit me = { .type = DLVM_EDIT_LV_REMOVE };
		me.u.lv.id = meta_id;
		return add_edit(t, &me, err);
	}
	return 0;
}

/* Forget the open stores of family meta_id (its LVs are going). */
static void family_forget(struct dlvm_vg *vg, uint64_t meta_id)
{
	for (int w = 0; w < 2; w++) {
		struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, w);
		if (p)
			dlvm_thin_store_drop(vg, p, NULL);
	}
}

/* A family store opened for a command and used by no map: closed again, so
 * that no host keeps a stale copy of a store another host may write next. */
static void family_release(struct dlvm_vg *vg, struct dlvm_thin_pool *p)
{
	struct dlvm_err e = { 0 };
	if (p->family && atomic_load(&p->refs) == 1 && dlvm_thin_store_drop(vg, p, &e))
		fprintf(stderr, "dlvmd: %s: %s\n", p->name, e.msg);
}

/* The two edits that record thin LV id: LV_CREATE (a new uuid, now as its
 * creation time) and LV_SET_THIN. */
static void thin_lv_edits(struct dlvm_edit *ce, struct dlvm_edit *te, uint64_t id,
			  const char *lvname, uint64_t flags, const struct dlvm_lv_thin *thin)
{
	*ce = (struct dlvm_edit){ .type = DLVM_EDIT_LV_CREATE };
	*te = (struct dlvm_edit){ .type = DLVM_EDIT_LV_SET_THIN };
	ce->u.lv.id = id;
	dlvm_uuid_generate(ce->u.lv.uuid);
	snprintf(ce->u.lv.name, sizeof(ce->u.lv.name), "%s", lvname);
	ce->u.lv.flags = flags;
	ce->u.lv.ctime = (uint64_t)time(NULL);
	te->u.lv.id = id;
	te->u.lv.thin = *thin;
}

/* A new thin LV of a shared VG's pool: a family of its own (metadata LV with
 * a store holding the LV's device, a data LV of one slab), one transaction. */
static int family_create(struct dlvm_vg *vg, struct dlvm_lv *plv, const char *lvname,
			 uint64_t vsize, uint64_t origin_id, struct dlvm_err *err)
{
	uint64_t es = vg->info.extent_size, cs = plv->thin.chunk_size;
	uint64_t meta_id = vg->info.next_lv_id, data_id = meta_id + 1, id = meta_id + 2;
	uint64_t pool_chunks = lv_bytes(vg, plv) / cs;
	uint64_t mb = family_meta_bytes(vsize / cs, pool_chunks);
	uint64_t meta_ext = mb / es + (mb % es != 0);
	char mname[DLVM_NAME_MAX + 1];
	struct dlvm_seg_desc **msegs;
	uint32_t nm;
	int r;

	if (snprintf(mname, sizeof(mname), "%s_f%" PRIu64 "_tmeta", plv->name, meta_id) >=
	    (int)sizeof(mname) - 1)
		return dlvm_err_set(err, -EINVAL, "lvcreate: pool name %s is too long for a shared "
				    "VG's families", plv->name);
	if (plv->le_count < plv->thin.slab_extents)
		return slab_move_edits(vg, plv, NULL, 0, 0, NULL, err); /* the -ENOSPC message */
	if ((r = dlvm_alloc(vg, NULL, meta_ext, 1, 0, NULL, 0, &msegs, &nm, err)))
		return dlvm_err_prefix(err, r, "%s/%s: family metadata: ", vg->info.name, lvname);
	/* the store first, on extents the journal does not give to anyone
	 * yet: a crash before the commit leaves free space */
	struct dlvm_lv tmp = { .id = meta_id, .flags = DLVM_LV_HIDDEN | DLVM_LV_THIN_META,
			       .le_count = meta_ext, .nseg = nm, .segs = msegs };
	snprintf(tmp.name, sizeof(tmp.name), "%s", mname);
	dlvm_uuid_generate(tmp.uuid);
	uint64_t slab_chunks = plv->thin.slab_extents * es / cs;
	if ((r = dlvm_thin_family_format(vg, &tmp, (uint32_t)cs, slab_chunks, id, err))) {
		dlvm_segs_free(msegs, nm);
		return r;
	}
	struct dlvm_txn t;
	dlvm_txn_init(&t);
	struct dlvm_edit me = { .type = DLVM_EDIT_LV_CREATE }, mt = { .type = DLVM_EDIT_LV_SET_THIN };
	me.u.lv.id = meta_id;
	memcpy(me.u.lv.uuid, tmp.uuid, 16);
	snprintf(me.u.lv.name, sizeof(me.u.lv.name), "%s", mname);
	me.u.lv.flags = tmp.flags;
	me.u.lv.ctime = (uint64_t)time(NULL);
	me.u.lv.segs = msegs;
	me.u.lv.nseg = nm;
	mt.u.lv.id = meta_id;
	mt.u.lv.thin.pool_id = plv->id;
	mt.u.lv.thin.chunk_size = (uint32_t)cs;
	mt.u.lv.thin.origin_id = origin_id; /* a clone's family: its external origin */
	struct dlvm_edit ce, te;
	struct dlvm_lv_thin th = { .pool_id = plv->id, .virtual_size = vsize, .meta_id = meta_id,
				   .origin_id = origin_id };
	thin_lv_edits(&ce, &te, id, lvname, DLVM_LV_THIN, &th);
	if (!(r = add_edit(&t, &me, err)) && !(r = add_edit(&t, &mt, err)) &&
	    !(r = slab_move_edits(vg, plv, NULL, data_id, meta_id, &t, err)) &&
	    !(r = add_edit(&t, &ce, err)) && !(r = add_edit(&t, &te, err)))
		r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	return r;
}

/*
 * Autoextend (dlvmd --thin-pool-autoextend-threshold): grow pool by
 * thin_autoextend_percent of its size (a whole number of slabs in a shared
 * VG) with lvextend, from the VG's free extents. Said once on stderr, as
 * is a failure.
 */
static int pool_autoextend(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *pool)
{
	uint64_t es = vg->info.extent_size, all = lv_bytes(vg, pool) / es;
	uint64_t add = all * ctx->thin_autoextend_percent / 100, slab = pool->thin.slab_extents;
	char ext[32], path[2 * DLVM_NAME_MAX + 2], name[2 * DLVM_NAME_MAX + 2];
	struct dlvm_err e = { 0 };

	if (!add)
		add = 1;
	if (slab && add % slab)
		add += slab - add % slab;
	if (add > dlvm_vg_free_extents(vg))
		add = slab ? dlvm_vg_free_extents(vg) / slab * slab : dlvm_vg_free_extents(vg);
	snprintf(name, sizeof(name), "%s/%s", vg->info.name, pool->name);
	if (!add) {
		fprintf(stderr, "dlvmd: WARNING: thin pool %s: no free space in the VG to extend it "
			"(autoextend)\n", name);
		return -ENOSPC;
	}
	snprintf(ext, sizeof(ext), "+%" PRIu64, add);
	snprintf(path, sizeof(path), "%s", name);
	json_t *opts = json_pack("{s:s}", "extents", ext), *args = json_pack("[s]", path);
	json_t *resp = json_object();
	int r = opts && args && resp ? cmd_lvextend(ctx, opts, args, resp, &e)
				     : dlvm_err_set(&e, -ENOMEM, "out of memory");
	json_decref(opts);
	json_decref(args);
	json_decref(resp);
	char sz[32];
	dlvm_format_size(add * es, 'h', sz, sizeof(sz));
	if (r)
		fprintf(stderr, "dlvmd: WARNING: thin pool %s: autoextend by %s failed: %s\n", name,
			sz, e.msg);
	else
		fprintf(stderr, "dlvmd: thin pool %s: extended by %s (autoextend)\n", name, sz);
	return r;
}

static bool autoextend_on(struct dlvm_ctx *ctx)
{
	return ctx->thin_autoextend_threshold && ctx->thin_autoextend_threshold < 100;
}

struct slab_req {
	uint64_t meta_id;
};

/* Under the VG lease (host agent): one more slab for a family this host
 * writes. */
static int family_add_slab(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg)
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
		uint64_t all = lv_bytes(vg, pool) / vg->info.extent_size;
		if ((all - pool->le_count) * 100 >= all * ctx->thin_autoextend_threshold)
			pool_autoextend(ctx, vg, (struct dlvm_lv *)pool);
		data = dlvm_thin_family_data(vg, meta_id);
	}
	if (!r && (r = dlvm_thin_family_grown(vg, meta_id, &e)))
		fprintf(stderr, "dlvmd: %s/%s: %s\n", vg->info.name, meta->name, e.msg);
	if (r) {
		struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, true);
		if (p && !p->slab_fails)
			fprintf(stderr, "dlvmd: %s/%s: no slab for the family: %s\n", vg->info.name,
				pool->name, e.msg);
		if (p)
			dlvm_thin_family_no_slab(p, pool->le_count);
	}
	return r;
}


/* Under the VG lease (host agent): grow the metadata LV of a family this
 * host writes by a quarter (at least 4 MiB), from the VG's free extents. */
static int family_grow_meta(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg)
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
		if (p && !p->meta_grow_failed)
			fprintf(stderr, "dlvmd: WARNING: %s/%s: thin family metadata is filling up "
				"and cannot grow: %s\n", vg->info.name, m->name,
				add ? e.msg : "no free extents in the VG");
		if (p) {
			pthread_mutex_lock(&p->mu);
			p->meta_grow_failed = true;
			p->meta_fail_free = dlvm_vg_free_extents(vg);
			pthread_mutex_unlock(&p->mu);
		}
		return r;
	}
	r = segs_join(m->segs, m->nseg, more, nmore, &segs, &ns);
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
		fprintf(stderr, "dlvmd: %s/%s: growing the thin family metadata: %s\n",
			vg->info.name, m->name, e.msg);
		return r;
	}
	char sz[32];
	dlvm_format_size(m->le_count * es, 'h', sz, sizeof(sz));
	fprintf(stderr, "dlvmd: %s/%s: thin family metadata extended to %s\n", vg->info.name,
		m->name, sz);
	return 0;
}

static int parse_chunk(json_t *opts, uint32_t *out, struct dlvm_err *err)
{
	const char *c = opt_str(opts, "chunksize");
	uint64_t v = DEFAULT_CHUNK;
	int r;

	if (c && (r = dlvm_parse_size(c, 1 << 10, &v, NULL, err)))
		return dlvm_err_prefix(err, r, "--chunksize: ");
	if (v < 4096 || v > (1u << 20) || (v & (v - 1)))
		return dlvm_err_set(err, -EINVAL, "--chunksize %s: must be a power of two from 4k to "
				    "1m", c ? c : "");
	*out = (uint32_t)v;
	return 0;
}

/* Bytes of store metadata for a pool of `chunks` chunks: about 48 bytes a
 * chunk (leaf entries, interior nodes, room for copy-on-write of nodes
 * shared with snapshots), at least 4 MiB. */
static uint64_t default_meta_bytes(uint64_t chunks)
{
	uint64_t b = chunks * 48;
	return b < META_MIN ? META_MIN : b;
}

/* A pool of a shared VG: the pool LV only; its families take slabs of it. */
static int shared_pool_create(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const char *name,
			      uint32_t chunk, uint64_t extents, json_t *args, json_t *resp,
			      struct dlvm_err *err)
{
	uint64_t es = vg->info.extent_size;
	uint32_t *pvs = NULL, slab = slab_extents_for(extents, es, chunk);
	size_t npvs;
	int r;

	if (extents < slab)
		return dlvm_err_set(err, -EINVAL, "lvcreate: a pool must hold at least one slab");
	if (extents > dlvm_vg_free_extents(vg))
		return dlvm_err_set(err, -ENOSPC, "Volume group \"%s\" has insufficient free space "
				    "(%" PRIu64 " extents): %" PRIu64 " required.", vg->info.name,
				    dlvm_vg_free_extents(vg), extents);
	if ((r = pv_filter(ctx, vg, args, 1, &pvs, &npvs, err)))
		return r;
	struct dlvm_txn t;
	struct dlvm_edit pe = { .type = DLVM_EDIT_LV_CREATE }, te = { .type = DLVM_EDIT_LV_SET_THIN };
	dlvm_txn_init(&t);
	if (!(r = dlvm_alloc(vg, NULL, extents, 1, 0, pvs, npvs, &pe.u.lv.segs, &pe.u.lv.nseg,
			     err))) {
		pe.u.lv.id = vg->info.next_lv_id;
		dlvm_uuid_generate(pe.u.lv.uuid);
		snprintf(pe.u.lv.name, sizeof(pe.u.lv.name), "%s", name);
		pe.u.lv.flags = DLVM_LV_THIN_POOL;
		pe.u.lv.ctime = (uint64_t)time(NULL);
		te.u.lv.id = pe.u.lv.id;
		te.u.lv.thin.chunk_size = chunk;
		te.u.lv.thin.slab_extents = slab;
		if (!(r = add_edit(&t, &pe, err)) && !(r = add_edit(&t, &te, err)))
			r = dlvm_txn_commit(vg, &t, err);
	}
	dlvm_txn_release(&t);
	free(pvs);
	if (r)
		return r;
	char sz[32], ss[32];
	dlvm_format_size(extents * es, 'h', sz, sizeof(sz));
	dlvm_format_size(slab * es, 'h', ss, sizeof(ss));
	resp_message(resp, "Thin pool volume with chunk size %u KiB can provide up to %s of data "
		     "(slabs of %s: each thin volume's family takes them as it grows).",
		     chunk >> 10, sz, ss);
	resp_message(resp, "Logical volume \"%s\" created.", name);
	return 0;
}

int thin_pool_create(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const char *name, json_t *opts,
		     json_t *args, json_t *resp, struct dlvm_err *err)
{
	uint64_t es = vg->info.extent_size, extents, meta_bytes;
	char meta_name[DLVM_NAME_MAX + 1];
	uint32_t chunk = 0, *pvs = NULL;
	size_t npvs;
	int r;

	bool shared = vg->info.flags & DLVM_VG_SHARED;

	if (!name)
		return dlvm_err_set(err, -EINVAL, "lvcreate --type thin-pool: give the pool a name "
				    "with -n");
	/* -T without -V is LVM's short form of --type thin-pool */
	if (opt_str(opts, "stripes") || opt_str(opts, "virtualsize"))
		return dlvm_err_set(err, -EINVAL, "lvcreate --type thin-pool: -i and -V do not "
				    "apply to a pool");
	if ((r = parse_chunk(opts, &chunk, err)) ||
	    (r = target_extents(vg, opts, 0, false, 1, &extents, err)))
		return r;
	if (extents * es < chunk)
		return dlvm_err_set(err, -EINVAL, "lvcreate: a pool must hold at least one chunk");
	/* -Z y: zero each new chunk before its first write (the store format
	 * without unwritten sub-blocks); n, the default: keep which of a
	 * chunk's sub-blocks were written instead. Neither shows old data. */
	const char *z = opt_str(opts, "zero");
	if (z && strcmp(z, "y") && strcmp(z, "n"))
		return dlvm_err_set(err, -EINVAL, "--zero %s: use y or n", z);
	bool zero_new = z && !strcmp(z, "y");
	if (shared && zero_new)
		return dlvm_err_set(err, -EINVAL, "--zero y: a shared VG's pool keeps which "
				    "sub-blocks of its chunks were written; it does not zero them");
	const char *ms = opt_str(opts, "poolmetadatasize");
	if (shared && ms)
		return dlvm_err_set(err, -EINVAL, "--poolmetadatasize: in a shared VG each thin "
				    "volume's family has its own metadata, sized from the volume");
	if (shared)
		return shared_pool_create(ctx, vg, name, chunk, extents, args, resp, err);
	if (ms) {
		if ((r = dlvm_parse_size(ms, 1 << 20, &meta_bytes, NULL, err)))
			return dlvm_err_prefix(err, r, "--poolmetadatasize: ");
		if (meta_bytes < META_MIN)
			return dlvm_err_set(err, -EINVAL, "--poolmetadatasize %s: at least 4m", ms);
	} else {
		meta_bytes = default_meta_bytes(extents * es / chunk);
	}
	uint64_t meta_ext = meta_bytes / es + (meta_bytes % es != 0);
	if (snprintf(meta_name, sizeof(meta_name), "%s_tmeta", name) >= (int)sizeof(meta_name))
		return dlvm_err_set(err, -EINVAL, "lvcreate: pool name %s is too long", name);
	if (dlvm_lv_find(vg, meta_name))
		return dlvm_err_set(err, -EEXIST, "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"", meta_name, vg->info.name);
	if (meta_ext + extents > dlvm_vg_free_extents(vg))
		return dlvm_err_set(err, -ENOSPC, "Volume group \"%s\" has insufficient free space "
				    "(%" PRIu64 " extents): %" PRIu64 " required (%" PRIu64 " data, %"
				    PRIu64 " metadata).", vg->info.name, dlvm_vg_free_extents(vg),
				    meta_ext + extents, extents, meta_ext);
	if ((r = pv_filter(ctx, vg, args, 1, &pvs, &npvs, err)))
		return r;

	/* 1: the metadata LV, hidden */
	struct dlvm_edit me = { .type = DLVM_EDIT_LV_CREATE };
	if ((r = dlvm_alloc(vg, NULL, meta_ext, 1, 0, pvs, npvs, &me.u.lv.segs, &me.u.lv.nseg, err)))
		goto out;
	uint64_t meta_id = me.u.lv.id = vg->info.next_lv_id;
	dlvm_uuid_generate(me.u.lv.uuid);
	snprintf(me.u.lv.name, sizeof(me.u.lv.name), "%s", meta_name);
	me.u.lv.flags = DLVM_LV_HIDDEN | DLVM_LV_THIN_META;
	me.u.lv.ctime = (uint64_t)time(NULL);
	if ((r = dlvm_txn_commit_edit(vg, &me, err)))
		goto out;

	/* 2: the pool LV with its attributes, one transaction */
	struct dlvm_txn t;
	struct dlvm_edit pe = { .type = DLVM_EDIT_LV_CREATE }, te = { .type = DLVM_EDIT_LV_SET_THIN };
	dlvm_txn_init(&t);
	if ((r = dlvm_alloc(vg, NULL, extents, 1, 0, pvs, npvs, &pe.u.lv.segs, &pe.u.lv.nseg, err)))
		goto undo_meta;
	pe.u.lv.id = vg->info.next_lv_id;
	dlvm_uuid_generate(pe.u.lv.uuid);
	snprintf(pe.u.lv.name, sizeof(pe.u.lv.name), "%s", name);
	pe.u.lv.flags = DLVM_LV_THIN_POOL;
	pe.u.lv.ctime = (uint64_t)time(NULL);
	te.u.lv.id = pe.u.lv.id;
	te.u.lv.thin.meta_id = meta_id;
	te.u.lv.thin.chunk_size = chunk;
	if ((r = dlvm_txn_add(&t, &pe)) || (r = dlvm_txn_add(&t, &te))) {
		dlvm_txn_release(&t);
		r = dlvm_err_set(err, r, "out of memory");
		goto undo_meta;
	}
	r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	if (r)
		goto undo_meta;
	/* 3: the empty store; a crash before it leaves a pool whose store
	 * does not open, which lvremove can remove */
	struct dlvm_lv *pool = dlvm_lv_find(vg, name);
	if ((r = dlvm_thin_pool_format(vg, pool, zero_new, err)))
		goto out;
	char sz[32], msz[32];
	dlvm_format_size(extents * es, 'h', sz, sizeof(sz));
	dlvm_format_size(meta_ext * es, 'h', msz, sizeof(msz));
	resp_message(resp, "Thin pool volume with chunk size %u KiB can provide up to %s of data "
		     "(metadata %s).", chunk >> 10, sz, msz);
	resp_message(resp, "Logical volume \"%s\" created.", name);
	goto out;
undo_meta:;
	struct dlvm_err e2 = { 0 };
	struct dlvm_edit rm = { .type = DLVM_EDIT_LV_REMOVE };
	rm.u.lv.id = meta_id;
	if (dlvm_txn_commit_edit(vg, &rm, &e2))
		resp_warning(resp, "%s/%s: left behind: %s", vg->info.name, meta_name, e2.msg);
out:
	free(pvs);
	return r;
}

/* The pool named by -T VG/POOL, --thinpool POOL or the argument. */
static int find_pool(struct dlvm_vg *vg, const char *pool_name, struct dlvm_lv **out,
		     struct dlvm_err *err)
{
	struct dlvm_lv *p = dlvm_lv_find(vg, pool_name);

	if (!p)
		return dlvm_err_set(err, -ENOENT, "Thin pool %s/%s not found", vg->info.name,
				    pool_name);
	if (!(p->flags & DLVM_LV_THIN_POOL))
		return dlvm_err_set(err, -EINVAL, "%s/%s is not a thin pool", vg->info.name,
				    pool_name);
	*out = p;
	return 0;
}

static void next_free_name(const struct dlvm_vg *vg, char *out, size_t len)
{
	for (unsigned i = 0;; i++) {
		snprintf(out, len, "lvol%u", i);
		if (!dlvm_lv_find(vg, out))
			return;
	}
}

/*
 * The journal record of thin LV id, whose device the store already holds:
 * one transaction of LV_CREATE and LV_SET_THIN. When it fails, the device
 * goes again (a warning says so if it cannot), so nothing changed.
 */
static int thin_lv_record(struct dlvm_vg *vg, struct dlvm_thin_pool *pool, uint64_t id,
			  const char *lvname, uint64_t flags, const struct dlvm_lv_thin *thin,
			  json_t *resp, struct dlvm_err *err)
{
	struct dlvm_txn t;
	struct dlvm_edit ce, te;
	int r;

	thin_lv_edits(&ce, &te, id, lvname, flags, thin);
	dlvm_txn_init(&t);
	if ((r = dlvm_txn_add(&t, &ce)) || (r = dlvm_txn_add(&t, &te)))
		r = dlvm_err_set(err, r, "out of memory");
	else
		r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	if (r) {
		struct dlvm_err e2 = { 0 };
		if (dlvm_thin_pool_delete_dev(pool, id, &e2))
			resp_warning(resp, "%s: device %" PRIu64 " left in the pool: %s", pool->name, id,
				     e2.msg);
	}
	return r;
}

int thin_lv_create(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const char *name, json_t *opts,
		   json_t *resp, struct dlvm_err *err)
{
	const char *V = opt_str(opts, "virtualsize"), *pn = opt_str(opts, "thinpool");
	const char *a = opt_str(opts, "activate");
	uint64_t es = vg->info.extent_size, vsize;
	struct dlvm_thin_pool *pool;
	struct dlvm_lv *plv = NULL;
	char lvname[DLVM_NAME_MAX + 1];
	bool on;
	enum dlvm_hold_mode mode;
	int r;

	bool shared = vg->info.flags & DLVM_VG_SHARED;

	if (!V)
		return dlvm_err_set(err, -EINVAL, "lvcreate: a thin volume needs -V SIZE");
	if (!pn)
		return dlvm_err_set(err, -EINVAL, "lvcreate -V: name the pool (-T VG/POOL or "
				    "--thinpool POOL)");
	if (opt_str(opts, "size") || opt_str(opts, "extents") || opt_str(opts, "stripes"))
		return dlvm_err_set(err, -EINVAL, "lvcreate -V: -L, -l and -i do not apply to a thin "
				    "volume");
	if ((r = parse_activate("lvcreate", a, &on, &mode, err)))
		return r;
	if ((r = dlvm_parse_size(V, 1 << 20, &vsize, NULL, err)))
		return dlvm_err_prefix(err, r, "-V: ");
	if (!vsize)
		return dlvm_err_set(err, -EINVAL, "lvcreate: -V must be larger than zero");
	if (vsize % es) /* whole extents, as LVM rounds */
		vsize += es - vsize % es;
	if (vsize > DLVM_THIN_MAX_VSIZE)
		return dlvm_err_set(err, -ERANGE, "-V %s: too large (a thin LV is at most 1 EiB)", V);
	if ((r = find_pool(vg, pn, &plv, err)))
		return r;
	if (name && dlvm_lv_find(vg, name))
		return dlvm_err_set(err, -EEXIST, "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"", name, vg->info.name);
	if (vg->info.max_lv && vg->nlv >= vg->info.max_lv)
		return dlvm_err_set(err, -ENOSPC, "%s: maximum of %u LVs reached", vg->info.name,
				    vg->info.max_lv);
	if (name)
		snprintf(lvname, sizeof(lvname), "%s", name);
	else
		next_free_name(vg, lvname, sizeof(lvname));
	/* the store is written before the journal: a read-only VG refuses first */
	if ((r = dlvm_vg_writable(vg, err)))
		return r;
	if (shared) {
		if ((r = family_create(vg, plv, lvname, vsize, 0, err)))
			return r;
		goto created;
	}
	if ((r = dlvm_thin_pool_get(vg, plv, &pool, err)))
		return r;
	uint64_t id = vg->info.next_lv_id;
	/* the store's device first: a crash before the journal leaves an
	 * unused device, never an LV without one */
	if ((r = dlvm_thin_pool_create_dev(pool, id, err)))
		return dlvm_err_prefix(err, r, "%s/%s: ", vg->info.name, lvname);
	struct dlvm_lv_thin thin = { .pool_id = plv->id, .virtual_size = vsize };
	if ((r = thin_lv_record(vg, pool, id, lvname, DLVM_LV_THIN, &thin, resp, err)))
		return r;
created:;
	/* over-provisioning is allowed, and said */
	plv = dlvm_lv_find_id(vg, plv->id);
	uint64_t total = 0, pool_bytes = lv_bytes(vg, plv);
	for (size_t i = 0; i < vg->nlv; i++)
		if ((vg->lvs[i]->flags & DLVM_LV_THIN) && vg->lvs[i]->thin.pool_id == plv->id)
			total += vg->lvs[i]->thin.virtual_size;
	if (total > pool_bytes) {
		char a1[32], a2[32];
		dlvm_format_size(total, 'h', a1, sizeof(a1));
		dlvm_format_size(pool_bytes, 'h', a2, sizeof(a2));
		resp_warning(resp, "Sum of all thin volume sizes (%s) exceeds the size of thin pool "
			     "%s/%s (%s).", a1, vg->info.name, plv->name, a2);
	}
	struct dlvm_lv *lv = dlvm_lv_find(vg, lvname);
	if (on) {
		struct dlvm_err ae = { 0 };
		if ((shared && shared_lv_hold(ctx, vg, lv, mode, &ae)) ||
		    activate(ctx, vg, lv, NULL, &ae))
			resp_warning(resp, "%s/%s: created but not activated: %s", vg->info.name,
				     lvname, ae.msg);
	}
	resp_message(resp, "Logical volume \"%s\" created.", lvname);
	return 0;
}

static void clones_of(const struct dlvm_vg *vg, const struct dlvm_lv *lv, char *out, size_t len);

/*
 * The hidden snapshot that a shared VG's clones of a live volume read
 * through (lvcreate --clone): once no clone reads through it any more it
 * goes, here if its family can be written here; else it stays, shown by
 * lvs -a, and a warning says how to remove it.
 */
static void drop_clone_source(struct dlvm_ctx *ctx, struct dlvm_vg *vg, uint64_t id, json_t *resp)
{
	struct dlvm_lv *o = id ? dlvm_lv_find_id(vg, id) : NULL;
	struct dlvm_err e = { 0 };
	char list[512], name[DLVM_NAME_MAX + 1];

	if (!o || !(o->flags & DLVM_LV_HIDDEN) || !(o->flags & DLVM_LV_THIN))
		return;
	clones_of(vg, o, list, sizeof(list));
	if (*list)
		return;
	snprintf(name, sizeof(name), "%s", o->name);
	if (thin_remove(ctx, vg, o, resp, &e))
		resp_warning(resp, "%s/%s: the snapshot the clone read through stays: %s (lvremove "
			     "%s/%s where its family is written removes it)", vg->info.name, name,
			     e.msg, vg->info.name, name);
}

int thin_remove(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *resp,
		struct dlvm_err *err)
{
	int r = 0;

	if (lv->flags & DLVM_LV_THIN_POOL) {
		for (size_t i = 0; i < vg->nlv; i++)
			if ((vg->lvs[i]->flags & DLVM_LV_THIN) && vg->lvs[i]->thin.pool_id == lv->id)
				return dlvm_err_set(err, -EBUSY, "%s/%s: thin pool still holds thin "
						    "volume %s (remove it first)", vg->info.name,
						    lv->name, vg->lvs[i]->name);
		/* the open stores go first: they live in the LVs */
		struct dlvm_thin_pool **pp = &vg->thin_pools;
		while (*pp) {
			struct dlvm_thin_pool *p = *pp;
			if (p->lv_id != lv->id) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			dlvm_thin_pool_unref(p);
		}
		struct dlvm_txn t;
		struct dlvm_edit e1 = { .type = DLVM_EDIT_LV_REMOVE }, e2 = { .type = DLVM_EDIT_LV_REMOVE };
		e1.u.lv.id = lv->id;
		e2.u.lv.id = lv->thin.meta_id;
		dlvm_txn_init(&t);
		/* families without volumes (a create cut short) go with it:
		 * their data LVs first, then the pool, then their metadata */
		for (size_t i = 0; i < vg->nlv && !r; i++) {
			struct dlvm_edit de = { .type = DLVM_EDIT_LV_REMOVE };
			de.u.lv.id = vg->lvs[i]->id;
			if ((vg->lvs[i]->flags & DLVM_LV_THIN_DATA) && vg->lvs[i]->thin.pool_id == lv->id)
				r = add_edit(&t, &de, err);
		}
		if (!r)
			r = add_edit(&t, &e1, err);
		for (size_t i = 0; i < vg->nlv && !r; i++) {
			struct dlvm_edit me = { .type = DLVM_EDIT_LV_REMOVE };
			me.u.lv.id = vg->lvs[i]->id;
			if ((vg->lvs[i]->flags & DLVM_LV_THIN_META) && vg->lvs[i]->thin.pool_id == lv->id)
				r = add_edit(&t, &me, err);
		}
		if (!r && lv->thin.meta_id && dlvm_lv_find_id(vg, lv->thin.meta_id))
			r = add_edit(&t, &e2, err);
		if (!r)
			r = dlvm_txn_commit(vg, &t, err);
		dlvm_txn_release(&t);
		return r;
	}
	/* a thin LV: the journal first, then the store's device */
	uint64_t id = lv->id, meta_id = lv->thin.meta_id;
	if (meta_id && (r = shared_family_refuse_elsewhere(ctx, vg, lv, "remove", err)))
		return r;
	bool last = meta_id != 0;
	for (size_t i = 0; i < vg->nlv && last; i++)
		last = vg->lvs[i] == lv || !(vg->lvs[i]->flags & DLVM_LV_THIN) ||
		       vg->lvs[i]->thin.meta_id != meta_id;
	if (last) {
		/* the family's last volume: the family goes with it, its slabs
		 * back to the pool, in one transaction */
		struct dlvm_txn t;
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_REMOVE };
		const struct dlvm_lv *m = dlvm_lv_find_id(vg, meta_id);
		uint64_t src_id = m ? m->thin.origin_id : 0; /* a clone's family */
		e.u.lv.id = id;
		family_forget(vg, meta_id);
		dlvm_txn_init(&t);
		if (!(r = add_edit(&t, &e, err)) && !(r = family_remove_edits(vg, meta_id, &t, err)))
			r = dlvm_txn_commit(vg, &t, err);
		dlvm_txn_release(&t);
		if (!r)
			drop_clone_source(ctx, vg, src_id, resp);
		return r;
	}
	struct dlvm_lv lv_copy = *lv;
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_REMOVE };
	e.u.lv.id = id;
	if ((r = dlvm_txn_commit_edit(vg, &e, err)))
		return r;
	struct dlvm_thin_pool *pool;
	struct dlvm_err e2 = { 0 };
	lv_copy.segs = NULL;
	lv_copy.holders = NULL;
	if (dlvm_thin_lv_store(vg, &lv_copy, true, &pool, &e2) ||
	    dlvm_thin_pool_delete_dev(pool, id, &e2))
		resp_warning(resp, "%s: thin device %" PRIu64 " was not freed in its pool: %s (dlvm "
			     "check --repair frees it)", vg->info.name, id, e2.msg);
	else
		family_release(vg, pool);
	return 0;
}

int thin_resize(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *opts,
		json_t *resp, struct dlvm_err *err)
{
	uint64_t es = vg->info.extent_size, target;
	int r;

	if (lv->flags & DLVM_LV_THIN_POOL)
		return dlvm_err_set(err, -ENOTSUP, "internal: pool resize goes through segments");
	if ((r = target_extents(vg, opts, lv->thin.virtual_size / es, true, 1, &target, err)))
		return r;
	uint64_t cur = lv->thin.virtual_size, want = target * es;
	if (want > DLVM_THIN_MAX_VSIZE)
		return dlvm_err_set(err, -ERANGE, "%s/%s: too large (a thin LV is at most 1 EiB)",
				    vg->info.name, lv->name);
	if (want < cur && !opt_flag(opts, "force"))
		return dlvm_err_set(err, -EINVAL, "Reducing %s/%s would cut the data past the new "
				    "end: use -f to do it", vg->info.name, lv->name);
	if (want == cur)
		return dlvm_err_set(err, -EINVAL, "New size (%" PRIu64 " extents) matches existing "
				    "size (%" PRIu64 " extents).", target, cur / es);
	/* a reduce unmaps in the store before the journal: refuse first */
	if ((r = dlvm_vg_writable(vg, err)))
		return r;
	if (want < cur && lv->thin.meta_id) {
		const struct dlvm_lv *m = dlvm_lv_find_id(vg, lv->thin.meta_id);
		if (m && m->thin.origin_id)
			return dlvm_err_set(err, -EINVAL, "%s/%s: a clone reads what it never wrote "
					    "from its origin: flatten it before reducing it "
					    "(lvconvert --flatten)", vg->info.name, lv->name);
	}
	if (want < cur && is_active(ctx, vg, lv))
		return dlvm_err_set(err, -EBUSY, "%s/%s: deactivate it before reducing it",
				    vg->info.name, lv->name);
	if (want < cur) {
		/* the chunks past the new end are unmapped first */
		struct dlvm_thin_pool *pool;
		if ((r = shared_family_refuse_elsewhere(ctx, vg, lv, "reduce", err)) ||
		    (r = dlvm_thin_lv_store(vg, lv, true, &pool, err)))
			return r;
		pthread_mutex_lock(&pool->mu);
		uint64_t cs = pool->chunk_size, first = (want + cs - 1) / cs, un;
		r = dlvm_thin_unmap(pool->store, lv->id, first, DLVM_THIN_MAX_ID - first, &un, err);
		pthread_mutex_unlock(&pool->mu);
		if (r || (r = dlvm_thin_pool_commit(pool, err)))
			return r;
		family_release(vg, pool);
	}
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_THIN };
	e.u.lv.id = lv->id;
	e.u.lv.thin = lv->thin;
	e.u.lv.thin.virtual_size = want;
	if ((r = dlvm_txn_commit_edit(vg, &e, err)))
		return r;
	if (is_active(ctx, vg, lv)) {
		struct dlvm_err ae = { 0 };
		if (activate(ctx, vg, lv, NULL, &ae))
			resp_warning(resp, "%s/%s: resized, but the export was not refreshed: %s",
				     vg->info.name, lv->name, ae.msg);
	}
	char a1[32], a2[32];
	dlvm_format_size(cur, 'h', a1, sizeof(a1));
	dlvm_format_size(want, 'h', a2, sizeof(a2));
	resp_message(resp, "Size of logical volume %s/%s changed from %s to %s.", vg->info.name,
		     lv->name, a1, a2);
	resp_message(resp, "Logical volume %s/%s successfully resized.", vg->info.name, lv->name);
	return 0;
}

static void percent(json_t *row, const char *key, uint64_t used, uint64_t total)
{
	char buf[16];
	snprintf(buf, sizeof(buf), "%.2f", total ? 100.0 * (double)used / (double)total : 0.0);
	json_object_set_new(row, key, json_string(buf));
}

void thin_report(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const struct dlvm_lv *lv, json_t *row)
{
	struct dlvm_thin_pool *pool;
	const struct dlvm_lv *plv = (lv->flags & DLVM_LV_THIN_POOL) ? lv
				    : dlvm_lv_find_id(vg, lv->thin.pool_id);

	(void)ctx;
	json_object_set_new(row, "pool_lv", json_string((lv->flags & DLVM_LV_THIN) && plv
								? plv->name : ""));
	const struct dlvm_lv *o = lv->thin.origin_id ? dlvm_lv_find_id(vg, lv->thin.origin_id) : NULL;
	json_object_set_new(row, "origin", json_string(o ? o->name : ""));
	if (plv && plv->thin.slab_extents && (lv->flags & DLVM_LV_THIN_POOL)) {
		/* a shared VG's pool: the slabs its families hold */
		uint64_t all = lv_bytes(vg, lv) / vg->info.extent_size;
		percent(row, "data_percent", all - lv->le_count, all);
		json_object_set_new(row, "metadata_percent", json_string(""));
		json_object_set_new(row, "chunk_size", json_integer((json_int_t)lv->thin.chunk_size));
		return;
	}
	/* a shared VG's thin LV is read through a view unless this host
	 * writes its family */
	if (!plv || ((lv->flags & DLVM_LV_THIN_POOL) ? dlvm_thin_pool_get(vg, plv, &pool, NULL)
						     : dlvm_thin_lv_store(vg, lv, false, &pool, NULL))) {
		json_object_set_new(row, "data_percent", json_string(""));
		json_object_set_new(row, "metadata_percent", json_string(""));
		return;
	}
	struct dlvm_thin_usage u;
	dlvm_thin_pool_usage(pool, &u);
	if (lv->flags & DLVM_LV_THIN_POOL) {
		percent(row, "data_percent", u.data_chunks - u.data_free - u.data_pending,
			u.data_chunks);
		percent(row, "metadata_percent", u.meta_blocks - u.meta_free - u.meta_pending,
			u.meta_blocks);
		json_object_set_new(row, "chunk_size", json_integer((json_int_t)u.chunk_size));
	} else {
		uint64_t vchunks = lv->thin.virtual_size / u.chunk_size;
		percent(row, "data_percent", dlvm_thin_pool_dev_mapped(pool, lv->id), vchunks);
		json_object_set_new(row, "metadata_percent", json_string(""));
		json_object_set_new(row, "chunk_size", json_integer((json_int_t)u.chunk_size));
	}
}

static void rep_line(struct dlvm_check_report *rep, bool problem, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void rep_line(struct dlvm_check_report *rep, bool problem, const char *fmt, ...)
{
	char **l = realloc(rep->lines, (rep->nlines + 1) * sizeof(*l));
	va_list ap;

	if (problem)
		rep->problems++;
	if (!l)
		return;
	rep->lines = l;
	va_start(ap, fmt);
	if (vasprintf(&l[rep->nlines], fmt, ap) >= 0)
		rep->nlines++;
	va_end(ap);
}

/* Check one store (a local pool's or a family's) and that its devices and
 * the thin LVs that name it match. */
static int check_store(struct dlvm_vg *vg, uint64_t meta_id, const char *what,
		       struct dlvm_check_report *rep, struct dlvm_err *err)
{
	struct dlvm_thin_pool *pool;
	struct dlvm_err e = { 0 };
	int r;

	if (dlvm_thin_store_get(vg, meta_id, true, &pool, &e)) {
		rep_line(rep, true, "%s/%s: %s", vg->info.name, what, e.msg);
		return 0;
	}
	if ((r = dlvm_thin_pool_check(pool, rep, err)))
		return r;
	const struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	bool family = meta && meta->thin.pool_id;
	uint64_t id = 0, next;
	pthread_mutex_lock(&pool->mu);
	while (!dlvm_thin_next_dev(pool->store, id, &next, NULL) && next != DLVM_THIN_NONE) {
		const struct dlvm_lv *t = dlvm_lv_find_id(vg, next);
		if (!t || !(t->flags & DLVM_LV_THIN) || t->thin.pool_id != pool->lv_id ||
		    (family && t->thin.meta_id != meta_id))
			rep_line(rep, true, "%s/%s: thin device %" PRIu64 " has no thin LV",
				 vg->info.name, what, next);
		id = next + 1;
	}
	for (size_t k = 0; k < vg->nlv; k++) {
		const struct dlvm_lv *t = vg->lvs[k];
		struct dlvm_thin_dev_info info;
		if (!(t->flags & DLVM_LV_THIN) || t->thin.pool_id != pool->lv_id ||
		    (family ? t->thin.meta_id != meta_id : t->thin.meta_id != 0) ||
		    !dlvm_thin_info(pool->store, t->id, &info, NULL))
			continue;
		rep_line(rep, true, "%s/%s: no device in %s%s", vg->info.name, t->name,
			 family ? "" : "pool ", what);
	}
	pthread_mutex_unlock(&pool->mu);
	family_release(vg, pool);
	return 0;
}

int thin_check_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_check_report *rep,
		  struct dlvm_err *err)
{
	int r;

	for (size_t i = 0; i < vg->nlv; i++) {
		struct dlvm_lv *lv = vg->lvs[i];
		char what[2 * DLVM_NAME_MAX + 16];
		if ((lv->flags & DLVM_LV_THIN_POOL) && lv->thin.meta_id) {
			snprintf(what, sizeof(what), "%s", lv->name);
			if ((r = check_store(vg, lv->thin.meta_id, what, rep, err)))
				return r;
			continue;
		}
		if (!(lv->flags & DLVM_LV_THIN_META) || !lv->thin.pool_id)
			continue;
		/* a family: checked unless another host writes it now */
		struct dlvm_err e = { 0 };
		if (shared_lv_refuse_elsewhere(ctx, vg, lv, "check", &e) == -EBUSY) {
			rep_line(rep, false, "%s (not checked: %s)", lv->name, e.msg);
			continue;
		}
		ctx->lock_conflict = false;
		if (!dlvm_thin_family_data(vg, lv->id)) {
			rep_line(rep, true, "%s/%s: the family has no data LV", vg->info.name,
				 lv->name);
			continue;
		}
		bool used = false;
		for (size_t k = 0; k < vg->nlv && !used; k++)
			used = (vg->lvs[k]->flags & DLVM_LV_THIN) && vg->lvs[k]->thin.meta_id == lv->id;
		if (!used)
			rep_line(rep, true, "%s/%s: a family without thin volumes (left by an "
				 "interrupted lvcreate; lvremove of the pool removes it)",
				 vg->info.name, lv->name);
		snprintf(what, sizeof(what), "family %s", lv->name);
		if ((r = check_store(vg, lv->id, what, rep, err)))
			return r;
	}
	return 0;
}

/* ---- snapshots and clones ---- */

static int thin_source(struct dlvm_ctx *ctx, const char *path, const char *what,
		       struct dlvm_vg **vg, struct dlvm_lv **lv, struct dlvm_err *err)
{
	int r;

	if ((r = find_lv(ctx, path, vg, lv, err)))
		return r;
	if (!((*lv)->flags & DLVM_LV_THIN))
		return dlvm_err_set(err, -EINVAL, "%s/%s is not a thin volume: %s needs one (create "
				    "a thin volume with lvcreate -V SIZE -T VG/POOL and copy the data "
				    "into it)", (*vg)->info.name, (*lv)->name, what);
	return 0;
}

/*
 * A snapshot (or, with clone, a writable clone) named lvname of thin
 * volume src, in src's store: one store change, then one journal
 * transaction. hidden_flags go into the new LV's flags (DLVM_LV_HIDDEN for
 * the snapshot a shared VG's clone of a live volume reads through).
 */
static int family_snapshot(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *src,
			   const char *lvname, bool clone, uint64_t hidden_flags, json_t *resp,
			   struct dlvm_err *err)
{
	struct dlvm_thin_pool *pool;
	int r;

	if ((r = shared_family_refuse_elsewhere(ctx, vg, src, clone ? "clone" : "snapshot", err)) ||
	    (r = dlvm_thin_lv_store(vg, src, true, &pool, err)))
		return r;
	uint64_t id = vg->info.next_lv_id;
	if ((r = dlvm_thin_pool_snapshot(pool, src->id, id, clone ? 0 : DLVM_THIN_DEV_READONLY,
					 err))) {
		family_release(vg, pool);
		return dlvm_err_prefix(err, r, "%s/%s: ", vg->info.name, lvname);
	}
	struct dlvm_lv_thin thin = src->thin; /* the same pool and family */
	thin.origin_id = src->id;
	r = thin_lv_record(vg, pool, id, lvname,
			   DLVM_LV_THIN | (clone ? 0 : DLVM_LV_READONLY) | hidden_flags, &thin, resp,
			   err);
	family_release(vg, pool);
	return r;
}

int thin_snapshot_create(struct dlvm_ctx *ctx, const char *source, const char *name, bool clone,
			 json_t *opts, json_t *resp, struct dlvm_err *err)
{
	const char *what = clone ? "a clone" : "a snapshot", *a = opt_str(opts, "activate");
	struct dlvm_vg *vg;
	struct dlvm_lv *src, *plv;
	char lvname[DLVM_NAME_MAX + 1];
	bool on;
	enum dlvm_hold_mode mode;
	int r;

	if ((r = thin_source(ctx, source, what, &vg, &src, err)))
		return r;
	if (opt_str(opts, "size") || opt_str(opts, "extents") || opt_str(opts, "virtualsize"))
		return dlvm_err_set(err, -EINVAL, "lvcreate: %s of a thin volume takes no size",
				    what);
	if (clone && (src->flags & DLVM_LV_THIN) && !(src->flags & DLVM_LV_READONLY) &&
	    is_active(ctx, vg, src))
		resp_message(resp, "%s/%s is active: the clone holds the writes completed before "
			     "this command", vg->info.name, src->name);
	if ((r = parse_activate("lvcreate", a, &on, &mode, err)))
		return r;
	if (!a) /* snapshots are not activated unless asked, as in LVM */
		on = clone;
	if (name && (r = dlvm_check_name(name, "LV", err)))
		return r;
	if (name && dlvm_lv_find(vg, name))
		return dlvm_err_set(err, -EEXIST, "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"", name, vg->info.name);
	if (!(plv = dlvm_lv_find_id(vg, src->thin.pool_id)))
		return dlvm_err_set(err, -EBADMSG, "%s/%s: its pool is missing", vg->info.name,
				    src->name);
	/* the store is written before the journal: a read-only VG refuses first */
	if ((r = dlvm_vg_writable(vg, err)))
		return r;
	bool shared = vg->info.flags & DLVM_VG_SHARED;
	if (shared && clone) {
		/* a family of its own that reads through to a snapshot, so
		 * that any host can write it; of a live volume, through a
		 * hidden snapshot taken now (removed with its last clone) */
		char hname[DLVM_NAME_MAX + 1];
		bool live = !(src->flags & DLVM_LV_READONLY);
		if (name)
			snprintf(lvname, sizeof(lvname), "%s", name);
		else
			next_free_name(vg, lvname, sizeof(lvname));
		if (live) {
			if (snprintf(hname, sizeof(hname), "%s_clonesrc", lvname) >=
			    (int)sizeof(hname) - 1)
				return dlvm_err_set(err, -EINVAL, "lvcreate: clone name %s is too "
						    "long for the snapshot it reads through",
						    lvname);
			if (dlvm_lv_find(vg, hname))
				return dlvm_err_set(err, -EEXIST, "%s/%s: the name of the snapshot "
						    "a clone %s would read through is taken",
						    vg->info.name, hname, lvname);
			if ((r = family_snapshot(ctx, vg, src, hname, false, DLVM_LV_HIDDEN, resp,
						 err)))
				return r;
			if (!(src = dlvm_lv_find(vg, hname)) ||
			    !(plv = dlvm_lv_find_id(vg, src->thin.pool_id)))
				return dlvm_err_set(err, -EBADMSG, "%s/%s: gone after its creation",
						    vg->info.name, hname);
		}
		if ((r = family_create(vg, plv, lvname, src->thin.virtual_size, src->id, err))) {
			if (live) /* change nothing */
				drop_clone_source(ctx, vg, src->id, resp);
			return r;
		}
		goto created;
	}
	if (name)
		snprintf(lvname, sizeof(lvname), "%s", name);
	else
		next_free_name(vg, lvname, sizeof(lvname));
	if ((r = family_snapshot(ctx, vg, src, lvname, clone, 0, resp, err)))
		return r;
created:
	if (on) {
		struct dlvm_err ae = { 0 };
		struct dlvm_lv *lv = dlvm_lv_find(vg, lvname);
		if ((shared && shared_lv_hold(ctx, vg, lv, mode, &ae)) ||
		    activate(ctx, vg, lv, NULL, &ae))
			resp_warning(resp, "%s/%s: created but not activated: %s", vg->info.name,
				     lvname, ae.msg);
	}
	resp_message(resp, "Logical volume \"%s\" created.", lvname);
	return 0;
}

/* The writable clones made from lv, as "a, b" (empty: none). */
static void clones_of(const struct dlvm_vg *vg, const struct dlvm_lv *lv, char *out, size_t len)
{
	size_t used = 0;

	*out = 0;
	for (size_t i = 0; i < vg->nlv && used < len; i++) {
		const struct dlvm_lv *c = vg->lvs[i];
		/* a clone, or any volume of a clone's family that reads through
		 * to lv (a shared VG: the clone's snapshots too) */
		const struct dlvm_lv *m = (c->flags & DLVM_LV_THIN) && c->thin.meta_id
					  ? dlvm_lv_find_id(vg, c->thin.meta_id) : NULL;
		if (((c->flags & DLVM_LV_THIN) && c->thin.origin_id == lv->id &&
		     !(c->flags & DLVM_LV_READONLY)) || (m && m->thin.origin_id == lv->id))
			used += (size_t)snprintf(out + used, len - used, "%s%s", used ? ", " : "",
						 c->name);
	}
}

int thin_refuse_remove(const struct dlvm_vg *vg, const struct dlvm_lv *lv, struct dlvm_err *err)
{
	char list[512];

	if (!(lv->flags & DLVM_LV_THIN) || !(lv->flags & DLVM_LV_READONLY))
		return 0;
	clones_of(vg, lv, list, sizeof(list));
	if (!*list)
		return 0;
	return dlvm_err_set(err, -EBUSY, "%s/%s: snapshot has clones: %s (flatten them first: "
			    "lvconvert --flatten)", vg->info.name, lv->name, list);
}

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
	struct dlvm_job *job;           /* NULL: inside the command (set by the job) */
	char vg[DLVM_NAME_MAX + 1];
	char name[DLVM_NAME_MAX + 1];   /* the clone's, at the start */
	char oname[DLVM_NAME_MAX + 1];  /* its origin's */
	uint64_t id, meta_id, src_id, vchunks;
	uint32_t chunk_size;
	uint64_t rate;                  /* bytes per second, 0: no limit */
	uint64_t t0_ms;
	uint64_t copied;                /* chunks */
	struct dlvm_thin_pool *pool;    /* a reference, NULL once let go */
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
		return dlvm_err_set(s->err, -EBADMSG, "%s: the clone's family is incomplete", f->vg);
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
			return dlvm_err_set(err, -ECANCELED, "stopped with dlvmd after %" PRIu64
					    " chunks (the next start of dlvmd goes on from "
					    "there)", copied);
		if (!f->rate)
			return 0;
		uint64_t due = (uint64_t)((double)copied * f->chunk_size * 1000.0 / (double)f->rate);
		uint64_t spent = dlvm_monotonic_ms() - f->t0_ms;
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
static int flatten_mark_edits(const struct dlvm_lv *c, bool on, uint64_t rate,
			      struct dlvm_txn *t, struct dlvm_err *err)
{
	uint64_t flags = on ? c->flags | DLVM_LV_FLATTEN : c->flags & ~DLVM_LV_FLATTEN;
	int r = 0;

	if (!on)
		rate = 0;
	if (flags != c->flags) {
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_FLAGS };
		e.u.lv.id = c->id;
		e.u.lv.flags = flags;
		r = add_edit(t, &e, err);
	}
	if (!r && rate != c->copy_rate) {
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_COPY_RATE,
				       .flags = DLVM_EDIT_IGNORABLE };
		e.u.lv.id = c->id;
		e.u.lv.copy_rate = rate;
		r = add_edit(t, &e, err);
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
		if (!(r = add_edit(&t, &ce, s->err)) && !(r = add_edit(&t, &me, s->err)) &&
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
		resp_warning(s->resp, "%s/%s: its family store stays open here: %s", f->vg,
			     f->name, e.msg);
	if (s->copy_r || r)
		return r;
	resp_message(s->resp, "%s/%s no longer depends on %s (%" PRIu64 " chunks copied).", f->vg,
		     c->name, f->oname, f->copied);
	drop_clone_source(ctx, vg, f->src_id, s->resp);
	return 0;
}

static int flatten_copy(struct flatten *f, struct dlvm_err *err)
{
	f->t0_ms = dlvm_monotonic_ms();
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

static int flatten_family(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
			  uint64_t rate, bool background, json_t *resp, struct dlvm_err *err)
{
	struct dlvm_thin_pool *pool;
	int r;

	for (size_t i = 0; i < vg->nlv; i++)
		if (vg->lvs[i] != lv && (vg->lvs[i]->flags & DLVM_LV_THIN) &&
		    vg->lvs[i]->thin.meta_id == lv->thin.meta_id)
			return dlvm_err_set(err, -EBUSY, "%s/%s: remove %s first: snapshots of a clone "
					    "read through to its origin too", vg->info.name, lv->name,
					    vg->lvs[i]->name);
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
	f->chunk_size = pool->chunk_size;
	f->vchunks = lv->thin.virtual_size / pool->chunk_size;
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
	resp_message(resp, "%s/%s: flattening from %s (job %" PRIu64 ")%s", vg->info.name,
		     lv->name, f->oname, j->id,
		     background ? ": dlvm jobs shows its progress." : ".");
	return 0;
}

DLVM_CMD_FN(cmd_lvconvert)
{
	bool merge = opt_flag(opts, "merge"), flatten = opt_flag(opts, "flatten");
	struct dlvm_vg *vg;
	struct dlvm_lv *lv;
	int r;

	if (merge == flatten)
		return dlvm_err_set(err, -EINVAL, "lvconvert: give --merge SNAPSHOT or --flatten "
				    "CLONE");
	if (json_array_size(args) != 1)
		return dlvm_err_set(err, -EINVAL, "lvconvert: give one VG/LV");
	const char *rate_s = opt_str(opts, "maxrecoveryrate"), *iv = opt_str(opts, "interval");
	uint64_t rate = 0;
	if (merge && (rate_s || iv || opt_flag(opts, "background")))
		return dlvm_err_set(err, -EINVAL, "lvconvert: --background, --interval and "
				    "--maxrecoveryrate go with --flatten");
	if (rate_s && (r = dlvm_parse_size(rate_s, 1 << 20, &rate, NULL, err)))
		return dlvm_err_prefix(err, r, "lvconvert: --maxrecoveryrate: ");
	if (iv) {
		char *end;
		double v = strtod(iv, &end);
		if (end == iv || *end || !(v > 0 && v <= 3600))
			return dlvm_err_set(err, -EINVAL, "lvconvert: --interval takes seconds (over 0, "
					    "up to 3600), not \"%s\"", iv);
	}
	if ((r = thin_source(ctx, arg_str(args, 0), merge ? "--merge" : "--flatten", &vg, &lv,
			     err)))
		return r;
	const struct dlvm_lv *o = lv->thin.origin_id ? dlvm_lv_find_id(vg, lv->thin.origin_id)
						     : NULL;
	if (flatten) {
		if (!lv->thin.origin_id || (lv->flags & DLVM_LV_READONLY))
			return dlvm_err_set(err, -EINVAL, "%s/%s is not a clone", vg->info.name,
					    lv->name);
		if (lv->thin.meta_id) {
			const struct dlvm_lv *m = dlvm_lv_find_id(vg, lv->thin.meta_id);
			/* one left unfinished goes on at the rate it had */
			if (!rate_s && (lv->flags & DLVM_LV_FLATTEN))
				rate = lv->copy_rate;
			if (m && m->thin.origin_id)
				return flatten_family(ctx, vg, lv, rate,
						      opt_flag(opts, "background"), resp, err);
		}
		/* clones share chunks through reference counts, not through
		 * their origin: forgetting the origin is all there is to do */
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_THIN };
		e.u.lv.id = lv->id;
		e.u.lv.thin = lv->thin;
		e.u.lv.thin.origin_id = 0;
		if ((r = dlvm_txn_commit_edit(vg, &e, err)))
			return r;
		resp_message(resp, "%s/%s no longer depends on %s.", vg->info.name, lv->name,
			     o ? o->name : "its origin");
		return 0;
	}
	if (!(lv->flags & DLVM_LV_READONLY) || !lv->thin.origin_id)
		return dlvm_err_set(err, -EINVAL, "%s/%s is not a snapshot", vg->info.name, lv->name);
	if (!o)
		return dlvm_err_set(err, -ENOENT, "%s/%s: its origin no longer exists",
				    vg->info.name, lv->name);
	struct dlvm_lv *origin = dlvm_lv_find_id(vg, o->id);
	if (is_active(ctx, vg, origin))
		return dlvm_err_set(err, -EBUSY, "%s/%s: the origin is active: deactivate it before "
				    "merging %s into it (lvchange -an %s/%s)", vg->info.name,
				    origin->name, lv->name, vg->info.name, origin->name);
	if (is_active(ctx, vg, lv))
		return dlvm_err_set(err, -EBUSY, "%s/%s: deactivate the snapshot before merging it",
				    vg->info.name, lv->name);
	if ((r = thin_refuse_remove(vg, lv, err)) ||
	    (r = shared_lv_refuse_elsewhere(ctx, vg, origin, "merge into it", err)) ||
	    (r = shared_lv_refuse_elsewhere(ctx, vg, lv, "merge it", err)) ||
	    (r = shared_family_refuse_elsewhere(ctx, vg, lv, "merge", err)))
		return r;
	struct dlvm_thin_pool *pool;
	if ((r = dlvm_vg_writable(vg, err)) || (r = dlvm_thin_lv_store(vg, lv, true, &pool, err)))
		return r;
	/* the origin takes the snapshot's contents in one store commit; then
	 * the snapshot goes (journal, then store), as lvremove does */
	if ((r = dlvm_thin_pool_revert(pool, origin->id, lv->id, err))) {
		family_release(vg, pool);
		return r;
	}
	char sname[DLVM_NAME_MAX + 1];
	snprintf(sname, sizeof(sname), "%s", lv->name);
	if ((r = thin_remove(ctx, vg, lv, resp, err)))
		return r;
	resp_message(resp, "Merged %s/%s into %s/%s: the origin holds the snapshot's data and the "
		     "snapshot is removed.", vg->info.name, sname, vg->info.name, origin->name);
	return 0;
}

/* Warn when a pool's data or metadata use crosses 80% and every 5% above
 * (as LVM's monitoring does); say so again once it drops back. */
static void warn_level(const char *pool, const char *what, uint64_t used, uint64_t total,
		       unsigned *warned)
{
	unsigned pct = total ? (unsigned)(used * 100 / total) : 0;
	unsigned level = pct < 80 ? 0 : pct - pct % 5;

	if (level > *warned)
		fprintf(stderr, "dlvmd: WARNING: thin pool %s %s is now %u%% full.\n", pool, what,
			pct);
	else if (!level && *warned)
		fprintf(stderr, "dlvmd: thin pool %s %s is below 80%% again (%u%%).\n", pool, what,
			pct);
	*warned = level;
}

static void pool_warn_usage(struct dlvm_thin_pool *p)
{
	struct dlvm_thin_usage u;

	dlvm_thin_pool_usage(p, &u);
	warn_level(p->name, "data", u.data_chunks - u.data_free - u.data_pending, u.data_chunks,
		   &p->warned_data);
	warn_level(p->name, "metadata", u.meta_blocks - u.meta_free - u.meta_pending,
		   u.meta_blocks, &p->warned_meta);
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
		struct dlvm_thin_pool *p = vg->thin_pools, *next;
		for (; p; p = next) {
			struct dlvm_err e = { 0 };
			next = p->next;
			if (p->family) {
				const struct dlvm_lv *meta = dlvm_lv_find_id(vg, p->meta_id);
				if (!p->reader && (!meta || !shared_lv_held_here(ctx, vg, meta))) {
					pthread_mutex_lock(&p->mu);
					if (!p->broken) {
						p->broken = true;
						snprintf(p->broken_msg, sizeof(p->broken_msg),
							 "the family is no longer held by this host");
					}
					pthread_cond_broadcast(&p->grown);
					pthread_mutex_unlock(&p->mu);
					dlvm_thin_store_drop(vg, p, NULL);
					continue;
				}
				if (atomic_load(&p->refs) == 1) {
					if (dlvm_thin_store_drop(vg, p, &e))
						fprintf(stderr, "dlvmd: %s: commit: %s\n", p->name, e.msg);
					continue;
				}
				const struct dlvm_lv *pool = dlvm_lv_find_id(vg, p->lv_id);
				uint64_t slab = pool ? pool->thin.slab_extents * vg->info.extent_size /
						       p->chunk_size : 0;
				/* the pool grew since the last failure (here or on
				 * another host): try again */
				pthread_mutex_lock(&p->mu);
				if (p->slab_fails && pool && pool->le_count >= pool->thin.slab_extents &&
				    pool->le_count != p->slab_fail_free)
					p->slab_fails = 0;
				bool failed = p->slab_fails, want = p->want_slab;
				pthread_mutex_unlock(&p->mu);
				if (failed && want) /* the writes waiting fail with ENOSPC */
					dlvm_thin_family_no_slab(p, pool ? pool->le_count : 0);
				if (!p->reader && !failed && ngrow < 16 &&
				    (want || dlvm_thin_pool_free_chunks(p) < slab / 2))
					grow[ngrow++] = p->meta_id;
				/* metadata 3/4 full: a quarter more, before it fills */
				struct dlvm_thin_usage u;
				dlvm_thin_pool_usage(p, &u);
				pthread_mutex_lock(&p->mu);
				if (p->meta_grow_failed && p->meta_fail_free != dlvm_vg_free_extents(vg))
					p->meta_grow_failed = false;
				bool mfailed = p->meta_grow_failed;
				pthread_mutex_unlock(&p->mu);
				if (!p->reader && !mfailed && nmgrow < 16 &&
				    (u.meta_blocks - u.meta_free - u.meta_pending) * 4 >= u.meta_blocks * 3)
					mgrow[nmgrow++] = p->meta_id;
			}
			if (dlvm_thin_pool_commit_dirty(p, &e))
				fprintf(stderr, "dlvmd: %s: commit: %s\n", p->name, e.msg);
			struct dlvm_err pe = { 0 };
			dlvm_thin_pool_cool(p, punch_until);
			dlvm_thin_pool_punch(p, punch_until, &pe);
			if (pe.code)
				fprintf(stderr, "dlvmd: %s\n", pe.msg);
			if (!p->family)
				pool_warn_usage(p);
			if (!p->family && !p->reader) {
				struct dlvm_thin_usage u;
				struct dlvm_lv *pool = dlvm_lv_find_id(vg, p->lv_id);
				dlvm_thin_pool_usage(p, &u);
				uint64_t used = u.data_chunks - u.data_free - u.data_pending;
				pthread_mutex_lock(&p->mu);
				p->can_grow = autoextend_on(ctx) && !p->autoextend_failed;
				bool want = p->want_slab;
				pthread_mutex_unlock(&p->mu);
				if (pool && p->can_grow &&
				    (want || used * 100 >= u.data_chunks * ctx->thin_autoextend_threshold) &&
				    pool_autoextend(ctx, vg, pool)) {
					pthread_mutex_lock(&p->mu);
					p->autoextend_failed = true;
					p->can_grow = false;
					p->want_slab = false;
					pthread_cond_broadcast(&p->grown);
					pthread_mutex_unlock(&p->mu);
				}
			}
		}
		char name[DLVM_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s", vg->info.name);
		for (size_t i = 0; i < nmgrow; i++) {
			struct slab_req req = { mgrow[i] };
			struct dlvm_err e = { 0 };
			if (shared_vg_locked(ctx, name, family_grow_meta, &req, &e) && e.msg[0])
				fprintf(stderr, "dlvmd: %s: growing thin family metadata: %s\n", name,
					e.msg);
		}
		for (size_t i = 0; i < ngrow; i++) {
			struct slab_req req = { grow[i] };
			struct dlvm_err e = { 0 };
			int r = shared_vg_locked(ctx, name, family_add_slab, &req, &e);
			if (r && r != -ENOSPC && r != -ENOENT) {
				struct dlvm_vg *nv;
				struct dlvm_thin_pool *fp;
				fprintf(stderr, "dlvmd: %s: adding a slab: %s\n", name, e.msg);
				if (!dlvm_ctx_vg(ctx, name, &nv, NULL) &&
				    (fp = dlvm_thin_store_find(nv, grow[i], true))) {
					const struct dlvm_lv *pl = dlvm_lv_find_id(nv, fp->lv_id);
					dlvm_thin_family_no_slab(fp, pl ? pl->le_count : 0);
				}
			}
		}
	}
}

int thin_pool_grow_meta(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *pool,
			json_t *opts, json_t *resp, struct dlvm_err *err)
{
	const char *ms = opt_str(opts, "poolmetadatasize");
	struct dlvm_lv *m = dlvm_lv_find_id(vg, pool->thin.meta_id);
	uint64_t es = vg->info.extent_size, bytes;
	char sign = 0;
	int r;

	(void)ctx;
	if (pool->thin.slab_extents)
		return dlvm_err_set(err, -EINVAL, "--poolmetadatasize: in a shared VG each thin "
				    "volume's family has its own metadata");
	if (!m)
		return dlvm_err_set(err, -EBADMSG, "%s/%s: its metadata LV is missing", vg->info.name,
				    pool->name);
	if ((r = dlvm_parse_size(ms, 1 << 20, &bytes, &sign, err)))
		return dlvm_err_prefix(err, r, "--poolmetadatasize: ");
	uint64_t cur = m->le_count, want = bytes / es + (bytes % es != 0);
	if (sign == '+')
		want += cur;
	if (sign == '-' || want < cur)
		return dlvm_err_set(err, -EINVAL, "--poolmetadatasize: pool metadata can only grow");
	if (want == cur)
		return dlvm_err_set(err, -EINVAL, "--poolmetadatasize: the metadata LV has that size "
				    "already");
	struct dlvm_seg_desc **add, **segs;
	uint32_t nadd, nseg;
	if ((r = dlvm_alloc(vg, m, want - cur, 1, 0, NULL, 0, &add, &nadd, err)))
		return r;
	/* the new segments follow the old ones */
	if ((r = dlvm_segs_dup(m->segs, m->nseg, &segs))) {
		dlvm_segs_free(add, nadd);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	struct dlvm_seg_desc **all = realloc(segs, (m->nseg + nadd) * sizeof(*all));
	if (!all) {
		dlvm_segs_free(segs, m->nseg);
		dlvm_segs_free(add, nadd);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(all + m->nseg, add, nadd * sizeof(*add));
	free(add);
	nseg = m->nseg + nadd;
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
	e.u.lv.id = m->id;
	e.u.lv.segs = all;
	e.u.lv.nseg = nseg;
	if ((r = dlvm_txn_commit_edit(vg, &e, err)))
		return r;
	if ((r = dlvm_thin_pool_meta_resized(vg, pool, err)))
		return dlvm_err_prefix(err, r, "%s/%s: metadata LV extended, but the pool does not "
				       "use it yet: ", vg->info.name, pool->name);
	char a[32];
	dlvm_format_size(want * es, 'h', a, sizeof(a));
	resp_message(resp, "Metadata of thin pool %s/%s extended to %s.", vg->info.name,
		     pool->name, a);
	return 0;
}
