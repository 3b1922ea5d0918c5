/* SPDX-License-Identifier: MIT */
/*
 * Leases on shared storage: a lockspace of delta leases (one per host id) and
 * Disk Paxos resource leases, both kept in a lease area on a PV of a shared
 * VG. The algorithms are the published ones sanlock uses (Chockler-Malkhi
 * delta leases, Gafni-Lamport Disk Paxos on one disk); the format, the
 * timeouts and the code are dlvm's own.
 *
 * The lease area's layout and records, byte by byte: docs/format/lease.md.
 *
 * ==== Timeouts (T = io_timeout in seconds) ====
 *
 *   renew interval     R = T/2  a host rewrites its delta lease this often
 *   fail threshold     F = 3T   a host whose last successful renewal *started*
 *                               F ago stops issuing writes (its deadline)
 *   in-flight bound    I = T    writes issued before the deadline complete
 *                               (or are failed by the data path) within I
 *   dead-host time     D = 5T   = F + I + T of margin
 *   acquire wait       A = 2T   delay between writing a delta lease and the
 *                               re-read that confirms it
 *
 * Argument. An observer records, on its own clock (CLOCK_BOOTTIME), the time c at
 * which it first read the current value of host X's sector. The write that
 * put that value there was issued by X at some s <= c (a value is read only
 * after its write was issued). X measures F from the start of its last
 * successful renewal, which began no later than s (a renewal X counts as
 * successful has landed, so it is the current value or an earlier one). So
 * X's deadline is at most s + F <= c + F, X dispatches no write after it, and
 * its writes in flight end by c + F + I. The observer declares X dead at c + D = c + F + I + T: a full T after
 * X's last write could have landed; that margin absorbs the gap between the
 * data path's deadline check and its submission and clock rate differences.
 * An observer that has not seen the sector change since it began watching at
 * w has c = w, and the same bound holds.
 *
 * Takeover of a dead host's leases: the last change is seen at most R after
 * it landed, then D passes: at most R + D = 5.5T after the host stopped,
 * plus the few I/Os of the acquisition: 55 s at T = 10 (DESIGN.md target: 60 s;
 * sanlock's defaults: 140 s) and 5.5 s at T = 1 (target: 8 s).
 *
 * Delta lease acquisition (A = 2T): a host reads the sector at r, writes its
 * record, waits A and re-reads. It gives up without writing if more than T
 * passed between r and the write, and treats a write completing more than T
 * after r as a failed attempt. So a competitor that read the same old value
 * before our write landed finished its own write within T of that read, that
 * is before our re-read at (our write) + 2T: whoever's write landed first
 * sees the other's record and fails.
 *
 * ==== Lease I/O ====
 *
 * Every lease read and write on a device with a file descriptor runs with a
 * timeout of T (an io_uring request linked to a timeout, per thread; a
 * request the kernel cannot cancel is abandoned after T + 0.5 s): the call
 * that issued it fails with -ETIMEDOUT, naming the device and the offset,
 * and never blocks longer (docs/leases.md, "Lease I/O with a timeout").
 *
 * ==== Threads ====
 *
 * A lockspace handle is used by one thread at a time, except that
 * dlvm_lockspace_deadline_ms() may be called from any thread at any time, and
 * the paxos calls may run on another thread than the renewals (the liveness
 * view they share is locked).
 */
#ifndef DLVM_LEASE_H
#define DLVM_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlvm/dev.h"
#include "dlvm/err.h"

#define DLVM_LEASE_AREA_MAGIC "dlvm.lsa"
#define DLVM_DELTA_MAGIC "dlvm.dlt"
#define DLVM_LEADER_MAGIC "dlvm.pxl"
#define DLVM_DBLOCK_MAGIC "dlvm.pxb"

#define DLVM_LEASE_MAJOR 1
#define DLVM_LEASE_MINOR 0

