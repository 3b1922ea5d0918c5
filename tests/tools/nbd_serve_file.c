/* SPDX-License-Identifier: MIT */
/*
 * nbd_serve_file: serve plain files through dlvmd's NBD server, without a VG.
 * For testing the NBD server on its own.
 *
 *   nbd_serve_file -U SOCKET [-T HOST:PORT] [-a ALIGN] [-s STRIPE] [-b]
 *                  [--fence-after-ms N] EXPORT...
 *   EXPORT: NAME=FILE[,FILE...][:ro]
 *
 * One file makes a linear LV over the whole file; several files make an LV
 * striped over them (stripe size -s, default 64 KiB; size: the smallest file
 * times the number of files, whole stripes only). Files are opened O_DIRECT
 * (-b: buffered) and their sector size is taken to be ALIGN (default 4096).
 *
 * --fence-after-ms N gives every export's map one fence, as a shared VG's
 * maps have, whose deadline is N ms after the start (CLOCK_BOOTTIME): from
 * then on the data path must refuse device I/O. The deadline is never moved;
 * it is printed on stderr ("fence deadline MS ms", CLOCK_BOOTTIME).
 * The fence is named after the VG part of the first export.
 *
 * Signals: SIGTERM/SIGINT stop the server and exit 0; SIGUSR1 rebuilds every
 * export's map from the current file sizes (an "extend"); SIGUSR2 removes the
 * first export with force. Each prints a line on stdout when done.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/exports.h"
#include "daemon/log.h"
#include "daemon/nbd/server.h"
#include "dlvm/map.h"
#include "dlvm/util.h"

#define MAX_EXPORTS 16

struct export_arg {
	char name[256];
	char *files[DLVM_MAX_STRIPES];
	int fds[DLVM_MAX_STRIPES];
	uint32_t nfiles;
	bool readonly;
};

static uint32_t align = 4096;
static uint64_t stripe = 64 << 10;
static bool buffered;
static struct dlvm_fence *fence; /* --fence-after-ms, else NULL */

static struct dlvm_lv_map *build_map(struct export_arg *e)
{
	struct dlvm_lv_map *m = calloc(1, sizeof(*m));
	uint64_t min = UINT64_MAX;

	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->readonly = e->readonly;
	m->fence = fence ? dlvm_fence_get(fence) : NULL;
	snprintf(m->vg, sizeof(m->vg), "%.*s", (int)DLVM_MIN(strcspn(e->name, "/"), 127), e->name);
	snprintf(m->lv, sizeof(m->lv), "%.127s",
		 strchr(e->name, '/') ? strchr(e->name, '/') + 1 : e->name);
	m->ndev = e->nfiles;
	m->devs = calloc(e->nfiles, sizeof(*m->devs));
	m->nseg = 1;
	m->segs = calloc(1, sizeof(*m->segs));
	if (!m->devs || !m->segs) {
		dlvm_lv_map_put(m);
		return NULL;
	}
	for (uint32_t i = 0; i < e->nfiles; i++) {
		struct stat st;
		if (fstat(e->fds[i], &st) < 0) {
			dlvm_lv_map_put(m);
			return NULL;
		}
		if ((uint64_t)st.st_size < min)
			min = (uint64_t)st.st_size;
		m->devs[i].fd = e->fds[i];
		m->devs[i].sector_size = align;
		m->devs[i].direct = !buffered;
		m->devs[i].blockdev = S_ISBLK(st.st_mode);
		snprintf(m->devs[i].name, sizeof(m->devs[i].name), "%s", e->files[i]);
	}
	struct dlvm_map_seg *s = &m->segs[0];
	if (e->nfiles == 1) {
		s->len = min;
		s->stripes = 1;
		s->stripe_size = min;
	} else {
		s->len = min / stripe * stripe * e->nfiles;
		s->stripes = e->nfiles;
		s->stripe_size = stripe;
	}
	for (uint32_t i = 0; i < e->nfiles; i++) {
		s->area_dev[i] = i;
		s->area_off[i] = 0;
	}
	m->size = s->len;
	return m;
}

