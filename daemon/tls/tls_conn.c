/* SPDX-License-Identifier: MIT */
/* One connection's TLS session: the handshake, who the client is, and its
 * reads and writes (tls.h). */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/tls/tls.h"
#include "daemon/tls/tls_int.h"
#include "dlvm/log.h"

/* Small pieces of an iovec array are gathered into records of this size
 * (GnuTLS's largest), so that a reply header and its payload share a
 * record; longer pieces go to GnuTLS straight from their buffer. */
#define STAGE_MAX 16384
/* The whole TLS handshake, as long as one read of the option haggling may
 * wait (handshake.c). */
#define TLS_HANDSHAKE_TIMEOUT_MS 60000

struct nbd_tls_conn {
	gnutls_session_t s;
	const struct nbd_tls *t;
	char *ids[2]; /* PSK username or certificate CN; certificate DN */
	size_t nids;
	bool send_again; /* GnuTLS holds a record of the bytes not taken yet */
	uint8_t stage[STAGE_MAX];
};

int nbd_tls_psk_key(gnutls_session_t s, const char *username, gnutls_datum_t *key)
{
	const struct nbd_tls_conn *tc = gnutls_session_get_ptr(s);
	const struct psk_key *k = nbd_tls_find_key(tc->t, username);

	if (!k)
		return -1;
	key->data = gnutls_malloc(k->len);
	if (!key->data)
		return -1;
	memcpy(key->data, k->key, k->len);
	key->size = (unsigned)k->len;
	return 0;
}

void nbd_tls_conn_ids(const struct nbd_tls_conn *tc, const char *const **ids, size_t *n)
{
	*ids = (const char *const *)tc->ids;
	*n = tc->nids;
}

const char *nbd_tls_identity(const struct nbd_tls_conn *tc)
{
	return tc && tc->nids ? tc->ids[0] : "anonymous";
}

static int add_id(struct nbd_tls_conn *tc, const char *id, size_t len)
{
	if (memchr(id, 0, len) || tc->nids == 2)
		return -EACCES;
	tc->ids[tc->nids] = strndup(id, len);
	if (!tc->ids[tc->nids])
		return -ENOMEM;
	tc->nids++;
	return 0;
}

/* The CN and the DN of a client certificate that the CA verifies; a client
 * without a certificate has no identity. */
static int cert_identity(struct nbd_tls_conn *tc, const char *peer)
{
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t dn = { 0 }, why = { 0 };
	unsigned n = 0, status = 0;
	char cn[256];
	size_t cnl = sizeof(cn);
	int r;

	certs = gnutls_certificate_get_peers(tc->s, &n);
	if (!certs || !n || !tc->t->x509_ca)
		return 0;
	r = gnutls_certificate_verify_peers2(tc->s, &status);
	if (r < 0 || status) {
		if (r >= 0)
			gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why,
								     0);
		log_warning(DLVM_LOG_NBD, "%s: TLS: client certificate refused: %s", peer,
			    r < 0      ? gnutls_strerror(r)
			    : why.data ? (char *)why.data
				       : "invalid");
		gnutls_free(why.data);
		return -EACCES;
	}
	r = -EACCES;
	if (gnutls_x509_crt_init(&crt) < 0)
		return -ENOMEM;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0)
		goto out;
	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnl) == 0 &&
	    (r = add_id(tc, cn, cnl)) < 0)
		goto out;
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0)
		r = add_id(tc, (const char *)dn.data, dn.size);
	else
		r = 0;
out:
	gnutls_free(dn.data);
	gnutls_x509_crt_deinit(crt);
	return r;
}

static int peer_identity(struct nbd_tls_conn *tc, const char *peer)
{
	const char *user;

	switch (gnutls_auth_get_type(tc->s)) {
	case GNUTLS_CRD_PSK:
		user = gnutls_psk_server_get_username(tc->s);
		return user ? add_id(tc, user, strlen(user)) : -EACCES;
	case GNUTLS_CRD_CERTIFICATE: return cert_identity(tc, peer);
	default: return 0;
	}
}

