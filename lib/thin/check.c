/* SPDX-License-Identifier: MIT */
/*
 * dlvm_thin_check: walk every tree of the current state from scratch and
 * compare what it counts with what the store keeps in memory: the
 * reference count of every metadata block and data chunk, each device's
 * mapped count, the number of devices, and the free and pending totals.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/vg.h"
#include "thin_int.h"

#define MAX_COUNT_LINES 20 /* mismatched counts listed one by one, then summed up */

static void walk_report(void *ctx, const char *msg)
{
	dlvm_check_report_add(ctx, true, "%s", msg);
}

static void say(struct dlvm_check_report *rep, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));

static void say(struct dlvm_check_report *rep, const char *fmt, ...)
{
	char buf[DLVM_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	dlvm_check_report_add(rep, true, "%s", buf);
}

/* Compare counted references with the store's; free/pending bookkeeping. */
static void compare_counts(struct dlvm_thin_store *s, const struct th_walk *w,
			   struct dlvm_check_report *rep)
{
	uint64_t bad = 0, mfree = 0, mpending = 0, dfree = 0, dpending = 0, dcool = 0;

	for (uint64_t b = 0; b < s->sb.meta_blocks; b++) {
		uint32_t have = b < TH_FIRST_NODE ? 1 : s->mref[b];
		bool held = th_bit(s->mheld, b) || th_bit(s->mcommit, b),
		     fresh = th_bit(s->mnew, b);
		if (have != w->mref[b] && bad++ < MAX_COUNT_LINES)
			say(rep, "%s: metadata block %" PRIu64 ": %u references kept, %u found",
			    s->name, b, have, w->mref[b]);
		if (b < TH_FIRST_NODE)
			continue;
		mpending += held && !have;
		if (held && have)
			say(rep, "%s: metadata block %" PRIu64 " is in use and pending free",
			    s->name, b);
		if (fresh && !have)
			say(rep, "%s: metadata block %" PRIu64 " is free but marked new", s->name,
			    b);
		mfree += !have && !held;
	}
	for (uint64_t c = 0; c < s->sb.data_chunks; c++) {
		bool held = th_bit(s->dheld, c) || th_bit(s->dcommit, c);
		bool cool = th_bit(s->dcool, c) || th_bit(s->dsealed, c);
		if (s->dref[c] != w->dref[c] && bad++ < MAX_COUNT_LINES)
			say(rep, "%s: data chunk %" PRIu64 ": %u references kept, %u found",
			    s->name, c, s->dref[c], w->dref[c]);
		if (held && s->dref[c])
			say(rep, "%s: data chunk %" PRIu64 " is in use and pending free", s->name,
			    c);
		if (cool && (s->dref[c] || held))
			say(rep, "%s: data chunk %" PRIu64 " is in use or pending and cooling",
			    s->name, c);
		dfree += !s->dref[c] && !held && !cool;
		dpending += held && !s->dref[c];
		dcool += cool && !s->dref[c] && !held;
	}
	if (bad > MAX_COUNT_LINES)
		say(rep, "%s: %" PRIu64 " more reference counts differ", s->name,
		    bad - MAX_COUNT_LINES);
	uint64_t mkept = s->mpending + s->mpending_c, dkept = s->dpending + s->dpending_c;
	if (mfree != s->mfree || mpending != mkept)
		say(rep,
		    "%s: metadata blocks: %" PRIu64 " free and %" PRIu64 " pending kept, %" PRIu64
		    " and %" PRIu64 " found",
		    s->name, s->mfree, mkept, mfree, mpending);
	if (dfree != s->dfree || dpending != dkept)
		say(rep,
		    "%s: data chunks: %" PRIu64 " free and %" PRIu64 " pending kept, %" PRIu64
		    " and %" PRIu64 " found",
		    s->name, s->dfree, dkept, dfree, dpending);
	if (dcool != dlvm_thin_cooling(s))
		say(rep, "%s: data chunks: %" PRIu64 " cooling kept, %" PRIu64 " found", s->name,
		    dlvm_thin_cooling(s), dcool);
}

int dlvm_thin_check(struct dlvm_thin_store *s, struct dlvm_check_report *rep, struct dlvm_err *err)
{
	struct dlvm_err e = { 0 };
	int r;

	if (s->sb.meta_blocks > s->dev->size / TH_BLOCK)
		say(rep, "%s: %" PRIu64 " metadata blocks but the device holds %" PRIu64, s->name,
		    s->sb.meta_blocks, s->dev->size / TH_BLOCK);
	struct th_walk w = { .s = s,
			     .dev_root = s->sb.dev_root,
			     .lim = th_store_limits(s),
			     .strict = true,
			     .report = walk_report,
			     .ctx = rep };
	r = th_walk_run(&w, &e);
	if (r && r != -EBADMSG) {
		th_walk_release(&w);
		return dlvm_err_set(err, r, "%s", e.msg);
	}
	if (w.ndevs != s->sb.ndevs)
		say(rep, "%s: %" PRIu64 " devices kept, %" PRIu64 " in the device tree", s->name,
		    s->sb.ndevs, w.ndevs);
	compare_counts(s, &w, rep);
	th_walk_release(&w);
	return 0;
}
