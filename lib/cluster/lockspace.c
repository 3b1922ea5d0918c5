/* SPDX-License-Identifier: MIT */
/*
 * Shared VGs: the lease area kept in the VG's hidden lockspace LV, the
 * lockspace every dlvmd with a host id joins (one renewal thread per VG), the
 * VG lease (paxos resource 0) each change of a shared VG runs under. docs/leases.md tells the story.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/runtime.h"
#include "dlvm/thinpool.h"
#include "dlvm/timedio.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/cluster/cluster_int.h"

/* Where the lease area is: the one linear segment of the lockspace LV. */
int area_where(const struct dlvm_vg *vg, struct dlvm_dev **dev, uint64_t *off, uint64_t *size,
	       struct dlvm_err *err)
{
	const struct dlvm_lv *lv = dlvm_vg_lockspace_lv(vg);
	uint64_t es = vg->info.extent_size;

	if (!lv)
		return dlvm_err_set(err, -EBADMSG, "%s: shared VG without a lockspace LV",
				    vg->info.name);
	if (lv->nseg != 1 || lv->segs[0]->stripes != 1)
		return dlvm_err_set(err, -EBADMSG,
				    "%s/%s: the lockspace LV is not one linear "
				    "segment",
				    vg->info.name, lv->name);
	const struct dlvm_pv *pv = dlvm_pv_find_id(vg, lv->segs[0]->area[0].pv_id);
	if (!pv || !pv->dev)
		return dlvm_err_set(err, -ENODEV, "%s: the PV holding the lease area is missing",
				    vg->info.name);
	*dev = pv->dev;
	*off = pv->d.pe_start + lv->segs[0]->area[0].pe_start * es;
	*size = lv->le_count * es;
	return 0;
}

struct shared_vg *shared_find(struct dlvm_ctx *ctx, const struct dlvm_vg *vg)
{
	for (size_t i = 0; i < ctx->nshared; i++)
		if (!memcmp(ctx->shared[i]->vg_uuid, vg->info.uuid, 16))
			return ctx->shared[i];
	return NULL;
}

/* ---- lockspace membership ---- */

void shared_set_timeouts(struct shared_vg *s, struct dlvm_vg *vg)
{
	uint64_t t = dlvm_lockspace_timeouts(s->ls)->io_timeout_ms;

	for (size_t i = 0; i < vg->npv; i++) {
		struct dlvm_dev *dev = vg->pvs[i]->dev;
		if (dev && dev->fd >= 0 && dlvm_dev_timeout(dev) != t &&
		    dlvm_dev_set_timeout(dev, t))
			log_warning(DLVM_LOG_LEASE, "%s: %s: no I/O timeout (out of memory)",
				    s->vg_name, dev->name);
	}
}

/* A metadata write was refused (dlvm/fence.h): this host stops renewing, so
 * that the others see it dead after D and may take its leases (s->mu held). */
static void fenced_itself(struct shared_vg *s)
{
	s->lost = true;
	snprintf(s->lost_msg, sizeof(s->lost_msg),
		 "%s: this host fenced itself (a metadata write came too close to its lease "
		 "deadline): restart dlvmd to rejoin",
		 s->vg_name);
	log_error(DLVM_LOG_LEASE, "%s: lockspace: fenced: renewals stopped", s->vg_name);
}

static void *renew_thread(void *p)
{
	struct shared_vg *s = p;
	const struct dlvm_lease_timeouts *t = dlvm_lockspace_timeouts(s->ls);
	struct timespec next;

	/* The join renewed once already (join_vg). */
	next = dlvm_mono_now();
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		next = dlvm_timespec_add_ms(next, t->renew_interval_ms);
		while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &next) == 0)
			;
		if (s->stop)
			break;
		if (dlvm_fence_is_shut(s->fence)) {
			fenced_itself(s);
			break;
		}
		pthread_mutex_unlock(&s->mu);
		struct dlvm_err e = { 0 };
		int r = dlvm_lockspace_renew(s->ls, &e);
		/* the fence follows the lease: a later deadline after a renewal,
		 * none at all once it is lost; a fence a refused metadata write
		 * shut stays shut, and the host stops renewing */
		bool open = dlvm_fence_set(s->fence, dlvm_lockspace_deadline_ms(s->ls));
		pthread_mutex_lock(&s->mu);
		if (!open) {
			fenced_itself(s);
			break;
		}
		if (r) {
			log_error(DLVM_LOG_LEASE, "%s: lockspace: renewal failed: %s", s->vg_name,
				  e.msg);
			if (!dlvm_lockspace_deadline_ms(s->ls)) {
				s->lost = true;
				snprintf(s->lost_msg, sizeof(s->lost_msg),
					 "%s: this host lost its "
					 "lockspace lease: %s",
					 s->vg_name, e.msg);
				break;
			}
		}
		/* a late renewal does not make the next ones pile up */
		struct timespec now = dlvm_mono_now();
		if (now.tv_sec > next.tv_sec + 1)
			next = now;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

