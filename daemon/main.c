/* SPDX-License-Identifier: MIT */
/*
 * dlvmd: the per-host daemon. Loads every VG on the managed devices,
 * activates (exports over NBD) every LV, serves the control API for the CLI
 * and stops cleanly on SIGTERM/SIGINT.
 *
 * main runs the steps in order: options, state directory, signals, the
 * context (VGs loaded), the lockspaces, the exports, the servers; then it
 * waits for a signal and undoes what was done, in reverse.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "daemon/api.h"
#include "daemon/cinder/cinder.h"
#include "daemon/exports.h"
#include "daemon/hooks.h"
#include "daemon/log.h"
#include "daemon/nbd/server.h"
#include "daemon/tls/tls.h"
#include "daemon/options.h"
#include "daemon/statedir.h"
#include "dlvm/cmd.h"
#include "dlvm/lease.h"
#include "dlvm/vg.h"

/* Everything the daemon holds, released by dlvmd_shutdown. */
struct dlvmd {
	struct dlvmd_opts o;
	char dir[PATH_MAX], nbd_path[PATH_MAX + 16], api_path[PATH_MAX + 16];
	char pv_dir[PATH_MAX];
	int lock_fd;
	struct dlvm_ctx *ctx;
	struct dlvm_export_hooks hooks;
	struct dlvm_exports *ex;
	struct nbd_server *nbd;
	struct nbd_tls *tls; /* NBD TLS settings and access rules */
	struct dlvmd_api *api;
	struct dlvmd_cinder *cinder;
};

/* SIGTERM and SIGINT: one thread waits for them (every other thread blocks
 * them), so that a start still joining lockspaces stops too. SIGHUP (a
 * closed terminal, or an operator used to daemons that reload) is said in
 * the log and changes nothing: dlvmd reads its options once, at start. */
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
	for (;;) {
		if (sigwait(&stop.set, &sig))
			continue;
		if (sig != SIGHUP)
			break;
		log_info(DLVM_LOG_MAIN, "SIGHUP: nothing to reload (options are read at start); "
					"still running");
	}
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

/* Block SIGTERM, SIGINT and SIGHUP in this thread and every thread started from
 * here on; only signal_main sees them. */
static int signals_start(void)
{
	pthread_t thread;
	sigset_t sigs;
	int r;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	stop.set = sigs;
	if ((r = pthread_create(&thread, NULL, signal_main, NULL))) {
		log_error(DLVM_LOG_MAIN, "cannot start the signal thread: %s", strerror(r));
		return -r;
	}
	pthread_detach(thread);
	return 0;
}

/* The signal that asked to stop, once one has. */
static int wait_for_stop(void)
{
	int sig;

	pthread_mutex_lock(&stop.mu);
	while (!(sig = atomic_load(&stop.sig)))
		pthread_cond_wait(&stop.cv, &stop.mu);
	pthread_mutex_unlock(&stop.mu);
	return sig;
}

/* Create and lock the state directory, add --devices to its devices file. */
static int state_dir_open(struct dlvmd *d)
{
	if (dlvmd_mkdir_p(d->o.state_dir) < 0 || !realpath(d->o.state_dir, d->dir)) {
		log_error(DLVM_LOG_MAIN, "%s: %s", d->o.state_dir, strerror(errno));
		return -1;
	}
	snprintf(d->nbd_path, sizeof(d->nbd_path), "%s/nbd.sock", d->dir);
	snprintf(d->api_path, sizeof(d->api_path), "%s/dlvmd.sock", d->dir);
	d->lock_fd = dlvmd_state_dir_lock(d->dir);
	if (d->lock_fd < 0 ||
	    dlvmd_pv_dir_open(d->dir, d->o.pv_dir, d->pv_dir, sizeof(d->pv_dir)) < 0)
		return -1;
	if (d->o.devices && dlvmd_devices_file_add(d->dir, d->o.devices) < 0)
		return -1;
	return 0;
}

