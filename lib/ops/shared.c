/* SPDX-License-Identifier: MIT */
/*
 * Shared VGs: the lease area kept in the VG's hidden lockspace LV, the
 * lockspace every dlvmd with a host id joins (one renewal thread per VG), the
 * VG lease (paxos resource 0) each change of a shared VG runs under, and the
 * hosts report. docs/leases.md tells the story.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "ops.h"

struct shared_vg {
	uint8_t vg_uuid[16];
	char vg_name[DLVM_NAME_MAX + 1]; /* for messages */
	struct dlvm_lease_area *area;
	struct dlvm_lockspace *ls;        /* NULL when refused */
	char refused[DLVM_ERR_MSG_MAX];   /* why this host cannot change the VG */
	struct dlvm_paxos_lease vg_lease; /* while held */
	bool holding;
	struct dlvm_fence *fence;         /* deadline of this VG's data path */
	uint64_t prev_generation;         /* our record replaced at join (same name), or 0 */
	pthread_t thread;
	bool thread_running;
	pthread_mutex_t mu;               /* guards stop, lost, lost_msg */
	pthread_cond_t cv;
	bool stop;
	bool lost;
	char lost_msg[DLVM_ERR_MSG_MAX];
};

struct dlvm_lv *shared_lockspace_lv(const struct dlvm_vg *vg)
{
	for (size_t i = 0; i < vg->nlv; i++)
		if (vg->lvs[i]->flags & DLVM_LV_LOCKSPACE)
			return vg->lvs[i];
	return NULL;
}

bool lv_is_internal(const struct dlvm_lv *lv)
{
	return lv->flags & (DLVM_LV_HIDDEN | DLVM_LV_LOCKSPACE | DLVM_LV_THIN_META |
			    DLVM_LV_THIN_DATA);
}

bool lv_exportable(const struct dlvm_lv *lv)
{
	return !lv_is_internal(lv) && !(lv->flags & DLVM_LV_THIN_POOL);
}

int refuse_internal(const struct dlvm_vg *vg, const struct dlvm_lv *lv, const char *what,
		    struct dlvm_err *err)
{
	if (!lv_is_internal(lv))
		return 0;
	if ((lv->flags & DLVM_LV_THIN) && !strcmp(what, "remove"))
		return 0; /* a clone's hidden snapshot: goes once no clone reads it */
	if (lv->flags & DLVM_LV_THIN)
		return dlvm_err_set(err, -EPERM, "%s/%s: cannot %s [%s]: it is the snapshot that "
				    "clones of a live volume read through (it goes with the last of "
				    "them)", vg->info.name, lv->name, what, lv->name);
	if (lv->flags & (DLVM_LV_THIN_META | DLVM_LV_THIN_DATA))
		return dlvm_err_set(err, -EPERM, "%s/%s: cannot %s [%s]: it holds the %s of a "
				    "thin pool (removing its thin volumes or the pool removes it)",
				    vg->info.name, lv->name, what, lv->name,
				    lv->flags & DLVM_LV_THIN_META ? "metadata" : "data");
	return dlvm_err_set(err, -EPERM, "%s/%s: cannot %s [%s]: it holds the lease area of "
			    "shared VG %s (vgremove removes it)", vg->info.name, lv->name, what,
			    lv->name, vg->info.name);
}

/* Where the lease area is: the one linear segment of the lockspace LV. */
static int area_where(const struct dlvm_vg *vg, struct dlvm_dev **dev, uint64_t *off,
		      uint64_t *size, struct dlvm_err *err)
{
	const struct dlvm_lv *lv = shared_lockspace_lv(vg);
	uint64_t es = vg->info.extent_size;

	if (!lv)
		return dlvm_err_set(err, -EBADMSG, "%s: shared VG without a lockspace LV",
				    vg->info.name);
	if (lv->nseg != 1 || lv->segs[0]->stripes != 1)
		return dlvm_err_set(err, -EBADMSG, "%s/%s: the lockspace LV is not one linear "
				    "segment", vg->info.name, lv->name);
	const struct dlvm_pv *pv = dlvm_pv_find_id(vg, lv->segs[0]->area[0].pv_id);
	if (!pv || !pv->dev)
		return dlvm_err_set(err, -ENODEV, "%s: the PV holding the lease area is missing",
				    vg->info.name);
	*dev = pv->dev;
	*off = pv->d.pe_start + lv->segs[0]->area[0].pe_start * es;
	*size = lv->le_count * es;
	return 0;
}

static struct shared_vg *shared_find(struct dlvm_ctx *ctx, const struct dlvm_vg *vg)
{
	for (size_t i = 0; i < ctx->nshared; i++)
		if (!memcmp(ctx->shared[i]->vg_uuid, vg->info.uuid, 16))
			return ctx->shared[i];
	return NULL;
}

/* ---- lockspace membership ---- */

