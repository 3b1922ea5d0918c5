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
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/nbd/conn.h"
#include "daemon/nbd/devio.h"
#include "daemon/nbd/proto.h"
#include "dlvm/log.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"

#define NSLOTS 128
#define SLOT_BUF 65536u              /* preallocated per slot */
#define SLOT_KEEP_MAX (256u << 10)   /* slot buffers may grow up to this */
#define RXBUF_SIZE (256u << 10)
#define DISCARD_MAX (128u << 20)     /* larger payload of a refused write: disconnect */
#define SEND_IOV_MAX 512
#define RING_ENTRIES 256
#define CLOSE_TIMEOUT_S 10           /* to send the last replies once closing */
#define PARK_POLL_US 500             /* parked requests are looked at again */
#define RELY_WAIT_MS 30000           /* then a write relying on others fails */
/* A request split in more pieces than this (large requests on LVs with
 * small stripes) runs synchronously, which bounds the device operations in
 * flight and so the completion queue size. */
#define MAX_ASYNC_PIECES 64

/* user_data: bits 0-3 kind, bits 8-23 slot, bits 32-63 expected result. */
enum { UD_RECV = 1, UD_SEND = 2, UD_DEV = 3, UD_WAKE = 4 };

/* The connection's committer: thin FLUSHes, committed off the loop. */
struct committer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int efd;                     /* written once per batch of results */
	struct dlvm_thin_pool *pool;
	const char *name, *vg, *lv;  /* for the log */
	uint32_t q[NSLOTS];          /* slots waiting for a commit */
	unsigned nq;
	struct { uint32_t idx; int res; } done[NSLOTS]; /* results for the loop */
	unsigned ndone;
	unsigned out;                /* queued or done, not yet taken (loop only) */
	bool stop;
};

struct slot {
	uint16_t type, flags;
	uint64_t cookie, off;
	uint32_t len;
	uint32_t idx;
	int err;                    /* NBD error to reply, 0 if none */
	const char *errmsg;
	bool dev_err;               /* a device operation failed */
	unsigned pending;           /* device ops in flight, +1 while starting */
	bool zero_redo;             /* fallocate refused: zero synchronously */
	bool trim;                  /* device errors are ignored */
	bool sync;                  /* too many pieces: serve synchronously */
	uint32_t nextents;          /* thin BLOCK_STATUS: descriptors in data */
	bool thin_io;               /* holds a thin I/O token until finish() */
	bool park_start;            /* parked before it started: a snapshot */
	uint64_t rely_since_ms;     /* parked in finish_tail since, 0 if not */
	unsigned thin_token;
	/* thin: what the request's writes fill, recorded once they are done,
	 * and the whole fills of others they rely on */
	struct dlvm_thin_written thin_w[MAX_ASYNC_PIECES];
	unsigned nthin_w;
	uint8_t *buf;               /* SLOT_BUF bytes of the arena */
	uint8_t *grown;             /* kept buffer for up to SLOT_KEEP_MAX bytes */
	size_t grown_cap;
	uint8_t *big;               /* this request's own buffer, if larger */
	uint8_t *data;              /* buf, grown or big */
	/* reply */
	uint8_t hdr[40];
	struct iovec iov[3];
	int niov;
	size_t reply_len, sent;
	struct slot *next;          /* in the reply queue, or parked */
};

struct xmit {
	struct nbd_conn *c;
	const struct dlvm_lv_map *map;
	struct io_uring ring;
	struct slot slots[NSLOTS];
	uint32_t freelist[NSLOTS];
	unsigned nfree;
	uint8_t *arena;             /* the slots' buffers, NSLOTS * SLOT_BUF */
	bool fixed_bufs;            /* arena registered as buffer 0 */
	uint8_t *rx;
	size_t rx_start, rx_end;
	struct slot *rx_slot;       /* receiving this write's payload */
	uint32_t rx_got;
	uint64_t discard;           /* payload bytes to drop */
	struct slot *discard_slot;  /* its refused write, replied to once dropped */
	bool recv_busy, send_busy;
	struct slot *rq_head, *rq_tail;
	struct slot *parked;        /* waiting: for a snapshot (start), for other
				     * writes (finish_tail) */
	struct iovec siov[SEND_IOV_MAX];
	struct msghdr smsg;
	unsigned ios;               /* device ops in flight */
	bool closing, broken, disc;
	bool *dirty;                /* per device: written */
	struct committer *cm;       /* made at the first thin FLUSH; NULL: none */
	bool wake_armed;
	uint64_t wake_val;
	bool fixed;                 /* fds registered: socket 0, device i at i + 1 */
	bool fence_logged;          /* "fenced" was logged for this connection */
	uint64_t woke_ms;           /* fence: the clock when the last wait ended */
	uint64_t cqe_ms;            /* woke_ms while a device completion is handled */
	unsigned sq_dev;            /* device ops prepared since the last submit */
	const char *why;            /* reason for closing, to log */
};

static inline uint64_t ud(unsigned kind, uint32_t slot, uint32_t expect)
{
	return kind | ((uint64_t)slot << 8) | ((uint64_t)expect << 32);
}

