/* SPDX-License-Identifier: MIT */
/*
 * The transmission phase of one connection: an event loop on a private
 * io_uring that carries the socket reads, the socket writes and the device
 * I/O.
 *
 * - The socket is read into a large buffer and every complete request in it
 *   is parsed at once. A write payload goes into the request's slot buffer
 *   (copied from the read buffer, or received straight into the slot when it
 *   was not all there yet).
 * - Each request takes one of a fixed set of slots, with a preallocated
 *   aligned buffer: reads go straight into it and it becomes the reply's
 *   payload. Only requests larger than SLOT_KEEP_MAX allocate. The
 *   preallocated buffers are one arena registered with the ring, so device
 *   reads and writes of up to SLOT_BUF bytes use READ_FIXED/WRITE_FIXED:
 *   the kernel does not pin the pages of each request.
 * - Replies are queued as they complete (in any order) and sent with one
 *   sendmsg per loop iteration; io_uring_submit is also called once per
 *   iteration (submit_and_wait).
 * - Pieces not aligned for O_DIRECT, and zeroing that fallocate cannot do,
 *   run synchronously in devio.c.
 * - Fencing (shared VGs, map->fence): a request that touches the devices is
 *   refused with EIO once the fence's deadline has passed. The deadline is
 *   read when the request starts and again right before each io_uring
 *   submission, which turns device operations prepared but not yet submitted
 *   into no-ops that fail their request. A write, zeroing, trim or flush
 *   that completes after the deadline is failed too: the client must not
 *   take it as durable from a fenced host (for completions from the ring,
 *   the clock read once when the wait for them ended).
 *
 * - Thin LVs: a write does not start while a snapshot of its pool is being
 *   taken, and a write that fills part of a sub-block which another write
 *   under way fills whole does not reply before that one ends (it relies on
 *   it, dlvm/thinpool.h). Such a request waits parked; parked requests are
 *   looked at again every PARK_POLL_US while there are any.
 *
 * - A thin LV's FLUSH, and a thin change with FUA once its data is down,
 *   commit the pool, which takes a few writes and flushes of the
 *   metadata: a thread of the connection (the committer) does it, so that
 *   the loop goes on with the other requests meanwhile. Those queued
 *   while a commit runs share the next one; each counts as a device
 *   operation until the committer says, through an eventfd the loop reads
 *   on its ring, how its commit ended.
 *
 * With every slot busy the socket is not read: the client waits on TCP
 * backpressure.
 *
 * Files: transmit.c (this one: a request's life and the loop),
 * xmit_wire.c (parsing requests, sending replies), xmit_dev.c (device I/O,
 * the fence), xmit_thin.c (thin LVs, the committer), xmit.h (what they
 * share).
 */
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

void xmit_start(struct xmit *x, struct slot *s)
{
	s->pending = 1;
	if (x->map->fence && is_dev_cmd(s->type) && !xmit_fence_ok(x)) {
		xmit_set_err(s, -EIO, FENCED_MSG);
		xmit_op_done(x, s, 0, 0);
		return;
	}
	s->sync = s->len > NBD_PREF_BLOCK && xmit_many_pieces(x, s);
	if (x->map->thin) {
		/* A snapshot waits for the writes given their chunks before it,
		 * and the writes begun while it is taken wait for it; a chunk
		 * that a read or a write looked up cools, once freed, until the
		 * request's device I/O is done (it would read or write another
		 * volume's data if handed out meanwhile) */
		bool write = s->type == NBD_CMD_WRITE || s->type == NBD_CMD_WRITE_ZEROES;
		if (write || s->type == NBD_CMD_READ) {
			if (dlvm_thin_pool_io_begin(x->map->thin, x->map->thin_id, write,
						    &s->thin_token) < 0) {
				s->pending = 0;
				s->park_start = true;
				xmit_park(x, s);
				return;
			}
			s->thin_io = true;
		}
		switch (s->type) {
		case NBD_CMD_READ: xmit_thin_pieces(x, s, THIN_READ, xmit_piece_read); break;
		case NBD_CMD_WRITE: xmit_thin_pieces(x, s, THIN_WRITE, xmit_piece_write); break;
		case NBD_CMD_WRITE_ZEROES:
			if (s->flags & NBD_CMD_FLAG_NO_HOLE)
				xmit_thin_pieces(x, s, THIN_ZERO, xmit_piece_zero);
			else
				xmit_thin_unmap(x, s, true);
			break;
		case NBD_CMD_TRIM:
			s->trim = true;
			xmit_thin_unmap(x, s, false);
			break;
		case NBD_CMD_FLUSH: {
			/* data first, then the store's new mappings */
			struct dlvm_err e = { 0 };
			if (xmit_committer_queue(x, s))
				break;
			int r = dlvm_thin_pool_commit(x->map->thin, &e);
			if (r)
				xmit_thin_err(x, s, r, &e);
			break;
		}
		case NBD_CMD_BLOCK_STATUS: xmit_thin_status(x, s); break;
		default: break;
		}
		xmit_op_done(x, s, 0, 0);
		return;
	}
	switch (s->type) {
	case NBD_CMD_READ: xmit_for_each_piece(x, s, xmit_piece_read); break;
	case NBD_CMD_WRITE: xmit_for_each_piece(x, s, xmit_piece_write); break;
	case NBD_CMD_WRITE_ZEROES: xmit_for_each_piece(x, s, xmit_piece_zero); break;
	case NBD_CMD_TRIM:
		s->trim = true;
		xmit_for_each_piece(x, s, xmit_piece_trim);
		break;
	case NBD_CMD_FLUSH:
		for (uint32_t i = 0; i < x->map->ndev; i++) {
			struct io_uring_sqe *sqe = get_sqe(x);
			io_uring_prep_fsync(sqe, x->map->devs[i].fd, IORING_FSYNC_DATASYNC);
			xmit_dev_op(x, s, sqe, i, 0);
		}
		break;
	default: /* BLOCK_STATUS, CACHE: nothing to do on the devices */ break;
	}
	xmit_op_done(x, s, 0, 0);
}

