/* SPDX-License-Identifier: MIT */
/*
 * The native control API of dlvmd: HTTP/JSON on a Unix socket, served by
 * libmicrohttpd with a thread per connection.
 *
 *   POST /v1/cmd/<name>   body: a command request (see dlvm/cmd.h)
 *        200 and the command's response, or an error status with
 *        {"error": {"code": "ENOSPC", "errno": 28, "message": "..."},
 *         "warnings": [...], "messages": [...]}
 *   GET  /v1/health       {"status": "ok", "pid": N}
 *   GET  /v1/log[?since=SEQ][&level=LEVEL]
 *        the last lines of the log (daemon/log.h), oldest first, those after
 *        SEQ and at LEVEL or more severe (error, warning, info, debug):
 *        {"lines": [{"seq": N, "time": "2026-01-02T03:04:05.678Z",
 *                    "level": "info", "subsystem": "main", "message": "..."}],
 *         "last": N}   (last: the newest line's seq, for the next since=)
 *
 * Commands run one at a time under one mutex, against the daemon's context.
 * Errors map to statuses: EINVAL 400, ENOENT 404, EEXIST/EBUSY 409,
 * ENOSPC 507, ENOTSUP 501, anything else 500; bodies over 1 MiB get 413,
 * bodies that are not a JSON object 400, unknown paths 404, other methods 405.
 */
#ifndef DLVMD_API_H
#define DLVMD_API_H

#include "dlvm/cmd.h"
#include "dlvm/err.h"

#define DLVMD_API_MAX_BODY (1u << 20)

struct dlvmd_api;

/*
 * Listen on the Unix socket `path` (a stale socket file is replaced) and
 * serve requests against ctx until dlvmd_api_stop. ctx must outlive the API.
 * Returns 0, or -errno with err set (bind/listen failure, socket in use by a
 * running daemon: -EADDRINUSE).
 */
int dlvmd_api_start(struct dlvm_ctx *ctx, const char *path, struct dlvmd_api **out,
		    struct dlvm_err *err);

/* Go on with the flattens that the previous run (or a CLI without dlvmd)
 * left unfinished: clones marked DLVM_LV_FLATTEN. Each runs as
 * `lvconvert --flatten -b` would; the outcome goes to the log. */
void dlvmd_api_resume_jobs(struct dlvmd_api *api);

/* Stop accepting, wait for running requests, close and remove the socket. */
void dlvmd_api_stop(struct dlvmd_api *api);

/* HTTP status for a negative errno returned by a command. */
unsigned dlvmd_api_status(int code);

#endif
