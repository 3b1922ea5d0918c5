/* SPDX-License-Identifier: MIT */
/*
 * dlvm: the command-line tool. Parses argv from the command table, runs the
 * command in dlvmd when one listens on the control socket and in-process
 * otherwise, and prints the response as LVM does.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dlvm/log.h"
#include "dlvm/util.h"

/* Arguments that name devices, from this position on: the daemon runs
 * elsewhere, so relative paths are made absolute before they are sent. */
static const struct {
	const char *cmd;
	size_t first;
} path_args[] = {
	{ "pvcreate", 0 }, { "pvremove", 0 }, { "pvs", 0 },      { "vgcreate", 1 },
	{ "vgextend", 1 }, { "vgreduce", 1 }, { "lvcreate", 1 }, { "lvextend", 1 },
	{ "lvresize", 1 }, { "dump", 0 },
};

static int absolute_paths(const char *name, json_t *args)
{
	char cwd[PATH_MAX], *abs;
	json_t *v;
	size_t i;

	for (i = 0; i < DLVM_ARRAY_SIZE(path_args); i++)
		if (!strcmp(path_args[i].cmd, name))
			break;
	if (i == DLVM_ARRAY_SIZE(path_args))
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return -1;
	for (size_t a = path_args[i].first; a < json_array_size(args); a++) {
		v = json_array_get(args, a);
		if (!json_is_string(v) || json_string_value(v)[0] == '/')
			continue;
		if (asprintf(&abs, "%s/%s", cwd, json_string_value(v)) < 0)
			return -1;
		json_array_set_new(args, a, json_string(abs));
		free(abs);
	}
	return 0;
}

static const char *env_or(const char *given, const char *env, const char *dflt)
{
	const char *e;

	if (given)
		return given;
	e = getenv(env);
	return e && *e ? e : dflt;
}

/* Print the response of a failed command and return its exit code. */
static int failed(json_t *resp, const struct cli_report_opts *rep, const char *msg)
{
	if (resp)
		cli_print_response(resp, rep);
	cli_print_error("%s", msg);
	return CLI_EXIT_FAILED;
}

static int run_local(const struct cli_cmdline *cl)
{
	struct dlvm_err err = { 0 };
	json_t *resp = json_object();
	int r, rc;

	if (!resp)
		return CLI_EXIT_FAILED;
	r = cli_local_run(&cl->g, cl->cmd->name, cl->req, resp, &err);
	if (r < 0)
		rc = failed(resp, &cl->rep, *err.msg ? err.msg : strerror(-r));
	else
		rc = cli_print_response(resp, &cl->rep);
	json_decref(resp);
	return rc;
}

static double now_s(void)
{
	return (double)dlvm_now_ns() / 1e9;
}

/*
 * A command that started a background job in dlvmd (lvconvert --flatten
 * that copies): unless --background, wait for it, print its progress every
 * --interval seconds (default 5) as LVM's lvconvert does, then what it
 * ended with; the exit code is the job's.
 */
static int wait_job(const char *socket, const struct cli_cmdline *cl, json_t *job)
{
	json_t *opts = json_object_get(cl->req, "opts");
	const char *iv = json_string_value(json_object_get(opts, "interval"));
	const char *type = json_string_value(json_object_get(job, "type"));
	const char *lv = json_string_value(json_object_get(job, "lv"));
	double interval = iv ? strtod(iv, NULL) : 5.0, poll_s = interval < 0.5 ? interval : 0.5;
	double last = now_s(), wait = 0.05;
	char id[32];

	snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(job, "id")));
	for (;;) {
		struct timespec d = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
		nanosleep(&d, NULL);
		wait = wait * 2 < poll_s ? wait * 2 : poll_s;
		json_t *req = json_pack("{s:[s]}", "args", id), *resp = NULL;
		struct dlvm_err err = { 0 };
		long status = 0;
		int r = req ? cli_daemon_run(socket, "jobs", req, &status, &resp, &err) : -ENOMEM;
		json_decref(req);
		if (r) {
			cli_print_error("%s: job %s: %s", lv, id,
					r == 1 ? "dlvmd stopped (the job "
						 "stops with it)"
					       : err.msg);
			json_decref(resp);
			return CLI_EXIT_FAILED;
		}
		json_t *j = json_object_get(resp, "job_status");
		const char *state = json_string_value(json_object_get(j, "job_state"));
		if (status != 200 || !state) {
			const char *msg = json_string_value(
					json_object_get(json_object_get(resp, "error"), "message"));
			int rc = failed(resp, &cl->rep,
					msg ? msg : "dlvmd answered without the job");
			json_decref(resp);
			return rc;
		}
		if (!strcmp(state, "running")) {
			if (now_s() - last >= interval) {
				last = now_s();
				printf("  %s: %s: %s%%\n", lv,
				       type && !strcmp(type, "flatten") ? "Flattened" : "Copied",
				       json_string_value(json_object_get(j, "copy_percent")));
				fflush(stdout);
			}
			json_decref(resp);
			continue;
		}
		int rc;
		json_t *e = json_object_get(j, "error");
		if (e)
			rc = failed(j, &cl->rep, json_string_value(json_object_get(e, "message")));
		else
			rc = cli_print_response(j, &cl->rep);
		json_decref(resp);
		return rc;
	}
}

