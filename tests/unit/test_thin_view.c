/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of read-only views of a thin device (lib/thin/view.c): a view
 * answers as dlvm_thin_lookup and dlvm_thin_next_mapped do on the last
 * commit; a view of a snapshot keeps its answers while another open store
 * on the same device writes the origin, commits and deletes snapshots; an
 * open at any point of a commit sequence (a superblock half written
 * included) succeeds; an open whose device tree blocks a later commit used
 * again starts over, and gives up with EAGAIN when the store never holds
 * still; damaged mapping nodes are EBADMSG naming the block.
 */
#include "helpers.h"
#include "dlvm/thin.h"
#include "lib/thin/thin_int.h"

#define NONE DLVM_THIN_NONE

/* ---- small helpers ---- */

/* A memory device "thin0" of meta_blocks blocks holding a fresh store. */
static struct dlvm_dev *t_thin_dev(uint64_t meta_blocks, uint64_t data_chunks)
{
	struct dlvm_thin_format_opts o = { .chunk_size = 65536,
					   .data_chunks = data_chunks,
					   .meta_blocks = meta_blocks };
	struct dlvm_dev *dev = dlvm_memdev_new("thin0", meta_blocks * 4096, 4096);
	struct dlvm_err e = { 0 };

	assert_non_null(dev);
	assert_ok(dlvm_thin_store_format(dev, &o, &e), &e);
	return dev;
}

static struct dlvm_thin_store *t_open(struct dlvm_dev *dev, size_t cache)
{
	struct dlvm_thin_open_opts o = { .cache_blocks = cache };
	struct dlvm_thin_store *s = NULL;
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_store_open(dev, &o, &s, &e), &e);
	return s;
}

static void t_commit_thin(struct dlvm_thin_store *s)
{
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_commit(s, &e), &e);
}

static uint64_t t_txn(struct dlvm_thin_store *s)
{
	struct dlvm_thin_usage u;

	dlvm_thin_usage(s, &u);
	return u.transaction;
}

/* Provision virtual chunk v with an unwritten mask that depends on v, so
 * that views are seen to read the masks too. */
static uint64_t t_prov(struct dlvm_thin_store *s, uint64_t id, uint64_t v)
{
	struct dlvm_err e = { 0 };
	struct dlvm_thin_mapping m;

	assert_ok(dlvm_thin_provision_mapping(s, id, v, (uint16_t)(v * 40503u), &m, &e), &e);
	return m.chunk;
}

static void t_unmap(struct dlvm_thin_store *s, uint64_t id, uint64_t first, uint64_t count)
{
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_unmap(s, id, first, count, NULL, &e), &e);
}

static struct dlvm_thin_view *t_view(struct dlvm_dev *dev, uint64_t id, size_t cache)
{
	struct dlvm_thin_view *v = NULL;
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_thin_view_open(dev, id, cache, &v, &e), &e);
	assert_non_null(v);
	return v;
}

static uint64_t v_lookup(struct dlvm_thin_view *v, uint64_t vc)
{
	struct dlvm_err e = { 0 };
	uint64_t c;

	assert_ok(dlvm_thin_view_lookup(v, vc, &c, &e), &e);
	return c;
}

static uint64_t v_txn(const struct dlvm_thin_view *v)
{
	struct dlvm_thin_view_info in;

	dlvm_thin_view_info(v, &in);
	return in.txn;
}

/* Device id of s as an array of span chunks (NONE: a hole), by lookups. */
static uint64_t *t_map_of(struct dlvm_thin_store *s, uint64_t id, uint64_t span)
{
	uint64_t *m = malloc(span * sizeof(*m));
	struct dlvm_err e = { 0 };

	assert_non_null(m);
	for (uint64_t vc = 0; vc < span; vc++)
		assert_ok(dlvm_thin_lookup(s, id, vc, &m[vc], NULL, &e), &e);
	return m;
}

/*
 * The view must answer as model says (nothing is mapped at or past span):
 * each lookup in [0, span + 3), next_mapped from every `stride`-th chunk,
 * and the whole mapping in order through next_mapped.
 */
static void assert_view_is(struct dlvm_thin_view *v, const uint64_t *model, uint64_t span,
			   uint64_t stride)
{
	struct dlvm_err e = { 0 };
	uint64_t vc, c, want = 0;

	for (uint64_t i = 0; i < span + 3; i++) {
		uint64_t m = i < span ? model[i] : NONE;
		if (v_lookup(v, i) != m)
			fail_msg("view: virtual chunk %" PRIu64 " maps to %" PRIu64
				 ", not %" PRIu64,
				 i, v_lookup(v, i), m);
	}
	for (uint64_t from = 0; from <= span; from += stride) {
		uint64_t next = from;
		while (next < span && model[next] == NONE)
			next++;
		assert_ok(dlvm_thin_view_next_mapped(v, from, &vc, &c, &e), &e);
		if (next == span ? vc != NONE || c != NONE : vc != next || c != model[next])
			fail_msg("view: next mapped from %" PRIu64 " is %" PRIu64 " -> %" PRIu64
				 ", not %" PRIu64,
				 from, vc, c, next == span ? NONE : next);
	}
	for (uint64_t from = 0;; from = vc + 1) {
		assert_ok(dlvm_thin_view_next_mapped(v, from, &vc, NULL, &e), &e);
		while (want < span && model[want] == NONE)
			want++;
		if (vc == NONE)
			break;
		assert_int_equal(vc, want);
		want++;
	}
	assert_int_equal(want, span);
}