static int nbd_errno(int e)
{
	switch (e) {
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EFBIG:
	case EDQUOT:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

static void set_err(struct slot *s, int neg_errno, const char *msg);

/* A device operation of s failed: what it wrote may not be down. */
static void dev_err(struct slot *s, int neg_errno, const char *msg)
{
	s->dev_err = true;
	set_err(s, neg_errno, msg);
}

static void set_err(struct slot *s, int neg_errno, const char *msg)
{
	if (!s->err) {
		s->err = nbd_errno(-neg_errno);
		s->errmsg = msg;
	}
}

/* Address the file of sqe by its registered index, when registered. */
static void fixed_fd(struct xmit *x, struct io_uring_sqe *sqe, uint32_t ix)
{
	if (x->fixed) {
		sqe->fd = (int)ix;
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

/* ---- fencing ---- */

#define FENCED_MSG "host fenced: lease deadline passed"

/* May this connection still do device I/O at `now` (CLOCK_MONOTONIC ms; 0:
 * read the clock)? Logs the first refusal. */
static bool fence_ok_at(struct xmit *x, uint64_t now)
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

static bool fence_ok(struct xmit *x)
{
	return fence_ok_at(x, 0);
}

/* Once fenced, turn the device operations queued but not yet submitted into
 * no-ops that fail their requests (their slots' completions still arrive). */
static void fence_unsubmitted(struct xmit *x)
{
	struct io_uring_sq *sq = &x->ring.sq;

	if (!x->sq_dev || fence_ok(x))
		return;
	for (unsigned i = sq->sqe_head; i != sq->sqe_tail; i++) {
		struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
		uint64_t u = sqe->user_data;
		if ((u & 0xf) != UD_DEV)
			continue;
		set_err(&x->slots[(u >> 8) & 0xffff], -EIO, FENCED_MSG);
		io_uring_prep_nop(sqe);
		sqe->user_data = u;
	}
	x->sq_dev = 0;
}

/* Call right before every submission. */
static void before_submit(struct xmit *x)
{
	if (x->map->fence)
		fence_unsubmitted(x);
	x->sq_dev = 0;
}

static struct io_uring_sqe *get_sqe(struct xmit *x)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&x->ring);

	while (!sqe) {
		before_submit(x);
		io_uring_submit(&x->ring);
		sqe = io_uring_get_sqe(&x->ring);
	}
	return sqe;
}

/* Account for sqe, just prepared, as a device operation of s on device dev
 * that must transfer `expect` bytes. */
static void dev_op(struct xmit *x, struct slot *s, struct io_uring_sqe *sqe, uint32_t dev,
		   uint32_t expect)
{
	fixed_fd(x, sqe, dev + 1);
	io_uring_sqe_set_data64(sqe, ud(UD_DEV, s->idx, expect));
	s->pending++;
	x->ios++;
	x->sq_dev++;
}

/* ---- slots and replies ---- */

static struct slot *slot_get(struct xmit *x)
{
	struct slot *s = &x->slots[x->freelist[--x->nfree]];

	s->err = 0;
	s->errmsg = NULL;
	s->dev_err = false;
	s->pending = 0;
	s->zero_redo = false;
	s->trim = false;
	s->sync = false;
	s->nextents = 0;
	s->thin_io = false;
	s->park_start = false;
	s->rely_since_ms = 0;
	s->nthin_w = 0;
	s->sent = 0;
	s->next = NULL;
	s->data = s->buf;
	return s;
}

static void slot_put(struct xmit *x, struct slot *s)
{
	if (s->nthin_w) { /* never finished: let others' waits end */
		dlvm_thin_pool_unfilled(x->map->thin, s->thin_w, s->nthin_w);
		s->nthin_w = 0;
	}
	if (s->thin_io) { /* never finished: do not hold up snapshots */
		dlvm_thin_pool_io_end(x->map->thin, s->thin_token);
		s->thin_io = false;
	}
	free(s->big);
	s->big = NULL;
	x->freelist[x->nfree++] = s->idx;
}

/* Point s->data at len bytes of aligned memory. */
static int slot_buffer(struct slot *s, uint32_t len)
{
	void *p;

	if (len <= SLOT_BUF) {
		s->data = s->buf;
		return 0;
	}
	if (len <= SLOT_KEEP_MAX) {
		if (len > s->grown_cap) {
			size_t cap = dlvm_align_up(len, SLOT_BUF);
			if (posix_memalign(&p, 4096, cap))
				return -ENOMEM;
			free(s->grown);
			s->grown = p;
			s->grown_cap = cap;
		}
		s->data = s->grown;
		return 0;
	}
	if (posix_memalign(&p, 4096, len))
		return -ENOMEM;
	s->big = p;
	s->data = p;
	return 0;
}

static void chunk_header(struct slot *s, uint8_t *h, uint16_t flags, uint16_t type,
			 uint32_t len)
{
	nbd_put32(h, NBD_STRUCTURED_REPLY_MAGIC);
	nbd_put16(h + 4, flags);
	nbd_put16(h + 6, type);
	nbd_put64(h + 8, s->cookie);
	nbd_put32(h + 16, len);
}

/* Build the reply of a finished request and queue it. */
static void reply(struct xmit *x, struct slot *s)
{
	bool structured = x->c->structured;
	uint8_t *h = s->hdr;

	s->niov = 1;
	s->iov[0].iov_base = h;
	if (s->err && structured) {
		size_t ml = s->errmsg ? strlen(s->errmsg) : 0;
		chunk_header(s, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, (uint32_t)(6 + ml));
		nbd_put32(h + 20, (uint32_t)s->err);
		nbd_put16(h + 24, (uint16_t)ml);
		s->iov[0].iov_len = 26;
		if (ml) {
			s->iov[1].iov_base = (void *)s->errmsg;
			s->iov[1].iov_len = ml;
			s->niov = 2;
		}
	} else if (s->type == NBD_CMD_READ && structured && !s->err) {
		if (s->len) {
			chunk_header(s, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
				     8 + s->len);
			nbd_put64(h + 20, s->off);
			s->iov[0].iov_len = 28;
			s->iov[1].iov_base = s->data;
			s->iov[1].iov_len = s->len;
			s->niov = 2;
		} else {
			chunk_header(s, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
			s->iov[0].iov_len = 20;
		}
	} else if (s->type == NBD_CMD_BLOCK_STATUS && !s->err && s->nextents) {
		/* thin LVs: the descriptors start() put in the slot's buffer */
		chunk_header(s, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
			     4 + 8 * s->nextents);
		nbd_put32(h + 20, x->c->meta_id);
		s->iov[0].iov_len = 24;
		s->iov[1].iov_base = s->buf;
		s->iov[1].iov_len = 8 * (size_t)s->nextents;
		s->niov = 2;
	} else if (s->type == NBD_CMD_BLOCK_STATUS && !s->err) {
		/* Linear and striped LVs: the whole range is allocated data. */
		chunk_header(s, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, 12);
		nbd_put32(h + 20, x->c->meta_id);
		nbd_put32(h + 24, s->len);
		nbd_put32(h + 28, 0);
		s->iov[0].iov_len = 32;
	} else {
		nbd_put32(h, NBD_SIMPLE_REPLY_MAGIC);
		nbd_put32(h + 4, (uint32_t)s->err);
		nbd_put64(h + 8, s->cookie);
		s->iov[0].iov_len = 16;
		if (s->type == NBD_CMD_READ && !s->err && s->len) {
			s->iov[1].iov_base = s->data;
			s->iov[1].iov_len = s->len;
			s->niov = 2;
		}
	}
	s->reply_len = 0;
	for (int i = 0; i < s->niov; i++)
		s->reply_len += s->iov[i].iov_len;
	if (x->broken) {
		slot_put(x, s);
		return;
	}
	if (x->rq_tail)
		x->rq_tail->next = s;
	else
		x->rq_head = s;
	x->rq_tail = s;
}

/* ---- device I/O ---- */

static void finish(struct xmit *x, struct slot *s);
static void finish_tail(struct xmit *x, struct slot *s);
static void park(struct xmit *x, struct slot *s);

/* One device op of s has ended with res (expect: the byte count it must
 * transfer); or res = 0 for the reference held while starting. */
static void op_done(struct xmit *x, struct slot *s, int res, uint32_t expect)
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
		finish(x, s);
}

typedef void (*piece_fn)(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d,
			 uint32_t dev, uint64_t dev_off, uint64_t len, uint64_t pos);

static void for_each_piece(struct xmit *x, struct slot *s, piece_fn fn)
{
	uint64_t off = s->off, left = s->len, pos = 0;

	while (left) {
		struct dlvm_map_piece p;
		dlvm_lv_map_resolve(x->map, off, left, &p);
		if (!p.len) {
			set_err(s, -EIO, "bad LV map");
			return;
		}
		fn(x, s, &x->map->devs[p.dev], p.dev, p.dev_off, p.len, pos);
		off += p.len;
		pos += p.len;
		left -= p.len;
	}
}

/* ---- thin LVs: the pool gives each piece (dlvm/thinpool.h) ---- */

static void piece_zero(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d,
		       uint32_t dev, uint64_t dev_off, uint64_t len, uint64_t pos);

static void thin_err(struct xmit *x, struct slot *s, int r, const struct dlvm_err *e)
{
	if (r == -ENOSPC) {
		set_err(s, r, "thin pool is full");
		return;
	}
	log_error(DLVM_LOG_NBD, "%s: %s/%s: %s", x->c->name, x->map->vg, x->map->lv, e->msg);
	set_err(s, r, "thin pool error");
}

enum thin_op { THIN_READ, THIN_WRITE, THIN_ZERO };

/* What n records of s filled reads as written from now on; or, when a
 * device operation of s failed, it stays unwritten. */
static void thin_record(struct xmit *x, struct slot *s, const struct dlvm_thin_written *w,
			size_t n)
{
	struct dlvm_err e = { 0 };

	if (s->dev_err) {
		dlvm_thin_pool_unfilled(x->map->thin, w, n);
		return;
	}
	int r = dlvm_thin_pool_written(x->map->thin, x->map->thin_id, w, n, &e);
	if (r)
		thin_err(x, s, r, &e);
}

/* Sub-blocks a piece of s filled: recorded now when the piece was written
 * synchronously, else when the whole request is done (finish); and those
 * it relies on others for, looked at before the reply (finish_tail). */
static void thin_filled(struct xmit *x, struct slot *s, const struct dlvm_thin_written *w)
{
	struct dlvm_thin_written rec = *w;

	if (s->sync && rec.mask) {
		thin_record(x, s, &rec, 1);
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
		/* many_pieces() keeps this from happening: a synchronous
		 * request relies on others at its two ends at most */
		dlvm_thin_pool_unfilled(x->map->thin, &rec, 1);
		set_err(s, -EIO, "too many thin chunks in one request");
		return;
	}
	s->thin_w[s->nthin_w++] = rec;
}

/* Pieces of a READ (holes read as zeros), a WRITE (chunks provisioned
 * first) or a WRITE_ZEROES with NO_HOLE. */
static void thin_pieces(struct xmit *x, struct slot *s, enum thin_op op, piece_fn fn)
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
			thin_err(x, s, r, &e);
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
static void thin_unmap(struct xmit *x, struct slot *s, bool zero_partial)
{
	struct dlvm_err e = { 0 };
	int r = dlvm_thin_pool_unmap(x->map->thin, x->map->thin_id, s->off, s->len, zero_partial,
				     &e);

	if (r) {
		thin_err(x, s, r, &e);
		return;
	}
	uint64_t cs = dlvm_thin_pool_chunk_size(x->map->thin), off = s->off, left = s->len;
	while (zero_partial && left && !s->err) {
		struct dlvm_map_piece p;
		bool hole;
		if ((r = dlvm_thin_pool_map_read(x->map, off, left, &p, &hole, &e))) {
			thin_err(x, s, r, &e);
			return;
		}
		/* a mapped partial chunk is zeroed like a write: a chunk shared
		 * with a snapshot is copied first, never zeroed in place */
		if (!hole && (off % cs || p.len < cs)) {
			struct dlvm_thin_written w;
			if ((r = dlvm_thin_pool_map_write(x->map, off, p.len, &p, &w, &e))) {
				thin_err(x, s, r, &e);
				return;
			}
			piece_zero(x, s, &x->map->devs[p.dev], p.dev, p.dev_off, p.len, 0);
			thin_filled(x, s, &w);
		}
		off += p.len;
		left -= p.len;
	}
}

/* BLOCK_STATUS of a thin LV: up to 64 descriptors (one with REQ_ONE) in the
 * slot's buffer, holes as HOLE|ZERO, unwritten sub-blocks of mapped chunks
 * as ZERO. */
static void thin_status(struct xmit *x, struct slot *s)
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
			thin_err(x, s, r, &e);
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

static void piece_read(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d,
		       uint32_t dev, uint64_t dev_off, uint64_t len, uint64_t pos)
{
	uint8_t *buf = s->data + pos;

	if (!s->sync && nbd_dev_aligned(d, buf, len, dev_off)) {
		struct io_uring_sqe *sqe = get_sqe(x);
		if (x->fixed_bufs && s->data == s->buf)
			io_uring_prep_read_fixed(sqe, d->fd, buf, (unsigned)len, dev_off, 0);
		else
			io_uring_prep_read(sqe, d->fd, buf, (unsigned)len, dev_off);
		dev_op(x, s, sqe, dev, (uint32_t)len);
		return;
	}
	int ret = nbd_dev_read(d, buf, len, dev_off);
	if (ret < 0)
		set_err(s, ret, "device read error");
}

static void piece_write(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d,
			uint32_t dev, uint64_t dev_off, uint64_t len, uint64_t pos)
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
		dev_op(x, s, sqe, dev, (uint32_t)len);
		return;
	}
	int ret = nbd_dev_write(d, buf, len, dev_off, fua, x->c->rmw_lock);
	if (ret < 0)
		dev_err(s, ret, "device write error");
}

