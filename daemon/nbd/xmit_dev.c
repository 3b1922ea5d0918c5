/* SPDX-License-Identifier: MIT */
/* Device I/O of a connection: pieces of a request on the LV's devices,
 * their submission on the ring, and the fence checked before each. */
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

static int nbd_errno(int e)
{
	switch (e) {
	case EPERM:
	case EROFS: return NBD_EPERM;
	case ENOMEM: return NBD_ENOMEM;
	case EINVAL: return NBD_EINVAL;
	case ENOSPC:
	case EFBIG:
	case EDQUOT: return NBD_ENOSPC;
	case EOVERFLOW: return NBD_EOVERFLOW;
	case ENOTSUP: return NBD_ENOTSUP;
	case ESHUTDOWN: return NBD_ESHUTDOWN;
	default: return NBD_EIO;
	}
}

/* A device operation of s failed: what it wrote may not be down. */
static void dev_err(struct slot *s, int neg_errno, const char *msg)
{
	s->dev_err = true;
	xmit_set_err(s, neg_errno, msg);
}

void xmit_set_err(struct slot *s, int neg_errno, const char *msg)
{
	if (!s->err) {
		s->err = nbd_errno(-neg_errno);
		s->errmsg = msg;
	}
}

/* ---- fencing ---- */

/* May this connection still do device I/O at `now` (CLOCK_MONOTONIC ms; 0:
 * read the clock)? Logs the first refusal. */
bool xmit_fence_ok_at(struct xmit *x, uint64_t now)
{
	const struct dlvm_fence *f = x->map->fence;

	if (!f)
		return true;
	if (!now)
		now = dlvm_now_ms();
	if (now < atomic_load_explicit(&f->deadline_ms, memory_order_acquire))
		return true;
	if (!x->fence_logged) {
		x->fence_logged = true;
		log_error(DLVM_LOG_NBD,
			  "%s: fenced: this host's lease deadline has passed; I/O refused",
			  f->what);
	}
	return false;
}

bool xmit_fence_ok(struct xmit *x)
{
	return xmit_fence_ok_at(x, 0);
}

/* Once fenced, turn the device operations queued but not yet submitted into
 * no-ops that fail their requests (their slots' completions still arrive). */
static void fence_unsubmitted(struct xmit *x)
{
	struct io_uring_sq *sq = &x->ring.sq;

	if (!x->sq_dev || xmit_fence_ok(x))
		return;
	for (unsigned i = sq->sqe_head; i != sq->sqe_tail; i++) {
		struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
		uint64_t u = sqe->user_data;
		if ((u & 0xf) != UD_DEV)
			continue;
		xmit_set_err(&x->slots[(u >> 8) & 0xffff], -EIO, FENCED_MSG);
		io_uring_prep_nop(sqe);
		sqe->user_data = u;
	}
	x->sq_dev = 0;
}

/* Call right before every submission. */
void xmit_before_submit(struct xmit *x)
{
	if (x->map->fence)
		fence_unsubmitted(x);
	x->sq_dev = 0;
}

/* Account for sqe, just prepared, as a device operation of s on device dev
 * that must transfer `expect` bytes. */
void xmit_dev_op(struct xmit *x, struct slot *s, struct io_uring_sqe *sqe, uint32_t dev,
		 uint32_t expect)
{
	fixed_fd(x, sqe, dev + 1);
	io_uring_sqe_set_data64(sqe, ud(UD_DEV, s->idx, expect));
	s->pending++;
	x->ios++;
	x->sq_dev++;
}

/* ---- slots and replies ---- */

/* One device op of s has ended with res (expect: the byte count it must
 * transfer); or res = 0 for the reference held while starting. */
void xmit_op_done(struct xmit *x, struct slot *s, int res, uint32_t expect)
{
	if (res < 0) {
		if (s->type == NBD_CMD_WRITE_ZEROES && !s->err && !x->map->thin)
			s->zero_redo = true; /* fallocate refused: redo by hand */
		else if (!s->trim)
			dev_err(s, res, "device I/O error");
	} else if ((uint32_t)res != expect) {
		dev_err(s, -EIO, "short device I/O");
	}
	if (--s->pending == 0)
		xmit_finish(x, s);
}

void xmit_for_each_piece(struct xmit *x, struct slot *s, piece_fn fn)
{
	uint64_t off = s->off, left = s->len, pos = 0;

	while (left) {
		struct dlvm_map_piece p;
		dlvm_lv_map_resolve(x->map, off, left, &p);
		if (!p.len) {
			xmit_set_err(s, -EIO, "bad LV map");
			return;
		}
		fn(x, s, &x->map->devs[p.dev], p.dev, p.dev_off, p.len, pos);
		off += p.len;
		pos += p.len;
		left -= p.len;
	}
}

