/* SPDX-License-Identifier: MIT */
/* pvcreate, pvremove, pvs */
#include <blkid/blkid.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dlvm/util.h"
#include "lib/ctx/ctx.h"
#include "lib/cluster/cluster.h"
#include "lib/cmd/cmd_int.h"
#include "lib/meta/meta.h"

/* Name of a foreign signature (file system, partition table, another volume
 * manager's label) on dev, or NULL. Probes through the device's own fd. */
static char *foreign_signature(struct dlvm_dev *dev)
{
	/* libblkid reads at arbitrary offsets and lengths: give it a buffered
	 * descriptor, not the O_DIRECT one the device was opened with */
	int fd = open(dev->path, O_RDONLY | O_CLOEXEC);
	blkid_probe pr = fd >= 0 ? blkid_new_probe() : NULL;
	char *found = NULL;
	const char *val;

	if (!pr) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (blkid_probe_set_device(pr, fd, 0, 0))
		goto out;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
	blkid_probe_enable_partitions(pr, 1);
	if (blkid_do_safeprobe(pr) == 0) {
		if (!blkid_probe_lookup_value(pr, "TYPE", &val, NULL))
			found = strdup(val);
		else if (!blkid_probe_lookup_value(pr, "PTTYPE", &val, NULL))
			found = strdup(val);
	}
out:
	blkid_free_probe(pr);
	close(fd);
	return found;
}

static int create_file(const char *path, uint64_t size, struct dlvm_err *err)
{
	struct stat st;

	if (!stat(path, &st)) {
		if (!S_ISREG(st.st_mode))
			return dlvm_err_set(err, -EEXIST,
					    "%s: exists and is not a regular file: drop "
					    "--size",
					    path);
		if ((uint64_t)st.st_size == size)
			return 0;
		return dlvm_err_set(err, -EEXIST,
				    "%s: exists with a size of %" PRIu64 " bytes, "
				    "not %" PRIu64 ": drop --size or remove the file",
				    path, (uint64_t)st.st_size, size);
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return dlvm_err_set(err, -errno, "%s: cannot create: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		int r = -errno;
		close(fd);
		unlink(path);
		return dlvm_err_set(err, r, "%s: cannot size to %" PRIu64 " bytes: %s", path, size,
				    strerror(-r));
	}
	close(fd);
	return 0;
}

/* May dev (at path, in vg if it is a PV of one) become a new PV? */
static int pv_check_new(struct dlvm_dev *dev, const struct dlvm_vg *vg, const char *path,
			const struct dlvm_pvcreate_opts *po, bool force, struct dlvm_err *err)
{
	int r;

	if (vg)
		return dlvm_err_set(err, -EBUSY,
				    "%s: is a PV of volume group \"%s\": remove it "
				    "with vgreduce first",
				    path, vg->info.name);
	if ((r = dlvm_pv_format_check(dev, po, err)))
		return r;
	struct dlvm_pv_header ph;
	struct dlvm_err e = { 0 };
	int hr = dlvm_pv_read_header(dev, &ph, &e);
	if (hr == 0 && !force)
		return dlvm_err_set(err, -EEXIST,
				    "%s: is already a PV (use -f to initialize "
				    "it again)",
				    path);
	if (hr && hr != -ENODATA && !force)
		return dlvm_err_set(err, -EEXIST,
				    "%s: has a damaged dlvm label (%s): use -f "
				    "to overwrite it",
				    path, e.msg);
	char *sig = hr == -ENODATA ? foreign_signature(dev) : NULL;
	if (sig && !force) {
		r = dlvm_err_set(err, -EEXIST,
				 "%s: contains a %s signature: use -f to "
				 "overwrite it",
				 path, sig);
		free(sig);
		return r;
	}
	free(sig);
	return 0;
}

DLVM_CMD_FN(cmd_pvcreate)
{
	struct dlvm_pvcreate_opts po = { 0 };
	const char *s;
	uint64_t fsize = 0;
	bool force = opt_flag(opts, "force");
	int r;

	if (!json_array_size(args))
		return dlvm_err_set(err, -EINVAL, "pvcreate: give at least one device or file");
	if ((s = opt_str(opts, "size")) && (r = dlvm_parse_size(s, 1 << 20, &fsize, NULL, err)))
		return dlvm_err_prefix(err, r, "pvcreate: --size: ");
	if (s && fsize < (8 << 20))
		return dlvm_err_set(err, -EINVAL, "pvcreate: --size %s is too small (at least 8m)",
				    s);
	if ((s = opt_str(opts, "metadatasize"))) {
		if ((r = dlvm_parse_size(s, 1 << 20, &po.mda_size, NULL, err)))
			return dlvm_err_prefix(err, r, "pvcreate: --metadatasize: ");
		if (po.mda_size > UINT64_MAX - DLVM_BLOCK)
			return dlvm_err_set(err, -EINVAL,
					    "pvcreate: --metadatasize %s is too large", s);
		po.mda_size = dlvm_align_up(po.mda_size, DLVM_BLOCK);
	}
	if ((s = opt_str(opts, "sectorsize"))) {
		if (!strcmp(s, "512"))
			po.sector_size = 512;
		else if (!strcmp(s, "4096") || !strcmp(s, "4k"))
			po.sector_size = 4096;
		else
			return dlvm_err_set(err, -EINVAL,
					    "pvcreate: --sectorsize must be 512 or 4096");
	}
	/* Check every device before changing any (all or nothing for bad input):
	 * a refusal closes what this command opened and removes the files it
	 * created, so nothing stays behind (dlvmd keeps its devices open). */
	size_t n = json_array_size(args);
	struct dlvm_dev **opened = calloc(n, sizeof(*opened));
	bool *created = calloc(n, sizeof(*created));
	if (!opened || !created) {
		free(opened);
		free(created);
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	}
	r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		const char *path = arg_str(args, i);
		struct dlvm_dev *dev;
		struct dlvm_vg *vg;
		struct stat st;
		/* through dlvmd, before anything is learnt about path */
		if ((r = ctx_path_allowed(ctx, path, err)))
			break;
		bool existed = !stat(path, &st);
		if (fsize && (r = create_file(path, fsize, err)))
			break;
		created[i] = fsize && !existed;
		if (!(r = ctx_device_checked(ctx, path, &dev, &vg, &opened[i], err)))
			r = pv_check_new(dev, vg, path, &po, force, err);
	}
	if (r)
		ctx_drop_opened(ctx, opened, n);
	for (size_t i = 0; r && i < n; i++)
		if (created[i])
			unlink(arg_str(args, i));
	free(opened);
	free(created);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		const char *path = arg_str(args, i);
		struct dlvm_dev *dev;
		struct dlvm_vg *vg;
		if ((r = ctx_device(ctx, path, true, &dev, &vg, NULL, err)))
			return r;
		if ((r = dlvm_pv_format(dev, &po, err)))
			return r;
		if ((r = ctx_devices_file_add(ctx, path, err)))
			return r;
		resp_message(resp, "Physical volume \"%s\" successfully created.", path);
	}
	return 0;
}

