/* SPDX-License-Identifier: MIT */
/*
 * What the files of one connection's transmission phase share: its limits,
 * a request's slot, the connection's loop state, and the calls between
 * them. The theory of operation is at the top of transmit.c. Everything
 * here runs on the connection's thread, but the committer (xmit_thin.c).
 */
#ifndef DLVM_NBD_XMIT_H
#define DLVM_NBD_XMIT_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon/nbd/conn.h"
#include "daemon/nbd/proto.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"

/* Slots per connection: fewer in the fuzz harness (tests/fuzz/fuzz_nbd.c),
 * where a large arena per connection would make every run slow. */
#ifndef NSLOTS
#define NSLOTS 128
#endif
#define SLOT_BUF 65536u            /* preallocated per slot */
#define SLOT_KEEP_MAX (256u << 10) /* slot buffers may grow up to this */
#define RXBUF_SIZE (256u << 10)
#define DISCARD_MAX (128u << 20) /* larger payload of a refused write: disconnect */
#define SEND_IOV_MAX 512
#define RING_ENTRIES 256
#define CLOSE_TIMEOUT_S 10 /* to send the last replies once closing */
#define PARK_POLL_US 500   /* parked requests are looked at again */
#define RELY_WAIT_MS 30000 /* then a write relying on others fails */
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
	int efd; /* written once per batch of results */
	struct dlvm_thin_pool *pool;
	const char *name, *vg, *lv; /* for the log */
	uint32_t q[NSLOTS];         /* slots waiting for a commit */
	unsigned nq;
	struct {
		uint32_t idx;
		int res;
	} done[NSLOTS]; /* results for the loop */
	unsigned ndone;
	unsigned out; /* queued or done, not yet taken (loop only) */
	bool stop;
};

struct slot {
	uint16_t type, flags;
	uint64_t cookie, off;
	uint32_t len;
	uint32_t idx;
	int err; /* NBD error to reply, 0 if none */
	const char *errmsg;
	bool dev_err;           /* a device operation failed */
	unsigned pending;       /* device ops in flight, +1 while starting */
	bool zero_redo;         /* fallocate refused: zero synchronously */
	bool trim;              /* device errors are ignored */
	bool sync;              /* too many pieces: serve synchronously */
	uint32_t nextents;      /* thin BLOCK_STATUS: descriptors in data */
	bool thin_io;           /* holds a thin I/O token until finish() */
	bool park_start;        /* parked before it started: a snapshot */
	uint64_t rely_since_ms; /* parked in finish_tail since, 0 if not */
	unsigned thin_token;
	/* thin: what the request's writes fill, recorded once they are done,
	 * and the whole fills of others they rely on */
	struct dlvm_thin_written thin_w[MAX_ASYNC_PIECES];
	unsigned nthin_w;
	uint8_t *buf;   /* SLOT_BUF bytes of the arena */
	uint8_t *grown; /* kept buffer for up to SLOT_KEEP_MAX bytes */
	size_t grown_cap;
	uint8_t *big;  /* this request's own buffer, if larger (len bytes) */
	uint8_t *data; /* buf, grown or big */
	/* reply */
	uint8_t hdr[40];
	struct iovec iov[3];
	int niov;
	size_t reply_len, sent;
	struct slot *next; /* in the reply queue, or parked */
};

