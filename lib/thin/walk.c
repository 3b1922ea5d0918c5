/* SPDX-License-Identifier: MIT */
/*
 * The walk that rebuilds the reference counts at open and recounts them in
 * dlvm_thin_check. Each distinct node is read once, however many parents
 * share it: its first visit descends, later visits only count the reference
 * and check it against what the first visit recorded (tree type, level, key
 * range, entries below). Levels fall by one from parent to child, so no
 * cycle can keep the walk going.
 *
 * Metadata blocks are handed out lowest first, so the nodes in use fill the
 * front of the device, in whatever order the trees reach them. The walk
 * reads the device in windows of TH_WALK_WIN blocks (window.c), queued for
 * a reader thread as soon as an internal node names blocks in them: a
 * million mapped chunks (about 6,000 nodes) take a dozen reads of 2 MiB
 * instead of thousands of 4 KiB ones, whatever the layout, and the reads
 * overlap with the decoding. Past a budget of windows (a very large store)
 * it reads the leaves under each level-1 node in runs of nearby blocks
 * instead (gaps of a few blocks are read through), and any other node
 * alone.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/dev.h"
#include "dlvm/util.h"
#include "thin_int.h"

#define DAMAGED 0xff
#define PF_GAP 4   /* blocks between two leaves read through */
#define PF_RUN 256 /* blocks in one read at most */

static uint8_t kind_of(uint16_t type, uint16_t level)
{
	return (uint8_t)(type + 2 * level);
}

static void problem(struct th_walk *w, struct dlvm_err *err, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

static void problem(struct th_walk *w, struct dlvm_err *err, const char *fmt, ...)
{
	char msg[DLVM_ERR_MSG_MAX];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "%s: ", w->s->name);

	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	w->problems++;
	dlvm_err_set(err, -EBADMSG, "%s", msg);
	if (w->report)
		w->report(w->ctx, msg);
}

/* Node blk as the current state has it: a changed node (or one a commit is
 * still writing) from the cache, the rest from the device. 0, or the
 * decoder's -EBADMSG in e, or -EIO. */
static int read_node(struct th_walk *w, uint64_t blk, struct th_node *n, struct dlvm_err *e)
{
	struct dlvm_thin_store *s = w->s;
	struct th_cnode *c = th_cache_find(&s->cache, blk);

	if (c && (c->dirty || c->writing)) {
		*n = c->n;
		return th_node_validate(n, &w->lim, e);
	}
	const uint8_t *wb = th_windows_block(w->win, blk);
	if (wb)
		return th_node_decode(wb, blk, &w->lim, n, e);
	unsigned lo = 0, hi = w->pf_n;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (w->pf_blk[mid] < blk)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < w->pf_n && w->pf_blk[lo] == blk)
		return th_node_decode(w->pf_data[lo], blk, &w->lim, n, e);
	int r = dlvm_dev_read(s->dev, s->iobuf, TH_BLOCK, blk * TH_BLOCK, e);
	if (r)
		return r == -EBADMSG ? -EIO : r;
	return th_node_decode(s->iobuf, blk, &w->lim, n, e);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void prefetch_drop(struct th_walk *w)
{
	free(w->pf_buf);
	w->pf_buf = NULL;
	w->pf_n = 0;
}

/* Read the leaves below level-1 node n that the walk has not seen yet. A
 * failed read only means no read-ahead: each leaf is then read alone. */
static void prefetch_leaves(struct th_walk *w, const struct th_node *n)
{
	struct dlvm_thin_store *s = w->s;
	uint64_t *b = w->pf_blk;
	unsigned m = 0;
	size_t total = 0;

	prefetch_drop(w);
	for (unsigned i = 0; i < n->nr; i++) {
		uint64_t c = n->u.v[i];
		struct th_cnode *cn = th_cache_find(&s->cache, c);
		if (c >= TH_FIRST_NODE && c < w->lim.meta_blocks && !w->mref[c] &&
		    !(cn && (cn->dirty || cn->writing)) && !th_windows_may_hold(w->win, c))
			b[m++] = c;
	}
	qsort(b, m, sizeof(*b), cmp_u64);
	/* runs: [b[i], b[j]] with small gaps and a bounded length */
	for (unsigned i = 0, j; i < m; i = j + 1) {
		for (j = i; j + 1 < m && b[j + 1] - b[j] <= PF_GAP && b[j + 1] - b[i] < PF_RUN; j++)
			;
		total += b[j] - b[i] + 1;
	}
	if (m < 2 || !(w->pf_buf = dlvm_io_alloc(total * TH_BLOCK)))
		return;
	uint8_t *p = w->pf_buf;
	for (unsigned i = 0, j; i < m; i = j + 1) {
		for (j = i; j + 1 < m && b[j + 1] - b[j] <= PF_GAP && b[j + 1] - b[i] < PF_RUN; j++)
			;
		size_t len = (size_t)(b[j] - b[i] + 1) * TH_BLOCK;
		if (dlvm_dev_read(s->dev, p, len, b[i] * TH_BLOCK, NULL)) {
			prefetch_drop(w);
			return;
		}
		for (unsigned k = i; k <= j; k++)
			w->pf_data[k] = p + (b[k] - b[i]) * TH_BLOCK;
		p += len;
	}
	/* duplicates (a leaf twice under one parent) are decoded twice: fine */
	w->pf_n = m;
}

