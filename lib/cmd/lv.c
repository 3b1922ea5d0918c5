/* SPDX-License-Identifier: MIT */
/* lvcreate, lvremove, lvextend, lvreduce, lvresize, lvrename, lvchange, lvs */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/jobs/jobs.h"
#include "lib/cmd/cmd_int.h"

/* Zero the first 4 KiB of a new LV (as LVM does) so an old signature left by
 * a removed LV is not found again. */
static int zero_head(struct dlvm_vg *vg, struct dlvm_lv *lv, struct dlvm_err *err)
{
	const struct dlvm_seg_desc *s = lv->segs[0];
	struct dlvm_pv *pv = dlvm_pv_find_id(vg, s->area[0].pv_id);
	uint8_t *buf = dlvm_io_alloc(4096);
	int r;

	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	r = dlvm_dev_write(pv->dev, buf, 4096,
			   pv->d.pe_start + s->area[0].pe_start * vg->info.extent_size, err);
	free(buf);
	return r;
}

static void next_free_name(const struct dlvm_vg *vg, char *out, size_t len)
{
	for (unsigned i = 0;; i++) {
		snprintf(out, len, "lvol%u", i);
		if (!dlvm_lv_find(vg, out))
			return;
	}
}

/*
 * Copy a VG or LV name given on the command line into a name buffer
 * (DLVM_NAME_MAX + 1 bytes). A longer name is refused rather than cut, as a
 * cut name could pick out another object.
 */
static int copy_name(char *dst, const char *src, const char *what, struct dlvm_err *err)
{
	if (!src)
		return dlvm_err_set(err, -EINVAL, "%s name is missing", what);
	if (strlen(src) > DLVM_NAME_MAX)
		return dlvm_err_set(err, -EINVAL, "%s name '%.20s...' is longer than %d characters",
				    what, src, DLVM_NAME_MAX);
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

/* The target of lvcreate: "VG", or "VG/LV" whose LV name must agree with
 * -n (when given). *name becomes the LV name (lvname's buffer) or stays. */
static int lvcreate_target(const char *target, const char **name, char *vgname, char *lvname,
			   struct dlvm_err *err)
{
	int r;

	if (!strchr(target, '/'))
		return copy_name(vgname, target, "VG", err);
	if ((r = split_lv_path(target, vgname, lvname, err)))
		return r;
	if (*name && strcmp(*name, lvname))
		return dlvm_err_set(err, -EINVAL, "lvcreate: two different names given: %s and %s",
				    *name, lvname);
	*name = lvname;
	return 0;
}

/* The VG of an lvcreate and its new LV's name, checked: free and valid. */
static int lvcreate_vg(struct dlvm_ctx *ctx, const char *vgname, const char *name,
		       struct dlvm_vg **vg, struct dlvm_err *err)
{
	int r;

	if ((r = dlvm_ctx_vg(ctx, vgname, vg, err)) ||
	    (name && (r = dlvm_check_name(name, "LV", err))))
		return r;
	if (name && dlvm_lv_find(*vg, name))
		return dlvm_err_set(err, -EEXIST,
				    "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"",
				    name, (*vg)->info.name);
	return 0;
}

/* lvcreate -V SIZE -T VG/POOL [-n NAME], or --thinpool POOL VG */
static int lvcreate_thin(struct dlvm_ctx *ctx, const char *target, const char *name, json_t *opts,
			 json_t *resp, struct dlvm_err *err)
{
	const char *pool = opt_str(opts, "thinpool");
	char vgname[DLVM_NAME_MAX + 1], pooln[DLVM_NAME_MAX + 1];
	struct dlvm_vg *vg;
	int r;

	if (strchr(target, '/')) {
		if ((r = split_lv_path(target, vgname, pooln, err)))
			return r;
		if (pool && strcmp(pool, pooln))
			return dlvm_err_set(err, -EINVAL,
					    "lvcreate: two different pools given: "
					    "%s and %s",
					    pool, pooln);
		json_object_set_new(opts, "thinpool", json_string(pooln));
	} else if ((r = copy_name(vgname, target, "VG", err))) {
		return r;
	}
	if ((r = dlvm_ctx_vg(ctx, vgname, &vg, err)) ||
	    (name && (r = dlvm_check_name(name, "LV", err))))
		return r;
	return thin_lv_create(ctx, vg, name, opts, resp, err);
}

/* The options of a linear or striped LV: -a, -p, -Z. */
static int lvcreate_flags(json_t *opts, bool *on, enum dlvm_hold_mode *mode, uint64_t *flags,
			  bool *zero, struct dlvm_err *err)
{
	const char *perm = opt_str(opts, "permission"), *z = opt_str(opts, "zero");
	int r;

	if ((r = parse_activate("lvcreate", opt_str(opts, "activate"), on, mode, err)))
		return r;
	if (perm && strcmp(perm, "r") && strcmp(perm, "rw"))
		return dlvm_err_set(err, -EINVAL, "lvcreate: -p takes r or rw, not \"%s\"", perm);
	if (z && strcmp(z, "y") && strcmp(z, "n"))
		return dlvm_err_set(err, -EINVAL, "lvcreate: -Z takes y or n, not \"%s\"", z);
	*flags = perm && !strcmp(perm, "r") ? DLVM_LV_READONLY : 0;
	*zero = !z || !strcmp(z, "y");
	return 0;
}

/* A new linear or striped LV: allocated and recorded in one edit, its head
 * zeroed, then activated (held first in a shared VG). */
static int lvcreate_linear(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const char *name, json_t *opts,
			   json_t *args, json_t *resp, struct dlvm_err *err)
{
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_CREATE };
	char lvname[DLVM_NAME_MAX + 1];
	enum dlvm_hold_mode mode;
	uint64_t extents, flags = 0;
	uint32_t *pvs = NULL, ssize;
	uint16_t stripes;
	bool on = false, zero = false;
	size_t npvs;
	int r;

	if ((r = lvcreate_flags(opts, &on, &mode, &flags, &zero, err)) ||
	    (r = parse_stripes(opts, vg, &stripes, &ssize, err)) ||
	    (r = target_extents(vg, opts, 0, false, stripes, &extents, err)))
		return r;
	if (!extents)
		return dlvm_err_set(err, -EINVAL, "lvcreate: size must be larger than zero");
	if (vg->info.max_lv && vg->nlv >= vg->info.max_lv)
		return dlvm_err_set(err, -ENOSPC, "%s: maximum of %u LVs reached", vg->info.name,
				    vg->info.max_lv);
	if ((r = pv_filter(ctx, vg, args, 1, &pvs, &npvs, err)))
		return r;
	r = dlvm_alloc(vg, NULL, extents, stripes, ssize, pvs, npvs, &e.u.lv.segs, &e.u.lv.nseg,
		       err);
	free(pvs);
	if (r)
		return r;
	if (name)
		snprintf(lvname, sizeof(lvname), "%s", name);
	else
		next_free_name(vg, lvname, sizeof(lvname));
	dlvm_lv_create_edit(&e, vg->info.next_lv_id, lvname, flags);
	if ((r = dlvm_txn_commit_edit(vg, &e, err)))
		return r;
	struct dlvm_lv *lv = dlvm_lv_find(vg, lvname);
	if (zero && lv->nseg) {
		struct dlvm_err ze = { 0 };
		if (zero_head(vg, lv, &ze))
			resp_warning(resp, "%s/%s: could not zero the first 4 KiB: %s",
				     vg->info.name, lvname, ze.msg);
	}
	if (on) {
		/* in a shared VG the LV is locked to this host first */
		struct dlvm_err ae = { 0 };
		if (((vg->info.flags & DLVM_VG_SHARED) && shared_lv_hold(ctx, vg, lv, mode, &ae)) ||
		    activate(ctx, vg, lv, NULL, &ae))
			resp_warning(resp, "%s/%s: created but not activated: %s", vg->info.name,
				     lvname, ae.msg);
	}
	resp_message(resp, "Logical volume \"%s\" created.", lvname);
	return 0;
}

