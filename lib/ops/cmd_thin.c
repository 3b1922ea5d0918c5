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
	return lv->le_count * vg->info.extent_size;
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

int thin_pool_create(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const char *name, json_t *opts,
		     json_t *args, json_t *resp, struct dlvm_err *err)
{
	uint64_t es = vg->info.extent_size, extents, meta_bytes;
	char meta_name[DLVM_NAME_MAX + 1];
	uint32_t chunk = 0, *pvs = NULL;
	size_t npvs;
	int r;

	(void)ctx;
	if (vg->info.flags & DLVM_VG_SHARED)
		return dlvm_err_set(err, -ENOTSUP, "%s: thin pools in shared VGs are not supported "
				    "yet", vg->info.name);
	if (!name)
		return dlvm_err_set(err, -EINVAL, "lvcreate --type thin-pool: give the pool a name "
				    "with -n");
	if (opt_str(opts, "stripes") || opt_str(opts, "virtualsize") || opt_flag(opts, "thin"))
		return dlvm_err_set(err, -EINVAL, "lvcreate --type thin-pool: -i, -V and -T do not "
				    "apply to a pool");
	if ((r = parse_chunk(opts, &chunk, err)) ||
	    (r = target_extents(vg, opts, 0, false, 1, &extents, err)))
		return r;
	if (extents * es < chunk)
		return dlvm_err_set(err, -EINVAL, "lvcreate: a pool must hold at least one chunk");
	const char *ms = opt_str(opts, "poolmetadatasize");
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
	if ((r = dlvm_thin_pool_format(vg, pool, err)))
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

	if (vg->info.flags & DLVM_VG_SHARED)
		return dlvm_err_set(err, -ENOTSUP, "%s: thin volumes in shared VGs are not supported "
				    "yet", vg->info.name);
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
	if (vsize > (1ull << 60))
		return dlvm_err_set(err, -ERANGE, "-V %s: too large", V);
	if ((r = find_pool(vg, pn, &plv, err)))
		return r;
	if (name && dlvm_lv_find(vg, name))
		return dlvm_err_set(err, -EEXIST, "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"", name, vg->info.name);
	if (vg->info.max_lv && vg->nlv >= vg->info.max_lv)
		return dlvm_err_set(err, -ENOSPC, "%s: maximum of %u LVs reached", vg->info.name,
				    vg->info.max_lv);
	if ((r = dlvm_thin_pool_get(vg, plv, &pool, err)))
		return r;
	if (name)
		snprintf(lvname, sizeof(lvname), "%s", name);
	else
		next_free_name(vg, lvname, sizeof(lvname));
	uint64_t id = vg->info.next_lv_id;
	/* the store's device first: a crash before the journal leaves an
	 * unused device, never an LV without one */
	if ((r = dlvm_thin_pool_create_dev(pool, id, err)))
		return dlvm_err_prefix(err, r, "%s/%s: ", vg->info.name, lvname);
	struct dlvm_txn t;
	struct dlvm_edit ce = { .type = DLVM_EDIT_LV_CREATE }, te = { .type = DLVM_EDIT_LV_SET_THIN };
	ce.u.lv.id = id;
	dlvm_uuid_generate(ce.u.lv.uuid);
	snprintf(ce.u.lv.name, sizeof(ce.u.lv.name), "%s", lvname);
	ce.u.lv.flags = DLVM_LV_THIN;
	ce.u.lv.ctime = (uint64_t)time(NULL);
	te.u.lv.id = id;
	te.u.lv.thin.pool_id = plv->id;
	te.u.lv.thin.virtual_size = vsize;
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
		return r;
	}
	/* over-provisioning is allowed, and said */
	uint64_t total = 0, pool_bytes = plv->le_count * es;
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
		if (activate(ctx, vg, lv, NULL, &ae))
			resp_warning(resp, "%s/%s: created but not activated: %s", vg->info.name,
				     lvname, ae.msg);
	}
	resp_message(resp, "Logical volume \"%s\" created.", lvname);
	return 0;
}

int thin_remove(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *resp,
		struct dlvm_err *err)
{
	int r;

