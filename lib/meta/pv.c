/* SPDX-License-Identifier: MIT */
/* PV labels: writing, reading and erasing the PV header and an empty MDA. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlvm/util.h"
#include "meta.h"

void dlvm_mda_geometry(uint64_t mda_size, struct dlvm_mda_header *h)
{
	uint64_t ring = mda_size / 4 / DLVM_BLOCK * DLVM_BLOCK;

	if (ring < 4 * DLVM_BLOCK)
		ring = 4 * DLVM_BLOCK;
	h->mda_size = mda_size;
	h->ckpt_offset = 2 * DLVM_BLOCK;
	h->ckpt_size = (mda_size - 2 * DLVM_BLOCK - ring) / 2 / DLVM_BLOCK * DLVM_BLOCK;
	h->ring_offset = h->ckpt_offset + 2 * h->ckpt_size;
	h->ring_size = ring;
}

int dlvm_pv_read_header(struct dlvm_dev *dev, struct dlvm_pv_header *h, struct dlvm_err *err)
{
	uint8_t *buf = dlvm_io_alloc(DLVM_BLOCK);
	int r;

	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	if (dev->size < DLVM_PV_HEADER_OFFSET + DLVM_BLOCK) {
		free(buf);
		return dlvm_err_set(err, -ENODATA, "%s: too small to hold a PV label", dev->name);
	}
	r = dlvm_dev_read(dev, buf, DLVM_BLOCK, DLVM_PV_HEADER_OFFSET, err);
	if (!r) {
		r = dlvm_pv_header_decode(buf, h, err);
		if (r)
			dlvm_err_prefix(err, r, "%s: PV header at offset %u: ", dev->name,
					DLVM_PV_HEADER_OFFSET);
		else if (h->mda_offset + h->mda_size > dev->size)
			r = dlvm_err_set(err, -EBADMSG,
					 "%s: PV header at offset %u: field mda_size %" PRIu64
					 " runs past the end of the device (%" PRIu64 " bytes)",
					 dev->name, DLVM_PV_HEADER_OFFSET, h->mda_size, dev->size);
		else if (h->sector_size < dev->sector_size)
			r = dlvm_err_set(err, -EBADMSG,
					 "%s: PV header records sector size %u but "
					 "the device has %u",
					 dev->name, h->sector_size, dev->sector_size);
	}
	free(buf);
	return r;
}

/* The layout a PV on dev gets with opts, or why it cannot have one. */
static int pv_layout(const struct dlvm_dev *dev, const struct dlvm_pvcreate_opts *opts,
		     uint64_t *mda_size_out, uint32_t *ss_out, uint64_t *data_off_out,
		     struct dlvm_err *err)
{
	uint64_t mda_size = opts && opts->mda_size ? opts->mda_size : 0;
	uint32_t ss = opts && opts->sector_size ? opts->sector_size : dev->sector_size;

	if (ss != 512 && ss != 4096)
		return dlvm_err_set(err, -EINVAL, "%s: sector size %u is not 512 or 4096",
				    dev->name, ss);
	if (ss < dev->sector_size)
		return dlvm_err_set(err, -EINVAL,
				    "%s: sector size %u is smaller than the "
				    "device's %u",
				    dev->name, ss, dev->sector_size);
	if (!mda_size) {
		mda_size = dev->size / 16 / DLVM_BLOCK * DLVM_BLOCK;
		if (mda_size > DLVM_MDA_DEFAULT_SIZE)
			mda_size = DLVM_MDA_DEFAULT_SIZE;
		if (mda_size < DLVM_MDA_MIN_SIZE)
			mda_size = DLVM_MDA_MIN_SIZE;
	}
	if (mda_size < DLVM_MDA_MIN_SIZE || mda_size % DLVM_BLOCK)
		return dlvm_err_set(err, -EINVAL,
				    "%s: metadata size %" PRIu64 " must be a multiple "
				    "of 4 KiB and at least 1 MiB",
				    dev->name, mda_size);
	/* no size near 2^64 may wrap the layout's sums below */
	uint64_t mda_end;
	if (dlvm_add_overflow((uint64_t)DLVM_MDA_OFFSET, mda_size, &mda_end) ||
	    mda_end > UINT64_MAX - 2 * (uint64_t)DLVM_DATA_ALIGN)
		return dlvm_err_set(err, -EINVAL, "%s: metadata size %" PRIu64 " is too large",
				    dev->name, mda_size);
	uint64_t data_off = dlvm_align_up(mda_end, DLVM_DATA_ALIGN);
	if (dev->size < data_off + DLVM_DATA_ALIGN)
		return dlvm_err_set(err, -EINVAL,
				    "%s: device of %" PRIu64 " bytes is too small: a "
				    "PV with %" PRIu64 " bytes of metadata needs at least %" PRIu64,
				    dev->name, dev->size, mda_size, data_off + DLVM_DATA_ALIGN);
	*mda_size_out = mda_size;
	*ss_out = ss;
	*data_off_out = data_off;
	return 0;
}

int dlvm_pv_format_check(const struct dlvm_dev *dev, const struct dlvm_pvcreate_opts *opts,
			 struct dlvm_err *err)
{
	uint64_t mda_size, data_off;
	uint32_t ss;

	return pv_layout(dev, opts, &mda_size, &ss, &data_off, err);
}

int dlvm_pv_format(struct dlvm_dev *dev, const struct dlvm_pvcreate_opts *opts,
		   struct dlvm_err *err)
{
	struct dlvm_pv_header h = { .major = DLVM_FORMAT_MAJOR, .minor = DLVM_FORMAT_MINOR };
	struct dlvm_mda_header m = { .major = DLVM_FORMAT_MAJOR, .minor = DLVM_FORMAT_MINOR };
	uint64_t mda_size, data_off;
	uint32_t ss;
	uint8_t *buf = NULL;
	int r;