static int lvcreate_run(struct dlvm_ctx *ctx, json_t *opts, json_t *args, json_t *resp,
			struct dlvm_err *err)
{
	const char *name = opt_str(opts, "name"), *type = opt_str(opts, "type");
	const char *target = arg_str(args, 0);
	char vgname[DLVM_NAME_MAX + 1], lvname[DLVM_NAME_MAX + 1];
	struct dlvm_vg *vg;
	int r;

	if (!target)
		return dlvm_err_set(err, -EINVAL, "lvcreate: give the volume group");
	if (opt_flag(opts, "snapshot") || opt_flag(opts, "clone")) {
		if (opt_flag(opts, "snapshot") && opt_flag(opts, "clone"))
			return dlvm_err_set(err, -EINVAL,
					    "lvcreate: -s and --clone exclude each other");
		if (!strchr(target, '/'))
			return dlvm_err_set(err, -EINVAL, "lvcreate %s: give the source as VG/LV",
					    opt_flag(opts, "clone") ? "--clone" : "-s");
		return thin_snapshot_create(ctx, target, name, opt_flag(opts, "clone"), opts, resp,
					    err);
	}
	bool thin = opt_flag(opts, "thin") || opt_str(opts, "virtualsize") ||
		    opt_str(opts, "thinpool");
	if (type && strcmp(type, "thin-pool") && strcmp(type, "thin") && strcmp(type, "linear") &&
	    strcmp(type, "striped"))
		return dlvm_err_set(err, -EINVAL,
				    "lvcreate: --type %s: use linear, striped, thin or "
				    "thin-pool",
				    type);
	if ((type && !strcmp(type, "thin-pool")) ||
	    (opt_flag(opts, "thin") && !opt_str(opts, "virtualsize"))) {
		/* lvcreate --type thin-pool -L SIZE -n POOL VG, or -T -L SIZE VG/POOL */
		if ((r = lvcreate_target(target, &name, vgname, lvname, err)) ||
		    (r = lvcreate_vg(ctx, vgname, name, &vg, err)))
			return r;
		return thin_pool_create(ctx, vg, name, opts, args, resp, err);
	}
	if (thin || (type && !strcmp(type, "thin")))
		return lvcreate_thin(ctx, target, name, opts, resp, err);
	if (opt_str(opts, "chunksize") || opt_str(opts, "poolmetadatasize"))
		return dlvm_err_set(err, -EINVAL,
				    "lvcreate: --chunksize and --poolmetadatasize are "
				    "for thin pools (--type thin-pool)");
	/* LVM also accepts VG/LV */
	if ((r = lvcreate_target(target, &name, vgname, lvname, err)) ||
	    (r = lvcreate_vg(ctx, vgname, name, &vg, err)))
		return r;
	return lvcreate_linear(ctx, vg, name, opts, args, resp, err);
}
/* lvcreate --addtag/--property: checked before anything is created, set
 * once the LV is there (a second transaction of the same command). */