static void piece_zero(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d,
		       uint32_t dev, uint64_t dev_off, uint64_t len, uint64_t pos)
{
	bool may_trim = !(s->flags & NBD_CMD_FLAG_NO_HOLE);
	bool fua = s->flags & NBD_CMD_FLAG_FUA;
	(void)pos;

	x->dirty[dev] = true;
	/* A thin LV's pieces come from its pool and cannot be resolved again
	 * in finish(), where a refused fallocate is redone: zero them here. */
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
	dev_op(x, s, sqe, dev, 0);
}

static void piece_trim(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d,
		       uint32_t dev, uint64_t dev_off, uint64_t len, uint64_t pos)
{
	bool fua = s->flags & NBD_CMD_FLAG_FUA;
	(void)pos;

	x->dirty[dev] = true;
	if (s->sync || fua || !nbd_dev_aligned(d, NULL, len, dev_off)) {
		int ret = nbd_dev_trim(d, dev_off, len, fua);
		if (ret < 0)
			set_err(s, ret, "device trim error");
		return;
	}
	struct io_uring_sqe *sqe = get_sqe(x);
	io_uring_prep_fallocate(sqe, d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				dev_off, len);
	dev_op(x, s, sqe, dev, 0);
}

static bool many_pieces(const struct xmit *x, const struct slot *s)
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
static bool is_dev_cmd(uint16_t type)
{
	return type == NBD_CMD_READ || type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES ||
	       type == NBD_CMD_TRIM || type == NBD_CMD_FLUSH;
}

