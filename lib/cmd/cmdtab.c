/* SPDX-License-Identifier: MIT */
/* The command table: every command, its options and its implementation,
 * declared once. The CLI parses argv from it; dlvm_cmd_run checks requests
 * against it whichever way they came. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/jobs/jobs.h"
#include "lib/cmd/cmd_int.h"

#define OPT_FORCE \
	{ \
		'f', "force", DLVM_OPT_FLAG, NULL, "do it even where it is refused by default" \
	}
#define OPT_YES \
	{ \
		'y', "yes", DLVM_OPT_FLAG, NULL, "answer yes to every question" \
	}
#define OPT_LOCK_WAIT \
	{ \
		0, "lock-wait", DLVM_OPT_VALUE, "SECONDS", \
				"shared VG: wait up to " \
				"SECONDS (at most 300) while another host's activation conflicts " \
				"(default 0: fail at once)" \
	}
#define END \
	{ \
		0, NULL, 0, NULL, NULL \
	}

static const struct dlvm_opt_def pvcreate_opts[] = {
	{ 0, "size", DLVM_OPT_VALUE, "SIZE", "create PATH as a sparse file of SIZE first" },
	{ 0, "metadatasize", DLVM_OPT_VALUE, "SIZE",
	  "size of the metadata area (default: "
	  "1/16 of the device, at most 64m)" },
	{ 0, "sectorsize", DLVM_OPT_VALUE, "512|4096",
	  "sector size to record (default: the "
	  "device's)" },
	OPT_FORCE,
	OPT_YES,
	END,
};
static const struct dlvm_opt_def pvremove_opts[] = { OPT_FORCE, OPT_YES, END };
static const struct dlvm_opt_def report_opts[] = {
	{ 'a', "all", DLVM_OPT_FLAG, NULL, "also list devices that are not PVs" },
	END,
};
static const struct dlvm_opt_def lvs_opts[] = {
	{ 'a', "all", DLVM_OPT_FLAG, NULL, "also list internal LVs ([lvmlock])" },
	END,
};
static const struct dlvm_opt_def vgcreate_opts[] = {
	{ 's', "physicalextentsize", DLVM_OPT_VALUE, "SIZE", "extent size (default 4m)" },
	{ 0, "shared", DLVM_OPT_FLAG, NULL,
	  "a VG many hosts change: with a lease area in a "
	  "hidden LV [lvmlock] on the first PV" },
	{ 0, "max-hosts", DLVM_OPT_VALUE, "N",
	  "with --shared: host ids 1..N (default 2000); "
	  "fewer make a smaller lease area" },
	END,
};
static const struct dlvm_opt_def vgremove_opts[] = { OPT_FORCE, OPT_YES, END };
static const struct dlvm_opt_def vgreduce_opts[] = {
	{ 0, "removemissing", DLVM_OPT_FLAG, NULL,
	  "remove PVs that are missing (-f: also the "
	  "LVs that use them)" },
	OPT_FORCE,
	END,
};
static const struct dlvm_opt_def none_opts[] = { END };
static const struct dlvm_opt_def vgchange_opts[] = {
	{ 'a', "activate", DLVM_OPT_VALUE, "y|ey|sy|n",
	  "activate or deactivate every LV (shared "
	  "VG: y and ey lock exclusively to this host, sy shared)" },
	OPT_FORCE,
	OPT_LOCK_WAIT,
	END,
};
static const struct dlvm_opt_def lvcreate_opts[] = {
	{ 'n', "name", DLVM_OPT_VALUE, "NAME", "name of the new LV (default lvolN)" },
	{ 'L', "size", DLVM_OPT_VALUE, "SIZE", "size (default unit m)" },
	{ 'l', "extents", DLVM_OPT_VALUE, "N[%VG|%FREE]", "size in extents" },
	{ 'i', "stripes", DLVM_OPT_VALUE, "N", "number of stripes" },
	{ 'I', "stripesize", DLVM_OPT_VALUE, "SIZE", "stripe size (default 64k)" },
	{ 'a', "activate", DLVM_OPT_VALUE, "y|ey|sy|n",
	  "activate the new LV (default y: in a "
	  "shared VG exclusively on this host)" },
	{ 'p', "permission", DLVM_OPT_VALUE, "r|rw", "access permission (default rw)" },
	{ 'Z', "zero", DLVM_OPT_VALUE, "y|n",
	  "zero the first 4 KiB (default y); for a thin pool: zero each new "
	  "chunk before its first write (default n: its unwritten parts read as zeros)" },
	{ 0, "type", DLVM_OPT_VALUE, "linear|striped|thin|thin-pool",
	  "kind of LV (default linear; "
	  "striped with -i)" },
	{ 'T', "thin", DLVM_OPT_FLAG, NULL,
	  "with -V: a thin volume in the pool VG/POOL; with -L: "
	  "a thin pool VG/POOL" },
	{ 'V', "virtualsize", DLVM_OPT_VALUE, "SIZE",
	  "size of a thin volume (may exceed the pool)" },
	{ 0, "thinpool", DLVM_OPT_VALUE, "POOL", "the pool of a new thin volume" },
	{ 's', "snapshot", DLVM_OPT_FLAG, NULL, "a read-only snapshot of the thin volume VG/LV" },
	{ 0, "clone", DLVM_OPT_FLAG, NULL,
	  "a writable clone of the thin volume or snapshot VG/LV" },
	{ 'c', "chunksize", DLVM_OPT_VALUE, "SIZE",
	  "thin pool chunk size: power of two, 4k to 1m "
	  "(default 64k)" },
	{ 0, "poolmetadatasize", DLVM_OPT_VALUE, "SIZE",
	  "thin pool metadata size (default about "
	  "48 bytes a chunk, at least 4m)" },
	{ 0, "addtag", DLVM_OPT_LIST, "TAG", "add a tag to the new LV (needs its name)" },
	{ 0, "property", DLVM_OPT_LIST, "KEY=VALUE", "set a property of the new LV" },
	OPT_YES,
	END,
};
static const struct dlvm_opt_def lvremove_opts[] = { OPT_FORCE, OPT_YES, OPT_LOCK_WAIT, END };
static const struct dlvm_opt_def lvresize_opts[] = {
	{ 'L', "size", DLVM_OPT_VALUE, "[+|-]SIZE", "new size or change (default unit m)" },
	{ 0, "poolmetadatasize", DLVM_OPT_VALUE, "[+]SIZE", "thin pool: grow its metadata LV" },
	{ 'l', "extents", DLVM_OPT_VALUE, "[+|-]N[%VG|%FREE]", "new size in extents" },
	{ 'i', "stripes", DLVM_OPT_VALUE, "N", "stripes of the new part" },
	{ 'I', "stripesize", DLVM_OPT_VALUE, "SIZE", "stripe size of the new part" },
	OPT_FORCE,
	OPT_YES,
	END,
};
static const struct dlvm_opt_def lvchange_opts[] = {
	{ 'a', "activate", DLVM_OPT_VALUE, "y|ey|sy|n",
	  "activate or deactivate (shared VG: y "
	  "and ey exclusively on this host, sy shared with other hosts)" },
	{ 'p', "permission", DLVM_OPT_VALUE, "r|rw", "make the LV read-only or writable" },
	{ 0, "addtag", DLVM_OPT_LIST, "TAG", "add a tag (kept in the VG's journal)" },
	{ 0, "deltag", DLVM_OPT_LIST, "TAG", "remove a tag" },
	{ 0, "property", DLVM_OPT_LIST, "KEY=VALUE",
	  "set a property (kept in the VG's journal; a value given on the command line cannot "
	  "hold a comma)" },
	{ 0, "delproperty", DLVM_OPT_LIST, "KEY", "remove a property" },
	OPT_FORCE,
	OPT_YES,
	OPT_LOCK_WAIT,
	END,
};
static const struct dlvm_opt_def lvconvert_opts[] = {
	{ 0, "merge", DLVM_OPT_FLAG, NULL,
	  "revert the snapshot's (inactive) origin to it and "
	  "remove the snapshot" },
	{ 0, "flatten", DLVM_OPT_FLAG, NULL, "make a clone independent of its origin" },
	{ 'b', "background", DLVM_OPT_FLAG, NULL,
	  "a flatten that copies: return at once, the "
	  "copy goes on in dlvmd (dlvm jobs shows it)" },
	{ 'i', "interval", DLVM_OPT_VALUE, "SECONDS",
	  "while waiting for a flatten's copy, report "
	  "its progress this often (default 5)" },
	{ 0, "maxrecoveryrate", DLVM_OPT_VALUE, "RATE",
	  "copy at most RATE per second (size "
	  "suffixes as -L; 0: no limit, the default)" },
	OPT_YES,
	END,
};
static const struct dlvm_opt_def check_opts[] = {
	{ 0, "repair", DLVM_OPT_FLAG, NULL, "rewrite stale or damaged metadata copies" },
	END,
};

const struct dlvm_cmd_def dlvm_commands[] = {
	{ "pvcreate", "pvcreate [--size SIZE] [--metadatasize SIZE] [-f] PATH...",
	  "initialize devices or files as physical volumes", DLVM_CMD_MUTATES, pvcreate_opts,
	  cmd_pvcreate },
	{ "pvremove", "pvremove [-f] PV...", "remove the PV label from devices", DLVM_CMD_MUTATES,
	  pvremove_opts, cmd_pvremove },
	{ "pvs", "pvs [PV...]", "report physical volumes", DLVM_CMD_REPORT, report_opts, cmd_pvs },
	{ "vgcreate", "vgcreate [-s EXTENTSIZE] [--shared [--max-hosts N]] VG PV...",
	  "create a volume group", DLVM_CMD_MUTATES, vgcreate_opts, cmd_vgcreate },
	{ "vgextend", "vgextend VG PV...", "add physical volumes to a volume group",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0, none_opts, cmd_vgextend },
	{ "vgreduce", "vgreduce VG PV... | vgreduce --removemissing [-f] VG",
	  "remove unused or missing physical volumes from a volume group",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0, vgreduce_opts, cmd_vgreduce },
	{ "vgremove", "vgremove [-f] VG...", "remove volume groups (-f: with their LVs)",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARGS, vgremove_opts, cmd_vgremove },
	{ "vgrename", "vgrename OLD NEW", "rename a volume group",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0, none_opts, cmd_vgrename },
	{ "vgchange", "vgchange -a y|n [VG...]", "activate or deactivate every LV of VGs",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARGS, vgchange_opts, cmd_vgchange },
	{ "vgs", "vgs [VG...]", "report volume groups", DLVM_CMD_REPORT, report_opts, cmd_vgs },
	{ "lvcreate",
	  "lvcreate [-n NAME] (-L SIZE | -l EXTENTS) [-i STRIPES [-I STRIPESIZE]] "
	  "VG [PV...]",
	  "create a logical volume", DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0, lvcreate_opts,
	  cmd_lvcreate },
	{ "lvremove", "lvremove [-f] VG/LV...", "remove logical volumes",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARGS, lvremove_opts, cmd_lvremove },
	{ "lvextend", "lvextend (-L [+]SIZE | -l [+]EXTENTS) VG/LV [PV...]",
	  "grow a logical volume", DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0, lvresize_opts,
	  cmd_lvextend },
	{ "lvreduce", "lvreduce -f (-L [-]SIZE | -l [-]EXTENTS) VG/LV",
	  "shrink a logical volume (cuts data: needs -f)", DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0,
	  lvresize_opts, cmd_lvreduce },
	{ "lvresize", "lvresize (-L [+|-]SIZE | -l [+|-]EXTENTS) VG/LV [PV...]",
	  "grow or (with -f) shrink a logical volume", DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0,
	  lvresize_opts, cmd_lvresize },
	{ "lvrename", "lvrename VG/OLD NEW | VG OLD NEW", "rename a logical volume",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0, none_opts, cmd_lvrename },
	{ "lvconvert",
	  "lvconvert --merge VG/SNAPSHOT | --flatten [-b] [-i SECONDS] [--maxrecoveryrate RATE] "
	  "VG/CLONE",
	  "revert an origin to a thin snapshot, or make a clone independent",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARG0, lvconvert_opts, cmd_lvconvert },
	{ "lvchange", "lvchange [-a y|ey|sy|n] [-p r|rw] [-f] VG/LV...",
	  "activate, deactivate or change the permission of logical volumes",
	  DLVM_CMD_MUTATES | DLVM_CMD_VG_ARGS, lvchange_opts, cmd_lvchange },
	{ "lvs", "lvs [-a] [VG|VG/LV...]", "report logical volumes", DLVM_CMD_REPORT, lvs_opts,
	  cmd_lvs },
	{ "check", "check [--repair] VG...", "verify metadata copies, checksums and extent use",
	  DLVM_CMD_VG_ARGS, check_opts, cmd_check },
	{ "hosts", "hosts VG", "report the hosts in the lockspace of a shared VG", DLVM_CMD_REPORT,
	  none_opts, cmd_hosts },
	{ "jobs", "jobs [ID...]", "report dlvmd's background jobs (a flatten's copy)",
	  DLVM_CMD_REPORT, none_opts, cmd_jobs },
	{ "dump", "dump DEVICE", "decode every on-disk structure of a device", DLVM_CMD_LOCAL,
	  none_opts, cmd_dump },
	{ NULL, NULL, NULL, 0, NULL, NULL },
};

const struct dlvm_cmd_def *dlvm_cmd_find(const char *name)
{
	for (const struct dlvm_cmd_def *c = dlvm_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

const char *dlvm_cmd_report_kind(const struct dlvm_cmd_def *c)
{
	if (!strcmp(c->name, "hosts"))
		return "host";
	if (!strcmp(c->name, "jobs"))
		return "job";
	if (!strncmp(c->name, "pv", 2))
		return "pv";
	if (!strncmp(c->name, "vg", 2))
		return "vg";
	return "lv";
}

static const struct dlvm_opt_def *find_opt(const struct dlvm_cmd_def *c, const char *key)
{
	for (const struct dlvm_opt_def *o = c->opts; o->long_name; o++)
		if (!strcmp(o->long_name, key))
			return o;
	return NULL;
}

/* Wait 100 ms with the command lock let go (dlvmd), so that other commands
 * and the host agent go on meanwhile. */
