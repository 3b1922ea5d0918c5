/* SPDX-License-Identifier: MIT */
/* Codecs of the lease area records: area header, delta lease, paxos leader
 * and dblock. docs/format/lease.md documents every offset. */
#include <inttypes.h>
#include <string.h>

#include "dlvm/lease.h"
#include "dlvm/util.h"
#include "lib/format/block.h"
#include "lib/lease/layout.h"

_Static_assert(DLVM_LEASE_RECORD_SIZE == 512, "lease records are one 512-byte structure");
_Static_assert(DLVM_LEASE_HEADER_SIZE % 4096 == 0, "area header block is 4 KiB aligned");

_Static_assert(R_MAJOR == DLVM_BLK_MAJOR && R_SIZE == DLVM_BLK_SIZE &&
			       AH_INCOMPAT == DLVM_BLK_INCOMPAT &&
			       R_CRC + 4 == DLVM_LEASE_RECORD_SIZE,
	       "lease records start and end as every block does");

#define LEASE_KIND(magic_, name_, end_) \
	{ \
		.magic = magic_, .major = DLVM_LEASE_MAJOR, .size = DLVM_LEASE_RECORD_SIZE, \
		.fields_end = end_, .name = name_, .magic_code = -EBADMSG, .size_field = "size" \
	}

/* The area header's features are checked after its reserved bytes, by the
 * decoder. */
static const struct dlvm_block_kind area_header_kind = LEASE_KIND(DLVM_LEASE_AREA_MAGIC,
								  "lease area header", AH_END);
static const struct dlvm_block_kind delta_kind = LEASE_KIND(DLVM_DELTA_MAGIC, "delta lease",
							    DL_END);
static const struct dlvm_block_kind leader_kind = LEASE_KIND(DLVM_LEADER_MAGIC, "paxos leader",
							     PL_END);
static const struct dlvm_block_kind dblock_kind = LEASE_KIND(DLVM_DBLOCK_MAGIC, "paxos dblock",
							     DB_END);

static void put_prefix(uint8_t *buf, const struct dlvm_block_kind *k)
{
	dlvm_block_start(k, buf, DLVM_LEASE_RECORD_SIZE, DLVM_LEASE_MAJOR, DLVM_LEASE_MINOR);
}

static bool all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

/* ---- geometry ---- */

int dlvm_lease_area_geometry(uint32_t sector_size, uint32_t max_hosts, uint32_t nres,
			     struct dlvm_lease_area_header *h, struct dlvm_err *err)
{
	if (sector_size != 512 && sector_size != 4096)
		return dlvm_err_set(err, -EINVAL, "lease area sector size %u is not 512 or 4096",
				    sector_size);
	if (max_hosts < 1 || max_hosts > DLVM_LEASE_MAX_HOSTS)
		return dlvm_err_set(err, -EINVAL, "lease area max_hosts %u is not in 1..%u",
				    max_hosts, DLVM_LEASE_MAX_HOSTS);
	if (nres > DLVM_LEASE_MAX_RESOURCES)
		return dlvm_err_set(err, -EINVAL, "lease area resource count %u exceeds %u", nres,
				    DLVM_LEASE_MAX_RESOURCES);
	/* bounded inputs: at most 4096 * 2001 * 4096 * 4096 < 2^64 */
	h->sector_size = sector_size;
	h->max_hosts = max_hosts;
	h->nres = nres;
	h->lockspace_offset = DLVM_LEASE_HEADER_SIZE;
	h->lockspace_size = (uint64_t)max_hosts * sector_size;
	h->resource_offset = dlvm_align_up(h->lockspace_offset + h->lockspace_size, 4096);
	h->resource_stride = dlvm_align_up((uint64_t)(1 + max_hosts) * sector_size, 4096);
	h->area_size = h->resource_offset + (uint64_t)nres * h->resource_stride;
	return 0;
}