void xmit_finish(struct xmit *x, struct slot *s)
{
	/* Every device op of s ended before x->cqe_ms, when set (s finishes
	 * on a completion). */
	uint64_t done_ms = x->cqe_ms;

	if (s->zero_redo) {
		/* fallocate was refused: zero it all synchronously (idempotent). */
		if (!x->map->fence || xmit_fence_ok(x))
			xmit_for_each_piece(x, s, xmit_piece_zero);
		s->zero_redo = false;
		done_ms = 0;
	}
	/* A change that completed after the deadline may have reached the
	 * devices after another host took over: not durable for the client. */
	if (x->map->fence && is_change_cmd(s->type) && !xmit_fence_ok_at(x, done_ms))
		xmit_set_err(s, -EIO, FENCED_MSG);
	/* what the writes filled reads as written from now on: before a
	 * snapshot may see the chunks, and before a FUA commit. Also when the
	 * request failed otherwise (a later piece found the pool full): the
	 * device writes it made are down, and others may rely on them */
	if (s->nthin_w) {
		xmit_thin_record(x, s, s->thin_w, s->nthin_w);
		for (unsigned i = 0; i < s->nthin_w; i++)
			s->thin_w[i].mask = 0;
	}
	xmit_finish_tail(x, s);
}

void xmit_park(struct xmit *x, struct slot *s)
{
	s->next = x->parked;
	x->parked = s;
}

/* Each parked request once more. */
static void unpark(struct xmit *x)
{
	struct slot *s = x->parked;

	x->parked = NULL;
	while (s) {
		struct slot *next = s->next;
		s->next = NULL;
		if (s->park_start) {
			s->park_start = false;
			xmit_start(x, s);
		} else {
			xmit_finish_tail(x, s);
		}
		s = next;
	}
}

/* The end of a request whose device I/O is done and recorded: once the
 * writes it relies on have ended (else it is parked), the reply. */
