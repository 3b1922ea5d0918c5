/* SPDX-License-Identifier: MIT */
/* The socket side of a connection: slots, requests read and checked,
 * replies queued and sent. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/nbd/devio.h"
#include "daemon/nbd/server.h"
#include "daemon/tls/tls.h"
#include "daemon/nbd/xmit.h"
#include "dlvm/log.h"
#include "dlvm/util.h"

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

void xmit_slot_put(struct xmit *x, struct slot *s)
{
	if (s->nthin_w) { /* never finished: let others' waits end */
		dlvm_thin_pool_unfilled(x->map->thin, s->thin_w, s->nthin_w);
		s->nthin_w = 0;
	}
	if (s->thin_io) { /* never finished: do not hold up snapshots */
		dlvm_thin_pool_io_end(x->map->thin, s->thin_token);
		s->thin_io = false;
	}
	if (s->big) {
		xmit_buf_give(x, s->len);
		free(s->big);
		s->big = NULL;
	}
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

static void chunk_header(struct slot *s, uint8_t *h, uint16_t flags, uint16_t type, uint32_t len)
{
	nbd_put32(h, NBD_STRUCTURED_REPLY_MAGIC);
	nbd_put16(h + 4, flags);
	nbd_put16(h + 6, type);
	nbd_put64(h + 8, s->cookie);
	nbd_put32(h + 16, len);
}

/* Build the reply of a finished request and queue it. */
void xmit_reply(struct xmit *x, struct slot *s)
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
		/* thin LVs: the descriptors xmit_start() put in the slot's buffer */
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
		xmit_slot_put(x, s);
		return;
	}
	if (x->rq_tail)
		x->rq_tail->next = s;
	else
		x->rq_head = s;
	x->rq_tail = s;
}

/* ---- device I/O ---- */

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
	/* the export's permission now, not the map's at open: lvchange -p
	 * reaches open connections */
	bool ro = dlvm_export_readonly(x->c->client.exp);

	switch (s->type) {
	case NBD_CMD_READ:
		if (x->c->structured)
			ok |= NBD_CMD_FLAG_DF;
		break;
	case NBD_CMD_WRITE_ZEROES: ok |= NBD_CMD_FLAG_NO_HOLE; break;
	case NBD_CMD_BLOCK_STATUS: ok |= NBD_CMD_FLAG_REQ_ONE; break;
	case NBD_CMD_WRITE:
	case NBD_CMD_FLUSH:
	case NBD_CMD_TRIM:
	case NBD_CMD_CACHE: break;
	default: xmit_set_err(s, -EINVAL, "unknown command"); return;
	}
	if (s->flags & ~ok) {
		xmit_set_err(s, -EINVAL, "unsupported flags for this command");
		return;
	}
	switch (s->type) {
	case NBD_CMD_READ:
		if (s->len > NBD_MAX_PAYLOAD)
			xmit_set_err(s, x->c->structured ? -EOVERFLOW : -EINVAL,
				     "read larger than the maximum payload");
		else if (!in_bounds(x, s->off, s->len))
			xmit_set_err(s, -EINVAL, "read beyond the end of the export");
		break;
	case NBD_CMD_WRITE:
		if (ro)
			xmit_set_err(s, -EPERM, "read-only export");
		else if (s->len > NBD_MAX_PAYLOAD)
			xmit_set_err(s, -EINVAL, "write larger than the maximum payload");
		else if (!in_bounds(x, s->off, s->len))
			xmit_set_err(s, -ENOSPC, "write beyond the end of the export");
		break;
	case NBD_CMD_WRITE_ZEROES:
		if (ro)
			xmit_set_err(s, -EPERM, "read-only export");
		else if (!in_bounds(x, s->off, s->len))
			xmit_set_err(s, -ENOSPC, "write beyond the end of the export");
		break;
	case NBD_CMD_TRIM:
		if (ro)
			xmit_set_err(s, -EPERM, "read-only export");
		else if (!in_bounds(x, s->off, s->len))
			xmit_set_err(s, -EINVAL, "trim beyond the end of the export");
		break;
	case NBD_CMD_CACHE:
		if (!in_bounds(x, s->off, s->len))
			xmit_set_err(s, -EINVAL, "request beyond the end of the export");
		break;
	case NBD_CMD_BLOCK_STATUS:
		if (!x->c->meta_id)
			xmit_set_err(s, -EINVAL, "no metadata context was negotiated");
		else if (!s->len)
			xmit_set_err(s, -EINVAL, "zero-length block status");
		else if (!in_bounds(x, s->off, s->len))
			xmit_set_err(s, -EINVAL, "block status beyond the end of the export");
		break;
	}
}

