/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of lib/lease: the area header and record codecs (every field
 * corrupted in turn), and the lockspace and paxos protocols with several
 * simulated hosts in one process. The hosts share one memory device, each
 * through its own wrapper device that can run a hook after its Nth read or
 * write (to interleave another host's steps) and fail reads or writes with
 * EIO. Time is a fake clock advanced by hand or by the waits of the code under
 * test; while a host waits, the clock hook renews the hosts marked alive.
 */
#include "helpers.h"
#include "dlvm/lease.h"

#define AREA_OFF (1ull << 20)
#define HOSTS 40 /* more than a ballot reads in one run when few have joined */
#define T1 1     /* io_timeout of the tests, seconds */

/* ---- fake clock ---- */

struct host;

static struct {
	uint64_t now;
	struct host *renewing[HOSTS + 1]; /* renewed while time passes */
	bool in_hook;
} clk;

static uint64_t fake_now(void *priv)
{
	(void)priv;
	return clk.now;
}

static void renew_alive(void);

static void fake_sleep(void *priv, uint64_t ms)
{
	(void)priv;
	while (ms) {
		uint64_t step = DLVM_MIN(ms, (uint64_t)100);
		clk.now += step;
		ms -= step;
		renew_alive();
	}
}

static const struct dlvm_lease_clock fake_clock = { fake_now, fake_sleep, NULL, NULL };

/* The fake clock of a host that is asked to stop at stop_at (0: never). */
static uint64_t stop_at;
static bool fake_stopping(void *priv)
{
	(void)priv;
	return stop_at && clk.now >= stop_at;
}
static const struct dlvm_lease_clock stoppable_clock = { fake_now, fake_sleep, NULL,
							 fake_stopping };

/* ---- a device per host over the shared memdev ---- */

struct hookdev {
	struct dlvm_dev *inner;
	long reads, writes;
	long hook_after_read, hook_after_write; /* 0: none */
	int fail_next_writes;                   /* fail this many writes, then work again */
	void (*hook)(void *arg);
	void *arg;
	bool fail_reads, fail_writes;
	/* the next tear_reads reads covering byte tear_off return it flipped, as a
	 * read racing a write returns a mix of two versions of a record */
	long tear_reads;
	uint64_t tear_off;
};

static int hd_pread(struct dlvm_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct hookdev *h = dev->priv;

	if (h->fail_reads)
		return -EIO;
	int r = h->inner->ops->pread(h->inner, buf, len, off);
	if (!r && h->tear_reads && h->tear_off >= off && h->tear_off < off + len) {
		((uint8_t *)buf)[h->tear_off - off] ^= 0x5a;
		h->tear_reads--;
	}
	if (++h->reads == h->hook_after_read && h->hook) {
		h->hook_after_read = 0;
		h->hook(h->arg);
	}
	return r;
}

static int hd_pwrite(struct dlvm_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct hookdev *h = dev->priv;

	if (h->fail_writes)
		return -EIO;
	if (h->fail_next_writes > 0) {
		h->fail_next_writes--;
		return -EIO;
	}
	int r = h->inner->ops->pwrite(h->inner, buf, len, off);
	if (++h->writes == h->hook_after_write && h->hook) {
		h->hook_after_write = 0;
		h->hook(h->arg);
	}
	return r;
}

static int hd_flush(struct dlvm_dev *dev)
{
	struct hookdev *h = dev->priv;
	return h->inner->ops->flush(h->inner);
}

static void hd_close(struct dlvm_dev *dev)
{
	free(dev->priv);
}

static const struct dlvm_dev_ops hookdev_ops = { hd_pread, hd_pwrite, hd_flush, hd_close };

static struct dlvm_dev *hookdev_new(struct dlvm_dev *inner, const char *name)
{
	struct dlvm_dev *dev = calloc(1, sizeof(*dev));
	struct hookdev *h = calloc(1, sizeof(*h));

	assert_non_null(dev);
	assert_non_null(h);
	h->inner = inner;
	dev->ops = &hookdev_ops;
	dev->priv = h;
	dev->fd = -1;
	dev->size = inner->size;
	dev->sector_size = inner->sector_size;
	dev->path = strdup(name);
	dev->name = strdup(name);
	return dev;
}

static struct hookdev *hd(struct dlvm_dev *dev)
{
	return dev->priv;
}

/* ---- hosts ---- */

struct host {
	uint32_t id;
	char name[64];
	struct dlvm_dev *dev;
	struct dlvm_lease_area *area;
	struct dlvm_lockspace *ls;
	struct dlvm_err e;
};

struct world {
	uint32_t ss;
	struct dlvm_dev *mem;
	struct host h[HOSTS + 1]; /* h[1..HOSTS] */
};

static const uint8_t vg_uuid[16] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
				     0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01 };

static void renew_alive(void)
{
	if (clk.in_hook)
		return;
	clk.in_hook = true;
	for (int i = 1; i <= HOSTS; i++) {
		struct host *h = clk.renewing[i];
		if (!h || dlvm_lockspace_deadline_ms(h->ls) == 0)
			continue;
		const struct dlvm_lease_timeouts *t = dlvm_lockspace_timeouts(h->ls);
		/* renew when the deadline is closer than F - R */
		if (dlvm_lockspace_deadline_ms(h->ls) - t->renew_fail_ms + t->renew_interval_ms <=
		    clk.now) {
			struct dlvm_err e = { 0 };
			if (dlvm_lockspace_renew(h->ls, &e))
				fail_msg("background renewal of host %u: %s", h->id, e.msg);
		}
	}
	clk.in_hook = false;
}

/* A world of HOSTS hosts over one fresh area with nres resources. */
static struct world *world_new(uint32_t ss, uint32_t nres)
{
	struct world *w = calloc(1, sizeof(*w));
	struct dlvm_lease_format_opts o = { .max_hosts = HOSTS, .nres = nres, .io_timeout = T1 };
	struct dlvm_err e = { 0 };

	assert_non_null(w);
	memset(&clk, 0, sizeof(clk));
	clk.now = 1000000;
	w->ss = ss;
	memcpy(o.vg_uuid, vg_uuid, 16);
	uint64_t size = dlvm_lease_area_size(ss, HOSTS, nres);
	w->mem = dlvm_memdev_new("pv0", AREA_OFF + size + MiB, ss);
	assert_non_null(w->mem);
	assert_ok(dlvm_lease_area_format(w->mem, AREA_OFF, size, &o, &e), &e);
	for (uint32_t i = 1; i <= HOSTS; i++) {
		struct host *h = &w->h[i];
		char dn[16];
		h->id = i;
		snprintf(h->name, sizeof(h->name), "node%u-1234abcd", i);
		snprintf(dn, sizeof(dn), "pv0@%u", i);
		h->dev = hookdev_new(w->mem, dn);
		assert_ok(dlvm_lease_area_open(h->dev, AREA_OFF, size, &h->area, &e), &e);
		assert_ok(dlvm_lockspace_new(h->area, &fake_clock, 0, &h->ls, &e), &e);
	}
	return w;
}

/* Start a new incarnation of host i (a restart: the old handle is dropped). */
static void host_restart(struct world *w, uint32_t i)
{
	struct host *h = &w->h[i];
	struct dlvm_err e = { 0 };

	clk.renewing[i] = NULL;
	dlvm_lockspace_free(h->ls);
	assert_ok(dlvm_lockspace_new(h->area, &fake_clock, 0, &h->ls, &e), &e);
}

static void world_free(struct world *w)
{
	memset(clk.renewing, 0, sizeof(clk.renewing));
	for (uint32_t i = 1; i <= HOSTS; i++) {
		dlvm_lockspace_free(w->h[i].ls);
		dlvm_lease_area_close(w->h[i].area);
		dlvm_dev_close(w->h[i].dev);
	}
	dlvm_dev_close(w->mem);
	free(w);
}

/* Join host i to the lockspace under its own id and keep it renewing. */
static void join(struct world *w, uint32_t i)
{
	struct host *h = &w->h[i];
	uint64_t gen = 0;

	assert_ok(dlvm_lockspace_acquire(h->ls, i, h->name, &gen, &h->e), &h->e);
	assert_true(gen >= 1);
	clk.renewing[i] = h;
}

static void advance(uint64_t ms)
{
	fake_sleep(NULL, ms);
}

static uint8_t *delta_sector(struct world *w, uint32_t host_id)
{
	return dlvm_memdev_data(w->mem) + AREA_OFF + DLVM_LEASE_HEADER_SIZE +
	       (uint64_t)(host_id - 1) * w->ss;
}

static uint8_t *leader_sector(struct world *w, uint32_t res)
{
	return dlvm_memdev_data(w->mem) + AREA_OFF + w->h[1].area->hdr.resource_offset +
	       (uint64_t)res * w->h[1].area->hdr.resource_stride;
}

static uint8_t *dblock_sector(struct world *w, uint32_t res, uint32_t host_id)
{
	return leader_sector(w, res) + (uint64_t)host_id * w->ss;
}

static struct dlvm_paxos_leader leader(struct world *w, uint32_t res)
{
	struct dlvm_paxos_leader l;
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_paxos_read_leader(w->h[1].area, res, &l, &e), &e);
	return l;
}

static uint32_t sector_size_of(void **state)
{
	return (uint32_t)(uintptr_t)*state;
}

/* ==== timeouts ==== */

