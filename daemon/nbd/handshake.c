/* SPDX-License-Identifier: MIT */
/*
 * Fixed newstyle handshake and option haggling. The socket is blocking here
 * (with a receive timeout) and read exactly as far as each option goes, so
 * requests the client pipelines after NBD_OPT_GO stay in the socket for the
 * transmission phase.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include "daemon/nbd/conn.h"
#include "daemon/nbd/proto.h"
#include "daemon/tls/tls.h"
#include "dlvm/log.h"

#define OPT_DATA_MAX (64u << 10)    /* longer option data is refused */
#define OPT_DISCARD_MAX (16u << 20) /* longer option data is a hard disconnect */
#define HANDSHAKE_TIMEOUT_S 60

static const char base_allocation[] = "base:allocation";

struct haggle {
	struct nbd_conn *c;
	bool no_zeroes;
	char *meta_name; /* export the last SET_META_CONTEXT named */
	bool meta_alloc; /* ... and whether it selected base:allocation */
	uint32_t opt;    /* option being answered */
	uint8_t *data;   /* its data */
	uint32_t len;
};

static int recv_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_iov(int fd, struct iovec *iov, int niov)
{
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)niov };

	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
			n -= (ssize_t)msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base = (uint8_t *)msg.msg_iov->iov_base + n;
			msg.msg_iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* The connection's reads and writes: through TLS once STARTTLS succeeded. */
static int conn_recv(struct nbd_conn *c, void *buf, size_t len)
{
	return c->tls ? nbd_tls_read_full(c->tls, buf, len) : recv_full(c->fd, buf, len);
}

static int conn_sendv(struct nbd_conn *c, struct iovec *iov, int niov)
{
	return c->tls ? nbd_tls_write_full(c->tls, iov, niov) : send_iov(c->fd, iov, niov);
}

static int conn_send(struct nbd_conn *c, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	return conn_sendv(c, &iov, 1);
}

bool nbd_conn_may_open(const struct nbd_conn *c, const char *name)
{
	return !c->restricted || nbd_tls_allows(c->tls_cfg, c->tls, name);
}

/* One option reply: header, then data1 and data2 (either may be empty). */
static int reply2(struct haggle *h, uint32_t type, const void *d1, size_t l1, const void *d2,
		  size_t l2)
{
	uint8_t hdr[20];
	struct iovec iov[3] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)d1, .iov_len = l1 },
		{ .iov_base = (void *)d2, .iov_len = l2 },
	};

	nbd_put64(hdr, NBD_REP_MAGIC);
	nbd_put32(hdr + 8, h->opt);
	nbd_put32(hdr + 12, type);
	nbd_put32(hdr + 16, (uint32_t)(l1 + l2));
	return conn_sendv(h->c, iov, 3);
}

static int reply(struct haggle *h, uint32_t type, const void *d, size_t l)
{
	return reply2(h, type, d, l, NULL, 0);
}

