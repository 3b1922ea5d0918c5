/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the lease area: a real area (4 hosts, 4 resources, 512-byte sectors)
 * with a live host, an exclusive and a shared resource lease is made on a
 * memory device; the input patches its bytes. Every sector that still
 * carries an area header, delta lease, paxos leader or ballot magic gets its
 * CRC fixed up (unless the input says not to), so the fuzzer reaches the
 * field checks. Then each sector goes through its decoder (what decodes must
 * re-encode to the same bytes' meaning), and the area is opened, its hosts
 * listed, its leaders read, a host joins and takes and releases leases, on a
 * fake clock. Nothing may crash, leak or hang.
 *
 * Input: byte 0 bit 0 = keep checksums as they are; then records of
 * (u16 offset, u8 length, bytes) patched into the area.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/lease.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "tests/fuzz/patch.h"

#define SS 512u
#define HOSTS 4u
#define NRES 4u
#define DEV_SIZE (64u << 10)

static uint8_t *pristine;
static uint64_t fake_ms;

static uint64_t fake_now(void *priv)
{
	(void)priv;
	return ++fake_ms; /* time passes even for a loop that only looks */
}

static void fake_sleep(void *priv, uint64_t ms)
{
	(void)priv;
	fake_ms += ms;
}

static const struct dlvm_lease_clock fake_clock = { fake_now, fake_sleep, NULL, NULL };

static void make_pristine(void)
{
	struct dlvm_lease_format_opts o = { .sector_size = SS,
					    .max_hosts = HOSTS,
					    .nres = NRES,
					    .io_timeout = 1 };
	struct dlvm_dev *dev = dlvm_memdev_new("fz", DEV_SIZE, SS);
	struct dlvm_lease_area *a = NULL;
	struct dlvm_lockspace *ls = NULL;
	struct dlvm_paxos_lease l0, l1;

	o.vg_uuid[0] = 1;
	if (!dev || dlvm_lease_area_format(dev, 0, DEV_SIZE, &o, NULL) ||
	    dlvm_lease_area_open(dev, 0, DEV_SIZE, &a, NULL) ||
	    dlvm_lockspace_new(a, &fake_clock, 0, &ls, NULL) ||
	    dlvm_lockspace_acquire(ls, 2, "node2", NULL, NULL) ||
	    dlvm_paxos_acquire(ls, 0, DLVM_LEASE_EXCLUSIVE, &l0, NULL) ||
	    dlvm_paxos_acquire(ls, 1, DLVM_LEASE_SHARED, &l1, NULL))
		abort();
	dlvm_lockspace_free(ls); /* gone without releasing: its records stay */
	dlvm_lease_area_close(a);
	pristine = malloc(DEV_SIZE);
	memcpy(pristine, dlvm_memdev_data(dev), DEV_SIZE);
	dlvm_dev_close(dev);
}

static void fix_checksums(uint8_t *d)
{
	static const char *const magics[] = { DLVM_LEASE_AREA_MAGIC, DLVM_DELTA_MAGIC,
					      DLVM_LEADER_MAGIC, DLVM_DBLOCK_MAGIC };
	for (size_t off = 0; off + DLVM_LEASE_RECORD_SIZE <= DEV_SIZE; off += SS)
		for (size_t m = 0; m < 4; m++)
			if (!memcmp(d + off, magics[m], 8))
				dlvm_put_le32(d + off + DLVM_LEASE_RECORD_SIZE - 4,
					      dlvm_crc32c(d + off, DLVM_LEASE_RECORD_SIZE - 4));
}

static void again_fails(size_t off, const char *msg)
{
	fprintf(stderr, "sector at %zu decodes, but not once re-encoded: %s\n", off, msg);
	abort();
}

/* Every sector through every record decoder; what decodes re-encodes. */
static void decode_sectors(const uint8_t *d)
{
	uint8_t again[DLVM_LEASE_RECORD_SIZE];
	struct dlvm_err e = { 0 };

	for (size_t off = 0; off + DLVM_LEASE_RECORD_SIZE <= DEV_SIZE; off += SS) {
		const uint8_t *p = d + off;
		struct dlvm_lease_area_header h;
		struct dlvm_delta_record dr;
		struct dlvm_paxos_leader pl;
		struct dlvm_paxos_dblock db;
		static const uint8_t zero[DLVM_LEASE_RECORD_SIZE];
		/* an all-zero sector decodes as "never used"; there is nothing to re-encode */
		bool unused = !memcmp(p, zero, sizeof(zero));
		if (!dlvm_lease_area_header_decode(p, &h, NULL) && !unused) {
			memset(again, 0, sizeof(again));
			dlvm_lease_area_header_encode(&h, again);
			if (dlvm_lease_area_header_decode(again, &h, &e))
				again_fails(off, e.msg);
		}
		if (!dlvm_delta_decode(p, &dr, NULL) && !unused) {
			memset(again, 0, sizeof(again));
			dlvm_delta_encode(&dr, again);
			if (dlvm_delta_decode(again, &dr, &e))
				again_fails(off, e.msg);
		}
		if (!dlvm_paxos_leader_decode(p, &pl, NULL) && !unused) {
			memset(again, 0, sizeof(again));
			dlvm_paxos_leader_encode(&pl, again);
			if (dlvm_paxos_leader_decode(again, &pl, &e))
				again_fails(off, e.msg);
		}
		if (!dlvm_paxos_dblock_decode(p, &db, NULL) && !unused) {
			memset(again, 0, sizeof(again));
			dlvm_paxos_dblock_encode(&db, again);
			if (dlvm_paxos_dblock_decode(again, &db, &e))
				again_fails(off, e.msg);
		}
	}
}

static void use_area(struct dlvm_dev *dev)
{
	struct dlvm_lease_area *a = NULL;
	struct dlvm_lockspace *ls = NULL;
	struct dlvm_host_info *hosts = NULL;
	struct dlvm_paxos_lease l;
	uint32_t ids[HOSTS + 1];
	size_t n;

	if (dlvm_lease_area_open(dev, 0, DEV_SIZE, &a, NULL))
		return;
	for (uint32_t r = 0; r < a->hdr.nres && r < 8; r++) {
		struct dlvm_paxos_leader pl;
		dlvm_paxos_read_leader(a, r, &pl, NULL);
	}
	if (dlvm_lockspace_new(a, &fake_clock, 0, &ls, NULL))
		goto out;
	if (!dlvm_lockspace_hosts(ls, &hosts, &n, NULL))
		free(hosts);
	if (dlvm_lockspace_acquire(ls, 3, "node3", NULL, NULL))
		goto out;
	for (uint32_t r = 0; r < 3; r++) {
		enum dlvm_lease_mode m = r == 1 ? DLVM_LEASE_SHARED : DLVM_LEASE_EXCLUSIVE;
		if (!dlvm_paxos_acquire(ls, r, m, &l, NULL))
			dlvm_paxos_release(ls, &l, NULL);
		dlvm_paxos_shared_holders(ls, r, ids, HOSTS + 1, &n, NULL);
	}
	dlvm_lockspace_renew(ls, NULL);
	dlvm_lockspace_release(ls, NULL);
out:
	dlvm_lockspace_free(ls);
	dlvm_lease_area_close(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pristine)
		make_pristine();
	if (size < 1)
		return 0;
	struct dlvm_dev *dev = dlvm_memdev_new("fz", DEV_SIZE, SS);
	if (!dev)
		return 0;
	uint8_t *d = dlvm_memdev_data(dev);
	bool fix = !(data[0] & 1);
	memcpy(d, pristine, DEV_SIZE);
	data++;
	size--;
	fuzz_patch(d, DEV_SIZE, DEV_SIZE, 2, data, size);
	if (fix)
		fix_checksums(d);
	decode_sectors(d);
	use_area(dev);
	dlvm_dev_close(dev);
	return 0;
}