static void timeouts_values(void **state)
{
	struct dlvm_lease_timeouts t;
	(void)state;

	assert_int_equal(dlvm_lease_timeouts(1, &t), 0);
	assert_int_equal(t.io_timeout_ms, 1000);
	assert_int_equal(t.renew_interval_ms, 500);
	assert_int_equal(t.renew_fail_ms, 3000);
	assert_int_equal(t.inflight_ms, 1000);
	assert_int_equal(t.host_dead_ms, 5000);
	assert_int_equal(t.acquire_wait_ms, 2000);
	assert_int_equal(t.takeover_max_ms, 5500);
	assert_true(t.takeover_max_ms <= 8000); /* DESIGN.md target at T = 1 */
	assert_true(t.host_dead_ms >= t.renew_fail_ms + t.inflight_ms);

	assert_int_equal(dlvm_lease_timeouts(10, &t), 0);
	assert_int_equal(t.renew_interval_ms, 5000);
	assert_int_equal(t.renew_fail_ms, 30000);
	assert_int_equal(t.host_dead_ms, 50000);
	assert_int_equal(t.takeover_max_ms, 55000);
	assert_true(t.takeover_max_ms <= 60000); /* DESIGN.md target at T = 10 */

	assert_int_equal(dlvm_lease_timeouts(0, &t), -EINVAL);
	assert_int_equal(dlvm_lease_timeouts(DLVM_LEASE_IO_TIMEOUT_MAX + 1, &t), -EINVAL);
}

/* ==== area ==== */

static void area_sizes(void **state)
{
	(void)state;
	/* the numbers documented in lease.h */
	assert_int_equal(dlvm_lease_area_size(512, 2000, 0), 1028096);
	assert_int_equal(dlvm_lease_area_size(512, 2000, 3), 4 * 1028096ull);
	assert_int_equal(dlvm_lease_area_size(4096, 2000, 1), 2 * 8196096ull);
	assert_int_equal(dlvm_lease_area_size(512, 8, 2), 4096 + 4096 + 2 * 8192);
	assert_int_equal(dlvm_lease_area_size(1024, 2000, 1), 0);
	assert_int_equal(dlvm_lease_area_size(512, 2001, 1), 0);
	assert_int_equal(dlvm_lease_area_size(512, 0, 1), 0);
	assert_int_equal(dlvm_lease_area_size(512, 1, DLVM_LEASE_MAX_RESOURCES + 1), 0);
}

static void area_roundtrip(void **state)
{
	uint32_t ss = sector_size_of(state);
	struct dlvm_lease_format_opts o = { .nres = 2 };
	struct dlvm_lease_area *a = NULL;
	struct dlvm_err e = { 0 };
	uint64_t size = dlvm_lease_area_size(ss, 2000, 2);
	struct dlvm_dev *dev = dlvm_memdev_new("pv0", AREA_OFF + size + MiB, ss);

	memcpy(o.vg_uuid, vg_uuid, 16);
	assert_ok(dlvm_lease_area_format(dev, AREA_OFF, size, &o, &e), &e);
	long writes = dlvm_memdev_writes(dev);
	assert_ok(dlvm_lease_area_open(dev, AREA_OFF, size, &a, &e), &e);
	assert_int_equal(dlvm_memdev_writes(dev), writes); /* open never writes */
	assert_memory_equal(dlvm_memdev_data(dev) + AREA_OFF, DLVM_LEASE_AREA_MAGIC, 8);
	assert_int_equal(a->hdr.major, DLVM_LEASE_MAJOR);
	assert_int_equal(a->hdr.sector_size, ss);
	assert_int_equal(a->hdr.max_hosts, 2000);
	assert_int_equal(a->hdr.nres, 2);
	assert_int_equal(a->hdr.io_timeout, DLVM_LEASE_IO_TIMEOUT_DEFAULT);
	assert_int_equal(a->hdr.area_size, size);
	assert_int_equal(a->hdr.lockspace_offset, 4096);
	assert_int_equal(a->hdr.lockspace_size, 2000ull * ss);
	assert_int_equal(a->hdr.resource_offset % 4096, 0);
	assert_int_equal(a->hdr.resource_stride % 4096, 0);
	assert_true(a->hdr.resource_stride >= 2001ull * ss);
	assert_memory_equal(a->hdr.vg_uuid, vg_uuid, 16);
	assert_string_equal(a->where, "pv0: lease area at offset 1048576");
	for (uint32_t r = 0; r < 2; r++) {
		struct dlvm_paxos_leader l;
		assert_ok(dlvm_paxos_read_leader(a, r, &l, &e), &e);
		assert_int_equal(l.res_index, r);
		assert_int_equal(l.lver, 0);
		assert_int_equal(l.timestamp, 0);
		assert_int_equal(l.owner_id, 0);
	}
	assert_err(dlvm_paxos_read_leader(a, 2, &(struct dlvm_paxos_leader){ 0 }, &e), &e, -EINVAL,
		   "resource 2 does not exist (the area has 2)");
	dlvm_lease_area_close(a);

	/* a larger reserved size is fine; a smaller one is not */
	assert_ok(dlvm_lease_area_open(dev, AREA_OFF, size + 4096, &a, &e), &e);
	dlvm_lease_area_close(a);
	assert_err(dlvm_lease_area_open(dev, AREA_OFF, size - 4096, &a, &e), &e, -EBADMSG,
		   "pv0: lease area at offset 1048576: field area_size");
	dlvm_dev_close(dev);
}

static void area_format_errors(void **state)
{
	struct dlvm_lease_format_opts o = { .nres = 1, .max_hosts = 4 };
	struct dlvm_err e = { 0 };
	struct dlvm_dev *dev = dlvm_memdev_new("pv0", 4 * MiB, 4096);
	(void)state;

	assert_err(dlvm_lease_area_format(dev, AREA_OFF, MiB, &o, &e), &e, -EINVAL,
		   "VG uuid is all zero");
	memcpy(o.vg_uuid, vg_uuid, 16);
	assert_err(dlvm_lease_area_format(dev, AREA_OFF + 512, MiB, &o, &e), &e, -EINVAL,
		   "lease area offset 1049088 is not 4096-aligned");
	assert_err(dlvm_lease_area_format(dev, 3 * MiB, 2 * MiB, &o, &e), &e, -ENOSPC,
		   "runs past the device end");
	assert_err(dlvm_lease_area_format(dev, AREA_OFF, 8192, &o, &e), &e, -ENOSPC,
		   "4 hosts and 1 resources of 4096-byte sectors need 40960 bytes, only 8192 "
		   "reserved");
	o.sector_size = 512;
	assert_err(dlvm_lease_area_format(dev, AREA_OFF, MiB, &o, &e), &e, -EINVAL,
		   "sector size 512 is below the device's 4096");
	o.sector_size = 0;
	o.max_hosts = 2001;
	assert_err(dlvm_lease_area_format(dev, AREA_OFF, MiB, &o, &e), &e, -EINVAL,
		   "max_hosts 2001 is not in 1..2000");
	o.max_hosts = 4;
	o.io_timeout = 301;
	assert_err(dlvm_lease_area_format(dev, AREA_OFF, MiB, &o, &e), &e, -EINVAL,
		   "io_timeout 301 is not in 1..300");
	o.io_timeout = 0;
	assert_int_equal(dlvm_memdev_writes(dev), 0); /* nothing written on bad input */

	/* an empty device has no area */
	struct dlvm_lease_area *a;
	assert_err(dlvm_lease_area_open(dev, AREA_OFF, MiB, &a, &e), &e, -EBADMSG,
		   "pv0: lease area at offset 1048576: bad magic (not a lease area header)");

	/* an interrupted format leaves no valid area behind, even over an old one */
	assert_ok(dlvm_lease_area_format(dev, AREA_OFF, MiB, &o, &e), &e);
	dlvm_memdev_set_fault(dev, DLVM_FAULT_POWERLOSS, 3);
	assert_ok(dlvm_lease_area_format(dev, AREA_OFF, MiB, &o, &e), &e); /* cannot tell */
	dlvm_memdev_set_fault(dev, DLVM_FAULT_NONE, 0);
	assert_err(dlvm_lease_area_open(dev, AREA_OFF, MiB, &a, &e), &e, -EBADMSG, "bad magic");
	dlvm_memdev_set_fault(dev, DLVM_FAULT_EIO, 2);
	assert_err(dlvm_lease_area_format(dev, AREA_OFF, MiB, &o, &e), &e, -EIO,
		   "pv0: lease area at offset 1048576: format: pv0: write of");
	dlvm_dev_close(dev);
}

struct bad_field {
	unsigned off, width;
	uint64_t value;
	int code;
	const char *msg;
};

