/* SPDX-License-Identifier: MIT */
/* The data path's mapping of reads and writes of a thin LV onto the data
 * area, the lookups behind it (a clone's through its origins) and block
 * status. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

/* The piece's device as an index into the caller's map (a connection's map
 * was built before the pool may have grown onto another PV). */
static int piece_for(struct dlvm_thin_pool *p, const struct dlvm_lv_map *m,
		     struct dlvm_map_piece *piece, struct dlvm_err *err)
{
	int fd = p->data->devs[piece->dev].fd;

	for (uint32_t i = 0; i < m->ndev; i++)
		if (m->devs[i].fd == fd) {
			piece->dev = i;
			return 0;
		}
	return dlvm_err_set(err, -EIO,
			    "%s: the pool grew onto a PV this connection does not "
			    "know: reconnect",
			    p->name);
}
/*
 * dlvm_thin_provision_mapping, and the known-hole run kept true: a chunk
 * handed out leaves it, with every chunk below it (mu held). A new chunk
 * has all its sub-blocks unwritten where the store keeps them. *in_hole:
 * the new chunk came from the run.
 */
int pool_provision(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
		   struct dlvm_thin_mapping *m, bool *in_hole, struct dlvm_err *err)
{
	pool_prep_wait(p, id, vchunk, vchunk + 1);
	int r = dlvm_thin_provision_mapping(p->store, id, vchunk, p->track ? p->sub_all : 0, m,
					    err);

	*in_hole = false;
	if (!r && m->is_new)
		pool_chunk_taken(p, m->chunk);
	if (!r && m->is_new && m->chunk >= p->hole_lo && m->chunk < p->hole_hi) {
		*in_hole = true;
		p->hole_lo = m->chunk + 1;
	}
	return r;
}

/* A reader's view of device id, opened on first use. */
int pool_view_of(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_thin_view **out,
		 struct dlvm_err *err)
{
	for (size_t i = 0; i < p->nviews; i++)
		if (p->views[i].id == id) {
			*out = p->views[i].view;
			return 0;
		}
	struct dlvm_thin_view_ent *v = realloc(p->views, (p->nviews + 1) * sizeof(*v));
	if (!v)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	p->views = v;
	int r = dlvm_thin_view_open(p->meta, id, 4096, &v[p->nviews].view, err);
	if (r)
		return dlvm_err_prefix(err, r, "%s: ", p->name);
	v[p->nviews].id = id;
	*out = v[p->nviews++].view;
	return 0;
}

/* Lookups through the store, or through a view for a reader (mu held). */
int pool_lookup_map(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
		    struct dlvm_thin_mapping *m, struct dlvm_err *err)
{
	struct dlvm_thin_view *v;
	int r;

	pool_prep_wait(p, id, vchunk, vchunk + 1);
	if (p->store)
		return dlvm_thin_lookup_mapping(p->store, id, vchunk, m, err);
	if ((r = pool_view_of(p, id, &v, err))) {
		m->chunk = DLVM_THIN_NONE;
		return r;
	}
	return dlvm_thin_view_lookup_mapping(v, vchunk, m, err);
}

int pool_lookup(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk, uint64_t *chunk,
		struct dlvm_err *err)
{
	struct dlvm_thin_mapping m;
	int r = pool_lookup_map(p, id, vchunk, &m, err);

	*chunk = m.chunk;
	return r;
}

int pool_next_mapped(struct dlvm_thin_pool *p, uint64_t id, uint64_t from, uint64_t *vchunk,
		     struct dlvm_err *err)
{
	struct dlvm_thin_view *v;
	int r;

	if (p->store)
		return dlvm_thin_next_mapped(p->store, id, from, vchunk, NULL, err);
	if ((r = pool_view_of(p, id, &v, err)))
		return r;
	return dlvm_thin_view_next_mapped(v, from, vchunk, NULL, err);
}

/* A chunk past the data map: a reader whose VG model is older than the
 * snapshot it reads (cannot happen: the model is reloaded first). */
static int chunk_known(struct dlvm_thin_pool *p, uint64_t chunk, struct dlvm_err *err)
{
	if ((chunk + 1) * p->chunk_size > p->data->size)
		return dlvm_err_set(err, -EIO,
				    "%s: chunk %" PRIu64 " lies past the data area this "
				    "host knows",
				    p->name, chunk);
	return 0;
}

/* Where an external origin maps vchunk: *owner is the store whose data
 * area holds *chunk, with unwritten sub-blocks *unw (may be NULL), or
 * *chunk is DLVM_THIN_NONE (a hole all the way down). Locks each origin's
 * store in turn (p's may be held: the order is always clone before
 * origin). */