/* The view must answer as dlvm_thin_lookup and dlvm_thin_next_mapped on
 * device id of s, for every virtual chunk below span + 3. */
static void assert_view_matches_store(struct dlvm_thin_view *v, struct dlvm_thin_store *s,
				      uint64_t id, uint64_t span)
{
	struct dlvm_err e = { 0 };

	for (uint64_t vc = 0; vc < span + 3; vc++) {
		uint64_t want, wv, wc, gv, gc;
		assert_ok(dlvm_thin_lookup(s, id, vc, &want, NULL, &e), &e);
		if (v_lookup(v, vc) != want)
			fail_msg("device %" PRIu64 ": view maps %" PRIu64 " to %" PRIu64
				 ", the store "
				 "to %" PRIu64,
				 id, vc, v_lookup(v, vc), want);
		struct dlvm_thin_mapping sm, vm;
		assert_ok(dlvm_thin_lookup_mapping(s, id, vc, &sm, &e), &e);
		assert_ok(dlvm_thin_view_lookup_mapping(v, vc, &vm, &e), &e);
		if (vm.chunk != sm.chunk || vm.unwritten != sm.unwritten)
			fail_msg("device %" PRIu64 ": at %" PRIu64 " the view has chunk %" PRIu64
				 " unwritten 0x%x, the store chunk %" PRIu64 " unwritten 0x%x",
				 id, vc, vm.chunk, vm.unwritten, sm.chunk, sm.unwritten);
		assert_ok(dlvm_thin_next_mapped(s, id, vc, &wv, &wc, &e), &e);
		assert_ok(dlvm_thin_view_next_mapped(v, vc, &gv, &gc, &e), &e);
		if (gv != wv || gc != wc)
			fail_msg("device %" PRIu64 ": next mapped from %" PRIu64 ": view %" PRIu64
				 " -> %" PRIu64 ", store %" PRIu64 " -> %" PRIu64,
				 id, vc, gv, gc, wv, wc);
	}
}

/* Level of device id's mapping tree root. */
static unsigned t_root_level(struct dlvm_thin_store *s, uint64_t id)
{
	struct dlvm_err e = { 0 };
	struct th_devrec rec;
	struct th_cnode *c;

	assert_ok(th_dev_find(s, id, &rec, &e), &e);
	assert_ok(th_node_get(s, rec.root, TH_TREE_MAP, -1, &c, &e), &e);
	unsigned level = c->n.level;
	th_node_put(s, c);
	return level;
}

/* txn field of the node header in block blk, as the device holds it. */
static uint64_t t_block_txn(struct dlvm_dev *mem, uint64_t blk)
{
	return dlvm_get_le64(dlvm_memdev_data(mem) + blk * 4096 + 24);
}

/* ---- a device that calls the test back on reads and writes ---- */

struct hook {
	struct dlvm_dev *mem;
	/* after a read at off landed in buf */
	void (*after_read)(struct hook *h, uint64_t off, uint8_t *buf, size_t len);
	/* after a write, and with tear_sb also half way through a superblock write */
	void (*after_write)(struct hook *h, uint64_t off, bool half);
	bool tear_sb;
	long sb_reads; /* reads of block 0 or 1 */
	void *ctx;
};

static int h_pread(struct dlvm_dev *d, void *buf, size_t len, uint64_t off)
{
	struct hook *h = d->priv;
	int r = h->mem->ops->pread(h->mem, buf, len, off);

	if (!r && off < 2 * 4096)
		h->sb_reads++;
	if (!r && h->after_read)
		h->after_read(h, off, buf, len);
	return r;
}

static int h_pwrite(struct dlvm_dev *d, const void *buf, size_t len, uint64_t off)
{
	struct hook *h = d->priv;

	if (h->tear_sb && off < 2 * 4096 && len == 4096) {
		/* half of the 512-byte structure lands first */
		memcpy(dlvm_memdev_data(h->mem) + off, buf, 256);
		if (h->after_write)
			h->after_write(h, off, true);
	}
	int r = h->mem->ops->pwrite(h->mem, buf, len, off);
	if (!r && h->after_write)
		h->after_write(h, off, false);
	return r;
}

static int h_flush(struct dlvm_dev *d)
{
	struct hook *h = d->priv;
	return h->mem->ops->flush(h->mem);
}

static void h_close(struct dlvm_dev *d)
{
	free(d->priv); /* the memdev is the test's */
}

static const struct dlvm_dev_ops hook_ops = {
	.pread = h_pread,
	.pwrite = h_pwrite,
	.flush = h_flush,
	.close = h_close,
};

static struct dlvm_dev *hook_dev(struct dlvm_dev *mem, struct hook **out)
{
	struct dlvm_dev *d = calloc(1, sizeof(*d));
	struct hook *h = calloc(1, sizeof(*h));

	assert_non_null(d);
	assert_non_null(h);
	h->mem = mem;
	*d = *mem;
	d->ops = &hook_ops;
	d->priv = h;
	d->path = strdup(mem->path);
	d->name = strdup(mem->name);
	*out = h;
	return d;
}

/* ---- views answer as the store does ---- */

enum { BIG_SPAN = 100000 };

