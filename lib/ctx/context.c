/* SPDX-License-Identifier: MIT */
/* Command context: the devices a command may use and the VGs on them. */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/runtime.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/meta/meta.h"

static int add_path(struct dlvm_ctx *ctx, const char *p)
{
	for (size_t i = 0; i < ctx->ndevices; i++)
		if (!strcmp(ctx->devices[i], p))
			return 0;
	char **n = realloc(ctx->devices, (ctx->ndevices + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	ctx->devices = n;
	if (!(ctx->devices[ctx->ndevices] = strdup(p)))
		return -ENOMEM;
	ctx->ndevices++;
	return 0;
}

static int ctx_init(struct dlvm_ctx *ctx, const char *state_dir, const char *devices,
		    struct dlvm_err *err)
{
	ctx->warnings = json_array();
	if (state_dir) {
		ctx->state_dir = strdup(state_dir);
		if (asprintf(&ctx->devices_file, "%s/devices", state_dir) < 0)
			ctx->devices_file = NULL;
	}
	if (devices && *devices) {
		char *copy = strdup(devices), *next;
		ctx->devices_given = true;
		if (!copy)
			return dlvm_err_set(err, -ENOMEM, "out of memory");
		for (char *t = copy; t; t = next) {
			if ((next = strchr(t, ',')))
				*next++ = '\0';
			if (*t && add_path(ctx, t)) {
				free(copy);
				return dlvm_err_set(err, -ENOMEM, "out of memory");
			}
		}
		free(copy);
		return 0;
	}
	if (ctx->devices_file) {
		FILE *f = fopen(ctx->devices_file, "r");
		char line[PATH_MAX + 2];
		if (!f) {
			if (errno == ENOENT)
				return 0;
			return dlvm_err_set(err, -errno, "%s: cannot read: %s", ctx->devices_file,
					    strerror(errno));
		}
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\r\n")] = '\0';
			char *s = line;
			while (*s == ' ' || *s == '\t')
				s++;
			if (!*s || *s == '#')
				continue;
			add_path(ctx, s);
		}
		fclose(f);
	}
	return 0;
}

static void warn(struct dlvm_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct dlvm_ctx *ctx, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(ctx->warnings, json_string(buf));
}

int dlvm_ctx_load(struct dlvm_ctx *ctx, struct dlvm_err *err)
{
	size_t n = ctx->ndevices;
	struct dlvm_dev **devs = calloc(n ? n : 1, sizeof(*devs));
	struct dlvm_err *probs = calloc(n ? n : 1, sizeof(*probs));
	struct dlvm_dev **unlocked = calloc(n ? n : 1, sizeof(*unlocked));
	struct dlvm_vg **vgs = NULL;
	size_t nvg = 0;
	char busy[DLVM_ERR_MSG_MAX] = "";
	int r = 0;

	if (!devs || !probs || !unlocked) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct dlvm_err e = { 0 };
		/* dlvmd starting after a crash waits for the dead process's
		 * locks to go */
		int or = dlvm_dev_open(ctx->devices[i],
				       DLVM_DEV_LOCK | (ctx->daemon && !ctx->loaded
									? DLVM_DEV_LOCK_WAIT
									: 0),
				       &devs[i], &e);
		if (or == -EBUSY) {
			/* Another process holds it: fine only for a PV of a shared
			 * VG, which the dlvmd of every host opens. */
			if (!busy[0])
				snprintf(busy, sizeof(busy), "%s", e.msg);
			or = dlvm_dev_open(ctx->devices[i], 0, &devs[i], &e);
			unlocked[i] = devs[i];
		}
		if (or)
			warn(ctx, "%s", e.msg);
	}
	if (dlvm_vg_load_all(devs, n, &vgs, &nvg, probs)) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ctx->loaded = true;
	for (size_t v = 0; v < nvg; v++) {
		struct dlvm_vg *vg = vgs[v];
		bool shared = vg->info.flags & DLVM_VG_SHARED, refused = false;
		for (size_t p = 0; p < vg->npv; p++) {
			struct dlvm_dev *d = vg->pvs[p]->dev;
			for (size_t k = 0; d && k < n; k++)
				refused |= unlocked[k] == d && !shared;
			/* every host opens a shared VG's PVs: no flock */
			if (d && shared && d->fd >= 0)
				flock(d->fd, LOCK_UN);
		}
		if (refused) {
			r = dlvm_err_set(err, -EBUSY, "%s", busy);
			dlvm_vg_free(vg);
			continue;
		}
		/* A copy left behind by an interrupted change (valid but older)
		 * is brought up to date now; damaged copies wait for repair. A
		 * shared VG waits for the VG lease: another host may be writing. */
		if (vg->readonly_why[0])
			warn(ctx, "%s", vg->readonly_why);
		bool resync = !shared && !vg->readonly;
		if (resync)
			ctx_resync_stale(ctx, vg);
		for (size_t p = 0; p < vg->npv; p++) {
			const struct dlvm_mda *m = &vg->pvs[p]->mda;
			if (!vg->pvs[p]->dev) {
				char u[DLVM_UUID_STR];
				dlvm_uuid_unparse(vg->pvs[p]->d.uuid, u);
				warn(ctx, "%s: PV %s is missing", vg->info.name, u);
			} else if (m->problem[0] && !m->in_sync &&
				   (!m->valid || (m->fallback && !resync))) {
				/* damaged, or read from its older header slot and
				 * not rewritten now (the resync warned otherwise) */
				warn(ctx, "%s", m->problem);
			}
		}
		ctx_add_vg(ctx, vg);
	}
	for (size_t i = 0; i < n; i++) {
		if (!devs[i])
			continue;
		if (probs[i].code) {
			/* damaged label or unloadable VG: never treat as an orphan */
			warn(ctx, "%s", probs[i].msg);
			dlvm_dev_close(devs[i]);
			continue;
		}
		bool locked = true;
		for (size_t k = 0; k < n; k++)
			locked &= unlocked[k] != devs[i];
		if (!locked) {
			r = dlvm_err_set(err, -EBUSY, "%s", busy);
			dlvm_dev_close(devs[i]);
			continue;
		}
		ctx_add_orphan(ctx, devs[i]);
	}
out:
	if (r && !ctx->loaded) /* afterwards the devices are in VGs or orphans */
		for (size_t i = 0; i < n; i++)
			dlvm_dev_close(devs ? devs[i] : NULL);
	free(vgs);
	free(probs);
	free(unlocked);
	free(devs);
	return r;
}