DLVM_CMD_FN(cmd_lvcreate)
{
	const char *name = opt_str(opts, "name"), *target = arg_str(args, 0);
	bool props = lv_props_given(opts),
	     from = opt_flag(opts, "snapshot") || opt_flag(opts, "clone");
	char vgname[DLVM_NAME_MAX + 1], lvname[DLVM_NAME_MAX + 1];
	struct dlvm_vg *vg;
	struct dlvm_lv *lv;
	int r;

	if (props) {
		if ((r = lv_props_check(opts, err)))
			return dlvm_err_prefix(err, r, "lvcreate: ");
		if (!target)
			return dlvm_err_set(err, -EINVAL, "lvcreate: give the volume group");
		if (strchr(target, '/')) {
			if ((r = split_lv_path(target, vgname, lvname, err)))
				return r;
			if (!name && !from)
				name = lvname;
		} else if ((r = copy_name(vgname, target, "VG", err))) {
			return r;
		}
		if (!name)
			return dlvm_err_set(err, -EINVAL,
					    "lvcreate --addtag/--property: name the new LV (-n "
					    "NAME)");
	}
	if ((r = lvcreate_run(ctx, opts, args, resp, err)) || !props)
		return r;
	char newname[DLVM_NAME_MAX + 1];
	snprintf(newname, sizeof(newname), "%s", name);
	if ((r = dlvm_ctx_vg(ctx, vgname, &vg, err)))
		return r;
	if (!(lv = dlvm_lv_find(vg, newname)))
		return dlvm_err_set(err, -ENOENT, "%s/%s: created, then not found", vgname,
				    newname);
	if ((r = lv_props_change(vg, lv, opts, resp, err)))
		return dlvm_err_prefix(err, r, "created, but without its tags and properties: ");
	return 0;
}

