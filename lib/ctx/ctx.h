/* SPDX-License-Identifier: MIT */
/*
 * Internal API of the command context (lib/ctx/): what every layer above it
 * (cluster, agent, jobs, commands) uses to find devices, VGs and LVs, to read
 * a request and answer it, and to export LVs through the front end's hooks.
 * The public part is in dlvm/cmd.h.
 */
#ifndef DLVM_CTX_INT_H
#define DLVM_CTX_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "dlvm/cmd.h"
#include "dlvm/vg.h"

/* ---- request and response (request.c) ---- */
/* option access: NULL / false when absent */
const char *opt_str(json_t *opts, const char *key);
bool opt_flag(json_t *opts, const char *key);
/* Positional argument i, or NULL. */
const char *arg_str(json_t *args, size_t i);

void resp_message(json_t *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_warning(json_t *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Split "VG/LV" (also "/dev/VG/LV"); -EINVAL with a message. */
int split_lv_path(const char *path, char *vg, char *lv, struct dlvm_err *err);

/* ---- devices and loaded VGs (context.c) ---- */

/* A device argument: an open device the context already holds (as a PV of a
 * loaded VG or as an orphan), found by path; or opened (and locked) now and
 * kept as an orphan. *vg_out is the VG holding it (NULL: orphan). */
int ctx_device(struct dlvm_ctx *ctx, const char *path, bool open_new, struct dlvm_dev **dev_out,
	       struct dlvm_vg **vg_out, struct dlvm_pv **pv_out, struct dlvm_err *err);
/* Take an orphan device out of ctx->orphans (the caller owns it then). */
void ctx_take_orphan(struct dlvm_ctx *ctx, struct dlvm_dev *dev);
/* ctx_device for a command's checking pass: *opened is the device when this
 * call opened it (it was not known before). */
int ctx_device_checked(struct dlvm_ctx *ctx, const char *path, struct dlvm_dev **dev,
		       struct dlvm_vg **vg, struct dlvm_dev **opened, struct dlvm_err *err);
/* After a refusal: close the n devices (NULL entries skipped) that checking
 * opened, so that nothing stays open and locked (dlvmd keeps its devices
 * open). */
void ctx_drop_opened(struct dlvm_ctx *ctx, struct dlvm_dev **opened, size_t n);
int ctx_add_orphan(struct dlvm_ctx *ctx, struct dlvm_dev *dev);
/* Add/remove an absolute path to/from the devices file (when in use). */
int ctx_devices_file_add(struct dlvm_ctx *ctx, const char *path, struct dlvm_err *err);
int ctx_devices_file_remove(struct dlvm_ctx *ctx, const char *path, struct dlvm_err *err);
void ctx_add_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg);
/* Rewrite the valid but stale metadata copies of vg from the model (a copy
 * left behind by an interrupted change), warning in ctx->warnings. */
void ctx_resync_stale(struct dlvm_ctx *ctx, struct dlvm_vg *vg);
void ctx_drop_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg);

/* ---- LVs and their exports (activate.c) ---- */

/* "VG/LV" to the loaded VG and LV; -ENOENT with LVM's message. */
int find_lv(struct dlvm_ctx *ctx, const char *path, struct dlvm_vg **vg, struct dlvm_lv **lv,
	    struct dlvm_err *err);
/* Export hooks (no-ops without dlvmd). */
int activate(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, const char *old_name,
	     struct dlvm_err *err);
bool is_active(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv);
int deactivate(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, bool force,
	       struct dlvm_err *err);
/* NBD clients connected to lv's export (0 without dlvmd). */
unsigned lv_clients(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv);
/* -EBUSY when NBD clients are connected and !force. */
int refuse_busy(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv, bool force,
		struct dlvm_err *err);

#endif