void ctx_resync_stale(struct dlvm_ctx *ctx, struct dlvm_vg *vg)
{
	bool stale = false;

	for (size_t p = 0; p < vg->npv; p++)
		stale |= vg->pvs[p]->dev && vg->pvs[p]->mda.valid && !vg->pvs[p]->mda.in_sync;
	if (!stale || vg->readonly)
		return;
	struct dlvm_err ce = { 0 };
	for (size_t p = 0; p < vg->npv; p++)
		if (vg->pvs[p]->dev && vg->pvs[p]->mda.valid && !vg->pvs[p]->mda.in_sync)
			warn(ctx, "%s: brought up to date from the newest copy",
			     vg->pvs[p]->mda.problem);
	if (dlvm_vg_checkpoint(vg, true, &ce))
		warn(ctx, "%s", ce.msg);
}

static void ctx_release(struct dlvm_ctx *ctx)
{
	if (ctx->stop_jobs)
		ctx->stop_jobs(ctx);
	if (ctx->leave)
		ctx->leave(ctx);
	for (size_t i = 0; i < ctx->nvg; i++)
		dlvm_vg_free(ctx->vgs[i]);
	free(ctx->vgs);
	for (size_t i = 0; i < ctx->norphans; i++)
		dlvm_dev_close(ctx->orphans[i]);
	free(ctx->orphans);
	for (size_t i = 0; i < ctx->ndevices; i++)
		free(ctx->devices[i]);
	free(ctx->devices);
	free(ctx->state_dir);
	free(ctx->pv_dir);
	free(ctx->devices_file);
	json_decref(ctx->warnings);
	memset(ctx, 0, sizeof(*ctx));
}

int dlvm_ctx_new(const struct dlvm_ctx_opts *opts, struct dlvm_ctx **out, struct dlvm_err *err)
{
	static const struct dlvm_ctx_opts none;
	const struct dlvm_ctx_opts *o = opts ? opts : &none;
	struct dlvm_ctx *ctx = calloc(1, sizeof(*ctx));
	int r;

	if (!ctx)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	ctx->daemon = o->daemon;
	ctx->host_id = o->host_id;
	ctx->io_timeout = o->io_timeout;
	ctx->thin_autoextend_threshold = o->thin_autoextend_threshold;
	ctx->thin_autoextend_percent = o->thin_autoextend_percent;
	if (o->lease_name)
		snprintf(ctx->lease_name, sizeof(ctx->lease_name), "%s", o->lease_name);
	ctx->lease_clock = o->lease_clock;
	ctx->lease_wait_ms = o->lease_wait_ms;
	ctx->hooks = o->hooks;
	if (o->pv_dir && !(ctx->pv_dir = realpath(o->pv_dir, NULL)))
		r = dlvm_err_set(err, -errno, "%s: PV directory: %s", o->pv_dir, strerror(errno));
	else
		r = ctx_init(ctx, o->state_dir, o->devices, err);
	if (r) {
		ctx_release(ctx);
		free(ctx);
		return r;
	}
	*out = ctx;
	return 0;
}

