/* SPDX-License-Identifier: MIT */
/* Helpers of the VG model that several layers use: an LV's size, segment
 * lists cut and joined, which LVs are internal to dlvm. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/util.h"
#include "dlvm/vg.h"

uint64_t dlvm_lv_bytes(const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	if (lv->flags & DLVM_LV_THIN)
		return lv->thin.virtual_size;
	uint64_t le = lv->le_count;
	if ((lv->flags & DLVM_LV_THIN_POOL) && lv->thin.slab_extents) /* slabs handed out */
		for (size_t i = 0; i < vg->nlv; i++)
			if ((vg->lvs[i]->flags & DLVM_LV_THIN_DATA) &&
			    vg->lvs[i]->thin.pool_id == lv->id)
				le += vg->lvs[i]->le_count;
	return le * vg->info.extent_size;
}
int dlvm_segs_cut(const struct dlvm_lv *lv, uint64_t keep, struct dlvm_seg_desc ***out,
		  uint32_t *nout)
{
	struct dlvm_seg_desc **segs;
	uint32_t n = 0;

	if (dlvm_segs_dup(lv->segs, lv->nseg, &segs))
		return -ENOMEM;
	for (uint32_t i = 0; i < lv->nseg; i++) {
		struct dlvm_seg_desc *s = segs[i];
		if (s->le_start >= keep) {
			free(s);
			continue;
		}
		if (s->le_start + s->le_count > keep)
			s->le_count = keep - s->le_start;
		n++;
	}
	*out = segs;
	*nout = n;
	return 0;
}

int dlvm_segs_join(struct dlvm_seg_desc *const *a, uint32_t na, struct dlvm_seg_desc **b,
		   uint32_t nb, struct dlvm_seg_desc ***out, uint32_t *nout)
{
	struct dlvm_seg_desc **segs;
	uint32_t n;

	if (dlvm_segs_dup(a, na, &segs))
		return -ENOMEM;
	struct dlvm_seg_desc **p = realloc(segs, (na + nb) * sizeof(*p));
	if (!p) {
		dlvm_segs_free(segs, na);
		return -ENOMEM;
	}
	segs = p;
	n = na;
	for (uint32_t i = 0; i < nb; i++) {
		struct dlvm_seg_desc *last = n ? segs[n - 1] : NULL, *s = b[i];
		if (last && last->stripes == 1 && s->stripes == 1 &&
		    last->area[0].pv_id == s->area[0].pv_id &&
		    last->area[0].pe_start + last->le_count == s->area[0].pe_start) {
			last->le_count += s->le_count;
			free(s);
		} else {
			segs[n++] = s;
		}
		b[i] = NULL;
	}
	*out = segs;
	*nout = n;
	return 0;
}
struct dlvm_lv *dlvm_vg_lockspace_lv(const struct dlvm_vg *vg)
{
	for (size_t i = 0; i < vg->nlv; i++)
		if (vg->lvs[i]->flags & DLVM_LV_LOCKSPACE)
			return vg->lvs[i];
	return NULL;
}

bool dlvm_lv_is_internal(const struct dlvm_lv *lv)
{
	return lv->flags &
	       (DLVM_LV_HIDDEN | DLVM_LV_LOCKSPACE | DLVM_LV_THIN_META | DLVM_LV_THIN_DATA);
}

bool dlvm_lv_exportable(const struct dlvm_lv *lv)
{
	return !dlvm_lv_is_internal(lv) && !(lv->flags & DLVM_LV_THIN_POOL);
}

int dlvm_lv_refuse_internal(const struct dlvm_vg *vg, const struct dlvm_lv *lv, const char *what,
			    struct dlvm_err *err)
{
	if (!dlvm_lv_is_internal(lv))
		return 0;
	if ((lv->flags & DLVM_LV_THIN) && !strcmp(what, "remove"))
		return 0; /* a clone's hidden snapshot: goes once no clone reads it */
	if (lv->flags & DLVM_LV_THIN)
		return dlvm_err_set(err, -EPERM,
				    "%s/%s: cannot %s [%s]: it is the snapshot that "
				    "clones of a live volume read through (it goes with the last "
				    "of "
				    "them)",
				    vg->info.name, lv->name, what, lv->name);
	if (lv->flags & (DLVM_LV_THIN_META | DLVM_LV_THIN_DATA))
		return dlvm_err_set(err, -EPERM,
				    "%s/%s: cannot %s [%s]: it holds the %s of a "
				    "thin pool (removing its thin volumes or the pool removes it)",
				    vg->info.name, lv->name, what, lv->name,
				    lv->flags & DLVM_LV_THIN_META ? "metadata" : "data");
	return dlvm_err_set(err, -EPERM,
			    "%s/%s: cannot %s [%s]: it holds the lease area of "
			    "shared VG %s (vgremove removes it)",
			    vg->info.name, lv->name, what, lv->name, vg->info.name);
}

int dlvm_txn_push(struct dlvm_txn *t, struct dlvm_edit *e, struct dlvm_err *err)
{
	int r = dlvm_txn_add(t, e);
	return r ? dlvm_err_set(err, r, "out of memory") : 0;
}

int dlvm_lv_extend(struct dlvm_vg *vg, struct dlvm_lv *lv, uint64_t more, uint16_t stripes,
		   uint32_t stripe_size, const uint32_t *pvs, size_t npvs, struct dlvm_err *err)
{
	struct dlvm_seg_desc **add;
	uint32_t nadd;
	int r;

	if (stripes > 1 && more % stripes)
		more += stripes - more % stripes;
	if ((r = dlvm_alloc(vg, lv, more, stripes, stripe_size, pvs, npvs, &add, &nadd, err)))
		return r;
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
	e.u.lv.id = lv->id;
	r = dlvm_segs_join(lv->segs, lv->nseg, add, nadd, &e.u.lv.segs, &e.u.lv.nseg);
	dlvm_segs_free(add, nadd);
	if (r)
		return dlvm_err_set(err, r, "out of memory");
	return dlvm_txn_commit_edit(vg, &e, err);
}

void dlvm_lv_create_edit(struct dlvm_edit *e, uint64_t id, const char *name, uint64_t flags)
{
	e->type = DLVM_EDIT_LV_CREATE;
	e->u.lv.id = id;
	dlvm_uuid_generate(e->u.lv.uuid);
	snprintf(e->u.lv.name, sizeof(e->u.lv.name), "%s", name);
	e->u.lv.flags = flags;
	e->u.lv.ctime = (uint64_t)time(NULL);
}
