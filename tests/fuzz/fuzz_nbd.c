/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the NBD server of dlvmd: the option haggling (handshake.c) and the
 * transmission phase (transmit.c, xmit_wire.c, xmit_mem.c, xmit_dev.c),
 * the real code, driven from the fuzzer's input without a network.
 *
 * How it runs: the input is turned into the byte stream a client would
 * send (below). Each run makes a socketpair in the process; a client
 * thread writes the stream to its end, then shuts it for writing (the
 * server sees the end of the stream), and reads and drops everything the
 * server answers, until the server closes; it reads while it writes, so
 * neither side blocks the other. The calling thread is the server's
 * connection thread: it runs nbd_handshake() on the other end and, when
 * that enters the transmission phase and the input asks for it,
 * nbd_transmit(), as server.c does for an accepted connection, then lets
 * go of the export. No listener, no port.
 *
 * The server is built with 16 request slots per connection instead of 128
 * (NSLOTS, daemon/nbd/xmit.h): the slots' arena is allocated per
 * connection, and under ASan an 8 MiB allocation costs more than the rest
 * of a run; with fewer slots, all of them busy is also within reach.
 *
 * The exports (made once) are memory: each device is a memfd, which the
 * data path reads and writes through io_uring as it would a file PV:
 *   vg0/lv0      linear, 1 MiB, buffered
 *   vg0/lv1      linear, 1 MiB, "O_DIRECT" with 4096-byte sectors (the
 *                read-modify-write paths for unaligned requests)
 *   vg0/striped  2 devices, 4 KiB stripes, 512-byte sectors (requests in
 *                many pieces, served synchronously past MAX_ASYNC_PIECES)
 *   vg1/ro       read-only
 *   vg2/fenced   a shared VG's map whose fence deadline has passed
 *   vg2/live     a shared VG's map whose fence is far away
 * TLS (when the input asks): PSK credentials (identity alice) and access
 * rules that let clients without TLS open vg0's LVs and vg2/live only, and
 * alice every export (restricted clients, the TCP listener's). When every
 * option before the first STARTTLS is one the server answers at once, the
 * client reads the replies up to STARTTLS's and, if it was acknowledged,
 * does the TLS handshake as alice and sends the rest of the stream through
 * TLS: the option haggling and the transmission phase run on GnuTLS.
 * Otherwise the TLS handshake reads the client's plain bytes and fails.
 *
 * Checked after each run, besides the sanitizers: the connection let go of
 * its export (no client is left attached), and the request buffers it
 * counted in the server's total were all given back. The server's log
 * lines are dropped (formatted all the same, debug lines included); with
 * FUZZ_NBD_LOG set they go to stderr, to see what an input does:
 *   FUZZ_NBD_LOG=1 build-fuzz/fuzz_nbd tests/fuzz/corpus/fuzz_nbd/refused
 *
 * Input:
 *   byte 0   mode: bit 0 run the transmission phase after a successful
 *            handshake (else stop there); bit 1 TLS offered; bit 2 TLS
 *            required (FORCEDTLS); bit 3 access rules apply; bit 4 tight
 *            buffer limits (the least per connection, NBD_MAX_PAYLOAD, and
 *            2 MiB more in all, taken by other connections: requests in
 *            flight make the next ones wait for room); bit 5 the server is
 *            stopping
 *   byte 1   client flags: bits 0-1 as sent; bit 7 adds unknown bits 2-6
 *   options  an op byte each, until one ends the options: bits 0-3 the
 *            option (enum opt_kind), bit 4 the length field is off by a
 *            signed byte read next, bit 7 after GO or EXPORT_NAME: stay
 *            in the options (else requests follow). Names and queries
 *            are picked from tables or read from the input.
 *   requests an op byte each: bits 0-2 the command, bit 3 the command is a
 *            u16 read next instead, bit 4 the magic is a u32 read next
 *            (else fixed up), bit 5 flags are a byte read next (else FUA
 *            from bit 7), bit 6 a write's payload is cut to a u16 read
 *            next; then an offset choice and a length choice (off_choice,
 *            len_choice). Write payloads are a pattern, not input bytes.
 * The constants of the format are in tests/fuzz/nbd_input.h. The stream is
 * capped (STREAM_MAX; reads in all READ_BUDGET) so that a run stays short.
 */
/* fuzz-sources: daemon/exports.c daemon/nbd/handshake.c daemon/tls/access.c */
/* fuzz-sources: daemon/tls/tls.c daemon/tls/tls_conn.c daemon/nbd/transmit.c */
/* fuzz-sources: daemon/nbd/xmit_wire.c daemon/nbd/xmit_mem.c daemon/nbd/xmit_dev.c */
/* fuzz-sources: daemon/nbd/xmit_thin.c daemon/nbd/devio.c */
/* fuzz-cflags: -DNSLOTS=16 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon/exports.h"
#include "daemon/nbd/conn.h"
#include "daemon/nbd/proto.h"
#include "daemon/nbd/server.h"
#include "daemon/tls/tls.h"
#include "dlvm/log.h"
#include "dlvm/map.h"
#include "tests/fuzz/nbd_input.h"

#define DEV_SIZE (1u << 20)
#define STREAM_MAX (3u << 20)
#define READ_BUDGET (8u << 20)
/* Tight limits: what "other connections" hold of the server's total. A
 * connection with nothing in flight may always take one request of
 * NBD_MAX_PAYLOAD (over that it is refused unread), but only within the
 * total, so the total is that much more: else a request would wait for
 * the others forever, as the server means it to. */
#define TIGHT_OTHERS (2ull << 20)
#define TIGHT_TOTAL (NBD_MAX_PAYLOAD + TIGHT_OTHERS)

static const char *const export_names[] = {
	"vg0/lv0", "vg0/lv1", "vg0/striped", "vg1/ro", "vg2/fenced", "vg2/live",
};
#define NEXPORTS (sizeof(export_names) / sizeof(export_names[0]))

static struct dlvm_exports *exports;
static struct nbd_tls *tls;
static struct nbd_limits lim_default, lim_tight;

/* ---- setup, once ---- */

static void drop_line(void *arg, enum dlvm_log_level level, enum dlvm_log_sub sub, const char *line)
{
	(void)arg;
	(void)level;
	(void)sub;
	(void)line;
}

static int memfd(const char *name, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		abort();
	return fd;
}

/* A map over ndev devices of DEV_SIZE (striped when more than one). */
static struct dlvm_lv_map *map_new(const char *vg, const char *lv, const int *fds, uint32_t ndev,
				   uint32_t sector, bool direct, uint64_t stripe)
{
	struct dlvm_lv_map *m = calloc(1, sizeof(*m));

	if (!m)
		abort();
	atomic_init(&m->refs, 1);
	snprintf(m->vg, sizeof(m->vg), "%s", vg);
	snprintf(m->lv, sizeof(m->lv), "%s", lv);
	m->ndev = ndev;
	m->devs = calloc(ndev, sizeof(*m->devs));
	m->nseg = 1;
	m->segs = calloc(1, sizeof(*m->segs));
	if (!m->devs || !m->segs)
		abort();
	for (uint32_t i = 0; i < ndev; i++) {
		m->devs[i].fd = fds[i];
		m->devs[i].sector_size = sector;
		m->devs[i].direct = direct;
		snprintf(m->devs[i].name, sizeof(m->devs[i].name), "mem%d", fds[i]);
		m->segs[0].area_dev[i] = i;
	}
	m->segs[0].stripes = ndev;
	m->segs[0].len = (uint64_t)DEV_SIZE * ndev;
	m->segs[0].stripe_size = ndev > 1 ? stripe : m->segs[0].len;
	m->size = m->segs[0].len;
	return m;
}

static void export(const char *name, struct dlvm_lv_map *m)
{
	if (dlvm_exports_set(exports, name, m))
		abort();
	dlvm_lv_map_put(m);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f))
		abort();
}

