/* SPDX-License-Identifier: MIT */
/*
 * The host agent (lib/agent/): what a daemon runs between commands. The
 * refresh and the re-adoption of activations (refresh.c) and the pool pass
 * (pools.c) are public (dlvm/cmd.h); this header has what the jobs and
 * commands also use: growing pools and families under the VG lease.
 */
#ifndef DLVM_AGENT_H
#define DLVM_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "dlvm/cmd.h"
#include "dlvm/vg.h"

/* Is autoextend on (dlvmd --thin-pool-autoextend-threshold below 100)? */
bool autoextend_on(struct dlvm_ctx *ctx);
/* Grow pool by thin_autoextend_percent of its size (whole slabs in a
 * shared VG) from the VG's free extents. Said once in the log, as is a
 * failure. */
int pool_autoextend(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *pool);

/* The argument of the two steps below, run through shared_vg_locked. */
struct slab_req {
	uint64_t meta_id;
};
/* Under the VG lease: one more slab for a family this host writes. */
int family_add_slab(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg);
/* Under the VG lease: grow the metadata LV of a family this host writes by
 * a quarter (at least 4 MiB), from the VG's free extents. */
int family_grow_meta(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg);

#endif
