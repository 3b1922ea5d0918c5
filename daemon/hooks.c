/* SPDX-License-Identifier: MIT */
#include "daemon/hooks.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/runtime.h"
#include "dlvm/vg.h"

#define EXPORT_NAME_MAX (2 * DLVM_NAME_MAX + 2)

void dlvmd_export_name(const char *vg, const char *lv, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s", vg, lv);
}

static int hook_activate(void *priv, struct dlvm_vg *vg, struct dlvm_lv *lv, const char *old_name,
			 struct dlvm_err *err)
{
	struct dlvm_exports *ex = priv;
	char name[EXPORT_NAME_MAX], old[EXPORT_NAME_MAX];
	struct dlvm_lv_map *map;
	uint64_t map_size;
	bool was_active;
	int r;

	/* internal LVs and thin pools are not block devices of their own */
	if (lv->flags &
	    (DLVM_LV_HIDDEN | DLVM_LV_LOCKSPACE | DLVM_LV_THIN_META | DLVM_LV_THIN_POOL))
		return 0;
	dlvmd_export_name(vg->info.name, lv->name, name, sizeof(name));
	r = dlvm_vg_map_lv(vg, lv, &map, err);
	if (r < 0)
		return dlvm_err_prefix(err, r, "%s: activate: ", name);
	map_size = map->size;

	if (old_name) {
		dlvmd_export_name(vg->info.name, old_name, old, sizeof(old));
		r = dlvm_exports_rename(ex, old, name);
		if (r == -ENOENT) {
			/* the LV was not active: a rename activates nothing */
			dlvm_lv_map_put(map);
			return 0;
		}
		if (r < 0) {
			dlvm_lv_map_put(map);
			return dlvm_err_set(err, r, "%s: rename export from %s: %s", name, old,
					    strerror(-r));
		}
	}
	was_active = dlvm_exports_has(ex, name);
	r = dlvm_exports_set(ex, name, map);
	dlvm_lv_map_put(map);
	if (r < 0)
		return dlvm_err_set(err, r, "%s: activate: %s", name, strerror(-r));
	if (old_name)
		log_info(DLVM_LOG_MAIN, "%s: renamed from %s, active", name, old);
	else
		log_info(DLVM_LOG_MAIN, "%s: %s (%" PRIu64 " bytes, %s)", name,
			 was_active ? "reloaded" : "activated", map_size,
			 lv->flags & DLVM_LV_READONLY ? "read-only" : "read-write");
	return 0;
}

static int hook_deactivate(void *priv, struct dlvm_vg *vg, struct dlvm_lv *lv, bool force,
			   struct dlvm_err *err)
{
	struct dlvm_exports *ex = priv;
	char name[EXPORT_NAME_MAX];
	unsigned clients;
	int r;

	dlvmd_export_name(vg->info.name, lv->name, name, sizeof(name));
	clients = dlvm_exports_clients(ex, name);
	r = dlvm_exports_remove(ex, name, force);
	if (r == -ENOENT)
		return 0; /* not active: nothing to do */
	if (r == -EBUSY)
		return dlvm_err_set(err, r,
				    "Logical volume %s is in use by %u NBD client%s (use --force "
				    "to disconnect them)",
				    name, clients, clients == 1 ? "" : "s");
	if (r < 0)
		return dlvm_err_set(err, r, "%s: deactivate: %s", name, strerror(-r));
	if (force && clients)
		log_info(DLVM_LOG_MAIN, "%s: deactivated, %u client%s disconnected", name, clients,
			 clients == 1 ? "" : "s");
	else
		log_info(DLVM_LOG_MAIN, "%s: deactivated", name);
	return 0;
}

static bool hook_is_active(void *priv, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	char name[EXPORT_NAME_MAX];

	dlvmd_export_name(vg->info.name, lv->name, name, sizeof(name));
	return dlvm_exports_has(priv, name);
}

static unsigned hook_clients(void *priv, const struct dlvm_vg *vg, const struct dlvm_lv *lv)
{
	char name[EXPORT_NAME_MAX];

	dlvmd_export_name(vg->info.name, lv->name, name, sizeof(name));
	return dlvm_exports_clients(priv, name);
}

static void hook_vg_renamed(void *priv, struct dlvm_vg *vg, const char *old_name)
{
	char old[EXPORT_NAME_MAX], name[EXPORT_NAME_MAX];
	int r;

	for (size_t i = 0; i < vg->nlv; i++) {
		dlvmd_export_name(old_name, vg->lvs[i]->name, old, sizeof(old));
		dlvmd_export_name(vg->info.name, vg->lvs[i]->name, name, sizeof(name));
		r = dlvm_exports_rename(priv, old, name);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			log_error(DLVM_LOG_MAIN, "%s: rename export to %s: %s", old, name,
				  strerror(-r));
		else
			log_info(DLVM_LOG_MAIN, "%s: renamed from %s", name, old);
	}
}

void dlvmd_hooks_init(struct dlvm_export_hooks *hooks, struct dlvm_exports *ex)
{
	*hooks = (struct dlvm_export_hooks){
		.priv = ex,
		.activate = hook_activate,
		.deactivate = hook_deactivate,
		.is_active = hook_is_active,
		.clients = hook_clients,
		.vg_renamed = hook_vg_renamed,
	};
}

unsigned dlvmd_activate_all(struct dlvm_ctx *ctx, const struct dlvm_export_hooks *hooks)
{
	unsigned failed = 0;

	for (size_t v = 0; v < dlvm_ctx_vg_count(ctx); v++) {
		struct dlvm_vg *vg = dlvm_ctx_vg_at(ctx, v);

		if (vg->info.flags & DLVM_VG_SHARED)
			continue; /* locked per LV: see dlvm_ctx_adopt */
		for (size_t i = 0; i < vg->nlv; i++) {
			struct dlvm_err err = { 0 };

			if (hooks->activate(hooks->priv, vg, vg->lvs[i], NULL, &err) < 0) {
				log_error(DLVM_LOG_MAIN, "%s", err.msg);
				failed++;
			}
		}
	}
	return failed;
}
