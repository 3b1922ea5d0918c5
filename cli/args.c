/* SPDX-License-Identifier: MIT */
/*
 * argv -> request. The options of a command come from dlvm_commands[]; the
 * CLI adds its global options and, for report commands, the report options.
 * Like LVM, options may appear anywhere after the command name, short
 * options take their value attached or as the next word (-L4G, -L 4G), long
 * ones with '=' or as the next word (--name=a, --name a), "--" ends options.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#ifndef DLVM_VERSION
#define DLVM_VERSION "unknown"
#endif

enum cli_opt_id {
	G_SOCKET,
	G_STATE_DIR,
	G_DEVICES,
	G_VERBOSE,
	G_HELP,
	G_VERSION,
	R_OPTIONS,
	R_UNITS,
	R_REPORTFORMAT,
	R_NOHEADINGS,
	R_SEPARATOR,
	R_NOSUFFIX,
};

struct cli_opt {
	struct dlvm_opt_def def;
	enum cli_opt_id id;
};

static const struct cli_opt global_opts[] = {
	{ { 0, "socket", DLVM_OPT_VALUE, "PATH",
	    "dlvmd's control socket (default: $DLVM_SOCKET, "
	    "else STATE_DIR/dlvmd.sock)" },
	  G_SOCKET },
	{ { 0, "state-dir", DLVM_OPT_VALUE, "DIR",
	    "state directory (default: $DLVM_STATE_DIR, "
	    "else " CLI_DEFAULT_STATE_DIR ")" },
	  G_STATE_DIR },
	{ { 0, "devices", DLVM_OPT_VALUE, "PATH,...", "devices to use when no daemon runs" },
	  G_DEVICES },
	{ { 'v', "verbose", DLVM_OPT_FLAG, NULL, "say where the command runs, show info lines" },
	  G_VERBOSE },
	{ { 'h', "help", DLVM_OPT_FLAG, NULL, "show help" }, G_HELP },
	{ { 0, "version", DLVM_OPT_FLAG, NULL, "show the version" }, G_VERSION },
	{ { 0 }, 0 },
};

static const struct cli_opt report_opts[] = {
	{ { 'o', "options", DLVM_OPT_LIST, "FIELDS",
	    "columns to show; +FIELDS adds to the "
	    "default ones" },
	  R_OPTIONS },
	{ { 0, "units", DLVM_OPT_VALUE, "h|b|s|k|m|g|t|p|e",
	    "units of sizes (lower case: "
	    "powers of 1024, upper case: of 1000; h: human)" },
	  R_UNITS },
	{ { 0, "reportformat", DLVM_OPT_VALUE, "basic|json", "report format" }, R_REPORTFORMAT },
	{ { 0, "noheadings", DLVM_OPT_FLAG, NULL, "no heading line" }, R_NOHEADINGS },
	{ { 0, "separator", DLVM_OPT_VALUE, "SEP", "separate columns with SEP (not aligned)" },
	  R_SEPARATOR },
	{ { 0, "nosuffix", DLVM_OPT_FLAG, NULL, "no unit letter after sizes" }, R_NOSUFFIX },
	{ { 0 }, 0 },
};

/* An option the parser found: from the command table, or one of the CLI's. */
struct found_opt {
	const struct dlvm_opt_def *def;
	const struct cli_opt *cli;       /* NULL for a command option */
	const struct dlvm_opt_def *also; /* command option of the same long name */
};

static const struct dlvm_opt_def *find_cmd_opt(const struct dlvm_cmd_def *cmd, char s,
					       const char *l, size_t llen)
{
	for (const struct dlvm_opt_def *o = cmd ? cmd->opts : NULL; o && o->long_name; o++)
		if (s ? o->short_name == s
		      : strlen(o->long_name) == llen && !strncmp(o->long_name, l, llen))
			return o;
	return NULL;
}

static const struct cli_opt *find_cli_opt(const struct cli_opt *tab, char s, const char *l,
					  size_t llen)
{
	for (const struct cli_opt *o = tab; o->def.long_name; o++)
		if (s ? o->def.short_name == s
		      : strlen(o->def.long_name) == llen && !strncmp(o->def.long_name, l, llen))
			return o;
	return NULL;
}