static void *renew_thread(void *p)
{
	struct shared_vg *s = p;
	const struct dlvm_lease_timeouts *t = dlvm_lockspace_timeouts(s->ls);
	struct timespec next;

	/* The first renewal comes at once: the join's write was A = 2T ago. */
	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&s->mu);
	for (bool first = true; !s->stop; first = false) {
		if (!first) {
			uint64_t ns = (uint64_t)next.tv_nsec +
				      (t->renew_interval_ms % 1000) * 1000000ull;
			next.tv_sec += (time_t)(t->renew_interval_ms / 1000 + ns / 1000000000ull);
			next.tv_nsec = (long)(ns % 1000000000ull);
			while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &next) == 0)
				;
			if (s->stop)
				break;
		}
		pthread_mutex_unlock(&s->mu);
		struct dlvm_err e = { 0 };
		int r = dlvm_lockspace_renew(s->ls, &e);
		/* the fence follows the lease: a later deadline after a renewal,
		 * none at all once it is lost */
		dlvm_fence_set(s->fence, dlvm_lockspace_deadline_ms(s->ls));
		pthread_mutex_lock(&s->mu);
		if (r) {
			fprintf(stderr, "dlvmd: %s: lockspace: renewal failed: %s\n", s->vg_name, e.msg);
			if (!dlvm_lockspace_deadline_ms(s->ls)) {
				s->lost = true;
				snprintf(s->lost_msg, sizeof(s->lost_msg), "%s: this host lost its "
					 "lockspace lease: %s", s->vg_name, e.msg);
				break;
			}
		}
		/* a late renewal does not make the next ones pile up */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec + 1)
			next = now;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void shared_free(struct shared_vg *s)
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
static void shared_leave_one(struct shared_vg *s, bool release)
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
			fprintf(stderr, "dlvmd: %s: lockspace: release: %s\n", s->vg_name, e.msg);
		else
			fprintf(stderr, "dlvmd: %s: lockspace: released host id %" PRIu32 "\n",
				s->vg_name, id);
	}
}

