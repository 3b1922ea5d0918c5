/* SPDX-License-Identifier: MIT */
/*
 * One NBD client connection, shared by the handshake (handshake.c), the
 * transmission phase (transmit.c) and the server (server.c). A connection
 * runs on its own thread from accept to close.
 */
#ifndef DLVMD_NBD_CONN_H
#define DLVMD_NBD_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/nbd/attach.h"
#include "dlvm/map.h"

/* Size constraints advertised with NBD_INFO_BLOCK_SIZE. Unaligned requests
 * are served (read-modify-write), hence a minimum of 1. */
#define NBD_MIN_BLOCK 1u
#define NBD_PREF_BLOCK 4096u
#define NBD_MAX_PAYLOAD (32u << 20)

struct nbd_limits;
struct nbd_server;
struct nbd_tls;
struct nbd_tls_conn;

struct nbd_conn {
	struct nbd_server *srv;
	struct dlvm_exports *ex;
	int fd;
	char peer[64];    /* for messages before an export is chosen */
	atomic_bool stop; /* the server is stopping */

	/* Limits (server.h), set at accept. The server's sweeper reads
	 * phase, the handshake deadline and last_io_ms to close connections
	 * that overstay; the transmission stamps last_io_ms when idle_ms is
	 * set. */
	const struct nbd_limits *lim;
	_Atomic uint64_t *buf_total; /* the server's request buffers, bytes */
	char client_key[56];         /* TCP address or "uid N": per-client cap */
	uint64_t hs_deadline_ms;     /* dlvm_now_ms() by which the handshake ends */
	atomic_bool transmitting;    /* the handshake is done */
	_Atomic uint64_t last_io_ms;
	atomic_bool kicked; /* closed by the sweeper: said once */

	/* TLS and access rules (tls.h), set at accept. */
	const struct nbd_tls *tls_cfg; /* the server's; NULL: no TLS, no rules */
	bool tls_required;             /* STARTTLS before any other option */
	bool restricted;               /* the access rules apply (TCP clients) */
	struct nbd_tls_conn *tls;      /* after STARTTLS; NULL: plain socket */
	/* TLS transmission: where the receive that waits on the ring for the
	 * socket to be readable reads to (xmit_wire.c) */
	void *tls_rbuf;
	size_t tls_rlen;

	/* Set by a successful handshake. */
	char *name;                /* export name "VG/LV" */
	struct dlvm_lv_map *map;   /* reference held until the connection ends */
	pthread_mutex_t *rmw_lock; /* the export's partial-sector write lock */
	struct dlvm_export_client client;
	bool attached;
	bool structured;  /* structured replies negotiated */
	uint32_t meta_id; /* id of base:allocation, 0 if not selected */
	uint16_t tflags;  /* transmission flags sent */

	struct nbd_conn *prev, *next; /* the server's list */
};

/* May this client open (and see) export `name`: the access rules, for
 * TCP clients (tls.h). */
bool nbd_conn_may_open(const struct nbd_conn *c, const char *name);

/* Transmission flags for an export. */
uint16_t nbd_export_flags(const struct dlvm_lv_map *m, bool structured);

/*
 * Run option haggling on c->fd. Returns 0 when the client entered the
 * transmission phase (c->name, map, attached... are set), or a negative
 * errno when the connection must be closed (the reason has been logged where
 * it matters).
 */
int nbd_handshake(struct nbd_conn *c);

/* Serve requests until the client disconnects, the export is removed with
 * force or the server stops; every device I/O has completed on return and
 * devices written have been flushed. */
void nbd_transmit(struct nbd_conn *c);

#endif
