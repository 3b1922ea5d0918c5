/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the thin store with arbitrary metadata: the input patches bytes of a
 * real store (three devices, a snapshot, two-level trees) or, in raw mode,
 * is the device itself. Checksums of blocks that still carry a superblock or
 * node magic are fixed up (unless the input says not to), so the fuzzer gets
 * past the CRC to every field check, the tree walk and the B-tree code. The
 * store is then opened (normally and to salvage), checked, read, and, when
 * it opened for writing, changed and committed. Nothing may crash or leak.
 *
 * Input: byte 0 bit 0 = raw mode, bit 1 = keep checksums as they are; then
 * records of (u32 offset, u8 length, bytes) patched into the device, or in
 * raw mode the device's first bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/thin.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "lib/thin/thin_int.h"
#include "tests/fuzz/patch.h"

#define BLOCKS 48u
#define DEV_SIZE (BLOCKS * 4096u)

static uint8_t *pristine;

static void make_pristine(void)
{
	struct dlvm_thin_format_opts o = { .chunk_size = 65536,
					   .data_chunks = 4000,
					   .meta_blocks = BLOCKS };
	struct dlvm_dev *dev = dlvm_memdev_new("fz", DEV_SIZE, 4096);
	struct dlvm_thin_store *s = NULL;
	uint64_t c, n;
	bool is_new;

	if (!dev || dlvm_thin_store_format(dev, &o, NULL) ||
	    dlvm_thin_store_open(dev, NULL, &s, NULL) || dlvm_thin_create(s, 1, 0, NULL) ||
	    dlvm_thin_create(s, 7, DLVM_THIN_DEV_READONLY, NULL))
		abort();
	for (uint64_t v = 0; v < 600; v++)
		if (dlvm_thin_provision(s, 1, v * 3, &c, &is_new, NULL, NULL) ||
		    (v % 5 == 0 && dlvm_thin_provision(s, 7, v, &c, &is_new, NULL, NULL) != -EROFS))
			abort();
	if (dlvm_thin_commit(s, NULL) || dlvm_thin_snapshot(s, 1, 2, 0, NULL))
		abort();
	for (uint64_t v = 0; v < 100; v++)
		if (dlvm_thin_provision(s, 2, v * 7, &c, &is_new, NULL, NULL))
			abort();
	if (dlvm_thin_unmap(s, 1, 300, 200, &n, NULL) || dlvm_thin_commit(s, NULL))
		abort();
	dlvm_thin_store_close(s);
	pristine = malloc(DEV_SIZE);
	memcpy(pristine, dlvm_memdev_data(dev), DEV_SIZE);
	dlvm_dev_close(dev);
}

static void fix_checksums(uint8_t *d)
{
	for (unsigned b = 0; b < BLOCKS; b++) {
		uint8_t *p = d + (size_t)b * 4096;
		if (b < 2 && !memcmp(p, TH_SB_MAGIC, 8)) {
			dlvm_put_le32(p + 508, dlvm_crc32c(p, 508));
		} else if (!memcmp(p, TH_NODE_MAGIC, 8)) {
			dlvm_put_le32(p + 8, 0);
			dlvm_put_le32(p + 8, dlvm_crc32c(p, 4096));
		}
	}
}

/* Stores that claim more data chunks than a fuzz run should allocate
 * reference counts for are skipped (a real one gets -ENOMEM or works). */
static bool too_big(const uint8_t *d)
{
	for (uint32_t slot = 0; slot < 2; slot++) {
		struct th_sb sb;
		if (!th_sb_decode(d + (size_t)slot * 4096, slot, &sb, NULL) &&
		    sb.data_chunks > (1u << 20))
			return true;
	}
	return false;
}

static int count_map(void *ctx, uint64_t v, uint64_t c)
{
	(void)v;
	(void)c;
	return ++*(unsigned *)ctx > 5000; /* a bound, not expected to be reached */
}

