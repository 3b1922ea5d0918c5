/* SPDX-License-Identifier: MIT */
/* Internal helpers of the command implementations. */
#ifndef DLVM_OPS_H
#define DLVM_OPS_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "dlvm/cmd.h"
#include "dlvm/vg.h"

/* option access: NULL / false when absent */
const char *opt_str(json_t *opts, const char *key);
bool opt_flag(json_t *opts, const char *key);
/* Positional argument i, or NULL. */
const char *arg_str(json_t *args, size_t i);

void resp_message(json_t *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void resp_warning(json_t *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Split "VG/LV" (also "/dev/VG/LV"); -EINVAL with a message. */
int split_lv_path(const char *path, char *vg, char *lv, struct dlvm_err *err);

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

/* ---- LV helpers (cmd_lv.c) ---- */
/* "VG/LV" to the loaded VG and LV; -ENOENT with LVM's message. */
int find_lv(struct dlvm_ctx *ctx, const char *path, struct dlvm_vg **vg, struct dlvm_lv **lv,
	    struct dlvm_err *err);
/* PV arguments (paths) from position `from` on, as PV ids (malloc'ed). */
int pv_filter(struct dlvm_ctx *ctx, struct dlvm_vg *vg, json_t *args, size_t from, uint32_t **ids,
	      size_t *n, struct dlvm_err *err);
/* The size from -L/-l in extents; cur and sign_ok for resizes. */
int target_extents(const struct dlvm_vg *vg, json_t *opts, uint64_t cur, bool sign_ok,
		   uint16_t stripes, uint64_t *out, struct dlvm_err *err);
/* -a VALUE: y, ey, ay, sy, n. */
int parse_activate(const char *cmd, const char *a, bool *on, enum dlvm_hold_mode *mode,
		   struct dlvm_err *err);
/* Export hooks (no-ops without dlvmd). */
int activate(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, const char *old_name,
	     struct dlvm_err *err);
bool is_active(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv);
int deactivate(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_lv *lv, bool force,
	       struct dlvm_err *err);
/* -EBUSY when NBD clients are connected and !force. */
int refuse_busy(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv, bool force,
		struct dlvm_err *err);
/* Cut lv's segment list down to `keep` extents (a copy). */
int segs_cut(const struct dlvm_lv *lv, uint64_t keep, struct dlvm_seg_desc ***out,
	     uint32_t *nout);
/* Append segments b (taken: the entries become NULL) after a copy of a,
 * merging a linear segment into the previous one when the areas are
 * adjacent on the same PV. */
int segs_join(struct dlvm_seg_desc *const *a, uint32_t na, struct dlvm_seg_desc **b,
	      uint32_t nb, struct dlvm_seg_desc ***out, uint32_t *nout);
/* Size of an LV in bytes (the virtual size of a thin LV). */
uint64_t lv_bytes(const struct dlvm_vg *vg, const struct dlvm_lv *lv);

/* ---- thin pools and volumes (cmd_thin.c) ---- */
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

/* Command implementations (cmd_*.c) */
#define DLVM_CMD_FN(name)                                                                          \
	int name(struct dlvm_ctx *ctx, json_t *opts, json_t *args, json_t *resp,               \
		 struct dlvm_err *err)
DLVM_CMD_FN(cmd_pvcreate);
DLVM_CMD_FN(cmd_pvremove);
DLVM_CMD_FN(cmd_pvs);
DLVM_CMD_FN(cmd_vgcreate);
DLVM_CMD_FN(cmd_vgextend);
DLVM_CMD_FN(cmd_vgreduce);
DLVM_CMD_FN(cmd_vgremove);
DLVM_CMD_FN(cmd_vgrename);
DLVM_CMD_FN(cmd_vgs);
DLVM_CMD_FN(cmd_vgchange);
DLVM_CMD_FN(cmd_lvcreate);
DLVM_CMD_FN(cmd_lvremove);
DLVM_CMD_FN(cmd_lvextend);
DLVM_CMD_FN(cmd_lvresize);
DLVM_CMD_FN(cmd_lvreduce);
DLVM_CMD_FN(cmd_lvrename);
DLVM_CMD_FN(cmd_lvchange);
DLVM_CMD_FN(cmd_lvconvert);
DLVM_CMD_FN(cmd_lvs);
DLVM_CMD_FN(cmd_check);
DLVM_CMD_FN(cmd_hosts);
DLVM_CMD_FN(cmd_jobs);
DLVM_CMD_FN(cmd_dump);

/* ---- background jobs (jobs.c) ---- */
enum job_state { JOB_RUNNING, JOB_DONE, JOB_FAILED };
struct dlvm_job {
	struct dlvm_job *next;
	struct dlvm_ctx *ctx;
	uint64_t id;
	const char *type;                 /* "flatten" */
	char vg[DLVM_NAME_MAX + 1];
	char lv[DLVM_NAME_MAX + 1];       /* the LV's name when the job started */
	uint64_t lv_id;
	_Atomic uint64_t done, total;     /* progress, in the job's own units */
	_Atomic uint64_t copied;          /* bytes copied so far */
	uint64_t rate;                    /* the limit it copies at, bytes per second; 0 none */
	atomic_bool stop;                 /* dlvmd stops: end soon, keep what is done */
	/* under the command lock: */
	enum job_state state;
	int r;                            /* the outcome, with err */
	struct dlvm_err err;
	json_t *resp;                     /* the messages and warnings it ended with */
	uint64_t started_ms, ended_ms;
	int (*run)(struct dlvm_job *j, json_t *resp, struct dlvm_err *err);
	void *arg;
	void (*free_arg)(void *arg);
	pthread_t thread;
};
/*
 * From a command (the command lock held, ctx->cmd_lock set): start job
 * `type` on lv, its progress going from 0 to total. run(j, resp, err) runs
 * in a thread of its own, without the command lock: it takes it (job_lock)
 * around its steps that need the context. Once started, arg belongs to the
 * job's thread. resp gets "job": {id, type, lv}. arg is freed with free_arg when
 * the job is forgotten (also when it cannot start).
 */
int job_start(struct dlvm_ctx *ctx, const char *type, const struct dlvm_vg *vg,
	      const struct dlvm_lv *lv, uint64_t total,
	      int (*run)(struct dlvm_job *j, json_t *resp, struct dlvm_err *err),
	      void *arg, void (*free_arg)(void *arg), json_t *resp, struct dlvm_err *err);
void job_lock(struct dlvm_job *j);
void job_unlock(struct dlvm_job *j);
/* How far job j is, 0 to 100. */
double job_percent(const struct dlvm_job *j);
/* The running job on LV lv_id of vg, or NULL. */
const struct dlvm_job *job_running_on(struct dlvm_ctx *ctx, const struct dlvm_vg *vg,
				      uint64_t lv_id);
/* -EBUSY when a mutating command c names the LV of a running job (or
 * removes, renames or changes its VG). */
int jobs_refuse(struct dlvm_ctx *ctx, const struct dlvm_cmd_def *c, json_t *args,
		struct dlvm_err *err);

/* ---- shared VGs (shared.c) ---- */

/* The hidden LV holding the lease area of a shared VG, or NULL. */
struct dlvm_lv *shared_lockspace_lv(const struct dlvm_vg *vg);
/* Can the LV be exported over NBD (not internal, not a thin pool)? */
bool lv_exportable(const struct dlvm_lv *lv);
/* Internal LVs (hidden, lockspace) that users do not change. */
bool lv_is_internal(const struct dlvm_lv *lv);
/* -EPERM "vg/lvmlock: cannot WHAT [lvmlock]: ..." for an internal LV, else 0. */
int refuse_internal(const struct dlvm_vg *vg, const struct dlvm_lv *lv, const char *what,
		    struct dlvm_err *err);
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

/* lv_attr string (10 characters + NUL) */
void lv_attr(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
	     char out[11]);

#endif
