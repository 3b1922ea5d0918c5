/* SPDX-License-Identifier: MIT */
/* Pools and families that grow: more data chunks (an extended pool, a
 * family's new slab), more metadata blocks, and the writes that wait for
 * them. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

/* Point store p at its data LV's current extents and let it use the new
 * chunks. */
static int data_grown(struct dlvm_vg *vg, struct dlvm_thin_pool *p, const struct dlvm_lv *data,
		      struct dlvm_err *err)
{
	struct dlvm_lv_map *m;
	int r;

	if ((r = dlvm_vg_map_lv(vg, data, &m, err)))
		return r;
	pthread_mutex_lock(&p->mu);
	/* maps already handed out keep the old data map: it covers every
	 * chunk they could have been given */
	struct dlvm_lv_map *old = p->data;
	p->data = m;
	r = p->store ? dlvm_thin_grow_data(p->store, m->size / p->chunk_size, err) : 0;
	if (!r && p->store)
		r = pool_commit_locked(p, err);
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
									     true)
						      : NULL;
	if (!pool->thin.meta_id) {
		/* a shared VG's pool: its families may try for slabs again */
		for (p = pool_first(vg); p; p = p->next)
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
		pool_commit_idle(p);
		if (p->meta->size != m->le_count * vg->info.extent_size)
			r = dlvm_lvdev_remap(p->meta, vg, m, err);
		if (!r && p->store)
			r = dlvm_thin_grow_meta(p->store, p->meta->size / DLVM_THIN_BLOCK, err);
		if (!r && p->store) {
			p->dirty = true;
			r = pool_commit_locked(p, err);
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
	for (struct dlvm_thin_pool *p = pool_first(vg); p; p = p->next) {
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
	if (!(m = pool_meta_lv(vg, pool, err)))
		return -EBADMSG;
	pthread_mutex_lock(&p->mu);
	pool_commit_idle(p);
	r = dlvm_lvdev_remap(p->meta, vg, m, err);
	if (!r)
		r = dlvm_thin_grow_meta(p->store, p->meta->size / DLVM_THIN_BLOCK, err);
	if (!r) {
		p->dirty = true;
		r = pool_commit_locked(p, err);
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}