int pool_ext_resolve(struct dlvm_thin_pool *p, uint64_t vchunk, struct dlvm_thin_pool **owner,
		     uint64_t *chunk, uint16_t *unw, struct dlvm_err *err)
{
	uint64_t dev = p->ext_dev;

	*chunk = DLVM_THIN_NONE;
	if (unw)
		*unw = 0;
	for (struct dlvm_thin_pool *e = p->ext; e; dev = e->ext_dev, e = e->ext) {
		struct dlvm_thin_mapping m;
		pthread_mutex_lock(&e->mu);
		int r = pool_lookup_map(e, dev, vchunk, &m, err);
		*chunk = m.chunk;
		if (!r && *chunk != DLVM_THIN_NONE)
			r = chunk_known(e, *chunk, err);
		pthread_mutex_unlock(&e->mu);
		if (r)
			return r;
		if (*chunk != DLVM_THIN_NONE) {
			*owner = e;
			if (unw)
				*unw = m.unwritten;
			return 0;
		}
	}
	return 0;
}
/* The pool may not commit what it changed: a chunk it maps does not hold
 * what it must (mu held). */
void pool_break(struct dlvm_thin_pool *p, const struct dlvm_err *err)
{
	if (p->broken)
		return;
	p->broken = true;
	snprintf(p->broken_msg, sizeof(p->broken_msg), "%s", err ? err->msg : "I/O error");
}

int dlvm_thin_pool_map_read(const struct dlvm_lv_map *m, uint64_t off, uint64_t len,
			    struct dlvm_map_piece *piece, bool *hole, struct dlvm_err *err)
{
	struct dlvm_thin_pool *p = m->thin, *o = p;
	uint64_t vchunk = off / p->chunk_size, in = off % p->chunk_size;
	uint64_t n = DLVM_MIN(len, p->chunk_size - in);
	struct dlvm_thin_mapping mm;

	pthread_mutex_lock(&p->mu);
	int r = pool_lookup_map(p, m->thin_id, vchunk, &mm, err);
	uint64_t chunk = mm.chunk;
	uint16_t unw = mm.unwritten;
	if (!r && chunk != DLVM_THIN_NONE)
		r = chunk_known(p, chunk, err);
	/* a clone: what it never wrote is its origin's */
	if (!r && chunk == DLVM_THIN_NONE && p->ext)
		r = pool_ext_resolve(p, vchunk, &o, &chunk, &unw, err);
	*hole = chunk == DLVM_THIN_NONE;
	if (!r && !*hole && unw)
		n = pool_sub_run(p, unw, in, n, hole);
	if (!r && !*hole) {
		if (o != p)
			pthread_mutex_lock(&o->mu);
		pool_chunk_piece(o, chunk, in, n, piece);
		r = piece_for(o, m, piece, err);
		if (o != p)
			pthread_mutex_unlock(&o->mu);
	}
	pthread_mutex_unlock(&p->mu);
	if (r)
		return r;
	if (*hole)
		*piece = (struct dlvm_map_piece){ .dev = 0, .dev_off = 0, .len = n };
	return 0;
}

int dlvm_thin_pool_map_write(const struct dlvm_lv_map *m, uint64_t off, uint64_t len,
			     struct dlvm_map_piece *piece, struct dlvm_thin_written *w,
			     struct dlvm_err *err)
{
	struct dlvm_thin_pool *p = m->thin;
	uint64_t id = m->thin_id;
	uint64_t vchunk = off / p->chunk_size, in = off % p->chunk_size;
	uint64_t n = DLVM_MIN(len, p->chunk_size - in);
	struct dlvm_thin_mapping mm;
	bool in_hole;
	int r;