DLVM_CMD_FN(cmd_lvremove)
{
	size_t n = json_array_size(args);
	bool force = opt_flag(opts, "force");
	int r;

	if (!n)
		return dlvm_err_set(err, -EINVAL, "lvremove: give at least one VG/LV");
	/* check all first: bad input changes nothing */
	for (size_t i = 0; i < n; i++) {
		struct dlvm_vg *vg;
		struct dlvm_lv *lv;
		if ((r = find_lv(ctx, arg_str(args, i), &vg, &lv, err)) ||
		    (r = dlvm_lv_refuse_internal(vg, lv, "remove", err)) ||
		    (r = refuse_busy(ctx, vg, lv, force, err)) ||
		    (r = thin_refuse_remove(vg, lv, err)) ||
		    (r = shared_lv_refuse_elsewhere(ctx, vg, lv, "remove", err)))
			return r;
		/* the second copy would fail after the first was removed;
		 * compare the LVs found, as /dev/vg0/a and vg0/a are one LV */
		for (size_t j = 0; j < i; j++) {
			struct dlvm_vg *vg2;
			struct dlvm_lv *lv2;
			if (!find_lv(ctx, arg_str(args, j), &vg2, &lv2, err) && lv2 == lv)
				return dlvm_err_set(err, -EINVAL,
						    "lvremove: %s/%s is given more "
						    "than once",
						    vg->info.name, lv->name);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct dlvm_vg *vg;
		struct dlvm_lv *lv;
		char name[DLVM_NAME_MAX + 1];
		if ((r = find_lv(ctx, arg_str(args, i), &vg, &lv, err)))
			return r;
		if ((r = deactivate(ctx, vg, lv, force, err)))
			return r;
		snprintf(name, sizeof(name), "%s", lv->name);
		if (lv->flags & (DLVM_LV_THIN | DLVM_LV_THIN_POOL)) {
			if ((r = thin_remove(ctx, vg, lv, resp, err)))
				return r;
		} else {
			struct dlvm_edit e = { .type = DLVM_EDIT_LV_REMOVE };
			e.u.lv.id = lv->id;
			if ((r = dlvm_txn_commit_edit(vg, &e, err)))
				return r;
		}
		resp_message(resp, "Logical volume \"%s\" successfully removed.", name);
	}
	return 0;
}
enum resize_mode { GROW, SHRINK, ANY };

/* The shrinking half of lv_resize: to `target` extents, with -f, when no
 * client is connected and no other host has lv active. */
static int lv_shrink(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *opts,
		     bool grow_only, uint64_t target, const char *cur, const char *want,
		     struct dlvm_err *err)
{
	struct dlvm_seg_desc **segs = NULL;
	uint32_t nseg = 0;
	int r;

	if (grow_only)
		return dlvm_err_set(err, -EINVAL,
				    "New size given (%s) is not larger than the "
				    "current size (%s): use lvreduce -f",
				    want, cur);
	if (!opt_flag(opts, "force"))
		return dlvm_err_set(err, -EINVAL,
				    "Reducing %s/%s from %s to %s would cut the "
				    "data past the new end: use -f to do it",
				    vg->info.name, lv->name, cur, want);
	if (lv_clients(ctx, vg, lv))
		return dlvm_err_set(err, -EBUSY,
				    "%s/%s: cannot reduce while NBD clients are "
				    "connected",
				    vg->info.name, lv->name);
	if ((r = shared_lv_refuse_elsewhere(ctx, vg, lv, "reduce", err)))
		return r;
	/* striped segments shrink in whole rows */
	for (uint32_t i = 0; i < lv->nseg; i++) {
		const struct dlvm_seg_desc *s = lv->segs[i];
		if (target > s->le_start && target < s->le_start + s->le_count &&
		    (target - s->le_start) % s->stripes)
			target += s->stripes - (target - s->le_start) % s->stripes;
	}
	if ((r = dlvm_segs_cut(lv, target, &segs, &nseg)))
		return dlvm_err_set(err, r, "out of memory");
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_SEGMENTS };
	e.u.lv.id = lv->id;
	e.u.lv.segs = segs;
	e.u.lv.nseg = nseg;
	return dlvm_txn_commit_edit(vg, &e, err);
}

static int lv_resize(struct dlvm_ctx *ctx, json_t *opts, json_t *args, json_t *resp,
		     enum resize_mode mode, struct dlvm_err *err)
{
	struct dlvm_vg *vg;
	struct dlvm_lv *lv;
	uint64_t target;
	uint16_t stripes;
	uint32_t ssize;
	int r;

