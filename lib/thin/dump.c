/* SPDX-License-Identifier: MIT */
/* Decode blocks of a thin store into text, for `dlvm dump` and for people:
 * superblock slots field by field, nodes with their header and entries. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/dev.h"
#include "dlvm/util.h"
#include "thin_int.h"

static void dump_sb(const uint8_t *buf, uint32_t slot, FILE *out)
{
	struct dlvm_err e = { 0 };
	struct th_sb sb;
	char uuid[DLVM_UUID_STR];

	fprintf(out, "block %u: superblock slot %u\n", slot, slot);
	if (th_sb_decode(buf, slot, &sb, &e)) {
		fprintf(out, "  DAMAGED: %s\n", e.msg);
		return;
	}
	dlvm_uuid_unparse(sb.uuid, uuid);
	fprintf(out, "  version      %u.%u\n", sb.major, sb.minor);
	fprintf(out,
		"  features     compat 0x%" PRIx64 ", ro_compat 0x%" PRIx64 ", incompat 0x%" PRIx64
		"\n",
		sb.compat, sb.ro_compat, sb.incompat);
	fprintf(out, "  uuid         %s\n", uuid);
	fprintf(out, "  txn          %" PRIu64 "\n", sb.txn);
	fprintf(out, "  chunk_size   %" PRIu64 "\n", sb.chunk_size);
	fprintf(out, "  data_chunks  %" PRIu64 "\n", sb.data_chunks);
	fprintf(out, "  meta_blocks  %" PRIu64 "\n", sb.meta_blocks);
	fprintf(out, "  dev_root     %" PRIu64 "\n", sb.dev_root);
	fprintf(out, "  ndevs        %" PRIu64 "\n", sb.ndevs);
	fprintf(out, "  ctime        %" PRIu64 "\n", sb.ctime);
}

static void dump_node(const uint8_t *buf, uint64_t blk, uint64_t dev_blocks, FILE *out)
{
	/* no superblock to go by: any unwritten mask is shown */
	struct th_limits lim = { .meta_blocks = dev_blocks,
				 .data_chunks = DLVM_THIN_MAX_CHUNKS,
				 .max_txn = UINT64_MAX,
				 .map_flags = 0xffff };
	struct dlvm_err e = { 0 };
	struct th_node *n = malloc(sizeof(*n));

	if (!n) {
		fprintf(out, "block %" PRIu64 ": out of memory\n", blk);
		return;
	}
	if (th_node_decode(buf, blk, &lim, n, &e)) {
		fprintf(out, "block %" PRIu64 ": DAMAGED: %s\n", blk, e.msg);
		free(n);
		return;
	}
	fprintf(out, "block %" PRIu64 ": %s %s, level %u, txn %" PRIu64 ", %u entries\n", blk,
		n->type == TH_TREE_DEV ? "device tree" : "mapping tree",
		n->level ? "internal node" : "leaf", n->level, n->txn, n->nr);
	for (unsigned i = 0; i < n->nr; i++) {
		if (n->level > 0)
			fprintf(out, "  %" PRIu64 " -> block %" PRIu64 "\n", n->keys[i], n->u.v[i]);
		else if (n->type == TH_TREE_MAP && th_map_unwritten(n->u.v[i]))
			fprintf(out, "  %" PRIu64 " -> chunk %" PRIu64 ", unwritten 0x%04x\n",
				n->keys[i], th_map_chunk(n->u.v[i]), th_map_unwritten(n->u.v[i]));
		else if (n->type == TH_TREE_MAP)
			fprintf(out, "  %" PRIu64 " -> chunk %" PRIu64 "\n", n->keys[i], n->u.v[i]);
		else
			fprintf(out,
				"  device %" PRIu64 ": root %" PRIu64 ", mapped %" PRIu64
				", created in txn %" PRIu64 ", snapshot of %" PRIu64
				", flags 0x%x\n",
				n->keys[i], n->u.d[i].root, n->u.d[i].mapped, n->u.d[i].created_txn,
				n->u.d[i].snapshot_of, n->u.d[i].flags);
	}
	free(n);
}

int dlvm_thin_dump(struct dlvm_dev *dev, uint64_t first, uint64_t count, FILE *out,
		   struct dlvm_err *err)
{
	uint64_t dev_blocks = dev->size / TH_BLOCK;
	uint8_t *buf = dlvm_io_alloc(TH_BLOCK);
	int r = 0;

	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	for (uint64_t b = first; b < dev_blocks && b - first < count; b++) {
		if ((r = dlvm_dev_read(dev, buf, TH_BLOCK, b * TH_BLOCK, err)))
			break;
		static const uint8_t zero[TH_BLOCK];
		if (b < TH_FIRST_NODE)
			dump_sb(buf, (uint32_t)b, out);
		else if (!memcmp(buf, zero, TH_BLOCK))
			fprintf(out, "block %" PRIu64 ": zero\n", b);
		else
			dump_node(buf, b, dev_blocks, out);
	}
	free(buf);
	return r;
}
