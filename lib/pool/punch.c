/* SPDX-License-Identifier: MIT */
/* Giving the data chunks that commits freed back to the PV files, and
 * letting cooling chunks go. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/log.h"
#include "dlvm/util.h"
#include "dlvm/vg.h"
#include "pool_int.h"

/*
 * Two bitmaps of data chunks, freed_cap chunks each: `freed` holds what
 * commits freed since the last pass, `aged` what a pass took over and may
 * punch once every write begun before it took them over has ended. Handing a
 * chunk out clears its bits (provision), so a chunk written since it was
 * taken over is never punched.
 */
static void bit_clear(struct dlvm_thin_pool *p, uint64_t *map, uint64_t *count, uint64_t c)
{
	if (c < p->freed_cap && map[c / 64] >> (c % 64) & 1) {
		map[c / 64] &= ~(1ull << (c % 64));
		(*count)--;
	}
}

/* The store's hook: a commit freed chunks [chunk, chunk + n) (mu held). A
 * bitmap that cannot grow loses the run: those chunks keep their data,
 * which costs space, not correctness. */
void pool_chunks_freed(void *arg, uint64_t chunk, uint64_t n)
{
	struct dlvm_thin_pool *p = arg;
	uint64_t need = chunk + n;

	if (p->punch_off)
		return;
	if (need > p->freed_cap) {
		uint64_t cap = DLVM_MAX(need, p->data->size / p->chunk_size);
		cap = DLVM_MAX(cap, 2 * p->freed_cap);
		cap = (cap + 63) / 64 * 64;
		uint64_t *f = realloc(p->freed, cap / 8);
		if (f)
			p->freed = f;
		uint64_t *a = f ? realloc(p->aged, cap / 8) : NULL;
		if (a)
			p->aged = a;
		if (!a)
			return;
		memset((uint8_t *)f + p->freed_cap / 8, 0, (cap - p->freed_cap) / 8);
		memset((uint8_t *)a + p->freed_cap / 8, 0, (cap - p->freed_cap) / 8);
		p->freed_cap = cap;
	}
	for (uint64_t c = chunk; c < need; c++)
		if (!(p->freed[c / 64] >> (c % 64) & 1)) {
			p->freed[c / 64] |= 1ull << (c % 64);
			p->nfreed++;
		}
}

/* A chunk is handed out: it is no longer one to punch (mu held). */
void pool_chunk_taken(struct dlvm_thin_pool *p, uint64_t c)
{
	bit_clear(p, p->freed, &p->nfreed, c);
	bit_clear(p, p->aged, &p->naged, c);
}

/* The first bit of map at or after from that is `set`; cap if none. */
static uint64_t next_bit(const uint64_t *map, uint64_t cap, uint64_t from, bool set)
{
	uint64_t c = from;

	while (c < cap) {
		uint64_t w = set ? map[c / 64] : ~map[c / 64];
		w &= ~0ull << (c % 64);
		if (w)
			return DLVM_MIN(cap, c / 64 * 64 + (uint64_t)__builtin_ctzll(w));
		c = (c / 64 + 1) * 64;
	}
	return cap;
}

/*
 * Every write begun before now has ended (mu held). With writes in flight,
 * a new epoch starts and the old one is waited for, until until_ns at the
 * latest; a wait that ran out leaves that epoch draining, as a snapshot's
 * quiesce would.
 */
static bool writes_drained(struct dlvm_thin_pool *p, uint64_t until_ns)
{
	unsigned old = p->epoch;
	struct timespec until = dlvm_mono_until(until_ns); /* until_ns: dlvm_now_ns */

	if (!p->inflight[0] && !p->inflight[1])
		return true;
	if (p->inflight[old ^ 1])
		return false;
	p->epoch = old ^ 1;
	while (p->inflight[old])
		if (pthread_cond_timedwait(&p->drained, &p->mu, &until) == ETIMEDOUT)
			return !p->inflight[old];
	return true;
}