void dlvm_ctx_free(struct dlvm_ctx *ctx)
{
	if (!ctx)
		return;
	ctx_release(ctx);
	free(ctx);
}

size_t dlvm_ctx_vg_count(const struct dlvm_ctx *ctx)
{
	return ctx->nvg;
}

struct dlvm_vg *dlvm_ctx_vg_at(const struct dlvm_ctx *ctx, size_t i)
{
	return i < ctx->nvg ? ctx->vgs[i] : NULL;
}

size_t dlvm_ctx_orphan_count(const struct dlvm_ctx *ctx)
{
	return ctx->norphans;
}

json_t *dlvm_ctx_warnings(const struct dlvm_ctx *ctx)
{
	return ctx->warnings;
}

uint32_t dlvm_ctx_host_id(const struct dlvm_ctx *ctx)
{
	return ctx->host_id;
}

void dlvm_ctx_set_cmd_lock(struct dlvm_ctx *ctx, pthread_mutex_t *lock)
{
	ctx->cmd_lock = lock;
}

pthread_mutex_t *dlvm_ctx_cmd_lock(const struct dlvm_ctx *ctx)
{
	return ctx->cmd_lock;
}

void dlvm_ctx_set_hooks(struct dlvm_ctx *ctx, const struct dlvm_export_hooks *hooks)
{
	ctx->hooks = hooks;
}

int dlvm_ctx_vg(struct dlvm_ctx *ctx, const char *name, struct dlvm_vg **out, struct dlvm_err *err)
{
	if (!name || !*name)
		return dlvm_err_set(err, -EINVAL, "a volume group name is needed");
	for (size_t i = 0; i < ctx->nvg; i++)
		if (!strcmp(ctx->vgs[i]->info.name, name)) {
			*out = ctx->vgs[i];
			return 0;
		}
	return dlvm_err_set(err, -ENOENT, "Volume group \"%s\" not found", name);
}

void ctx_add_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg)
{
	struct dlvm_vg **p = realloc(ctx->vgs, (ctx->nvg + 1) * sizeof(*p));
	struct dlvm_vg_runtime *rt = dlvm_vg_runtime_new();
	if (!p || !rt)
		abort();
	ctx->vgs = p;
	ctx->vgs[ctx->nvg++] = vg;
	dlvm_vg_attach_runtime(vg, rt, dlvm_vg_runtime_free);
}

void ctx_replace_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg, struct dlvm_vg *nv)
{
	for (size_t i = 0; i < ctx->nvg; i++)
		if (ctx->vgs[i] == vg)
			ctx->vgs[i] = nv;
	dlvm_vg_move_runtime(vg, nv);
}

void ctx_drop_vg(struct dlvm_ctx *ctx, struct dlvm_vg *vg)
{
	for (size_t i = 0; i < ctx->nvg; i++)
		if (ctx->vgs[i] == vg) {
			ctx->vgs[i] = ctx->vgs[--ctx->nvg];
			return;
		}
}

