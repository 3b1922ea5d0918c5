/* SPDX-License-Identifier: MIT */
/* vgcreate, vgextend, vgreduce, vgremove, vgrename, vgchange, vgs */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "dlvm/lease.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/cmd/cmd_int.h"
#include "lib/meta/meta.h"

/* Resolve PV arguments args[from..] to orphan PV devices (labelled, in no
 * VG; with into, also one whose metadata area still names into: a vgreduce
 * interrupted before the PV was given back); all or nothing. *opened: the
 * devices this opened (NULL where known before), for ctx_drop_opened if the
 * command fails later. */
static int orphan_pvs(struct dlvm_ctx *ctx, json_t *args, size_t from, const struct dlvm_vg *into,
		      struct dlvm_dev ***out, struct dlvm_dev ***opened_out, size_t *n_out,
		      struct dlvm_err *err)
{
	size_t n = json_array_size(args) - from;
	struct dlvm_dev **devs = calloc(n ? n : 1, sizeof(*devs));
	struct dlvm_dev **opened = calloc(n ? n : 1, sizeof(*opened));
	int r;

	if (!devs || !opened) {
		free(devs);
		free(opened);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const char *path = arg_str(args, from + i);
		struct dlvm_vg *vg;
		struct dlvm_pv_header ph;
		struct dlvm_err e = { 0 };
		if ((r = ctx_device_checked(ctx, path, &devs[i], &vg, &opened[i], err)))
			goto fail;
		if (vg) {
			r = dlvm_err_set(err, -EBUSY, "%s: already in volume group \"%s\"", path,
					 vg->info.name);
			goto fail;
		}
		if ((r = dlvm_pv_read_header(devs[i], &ph, &e))) {
			r = dlvm_err_set(err, r == -ENODATA ? -EINVAL : r, "%s: %s", path,
					 r == -ENODATA ? "is not a PV: run pvcreate on it first"
						       : e.msg);
			goto fail;
		}
		struct dlvm_mda mda = { 0 };
		bool have = !dlvm_mda_read_header(devs[i], &mda, &e);
		if (!have && into) {
			/* a copy that cannot be read would join as a damaged one */
			r = dlvm_err_set(err, e.code,
					 "%s: cannot join a VG (pvcreate -f "
					 "reinitialises it)",
					 e.msg);
			goto fail;
		}
		if (have && into && !dlvm_uuid_is_zero(mda.hdr.vg_uuid) &&
		    memcmp(mda.hdr.vg_uuid, into->info.uuid, 16)) {
			/* the PV of a VG that did not load: never take it over */
			r = dlvm_err_set(err, -EBUSY, "%s: already belongs to a volume group",
					 path);
			goto fail;
		}
		dlvm_err_clear(&e);
		if ((r = dlvm_pv_check_ro_compat(devs[i], &ph, have ? &mda : NULL, &e))) {
			r = dlvm_err_set(err, r,
					 "%s: it cannot join a VG (pvcreate -f "
					 "reinitialises it)",
					 e.msg);
			goto fail;
		}
		for (size_t k = 0; k < i; k++)
			if (devs[k] == devs[i]) {
				r = dlvm_err_set(err, -EINVAL, "%s: given twice", path);
				goto fail;
			}
	}
	*out = devs;
	*opened_out = opened;
	*n_out = n;
	return 0;
fail:
	ctx_drop_opened(ctx, opened, n);
	free(opened);
	free(devs);
	return r;
}

static int parse_extent_size(json_t *opts, uint64_t *es, struct dlvm_err *err)
{
	const char *s = opt_str(opts, "physicalextentsize");
	int r;

	*es = 4ull << 20;
	if (!s)
		return 0;
	if ((r = dlvm_parse_size(s, 1 << 20, es, NULL, err)))
		return dlvm_err_prefix(err, r, "--physicalextentsize: ");
	if (!dlvm_is_pow2(*es) || *es < (64 << 10) || *es > (16ull << 30))
		return dlvm_err_set(err, -EINVAL,
				    "--physicalextentsize %s: must be a power of two "
				    "between 64k and 16g",
				    s);
	return 0;
}

