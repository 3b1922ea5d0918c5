/* SPDX-License-Identifier: MIT */
/* dlvm check: verify every metadata copy and the extent accounting; repair
 * stale or damaged copies from the model when asked. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/util.h"
#include "meta.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Extents of each PV: the LV areas and the free ranges must tile the PV
 * exactly once. */
static void check_extents(struct dlvm_vg *vg, struct dlvm_check_report *rep)
{
	for (size_t p = 0; p < vg->npv; p++) {
		struct dlvm_pv *pv = vg->pvs[p];
		size_t n = 0, cap = 64;
		uint64_t(*iv)[2] = malloc(cap * sizeof(*iv));
		if (!iv)
			return;
		for (size_t i = 0; i < pv->nfree; i++) {
			if (n == cap) {
				cap *= 2;
				void *np = realloc(iv, cap * sizeof(*iv));
				if (!np)
					goto next;
				iv = np;
			}
			iv[n][0] = pv->free[i].start;
			iv[n++][1] = pv->free[i].count;
		}
		uint64_t used = 0;
		for (size_t l = 0; l < vg->nlv; l++) {
			const struct dlvm_lv *lv = vg->lvs[l];
			for (uint32_t s = 0; s < lv->nseg; s++)
				for (uint16_t k = 0; k < lv->segs[s]->stripes; k++) {
					if (lv->segs[s]->area[k].pv_id != pv->d.id)
						continue;
					if (n == cap) {
						cap *= 2;
						void *np = realloc(iv, cap * sizeof(*iv));
						if (!np)
							goto next;
						iv = np;
					}
					iv[n][0] = lv->segs[s]->area[k].pe_start;
					iv[n++][1] = lv->segs[s]->le_count / lv->segs[s]->stripes;
					used += iv[n - 1][1];
				}
		}
		qsort(iv, n, sizeof(*iv), cmp_u64);
		uint64_t at = 0;
		for (size_t i = 0; i < n; i++) {
			if (iv[i][0] < at)
				dlvm_check_report_add(rep, true,
						      "PV %u: extent %" PRIu64 " is used twice",
						      pv->d.id, iv[i][0]);
			else if (iv[i][0] > at)
				dlvm_check_report_add(rep, true,
						      "PV %u: extents %" PRIu64 "..%" PRIu64
						      " are neither "
						      "free nor used",
						      pv->d.id, at, iv[i][0] - 1);
			at = DLVM_MAX(at, iv[i][0] + iv[i][1]);
		}
		if (at != pv->d.pe_count)
			dlvm_check_report_add(rep, true,
					      "PV %u: extents end at %" PRIu64
					      ", the PV has %" PRIu64,
					      pv->d.id, at, pv->d.pe_count);
		if (used != pv->pe_alloc)
			dlvm_check_report_add(rep, true,
					      "PV %u: %" PRIu64 " extents used by LVs, %" PRIu64
					      " accounted",
					      pv->d.id, used, pv->pe_alloc);
		if (pv->dev &&
		    pv->d.pe_start + pv->d.pe_count * vg->info.extent_size > pv->dev->size)
			dlvm_check_report_add(rep, true,
					      "%s: device is smaller than its PV data area",
					      pv->dev->name);
next:
		free(iv);
	}
}

int dlvm_vg_check(struct dlvm_vg *vg, bool repair, struct dlvm_check_report *rep,
		  struct dlvm_err *err)
{
	memset(rep, 0, sizeof(*rep));
	for (size_t i = 0; i < vg->npv; i++) {
		struct dlvm_pv *pv = vg->pvs[i];
		if (!pv->dev) {
			char u[DLVM_UUID_STR];
			dlvm_uuid_unparse(pv->d.uuid, u);
			dlvm_check_report_add(rep, true, "PV %u (uuid %s) is missing", pv->d.id, u);
			continue;
		}
		struct dlvm_pv_header ph;
		struct dlvm_err e = { 0 };
		if (dlvm_pv_read_header(pv->dev, &ph, &e)) {
			dlvm_check_report_add(rep, true, "%s", e.msg);
			continue;
		}
		/* re-read this copy from disk */
		struct dlvm_mda m = { 0 };
		dlvm_err_clear(&e);
		if (dlvm_mda_read_header(pv->dev, &m, &e) ||
		    dlvm_mda_replay(pv->dev, &m, NULL, &e)) {
			/* e.msg names the device already: "pv0.img: checkpoint at ..." */
			const char *what = e.msg;
			size_t dl = strlen(pv->dev->name);
			if (!strncmp(what, pv->dev->name, dl) && !strncmp(what + dl, ": ", 2))
				what += dl + 2;
			dlvm_check_report_add(rep, true,
					      "%s: metadata copy %zu at offset %" PRIu64 ": %s",
					      pv->dev->name, i + 1, pv->hdr.mda_offset, what);
			pv->mda.valid = false;
			pv->mda.in_sync = false;
		} else if (memcmp(m.hdr.vg_uuid, vg->info.uuid, 16)) {
			dlvm_check_report_add(rep, true,
					      "%s: metadata copy %zu belongs to another VG",
					      pv->dev->name, i + 1);
			pv->mda.valid = false;
			pv->mda.in_sync = false;
		} else if (m.fallback) {
			const char *what = m.problem;
			size_t dl = strlen(pv->dev->name);
			if (!strncmp(what, pv->dev->name, dl) && !strncmp(what + dl, ": ", 2))
				what += dl + 2;
			dlvm_check_report_add(rep, true,
					      "%s: metadata copy %zu at offset %" PRIu64 ": %s",
					      pv->dev->name, i + 1, pv->hdr.mda_offset, what);
			pv->mda = m;
			pv->mda.in_sync = false;
		} else if (m.tail_seq != vg->seq) {
			dlvm_check_report_add(rep, true,
					      "%s: metadata copy %zu is stale (sequence %" PRIu64
					      ", VG at %" PRIu64 ")",
					      pv->dev->name, i + 1, m.tail_seq, vg->seq);
			pv->mda = m;
			pv->mda.in_sync = false;
		} else {
			/* the on-disk copy is verified; remember its position */
			pv->mda = m;
			pv->mda.in_sync = true;
		}
	}
	check_extents(vg, rep);
	if (repair) {
		uint8_t *blob = NULL;
		size_t len;
		int r = dlvm_vg_checkpoint_blob(vg, &blob, &len, err);
		if (r)
			return r;
		for (size_t i = 0; i < vg->npv; i++) {
			struct dlvm_pv *pv = vg->pvs[i];
			if (!pv->dev || pv->mda.in_sync)
				continue;
			if (!pv->mda.valid) {
				/* unreadable header: start from the geometry in the label */
				struct dlvm_mda_header g = { .major = DLVM_FORMAT_MAJOR,
							     .minor = DLVM_FORMAT_MINOR };
				dlvm_mda_geometry(pv->hdr.mda_size, &g);
				memcpy(g.pv_uuid, pv->hdr.pv_uuid, 16);
				g.generation = pv->mda.hdr.generation;
				pv->mda.hdr = g;
				pv->mda.tail = 0;
			}
			struct dlvm_err e = { 0 };
			if (dlvm_mda_write_checkpoint(vg, pv, blob, len, &e))
				dlvm_check_report_add(rep, true, "%s: repair failed: %s",
						      pv->dev->name, e.msg);
			else {
				dlvm_check_report_add(rep, false, "%s: metadata copy %zu rewritten",
						      pv->dev->name, i + 1);
				rep->repaired++;
			}
		}
		free(blob);
	}
	return 0;
}
