/* SPDX-License-Identifier: MIT */
/* The undo of a transaction: the inverse of each edit, taken from the model
 * before the edit is applied, so that a commit that reaches no copy leaves
 * the model as it was. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dlvm/util.h"
#include "meta.h"

/* The edits that give a removed LV back what LV_CREATE does not carry,
 * as a checkpoint writes them, with a copy of its activation records. */
static int undo_attributes(const struct dlvm_lv *lv, struct undo *u)
{
	u->nmore = dlvm_lv_attr_edits(lv, u->more);
	for (unsigned i = 0; i < u->nmore; i++) {
		struct dlvm_edit *m = &u->more[i];
		if (m->type != DLVM_EDIT_LV_SET_HOLDERS)
			continue;
		size_t sz = m->u.lv.nholders * sizeof(*m->u.lv.holders);
		if (!(m->u.lv.holders = malloc(sz))) {
			m->u.lv.nholders = 0;
			return -ENOMEM;
		}
		memcpy(m->u.lv.holders, lv->holders, sz);
	}
	return 0;
}

void dlvm_undo_release(struct undo *u)
{
	dlvm_edit_release(&u->inv);
	for (unsigned i = 0; i < u->nmore; i++)
		dlvm_edit_release(&u->more[i]);
	u->nmore = 0;
	for (unsigned i = 0; i < u->nprops; i++)
		dlvm_edit_release(&u->props[i]);
	free(u->props);
	u->props = NULL;
	u->nprops = 0;
}

int dlvm_undo_make(const struct dlvm_vg *vg, const struct dlvm_edit *e, struct undo *u)
{
	const struct dlvm_lv *lv;
	const struct dlvm_pv *pv;

	memset(u, 0, sizeof(*u));
	switch (e->type) {
	case DLVM_EDIT_VG_INFO:
		u->inv.type = DLVM_EDIT_VG_INFO;
		u->inv.u.vg = vg->info;
		return 0;
	case DLVM_EDIT_PV_ADD:
		u->inv.type = DLVM_EDIT_PV_REMOVE;
		u->inv.u.pv_id = e->u.pv.id;
		return 0;
	case DLVM_EDIT_PV_REMOVE:
		if (!(pv = dlvm_pv_find_id(vg, e->u.pv_id)))
			return 0; /* apply refuses it */
		u->inv.type = DLVM_EDIT_PV_ADD;
		u->inv.u.pv = pv->d;
		u->dev = pv->dev;
		u->hdr = pv->hdr;
		u->mda = pv->mda;
		return 0;
	case DLVM_EDIT_LV_CREATE:
		u->inv.type = DLVM_EDIT_LV_REMOVE;
		u->inv.u.lv.id = e->u.lv.id;
		return 0;
	case DLVM_EDIT_PROPERTY_SET: return dlvm_undo_prop(vg, e, &u->inv);
	default: break;
	}
	if (e->type < DLVM_EDIT_LV_REMOVE || e->type > DLVM_EDIT_LV_SET_COPY_RATE ||
	    !(lv = dlvm_lv_find_id(vg, e->u.lv.id)))
		return 0;
	u->inv.u.lv.id = lv->id;
	switch (e->type) {
	case DLVM_EDIT_LV_REMOVE:
		u->inv.type = DLVM_EDIT_LV_CREATE;
		memcpy(u->inv.u.lv.uuid, lv->uuid, 16);
		memcpy(u->inv.u.lv.name, lv->name, sizeof(lv->name));
		u->inv.u.lv.flags = lv->flags;
		u->inv.u.lv.ctime = lv->ctime;
		if (undo_attributes(lv, u)) {
			u->inv.type = 0;
			return -ENOMEM;
		}
		int np = dlvm_props_edits(lv->id, &lv->props, &u->props);
		if (np < 0) {
			u->inv.type = 0;
			return -ENOMEM;
		}
		u->nprops = (unsigned)np;
		/* fallthrough */
	case DLVM_EDIT_LV_SET_SEGMENTS:
		if (e->type == DLVM_EDIT_LV_SET_SEGMENTS)
			u->inv.type = DLVM_EDIT_LV_SET_SEGMENTS;
		if (dlvm_segs_dup(lv->segs, lv->nseg, &u->inv.u.lv.segs)) {
			u->inv.type = 0;
			return -ENOMEM;
		}
		u->inv.u.lv.nseg = lv->nseg;
		return 0;
	case DLVM_EDIT_LV_RENAME:
		u->inv.type = DLVM_EDIT_LV_RENAME;
		memcpy(u->inv.u.lv.name, lv->name, sizeof(lv->name));
		return 0;
	case DLVM_EDIT_LV_SET_FLAGS:
		u->inv.type = DLVM_EDIT_LV_SET_FLAGS;
		u->inv.u.lv.flags = lv->flags;
		return 0;
	case DLVM_EDIT_LV_SET_THIN:
		u->inv.type = DLVM_EDIT_LV_SET_THIN;
		u->inv.u.lv.thin = lv->thin;
		/* an LV that had no thin attributes yet is being created in this
		 * transaction: its LV_CREATE's inverse removes it */
		if (!(lv->flags &
		      (DLVM_LV_THIN_POOL | DLVM_LV_THIN | DLVM_LV_THIN_META | DLVM_LV_THIN_DATA)) ||
		    (!lv->thin.pool_id && !lv->thin.meta_id && !lv->thin.slab_extents))
			u->inv.type = 0;
		return 0;
	case DLVM_EDIT_LV_SET_COPY_RATE:
		u->inv.type = DLVM_EDIT_LV_SET_COPY_RATE;
		u->inv.flags = DLVM_EDIT_IGNORABLE;
		u->inv.u.lv.copy_rate = lv->copy_rate;
		return 0;
	case DLVM_EDIT_LV_SET_HOLDERS:
		u->inv.type = DLVM_EDIT_LV_SET_HOLDERS;
		if (lv->nholders) {
			u->inv.u.lv.holders = malloc(lv->nholders * sizeof(*lv->holders));
			if (!u->inv.u.lv.holders) {
				u->inv.type = 0;
				return -ENOMEM;
			}
			memcpy(u->inv.u.lv.holders, lv->holders,
			       lv->nholders * sizeof(*lv->holders));
		}
		u->inv.u.lv.nholders = lv->nholders;
		return 0;
	}
	return 0;
}

/* Undo the first n applied edits, newest first. Inverses of edits that were
 * applied always fit the model they were taken from. */
void dlvm_undo_all(struct dlvm_vg *vg, const struct dlvm_vg_info *info, struct undo *undo, size_t n)
{
	while (n--) {
		struct undo *u = &undo[n];
		if (!u->inv.type)
			continue;
		dlvm_vg_apply(vg, &u->inv, NULL);
		for (unsigned i = 0; i < u->nmore; i++)
			dlvm_vg_apply(vg, &u->more[i], NULL);
		for (unsigned i = 0; i < u->nprops; i++)
			dlvm_vg_apply(vg, &u->props[i], NULL);
		if (u->inv.type == DLVM_EDIT_PV_ADD) {
			struct dlvm_pv *pv = dlvm_pv_find_id(vg, u->inv.u.pv.id);
			if (pv) {
				pv->dev = u->dev;
				pv->hdr = u->hdr;
				pv->mda = u->mda;
			}
		}
	}
	vg->info = *info; /* id counters too */
}