	(void)ctx;
	if (lv->flags & DLVM_LV_THIN_POOL) {
		for (size_t i = 0; i < vg->nlv; i++)
			if ((vg->lvs[i]->flags & DLVM_LV_THIN) && vg->lvs[i]->thin.pool_id == lv->id)
				return dlvm_err_set(err, -EBUSY, "%s/%s: thin pool still holds thin "
						    "volume %s (remove it first)", vg->info.name,
						    lv->name, vg->lvs[i]->name);
		/* the open pool goes first: its store lives in the LVs */
		struct dlvm_thin_pool **pp = &vg->thin_pools;
		while (*pp && (*pp)->lv_id != lv->id)
			pp = &(*pp)->next;
		if (*pp) {
			struct dlvm_thin_pool *p = *pp;
			*pp = p->next;
			dlvm_thin_pool_unref(p);
		}
		struct dlvm_txn t;
		struct dlvm_edit e1 = { .type = DLVM_EDIT_LV_REMOVE }, e2 = { .type = DLVM_EDIT_LV_REMOVE };
		e1.u.lv.id = lv->id;
		e2.u.lv.id = lv->thin.meta_id;
		dlvm_txn_init(&t);
		if ((r = dlvm_txn_add(&t, &e1)) ||
		    (dlvm_lv_find_id(vg, lv->thin.meta_id) && (r = dlvm_txn_add(&t, &e2))))
			r = dlvm_err_set(err, r, "out of memory");
		else
			r = dlvm_txn_commit(vg, &t, err);
		dlvm_txn_release(&t);
		return r;
	}
	/* a thin LV: the journal first, then the store's device */
	uint64_t id = lv->id, pool_id = lv->thin.pool_id;
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_REMOVE };
	e.u.lv.id = id;
	if ((r = dlvm_txn_commit_edit(vg, &e, err)))
		return r;
	struct dlvm_lv *plv = dlvm_lv_find_id(vg, pool_id);
	struct dlvm_thin_pool *pool;
	struct dlvm_err e2 = { 0 };
	if (!plv || dlvm_thin_pool_get(vg, plv, &pool, &e2) ||
	    dlvm_thin_pool_delete_dev(pool, id, &e2))
		resp_warning(resp, "%s: thin device %" PRIu64 " was not freed in its pool: %s (dlvm "
			     "check --repair frees it)", vg->info.name, id, e2.msg);
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
	if (want < cur && !opt_flag(opts, "force"))
		return dlvm_err_set(err, -EINVAL, "Reducing %s/%s would cut the data past the new "
				    "end: use -f to do it", vg->info.name, lv->name);
	if (want == cur)
		return dlvm_err_set(err, -EINVAL, "New size (%" PRIu64 " extents) matches existing "
				    "size (%" PRIu64 " extents).", target, cur / es);
	if (want < cur && is_active(ctx, vg, lv))
		return dlvm_err_set(err, -EBUSY, "%s/%s: deactivate it before reducing it",
				    vg->info.name, lv->name);
	if (want < cur) {
		/* the chunks past the new end are unmapped first */
		struct dlvm_lv *plv = dlvm_lv_find_id(vg, lv->thin.pool_id);
		struct dlvm_thin_pool *pool;
		if (!plv)
			return dlvm_err_set(err, -EBADMSG, "%s/%s: its pool is missing",
					    vg->info.name, lv->name);
		if ((r = dlvm_thin_pool_get(vg, plv, &pool, err)))
			return r;
		pthread_mutex_lock(&pool->mu);
		uint64_t cs = pool->chunk_size, first = (want + cs - 1) / cs, un;
		r = dlvm_thin_unmap(pool->store, lv->id, first, DLVM_THIN_MAX_ID - first, &un, err);
		pthread_mutex_unlock(&pool->mu);
		if (r || (r = dlvm_thin_pool_commit(pool, err)))
			return r;
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
	if (!plv || dlvm_thin_pool_get(vg, plv, &pool, NULL)) {
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

int thin_check_vg(struct dlvm_vg *vg, struct dlvm_check_report *rep, struct dlvm_err *err)
{
	for (size_t i = 0; i < vg->nlv; i++) {
		struct dlvm_lv *plv = vg->lvs[i];
		struct dlvm_thin_pool *pool;
		struct dlvm_err e = { 0 };
		if (!(plv->flags & DLVM_LV_THIN_POOL))
			continue;
		size_t before = rep->nlines;
		if (dlvm_thin_pool_get(vg, plv, &pool, &e)) {
			char **l = realloc(rep->lines, (rep->nlines + 1) * sizeof(*l));
			if (!l)
				return dlvm_err_set(err, -ENOMEM, "out of memory");
			rep->lines = l;
			if (asprintf(&l[rep->nlines], "%s/%s: %s", vg->info.name, plv->name, e.msg) < 0)
				return dlvm_err_set(err, -ENOMEM, "out of memory");
			rep->nlines++;
			rep->problems++;
			continue;
		}
		int r = dlvm_thin_pool_check(pool, rep, err);
		if (r)
			return r;
		(void)before;
		/* every store device belongs to a thin LV of this pool and back */
		uint64_t id = 0, next;
		pthread_mutex_lock(&pool->mu);
		while (!dlvm_thin_next_dev(pool->store, id, &next, NULL) && next != DLVM_THIN_NONE) {
			const struct dlvm_lv *t = dlvm_lv_find_id(vg, next);
			if (!t || !(t->flags & DLVM_LV_THIN) || t->thin.pool_id != plv->id) {
				char **l = realloc(rep->lines, (rep->nlines + 1) * sizeof(*l));
				if (l) {
					rep->lines = l;
					if (asprintf(&l[rep->nlines], "%s/%s: thin device %" PRIu64
						     " has no thin LV", vg->info.name, plv->name,
						     next) >= 0)
						rep->nlines++;
				}
				rep->problems++;
			}
			id = next + 1;
		}
		for (size_t k = 0; k < vg->nlv; k++) {
			const struct dlvm_lv *t = vg->lvs[k];
			struct dlvm_thin_dev_info info;
			if (!(t->flags & DLVM_LV_THIN) || t->thin.pool_id != plv->id ||
			    !dlvm_thin_info(pool->store, t->id, &info, NULL))
				continue;
			char **l = realloc(rep->lines, (rep->nlines + 1) * sizeof(*l));
			if (l) {
				rep->lines = l;
				if (asprintf(&l[rep->nlines], "%s/%s: no device in pool %s", vg->info.name,
					     t->name, plv->name) >= 0)
					rep->nlines++;
			}
			rep->problems++;
		}
		pthread_mutex_unlock(&pool->mu);
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

int thin_snapshot_create(struct dlvm_ctx *ctx, const char *source, const char *name, bool clone,
			 json_t *opts, json_t *resp, struct dlvm_err *err)
{
	const char *what = clone ? "a clone" : "a snapshot", *a = opt_str(opts, "activate");
	struct dlvm_vg *vg;
	struct dlvm_lv *src, *plv;
	struct dlvm_thin_pool *pool;
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
	if ((r = dlvm_thin_pool_get(vg, plv, &pool, err)))
		return r;
	if (name)
		snprintf(lvname, sizeof(lvname), "%s", name);
	else
		next_free_name(vg, lvname, sizeof(lvname));
	uint64_t id = vg->info.next_lv_id;
	if ((r = dlvm_thin_pool_snapshot(pool, src->id, id, clone ? 0 : DLVM_THIN_DEV_READONLY,
					 err)))
		return dlvm_err_prefix(err, r, "%s/%s: ", vg->info.name, lvname);
	struct dlvm_txn t;
	struct dlvm_edit ce = { .type = DLVM_EDIT_LV_CREATE }, te = { .type = DLVM_EDIT_LV_SET_THIN };
	ce.u.lv.id = id;
	dlvm_uuid_generate(ce.u.lv.uuid);
	snprintf(ce.u.lv.name, sizeof(ce.u.lv.name), "%s", lvname);
	ce.u.lv.flags = DLVM_LV_THIN | (clone ? 0 : DLVM_LV_READONLY);
	ce.u.lv.ctime = (uint64_t)time(NULL);
	te.u.lv.id = id;
	te.u.lv.thin = src->thin;
	te.u.lv.thin.origin_id = src->id;
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
		return r;
	}
	if (on) {
		struct dlvm_err ae = { 0 };
		if (activate(ctx, vg, dlvm_lv_find(vg, lvname), NULL, &ae))
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
		if ((c->flags & DLVM_LV_THIN) && c->thin.origin_id == lv->id &&
		    !(c->flags & DLVM_LV_READONLY))
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
	if ((r = thin_source(ctx, arg_str(args, 0), merge ? "--merge" : "--flatten", &vg, &lv,
			     err)))
		return r;
	const struct dlvm_lv *o = lv->thin.origin_id ? dlvm_lv_find_id(vg, lv->thin.origin_id)
						     : NULL;
	if (flatten) {
		if (!lv->thin.origin_id || (lv->flags & DLVM_LV_READONLY))
			return dlvm_err_set(err, -EINVAL, "%s/%s is not a clone", vg->info.name,
					    lv->name);
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
	if ((r = thin_refuse_remove(vg, lv, err)))
		return r;
	struct dlvm_lv *plv = dlvm_lv_find_id(vg, lv->thin.pool_id);
	struct dlvm_thin_pool *pool;
	if (!plv)
		return dlvm_err_set(err, -EBADMSG, "%s/%s: its pool is missing", vg->info.name,
				    lv->name);
	if ((r = dlvm_thin_pool_get(vg, plv, &pool, err)))
		return r;
	/* the origin takes the snapshot's contents in one store commit; then
	 * the snapshot goes (journal, then store), as lvremove does */
	if ((r = dlvm_thin_pool_revert(pool, origin->id, lv->id, err)))
		return r;
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

void dlvm_ctx_commit_pools(struct dlvm_ctx *ctx)
{
	for (size_t v = 0; v < ctx->nvg; v++)
		for (struct dlvm_thin_pool *p = ctx->vgs[v]->thin_pools; p; p = p->next) {
			struct dlvm_err e = { 0 };
			if (dlvm_thin_pool_commit_dirty(p, &e))
				fprintf(stderr, "dlvmd: %s: commit: %s\n", p->name, e.msg);
			pool_warn_usage(p);
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
