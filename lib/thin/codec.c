/* SPDX-License-Identifier: MIT */
/* Codecs of the thin store's superblock and B-tree nodes, field by field.
 * docs/format/thin.md is the spec. */
#include <inttypes.h>
#include <string.h>

#include "dlvm/util.h"
#include "lib/format/block.h"
#include "lib/thin/layout.h"
#include "thin_int.h"

_Static_assert(SB_CRC + 4 == TH_SB_SIZE, "superblock structure is 512 bytes");
_Static_assert(SB_MAJOR == DLVM_BLK_MAJOR && SB_SIZE == DLVM_BLK_SIZE &&
			       SB_INCOMPAT == DLVM_BLK_INCOMPAT,
	       "the superblock starts as every block does");
_Static_assert(NH_KEYS == TH_NODE_HDR, "node header is 40 bytes");
_Static_assert(TH_NODE_HDR + TH_ENTRIES * 16 <= TH_BLOCK, "8-byte value nodes fit a block");
_Static_assert(TH_NODE_HDR + (TH_ENTRIES + 1) * 16 > TH_BLOCK, "as many entries as fit");
_Static_assert(DR_RSVD + 4 == TH_DEV_VALUE, "device record is 40 bytes");
_Static_assert(TH_NODE_HDR + TH_DEV_ENTRIES * (8 + TH_DEV_VALUE) <= TH_BLOCK,
	       "device leaves fit a block");
_Static_assert(TH_NODE_HDR + (TH_DEV_ENTRIES + 1) * (8 + TH_DEV_VALUE) > TH_BLOCK,
	       "as many device entries as fit");

static const struct dlvm_block_kind sb_kind = {
	.magic = TH_SB_MAGIC,
	.major = TH_MAJOR,
	.size = TH_SB_SIZE,
	.fields_end = SB_END,
	.features = true,
	.incompat_known = TH_INCOMPAT_KNOWN,
	.magic_code = -ENODATA,
	.size_field = "header_size",
};

static int first_nonzero(const uint8_t *buf, size_t from, size_t to)
{
	static const uint8_t zero[TH_BLOCK];

	if (from >= to || !memcmp(buf + from, zero, to - from))
		return -1;
	for (size_t i = from; i < to; i++)
		if (buf[i])
			return (int)i;
	return -1;
}

void th_sb_encode(const struct th_sb *sb, uint8_t buf[TH_BLOCK])
{
	dlvm_block_start(&sb_kind, buf, TH_BLOCK, sb->major, sb->minor);
	dlvm_block_put_features(buf, &(struct dlvm_block_features){ sb->compat, sb->ro_compat,
								    sb->incompat });
	memcpy(buf + SB_UUID, sb->uuid, 16);
	dlvm_put_le64(buf + SB_TXN, sb->txn);
	dlvm_put_le32(buf + SB_SLOT, sb->slot);
	dlvm_put_le32(buf + SB_BLOCK_SIZE, TH_BLOCK);
	dlvm_put_le64(buf + SB_CHUNK_SIZE, sb->chunk_size);
	dlvm_put_le64(buf + SB_DATA_CHUNKS, sb->data_chunks);
	dlvm_put_le64(buf + SB_META_BLOCKS, sb->meta_blocks);
	dlvm_put_le64(buf + SB_DEV_ROOT, sb->dev_root);
	dlvm_put_le64(buf + SB_NDEVS, sb->ndevs);
	dlvm_put_le64(buf + SB_CTIME, sb->ctime);
	dlvm_block_seal(&sb_kind, buf);
}