void xmit_close_conn(struct xmit *x, const char *why)
{
	if (!x->closing) {
		x->closing = true;
		x->why = why;
	}
}

/* Parse every complete request in the receive buffer. */
void xmit_parse(struct xmit *x)
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
				xmit_reply(x, x->discard_slot);
				x->discard_slot = NULL;
			}
			continue;
		}
		if (avail < NBD_REQUEST_SIZE || !x->nfree)
			break;
		if (nbd_get32(p) != NBD_REQUEST_MAGIC) {
			xmit_close_conn(x, "bad request magic, disconnecting");
			break;
		}
		uint64_t need = xmit_buf_need(x, nbd_get16(p + 6), nbd_get32(p + 24));
		x->buf_wait = !xmit_buf_take(x, need);
		if (x->buf_wait)
			break;
		xmit_pin(x);
		x->rx_start += NBD_REQUEST_SIZE;
		avail -= NBD_REQUEST_SIZE;
		struct slot *s = slot_get(x);
		s->flags = nbd_get16(p + 4);
		s->type = nbd_get16(p + 6);
		s->cookie = nbd_get64(p + 8);
		s->off = nbd_get64(p + 16);
		s->len = nbd_get32(p + 24);
		if (s->type == NBD_CMD_DISC) {
			xmit_slot_put(x, s);
			x->disc = true;
			xmit_close_conn(x, NULL);
			break;
		}
		validate(x, s);
		if (!s->err && (s->type == NBD_CMD_READ || s->type == NBD_CMD_WRITE) &&
		    slot_buffer(s, s->len) < 0)
			xmit_set_err(s, -ENOMEM, "out of memory");
		if (s->err && !s->big)
			xmit_buf_give(x, need); /* counted for a buffer not made */
		if (s->type == NBD_CMD_WRITE && s->err) {
			if (s->len > DISCARD_MAX) {
				xmit_slot_put(x, s);
				xmit_close_conn(x, "refused write with an oversized payload, "
						   "disconnecting");
				break;
			}
			/* the error goes out once the payload is read: a client
			 * still sending it may not expect a reply yet */
			x->discard = s->len;
			if (s->len)
				x->discard_slot = s;
			else
				xmit_reply(x, s);
			continue;
		}
		if (s->err) {
			xmit_reply(x, s);
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
		xmit_start(x, s);
	}
	if (x->rx_start == x->rx_end)
		x->rx_start = x->rx_end = 0;
}

/* ---- socket ---- */

/*
 * A TLS connection reads and writes through GnuTLS, on the connection's
 * thread, when the ring says the socket is ready: the receive is a poll
 * for POLLIN (or a no-op when GnuTLS holds decrypted bytes already), whose
 * completion reads what it can (tls_recv); the send is a poll for POLLOUT,
 * whose completion writes what it can of the iovecs arm_send built
 * (tls_send). Either way the completion goes on as a plain recv's or
 * sendmsg's would, with the bytes moved or -EAGAIN. The socket is
 * non-blocking (nbd_handshake).
 */
