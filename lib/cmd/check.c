/* SPDX-License-Identifier: MIT */
/* dlvm check VG... [--repair]: every metadata copy, every thin store. */
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

DLVM_CMD_FN(cmd_check)
{
	size_t n = json_array_size(args);
	bool repair = opt_flag(opts, "repair");
	unsigned problems = 0;
	int r;

	if (!n)
		return dlvm_err_set(err, -EINVAL, "check: give at least one VG");
	for (size_t i = 0; i < n; i++) {
		struct dlvm_vg *vg;
		struct dlvm_check_report rep;
		if ((r = dlvm_ctx_vg(ctx, arg_str(args, i), &vg, err)))
			goto done;
		if ((r = dlvm_vg_check(vg, repair, &rep, err)))
			goto done;
		/* thin pools: every tree, refcount and free chunk of each store */
		if ((r = thin_check_vg(ctx, vg, &rep, err))) {
			dlvm_check_report_release(&rep);
			goto done;
		}
		for (size_t l = 0; l < rep.nlines; l++)
			resp_message(resp, "%s: %s", vg->info.name, rep.lines[l]);
		/* each repaired copy was one of the problems found */
		problems += rep.problems - rep.repaired;
		if (!rep.problems)
			resp_message(resp,
				     "%s: %zu PVs, %zu LVs, sequence %llu: metadata and extents "
				     "are consistent",
				     vg->info.name, vg->npv, vg->nlv, (unsigned long long)vg->seq);
		dlvm_check_report_release(&rep);
	}
	r = 0;
	if (problems)
		r = dlvm_err_set(err, -EBADMSG, "check found %u problem%s%s", problems,
				 problems == 1 ? "" : "s",
				 repair ? ""
					: " (--repair rewrites stale "
					  "or damaged metadata copies)");
done:
	return r;
}

/* Check one store (a local pool's or a family's) and that its devices and
 * the thin LVs that name it match. */
static int check_store(struct dlvm_vg *vg, uint64_t meta_id, const char *what,
		       struct dlvm_check_report *rep, struct dlvm_err *err)
{
	struct dlvm_thin_pool *pool;
	struct dlvm_err e = { 0 };
	int r;

	if (dlvm_thin_store_get(vg, meta_id, true, &pool, &e)) {
		dlvm_check_report_add(rep, true, "%s/%s: %s", vg->info.name, what, e.msg);
		return 0;
	}
	if ((r = dlvm_thin_pool_check(pool, rep, err)))
		return r;
	const struct dlvm_lv *meta = dlvm_lv_find_id(vg, meta_id);
	bool family = meta && meta->thin.pool_id;
	uint64_t id = 0, next;
	uint64_t pool_id = dlvm_thin_pool_lv_id(pool);
	while (!dlvm_thin_pool_next_dev(pool, id, &next, NULL) && next != DLVM_THIN_NONE) {
		const struct dlvm_lv *t = dlvm_lv_find_id(vg, next);
		if (!t || !(t->flags & DLVM_LV_THIN) || t->thin.pool_id != pool_id ||
		    (family && t->thin.meta_id != meta_id))
			dlvm_check_report_add(rep, true,
					      "%s/%s: thin device %" PRIu64 " has no thin LV",
					      vg->info.name, what, next);
		id = next + 1;
	}
	for (size_t k = 0; k < vg->nlv; k++) {
		const struct dlvm_lv *t = vg->lvs[k];
		if (!(t->flags & DLVM_LV_THIN) || t->thin.pool_id != pool_id ||
		    (family ? t->thin.meta_id != meta_id : t->thin.meta_id != 0) ||
		    dlvm_thin_pool_has_dev(pool, t->id))
			continue;
		dlvm_check_report_add(rep, true, "%s/%s: no device in %s%s", vg->info.name, t->name,
				      family ? "" : "pool ", what);
	}
	family_release(vg, pool);
	return 0;
}

int thin_check_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_check_report *rep,
		  struct dlvm_err *err)
{
	int r;

	for (size_t i = 0; i < vg->nlv; i++) {
		struct dlvm_lv *lv = vg->lvs[i];
		char what[2 * DLVM_NAME_MAX + 16];
		if ((lv->flags & DLVM_LV_THIN_POOL) && lv->thin.meta_id) {
			snprintf(what, sizeof(what), "%s", lv->name);
			if ((r = check_store(vg, lv->thin.meta_id, what, rep, err)))
				return r;
			continue;
		}
		if (!(lv->flags & DLVM_LV_THIN_META) || !lv->thin.pool_id)
			continue;
		/* a family: checked unless another host writes it now */
		struct dlvm_err e = { 0 };
		if (shared_lv_refuse_elsewhere(ctx, vg, lv, "check", &e) == -EBUSY) {
			dlvm_check_report_add(rep, false, "%s (not checked: %s)", lv->name, e.msg);
			continue;
		}
		ctx->lock_conflict = false;
		if (!dlvm_thin_family_data(vg, lv->id)) {
			dlvm_check_report_add(rep, true, "%s/%s: the family has no data LV",
					      vg->info.name, lv->name);
			continue;
		}
		bool used = false;
		for (size_t k = 0; k < vg->nlv && !used; k++)
			used = (vg->lvs[k]->flags & DLVM_LV_THIN) &&
			       vg->lvs[k]->thin.meta_id == lv->id;
		if (!used)
			dlvm_check_report_add(rep, true,
					      "%s/%s: a family without thin volumes (left by an "
					      "interrupted lvcreate; lvremove of the pool removes "
					      "it)",
					      vg->info.name, lv->name);
		snprintf(what, sizeof(what), "family %s", lv->name);
		if ((r = check_store(vg, lv->id, what, rep, err)))
			return r;
	}
	return 0;
}