static void log_loaded(const struct dlvm_ctx *ctx)
{
	size_t orphans = dlvm_ctx_orphan_count(ctx);

	for (size_t i = 0; i < dlvm_ctx_vg_count(ctx); i++) {
		const struct dlvm_vg *vg = dlvm_ctx_vg_at(ctx, i);
		log_info(DLVM_LOG_MAIN, "%s: loaded (%zu PV%s, %zu LV%s)", vg->info.name, vg->npv,
			 vg->npv == 1 ? "" : "s", vg->nlv, vg->nlv == 1 ? "" : "s");
	}
	if (orphans)
		log_info(DLVM_LOG_MAIN, "%zu device%s without a VG", orphans,
			 orphans == 1 ? "" : "s");
}

/* The context with the options' settings, every VG loaded. */
static int ctx_open(struct dlvmd *d)
{
	static struct dlvm_lease_clock lease_clock;
	struct dlvm_err err = { 0 };
	char lease_name[64];

	lease_clock = dlvm_lease_real_clock;
	lease_clock.stopping = stop_requested;
	log_info(DLVM_LOG_MAIN, "starting on %s (pid %ld)", d->dir, (long)getpid());
	d->ex = dlvm_exports_new();
	if (!d->ex) {
		log_error(DLVM_LOG_MAIN, "out of memory");
		return -1;
	}
	dlvmd_hooks_init(&d->hooks, d->ex);
	dlvmd_lease_name(d->dir, lease_name, sizeof(lease_name));
	struct dlvm_ctx_opts co = {
		.state_dir = d->dir,
		.daemon = true,
		.host_id = (uint32_t)d->o.host_id,
		.io_timeout = (uint32_t)d->o.io_timeout,
		.thin_autoextend_threshold = (uint32_t)d->o.autoextend_threshold,
		.thin_autoextend_percent = (uint32_t)d->o.autoextend_percent,
		.lease_name = lease_name,
		.lease_clock = &lease_clock,
		.hooks = &d->hooks,
		.pv_dir = d->pv_dir,
	};
	if (dlvm_ctx_new(&co, &d->ctx, &err) < 0 || dlvm_ctx_load(d->ctx, &err) < 0) {
		log_error(DLVM_LOG_MAIN, "%s", err.msg);
		return -1;
	}
	log_loaded(d->ctx);
	return 0;
}

/* Join the lockspaces of the shared VGs (with --host-id), then log what
 * loading found wrong: the first API response carries it too. */
static int lockspaces_join(struct dlvmd *d)
{
	struct dlvm_ctx *ctx = d->ctx;
	struct dlvm_err err = { 0 };
	size_t i;
	json_t *w;

	if (dlvm_ctx_host_id(ctx)) {
		if (dlvm_ctx_join(ctx, &err) < 0 && !stop_requested(NULL)) {
			log_error(DLVM_LOG_MAIN, "%s", err.msg);
			return -1;
		}
	} else {
		for (i = 0; i < dlvm_ctx_vg_count(ctx); i++)
			if (dlvm_ctx_vg_at(ctx, i)->info.flags & DLVM_VG_SHARED)
				log_info(DLVM_LOG_MAIN,
					 "%s: shared VG: read-only here (no --host-id)",
					 dlvm_ctx_vg_at(ctx, i)->info.name);
	}
	json_array_foreach(dlvm_ctx_warnings(ctx), i, w)
			log_warning(DLVM_LOG_MAIN, "%s", json_string_value(w));
	return 0;
}

/* Export every LV of the local VGs and take back the activations of the
 * shared ones that the previous run held. */
static void exports_activate(struct dlvmd *d)
{
	dlvmd_activate_all(d->ctx, &d->hooks);
	if (dlvm_ctx_host_id(d->ctx)) {
		unsigned n = dlvm_ctx_adopt(d->ctx);
		if (n)
			log_info(DLVM_LOG_MAIN, "re-adopted %u activation%s of the previous run", n,
				 n == 1 ? "" : "s");
	}
}