struct xmit {
	struct nbd_conn *c;
	const struct dlvm_lv_map *map;
	struct io_uring ring;
	struct slot slots[NSLOTS];
	uint32_t freelist[NSLOTS];
	unsigned nfree;
	uint8_t *arena;       /* the slots' buffers, NSLOTS * SLOT_BUF */
	bool fixed_bufs;      /* arena registered as buffer 0 (while busy) */
	bool pin_failed;      /* registering it failed: not tried again */
	uint64_t held;        /* grown and big buffers, counted (xmit_mem.c) */
	bool buf_wait;        /* a request waits for buffer room */
	unsigned buf_poll_us; /* waiting for the server's total: look again */
	uint8_t *rx;
	size_t rx_start, rx_end;
	struct slot *rx_slot; /* receiving this write's payload */
	uint32_t rx_got;
	uint64_t discard;          /* payload bytes to drop */
	struct slot *discard_slot; /* its refused write, replied to once dropped */
	bool recv_busy, send_busy;
	struct slot *rq_head, *rq_tail;
	struct slot *parked; /* waiting: for a snapshot (start), for other
				     * writes (finish_tail) */
	struct iovec siov[SEND_IOV_MAX];
	struct msghdr smsg;
	unsigned ios; /* device ops in flight */
	bool closing, broken, disc;
	bool *dirty;          /* per device: written */
	struct committer *cm; /* made at the first thin FLUSH; NULL: none */
	bool wake_armed;
	uint64_t wake_val;
	bool fixed;        /* fds registered: socket 0, device i at i + 1 */
	bool fence_logged; /* "fenced" was logged for this connection */
	uint64_t woke_ms;  /* fence: the clock when the last wait ended */
	uint64_t cqe_ms;   /* woke_ms while a device completion is handled */
	unsigned sq_dev;   /* device ops prepared since the last submit */
	const char *why;   /* reason for closing, to log */
};

/* The message of a request refused by the fence. */
#define FENCED_MSG "host fenced: lease deadline passed"

typedef void (*piece_fn)(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
			 uint64_t dev_off, uint64_t len, uint64_t pos);

enum thin_op { THIN_READ, THIN_WRITE, THIN_ZERO };

/* ---- device I/O and the fence (xmit_dev.c) ---- */
/* The piece functions: one piece of s on device dev at dev_off, len bytes,
 * at byte pos of the request (the slot buffer's offset). */
void xmit_piece_read(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
		     uint64_t dev_off, uint64_t len, uint64_t pos);
void xmit_piece_write(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
		      uint64_t dev_off, uint64_t len, uint64_t pos);
void xmit_piece_trim(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
		     uint64_t dev_off, uint64_t len, uint64_t pos);
/* Fail s with NBD error neg_errno (the first error wins); msg for the log. */
void xmit_set_err(struct slot *s, int neg_errno, const char *msg);
/* May this connection still do device I/O at `now` (dlvm_now_ms; 0: read
 * the clock)? The first refusal is logged. */
bool xmit_fence_ok_at(struct xmit *x, uint64_t now);
bool xmit_fence_ok(struct xmit *x);
/* Right before io_uring_submit: device ops prepared past the fence's
 * deadline become no-ops that fail their request. */
void xmit_before_submit(struct xmit *x);
/* Count a device op of s, prepared in sqe on device dev. */
void xmit_dev_op(struct xmit *x, struct slot *s, struct io_uring_sqe *sqe, uint32_t dev,
		 uint32_t expect);
/* One device op of s has ended with res (expect: the byte count it must
 * transfer); or res = 0 for the reference held while starting. */
void xmit_op_done(struct xmit *x, struct slot *s, int res, uint32_t expect);
/* Call fn for every piece of s's range on the LV's devices. */
void xmit_for_each_piece(struct xmit *x, struct slot *s, piece_fn fn);
void xmit_piece_zero(struct xmit *x, struct slot *s, const struct dlvm_map_dev *d, uint32_t dev,
		     uint64_t dev_off, uint64_t len, uint64_t pos);
/* Too many pieces to run asynchronously (MAX_ASYNC_PIECES): serve s
 * synchronously. */
bool xmit_many_pieces(const struct xmit *x, const struct slot *s);

/* ---- thin LVs and the committer (xmit_thin.c) ---- */
/* Fail s with the pool's error r (logged with e). */
void xmit_thin_err(struct xmit *x, struct slot *s, int r, const struct dlvm_err *e);
/* What n records of s filled reads as written from now on. */
void xmit_thin_record(struct xmit *x, struct slot *s, const struct dlvm_thin_written *w, size_t n);
/* The pieces of a thin READ, WRITE or zeroing, as the pool maps them. */
void xmit_thin_pieces(struct xmit *x, struct slot *s, enum thin_op op, piece_fn fn);
/* TRIM, and WRITE_ZEROES without NO_HOLE: whole chunks unmapped. */
void xmit_thin_unmap(struct xmit *x, struct slot *s, bool zero_partial);
/* BLOCK_STATUS of a thin LV. */
void xmit_thin_status(struct xmit *x, struct slot *s);
/* The committer: started by the first queued commit, stopped with the
 * connection; queue returns false when it could not start (s failed). */
