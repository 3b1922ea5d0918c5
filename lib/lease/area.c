/* SPDX-License-Identifier: MIT */
/* The lease area: timeouts, the real clock, format, open, and the sector I/O
 * every lease operation goes through. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlvm/timedio.h"
#include "dlvm/util.h"
#include "lib/lease/lease_int.h"

int dlvm_lease_timeouts(uint32_t io_timeout, struct dlvm_lease_timeouts *t)
{
	if (io_timeout < 1 || io_timeout > DLVM_LEASE_IO_TIMEOUT_MAX)
		return -EINVAL;
	uint64_t T = (uint64_t)io_timeout * 1000;
	t->io_timeout_ms = T;
	t->renew_interval_ms = T / 2;
	t->renew_fail_ms = 3 * T;
	t->inflight_ms = T;
	t->host_dead_ms = t->renew_fail_ms + t->inflight_ms + T;
	t->acquire_wait_ms = 2 * T;
	t->takeover_max_ms = t->renew_interval_ms + t->host_dead_ms;
	return 0;
}

static uint64_t real_now_ms(void *priv)
{
	(void)priv;
	return dlvm_now_ms();
}

static void real_sleep_ms(void *priv, uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000 };
	(void)priv;

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

const struct dlvm_lease_clock dlvm_lease_real_clock = {
	.now_ms = real_now_ms,
	.sleep_ms = real_sleep_ms,
	.priv = NULL,
};

/* ---- offsets and sector I/O ---- */

uint64_t lease_delta_off(const struct dlvm_lease_area *a, uint32_t host_id)
{
	return a->offset + a->hdr.lockspace_offset + (uint64_t)(host_id - 1) * a->hdr.sector_size;
}

uint64_t lease_leader_off(const struct dlvm_lease_area *a, uint32_t res)
{
	return a->offset + a->hdr.resource_offset + (uint64_t)res * a->hdr.resource_stride;
}

uint64_t lease_dblock_off(const struct dlvm_lease_area *a, uint32_t res, uint32_t host_id)
{
	return lease_leader_off(a, res) + (uint64_t)host_id * a->hdr.sector_size;
}

int lease_dev_io(struct dlvm_lease_area *a, void *buf, size_t len, uint64_t off, bool write,
		 struct dlvm_err *err)
{
	struct dlvm_dev *dev = a->dev;
	uint64_t t = a->io_timeout_ms;
	int r;

	if (write && dev->readonly)
		return dlvm_err_set(err, -EROFS, "%s: opened read-only", dev->name);
	if (t && dlvm_dev_is_plain(dev))
		r = dlvm_timed_rw(dev->fd, buf, len, off, write, t);
	else /* a device with a timeout of its own (dlvm_dev_set_timeout), or none */
		r = write ? dev->ops->pwrite(dev, buf, len, off)
			  : dev->ops->pread(dev, buf, len, off);
	if (r == -ETIMEDOUT)
		return dlvm_err_set(err, r,
				    "%s: %s of %zu bytes at offset %" PRIu64
				    " did not complete in %" PRIu64 " ms (the I/O timeout)",
				    dev->name, write ? "write" : "read", len, off,
				    t ? t : dlvm_dev_timeout(dev));
	if (r)
		return dlvm_err_set(err, r, "%s: %s of %zu bytes at offset %" PRIu64 " failed: %s",
				    dev->name, write ? "write" : "read", len, off, strerror(-r));
	return 0;
}

int lease_read(struct dlvm_lease_area *a, void *buf, uint32_t count, uint64_t off, const char *what,
	       struct dlvm_err *err)
{
	int r = lease_dev_io(a, buf, (size_t)count * a->hdr.sector_size, off, false, err);
	if (r)
		return dlvm_err_prefix(err, r, "%s: %s: ", a->where, what);
	return 0;
}

int lease_write(struct dlvm_lease_area *a, const void *buf, uint64_t off, const char *what,
		struct dlvm_err *err)
{
	int r = lease_dev_io(a, (void *)buf, a->hdr.sector_size, off, true, err);
	if (r)
		return dlvm_err_prefix(err, r, "%s: %s: ", a->where, what);
	return 0;
}