static void put_le(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_crc(uint8_t *buf)
{
	dlvm_put_le32(buf + 508, dlvm_crc32c(buf, 508));
}

static void area_corrupt_fields(void **state)
{
	static const struct bad_field bad[] = {
		{ 8, 2, 2, -ENOTSUP, "lease area header format version 2 is not supported" },
		{ 12, 4, 4096, -EBADMSG, "lease area header field size is 4096, expected 512" },
		{ 32, 8, 1, -ENOTSUP, "unknown incompatible features 0x1" },
		{ 40, 8, 0, -EBADMSG, "field vg_uuid is all zero" },
		{ 56, 4, 1024, -EBADMSG, "field sector_size is 1024, not 512 or 4096" },
		{ 60, 4, 0, -EBADMSG, "field max_hosts is 0, not in 1..2000" },
		{ 60, 4, 2001, -EBADMSG, "field max_hosts is 2001, not in 1..2000" },
		{ 64, 4, 4097, -EBADMSG, "field nres is 4097, more than 4096" },
		{ 68, 4, 0, -EBADMSG, "field io_timeout is 0, not in 1..300" },
		{ 68, 4, 301, -EBADMSG, "field io_timeout is 301, not in 1..300" },
		{ 72, 8, 12345, -EBADMSG, "field area_size is 12345, expected" },
		{ 80, 8, 8192, -EBADMSG, "field lockspace_offset is 8192, expected 4096" },
		{ 88, 8, 512, -EBADMSG, "field lockspace_size is 512, expected 4096" },
		{ 96, 8, 4096, -EBADMSG, "field resource_offset is 4096, expected 8192" },
		{ 104, 8, 1, -EBADMSG, "field resource_stride is 1, expected 8192" },
		{ 112, 1, 1, -EBADMSG, "lease area header reserved byte 112 is not zero" },
		{ 507, 1, 1, -EBADMSG, "lease area header reserved byte 507 is not zero" },
	};
	struct dlvm_lease_format_opts o = { .nres = 2, .max_hosts = 8, .io_timeout = 1 };
	struct dlvm_lease_area *a = NULL;
	struct dlvm_err e = { 0 };
	struct dlvm_dev *dev = dlvm_memdev_new("pv0", 2 * MiB, 512);
	uint8_t *hdr = dlvm_memdev_data(dev) + AREA_OFF, saved[512];
	(void)state;

	memcpy(o.vg_uuid, vg_uuid, 16);
	assert_ok(dlvm_lease_area_format(dev, AREA_OFF, MiB, &o, &e), &e);
	memcpy(saved, hdr, 512);
	long writes = dlvm_memdev_writes(dev);
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(bad); i++) {
		memcpy(hdr, saved, 512);
		if (bad[i].off == 40) /* the whole uuid */
			memset(hdr + 40, 0, 16);
		else
			put_le(hdr + bad[i].off, bad[i].width, bad[i].value);
		fix_crc(hdr);
		dlvm_err_clear(&e);
		int r = dlvm_lease_area_open(dev, AREA_OFF, MiB, &a, &e);
		if (r != bad[i].code || !strstr(e.msg, bad[i].msg) ||
		    !strstr(e.msg, "pv0: lease area at offset 1048576: "))
			fail_msg("field at %u: got %d \"%s\", want %d \"%s\"", bad[i].off, r, e.msg,
				 bad[i].code, bad[i].msg);
	}
	/* magic and CRC, without fixing the CRC */
	memcpy(hdr, saved, 512);
	hdr[3] ^= 1;
	assert_err(dlvm_lease_area_open(dev, AREA_OFF, MiB, &a, &e), &e, -EBADMSG,
		   "pv0: lease area at offset 1048576: bad magic (not a lease area header)");
	memcpy(hdr, saved, 512);
	hdr[70] ^= 0x40;
	assert_err(dlvm_lease_area_open(dev, AREA_OFF, MiB, &a, &e), &e, -EBADMSG,
		   "pv0: lease area at offset 1048576: lease area header checksum mismatch");
	memcpy(hdr, saved, 512);
	hdr[510] ^= 1;
	assert_err(dlvm_lease_area_open(dev, AREA_OFF, MiB, &a, &e), &e, -EBADMSG,
		   "checksum mismatch");
	/* a 512-byte area on a device that now reports 4096-byte sectors */
	memcpy(hdr, saved, 512);
	dev->sector_size = 4096;
	assert_err(dlvm_lease_area_open(dev, AREA_OFF, MiB, &a, &e), &e, -EBADMSG,
		   "field sector_size 512 is below the device's 4096");
	dev->sector_size = 512;
	assert_int_equal(dlvm_memdev_writes(dev), writes); /* never "repaired" */
	assert_ok(dlvm_lease_area_open(dev, AREA_OFF, MiB, &a, &e), &e);
	dlvm_lease_area_close(a);
	dlvm_dev_close(dev);
}

/* ==== record codecs ==== */

static void records_roundtrip(void **state)
{
	uint8_t buf[512];
	struct dlvm_err e = { 0 };
	(void)state;

	struct dlvm_delta_record d = { .host_id = 7,
				       .io_timeout = 10,
				       .generation = 4,
				       .timestamp = 123456789 },
				 dd;
	memcpy(d.vg_uuid, vg_uuid, 16);
	snprintf(d.name, sizeof(d.name), "node3-0123456789abcdef");
	dlvm_delta_encode(&d, buf);
	assert_memory_equal(buf, DLVM_DELTA_MAGIC, 8);
	assert_ok(dlvm_delta_decode(buf, &dd, &e), &e);
	assert_int_equal(dd.host_id, 7);
	assert_int_equal(dd.io_timeout, 10);
	assert_int_equal(dd.generation, 4);
	assert_int_equal(dd.timestamp, 123456789);
	assert_memory_equal(dd.vg_uuid, vg_uuid, 16);
	assert_string_equal(dd.name, d.name);
	memset(buf, 0, sizeof(buf));
	assert_ok(dlvm_delta_decode(buf, &dd, &e), &e);
	assert_int_equal(dd.host_id, 0); /* never used */

	struct dlvm_paxos_leader l = { .res_index = 3,
				       .owner_id = 7,
				       .owner_generation = 4,
				       .lver = 99,
				       .timestamp = 5,
				       .writer_id = 2,
				       .max_hosts = 2000 },
				 ld;
	memcpy(l.vg_uuid, vg_uuid, 16);
	dlvm_paxos_leader_encode(&l, buf);
	assert_ok(dlvm_paxos_leader_decode(buf, &ld, &e), &e);
	assert_int_equal(ld.res_index, 3);
	assert_int_equal(ld.owner_id, 7);
	assert_int_equal(ld.owner_generation, 4);
	assert_int_equal(ld.lver, 99);
	assert_int_equal(ld.timestamp, 5);
	assert_int_equal(ld.writer_id, 2);
	assert_int_equal(ld.max_hosts, 2000);
	assert_memory_equal(ld.vg_uuid, vg_uuid, 16);

	struct dlvm_paxos_dblock b = { .host_id = 7,
				       .flags = DLVM_DBLOCK_SHARED,
				       .lver = 99,
				       .mbal = 4007,
				       .bal = 2007,
				       .inp_id = 7,
				       .inp_generation = 4,
				       .inp_timestamp = 55,
				       .shared_generation = 4 },
				 bd;
	dlvm_paxos_dblock_encode(&b, buf);
	assert_ok(dlvm_paxos_dblock_decode(buf, &bd, &e), &e);
	assert_int_equal(bd.host_id, 7);
	assert_int_equal(bd.flags, DLVM_DBLOCK_SHARED);
	assert_int_equal(bd.lver, 99);
	assert_int_equal(bd.mbal, 4007);
	assert_int_equal(bd.bal, 2007);
	assert_int_equal(bd.inp_id, 7);
	assert_int_equal(bd.inp_generation, 4);
	assert_int_equal(bd.inp_timestamp, 55);
	assert_int_equal(bd.shared_generation, 4);
}

static void records_corrupt_fields(void **state)
{
	static const struct bad_field delta_bad[] = {
		{ 16, 4, 0, -EBADMSG, "delta lease field host_id is 0, not in 1..2000" },
		{ 20, 4, 0, -EBADMSG, "delta lease field io_timeout is 0, not in 1..300" },
		{ 24, 8, 0, -EBADMSG, "delta lease field generation is 0" },
		{ 56, 1, 0, -EBADMSG, "delta lease field name is empty" },
		{ 57, 1, 1, -EBADMSG, "delta lease field name has a non-printable byte at 1" },
		{ 119, 1, 'x', -EBADMSG, "delta lease field name is not NUL terminated" },
		{ 118, 1, 'x', -EBADMSG, "delta lease field name has bytes after its NUL" },
		{ 120, 1, 1, -EBADMSG, "delta lease reserved byte 120 is not zero" },
		{ 8, 2, 9, -ENOTSUP, "delta lease format version 9 is not supported" },
	};
	static const struct bad_field leader_bad[] = {
		{ 68, 4, 0, -EBADMSG, "paxos leader field max_hosts is 0, not in 1..2000" },
		{ 20, 4, 9, -EBADMSG, "paxos leader field owner_id is 9, above max_hosts 8" },
		{ 64, 4, 9, -EBADMSG, "paxos leader field writer_id is 9, above max_hosts 8" },
		{ 72, 1, 1, -EBADMSG, "paxos leader reserved byte 72 is not zero" },
		{ 12, 4, 0, -EBADMSG, "paxos leader field size is 0, expected 512" },
	};
	static const struct bad_field dblock_bad[] = {
		{ 16, 4, 2001, -EBADMSG, "paxos dblock field host_id is 2001, not in 1..2000" },
		{ 20, 4, 2, -EBADMSG, "paxos dblock field flags has unknown bits 0x2" },
		{ 40, 8, 5000, -EBADMSG, "paxos dblock field bal 5000 exceeds mbal 4007" },
		{ 48, 4, 2001, -EBADMSG, "paxos dblock field inp_id is 2001, above 2000" },
		{ 52, 4, 1, -EBADMSG, "paxos dblock reserved byte 52 is not zero" },
		{ 72, 8, 0, -EBADMSG,
		  "paxos dblock has flag SHARED but field shared_generation "
		  "is 0" },
		{ 80, 1, 1, -EBADMSG, "paxos dblock reserved byte 80 is not zero" },
	};
	struct dlvm_delta_record d = { .host_id = 7,
				       .io_timeout = 10,
				       .generation = 4,
				       .timestamp = 1 };
	struct dlvm_paxos_leader l = { .owner_id = 7, .max_hosts = 8, .timestamp = 1 };
	struct dlvm_paxos_dblock b = { .host_id = 7,
				       .flags = DLVM_DBLOCK_SHARED,
				       .mbal = 4007,
				       .bal = 2007,
				       .shared_generation = 4 };
	uint8_t good[512], buf[512];
	struct dlvm_err e = { 0 };
	(void)state;

	snprintf(d.name, sizeof(d.name), "node3");
	dlvm_delta_encode(&d, good);
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(delta_bad); i++) {
		struct dlvm_delta_record out;
		memcpy(buf, good, 512);
		put_le(buf + delta_bad[i].off, delta_bad[i].width, delta_bad[i].value);
		if (delta_bad[i].off == 56) /* the whole name */
			memset(buf + 56, 0, 64);
		if (delta_bad[i].off == 119 || delta_bad[i].off == 118) /* no NUL / byte after */
			memset(buf + 56, 'a', delta_bad[i].off == 119 ? 64 : 4);
		fix_crc(buf);
		assert_err(dlvm_delta_decode(buf, &out, &e), &e, delta_bad[i].code,
			   delta_bad[i].msg);
	}
	memcpy(buf, good, 512);
	buf[100] = 1; /* inside the name padding, CRC not fixed */
	assert_err(dlvm_delta_decode(buf, &(struct dlvm_delta_record){ 0 }, &e), &e, -EBADMSG,
		   "delta lease checksum mismatch");
	memcpy(buf, good, 512);
	buf[0] = 'X';
	assert_err(dlvm_delta_decode(buf, &(struct dlvm_delta_record){ 0 }, &e), &e, -EBADMSG,
		   "bad magic (not a delta lease)");

	dlvm_paxos_leader_encode(&l, good);
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(leader_bad); i++) {
		memcpy(buf, good, 512);
		put_le(buf + leader_bad[i].off, leader_bad[i].width, leader_bad[i].value);
		fix_crc(buf);
		assert_err(dlvm_paxos_leader_decode(buf, &(struct dlvm_paxos_leader){ 0 }, &e), &e,
			   leader_bad[i].code, leader_bad[i].msg);
	}
	memcpy(buf, good, 512);
	put_le(buf + 20, 4, 0); /* held without an owner */
	fix_crc(buf);
	assert_err(dlvm_paxos_leader_decode(buf, &(struct dlvm_paxos_leader){ 0 }, &e), &e,
		   -EBADMSG, "paxos leader is held (timestamp 1) but field owner_id is 0");
	memset(buf, 0, 512);
	assert_err(dlvm_paxos_leader_decode(buf, &(struct dlvm_paxos_leader){ 0 }, &e), &e,
		   -EBADMSG, "bad magic (not a paxos leader)");

	dlvm_paxos_dblock_encode(&b, good);
	for (size_t i = 0; i < DLVM_ARRAY_SIZE(dblock_bad); i++) {
		memcpy(buf, good, 512);
		put_le(buf + dblock_bad[i].off, dblock_bad[i].width, dblock_bad[i].value);
		fix_crc(buf);
		assert_err(dlvm_paxos_dblock_decode(buf, &(struct dlvm_paxos_dblock){ 0 }, &e), &e,
			   dblock_bad[i].code, dblock_bad[i].msg);
	}
	memcpy(buf, good, 512);
	buf[30] ^= 1;
	assert_err(dlvm_paxos_dblock_decode(buf, &(struct dlvm_paxos_dblock){ 0 }, &e), &e,
		   -EBADMSG, "paxos dblock checksum mismatch");
}