int ctx_add_orphan(struct dlvm_ctx *ctx, struct dlvm_dev *dev)
{
	struct dlvm_dev **p = realloc(ctx->orphans, (ctx->norphans + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	ctx->orphans = p;
	ctx->orphans[ctx->norphans++] = dev;
	return 0;
}

void ctx_take_orphan(struct dlvm_ctx *ctx, struct dlvm_dev *dev)
{
	for (size_t i = 0; i < ctx->norphans; i++)
		if (ctx->orphans[i] == dev) {
			memmove(&ctx->orphans[i], &ctx->orphans[i + 1],
				(ctx->norphans - i - 1) * sizeof(*ctx->orphans));
			ctx->norphans--;
			return;
		}
}

static bool same_file(const char *a, struct dlvm_dev *dev)
{
	struct stat sa, sb;

	if (!strcmp(a, dev->path))
		return true;
	if (stat(a, &sa) || (dev->fd >= 0 ? fstat(dev->fd, &sb) : stat(dev->path, &sb)))
		return false;
	if (S_ISBLK(sa.st_mode))
		return S_ISBLK(sb.st_mode) && sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int ctx_device(struct dlvm_ctx *ctx, const char *path, bool open_new, struct dlvm_dev **dev_out,
	       struct dlvm_vg **vg_out, struct dlvm_pv **pv_out, struct dlvm_err *err)
{
	*vg_out = NULL;
	if (pv_out)
		*pv_out = NULL;
	for (size_t v = 0; v < ctx->nvg; v++)
		for (size_t p = 0; p < ctx->vgs[v]->npv; p++) {
			struct dlvm_pv *pv = ctx->vgs[v]->pvs[p];
			if (pv->dev && same_file(path, pv->dev)) {
				*dev_out = pv->dev;
				*vg_out = ctx->vgs[v];
				if (pv_out)
					*pv_out = pv;
				return 0;
			}
		}
	for (size_t i = 0; i < ctx->norphans; i++)
		if (same_file(path, ctx->orphans[i])) {
			*dev_out = ctx->orphans[i];
			return 0;
		}
	if (!open_new)
		return dlvm_err_set(err, -ENOENT,
				    "%s: not a known device (add it with --devices or "
				    "pvcreate it)",
				    path);
	struct dlvm_dev *dev;
	int r = ctx_path_allowed(ctx, path, err);
	if (r || (r = dlvm_dev_open(path, DLVM_DEV_LOCK, &dev, err)))
		return r;
	if ((r = ctx_add_orphan(ctx, dev))) {
		dlvm_dev_close(dev);
		return dlvm_err_set(err, r, "out of memory");
	}
	*dev_out = dev;
	return 0;
}

int ctx_device_checked(struct dlvm_ctx *ctx, const char *path, struct dlvm_dev **dev,
		       struct dlvm_vg **vg, struct dlvm_dev **opened, struct dlvm_err *err)
{
	size_t before = ctx->norphans;
	int r = ctx_device(ctx, path, true, dev, vg, NULL, err);

	if (!r && ctx->norphans > before)
		*opened = *dev;
	return r;
}

void ctx_drop_opened(struct dlvm_ctx *ctx, struct dlvm_dev **opened, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (opened[i]) {
			ctx_take_orphan(ctx, opened[i]);
			dlvm_dev_close(opened[i]);
		}
}

static int write_devices_file(struct dlvm_ctx *ctx, struct dlvm_err *err)
{
	char *tmp;
	FILE *f;

	if (asprintf(&tmp, "%s.tmp", ctx->devices_file) < 0)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	/* a new file: a link left at tmp is removed, never written through */
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		int r = -errno;
		free(tmp);
		return dlvm_err_set(err, r, "%s: cannot write: %s", ctx->devices_file,
				    strerror(-r));
	}
	fprintf(f, "# devices dlvm manages, one path per line\n");
	for (size_t i = 0; i < ctx->ndevices; i++)
		fprintf(f, "%s\n", ctx->devices[i]);
	int bad = fflush(f) || fsync(fileno(f));
	bad |= fclose(f);
	if (bad || rename(tmp, ctx->devices_file)) {
		int r = -errno;
		unlink(tmp);
		free(tmp);
		return dlvm_err_set(err, r, "%s: cannot write: %s", ctx->devices_file,
				    strerror(-r));
	}
	free(tmp);
	return 0;
}

int ctx_devices_file_add(struct dlvm_ctx *ctx, const char *path, struct dlvm_err *err)
{
	char abs[PATH_MAX];

	if (!realpath(path, abs))
		snprintf(abs, sizeof(abs), "%s", path);
	for (size_t i = 0; i < ctx->ndevices; i++) {
		char other[PATH_MAX];
		if (!strcmp(ctx->devices[i], path) || !strcmp(ctx->devices[i], abs) ||
		    (realpath(ctx->devices[i], other) && !strcmp(other, abs)))
			return 0;
	}
	if (add_path(ctx, abs))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	if (!ctx->devices_file || ctx->devices_given)
		return 0;
	struct stat st;
	if (stat(ctx->state_dir, &st) && mkdir(ctx->state_dir, 0755))
		return 0; /* no state dir: nothing to remember */
	return write_devices_file(ctx, err);
}

int ctx_devices_file_remove(struct dlvm_ctx *ctx, const char *path, struct dlvm_err *err)
{
	char abs[PATH_MAX];
	bool found = false;

	if (!realpath(path, abs))
		snprintf(abs, sizeof(abs), "%s", path);
	for (size_t i = 0; i < ctx->ndevices;) {
		char other[PATH_MAX];
		if (!strcmp(ctx->devices[i], path) || !strcmp(ctx->devices[i], abs) ||
		    (realpath(ctx->devices[i], other) && !strcmp(other, abs))) {
			free(ctx->devices[i]);
			ctx->devices[i] = ctx->devices[--ctx->ndevices];
			found = true;
		} else {
			i++;
		}
	}
	if (!found || !ctx->devices_file || ctx->devices_given || access(ctx->devices_file, F_OK))
		return 0;
	return write_devices_file(ctx, err);
}