#define DLVM_LEASE_HEADER_SIZE 4096u /* the area header block */
#define DLVM_LEASE_RECORD_SIZE 512u  /* every record structure */
#define DLVM_LEASE_MAX_HOSTS 2000u   /* host ids are 1..max_hosts */
#define DLVM_LEASE_MAX_RESOURCES 4096u
#define DLVM_LEASE_IO_TIMEOUT_DEFAULT 10u
#define DLVM_LEASE_IO_TIMEOUT_MAX 300u
#define DLVM_LEASE_NAME_MAX 63u /* owner name, bytes without the NUL */

#define DLVM_LEASE_INCOMPAT_KNOWN ((uint64_t)0)

/* ---- timeouts ---- */

struct dlvm_lease_timeouts {
	uint64_t io_timeout_ms;     /* T */
	uint64_t renew_interval_ms; /* R = T/2 */
	uint64_t renew_fail_ms;     /* F = 3T */
	uint64_t inflight_ms;       /* I = T */
	uint64_t host_dead_ms;      /* D = 5T */
	uint64_t acquire_wait_ms;   /* A = 2T */
	uint64_t takeover_max_ms;   /* R + D: worst case to see a host dead */
};

/* Fill *t for io_timeout seconds (1..DLVM_LEASE_IO_TIMEOUT_MAX); -EINVAL
 * outside that range. */
int dlvm_lease_timeouts(uint32_t io_timeout, struct dlvm_lease_timeouts *t);

/* ---- clock: all waiting goes through it, so tests can fake time ---- */

struct dlvm_lease_clock {
	uint64_t (*now_ms)(void *priv); /* milliseconds of CLOCK_BOOTTIME */
	void (*sleep_ms)(void *priv, uint64_t ms);
	void *priv;
	/* May be NULL. When it returns true, a join in progress
	 * (dlvm_lockspace_acquire) gives up within about 100 ms: -EINTR, and
	 * the record it wrote is released again. */
	bool (*stopping)(void *priv);
};

/* dlvm_now_ms (CLOCK_BOOTTIME: a suspend counts) and nanosleep. */
extern const struct dlvm_lease_clock dlvm_lease_real_clock;

/* ---- on-disk records and their codecs ---- */

struct dlvm_lease_area_header {
	uint16_t major, minor;
	uint64_t compat, ro_compat, incompat;
	uint8_t vg_uuid[16];
	uint32_t sector_size;
	uint32_t max_hosts;
	uint32_t nres;
	uint32_t io_timeout;
	uint64_t area_size;
	uint64_t lockspace_offset, lockspace_size;
	uint64_t resource_offset, resource_stride;
};

/*
 * Compute the layout for a sector size, max_hosts and number of resources:
 * fills the offset and size fields of *h (and the three inputs). -EINVAL with
 * a message for a sector size other than 512/4096, max_hosts outside
 * 1..2000 or nres above 4096.
 */
int dlvm_lease_area_geometry(uint32_t sector_size, uint32_t max_hosts, uint32_t nres,
			     struct dlvm_lease_area_header *h, struct dlvm_err *err);

void dlvm_lease_area_header_encode(const struct dlvm_lease_area_header *h,
				   uint8_t buf[DLVM_LEASE_RECORD_SIZE]);
/* -EBADMSG (magic, CRC, a field; the message names it) or -ENOTSUP (version,
 * incompatible features). */
int dlvm_lease_area_header_decode(const uint8_t buf[DLVM_LEASE_RECORD_SIZE],
				  struct dlvm_lease_area_header *h, struct dlvm_err *err);

struct dlvm_delta_record {
	uint32_t host_id;    /* 0 in a never written sector */
	uint32_t io_timeout; /* seconds */
	uint64_t generation;
	uint64_t timestamp; /* 0: released */
	uint8_t vg_uuid[16];
	char name[DLVM_LEASE_NAME_MAX + 1];
};
void dlvm_delta_encode(const struct dlvm_delta_record *d, uint8_t buf[DLVM_LEASE_RECORD_SIZE]);
/* An all-zero structure decodes as a zeroed record (host_id 0). */
int dlvm_delta_decode(const uint8_t buf[DLVM_LEASE_RECORD_SIZE], struct dlvm_delta_record *d,
		      struct dlvm_err *err);

