/* SPDX-License-Identifier: MIT */
/*
 * Crash tests of the thin store: a window of transactions (random device
 * changes, then a commit, with a node cache small enough that nodes are
 * written before their commit) runs again and again, and each time the
 * power fails, a write tears or the device starts failing with EIO at the
 * next write, for every write of the window in turn. The metadata area is
 * small, so blocks freed by one transaction are soon used again by a later
 * one (never by the same one). The store is then
 * opened again and must hold exactly the state of the last commit that
 * completed (or, for a write torn in the superblock, whose 512-byte
 * structure lands whole, the state that commit was writing), pass check(),
 * and take and commit more changes.
 *
 * With a write cache (power_loss_with_write_cache) the device holds the
 * writes since the last flush in memory and, when the power goes, keeps
 * some of them, whole or in part, in any mix: the store must open at the
 * last commit whose flush completed, or at the one whose last flush the
 * power cut, whatever landed.
 *
 * The overlapped windows commit in three steps (dlvm_thin_commit_start,
 * _write, _end) with half of the next transaction's changes made while the
 * job is out, as a pool's I/O threads make them: those changes must touch
 * nothing the commit being written or the last one references.
 */
#include "helpers.h"
#include "dlvm/thin.h"

#define NONE DLVM_THIN_NONE

enum { MAXID = 8, VSPAN = 1500, STEPS = 8, OPS_PER_STEP = 40 };

/* ---- a device that stops after the power is lost ---- */

/*
 * The memdev's own fault injection decides what happens to the writes; this
 * wrapper notices a write that returned but did not land (power lost, torn)
 * and fails every read after it, as a machine without power would: the run
 * of the store that lost power must not go on with what it reads back.
 */
struct watch {
	struct dlvm_dev *mem;
	bool dead;
};

static int w_pread(struct dlvm_dev *d, void *buf, size_t len, uint64_t off)
{
	struct watch *w = d->priv;
	return w->dead ? -EIO : w->mem->ops->pread(w->mem, buf, len, off);
}

static int w_pwrite(struct dlvm_dev *d, const void *buf, size_t len, uint64_t off)
{
	struct watch *w = d->priv;
	long before = dlvm_memdev_writes(w->mem);
	int r = w->mem->ops->pwrite(w->mem, buf, len, off);

	if (!r && dlvm_memdev_writes(w->mem) == before)
		w->dead = true;
	return r;
}

static int w_flush(struct dlvm_dev *d)
{
	struct watch *w = d->priv;
	int r = w->mem->ops->flush(w->mem);

	if (dlvm_memdev_lost_power(w->mem))
		w->dead = true;
	return r;
}

static void w_close(struct dlvm_dev *d)
{
	free(d->priv); /* the memdev is the test's */
}

static const struct dlvm_dev_ops watch_ops = {
	.pread = w_pread,
	.pwrite = w_pwrite,
	.flush = w_flush,
	.close = w_close,
};

static struct dlvm_dev *watch_dev(struct dlvm_dev *mem)
{
	struct dlvm_dev *d = calloc(1, sizeof(*d));
	struct watch *w = calloc(1, sizeof(*w));

	assert_non_null(d);
	assert_non_null(w);
	w->mem = mem;
	*d = *mem;
	d->ops = &watch_ops;
	d->priv = w;
	d->path = strdup(mem->path);
	d->name = strdup(mem->name);
	return d;
}

/* ---- the state and the changes ---- */

static int dump_map(void *ctx, uint64_t v, uint64_t c)
{
	t_add(ctx, " %" PRIu64 ":%" PRIu64, v, c);
	return 0;
}

/* Everything the store holds, as text. */
static char *t_state(struct dlvm_thin_store *s)
{
	struct dlvm_thin_usage u;
	struct dlvm_err e = { 0 };
	struct t_str b = { 0 };
	uint64_t id = 0;

	dlvm_thin_usage(s, &u);
	t_add(&b,
	      "txn %" PRIu64 " devices %" PRIu64 " data %" PRIu64 " free %" PRIu64 "+%" PRIu64
	      " meta %" PRIu64 " free %" PRIu64 "+%" PRIu64 "\n",
	      u.transaction, u.devices, u.data_chunks, u.data_free, u.data_pending, u.meta_blocks,
	      u.meta_free, u.meta_pending);
	for (;;) {
		struct dlvm_thin_dev_info in;
		assert_ok(dlvm_thin_next_dev(s, id, &id, &e), &e);
		if (id == NONE)
			break;
		assert_ok(dlvm_thin_info(s, id, &in, &e), &e);
		t_add(&b,
		      "dev %" PRIu64 " mapped %" PRIu64 " txn %" PRIu64 " of %" PRIu64 " flags %x:",
		      id, in.mapped, in.created_txn, in.snapshot_of, in.flags);
		assert_ok(dlvm_thin_iterate(s, id, 0, dump_map, &b, &e), &e);
		t_add(&b, "\n");
		id++;
	}
	return b.s;
}

