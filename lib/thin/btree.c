/* SPDX-License-Identifier: MIT */
/*
 * Copy-on-write B-trees with shadowing, after the published design of
 * Linux's dm-thin persistent data.
 *
 * Keys are u64; an internal node's key i is a lower bound of every key under
 * child i and above every key under child i-1. A change walks down from the
 * root and "shadows" each node on its way: a node made in this transaction
 * and referenced once is changed in place, any other is copied into a new
 * block (th_shadow), so no node a commit references is ever written. Inserts
 * split full nodes on the way down (in halves, or two thirds to one third
 * when the new key goes after every key of the node); removals merge or
 * rebalance a node that fell below a third full with a sibling on the way
 * back up, and drop a root left with one child.
 */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "thin_int.h"

static unsigned max_entries(const struct th_node *n)
{
	return th_max_entries(n->type, n->level);
}

static unsigned min_entries(const struct th_node *n)
{
	return max_entries(n) / 3;
}

/* In-memory size of a value (device records are a struct, the rest u64). */
static size_t vsize(const struct th_node *n)
{
	return n->type == TH_TREE_DEV && n->level == 0 ? sizeof(struct th_devrec) : 8;
}

static uint8_t *valp(struct th_node *n, unsigned i)
{
	return (uint8_t *)&n->u + vsize(n) * i;
}

/* Copy cnt entries from src[si..] to dst[di..] (the same node is fine). */
static void entries_copy(struct th_node *dst, unsigned di, struct th_node *src, unsigned si,
			 unsigned cnt)
{
	memmove(&dst->keys[di], &src->keys[si], cnt * sizeof(uint64_t));
	memmove(valp(dst, di), valp(src, si), cnt * vsize(src));
}

static void entry_insert(struct th_node *n, unsigned i, uint64_t key, const void *val)
{
	assert(n->nr < max_entries(n) && i <= n->nr);
	entries_copy(n, i + 1, n, i, n->nr - i);
	n->keys[i] = key;
	memcpy(valp(n, i), val, vsize(n));
	n->nr++;
}

static void entries_remove(struct th_node *n, unsigned i, unsigned cnt)
{
	entries_copy(n, i, n, i + cnt, n->nr - i - cnt);
	n->nr -= cnt;
	memset(&n->keys[n->nr], 0, cnt * sizeof(uint64_t));
	memset(valp(n, n->nr), 0, cnt * vsize(n));
}

/* One more reference to everything node n points to. */
static void inc_children(struct dlvm_thin_store *s, const struct th_node *n)
{
	for (unsigned i = 0; i < n->nr; i++) {
		if (n->level > 0)
			th_meta_inc(s, n->u.v[i]);
		else if (n->type == TH_TREE_MAP)
			th_data_inc(s, th_map_chunk(n->u.v[i]));
		else
			th_meta_inc(s, n->u.d[i].root);
	}
}

int th_shadow(struct dlvm_thin_store *s, uint64_t blk, uint16_t type, int level,
	      struct th_cnode **out, struct dlvm_err *err)
{
	struct th_cnode *c, *nc;
	int r = th_node_get(s, blk, type, level, &c, err);

	if (r)
		return r;
	if (th_bit(s->mnew, blk) && s->mref[blk] == 1) {
		th_node_dirty(s, c);
		*out = c;
		return 0;
	}
	r = th_node_new(s, c->n.type, c->n.level, &nc, err);
	if (r) {
		th_node_put(s, c);
		return r;
	}
	uint64_t nb = nc->n.blocknr;
	nc->n = c->n;
	nc->n.blocknr = nb;
	nc->n.txn = s->sb.txn + 1;
	/* The copy takes over the reference that pointed to blk. If blk was
	 * shared, its other holders keep theirs, so what it points to gains a
	 * holder; if not, blk is freed and its children change hands. */
	if (s->mref[blk] > 1)
		inc_children(s, &nc->n);
	th_node_put(s, c);
	th_meta_dec(s, blk);
	*out = nc;
	return 0;
}

int th_tree_depth(struct dlvm_thin_store *s, uint64_t root, uint16_t type, unsigned *depth,
		  struct dlvm_err *err)
{
	struct th_cnode *c;
	int r = th_node_get(s, root, type, -1, &c, err);

	if (r)
		return r;
	*depth = c->n.level + 1u;
	th_node_put(s, c);
	return 0;
}

/* The store's reader: its cache, type and level checked. */
struct store_reader {
	struct dlvm_thin_store *s;
	bool *shared; /* set when a node read is referenced more than once */
};

static int store_get(void *ctx, uint64_t blk, const struct th_place *p, struct th_cnode **out,
		     struct dlvm_err *err)
{
	struct store_reader *sr = ctx;
	int r = th_node_get(sr->s, blk, p->type, p->level, out, err);

