/* SPDX-License-Identifier: MIT */
/*
 * dlvmd: the per-host daemon. Loads every VG on the managed devices,
 * activates (exports over NBD) every LV, serves the control API for the CLI
 * and stops cleanly on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/api.h"
#include "daemon/exports.h"
#include "daemon/hooks.h"
#include "daemon/log.h"
#include "daemon/nbd/server.h"
#include "dlvm/cmd.h"
#include "dlvm/lease.h"
#include "dlvm/vg.h"

#ifndef DLVM_VERSION
#define DLVM_VERSION "unknown"
#endif

#define DEFAULT_NBD_LISTEN "127.0.0.1:10809"

struct dlvmd_opts {
	char *state_dir;
	char *devices;    /* comma separated, added to STATE_DIR/devices */
	char *nbd_listen; /* "HOST:PORT" or "none" */
	char *config;
	char *host_id;    /* 1..max_hosts of the shared VGs; NULL: none */
	char *io_timeout; /* seconds */
	char *autoextend_threshold; /* thin pools: percent full that grows them */
	char *autoextend_percent;   /* by this percent of their size */
	char *nbd_cpus;   /* "irq" or "any" */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dlvmd --state-dir DIR [OPTIONS]\n"
		"\n"
		"Serve the volume groups on the managed devices: every LV over NBD\n"
		"(DIR/nbd.sock and TCP), the control API for dlvm on DIR/dlvmd.sock.\n"
		"\n"
		"Options:\n"
		"  --state-dir DIR        state directory (created if missing)\n"
		"  --devices PATH,...     devices to manage, added to DIR/devices\n"
		"  --nbd-listen ADDR:PORT NBD TCP listener (default " DEFAULT_NBD_LISTEN
		"; 'none': Unix socket only)\n"
		"  --host-id N            this host's id (1..2000) in the lockspaces of shared\n"
		"                         VGs; without it shared VGs cannot be changed here\n"
		"  --io-timeout SECONDS   lease I/O timeout T (default 10): renew every T/2,\n"
		"                         other hosts are seen dead after 5T\n"
		"  --thin-pool-autoextend-threshold PERCENT\n"
		"                         grow a thin pool when its data is this full\n"
		"                         (50..100, default 100: never)\n"
		"  --thin-pool-autoextend-percent PERCENT\n"
		"                         by this percent of its size (1..1000, default 20)\n"
		"  --nbd-cpus irq|any     where NBD connections run: on the CPUs that take\n"
		"                         their devices' completion interrupts (irq, the\n"
		"                         default) or wherever the kernel puts them (any)\n"
		"  --config FILE          ini file with keys state_dir, devices, nbd_listen,\n"
		"                         nbd_cpus, host_id, io_timeout,\n"
		"                         thin_pool_autoextend_threshold,\n"
		"                         thin_pool_autoextend_percent; command-line options\n"
		"                         override it\n"
		"  --foreground           run in the foreground (the default)\n"
		"  -h, --help             show this help\n"
		"  -V, --version          show the version\n");
}

static void set_str(char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s) {
		log_error(DLVM_LOG_MAIN, "out of memory");
		exit(1);
	}
	free(*dst);
	*dst = s;
}

static void dlvmd_opts_release(struct dlvmd_opts *o)
{
	free(o->state_dir);
	free(o->devices);
	free(o->nbd_listen);
	free(o->config);
	free(o->host_id);
	free(o->io_timeout);
	free(o->autoextend_threshold);
	free(o->autoextend_percent);
	free(o->nbd_cpus);
	*o = (struct dlvmd_opts){0};
}

/* ---- configuration file ---- */

struct config_parse {
	struct dlvmd_opts *cfg;
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
	if (!strcmp(key, "state_dir"))
		set_str(&cp->cfg->state_dir, value);
	else if (!strcmp(key, "devices"))
		set_str(&cp->cfg->devices, value);
	else if (!strcmp(key, "nbd_listen"))
		set_str(&cp->cfg->nbd_listen, value);
	else if (!strcmp(key, "nbd_cpus"))
		set_str(&cp->cfg->nbd_cpus, value);
	else if (!strcmp(key, "host_id"))
		set_str(&cp->cfg->host_id, value);
	else if (!strcmp(key, "io_timeout"))
		set_str(&cp->cfg->io_timeout, value);
	else if (!strcmp(key, "thin_pool_autoextend_threshold"))
		set_str(&cp->cfg->autoextend_threshold, value);
	else if (!strcmp(key, "thin_pool_autoextend_percent"))
		set_str(&cp->cfg->autoextend_percent, value);
	else {
		if (!cp->bad[0])
			snprintf(cp->bad, sizeof(cp->bad), "unknown key '%.64s'", key);
		return 0;
	}
	return 1;
}

