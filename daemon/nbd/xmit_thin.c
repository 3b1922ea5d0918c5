/* SPDX-License-Identifier: MIT */
/* Thin LVs on the data path: pieces the pool maps, unmapping, block
 * status, and the committer thread that commits the pool off the loop. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/nbd/devio.h"
#include "daemon/nbd/xmit.h"
#include "dlvm/log.h"
#include "dlvm/util.h"

/* ---- thin LVs: the pool gives each piece (dlvm/thinpool.h) ---- */

void xmit_thin_err(struct xmit *x, struct slot *s, int r, const struct dlvm_err *e)
{
	if (r == -ENOSPC) {
		xmit_set_err(s, r, "thin pool is full");
		return;
	}
	log_error(DLVM_LOG_NBD, "%s: %s/%s: %s", x->c->name, x->map->vg, x->map->lv, e->msg);
	xmit_set_err(s, r, "thin pool error");
}

/* What n records of s filled reads as written from now on; or, when a
 * device operation of s failed, it stays unwritten. */
void xmit_thin_record(struct xmit *x, struct slot *s, const struct dlvm_thin_written *w, size_t n)
{
	struct dlvm_err e = { 0 };

	if (s->dev_err) {
		dlvm_thin_pool_unfilled(x->map->thin, w, n);
		return;
	}
	int r = dlvm_thin_pool_written(x->map->thin, x->map->thin_id, w, n, &e);
	if (r)
		xmit_thin_err(x, s, r, &e);
}

/* Sub-blocks a piece of s filled: recorded now when the piece was written
 * synchronously, else when the whole request is done (finish); and those
 * it relies on others for, looked at before the reply (finish_tail). */
static void thin_filled(struct xmit *x, struct slot *s, const struct dlvm_thin_written *w)
{
	struct dlvm_thin_written rec = *w;

	if (s->sync && rec.mask) {
		xmit_thin_record(x, s, &rec, 1);
		rec.mask = 0;
	}
	if (!rec.mask && !rec.relied)
		return;
	/* a chunk split across segments comes in more than one piece */
	if (s->nthin_w && s->thin_w[s->nthin_w - 1].vchunk == rec.vchunk &&
	    s->thin_w[s->nthin_w - 1].chunk == rec.chunk) {
		s->thin_w[s->nthin_w - 1].mask |= rec.mask;
		s->thin_w[s->nthin_w - 1].relied |= rec.relied;
		return;
	}
	if (s->nthin_w == MAX_ASYNC_PIECES) {
		/* xmit_many_pieces() keeps this from happening: a synchronous
		 * request relies on others at its two ends at most */
		dlvm_thin_pool_unfilled(x->map->thin, &rec, 1);
		xmit_set_err(s, -EIO, "too many thin chunks in one request");
		return;
	}
	s->thin_w[s->nthin_w++] = rec;
}

/* Pieces of a READ (holes read as zeros), a WRITE (chunks provisioned
 * first) or a WRITE_ZEROES with NO_HOLE. */
void xmit_thin_pieces(struct xmit *x, struct slot *s, enum thin_op op, piece_fn fn)
{
	uint64_t off = s->off, left = s->len, pos = 0;

	while (left && !s->err) {
		struct dlvm_map_piece p;
		struct dlvm_thin_written w = { 0 };
		struct dlvm_err e = { 0 };
		bool hole = false;
		int r = op == THIN_READ ? dlvm_thin_pool_map_read(x->map, off, left, &p, &hole, &e)
					: dlvm_thin_pool_map_write(x->map, off, left, &p, &w, &e);
		if (r) {
			xmit_thin_err(x, s, r, &e);
			return;
		}
		if (hole)
			memset(s->data + pos, 0, p.len);
		else
			fn(x, s, &x->map->devs[p.dev], p.dev, p.dev_off, p.len, pos);
		thin_filled(x, s, &w);
		off += p.len;
		pos += p.len;
		left -= p.len;
	}
}

/* TRIM and WRITE_ZEROES without NO_HOLE: whole chunks are unmapped (they
 * read as zeros); the mapped parts of partial chunks are zeroed (for
 * WRITE_ZEROES; TRIM leaves them). */
void xmit_thin_unmap(struct xmit *x, struct slot *s, bool zero_partial)
{
	struct dlvm_err e = { 0 };
	int r = dlvm_thin_pool_unmap(x->map->thin, x->map->thin_id, s->off, s->len, zero_partial,
				     &e);

	if (r) {
		xmit_thin_err(x, s, r, &e);
		return;
	}
	uint64_t cs = dlvm_thin_pool_chunk_size(x->map->thin), off = s->off, left = s->len;
	while (zero_partial && left && !s->err) {
		struct dlvm_map_piece p;
		bool hole;
		if ((r = dlvm_thin_pool_map_read(x->map, off, left, &p, &hole, &e))) {
			xmit_thin_err(x, s, r, &e);
			return;
		}
		/* a mapped partial chunk is zeroed like a write: a chunk shared
		 * with a snapshot is copied first, never zeroed in place */
		if (!hole && (off % cs || p.len < cs)) {
			struct dlvm_thin_written w;
			if ((r = dlvm_thin_pool_map_write(x->map, off, p.len, &p, &w, &e))) {
				xmit_thin_err(x, s, r, &e);
				return;
			}
			xmit_piece_zero(x, s, &x->map->devs[p.dev], p.dev, p.dev_off, p.len, 0);
			thin_filled(x, s, &w);
		}
		off += p.len;
		left -= p.len;
	}
}

/* BLOCK_STATUS of a thin LV: up to 64 descriptors (one with REQ_ONE) in the
 * slot's buffer, holes as HOLE|ZERO, unwritten sub-blocks of mapped chunks
 * as ZERO. */
