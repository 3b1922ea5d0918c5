/* SPDX-License-Identifier: MIT */
/* What an open store wants of the host agent (slabs, metadata, autoextend),
 * and what came of the agent's attempts: the agent acts under the VG lease,
 * the store only says what it needs and remembers what failed. */
#include <stdio.h>

#include "pool_int.h"

void dlvm_thin_pool_wants(struct dlvm_thin_pool *p, const struct dlvm_thin_pool_facts *f,
			  struct dlvm_thin_pool_wants *w)
{
	struct dlvm_thin_usage u;

	*w = (struct dlvm_thin_pool_wants){ 0 };
	if (p->family) {
		uint64_t slab = f->pool_found ? f->slab_extents * f->extent_size / p->chunk_size
					      : 0;
		/* the pool grew since the last failure (here or on another
		 * host): try again */
		pthread_mutex_lock(&p->mu);
		if (p->slab_fails && f->pool_found && f->pool_extents >= f->slab_extents &&
		    f->pool_extents != p->slab_fail_free)
			p->slab_fails = 0;
		bool failed = p->slab_fails, want = p->want_slab;
		pthread_mutex_unlock(&p->mu);
		if (failed && want) /* the writes waiting fail with ENOSPC */
			dlvm_thin_family_no_slab(p, f->pool_found ? f->pool_extents : 0);
		w->slab = !p->reader && !failed &&
			  (want || dlvm_thin_pool_free_chunks(p) < slab / 2);
		/* metadata 3/4 full: a quarter more, before it fills */
		dlvm_thin_pool_usage(p, &u);
		pthread_mutex_lock(&p->mu);
		if (p->meta_grow_failed && p->meta_fail_free != f->vg_free)
			p->meta_grow_failed = false;
		bool mfailed = p->meta_grow_failed;
		pthread_mutex_unlock(&p->mu);
		w->meta = !p->reader && !mfailed &&
			  (u.meta_blocks - u.meta_free - u.meta_pending) * 4 >= u.meta_blocks * 3;
		return;
	}
	if (p->reader)
		return;
	dlvm_thin_pool_usage(p, &u);
	uint64_t used = u.data_chunks - u.data_free - u.data_pending;
	pthread_mutex_lock(&p->mu);
	p->can_grow = f->autoextend_threshold && !p->autoextend_failed;
	bool want = p->want_slab;
	bool can_grow = p->can_grow;
	pthread_mutex_unlock(&p->mu);
	w->autoextend = f->pool_found && can_grow &&
			(want || used * 100 >= u.data_chunks * f->autoextend_threshold);
}

unsigned dlvm_thin_family_no_slab(struct dlvm_thin_pool *p, uint64_t pool_extents)
{
	pthread_mutex_lock(&p->mu);
	unsigned before = p->slab_fails;
	p->want_slab = false;
	p->slab_fails++;
	p->slab_fail_free = pool_extents;
	pthread_cond_broadcast(&p->grown);
	pthread_mutex_unlock(&p->mu);
	return before;
}

bool dlvm_thin_family_no_meta(struct dlvm_thin_pool *p, uint64_t vg_free)
{
	pthread_mutex_lock(&p->mu);
	bool before = p->meta_grow_failed;
	p->meta_grow_failed = true;
	p->meta_fail_free = vg_free;
	pthread_mutex_unlock(&p->mu);
	return before;
}

void dlvm_thin_pool_autoextend_failed(struct dlvm_thin_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->autoextend_failed = true;
	p->can_grow = false;
	p->want_slab = false;
	pthread_cond_broadcast(&p->grown);
	pthread_mutex_unlock(&p->mu);
}

void dlvm_thin_pool_set_autoextend(struct dlvm_thin_pool *p, bool on)
{
	pthread_mutex_lock(&p->mu);
	p->can_grow = on && !p->autoextend_failed;
	pthread_mutex_unlock(&p->mu);
}

void dlvm_thin_pool_stop(struct dlvm_thin_pool *p, const char *why)
{
	pthread_mutex_lock(&p->mu);
	if (!p->broken) {
		p->broken = true;
		snprintf(p->broken_msg, sizeof(p->broken_msg), "%s", why);
	}
	pthread_cond_broadcast(&p->grown);
	pthread_mutex_unlock(&p->mu);
}

unsigned dlvm_thin_pool_warned(struct dlvm_thin_pool *p, enum dlvm_thin_area area, unsigned level)
{
	unsigned *at = area == DLVM_THIN_AREA_META ? &p->warned_meta : &p->warned_data;

	pthread_mutex_lock(&p->mu);
	unsigned before = *at;
	*at = level;
	pthread_mutex_unlock(&p->mu);
	return before;
}