static void view_matches_store(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(4096, 400000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_err e = { 0 };
	struct t_gen g = { 7 };
	uint64_t *model[5];
	(void)state;

	/* an origin with a root two levels above its leaves, written at random */
	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	for (unsigned i = 0; i < 60000; i++)
		t_prov(s, 1, t_rnd(&g) % BIG_SPAN);
	t_commit_thin(s);
	assert_ok(dlvm_thin_snapshot(s, 1, 2, DLVM_THIN_DEV_READONLY, &e), &e);
	for (unsigned i = 0; i < 5000; i++)
		t_prov(s, 1, t_rnd(&g) % BIG_SPAN);
	t_unmap(s, 1, 20000, 3000);
	t_commit_thin(s);
	assert_ok(dlvm_thin_snapshot(s, 1, 3, 0, &e), &e);
	for (unsigned i = 0; i < 4000; i++)
		t_prov(s, 3, t_rnd(&g) % BIG_SPAN);
	assert_ok(dlvm_thin_snapshot(s, 3, 4, DLVM_THIN_DEV_READONLY, &e), &e);
	t_unmap(s, 3, 50000, 20000);
	for (unsigned i = 0; i < 3000; i++)
		t_prov(s, 1, t_rnd(&g) % BIG_SPAN);
	for (unsigned i = 0; i < 200; i++)
		t_unmap(s, 1, t_rnd(&g) % BIG_SPAN, 1 + t_rnd(&g) % 50);
	t_commit_thin(s);
	print_message("root levels: origin %u, snapshots %u %u %u\n", t_root_level(s, 1),
		      t_root_level(s, 2), t_root_level(s, 3), t_root_level(s, 4));
	assert_true(t_root_level(s, 1) >= 2);
	assert_true(t_root_level(s, 4) >= 2);

	static const size_t caches[] = { 1, 3, 0 };
	for (size_t k = 0; k < DLVM_ARRAY_SIZE(caches); k++) {
		for (uint64_t id = 1; id <= 4; id++) {
			struct dlvm_thin_view *v = t_view(dev, id, caches[k]);
			struct dlvm_thin_dev_info di;
			struct dlvm_thin_view_info vi;
			struct dlvm_thin_usage u;

			assert_ok(dlvm_thin_info(s, id, &di, &e), &e);
			dlvm_thin_usage(s, &u);
			dlvm_thin_view_info(v, &vi);
			assert_int_equal(vi.id, id);
			assert_int_equal(vi.txn, u.transaction);
			assert_int_equal(vi.chunk_size, 65536);
			assert_int_equal(vi.data_chunks, 400000);
			assert_int_equal(vi.mapped, di.mapped);
			assert_int_equal(vi.flags, di.flags);
			assert_memory_equal(vi.uuid, u.uuid, 16);
			assert_view_matches_store(v, s, id, BIG_SPAN);
			dlvm_thin_view_close(v);
		}
	}
	for (uint64_t id = 1; id <= 4; id++)
		model[id] = t_map_of(s, id, BIG_SPAN);

	/* changes not committed yet are not seen */
	for (unsigned i = 0; i < 2000; i++) {
		t_prov(s, 1, t_rnd(&g) % BIG_SPAN);
		t_prov(s, 3, t_rnd(&g) % BIG_SPAN);
	}
	assert_ok(dlvm_thin_delete(s, 2, &e), &e);
	for (uint64_t id = 1; id <= 4; id++) {
		struct dlvm_thin_view *v = t_view(dev, id, 0);
		assert_view_is(v, model[id], BIG_SPAN, 97);
		dlvm_thin_view_close(v);
	}
	t_commit_thin(s);
	struct dlvm_thin_view *v = NULL;
	assert_err(dlvm_thin_view_open(dev, 2, 0, &v, &e), &e, -ENOENT,
		   "thin0: thin device 2 does not exist");
	assert_null(v);
	v = t_view(dev, 1, 0);
	assert_view_matches_store(v, s, 1, BIG_SPAN);
	dlvm_thin_view_close(v);

	for (uint64_t id = 1; id <= 4; id++)
		free(model[id]);
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);
}

/* ---- a view of a snapshot while another store writes ---- */

enum { SPAN = 3000 };

