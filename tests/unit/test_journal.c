/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the metadata journal (lib/meta/journal.c, vg.c, check.c):
 * replay, torn records, power loss after every possible write, ring wrap and
 * checkpoints, and two metadata copies where one is stale, damaged or
 * failing.
 */
#include "helpers.h"
#include "lib/meta/meta.h"

/* ---- a deterministic stream of changes ---- */

/* The k-th LV in id order (vg->lvs order depends on history). */
static struct dlvm_lv *nth_lv(const struct dlvm_vg *vg, size_t k)
{
	struct dlvm_lv *best = NULL;

	for (size_t i = 0; i < vg->nlv; i++) {
		size_t below = 0;
		for (size_t j = 0; j < vg->nlv; j++)
			below += vg->lvs[j]->id < vg->lvs[i]->id;
		if (below == k)
			best = vg->lvs[i];
	}
	assert_non_null(best);
	return best;
}

/* One random change committed as one transaction: create, extend, remove,
 * rename, set flags, or several edits at once. Returns the commit's result. */
static int random_change(struct dlvm_vg *vg, struct t_gen *g, struct dlvm_err *err)
{
	unsigned op = t_rnd(g) % 10;
	char name[32];
	int r;

	if (vg->nlv < 3)
		op = 0;
	if (op <= 3) {
		uint16_t st = vg->npv > 1 && t_rnd(g) % 3 == 0 ? 2 : 1;
		snprintf(name, sizeof(name), "lv%u", g->names++);
		dlvm_err_clear(err);
		r = t_lv_create(vg, name, (1 + t_rnd(g) % 3) * st, st, 65536, err);
		if (r != -ENOSPC)
			return r;
		op = 6;
	}
	if (op <= 5) {
		struct dlvm_lv *lv = nth_lv(vg, t_rnd(g) % vg->nlv);
		const struct dlvm_seg_desc *last = lv->segs[lv->nseg - 1];
		dlvm_err_clear(err);
		r = t_lv_extend(vg, lv, (1 + t_rnd(g) % 2) * last->stripes, last->stripes,
				last->stripe_size, err);
		if (r != -ENOSPC)
			return r;
		op = 6;
	}
	dlvm_err_clear(err);
	struct dlvm_lv *lv = nth_lv(vg, t_rnd(g) % vg->nlv);
	struct dlvm_edit e = { 0 };
	switch (op) {
	case 6: return t_lv_remove(vg, lv->name, err);
	case 7:
		e.type = DLVM_EDIT_LV_RENAME;
		e.u.lv.id = lv->id;
		snprintf(e.u.lv.name, sizeof(e.u.lv.name), "r%u", g->names++);
		return t_commit(vg, &e, err);
	case 8:
		e.type = DLVM_EDIT_LV_SET_FLAGS;
		e.u.lv.id = lv->id;
		e.u.lv.flags = lv->flags ^ DLVM_LV_READONLY;
		return t_commit(vg, &e, err);
	default: {
		/* three edits in one transaction */
		struct dlvm_lv *other = nth_lv(vg, t_rnd(g) % vg->nlv);
		struct dlvm_txn t;
		dlvm_txn_init(&t);
		e.type = DLVM_EDIT_LV_RENAME;
		e.u.lv.id = lv->id;
		snprintf(e.u.lv.name, sizeof(e.u.lv.name), "m%u", g->names++);
		dlvm_txn_add(&t, &e);
		e = (struct dlvm_edit){ .type = DLVM_EDIT_LV_SET_FLAGS };
		e.u.lv.id = other->id;
		e.u.lv.flags = 0x100 | (other->flags ^ DLVM_LV_READONLY);
		dlvm_txn_add(&t, &e);
		e = (struct dlvm_edit){ .type = DLVM_EDIT_LV_SET_FLAGS };
		e.u.lv.id = lv->id;
		e.u.lv.flags = lv->flags | 0x200;
		dlvm_txn_add(&t, &e);
		r = dlvm_txn_commit(vg, &t, err);
		dlvm_txn_release(&t);
		return r;
	}
	}
}

static void changes(struct dlvm_vg *vg, struct t_gen *g, int n)
{
	struct dlvm_err e = { 0 };

	for (int i = 0; i < n; i++)
		assert_ok(random_change(vg, g, &e), &e);
}

/* Model text of vg and of vg reloaded must be equal; returns the reloaded VG. */
static struct dlvm_vg *reload_same(struct dlvm_vg *vg)
{
	char *before = t_model(vg);
	vg = t_reload(vg);
	char *after = t_model(vg);
	assert_string_equal(after, before);
	free(before);
	free(after);
	return vg;
}

static struct dlvm_vg *load_from(struct dlvm_vg *vg, size_t keep, char **model);

/* ---- replay ---- */

static void reload_after_commits(uint32_t ss, size_t npv)
{
	struct dlvm_vg *vg = t_vg(npv, 256 * MiB, ss, 0, 4 * MiB);
	struct t_gen g = { .s = 1 };

	assert_int_equal(vg->seq, 1);
	assert_int_equal(vg->pvs[0]->hdr.sector_size, ss);
	vg = reload_same(vg);
	for (int round = 0; round < 4; round++) {
		changes(vg, &g, 100);
		vg = reload_same(vg);
		assert_check_clean(vg);
	}
	assert_int_equal(vg->seq, 401);
	for (size_t i = 0; i < npv; i++) {
		assert_true(vg->pvs[i]->mda.valid);
		assert_true(vg->pvs[i]->mda.in_sync);
		assert_int_equal(vg->pvs[i]->mda.tail_seq, 401);
	}
	assert_true(vg->nlv > 3);
	/* the reloaded VG takes more changes and still replays */
	changes(vg, &g, 30);
	vg = reload_same(vg);
	assert_int_equal(vg->seq, 431);
	dlvm_vg_free(vg);
}

static void reload_512(void **state)
{
	(void)state;
	reload_after_commits(512, 1);
	reload_after_commits(512, 2);
}

static void reload_4096(void **state)
{
	(void)state;
	reload_after_commits(4096, 1);
	reload_after_commits(4096, 3);
}

static void reload_exact_lvs(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 256 * MiB, 512, 0, 4 * MiB);
	struct dlvm_err e = { 0 };
	(void)state;

	assert_ok(t_lv_create(vg, "a", 5, 1, 0, &e), &e);
	assert_ok(t_lv_create(vg, "b", 8, 2, 65536, &e), &e);
	assert_ok(t_lv_extend(vg, dlvm_lv_find(vg, "a"), 3, 1, 0, &e), &e);
	assert_ok(t_lv_create(vg, "c", 1, 1, 0, &e), &e);
	assert_ok(t_lv_extend(vg, dlvm_lv_find(vg, "a"), 2, 1, 0, &e), &e);
	assert_ok(t_lv_remove(vg, "c", &e), &e);
	vg = t_reload(vg);
	assert_int_equal(vg->seq, 7);
	assert_int_equal(vg->nlv, 2);
	struct dlvm_lv *a = dlvm_lv_find(vg, "a"), *b = dlvm_lv_find(vg, "b");
	assert_non_null(a);
	assert_non_null(b);
	assert_null(dlvm_lv_find(vg, "c"));
	assert_int_equal(a->id, 1);
	assert_int_equal(b->id, 2);
	assert_int_equal(vg->info.next_lv_id, 4);
	assert_int_equal(a->le_count, 10);
	assert_int_equal(b->le_count, 8);
	assert_int_equal(b->nseg, 1);
	assert_int_equal(b->segs[0]->stripes, 2);
	assert_int_equal(b->segs[0]->stripe_size, 65536);
	assert_int_not_equal(b->segs[0]->area[0].pv_id, b->segs[0]->area[1].pv_id);
	/* a starts on PV 1 (best fit, first of two equal PVs); b's stripes go to
	 * the PV with most free space first; a's extends cannot continue in place
	 * because b and then c took the extents after it */
	char *m = t_model(vg);
	assert_string_equal(m, "vg vg0 seq 7 extent 4194304 flags 0 ro_compat 0 next_lv 4 next_pv "
			       "3 max_lv 0\n"
			       "pv 1 pe_start 17825792 pe_count 59 alloc 14 free: 12+1 15+44\n"
			       "pv 2 pe_start 17825792 pe_count 59 alloc 4 free: 4+55\n"
			       "lv 1 a flags 0 extents 10\n"
			       "  seg 0+5 type 1 stripes 1 size 0: 1@0\n"
			       "  seg 5+3 type 1 stripes 1 size 0: 1@9\n"
			       "  seg 8+2 type 1 stripes 1 size 0: 1@13\n"
			       "lv 2 b flags 0 extents 8\n"
			       "  seg 0+8 type 2 stripes 2 size 65536: 2@0 1@5\n");
	free(m);
	assert_int_equal(vg->pvs[0]->pe_alloc + vg->pvs[1]->pe_alloc, 18);
	assert_int_equal(dlvm_vg_free_extents(vg), dlvm_vg_total_extents(vg) - 18);
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

/* ---- torn record ---- */

/* A transaction of n SET_FLAGS edits: 24 bytes each, so it spans sectors. */
static int big_txn(struct dlvm_vg *vg, size_t n, uint64_t flags, struct dlvm_err *err)
{
	struct dlvm_txn t;
	int r;

	dlvm_txn_init(&t);
	for (size_t i = 0; i < n; i++) {
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_FLAGS };
		e.u.lv.id = vg->lvs[i % vg->nlv]->id;
		e.u.lv.flags = flags;
		dlvm_txn_add(&t, &e);
	}
	r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	return r;
}

static void torn_record(uint32_t ss)
{
	struct dlvm_vg *vg = t_vg(1, 64 * MiB, ss, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 7 };

	changes(vg, &g, 20);
	char *old = t_model(vg);
	struct dlvm_pv *pv = vg->pvs[0];
	uint64_t tail = pv->mda.tail;
	uint64_t rec_abs = pv->hdr.mda_offset + pv->mda.hdr.ring_offset + tail;
	/* 300 edits: 7 KiB, more than one sector of either size */
	dlvm_memdev_set_fault(pv->dev, DLVM_FAULT_TEAR, 0);
	assert_ok(big_txn(vg, 300, 0x40, &e), &e);
	/* the first sector of the record reached the disk, the rest did not */
	const uint8_t *disk = dlvm_memdev_data(pv->dev);
	assert_memory_equal(disk + rec_abs, DLVM_REC_MAGIC, 8);
	assert_int_equal(dlvm_get_le64(disk + rec_abs + 32), 22);
	assert_int_equal(disk[rec_abs + ss + 8], 0);

	t_heal(vg);
	vg = t_reload(vg);
	char *now = t_model(vg);
	assert_string_equal(now, old);
	free(now);
	assert_int_equal(vg->seq, 21);
	assert_int_equal(vg->pvs[0]->mda.tail, tail);
	assert_check_clean(vg);

	/* the next commit overwrites the torn record and replays */
	assert_ok(big_txn(vg, 300, 0x80, &e), &e);
	assert_int_equal(vg->seq, 22);
	vg = reload_same(vg);
	assert_int_equal(vg->seq, 22);
	assert_int_equal(vg->lvs[0]->flags, 0x80);
	changes(vg, &g, 5);
	vg = reload_same(vg);
	assert_check_clean(vg);
	free(old);
	dlvm_vg_free(vg);
}