static void wait_unlocked(struct dlvm_ctx *ctx)
{
	struct timespec d = { 0, 100 * 1000000L };

	if (ctx->cmd_lock)
		pthread_mutex_unlock(ctx->cmd_lock);
	nanosleep(&d, NULL);
	if (ctx->cmd_lock)
		pthread_mutex_lock(ctx->cmd_lock);
}

/*
 * Run c on a loaded context; while another host's activation conflicts
 * (-EBUSY, ctx->lock_conflict), try again every 100 ms for wait_s seconds.
 * The waits hold neither the VG lease (that host must be able to change
 * it) nor the command lock (every other command would wait too). Each try
 * starts from the request alone, as the VGs may have changed meanwhile.
 */
static int run_waiting(struct dlvm_ctx *ctx, const struct dlvm_cmd_def *c, json_t *opts,
		       json_t *args, double wait_s, json_t *resp, struct dlvm_err *err)
{
	bool mutating = (c->flags & DLVM_CMD_MUTATES) || opt_flag(opts, "repair");
	uint64_t t0 = dlvm_now_ms();
	int r;

	for (;;) {
		if (mutating && (r = jobs_refuse(ctx, c, args, err)))
			return r;
		ctx->lock_conflict = false;
		r = shared_cmd_begin(ctx, c, mutating, args, resp, err);
		if (!r) {
			r = c->run(ctx, opts, args, resp, err);
			shared_cmd_end(ctx, resp);
		}
		if (r != -EBUSY || !ctx->lock_conflict ||
		    dlvm_now_ms() - t0 >= (uint64_t)(wait_s * 1000) ||
		    (ctx->lease_clock && ctx->lease_clock->stopping &&
		     ctx->lease_clock->stopping(ctx->lease_clock->priv)))
			return r;
		wait_unlocked(ctx);
		dlvm_err_clear(err);
		json_object_del(resp, "messages");
	}
}

