/* SPDX-License-Identifier: MIT */
/* lvconvert: --merge a snapshot into its origin, --flatten a clone (flatten.c). */
#include <inttypes.h>
#include <stdarg.h>
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
#include "lib/pool/family.h"
#include "lib/cmd/cmd_int.h"

DLVM_CMD_FN(cmd_lvconvert)
{
	bool merge = opt_flag(opts, "merge"), flatten = opt_flag(opts, "flatten");
	struct dlvm_vg *vg;
	struct dlvm_lv *lv;
	int r;

	if (merge == flatten)
		return dlvm_err_set(err, -EINVAL,
				    "lvconvert: give --merge SNAPSHOT or --flatten "
				    "CLONE");
	if (json_array_size(args) != 1)
		return dlvm_err_set(err, -EINVAL, "lvconvert: give one VG/LV");
	const char *rate_s = opt_str(opts, "maxrecoveryrate"), *iv = opt_str(opts, "interval");
	uint64_t rate = 0;
	if (merge && (rate_s || iv || opt_flag(opts, "background")))
		return dlvm_err_set(err, -EINVAL,
				    "lvconvert: --background, --interval and "
				    "--maxrecoveryrate go with --flatten");
	if (rate_s && (r = dlvm_parse_size(rate_s, 1 << 20, &rate, NULL, err)))
		return dlvm_err_prefix(err, r, "lvconvert: --maxrecoveryrate: ");
	if (iv) {
		char *end;
		double v = strtod(iv, &end);
		if (end == iv || *end || !(v > 0 && v <= 3600))
			return dlvm_err_set(err, -EINVAL,
					    "lvconvert: --interval takes seconds (over 0, "
					    "up to 3600), not \"%s\"",
					    iv);
	}
	if ((r = thin_source(ctx, arg_str(args, 0), merge ? "--merge" : "--flatten", &vg, &lv,
			     err)))
		return r;
	const struct dlvm_lv *o = lv->thin.origin_id ? dlvm_lv_find_id(vg, lv->thin.origin_id)
						     : NULL;
	if (flatten) {
		if (!lv->thin.origin_id || (lv->flags & DLVM_LV_READONLY))
			return dlvm_err_set(err, -EINVAL, "%s/%s is not a clone", vg->info.name,
					    lv->name);
		if (lv->thin.meta_id) {
			const struct dlvm_lv *m = dlvm_lv_find_id(vg, lv->thin.meta_id);
			/* one left unfinished goes on at the rate it had */
			if (!rate_s && (lv->flags & DLVM_LV_FLATTEN))
				rate = lv->copy_rate;
			if (m && m->thin.origin_id)
				return flatten_family(ctx, vg, lv, rate,
						      opt_flag(opts, "background"), resp, err);
		}
		/* clones share chunks through reference counts, not through
		 * their origin: forgetting the origin is all there is to do */
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_SET_THIN };
		e.u.lv.id = lv->id;
		e.u.lv.thin = lv->thin;
		e.u.lv.thin.origin_id = 0;
		if ((r = dlvm_txn_commit_edit(vg, &e, err)))
			return r;
		resp_message(resp, "%s/%s no longer depends on %s.", vg->info.name, lv->name,
			     o ? o->name : "its origin");
		return 0;
	}
	if (!(lv->flags & DLVM_LV_READONLY) || !lv->thin.origin_id)
		return dlvm_err_set(err, -EINVAL, "%s/%s is not a snapshot", vg->info.name,
				    lv->name);
	if (!o)
		return dlvm_err_set(err, -ENOENT, "%s/%s: its origin no longer exists",
				    vg->info.name, lv->name);
	struct dlvm_lv *origin = dlvm_lv_find_id(vg, o->id);
	if (is_active(ctx, vg, origin))
		return dlvm_err_set(err, -EBUSY,
				    "%s/%s: the origin is active: deactivate it before "
				    "merging %s into it (lvchange -an %s/%s)",
				    vg->info.name, origin->name, lv->name, vg->info.name,
				    origin->name);
	if (is_active(ctx, vg, lv))
		return dlvm_err_set(err, -EBUSY, "%s/%s: deactivate the snapshot before merging it",
				    vg->info.name, lv->name);
	if ((r = thin_refuse_remove(vg, lv, err)) ||
	    (r = shared_lv_refuse_elsewhere(ctx, vg, origin, "merge into it", err)) ||
	    (r = shared_lv_refuse_elsewhere(ctx, vg, lv, "merge it", err)) ||
	    (r = shared_family_refuse_elsewhere(ctx, vg, lv, "merge", err)))
		return r;
	struct dlvm_thin_pool *pool;
	if ((r = dlvm_vg_writable(vg, err)) || (r = dlvm_thin_lv_store(vg, lv, true, &pool, err)))
		return r;
	/* the origin takes the snapshot's contents in one store commit; then
	 * the snapshot goes (journal, then store), as lvremove does */
	if ((r = dlvm_thin_pool_revert(pool, origin->id, lv->id, err))) {
		family_release(vg, pool);
		return r;
	}
	char sname[DLVM_NAME_MAX + 1];
	snprintf(sname, sizeof(sname), "%s", lv->name);
	if ((r = thin_remove(ctx, vg, lv, resp, err)))
		return r;
	resp_message(resp,
		     "Merged %s/%s into %s/%s: the origin holds the snapshot's data and the "
		     "snapshot is removed.",
		     vg->info.name, sname, vg->info.name, origin->name);
	return 0;
}