static void torn_record_512(void **state)
{
	(void)state;
	torn_record(512);
}

static void torn_record_4096(void **state)
{
	(void)state;
	torn_record(4096);
}

/*
 * A record damaged in the middle of the journal (intact records follow it)
 * is corruption, not the journal's end: the copy is refused rather than
 * replayed up to the damage, which would lose committed changes and let a
 * later commit chain onto the old records behind it.
 */
static struct dlvm_vg *corrupt_mid_journal(size_t npv, char **want, uint64_t *rec_abs)
{
	struct dlvm_vg *vg = t_vg(npv, 64 * MiB, 512, MiB, MiB);
	struct t_gen g = { .s = 3 };

	changes(vg, &g, 10);
	struct dlvm_pv *pv = vg->pvs[0];
	*rec_abs = pv->hdr.mda_offset + pv->mda.hdr.ring_offset + pv->mda.tail;
	changes(vg, &g, 5);
	*want = t_model(vg);
	dlvm_memdev_data(pv->dev)[*rec_abs + DLVM_BLOB_HEADER_SIZE + 2] ^= 0x10;
	return vg;
}

static void corrupt_record_single_copy(void **state)
{
	struct dlvm_dev *devs[1];
	struct dlvm_vg *vg;
	struct dlvm_err e = { 0 };
	uint64_t rec_abs;
	char *want, msg[160];
	(void)state;

	vg = corrupt_mid_journal(1, &want, &rec_abs);
	free(want);
	t_detach(vg, devs);
	snprintf(msg, sizeof(msg),
		 "no readable metadata copy: pv0: journal record 12 at offset "
		 "%" PRIu64 " is damaged but record 13 follows it",
		 rec_abs);
	vg = NULL;
	assert_err(dlvm_vg_load(devs, 1, "vg0", &vg, &e), &e, -EBADMSG, msg);
	assert_null(vg);
	assert_non_null(devs[0]); /* still the caller's */
	dlvm_dev_close(devs[0]);
}

static void corrupt_record_other_copy_serves(void **state)
{
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 4, .names = 1000 };
	uint64_t rec_abs;
	char *want, *txt, msg[200];
	unsigned repaired;
	(void)state;

	struct dlvm_vg *vg = corrupt_mid_journal(2, &want, &rec_abs);
	vg = t_reload(vg);
	char *got = t_model(vg);
	assert_string_equal(got, want);
	free(got);
	free(want);
	assert_int_equal(vg->seq, 16);
	assert_false(vg->pvs[0]->mda.valid);
	snprintf(msg, sizeof(msg),
		 "pv0: journal record 12 at offset %" PRIu64 " is damaged but "
		 "record 13 follows it",
		 rec_abs);
	assert_non_null(strstr(vg->pvs[0]->mda.problem, msg));
	assert_int_equal(t_check(vg, false, NULL, &txt), 1);
	snprintf(msg, sizeof(msg),
		 "pv0: metadata copy 1 at offset 8192: journal record 12 at "
		 "offset %" PRIu64 " is damaged but record 13 follows it\n",
		 rec_abs);
	assert_string_equal(txt, msg);
	free(txt);
	/* changes go on in the good copy; repair rewrites the damaged one */
	assert_ok(random_change(vg, &g, &e), &e);
	assert_int_equal(t_check(vg, true, &repaired, NULL), 1);
	assert_int_equal(repaired, 1);
	assert_check_clean(vg);
	assert_ok(random_change(vg, &g, &e), &e);
	vg = reload_same(vg);
	assert_int_equal(vg->seq, 18);
	assert_check_clean(vg);
	char *full = t_model(vg), *one;
	vg = load_from(vg, 0, &one);
	assert_string_equal(one, full);
	free(one);
	free(full);
	dlvm_vg_free(vg);
}

/* ---- power loss after every write ---- */

/*
 * Devices sharing one power supply: after `left` more writes, the next write
 * is lost (or, with tear, only its first sector lands) and so is every write
 * after it, on every device. With cache, each device caches its writes until
 * a flush (dlvm_memdev_set_cache), and the power may also go at the flush
 * that follows write `left`: the cached writes then land in part.
 */
struct power {
	long left; /* < 0: no fault armed */
	bool tear, dead;
	long writes;
	uint64_t cache; /* 0: no cache; else the seed of the caches */
	struct dlvm_dev *inner[4];
	size_t ninner;
};

static void power_off(struct power *pw)
{
	pw->dead = true;
	for (size_t i = 0; pw->cache && i < pw->ninner; i++) {
		dlvm_memdev_power_off(pw->inner[i]);
		dlvm_memdev_set_fault(pw->inner[i], DLVM_FAULT_NONE, 0); /* back on */
	}
}

struct pwdev {
	struct dlvm_dev *inner;
	struct power *pw;
};

static int pw_pread(struct dlvm_dev *d, void *buf, size_t len, uint64_t off)
{
	struct pwdev *p = d->priv;
	return p->inner->ops->pread(p->inner, buf, len, off);
}

static int pw_pwrite(struct dlvm_dev *d, const void *buf, size_t len, uint64_t off)
{
	struct pwdev *p = d->priv;
	struct power *pw = p->pw;

	if (pw->dead)
		return 0;
	if (pw->left == 0) {
		int r = 0;
		if (pw->tear)
			r = p->inner->ops->pwrite(p->inner, buf, DLVM_MIN(len, d->sector_size),
						  off);
		power_off(pw);
		return r;
	}
	if (pw->left > 0)
		pw->left--;
	pw->writes++;
	return p->inner->ops->pwrite(p->inner, buf, len, off);
}

static int pw_flush(struct dlvm_dev *d)
{
	struct pwdev *p = d->priv;

	if (p->pw->dead)
		return 0;
	if (p->pw->left == 0 && p->pw->cache) {
		power_off(p->pw);
		return 0;
	}
	return p->inner->ops->flush(p->inner);
}

static void pw_close(struct dlvm_dev *d)
{
	struct pwdev *p = d->priv;
	dlvm_dev_close(p->inner);
	free(p);
}

static const struct dlvm_dev_ops pw_ops = {
	.pread = pw_pread,
	.pwrite = pw_pwrite,
	.flush = pw_flush,
	.close = pw_close,
};

static struct dlvm_dev *pw_dev(const char *name, uint32_t ss, struct power *pw)
{
	struct dlvm_dev *d = calloc(1, sizeof(*d));
	struct pwdev *p = calloc(1, sizeof(*p));

	assert_non_null(d);
	assert_non_null(p);
	p->inner = dlvm_memdev_new(name, 24 * MiB, ss);
	assert_non_null(p->inner);
	assert_true(pw->ninner < 4);
	pw->inner[pw->ninner++] = p->inner;
	p->pw = pw;
	d->ops = &pw_ops;
	d->priv = p;
	d->fd = -1;
	d->size = p->inner->size;
	d->sector_size = ss;
	d->path = strdup(name);
	d->name = strdup(name);
	return d;
}

enum { WIN_MAX = 200 };

struct window {
	uint32_t ss;
	size_t npv;
	int prefix;    /* changes before the window */
	int steps;     /* steps in the window; step steps-3 is a checkpoint */
	long fault_at; /* lose power at this write of the window; -1: never */
	bool tear;
	uint64_t cache; /* write caches with this seed; 0: none */
	/* results */
	char *states[WIN_MAX + 1]; /* model after each step (0: before the first) */
	long writes[WIN_MAX + 1];  /* writes of the window up to the end of a step */
	bool auto_ckpt, wrapped;   /* the window held an automatic checkpoint, a wrap */
	struct t_gen g;            /* the change stream, continued by find_events */
};

static struct dlvm_vg *run_window(struct window *w, struct power *pw)
{
	struct dlvm_dev *devs[4];
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 };
	struct dlvm_pvcreate_opts o = { .mda_size = MiB };
	struct t_gen *g = &w->g;

	assert_true(w->steps <= WIN_MAX);
	*pw = (struct power){ .left = -1 };
	for (size_t i = 0; i < w->npv; i++) {
		char name[16];
		snprintf(name, sizeof(name), "pv%zu", i);
		devs[i] = pw_dev(name, w->ss, pw);
		assert_ok(dlvm_pv_format(devs[i], &o, &e), &e);
	}
	assert_ok(dlvm_vg_create("vg0", MiB, devs, w->npv, &vg, &e), &e);
	*g = (struct t_gen){ .s = 12345 };
	changes(vg, g, w->prefix);

	w->states[0] = t_model(vg);
	w->writes[0] = 0;
	w->auto_ckpt = w->wrapped = false;
	long base = pw->writes;
	pw->left = w->fault_at;
	pw->tear = w->tear;
	pw->cache = w->cache;
	for (size_t i = 0; w->cache && i < pw->ninner; i++)
		dlvm_memdev_set_cache(pw->inner[i], w->cache + i);
	for (int s = 1; s <= w->steps; s++) {
		uint64_t gen = vg->pvs[0]->mda.hdr.generation, tail = vg->pvs[0]->mda.tail;
		if (s == w->steps - 3) {
			assert_ok(dlvm_vg_checkpoint(vg, false, &e), &e);
		} else {
			assert_ok(random_change(vg, g, &e), &e);
			w->auto_ckpt |= vg->pvs[0]->mda.hdr.generation != gen;
		}
		w->wrapped |= vg->pvs[0]->mda.tail < tail;
		w->states[s] = t_model(vg);
		w->writes[s] = pw->writes - base;
	}
	return vg;
}

static void window_free(struct window *w)
{
	for (int s = 0; s <= w->steps; s++) {
		free(w->states[s]);
		w->states[s] = NULL;
	}
}

/* Commits (without explicit checkpoints) until the first automatic
 * checkpoint and the first wrap of pvs[0]'s ring. */
