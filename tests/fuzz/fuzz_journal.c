/* SPDX-License-Identifier: MIT */
/*
 * Fuzz loading a VG from damaged metadata: a real PV and VG with a few LVs
 * are made on a memory device, then the input overwrites bytes of the
 * metadata area (header slots, checkpoint, journal ring) before the VG is
 * loaded and checked. Loading must fail cleanly or give a consistent VG.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/vg.h"
#include "lib/meta/meta.h"

#define DEV_SIZE (16u << 20)
#define MDA_SIZE (1u << 20)

static uint8_t *pristine;

static void make_pristine(void)
{
	struct dlvm_pvcreate_opts o = { .mda_size = MDA_SIZE };
	struct dlvm_dev *dev = dlvm_memdev_new("fz", DEV_SIZE, 512);
	struct dlvm_vg *vg = NULL;

	if (!dev || dlvm_pv_format(dev, &o, NULL) ||
	    dlvm_vg_create("vg0", 1 << 20, &dev, 1, &vg, NULL))
		abort();
	for (int i = 0; i < 6; i++) {
		struct dlvm_edit e = { .type = DLVM_EDIT_LV_CREATE };
		struct dlvm_txn t;
		if (dlvm_alloc(vg, NULL, 1 + (uint64_t)i % 3, 1, 0, NULL, 0, &e.u.lv.segs,
			       &e.u.lv.nseg, NULL))
			abort();
		e.u.lv.id = vg->info.next_lv_id;
		e.u.lv.uuid[0] = (uint8_t)(i + 1);
		e.u.lv.name[0] = (char)('a' + i);
		dlvm_txn_init(&t);
		dlvm_txn_add(&t, &e);
		if (dlvm_txn_commit(vg, &t, NULL))
			abort();
		dlvm_txn_release(&t);
	}
	pristine = malloc(DEV_SIZE);
	memcpy(pristine, dlvm_memdev_data(vg->pvs[0]->dev), DEV_SIZE);
	dlvm_vg_free(vg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pristine)
		make_pristine();
	struct dlvm_dev *dev = dlvm_memdev_new("fz", DEV_SIZE, 512);
	if (!dev)
		return 0;
	uint8_t *d = dlvm_memdev_data(dev);
	memcpy(d, pristine, DEV_SIZE);
	/* input: records of (u32 offset in the first 2 MiB, u8 len, bytes) */
	size_t p = 0;
	while (p + 5 <= size) {
		uint32_t off = (data[p] | data[p + 1] << 8 | data[p + 2] << 16 |
				(uint32_t)data[p + 3] << 24) % (2u << 20);
		size_t len = data[p + 4];
		p += 5;
		if (len > size - p)
			len = size - p;
		memcpy(d + off, data + p, len);
		p += len;
	}
	struct dlvm_vg *vg = NULL;
	struct dlvm_dev *devs[1] = { dev };
	if (!dlvm_vg_load(devs, 1, NULL, &vg, NULL)) {
		struct dlvm_check_report rep;
		if (!dlvm_vg_check(vg, true, &rep, NULL))
			dlvm_check_report_release(&rep);
		dlvm_vg_free(vg);
	} else {
		dlvm_dev_close(dev);
	}
	return 0;
}
