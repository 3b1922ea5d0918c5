/* SPDX-License-Identifier: MIT */
/*
 * Internals of the thin store (include/dlvm/thin.h): the on-disk codecs, the
 * node cache with the reference counts and the allocator, the copy-on-write
 * B-tree, and the walk that visits every node once. docs/format/thin.md is
 * the on-disk spec, docs/thin.md the design.
 */
#ifndef DLVM_THIN_INT_H
#define DLVM_THIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/err.h"
#include "dlvm/thin.h"

#define TH_BLOCK DLVM_THIN_BLOCK
#define TH_SB_SIZE 512u /* the superblock structure; rest of its block is zero */
#define TH_SB_MAGIC "dlvm.tsb"
#define TH_NODE_MAGIC "dlvm.btn"
#define TH_MAJOR 1
#define TH_MINOR 0
#define TH_FIRST_NODE 2 /* blocks 0 and 1 are the superblock slots */
#define TH_NODE_HDR 40
#define TH_MAX_LEVEL 15 /* level of the highest possible root */
#define TH_PATH_MAX (TH_MAX_LEVEL + 1)
#define TH_ENTRIES 253    /* internal nodes and mapping leaves: 8-byte values */
#define TH_DEV_ENTRIES 84 /* device tree leaves: 40-byte values */
#define TH_DEV_VALUE 40
#define TH_MAP_FLAGS_SHIFT 48 /* mapping value: chunk in bits 0-47, flags above */
#define TH_MAP_CHUNK_MASK ((UINT64_C(1) << TH_MAP_FLAGS_SHIFT) - 1)
#define TH_DEV_FLAGS_KNOWN (DLVM_THIN_DEV_READONLY | DLVM_THIN_DEV_SNAPSHOT)

/* Mapping values carry the chunk's unwritten sub-blocks in their flag bits
 * (docs/thin.md: "Unwritten sub-blocks"). Incompatible: a reader that does
 * not know it would show whatever those sub-blocks hold on disk. */
#define TH_INCOMPAT_UNWRITTEN (UINT64_C(1) << 0)
#define TH_COMPAT_KNOWN ((uint64_t)0)
#define TH_RO_COMPAT_KNOWN ((uint64_t)0)
#define TH_INCOMPAT_KNOWN TH_INCOMPAT_UNWRITTEN

enum th_tree {
	TH_TREE_DEV = 1, /* device id -> struct th_devrec */
	TH_TREE_MAP = 2, /* virtual chunk -> data chunk */
};

/* ---- codec ---- */

struct th_sb {
	uint16_t major, minor;
	uint64_t compat, ro_compat, incompat;
	uint64_t txn;        /* transaction id of this commit */
	uint32_t slot;       /* 0 or 1: where this superblock is written */
	uint64_t chunk_size; /* bytes */
	uint64_t data_chunks;
	uint64_t meta_blocks;
	uint64_t dev_root; /* block of the device tree root */
	uint64_t ndevs;    /* number of devices in the device tree */
	uint8_t uuid[16];
	uint64_t ctime; /* seconds since the epoch, when formatted */
};

/* Value of a device tree leaf entry. */
struct th_devrec {
	uint64_t root; /* mapping tree root */
	uint64_t mapped;
	uint64_t created_txn;
	uint64_t snapshot_of;
	uint32_t flags;
};

struct th_node {
	uint64_t blocknr; /* where it lives; the cache's key */
	uint64_t txn;     /* transaction that wrote it */
	uint16_t type;    /* enum th_tree */
	uint16_t level;   /* 0: leaf */
	uint16_t nr;      /* entries in use */
	uint64_t keys[TH_ENTRIES];
	union {
		uint64_t v[TH_ENTRIES]; /* child block, or mapping value */
		struct th_devrec d[TH_DEV_ENTRIES];
	} u;
};

/* Limits a decoder checks values against. */
struct th_limits {
	uint64_t meta_blocks;
	uint64_t data_chunks;
	uint64_t max_txn;   /* no node or device may claim a later transaction */
	uint64_t map_flags; /* flag bits a mapping value may have (unshifted) */
};

/* The flag bits a store's mapping values may carry: the unwritten mask of
 * dlvm_thin_subblocks(chunk_size) sub-blocks, or none. */