DLVM_CMD_FN(cmd_vgcreate)
{
	const char *name = arg_str(args, 0);
	struct dlvm_dev **devs = NULL, **opened = NULL;
	struct dlvm_vg *vg = NULL, *other;
	uint64_t es;
	size_t n;
	int r;

	if (!name)
		return dlvm_err_set(err, -EINVAL, "vgcreate: give a VG name and at least one PV");
	if ((r = dlvm_check_name(name, "VG", err)))
		return r;
	if (json_array_size(args) < 2)
		return dlvm_err_set(err, -EINVAL,
				    "vgcreate: give at least one PV after the VG name");
	if (!dlvm_ctx_vg(ctx, name, &other, NULL))
		return dlvm_err_set(err, -EEXIST, "A volume group called %s already exists.", name);
	if ((r = parse_extent_size(opts, &es, err)))
		return r;
	bool shared = opt_flag(opts, "shared");
	const char *mh = opt_str(opts, "max-hosts");
	uint32_t max_hosts = DLVM_LEASE_MAX_HOSTS;
	if (mh && !shared)
		return dlvm_err_set(err, -EINVAL, "vgcreate: --max-hosts needs --shared");
	if (mh) {
		char *end;
		unsigned long v = strtoul(mh, &end, 10);
		if (!*mh || *end || v < 1 || v > DLVM_LEASE_MAX_HOSTS)
			return dlvm_err_set(err, -EINVAL, "--max-hosts %s: must be 1 to %u", mh,
					    DLVM_LEASE_MAX_HOSTS);
		max_hosts = (uint32_t)v;
	}
	if ((r = orphan_pvs(ctx, args, 1, NULL, &devs, &opened, &n, err)))
		return r;
	if ((r = dlvm_vg_create(name, es, devs, n, &vg, err)))
		goto out;
	if (shared && (r = shared_vg_setup(ctx, vg, devs[0], max_hosts, err))) {
		/* give the PVs back: no half-made shared VG stays behind */
		dlvm_vg_create_undo(devs, n, &vg->info, err);
		for (size_t i = 0; i < n; i++) {
			for (size_t p = 0; p < vg->npv; p++)
				if (vg->pvs[p]->dev == devs[i])
					vg->pvs[p]->dev = NULL;
		}
		dlvm_vg_free(vg);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ctx_take_orphan(ctx, devs[i]);
		ctx_devices_file_add(ctx, devs[i]->path, NULL);
	}
	ctx_add_vg(ctx, vg);
	resp_message(resp, "Volume group \"%s\" successfully created%s", name,
		     shared ? " (shared: lease area in [lvmlock])" : "");
out:
	if (r)
		ctx_drop_opened(ctx, opened, n);
	free(opened);
	free(devs);
	return r;
}

