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

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/pool/family.h"
#include "lib/agent/agent.h"
#include "lib/lvops/lvops.h"

static int parse_chunk(json_t *opts, uint32_t *out, struct dlvm_err *err)
{
	const char *c = opt_str(opts, "chunksize");
	uint64_t v = DEFAULT_CHUNK;
	int r;

	if (c && (r = dlvm_parse_size(c, 1 << 10, &v, NULL, err)))
		return dlvm_err_prefix(err, r, "--chunksize: ");
	if (v < 4096 || v > (1u << 20) || (v & (v - 1)))
		return dlvm_err_set(err, -EINVAL,
				    "--chunksize %s: must be a power of two from 4k to "
				    "1m",
				    c ? c : "");
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

/* The messages of a created thin pool: what it can hold and what (slabs of a
 * shared VG, or its metadata size) in brackets. */
static void pool_created(json_t *resp, const char *name, uint32_t chunk, uint64_t data_bytes,
			 const char *what)
{
	char sz[32];

	dlvm_format_size(data_bytes, 'h', sz, sizeof(sz));
	resp_message(resp,
		     "Thin pool volume with chunk size %u KiB can provide up to %s of data (%s).",
		     chunk >> 10, sz, what);
	resp_message(resp, "Logical volume \"%s\" created.", name);
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
		return dlvm_err_set(err, -ENOSPC,
				    "Volume group \"%s\" has insufficient free space "
				    "(%" PRIu64 " extents): %" PRIu64 " required.",
				    vg->info.name, dlvm_vg_free_extents(vg), extents);
	if ((r = pv_filter(ctx, vg, args, 1, &pvs, &npvs, err)))
		return r;
	struct dlvm_txn t;
	struct dlvm_edit pe = { .type = DLVM_EDIT_LV_CREATE },
			 te = { .type = DLVM_EDIT_LV_SET_THIN };
	dlvm_txn_init(&t);
	if (!(r = dlvm_alloc(vg, NULL, extents, 1, 0, pvs, npvs, &pe.u.lv.segs, &pe.u.lv.nseg,
			     err))) {
		dlvm_lv_create_edit(&pe, vg->info.next_lv_id, name, DLVM_LV_THIN_POOL);
		te.u.lv.id = pe.u.lv.id;
		te.u.lv.thin.chunk_size = chunk;
		te.u.lv.thin.slab_extents = slab;
		if (!(r = dlvm_txn_push(&t, &pe, err)) && !(r = dlvm_txn_push(&t, &te, err)))
			r = dlvm_txn_commit(vg, &t, err);
	}
	dlvm_txn_release(&t);
	free(pvs);
	if (r)
		return r;
	char ss[32], what[128];
	dlvm_format_size(slab * es, 'h', ss, sizeof(ss));
	snprintf(what, sizeof(what),
		 "slabs of %s: each thin volume's family takes them as it grows", ss);
	pool_created(resp, name, chunk, extents * es, what);
	return 0;
}

/* The metadata LV of a new local pool: its name (NAME_tmeta, free) and its
 * extents (--poolmetadatasize, else sized for the pool's chunks), which must
 * fit beside the pool's own `extents` in the VG's free space. */
static int pool_meta_extents(const struct dlvm_vg *vg, const char *name, const char *ms,
			     uint64_t extents, uint32_t chunk, char meta_name[DLVM_NAME_MAX + 1],
			     uint64_t *meta_ext_out, struct dlvm_err *err)
{
	uint64_t es = vg->info.extent_size, meta_bytes;
	int r;

	if (ms) {
		if ((r = dlvm_parse_size(ms, 1 << 20, &meta_bytes, NULL, err)))
			return dlvm_err_prefix(err, r, "--poolmetadatasize: ");
		if (meta_bytes < META_MIN)
			return dlvm_err_set(err, -EINVAL, "--poolmetadatasize %s: at least 4m", ms);
	} else {
		meta_bytes = default_meta_bytes(extents * es / chunk);
	}
	uint64_t meta_ext = meta_bytes / es + (meta_bytes % es != 0);
	if (snprintf(meta_name, DLVM_NAME_MAX + 1, "%s_tmeta", name) >= DLVM_NAME_MAX + 1)
		return dlvm_err_set(err, -EINVAL, "lvcreate: pool name %s is too long", name);
	if (dlvm_lv_find(vg, meta_name))
		return dlvm_err_set(err, -EEXIST,
				    "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"",
				    meta_name, vg->info.name);
	if (meta_ext + extents > dlvm_vg_free_extents(vg))
		return dlvm_err_set(err, -ENOSPC,
				    "Volume group \"%s\" has insufficient free space "
				    "(%" PRIu64 " extents): %" PRIu64 " required (%" PRIu64
				    " data, %" PRIu64 " metadata).",
				    vg->info.name, dlvm_vg_free_extents(vg), meta_ext + extents,
				    extents, meta_ext);
	*meta_ext_out = meta_ext;
	return 0;
}

int thin_pool_create(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const char *name, json_t *opts,
		     json_t *args, json_t *resp, struct dlvm_err *err)
{
	uint64_t es = vg->info.extent_size, extents;
	char meta_name[DLVM_NAME_MAX + 1];
	uint32_t chunk = 0, *pvs = NULL;
	size_t npvs;
	int r;

	bool shared = vg->info.flags & DLVM_VG_SHARED;

	if (!name)
		return dlvm_err_set(err, -EINVAL,
				    "lvcreate --type thin-pool: give the pool a name "
				    "with -n");
	/* -T without -V is LVM's short form of --type thin-pool */
	if (opt_str(opts, "stripes") || opt_str(opts, "virtualsize"))
		return dlvm_err_set(err, -EINVAL,
				    "lvcreate --type thin-pool: -i and -V do not "
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
		return dlvm_err_set(err, -EINVAL,
				    "--zero y: a shared VG's pool keeps which "
				    "sub-blocks of its chunks were written; it does not zero them");
	const char *ms = opt_str(opts, "poolmetadatasize");
	if (shared && ms)
		return dlvm_err_set(err, -EINVAL,
				    "--poolmetadatasize: in a shared VG each thin "
				    "volume's family has its own metadata, sized from the volume");
	if (shared)
		return shared_pool_create(ctx, vg, name, chunk, extents, args, resp, err);
	uint64_t meta_ext = 0;
	if ((r = pool_meta_extents(vg, name, ms, extents, chunk, meta_name, &meta_ext, err)))
		return r;
	if ((r = pv_filter(ctx, vg, args, 1, &pvs, &npvs, err)))
		return r;

	/* 1: the metadata LV, hidden */
	struct dlvm_edit me = { .type = DLVM_EDIT_LV_CREATE };
	if ((r = dlvm_alloc(vg, NULL, meta_ext, 1, 0, pvs, npvs, &me.u.lv.segs, &me.u.lv.nseg,
			    err)))
		goto out;
	uint64_t meta_id = vg->info.next_lv_id;
	dlvm_lv_create_edit(&me, meta_id, meta_name, DLVM_LV_HIDDEN | DLVM_LV_THIN_META);
	if ((r = dlvm_txn_commit_edit(vg, &me, err)))
		goto out;

	/* 2: the pool LV with its attributes, one transaction */
	struct dlvm_txn t;
	struct dlvm_edit pe = { .type = DLVM_EDIT_LV_CREATE },
			 te = { .type = DLVM_EDIT_LV_SET_THIN };
	dlvm_txn_init(&t);
	if ((r = dlvm_alloc(vg, NULL, extents, 1, 0, pvs, npvs, &pe.u.lv.segs, &pe.u.lv.nseg, err)))
		goto undo_meta;
	dlvm_lv_create_edit(&pe, vg->info.next_lv_id, name, DLVM_LV_THIN_POOL);
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
	char msz[32], what[48];
	dlvm_format_size(meta_ext * es, 'h', msz, sizeof(msz));
	snprintf(what, sizeof(what), "metadata %s", msz);
	pool_created(resp, name, chunk, extents * es, what);
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
			resp_warning(resp, "%s: device %" PRIu64 " left in the pool: %s",
				     dlvm_thin_pool_name(pool), id, e2.msg);
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
		return dlvm_err_set(err, -EINVAL,
				    "lvcreate -V: name the pool (-T VG/POOL or "
				    "--thinpool POOL)");
	if (opt_str(opts, "size") || opt_str(opts, "extents") || opt_str(opts, "stripes"))
		return dlvm_err_set(err, -EINVAL,
				    "lvcreate -V: -L, -l and -i do not apply to a thin "
				    "volume");
	if ((r = parse_activate("lvcreate", a, &on, &mode, err)))
		return r;
	if ((r = dlvm_parse_size(V, 1 << 20, &vsize, NULL, err)))
		return dlvm_err_prefix(err, r, "-V: ");
	if (!vsize)
		return dlvm_err_set(err, -EINVAL, "lvcreate: -V must be larger than zero");
	/* checked before the rounding, which could wrap past 2^64 */
	if (vsize > DLVM_THIN_MAX_VSIZE ||
	    (vsize % es && vsize + (es - vsize % es) > DLVM_THIN_MAX_VSIZE))
		return dlvm_err_set(err, -ERANGE, "-V %s: too large (a thin LV is at most 1 EiB)",
				    V);
	if (vsize % es) /* whole extents, as LVM rounds */
		vsize += es - vsize % es;
	if ((r = find_pool(vg, pn, &plv, err)))
		return r;
	if (name && dlvm_lv_find(vg, name))
		return dlvm_err_set(err, -EEXIST,
				    "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"",
				    name, vg->info.name);
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
	uint64_t total = 0, pool_bytes = dlvm_lv_bytes(vg, plv);
	for (size_t i = 0; i < vg->nlv; i++)
		if ((vg->lvs[i]->flags & DLVM_LV_THIN) && vg->lvs[i]->thin.pool_id == plv->id)
			total += vg->lvs[i]->thin.virtual_size;
	if (total > pool_bytes) {
		char a1[32], a2[32];
		dlvm_format_size(total, 'h', a1, sizeof(a1));
		dlvm_format_size(pool_bytes, 'h', a2, sizeof(a2));
		resp_warning(resp,
			     "Sum of all thin volume sizes (%s) exceeds the size of thin pool "
			     "%s/%s (%s).",
			     a1, vg->info.name, plv->name, a2);
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

void clones_of(const struct dlvm_vg *vg, const struct dlvm_lv *lv, char *out, size_t len);

/*
 * The hidden snapshot that a shared VG's clones of a live volume read
 * through (lvcreate --clone): once no clone reads through it any more it
 * goes, here if its family can be written here; else it stays, shown by
 * lvs -a, and a warning says how to remove it.
 */
void drop_clone_source(struct dlvm_ctx *ctx, struct dlvm_vg *vg, uint64_t id, json_t *resp)
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
		resp_warning(resp,
			     "%s/%s: the snapshot the clone read through stays: %s (lvremove "
			     "%s/%s where its family is written removes it)",
			     vg->info.name, name, e.msg, vg->info.name, name);
}

int thin_remove(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *resp,
		struct dlvm_err *err)
{
	int r = 0;

	if (lv->flags & DLVM_LV_THIN_POOL) {
		for (size_t i = 0; i < vg->nlv; i++)
			if ((vg->lvs[i]->flags & DLVM_LV_THIN) &&
			    vg->lvs[i]->thin.pool_id == lv->id)
				return dlvm_err_set(err, -EBUSY,
						    "%s/%s: thin pool still holds thin "
						    "volume %s (remove it first)",
						    vg->info.name, lv->name, vg->lvs[i]->name);
		/* the open stores go first: they live in the LVs */
		dlvm_thin_pools_forget(vg, lv->id);
		struct dlvm_txn t;
		struct dlvm_edit e1 = { .type = DLVM_EDIT_LV_REMOVE },
				 e2 = { .type = DLVM_EDIT_LV_REMOVE };
		e1.u.lv.id = lv->id;
		e2.u.lv.id = lv->thin.meta_id;
		dlvm_txn_init(&t);
		/* families without volumes (a create cut short) go with it:
		 * their data LVs first, then the pool, then their metadata */
		for (size_t i = 0; i < vg->nlv && !r; i++) {
			struct dlvm_edit de = { .type = DLVM_EDIT_LV_REMOVE };
			de.u.lv.id = vg->lvs[i]->id;
			if ((vg->lvs[i]->flags & DLVM_LV_THIN_DATA) &&
			    vg->lvs[i]->thin.pool_id == lv->id)
				r = dlvm_txn_push(&t, &de, err);
		}
		if (!r)
			r = dlvm_txn_push(&t, &e1, err);
		for (size_t i = 0; i < vg->nlv && !r; i++) {
			struct dlvm_edit me = { .type = DLVM_EDIT_LV_REMOVE };
			me.u.lv.id = vg->lvs[i]->id;
			if ((vg->lvs[i]->flags & DLVM_LV_THIN_META) &&
			    vg->lvs[i]->thin.pool_id == lv->id)
				r = dlvm_txn_push(&t, &me, err);
		}
		if (!r && lv->thin.meta_id && dlvm_lv_find_id(vg, lv->thin.meta_id))
			r = dlvm_txn_push(&t, &e2, err);
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
		if (!(r = dlvm_txn_push(&t, &e, err)) &&
		    !(r = family_remove_edits(vg, meta_id, &t, err)))
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
		resp_warning(resp,
			     "%s: thin device %" PRIu64 " was not freed in its pool: %s (dlvm "
			     "check --repair frees it)",
			     vg->info.name, id, e2.msg);
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
		return dlvm_err_set(err, -EINVAL,
				    "Reducing %s/%s would cut the data past the new "
				    "end: use -f to do it",
				    vg->info.name, lv->name);
	if (want == cur)
		return dlvm_err_set(err, -EINVAL,
				    "New size (%" PRIu64 " extents) matches existing "
				    "size (%" PRIu64 " extents).",
				    target, cur / es);
	/* a reduce unmaps in the store before the journal: refuse first */
	if ((r = dlvm_vg_writable(vg, err)))
		return r;
	if (want < cur && lv->thin.meta_id) {
		const struct dlvm_lv *m = dlvm_lv_find_id(vg, lv->thin.meta_id);
		if (m && m->thin.origin_id)
			return dlvm_err_set(err, -EINVAL,
					    "%s/%s: a clone reads what it never wrote "
					    "from its origin: flatten it before reducing it "
					    "(lvconvert --flatten)",
					    vg->info.name, lv->name);
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
		if ((r = dlvm_thin_pool_unmap_from(pool, lv->id, want, err)) ||
		    (r = dlvm_thin_pool_commit(pool, err)))
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
	const struct dlvm_lv *plv = (lv->flags & DLVM_LV_THIN_POOL)
						    ? lv
						    : dlvm_lv_find_id(vg, lv->thin.pool_id);

	(void)ctx;
	json_object_set_new(row, "pool_lv",
			    json_string((lv->flags & DLVM_LV_THIN) && plv ? plv->name : ""));
	const struct dlvm_lv *o = lv->thin.origin_id ? dlvm_lv_find_id(vg, lv->thin.origin_id)
						     : NULL;
	json_object_set_new(row, "origin", json_string(o ? o->name : ""));
	if (plv && plv->thin.slab_extents && (lv->flags & DLVM_LV_THIN_POOL)) {
		/* a shared VG's pool: the slabs its families hold */
		uint64_t all = dlvm_lv_bytes(vg, lv) / vg->info.extent_size;
		percent(row, "data_percent", all - lv->le_count, all);
		json_object_set_new(row, "metadata_percent", json_string(""));
		json_object_set_new(row, "chunk_size",
				    json_integer((json_int_t)lv->thin.chunk_size));
		return;
	}
	/* a shared VG's thin LV is read through a view unless this host
	 * writes its family */
	if (!plv ||
	    ((lv->flags & DLVM_LV_THIN_POOL) ? dlvm_thin_pool_get(vg, plv, &pool, NULL)
					     : dlvm_thin_lv_store(vg, lv, false, &pool, NULL))) {
		json_object_set_new(row, "data_percent", json_string(""));
		json_object_set_new(row, "metadata_percent", json_string(""));
		return;
	}
	struct dlvm_thin_pool_fill f;
	uint64_t cs = dlvm_thin_pool_chunk_size(pool);
	dlvm_thin_pool_fill(pool, &f);
	if (lv->flags & DLVM_LV_THIN_POOL) {
		percent(row, "data_percent", f.data_used, f.data_total);
		percent(row, "metadata_percent", f.meta_used, f.meta_total);
		json_object_set_new(row, "chunk_size", json_integer((json_int_t)cs));
	} else {
		uint64_t vchunks = lv->thin.virtual_size / cs;
		percent(row, "data_percent", dlvm_thin_pool_dev_mapped(pool, lv->id), vchunks);
		json_object_set_new(row, "metadata_percent", json_string(""));
		json_object_set_new(row, "chunk_size", json_integer((json_int_t)cs));
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
		return dlvm_err_set(err, -EINVAL,
				    "--poolmetadatasize: in a shared VG each thin "
				    "volume's family has its own metadata");
	if (!m)
		return dlvm_err_set(err, -EBADMSG, "%s/%s: its metadata LV is missing",
				    vg->info.name, pool->name);
	if ((r = dlvm_parse_size(ms, 1 << 20, &bytes, &sign, err)))
		return dlvm_err_prefix(err, r, "--poolmetadatasize: ");
	uint64_t cur = m->le_count, want = bytes / es + (bytes % es != 0);
	if (sign == '+')
		want += cur;
	if (sign == '-' || want < cur)
		return dlvm_err_set(err, -EINVAL,
				    "--poolmetadatasize: pool metadata can only grow");
	if (want == cur)
		return dlvm_err_set(err, -EINVAL,
				    "--poolmetadatasize: the metadata LV has that size "
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
		return dlvm_err_prefix(err, r,
				       "%s/%s: metadata LV extended, but the pool does not "
				       "use it yet: ",
				       vg->info.name, pool->name);
	char a[32];
	dlvm_format_size(want * es, 'h', a, sizeof(a));
	resp_message(resp, "Metadata of thin pool %s/%s extended to %s.", vg->info.name, pool->name,
		     a);
	return 0;
}

/* ---- snapshots and clones ---- */

int thin_source(struct dlvm_ctx *ctx, const char *path, const char *what, struct dlvm_vg **vg,
		struct dlvm_lv **lv, struct dlvm_err *err)
{
	int r;

	if ((r = find_lv(ctx, path, vg, lv, err)))
		return r;
	if (!((*lv)->flags & DLVM_LV_THIN))
		return dlvm_err_set(err, -EINVAL,
				    "%s/%s is not a thin volume: %s needs one (create "
				    "a thin volume with lvcreate -V SIZE -T VG/POOL and copy the "
				    "data "
				    "into it)",
				    (*vg)->info.name, (*lv)->name, what);
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
			   DLVM_LV_THIN | (clone ? 0 : DLVM_LV_READONLY) | hidden_flags, &thin,
			   resp, err);
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
		resp_message(resp,
			     "%s/%s is active: the clone holds the writes completed before "
			     "this command",
			     vg->info.name, src->name);
	if ((r = parse_activate("lvcreate", a, &on, &mode, err)))
		return r;
	if (!a) /* snapshots are not activated unless asked, as in LVM */
		on = clone;
	if (name && (r = dlvm_check_name(name, "LV", err)))
		return r;
	if (name && dlvm_lv_find(vg, name))
		return dlvm_err_set(err, -EEXIST,
				    "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"",
				    name, vg->info.name);
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
				return dlvm_err_set(err, -EINVAL,
						    "lvcreate: clone name %s is too "
						    "long for the snapshot it reads through",
						    lvname);
			if (dlvm_lv_find(vg, hname))
				return dlvm_err_set(err, -EEXIST,
						    "%s/%s: the name of the snapshot "
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
void clones_of(const struct dlvm_vg *vg, const struct dlvm_lv *lv, char *out, size_t len)
{
	size_t used = 0;

	*out = 0;
	for (size_t i = 0; i < vg->nlv && used < len; i++) {
		const struct dlvm_lv *c = vg->lvs[i];
		/* a clone, or any volume of a clone's family that reads through
		 * to lv (a shared VG: the clone's snapshots too) */
		const struct dlvm_lv *m = (c->flags & DLVM_LV_THIN) && c->thin.meta_id
							  ? dlvm_lv_find_id(vg, c->thin.meta_id)
							  : NULL;
		if (((c->flags & DLVM_LV_THIN) && c->thin.origin_id == lv->id &&
		     !(c->flags & DLVM_LV_READONLY)) ||
		    (m && m->thin.origin_id == lv->id))
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
	return dlvm_err_set(err, -EBUSY,
			    "%s/%s: snapshot has clones: %s (flatten them first: "
			    "lvconvert --flatten)",
			    vg->info.name, lv->name, list);
}
