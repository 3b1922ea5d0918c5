/* SPDX-License-Identifier: MIT */
/* The option table of dlvmd and what it drives: getopt, ini, checks, help. */
#include "daemon/options.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "dlvm/lease.h"
#include "dlvm/log.h"
#include "dlvm/util.h"

#ifndef DLVM_VERSION
#define DLVM_VERSION "unknown"
#endif

#define O(field) offsetof(struct dlvmd_opts, field)

_Static_assert(DLVM_LEASE_IO_TIMEOUT_DEFAULT == 10, "--io-timeout's default in the table");
_Static_assert(DLVM_LEASE_IO_TIMEOUT_MAX == 300, "--io-timeout's range in the table");

const struct dlvmd_option dlvmd_options[] = {
	{ "state-dir", 0, "state_dir", DLVMD_OPT_STRING, "DIR", .required = true,
	  .off = O(state_dir), .help = "state directory (created if missing)" },
	{ "devices", 0, "devices", DLVMD_OPT_STRING, "PATH,...", .off = O(devices),
	  .help = "devices to manage, added to DIR/devices" },
	/* what the API may touch */
	{ "pv-dir", 0, "pv_dir", DLVMD_OPT_STRING, "PVDIR", .off = O(pv_dir),
	  .help = "the only directory where commands sent to dlvmd may create or use files "
		  "(file PVs, links to new disks); other paths must be managed devices "
		  "(default DIR/pv, created mode 0700; refused if others may write it)" },
	{ "nbd-listen", 0, "nbd_listen", DLVMD_OPT_STRING, "ADDR:PORT",
	  .def = DLVMD_DEFAULT_NBD_LISTEN, .off = O(nbd_listen),
	  .help = "NBD TCP listener; 'none': Unix socket only" },
	{ "tls", 0, "tls", DLVMD_OPT_CHOICE, "off|on|require", .choices = "off|on|require",
	  .def = "require", .off = O(tls),
	  .help = "NBD over TLS: 'require': TCP clients must start TLS (the Unix socket "
		  "accepts it); 'on': offered, not required; 'off': plain only. 'on' needs "
		  "--tls-psk or --tls-certificates, and so does 'require' with a TCP listener" },
	{ "tls-psk", 0, "tls_psk", DLVMD_OPT_STRING, "FILE", .off = O(tls_psk),
	  .help = "pre-shared keys, lines IDENTITY:HEXKEY as psktool writes them" },
	{ "tls-certificates", 0, "tls_certificates", DLVMD_OPT_STRING, "DIR",
	  .off = O(tls_certificates),
	  .help = "X.509: DIR/server-cert.pem and DIR/server-key.pem; with DIR/ca-cert.pem "
		  "client certificates are asked for and verified against it (and "
		  "DIR/ca-crl.pem)" },
	{ "tls-access", 0, "tls_access", DLVMD_OPT_STRING, "FILE", .off = O(tls_access),
	  .help = "which TCP clients may open which exports: lines 'IDENTITY: PATTERN...' "
		  "(PSK identity, certificate CN or DN, or * for every client; globs over "
		  "VG/LV). Without it every TCP client opens every export; with it a client "
		  "sees only what its rules and those of * allow" },
	/* ---- NBD limits ---- */
	{ "nbd-max-connections", 0, "nbd_max_connections", DLVMD_OPT_NUMBER, "N", 1, 1000000,
	  .def = "1024", .off = O(nbd_max_connections),
	  .help = "NBD connections served at once; more are closed at accept" },
	{ "nbd-max-client-connections", 0, "nbd_max_client_connections", DLVMD_OPT_NUMBER, "N", 1,
	  1000000, .def = "256", .off = O(nbd_max_client_connections),
	  .help = "NBD connections from one TCP address, or one user on the Unix socket" },
	{ "nbd-handshake-timeout", 0, "nbd_handshake_timeout", DLVMD_OPT_NUMBER, "SECONDS", 1, 3600,
	  .def = "10", .off = O(nbd_handshake_timeout),
	  .help = "a client that has not opened an export this long after connecting is "
		  "disconnected (TLS included)" },
	{ "nbd-idle-timeout", 0, "nbd_idle_timeout", DLVMD_OPT_NUMBER, "SECONDS", 0, 604800,
	  .def = "0", .off = O(nbd_idle_timeout),
	  .help = "disconnect a client whose connection moves no byte this long (one that sends "
		  "nothing, or reads none of its replies); 0: never" },
	{ "nbd-conn-buffers", 0, "nbd_conn_buffers", DLVMD_OPT_NUMBER, "MIB", 32, 65536,
	  .def = "128", .off = O(nbd_conn_buffers),
	  .help = "memory for requests over 64 KiB, per connection; a request that would go "
		  "over waits, and its connection reads no more, until replies free some" },
	{ "nbd-buffers", 0, "nbd_buffers", DLVMD_OPT_NUMBER, "MIB", 32, 1048576, .def = "1024",
	  .off = O(nbd_buffers), .help = "the same for all connections together" },
	{ "host-id", 0, "host_id", DLVMD_OPT_NUMBER, "N", 1, DLVM_LEASE_MAX_HOSTS,
	  .off = O(host_id),
	  .help = "this host's id in the lockspaces of shared VGs; without it shared VGs "
		  "cannot be changed here" },
	{ "io-timeout", 0, "io_timeout", DLVMD_OPT_NUMBER, "SECONDS", 1, DLVM_LEASE_IO_TIMEOUT_MAX,
	  .def = "10", .off = O(io_timeout),
	  .help = "lease I/O timeout T: renew every T/2, other hosts are seen dead after 5T" },
	{ "thin-pool-autoextend-threshold", 0, "thin_pool_autoextend_threshold", DLVMD_OPT_NUMBER,
	  "PERCENT", 50, 100, .def = "100", .off = O(autoextend_threshold),
	  .help = "grow a thin pool when its data is this full; 100: never" },
	{ "thin-pool-autoextend-percent", 0, "thin_pool_autoextend_percent", DLVMD_OPT_NUMBER,
	  "PERCENT", 1, 1000, .def = "20", .off = O(autoextend_percent),
	  .help = "by this percent of its size" },
	{ "nbd-cpus", 0, "nbd_cpus", DLVMD_OPT_CHOICE, "irq|any", .choices = "irq|any",
	  .def = "irq", .off = O(nbd_cpus),
	  .help = "where NBD connections run: on the CPUs that take their devices' completion "
		  "interrupts (irq) or wherever the kernel puts them (any)" },
	/* ---- the Cinder v3 API (daemon/cinder/, docs/api.md) ---- */
	{ "cinder-pool", 0, "cinder_pool", DLVMD_OPT_STRING, "VG/POOL", .off = O(cinder_pool),
	  .help = "serve the OpenStack Block Storage (Cinder) v3 API, making volumes as thin "
		  "LVs in this existing thin pool; without it the Cinder API is off" },
	{ "cinder-listen", 0, "cinder_listen", DLVMD_OPT_STRING, "ADDR:PORT",
	  .def = DLVMD_DEFAULT_CINDER_LISTEN, .off = O(cinder_listen),
	  .help = "TCP listener of the Cinder API (with --cinder-pool); 'none': off" },
	{ "cinder-type", 0, "cinder_type", DLVMD_OPT_STRING, "NAME", .def = "dlvm",
	  .off = O(cinder_type), .help = "name of the one volume type, the default" },
	{ "cinder-auth-strategy", 0, "cinder_auth_strategy", DLVMD_OPT_CHOICE, "noauth",
	  .choices = "noauth", .def = "noauth", .off = O(cinder_auth),
	  .help = "how Cinder API requests are authenticated: 'noauth' trusts the project "
		  "the request names (URL or X-Project-Id) and ignores X-Auth-Token" },
	{ "cinder-noauth-network", 0, "cinder_noauth_network", DLVMD_OPT_CHOICE, "no|yes",
	  .choices = "no|yes", .def = "no", .off = O(cinder_noauth_network),
	  .help = "'yes' lets noauth serve a listener that is not a loopback address: anyone "
		  "who reaches it manages every volume" },
	{ "debug", 0, "debug", DLVMD_OPT_DEBUG, "SUBSYSTEM,...", .off = O(debug),
	  .help = "print the debug lines of these subsystems" },
	{ "config", 0, NULL, DLVMD_OPT_CONFIG, "FILE", .off = O(config),
	  .help = "ini file, keys in section [dlvmd] or before any section; command-line "
		  "options override it" },
	{ "foreground", 0, NULL, DLVMD_OPT_FLAG, .off = O(foreground),
	  .help = "run in the foreground (the default)" },
	{ "help", 'h', NULL, DLVMD_OPT_HELP, .help = "show this help" },
	{ "version", 'V', NULL, DLVMD_OPT_VERSION, .help = "show the version" },
	{ "man", 0, NULL, DLVMD_OPT_MAN, .help = "print the manual page (roff)" },
};