static void view_holds_while_writer_commits(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(400, 40000);
	struct dlvm_thin_store *w = t_open(dev, 16);
	struct dlvm_err e = { 0 };
	struct t_gen g = { 11 };
	uint64_t snaps[8], nsnaps = 0, next_id = 20;
	(void)state;

	assert_ok(dlvm_thin_create(w, 1, 0, &e), &e);
	for (unsigned i = 0; i < 2500; i++)
		t_prov(w, 1, t_rnd(&g) % SPAN);
	t_commit_thin(w);
	for (uint64_t id = 10; id <= 12; id++)
		assert_ok(dlvm_thin_snapshot(w, 1, id, DLVM_THIN_DEV_READONLY, &e), &e);
	snaps[nsnaps++] = 10;
	snaps[nsnaps++] = 11;
	for (unsigned i = 0; i < 300; i++)
		t_prov(w, 1, t_rnd(&g) % SPAN);
	t_commit_thin(w);

	uint64_t *model = t_map_of(w, 12, SPAN), *origin = t_map_of(w, 1, SPAN);
	struct dlvm_thin_view *v = t_view(dev, 12, 4);
	uint64_t t0 = v_txn(v), dev_root0 = w->sb.dev_root;
	assert_int_equal(t0, t_txn(w));
	assert_view_is(v, model, SPAN, 1);
	/* a view of the origin breaks the rule: it answers as of t0 or not at all */
	struct dlvm_thin_view *vo = t_view(dev, 1, 1);
	unsigned as_of_t0 = 0, refused = 0;

	for (unsigned round = 0; round < 60; round++) {
		for (unsigned i = 0; i < 60; i++)
			t_prov(w, 1, t_rnd(&g) % SPAN);
		t_unmap(w, 1, t_rnd(&g) % SPAN, 1 + t_rnd(&g) % 200);
		if (round % 3 == 2) {
			/* the oldest other snapshot goes, a new one comes */
			assert_ok(dlvm_thin_delete(w, snaps[0], &e), &e);
			memmove(snaps, snaps + 1, --nsnaps * sizeof(*snaps));
			assert_ok(dlvm_thin_snapshot(w, 1, next_id, 0, &e), &e);
			for (unsigned i = 0; i < 30; i++)
				t_prov(w, next_id, t_rnd(&g) % SPAN);
			snaps[nsnaps++] = next_id++;
		}
		t_commit_thin(w);
		if (round % 10 == 9) {
			/* the writing host starts again */
			dlvm_thin_store_close(w);
			w = t_open(dev, 16);
		}
		/* the open view keeps its answers */
		for (unsigned i = 0; i < 300; i++) {
			uint64_t vc = t_rnd(&g) % SPAN;
			assert_int_equal(v_lookup(v, vc), model[vc]);
		}
		assert_view_is(v, model, SPAN, 13);
		assert_int_equal(v_txn(v), t0);
		/* so do the store and a new view of the snapshot */
		for (unsigned i = 0; i < 100; i++) {
			uint64_t vc = t_rnd(&g) % SPAN, c;
			assert_ok(dlvm_thin_lookup(w, 12, vc, &c, NULL, &e), &e);
			assert_int_equal(c, model[vc]);
		}
		struct dlvm_thin_view *nv = t_view(dev, 12, 0);
		assert_int_equal(v_txn(nv), t_txn(w));
		assert_view_is(nv, model, SPAN, 7);
		dlvm_thin_view_close(nv);
		/* a new view of the origin sees its last commit */
		nv = t_view(dev, 1, 0);
		assert_view_matches_store(nv, w, 1, SPAN);
		dlvm_thin_view_close(nv);
		for (unsigned i = 0; i < 100; i++) {
			uint64_t vc = t_rnd(&g) % SPAN, c;
			dlvm_err_clear(&e);
			int r = dlvm_thin_view_lookup(vo, vc, &c, &e);
			if (r == 0) {
				assert_int_equal(c, origin[vc]);
				as_of_t0++;
				continue;
			}
			assert_int_equal(r, -EBADMSG);
			assert_non_null(strstr(e.msg, "thin0: thin device 1: node at block "));
			assert_non_null(strstr(e.msg, "later than the store's transaction"));
			refused++;
		}
	}
	print_message("a view of the origin as it changed: %u answers as of txn %" PRIu64
		      ", %u refused\n",
		      as_of_t0, t0, refused);
	assert_true(as_of_t0 > 0);
	assert_true(refused > 0);
	dlvm_thin_view_close(vo);
	free(origin);
	/* the device tree the view was opened from is gone: its root block
	 * holds a node of a later transaction */
	print_message("device tree root of txn %" PRIu64 " (block %" PRIu64
		      ") now holds txn %" PRIu64 "; store at txn %" PRIu64 "\n",
		      t0, dev_root0, t_block_txn(dev, dev_root0), t_txn(w));
	assert_true(t_block_txn(dev, dev_root0) > t0);
	assert_view_is(v, model, SPAN, 1);
	dlvm_thin_view_close(v);
	free(model);
	dlvm_thin_store_close(w);
	dlvm_dev_close(dev);
}

/* ---- an open at every write of a sequence of commits ---- */

enum { CSPAN = 2000 };

struct seq {
	struct dlvm_dev *mem;
	struct dlvm_thin_view *held; /* of snapshot 5, open all along */
	uint64_t *snap5;
	uint64_t *committed, *current; /* origin at the last commit, and now */
	uint64_t txn;                  /* of the last commit */
	bool has6_committed, has6_current;
	unsigned points, older; /* opens; opens at txn while txn + 1 was written */
	struct t_gen g;
};

static void seq_point(struct hook *h, uint64_t off, bool half)
{
	struct seq *q = h->ctx;
	struct dlvm_thin_view *v;
	struct dlvm_err e = { 0 };
	(void)off;

	q->points++;
	/* the snapshot: always there, always the same */
	v = t_view(q->mem, 5, 0);
	uint64_t t = v_txn(v);
	if (t != q->txn && t != q->txn + 1)
		fail_msg("view at txn %" PRIu64 " while the last commit is %" PRIu64, t, q->txn);
	if (half)
		q->older += t == q->txn;
	for (unsigned i = 0; i < 50; i++) {
		uint64_t vc = t_rnd(&q->g) % CSPAN;
		assert_int_equal(v_lookup(v, vc), q->snap5[vc]);
	}
	dlvm_thin_view_close(v);
	for (unsigned i = 0; i < 50; i++) {
		uint64_t vc = t_rnd(&q->g) % CSPAN;
		assert_int_equal(v_lookup(q->held, vc), q->snap5[vc]);
	}
	/* the origin as of the commit the view found */
	v = t_view(q->mem, 1, 0);
	t = v_txn(v);
	assert_view_is(v, t == q->txn ? q->committed : q->current, CSPAN, 101);
	dlvm_thin_view_close(v);
	/* device 6 comes and goes */
	v = NULL;
	int r = dlvm_thin_view_open(q->mem, 6, 0, &v, &e);
	if (r == 0) {
		t = v_txn(v);
		assert_true(t == q->txn ? q->has6_committed : q->has6_current);
		dlvm_thin_view_close(v);
	} else {
		/* absent in the commit the open found */
		assert_int_equal(r, -ENOENT);
		assert_true(!q->has6_committed || !q->has6_current);
	}
}

