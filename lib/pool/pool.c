/* SPDX-License-Identifier: MIT */
/* Thin pools of a VG: the store on the metadata LV, chunks in the pool LV. */
#include "dlvm/thinpool.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "fill.h"

static const struct dlvm_lv *meta_lv(const struct dlvm_vg *vg, const struct dlvm_lv *pool,
				     struct dlvm_err *err)
{
	const struct dlvm_lv *m = dlvm_lv_find_id(vg, pool->thin.meta_id);

	if (!m || !(m->flags & DLVM_LV_THIN_META))
		dlvm_err_set(err, -EBADMSG, "%s/%s: the pool's metadata LV (id %" PRIu64 ") is "
			     "missing", vg->info.name, pool->name, pool->thin.meta_id);
	return m;
}

int dlvm_thin_pool_format(const struct dlvm_vg *vg, const struct dlvm_lv *pool, bool zero_new,
			  struct dlvm_err *err)
{
	const struct dlvm_lv *m;
	struct dlvm_dev *dev;
	int r;

	if (!(m = meta_lv(vg, pool, err)))
		return -EBADMSG;
	if ((r = dlvm_lvdev_open(vg, m, &dev, err)))
		return r;
	struct dlvm_thin_format_opts o = {
		.chunk_size = pool->thin.chunk_size,
		.data_chunks = pool->le_count * vg->info.extent_size / pool->thin.chunk_size,
		.zero_new = zero_new,
	};
	memcpy(o.uuid, pool->uuid, 16);
	r = dlvm_thin_store_format(dev, &o, err);
	dlvm_dev_close(dev);
	if (r)
		dlvm_err_prefix(err, r, "%s/%s: ", vg->info.name, pool->name);
	return r;
}

static int view_of(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_thin_view **out,
		   struct dlvm_err *err);
static int commit_locked(struct dlvm_thin_pool *p, struct dlvm_err *err);
static int commit_closed(struct dlvm_thin_pool *p, struct dlvm_err *err);
static void preps_close(struct dlvm_thin_pool *p);
static void commit_idle(struct dlvm_thin_pool *p);
static void preps_open(struct dlvm_thin_pool *p);

static void chunks_freed(void *arg, uint64_t chunk, uint64_t n);
static void chunk_taken(struct dlvm_thin_pool *p, uint64_t c);
static void chunk_piece(struct dlvm_thin_pool *p, uint64_t chunk, uint64_t in, uint64_t len,
			struct dlvm_map_piece *piece);

/* The error of a pool that stopped after an error (p->broken). */
static int pool_stopped(const struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	return dlvm_err_set(err, -EIO, "%s: stopped after an error: %s", p->name, p->broken_msg);
}

