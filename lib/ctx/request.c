/* SPDX-License-Identifier: MIT */
/* A command's request and response: options, arguments, messages. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "dlvm/thinpool.h"
#include "dlvm/util.h"
#include "lib/ctx/ctx.h"

/* ---- helpers shared by the commands ---- */

const char *opt_str(json_t *opts, const char *key)
{
	json_t *v = json_object_get(opts, key);
	if (json_is_array(v))
		v = json_array_get(v, json_array_size(v) - 1);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

bool opt_flag(json_t *opts, const char *key)
{
	return json_is_true(json_object_get(opts, key));
}

const char *arg_str(json_t *args, size_t i)
{
	json_t *v = json_array_get(args, i);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void resp_add(json_t *resp, const char *key, const char *fmt, va_list ap)
{
	char buf[1024];
	json_t *a = json_object_get(resp, key);

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (!a) {
		a = json_array();
		json_object_set_new(resp, key, a);
	}
	json_array_append_new(a, json_string(buf));
}

void resp_message(json_t *resp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	resp_add(resp, "messages", fmt, ap);
	va_end(ap);
}

void resp_warning(json_t *resp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	resp_add(resp, "warnings", fmt, ap);
	va_end(ap);
}

int split_lv_path(const char *path, char *vg, char *lv, struct dlvm_err *err)
{
	const char *p = path;

	if (!strncmp(p, "/dev/", 5))
		p += 5;
	const char *slash = strchr(p, '/');
	if (!slash || slash == p || !slash[1] || strchr(slash + 1, '/'))
		return dlvm_err_set(err, -EINVAL, "\"%s\": expected VG/LV", path);
	size_t vl = (size_t)(slash - p);
	if (vl > DLVM_NAME_MAX || strlen(slash + 1) > DLVM_NAME_MAX)
		return dlvm_err_set(err, -EINVAL, "\"%s\": name too long", path);
	memcpy(vg, p, vl);
	vg[vl] = '\0';
	memcpy(lv, slash + 1, strlen(slash + 1) + 1);
	return 0;
}
