/* SPDX-License-Identifier: MIT */
/*
 * On-disk format v1: codecs between the in-memory structs below and their
 * little-endian encoding. docs/format/ is the spec; `dlvm dump` decodes it.
 *
 * PV layout (byte offsets):
 *   0          4 KiB   untouched (boot sector, partition table)
 *   4096       4 KiB   PV header (512-byte structure, rest zero)
 *   8192       ...     metadata area (MDA): header slots, checkpoints, journal
 *   lease_off  ...     lease area (shared VGs; absent in v1.0)
 *   data_off   ...     data area cut into extents (1 MiB aligned)
 *
 * MDA layout (offsets relative to the MDA start):
 *   0, 4096            two header slots (512-byte structure each); the valid
 *                      one with the higher generation is current
 *   ckpt_offset        two checkpoint regions of ckpt_size bytes each
 *   ring_offset        journal ring of ring_size bytes
 *
 * Every decoder validates magic, version, features, every field's range and
 * the CRC32C, and fails with -EBADMSG/-ENOTSUP and a message naming the field.
 * Callers prefix the location ("pv0.img: metadata copy 1 at offset 8192: ").
 */
#ifndef DLVM_FORMAT_H
#define DLVM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/err.h"

#define DLVM_FORMAT_MAJOR 1
#define DLVM_FORMAT_MINOR 0

#define DLVM_PV_HEADER_OFFSET 4096u
#define DLVM_STRUCT_SIZE 512u /* every header structure; one 512-byte sector */
#define DLVM_BLOCK 4096u      /* alignment of every region */
#define DLVM_MDA_OFFSET 8192u
#define DLVM_DATA_ALIGN (1u << 20)
#define DLVM_MDA_DEFAULT_SIZE (64ull << 20)
#define DLVM_MDA_MIN_SIZE (1ull << 20)

#define DLVM_PV_MAGIC "dlvm.pv\0"
#define DLVM_MDH_MAGIC "dlvm.mdh"
#define DLVM_CKPT_MAGIC "dlvm.ckp"
#define DLVM_REC_MAGIC "dlvm.rec"

/*
 * Feature flags (docs/format/README.md: the rules and the registry of every
 * bit). Unknown compat bits are ignored; unknown ro_compat bits allow
 * reading only (in the VG, a PV header or a metadata header slot, they make
 * the VG read-only: dlvm_pv_check_ro_compat, vg->readonly); unknown incompat
 * bits refuse the device. The three incompat bits are reserved, never
 * written, and refused like any unknown bit:
 */
#define DLVM_INCOMPAT_LEASES \
	(1ull << 0) /* a lease area in the PV header (shared
					   * VGs keep theirs in an LV instead) */
#define DLVM_INCOMPAT_THIN \
	(1ull << 1)                     /* thin pools (they came without it: an
					   * older reader refuses LV_SET_THIN) */
#define DLVM_INCOMPAT_RAID1 (1ull << 2) /* mirrored segments, planned */
/* VG ro_compat: a shared VG; a reader without lease support must not change
 * it, so an older build opens it read-only */
#define DLVM_RO_COMPAT_SHARED (1ull << 0)
/* VG ro_compat: the VG holds key/value properties (PROPERTY_SET edits,
 * written ignorable); a build that skips them would drop them from the next
 * checkpoint it writes, so an older build opens the VG read-only */
#define DLVM_RO_COMPAT_PROPERTIES (1ull << 1)
#define DLVM_INCOMPAT_KNOWN ((uint64_t)0) /* what this build implements */
#define DLVM_RO_COMPAT_KNOWN (DLVM_RO_COMPAT_SHARED | DLVM_RO_COMPAT_PROPERTIES)
#define DLVM_COMPAT_KNOWN ((uint64_t)0)

/* ---- PV header ---- */
struct dlvm_pv_header {
	uint16_t major, minor;
	uint64_t compat, ro_compat, incompat;
	uint8_t pv_uuid[16];
	uint32_t sector_size; /* 512 or 4096 */
	uint64_t device_size; /* bytes, when the label was written */
	uint64_t mda_offset, mda_size;
	uint64_t lease_offset, lease_size; /* 0, 0 when absent */
	uint64_t data_offset, data_size;
	uint64_t ctime;    /* seconds since the epoch */
	char hostname[65]; /* host that wrote the label, NUL terminated */
};
void dlvm_pv_header_encode(const struct dlvm_pv_header *h, uint8_t buf[DLVM_STRUCT_SIZE]);
/* Also checks that the regions are aligned, ordered and inside device_size. */
int dlvm_pv_header_decode(const uint8_t buf[DLVM_STRUCT_SIZE], struct dlvm_pv_header *h,
			  struct dlvm_err *err);