/* Look an option up: report options first (report commands), then the
 * command's own, then the global ones. */
static bool find_opt(const struct dlvm_cmd_def *cmd, char s, const char *l, size_t llen,
		     struct found_opt *f)
{
	*f = (struct found_opt){ 0 };
	if (cmd && cmd->flags & DLVM_CMD_REPORT)
		f->cli = find_cli_opt(report_opts, s, l, llen);
	if (f->cli) {
		f->def = &f->cli->def;
		f->also = find_cmd_opt(cmd, 0, f->def->long_name, strlen(f->def->long_name));
		return true;
	}
	f->def = find_cmd_opt(cmd, s, l, llen);
	if (f->def)
		return true;
	f->cli = find_cli_opt(global_opts, s, l, llen);
	if (f->cli)
		f->def = &f->cli->def;
	return f->def != NULL;
}

static int usage_hint(const struct dlvm_cmd_def *cmd, const char *msg, const char *what)
{
	fprintf(stderr, "dlvm%s%s: ", cmd ? " " : "", cmd ? cmd->name : "");
	fprintf(stderr, msg, what);
	if (cmd)
		fprintf(stderr, ". Run 'dlvm %s --help'.\n", cmd->name);
	else
		fprintf(stderr, ". Run 'dlvm help'.\n");
	return CLI_EXIT_USAGE;
}

/* Store a command option's value in req.opts. */
static int set_cmd_opt(json_t *opts, const struct dlvm_opt_def *def, const char *value)
{
	json_t *list;
	char *copy;

	switch (def->kind) {
	case DLVM_OPT_FLAG: return json_object_set_new(opts, def->long_name, json_true());
	case DLVM_OPT_VALUE: return json_object_set_new(opts, def->long_name, json_string(value));
	case DLVM_OPT_LIST:
		list = json_object_get(opts, def->long_name);
		if (!list) {
			list = json_array();
			if (json_object_set_new(opts, def->long_name, list))
				return -1;
		}
		copy = strdup(value);
		if (!copy)
			return -1;
		/* the values between commas; empty ones are skipped */
		for (char *t = copy, *next; t; t = next) {
			if ((next = strchr(t, ',')))
				*next++ = '\0';
			if (*t && json_array_append_new(list, json_string(t))) {
				free(copy);
				return -1;
			}
		}
		free(copy);
		return 0;
	}
	return -1;
}

static int set_cli_opt(struct cli_cmdline *cl, const struct cli_opt *o, const char *value)
{
	struct cli_report_opts *rep = &cl->rep;
	char **p;

	switch (o->id) {
	case G_SOCKET: cl->g.socket = value; break;
	case G_STATE_DIR: cl->g.state_dir = value; break;
	case G_DEVICES: cl->g.devices = value; break;
	case G_VERBOSE: cl->g.verbose++; break;
	case G_HELP: cl->help = true; break;
	case G_VERSION: printf("dlvm %s\n", DLVM_VERSION); exit(CLI_EXIT_OK);
	case R_OPTIONS:
		p = realloc(rep->fields, (rep->nfields + 1) * sizeof(*p));
		if (!p)
			return -1;
		rep->fields = p;
		rep->fields[rep->nfields] = strdup(value);
		if (!rep->fields[rep->nfields])
			return -1;
		rep->nfields++;
		break;
	case R_UNITS:
		if (strlen(value) != 1 || !strchr("hbskmgtpeHBSKMGTPE", value[0]))
			return usage_hint(cl->cmd,
					  "--units: '%s' is not one of h, b, s, k, m, g, t, "
					  "p, e (or upper case for powers of 1000)",
					  value);
		rep->units = value[0];
		break;
	case R_REPORTFORMAT:
		if (!strcmp(value, "json") || !strcmp(value, "json_std"))
			rep->json = true;
		else if (!strcmp(value, "basic"))
			rep->json = false;
		else
			return usage_hint(cl->cmd, "--reportformat: '%s' is not basic or json",
					  value);
		break;
	case R_NOHEADINGS: rep->noheadings = true; break;
	case R_SEPARATOR: rep->separator = value; break;
	case R_NOSUFFIX: rep->nosuffix = true; break;
	}
	return 0;
}