struct visit {
	uint64_t count; /* entries below */
	bool complete;  /* no damage below: count is exact */
};

static int visit(struct th_walk *w, uint64_t blk, uint16_t type, int level, uint64_t lo,
		 uint64_t hi, struct visit *out, struct dlvm_err *err);

static int visit_children(struct th_walk *w, struct th_node *n, uint64_t hi, struct visit *out,
			  struct dlvm_err *err)
{
	/* a leaf's chunks are spread over the whole data area: ask for all
	 * their counts before the first is needed, so that the cache misses
	 * overlap instead of coming one after the other */
	for (unsigned i = 0; n->level == 0 && n->type == TH_TREE_MAP && i < n->nr; i++)
		__builtin_prefetch(&w->dref[th_map_chunk(n->u.v[i])], 1);
	for (unsigned i = 0; i < n->nr; i++) {
		struct visit v;
		int r;
		if (n->level > 0) {
			uint64_t chi = i + 1 < n->nr ? n->keys[i + 1] - 1 : hi;
			r = visit(w, n->u.v[i], n->type, n->level - 1, n->keys[i], chi, &v, err);
			out->count += v.count;
			out->complete &= v.complete;
		} else if (n->type == TH_TREE_MAP) {
			uint64_t c = th_map_chunk(n->u.v[i]);
			if (w->dref[c] == UINT32_MAX)
				problem(w, err, "data chunk %" PRIu64 " has too many references",
					c);
			else
				w->dref[c]++;
			out->count++;
			continue;
		} else {
			const struct th_devrec *d = &n->u.d[i];
			w->ndevs++;
			out->count++;
			r = visit(w, d->root, TH_TREE_MAP, -1, 0, DLVM_THIN_MAX_ID, &v, err);
			if (!r && v.complete && v.count != d->mapped)
				problem(w, err,
					"device %" PRIu64 ": field mapped is %" PRIu64 " but its "
					"tree maps %" PRIu64 " chunks",
					n->keys[i], d->mapped, v.count);
		}
		if (r)
			return r;
	}
	return 0;
}

