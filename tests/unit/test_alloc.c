/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the extent allocator (lib/meta/alloc.c) and of the free
 * range bookkeeping it relies on (dlvm_pv_take / dlvm_pv_give in apply.c).
 * PVs are 64 MiB memory devices with 1 MiB extents: 62 extents each.
 */
#include "helpers.h"

/* The segments dlvm_alloc proposes, as text; caller frees. */
static char *alloc_text(struct dlvm_vg *vg, const struct dlvm_lv *lv, uint64_t extents,
			uint16_t stripes, uint32_t ssize, const uint32_t *pvs, size_t npvs)
{
	struct dlvm_seg_desc **segs;
	uint32_t n;
	struct dlvm_err e = { 0 };
	struct t_str b = { 0 };

	assert_ok(dlvm_alloc(vg, lv, extents, stripes, ssize, pvs, npvs, &segs, &n, &e), &e);
	t_add_segs(&b, segs, n);
	dlvm_segs_free(segs, n);
	return b.s;
}

#define assert_alloc(vg, lv, extents, stripes, ssize, pvs, npvs, want) \
	do { \
		char *got_ = alloc_text((vg), (lv), (extents), (stripes), (ssize), (pvs), (npvs)); \
		assert_string_equal(got_, (want)); \
		free(got_); \
	} while (0)

static struct dlvm_vg *vg_of(size_t npv)
{
	struct dlvm_vg *vg = t_vg(npv, 64 * MiB, 512, MiB, MiB);
	for (size_t i = 0; i < npv; i++)
		assert_int_equal(vg->pvs[i]->d.pe_count, 62);
	return vg;
}

static void mk(struct dlvm_vg *vg, const char *name, uint64_t extents)
{
	struct dlvm_err e = { 0 };
	assert_ok(t_lv_create(vg, name, extents, 1, 0, &e), &e);
}

static void rm(struct dlvm_vg *vg, const char *name)
{
	struct dlvm_err e = { 0 };
	assert_ok(t_lv_remove(vg, name, &e), &e);
}

