/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the unit tests: error assertions, memory-device PVs and
 * VGs, small transactions, and a canonical text form of the VG model that two
 * models can be compared by.
 */
#ifndef DLVM_TEST_HELPERS_H
#define DLVM_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/dev.h"
#include "dlvm/err.h"
#include "dlvm/format.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"

#define MiB (1ull << 20)

/* expr must return want, fill e with the same code and a message holding needle. */
#define assert_err(expr, e, want, needle) \
	do { \
		dlvm_err_clear(e); \
		int r_ = (expr); \
		if (r_ != (want) || (e)->code != (want) || !strstr((e)->msg, (needle))) \
			fail_msg("%s:\n  got %d (%s), err.code %d, msg \"%s\"\n  want %d (%s) " \
				 "with \"%s\"", \
				 #expr, r_, dlvm_errno_name(r_), (e)->code, (e)->msg, (want), \
				 dlvm_errno_name(want), (needle)); \
	} while (0)

/* expr must return 0; on failure the message is shown. */
#define assert_ok(expr, e) \
	do { \
		dlvm_err_clear(e); \
		int r_ = (expr); \
		if (r_) \
			fail_msg("%s: %d (%s) \"%s\"", #expr, r_, dlvm_errno_name(r_), (e)->msg); \
	} while (0)

/* A formatted memory PV. */
static inline struct dlvm_dev *t_pv(const char *name, uint64_t size, uint32_t ss, uint64_t mda)
{
	struct dlvm_pvcreate_opts o = { .mda_size = mda };
	struct dlvm_err e = { 0 };
	struct dlvm_dev *dev = dlvm_memdev_new(name, size, ss);

	assert_non_null(dev);
	assert_ok(dlvm_pv_format(dev, &o, &e), &e);
	return dev;
}

/* A VG "vg0" on n fresh memory PVs of `size` bytes each. */
static inline struct dlvm_vg *t_vg(size_t n, uint64_t size, uint32_t ss, uint64_t mda,
				   uint64_t extent_size)
{
	struct dlvm_dev *devs[16];
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 };

	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "pv%zu", i);
		devs[i] = t_pv(name, size, ss, mda);
	}
	assert_ok(dlvm_vg_create("vg0", extent_size, devs, n, &vg, &e), &e);
	return vg;
}

/* Free vg but keep its devices: they go to devs (in PV order). Returns n. */
static inline size_t t_detach(struct dlvm_vg *vg, struct dlvm_dev **devs)
{
	size_t n = vg->npv;

	for (size_t i = 0; i < n; i++) {
		devs[i] = vg->pvs[i]->dev;
		vg->pvs[i]->dev = NULL;
	}
	dlvm_vg_free(vg);
	return n;
}

/* Power back on: clear the faults of every memdev PV of vg. */
static inline void t_heal(struct dlvm_vg *vg)
{
	for (size_t i = 0; i < vg->npv; i++)
		if (vg->pvs[i]->dev)
			dlvm_memdev_set_fault(vg->pvs[i]->dev, DLVM_FAULT_NONE, 0);
}

/* Load "vg0" from devs; fails the test on error. */
static inline struct dlvm_vg *t_load(struct dlvm_dev **devs, size_t n)
{
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_vg_load(devs, n, "vg0", &vg, &e), &e);
	for (size_t i = 0; i < n; i++)
		assert_null(devs[i]); /* moved into the VG */
	return vg;
}

/* Free vg and load it again from the same devices. */
static inline struct dlvm_vg *t_reload(struct dlvm_vg *vg)
{
	struct dlvm_dev *devs[16];
	size_t n = t_detach(vg, devs);

	return t_load(devs, n);
}

/* ---- canonical text of the model ---- */