static int config_load(const char *file, struct dlvmd_opts *cfg)
{
	struct config_parse cp = {.cfg = cfg};
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

/* ---- command line ---- */

enum {
	OPT_STATE_DIR = 256,
	OPT_DEVICES,
	OPT_NBD_LISTEN,
	OPT_CONFIG,
	OPT_FOREGROUND,
	OPT_HOST_ID,
	OPT_IO_TIMEOUT,
	OPT_AX_THRESHOLD,
	OPT_AX_PERCENT,
	OPT_NBD_CPUS,
};

static int parse_args(int argc, char **argv, struct dlvmd_opts *o)
{
	static const struct option longopts[] = {
		{"state-dir", required_argument, NULL, OPT_STATE_DIR},
		{"devices", required_argument, NULL, OPT_DEVICES},
		{"nbd-listen", required_argument, NULL, OPT_NBD_LISTEN},
		{"nbd-cpus", required_argument, NULL, OPT_NBD_CPUS},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"foreground", no_argument, NULL, OPT_FOREGROUND},
		{"host-id", required_argument, NULL, OPT_HOST_ID},
		{"io-timeout", required_argument, NULL, OPT_IO_TIMEOUT},
		{"thin-pool-autoextend-threshold", required_argument, NULL, OPT_AX_THRESHOLD},
		{"thin-pool-autoextend-percent", required_argument, NULL, OPT_AX_PERCENT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct dlvmd_opts flags = {0};
	int c;

	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_STATE_DIR: set_str(&flags.state_dir, optarg); break;
		case OPT_DEVICES: set_str(&flags.devices, optarg); break;
		case OPT_NBD_LISTEN: set_str(&flags.nbd_listen, optarg); break;
		case OPT_NBD_CPUS: set_str(&flags.nbd_cpus, optarg); break;
		case OPT_CONFIG: set_str(&flags.config, optarg); break;
		case OPT_FOREGROUND: break;
		case OPT_HOST_ID: set_str(&flags.host_id, optarg); break;
		case OPT_IO_TIMEOUT: set_str(&flags.io_timeout, optarg); break;
		case OPT_AX_THRESHOLD: set_str(&flags.autoextend_threshold, optarg); break;
		case OPT_AX_PERCENT: set_str(&flags.autoextend_percent, optarg); break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("dlvmd %s\n", DLVM_VERSION); exit(0);
		default:
			fprintf(stderr, "Try 'dlvmd --help'.\n");
			dlvmd_opts_release(&flags);
			return 2;
		}
	}
	if (optind < argc) {
		log_error(DLVM_LOG_MAIN, "unexpected argument '%s'. Try 'dlvmd --help'.",
			  argv[optind]);
		dlvmd_opts_release(&flags);
		return 2;
	}

	if (flags.config && config_load(flags.config, o) < 0) {
		dlvmd_opts_release(&flags);
		return 1;
	}
	if (flags.state_dir)
		set_str(&o->state_dir, flags.state_dir);
	if (flags.devices)
		set_str(&o->devices, flags.devices);
	if (flags.nbd_listen)
		set_str(&o->nbd_listen, flags.nbd_listen);
	if (flags.nbd_cpus)
		set_str(&o->nbd_cpus, flags.nbd_cpus);
	if (flags.host_id)
		set_str(&o->host_id, flags.host_id);
	if (flags.io_timeout)
		set_str(&o->io_timeout, flags.io_timeout);
	if (flags.autoextend_threshold)
		set_str(&o->autoextend_threshold, flags.autoextend_threshold);
	if (flags.autoextend_percent)
		set_str(&o->autoextend_percent, flags.autoextend_percent);
	dlvmd_opts_release(&flags);

	if (!o->state_dir || !*o->state_dir) {
		log_error(DLVM_LOG_MAIN, "--state-dir is required. Try 'dlvmd --help'.");
		return 2;
	}
	if (!o->nbd_listen)
		set_str(&o->nbd_listen, DEFAULT_NBD_LISTEN);
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

/*
 * The owner name in lockspaces: host name, ':', state directory. The same
 * daemon restarting finds its own name and rejoins at once; another one
 * does not. Long directories keep their tail (where test dirs differ) after
 * a hash of the whole path.
 */
static void lease_name(const char *dir, char *out, size_t len)
{
	char host[64] = "localhost";
	uint32_t h = 2166136261u;

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	if ((size_t)snprintf(out, len, "%s:%s", host, dir) < len)
		return;
	for (const char *p = dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	host[20] = '\0';
	int used = snprintf(out, len, "%s:%08x:", host, h);
	size_t room = len - 1 - (size_t)used, dl = strlen(dir);
	snprintf(out + used, len - (size_t)used, "%s", dir + (dl > room ? dl - room : 0));
}

/* ---- state directory ---- */

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* One instance per state directory: hold an exclusive lock on DIR/dlvmd.pid. */
static int lock_state_dir(const char *dir)
{
	char path[PATH_MAX + 32], pid[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/dlvmd.pid", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error(DLVM_LOG_MAIN, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		log_error(DLVM_LOG_MAIN, "%s: another dlvmd (pid %s) runs on this state directory",
			  dir, *pid ? pid : "?");
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		log_error(DLVM_LOG_MAIN, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd; /* kept open for the daemon's lifetime */
}

/* An absolute form of a device path (the daemon's cwd must not matter). */
static char *absolute_path(const char *p)
{
	char cwd[PATH_MAX], *out;

	if (p[0] == '/')
		return strdup(p);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, p) < 0)
		return NULL;
	return out;
}

/* Whether a line of the devices file names the same device as path. */
static bool same_device(const char *line, const char *path)
{
	char a[PATH_MAX], b[PATH_MAX], *l = strndup(line, strcspn(line, "\n"));
	bool same;

	if (!l)
		return false;
	if (realpath(l, a) && realpath(path, b))
		same = !strcmp(a, b);
	else
		same = !strcmp(l, path);
	free(l);
	return same;
}

/*
 * Add the comma-separated `devices` to DIR/devices (one path per line),
 * keeping the lines already there. The file is replaced atomically.
 */
static int devices_file_add(const char *dir, const char *devices)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 32], *line = NULL, *list, *save = NULL;
	size_t cap = 0, nold = 0;
	char **old = NULL;
	bool changed = false;
	FILE *f;
	int ret = -1;

	snprintf(path, sizeof(path), "%s/devices", dir);
	f = fopen(path, "r");
	if (f) {
		while (getline(&line, &cap, f) > 0) {
			char **p = realloc(old, (nold + 1) * sizeof(*old));

			if (!p)
				goto out;
			old = p;
			old[nold++] = strdup(line);
		}
		fclose(f);
	} else if (errno != ENOENT) {
		log_error(DLVM_LOG_MAIN, "%s: %s", path, strerror(errno));
		return -1;
	}

	snprintf(tmp, sizeof(tmp), "%s/devices.tmp", dir);
	f = fopen(tmp, "w");
	if (!f) {
		log_error(DLVM_LOG_MAIN, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < nold; i++)
		if (old[i])
			fputs(old[i], f);
	list = strdup(devices);
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *abs = *tok ? absolute_path(tok) : NULL;
		bool known = false;

		if (!abs)
			continue;
		for (size_t i = 0; i < nold && !known; i++)
			known = old[i] && same_device(old[i], abs);
		if (!known) {
			if (nold && old[nold - 1] && !strchr(old[nold - 1], '\n') && !changed)
				fputc('\n', f);
			fprintf(f, "%s\n", abs);
			log_info(DLVM_LOG_MAIN, "%s: added to %s", abs, path);
			changed = true;
		}
		free(abs);
	}
	free(list);
	if (fflush(f) || fsync(fileno(f)) || fclose(f)) {
		log_error(DLVM_LOG_MAIN, "%s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (changed && rename(tmp, path) < 0) {
		log_error(DLVM_LOG_MAIN, "%s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (!changed)
		unlink(tmp);
	ret = 0;
out:
	for (size_t i = 0; i < nold; i++)
		free(old[i]);
	free(old);
	free(line);
	return ret;
}

/* ---- main ---- */

static void log_loaded(const struct dlvm_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nvg; i++)
		log_info(DLVM_LOG_MAIN, "%s: loaded (%zu PV%s, %zu LV%s)", ctx->vgs[i]->info.name,
			 ctx->vgs[i]->npv, ctx->vgs[i]->npv == 1 ? "" : "s", ctx->vgs[i]->nlv,
			 ctx->vgs[i]->nlv == 1 ? "" : "s");
	if (ctx->norphans)
		log_info(DLVM_LOG_MAIN, "%zu device%s without a VG", ctx->norphans,
			 ctx->norphans == 1 ? "" : "s");
}

/* SIGTERM and SIGINT: one thread waits for them (every other thread blocks
 * them), so that a start still joining lockspaces stops too. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_int sig;
	sigset_t set;
} stop = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, { { 0 } } };

static void *signal_main(void *arg)
{
	int sig;

	(void)arg;
	while (sigwait(&stop.set, &sig) != 0)
		;
	pthread_mutex_lock(&stop.mu);
	atomic_store(&stop.sig, sig);
	pthread_cond_broadcast(&stop.cv);
	pthread_mutex_unlock(&stop.mu);
	return NULL;
}

static bool stop_requested(void *priv)
{
	(void)priv;
	return atomic_load(&stop.sig) != 0;
}

static const char *signame(int sig)
{
	return sig == SIGTERM ? "SIGTERM" : "SIGINT";
}

int main(int argc, char **argv)
{
	struct dlvmd_opts o = {0};
	struct dlvm_ctx ctx = {0};
	struct dlvm_export_hooks hooks;
	struct dlvm_exports *ex = NULL;
	struct nbd_server *nbd = NULL;
	struct dlvmd_api *api = NULL;
	struct dlvm_err err = {0};
	char dir[PATH_MAX], nbd_path[PATH_MAX + 16], api_path[PATH_MAX + 16];
	bool ctx_ready = false;
	sigset_t sigs;
	int lock_fd = -1, sig = 0, rc = 1, r;

	dlvmd_log_init();
	r = parse_args(argc, argv, &o);
	if (r) {
		/* the config file may have set some before it was refused */
		dlvmd_opts_release(&o);
		return r;
	}

	if (mkdir_p(o.state_dir) < 0 || !realpath(o.state_dir, dir)) {
		log_error(DLVM_LOG_MAIN, "%s: %s", o.state_dir, strerror(errno));
		goto out;
	}
	snprintf(nbd_path, sizeof(nbd_path), "%s/nbd.sock", dir);
	snprintf(api_path, sizeof(api_path), "%s/dlvmd.sock", dir);
	lock_fd = lock_state_dir(dir);
	if (lock_fd < 0)
		goto out;
	if (o.devices && devices_file_add(dir, o.devices) < 0)
		goto out;

	/* Threads started from here on inherit the blocked set: only the
	 * sigwait below sees SIGTERM and SIGINT. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	stop.set = sigs;
	pthread_t signal_thread;
	if ((r = pthread_create(&signal_thread, NULL, signal_main, NULL))) {
		log_error(DLVM_LOG_MAIN, "cannot start the signal thread: %s", strerror(r));
		goto out;
	}
	pthread_detach(signal_thread);
	static struct dlvm_lease_clock lease_clock;
	lease_clock = dlvm_lease_real_clock;
	lease_clock.stopping = stop_requested;

	log_info(DLVM_LOG_MAIN, "starting on %s (pid %ld)", dir, (long)getpid());
	r = dlvm_ctx_init(&ctx, dir, NULL, true, &err);
	if (r < 0) {
		log_error(DLVM_LOG_MAIN, "%s", err.msg);
		goto out;
	}
	ctx_ready = true;
	ctx.lease_clock = &lease_clock;
	ex = dlvm_exports_new();
	if (!ex) {
		log_error(DLVM_LOG_MAIN, "out of memory");
		goto out;
	}
	dlvmd_hooks_init(&hooks, ex);
	ctx.hooks = &hooks;
	if (o.host_id) {
		long v = parse_num("--host-id", o.host_id, 1, DLVM_LEASE_MAX_HOSTS);
		if (v < 0)
			goto out;
		ctx.host_id = (uint32_t)v;
	}
	if (o.io_timeout) {
		long v = parse_num("--io-timeout", o.io_timeout, 1, DLVM_LEASE_IO_TIMEOUT_MAX);
		if (v < 0)
			goto out;
		ctx.io_timeout = (uint32_t)v;
	} else {
		ctx.io_timeout = DLVM_LEASE_IO_TIMEOUT_DEFAULT;
	}
	ctx.thin_autoextend_threshold = 100;
	ctx.thin_autoextend_percent = 20;
	if (o.autoextend_threshold) {
		long v = parse_num("--thin-pool-autoextend-threshold", o.autoextend_threshold, 50, 100);
		if (v < 0)
			goto out;
		ctx.thin_autoextend_threshold = (uint32_t)v;
	}
	if (o.autoextend_percent) {
		long v = parse_num("--thin-pool-autoextend-percent", o.autoextend_percent, 1, 1000);
		if (v < 0)
			goto out;
		ctx.thin_autoextend_percent = (uint32_t)v;
	}
	bool irq_cpus = !o.nbd_cpus || !strcmp(o.nbd_cpus, "irq");
	if (!irq_cpus && strcmp(o.nbd_cpus, "any")) {
		log_error(DLVM_LOG_MAIN, "--nbd-cpus: '%s' is neither 'irq' nor 'any'", o.nbd_cpus);
		goto out;
	}
	lease_name(dir, ctx.lease_name, sizeof(ctx.lease_name));
	r = dlvm_ctx_load(&ctx, &err);
	if (r < 0) {
		log_error(DLVM_LOG_MAIN, "%s", err.msg);
		goto out;
	}
	log_loaded(&ctx);
	if (ctx.host_id) {
		dlvm_err_clear(&err);
		r = dlvm_ctx_join(&ctx, &err);
		if (r < 0 && !stop_requested(NULL)) {
			log_error(DLVM_LOG_MAIN, "%s", err.msg);
			goto out;
		}
	} else {
		for (size_t i = 0; i < ctx.nvg; i++)
			if (ctx.vgs[i]->info.flags & DLVM_VG_SHARED)
				log_info(DLVM_LOG_MAIN,
					 "%s: shared VG: read-only here (no --host-id)",
					 ctx.vgs[i]->info.name);
	}
	{
		/* problems found while loading go to the log; the first API
		 * response carries them too */
		size_t i;
		json_t *w;
		json_array_foreach(ctx.warnings, i, w)
		    log_warning(DLVM_LOG_MAIN, "%s", json_string_value(w));
	}
	if (stop_requested(NULL)) {
		/* stopped while it joined: the joins done are left again below */
		log_info(DLVM_LOG_MAIN, "%s: shutting down while starting",
			 signame(atomic_load(&stop.sig)));
		rc = 0;
		goto out;
	}
	dlvmd_activate_all(&ctx);
	if (ctx.host_id) {
		unsigned n = dlvm_ctx_adopt(&ctx);
		if (n)
			log_info(DLVM_LOG_MAIN, "re-adopted %u activation%s of the previous run", n,
				 n == 1 ? "" : "s");
	}

	struct nbd_server_opts nopts = {
		.unix_path = nbd_path,
		.tcp_addr = strcmp(o.nbd_listen, "none") ? o.nbd_listen : NULL,
		.irq_cpus = irq_cpus,
	};
	dlvm_err_clear(&err);
	r = nbd_server_start(ex, &nopts, &nbd, &err);
	if (r < 0) {
		log_error(DLVM_LOG_MAIN, "nbd: %s", *err.msg ? err.msg : strerror(-r));
		goto out;
	}
	log_info(DLVM_LOG_MAIN, "nbd: listening on %s%s%s", nbd_path, nopts.tcp_addr ? " and " : "",
		 nopts.tcp_addr ? nopts.tcp_addr : "");

	dlvm_err_clear(&err);
	r = dlvmd_api_start(&ctx, api_path, &api, &err);
	if (r < 0) {
		log_error(DLVM_LOG_MAIN, "api: %s", err.msg);
		goto out;
	}
	log_info(DLVM_LOG_MAIN, "api: listening on %s", api_path);
	dlvmd_api_resume_jobs(api);
	log_info(DLVM_LOG_MAIN, "ready");

	pthread_mutex_lock(&stop.mu);
	while (!(sig = atomic_load(&stop.sig)))
		pthread_cond_wait(&stop.cv, &stop.mu);
	pthread_mutex_unlock(&stop.mu);
	log_info(DLVM_LOG_MAIN, "%s: shutting down", signame(sig));
	rc = 0;
out:
	dlvmd_api_stop(api); /* no command runs after this */
	if (nbd)
		nbd_server_stop(nbd); /* in-flight requests finish and are flushed */
	if (ctx_ready) {
		ctx.hooks = NULL;
		dlvm_ctx_leave(&ctx); /* no I/O under the leases is left */
		dlvm_ctx_release(&ctx);
	}
	if (ex)
		dlvm_exports_free(ex);
	if (lock_fd >= 0)
		close(lock_fd);
	if (rc == 0)
		log_info(DLVM_LOG_MAIN, "stopped");
	dlvmd_opts_release(&o);
	dlvmd_log_release();
	return rc;
}