/* ---- MDA header slot ---- */
struct dlvm_mda_header {
	uint16_t major, minor;
	uint64_t compat, ro_compat, incompat;
	uint8_t vg_uuid[16]; /* all zero: the PV belongs to no VG */
	uint8_t pv_uuid[16]; /* the PV holding this MDA */
	uint64_t generation; /* +1 on every header write */
	uint64_t mda_size;
	uint64_t ckpt_offset, ckpt_size; /* each of the two regions */
	uint64_t ring_offset, ring_size;
	uint32_t ckpt_slot;     /* 0 or 1: region holding the current checkpoint */
	uint64_t ckpt_seq;      /* sequence number the checkpoint includes */
	uint64_t ckpt_len;      /* bytes of the checkpoint (header + payload) */
	uint32_t ckpt_crc;      /* CRC32C of those bytes */
	uint64_t journal_start; /* ring offset of record ckpt_seq + 1 */
};
void dlvm_mda_header_encode(const struct dlvm_mda_header *h, uint8_t buf[DLVM_STRUCT_SIZE]);
int dlvm_mda_header_decode(const uint8_t buf[DLVM_STRUCT_SIZE], struct dlvm_mda_header *h,
			   struct dlvm_err *err);
/*
 * Check a decoded header slot against the metadata area that holds it
 * (`area` bytes: the PV header's mda_size, itself checked against the device):
 * the checkpoint regions, the journal ring and mda_size must lie inside it, so
 * that no read or allocation sized by the slot goes past the area. Returns 0 or
 * -EBADMSG with a message naming the field ("field ring_size 1099511627776 at
 * ring_offset 528384 runs past the metadata area (1048576 bytes)").
 */
int dlvm_mda_header_check_area(const struct dlvm_mda_header *h, uint64_t area,
			       struct dlvm_err *err);

/* ---- checkpoint and journal record headers (64 bytes, then payload) ---- */
#define DLVM_BLOB_HEADER_SIZE 64u

enum dlvm_rec_type {
	DLVM_REC_TXN = 1,  /* payload is an edit stream */
	DLVM_REC_WRAP = 2, /* no payload: the next record is at ring offset 0 */
};

struct dlvm_blob_header {
	char magic[8]; /* DLVM_CKPT_MAGIC or DLVM_REC_MAGIC */
	uint16_t major, minor;
	uint8_t vg_uuid[16];
	uint64_t seq;
	uint32_t type; /* records: enum dlvm_rec_type; checkpoints: 0 */
	uint32_t payload_len;
	uint64_t timestamp; /* seconds since the epoch */
	uint32_t crc;       /* CRC32C of header (crc field zero) + payload */
};
/* Encode header and compute the CRC over it and the payload that follows it
 * in buf (buf holds DLVM_BLOB_HEADER_SIZE + payload_len bytes). */
void dlvm_blob_encode(struct dlvm_blob_header *h, uint8_t *buf);
/* Decode the header at buf; avail is the number of bytes readable at buf.
 * -EBADMSG for bad magic (expect_magic), version, length or CRC. */
int dlvm_blob_decode(const uint8_t *buf, size_t avail, const char *expect_magic,
		     struct dlvm_blob_header *h, struct dlvm_err *err);

/*
 * ---- edits: the unit of metadata change ----
 *
 * A transaction record's payload and a checkpoint's payload are both a stream
 * of edits: u16 type, u16 flags, u32 length, then length bytes. A checkpoint
 * is the list of edits that rebuilds the whole VG from nothing.
 */
#define DLVM_EDIT_IGNORABLE 0x1 /* a reader that does not know the type may skip it */

