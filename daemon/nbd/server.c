/* SPDX-License-Identifier: MIT */
/*
 * Listeners, the accept thread and the list of connections. Each accepted
 * connection runs on a detached thread of its own (handshake, then
 * transmission); the server counts them so that nbd_server_stop can wait for
 * the last one.
 */
#include "daemon/nbd/server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/nbd/conn.h"
#include "daemon/nbd/cpus.h"
#include "daemon/tls/tls.h"
#include "dlvm/log.h"
#include "dlvm/util.h"

/* A line said at most once a second, with how many were held back. */
struct rate_log {
	uint64_t last_ms;
	unsigned held;
};

struct nbd_server {
	struct dlvm_exports *ex;
	int unix_fd, tcp_fd;
	int wake[2]; /* pipe: wakes the accept thread to stop */
	char *unix_path;
	pthread_t acceptor;
	bool acceptor_started;

	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct nbd_conn *conns; /* connections alive */
	unsigned nconns;
	bool stopping;
	bool irq_cpus;              /* nbd_server_opts.irq_cpus */
	const struct nbd_tls *tls;  /* nbd_server_opts.tls */
	struct nbd_limits lim;      /* nbd_server_opts.limits, defaults filled */
	_Atomic uint64_t buf_total; /* request buffers of every connection */
	/* accept thread only: failed and refused accepts are logged at most
	 * once a second each */
	struct rate_log accept_err, refused_total, refused_client;
	/* accept thread only: connections the sweeper closed, not yet said
	 * (handshake, idle) */
	unsigned kicks[2];
	struct rate_log kicked;
};

/* How often the accept thread looks for connections to close. */
#define SWEEP_MS 250

/* ---- connections ---- */

/* dlvm_exports_remove(force): end this connection. */
static void conn_kick(struct dlvm_export_client *cl)
{
	struct nbd_conn *c = (struct nbd_conn *)((char *)cl - offsetof(struct nbd_conn, client));

	shutdown(c->fd, SHUT_RDWR);
}

static void *conn_main(void *arg)
{
	struct nbd_conn *c = arg;
	struct nbd_server *s = c->srv;

	log_debug(DLVM_LOG_NBD, "%s: connected", c->peer);
	if (nbd_handshake(c) == 0) {
		atomic_store(&c->last_io_ms, dlvm_now_ms());
		atomic_store(&c->transmitting, true);
		log_debug(DLVM_LOG_NBD, "%s: %s: opened (%s replies)", c->name, c->peer,
			  c->structured ? "structured" : "simple");
		if (s->irq_cpus)
			nbd_place_thread(c);
		nbd_transmit(c);
		dlvm_exports_detach(c->ex, &c->client);
		dlvm_lv_map_put(c->map);
		log_debug(DLVM_LOG_NBD, "%s: %s: closed", c->name, c->peer);
	} else {
		log_debug(DLVM_LOG_NBD, "%s: closed during the handshake", c->peer);
	}
	pthread_mutex_lock(&s->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&s->lock);
	nbd_tls_conn_close(c->tls);
	close(c->fd);
	free(c->name);
	free(c);
	/* Last: once nconns drops, nbd_server_stop may free s. */
	pthread_mutex_lock(&s->lock);
	if (--s->nconns == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void peer_name(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[48], serv[8];

	snprintf(out, len, "client");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family == AF_UNIX)
		return;
	if (!getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
			 NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(out, len, "%s:%s", host, serv);
}

/* Whether to log now: at most once a second; *held says how many were
 * not logged since the last line. */
static bool rate_ok(struct rate_log *r, unsigned *held)
{
	uint64_t now = dlvm_now_ms();

	if (r->last_ms && now - r->last_ms < 1000) {
		r->held++;
		return false;
	}
	*held = r->held;
	r->last_ms = now;
	r->held = 0;
	return true;
}

/* A failed accept (out of file descriptors, say): said at most once a
 * second, with how many failed since the last line, so that a client that
 * keeps connecting cannot flood the log. */
static void accept_failed(struct nbd_server *s, int e)
{
	unsigned held;

	if (!rate_ok(&s->accept_err, &held))
		return;
	if (held)
		log_error(DLVM_LOG_NBD, "server: accept: %s (%u more failed in the last second)",
			  strerror(e), held);
	else
		log_error(DLVM_LOG_NBD, "server: accept: %s", strerror(e));
}

/* Who the client is, for its connection cap: the address without the
 * port on TCP, the user on the Unix socket. */
static void client_key(int fd, bool tcp, const char *peer, char *out, size_t len)
{
	if (tcp) {
		const char *colon = strrchr(peer, ':');
		int n = colon ? (int)(colon - peer) : (int)strlen(peer);
		snprintf(out, len, "%.*s", n, peer);
		return;
	}
	struct ucred cr;
	socklen_t sl = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &sl) == 0)
		snprintf(out, len, "uid %u", (unsigned)cr.uid);
	else
		snprintf(out, len, "unix");
}