static int session_new(struct nbd_tls_conn *tc, int fd)
{
	const struct nbd_tls *t = tc->t;

	if (gnutls_init(&tc->s, GNUTLS_SERVER | GNUTLS_NO_SIGNAL) < 0) {
		tc->s = NULL;
		return -ENOMEM;
	}
	gnutls_session_set_ptr(tc->s, tc);
	if (gnutls_priority_set(tc->s, t->prio) < 0)
		return -ENOMEM;
	if (t->psk && gnutls_credentials_set(tc->s, GNUTLS_CRD_PSK, t->psk) < 0)
		return -ENOMEM;
	if (t->x509) {
		if (gnutls_credentials_set(tc->s, GNUTLS_CRD_CERTIFICATE, t->x509) < 0)
			return -ENOMEM;
		gnutls_certificate_server_set_request(tc->s, t->x509_ca ? GNUTLS_CERT_REQUEST
									: GNUTLS_CERT_IGNORE);
	}
	gnutls_transport_set_int(tc->s, fd);
	gnutls_handshake_set_timeout(tc->s, TLS_HANDSHAKE_TIMEOUT_MS);
	return 0;
}

int nbd_tls_conn_start(const struct nbd_tls *t, int fd, const char *peer, struct nbd_tls_conn **out)
{
	struct nbd_tls_conn *tc = calloc(1, sizeof(*tc));
	int r;

	if (!tc)
		return -ENOMEM;
	tc->t = t;
	r = session_new(tc, fd);
	if (r < 0)
		goto fail;
	do
		r = gnutls_handshake(tc->s);
	while (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r));
	if (r < 0) {
		log_warning(DLVM_LOG_NBD, "%s: TLS handshake failed: %s", peer,
			    r == GNUTLS_E_AGAIN ? "timed out" : gnutls_strerror(r));
		r = -EACCES;
		goto fail;
	}
	r = peer_identity(tc, peer);
	if (r < 0)
		goto fail;
	if (dlvm_log_debug_on(DLVM_LOG_NBD)) {
		char *desc = gnutls_session_get_desc(tc->s);
		log_debug(DLVM_LOG_NBD, "%s: TLS on: %s, identity %s", peer, desc ? desc : "?",
			  nbd_tls_identity(tc));
		gnutls_free(desc);
	}
	*out = tc;
	return 0;
fail:
	nbd_tls_conn_close(tc);
	return r;
}

void nbd_tls_conn_close(struct nbd_tls_conn *tc)
{
	if (!tc)
		return;
	if (tc->s) {
		gnutls_bye(tc->s, GNUTLS_SHUT_WR); /* no wait for the peer's reply */
		gnutls_deinit(tc->s);
	}
	for (size_t i = 0; i < tc->nids; i++)
		free(tc->ids[i]);
	free(tc);
}

/* ---- reads and writes ---- */

static int tls_errno(ssize_t r)
{
	switch (r) {
	case GNUTLS_E_AGAIN: return -EAGAIN;
	case GNUTLS_E_INTERRUPTED: return -EINTR;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PULL_ERROR: return -ECONNRESET;
	case GNUTLS_E_PUSH_ERROR: return -EPIPE;
	default: return -EPROTO;
	}
}

/* Worth calling gnutls_record_recv again at once? */
static bool recv_again(ssize_t r)
{
	return r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_WARNING_ALERT_RECEIVED;
}

int nbd_tls_read_full(struct nbd_tls_conn *tc, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t r = gnutls_record_recv(tc->s, p, len);
		if (r > 0) {
			p += r;
			len -= (size_t)r;
		} else if (!recv_again(r)) {
			return r == 0                ? -ECONNRESET
			       : r == GNUTLS_E_AGAIN ? -ETIMEDOUT
						     : tls_errno(r);
		}
	}
	return 0;
}

