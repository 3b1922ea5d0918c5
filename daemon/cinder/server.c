/* SPDX-License-Identifier: MIT */
/*
 * The Cinder v3 API server: theory of operation.
 *
 * libmicrohttpd runs a thread per connection. A request's body is gathered
 * (at most 1 MiB), then the request is served in one go:
 *
 *  1. It gets an id, "req-" + a UUID, sent back in x-openstack-request-id
 *     and written in the log line that ends it.
 *  2. The URL is cut into /v3, an optional project id and the resource path
 *     (cinderclient sends /v3/PROJECT/volumes, other clients /v3/volumes).
 *     Without a project in the URL, noauth takes X-Project-Id (what
 *     cinderclient's noauth plugin sends), then the "user:project" token.
 *  3. OpenStack-API-Version: volume 3.X picks the microversion (3.0 when
 *     absent, "latest" for the highest); the reply names the one used.
 *  4. The handler runs under the context's command lock, the lock the
 *     native API's commands take (in a shared VG after reading what other
 *     hosts committed since): it reads the VG model and runs dlvm
 *     commands (lvcreate, lvchange --property, ...) that change it. Every
 *     Cinder field lives in a property of the volume's LV, so what a
 *     handler answers is what the journal holds: another dlvmd on a shared
 *     VG and this one after a restart answer the same.
 *  5. The reply is JSON; errors have Cinder's shape ({"itemNotFound":
 *     {"code": 404, "message": ...}}).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/cinder/cinder_int.h"
#include "dlvm/log.h"
#include "dlvm/util.h"

#define MAX_BODY (1u << 20)

struct dlvmd_cinder {
	struct cn_server srv;
};

struct cn_conn {
	char *body;
	size_t len, cap;
	bool too_large;
};

/* ---- replies ---- */

static const char *error_name(unsigned status)
{
	switch (status) {
	case 400: return "badRequest";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "itemNotFound";
	case 405: return "badMethod";
	case 409: return "conflictingRequest";
	case 413: return "overLimit";
	case 415: return "badMediaType";
	case 501: return "notImplemented";
	case 503: return "serviceUnavailable";
	default: return "computeFault";
	}
}