#define NOPT DLVM_ARRAY_SIZE(dlvmd_options)

const size_t dlvmd_noptions = NOPT;

/* ---- text for --help and --man ---- */

/* What the table adds to an option's help: range, choices, default. */
static void help_extra(const struct dlvmd_option *t, char *out, size_t len)
{
	size_t o = 0;

	out[0] = '\0';
	if (t->kind == DLVMD_OPT_NUMBER)
		o += (size_t)snprintf(out, len, "%ld..%ld", t->lo, t->hi);
	if (t->kind == DLVMD_OPT_DEBUG) {
		for (unsigned i = 0; i < DLVM_LOG_NSUB && o < len; i++)
			o += (size_t)snprintf(out + o, len - o, "%s, ", dlvm_log_sub_name(i));
		if (o < len)
			o += (size_t)snprintf(out + o, len - o, "or all");
	}
	if (t->kind == DLVMD_OPT_CONFIG) {
		o += (size_t)snprintf(out, len, "keys:");
		for (size_t i = 0; i < NOPT && o < len; i++)
			if (dlvmd_options[i].key)
				o += (size_t)snprintf(out + o, len - o, " %s,",
						      dlvmd_options[i].key);
		if (o && o < len)
			out[--o] = '\0';
	}
	if (t->def && o < len)
		o += (size_t)snprintf(out + o, len - o, "%sdefault %s", o ? ", " : "", t->def);
}