static void contiguous_best_fit(void **state)
{
	struct dlvm_vg *vg = vg_of(1);
	struct dlvm_err e = { 0 };
	(void)state;

	assert_alloc(vg, NULL, 10, 1, 0, NULL, 0, "  seg 0+10 type 1 stripes 1 size 0: 1@0\n");
	mk(vg, "a", 10);
	mk(vg, "b", 5);
	mk(vg, "c", 10);
	mk(vg, "d", 20);
	rm(vg, "b");
	/* free: 10+5 and 45+17 */
	assert_int_equal(vg->pvs[0]->nfree, 2);
	assert_alloc(vg, NULL, 4, 1, 0, NULL, 0, "  seg 0+4 type 1 stripes 1 size 0: 1@10\n");
	assert_alloc(vg, NULL, 5, 1, 0, NULL, 0, "  seg 0+5 type 1 stripes 1 size 0: 1@10\n");
	assert_alloc(vg, NULL, 6, 1, 0, NULL, 0, "  seg 0+6 type 1 stripes 1 size 0: 1@45\n");
	assert_alloc(vg, NULL, 17, 1, 0, NULL, 0, "  seg 0+17 type 1 stripes 1 size 0: 1@45\n");
	/* nothing holds 18: the largest range, then the best fit for the rest */
	assert_alloc(vg, NULL, 18, 1, 0, NULL, 0,
		     "  seg 0+17 type 1 stripes 1 size 0: 1@45\n"
		     "  seg 17+1 type 1 stripes 1 size 0: 1@10\n");
	assert_alloc(vg, NULL, 22, 1, 0, NULL, 0,
		     "  seg 0+17 type 1 stripes 1 size 0: 1@45\n"
		     "  seg 17+5 type 1 stripes 1 size 0: 1@10\n");
	struct dlvm_seg_desc **segs = NULL;
	uint32_t n = 0;
	assert_err(dlvm_alloc(vg, NULL, 23, 1, 0, NULL, 0, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: insufficient free space: 23 extents needed, but only 22 available");
	assert_err(dlvm_alloc(vg, NULL, 0, 1, 0, NULL, 0, &segs, &n, &e), &e, -EINVAL,
		   "nothing to allocate");
	/* allocation proposes, it does not change the model */
	assert_int_equal(dlvm_vg_free_extents(vg), 22);
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

static void best_fit_across_pvs(void **state)
{
	struct dlvm_vg *vg = vg_of(2);
	const uint32_t on1[] = { 1 }, on2[] = { 2 };
	struct dlvm_seg_desc **segs;
	uint32_t n;
	struct dlvm_err e = { 0 };
	(void)state;

	/* PV 1 keeps 12 free, PV 2 keeps 7 free */
	assert_ok(dlvm_alloc(vg, NULL, 50, 1, 0, on1, 1, &segs, &n, &e), &e);
	assert_ok(t_lv_create_segs(vg, "x", segs, n, &e), &e);
	assert_ok(dlvm_alloc(vg, NULL, 55, 1, 0, on2, 1, &segs, &n, &e), &e);
	assert_ok(t_lv_create_segs(vg, "y", segs, n, &e), &e);
	assert_alloc(vg, NULL, 7, 1, 0, NULL, 0, "  seg 0+7 type 1 stripes 1 size 0: 2@55\n");
	assert_alloc(vg, NULL, 8, 1, 0, NULL, 0, "  seg 0+8 type 1 stripes 1 size 0: 1@50\n");
	assert_alloc(vg, NULL, 19, 1, 0, NULL, 0,
		     "  seg 0+12 type 1 stripes 1 size 0: 1@50\n"
		     "  seg 12+7 type 1 stripes 1 size 0: 2@55\n");
	dlvm_vg_free(vg);
}

static void extend_continues_last_area(void **state)
{
	struct dlvm_vg *vg = vg_of(1);
	struct dlvm_err e = { 0 };
	(void)state;

	mk(vg, "a", 10);
	mk(vg, "g1", 10);
	mk(vg, "y", 5);
	mk(vg, "g2", 2);
	mk(vg, "z", 35);
	rm(vg, "g1");
	rm(vg, "g2");
	/* free: 10+10 right after a, and 25+2 that fits 2 best */
	struct dlvm_lv *a = dlvm_lv_find(vg, "a");
	assert_alloc(vg, NULL, 2, 1, 0, NULL, 0, "  seg 0+2 type 1 stripes 1 size 0: 1@25\n");
	assert_alloc(vg, a, 2, 1, 0, NULL, 0, "  seg 10+2 type 1 stripes 1 size 0: 1@10\n");
	/* more than fits after it: continue, then best fit for the rest */
	assert_alloc(vg, a, 12, 1, 0, NULL, 0,
		     "  seg 10+10 type 1 stripes 1 size 0: 1@10\n"
		     "  seg 20+2 type 1 stripes 1 size 0: 1@25\n");
	assert_ok(t_lv_extend(vg, a, 4, 1, 0, &e), &e);
	a = dlvm_lv_find(vg, "a");
	assert_int_equal(a->nseg, 1); /* merged with the first area */
	assert_int_equal(a->le_count, 14);
	/* the rest of the old gap still follows a's area */
	assert_alloc(vg, a, 1, 1, 0, NULL, 0, "  seg 14+1 type 1 stripes 1 size 0: 1@14\n");
	/* the extents after y are used: an extend of y goes elsewhere */
	struct dlvm_lv *y = dlvm_lv_find(vg, "y");
	assert_alloc(vg, y, 2, 1, 0, NULL, 0, "  seg 5+2 type 1 stripes 1 size 0: 1@25\n");
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

static void striped_on_distinct_pvs(void **state)
{
	struct dlvm_vg *vg = vg_of(3);
	struct dlvm_err e = { 0 };
	struct dlvm_seg_desc **segs = NULL;
	uint32_t n = 0;
	const uint32_t on1[] = { 1 };
	(void)state;

	assert_alloc(vg, NULL, 12, 3, 65536, NULL, 0,
		     "  seg 0+12 type 2 stripes 3 size 65536: 1@0 2@0 3@0\n");
	/* the PVs with the most free space are used first */
	assert_ok(dlvm_alloc(vg, NULL, 10, 1, 0, on1, 1, &segs, &n, &e), &e);
	assert_ok(t_lv_create_segs(vg, "lin", segs, n, &e), &e);
	assert_alloc(vg, NULL, 8, 2, 131072, NULL, 0,
		     "  seg 0+8 type 2 stripes 2 size 131072: 2@0 3@0\n");
	assert_alloc(vg, NULL, 6, 3, 65536, NULL, 0,
		     "  seg 0+6 type 2 stripes 3 size 65536: 2@0 3@0 1@10\n");
	assert_ok(t_lv_create(vg, "st", 6, 3, 65536, &e), &e);
	struct dlvm_lv *st = dlvm_lv_find(vg, "st");
	assert_int_equal(vg->pvs[0]->pe_alloc, 12);
	assert_int_equal(vg->pvs[1]->pe_alloc, 2);
	assert_int_equal(vg->pvs[2]->pe_alloc, 2);
	/* extending a striped LV adds a striped segment after it */
	assert_alloc(vg, st, 3, 3, 65536, NULL, 0,
		     "  seg 6+3 type 2 stripes 3 size 65536: 2@2 3@2 1@12\n");

	assert_err(dlvm_alloc(vg, NULL, 8, 4, 65536, NULL, 0, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: 4 stripes need 4 PVs, the VG has 3 usable");
	assert_err(dlvm_alloc(vg, NULL, 10, 3, 65536, NULL, 0, &segs, &n, &e), &e, -EINVAL,
		   "10 extents are not a multiple of 3 stripes");
	/* 3 x 51 extents fit in the VG (170 free), but PV 1 has only 50 in a row */
	assert_err(dlvm_alloc(vg, NULL, 153, 3, 65536, NULL, 0, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: cannot find 3 PVs with 51 contiguous free extents each");
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

static void fragmented(void **state)
{
	struct dlvm_vg *vg = vg_of(1);
	struct dlvm_err e = { 0 };
	struct dlvm_seg_desc **segs = NULL;
	uint32_t n = 0;
	char name[16];
	(void)state;

	for (int i = 0; i < 31; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		mk(vg, name, 2);
	}
	assert_int_equal(dlvm_vg_free_extents(vg), 0);
	for (int i = 0; i < 31; i += 2) {
		snprintf(name, sizeof(name), "f%d", i);
		rm(vg, name);
	}
	/* 16 free ranges of 2 extents: 0, 4, 8, ... 60 */
	assert_int_equal(vg->pvs[0]->nfree, 16);
	assert_int_equal(dlvm_vg_free_extents(vg), 32);
	assert_alloc(vg, NULL, 10, 1, 0, NULL, 0,
		     "  seg 0+2 type 1 stripes 1 size 0: 1@0\n"
		     "  seg 2+2 type 1 stripes 1 size 0: 1@4\n"
		     "  seg 4+2 type 1 stripes 1 size 0: 1@8\n"
		     "  seg 6+2 type 1 stripes 1 size 0: 1@12\n"
		     "  seg 8+2 type 1 stripes 1 size 0: 1@16\n");
	assert_ok(t_lv_create(vg, "big", 10, 1, 0, &e), &e);
	assert_int_equal(dlvm_lv_find(vg, "big")->nseg, 5);
	assert_int_equal(dlvm_lv_find(vg, "big")->le_count, 10);
	assert_err(dlvm_alloc(vg, NULL, 23, 1, 0, NULL, 0, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: insufficient free space: 23 extents needed, but only 22 available");
	assert_ok(t_lv_extend(vg, dlvm_lv_find(vg, "big"), 22, 1, 0, &e), &e);
	assert_int_equal(dlvm_lv_find(vg, "big")->nseg, 16);
	assert_int_equal(dlvm_vg_free_extents(vg), 0);
	assert_int_equal(vg->pvs[0]->nfree, 0);
	assert_check_clean(vg);
	/* striped needs contiguous areas: fragments do not do */
	dlvm_vg_free(vg);

	vg = vg_of(2);
	for (int i = 0; i < 31; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		mk(vg, name, 2);
	}
	for (int i = 0; i < 31; i += 2) {
		snprintf(name, sizeof(name), "f%d", i);
		rm(vg, name);
	}
	assert_int_equal(vg->pvs[0]->nfree, 16);
	assert_alloc(vg, NULL, 4, 2, 65536, NULL, 0,
		     "  seg 0+4 type 2 stripes 2 size 65536: 2@0 1@0\n");
	assert_err(dlvm_alloc(vg, NULL, 6, 2, 65536, NULL, 0, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: cannot find 2 PVs with 3 contiguous free extents each");
	dlvm_vg_free(vg);
}

static void full(void **state)
{
	struct dlvm_vg *vg = vg_of(2);
	struct dlvm_err e = { 0 };
	struct dlvm_seg_desc **segs = NULL;
	uint32_t n = 0;
	(void)state;

	assert_err(dlvm_alloc(vg, NULL, 125, 1, 0, NULL, 0, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: insufficient free space: 125 extents needed, but only 124 available");
	assert_alloc(vg, NULL, 124, 1, 0, NULL, 0,
		     "  seg 0+62 type 1 stripes 1 size 0: 1@0\n"
		     "  seg 62+62 type 1 stripes 1 size 0: 2@0\n");
	assert_ok(t_lv_create(vg, "all", 124, 1, 0, &e), &e);
	assert_int_equal(dlvm_vg_free_extents(vg), 0);
	assert_err(dlvm_alloc(vg, NULL, 1, 1, 0, NULL, 0, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: insufficient free space: 1 extents needed, but only 0 available");
	assert_err(t_lv_extend(vg, dlvm_lv_find(vg, "all"), 2, 2, 65536, &e), &e, -ENOSPC,
		   "2 extents needed, but only 0 available");
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

static void pv_restriction(void **state)
{
	struct dlvm_vg *vg = vg_of(3);
	struct dlvm_err e = { 0 };
	struct dlvm_seg_desc **segs = NULL;
	uint32_t n = 0;
	const uint32_t on3[] = { 3 }, on23[] = { 2, 3 }, on9[] = { 9 }, on1[] = { 1 };
	(void)state;

	assert_alloc(vg, NULL, 5, 1, 0, on3, 1, "  seg 0+5 type 1 stripes 1 size 0: 3@0\n");
	assert_alloc(vg, NULL, 70, 1, 0, on23, 2,
		     "  seg 0+62 type 1 stripes 1 size 0: 2@0\n"
		     "  seg 62+8 type 1 stripes 1 size 0: 3@0\n");
	assert_alloc(vg, NULL, 4, 2, 65536, on23, 2,
		     "  seg 0+4 type 2 stripes 2 size 65536: 2@0 3@0\n");
	assert_err(dlvm_alloc(vg, NULL, 5, 1, 0, on9, 1, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: insufficient free space: 5 extents needed, but only 0 available");
	assert_err(dlvm_alloc(vg, NULL, 63, 1, 0, on1, 1, &segs, &n, &e), &e, -ENOSPC,
		   "63 extents needed, but only 62 available");
	assert_err(dlvm_alloc(vg, NULL, 4, 2, 65536, on1, 1, &segs, &n, &e), &e, -ENOSPC,
		   "vg0: 2 stripes need 2 PVs, the VG has 1 usable");
	/* a missing PV is never allocated from */
	struct dlvm_dev *keep = vg->pvs[0]->dev;
	vg->pvs[0]->dev = NULL;
	assert_alloc(vg, NULL, 3, 1, 0, NULL, 0, "  seg 0+3 type 1 stripes 1 size 0: 2@0\n");
	assert_err(dlvm_alloc(vg, NULL, 125, 1, 0, NULL, 0, &segs, &n, &e), &e, -ENOSPC,
		   "125 extents needed, but only 124 available");
	assert_err(dlvm_alloc(vg, NULL, 3, 1, 0, on1, 1, &segs, &n, &e), &e, -ENOSPC,
		   "3 extents needed, but only 0 available");
	vg->pvs[0]->dev = keep;
	dlvm_vg_free(vg);
}

/* ---- free ranges ---- */

static void assert_ranges(const struct dlvm_pv *pv, const char *want, uint64_t alloc)
{
	struct t_str b = { 0 };

	t_add(&b, "%s", "");
	for (size_t i = 0; i < pv->nfree; i++)
		t_add(&b, "%s%" PRIu64 "+%" PRIu64, i ? " " : "", pv->free[i].start,
		      pv->free[i].count);
	assert_string_equal(b.s, want);
	assert_int_equal(pv->pe_alloc, alloc);
	free(b.s);
}

static void take_give(void **state)
{
	struct dlvm_pv pv = { 0 };
	(void)state;

	pv.d.pe_count = 100;
	pv.pe_alloc = 100; /* all in use, no free range */
	assert_int_equal(dlvm_pv_give(&pv, 0, 100), 0);
	assert_ranges(&pv, "0+100", 0);

	/* split in the middle, cut at either end */
	assert_int_equal(dlvm_pv_take(&pv, 10, 5), 0);
	assert_ranges(&pv, "0+10 15+85", 5);
	assert_int_equal(dlvm_pv_take(&pv, 0, 2), 0);
	assert_ranges(&pv, "2+8 15+85", 7);
	assert_int_equal(dlvm_pv_take(&pv, 95, 5), 0);
	assert_ranges(&pv, "2+8 15+80", 12);

	/* double use: -EBADMSG, nothing changes */
	assert_int_equal(dlvm_pv_take(&pv, 12, 1), -EBADMSG);
	assert_int_equal(dlvm_pv_take(&pv, 8, 4), -EBADMSG);
	assert_int_equal(dlvm_pv_take(&pv, 10, 1), -EBADMSG);
	assert_int_equal(dlvm_pv_take(&pv, 14, 2), -EBADMSG);
	assert_int_equal(dlvm_pv_take(&pv, 0, 1), -EBADMSG);
	assert_int_equal(dlvm_pv_take(&pv, 90, 6), -EBADMSG);
	/* double free */
	assert_int_equal(dlvm_pv_give(&pv, 5, 1), -EBADMSG);
	assert_int_equal(dlvm_pv_give(&pv, 8, 4), -EBADMSG);
	assert_int_equal(dlvm_pv_give(&pv, 12, 4), -EBADMSG);
	assert_int_equal(dlvm_pv_give(&pv, 0, 3), -EBADMSG);
	assert_int_equal(dlvm_pv_give(&pv, 94, 2), -EBADMSG);
	assert_int_equal(dlvm_pv_give(&pv, 0, 100), -EBADMSG);
	/* out of range */
	assert_int_equal(dlvm_pv_take(&pv, 96, 5), -ERANGE);
	assert_int_equal(dlvm_pv_take(&pv, 100, 1), -ERANGE);
	assert_int_equal(dlvm_pv_take(&pv, 20, 0), -ERANGE);
	assert_int_equal(dlvm_pv_take(&pv, UINT64_MAX, 2), -ERANGE);
	assert_int_equal(dlvm_pv_give(&pv, 99, 2), -ERANGE);
	assert_int_equal(dlvm_pv_give(&pv, 10, 0), -ERANGE);
	assert_int_equal(dlvm_pv_give(&pv, 2, UINT64_MAX), -ERANGE);
	assert_ranges(&pv, "2+8 15+80", 12);

	/* give back: merge with the range before, after, both, or none */
	assert_int_equal(dlvm_pv_give(&pv, 10, 2), 0);
	assert_ranges(&pv, "2+10 15+80", 10);
	assert_int_equal(dlvm_pv_give(&pv, 13, 2), 0);
	assert_ranges(&pv, "2+10 13+82", 8);
	assert_int_equal(dlvm_pv_give(&pv, 12, 1), 0);
	assert_ranges(&pv, "2+93", 7);
	assert_int_equal(dlvm_pv_give(&pv, 96, 3), 0);
	assert_ranges(&pv, "2+93 96+3", 4);
	assert_int_equal(dlvm_pv_give(&pv, 0, 1), 0);
	assert_ranges(&pv, "0+1 2+93 96+3", 3);
	assert_int_equal(dlvm_pv_give(&pv, 99, 1), 0);
	assert_ranges(&pv, "0+1 2+93 96+4", 2);
	assert_int_equal(dlvm_pv_give(&pv, 95, 1), 0);
	assert_ranges(&pv, "0+1 2+98", 1);
	assert_int_equal(dlvm_pv_give(&pv, 1, 1), 0);
	assert_ranges(&pv, "0+100", 0);

	/* many small ranges, then take them all exactly */
	for (uint64_t s = 0; s < 100; s++)
		assert_int_equal(dlvm_pv_take(&pv, s, 1), 0);
	assert_ranges(&pv, "", 100);
	for (uint64_t s = 0; s < 100; s += 2)
		assert_int_equal(dlvm_pv_give(&pv, s, 1), 0);
	assert_int_equal(pv.nfree, 50);
	assert_int_equal(pv.pe_alloc, 50);
	for (uint64_t s = 1; s < 100; s += 2)
		assert_int_equal(dlvm_pv_give(&pv, s, 1), 0);
	assert_ranges(&pv, "0+100", 0);
	free(pv.free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(contiguous_best_fit),
		cmocka_unit_test(best_fit_across_pvs),
		cmocka_unit_test(extend_continues_last_area),
		cmocka_unit_test(striped_on_distinct_pvs),
		cmocka_unit_test(fragmented),
		cmocka_unit_test(full),
		cmocka_unit_test(pv_restriction),
		cmocka_unit_test(take_give),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
