/* SPDX-License-Identifier: MIT */
/* The common header of dlvm's fixed-size blocks: encode and check the part
 * that every kind shares (lib/format/block.h). */
#include <inttypes.h>
#include <string.h>

#include "dlvm/util.h"
#include "lib/format/block.h"

static const char *name_sep(const struct dlvm_block_kind *k)
{
	return k->name ? " " : "";
}

static const char *name_of(const struct dlvm_block_kind *k)
{
	return k->name ? k->name : "";
}

void dlvm_block_start(const struct dlvm_block_kind *k, uint8_t *buf, size_t len, uint16_t major,
		      uint16_t minor)
{
	memset(buf, 0, len);
	memcpy(buf + DLVM_BLK_MAGIC, k->magic, 8);
	dlvm_put_le16(buf + DLVM_BLK_MAJOR, major);
	dlvm_put_le16(buf + DLVM_BLK_MINOR, minor);
	dlvm_put_le32(buf + DLVM_BLK_SIZE, k->size);
}

void dlvm_block_put_features(uint8_t *buf, const struct dlvm_block_features *f)
{
	dlvm_put_le64(buf + DLVM_BLK_COMPAT, f->compat);
	dlvm_put_le64(buf + DLVM_BLK_RO_COMPAT, f->ro_compat);
	dlvm_put_le64(buf + DLVM_BLK_INCOMPAT, f->incompat);
}

void dlvm_block_seal(const struct dlvm_block_kind *k, uint8_t *buf)
{
	size_t crc_off = k->size - 4;

	dlvm_put_le32(buf + crc_off, dlvm_crc32c(buf, crc_off));
}

int dlvm_block_check_version(const struct dlvm_block_kind *k, uint16_t major, uint32_t size,
			     struct dlvm_err *err)
{
	if (major != k->major)
		return dlvm_err_set(err, -ENOTSUP,
				    "%s%sformat version %u is not supported (this "
				    "dlvm reads version %u)",
				    name_of(k), name_sep(k), major, k->major);
	if (size == k->size)
		return 0;
	if (!k->size_field)
		return dlvm_err_set(err, -EBADMSG, "%s%sheader size %u, expected %u", name_of(k),
				    name_sep(k), size, k->size);
	return dlvm_err_set(err, -EBADMSG, "%s%sfield %s is %u, expected %u", name_of(k),
			    name_sep(k), k->size_field, size, k->size);
}

int dlvm_block_check_incompat(uint64_t incompat, uint64_t known, struct dlvm_err *err)
{
	if (incompat & ~known)
		return dlvm_err_set(err, -ENOTSUP,
				    "unknown incompatible features 0x%" PRIx64
				    " (written by a newer dlvm)",
				    incompat & ~known);
	return 0;
}

static int check_zero(const struct dlvm_block_kind *k, const uint8_t *buf, size_t from, size_t to,
		      struct dlvm_err *err)
{
	for (size_t i = from; i < to; i++)
		if (buf[i])
			return dlvm_err_set(err, -EBADMSG, "%s%sreserved byte %zu is not zero",
					    name_of(k), name_sep(k), i);
	return 0;
}

int dlvm_block_check(const struct dlvm_block_kind *k, const uint8_t *buf, size_t len,
		     struct dlvm_block_features *f, struct dlvm_err *err)
{
	size_t crc_off = k->size - 4;
	int r;

	if (memcmp(buf + DLVM_BLK_MAGIC, k->magic, 8)) {
		if (k->magic_msg)
			return dlvm_err_set(err, k->magic_code, "%s", k->magic_msg);
		if (k->name)
			return dlvm_err_set(err, k->magic_code, "bad magic (not a %s)", k->name);
		return dlvm_err_set(err, k->magic_code, "bad magic");
	}
	uint32_t want = dlvm_get_le32(buf + crc_off), got = dlvm_crc32c(buf, crc_off);
	if (want != got)
		return dlvm_err_set(err, -EBADMSG,
				    "%s%schecksum mismatch (stored 0x%08x, "
				    "computed 0x%08x)",
				    name_of(k), name_sep(k), want, got);
	if ((r = dlvm_block_check_version(k, dlvm_get_le16(buf + DLVM_BLK_MAJOR),
					  dlvm_get_le32(buf + DLVM_BLK_SIZE), err)))
		return r;
	if (k->features) {
		struct dlvm_block_features tmp;
		if (!f)
			f = &tmp;
		f->compat = dlvm_get_le64(buf + DLVM_BLK_COMPAT);
		f->ro_compat = dlvm_get_le64(buf + DLVM_BLK_RO_COMPAT);
		f->incompat = dlvm_get_le64(buf + DLVM_BLK_INCOMPAT);
		if ((r = dlvm_block_check_incompat(f->incompat, k->incompat_known, err)))
			return r;
	} else if (f) {
		memset(f, 0, sizeof(*f));
	}
	if ((r = check_zero(k, buf, k->fields_end, crc_off, err)) ||
	    (r = check_zero(k, buf, k->size, len, err)))
		return r;
	return 0;
}