uint64_t dlvm_lease_area_size(uint32_t sector_size, uint32_t max_hosts, uint32_t nres)
{
	struct dlvm_lease_area_header h;

	if (dlvm_lease_area_geometry(sector_size, max_hosts, nres, &h, NULL))
		return 0;
	return h.area_size;
}

/* ---- area header ---- */

void dlvm_lease_area_header_encode(const struct dlvm_lease_area_header *h,
				   uint8_t buf[DLVM_LEASE_RECORD_SIZE])
{
	dlvm_block_start(&area_header_kind, buf, DLVM_LEASE_RECORD_SIZE, h->major, h->minor);
	dlvm_block_put_features(buf, &(struct dlvm_block_features){ h->compat, h->ro_compat,
								    h->incompat });
	memcpy(buf + AH_VG_UUID, h->vg_uuid, 16);
	dlvm_put_le32(buf + AH_SECTOR, h->sector_size);
	dlvm_put_le32(buf + AH_MAX_HOSTS, h->max_hosts);
	dlvm_put_le32(buf + AH_NRES, h->nres);
	dlvm_put_le32(buf + AH_IO_TIMEOUT, h->io_timeout);
	dlvm_put_le64(buf + AH_AREA_SIZE, h->area_size);
	dlvm_put_le64(buf + AH_LS_OFF, h->lockspace_offset);
	dlvm_put_le64(buf + AH_LS_SIZE, h->lockspace_size);
	dlvm_put_le64(buf + AH_RES_OFF, h->resource_offset);
	dlvm_put_le64(buf + AH_RES_STRIDE, h->resource_stride);
	dlvm_block_seal(&area_header_kind, buf);
}

static int check_layout_field(const char *field, uint64_t got, uint64_t want, struct dlvm_err *err)
{
	if (got != want)
		return dlvm_err_set(err, -EBADMSG, "field %s is %" PRIu64 ", expected %" PRIu64,
				    field, got, want);
	return 0;
}

int dlvm_lease_area_header_decode(const uint8_t buf[DLVM_LEASE_RECORD_SIZE],
				  struct dlvm_lease_area_header *h, struct dlvm_err *err)
{
	struct dlvm_lease_area_header g;
	int r;

	if ((r = dlvm_block_check(&area_header_kind, buf, DLVM_LEASE_RECORD_SIZE, NULL, err)))
		return r;
	memset(h, 0, sizeof(*h));
	h->major = dlvm_get_le16(buf + R_MAJOR);
	h->minor = dlvm_get_le16(buf + R_MINOR);
	h->compat = dlvm_get_le64(buf + AH_COMPAT);
	h->ro_compat = dlvm_get_le64(buf + AH_RO_COMPAT);
	h->incompat = dlvm_get_le64(buf + AH_INCOMPAT);
	memcpy(h->vg_uuid, buf + AH_VG_UUID, 16);
	h->sector_size = dlvm_get_le32(buf + AH_SECTOR);
	h->max_hosts = dlvm_get_le32(buf + AH_MAX_HOSTS);
	h->nres = dlvm_get_le32(buf + AH_NRES);
	h->io_timeout = dlvm_get_le32(buf + AH_IO_TIMEOUT);
	h->area_size = dlvm_get_le64(buf + AH_AREA_SIZE);
	h->lockspace_offset = dlvm_get_le64(buf + AH_LS_OFF);
	h->lockspace_size = dlvm_get_le64(buf + AH_LS_SIZE);
	h->resource_offset = dlvm_get_le64(buf + AH_RES_OFF);
	h->resource_stride = dlvm_get_le64(buf + AH_RES_STRIDE);