static void make_tls(void)
{
	char dir[] = "/tmp/fuzz_nbd.XXXXXX", psk[64], acc[64];
	struct dlvm_err e = { 0 };

	if (!mkdtemp(dir))
		abort();
	snprintf(psk, sizeof(psk), "%s/keys.psk", dir);
	snprintf(acc, sizeof(acc), "%s/access", dir);
	write_file(psk, "alice:000102030405060708090a0b0c0d0e0f\n");
	write_file(acc, "*: vg0/* vg2/live\nalice: *\n");
	chmod(psk, 0600);
	struct nbd_tls_opts o = { .mode = "on", .psk_file = psk, .access_file = acc, .tcp = true };
	if (nbd_tls_new(&o, &tls, &e)) {
		fprintf(stderr, "fuzz_nbd: TLS: %s\n", e.msg);
		abort();
	}
	unlink(psk);
	unlink(acc);
	rmdir(dir);
}

static void *client_main(void *arg);
static gnutls_psk_client_credentials_t psk_cred; /* alice's key, as in make_tls */

static void setup(void)
{
	int a = memfd("lv0", DEV_SIZE), b = memfd("lv1", DEV_SIZE);
	int s[2] = { memfd("s0", DEV_SIZE), memfd("s1", DEV_SIZE) };
	struct dlvm_lv_map *m;

	if (!getenv("FUZZ_NBD_LOG")) /* set: the server's lines on stderr */
		dlvm_log_set_sink(drop_line, NULL);
	dlvm_log_set_level(DLVM_LOG_DEBUG);
	dlvm_log_set_debug("nbd", NULL); /* the debug lines are formatted too */
	exports = dlvm_exports_new();
	if (!exports)
		abort();
	export("vg0/lv0", map_new("vg0", "lv0", &a, 1, 512, false, 0));
	export("vg0/lv1", map_new("vg0", "lv1", &b, 1, 4096, true, 0));
	export("vg0/striped", map_new("vg0", "striped", s, 2, 512, true, 4096));
	m = map_new("vg1", "ro", &a, 1, 512, false, 0);
	m->readonly = true;
	export("vg1/ro", m);
	m = map_new("vg2", "fenced", &a, 1, 512, false, 0);
	m->fence = dlvm_fence_new("vg2"); /* deadline 0: fenced */
	export("vg2/fenced", m);
	m = map_new("vg2", "live", &b, 1, 512, false, 0);
	m->fence = dlvm_fence_new("vg2");
	dlvm_fence_set(m->fence, UINT64_MAX / 2);
	export("vg2/live", m);
	make_tls();
	static const uint8_t key[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	const gnutls_datum_t k = { .data = (uint8_t *)key, .size = sizeof(key) };
	if (gnutls_psk_allocate_client_credentials(&psk_cred) < 0 ||
	    gnutls_psk_set_client_credentials(psk_cred, "alice", &k, GNUTLS_PSK_KEY_RAW) < 0)
		abort();
	pthread_t t;
	if (pthread_create(&t, NULL, client_main, NULL))
		abort();
	lim_default = (struct nbd_limits){ .conn_buf = NBD_DEFAULT_CONN_BUF,
					   .total_buf = NBD_DEFAULT_TOTAL_BUF };
	lim_tight = (struct nbd_limits){ .conn_buf = NBD_MAX_PAYLOAD, .total_buf = TIGHT_TOTAL };
}

/* ---- the input and the stream built from it ---- */

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t get(struct in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		v <<= 8;
		if (in->n) {
			v |= *in->p++;
			in->n--;
		}
	}
	return v;
}

