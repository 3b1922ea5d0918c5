/* SPDX-License-Identifier: MIT */
/*
 * A device view of an LV's extents (lib/volume/lvdev.c): a struct dlvm_dev
 * whose reads and writes are cut at segment and stripe boundaries and
 * passed to the PVs' devices. A thin store's metadata lives on one (its
 * hidden metadata LV, dlvm/thinpool.h).
 */
#ifndef DLVM_LVDEV_H
#define DLVM_LVDEV_H

#include <stdbool.h>

#include "dlvm/dev.h"
#include "dlvm/err.h"

struct dlvm_vg;
struct dlvm_lv;

/* Open a device view of lv (*out, closed with dlvm_dev_close); read-only
 * (dev->readonly) in a read-only VG. The VG and its PV devices must
 * outlive it. -ENODEV when a PV of the LV is missing, -ENOMEM. */
int dlvm_lvdev_open(const struct dlvm_vg *vg, const struct dlvm_lv *lv, struct dlvm_dev **out,
		    struct dlvm_err *err);

/* Does a flush of an LV device view flush the PV behind fd too? */
bool dlvm_lvdev_flushes(const struct dlvm_dev *dev, int fd);

/* Point an LV device view at the LV's current extents (after an extend);
 * the caller serialises this with its users. */
int dlvm_lvdev_remap(struct dlvm_dev *dev, const struct dlvm_vg *vg, const struct dlvm_lv *lv,
		     struct dlvm_err *err);

#endif