	if ((r = find_lv(ctx, arg_str(args, 0), &vg, &lv, err)) ||
	    (r = dlvm_lv_refuse_internal(vg, lv, "resize", err)))
		return r;
	if (opt_str(opts, "poolmetadatasize") && !(lv->flags & DLVM_LV_THIN_POOL))
		return dlvm_err_set(err, -EINVAL, "%s/%s: --poolmetadatasize is for thin pools",
				    vg->info.name, lv->name);
	if (lv->flags & DLVM_LV_THIN) {
		if (mode == GROW && opt_str(opts, "size") && *opt_str(opts, "size") == '-')
			return dlvm_err_set(err, -EINVAL, "lvextend: the size cannot shrink");
		return thin_resize(ctx, vg, lv, opts, resp, err);
	}
	if ((lv->flags & DLVM_LV_THIN_POOL) && mode != GROW)
		return dlvm_err_set(err, -ENOTSUP, "%s/%s: thin pools can only grow (lvextend)",
				    vg->info.name, lv->name);
	if ((r = parse_stripes(opts, vg, &stripes, &ssize, err)))
		return r;
	if (opt_str(opts, "poolmetadatasize")) {
		if (!(lv->flags & DLVM_LV_THIN_POOL))
			return dlvm_err_set(err, -EINVAL,
					    "%s/%s: --poolmetadatasize is for thin "
					    "pools",
					    vg->info.name, lv->name);
		bool data = opt_str(opts, "size") || opt_str(opts, "extents");
		/* the data's new size is checked before the metadata grows */
		uint64_t cur = dlvm_lv_bytes(vg, lv) / vg->info.extent_size;
		if (data && (r = target_extents(vg, opts, cur, true, 1, &target, err)))
			return r;
		if (data && target <= cur)
			return dlvm_err_set(err, -EINVAL,
					    "%s/%s: -L/-l must grow the pool (now %" PRIu64
					    " extents)",
					    vg->info.name, lv->name, cur);
		if ((r = thin_pool_grow_meta(ctx, vg, lv, opts, resp, err)))
			return r;
		if (!data)
			return 0;
	}
	/* a shared VG's pool may have handed every extent out as slabs: it
	 * then has no segment of its own left, and its size counts the slabs */
	const struct dlvm_seg_desc *last = lv->nseg ? lv->segs[lv->nseg - 1] : NULL;
	if (last && !opt_str(opts, "stripes") && last->stripes > 1) { /* inherit, as LVM does */
		stripes = last->stripes;
		if (!opt_str(opts, "stripesize"))
			ssize = last->stripe_size;
	}
	uint64_t now = dlvm_lv_bytes(vg, lv) / vg->info.extent_size;
	if ((r = target_extents(vg, opts, now, true, 1, &target, err)))
		return r;
	char cur[32], want[32];
	dlvm_format_size(now * vg->info.extent_size, 'h', cur, sizeof(cur));
	dlvm_format_size(target * vg->info.extent_size, 'h', want, sizeof(want));
	if (target == now)
		return dlvm_err_set(err, -EINVAL,
				    "New size (%" PRIu64 " extents) matches existing "
				    "size (%" PRIu64 " extents).",
				    target, now);
	if (target == 0)
		return dlvm_err_set(err, -EINVAL, "%s/%s: cannot resize to zero", vg->info.name,
				    lv->name);
	if (target > now) {
		if (mode == SHRINK)
			return dlvm_err_set(err, -EINVAL,
					    "New size given (%s) is larger than the "
					    "current size (%s): use lvextend",
					    want, cur);
		uint32_t *pvs;
		size_t npvs;
		if ((r = pv_filter(ctx, vg, args, 1, &pvs, &npvs, err)))
			return r;
		r = dlvm_lv_extend(vg, lv, target - now, stripes, ssize, pvs, npvs, err);
		free(pvs);
	} else {
		r = lv_shrink(ctx, vg, lv, opts, mode == GROW, target, cur, want, err);
	}
	if (r)
		return r;
	if (lv->flags & DLVM_LV_THIN_POOL) {
		/* the store hands out the new chunks from now on */
		struct dlvm_err pe = { 0 };
		if (dlvm_thin_pool_resized(vg, lv, &pe))
			resp_warning(resp,
				     "%s/%s: extended, but the pool does not use the new space "
				     "yet: %s",
				     vg->info.name, lv->name, pe.msg);
	}
	if (is_active(ctx, vg, lv)) {
		struct dlvm_err ae = { 0 };
		if (activate(ctx, vg, lv, NULL, &ae))
			resp_warning(resp, "%s/%s: resized, but the export was not refreshed: %s",
				     vg->info.name, lv->name, ae.msg);
	}
	dlvm_format_size(dlvm_lv_bytes(vg, lv), 'h', want, sizeof(want));
	resp_message(resp, "Size of logical volume %s/%s changed from %s to %s.", vg->info.name,
		     lv->name, cur, want);
	resp_message(resp, "Logical volume %s/%s successfully resized.", vg->info.name, lv->name);
	return 0;
}

DLVM_CMD_FN(cmd_lvextend)
{
	return lv_resize(ctx, opts, args, resp, GROW, err);
}

DLVM_CMD_FN(cmd_lvreduce)
{
	return lv_resize(ctx, opts, args, resp, SHRINK, err);
}

DLVM_CMD_FN(cmd_lvresize)
{
	return lv_resize(ctx, opts, args, resp, ANY, err);
}

DLVM_CMD_FN(cmd_lvrename)
{
	size_t n = json_array_size(args);
	char vgn[DLVM_NAME_MAX + 1], oldn[DLVM_NAME_MAX + 1], newn[DLVM_NAME_MAX + 1];
	struct dlvm_vg *vg;
	struct dlvm_lv *lv;
	int r;

	(void)opts;
	if (n == 2) {
		if ((r = split_lv_path(arg_str(args, 0), vgn, oldn, err)))
			return r;
		const char *nn = arg_str(args, 1);
		const char *slash = strrchr(nn, '/');
		if (slash) {
			char v2[DLVM_NAME_MAX + 1];
			if ((r = split_lv_path(nn, v2, newn, err)))
				return r;
			if (strcmp(v2, vgn))
				return dlvm_err_set(err, -EINVAL,
						    "lvrename: cannot move an LV to "
						    "another VG");
		} else if ((r = copy_name(newn, nn, "LV", err))) {
			return r;
		}
	} else if (n == 3) {
		if ((r = copy_name(vgn, arg_str(args, 0), "VG", err)) ||
		    (r = copy_name(oldn, arg_str(args, 1), "LV", err)) ||
		    (r = copy_name(newn, arg_str(args, 2), "LV", err)))
			return r;
	} else {
		return dlvm_err_set(err, -EINVAL, "lvrename: give VG/OLD NEW or VG OLD NEW");
	}
	if ((r = dlvm_ctx_vg(ctx, vgn, &vg, err)))
		return r;
	if (!(lv = dlvm_lv_find(vg, oldn)))
		return dlvm_err_set(err, -ENOENT,
				    "Existing logical volume \"%s\" not found in "
				    "volume group \"%s\"",
				    oldn, vgn);
	if ((r = dlvm_lv_refuse_internal(vg, lv, "rename", err)) ||
	    (r = shared_lv_refuse_elsewhere(ctx, vg, lv, "rename", err)))
		return r;
	if ((r = dlvm_check_name(newn, "LV", err)))
		return r;
	if (dlvm_lv_find(vg, newn))
		return dlvm_err_set(err, -EEXIST,
				    "Logical Volume \"%s\" already exists in volume "
				    "group \"%s\"",
				    newn, vgn);
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_RENAME };
	e.u.lv.id = lv->id;
	snprintf(e.u.lv.name, sizeof(e.u.lv.name), "%s", newn);
	r = dlvm_txn_commit_edit(vg, &e, err);
	if (r)
		return r;
	if (ctx->hooks) {
		struct dlvm_err ae = { 0 };
		if (activate(ctx, vg, lv, oldn, &ae))
			resp_warning(resp, "%s/%s: renamed, but the export was not renamed: %s",
				     vgn, newn, ae.msg);
	}
	resp_message(resp, "Renamed \"%s\" to \"%s\" in volume group \"%s\"", oldn, newn, vgn);
	return 0;
}