/*
 * The request is JSON, whose strings must be UTF-8: jansson refuses anything
 * else, so ask it rather than keep a second definition of valid UTF-8.
 */
static bool is_utf8(const char *s)
{
	json_t *j = json_string(s);

	json_decref(j);
	return j != NULL;
}

static int apply_opt(struct cli_cmdline *cl, const struct found_opt *f, const char *value)
{
	json_t *opts = json_object_get(cl->req, "opts");
	int r;

	/* a CLI-only value (a path) stays local and may be any bytes */
	if (value && (!f->cli || f->also) && !is_utf8(value))
		return usage_hint(cl->cmd, "the value of option '--%s' is not valid UTF-8",
				  f->def->long_name);
	if (f->cli) {
		r = set_cli_opt(cl, f->cli, value);
		if (r)
			return r < 0 ? CLI_EXIT_FAILED : r;
		if (!f->also)
			return 0;
		return set_cmd_opt(opts, f->also, value) ? CLI_EXIT_FAILED : 0;
	}
	return set_cmd_opt(opts, f->def, value) ? CLI_EXIT_FAILED : 0;
}

/*
 * Parse the option at argv[*i]. Before the command name (cmd NULL) only
 * global options are known.
 */
static int parse_opt(struct cli_cmdline *cl, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	struct found_opt f;
	int r;

	if (a[1] == '-') {
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);

		if (!find_opt(cl->cmd, 0, name, len, &f))
			return usage_hint(cl->cmd, "unknown option '%s'", a);
		if (f.def->kind == DLVM_OPT_FLAG) {
			if (eq)
				return usage_hint(cl->cmd, "option '--%s' takes no value",
						  f.def->long_name);
			return apply_opt(cl, &f, NULL);
		}
		if (eq)
			return apply_opt(cl, &f, eq + 1);
		if (*i + 1 >= argc)
			return usage_hint(cl->cmd, "option '%s' needs a value", a);
		return apply_opt(cl, &f, argv[++*i]);
	}

	/* A cluster of short options: flags, then at most one option with a
	 * value, which takes the rest of the word or the next word. */
	for (const char *p = a + 1; *p; p++) {
		char opt[3] = { '-', *p, 0 };

		if (!find_opt(cl->cmd, *p, NULL, 0, &f))
			return usage_hint(cl->cmd, "unknown option '%s'", opt);
		if (f.def->kind == DLVM_OPT_FLAG) {
			r = apply_opt(cl, &f, NULL);
			if (r)
				return r;
			continue;
		}
		if (p[1])
			return apply_opt(cl, &f, p + 1);
		if (*i + 1 >= argc)
			return usage_hint(cl->cmd, "option '%s' needs a value", opt);
		return apply_opt(cl, &f, argv[++*i]);
	}
	return 0;
}

static bool is_option(const char *a)
{
	return a[0] == '-' && a[1] && strcmp(a, "--");
}