void xmit_thin_status(struct xmit *x, struct slot *s)
{
	uint64_t off = s->off, left = s->len;
	unsigned max = (s->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : 64;

	s->nextents = 0;
	while (left && s->nextents < max) {
		struct dlvm_err e = { 0 };
		uint64_t ext;
		enum dlvm_thin_extent kind;
		int r = dlvm_thin_pool_extent(x->map->thin, x->map->thin_id, off, left, &ext, &kind,
					      &e);
		if (r) {
			xmit_thin_err(x, s, r, &e);
			return;
		}
		uint32_t flags = kind == DLVM_THIN_EXT_HOLE   ? NBD_STATE_HOLE | NBD_STATE_ZERO
				 : kind == DLVM_THIN_EXT_ZERO ? NBD_STATE_ZERO
							      : 0;
		uint8_t *d = s->buf + 8 * s->nextents;
		if (s->nextents && nbd_get32(d - 4) == flags) {
			/* same kind as the previous one: merge */
			nbd_put32(d - 8, nbd_get32(d - 8) + (uint32_t)ext);
		} else {
			nbd_put32(d, (uint32_t)ext);
			nbd_put32(d + 4, flags);
			s->nextents++;
		}
		off += ext;
		left -= ext;
	}
}

static void *committer_main(void *arg)
{
	struct committer *cm = arg;
	uint32_t take[NSLOTS];

	pthread_mutex_lock(&cm->mu);
	for (;;) {
		while (!cm->nq && !cm->stop)
			pthread_cond_wait(&cm->cv, &cm->mu);
		if (!cm->nq)
			break;
		unsigned n = cm->nq;
		memcpy(take, cm->q, n * sizeof(*take));
		cm->nq = 0;
		pthread_mutex_unlock(&cm->mu);
		/* every FLUSH taken came before this commit began: it covers
		 * what each of them must make durable */
		struct dlvm_err e = { 0 };
		int r = dlvm_thin_pool_commit(cm->pool, &e);
		if (r && r != -ENOSPC)
			log_error(DLVM_LOG_NBD, "%s: %s/%s: %s", cm->name, cm->vg, cm->lv, e.msg);
		pthread_mutex_lock(&cm->mu);
		for (unsigned i = 0; i < n; i++) {
			cm->done[cm->ndone].idx = take[i];
			cm->done[cm->ndone++].res = r;
		}
		uint64_t one = 1;
		while (write(cm->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&cm->mu);
	return NULL;
}

void xmit_committer_stop(struct xmit *x)
{
	struct committer *cm = x->cm;

	if (!cm)
		return;
	pthread_mutex_lock(&cm->mu);
	cm->stop = true;
	pthread_cond_signal(&cm->cv);
	pthread_mutex_unlock(&cm->mu);
	pthread_join(cm->thread, NULL);
	close(cm->efd);
	pthread_cond_destroy(&cm->cv);
	pthread_mutex_destroy(&cm->mu);
	free(cm);
	x->cm = NULL;
}

/* Hand thin FLUSH s to the committer, made on first use; false if it
 * cannot be made (the caller commits itself). */
bool xmit_committer_queue(struct xmit *x, struct slot *s)
{
	struct committer *cm = x->cm;

	if (!cm) {
		if (!(cm = calloc(1, sizeof(*cm))))
			return false;
		cm->pool = x->map->thin;
		cm->name = x->c->name;
		cm->vg = x->map->vg;
		cm->lv = x->map->lv;
		pthread_mutex_init(&cm->mu, NULL);
		pthread_cond_init(&cm->cv, NULL);
		if ((cm->efd = eventfd(0, EFD_CLOEXEC)) < 0) {
			free(cm);
			return false;
		}
		if (pthread_create(&cm->thread, NULL, committer_main, cm)) {
			close(cm->efd);
			free(cm);
			return false;
		}
		x->cm = cm;
	}
	pthread_mutex_lock(&cm->mu);
	cm->q[cm->nq++] = s->idx;
	pthread_cond_signal(&cm->cv);
	pthread_mutex_unlock(&cm->mu);
	cm->out++;
	s->pending++;
	x->ios++;
	return true;
}

/* Keep a read of the committer's eventfd on the ring while it owes
 * results. */
void xmit_arm_wake(struct xmit *x)
{
	if (!x->cm || !x->cm->out || x->wake_armed)
		return;
	struct io_uring_sqe *sqe = get_sqe(x);
	io_uring_prep_read(sqe, x->cm->efd, &x->wake_val, sizeof(x->wake_val), 0);
	io_uring_sqe_set_data64(sqe, ud(UD_WAKE, 0, 0));
	x->wake_armed = true;
}

/* The committer has results: end those FLUSHes. */
void xmit_wake_done(struct xmit *x)
{
	struct committer *cm = x->cm;
	struct {
		uint32_t idx;
		int res;
	} got[NSLOTS];
	unsigned n;

	x->wake_armed = false;
	pthread_mutex_lock(&cm->mu);
	n = cm->ndone;
	memcpy(got, cm->done, n * sizeof(got[0]));
	cm->ndone = 0;
	pthread_mutex_unlock(&cm->mu);
	for (unsigned i = 0; i < n; i++) {
		struct slot *s = &x->slots[got[i].idx];
		cm->out--;
		x->ios--;
		if (got[i].res)
			xmit_set_err(s, got[i].res,
				     got[i].res == -ENOSPC ? "thin pool is full"
							   : "thin pool error");
		if (s->type == NBD_CMD_FLUSH) {
			xmit_op_done(x, s, 0, 0);
		} else {
			/* a FUA change, done but for its commit */
			s->pending--;
			xmit_reply(x, s);
		}
	}
}