/* A thin snapshot: read-only with an origin, unless it is a clone made
 * read-only by lvchange -p r (which marks it with PROP_RO_CLONE). */
static bool is_snapshot(const struct dlvm_lv *lv)
{
	return (lv->flags & DLVM_LV_THIN) && lv->thin.origin_id && (lv->flags & DLVM_LV_READONLY) &&
	       !dlvm_prop_get(&lv->props, PROP_RO_CLONE);
}

/* The flags edit of lvchange -p; a clone made read-only is marked so that
 * it is not taken for a snapshot (and the mark goes when it is writable). */
static int permission_commit(struct dlvm_vg *vg, struct dlvm_lv *lv, uint64_t flags,
			     struct dlvm_err *err)
{
	struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_FLAGS };
	bool clone = (lv->flags & DLVM_LV_THIN) && lv->thin.origin_id;
	bool marked = dlvm_prop_get(&lv->props, PROP_RO_CLONE);
	struct dlvm_txn t;
	int r;

	e.u.lv.id = lv->id;
	e.u.lv.flags = flags;
	dlvm_txn_init(&t);
	r = dlvm_txn_push(&t, &e, err);
	if (!r && clone && (flags & DLVM_LV_READONLY) && !marked)
		r = dlvm_txn_push_prop(vg, &t, lv->id, PROP_RO_CLONE, "", err);
	if (!r && !(flags & DLVM_LV_READONLY) && marked)
		r = dlvm_txn_push_prop(vg, &t, lv->id, PROP_RO_CLONE, NULL, err);
	if (!r)
		r = dlvm_txn_commit(vg, &t, err);
	dlvm_txn_release(&t);
	return r;
}

/* lvchange -p r|rw of one LV: the thin store's device flag, the LV's
 * flags, and the export (with force, open writers are cut off). */
static int lv_set_permission(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
			     const char *p, bool force, json_t *resp, struct dlvm_err *err)
{
	int r;

	if (p && (lv->flags & DLVM_LV_THIN)) {
		/* the store refuses writes to a read-only device too */
		struct dlvm_thin_pool *pool;
		if ((r = shared_family_refuse_elsewhere(ctx, vg, lv, "change", err)) ||
		    (r = dlvm_thin_lv_store(vg, lv, true, &pool, err)))
			return r;
		r = dlvm_thin_pool_set_flags(pool, lv->id,
					     !strcmp(p, "r") ? DLVM_THIN_DEV_READONLY : 0, err);
		if (r || (r = dlvm_thin_pool_commit(pool, err)))
			return r;
	}
	if (p) {
		uint64_t flags = !strcmp(p, "r") ? lv->flags | DLVM_LV_READONLY
						 : lv->flags & ~DLVM_LV_READONLY;
		if (flags == lv->flags) {
			resp_message(resp, "Logical volume %s/%s is already %s.", vg->info.name,
				     lv->name, !strcmp(p, "r") ? "read only" : "writable");
		} else {
			if ((r = permission_commit(vg, lv, flags, err)))
				return r;
			/* the reload switches the permission of open
			 * connections too (their next request); with -f they
			 * are dropped first */
			if (is_active(ctx, vg, lv)) {
				if (force && lv_clients(ctx, vg, lv) &&
				    (r = ctx->hooks->deactivate(ctx->hooks->priv, vg, lv, true,
								err)))
					return r;
				if ((r = activate(ctx, vg, lv, NULL, err)))
					return r;
			}
			resp_message(resp, "Logical volume %s/%s changed.", vg->info.name,
				     lv->name);
		}
	}
	return 0;
}

