/* SPDX-License-Identifier: MIT */
/*
 * Read-only views of one thin device (docs/thin.md: "Read-only views"). The
 * open finds the device's record from the current superblock without the
 * walk that rebuilds the reference counts; after it, only the device's
 * mapping tree is read, through a small cache of decoded nodes.
 *
 * Another process may change and commit the store meanwhile. A commit never
 * writes a block that the last commit references, and the blocks it frees
 * are used again only by later transactions, whose nodes carry a later
 * transaction id. So each device tree node the open reads for superblock T
 * is T's, or is refused by the decoder (its txn is above T, or a write in
 * progress fails the checksum). Then the superblocks are read again: a newer
 * commit means a reused block, and the open starts again from it; the same
 * commit means that nothing was reused and the node is damaged.
 *
 * The same holds for the mapping tree, without the second look at the
 * superblocks: each node read is decoded and checked against its parent
 * (tree type, level, key range), so a lookup answers as of T or fails with
 * -EBADMSG. The caller still keeps the device unchanged while the view is
 * open (a snapshot): otherwise the data chunks that T maps may have been
 * freed and handed out again.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/dev.h"
#include "thin_int.h"

#define DEFAULT_CACHE_BLOCKS 1024
#define OPEN_TRIES 8              /* attempts of an open before -EAGAIN */
#define MAX_BUCKET_BITS 24       /* 128 MiB of buckets for a cache far too large */

/* A cached node of the mapping tree. */
struct vnode {
	struct th_node n;
	struct vnode *hnext;        /* next in its hash bucket */
	struct vnode *prev, *next;  /* LRU list: mru first */
};

struct dlvm_thin_view {
	struct dlvm_dev *dev;
	const char *name;           /* dev->name, for messages */
	uint64_t id;
	struct th_sb sb;            /* the commit the view reads */
	struct th_devrec rec;       /* the device's record in that commit */
	struct th_limits lim;
	uint8_t *iobuf;             /* one block, aligned for O_DIRECT */

	struct vnode **buckets;     /* by block number */
	unsigned bucket_bits;
	size_t cap, count;          /* nodes kept, nodes in the table */
	struct vnode *mru, *lru;
	struct vnode *spare;        /* an entry out of the table, for the next miss */
};

/* Where a node is reached from: what its parent lets it be. */
struct place {
	uint16_t type;
	int level;                  /* -1: the root, any level */
	uint64_t lo, hi;            /* every key of the node lies in [lo, hi] */
};

static const struct place root_place = { .type = TH_TREE_MAP, .level = -1, .lo = 0,
					 .hi = DLVM_THIN_MAX_ID };

