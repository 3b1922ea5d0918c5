/* SPDX-License-Identifier: MIT */
/*
 * hangfs: a FUSE file system with one file, a PV whose I/O can be made to
 * hang or fail on command, for one process at a time, as a path to a SAN
 * fails for one host and not the others (tests/system/test_hung_lease.py).
 *
 *   hangfs MOUNTPOINT BACKING NAME
 *
 * MOUNTPOINT/NAME reads and writes BACKING (direct I/O: no page cache, every
 * request reaches this process); MOUNTPOINT/ctl takes commands, one per
 * write:
 *
 *   hang PID   reads, writes and fsyncs from process PID (any of its
 *              threads) are held: no reply, nothing done
 *   fail PID   they fail with EIO
 *   ok         both stop; held requests stay held
 *   go         held requests are performed now and answered (a path that
 *              comes back with its queue intact)
 *   drop       held requests are answered EIO without being performed
 *
 * A held request that the kernel interrupts (its caller was cancelled, as
 * an io_uring timeout does) is answered EINTR and never performed. Every
 * held request's fate is logged on stderr, one line each:
 *   "hangfs: held write 512 at 1048576 pid 123"
 *   "hangfs: interrupted write 512 at 1048576 pid 123"
 *   "hangfs: performed write ..." / "hangfs: dropped write ..."
 * Close (FLUSH, RELEASE) is never held: a block device's close needs no I/O.
 */
#define FUSE_USE_VERSION 34

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INO_FILE 2
#define INO_CTL 3

struct held {
	struct held *next;
	fuse_req_t req;
	int op; /* 'r', 'w', 's' */
	size_t size;
	off_t off;
	char *data; /* a write's bytes */
	int pid;
	bool done;
};

static int backing = -1;
static const char *file_name;
static int hang_pid, fail_pid;
static struct held *held;

static const char *op_name(int op)
{
	return op == 'r' ? "read" : op == 'w' ? "write" : "fsync";
}

static int tgid_of(int tid)
{
	char path[64], line[128];
	int tgid = tid;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return tid;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Tgid:", 5))
			tgid = atoi(line + 5);
	fclose(f);
	return tgid;
}

static void say(const char *what, const struct held *h)
{
	fprintf(stderr, "hangfs: %s %s %zu at %jd pid %d\n", what, op_name(h->op), h->size,
		(intmax_t)h->off, h->pid);
}

static void perform(struct held *h)
{
	if (h->op == 'r') {
		char *buf = malloc(h->size ? h->size : 1);
		ssize_t n = buf ? pread(backing, buf, h->size, h->off) : -1;
		if (n < 0)
			fuse_reply_err(h->req, buf ? errno : ENOMEM);
		else
			fuse_reply_buf(h->req, buf, (size_t)n);
		free(buf);
	} else if (h->op == 'w') {
		ssize_t n = pwrite(backing, h->data, h->size, h->off);
		if (n < 0)
			fuse_reply_err(h->req, errno);
		else
			fuse_reply_write(h->req, (size_t)n);
	} else {
		fuse_reply_err(h->req, fdatasync(backing) < 0 ? errno : 0);
	}
}

static void unlink_held(struct held *h)
{
	for (struct held **p = &held; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	free(h->data);
	free(h);
}

static void on_interrupt(fuse_req_t req, void *arg)
{
	struct held *h = arg;

	(void)req;
	if (h->done)
		return;
	h->done = true;
	say("interrupted", h);
	fuse_reply_err(h->req, EINTR);
	unlink_held(h);
}

/* Hold, fail or do an I/O request. */
static void io(fuse_req_t req, int op, size_t size, off_t off, const char *data)
{
	struct held tmp = { .req = req, .op = op, .size = size, .off = off, .pid = 0 };
	int pid = (hang_pid || fail_pid) ? tgid_of((int)fuse_req_ctx(req)->pid) : 0;

	tmp.pid = pid;
	if (pid && pid == fail_pid) {
		say("failed", &tmp);
		fuse_reply_err(req, EIO);
		return;
	}
	if (!pid || pid != hang_pid) {
		tmp.data = (char *)data;
		perform(&tmp);
		return;
	}
	struct held *h = calloc(1, sizeof(*h));
	if (!h || (data && !(h->data = malloc(size ? size : 1)))) {
		free(h);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	*h = (struct held){ .req = req,
			    .op = op,
			    .size = size,
			    .off = off,
			    .pid = pid,
			    .data = h->data };
	if (data)
		memcpy(h->data, data, size);
	h->next = held;
	held = h;
	say("held", h);
	fuse_req_interrupt_func(req, on_interrupt, h);
}

static void control(const char *cmd, size_t len)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), cmd);
	if (!strncmp(buf, "hang ", 5)) {
		hang_pid = atoi(buf + 5);
	} else if (!strncmp(buf, "fail ", 5)) {
		fail_pid = atoi(buf + 5);
	} else if (!strncmp(buf, "ok", 2)) {
		hang_pid = fail_pid = 0;
	} else if (!strncmp(buf, "go", 2) || !strncmp(buf, "drop", 4)) {
		bool go = buf[0] == 'g';
		while (held) {
			struct held *h = held;
			h->done = true;
			say(go ? "performed" : "dropped", h);
			if (go)
				perform(h);
			else
				fuse_reply_err(h->req, EIO);
			unlink_held(h);
		}
	}
	fprintf(stderr, "hangfs: ctl %s", buf);
	if (!strchr(buf, '\n'))
		fputc('\n', stderr);
}

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (ino == INO_FILE) {
		struct stat b;
		fstat(backing, &b);
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = b.st_size;
		st->st_blocks = b.st_blocks;
	} else {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = { 0 };

	if (parent != FUSE_ROOT_ID || (strcmp(name, file_name) && strcmp(name, "ctl"))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = strcmp(name, "ctl") ? INO_FILE : INO_CTL;
	fill_attr(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	if (ino == INO_CTL)
		fuse_reply_buf(req, NULL, 0);
	else
		io(req, 'r', size, off, NULL);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)fi;
	if (ino == INO_CTL) {
		control(buf, size);
		fuse_reply_write(req, size);
	} else {
		io(req, 'w', size, off, buf);
	}
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	(void)fi;
	if (ino == INO_FILE)
		io(req, 's', 0, 0, NULL);
	else
		fuse_reply_err(req, 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino == INO_FILE && (to_set & FUSE_SET_ATTR_SIZE) && ftruncate(backing, attr->st_size)) {
		fuse_reply_err(req, errno);
		return;
	}
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.fsync = op_fsync,
};

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: hangfs MOUNTPOINT BACKING NAME\n");
		return 2;
	}
	file_name = argv[3];
	if ((backing = open(argv[2], O_RDWR)) < 0) {
		perror(argv[2]);
		return 1;
	}
	char *fargs[] = { argv[0], "-o", "fsname=hangfs,subtype=hangfs", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargs);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se || fuse_session_mount(se, argv[1])) {
		fprintf(stderr, "hangfs: cannot mount %s\n", argv[1]);
		return 1;
	}
	fuse_set_signal_handlers(se);
	fprintf(stderr, "hangfs: ready\n");
	int r = fuse_session_loop(se);
	fuse_remove_signal_handlers(se);
	fuse_session_unmount(se);
	fuse_session_destroy(se);
	return r ? 1 : 0;
}