static int parse_export(char *arg, struct export_arg *e)
{
	char *eq = strchr(arg, '='), *files, *tok, *save = NULL;
	size_t n;

	if (!eq)
		return -1;
	n = (size_t)(eq - arg);
	if (n >= sizeof(e->name))
		return -1;
	memcpy(e->name, arg, n);
	e->name[n] = '\0';
	files = eq + 1;
	n = strlen(files);
	if (n > 3 && !strcmp(files + n - 3, ":ro")) {
		e->readonly = true;
		files[n - 3] = '\0';
	}
	for (tok = strtok_r(files, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (e->nfiles == DLVM_MAX_STRIPES)
			return -1;
		int flags = (e->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
			    (buffered ? 0 : O_DIRECT);
		int fd = open(tok, flags);
		if (fd < 0) {
			fprintf(stderr, "nbd_serve_file: %s: %s\n", tok, strerror(errno));
			exit(1);
		}
		e->files[e->nfiles] = tok;
		e->fds[e->nfiles++] = fd;
	}
	return e->nfiles ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: nbd_serve_file -U SOCKET [-T HOST:PORT] [-a ALIGN] [-s STRIPE] "
			"[-b] [--fence-after-ms N] NAME=FILE[,FILE...][:ro]...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct nbd_server_opts o = { 0 };
	static struct export_arg exps[MAX_EXPORTS];
	struct dlvm_exports *ex;
	struct nbd_server *srv;
	struct dlvm_err err = { 0 };
	static const struct option longopts[] = {
		{ "fence-after-ms", required_argument, NULL, 'F' },
		{ 0 },
	};
	int nexp = 0, opt, sig;
	sigset_t set;
	char *end;

	dlvmd_log_init(); /* NBD lines as dlvmd prints them: "nbd: WHAT: message" */
	while ((opt = getopt_long(argc, argv, "U:T:a:s:b", longopts, NULL)) != -1) {
		switch (opt) {
		case 'F': {
			uint64_t ms = strtoull(optarg, &end, 10);
			if (*end || end == optarg)
				usage();
			fence = dlvm_fence_new("");
			if (!fence)
				return 1;
			dlvm_fence_set(fence, dlvm_now_ms() + ms);
			fprintf(stderr, "nbd_serve_file: fence deadline %" PRIu64 " ms\n",
				atomic_load(&fence->deadline_ms));
			break;
		}
		case 'U': o.unix_path = optarg; break;
		case 'T': o.tcp_addr = optarg; break;
		case 'a': align = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 's': stripe = strtoull(optarg, NULL, 0); break;
		case 'b': buffered = true; break;
		default: usage();
		}
	}
	if (optind == argc || argc - optind > MAX_EXPORTS || !align || !stripe)
		usage();
	ex = dlvm_exports_new();
	if (!ex)
		return 1;
	for (int i = optind; i < argc; i++) {
		struct export_arg *e = &exps[nexp++];
		if (parse_export(argv[i], e) < 0)
			usage();
		if (fence && i == optind)
			snprintf(fence->what, sizeof(fence->what), "%.*s",
				 (int)DLVM_MIN(strcspn(e->name, "/"), DLVM_NAME_MAX), e->name);
		struct dlvm_lv_map *m = build_map(e);
		if (!m || dlvm_exports_set(ex, e->name, m) < 0) {
			fprintf(stderr, "nbd_serve_file: %s: cannot export\n", e->name);
			return 1;
		}
		dlvm_lv_map_put(m);
	}

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (nbd_server_start(ex, &o, &srv, &err) < 0) {
		fprintf(stderr, "nbd_serve_file: %s\n", err.msg);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGUSR1) {
			for (int i = 0; i < nexp; i++) {
				struct dlvm_lv_map *m = build_map(&exps[i]);
				if (m && dlvm_exports_has(ex, exps[i].name))
					dlvm_exports_set(ex, exps[i].name, m);
				dlvm_lv_map_put(m);
			}
			printf("remapped\n");
		} else if (sig == SIGUSR2) {
			int ret = dlvm_exports_remove(ex, exps[0].name, true);
			printf("removed %s: %d\n", exps[0].name, ret);
		}
		fflush(stdout);
	}
	nbd_server_stop(srv);
	dlvm_exports_free(ex);
	for (int i = 0; i < nexp; i++)
		for (uint32_t k = 0; k < exps[i].nfiles; k++)
			close(exps[i].fds[k]);
	dlvm_fence_put(fence);
	printf("stopped\n");
	return 0;
}
