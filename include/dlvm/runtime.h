/* SPDX-License-Identifier: MIT */
/*
 * The runtime of a loaded VG: what a process keeps for a VG while it runs,
 * as opposed to the VG model (dlvm/vg.h), which is only what is on disk.
 * It holds the open thin stores (the registry of dlvm/thinpool.h:
 * dlvm_thin_store_get, _find, _drop, dlvm_thin_pool_next, ...) and, for a
 * shared VG this host joined, the fence of its data path (dlvm/map.h).
 *
 * Who owns it. The context (lib/ctx) makes a runtime for every VG it loads
 * or creates, and hangs it on the model through one opaque pointer,
 * vg->runtime, together with the function that frees it
 * (dlvm_vg_attach_runtime, dlvm_vg_runtime_free). lib/meta never looks
 * inside the runtime; dlvm_vg_free frees it only by calling that function,
 * first, so that open stores commit before the PVs' devices close. When a
 * VG is reloaded (another host committed), the new model is a new struct
 * dlvm_vg: the context hands the runtime over to it (dlvm_vg_move_runtime),
 * so open stores and the fence go on, and so do the maps that share them.
 *
 * Why one pointer on the model rather than a table of runtimes in the
 * context: every call of the registry and of the map builder has the VG
 * at hand, and lib/pool, below lib/ctx, could not look a table of the
 * context up. The runtime is made of parts of lib/pool (the stores) and
 * lib/volume (the fence), so it is defined in lib/pool (lib/pool/runtime.c),
 * the lowest folder that knows both; lib/volume is handed what it needs
 * (struct dlvm_map_source) and lib/meta nothing but the pointer.
 *
 * Threads: a runtime is changed only by the thread that runs commands and
 * by the host agent (one at a time, under dlvmd's lock), as the VG model
 * is. The fence itself is read by the data path from any thread
 * (dlvm_fence_ok on a map's own reference).
 */
#ifndef DLVM_RUNTIME_H
#define DLVM_RUNTIME_H

#include "dlvm/err.h"
#include "dlvm/map.h"
#include "dlvm/vg.h"

/* A new runtime: no open store, no fence. NULL when out of memory. */
struct dlvm_vg_runtime *dlvm_vg_runtime_new(void);

/*
 * Free rt: commit the open stores that have changes (a failed commit is
 * logged), let the runtime's references to them and to its fence go (maps
 * and jobs that hold their own keep them), free rt. NULL is ignored. It is
 * the release function the context gives dlvm_vg_attach_runtime, so
 * dlvm_vg_free calls it while the VG's devices are still open.
 */
void dlvm_vg_runtime_free(struct dlvm_vg_runtime *rt);

/* The fence of vg's runtime (borrowed: dlvm_fence_get to keep it), or NULL
 * for a local VG, a shared VG not joined here, or a VG without runtime. */
struct dlvm_fence *dlvm_vg_fence(const struct dlvm_vg *vg);

/* Give vg's runtime the fence f (it takes a reference, and lets the one it
 * had go): stores opened and maps built from now on use it. 0, or -EINVAL
 * when vg has no runtime. */
int dlvm_vg_set_fence(struct dlvm_vg *vg, struct dlvm_fence *f);

/*
 * The data path's map of lv (dlvm_lv_map_build, refs = 1, put with
 * dlvm_lv_map_put) with what vg's runtime lends it: its fence, and for a
 * thin LV its store (dlvm_thin_lv_store: to write it unless the LV is
 * read-only), referenced by the map. -ENODEV if a PV of the LV is missing,
 * the store's errors for a thin LV, -ENOMEM. The thread that runs commands.
 */
int dlvm_vg_map_lv(struct dlvm_vg *vg, const struct dlvm_lv *lv, struct dlvm_lv_map **out,
		   struct dlvm_err *err);

#endif