/* help_extra in parentheses after the help sentence. */
static void help_text(const struct dlvmd_option *t, char *out, size_t len)
{
	char extra[512];

	help_extra(t, extra, sizeof(extra));
	snprintf(out, len, "%s%s%s%s", t->help, *extra ? " (" : "", extra, *extra ? ")" : "");
}

static void option_left(const struct dlvmd_option *t, char *out, size_t len)
{
	if (t->short_name)
		snprintf(out, len, "-%c, --%s%s%s", t->short_name, t->name, t->arg ? " " : "",
			 t->arg ? t->arg : "");
	else
		snprintf(out, len, "--%s%s%s", t->name, t->arg ? " " : "", t->arg ? t->arg : "");
}

/* Print text from column `col` to column 80, wrapping at spaces; lines
 * after the first start at column `indent`. */
static void print_wrapped(FILE *f, const char *text, int col, int indent)
{
	const char *p = text;

	while (*p) {
		int room = 80 - col;
		int n = (int)strlen(p);

		if (n > room) {
			n = room;
			while (n > 0 && p[n] != ' ')
				n--;
			if (!n)
				n = (int)strcspn(p, " ");
		}
		fprintf(f, "%.*s\n", n, p);
		p += n;
		while (*p == ' ')
			p++;
		if (*p)
			fprintf(f, "%*s", indent, "");
		col = indent;
	}
}