/* NULL when the connection may be served, else which limit it is over.
 * Under s->lock. */
static const char *over_limit(struct nbd_server *s, const char *key)
{
	unsigned same = 0;

	if (s->nconns >= s->lim.max_conns)
		return "connections";
	for (struct nbd_conn *c = s->conns; c; c = c->next)
		if (!strcmp(c->client_key, key) && ++same >= s->lim.max_client_conns)
			return "connections of one client";
	return NULL;
}

static void refuse(struct nbd_server *s, struct nbd_conn *c, const char *what)
{
	unsigned held;
	bool total = !strcmp(what, "connections");
	unsigned max = total ? s->lim.max_conns : s->lim.max_client_conns;

	if (rate_ok(total ? &s->refused_total : &s->refused_client, &held))
		log_warning(DLVM_LOG_NBD,
			    "%s (%s): refused: %u %s already, the limit (%u more refused in the "
			    "last second)",
			    c->peer, c->client_key, max, what, held);
	close(c->fd);
	free(c);
}

static void accept_one(struct nbd_server *s, int lfd)
{
	pthread_attr_t attr;
	struct nbd_conn *c;
	pthread_t t;
	int fd, one = 1, ret;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e != EAGAIN && e != EINTR && e != ECONNABORTED)
			accept_failed(s, e);
		if (e == EMFILE || e == ENFILE)
			usleep(100 * 1000);
		return;
	}
	if (lfd == s->tcp_fd)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->srv = s;
	c->ex = s->ex;
	c->fd = fd;
	c->client.kick = conn_kick;
	c->tls_cfg = s->tls;
	c->tls_required = lfd == s->tcp_fd && s->tls && nbd_tls_mode(s->tls) == NBD_TLS_REQUIRE;
	c->restricted = lfd == s->tcp_fd && nbd_tls_has_rules(s->tls);
	atomic_init(&c->stop, false);
	peer_name(fd, c->peer, sizeof(c->peer));
	client_key(fd, lfd == s->tcp_fd, c->peer, c->client_key, sizeof(c->client_key));
	c->lim = &s->lim;
	c->buf_total = &s->buf_total;
	c->hs_deadline_ms = dlvm_now_ms() + s->lim.handshake_ms;
	atomic_init(&c->transmitting, false);
	atomic_init(&c->last_io_ms, 0);
	atomic_init(&c->kicked, false);

	pthread_mutex_lock(&s->lock);
	const char *over = over_limit(s, c->client_key);
	if (over) {
		pthread_mutex_unlock(&s->lock);
		refuse(s, c, over);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	pthread_mutex_unlock(&s->lock);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (ret) {
		log_error(DLVM_LOG_NBD, "%s: cannot start a thread: %s", c->peer, strerror(ret));
		pthread_mutex_lock(&s->lock);
		s->conns = c->next;
		if (c->next)
			c->next->prev = NULL;
		s->nconns--;
		pthread_mutex_unlock(&s->lock);
		close(fd);
		free(c);
	}
}

