/* SPDX-License-Identifier: MIT */
#include "daemon/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
	struct dlvm_log_ring *ring;
	bool journal; /* stderr is the systemd journal's stream */
} sink;

/* systemd sets JOURNAL_STREAM to "DEV:INO" of the stream it connected to
 * stderr; a stderr redirected since (dlvmd 2>file under systemd) does not
 * match and gets no priority prefix. */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static void dlvmd_sink(void *arg, enum dlvm_log_level level, enum dlvm_log_sub sub,
		       const char *line)
{
	static const char *const prio[] = {
		[DLVM_LOG_ERROR] = "<3>",
		[DLVM_LOG_WARNING] = "<4>",
		[DLVM_LOG_INFO] = "<6>",
		[DLVM_LOG_DEBUG] = "<7>",
	};
	const char *ident = sub == DLVM_LOG_NBD && level != DLVM_LOG_DEBUG ? "nbd"
									   : dlvm_log_ident();
	char buf[DLVM_LOG_LINE_MAX + 64];
	int n;

	(void)arg;
	if (level == DLVM_LOG_DEBUG)
		n = snprintf(buf, sizeof(buf), "%s%s: debug: %s: %s\n",
			     sink.journal ? prio[level] : "", ident, dlvm_log_sub_name(sub), line);
	else
		n = snprintf(buf, sizeof(buf), "%s%s: %s%s\n", sink.journal ? prio[level] : "",
			     ident, level == DLVM_LOG_WARNING ? "WARNING: " : "", line);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		n = sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	/* one write per line: lines of threads do not interleave */
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* nowhere to say it */
	}
	if (sink.ring)
		dlvm_log_ring_add(sink.ring, level, sub, line);
}

int dlvmd_log_init(void)
{
	int r;

	dlvm_log_set_ident("dlvmd");
	sink.journal = stderr_is_journal();
	dlvm_log_set_sink(dlvmd_sink, NULL);
	r = dlvm_log_ring_new(DLVMD_LOG_RING_LINES, &sink.ring);
	if (r < 0)
		sink.ring = NULL;
	return r;
}

struct dlvm_log_ring *dlvmd_log_ring(void)
{
	return sink.ring;
}

void dlvmd_log_release(void)
{
	dlvm_log_set_sink(NULL, NULL);
	dlvm_log_ring_free(sink.ring);
	sink.ring = NULL;
}
