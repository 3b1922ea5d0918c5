/* SPDX-License-Identifier: MIT */
/* Commands on the devices of an open store (create, delete, snapshot,
 * revert, usage, check) and the brackets around the data path's requests
 * that snapshots wait for. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

int dlvm_thin_pool_create_dev(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = p->broken ? pool_stopped(p, err) : dlvm_thin_create(p->store, id, 0, err);
	if (!r)
		r = pool_commit_locked(p, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_delete_dev(struct dlvm_thin_pool *p, uint64_t id, struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = p->broken ? pool_stopped(p, err) : dlvm_thin_delete(p->store, id, err);
	if (!r)
		r = pool_commit_locked(p, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_io_begin(struct dlvm_thin_pool *p, uint64_t id, bool write, unsigned *token)
{
	pthread_mutex_lock(&p->mu);
	if (write && p->snapping && (id == p->snap_origin || p->snap_origin == DLVM_THIN_NONE)) {
		pthread_mutex_unlock(&p->mu);
		return -EAGAIN;
	}
	*token = p->epoch;
	p->inflight[*token]++;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* No read or write is in flight: what cools may go (mu held). */
void pool_cool_release_idle(struct dlvm_thin_pool *p)
{
	if (p->store && !p->inflight[0] && !p->inflight[1] && dlvm_thin_cooling(p->store)) {
		dlvm_thin_cool_seal(p->store);
		dlvm_thin_cool_release(p->store);
	}
}

