/* SPDX-License-Identifier: MIT */
/*
 * Fencing of a shared VG: a deadline on dlvm_now_ms() (CLOCK_BOOTTIME, which
 * goes on during a suspend) after which this host issues no write to the
 * VG's devices. One fence per joined shared VG, shared by the VG's runtime
 * (dlvm/runtime.h), its open thin stores and every map built from it; the
 * lease renewal thread moves the deadline forward after each successful
 * renewal. Reference counted; every call is safe from any thread.
 *
 * Two rules use it (docs/leases.md, "Fencing"):
 *   - a data write is dispatched only while now < deadline (dlvm_fence_ok);
 *   - a metadata write (journal record, checkpoint, metadata header, thin
 *     store block or superblock) is issued only while the deadline is more
 *     than the margin (the I/O timeout T) away (dlvm_fence_meta_ok), checked
 *     right before the write is submitted. A metadata write that fails the
 *     check is not issued and shuts the fence for good: the host fences
 *     itself (no more data or metadata writes, no more renewals of the VG's
 *     lockspace), as it does when a renewal finds its deadline passed.
 */
#ifndef DLVM_FENCE_H
#define DLVM_FENCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dlvm/err.h"
#include "dlvm/format.h"
#include "dlvm/util.h"

/* A deadline value that means "fenced for good" (dlvm_fence_shut): below
 * any reading of the clock, and never replaced by dlvm_fence_set. */
#define DLVM_FENCE_SHUT 1u

struct dlvm_fence {
	atomic_uint refs;
	_Atomic uint64_t deadline_ms; /* dlvm_now_ms; 0: fenced now; DLVM_FENCE_SHUT */
	_Atomic uint64_t margin_ms;   /* metadata writes: the deadline must be further */
	atomic_bool told;             /* the shutting was logged */
	char what[DLVM_NAME_MAX + 1]; /* the VG name, for messages */
};

/* A new fence (refs = 1, margin 0) that is already fenced (deadline 0) until
 * dlvm_fence_set moves its deadline. NULL when out of memory. */
struct dlvm_fence *dlvm_fence_new(const char *what);
struct dlvm_fence *dlvm_fence_get(struct dlvm_fence *f);
/* Drop a reference (NULL is allowed). */
void dlvm_fence_put(struct dlvm_fence *f);
/* Set the deadline (dlvm_now_ms milliseconds; 0 fences at once until the
 * next call). Returns false, changing nothing, once the fence is shut. */
bool dlvm_fence_set(struct dlvm_fence *f, uint64_t deadline_ms);
/* The metadata margin: the lease's I/O timeout T in milliseconds. */
void dlvm_fence_set_margin(struct dlvm_fence *f, uint64_t margin_ms);
/* Fence for good: no later dlvm_fence_set reopens it. */
void dlvm_fence_shut(struct dlvm_fence *f);
static inline bool dlvm_fence_is_shut(const struct dlvm_fence *f)
{
	return f && atomic_load_explicit(&f->deadline_ms, memory_order_acquire) == DLVM_FENCE_SHUT;
}

/* May a data write be dispatched now? Always true for NULL (a local VG). */
static inline bool dlvm_fence_ok(const struct dlvm_fence *f)
{
	return !f || dlvm_now_ms() < atomic_load_explicit(&f->deadline_ms, memory_order_acquire);
}

/* The slow half of dlvm_fence_meta_ok: shut the fence, log it once, and
 * return -ENOLCK with "vg0: lease expires in 800 ms (I/O timeout 1000 ms):
 * metadata write not issued, this host fences itself" (or "expired 3 ms
 * ago", or "this host has fenced itself"). `what` names the write. */
int dlvm_fence_meta_refuse(struct dlvm_fence *f, uint64_t deadline_ms, uint64_t now_ms,
			   const char *what, struct dlvm_err *err);

/*
 * May a metadata write be issued now? Call right before submitting it, with
 * nothing that can block in between. NULL (a local VG, or a shared VG not
 * joined here) is always allowed. Costs one clock read and a compare.
 * 0, or -ENOLCK (see dlvm_fence_meta_refuse; the fence is then shut).
 */
static inline int dlvm_fence_meta_ok(struct dlvm_fence *f, const char *what, struct dlvm_err *err)
{
	if (!f)
		return 0;
	uint64_t dl = atomic_load_explicit(&f->deadline_ms, memory_order_acquire);
	uint64_t now = dlvm_now_ms();
	if (now + atomic_load_explicit(&f->margin_ms, memory_order_relaxed) < dl)
		return 0;
	return dlvm_fence_meta_refuse(f, dl, now, what, err);
}

#endif
