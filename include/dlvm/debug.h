/* SPDX-License-Identifier: MIT */
/*
 * Named pause points for tests of stalls: with DLVM_DEBUG_PAUSE set to a
 * comma-separated list of point names (e.g. "journal-write,thin-commit"),
 * the first time the process reaches one of them it logs "debug pause at
 * journal-write: stopping" and stops itself with SIGSTOP, until a SIGCONT.
 * Each point pauses once per process. With DLVM_DEBUG_PAUSE_ARM set to a
 * path, a point pauses only while that file exists (so that a test can let
 * a daemon start and prepare, then arm the pause). Without the variable (production),
 * a point costs one load of a flag. The variable is read once, when the
 * library is loaded. docs/leases.md lists the points.
 */
#ifndef DLVM_DEBUG_H
#define DLVM_DEBUG_H

#include <stdatomic.h>
#include <stdbool.h>

extern atomic_bool dlvm_debug_pause_armed;
void dlvm_debug_pause_at(const char *point);

static inline void dlvm_debug_pause(const char *point)
{
	if (atomic_load_explicit(&dlvm_debug_pause_armed, memory_order_relaxed))
		dlvm_debug_pause_at(point);
}

#endif