ssize_t nbd_tls_recv(struct nbd_tls_conn *tc, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = gnutls_record_recv(tc->s, (uint8_t *)buf + got, len - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (recv_again(r))
			continue;
		if (got)
			break; /* the end or the error comes with the next call */
		if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		return tls_errno(r);
	}
	return (ssize_t)got;
}

bool nbd_tls_pending(const struct nbd_tls_conn *tc)
{
	return gnutls_record_check_pending(tc->s) > 0;
}

/* A position in an iovec array. */
struct cursor {
	const struct iovec *iov;
	int n, i;
	size_t off;
};

static void cursor_skip(struct cursor *c, size_t k)
{
	while (c->i < c->n && k >= c->iov[c->i].iov_len - c->off) {
		k -= c->iov[c->i].iov_len - c->off;
		c->i++;
		c->off = 0;
	}
	c->off += k;
}

/* Up to STAGE_MAX bytes from the cursor on into the stage. */
static size_t gather(struct nbd_tls_conn *tc, struct cursor c)
{
	size_t n = 0;

	for (; c.i < c.n && n < STAGE_MAX; c.i++, c.off = 0) {
		size_t k = c.iov[c.i].iov_len - c.off;
		if (!k)
			continue; /* an empty piece may have no base (option replies) */
		if (k > STAGE_MAX - n)
			k = STAGE_MAX - n;
		memcpy(tc->stage + n, (const uint8_t *)c.iov[c.i].iov_base + c.off, k);
		n += k;
	}
	return n;
}

/* gnutls_record_send until it is not interrupted; after GNUTLS_E_AGAIN the
 * record is GnuTLS's, to send with the next call (send_again). */
static ssize_t send_record(struct nbd_tls_conn *tc, const void *p, size_t len)
{
	ssize_t r = gnutls_record_send(tc->s, p, len);

	while (r == GNUTLS_E_INTERRUPTED)
		r = gnutls_record_send(tc->s, NULL, 0);
	tc->send_again = r == GNUTLS_E_AGAIN;
	return r;
}

ssize_t nbd_tls_sendv(struct nbd_tls_conn *tc, const struct iovec *iov, int niov)
{
	struct cursor c = { .iov = iov, .n = niov };
	size_t done = 0;
	ssize_t r = 0;

	if (tc->send_again) {
		r = send_record(tc, NULL, 0);
		if (r < 0)
			return tls_errno(r);
		done = (size_t)r;
		cursor_skip(&c, done);
	}
	cursor_skip(&c, 0); /* past empty pieces */
	while (c.i < c.n) {
		size_t rem = iov[c.i].iov_len - c.off;
		if (rem >= STAGE_MAX)
			r = send_record(tc, (const uint8_t *)iov[c.i].iov_base + c.off, rem);
		else
			r = send_record(tc, tc->stage, gather(tc, c));
		if (r < 0)
			break;
		done += (size_t)r;
		cursor_skip(&c, (size_t)r);
	}
	if (done)
		return (ssize_t)done;
	return r < 0 ? tls_errno(r) : 0;
}

int nbd_tls_write_full(struct nbd_tls_conn *tc, const struct iovec *iov, int niov)
{
	struct cursor c = { .iov = iov, .n = niov };
	struct iovec v[8];

	if (niov > 8)
		return -EINVAL;
	cursor_skip(&c, 0);
	while (c.i < c.n) {
		int k = 0;
		ssize_t r;
		for (int i = c.i; i < c.n; i++)
			v[k++] = iov[i];
		v[0].iov_base = (uint8_t *)v[0].iov_base + c.off;
		v[0].iov_len -= c.off;
		r = nbd_tls_sendv(tc, v, k);
		if (r == -EAGAIN)
			return -ETIMEDOUT; /* a blocking socket's timeout */
		if (r < 0)
			return (int)r;
		cursor_skip(&c, (size_t)r);
	}
	return 0;
}