static void find_events(uint32_t ss, size_t npv, int *ckpt_at, int *wrap_at)
{
	struct window w = { .ss = ss, .npv = npv, .prefix = 0, .steps = 0, .fault_at = -1 };
	struct power pw;
	struct dlvm_vg *vg = run_window(&w, &pw);
	struct dlvm_err e = { 0 };

	*ckpt_at = *wrap_at = -1;
	for (int i = 1; i <= 2000 && (*ckpt_at < 0 || *wrap_at < 0); i++) {
		uint64_t gen = vg->pvs[0]->mda.hdr.generation, tail = vg->pvs[0]->mda.tail;
		assert_ok(random_change(vg, &w.g, &e), &e);
		if (*ckpt_at < 0 && vg->pvs[0]->mda.hdr.generation != gen)
			*ckpt_at = i;
		if (*wrap_at < 0 && vg->pvs[0]->mda.tail < tail)
			*wrap_at = i;
	}
	assert_true(*ckpt_at > 0);
	assert_true(*wrap_at > 0);
	window_free(&w);
	dlvm_vg_free(vg);
}

/*
 * Lose power at every write of the window in turn. After power comes back
 * the VG loads at the state before or after the interrupted step, and check
 * finds nothing wrong (with two copies, at most the copy that missed the
 * last record is stale, and the next commit brings it up to date).
 */
static void power_loss_window_cached(uint32_t ss, size_t npv, int prefix, int steps, bool tear,
				     bool want_ckpt, bool want_wrap, unsigned seeds)
{
	struct window ref = { .ss = ss,
			      .npv = npv,
			      .prefix = prefix,
			      .steps = steps,
			      .fault_at = -1,
			      .tear = tear };
	struct power pw;
	struct dlvm_vg *vg = run_window(&ref, &pw);
	unsigned before = 0, after = 0;

	dlvm_vg_free(vg);
	if (want_ckpt)
		assert_true(ref.auto_ckpt);
	if (want_wrap)
		assert_true(ref.wrapped);
	long total = ref.writes[steps];
	print_message("ss %u, %zu PV, prefix %d: %d steps, %ld writes%s%s%s\n", ss, npv, prefix,
		      steps, total, ref.auto_ckpt ? ", checkpoint" : "",
		      ref.wrapped ? ", wrap" : "", tear ? ", torn" : "");
	if (seeds)
		print_message("  with write caches, %u runs at each write\n", seeds);
	for (long run = 0; run < (total + 1) * (seeds ? seeds : 1); run++) {
		long n = seeds ? run / seeds : run;
		struct window w = ref;
		w.fault_at = n;
		w.cache = seeds ? 1 + 7 * (uint64_t)run : 0;
		vg = run_window(&w, &pw);
		assert_string_equal(w.states[steps], ref.states[steps]);
		int k = 1;
		while (k <= steps && ref.writes[k] <= n)
			k++;
		/* write n (from 0) belongs to step k; k == steps + 1: none was lost */
		pw = (struct power){ .left = -1 };
		vg = t_reload(vg);
		char *got = t_model(vg);
		bool is_before = !strcmp(got, ref.states[k - 1]);
		bool is_after = k <= steps && !strcmp(got, ref.states[k]);
		/* with caches, the power may go at the flush that ends step k - 1 */
		if (seeds && k >= 2 && n == ref.writes[k - 1] && !strcmp(got, ref.states[k - 2]))
			is_before = true;
		if (!is_before && !is_after)
			fail_msg("power lost at write %ld (step %d): "
				 "loaded\n%s\nbefore\n%s\nafter\n%s",
				 n, k, got, ref.states[k - 1], k <= steps ? ref.states[k] : "-");
		before += is_before && !is_after;
		after += is_after && !is_before;
		free(got);
		char *txt;
		unsigned repaired, problems = t_check(vg, false, &repaired, &txt);
		if (npv == 1 && problems)
			fail_msg("power lost at write %ld: check: %s", n, txt);
		if (problems && (problems > npv - 1 || !strstr(txt, "is stale")))
			fail_msg("power lost at write %ld: check: %s", n, txt);
		free(txt);
		/* the next change brings every copy up to date */
		struct t_gen g = { .s = 5, .names = 1000000 };
		struct dlvm_err e = { 0 };
		assert_ok(random_change(vg, &g, &e), &e);
		assert_check_clean(vg);
		vg = reload_same(vg);
		dlvm_vg_free(vg);
		window_free(&w);
	}
	print_message("  %u loads at the state before the step, %u after\n", before, after);
	assert_true(before > 0);
	window_free(&ref);
}

static void power_loss_window(uint32_t ss, size_t npv, int prefix, int steps, bool tear,
			      bool want_ckpt, bool want_wrap)
{
	power_loss_window_cached(ss, npv, prefix, steps, tear, want_ckpt, want_wrap, 0);
}

/* The same with write caches that lose what was not flushed. */
static void power_loss_write_cache(void **state)
{
	int ckpt, wrap;
	(void)state;

	find_events(512, 1, &ckpt, &wrap);
	power_loss_window_cached(512, 1, ckpt - 8, 14, false, true, false, 3);
	power_loss_window_cached(512, 1, wrap - 8, 14, false, false, true, 3);
	find_events(4096, 2, &ckpt, &wrap);
	power_loss_window_cached(4096, 2, ckpt - 6, 12, false, true, false, 3);
	power_loss_window_cached(4096, 2, wrap - 6, 12, false, false, true, 3);
}

static void power_loss_512(void **state)
{
	int ckpt, wrap;
	(void)state;

	find_events(512, 1, &ckpt, &wrap);
	power_loss_window(512, 1, 0, 12, false, false, false);
	power_loss_window(512, 1, ckpt - 8, 14, false, true, false);
	power_loss_window(512, 1, wrap - 8, 14, false, false, true);
	power_loss_window(512, 1, ckpt - 8, 14, true, true, false);
	power_loss_window(512, 1, wrap - 8, 14, true, false, true);
}

static void power_loss_4096(void **state)
{
	int ckpt, wrap;
	(void)state;

	find_events(4096, 1, &ckpt, &wrap);
	power_loss_window(4096, 1, 0, 80, false, true, true);
	power_loss_window(4096, 1, wrap - 8, 16, true, false, true);
}

static void power_loss_two_copies(void **state)
{
	int ckpt, wrap;
	(void)state;

	find_events(512, 2, &ckpt, &wrap);
	power_loss_window(512, 2, ckpt - 6, 12, false, true, false);
	power_loss_window(512, 2, wrap - 6, 12, true, false, true);
	find_events(4096, 2, &ckpt, &wrap);
	power_loss_window(4096, 2, 0, 80, false, true, true);
	power_loss_window(4096, 2, wrap - 6, 12, true, false, true);
}

/* ---- ring wrap and checkpoints ---- */

static void ring_wrap(uint32_t ss, int commits)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, ss, MiB, MiB);
	struct t_gen g = { .s = 77 };
	struct dlvm_err e = { 0 };
	unsigned wraps = 0, ckpts = 0;

	assert_int_equal(vg->pvs[0]->mda.hdr.ring_size, 262144);
	for (int i = 1; i <= commits; i++) {
		uint64_t gen = vg->pvs[0]->mda.hdr.generation, tail = vg->pvs[0]->mda.tail;
		assert_ok(random_change(vg, &g, &e), &e);
		ckpts += vg->pvs[0]->mda.hdr.generation != gen;
		wraps += vg->pvs[0]->mda.tail < tail;
		/* the journal of a copy never holds more than half the ring */
		assert_true(vg->pvs[0]->mda.used <= vg->pvs[0]->mda.hdr.ring_size / 2);
		if (i % 97 == 0) {
			vg = reload_same(vg);
			assert_int_equal(vg->seq, (uint64_t)i + 1);
		}
	}
	print_message("ss %u: %d commits, %u checkpoints, %u wraps\n", ss, commits, ckpts, wraps);
	assert_true(ckpts >= 3);
	assert_true(wraps >= 2);
	vg = reload_same(vg);
	assert_int_equal(vg->seq, (uint64_t)commits + 1);
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

static void ring_wrap_512(void **state)
{
	(void)state;
	ring_wrap(512, 1500);
}

static void ring_wrap_4096(void **state)
{
	(void)state;
	ring_wrap(4096, 300);
}

/* A VG that outgrows its checkpoint region: -ENOSPC, nothing changes. */
static void checkpoint_too_large(void **state)
{
	struct dlvm_vg *vg = t_vg(1, 64 * MiB, 512, MiB, 4096);
	struct dlvm_err e = { 0 };
	int r = 0, i;
	(void)state;

	/* LVs of one extent with long names until a checkpoint no longer fits */
	for (i = 0; i < 20000 && !r; i++) {
		char name[128];
		snprintf(name, sizeof(name), "%0120d", i);
		dlvm_err_clear(&e);
		r = t_lv_create(vg, name, 1, 1, 0, &e);
	}
	assert_int_equal(r, -ENOSPC);
	assert_non_null(strstr(e.msg, "metadata area too small"));
	char *m = t_model(vg);
	vg = t_reload(vg);
	char *n = t_model(vg);
	assert_string_equal(n, m);
	free(m);
	free(n);
	dlvm_vg_free(vg);
}

/* ---- two copies ---- */

/* Load "vg0" from one device only. */
static struct dlvm_vg *load_from(struct dlvm_vg *vg, size_t keep, char **model)
{
	struct dlvm_dev *devs[4];
	size_t n = t_detach(vg, devs);

	for (size_t i = 0; i < n; i++)
		if (i != keep) {
			dlvm_dev_close(devs[i]);
			devs[i] = NULL;
		}
	vg = t_load(devs, n);
	*model = t_model(vg);
	return vg;
}

