/* SPDX-License-Identifier: MIT */
/*
 * Nodes in memory. A cache keeps decoded nodes in a hash table of chains by
 * block number. Whoever holds a pointer to a cached node holds a pin on it;
 * unpinned nodes sit on an LRU list and the oldest go when there are more
 * than cap of them.
 *
 * The store's cache also holds the nodes a transaction changes. A changed
 * ("dirty") node that goes is written first: it lives in a block allocated
 * in this transaction, which no commit references, so writing it early is as
 * safe as writing it at commit.
 *
 * A view's cache only reads (th_cache_read): once it holds cap nodes, a miss
 * reads into the oldest unpinned entry, so a full cache allocates nothing.
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/dev.h"
#include "thin_int.h"

#define MAX_BUCKET_BITS 24 /* 128 MiB of buckets for a cache far too large */

/* ---- the table and the LRU list ---- */

/* Buckets for the entries of a cache of cap: at least two per entry. */
static unsigned bucket_bits_for(size_t n)
{
	unsigned bits = 1;

	while (bits < MAX_BUCKET_BITS && ((size_t)1 << bits) / 2 < n)
		bits++;
	return bits;
}

int th_cache_init(struct th_cache *c, size_t cap)
{
	*c = (struct th_cache){ .cap = cap, .bucket_bits = bucket_bits_for(cap) };
	c->buckets = calloc((size_t)1 << c->bucket_bits, sizeof(*c->buckets));
	return c->buckets ? 0 : -ENOMEM;
}

/* More entries than buckets (pinned, changed or written nodes past the cap):
 * twice the buckets. Without the memory the chains only grow longer. */
static void table_grow(struct th_cache *c)
{
	unsigned bits = c->bucket_bits + 1;
	struct th_cnode **nb;

	if (bits > MAX_BUCKET_BITS || !(nb = calloc((size_t)1 << bits, sizeof(*nb))))
		return;
	for (size_t i = 0; i < (size_t)1 << c->bucket_bits; i++) {
		struct th_cnode *e = c->buckets[i];
		while (e) {
			struct th_cnode *next = e->hnext;
			size_t b = th_cache_bucket(bits, e->n.blocknr);
			e->hnext = nb[b];
			nb[b] = e;
			e = next;
		}
	}
	free(c->buckets);
	c->buckets = nb;
	c->bucket_bits = bits;
}

/* Put a new entry in the table, pinned once. */
static void table_insert(struct th_cache *c, struct th_cnode *e)
{
	e->pins = 1;
	if (c->count >= (size_t)1 << c->bucket_bits)
		table_grow(c);
	size_t b = th_cache_bucket(c->bucket_bits, e->n.blocknr);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	c->count++;
}

