/* SPDX-License-Identifier: MIT */
/*
 * Shared VGs (lib/cluster/): the lockspace every dlvmd with a host id joins
 * (lockspace.c), the VG lease each change runs under (vglease.c), the
 * activation records of LVs and thin families (holders.c) and the hosts
 * report (hosts.c). docs/leases.md tells the story.
 */
#ifndef DLVM_CLUSTER_H
#define DLVM_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>

#include "dlvm/cmd.h"
#include "dlvm/vg.h"

/* vgcreate --shared: allocate the lockspace LV on `first`, format the lease
 * area in it, then mark the VG shared; dlvmd with a host id joins it. */
int shared_vg_setup(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_dev *first,
		    uint32_t max_hosts, struct dlvm_err *err);
/* Before a command runs: a mutating one takes the VG lease of every shared VG
 * it names (DLVM_CMD_VG_ARG0/ARGS) and reloads them; other commands reload
 * the shared VGs (dlvmd only). shared_cmd_end releases the leases. */
int shared_cmd_begin(struct dlvm_ctx *ctx, const struct dlvm_cmd_def *c, bool mutating,
		     json_t *args, json_t *resp, struct dlvm_err *err);
void shared_cmd_end(struct dlvm_ctx *ctx, json_t *resp);
/* vgremove of a shared VG: -EBUSY while another host is in its lockspace;
 * after the removal, release the VG lease and leave the lockspace. */
int shared_vg_removing(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_err *err);
void shared_vg_removed(struct dlvm_ctx *ctx, struct dlvm_vg *vg, json_t *resp);
/*
 * Activation locks of LVs in shared VGs, kept as LV_SET_HOLDERS records in
 * the journal (so under the VG lease the command holds). Records of dead,
 * released or restarted hosts are stale and dropped on the next change.
 * shared_lv_hold: add this host as a holder in `mode`; -EBUSY "vg/lv: active
 * exclusively on host id 3 'name'" (ctx->lock_conflict set) when a standing
 * record conflicts. shared_lv_unhold: drop this host's record.
 * shared_lv_refuse_elsewhere: -EBUSY when the LV is active on another host
 * (remove, rename, reduce need it inactive there).
 */
int shared_lv_hold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		   enum dlvm_hold_mode mode, struct dlvm_err *err);
int shared_lv_unhold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv,
		     struct dlvm_err *err);
int shared_lv_refuse_elsewhere(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
			       const struct dlvm_lv *lv, const char *what, struct dlvm_err *err);
bool shared_lv_held_here(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv);
/* A change to the store of thin LV lv's family (snapshot, removal, merge,
 * shrink): -EBUSY while another host writes the family (shared VGs). */
int shared_family_refuse_elsewhere(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
				   const struct dlvm_lv *lv, const char *what,
				   struct dlvm_err *err);
/* For work on thin LV lv's family without lv active here (a flatten job):
 * hold the family lease (its metadata LV exclusively) unless this host
 * already does. shared_family_release_idle: once no writable LV of the
 * family is active here and no job runs on one (but the job of `self`, the
 * LV whose job or command asks), commit and close its store and let the
 * family lease go. Both do nothing outside shared VGs. */
int shared_family_hold(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const struct dlvm_lv *lv,
		       struct dlvm_err *err);
int shared_family_release_idle(struct dlvm_ctx *ctx, struct dlvm_vg *vg, uint64_t meta_id,
			       const struct dlvm_lv *self, struct dlvm_err *err);
/* Run fn under the VG lease of shared VG vg_name (taken, and the VG
 * reloaded when another host changed it) for work outside a command (the
 * host agent). */
int shared_vg_locked(struct dlvm_ctx *ctx, const char *vg_name,
		     int (*fn)(struct dlvm_ctx *ctx, struct dlvm_vg *vg, void *arg), void *arg,
		     struct dlvm_err *err);
/* "3,7(sh)": the hosts where lv is active, as this host sees them. */
void shared_lv_hosts(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		     char *out, size_t len);
/* Does this command hold vg's VG lease (it named the VG)? */
bool shared_vg_lease_held(struct dlvm_ctx *ctx, const struct dlvm_vg *vg);

/* Rows of the hosts report of vg: from the joined lockspace when there is
 * one, else from one read of the lease area. */
int shared_hosts_rows(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, json_t *rows, json_t *resp,
		      struct dlvm_err *err);

#endif
