/* SPDX-License-Identifier: MIT */
/* Flatten: the copy into a clone's family of everything its external
 * origin still provides. */
#include <errno.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

int dlvm_thin_pool_flatten(struct dlvm_thin_pool *p, uint64_t id, uint64_t vchunks,
			   int (*add_slab)(void *arg, struct dlvm_err *err), void *arg,
			   int (*progress)(void *arg, uint64_t done, uint64_t copied,
					   struct dlvm_err *err),
			   struct dlvm_err *err)
{
	uint64_t copied = 0, v = 0;
	int r = 0;

	pthread_mutex_lock(&p->mu);
	if (!p->store || p->broken)
		r = dlvm_err_set(err, p->store ? -EIO : -EROFS, "%s: cannot flatten here: %s",
				 p->name, p->store ? p->broken_msg : "the family is read only");
	while (!r && p->ext && v < vchunks) {
		/* the next chunk any origin down the chain maps */
		uint64_t next = DLVM_THIN_NONE, dev = p->ext_dev;
		for (struct dlvm_thin_pool *e = p->ext; e && !r; dev = e->ext_dev, e = e->ext) {
			uint64_t n;
			pthread_mutex_lock(&e->mu);
			r = pool_next_mapped(e, dev, v, &n, err);
			pthread_mutex_unlock(&e->mu);
			if (!r && n < next)
				next = n;
		}
		if (r || next == DLVM_THIN_NONE || next >= vchunks)
			break;
		v = next;
		uint64_t mine, ec;
		struct dlvm_thin_pool *o;
		struct dlvm_thin_mapping mm;
		bool in_hole;
		if ((r = pool_lookup(p, id, v, &mine, err)) ||
		    (mine == DLVM_THIN_NONE && (r = pool_ext_resolve(p, v, &o, &ec, NULL, err))))
			break;
		if (mine == DLVM_THIN_NONE && ec != DLVM_THIN_NONE) {
			r = pool_provision(p, id, v, &mm, &in_hole, err);
			if (r == -ENOSPC && add_slab) {
				/* the family grows (dlvm_thin_family_grown takes mu);
				 * the store's ENOSPC is not the error any more: the
				 * one that counts is why no slab came, if none did */
				dlvm_err_clear(err);
				pthread_mutex_unlock(&p->mu);
				r = add_slab(arg, err);
				pthread_mutex_lock(&p->mu);
				if (!r)
					continue;
			}
			if (r)
				break;
			p->dirty = true;
			/* the origin's chunk, as a write to it would copy it, and
			 * like a write's without mu: the clone's requests go on */
			if ((r = pool_chunk_prepare_write(p, id, v, &mm, in_hole, err))) {
				pool_break(p, err);
				break;
			}
			if (++copied % 4096 == 0 && (r = pool_commit_locked(p, err)))
				break;
			if (progress) {
				pthread_mutex_unlock(&p->mu);
				r = progress(arg, v + 1, copied, err);
				pthread_mutex_lock(&p->mu);
				if (r)
					break;
			}
		}
		v++;
	}
	if (!r)
		r = pool_commit_locked(p, err);
	if (!r) {
		/* from now on nothing reads through */
		dlvm_thin_pool_unref(p->ext);
		p->ext = NULL;
		p->ext_dev = 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (!r && progress)
		(void)progress(arg, vchunks, copied, err); /* done: nothing left to stop */
	return r;
}