	if (!r && sr->shared && sr->s->mref[blk] > 1)
		*sr->shared = true;
	return r;
}

static void store_put(void *ctx, struct th_cnode *c)
{
	struct store_reader *sr = ctx;

	th_node_put(sr->s, c);
}

int th_btree_lookup(struct dlvm_thin_store *s, uint64_t root, uint16_t type, uint64_t key,
		    bool *found, uint64_t *val, struct th_devrec *rec, bool *shared,
		    struct dlvm_err *err)
{
	struct store_reader sr = { .s = s, .shared = shared };
	struct th_reader rd = { .get = store_get, .put = store_put, .ctx = &sr };

	if (shared)
		*shared = false;
	return th_btree_find(&rd, root, type, key, found, val, rec, err);
}

/*
 * How many of the entries of full node n stay in the left node of a split
 * made to insert key: half, or, when key goes after every key of n (a volume
 * written in order appends), two thirds, so that such writes leave nodes two
 * thirds full instead of half full while the right node keeps a third.
 */
static unsigned split_point(const struct th_node *n, uint64_t key)
{
	return key > n->keys[n->nr - 1] ? n->nr - min_entries(n) : n->nr / 2;
}

/* Move the upper part of full node c into a new node; the new node goes in
 * parent p right after c (entry i). */
static int split_child(struct dlvm_thin_store *s, struct th_cnode *p, unsigned i,
		       struct th_cnode *c, uint64_t key, struct th_cnode **sib,
		       struct dlvm_err *err)
{
	struct th_cnode *r;
	int rc = th_node_new(s, c->n.type, c->n.level, &r, err);

	if (rc)
		return rc;
	unsigned half = split_point(&c->n, key), moved = c->n.nr - half;
	entries_copy(&r->n, 0, &c->n, half, moved);
	r->n.nr = (uint16_t)moved;
	entries_remove(&c->n, half, moved);
	uint64_t b = r->n.blocknr;
	entry_insert(&p->n, i + 1, r->n.keys[0], &b);
	*sib = r;
	return 0;
}

/* Root n is full: move its entries into two new children and make it their
 * parent, one level higher (the root keeps its block). */
static int split_root(struct dlvm_thin_store *s, struct th_cnode *n, uint64_t key,
		      struct dlvm_err *err)
{
	struct th_cnode *l, *r;
	int rc;

	if (n->n.level >= TH_MAX_LEVEL)
		return dlvm_err_set(err, -EOVERFLOW, "%s: B-tree at block %" PRIu64 " is too deep",
				    s->name, n->n.blocknr);
	if ((rc = th_node_new(s, n->n.type, n->n.level, &l, err)))
		return rc;
	if ((rc = th_node_new(s, n->n.type, n->n.level, &r, err))) {
		th_node_put(s, l);
		return rc;
	}
	unsigned half = split_point(&n->n, key), moved = n->n.nr - half;
	entries_copy(&l->n, 0, &n->n, 0, half);
	l->n.nr = (uint16_t)half;
	entries_copy(&r->n, 0, &n->n, half, moved);
	r->n.nr = (uint16_t)moved;
	memset(&n->n.keys, 0, sizeof(n->n.keys));
	memset(&n->n.u, 0, sizeof(n->n.u));
	n->n.level++;
	n->n.nr = 2;
	n->n.keys[0] = l->n.keys[0];
	n->n.u.v[0] = l->n.blocknr;
	n->n.keys[1] = r->n.keys[0];
	n->n.u.v[1] = r->n.blocknr;
	th_node_put(s, l);
	th_node_put(s, r);
	return 0;
}

int th_btree_insert(struct dlvm_thin_store *s, uint64_t *root, uint16_t type, uint64_t key,
		    uint64_t val, const struct th_devrec *rec, bool *had_old, uint64_t *old,
		    struct th_devrec *old_rec, struct dlvm_err *err)
{
	struct th_cnode *n, *c, *sib;
	int r;