DLVM_CMD_FN(cmd_lvchange)
{
	const char *a = opt_str(opts, "activate"), *p = opt_str(opts, "permission");
	bool force = opt_flag(opts, "force");
	size_t n = json_array_size(args);
	int r;

	bool props = lv_props_given(opts);
	if (!a && !p && !props)
		return dlvm_err_set(err, -EINVAL,
				    "lvchange: nothing to change (give -a y|n, -p r|rw, "
				    "--addtag, --deltag, --property or --delproperty)");
	bool on = false;
	enum dlvm_hold_mode mode = DLVM_HOLD_EXCLUSIVE;
	if (a && (r = parse_activate("lvchange", a, &on, &mode, err)))
		return r;
	if (p && strcmp(p, "r") && strcmp(p, "rw"))
		return dlvm_err_set(err, -EINVAL, "lvchange: -p takes r or rw, not \"%s\"", p);
	if (a && !ctx->hooks)
		return dlvm_err_set(err, -ENOTSUP,
				    "lvchange -a: activation needs a running dlvmd "
				    "(start it, or give --socket)");
	if (!n)
		return dlvm_err_set(err, -EINVAL, "lvchange: give at least one VG/LV");
	for (size_t i = 0; i < n; i++) {
		struct dlvm_vg *vg;
		struct dlvm_lv *lv;
		if ((r = find_lv(ctx, arg_str(args, i), &vg, &lv, err)) ||
		    (r = dlvm_lv_refuse_internal(vg, lv, "change", err)))
			return r;
		if (a && !on && (r = refuse_busy(ctx, vg, lv, force, err)))
			return r;
		if (a && on && (lv->flags & DLVM_LV_THIN_POOL))
			return dlvm_err_set(err, -EINVAL,
					    "%s/%s is a thin pool: activate its thin "
					    "volumes",
					    vg->info.name, lv->name);
		if (p && !strcmp(p, "rw") && is_snapshot(lv))
			return dlvm_err_set(err, -EINVAL,
					    "%s/%s is a snapshot and stays read-only: "
					    "make a writable clone (lvcreate --clone)",
					    vg->info.name, lv->name);
	}
	for (size_t i = 0; i < n; i++) {
		struct dlvm_vg *vg;
		struct dlvm_lv *lv;
		if ((r = find_lv(ctx, arg_str(args, i), &vg, &lv, err)))
			return r;
		if (props && (r = lv_props_change(vg, lv, opts, resp, err)))
			return r;
		if (p && (r = lv_set_permission(ctx, vg, lv, p, force, resp, err)))
			return r;
		bool shared = vg->info.flags & DLVM_VG_SHARED;
		if (a && on) {
			/* shared VG: lock first (or change the mode), then export */
			if (shared && (r = shared_lv_hold(ctx, vg, lv, mode, err)))
				return r;
			if (!is_active(ctx, vg, lv) && (r = activate(ctx, vg, lv, NULL, err)))
				return r;
		} else if (a && !on) {
			if ((r = deactivate(ctx, vg, lv, force, err)))
				return r;
			if (shared && (r = shared_lv_unhold(ctx, vg, lv, err)))
				return r;
		}
	}
	return 0;
}

void lv_attr(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv, char out[11])
{
	memcpy(out, "-wi-------", 11);
	if (lv->flags & DLVM_LV_THIN_POOL)
		out[0] = 't';
	else if (lv->flags & DLVM_LV_THIN)
		out[0] = 'V';
	else if (lv->flags & DLVM_LV_THIN_META)
		out[0] = 'e';
	if (lv->flags & DLVM_LV_READONLY)
		out[1] = 'r';
	if (is_active(ctx, vg, lv))
		out[4] = 'a';
	if (lv_clients(ctx, vg, lv))
		out[5] = 'o';
}

/* The devices field, as LVM prints it: PV(first extent) of every area of
 * every segment, comma-separated ("" for a thin volume); NULL on ENOMEM. */
static char *lv_devices(const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	for (uint32_t s = 0; s < lv->nseg; s++)
		for (uint16_t k = 0; k < lv->segs[s]->stripes; k++) {
			const struct dlvm_area *a = &lv->segs[s]->area[k];
			const struct dlvm_pv *pv = dlvm_pv_find_id(vg, a->pv_id);
			fprintf(f, "%s%s(%" PRIu64 ")", s || k ? "," : "",
				pv && pv->dev ? pv->dev->path : "[unknown]", a->pe_start);
		}
	if (fclose(f)) {
		free(out);
		return NULL;
	}
	return out;
}