	if ((r = dlvm_block_check_incompat(h->incompat, DLVM_LEASE_INCOMPAT_KNOWN, err)))
		return r;
	if (dlvm_uuid_is_zero(h->vg_uuid))
		return dlvm_err_set(err, -EBADMSG, "field vg_uuid is all zero");
	if (h->sector_size != 512 && h->sector_size != 4096)
		return dlvm_err_set(err, -EBADMSG, "field sector_size is %u, not 512 or 4096",
				    h->sector_size);
	if (h->max_hosts < 1 || h->max_hosts > DLVM_LEASE_MAX_HOSTS)
		return dlvm_err_set(err, -EBADMSG, "field max_hosts is %u, not in 1..%u",
				    h->max_hosts, DLVM_LEASE_MAX_HOSTS);
	if (h->nres > DLVM_LEASE_MAX_RESOURCES)
		return dlvm_err_set(err, -EBADMSG, "field nres is %u, more than %u", h->nres,
				    DLVM_LEASE_MAX_RESOURCES);
	if (h->io_timeout < 1 || h->io_timeout > DLVM_LEASE_IO_TIMEOUT_MAX)
		return dlvm_err_set(err, -EBADMSG, "field io_timeout is %u, not in 1..%u",
				    h->io_timeout, DLVM_LEASE_IO_TIMEOUT_MAX);
	if ((r = dlvm_lease_area_geometry(h->sector_size, h->max_hosts, h->nres, &g, err)))
		return r;
	if ((r = check_layout_field("lockspace_offset", h->lockspace_offset, g.lockspace_offset,
				    err)) ||
	    (r = check_layout_field("lockspace_size", h->lockspace_size, g.lockspace_size, err)) ||
	    (r = check_layout_field("resource_offset", h->resource_offset, g.resource_offset,
				    err)) ||
	    (r = check_layout_field("resource_stride", h->resource_stride, g.resource_stride,
				    err)) ||
	    (r = check_layout_field("area_size", h->area_size, g.area_size, err)))
		return r;
	return 0;
}

/* ---- delta lease ---- */

void dlvm_delta_encode(const struct dlvm_delta_record *d, uint8_t buf[DLVM_LEASE_RECORD_SIZE])
{
	put_prefix(buf, &delta_kind);
	dlvm_put_le32(buf + DL_HOST_ID, d->host_id);
	dlvm_put_le32(buf + DL_IO_TIMEOUT, d->io_timeout);
	dlvm_put_le64(buf + DL_GEN, d->generation);
	dlvm_put_le64(buf + DL_TS, d->timestamp);
	memcpy(buf + DL_VG_UUID, d->vg_uuid, 16);
	memcpy(buf + DL_NAME, d->name, strnlen(d->name, DLVM_LEASE_NAME_MAX));
	dlvm_block_seal(&delta_kind, buf);
}

/* A NUL padded string field of len bytes holding at most len - 1 bytes of
 * printable text. */
static int decode_name(const uint8_t *p, size_t len, char *out, const char *what,
		       struct dlvm_err *err)
{
	size_t n = strnlen((const char *)p, len);

	if (n == len)
		return dlvm_err_set(err, -EBADMSG, "%s field name is not NUL terminated", what);
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return dlvm_err_set(err, -EBADMSG,
					    "%s field name has a non-printable "
					    "byte at %zu",
					    what, i);
	for (size_t i = n; i < len; i++)
		if (p[i])
			return dlvm_err_set(err, -EBADMSG,
					    "%s field name has bytes after its "
					    "NUL",
					    what);
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

int dlvm_delta_decode(const uint8_t buf[DLVM_LEASE_RECORD_SIZE], struct dlvm_delta_record *d,
		      struct dlvm_err *err)
{
	int r;