enum dlvm_edit_type {
	DLVM_EDIT_VG_INFO = 1, /* set all VG scalars (name, extent size, ids) */
	DLVM_EDIT_PV_ADD = 2,
	DLVM_EDIT_PV_REMOVE = 3,
	DLVM_EDIT_LV_CREATE = 10,
	DLVM_EDIT_LV_REMOVE = 11,
	DLVM_EDIT_LV_RENAME = 12,
	DLVM_EDIT_LV_SET_FLAGS = 13,
	DLVM_EDIT_LV_SET_SEGMENTS = 14,
	DLVM_EDIT_LV_SET_HOLDERS = 15, /* shared VGs: the hosts where the LV is active */
	DLVM_EDIT_LV_SET_THIN = 16,    /* thin pool or thin volume attributes */
	/* The rate a flatten of the LV copies at (written ignorable: a reader
	 * that does not know it copies without a limit). */
	DLVM_EDIT_LV_SET_COPY_RATE = 17,
	/* Set or delete one key/value property of an LV or of the VG (object
	 * id 0); written ignorable, with DLVM_RO_COMPAT_PROPERTIES in the VG. */
	DLVM_EDIT_PROPERTY_SET = 18,
};

/* Bounds of properties, checked on decode and on apply. A key is 1 to
 * DLVM_PROP_KEY_MAX bytes of [A-Za-z0-9_.:+/@%#-]; a value at most
 * DLVM_PROP_VALUE_MAX bytes, any but NUL; an LV (or the VG) has at most
 * DLVM_PROP_MAX properties. */
#define DLVM_PROP_KEY_MAX 255
#define DLVM_PROP_VALUE_MAX 4096
#define DLVM_PROP_MAX 256
#define DLVM_PROP_DELETE 0x1u /* PROPERTY_SET flags: remove the key (empty value) */

#define DLVM_NAME_MAX 127
#define DLVM_MAX_STRIPES 128

enum dlvm_seg_type {
	DLVM_SEG_LINEAR = 1,
	DLVM_SEG_STRIPED = 2,
};

struct dlvm_area {
	uint32_t pv_id;
	uint64_t pe_start; /* first physical extent on that PV */
};

/* A segment maps le_count logical extents starting at le_start. Each of the
 * `stripes` areas holds le_count / stripes extents. */
struct dlvm_seg_desc {
	uint64_t le_start, le_count;
	uint16_t type;           /* enum dlvm_seg_type */
	uint16_t stripes;        /* 1 for linear */
	uint32_t stripe_size;    /* bytes, power of two; 0 for linear */
	struct dlvm_area area[]; /* `stripes` entries */
};

#define DLVM_VG_SHARED (1ull << 0)

struct dlvm_vg_info {
	char name[DLVM_NAME_MAX + 1];
	uint8_t uuid[16];
	uint64_t extent_size; /* bytes */
	uint64_t flags;       /* DLVM_VG_* */
	uint64_t compat, ro_compat, incompat;
	uint64_t ctime;
	uint64_t next_lv_id;
	uint32_t next_pv_id;
	uint32_t max_lv; /* 0 = unlimited */
};

struct dlvm_pv_desc {
	uint32_t id;
	uint8_t uuid[16];
	uint64_t pe_start; /* bytes: start of the data area */
	uint64_t pe_count;
	uint64_t dev_size;
	uint32_t sector_size;
	uint64_t flags;
};

#define DLVM_LV_READONLY (1ull << 0)
#define DLVM_LV_HIDDEN (1ull << 1)    /* internal LV: lvs shows it only with -a */
#define DLVM_LV_LOCKSPACE (1ull << 2) /* holds the lease area of a shared VG */

#define DLVM_LV_THIN_POOL (1ull << 3) /* a thin pool: its segments are the data area */
#define DLVM_LV_THIN_META (1ull << 4) /* hidden: the metadata area of a thin pool */
#define DLVM_LV_THIN (1ull << 5)      /* a thin volume or snapshot: no segments */
#define DLVM_LV_THIN_DATA (1ull << 6) /* hidden: the data slabs of a thin family */
/* A clone whose flatten was asked for and has not ended: dlvmd goes on
 * with it when it starts (the copy already done stays done). */
#define DLVM_LV_FLATTEN (1ull << 7)

/* Thin attributes (LV_SET_THIN).
 * Pool: chunk_size, and either meta_id (a local VG: one store for the whole
 * pool) or slab_extents (a shared VG: one store per family, docs/thin.md).
 * Family metadata LV (DLVM_LV_THIN_META in a shared VG): pool_id,
 * chunk_size. Family data LV (DLVM_LV_THIN_DATA): pool_id, meta_id (its
 * family's metadata LV).
 * Thin volume: pool_id, virtual_size, origin_id (the LV it is a snapshot of,
 * or 0), meta_id (its family's metadata LV in a shared VG, else 0); its
 * device id in its store is its LV id. */
/* The largest virtual size of a thin LV: 1 EiB (2^48 chunks of 4 KiB, the
 * store's key limit, is 1 EiB too). */
