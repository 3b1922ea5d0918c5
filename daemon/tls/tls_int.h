/* SPDX-License-Identifier: MIT */
/* What tls.c (settings) and tls_conn.c (sessions) share. */
#ifndef DLVMD_NBD_TLS_INT_H
#define DLVMD_NBD_TLS_INT_H

#include <gnutls/gnutls.h>
#include <stdint.h>

#include "daemon/tls/tls.h"

struct nbd_access;

struct psk_key {
	char *id;
	uint8_t *key;
	size_t len;
};

struct nbd_tls {
	enum nbd_tls_mode mode;
	gnutls_psk_server_credentials_t psk;   /* NULL: no --tls-psk */
	gnutls_certificate_credentials_t x509; /* NULL: no --tls-certificates */
	bool x509_ca;                          /* client certificates asked for, verified */
	gnutls_priority_t prio;
	struct psk_key *keys;
	size_t nkeys;
	struct nbd_access *access; /* NULL: no --tls-access */
	char *psk_file, *cert_dir, *access_file;
};

/* The key of a PSK identity, or NULL. */
const struct psk_key *nbd_tls_find_key(const struct nbd_tls *t, const char *id);

/* GnuTLS's callback for a client's PSK username (tls_conn.c). */
int nbd_tls_psk_key(gnutls_session_t s, const char *username, gnutls_datum_t *key);

/* The names a client goes by (for the access rules): none, or its PSK
 * username, or its certificate's CN and DN. */
void nbd_tls_conn_ids(const struct nbd_tls_conn *tc, const char *const **ids, size_t *n);

#endif