	memset(d, 0, sizeof(*d));
	if (all_zero(buf, DLVM_LEASE_RECORD_SIZE))
		return 0;
	if ((r = dlvm_block_check(&delta_kind, buf, DLVM_LEASE_RECORD_SIZE, NULL, err)))
		return r;
	d->host_id = dlvm_get_le32(buf + DL_HOST_ID);
	d->io_timeout = dlvm_get_le32(buf + DL_IO_TIMEOUT);
	d->generation = dlvm_get_le64(buf + DL_GEN);
	d->timestamp = dlvm_get_le64(buf + DL_TS);
	memcpy(d->vg_uuid, buf + DL_VG_UUID, 16);
	if (d->host_id < 1 || d->host_id > DLVM_LEASE_MAX_HOSTS)
		return dlvm_err_set(err, -EBADMSG, "delta lease field host_id is %u, not in 1..%u",
				    d->host_id, DLVM_LEASE_MAX_HOSTS);
	if (d->io_timeout < 1 || d->io_timeout > DLVM_LEASE_IO_TIMEOUT_MAX)
		return dlvm_err_set(err, -EBADMSG,
				    "delta lease field io_timeout is %u, not in "
				    "1..%u",
				    d->io_timeout, DLVM_LEASE_IO_TIMEOUT_MAX);
	if (d->generation == 0)
		return dlvm_err_set(err, -EBADMSG, "delta lease field generation is 0");
	if ((r = decode_name(buf + DL_NAME, DL_NAME_LEN, d->name, "delta lease", err)))
		return r;
	if (!d->name[0])
		return dlvm_err_set(err, -EBADMSG, "delta lease field name is empty");
	return 0;
}

/* ---- paxos leader ---- */

void dlvm_paxos_leader_encode(const struct dlvm_paxos_leader *l,
			      uint8_t buf[DLVM_LEASE_RECORD_SIZE])
{
	put_prefix(buf, &leader_kind);
	dlvm_put_le32(buf + PL_RES, l->res_index);
	dlvm_put_le32(buf + PL_OWNER, l->owner_id);
	dlvm_put_le64(buf + PL_OWNER_GEN, l->owner_generation);
	dlvm_put_le64(buf + PL_LVER, l->lver);
	dlvm_put_le64(buf + PL_TS, l->timestamp);
	memcpy(buf + PL_VG_UUID, l->vg_uuid, 16);
	dlvm_put_le32(buf + PL_WRITER, l->writer_id);
	dlvm_put_le32(buf + PL_MAX_HOSTS, l->max_hosts);
	dlvm_block_seal(&leader_kind, buf);
}

int dlvm_paxos_leader_decode(const uint8_t buf[DLVM_LEASE_RECORD_SIZE], struct dlvm_paxos_leader *l,
			     struct dlvm_err *err)
{
	int r;

	memset(l, 0, sizeof(*l));
	if ((r = dlvm_block_check(&leader_kind, buf, DLVM_LEASE_RECORD_SIZE, NULL, err)))
		return r;
	l->res_index = dlvm_get_le32(buf + PL_RES);
	l->owner_id = dlvm_get_le32(buf + PL_OWNER);
	l->owner_generation = dlvm_get_le64(buf + PL_OWNER_GEN);
	l->lver = dlvm_get_le64(buf + PL_LVER);
	l->timestamp = dlvm_get_le64(buf + PL_TS);
	memcpy(l->vg_uuid, buf + PL_VG_UUID, 16);
	l->writer_id = dlvm_get_le32(buf + PL_WRITER);
	l->max_hosts = dlvm_get_le32(buf + PL_MAX_HOSTS);
	if (l->max_hosts < 1 || l->max_hosts > DLVM_LEASE_MAX_HOSTS)
		return dlvm_err_set(err, -EBADMSG,
				    "paxos leader field max_hosts is %u, not in "
				    "1..%u",
				    l->max_hosts, DLVM_LEASE_MAX_HOSTS);
	if (l->owner_id > l->max_hosts)
		return dlvm_err_set(err, -EBADMSG,
				    "paxos leader field owner_id is %u, above "
				    "max_hosts %u",
				    l->owner_id, l->max_hosts);
	if (l->writer_id > l->max_hosts)
		return dlvm_err_set(err, -EBADMSG,
				    "paxos leader field writer_id is %u, above "
				    "max_hosts %u",
				    l->writer_id, l->max_hosts);
	if (l->timestamp && !l->owner_id)
		return dlvm_err_set(err, -EBADMSG,
				    "paxos leader is held (timestamp %" PRIu64
				    ") but field owner_id is 0",
				    l->timestamp);
	return 0;
}

/* ---- paxos dblock ---- */

void dlvm_paxos_dblock_encode(const struct dlvm_paxos_dblock *b,
			      uint8_t buf[DLVM_LEASE_RECORD_SIZE])
{
	put_prefix(buf, &dblock_kind);
	dlvm_put_le32(buf + DB_HOST_ID, b->host_id);
	dlvm_put_le32(buf + DB_FLAGS, b->flags);
	dlvm_put_le64(buf + DB_LVER, b->lver);
	dlvm_put_le64(buf + DB_MBAL, b->mbal);
	dlvm_put_le64(buf + DB_BAL, b->bal);
	dlvm_put_le32(buf + DB_INP_ID, b->inp_id);
	dlvm_put_le64(buf + DB_INP_GEN, b->inp_generation);
	dlvm_put_le64(buf + DB_INP_TS, b->inp_timestamp);
	dlvm_put_le64(buf + DB_SHARED_GEN, b->shared_generation);
	dlvm_block_seal(&dblock_kind, buf);
}

int dlvm_paxos_dblock_decode(const uint8_t buf[DLVM_LEASE_RECORD_SIZE], struct dlvm_paxos_dblock *b,
			     struct dlvm_err *err)
{
	int r;

