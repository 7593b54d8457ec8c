"""Packet-buffer accounting: io-pkt's mbuf and cluster pools, as figures and limits.

What is counted
---------------
Every buffer the stack *retains* is charged here as the mbuf chain NetBSD would hold for
it (MSIZE-byte mbufs, ``mclbytes`` clusters; sys/mbuf.h):

* a packet of n bytes (a queued UDP datagram, a held fragment) is one ``MT_HEADER``
  mbuf, plus - when n exceeds MHLEN - ceil(n / mclbytes) clusters, each carried by an
  mbuf (the first is the header mbuf, the others ``MT_DATA``);
* socket-buffer storage of n bytes (a TCP ring) is ceil(n / mclbytes) clusters, each on
  an ``MT_DATA`` mbuf (sbappend chains of clusters);
* the sender's address queued with a datagram is one ``MT_SONAME`` mbuf (sbappendaddr).

A frame entering ``Stack.input`` must find room for its chain; it is then handed up and
nothing stays charged unless a protocol retains something (and charges that).

The bound
---------
``nmbclusters`` (NetBSD's cluster-pool hard limit, ``kern.mbuf.nmbclusters``) times
``mclbytes`` is the total: mbufs (MSIZE each) and clusters together never exceed
``nmbclusters * mclbytes`` bytes. NetBSD sizes nmbclusters from physical memory; ours
defaults to 64 MiB worth of clusters (``DEFAULT_POOL_BYTES // mclbytes``, at least 1024)
and can be set with ``-p tcpip nmbclusters=N`` - io-pkt sets any exported variable named
as an option (reference/qnx.md §1.3), and nmbclusters is one in NetBSD's uipc_mbuf.c.
A refused request is counted in ``denied`` (mbstat.m_drops, "requests for memory
denied"); the first one logs io-pkt's WARNING ``Mbufs exhausted.  May be temporarily
unable to handle userland IO`` (SRC receive.c), once per stack. A user write refused for
want of buffers is ``delayed`` (m_wait; the caller gets EAGAIN, as a blocking sosend
waits). Protocol drain routines (NetBSD m_reclaim -> pr_drain: ip_drain frees the
reassembly queues) run when input is refused, counted in ``drains`` (m_drain).

TCP rings are charged whenever their storage is allocated, even past the bound: the
data has already been acknowledged into the window, so it cannot be refused there.
Frames stop entering at the bound, so the overshoot is at most one ring's storage.

Pages and caches
----------------
Pools grow by ``pagesize`` pages (io-pkt: "the smallest amount of data allocated each
time for the internal memory pools"; mbufs and clusters are the only pools here, so
``bigpage_strict`` changes nothing). Freed objects stay cached, up to ``mbuf_cache``
mbufs and ``pkt_cache`` clusters (io-pkt's per-thread caches; we have one thread), and
count as allocated until reused; ``cache=0`` caches nothing. Allocated pages are what the
cached and in-use objects need - pages beyond that go back (pool_reclaim).

This is accounting, not a free list of bytearrays: allocating a 32 KiB bytearray costs
~0.4 us and a ring is allocated once per connection, while a free list would pin memory
(measured: bytearray(32768) 0.43 us, list pop/append 0.02 us; see docs/architecture.md).
"""

from __future__ import annotations

from typing import Callable

import attrs

from . import slog

MSIZE = 256                  # NetBSD's mbuf size
MHLEN = 200                  # data that fits in a packet-header mbuf (about MSIZE less headers)
DEFAULT_POOL_BYTES = 64 << 20
MIN_NMBCLUSTERS = 1024       # NetBSD's NMBCLUSTERS for a non-gateway kernel

MT_DATA, MT_HEADER, MT_SONAME = 1, 2, 3
TYPE_NAMES = {MT_DATA: "data", MT_HEADER: "packet headers", MT_SONAME: "socket names and addresses"}

EXHAUSTED = "Mbufs exhausted.  May be temporarily unable to handle userland IO"