static int shared_add(struct dlvm_ctx *ctx, struct shared_vg *s)
{
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
		snprintf(s->refused, sizeof(s->refused), "shared VG %s refused: %s (the lease area "
			 "is left as it is)", vg->info.name, e.msg);
		goto refused;
	}
	if ((r = dlvm_lockspace_new(s->area, ctx->lease_clock, ctx->io_timeout, &s->ls, &e)))
		goto fail;
	if ((r = dlvm_lockspace_acquire(s->ls, ctx->host_id, ctx->lease_name, &gen, &e))) {
		if (r != -EBADMSG)
			goto fail;
		snprintf(s->refused, sizeof(s->refused), "shared VG %s refused: %s (the lease area "
			 "is left as it is)", vg->info.name, e.msg);
		dlvm_lockspace_free(s->ls);
		s->ls = NULL;
		goto refused;
	}
	fprintf(stderr, "dlvmd: %s: lockspace: joined as host id %" PRIu32 " '%s' (generation %"
		PRIu64 ")\n", vg->info.name, ctx->host_id, ctx->lease_name, gen);
	s->prev_generation = dlvm_lockspace_prev_generation(s->ls);
	if (!(s->fence = dlvm_fence_new(vg->info.name))) {
		r = -ENOMEM;
		snprintf(e.msg, sizeof(e.msg), "out of memory");
		goto fail;
	}
	dlvm_fence_set(s->fence, dlvm_lockspace_deadline_ms(s->ls));
	dlvm_fence_put(vg->fence);
	vg->fence = dlvm_fence_get(s->fence);
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
		for (struct dlvm_thin_pool *p = ctx->vgs[v]->thin_pools; p; p = p->next) {
			struct dlvm_err e = { 0 };
			if (p->store && dlvm_thin_pool_commit_dirty(p, &e))
				fprintf(stderr, "dlvmd: %s: commit: %s\n", p->name, e.msg);
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

/* How long a change waits for a busy VG lease: other hosts may send changes
 * back to back, and the lease has no queue. */
#define VG_LEASE_WAIT_MS 10000u

#define SHARED_NRES 4u /* resource 0: the VG lease; 1..3 reserved */

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
	e.u.lv.id = vg->info.next_lv_id;
	dlvm_uuid_generate(e.u.lv.uuid);
	snprintf(e.u.lv.name, sizeof(e.u.lv.name), "lvmlock");
	e.u.lv.flags = DLVM_LV_HIDDEN | DLVM_LV_LOCKSPACE;
	e.u.lv.ctime = (uint64_t)time(NULL);
	r = dlvm_txn_commit_edit(vg, &e, err);
	if (r)
		return r;
	/* The area is formatted before the VG is marked shared: a crash in
	 * between leaves a local VG with an unused hidden LV. */
	struct dlvm_lease_format_opts fo = { .sector_size = sector, .max_hosts = max_hosts,
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

/* ---- reload ---- */

/*
 * Read vg again from its devices (and the context's orphans, which another
 * host may have added to it) and put the new model in its place in ctx.
 * Devices of PVs another host removed become orphans. With `resync`, stale
 * copies are rewritten (only under the VG lease). On error the old model
 * stays.
 */
static int reload_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool resync, struct dlvm_err *err)
{
	size_t n = vg->npv + ctx->norphans, k = 0;
	struct dlvm_dev **devs = calloc(n ? n : 1, sizeof(*devs));
	struct dlvm_vg *nv = NULL;
	int r;

	if (!devs)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (size_t p = 0; p < vg->npv; p++)
		if (vg->pvs[p]->dev)
			devs[k++] = vg->pvs[p]->dev;
	size_t own = k;
	for (size_t i = 0; i < ctx->norphans; i++)
		devs[k++] = ctx->orphans[i];
	struct dlvm_dev **orig = malloc((k ? k : 1) * sizeof(*orig));
	if (!orig) {
		free(devs);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(orig, devs, k * sizeof(*orig));
	r = dlvm_vg_load(devs, k, NULL, &nv, err);
	if (!r && memcmp(nv->info.uuid, vg->info.uuid, 16)) {
		for (size_t p = 0; p < nv->npv; p++)
			nv->pvs[p]->dev = NULL;
		dlvm_vg_free(nv);
		r = dlvm_err_set(err, -ENOENT, "Volume group \"%s\" not found", vg->info.name);
	} else if (r) {
		dlvm_err_prefix(err, r, "%s: reload: ", vg->info.name);
	}
	if (r)
		goto out;
	/* the new model owns the devices whose slots it cleared */
	for (size_t i = own; i < k; i++)
		if (!devs[i])
			ctx_take_orphan(ctx, orig[i]);
	for (size_t i = 0; i < own; i++)
		if (devs[i]) /* removed from the VG by another host */
			ctx_add_orphan(ctx, devs[i]);
	for (size_t p = 0; p < vg->npv; p++)
		vg->pvs[p]->dev = NULL;
	/* a PV that joined (vgextend here or elsewhere) was an orphan, flock'ed
	 * by this process: every host opens the PVs of a shared VG */
	for (size_t p = 0; p < nv->npv; p++)
		if (nv->pvs[p]->dev && nv->pvs[p]->dev->fd >= 0 && (nv->info.flags & DLVM_VG_SHARED))
			flock(nv->pvs[p]->dev->fd, LOCK_UN);
	for (size_t i = 0; i < ctx->nvg; i++)
		if (ctx->vgs[i] == vg)
			ctx->vgs[i] = nv;
	nv->fence = vg->fence; /* the maps of this VG keep the same fence */
	vg->fence = NULL;
	/* open thin stores go on: this host may write their families, and
	 * opening one again would read it whole */
	nv->thin_pools = vg->thin_pools;
	vg->thin_pools = NULL;
	dlvm_vg_free(vg);
	dlvm_thin_families_follow(nv); /* grown by another host meanwhile */
	if (resync)
		ctx_resync_stale(ctx, nv);
out:
	free(orig);
	free(devs);
	return r;
}

/* Reload vg only when another writer committed since it was loaded (or
 * when it has stale copies to rewrite and `resync` allows it). */
static int reload_if_changed(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool resync,
			     struct dlvm_err *err)
{
	bool changed = true, stale = false;

	for (size_t p = 0; p < vg->npv; p++)
		stale |= vg->pvs[p]->dev && !vg->pvs[p]->mda.in_sync;
	if (dlvm_vg_poll(vg, &changed, NULL) || changed || (resync && stale) || ctx->norphans)
		return reload_vg(ctx, vg, resync, err);
	return 0;
}

/* ---- the VG lease around changes ---- */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int take_vg_lease(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_err *err)
{
	struct shared_vg *s = shared_find(ctx, vg);
	const char *name = vg->info.name;

	if (!ctx->daemon)
		return dlvm_err_set(err, -EROFS, "shared VG %s: needs a running dlvmd with "
				    "--host-id", name);
	if (!ctx->host_id)
		return dlvm_err_set(err, -EROFS, "%s: shared VG: start dlvmd with --host-id to "
				    "change it", name);
	if (!s)
		return dlvm_err_set(err, -EROFS, "%s: shared VG: this host has not joined its "
				    "lockspace", name);
	if (s->refused[0])
		return dlvm_err_set(err, -EROFS, "%s", s->refused);
	pthread_mutex_lock(&s->mu);
	bool lost = s->lost;
	pthread_mutex_unlock(&s->mu);
	if (lost)
		return dlvm_err_set(err, -EIO, "%s", s->lost_msg);
	if (s->holding)
		return 0;
	const struct dlvm_lease_timeouts *t = dlvm_lockspace_timeouts(s->ls);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned seed = (unsigned)(t0.tv_nsec ^ (long)ctx->host_id * 7919);
	for (;;) {
		struct dlvm_err e = { 0 };
		int r = dlvm_paxos_acquire(s->ls, 0, DLVM_LEASE_EXCLUSIVE, &s->vg_lease, &e);
		if (!r) {
			s->holding = true;
			return 0;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		uint64_t ms = (uint64_t)(now.tv_sec - t0.tv_sec) * 1000 +
			      (uint64_t)((now.tv_nsec - t0.tv_nsec) / 1000000);
		uint64_t limit = ctx->lease_wait_ms ? ctx->lease_wait_ms
				 : DLVM_MAX(2 * t->io_timeout_ms, (uint64_t)VG_LEASE_WAIT_MS);
		if (r != -EBUSY || ms >= limit)
			return dlvm_err_set(err, r, "%s: VG lease: %s", name, e.msg);
		struct timespec d = { 0, (long)(1 + rand_r(&seed) % 10) * 1000000L };
		nanosleep(&d, NULL);
	}
}

static void drop_vg_leases(struct dlvm_ctx *ctx, json_t *resp)
{
	for (size_t i = 0; i < ctx->nshared; i++) {
		struct shared_vg *s = ctx->shared[i];
		struct dlvm_err e = { 0 };
		if (!s->holding)
			continue;
		s->holding = false;
		if (dlvm_paxos_release(s->ls, &s->vg_lease, &e)) {
			if (resp)
				resp_warning(resp, "%s: VG lease: release: %s", s->vg_name, e.msg);
			else
				fprintf(stderr, "dlvmd: %s: VG lease: release: %s\n", s->vg_name,
					e.msg);
		}
	}
}

int shared_cmd_begin(struct dlvm_ctx *ctx, const struct dlvm_cmd_def *c, bool mutating,
		     json_t *args, json_t *resp, struct dlvm_err *err)
{
	size_t n = json_array_size(args), nn = 0;
	char **names;
	int r = 0;

	if (!mutating) {
		/* Reports show what other hosts changed: reload every shared VG
		 * (VGs are small; comparing journal tails would be cheaper). */
		if (!ctx->daemon)
			return 0;
		for (size_t i = 0; i < ctx->nvg; i++) {
			struct dlvm_vg *vg = ctx->vgs[i];
			struct dlvm_err e = { 0 };
			if ((vg->info.flags & DLVM_VG_SHARED) && reload_if_changed(ctx, vg, false, &e))
				resp_warning(resp, "%s", e.msg);
		}
		return 0;
	}
	if (c->flags & DLVM_CMD_VG_ARG0)
		n = DLVM_MIN(n, 1);
	else if (!(c->flags & DLVM_CMD_VG_ARGS))
		return 0;
	if (!n)
		return 0;
	if (!(names = calloc(n, sizeof(*names))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *a = arg_str(args, i), *p = a;
		if (!a)
			continue;
		if (!strncmp(p, "/dev/", 5))
			p += 5;
		size_t len = strcspn(p, "/");
		struct dlvm_vg *vg = NULL;
		for (size_t v = 0; v < ctx->nvg && !vg; v++)
			if (strlen(ctx->vgs[v]->info.name) == len &&
			    !strncmp(ctx->vgs[v]->info.name, p, len))
				vg = ctx->vgs[v];
		if (!vg || !(vg->info.flags & DLVM_VG_SHARED))
			continue;
		bool dup = false;
		for (size_t k = 0; k < nn; k++)
			dup |= !strcmp(names[k], vg->info.name);
		if (!dup)
			names[nn++] = vg->info.name;
	}
	/* one order on every host */
	qsort(names, nn, sizeof(*names), name_cmp);
	char (*copies)[DLVM_NAME_MAX + 1] = calloc(nn ? nn : 1, sizeof(*copies));
	if (!copies) {
		free(names);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t k = 0; k < nn; k++)
		snprintf(copies[k], sizeof(copies[k]), "%s", names[k]);
	free(names);
	for (size_t k = 0; k < nn && !r; k++) {
		struct dlvm_vg *vg;
		if (dlvm_ctx_vg(ctx, copies[k], &vg, NULL))
			continue;
		if (!(r = take_vg_lease(ctx, vg, err)))
			r = reload_if_changed(ctx, vg, true, err);
	}
	free(copies);
	if (r)
		drop_vg_leases(ctx, resp);
	return r;
}

void shared_cmd_end(struct dlvm_ctx *ctx, json_t *resp)
{
	drop_vg_leases(ctx, resp);
}

int shared_vg_locked(struct dlvm_ctx *ctx, const char *vg_name,
		     int (*fn)(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg), void *arg,
		     struct dlvm_err *err)
{
	char name[DLVM_NAME_MAX + 1];
	struct dlvm_vg *vg;
	int r;

	snprintf(name, sizeof(name), "%s", vg_name); /* the reload frees the old model */
	if ((r = dlvm_ctx_vg(ctx, name, &vg, err)) || (r = take_vg_lease(ctx, vg, err)))
		return r;
	if (!(r = reload_if_changed(ctx, vg, true, err)) && !(r = dlvm_ctx_vg(ctx, name, &vg, err)))
		r = fn(ctx, vg, arg);
	drop_vg_leases(ctx, NULL);
	return r;
}

int shared_vg_removing(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_err *err)
{
	struct shared_vg *s = shared_find(ctx, vg);
	struct dlvm_host_info *h = NULL;
	size_t n = 0;
	int r;

	if (!(vg->info.flags & DLVM_VG_SHARED))
		return 0;
	if (!s || !s->ls)
		return dlvm_err_set(err, -EROFS, "%s: shared VG: this host has not joined its "
				    "lockspace", vg->info.name);
	if ((r = dlvm_lockspace_hosts(s->ls, &h, &n, err)))
		return r;
	for (size_t i = 0; i < n; i++) {
		if (h[i].host_id == ctx->host_id ||
		    (h[i].state != DLVM_HOST_LIVE && h[i].state != DLVM_HOST_FAIL))
			continue;
		r = dlvm_err_set(err, -EBUSY, "%s: host id %" PRIu32 " '%s' is still in the "
				 "lockspace: stop its dlvmd first", vg->info.name, h[i].host_id,
				 h[i].name);
		break;
	}
	free(h);
	return r;
}

void shared_vg_removed(struct dlvm_ctx *ctx, struct dlvm_vg *vg, json_t *resp)
{
	struct shared_vg *s = shared_find(ctx, vg);

	if (!s)
		return;
	drop_vg_leases(ctx, resp);
	shared_leave_one(s, true);
	for (size_t i = 0; i < ctx->nshared; i++)
		if (ctx->shared[i] == s)
			ctx->shared[i] = ctx->shared[--ctx->nshared];
	shared_free(s);
}

/* ---- activation locks: LV_SET_HOLDERS records under the VG lease ---- */

/* The lockspace view of this host for vg (NULL when it has not joined). */
static struct shared_vg *joined(struct dlvm_ctx *ctx, const struct dlvm_vg *vg)
{
	struct shared_vg *s = shared_find(ctx, vg);
	return s && s->ls && !s->refused[0] && dlvm_lockspace_deadline_ms(s->ls) ? s : NULL;
}

struct holders_view {
	struct dlvm_host_info *hosts;
	size_t n;
	uint32_t my_id;
	uint64_t my_gen;
};

static int view_get(struct shared_vg *s, struct holders_view *v, struct dlvm_err *err)
{
	memset(v, 0, sizeof(*v));
	v->my_id = dlvm_lockspace_host_id(s->ls);
	v->my_gen = dlvm_lockspace_generation(s->ls);
	return dlvm_lockspace_hosts(s->ls, &v->hosts, &v->n, err);
}

static const struct dlvm_host_info *view_host(const struct holders_view *v, uint32_t id)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->hosts[i].host_id == id)
			return &v->hosts[i];
	return NULL;
}

/*
 * Does a record still stand? Ours only at our current generation. Another
 * host's while its delta lease carries the record's generation and is live,
 * failing (it may still be writing until its deadline) or unreadable; a dead,
 * released or restarted host's record is stale.
 */
static bool holder_stands(const struct holders_view *v, const struct dlvm_lv_holder *h)
{
	if (h->host_id == v->my_id)
		return h->generation == v->my_gen;
	const struct dlvm_host_info *hi = view_host(v, h->host_id);
	if (!hi)
		return false;
	if (hi->state == DLVM_HOST_BAD)
		return true;
	return hi->generation == h->generation &&
	       (hi->state == DLVM_HOST_LIVE || hi->state == DLVM_HOST_FAIL);
}

static void holder_name(const struct holders_view *v, const struct dlvm_lv_holder *h, char *out,
			size_t len)
{
	const struct dlvm_host_info *hi = view_host(v, h->host_id);
	snprintf(out, len, "host id %" PRIu32 " '%s'", h->host_id, hi ? hi->name : "?");
}

/* Commit lv's new holder list (n entries of hs, sorted by host id) if it
 * differs from the current one. */
static int commit_holders(struct dlvm_vg *vg, struct dlvm_lv *lv, const struct dlvm_lv_holder *hs,
			  uint32_t n, struct dlvm_err *err)
{
	if (n == lv->nholders && (!n || !memcmp(hs, lv->holders, n * sizeof(*hs))))
		return 0;
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_HOLDERS };
	e.u.lv.id = lv->id;
	e.u.lv.nholders = n;
	if (n && !(e.u.lv.holders = malloc(n * sizeof(*hs))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	if (n)
		memcpy(e.u.lv.holders, hs, n * sizeof(*hs));
	return dlvm_txn_commit_edit(vg, &e, err);
}

static int need_joined(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, struct shared_vg **out,
		       struct dlvm_err *err)
{
	struct shared_vg *s = joined(ctx, vg);
	if (!s || !s->holding)
		return dlvm_err_set(err, -EROFS, "%s: shared VG: this host has not joined its "
				    "lockspace (start dlvmd with --host-id)", vg->info.name);
	*out = s;
	return 0;
}

static int hold_one(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		    enum dlvm_hold_mode mode, const char *family_of, struct dlvm_err *err)
{
	struct shared_vg *s = NULL;
	struct holders_view v;
	struct dlvm_lv_holder *hs;
	uint32_t n = 0;
	int r;

	if ((r = need_joined(ctx, vg, &s, err)) || (r = view_get(s, &v, err)))
		return r;
	if (!(hs = calloc(lv->nholders + 1, sizeof(*hs)))) {
		free(v.hosts);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < lv->nholders && !r; i++) {
		const struct dlvm_lv_holder *h = &lv->holders[i];
		if (h->host_id == v.my_id || !holder_stands(&v, h))
			continue;
		if (mode == DLVM_HOLD_EXCLUSIVE || h->mode == DLVM_HOLD_EXCLUSIVE) {
			char who[DLVM_LEASE_NAME_MAX + 32];
			holder_name(&v, h, who, sizeof(who));
			ctx->lock_conflict = true;
			if (family_of)
				r = dlvm_err_set(err, -EBUSY, "%s/%s: its thin family is written on %s "
						 "(deactivate the family's writable volumes there "
						 "first)", vg->info.name, family_of, who);
			else
				r = dlvm_err_set(err, -EBUSY, "%s/%s: active %s on %s", vg->info.name,
						 lv->name, h->mode == DLVM_HOLD_EXCLUSIVE
						 ? "exclusively" : "shared", who);
			break;
		}
		hs[n++] = *h;
	}
	if (!r) {
		/* insert ours in host id order */
		uint32_t at = 0;
		while (at < n && hs[at].host_id < v.my_id)
			at++;
		memmove(&hs[at + 1], &hs[at], (n - at) * sizeof(*hs));
		hs[at] = (struct dlvm_lv_holder){ v.my_id, mode, v.my_gen };
		r = commit_holders(vg, lv, hs, n + 1, err);
	}
	free(hs);
	free(v.hosts);
	return r;
}

/* A thin LV of a shared VG that writes its family's store. */
static bool family_writer(const struct dlvm_lv *lv)
{
	return (lv->flags & DLVM_LV_THIN) && lv->thin.meta_id && !(lv->flags & DLVM_LV_READONLY);
}

/*
 * The family lease: a writable thin LV of a shared VG is active on one host
 * at a time, and that host holds its family's metadata LV exclusively too,
 * so that no other host writes the family's store (its snapshots stay
 * readable everywhere).
 */
int shared_lv_hold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		   enum dlvm_hold_mode mode, struct dlvm_err *err)
{
	if (family_writer(lv)) {
		struct dlvm_lv *meta = dlvm_lv_find_id(vg, lv->thin.meta_id);
		int r;
		if (mode != DLVM_HOLD_EXCLUSIVE)
			return dlvm_err_set(err, -EINVAL, "%s/%s: a thin volume is written from one "
					    "host at a time: activate it with -aey (its snapshots can "
					    "be active on many hosts with -asy)", vg->info.name,
					    lv->name);
		if (!meta)
			return dlvm_err_set(err, -EBADMSG, "%s/%s: its family's metadata LV is "
					    "missing", vg->info.name, lv->name);
		if ((r = hold_one(ctx, vg, meta, DLVM_HOLD_EXCLUSIVE, lv->name, err)))
			return r;
	}
	return hold_one(ctx, vg, lv, mode, NULL, err);
}

static int unhold_one(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		      struct dlvm_err *err);

int shared_family_hold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const struct dlvm_lv *lv,
		       struct dlvm_err *err)
{
	struct dlvm_lv *meta;

	if (!(vg->info.flags & DLVM_VG_SHARED) || !family_writer(lv))
		return 0;
	if (!(meta = dlvm_lv_find_id(vg, lv->thin.meta_id)))
		return dlvm_err_set(err, -EBADMSG, "%s/%s: its family's metadata LV is missing",
				    vg->info.name, lv->name);
	if (shared_lv_held_here(ctx, vg, meta))
		return 0;
	return hold_one(ctx, vg, meta, DLVM_HOLD_EXCLUSIVE, lv->name, err);
}

/* Does this host still write family meta_id: is a writable LV of it
 * active here (other than `leaving`, whose hold goes now), or a job running
 * on one (other than the job of `self`, which asks)? */
static bool family_busy_here(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, uint64_t meta_id,
			     const struct dlvm_lv *leaving, const struct dlvm_lv *self)
{
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *o = vg->lvs[i];
		if (!family_writer(o) || o->thin.meta_id != meta_id)
			continue;
		if ((o != leaving && shared_lv_held_here(ctx, vg, o)) ||
		    (o != self && job_running_on(ctx, vg, o->id)))
			return true;
	}
	return false;
}

