/* SPDX-License-Identifier: MIT */
/* A device in memory with fault injection, for unit tests. */
#include "dlvm/dev.h"

#include <stdlib.h>
#include <string.h>

struct memdev {
	uint8_t *data;
	enum dlvm_fault_mode mode;
	long writes_left; /* < 0: no fault armed */
	long writes;
	bool dead;        /* power lost */
	uint64_t bad_off, bad_len; /* reads touching these bytes fail */
};

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
		case DLVM_FAULT_EIO:
			return -EIO;
		case DLVM_FAULT_TEAR:
			memcpy(m->data + off, buf, len < dev->sector_size ? len : dev->sector_size);
			m->dead = true;
			return 0;
		case DLVM_FAULT_POWERLOSS:
			m->dead = true;
			return 0;
		case DLVM_FAULT_NONE:
			break;
		}
	}
	if (m->writes_left > 0)
		m->writes_left--;
	memcpy(m->data + off, buf, len);
	m->writes++;
	return 0;
}

static int mem_flush(struct dlvm_dev *dev)
{
	(void)dev;
	return 0;
}

static void mem_close(struct dlvm_dev *dev)
{
	struct memdev *m = dev->priv;

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
