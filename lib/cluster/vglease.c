/* SPDX-License-Identifier: MIT */
/* The VG lease (paxos resource 0 of a shared VG's lease area): every change
 * of a shared VG runs under it, after reloading what other hosts committed. */
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
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/cluster/cluster_int.h"

/* ---- reload ---- */

/*
 * Read vg again from its devices (and the context's orphans, which another
 * host may have added to it) and put the new model in its place in ctx.
 * Devices of PVs another host removed become orphans. With `resync`, stale
 * copies are rewritten (only under the VG lease). On error the old model
 * stays.
 */
int reload_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool resync, struct dlvm_err *err)
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
		if (nv->pvs[p]->dev && nv->pvs[p]->dev->fd >= 0 &&
		    (nv->info.flags & DLVM_VG_SHARED))
			flock(nv->pvs[p]->dev->fd, LOCK_UN);
	/* the runtime goes on with the new model: the maps of this VG keep the
	 * same fence, and open thin stores go on (this host may write their
	 * families, and opening one again would read it whole) */
	ctx_replace_vg(ctx, vg, nv);
	dlvm_vg_free(vg);
	struct shared_vg *s = shared_find(ctx, nv);
	if (s && s->ls)
		shared_set_timeouts(s, nv);
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
int reload_if_changed(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool resync, struct dlvm_err *err)
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

int take_vg_lease(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_err *err)
{
	struct shared_vg *s = shared_find(ctx, vg);
	const char *name = vg->info.name;

	if (!ctx->daemon)
		return dlvm_err_set(err, -EROFS,
				    "shared VG %s: needs a running dlvmd with "
				    "--host-id",
				    name);
	if (!ctx->host_id)
		return dlvm_err_set(err, -EROFS,
				    "%s: shared VG: start dlvmd with --host-id to "
				    "change it",
				    name);
	if (!s)
		return dlvm_err_set(err, -EROFS,
				    "%s: shared VG: this host has not joined its "
				    "lockspace",
				    name);
	if (s->refused[0])
		return dlvm_err_set(err, -EROFS, "%s", s->refused);
	pthread_mutex_lock(&s->mu);
	bool lost = s->lost;
	pthread_mutex_unlock(&s->mu);
	if (lost)
		return dlvm_err_set(err, -EIO, "%s", s->lost_msg);
	if (dlvm_fence_is_shut(s->fence))
		return dlvm_err_set(err, -EIO,
				    "%s: this host fenced itself: it changes the VG no more "
				    "(restart dlvmd to rejoin)",
				    name);
	if (s->holding)
		return 0;
	const struct dlvm_lease_timeouts *t = dlvm_lockspace_timeouts(s->ls);
	uint64_t t0 = dlvm_now_ms();
	unsigned seed = (unsigned)(dlvm_now_ns() ^ (uint64_t)ctx->host_id * 7919);
	for (;;) {
		struct dlvm_err e = { 0 };
		int r = dlvm_paxos_acquire(s->ls, 0, DLVM_LEASE_EXCLUSIVE, &s->vg_lease, &e);
		if (!r) {
			s->holding = true;
			return 0;
		}
		uint64_t ms = dlvm_now_ms() - t0;
		uint64_t limit = ctx->lease_wait_ms ? ctx->lease_wait_ms
						    : DLVM_MAX(2 * t->io_timeout_ms,
							       (uint64_t)VG_LEASE_WAIT_MS);
		if (r != -EBUSY || ms >= limit)
			return dlvm_err_set(err, r, "%s: VG lease: %s", name, e.msg);
		struct timespec d = { 0, (long)(1 + rand_r(&seed) % 10) * 1000000L };
		nanosleep(&d, NULL);
	}
}

void drop_vg_leases(struct dlvm_ctx *ctx, json_t *resp)
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
				log_error(DLVM_LOG_LEASE, "%s: VG lease: release: %s", s->vg_name,
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
			if ((vg->info.flags & DLVM_VG_SHARED) &&
			    reload_if_changed(ctx, vg, false, &e))
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
	char(*copies)[DLVM_NAME_MAX + 1] = calloc(nn ? nn : 1, sizeof(*copies));
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
		return dlvm_err_set(err, -EROFS,
				    "%s: shared VG: this host has not joined its "
				    "lockspace",
				    vg->info.name);
	if ((r = dlvm_lockspace_hosts(s->ls, &h, &n, err)))
		return r;
	for (size_t i = 0; i < n; i++) {
		if (h[i].host_id == ctx->host_id ||
		    (h[i].state != DLVM_HOST_LIVE && h[i].state != DLVM_HOST_FAIL))
			continue;
		r = dlvm_err_set(err, -EBUSY,
				 "%s: host id %" PRIu32 " '%s' is still in the "
				 "lockspace: stop its dlvmd first",
				 vg->info.name, h[i].host_id, h[i].name);
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