/* NBD TLS credentials and access rules, read before anything starts so
 * that a bad file or a TCP listener without TLS is refused at once. */
static int tls_open(struct dlvmd *d)
{
	struct nbd_tls_opts t = {
		.mode = d->o.tls,
		.psk_file = d->o.tls_psk,
		.cert_dir = d->o.tls_certificates,
		.access_file = d->o.tls_access,
		.tcp = strcmp(d->o.nbd_listen, "none") != 0,
	};
	struct dlvm_err err = { 0 };

	if (nbd_tls_new(&t, &d->tls, &err) < 0) {
		log_error(DLVM_LOG_MAIN, "nbd: %s", err.msg);
		return -1;
	}
	return 0;
}

/* What the NBD listeners ask of clients, for the log. */
static void log_nbd_tls(const struct dlvmd *d, const char *tcp_addr)
{
	char how[1024];

	if (tcp_addr) {
		nbd_tls_describe(d->tls, true, how, sizeof(how));
		if (nbd_tls_mode(d->tls) == NBD_TLS_REQUIRE)
			log_info(DLVM_LOG_MAIN, "nbd: TCP %s: %s", tcp_addr, how);
		else
			log_warning(DLVM_LOG_MAIN, "nbd: TCP %s: %s", tcp_addr, how);
	}
	nbd_tls_describe(d->tls, false, how, sizeof(how));
	log_info(DLVM_LOG_MAIN, "nbd: Unix socket: %s", how);
}

/* Each NBD connection takes a few file descriptors (its socket, its ring,
 * its committer's eventfd): the soft limit goes up to the hard one, and a
 * hard limit too low for --nbd-max-connections is said. */
static void fd_limit_raise(const struct dlvmd *d)
{
	struct rlimit rl;
	const rlim_t per_conn = 4, reserve = 256;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < reserve + per_conn * (rlim_t)d->o.nbd_max_connections)
		log_warning(DLVM_LOG_MAIN,
			    "nbd: the limit of %llu open files allows about %llu connections, "
			    "fewer than --nbd-max-connections %ld",
			    (unsigned long long)rl.rlim_cur,
			    (unsigned long long)(rl.rlim_cur > reserve ? (rl.rlim_cur - reserve) /
											 per_conn
								       : 0),
			    d->o.nbd_max_connections);
}

/* The Cinder API, when --cinder-pool names its pool; after the native API,
 * whose command lock it shares. */
static int cinder_start(struct dlvmd *d, const char *nbd_tcp)
{
	struct dlvmd_cinder_opts co = {
		.listen = d->o.cinder_listen,
		.pool = d->o.cinder_pool,
		.type_name = d->o.cinder_type,
		.auth = d->o.cinder_auth,
		.noauth_network = !strcmp(d->o.cinder_noauth_network, "yes"),
		.nbd_socket = d->nbd_path,
		.nbd_listen = nbd_tcp,
		.nbd_tls = d->o.tls,
	};
	struct dlvm_err err = { 0 };
	int r;

	if (!d->o.cinder_pool || !strcmp(d->o.cinder_listen, "none"))
		return 0;
	if ((r = dlvmd_cinder_start(d->ctx, &co, &d->cinder, &err)) < 0) {
		log_error(DLVM_LOG_MAIN, "%s", err.msg);
		return r;
	}
	log_info(DLVM_LOG_MAIN, "cinder: listening on http://%s/v3 (%s, volumes in %s)",
		 d->o.cinder_listen, d->o.cinder_auth, d->o.cinder_pool);
	return 0;
}