struct dlvm_paxos_leader {
	uint32_t res_index;
	uint32_t owner_id; /* 0: never owned */
	uint64_t owner_generation;
	uint64_t lver;
	uint64_t timestamp; /* 0: free */
	uint8_t vg_uuid[16];
	uint32_t writer_id;
	uint32_t max_hosts;
};
void dlvm_paxos_leader_encode(const struct dlvm_paxos_leader *l,
			      uint8_t buf[DLVM_LEASE_RECORD_SIZE]);
int dlvm_paxos_leader_decode(const uint8_t buf[DLVM_LEASE_RECORD_SIZE], struct dlvm_paxos_leader *l,
			     struct dlvm_err *err);

#define DLVM_DBLOCK_SHARED 0x1u

struct dlvm_paxos_dblock {
	uint32_t host_id; /* 0 in a never written sector */
	uint32_t flags;   /* DLVM_DBLOCK_* */
	uint64_t lver, mbal, bal;
	uint32_t inp_id;
	uint64_t inp_generation, inp_timestamp;
	uint64_t shared_generation;
};
void dlvm_paxos_dblock_encode(const struct dlvm_paxos_dblock *b,
			      uint8_t buf[DLVM_LEASE_RECORD_SIZE]);
/* An all-zero structure decodes as a zeroed dblock. */
int dlvm_paxos_dblock_decode(const uint8_t buf[DLVM_LEASE_RECORD_SIZE], struct dlvm_paxos_dblock *b,
			     struct dlvm_err *err);

/* ---- lease area ---- */

struct dlvm_lease_area {
	struct dlvm_dev *dev; /* not owned */
	uint64_t offset;      /* of the area on dev, 4096-aligned */
	struct dlvm_lease_area_header hdr;
	char where[160]; /* "pv0.img: lease area at offset 1048576" */
	/* Lease reads and writes on a device with a file descriptor that take
	 * longer are abandoned with -ETIMEDOUT (0: no timeout). Set by
	 * dlvm_lockspace_new to its io_timeout. */
	uint64_t io_timeout_ms;
};

struct dlvm_lease_format_opts {
	uint8_t vg_uuid[16];  /* must not be all zero */
	uint32_t sector_size; /* 0: the device's */
	uint32_t max_hosts;   /* 0: DLVM_LEASE_MAX_HOSTS */
	uint32_t nres;
	uint32_t io_timeout; /* 0: DLVM_LEASE_IO_TIMEOUT_DEFAULT */
};

/* Bytes an area of this geometry needs (0 for invalid arguments). */
uint64_t dlvm_lease_area_size(uint32_t sector_size, uint32_t max_hosts, uint32_t nres);

/*
 * Write a fresh lease area of at most `size` bytes at `offset` on dev: first
 * the header block is zeroed (an interrupted format leaves no valid area),
 * then the lockspace and dblocks are zeroed and every leader written free
 * with lver 0, then the device is flushed and the header written last and
 * flushed. -EINVAL (offset not 4096-aligned, sector size below the device's,
 * geometry, all-zero uuid), -ENOSPC (size too small or past the device end),
 * -EIO and others from the device.
 */
int dlvm_lease_area_format(struct dlvm_dev *dev, uint64_t offset, uint64_t size,
			   const struct dlvm_lease_format_opts *opts, struct dlvm_err *err);

/*
 * Read and validate the area header at `offset` (area of at most `size`
 * bytes). Returns 0 and a new handle in *out (free with
 * dlvm_lease_area_close; the device stays the caller's). -EBADMSG or
 * -ENOTSUP for a damaged or unknown header, with a message naming the device,
 * the area offset and the field; nothing is ever written.
 */
int dlvm_lease_area_open(struct dlvm_dev *dev, uint64_t offset, uint64_t size,
			 struct dlvm_lease_area **out, struct dlvm_err *err);
