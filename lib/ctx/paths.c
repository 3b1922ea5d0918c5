/* SPDX-License-Identifier: MIT */
/*
 * Which paths a request may name when the command runs inside dlvmd: the
 * daemon runs as root and its API is reachable by whoever may open its
 * socket, so a path in a request must not reach a file dlvmd does not
 * manage (create it, read it, or learn its size or existence).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ctx/ctx.h"

/* real, a resolved path, is dir or inside it. */
static bool inside(const char *real, const char *dir)
{
	size_t n = strlen(dir);

	if (strncmp(real, dir, n))
		return false;
	return real[n] == '\0' || real[n] == '/' || (n == 1 && dir[0] == '/');
}

/* Whether real (resolved) is a device of the list or an open device. */
static bool managed(const struct dlvm_ctx *ctx, const char *real)
{
	char other[PATH_MAX];

	for (size_t i = 0; i < ctx->ndevices; i++)
		if (realpath(ctx->devices[i], other) && !strcmp(other, real))
			return true;
	for (size_t v = 0; v < ctx->nvg; v++)
		for (size_t p = 0; p < ctx->vgs[v]->npv; p++) {
			const struct dlvm_dev *dev = ctx->vgs[v]->pvs[p]->dev;
			if (dev && realpath(dev->path, other) && !strcmp(other, real))
				return true;
		}
	for (size_t i = 0; i < ctx->norphans; i++)
		if (realpath(ctx->orphans[i]->path, other) && !strcmp(other, real))
			return true;
	return false;
}

/* Whether path's directory, resolved, is inside the PV directory and its
 * last component names an entry (not ".", "..", nor empty). */
static bool in_pv_dir(const struct dlvm_ctx *ctx, const char *path)
{
	char parent[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/'), *base = slash + 1;
	size_t n = (size_t)(slash - path);

	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return false;
	if (n >= sizeof(parent))
		return false;
	memcpy(parent, path, n);
	parent[n] = '\0';
	if (!realpath(n ? parent : "/", real))
		return false;
	return inside(real, ctx->pv_dir);
}

int ctx_path_allowed(struct dlvm_ctx *ctx, const char *path, struct dlvm_err *err)
{
	char real[PATH_MAX];

	if (!ctx->pv_dir)
		return 0;
	if (path[0] == '/' && strlen(path) < PATH_MAX) {
		if (realpath(path, real) && (managed(ctx, real) || in_pv_dir(ctx, real)))
			return 0;
		if (in_pv_dir(ctx, path))
			return 0;
	}
	return dlvm_err_set(err, -EACCES,
			    "%s: not a device dlvmd manages: through dlvmd a command may use "
			    "the devices of --devices and STATE_DIR/devices, the PVs of its VGs, "
			    "and files (or links to devices) in its PV directory %s",
			    path, ctx->pv_dir);
}