static void stale_copy(bool by_repair)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 11 };
	char *txt;
	unsigned repaired;

	changes(vg, &g, 10);
	/* power lost on pv1 only: it misses record 12 */
	dlvm_memdev_set_fault(vg->pvs[1]->dev, DLVM_FAULT_POWERLOSS, 0);
	assert_ok(random_change(vg, &g, &e), &e);
	t_heal(vg);
	vg = reload_same(vg);
	assert_int_equal(vg->seq, 12);
	assert_true(vg->pvs[0]->mda.in_sync);
	assert_true(vg->pvs[1]->mda.valid);
	assert_false(vg->pvs[1]->mda.in_sync);
	assert_int_equal(vg->pvs[1]->mda.tail_seq, 11);
	assert_non_null(strstr(vg->pvs[1]->mda.problem,
			       "pv1: metadata copy is stale (sequence 11, VG is at 12)"));
	assert_int_equal(t_check(vg, false, NULL, &txt), 1);
	assert_string_equal(txt, "pv1: metadata copy 2 is stale (sequence 11, VG at 12)\n");
	free(txt);
	/* check without --repair changes nothing */
	assert_int_equal(t_check(vg, false, NULL, NULL), 1);

	if (by_repair) {
		assert_int_equal(t_check(vg, true, &repaired, &txt), 1);
		assert_int_equal(repaired, 1);
		assert_non_null(strstr(txt, "pv1: metadata copy 2 rewritten"));
		free(txt);
	} else {
		assert_ok(random_change(vg, &g, &e), &e);
		assert_int_equal(vg->seq, 13);
	}
	assert_true(vg->pvs[1]->mda.in_sync);
	assert_check_clean(vg);
	char *full = t_model(vg), *one;
	/* the resynced copy alone holds the whole VG */
	vg = load_from(vg, 1, &one);
	assert_string_equal(one, full);
	free(one);
	free(full);
	dlvm_vg_free(vg);
}

static void stale_copy_resynced_by_commit(void **state)
{
	(void)state;
	stale_copy(false);
}

static void stale_copy_repaired_by_check(void **state)
{
	(void)state;
	stale_copy(true);
}

/* The copy a reload picks is the newest, whichever device comes first. */
static void newest_copy_wins(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct t_gen g = { .s = 13 };
	struct dlvm_dev *devs[2];
	(void)state;

	changes(vg, &g, 8);
	dlvm_memdev_set_fault(vg->pvs[0]->dev, DLVM_FAULT_POWERLOSS, 0);
	changes(vg, &g, 3);
	char *want = t_model(vg);
	t_heal(vg);
	t_detach(vg, devs);
	struct dlvm_dev *order[2] = { devs[0], devs[1] };
	vg = t_load(order, 2);
	char *got = t_model(vg);
	assert_string_equal(got, want);
	free(got);
	assert_false(vg->pvs[0]->mda.in_sync);
	assert_int_equal(vg->pvs[0]->mda.tail_seq, 9);
	assert_int_equal(vg->seq, 12);
	t_detach(vg, devs);
	struct dlvm_dev *rev[2] = { devs[1], devs[0] };
	vg = t_load(rev, 2);
	got = t_model(vg);
	assert_string_equal(got, want);
	free(got);
	free(want);
	dlvm_vg_free(vg);
}

static void corrupt_checkpoint_in_one_copy(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 17 };
	char *txt, want[256];
	(void)state;

	changes(vg, &g, 10);
	assert_ok(dlvm_vg_checkpoint(vg, false, &e), &e);
	changes(vg, &g, 3);
	const struct dlvm_mda_header *h = &vg->pvs[0]->mda.hdr;
	uint64_t ck_abs = DLVM_MDA_OFFSET + h->ckpt_offset + h->ckpt_slot * h->ckpt_size;
	dlvm_memdev_data(vg->pvs[0]->dev)[ck_abs + DLVM_BLOB_HEADER_SIZE + 5] ^= 0x01;

	vg = reload_same(vg);
	assert_int_equal(vg->seq, 14);
	/* read from the older checkpoint and the journal, but not written to
	 * until it is rewritten */
	assert_true(vg->pvs[0]->mda.valid);
	assert_true(vg->pvs[0]->mda.fallback);
	assert_int_equal(vg->pvs[0]->mda.tail_seq, 14);
	assert_false(vg->pvs[0]->mda.in_sync);
	snprintf(want, sizeof(want),
		 "pv0: checkpoint at offset %" PRIu64 ": checksum mismatch; "
		 "read from the older checkpoint (sequence 1) and the journal",
		 ck_abs);
	assert_non_null(strstr(vg->pvs[0]->mda.problem, want));
	assert_true(vg->pvs[1]->mda.in_sync);

	assert_int_equal(t_check(vg, false, NULL, &txt), 1);
	assert_non_null(strstr(txt, "pv0: metadata copy 1 at offset 8192: checkpoint at offset"));
	assert_non_null(strstr(txt, want + strlen("pv0: ")));
	free(txt);

	/* the next commit rewrites it, as any stale copy */
	changes(vg, &g, 2);
	assert_true(vg->pvs[0]->mda.in_sync);
	assert_check_clean(vg);
	changes(vg, &g, 2);
	char *full = t_model(vg), *one;
	vg = load_from(vg, 0, &one);
	assert_string_equal(one, full);
	free(one);
	free(full);
	dlvm_vg_free(vg);
}

/* One copy only, its current checkpoint damaged: the VG loads from the
 * older checkpoint and the journal after it, whole; rewriting the copy
 * ends the fallback. When the journal after the older checkpoint is
 * damaged too, the load fails and says both. */
static void corrupt_checkpoint_single_copy(void **state)
{
	struct dlvm_vg *vg = t_vg(1, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 23 };
	(void)state;

	changes(vg, &g, 10);
	uint64_t rec_abs = DLVM_MDA_OFFSET + vg->pvs[0]->mda.hdr.ring_offset +
			   vg->pvs[0]->mda.hdr.journal_start;
	assert_ok(dlvm_vg_checkpoint(vg, false, &e), &e);
	changes(vg, &g, 5);
	const struct dlvm_mda_header *h = &vg->pvs[0]->mda.hdr;
	uint64_t ck_abs = DLVM_MDA_OFFSET + h->ckpt_offset + h->ckpt_slot * h->ckpt_size;
	uint8_t *d = dlvm_memdev_data(vg->pvs[0]->dev);
	d[ck_abs + DLVM_BLOB_HEADER_SIZE + 9] ^= 0x04;
	vg = reload_same(vg);
	assert_int_equal(vg->seq, 16);
	assert_true(vg->pvs[0]->mda.fallback);
	assert_false(vg->pvs[0]->mda.in_sync);
	/* rewritten (as dlvmd and the CLI do when they load a VG), it is the
	 * current copy again; the next checkpoint must not touch the older one */
	assert_ok(dlvm_vg_checkpoint(vg, true, &e), &e);
	assert_true(vg->pvs[0]->mda.in_sync);
	changes(vg, &g, 3);
	vg = reload_same(vg);
	assert_false(vg->pvs[0]->mda.fallback);
	assert_true(vg->pvs[0]->mda.in_sync);
	assert_check_clean(vg);
	assert_int_equal(vg->seq, 19);

	/* damage the new checkpoint and the first record of the older journal */
	changes(vg, &g, 2);
	rec_abs = DLVM_MDA_OFFSET + vg->pvs[0]->mda.hdr.ring_offset +
		  vg->pvs[0]->mda.hdr.journal_start;
	assert_ok(dlvm_vg_checkpoint(vg, false, &e), &e);
	changes(vg, &g, 2);
	h = &vg->pvs[0]->mda.hdr;
	ck_abs = DLVM_MDA_OFFSET + h->ckpt_offset + h->ckpt_slot * h->ckpt_size;
	d[ck_abs + DLVM_BLOB_HEADER_SIZE + 9] ^= 0x04;
	d[rec_abs + DLVM_BLOB_HEADER_SIZE + 3] ^= 0x10;
	struct dlvm_dev *devs[4];
	size_t n = t_detach(vg, devs);
	struct dlvm_vg *nv = NULL;
	char want[256];
	snprintf(want, sizeof(want),
		 "pv0: checkpoint at offset %" PRIu64 ": checksum mismatch; "
		 "the older checkpoint does not help: pv0: journal record 17 at offset %" PRIu64
		 " is damaged but record 18 follows it",
		 ck_abs, rec_abs);
	assert_err(dlvm_vg_load(devs, n, NULL, &nv, &e), &e, -EBADMSG, want);
	for (size_t i = 0; i < n; i++)
		dlvm_dev_close(devs[i]);
}

/*
 * A copy repaired after a read error in its journal starts a new journal at
 * ring offset 0, while the records after its older checkpoint stay where they
 * were. When the repaired copy's checkpoint is damaged later, the older
 * checkpoint and its journal rebuild the state up to the damaged
 * checkpoint's sequence; the records after that are where the newer header
 * says, and must not be lost.
 */
static void fallback_follows_the_newer_journal(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, 8 * MiB, MiB);
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 31 };
	char *txt;
	unsigned repaired;
	(void)state;

	changes(vg, &g, 10);
	assert_ok(dlvm_vg_checkpoint(vg, false, &e), &e);
	const struct dlvm_mda_header *h = &vg->pvs[0]->mda.hdr;
	assert_true(h->journal_start > 0);
	uint64_t bad = DLVM_MDA_OFFSET + h->ring_offset + h->journal_start + 3 * 512;
	changes(vg, &g, 10);
	struct dlvm_dev *d0 = vg->pvs[0]->dev;
	dlvm_memdev_set_unreadable(d0, bad, 512);
	vg = reload_same(vg);
	assert_false(vg->pvs[0]->mda.valid);
	assert_int_equal(t_check(vg, true, &repaired, &txt), 1);
	assert_int_equal(repaired, 1);
	free(txt);
	dlvm_memdev_set_unreadable(d0, 0, 0);
	assert_int_equal(vg->pvs[0]->mda.hdr.journal_start, 0);
	assert_int_equal(vg->pvs[0]->mda.hdr.ckpt_seq, 21);
	changes(vg, &g, 4);
	assert_true(vg->pvs[0]->mda.in_sync);
	h = &vg->pvs[0]->mda.hdr;
	uint64_t ck_abs = DLVM_MDA_OFFSET + h->ckpt_offset + h->ckpt_slot * h->ckpt_size;
	dlvm_memdev_data(d0)[ck_abs + DLVM_BLOB_HEADER_SIZE + 7] ^= 0x02;

	char *full = t_model(vg), *one;
	vg = load_from(vg, 0, &one);
	assert_int_equal(vg->seq, 25);
	assert_string_equal(one, full);
	assert_true(vg->pvs[0]->mda.fallback);
	assert_int_equal(vg->pvs[0]->mda.tail_seq, 25);
	free(one);
	free(full);
	dlvm_vg_free(vg);
}

/* One copy only, its current checkpoint unreadable (a bad sector): the VG
 * loads from the older checkpoint and the journal, check reports the copy
 * and check --repair rewrites it. */