/* ==== lockspace ==== */

/* A host asked to stop while it joins gives up within a wait slice, not
 * after the acquire wait (2T) or the dead-host time, and gives back the id
 * it wrote: another host takes it without waiting for it to die. */
static void lockspace_join_stopped(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1], *b = &w->h[2];
	struct dlvm_delta_record rec;
	uint64_t gen = 0, t0 = clk.now;

	dlvm_lockspace_free(a->ls);
	assert_ok(dlvm_lockspace_new(a->area, &stoppable_clock, 0, &a->ls, &a->e), &a->e);
	stop_at = t0 + 500;
	assert_err(dlvm_lockspace_acquire(a->ls, 1, a->name, &gen, &a->e), &a->e, -EINTR,
		   "host id 1: stopped while joining");
	assert_true(clk.now - t0 <= 600);
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), 0);
	assert_ok(dlvm_delta_decode(delta_sector(w, 1), &rec, &a->e), &a->e);
	assert_int_equal(rec.generation, 1);
	assert_string_equal(rec.name, a->name);
	assert_int_equal(rec.timestamp, 0); /* released */

	uint64_t t1 = clk.now;
	assert_ok(dlvm_lockspace_acquire(b->ls, 1, b->name, &gen, &b->e), &b->e);
	assert_int_equal(gen, 2);
	assert_int_equal(clk.now - t1, 2000); /* the acquire wait only */
	clk.renewing[2] = b;

	/* stopped while it watches another owner for the dead-host time */
	t1 = clk.now;
	stop_at = t1 + 300;
	assert_err(dlvm_lockspace_acquire(a->ls, 1, a->name, &gen, &a->e), &a->e, -EINTR,
		   "stopped while joining");
	assert_true(clk.now - t1 <= 400);
	assert_ok(dlvm_delta_decode(delta_sector(w, 1), &rec, &a->e), &a->e);
	assert_string_equal(rec.name, b->name); /* b's record is left alone */
	assert_int_not_equal(rec.timestamp, 0);
	stop_at = 0;
	world_free(w);
}

static void lockspace_acquire_free(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1];
	uint64_t gen = 0, t0 = clk.now;

	assert_err(dlvm_lockspace_acquire(a->ls, 0, a->name, &gen, &a->e), &a->e, -EINVAL,
		   "host id 0 is out of range 1..40");
	assert_err(dlvm_lockspace_acquire(a->ls, 41, a->name, &gen, &a->e), &a->e, -EINVAL,
		   "host id 41 is out of range 1..40");
	assert_err(dlvm_lockspace_acquire(a->ls, 1, "", &gen, &a->e), &a->e, -EINVAL,
		   "must have 1..63 bytes");
	assert_err(dlvm_lockspace_acquire(a->ls, 1, "bad\nname", &gen, &a->e), &a->e, -EINVAL,
		   "non-printable byte at 3");
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), 0);

	assert_ok(dlvm_lockspace_acquire(a->ls, 1, a->name, &gen, &a->e), &a->e);
	assert_int_equal(gen, 1);
	assert_int_equal(clk.now - t0, 2000); /* the acquire wait, 2T */
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), t0 + 3000);
	assert_int_equal(dlvm_lockspace_host_id(a->ls), 1);
	assert_int_equal(dlvm_lockspace_generation(a->ls), 1);

	struct dlvm_delta_record rec;
	assert_ok(dlvm_delta_decode(delta_sector(w, 1), &rec, &a->e), &a->e);
	assert_int_equal(rec.host_id, 1);
	assert_int_equal(rec.generation, 1);
	assert_int_equal(rec.io_timeout, T1);
	assert_string_equal(rec.name, a->name);
	assert_memory_equal(rec.vg_uuid, vg_uuid, 16);

	assert_err(dlvm_lockspace_acquire(a->ls, 2, a->name, &gen, &a->e), &a->e, -EINVAL,
		   "already joined as host id 1");

	/* renew extends the deadline from the time the renewal started */
	advance(500);
	uint64_t ts = rec.timestamp;
	assert_ok(dlvm_lockspace_renew(a->ls, &a->e), &a->e);
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), clk.now + 3000);
	assert_ok(dlvm_delta_decode(delta_sector(w, 1), &rec, &a->e), &a->e);
	assert_true(rec.timestamp > ts);
	/* two renewals within the same millisecond still change the sector */
	ts = rec.timestamp;
	assert_ok(dlvm_lockspace_renew(a->ls, &a->e), &a->e);
	assert_ok(dlvm_delta_decode(delta_sector(w, 1), &rec, &a->e), &a->e);
	assert_int_equal(rec.timestamp, ts + 1);

	/* release frees the sector (timestamp 0), the deadline becomes 0 */
	assert_ok(dlvm_lockspace_release(a->ls, &a->e), &a->e);
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), 0);
	assert_ok(dlvm_delta_decode(delta_sector(w, 1), &rec, &a->e), &a->e);
	assert_int_equal(rec.timestamp, 0);
	assert_int_equal(rec.generation, 1);
	assert_err(dlvm_lockspace_renew(a->ls, &a->e), &a->e, -EINVAL, "not joined");

	/* a released id is taken at once by anyone, with the next generation */
	struct host *b = &w->h[2];
	t0 = clk.now;
	assert_ok(dlvm_lockspace_acquire(b->ls, 1, b->name, &gen, &b->e), &b->e);
	assert_int_equal(gen, 2);
	assert_int_equal(clk.now - t0, 2000);
	world_free(w);
}

static void lockspace_same_id_busy(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1], *b = &w->h[2];
	uint64_t gen = 0;

	join(w, 1); /* host 1 renews in the background from now on */
	uint64_t t0 = clk.now;
	assert_err(dlvm_lockspace_acquire(b->ls, 1, b->name, &gen, &b->e), &b->e, -EBUSY,
		   "pv0@2: lease area at offset 1048576: host id 1 is held by host "
		   "'node1-1234abcd' (generation 1)");
	assert_true(clk.now - t0 < 5000); /* seen alive before the dead-host time */
	assert_int_equal(dlvm_lockspace_deadline_ms(b->ls), 0);
	/* the holder is undisturbed */
	assert_ok(dlvm_lockspace_renew(a->ls, &a->e), &a->e);
	world_free(w);
}

