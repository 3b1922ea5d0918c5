/* SPDX-License-Identifier: MIT */
/* The fence of a shared VG (dlvm/fence.h): the deadline data and metadata
 * writes are checked against. */
#include "dlvm/fence.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "dlvm/log.h"

struct dlvm_fence *dlvm_fence_new(const char *what)
{
	struct dlvm_fence *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	atomic_init(&f->refs, 1);
	atomic_init(&f->deadline_ms, 0);
	atomic_init(&f->margin_ms, 0);
	atomic_init(&f->told, false);
	snprintf(f->what, sizeof(f->what), "%s", what);
	return f;
}

struct dlvm_fence *dlvm_fence_get(struct dlvm_fence *f)
{
	atomic_fetch_add(&f->refs, 1);
	return f;
}

void dlvm_fence_put(struct dlvm_fence *f)
{
	if (f && atomic_fetch_sub(&f->refs, 1) == 1)
		free(f);
}

bool dlvm_fence_set(struct dlvm_fence *f, uint64_t deadline_ms)
{
	uint64_t cur = atomic_load_explicit(&f->deadline_ms, memory_order_acquire);

	/* a compare-and-swap, so that a shut between the load and the store
	 * is never overwritten */
	do {
		if (cur == DLVM_FENCE_SHUT)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&f->deadline_ms, &cur, deadline_ms,
							memory_order_acq_rel,
							memory_order_acquire));
	return true;
}

void dlvm_fence_set_margin(struct dlvm_fence *f, uint64_t margin_ms)
{
	atomic_store_explicit(&f->margin_ms, margin_ms, memory_order_relaxed);
}

void dlvm_fence_shut(struct dlvm_fence *f)
{
	atomic_store_explicit(&f->deadline_ms, DLVM_FENCE_SHUT, memory_order_release);
}

int dlvm_fence_meta_refuse(struct dlvm_fence *f, uint64_t deadline_ms, uint64_t now_ms,
			   const char *what, struct dlvm_err *err)
{
	uint64_t margin = atomic_load_explicit(&f->margin_ms, memory_order_relaxed);
	char when[96];

	if (deadline_ms == DLVM_FENCE_SHUT)
		snprintf(when, sizeof(when), "this host has fenced itself");
	else if (!deadline_ms)
		snprintf(when, sizeof(when), "this host holds no lease");
	else if (deadline_ms > now_ms)
		snprintf(when, sizeof(when),
			 "lease expires in %" PRIu64 " ms (I/O timeout %" PRIu64 " ms)",
			 deadline_ms - now_ms, margin);
	else
		snprintf(when, sizeof(when), "lease expired %" PRIu64 " ms ago",
			 now_ms - deadline_ms);
	dlvm_fence_shut(f);
	if (!atomic_exchange(&f->told, true))
		log_error(DLVM_LOG_LEASE,
			  "%s: %s: %s not issued, this host fences itself: no more writes "
			  "to the VG",
			  f->what, when, what);
	return dlvm_err_set(err, -ENOLCK, "%s: %s: %s not issued, this host fences itself", f->what,
			    when, what);
}