static void unreadable_checkpoint_single_copy(void **state)
{
	struct dlvm_vg *vg = t_vg(1, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 37 };
	char *txt, want[256];
	unsigned repaired;
	(void)state;

	changes(vg, &g, 10);
	assert_ok(dlvm_vg_checkpoint(vg, false, &e), &e);
	changes(vg, &g, 5);
	const struct dlvm_mda_header *h = &vg->pvs[0]->mda.hdr;
	uint64_t ck_abs = DLVM_MDA_OFFSET + h->ckpt_offset + h->ckpt_slot * h->ckpt_size;
	struct dlvm_dev *d0 = vg->pvs[0]->dev;
	dlvm_memdev_set_unreadable(d0, ck_abs + 100, 1);
	vg = reload_same(vg);
	assert_int_equal(vg->seq, 16);
	assert_true(vg->pvs[0]->mda.fallback);
	assert_false(vg->pvs[0]->mda.in_sync);
	snprintf(want, sizeof(want),
		 "pv0: read of 4096 bytes at offset %" PRIu64 " failed: "
		 "Input/output error; read from the older checkpoint (sequence 1) and the journal",
		 ck_abs);
	assert_string_equal(vg->pvs[0]->mda.problem, want);

	assert_int_equal(t_check(vg, false, NULL, &txt), 1);
	assert_non_null(strstr(txt, "pv0: metadata copy 1 at offset 8192: read of 4096 bytes"));
	free(txt);
	assert_int_equal(t_check(vg, true, &repaired, &txt), 1);
	assert_int_equal(repaired, 1);
	assert_non_null(strstr(txt, "pv0: metadata copy 1 rewritten"));
	free(txt);
	dlvm_memdev_set_unreadable(d0, 0, 0); /* the rewrite remapped the sector */
	vg = reload_same(vg);
	assert_false(vg->pvs[0]->mda.fallback);
	assert_true(vg->pvs[0]->mda.in_sync);
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

/* Both header slots damaged on one copy: the other copy serves. */
static void corrupt_header_slots_in_one_copy(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 4096, MiB, MiB);
	struct t_gen g = { .s = 19 };
	char *txt;
	unsigned repaired;
	(void)state;

	changes(vg, &g, 6);
	uint8_t *d = dlvm_memdev_data(vg->pvs[1]->dev);
	d[DLVM_MDA_OFFSET + 100] ^= 1;
	d[DLVM_MDA_OFFSET + DLVM_BLOCK + 100] ^= 1;
	vg = reload_same(vg);
	assert_false(vg->pvs[1]->mda.valid);
	assert_non_null(strstr(vg->pvs[1]->mda.problem,
			       "metadata header slots at offsets 8192 "
			       "and 12288 are both unreadable: checksum mismatch"));
	assert_int_equal(t_check(vg, true, &repaired, &txt), 1);
	assert_non_null(strstr(txt, "pv1: metadata copy 2 at offset 8192: metadata header slots"));
	assert_int_equal(repaired, 1);
	free(txt);
	assert_check_clean(vg);
	char *full = t_model(vg), *one;
	vg = load_from(vg, 1, &one);
	assert_string_equal(one, full);
	free(one);
	free(full);
	dlvm_vg_free(vg);
}

/* ---- header slots bounded by the metadata area ---- */

/* Write header slot `slot` of dev: slot 0 (a fresh PV has only that one)
 * with the fields fn changes, CRC valid. */
static void forge_slot(struct dlvm_dev *dev, unsigned slot, void (*fn)(struct dlvm_mda_header *h))
{
	uint8_t *p = dlvm_memdev_data(dev) + DLVM_MDA_OFFSET + slot * DLVM_BLOCK;
	struct dlvm_mda_header h;

	assert_int_equal(dlvm_mda_header_decode(p - slot * DLVM_BLOCK, &h, NULL), 0);
	fn(&h);
	memset(p, 0, DLVM_STRUCT_SIZE);
	dlvm_mda_header_encode(&h, p);
	assert_int_equal(dlvm_mda_header_decode(p, &h, NULL), 0); /* the codec accepts it */
}

/* 1 TiB of ring, behind a newer generation: what drove a load to gigabytes */
static void huge_ring(struct dlvm_mda_header *h)
{
	h->ring_size = 1ull << 40;
	h->mda_size = h->ring_offset + h->ring_size;
	h->generation += 100;
}

static void huge_ckpt(struct dlvm_mda_header *h)
{
	h->ckpt_size = 1ull << 30;
	h->ckpt_len = 1ull << 30;
	h->ring_offset = h->ckpt_offset + 2 * h->ckpt_size;
	h->mda_size = h->ring_offset + h->ring_size;
	h->generation += 100;
}

static void huge_mda(struct dlvm_mda_header *h)
{
	h->mda_size = 1ull << 40;
}

/* A slot whose ring lies outside the area is unreadable; the other serves. */
static void slot_ring_past_the_area(void **state)
{
	struct dlvm_vg *vg = t_vg(1, 64 * MiB, 512, MiB, MiB);
	struct dlvm_dev *devs[1];
	struct dlvm_mda m;
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 23 };
	(void)state;

	changes(vg, &g, 4);
	char *before = t_model(vg);
	t_detach(vg, devs);
	uint64_t ring_off = 8192 + 2 * ((MiB - 8192 - MiB / 4) / 2);
	forge_slot(devs[0], 0, huge_ring);
	vg = t_load(devs, 1); /* the VG stays visible */
	char *after = t_model(vg);
	assert_string_equal(after, before);
	free(after);
	free(before);
	t_detach(vg, devs);
	forge_slot(devs[0], 1, huge_ring);
	char want[300];
	snprintf(want, sizeof(want),
		 "pv0: metadata header slots at offsets 8192 and 12288 are "
		 "both unreadable: field ring_size 1099511627776 at ring_offset %" PRIu64 " runs "
		 "past the metadata area (1048576 bytes); field ring_size",
		 ring_off);
	assert_err(dlvm_mda_read_header(devs[0], &m, &e), &e, -EBADMSG, want);
	dlvm_dev_close(devs[0]);
}

static void slot_ckpt_and_mda_past_the_area(void **state)
{
	struct dlvm_dev *dev = t_pv("pv0", 64 * MiB, 512, MiB);
	struct dlvm_mda m;
	struct dlvm_err e = { 0 };
	(void)state;

	forge_slot(dev, 1, huge_mda);
	forge_slot(dev, 0, huge_ckpt);
	assert_err(dlvm_mda_read_header(dev, &m, &e), &e, -EBADMSG,
		   "pv0: metadata header slots at offsets 8192 and 12288 are both unreadable: "
		   "field ckpt_size 1073741824 (two regions at ckpt_offset 8192) runs past the "
		   "metadata area (1048576 bytes); field mda_size 1099511627776 is larger than "
		   "the metadata area (1048576 bytes)");
	dlvm_dev_close(dev);
}

/* The label's metadata area must fit on the device it is read from. */
static void label_mda_past_the_device(void **state)
{
	struct dlvm_dev *dev = t_pv("pv0", 64 * MiB, 512, MiB);
	uint8_t *p = dlvm_memdev_data(dev) + DLVM_PV_HEADER_OFFSET;
	struct dlvm_pv_header h;
	struct dlvm_err e = { 0 };
	(void)state;

	assert_int_equal(dlvm_pv_header_decode(p, &h, NULL), 0);
	h.mda_size = 128 * MiB;
	h.data_offset = 129 * MiB;
	h.data_size = MiB;
	h.device_size = 130 * MiB;
	memset(p, 0, DLVM_STRUCT_SIZE);
	dlvm_pv_header_encode(&h, p);
	assert_err(dlvm_pv_read_header(dev, &h, &e), &e, -EBADMSG,
		   "pv0: PV header at offset 4096: field mda_size 134217728 runs past the end of "
		   "the device (67108864 bytes)");
	dlvm_dev_close(dev);
}

static void eio_on_one_copy(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 23 };
	(void)state;

	changes(vg, &g, 5);
	dlvm_memdev_set_fault(vg->pvs[1]->dev, DLVM_FAULT_EIO, 0);
	assert_ok(random_change(vg, &g, &e), &e);
	assert_int_equal(e.code, 0);
	assert_int_equal(vg->seq, 7);
	assert_false(vg->pvs[1]->mda.in_sync);
	assert_non_null(strstr(vg->pvs[1]->mda.problem, "pv1: write of 512 bytes at offset"));
	assert_non_null(strstr(vg->pvs[1]->mda.problem, "Input/output error"));
	/* the copy keeps failing: commits still succeed on the other one */
	changes(vg, &g, 3);
	assert_int_equal(vg->seq, 10);
	char *want = t_model(vg);

	/* the device works again: the next commit resyncs it */
	t_heal(vg);
	assert_ok(random_change(vg, &g, &e), &e);
	assert_true(vg->pvs[1]->mda.in_sync);
	assert_check_clean(vg);
	vg = reload_same(vg);
	char *one;
	free(want);
	want = t_model(vg);
	vg = load_from(vg, 1, &one);
	assert_string_equal(one, want);
	free(one);
	free(want);
	dlvm_vg_free(vg);
}

/* A transaction the model refuses is refused before anything is written,
 * and the edits before the bad one are undone. */
static void refused_txn_writes_nothing(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct dlvm_txn t;
	(void)state;

	assert_ok(t_lv_create(vg, "a", 2, 1, 0, &e), &e);
	char *old = t_model(vg);
	long w0 = dlvm_memdev_writes(vg->pvs[0]->dev), w1 = dlvm_memdev_writes(vg->pvs[1]->dev);

	/* a good LV_CREATE, then a rename onto a name that exists */
	struct dlvm_edit c = { .type = DLVM_EDIT_LV_CREATE }, rn = { .type = DLVM_EDIT_LV_RENAME };
	struct dlvm_seg_desc **segs;
	uint32_t nseg;
	assert_ok(dlvm_alloc(vg, NULL, 3, 1, 0, NULL, 0, &segs, &nseg, &e), &e);
	c.u.lv.id = vg->info.next_lv_id;
	dlvm_uuid_generate(c.u.lv.uuid);
	snprintf(c.u.lv.name, sizeof(c.u.lv.name), "b");
	c.u.lv.segs = segs;
	c.u.lv.nseg = nseg;
	rn.u.lv.id = c.u.lv.id;
	snprintf(rn.u.lv.name, sizeof(rn.u.lv.name), "a");
	dlvm_txn_init(&t);
	dlvm_txn_add(&t, &c);
	dlvm_txn_add(&t, &rn);
	assert_err(dlvm_txn_commit(vg, &t, &e), &e, -EBADMSG,
		   "vg0: change refused: LV_RENAME: name a already exists");
	dlvm_txn_release(&t);

	char *now = t_model(vg);
	assert_string_equal(now, old);
	free(now);
	assert_int_equal(dlvm_memdev_writes(vg->pvs[0]->dev), w0);
	assert_int_equal(dlvm_memdev_writes(vg->pvs[1]->dev), w1);
	assert_false(vg->readonly);
	/* the VG goes on working and reloads to the same model */
	dlvm_err_clear(&e);
	assert_ok(t_lv_create(vg, "b", 1, 1, 0, &e), &e);
	now = t_model(vg);
	vg = t_reload(vg);
	char *again = t_model(vg);
	assert_string_equal(again, now);
	free(again);
	free(now);
	free(old);
	dlvm_vg_free(vg);
}

