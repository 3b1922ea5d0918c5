/* SPDX-License-Identifier: MIT */
/*
 * TLS for the NBD server (GnuTLS), and who may open which export.
 *
 * struct nbd_tls holds what the whole server shares, read once at start and
 * never changed: the mode (--tls), the credentials (pre-shared keys from a
 * psktool file, an X.509 certificate directory) and the access rules
 * (--tls-access). It is made before the server starts and freed after it
 * stopped; connections only read it, from any thread.
 *
 * struct nbd_tls_conn is one connection's TLS session, made by NBD_OPT_STARTTLS
 * (nbd_tls_conn_start) and used by that connection's thread only: blocking
 * reads and writes during option haggling (nbd_tls_read_full,
 * nbd_tls_write_full), non-blocking ones in the transmission phase
 * (nbd_tls_recv, nbd_tls_sendv), where the socket's readiness comes from
 * the connection's io_uring.
 *
 * Access rules (docs/tls.md): lines "IDENTITY: PATTERN..." where IDENTITY is
 * a PSK username, the common name (CN) or the whole distinguished name of a
 * client certificate, or "*" for every client; PATTERNs are fnmatch(3)
 * globs over export names "VG/LV".
 */
#ifndef DLVMD_NBD_TLS_H
#define DLVMD_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "dlvm/err.h"

enum nbd_tls_mode {
	NBD_TLS_OFF,     /* no TLS anywhere: NBD_OPT_STARTTLS is refused */
	NBD_TLS_ON,      /* offered on every listener, required on none */
	NBD_TLS_REQUIRE, /* required on TCP, offered on the Unix socket */
};

struct nbd_tls_opts {
	const char *mode;        /* "off", "on" or "require" (the default when NULL) */
	const char *psk_file;    /* psktool's "identity:hexkey" lines; NULL: none */
	const char *cert_dir;    /* server-cert.pem, server-key.pem, [ca-cert.pem, ca-crl.pem] */
	const char *access_file; /* access rules; NULL: every identity opens every export */
	bool tcp;                /* a TCP listener will be started */
};

struct nbd_tls;
struct nbd_tls_conn;

/*
 * Read the credentials and the access rules. Refuses (-EINVAL, with a
 * message naming the option or the file and line) a bad mode, an unreadable
 * or malformed file, and a TCP listener whose TLS mode is on or require
 * with no credentials to offer. Returns 0 and *out (free with nbd_tls_free).
 */
int nbd_tls_new(const struct nbd_tls_opts *o, struct nbd_tls **out, struct dlvm_err *err);
void nbd_tls_free(struct nbd_tls *t);

enum nbd_tls_mode nbd_tls_mode(const struct nbd_tls *t);
/* Can a client start TLS (credentials are configured, the mode is not off)? */
bool nbd_tls_offered(const struct nbd_tls *t);
/* Is an access rules file configured? */
bool nbd_tls_has_rules(const struct nbd_tls *t);

/* One line for the log: how the TCP listener (tcp) or the Unix socket treats
 * clients, e.g. "TLS required (PSK: 2 identities; X.509, client
 * certificates verified); access rules from FILE". */
void nbd_tls_describe(const struct nbd_tls *t, bool tcp, char *buf, size_t len);

/*
 * May a client open `export`? tc is its TLS session, NULL for a client
 * without TLS (which gets only the rules for "*"). Without an access file
 * every client may open every export.
 */
bool nbd_tls_allows(const struct nbd_tls *t, const struct nbd_tls_conn *tc, const char *export);

/*
 * Run the TLS handshake as the server on the blocking socket fd (its receive
 * timeout bounds each read). Returns 0 and *out, or -EACCES (wrong key,
 * certificate not verified: logged with peer) or another negative errno.
 */
int nbd_tls_conn_start(const struct nbd_tls *t, int fd, const char *peer,
		       struct nbd_tls_conn **out);
/* Say goodbye (without waiting for the peer) and free; NULL is fine. */
void nbd_tls_conn_close(struct nbd_tls_conn *tc);

/* The client's identity for messages: the PSK username, the certificate's
 * CN, or "anonymous". */
const char *nbd_tls_identity(const struct nbd_tls_conn *tc);

/* Blocking reads and writes of exactly len bytes (option haggling): 0, or
 * -ECONNRESET (closed), -ETIMEDOUT (the socket's timeout), -EPROTO. */
int nbd_tls_read_full(struct nbd_tls_conn *tc, void *buf, size_t len);
int nbd_tls_write_full(struct nbd_tls_conn *tc, const struct iovec *iov, int niov);

/*
 * Non-blocking socket (transmission phase). nbd_tls_recv reads up to len
 * bytes: the count, 0 at the end of the stream, -EAGAIN when nothing can be
 * read now, or a negative errno. nbd_tls_sendv writes from the start of the
 * iovecs: the count of bytes taken, -EAGAIN, or a negative errno. After a
 * partial write or -EAGAIN the next call must start with the bytes not taken
 * (GnuTLS may hold a record of them already).
 */
ssize_t nbd_tls_recv(struct nbd_tls_conn *tc, void *buf, size_t len);
ssize_t nbd_tls_sendv(struct nbd_tls_conn *tc, const struct iovec *iov, int niov);
/* Has GnuTLS decrypted bytes that no call has read yet (the socket need
 * not be readable for them)? */
bool nbd_tls_pending(const struct nbd_tls_conn *tc);

#endif