static void view_open_at_every_write(void **state)
{
	struct dlvm_dev *mem = t_thin_dev(200, 20000);
	struct hook *h;
	struct dlvm_dev *dev = hook_dev(mem, &h);
	struct dlvm_thin_store *w = t_open(dev, 8);
	struct seq q = { .mem = mem, .g = { 3 } };
	struct dlvm_err e = { 0 };
	struct t_gen g = { 5 };
	unsigned halves = 0;
	(void)state;

	assert_ok(dlvm_thin_create(w, 1, 0, &e), &e);
	for (unsigned i = 0; i < 1500; i++)
		t_prov(w, 1, t_rnd(&g) % CSPAN);
	t_commit_thin(w);
	assert_ok(dlvm_thin_snapshot(w, 1, 5, DLVM_THIN_DEV_READONLY, &e), &e);
	assert_ok(dlvm_thin_snapshot(w, 1, 6, 0, &e), &e);
	for (unsigned i = 0; i < 200; i++)
		t_prov(w, 1, t_rnd(&g) % CSPAN);
	t_commit_thin(w);
	q.snap5 = t_map_of(w, 5, CSPAN);
	q.current = t_map_of(w, 1, CSPAN);
	q.committed = t_map_of(w, 1, CSPAN);
	q.txn = t_txn(w);
	q.has6_committed = q.has6_current = true;
	q.held = t_view(mem, 5, 2);

	h->ctx = &q;
	h->after_write = seq_point;
	h->tear_sb = true;
	seq_point(h, 0, false);
	for (unsigned c = 0; c < 10; c++) {
		for (unsigned i = 0; i < 40; i++) {
			uint64_t vc = t_rnd(&g) % CSPAN;
			if (t_rnd(&g) % 4) {
				q.current[vc] = t_prov(w, 1, vc);
				continue;
			}
			uint64_t n = 1 + t_rnd(&g) % 30;
			t_unmap(w, 1, vc, n);
			for (uint64_t k = vc; k < vc + n && k < CSPAN; k++)
				q.current[k] = NONE;
		}
		if (c == 3) {
			assert_ok(dlvm_thin_delete(w, 6, &e), &e);
			q.has6_current = false;
		}
		if (c == 6) {
			assert_ok(dlvm_thin_snapshot(w, 1, 6, 0, &e), &e);
			q.has6_current = true;
		}
		t_commit_thin(w);
		halves++;
		q.txn = t_txn(w);
		memcpy(q.committed, q.current, CSPAN * sizeof(uint64_t));
		q.has6_committed = q.has6_current;
	}
	h->after_write = NULL;
	print_message("%u opens at every write of 10 commits; with a superblock half written, "
		      "%u of %u opened at the commit before\n",
		      q.points, q.older, halves);
	assert_true(q.points > 10 * 4);
	assert_int_equal(q.older, halves);
	assert_view_is(q.held, q.snap5, CSPAN, 1);

	dlvm_thin_view_close(q.held);
	free(q.snap5);
	free(q.current);
	free(q.committed);
	dlvm_thin_store_close(w);
	dlvm_dev_close(dev);
	dlvm_dev_close(mem);
}

/* ---- opens that start over ---- */

/* After the view reads superblock slot 1, another host commits three times. */
struct burst {
	struct dlvm_thin_store *w;
	struct t_gen g;
	unsigned left; /* bursts still to run */
	unsigned commits;
};

static void burst_after_slot1(struct hook *h, uint64_t off, uint8_t *buf, size_t len)
{
	struct burst *b = h->ctx;
	(void)buf;
	(void)len;

	if (off != 4096 || !b->left)
		return;
	b->left--;
	for (unsigned c = 0; c < 3; c++) {
		for (unsigned i = 0; i < 20; i++)
			t_prov(b->w, 1, t_rnd(&b->g) % SPAN);
		t_commit_thin(b->w);
		b->commits++;
	}
}

static void view_open_starts_over(void **state)
{
	struct dlvm_dev *mem = t_thin_dev(300, 40000);
	struct dlvm_thin_store *w = t_open(mem, 0);
	struct burst b = { .w = w, .g = { 13 } };
	struct dlvm_err e = { 0 };
	struct t_gen g = { 17 };
	struct hook *h;
	struct dlvm_dev *dev = hook_dev(mem, &h);
	(void)state;

	assert_ok(dlvm_thin_create(w, 1, 0, &e), &e);
	for (unsigned i = 0; i < 800; i++)
		t_prov(w, 1, t_rnd(&g) % SPAN);
	assert_ok(dlvm_thin_snapshot(w, 1, 2, DLVM_THIN_DEV_READONLY, &e), &e);
	t_commit_thin(w);
	uint64_t *model = t_map_of(w, 2, SPAN);
	h->ctx = &b;
	h->after_read = burst_after_slot1;

	/* the device tree the first attempt reads was reused meanwhile */
	uint64_t t0 = t_txn(w), root0 = w->sb.dev_root;
	b.left = 1;
	struct dlvm_thin_view *v = t_view(dev, 2, 0);
	assert_int_equal(b.commits, 3);
	assert_true(t_block_txn(mem, root0) > t0);
	assert_int_equal(h->sb_reads, 6); /* read, read again, the second attempt */
	assert_int_equal(v_txn(v), t_txn(w));
	assert_int_equal(v_txn(v), t0 + 3);
	assert_view_is(v, model, SPAN, 1);
	dlvm_thin_view_close(v);

	/* the store never holds still: give up */
	b.left = UINT32_MAX;
	b.commits = 0;
	v = NULL;
	assert_err(dlvm_thin_view_open(dev, 2, 0, &v, &e), &e, -EAGAIN,
		   "thin0: thin device 2: the store changed under each of 8 attempts to open a "
		   "view "
		   "(last: thin0: thin device 2: node at block ");
	print_message("%s\n", e.msg);
	assert_null(v);
	assert_int_equal(b.commits, 8 * 2 * 3);

	/* it holds still again */
	b.left = 0;
	v = t_view(dev, 2, 0);
	assert_int_equal(v_txn(v), t_txn(w));
	assert_view_is(v, model, SPAN, 1);
	dlvm_thin_view_close(v);
	free(model);
	dlvm_thin_store_close(w);
	dlvm_dev_close(dev);
	dlvm_dev_close(mem);
}