static void prep_recv(struct xmit *x, struct io_uring_sqe *sqe, void *buf, size_t len)
{
	struct nbd_conn *c = x->c;

	if (!c->tls) {
		io_uring_prep_recv(sqe, c->fd, buf, len, 0);
		fixed_fd(x, sqe, 0);
		return;
	}
	c->tls_rbuf = buf;
	c->tls_rlen = len;
	if (nbd_tls_pending(c->tls)) {
		io_uring_prep_nop(sqe);
	} else {
		io_uring_prep_poll_add(sqe, c->fd, POLLIN);
		fixed_fd(x, sqe, 0);
	}
}

static int tls_recv(struct xmit *x, int res)
{
	return res < 0 ? res : (int)nbd_tls_recv(x->c->tls, x->c->tls_rbuf, x->c->tls_rlen);
}

static int tls_send(struct xmit *x, int res)
{
	ssize_t n;

	if (res < 0)
		return res;
	n = nbd_tls_sendv(x->c->tls, x->siov, (int)x->smsg.msg_iovlen);
	return n > INT32_MAX ? INT32_MAX : (int)n; /* the rest goes with the next send */
}

/* Bytes moved on the socket: the connection is not idle (server.c). */
static void stamp(struct xmit *x)
{
	if (x->c->lim && x->c->lim->idle_ms)
		atomic_store_explicit(&x->c->last_io_ms, dlvm_now_ms(), memory_order_relaxed);
}

void xmit_arm_recv(struct xmit *x)
{
	struct io_uring_sqe *sqe;

	if (x->closing || x->recv_busy)
		return;
	if (x->rx_slot) {
		sqe = get_sqe(x);
		prep_recv(x, sqe, x->rx_slot->data + x->rx_got, x->rx_slot->len - x->rx_got);
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
		prep_recv(x, sqe, x->rx + x->rx_end, RXBUF_SIZE - x->rx_end);
	}
	io_uring_sqe_set_data64(sqe, ud(UD_RECV, 0, 0));
	x->recv_busy = true;
}

void xmit_recv_done(struct xmit *x, int res)
{
	x->recv_busy = false;
	if (x->c->tls)
		res = tls_recv(x, res);
	if (res <= 0) {
		bool mid = x->rx_slot || x->discard || x->rx_end > x->rx_start;
		if (res == -EINTR || res == -EAGAIN)
			return;
		if (mid)
			xmit_close_conn(x, "client disconnected mid-request");
		else if (atomic_load(&x->c->stop))
			xmit_close_conn(x, NULL);
		else
			xmit_close_conn(x, res ? "connection error" : NULL);
		return;
	}
	stamp(x);
	if (x->rx_slot) {
		x->rx_got += (uint32_t)res;
		if (x->rx_got == x->rx_slot->len) {
			struct slot *s = x->rx_slot;
			x->rx_slot = NULL;
			xmit_start(x, s);
		}
	} else {
		x->rx_end += (size_t)res;
	}
	xmit_parse(x);
	if (atomic_load(&x->c->stop))
		xmit_close_conn(x, NULL);
}

void xmit_arm_send(struct xmit *x)
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
	if (x->c->tls)
		io_uring_prep_poll_add(sqe, x->c->fd, POLLOUT);
	else
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
		xmit_slot_put(x, s);
	}
	x->rq_tail = NULL;
}

void xmit_send_done(struct xmit *x, int res)
{
	size_t n;

	x->send_busy = false;
	if (x->c->tls)
		res = tls_send(x, res);
	if (res < 0) {
		if (res == -EINTR || res == -EAGAIN)
			return;
		x->broken = true;
		drop_replies(x);
		xmit_close_conn(x, NULL);
		shutdown(x->c->fd, SHUT_RDWR); /* end a pending recv */
		return;
	}
	n = (size_t)res;
	if (n)
		stamp(x);
	while (x->rq_head) {
		struct slot *s = x->rq_head;
		size_t left = s->reply_len - s->sent;
		if (n < left) {
			s->sent += n;
			break;
		}
		n -= left;
		x->rq_head = s->next;
		xmit_slot_put(x, s);
	}
	if (!x->rq_head)
		x->rq_tail = NULL;
	xmit_parse(x); /* slots were freed */
}

/* ---- loop ---- */
