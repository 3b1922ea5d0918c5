/* SPDX-License-Identifier: MIT */
/* LV operations that several commands share (lib/lvops/): the arguments of
 * the LV commands, thin pools and thin volumes, and the flatten job. The
 * commands in lib/cmd/ call them; nothing here calls a command.
 *
 * Every function runs in a command's context: ctx's VG is loaded and, in a
 * shared VG, the VG lease is held (see lib/cluster/cluster.h). Errors are a
 * negative errno with err filled; resp (a JSON object) gets the messages a
 * user sees. */
#ifndef DLVM_LVOPS_H
#define DLVM_LVOPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/cmd.h"
#include "dlvm/vg.h"

#define DEFAULT_STRIPE_SIZE (64u << 10)

/* ---- arguments of the LV commands (args.c) ---- */
/* PV arguments (paths) from position `from` on, as PV ids (malloc'ed). */
int pv_filter(struct dlvm_ctx *ctx, struct dlvm_vg *vg, json_t *args, size_t from, uint32_t **ids,
	      size_t *n, struct dlvm_err *err);
/* The size from -L/-l in extents; cur and sign_ok for resizes. */
int target_extents(const struct dlvm_vg *vg, json_t *opts, uint64_t cur, bool sign_ok,
		   uint16_t stripes, uint64_t *out, struct dlvm_err *err);
/* -i/-I: stripes and stripe size. */
int parse_stripes(json_t *opts, const struct dlvm_vg *vg, uint16_t *stripes, uint32_t *ssize,
		  struct dlvm_err *err);
/* -a VALUE: y, ey, ay, sy, n. */
int parse_activate(const char *cmd, const char *a, bool *on, enum dlvm_hold_mode *mode,
		   struct dlvm_err *err);

/* ---- thin pools and volumes (thin.c) ---- */
/* lvcreate --type thin-pool / lvcreate -V SIZE -T VG/POOL */
int thin_pool_create(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const char *name, json_t *opts,
		     json_t *args, json_t *resp, struct dlvm_err *err);
int thin_lv_create(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const char *name, json_t *opts,
		   json_t *resp, struct dlvm_err *err);
/* lvremove of a thin LV or a pool (after the usual checks). */
int thin_remove(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *resp,
		struct dlvm_err *err);
/* lvextend/lvresize of a thin LV (virtual size) or pool (data area). */
int thin_resize(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, json_t *opts,
		json_t *resp, struct dlvm_err *err);
/* lvcreate -s / --clone SOURCE: a read-only snapshot or a writable clone. */
int thin_snapshot_create(struct dlvm_ctx *ctx, const char *source, const char *name, bool clone,
			 json_t *opts, json_t *resp, struct dlvm_err *err);
/* -EBUSY listing the clones of a snapshot (lvremove refuses it). */
int thin_refuse_remove(const struct dlvm_vg *vg, const struct dlvm_lv *lv, struct dlvm_err *err);
/* lvextend --poolmetadatasize [+]SIZE VG/POOL */
int thin_pool_grow_meta(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *pool,
			json_t *opts, json_t *resp, struct dlvm_err *err);
/* lvs fields of thin pools and volumes. */
void thin_report(struct dlvm_ctx *ctx, struct dlvm_vg *vg, const struct dlvm_lv *lv, json_t *row);
/* dlvm check: every pool's store. */
int thin_check_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_check_report *rep,
		  struct dlvm_err *err);

/* ---- the flatten job (flatten.c) ---- */
/* lvconvert --flatten of clone lv (its own family): in dlvmd a background job
 * copying at `rate` bytes per second (0: no limit), inside the command
 * otherwise. */
int flatten_family(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, uint64_t rate,
		   bool background, json_t *resp, struct dlvm_err *err);

/* "VG/LV" of a thin LV for lvconvert WHAT or a snapshot's source. */
int thin_source(struct dlvm_ctx *ctx, const char *path, const char *what, struct dlvm_vg **vg,
		struct dlvm_lv **lv, struct dlvm_err *err);
/* The writable clones made from lv, as "a, b" (empty: none). */
void clones_of(const struct dlvm_vg *vg, const struct dlvm_lv *lv, char *out, size_t len);
/* After a clone's family forgot its origin (id): the hidden snapshot it read
 * through goes when no clone reads it any more. */
void drop_clone_source(struct dlvm_ctx *ctx, struct dlvm_vg *vg, uint64_t id, json_t *resp);

#endif
