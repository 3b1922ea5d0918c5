/* SPDX-License-Identifier: MIT */
/*
 * Where a command runs: in dlvmd, over HTTP on its Unix socket (libcurl), or
 * in this process on an offline context when no daemon listens.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

struct body_buf {
	char *data;
	size_t len;
	bool too_large;
};

#define MAX_RESPONSE (256u << 20)

static size_t collect(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct body_buf *b = user;
	size_t n = size * nmemb;
	char *p;

	if (b->len + n > MAX_RESPONSE) {
		b->too_large = true;
		return 0;
	}
	p = realloc(b->data, b->len + n + 1);
	if (!p)
		return 0;
	memcpy(p + b->len, ptr, n);
	b->len += n;
	p[b->len] = '\0';
	b->data = p;
	return n;
}

int cli_daemon_run(const char *socket, const char *name, json_t *req, long *status,
		   json_t **resp, struct dlvm_err *err)
{
	struct curl_slist *hdrs = NULL;
	struct body_buf body = {0};
	json_error_t jerr;
	char url[256], *text;
	long os_errno = 0;
	CURLcode cc;
	CURL *c;
	int r;

	text = json_dumps(req, JSON_COMPACT);
	c = curl_easy_init();
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (!text || !c || !hdrs) {
		r = dlvm_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "http://localhost/v1/cmd/%s", name);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);

	cc = curl_easy_perform(c);
	if (cc == CURLE_COULDNT_CONNECT) {
		curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
		if (os_errno == ENOENT || os_errno == ECONNREFUSED) {
			r = 1; /* nothing listens: the request never left */
			goto out;
		}
		r = dlvm_err_set(err, -(os_errno ? (int)os_errno : ECONNREFUSED),
				 "Cannot connect to dlvmd at %s: %s", socket,
				 os_errno ? strerror((int)os_errno) : curl_easy_strerror(cc));
		goto out;
	}
	if (cc != CURLE_OK) {
		r = dlvm_err_set(err, body.too_large ? -EFBIG : -EIO, "dlvmd at %s: %s", socket,
				 body.too_large ? "response too large" : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	*resp = body.len ? json_loadb(body.data, body.len, 0, &jerr) : NULL;
	if (!json_is_object(*resp)) {
		json_decref(*resp);
		*resp = NULL;
		r = dlvm_err_set(err, -EBADMSG, "dlvmd at %s answered %ld without a JSON object",
				 socket, *status);
		goto out;
	}
	r = 0;
out:
	curl_slist_free_all(hdrs);
	if (c)
		curl_easy_cleanup(c);
	free(text);
	free(body.data);
	return r;
}

int cli_local_run(const struct cli_global *g, const char *name, json_t *req, json_t *resp,
		  struct dlvm_err *err)
{
	struct dlvm_ctx ctx = {0};
	int r;

	r = dlvm_ctx_init(&ctx, g->state_dir, g->devices, false, err);
	if (r < 0)
		return r;
	/* dlvm_cmd_run opens and locks the devices (for this command only). */
	r = dlvm_cmd_run(&ctx, name, req, resp, err);
	dlvm_ctx_release(&ctx);
	return r;
}