int lease_decode_delta(struct dlvm_lease_area *a, const uint8_t *buf, uint32_t host_id,
		       struct dlvm_delta_record *rec, struct dlvm_err *err)
{
	int r = dlvm_delta_decode(buf, rec, err);
	if (!r && rec->host_id && rec->host_id != host_id)
		r = dlvm_err_set(err, -EBADMSG,
				 "delta lease field host_id is %u in the sector "
				 "of host id %u",
				 rec->host_id, host_id);
	if (!r && rec->host_id && memcmp(rec->vg_uuid, a->hdr.vg_uuid, 16)) {
		char u[DLVM_UUID_STR];
		dlvm_uuid_unparse(rec->vg_uuid, u);
		r = dlvm_err_set(err, -EBADMSG, "delta lease belongs to another VG (%s)", u);
	}
	if (r)
		return dlvm_err_prefix(err, r, "%s: host id %u at offset %" PRIu64 ": ", a->where,
				       host_id, lease_delta_off(a, host_id));
	return 0;
}

int lease_read_checked(struct dlvm_lease_area *a, const struct dlvm_lease_clock *clock, void *buf,
		       uint32_t count, uint64_t off, const char *what, lease_check_fn check,
		       void *ctx, struct dlvm_err *err)
{
	if (!clock)
		clock = &dlvm_lease_real_clock;
	for (int attempt = 1;; attempt++) {
		struct dlvm_err e = { 0 };
		int r = lease_read(a, buf, count, off, what, err);
		if (r)
			return r;
		r = check(ctx, buf, &e);
		if (r == -EBADMSG && attempt < LEASE_READ_ATTEMPTS) {
			clock->sleep_ms(clock->priv, 1);
			continue;
		}
		if (r)
			dlvm_err_set(err, r, "%s", e.msg);
		return r;
	}
}

struct delta_check {
	struct dlvm_lease_area *a;
	uint32_t host_id;
	struct dlvm_delta_record *rec;
};

static int check_delta(void *ctx, const uint8_t *buf, struct dlvm_err *err)
{
	struct delta_check *c = ctx;
	return lease_decode_delta(c->a, buf, c->host_id, c->rec, err);
}

int lease_read_delta(struct dlvm_lease_area *a, const struct dlvm_lease_clock *clock, uint8_t *buf,
		     uint32_t host_id, const char *what, struct dlvm_delta_record *rec,
		     struct dlvm_err *err)
{
	struct delta_check c = { a, host_id, rec };

	return lease_read_checked(a, clock, buf, 1, lease_delta_off(a, host_id), what, check_delta,
				  &c, err);
}

/* ---- format and open ---- */

static void set_where(struct dlvm_lease_area *a)
{
	snprintf(a->where, sizeof(a->where), "%s: lease area at offset %" PRIu64, a->dev->name,
		 a->offset);
}

static int check_placement(struct dlvm_dev *dev, uint64_t offset, uint64_t size,
			   struct dlvm_err *err)
{
	uint64_t end;

	if (offset % 4096)
		return dlvm_err_set(err, -EINVAL,
				    "%s: lease area offset %" PRIu64 " is not "
				    "4096-aligned",
				    dev->name, offset);
	if (dlvm_add_overflow(offset, size, &end) || end > dev->size)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: lease area at offset %" PRIu64 " of %" PRIu64
				    " bytes runs past the device end (%" PRIu64 ")",
				    dev->name, offset, size, dev->size);
	return 0;
}