void dlvmd_usage(FILE *f)
{
	char left[96], help[1024];

	fprintf(f, "Usage: dlvmd --state-dir DIR [OPTIONS]\n"
		   "\n"
		   "Serve the volume groups on the managed devices: every LV over NBD\n"
		   "(DIR/nbd.sock and TCP), the control API for dlvm on DIR/dlvmd.sock.\n"
		   "\n"
		   "Options:\n");
	for (size_t i = 0; i < NOPT; i++) {
		option_left(&dlvmd_options[i], left, sizeof(left));
		help_text(&dlvmd_options[i], help, sizeof(help));
		if (strlen(left) > 22)
			fprintf(f, "  %s\n%25s", left, "");
		else
			fprintf(f, "  %-22s ", left);
		print_wrapped(f, help, 25, 25);
	}
}

/* text with roff's special characters escaped */
static void roff(FILE *f, const char *text)
{
	for (const char *p = text; *p; p++) {
		if (*p == '\\')
			fputs("\\e", f);
		else if (*p == '-')
			fputs("\\-", f);
		else if ((*p == '.' || *p == '\'') && (p == text || p[-1] == '\n'))
			fprintf(f, "\\&%c", *p);
		else
			fputc(*p, f);
	}
}

void dlvmd_man(FILE *f)
{
	char left[96], help[1024];

	fprintf(f, ".TH DLVMD 8 \"\" \"dlvm %s\" \"System Administration\"\n", DLVM_VERSION);
	fputs(".SH NAME\n"
	      "dlvmd \\- serve dlvm volume groups over NBD and the control API\n"
	      ".SH SYNOPSIS\n"
	      ".B dlvmd\n"
	      ".B \\-\\-state\\-dir\n"
	      ".I DIR\n"
	      "[\\fIOPTIONS\\fR]\n"
	      ".SH DESCRIPTION\n"
	      "dlvmd loads every volume group on the devices listed in\n"
	      ".IR DIR /devices,\n"
	      "exports every logical volume over NBD (on\n"
	      ".IR DIR /nbd.sock\n"
	      "and TCP) and serves the control API of\n"
	      ".BR dlvm (8)\n"
	      "on\n"
	      ".IR DIR /dlvmd.sock.\n"
	      "It stops cleanly on SIGTERM and SIGINT.\n"
	      ".SH OPTIONS\n",
	      f);
	for (size_t i = 0; i < NOPT; i++) {
		option_left(&dlvmd_options[i], left, sizeof(left));
		help_text(&dlvmd_options[i], help, sizeof(help));
		fputs(".TP\n.B ", f);
		roff(f, left);
		fputs("\n", f);
		roff(f, help);
		fputs("\n", f);
	}
	fputs(".SH CONFIGURATION FILE\n"
	      "The file given with\n"
	      ".B \\-\\-config\n"
	      "holds lines\n"
	      ".IR key \" = \" value ,\n"
	      "before any section or in section [dlvmd]; a key is the long option with\n"
	      "underscores for dashes. Keys:\n",
	      f);
	for (size_t i = 0, first = 1; i < NOPT; i++) {
		if (!dlvmd_options[i].key)
			continue;
		fputs(first ? "" : ",\n", f);
		roff(f, dlvmd_options[i].key);
		first = 0;
	}
	fputs(".\nAn unknown key or section is refused.\n"
	      ".SH LOG\n"
	      "Lines go to stderr, with their syslog priority in front when stderr is the\n"
	      "systemd journal. The last 1000 lines are also served at\n"
	      ".B GET /v1/log\n"
	      "on the control API.\n"
	      ".SH SEE ALSO\n"
	      ".BR dlvm (8)\n",
	      f);
}

/* ---- reading the options ---- */

/* The raw values of one source (command line, file), by table index. */
struct raw_opts {
	char *v[NOPT];
};