DLVM_CMD_FN(cmd_pvremove)
{
	size_t n = json_array_size(args);
	bool force = opt_flag(opts, "force");
	int r;

	if (!n)
		return dlvm_err_set(err, -EINVAL, "pvremove: give at least one PV");
	/* a refusal closes the devices this command opened (dlvmd would keep
	 * them open and locked) */
	struct dlvm_dev **opened = calloc(n, sizeof(*opened));
	if (!opened)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		const char *path = arg_str(args, i);
		struct dlvm_dev *dev;
		struct dlvm_vg *vg;
		struct dlvm_pv_header ph;
		if ((r = ctx_device_checked(ctx, path, &dev, &vg, &opened[i], err)))
			break;
		if (vg) {
			r = dlvm_err_set(err, -EBUSY,
					 "%s: is a PV of volume group \"%s\": remove it "
					 "with vgreduce first",
					 path, vg->info.name);
			break;
		}
		struct dlvm_err e = { 0 };
		int hr = dlvm_pv_read_header(dev, &ph, &e);
		if (hr == -ENODATA) {
			r = dlvm_err_set(err, -EINVAL, "%s: is not a PV", path);
			break;
		}
		if (force)
			continue;
		/* a label or metadata area of a newer dlvm is wiped only on demand */
		struct dlvm_mda mda = { 0 };
		int mr = hr ? 0 : dlvm_mda_read_header(dev, &mda, &e);
		if (hr == -ENOTSUP || mr == -ENOTSUP ||
		    (!hr && dlvm_pv_check_ro_compat(dev, &ph, mr ? NULL : &mda, &e)))
			r = dlvm_err_set(err, -EROFS, "%s: use -f to wipe it", e.msg);
	}
	if (r)
		ctx_drop_opened(ctx, opened, n);
	free(opened);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		const char *path = arg_str(args, i);
		struct dlvm_dev *dev;
		struct dlvm_vg *vg;
		if ((r = ctx_device(ctx, path, true, &dev, &vg, NULL, err)))
			return r;
		if ((r = dlvm_pv_wipe(dev, err)))
			return r;
		ctx_take_orphan(ctx, dev);
		dlvm_dev_close(dev);
		if ((r = ctx_devices_file_remove(ctx, path, err)))
			return r;
		resp_message(resp, "Labels on physical volume \"%s\" successfully wiped.", path);
	}
	return 0;
}

static json_t *report(json_t *resp, const char *kind)
{
	json_t *rep = json_object(), *rows = json_array();
	json_object_set_new(rep, "kind", json_string(kind));
	json_object_set_new(rep, "rows", rows);
	json_object_set_new(resp, "report", rep);
	return rows;
}