static void lockspace_takeover_after_dead_time(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1], *b = &w->h[2];
	uint64_t gen = 0;

	join(w, 1);
	advance(1200);
	clk.renewing[1] = NULL; /* host 1 dies */
	struct dlvm_delta_record last;
	assert_ok(dlvm_delta_decode(delta_sector(w, 1), &last, &b->e), &b->e);
	uint64_t died = clk.now, t0 = clk.now;
	assert_ok(dlvm_lockspace_acquire(b->ls, 1, b->name, &gen, &b->e), &b->e);
	assert_int_equal(gen, 2);
	/* watched for the dead-host time (5T), then the acquire wait (2T) */
	assert_true(clk.now - t0 >= 5000 + 2000);
	assert_true(clk.now - died <= 5000 + 500 + 2000 + 100);
	/* the old holder's renewal is refused: its deadline passed long ago */
	long writes = dlvm_memdev_writes(w->mem);
	assert_err(dlvm_lockspace_renew(a->ls, &a->e), &a->e, -ETIMEDOUT,
		   "host id 1: renewal refused: the host's lease expired");
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), 0);
	world_free(w);
}

static void lockspace_restart_and_stolen(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1];
	uint64_t gen = 0;

	join(w, 1);
	advance(700);
	/* a second handle with the same name: a restart on the same host. It
	 * takes the id at once (no watch), with the next generation. */
	struct dlvm_lockspace *again;
	struct dlvm_err e = { 0 };
	assert_ok(dlvm_lockspace_new(a->area, &fake_clock, 0, &again, &e), &e);
	clk.renewing[1] = NULL;
	uint64_t t0 = clk.now;
	assert_ok(dlvm_lockspace_acquire(again, 1, a->name, &gen, &e), &e);
	assert_int_equal(gen, 2);
	assert_int_equal(clk.now - t0, 2000);
	/* the old incarnation (still within its deadline) finds its sector
	 * taken, stops, and writes nothing */
	clk.renewing[1] = NULL;
	long writes = dlvm_memdev_writes(w->mem);
	assert_true(clk.now < dlvm_lockspace_deadline_ms(a->ls));
	assert_err(dlvm_lockspace_renew(a->ls, &a->e), &a->e, -ESTALE,
		   "host id 1 was taken by host 'node1-1234abcd' (generation 2)");
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), 0);
	assert_ok(dlvm_lockspace_renew(again, &e), &e);
	dlvm_lockspace_free(again);
	world_free(w);
}

/* Host 2 acquires host id 1 entirely between host 1's read (which saw the id
 * free) and host 1's write. */
static void race_hook_acquire(void *arg)
{
	struct world *w = arg;
	struct host *b = &w->h[2];

	assert_ok(dlvm_lockspace_acquire(b->ls, 1, b->name, NULL, &b->e), &b->e);
	clk.renewing[2] = b;
}

static void lockspace_acquire_race(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1], *b = &w->h[2];

	hd(a->dev)->hook = race_hook_acquire;
	hd(a->dev)->arg = w;
	hd(a->dev)->hook_after_read = hd(a->dev)->reads + 1;
	/* host 1's read is now older than T: it reads again instead of writing,
	 * finds host 2 live, and gives up */
	assert_err(dlvm_lockspace_acquire(a->ls, 1, a->name, NULL, &a->e), &a->e, -EBUSY,
		   "host id 1 is held by host 'node2-1234abcd' (generation 1)");
	assert_ok(dlvm_lockspace_renew(b->ls, &b->e), &b->e);
	world_free(w);
}

/* A record of another host lands during host 1's acquire wait. */
static struct world *hook_world;
static void overwrite_hook(void *arg)
{
	struct world *w = arg;
	struct dlvm_delta_record r = { .host_id = 1,
				       .io_timeout = 1,
				       .generation = 2,
				       .timestamp = 42 };
	memcpy(r.vg_uuid, vg_uuid, 16);
	snprintf(r.name, sizeof(r.name), "intruder");
	memset(delta_sector(w, 1), 0, w->ss);
	dlvm_delta_encode(&r, delta_sector(w, 1));
}

static void lockspace_acquire_verify(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1];

	hook_world = w;
	hd(a->dev)->hook = overwrite_hook;
	hd(a->dev)->arg = w;
	hd(a->dev)->hook_after_write = hd(a->dev)->writes + 1;
	assert_err(dlvm_lockspace_acquire(a->ls, 1, a->name, NULL, &a->e), &a->e, -EBUSY,
		   "host id 1 was taken by host 'intruder' (generation 2) while this host "
		   "acquired it");
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), 0);
	world_free(w);
}

static const struct dlvm_host_info *find_host(const struct dlvm_host_info *v, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].host_id == id)
			return &v[i];
	return NULL;
}

static enum dlvm_host_state state_of(struct host *obs, uint32_t id)
{
	struct dlvm_host_info *v;
	size_t n;
	struct dlvm_err e = { 0 };

	assert_ok(dlvm_lockspace_hosts(obs->ls, &v, &n, &e), &e);
	const struct dlvm_host_info *i = find_host(v, n, id);
	enum dlvm_host_state s = i ? i->state : DLVM_HOST_FREE;
	free(v);
	return s;
}

static void lockspace_liveness(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1];
	struct dlvm_host_info *v;
	size_t n;

	join(w, 1);
	join(w, 2);
	join(w, 3);
	advance(1000);
	assert_ok(dlvm_lockspace_hosts(a->ls, &v, &n, &a->e), &a->e);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i].host_id, i + 1);
		assert_int_equal(v[i].state, DLVM_HOST_LIVE);
		assert_int_equal(v[i].generation, 1);
		assert_string_equal(v[i].name, w->h[i + 1].name);
		assert_int_equal(v[i].io_timeout, T1);
		assert_true(clk.now - v[i].last_change_ms <= 600);
	}
	free(v);

	/* host 2 stops renewing; host 3 leaves cleanly */
	clk.renewing[2] = NULL;
	uint64_t stop = clk.now;
	assert_ok(dlvm_lockspace_release(w->h[3].ls, &w->h[3].e), &w->h[3].e);
	clk.renewing[3] = NULL;
	advance(600);
	assert_int_equal(state_of(a, 3), DLVM_HOST_FREE);
	assert_int_equal(state_of(a, 2), DLVM_HOST_LIVE);
	while (state_of(a, 2) == DLVM_HOST_LIVE)
		advance(100);
	assert_int_equal(state_of(a, 2), DLVM_HOST_FAIL);
	assert_true(clk.now - stop >= 3000 && clk.now - stop <= 3000 + 600);
	while (state_of(a, 2) == DLVM_HOST_FAIL)
		advance(100);
	assert_int_equal(state_of(a, 2), DLVM_HOST_DEAD);
	assert_true(clk.now - stop >= 5000 && clk.now - stop <= 5000 + 600);
	assert_int_equal(state_of(a, 1), DLVM_HOST_LIVE);
	assert_string_equal(dlvm_host_state_name(DLVM_HOST_DEAD), "dead");

	/* host 2 comes back (a restart): live again at once */
	host_restart(w, 2);
	join(w, 2);
	advance(600);
	assert_int_equal(state_of(a, 2), DLVM_HOST_LIVE);

	/* a damaged sector of another host shows as bad, renewals go on */
	delta_sector(w, 5)[0] = 'X';
	advance(600);
	assert_int_equal(state_of(a, 5), DLVM_HOST_BAD);
	world_free(w);
}

static void lockspace_expired_no_write(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1];

	join(w, 1);
	clk.renewing[1] = NULL;
	advance(3000); /* exactly the fail threshold since the acquire write */
	long writes = dlvm_memdev_writes(w->mem);
	assert_err(dlvm_lockspace_release(a->ls, &a->e), &a->e, -ETIMEDOUT,
		   "host id 1: release refused: the host's lease expired");
	assert_err(dlvm_lockspace_renew(a->ls, &a->e), &a->e, -ETIMEDOUT, "renewal refused");
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	/* rejoining under the same name works at once */
	uint64_t gen;
	assert_ok(dlvm_lockspace_acquire(a->ls, 1, a->name, &gen, &a->e), &a->e);
	assert_int_equal(gen, 2);
	world_free(w);
}

static void lockspace_io_errors(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1];
	uint64_t gen;

	hd(a->dev)->fail_writes = true;
	assert_err(dlvm_lockspace_acquire(a->ls, 1, a->name, &gen, &a->e), &a->e, -EIO,
		   "pv0@1: lease area at offset 1048576: delta lease of host id 1: pv0@1: "
		   "write of");
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), 0);
	hd(a->dev)->fail_writes = false;
	hd(a->dev)->fail_reads = true;
	assert_err(dlvm_lockspace_acquire(a->ls, 1, a->name, &gen, &a->e), &a->e, -EIO,
		   "Input/output error");
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), 0);
	hd(a->dev)->fail_reads = false;

	join(w, 1);
	advance(1000);
	clk.renewing[1] = NULL;
	uint64_t dl = dlvm_lockspace_deadline_ms(a->ls);
	hd(a->dev)->fail_reads = true;
	assert_err(dlvm_lockspace_renew(a->ls, &a->e), &a->e, -EIO, "lockspace");
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), dl); /* not extended */
	hd(a->dev)->fail_reads = false;
	hd(a->dev)->fail_writes = true;
	assert_err(dlvm_lockspace_renew(a->ls, &a->e), &a->e, -EIO, "delta lease of host id 1");
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), dl);
	hd(a->dev)->fail_writes = false;
	/* a short outage only warns: the next renewal succeeds */
	advance(500);
	assert_ok(dlvm_lockspace_renew(a->ls, &a->e), &a->e);
	assert_int_equal(dlvm_lockspace_deadline_ms(a->ls), clk.now + 3000);

	/* a damaged own sector stops renewal; nothing is overwritten */
	uint8_t *s = delta_sector(w, 1);
	s[40] ^= 0xff;
	long writes = dlvm_memdev_writes(w->mem);
	assert_err(dlvm_lockspace_renew(a->ls, &a->e), &a->e, -EBADMSG,
		   "pv0@1: lease area at offset 1048576: host id 1 at offset 1052672: delta "
		   "lease checksum mismatch");
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	/* and the damaged sector is never taken over by an acquire either */
	struct host *b = &w->h[2];
	assert_err(dlvm_lockspace_acquire(b->ls, 1, b->name, &gen, &b->e), &b->e, -EBADMSG,
		   "delta lease checksum mismatch");
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	world_free(w);
}

