/* SPDX-License-Identifier: MIT */
/* A loaded VG's runtime (dlvm/runtime.h): its open stores, its fence, and
 * the maps it lends them to. */
#include "dlvm/runtime.h"

#include <stdlib.h>

#include "dlvm/log.h"
#include "pool_int.h"

struct dlvm_vg_runtime *dlvm_vg_runtime_new(void)
{
	return calloc(1, sizeof(struct dlvm_vg_runtime));
}

void dlvm_vg_runtime_free(struct dlvm_vg_runtime *rt)
{
	if (!rt)
		return;
	for (struct dlvm_thin_pool *p = rt->pools, *next; p; p = next) {
		struct dlvm_err e = { 0 };
		next = p->next;
		pthread_mutex_lock(&p->mu);
		pool_commit_idle(p);
		if (p->store && !p->broken && p->dirty && pool_commit_locked(p, &e))
			log_error(DLVM_LOG_THIN, "%s: commit: %s", p->name, e.msg);
		pthread_mutex_unlock(&p->mu);
		dlvm_thin_pool_unref(p);
	}
	dlvm_fence_put(rt->fence);
	free(rt);
}

struct dlvm_fence *dlvm_vg_fence(const struct dlvm_vg *vg)
{
	return vg->runtime ? vg->runtime->fence : NULL;
}

int dlvm_vg_set_fence(struct dlvm_vg *vg, struct dlvm_fence *f)
{
	if (!vg->runtime)
		return -EINVAL;
	dlvm_fence_put(vg->runtime->fence);
	vg->runtime->fence = f ? dlvm_fence_get(f) : NULL;
	return 0;
}

int dlvm_vg_map_lv(struct dlvm_vg *vg, const struct dlvm_lv *lv, struct dlvm_lv_map **out,
		   struct dlvm_err *err)
{
	struct dlvm_map_source src = {
		.fence = dlvm_vg_fence(vg),
		.thin_unref = dlvm_thin_pool_unref,
	};

	if (lv->flags & DLVM_LV_THIN) {
		struct dlvm_thin_pool *pool;
		int r;
		/* a read-only thin LV of a shared VG is read through views
		 * unless this host writes its family */
		if ((r = dlvm_thin_lv_store(vg, lv, !(lv->flags & DLVM_LV_READONLY), &pool, err)))
			return r;
		src.thin = dlvm_thin_pool_ref(pool);
	}
	return dlvm_lv_map_build(vg, lv, &src, out, err);
}
