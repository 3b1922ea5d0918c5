/* SPDX-License-Identifier: MIT */
/*
 * Where a command runs: in dlvmd, over HTTP on its Unix socket, or in this
 * process on an offline context when no daemon listens.
 *
 * The HTTP client is this file's few lines rather than libcurl: linking
 * libcurl (and the TLS, LDAP and SSH libraries it brings) costs about 5 ms of
 * loader and constructor time on every run of dlvm, more than a whole
 * lvcreate in dlvmd. One POST with Content-Length and "Connection: close" on
 * a local socket needs none of it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"

#define MAX_RESPONSE (256u << 20)
#define IO_TIMEOUT_MS (600 * 1000) /* a command may run long (a big vgremove) */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until the peer closes (we asked for Connection: close). */
static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, IO_TIMEOUT_MS);
		if (pr == 0) {
			free(buf);
			return -ETIMEDOUT;
		}
		if (pr < 0 && errno != EINTR) {
			free(buf);
			return -errno;
		}
		if (n == cap) {
			if (cap >= MAX_RESPONSE) {
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			char *p = realloc(buf, cap + 1);
			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
		}
		ssize_t r = recv(fd, buf + n, cap - n, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			free(buf);
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Undo chunked transfer coding in place; -EBADMSG if malformed. */
static int unchunk(char *body, size_t len, size_t *out_len)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *end;
		unsigned long sz = strtoul(body + in, &end, 16);
		char *crlf = strstr(body + in, "\r\n");
		if (end == body + in || !crlf)
			return -EBADMSG;
		in = (size_t)(crlf - body) + 2;
		if (sz == 0)
			break;
		if (sz > len - in || len - in - sz < 2)
			return -EBADMSG;
		memmove(body + out, body + in, sz);
		out += sz;
		in += sz + 2;
	}
	body[out] = '\0';
	*out_len = out;
	return 0;
}

/* Parse status line, headers and body of a complete response. */
static int parse_response(char *buf, size_t len, long *status, char **body, size_t *body_len)
{
	char *hdr_end = strstr(buf, "\r\n\r\n");
	long clen = -1;
	bool chunked = false;

	if (!hdr_end || sscanf(buf, "HTTP/1.%*d %ld", status) != 1)
		return -EBADMSG;
	*hdr_end = '\0';
	for (char *line = strstr(buf, "\r\n"); line && line < hdr_end;
	     line = strstr(line, "\r\n")) {
		line += 2;
		if (!strncasecmp(line, "Content-Length:", 15))
			clen = strtol(line + 15, NULL, 10);
		else if (!strncasecmp(line, "Transfer-Encoding:", 18) &&
			 strcasestr(line, "chunked"))
			chunked = true;
	}
	*body = hdr_end + 4;
	*body_len = len - (size_t)(*body - buf);
	if (chunked)
		return unchunk(*body, *body_len, body_len);
	if (clen >= 0) {
		if ((size_t)clen > *body_len)
			return -EBADMSG; /* the daemon went away mid-response */
		*body_len = (size_t)clen;
		(*body)[clen] = '\0';
	}
	return 0;
}

int cli_daemon_run(const char *socket_path, const char *name, json_t *req, long *status,
		   json_t **resp, struct dlvm_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *text = NULL, *head = NULL, *buf = NULL, *body;
	size_t len = 0, body_len = 0;
	json_error_t jerr;
	int fd = -1, r;

	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return dlvm_err_set(err, -ENAMETOOLONG, "socket path %s is too long", socket_path);
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dlvm_err_set(err, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		if (r == -ENOENT || r == -ECONNREFUSED)
			return 1; /* nothing listens: the request never left */
		return dlvm_err_set(err, r, "Cannot connect to dlvmd at %s: %s", socket_path,
				    strerror(-r));
	}
	text = json_dumps(req, JSON_COMPACT);
	if (!text || asprintf(&head,
			      "POST /v1/cmd/%s HTTP/1.1\r\nHost: localhost\r\n"
			      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
			      "Connection: close\r\n\r\n",
			      name, strlen(text)) < 0) {
		head = NULL;
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if ((r = write_all(fd, head, strlen(head))) || (r = write_all(fd, text, strlen(text))) ||
	    (r = read_all(fd, &buf, &len))) {
		r = dlvm_err_set(err, r, "dlvmd at %s: %s", socket_path,
				 r == -EFBIG ? "response too large" : strerror(-r));
		goto out;
	}
	if (parse_response(buf, len, status, &body, &body_len)) {
		r = dlvm_err_set(err, -EBADMSG,
				 "dlvmd at %s: malformed or incomplete HTTP response", socket_path);
		goto out;
	}
	*resp = body_len ? json_loadb(body, body_len, 0, &jerr) : NULL;
	if (!json_is_object(*resp)) {
		json_decref(*resp);
		*resp = NULL;
		r = dlvm_err_set(err, -EBADMSG, "dlvmd at %s answered %ld without a JSON object",
				 socket_path, *status);
		goto out;
	}
	r = 0;
out:
	close(fd);
	free(text);
	free(head);
	free(buf);
	return r;
}

int cli_local_run(const struct cli_global *g, const char *name, json_t *req, json_t *resp,
		  struct dlvm_err *err)
{
	struct dlvm_ctx_opts o = { .state_dir = g->state_dir, .devices = g->devices };
	struct dlvm_ctx *ctx;
	int r;

	r = dlvm_ctx_new(&o, &ctx, err);
	if (r < 0)
		return r;
	/* dlvm_cmd_run opens and locks the devices (for this command only). */
	r = dlvm_cmd_run(ctx, name, req, resp, err);
	dlvm_ctx_free(ctx);
	return r;
}