static inline uint64_t th_map_flags_allowed(const struct th_sb *sb)
{
	if (!(sb->incompat & TH_INCOMPAT_UNWRITTEN))
		return 0;
	return (UINT64_C(1) << dlvm_thin_subblocks(sb->chunk_size)) - 1;
}

void th_sb_encode(const struct th_sb *sb, uint8_t buf[TH_BLOCK]);
/* Decode the superblock read from slot `slot`; messages start "superblock
 * slot N (block N): ". -ENODATA for a bad magic, -EBADMSG, -ENOTSUP. */
int th_sb_decode(const uint8_t buf[TH_BLOCK], uint32_t slot, struct th_sb *sb,
		 struct dlvm_err *err);

static inline unsigned th_max_entries(uint16_t type, uint16_t level)
{
	return type == TH_TREE_DEV && level == 0 ? TH_DEV_ENTRIES : TH_ENTRIES;
}
static inline size_t th_value_size(uint16_t type, uint16_t level)
{
	return type == TH_TREE_DEV && level == 0 ? TH_DEV_VALUE : 8;
}

void th_node_encode(const struct th_node *n, uint8_t buf[TH_BLOCK]);
/* Decode the node read from block blocknr and validate it (th_node_validate);
 * messages start "node at block N: ". -EBADMSG. */
int th_node_decode(const uint8_t buf[TH_BLOCK], uint64_t blocknr, const struct th_limits *lim,
		   struct th_node *n, struct dlvm_err *err);
/* Everything a node must satisfy by itself: type, level, count, key order and
 * range, every value in range. */
int th_node_validate(const struct th_node *n, const struct th_limits *lim, struct dlvm_err *err);

static inline uint64_t th_map_chunk(uint64_t v)
{
	return v & TH_MAP_CHUNK_MASK;
}
static inline uint16_t th_map_unwritten(uint64_t v)
{
	return (uint16_t)(v >> TH_MAP_FLAGS_SHIFT);
}
static inline uint64_t th_map_value(uint64_t chunk, uint16_t unwritten)
{
	return chunk | (uint64_t)unwritten << TH_MAP_FLAGS_SHIFT;
}

/* ---- the store ---- */

struct th_cnode {
	struct th_node n;
	unsigned pins;                /* holders of a pointer to this entry */
	bool dirty;                   /* changed since written */
	bool writing;                 /* in the commit being written: stays cached until it is */
	struct th_cnode *hnext;       /* next in its hash chain */
	struct th_cnode *prev, *next; /* LRU of unpinned entries */
};

/*
 * Decoded nodes by block number: a hash table of chains, and the unpinned
 * entries on an LRU list, oldest first. A store has one (nodes it reads and
 * nodes it changes), each view another (nodes it reads). Not thread safe:
 * the owner serialises every use, and caches share nothing.
 */
struct th_cache {
	struct th_cnode **buckets;
	unsigned bucket_bits;
	size_t cap;       /* unpinned entries kept */
	size_t count;     /* entries in the table */
	size_t nunpinned; /* of them, on the LRU list */
	struct th_cnode *lru_head, *lru_tail;
	struct th_cnode *spare; /* out of the table: the entry of the next miss */
};

struct dlvm_thin_store {
	struct dlvm_dev *dev;
	const char *name; /* dev->name, for messages */
	struct th_sb sb;  /* the state being built; sb.txn is the last sealed commit's */
	unsigned slot;    /* slot of the last commit */
	bool readonly;    /* opened so */
	bool failed;      /* an error broke a change: refuse the next ones */
	char why[DLVM_ERR_MSG_MAX];
	bool changed;    /* something to commit */
	bool committing; /* a sealed transaction is being written (a job is out) */

	/* metadata blocks: reference counts; allocated in this transaction
	 * (changed in place); freed in this transaction (not reused yet) */
	uint32_t *mref;
	uint64_t *mnew, *mheld; /* bitmaps */
	uint64_t mfree, mpending, mcursor;
	/* data chunks */
	uint32_t *dref;
	uint64_t *dheld;
	uint64_t dfree, dpending, dcursor;
	/* freed in the sealed transaction a commit is writing: not free until
	 * that commit is on the device (all zero when no commit is out) */
	uint64_t *mcommit, *dcommit; /* bitmaps */
	uint64_t mpending_c, dpending_c;
	/* cooling (dlvm_thin_set_cooling): freed by a commit, not free yet;
	 * dsealed: sealed, freed by the next release */
	bool cooling;
	uint64_t *dcool, *dsealed; /* bitmaps */
	uint64_t ncool, nsealed;
	dlvm_thin_freed_fn freed; /* told of the chunks each commit frees */
	void *freed_arg;