int dlvm_cmd_run(struct dlvm_ctx *ctx, const char *name, json_t *req, json_t *resp,
		 struct dlvm_err *err)
{
	const struct dlvm_cmd_def *c = dlvm_cmd_find(name);
	json_t *opts, *args, *v;
	const char *key;
	size_t i;

	if (!c)
		return dlvm_err_set(err, -EINVAL, "unknown command \"%s\"", name);
	if (!json_is_object(req))
		return dlvm_err_set(err, -EINVAL, "%s: request must be a JSON object", name);
	opts = json_object_get(req, "opts");
	args = json_object_get(req, "args");
	if (opts && !json_is_object(opts))
		return dlvm_err_set(err, -EINVAL, "%s: \"opts\" must be an object", name);
	if (args && !json_is_array(args))
		return dlvm_err_set(err, -EINVAL, "%s: \"args\" must be an array", name);
	json_object_foreach(req, key, v)
	{
		if (strcmp(key, "opts") && strcmp(key, "args"))
			return dlvm_err_set(err, -EINVAL, "%s: unknown request member \"%s\"", name,
					    key);
	}
	json_array_foreach(args, i, v)
	{
		if (!json_is_string(v))
			return dlvm_err_set(err, -EINVAL, "%s: argument %zu must be a string", name,
					    i + 1);
	}
	json_object_foreach(opts, key, v)
	{
		const struct dlvm_opt_def *o = find_opt(c, key);
		if (!o)
			return dlvm_err_set(err, -EINVAL, "%s: unknown option --%s", name, key);
		bool ok = o->kind == DLVM_OPT_FLAG    ? json_is_boolean(v)
			  : o->kind == DLVM_OPT_VALUE ? json_is_string(v)
						      : json_is_array(v) || json_is_string(v);
		if (!ok)
			return dlvm_err_set(err, -EINVAL, "%s: option --%s %s", name, key,
					    o->kind == DLVM_OPT_FLAG ? "takes no value"
								     : "needs a string value");
	}
	json_t *empty_o = NULL, *empty_a = NULL;
	if (!opts)
		opts = empty_o = json_object();
	if (!args)
		args = empty_a = json_array();
	int r = 0;
	if (!(c->flags & DLVM_CMD_LOCAL) && !ctx->loaded)
		r = dlvm_ctx_load(ctx, err);
	double wait_s = 0;
	const char *lw = opt_str(opts, "lock-wait");
	if (!r && lw) {
		char *end;
		wait_s = strtod(lw, &end);
		if (end == lw || *end || !(wait_s >= 0 && wait_s <= DLVM_LOCK_WAIT_MAX))
			r = dlvm_err_set(err, -EINVAL,
					 "%s: --lock-wait takes seconds (0 to %d), "
					 "not \"%s\"",
					 name, DLVM_LOCK_WAIT_MAX, lw);
	}
	if (!r && !(c->flags & DLVM_CMD_LOCAL)) {
		r = run_waiting(ctx, c, opts, args, wait_s, resp, err);
	} else if (!r) {
		r = c->run(ctx, opts, args, resp, err);
	}
	/* warnings the context gathered while loading come along once; one
	 * that the error repeats (a read-only VG refusing the change) is said
	 * by the error alone */
	json_t *x;
	json_array_foreach(ctx->warnings, i, x)
	{
		if (r < 0 && err && strstr(err->msg, json_string_value(x)))
			continue;
		json_t *w = json_object_get(resp, "warnings");
		if (!w) {
			w = json_array();
			json_object_set_new(resp, "warnings", w);
		}
		json_array_append(w, x);
	}
	json_array_clear(ctx->warnings);
	json_decref(empty_o);
	json_decref(empty_a);
	return r;
}