	*had_old = false;
	if ((r = th_shadow(s, *root, type, -1, &n, err)))
		return r;
	*root = n->n.blocknr;
	if (n->n.nr == max_entries(&n->n) && (r = split_root(s, n, key, err)))
		goto out;
	while (n->n.level > 0) {
		int i = th_child_index(&n->n, key);
		if (i < 0) {
			i = 0;
			n->n.keys[0] = key;
		}
		if ((r = th_shadow(s, n->n.u.v[i], type, n->n.level - 1, &c, err)))
			goto out;
		n->n.u.v[i] = c->n.blocknr;
		if (c->n.nr == max_entries(&c->n)) {
			if ((r = split_child(s, n, (unsigned)i, c, key, &sib, err))) {
				th_node_put(s, c);
				goto out;
			}
			if (key >= sib->n.keys[0]) {
				th_node_put(s, c);
				c = sib;
			} else {
				th_node_put(s, sib);
			}
		}
		th_node_put(s, n);
		n = c;
	}
	unsigned j = th_lower_bound(&n->n, key);
	const void *v = type == TH_TREE_DEV ? (const void *)rec : (const void *)&val;
	if (j < n->n.nr && n->n.keys[j] == key) {
		*had_old = true;
		th_value_out(&n->n, j, old, old_rec);
		memcpy(valp(&n->n, j), v, vsize(&n->n));
	} else {
		entry_insert(&n->n, j, key, v);
	}
out:
	th_node_put(s, n);
	return r;
}

/*
 * c (entry i of p) fell below a third full: merge it with a sibling, or
 * even the two out when together they are too many for one node. Returns
 * with *merged when p lost an entry. c may be freed: *c_gone then.
 */
static int rebalance(struct dlvm_thin_store *s, struct th_cnode *p, unsigned i, struct th_cnode *c,
		     bool *merged, bool *c_gone, struct dlvm_err *err)
{
	struct th_cnode *sib, *l, *rt;
	unsigned si = i + 1 < p->n.nr ? i + 1 : i - 1;
	int r;

	*merged = *c_gone = false;
	if ((r = th_shadow(s, p->n.u.v[si], c->n.type, c->n.level, &sib, err)))
		return r;
	p->n.u.v[si] = sib->n.blocknr;
	l = si > i ? c : sib;
	rt = si > i ? sib : c;
	unsigned ri = si > i ? si : i;
	if (l->n.nr + rt->n.nr <= max_entries(&l->n)) {
		/* the right node's references move to the left one */
		entries_copy(&l->n, l->n.nr, &rt->n, 0, rt->n.nr);
		l->n.nr += rt->n.nr;
		entries_remove(&p->n, ri, 1);
		uint64_t gone = rt->n.blocknr;
		*c_gone = rt == c;
		th_node_put(s, sib);
		if (rt == c)
			th_node_put(s, c); /* the caller's pin: it forgets c */
		bool freed = th_meta_dec(s, gone);
		assert(freed);
		(void)freed;
		*merged = true;
		return 0;
	}
	unsigned total = l->n.nr + rt->n.nr, want = total / 2;
	if (l->n.nr > want) {
		unsigned cnt = l->n.nr - want;
		entries_copy(&rt->n, cnt, &rt->n, 0, rt->n.nr);
		entries_copy(&rt->n, 0, &l->n, want, cnt);
		rt->n.nr += cnt;
		entries_remove(&l->n, want, cnt);
	} else {
		unsigned cnt = want - l->n.nr;
		entries_copy(&l->n, l->n.nr, &rt->n, 0, cnt);
		l->n.nr += cnt;
		entries_remove(&rt->n, 0, cnt);
	}
	p->n.keys[ri] = rt->n.keys[0];
	th_node_put(s, sib);
	return 0;
}