void xmit_committer_stop(struct xmit *x);
bool xmit_committer_queue(struct xmit *x, struct slot *s);
/* The committer's eventfd, read on the ring, and its results. */
void xmit_arm_wake(struct xmit *x);
void xmit_wake_done(struct xmit *x);

/* ---- the socket: requests in, replies out (xmit_wire.c) ---- */
/* ---- memory (xmit_mem.c) ---- */
/* Counted bytes a request of type and len needs beyond the slot it gets. */
uint64_t xmit_buf_need(const struct xmit *x, uint16_t type, uint32_t len);
/* Count need bytes if the limits allow; false: the request must wait. */
bool xmit_buf_take(struct xmit *x, uint64_t need);
/* Uncount n bytes freed. */
void xmit_buf_give(struct xmit *x, uint64_t n);
/* Register the arena with the ring, if not yet (at a request). */
void xmit_pin(struct xmit *x);
/* Nothing in flight, queued or half received. */
bool xmit_idle(const struct xmit *x);
/* When idle: drop the registration and give back the arena's pages, the
 * receive buffer's and the kept buffers. */
void xmit_unpin(struct xmit *x);
#define UNPIN_IDLE_MS 1000
#define BUF_POLL_US 1000
#define BUF_POLL_MAX_US 50000

/* A slot back to the free list (its big buffer freed). */
void xmit_slot_put(struct xmit *x, struct slot *s);
/* Queue the reply of s, which is done. */
void xmit_reply(struct xmit *x, struct slot *s);
/* Stop reading requests; `why` is logged once the connection ends. */
void xmit_close_conn(struct xmit *x, const char *why);
/* The socket's reads and writes on the ring, and their completions. */
/* Parse the complete requests in the receive buffer and start them, as
 * far as slots and buffer limits allow. */
void xmit_parse(struct xmit *x);
void xmit_arm_recv(struct xmit *x);
void xmit_recv_done(struct xmit *x, int res);
void xmit_arm_send(struct xmit *x);
void xmit_send_done(struct xmit *x, int res);

/* ---- a request's life (transmit.c) ---- */
/* A parsed request starts, finishes (its device ops done) or waits parked. */
void xmit_start(struct xmit *x, struct slot *s);
void xmit_finish(struct xmit *x, struct slot *s);
void xmit_park(struct xmit *x, struct slot *s);
void xmit_finish_tail(struct xmit *x, struct slot *s);

static inline uint64_t ud(unsigned kind, uint32_t slot, uint32_t expect)
{
	return kind | ((uint64_t)slot << 8) | ((uint64_t)expect << 32);
}

/* Address the file of sqe by its registered index, when registered. */
static inline void fixed_fd(struct xmit *x, struct io_uring_sqe *sqe, uint32_t ix)
{
	if (x->fixed) {
		sqe->fd = (int)ix;
		sqe->flags |= IOSQE_FIXED_FILE;
	}
}

static inline struct io_uring_sqe *get_sqe(struct xmit *x)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&x->ring);

	while (!sqe) {
		xmit_before_submit(x);
		io_uring_submit(&x->ring);
		sqe = io_uring_get_sqe(&x->ring);
	}
	return sqe;
}

/* Does a command of this type touch the devices? */
static inline bool is_dev_cmd(uint16_t type)
{
	return type == NBD_CMD_READ || type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES ||
	       type == NBD_CMD_TRIM || type == NBD_CMD_FLUSH;
}

/* Does a command of this type change what the devices hold? */
static inline bool is_change_cmd(uint16_t type)
{
	return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES || type == NBD_CMD_TRIM ||
	       type == NBD_CMD_FLUSH;
}

#endif