int th_sb_decode(const uint8_t buf[TH_BLOCK], uint32_t slot, struct th_sb *sb, struct dlvm_err *err)
{
#define SB_BAD(code, fmt, ...) \
	dlvm_err_set(err, code, "superblock slot %u (block %u): " fmt, slot, slot, ##__VA_ARGS__)
	struct dlvm_block_features f;
	struct dlvm_err be = { 0 };
	int r;

	if ((r = dlvm_block_check(&sb_kind, buf, TH_BLOCK, &f, &be)))
		return SB_BAD(r, "%s", be.msg);
	memset(sb, 0, sizeof(*sb));
	sb->major = dlvm_get_le16(buf + SB_MAJOR);
	sb->minor = dlvm_get_le16(buf + SB_MINOR);
	sb->compat = f.compat;
	sb->ro_compat = f.ro_compat;
	sb->incompat = f.incompat;
	memcpy(sb->uuid, buf + SB_UUID, 16);
	sb->txn = dlvm_get_le64(buf + SB_TXN);
	sb->slot = dlvm_get_le32(buf + SB_SLOT);
	uint32_t bs = dlvm_get_le32(buf + SB_BLOCK_SIZE);
	sb->chunk_size = dlvm_get_le64(buf + SB_CHUNK_SIZE);
	sb->data_chunks = dlvm_get_le64(buf + SB_DATA_CHUNKS);
	sb->meta_blocks = dlvm_get_le64(buf + SB_META_BLOCKS);
	sb->dev_root = dlvm_get_le64(buf + SB_DEV_ROOT);
	sb->ndevs = dlvm_get_le64(buf + SB_NDEVS);
	sb->ctime = dlvm_get_le64(buf + SB_CTIME);

	if (dlvm_uuid_is_zero(sb->uuid))
		return SB_BAD(-EBADMSG, "field uuid is all zero");
	if (sb->txn == 0 || sb->txn == UINT64_MAX)
		return SB_BAD(-EBADMSG, "field txn is %" PRIu64 ", out of range", sb->txn);
	if (sb->slot != slot)
		return SB_BAD(-EBADMSG,
			      "field slot is %u but the superblock is in "
			      "slot %u",
			      sb->slot, slot);
	if (bs != TH_BLOCK)
		return SB_BAD(-EBADMSG, "field block_size is %u, not %u", bs, TH_BLOCK);
	if (!dlvm_is_pow2(sb->chunk_size) || sb->chunk_size < 4096 || sb->chunk_size > (1u << 30))
		return SB_BAD(-EBADMSG,
			      "field chunk_size %" PRIu64 " is not a power "
			      "of two from 4096 to 1073741824",
			      sb->chunk_size);
	if (sb->data_chunks == 0 || sb->data_chunks > DLVM_THIN_MAX_CHUNKS)
		return SB_BAD(-EBADMSG, "field data_chunks is %" PRIu64 ", not 1 to %" PRIu64,
			      sb->data_chunks, (uint64_t)DLVM_THIN_MAX_CHUNKS);
	if (sb->meta_blocks < TH_FIRST_NODE + 1 || sb->meta_blocks > DLVM_THIN_MAX_META_BLOCKS)
		return SB_BAD(-EBADMSG, "field meta_blocks is %" PRIu64 ", not 3 to %" PRIu64,
			      sb->meta_blocks, (uint64_t)DLVM_THIN_MAX_META_BLOCKS);
	if (sb->dev_root < TH_FIRST_NODE || sb->dev_root >= sb->meta_blocks)
		return SB_BAD(-EBADMSG,
			      "field dev_root is block %" PRIu64 ", outside "
			      "blocks 2 to %" PRIu64,
			      sb->dev_root, sb->meta_blocks - 1);
	if (sb->ndevs > DLVM_THIN_MAX_ID + 1)
		return SB_BAD(-EBADMSG, "field ndevs is %" PRIu64 ", out of range", sb->ndevs);
	return 0;
#undef SB_BAD
}

static uint32_t node_crc(const uint8_t buf[TH_BLOCK])
{
	static const uint8_t zero[4];
	uint32_t crc = dlvm_crc32c(buf, NH_CRC);

	crc = dlvm_crc32c_update(crc, zero, 4);
	return dlvm_crc32c_update(crc, buf + NH_CRC + 4, TH_BLOCK - NH_CRC - 4);
}

static void devrec_encode(const struct th_devrec *d, uint8_t *p)
{
	dlvm_put_le64(p + DR_ROOT, d->root);
	dlvm_put_le64(p + DR_MAPPED, d->mapped);
	dlvm_put_le64(p + DR_CTXN, d->created_txn);
	dlvm_put_le64(p + DR_SNAP_OF, d->snapshot_of);
	dlvm_put_le32(p + DR_FLAGS, d->flags);
	dlvm_put_le32(p + DR_RSVD, 0);
}

void th_node_encode(const struct th_node *n, uint8_t buf[TH_BLOCK])
{
	unsigned max = th_max_entries(n->type, n->level);
	size_t vsize = th_value_size(n->type, n->level);
	uint8_t *vals = buf + NH_KEYS + 8 * max;

	memset(buf, 0, TH_BLOCK);
	memcpy(buf + NH_MAGIC, TH_NODE_MAGIC, 8);
	dlvm_put_le16(buf + NH_TYPE, n->type);
	dlvm_put_le16(buf + NH_LEVEL, n->level);
	dlvm_put_le64(buf + NH_BLOCKNR, n->blocknr);
	dlvm_put_le64(buf + NH_TXN, n->txn);
	dlvm_put_le16(buf + NH_NR, n->nr);
	dlvm_put_le16(buf + NH_MAX, (uint16_t)max);
	dlvm_put_le32(buf + NH_VSIZE, (uint32_t)vsize);
	for (unsigned i = 0; i < n->nr; i++) {
		dlvm_put_le64(buf + NH_KEYS + 8 * i, n->keys[i]);
		if (vsize == 8)
			dlvm_put_le64(vals + 8 * i, n->u.v[i]);
		else
			devrec_encode(&n->u.d[i], vals + TH_DEV_VALUE * i);
	}
	dlvm_put_le32(buf + NH_CRC, node_crc(buf));
}

#define NODE_BAD(blk, fmt, ...) \
	dlvm_err_set(err, -EBADMSG, "node at block %" PRIu64 ": " fmt, (uint64_t)(blk), \
		     ##__VA_ARGS__)

int th_node_validate(const struct th_node *n, const struct th_limits *lim, struct dlvm_err *err)
{
	uint64_t b = n->blocknr;

	if (n->type != TH_TREE_DEV && n->type != TH_TREE_MAP)
		return NODE_BAD(b, "field type is %u, not 1 (device tree) or 2 (mapping tree)",
				n->type);
	if (n->level > TH_MAX_LEVEL)
		return NODE_BAD(b, "field level is %u, more than %u", n->level, TH_MAX_LEVEL);
	unsigned max = th_max_entries(n->type, n->level);
	if (n->nr > max)
		return NODE_BAD(b, "field nr_entries is %u, more than %u", n->nr, max);
	if (n->level > 0 && n->nr == 0)
		return NODE_BAD(b, "field nr_entries is 0 in an internal node");
	if (n->txn > lim->max_txn)
		return NODE_BAD(b,
				"field txn is %" PRIu64
				", later than the store's transaction %" PRIu64,
				n->txn, lim->max_txn);
	for (unsigned i = 0; i < n->nr; i++) {
		if (n->keys[i] > DLVM_THIN_MAX_ID)
			return NODE_BAD(b, "key %u is %" PRIu64 ", more than %" PRIu64, i,
					n->keys[i], (uint64_t)DLVM_THIN_MAX_ID);
		if (i > 0 && n->keys[i] <= n->keys[i - 1])
			return NODE_BAD(b, "key %u (%" PRIu64 ") is not above key %u (%" PRIu64 ")",
					i, n->keys[i], i - 1, n->keys[i - 1]);
		if (n->level > 0) {
			uint64_t c = n->u.v[i];
			if (c < TH_FIRST_NODE || c >= lim->meta_blocks || c == b)
				return NODE_BAD(b,
						"child %u is block %" PRIu64 ", outside blocks 2 "
						"to %" PRIu64 " or the node itself",
						i, c, lim->meta_blocks - 1);
		} else if (n->type == TH_TREE_MAP) {
			uint64_t v = n->u.v[i];
			uint64_t f = (v >> TH_MAP_FLAGS_SHIFT) & ~lim->map_flags;
			if (f)
				return NODE_BAD(b, "entry %u has unknown flags 0x%" PRIx64, i, f);
			if (th_map_chunk(v) >= lim->data_chunks)
				return NODE_BAD(b,
						"entry %u maps to data chunk %" PRIu64 ", beyond "
						"the %" PRIu64 " data chunks",
						i, th_map_chunk(v), lim->data_chunks);
		} else {
			const struct th_devrec *d = &n->u.d[i];
			if (d->root < TH_FIRST_NODE || d->root >= lim->meta_blocks)
				return NODE_BAD(b,
						"device %" PRIu64 ": field root is block %" PRIu64
						", outside blocks 2 to %" PRIu64,
						n->keys[i], d->root, lim->meta_blocks - 1);
			if (d->flags & ~TH_DEV_FLAGS_KNOWN)
				return NODE_BAD(b, "device %" PRIu64 ": unknown flags 0x%x",
						n->keys[i], d->flags & ~TH_DEV_FLAGS_KNOWN);
			if (!(d->flags & DLVM_THIN_DEV_SNAPSHOT)
					    ? d->snapshot_of != 0
					    : d->snapshot_of > DLVM_THIN_MAX_ID)
				return NODE_BAD(b,
						"device %" PRIu64 ": field snapshot_of is %" PRIu64
						" with flags 0x%x",
						n->keys[i], d->snapshot_of, d->flags);
			if (d->mapped > DLVM_THIN_MAX_ID + 1)
				return NODE_BAD(b,
						"device %" PRIu64 ": field mapped is %" PRIu64
						", out of range",
						n->keys[i], d->mapped);
			if (d->created_txn > lim->max_txn)
				return NODE_BAD(b,
						"device %" PRIu64 ": field created_txn is %" PRIu64
						", later than the store's transaction %" PRIu64,
						n->keys[i], d->created_txn, lim->max_txn);
		}
	}
	return 0;
}

int th_node_decode(const uint8_t buf[TH_BLOCK], uint64_t blocknr, const struct th_limits *lim,
		   struct th_node *n, struct dlvm_err *err)
{
	if (memcmp(buf + NH_MAGIC, TH_NODE_MAGIC, 8))
		return NODE_BAD(blocknr, "bad magic");
	uint32_t want = dlvm_get_le32(buf + NH_CRC), got = node_crc(buf);
	if (want != got)
		return NODE_BAD(blocknr, "checksum mismatch (stored 0x%08x, computed 0x%08x)", want,
				got);
	n->blocknr = dlvm_get_le64(buf + NH_BLOCKNR);
	if (n->blocknr != blocknr)
		return NODE_BAD(blocknr, "field blocknr is %" PRIu64 " (a node written elsewhere)",
				n->blocknr);
	n->type = dlvm_get_le16(buf + NH_TYPE);
	n->level = dlvm_get_le16(buf + NH_LEVEL);
	n->txn = dlvm_get_le64(buf + NH_TXN);
	n->nr = dlvm_get_le16(buf + NH_NR);
	uint16_t max = dlvm_get_le16(buf + NH_MAX);
	uint32_t vsize = dlvm_get_le32(buf + NH_VSIZE);
	if (n->type != TH_TREE_DEV && n->type != TH_TREE_MAP)
		return NODE_BAD(blocknr,
				"field type is %u, not 1 (device tree) or 2 (mapping "
				"tree)",
				n->type);
	if (n->level > TH_MAX_LEVEL)
		return NODE_BAD(blocknr, "field level is %u, more than %u", n->level, TH_MAX_LEVEL);
	if (max != th_max_entries(n->type, n->level))
		return NODE_BAD(blocknr, "field max_entries is %u, expected %u", max,
				th_max_entries(n->type, n->level));
	if (vsize != th_value_size(n->type, n->level))
		return NODE_BAD(blocknr, "field value_size is %u, expected %zu", vsize,
				th_value_size(n->type, n->level));
	if (n->nr > max)
		return NODE_BAD(blocknr, "field nr_entries is %u, more than %u", n->nr, max);
	if (n->level > 0 && n->nr == 0)
		return NODE_BAD(blocknr, "field nr_entries is 0 in an internal node");
	/* unused entries and the tail of the block are zero */
	const uint8_t *vals = buf + NH_KEYS + 8 * max;
	int z = first_nonzero(buf, NH_KEYS + 8 * (size_t)n->nr, NH_KEYS + 8 * (size_t)max);
	if (z < 0)
		z = first_nonzero(buf, (size_t)(vals - buf) + vsize * n->nr, TH_BLOCK);
	if (z >= 0)
		return NODE_BAD(blocknr, "byte %d past the last entry is not zero", z);
	for (unsigned i = 0; i < n->nr; i++) {
		n->keys[i] = dlvm_get_le64(buf + NH_KEYS + 8 * i);
		if (vsize == 8) {
			n->u.v[i] = dlvm_get_le64(vals + 8 * i);
			continue;
		}
		const uint8_t *p = vals + TH_DEV_VALUE * i;
		struct th_devrec *d = &n->u.d[i];
		d->root = dlvm_get_le64(p + DR_ROOT);
		d->mapped = dlvm_get_le64(p + DR_MAPPED);
		d->created_txn = dlvm_get_le64(p + DR_CTXN);
		d->snapshot_of = dlvm_get_le64(p + DR_SNAP_OF);
		d->flags = dlvm_get_le32(p + DR_FLAGS);
		if (dlvm_get_le32(p + DR_RSVD))
			return NODE_BAD(blocknr, "device %" PRIu64 ": reserved field is not zero",
					n->keys[i]);
	}
	return th_node_validate(n, lim, err);
}