	w->mask = 0;
	pthread_mutex_lock(&p->mu);
	if (p->broken || !p->store) {
		pthread_mutex_unlock(&p->mu);
		if (!p->store)
			return dlvm_err_set(err, -EROFS, "%s: this host reads the family only",
					    p->name);
		return pool_stopped(p, err);
	}
	r = pool_provision(p, id, vchunk, &mm, &in_hole, err);
	if (r == -ENOSPC && (p->family || p->can_grow)) {
		/* the host agent adds a slab from the pool, or extends a local
		 * pool (a VG transaction); wait for it a while. A family whose
		 * pool had no slab left waits for the agent's next look only:
		 * the pool may have grown since, here or on another host */
		struct timespec until = dlvm_timespec_add_ms(dlvm_mono_now(), 10000);
		p->want_slab = true;
		while (p->want_slab &&
		       pthread_cond_timedwait(&p->grown, &p->mu, &until) != ETIMEDOUT)
			;
		dlvm_err_clear(err); /* the first ENOSPC's message is stale now */
		r = pool_provision(p, id, vchunk, &mm, &in_hole, err);
	}
	if (!r && mm.is_new) {
		p->dirty = true;
		/* the store now maps a chunk whose contents are not what they
		 * must be, if this fails: never commit this transaction */
		if ((r = pool_chunk_prepare_write(p, id, vchunk, &mm, in_hole, err)))
			pool_break(p, err);
	}
	/* the piece first: a chunk across a segment boundary comes in more
	 * than one, and each accounts for the sub-blocks of its own bytes
	 * (one that straddles the boundary is partial in both) */
	if (!r) {
		pool_chunk_piece(p, mm.chunk, in, n, piece);
		r = piece_for(p, m, piece, err);
	}
	uint16_t touched = 0, whole = 0;
	if (!r)
		pool_sub_span(p, in, piece->len, &touched, &whole);
	uint16_t part = r ? 0 : mm.unwritten & touched & (uint16_t)~whole;
	/* a sub-block that another write fills whole meanwhile is not zeroed
	 * (its data may be down already): this write relies on that one */
	uint16_t relied = part && p->fills ? part & dlvm_thin_fill_pending(p->fills, mm.chunk) : 0;
	uint16_t fill = r ? 0 : mm.unwritten & whole;
	if (fill && (!p->fills || !dlvm_thin_fill_add(p->fills, mm.chunk, fill))) {
		/* no room to follow it (then no fill of the chunk is under
		 * way): zeroed first and written from now on, as in part */
		part |= fill;
		fill = 0;
	}
	part &= (uint16_t)~relied;
	if (part) {
		/* what the write leaves of a sub-block it fills in part must read
		 * as zeros once the sub-block counts as written */
		if (!(r = pool_subs_zero(p, mm.chunk, part, err)))
			r = dlvm_thin_set_unwritten(p->store, id, vchunk, mm.chunk, 0, part, err);
		p->dirty = true;
	}
	if (!r) {
		if (relied)
			dlvm_thin_fill_rely(p->fills, mm.chunk, relied);
		*w = (struct dlvm_thin_written){ .vchunk = vchunk,
						 .chunk = mm.chunk,
						 .mask = fill,
						 .relied = relied };
	} else if (fill) {
		dlvm_thin_fill_drop(p->fills, mm.chunk, fill);
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}
int dlvm_thin_pool_extent(struct dlvm_thin_pool *p, uint64_t id, uint64_t off, uint64_t len,
			  uint64_t *ext, enum dlvm_thin_extent *kind, struct dlvm_err *err)
{
	uint64_t cs = p->chunk_size, pos = off, end = off + len;
	int r = 0;

	*ext = 0;
	*kind = DLVM_THIN_EXT_DATA;
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < 64 && pos < end; i++) {
		uint64_t v = pos / cs, in = pos % cs, run = cs - in;
		struct dlvm_thin_mapping mm;
		struct dlvm_thin_pool *o;
		if ((r = pool_lookup_map(p, id, v, &mm, err)))
			break;
		uint16_t unw = mm.unwritten;
		if (mm.chunk == DLVM_THIN_NONE && p->ext &&
		    (r = pool_ext_resolve(p, v, &o, &mm.chunk, &unw, err)))
			break;
		enum dlvm_thin_extent k = DLVM_THIN_EXT_HOLE;
		if (mm.chunk != DLVM_THIN_NONE) {
			bool zero = false;
			run = unw ? pool_sub_run(p, unw, in, run, &zero) : run;
			k = zero ? DLVM_THIN_EXT_ZERO : DLVM_THIN_EXT_DATA;
		} else if (!p->ext) {
			/* up to the next mapped chunk, in one step */
			uint64_t next;
			if ((r = pool_next_mapped(p, id, v, &next, err)))
				break;
			run = next == DLVM_THIN_NONE ? UINT64_MAX - pos : next * cs - pos;
		}
		if (i == 0)
			*kind = k;
		else if (k != *kind)
			break;
		run = DLVM_MIN(run, end - pos);
		pos += run;
		if (pos % cs && pos < end)
			break; /* the kind changes inside the chunk */
	}
	pthread_mutex_unlock(&p->mu);
	*ext = pos - off;
	return r;
}
