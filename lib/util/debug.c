/* SPDX-License-Identifier: MIT */
/* Named pause points for tests (dlvm/debug.h). */
#include "dlvm/debug.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlvm/log.h"

#define POINTS_MAX 8

atomic_bool dlvm_debug_pause_armed;

static char points[POINTS_MAX][32];
static char arm_file[4096]; /* DLVM_DEBUG_PAUSE_ARM: pause only while it exists */
static size_t npoints;
static bool fired[POINTS_MAX];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void debug_pause_init(void)
{
	const char *v = getenv("DLVM_DEBUG_PAUSE"), *arm = getenv("DLVM_DEBUG_PAUSE_ARM");

	while (v && *v && npoints < POINTS_MAX) {
		size_t len = strcspn(v, ",");
		if (len && len < sizeof(points[0])) {
			memcpy(points[npoints], v, len);
			points[npoints++][len] = '\0';
		}
		v += len + (v[len] == ',');
	}
	if (arm && strlen(arm) < sizeof(arm_file))
		memcpy(arm_file, arm, strlen(arm) + 1);
	atomic_store(&dlvm_debug_pause_armed, npoints > 0);
}

void dlvm_debug_pause_at(const char *point)
{
	bool stop = false;

	if (arm_file[0] && access(arm_file, F_OK))
		return;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < npoints; i++)
		if (!fired[i] && !strcmp(points[i], point))
			stop = fired[i] = true;
	pthread_mutex_unlock(&mu);
	if (!stop)
		return;
	log_warning(DLVM_LOG_LEASE, "debug pause at %s: stopping (DLVM_DEBUG_PAUSE)", point);
	raise(SIGSTOP);
	log_warning(DLVM_LOG_LEASE, "debug pause at %s: continued", point);
}