static void raw_release(struct raw_opts *r)
{
	for (size_t i = 0; i < NOPT; i++)
		free(r->v[i]);
}

static int raw_set(struct raw_opts *r, size_t i, const char *v)
{
	char *s = strdup(v);

	if (!s) {
		log_error(DLVM_LOG_MAIN, "out of memory");
		return -ENOMEM;
	}
	free(r->v[i]);
	r->v[i] = s;
	return 0;
}

struct config_parse {
	struct raw_opts *raw;
	char bad[128]; /* why the line ini_parse reports was refused */
};

static int config_key(void *user, const char *section, const char *key, const char *value)
{
	struct config_parse *cp = user;

	if (*section && strcmp(section, "dlvmd")) {
		if (!cp->bad[0])
			snprintf(cp->bad, sizeof(cp->bad), "unknown section [%.64s]", section);
		return 0;
	}
	for (size_t i = 0; i < NOPT; i++)
		if (dlvmd_options[i].key && !strcmp(key, dlvmd_options[i].key))
			return raw_set(cp->raw, i, value) == 0;
	if (!cp->bad[0])
		snprintf(cp->bad, sizeof(cp->bad), "unknown key '%.64s'", key);
	return 0;
}

static int config_load(const char *file, struct raw_opts *raw)
{
	struct config_parse cp = { .raw = raw };
	int r;

	r = ini_parse(file, config_key, &cp);
	if (r == -1) {
		log_error(DLVM_LOG_MAIN, "%s: %s", file, strerror(errno));
		return -1;
	}
	if (r == -2) {
		log_error(DLVM_LOG_MAIN, "%s: out of memory", file);
		return -1;
	}
	if (r > 0) {
		log_error(DLVM_LOG_MAIN, "%s:%d: %s", file, r,
			  cp.bad[0] ? cp.bad : "syntax error (expected key = value)");
		return -1;
	}
	return 0;
}

/* The command line into raw; 0, or the exit code of a usage error. */
static int cmdline_read(int argc, char **argv, struct raw_opts *raw)
{
	struct option longopts[NOPT + 1] = { 0 };
	char shortopts[2 * NOPT + 1] = "", *s = shortopts;
	int c;

	for (size_t i = 0; i < NOPT; i++) {
		const struct dlvmd_option *t = &dlvmd_options[i];

		longopts[i] = (struct option){ t->name, t->arg ? required_argument : no_argument,
					       NULL, 256 + (int)i };
		if (t->short_name) {
			*s++ = t->short_name;
			if (t->arg)
				*s++ = ':';
		}
	}
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		size_t i = c >= 256 ? (size_t)c - 256 : NOPT;

		for (size_t k = 0; i == NOPT && k < NOPT; k++)
			if (dlvmd_options[k].short_name && dlvmd_options[k].short_name == c)
				i = k;
		if (i == NOPT) {
			fprintf(stderr, "Try 'dlvmd --help'.\n");
			return 2;
		}
		switch (dlvmd_options[i].kind) {
		case DLVMD_OPT_HELP: dlvmd_usage(stdout); exit(0);
		case DLVMD_OPT_VERSION: printf("dlvmd %s\n", DLVM_VERSION); exit(0);
		case DLVMD_OPT_MAN: dlvmd_man(stdout); exit(0);
		default:
			if (raw_set(raw, i, optarg ? optarg : "1") < 0)
				return 1;
		}
	}
	if (optind < argc) {
		log_error(DLVM_LOG_MAIN, "unexpected argument '%s'. Try 'dlvmd --help'.",
			  argv[optind]);
		return 2;
	}
	return 0;
}

/* A decimal number in lo..hi; -1 otherwise. */
static long parse_num(const char *what, const char *v, long lo, long hi)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < lo || n > hi) {
		log_error(DLVM_LOG_MAIN, "%s %s: must be a number from %ld to %ld", what, v, lo,
			  hi);
		return -1;
	}
	return n;
}