/* ==== paxos ==== */

static struct dlvm_paxos_lease lease_of(void)
{
	return (struct dlvm_paxos_lease){ 0 };
}

static void paxos_exclusive(void **state)
{
	struct world *w = world_new(sector_size_of(state), 3);
	struct host *a = &w->h[1], *b = &w->h[2];
	struct dlvm_paxos_lease la = lease_of(), lb = lease_of();

	assert_err(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &la, &a->e), &a->e, -EINVAL,
		   "paxos acquire: not joined");
	join(w, 1);
	join(w, 2);
	assert_err(dlvm_paxos_acquire(a->ls, 3, DLVM_LEASE_EXCLUSIVE, &la, &a->e), &a->e, -EINVAL,
		   "resource 3 does not exist (the area has 3)");
	assert_err(dlvm_paxos_acquire(a->ls, 0, 7, &la, &a->e), &a->e, -EINVAL, "bad lease mode 7");

	assert_ok(dlvm_paxos_acquire(a->ls, 1, DLVM_LEASE_EXCLUSIVE, &la, &a->e), &a->e);
	assert_int_equal(la.res_index, 1);
	assert_int_equal(la.lver, 1);
	assert_int_equal(la.owner_id, 1);
	assert_int_equal(la.owner_generation, 1);
	struct dlvm_paxos_leader l = leader(w, 1);
	assert_int_equal(l.owner_id, 1);
	assert_int_equal(l.owner_generation, 1);
	assert_int_equal(l.lver, 1);
	assert_true(l.timestamp != 0);
	assert_int_equal(leader(w, 0).lver, 0); /* other resources untouched */

	/* acquiring again returns the same lease */
	struct dlvm_paxos_lease again;
	assert_ok(dlvm_paxos_acquire(a->ls, 1, DLVM_LEASE_EXCLUSIVE, &again, &a->e), &a->e);
	assert_int_equal(again.lver, 1);

	advance(2000);
	assert_err(dlvm_paxos_acquire(b->ls, 1, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e, -EBUSY,
		   "resource 1 is held by host id 1 'node1-1234abcd' (generation 1)");
	assert_int_equal(leader(w, 1).lver, 1);

	assert_ok(dlvm_paxos_release(a->ls, &la, &a->e), &a->e);
	l = leader(w, 1);
	assert_int_equal(l.timestamp, 0);
	assert_int_equal(l.lver, 1);
	assert_err(dlvm_paxos_release(a->ls, &la, &a->e), &a->e, -ESTALE,
		   "resource 1 is no longer held (version 1)");

	assert_ok(dlvm_paxos_acquire(b->ls, 1, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e);
	assert_int_equal(lb.lver, 2);
	assert_int_equal(leader(w, 1).owner_id, 2);
	/* a stale lease of an earlier version is not released by its old holder */
	assert_err(dlvm_paxos_release(a->ls, &la, &a->e), &a->e, -ESTALE,
		   "resource 1 was taken by host id 2 (generation 1, version 2)");
	assert_int_equal(leader(w, 1).owner_id, 2);
	assert_true(leader(w, 1).timestamp != 0);
	world_free(w);
}

/* Several hosts take turns on one resource: one owner per version. */
static void paxos_sequential_contention(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	uint32_t owner_of[64] = { 0 };

	for (uint32_t i = 1; i <= 4; i++)
		join(w, i);
	for (int round = 0; round < 12; round++) {
		struct dlvm_paxos_lease l[5];
		int winners = 0;
		uint32_t winner = 0;
		for (uint32_t i = 1; i <= 4; i++) {
			struct host *h = &w->h[(i + (uint32_t)round) % 4 + 1];
			dlvm_err_clear(&h->e);
			int r = dlvm_paxos_acquire(h->ls, 0, DLVM_LEASE_EXCLUSIVE, &l[h->id],
						   &h->e);
			if (r == 0) {
				winners++;
				winner = h->id;
			} else {
				assert_int_equal(r, -EBUSY);
				assert_non_null(strstr(h->e.msg, "resource 0 is held by host id"));
			}
		}
		assert_int_equal(winners, 1);
		assert_int_equal(l[winner].lver, (uint64_t)round + 1);
		assert_int_equal(owner_of[l[winner].lver], 0);
		owner_of[l[winner].lver] = winner;
		advance(300);
		assert_ok(dlvm_paxos_release(w->h[winner].ls, &l[winner], &w->h[winner].e),
			  &w->h[winner].e);
	}
	world_free(w);
}

/* Interleaving: after host `first`'s Nth dblock write, host `second` runs a
 * whole acquisition of the same resource. */
struct interleave {
	struct world *w;
	uint32_t second;
	int r;
	struct dlvm_paxos_lease lease;
};

static void interleave_hook(void *arg)
{
	struct interleave *x = arg;
	struct host *h = &x->w->h[x->second];

	dlvm_err_clear(&h->e);
	x->r = dlvm_paxos_acquire(h->ls, 0, DLVM_LEASE_EXCLUSIVE, &x->lease, &h->e);
}

static void run_interleaved(void **state, uint32_t first, uint32_t second, long nth_write,
			    uint32_t want_winner)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[first], *b = &w->h[second];
	struct interleave x = { .w = w, .second = second, .r = 1 };
	struct dlvm_paxos_lease la = lease_of();

	join(w, first);
	join(w, second);
	hd(a->dev)->hook = interleave_hook;
	hd(a->dev)->arg = &x;
	hd(a->dev)->hook_after_write = hd(a->dev)->writes + nth_write;
	dlvm_err_clear(&a->e);
	int ra = dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &la, &a->e);
	assert_int_not_equal(x.r, 1); /* the hook ran */
	struct dlvm_paxos_leader l = leader(w, 0);
	assert_int_equal(l.lver, 1);
	assert_int_equal(l.owner_id, want_winner);
	if (want_winner == first) {
		assert_int_equal(ra, 0);
		assert_int_equal(la.lver, 1);
		assert_int_equal(x.r, -EBUSY);
		char want[96];
		snprintf(want, sizeof(want), "resource 0 is held by host id %u", first);
		assert_non_null(strstr(b->e.msg, want));
	} else {
		assert_int_equal(x.r, 0);
		assert_int_equal(x.lease.lver, 1);
		assert_int_equal(ra, -EBUSY);
		char want[96];
		snprintf(want, sizeof(want), "resource 0 is held by host id %u 'node%u-1234abcd'",
			 second, second);
		if (!strstr(a->e.msg, want))
			fail_msg("host %u: \"%s\", want \"%s\"", first, a->e.msg, want);
	}
	world_free(w);
}

static void paxos_interleaved_phase1(void **state)
{
	/* the second host runs after the first host's mbal write: it overtakes */
	run_interleaved(state, 1, 2, 1, 2);
	run_interleaved(state, 2, 1, 1, 1);
}

static void paxos_interleaved_phase2(void **state)
{
	/* after the first host's accepted value is written: the second host
	 * adopts that value (and reports the first as owner), the first host is
	 * overtaken, retries and commits its own value */
	run_interleaved(state, 1, 2, 2, 1);
	run_interleaved(state, 3, 1, 2, 3);
}

static void paxos_takeover(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1], *b = &w->h[2];
	struct dlvm_paxos_lease la = lease_of(), lb = lease_of();

	join(w, 1);
	join(w, 2);
	assert_ok(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &la, &a->e), &a->e);
	advance(1000);
	/* host 1 dies right after a renewal */
	assert_ok(dlvm_lockspace_renew(a->ls, &a->e), &a->e);
	uint64_t died = clk.now;
	clk.renewing[1] = NULL;
	uint64_t took = 0;
	while (!took) {
		dlvm_err_clear(&b->e);
		int r = dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &lb, &b->e);
		if (r == 0) {
			took = clk.now;
			break;
		}
		assert_int_equal(r, -EBUSY);
		assert_non_null(strstr(b->e.msg, "resource 0 is held by host id 1 "
						 "'node1-1234abcd' (generation 1)"));
		advance(100);
	}
	/* never before the dead-host time; within the documented bound */
	assert_true(took - died >= 5000);
	assert_true(took - died <= 5500 + 100);
	assert_int_equal(lb.lver, 2);
	assert_int_equal(leader(w, 0).owner_id, 2);
	/* the dead host, should it resume, writes nothing */
	long writes = dlvm_memdev_writes(w->mem);
	assert_err(dlvm_paxos_release(a->ls, &la, &a->e), &a->e, -ETIMEDOUT,
		   "paxos release refused: the host's lease expired");
	assert_err(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &la, &a->e), &a->e,
		   -ETIMEDOUT, "paxos acquire refused");
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	world_free(w);
}