/* Commit and close the family's store, then let the family lease go. */
static int family_let_go(struct dlvm_ctx *ctx, struct dlvm_vg *vg, uint64_t meta_id,
			 struct dlvm_err *err)
{
	struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	struct dlvm_thin_pool *p = dlvm_thin_store_find(vg, meta_id, true);
	int r;

	if (p && (r = dlvm_thin_store_drop(vg, p, err)))
		return r;
	return meta ? unhold_one(ctx, vg, meta, err) : 0;
}

int shared_family_release_idle(struct dlvm_ctx *ctx, struct dlvm_vg *vg, uint64_t meta_id,
			       const struct dlvm_lv *self, struct dlvm_err *err)
{
	if (!(vg->info.flags & DLVM_VG_SHARED) || family_busy_here(ctx, vg, meta_id, NULL, self))
		return 0;
	return family_let_go(ctx, vg, meta_id, err);
}

int shared_family_refuse_elsewhere(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
				   const struct dlvm_lv *lv, const char *what,
				   struct dlvm_err *err)
{
	const struct dlvm_lv *meta;

	if (!(vg->info.flags & DLVM_VG_SHARED) || !(lv->flags & DLVM_LV_THIN) ||
	    !lv->thin.meta_id || !(meta = dlvm_lv_find_id(vg, lv->thin.meta_id)))
		return 0;
	int r = shared_lv_refuse_elsewhere(ctx, vg, meta, what, err);
	if (r == -EBUSY)
		dlvm_err_prefix(err, r, "%s/%s: its thin family is written elsewhere: ",
				vg->info.name, lv->name);
	return r;
}

