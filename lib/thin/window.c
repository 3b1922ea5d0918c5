/* SPDX-License-Identifier: MIT */
/*
 * The metadata device read in windows of TH_WALK_WIN blocks while a walk
 * runs (walk.c). Metadata blocks are handed out lowest first, so the nodes
 * in use fill the front of the device in whatever order the trees reach
 * them: a dozen large reads fetch what would otherwise be thousands of
 * small ones.
 *
 * The walk says which blocks it will need soon (the children of each
 * internal node it reads, in the order it visits them); a reader thread
 * reads their windows in that order while the walk decodes what it has, so
 * the reads overlap with the walk's work. Several readers keep a few windows
 * in flight at once, which a device with queues reads faster than one at a
 * time. A window the walk needs before
 * the reader got to it is read by the walk itself. A window that fails to
 * read is marked unreadable: the walk then reads its blocks one at a time,
 * so that an error names the very block.
 *
 * Windows count against a budget (queued, being read or read); past it,
 * blocks are not windowed at all and the walk reads them its own way.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dlvm/dev.h"
#include "dlvm/util.h"
#include "thin_int.h"

enum win_state {
	WIN_NONE,    /* not asked for */
	WIN_QUEUED,  /* waiting for the reader */
	WIN_READING, /* being read (by the reader or the walk) */
	WIN_READ,
	WIN_UNREADABLE,
};

struct th_windows {
	struct dlvm_dev *dev;
	uint64_t blocks;     /* windows end here */
	size_t n, max, held; /* windows, budget, windows not WIN_NONE/UNREADABLE */
	uint8_t **buf;       /* per window, once WIN_READ */
	uint8_t *state;      /* enum win_state per window */
	size_t *queue;       /* windows for the reader, in order; each once */
	size_t qhead, qtail;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a window changed state, or the queue grew */
	pthread_t reader[TH_WALK_READERS];
	unsigned nreaders; /* reader threads started */
	bool stop;
};

static uint64_t win_blocks(const struct th_windows *ws, size_t i)
{
	uint64_t first = (uint64_t)i * TH_WALK_WIN;

	return DLVM_MIN(first + TH_WALK_WIN, ws->blocks) - first;
}

#define WIN_BYTES ((size_t)TH_WALK_WIN * TH_BLOCK)

/* A window's buffer: a mapping of its own, on a huge page where the kernel
 * gives one. The read fills it whole, so it is not cleared first; and a
 * window of 4 KiB pages would cost the walk 512 page faults, which took
 * more time at open than decoding the nodes (a window is exactly one huge
 * page). */
static uint8_t *win_alloc(void)
{
	size_t span = 2 * WIN_BYTES;
	uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* keep the one aligned window inside, give back the rest */
	uint8_t *a = (uint8_t *)dlvm_align_up((uintptr_t)p, WIN_BYTES);
	if (a > p)
		munmap(p, (size_t)(a - p));
	munmap(a + WIN_BYTES, (size_t)(p + span - (a + WIN_BYTES)));
#ifdef MADV_HUGEPAGE
	madvise(a, WIN_BYTES, MADV_HUGEPAGE);
#endif
	return a;
}

static void win_unmap(uint8_t *buf)
{
	if (buf)
		munmap(buf, WIN_BYTES);
}

/* Read window i without the lock; returns its buffer or NULL. */
static uint8_t *win_read(struct th_windows *ws, size_t i)
{
	size_t len = (size_t)win_blocks(ws, i) * TH_BLOCK;
	uint8_t *buf = win_alloc();

	if (buf && dlvm_dev_read(ws->dev, buf, len, (uint64_t)i * TH_WALK_WIN * TH_BLOCK, NULL)) {
		win_unmap(buf);
		buf = NULL;
	}
	return buf;
}

/* Count window i against the budget if it is not asked for yet and the
 * budget allows: it becomes WIN_QUEUED (mu held). True when it did. */
static bool win_claim(struct th_windows *ws, size_t i)
{
	if (ws->state[i] != WIN_NONE || ws->held >= ws->max)
		return false;
	ws->state[i] = WIN_QUEUED;
	ws->held++;
	return true;
}

/* Window i was read (buf) or failed (NULL): record it (mu held). */
static void win_done(struct th_windows *ws, size_t i, uint8_t *buf)
{
	ws->buf[i] = buf;
	ws->state[i] = buf ? WIN_READ : WIN_UNREADABLE;
	if (!buf)
		ws->held--;
	pthread_cond_broadcast(&ws->cv);
}