DLVM_CMD_FN(cmd_vgextend)
{
	struct dlvm_vg *vg;
	struct dlvm_dev **devs = NULL, **opened = NULL;
	struct dlvm_txn t;
	size_t n;
	int r;

	(void)opts;
	if ((r = dlvm_ctx_vg(ctx, arg_str(args, 0), &vg, err)))
		return r;
	if (json_array_size(args) < 2)
		return dlvm_err_set(err, -EINVAL,
				    "vgextend: give at least one PV after the VG name");
	if ((r = orphan_pvs(ctx, args, 1, vg, &devs, &opened, &n, err)))
		return r;
	dlvm_txn_init(&t);
	uint32_t id = vg->info.next_pv_id;
	struct dlvm_pv_header *phs = calloc(n, sizeof(*phs));
	if (!phs) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct dlvm_edit e = { .type = DLVM_EDIT_PV_ADD };
		if ((r = dlvm_pv_read_header(devs[i], &phs[i], err)))
			goto out;
		e.u.pv.id = id++;
		memcpy(e.u.pv.uuid, phs[i].pv_uuid, 16);
		e.u.pv.pe_start = phs[i].data_offset;
		e.u.pv.pe_count = phs[i].data_size / vg->info.extent_size;
		e.u.pv.dev_size = phs[i].device_size;
		e.u.pv.sector_size = phs[i].sector_size;
		if (!e.u.pv.pe_count) {
			r = dlvm_err_set(err, -EINVAL, "%s: smaller than one extent",
					 devs[i]->path);
			goto out;
		}
		dlvm_txn_add(&t, &e);
	}
	if ((r = dlvm_txn_commit(vg, &t, err)))
		goto out;
	/* The new PVs join the model; their copies get a checkpoint now (a
	 * crash before that leaves them stale, rewritten by the next change). */
	for (size_t i = 0; i < n; i++) {
		struct dlvm_pv *pv = dlvm_pv_find_id(vg, t.edits[i].u.pv.id);
		struct dlvm_err e = { 0 };
		pv->dev = devs[i];
		pv->hdr = phs[i];
		ctx_take_orphan(ctx, devs[i]);
		if ((vg->info.flags & DLVM_VG_SHARED) && devs[i]->fd >= 0)
			flock(devs[i]->fd, LOCK_UN); /* every host opens a shared VG's PVs */
		if (dlvm_mda_read_header(devs[i], &pv->mda, &e) == 0) {
			pv->mda.valid = true;
			pv->mda.tail_seq = 0;
		}
		ctx_devices_file_add(ctx, devs[i]->path, NULL);
	}
	if (dlvm_vg_checkpoint(vg, true, err))
		resp_warning(resp, "%s", err->msg);
	dlvm_err_clear(err);
	resp_message(resp, "Volume group \"%s\" successfully extended", vg->info.name);
out:
	if (r)
		ctx_drop_opened(ctx, opened, n);
	free(opened);
	free(phs);
	dlvm_txn_release(&t);
	free(devs);
	return r;
}

static bool lv_uses_pv(const struct dlvm_lv *lv, uint32_t pv_id)
{
	for (uint32_t s = 0; s < lv->nseg; s++)
		for (uint16_t k = 0; k < lv->segs[s]->stripes; k++)
			if (lv->segs[s]->area[k].pv_id == pv_id)
				return true;
	return false;
}

/* vgreduce --removemissing: drop PVs whose device is gone; with force also
 * the LVs that had extents on them (their data is lost anyway). */
static int reduce_missing(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool force, size_t nargs,
			  json_t *resp, struct dlvm_err *err)
{
	struct dlvm_txn t;
	size_t missing = 0;
	int r = 0;

	if (nargs != 1)
		return dlvm_err_set(err, -EINVAL,
				    "vgreduce --removemissing: give only the VG name");
	dlvm_txn_init(&t);
	for (size_t l = 0; l < vg->nlv; l++) {
		const struct dlvm_lv *lv = vg->lvs[l];
		for (size_t p = 0; p < vg->npv; p++) {
			if (vg->pvs[p]->dev || !lv_uses_pv(lv, vg->pvs[p]->d.id))
				continue;
			if (!force) {
				r = dlvm_err_set(err, -EBUSY,
						 "%s/%s has extents on missing PV %u: "
						 "use -f to remove it with the PV",
						 vg->info.name, lv->name, vg->pvs[p]->d.id);
				goto out;
			}
			struct dlvm_edit e = { .type = DLVM_EDIT_LV_REMOVE };
			e.u.lv.id = lv->id;
			dlvm_txn_add(&t, &e);
			if (ctx->hooks && ctx->hooks->is_active(ctx->hooks->priv, vg, vg->lvs[l]) &&
			    (r = ctx->hooks->deactivate(ctx->hooks->priv, vg, vg->lvs[l], true,
							err)))
				goto out;
			resp_message(resp, "Logical volume \"%s\" on a missing PV removed.",
				     lv->name);
			break;
		}
	}
	for (size_t p = 0; p < vg->npv; p++) {
		if (vg->pvs[p]->dev)
			continue;
		struct dlvm_edit e = { .type = DLVM_EDIT_PV_REMOVE };
		e.u.pv_id = vg->pvs[p]->d.id;
		dlvm_txn_add(&t, &e);
		missing++;
	}
	if (!missing) {
		resp_message(resp, "Volume group \"%s\" is already consistent.", vg->info.name);
		goto out;
	}
	if (missing == vg->npv) {
		r = dlvm_err_set(err, -EINVAL, "%s: every PV is missing", vg->info.name);
		goto out;
	}
	if ((r = dlvm_txn_commit(vg, &t, err)))
		goto out;
	resp_message(resp, "Wrote out consistent volume group %s (%zu missing PV%s removed).",
		     vg->info.name, missing, missing == 1 ? "" : "s");
out:
	dlvm_txn_release(&t);
	return r;
}

