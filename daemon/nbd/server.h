/* SPDX-License-Identifier: MIT */
/*
 * The NBD server of dlvmd: serves the exports of a struct dlvm_exports (one
 * per active LV, named "VG/LV") over the NBD protocol, fixed newstyle
 * handshake, on a Unix socket and/or a TCP address.
 *
 * One thread accepts connections; each connection has its own thread and
 * io_uring, with requests pipelined (replies may go out of order). Writes are
 * acknowledged only once completed, FLUSH runs fdatasync on every device of
 * the export, so CAN_MULTI_CONN is advertised.
 *
 * TLS (NBD_OPT_STARTTLS, tls.h): with opts.tls in mode "require", a TCP
 * client must start TLS before any other option (the spec's FORCEDTLS);
 * otherwise, and always on the Unix socket, TLS is accepted when
 * credentials are configured but not required. The access rules restrict
 * TCP clients only: a Unix socket client was admitted by the socket's mode.
 */
#ifndef DLVMD_NBD_SERVER_H
#define DLVMD_NBD_SERVER_H

#include <stdint.h>

#include "daemon/exports.h"
#include "dlvm/err.h"

struct nbd_server;
struct nbd_tls;

/* What one client, and all of them, may take of the server. Zero fields
 * take the defaults below. A connection over max_conns, or over
 * max_client_conns from one TCP address or one Unix user, is closed at
 * accept; a handshake not done within handshake_ms is closed; with idle_ms,
 * a connection whose socket moves no byte for that long is closed. Request
 * buffers beyond the preallocated slots (reads and writes over 64 KiB) are
 * limited to conn_buf bytes per connection and total_buf for all: a request
 * that would go over waits in the socket (its connection reads no more)
 * until requests in flight free theirs. Nothing is dropped. */
struct nbd_limits {
	unsigned max_conns;        /* default 1024 */
	unsigned max_client_conns; /* default 256 */
	unsigned handshake_ms;     /* default 10 s */
	unsigned idle_ms;          /* 0: never */
	uint64_t conn_buf;         /* default 128 MiB; at least NBD_MAX_PAYLOAD */
	uint64_t total_buf;        /* default 1 GiB; at least NBD_MAX_PAYLOAD */
};

#define NBD_DEFAULT_MAX_CONNS 1024u
#define NBD_DEFAULT_MAX_CLIENT_CONNS 256u
#define NBD_DEFAULT_HANDSHAKE_MS 10000u
#define NBD_DEFAULT_CONN_BUF (128ull << 20)
#define NBD_DEFAULT_TOTAL_BUF (1ull << 30)

struct nbd_server_opts {
	const char *unix_path; /* listen on this Unix socket path (NULL: none) */
	const char *tcp_addr; /* "HOST:PORT" (NULL: none); default used by dlvmd is 127.0.0.1:10809 */
	unsigned workers;     /* 0: default. Reserved: each connection has its own thread */
	bool irq_cpus;        /* run connections where their devices' I/O completes (cpus.h) */
	/* TLS mode, credentials and access rules (tls.h); must outlive the
	 * server. NULL: no TLS, every client opens every export. */
	const struct nbd_tls *tls;
	struct nbd_limits limits;
};

/*
 * Start listening and serving `ex` (which must outlive the server). An
 * existing socket file at unix_path is replaced. IPv6 addresses go in
 * brackets ("[::1]:10809"). Returns 0 and *out, or a negative errno with a
 * message in err: -EINVAL (bad options, no listener asked for), -EADDRINUSE,
 * -ENOMEM, or the errno of socket/bind/listen.
 */
int nbd_server_start(struct dlvm_exports *ex, const struct nbd_server_opts *o,
		     struct nbd_server **out, struct dlvm_err *err);

/* Graceful stop: stop accepting, finish in-flight requests, flush every
 * device written, close all connections, free. Removes the Unix socket file. */
void nbd_server_stop(struct nbd_server *s);

#endif
