/* SPDX-License-Identifier: MIT */
/*
 * What a connection holds in memory, and its limits (server.h, struct
 * nbd_limits).
 *
 * - Request buffers beyond a slot's preallocated SLOT_BUF bytes (a slot's
 *   kept "grown" buffer, a large request's own) are counted per
 *   connection (x->held) and for the server (*c->buf_total). A request
 *   that would take either over its limit is not parsed: it waits in the
 *   receive buffer, and once that is full the socket is not read, so the
 *   client waits on TCP backpressure. Requests in flight free their
 *   buffers as their replies go out, and parsing goes on. A connection
 *   with nothing in flight first lets go of its kept buffers (and, for the
 *   server's total, of its pinned arena), and may then always take one
 *   request of up to NBD_MAX_PAYLOAD (conn_buf is at
 *   least that), but never over the server's total: then it looks again,
 *   as others free theirs, after BUF_POLL_US, twice that, and so on up to
 *   BUF_POLL_MAX_US.
 * - The slots' arena is registered with the ring (pinned) only while the
 *   connection is busy: at its first request, and again after it was idle
 *   for UNPIN_IDLE_MS, when the registration is dropped and the arena's
 *   pages and kept buffers are given back. An idle connection pins
 *   nothing and holds little. A pinned arena counts in the server's total
 *   (not the connection's); without room, a connection runs unpinned.
 */
#include <liburing.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "daemon/nbd/server.h"
#include "daemon/nbd/xmit.h"
#include "dlvm/util.h"

uint64_t xmit_buf_need(const struct xmit *x, uint16_t type, uint32_t len)
{
	const struct slot *s;

	if ((type != NBD_CMD_READ && type != NBD_CMD_WRITE) || len <= SLOT_BUF ||
	    len > NBD_MAX_PAYLOAD || !x->nfree)
		return 0;                         /* in the slot's buffer, or refused by validate */
	s = &x->slots[x->freelist[x->nfree - 1]]; /* the slot slot_get gives */
	if (len > SLOT_KEEP_MAX)
		return len;
	return len > s->grown_cap ? dlvm_align_up(len, SLOT_BUF) - s->grown_cap : 0;
}

/* Free the kept buffers of every free slot. */
static void trim(struct xmit *x)
{
	for (unsigned i = 0; i < x->nfree; i++) {
		struct slot *s = &x->slots[x->freelist[i]];
		if (!s->grown)
			continue;
		xmit_buf_give(x, s->grown_cap);
		free(s->grown);
		s->grown = NULL;
		s->grown_cap = 0;
	}
}

/* Drop the arena's registration, and its count in the server's total. */
static void unregister_arena(struct xmit *x)
{
	if (x->fixed_bufs && io_uring_unregister_buffers(&x->ring) == 0) {
		x->fixed_bufs = false;
		atomic_fetch_sub(x->c->buf_total, (uint64_t)NSLOTS * SLOT_BUF);
	}
}

static bool total_take(struct xmit *x, uint64_t need)
{
	if (atomic_fetch_add(x->c->buf_total, need) + need <= x->c->lim->total_buf)
		return true;
	atomic_fetch_sub(x->c->buf_total, need);
	return false;
}

bool xmit_buf_take(struct xmit *x, uint64_t need)
{
	const struct nbd_limits *l = x->c->lim;
	bool busy = x->nfree < NSLOTS;

	if (!need)
		return true;
	if (x->held + need > l->conn_buf) {
		if (busy)
			return false;
		trim(x);
	}
	bool ok = total_take(x, need);
	if (!ok && !busy && x->fixed_bufs) {
		/* with nothing in flight, its own pinned arena must not be
		 * what the request waits for: no other connection frees it */
		unregister_arena(x);
		ok = total_take(x, need);
	}
	if (!ok) {
		/* look again later, less often the longer it waits */
		x->buf_poll_us = x->buf_poll_us ? DLVM_MIN(2 * x->buf_poll_us, BUF_POLL_MAX_US)
						: BUF_POLL_US;
		return false;
	}
	x->held += need;
	x->buf_poll_us = 0;
	return true;
}

void xmit_buf_give(struct xmit *x, uint64_t n)
{
	x->held -= n;
	atomic_fetch_sub(x->c->buf_total, n);
}

void xmit_pin(struct xmit *x)
{
	const uint64_t len = (uint64_t)NSLOTS * SLOT_BUF;
	struct iovec arena = { .iov_base = x->arena, .iov_len = len };

	if (x->fixed_bufs || x->pin_failed)
		return;
	/* the pinned arena is resident: it counts in the server's total, and
	 * without room the connection runs unpinned until its next busy spell */
	if (atomic_fetch_add(x->c->buf_total, len) + len > x->c->lim->total_buf) {
		atomic_fetch_sub(x->c->buf_total, len);
		return;
	}
	/* optional: the pinned memory counts against RLIMIT_MEMLOCK */
	x->fixed_bufs = io_uring_register_buffers(&x->ring, &arena, 1) == 0;
	x->pin_failed = !x->fixed_bufs;
	if (!x->fixed_bufs)
		atomic_fetch_sub(x->c->buf_total, len);
}

bool xmit_idle(const struct xmit *x)
{
	return x->nfree == NSLOTS && !x->ios && !x->rq_head && !x->parked && !x->rx_slot &&
	       x->rx_start == x->rx_end;
}

void xmit_unpin(struct xmit *x)
{
	if (!xmit_idle(x))
		return;
	unregister_arena(x);
	if (x->fixed_bufs)
		return;
	madvise(x->arena, (size_t)NSLOTS * SLOT_BUF, MADV_DONTNEED);
	madvise(x->rx, RXBUF_SIZE, MADV_DONTNEED);
	x->rx_start = x->rx_end = 0;
	trim(x);
}