static bool is_choice(const char *choices, const char *v)
{
	size_t n = strlen(v);

	for (const char *p = choices; *p; p += strcspn(p, "|"), p += *p == '|')
		if (strcspn(p, "|") == n && !strncmp(p, v, n))
			return true;
	return false;
}

/* Check v for option t and store it in o; 0, or -EINVAL (logged). */
static int opt_store(const struct dlvmd_option *t, const char *v, struct dlvmd_opts *o)
{
	char what[64], *copy;
	struct dlvm_err err = { 0 };
	long n;

	snprintf(what, sizeof(what), "--%s", t->name);
	switch (t->kind) {
	case DLVMD_OPT_NUMBER:
		n = parse_num(what, v, t->lo, t->hi);
		if (n < 0)
			return -EINVAL;
		*(long *)((char *)o + t->off) = n;
		return 0;
	case DLVMD_OPT_FLAG: *(bool *)((char *)o + t->off) = true; return 0;
	case DLVMD_OPT_CHOICE:
		if (!is_choice(t->choices, v)) {
			const char *bar = strchr(t->choices, '|');
			if (strchr(bar + 1, '|'))
				log_error(DLVM_LOG_MAIN, "%s: '%s' is not one of %s", what, v,
					  t->choices);
			else
				log_error(DLVM_LOG_MAIN, "%s: '%s' is neither '%.*s' nor '%s'",
					  what, v, (int)(bar - t->choices), t->choices, bar + 1);
			return -EINVAL;
		}
		break;
	case DLVMD_OPT_DEBUG:
		if (dlvm_log_set_debug(v, &err) < 0) {
			log_error(DLVM_LOG_MAIN, "%s", err.msg);
			return -EINVAL;
		}
		break;
	default: break;
	}
	copy = strdup(v);
	if (!copy) {
		log_error(DLVM_LOG_MAIN, "out of memory");
		return -ENOMEM;
	}
	*(char **)((char *)o + t->off) = copy;
	return 0;
}

int dlvmd_opts_parse(int argc, char **argv, struct dlvmd_opts *o)
{
	struct raw_opts cli = { 0 }, file = { 0 };
	int rc = 0;

	*o = (struct dlvmd_opts){ 0 };
	rc = cmdline_read(argc, argv, &cli);
	for (size_t i = 0; !rc && i < NOPT; i++)
		if (dlvmd_options[i].kind == DLVMD_OPT_CONFIG && cli.v[i] &&
		    config_load(cli.v[i], &file) < 0)
			rc = 1;
	for (size_t i = 0; !rc && i < NOPT; i++) {
		const struct dlvmd_option *t = &dlvmd_options[i];
		const char *v = cli.v[i] ? cli.v[i] : file.v[i] ? file.v[i] : t->def;

		if (t->required && (!v || !*v)) {
			log_error(DLVM_LOG_MAIN, "--%s is required. Try 'dlvmd --help'.", t->name);
			rc = 2;
		}
	}
	for (size_t i = 0; !rc && i < NOPT; i++) {
		const struct dlvmd_option *t = &dlvmd_options[i];
		const char *v = cli.v[i] ? cli.v[i] : file.v[i] ? file.v[i] : t->def;

		if (v && opt_store(t, v, o) < 0)
			rc = 1;
	}
	raw_release(&cli);
	raw_release(&file);
	return rc;
}

void dlvmd_opts_release(struct dlvmd_opts *o)
{
	for (size_t i = 0; i < NOPT; i++) {
		const struct dlvmd_option *t = &dlvmd_options[i];

		if (t->kind == DLVMD_OPT_STRING || t->kind == DLVMD_OPT_CHOICE ||
		    t->kind == DLVMD_OPT_DEBUG || t->kind == DLVMD_OPT_CONFIG)
			free(*(char **)((char *)o + t->off));
	}
	*o = (struct dlvmd_opts){ 0 };
}