static int run(struct cli_cmdline *cl)
{
	const char *name = cl->cmd->name;
	struct dlvm_err err = { 0 };
	json_t *resp = NULL;
	char socket[PATH_MAX];
	long status = 0;
	int r, rc;

	if (cl->cmd->flags & DLVM_CMD_LOCAL) {
		if (cl->g.verbose)
			fprintf(stderr, "dlvm: %s: runs in-process\n", name);
		return run_local(cl);
	}
	if (cl->g.socket)
		snprintf(socket, sizeof(socket), "%s", cl->g.socket);
	else
		snprintf(socket, sizeof(socket), "%s/dlvmd.sock", cl->g.state_dir);

	if (absolute_paths(name, json_object_get(cl->req, "args")) < 0) {
		cli_print_error("Cannot resolve relative paths: %s", strerror(errno));
		return CLI_EXIT_FAILED;
	}
	r = cli_daemon_run(socket, name, cl->req, &status, &resp, &err);
	if (r == 1) {
		if (cl->g.verbose)
			fprintf(stderr, "dlvm: %s: no dlvmd at %s, running in-process\n", name,
				socket);
		return run_local(cl);
	}
	if (r < 0) {
		cli_print_error("%s", err.msg);
		return CLI_EXIT_FAILED;
	}
	if (cl->g.verbose)
		fprintf(stderr, "dlvm: %s: ran in dlvmd at %s (HTTP %ld)\n", name, socket, status);
	if (cl->g.devices)
		fprintf(stderr, "  WARNING: --devices ignored: dlvmd at %s manages the devices\n",
			socket);
	if (status == 200) {
		rc = cli_print_response(resp, &cl->rep);
		json_t *job = json_object_get(resp, "job");
		if (!rc && job &&
		    !json_is_true(json_object_get(json_object_get(cl->req, "opts"), "background")))
			rc = wait_job(socket, cl, job);
	} else {
		const char *msg = json_string_value(
				json_object_get(json_object_get(resp, "error"), "message"));
		char buf[128];

		if (!msg) {
			snprintf(buf, sizeof(buf), "dlvmd answered HTTP %ld", status);
			msg = buf;
		}
		rc = failed(resp, &cl->rep, msg);
	}
	json_decref(resp);
	return rc;
}

int main(int argc, char **argv)
{
	const struct dlvm_field_def **cols;
	struct cli_cmdline cl;
	int rc, n;

	/* the library's lines go to stderr as "dlvm: ..."; info lines only
	 * with -v, warnings and errors always */
	dlvm_log_set_ident("dlvm");
	dlvm_log_set_level(DLVM_LOG_WARNING);
	rc = cli_parse(argc, argv, &cl);
	if (rc || !cl.cmd)
		goto out;
	if (cl.g.verbose)
		dlvm_log_set_level(DLVM_LOG_INFO);
	cl.g.state_dir = env_or(cl.g.state_dir, "DLVM_STATE_DIR", CLI_DEFAULT_STATE_DIR);
	cl.g.socket = env_or(cl.g.socket, "DLVM_SOCKET", NULL);

	/* Check -o before running anything. */
	if (cl.cmd->flags & DLVM_CMD_REPORT && cl.rep.nfields) {
		n = cli_report_columns(dlvm_cmd_report_kind(cl.cmd), &cl.rep, &cols);
		if (n == -EINVAL) {
			rc = CLI_EXIT_USAGE;
			goto out;
		}
		if (n >= 0)
			free(cols);
	}
	rc = run(&cl);
out:
	cli_cmdline_release(&cl);
	fflush(stdout);
	return rc;
}