static void paxos_owner_restart_or_release(void **state)
{
	struct world *w = world_new(sector_size_of(state), 2);
	struct host *a = &w->h[1], *b = &w->h[2];
	struct dlvm_paxos_lease l0 = lease_of(), l1 = lease_of(), l = lease_of();

	join(w, 1);
	join(w, 2);
	assert_ok(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &l0, &a->e), &a->e);
	assert_ok(dlvm_paxos_acquire(a->ls, 1, DLVM_LEASE_EXCLUSIVE, &l1, &a->e), &a->e);
	/* host 1 restarts: its new incarnation re-takes its old leases at once */
	host_restart(w, 1);
	join(w, 1);
	uint64_t t0 = clk.now;
	assert_ok(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &a->e), &a->e);
	assert_int_equal(clk.now, t0);
	assert_int_equal(l.lver, 2);
	assert_int_equal(l.owner_generation, 2);
	/* and another host may take the old incarnation's leases at once too */
	assert_ok(dlvm_paxos_acquire(b->ls, 1, DLVM_LEASE_EXCLUSIVE, &l, &b->e), &b->e);
	assert_int_equal(l.lver, 2);
	/* a host that leaves the lockspace cleanly frees its leases */
	assert_ok(dlvm_paxos_release(b->ls, &l, &b->e), &b->e);
	assert_ok(dlvm_paxos_acquire(a->ls, 1, DLVM_LEASE_EXCLUSIVE, &l, &a->e), &a->e);
	assert_ok(dlvm_lockspace_release(a->ls, &a->e), &a->e);
	clk.renewing[1] = NULL;
	assert_ok(dlvm_paxos_acquire(b->ls, 1, DLVM_LEASE_EXCLUSIVE, &l, &b->e), &b->e);
	assert_int_equal(l.lver, 4);
	world_free(w);
}

static void paxos_shared(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct dlvm_paxos_lease s[5], x = lease_of();
	uint32_t ids[8];
	size_t n;

	for (uint32_t i = 1; i <= 4; i++)
		join(w, i);
	for (uint32_t i = 1; i <= 3; i++) {
		struct host *h = &w->h[i];
		assert_ok(dlvm_paxos_acquire(h->ls, 0, DLVM_LEASE_SHARED, &s[i], &h->e), &h->e);
		assert_int_equal(s[i].mode, DLVM_LEASE_SHARED);
		assert_int_equal(leader(w, 0).timestamp, 0); /* leader free in between */
	}
	assert_ok(dlvm_paxos_shared_holders(w->h[4].ls, 0, ids, 8, &n, &w->h[4].e), &w->h[4].e);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[2], 3);

	struct host *d = &w->h[4];
	advance(2000);
	assert_err(dlvm_paxos_acquire(d->ls, 0, DLVM_LEASE_EXCLUSIVE, &x, &d->e), &d->e, -EBUSY,
		   "resource 0 is held shared by host id 1 'node1-1234abcd' (generation 1)");
	assert_int_equal(leader(w, 0).timestamp, 0); /* refused: leader freed again */
	assert_ok(dlvm_paxos_release(w->h[1].ls, &s[1], &w->h[1].e), &w->h[1].e);
	assert_err(dlvm_paxos_release(w->h[1].ls, &s[1], &w->h[1].e), &w->h[1].e, -ESTALE,
		   "resource 0 is not held shared by this host");
	assert_err(dlvm_paxos_acquire(d->ls, 0, DLVM_LEASE_EXCLUSIVE, &x, &d->e), &d->e, -EBUSY,
		   "held shared by host id 2");
	assert_ok(dlvm_paxos_release(w->h[2].ls, &s[2], &w->h[2].e), &w->h[2].e);

	/* the last shared holder dies right after a renewal: exclusive only
	 * after its dead-host time */
	assert_ok(dlvm_lockspace_renew(w->h[3].ls, &w->h[3].e), &w->h[3].e);
	clk.renewing[3] = NULL;
	uint64_t died = clk.now;
	for (;;) {
		dlvm_err_clear(&d->e);
		int r = dlvm_paxos_acquire(d->ls, 0, DLVM_LEASE_EXCLUSIVE, &x, &d->e);
		if (!r)
			break;
		assert_int_equal(r, -EBUSY);
		assert_non_null(strstr(d->e.msg, "held shared by host id 3"));
		advance(250);
	}
	assert_true(clk.now - died >= 5000);
	assert_int_equal(x.mode, DLVM_LEASE_EXCLUSIVE);

	/* shared is refused while a live host holds it exclusively */
	assert_err(dlvm_paxos_acquire(w->h[1].ls, 0, DLVM_LEASE_SHARED, &s[1], &w->h[1].e),
		   &w->h[1].e, -EBUSY, "resource 0 is held by host id 4 'node4-1234abcd'");
	assert_ok(dlvm_paxos_release(d->ls, &x, &d->e), &d->e);
	assert_ok(dlvm_paxos_acquire(w->h[1].ls, 0, DLVM_LEASE_SHARED, &s[1], &w->h[1].e),
		  &w->h[1].e);
	assert_ok(dlvm_paxos_shared_holders(d->ls, 0, ids, 8, &n, &d->e), &d->e);
	assert_int_equal(n, 1); /* host 3's stale flag is not counted */
	assert_int_equal(ids[0], 1);
	world_free(w);
}

static void fail_reads_hook(void *arg)
{
	hd(arg)->fail_reads = true;
}

/* Fail the Nth write of an acquisition: an error, and the resource is never
 * left looking held by this host. */
static void paxos_io_errors(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1];
	struct dlvm_paxos_lease l = lease_of();
	int failures = 0;

	join(w, 1);
	join(w, 2);
	for (long n = 0;; n++) {
		dlvm_memdev_set_fault(w->mem, DLVM_FAULT_EIO, n);
		dlvm_err_clear(&a->e);
		int r = dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &a->e);
		dlvm_memdev_set_fault(w->mem, DLVM_FAULT_NONE, 0);
		if (r == 0)
			break;
		failures++;
		assert_int_equal(r, -EIO);
		assert_non_null(strstr(a->e.msg, "Input/output error"));
		struct dlvm_paxos_leader ld = leader(w, 0);
		assert_true(ld.timestamp == 0 || ld.owner_id != 1);
		assert_true(n < 10);
	}
	assert_int_equal(failures, 3); /* mbal, bal, leader */
	assert_int_equal(leader(w, 0).owner_id, 1);

	/* read errors while releasing: error, lease unchanged */
	hd(a->dev)->fail_reads = true;
	assert_err(dlvm_paxos_release(a->ls, &l, &a->e), &a->e, -EIO, "resource 0 leader");
	hd(a->dev)->fail_reads = false;
	assert_true(leader(w, 0).timestamp != 0);
	/* read errors while another host acquires: error, not a false success */
	struct host *b = &w->h[2];
	struct dlvm_paxos_lease lb = lease_of();
	assert_ok(dlvm_paxos_release(a->ls, &l, &a->e), &a->e);
	hd(b->dev)->fail_reads = true;
	assert_err(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e, -EIO,
		   "resource 0 leader");
	hd(b->dev)->fail_reads = false;
	/* reads fail after the ballot's first write: an error, no owner */
	hd(b->dev)->hook = fail_reads_hook;
	hd(b->dev)->arg = b->dev;
	hd(b->dev)->hook_after_write = hd(b->dev)->writes + 1;
	assert_err(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e, -EIO,
		   "resource 0 dblocks");
	hd(b->dev)->fail_reads = false;
	assert_int_equal(leader(w, 0).timestamp, 0);
	/* and the next attempt succeeds */
	assert_ok(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e);
	assert_int_equal(leader(w, 0).owner_id, 2);
	world_free(w);
}

static void fail_writes_hook(void *arg)
{
	hd(arg)->fail_writes = true;
}

/* A host's value is accepted by its ballot but it dies before writing the
 * leader: others report it as the holder until it is dead, then commit the
 * version for it and take the next one. */
static void paxos_winner_dies_before_commit(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1], *b = &w->h[2];
	struct dlvm_paxos_lease l = lease_of();

	join(w, 1);
	join(w, 2);
	hd(a->dev)->hook = fail_writes_hook;
	hd(a->dev)->arg = a->dev;
	hd(a->dev)->hook_after_write = hd(a->dev)->writes + 2; /* after mbal and bal */
	assert_err(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &a->e), &a->e, -EIO,
		   "resource 0 leader");
	assert_int_equal(leader(w, 0).lver, 0);
	assert_ok(dlvm_lockspace_renew(w->h[2].ls, &w->h[2].e), &w->h[2].e);
	clk.renewing[1] = NULL; /* host 1 dies (its renewals fail from now on) */
	uint64_t died = clk.now;
	for (;;) {
		dlvm_err_clear(&b->e);
		int r = dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &b->e);
		if (!r)
			break;
		assert_int_equal(r, -EBUSY);
		assert_non_null(strstr(b->e.msg, "resource 0 is held by host id 1 "
						 "'node1-1234abcd' (generation 1)"));
		advance(250);
	}
	assert_true(clk.now - died >= 5000 - 500);
	assert_int_equal(l.lver, 2);
	assert_int_equal(leader(w, 0).owner_id, 2);
	assert_int_equal(leader(w, 0).lver, 2);
	world_free(w);
}

static void fail_one_write_hook(void *arg)
{
	hd(arg)->fail_next_writes = 1;
}

/* A host's value is accepted by its ballot, its leader write fails once and
 * it stays alive: it settles the version it may have won (the leader free
 * at that version) before returning the error, so the others need not wait
 * for it to die or to acquire again. */
static void paxos_winner_fails_then_settles(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1], *b = &w->h[2];
	struct dlvm_paxos_lease l = lease_of();

	join(w, 1);
	join(w, 2);
	hd(a->dev)->hook = fail_one_write_hook;
	hd(a->dev)->arg = a->dev;
	hd(a->dev)->hook_after_write = hd(a->dev)->writes + 2; /* after mbal and bal */
	assert_err(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &a->e), &a->e, -EIO,
		   "resource 0 leader");
	assert_int_equal(hd(a->dev)->fail_next_writes, 0); /* the failure happened */
	assert_int_equal(leader(w, 0).lver, 1);
	assert_int_equal(leader(w, 0).owner_id, 1);
	assert_int_equal(leader(w, 0).timestamp, 0);
	/* host 1 is alive, yet host 2 takes the resource at once */
	assert_ok(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &b->e), &b->e);
	assert_int_equal(l.lver, 2);
	assert_int_equal(leader(w, 0).owner_id, 2);
	assert_int_equal(leader(w, 0).lver, 2);
	assert_int_not_equal(leader(w, 0).timestamp, 0);
	world_free(w);
}

