/* SPDX-License-Identifier: MIT */
/*
 * Commands: the one implementation of every dlvm command, shared by dlvmd
 * (which runs them for the CLI over its API) and by the CLI itself when no
 * daemon runs. The command and option table is declared once here; the CLI
 * parses argv from it and the API validates requests against it.
 *
 * A request is a JSON object {"opts": {LONG_NAME: value, ...}, "args": [..]}:
 * option values are the strings the user typed (flags are true, repeatable
 * options are arrays of strings), args are the positional arguments. Sizes
 * are parsed by the command, so the CLI and the API accept the same text.
 *
 * A response is a JSON object with any of:
 *   "messages": [ "Logical volume \"disk1\" created.", ... ]
 *   "warnings": [ "...", ... ]
 *   "report":   { "kind": "lv"|"vg"|"pv"|"host", "rows": [ {field: value} ] }
 *               sizes are integers in bytes; see dlvm_report_fields().
 *   "text":     free text printed as is (dump, check)
 */
#ifndef DLVM_CMD_H
#define DLVM_CMD_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/err.h"

struct dlvm_vg;
struct dlvm_lv;

enum dlvm_opt_kind {
	DLVM_OPT_FLAG,  /* boolean, no value */
	DLVM_OPT_VALUE, /* one value (the last one given wins) */
	DLVM_OPT_LIST,  /* repeatable; values also split on ',' */
};

struct dlvm_opt_def {
	char short_name;       /* 0 if none */
	const char *long_name; /* JSON key */
	enum dlvm_opt_kind kind;
	const char *metavar; /* for help: "SIZE" */
	const char *help;
};

enum {
	DLVM_CMD_MUTATES = 1 << 0, /* changes metadata */
	DLVM_CMD_LOCAL = 1 << 1,   /* always runs in the CLI (dump) */
	DLVM_CMD_REPORT = 1 << 2,  /* prints a report: -o, --units, --reportformat apply */
	DLVM_CMD_VG_ARG0 = 1 << 3, /* args[0] names the VG it works on (VG or VG/LV) */
	DLVM_CMD_VG_ARGS = 1 << 4, /* every argument names a VG (VG or VG/LV) */
};

struct dlvm_ctx;

struct dlvm_cmd_def {
	const char *name;
	const char *usage; /* "lvcreate -n NAME (-L SIZE | -l EXTENTS) VG" */
	const char *summary;
	unsigned flags;
	const struct dlvm_opt_def *opts; /* terminated by long_name == NULL */
	int (*run)(struct dlvm_ctx *ctx, json_t *opts, json_t *args, json_t *resp,
		   struct dlvm_err *err);
};

/* The table, terminated by name == NULL. */
extern const struct dlvm_cmd_def dlvm_commands[];
const struct dlvm_cmd_def *dlvm_cmd_find(const char *name);
/* The report kind a DLVM_CMD_REPORT command answers with ("lv", "host"...). */
const char *dlvm_cmd_report_kind(const struct dlvm_cmd_def *c);

/*
 * Run a command. Checks the request against the command's options (unknown
 * option, value where a flag is expected: -EINVAL), then runs it. Returns 0
 * and fills resp (a JSON object the caller created), or -errno with err set;
 * resp may still hold warnings then.
 *
 * A command that changes a shared VG runs under that VG's lease (see
 * dlvm_ctx_join): -EROFS outside dlvmd or without a host id, -EBUSY when
 * another host keeps the lease longer than 2 * io_timeout. It first reloads
 * the VG from its devices, so it sees every change other hosts committed.
 *
 * In dlvmd the caller holds the context's command lock (dlvm_ctx_set_cmd_lock).
 * A command asked to wait for another host's activation (--lock-wait, at most
 * DLVM_LOCK_WAIT_MAX seconds) lets that lock go between its tries, so other
 * commands run meanwhile; it gives up when the daemon stops.
 */
#define DLVM_LOCK_WAIT_MAX 300
int dlvm_cmd_run(struct dlvm_ctx *ctx, const char *name, json_t *req, json_t *resp,
		 struct dlvm_err *err);

/* ---- report fields (the CLI formats rows with these) ---- */
enum dlvm_field_type { DLVM_FIELD_STR, DLVM_FIELD_SIZE, DLVM_FIELD_NUM };
struct dlvm_field_def {
	const char *name;    /* "lv_size": the key in report rows */
	const char *heading; /* "LSize" */
	enum dlvm_field_type type;
};
/* Fields of kind "pv", "vg", "lv" or "host" (terminated by name == NULL) and the
 * default column list ("lv_name,vg_name,lv_attr,lv_size"). */