static int visit(struct th_walk *w, uint64_t blk, uint16_t type, int level, uint64_t lo,
		 uint64_t hi, struct visit *out, struct dlvm_err *err)
{
	const char *what = type == TH_TREE_DEV ? "device tree" : "mapping tree";
	struct dlvm_err e = { 0 };
	struct th_node *n;
	int r;

	out->count = 0;
	out->complete = false;
	if (blk < TH_FIRST_NODE || blk >= w->lim.meta_blocks) {
		problem(w, err, "a %s points to block %" PRIu64 ", outside blocks 2 to %" PRIu64,
			what, blk, w->lim.meta_blocks - 1);
		return 0;
	}
	if (w->mref[blk] == UINT32_MAX) {
		problem(w, err, "node at block %" PRIu64 " has too many references", blk);
		return 0;
	}
	if (w->mref[blk]++) {
		uint8_t k = w->kind[blk];
		if (k == DAMAGED)
			return 0;
		if (k % 2 != type % 2 || (level >= 0 && k != kind_of(type, (uint16_t)level))) {
			problem(w, err,
				"node at block %" PRIu64 " is shared by nodes of different "
				"trees or levels",
				blk);
			return 0;
		}
		if (w->count[blk] && (w->first[blk] < lo || w->last[blk] > hi))
			problem(w, err,
				"node at block %" PRIu64 ": keys %" PRIu64 " to %" PRIu64
				" are outside the range %" PRIu64 " to %" PRIu64
				" its parent gives",
				blk, w->first[blk], w->last[blk], lo, hi);
		out->count = w->count[blk];
		out->complete = true;
		return 0;
	}
	if (!(n = malloc(sizeof(*n))))
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	r = read_node(w, blk, n, &e);
	if (r == -EBADMSG) {
		w->kind[blk] = DAMAGED;
		problem(w, err, "%s", e.msg);
		r = 0;
		goto out;
	}
	if (r) {
		dlvm_err_set(err, r, "%s", e.msg);
		goto out;
	}
	if (n->type != type || (level >= 0 && n->level != level)) {
		w->kind[blk] = DAMAGED;
		if (n->type != type)
			problem(w, err, "node at block %" PRIu64 ": field type is %u in the %s",
				blk, n->type, what);
		else
			problem(w, err,
				"node at block %" PRIu64 ": field level is %u where the %s "
				"needs level %d",
				blk, n->level, what, level);
		goto out;
	}
	w->kind[blk] = kind_of(n->type, n->level);
	out->complete = true;
	if (n->nr && (n->keys[0] < lo || n->keys[n->nr - 1] > hi))
		problem(w, err,
			"node at block %" PRIu64 ": keys %" PRIu64 " to %" PRIu64 " are "
			"outside the range %" PRIu64 " to %" PRIu64 " its parent gives",
			blk, n->keys[0], n->keys[n->nr - 1], lo, hi);
	if (level >= 0 && n->nr == 0)
		problem(w, err, "node at block %" PRIu64 ": an empty node below the root", blk);
	else if (w->strict && level >= 0 && n->nr < th_max_entries(n->type, n->level) / 3)
		problem(w, err, "node at block %" PRIu64 ": %u entries, fewer than a third of %u",
			blk, n->nr, th_max_entries(n->type, n->level));
	/* what this node points to comes next: its windows go to the reader */
	for (unsigned i = 0; i < n->nr; i++)
		if (n->level > 0)
			th_windows_want(w->win, n->u.v[i]);
		else if (n->type == TH_TREE_DEV)
			th_windows_want(w->win, n->u.d[i].root);
	bool pf = n->level == 1 && n->type == TH_TREE_MAP; /* leaves below: no deeper visits */
	if (pf)
		prefetch_leaves(w, n);
	r = visit_children(w, n, hi, out, err);
	if (pf)
		prefetch_drop(w);
	w->first[blk] = n->nr ? n->keys[0] : 0;
	w->last[blk] = n->nr ? n->keys[n->nr - 1] : 0;
	if (n->nr && n->level > 0) {
		uint64_t lc = n->u.v[n->nr - 1];
		if (lc < w->lim.meta_blocks && w->kind[lc] && w->kind[lc] != DAMAGED)
			w->last[blk] = w->last[lc];
	}
	w->count[blk] = out->count;
out:
	free(n);
	return r;
}

int th_walk_run(struct th_walk *w, struct dlvm_err *err)
{
	uint64_t mb = w->lim.meta_blocks, dc = w->lim.data_chunks;
	struct visit v;
	int r;

	w->ndevs = 0;
	w->problems = 0;
	w->mref = calloc(mb, sizeof(*w->mref));
	w->dref = calloc(dc ? dc : 1, sizeof(*w->dref));
	w->kind = calloc(mb, 1);
	w->first = malloc(mb * sizeof(uint64_t));
	w->last = malloc(mb * sizeof(uint64_t));
	w->count = calloc(mb, sizeof(uint64_t));
	if (!w->mref || !w->dref || !w->kind || !w->first || !w->last || !w->count)
		return dlvm_err_set(err, -ENOMEM,
				    "%s: out of memory for %" PRIu64 " metadata "
				    "blocks and %" PRIu64 " data chunks",
				    w->s->name, mb, dc);
	/* without windows (no memory for them), each block is read alone */
	th_windows_new(w->s->dev, mb, w->win_max ? w->win_max : TH_WALK_WIN_MAX, &w->win);
	w->mref[0] = w->mref[1] = 1; /* the superblock slots */
	r = visit(w, w->dev_root, TH_TREE_DEV, -1, 0, DLVM_THIN_MAX_ID, &v, err);
	prefetch_drop(w);
	th_windows_free(w->win);
	w->win = NULL;
	free(w->kind);
	free(w->first);
	free(w->last);
	free(w->count);
	w->kind = NULL;
	w->first = w->last = w->count = NULL;
	if (r)
		return r;
	return w->problems ? -EBADMSG : 0;
}

void th_walk_release(struct th_walk *w)
{
	prefetch_drop(w);
	th_windows_free(w->win);
	w->win = NULL;
	free(w->mref);
	free(w->dref);
	free(w->kind);
	free(w->first);
	free(w->last);
	free(w->count);
	w->mref = NULL;
	w->dref = NULL;
	w->kind = NULL;
	w->first = w->last = w->count = NULL;
}
