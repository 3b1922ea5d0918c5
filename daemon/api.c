/* SPDX-License-Identifier: MIT */
#include "daemon/api.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/log.h"
#include "dlvm/vg.h"

#define CMD_PREFIX "/v1/cmd/"

struct dlvmd_api {
	struct dlvm_ctx *ctx;
	pthread_mutex_t lock; /* serializes commands */
	struct MHD_Daemon *mhd;
	char *path;
	struct dlvm_agent *agent; /* refreshes shared VGs between commands */
};

/* State of one request while its body arrives. */
struct api_req {
	char *body;
	size_t len, cap;
	bool too_large;
};

unsigned dlvmd_api_status(int code)
{
	switch (-code) {
	/* what the request asked for is wrong: a name, a size, a path that
	 * is a directory or holds no PV */
	case EINVAL:
	case ERANGE:
	case EOVERFLOW:
	case ENAMETOOLONG:
	case EISDIR:
	case ENOTDIR:
	case ENODATA:
	case EILSEQ: return MHD_HTTP_BAD_REQUEST;
	/* refused by a permission: a read-only LV, VG or device */
	case EPERM:
	case EACCES:
	case EROFS: return MHD_HTTP_FORBIDDEN;
	case ENOENT: return MHD_HTTP_NOT_FOUND;
	case EEXIST:
	case EBUSY: return MHD_HTTP_CONFLICT;
	case ENOSPC: return MHD_HTTP_INSUFFICIENT_STORAGE;
	case ENOTSUP: return MHD_HTTP_NOT_IMPLEMENTED;
	default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

/* The status of the last reply of this thread (one thread per connection),
 * for the debug line of the request. */
static _Thread_local unsigned reply_status;

/* Send `body` (consumed) as JSON with `status`. */
static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, json_t *body)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *text;

	reply_status = status;

	text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(body);
	if (!text)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/*
 * The length of the well-formed UTF-8 sequence at p (RFC 3629, table 3-7 of
 * Unicode), or 0: no overlong form (C0, C1, E0 80..9F, F0 80..8F), no
 * surrogate (ED A0..BF), nothing above U+10FFFF (F4 90.., F5..FF), no
 * continuation byte out of place. jansson refuses what this refuses.
 */
static unsigned utf8_len(const unsigned char *p)
{
	unsigned n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (*p < 0x80)
		return 1;
	if (*p >= 0xc2 && *p <= 0xdf)
		n = 2;
	else if (*p >= 0xe0 && *p <= 0xef)
		n = 3;
	else if (*p >= 0xf0 && *p <= 0xf4)
		n = 4;
	else
		return 0;
	if (*p == 0xe0)
		lo = 0xa0;
	else if (*p == 0xed)
		hi = 0x9f;
	else if (*p == 0xf0)
		lo = 0x90;
	else if (*p == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (unsigned k = 2; k < n; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	return n;
}

static bool utf8_valid(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		unsigned n = utf8_len(p);
		if (!n)
			return false;
		p += n;
	}
	return true;
}

/* msg with every byte that does not start a well-formed UTF-8 sequence as
 * '?': an error may quote a name the command refused for its bytes, and
 * JSON (jansson) takes only UTF-8. */
static void utf8_clean(const char *msg, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)msg;
	size_t o = 0;

	while (*p && o + 5 < cap) {
		unsigned n = utf8_len(p);
		if (!n) {
			out[o++] = '?';
			p++;
			continue;
		}
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = 0;
}

/* An error body; warnings and messages are taken from `from` when given. */

static json_t *error_body(int code, const char *msg, json_t *from)
{
	json_t *body, *w, *m;
	const char *name;
	char clean[DLVM_ERR_MSG_MAX + 8];

	if (msg && *msg) {
		utf8_clean(msg, clean, sizeof(clean));
		msg = clean;
	}
	name = dlvm_errno_name(code);
	if (!strcmp(name, "EUNKNOWN") && strerrorname_np(-code))
		name = strerrorname_np(-code);
	body = json_pack("{s:{s:s,s:i,s:s}}", "error", "code", name, "errno", -code, "message",
			 msg && *msg ? msg : strerror(-code));
	if (!body) /* never a closed connection for a message it cannot quote */
		body = json_pack("{s:{s:s,s:i,s:s}}", "error", "code", name, "errno", -code,
				 "message", strerror(-code));
	if (!body)
		return NULL;
	w = from ? json_object_get(from, "warnings") : NULL;
	json_object_set_new(body, "warnings", json_is_array(w) ? json_copy(w) : json_array());
	m = from ? json_object_get(from, "messages") : NULL;
	if (json_is_array(m))
		json_object_set(body, "messages", m);
	return body;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, int code,
				   const char *msg)
{
	json_t *body = error_body(code, msg, NULL);

	return body ? reply_json(conn, status, body) : MHD_NO;
}

static void log_result(const char *name, int r, const struct dlvm_err *err, json_t *resp)
{
	json_t *v;
	size_t i;

	if (r < 0) {
		log_error(DLVM_LOG_API, "%s: failed: %s", name,
			  *err->msg ? err->msg : strerror(-r));
		return;
	}
	json_array_foreach(json_object_get(resp, "messages"), i, v) if (json_is_string(v))
			log_info(DLVM_LOG_API, "%s: %s", name, json_string_value(v));
}

void dlvmd_api_resume_jobs(struct dlvmd_api *api)
{
	struct dlvm_ctx *ctx = api->ctx;
	json_t *names = json_array();

	if (!names)
		return;
	pthread_mutex_lock(&api->lock);
	/* the names first: each command may change the VGs */
	for (size_t i = 0; i < dlvm_ctx_vg_count(ctx); i++) {
		const struct dlvm_vg *vg = dlvm_ctx_vg_at(ctx, i);
		for (size_t k = 0; k < vg->nlv; k++)
			if (vg->lvs[k]->flags & DLVM_LV_FLATTEN)
				json_array_append_new(names, json_sprintf("%s/%s", vg->info.name,
									  vg->lvs[k]->name));
	}
	size_t i;
	json_t *name;
	json_array_foreach(names, i, name)
	{
		struct dlvm_err err = { 0 };
		json_t *resp = json_object();
		json_t *req = json_pack("{s:{s:b,s:b},s:[O]}", "opts", "flatten", 1, "background",
					1, "args", name);
		const char *lv = json_string_value(name);
		int r = resp && req ? dlvm_cmd_run(ctx, "lvconvert", req, resp, &err)
				    : dlvm_err_set(&err, -ENOMEM, "out of memory");
		if (r < 0) {
			log_error(DLVM_LOG_JOBS, "%s: the flatten left unfinished cannot go on: %s",
				  lv, *err.msg ? err.msg : strerror(-r));
		} else {
			log_info(DLVM_LOG_JOBS, "%s: going on with the flatten left unfinished",
				 lv);
			log_result("lvconvert", r, &err, resp);
		}
		json_decref(req);
		json_decref(resp);
	}
	pthread_mutex_unlock(&api->lock);
	json_decref(names);
}

static enum MHD_Result handle_cmd(struct dlvmd_api *api, struct MHD_Connection *conn,
				  const char *name, struct api_req *rq)
{
	const struct dlvm_cmd_def *def;
	struct dlvm_err err = { 0 };
	json_error_t jerr;
	json_t *req, *resp;
	char msg[DLVM_ERR_MSG_MAX];
	int r;

	def = dlvm_cmd_find(name);
	if (!def) {
		snprintf(msg, sizeof(msg), "Unknown command \"%.64s\"", name);
		return reply_error(conn, MHD_HTTP_NOT_FOUND, -ENOENT, msg);
	}
	if (rq->len == 0)
		req = json_object();
	else
		req = json_loadb(rq->body, rq->len, 0, &jerr);
	if (!req) {
		snprintf(msg, sizeof(msg), "Invalid JSON in request body (line %d, column %d): %s",
			 jerr.line, jerr.column, jerr.text);
		return reply_error(conn, MHD_HTTP_BAD_REQUEST, -EINVAL, msg);
	}
	if (!json_is_object(req)) {
		json_decref(req);
		return reply_error(conn, MHD_HTTP_BAD_REQUEST, -EINVAL,
				   "Request body must be a JSON object");
	}
	resp = json_object();
	if (!resp) {
		json_decref(req);
		return MHD_NO;
	}

	pthread_mutex_lock(&api->lock);
	r = dlvm_cmd_run(api->ctx, name, req, resp, &err);
	pthread_mutex_unlock(&api->lock);
	json_decref(req);

	if (def->flags & DLVM_CMD_MUTATES || r < 0)
		log_result(name, r, &err, resp);
	if (r < 0) {
		json_t *body = error_body(r, err.msg, resp);

		json_decref(resp);
		return body ? reply_json(conn, dlvmd_api_status(r), body) : MHD_NO;
	}
	return reply_json(conn, MHD_HTTP_OK, resp);
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* Percent-decoding of the URL, in place, that leaves "%00" as it is: a NUL
 * would cut the command name short ("/v1/cmd/lvs%00x" is not lvs). */
static size_t url_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *w = s;

	(void)cls;
	(void)conn;
	for (const char *r = s; *r;) {
		int hi = r[0] == '%' ? hex_digit(r[1]) : -1;
		int lo = hi >= 0 ? hex_digit(r[2]) : -1;
		if (lo >= 0 && (hi | lo)) {
			*w++ = (char)(hi << 4 | lo);
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = 0;
	return (size_t)(w - s);
}

static enum MHD_Result handle_health(struct MHD_Connection *conn)
{
	json_t *body = json_pack("{s:s,s:i}", "status", "ok", "pid", (int)getpid());

	return body ? reply_json(conn, MHD_HTTP_OK, body) : MHD_NO;
}

/* One line of the ring as JSON. */
static void log_entry_json(void *arg, const struct dlvm_log_entry *e)
{
	char clean[DLVM_LOG_LINE_MAX + 8], when[48];
	struct tm tm;
	size_t n;

	utf8_clean(e->line, clean, sizeof(clean));
	gmtime_r(&e->time.tv_sec, &tm);
	n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", e->time.tv_nsec / 1000000);
	json_array_append_new(arg,
			      json_pack("{s:I,s:s,s:s,s:s,s:s}", "seq", (json_int_t)e->seq, "time",
					when, "level", dlvm_log_level_name(e->level), "subsystem",
					dlvm_log_sub_name(e->sub), "message", clean));
}

/* GET /v1/log[?since=SEQ][&level=LEVEL] */
static enum MHD_Result handle_log(struct MHD_Connection *conn)
{
	const char *since = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
	const char *level = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "level");
	struct dlvm_log_ring *ring = dlvmd_log_ring();
	enum dlvm_log_level max = DLVM_LOG_DEBUG;
	unsigned long long after = 0;
	char msg[160], *end;
	json_t *lines;
	uint64_t last;

	if (since) {
		errno = 0;
		after = strtoull(since, &end, 10);
		if (!*since || *end || errno || *since == '-') {
			snprintf(msg, sizeof(msg), "since=%.32s: not a sequence number", since);
			return reply_error(conn, MHD_HTTP_BAD_REQUEST, -EINVAL, msg);
		}
	}
	if (level && dlvm_log_level_parse(level, &max) < 0) {
		snprintf(msg, sizeof(msg), "level=%.32s: not one of error, warning, info, debug",
			 level);
		return reply_error(conn, MHD_HTTP_BAD_REQUEST, -EINVAL, msg);
	}
	if (!ring)
		return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, -ENOMEM,
				   "the log ring could not be allocated");
	lines = json_array();
	if (!lines)
		return MHD_NO;
	last = dlvm_log_ring_read(ring, after, max, log_entry_json, lines);
	return reply_json(conn, MHD_HTTP_OK,
			  json_pack("{s:o,s:I}", "lines", lines, "last", (json_int_t)last));
}

/* A request whose body has arrived: to its handler. */
static enum MHD_Result api_route(struct dlvmd_api *api, struct MHD_Connection *conn,
				 const char *url, const char *method, struct api_req *rq)
{
	bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);

	if (rq->too_large)
		return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, -EFBIG,
				   "Request body larger than 1 MiB");
	/* names in the URL are text: bytes that are not (an overlong form, a
	 * surrogate) name nothing, and JSON cannot quote them */
	if (!utf8_valid(url))
		return reply_error(conn, MHD_HTTP_BAD_REQUEST, -EILSEQ,
				   "The URL is not valid UTF-8 once percent-decoded");

	if (!strcmp(url, "/v1/health")) {
		if (!get)
			return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, -EINVAL,
					   "/v1/health accepts only GET");
		return handle_health(conn);
	}
	if (!strcmp(url, "/v1/log")) {
		if (!get)
			return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, -EINVAL,
					   "/v1/log accepts only GET");
		return handle_log(conn);
	}
	if (!strncmp(url, CMD_PREFIX, strlen(CMD_PREFIX)) && url[strlen(CMD_PREFIX)]) {
		if (!post)
			return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, -EINVAL,
					   "/v1/cmd/ accepts only POST");
		return handle_cmd(api, conn, url + strlen(CMD_PREFIX), rq);
	}
	return reply_error(conn, MHD_HTTP_NOT_FOUND, -ENOENT, "No such API endpoint");
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct dlvmd_api *api = cls;
	struct api_req *rq = *con_cls;

	(void)version;
	if (!rq) {
		const char *clen;

		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						   MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (clen && strtoull(clen, NULL, 10) > DLVMD_API_MAX_BODY) {
			rq->too_large = true;
			return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, -EFBIG,
					   "Request body larger than 1 MiB");
		}
		return MHD_YES;
	}

	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (rq->too_large || rq->len + n > DLVMD_API_MAX_BODY) {
			rq->too_large = true; /* discard the rest, answer at the end */
			return MHD_YES;
		}
		if (rq->len + n > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 4096;
			char *p;

			while (cap < rq->len + n)
				cap *= 2;
			p = realloc(rq->body, cap);
			if (!p)
				return MHD_NO;
			rq->body = p;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload_data, n);
		rq->len += n;
		return MHD_YES;
	}

	reply_status = 0;
	enum MHD_Result ret = api_route(api, conn, url, method, rq);
	log_debug(DLVM_LOG_API, "%s %s: %u", method, url, reply_status);
	return ret;
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct api_req *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

