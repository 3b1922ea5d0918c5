/* SPDX-License-Identifier: MIT */
/* Internals of lib/lease shared by the area, lockspace and paxos code. */
#ifndef DLVM_LEASE_INT_H
#define DLVM_LEASE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "dlvm/lease.h"

/* What this host last saw in one host's delta lease sector. */
struct lease_view {
	struct dlvm_delta_record rec;
	uint64_t last_change_ms; /* our clock, first read of the current record */
	bool seen;
	bool bad; /* the sector did not decode */
};

struct dlvm_lockspace {
	struct dlvm_lease_area *area;
	struct dlvm_lease_clock clock;
	struct dlvm_lease_timeouts to;
	uint32_t io_timeout;

	bool joined;
	uint32_t host_id;
	uint64_t generation;
	uint64_t prev_generation; /* the record replaced at join was ours (same name) */
	char name[DLVM_LEASE_NAME_MAX + 1];
	uint64_t last_ts; /* timestamp of our last write */
	_Atomic uint64_t deadline_ms;

	pthread_mutex_t lock;    /* guards view */
	struct lease_view *view; /* [1..max_hosts] */
	uint64_t scan_ms;        /* start of the last whole read of the view (0: none) */
	uint8_t *ls_buf;         /* the whole lockspace, for renewals */
	unsigned rand_state;
};

static inline uint64_t ls_now(const struct dlvm_lockspace *ls)
{
	return ls->clock.now_ms(ls->clock.priv);
}

/* Byte offsets on the device. */
uint64_t lease_delta_off(const struct dlvm_lease_area *a, uint32_t host_id);
uint64_t lease_leader_off(const struct dlvm_lease_area *a, uint32_t res);
uint64_t lease_dblock_off(const struct dlvm_lease_area *a, uint32_t res, uint32_t host_id);

/* One read or write of len bytes at off on the area's device, with the
 * area's I/O timeout (a->io_timeout_ms; 0: none) where the device has a file
 * descriptor (dlvm/timedio.h), or the device's own: -ETIMEDOUT when it did
 * not complete in time, with a message naming the device and the offset. */
int lease_dev_io(struct dlvm_lease_area *a, void *buf, size_t len, uint64_t off, bool write,
		 struct dlvm_err *err);

/* Read/write `count` area sectors at byte offset off; messages name the area
 * and `what`. buf from dlvm_io_alloc. */
int lease_read(struct dlvm_lease_area *a, void *buf, uint32_t count, uint64_t off, const char *what,
	       struct dlvm_err *err);
int lease_write(struct dlvm_lease_area *a, const void *buf, uint64_t off, const char *what,
		struct dlvm_err *err);

/* Decode-and-check step of lease_read_checked: 0 or a negative errno with a
 * message in err. */
typedef int (*lease_check_fn)(void *ctx, const uint8_t *buf, struct dlvm_err *err);

/*
 * lease_read, then check(ctx, buf). A check failing with -EBADMSG is retried
 * on a fresh read, up to LEASE_READ_ATTEMPTS reads 1 ms apart on `clock`
 * (NULL: the real one): where reads and writes of a sector are not atomic
 * against each other (files in a page cache, tmpfs), a read racing another
 * host's write of a record returns a mix of both versions and fails its
 * CRC, while real damage fails every read.
 */
#define LEASE_READ_ATTEMPTS 3
int lease_read_checked(struct dlvm_lease_area *a, const struct dlvm_lease_clock *clock, void *buf,
		       uint32_t count, uint64_t off, const char *what, lease_check_fn check,
		       void *ctx, struct dlvm_err *err);

/* Read and decode the delta lease of host_id (lease_read_checked). */
int lease_read_delta(struct dlvm_lease_area *a, const struct dlvm_lease_clock *clock, uint8_t *buf,
		     uint32_t host_id, const char *what, struct dlvm_delta_record *rec,
		     struct dlvm_err *err);

/* Decode host h's delta sector at buf; prefixes the area and host id. */
int lease_decode_delta(struct dlvm_lease_area *a, const uint8_t *buf, uint32_t host_id,
		       struct dlvm_delta_record *rec, struct dlvm_err *err);

/* Liveness view (caller holds ls->lock). */
void lease_view_update(struct dlvm_lockspace *ls, uint32_t host_id,
		       const struct dlvm_delta_record *rec, bool bad, uint64_t now);
enum dlvm_host_state lease_view_state(const struct dlvm_lockspace *ls, uint32_t host_id,
				      uint64_t now);

/*
 * Read the whole lockspace into buf (max_hosts sectors from dlvm_io_alloc)
 * and update the view of every host, as a renewal does; *own (may be NULL)
 * receives our own record when joined, an error if it does not decode.
 */
int lease_view_scan(struct dlvm_lockspace *ls, uint8_t *buf, struct dlvm_delta_record *own,
		    struct dlvm_err *err);

/* Is our own lease still valid now? -ETIMEDOUT with a message otherwise. */
int lease_check_deadline(struct dlvm_lockspace *ls, const char *op, struct dlvm_err *err);

#endif
