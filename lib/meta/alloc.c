/* SPDX-License-Identifier: MIT */
/*
 * Extent allocation: choose where new extents of an LV go, without changing
 * the model (the caller turns the result into edits and commits them).
 * Linear: continue the LV's last area when the extents after it are free,
 * else the smallest free range that holds everything (best fit), else the
 * largest ranges first (fewest pieces). Striped: one area per stripe, each on
 * a different PV, each contiguous.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "meta.h"

static bool pv_allowed(const struct dlvm_pv *pv, const uint32_t *pvs, size_t npvs)
{
	if (!pv->dev)
		return false;
	if (!pvs)
		return true;
	for (size_t i = 0; i < npvs; i++)
		if (pvs[i] == pv->d.id)
			return true;
	return false;
}

struct seglist {
	struct dlvm_seg_desc **segs;
	uint32_t n, cap;
};

static int seglist_add(struct seglist *l, uint64_t le_start, uint64_t count, uint32_t pv_id,
		       uint64_t pe_start)
{
	if (l->n == l->cap) {
		uint32_t ncap = l->cap ? l->cap * 2 : 4;
		struct dlvm_seg_desc **p = realloc(l->segs, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->segs = p;
		l->cap = ncap;
	}
	struct dlvm_seg_desc *s = calloc(1, dlvm_seg_desc_size(1));
	if (!s)
		return -ENOMEM;
	s->le_start = le_start;
	s->le_count = count;
	s->type = DLVM_SEG_LINEAR;
	s->stripes = 1;
	s->area[0].pv_id = pv_id;
	s->area[0].pe_start = pe_start;
	l->segs[l->n++] = s;
	return 0;
}

/* A free range picked for allocation; `used` tracks what this call took. */
struct pick {
	struct dlvm_pv *pv;
	size_t idx;
};

static int alloc_linear(const struct dlvm_vg *vg, const struct dlvm_lv *lv, uint64_t extents,
			const uint32_t *pvs, size_t npvs, struct seglist *out)
{
	uint64_t le = lv ? lv->le_count : 0, left = extents;
	/* ranges consumed by this call (so a range is not used twice) */
	size_t ncons = 0, capcons = 16;
	struct {
		const struct dlvm_pv *pv;
		size_t idx;
	} *cons = malloc(capcons * sizeof(*cons));
	int r = 0;

	if (!cons)
		return -ENOMEM;
	/* 1. continue the last area */
	if (lv && lv->nseg && lv->segs[lv->nseg - 1]->stripes == 1) {
		const struct dlvm_seg_desc *s = lv->segs[lv->nseg - 1];
		struct dlvm_pv *pv = dlvm_pv_find_id(vg, s->area[0].pv_id);
		uint64_t next = s->area[0].pe_start + s->le_count;
		if (pv && pv_allowed(pv, pvs, npvs)) {
			for (size_t i = 0; i < pv->nfree; i++) {
				if (pv->free[i].start != next)
					continue;
				uint64_t take = DLVM_MIN(left, pv->free[i].count);
				if ((r = seglist_add(out, le, take, pv->d.id, next)))
					goto out;
				cons[ncons].pv = pv;
				cons[ncons++].idx = i;
				le += take;
				left -= take;
				break;
			}
		}
	}
	while (left) {
		/* 2. best fit; 3. else the largest */
		const struct dlvm_pv *bpv = NULL, *lpv = NULL;
		size_t bi = 0, li = 0;
		for (size_t p = 0; p < vg->npv; p++) {
			const struct dlvm_pv *pv = vg->pvs[p];
			if (!pv_allowed(pv, pvs, npvs))
				continue;
			for (size_t i = 0; i < pv->nfree; i++) {
				bool used = false;
				for (size_t c = 0; c < ncons; c++)
					used |= cons[c].pv == pv && cons[c].idx == i;
				if (used)
					continue;
				uint64_t cnt = pv->free[i].count;
				if (cnt >= left && (!bpv || cnt < bpv->free[bi].count)) {
					bpv = pv;
					bi = i;
				}
				if (!lpv || cnt > lpv->free[li].count) {
					lpv = pv;
					li = i;
				}
			}
		}
		const struct dlvm_pv *pv = bpv ? bpv : lpv;
		size_t i = bpv ? bi : li;
		if (!pv) {
			r = -ENOSPC;
			goto out;
		}
		uint64_t take = DLVM_MIN(left, pv->free[i].count);
		if ((r = seglist_add(out, le, take, pv->d.id, pv->free[i].start)))
			goto out;
		if (ncons == capcons) {
			capcons *= 2;
			void *np = realloc(cons, capcons * sizeof(*cons));
			if (!np) {
				r = -ENOMEM;
				goto out;
			}
			cons = np;
		}
		cons[ncons].pv = pv;
		cons[ncons++].idx = i;
		le += take;
		left -= take;
	}
out:
	free(cons);
	return r;
}