	memset(b, 0, sizeof(*b));
	if (all_zero(buf, DLVM_LEASE_RECORD_SIZE))
		return 0;
	if ((r = dlvm_block_check(&dblock_kind, buf, DLVM_LEASE_RECORD_SIZE, NULL, err)))
		return r;
	if (dlvm_get_le32(buf + DB_RSVD))
		return dlvm_err_set(err, -EBADMSG, "paxos dblock reserved byte %u is not zero",
				    DB_RSVD);
	b->host_id = dlvm_get_le32(buf + DB_HOST_ID);
	b->flags = dlvm_get_le32(buf + DB_FLAGS);
	b->lver = dlvm_get_le64(buf + DB_LVER);
	b->mbal = dlvm_get_le64(buf + DB_MBAL);
	b->bal = dlvm_get_le64(buf + DB_BAL);
	b->inp_id = dlvm_get_le32(buf + DB_INP_ID);
	b->inp_generation = dlvm_get_le64(buf + DB_INP_GEN);
	b->inp_timestamp = dlvm_get_le64(buf + DB_INP_TS);
	b->shared_generation = dlvm_get_le64(buf + DB_SHARED_GEN);
	if (b->host_id < 1 || b->host_id > DLVM_LEASE_MAX_HOSTS)
		return dlvm_err_set(err, -EBADMSG,
				    "paxos dblock field host_id is %u, not in "
				    "1..%u",
				    b->host_id, DLVM_LEASE_MAX_HOSTS);
	if (b->flags & ~DLVM_DBLOCK_SHARED)
		return dlvm_err_set(err, -EBADMSG,
				    "paxos dblock field flags has unknown bits "
				    "0x%x",
				    b->flags & ~DLVM_DBLOCK_SHARED);
	if (b->bal > b->mbal)
		return dlvm_err_set(err, -EBADMSG,
				    "paxos dblock field bal %" PRIu64 " exceeds "
				    "mbal %" PRIu64,
				    b->bal, b->mbal);
	if (b->inp_id > DLVM_LEASE_MAX_HOSTS)
		return dlvm_err_set(err, -EBADMSG, "paxos dblock field inp_id is %u, above %u",
				    b->inp_id, DLVM_LEASE_MAX_HOSTS);
	if ((b->flags & DLVM_DBLOCK_SHARED) && !b->shared_generation)
		return dlvm_err_set(err, -EBADMSG,
				    "paxos dblock has flag SHARED but field "
				    "shared_generation is 0");
	return 0;
}
