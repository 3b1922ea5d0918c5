/* SPDX-License-Identifier: MIT */
/* LVs of the loaded VGs by name, and their exports through the hooks the
 * front end installed (no-ops without dlvmd). */
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

int find_lv(struct dlvm_ctx *ctx, const char *path, struct dlvm_vg **vg, struct dlvm_lv **lv,
	    struct dlvm_err *err)
{
	char vgn[DLVM_NAME_MAX + 1], lvn[DLVM_NAME_MAX + 1];
	int r;

	if (!path)
		return dlvm_err_set(err, -EINVAL, "give a logical volume as VG/LV");
	if ((r = split_lv_path(path, vgn, lvn, err)))
		return r;
	if ((r = dlvm_ctx_vg(ctx, vgn, vg, err)))
		return r;
	*lv = dlvm_lv_find(*vg, lvn);
	if (!*lv)
		return dlvm_err_set(err, -ENOENT, "Failed to find logical volume \"%s/%s\"", vgn,
				    lvn);
	return 0;
}
int activate(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, const char *old_name,
	     struct dlvm_err *err)
{
	if (!ctx->hooks)
		return 0;
	int r = ctx->hooks->activate(ctx->hooks->priv, vg, lv, old_name, err);
	struct dlvm_thin_pool *p;
	if (!r && (lv->flags & DLVM_LV_THIN) && !lv->thin.meta_id &&
	    !dlvm_thin_lv_store(vg, lv, true, &p, NULL)) {
		/* a full pool makes writes wait for autoextend (the host agent
		 * keeps this up to date) */
		dlvm_thin_pool_set_autoextend(p,
					      ctx->thin_autoextend_threshold &&
							      ctx->thin_autoextend_threshold < 100);
	}
	return r;
}

bool is_active(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	return ctx->hooks && ctx->hooks->is_active(ctx->hooks->priv, vg, lv);
}

unsigned lv_clients(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	return ctx->hooks ? ctx->hooks->clients(ctx->hooks->priv, vg, lv) : 0;
}
/* -EBUSY when NBD clients are connected to lv and force was not given. */
int refuse_busy(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		bool force, struct dlvm_err *err)
{
	unsigned c = lv_clients(ctx, vg, lv);
	if (c && !force)
		return dlvm_err_set(err, -EBUSY,
				    "Logical volume %s/%s in use by %u NBD client%s "
				    "(use -f to disconnect them)",
				    vg->info.name, lv->name, c, c == 1 ? "" : "s");
	return 0;
}

int deactivate(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, bool force,
	       struct dlvm_err *err)
{
	int r;

	if (!is_active(ctx, vg, lv))
		return 0;
	if ((r = refuse_busy(ctx, vg, lv, force, err)))
		return r;
	return ctx->hooks->deactivate(ctx->hooks->priv, vg, lv, force, err);
}