/* Every read the store offers, on every device. */
static void read_all(struct dlvm_thin_store *s)
{
	struct dlvm_check_report rep = { 0 };
	struct dlvm_thin_usage u;
	uint64_t id = 0, c, v;
	unsigned n = 0;

	if (!dlvm_thin_check(s, &rep, NULL))
		dlvm_check_report_release(&rep);
	dlvm_thin_usage(s, &u);
	for (int i = 0; i < 16; i++) {
		struct dlvm_thin_dev_info in;
		bool shared;
		if (dlvm_thin_next_dev(s, id, &id, NULL) || id == DLVM_THIN_NONE)
			break;
		dlvm_thin_info(s, id, &in, NULL);
		for (v = 0; v < 2000; v += 97)
			dlvm_thin_lookup(s, id, v, &c, &shared, NULL);
		v = 0;
		for (int k = 0; k < 50 && v != DLVM_THIN_NONE; k++)
			if (dlvm_thin_next_mapped(s, id, v, &v, &c, NULL) || v++ == DLVM_THIN_NONE)
				break;
		dlvm_thin_iterate(s, id, 0, count_map, &n, NULL);
		id++;
	}
}

static void change_some(struct dlvm_thin_store *s)
{
	uint64_t id = 0, c, n, from;
	bool is_new;

	if (dlvm_thin_next_dev(s, 0, &id, NULL) || id == DLVM_THIN_NONE)
		id = 0;
	dlvm_thin_create(s, 100, 0, NULL);
	for (uint64_t v = 0; v < 40; v++)
		dlvm_thin_provision(s, id, v * 11, &c, &is_new, &from, NULL);
	dlvm_thin_snapshot(s, id, 101, 0, NULL);
	dlvm_thin_provision(s, 101, 0, &c, &is_new, &from, NULL);
	dlvm_thin_unmap(s, id, 0, 1000, &n, NULL);
	dlvm_thin_provision(s, 100, 5, &c, &is_new, &from, NULL);
	dlvm_thin_set_flags(s, 100, DLVM_THIN_DEV_READONLY, NULL);
	dlvm_thin_commit(s, NULL);
	dlvm_thin_delete(s, id, NULL);
	dlvm_thin_grow_data(s, 5000, NULL);
	dlvm_thin_commit(s, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pristine)
		make_pristine();
	if (size < 1)
		return 0;
	struct dlvm_dev *dev = dlvm_memdev_new("fz", DEV_SIZE, 4096);
	if (!dev)
		return 0;
	uint8_t *d = dlvm_memdev_data(dev);
	uint8_t mode = data[0];
	data++;
	size--;
	if (mode & 1) {
		memcpy(d, data, size < DEV_SIZE ? size : DEV_SIZE);
	} else {
		memcpy(d, pristine, DEV_SIZE);
		fuzz_patch(d, DEV_SIZE, DEV_SIZE, 4, data, size);
	}
	if (!(mode & 2))
		fix_checksums(d);
	if (too_big(d)) {
		dlvm_dev_close(dev);
		return 0;
	}
	struct dlvm_thin_store *s = NULL;
	struct dlvm_thin_open_opts salvage = { .flags = DLVM_THIN_SALVAGE };
	if (!dlvm_thin_store_open(dev, &salvage, &s, NULL)) {
		read_all(s);
		dlvm_thin_store_close(s);
	}
	struct dlvm_thin_open_opts small = { .cache_blocks = 8 };
	if (!dlvm_thin_store_open(dev, &small, &s, NULL)) {
		read_all(s);
		change_some(s);
		read_all(s);
		dlvm_thin_store_close(s);
		/* what was committed opens again */
		struct dlvm_err e = { 0 };
		if (dlvm_thin_store_open(dev, NULL, &s, &e)) {
			fprintf(stderr, "a store that opened no longer opens after changes: %s\n",
				e.msg);
			abort();
		}
		read_all(s);
		dlvm_thin_store_close(s);
	}
	dlvm_dev_close(dev);
	return 0;
}