static int alloc_striped(const struct dlvm_vg *vg, const struct dlvm_lv *lv, uint64_t extents,
			 uint16_t stripes, uint32_t stripe_size, const uint32_t *pvs, size_t npvs,
			 struct seglist *out)
{
	uint64_t per = extents / stripes;
	struct dlvm_seg_desc *s = calloc(1, dlvm_seg_desc_size(stripes));
	uint16_t got = 0;

	if (!s)
		return -ENOMEM;
	s->le_start = lv ? lv->le_count : 0;
	s->le_count = extents;
	s->type = DLVM_SEG_STRIPED;
	s->stripes = stripes;
	s->stripe_size = stripe_size;
	/* per PV, the best-fitting range; PVs with the most free space first */
	bool *taken = calloc(vg->npv ? vg->npv : 1, sizeof(bool));
	if (!taken) {
		free(s);
		return -ENOMEM;
	}
	while (got < stripes) {
		ssize_t bp = -1;
		size_t bi = 0;
		uint64_t bfree = 0;
		for (size_t p = 0; p < vg->npv; p++) {
			const struct dlvm_pv *pv = vg->pvs[p];
			if (taken[p] || !pv_allowed(pv, pvs, npvs))
				continue;
			ssize_t fit = -1;
			for (size_t i = 0; i < pv->nfree; i++)
				if (pv->free[i].count >= per &&
				    (fit < 0 || pv->free[i].count < pv->free[fit].count))
					fit = (ssize_t)i;
			uint64_t pfree = pv->d.pe_count - pv->pe_alloc;
			if (fit >= 0 && (bp < 0 || pfree > bfree)) {
				bp = (ssize_t)p;
				bi = (size_t)fit;
				bfree = pfree;
			}
		}
		if (bp < 0)
			break;
		taken[bp] = true;
		s->area[got].pv_id = vg->pvs[bp]->d.id;
		s->area[got].pe_start = vg->pvs[bp]->free[bi].start;
		got++;
	}
	free(taken);
	if (got < stripes) {
		free(s);
		return -ENOSPC;
	}
	if (out->n == out->cap) {
		struct dlvm_seg_desc **p = realloc(out->segs, (out->cap + 1) * sizeof(*p));
		if (!p) {
			free(s);
			return -ENOMEM;
		}
		out->segs = p;
		out->cap++;
	}
	out->segs[out->n++] = s;
	return 0;
}

int dlvm_alloc(const struct dlvm_vg *vg, const struct dlvm_lv *lv, uint64_t extents,
	       uint16_t stripes, uint32_t stripe_size, const uint32_t *pvs, size_t npvs,
	       struct dlvm_seg_desc ***segs_out, uint32_t *nseg_out, struct dlvm_err *err)
{
	struct seglist l = { 0 };
	uint64_t avail = 0;
	size_t usable = 0;
	int r;

	if (!extents)
		return dlvm_err_set(err, -EINVAL, "nothing to allocate");
	for (size_t p = 0; p < vg->npv; p++)
		if (pv_allowed(vg->pvs[p], pvs, npvs)) {
			avail += vg->pvs[p]->d.pe_count - vg->pvs[p]->pe_alloc;
			usable++;
		}
	if (avail < extents)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: insufficient free space: %" PRIu64
				    " extents needed, but only %" PRIu64 " available",
				    vg->info.name, extents, avail);
	if (stripes > 1) {
		if (stripes > usable)
			return dlvm_err_set(err, -ENOSPC,
					    "%s: %u stripes need %u PVs, the VG has %zu "
					    "usable",
					    vg->info.name, stripes, stripes, usable);
		if (extents % stripes)
			return dlvm_err_set(err, -EINVAL,
					    "%" PRIu64 " extents are not a multiple of "
					    "%u stripes",
					    extents, stripes);
		r = alloc_striped(vg, lv, extents, stripes, stripe_size, pvs, npvs, &l);
		if (r == -ENOSPC)
			return dlvm_err_set(err, -ENOSPC,
					    "%s: cannot find %u PVs with %" PRIu64
					    " contiguous free extents each",
					    vg->info.name, stripes, extents / stripes);
	} else {
		r = alloc_linear(vg, lv, extents, pvs, npvs, &l);
	}
	if (r) {
		dlvm_segs_free(l.segs, l.n);
		return dlvm_err_set(err, r,
				    r == -ENOMEM ? "out of memory"
						 : "%s: insufficient "
						   "free space",
				    vg->info.name);
	}
	*segs_out = l.segs;
	*nseg_out = l.n;
	return 0;
}