/* Does a command of this type change what the devices hold? */
static bool is_change_cmd(uint16_t type)
{
	return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES || type == NBD_CMD_TRIM ||
	       type == NBD_CMD_FLUSH;
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

static void committer_stop(struct xmit *x)
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
static bool committer_queue(struct xmit *x, struct slot *s)
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
static void arm_wake(struct xmit *x)
{
	if (!x->cm || !x->cm->out || x->wake_armed)
		return;
	struct io_uring_sqe *sqe = get_sqe(x);
	io_uring_prep_read(sqe, x->cm->efd, &x->wake_val, sizeof(x->wake_val), 0);
	io_uring_sqe_set_data64(sqe, ud(UD_WAKE, 0, 0));
	x->wake_armed = true;
}

/* The committer has results: end those FLUSHes. */
static void wake_done(struct xmit *x)
{
	struct committer *cm = x->cm;
	struct { uint32_t idx; int res; } got[NSLOTS];
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
			set_err(s, got[i].res,
				got[i].res == -ENOSPC ? "thin pool is full" : "thin pool error");
		if (s->type == NBD_CMD_FLUSH) {
			op_done(x, s, 0, 0);
		} else {
			/* a FUA change, done but for its commit */
			s->pending--;
			reply(x, s);
		}
	}
}

