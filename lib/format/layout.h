/* SPDX-License-Identifier: MIT */
/* Field offsets of the fixed headers of lib/format/codec.c, in bytes from
 * the start of each structure. docs/format/pv.md documents them, and
 * tests/unit/test_format_spec.c checks that it does so truly. */
#ifndef DLVM_FORMAT_LAYOUT_H
#define DLVM_FORMAT_LAYOUT_H

/* PV header */
enum {
	PVH_MAGIC = 0,
	PVH_MAJOR = 8,
	PVH_MINOR = 10,
	PVH_SIZE = 12,
	PVH_COMPAT = 16,
	PVH_RO_COMPAT = 24,
	PVH_INCOMPAT = 32,
	PVH_UUID = 40,
	PVH_SECTOR = 56,
	PVH_DEVSIZE = 64,
	PVH_MDA_OFF = 72,
	PVH_MDA_SIZE = 80,
	PVH_LEASE_OFF = 88,
	PVH_LEASE_SIZE = 96,
	PVH_DATA_OFF = 104,
	PVH_DATA_SIZE = 112,
	PVH_CTIME = 120,
	PVH_HOST = 128,
	PVH_HOST_LEN = 64,
	PVH_END = 192,
	PVH_CRC = 508,
};

/* MDA header slot */
enum {
	MDH_MAGIC = 0,
	MDH_MAJOR = 8,
	MDH_MINOR = 10,
	MDH_SIZE = 12,
	MDH_COMPAT = 16,
	MDH_RO_COMPAT = 24,
	MDH_INCOMPAT = 32,
	MDH_VG_UUID = 40,
	MDH_PV_UUID = 56,
	MDH_GEN = 72,
	MDH_MDA_SIZE = 80,
	MDH_CKPT_OFF = 88,
	MDH_CKPT_SIZE = 96,
	MDH_RING_OFF = 104,
	MDH_RING_SIZE = 112,
	MDH_CKPT_SLOT = 120,
	MDH_CKPT_SEQ = 128,
	MDH_CKPT_LEN = 136,
	MDH_CKPT_CRC = 144,
	MDH_JSTART = 152,
	MDH_END = 160,
	MDH_CRC = 508,
};

/* Blob (checkpoint / record) header */
enum {
	BH_MAGIC = 0,
	BH_MAJOR = 8,
	BH_MINOR = 10,
	BH_SIZE = 12,
	BH_VG_UUID = 16,
	BH_SEQ = 32,
	BH_TYPE = 40,
	BH_PLEN = 44,
	BH_TIME = 48,
	BH_CRC = 56,
	BH_END = 60,
};

#endif