/* A refused transaction that removed an LV gives it back whole: its
 * activation records and a flatten's rate too, not only what LV_CREATE
 * carries. */
static void refused_remove_keeps_every_attribute(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct dlvm_txn t;
	(void)state;

	assert_ok(t_lv_create(vg, "a", 2, 1, 0, &e), &e);
	uint64_t id = dlvm_lv_find(vg, "a")->id;
	struct dlvm_edit rate = { .type = DLVM_EDIT_LV_SET_COPY_RATE,
				  .flags = DLVM_EDIT_IGNORABLE };
	rate.u.lv.id = id;
	rate.u.lv.copy_rate = 3 << 20;
	assert_ok(dlvm_txn_commit_edit(vg, &rate, &e), &e);
	struct dlvm_edit h = { .type = DLVM_EDIT_LV_SET_HOLDERS };
	h.u.lv.id = id;
	h.u.lv.nholders = 2;
	h.u.lv.holders = calloc(2, sizeof(*h.u.lv.holders));
	assert_non_null(h.u.lv.holders);
	h.u.lv.holders[0] = (struct dlvm_lv_holder){ 3, DLVM_HOLD_SHARED, 7 };
	h.u.lv.holders[1] = (struct dlvm_lv_holder){ 9, DLVM_HOLD_SHARED, 1 };
	assert_ok(dlvm_txn_commit_edit(vg, &h, &e), &e);
	char *old = t_model(vg);
	assert_non_null(strstr(old, "copy_rate 3145728 holders 3/2/7 9/2/1"));

	struct dlvm_edit rm = { .type = DLVM_EDIT_LV_REMOVE }, rn = { .type = DLVM_EDIT_LV_RENAME };
	rm.u.lv.id = id;
	rn.u.lv.id = id; /* gone by then: refused */
	snprintf(rn.u.lv.name, sizeof(rn.u.lv.name), "b");
	dlvm_txn_init(&t);
	dlvm_txn_add(&t, &rm);
	dlvm_txn_add(&t, &rn);
	assert_int_equal(dlvm_txn_commit(vg, &t, &e), -EBADMSG);
	dlvm_txn_release(&t);
	char *now = t_model(vg);
	assert_string_equal(now, old);
	free(now);
	free(old);
	dlvm_vg_free(vg);
}

static void eio_on_every_copy(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	struct t_gen g = { .s = 29 };
	(void)state;

	changes(vg, &g, 5);
	char *old = t_model(vg);
	dlvm_memdev_set_fault(vg->pvs[0]->dev, DLVM_FAULT_EIO, 0);
	dlvm_memdev_set_fault(vg->pvs[1]->dev, DLVM_FAULT_EIO, 0);
	assert_err(t_lv_create(vg, "x", 1, 1, 0, &e), &e, -EIO, "pv0: write of 512 bytes at");
	/* nothing applied; the VG refuses changes until reloaded */
	char *now = t_model(vg);
	assert_string_equal(now, old);
	free(now);
	assert_null(dlvm_lv_find(vg, "x"));
	assert_true(vg->readonly);
	assert_err(t_lv_create(vg, "y", 1, 1, 0, &e), &e, -EROFS, "vg0: volume group is read-only");
	t_heal(vg);
	vg = t_reload(vg);
	now = t_model(vg);
	assert_string_equal(now, old);
	free(now);
	free(old);
	assert_ok(t_lv_create(vg, "x", 1, 1, 0, &e), &e);
	vg = reload_same(vg);
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

/* ---- vgcreate that fails on a later PV ---- */

/* A memory device whose flush number `fail_at` (from 0) fails with -EIO: the
 * writes before it landed, the caller is told they may not have. It counts
 * its reads. */
struct flakydev {
	struct dlvm_dev *inner;
	long fail_at, flushes, reads;
};

static int fl_pread(struct dlvm_dev *d, void *buf, size_t len, uint64_t off)
{
	struct flakydev *f = d->priv;
	f->reads++;
	return f->inner->ops->pread(f->inner, buf, len, off);
}

static int fl_pwrite(struct dlvm_dev *d, const void *buf, size_t len, uint64_t off)
{
	struct flakydev *f = d->priv;
	return f->inner->ops->pwrite(f->inner, buf, len, off);
}

static int fl_flush(struct dlvm_dev *d)
{
	struct flakydev *f = d->priv;
	return f->flushes++ == f->fail_at ? -EIO : f->inner->ops->flush(f->inner);
}

static void fl_close(struct dlvm_dev *d)
{
	struct flakydev *f = d->priv;
	dlvm_dev_close(f->inner);
	free(f);
}

static const struct dlvm_dev_ops fl_ops = {
	.pread = fl_pread,
	.pwrite = fl_pwrite,
	.flush = fl_flush,
	.close = fl_close,
};

/* A formatted PV whose flush number fail_at after formatting fails. */
static struct dlvm_dev *flaky_pv(const char *name, long fail_at)
{
	struct dlvm_dev *d = calloc(1, sizeof(*d));
	struct flakydev *f = calloc(1, sizeof(*f));

	assert_non_null(d);
	assert_non_null(f);
	f->inner = t_pv(name, 64 * MiB, 512, MiB);
	f->fail_at = fail_at;
	d->ops = &fl_ops;
	d->priv = f;
	d->fd = -1;
	d->size = f->inner->size;
	d->sector_size = 512;
	d->path = strdup(name);
	d->name = strdup(name);
	return d;
}

static long fl_reads(struct dlvm_dev *d)
{
	return ((struct flakydev *)d->priv)->reads;
}

static uint8_t *fl_data(struct dlvm_dev *d)
{
	return dlvm_memdev_data(((struct flakydev *)d->priv)->inner);
}

/* A VG named `name` on devs[0..n) with one LV, its devices given back. */
static void make_vg(const char *name, struct dlvm_dev **devs, size_t n)
{
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 };
	struct dlvm_dev *back[4];

	assert_ok(dlvm_vg_create(name, MiB, devs, n, &vg, &e), &e);
	assert_ok(t_lv_create(vg, "l1", 4, 1, 0, &e), &e);
	assert_int_equal(t_detach(vg, back), n);
}

/* Every VG loads once, in the order of its first device; two VGs of one
 * name both load; an orphan PV stays with the caller without a problem; a
 * damaged label and an unloadable VG each leave their device with one. */
static void load_all_loads_each_vg_once(void **state)
{
	struct dlvm_dev *pv[7];
	struct dlvm_vg *vg = NULL, **vgs = NULL;
	struct dlvm_err e = { 0 }, probs[7] = { 0 };
	size_t nvg = 0;
	(void)state;

	for (size_t i = 0; i < 7; i++) {
		char name[8];
		snprintf(name, sizeof(name), "pv%zu", i);
		pv[i] = flaky_pv(name, -1);
	}
	make_vg("vg0", (struct dlvm_dev *[]){ pv[0], pv[1] }, 2);
	make_vg("vg1", &pv[2], 1);
	make_vg("vg1", &pv[3], 1); /* another VG of the same name */
	make_vg("vg2", &pv[5], 1);
	/* pv4 is an orphan; pv5's VG loses its only checkpoint; pv6's label
	 * is damaged */
	struct dlvm_mda m = { 0 };
	assert_ok(dlvm_mda_read_header(pv[5], &m, &e), &e);
	uint64_t ck_abs = DLVM_MDA_OFFSET + m.hdr.ckpt_offset + m.hdr.ckpt_slot * m.hdr.ckpt_size;
	fl_data(pv[5])[ck_abs + DLVM_BLOB_HEADER_SIZE + 5] ^= 1;
	fl_data(pv[6])[4096 + 40] ^= 1;

	/* what loading vg1 alone reads */
	struct dlvm_dev *one[1] = { pv[2] };
	long before = fl_reads(pv[2]);
	assert_ok(dlvm_vg_load(one, 1, "vg1", &vg, &e), &e);
	long alone = fl_reads(pv[2]) - before;
	assert_int_equal(t_detach(vg, one), 1);

	struct dlvm_dev *devs[7] = { pv[4], pv[2], pv[6], pv[1], pv[5], pv[3], pv[0] };
	before = fl_reads(pv[2]);
	assert_int_equal(dlvm_vg_load_all(devs, 7, &vgs, &nvg, probs), 0);
	assert_int_equal(fl_reads(pv[2]) - before, alone);
	assert_int_equal(nvg, 3);
	assert_string_equal(vgs[0]->info.name, "vg1");
	assert_ptr_equal(vgs[0]->pvs[0]->dev, pv[2]);
	assert_string_equal(vgs[1]->info.name, "vg0");
	assert_int_equal(vgs[1]->npv, 2);
	assert_string_equal(vgs[2]->info.name, "vg1");
	assert_ptr_equal(vgs[2]->pvs[0]->dev, pv[3]);
	for (size_t v = 0; v < nvg; v++)
		assert_non_null(dlvm_lv_find(vgs[v], "l1"));
	/* left: the orphan, the damaged label, the unloadable VG's PV */
	for (size_t i = 0; i < 7; i++)
		assert_true((devs[i] != NULL) == (i == 0 || i == 2 || i == 4));
	assert_int_equal(probs[0].code, 0);
	assert_int_equal(probs[2].code, -EBADMSG);
	assert_non_null(strstr(probs[2].msg, "pv6: PV header at offset 4096"));
	assert_int_equal(probs[4].code, -EBADMSG);
	assert_non_null(strstr(probs[4].msg, "no readable metadata copy: pv5:"));
	for (size_t i = 0; i < 7; i++)
		if (i != 2 && i != 4)
			assert_int_equal(probs[i].code, 0);
	for (size_t v = 0; v < nvg; v++)
		dlvm_vg_free(vgs[v]);
	free(vgs);
	for (size_t i = 0; i < 7; i++)
		dlvm_dev_close(devs[i]);
}

