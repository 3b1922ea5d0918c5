/* SPDX-License-Identifier: MIT */
#include "dlvm/map.h"

#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/vg.h"

static int dev_index(struct dlvm_lv_map *m, const struct dlvm_pv *pv)
{
	for (uint32_t i = 0; i < m->ndev; i++)
		if (m->devs[i].fd == pv->dev->fd)
			return (int)i;
	struct dlvm_map_dev *d = &m->devs[m->ndev];
	d->fd = pv->dev->fd;
	d->sector_size = pv->dev->sector_size;
	d->direct = pv->dev->direct;
	d->blockdev = pv->dev->blockdev;
	snprintf(d->name, sizeof(d->name), "%s", pv->dev->name);
	return (int)m->ndev++;
}

/* The map of thin LV lv: its store (taken over from src), every PV. */
static int thin_map(struct dlvm_lv_map *m, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		    const struct dlvm_map_source *src, struct dlvm_err *err)
{
	if (!src || !src->thin)
		return dlvm_err_set(err, -EINVAL, "%s/%s: a thin LV's map needs its store",
				    vg->info.name, lv->name);
	m->thin = src->thin;
	m->thin_unref = src->thin_unref;
	m->thin_id = lv->id;
	m->size = lv->thin.virtual_size;
	/* every PV of the VG: the pool's data may move onto any of them */
	if (!(m->devs = calloc(vg->npv ? vg->npv : 1, sizeof(*m->devs))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < vg->npv; i++)
		if (vg->pvs[i]->dev)
			dev_index(m, vg->pvs[i]);
	return 0;
}

int dlvm_lv_map_build(const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		      const struct dlvm_map_source *src, struct dlvm_lv_map **out,
		      struct dlvm_err *err)
{
	struct dlvm_lv_map *m = calloc(1, sizeof(*m));
	uint64_t es = vg->info.extent_size;
	int r;

	if (!m) {
		if (src && src->thin)
			src->thin_unref(src->thin);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	atomic_init(&m->refs, 1);
	m->size = lv->le_count * es;
	/* a write to a thin LV changes its pool's store, which a read-only
	 * VG never writes */
	m->readonly = (lv->flags & DLVM_LV_READONLY) ||
		      ((lv->flags & DLVM_LV_THIN) && vg->readonly);
	m->fence = src && src->fence ? dlvm_fence_get(src->fence) : NULL;
	snprintf(m->vg, sizeof(m->vg), "%s", vg->info.name);
	snprintf(m->lv, sizeof(m->lv), "%s", lv->name);
	if (lv->flags & DLVM_LV_THIN) {
		if ((r = thin_map(m, vg, lv, src, err))) {
			dlvm_lv_map_put(m);
			return r;
		}
		*out = m;
		return 0;
	}
	m->devs = calloc(vg->npv ? vg->npv : 1, sizeof(*m->devs));
	m->segs = calloc(lv->nseg ? lv->nseg : 1, sizeof(*m->segs));
	if (!m->devs || !m->segs) {
		dlvm_lv_map_put(m);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < lv->nseg; i++) {
		const struct dlvm_seg_desc *s = lv->segs[i];
		struct dlvm_map_seg *ms = &m->segs[i];
		ms->start = s->le_start * es;
		ms->len = s->le_count * es;
		ms->stripes = s->stripes;
		ms->stripe_size = s->stripes > 1 ? s->stripe_size : ms->len;
		for (uint32_t k = 0; k < s->stripes; k++) {
			struct dlvm_pv *pv = dlvm_pv_find_id(vg, s->area[k].pv_id);
			if (!pv || !pv->dev) {
				dlvm_lv_map_put(m);
				return dlvm_err_set(err, -ENODEV, "%s/%s: PV %u is missing",
						    vg->info.name, lv->name, s->area[k].pv_id);
			}
			ms->area_dev[k] = (uint32_t)dev_index(m, pv);
			ms->area_off[k] = pv->d.pe_start + s->area[k].pe_start * es;
		}
		m->nseg++;
	}
	*out = m;
	return 0;
}

struct dlvm_lv_map *dlvm_lv_map_get(struct dlvm_lv_map *m)
{
	atomic_fetch_add(&m->refs, 1);
	return m;
}

void dlvm_lv_map_put(struct dlvm_lv_map *m)
{
	if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	dlvm_fence_put(m->fence);
	if (m->thin)
		m->thin_unref(m->thin);
	free(m->devs);
	free(m->segs);
	free(m);
}

void dlvm_lv_map_resolve(const struct dlvm_lv_map *m, uint64_t off, uint64_t len,
			 struct dlvm_map_piece *p)
{
	uint32_t lo = 0, hi = m->nseg;

	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (m->segs[mid].start <= off)
			lo = mid;
		else
			hi = mid;
	}
	const struct dlvm_map_seg *s = &m->segs[lo];
	uint64_t in = off - s->start;
	uint64_t left = s->len - in;

	if (s->stripes <= 1) {
		p->dev = s->area_dev[0];
		p->dev_off = s->area_off[0] + in;
		p->len = len < left ? len : left;
		return;
	}
	uint64_t chunk = in / s->stripe_size;
	uint64_t within = in % s->stripe_size;
	uint32_t stripe = (uint32_t)(chunk % s->stripes);
	uint64_t row = chunk / s->stripes;
	uint64_t run = s->stripe_size - within;

	p->dev = s->area_dev[stripe];
	p->dev_off = s->area_off[stripe] + row * s->stripe_size + within;
	p->len = len < run ? len : run;
}