int th_btree_remove_step(struct dlvm_thin_store *s, uint64_t *root, uint16_t type, uint64_t lo,
			 uint64_t hi, th_removed_fn fn, void *ctx, uint64_t *removed,
			 uint64_t *next, struct dlvm_err *err)
{
	struct th_cnode *path[TH_PATH_MAX] = { 0 };
	unsigned idx[TH_PATH_MAX];
	unsigned d = 0;
	int r;

	*removed = 0;
	*next = DLVM_THIN_NONE;
	if ((r = th_shadow(s, *root, type, -1, &path[0], err)))
		return r;
	*root = path[0]->n.blocknr;
	while (path[d]->n.level > 0) {
		struct th_node *n = &path[d]->n;
		int i = th_child_index(n, lo);
		if (i < 0)
			i = 0;
		if (d + 1 >= TH_PATH_MAX) {
			r = dlvm_err_set(err, -EBADMSG,
					 "%s: B-tree at block %" PRIu64 " is too deep", s->name,
					 *root);
			goto out;
		}
		if ((r = th_shadow(s, n->u.v[i], type, n->level - 1, &path[d + 1], err)))
			goto out;
		n->u.v[i] = path[d + 1]->n.blocknr;
		idx[d] = (unsigned)i;
		d++;
	}
	struct th_node *leaf = &path[d]->n;
	unsigned j0 = th_lower_bound(leaf, lo), j1 = j0;
	while (j1 < leaf->nr && leaf->keys[j1] <= hi) {
		if (fn && type == TH_TREE_DEV)
			fn(s, leaf->keys[j1], 0, &leaf->u.d[j1], ctx);
		else if (fn)
			fn(s, leaf->keys[j1], leaf->u.v[j1], NULL, ctx);
		j1++;
	}
	if (j1 > j0) {
		uint64_t last = leaf->keys[j1 - 1];
		entries_remove(leaf, j0, j1 - j0);
		*removed = j1 - j0;
		if (j0 == leaf->nr && last < hi)
			*next = last + 1;
	} else if (j0 == leaf->nr) {
		/* nothing here at or after lo: the caller passed a key that is not
		 * in this leaf, which a sound tree does not do */
		r = dlvm_err_set(err, -EBADMSG,
				 "%s: B-tree at block %" PRIu64 ": key %" PRIu64
				 " is not where the internal keys lead",
				 s->name, *root, lo);
		goto out;
	}
	for (; d > 0; d--) {
		struct th_cnode *c = path[d], *p = path[d - 1];
		bool merged, gone;
		if (c->n.nr >= min_entries(&c->n) || p->n.nr < 2)
			break;
		if ((r = rebalance(s, p, idx[d - 1], c, &merged, &gone, err)))
			goto out;
		if (gone)
			path[d] = NULL;
		if (!merged)
			break;
	}
	/* a root left with one child hands the tree to that child */
	while (path[0]->n.level > 0 && path[0]->n.nr == 1) {
		uint64_t child = path[0]->n.u.v[0], old = path[0]->n.blocknr;
		int level = path[0]->n.level - 1;
		th_node_put(s, path[0]);
		path[0] = NULL;
		th_meta_dec(s, old);
		*root = child;
		if ((r = th_node_get(s, child, type, level, &path[0], err)))
			goto out;
	}
out:
	for (unsigned k = 0; k < TH_PATH_MAX; k++)
		if (path[k])
			th_node_put(s, path[k]);
	return r;
}

int th_btree_next(struct dlvm_thin_store *s, uint64_t root, uint16_t type, uint64_t from,
		  uint64_t *key, uint64_t *val, struct th_devrec *rec, struct dlvm_err *err)
{
	struct store_reader sr = { .s = s };
	struct th_reader rd = { .get = store_get, .put = store_put, .ctx = &sr };

	return th_btree_find_next(&rd, root, type, from, key, val, rec, err);
}

static int iterate_rec(struct dlvm_thin_store *s, uint64_t blk, uint16_t type, int level,
		       uint64_t from, dlvm_thin_map_fn fn, void *ctx, struct dlvm_err *err)
{
	struct th_cnode *c;
	int r = th_node_get(s, blk, type, level, &c, err);

	if (r)
		return r;
	if (c->n.level == 0) {
		for (unsigned j = th_lower_bound(&c->n, from); j < c->n.nr && !r; j++)
			r = fn(ctx, c->n.keys[j], th_map_chunk(c->n.u.v[j]));
	} else {
		int i = th_child_index(&c->n, from);
		for (unsigned k = i < 0 ? 0 : (unsigned)i; k < c->n.nr && !r; k++)
			r = iterate_rec(s, c->n.u.v[k], type, c->n.level - 1, from, fn, ctx, err);
	}
	th_node_put(s, c);
	return r;
}

int th_btree_iterate(struct dlvm_thin_store *s, uint64_t root, uint16_t type, uint64_t from,
		     dlvm_thin_map_fn fn, void *ctx, struct dlvm_err *err)
{
	return iterate_rec(s, root, type, -1, from, fn, ctx, err);
}

int th_tree_release(struct dlvm_thin_store *s, uint64_t blk, uint16_t type, int level,
		    struct dlvm_err *err)
{
	uint64_t held[TH_ENTRIES];
	unsigned n = 0;
	int child_level = -1;
	uint16_t child_type = type;
	struct th_cnode *c;
	int r;

	if (s->mref[blk] > 1) {
		th_meta_dec(s, blk);
		return 0;
	}
	if ((r = th_node_get(s, blk, type, level, &c, err)))
		return r;
	if (c->n.level > 0) {
		n = c->n.nr;
		memcpy(held, c->n.u.v, n * sizeof(uint64_t));
		child_level = c->n.level - 1;
	} else if (type == TH_TREE_MAP) {
		for (unsigned i = 0; i < c->n.nr; i++)
			th_data_dec(s, th_map_chunk(c->n.u.v[i]));
	} else {
		n = c->n.nr;
		for (unsigned i = 0; i < n; i++)
			held[i] = c->n.u.d[i].root;
		child_type = TH_TREE_MAP;
	}
	th_node_put(s, c);
	th_meta_dec(s, blk);
	for (unsigned i = 0; i < n && !r; i++)
		r = th_tree_release(s, held[i], child_type, child_level, err);
	return r;
}