static void table_remove(struct th_cache *c, struct th_cnode *e)
{
	struct th_cnode **pp = &c->buckets[th_cache_bucket(c->bucket_bits, e->n.blocknr)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	c->count--;
}

/* Take an unpinned entry out of the cache and free it. */
static void entry_free(struct th_cache *c, struct th_cnode *e)
{
	th_cache_lru_unlink(c, e);
	table_remove(c, e);
	free(e);
}

void th_cache_clear(struct th_cache *c)
{
	for (size_t i = 0; i < (size_t)1 << c->bucket_bits; i++) {
		while (c->buckets[i]) {
			struct th_cnode *e = c->buckets[i];
			c->buckets[i] = e->hnext;
			free(e);
		}
	}
	c->count = c->nunpinned = 0;
	c->lru_head = c->lru_tail = NULL;
	free(c->spare);
	c->spare = NULL;
}

void th_cache_release(struct th_cache *c)
{
	if (c->buckets)
		th_cache_clear(c);
	free(c->buckets);
	c->buckets = NULL;
}

int th_node_read(struct dlvm_dev *dev, uint8_t *iobuf, uint64_t blk, const struct th_limits *lim,
		 const char *who, struct th_node *n, struct dlvm_err *err)
{
	int r = dlvm_dev_read(dev, iobuf, TH_BLOCK, blk * TH_BLOCK, err);

	if (r)
		return r;
	r = th_node_decode(iobuf, blk, lim, n, err);
	if (r)
		dlvm_err_prefix(err, r, "%s: ", who);
	return r;
}

/* ---- read-only caches ---- */

/* An entry for a node about to be read: the spare one, a new one until the
 * cache is full, then the oldest unpinned one. NULL: out of memory. */
static struct th_cnode *entry_take(struct th_cache *c)
{
	struct th_cnode *e = c->spare;

	if (e) {
		c->spare = NULL;
	} else if (c->count < c->cap || !c->lru_head) {
		if (!(e = malloc(sizeof(*e))))
			return NULL;
	} else {
		e = c->lru_head;
		th_cache_lru_unlink(c, e);
		table_remove(c, e);
	}
	e->dirty = e->writing = false;
	e->hnext = e->prev = e->next = NULL;
	return e;
}

int th_cache_read_miss(struct th_cache *c, struct dlvm_dev *dev, uint8_t *iobuf,
		       const struct th_limits *lim, const char *who, uint64_t blk,
		       struct th_cnode **out, struct dlvm_err *err)
{
	struct th_cnode *e = entry_take(c);
	int r;

	if (!e)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	if ((r = th_node_read(dev, iobuf, blk, lim, who, &e->n, err))) {
		c->spare = e;
		return r;
	}
	table_insert(c, e);
	*out = e;
	return 0;
}

void th_cache_trim(struct th_cache *c)
{
	while (c->nunpinned > c->cap)
		entry_free(c, c->lru_head);
}

void th_cache_forget(struct th_cache *c, struct th_cnode *e)
{
	assert(e->pins == 1);
	e->pins = 0;
	table_remove(c, e);
	free(c->spare);
	c->spare = e;
}

/* ---- the store's cache ---- */

static int node_write(struct dlvm_thin_store *s, struct th_cnode *c, struct dlvm_err *err)
{
	th_node_encode(&c->n, s->iobuf);
	int r = dlvm_dev_write(s->dev, s->iobuf, TH_BLOCK, c->n.blocknr * TH_BLOCK, err);
	if (!r)
		c->dirty = false;
	return r;
}

static void trim(struct dlvm_thin_store *s)
{
	struct th_cnode *c = s->cache.lru_head;

	while (c && s->cache.nunpinned > s->cache.cap) {
		struct th_cnode *next = c->next;
		if (c->writing) { /* its block may not hold it yet */
			c = next;
			continue;
		}
		if (c->dirty) {
			struct dlvm_err e = { 0 };
			int r = node_write(s, c, &e);
			if (r) {
				/* keep it: the store refuses changes from now on */
				th_fail(s, r, &e);
				th_cache_lru_unlink(&s->cache, c);
				th_cache_lru_append(&s->cache, c);
				return;
			}
		}
		entry_free(&s->cache, c);
		c = next;
	}
}

int th_node_get(struct dlvm_thin_store *s, uint64_t blk, uint16_t type, int level,
		struct th_cnode **out, struct dlvm_err *err)
{
	struct th_cnode *c = th_cache_find(&s->cache, blk);
	int r;

	if (blk < TH_FIRST_NODE || blk >= s->sb.meta_blocks)
		return th_fail(s,
			       dlvm_err_set(err, -EBADMSG,
					    "%s: node at block %" PRIu64 ": "
					    "outside blocks 2 to %" PRIu64,
					    s->name, blk, s->sb.meta_blocks - 1),
			       err);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		r = dlvm_dev_read(s->dev, s->iobuf, TH_BLOCK, blk * TH_BLOCK, err);
		if (!r) {
			struct th_limits lim = th_store_limits(s);
			r = th_node_decode(s->iobuf, blk, &lim, &c->n, err);
			if (r) {
				dlvm_err_prefix(err, r, "%s: ", s->name);
				th_fail(s, r, err);
			}
		}
		if (r) {
			free(c);
			return r;
		}
		table_insert(&s->cache, c);
	} else {
		th_cache_pin(&s->cache, c);
	}
	if (type && (c->n.type != type || (level >= 0 && c->n.level != level))) {
		if (c->n.type != type)
			r = dlvm_err_set(err, -EBADMSG,
					 "%s: node at block %" PRIu64 ": field type is "
					 "%u where a node of tree type %u belongs",
					 s->name, blk, c->n.type, type);
		else
			r = dlvm_err_set(err, -EBADMSG,
					 "%s: node at block %" PRIu64 ": field level "
					 "is %u where a level %d node belongs",
					 s->name, blk, c->n.level, level);
		th_node_put(s, c);
		return th_fail(s, r, err);
	}
	*out = c;
	return 0;
}

void th_node_put(struct dlvm_thin_store *s, struct th_cnode *c)
{
	assert(c->pins > 0);
	if (th_cache_unpin(&s->cache, c))
		trim(s);
}

int th_node_new(struct dlvm_thin_store *s, uint16_t type, uint16_t level, struct th_cnode **out,
		struct dlvm_err *err)
{
	struct th_cnode *c = calloc(1, sizeof(*c));
	uint64_t blk;
	int r;

	if (!c)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	r = th_meta_alloc(s, &blk, err);
	if (r) {
		free(c);
		return r;
	}
	assert(!th_cache_find(&s->cache, blk));
	c->n.blocknr = blk;
	c->n.txn = s->sb.txn + 1;
	c->n.type = type;
	c->n.level = level;
	c->dirty = true;
	table_insert(&s->cache, c);
	*out = c;
	return 0;
}

void th_node_dirty(struct dlvm_thin_store *s, struct th_cnode *c)
{
	assert(c->pins > 0 && th_bit(s->mnew, c->n.blocknr));
	c->dirty = true;
	c->n.txn = s->sb.txn + 1;
}

void th_cache_drop(struct dlvm_thin_store *s, uint64_t blk)
{
	struct th_cnode *c = th_cache_find(&s->cache, blk);

	if (!c)
		return;
	assert(!c->pins);
	entry_free(&s->cache, c);
}

static int cmp_blocknr(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

size_t th_cache_dirty(const struct dlvm_thin_store *s, uint64_t *blk)
{
	size_t n = 0;

	assert(s->cache.nunpinned == s->cache.count);
	for (const struct th_cnode *c = s->cache.lru_head; c; c = c->next)
		if (c->dirty)
			blk[n++] = c->n.blocknr;
	/* in block order: the writes of a commit go out as one sweep */
	qsort(blk, n, sizeof(*blk), cmp_blocknr);
	return n;
}

void th_cache_seal(struct dlvm_thin_store *s, const uint64_t *blk, size_t n, uint8_t *buf)
{
	for (size_t i = 0; i < n; i++) {
		struct th_cnode *c = th_cache_find(&s->cache, blk[i]);
		th_node_encode(&c->n, buf + i * TH_BLOCK);
		c->dirty = false;
		c->writing = true;
	}
}

void th_cache_written(struct dlvm_thin_store *s, const uint64_t *blk, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* gone if the next transaction freed it */
		struct th_cnode *c = th_cache_find(&s->cache, blk[i]);
		if (c)
			c->writing = false;
	}
	trim(s);
}