/* The NBD server, then the API; flattens left unfinished go on. */
static int servers_start(struct dlvmd *d)
{
	struct nbd_server_opts nopts = {
		.unix_path = d->nbd_path,
		.tcp_addr = strcmp(d->o.nbd_listen, "none") ? d->o.nbd_listen : NULL,
		.irq_cpus = !strcmp(d->o.nbd_cpus, "irq"),
		.tls = d->tls,
		.limits = {
			.max_conns = (unsigned)d->o.nbd_max_connections,
			.max_client_conns = (unsigned)d->o.nbd_max_client_connections,
			.handshake_ms = (unsigned)d->o.nbd_handshake_timeout * 1000u,
			.idle_ms = (unsigned)d->o.nbd_idle_timeout * 1000u,
			.conn_buf = (uint64_t)d->o.nbd_conn_buffers << 20,
			.total_buf = (uint64_t)d->o.nbd_buffers << 20,
		},
	};
	struct dlvm_err err = { 0 };
	int r;

	fd_limit_raise(d);
	r = nbd_server_start(d->ex, &nopts, &d->nbd, &err);
	if (r < 0) {
		log_error(DLVM_LOG_MAIN, "nbd: %s", *err.msg ? err.msg : strerror(-r));
		return r;
	}
	log_info(DLVM_LOG_MAIN, "nbd: listening on %s%s%s", d->nbd_path,
		 nopts.tcp_addr ? " and " : "", nopts.tcp_addr ? nopts.tcp_addr : "");
	log_nbd_tls(d, nopts.tcp_addr);
	dlvm_err_clear(&err);
	r = dlvmd_api_start(d->ctx, d->api_path, &d->api, &err);
	if (r < 0) {
		log_error(DLVM_LOG_MAIN, "api: %s", err.msg);
		return r;
	}
	log_info(DLVM_LOG_MAIN, "api: listening on %s", d->api_path);
	if ((r = cinder_start(d, nopts.tcp_addr)) < 0)
		return r;
	dlvmd_api_resume_jobs(d->api);
	log_info(DLVM_LOG_MAIN, "ready");
	return 0;
}

static void dlvmd_shutdown(struct dlvmd *d)
{
	dlvmd_cinder_stop(d->cinder); /* before the lock it shares goes */
	dlvmd_api_stop(d->api);       /* no command runs after this */
	if (d->nbd)
		nbd_server_stop(d->nbd); /* in-flight requests finish and are flushed */
	if (d->ctx) {
		dlvm_ctx_set_hooks(d->ctx, NULL);
		dlvm_ctx_leave(d->ctx); /* no I/O under the leases is left */
		dlvm_ctx_free(d->ctx);
	}
	if (d->ex)
		dlvm_exports_free(d->ex);
	nbd_tls_free(d->tls);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
}

int main(int argc, char **argv)
{
	static struct dlvmd d = { .lock_fd = -1 };
	int rc = 1, r;

	dlvmd_log_init();
	r = dlvmd_opts_parse(argc, argv, &d.o);
	if (r) {
		dlvmd_opts_release(&d.o);
		return r;
	}
	if (tls_open(&d) < 0 || state_dir_open(&d) < 0 || signals_start() < 0 || ctx_open(&d) < 0 ||
	    lockspaces_join(&d) < 0)
		goto out;
	if (stop_requested(NULL)) {
		/* stopped while it joined: the joins done are left again below */
		log_info(DLVM_LOG_MAIN, "%s: shutting down while starting",
			 signame(atomic_load(&stop.sig)));
		rc = 0;
		goto out;
	}
	exports_activate(&d);
	if (servers_start(&d) < 0)
		goto out;
	log_info(DLVM_LOG_MAIN, "%s: shutting down", signame(wait_for_stop()));
	rc = 0;
out:
	dlvmd_shutdown(&d);
	if (rc == 0)
		log_info(DLVM_LOG_MAIN, "stopped");
	dlvmd_opts_release(&d.o);
	dlvmd_log_release();
	return rc;
}
