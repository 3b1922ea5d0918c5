/* SPDX-License-Identifier: MIT */
/* Applying edits to the VG model: the one place where the model changes,
 * used by journal replay and by commit alike. Every edit is checked against
 * the model first; a failed edit leaves the model as it was. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "meta.h"

/* ---- free extent ranges of a PV (sorted, non-adjacent) ---- */

/* Index of the last range with start <= pe, or -1. */
static ssize_t range_find(const struct dlvm_pv *pv, uint64_t pe)
{
	ssize_t lo = 0, hi = (ssize_t)pv->nfree - 1, ans = -1;

	while (lo <= hi) {
		ssize_t mid = lo + (hi - lo) / 2;
		if (pv->free[mid].start <= pe) {
			ans = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return ans;
}

static int range_insert_at(struct dlvm_pv *pv, size_t at, uint64_t start, uint64_t count)
{
	if (pv->nfree == pv->capfree) {
		size_t ncap = pv->capfree ? pv->capfree * 2 : 8;
		struct dlvm_free_range *p = realloc(pv->free, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		pv->free = p;
		pv->capfree = ncap;
	}
	memmove(&pv->free[at + 1], &pv->free[at], (pv->nfree - at) * sizeof(*pv->free));
	pv->free[at].start = start;
	pv->free[at].count = count;
	pv->nfree++;
	return 0;
}

static void range_delete_at(struct dlvm_pv *pv, size_t at)
{
	memmove(&pv->free[at], &pv->free[at + 1], (pv->nfree - at - 1) * sizeof(*pv->free));
	pv->nfree--;
}

int dlvm_pv_take(struct dlvm_pv *pv, uint64_t start, uint64_t count)
{
	uint64_t end;

	if (!count || dlvm_add_overflow(start, count, &end) || end > pv->d.pe_count)
		return -ERANGE;
	ssize_t i = range_find(pv, start);
	if (i < 0)
		return -EBADMSG;
	struct dlvm_free_range *f = &pv->free[i];
	if (f->start + f->count < end)
		return -EBADMSG; /* some of it is in use */
	uint64_t fend = f->start + f->count;
	if (f->start == start && fend == end) {
		range_delete_at(pv, (size_t)i);
	} else if (f->start == start) {
		f->start = end;
		f->count = fend - end;
	} else if (fend == end) {
		f->count = start - f->start;
	} else {
		f->count = start - f->start;
		if (range_insert_at(pv, (size_t)i + 1, end, fend - end)) {
			f->count = fend - f->start;
			return -ENOMEM;
		}
	}
	pv->pe_alloc += count;
	return 0;
}

int dlvm_pv_give(struct dlvm_pv *pv, uint64_t start, uint64_t count)
{
	uint64_t end;

	if (!count || dlvm_add_overflow(start, count, &end) || end > pv->d.pe_count)
		return -ERANGE;
	ssize_t i = range_find(pv, start);
	/* must not overlap the range before nor the one after */
	if (i >= 0 && pv->free[i].start + pv->free[i].count > start)
		return -EBADMSG;
	if ((size_t)(i + 1) < pv->nfree && pv->free[i + 1].start < end)
		return -EBADMSG;
	bool join_prev = i >= 0 && pv->free[i].start + pv->free[i].count == start;
	bool join_next = (size_t)(i + 1) < pv->nfree && pv->free[i + 1].start == end;
	if (join_prev && join_next) {
		pv->free[i].count += count + pv->free[i + 1].count;
		range_delete_at(pv, (size_t)i + 1);
	} else if (join_prev) {
		pv->free[i].count += count;
	} else if (join_next) {
		pv->free[i + 1].start = start;
		pv->free[i + 1].count += count;
	} else if (range_insert_at(pv, (size_t)(i + 1), start, count)) {
		return -ENOMEM;
	}
	pv->pe_alloc -= count;
	return 0;
}

/* ---- segments ---- */

static void segs_give(struct dlvm_vg *vg, struct dlvm_seg_desc *const *segs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct dlvm_seg_desc *s = segs[i];
		for (uint16_t k = 0; k < s->stripes; k++) {
			struct dlvm_pv *pv = dlvm_pv_find_id(vg, s->area[k].pv_id);
			if (pv)
				dlvm_pv_give(pv, s->area[k].pe_start, s->le_count / s->stripes);
		}
	}
}

/* Check the segments form the LV's extents 0..n and take their extents;
 * all or nothing. */
static int segs_take(struct dlvm_vg *vg, const char *lvname, struct dlvm_seg_desc *const *segs,
		     uint32_t n, uint64_t *le_count, struct dlvm_err *err)
{
	uint64_t le = 0;
	int r = 0;
	uint32_t i = 0;
	uint16_t k = 0;

	for (i = 0; i < n; i++) {
		const struct dlvm_seg_desc *s = segs[i];
		if (s->le_start != le) {
			r = dlvm_err_set(err, -EBADMSG,
					 "LV %s: segment %u starts at extent %" PRIu64
					 ", expected %" PRIu64,
					 lvname, i, s->le_start, le);
			goto undo;
		}
		if (s->stripes > 1 && s->stripe_size > vg->info.extent_size) {
			r = dlvm_err_set(err, -EBADMSG,
					 "LV %s: segment %u: stripe size %u exceeds "
					 "the extent size",
					 lvname, i, s->stripe_size);
			goto undo;
		}
		for (k = 0; k < s->stripes; k++) {
			struct dlvm_pv *pv = dlvm_pv_find_id(vg, s->area[k].pv_id);
			if (!pv) {
				r = dlvm_err_set(err, -EBADMSG,
						 "LV %s: segment %u: PV %u does not exist", lvname,
						 i, s->area[k].pv_id);
				goto undo;
			}
			for (uint16_t j = 0; j < k; j++)
				if (s->area[j].pv_id == s->area[k].pv_id) {
					r = dlvm_err_set(err, -EBADMSG,
							 "LV %s: segment %u: two stripes "
							 "on PV %u",
							 lvname, i, s->area[k].pv_id);
					goto undo;
				}
			int tr = dlvm_pv_take(pv, s->area[k].pe_start, s->le_count / s->stripes);
			if (tr) {
				r = dlvm_err_set(err, tr == -ENOMEM ? -ENOMEM : -EBADMSG,
						 "LV %s: segment %u: extents %" PRIu64 "+%" PRIu64
						 " of PV %u are %s",
						 lvname, i, s->area[k].pe_start,
						 s->le_count / s->stripes, pv->d.id,
						 tr == -ERANGE ? "outside the PV"
							       : "already in use");
				goto undo;
			}
		}
		if (dlvm_add_overflow(le, s->le_count, &le)) {
			r = dlvm_err_set(err, -EBADMSG, "LV %s: size overflows", lvname);
			k = 0;
			i++;
			goto undo;
		}
	}
	*le_count = le;
	return 0;
undo:
	/* give back what this call took: whole segments before i, k areas of i */
	segs_give(vg, segs, i);
	if (i < n) {
		const struct dlvm_seg_desc *s = segs[i];
		for (uint16_t j = 0; j < k && j < s->stripes; j++) {
			struct dlvm_pv *pv = dlvm_pv_find_id(vg, s->area[j].pv_id);
			if (pv)
				dlvm_pv_give(pv, s->area[j].pe_start, s->le_count / s->stripes);
		}
	}
	return r;
}

/* ---- edits ---- */

static int apply_vg_info(struct dlvm_vg *vg, const struct dlvm_vg_info *in, struct dlvm_err *err)
{
	int r;

	if ((r = dlvm_check_name(in->name, "VG", err)))
		return dlvm_err_prefix(err, -EBADMSG, "VG_INFO: ");
	if (!dlvm_is_pow2(in->extent_size) || in->extent_size < 4096)
		return dlvm_err_set(err, -EBADMSG,
				    "VG_INFO: extent size %" PRIu64 " is not a power "
				    "of two >= 4096",
				    in->extent_size);
	if (vg->info.extent_size && vg->info.extent_size != in->extent_size && vg->nlv)
		return dlvm_err_set(err, -EBADMSG, "VG_INFO: extent size changes while LVs exist");
	if (!dlvm_uuid_is_zero(vg->info.uuid) && memcmp(vg->info.uuid, in->uuid, 16))
		return dlvm_err_set(err, -EBADMSG, "VG_INFO: VG uuid changes");
	uint64_t next_lv = DLVM_MAX(vg->info.next_lv_id, in->next_lv_id);
	uint32_t next_pv = DLVM_MAX(vg->info.next_pv_id, in->next_pv_id);
	vg->info = *in;
	vg->info.next_lv_id = next_lv;
	vg->info.next_pv_id = next_pv;
	return 0;
}

static int apply_pv_add(struct dlvm_vg *vg, const struct dlvm_pv_desc *d, struct dlvm_err *err)
{
	if (dlvm_pv_find_id(vg, d->id))
		return dlvm_err_set(err, -EBADMSG, "PV_ADD: PV id %u already exists", d->id);
	for (size_t i = 0; i < vg->npv; i++)
		if (!memcmp(vg->pvs[i]->d.uuid, d->uuid, 16))
			return dlvm_err_set(err, -EBADMSG, "PV_ADD: PV uuid already in the VG");
	if (!d->pe_count || d->sector_size == 0)
		return dlvm_err_set(err, -EBADMSG, "PV_ADD: PV %u has no extents", d->id);
	struct dlvm_pv *pv = calloc(1, sizeof(*pv));
	struct dlvm_pv **arr = realloc(vg->pvs, (vg->npv + 1) * sizeof(*arr));
	if (!pv || !arr) {
		free(pv);
		if (arr)
			vg->pvs = arr;
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	vg->pvs = arr;
	pv->d = *d;
	if (range_insert_at(pv, 0, 0, d->pe_count)) {
		free(pv);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	vg->pvs[vg->npv++] = pv;
	if (d->id >= vg->info.next_pv_id)
		vg->info.next_pv_id = d->id + 1;
	return 0;
}

static int apply_pv_remove(struct dlvm_vg *vg, uint32_t id, struct dlvm_err *err)
{
	for (size_t i = 0; i < vg->npv; i++) {
		struct dlvm_pv *pv = vg->pvs[i];
		if (pv->d.id != id)
			continue;
		if (pv->pe_alloc)
			return dlvm_err_set(err, -EBADMSG,
					    "PV_REMOVE: PV %u still has %" PRIu64 " extents in use",
					    id, pv->pe_alloc);
		/* the device stays open: its owner decides (vgreduce makes it an orphan) */
		free(pv->free);
		free(pv);
		memmove(&vg->pvs[i], &vg->pvs[i + 1], (vg->npv - i - 1) * sizeof(*vg->pvs));
		vg->npv--;
		return 0;
	}
	return dlvm_err_set(err, -EBADMSG, "PV_REMOVE: PV %u does not exist", id);
}

static int apply_lv_create(struct dlvm_vg *vg, const struct dlvm_edit *e, struct dlvm_err *err)
{
	struct dlvm_lv *lv;
	int r;

	/* internal LVs use the names LVM reserves for them (pool_tmeta) */
	if ((r = dlvm_check_name(e->u.lv.name,
				 (e->u.lv.flags & DLVM_LV_HIDDEN) ? "internal LV" : "LV", err)))
		return dlvm_err_prefix(err, -EBADMSG, "LV_CREATE: ");
	if (dlvm_lv_find(vg, e->u.lv.name))
		return dlvm_err_set(err, -EBADMSG, "LV_CREATE: LV name %s already exists",
				    e->u.lv.name);
	if (dlvm_lv_find_id(vg, e->u.lv.id) || e->u.lv.id == 0)
		return dlvm_err_set(err, -EBADMSG, "LV_CREATE: LV id %" PRIu64 " is in use or zero",
				    e->u.lv.id);
	lv = calloc(1, sizeof(*lv));
	if (!lv)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	lv->id = e->u.lv.id;
	memcpy(lv->uuid, e->u.lv.uuid, 16);
	memcpy(lv->name, e->u.lv.name, sizeof(lv->name));
	lv->flags = e->u.lv.flags;
	lv->ctime = e->u.lv.ctime;
	if (dlvm_segs_dup(e->u.lv.segs, e->u.lv.nseg, &lv->segs)) {
		free(lv);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	lv->nseg = e->u.lv.nseg;
	if ((r = segs_take(vg, lv->name, lv->segs, lv->nseg, &lv->le_count, err))) {
		dlvm_lv_free(lv);
		return r;
	}
	if (dlvm_vg_add_lv(vg, lv)) {
		segs_give(vg, lv->segs, lv->nseg);
		dlvm_lv_free(lv);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	if (lv->id >= vg->info.next_lv_id)
		vg->info.next_lv_id = lv->id + 1;
	return 0;
}

static struct dlvm_lv *lv_by_id(struct dlvm_vg *vg, const struct dlvm_edit *e, struct dlvm_err *err)
{
	struct dlvm_lv *lv = dlvm_lv_find_id(vg, e->u.lv.id);
	if (!lv)
		dlvm_err_set(err, -EBADMSG, "%s: LV id %" PRIu64 " does not exist",
			     dlvm_edit_type_name(e->type), e->u.lv.id);
	return lv;
}

/* Thin attributes must fit the LV's kind; a pool's metadata LV and a thin
 * LV's pool (and origin) must exist and be of the right kind. Checkpoints
 * list LVs in any order, so LVs created later in the stream are looked up
 * by the caller's check (dlvm check), not here: only existence of already
 * known ids is required when they are given. */
static int apply_thin(struct dlvm_vg *vg, struct dlvm_lv *lv, const struct dlvm_lv_thin *t,
		      struct dlvm_err *err)
{
	bool chunk_ok = t->chunk_size >= 4096 && t->chunk_size <= (1u << 20) &&
			!(t->chunk_size & (t->chunk_size - 1));

	if (lv->flags & DLVM_LV_THIN_POOL) {
		if (!chunk_ok)
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_THIN: %s: chunk size %u is not a "
					    "power of two from 4 KiB to 1 MiB",
					    lv->name, t->chunk_size);
		if (!t->meta_id == !t->slab_extents || t->pool_id || t->virtual_size ||
		    t->origin_id)
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_THIN: %s: a pool needs either a "
					    "metadata LV or a slab size, and nothing else",
					    lv->name);
	} else if (lv->flags & (DLVM_LV_THIN_META | DLVM_LV_THIN_DATA)) {
		bool data = lv->flags & DLVM_LV_THIN_DATA;
		if (!t->pool_id || t->virtual_size || t->slab_extents || !data != !t->meta_id ||
		    (!data && !chunk_ok) || (data && (t->chunk_size || t->origin_id)))
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_THIN: %s: a family's %s LV needs "
					    "a pool%s",
					    lv->name, data ? "data" : "metadata",
					    data ? " and its metadata LV" : " and a chunk size");
		const struct dlvm_lv *pool = dlvm_lv_find_id(vg, t->pool_id);
		if (pool && (!(pool->flags & DLVM_LV_THIN_POOL) || !pool->thin.slab_extents))
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_THIN: %s: LV id %" PRIu64 " is not "
					    "a thin pool of a shared VG",
					    lv->name, t->pool_id);
	} else if (lv->flags & DLVM_LV_THIN) {
		if (!t->pool_id || !t->virtual_size || t->virtual_size % 4096 || t->chunk_size ||
		    t->slab_extents || lv->nseg || t->virtual_size > DLVM_THIN_MAX_VSIZE)
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_THIN: %s: a thin LV needs a pool, "
					    "a virtual size (multiple of 4096, at most 1 EiB) and "
					    "no "
					    "segments",
					    lv->name);
		const struct dlvm_lv *pool = dlvm_lv_find_id(vg, t->pool_id);
		if (pool && !(pool->flags & DLVM_LV_THIN_POOL))
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_THIN: %s: LV id %" PRIu64 " is not "
					    "a thin pool",
					    lv->name, t->pool_id);
		const struct dlvm_lv *meta = t->meta_id ? dlvm_lv_find_id(vg, t->meta_id) : NULL;
		if (meta && !(meta->flags & DLVM_LV_THIN_META))
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_THIN: %s: LV id %" PRIu64 " is not "
					    "a family's metadata LV",
					    lv->name, t->meta_id);
	} else {
		return dlvm_err_set(err, -EBADMSG,
				    "LV_SET_THIN: %s is neither a thin pool nor a thin "
				    "LV",
				    lv->name);
	}
	lv->thin = *t;
	return 0;
}