struct out {
	uint8_t *b;
	size_t len, cap;
	uint64_t reads;
	/* the client starts TLS after the first STARTTLS, at tls_at (0: never),
	 * when TLS is offered and every option before it is one the server
	 * answers without waiting for more bytes ("clean") */
	bool tls_offered, clean;
	size_t tls_at;
};

static bool full(const struct out *o)
{
	return o->len >= STREAM_MAX || o->reads >= READ_BUDGET;
}

static void put(struct out *o, const void *p, size_t n)
{
	if (!n)
		return;
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n)
			cap *= 2;
		o->b = realloc(o->b, cap);
		if (!o->b)
			abort();
		o->cap = cap;
	}
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

static void put_be(struct out *o, uint64_t v, unsigned bytes)
{
	uint8_t b[8];

	for (unsigned i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	put(o, b, bytes);
}

/* An export name: one of ours, the default (""), one that does not
 * exist, or bytes of the input (may hold a NUL). */
static void put_name(struct out *o, struct in *in)
{
	uint8_t c = (uint8_t)get(in, 1);
	char raw[256];
	const char *name;
	size_t len;

	if (c < NEXPORTS) {
		name = export_names[c];
		len = strlen(name);
	} else if (c < NAME_RAW) {
		name = c & 1 ? "" : "vg0/nope";
		len = strlen(name);
	} else {
		len = c & 0x3f;
		if (len > in->n)
			len = in->n;
		memcpy(raw, in->p, len);
		in->p += len;
		in->n -= len;
		name = raw;
	}
	put_be(o, len, 4);
	put(o, name, len);
}

static void put_name_only(struct out *o, struct in *in)
{
	struct out t = { 0 };

	put_name(&t, in);
	put(o, t.b + 4, t.len - 4);
	free(t.b);
}

/* GO and INFO: name, then a count and that many info requests. */
static void opt_info_go(struct out *o, struct in *in)
{
	unsigned n;

	put_name(o, in);
	n = (unsigned)get(in, 1) % 8;
	put_be(o, n, 2);
	for (unsigned i = 0; i < n; i++)
		put_be(o, get(in, 1) % 6, 2);
}

static const char *const queries[] = { "base:allocation", "base:", "qemu:dirty-bitmap:x", "" };

/* LIST_META_CONTEXT and SET_META_CONTEXT: name, then queries. */
static void opt_meta(struct out *o, struct in *in)
{
	unsigned n;

	put_name(o, in);
	n = (unsigned)get(in, 1) % 6;
	put_be(o, n, 4);
	for (unsigned i = 0; i < n; i++) {
		uint8_t q = (uint8_t)get(in, 1);
		if (q < Q_RAW) {
			put_be(o, strlen(queries[q % 4]), 4);
			put(o, queries[q % 4], strlen(queries[q % 4]));
		} else {
			put_name(o, in); /* any bytes */
		}
	}
}

static const uint32_t opt_number[] = { NBD_OPT_EXPORT_NAME,
				       NBD_OPT_ABORT,
				       NBD_OPT_LIST,
				       NBD_OPT_STARTTLS,
				       NBD_OPT_INFO,
				       NBD_OPT_GO,
				       NBD_OPT_STRUCTURED_REPLY,
				       NBD_OPT_LIST_META_CONTEXT,
				       NBD_OPT_SET_META_CONTEXT };

static void copy_bytes(struct out *o, struct in *in, size_t n)
{
	if (n > in->n)
		n = in->n;
	put(o, in->p, n);
	in->p += n;
	in->n -= n;
}

/* One option; returns true when requests follow it. */
static bool build_option(struct out *o, struct in *in)
{
	uint8_t op = (uint8_t)get(in, 1);
	unsigned kind = op & 0xf;
	int fudge = op & OP_FUDGE ? (int8_t)get(in, 1) : 0;
	struct out d = { 0 };
	uint32_t opt;

	if (kind >= K_END)
		return true;
	if (fudge || kind == K_RAW_BYTES || kind == K_RAW_OPTION || kind == K_GO ||
	    kind == K_EXPORT_NAME)
		o->clean = false;
	if (kind == K_RAW_BYTES) {
		copy_bytes(o, in, get(in, 1));
		return false;
	}
	if (kind == K_RAW_OPTION) {
		put_be(o, NBD_OPTS_MAGIC, 8);
		put_be(o, get(in, 4), 4);
		put_be(o, get(in, 4), 4);
		copy_bytes(o, in, get(in, 1));
		return false;
	}
	opt = kind < K_UNKNOWN ? opt_number[kind] : (uint32_t)get(in, 4);
	switch (kind) {
	case K_EXPORT_NAME: put_name_only(&d, in); break;
	case K_INFO:
	case K_GO: opt_info_go(&d, in); break;
	case K_LIST_META:
	case K_SET_META: opt_meta(&d, in); break;
	case K_UNKNOWN: copy_bytes(&d, in, get(in, 1) % 32); break;
	default: break; /* no data */
	}
	put_be(o, NBD_OPTS_MAGIC, 8);
	put_be(o, opt, 4);
	put_be(o, (uint32_t)((int64_t)d.len + fudge), 4);
	if (d.len)
		put(o, d.b, d.len);
	free(d.b);
	if (kind == K_STARTTLS && o->tls_offered && o->clean && !o->tls_at)
		o->tls_at = o->len;
	return (kind == K_GO || kind == K_EXPORT_NAME) && !(op & OP_STAY);
}

static uint64_t off_choice(struct in *in)
{
	switch (get(in, 1) & 7) {
	case OFF_0: return 0;
	case OFF_U16_SECTORS: return get(in, 2) * 512;
	case OFF_U16: return get(in, 2);
	case OFF_END_MINUS_U16: return DEV_SIZE - get(in, 2);
	case OFF_END: return DEV_SIZE;
	case OFF_U64: return get(in, 8);
	case OFF_MAX_MINUS_U16: return UINT64_MAX - get(in, 2);
	default: return get(in, 1) * 4096;
	}
}

static uint32_t len_choice(struct in *in)
{
	static const uint32_t fixed[] = {
		[LEN_0] = 0,
		[LEN_1] = 1,
		[LEN_512] = 512,
		[LEN_4K] = 4096,
		[LEN_64K] = 65536,
		[LEN_64K_1] = 65537,
		[LEN_256K] = 256u << 10,
		[LEN_256K_1] = (256u << 10) + 1,
		[LEN_1M] = DEV_SIZE,
		[LEN_MAX_PAYLOAD] = NBD_MAX_PAYLOAD,
		[LEN_MAX_PAYLOAD_1] = NBD_MAX_PAYLOAD + 1,
		[LEN_DISCARD_MAX_1] = (128u << 20) + 1,
		[LEN_U32_MAX] = UINT32_MAX,
	};
	unsigned c = (unsigned)get(in, 1) & 15;

	switch (c) {
	case LEN_U16: return (uint32_t)get(in, 2);
	case LEN_U16_SECTORS: return (uint32_t)get(in, 2) * 512;
	case LEN_U32: return (uint32_t)get(in, 4);
	default: return fixed[c];
	}
}

static void build_request(struct out *o, struct in *in, uint64_t cookie)
{
	uint8_t op = (uint8_t)get(in, 1);
	uint16_t type = op & RQ_TYPE_RAW ? (uint16_t)get(in, 2) : op & 7;
	uint32_t magic = op & RQ_MAGIC_RAW ? (uint32_t)get(in, 4) : NBD_REQUEST_MAGIC;
	uint16_t flags = op & RQ_FLAGS ? (uint16_t)get(in, 1) : op & RQ_FUA ? NBD_CMD_FLAG_FUA : 0;
	uint64_t off = off_choice(in);
	uint32_t len = len_choice(in);
	uint64_t payload = 0;

	put_be(o, magic, 4);
	put_be(o, flags, 2);
	put_be(o, type, 2);
	put_be(o, cookie, 8);
	put_be(o, off, 8);
	put_be(o, len, 4);
	if (type == NBD_CMD_READ)
		o->reads += len < 2 * DEV_SIZE ? len : 2 * DEV_SIZE;
	if (type != NBD_CMD_WRITE)
		return;
	payload = op & RQ_SHORT ? get(in, 2) : len;
	if (payload > len)
		payload = len;
	if (payload > STREAM_MAX)
		payload = STREAM_MAX;
	while (payload) {
		static uint8_t pattern[4096];
		size_t n = payload < sizeof(pattern) ? payload : sizeof(pattern);
		memset(pattern, (int)(cookie & 0xff), n);
		put(o, pattern, n);
		payload -= n;
	}
}

static void build(struct out *o, struct in *in)
{
	uint8_t cf = (uint8_t)get(in, 1);
	uint32_t cflags = cf & 3;
	uint64_t cookie = 1;

	if (cf & CF_UNKNOWN)
		cflags |= cf & 0x7c;
	put_be(o, cflags, 4);
	while (in->n && !full(o))
		if (build_option(o, in))
			break;
	while (in->n && !full(o))
		build_request(o, in, cookie++);
}

/* ---- the client thread ---- */

/* One thread for all runs (a thread per run would cost more than a short
 * run): it waits for a job, plays the client, and says it is done. */
struct client {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fd; /* the job: -1 when none */
	const uint8_t *b;
	size_t len, tls_at;
	bool done;
};

static struct client cl = { .mu = PTHREAD_MUTEX_INITIALIZER,
			    .cv = PTHREAD_COND_INITIALIZER,
			    .fd = -1 };

/* The client's end: plain, or through TLS once started (s). */
struct chan {
	int fd;
	gnutls_session_t s;
};

/* Bytes read or written, 0 at the end of the stream, -EAGAIN, or -EIO. */
static ssize_t chan_recv(struct chan *ch, void *buf, size_t len)
{
	ssize_t n;

	if (!ch->s) {
		n = recv(ch->fd, buf, len, MSG_DONTWAIT);
		return n >= 0 ? n : errno == EAGAIN || errno == EINTR ? -EAGAIN : -EIO;
	}
	n = gnutls_record_recv(ch->s, buf, len);
	return n >= 0 ? n : n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED ? -EAGAIN : -EIO;
}

static ssize_t chan_send(struct chan *ch, const void *buf, size_t len)
{
	ssize_t n;

	if (!ch->s) {
		n = send(ch->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		return n >= 0 ? n : errno == EAGAIN || errno == EINTR ? -EAGAIN : -EIO;
	}
	/* after -EAGAIN, GnuTLS wants the same bytes again: they are */
	n = gnutls_record_send(ch->s, buf, len < 16384 ? len : 16384);
	return n >= 0 ? n : n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED ? -EAGAIN : -EIO;
}

/* Write the stream while reading what comes back, until the server closes. */
static void play(struct chan *ch, const uint8_t *b, size_t len)
{
	static uint8_t sink[1 << 16];
	size_t sent = 0;
	bool writing = len > 0;

	if (!writing)
		shutdown(ch->fd, SHUT_WR);
	for (;;) {
		struct pollfd p = { .fd = ch->fd, .events = POLLIN | (writing ? POLLOUT : 0) };
		ssize_t n;
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			while ((n = chan_recv(ch, sink, sizeof(sink))) > 0)
				;
			if (n != -EAGAIN)
				return; /* the server closed */
		}
		if (writing && (p.revents & POLLOUT)) {
			n = chan_send(ch, b + sent, len - sent);
			if (n > 0)
				sent += (size_t)n;
			if (n == -EIO || sent == len) {
				if (ch->s)
					gnutls_bye(ch->s, GNUTLS_SHUT_WR);
				shutdown(ch->fd, SHUT_WR); /* the end of the client's stream */
				writing = false;
			}
		}
	}
}

static bool recv_all(int fd, void *buf, size_t len)
{
	for (uint8_t *p = buf; len;) {
		ssize_t n = recv(fd, p, len, 0);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Send the stream up to STARTTLS and read the replies up to its own: was
 * it acknowledged? */
static bool starttls_acked(int fd, const uint8_t *b, size_t tls_at)
{
	uint8_t h[20];

	if (send(fd, b, tls_at, MSG_NOSIGNAL) != (ssize_t)tls_at || !recv_all(fd, h, 18))
		return false;
	for (;;) {
		if (!recv_all(fd, h, 20) || nbd_get64(h) != NBD_REP_MAGIC)
			return false;
		for (uint32_t left = nbd_get32(h + 16); left;) {
			static uint8_t skip[4096];
			uint32_t k = left < sizeof(skip) ? left : sizeof(skip);
			if (!recv_all(fd, skip, k))
				return false;
			left -= k;
		}
		if (nbd_get32(h + 8) == NBD_OPT_STARTTLS)
			return nbd_get32(h + 12) == NBD_REP_ACK;
	}
}

/* The client: plain, or up to STARTTLS and then, if acknowledged, the TLS
 * handshake (PSK, alice) and the rest of the stream through TLS. */
static void client_run(int fd, const uint8_t *b, size_t len, size_t tls_at)
{
	struct chan ch = { .fd = fd };
	struct timeval tv = { .tv_sec = 5 }; /* a safety net: the options are clean */
	int r;

	if (!tls_at) {
		play(&ch, b, len);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!starttls_acked(fd, b, tls_at)) {
		play(&ch, b + tls_at, len - tls_at);
		return;
	}
	if (gnutls_init(&ch.s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL) < 0 ||
	    gnutls_priority_set_direct(ch.s, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", NULL) < 0 ||
	    gnutls_credentials_set(ch.s, GNUTLS_CRD_PSK, psk_cred) < 0)
		abort();
	gnutls_transport_set_int(ch.s, fd);
	gnutls_handshake_set_timeout(ch.s, 5000);
	do
		r = gnutls_handshake(ch.s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0) {
		gnutls_deinit(ch.s);
		ch.s = NULL;
		play(&ch, b, 0);
		return;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	play(&ch, b + tls_at, len - tls_at);
	gnutls_deinit(ch.s);
}

static void *client_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cl.mu);
	for (;;) {
		while (cl.fd < 0)
			pthread_cond_wait(&cl.cv, &cl.mu);
		pthread_mutex_unlock(&cl.mu);
		client_run(cl.fd, cl.b, cl.len, cl.tls_at);
		pthread_mutex_lock(&cl.mu);
		cl.fd = -1;
		cl.done = true;
		pthread_cond_broadcast(&cl.cv);
	}
	return NULL;
}

static void client_start(int fd, const uint8_t *b, size_t len, size_t tls_at)
{
	pthread_mutex_lock(&cl.mu);
	cl.b = b;
	cl.len = len;
	cl.tls_at = tls_at;
	cl.done = false;
	cl.fd = fd;
	pthread_cond_broadcast(&cl.cv);
	pthread_mutex_unlock(&cl.mu);
}

static void client_wait(void)
{
	pthread_mutex_lock(&cl.mu);
	while (!cl.done)
		pthread_cond_wait(&cl.cv, &cl.mu);
	pthread_mutex_unlock(&cl.mu);
}

/* ---- one run ---- */

static void kick(struct dlvm_export_client *c)
{
	(void)c; /* exports are never removed here */
}

static void serve(struct nbd_conn *c, uint8_t mode)
{
	if (nbd_handshake(c) == 0) {
		if (!c->attached || !c->map || !c->name)
			abort(); /* in the transmission phase without an export */
		atomic_store(&c->transmitting, true);
		if (mode & M_TRANSMIT)
			nbd_transmit(c);
		dlvm_exports_detach(c->ex, &c->client);
		dlvm_lv_map_put(c->map);
	} else if (c->attached || c->map || c->name) {
		abort(); /* a failed handshake left the export attached */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static _Atomic uint64_t buf_total;
	struct in in = { .p = data + 1, .n = size ? size - 1 : 0 };
	static struct out o; /* kept: its pages stay mapped from run to run */
	struct nbd_conn *c;
	uint8_t mode;
	int sv[2];

	if (!exports)
		setup();
	if (size < 2)
		return 0;
	mode = data[0];
	o.len = 0;
	o.reads = 0;
	o.tls_offered = mode & M_TLS;
	o.clean = true;
	o.tls_at = 0;
	build(&o, &in);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	client_start(sv[1], o.b, o.len, o.tls_at);

	c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->ex = exports;
	c->fd = sv[0];
	snprintf(c->peer, sizeof(c->peer), "fuzz");
	snprintf(c->client_key, sizeof(c->client_key), "uid 0");
	c->client.kick = kick;
	c->lim = mode & M_TIGHT ? &lim_tight : &lim_default;
	atomic_store(&buf_total, mode & M_TIGHT ? TIGHT_OTHERS : 0);
	c->buf_total = &buf_total;
	c->tls_cfg = mode & M_TLS ? tls : NULL;
	c->tls_required = c->tls_cfg && (mode & M_TLS_REQUIRED);
	c->restricted = c->tls_cfg && (mode & M_RESTRICTED);
	atomic_init(&c->stop, (mode & M_STOP) != 0);
	serve(c, mode);

	nbd_tls_conn_close(c->tls);
	/* the end of the server's stream now: the ring, which holds the
	 * socket as a registered file, lets go of it later */
	shutdown(sv[0], SHUT_RDWR);
	close(sv[0]);
	client_wait();
	close(sv[1]);
	free(c->name);
	free(c);
	if (atomic_load(&buf_total) != (mode & M_TIGHT ? TIGHT_OTHERS : 0))
		abort(); /* request buffers not given back */
	for (size_t i = 0; i < NEXPORTS; i++)
		if (dlvm_exports_clients(exports, export_names[i]))
			abort(); /* still attached */
	return 0;
}