void xmit_finish_tail(struct xmit *x, struct slot *s)
{
	if (s->nthin_w && !s->err) {
		struct dlvm_err e = { 0 };
		int r = dlvm_thin_pool_fills_ended(x->map->thin, s->thin_w, s->nthin_w, &e);
		if (r == -EAGAIN) {
			uint64_t now = dlvm_now_ms();
			if (!s->rely_since_ms)
				s->rely_since_ms = now;
			if (now - s->rely_since_ms < RELY_WAIT_MS) {
				xmit_park(x, s);
				return;
			}
			/* the write it relies on is stuck: its data may not read back */
			log_info(DLVM_LOG_NBD,
				 "%s: %s/%s: a write waited %u s for another one to end",
				 x->c->name, x->map->vg, x->map->lv, RELY_WAIT_MS / 1000);
			xmit_set_err(s, -EIO, "waited too long for another write");
		} else if (r) {
			xmit_thin_err(x, s, r, &e);
		}
	}
	s->nthin_w = 0;
	if (s->thin_io) {
		dlvm_thin_pool_io_end(x->map->thin, s->thin_token);
		s->thin_io = false;
	}
	/* a FUA change of a thin LV is durable only with its mapping; the
	 * committer replies once it is (a FLUSH has committed already) */
	if (x->map->thin && !s->err && (s->flags & NBD_CMD_FLAG_FUA) && is_change_cmd(s->type) &&
	    s->type != NBD_CMD_FLUSH) {
		if (xmit_committer_queue(x, s))
			return;
		struct dlvm_err e = { 0 };
		int r = dlvm_thin_pool_commit(x->map->thin, &e);
		if (r)
			xmit_thin_err(x, s, r, &e);
	}
	xmit_reply(x, s);
}

static void complete(struct xmit *x, struct io_uring_cqe *cqe)
{
	uint64_t u = io_uring_cqe_get_data64(cqe);

	switch (u & 0xf) {
	case UD_RECV: xmit_recv_done(x, cqe->res); break;
	case UD_SEND: xmit_send_done(x, cqe->res); break;
	case UD_DEV:
		x->ios--;
		x->cqe_ms = x->woke_ms;
		xmit_op_done(x, &x->slots[(u >> 8) & 0xffff], cqe->res, (uint32_t)(u >> 32));
		x->cqe_ms = 0;
		break;
	case UD_WAKE:
		x->cqe_ms = x->woke_ms;
		xmit_wake_done(x);
		x->cqe_ms = 0;
		break;
	}
}

static int xmit_init(struct xmit *x, struct nbd_conn *c)
{
	/* Room for every operation that can be in flight (see MAX_ASYNC_PIECES). */
	const unsigned cq = NSLOTS * DLVM_MAX(MAX_ASYNC_PIECES, c->map->ndev) + 2;
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = cq };
	int ret;

	memset(x, 0, sizeof(*x));
	x->c = c;
	x->map = c->map;
	x->dirty = calloc(c->map->ndev ? c->map->ndev : 1, sizeof(*x->dirty));
	if (posix_memalign((void **)&x->rx, 4096, RXBUF_SIZE))
		x->rx = NULL;
	if (posix_memalign((void **)&x->arena, 4096, (size_t)NSLOTS * SLOT_BUF))
		x->arena = NULL;
	if (!x->dirty || !x->rx || !x->arena)
		return -ENOMEM;
	for (uint32_t i = 0; i < NSLOTS; i++) {
		struct slot *s = &x->slots[i];
		s->idx = i;
		s->buf = x->arena + (size_t)i * SLOT_BUF;
		x->freelist[x->nfree++] = NSLOTS - 1 - i;
	}
	/* Only this thread uses the ring, and it runs completions when it
	 * waits for them: no task-work interrupts. Older kernels lack the
	 * flags. */
	p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	ret = io_uring_queue_init_params(RING_ENTRIES, &x->ring, &p);
	if (ret == -EINVAL) {
		p = (struct io_uring_params){ .flags = IORING_SETUP_CQSIZE, .cq_entries = cq };
		ret = io_uring_queue_init_params(RING_ENTRIES, &x->ring, &p);
	}
	if (ret < 0)
		return ret;
	/* Registered files save a lookup per operation; optional. */
	int *fds = malloc((c->map->ndev + 1) * sizeof(*fds));
	if (fds) {
		fds[0] = c->fd;
		for (uint32_t i = 0; i < c->map->ndev; i++)
			fds[i + 1] = c->map->devs[i].fd;
		x->fixed = io_uring_register_files(&x->ring, fds, c->map->ndev + 1) == 0;
		free(fds);
	}
	/* Registered buffers spare pinning the pages of every transfer; the
	 * arena is registered while the connection is busy (xmit_mem.c). */
	io_uring_register_ring_fd(&x->ring);
	return 0;
}

static void xmit_release(struct xmit *x, bool ring)
{
	xmit_committer_stop(x);
	if (ring)
		io_uring_queue_exit(&x->ring);
	for (uint32_t i = 0; i < NSLOTS; i++) {
		free(x->slots[i].grown);
		free(x->slots[i].big);
	}
	if (x->held)
		atomic_fetch_sub(x->c->buf_total, x->held);
	if (x->fixed_bufs) /* a pinned arena counts in the server's total */
		atomic_fetch_sub(x->c->buf_total, (uint64_t)NSLOTS * SLOT_BUF);
	free(x->arena);
	free(x->rx);
	free(x->dirty);
}

