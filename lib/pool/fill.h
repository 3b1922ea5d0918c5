/* SPDX-License-Identifier: MIT */
/*
 * Fills in flight: the unwritten sub-blocks of data chunks that writes under
 * way fill whole (lib/pool/map.c). Such a sub-block counts as written
 * only once its write is done, so a write that fills it in part must not
 * zero it meanwhile (that would wipe what the whole write put there): it
 * relies on the whole write instead and waits for it to end. A fixed table
 * per pool, no allocation after dlvm_thin_fills_new; the caller holds the
 * pool's mutex.
 */
#ifndef DLVM_POOL_FILL_H
#define DLVM_POOL_FILL_H

#include <stdbool.h>
#include <stdint.h>

struct dlvm_thin_fills;

struct dlvm_thin_fills *dlvm_thin_fills_new(void);
void dlvm_thin_fills_free(struct dlvm_thin_fills *f);
/* Sub-blocks `mask` of chunk are being filled by one more write. false when
 * the table is full (nothing recorded; there is then no fill in flight on
 * chunk at all). */
bool dlvm_thin_fill_add(struct dlvm_thin_fills *f, uint64_t chunk, uint16_t mask);
/* The sub-blocks of chunk with a fill in flight. */
uint16_t dlvm_thin_fill_pending(const struct dlvm_thin_fills *f, uint64_t chunk);
/* A write fills sub-blocks `mask` (all pending) of chunk in part, relying
 * on their fills in flight. */
void dlvm_thin_fill_rely(struct dlvm_thin_fills *f, uint64_t chunk, uint16_t mask);
/* One write that filled `mask` of chunk ended. Returns the sub-blocks whose
 * last fill this was and that another write relied on. */
uint16_t dlvm_thin_fill_drop(struct dlvm_thin_fills *f, uint64_t chunk, uint16_t mask);

#endif