int shared_lv_unhold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		     struct dlvm_err *err)
{
	int r = unhold_one(ctx, vg, lv, err);

	if (r || !family_writer(lv))
		return r;
	/* the last writable LV of the family here, and no job on the family:
	 * its store is committed and closed, then the family lease goes */
	if (family_busy_here(ctx, vg, lv->thin.meta_id, lv, NULL))
		return 0;
	return family_let_go(ctx, vg, lv->thin.meta_id, err);
}

static int unhold_one(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		      struct dlvm_err *err)
{
	struct shared_vg *s = NULL;
	struct holders_view v;
	struct dlvm_lv_holder *hs;
	uint32_t n = 0;
	int r;

	if (!lv->nholders)
		return 0;
	if ((r = need_joined(ctx, vg, &s, err)) || (r = view_get(s, &v, err)))
		return r;
	if (!(hs = calloc(lv->nholders, sizeof(*hs)))) {
		free(v.hosts);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < lv->nholders; i++)
		if (lv->holders[i].host_id != v.my_id && holder_stands(&v, &lv->holders[i]))
			hs[n++] = lv->holders[i];
	r = commit_holders(vg, lv, hs, n, err);
	free(hs);
	free(v.hosts);
	return r;
}

int shared_lv_refuse_elsewhere(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
			       const struct dlvm_lv *lv, const char *what, struct dlvm_err *err)
{
	struct shared_vg *s = NULL;
	struct holders_view v;
	int r = 0;

	if (!(vg->info.flags & DLVM_VG_SHARED) || !lv->nholders)
		return 0;
	if ((r = need_joined(ctx, vg, &s, err)) || (r = view_get(s, &v, err)))
		return r;
	for (uint32_t i = 0; i < lv->nholders && !r; i++) {
		const struct dlvm_lv_holder *h = &lv->holders[i];
		if (h->host_id == v.my_id || !holder_stands(&v, h))
			continue;
		char who[DLVM_LEASE_NAME_MAX + 32];
		holder_name(&v, h, who, sizeof(who));
		ctx->lock_conflict = true;
		r = dlvm_err_set(err, -EBUSY, "%s/%s: cannot %s: active on %s (deactivate it there "
				 "first)", vg->info.name, lv->name, what, who);
	}
	free(v.hosts);
	return r;
}