static bool wanted(json_t *args, const char *a, const char *b)
{
	size_t n = json_array_size(args);
	if (!n)
		return true;
	for (size_t i = 0; i < n; i++) {
		const char *s = arg_str(args, i);
		if ((a && !strcmp(s, a)) || (b && !strcmp(s, b)))
			return true;
	}
	return false;
}

static json_t *pv_row(struct dlvm_dev *dev, const struct dlvm_vg *vg, const struct dlvm_pv *pv,
		      const struct dlvm_pv_header *ph)
{
	char u[DLVM_UUID_STR] = "";
	json_t *row = json_object();
	uint64_t es = vg ? vg->info.extent_size : 0;

	if (ph)
		dlvm_uuid_unparse(ph->pv_uuid, u);
	json_object_set_new(row, "pv_name", json_string(dev ? dev->path : "[unknown]"));
	json_object_set_new(row, "vg_name", json_string(vg ? vg->info.name : ""));
	json_object_set_new(row, "pv_fmt", json_string(ph ? "dlvm1" : ""));
	json_object_set_new(row, "pv_attr", json_string(!pv ? "---" : pv->dev ? "a--" : "a-m"));
	json_object_set_new(row, "pv_uuid", json_string(u));
	json_object_set_new(row, "dev_size", json_integer(dev ? (json_int_t)dev->size : 0));
	if (pv) {
		json_object_set_new(row, "pv_size",
				    json_integer((json_int_t)(pv->d.pe_count * es)));
		json_object_set_new(row, "pv_free",
				    json_integer((json_int_t)((pv->d.pe_count - pv->pe_alloc) *
							      es)));
		json_object_set_new(row, "pv_used", json_integer((json_int_t)(pv->pe_alloc * es)));
		json_object_set_new(row, "pe_start", json_integer((json_int_t)pv->d.pe_start));
		json_object_set_new(row, "pv_pe_count", json_integer((json_int_t)pv->d.pe_count));
		json_object_set_new(row, "pv_pe_alloc_count",
				    json_integer((json_int_t)pv->pe_alloc));
		json_object_set_new(row, "pv_mda_size",
				    json_integer((json_int_t)(ph ? ph->mda_size : 0)));
		json_object_set_new(row, "pv_mda_state",
				    json_string(!pv->dev          ? "missing"
						: pv->mda.in_sync ? "ok"
						: pv->mda.valid   ? "stale"
								  : "damaged"));
	} else {
		uint64_t sz = ph ? ph->data_size : dev ? dev->size : 0;
		json_object_set_new(row, "pv_size", json_integer((json_int_t)sz));
		json_object_set_new(row, "pv_free", json_integer((json_int_t)sz));
		json_object_set_new(row, "pv_used", json_integer(0));
		json_object_set_new(row, "pe_start",
				    json_integer((json_int_t)(ph ? ph->data_offset : 0)));
		json_object_set_new(row, "pv_pe_count", json_integer(0));
		json_object_set_new(row, "pv_pe_alloc_count", json_integer(0));
		json_object_set_new(row, "pv_mda_size",
				    json_integer((json_int_t)(ph ? ph->mda_size : 0)));
		json_object_set_new(row, "pv_mda_state", json_string(ph ? "ok" : ""));
	}
	return row;
}

DLVM_CMD_FN(cmd_pvs)
{
	json_t *rows = report(resp, "pv");
	bool all = opt_flag(opts, "all");

	for (size_t i = 0; i < json_array_size(args); i++) {
		struct dlvm_dev *dev;
		struct dlvm_vg *vg;
		if (ctx_device(ctx, arg_str(args, i), false, &dev, &vg, NULL, NULL))
			return dlvm_err_set(err, -ENOENT, "Failed to find physical volume \"%s\"",
					    arg_str(args, i));
	}

	for (size_t v = 0; v < ctx->nvg; v++) {
		const struct dlvm_vg *vg = ctx->vgs[v];
		for (size_t p = 0; p < vg->npv; p++) {
			const struct dlvm_pv *pv = vg->pvs[p];
			if (!wanted(args, pv->dev ? pv->dev->path : NULL,
				    pv->dev ? pv->dev->name : NULL))
				continue;
			json_array_append_new(rows,
					      pv_row(pv->dev, vg, pv, pv->dev ? &pv->hdr : NULL));
		}
	}
	for (size_t i = 0; i < ctx->norphans; i++) {
		struct dlvm_dev *dev = ctx->orphans[i];
		struct dlvm_pv_header ph;
		bool labelled = !dlvm_pv_read_header(dev, &ph, NULL);
		if ((!labelled && !all) || !wanted(args, dev->path, dev->name))
			continue;
		json_array_append_new(rows, pv_row(dev, NULL, NULL, labelled ? &ph : NULL));
	}
	return 0;
}