void dlvm_thin_pool_io_end(struct dlvm_thin_pool *p, unsigned token)
{
	pthread_mutex_lock(&p->mu);
	if (--p->inflight[token] == 0) {
		pthread_cond_broadcast(&p->drained);
		pool_cool_release_idle(p);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Start a new epoch and wait for the writes of the old one (mu held), after
 * those of an earlier epoch still draining. */
static int quiesce(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	unsigned old = p->epoch;
	struct timespec until = dlvm_timespec_add_ms(dlvm_mono_now(), 30000);
	/* an earlier wait that ran out (the agent's, before a punch, or a
	 * quiesce's) left the other epoch draining: it must end first */
	while (p->inflight[old ^ 1])
		if (pthread_cond_timedwait(&p->drained, &p->mu, &until) == ETIMEDOUT)
			return dlvm_err_set(err, -ETIMEDOUT,
					    "%s: %u earlier writes did not complete "
					    "in 30 s",
					    p->name, p->inflight[old ^ 1]);
	p->epoch = old ^ 1;
	while (p->inflight[old])
		if (pthread_cond_timedwait(&p->drained, &p->mu, &until) == ETIMEDOUT)
			return dlvm_err_set(err, -ETIMEDOUT,
					    "%s: %u writes did not complete in 30 s", p->name,
					    p->inflight[old]);
	return 0;
}

int dlvm_thin_pool_snapshot(struct dlvm_thin_pool *p, uint64_t origin, uint64_t id, uint32_t flags,
			    struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	/* writes to the origin begun from now on wait (io_begin; should two
	 * snapshots overlap, which commands do not, all writes): those begun
	 * before end first, and no write lands in a chunk the snapshot shares
	 * once it exists */
	p->snap_origin = p->snapping++ ? DLVM_THIN_NONE : origin;
	int r = p->broken ? pool_stopped(p, err) : quiesce(p, err);
	pool_preps_close(p);
	if (!r)
		r = dlvm_thin_snapshot(p->store, origin, id, flags, err);
	if (!r)
		r = pool_commit_locked(p, err);
	pool_preps_open(p);
	p->snapping--;
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_revert(struct dlvm_thin_pool *p, uint64_t origin, uint64_t snap,
			  struct dlvm_err *err)
{
	struct dlvm_thin_dev_info info;

	pthread_mutex_lock(&p->mu);
	int r = p->broken ? pool_stopped(p, err) : dlvm_thin_info(p->store, origin, &info, err);
	/* the origin's device is replaced by a snapshot of snap under the same
	 * id; both steps land in one commit */
	bool changed = false;
	if (!r && !(r = dlvm_thin_delete(p->store, origin, err))) {
		changed = true;
		r = dlvm_thin_snapshot(p->store, snap, origin, 0, err);
	}
	if (!r)
		r = pool_commit_locked(p, err);
	if (r && changed && !p->broken) {
		/* an uncommitted half must not be committed later */
		p->broken = true;
		snprintf(p->broken_msg, sizeof(p->broken_msg), "revert failed: %s",
			 err ? err->msg : "");
	}
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_usage(struct dlvm_thin_pool *p, struct dlvm_thin_usage *u)
{
	pthread_mutex_lock(&p->mu);
	if (p->store) {
		dlvm_thin_usage(p->store, u);
	} else {
		memset(u, 0, sizeof(*u));
		u->chunk_size = p->chunk_size;
		u->data_chunks = p->data->size / p->chunk_size;
		u->readonly = true;
	}
	pthread_mutex_unlock(&p->mu);
	return 0;
}

void dlvm_thin_pool_fill(struct dlvm_thin_pool *p, struct dlvm_thin_pool_fill *f)
{
	struct dlvm_thin_usage u;

	dlvm_thin_pool_usage(p, &u);
	*f = (struct dlvm_thin_pool_fill){
		.data_used = u.data_chunks - u.data_free - u.data_pending,
		.data_total = u.data_chunks,
		.meta_used = u.meta_blocks - u.meta_free - u.meta_pending,
		.meta_total = u.meta_blocks,
	};
}

/* -EROFS when p is a reader (mu held). */
static int need_store(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	return p->store ? 0
			: dlvm_err_set(err, -EROFS, "%s: this host reads the family only", p->name);
}

int dlvm_thin_pool_set_flags(struct dlvm_thin_pool *p, uint64_t id, uint32_t flags,
			     struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = need_store(p, err);
	if (!r)
		r = dlvm_thin_set_flags(p->store, id, flags, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_unmap_from(struct dlvm_thin_pool *p, uint64_t id, uint64_t size,
			      struct dlvm_err *err)
{
	uint64_t cs = p->chunk_size, first = (size + cs - 1) / cs, un;

	pthread_mutex_lock(&p->mu);
	int r = need_store(p, err);
	if (!r)
		r = dlvm_thin_unmap(p->store, id, first, DLVM_THIN_MAX_ID - first, &un, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_next_dev(struct dlvm_thin_pool *p, uint64_t from, uint64_t *next,
			    struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = need_store(p, err);
	if (!r)
		r = dlvm_thin_next_dev(p->store, from, next, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

bool dlvm_thin_pool_has_dev(struct dlvm_thin_pool *p, uint64_t id)
{
	struct dlvm_thin_dev_info info;

	pthread_mutex_lock(&p->mu);
	bool has = p->store && !dlvm_thin_info(p->store, id, &info, NULL);
	pthread_mutex_unlock(&p->mu);
	return has;
}

uint64_t dlvm_thin_pool_dev_mapped(struct dlvm_thin_pool *p, uint64_t id)
{
	struct dlvm_thin_dev_info info;

	struct dlvm_thin_view *v;
	int r;

	pthread_mutex_lock(&p->mu);
	if (p->store) {
		r = dlvm_thin_info(p->store, id, &info, NULL);
	} else if (!(r = pool_view_of(p, id, &v, NULL))) {
		struct dlvm_thin_view_info vi;
		dlvm_thin_view_info(v, &vi);
		info.mapped = vi.mapped;
	}
	pthread_mutex_unlock(&p->mu);
	return r ? 0 : info.mapped;
}
int dlvm_thin_pool_check(struct dlvm_thin_pool *p, struct dlvm_check_report *rep,
			 struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = !p->store ? dlvm_err_set(err, -EINVAL, "%s: a reader cannot be checked", p->name)
			  : dlvm_thin_check(p->store, rep, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}