static void pool_free(struct dlvm_thin_pool *p)
{
	for (size_t i = 0; i < p->nviews; i++)
		dlvm_thin_view_close(p->views[i].view);
	free(p->views);
	dlvm_thin_store_close(p->store);
	dlvm_dev_close(p->meta);
	dlvm_lv_map_put(p->data);
	dlvm_fence_put(p->fence);
	dlvm_thin_pool_unref(p->ext);
	free(p->zero);
	free(p->copy);
	for (unsigned i = 0; i < DLVM_THIN_PREP_MAX; i++)
		free(p->prep[i].buf);
	free(p->freed);
	free(p->aged);
	dlvm_thin_fills_free(p->fills);
	pthread_cond_destroy(&p->drained);
	pthread_cond_destroy(&p->grown);
	pthread_cond_destroy(&p->prepared);
	pthread_cond_destroy(&p->committed);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

struct dlvm_thin_pool *dlvm_thin_pool_ref(struct dlvm_thin_pool *p)
{
	atomic_fetch_add(&p->refs, 1);
	return p;
}

void dlvm_thin_pool_unref(struct dlvm_thin_pool *p)
{
	if (p && atomic_fetch_sub(&p->refs, 1) == 1)
		pool_free(p);
}

void dlvm_thin_pools_release(struct dlvm_vg *vg)
{
	struct dlvm_thin_pool *p = vg->thin_pools;

	while (p) {
		struct dlvm_thin_pool *next = p->next;
		struct dlvm_err e = { 0 };
		pthread_mutex_lock(&p->mu);
		commit_idle(p);
		if (p->store && !p->broken && p->dirty && commit_locked(p, &e))
			log_error(DLVM_LOG_THIN, "%s: commit: %s", p->name, e.msg);
		pthread_mutex_unlock(&p->mu);
		dlvm_thin_pool_unref(p);
		p = next;
	}
	vg->thin_pools = NULL;
}

const struct dlvm_lv *dlvm_thin_family_data(const struct dlvm_vg *vg, uint64_t meta_id)
{
	for (size_t i = 0; i < vg->nlv; i++)
		if ((vg->lvs[i]->flags & DLVM_LV_THIN_DATA) && vg->lvs[i]->thin.meta_id == meta_id)
			return vg->lvs[i];
	return NULL;
}

struct dlvm_thin_pool *dlvm_thin_store_find(struct dlvm_vg *vg, uint64_t meta_id, bool write)
{
	for (struct dlvm_thin_pool *p = vg->thin_pools; p; p = p->next)
		if (p->meta_id == meta_id && p->reader == !write)
			return p;
	return NULL;
}

/* The LVs of the store on metadata LV meta_id: its pool and its data area
 * (the pool LV itself in a local VG, the family's data LV in a shared one). */
static int store_lvs(const struct dlvm_vg *vg, uint64_t meta_id, const struct dlvm_lv **pool,
		     const struct dlvm_lv **meta, const struct dlvm_lv **data, struct dlvm_err *err)
{
	const struct dlvm_lv *m = dlvm_lv_find_id(vg, meta_id);

	if (!m || !(m->flags & DLVM_LV_THIN_META))
		return dlvm_err_set(err, -EBADMSG, "%s: thin metadata LV id %" PRIu64 " is missing",
				    vg->info.name, meta_id);
	*meta = m;
	if (m->thin.pool_id) { /* a family */
		*pool = dlvm_lv_find_id(vg, m->thin.pool_id);
		*data = dlvm_thin_family_data(vg, meta_id);
	} else {
		*pool = NULL;
		for (size_t i = 0; i < vg->nlv && !*pool; i++)
			if ((vg->lvs[i]->flags & DLVM_LV_THIN_POOL) &&
			    vg->lvs[i]->thin.meta_id == meta_id)
				*pool = vg->lvs[i];
		*data = *pool;
	}
	if (!*pool || !*data)
		return dlvm_err_set(err, -EBADMSG, "%s/%s: the %s of this thin store is missing",
				    vg->info.name, m->name, *pool ? "data LV" : "pool");
	return 0;
}

int dlvm_thin_store_get(struct dlvm_vg *vg, uint64_t meta_id, bool write,
			struct dlvm_thin_pool **out, struct dlvm_err *err)
{
	const struct dlvm_lv *pool = NULL, *m = NULL, *data = NULL;
	struct dlvm_thin_pool *p;
	int r;

	if ((r = store_lvs(vg, meta_id, &pool, &m, &data, err)))
		return r;
	bool family = m->thin.pool_id != 0;
	if (!family)
		write = true;
	if ((p = dlvm_thin_store_find(vg, meta_id, true)) ||
	    (!write && (p = dlvm_thin_store_find(vg, meta_id, false)))) {
		/* a reader follows the family's data LV as it grows elsewhere:
		 * newer snapshots use newer slabs */
		if (p->reader && data->le_count * vg->info.extent_size > p->data->size) {
			struct dlvm_lv_map *nm;
			if ((r = dlvm_lv_map_build(vg, data, &nm, err)))
				return r;
			pthread_mutex_lock(&p->mu);
			struct dlvm_lv_map *old = p->data;
			p->data = nm;
			pthread_mutex_unlock(&p->mu);
			dlvm_lv_map_put(old);
		}
		*out = p;
		return 0;
	}
	if (!(p = calloc(1, sizeof(*p))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	atomic_init(&p->refs, 1);
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->drained, &ca);
	pthread_cond_init(&p->grown, &ca);
	pthread_cond_init(&p->prepared, &ca);
	pthread_cond_init(&p->committed, &ca);
	pthread_condattr_destroy(&ca);
	p->lv_id = pool->id;
	p->meta_id = meta_id;
	p->family = family;
	p->reader = !write;
	p->chunk_size = pool->thin.chunk_size;
	p->nsub = dlvm_thin_subblocks(p->chunk_size);
	p->sub_size = p->chunk_size / p->nsub;
	p->sub_all = (uint16_t)((1u << p->nsub) - 1);
	p->fence = vg->fence ? dlvm_fence_get(vg->fence) : NULL;
	snprintf(p->name, sizeof(p->name), "%s/%s", vg->info.name, pool->name);
	p->zero = dlvm_io_alloc(p->chunk_size);
	p->copy = dlvm_io_alloc(p->chunk_size);
	if (!p->zero || !p->copy) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((r = dlvm_lvdev_open(vg, m, &p->meta, err)) ||
	    (r = dlvm_lv_map_build(vg, data, &p->data, err)))
		goto fail;
	if (family && m->thin.origin_id) {
		/* a clone's family reads through to the snapshot it was made of */
		const struct dlvm_lv *o = dlvm_lv_find_id(vg, m->thin.origin_id);
		struct dlvm_thin_pool *e;
		if (!o || !(o->flags & DLVM_LV_THIN) || !o->thin.meta_id) {
			r = dlvm_err_set(err, -EBADMSG, "%s/%s: the clone's origin (LV id %" PRIu64
					 ") is missing", vg->info.name, m->name, m->thin.origin_id);
			goto fail;
		}
		if ((r = dlvm_thin_store_get(vg, o->thin.meta_id, false, &e, err)))
			goto fail;
		p->ext = dlvm_thin_pool_ref(e);
		p->ext_dev = o->id;
	}
	if (p->reader)
		goto done;
	if ((r = dlvm_thin_store_open(p->meta, NULL, &p->store, err))) {
		dlvm_err_prefix(err, r, "%s: ", p->name);
		goto fail;
	}
	/* the data area may have grown while the store did not hear of it (an
	 * extend interrupted between its two steps) */
	struct dlvm_thin_usage u;
	dlvm_thin_usage(p->store, &u);
	uint64_t chunks = p->data->size / p->chunk_size;
	if (chunks > u.data_chunks && !u.readonly &&
	    (r = dlvm_thin_grow_data(p->store, chunks, err)))
		goto fail;
	dlvm_thin_set_freed_hook(p->store, chunks_freed, p);
	/* a freed chunk goes to no device while a read or write may still use it
	 * (io_end, commit_locked, dlvm_thin_pool_cool) */
	dlvm_thin_set_cooling(p->store, true);
	p->track = dlvm_thin_tracks_unwritten(p->store);
	if (p->track && !(p->fills = dlvm_thin_fills_new())) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
done:
	p->next = vg->thin_pools;
	vg->thin_pools = p;
	*out = p;
	return 0;
fail:
	pool_free(p);
	return r;
}

int dlvm_thin_pool_get(struct dlvm_vg *vg, const struct dlvm_lv *pool,
		       struct dlvm_thin_pool **out, struct dlvm_err *err)
{
	if (!(pool->flags & DLVM_LV_THIN_POOL))
		return dlvm_err_set(err, -ENOENT, "%s/%s is not a thin pool", vg->info.name,
				    pool->name);
	if (!pool->thin.meta_id)
		return dlvm_err_set(err, -ENOTSUP, "%s/%s: a pool of a shared VG has a store per "
				    "family", vg->info.name, pool->name);
	return dlvm_thin_store_get(vg, pool->thin.meta_id, true, out, err);
}

int dlvm_thin_lv_store(struct dlvm_vg *vg, const struct dlvm_lv *lv, bool write,
		       struct dlvm_thin_pool **out, struct dlvm_err *err)
{
	if (lv->thin.meta_id)
		return dlvm_thin_store_get(vg, lv->thin.meta_id, write, out, err);
	const struct dlvm_lv *pool = dlvm_lv_find_id(vg, lv->thin.pool_id);
	if (!pool)
		return dlvm_err_set(err, -EBADMSG, "%s/%s: its pool (LV id %" PRIu64 ") is missing",
				    vg->info.name, lv->name, lv->thin.pool_id);
	return dlvm_thin_pool_get(vg, pool, out, err);
}

int dlvm_thin_store_drop(struct dlvm_vg *vg, struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	int r = 0;

	pthread_mutex_lock(&p->mu);
	if (p->store && !p->broken)
		r = commit_locked(p, err);
	pthread_mutex_unlock(&p->mu);
	for (struct dlvm_thin_pool **pp = &vg->thin_pools; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			dlvm_thin_pool_unref(p);
			break;
		}
	return r;
}

int dlvm_thin_family_format(const struct dlvm_vg *vg, const struct dlvm_lv *meta,
			    uint32_t chunk_size, uint64_t data_chunks, uint64_t dev_id,
			    struct dlvm_err *err)
{
	struct dlvm_thin_store *st = NULL;
	struct dlvm_dev *dev;
	int r;

	if ((r = dlvm_lvdev_open(vg, meta, &dev, err)))
		return r;
	struct dlvm_thin_format_opts o = { .chunk_size = chunk_size, .data_chunks = data_chunks };
	memcpy(o.uuid, meta->uuid, 16);
	if (!(r = dlvm_thin_store_format(dev, &o, err)) &&
	    !(r = dlvm_thin_store_open(dev, NULL, &st, err)) &&
	    !(r = dlvm_thin_create(st, dev_id, 0, err)))
		r = dlvm_thin_commit(st, err);
	dlvm_thin_store_close(st);
	dlvm_dev_close(dev);
	if (r)
		dlvm_err_prefix(err, r, "%s/%s: ", vg->info.name, meta->name);
	return r;
}

/* Point store p at its data LV's current extents and let it use the new
 * chunks. */
static int data_grown(struct dlvm_vg *vg, struct dlvm_thin_pool *p, const struct dlvm_lv *data,
		      struct dlvm_err *err)
{
	struct dlvm_lv_map *m;
	int r;

	if ((r = dlvm_lv_map_build(vg, data, &m, err)))
		return r;
	pthread_mutex_lock(&p->mu);
	/* maps already handed out keep the old data map: it covers every
	 * chunk they could have been given */
	struct dlvm_lv_map *old = p->data;
	p->data = m;
	r = p->store ? dlvm_thin_grow_data(p->store, m->size / p->chunk_size, err) : 0;
	if (!r && p->store)
		r = commit_locked(p, err);
	if (!r) {
		p->want_slab = false;
		p->slab_fails = 0;
		p->autoextend_failed = false;
		pthread_cond_broadcast(&p->grown);
	}
	pthread_mutex_unlock(&p->mu);
	dlvm_lv_map_put(old);
	return r;
}

int dlvm_thin_pool_resized(struct dlvm_vg *vg, const struct dlvm_lv *pool, struct dlvm_err *err)
{
	struct dlvm_thin_pool *p = pool->thin.meta_id ? dlvm_thin_store_find(vg, pool->thin.meta_id,
									   true) : NULL;
	if (!pool->thin.meta_id) {
		/* a shared VG's pool: its families may try for slabs again */
		for (p = vg->thin_pools; p; p = p->next)
			if (p->lv_id == pool->id) {
				pthread_mutex_lock(&p->mu);
				p->slab_fails = 0;
				pthread_mutex_unlock(&p->mu);
			}
		return 0;
	}
	if (!p)
		return 0; /* not open: the next open grows the store */
	return data_grown(vg, p, pool, err);
}

int dlvm_thin_family_grown(struct dlvm_vg *vg, uint64_t meta_id, struct dlvm_err *err)
{
	const struct dlvm_lv *data = dlvm_thin_family_data(vg, meta_id);
	int r = 0;

	if (!data)
		return dlvm_err_set(err, -EBADMSG, "%s: thin family %" PRIu64 " has no data LV",
				    vg->info.name, meta_id);
	for (int w = 0; w < 2 && !r; w++) {
		struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, w);
		if (p)
			r = data_grown(vg, p, data, err);
	}
	return r;
}

int dlvm_thin_family_meta_grown(struct dlvm_vg *vg, uint64_t meta_id, struct dlvm_err *err)
{
	const struct dlvm_lv *m = dlvm_lv_find_id(vg, meta_id);
	int r = 0;

	if (!m)
		return dlvm_err_set(err, -EBADMSG, "%s: thin family %" PRIu64 " has no metadata LV",
				    vg->info.name, meta_id);
	for (int w = 0; w < 2 && !r; w++) {
		struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, w);
		if (!p)
			continue;
		pthread_mutex_lock(&p->mu);
		commit_idle(p);
		if (p->meta->size != m->le_count * vg->info.extent_size)
			r = dlvm_lvdev_remap(p->meta, vg, m, err);
		if (!r && p->store)
			r = dlvm_thin_grow_meta(p->store, p->meta->size / DLVM_THIN_BLOCK, err);
		if (!r && p->store) {
			p->dirty = true;
			r = commit_locked(p, err);
		}
		if (!r) {
			p->meta_grow_failed = false;
			pthread_cond_broadcast(&p->grown);
		}
		pthread_mutex_unlock(&p->mu);
	}
	return r;
}