static void start(struct xmit *x, struct slot *s)
{
	s->pending = 1;
	if (x->map->fence && is_dev_cmd(s->type) && !fence_ok(x)) {
		set_err(s, -EIO, FENCED_MSG);
		op_done(x, s, 0, 0);
		return;
	}
	s->sync = s->len > NBD_PREF_BLOCK && many_pieces(x, s);
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
				park(x, s);
				return;
			}
			s->thin_io = true;
		}
		switch (s->type) {
		case NBD_CMD_READ:
			thin_pieces(x, s, THIN_READ, piece_read);
			break;
		case NBD_CMD_WRITE:
			thin_pieces(x, s, THIN_WRITE, piece_write);
			break;
		case NBD_CMD_WRITE_ZEROES:
			if (s->flags & NBD_CMD_FLAG_NO_HOLE)
				thin_pieces(x, s, THIN_ZERO, piece_zero);
			else
				thin_unmap(x, s, true);
			break;
		case NBD_CMD_TRIM:
			s->trim = true;
			thin_unmap(x, s, false);
			break;
		case NBD_CMD_FLUSH: {
			/* data first, then the store's new mappings */
			struct dlvm_err e = { 0 };
			if (committer_queue(x, s))
				break;
			int r = dlvm_thin_pool_commit(x->map->thin, &e);
			if (r)
				thin_err(x, s, r, &e);
			break;
		}
		case NBD_CMD_BLOCK_STATUS:
			thin_status(x, s);
			break;
		default:
			break;
		}
		op_done(x, s, 0, 0);
		return;
	}
	switch (s->type) {
	case NBD_CMD_READ:
		for_each_piece(x, s, piece_read);
		break;
	case NBD_CMD_WRITE:
		for_each_piece(x, s, piece_write);
		break;
	case NBD_CMD_WRITE_ZEROES:
		for_each_piece(x, s, piece_zero);
		break;
	case NBD_CMD_TRIM:
		s->trim = true;
		for_each_piece(x, s, piece_trim);
		break;
	case NBD_CMD_FLUSH:
		for (uint32_t i = 0; i < x->map->ndev; i++) {
			struct io_uring_sqe *sqe = get_sqe(x);
			io_uring_prep_fsync(sqe, x->map->devs[i].fd, IORING_FSYNC_DATASYNC);
			dev_op(x, s, sqe, i, 0);
		}
		break;
	default: /* BLOCK_STATUS, CACHE: nothing to do on the devices */
		break;
	}
	op_done(x, s, 0, 0);
}

static void finish(struct xmit *x, struct slot *s)
{
	/* Every device op of s ended before x->cqe_ms, when set (s finishes
	 * on a completion). */
	uint64_t done_ms = x->cqe_ms;

	if (s->zero_redo) {
		/* fallocate was refused: zero it all synchronously (idempotent). */
		if (!x->map->fence || fence_ok(x))
			for_each_piece(x, s, piece_zero);
		s->zero_redo = false;
		done_ms = 0;
	}
	/* A change that completed after the deadline may have reached the
	 * devices after another host took over: not durable for the client. */
	if (x->map->fence && is_change_cmd(s->type) && !fence_ok_at(x, done_ms))
		set_err(s, -EIO, FENCED_MSG);
	/* what the writes filled reads as written from now on: before a
	 * snapshot may see the chunks, and before a FUA commit. Also when the
	 * request failed otherwise (a later piece found the pool full): the
	 * device writes it made are down, and others may rely on them */
	if (s->nthin_w) {
		thin_record(x, s, s->thin_w, s->nthin_w);
		for (unsigned i = 0; i < s->nthin_w; i++)
			s->thin_w[i].mask = 0;
	}
	finish_tail(x, s);
}

