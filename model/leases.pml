/*
 * dlvm lease protocol: delta leases (host ids), Disk Paxos resource leases
 * (exclusive and shared) and fencing without a watchdog.
 *
 * See model/README.md for what is modelled, the abstractions and the bounds.
 * Run through scripts/check-model.
 *
 * Compile-time knobs (spin -D...):
 *   NH     host processes (1..3)                       default 2
 *   NID    host ids; host i uses id (i % NID) + 1      default NH
 *   FAIL   fail threshold in ticks                     default 2
 *   IOB    bound on an I/O, in ticks                   default 1
 *   JB     delta acquire: bound from read to write     default 0
 *   MAXT   last tick                                   default 6
 *   ACQ    resource acquisitions tried per host        default 2
 *   NORES  delta leases only (no resource, no data path)
 *   BROKEN_NO_WAIT          delta acquire re-reads without waiting
 *   BROKEN_EARLY_TAKEOVER   dead-host time = fail threshold + bound - 1
 *   BROKEN_NO_FENCE         data path does not check the lease deadline
 *   BROKEN_NO_META_FENCE    metadata writes are not checked against the deadline
 */

#ifndef NH
#define NH 2
#endif
#ifndef NID
#define NID NH
#endif
#ifndef FAIL
#define FAIL 2
#endif
#ifndef IOB
#define IOB 1
#endif
#ifndef MAXT
#define MAXT 6
#endif
#ifndef ACQ
#define ACQ 2
#endif

/* dead-host time: fail threshold plus the bound on in-flight I/O */
#ifdef BROKEN_EARLY_TAKEOVER
#define DEAD (FAIL + IOB - 1)
#else
#define DEAD (FAIL + IOB)
#endif

/* delta acquire: the write must follow the read it is based on within JB
 * ticks (else read again); after writing, wait longer than that (DWAIT) so
 * that a competitor's write based on an older read lands before our re-read */
#ifndef JB
#define JB 0
#endif
#ifdef BROKEN_NO_WAIT
#define DWAIT 0
#else
#define DWAIT (JB + 1)
#endif

/* the data path's check before dispatching a write */
#ifdef BROKEN_NO_FENCE
#define FENCED(h) 1
#else
#define FENCED(h) (now < dl[h])
#endif

/* the check before issuing a metadata write (a journal record, a thin store
 * commit) under an exclusive lease: the deadline must be more than the I/O
 * bound away; a host that fails it fences itself */
#ifdef BROKEN_NO_META_FENCE
#define MFENCED(h) 1
#else
#define MFENCED(h) (now + IOB < dl[h])
#endif

#define HID(i)  (((i) % NID) + 1)
#define NONE 0
#define EX   1
#define SH   2

byte now;                       /* global time; every host clock = now + constant */

/* ---- shared disk: lockspace ---- */
typedef sector_t { byte owner; byte gen; byte ts }   /* owner: host name, 0 = free */
sector_t ds[NID + 1];           /* indexed by host id 1..NID */

/* ---- shared disk: one resource lease ---- */
typedef block_t { byte mbal; byte bal; byte vid; byte vgen; byte lver }
block_t blk[NID + 1];           /* Disk Paxos ballot block per host id */
typedef leader_t { byte oid; byte ogen; byte lver }
leader_t leader;                /* owner host id + generation, lease version */
byte shm[NID + 1];              /* shared-mode block per host id: holder gen, 0 = none */

/* ---- per host (index 0..NH-1); arrays sized 3 so macros may name host 2 ---- */
bool dheld[3];                  /* host believes it holds its delta lease */
byte dl[3];                     /* its deadline: last renewal + FAIL (own clock) */
byte dgen[3];                   /* generation it acquired */
byte mode[3];                   /* resource mode it believes it holds */
byte myver[3];                  /* lease version it acquired */
bool pending[3];                /* a data write in flight */
byte io_t[3];                   /* when it was dispatched */
byte io_ver[3];
byte io_mode[3];

/* ---- ghost state for the properties (not on disk, not seen by hosts) ---- */
byte g_ver;                     /* version of the latest granted paxos lease */
byte g_exver;                   /* version of the latest exclusive grant */

#define LIVE(h)  (now < dl[h] || pending[h])
#define DCONF(a, b) (HID(a) == HID(b) && dheld[a] && dheld[b] && now < dl[a] && now < dl[b])
#define RCONF(a, b) (mode[a] != NONE && mode[b] != NONE && \
                     (mode[a] == EX || mode[b] == EX) && LIVE(a) && LIVE(b))
#define CONF(a, b) (a < NH && b < NH && (DCONF(a, b) || RCONF(a, b)))

/* The invariant, checked in every reachable state:
 * - two hosts with the same host id never both hold the delta lease
 *   (believe it and are before their deadline);
 * - never an exclusive holder together with another holder (shared or
 *   exclusive) while both can still affect the data block (before their
 *   deadline, or with a write in flight). */
active proctype monitor()
{
	assert(!CONF(0, 1) && !CONF(0, 2) && !CONF(1, 2))
}

