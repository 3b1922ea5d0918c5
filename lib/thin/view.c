/* SPDX-License-Identifier: MIT */
/*
 * Read-only views of one thin device (docs/thin.md: "Read-only views"). The
 * open finds the device's record from the current superblock without the
 * walk that rebuilds the reference counts; after it, only the device's
 * mapping tree is read, through a cache of decoded nodes of the view's own
 * (cache.c), with the search of every tree (btree.c) and a reader that
 * checks each node against the place its parent gives it.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/dev.h"
#include "thin_int.h"

#define DEFAULT_CACHE_BLOCKS 1024
#define OPEN_TRIES 8 /* attempts of an open before -EAGAIN */

struct dlvm_thin_view {
	struct dlvm_dev *dev;
	const char *name; /* dev->name, for messages */
	uint64_t id;
	char who[DLVM_ERR_MSG_MAX]; /* "name: thin device id", for messages */
	struct th_sb sb;            /* the commit the view reads */
	struct th_devrec rec;       /* the device's record in that commit */
	struct th_limits lim;
	uint8_t *iobuf;           /* one block, aligned for O_DIRECT */
	struct th_cache cache;    /* nodes of the mapping tree */
	struct th_cnode *scratch; /* a device tree node, read past the cache */
};

/* Does node n belong at place p? -EBADMSG names the block. */
static int node_fits(const struct dlvm_thin_view *v, const struct th_node *n,
		     const struct th_place *p, struct dlvm_err *err)
{
#define MISFIT(fmt, ...) \
	dlvm_err_set(err, -EBADMSG, "%s: node at block %" PRIu64 ": " fmt, v->who, n->blocknr, \
		     ##__VA_ARGS__)
	if (n->type != p->type)
		return MISFIT("field type is %u where a node of tree type %u belongs", n->type,
			      p->type);
	if (p->level >= 0 && n->level != p->level)
		return MISFIT("field level is %u where a level %d node belongs", n->level,
			      p->level);
	if (n->nr && (n->keys[0] < p->lo || n->keys[n->nr - 1] > p->hi))
		return MISFIT("keys %" PRIu64 " to %" PRIu64 " are outside the range %" PRIu64
			      " to %" PRIu64 " its parent gives",
			      n->keys[0], n->keys[n->nr - 1], p->lo, p->hi);
	if (p->level >= 0 && n->nr == 0)
		return MISFIT("an empty node below the root");
	return 0;
#undef MISFIT
}

/* The reader of the mapping tree: through the cache, which keeps only nodes
 * found where they belong. */
static int map_get(void *ctx, uint64_t blk, const struct th_place *p, struct th_cnode **out,
		   struct dlvm_err *err)
{
	struct dlvm_thin_view *v = ctx;
	struct th_cnode *c;
	int r = th_cache_read(&v->cache, v->dev, v->iobuf, &v->lim, v->who, blk, &c, err);

	if (r)
		return r;
	if ((r = node_fits(v, &c->n, p, err))) {
		th_cache_forget(&v->cache, c);
		return r;
	}
	*out = c;
	return 0;
}

static void map_put(void *ctx, struct th_cnode *c)
{
	struct dlvm_thin_view *v = ctx;

	th_cache_put(&v->cache, c);
}

/* The reader of the device tree: each node read afresh into v->scratch (a
 * block of it may be reused by a later commit while the open goes on). */
static int dev_get(void *ctx, uint64_t blk, const struct th_place *p, struct th_cnode **out,
		   struct dlvm_err *err)
{
	struct dlvm_thin_view *v = ctx;
	int r = th_node_read(v->dev, v->iobuf, blk, &v->lim, v->who, &v->scratch->n, err);

	if (r || (r = node_fits(v, &v->scratch->n, p, err)))
		return r;
	*out = v->scratch;
	return 0;
}

static void dev_put(void *ctx, struct th_cnode *c)
{
	(void)ctx;
	(void)c;
}

/* ---- open ---- */

/*
 * Read both superblock slots and pick the valid one with the higher txn, as
 * the store's open does. *torn: a slot failed its checksum or a field check
 * (a write in progress, or damage) while the other is valid.
 */
static int read_superblocks(struct dlvm_thin_view *v, struct th_sb *sb, unsigned *slot, bool *torn,
			    struct dlvm_err *err)
{
	struct dlvm_err e[2] = { { 0 }, { 0 } };
	struct th_sb cand[2];
	int r[2];

	*torn = false;
	if (v->dev->size < 2 * (uint64_t)TH_BLOCK)
		return dlvm_err_set(err, -ENODATA,
				    "%s: too small for a thin store (%" PRIu64 " bytes)", v->name,
				    v->dev->size);
	for (unsigned i = 0; i < 2; i++) {
		r[i] = dlvm_dev_read(v->dev, v->iobuf, TH_BLOCK, (uint64_t)i * TH_BLOCK, err);
		if (r[i])
			return r[i];
		r[i] = th_sb_decode(v->iobuf, i, &cand[i], &e[i]);
	}
	if (r[0] && r[1]) {
		if (r[0] == -ENODATA && r[1] == -ENODATA)
			return dlvm_err_set(err, -ENODATA,
					    "%s: no thin store (no superblock magic "
					    "in blocks 0 and 1)",
					    v->name);
		*torn = r[0] == -EBADMSG || r[1] == -EBADMSG;
		int code = r[0] == -ENOTSUP || r[1] == -ENOTSUP ? -ENOTSUP : -EBADMSG;
		return dlvm_err_set(err, code, "%s: both superblock slots are unreadable: %s; %s",
				    v->name, e[0].msg, e[1].msg);
	}
	*torn = r[0] == -EBADMSG || r[1] == -EBADMSG;
	*slot = r[0] ? 1 : r[1] ? 0 : cand[1].txn > cand[0].txn ? 1 : 0;
	*sb = cand[*slot];
	if (sb->meta_blocks > v->dev->size / TH_BLOCK)
		return dlvm_err_set(err, -EBADMSG,
				    "%s: superblock slot %u (block %u): field "
				    "meta_blocks is %" PRIu64 " but the device holds %" PRIu64
				    " blocks",
				    v->name, *slot, *slot, sb->meta_blocks,
				    v->dev->size / TH_BLOCK);
	return 0;
}

/* Find the view's device in the device tree of v->sb, then read its mapping
 * tree's root into the cache. */
static int find_device(struct dlvm_thin_view *v, struct dlvm_err *err)
{
	const struct th_reader dev = { .get = dev_get, .put = dev_put, .ctx = v };
	const struct th_reader map = { .get = map_get, .put = map_put, .ctx = v };
	struct th_place root = th_root_place(TH_TREE_MAP);
	struct th_cnode *c;
	bool found;
	int r;

	r = th_btree_find(&dev, v->sb.dev_root, TH_TREE_DEV, v->id, &found, NULL, &v->rec, err);
	if (r)
		return r;
	if (!found)
		return dlvm_err_set(err, -ENOENT, "%s: thin device %" PRIu64 " does not exist",
				    v->name, v->id);
	if ((r = map.get(v, v->rec.root, &root, &c, err)))
		return r;
	map.put(v, c);
	return 0;
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
static int open_attempt(struct dlvm_thin_view *v, bool last, struct dlvm_err *again,
			struct dlvm_err *err)
{
	struct dlvm_err e = { 0 }, e2 = { 0 };
	struct th_sb sb2;
	unsigned slot, slot2;
	bool torn, torn2;
	int r;

	th_cache_clear(&v->cache);
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
				     .data_chunks = v->sb.data_chunks,
				     .max_txn = v->sb.txn,
				     .map_flags = th_map_flags_allowed(&v->sb) };
	r = find_device(v, &e);
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
	struct dlvm_err again = { 0 };
	int r = -ENOMEM;

	*out = NULL;
	if (!v)
		goto nomem;
	v->dev = dev;
	v->name = dev->name;
	v->id = id;
	snprintf(v->who, sizeof(v->who), "%s: thin device %" PRIu64, v->name, id);
	v->scratch = malloc(sizeof(*v->scratch));
	v->iobuf = dlvm_io_alloc(TH_BLOCK);
	if (th_cache_init(&v->cache, cache_blocks ? cache_blocks : DEFAULT_CACHE_BLOCKS) ||
	    !v->scratch || !v->iobuf)
		goto nomem;
	if (id > DLVM_THIN_MAX_ID) {
		r = dlvm_err_set(err, -ENOENT, "%s: thin device %" PRIu64 " does not exist",
				 v->name, id);
		goto fail;
	}
	for (unsigned attempt = 0; attempt < OPEN_TRIES; attempt++) {
		pause_before_attempt(attempt);
		dlvm_err_clear(&again);
		r = open_attempt(v, attempt + 1 == OPEN_TRIES, &again, err);
		if (r != -EAGAIN)
			break;
	}
	if (r == -EAGAIN)
		r = dlvm_err_set(err, -EAGAIN,
				 "%s: thin device %" PRIu64 ": the store changed "
				 "under each of %d attempts to open a view (last: %s)",
				 v->name, id, OPEN_TRIES, again.msg);
	if (r)
		goto fail;
	free(v->scratch);
	v->scratch = NULL;
	*out = v;
	return 0;
nomem:
	r = dlvm_err_set(err, -ENOMEM, "out of memory");
fail:
	dlvm_thin_view_close(v);
	return r;
}

void dlvm_thin_view_close(struct dlvm_thin_view *v)
{
	if (!v)
		return;
	th_cache_release(&v->cache);
	free(v->scratch);
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
	const struct th_reader map = { .get = map_get, .put = map_put, .ctx = v };
	uint64_t val = 0;
	bool found;
	int r;

	*m = (struct dlvm_thin_mapping){ .chunk = DLVM_THIN_NONE, .copy_from = DLVM_THIN_NONE };
	if (vchunk > DLVM_THIN_MAX_ID)
		return dlvm_err_set(err, -EINVAL, "%s: virtual chunk %" PRIu64 " is above %" PRIu64,
				    v->name, vchunk, (uint64_t)DLVM_THIN_MAX_ID);
	r = th_btree_find(&map, v->rec.root, TH_TREE_MAP, vchunk, &found, &val, NULL, err);
	if (!r && found) {
		m->chunk = th_map_chunk(val);
		m->unwritten = th_map_unwritten(val);
	}
	return r;
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
	const struct th_reader map = { .get = map_get, .put = map_put, .ctx = v };
	uint64_t val = 0;
	int r;

	if (chunk)
		*chunk = DLVM_THIN_NONE;
	r = th_btree_find_next(&map, v->rec.root, TH_TREE_MAP, from, vchunk, &val, NULL, err);
	if (!r && chunk && *vchunk != DLVM_THIN_NONE)
		*chunk = th_map_chunk(val);
	return r;
}