void nbd_transmit(struct nbd_conn *c)
{
	struct xmit *x = malloc(sizeof(*x));
	struct __kernel_timespec ts = { .tv_sec = CLOSE_TIMEOUT_S };
	bool timed_out = false;
	int ret;

	if (!x) {
		log_error(DLVM_LOG_NBD, "%s: out of memory", c->name);
		return;
	}
	ret = xmit_init(x, c);
	if (ret < 0) {
		log_error(DLVM_LOG_NBD, "%s: cannot start: %s", c->name, strerror(-ret));
		xmit_release(x, false);
		free(x);
		return;
	}
	if (atomic_load(&c->stop))
		xmit_close_conn(x, NULL);

	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		xmit_arm_recv(x);
		xmit_arm_send(x);
		xmit_arm_wake(x);
		if (x->closing && !x->ios && !x->recv_busy && !x->send_busy &&
		    (x->broken || (!x->rq_head && !x->parked)))
			break;
		xmit_before_submit(x);
		if (x->parked || (x->buf_wait && x->buf_poll_us)) {
			/* parked requests, or a request waiting for the
			 * server's buffers, which other connections free */
			struct __kernel_timespec poll = {
				.tv_nsec = (x->parked ? PARK_POLL_US : x->buf_poll_us) * 1000
			};
			ret = io_uring_submit_and_wait_timeout(&x->ring, &cqe, 1, &poll, NULL);
		} else if (x->fixed_bufs && xmit_idle(x) && !x->closing) {
			/* idle: give back the pinned arena if it stays so */
			struct __kernel_timespec idle = { .tv_sec = UNPIN_IDLE_MS / 1000 };
			ret = io_uring_submit_and_wait_timeout(&x->ring, &cqe, 1, &idle, NULL);
			if (ret == -ETIME)
				xmit_unpin(x);
		} else if (x->closing && !x->ios) {
			/* Only socket I/O left: do not wait forever on a client
			 * that does not read its replies. */
			ret = io_uring_submit_and_wait_timeout(&x->ring, &cqe, 1, &ts, NULL);
			if (ret == -ETIME) {
				if (timed_out)
					break;
				timed_out = true;
				shutdown(c->fd, SHUT_RDWR);
			}
		} else {
			ret = io_uring_submit_and_wait(&x->ring, 1);
		}
		if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY) {
			log_error(DLVM_LOG_NBD, "%s: io_uring: %s", c->name, strerror(-ret));
			break;
		}
		/* Later than every completion below: one clock read per batch. */
		if (x->map->fence)
			x->woke_ms = dlvm_now_ms();
		io_uring_for_each_cqe(&x->ring, head, cqe)
		{
			complete(x, cqe);
			n++;
		}
		io_uring_cq_advance(&x->ring, n);
		unpark(x);
		if (x->buf_wait)
			xmit_parse(x); /* others may have freed buffers */
	}
	while (x->parked) { /* the connection broke: no replies */
		struct slot *s = x->parked;
		x->parked = s->next;
		xmit_slot_put(x, s);
	}
	if (x->ios && x->cm) {
		/* the committer's FLUSHes end with it; nobody takes their results */
		unsigned owed = x->cm->out;
		xmit_committer_stop(x);
		x->ios -= owed;
	}
	if (x->ios) {
		/* Only on an io_uring failure: wait for the devices anyway. */
		while (x->ios) {
			struct io_uring_cqe *cqe;
			if (io_uring_wait_cqe(&x->ring, &cqe) < 0)
				break;
			if ((io_uring_cqe_get_data64(cqe) & 0xf) == UD_DEV)
				x->ios--;
			io_uring_cqe_seen(&x->ring, cqe);
		}
	}
	if (x->why)
		log_error(DLVM_LOG_NBD, "%s: %s", c->name, x->why);
	for (uint32_t i = 0; i < x->map->ndev; i++)
		if (x->dirty[i] && xmit_fence_ok(x) && fdatasync(x->map->devs[i].fd) < 0)
			log_error(DLVM_LOG_NBD, "%s: %s: flush: %s", c->name, x->map->devs[i].name,
				  strerror(errno));
	xmit_release(x, true);
	free(x);
}