/* time: one tick at a time, never past the bound of an in-flight write */
#define IOK(h) (h >= NH || !pending[h] || now < io_t[h] + IOB)
active proctype tick()
{
end:	do
	:: atomic { now < MAXT && IOK(0) && IOK(1) && IOK(2) -> now++ }
	od
}

#ifndef NORES
/* the storage completes a dispatched write (within IOB ticks, see tick) */
proctype disk(byte i)
{
end:	do
	:: atomic {
		pending[i] ->
		if
		:: io_mode[i] == EX -> assert(g_ver == io_ver[i])       /* no newer grant */
		:: io_mode[i] == SH -> assert(g_exver < io_ver[i])      /* no exclusive grant since */
		fi;
		pending[i] = 0
	   }
	od
}
#endif

/* ---- delta lease: join (acquire) then renew until lost ---- */
proctype lockspace(byte i)
{
	byte x = HID(i);
	byte me = i + 1;
	byte sown, sgen, sts, tr, tw;
	bool ok;

join:
	atomic { sown = ds[x].owner; sgen = ds[x].gen; sts = ds[x].ts; tr = now }
	if
	:: sown != 0 ->
		/* another owner: wait until provably stale, i.e. unchanged for
		 * DEAD ticks of our own clock; any change restarts the wait */
		do
		:: (now >= tr + DEAD || ds[x].owner != sown || ds[x].gen != sgen || ds[x].ts != sts) ->
			atomic {
				if
				:: ds[x].owner == sown && ds[x].gen == sgen && ds[x].ts == sts ->
					tr = now; break
				:: else ->
					sown = ds[x].owner; sgen = ds[x].gen; sts = ds[x].ts; tr = now
				fi
			}
		od
	:: else -> skip
	fi;
	/* write our name and generation + 1, within JB of the read it is based on */
	atomic {
		if
		:: now <= tr + JB ->
			ds[x].owner = me; ds[x].gen = sgen + 1; ds[x].ts = now;
			dgen[i] = sgen + 1; tw = now; ok = 1
		:: else -> ok = 0
		fi
	}
	if
	:: !ok -> goto join
	:: else -> skip
	fi;
	(now >= tw + DWAIT);
	/* re-read: proceed only if unchanged */
	atomic {
		if
		:: ds[x].owner == me && ds[x].gen == dgen[i] && ds[x].ts == tw ->
			dl[i] = tw + FAIL; dheld[i] = 1; ok = 1
		:: else -> ok = 0
		fi
	}
	if
	:: !ok -> goto join
	:: else -> skip
	fi;

	atomic { sown = 0; sgen = 0; sts = 0; tr = 0; ok = 0 }
	/* renew (at most once per tick): read our sector, check it is still ours,
	 * rewrite the timestamp.  The new deadline counts from the renewal's time. */
	do
	:: atomic { now < dl[i] && ds[x].ts != now -> ok = (ds[x].owner == me && ds[x].gen == dgen[i]) }
		atomic {
			if
			:: ok && now < dl[i] -> ds[x].ts = now; dl[i] = now + FAIL
			:: !ok -> dl[i] = now           /* not ours any more: stop at once */
			:: else -> skip                 /* paused past the deadline: lost */
			fi;
			ok = 0
		}
	:: now >= dl[i] -> break                /* lost: the host stops (crash) */
	od
}

#ifndef NORES
/* wait to judge whether host id y, generation g is dead: its sector must not
 * change for DEAD ticks of our clock; another generation means it is gone */
inline judge(y, g)
{
	atomic { sown = ds[y].owner; sgen = ds[y].gen; sts = ds[y].ts; r0 = now }
	if
	:: sgen != g -> dead = 1
	:: else ->
		atomic {
			(now >= r0 + DEAD || ds[y].owner != sown || ds[y].gen != sgen || ds[y].ts != sts) ->
			dead = (now >= r0 + DEAD && ds[y].owner == sown &&
			        ds[y].gen == sgen && ds[y].ts == sts)
		}
	fi
}

/* read all ballot blocks one at a time; abort on a higher ballot or a later
 * lease version; remember the value with the highest accepted ballot */
inline readall()
{
	atomic {
	j = 1; abort = 0;
	do
	:: j <= NID && !abort ->
			if
			:: blk[j].lver > nv -> abort = 1
			:: blk[j].lver == nv && blk[j].mbal > mb -> abort = 1
			:: else ->
				if
				:: blk[j].lver == nv && blk[j].bal > bb ->
					bb = blk[j].bal; vid = blk[j].vid; vgen = blk[j].vgen
				:: else -> skip
				fi
			fi;
			j++
	:: else -> break
	od;
	j = 0
	}
}

/* release the paxos lease of version v: read the leader record, if ours
 * write it free.  The write, like every write a host makes under its lease,
 * is dispatched only before the host's deadline (RELGATE): a host paused
 * between the read and the write would otherwise roll back a newer leader
 * record written by the host that took the lease over. */
