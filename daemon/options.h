/* SPDX-License-Identifier: MIT */
/*
 * The options of dlvmd, declared once in a table (options.c) that drives
 * the command line (getopt_long), the configuration file (ini keys of
 * section [dlvmd] or of no section), the checks of each value, --help and
 * the manual page (--man). Adding an option is one table entry and one
 * field of struct dlvmd_opts.
 *
 * Precedence: a default, then the configuration file, then the command line.
 */
#ifndef DLVMD_OPTIONS_H
#define DLVMD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define DLVMD_DEFAULT_NBD_LISTEN "127.0.0.1:10809"
#define DLVMD_DEFAULT_CINDER_LISTEN "127.0.0.1:8776"

/* The options once checked; owned strings, freed by dlvmd_opts_release. */
struct dlvmd_opts {
	char *state_dir;
	char *devices;          /* comma separated, added to STATE_DIR/devices */
	char *pv_dir;           /* where the API may use files; NULL: STATE_DIR/pv */
	char *nbd_listen;       /* "HOST:PORT" or "none" */
	char *nbd_cpus;         /* "irq" or "any" */
	char *tls;              /* "off", "on" or "require" */
	char *tls_psk;          /* psktool file; NULL: none */
	char *tls_certificates; /* X.509 directory; NULL: none */
	char *tls_access;       /* access rules file; NULL: none */
	char *config;
	char *debug;               /* subsystems with debug lines, already turned on */
	long host_id;              /* 1..max_hosts of the shared VGs; 0: none */
	long io_timeout;           /* seconds */
	long autoextend_threshold; /* thin pools: percent full that grows them */
	long autoextend_percent;   /* by this percent of their size */
	/* NBD limits (nbd/server.h, struct nbd_limits) */
	long nbd_max_connections;
	long nbd_max_client_connections;
	long nbd_handshake_timeout; /* seconds */
	long nbd_idle_timeout;      /* seconds; 0: never */
	long nbd_conn_buffers;      /* MiB */
	long nbd_buffers;           /* MiB */
	bool foreground;
	/* the Cinder v3 API (daemon/cinder/) */
	char *cinder_listen;         /* "HOST:PORT" or "none" */
	char *cinder_pool;           /* "VG/POOL"; NULL: the Cinder API is off */
	char *cinder_type;           /* the name of the one volume type */
	char *cinder_auth;           /* "noauth" */
	char *cinder_noauth_network; /* "no" or "yes": noauth on a non-loopback listener */
};

enum dlvmd_opt_kind {
	DLVMD_OPT_STRING, /* char *, any text */
	DLVMD_OPT_NUMBER, /* long, decimal in lo..hi */
	DLVMD_OPT_CHOICE, /* char *, one of choices ("irq|any") */
	DLVMD_OPT_DEBUG,  /* char *, subsystems for dlvm_log_set_debug */
	DLVMD_OPT_CONFIG, /* char *, the configuration file, read first */
	DLVMD_OPT_FLAG,   /* bool, no argument */
	DLVMD_OPT_HELP,   /* print --help and exit */
	DLVMD_OPT_VERSION,
	DLVMD_OPT_MAN, /* print the manual page (roff) and exit */
};

struct dlvmd_option {
	const char *name; /* long option: "state-dir" */
	char short_name;  /* 'h', or 0 */
	const char *key;  /* configuration file key; NULL: command line only */
	enum dlvmd_opt_kind kind;
	const char *arg;     /* the argument's name in --help ("DIR"); NULL: none */
	long lo, hi;         /* DLVMD_OPT_NUMBER */
	const char *choices; /* DLVMD_OPT_CHOICE: "a|b" */
	const char *def;     /* default, as text; NULL: none */
	bool required;
	size_t off;       /* offsetof(struct dlvmd_opts, field) */
	const char *help; /* one sentence; range, default, choices are added */
};

extern const struct dlvmd_option dlvmd_options[];
extern const size_t dlvmd_noptions;

/*
 * Read the command line and the configuration file it names into *o
 * (defaults for what neither sets), check every value and turn on the
 * debug lines asked for. --help, --version and --man print and exit(0).
 * Returns 0; 2 for a usage error (unknown option, missing --state-dir);
 * 1 for a value refused or a configuration file that cannot be read. The
 * reason has been logged. *o must be released in every case.
 */
int dlvmd_opts_parse(int argc, char **argv, struct dlvmd_opts *o);

void dlvmd_opts_release(struct dlvmd_opts *o);

/* --help and --man text, from the table. */
void dlvmd_usage(FILE *f);
void dlvmd_man(FILE *f);

#endif