void dlvm_thin_pool_cool(struct dlvm_thin_pool *p, uint64_t until_ns)
{
	pthread_mutex_lock(&p->mu);
	if (p->store && dlvm_thin_cooling(p->store)) {
		/* sealed before the drain starts: every write that may hold one
		 * of these chunks began before it */
		dlvm_thin_cool_seal(p->store);
		if (writes_drained(p, until_ns))
			dlvm_thin_cool_release(p->store);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Punch data chunks [first, first + n) out of the PV files they lie on
 * (mu held). */
static int punch_chunks(struct dlvm_thin_pool *p, uint64_t first, uint64_t n, struct dlvm_err *err)
{
	uint64_t len = n * p->chunk_size, done = 0;

	while (done < len) {
		struct dlvm_map_piece pc;
		pool_chunk_piece(p, first, done, len - done, &pc);
		const struct dlvm_map_dev *d = &p->data->devs[pc.dev];
		if (!d->blockdev && fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					      (off_t)pc.dev_off, (off_t)pc.len) < 0)
			return dlvm_err_set(err, -errno,
					    "%s: punch chunks %" PRIu64 "-%" PRIu64
					    " out of %s: %s; freed chunks keep their data from now "
					    "on",
					    p->name, first, first + n - 1, d->name,
					    strerror(errno));
		done += pc.len;
	}
	return 0;
}

/* Chunks punched per fallocate: each call holds the PV file's inode lock
 * (every direct I/O on the file waits), for up to about 100 µs per extent
 * it removes. */
#define PUNCH_PIECE 32

/* Punching may go on (mu held): the store is still this host's to change. */
static bool may_punch(struct dlvm_thin_pool *p)
{
	return p->store && !p->broken && !p->punch_off && dlvm_fence_ok(p->fence);
}

uint64_t dlvm_thin_pool_punch(struct dlvm_thin_pool *p, uint64_t until_ns, struct dlvm_err *err)
{
	uint64_t punched = 0;

	pthread_mutex_lock(&p->mu);
	if (!may_punch(p) || (!p->nfreed && !p->naged))
		goto out;
	if (p->nfreed) {
		/* take over what commits freed so far; the drain below covers
		 * every write that could still land on it */
		for (uint64_t w = 0; w < p->freed_cap / 64; w++) {
			p->aged[w] |= p->freed[w];
			p->freed[w] = 0;
		}
		p->naged = 0;
		for (uint64_t w = 0; w < p->freed_cap / 64; w++)
			p->naged += (uint64_t)__builtin_popcountll(p->aged[w]);
		p->nfreed = 0;
	}
	if (!writes_drained(p, until_ns))
		goto out;
	uint64_t cap = p->freed_cap, c = p->freed_cursor;
	while (p->naged && may_punch(p) && dlvm_now_ns() < until_ns) {
		if ((c = next_bit(p->aged, cap, c, true)) == cap &&
		    (c = next_bit(p->aged, cap, 0, true)) == cap)
			break;
		uint64_t end = DLVM_MIN(next_bit(p->aged, cap, c + 1, false), c + PUNCH_PIECE);
		for (uint64_t i = c; i < end; i++)
			bit_clear(p, p->aged, &p->naged, i);
		/* only what is still free (a chunk freed again since waits for
		 * its own commit) */
		while (c < end) {
			uint64_t f = dlvm_thin_free_run(p->store, c, end - c);
			if (f && punch_chunks(p, c, f, err)) {
				p->punch_off = true;
				p->nfreed = p->naged = 0;
				goto out;
			}
			punched += f;
			c += f ? f : 1;
		}
		p->freed_cursor = c;
		/* the data path may take the mutex between two pieces */
		pthread_mutex_unlock(&p->mu);
		pthread_mutex_lock(&p->mu);
	}
out:
	pthread_mutex_unlock(&p->mu);
	return punched;
}
