/* SPDX-License-Identifier: MIT */
/* Unmapping the chunks of a device (TRIM, WRITE_ZEROES), and the
 * sub-blocks of partial chunks. */
#include <errno.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

/*
 * The sub-blocks that [off, off + len), inside one chunk, covers whole read
 * as zeros from now on, if the chunk is mapped (mu held). Only the device's
 * own mapping changes: a snapshot sharing the chunk keeps its data, and a
 * later write here copies the chunk without those sub-blocks.
 */
static int unmap_subs(struct dlvm_thin_pool *p, uint64_t id, uint64_t off, uint64_t len,
		      struct dlvm_err *err)
{
	uint64_t v = off / p->chunk_size;
	struct dlvm_thin_mapping mm;
	uint16_t touched, whole;
	int r;

	pool_sub_span(p, off % p->chunk_size, len, &touched, &whole);
	if (!whole || (r = pool_lookup_map(p, id, v, &mm, err)) || mm.chunk == DLVM_THIN_NONE ||
	    (mm.unwritten & whole) == whole)
		return 0;
	p->dirty = true;
	return dlvm_thin_set_unwritten(p->store, id, v, mm.chunk, whole, 0, err);
}

int dlvm_thin_pool_unmap(struct dlvm_thin_pool *p, uint64_t id, uint64_t off, uint64_t len,
			 bool zero_subs, struct dlvm_err *err)
{
	uint64_t cs = p->chunk_size, first = (off + cs - 1) / cs, end = (off + len) / cs;

	if (!len)
		return 0;
	pthread_mutex_lock(&p->mu);
	pool_prep_wait(p, id, off / cs, (off + len - 1) / cs + 1);
	uint64_t un = 0;
	int r = !p->store ? dlvm_err_set(err, -EROFS, "%s: this host reads the family only",
					 p->name)
			  : 0;
	/* partial chunks: their whole sub-blocks, where the store keeps them */
	if (!r && zero_subs && p->track) {
		if (off / cs == (off + len - 1) / cs)
			r = len < cs ? unmap_subs(p, id, off, len, err) : 0;
		else if (off % cs)
			r = unmap_subs(p, id, off, first * cs - off, err);
		if (!r && off / cs != (off + len - 1) / cs && (off + len) % cs)
			r = unmap_subs(p, id, end * cs, off + len - end * cs, err);
	}
	if (end <= first) {
		pthread_mutex_unlock(&p->mu);
		return r;
	}
	if (!r && !p->ext)
		r = dlvm_thin_unmap(p->store, id, first, end - first, &un, err);
	/* a clone: a chunk its origin maps would show the origin's data again
	 * once unmapped, so it is zeroed instead */
	for (uint64_t v = first; !r && p->ext && v < end; v++) {
		struct dlvm_thin_pool *o;
		struct dlvm_thin_mapping mm;
		uint64_t ec, u = 0;
		bool in_hole;
		if ((r = pool_ext_resolve(p, v, &o, &ec, NULL, err)))
			break;
		if (ec == DLVM_THIN_NONE) {
			r = dlvm_thin_unmap(p->store, id, v, 1, &u, err);
			un += u;
			continue;
		}
		if ((r = pool_provision(p, id, v, &mm, &in_hole, err)))
			break;
		p->dirty = true;
		if (p->track)
			r = mm.is_new ? 0 /* all unwritten */
				      : dlvm_thin_set_unwritten(p->store, id, v, mm.chunk,
								p->sub_all, 0, err);
		else if ((r = pool_chunk_zero(p, mm.chunk, in_hole, err)) && mm.is_new)
			pool_break(p, err);
	}
	if (un)
		p->dirty = true;
	pthread_mutex_unlock(&p->mu);
	return r;
}
