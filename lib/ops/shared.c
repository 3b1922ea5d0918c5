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
	return lv->flags & (DLVM_LV_HIDDEN | DLVM_LV_LOCKSPACE);
}

int refuse_internal(const struct dlvm_vg *vg, const struct dlvm_lv *lv, const char *what,
		    struct dlvm_err *err)
{
	if (!lv_is_internal(lv))
		return 0;
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
	if ((r = dlvm_lockspace_new(s->area, NULL, ctx->io_timeout, &s->ls, &e)))
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
	for (size_t i = 0; i < ctx->nshared; i++) {
		shared_leave_one(ctx->shared[i], true);
		shared_free(ctx->shared[i]);
	}
	free(ctx->shared);
	ctx->shared = NULL;
	ctx->nshared = 0;
}

/* ---- vgcreate --shared ---- */

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
	dlvm_vg_free(vg);
	if (resync)
		ctx_resync_stale(ctx, nv);
out:
	free(orig);
	free(devs);
	return r;
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
		if (r != -EBUSY || ms >= 2 * t->io_timeout_ms)
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
		if (dlvm_paxos_release(s->ls, &s->vg_lease, &e))
			resp_warning(resp, "%s: VG lease: release: %s", s->vg_name, e.msg);
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
			if ((vg->info.flags & DLVM_VG_SHARED) && reload_vg(ctx, vg, false, &e))
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
			r = reload_vg(ctx, vg, true, err);
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