	uint8_t *iobuf; /* one block, aligned for O_DIRECT */
	struct th_cache cache;
};

static inline bool th_bit(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}
static inline void th_bit_set(uint64_t *map, uint64_t i)
{
	map[i / 64] |= 1ull << (i % 64);
}
static inline void th_bit_clear(uint64_t *map, uint64_t i)
{
	map[i / 64] &= ~(1ull << (i % 64));
}
static inline size_t th_bitmap_bytes(uint64_t n)
{
	return (size_t)((n + 63) / 64 * 8);
}

static inline struct th_limits th_store_limits(const struct dlvm_thin_store *s)
{
	return (struct th_limits){ .meta_blocks = s->sb.meta_blocks,
				   .data_chunks = s->sb.data_chunks,
				   .max_txn = s->sb.txn + 1,
				   .map_flags = th_map_flags_allowed(&s->sb) };
}

/* Refuse changes on a read-only or broken store: 0 or -EROFS. */
int th_writable(struct dlvm_thin_store *s, struct dlvm_err *err);
/* Remember that a change failed half way (r is its error): the store refuses
 * changes from now on. Returns r. */
int th_fail(struct dlvm_thin_store *s, int r, struct dlvm_err *err);

/* ---- space.c: reference counts and allocation ---- */

/* Metadata blocks a change may still take. */
static inline uint64_t th_meta_avail(const struct dlvm_thin_store *s)
{
	return s->mfree;
}
/* A free metadata block with reference count 1, marked new. -ENOSPC. */
int th_meta_alloc(struct dlvm_thin_store *s, uint64_t *blk, struct dlvm_err *err);
/* One more reference to block blk. */
void th_meta_inc(struct dlvm_thin_store *s, uint64_t blk);
/* Drop a reference; at zero the block is freed (a new block at once, a
 * committed one after the commit) and its cache entry dropped. Returns true
 * when the count reached zero: the caller then drops what the node held. */
bool th_meta_dec(struct dlvm_thin_store *s, uint64_t blk);
/* A free data chunk with reference count 1. -ENOSPC. */
int th_data_alloc(struct dlvm_thin_store *s, uint64_t *chunk, struct dlvm_err *err);
void th_data_inc(struct dlvm_thin_store *s, uint64_t chunk);
void th_data_dec(struct dlvm_thin_store *s, uint64_t chunk);
/* A commit seals the transaction: what it freed waits for the commit
 * (mcommit, dcommit) and the next transaction starts with nothing new. */
void th_space_seal(struct dlvm_thin_store *s);
/* The sealed transaction is on the device: what it freed becomes free. */
void th_space_committed(struct dlvm_thin_store *s);
/* Size the arrays for s->sb.meta_blocks / data_chunks (new entries zero). */
int th_space_resize(struct dlvm_thin_store *s, uint64_t meta_blocks, uint64_t data_chunks);
/* Count the free blocks and chunks from the reference counts (after open). */
void th_space_count(struct dlvm_thin_store *s);

/* ---- cache.c: nodes in memory ---- */

/* An empty cache keeping cap unpinned entries. 0 or -ENOMEM. */
int th_cache_init(struct th_cache *c, size_t cap);
/* Free every entry (none may be pinned); the cache stays usable. */
void th_cache_clear(struct th_cache *c);
/* Free every entry and the table. */
void th_cache_release(struct th_cache *c);

/* Read block blk of dev through iobuf (one aligned block) and decode it
 * into n under lim. -EIO (the device's message) or -EBADMSG (the decoder's,
 * after "who: "). */
int th_node_read(struct dlvm_dev *dev, uint8_t *iobuf, uint64_t blk, const struct th_limits *lim,
		 const char *who, struct th_node *n, struct dlvm_err *err);

/* The way to an entry, inline: a view's lookups go through here for every
 * node of their path. */