int cli_parse(int argc, char **argv, struct cli_cmdline *cl)
{
	json_t *args;
	bool opts_done = false;
	int i, r;

	*cl = (struct cli_cmdline){ 0 };
	cl->rep.units = 'h';
	cl->req = json_pack("{s:{},s:[]}", "opts", "args");
	if (!cl->req)
		return CLI_EXIT_FAILED;
	args = json_object_get(cl->req, "args");

	/* Global options, then the command name. */
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (!is_option(argv[i]))
			break;
		r = parse_opt(cl, argc, argv, &i);
		if (r)
			return r;
	}
	if (i >= argc) {
		if (cl->help) {
			cli_usage_all(stdout);
			return 0;
		}
		fprintf(stderr, "dlvm: no command given. Run 'dlvm help'.\n");
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[i], "help")) {
		const struct dlvm_cmd_def *c = i + 1 < argc ? dlvm_cmd_find(argv[i + 1]) : NULL;

		if (i + 1 < argc && !c)
			return usage_hint(NULL, "unknown command '%s'", argv[i + 1]);
		if (c)
			cli_usage_cmd(stdout, c);
		else
			cli_usage_all(stdout);
		return 0;
	}
	cl->cmd = dlvm_cmd_find(argv[i]);
	if (!cl->cmd)
		return usage_hint(NULL, "unknown command '%s'", argv[i]);

	for (i++; i < argc; i++) {
		if (!opts_done && !strcmp(argv[i], "--")) {
			opts_done = true;
			continue;
		}
		if (!opts_done && is_option(argv[i])) {
			r = parse_opt(cl, argc, argv, &i);
			if (r)
				return r;
			continue;
		}
		if (!is_utf8(argv[i])) {
			char what[24];

			snprintf(what, sizeof(what), "%zu", json_array_size(args) + 1);
			return usage_hint(cl->cmd, "argument %s is not valid UTF-8", what);
		}
		if (json_array_append_new(args, json_string(argv[i])))
			return CLI_EXIT_FAILED;
	}
	if (cl->help) {
		cli_usage_cmd(stdout, cl->cmd);
		cl->cmd = NULL;
	}
	return 0;
}

void cli_cmdline_release(struct cli_cmdline *cl)
{
	for (size_t i = 0; i < cl->rep.nfields; i++)
		free(cl->rep.fields[i]);
	free(cl->rep.fields);
	json_decref(cl->req);
	*cl = (struct cli_cmdline){ 0 };
}

/* ---- help ---- */

static void print_opt(FILE *f, const struct dlvm_opt_def *o)
{
	char left[64];
	int n;

	if (o->short_name)
		n = snprintf(left, sizeof(left), "-%c, --%s", o->short_name, o->long_name);
	else
		n = snprintf(left, sizeof(left), "    --%s", o->long_name);
	if (o->kind != DLVM_OPT_FLAG && n > 0 && (size_t)n < sizeof(left))
		snprintf(left + n, sizeof(left) - (size_t)n, " %s",
			 o->metavar ? o->metavar : "VALUE");
	fprintf(f, "  %-28s %s%s\n", left, o->help ? o->help : "",
		o->kind == DLVM_OPT_LIST ? " (repeatable, comma separated)" : "");
}

static void print_cli_opts(FILE *f, const char *title, const struct cli_opt *tab)
{
	fprintf(f, "\n%s:\n", title);
	for (const struct cli_opt *o = tab; o->def.long_name; o++)
		print_opt(f, &o->def);
}

void cli_usage_all(FILE *f)
{
	fprintf(f, "Usage: dlvm [GLOBAL OPTIONS] COMMAND [OPTIONS] ARGS\n\nCommands:\n");
	for (const struct dlvm_cmd_def *c = dlvm_commands; c->name; c++)
		fprintf(f, "  %-12s %s\n", c->name, c->summary ? c->summary : "");
	fprintf(f, "  %-12s %s\n", "help", "show the usage of a command: dlvm help COMMAND");
	print_cli_opts(f, "Global options", global_opts);
	fprintf(f, "\nWithout a running dlvmd, commands run in-process on the devices of\n"
		   "STATE_DIR/devices or --devices, which they lock while they run.\n");
}

void cli_usage_cmd(FILE *f, const struct dlvm_cmd_def *cmd)
{
	fprintf(f, "Usage: dlvm %s\n", cmd->usage ? cmd->usage : cmd->name);
	if (cmd->summary)
		fprintf(f, "\n%s\n", cmd->summary);
	if (cmd->opts && cmd->opts->long_name) {
		fprintf(f, "\nOptions:\n");
		for (const struct dlvm_opt_def *o = cmd->opts; o->long_name; o++)
			print_opt(f, o);
	}
	if (cmd->flags & DLVM_CMD_REPORT)
		print_cli_opts(f, "Report options", report_opts);
	print_cli_opts(f, "Global options", global_opts);
}