DLVM_CMD_FN(cmd_vgreduce)
{
	struct dlvm_vg *vg;
	struct dlvm_txn t;
	size_t n = json_array_size(args);
	struct dlvm_dev **gone = NULL;
	int r;

	if ((r = dlvm_ctx_vg(ctx, arg_str(args, 0), &vg, err)))
		return r;
	if (opt_flag(opts, "removemissing"))
		return reduce_missing(ctx, vg, opt_flag(opts, "force"), n, resp, err);
	if (n < 2)
		return dlvm_err_set(err, -EINVAL,
				    "vgreduce: give at least one PV after the VG name");
	if (n - 1 >= vg->npv)
		return dlvm_err_set(err, -EINVAL,
				    "vgreduce: cannot remove every PV of %s (use "
				    "vgremove)",
				    vg->info.name);
	dlvm_txn_init(&t);
	gone = calloc(n, sizeof(*gone));
	if (!gone)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 1; i < n; i++) {
		struct dlvm_dev *dev;
		struct dlvm_vg *owner;
		struct dlvm_pv *pv;
		if ((r = ctx_device(ctx, arg_str(args, i), false, &dev, &owner, &pv, err)))
			goto out;
		if (owner != vg) {
			r = dlvm_err_set(err, -EINVAL, "%s: not a PV of volume group \"%s\"",
					 arg_str(args, i), vg->info.name);
			goto out;
		}
		if (pv->pe_alloc) {
			r = dlvm_err_set(err, -EBUSY,
					 "%s: still used by logical volumes (%" PRIu64 " extents)",
					 arg_str(args, i), pv->pe_alloc);
			goto out;
		}
		struct dlvm_edit e = { .type = DLVM_EDIT_PV_REMOVE };
		e.u.pv_id = pv->d.id;
		gone[i] = dev;
		dlvm_txn_add(&t, &e);
	}
	if ((r = dlvm_txn_commit(vg, &t, err)))
		goto out;
	for (size_t i = 1; i < n; i++) {
		struct dlvm_err e = { 0 };
		if (dlvm_pv_make_orphan(gone[i], &e))
			resp_warning(resp, "%s", e.msg);
		ctx_add_orphan(ctx, gone[i]);
		resp_message(resp, "Removed \"%s\" from volume group \"%s\"", gone[i]->path,
			     vg->info.name);
	}
out:
	free(gone);
	dlvm_txn_release(&t);
	return r;
}

/* -EBUSY if an LV of vg has NBD clients (unless force). */
static int check_no_clients(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool force,
			    struct dlvm_err *err)
{
	for (size_t i = 0; ctx->hooks && !force && i < vg->nlv; i++) {
		struct dlvm_lv *lv = vg->lvs[i];
		unsigned c = ctx->hooks->clients(ctx->hooks->priv, vg, lv);
		if (c)
			return dlvm_err_set(err, -EBUSY, "%s/%s: in use by %u NBD clients (use -f)",
					    vg->info.name, lv->name, c);
	}
	return 0;
}

/* The VGs named in args, each once: every name is checked before a command
 * changes anything. */
static int named_vgs_exist(struct dlvm_ctx *ctx, json_t *args, const char *cmd,
			   struct dlvm_err *err)
{
	size_t n = json_array_size(args);

	for (size_t a = 0; a < n; a++) {
		struct dlvm_vg *vg;
		int r = dlvm_ctx_vg(ctx, arg_str(args, a), &vg, err);
		if (r)
			return r;
		for (size_t b = 0; b < a; b++)
			if (!strcmp(arg_str(args, a), arg_str(args, b)))
				return dlvm_err_set(err, -EINVAL,
						    "%s: volume group \"%s\" is named "
						    "twice",
						    cmd, arg_str(args, a));
	}
	return 0;
}