#define DLVM_THIN_MAX_VSIZE (1ull << 60)

struct dlvm_lv_thin {
	uint64_t pool_id;
	uint64_t origin_id;
	uint64_t virtual_size; /* bytes, a multiple of 4096 */
	uint64_t meta_id;
	uint32_t chunk_size;   /* bytes, power of two 4 KiB .. 1 MiB */
	uint32_t slab_extents; /* a pool in a shared VG: extents per slab */
};

/* Activation lock records of an LV in a shared VG: the hosts where it is
 * active, each named by host id and the generation of its lockspace lease
 * (a record of an older generation or of a dead host is stale). */
enum dlvm_hold_mode {
	DLVM_HOLD_EXCLUSIVE = 1,
	DLVM_HOLD_SHARED = 2,
};
#define DLVM_MAX_HOLDERS 2000u

struct dlvm_lv_holder {
	uint32_t host_id; /* 1..2000 */
	uint32_t mode;    /* enum dlvm_hold_mode */
	uint64_t generation;
};

/* Decoded edit. Strings and segments point into the decoded buffer or into
 * storage owned by the edit; free with dlvm_edit_release(). */
struct dlvm_edit {
	uint16_t type, flags;
	union {
		struct dlvm_vg_info vg;
		struct dlvm_pv_desc pv; /* PV_ADD */
		uint32_t pv_id;         /* PV_REMOVE */
		struct {
			uint64_t id;
			uint8_t uuid[16];               /* LV_CREATE */
			char name[DLVM_NAME_MAX + 1];   /* LV_CREATE, LV_RENAME */
			uint64_t flags;                 /* LV_CREATE, LV_SET_FLAGS */
			uint64_t ctime;                 /* LV_CREATE */
			uint32_t nseg;                  /* LV_CREATE, LV_SET_SEGMENTS */
			struct dlvm_seg_desc **segs;    /* owned array of owned segments */
			uint32_t nholders;              /* LV_SET_HOLDERS */
			struct dlvm_lv_holder *holders; /* owned */
			struct dlvm_lv_thin thin;       /* LV_SET_THIN */
			uint64_t copy_rate; /* LV_SET_COPY_RATE: bytes per second, 0 none */
		} lv;
		struct {
			uint64_t id;    /* the LV; 0: the VG */
			uint32_t flags; /* DLVM_PROP_DELETE */
			char key[DLVM_PROP_KEY_MAX + 1];
			char *value; /* owned, NUL terminated; NULL for a delete */
		} prop;              /* PROPERTY_SET */
		struct {
			size_t len;
			const uint8_t *data; /* unknown ignorable edit: raw bytes */
		} raw;
	} u;
};

/* Growable byte buffer the encoders append to. */
struct dlvm_buf {
	uint8_t *data;
	size_t len, cap;
};
int dlvm_buf_reserve(struct dlvm_buf *b, size_t more);
/* Free a segment list (each segment, then the array); NULL is fine. */
void dlvm_segs_free(struct dlvm_seg_desc **segs, uint32_t n);
void dlvm_buf_release(struct dlvm_buf *b);

/* Bytes a segment with n stripes takes in memory. */
size_t dlvm_seg_desc_size(uint16_t stripes);

/* Append one encoded edit. -ENOMEM only. */
int dlvm_edit_encode(const struct dlvm_edit *e, struct dlvm_buf *out);
/*
 * Decode the edit at *pos in buf[0..len) and advance *pos. -EBADMSG with the
 * edit's index and field in the message; -ENOTSUP for an unknown type without
 * DLVM_EDIT_IGNORABLE (an unknown ignorable edit decodes with its raw bytes).
 */
int dlvm_edit_decode(const uint8_t *buf, size_t len, size_t *pos, struct dlvm_edit *e,
		     struct dlvm_err *err);
void dlvm_edit_release(struct dlvm_edit *e);

/*
 * Check a property: key[0..klen) against the key rules and value[0..vlen)
 * (may be NULL for a delete) against the value bounds (DLVM_PROP_*).
 * 0 or -EINVAL with a message naming the key and the byte or length at fault.
 */
int dlvm_prop_check(const char *key, size_t klen, const char *value, size_t vlen,
		    struct dlvm_err *err);

/* Name of an edit type for dump ("LV_CREATE"), "UNKNOWN" otherwise. */
const char *dlvm_edit_type_name(uint16_t type);

#endif
