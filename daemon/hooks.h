/* SPDX-License-Identifier: MIT */
/*
 * Activation in dlvmd: the library's export hooks (struct dlvm_export_hooks)
 * implemented on top of the NBD exports table. An active LV is an export
 * named "VG/LV" whose map is rebuilt on every change of the LV.
 */
#ifndef DLVMD_HOOKS_H
#define DLVMD_HOOKS_H

#include "daemon/exports.h"
#include "dlvm/cmd.h"

/* Hooks whose priv is ex; ex must outlive every context using them. */
void dlvmd_hooks_init(struct dlvm_export_hooks *hooks, struct dlvm_exports *ex);

/*
 * Autoactivation at start: activate every LV of every VG loaded in ctx
 * through hooks. A failure is logged and the next LV is tried. Returns
 * the number of LVs that could not be activated.
 */
unsigned dlvmd_activate_all(struct dlvm_ctx *ctx, const struct dlvm_export_hooks *hooks);

/* Export name of an LV: "VG/LV". */
void dlvmd_export_name(const char *vg, const char *lv, char *out, size_t outlen);

#endif