def default_nmbclusters(mclbytes: int) -> int:
    return max(MIN_NMBCLUSTERS, DEFAULT_POOL_BYTES // mclbytes)


@attrs.define
class MbufPool:
    mclbytes: int = 2048
    pagesize: int = 131072
    nmbclusters: int = attrs.field(default=None)
    cache: bool = True
    mbuf_cache: int = 128
    pkt_cache: int = 64
    log: Callable[..., None] = slog.discard
    mbufs: dict[int, int] = attrs.Factory(lambda: dict.fromkeys(TYPE_NAMES, 0))
    clusters: int = 0            # clusters in use
    cached_mbufs: int = 0
    cached_clusters: int = 0
    peak_bytes: int = 0          # most bytes ever in use
    denied: int = 0              # mbstat.m_drops
    delayed: int = 0             # mbstat.m_wait
    drains: int = 0              # mbstat.m_drain
    drain_routines: list[Callable[[], None]] = attrs.Factory(list)
    limit: int = attrs.field(init=False, default=0)     # bytes, mbufs included
    in_use: int = attrs.field(init=False, default=0)    # bytes
    slack: int = attrs.field(init=False, default=0)     # cost(n) <= 2n + slack
    _logged: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self):
        if self.nmbclusters is None:
            self.nmbclusters = default_nmbclusters(self.mclbytes)
        self.limit = self.nmbclusters * self.mclbytes
        self.slack = MSIZE + self.mclbytes

    @classmethod
    def from_config(cls, config, log=slog.discard) -> "MbufPool":
        return cls(mclbytes=config.mclbytes, pagesize=config.pagesize,
                   nmbclusters=config.nmbclusters, cache=config.cache,
                   mbuf_cache=config.mbuf_cache, pkt_cache=config.pkt_cache, log=log)

    # -- chains -------------------------------------------------------------------------

    def chain(self, nbytes: int, mtype: int = MT_HEADER) -> tuple[int, int]:
        """(mbufs, clusters) NetBSD would use for ``nbytes`` of this type."""
        if mtype == MT_SONAME or (mtype == MT_HEADER and nbytes <= MHLEN):
            return 1, 0
        clusters = max(1, -(-nbytes // self.mclbytes))
        return clusters, clusters

    def cost(self, nbytes: int, mtype: int = MT_HEADER) -> int:
        m, c = self.chain(nbytes, mtype)
        return m * MSIZE + c * self.mclbytes

    def room(self, nbytes: int, mtype: int = MT_HEADER) -> bool:
        """Would a chain of ``nbytes`` fit, after the drain routines ran if not at once?"""
        size = self.cost(nbytes, mtype)
        return self.in_use + size <= self.limit or self._drain(size)

    # -- take / give ----------------------------------------------------------------------

    def take(self, nbytes: int, mtype: int = MT_HEADER, *, force: bool = False,
             drain: bool = True) -> bool:
        """Charge a chain; False (and counted) when it would pass the bound even after
        the drain routines ran (``drain=False`` from inside one's own protocol)."""
        m, c = self.chain(nbytes, mtype)
        size = m * MSIZE + c * self.mclbytes
        if not force and self.in_use + size > self.limit and not (drain and self._drain(size)):
            self.deny()
            return False
        self.in_use += size
        if self.in_use > self.peak_bytes:
            self.peak_bytes = self.in_use
        self.clusters += c
        if mtype == MT_HEADER and m:
            self.mbufs[MT_HEADER] += 1
            self.mbufs[MT_DATA] += m - 1
        else:
            self.mbufs[mtype] += m
        # Reuse cached objects first (they are allocated already).
        self.cached_mbufs -= min(self.cached_mbufs, m)
        self.cached_clusters -= min(self.cached_clusters, c)
        return True

    def give(self, nbytes: int, mtype: int = MT_HEADER) -> None:
        m, c = self.chain(nbytes, mtype)
        self.in_use -= m * MSIZE + c * self.mclbytes
        self.clusters -= c
        if mtype == MT_HEADER and m:
            self.mbufs[MT_HEADER] -= 1
            self.mbufs[MT_DATA] -= m - 1
        else:
            self.mbufs[mtype] -= m
        if self.cache:
            self.cached_mbufs = min(self.cached_mbufs + m, self.mbuf_cache)
            self.cached_clusters = min(self.cached_clusters + c, self.pkt_cache)

    def deny(self) -> None:
        self.denied += 1
        self._exhausted()

    def delay(self) -> None:
        """A user request must wait for buffers (the caller answers EAGAIN)."""
        self.delayed += 1
        self._exhausted()

    def _exhausted(self) -> None:
        if not self._logged:        # io-pkt logs it once (SRC receive.c)
            self._logged = True
            self.log(slog.WARNING, EXHAUSTED)

    def _drain(self, size: int) -> bool:
        """NetBSD m_reclaim: ask each protocol to free what it can; is there room now?"""
        for drain in self.drain_routines:
            self.drains += 1
            drain()
        return self.in_use + size <= self.limit

    def admit(self, nbytes: int) -> bool:
        """May a frame of ``nbytes`` enter (a chain for it, given back at once)?"""
        size = self.cost(nbytes)
        if self.in_use + size <= self.limit or self._drain(size):
            return True
        self.deny()
        return False

    # -- figures --------------------------------------------------------------------------

    @property
    def mbufs_in_use(self) -> int:
        return sum(self.mbufs.values())

    def _pages(self, objects: int, size: int) -> int:
        per_page = max(1, self.pagesize // size)
        return -(-objects // per_page)

    @property
    def cluster_pages(self) -> int:
        return self._pages(self.clusters + self.cached_clusters, self.mclbytes)

    @property
    def mbuf_pages(self) -> int:
        return self._pages(self.mbufs_in_use + self.cached_mbufs, MSIZE)

    @property
    def clusters_allocated(self) -> int:
        """Clusters the allocated cluster pages hold (NetBSD npages * itemsperpage)."""
        return self.cluster_pages * max(1, self.pagesize // self.mclbytes)

    @property
    def allocated_bytes(self) -> int:
        return (self.cluster_pages + self.mbuf_pages) * self.pagesize

    def figures(self) -> dict[str, int]:
        """What ``P/dev/socket/mbuf`` shows, one ``name: value`` per line."""
        return {
            "mbufs": self.mbufs_in_use,
            "mbufs_data": self.mbufs[MT_DATA],
            "mbufs_header": self.mbufs[MT_HEADER],
            "mbufs_soname": self.mbufs[MT_SONAME],
            "clusters": self.clusters,
            "clusters_allocated": self.clusters_allocated,
            "nmbclusters": self.nmbclusters,
            "mclbytes": self.mclbytes,
            "pagesize": self.pagesize,
            "cached_mbufs": self.cached_mbufs,
            "cached_clusters": self.cached_clusters,
            "bytes_in_use": self.in_use,
            "bytes_allocated": self.allocated_bytes,
            "bytes_limit": self.limit,
            "bytes_peak": self.peak_bytes,
            "denied": self.denied,
            "delayed": self.delayed,
            "drains": self.drains,
        }

    def render(self) -> str:
        return "".join(f"{k}: {v}\n" for k, v in self.figures().items())


def render_netstat(f: dict[str, int]) -> str:
    """``netstat -m`` in NetBSD's words (NB4 usr.bin/netstat/mbuf.c; qnx.md §4.2), from
    the figures of ``P/dev/socket/mbuf``. Type lines appear only when non-zero."""
    out = [f"{f['mbufs']} mbufs in use:"]
    for key, name in (("mbufs_data", "data"), ("mbufs_header", "packet headers"),
                      ("mbufs_soname", "socket names and addresses")):
        if f[key]:
            out.append(f"\t{f[key]} mbufs allocated to {name}")
    out.append(f"{f['clusters']}/{f['clusters_allocated']} mapped pages in use")
    total, used = f["bytes_allocated"], f["bytes_in_use"]
    out.append(f"{total // 1024} Kbytes allocated to network "
               f"({used * 100 // total if total else 0}% in use)")
    out.append(f"{f['denied']} requests for memory denied")
    out.append(f"{f['delayed']} requests for memory delayed")
    out.append(f"{f['drains']} calls to protocol drain routines")
    return "\n".join(out) + "\n"