void dlvm_thin_families_follow(struct dlvm_vg *vg)
{
	for (struct dlvm_thin_pool *p = vg->thin_pools; p; p = p->next) {
		const struct dlvm_lv *m = p->family ? dlvm_lv_find_id(vg, p->meta_id) : NULL;
		const struct dlvm_lv *d = p->family ? dlvm_thin_family_data(vg, p->meta_id) : NULL;
		struct dlvm_err e = { 0 };
		if (!m || !d)
			continue;
		pthread_mutex_lock(&p->mu);
		bool meta = p->meta->size != m->le_count * vg->info.extent_size;
		bool data = p->data->size != d->le_count * vg->info.extent_size;
		pthread_mutex_unlock(&p->mu);
		if ((meta && dlvm_thin_family_meta_grown(vg, p->meta_id, &e)) ||
		    (data && dlvm_thin_family_grown(vg, p->meta_id, &e)))
			log_error(DLVM_LOG_THIN, "%s: %s", p->name, e.msg);
	}
}

void dlvm_thin_family_no_slab(struct dlvm_thin_pool *p, uint64_t pool_free)
{
	pthread_mutex_lock(&p->mu);
	p->want_slab = false;
	p->slab_fails++;
	p->slab_fail_free = pool_free;
	pthread_cond_broadcast(&p->grown);
	pthread_mutex_unlock(&p->mu);
}

uint64_t dlvm_thin_pool_free_chunks(struct dlvm_thin_pool *p)
{
	struct dlvm_thin_usage u = { 0 };

	pthread_mutex_lock(&p->mu);
	if (p->store)
		dlvm_thin_usage(p->store, &u);
	pthread_mutex_unlock(&p->mu);
	return u.data_free;
}

int dlvm_thin_pool_meta_resized(struct dlvm_vg *vg, const struct dlvm_lv *pool,
				struct dlvm_err *err)
{
	struct dlvm_thin_pool *p;
	const struct dlvm_lv *m;
	int r;

