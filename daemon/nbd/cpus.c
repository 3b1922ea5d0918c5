/* SPDX-License-Identifier: MIT */
/*
 * Where a connection's thread runs (dlvmd --nbd-cpus irq, the default): on
 * the CPUs that take the completion interrupts of its export's devices,
 * when those are fewer than the CPUs the thread may run on.
 *
 * A device completion is handled on the CPU its interrupt arrives at. When
 * the thread that waits for it sleeps on another CPU, that CPU must be
 * interrupted and woken as well; on a virtual machine that is an exit to the
 * hypervisor and the wake of a halted vCPU, for every batch of completions.
 * A device with one interrupt per CPU (NVMe, multi-queue virtio) takes its
 * completions everywhere: the union is every CPU and nothing changes.
 *
 * The interrupts are found in sysfs, from the device number of each PV (the
 * file system's device for a PV file): the disk of a partition, the backing
 * file of a loop device, the slaves of a device-mapper or md device; then up
 * from the disk's device to the first directory with msi_irqs. Of those,
 * the interrupts used for I/O are the ones that fired at least an eighth as
 * often as the busiest (a configuration interrupt barely fires); their
 * effective affinity is where completions arrive.
 */
#include "daemon/nbd/cpus.h"

#include <dirent.h>
#include <sched.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "daemon/nbd/conn.h"
#include "dlvm/log.h"

#define MAX_DEPTH 4   /* loop over a file over a device-mapper device ... */
#define MAX_IRQS 1024 /* interrupts looked at per disk */

/* Parse a kernel CPU list ("0-3,8,10-11", a newline may end it) into set. */
static int parse_cpulist(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s && *s != '\n') {
		char *end;
		errno = 0;
		unsigned long a = strtoul(s, &end, 10), b = a;
		if (end == s || errno || a >= CPU_SETSIZE)
			return -EINVAL;
		s = end;
		if (*s == '-') {
			b = strtoul(++s, &end, 10);
			if (end == s || errno || b >= CPU_SETSIZE || b < a)
				return -EINVAL;
			s = end;
		}
		for (unsigned long c = a; c <= b; c++)
			CPU_SET((int)c, set);
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -EINVAL;
	}
	return 0;
}

/* The first line of a (sysfs) file; false if it cannot be read. */
static bool read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	bool ok = f && fgets(buf, (int)n, f);

	if (f)
		fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = 0;
	return ok;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Interrupts fired by irq so far, summed over the CPUs; 0 if unknown. */
static unsigned long long irq_count(unsigned irq)
{
	char path[64], line[4096];
	unsigned long long sum = 0;

	snprintf(path, sizeof(path), "/sys/kernel/irq/%u/per_cpu_count", irq);
	if (!read_line(path, line, sizeof(line)))
		return 0;
	for (char *p = line; *p;) {
		char *end;
		sum += strtoull(p, &end, 10);
		if (end == p)
			break;
		p = *end == ',' ? end + 1 : end;
	}
	return sum;
}

/* The CPUs the I/O interrupts of the device at sysfs directory dev arrive
 * at, added to set; false if none was found. */
static bool device_irq_cpus(const char *dev, cpu_set_t *set)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], line[4096];
	unsigned irqs[MAX_IRQS];
	unsigned long long counts[MAX_IRQS], max = 0;
	unsigned n = 0;
	bool found = false;

	if (!realpath(dev, dir))
		return false;
	for (;;) { /* up to the first directory with msi_irqs */
		snprintf(path, sizeof(path), "%s/msi_irqs", dir);
		if (is_dir(path))
			break;
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir || strcmp(dir, "/sys/devices") == 0)
			return false;
		*slash = 0;
	}
	DIR *d = opendir(path);
	if (!d)
		return false;
	for (struct dirent *e; n < MAX_IRQS && (e = readdir(d));) {
		char *end;
		unsigned long irq = strtoul(e->d_name, &end, 10);
		if (end == e->d_name || *end || irq > UINT_MAX)
			continue; /* ".", ".." */
		irqs[n] = (unsigned)irq;
		counts[n] = irq_count(irqs[n]);
		max = counts[n] > max ? counts[n] : max;
		n++;
	}
	closedir(d);
	for (unsigned i = 0; i < n; i++) {
		cpu_set_t one;
		if (max && counts[i] * 8 >= max) {
			snprintf(path, sizeof(path), "/proc/irq/%u/effective_affinity_list",
				 irqs[i]);
			bool ok = read_line(path, line, sizeof(line)) && line[0];
			if (!ok) {
				snprintf(path, sizeof(path), "/proc/irq/%u/smp_affinity_list",
					 irqs[i]);
				ok = read_line(path, line, sizeof(line));
			}
			if (ok && parse_cpulist(line, &one) == 0 && CPU_COUNT(&one)) {
				CPU_OR(set, set, &one);
				found = true;
			}
		}
	}
	return found;
}

