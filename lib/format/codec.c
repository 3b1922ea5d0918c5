/* SPDX-License-Identifier: MIT */
/* Codecs of the fixed-size on-disk headers: PV header, MDA header slot, and
 * the header of checkpoints and journal records. docs/format/pv.md is the
 * spec. */
#include <inttypes.h>
#include <string.h>

#include "dlvm/format.h"
#include "dlvm/util.h"
#include "lib/format/block.h"
#include "lib/format/layout.h"

_Static_assert(DLVM_STRUCT_SIZE == 512, "headers are one 512-byte sector");
_Static_assert(DLVM_BLOB_HEADER_SIZE == 64, "blob header is 64 bytes");

_Static_assert(PVH_MAJOR == DLVM_BLK_MAJOR && PVH_SIZE == DLVM_BLK_SIZE &&
			       PVH_INCOMPAT == DLVM_BLK_INCOMPAT && PVH_CRC + 4 == DLVM_STRUCT_SIZE,
	       "the PV header starts and ends as every block does");
_Static_assert(MDH_MAJOR == DLVM_BLK_MAJOR && MDH_SIZE == DLVM_BLK_SIZE &&
			       MDH_INCOMPAT == DLVM_BLK_INCOMPAT && MDH_CRC + 4 == DLVM_STRUCT_SIZE,
	       "the MDA header starts and ends as every block does");
_Static_assert(BH_MAJOR == DLVM_BLK_MAJOR && BH_SIZE == DLVM_BLK_SIZE &&
			       BH_END + 4 == DLVM_BLOB_HEADER_SIZE,
	       "the blob header shares the version fields");

static const struct dlvm_block_kind pv_header_kind = {
	.magic = DLVM_PV_MAGIC,
	.major = DLVM_FORMAT_MAJOR,
	.size = DLVM_STRUCT_SIZE,
	.fields_end = PVH_END,
	.features = true,
	.incompat_known = DLVM_INCOMPAT_KNOWN,
	.magic_code = -ENODATA,
	.magic_msg = "no dlvm PV label (bad magic)",
};

static const struct dlvm_block_kind mda_header_kind = {
	.magic = DLVM_MDH_MAGIC,
	.major = DLVM_FORMAT_MAJOR,
	.size = DLVM_STRUCT_SIZE,
	.fields_end = MDH_END,
	.features = true,
	.incompat_known = DLVM_INCOMPAT_KNOWN,
	.magic_code = -EBADMSG,
	.magic_msg = "bad magic (not a metadata area header)",
};

/* checkpoints and records: their magic is checked by the caller's expect_magic */
static const struct dlvm_block_kind blob_header_kind = {
	.major = DLVM_FORMAT_MAJOR,
	.size = DLVM_BLOB_HEADER_SIZE,
};

void dlvm_pv_header_encode(const struct dlvm_pv_header *h, uint8_t buf[DLVM_STRUCT_SIZE])
{
	dlvm_block_start(&pv_header_kind, buf, DLVM_STRUCT_SIZE, h->major, h->minor);
	dlvm_block_put_features(buf, &(struct dlvm_block_features){ h->compat, h->ro_compat,
								    h->incompat });
	memcpy(buf + PVH_UUID, h->pv_uuid, 16);
	dlvm_put_le32(buf + PVH_SECTOR, h->sector_size);
	dlvm_put_le64(buf + PVH_DEVSIZE, h->device_size);
	dlvm_put_le64(buf + PVH_MDA_OFF, h->mda_offset);
	dlvm_put_le64(buf + PVH_MDA_SIZE, h->mda_size);
	dlvm_put_le64(buf + PVH_LEASE_OFF, h->lease_offset);
	dlvm_put_le64(buf + PVH_LEASE_SIZE, h->lease_size);
	dlvm_put_le64(buf + PVH_DATA_OFF, h->data_offset);
	dlvm_put_le64(buf + PVH_DATA_SIZE, h->data_size);
	dlvm_put_le64(buf + PVH_CTIME, h->ctime);
	memcpy(buf + PVH_HOST, h->hostname, strnlen(h->hostname, PVH_HOST_LEN));
	dlvm_block_seal(&pv_header_kind, buf);
}

int dlvm_pv_header_decode(const uint8_t buf[DLVM_STRUCT_SIZE], struct dlvm_pv_header *h,
			  struct dlvm_err *err)
{
	struct dlvm_block_features f;
	int r;