static int deactivate_all(struct dlvm_ctx *ctx, struct dlvm_vg *vg, bool force,
			  struct dlvm_err *err)
{
	int r0;

	if (!ctx->hooks)
		return 0;
	if ((r0 = check_no_clients(ctx, vg, force, err)))
		return r0;
	for (size_t i = 0; i < vg->nlv; i++) {
		struct dlvm_lv *lv = vg->lvs[i];
		int r;
		if (ctx->hooks->is_active(ctx->hooks->priv, vg, lv) &&
		    (r = ctx->hooks->deactivate(ctx->hooks->priv, vg, lv, force, err)))
			return r;
	}
	return 0;
}

DLVM_CMD_FN(cmd_vgremove)
{
	size_t n = json_array_size(args);
	bool force = opt_flag(opts, "force");
	int r;

	if (!n)
		return dlvm_err_set(err, -EINVAL, "vgremove: give a VG name");
	if ((r = named_vgs_exist(ctx, args, "vgremove", err)))
		return r;
	/* everything that can refuse, for every VG, before any is removed */
	for (size_t a = 0; a < n; a++) {
		struct dlvm_vg *vg;
		if ((r = dlvm_ctx_vg(ctx, arg_str(args, a), &vg, err)))
			return r;
		size_t user_lvs = 0;
		for (size_t i = 0; i < vg->nlv; i++)
			user_lvs += !dlvm_lv_is_internal(vg->lvs[i]);
		if (user_lvs && !force)
			return dlvm_err_set(err, -EBUSY,
					    "Volume group \"%s\" still contains %zu logical "
					    "volume(s): remove them first or use -f",
					    vg->info.name, user_lvs);
		if ((r = dlvm_vg_writable(vg, err)) || (r = check_no_clients(ctx, vg, force, err)))
			return r;
		for (size_t p = 0; p < vg->npv; p++)
			if (!vg->pvs[p]->dev)
				return dlvm_err_set(err, -EROFS, "%s: a PV is missing",
						    vg->info.name);
	}
	for (size_t a = 0; a < n; a++) {
		struct dlvm_vg *vg;
		if ((r = dlvm_ctx_vg(ctx, arg_str(args, a), &vg, err)))
			return r;
		if ((r = shared_vg_removing(ctx, vg, err)))
			return r;
		if ((r = deactivate_all(ctx, vg, force, err)))
			return r;
		/* Remove the LVs in one transaction first, so an interrupted vgremove
		 * leaves an empty VG rather than a half-orphaned one. */
		if (vg->nlv) {
			struct dlvm_txn t;
			dlvm_txn_init(&t);
			for (size_t i = 0; i < vg->nlv; i++) {
				struct dlvm_edit e = { .type = DLVM_EDIT_LV_REMOVE };
				e.u.lv.id = vg->lvs[i]->id;
				dlvm_txn_add(&t, &e);
			}
			r = dlvm_txn_commit(vg, &t, err);
			dlvm_txn_release(&t);
			if (r)
				return r;
		}
		shared_vg_removed(ctx, vg, resp);
		for (size_t p = 0; p < vg->npv; p++) {
			struct dlvm_err e = { 0 };
			if (dlvm_pv_make_orphan(vg->pvs[p]->dev, &e))
				resp_warning(resp, "%s", e.msg);
			ctx_add_orphan(ctx, vg->pvs[p]->dev);
			vg->pvs[p]->dev = NULL;
		}
		resp_message(resp, "Volume group \"%s\" successfully removed", vg->info.name);
		ctx_drop_vg(ctx, vg);
		dlvm_vg_free(vg);
	}
	return 0;
}