static bool devnum_irq_cpus(dev_t devnum, cpu_set_t *set, int depth);

/* A block device's sysfs directory (/sys/block/X or a partition's). */
static bool block_irq_cpus(const char *blk, cpu_set_t *set, int depth)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], line[PATH_MAX];
	struct stat st;
	bool found = false;

	if (depth > MAX_DEPTH || !realpath(blk, dir))
		return false;
	snprintf(path, sizeof(path), "%s/partition", dir);
	if (access(path, F_OK) == 0)
		*strrchr(dir, '/') = 0; /* the disk holding the partition */
	snprintf(path, sizeof(path), "%s/loop/backing_file", dir);
	if (read_line(path, line, sizeof(line)))
		return stat(line, &st) == 0 && devnum_irq_cpus(st.st_dev, set, depth + 1);
	snprintf(path, sizeof(path), "%s/slaves", dir);
	DIR *d = opendir(path);
	if (d) {
		for (struct dirent *e; (e = readdir(d));) {
			if (e->d_name[0] == '.')
				continue;
			char sub[PATH_MAX + 300];
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			found |= block_irq_cpus(sub, set, depth + 1);
		}
		closedir(d);
		if (found)
			return true;
	}
	snprintf(path, sizeof(path), "%s/device", dir);
	return device_irq_cpus(path, set);
}

static bool devnum_irq_cpus(dev_t devnum, cpu_set_t *set, int depth)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(devnum), minor(devnum));
	return block_irq_cpus(path, set, depth);
}

/* The CPUs that take the I/O completion interrupts of every device of m, in
 * set; false when that is not known for each of them. */
static bool map_irq_cpus(const struct dlvm_lv_map *m, cpu_set_t *set)
{
	CPU_ZERO(set);
	for (uint32_t i = 0; i < m->ndev; i++) {
		struct stat st;
		/* every device must tell, or its completions may be anywhere */
		if (m->devs[i].fd < 0 || fstat(m->devs[i].fd, &st) < 0 ||
		    !devnum_irq_cpus(S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev, set, 0))
			return false;
	}
	return m->ndev > 0;
}

void nbd_place_thread(struct nbd_conn *c)
{
	static atomic_bool logged;
	cpu_set_t irq, now;
	char list[256];
	size_t len = 0;

	if (!map_irq_cpus(c->map, &irq) ||
	    pthread_getaffinity_np(pthread_self(), sizeof(now), &now))
		return;
	CPU_AND(&irq, &irq, &now);
	if (!CPU_COUNT(&irq) || CPU_COUNT(&irq) == CPU_COUNT(&now) ||
	    pthread_setaffinity_np(pthread_self(), sizeof(irq), &irq))
		return;
	if (atomic_exchange(&logged, true))
		return;
	for (int cpu = 0; cpu < CPU_SETSIZE && len < sizeof(list) - 16; cpu++)
		if (CPU_ISSET(cpu, &irq))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d",
						len ? "," : "", cpu);
	log_info(DLVM_LOG_NBD,
		 "%s: runs on CPU %s, where its devices' I/O completes (--nbd-cpus irq); "
		 "further connections are placed the same way without a message",
		 c->name, list);
}