	if ((r = dlvm_block_check(&pv_header_kind, buf, DLVM_STRUCT_SIZE, &f, err)))
		return r;
	memset(h, 0, sizeof(*h));
	h->major = dlvm_get_le16(buf + PVH_MAJOR);
	h->minor = dlvm_get_le16(buf + PVH_MINOR);
	h->compat = f.compat;
	h->ro_compat = f.ro_compat;
	h->incompat = f.incompat;
	memcpy(h->pv_uuid, buf + PVH_UUID, 16);
	h->sector_size = dlvm_get_le32(buf + PVH_SECTOR);
	h->device_size = dlvm_get_le64(buf + PVH_DEVSIZE);
	h->mda_offset = dlvm_get_le64(buf + PVH_MDA_OFF);
	h->mda_size = dlvm_get_le64(buf + PVH_MDA_SIZE);
	h->lease_offset = dlvm_get_le64(buf + PVH_LEASE_OFF);
	h->lease_size = dlvm_get_le64(buf + PVH_LEASE_SIZE);
	h->data_offset = dlvm_get_le64(buf + PVH_DATA_OFF);
	h->data_size = dlvm_get_le64(buf + PVH_DATA_SIZE);
	h->ctime = dlvm_get_le64(buf + PVH_CTIME);
	memcpy(h->hostname, buf + PVH_HOST, PVH_HOST_LEN);
	h->hostname[PVH_HOST_LEN] = '\0';

	if (dlvm_uuid_is_zero(h->pv_uuid))
		return dlvm_err_set(err, -EBADMSG, "field pv_uuid is all zero");
	if (h->sector_size != 512 && h->sector_size != 4096)
		return dlvm_err_set(err, -EBADMSG, "field sector_size is %u, not 512 or 4096",
				    h->sector_size);
	if (h->mda_offset != DLVM_MDA_OFFSET)
		return dlvm_err_set(err, -EBADMSG, "field mda_offset is %" PRIu64 ", expected %u",
				    h->mda_offset, DLVM_MDA_OFFSET);
	if (h->mda_size < DLVM_MDA_MIN_SIZE || h->mda_size % DLVM_BLOCK)
		return dlvm_err_set(err, -EBADMSG,
				    "field mda_size %" PRIu64 " is not a multiple "
				    "of 4096 of at least 1 MiB",
				    h->mda_size);
	if (h->lease_offset || h->lease_size)
		return dlvm_err_set(err, -EBADMSG,
				    "field lease_offset/lease_size is set but "
				    "feature LEASES is not");
	uint64_t end;
	if (dlvm_add_overflow(h->mda_offset, h->mda_size, &end) || h->data_offset < end ||
	    h->data_offset % DLVM_DATA_ALIGN)
		return dlvm_err_set(err, -EBADMSG,
				    "field data_offset %" PRIu64 " overlaps the "
				    "metadata area or is not 1 MiB aligned",
				    h->data_offset);
	if (dlvm_add_overflow(h->data_offset, h->data_size, &end) || end > h->device_size)
		return dlvm_err_set(err, -EBADMSG,
				    "field data_size %" PRIu64 " runs past the "
				    "device size %" PRIu64,
				    h->data_size, h->device_size);
	if (h->hostname[PVH_HOST_LEN - 1] && memchr(h->hostname, 0, PVH_HOST_LEN) == NULL)
		h->hostname[PVH_HOST_LEN] = '\0';
	return 0;
}

void dlvm_mda_header_encode(const struct dlvm_mda_header *h, uint8_t buf[DLVM_STRUCT_SIZE])
{
	dlvm_block_start(&mda_header_kind, buf, DLVM_STRUCT_SIZE, h->major, h->minor);
	dlvm_block_put_features(buf, &(struct dlvm_block_features){ h->compat, h->ro_compat,
								    h->incompat });
	memcpy(buf + MDH_VG_UUID, h->vg_uuid, 16);
	memcpy(buf + MDH_PV_UUID, h->pv_uuid, 16);
	dlvm_put_le64(buf + MDH_GEN, h->generation);
	dlvm_put_le64(buf + MDH_MDA_SIZE, h->mda_size);
	dlvm_put_le64(buf + MDH_CKPT_OFF, h->ckpt_offset);
	dlvm_put_le64(buf + MDH_CKPT_SIZE, h->ckpt_size);
	dlvm_put_le64(buf + MDH_RING_OFF, h->ring_offset);
	dlvm_put_le64(buf + MDH_RING_SIZE, h->ring_size);
	dlvm_put_le32(buf + MDH_CKPT_SLOT, h->ckpt_slot);
	dlvm_put_le64(buf + MDH_CKPT_SEQ, h->ckpt_seq);
	dlvm_put_le64(buf + MDH_CKPT_LEN, h->ckpt_len);
	dlvm_put_le32(buf + MDH_CKPT_CRC, h->ckpt_crc);
	dlvm_put_le64(buf + MDH_JSTART, h->journal_start);
	dlvm_block_seal(&mda_header_kind, buf);
}