void shared_free(struct shared_vg *s)
{
	if (!s)
		return;
	if (s->thread_running) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	dlvm_lockspace_free(s->ls);
	dlvm_lease_area_close(s->area);
	if (s->fence)
		dlvm_fence_set(s->fence, 0);
	dlvm_fence_put(s->fence);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Stop renewing and, when `release`, leave the lockspace. */
void shared_leave_one(struct shared_vg *s, bool release)
{
	if (s->thread_running) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		s->thread_running = false;
	}
	if (s->fence)
		dlvm_fence_set(s->fence, 0); /* no I/O under a lease we give up */
	if (release && s->ls && dlvm_lockspace_deadline_ms(s->ls)) {
		struct dlvm_err e = { 0 };
		uint32_t id = dlvm_lockspace_host_id(s->ls);
		if (dlvm_lockspace_release(s->ls, &e))
			log_error(DLVM_LOG_LEASE, "%s: lockspace: release: %s", s->vg_name, e.msg);
		else
			log_info(DLVM_LOG_LEASE, "%s: lockspace: released host id %" PRIu32,
				 s->vg_name, id);
	}
}

static int shared_add(struct dlvm_ctx *ctx, struct shared_vg *s)
{
	ctx->leave = dlvm_ctx_leave;
	struct shared_vg **p = realloc(ctx->shared, (ctx->nshared + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	ctx->shared = p;
	ctx->shared[ctx->nshared++] = s;
	return 0;
}

/* Join one VG's lockspace. Damaged areas refuse the VG (0 returned, the
 * reason kept and warned); other errors are returned. */
static int join_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_err *err)
{
	struct shared_vg *s = calloc(1, sizeof(*s));
	struct dlvm_dev *dev;
	uint64_t off, size, gen;
	pthread_condattr_t ca;
	int r;

	if (!s)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	memcpy(s->vg_uuid, vg->info.uuid, 16);
	snprintf(s->vg_name, sizeof(s->vg_name), "%s", vg->info.name);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	struct dlvm_err e = { 0 };
	if ((r = area_where(vg, &dev, &off, &size, &e)) ||
	    (r = dlvm_lease_area_open(dev, off, size, &s->area, &e))) {
		if (r != -EBADMSG && r != -ENOTSUP && r != -ENODEV)
			return dlvm_err_set(err, r, "%s: %s", vg->info.name, e.msg);
		snprintf(s->refused, sizeof(s->refused),
			 "shared VG %s refused: %s (the lease area "
			 "is left as it is)",
			 vg->info.name, e.msg);
		goto refused;
	}
	if ((r = dlvm_lockspace_new(s->area, ctx->lease_clock, ctx->io_timeout, &s->ls, &e)))
		goto fail;
	shared_set_timeouts(s, vg);
	if ((r = dlvm_lockspace_acquire(s->ls, ctx->host_id, ctx->lease_name, &gen, &e))) {
		if (r != -EBADMSG)
			goto fail;
		snprintf(s->refused, sizeof(s->refused),
			 "shared VG %s refused: %s (the lease area "
			 "is left as it is)",
			 vg->info.name, e.msg);
		dlvm_lockspace_free(s->ls);
		s->ls = NULL;
		goto refused;
	}
	log_info(DLVM_LOG_LEASE,
		 "%s: lockspace: joined as host id %" PRIu32 " '%s' (generation %" PRIu64 ")",
		 vg->info.name, ctx->host_id, ctx->lease_name, gen);
	s->prev_generation = dlvm_lockspace_prev_generation(s->ls);
	/* The join's write was A = 2T ago: its deadline is about T away, too
	 * close for a metadata write. One renewal now gives F. */
	if ((r = dlvm_lockspace_renew(s->ls, &e)))
		goto fail;
	if (!(s->fence = dlvm_fence_new(vg->info.name))) {
		r = -ENOMEM;
		snprintf(e.msg, sizeof(e.msg), "out of memory");
		goto fail;
	}
	dlvm_fence_set_margin(s->fence, dlvm_lockspace_timeouts(s->ls)->io_timeout_ms);
	dlvm_fence_set(s->fence, dlvm_lockspace_deadline_ms(s->ls));
	if ((r = dlvm_vg_set_fence(vg, s->fence))) {
		snprintf(e.msg, sizeof(e.msg), "no runtime to keep the fence in");
		goto fail;
	}
	if (shared_add(ctx, s)) {
		r = -ENOMEM;
		snprintf(e.msg, sizeof(e.msg), "out of memory");
		goto fail;
	}
	if ((r = pthread_create(&s->thread, NULL, renew_thread, s)))
		return dlvm_err_set(err, -r, "%s: cannot start the renewal thread", vg->info.name);
	s->thread_running = true;
	return 0;
refused:
	json_array_append_new(ctx->warnings, json_string(s->refused));
	if (shared_add(ctx, s)) {
		shared_free(s);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
fail:
	shared_free(s);
	return dlvm_err_set(err, r, "%s: %s", vg->info.name, e.msg);
}

int dlvm_ctx_join(struct dlvm_ctx *ctx, struct dlvm_err *err)
{
	if (!ctx->host_id)
		return dlvm_err_set(err, -EINVAL, "no host id");
	for (size_t i = 0; i < ctx->nvg; i++) {
		struct dlvm_vg *vg = ctx->vgs[i];
		int r;
		if (!(vg->info.flags & DLVM_VG_SHARED) || shared_find(ctx, vg))
			continue;
		if ((r = join_vg(ctx, vg, err)))
			return r;
	}
	return 0;
}

void dlvm_ctx_leave(struct dlvm_ctx *ctx)
{
	/* thin families: what was written since the last commit is committed
	 * while this host still holds its lease (a commit after it is refused) */
	for (size_t v = 0; v < ctx->nvg; v++)
		for (struct dlvm_thin_pool *p = dlvm_thin_pool_next(ctx->vgs[v], NULL); p;
		     p = dlvm_thin_pool_next(ctx->vgs[v], p)) {
			struct dlvm_err e = { 0 };
			if (dlvm_thin_pool_commit_dirty(p, &e))
				log_error(DLVM_LOG_LEASE, "%s: commit: %s", dlvm_thin_pool_name(p),
					  e.msg);
		}
	for (size_t i = 0; i < ctx->nshared; i++) {
		shared_leave_one(ctx->shared[i], true);
		shared_free(ctx->shared[i]);
	}
	free(ctx->shared);
	ctx->shared = NULL;
	ctx->nshared = 0;
}

/* ---- vgcreate --shared ---- */

int shared_vg_setup(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_dev *first,
		    uint32_t max_hosts, struct dlvm_err *err)
{
	struct dlvm_pv *pv = NULL;
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_CREATE };
	struct dlvm_dev *dev;
	uint64_t off, size;
	int r;

	for (size_t i = 0; i < vg->npv; i++)
		if (vg->pvs[i]->dev == first)
			pv = vg->pvs[i];
	if (!pv)
		return dlvm_err_set(err, -EINVAL, "%s: first PV not found", vg->info.name);
	uint32_t sector = pv->d.sector_size > first->sector_size ? pv->d.sector_size
								 : first->sector_size;
	uint64_t bytes = dlvm_lease_area_size(sector, max_hosts, SHARED_NRES);
	uint64_t es = vg->info.extent_size;
	if (!bytes)
		return dlvm_err_set(err, -EINVAL, "--max-hosts %" PRIu32 ": must be 1 to %u",
				    max_hosts, DLVM_LEASE_MAX_HOSTS);
	if ((r = dlvm_alloc(vg, NULL, bytes / es + (bytes % es != 0), 1, 0, &pv->d.id, 1,
			    &e.u.lv.segs, &e.u.lv.nseg, err)))
		return dlvm_err_prefix(err, r, "%s: lease area: ", first->path);
	if (e.u.lv.nseg != 1) {
		dlvm_segs_free(e.u.lv.segs, e.u.lv.nseg);
		return dlvm_err_set(err, -ENOSPC, "%s: no contiguous space for the lease area",
				    first->path);
	}
	dlvm_lv_create_edit(&e, vg->info.next_lv_id, "lvmlock", DLVM_LV_HIDDEN | DLVM_LV_LOCKSPACE);
	r = dlvm_txn_commit_edit(vg, &e, err);
	if (r)
		return r;
	/* The area is formatted before the VG is marked shared: a crash in
	 * between leaves a local VG with an unused hidden LV. */
	struct dlvm_lease_format_opts fo = { .sector_size = sector,
					     .max_hosts = max_hosts,
					     .nres = SHARED_NRES };
	memcpy(fo.vg_uuid, vg->info.uuid, 16);
	if ((r = area_where(vg, &dev, &off, &size, err)) ||
	    (r = dlvm_lease_area_format(dev, off, size, &fo, err)))
		return r;
	struct dlvm_edit ie = { .type = DLVM_EDIT_VG_INFO };
	ie.u.vg = vg->info;
	ie.u.vg.flags |= DLVM_VG_SHARED;
	ie.u.vg.ro_compat |= DLVM_RO_COMPAT_SHARED;
	r = dlvm_txn_commit_edit(vg, &ie, err);
	if (r)
		return r;
	if (ctx->daemon && ctx->host_id)
		return join_vg(ctx, vg, err);
	return 0;
}