/* An error reply carrying a message for the user. */
static int reply_err(struct haggle *h, uint32_t type, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
static int reply_err(struct haggle *h, uint32_t type, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	return reply(h, type, msg, (size_t)n);
}

uint16_t nbd_export_flags(const struct dlvm_lv_map *m, bool structured)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		     NBD_FLAG_CAN_MULTI_CONN;

	if (m->readonly)
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
	if (structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

/* A NUL-terminated copy of a wire string, or NULL if it holds a NUL. */
static char *wire_string(const uint8_t *p, size_t len)
{
	char *s;

	if (memchr(p, 0, len))
		return NULL;
	s = malloc(len + 1);
	if (!s)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* Enter transmission: attach to the export. */
static int attach(struct haggle *h, const char *name)
{
	struct nbd_conn *c = h->c;
	int ret;

	ret = dlvm_exports_attach(c->ex, name, &c->client, &c->map, &c->rmw_lock);
	if (ret < 0)
		return ret;
	c->name = strdup(name);
	if (!c->name) {
		dlvm_exports_detach(c->ex, &c->client);
		dlvm_lv_map_put(c->map);
		c->map = NULL;
		return -ENOMEM;
	}
	c->attached = true;
	c->tflags = nbd_export_flags(c->map, c->structured);
	c->meta_id = h->meta_alloc && h->meta_name && !strcmp(h->meta_name, name) ? 1 : 0;
	return 0;
}

static void detach(struct nbd_conn *c)
{
	if (!c->attached)
		return;
	dlvm_exports_detach(c->ex, &c->client);
	c->attached = false;
	dlvm_lv_map_put(c->map);
	c->map = NULL;
	free(c->name);
	c->name = NULL;
}

static int opt_export_name(struct haggle *h)
{
	struct nbd_conn *c = h->c;
	uint8_t buf[8 + 2 + 124] = { 0 };
	char *name = wire_string(h->data, h->len);
	int ret;

	if (!name || !*name) {
		log_error(DLVM_LOG_NBD, "%s: NBD_OPT_EXPORT_NAME: %s", c->peer,
			  name ? "no default export" : "bad name");
		ret = -ENOENT;
		goto out;
	}
	ret = nbd_conn_may_open(c, name) ? attach(h, name) : -ENOENT;
	if (ret < 0) {
		log_error(DLVM_LOG_NBD, "%s: NBD_OPT_EXPORT_NAME: %s: no such export", c->peer,
			  name);
		goto out;
	}
	nbd_put64(buf, c->map->size);
	nbd_put16(buf + 8, c->tflags);
	ret = conn_send(c, buf, h->no_zeroes ? 10 : sizeof(buf));
	if (ret < 0)
		detach(c);
out:
	free(name);
	return ret;
}

static int send_info_export(struct haggle *h, const struct dlvm_lv_map *m, uint16_t tflags)
{
	uint8_t b[12];

	nbd_put16(b, NBD_INFO_EXPORT);
	nbd_put64(b + 2, m->size);
	nbd_put16(b + 10, tflags);
	return reply(h, NBD_REP_INFO, b, sizeof(b));
}

static int send_info_block_size(struct haggle *h)
{
	uint8_t b[14];

	nbd_put16(b, NBD_INFO_BLOCK_SIZE);
	nbd_put32(b + 2, NBD_MIN_BLOCK);
	nbd_put32(b + 6, NBD_PREF_BLOCK);
	nbd_put32(b + 10, NBD_MAX_PAYLOAD);
	return reply(h, NBD_REP_INFO, b, sizeof(b));
}

static int send_info_string(struct haggle *h, uint16_t type, const char *s)
{
	uint8_t b[2];

	nbd_put16(b, type);
	return reply2(h, NBD_REP_INFO, b, 2, s, strlen(s));
}

/* NBD_OPT_INFO and NBD_OPT_GO. Returns 1 when transmission starts. */
static int opt_info_go(struct haggle *h)
{
	struct nbd_conn *c = h->c;
	bool go = h->opt == NBD_OPT_GO, want_name = false, want_desc = false;
	struct dlvm_lv_map *m = NULL;
	uint32_t namelen;
	uint16_t nreq, tflags;
	char *name = NULL, desc[2 * DLVM_NAME_MAX + 64];
	int ret;

	if (h->len < 6)
		return reply_err(h, NBD_REP_ERR_INVALID, "option too short");
	namelen = nbd_get32(h->data);
	if (namelen > h->len - 6)
		return reply_err(h, NBD_REP_ERR_INVALID, "name length beyond option data");
	nreq = nbd_get16(h->data + 4 + namelen);
	if (h->len != 4 + namelen + 2 + 2u * nreq)
		return reply_err(h, NBD_REP_ERR_INVALID, "bad option length");
	for (uint16_t i = 0; i < nreq; i++) {
		uint16_t t = nbd_get16(h->data + 4 + namelen + 2 + 2 * i);
		want_name |= t == NBD_INFO_NAME;
		want_desc |= t == NBD_INFO_DESCRIPTION;
	}
	name = wire_string(h->data + 4, namelen);
	if (!name) {
		ret = reply_err(h, NBD_REP_ERR_INVALID, "bad export name");
		goto out;
	}
	if (!*name) {
		ret = reply_err(h, NBD_REP_ERR_UNKNOWN,
				"there is no default export: name one as VG/LV");
		goto out;
	}
	if (!nbd_conn_may_open(c, name)) {
		ret = -ENOENT; /* what this client may not open, it does not see */
	} else if (go) {
		ret = attach(h, name);
		if (!ret)
			m = dlvm_lv_map_get(c->map);
	} else {
		m = dlvm_exports_map(c->ex, name);
		ret = m ? 0 : -ENOENT;
	}
	if (ret == -ENOENT) {
		ret = reply_err(h, NBD_REP_ERR_UNKNOWN, "%s: no such export", name);
		goto out;
	}
	if (ret < 0) {
		ret = reply_err(h, NBD_REP_ERR_INVALID, "%s: %s", name, strerror(-ret));
		goto out;
	}
	tflags = nbd_export_flags(m, c->structured);
	snprintf(desc, sizeof(desc), "dlvm logical volume %s/%s%s", m->vg, m->lv,
		 m->readonly ? " (read-only)" : "");
	ret = send_info_export(h, m, tflags);
	if (!ret)
		ret = send_info_block_size(h);
	if (!ret && want_name)
		ret = send_info_string(h, NBD_INFO_NAME, name);
	if (!ret && want_desc)
		ret = send_info_string(h, NBD_INFO_DESCRIPTION, desc);
	if (!ret)
		ret = reply(h, NBD_REP_ACK, NULL, 0);
	if (ret < 0)
		detach(c);
	else if (go)
		ret = 1;
out:
	dlvm_lv_map_put(m);
	free(name);
	return ret;
}

static int opt_list(struct haggle *h)
{
	char **names;
	size_t n;
	int ret;

	if (h->len)
		return reply_err(h, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
	ret = dlvm_exports_names(h->c->ex, &names, &n);
	if (ret < 0)
		return reply_err(h, NBD_REP_ERR_INVALID, "out of memory");
	for (size_t i = 0; i < n && !ret; i++) {
		uint8_t b[4];
		size_t len = strlen(names[i]);
		if (!nbd_conn_may_open(h->c, names[i]))
			continue;
		nbd_put32(b, (uint32_t)len);
		ret = reply2(h, NBD_REP_SERVER, b, 4, names[i], len);
	}
	free(names);
	if (!ret)
		ret = reply(h, NBD_REP_ACK, NULL, 0);
	return ret;
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT. */
static int opt_meta(struct haggle *h)
{
	bool set = h->opt == NBD_OPT_SET_META_CONTEXT, match = false;
	struct dlvm_lv_map *m = NULL;
	uint32_t namelen, nq, rem;
	const uint8_t *p;
	char *name = NULL;
	int ret;

	if (set) {
		free(h->meta_name);
		h->meta_name = NULL;
		h->meta_alloc = false;
	}
	if (!h->c->structured)
		return reply_err(h, NBD_REP_ERR_INVALID, "negotiate structured replies first");
	if (h->len < 8)
		return reply_err(h, NBD_REP_ERR_INVALID, "option too short");
	namelen = nbd_get32(h->data);
	if (namelen > h->len - 8)
		return reply_err(h, NBD_REP_ERR_INVALID, "name length beyond option data");
	nq = nbd_get32(h->data + 4 + namelen);
	p = h->data + 8 + namelen;
	rem = h->len - 8 - namelen;
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql;
		if (rem < 4)
			return reply_err(h, NBD_REP_ERR_INVALID, "query beyond option data");
		ql = nbd_get32(p);
		if (ql > rem - 4)
			return reply_err(h, NBD_REP_ERR_INVALID, "query beyond option data");
		if (ql == sizeof(base_allocation) - 1 && !memcmp(p + 4, base_allocation, ql))
			match = true;
		if (!set && ql == 5 && !memcmp(p + 4, "base:", 5))
			match = true;
		p += 4 + ql;
		rem -= 4 + ql;
	}
	if (rem)
		return reply_err(h, NBD_REP_ERR_INVALID, "trailing option data");
	if (!set && nq == 0)
		match = true;
	name = wire_string(h->data + 4, namelen);
	if (!name) {
		ret = reply_err(h, NBD_REP_ERR_INVALID, "bad export name");
		goto out;
	}
	m = *name && nbd_conn_may_open(h->c, name) ? dlvm_exports_map(h->c->ex, name) : NULL;
	if (!m) {
		ret = reply_err(h, NBD_REP_ERR_UNKNOWN, "%s: no such export", name);
		goto out;
	}
	ret = 0;
	if (match) {
		uint8_t id[4];
		nbd_put32(id, set ? 1 : 0);
		ret = reply2(h, NBD_REP_META_CONTEXT, id, 4, base_allocation,
			     sizeof(base_allocation) - 1);
	}
	if (!ret)
		ret = reply(h, NBD_REP_ACK, NULL, 0);
	if (!ret && set) {
		h->meta_name = name;
		h->meta_alloc = match;
		name = NULL;
	}
out:
	dlvm_lv_map_put(m);
	free(name);
	return ret;
}

/* Read and drop n bytes of option data we will not look at. */
static int discard(struct nbd_conn *c, uint32_t n)
{
	uint8_t buf[4096];

	while (n) {
		uint32_t k = n < sizeof(buf) ? n : sizeof(buf);
		int ret = conn_recv(c, buf, k);
		if (ret < 0)
			return ret;
		n -= k;
	}
	return 0;
}

static void set_timeout(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/*
 * NBD_OPT_STARTTLS: acknowledged, then the TLS handshake; on success the
 * option haggling goes on under TLS with nothing kept of what was
 * negotiated before (the spec's rule). A failed TLS handshake ends the
 * connection: the acknowledgement was sent, no plain reply can follow.
 */
static int opt_starttls(struct haggle *h)
{
	struct nbd_conn *c = h->c;
	int ret;

	if (h->len)
		return reply_err(h, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
	if (c->tls)
		return reply_err(h, NBD_REP_ERR_INVALID, "TLS is already on");
	if (!nbd_tls_offered(c->tls_cfg))
		return reply_err(h, NBD_REP_ERR_POLICY, "this server does not offer TLS");
	ret = reply(h, NBD_REP_ACK, NULL, 0);
	if (ret < 0)
		return ret;
	ret = nbd_tls_conn_start(c->tls_cfg, c->fd, c->peer, &c->tls);
	if (ret < 0)
		return ret;
	c->structured = false;
	free(h->meta_name);
	h->meta_name = NULL;
	h->meta_alloc = false;
	return 0;
}

/* FORCEDTLS: before STARTTLS only it and ABORT are served. Returns 1 when
 * the option was refused, 0 when it may go on, a negative errno to close. */
static int tls_gate(struct haggle *h)
{
	struct nbd_conn *c = h->c;
	int ret;

	if (!c->tls_required || c->tls || h->opt == NBD_OPT_STARTTLS || h->opt == NBD_OPT_ABORT)
		return 0;
	if (h->opt == NBD_OPT_EXPORT_NAME) { /* cannot be answered with an error */
		log_error(DLVM_LOG_NBD, "%s: NBD_OPT_EXPORT_NAME without TLS, closing", c->peer);
		return -EACCES;
	}
	ret = reply_err(h, NBD_REP_ERR_TLS_REQD,
			"TLS is required: start it with NBD_OPT_STARTTLS (nbds:// URIs)");
	return ret < 0 ? ret : 1;
}

/* Read the next option's header and data into h. Returns 0 with h->opt,
 * h->data and h->len set; 1 when the option was answered already (too
 * long); a negative errno to close. */
static int read_option(struct haggle *h)
{
	struct nbd_conn *c = h->c;
	uint8_t hdr[16];
	int ret;

	ret = conn_recv(c, hdr, sizeof(hdr));
	if (ret < 0)
		return ret;
	if (nbd_get64(hdr) != NBD_OPTS_MAGIC) {
		log_error(DLVM_LOG_NBD, "%s: bad option magic, closing", c->peer);
		return -EPROTO;
	}
	h->opt = nbd_get32(hdr + 8);
	h->len = nbd_get32(hdr + 12);
	free(h->data);
	h->data = NULL;
	if (h->len > OPT_DATA_MAX) {
		if (h->opt == NBD_OPT_EXPORT_NAME || h->len > OPT_DISCARD_MAX) {
			log_error(DLVM_LOG_NBD, "%s: option %u with %u bytes of data, closing",
				  c->peer, h->opt, h->len);
			return -EPROTO;
		}
		ret = discard(c, h->len);
		if (!ret)
			ret = reply_err(h, NBD_REP_ERR_TOO_BIG, "option data too long");
		return ret < 0 ? ret : 1;
	}
	h->data = malloc(h->len ? h->len : 1);
	if (!h->data)
		return -ENOMEM;
	ret = conn_recv(c, h->data, h->len);
	return ret < 0 ? ret : 0;
}

/* Answer the option in h. Returns 0 to read the next one, 1 when the
 * transmission phase starts, a negative errno to close. */
static int dispatch(struct haggle *h)
{
	struct nbd_conn *c = h->c;
	int ret;

	switch (h->opt) {
	case NBD_OPT_EXPORT_NAME: return opt_export_name(h) == 0 ? 1 : -ENOENT;
	case NBD_OPT_ABORT: reply(h, NBD_REP_ACK, NULL, 0); return -ECONNRESET;
	case NBD_OPT_STARTTLS: return opt_starttls(h);
	case NBD_OPT_LIST: return opt_list(h);
	case NBD_OPT_INFO:
	case NBD_OPT_GO: return opt_info_go(h);
	case NBD_OPT_STRUCTURED_REPLY:
		if (h->len)
			return reply_err(h, NBD_REP_ERR_INVALID, "option takes no data");
		c->structured = true;
		return reply(h, NBD_REP_ACK, NULL, 0);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT: return opt_meta(h);
	default:
		ret = reply_err(h, NBD_REP_ERR_UNSUP, "option %u not supported", h->opt);
		return ret;
	}
}

/* Greeting and client flags. */
static int greet(struct haggle *h)
{
	struct nbd_conn *c = h->c;
	uint8_t greeting[18], cflags[4];
	uint32_t flags;
	int ret;

	nbd_put64(greeting, NBD_MAGIC);
	nbd_put64(greeting + 8, NBD_OPTS_MAGIC);
	nbd_put16(greeting + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	ret = conn_send(c, greeting, sizeof(greeting));
	if (ret < 0)
		return ret;
	ret = conn_recv(c, cflags, 4);
	if (ret < 0)
		return ret;
	flags = nbd_get32(cflags);
	if (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		log_error(DLVM_LOG_NBD, "%s: unknown client flags 0x%x, closing", c->peer, flags);
		return -EPROTO;
	}
	h->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
	return 0;
}

int nbd_handshake(struct nbd_conn *c)
{
	struct haggle h = { .c = c };
	int ret;

	set_timeout(c->fd, HANDSHAKE_TIMEOUT_S);
	ret = greet(&h);
	while (ret == 0) {
		ret = read_option(&h);
		if (ret == 1) {
			ret = 0;
			continue;
		}
		if (ret < 0)
			break;
		if (atomic_load(&c->stop) && h.opt != NBD_OPT_ABORT) {
			ret = reply_err(&h, NBD_REP_ERR_SHUTDOWN, "server shutting down");
			continue;
		}
		ret = tls_gate(&h);
		if (ret == 1) {
			ret = 0;
			continue;
		}
		if (ret == 0)
			ret = dispatch(&h);
	}
	if (ret == 1) {
		ret = 0;
		set_timeout(c->fd, 0);
		/* TLS transmission: GnuTLS reads and writes when the ring says
		 * the socket is ready, and must not block (xmit_wire.c) */
		if (c->tls && fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) {
			ret = -errno;
			detach(c);
		}
	}
	free(h.data);
	free(h.meta_name);
	return ret;
}