bool shared_lv_held_here(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	struct shared_vg *s = joined(ctx, vg);
	if (!s)
		return false;
	uint32_t id = dlvm_lockspace_host_id(s->ls);
	uint64_t gen = dlvm_lockspace_generation(s->ls);
	for (uint32_t i = 0; i < lv->nholders; i++)
		if (lv->holders[i].host_id == id && lv->holders[i].generation == gen)
			return true;
	return false;
}

void shared_lv_hosts(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		     char *out, size_t len)
{
	struct shared_vg *s = joined(ctx, vg);
	struct holders_view v;
	size_t used = 0;

	*out = 0;
	if (!lv->nholders)
		return;
	if (!s || view_get(s, &v, NULL)) {
		/* no liveness view here: show the records as they are */
		for (uint32_t i = 0; i < lv->nholders && used < len; i++)
			used += (size_t)snprintf(out + used, len - used, "%s%" PRIu32 "%s",
						 i ? "," : "", lv->holders[i].host_id,
						 lv->holders[i].mode == DLVM_HOLD_SHARED ? "(sh)" : "");
		return;
	}
	bool first = true;
	for (uint32_t i = 0; i < lv->nholders && used < len; i++) {
		if (!holder_stands(&v, &lv->holders[i]))
			continue;
		used += (size_t)snprintf(out + used, len - used, "%s%" PRIu32 "%s", first ? "" : ",",
					 lv->holders[i].host_id,
					 lv->holders[i].mode == DLVM_HOLD_SHARED ? "(sh)" : "");
		first = false;
	}
	free(v.hosts);
}

