/* SPDX-License-Identifier: MIT */
/* Field offsets of the thin store's superblock, node header and device
 * record (lib/thin/codec.c), in bytes. docs/format/thin.md documents them,
 * and tests/unit/test_format_spec.c checks that it does so truly. */
#ifndef DLVM_THIN_LAYOUT_H
#define DLVM_THIN_LAYOUT_H

/* superblock field offsets */
enum {
	SB_MAGIC = 0,
	SB_MAJOR = 8,
	SB_MINOR = 10,
	SB_SIZE = 12,
	SB_COMPAT = 16,
	SB_RO_COMPAT = 24,
	SB_INCOMPAT = 32,
	SB_UUID = 40,
	SB_TXN = 56,
	SB_SLOT = 64,
	SB_BLOCK_SIZE = 68,
	SB_CHUNK_SIZE = 72,
	SB_DATA_CHUNKS = 80,
	SB_META_BLOCKS = 88,
	SB_DEV_ROOT = 96,
	SB_NDEVS = 104,
	SB_CTIME = 112,
	SB_END = 120,
	SB_CRC = 508,
};

/* node header field offsets */
enum {
	NH_MAGIC = 0,
	NH_CRC = 8,
	NH_TYPE = 12,
	NH_LEVEL = 14,
	NH_BLOCKNR = 16,
	NH_TXN = 24,
	NH_NR = 32,
	NH_MAX = 34,
	NH_VSIZE = 36,
	NH_KEYS = 40,
};

/* device record field offsets (a device tree leaf value) */
enum {
	DR_ROOT = 0,
	DR_MAPPED = 8,
	DR_CTXN = 16,
	DR_SNAP_OF = 24,
	DR_FLAGS = 32,
	DR_RSVD = 36,
};

#endif