int dlvm_mda_header_decode(const uint8_t buf[DLVM_STRUCT_SIZE], struct dlvm_mda_header *h,
			   struct dlvm_err *err)
{
	struct dlvm_block_features f;
	int r;

	if ((r = dlvm_block_check(&mda_header_kind, buf, DLVM_STRUCT_SIZE, &f, err)))
		return r;
	memset(h, 0, sizeof(*h));
	h->major = dlvm_get_le16(buf + MDH_MAJOR);
	h->minor = dlvm_get_le16(buf + MDH_MINOR);
	h->compat = f.compat;
	h->ro_compat = f.ro_compat;
	h->incompat = f.incompat;
	memcpy(h->vg_uuid, buf + MDH_VG_UUID, 16);
	memcpy(h->pv_uuid, buf + MDH_PV_UUID, 16);
	h->generation = dlvm_get_le64(buf + MDH_GEN);
	h->mda_size = dlvm_get_le64(buf + MDH_MDA_SIZE);
	h->ckpt_offset = dlvm_get_le64(buf + MDH_CKPT_OFF);
	h->ckpt_size = dlvm_get_le64(buf + MDH_CKPT_SIZE);
	h->ring_offset = dlvm_get_le64(buf + MDH_RING_OFF);
	h->ring_size = dlvm_get_le64(buf + MDH_RING_SIZE);
	h->ckpt_slot = dlvm_get_le32(buf + MDH_CKPT_SLOT);
	h->ckpt_seq = dlvm_get_le64(buf + MDH_CKPT_SEQ);
	h->ckpt_len = dlvm_get_le64(buf + MDH_CKPT_LEN);
	h->ckpt_crc = dlvm_get_le32(buf + MDH_CKPT_CRC);
	h->journal_start = dlvm_get_le64(buf + MDH_JSTART);

	uint64_t ck_end, ring_end;
	if (h->ckpt_offset < 2 * DLVM_BLOCK || h->ckpt_offset % DLVM_BLOCK ||
	    h->ckpt_size % DLVM_BLOCK || h->ckpt_size == 0 ||
	    dlvm_mul_overflow(h->ckpt_size, 2, &ck_end) ||
	    dlvm_add_overflow(ck_end, h->ckpt_offset, &ck_end))
		return dlvm_err_set(err, -EBADMSG,
				    "fields ckpt_offset/ckpt_size (%" PRIu64 "/%" PRIu64
				    ") are out of range",
				    h->ckpt_offset, h->ckpt_size);
	if (h->ring_offset < ck_end || h->ring_offset % DLVM_BLOCK || h->ring_size % DLVM_BLOCK ||
	    h->ring_size < 4 * DLVM_BLOCK ||
	    dlvm_add_overflow(h->ring_offset, h->ring_size, &ring_end) || ring_end > h->mda_size)
		return dlvm_err_set(err, -EBADMSG,
				    "fields ring_offset/ring_size (%" PRIu64 "/%" PRIu64
				    ") are out of range",
				    h->ring_offset, h->ring_size);
	if (h->ckpt_slot > 1)
		return dlvm_err_set(err, -EBADMSG, "field ckpt_slot is %u, not 0 or 1",
				    h->ckpt_slot);
	if (h->ckpt_len > h->ckpt_size)
		return dlvm_err_set(err, -EBADMSG,
				    "field ckpt_len %" PRIu64 " exceeds the region "
				    "size %" PRIu64,
				    h->ckpt_len, h->ckpt_size);
	if (!dlvm_uuid_is_zero(h->vg_uuid) && h->ckpt_len < DLVM_BLOB_HEADER_SIZE)
		return dlvm_err_set(err, -EBADMSG, "field ckpt_len %" PRIu64 " is too small",
				    h->ckpt_len);
	if (h->journal_start >= h->ring_size || h->journal_start % 512)
		return dlvm_err_set(err, -EBADMSG,
				    "field journal_start %" PRIu64 " is outside the "
				    "ring or unaligned",
				    h->journal_start);
	return 0;
}

