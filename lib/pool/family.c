/* SPDX-License-Identifier: MIT */
/* Families of a shared VG's thin pool: the journal edits that create a
 * family, hand it slabs from its pool and give them back when it goes. */
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
#include "lib/pool/family.h"

/* ---- families (shared VGs) ---- */

/* Extents per slab of a new pool of `extents` extents in a shared VG:
 * 256 MiB, less for a small pool so that it has 16 slabs, at least one
 * chunk, a whole number of chunks. */
uint32_t slab_extents_for(uint64_t extents, uint64_t es, uint32_t chunk)
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
uint64_t family_meta_bytes(uint64_t vchunks, uint64_t pool_chunks)
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
			return dlvm_err_set(err, -EINVAL,
					    "%s: a striped pool cannot hand out slabs", lv->name);
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
	if (dlvm_segs_cut(lv, keep, head, nhead)) {
		dlvm_segs_free(t, k);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	*tail = t;
	*ntail = k;
	return 0;
}

/* Edits moving one slab from the end of pool to the end of family data LV
 * `data` (NULL: a new data LV of id data_id for family meta_id). */
int slab_move_edits(struct dlvm_vg *vg, const struct dlvm_lv *pool, const struct dlvm_lv *data,
		    uint64_t data_id, uint64_t meta_id, struct dlvm_txn *t, struct dlvm_err *err)
{
	uint64_t slab = pool->thin.slab_extents;
	struct dlvm_seg_desc **head = NULL, **tail = NULL;
	uint32_t nhead = 0, ntail = 0;
	int r;

	if (pool->le_count < slab) {
		char a[32];
		dlvm_format_size(dlvm_lv_bytes(vg, pool), 'h', a, sizeof(a));
		return dlvm_err_set(err, -ENOSPC,
				    "Thin pool %s/%s (%s) has no free slab left: "
				    "extend it (lvextend -L +SIZE %s/%s)",
				    vg->info.name, pool->name, a, vg->info.name, pool->name);
	}
	if ((r = segs_split_tail(pool, slab, data ? data->le_count : 0, &head, &nhead, &tail,
				 &ntail, err)))
		return r;
	struct dlvm_edit pe = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
	pe.u.lv.id = pool->id;
	pe.u.lv.segs = head;
	pe.u.lv.nseg = nhead;
	if ((r = dlvm_txn_push(t, &pe, err))) {
		dlvm_segs_free(tail, ntail);
		return r;
	}
	if (data) {
		struct dlvm_edit de = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
		de.u.lv.id = data->id;
		r = dlvm_segs_join(data->segs, data->nseg, tail, ntail, &de.u.lv.segs,
				   &de.u.lv.nseg);
		dlvm_segs_free(tail, ntail); /* the entries taken are NULL */
		if (r)
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		return dlvm_txn_push(t, &de, err);
	}
	const struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	struct dlvm_edit ce = { .type = DLVM_EDIT_LV_CREATE },
			 te = { .type = DLVM_EDIT_LV_SET_THIN };
	char dname[DLVM_NAME_MAX + 1];
	snprintf(dname, sizeof(dname), "%s_f%" PRIu64 "_tdata", pool->name, meta_id);
	(void)meta;
	dlvm_lv_create_edit(&ce, data_id, dname, DLVM_LV_HIDDEN | DLVM_LV_THIN_DATA);
	ce.u.lv.segs = tail;
	ce.u.lv.nseg = ntail;
	te.u.lv.id = data_id;
	te.u.lv.thin.pool_id = pool->id;
	te.u.lv.thin.meta_id = meta_id;
	if ((r = dlvm_txn_push(t, &ce, err)))
		return r;
	return dlvm_txn_push(t, &te, err);
}

/* Edits removing family meta_id and giving its slabs back to its pool. */
int family_remove_edits(struct dlvm_vg *vg, uint64_t meta_id, struct dlvm_txn *t,
			struct dlvm_err *err)
{
	const struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	const struct dlvm_lv *data = dlvm_thin_family_data(vg, meta_id);
	const struct dlvm_lv *pool = meta ? dlvm_lv_find_id(vg, meta->thin.pool_id) : NULL;
	int r;

	if (data) {
		struct dlvm_edit de = { .type = DLVM_EDIT_LV_REMOVE };
		de.u.lv.id = data->id;
		if ((r = dlvm_txn_push(t, &de, err)))
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
		r = dlvm_segs_join(pool->segs, pool->nseg, back, data->nseg, &pe.u.lv.segs,
				   &pe.u.lv.nseg);
		dlvm_segs_free(back, data->nseg);
		if (r)
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		if ((r = dlvm_txn_push(t, &pe, err)))
			return r;
	}
	if (meta) {
		struct dlvm_edit me = { .type = DLVM_EDIT_LV_REMOVE };
		me.u.lv.id = meta_id;
		return dlvm_txn_push(t, &me, err);
	}
	return 0;
}