static void park(struct xmit *x, struct slot *s)
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
			start(x, s);
		} else {
			finish_tail(x, s);
		}
		s = next;
	}
}

/* The end of a request whose device I/O is done and recorded: once the
 * writes it relies on have ended (else it is parked), the reply. */
static void finish_tail(struct xmit *x, struct slot *s)
{
	if (s->nthin_w && !s->err) {
		struct dlvm_err e = { 0 };
		int r = dlvm_thin_pool_fills_ended(x->map->thin, s->thin_w, s->nthin_w, &e);
		if (r == -EAGAIN) {
			uint64_t now = dlvm_now_ms();
			if (!s->rely_since_ms)
				s->rely_since_ms = now;
			if (now - s->rely_since_ms < RELY_WAIT_MS) {
				park(x, s);
				return;
			}
			/* the write it relies on is stuck: its data may not read back */
			log_info(DLVM_LOG_NBD,
				 "%s: %s/%s: a write waited %u s for another one to end",
				 x->c->name, x->map->vg, x->map->lv, RELY_WAIT_MS / 1000);
			set_err(s, -EIO, "waited too long for another write");
		} else if (r) {
			thin_err(x, s, r, &e);
		}
	}
	s->nthin_w = 0;
	if (s->thin_io) {
		dlvm_thin_pool_io_end(x->map->thin, s->thin_token);
		s->thin_io = false;
	}
	/* a FUA change of a thin LV is durable only with its mapping; the
	 * committer replies once it is (a FLUSH has committed already) */
	if (x->map->thin && !s->err && (s->flags & NBD_CMD_FLAG_FUA) &&
	    is_change_cmd(s->type) && s->type != NBD_CMD_FLUSH) {
		if (committer_queue(x, s))
			return;
		struct dlvm_err e = { 0 };
		int r = dlvm_thin_pool_commit(x->map->thin, &e);
		if (r)
			thin_err(x, s, r, &e);
	}
	reply(x, s);
}

/* ---- requests ---- */

static bool in_bounds(const struct xmit *x, uint64_t off, uint32_t len)
{
	uint64_t end;
	return !dlvm_add_overflow(off, (uint64_t)len, &end) && end <= x->map->size;
}

/* Check a request; sets s->err and s->errmsg if it must be refused. */
static void validate(struct xmit *x, struct slot *s)
{
	uint16_t ok = NBD_CMD_FLAG_FUA;
	bool ro = x->map->readonly;

	switch (s->type) {
	case NBD_CMD_READ:
		if (x->c->structured)
			ok |= NBD_CMD_FLAG_DF;
		break;
	case NBD_CMD_WRITE_ZEROES:
		ok |= NBD_CMD_FLAG_NO_HOLE;
		break;
	case NBD_CMD_BLOCK_STATUS:
		ok |= NBD_CMD_FLAG_REQ_ONE;
		break;
	case NBD_CMD_WRITE:
	case NBD_CMD_FLUSH:
	case NBD_CMD_TRIM:
	case NBD_CMD_CACHE:
		break;
	default:
		set_err(s, -EINVAL, "unknown command");
		return;
	}
	if (s->flags & ~ok) {
		set_err(s, -EINVAL, "unsupported flags for this command");
		return;
	}
	switch (s->type) {
	case NBD_CMD_READ:
		if (s->len > NBD_MAX_PAYLOAD)
			set_err(s, x->c->structured ? -EOVERFLOW : -EINVAL,
				"read larger than the maximum payload");
		else if (!in_bounds(x, s->off, s->len))
			set_err(s, -EINVAL, "read beyond the end of the export");
		break;
	case NBD_CMD_WRITE:
		if (ro)
			set_err(s, -EPERM, "read-only export");
		else if (s->len > NBD_MAX_PAYLOAD)
			set_err(s, -EINVAL, "write larger than the maximum payload");
		else if (!in_bounds(x, s->off, s->len))
			set_err(s, -ENOSPC, "write beyond the end of the export");
		break;
	case NBD_CMD_WRITE_ZEROES:
		if (ro)
			set_err(s, -EPERM, "read-only export");
		else if (!in_bounds(x, s->off, s->len))
			set_err(s, -ENOSPC, "write beyond the end of the export");
		break;
	case NBD_CMD_TRIM:
		if (ro)
			set_err(s, -EPERM, "read-only export");
		else if (!in_bounds(x, s->off, s->len))
			set_err(s, -EINVAL, "trim beyond the end of the export");
		break;
	case NBD_CMD_CACHE:
		if (!in_bounds(x, s->off, s->len))
			set_err(s, -EINVAL, "request beyond the end of the export");
		break;
	case NBD_CMD_BLOCK_STATUS:
		if (!x->c->meta_id)
			set_err(s, -EINVAL, "no metadata context was negotiated");
		else if (!s->len)
			set_err(s, -EINVAL, "zero-length block status");
		else if (!in_bounds(x, s->off, s->len))
			set_err(s, -EINVAL, "block status beyond the end of the export");
		break;
	}
}