int dlvm_lease_area_format(struct dlvm_dev *dev, uint64_t offset, uint64_t size,
			   const struct dlvm_lease_format_opts *opts, struct dlvm_err *err)
{
	struct dlvm_lease_area a = { .dev = dev, .offset = offset };
	struct dlvm_lease_area_header *h = &a.hdr;
	uint32_t ss = opts->sector_size ? opts->sector_size : dev->sector_size;
	uint32_t hosts = opts->max_hosts ? opts->max_hosts : DLVM_LEASE_MAX_HOSTS;
	uint32_t iot = opts->io_timeout ? opts->io_timeout : DLVM_LEASE_IO_TIMEOUT_DEFAULT;
	const size_t chunk = 1u << 20;
	uint8_t *buf = NULL;
	int r;

	set_where(&a);
	if ((r = check_placement(dev, offset, size, err)))
		return r;
	if ((r = dlvm_lease_area_geometry(ss, hosts, opts->nres, h, err)))
		return dlvm_err_prefix(err, r, "%s: ", a.where);
	if (ss < dev->sector_size)
		return dlvm_err_set(err, -EINVAL, "%s: sector size %u is below the device's %u",
				    a.where, ss, dev->sector_size);
	if (iot > DLVM_LEASE_IO_TIMEOUT_MAX)
		return dlvm_err_set(err, -EINVAL, "%s: io_timeout %u is not in 1..%u", a.where, iot,
				    DLVM_LEASE_IO_TIMEOUT_MAX);
	if (dlvm_uuid_is_zero(opts->vg_uuid))
		return dlvm_err_set(err, -EINVAL, "%s: VG uuid is all zero", a.where);
	if (h->area_size > size)
		return dlvm_err_set(err, -ENOSPC,
				    "%s: %u hosts and %u resources of %u-byte "
				    "sectors need %" PRIu64 " bytes, only %" PRIu64 " reserved",
				    a.where, hosts, opts->nres, ss, h->area_size, size);
	h->major = DLVM_LEASE_MAJOR;
	h->minor = DLVM_LEASE_MINOR;
	memcpy(h->vg_uuid, opts->vg_uuid, 16);
	h->io_timeout = iot;

	buf = dlvm_io_alloc(chunk);
	if (!buf)
		return dlvm_err_set(err, -ENOMEM, "%s: out of memory", a.where);
	/* invalidate the header first, then everything behind it */
	if ((r = dlvm_dev_write(dev, buf, DLVM_LEASE_HEADER_SIZE, offset, err)) ||
	    (r = dlvm_dev_flush(dev, err)))
		goto out;
	for (uint64_t pos = DLVM_LEASE_HEADER_SIZE; pos < h->area_size; pos += chunk) {
		size_t len = (size_t)DLVM_MIN((uint64_t)chunk, h->area_size - pos);
		if ((r = dlvm_dev_write(dev, buf, len, offset + pos, err)))
			goto out;
	}
	for (uint32_t res = 0; res < h->nres; res++) {
		struct dlvm_paxos_leader l = { .res_index = res, .max_hosts = hosts };
		memcpy(l.vg_uuid, h->vg_uuid, 16);
		memset(buf, 0, ss);
		dlvm_paxos_leader_encode(&l, buf);
		if ((r = dlvm_dev_write(dev, buf, ss, lease_leader_off(&a, res), err)))
			goto out;
	}
	if ((r = dlvm_dev_flush(dev, err)))
		goto out;
	memset(buf, 0, DLVM_LEASE_HEADER_SIZE);
	dlvm_lease_area_header_encode(h, buf);
	if ((r = dlvm_dev_write(dev, buf, DLVM_LEASE_HEADER_SIZE, offset, err)) ||
	    (r = dlvm_dev_flush(dev, err)))
		goto out;
out:
	free(buf);
	if (r)
		return dlvm_err_prefix(err, r, "%s: format: ", a.where);
	return 0;
}

int dlvm_lease_area_open(struct dlvm_dev *dev, uint64_t offset, uint64_t size,
			 struct dlvm_lease_area **out, struct dlvm_err *err)
{
	struct dlvm_lease_area *a = calloc(1, sizeof(*a));
	uint8_t *buf = dlvm_io_alloc(DLVM_LEASE_HEADER_SIZE);
	int r;

	if (!a || !buf) {
		r = dlvm_err_set(err, -ENOMEM, "%s: out of memory", dev->name);
		goto fail;
	}
	a->dev = dev;
	a->offset = offset;
	set_where(a);
	if ((r = check_placement(dev, offset, DLVM_MAX(size, (uint64_t)DLVM_LEASE_HEADER_SIZE),
				 err)))
		goto fail;
	if ((r = dlvm_dev_read(dev, buf, DLVM_LEASE_HEADER_SIZE, offset, err))) {
		dlvm_err_prefix(err, r, "%s: ", a->where);
		goto fail;
	}
	if ((r = dlvm_lease_area_header_decode(buf, &a->hdr, err))) {
		dlvm_err_prefix(err, r, "%s: ", a->where);
		goto fail;
	}
	if (a->hdr.area_size > size) {
		r = dlvm_err_set(err, -EBADMSG,
				 "%s: field area_size %" PRIu64 " exceeds the %" PRIu64
				 " bytes reserved for it",
				 a->where, a->hdr.area_size, size);
		goto fail;
	}
	if (a->hdr.sector_size < dev->sector_size) {
		r = dlvm_err_set(err, -EBADMSG,
				 "%s: field sector_size %u is below the device's "
				 "%u",
				 a->where, a->hdr.sector_size, dev->sector_size);
		goto fail;
	}
	free(buf);
	*out = a;
	return 0;
fail:
	free(buf);
	free(a);
	return r;
}

void dlvm_lease_area_close(struct dlvm_lease_area *area)
{
	free(area);
}