struct t_str {
	char *s;
	size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static inline void t_add(struct t_str *b, const char *fmt,
							       ...)
{
	va_list ap;
	char tmp[1024];

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	if (b->len + (size_t)n + 1 > b->cap) {
		b->cap = (b->len + (size_t)n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		assert_non_null(b->s);
	}
	memcpy(b->s + b->len, tmp, (size_t)n + 1);
	b->len += (size_t)n;
}

static inline int t_cmp_lv(const void *a, const void *b)
{
	uint64_t x = (*(const struct dlvm_lv *const *)a)->id;
	uint64_t y = (*(const struct dlvm_lv *const *)b)->id;
	return x < y ? -1 : x > y;
}

static inline void t_add_segs(struct t_str *b, struct dlvm_seg_desc *const *segs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct dlvm_seg_desc *s = segs[i];
		t_add(b, "  seg %" PRIu64 "+%" PRIu64 " type %u stripes %u size %u:", s->le_start,
		      s->le_count, s->type, s->stripes, s->stripe_size);
		for (uint16_t k = 0; k < s->stripes; k++)
			t_add(b, " %u@%" PRIu64, s->area[k].pv_id, s->area[k].pe_start);
		t_add(b, "\n");
	}
}

/*
 * Everything the metadata stores about the VG, LVs sorted by id (the order
 * of vg->lvs depends on history), without the random UUIDs and the clock.
 * Caller frees.
 */
static inline char *t_model(const struct dlvm_vg *vg)
{
	struct t_str b = { 0 };
	const struct dlvm_vg_info *in = &vg->info;

	t_add(&b,
	      "vg %s seq %" PRIu64 " extent %" PRIu64 " flags %" PRIx64 " ro_compat %" PRIx64
	      " next_lv %" PRIu64 " next_pv %u max_lv %u\n",
	      in->name, vg->seq, in->extent_size, in->flags, in->ro_compat, in->next_lv_id,
	      in->next_pv_id, in->max_lv);
	for (size_t i = 0; i < vg->npv; i++) {
		const struct dlvm_pv *pv = vg->pvs[i];
		t_add(&b, "pv %u pe_start %" PRIu64 " pe_count %" PRIu64 " alloc %" PRIu64 " free:",
		      pv->d.id, pv->d.pe_start, pv->d.pe_count, pv->pe_alloc);
		for (size_t k = 0; k < pv->nfree; k++)
			t_add(&b, " %" PRIu64 "+%" PRIu64, pv->free[k].start, pv->free[k].count);
		t_add(&b, "\n");
	}
	struct dlvm_lv **lvs = calloc(vg->nlv ? vg->nlv : 1, sizeof(*lvs));
	assert_non_null(lvs);
	if (vg->nlv)
		memcpy(lvs, vg->lvs, vg->nlv * sizeof(*lvs));
	qsort(lvs, vg->nlv, sizeof(*lvs), t_cmp_lv);
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *lv = lvs[i];
		t_add(&b, "lv %" PRIu64 " %s flags %" PRIx64 " extents %" PRIu64 "\n", lv->id,
		      lv->name, lv->flags, lv->le_count);
		const struct dlvm_lv_thin *th = &lv->thin;
		/* only where there is something, so the plain LVs' lines stay */
		if (th->pool_id || th->origin_id || th->virtual_size || th->meta_id ||
		    th->chunk_size || th->slab_extents || lv->copy_rate || lv->nholders) {
			t_add(&b,
			      "  thin %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u "
			      "copy_rate %" PRIu64 " holders",
			      th->pool_id, th->origin_id, th->virtual_size, th->meta_id,
			      th->chunk_size, th->slab_extents, lv->copy_rate);
			for (uint32_t k = 0; k < lv->nholders; k++)
				t_add(&b, " %u/%u/%" PRIu64, lv->holders[k].host_id,
				      lv->holders[k].mode, lv->holders[k].generation);
			t_add(&b, "\n");
		}
		t_add_segs(&b, lv->segs, lv->nseg);
		for (uint32_t k = 0; k < lv->props.n; k++)
			t_add(&b, "  prop %s=%s\n", lv->props.v[k].key, lv->props.v[k].value);
	}
	free(lvs);
	for (uint32_t k = 0; k < vg->props.n; k++)
		t_add(&b, "vg prop %s=%s\n", vg->props.v[k].key, vg->props.v[k].value);
	if (!b.s)
		t_add(&b, "%s", "");
	return b.s;
}

/* Run dlvm_vg_check; returns the number of problems, all lines joined in *text
 * (caller frees; text may be NULL). */
static inline unsigned t_check(struct dlvm_vg *vg, bool repair, unsigned *repaired, char **text)
{
	struct dlvm_check_report rep;
	struct dlvm_err e = { 0 };
	struct t_str b = { 0 };

	assert_ok(dlvm_vg_check(vg, repair, &rep, &e), &e);
	t_add(&b, "%s", "");
	for (size_t i = 0; i < rep.nlines; i++)
		t_add(&b, "%s\n", rep.lines[i]);
	unsigned p = rep.problems;
	if (repaired)
		*repaired = rep.repaired;
	dlvm_check_report_release(&rep);
	if (text)
		*text = b.s;
	else
		free(b.s);
	return p;
}

/* Check must find no problem at all. */
#define assert_check_clean(vg) \
	do { \
		char *txt_; \
		unsigned p_ = t_check((vg), false, NULL, &txt_); \
		if (p_) \
			fail_msg("dlvm_vg_check: %u problems:\n%s", p_, txt_); \
		free(txt_); \
	} while (0)

/* ---- transactions of one edit ---- */