static unsigned t_thin_check(struct dlvm_thin_store *s, char **text)
{
	struct dlvm_check_report rep = { 0 };
	struct dlvm_err e = { 0 };
	struct t_str b = { 0 };

	assert_ok(dlvm_thin_check(s, &rep, &e), &e);
	t_add(&b, "%s", "");
	for (size_t i = 0; i < rep.nlines; i++)
		t_add(&b, "%s\n", rep.lines[i]);
	unsigned p = rep.problems;
	dlvm_check_report_release(&rep);
	*text = b.s;
	return p;
}

#define assert_thin_clean(s) \
	do { \
		char *txt_; \
		unsigned p_ = t_thin_check((s), &txt_); \
		if (p_) \
			fail_msg("dlvm_thin_check: %u problems:\n%s", p_, txt_); \
		free(txt_); \
	} while (0)

/* A random existing device id, or NONE. */
static uint64_t some_dev(struct dlvm_thin_store *s, struct t_gen *g, unsigned *count)
{
	uint64_t ids[MAXID], id = 0;
	struct dlvm_err e = { 0 };
	unsigned n = 0;

	for (;;) {
		if (dlvm_thin_next_dev(s, id, &id, &e) || id == NONE)
			break;
		ids[n++] = id++;
	}
	*count = n;
	return n ? ids[t_rnd(g) % n] : NONE;
}

static uint64_t free_id(struct dlvm_thin_store *s)
{
	struct dlvm_thin_dev_info in;
	struct dlvm_err e = { 0 };

	for (uint64_t id = 0; id < MAXID; id++)
		if (dlvm_thin_info(s, id, &in, &e) == -ENOENT)
			return id;
	return NONE;
}

/* One random change. Returns its result (a run of writes: the first
 * failure). */
static int random_change(struct dlvm_thin_store *s, struct t_gen *g)
{
	struct dlvm_thin_usage u;
	struct dlvm_err e = { 0 };
	unsigned n;
	uint64_t id = some_dev(s, g, &n), nid = free_id(s), v = t_rnd(g) % VSPAN, c, from;
	uint32_t op = t_rnd(g) % 100;
	bool is_new;
	int r = 0;

	dlvm_thin_usage(s, &u);
	if (id == NONE || (op < 4 && nid != NONE))
		return dlvm_thin_create(s, nid, 0, &e);
	if (op < 9 && nid != NONE)
		return dlvm_thin_snapshot(s, id, nid, 0, &e);
	if (op < 12 && n > 2)
		return dlvm_thin_delete(s, id, &e);
	if (op < 14)
		return dlvm_thin_grow_data(s, u.data_chunks + 8, &e);
	if (op < 15 && u.meta_blocks < 600)
		return dlvm_thin_grow_meta(s, u.meta_blocks + 4, &e);
	if (op < 80) {
		for (uint64_t i = 0, len = 1 + t_rnd(g) % 30; i < len && !r; i++)
			r = dlvm_thin_provision(s, id, (v + i) % VSPAN, &c, &is_new, &from, &e);
		return r;
	}
	return dlvm_thin_unmap(s, id, v, 1 + t_rnd(g) % 200, NULL, &e);
}

/* ---- the window ---- */

struct window {
	uint32_t ss;
	enum dlvm_fault_mode mode;
	bool overlap;            /* changes while each commit is written */
	long fault_at;           /* -1: none */
	uint64_t seed;           /* of the write cache (DLVM_FAULT_CACHE_LOSS) */
	char *states[STEPS + 1]; /* after each commit (0: before the window) */
	long writes[STEPS + 1];  /* writes of the window up to each commit */
	long early;              /* writes of nodes before their commit */
	unsigned nospc;          /* changes refused for want of space */
};

/* A store with a few devices and mappings, committed; returns it on a
 * watched device. */