static void close_conn(struct xmit *x, const char *why)
{
	if (!x->closing) {
		x->closing = true;
		x->why = why;
	}
}

/* Parse every complete request in the receive buffer. */
static void parse(struct xmit *x)
{
	while (!x->closing && !x->rx_slot) {
		size_t avail = x->rx_end - x->rx_start;
		const uint8_t *p = x->rx + x->rx_start;

		if (x->discard) {
			size_t n = avail < x->discard ? avail : (size_t)x->discard;
			x->rx_start += n;
			x->discard -= n;
			if (x->discard)
				break;
			if (x->discard_slot) {
				reply(x, x->discard_slot);
				x->discard_slot = NULL;
			}
			continue;
		}
		if (avail < NBD_REQUEST_SIZE || !x->nfree)
			break;
		if (nbd_get32(p) != NBD_REQUEST_MAGIC) {
			close_conn(x, "bad request magic, disconnecting");
			break;
		}
		x->rx_start += NBD_REQUEST_SIZE;
		avail -= NBD_REQUEST_SIZE;
		struct slot *s = slot_get(x);
		s->flags = nbd_get16(p + 4);
		s->type = nbd_get16(p + 6);
		s->cookie = nbd_get64(p + 8);
		s->off = nbd_get64(p + 16);
		s->len = nbd_get32(p + 24);
		if (s->type == NBD_CMD_DISC) {
			slot_put(x, s);
			x->disc = true;
			close_conn(x, NULL);
			break;
		}
		validate(x, s);
		if (!s->err && (s->type == NBD_CMD_READ || s->type == NBD_CMD_WRITE) &&
		    slot_buffer(s, s->len) < 0)
			set_err(s, -ENOMEM, "out of memory");
		if (s->type == NBD_CMD_WRITE && s->err) {
			if (s->len > DISCARD_MAX) {
				slot_put(x, s);
				close_conn(x, "refused write with an oversized payload, disconnecting");
				break;
			}
			/* the error goes out once the payload is read: a client
			 * still sending it may not expect a reply yet */
			x->discard = s->len;
			if (s->len)
				x->discard_slot = s;
			else
				reply(x, s);
			continue;
		}
		if (s->err) {
			reply(x, s);
			continue;
		}
		if (s->type == NBD_CMD_WRITE) {
			size_t n = avail < s->len ? avail : s->len;
			memcpy(s->data, x->rx + x->rx_start, n);
			x->rx_start += n;
			if (n < s->len) {
				x->rx_slot = s;
				x->rx_got = (uint32_t)n;
				break;
			}
		}
		start(x, s);
	}
	if (x->rx_start == x->rx_end)
		x->rx_start = x->rx_end = 0;
}

/* ---- socket ---- */

static void arm_recv(struct xmit *x)
{
	struct io_uring_sqe *sqe;

	if (x->closing || x->recv_busy)
		return;
	if (x->rx_slot) {
		sqe = get_sqe(x);
		io_uring_prep_recv(sqe, x->c->fd, x->rx_slot->data + x->rx_got,
				   x->rx_slot->len - x->rx_got, 0);
		fixed_fd(x, sqe, 0);
	} else {
		if (!x->nfree && !x->discard)
			return;
		if (x->rx_start && RXBUF_SIZE - x->rx_end < 2 * NBD_REQUEST_SIZE + 4096) {
			memmove(x->rx, x->rx + x->rx_start, x->rx_end - x->rx_start);
			x->rx_end -= x->rx_start;
			x->rx_start = 0;
		}
		if (x->rx_end == RXBUF_SIZE)
			return; /* full of requests waiting for slots */
		sqe = get_sqe(x);
		io_uring_prep_recv(sqe, x->c->fd, x->rx + x->rx_end, RXBUF_SIZE - x->rx_end, 0);
		fixed_fd(x, sqe, 0);
	}
	io_uring_sqe_set_data64(sqe, ud(UD_RECV, 0, 0));
	x->recv_busy = true;
}

static void recv_done(struct xmit *x, int res)
{
	x->recv_busy = false;
	if (res <= 0) {
		bool mid = x->rx_slot || x->discard || x->rx_end > x->rx_start;
		if (res == -EINTR || res == -EAGAIN)
			return;
		if (mid)
			close_conn(x, "client disconnected mid-request");
		else if (atomic_load(&x->c->stop))
			close_conn(x, NULL);
		else
			close_conn(x, res ? "connection error" : NULL);
		return;
	}
	if (x->rx_slot) {
		x->rx_got += (uint32_t)res;
		if (x->rx_got == x->rx_slot->len) {
			struct slot *s = x->rx_slot;
			x->rx_slot = NULL;
			start(x, s);
		}
	} else {
		x->rx_end += (size_t)res;
	}
	parse(x);
	if (atomic_load(&x->c->stop))
		close_conn(x, NULL);
}