static inline size_t th_cache_bucket(unsigned bits, uint64_t blk)
{
	return (size_t)((blk * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

/* The entry of block blk, or NULL; not pinned. */
static inline struct th_cnode *th_cache_find(const struct th_cache *c, uint64_t blk)
{
	for (struct th_cnode *e = c->buckets[th_cache_bucket(c->bucket_bits, blk)]; e; e = e->hnext)
		if (e->n.blocknr == blk)
			return e;
	return NULL;
}

static inline void th_cache_lru_unlink(struct th_cache *c, struct th_cnode *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->lru_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->lru_tail = e->prev;
	e->prev = e->next = NULL;
	c->nunpinned--;
}

static inline void th_cache_lru_append(struct th_cache *c, struct th_cnode *e)
{
	e->prev = c->lru_tail;
	e->next = NULL;
	if (c->lru_tail)
		c->lru_tail->next = e;
	else
		c->lru_head = e;
	c->lru_tail = e;
	c->nunpinned++;
}

/* One more pin on an entry in the table. */
static inline void th_cache_pin(struct th_cache *c, struct th_cnode *e)
{
	if (!e->pins++)
		th_cache_lru_unlink(c, e);
}

/* Drop a pin: true when it was the last (the entry is on the LRU list). */
static inline bool th_cache_unpin(struct th_cache *c, struct th_cnode *e)
{
	if (--e->pins)
		return false;
	th_cache_lru_append(c, e);
	return true;
}

/* Read-only use (views). */

/* th_cache_read's miss: block blk read with th_node_read into a new entry
 * while the cache holds fewer than cap, else into the oldest unpinned one. */
int th_cache_read_miss(struct th_cache *c, struct dlvm_dev *dev, uint8_t *iobuf,
		       const struct th_limits *lim, const char *who, uint64_t blk,
		       struct th_cnode **out, struct dlvm_err *err);
/* Free the oldest unpinned entries past the cap. */
void th_cache_trim(struct th_cache *c);

/* The node of block blk, pinned: cached, or read from dev; a full cache
 * allocates nothing. -EBADMSG, -EIO, -ENOMEM. */
static inline int th_cache_read(struct th_cache *c, struct dlvm_dev *dev, uint8_t *iobuf,
				const struct th_limits *lim, const char *who, uint64_t blk,
				struct th_cnode **out, struct dlvm_err *err)
{
	struct th_cnode *e = th_cache_find(c, blk);

	if (!e)
		return th_cache_read_miss(c, dev, iobuf, lim, who, blk, out, err);
	th_cache_pin(c, e);
	*out = e;
	return 0;
}

/* Give back a pin of th_cache_read. */
static inline void th_cache_put(struct th_cache *c, struct th_cnode *e)
{
	if (th_cache_unpin(c, e) && c->nunpinned > c->cap)
		th_cache_trim(c);
}

/* Give back a pin of th_cache_read and drop the entry: its node is not
 * what its place in the tree needs. */
void th_cache_forget(struct th_cache *c, struct th_cnode *e);

/* The store's use: the node in block blk, pinned. It must be of tree `type`
 * and, when level >= 0, of that level. Reads and decodes it when not cached.
 * -EBADMSG, -EIO, -ENOMEM. */
int th_node_get(struct dlvm_thin_store *s, uint64_t blk, uint16_t type, int level,
		struct th_cnode **out, struct dlvm_err *err);
/* Unpin; past the cache's cap the oldest unpinned nodes go, changed ones
 * written first. */
void th_node_put(struct dlvm_thin_store *s, struct th_cnode *c);
/* A node in a newly allocated block, empty, pinned, dirty. -ENOSPC, -ENOMEM. */
int th_node_new(struct dlvm_thin_store *s, uint16_t type, uint16_t level, struct th_cnode **out,
		struct dlvm_err *err);
/* Mark a pinned node changed (it must be new in this transaction). */
void th_node_dirty(struct dlvm_thin_store *s, struct th_cnode *c);
/* Forget the cache entry of block blk, if any (it must not be pinned). */
void th_cache_drop(struct dlvm_thin_store *s, uint64_t blk);
/* The blocks of every changed node, in block order, into blk (room for
 * s->cache.count); returns how many. */
size_t th_cache_dirty(const struct dlvm_thin_store *s, uint64_t *blk);
/* Encode the nodes of blk[0..n) into buf + i * TH_BLOCK; they count as
 * written from then on and stay cached until th_cache_written. */
void th_cache_seal(struct dlvm_thin_store *s, const uint64_t *blk, size_t n, uint8_t *buf);
/* The commit that sealed blk[0..n) wrote them: they may leave the cache. */
void th_cache_written(struct dlvm_thin_store *s, const uint64_t *blk, size_t n);

/* ---- btree.c: copy-on-write B-trees ---- */

/* Ready node blk of tree `type` for a change: the node itself if it is new in
 * this transaction and referenced once, else a copy in a new block (the
 * children or data chunks of a shared node get one more reference). The
 * caller's pointer to blk must now point to (*out)->n.blocknr. */
int th_shadow(struct dlvm_thin_store *s, uint64_t blk, uint16_t type, int level,
	      struct th_cnode **out, struct dlvm_err *err);

/* Depth (levels) of the tree rooted at root: root level + 1. */
int th_tree_depth(struct dlvm_thin_store *s, uint64_t root, uint16_t type, unsigned *depth,
		  struct dlvm_err *err);
/* Metadata blocks one insert (or one remove step) may take in a tree of that
 * depth. */
static inline uint64_t th_insert_cost(unsigned depth)
{
	return 2 * (uint64_t)depth + 2;
}

/* ---- the search of every tree (inline: each caller's reader is called
 * directly, and a view's lookups stay as fast as a search of its own) ---- */

/* First index whose key is >= key (n->nr if none). */
static inline unsigned th_lower_bound(const struct th_node *n, uint64_t key)
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

/* Index of the child whose range holds key: the last key <= key; -1 when key
 * is below every key. */
static inline int th_child_index(const struct th_node *n, uint64_t key)
{
	unsigned i = th_lower_bound(n, key);

	if (i < n->nr && n->keys[i] == key)
		return (int)i;
	return (int)i - 1;
}

/* Entry i's value into *val (8 bytes) or *rec (device tree leaf); either may
 * be NULL. */
static inline void th_value_out(const struct th_node *n, unsigned i, uint64_t *val,
				struct th_devrec *rec)
{
	if (n->type == TH_TREE_DEV) {
		if (rec)
			*rec = n->u.d[i];
	} else if (val) {
		*val = n->u.v[i];
	}
}

/* Where a node is reached from: what its parent lets it be. */
struct th_place {
	uint16_t type;   /* enum th_tree */
	int level;       /* -1: the root, any level */
	uint64_t lo, hi; /* every key of the node lies in [lo, hi] */
};

static inline struct th_place th_root_place(uint16_t type)
{
	return (struct th_place){ .type = type, .level = -1, .lo = 0, .hi = DLVM_THIN_MAX_ID };
}

/* The place of child i of internal node n, itself at place p. */
static inline struct th_place th_child_place(const struct th_node *n, unsigned i,
					     const struct th_place *p)
{
	return (struct th_place){ .type = p->type,
				  .level = n->level - 1,
				  .lo = n->keys[i],
				  .hi = i + 1 < n->nr ? n->keys[i + 1] - 1 : p->hi };
}

/*
 * How a search reads nodes. get pins the node in block blk, reached at
 * place p; it checks as much of p as its owner needs (the store: type and
 * level; a view: all of it) and fails with -EBADMSG naming the block. put
 * gives the pin back. A search holds one pin at a time.
 */
struct th_reader {
	int (*get)(void *ctx, uint64_t blk, const struct th_place *p, struct th_cnode **out,
		   struct dlvm_err *err);
	void (*put)(void *ctx, struct th_cnode *c);
	void *ctx;
};

/*
 * Down from root to the leaf whose range holds key: returned pinned in
 * *leaf, with its place. An internal node whose keys are all above key has
 * no child for it: then *leaf is NULL, or, with `first`, the search goes on
 * into its first child (where the keys after key begin).
 */
static inline int th_btree_descend(const struct th_reader *rd, uint64_t root, uint16_t type,
				   uint64_t key, bool first, struct th_cnode **leaf,
				   struct th_place *place, struct dlvm_err *err)
{
	struct th_place p = th_root_place(type);
	uint64_t blk = root;
	struct th_cnode *c;
	int r;

	*leaf = NULL;
	for (;;) {
		if ((r = rd->get(rd->ctx, blk, &p, &c, err)))
			return r;
		if (c->n.level == 0)
			break;
		int i = th_child_index(&c->n, key);
		if (i < 0 && !first) {
			rd->put(rd->ctx, c);
			return 0;
		}
		unsigned k = i < 0 ? 0 : (unsigned)i;
		blk = c->n.u.v[k];
		p = th_child_place(&c->n, k, &p);
		rd->put(rd->ctx, c);
	}
	*leaf = c;
	*place = p;
	return 0;
}

/* Find key in the tree rooted at root, over rd: *found, and its value in
 * *val or *rec (th_value_out). Returns get's errors. */
static inline int th_btree_find(const struct th_reader *rd, uint64_t root, uint16_t type,
				uint64_t key, bool *found, uint64_t *val, struct th_devrec *rec,
				struct dlvm_err *err)
{
	struct th_cnode *c;
	struct th_place p;
	int r;

	*found = false;
	if ((r = th_btree_descend(rd, root, type, key, false, &c, &p, err)) || !c)
		return r;
	unsigned j = th_lower_bound(&c->n, key);
	if (j < c->n.nr && c->n.keys[j] == key) {
		*found = true;
		th_value_out(&c->n, j, val, rec);
	}
	rd->put(rd->ctx, c);
	return 0;
}

/* The smallest key >= from, over rd: *key (DLVM_THIN_NONE if none) and its
 * value as th_btree_find gives it. Returns get's errors. */
static inline int th_btree_find_next(const struct th_reader *rd, uint64_t root, uint16_t type,
				     uint64_t from, uint64_t *key, uint64_t *val,
				     struct th_devrec *rec, struct dlvm_err *err)
{
	struct th_cnode *c;
	struct th_place p;
	int r;

	*key = DLVM_THIN_NONE;
	/* Down to the leaf whose range holds from. When no key of it is >= from,
	 * the next leaf starts after its range: again from there. Non-root
	 * leaves are not empty, so that is at most once more. */
	while (from <= DLVM_THIN_MAX_ID) {
		if ((r = th_btree_descend(rd, root, type, from, true, &c, &p, err)))
			return r;
		unsigned j = th_lower_bound(&c->n, from);
		if (j < c->n.nr) {
			*key = c->n.keys[j];
			th_value_out(&c->n, j, val, rec);
			rd->put(rd->ctx, c);
			return 0;
		}
		rd->put(rd->ctx, c);
		if (p.hi >= DLVM_THIN_MAX_ID)
			break;
		from = p.hi + 1;
	}
	return 0;
}

/* th_btree_find on the store's cache. *shared (may be NULL): a node on the
 * path is referenced more than once. */
int th_btree_lookup(struct dlvm_thin_store *s, uint64_t root, uint16_t type, uint64_t key,
		    bool *found, uint64_t *val, struct th_devrec *rec, bool *shared,
		    struct dlvm_err *err);
/* Insert or overwrite key. *root is updated (shadowing). The old value (if
 * any) is returned in *old / *old_rec with *had_old; its references are the
 * caller's to drop. Needs th_insert_cost(depth) free metadata blocks. */
int th_btree_insert(struct dlvm_thin_store *s, uint64_t *root, uint16_t type, uint64_t key,
		    uint64_t val, const struct th_devrec *rec, bool *had_old, uint64_t *old,
		    struct th_devrec *old_rec, struct dlvm_err *err);
/* Called with the value of each removed entry (its reference is the
 * callee's to drop). */
typedef void (*th_removed_fn)(struct dlvm_thin_store *s, uint64_t key, uint64_t val,
			      const struct th_devrec *rec, void *ctx);
/* Remove the keys in [lo, hi] held by one leaf: the first leaf holding a key
 * >= lo. *next is the key after the last removed one's leaf (DLVM_THIN_NONE:
 * done). *removed counts the entries removed. Needs th_insert_cost(depth)
 * free metadata blocks. */
int th_btree_remove_step(struct dlvm_thin_store *s, uint64_t *root, uint16_t type, uint64_t lo,
			 uint64_t hi, th_removed_fn fn, void *ctx, uint64_t *removed,
			 uint64_t *next, struct dlvm_err *err);
/* th_btree_find_next on the store's cache. */
int th_btree_next(struct dlvm_thin_store *s, uint64_t root, uint16_t type, uint64_t from,
		  uint64_t *key, uint64_t *val, struct th_devrec *rec, struct dlvm_err *err);
/* Call fn(ctx, key, val) for each entry with key >= from, in order; stops at
 * fn's non-zero return value and returns it. */
int th_btree_iterate(struct dlvm_thin_store *s, uint64_t root, uint16_t type, uint64_t from,
		     dlvm_thin_map_fn fn, void *ctx, struct dlvm_err *err);
/* Drop one reference to the tree rooted at blk: nodes whose count reaches
 * zero are read and release what they hold (children, data chunks, device
 * roots). */
int th_tree_release(struct dlvm_thin_store *s, uint64_t blk, uint16_t type, int level,
		    struct dlvm_err *err);

/* ---- walk.c: visit every distinct node once ---- */

#define TH_WALK_WIN 512u    /* blocks in one window: 2 MiB */
#define TH_WALK_WIN_MAX 64u /* windows held at once: 128 MiB */
#define TH_WALK_READERS 3u  /* windows read at once by reader threads */

/*
 * A walk from a device tree root visits every node reachable from it once,
 * counts the references to each node (one per parent pointer or device root)
 * and to each data chunk (one per leaf entry), and checks the structure:
 * each node decodes (changed nodes come from the cache, the rest from the
 * device), has the tree type and level its parent implies, and keeps its keys
 * inside the range its parent gives.
 */
struct th_walk {
	/* in */
	struct dlvm_thin_store *s;
	struct th_limits lim;
	uint64_t dev_root;
	bool strict;                                /* also report nodes below a third full */
	size_t win_max;                             /* windows held at once; 0: TH_WALK_WIN_MAX */
	void (*report)(void *ctx, const char *msg); /* each problem; may be NULL */
	void *ctx;
	/* out */
	uint32_t *mref; /* lim.meta_blocks counts (blocks 0 and 1: 1) */
	uint32_t *dref; /* lim.data_chunks counts */
	uint64_t ndevs;
	unsigned problems;
	/* memo per block */
	uint8_t *kind; /* 0: not seen; 0xff: damaged; else 1 + type - 1 + 2 * level */
	uint64_t *first, *last, *count; /* lowest key, highest key, entries below */
	struct th_windows *win;         /* the device read in windows (window.c) */
	/* past the windows' budget: the leaves below the level-1 node being
	 * visited, read ahead in runs */
	uint64_t pf_blk[TH_ENTRIES];  /* sorted */
	uint8_t *pf_data[TH_ENTRIES]; /* their blocks, in pf_buf */
	unsigned pf_n;
	uint8_t *pf_buf;
};

/* ---- window.c: the metadata device read in windows during a walk ---- */

struct th_windows;
/* Windows over blocks 0 .. blocks - 1 of dev (at most its size), at most
 * max of them held at once. 0 or -ENOMEM. */
int th_windows_new(struct dlvm_dev *dev, uint64_t blocks, size_t max, struct th_windows **out);
/* Stops the reader thread and frees every window; NULL is fine. */
void th_windows_free(struct th_windows *ws);
/* Block blk will be needed soon: queue its window for the reader thread
 * (nothing when it is queued or read already, or the budget is spent). */
void th_windows_want(struct th_windows *ws, uint64_t blk);
/* Can blk come from a window (one held, or one the budget still allows)? */
bool th_windows_may_hold(struct th_windows *ws, uint64_t blk);
/* Block blk's 4096 bytes as its window holds them, read now (or waited
 * for) if need be; valid until th_windows_free. NULL when blk is past the
 * windows, past the budget or in a window that could not be read: read it
 * alone. */
const uint8_t *th_windows_block(struct th_windows *ws, uint64_t blk);

/* Run the walk: 0 when nothing was wrong, -EBADMSG when something was (the
 * first problem is in err), -ENOMEM or -EIO when it could not run. The
 * caller frees w->mref and w->dref (also on error) with th_walk_release. */
int th_walk_run(struct th_walk *w, struct dlvm_err *err);
void th_walk_release(struct th_walk *w);

/* ---- volume.c ---- */

/* Device record of id: -ENOENT. */
int th_dev_find(struct dlvm_thin_store *s, uint64_t id, struct th_devrec *rec,
		struct dlvm_err *err);

#endif