static inline int t_commit(struct dlvm_vg *vg, struct dlvm_edit *e, struct dlvm_err *err)
{
	return dlvm_txn_commit_edit(vg, e, err);
}

/* A segment with n stripes (type striped when n > 1); areas from pairs. */
static inline struct dlvm_seg_desc *t_seg(uint64_t le_start, uint64_t le_count, uint16_t n,
					  uint32_t stripe_size, const uint32_t *pv_ids,
					  const uint64_t *pe_starts)
{
	struct dlvm_seg_desc *s = calloc(1, dlvm_seg_desc_size(n));

	assert_non_null(s);
	s->le_start = le_start;
	s->le_count = le_count;
	s->type = n > 1 ? DLVM_SEG_STRIPED : DLVM_SEG_LINEAR;
	s->stripes = n;
	s->stripe_size = n > 1 ? stripe_size : 0;
	for (uint16_t k = 0; k < n; k++) {
		s->area[k].pv_id = pv_ids[k];
		s->area[k].pe_start = pe_starts[k];
	}
	return s;
}

/* Create LV `name` with the given segments (ownership taken). */
static inline int t_lv_create_segs(struct dlvm_vg *vg, const char *name,
				   struct dlvm_seg_desc **segs, uint32_t nseg, struct dlvm_err *err)
{
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_CREATE };

	e.u.lv.id = vg->info.next_lv_id;
	dlvm_uuid_generate(e.u.lv.uuid);
	snprintf(e.u.lv.name, sizeof(e.u.lv.name), "%s", name);
	e.u.lv.ctime = 1700000000;
	e.u.lv.segs = segs;
	e.u.lv.nseg = nseg;
	return t_commit(vg, &e, err);
}

/* Allocate and create LV `name`. */
static inline int t_lv_create(struct dlvm_vg *vg, const char *name, uint64_t extents,
			      uint16_t stripes, uint32_t stripe_size, struct dlvm_err *err)
{
	struct dlvm_seg_desc **segs;
	uint32_t nseg;
	int r = dlvm_alloc(vg, NULL, extents, stripes, stripe_size, NULL, 0, &segs, &nseg, err);

	if (r)
		return r;
	return t_lv_create_segs(vg, name, segs, nseg, err);
}

/* Grow lv by `extents` (allocated like lvextend does: new segments after
 * the old ones, a linear piece merged into an adjacent linear last one). */
static inline int t_lv_extend(struct dlvm_vg *vg, struct dlvm_lv *lv, uint64_t extents,
			      uint16_t stripes, uint32_t stripe_size, struct dlvm_err *err)
{
	struct dlvm_seg_desc **add, **segs;
	uint32_t nadd, n;
	int r = dlvm_alloc(vg, lv, extents, stripes, stripe_size, NULL, 0, &add, &nadd, err);

	if (r)
		return r;
	assert_int_equal(dlvm_segs_dup(lv->segs, lv->nseg, &segs), 0);
	segs = realloc(segs, (lv->nseg + nadd) * sizeof(*segs));
	assert_non_null(segs);
	n = lv->nseg;
	for (uint32_t i = 0; i < nadd; i++) {
		struct dlvm_seg_desc *last = segs[n - 1], *s = add[i];
		if (last->stripes == 1 && s->stripes == 1 &&
		    last->area[0].pv_id == s->area[0].pv_id &&
		    last->area[0].pe_start + last->le_count == s->area[0].pe_start) {
			last->le_count += s->le_count;
			free(s);
		} else {
			segs[n++] = s;
		}
	}
	free(add);
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
	e.u.lv.id = lv->id;
	e.u.lv.segs = segs;
	e.u.lv.nseg = n;
	return t_commit(vg, &e, err);
}

static inline int t_lv_remove(struct dlvm_vg *vg, const char *name, struct dlvm_err *err)
{
	struct dlvm_lv *lv = dlvm_lv_find(vg, name);
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_REMOVE };

	assert_non_null(lv);
	e.u.lv.id = lv->id;
	return t_commit(vg, &e, err);
}

/* A seeded stream of numbers (a 64-bit LCG, its upper bits): the same seed,
 * the same run. names numbers what a test names as it goes. */
struct t_gen {
	uint64_t s;
	unsigned names;
};

static inline uint32_t t_rnd(struct t_gen *g)
{
	g->s = g->s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(g->s >> 33);
}

/* Shuffle a[0..n) in place (Fisher-Yates), the same way for the same seed. */
static inline void t_shuffle_u64(uint64_t *a, uint64_t n, uint64_t seed)
{
	struct t_gen g = { .s = seed };

	for (uint64_t i = n ? n - 1 : 0; i > 0; i--) {
		uint64_t j = t_rnd(&g) % (i + 1), t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

#endif
