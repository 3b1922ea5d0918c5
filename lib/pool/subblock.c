/* SPDX-License-Identifier: MIT */
/* Unwritten sub-blocks: zeroing them, and recording the writes that
 * filled them whole once their data is down. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

/* Write zeros over the sub-blocks of mask in chunk `chunk`. */
int pool_subs_zero(struct dlvm_thin_pool *p, uint64_t chunk, uint16_t mask, struct dlvm_err *err)
{
	for (unsigned i = 0; i < p->nsub; i++) {
		if (!((mask >> i) & 1))
			continue;
		unsigned j = i;
		while (j + 1 < p->nsub && ((mask >> (j + 1)) & 1))
			j++;
		int r = pool_chunk_range_io(p, chunk, i * p->sub_size, (j - i + 1) * p->sub_size,
					    p->zero, true, err);
		if (r)
			return r;
		i = j;
	}
	return 0;
}

/* Zero the sub-blocks of mask in a chunk's contents in buf. */
void pool_subs_blank(const struct dlvm_thin_pool *p, uint8_t *buf, uint16_t mask)
{
	for (unsigned i = 0; i < p->nsub; i++)
		if ((mask >> i) & 1)
			memset(buf + i * p->sub_size, 0, p->sub_size);
}
/* A write's whole fill of w ended, recorded (ok) or not (mu held). */
static void fill_end(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w, bool ok)
{
	if (p->fills && dlvm_thin_fill_drop(p->fills, w->chunk, w->mask) && !ok) {
		struct dlvm_err e = { 0 };
		dlvm_err_set(&e, -EIO,
			     "a write that another one relied on failed at chunk %" PRIu64,
			     w->chunk);
		pool_break(p, &e);
	}
}

int dlvm_thin_pool_written(struct dlvm_thin_pool *p, uint64_t id, const struct dlvm_thin_written *w,
			   size_t n, struct dlvm_err *err)
{
	int r = 0;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < n; i++) {
		if (!w[i].mask)
			continue;
		if (!r) {
			pool_prep_wait(p, id, w[i].vchunk, w[i].vchunk + 1);
			if (!p->store)
				r = dlvm_err_set(err, -EROFS,
						 "%s: this host no longer writes the "
						 "family",
						 p->name);
			else
				r = dlvm_thin_set_unwritten(p->store, id, w[i].vchunk, w[i].chunk,
							    0, w[i].mask, err);
			p->dirty = true;
		}
		fill_end(p, &w[i], r == 0);
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

void dlvm_thin_pool_unfilled(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w, size_t n)
{
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < n; i++)
		if (w[i].mask)
			fill_end(p, &w[i], false);
	pthread_mutex_unlock(&p->mu);
}

int dlvm_thin_pool_fills_ended(struct dlvm_thin_pool *p, const struct dlvm_thin_written *w,
			       size_t n, struct dlvm_err *err)
{
	int r = 0;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < n && !r; i++)
		if (w[i].relied && (dlvm_thin_fill_pending(p->fills, w[i].chunk) & w[i].relied))
			r = -EAGAIN;
	if (!r && p->broken)
		r = pool_stopped(p, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}