#ifdef BROKEN_RELEASE_UNGATED
#define RELGATE(h) 1
#else
#define RELGATE(h) (now < dl[h])
#endif
inline relpaxos(v)
{
	atomic { ok = (leader.oid == x && leader.ogen == dgen[i] && leader.lver == v) }
	if
	:: ok -> atomic { RELGATE(i) -> leader.oid = 0; leader.ogen = 0; leader.lver = v }
	:: else -> skip
	fi
}

proctype host(byte i)
{
	byte x = HID(i);
	byte acq, k, want, nv, mb, bb, vid, vgen, j, lid, lgen, sg;
	byte sown, sgen, sts, r0;
	bool ok, dead, abort;

	dheld[i];                               /* joined the lockspace */
loop:
	/* forget the last attempt's scratch values (keeps the state space small) */
	atomic {
		want = 0; nv = 0; mb = 0; bb = 0; vid = 0; vgen = 0; j = 0; lid = 0; lgen = 0;
		sg = 0; sown = 0; sgen = 0; sts = 0; r0 = 0; ok = 0; dead = 0; abort = 0
	}
	do
	:: atomic {
		mode[i] == NONE && acq < ACQ && now < dl[i] ->
		acq++;
		if
		:: want = EX
		:: want = SH
		fi;
		lid = leader.oid; lgen = leader.ogen; nv = leader.lver + 1
	   };
		goto acquire
	:: mode[i] != NONE ->
		/* data path: check the deadline, then dispatch */
		atomic {
			!pending[i] && FENCED(i) -> pending[i] = 1; io_t[i] = now; io_ver[i] = myver[i]; io_mode[i] = mode[i]
		}
	:: mode[i] == EX ->
		/* metadata write: check the deadline with the margin, then issue;
		 * a failed check issues nothing and the host fences itself (its
		 * lockspace process then stops renewing) */
		atomic {
			!pending[i] ->
			if
			:: MFENCED(i) -> pending[i] = 1; io_t[i] = now; io_ver[i] = myver[i]; io_mode[i] = EX
			:: else -> dl[i] = now
			fi
		}
	:: mode[i] == EX && !pending[i] ->      /* release after in-flight I/O drained */
		mode[i] = NONE;
		relpaxos(myver[i])
	:: mode[i] == SH && !pending[i] ->
		mode[i] = NONE;
		shm[x] = 0
	:: now >= dl[i] && !pending[i] -> break /* lockspace lost: stop */
	od;
	goto done;

acquire:
	if
	:: lid != 0 && !(lid == x && lgen == dgen[i]) ->
		judge(lid, lgen);
		if
		:: !dead -> goto loop                /* held by a live host: busy */
		:: else -> skip
		fi
	:: else -> skip
	fi;
	/* ballot unique per host: host id + k * number of ids */
	/* phase 1 */
	atomic {
		mb = k * NID + x; k++;
		if
		:: blk[x].lver != nv ->
			blk[x].bal = 0; blk[x].vid = 0; blk[x].vgen = 0; blk[x].lver = nv
		:: else -> skip
		fi;
		blk[x].mbal = mb;
		bb = 0; vid = x; vgen = dgen[i]
	}
	readall();
	if
	:: abort -> goto loop
	:: else -> skip
	fi;
	/* phase 2: our value unless another value was accepted at a higher ballot */
	atomic { blk[x].bal = mb; blk[x].vid = vid; blk[x].vgen = vgen }
	readall();
	if
	:: abort -> goto loop
	:: else -> skip
	fi;
	/* commit: write the leader record */
	atomic {
		if
		:: now < dl[i] && leader.lver < nv ->
			leader.oid = vid; leader.ogen = vgen; leader.lver = nv;
			ok = (vid == x && vgen == dgen[i]);
			if
			:: ok -> assert(nv > g_ver); g_ver = nv   /* one owner per version */
			:: else -> skip
			fi
		:: else -> ok = 0
		fi
	}
	if
	:: !ok -> goto loop
	:: else -> skip
	fi;
	if
	:: want == EX ->
		/* exclusive: no live shared holder may remain */
		j = 1;
		do
		:: j <= NID ->
			sg = shm[j];
			if
			:: j != x && sg != 0 ->
				judge(j, sg);
				if
				:: !dead -> relpaxos(nv); goto loop
				:: else -> skip
				fi
			:: else -> skip
			fi;
			j++
		:: else -> break
		od;
		atomic {
			if
			:: now < dl[i] -> mode[i] = EX; myver[i] = nv; g_exver = nv
			:: else -> skip
			fi
		}
	:: want == SH ->
		/* shared: mark our mode block while holding the paxos lease, release it */
		shm[x] = dgen[i];
		relpaxos(nv);
		atomic {
			if
			:: now < dl[i] -> mode[i] = SH; myver[i] = nv
			:: else -> skip
			fi
		}
	fi;
	goto loop;
done:
	skip
}
#endif

init
{
	byte h = 0;
	atomic {
		do
		:: h < NH ->
			run lockspace(h);
#ifndef NORES
			run host(h);
			run disk(h);
#endif
			h++
		:: else -> break
		od
	}
}