static void arm_send(struct xmit *x)
{
	struct slot *s = x->rq_head;
	unsigned n = 0;
	size_t skip;

	if (x->send_busy || !s || x->broken)
		return;
	skip = s->sent;
	for (; s && n + 3 <= SEND_IOV_MAX; s = s->next) {
		for (int i = 0; i < s->niov; i++) {
			size_t l = s->iov[i].iov_len;
			if (skip >= l) {
				skip -= l;
				continue;
			}
			x->siov[n].iov_base = (uint8_t *)s->iov[i].iov_base + skip;
			x->siov[n].iov_len = l - skip;
			skip = 0;
			n++;
		}
	}
	memset(&x->smsg, 0, sizeof(x->smsg));
	x->smsg.msg_iov = x->siov;
	x->smsg.msg_iovlen = n;
	struct io_uring_sqe *sqe = get_sqe(x);
	io_uring_prep_sendmsg(sqe, x->c->fd, &x->smsg, MSG_NOSIGNAL);
	fixed_fd(x, sqe, 0);
	io_uring_sqe_set_data64(sqe, ud(UD_SEND, 0, 0));
	x->send_busy = true;
}

static void drop_replies(struct xmit *x)
{
	while (x->rq_head) {
		struct slot *s = x->rq_head;
		x->rq_head = s->next;
		slot_put(x, s);
	}
	x->rq_tail = NULL;
}

static void send_done(struct xmit *x, int res)
{
	size_t n;

	x->send_busy = false;
	if (res < 0) {
		if (res == -EINTR || res == -EAGAIN)
			return;
		x->broken = true;
		drop_replies(x);
		close_conn(x, NULL);
		shutdown(x->c->fd, SHUT_RDWR); /* end a pending recv */
		return;
	}
	n = (size_t)res;
	while (x->rq_head) {
		struct slot *s = x->rq_head;
		size_t left = s->reply_len - s->sent;
		if (n < left) {
			s->sent += n;
			break;
		}
		n -= left;
		x->rq_head = s->next;
		slot_put(x, s);
	}
	if (!x->rq_head)
		x->rq_tail = NULL;
	parse(x); /* slots were freed */
}

/* ---- loop ---- */

static void complete(struct xmit *x, struct io_uring_cqe *cqe)
{
	uint64_t u = io_uring_cqe_get_data64(cqe);

	switch (u & 0xf) {
	case UD_RECV:
		recv_done(x, cqe->res);
		break;
	case UD_SEND:
		send_done(x, cqe->res);
		break;
	case UD_DEV:
		x->ios--;
		x->cqe_ms = x->woke_ms;
		op_done(x, &x->slots[(u >> 8) & 0xffff], cqe->res, (uint32_t)(u >> 32));
		x->cqe_ms = 0;
		break;
	case UD_WAKE:
		x->cqe_ms = x->woke_ms;
		wake_done(x);
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
	/* Registered buffers spare pinning the pages of every transfer;
	 * optional too (the pinned memory counts against RLIMIT_MEMLOCK). */
	struct iovec arena = { .iov_base = x->arena, .iov_len = (size_t)NSLOTS * SLOT_BUF };
	x->fixed_bufs = io_uring_register_buffers(&x->ring, &arena, 1) == 0;
	io_uring_register_ring_fd(&x->ring);
	return 0;
}

static void xmit_release(struct xmit *x, bool ring)
{
	committer_stop(x);
	if (ring)
		io_uring_queue_exit(&x->ring);
	for (uint32_t i = 0; i < NSLOTS; i++) {
		free(x->slots[i].grown);
		free(x->slots[i].big);
	}
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
		close_conn(x, NULL);

	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		arm_recv(x);
		arm_send(x);
		arm_wake(x);
		if (x->closing && !x->ios && !x->recv_busy && !x->send_busy &&
		    (x->broken || (!x->rq_head && !x->parked)))
			break;
		before_submit(x);
		if (x->parked) {
			struct __kernel_timespec poll = { .tv_nsec = PARK_POLL_US * 1000 };
			ret = io_uring_submit_and_wait_timeout(&x->ring, &cqe, 1, &poll, NULL);
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
		io_uring_for_each_cqe(&x->ring, head, cqe) {
			complete(x, cqe);
			n++;
		}
		io_uring_cq_advance(&x->ring, n);
		unpark(x);
	}
	while (x->parked) { /* the connection broke: no replies */
		struct slot *s = x->parked;
		x->parked = s->next;
		slot_put(x, s);
	}
	if (x->ios && x->cm) {
		/* the committer's FLUSHes end with it; nobody takes their results */
		unsigned owed = x->cm->out;
		committer_stop(x);
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
		if (x->dirty[i] && fence_ok(x) && fdatasync(x->map->devs[i].fd) < 0)
			log_error(DLVM_LOG_NBD, "%s: %s: flush: %s", c->name, x->map->devs[i].name,
				  strerror(errno));
	xmit_release(x, true);
	free(x);
}