	if ((r = pv_layout(dev, opts, &mda_size, &ss, &data_off, err)))
		return r;

	dlvm_uuid_generate(h.pv_uuid);
	h.sector_size = ss;
	h.device_size = dev->size;
	h.mda_offset = DLVM_MDA_OFFSET;
	h.mda_size = mda_size;
	h.data_offset = data_off;
	h.data_size = dev->size - data_off;
	h.ctime = (uint64_t)time(NULL);
	gethostname(h.hostname, sizeof(h.hostname) - 1);

	memcpy(m.pv_uuid, h.pv_uuid, 16);
	dlvm_mda_geometry(mda_size, &m);

	/* Zero the header slots and the journal ring so that later appends
	 * overwrite allocated blocks (cheap to sync) and nothing stale is
	 * left; then write the empty MDA header, then the label last: the
	 * label is what makes the device a PV. */
	size_t chunk = 1 << 20;
	buf = dlvm_io_alloc(chunk);
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	r = dlvm_dev_write(dev, buf, 2 * DLVM_BLOCK, DLVM_MDA_OFFSET, err);
	for (uint64_t o = 0; !r && o < m.ring_size; o += chunk) {
		size_t n = (size_t)DLVM_MIN((uint64_t)chunk, m.ring_size - o);
		r = dlvm_dev_write(dev, buf, n, DLVM_MDA_OFFSET + m.ring_offset + o, err);
	}
	if (!r) {
		dlvm_mda_header_encode(&m, buf);
		r = dlvm_dev_write(dev, buf, DLVM_BLOCK, DLVM_MDA_OFFSET, err);
	}
	if (!r)
		r = dlvm_dev_flush(dev, err);
	if (!r) {
		memset(buf, 0, DLVM_BLOCK);
		dlvm_pv_header_encode(&h, buf);
		r = dlvm_dev_write(dev, buf, DLVM_BLOCK, DLVM_PV_HEADER_OFFSET, err);
	}
	if (!r)
		r = dlvm_dev_flush(dev, err);
	free(buf);
	return r;
}

int dlvm_pv_wipe(struct dlvm_dev *dev, struct dlvm_err *err)
{
	uint8_t *buf = dlvm_io_alloc(DLVM_BLOCK * 3);
	int r;

	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	/* label first: from then on the device is no PV, whatever follows */
	r = dlvm_dev_write(dev, buf, DLVM_BLOCK, DLVM_PV_HEADER_OFFSET, err);
	if (!r)
		r = dlvm_dev_write(dev, buf, 2 * DLVM_BLOCK, DLVM_MDA_OFFSET, err);
	if (!r)
		r = dlvm_dev_flush(dev, err);
	free(buf);
	return r;
}

int dlvm_pv_make_orphan(struct dlvm_dev *dev, struct dlvm_err *err)
{
	struct dlvm_pv_header ph;
	struct dlvm_mda mda = { 0 };
	struct dlvm_mda_header h = { .major = DLVM_FORMAT_MAJOR, .minor = DLVM_FORMAT_MINOR };
	uint8_t *buf;
	int r;

	if ((r = dlvm_pv_read_header(dev, &ph, err)))
		return r;
	dlvm_mda_geometry(ph.mda_size, &h);
	memcpy(h.pv_uuid, ph.pv_uuid, 16);
	bool have = !dlvm_mda_read_header(dev, &mda, NULL);
	struct dlvm_err fe = { 0 };
	if ((r = dlvm_pv_check_ro_compat(dev, &ph, have ? &mda : NULL, &fe)))
		return dlvm_err_set(err, r, "%s: not rewritten", fe.msg);
	if (have)
		h.generation = mda.hdr.generation + 1;
	else
		mda.slot = 1; /* both slots unreadable: write slot 0 */
	buf = dlvm_io_alloc(DLVM_BLOCK);
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	dlvm_mda_header_encode(&h, buf);
	r = dlvm_dev_write(dev, buf, DLVM_BLOCK, DLVM_MDA_OFFSET + (mda.slot ^ 1u) * DLVM_BLOCK,
			   err);
	if (!r)
		r = dlvm_dev_flush(dev, err);
	free(buf);
	return r;
}

int dlvm_pv_check_ro_compat(const struct dlvm_dev *dev, const struct dlvm_pv_header *ph,
			    const struct dlvm_mda *mda, struct dlvm_err *err)
{
	uint64_t bits = ph->ro_compat & ~DLVM_RO_COMPAT_KNOWN;

	if (bits)
		return dlvm_err_set(err, -EROFS,
				    "%s: PV header at offset %u: unknown read-only-"
				    "compatible features 0x%" PRIx64 " (written by a newer dlvm)",
				    dev->name, DLVM_PV_HEADER_OFFSET, bits);
	for (unsigned k = 0; mda && k < 2; k++) {
		const struct dlvm_mda_header *h = k ? &mda->alt : &mda->hdr;
		unsigned slot = k ? mda->slot ^ 1u : mda->slot;
		if (k && !mda->has_alt)
			break;
		if ((bits = h->ro_compat & ~DLVM_RO_COMPAT_KNOWN))
			return dlvm_err_set(err, -EROFS,
					    "%s: metadata header slot %u at offset %u: "
					    "unknown read-only-compatible features 0x%" PRIx64
					    " (written by a newer dlvm)",
					    dev->name, slot, DLVM_MDA_OFFSET + slot * DLVM_BLOCK,
					    bits);
	}
	return 0;
}