void dlvm_lease_area_close(struct dlvm_lease_area *area);

/* ---- lockspace (delta leases) ---- */

struct dlvm_lockspace;

/*
 * A lockspace handle on an open area (which must outlive it). clock NULL
 * means the real clock; io_timeout 0 means the area's. -EINVAL for an
 * io_timeout out of range, -ENOMEM.
 */
int dlvm_lockspace_new(struct dlvm_lease_area *area, const struct dlvm_lease_clock *clock,
		       uint32_t io_timeout, struct dlvm_lockspace **out, struct dlvm_err *err);
/* Free the handle. Does not release the host id (a daemon that exits without
 * releasing is simply seen dead later). NULL is allowed. */
void dlvm_lockspace_free(struct dlvm_lockspace *ls);

/*
 * Join the lockspace as host_id (1..max_hosts) under `name` (1..63 printable
 * bytes: host name plus a string unique to the host, so that a restart on the
 * same host is recognised). Blocks for at least the acquire wait A; if the
 * sector holds a live record of another name, watches it for up to that
 * owner's dead-host time. Returns 0 and the new generation in *generation
 * (may be NULL). Errors:
 *   -EINVAL    host id out of range, bad name, already joined
 *   -EBUSY     the host id is held: "host id 7 is held by host 'node3'
 *              (generation 4)", or another host took it while we acquired
 *   -ETIMEDOUT lease I/O slower than io_timeout on every attempt
 *   -EBADMSG   the sector is damaged (never overwritten)
 *   -EIO ...   device errors
 */
int dlvm_lockspace_acquire(struct dlvm_lockspace *ls, uint32_t host_id, const char *name,
			   uint64_t *generation, struct dlvm_err *err);

/*
 * Renew: read the whole lockspace (that read updates the liveness view of
 * every host), check that our sector still holds our record, write a new
 * timestamp. Call every renew interval. On success the deadline becomes the
 * time this renewal started + F. Errors:
 *   -ESTALE    "host id N was taken by host 'X' (generation G)"; we are out
 *   -ETIMEDOUT the deadline had passed before this renewal (the lease is
 *              lost: stop I/O, rejoin with acquire) or the renewal write took
 *              longer than io_timeout (the deadline is not extended)
 *   -EINVAL    not joined; -EBADMSG our sector is damaged; -EIO ...
 * After -ESTALE or a lost lease the handle is no longer joined.
 */
int dlvm_lockspace_renew(struct dlvm_lockspace *ls, struct dlvm_err *err);

/*
 * Leave the lockspace: write our record with timestamp 0, after checking the
 * sector still holds it (-ESTALE otherwise, nothing written). Call only after
 * all I/O under this host's leases has stopped: other hosts may take this
 * host's resource leases at once afterwards. -ETIMEDOUT past the deadline
 * (nothing written).
 */
int dlvm_lockspace_release(struct dlvm_lockspace *ls, struct dlvm_err *err);

/* Milliseconds of the lockspace's clock (CLOCK_BOOTTIME) after which this host must
 * issue no write; 0 when not joined. Safe from any thread. */
uint64_t dlvm_lockspace_deadline_ms(const struct dlvm_lockspace *ls);

uint32_t dlvm_lockspace_host_id(const struct dlvm_lockspace *ls);
uint64_t dlvm_lockspace_generation(const struct dlvm_lockspace *ls);
/* The generation of the record this host replaced when it joined, if that
 * record carried the same name (this host's previous run: its resources may
 * be re-adopted); 0 when the sector was never used or held by another name. */
uint64_t dlvm_lockspace_prev_generation(const struct dlvm_lockspace *ls);
const struct dlvm_lease_timeouts *dlvm_lockspace_timeouts(const struct dlvm_lockspace *ls);