/* Close the connections that overstay: a handshake past its deadline, a
 * connection idle for longer than idle_ms. The connection's thread sees
 * its socket shut down and ends as if the client had gone. Each is a debug
 * line; what the log says is a count at most once a second. */
static void sweep(struct nbd_server *s)
{
	static const char *const why[2] = { "handshake not done in time", "idle for too long" };
	uint64_t now = dlvm_now_ms();
	unsigned held;

	pthread_mutex_lock(&s->lock);
	for (struct nbd_conn *c = s->conns; c; c = c->next) {
		int k = -1;
		if (atomic_load(&c->kicked))
			continue;
		bool xmit = atomic_load(&c->transmitting); /* then c->name is set */
		if (!xmit) {
			if (now > c->hs_deadline_ms)
				k = 0;
		} else if (s->lim.idle_ms) {
			uint64_t last = atomic_load_explicit(&c->last_io_ms, memory_order_relaxed);
			if (last && now - last > s->lim.idle_ms)
				k = 1;
		}
		if (k < 0)
			continue;
		atomic_store(&c->kicked, true);
		s->kicks[k]++;
		log_debug(DLVM_LOG_NBD, "%s%s%s: closed: %s", xmit ? c->name : "", xmit ? ": " : "",
			  c->peer, why[k]);
		shutdown(c->fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&s->lock);
	if ((!s->kicks[0] && !s->kicks[1]) || !rate_ok(&s->kicked, &held))
		return;
	for (int k = 0; k < 2; k++)
		if (s->kicks[k])
			log_info(DLVM_LOG_NBD, "server: closed %u connection%s: %s", s->kicks[k],
				 s->kicks[k] == 1 ? "" : "s", why[k]);
	s->kicks[0] = s->kicks[1] = 0;
}

static void *accept_main(void *arg)
{
	struct nbd_server *s = arg;
	uint64_t swept = dlvm_now_ms();

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = s->wake[0], .events = POLLIN },
			{ .fd = s->unix_fd, .events = POLLIN },
			{ .fd = s->tcp_fd, .events = POLLIN },
		};
		if (dlvm_now_ms() - swept >= SWEEP_MS) {
			sweep(s);
			swept = dlvm_now_ms();
		}
		if (poll(p, 3, SWEEP_MS) < 0) {
			if (errno == EINTR)
				continue;
			log_error(DLVM_LOG_NBD, "server: poll: %s", strerror(errno));
			return NULL;
		}
		if (p[0].revents)
			return NULL;
		if (p[1].revents & POLLIN)
			accept_one(s, s->unix_fd);
		if (p[2].revents & POLLIN)
			accept_one(s, s->tcp_fd);
	}
}

/* ---- listeners ---- */

static int listen_unix(struct nbd_server *s, const char *path, struct dlvm_err *err)
{
	int fd, r;

	if ((r = dlvm_unix_listen(path, 128, SOCK_NONBLOCK, DLVM_SOCKET_GROUP, &fd, err)))
		return dlvm_err_prefix(err, r, "nbd: ");
	s->unix_fd = fd;
	s->unix_path = strdup(path);
	return s->unix_path ? 0 : dlvm_err_set(err, -ENOMEM, "out of memory");
}

static int listen_tcp(struct nbd_server *s, const char *addr, struct dlvm_err *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	char host[256];
	const char *port, *colon = strrchr(addr, ':');
	int fd = -1, e = 0, one = 1, ret;
	size_t hl;

	if (!colon || !colon[1])
		return dlvm_err_set(err, -EINVAL, "nbd: %s: expected HOST:PORT", addr);
	port = colon + 1;
	hl = (size_t)(colon - addr);
	if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return dlvm_err_set(err, -EINVAL, "nbd: %s: host name too long", addr);
	memcpy(host, addr, hl);
	host[hl] = '\0';
	ret = getaddrinfo(hl ? host : NULL, port, &hints, &res);
	if (ret)
		return dlvm_err_set(err, -EINVAL, "nbd: %s:%s: %s", host, port, gai_strerror(ret));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return dlvm_err_set(err, -e, "nbd: %s:%s: %s", host, port, strerror(e));
	s->tcp_fd = fd;
	return 0;
}