void xmit_piece_read(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
		     uint64_t dev_off, uint64_t len, uint64_t pos)
{
	uint8_t *buf = s->data + pos;

	if (!s->sync && nbd_dev_aligned(d, buf, len, dev_off)) {
		struct io_uring_sqe *sqe = get_sqe(x);
		if (x->fixed_bufs && s->data == s->buf)
			io_uring_prep_read_fixed(sqe, d->fd, buf, (unsigned)len, dev_off, 0);
		else
			io_uring_prep_read(sqe, d->fd, buf, (unsigned)len, dev_off);
		xmit_dev_op(x, s, sqe, dev, (uint32_t)len);
		return;
	}
	int ret = nbd_dev_read(d, buf, len, dev_off);
	if (ret < 0)
		xmit_set_err(s, ret, "device read error");
}

void xmit_piece_write(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
		      uint64_t dev_off, uint64_t len, uint64_t pos)
{
	uint8_t *buf = s->data + pos;
	bool fua = s->flags & NBD_CMD_FLAG_FUA;

	x->dirty[dev] = true;
	if (!s->sync && nbd_dev_aligned(d, buf, len, dev_off)) {
		struct io_uring_sqe *sqe = get_sqe(x);
		if (x->fixed_bufs && s->data == s->buf)
			io_uring_prep_write_fixed(sqe, d->fd, buf, (unsigned)len, dev_off, 0);
		else
			io_uring_prep_write(sqe, d->fd, buf, (unsigned)len, dev_off);
		if (fua)
			sqe->rw_flags = RWF_DSYNC;
		xmit_dev_op(x, s, sqe, dev, (uint32_t)len);
		return;
	}
	int ret = nbd_dev_write(d, buf, len, dev_off, fua, x->c->rmw_lock);
	if (ret < 0)
		dev_err(s, ret, "device write error");
}

void xmit_piece_zero(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
		     uint64_t dev_off, uint64_t len, uint64_t pos)
{
	bool may_trim = !(s->flags & NBD_CMD_FLAG_NO_HOLE);
	bool fua = s->flags & NBD_CMD_FLAG_FUA;
	(void)pos;

	x->dirty[dev] = true;
	/* A thin LV's pieces come from its pool and cannot be resolved again
	 * in xmit_finish(), where a refused fallocate is redone: zero them here. */
	if (x->map->thin || s->zero_redo || s->sync || fua ||
	    !nbd_dev_aligned(d, NULL, len, dev_off)) {
		int ret = nbd_dev_zero(d, dev_off, len, may_trim, fua, x->c->rmw_lock);
		if (ret < 0)
			dev_err(s, ret, "device zeroing error");
		return;
	}
	struct io_uring_sqe *sqe = get_sqe(x);
	io_uring_prep_fallocate(sqe, d->fd,
				(may_trim ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
						FALLOC_FL_KEEP_SIZE,
				dev_off, len);
	xmit_dev_op(x, s, sqe, dev, 0);
}

void xmit_piece_trim(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
		     uint64_t dev_off, uint64_t len, uint64_t pos)
{
	bool fua = s->flags & NBD_CMD_FLAG_FUA;
	(void)pos;

	x->dirty[dev] = true;
	if (s->sync || fua || !nbd_dev_aligned(d, NULL, len, dev_off)) {
		int ret = nbd_dev_trim(d, dev_off, len, fua);
		if (ret < 0)
			xmit_set_err(s, ret, "device trim error");
		return;
	}
	struct io_uring_sqe *sqe = get_sqe(x);
	io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, dev_off,
				len);
	xmit_dev_op(x, s, sqe, dev, 0);
}

bool xmit_many_pieces(const struct xmit *x, const struct slot *s)
{
	uint64_t off = s->off, left = s->len;

	if (x->map->thin) /* a piece per chunk, at least */
		return left / dlvm_thin_pool_chunk_size(x->map->thin) + 2 > MAX_ASYNC_PIECES;

	for (unsigned n = 0; left; n++) {
		struct dlvm_map_piece p;
		if (n == MAX_ASYNC_PIECES)
			return true;
		dlvm_lv_map_resolve(x->map, off, left, &p);
		if (!p.len)
			return false;
		off += p.len;
		left -= p.len;
	}
	return false;
}

/* Does a command of this type touch the devices? */