DLVM_CMD_FN(cmd_vgrename)
{
	const char *old = arg_str(args, 0), *nw = arg_str(args, 1);
	struct dlvm_vg *vg, *other;
	char oldname[DLVM_NAME_MAX + 1];
	int r;

	(void)opts;
	if (!old || !nw || json_array_size(args) != 2)
		return dlvm_err_set(err, -EINVAL, "vgrename: give the old and the new name");
	if ((r = dlvm_ctx_vg(ctx, old, &vg, err)))
		return r;
	if ((r = dlvm_check_name(nw, "VG", err)))
		return r;
	if (!dlvm_ctx_vg(ctx, nw, &other, NULL))
		return dlvm_err_set(err, -EEXIST, "A volume group called %s already exists.", nw);
	for (size_t l = 0; l < vg->nlv; l++)
		if ((r = shared_lv_refuse_elsewhere(ctx, vg, vg->lvs[l], "rename the VG", err)))
			return r;
	struct dlvm_edit e = { .type = DLVM_EDIT_VG_INFO };
	e.u.vg = vg->info;
	snprintf(e.u.vg.name, sizeof(e.u.vg.name), "%s", nw);
	snprintf(oldname, sizeof(oldname), "%s", old);
	r = dlvm_txn_commit_edit(vg, &e, err);
	if (r)
		return r;
	if (ctx->hooks)
		ctx->hooks->vg_renamed(ctx->hooks->priv, vg, oldname);
	resp_message(resp, "Volume group \"%s\" successfully renamed to \"%s\"", oldname, nw);
	return 0;
}

DLVM_CMD_FN(cmd_vgchange)
{
	const char *a = opt_str(opts, "activate");
	size_t n = json_array_size(args);
	int r;

	if (!a)
		return dlvm_err_set(err, -EINVAL, "vgchange: nothing to change (give -a y|n)");
	bool on = !strcmp(a, "y") || !strcmp(a, "ey") || !strcmp(a, "ay") || !strcmp(a, "sy");
	enum dlvm_hold_mode mode = strcmp(a, "sy") ? DLVM_HOLD_EXCLUSIVE : DLVM_HOLD_SHARED;
	if (!on && strcmp(a, "n"))
		return dlvm_err_set(err, -EINVAL, "vgchange: -a takes y, ey, sy or n, not \"%s\"",
				    a);
	if (!ctx->hooks)
		return dlvm_err_set(err, -ENOTSUP, "vgchange -a: activation needs a running dlvmd");
	if ((r = named_vgs_exist(ctx, args, "vgchange", err)))
		return r;
	/* -an: no VG is left half deactivated for clients of another */
	for (size_t i = 0; !on && i < (n ? n : ctx->nvg); i++) {
		struct dlvm_vg *vg = n ? NULL : ctx->vgs[i];
		if ((n && (r = dlvm_ctx_vg(ctx, arg_str(args, i), &vg, err))) ||
		    (r = check_no_clients(ctx, vg, opt_flag(opts, "force"), err)))
			return r;
	}
	for (size_t i = 0; i < (n ? n : ctx->nvg); i++) {
		struct dlvm_vg *vg = n ? NULL : ctx->vgs[i];
		if (n && (r = dlvm_ctx_vg(ctx, arg_str(args, i), &vg, err)))
			return r;
		bool shared = vg->info.flags & DLVM_VG_SHARED;
		if (shared && !shared_vg_lease_held(ctx, vg)) {
			/* only a VG named on the command line is locked for it */
			resp_message(resp,
				     "Volume group \"%s\" is shared: skipped (name it to "
				     "change its activations)",
				     vg->info.name);
			continue;
		}
		unsigned count = 0;
		if (on && shared) {
			/* lock each LV here; those active elsewhere stay as they are */
			for (size_t l = 0; l < vg->nlv; l++) {
				struct dlvm_lv *lv = vg->lvs[l];
				struct dlvm_err e = { 0 };
				if (!dlvm_lv_exportable(lv))
					continue;
				if (shared_lv_hold(ctx, vg, lv, mode, &e) ||
				    (!ctx->hooks->is_active(ctx->hooks->priv, vg, lv) &&
				     ctx->hooks->activate(ctx->hooks->priv, vg, lv, NULL, &e)))
					resp_warning(resp, "%s", e.msg);
				else
					count++;
			}
			ctx->lock_conflict = false;
		} else if (on) {
			for (size_t l = 0; l < vg->nlv; l++) {
				if (!dlvm_lv_exportable(vg->lvs[l]) ||
				    ctx->hooks->is_active(ctx->hooks->priv, vg, vg->lvs[l]))
					continue;
				if ((r = ctx->hooks->activate(ctx->hooks->priv, vg, vg->lvs[l],
							      NULL, err)))
					return r;
				count++;
			}
		} else {
			if ((r = deactivate_all(ctx, vg, opt_flag(opts, "force"), err)))
				return r;
			for (size_t l = 0; shared && l < vg->nlv; l++)
				if ((r = shared_lv_unhold(ctx, vg, vg->lvs[l], err)))
					return r;
		}
		size_t active = 0;
		for (size_t l = 0; l < vg->nlv; l++)
			active += ctx->hooks->is_active(ctx->hooks->priv, vg, vg->lvs[l]);
		resp_message(resp, "%zu logical volume(s) in volume group \"%s\" now active",
			     active, vg->info.name);
	}
	return 0;
}