/* No VG loads from any of devs[0..n), and every one is an orphan PV. */
static void assert_no_vg(struct dlvm_dev **devs, size_t n)
{
	char *names[4];
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 }, probs[4] = { 0 };

	assert_int_equal(dlvm_scan(devs, n, names, probs), 0);
	for (size_t i = 0; i < n; i++) {
		struct dlvm_mda m = { 0 };
		assert_null(names[i]);
		assert_int_equal(probs[i].code, 0);
		assert_ok(dlvm_mda_read_header(devs[i], &m, &e), &e);
		assert_true(dlvm_uuid_is_zero(m.hdr.vg_uuid));
	}
	assert_err(dlvm_vg_load(devs, n, NULL, &vg, &e), &e, -ENOENT, "not found");
}

/* vgcreate on three PVs: the third PV's checkpoint fails after its header
 * write landed (the flush reports an error). Every PV, that one included, is
 * given back: no VG is left on any of them. */
static void vg_create_fails_on_a_later_pv(void **state)
{
	struct dlvm_dev *devs[3] = { t_pv("pv0", 64 * MiB, 512, MiB),
				     t_pv("pv1", 64 * MiB, 512, MiB), flaky_pv("pv2", 1) };
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 };
	(void)state;

	assert_err(dlvm_vg_create("vg0", MiB, devs, 3, &vg, &e), &e, -EIO, "pv2: flush");
	assert_null(strstr(e.msg, "left on"));
	assert_no_vg(devs, 3);
	/* the PVs make a VG later */
	assert_ok(dlvm_vg_create("vg0", MiB, devs, 3, &vg, &e), &e);
	vg = t_reload(vg);
	assert_int_equal(vg->npv, 3);
	dlvm_vg_free(vg);
}

/* The second PV's checkpoint fails, and so does giving the first one back:
 * the error says that VG vg0 is left on pv0, and vgremove finishes. */
static void vg_create_undo_fails(void **state)
{
	struct dlvm_dev *devs[2] = { t_pv("pv0", 64 * MiB, 512, MiB),
				     t_pv("pv1", 64 * MiB, 512, MiB) };
	struct dlvm_vg *vg = NULL;
	struct dlvm_err e = { 0 };
	(void)state;

	dlvm_memdev_set_fault(devs[0], DLVM_FAULT_EIO, 2); /* its checkpoint, not more */
	dlvm_memdev_set_fault(devs[1], DLVM_FAULT_EIO, 0);
	assert_err(dlvm_vg_create("vg0", MiB, devs, 2, &vg, &e), &e, -EIO,
		   "pv1: write of 4096 bytes at offset");
	assert_non_null(strstr(e.msg, "; giving the PVs back failed, so VG vg0 is left on pv0 "
				      "(pv0: write of 4096 bytes at offset"));
	assert_non_null(strstr(e.msg, "): vgremove vg0 removes it"));
	for (size_t i = 0; i < 2; i++)
		dlvm_memdev_set_fault(devs[i], DLVM_FAULT_NONE, 0);
	/* the VG is whole: pv1, still an orphan, is a stale member */
	vg = t_load(devs, 2);
	assert_int_equal(vg->npv, 2);
	assert_true(vg->pvs[0]->mda.in_sync);
	assert_false(vg->pvs[1]->mda.in_sync);
	for (size_t i = 0; i < 2; i++) {
		assert_ok(dlvm_pv_make_orphan(vg->pvs[i]->dev, &e), &e);
		devs[i] = vg->pvs[i]->dev;
	}
	t_detach(vg, devs);
	assert_no_vg(devs, 2);
	for (size_t i = 0; i < 2; i++)
		dlvm_dev_close(devs[i]);
}

/* A model VG "vg0" with n LVs of the given kinds (flags), ids 10, 11, ...,
 * made by applying edits, none of them LV_SET_THIN. */
static struct dlvm_vg *vg_with_lvs(const uint32_t *kinds, unsigned n)
{
	struct dlvm_vg *vg = dlvm_vg_new();
	struct dlvm_edit e = { .type = DLVM_EDIT_VG_INFO };
	struct dlvm_err err = { 0 };

	assert_non_null(vg);
	strcpy(e.u.vg.name, "vg0");
	e.u.vg.uuid[0] = 1;
	e.u.vg.extent_size = 1 << 20;
	e.u.vg.next_lv_id = 1;
	e.u.vg.next_pv_id = 1;
	assert_ok(dlvm_vg_apply(vg, &e, &err), &err);
	for (unsigned i = 0; i < n; i++) {
		struct dlvm_edit lv = { .type = DLVM_EDIT_LV_CREATE };
		lv.u.lv.id = 10 + i;
		lv.u.lv.uuid[0] = (uint8_t)(10 + i);
		snprintf(lv.u.lv.name, sizeof(lv.u.lv.name), "lv%u", i);
		lv.u.lv.flags = kinds[i];
		assert_ok(dlvm_vg_apply(vg, &lv, &err), &err);
	}
	return vg;
}

/* The state a checkpoint writes replays to the same model, even for an LV
 * of a thin kind whose LV_SET_THIN never came (found by fuzz_decode). */
static void state_of_thin_lv_without_attributes_replays(void **state)
{
	const uint32_t kinds[] = { DLVM_LV_THIN_DATA | DLVM_LV_HIDDEN, DLVM_LV_THIN_POOL,
				   DLVM_LV_THIN };
	struct dlvm_vg *vg = vg_with_lvs(kinds, 3), *copy = dlvm_vg_new();
	struct dlvm_err err = { 0 };
	struct dlvm_buf st = { 0 };
	(void)state;

	assert_non_null(copy);
	assert_int_equal(dlvm_vg_encode_state(vg, &st), 0);
	size_t pos = 0;
	unsigned n = 0;
	while (pos < st.len) {
		struct dlvm_edit ed;
		assert_int_equal(dlvm_edit_decode(st.data, st.len, &pos, &ed, NULL), 0);
		assert_ok(dlvm_vg_apply(copy, &ed, &err), &err);
		dlvm_edit_release(&ed);
		n++;
	}
	assert_int_equal(n, 4); /* VG_INFO and the three LV_CREATEs, nothing else */
	assert_int_equal(copy->nlv, 3);
	dlvm_buf_release(&st);
	dlvm_vg_free(copy);
	dlvm_vg_free(vg);
}

/* A flatten's copy rate: applied to its LV, written by a checkpoint as an
 * ignorable edit after the LV's LV_CREATE and replayed from it; refused
 * for an LV that does not exist. */
static void copy_rate_applies_and_replays(void **state)
{
	const uint32_t kinds[] = { DLVM_LV_THIN, DLVM_LV_THIN };
	struct dlvm_vg *vg = vg_with_lvs(kinds, 2), *copy = dlvm_vg_new();
	struct dlvm_edit r = { .type = DLVM_EDIT_LV_SET_COPY_RATE, .flags = DLVM_EDIT_IGNORABLE };
	struct dlvm_err err = { 0 };
	struct dlvm_buf st = { 0 };
	(void)state;

	assert_non_null(copy);
	r.u.lv.id = 11;
	r.u.lv.copy_rate = 4 << 20;
	assert_ok(dlvm_vg_apply(vg, &r, &err), &err);
	assert_int_equal(dlvm_lv_find_id(vg, 11)->copy_rate, 4 << 20);
	assert_int_equal(dlvm_lv_find_id(vg, 10)->copy_rate, 0);
	r.u.lv.id = 12;
	assert_err(dlvm_vg_apply(vg, &r, &err), &err, -EBADMSG,
		   "LV_SET_COPY_RATE: LV id 12 does not exist");

	assert_int_equal(dlvm_vg_encode_state(vg, &st), 0);
	size_t pos = 0;
	unsigned n = 0, rates = 0;
	while (pos < st.len) {
		struct dlvm_edit ed;
		assert_int_equal(dlvm_edit_decode(st.data, st.len, &pos, &ed, NULL), 0);
		if (ed.type == DLVM_EDIT_LV_SET_COPY_RATE) {
			assert_int_equal(ed.flags, DLVM_EDIT_IGNORABLE);
			assert_int_equal(ed.u.lv.id, 11);
			rates++;
		}
		assert_ok(dlvm_vg_apply(copy, &ed, &err), &err);
		dlvm_edit_release(&ed);
		n++;
	}
	assert_int_equal(n, 4); /* VG_INFO, two LV_CREATEs, one rate */
	assert_int_equal(rates, 1);
	assert_int_equal(dlvm_lv_find_id(copy, 11)->copy_rate, 4 << 20);
	assert_int_equal(dlvm_lv_find_id(copy, 10)->copy_rate, 0);
	dlvm_buf_release(&st);
	dlvm_vg_free(copy);
	dlvm_vg_free(vg);
}

/* A thin LV's virtual size from disk is bounded: a record of 2^63 bytes
 * (valid CRC, say) is refused, not taken for a negative size later. */
static void thin_virtual_size_bounded(void **state)
{
	const uint32_t kinds[] = { DLVM_LV_THIN_POOL, DLVM_LV_THIN };
	struct dlvm_vg *vg = vg_with_lvs(kinds, 2);
	struct dlvm_err err = { 0 };
	(void)state;

	const uint64_t sizes[] = { 1ull << 63, UINT64_MAX - 4095, DLVM_THIN_MAX_VSIZE + 4096 };
	for (unsigned i = 0; i < 3; i++) {
		struct dlvm_edit t = { .type = DLVM_EDIT_LV_SET_THIN };
		t.u.lv.id = 11;
		t.u.lv.thin.pool_id = 10;
		t.u.lv.thin.virtual_size = sizes[i];
		assert_int_equal(dlvm_vg_apply(vg, &t, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "at most 1 EiB"));
		dlvm_err_clear(&err);
	}
	struct dlvm_edit t = { .type = DLVM_EDIT_LV_SET_THIN };
	t.u.lv.id = 11;
	t.u.lv.thin.pool_id = 10;
	t.u.lv.thin.virtual_size = DLVM_THIN_MAX_VSIZE;
	assert_ok(dlvm_vg_apply(vg, &t, &err), &err);
	dlvm_vg_free(vg);
}

/* Commit one property change (value NULL: delete) of object id. */
static int prop_commit(struct dlvm_vg *vg, uint64_t id, const char *key, const char *value,
		       struct dlvm_err *err)
{
	struct dlvm_txn t;
	int r;