const struct dlvm_field_def *dlvm_report_fields(const char *kind, const char **defaults);

/*
 * ---- context ----
 *
 * What a command runs against. dlvmd keeps one context for its lifetime
 * (VGs stay loaded, devices stay open and locked, hooks export LVs); the CLI
 * makes one per command (devices opened and flock'ed for the command only).
 */
struct dlvm_export_hooks {
	void *priv;
	/* Export lv, or replace its export's map after a change (size, flags).
	 * With old_name != NULL the LV was just renamed from old_name: if an
	 * export of the old name exists, rename it (open connections stay) and
	 * refresh its map; if none exists, do nothing. */
	int (*activate)(void *priv, struct dlvm_vg *vg, struct dlvm_lv *lv, const char *old_name,
			struct dlvm_err *err);
	/* Stop exporting lv. -EBUSY (message with the client count) when
	 * clients are connected and !force; with force they are disconnected
	 * and their in-flight I/O has finished when this returns. */
	int (*deactivate)(void *priv, struct dlvm_vg *vg, struct dlvm_lv *lv, bool force,
			  struct dlvm_err *err);
	bool (*is_active)(void *priv, const struct dlvm_vg *vg, const struct dlvm_lv *lv);
	unsigned (*clients)(void *priv, const struct dlvm_vg *vg, const struct dlvm_lv *lv);
	/* The VG was renamed: re-key its exports (old and new VG name). */
	void (*vg_renamed)(void *priv, struct dlvm_vg *vg, const char *old_name);
};

struct dlvm_lease_clock;

/* What a context is made with: the front end's settings (dlvmd fills them
 * from its option table, the CLI from its arguments). Zero is the default
 * of every field. The strings are copied. */
struct dlvm_ctx_opts {
	const char *state_dir;              /* NULL: none (no devices file) */
	const char *devices;                /* comma separated paths; replace the devices
				      * file's list when given */
	bool daemon;                        /* running inside dlvmd: VGs stay loaded */
	uint32_t host_id;                   /* dlvmd --host-id: 0 = none (shared VGs read-only) */
	uint32_t io_timeout;                /* seconds for lockspaces (0: the lease area's) */
	uint32_t thin_autoextend_threshold; /* grow a thin pool this full (percent;
					     * 100 or 0: never) */
	uint32_t thin_autoextend_percent;   /* by this percent of its size */
	const char *lease_name;             /* owner name in lockspaces (dlvm_ctx_join): host
				      * name plus state dir, so a restarted daemon
				      * re-acquires its host id at once */
	const struct dlvm_lease_clock *lease_clock; /* of the lockspaces (NULL: the real
						     * one); dlvmd's stops a join on SIGTERM */
	uint32_t lease_wait_ms;                     /* a change waits this long for a busy VG lease
				      * (0: the larger of 2T and 10 s) */
	const struct dlvm_export_hooks *hooks;      /* NULL: no activation (CLI) */
	/* dlvmd: the paths a request names (pvcreate, pvremove, vgcreate,
	 * vgextend, dump) must be managed devices (the device list, the PVs
	 * of the loaded VGs) or lie in this directory, which must exist;
	 * anything else is refused with -EACCES. NULL: any path (the CLI
	 * running a command in its own process, as its user). */
	const char *pv_dir;
};

/* A context is opaque; its state (devices, loaded VGs, lockspaces, jobs)
 * belongs to the library. */
struct dlvm_ctx;

/*
 * Make a context from opts (NULL: all defaults). -EINVAL for an unreadable
 * devices file, -ENOMEM. Free it with dlvm_ctx_free, which closes every
 * device, stops every job and leaves every lockspace (NULL: nothing).
 */
int dlvm_ctx_new(const struct dlvm_ctx_opts *opts, struct dlvm_ctx **out, struct dlvm_err *err);
void dlvm_ctx_free(struct dlvm_ctx *ctx);
/* The loaded VGs (after dlvm_ctx_load): count and the i-th, borrowed. */
size_t dlvm_ctx_vg_count(const struct dlvm_ctx *ctx);
struct dlvm_vg *dlvm_ctx_vg_at(const struct dlvm_ctx *ctx, size_t i);
/* Open devices that belong to no loaded VG. */
size_t dlvm_ctx_orphan_count(const struct dlvm_ctx *ctx);
/* Problems seen while loading and joining: a JSON array of strings, borrowed. */
json_t *dlvm_ctx_warnings(const struct dlvm_ctx *ctx);
uint32_t dlvm_ctx_host_id(const struct dlvm_ctx *ctx);
/* dlvmd: the mutex its commands run under; background jobs and the host
 * agent take it between their steps (NULL: a job runs inside its command). */