static void limits_defaults(struct nbd_limits *l)
{
	if (!l->max_conns)
		l->max_conns = NBD_DEFAULT_MAX_CONNS;
	if (!l->max_client_conns)
		l->max_client_conns = NBD_DEFAULT_MAX_CLIENT_CONNS;
	if (!l->handshake_ms)
		l->handshake_ms = NBD_DEFAULT_HANDSHAKE_MS;
	if (!l->conn_buf)
		l->conn_buf = NBD_DEFAULT_CONN_BUF;
	if (!l->total_buf)
		l->total_buf = NBD_DEFAULT_TOTAL_BUF;
	l->conn_buf = DLVM_MAX(l->conn_buf, (uint64_t)NBD_MAX_PAYLOAD);
	l->total_buf = DLVM_MAX(l->total_buf, (uint64_t)NBD_MAX_PAYLOAD);
}

int nbd_server_start(struct dlvm_exports *ex, const struct nbd_server_opts *o,
		     struct nbd_server **out, struct dlvm_err *err)
{
	struct nbd_server *s;
	int ret;

	if (!ex || !o || (!o->unix_path && !o->tcp_addr))
		return dlvm_err_set(err, -EINVAL, "nbd: no socket to listen on");
	if (o->tcp_addr && o->tls && nbd_tls_mode(o->tls) == NBD_TLS_REQUIRE &&
	    !nbd_tls_offered(o->tls))
		return dlvm_err_set(err, -EINVAL, "nbd: %s: TLS required but not configured",
				    o->tcp_addr);
	s = calloc(1, sizeof(*s));
	if (!s)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	s->ex = ex;
	s->irq_cpus = o->irq_cpus;
	s->lim = o->limits;
	limits_defaults(&s->lim);
	atomic_init(&s->buf_total, 0);
	s->tls = o->tls;
	s->unix_fd = s->tcp_fd = s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		ret = dlvm_err_set(err, -errno, "nbd: pipe: %s", strerror(errno));
		goto fail;
	}
	if (o->unix_path && (ret = listen_unix(s, o->unix_path, err)) < 0)
		goto fail;
	if (o->tcp_addr && (ret = listen_tcp(s, o->tcp_addr, err)) < 0)
		goto fail;
	ret = -pthread_create(&s->acceptor, NULL, accept_main, s);
	if (ret < 0) {
		dlvm_err_set(err, ret, "nbd: cannot start a thread: %s", strerror(-ret));
		goto fail;
	}
	s->acceptor_started = true;
	*out = s;
	return 0;
fail:
	nbd_server_stop(s);
	return ret;
}

void nbd_server_stop(struct nbd_server *s)
{
	if (!s)
		return;
	if (s->acceptor_started) {
		ssize_t n = write(s->wake[1], "x", 1);
		(void)n;
		pthread_join(s->acceptor, NULL);
	}
	if (s->unix_fd >= 0)
		close(s->unix_fd);
	if (s->tcp_fd >= 0)
		close(s->tcp_fd);
	if (s->unix_path)
		dlvm_unix_unlink(s->unix_path);

	/* No new requests are read; those in flight complete and get their
	 * replies; each connection flushes what it wrote and closes. */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	for (struct nbd_conn *c = s->conns; c; c = c->next) {
		atomic_store(&c->stop, true);
		shutdown(c->fd, SHUT_RD);
	}
	while (s->nconns)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);

	for (int i = 0; i < 2; i++)
		if (s->wake[i] >= 0)
			close(s->wake[i]);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	free(s->unix_path);
	free(s);
}