enum dlvm_host_state {
	DLVM_HOST_FREE, /* never used or released */
	DLVM_HOST_LIVE, /* changed within its fail threshold */
	DLVM_HOST_FAIL, /* unchanged past its fail threshold: fencing itself */
	DLVM_HOST_DEAD, /* unchanged for its dead-host time: leases may be taken */
	DLVM_HOST_BAD,  /* the sector does not decode */
};
const char *dlvm_host_state_name(enum dlvm_host_state s);

struct dlvm_host_info {
	uint32_t host_id;
	enum dlvm_host_state state;
	char name[DLVM_LEASE_NAME_MAX + 1];
	uint64_t generation;
	uint64_t timestamp;
	uint32_t io_timeout;
	uint64_t last_change_ms; /* our clock: when we first read the current record */
};

/*
 * The liveness view as of the last renewal (or acquire): one entry for every
 * host id whose sector was ever written, in host id order. *out is malloc'ed
 * (free it); *n may be 0. -ENOMEM, -EINVAL when not joined.
 */
int dlvm_lockspace_hosts(struct dlvm_lockspace *ls, struct dlvm_host_info **out, size_t *n,
			 struct dlvm_err *err);

/* ---- resource leases (Disk Paxos) ---- */

enum dlvm_lease_mode {
	DLVM_LEASE_EXCLUSIVE = 1,
	DLVM_LEASE_SHARED = 2,
};

struct dlvm_paxos_lease {
	uint32_t res_index;
	enum dlvm_lease_mode mode;
	uint64_t lver;     /* version the acquisition ran at */
	uint32_t owner_id; /* this host */
	uint64_t owner_generation;
};

/*
 * Acquire resource res_index (0..nres-1) for this joined host.
 *
 * EXCLUSIVE: runs a Disk Paxos ballot for the next lease version (ballot
 * numbers k * max_hosts + host_id, unique per host) and writes the leader
 * naming this host. Fails if a live host holds it, exclusively or shared.
 * SHARED: acquires exclusively, sets the SHARED flag in this host's dblock,
 * then frees the leader; fails while a live host holds it exclusively.
 *
 * A holder counts as gone when its host's delta lease is dead (dead-host
 * time without change, seen from this host), released, or of a newer
 * generation (the holder restarted). Acquiring an exclusive lease this host
 * already holds returns it again.
 *
 * Errors: -EBUSY "resource 3 is held by host id 7 'node3' (generation 4)"
 * (or "held shared by ..."; also after losing a race to another host, which
 * it names, and for the moment another host holds the leader while it takes
 * a shared lease: callers that wait retry after a short delay); -ETIMEDOUT this host's own deadline has passed (nothing
 * written); -EINVAL (not joined, index, mode); -EBADMSG a damaged leader,
 * dblock or holder's delta lease; -EIO ...
 */
int dlvm_paxos_acquire(struct dlvm_lockspace *ls, uint32_t res_index, enum dlvm_lease_mode mode,
		       struct dlvm_paxos_lease *lease, struct dlvm_err *err);

/*
 * Release a lease from dlvm_paxos_acquire. EXCLUSIVE: the leader must still
 * name this host at lease->lver (-ESTALE "resource 3 was taken by host id ...
 * " otherwise, nothing written); it is rewritten free. SHARED: this host's
 * SHARED flag is cleared. -ETIMEDOUT past our deadline (nothing written).
 */
int dlvm_paxos_release(struct dlvm_lockspace *ls, const struct dlvm_paxos_lease *lease,
		       struct dlvm_err *err);

/* Read and decode the leader of a resource (no lockspace needed). */
int dlvm_paxos_read_leader(struct dlvm_lease_area *area, uint32_t res_index,
			   struct dlvm_paxos_leader *leader, struct dlvm_err *err);

/*
 * The host ids holding res_index shared and still alive (as judged from this
 * host's view, including this host), ascending, at most `max` in ids; *n is
 * the number found (may exceed max).
 */
int dlvm_paxos_shared_holders(struct dlvm_lockspace *ls, uint32_t res_index, uint32_t *ids,
			      size_t max, size_t *n, struct dlvm_err *err);

#endif