	if ((r = dlvm_thin_pool_get(vg, pool, &p, err)))
		return r;
	if (!(m = meta_lv(vg, pool, err)))
		return -EBADMSG;
	pthread_mutex_lock(&p->mu);
	commit_idle(p);
	r = dlvm_lvdev_remap(p->meta, vg, m, err);
	if (!r)
		r = dlvm_thin_grow_meta(p->store, p->meta->size / DLVM_THIN_BLOCK, err);
	if (!r) {
		p->dirty = true;
		r = commit_locked(p, err);
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

/* ---- commands ---- */

int dlvm_thin_pool_create_dev(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = p->broken ? pool_stopped(p, err) : dlvm_thin_create(p->store, id, 0, err);
	if (!r)
		r = commit_locked(p, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_delete_dev(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = p->broken ? pool_stopped(p, err) : dlvm_thin_delete(p->store, id, err);
	if (!r)
		r = commit_locked(p, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_io_begin(struct dlvm_thin_pool *p, uint64_t id, bool write, unsigned *token)
{
	pthread_mutex_lock(&p->mu);
	if (write && p->snapping && (id == p->snap_origin || p->snap_origin == DLVM_THIN_NONE)) {
		pthread_mutex_unlock(&p->mu);
		return -EAGAIN;
	}
	*token = p->epoch;
	p->inflight[*token]++;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* No read or write is in flight: what cools may go (mu held). */
static void cool_release_idle(struct dlvm_thin_pool *p)
{
	if (p->store && !p->inflight[0] && !p->inflight[1] && dlvm_thin_cooling(p->store)) {
		dlvm_thin_cool_seal(p->store);
		dlvm_thin_cool_release(p->store);
	}
}

void dlvm_thin_pool_io_end(struct dlvm_thin_pool *p, unsigned token)
{
	pthread_mutex_lock(&p->mu);
	if (--p->inflight[token] == 0) {
		pthread_cond_broadcast(&p->drained);
		cool_release_idle(p);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Start a new epoch and wait for the writes of the old one (mu held), after
 * those of an earlier epoch still draining. */
static int quiesce(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	unsigned old = p->epoch;
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += 30;
	/* an earlier wait that ran out (the agent's, before a punch, or a
	 * quiesce's) left the other epoch draining: it must end first */
	while (p->inflight[old ^ 1])
		if (pthread_cond_timedwait(&p->drained, &p->mu, &until) == ETIMEDOUT)
			return dlvm_err_set(err, -ETIMEDOUT, "%s: %u earlier writes did not complete "
					    "in 30 s", p->name, p->inflight[old ^ 1]);
	p->epoch = old ^ 1;
	while (p->inflight[old])
		if (pthread_cond_timedwait(&p->drained, &p->mu, &until) == ETIMEDOUT)
			return dlvm_err_set(err, -ETIMEDOUT, "%s: %u writes did not complete in 30 s",
					    p->name, p->inflight[old]);
	return 0;
}

int dlvm_thin_pool_snapshot(struct dlvm_thin_pool *p, uint64_t origin, uint64_t id, uint32_t flags,
			    struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	/* writes to the origin begun from now on wait (io_begin; should two
	 * snapshots overlap, which commands do not, all writes): those begun
	 * before end first, and no write lands in a chunk the snapshot shares
	 * once it exists */
	p->snap_origin = p->snapping++ ? DLVM_THIN_NONE : origin;
	int r = p->broken ? pool_stopped(p, err) : quiesce(p, err);
	preps_close(p);
	if (!r)
		r = dlvm_thin_snapshot(p->store, origin, id, flags, err);
	if (!r)
		r = commit_locked(p, err);
	preps_open(p);
	p->snapping--;
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_revert(struct dlvm_thin_pool *p, uint64_t origin, uint64_t snap,
			  struct dlvm_err *err)
{
	struct dlvm_thin_dev_info info;

	pthread_mutex_lock(&p->mu);
	int r = p->broken ? pool_stopped(p, err) : dlvm_thin_info(p->store, origin, &info, err);
	/* the origin's device is replaced by a snapshot of snap under the same
	 * id; both steps land in one commit */
	bool changed = false;
	if (!r && !(r = dlvm_thin_delete(p->store, origin, err))) {
		changed = true;
		r = dlvm_thin_snapshot(p->store, snap, origin, 0, err);
	}
	if (!r)
		r = commit_locked(p, err);
	if (r && changed && !p->broken) {
		/* an uncommitted half must not be committed later */
		p->broken = true;
		snprintf(p->broken_msg, sizeof(p->broken_msg), "revert failed: %s", err ? err->msg : "");
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_usage(struct dlvm_thin_pool *p, struct dlvm_thin_usage *u)
{
	pthread_mutex_lock(&p->mu);
	if (p->store) {
		dlvm_thin_usage(p->store, u);
	} else {
		memset(u, 0, sizeof(*u));
		u->chunk_size = p->chunk_size;
		u->data_chunks = p->data->size / p->chunk_size;
		u->readonly = true;
	}
	pthread_mutex_unlock(&p->mu);
	return 0;
}

uint64_t dlvm_thin_pool_dev_mapped(struct dlvm_thin_pool *p, uint64_t id)
{
	struct dlvm_thin_dev_info info;

	struct dlvm_thin_view *v;
	int r;

	pthread_mutex_lock(&p->mu);
	if (p->store) {
		r = dlvm_thin_info(p->store, id, &info, NULL);
	} else if (!(r = view_of(p, id, &v, NULL))) {
		struct dlvm_thin_view_info vi;
		dlvm_thin_view_info(v, &vi);
		info.mapped = vi.mapped;
	}
	pthread_mutex_unlock(&p->mu);
	return r ? 0 : info.mapped;
}

/* Flush the devices of data map m; with meta_follows, not those that the
 * store's commit flushes anyway (the PVs of its metadata LV), before it
 * writes the superblock. */
static int flush_data(struct dlvm_thin_pool *p, const struct dlvm_lv_map *m, bool meta_follows,
		      struct dlvm_err *err)
{
	for (uint32_t i = 0; i < m->ndev; i++)
		if (!(meta_follows && dlvm_lvdev_flushes(p->meta, m->devs[i].fd)) &&
		    fdatasync(m->devs[i].fd) < 0)
			return dlvm_err_set(err, -errno, "%s: flush %s: %s", p->name,
					    m->devs[i].name, strerror(errno));
	return 0;
}

/* Let the copies made without mu end, and start no more of them until
 * preps_open (mu held): a commit must not make durable, and a snapshot must
 * not share, a chunk that is mapped but not yet copied. */
static void preps_close(struct dlvm_thin_pool *p)
{
	p->prep_closed++;
	while (p->nprep)
		pthread_cond_wait(&p->prepared, &p->mu);
}

static void preps_open(struct dlvm_thin_pool *p)
{
	p->prep_closed--;
}

/* Wait (mu held) until no commit is being written without mu: the store
 * takes one at a time, and the metadata LV's view must not change under
 * it. */
static void commit_idle(struct dlvm_thin_pool *p)
{
	while (p->committing)
		pthread_cond_wait(&p->committed, &p->mu);
}

/* Another host may own the family by now: never write its store. */
static void fence_check(struct dlvm_thin_pool *p)
{
	if (!dlvm_fence_ok(p->fence) && !p->broken) {
		p->broken = true;
		snprintf(p->broken_msg, sizeof(p->broken_msg), "this host lost its lease on the VG");
	}
}

/* Wait (mu held) until no commit is being written and no copy is under
 * way, and start no copy until preps_open. Both waits let mu go, so
 * another commit may have begun during the second. */
static void commit_close(struct dlvm_thin_pool *p)
{
	for (;;) {
		commit_idle(p);
		preps_close(p);
		if (!p->committing)
			return;
		preps_open(p);
	}
}

/* A commit with mu held throughout: for changes that nothing may see
 * before they are durable. */
static int commit_locked(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	if (!p->store || p->meta->readonly) /* a read-only VG's store never changes */
		return 0;
	commit_close(p);
	int r = commit_closed(p, err);
	preps_open(p);
	return r;
}

static int commit_closed(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	fence_check(p);
	int r = p->broken ? pool_stopped(p, err)
			  : flush_data(p, p->data, dlvm_thin_changed(p->store), err);
	if (!r && !(r = dlvm_thin_commit(p->store, err)))
		p->dirty = false;
	cool_release_idle(p);
	return r;
}

/*
 * A commit whose I/O runs without mu (mu held on entry and on return): the
 * transaction is sealed under mu, then the data area is flushed and the
 * sealed store written while the pool's requests go on; what they change
 * meanwhile is the next commit's. A flush of the data area that fails with
 * a sealed transaction out fails the store too: the commit cannot be
 * taken back.
 */
static int commit_unlocked(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	struct dlvm_thin_job *job = NULL;

	if (!p->store || p->meta->readonly)
		return 0;
	commit_close(p);
	fence_check(p);
	bool changed = dlvm_thin_changed(p->store);
	int r = p->broken ? pool_stopped(p, err) : dlvm_thin_commit_start(p->store, &job, err);
	preps_open(p);
	if (r)
		return r;
	p->dirty = false;
	p->committing = true;
	struct dlvm_lv_map *data = dlvm_lv_map_get(p->data);
	pthread_mutex_unlock(&p->mu);
	r = flush_data(p, data, changed, err);
	if (job && !r)
		r = dlvm_thin_commit_write(job, err);
	dlvm_lv_map_put(data);
	pthread_mutex_lock(&p->mu);
	r = dlvm_thin_commit_end(p->store, job, r, err);
	if (r)
		p->dirty = true;
	p->committing = false;
	pthread_cond_broadcast(&p->committed);
	cool_release_idle(p);
	return r;
}

int dlvm_thin_pool_commit(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = commit_unlocked(p, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_commit_dirty(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = p->dirty && !p->broken ? commit_unlocked(p, err) : 0;
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_check(struct dlvm_thin_pool *p, struct dlvm_check_report *rep,
			 struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = !p->store ? dlvm_err_set(err, -EINVAL, "%s: a reader cannot be checked", p->name)
			  : dlvm_thin_check(p->store, rep, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

/* ---- giving freed chunks back to the PV files ---- */

/*
 * Two bitmaps of data chunks, freed_cap chunks each: `freed` holds what
 * commits freed since the last pass, `aged` what a pass took over and may
 * punch once every write begun before it took them over has ended. Handing a
 * chunk out clears its bits (provision), so a chunk written since it was
 * taken over is never punched.
 */
static void bit_clear(struct dlvm_thin_pool *p, uint64_t *map, uint64_t *count, uint64_t c)
{
	if (c < p->freed_cap && map[c / 64] >> (c % 64) & 1) {
		map[c / 64] &= ~(1ull << (c % 64));
		(*count)--;
	}
}

/* The store's hook: a commit freed chunks [chunk, chunk + n) (mu held). A
 * bitmap that cannot grow loses the run: those chunks keep their data,
 * which costs space, not correctness. */
static void chunks_freed(void *arg, uint64_t chunk, uint64_t n)
{
	struct dlvm_thin_pool *p = arg;
	uint64_t need = chunk + n;

	if (p->punch_off)
		return;
	if (need > p->freed_cap) {
		uint64_t cap = DLVM_MAX(need, p->data->size / p->chunk_size);
		cap = DLVM_MAX(cap, 2 * p->freed_cap);
		cap = (cap + 63) / 64 * 64;
		uint64_t *f = realloc(p->freed, cap / 8);
		if (f)
			p->freed = f;
		uint64_t *a = f ? realloc(p->aged, cap / 8) : NULL;
		if (a)
			p->aged = a;
		if (!a)
			return;
		memset((uint8_t *)f + p->freed_cap / 8, 0, (cap - p->freed_cap) / 8);
		memset((uint8_t *)a + p->freed_cap / 8, 0, (cap - p->freed_cap) / 8);
		p->freed_cap = cap;
	}
	for (uint64_t c = chunk; c < need; c++)
		if (!(p->freed[c / 64] >> (c % 64) & 1)) {
			p->freed[c / 64] |= 1ull << (c % 64);
			p->nfreed++;
		}
}

/* A chunk is handed out: it is no longer one to punch (mu held). */
static void chunk_taken(struct dlvm_thin_pool *p, uint64_t c)
{
	bit_clear(p, p->freed, &p->nfreed, c);
	bit_clear(p, p->aged, &p->naged, c);
}

/* The first bit of map at or after from that is `set`; cap if none. */
static uint64_t next_bit(const uint64_t *map, uint64_t cap, uint64_t from, bool set)
{
	uint64_t c = from;

	while (c < cap) {
		uint64_t w = set ? map[c / 64] : ~map[c / 64];
		w &= ~0ull << (c % 64);
		if (w)
			return DLVM_MIN(cap, c / 64 * 64 + (uint64_t)__builtin_ctzll(w));
		c = (c / 64 + 1) * 64;
	}
	return cap;
}

/*
 * Every write begun before now has ended (mu held). With writes in flight,
 * a new epoch starts and the old one is waited for, until until_ns at the
 * latest; a wait that ran out leaves that epoch draining, as a snapshot's
 * quiesce would.
 */
static bool writes_drained(struct dlvm_thin_pool *p, uint64_t until_ns)
{
	unsigned old = p->epoch;
	struct timespec until = { .tv_sec = (time_t)(until_ns / 1000000000ull),
				  .tv_nsec = (long)(until_ns % 1000000000ull) };

	if (!p->inflight[0] && !p->inflight[1])
		return true;
	if (p->inflight[old ^ 1])
		return false;
	p->epoch = old ^ 1;
	while (p->inflight[old])
		if (pthread_cond_timedwait(&p->drained, &p->mu, &until) == ETIMEDOUT)
			return !p->inflight[old];
	return true;
}

void dlvm_thin_pool_cool(struct dlvm_thin_pool *p, uint64_t until_ns)
{
	pthread_mutex_lock(&p->mu);
	if (p->store && dlvm_thin_cooling(p->store)) {
		/* sealed before the drain starts: every write that may hold one
		 * of these chunks began before it */
		dlvm_thin_cool_seal(p->store);
		if (writes_drained(p, until_ns))
			dlvm_thin_cool_release(p->store);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Punch data chunks [first, first + n) out of the PV files they lie on
 * (mu held). */
static int punch_chunks(struct dlvm_thin_pool *p, uint64_t first, uint64_t n,
			struct dlvm_err *err)
{
	uint64_t len = n * p->chunk_size, done = 0;

	while (done < len) {
		struct dlvm_map_piece pc;
		chunk_piece(p, first, done, len - done, &pc);
		const struct dlvm_map_dev *d = &p->data->devs[pc.dev];
		if (!d->blockdev && fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					      (off_t)pc.dev_off, (off_t)pc.len) < 0)
			return dlvm_err_set(err, -errno, "%s: punch chunks %" PRIu64 "-%" PRIu64
					    " out of %s: %s; freed chunks keep their data from now on",
					    p->name, first, first + n - 1, d->name, strerror(errno));
		done += pc.len;
	}
	return 0;
}

/* Chunks punched per fallocate: each call holds the PV file's inode lock
 * (every direct I/O on the file waits), for up to about 100 µs per extent
 * it removes. */
#define PUNCH_PIECE 32

/* Punching may go on (mu held): the store is still this host's to change. */
static bool may_punch(struct dlvm_thin_pool *p)
{
	return p->store && !p->broken && !p->punch_off && dlvm_fence_ok(p->fence);
}

uint64_t dlvm_thin_pool_punch(struct dlvm_thin_pool *p, uint64_t until_ns, struct dlvm_err *err)
{
	uint64_t punched = 0;

	pthread_mutex_lock(&p->mu);
	if (!may_punch(p) || (!p->nfreed && !p->naged))
		goto out;
	if (p->nfreed) {
		/* take over what commits freed so far; the drain below covers
		 * every write that could still land on it */
		for (uint64_t w = 0; w < p->freed_cap / 64; w++) {
			p->aged[w] |= p->freed[w];
			p->freed[w] = 0;
		}
		p->naged = 0;
		for (uint64_t w = 0; w < p->freed_cap / 64; w++)
			p->naged += (uint64_t)__builtin_popcountll(p->aged[w]);
		p->nfreed = 0;
	}
	if (!writes_drained(p, until_ns))
		goto out;
	uint64_t cap = p->freed_cap, c = p->freed_cursor;
	while (p->naged && may_punch(p) && dlvm_now_ns() < until_ns) {
		if ((c = next_bit(p->aged, cap, c, true)) == cap &&
		    (c = next_bit(p->aged, cap, 0, true)) == cap)
			break;
		uint64_t end = DLVM_MIN(next_bit(p->aged, cap, c + 1, false), c + PUNCH_PIECE);
		for (uint64_t i = c; i < end; i++)
			bit_clear(p, p->aged, &p->naged, i);
		/* only what is still free (a chunk freed again since waits for
		 * its own commit) */
		while (c < end) {
			uint64_t f = dlvm_thin_free_run(p->store, c, end - c);
			if (f && punch_chunks(p, c, f, err)) {
				p->punch_off = true;
				p->nfreed = p->naged = 0;
				goto out;
			}
			punched += f;
			c += f ? f : 1;
		}
		p->freed_cursor = c;
		/* the data path may take the mutex between two pieces */
		pthread_mutex_unlock(&p->mu);
		pthread_mutex_lock(&p->mu);
	}
out:
	pthread_mutex_unlock(&p->mu);
	return punched;
}

/* ---- data path ---- */

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
	return dlvm_err_set(err, -EIO, "%s: the pool grew onto a PV this connection does not "
			    "know: reconnect", p->name);
}

/* The data area piece of chunk `chunk` at offset `in` for `len` bytes. */
static void chunk_piece(struct dlvm_thin_pool *p, uint64_t chunk, uint64_t in, uint64_t len,
			struct dlvm_map_piece *piece)
{
	dlvm_lv_map_resolve(p->data, chunk * p->chunk_size + in, len, piece);
}

/* Synchronous I/O of bytes [in, in + len) of a chunk through data map dm
 * (a chunk may cross a segment or stripe boundary); buf holds those bytes.
 * Needs no mutex when the caller holds a reference on dm. */
static int chunk_range_io_on(struct dlvm_thin_pool *p, const struct dlvm_lv_map *dm,
			     uint64_t chunk, uint64_t in, uint64_t len, uint8_t *buf, bool write,
			     struct dlvm_err *err)
{
	uint64_t done = 0;

	while (done < len) {
		struct dlvm_map_piece pc;
		dlvm_lv_map_resolve(dm, chunk * p->chunk_size + in + done, len - done, &pc);
		const struct dlvm_map_dev *d = &dm->devs[pc.dev];
		uint64_t left = pc.len, pos = 0;
		while (left) {
			ssize_t n = write ? pwrite(d->fd, buf + done + pos, left, (off_t)(pc.dev_off + pos))
					  : pread(d->fd, buf + done + pos, left, (off_t)(pc.dev_off + pos));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return dlvm_err_set(err, n < 0 ? -errno : -EIO, "%s: chunk %" PRIu64
						    ": %s %s: %s", p->name, chunk,
						    write ? "write" : "read", d->name,
						    n < 0 ? strerror(errno) : "short");
			left -= (uint64_t)n;
			pos += (uint64_t)n;
		}
		done += pc.len;
	}
	return 0;
}

/* The same through the pool's current data map (mu held). */
static int chunk_range_io(struct dlvm_thin_pool *p, uint64_t chunk, uint64_t in, uint64_t len,
			  uint8_t *buf, bool write, struct dlvm_err *err)
{
	return chunk_range_io_on(p, p->data, chunk, in, len, buf, write, err);
}

static int chunk_io(struct dlvm_thin_pool *p, uint64_t chunk, uint8_t *buf, bool write,
		    struct dlvm_err *err)
{
	return chunk_range_io(p, chunk, 0, p->chunk_size, buf, write, err);
}

/* ---- unwritten sub-blocks ---- */

/* The sub-blocks that bytes [in, in + n) of a chunk touch, and those of
 * them it covers whole. */
static void sub_span(const struct dlvm_thin_pool *p, uint64_t in, uint64_t n, uint16_t *touched,
		     uint16_t *whole)
{
	uint64_t first = in / p->sub_size, last = (in + n - 1) / p->sub_size;
	uint16_t t = (uint16_t)(((2u << last) - 1) & ~((1u << first) - 1));

	*touched = *whole = t;
	if (in % p->sub_size)
		*whole &= (uint16_t)~(1u << first);
	if ((in + n) % p->sub_size)
		*whole &= (uint16_t)~(1u << last);
}

/* From byte in of a chunk with unwritten mask unw: how many of the next n
 * bytes are all unwritten (*zero) or all written. */
static uint64_t sub_run(const struct dlvm_thin_pool *p, uint16_t unw, uint64_t in, uint64_t n,
			bool *zero)
{
	unsigned i = (unsigned)(in / p->sub_size), j = i + 1;

	*zero = (unw >> i) & 1;
	while (j < p->nsub && ((unw >> j) & 1) == *zero)
		j++;
	return DLVM_MIN(n, j * p->sub_size - in);
}

/* Write zeros over the sub-blocks of mask in chunk `chunk`. */
static int subs_zero(struct dlvm_thin_pool *p, uint64_t chunk, uint16_t mask,
		     struct dlvm_err *err)
{
	for (unsigned i = 0; i < p->nsub; i++) {
		if (!((mask >> i) & 1))
			continue;
		unsigned j = i;
		while (j + 1 < p->nsub && ((mask >> (j + 1)) & 1))
			j++;
		int r = chunk_range_io(p, chunk, i * p->sub_size, (j - i + 1) * p->sub_size, p->zero,
				       true, err);
		if (r)
			return r;
		i = j;
	}
	return 0;
}

/* Zero the sub-blocks of mask in a chunk's contents in buf. */
static void subs_blank(const struct dlvm_thin_pool *p, uint8_t *buf, uint16_t mask)
{
	for (unsigned i = 0; i < p->nsub; i++)
		if ((mask >> i) & 1)
			memset(buf + i * p->sub_size, 0, p->sub_size);
}

/* Bytes from off on that read as zeros from a hole of a PV file: up to the
 * next data (UINT64_MAX: no data after off). 0 when off holds data or the
 * file cannot tell. */
static uint64_t file_hole_len(int fd, uint64_t off)
{
	off_t data = lseek(fd, (off_t)off, SEEK_DATA);

	if (data < 0)
		return errno == ENXIO ? UINT64_MAX : 0;
	return (uint64_t)data - off;
}

#define HOLE_RUN_MAX 65536 /* chunks taken into the known-hole run at once */

/*
 * Chunk `chunk` lies in a hole of its PV file that goes on for hole_bytes:
 * the free chunks after it that the same hole covers, on the same device
 * and in one stretch of the data map, need no zeroing and no look at the
 * file when they are handed out (mu held). Chunks are handed out in
 * increasing order, so the run is used up from below; one look at the file
 * serves up to HOLE_RUN_MAX new chunks.
 */
static void note_hole_run(struct dlvm_thin_pool *p, uint64_t chunk, uint64_t hole_bytes)
{
	uint64_t cs = p->chunk_size, start = chunk * cs;
	struct dlvm_map_piece run;

	if (start >= p->data->size)
		return;
	chunk_piece(p, chunk, 0, p->data->size - start, &run);
	uint64_t n = DLVM_MIN(run.len, hole_bytes) / cs; /* chunk itself included */
	if (n < 2)
		return;
	n = dlvm_thin_free_run(p->store, chunk + 1, DLVM_MIN(n - 1, HOLE_RUN_MAX));
	p->hole_lo = chunk + 1;
	p->hole_hi = chunk + 1 + n;
}

/*
 * Zero a chunk about to be handed out (or, for a clone, one that must read
 * as zeros). Where it lies in a hole of a PV file (never written since the
 * file was made, or punched) it reads as zeros already: nothing is done,
 * which also spares a fallocate that would wait for every direct I/O in
 * flight on the file. Otherwise fallocate ZERO_RANGE on files, zeros
 * written on block devices. in_hole: the chunk came from the known-hole
 * run (provision), so not even the file needs a look.
 */
static int chunk_zero(struct dlvm_thin_pool *p, uint64_t chunk, bool in_hole, struct dlvm_err *err)
{
	uint64_t done = 0;

	if (in_hole)
		return 0;
	while (done < p->chunk_size) {
		struct dlvm_map_piece pc;
		chunk_piece(p, chunk, done, p->chunk_size - done, &pc);
		const struct dlvm_map_dev *d = &p->data->devs[pc.dev];
		uint64_t hole = d->blockdev ? 0 : file_hole_len(d->fd, pc.dev_off);
		if (hole >= pc.len) {
			if (done == 0 && pc.len == p->chunk_size)
				note_hole_run(p, chunk, hole);
			done += pc.len;
			continue;
		}
		if (d->blockdev || fallocate(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					     (off_t)pc.dev_off, (off_t)pc.len) < 0)
			return chunk_io(p, chunk, p->zero, true, err);
		done += pc.len;
	}
	return 0;
}

/* ---- copies made without the mutex ---- */

static int prep_find(const struct dlvm_thin_pool *p, uint64_t id, uint64_t first, uint64_t end)
{
	for (unsigned i = 0; p->nprep && i < DLVM_THIN_PREP_MAX; i++)
		if (p->prep[i].busy && p->prep[i].id == id && p->prep[i].vchunk >= first &&
		    p->prep[i].vchunk < end)
			return (int)i;
	return -1;
}

/* Wait until no virtual chunk in [first, end) of device id is being
 * prepared (mu held, let go while waiting). */
static void prep_wait(struct dlvm_thin_pool *p, uint64_t id, uint64_t first, uint64_t end)
{
	while (prep_find(p, id, first, end) >= 0)
		pthread_cond_wait(&p->prepared, &p->mu);
}

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
		*e = (struct dlvm_thin_prep){ .id = id, .vchunk = vchunk, .busy = true,
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

/*
 * dlvm_thin_provision_mapping, and the known-hole run kept true: a chunk
 * handed out leaves it, with every chunk below it (mu held). A new chunk
 * has all its sub-blocks unwritten where the store keeps them. *in_hole:
 * the new chunk came from the run.
 */
static int provision(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
		     struct dlvm_thin_mapping *m, bool *in_hole, struct dlvm_err *err)
{
	prep_wait(p, id, vchunk, vchunk + 1);
	int r = dlvm_thin_provision_mapping(p->store, id, vchunk, p->track ? p->sub_all : 0, m,
					    err);

	*in_hole = false;
	if (!r && m->is_new)
		chunk_taken(p, m->chunk);
	if (!r && m->is_new && m->chunk >= p->hole_lo && m->chunk < p->hole_hi) {
		*in_hole = true;
		p->hole_lo = m->chunk + 1;
	}
	return r;
}

/* A reader's view of device id, opened on first use. */
static int view_of(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_thin_view **out,
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
static int lookup_map(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
		      struct dlvm_thin_mapping *m, struct dlvm_err *err)
{
	struct dlvm_thin_view *v;
	int r;

	prep_wait(p, id, vchunk, vchunk + 1);
	if (p->store)
		return dlvm_thin_lookup_mapping(p->store, id, vchunk, m, err);
	if ((r = view_of(p, id, &v, err))) {
		m->chunk = DLVM_THIN_NONE;
		return r;
	}
	return dlvm_thin_view_lookup_mapping(v, vchunk, m, err);
}

static int lookup(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk, uint64_t *chunk,
		  struct dlvm_err *err)
{
	struct dlvm_thin_mapping m;
	int r = lookup_map(p, id, vchunk, &m, err);

	*chunk = m.chunk;
	return r;
}

static int next_mapped(struct dlvm_thin_pool *p, uint64_t id, uint64_t from, uint64_t *vchunk,
		       struct dlvm_err *err)
{
	struct dlvm_thin_view *v;
	int r;

	if (p->store)
		return dlvm_thin_next_mapped(p->store, id, from, vchunk, NULL, err);
	if ((r = view_of(p, id, &v, err)))
		return r;
	return dlvm_thin_view_next_mapped(v, from, vchunk, NULL, err);
}

/* A chunk past the data map: a reader whose VG model is older than the
 * snapshot it reads (cannot happen: the model is reloaded first). */
static int chunk_known(struct dlvm_thin_pool *p, uint64_t chunk, struct dlvm_err *err)
{
	if ((chunk + 1) * p->chunk_size > p->data->size)
		return dlvm_err_set(err, -EIO, "%s: chunk %" PRIu64 " lies past the data area this "
				    "host knows", p->name, chunk);
	return 0;
}

/* Where an external origin maps vchunk: *owner is the store whose data
 * area holds *chunk, with unwritten sub-blocks *unw (may be NULL), or
 * *chunk is DLVM_THIN_NONE (a hole all the way down). Locks each origin's
 * store in turn (p's may be held: the order is always clone before
 * origin). */
static int ext_resolve(struct dlvm_thin_pool *p, uint64_t vchunk, struct dlvm_thin_pool **owner,
		       uint64_t *chunk, uint16_t *unw, struct dlvm_err *err)
{
	uint64_t dev = p->ext_dev;

	*chunk = DLVM_THIN_NONE;
	if (unw)
		*unw = 0;
	for (struct dlvm_thin_pool *e = p->ext; e; dev = e->ext_dev, e = e->ext) {
		struct dlvm_thin_mapping m;
		pthread_mutex_lock(&e->mu);
		int r = lookup_map(e, dev, vchunk, &m, err);
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
	int r = chunk_range_io_on(o, src, from, 0, o->chunk_size, buf, false, err);

	if (r)
		return r;
	subs_blank(p, buf, unw);
	return chunk_range_io_on(p, dst, to, 0, p->chunk_size, buf, true, err);
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

	if (from == DLVM_THIN_NONE && p->ext && (r = ext_resolve(p, vchunk, &o, &from, &unw, err)))
		return r;
	if (from == DLVM_THIN_NONE)
		return p->track ? 0 : chunk_zero(p, m->chunk, in_hole, err);
	if ((r = chunk_copy_from(p, o, from, unw, m->chunk, err)))
		return r;
	return chunk_copied(p, id, vchunk, m, err);
}

/*
 * chunk_prepare for a write, with the copy done without mu: other requests
 * of the pool go on meanwhile, and those for this virtual chunk wait for
 * it (prep_wait in every lookup). Falls back to chunk_prepare when there is
 * nothing to copy, no free entry, or a commit or snapshot waits (mu held;
 * let go and taken again around the copy).
 */
static int chunk_prepare_write(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunk,
			       struct dlvm_thin_mapping *m, bool in_hole, struct dlvm_err *err)
{
	struct dlvm_thin_pool *o = p;
	uint64_t from = m->copy_from, to = m->chunk;
	uint16_t unw = m->from_unwritten;
	int r, e;

	if (from == DLVM_THIN_NONE && p->ext && (r = ext_resolve(p, vchunk, &o, &from, &unw, err)))
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

/* The pool may not commit what it changed: a chunk it maps does not hold
 * what it must (mu held). */
static void pool_break(struct dlvm_thin_pool *p, const struct dlvm_err *err)
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
	int r = lookup_map(p, m->thin_id, vchunk, &mm, err);
	uint64_t chunk = mm.chunk;
	uint16_t unw = mm.unwritten;
	if (!r && chunk != DLVM_THIN_NONE)
		r = chunk_known(p, chunk, err);
	/* a clone: what it never wrote is its origin's */
	if (!r && chunk == DLVM_THIN_NONE && p->ext)
		r = ext_resolve(p, vchunk, &o, &chunk, &unw, err);
	*hole = chunk == DLVM_THIN_NONE;
	if (!r && !*hole && unw)
		n = sub_run(p, unw, in, n, hole);
	if (!r && !*hole) {
		if (o != p)
			pthread_mutex_lock(&o->mu);
		chunk_piece(o, chunk, in, n, piece);
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
	r = provision(p, id, vchunk, &mm, &in_hole, err);
	if (r == -ENOSPC && (p->family || p->can_grow)) {
		/* the host agent adds a slab from the pool, or extends a local
		 * pool (a VG transaction); wait for it a while. A family whose
		 * pool had no slab left waits for the agent's next look only:
		 * the pool may have grown since, here or on another host */
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 10;
		p->want_slab = true;
		while (p->want_slab &&
		       pthread_cond_timedwait(&p->grown, &p->mu, &until) != ETIMEDOUT)
			;
		dlvm_err_clear(err); /* the first ENOSPC's message is stale now */
		r = provision(p, id, vchunk, &mm, &in_hole, err);
	}
	if (!r && mm.is_new) {
		p->dirty = true;
		/* the store now maps a chunk whose contents are not what they
		 * must be, if this fails: never commit this transaction */
		if ((r = chunk_prepare_write(p, id, vchunk, &mm, in_hole, err)))
			pool_break(p, err);
	}
	/* the piece first: a chunk across a segment boundary comes in more
	 * than one, and each accounts for the sub-blocks of its own bytes
	 * (one that straddles the boundary is partial in both) */
	if (!r) {
		chunk_piece(p, mm.chunk, in, n, piece);
		r = piece_for(p, m, piece, err);
	}
	uint16_t touched = 0, whole = 0;
	if (!r)
		sub_span(p, in, piece->len, &touched, &whole);
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
		if (!(r = subs_zero(p, mm.chunk, part, err)))
			r = dlvm_thin_set_unwritten(p->store, id, vchunk, mm.chunk, 0, part, err);
		p->dirty = true;
	}
	if (!r) {
		if (relied)
			dlvm_thin_fill_rely(p->fills, mm.chunk, relied);
		*w = (struct dlvm_thin_written){ .vchunk = vchunk, .chunk = mm.chunk,
						 .mask = fill, .relied = relied };
	} else if (fill) {
		dlvm_thin_fill_drop(p->fills, mm.chunk, fill);
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

/* A write's whole fill of w ended, recorded (ok) or not (mu held). */
static void fill_end(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w, bool ok)
{
	if (p->fills && dlvm_thin_fill_drop(p->fills, w->chunk, w->mask) && !ok) {
		struct dlvm_err e = { 0 };
		dlvm_err_set(&e, -EIO, "a write that another one relied on failed at chunk %" PRIu64,
			     w->chunk);
		pool_break(p, &e);
	}
}

int dlvm_thin_pool_written(struct dlvm_thin_pool *p, uint64_t id,
			   const struct dlvm_thin_written *w, size_t n, struct dlvm_err *err)
{
	int r = 0;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < n; i++) {
		if (!w[i].mask)
			continue;
		if (!r) {
			prep_wait(p, id, w[i].vchunk, w[i].vchunk + 1);
			if (!p->store)
				r = dlvm_err_set(err, -EROFS, "%s: this host no longer writes the "
						 "family", p->name);
			else
				r = dlvm_thin_set_unwritten(p->store, id, w[i].vchunk, w[i].chunk, 0,
							    w[i].mask, err);
			p->dirty = true;
		}
		fill_end(p, &w[i], r == 0);
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

void dlvm_thin_pool_unfilled(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w,
			     size_t n)
{
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < n; i++)
		if (w[i].mask)
			fill_end(p, &w[i], false);
	pthread_mutex_unlock(&p->mu);
}

int dlvm_thin_pool_fills_ended(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w,
			       size_t n, struct dlvm_err *err)
{
	int r = 0;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < n && !r; i++)
		if (w[i].relied && (dlvm_thin_fill_pending(p->fills, w[i].chunk) & w[i].relied))
			r = -EAGAIN;
	if (!r && p->broken)
		r = pool_stopped(p, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

/*
 * The sub-blocks that [off, off + len), inside one chunk, covers whole read
 * as zeros from now on, if the chunk is mapped (mu held). Only the device's
 * own mapping changes: a snapshot sharing the chunk keeps its data, and a
 * later write here copies the chunk without those sub-blocks.
 */
static int unmap_subs(struct dlvm_thin_pool *p, uint64_t id, uint64_t off, uint64_t len,
		      struct dlvm_err *err)
{
	uint64_t v = off / p->chunk_size;
	struct dlvm_thin_mapping mm;
	uint16_t touched, whole;
	int r;

	sub_span(p, off % p->chunk_size, len, &touched, &whole);
	if (!whole || (r = lookup_map(p, id, v, &mm, err)) || mm.chunk == DLVM_THIN_NONE ||
	    (mm.unwritten & whole) == whole)
		return 0;
	p->dirty = true;
	return dlvm_thin_set_unwritten(p->store, id, v, mm.chunk, whole, 0, err);
}

int dlvm_thin_pool_unmap(struct dlvm_thin_pool *p, uint64_t id, uint64_t off, uint64_t len,
			 bool zero_subs, struct dlvm_err *err)
{
	uint64_t cs = p->chunk_size, first = (off + cs - 1) / cs, end = (off + len) / cs;

	if (!len)
		return 0;
	pthread_mutex_lock(&p->mu);
	prep_wait(p, id, off / cs, (off + len - 1) / cs + 1);
	uint64_t un = 0;
	int r = !p->store ? dlvm_err_set(err, -EROFS, "%s: this host reads the family only", p->name)
			  : 0;
	/* partial chunks: their whole sub-blocks, where the store keeps them */
	if (!r && zero_subs && p->track) {
		if (off / cs == (off + len - 1) / cs)
			r = len < cs ? unmap_subs(p, id, off, len, err) : 0;
		else if (off % cs)
			r = unmap_subs(p, id, off, first * cs - off, err);
		if (!r && off / cs != (off + len - 1) / cs && (off + len) % cs)
			r = unmap_subs(p, id, end * cs, off + len - end * cs, err);
	}
	if (end <= first) {
		pthread_mutex_unlock(&p->mu);
		return r;
	}
	if (!r && !p->ext)
		r = dlvm_thin_unmap(p->store, id, first, end - first, &un, err);
	/* a clone: a chunk its origin maps would show the origin's data again
	 * once unmapped, so it is zeroed instead */
	for (uint64_t v = first; !r && p->ext && v < end; v++) {
		struct dlvm_thin_pool *o;
		struct dlvm_thin_mapping mm;
		uint64_t ec, u = 0;
		bool in_hole;
		if ((r = ext_resolve(p, v, &o, &ec, NULL, err)))
			break;
		if (ec == DLVM_THIN_NONE) {
			r = dlvm_thin_unmap(p->store, id, v, 1, &u, err);
			un += u;
			continue;
		}
		if ((r = provision(p, id, v, &mm, &in_hole, err)))
			break;
		p->dirty = true;
		if (p->track)
			r = mm.is_new ? 0 /* all unwritten */
				      : dlvm_thin_set_unwritten(p->store, id, v, mm.chunk, p->sub_all, 0,
								err);
		else if ((r = chunk_zero(p, mm.chunk, in_hole, err)) && mm.is_new)
			pool_break(p, err);
	}
	if (un)
		p->dirty = true;
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
		if ((r = lookup_map(p, id, v, &mm, err)))
			break;
		uint16_t unw = mm.unwritten;
		if (mm.chunk == DLVM_THIN_NONE && p->ext &&
		    (r = ext_resolve(p, v, &o, &mm.chunk, &unw, err)))
			break;
		enum dlvm_thin_extent k = DLVM_THIN_EXT_HOLE;
		if (mm.chunk != DLVM_THIN_NONE) {
			bool zero = false;
			run = unw ? sub_run(p, unw, in, run, &zero) : run;
			k = zero ? DLVM_THIN_EXT_ZERO : DLVM_THIN_EXT_DATA;
		} else if (!p->ext) {
			/* up to the next mapped chunk, in one step */
			uint64_t next;
			if ((r = next_mapped(p, id, v, &next, err)))
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

int dlvm_thin_pool_flatten(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunks,
			   int (*add_slab)(void *arg, struct dlvm_err *err), void *arg,
			   int (*progress)(void *arg, uint64_t done, uint64_t copied,
					   struct dlvm_err *err),
			   struct dlvm_err *err)
{
	uint64_t copied = 0, v = 0;
	int r = 0;

	pthread_mutex_lock(&p->mu);
	if (!p->store || p->broken)
		r = dlvm_err_set(err, p->store ? -EIO : -EROFS, "%s: cannot flatten here: %s",
				 p->name, p->store ? p->broken_msg : "the family is read only");
	while (!r && p->ext && v < vchunks) {
		/* the next chunk any origin down the chain maps */
		uint64_t next = DLVM_THIN_NONE, dev = p->ext_dev;
		for (struct dlvm_thin_pool *e = p->ext; e && !r; dev = e->ext_dev, e = e->ext) {
			uint64_t n;
			pthread_mutex_lock(&e->mu);
			r = next_mapped(e, dev, v, &n, err);
			pthread_mutex_unlock(&e->mu);
			if (!r && n < next)
				next = n;
		}
		if (r || next == DLVM_THIN_NONE || next >= vchunks)
			break;
		v = next;
		uint64_t mine, ec;
		struct dlvm_thin_pool *o;
		struct dlvm_thin_mapping mm;
		bool in_hole;
		if ((r = lookup(p, id, v, &mine, err)) ||
		    (mine == DLVM_THIN_NONE && (r = ext_resolve(p, v, &o, &ec, NULL, err))))
			break;
		if (mine == DLVM_THIN_NONE && ec != DLVM_THIN_NONE) {
			r = provision(p, id, v, &mm, &in_hole, err);
			if (r == -ENOSPC && add_slab) {
				/* the family grows (dlvm_thin_family_grown takes mu);
				 * the store's ENOSPC is not the error any more: the
				 * one that counts is why no slab came, if none did */
				dlvm_err_clear(err);
				pthread_mutex_unlock(&p->mu);
				r = add_slab(arg, err);
				pthread_mutex_lock(&p->mu);
				if (!r)
					continue;
			}
			if (r)
				break;
			p->dirty = true;
			/* the origin's chunk, as a write to it would copy it, and
			 * like a write's without mu: the clone's requests go on */
			if ((r = chunk_prepare_write(p, id, v, &mm, in_hole, err))) {
				pool_break(p, err);
				break;
			}
			if (++copied % 4096 == 0 && (r = commit_locked(p, err)))
				break;
			if (progress) {
				pthread_mutex_unlock(&p->mu);
				r = progress(arg, v + 1, copied, err);
				pthread_mutex_lock(&p->mu);
				if (r)
					break;
			}
		}
		v++;
	}
	if (!r)
		r = commit_locked(p, err);
	if (!r) {
		/* from now on nothing reads through */
		dlvm_thin_pool_unref(p->ext);
		p->ext = NULL;
		p->ext_dev = 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (!r && progress)
		(void)progress(arg, vchunks, copied, err); /* done: nothing left to stop */
	return r;
}
