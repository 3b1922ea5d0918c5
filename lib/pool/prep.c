/* SPDX-License-Identifier: MIT */
/* Preparing a new chunk before a write goes to it: a copy of the chunk
 * it replaces (or of a clone's origin), made without the pool's mutex
 * where it can, or zeros. */
#include <errno.h>
#include <string.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

/* A free entry with its buffer, taken for (id, vchunk); -1 if none
 * (mu held). */
static int prep_take(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk)
{
	if (p->prep_closed)
		return -1;
	for (unsigned i = 0; i < DLVM_THIN_PREP_MAX; i++) {
		struct dlvm_thin_prep *e = &p->prep[i];
		if (e->busy)
			continue;
		if (!e->buf && !(e->buf = dlvm_io_alloc(p->chunk_size)))
			return -1;
		*e = (struct dlvm_thin_prep){ .id = id,
					      .vchunk = vchunk,
					      .busy = true,
					      .buf = e->buf };
		p->nprep++;
		return (int)i;
	}
	return -1;
}

static void prep_put(struct dlvm_thin_pool *p, int i)
{
	p->prep[i].busy = false;
	p->nprep--;
	pthread_cond_broadcast(&p->prepared);
}
/* Store o's data map, referenced (o is p, whose mu is held, or an origin,
 * whose mu is taken for it). */
static struct dlvm_lv_map *data_map_of(struct dlvm_thin_pool *p, struct dlvm_thin_pool *o)
{
	if (o != p)
		pthread_mutex_lock(&o->mu);
	struct dlvm_lv_map *m = dlvm_lv_map_get(o->data);
	if (o != p)
		pthread_mutex_unlock(&o->mu);
	return m;
}

/* Copy chunk `from` of store o (through its data map src) into chunk `to`
 * of p (through dst), its unwritten sub-blocks `unw` as zeros, by way of
 * buf; no mutex needed. */
static int chunk_copy_on(struct dlvm_thin_pool *p, struct dlvm_thin_pool *o,
			 const struct dlvm_lv_map *src, const struct dlvm_lv_map *dst,
			 uint64_t from, uint16_t unw, uint64_t to, uint8_t *buf,
			 struct dlvm_err *err)
{
	int r = pool_chunk_range_io_on(o, src, from, 0, o->chunk_size, buf, false, err);

	if (r)
		return r;
	pool_subs_blank(p, buf, unw);
	return pool_chunk_range_io_on(p, dst, to, 0, p->chunk_size, buf, true, err);
}

/* The same with p->copy and p's current data map (p->mu held). */
static int chunk_copy_from(struct dlvm_thin_pool *p, struct dlvm_thin_pool *o, uint64_t from,
			   uint16_t unw, uint64_t to, struct dlvm_err *err)
{
	struct dlvm_lv_map *src = data_map_of(p, o);
	int r = chunk_copy_on(p, o, src, p->data, from, unw, to, p->copy, err);

	dlvm_lv_map_put(src);
	return r;
}

/* A copied chunk holds all it must: none of its sub-blocks reads as zeros
 * any more (p->mu held). */
static int chunk_copied(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
			struct dlvm_thin_mapping *m, struct dlvm_err *err)
{
	int r = p->track ? dlvm_thin_set_unwritten(p->store, id, vchunk, m->chunk, 0, p->sub_all,
						   err)
			 : 0;

	if (!r)
		m->unwritten = 0;
	return r;
}

/*
 * Give new chunk m->chunk of virtual chunk vchunk what it must hold before
 * a write goes to it: the chunk it replaces or the external origin's, copied
 * whole (then nothing of it is unwritten); else zeros, written where the
 * store keeps no unwritten sub-blocks (where it does they read as zeros
 * already). A new chunk never shows what an earlier owner left in it.
 */
static int chunk_prepare(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
			 struct dlvm_thin_mapping *m, bool in_hole, struct dlvm_err *err)
{
	struct dlvm_thin_pool *o = p;
	uint64_t from = m->copy_from;
	uint16_t unw = m->from_unwritten;
	int r;

	if (from == DLVM_THIN_NONE && p->ext &&
	    (r = pool_ext_resolve(p, vchunk, &o, &from, &unw, err)))
		return r;
	if (from == DLVM_THIN_NONE)
		return p->track ? 0 : pool_chunk_zero(p, m->chunk, in_hole, err);
	if ((r = chunk_copy_from(p, o, from, unw, m->chunk, err)))
		return r;
	return chunk_copied(p, id, vchunk, m, err);
}

/*
 * chunk_prepare for a write, with the copy done without mu: other requests
 * of the pool go on meanwhile, and those for this virtual chunk wait for
 * it (pool_prep_wait in every lookup). Falls back to chunk_prepare when there is
 * nothing to copy, no free entry, or a commit or snapshot waits (mu held;
 * let go and taken again around the copy).
 */
int pool_chunk_prepare_write(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
			     struct dlvm_thin_mapping *m, bool in_hole, struct dlvm_err *err)
{
	struct dlvm_thin_pool *o = p;
	uint64_t from = m->copy_from, to = m->chunk;
	uint16_t unw = m->from_unwritten;
	int r, e;

	if (from == DLVM_THIN_NONE && p->ext &&
	    (r = pool_ext_resolve(p, vchunk, &o, &from, &unw, err)))
		return r;
	if (from == DLVM_THIN_NONE || o->chunk_size != p->chunk_size ||
	    (e = prep_take(p, id, vchunk)) < 0)
		return chunk_prepare(p, id, vchunk, m, in_hole, err);
	struct dlvm_lv_map *src = data_map_of(p, o), *dst = dlvm_lv_map_get(p->data);
	pthread_mutex_unlock(&p->mu);
	r = chunk_copy_on(p, o, src, dst, from, unw, to, p->prep[e].buf, err);
	dlvm_lv_map_put(src);
	dlvm_lv_map_put(dst);
	pthread_mutex_lock(&p->mu);
	/* the waiters run only once mu is let go, after the bits below */
	prep_put(p, e);
	if (!r && p->broken)
		r = pool_stopped(p, err);
	return r ? r : chunk_copied(p, id, vchunk, m, err);
}