int dlvm_mda_header_check_area(const struct dlvm_mda_header *h, uint64_t area, struct dlvm_err *err)
{
	/* the decoder has checked ckpt end <= ring_offset < ring end <= mda_size
	 * without overflow; name the first region that leaves the area */
	uint64_t ck_end = h->ckpt_offset + 2 * h->ckpt_size;

	if (ck_end > area)
		return dlvm_err_set(err, -EBADMSG,
				    "field ckpt_size %" PRIu64 " (two regions at "
				    "ckpt_offset %" PRIu64 ") runs past the metadata area (%" PRIu64
				    " bytes)",
				    h->ckpt_size, h->ckpt_offset, area);
	if (h->ring_offset + h->ring_size > area)
		return dlvm_err_set(err, -EBADMSG,
				    "field ring_size %" PRIu64 " at ring_offset %" PRIu64
				    " runs past the metadata area (%" PRIu64 " bytes)",
				    h->ring_size, h->ring_offset, area);
	if (h->mda_size > area)
		return dlvm_err_set(err, -EBADMSG,
				    "field mda_size %" PRIu64 " is larger than the "
				    "metadata area (%" PRIu64 " bytes)",
				    h->mda_size, area);
	return 0;
}

void dlvm_blob_encode(struct dlvm_blob_header *h, uint8_t *buf)
{
	memset(buf, 0, DLVM_BLOB_HEADER_SIZE);
	memcpy(buf + BH_MAGIC, h->magic, 8);
	dlvm_put_le16(buf + BH_MAJOR, h->major);
	dlvm_put_le16(buf + BH_MINOR, h->minor);
	dlvm_put_le32(buf + BH_SIZE, DLVM_BLOB_HEADER_SIZE);
	memcpy(buf + BH_VG_UUID, h->vg_uuid, 16);
	dlvm_put_le64(buf + BH_SEQ, h->seq);
	dlvm_put_le32(buf + BH_TYPE, h->type);
	dlvm_put_le32(buf + BH_PLEN, h->payload_len);
	dlvm_put_le64(buf + BH_TIME, h->timestamp);
	h->crc = dlvm_crc32c(buf, DLVM_BLOB_HEADER_SIZE + (size_t)h->payload_len);
	dlvm_put_le32(buf + BH_CRC, h->crc);
}

int dlvm_blob_decode(const uint8_t *buf, size_t avail, const char *expect_magic,
		     struct dlvm_blob_header *h, struct dlvm_err *err)
{
	uint8_t tmp[DLVM_BLOB_HEADER_SIZE];
	int r;

	if (avail < DLVM_BLOB_HEADER_SIZE)
		return dlvm_err_set(err, -EBADMSG, "truncated header");
	if (memcmp(buf + BH_MAGIC, expect_magic, 8))
		return dlvm_err_set(err, -EBADMSG, "bad magic");
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, buf + BH_MAGIC, 8);
	h->major = dlvm_get_le16(buf + BH_MAJOR);
	h->minor = dlvm_get_le16(buf + BH_MINOR);
	if ((r = dlvm_block_check_version(&blob_header_kind, h->major, dlvm_get_le32(buf + BH_SIZE),
					  err)))
		return r;
	memcpy(h->vg_uuid, buf + BH_VG_UUID, 16);
	h->seq = dlvm_get_le64(buf + BH_SEQ);
	h->type = dlvm_get_le32(buf + BH_TYPE);
	h->payload_len = dlvm_get_le32(buf + BH_PLEN);
	h->timestamp = dlvm_get_le64(buf + BH_TIME);
	h->crc = dlvm_get_le32(buf + BH_CRC);
	if (dlvm_get_le32(buf + BH_END))
		return dlvm_err_set(err, -EBADMSG, "reserved byte %u is not zero", BH_END);
	if (h->payload_len > avail - DLVM_BLOB_HEADER_SIZE)
		return dlvm_err_set(err, -EBADMSG, "field payload_len %u runs past the area",
				    h->payload_len);
	memcpy(tmp, buf, sizeof(tmp));
	dlvm_put_le32(tmp + BH_CRC, 0);
	uint32_t crc = dlvm_crc32c_update(dlvm_crc32c(tmp, sizeof(tmp)), buf + sizeof(tmp),
					  h->payload_len);
	if (crc != h->crc)
		return dlvm_err_set(err, -EBADMSG,
				    "checksum mismatch (stored 0x%08x, computed "
				    "0x%08x)",
				    h->crc, crc);
	return 0;
}
