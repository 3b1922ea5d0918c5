/* SPDX-License-Identifier: MIT */
/*
 * The dlvm command-line tool: argv parsing from the command table (args.c),
 * running a command in dlvmd or in-process (client.c), printing responses and
 * reports in LVM's style (output.c).
 */
#ifndef DLVM_CLI_H
#define DLVM_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "dlvm/cmd.h"
#include "dlvm/err.h"

/* Exit codes, as LVM's. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_USAGE = 3,  /* bad command line */
	CLI_EXIT_FAILED = 5, /* the command failed */
};

#define CLI_DEFAULT_STATE_DIR "/var/lib/dlvm"

struct cli_global {
	const char *socket;    /* --socket, $DLVM_SOCKET, STATE_DIR/dlvmd.sock */
	const char *state_dir; /* --state-dir, $DLVM_STATE_DIR, /var/lib/dlvm */
	const char *devices;   /* --devices: comma separated, for in-process runs */
	int verbose;
};

/* Options of report commands (DLVM_CMD_REPORT), applied by the CLI. */
struct cli_report_opts {
	char **fields; /* -o specs in the order given, owned */
	size_t nfields;
	char units; /* --units: h b s k m g t p e, upper case = SI; default h */
	bool nosuffix;
	bool json; /* --reportformat json */
	bool noheadings;
	const char *separator; /* NULL: aligned columns */
};

struct cli_cmdline {
	struct cli_global g;
	const struct dlvm_cmd_def *cmd; /* NULL: no command (help/version printed) */
	json_t *req;                    /* {"opts": {...}, "args": [...]}, owned */
	struct cli_report_opts rep;
	bool help; /* --help given: print usage, run nothing */
};

/* ---- args.c ---- */

/*
 * Parse argv. Returns 0 with cl filled (cl->cmd NULL when only help or the
 * version was asked for and printed), or CLI_EXIT_USAGE after printing a
 * one-line hint to stderr. Options may come anywhere after the command name;
 * before it only global ones.
 */
int cli_parse(int argc, char **argv, struct cli_cmdline *cl);
void cli_cmdline_release(struct cli_cmdline *cl);

/* Help from the command table. */
void cli_usage_all(FILE *f);
void cli_usage_cmd(FILE *f, const struct dlvm_cmd_def *cmd);

/* ---- client.c ---- */

/*
 * Run a command in the dlvmd listening on `socket`. Returns 0 with *resp
 * (the response, or on an error status the error body, owned by the caller)
 * and *status (the HTTP status); 1 when no daemon listens there (no socket
 * file, connection refused): the caller runs the command in-process; or
 * -errno with err set (the daemon could not be reached otherwise or answered
 * something that is not JSON).
 */
int cli_daemon_run(const char *socket, const char *name, json_t *req, long *status, json_t **resp,
		   struct dlvm_err *err);

/* Run a command in-process on an offline context. Returns what
 * dlvm_cmd_run returns; resp is filled as far as the command got. */
int cli_local_run(const struct cli_global *g, const char *name, json_t *req, json_t *resp,
		  struct dlvm_err *err);

/* ---- output.c ---- */

/* Resolve the -o specs against the fields of `kind` ("pv", "vg", "lv").
 * Returns the number of fields and an allocated array in *out, or -EINVAL
 * after printing which field is unknown and the valid ones; -ENOENT when the
 * kind has no fields. */
int cli_report_columns(const char *kind, const struct cli_report_opts *rep,
		       const struct dlvm_field_def ***out);

/* Print warnings (stderr), messages, text and report (stdout) of a response.
 * Returns 0 or CLI_EXIT_USAGE (bad -o field). */
int cli_print_response(json_t *resp, const struct cli_report_opts *rep);

/* Print an error as LVM does: "  message" on stderr. */
void cli_print_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
