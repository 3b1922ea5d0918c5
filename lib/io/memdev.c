/* SPDX-License-Identifier: MIT */
/* A device in memory with fault injection, for unit tests. */
#include "dlvm/dev.h"

#include <stdlib.h>
#include <string.h>

/* A write in the volatile cache: not durable until the next flush. */
struct pending {
	uint64_t off;
	size_t len;
	uint8_t *buf;
};

struct memdev {
	uint8_t *data; /* what reads see */
	enum dlvm_fault_mode mode;
	long writes_left; /* < 0: no fault armed */
	long writes;
	bool dead;                 /* power lost */
	uint64_t bad_off, bad_len; /* reads touching these bytes fail */
	/* the write cache (dlvm_memdev_set_cache): durable holds what the
	 * medium holds, pend what was written since the last flush */
	uint8_t *durable;
	struct pending *pend;
	size_t npend, cap;
	uint64_t seed;
};

static uint32_t next_rnd(struct memdev *m)
{
	m->seed = m->seed * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(m->seed >> 33);
}

static void drop_pending(struct memdev *m)
{
	for (size_t i = 0; i < m->npend; i++)
		free(m->pend[i].buf);
	m->npend = 0;
}

/* The power goes: of the cached writes, in order, half land whole, three
 * in eight not at all and one in eight in its first sectors only (a
 * one-sector write: not at all). */
static void lose_power(struct dlvm_dev *dev)
{
	struct memdev *m = dev->priv;

	m->dead = true;
	if (!m->durable)
		return;
	for (size_t i = 0; i < m->npend; i++) {
		const struct pending *p = &m->pend[i];
		uint32_t roll = next_rnd(m) % 8;
		size_t sectors = p->len / dev->sector_size, len = 0;
		if (roll < 4)
			len = p->len;
		else if (roll == 7 && sectors > 1)
			len = (1 + next_rnd(m) % (sectors - 1)) * dev->sector_size;
		memcpy(m->durable + p->off, p->buf, len);
	}
	drop_pending(m);
	memcpy(m->data, m->durable, dev->size);
}

static int mem_pread(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct memdev *m = dev->priv;

	if (off > dev->size || len > dev->size - off)
		return -EIO;
	if (m->bad_len && off < m->bad_off + m->bad_len && m->bad_off < off + len)
		return -EIO;
	memcpy(buf, m->data + off, len);
	return 0;
}

static int mem_pwrite(struct dlvm_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct memdev *m = dev->priv;

	if (off > dev->size || len > dev->size - off)
		return -EIO;
	if (m->dead)
		return 0; /* power is off: the write vanishes, the caller cannot tell */
	if (m->writes_left == 0) {
		switch (m->mode) {
		case DLVM_FAULT_EIO: return -EIO;
		case DLVM_FAULT_TEAR: {
			size_t n = len < dev->sector_size ? len : dev->sector_size;
			memcpy(m->data + off, buf, n);
			if (m->durable)
				memcpy(m->durable + off, buf, n);
			lose_power(dev);
			return 0;
		}
		case DLVM_FAULT_POWERLOSS:
		case DLVM_FAULT_CACHE_LOSS: lose_power(dev); return 0;
		case DLVM_FAULT_NONE: break;
		}
	}
	if (m->durable) {
		if (m->npend == m->cap) {
			size_t cap = m->cap ? 2 * m->cap : 64;
			struct pending *np = realloc(m->pend, cap * sizeof(*np));
			if (!np)
				return -ENOMEM;
			m->pend = np;
			m->cap = cap;
		}
		struct pending *p = &m->pend[m->npend];
		if (!(p->buf = malloc(len)))
			return -ENOMEM;
		memcpy(p->buf, buf, len);
		p->off = off;
		p->len = len;
		m->npend++;
	}
	if (m->writes_left > 0)
		m->writes_left--;
	memcpy(m->data + off, buf, len);
	m->writes++;
	return 0;
}

static int mem_flush(struct dlvm_dev *dev)
{
	struct memdev *m = dev->priv;

	if (m->dead)
		return 0;
	if (m->writes_left == 0 && m->mode == DLVM_FAULT_CACHE_LOSS) {
		lose_power(dev);
		return 0;
	}
	for (size_t i = 0; m->durable && i < m->npend; i++)
		memcpy(m->durable + m->pend[i].off, m->pend[i].buf, m->pend[i].len);
	drop_pending(m);
	return 0;
}

static void mem_close(struct dlvm_dev *dev)
{
	struct memdev *m = dev->priv;

	drop_pending(m);
	free(m->pend);
	free(m->durable);
	free(m->data);
	free(m);
}

static const struct dlvm_dev_ops mem_ops = {
	.pread = mem_pread,
	.pwrite = mem_pwrite,
	.flush = mem_flush,
	.close = mem_close,
};

struct dlvm_dev *dlvm_memdev_new(const char *name, uint64_t size, uint32_t sector_size)
{
	struct dlvm_dev *dev = calloc(1, sizeof(*dev));
	struct memdev *m = calloc(1, sizeof(*m));

	if (!dev || !m)
		goto fail;
	m->data = calloc(1, size);
	if (!m->data)
		goto fail;
	m->writes_left = -1;
	dev->ops = &mem_ops;
	dev->priv = m;
	dev->fd = -1;
	dev->size = size;
	dev->sector_size = sector_size;
	dev->path = strdup(name);
	dev->name = strdup(name);
	return dev;
fail:
	if (m)
		free(m->data);
	free(m);
	free(dev);
	return NULL;
}

uint8_t *dlvm_memdev_data(struct dlvm_dev *dev)
{
	return ((struct memdev *)dev->priv)->data;
}

void dlvm_memdev_set_unreadable(struct dlvm_dev *dev, uint64_t off, uint64_t len)
{
	struct memdev *m = dev->priv;

	m->bad_off = off;
	m->bad_len = len;
}

void dlvm_memdev_set_fault(struct dlvm_dev *dev, enum dlvm_fault_mode mode, long writes_left)
{
	struct memdev *m = dev->priv;

	m->mode = mode;
	m->writes_left = mode == DLVM_FAULT_NONE ? -1 : writes_left;
	m->dead = false;
}

long dlvm_memdev_writes(struct dlvm_dev *dev)
{
	return ((struct memdev *)dev->priv)->writes;
}

void dlvm_memdev_set_cache(struct dlvm_dev *dev, uint64_t seed)
{
	struct memdev *m = dev->priv;

	if (!m->durable && (m->durable = malloc(dev->size)))
		memcpy(m->durable, m->data, dev->size);
	m->seed = seed;
}

void dlvm_memdev_power_off(struct dlvm_dev *dev)
{
	lose_power(dev);
}

bool dlvm_memdev_lost_power(struct dlvm_dev *dev)
{
	return ((struct memdev *)dev->priv)->dead;
}
