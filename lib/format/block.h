/* SPDX-License-Identifier: MIT */
/*
 * The common header of dlvm's fixed-size blocks: the PV header, the metadata
 * header slots, the lease area header and its records, and the thin store's
 * superblock all start the same way and end with the same CRC
 * (docs/format/README.md, "Common block header"):
 *
 *   0    magic[8]
 *   8    major u16      the reader refuses another major version (-ENOTSUP)
 *   10   minor u16      not checked: a 1.x writer only adds what 1.0 skips
 *   12   size u32       of the structure, which must be the kind's
 *   16   compat u64     \
 *   24   ro_compat u64   } kinds with feature flags only
 *   32   incompat u64   /
 *   ...  the kind's fields, then reserved bytes that must be zero
 *   size - 4  crc u32   CRC32C of bytes 0 .. size - 5
 *
 * A kind describes one such structure and how its errors read, so that every
 * codec checks the common part the same way and with the messages it always
 * had. The blob header of checkpoints and journal records shares only the
 * version and size fields (dlvm_block_check_version).
 */
#ifndef DLVM_FORMAT_BLOCK_H
#define DLVM_FORMAT_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/err.h"

#define DLVM_BLK_MAGIC 0
#define DLVM_BLK_MAJOR 8
#define DLVM_BLK_MINOR 10
#define DLVM_BLK_SIZE 12
#define DLVM_BLK_COMPAT 16
#define DLVM_BLK_RO_COMPAT 24
#define DLVM_BLK_INCOMPAT 32

struct dlvm_block_kind {
	const char *magic;       /* 8 bytes */
	uint16_t major;          /* the major version this build reads */
	uint32_t size;           /* of the structure; its last 4 bytes are the CRC */
	uint32_t fields_end;     /* reserved bytes run from here to the CRC */
	bool features;           /* carries compat, ro_compat, incompat at 16, 24, 32 */
	uint64_t incompat_known; /* with features: the incompat bits this build reads */

	/* How the messages read. With a name ("delta lease") they start with it
	 * ("delta lease checksum mismatch ..."), the magic's with "bad magic (not
	 * a NAME)". */
	const char *name;       /* NULL: messages without a name */
	int magic_code;         /* -EBADMSG, or -ENODATA where it means "not one" */
	const char *magic_msg;  /* NULL: "bad magic", or "bad magic (not a NAME)" */
	const char *size_field; /* NULL: "header size N, expected M"; else "field
				    * SIZE_FIELD is N, expected M" */
};

/* The three feature sets of a block. */
struct dlvm_block_features {
	uint64_t compat, ro_compat, incompat;
};

/*
 * Start encoding a block of the kind in buf[0..len) (len >= k->size): zero
 * it, then write magic, major, minor and size. The caller writes its fields
 * and the features (dlvm_block_put_features), then dlvm_block_seal.
 */
void dlvm_block_start(const struct dlvm_block_kind *k, uint8_t *buf, size_t len, uint16_t major,
		      uint16_t minor);
void dlvm_block_put_features(uint8_t *buf, const struct dlvm_block_features *f);
/* Store the CRC32C of bytes [0, size - 4) in the last 4 bytes of the structure. */
void dlvm_block_seal(const struct dlvm_block_kind *k, uint8_t *buf);

/*
 * Check the common part of the block at buf[0..len) (len >= k->size), in
 * this order: magic, CRC, major version, size, incompatible features (kinds
 * with features), then that the reserved bytes [fields_end, size - 4) and the
 * bytes [size, len) after the structure are zero. Fills *f (may be NULL) with
 * the feature sets. Returns 0, -ENOTSUP (version, features), -EBADMSG, or
 * k->magic_code for a bad magic, with the message in err.
 */
int dlvm_block_check(const struct dlvm_block_kind *k, const uint8_t *buf, size_t len,
		     struct dlvm_block_features *f, struct dlvm_err *err);

/* The version and size checks of dlvm_block_check alone, on the values read. */
int dlvm_block_check_version(const struct dlvm_block_kind *k, uint16_t major, uint32_t size,
			     struct dlvm_err *err);
/* -ENOTSUP "unknown incompatible features 0x... (written by a newer dlvm)"
 * for a bit of incompat outside known; unknown compat and ro_compat bits are
 * the caller's to judge. */
int dlvm_block_check_incompat(uint64_t incompat, uint64_t known, struct dlvm_err *err);

#endif