static void *reader_main(void *arg)
{
	struct th_windows *ws = arg;

	pthread_mutex_lock(&ws->mu);
	for (;;) {
		while (!ws->stop && ws->qhead == ws->qtail)
			pthread_cond_wait(&ws->cv, &ws->mu);
		if (ws->stop)
			break;
		size_t i = ws->queue[ws->qhead++];
		if (ws->state[i] != WIN_QUEUED)
			continue; /* the walk took it */
		ws->state[i] = WIN_READING;
		pthread_mutex_unlock(&ws->mu);
		uint8_t *buf = win_read(ws, i);
		pthread_mutex_lock(&ws->mu);
		win_done(ws, i, buf);
	}
	pthread_mutex_unlock(&ws->mu);
	return NULL;
}

int th_windows_new(struct dlvm_dev *dev, uint64_t blocks, size_t max, struct th_windows **out)
{
	struct th_windows *ws = calloc(1, sizeof(*ws));

	*out = NULL;
	if (!ws)
		return -ENOMEM;
	pthread_mutex_init(&ws->mu, NULL);
	pthread_cond_init(&ws->cv, NULL);
	ws->dev = dev;
	ws->blocks = DLVM_MIN(blocks, dev->size / TH_BLOCK);
	ws->n = (size_t)((ws->blocks + TH_WALK_WIN - 1) / TH_WALK_WIN);
	ws->max = max;
	ws->buf = calloc(ws->n ? ws->n : 1, sizeof(*ws->buf));
	ws->state = calloc(ws->n ? ws->n : 1, 1);
	ws->queue = calloc(ws->n ? ws->n : 1, sizeof(*ws->queue));
	if (!ws->buf || !ws->state || !ws->queue) {
		th_windows_free(ws);
		return -ENOMEM;
	}
	*out = ws;
	return 0;
}

void th_windows_free(struct th_windows *ws)
{
	if (!ws)
		return;
	if (ws->nreaders) {
		pthread_mutex_lock(&ws->mu);
		ws->stop = true;
		pthread_cond_broadcast(&ws->cv);
		pthread_mutex_unlock(&ws->mu);
		for (unsigned r = 0; r < ws->nreaders; r++)
			pthread_join(ws->reader[r], NULL);
	}
	pthread_mutex_destroy(&ws->mu);
	pthread_cond_destroy(&ws->cv);
	for (size_t i = 0; ws->buf && i < ws->n; i++)
		win_unmap(ws->buf[i]);
	free(ws->buf);
	free(ws->state);
	free(ws->queue);
	free(ws);
}

void th_windows_want(struct th_windows *ws, uint64_t blk)
{
	size_t i = (size_t)(blk / TH_WALK_WIN);

	if (!ws || blk >= ws->blocks)
		return;
	pthread_mutex_lock(&ws->mu);
	if (win_claim(ws, i)) {
		ws->queue[ws->qtail++] = i;
		/* a reader more for each window queued, up to TH_WALK_READERS;
		 * none at all (none could be made): the walk reads the window
		 * itself when it gets there */
		if (ws->nreaders < TH_WALK_READERS &&
		    !pthread_create(&ws->reader[ws->nreaders], NULL, reader_main, ws))
			ws->nreaders++;
		pthread_cond_broadcast(&ws->cv);
	}
	pthread_mutex_unlock(&ws->mu);
}

bool th_windows_may_hold(struct th_windows *ws, uint64_t blk)
{
	size_t i = (size_t)(blk / TH_WALK_WIN);
	bool may;

	if (!ws || blk >= ws->blocks)
		return false;
	pthread_mutex_lock(&ws->mu);
	may = ws->state[i] != WIN_UNREADABLE && (ws->state[i] != WIN_NONE || ws->held < ws->max);
	pthread_mutex_unlock(&ws->mu);
	return may;
}

const uint8_t *th_windows_block(struct th_windows *ws, uint64_t blk)
{
	size_t i = (size_t)(blk / TH_WALK_WIN);
	const uint8_t *p = NULL;

	if (!ws || blk >= ws->blocks)
		return NULL;
	pthread_mutex_lock(&ws->mu);
	win_claim(ws, i);
	if (ws->state[i] == WIN_QUEUED) {
		/* needed now: read it here rather than wait behind the queue */
		ws->state[i] = WIN_READING;
		pthread_mutex_unlock(&ws->mu);
		uint8_t *buf = win_read(ws, i);
		pthread_mutex_lock(&ws->mu);
		win_done(ws, i, buf);
	}
	while (ws->state[i] == WIN_READING)
		pthread_cond_wait(&ws->cv, &ws->mu);
	if (ws->state[i] == WIN_READ)
		p = ws->buf[i] + (blk % TH_WALK_WIN) * TH_BLOCK;
	pthread_mutex_unlock(&ws->mu);
	return p;
}
