/* SPDX-License-Identifier: MIT */
/*
 * Nodes in memory. Whoever holds a pointer to a cached node holds a pin on
 * it; unpinned nodes sit on an LRU list and the oldest go when there are
 * more than cache_cap of them. A changed ("dirty") node that goes is
 * written first: it lives in a block allocated in this transaction, which no
 * commit references, so writing it early is as safe as writing it at commit.
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/dev.h"
#include "thin_int.h"

void th_cache_init(struct dlvm_thin_store *s, size_t cap)
{
	dlvm_hmap_init_u64(&s->cache, offsetof(struct th_cnode, n.blocknr));
	s->cache_cap = cap;
	s->ncached = s->nunpinned = 0;
	s->lru_head = s->lru_tail = NULL;
}

static void lru_unlink(struct dlvm_thin_store *s, struct th_cnode *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->lru_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->lru_tail = c->prev;
	c->prev = c->next = NULL;
	s->nunpinned--;
}

static void lru_append(struct dlvm_thin_store *s, struct th_cnode *c)
{
	c->prev = s->lru_tail;
	c->next = NULL;
	if (s->lru_tail)
		s->lru_tail->next = c;
	else
		s->lru_head = c;
	s->lru_tail = c;
	s->nunpinned++;
}

static void entry_free(struct dlvm_thin_store *s, struct th_cnode *c)
{
	dlvm_hmap_remove(&s->cache, c);
	s->ncached--;
	free(c);
}

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
	struct th_cnode *c = s->lru_head;

	while (c && s->nunpinned > s->cache_cap) {
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
				lru_unlink(s, c);
				lru_append(s, c);
				return;
			}
		}
		lru_unlink(s, c);
		entry_free(s, c);
		c = next;
	}
}

int th_node_get(struct dlvm_thin_store *s, uint64_t blk, uint16_t type, int level,
		struct th_cnode **out, struct dlvm_err *err)
{
	struct th_cnode *c = dlvm_hmap_find_u64(&s->cache, blk);
	int r;

	if (blk < TH_FIRST_NODE || blk >= s->sb.meta_blocks)
		return th_fail(s, dlvm_err_set(err, -EBADMSG, "%s: node at block %" PRIu64 ": "
					       "outside blocks 2 to %" PRIu64, s->name, blk,
					       s->sb.meta_blocks - 1), err);
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
		if (!r && dlvm_hmap_insert(&s->cache, c))
			r = dlvm_err_set(err, -ENOMEM, "out of memory");
		if (r) {
			free(c);
			return r;
		}
		s->ncached++;
	} else if (!c->pins) {
		lru_unlink(s, c);
	}
	c->pins++;
	if (type && (c->n.type != type || (level >= 0 && c->n.level != level))) {
		if (c->n.type != type)
			r = dlvm_err_set(err, -EBADMSG, "%s: node at block %" PRIu64 ": field type is "
					 "%u where a node of tree type %u belongs", s->name, blk,
					 c->n.type, type);
		else
			r = dlvm_err_set(err, -EBADMSG, "%s: node at block %" PRIu64 ": field level "
					 "is %u where a level %d node belongs", s->name, blk,
					 c->n.level, level);
		th_node_put(s, c);
		return th_fail(s, r, err);
	}
	*out = c;
	return 0;
}

void th_node_put(struct dlvm_thin_store *s, struct th_cnode *c)
{
	assert(c->pins > 0);
	if (--c->pins)
		return;
	lru_append(s, c);
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
	assert(!dlvm_hmap_find_u64(&s->cache, blk));
	c->n.blocknr = blk;
	c->n.txn = s->sb.txn + 1;
	c->n.type = type;
	c->n.level = level;
	c->dirty = true;
	c->pins = 1;
	if (dlvm_hmap_insert(&s->cache, c)) {
		free(c);
		th_meta_dec(s, blk);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	s->ncached++;
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
	struct th_cnode *c = dlvm_hmap_find_u64(&s->cache, blk);

	if (!c)
		return;
	assert(!c->pins);
	lru_unlink(s, c);
	entry_free(s, c);
}

static int cmp_blocknr(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

size_t th_cache_dirty(const struct dlvm_thin_store *s, uint64_t *blk)
{
	size_t n = 0;

	assert(s->nunpinned == s->ncached);
	for (const struct th_cnode *c = s->lru_head; c; c = c->next)
		if (c->dirty)
			blk[n++] = c->n.blocknr;
	/* in block order: the writes of a commit go out as one sweep */
	qsort(blk, n, sizeof(*blk), cmp_blocknr);
	return n;
}

void th_cache_seal(struct dlvm_thin_store *s, const uint64_t *blk, size_t n, uint8_t *buf)
{
	for (size_t i = 0; i < n; i++) {
		struct th_cnode *c = dlvm_hmap_find_u64(&s->cache, blk[i]);
		th_node_encode(&c->n, buf + i * TH_BLOCK);
		c->dirty = false;
		c->writing = true;
	}
}

void th_cache_written(struct dlvm_thin_store *s, const uint64_t *blk, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* gone if the next transaction freed it */
		struct th_cnode *c = dlvm_hmap_find_u64(&s->cache, blk[i]);
		if (c)
			c->writing = false;
	}
	trim(s);
}

void th_cache_release(struct dlvm_thin_store *s)
{
	struct th_cnode *c = s->lru_head;

	while (c) {
		struct th_cnode *next = c->next;
		free(c);
		c = next;
	}
	s->lru_head = s->lru_tail = NULL;
	s->ncached = s->nunpinned = 0;
	dlvm_hmap_release(&s->cache);
}