bool shared_vg_lease_held(struct dlvm_ctx *ctx, const struct dlvm_vg *vg)
{
	struct shared_vg *s = shared_find(ctx, vg);
	return s && s->holding;
}

/* ---- the host agent: re-adoption at start, refresh between commands ---- */

/* Exports of this VG whose LV is gone or no longer held here are torn down;
 * held LVs whose size or flags changed get a new map. old_* describe the LVs
 * that were exported before the reload (by name). */
struct exported {
	char name[DLVM_NAME_MAX + 1];
	uint8_t uuid[16];
	uint64_t le_count, flags;
};

static void reconcile(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const struct exported *old,
		      size_t nold)
{
	const struct dlvm_export_hooks *hk = ctx->hooks;

	for (size_t i = 0; i < nold; i++) {
		struct dlvm_lv *lv = dlvm_lv_find(vg, old[i].name);
		struct dlvm_err e = { 0 };
		if (lv && !memcmp(lv->uuid, old[i].uuid, 16) && shared_lv_held_here(ctx, vg, lv)) {
			if ((lv->le_count != old[i].le_count || lv->flags != old[i].flags) &&
			    hk->activate(hk->priv, vg, lv, NULL, &e))
				fprintf(stderr, "dlvmd: %s\n", e.msg);
			continue;
		}
		/* removed, renamed or taken over elsewhere: a stale export must
		 * not stay (no write can reach the old extents through it) */
		struct dlvm_lv ghost = { 0 };
		snprintf(ghost.name, sizeof(ghost.name), "%s", old[i].name);
		if (hk->deactivate(hk->priv, vg, &ghost, true, &e))
			fprintf(stderr, "dlvmd: %s\n", e.msg);
		else
			fprintf(stderr, "dlvmd: %s/%s: %s on another host: export removed\n",
				vg->info.name, old[i].name, lv ? "taken over or deactivated" : "removed");
	}
}

static int snapshot_exports(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, struct exported **out,
			    size_t *n)
{
	*n = 0;
	*out = calloc(vg->nlv ? vg->nlv : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *lv = vg->lvs[i];
		if (!ctx->hooks->is_active(ctx->hooks->priv, vg, lv))
			continue;
		struct exported *x = &(*out)[(*n)++];
		snprintf(x->name, sizeof(x->name), "%s", lv->name);
		memcpy(x->uuid, lv->uuid, 16);
		x->le_count = lv->le_count;
		x->flags = lv->flags;
	}
	return 0;
}

int dlvm_ctx_refresh(struct dlvm_ctx *ctx)
{
	int changed_vgs = 0;

	if (!ctx->hooks)
		return 0;
	for (size_t i = 0; i < ctx->nshared; i++) {
		struct shared_vg *s = ctx->shared[i];
		struct dlvm_vg *vg = NULL;
		struct dlvm_err e = { 0 };
		bool changed;
		for (size_t v = 0; v < ctx->nvg && !vg; v++)
			if (!memcmp(ctx->vgs[v]->info.uuid, s->vg_uuid, 16))
				vg = ctx->vgs[v];
		if (!vg || !s->ls || s->refused[0])
			continue;
		if (dlvm_vg_poll(vg, &changed, &e)) {
			fprintf(stderr, "dlvmd: %s: refresh: %s\n", s->vg_name, e.msg);
			continue;
		}
		if (!changed)
			continue;
		struct exported *old;
		size_t nold;
		if (snapshot_exports(ctx, vg, &old, &nold))
			continue;
		uint8_t uuid[16];
		memcpy(uuid, vg->info.uuid, 16);
		if (reload_vg(ctx, vg, false, &e)) {
			fprintf(stderr, "dlvmd: %s: refresh: %s\n", s->vg_name, e.msg);
			free(old);
			continue;
		}
		for (size_t v = 0; v < ctx->nvg; v++)
			if (!memcmp(ctx->vgs[v]->info.uuid, uuid, 16))
				vg = ctx->vgs[v];
		reconcile(ctx, vg, old, nold);
		free(old);
		changed_vgs++;
	}
	return changed_vgs;
}

/* Does host id hold a writable LV of family meta_id at generation g1 or g2? */
static bool family_held_at(const struct dlvm_vg *vg, uint64_t meta_id, uint32_t id, uint64_t g1,
			   uint64_t g2)
{
	for (size_t i = 0; i < vg->nlv; i++) {
		const struct dlvm_lv *o = vg->lvs[i];
		if (!family_writer(o) || o->thin.meta_id != meta_id)
			continue;
		for (uint32_t k = 0; k < o->nholders; k++)
			if (o->holders[k].host_id == id && (o->holders[k].generation == g1 ||
							    o->holders[k].generation == g2))
				return true;
	}
	return false;
}