static struct dlvm_thin_store *prefix(struct dlvm_dev *mem, struct dlvm_dev **wdev, struct t_gen *g)
{
	struct dlvm_thin_format_opts o = { .chunk_size = 65536,
					   .data_chunks = 12000,
					   .meta_blocks = 48 };
	struct dlvm_thin_open_opts oo = { .cache_blocks = 8 };
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_store_format(mem, &o, &e), &e);
	*wdev = watch_dev(mem);
	assert_ok(dlvm_thin_store_open(*wdev, &oo, &s, &e), &e);
	for (uint64_t id = 0; id < 3; id++)
		assert_ok(dlvm_thin_create(s, id, 0, &e), &e);
	for (int i = 0; i < 60; i++) {
		int r = random_change(s, g);
		if (r && r != -ENOSPC)
			fail_msg("prefix change %d: %d", i, r);
	}
	assert_ok(dlvm_thin_commit(s, &e), &e);
	return s;
}

/* What a store opened on a copy of mem's bytes now holds: the state a
 * crash at this point leaves. */
static char *durable_state(struct dlvm_dev *mem)
{
	struct dlvm_dev *copy = dlvm_memdev_new("thin0", mem->size, mem->sector_size);
	struct dlvm_thin_open_opts oo = { .cache_blocks = 8 };
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };

	assert_non_null(copy);
	memcpy(dlvm_memdev_data(copy), dlvm_memdev_data(mem), mem->size);
	assert_ok(dlvm_thin_store_open(copy, &oo, &s, &e), &e);
	char *st = t_state(s);
	dlvm_thin_store_close(s);
	dlvm_dev_close(copy);
	return st;
}

/* Write and end the job of commit k; in the reference run note the state
 * and the writes so far. */
static void end_job(struct window *w, struct dlvm_thin_store *s, struct dlvm_thin_job *job,
		    struct dlvm_dev *mem, long base, int k)
{
	struct dlvm_err e = { 0 };
	int r = dlvm_thin_commit_write(job, &e);

	r = dlvm_thin_commit_end(s, job, r, &e);
	if (w->fault_at < 0) {
		assert_ok(r, &e);
		w->states[k] = durable_state(mem);
		w->writes[k] = dlvm_memdev_writes(mem) - base;
	}
}

/* Run the window; with a fault, changes may fail. Returns the store on
 * the watched device *wdev. */
static struct dlvm_thin_store *run_window(struct window *w, struct dlvm_dev *mem,
					  struct dlvm_dev **wdev)
{
	struct t_gen g = { .s = 4242 };
	struct dlvm_err e = { 0 };
	struct dlvm_thin_store *s = prefix(mem, wdev, &g);
	long base = dlvm_memdev_writes(mem);
	bool ref = w->fault_at < 0;
	struct watch *wt = (*wdev)->priv;
	struct dlvm_thin_job *job = NULL;

	if (ref)
		w->states[0] = w->overlap ? durable_state(mem) : t_state(s);
	else
		dlvm_memdev_set_fault(mem, w->mode, w->fault_at);
	if (!ref && w->mode == DLVM_FAULT_CACHE_LOSS)
		dlvm_memdev_set_cache(mem, w->seed);
	w->writes[0] = 0;
	for (int step = 1; step <= STEPS && !wt->dead; step++) {
		for (int i = 0; i < OPS_PER_STEP && !wt->dead; i++) {
			if (job && i == OPS_PER_STEP / 2) {
				if (ref)
					assert_thin_clean(
							s); /* with the sealed one's frees apart */
				end_job(w, s, job, mem, base, step - 1);
				job = NULL;
			}
			long before = dlvm_memdev_writes(mem);
			int r = random_change(s, &g);
			if (ref && r && r != -ENOSPC)
				fail_msg("step %d change %d: %d (%s)", step, i, r,
					 dlvm_errno_name(r));
			w->nospc += ref && r;
			if (ref)
				w->early += dlvm_memdev_writes(mem) - before;
		}
		dlvm_err_clear(&e);
		if (w->overlap) {
			int r = wt->dead ? 0 : dlvm_thin_commit_start(s, &job, &e);
			if (ref) {
				assert_ok(r, &e);
				assert_non_null(job);
			}
			continue;
		}
		int r = dlvm_thin_commit(s, &e);
		if (ref) {
			assert_ok(r, &e);
			w->states[step] = t_state(s);
			w->writes[step] = dlvm_memdev_writes(mem) - base;
		}
	}
	if (job)
		end_job(w, s, job, mem, base, STEPS);
	return s;
}