/* Flip a byte of the next read of block `blk`. */
struct tear {
	uint64_t blk;
	bool armed;
};

static void tear_read(struct hook *h, uint64_t off, uint8_t *buf, size_t len)
{
	struct tear *t = h->ctx;

	if (t->armed && off == t->blk * 4096 && len >= 4096) {
		buf[100] ^= 1;
		t->armed = false;
	}
}

static void view_torn_superblock(void **state)
{
	struct dlvm_dev *mem = t_thin_dev(300, 40000);
	struct dlvm_thin_store *w = t_open(mem, 0);
	struct dlvm_err e = { 0 };
	struct tear t = { 0 };
	struct hook *h;
	struct dlvm_dev *dev = hook_dev(mem, &h);
	(void)state;

	assert_ok(dlvm_thin_create(w, 1, 0, &e), &e);
	for (uint64_t vc = 0; vc < 500; vc++)
		t_prov(w, 1, vc * 3);
	t_commit_thin(w);
	t_prov(w, 1, 2000);
	t_commit_thin(w);
	assert_ok(dlvm_thin_snapshot(w, 1, 2, 0, &e), &e);
	t_commit_thin(w);
	/* txn 1 (format) in slot 0, 2 in slot 1, 3 in slot 0, 4 in slot 1 */
	assert_int_equal(t_txn(w), 4);
	dlvm_thin_store_close(w);

	/* a read of the newest slot that a write overlaps: read it again */
	h->ctx = &t;
	h->after_read = tear_read;
	t.blk = 1;
	t.armed = true;
	struct dlvm_thin_view *v = t_view(dev, 2, 0);
	assert_false(t.armed);
	assert_int_equal(v_txn(v), 4);
	assert_int_equal(h->sb_reads, 4);
	dlvm_thin_view_close(v);

	/* a slot that stays damaged: the other one, as the store's open does */
	uint8_t *d = dlvm_memdev_data(mem);
	d[4096 + 100] ^= 1;
	h->sb_reads = 0;
	w = t_open(mem, 0);
	assert_int_equal(t_txn(w), 3);
	v = t_view(dev, 1, 0);
	assert_int_equal(v_txn(v), 3);
	assert_int_equal(h->sb_reads, 2 * 8);
	assert_view_matches_store(v, w, 1, 2100);
	dlvm_thin_view_close(v);
	v = NULL;
	assert_err(dlvm_thin_view_open(dev, 2, 0, &v, &e), &e, -ENOENT,
		   "thin0: thin device 2 does not exist");
	dlvm_thin_store_close(w);

	/* both */
	d[100] ^= 1;
	assert_err(dlvm_thin_view_open(dev, 1, 0, &v, &e), &e, -EBADMSG,
		   "thin0: both superblock slots are unreadable: superblock slot 0 (block 0): "
		   "checksum mismatch");
	assert_non_null(strstr(e.msg, "; superblock slot 1 (block 1): checksum mismatch"));
	assert_null(v);
	dlvm_dev_close(dev);
	dlvm_dev_close(mem);
}

/* ---- damage ---- */

enum {
	DMG_CRC,
	DMG_ELSEWHERE,
	DMG_TXN,
	DMG_LEVEL,
	DMG_TYPE,
	DMG_BELOW,
	DMG_ABOVE,
	DMG_ORDER,
	DMG_EMPTY,
	DMG_ZERO,
	DMG_CHUNK,
	DMG_COUNT
};

