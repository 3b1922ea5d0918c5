/* SPDX-License-Identifier: MIT */
/*
 * The OpenStack Block Storage (Cinder) v3 API of dlvmd (docs/api.md): a TCP
 * listener that serves volumes, snapshots, volume types and attachments as
 * thin LVs of one pool, their Cinder state kept as LV properties in the VG's
 * journal. It runs every change as a dlvm command (lib/cmd), under the
 * context's command lock, so that the native API and it never interleave.
 */
#ifndef DLVMD_CINDER_H
#define DLVMD_CINDER_H

#include "dlvm/cmd.h"
#include "dlvm/err.h"

struct dlvmd_cinder_opts {
	const char *listen;     /* "HOST:PORT" */
	const char *pool;       /* "VG/POOL" */
	const char *type_name;  /* the one volume type */
	const char *auth;       /* "noauth" */
	bool noauth_network;    /* noauth may serve a non-loopback address */
	const char *nbd_socket; /* the NBD Unix socket, for connection_info */
	const char *nbd_listen; /* the NBD TCP listener "HOST:PORT", or NULL */
	const char *nbd_tls;    /* dlvmd --tls: off, on, require */
};

struct dlvmd_cinder;

/*
 * Start serving on opts->listen. ctx must have its command lock set (the
 * native API sets it: start this after dlvmd_api_start). Strings are copied.
 * -EINVAL for a listen address or pool that does not parse, -EPERM for
 * noauth on a non-loopback address without noauth_network, the errno of
 * bind or listen, -EIO when the HTTP server does not start; err says why.
 */
int dlvmd_cinder_start(struct dlvm_ctx *ctx, const struct dlvmd_cinder_opts *opts,
		       struct dlvmd_cinder **out, struct dlvm_err *err);
/* Stop serving (requests under way finish first) and free; NULL is fine. */
void dlvmd_cinder_stop(struct dlvmd_cinder *c);

#endif