static const char *mode_name(enum dlvm_fault_mode m)
{
	return m == DLVM_FAULT_EIO          ? "EIO"
	       : m == DLVM_FAULT_TEAR       ? "torn write"
	       : m == DLVM_FAULT_CACHE_LOSS ? "power loss with a write cache"
					    : "power loss";
}

/*
 * Crash at every write of a window, and check what opens. With
 * DLVM_FAULT_CACHE_LOSS the device caches writes until a flush, the power
 * goes at the write or flush that follows write n, and `seeds` runs per n
 * let different parts of the cache land: right after the last write of
 * commit j (its superblock) comes its last flush, so the store may open at
 * commit j or the one before; anywhere else at the last commit.
 */
static void crash_window_seeds(uint32_t ss, enum dlvm_fault_mode mode, bool overlap, unsigned seeds)
{
	struct window ref = { .ss = ss, .mode = mode, .overlap = overlap, .fault_at = -1 };
	struct dlvm_dev *mem = dlvm_memdev_new("thin0", 600 * 4096, ss), *wdev;
	struct dlvm_thin_store *s = run_window(&ref, mem, &wdev);
	unsigned old = 0, new = 0;

	dlvm_thin_store_close(s);
	dlvm_dev_close(wdev);
	dlvm_dev_close(mem);
	long total = ref.writes[STEPS];
	for (int k = 1; k <= STEPS; k++)
		assert_true(ref.writes[k] > ref.writes[k - 1] + 1);
	print_message("%s, sector size %u%s: %d commits, %ld writes, %ld of them before their "
		      "commit; %u changes refused with ENOSPC\n",
		      mode_name(mode), ss, overlap ? ", overlapped" : "", STEPS, total, ref.early,
		      ref.nospc);
	assert_true(ref.nospc < STEPS * OPS_PER_STEP / 4);
	assert_true(ref.early > 10);
	for (long run = 0; run < (total + 1) * seeds; run++) {
		long n = run / seeds;
		struct window w = ref;
		w.fault_at = n;
		w.seed = 1 + (uint64_t)run;
		mem = dlvm_memdev_new("thin0", 600 * 4096, ss);
		s = run_window(&w, mem, &wdev);
		dlvm_thin_store_close(s);
		dlvm_dev_close(wdev);
		/* power back on */
		dlvm_memdev_set_fault(mem, DLVM_FAULT_NONE, 0);
		int k = 1;
		while (k <= STEPS && ref.writes[k] <= n)
			k++;
		/* write n (from 0) belongs to commit k; k == STEPS + 1: nothing was lost.
		 * The last write of a commit is its superblock: torn, its first
		 * sector (which holds the whole structure) lands. */
		bool want_new = k <= STEPS && mode == DLVM_FAULT_TEAR && n == ref.writes[k] - 1;
		const char *want = ref.states[want_new ? k : k - 1];
		/* the last flush of commit k - 1 lost: that commit or the one before */
		const char *or_this = mode == DLVM_FAULT_CACHE_LOSS && k >= 2 &&
								      n == ref.writes[k - 1]
						      ? ref.states[k - 2]
						      : want;
		s = NULL;
		struct dlvm_err e = { 0 };
		struct dlvm_thin_open_opts oo = { .cache_blocks = 8 };
		if (dlvm_thin_store_open(mem, &oo, &s, &e))
			fail_msg("%s at write %ld (commit %d, seed %" PRIu64 "): open: %s",
				 mode_name(mode), n, k, w.seed, e.msg);
		char *got = t_state(s);
		if (strcmp(got, or_this) == 0 && or_this != want)
			want_new = false, want = or_this;
		else if (or_this != want && strcmp(got, want) == 0)
			want_new = true;
		if (strcmp(got, want))
			fail_msg("%s at write %ld (commit %d, seed %" PRIu64
				 "): opened\n%s\nexpected\n%s",
				 mode_name(mode), n, k, w.seed, got, want);
		free(got);
		old += !want_new;
		new += want_new;
		assert_thin_clean(s);
		/* the store goes on: more changes, a commit, the same after opening */
		struct t_gen g = { .s = 77 + (uint64_t)n };
		for (int i = 0; i < 30; i++) {
			int r = random_change(s, &g);
			if (r && r != -ENOSPC)
				fail_msg("after %s at write %ld: change %d: %d", mode_name(mode), n,
					 i, r);
		}
		assert_ok(dlvm_thin_commit(s, &e), &e);
		char *after = t_state(s);
		dlvm_thin_store_close(s);
		assert_ok(dlvm_thin_store_open(mem, &oo, &s, &e), &e);
		got = t_state(s);
		assert_string_equal(got, after);
		free(got);
		free(after);
		assert_thin_clean(s);
		dlvm_thin_store_close(s);
		dlvm_dev_close(mem);
	}
	print_message("  %u opened at the commit before the fault, %u at the one it tore\n", old,
		      new);
	/* a lost last flush must leave either commit now and then */
	if (mode == DLVM_FAULT_CACHE_LOSS)
		assert_true(new > 0 && old > new);
	for (int k = 0; k <= STEPS; k++)
		free(ref.states[k]);
}