static void view_damaged_mapping_node(void **state)
{
	struct dlvm_dev *mem = t_thin_dev(300, 40000);
	struct dlvm_thin_store *w = t_open(mem, 0);
	struct th_node *rn = malloc(sizeof(*rn)), *ln = malloc(sizeof(*ln)),
		       *n = malloc(sizeof(*n));
	uint8_t *orig = malloc(4096), *d = dlvm_memdev_data(mem);
	struct dlvm_err e = { 0 };
	struct th_devrec rec;
	struct th_cnode *c;
	char msg[200], want[300];
	uint64_t chunk, vc;
	(void)state;

	assert_non_null(rn);
	assert_non_null(ln);
	assert_non_null(n);
	assert_non_null(orig);
	assert_ok(dlvm_thin_create(w, 1, 0, &e), &e);
	for (uint64_t i = 0; i < 3000; i++)
		t_prov(w, 1, i);
	t_commit_thin(w);
	uint64_t T = t_txn(w), dev_root = w->sb.dev_root;
	assert_ok(th_dev_find(w, 1, &rec, &e), &e);
	assert_ok(th_node_get(w, rec.root, TH_TREE_MAP, -1, &c, &e), &e);
	*rn = c->n;
	th_node_put(w, c);
	dlvm_thin_store_close(w);
	assert_int_equal(rn->level, 1);
	assert_true(rn->nr >= 8);

	/* leaf L (the fourth) holds [lo, hi]; leaf M (the seventh) is left alone */
	uint64_t L = rn->u.v[3], lo = rn->keys[3], hi = rn->keys[4] - 1;
	uint64_t M = rn->u.v[6], mlo = rn->keys[6];
	struct th_limits lim = { .meta_blocks = 300,
				 .data_chunks = 40000,
				 .max_txn = T,
				 .map_flags = 0xffff };
	memcpy(orig, d + L * 4096, 4096);
	assert_ok(th_node_decode(orig, L, &lim, ln, &e), &e);
	assert_int_equal(ln->keys[0], lo);

	for (int k = 0; k < DMG_COUNT; k++) {
		uint8_t *blk = d + L * 4096;
		memcpy(blk, orig, 4096);
		*n = *ln;
		switch (k) {
		case DMG_CRC:
			blk[3000] ^= 0x40;
			snprintf(msg, sizeof(msg), "checksum mismatch (stored 0x");
			break;
		case DMG_ELSEWHERE:
			memcpy(blk, d + M * 4096, 4096);
			snprintf(msg, sizeof(msg),
				 "field blocknr is %" PRIu64 " (a node written "
				 "elsewhere)",
				 M);
			break;
		case DMG_TXN:
			n->txn = T + 1;
			th_node_encode(n, blk);
			snprintf(msg, sizeof(msg),
				 "field txn is %" PRIu64 ", later than the store's "
				 "transaction %" PRIu64,
				 T + 1, T);
			break;
		case DMG_LEVEL:
			memset(n, 0, sizeof(*n));
			*n = (struct th_node){ .blocknr = L,
					       .txn = T,
					       .type = TH_TREE_MAP,
					       .level = 1,
					       .nr = 2,
					       .keys = { lo, lo + 1 } };
			n->u.v[0] = M;
			n->u.v[1] = rn->u.v[7];
			th_node_encode(n, blk);
			snprintf(msg, sizeof(msg), "field level is 1 where a level 0 node belongs");
			break;
		case DMG_TYPE:
			memset(n, 0, sizeof(*n));
			*n = (struct th_node){ .blocknr = L, .txn = T, .type = TH_TREE_DEV };
			th_node_encode(n, blk);
			snprintf(msg, sizeof(msg),
				 "field type is 1 where a node of tree type 2 "
				 "belongs");
			break;
		case DMG_BELOW:
			n->keys[0] = lo - 1;
			th_node_encode(n, blk);
			snprintf(msg, sizeof(msg),
				 "keys %" PRIu64 " to %" PRIu64 " are outside the "
				 "range %" PRIu64 " to %" PRIu64 " its parent gives",
				 lo - 1, n->keys[n->nr - 1], lo, hi);
			break;
		case DMG_ABOVE:
			n->keys[n->nr - 1] = hi + 1;
			th_node_encode(n, blk);
			snprintf(msg, sizeof(msg),
				 "keys %" PRIu64 " to %" PRIu64 " are outside the "
				 "range %" PRIu64 " to %" PRIu64 " its parent gives",
				 lo, hi + 1, lo, hi);
			break;
		case DMG_ORDER:
			n->keys[1] = n->keys[0];
			th_node_encode(n, blk);
			snprintf(msg, sizeof(msg),
				 "key 1 (%" PRIu64 ") is not above key 0 (%" PRIu64 ")", lo, lo);
			break;
		case DMG_EMPTY:
			n->nr = 0;
			th_node_encode(n, blk);
			snprintf(msg, sizeof(msg), "an empty node below the root");
			break;
		case DMG_ZERO:
			memset(blk, 0, 4096);
			snprintf(msg, sizeof(msg), "bad magic");
			break;
		case DMG_CHUNK:
			n->u.v[0] = 40000;
			th_node_encode(n, blk);
			snprintf(msg, sizeof(msg),
				 "entry 0 maps to data chunk 40000, beyond the 40000 "
				 "data chunks");
			break;
		}
		snprintf(want, sizeof(want), "thin0: thin device 1: node at block %" PRIu64 ": %s",
			 L, msg);
		print_message("%s\n", want);
		/* the root is read at open, the leaf at the first lookup in it */
		struct dlvm_thin_view *v = t_view(mem, 1, 0);
		assert_err(dlvm_thin_view_lookup(v, lo, &chunk, &e), &e, -EBADMSG, want);
		assert_int_equal(chunk, NONE);
		assert_err(dlvm_thin_view_next_mapped(v, lo, &vc, &chunk, &e), &e, -EBADMSG, want);
		assert_int_equal(vc, NONE);
		assert_int_equal(v_lookup(v, mlo), mlo);
		/* repaired: the damaged node was not kept */
		memcpy(blk, orig, 4096);
		assert_int_equal(v_lookup(v, lo), lo);
		assert_int_equal(v_lookup(v, hi), hi);
		dlvm_thin_view_close(v);
	}

	/* damage the open reads: no retry, the block named */
	struct hook *h;
	struct dlvm_dev *dev = hook_dev(mem, &h);
	struct dlvm_thin_view *v = NULL;
	static const char *what[] = { "mapping tree root", "device tree root" };
	uint64_t blocks[] = { rec.root, dev_root };
	for (int k = 0; k < 2; k++) {
		d[blocks[k] * 4096 + 2000] ^= 0x08;
		snprintf(want, sizeof(want),
			 "thin0: thin device 1: node at block %" PRIu64 ": checksum mismatch",
			 blocks[k]);
		print_message("%s: %s\n", what[k], want);
		h->sb_reads = 0;
		assert_err(dlvm_thin_view_open(dev, 1, 0, &v, &e), &e, -EBADMSG, want);
		assert_null(v);
		assert_int_equal(h->sb_reads, 4);
		d[blocks[k] * 4096 + 2000] ^= 0x08;
	}
	v = t_view(dev, 1, 0);
	assert_int_equal(v_lookup(v, 2999), 2999);
	dlvm_thin_view_close(v);

	dlvm_dev_close(dev);
	free(rn);
	free(ln);
	free(n);
	free(orig);
	dlvm_dev_close(mem);
}