/* A ballot reads the dblocks of the hosts it knows from the lockspace only.
 * Host 30 joins while host 1 reads no lockspace (no renewal), wins a ballot
 * and dies before writing the leader: host 1 reads the lockspace again
 * before its ballot, so it finds host 30's winning proposal and does not
 * take the lease. */
static void paxos_late_joiner_seen(void **state)
{
	struct world *w = world_new(sector_size_of(state), 1);
	struct host *a = &w->h[1], *c = &w->h[30];
	struct dlvm_paxos_lease l = lease_of();

	join(w, 1);
	assert_ok(dlvm_lockspace_renew(a->ls, &a->e), &a->e);
	clk.renewing[1] = NULL;
	uint64_t t0 = clk.now;
	join(w, 30);
	print_message("host 30 joined in %" PRIu64 " ms\n", clk.now - t0);
	long reads = hd(a->dev)->reads;
	hd(c->dev)->hook = fail_writes_hook;
	hd(c->dev)->arg = c->dev;
	hd(c->dev)->hook_after_write = hd(c->dev)->writes + 2; /* after mbal and bal */
	assert_err(dlvm_paxos_acquire(c->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &c->e), &c->e, -EIO,
		   "resource 0 leader");
	assert_true(dlvm_lockspace_deadline_ms(a->ls) > clk.now);
	assert_err(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &a->e), &a->e, -EBUSY,
		   "resource 0 is held by host id 30 'node30-1234abcd'");
	assert_int_equal(leader(w, 0).lver, 0);
	/* host 1 read its view again, then dblocks 1 and 30 apart (not all 40) */
	assert_true(hd(a->dev)->reads - reads >= 3);
	world_free(w);
}

static void paxos_corruption(void **state)
{
	struct world *w = world_new(sector_size_of(state), 2);
	struct host *a = &w->h[1], *b = &w->h[2];
	struct dlvm_paxos_lease l = lease_of();

	join(w, 1);
	join(w, 2);
	assert_ok(dlvm_paxos_acquire(a->ls, 1, DLVM_LEASE_EXCLUSIVE, &l, &a->e), &a->e);
	long writes = dlvm_memdev_writes(w->mem);
	clk.renewing[1] = clk.renewing[2] = NULL;

	/* a damaged leader */
	leader_sector(w, 0)[20] ^= 1;
	assert_err(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &b->e), &b->e, -EBADMSG,
		   "pv0@2: lease area at offset 1048576: resource 0 leader at offset");
	assert_non_null(strstr(b->e.msg, "paxos leader checksum mismatch"));
	/* a damaged dblock, named by host id (of a host that joined: ballots
	 * read no others) */
	leader_sector(w, 0)[20] ^= 1;
	uint8_t *db = dblock_sector(w, 0, 1);
	struct dlvm_paxos_dblock junk = { .host_id = 1, .mbal = 9 };
	dlvm_paxos_dblock_encode(&junk, db);
	db[33] ^= 1;
	assert_err(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &b->e), &b->e, -EBADMSG,
		   "resource 0 dblock of host id 1 at offset");
	assert_non_null(strstr(b->e.msg, "paxos dblock checksum mismatch"));
	/* a dblock in the wrong slot */
	db[33] ^= 1;
	dlvm_put_le32(db + 16, 6);
	fix_crc(db);
	assert_err(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &b->e), &b->e, -EBADMSG,
		   "dblock of host id 1 at offset");
	memset(db, 0, w->ss);
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	/* a leader of another resource copied over this one */
	memcpy(leader_sector(w, 0), leader_sector(w, 1), w->ss);
	assert_err(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &l, &b->e), &b->e, -EBADMSG,
		   "field res_index is 1");
	/* the holder's delta lease is damaged: the holder cannot be judged */
	assert_ok(dlvm_lockspace_renew(b->ls, &b->e), &b->e);
	writes = dlvm_memdev_writes(w->mem);
	delta_sector(w, 1)[30] ^= 1;
	assert_err(dlvm_paxos_acquire(b->ls, 1, DLVM_LEASE_EXCLUSIVE, &l, &b->e), &b->e, -EBADMSG,
		   "host id 1 at offset 1052672: delta lease checksum mismatch");
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	assert_int_equal(leader(w, 1).owner_id, 1);
	world_free(w);
}

/* Reads by host h of the record at p (in the shared memdev) come back torn
 * `times` times. */
static void tear(struct world *w, struct host *h, const uint8_t *p, long times)
{
	hd(h->dev)->tear_off = (uint64_t)(p - dlvm_memdev_data(w->mem)) + 100;
	hd(h->dev)->tear_reads = times;
}

/* A read racing another host's write of a record can return a mix of both
 * versions (files in a page cache, tmpfs): it fails its CRC, and is read
 * again instead of being taken for damage. Damage that stays is still
 * reported, after three reads, and nothing is written over it. */
static void paxos_torn_reads(void **state)
{
	struct world *w = world_new(sector_size_of(state), 2);
	struct host *a = &w->h[1], *b = &w->h[2];
	struct dlvm_paxos_lease la = lease_of(), lb = lease_of();

	join(w, 1);
	join(w, 2);
	assert_ok(dlvm_paxos_acquire(a->ls, 0, DLVM_LEASE_EXCLUSIVE, &la, &a->e), &a->e);
	assert_ok(dlvm_paxos_release(a->ls, &la, &a->e), &a->e);

	/* the leader, torn on two reads */
	tear(w, b, leader_sector(w, 0), 2);
	assert_ok(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e);
	assert_int_equal(hd(b->dev)->tear_reads, 0);
	assert_ok(dlvm_paxos_release(b->ls, &lb, &b->e), &b->e);
	/* another host's dblock, read with all the others in a ballot */
	tear(w, b, dblock_sector(w, 0, 1), 1);
	assert_ok(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e);
	assert_int_equal(hd(b->dev)->tear_reads, 0);
	assert_int_equal(lb.lver, 3);
	assert_ok(dlvm_paxos_release(b->ls, &lb, &b->e), &b->e);
	/* the delta lease of a holder: judged alive, not damaged */
	assert_ok(dlvm_paxos_acquire(a->ls, 1, DLVM_LEASE_EXCLUSIVE, &la, &a->e), &a->e);
	tear(w, b, delta_sector(w, 1), 1);
	assert_err(dlvm_paxos_acquire(b->ls, 1, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e, -EBUSY,
		   "resource 1 is held by host id 1 'node1-1234abcd'");
	assert_int_equal(hd(b->dev)->tear_reads, 0);
	/* ... and in the lockspace read of a renewal: not shown as bad */
	tear(w, b, delta_sector(w, 1), 1);
	assert_ok(dlvm_lockspace_renew(b->ls, &b->e), &b->e);
	assert_int_equal(hd(b->dev)->tear_reads, 0);
	struct dlvm_host_info *hi;
	size_t n;
	assert_ok(dlvm_lockspace_hosts(b->ls, &hi, &n, &b->e), &b->e);
	assert_int_equal(n, 2);
	assert_int_equal(hi[0].state, DLVM_HOST_LIVE);
	free(hi);

	/* a leader that reads bad three times is damaged */
	clk.renewing[1] = clk.renewing[2] = NULL;
	long writes = dlvm_memdev_writes(w->mem), reads = hd(b->dev)->reads;
	tear(w, b, leader_sector(w, 0), 3);
	assert_err(dlvm_paxos_acquire(b->ls, 0, DLVM_LEASE_EXCLUSIVE, &lb, &b->e), &b->e, -EBADMSG,
		   "pv0@2: lease area at offset 1048576: resource 0 leader at offset");
	assert_non_null(strstr(b->e.msg, "paxos leader checksum mismatch"));
	assert_int_equal(hd(b->dev)->reads - reads, 3);
	assert_int_equal(dlvm_memdev_writes(w->mem), writes);
	world_free(w);
}

#define SS(f) \
	cmocka_unit_test_prestate(f, (void *)(uintptr_t)512), \
			cmocka_unit_test_prestate(f, (void *)(uintptr_t)4096)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(timeouts_values),
		cmocka_unit_test(area_sizes),
		SS(area_roundtrip),
		cmocka_unit_test(area_format_errors),
		cmocka_unit_test(area_corrupt_fields),
		cmocka_unit_test(records_roundtrip),
		cmocka_unit_test(records_corrupt_fields),
		SS(lockspace_acquire_free),
		SS(lockspace_join_stopped),
		SS(lockspace_same_id_busy),
		SS(lockspace_takeover_after_dead_time),
		SS(lockspace_restart_and_stolen),
		SS(lockspace_acquire_race),
		SS(lockspace_acquire_verify),
		SS(lockspace_liveness),
		SS(lockspace_expired_no_write),
		SS(lockspace_io_errors),
		SS(paxos_exclusive),
		SS(paxos_sequential_contention),
		SS(paxos_interleaved_phase1),
		SS(paxos_interleaved_phase2),
		SS(paxos_takeover),
		SS(paxos_owner_restart_or_release),
		SS(paxos_shared),
		SS(paxos_io_errors),
		SS(paxos_winner_dies_before_commit),
		SS(paxos_winner_fails_then_settles),
		SS(paxos_late_joiner_seen),
		SS(paxos_corruption),
		SS(paxos_torn_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