void dlvm_ctx_set_cmd_lock(struct dlvm_ctx *ctx, pthread_mutex_t *lock);
/* The lock set by dlvm_ctx_set_cmd_lock (NULL: none): another front end of
 * dlvmd (the Cinder API) runs its commands and reads the model under it. */
pthread_mutex_t *dlvm_ctx_cmd_lock(const struct dlvm_ctx *ctx);
/* Replace the export hooks (NULL: none; dlvmd drops them when it stops). */
void dlvm_ctx_set_hooks(struct dlvm_ctx *ctx, const struct dlvm_export_hooks *hooks);

/* Open every device of the context (locked) and load every VG found.
 * dlvmd calls this once at start; dlvm_cmd_run calls it when it has not run
 * yet (the CLI's in-process path). */
int dlvm_ctx_load(struct dlvm_ctx *ctx, struct dlvm_err *err);
/*
 * Join the lockspace of every loaded shared VG as ctx->host_id (dlvmd, with a
 * host id): open the lease area in the VG's hidden lockspace LV, acquire the
 * host id under ctx->lease_name (set by the caller: host name plus state
 * dir, so a restart of the same daemon re-acquires at once) and start a
 * thread per VG that renews every renew interval. A shared VG created later
 * in this context joins at once. Errors: -EBUSY "vgs: host id 2 is held by
 * host '...'" and others from dlvm_lockspace_acquire; a lease area that does
 * not decode (-EBADMSG, -ENOTSUP) is not fatal: the VG is refused (changes
 * fail with that message), its area never written, and a warning added to
 * ctx->warnings.
 */
int dlvm_ctx_join(struct dlvm_ctx *ctx, struct dlvm_err *err);
/* Stop the renewal threads and release every lockspace (call after all
 * I/O under them has stopped). dlvm_ctx_free calls it too. */
void dlvm_ctx_leave(struct dlvm_ctx *ctx);

/*
 * The host agent's refresh (dlvmd calls it every renew interval, between
 * commands): for every joined shared VG, look whether another host committed
 * (dlvm_vg_poll: two small reads); if so reload it and bring the exports in
 * line: an LV extended or changed elsewhere gets a new map (new connections
 * see the new size), an export whose LV was removed, renamed or is no longer
 * held by this host is removed and its clients disconnected. Returns the
 * number of VGs reloaded; problems go to stderr.
 */
int dlvm_ctx_refresh(struct dlvm_ctx *ctx);

/*
 * The host agent (dlvmd): a thread that runs dlvm_ctx_refresh (with a host
 * id) and dlvm_ctx_commit_pools every T/4 (without a host id every second;
 * at least 100 ms, at most 1 s), under ctx->cmd_lock, which must be set.
 * dlvm_agent_stop ends it and frees it (NULL: nothing); call it without
 * holding the command lock.
 */
struct dlvm_agent;
int dlvm_agent_start(struct dlvm_ctx *ctx, struct dlvm_agent **out, struct dlvm_err *err);
void dlvm_agent_stop(struct dlvm_agent *agent);

/* Commit every open thin pool of every loaded VG (dlvmd, about once a
 * second): data flushed first, then the store. Problems go to stderr. */
void dlvm_ctx_commit_pools(struct dlvm_ctx *ctx);

/*
 * After dlvm_ctx_join, at dlvmd start: activation records this host left in
 * its previous run (same host id and lease name, the previous generation) are
 * taken over for the new generation and exported again, unless another host
 * replaced them meanwhile. Returns the number of LVs re-adopted.
 */
unsigned dlvm_ctx_adopt(struct dlvm_ctx *ctx);

/* dlvmd stopping (no command runs any more, cmd_lock not held): ask every
 * background job to stop, wait for them and forget them. dlvm_ctx_free
 * calls it too. */
void dlvm_ctx_stop_jobs(struct dlvm_ctx *ctx);

/* A loaded VG by name; -ENOENT with "Volume group \"x\" not found". */
int dlvm_ctx_vg(struct dlvm_ctx *ctx, const char *name, struct dlvm_vg **out, struct dlvm_err *err);

#endif