/* libmicrohttpd's own error lines go through the log like every other
 * (escaped: they may quote what a client sent), without their newline. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[DLVM_LOG_LINE_MAX];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_warning(DLVM_LOG_API, "http: %s", line);
}

int dlvmd_api_start(struct dlvm_ctx *ctx, const char *path, struct dlvmd_api **out,
		    struct dlvm_err *err)
{
	struct dlvmd_api *api;
	int fd, r;

	api = calloc(1, sizeof(*api));
	if (!api)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	api->ctx = ctx;
	pthread_mutex_init(&api->lock, NULL);
	dlvm_ctx_set_cmd_lock(ctx, &api->lock); /* commands run under it; jobs take it */
	api->path = strdup(path);
	if (!api->path) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = dlvm_unix_listen(path, 64, 0, DLVM_SOCKET_GROUP, &fd, err);
	if (r < 0)
		goto fail;
	/* poll(), not select(): dlvmd may hold more than FD_SETSIZE fds. */
	api->mhd = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
						    MHD_USE_ERROR_LOG,
				    0, NULL, NULL, api_access, api, MHD_OPTION_LISTEN_SOCKET,
				    (MHD_socket)fd, MHD_OPTION_NOTIFY_COMPLETED, api_completed, api,
				    MHD_OPTION_UNESCAPE_CALLBACK, url_unescape, NULL,
				    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				    /* an idle connection holds a thread */
				    MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (!api->mhd) {
		close(fd);
		dlvm_unix_unlink(path);
		r = dlvm_err_set(err, -EIO, "%s: cannot start the HTTP server", path);
		goto fail;
	}
	if ((r = dlvm_agent_start(ctx, &api->agent, err))) {
		MHD_stop_daemon(api->mhd);
		dlvm_unix_unlink(path);
		goto fail;
	}
	*out = api;
	return 0;
fail:
	dlvm_ctx_set_cmd_lock(ctx, NULL);
	pthread_mutex_destroy(&api->lock);
	free(api->path);
	free(api);
	return r;
}

void dlvmd_api_stop(struct dlvmd_api *api)
{
	if (!api)
		return;
	MHD_stop_daemon(api->mhd); /* closes the listening socket */
	dlvm_unix_unlink(api->path);
	dlvm_agent_stop(api->agent);
	/* background jobs take the command lock between their steps */
	dlvm_ctx_stop_jobs(api->ctx);
	dlvm_ctx_set_cmd_lock(api->ctx, NULL);
	pthread_mutex_destroy(&api->lock);
	free(api->path);
	free(api);
}