	dlvm_txn_init(&t);
	r = dlvm_txn_push_prop(vg, &t, id, key, value, err);
	if (!r)
		r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	return r;
}

/* Properties of LVs and of the VG: applied, replayed from the journal and
 * from a checkpoint, deleted, renamed with their LV, and the VG marked with
 * DLVM_RO_COMPAT_PROPERTIES by the first one. */
static void properties_apply_and_replay(void **state)
{
	struct dlvm_vg *vg = t_vg(2, 64 * MiB, 512, MiB, MiB);
	struct dlvm_err e = { 0 };
	(void)state;

	assert_ok(t_lv_create(vg, "a", 1, 1, 0, &e), &e);
	assert_ok(t_lv_create(vg, "b", 1, 1, 0, &e), &e);
	uint64_t a = dlvm_lv_find(vg, "a")->id, b = dlvm_lv_find(vg, "b")->id;
	assert_false(vg->info.ro_compat & DLVM_RO_COMPAT_PROPERTIES);
	assert_ok(prop_commit(vg, a, "cinder.name", "data one, \"quoted\"", &e), &e);
	assert_true(vg->info.ro_compat & DLVM_RO_COMPAT_PROPERTIES);
	uint64_t seq = vg->seq;
	assert_ok(prop_commit(vg, a, "cinder.status", "available", &e), &e);
	assert_ok(prop_commit(vg, b, "cinder.status", "in-use", &e), &e);
	assert_ok(prop_commit(vg, 0, "cluster", "c1", &e), &e);
	assert_int_equal(vg->seq, seq + 3);
	assert_ok(prop_commit(vg, a, "cinder.status", "extending", &e), &e);
	const struct dlvm_lv *la = dlvm_lv_find_id(vg, a);
	assert_string_equal(dlvm_prop_get(&la->props, "cinder.status"), "extending");
	assert_string_equal(dlvm_prop_get(&la->props, "cinder.name"), "data one, \"quoted\"");
	assert_null(dlvm_prop_get(&la->props, "cinder"));
	assert_string_equal(dlvm_prop_get(dlvm_props_of(vg, 0), "cluster"), "c1");
	assert_null(dlvm_props_of(vg, 4242));
	/* a delete, and a delete of what is not there */
	assert_ok(prop_commit(vg, b, "cinder.status", NULL, &e), &e);
	assert_ok(prop_commit(vg, b, "cinder.status", NULL, &e), &e);
	assert_int_equal(dlvm_lv_find_id(vg, b)->props.n, 0);
	/* an LV keeps its properties under a new name */
	struct dlvm_edit rn = { .type = DLVM_EDIT_LV_RENAME };
	rn.u.lv.id = a;
	snprintf(rn.u.lv.name, sizeof(rn.u.lv.name), "a2");
	assert_ok(t_commit(vg, &rn, &e), &e);
	char *model = t_model(vg);
	assert_non_null(strstr(model, "lv 1 a2 flags 0 extents 1\n"));
	assert_non_null(strstr(model, "  prop cinder.name=data one, \"quoted\"\n"
				      "  prop cinder.status=extending\n"));
	assert_non_null(strstr(model, "vg prop cluster=c1\n"));
	free(model);
	/* from the journal, then from a checkpoint */
	vg = reload_same(vg);
	assert_ok(dlvm_vg_checkpoint(vg, false, &e), &e);
	vg = reload_same(vg);
	assert_true(vg->info.ro_compat & DLVM_RO_COMPAT_PROPERTIES);
	assert_false(vg->readonly);
	/* the state a checkpoint writes replays to the same model */
	struct dlvm_buf st = { 0 };
	struct dlvm_vg *copy = dlvm_vg_new();
	size_t pos = 0;
	unsigned props = 0;
	assert_int_equal(dlvm_vg_encode_state(vg, &st), 0);
	while (pos < st.len) {
		struct dlvm_edit ed;
		assert_int_equal(dlvm_edit_decode(st.data, st.len, &pos, &ed, NULL), 0);
		if (ed.type == DLVM_EDIT_PROPERTY_SET) {
			assert_int_equal(ed.flags, DLVM_EDIT_IGNORABLE);
			props++;
		}
		assert_ok(dlvm_vg_apply(copy, &ed, &e), &e);
		dlvm_edit_release(&ed);
	}
	assert_int_equal(props, 3);
	assert_string_equal(dlvm_prop_get(&dlvm_lv_find(copy, "a2")->props, "cinder.status"),
			    "extending");
	dlvm_buf_release(&st);
	dlvm_vg_free(copy);
	assert_check_clean(vg);
	dlvm_vg_free(vg);
}

/* Bad properties change nothing: a key or value out of bounds is refused
 * before the commit, an unknown LV and the 257th property by apply; a
 * transaction refused after property edits and an LV_REMOVE gives every
 * property back. */
static void properties_refused_and_undone(void **state)
{
	struct dlvm_vg *vg = t_vg(1, 64 * MiB, 4096, MiB, 4 * MiB);
	struct dlvm_err e = { 0 };
	char key[DLVM_PROP_KEY_MAX + 2], *big = malloc(DLVM_PROP_VALUE_MAX + 2);
	struct dlvm_txn t;
	(void)state;

	assert_non_null(big);
	assert_ok(t_lv_create(vg, "a", 1, 1, 0, &e), &e);
	uint64_t a = dlvm_lv_find(vg, "a")->id;
	assert_ok(prop_commit(vg, a, "k", "v", &e), &e);
	char *old = t_model(vg);
	memset(key, 'k', sizeof(key));
	key[DLVM_PROP_KEY_MAX + 1] = '\0';
	assert_err(prop_commit(vg, a, key, "v", &e), &e, -EINVAL,
		   "property key length 256 is not 1 to 255");
	assert_err(prop_commit(vg, a, "", "v", &e), &e, -EINVAL,
		   "property key length 0 is not 1 to 255");
	assert_err(prop_commit(vg, a, "a key", "v", &e), &e, -EINVAL,
		   "property key \"a key\": byte 1 (0x20) is not one of");
	memset(big, 'v', DLVM_PROP_VALUE_MAX + 1);
	big[DLVM_PROP_VALUE_MAX + 1] = '\0';
	assert_err(prop_commit(vg, a, "k", big, &e), &e, -EINVAL,
		   "property k: value of 4097 bytes is longer than 4096");
	assert_err(prop_commit(vg, 4242, "k", "v", &e), &e, -EBADMSG,
		   "PROPERTY_SET: LV id 4242 does not exist");
	char *now = t_model(vg);
	assert_string_equal(now, old);
	free(now);

	/* set, change and delete, then an LV_REMOVE, then an edit that fails */
	dlvm_txn_init(&t);
	assert_ok(dlvm_txn_push_prop(vg, &t, a, "k", "changed", &e), &e);
	assert_ok(dlvm_txn_push_prop(vg, &t, a, "new", "x", &e), &e);
	assert_ok(dlvm_txn_push_prop(vg, &t, 0, "vgkey", "y", &e), &e);
	struct dlvm_edit rm = { .type = DLVM_EDIT_LV_REMOVE };
	rm.u.lv.id = a;
	assert_ok(dlvm_txn_push(&t, &rm, &e), &e);
	assert_ok(dlvm_txn_push_prop(vg, &t, a, "late", "z", &e), &e); /* LV gone: refused */
	assert_err(dlvm_txn_commit(vg, &t, &e), &e, -EBADMSG, "does not exist");
	dlvm_txn_release(&t);
	now = t_model(vg);
	assert_string_equal(now, old);
	free(now);

	/* at most DLVM_PROP_MAX a object */
	for (unsigned i = 1; i < DLVM_PROP_MAX; i++) {
		snprintf(key, sizeof(key), "p%03u", i);
		dlvm_txn_init(&t);
		assert_ok(dlvm_txn_push_prop(vg, &t, a, key, "v", &e), &e);
		dlvm_vg_apply(vg, &t.edits[0], &e); /* in the model only: fast */
		dlvm_txn_release(&t);
	}
	assert_int_equal(dlvm_lv_find_id(vg, a)->props.n, DLVM_PROP_MAX);
	assert_ok(prop_commit(vg, a, "k", "replaced", &e), &e);
	assert_err(prop_commit(vg, a, "one.more", "v", &e), &e, -EBADMSG,
		   "PROPERTY_SET: LV a: a property one.more beyond the 256 it may have");
	free(old);
	free(big);
	dlvm_vg_free(vg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(state_of_thin_lv_without_attributes_replays),
		cmocka_unit_test(thin_virtual_size_bounded),
		cmocka_unit_test(reload_512),
		cmocka_unit_test(reload_4096),
		cmocka_unit_test(reload_exact_lvs),
		cmocka_unit_test(torn_record_512),
		cmocka_unit_test(torn_record_4096),
		cmocka_unit_test(corrupt_record_single_copy),
		cmocka_unit_test(corrupt_record_other_copy_serves),
		cmocka_unit_test(power_loss_512),
		cmocka_unit_test(power_loss_4096),
		cmocka_unit_test(power_loss_two_copies),
		cmocka_unit_test(power_loss_write_cache),
		cmocka_unit_test(ring_wrap_512),
		cmocka_unit_test(ring_wrap_4096),
		cmocka_unit_test(checkpoint_too_large),
		cmocka_unit_test(stale_copy_resynced_by_commit),
		cmocka_unit_test(stale_copy_repaired_by_check),
		cmocka_unit_test(newest_copy_wins),
		cmocka_unit_test(corrupt_checkpoint_single_copy),
		cmocka_unit_test(corrupt_checkpoint_in_one_copy),
		cmocka_unit_test(fallback_follows_the_newer_journal),
		cmocka_unit_test(unreadable_checkpoint_single_copy),
		cmocka_unit_test(corrupt_header_slots_in_one_copy),
		cmocka_unit_test(eio_on_one_copy),
		cmocka_unit_test(slot_ring_past_the_area),
		cmocka_unit_test(slot_ckpt_and_mda_past_the_area),
		cmocka_unit_test(label_mda_past_the_device),
		cmocka_unit_test(refused_remove_keeps_every_attribute),
		cmocka_unit_test(eio_on_every_copy),
		cmocka_unit_test(refused_txn_writes_nothing),
		cmocka_unit_test(vg_create_fails_on_a_later_pv),
		cmocka_unit_test(vg_create_undo_fails),
		cmocka_unit_test(load_all_loads_each_vg_once),
		cmocka_unit_test(copy_rate_applies_and_replays),
		cmocka_unit_test(properties_apply_and_replay),
		cmocka_unit_test(properties_refused_and_undone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