/* First index whose key is >= key (n->nr if none). */
static unsigned lower_bound(const struct th_node *n, uint64_t key)
{
	unsigned lo = 0, hi = n->nr;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (n->keys[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the child whose range holds key; -1 when key is below every key. */
static int child_index(const struct th_node *n, uint64_t key)
{
	unsigned i = lower_bound(n, key);

	if (i < n->nr && n->keys[i] == key)
		return (int)i;
	return (int)i - 1;
}

/* The place of child i of internal node n, itself at place p. */
static struct place child_place(const struct th_node *n, unsigned i, const struct place *p)
{
	return (struct place){ .type = p->type, .level = n->level - 1, .lo = n->keys[i],
			       .hi = i + 1 < n->nr ? n->keys[i + 1] - 1 : p->hi };
}

/* Does node n belong at place p? -EBADMSG names the block. */
static int node_fits(const struct dlvm_thin_view *v, const struct th_node *n,
		     const struct place *p, struct dlvm_err *err)
{
#define MISFIT(fmt, ...)                                                                       \
	dlvm_err_set(err, -EBADMSG, "%s: thin device %" PRIu64 ": node at block %" PRIu64 ": " fmt, \
		     v->name, v->id, n->blocknr, ##__VA_ARGS__)
	if (n->type != p->type)
		return MISFIT("field type is %u where a node of tree type %u belongs", n->type,
			      p->type);
	if (p->level >= 0 && n->level != p->level)
		return MISFIT("field level is %u where a level %d node belongs", n->level,
			      p->level);
	if (n->nr && (n->keys[0] < p->lo || n->keys[n->nr - 1] > p->hi))
		return MISFIT("keys %" PRIu64 " to %" PRIu64 " are outside the range %" PRIu64
			      " to %" PRIu64 " its parent gives", n->keys[0], n->keys[n->nr - 1],
			      p->lo, p->hi);
	if (p->level >= 0 && n->nr == 0)
		return MISFIT("an empty node below the root");
	return 0;
#undef MISFIT
}

/* Read and decode block blk into n. -EBADMSG (the decoder's message), -EIO. */
static int node_read(struct dlvm_thin_view *v, uint64_t blk, struct th_node *n,
		     struct dlvm_err *err)
{
	int r = dlvm_dev_read(v->dev, v->iobuf, TH_BLOCK, blk * TH_BLOCK, err);

	if (r)
		return r;
	r = th_node_decode(v->iobuf, blk, &v->lim, n, err);
	if (r)
		dlvm_err_prefix(err, r, "%s: thin device %" PRIu64 ": ", v->name, v->id);
	return r;
}

/* ---- the node cache: a hash table of decoded nodes with an LRU list ---- */

static size_t bucket_of(const struct dlvm_thin_view *v, uint64_t blk)
{
	return (size_t)((blk * 0x9e3779b97f4a7c15ull) >> (64 - v->bucket_bits));
}

static void lru_unlink(struct dlvm_thin_view *v, struct vnode *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		v->mru = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		v->lru = c->prev;
	c->prev = c->next = NULL;
}

static void lru_push(struct dlvm_thin_view *v, struct vnode *c)
{
	c->prev = NULL;
	c->next = v->mru;
	if (v->mru)
		v->mru->prev = c;
	else
		v->lru = c;
	v->mru = c;
}

static struct vnode *cache_find(struct dlvm_thin_view *v, uint64_t blk)
{
	for (struct vnode *c = v->buckets[bucket_of(v, blk)]; c; c = c->hnext)
		if (c->n.blocknr == blk)
			return c;
	return NULL;
}

static void cache_remove(struct dlvm_thin_view *v, struct vnode *c)
{
	struct vnode **pp = &v->buckets[bucket_of(v, c->n.blocknr)];

	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	c->hnext = NULL;
	lru_unlink(v, c);
	v->count--;
}

static void cache_insert(struct dlvm_thin_view *v, struct vnode *c)
{
	size_t b = bucket_of(v, c->n.blocknr);

	c->hnext = v->buckets[b];
	v->buckets[b] = c;
	lru_push(v, c);
	v->count++;
}

/* An entry for a node about to be read: the spare one, a new one until the
 * cache is full, then the least recently used. NULL: out of memory. */
static struct vnode *cache_take(struct dlvm_thin_view *v)
{
	struct vnode *c = v->spare;

	if (c) {
		v->spare = NULL;
		return c;
	}
	if (v->count < v->cap)
		return malloc(sizeof(*c));
	c = v->lru;
	cache_remove(v, c);
	return c;
}

static void cache_clear(struct dlvm_thin_view *v)
{
	while (v->mru) {
		struct vnode *c = v->mru;
		cache_remove(v, c);
		free(c);
	}
}

/* The node of the mapping tree in block blk, which must fit place p. The
 * pointer stays valid until the next call. */
static int map_node(struct dlvm_thin_view *v, uint64_t blk, const struct place *p,
		    const struct th_node **out, struct dlvm_err *err)
{
	struct vnode *c = cache_find(v, blk);
	int r;

	if (c) {
		if (c != v->mru) {
			lru_unlink(v, c);
			lru_push(v, c);
		}
	} else {
		if (!(c = cache_take(v)))
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		if ((r = node_read(v, blk, &c->n, err))) {
			v->spare = c;
			return r;
		}
		cache_insert(v, c);
	}
	if ((r = node_fits(v, &c->n, p, err))) {
		/* not kept: the cache holds only nodes found where they belong */
		cache_remove(v, c);
		free(v->spare);
		v->spare = c;
		return r;
	}
	*out = &c->n;
	return 0;
}

/* ---- open ---- */

/*
 * Read both superblock slots and pick the valid one with the higher txn, as
 * the store's open does. *torn: a slot failed its checksum or a field check
 * (a write in progress, or damage) while the other is valid.
 */
static int read_superblocks(struct dlvm_thin_view *v, struct th_sb *sb, unsigned *slot,
			    bool *torn, struct dlvm_err *err)
{
	struct dlvm_err e[2] = { { 0 }, { 0 } };
	struct th_sb cand[2];
	int r[2];

	*torn = false;
	if (v->dev->size < 2 * (uint64_t)TH_BLOCK)
		return dlvm_err_set(err, -ENODATA, "%s: too small for a thin store (%" PRIu64
				    " bytes)", v->name, v->dev->size);
	for (unsigned i = 0; i < 2; i++) {
		r[i] = dlvm_dev_read(v->dev, v->iobuf, TH_BLOCK, (uint64_t)i * TH_BLOCK, err);
		if (r[i])
			return r[i];
		r[i] = th_sb_decode(v->iobuf, i, &cand[i], &e[i]);
	}
	if (r[0] && r[1]) {
		if (r[0] == -ENODATA && r[1] == -ENODATA)
			return dlvm_err_set(err, -ENODATA, "%s: no thin store (no superblock magic "
					    "in blocks 0 and 1)", v->name);
		*torn = r[0] == -EBADMSG || r[1] == -EBADMSG;
		int code = r[0] == -ENOTSUP || r[1] == -ENOTSUP ? -ENOTSUP : -EBADMSG;
		return dlvm_err_set(err, code, "%s: both superblock slots are unreadable: %s; %s",
				    v->name, e[0].msg, e[1].msg);
	}
	*torn = r[0] == -EBADMSG || r[1] == -EBADMSG;
	*slot = r[0] ? 1 : r[1] ? 0 : cand[1].txn > cand[0].txn ? 1 : 0;
	*sb = cand[*slot];
	if (sb->meta_blocks > v->dev->size / TH_BLOCK)
		return dlvm_err_set(err, -EBADMSG, "%s: superblock slot %u (block %u): field "
				    "meta_blocks is %" PRIu64 " but the device holds %" PRIu64
				    " blocks", v->name, *slot, *slot, sb->meta_blocks,
				    v->dev->size / TH_BLOCK);
	return 0;
}

/* Find the view's device in the device tree of v->sb (n is scratch space),
 * then read its mapping tree's root into the cache. */
static int find_device(struct dlvm_thin_view *v, struct th_node *n, struct dlvm_err *err)
{
	struct place p = { .type = TH_TREE_DEV, .level = -1, .lo = 0, .hi = DLVM_THIN_MAX_ID };
	uint64_t blk = v->sb.dev_root;
	const struct th_node *root;
	int r;

	for (;;) {
		if ((r = node_read(v, blk, n, err)) || (r = node_fits(v, n, &p, err)))
			return r;
		if (n->level == 0)
			break;
		int i = child_index(n, v->id);
		if (i < 0)
			goto none;
		blk = n->u.v[i];
		p = child_place(n, (unsigned)i, &p);
	}
	unsigned j = lower_bound(n, v->id);
	if (j == n->nr || n->keys[j] != v->id)
		goto none;
	v->rec = n->u.d[j];
	return map_node(v, v->rec.root, &root_place, &root, err);
none:
	return dlvm_err_set(err, -ENOENT, "%s: thin device %" PRIu64 " does not exist", v->name,
			    v->id);
}

static void pause_before_attempt(unsigned attempt)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)attempt * 1000000 };

	if (attempt)
		nanosleep(&ts, NULL);
}

/*
 * One attempt per commit seen: 0, a final error, or -EAGAIN when the store
 * changed under the attempt (the reason in *again).
 */
static int open_attempt(struct dlvm_thin_view *v, struct th_node *scratch, bool last,
			struct dlvm_err *again, struct dlvm_err *err)
{
	struct dlvm_err e = { 0 }, e2 = { 0 };
	struct th_sb sb2;
	unsigned slot, slot2;
	bool torn, torn2;
	int r;

	cache_clear(v);
	r = read_superblocks(v, &v->sb, &slot, &torn, &e);
	/* a slot being written reads torn; on the last attempt the other valid
	 * slot is used, as the store's open would */
	if (torn && !last && (!r || r == -EBADMSG)) {
		dlvm_err_set(again, -EAGAIN, "%s", e.code ? e.msg : "a superblock slot is torn");
		return -EAGAIN;
	}
	if (r)
		return dlvm_err_set(err, r, "%s", e.msg);
	v->lim = (struct th_limits){ .meta_blocks = v->sb.meta_blocks,
				     .data_chunks = v->sb.data_chunks, .max_txn = v->sb.txn,
				     .map_flags = th_map_flags_allowed(&v->sb) };
	r = find_device(v, scratch, &e);
	if (r != -EBADMSG)
		return r ? dlvm_err_set(err, r, "%s", e.msg) : 0;
	/* a block reused by a later commit, or damage: the superblocks tell */
	if (!read_superblocks(v, &sb2, &slot2, &torn2, &e2) && !torn2 && slot2 == slot &&
	    sb2.txn == v->sb.txn)
		return dlvm_err_set(err, r, "%s", e.msg);
	dlvm_err_set(again, -EAGAIN, "%s", e.msg);
	return -EAGAIN;
}

int dlvm_thin_view_open(struct dlvm_dev *dev, uint64_t id, size_t cache_blocks,
			struct dlvm_thin_view **out, struct dlvm_err *err)
{
	struct dlvm_thin_view *v = calloc(1, sizeof(*v));
	struct th_node *scratch = malloc(sizeof(*scratch));
	struct dlvm_err again = { 0 };
	int r = -ENOMEM;

	*out = NULL;
	if (!v || !scratch)
		goto nomem;
	v->dev = dev;
	v->name = dev->name;
	v->id = id;
	v->cap = cache_blocks ? cache_blocks : DEFAULT_CACHE_BLOCKS;
	v->bucket_bits = 1;
	while (v->bucket_bits < MAX_BUCKET_BITS && ((size_t)1 << v->bucket_bits) / 2 < v->cap)
		v->bucket_bits++;
	v->buckets = calloc((size_t)1 << v->bucket_bits, sizeof(*v->buckets));
	v->iobuf = dlvm_io_alloc(TH_BLOCK);
	if (!v->buckets || !v->iobuf)
		goto nomem;
	if (id > DLVM_THIN_MAX_ID) {
		r = dlvm_err_set(err, -ENOENT, "%s: thin device %" PRIu64 " does not exist",
				 v->name, id);
		goto fail;
	}
	for (unsigned attempt = 0; attempt < OPEN_TRIES; attempt++) {
		pause_before_attempt(attempt);
		dlvm_err_clear(&again);
		r = open_attempt(v, scratch, attempt + 1 == OPEN_TRIES, &again, err);
		if (r != -EAGAIN)
			break;
	}
	if (r == -EAGAIN)
		r = dlvm_err_set(err, -EAGAIN, "%s: thin device %" PRIu64 ": the store changed "
				 "under each of %d attempts to open a view (last: %s)", v->name, id,
				 OPEN_TRIES, again.msg);
	if (r)
		goto fail;
	free(scratch);
	*out = v;
	return 0;
nomem:
	r = dlvm_err_set(err, -ENOMEM, "out of memory");
fail:
	free(scratch);
	dlvm_thin_view_close(v);
	return r;
}

void dlvm_thin_view_close(struct dlvm_thin_view *v)
{
	if (!v)
		return;
	if (v->buckets)
		cache_clear(v);
	free(v->spare);
	free(v->buckets);
	free(v->iobuf);
	free(v);
}

void dlvm_thin_view_info(const struct dlvm_thin_view *v, struct dlvm_thin_view_info *out)
{
	memset(out, 0, sizeof(*out));
	out->id = v->id;
	out->txn = v->sb.txn;
	out->chunk_size = v->sb.chunk_size;
	out->data_chunks = v->sb.data_chunks;
	out->mapped = v->rec.mapped;
	out->flags = v->rec.flags;
	memcpy(out->uuid, v->sb.uuid, 16);
}

/* ---- lookups ---- */

int dlvm_thin_view_lookup_mapping(struct dlvm_thin_view *v, uint64_t vchunk,
				  struct dlvm_thin_mapping *m, struct dlvm_err *err)
{
	struct place p = root_place;
	uint64_t blk = v->rec.root;
	const struct th_node *n;
	int r;

	*m = (struct dlvm_thin_mapping){ .chunk = DLVM_THIN_NONE, .copy_from = DLVM_THIN_NONE };
	if (vchunk > DLVM_THIN_MAX_ID)
		return dlvm_err_set(err, -EINVAL, "%s: virtual chunk %" PRIu64 " is above %" PRIu64,
				    v->name, vchunk, (uint64_t)DLVM_THIN_MAX_ID);
	for (;;) {
		if ((r = map_node(v, blk, &p, &n, err)))
			return r;
		if (n->level == 0)
			break;
		int i = child_index(n, vchunk);
		if (i < 0)
			return 0;
		blk = n->u.v[i];
		p = child_place(n, (unsigned)i, &p);
	}
	unsigned j = lower_bound(n, vchunk);
	if (j < n->nr && n->keys[j] == vchunk) {
		m->chunk = th_map_chunk(n->u.v[j]);
		m->unwritten = th_map_unwritten(n->u.v[j]);
	}
	return 0;
}

int dlvm_thin_view_lookup(struct dlvm_thin_view *v, uint64_t vchunk, uint64_t *chunk,
			  struct dlvm_err *err)
{
	struct dlvm_thin_mapping m;
	int r = dlvm_thin_view_lookup_mapping(v, vchunk, &m, err);

	*chunk = m.chunk;
	return r;
}

int dlvm_thin_view_next_mapped(struct dlvm_thin_view *v, uint64_t from, uint64_t *vchunk,
			       uint64_t *chunk, struct dlvm_err *err)
{
	const struct th_node *n;
	int r;

	*vchunk = DLVM_THIN_NONE;
	if (chunk)
		*chunk = DLVM_THIN_NONE;
	/* Down to the leaf whose range holds from. When no key of it is >= from,
	 * the next leaf starts after its range: again from there. Non-root
	 * leaves are not empty, so that is at most once more. */
	while (from <= DLVM_THIN_MAX_ID) {
		struct place p = root_place;
		uint64_t blk = v->rec.root;
		for (;;) {
			if ((r = map_node(v, blk, &p, &n, err)))
				return r;
			if (n->level == 0)
				break;
			int i = child_index(n, from);
			unsigned k = i < 0 ? 0 : (unsigned)i;
			blk = n->u.v[k];
			p = child_place(n, k, &p);
		}
		unsigned j = lower_bound(n, from);
		if (j < n->nr) {
			*vchunk = n->keys[j];
			if (chunk)
				*chunk = th_map_chunk(n->u.v[j]);
			return 0;
		}
		if (p.hi >= DLVM_THIN_MAX_ID)
			break;
		from = p.hi + 1;
	}
	return 0;
}
