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

/* The context's state; only the library sees it (dlvm/cmd.h: opaque). The
 * first fields are the options it was made with (struct dlvm_ctx_opts). */
struct shared_vg;
struct dlvm_job;

struct dlvm_ctx {
	bool daemon;                        /* running inside dlvmd: VGs stay loaded */
	uint32_t host_id;                   /* dlvmd --host-id: 0 = none (shared VGs read-only) */
	uint32_t io_timeout;                /* seconds for lockspaces (0: the lease area's) */
	uint32_t thin_autoextend_threshold; /* dlvmd: grow a thin pool this full (percent;
					     * 100 or 0: never) */
	uint32_t thin_autoextend_percent;   /* by this percent of its size */
	char lease_name[64];                /* owner name in lockspaces (dlvm_ctx_join) */
	const struct dlvm_lease_clock *lease_clock; /* of the lockspaces (NULL: the real
						     * one); dlvmd's stops a join on SIGTERM */
	uint32_t lease_wait_ms;                     /* a change waits this long for a busy VG lease
				     * (0: the larger of 2T and 10 s) */
	struct shared_vg **shared;                  /* lockspaces of shared VGs (lib/cluster/) */
	size_t nshared;
	char *state_dir;    /* owned; NULL: none */
	char *pv_dir;       /* owned, absolute, no links; NULL: paths are not confined */
	char *devices_file; /* owned; STATE_DIR/devices, NULL: none */
	char **devices;     /* owned paths the context may scan */
	size_t ndevices;
	bool devices_given;   /* --devices was given: don't edit the file */
	struct dlvm_vg **vgs; /* loaded VGs */
	size_t nvg;
	struct dlvm_dev **orphans; /* open devices that belong to no loaded VG */
	size_t norphans;
	const struct dlvm_export_hooks *hooks; /* NULL: no activation (CLI) */
	json_t *warnings;                      /* problems seen while loading (array) */
	bool loaded;                           /* dlvm_ctx_load has run */
	bool lock_conflict;                    /* the last command failed on another host's lock */
	pthread_mutex_t *cmd_lock;             /* dlvmd: what its commands run under; background
				     * jobs take it between their steps (NULL: a job
				     * runs inside its command) */
	struct dlvm_job *jobs;                 /* background jobs, newest first (lib/jobs/job.c) */
	uint64_t job_seq;                      /* the last job id given */
	/* Set by the layers above the context, so that it can end what they
	 * started without knowing them: dlvm_ctx_free calls stop_jobs
	 * (lib/jobs, set by the first job) and then leave (lib/cluster, set
	 * by the first join); lv_job_running tells the activation records
	 * whether a job here still works on an LV. NULL: nothing to do. */
	void (*stop_jobs)(struct dlvm_ctx *ctx);
	void (*leave)(struct dlvm_ctx *ctx);
	bool (*lv_job_running)(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, uint64_t lv_id);
};

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

/*
 * May a request name path (paths.c)? Always, without ctx->pv_dir. With it:
 * when path is a managed device (in the device list, or open as a PV of a
 * loaded VG or an orphan), or when it lies in ctx->pv_dir once links and
 * ".." of its directory are resolved (the last component may be a link
 * there: only who may write the directory can make one). Otherwise -EACCES,
 * with a message that is the same whether path exists or not.
 */
int ctx_path_allowed(struct dlvm_ctx *ctx, const char *path, struct dlvm_err *err);

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
/* Add a VG to the loaded ones, with a new runtime (dlvm/runtime.h) that
 * the context owns: freed with the VG. Aborts when out of memory. */
void ctx_add_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg);
/* A reload: nv, a new model of loaded VG vg, takes vg's place and its
 * runtime (vg has none then; the caller frees it). */
void ctx_replace_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_vg *nv);
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
int refuse_busy(struct dlvm_ctx *ctx, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		bool force, struct dlvm_err *err);

#endif