/* Forget the open stores of family meta_id (its LVs are going). */
void family_forget(struct dlvm_vg *vg, uint64_t meta_id)
{
	for (int w = 0; w < 2; w++) {
		struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, w);
		if (p)
			dlvm_thin_store_drop(vg, p, NULL);
	}
}

/* A family store opened for a command and used by no map: closed again, so
 * that no host keeps a stale copy of a store another host may write next. */
void family_release(struct dlvm_vg *vg, struct dlvm_thin_pool *p)
{
	struct dlvm_err e = { 0 };
	char name[2 * DLVM_NAME_MAX + 2];
	if (!dlvm_thin_pool_is_family(p) || dlvm_thin_pool_in_use(p))
		return;
	/* the drop closes the store, and its name with it */
	snprintf(name, sizeof(name), "%s", dlvm_thin_pool_name(p));
	if (dlvm_thin_store_drop(vg, p, &e))
		log_error(DLVM_LOG_THIN, "%s: %s", name, e.msg);
}

/* The two edits that record thin LV id: LV_CREATE (a new uuid, now as its
 * creation time) and LV_SET_THIN. */
void thin_lv_edits(struct dlvm_edit *ce, struct dlvm_edit *te, uint64_t id, const char *lvname,
		   uint64_t flags, const struct dlvm_lv_thin *thin)
{
	*ce = (struct dlvm_edit){ 0 };
	*te = (struct dlvm_edit){ .type = DLVM_EDIT_LV_SET_THIN };
	dlvm_lv_create_edit(ce, id, lvname, flags);
	te->u.lv.id = id;
	te->u.lv.thin = *thin;
}

/* A new thin LV of a shared VG's pool: a family of its own (metadata LV with
 * a store holding the LV's device, a data LV of one slab), one transaction. */
int family_create(struct dlvm_vg *vg, struct dlvm_lv *plv, const char *lvname, uint64_t vsize,
		  uint64_t origin_id, struct dlvm_err *err)
{
	uint64_t es = vg->info.extent_size, cs = plv->thin.chunk_size;
	uint64_t meta_id = vg->info.next_lv_id, data_id = meta_id + 1, id = meta_id + 2;
	uint64_t pool_chunks = dlvm_lv_bytes(vg, plv) / cs;
	uint64_t mb = family_meta_bytes(vsize / cs, pool_chunks);
	uint64_t meta_ext = mb / es + (mb % es != 0);
	char mname[DLVM_NAME_MAX + 1];
	struct dlvm_seg_desc **msegs;
	uint32_t nm;
	int r;

	if (snprintf(mname, sizeof(mname), "%s_f%" PRIu64 "_tmeta", plv->name, meta_id) >=
	    (int)sizeof(mname) - 1)
		return dlvm_err_set(err, -EINVAL,
				    "lvcreate: pool name %s is too long for a shared "
				    "VG's families",
				    plv->name);
	if (plv->le_count < plv->thin.slab_extents)
		return slab_move_edits(vg, plv, NULL, 0, 0, NULL, err); /* the -ENOSPC message */
	if ((r = dlvm_alloc(vg, NULL, meta_ext, 1, 0, NULL, 0, &msegs, &nm, err)))
		return dlvm_err_prefix(err, r, "%s/%s: family metadata: ", vg->info.name, lvname);
	/* the store first, on extents the journal does not give to anyone
	 * yet: a crash before the commit leaves free space */
	struct dlvm_lv tmp = { .id = meta_id,
			       .flags = DLVM_LV_HIDDEN | DLVM_LV_THIN_META,
			       .le_count = meta_ext,
			       .nseg = nm,
			       .segs = msegs };
	snprintf(tmp.name, sizeof(tmp.name), "%s", mname);
	dlvm_uuid_generate(tmp.uuid);
	uint64_t slab_chunks = plv->thin.slab_extents * es / cs;
	if ((r = dlvm_thin_family_format(vg, &tmp, (uint32_t)cs, slab_chunks, id, err))) {
		dlvm_segs_free(msegs, nm);
		return r;
	}
	struct dlvm_txn t;
	dlvm_txn_init(&t);
	struct dlvm_edit me = { .type = DLVM_EDIT_LV_CREATE },
			 mt = { .type = DLVM_EDIT_LV_SET_THIN };
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
	struct dlvm_lv_thin th = { .pool_id = plv->id,
				   .virtual_size = vsize,
				   .meta_id = meta_id,
				   .origin_id = origin_id };
	thin_lv_edits(&ce, &te, id, lvname, DLVM_LV_THIN, &th);
	if (!(r = dlvm_txn_push(&t, &me, err)) && !(r = dlvm_txn_push(&t, &mt, err)) &&
	    !(r = slab_move_edits(vg, plv, NULL, data_id, meta_id, &t, err)) &&
	    !(r = dlvm_txn_push(&t, &ce, err)) && !(r = dlvm_txn_push(&t, &te, err)))
		r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	return r;
}
