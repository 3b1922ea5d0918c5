/* SPDX-License-Identifier: MIT */
/*
 * Fuzz command requests: dlvm_cmd_run on a context with no devices, fed a
 * request built from the input, so that option checks, name and size
 * parsing and every command's argument handling see arbitrary values.
 * Commands that open a device by path (pvcreate, pvremove, vgcreate,
 * vgextend, dump) are left out: a fuzzed path must not reach the machine's
 * files. Nothing may crash or leak; a refusal must say why.
 *
 * Input: byte 0 picks the command (bit 7: the rest is the request's JSON
 * text as it is); otherwise the rest is NUL-separated tokens: "-KEY" a flag,
 * "-KEY=VALUE" an option (repeated: an array), "-KEY:JSON" an option with a
 * value of any JSON type, anything else an argument.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dlvm/cmd.h"
#include "dlvm/err.h"

static const char *const skipped[] = {
	"pvcreate", "pvremove", "vgcreate", "vgextend", "dump", NULL
};

static bool allowed(const char *name)
{
	for (size_t i = 0; skipped[i]; i++)
		if (!strcmp(name, skipped[i]))
			return false;
	return true;
}

static void add_opt(json_t *opts, const char *key, json_t *v)
{
	json_t *old = json_object_get(opts, key);

	if (!v)
		return;
	if (json_is_string(old) && json_is_string(v)) {
		json_t *a = json_array();
		json_array_append(a, old);
		json_array_append_new(a, v);
		json_object_set_new(opts, key, a);
	} else if (json_is_array(old) && json_is_string(v)) {
		json_array_append_new(old, v);
	} else {
		json_object_set_new(opts, key, v);
	}
}

static json_t *build(const uint8_t *data, size_t size)
{
	json_t *req = json_object(), *opts = json_object(), *args = json_array();
	char *text = malloc(size + 1), *tok;

	if (!text)
		return req;
	memcpy(text, data, size);
	text[size] = '\0';
	for (tok = text; tok < text + size; tok += strlen(tok) + 1) {
		if (tok[0] != '-' || !tok[1]) {
			json_array_append_new(args, json_string(tok));
			continue;
		}
		char *key = tok + 1, *sep = key + strcspn(key, "=:");
		char kind = *sep;
		*sep = '\0';
		if (kind == '=')
			add_opt(opts, key, json_string(sep + 1));
		else if (kind == ':')
			add_opt(opts, key, json_loads(sep + 1, JSON_DECODE_ANY, NULL));
		else
			add_opt(opts, key, json_true());
	}
	free(text);
	json_object_set_new(req, "opts", opts);
	json_object_set_new(req, "args", args);
	return req;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t ncmd = 0;
	struct dlvm_ctx_opts o = { .devices = NULL };
	struct dlvm_ctx *ctx = NULL;
	struct dlvm_err e = { 0 };

	if (size < 1)
		return 0;
	while (dlvm_commands[ncmd].name)
		ncmd++;
	const char *name = dlvm_commands[(data[0] & 0x7f) % ncmd].name;
	if (!allowed(name))
		return 0;
	json_t *req = data[0] & 0x80 ? json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY,
						  NULL)
				     : build(data + 1, size - 1);
	json_t *resp = json_object();
	if (!dlvm_ctx_new(&o, &ctx, &e)) {
		int r = dlvm_cmd_run(ctx, name, req, resp, &e);
		if (r && (e.code != r || !e.msg[0]))
			abort(); /* a refusal names its reason, with the code returned */
		dlvm_ctx_free(ctx);
	}
	json_decref(resp);
	json_decref(req);
	return 0;
}