/* Holders: host ids 1..DLVM_MAX_HOLDERS in increasing order, a known mode,
 * an exclusive holder alone. */
static int apply_holders(struct dlvm_lv *lv, const struct dlvm_edit *e, struct dlvm_err *err)
{
	const struct dlvm_lv_holder *h = e->u.lv.holders;
	uint32_t n = e->u.lv.nholders;
	struct dlvm_lv_holder *copy = NULL;

	for (uint32_t i = 0; i < n; i++) {
		if (h[i].host_id < 1 || h[i].host_id > DLVM_MAX_HOLDERS)
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_HOLDERS: %s: host id %u out of "
					    "range",
					    lv->name, h[i].host_id);
		if (i && h[i].host_id <= h[i - 1].host_id)
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_HOLDERS: %s: host ids not in "
					    "increasing order",
					    lv->name);
		if (h[i].mode != DLVM_HOLD_EXCLUSIVE && h[i].mode != DLVM_HOLD_SHARED)
			return dlvm_err_set(err, -EBADMSG, "LV_SET_HOLDERS: %s: unknown mode %u",
					    lv->name, h[i].mode);
		if (h[i].mode == DLVM_HOLD_EXCLUSIVE && n > 1)
			return dlvm_err_set(err, -EBADMSG,
					    "LV_SET_HOLDERS: %s: an exclusive "
					    "holder with others",
					    lv->name);
	}
	if (n && !(copy = malloc(n * sizeof(*copy))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	if (n)
		memcpy(copy, h, n * sizeof(*copy));
	free(lv->holders);
	lv->holders = copy;
	lv->nholders = n;
	return 0;
}

int dlvm_vg_apply(struct dlvm_vg *vg, const struct dlvm_edit *e, struct dlvm_err *err)
{
	struct dlvm_lv *lv;
	int r;

	if (e->type != DLVM_EDIT_VG_INFO && !vg->info.extent_size)
		return dlvm_err_set(err, -EBADMSG, "%s before VG_INFO",
				    dlvm_edit_type_name(e->type));
	switch (e->type) {
	case DLVM_EDIT_VG_INFO: return apply_vg_info(vg, &e->u.vg, err);
	case DLVM_EDIT_PV_ADD: return apply_pv_add(vg, &e->u.pv, err);
	case DLVM_EDIT_PV_REMOVE: return apply_pv_remove(vg, e->u.pv_id, err);
	case DLVM_EDIT_LV_CREATE: return apply_lv_create(vg, e, err);
	case DLVM_EDIT_LV_REMOVE:
		if (!(lv = lv_by_id(vg, e, err)))
			return -EBADMSG;
		segs_give(vg, lv->segs, lv->nseg);
		dlvm_vg_del_lv(vg, lv);
		dlvm_lv_free(lv);
		return 0;
	case DLVM_EDIT_LV_RENAME:
		if (!(lv = lv_by_id(vg, e, err)))
			return -EBADMSG;
		if ((r = dlvm_check_name(e->u.lv.name, "LV", err)))
			return dlvm_err_prefix(err, -EBADMSG, "LV_RENAME: ");
		if (dlvm_lv_find(vg, e->u.lv.name))
			return dlvm_err_set(err, -EBADMSG, "LV_RENAME: name %s already exists",
					    e->u.lv.name);
		dlvm_hmap_remove(vg->by_name, lv);
		memcpy(lv->name, e->u.lv.name, sizeof(lv->name));
		if (dlvm_hmap_insert(vg->by_name, lv))
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		return 0;
	case DLVM_EDIT_LV_SET_FLAGS:
		if (!(lv = lv_by_id(vg, e, err)))
			return -EBADMSG;
		lv->flags = e->u.lv.flags;
		return 0;
	case DLVM_EDIT_LV_SET_SEGMENTS: {
		struct dlvm_seg_desc **segs;
		uint64_t le;
		if (!(lv = lv_by_id(vg, e, err)))
			return -EBADMSG;
		if (dlvm_segs_dup(e->u.lv.segs, e->u.lv.nseg, &segs))
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		segs_give(vg, lv->segs, lv->nseg);
		if ((r = segs_take(vg, lv->name, segs, e->u.lv.nseg, &le, err))) {
			uint64_t old;
			segs_take(vg, lv->name, lv->segs, lv->nseg, &old, NULL);
			dlvm_segs_free(segs, e->u.lv.nseg);
			return r;
		}
		dlvm_segs_free(lv->segs, lv->nseg);
		lv->segs = segs;
		lv->nseg = e->u.lv.nseg;
		lv->le_count = le;
		return 0;
	}
	case DLVM_EDIT_LV_SET_HOLDERS:
		if (!(lv = lv_by_id(vg, e, err)))
			return -EBADMSG;
		return apply_holders(lv, e, err);
	case DLVM_EDIT_LV_SET_THIN:
		if (!(lv = lv_by_id(vg, e, err)))
			return -EBADMSG;
		return apply_thin(vg, lv, &e->u.lv.thin, err);
	case DLVM_EDIT_LV_SET_COPY_RATE:
		if (!(lv = lv_by_id(vg, e, err)))
			return -EBADMSG;
		lv->copy_rate = e->u.lv.copy_rate;
		return 0;
	case DLVM_EDIT_PROPERTY_SET: return dlvm_apply_prop(vg, e, err);
	default:
		if (e->flags & DLVM_EDIT_IGNORABLE)
			return 0;
		return dlvm_err_set(err, -ENOTSUP, "unknown edit type %u", e->type);
	}
}