DLVM_CMD_FN(cmd_lvs)
{
	json_t *rep = json_object(), *rows = json_array();
	size_t n = json_array_size(args);
	bool all = opt_flag(opts, "all");

	json_object_set_new(rep, "kind", json_string("lv"));
	json_object_set_new(rep, "rows", rows);
	json_object_set_new(resp, "report", rep);
	for (size_t i = 0; i < n; i++) {
		const char *s = arg_str(args, i);
		struct dlvm_vg *vg;
		struct dlvm_lv *lv;
		int r = strchr(s, '/') ? find_lv(ctx, s, &vg, &lv, err)
				       : dlvm_ctx_vg(ctx, s, &vg, err);
		if (r)
			return r;
	}
	for (size_t v = 0; v < ctx->nvg; v++) {
		const struct dlvm_vg *vg = ctx->vgs[v];
		for (size_t l = 0; l < vg->nlv; l++) {
			const struct dlvm_lv *lv = vg->lvs[l];
			bool want = !n;
			char full[2 * DLVM_NAME_MAX + 2];
			snprintf(full, sizeof(full), "%s/%s", vg->info.name, lv->name);
			for (size_t i = 0; i < n; i++)
				want |= !strcmp(arg_str(args, i), vg->info.name) ||
					!strcmp(arg_str(args, i), full);
			if (!want || (dlvm_lv_is_internal(lv) && !all))
				continue;
			char u[DLVM_UUID_STR], attr[11], shown[DLVM_NAME_MAX + 3];
			snprintf(shown, sizeof(shown), dlvm_lv_is_internal(lv) ? "[%s]" : "%s",
				 lv->name);
			dlvm_uuid_unparse(lv->uuid, u);
			lv_attr(ctx, vg, lv, attr);
			json_t *row = json_object();
			json_object_set_new(row, "lv_name", json_string(shown));
			json_object_set_new(row, "vg_name", json_string(vg->info.name));
			json_object_set_new(row, "lv_attr", json_string(attr));
			json_object_set_new(row, "lv_size",
					    json_integer((json_int_t)dlvm_lv_bytes(vg, lv)));
			json_object_set_new(row, "lv_uuid", json_string(u));
			json_object_set_new(row, "lv_full_name", json_string(full));
			json_object_set_new(row, "seg_count", json_integer(lv->nseg));
			uint16_t st = lv->nseg ? lv->segs[0]->stripes : 0;
			json_object_set_new(row, "stripes", json_integer(st));
			json_object_set_new(row, "stripe_size",
					    json_integer(st > 1 ? lv->segs[0]->stripe_size : 0));
			json_object_set_new(row, "segtype",
					    json_string(lv->flags & DLVM_LV_THIN_POOL ? "thin-pool"
							: lv->flags & DLVM_LV_THIN    ? "thin"
							: st > 1                      ? "striped"
										      : "linear"));
			char *devs = lv_devices(vg, lv);
			if (!devs) {
				json_decref(row);
				return dlvm_err_set(err, -ENOMEM, "out of memory");
			}
			json_object_set_new(row, "devices", json_string(devs));
			free(devs);
			if (lv->flags & (DLVM_LV_THIN | DLVM_LV_THIN_POOL)) {
				thin_report(ctx, (struct dlvm_vg *)vg, lv, row);
			} else {
				json_object_set_new(row, "pool_lv", json_string(""));
				json_object_set_new(row, "origin", json_string(""));
				json_object_set_new(row, "data_percent", json_string(""));
				json_object_set_new(row, "metadata_percent", json_string(""));
			}
			json_object_set_new(row, "lv_active",
					    json_string(is_active(ctx, vg, lv) ? "active" : ""));
			json_object_set_new(row, "lv_permissions",
					    json_string(lv->flags & DLVM_LV_READONLY
									? "read-only"
									: "writeable"));
			json_object_set_new(row, "lv_device_open",
					    json_string(lv_clients(ctx, vg, lv) ? "open" : ""));
			json_object_set_new(row, "nbd_clients",
					    json_integer(lv_clients(ctx, vg, lv)));
			json_object_set_new(row, "nbd_export", json_string(full));
			char hosts[256] = "";
			if (vg->info.flags & DLVM_VG_SHARED)
				shared_lv_hosts(ctx, vg, lv, hosts, sizeof(hosts));
			json_object_set_new(row, "active_hosts", json_string(hosts));
			char tbuf[64] = "";
			time_t ct = (time_t)lv->ctime;
			struct tm tm;
			if (localtime_r(&ct, &tm))
				strftime(tbuf, sizeof(tbuf), "%Y-%m-%d %H:%M:%S %z", &tm);
			json_object_set_new(row, "lv_time", json_string(tbuf));
			if (lv_props_report(lv, row)) {
				json_decref(row);
				return dlvm_err_set(err, -ENOMEM, "out of memory");
			}
			/* a job copying into it (lvconvert --flatten), as LVM
			 * shows a mirror's or pvmove's copy */
			const struct dlvm_job *j = job_running_on(ctx, vg, lv->id);
			if (j)
				json_object_set_new(row, "copy_percent",
						    json_sprintf("%.2f", job_percent(j)));
			else
				json_object_set_new(row, "copy_percent", json_string(""));
			json_array_append_new(rows, row);
		}
	}
	return 0;
}