static void crash_window(uint32_t ss, enum dlvm_fault_mode mode, bool overlap)
{
	crash_window_seeds(ss, mode, overlap, 1);
}

static void power_loss(void **state)
{
	(void)state;
	crash_window(4096, DLVM_FAULT_POWERLOSS, false);
	crash_window(512, DLVM_FAULT_POWERLOSS, false);
	crash_window(4096, DLVM_FAULT_POWERLOSS, true);
}

static void power_loss_with_write_cache(void **state)
{
	(void)state;
	crash_window_seeds(4096, DLVM_FAULT_CACHE_LOSS, false, 3);
	crash_window_seeds(512, DLVM_FAULT_CACHE_LOSS, false, 2);
	crash_window_seeds(4096, DLVM_FAULT_CACHE_LOSS, true, 3);
}

static void torn_write(void **state)
{
	(void)state;
	crash_window(512, DLVM_FAULT_TEAR, false);
	crash_window(4096, DLVM_FAULT_TEAR, false);
	crash_window(512, DLVM_FAULT_TEAR, true);
}

static void eio(void **state)
{
	(void)state;
	crash_window(4096, DLVM_FAULT_EIO, false);
	crash_window(4096, DLVM_FAULT_EIO, true);
}

/* An I/O error refuses the commit, names the device, and leaves the store
 * read-only until it is opened again at the last commit. */
static void eio_makes_read_only(void **state)
{
	struct dlvm_thin_format_opts o = { .chunk_size = 65536, .data_chunks = 100 };
	struct dlvm_dev *mem = dlvm_memdev_new("thin0", 64 * 4096, 4096);
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };
	uint64_t c;
	bool is_new;
	(void)state;

	assert_ok(dlvm_thin_store_format(mem, &o, &e), &e);
	assert_ok(dlvm_thin_store_open(mem, NULL, &s, &e), &e);
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	assert_ok(dlvm_thin_provision(s, 1, 5, &c, &is_new, NULL, &e), &e);
	assert_ok(dlvm_thin_commit(s, &e), &e);
	char *before = t_state(s);
	assert_ok(dlvm_thin_provision(s, 1, 6, &c, &is_new, NULL, &e), &e);
	dlvm_memdev_set_fault(mem, DLVM_FAULT_EIO, 0);
	assert_err(dlvm_thin_commit(s, &e), &e, -EIO, "thin0: write of 4096 bytes at offset");
	assert_true(strstr(e.msg, "Input/output error") != NULL);
	assert_err(dlvm_thin_provision(s, 1, 7, &c, &is_new, NULL, &e), &e, -EROFS,
		   "thin0: thin store refuses changes after an earlier error (thin0: write of 4096 "
		   "bytes at offset");
	assert_err(dlvm_thin_commit(s, &e), &e, -EROFS, "reopen it to continue");
	dlvm_thin_store_close(s);
	dlvm_memdev_set_fault(mem, DLVM_FAULT_NONE, 0);
	assert_ok(dlvm_thin_store_open(mem, NULL, &s, &e), &e);
	char *now = t_state(s);
	assert_string_equal(now, before);
	free(now);
	free(before);
	assert_ok(dlvm_thin_provision(s, 1, 6, &c, &is_new, NULL, &e), &e);
	assert_ok(dlvm_thin_commit(s, &e), &e);
	assert_thin_clean(s);
	dlvm_thin_store_close(s);
	dlvm_dev_close(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(power_loss),
		cmocka_unit_test(power_loss_with_write_cache),
		cmocka_unit_test(torn_write),
		cmocka_unit_test(eio),
		cmocka_unit_test(eio_makes_read_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
