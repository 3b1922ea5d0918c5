/* SPDX-License-Identifier: MIT */
/* Commits of an open store: the data area flushed first, the store's
 * transaction written with or without the pool's mutex held. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

/* Flush the devices of data map m; with meta_follows, not those that the
 * store's commit flushes anyway (the PVs of its metadata LV), before it
 * writes the superblock. */
static int flush_data(struct dlvm_thin_pool *p, const struct dlvm_lv_map *m, bool meta_follows,
		      struct dlvm_err *err)
{
	for (uint32_t i = 0; i < m->ndev; i++)
		if (!(meta_follows && dlvm_lvdev_flushes(p->meta, m->devs[i].fd)) &&
		    fdatasync(m->devs[i].fd) < 0)
			return dlvm_err_set(err, -errno, "%s: flush %s: %s", p->name,
					    m->devs[i].name, strerror(errno));
	return 0;
}

/* Let the copies made without mu end, and start no more of them until
 * pool_preps_open (mu held): a commit must not make durable, and a snapshot must
 * not share, a chunk that is mapped but not yet copied. */
void pool_preps_close(struct dlvm_thin_pool *p)
{
	p->prep_closed++;
	while (p->nprep)
		pthread_cond_wait(&p->prepared, &p->mu);
}

void pool_preps_open(struct dlvm_thin_pool *p)
{
	p->prep_closed--;
}

/* Wait (mu held) until no commit is being written without mu: the store
 * takes one at a time, and the metadata LV's view must not change under
 * it. */
void pool_commit_idle(struct dlvm_thin_pool *p)
{
	while (p->committing)
		pthread_cond_wait(&p->committed, &p->mu);
}

/* Another host may own the family by now: never write its store. The
 * metadata device checks the fence again before each write (lvdev.c). */
static void fence_check(struct dlvm_thin_pool *p)
{
	struct dlvm_err e = { 0 };

	if (!p->broken && dlvm_fence_meta_ok(p->fence, "thin metadata commit", &e)) {
		p->broken = true;
		snprintf(p->broken_msg, sizeof(p->broken_msg),
			 "this host lost its lease on the VG: %s", e.msg);
	}
}

/* Wait (mu held) until no commit is being written and no copy is under
 * way, and start no copy until pool_preps_open. Both waits let mu go, so
 * another commit may have begun during the second. */
static void commit_close(struct dlvm_thin_pool *p)
{
	for (;;) {
		pool_commit_idle(p);
		pool_preps_close(p);
		if (!p->committing)
			return;
		pool_preps_open(p);
	}
}

static int commit_closed(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	fence_check(p);
	int r = p->broken ? pool_stopped(p, err)
			  : flush_data(p, p->data, dlvm_thin_changed(p->store), err);
	if (!r && !(r = dlvm_thin_commit(p->store, err)))
		p->dirty = false;
	pool_cool_release_idle(p);
	return r;
}

/* A commit with mu held throughout: for changes that nothing may see
 * before they are durable. */
int pool_commit_locked(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	if (!p->store || p->meta->readonly) /* a read-only VG's store never changes */
		return 0;
	commit_close(p);
	int r = commit_closed(p, err);
	pool_preps_open(p);
	return r;
}

/*
 * A commit whose I/O runs without mu (mu held on entry and on return): the
 * transaction is sealed under mu, then the data area is flushed and the
 * sealed store written while the pool's requests go on; what they change
 * meanwhile is the next commit's. A flush of the data area that fails with
 * a sealed transaction out fails the store too: the commit cannot be
 * taken back.
 */
static int commit_unlocked(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	struct dlvm_thin_job *job = NULL;

	if (!p->store || p->meta->readonly)
		return 0;
	commit_close(p);
	fence_check(p);
	bool changed = dlvm_thin_changed(p->store);
	int r = p->broken ? pool_stopped(p, err) : dlvm_thin_commit_start(p->store, &job, err);
	pool_preps_open(p);
	if (r)
		return r;
	p->dirty = false;
	p->committing = true;
	struct dlvm_lv_map *data = dlvm_lv_map_get(p->data);
	pthread_mutex_unlock(&p->mu);
	r = flush_data(p, data, changed, err);
	if (job && !r)
		r = dlvm_thin_commit_write(job, err);
	dlvm_lv_map_put(data);
	pthread_mutex_lock(&p->mu);
	r = dlvm_thin_commit_end(p->store, job, r, err);
	if (r)
		p->dirty = true;
	p->committing = false;
	pthread_cond_broadcast(&p->committed);
	pool_cool_release_idle(p);
	return r;
}

int dlvm_thin_pool_commit(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = commit_unlocked(p, err);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int dlvm_thin_pool_commit_dirty(struct dlvm_thin_pool *p, struct dlvm_err *err)
{
	pthread_mutex_lock(&p->mu);
	int r = p->dirty && !p->broken ? commit_unlocked(p, err) : 0;
	pthread_mutex_unlock(&p->mu);
	return r;
}