unsigned dlvm_ctx_adopt(struct dlvm_ctx *ctx)
{
	unsigned adopted = 0;

	if (!ctx->hooks)
		return 0;
	for (size_t i = 0; i < ctx->nshared; i++) {
		struct shared_vg *s = ctx->shared[i];
		struct dlvm_vg *vg = NULL;
		struct dlvm_err e = { 0 };
		if (!s->ls || s->refused[0] || !s->prev_generation)
			continue;
		for (size_t v = 0; v < ctx->nvg && !vg; v++)
			if (!memcmp(ctx->vgs[v]->info.uuid, s->vg_uuid, 16))
				vg = ctx->vgs[v];
		if (!vg)
			continue;
		uint32_t id = dlvm_lockspace_host_id(s->ls);
		uint64_t gen = dlvm_lockspace_generation(s->ls);
		if (take_vg_lease(ctx, vg, &e) || reload_vg(ctx, vg, true, &e)) {
			fprintf(stderr, "dlvmd: %s: re-adopting activations: %s\n", s->vg_name, e.msg);
			drop_vg_leases(ctx, NULL);
			continue;
		}
		for (size_t v = 0; v < ctx->nvg; v++)
			if (!memcmp(ctx->vgs[v]->info.uuid, s->vg_uuid, 16))
				vg = ctx->vgs[v];
		for (size_t l = 0; l < vg->nlv; l++) {
			struct dlvm_lv *lv = vg->lvs[l];
			/* a family lease goes with the family's writers: one left by
			 * a flatten job that died with dlvmd is not taken over */
			if ((lv->flags & DLVM_LV_THIN_META) && lv->thin.pool_id &&
			    !family_held_at(vg, lv->id, id, s->prev_generation, gen))
				continue;
			for (uint32_t k = 0; k < lv->nholders; k++) {
				struct dlvm_lv_holder *h = &lv->holders[k];
				if (h->host_id != id || h->generation != s->prev_generation)
					continue;
				struct dlvm_lv_holder *hs = malloc(lv->nholders * sizeof(*hs));
				if (!hs)
					break;
				memcpy(hs, lv->holders, lv->nholders * sizeof(*hs));
				hs[k].generation = gen;
				int r = commit_holders(vg, lv, hs, lv->nholders, &e);
				free(hs);
				if (!r)
					r = ctx->hooks->activate(ctx->hooks->priv, vg, lv, NULL, &e);
				if (r)
					fprintf(stderr, "dlvmd: %s/%s: re-adopt: %s\n", vg->info.name,
						lv->name, e.msg);
				else
					adopted++;
				break;
			}
		}
		drop_vg_leases(ctx, NULL);
	}
	return adopted;
}

/* ---- hosts ---- */

static void host_row(json_t *rows, const char *vg, uint32_t id, const char *name,
		     const char *state, uint64_t gen, json_int_t ago_s, bool me)
{
	json_t *row = json_object();
	json_object_set_new(row, "vg_name", json_string(vg));
	json_object_set_new(row, "host_id", json_integer(id));
	json_object_set_new(row, "host_name", json_string(name));
	json_object_set_new(row, "host_state", json_string(state));
	json_object_set_new(row, "host_generation", json_integer((json_int_t)gen));
	json_object_set_new(row, "host_last_renewal", ago_s < 0 ? json_null()
								 : json_integer(ago_s));
	json_object_set_new(row, "host_this", json_string(me ? "yes" : ""));
	json_array_append_new(rows, row);
}

/* Without a joined lockspace: one read of every sector. Liveness needs two
 * reads some time apart, so written hosts show as "unknown". */
static int hosts_from_disk(const struct dlvm_vg *vg, json_t *rows, struct dlvm_err *err)
{
	struct dlvm_lease_area *area;
	struct dlvm_dev *dev;
	uint64_t off, size;
	int r;

	if ((r = area_where(vg, &dev, &off, &size, err)) ||
	    (r = dlvm_lease_area_open(dev, off, size, &area, err)))
		return r;
	const struct dlvm_lease_area_header *h = &area->hdr;
	uint8_t *buf = dlvm_io_alloc(h->lockspace_size);
	if (!buf) {
		dlvm_lease_area_close(area);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	r = dlvm_dev_read(dev, buf, h->lockspace_size, off + h->lockspace_offset, err);
	for (uint32_t id = 1; !r && id <= h->max_hosts; id++) {
		struct dlvm_delta_record d;
		struct dlvm_err e = { 0 };
		if (dlvm_delta_decode(buf + (uint64_t)(id - 1) * h->sector_size, &d, &e)) {
			host_row(rows, vg->info.name, id, "", "bad", 0, -1, false);
			continue;
		}
		if (!d.host_id)
			continue;
		host_row(rows, vg->info.name, id, d.name, d.timestamp ? "unknown" : "free",
			 d.generation, -1, false);
	}
	free(buf);
	dlvm_lease_area_close(area);
	return r;
}

DLVM_CMD_FN(cmd_hosts)
{
	json_t *rep = json_object(), *rows = json_array();
	struct dlvm_vg *vg;
	int r;

	(void)opts;
	json_object_set_new(rep, "kind", json_string("host"));
	json_object_set_new(rep, "rows", rows);
	json_object_set_new(resp, "report", rep);
	if (json_array_size(args) != 1)
		return dlvm_err_set(err, -EINVAL, "hosts: give one shared VG");
	if ((r = dlvm_ctx_vg(ctx, arg_str(args, 0), &vg, err)))
		return r;
	if (!(vg->info.flags & DLVM_VG_SHARED))
		return dlvm_err_set(err, -EINVAL, "%s: not a shared VG", vg->info.name);
	struct shared_vg *s = shared_find(ctx, vg);
	if (s && s->refused[0])
		return dlvm_err_set(err, -EBADMSG, "%s", s->refused);
	if (!s || !s->ls || !dlvm_lockspace_deadline_ms(s->ls)) {
		if (ctx->daemon)
			resp_warning(resp, "%s: this host is not in the lockspace: host states are "
				     "not known", vg->info.name);
		return hosts_from_disk(vg, rows, err);
	}
	struct dlvm_host_info *h = NULL;
	size_t n = 0;
	if ((r = dlvm_lockspace_hosts(s->ls, &h, &n, err)))
		return r;
	uint64_t now = dlvm_lease_real_clock.now_ms(dlvm_lease_real_clock.priv);
	for (size_t i = 0; i < n; i++)
		host_row(rows, vg->info.name, h[i].host_id, h[i].name,
			 dlvm_host_state_name(h[i].state), h[i].generation,
			 h[i].state == DLVM_HOST_FREE
				 ? -1 : (json_int_t)((now - DLVM_MIN(now, h[i].last_change_ms)) / 1000),
			 h[i].host_id == ctx->host_id);
	free(h);
	return 0;
}