DLVM_CMD_FN(cmd_vgs)
{
	json_t *rep = json_object(), *rows = json_array();
	(void)opts;

	json_object_set_new(rep, "kind", json_string("vg"));
	json_object_set_new(rep, "rows", rows);
	json_object_set_new(resp, "report", rep);
	for (size_t i = 0; i < json_array_size(args); i++) {
		struct dlvm_vg *vg;
		int r = dlvm_ctx_vg(ctx, arg_str(args, i), &vg, err);
		if (r)
			return r;
	}
	for (size_t v = 0; v < ctx->nvg; v++) {
		const struct dlvm_vg *vg = ctx->vgs[v];
		bool want = !json_array_size(args);
		for (size_t i = 0; i < json_array_size(args); i++)
			want |= !strcmp(arg_str(args, i), vg->info.name);
		if (!want)
			continue;
		char u[DLVM_UUID_STR], attr[7] = "wz--n-";
		bool missing = false;
		for (size_t p = 0; p < vg->npv; p++)
			missing |= !vg->pvs[p]->dev;
		if (vg->readonly)
			attr[0] = 'r';
		if (missing)
			attr[3] = 'p';
		if (vg->info.flags & DLVM_VG_SHARED)
			attr[5] = 's';
		dlvm_uuid_unparse(vg->info.uuid, u);
		uint64_t es = vg->info.extent_size;
		json_t *row = json_object();
		json_object_set_new(row, "vg_name", json_string(vg->info.name));
		json_object_set_new(row, "pv_count", json_integer((json_int_t)vg->npv));
		size_t user_lvs = 0;
		for (size_t l = 0; l < vg->nlv; l++)
			user_lvs += !dlvm_lv_is_internal(vg->lvs[l]);
		json_object_set_new(row, "lv_count", json_integer((json_int_t)user_lvs));
		json_object_set_new(row, "snap_count", json_integer(0));
		json_object_set_new(row, "vg_attr", json_string(attr));
		json_object_set_new(row, "vg_size",
				    json_integer((json_int_t)(dlvm_vg_total_extents(vg) * es)));
		json_object_set_new(row, "vg_free",
				    json_integer((json_int_t)(dlvm_vg_free_extents(vg) * es)));
		json_object_set_new(row, "vg_uuid", json_string(u));
		json_object_set_new(row, "vg_extent_size", json_integer((json_int_t)es));
		json_object_set_new(row, "vg_extent_count",
				    json_integer((json_int_t)dlvm_vg_total_extents(vg)));
		json_object_set_new(row, "vg_free_count",
				    json_integer((json_int_t)dlvm_vg_free_extents(vg)));
		json_object_set_new(row, "vg_seqno", json_integer((json_int_t)vg->seq));
		size_t mdas = 0, ok = 0;
		for (size_t p = 0; p < vg->npv; p++) {
			mdas += vg->pvs[p]->dev != NULL;
			ok += vg->pvs[p]->dev && vg->pvs[p]->mda.in_sync;
		}
		json_object_set_new(row, "vg_mda_count", json_integer((json_int_t)mdas));
		json_object_set_new(row, "vg_mda_in_sync", json_integer((json_int_t)ok));
		json_array_append_new(rows, row);
	}
	return 0;
}