void cn_error(struct cn_req *rq, unsigned status, const char *fmt, ...)
{
	char msg[DLVM_ERR_MSG_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *m = json_string(msg);
	if (!m) /* not UTF-8: the message quotes bytes a client sent */
		m = json_string("invalid UTF-8 in the message");
	cn_reply(rq, status,
		 json_pack("{s:{s:i,s:o}}", error_name(status), "code", (int)status, "message", m));
}

void cn_reply(struct cn_req *rq, unsigned status, json_t *body)
{
	json_decref(rq->reply);
	rq->status = status;
	rq->reply = body;
}

unsigned cn_status_of(int r)
{
	switch (-r) {
	case EINVAL:
	case ERANGE:
	case ENOSPC:
	case EPERM:
	case EROFS: return 400;
	case ENOENT: return 404;
	/* another host holds the volume, a clone reads through a snapshot */
	case EBUSY:
	case EEXIST: return 409;
	default: return 500;
	}
}

const char *cn_arg(struct cn_req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

void cn_now(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%06ld", ts.tv_nsec / 1000);
}

void cn_uuid(char out[CN_ID_LEN + 1])
{
	uint8_t u[16];

	dlvm_uuid_generate(u);
	dlvm_uuid_unparse(u, out);
}

json_t *cn_body_object(struct cn_req *rq, const char *name)
{
	json_t *o = rq->body ? json_object_get(rq->body, name) : NULL;

	if (!rq->body)
		cn_error(rq, 400, "Missing request body: a JSON object with \"%s\" is needed.",
			 name);
	else if (!o)
		cn_error(rq, 400, "Missing required element '%s' in request body.", name);
	else if (!json_is_object(o))
		cn_error(rq, 400, "Invalid input: '%s' must be an object.", name);
	else
		return o;
	return NULL;
}

/* ---- routing ---- */

/* Collections the API knows: a first segment that is none of them is a
 * project id. */
static bool is_collection(const char *s)
{
	static const char *const known[] = {
		"volumes",    "snapshots", "attachments",     "types",
		"extensions", "limits",    "os-services",     "os-quota-sets",
		"backups",    "messages",  "scheduler-stats", "os-availability-zone",
		NULL
	};
	for (unsigned i = 0; known[i]; i++)
		if (!strcmp(s, known[i]))
			return true;
	return false;
}

/* The project from the X-Project-Id header or the noauth token
 * "user:project"; the user from X-User-Id or the token. */
static void noauth_identity(struct cn_req *rq)
{
	const char *p = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Project-Id");
	const char *u = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-User-Id");
	const char *tok = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Auth-Token");
	const char *colon = tok ? strchr(tok, ':') : NULL;

	if (u)
		snprintf(rq->user, sizeof(rq->user), "%s", u);
	else if (colon)
		snprintf(rq->user, sizeof(rq->user), "%.*s", (int)(colon - tok), tok);
	else
		snprintf(rq->user, sizeof(rq->user), "admin");
	if (!rq->project[0]) {
		if (p)
			snprintf(rq->project, sizeof(rq->project), "%s", p);
		else if (colon)
			snprintf(rq->project, sizeof(rq->project), "%s", colon + 1);
		else
			snprintf(rq->project, sizeof(rq->project), "admin");
	}
}

/* A project or user id: printable ASCII, no space (they are written in
 * properties and links). */
static bool ident_ok(const char *s)
{
	if (!*s || strlen(s) > CN_TEXT_MAX)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s > '~')
			return false;
	return true;
}

/* Cut path (a copy the request owns) after "/v3/" into segments; the
 * first one is the project unless it is a collection. */
static void split_path(struct cn_req *rq, char *path)
{
	char *s = path, *slash;

	while (*s && rq->nseg < DLVM_ARRAY_SIZE(rq->seg)) {
		if ((slash = strchr(s, '/')))
			*slash = '\0';
		if (*s)
			rq->seg[rq->nseg++] = s;
		if (!slash)
			break;
		s = slash + 1;
	}
	if (rq->nseg && !is_collection(rq->seg[0])) {
		snprintf(rq->project, sizeof(rq->project), "%s", rq->seg[0]);
		memmove(&rq->seg[0], &rq->seg[1], --rq->nseg * sizeof(rq->seg[0]));
	}
}

static void route(struct cn_req *rq)
{
	const char *c = rq->nseg ? rq->seg[0] : "";

	if (!rq->nseg && !strcmp(rq->method, "GET"))
		cn_versions(rq, false);
	else if (!strcmp(c, "volumes"))
		cn_volumes(rq);
	else if (!strcmp(c, "snapshots"))
		cn_snapshots(rq);
	else if (!strcmp(c, "attachments"))
		cn_attachments(rq);
	else if (!strcmp(c, "types"))
		cn_types(rq);
	else if (!strcmp(c, "limits"))
		cn_limits(rq);
	else if (!strcmp(c, "extensions") || !strcmp(c, "os-availability-zone"))
		cn_small_docs(rq);
	else
		cn_error(rq, 404, "The resource could not be found.");
}

/* The body parsed: an object, or a 400 reply. */
static bool parse_body(struct cn_req *rq, const struct cn_conn *cc)
{
	json_error_t jerr;

	if (!cc->len)
		return true;
	rq->body = json_loadb(cc->body, cc->len, 0, &jerr);
	if (!rq->body) {
		cn_error(rq, 400, "Malformed request body: %s (line %d, column %d)", jerr.text,
			 jerr.line, jerr.column);
		return false;
	}
	if (!json_is_object(rq->body)) {
		cn_error(rq, 400, "Malformed request body: a JSON object is expected");
		return false;
	}
	return true;
}

static void fill_base(struct cn_req *rq)
{
	const char *host = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Host");

	snprintf(rq->base, sizeof(rq->base), "http://%s/v3/%s", host ? host : "localhost",
		 rq->project);
}

/* Serve a request whose body has arrived; fills rq's reply. */
static void serve(struct cn_server *srv, struct cn_req *rq, const char *url,
		  const struct cn_conn *cc)
{
	char path[2048];

	if (cc->too_large) {
		cn_error(rq, 413, "Request body larger than 1 MiB");
		return;
	}
	if (!strcmp(url, "/") || !strcmp(url, "")) {
		cn_versions(rq, true);
		return;
	}
	if (strncmp(url, "/v3", 3) || (url[3] && url[3] != '/')) {
		cn_error(rq, 404, "The resource could not be found.");
		return;
	}
	snprintf(path, sizeof(path), "%s", url[3] ? url + 4 : "");
	split_path(rq, path);
	noauth_identity(rq);
	if (!ident_ok(rq->project) || !ident_ok(rq->user)) {
		cn_error(rq, 400,
			 "Invalid project or user id: 1 to 255 printable ASCII "
			 "characters are expected.");
		return;
	}
	fill_base(rq);
	const char *at = cn_arg(rq, "all_tenants");
	rq->all_projects = at && (!strcmp(at, "1") || !strcasecmp(at, "true"));
	if (!cn_microversion(rq) || !parse_body(rq, cc))
		return;
	pthread_mutex_lock(srv->lock);
	/* a shared VG: what other hosts committed first (two small reads when
	 * nothing changed), so that every host answers the same */
	if (cn_shared(rq) && dlvm_ctx_host_id(srv->ctx))
		dlvm_ctx_refresh(srv->ctx);
	route(rq);
	pthread_mutex_unlock(srv->lock);
}

static enum MHD_Result send_reply(struct cn_req *rq)
{
	char *text = NULL;
	char ver[32];
	struct MHD_Response *resp;

	if (rq->reply && !(text = json_dumps(rq->reply, JSON_COMPACT | JSON_PRESERVE_ORDER)))
		return MHD_NO;
	resp = MHD_create_response_from_buffer(text ? strlen(text) : 0, text ? text : (char *)"",
					       text ? MHD_RESPMEM_MUST_FREE
						    : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	if (text)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	snprintf(ver, sizeof(ver), "volume 3.%u", rq->mv);
	MHD_add_response_header(resp, "OpenStack-API-Version", ver);
	MHD_add_response_header(resp, "Vary", "OpenStack-API-Version");
	MHD_add_response_header(resp, "x-openstack-request-id", rq->id);
	enum MHD_Result ret = MHD_queue_response(rq->conn, rq->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result gather(struct cn_conn *cc, const char *data, size_t *size)
{
	size_t n = *size;

	*size = 0;
	if (cc->too_large || cc->len + n > MAX_BODY) {
		cc->too_large = true; /* the rest is dropped; answered at the end */
		return MHD_YES;
	}
	if (cc->len + n > cc->cap) {
		size_t cap = cc->cap ? cc->cap : 4096;
		while (cap < cc->len + n)
			cap *= 2;
		char *p = realloc(cc->body, cap);
		if (!p)
			return MHD_NO;
		cc->body = p;
		cc->cap = cap;
	}
	memcpy(cc->body + cc->len, data, n);
	cc->len += n;
	return MHD_YES;
}

/* The log line of a request: its id, method, path and status, and the
 * message of an error. */
static void log_request(const struct cn_req *rq, const char *url)
{
	void *it = rq->status >= 400 && rq->reply ? json_object_iter(rq->reply) : NULL;
	const char *msg = it ? json_string_value(json_object_get(json_object_iter_value(it),
								 "message"))
			     : NULL;

	if (rq->status >= 500)
		log_error(DLVM_LOG_API, "cinder %s: %s %s: %u %s", rq->id, rq->method, url,
			  rq->status, msg ? msg : "");
	else
		log_info(DLVM_LOG_API, "cinder %s: %s %s: %u%s%s", rq->id, rq->method, url,
			 rq->status, msg ? " " : "", msg ? msg : "");
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct cn_server *srv = cls;
	struct cn_conn *cc = *con_cls;

	(void)version;
	if (!cc) {
		if (!(cc = calloc(1, sizeof(*cc))))
			return MHD_NO;
		*con_cls = cc;
		return MHD_YES;
	}
	if (*upload_size)
		return gather(cc, upload, upload_size);

	struct cn_req rq = { .srv = srv, .conn = conn, .method = method, .status = 500 };
	char u[CN_ID_LEN + 1];
	cn_uuid(u);
	snprintf(rq.id, sizeof(rq.id), "req-%s", u);
	serve(srv, &rq, url, cc);
	if (!rq.reply && rq.status == 500)
		cn_error(&rq, 500,
			 "The server has either erred or is incapable of performing the "
			 "requested operation.");
	log_request(&rq, url);
	enum MHD_Result ret = send_reply(&rq);
	json_decref(rq.body);
	json_decref(rq.reply);
	return ret;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct cn_conn *cc = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (cc) {
		free(cc->body);
		free(cc);
		*con_cls = NULL;
	}
}

/* ---- start and stop ---- */

/* "HOST:PORT" or "[V6]:PORT" into host and port. */
static int split_hostport(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(s, ':');

	if (!colon || !colon[1] || strlen(colon + 1) >= plen)
		return -EINVAL;
	size_t n = (size_t)(colon - s);
	if (n && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (!n || n >= hlen)
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/* A listening TCP socket on addr; loopback tells whether it is one. */
static int tcp_listen(const char *addr, bool *loopback, int *fd_out, struct dlvm_err *err)
{
	char host[256], port[16];
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV },
			*ai = NULL;
	int fd, one = 1, r;

	if (split_hostport(addr, host, sizeof(host), port, sizeof(port)))
		return dlvm_err_set(err, -EINVAL, "cinder: listen address '%s' is not HOST:PORT",
				    addr);
	if ((r = getaddrinfo(host, port, &hints, &ai)))
		return dlvm_err_set(err, -EINVAL, "cinder: listen address '%s': %s", addr,
				    gai_strerror(r));
	*loopback = is_loopback(ai->ai_addr);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64)) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return dlvm_err_set(err, r, "cinder: cannot listen on %s: %s", addr, strerror(-r));
	}
	freeaddrinfo(ai);
	*fd_out = fd;
	return 0;
}

/* The pool "VG/POOL" and the NBD endpoints into srv. */
static int server_fill(struct cn_server *srv, const struct dlvmd_cinder_opts *o,
		       struct dlvm_err *err)
{
	const char *slash = o->pool ? strchr(o->pool, '/') : NULL;
	char port[16];

	if (!slash || slash == o->pool || !slash[1] || (size_t)(slash - o->pool) > DLVM_NAME_MAX ||
	    strlen(slash + 1) > DLVM_NAME_MAX)
		return dlvm_err_set(err, -EINVAL, "cinder: --cinder-pool '%s' is not VG/POOL",
				    o->pool ? o->pool : "");
	snprintf(srv->vg, sizeof(srv->vg), "%.*s", (int)(slash - o->pool), o->pool);
	snprintf(srv->pool, sizeof(srv->pool), "%s", slash + 1);
	snprintf(srv->type_name, sizeof(srv->type_name), "%s", o->type_name);
	snprintf(srv->nbd_socket, sizeof(srv->nbd_socket), "%s", o->nbd_socket);
	snprintf(srv->nbd_tls, sizeof(srv->nbd_tls), "%s", o->nbd_tls ? o->nbd_tls : "off");
	if (o->nbd_listen && !split_hostport(o->nbd_listen, srv->nbd_host, sizeof(srv->nbd_host),
					     port, sizeof(port)))
		srv->nbd_port = (unsigned)strtoul(port, NULL, 10);
	if (gethostname(srv->host, sizeof(srv->host) - 1))
		snprintf(srv->host, sizeof(srv->host), "localhost");
	return 0;
}

int dlvmd_cinder_start(struct dlvm_ctx *ctx, const struct dlvmd_cinder_opts *o,
		       struct dlvmd_cinder **out, struct dlvm_err *err)
{
	struct dlvmd_cinder *c = calloc(1, sizeof(*c));
	bool loopback = false;
	int fd = -1, r;

	if (!c)
		return dlvm_err_set(err, -ENOMEM, "out of memory");
	c->srv.ctx = ctx;
	c->srv.lock = dlvm_ctx_cmd_lock(ctx);
	if (!c->srv.lock) {
		r = dlvm_err_set(err, -EINVAL, "cinder: the command lock is not set");
		goto fail;
	}
	if ((r = server_fill(&c->srv, o, err)) || (r = tcp_listen(o->listen, &loopback, &fd, err)))
		goto fail;
	if (!loopback && !strcmp(o->auth, "noauth") && !o->noauth_network) {
		close(fd);
		r = dlvm_err_set(err, -EPERM,
				 "cinder: %s is not a loopback address: noauth would let anyone "
				 "who reaches it manage every volume (set cinder_noauth_network "
				 "= yes to allow it)",
				 o->listen);
		goto fail;
	}
	c->srv.mhd = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
						      MHD_USE_ERROR_LOG,
				      0, NULL, NULL, access_cb, &c->srv, MHD_OPTION_LISTEN_SOCKET,
				      (MHD_socket)fd, MHD_OPTION_NOTIFY_COMPLETED, completed_cb,
				      NULL, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (!c->srv.mhd) {
		close(fd);
		r = dlvm_err_set(err, -EIO, "cinder: %s: cannot start the HTTP server", o->listen);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	free(c);
	return r;
}

void dlvmd_cinder_stop(struct dlvmd_cinder *c)
{
	if (!c)
		return;
	MHD_stop_daemon(c->srv.mhd);
	free(c);
}
