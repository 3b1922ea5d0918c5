/* SPDX-License-Identifier: MIT */
/* The registry of a VG's open thin stores: opening, finding, referencing
 * and dropping them, and writing new stores. */
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

const struct dlvm_lv *pool_meta_lv(const struct dlvm_vg *vg, const struct dlvm_lv *pool,
				   struct dlvm_err *err)
{
	const struct dlvm_lv *m = dlvm_lv_find_id(vg, pool->thin.meta_id);

	if (!m || !(m->flags & DLVM_LV_THIN_META))
		dlvm_err_set(err, -EBADMSG,
			     "%s/%s: the pool's metadata LV (id %" PRIu64 ") is "
			     "missing",
			     vg->info.name, pool->name, pool->thin.meta_id);
	return m;
}

int dlvm_thin_pool_format(const struct dlvm_vg *vg, const struct dlvm_lv *pool, bool zero_new,
			  struct dlvm_err *err)
{
	const struct dlvm_lv *m;
	struct dlvm_dev *dev;
	int r;

	if (!(m = pool_meta_lv(vg, pool, err)))
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
/* The error of a pool that stopped after an error (p->broken). */
int pool_stopped(const struct dlvm_thin_pool *p, struct dlvm_err *err)
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

struct dlvm_thin_pool *dlvm_thin_pool_next(const struct dlvm_vg *vg, const struct dlvm_thin_pool *p)
{
	return p ? p->next : pool_first(vg);
}

void dlvm_thin_pools_forget(struct dlvm_vg *vg, uint64_t lv_id)
{
	struct dlvm_thin_pool **pp = vg->runtime ? &vg->runtime->pools : NULL;

	while (pp && *pp) {
		struct dlvm_thin_pool *p = *pp;
		if (p->lv_id != lv_id) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		dlvm_thin_pool_unref(p);
	}
}

const char *dlvm_thin_pool_name(const struct dlvm_thin_pool *p)
{
	return p->name;
}

uint64_t dlvm_thin_pool_chunk_size(const struct dlvm_thin_pool *p)
{
	return p->chunk_size;
}

bool dlvm_thin_pool_is_family(const struct dlvm_thin_pool *p)
{
	return p->family;
}

bool dlvm_thin_pool_is_reader(const struct dlvm_thin_pool *p)
{
	return p->reader;
}

uint64_t dlvm_thin_pool_lv_id(const struct dlvm_thin_pool *p)
{
	return p->lv_id;
}

uint64_t dlvm_thin_pool_meta_id(const struct dlvm_thin_pool *p)
{
	return p->meta_id;
}

bool dlvm_thin_pool_in_use(const struct dlvm_thin_pool *p)
{
	return atomic_load(&p->refs) > 1;
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
	for (struct dlvm_thin_pool *p = pool_first(vg); p; p = p->next)
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
			if ((r = dlvm_vg_map_lv(vg, data, &nm, err)))
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
	if (!vg->runtime)
		return dlvm_err_set(err, -EINVAL,
				    "%s: a thin store is opened only in a VG "
				    "with a runtime (dlvm/runtime.h)",
				    vg->info.name);
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
	p->fence = dlvm_vg_fence(vg) ? dlvm_fence_get(dlvm_vg_fence(vg)) : NULL;
	snprintf(p->name, sizeof(p->name), "%s/%s", vg->info.name, pool->name);
	p->zero = dlvm_io_alloc(p->chunk_size);
	p->copy = dlvm_io_alloc(p->chunk_size);
	if (!p->zero || !p->copy) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((r = dlvm_lvdev_open(vg, m, &p->meta, err)) ||
	    (r = dlvm_vg_map_lv(vg, data, &p->data, err)))
		goto fail;
	if (family && m->thin.origin_id) {
		/* a clone's family reads through to the snapshot it was made of */
		const struct dlvm_lv *o = dlvm_lv_find_id(vg, m->thin.origin_id);
		struct dlvm_thin_pool *e;
		if (!o || !(o->flags & DLVM_LV_THIN) || !o->thin.meta_id) {
			r = dlvm_err_set(err, -EBADMSG,
					 "%s/%s: the clone's origin (LV id %" PRIu64 ") is missing",
					 vg->info.name, m->name, m->thin.origin_id);
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
	dlvm_thin_set_freed_hook(p->store, pool_chunks_freed, p);
	/* a freed chunk goes to no device while a read or write may still use it
	 * (io_end, pool_commit_locked, dlvm_thin_pool_cool) */
	dlvm_thin_set_cooling(p->store, true);
	p->track = dlvm_thin_tracks_unwritten(p->store);
	if (p->track && !(p->fills = dlvm_thin_fills_new())) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
done:
	p->next = vg->runtime->pools;
	vg->runtime->pools = p;
	*out = p;
	return 0;
fail:
	pool_free(p);
	return r;
}

int dlvm_thin_pool_get(struct dlvm_vg *vg, const struct dlvm_lv *pool, struct dlvm_thin_pool **out,
		       struct dlvm_err *err)
{
	if (!(pool->flags & DLVM_LV_THIN_POOL))
		return dlvm_err_set(err, -ENOENT, "%s/%s is not a thin pool", vg->info.name,
				    pool->name);
	if (!pool->thin.meta_id)
		return dlvm_err_set(err, -ENOTSUP,
				    "%s/%s: a pool of a shared VG has a store per "
				    "family",
				    vg->info.name, pool->name);
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
		r = pool_commit_locked(p, err);
	pthread_mutex_unlock(&p->mu);
	for (struct dlvm_thin_pool **pp = vg->runtime ? &vg->runtime->pools : NULL; pp && *pp;
	     pp = &(*pp)->next)
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