/* ---- errors and edges ---- */

static void view_errors(void **state)
{
	struct dlvm_dev *dev = t_thin_dev(64, 1000);
	struct dlvm_thin_store *s = t_open(dev, 0);
	struct dlvm_thin_view *v = NULL;
	struct dlvm_thin_view_info in;
	struct dlvm_err e = { 0 };
	uint64_t vc, c;
	(void)state;

	assert_ok(dlvm_thin_create(s, 1, 0, &e), &e);
	t_prov(s, 1, 5);
	t_prov(s, 1, DLVM_THIN_MAX_ID);
	assert_ok(dlvm_thin_create(s, 3, DLVM_THIN_DEV_READONLY, &e), &e);
	t_commit_thin(s);

	/* no such device */
	static const uint64_t missing[] = { 0, 2, 4, DLVM_THIN_MAX_ID, DLVM_THIN_MAX_ID + 1 };
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(missing); i++) {
		char want[100];
		snprintf(want, sizeof(want), "thin0: thin device %" PRIu64 " does not exist",
			 missing[i]);
		assert_err(dlvm_thin_view_open(dev, missing[i], 0, &v, &e), &e, -ENOENT, want);
		assert_null(v);
	}

	/* an empty device */
	v = t_view(dev, 3, 0);
	dlvm_thin_view_info(v, &in);
	assert_int_equal(in.id, 3);
	assert_int_equal(in.mapped, 0);
	assert_int_equal(in.flags, DLVM_THIN_DEV_READONLY);
	assert_int_equal(v_lookup(v, 0), NONE);
	assert_int_equal(v_lookup(v, DLVM_THIN_MAX_ID), NONE);
	assert_ok(dlvm_thin_view_next_mapped(v, 0, &vc, &c, &e), &e);
	assert_int_equal(vc, NONE);
	assert_int_equal(c, NONE);
	dlvm_thin_view_close(v);

	/* the ends of the key space */
	v = t_view(dev, 1, 0);
	dlvm_thin_view_info(v, &in);
	assert_int_equal(in.mapped, 2);
	assert_int_equal(in.flags, 0);
	assert_int_equal(v_lookup(v, 5), 0);
	assert_int_equal(v_lookup(v, DLVM_THIN_MAX_ID), 1);
	assert_err(dlvm_thin_view_lookup(v, DLVM_THIN_MAX_ID + 1, &c, &e), &e, -EINVAL,
		   "thin0: virtual chunk 281474976710656 is above 281474976710655");
	assert_int_equal(c, NONE);
	assert_ok(dlvm_thin_view_next_mapped(v, 6, &vc, &c, &e), &e);
	assert_int_equal(vc, DLVM_THIN_MAX_ID);
	assert_int_equal(c, 1);
	assert_ok(dlvm_thin_view_next_mapped(v, DLVM_THIN_MAX_ID + 1, &vc, &c, &e), &e);
	assert_int_equal(vc, NONE);
	assert_ok(dlvm_thin_view_next_mapped(v, UINT64_MAX, &vc, NULL, &e), &e);
	assert_int_equal(vc, NONE);
	dlvm_thin_view_close(v);
	dlvm_thin_view_close(NULL);

	/* a format this build does not know, in both slots */
	uint8_t *d = dlvm_memdev_data(dev);
	for (uint32_t slot = 0; slot < 2; slot++) {
		struct th_sb sb;
		assert_ok(th_sb_decode(d + slot * 4096, slot, &sb, &e), &e);
		sb.incompat = 2;
		th_sb_encode(&sb, d + slot * 4096);
	}
	assert_err(dlvm_thin_view_open(dev, 1, 0, &v, &e), &e, -ENOTSUP,
		   "thin0: both superblock slots are unreadable: superblock slot 0 (block 0): "
		   "unknown incompatible features 0x2");
	dlvm_thin_store_close(s);
	dlvm_dev_close(dev);

	/* not a store */
	dev = dlvm_memdev_new("blank", 64 * 4096, 512);
	assert_err(dlvm_thin_view_open(dev, 1, 0, &v, &e), &e, -ENODATA,
		   "blank: no thin store (no superblock magic in blocks 0 and 1)");
	assert_null(v);
	dlvm_dev_close(dev);
	dev = dlvm_memdev_new("tiny", 4096, 512);
	assert_err(dlvm_thin_view_open(dev, 1, 0, &v, &e), &e, -ENODATA,
		   "tiny: too small for a thin store (4096 bytes)");
	dlvm_dev_close(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(view_matches_store),
		cmocka_unit_test(view_holds_while_writer_commits),
		cmocka_unit_test(view_open_at_every_write),
		cmocka_unit_test(view_open_starts_over),
		cmocka_unit_test(view_torn_superblock),
		cmocka_unit_test(view_damaged_mapping_node),
		cmocka_unit_test(view_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
