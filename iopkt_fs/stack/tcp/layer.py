"""The TCP layer: demultiplexing, listeners and SYN cookies, ISNs, timers and readiness.

Integration points (sans-IO, no dependency on the IP layer):

* in:  ``input(src_ip, dst_ip, segment, now)`` - one TCP segment (the IP payload, already
  cut to the datagram's length) addressed to one of our unicast addresses. Addresses are
  ``bytes`` (4 for IPv4, 16 for IPv6); the checksum is verified here.
* out: ``output(src_ip, dst_ip, segment_bytes)`` - the callback given to the constructor;
  the IP layer wraps the segment in a datagram with protocol 6.
* time: ``poll(now)`` runs every expired timer; ``poll_at()`` is the next deadline (None
  when nothing is scheduled). Timers are a heap of (deadline, n, connection) with lazy
  invalidation (trio's ``Deadlines``), so 10,000 idle connections cost nothing per poll.
* routes: ``source_address(dst_ip) -> bytes | None`` picks the local address for an
  unbound ``connect``; ``route_mtu(dst_ip) -> int`` gives the MTU the MSS is clamped to.
* users: ``socket()`` makes a ``TcpSocket`` (socket.py); every readiness change is told to
  ``notify(sock)`` (the stack's one readiness queue, ``stack.notify_socket``).
* ICMP: ``icmp_error(local_ip, remote_ip, quoted_tcp_header, kind, mtu, now)`` (BSD's
  ``tcp_ctlinput``): path MTU updates and unreachable errors.

Randomness comes only from the ``random.Random`` given (seeded in tests): the RFC 6528
secret, the SYN-cookie secret and ephemeral ports.
"""

from __future__ import annotations

import errno as _errno
import hashlib
import os
import heapq
import random
import struct
from typing import Callable

from ..errors import StackError
from ..time import Instant, seconds
from ..wire.errors import Malformed
from ..wire.tcp import (NO_OPTIONS, TS_FIELDS, TS_ONLY_LAYOUT, TcpOptions, TcpPacket,
                        build_segment, encode_options, parse_options)
from .config import TcpConfig
from .connection import Connection
from .seq import MASK, seq_add, seq_ge, seq_lt
from .socket import TcpSocket
from .state import ACK, CLOSED, FIN, RST, SYN, SYN_RECEIVED, SYN_SENT, TIME_WAIT, Segment, State
from .stats import TcpStats
from .status import TcpStatus

OutputFn = Callable[[bytes, bytes, bytes], None]

EPHEMERAL_LOW, EPHEMERAL_HIGH = 49152, 65535     # IANA dynamic ports; NetBSD anonportmin/max
CHALLENGE_ACK_LIMIT = 1000    # RFC 5961 7: per second, Linux tcp_challenge_ack_limit
COOKIE_PERIOD = seconds(64)   # a cookie's clock tick; valid for this tick and the previous
COOKIE_MSS = (536, 1220, 1440, 1460)   # RFC 4987 3.6: a few MSS values in 2 bits
ANY4 = bytes(4)
ANY6 = bytes(16)
_TUPLE = struct.Struct("!HHI")
_TCP_HDR = struct.Struct("!HHIIBBHHH")    # the fixed header (wire/tcp.py TcpPacket.fields)


def fmt_ip(ip: bytes) -> str:
    if len(ip) == 4:
        return ".".join(map(str, ip))
    return ":".join(f"{ip[i]:02x}{ip[i + 1]:02x}" for i in range(0, len(ip), 2))


def _ignore(sock: TcpSocket) -> None:
    """A layer built without a stack (unit tests) has nobody to tell."""


class TcpLayer:
    # Stack.poll_at asks this layer every time instead of caching its answer: nearly every
    # segment moves a connection's timers, and the heap top is one look (poll_at below).
    poll_at_live = True

    def __init__(self, output: OutputFn, rng: random.Random | None = None, *,
                 sysctl=None, config: TcpConfig | None = None,
                 log: Callable[..., None] | None = None,
                 source_address: Callable[[bytes], bytes | None] | None = None,
                 route_mtu: Callable[[bytes], int] | None = None,
                 notify: Callable[[TcpSocket], None] | None = None,
                 config_overrides: dict | None = None,
                 route_tso: Callable[[bytes], int] | None = None,
                 csum_offload: bool = False):
        self.output = output
        self.rng = rng or random.Random()
        self._sysctl = sysctl
        self._config = config
        self._overrides = config_overrides or {}
        self._config_gen = -1
        self.debug = sysctl.node("net.inet.tcp.debug") if sysctl is not None and \
            "net.inet.tcp.debug" in sysctl else None
        self._sysctl_config: TcpConfig | None = None
        self.log = log
        self.source_address = source_address
        self.route_mtu = route_mtu or (lambda dst: 1500)
        # The largest IP packet a super-segment toward dst may be (0: one MSS per
        # segment); the IP layer cuts it in software where the link cannot (gso.py).
        self.route_tso = route_tso or (lambda dst: 0)
        self.route_gen = 0        # bumped when an interface changes: TSO limits re-read
        # Segments leave with partial checksums (build_segment(partial=True)) and
        # ``output`` gets a fourth argument, the GSO size; the IP layer finishes them.
        self.csum_offload = csum_offload
        # Connections whose output waits for the end of the current input batch.
        self.pending: dict[Connection, None] | None = None
        self.stats = TcpStats()
        self.connections: dict[tuple, Connection] = {}
        self.listeners: dict[tuple[bytes, int], TcpSocket] = {}
        self.bound: dict[tuple[bytes, int], set[TcpSocket]] = {}
        self._local_use: dict[tuple[bytes, int], int] = {}   # connections per local endpoint
        # Told of every readiness change: the stack's one queue (stack.notify_socket).
        self.notify = notify if notify is not None else _ignore
        self.now: Instant = 0     # the latest time any entry point was given
        self._heap: list[tuple[int, int, Connection]] = []
        self._heap_n = 0
        # RFC 6528 3: "a secret key ... SHOULD be of at least 128 bits"; ours are 256.
        # The keys come from the OS, never from the (possibly seeded, always
        # reconstructible) stack RNG: its outputs are visible on the wire (ephemeral
        # ports, IP idents), and whoever rebuilds its state must not be able to predict
        # our ISNs or forge SYN cookies (RFC 6528 3, RFC 4987 3.6).
        self._isn_key = os.urandom(32)
        self._hash_memo: tuple | None = None     # (4-tuple, (F, TS offset)): _tuple_hash
        self._ts_bytes, self._ts_opts = b"", NO_OPTIONS   # last NOP NOP TS decoded: input()
        self._cookie_key = os.urandom(32)
        self._challenge_window = 0
        self._challenge_count = 0
        self.mbufs = None         # the stack's MbufPool: ring storage is charged there

    # -- configuration --------------------------------------------------------------------

    @property
    def config(self) -> TcpConfig:
        if self._config is not None:
            return self._config
        if self._sysctl is not None:
            # Rebuilt only after a sysctl changed: a connection costs no 20 look-ups.
            gen = self._sysctl.generation
            if self._config_gen != gen:
                self._sysctl_config = TcpConfig.from_sysctl(self._sysctl, **self._overrides)
                self._config_gen = gen
            return self._sysctl_config
        self._config = TcpConfig(**self._overrides)
        return self._config

    def fmt_ep(self, ip: bytes, port: int) -> str:
        return f"{fmt_ip(ip)}.{port}"

    def log_state(self, conn: Connection, old: State, new: State) -> None:
        # Only with net.inet.tcp.debug set (NetBSD's TCP_DEBUG trace): io-pkt logs no
        # state changes, and five slog entries per connection would flush the ring -
        # and cost more than the connection's own processing.
        if self.log is not None and self.debug is not None and self.debug.value:
            self.log(7, f"tcp: {self.fmt_ep(conn.local_ip, conn.local_port)} > "
                        f"{self.fmt_ep(conn.remote_ip, conn.remote_port)}: {old} -> {new}")

    # -- randomness -----------------------------------------------------------------------

    def _hash32(self, key: bytes, *parts: bytes) -> int:
        digest = hashlib.blake2s(b"".join(parts), key=key, digest_size=4).digest()
        return int.from_bytes(digest, "big")

    def _tuple_hash(self, lip: bytes, lport: int, rip: bytes, rport: int) -> tuple[int, int]:
        """(F, TS offset) of a 4-tuple: the two halves of one keyed 64-bit hash. A new
        connection needs both (register, then isn): the last tuple's pair is kept."""
        key = (lip, lport, rip, rport)
        memo = self._hash_memo
        if memo is not None and memo[0] == key:
            return memo[1]
        digest = hashlib.blake2s(b"".join((lip, rip, _TUPLE.pack(lport, rport, 0))),
                                 key=self._isn_key, digest_size=8).digest()
        pair = (int.from_bytes(digest[:4], "big"), int.from_bytes(digest[4:], "big"))
        self._hash_memo = (key, pair)
        return pair

    def isn(self, lip: bytes, lport: int, rip: bytes, rport: int, now: Instant) -> int:
        """RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
        M a 4 µs timer, F a keyed hash (BLAKE2s here)."""
        return (now // 4 + self._tuple_hash(lip, lport, rip, rport)[0]) & MASK

    def ts_offset(self, lip: bytes, lport: int, rip: bytes, rport: int) -> int:
        """RFC 7323 5.4/7.1: a per-connection random offset for TSval, from a keyed hash so
        a SYN-cookie connection finds the same clock its SYN-ACK used."""
        return self._tuple_hash(lip, lport, rip, rport)[1]

    def ephemeral_port(self, lip: bytes, rip: bytes | None = None, rport: int = 0) -> int:
        """RFC 6056 3.3.1 (algorithm 1): a random start, then the next free port."""
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        start = self.rng.randrange(span)
        for i in range(span):
            port = EPHEMERAL_LOW + (start + i) % span
            if rip is not None and (lip, port, rip, rport) in self.connections:
                continue
            if self._port_taken(lip, port, for_connect=rip is not None):
                continue
            return port
        raise StackError(_errno.EADDRNOTAVAIL, "no free ephemeral port")

    def _port_taken(self, ip: bytes, port: int, for_connect: bool = False) -> bool:
        anys = (ANY4, ANY6)
        for (bip, bport) in list(self.listeners) + list(self.bound):
            if bport == port and (bip == ip or bip in anys or ip in anys):
                return True
        if not for_connect:
            for (lip, lport), n in self._local_use.items():
                if n and lport == port and (lip == ip or ip in anys):
                    return True
        return False

    # -- bookkeeping called by sockets and connections ------------------------------------

    def socket(self) -> TcpSocket:
        return TcpSocket(self)

    def register(self, conn: Connection) -> None:
        self.connections[conn.key] = conn
        conn.snd_buf.pool = conn.rcv_buf.pool = self.mbufs
        ep = (conn.local_ip, conn.local_port)
        self._local_use[ep] = self._local_use.get(ep, 0) + 1
        conn.ts_offset = self.ts_offset(*conn.key)

    def touch(self, conn: Connection) -> None:
        """A connection's timers may have changed: make sure the heap holds an entry no
        later than its next deadline. ``conn.sched`` is the deadline of its live entry.
        A deadline that moved *later* (the retransmission timer restarted by every ACK)
        pushes nothing: the early entry fires, finds nothing due and is re-filed at the
        real deadline - one heap operation per timer period instead of one per ACK."""
        d = conn.poll_at()
        if d is not None and (conn.sched is None or d < conn.sched):
            self._push(conn, d)

    def _push(self, conn: Connection, d: Instant) -> None:
        self._heap_n += 1
        heapq.heappush(self._heap, (d, self._heap_n, conn))
        conn.sched = d

    def wake(self, conn: Connection) -> None:
        sock = conn.socket
        if sock is not None:
            self.notify(sock)         # what signal(sock) does, a call less per wake-up

    def signal(self, sock: TcpSocket) -> None:
        """``sock`` may have become readable, writable or errored."""
        self.notify(sock)

    def emit(self, conn: Connection, segment: bytes, now: Instant, gso: int | None = None) -> None:
        """Hand one segment to IP. ``gso`` None: the checksum is complete; an int: it is
        partial and the segment may be a super-segment to cut at ``gso`` bytes."""
        self.stats.sndtotal += 1
        self.now = now
        if gso is None:
            self.output(conn.local_ip, conn.remote_ip, segment)
        else:
            self.output(conn.local_ip, conn.remote_ip, segment, gso)

    def interface_changed(self, _iface) -> None:
        self.route_gen += 1

    # -- batched input --------------------------------------------------------------------

    def begin_input(self) -> None:
        """A driver's batch starts: connections send nothing until ``end_input``."""
        if self.pending is None:
            self.pending = {}

    def end_input(self, now: Instant) -> None:
        """The batch is in: each connection that received something runs its output
        once - one ACK for a run of segments (a stretch ACK, as Linux sends under GRO),
        and new data sent against every ACK of the batch at once."""
        pending, self.pending = self.pending, None
        if not pending:
            return
        for conn in pending:
            if conn.state != CLOSED:
                conn._output(now)
            if (d := conn.poll_at()) is not None and (conn.sched is None or d < conn.sched):
                self._push(conn, d)      # (self.touch(conn), written out)

    def challenge_ack_allowed(self, now: Instant) -> bool:
        """RFC 5961 7: at most CHALLENGE_ACK_LIMIT challenge ACKs per second."""
        window = now // 1_000_000
        if window != self._challenge_window:
            self._challenge_window, self._challenge_count = window, 0
        self._challenge_count += 1
        return self._challenge_count <= CHALLENGE_ACK_LIMIT

    def connection_established(self, conn: Connection, old: State) -> None:
        lst = conn.listener
        if lst is None:
            return
        if old == SYN_RECEIVED:
            lst.embryonic -= 1
        conn.listener = None
        if not lst.listening:
            conn.abort(conn.last_snd, _errno.ECONNABORTED)
            return
        child = TcpSocket._for_connection(self, conn, lst)
        lst.accept_queue.append(child)
        self.stats.accepts += 1
        self.stats.sc_completed += 1
        self.signal(lst)

    def connection_closed(self, conn: Connection, old: State) -> None:
        if self.connections.get(conn.key) is conn:
            del self.connections[conn.key]
            ep = (conn.local_ip, conn.local_port)
            n = self._local_use.get(ep, 1) - 1
            if n:
                self._local_use[ep] = n
            else:
                self._local_use.pop(ep, None)
        if conn.listener is not None and old == SYN_RECEIVED:
            conn.listener.embryonic -= 1
            self.stats.sc_dropped += 1
            conn.listener = None
        if old.synchronized or old == SYN_SENT:
            self.stats.closed += 1
        # Nothing will be sent again; unread data stays readable until the socket goes.
        conn.snd_buf.discard()
        conn.rcv_buf.release()
        # (the socket is woken by the connection's _set_state)

    def drain(self) -> None:
        """The pool ran dry (NetBSD m_reclaim calls each protocol's pr_drain): give back
        the storage of every empty ring. An established connection keeps its rings
        allocated while it moves data (allocating 4 MiB per burst would cost more than it
        saves), so one that sent a byte and went quiet would hold both until it closed;
        here they go, and come back on the next write. A receive ring holding
        out-of-order data past an empty front is kept."""
        for conn in self.connections.values():
            conn.snd_buf.release()
            if not conn.ooo:
                conn.rcv_buf.release()
        self.stats.drain += 1

    def pcblist(self) -> list[TcpStatus]:
        """Every listener and connection (``netstat -an``): listeners first, as LISTEN
        rows with no remote end (remote ``(b"", 0)``)."""
        rows = []
        for (ip, port), lst in self.listeners.items():
            rows.append(TcpStatus(
                state="LISTEN", local=(ip, port), remote=(b"", 0), sendq=0,
                recvq=len(lst.accept_queue), srtt=None, rttvar=0, rto=0, cwnd=0,
                ssthresh=0, smss=0, snd_wnd=0, rcv_wnd=0, retransmits=0, sack=False,
                timestamps=False, wscale=None, congctl="", in_recovery=False))
        rows.extend(c.status() for c in self.connections.values())
        return rows

    # -- timers ---------------------------------------------------------------------------

    def poll(self, now: Instant) -> None:
        self.now = now
        heap = self._heap
        while heap and heap[0][0] <= now:
            d, _, conn = heapq.heappop(heap)
            if conn.sched != d:
                continue                  # superseded by an earlier entry
            conn.sched = None
            if conn.state == CLOSED:
                continue
            due = conn.poll_at()
            if due is None:
                continue
            if due > now:
                self._push(conn, due)     # the deadline moved later meanwhile
                continue
            conn.on_timer(now)
            self.touch(conn)

    def poll_at(self) -> Instant | None:
        """The next deadline, exact: entries whose connection's deadline moved later are
        re-filed here, stale ones dropped."""
        heap = self._heap
        while heap:
            d, _, conn = heap[0]
            if conn.sched != d or conn.state == CLOSED:
                heapq.heappop(heap)
                if conn.sched == d:
                    conn.sched = None
                continue
            due = conn.poll_at()
            if due != d:
                heapq.heappop(heap)
                conn.sched = None
                if due is not None:
                    self._push(conn, due)
                continue
            return d
        return None

    # -- input ----------------------------------------------------------------------------

    def input(self, src_ip: bytes, dst_ip: bytes, segment, now: Instant, csum_ok: bool = False) -> None:
        """One segment from the IP layer. Bad input is a counted drop, never an exception.
        ``csum_ok``: the link vouched for the checksum (or left it partial), skip it."""
        stats = self.stats
        stats.rcvtotal += 1
        self.now = now
        # TcpPacket.new_checked's checks, and its fields, read here directly: every
        # segment passes this way (one unpack_from, two slices).
        mv = memoryview(segment)
        n = len(mv)
        if n < 20:
            stats.rcvshort += 1
            return
        sport, dport, seq, ack, off, flags, wnd, _csum, _urg = _TCP_HDR.unpack_from(mv, 0)
        hl = (off >> 4) * 4
        if hl < 20 or hl > n:
            stats.rcvbadoff += 1
            return
        if not csum_ok and not TcpPacket(mv).verify_checksum(src_ip, dst_ip):
            stats.rcvbadsum += 1
            return
        try:
            if hl == 32 and mv[20:24] == TS_ONLY_LAYOUT:
                # parse_options' NOP NOP TS case; a batch's segments mostly share TS values
                tsb = mv[24:32]
                if tsb != self._ts_bytes:      # (else the last, frozen, options serve)
                    self._ts_opts = TcpOptions(timestamp=TS_FIELDS.unpack_from(tsb))
                    self._ts_bytes = bytes(tsb)
                opts = self._ts_opts
            else:
                opts = parse_options(mv[20:hl]) if hl > 20 else NO_OPTIONS
        except Malformed:
            stats.rcvbadoff += 1
            return
        seg = Segment(seq, ack, flags, wnd, opts, mv[hl:])
        conn = self.connections.get((dst_ip, dport, src_ip, sport))
        if conn is not None:
            if conn.state == TIME_WAIT and flags & (SYN | ACK | RST) == SYN and \
                    conn.time_wait_reusable(seg):
                self.stats.tw_reused += 1
                conn.reap(now)
            else:
                conn.segment_arrived(seg, now)
                return
        # The IPv4 wildcard listener takes both families (the files' "announce PORT");
        # one bound to :: takes IPv6 only unless IPV6_V6ONLY was cleared (RFC 3493 5.3).
        lst = self.listeners.get((dst_ip, dport)) or self.listeners.get(
            (ANY4 if len(dst_ip) == 4 else ANY6, dport)) or (
            self.listeners.get((ANY4, dport)) if len(dst_ip) == 16 else self._dual_listener(dport))
        if lst is not None:
            self._listen_input(lst, src_ip, dst_ip, sport, dport, seg, now)
            return
        stats.noport += 1
        self._reset_closed(src_ip, dst_ip, sport, dport, seg)

    def _dual_listener(self, dport: int):
        lst = self.listeners.get((ANY6, dport))
        return lst if lst is not None and not lst.v6only else None

    def v6only_default(self) -> bool:
        """net.inet6.ip6.v6only (1 on QNX) for a new socket; True without IPv6."""
        sysctl = self._sysctl
        return sysctl is None or "net.inet6.ip6.v6only" not in sysctl or bool(sysctl.get("net.inet6.ip6.v6only"))

    def _reset_closed(self, src_ip, dst_ip, sport, dport, seg: Segment) -> None:
        """RFC 9293 3.10.7.1 (CLOSED): answer anything but a RST with a RST."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            out = build_segment(dst_ip, src_ip, dport, sport, seg.ack, 0, RST, 0)
        else:
            out = build_segment(dst_ip, src_ip, dport, sport, 0,
                                seq_add(seg.seq, seg.seg_len), RST | ACK, 0)
        self.stats.sndrst += 1
        self.stats.sndtotal += 1
        self.output(dst_ip, src_ip, out)

    def _listen_input(self, lst: TcpSocket, src_ip, dst_ip, sport, dport, seg: Segment,
                      now: Instant) -> None:
        """RFC 9293 3.10.7.2 (LISTEN)."""
        stats = self.stats
        f = seg.flags
        if f & RST:
            return  # "first, check for a RST: an incoming RST should be ignored"
        if f & ACK:
            # "second, check for an ACK ... form a reset <SEQ=SEG.ACK><CTL=RST>" - unless
            # it completes a SYN-cookie handshake (RFC 4987 3.6).
            if not f & SYN and self.config.syncookies and self._cookie_ack(
                    lst, src_ip, dst_ip, sport, dport, seg, now):
                return
            self._reset_closed(src_ip, dst_ip, sport, dport, seg)
            return
        if not f & SYN:
            return  # "fourth, other data or control: drop the segment"
        cfg = self.config
        if f & FIN and cfg.drop_synfin:
            stats.badsyn += 1
            return
        if len(lst.accept_queue) + lst.embryonic >= lst.backlog:
            if cfg.syncookies and len(lst.accept_queue) < lst.backlog:
                self._send_cookie(lst, src_ip, dst_ip, sport, dport, seg, now)
            else:
                stats.listendrop += 1
            return
        conn = Connection(self, cfg, dst_ip, dport, src_ip, sport, now,
                          sndbuf=lst.explicit_sndbuf, rcvbuf=lst.explicit_rcvbuf,
                          mtu=self.route_mtu(src_ip))
        lst.inherit(conn)
        conn.listener = lst
        lst.embryonic += 1
        stats.sc_added += 1
        self.register(conn)
        conn.open_passive(seg, self.isn(dst_ip, dport, src_ip, sport, now), now)
        self.touch(conn)

    # -- ICMP (the IP layer's ctlinput) ----------------------------------------------------

    def icmp_error(self, local_ip: bytes, remote_ip: bytes, quoted, kind: str,
                   mtu: int | None, now: Instant) -> None:
        """An ICMP error about a segment we sent. ``quoted`` is the TCP header the error
        carries (at least 8 bytes: ports and sequence number, RFC 792). ``kind`` is
        ``frag_needed`` (with ``mtu``, RFC 1191), ``refused`` (protocol or port
        unreachable) or ``unreachable`` (net/host unreachable, time exceeded: soft)."""
        if len(quoted) < 8:
            return
        sport, dport, seq = _TUPLE.unpack_from(quoted, 0)
        conn = self.connections.get((local_ip, sport, remote_ip, dport))
        if conn is None:
            return
        # RFC 5927 4.1: believe only errors quoting a sequence number in flight.
        if not (seq_ge(seq, conn.snd_una) and seq_lt(seq, conn.snd_max)) and \
                not (conn.state == SYN_SENT and seq == conn.iss):
            self.stats.icmp_ignored += 1
            return
        conn.icmp_error(kind, mtu, now)
        self.touch(conn)

    # -- SYN cookies (RFC 4987 3.6) -------------------------------------------------------

    def _cookie(self, lip, lport, rip, rport, irs: int, count: int, mss_idx: int) -> int:
        mac = self._hash32(self._cookie_key, lip, rip, _TUPLE.pack(lport, rport, irs),
                           bytes((count & 0xFF, mss_idx))) & 0x1FFFFFF
        return ((count & 0x1F) << 27) | (mss_idx << 25) | mac

    def _send_cookie(self, lst: TcpSocket, src_ip, dst_ip, sport, dport, seg: Segment,
                     now: Instant) -> None:
        """The queue is full: answer with a SYN-ACK whose ISN encodes the connection, and
        keep no state. Window scale and SACK ride in the low TSval bits when the peer
        sent timestamps (as Linux does); without timestamps they are lost."""
        cfg = self.config
        stats = self.stats
        stats.sc_sendcookie += 1
        peer_mss = seg.opts.mss or cfg.mssdflt
        mtu_mss = self.route_mtu(src_ip) - (20 if len(src_ip) == 4 else 40) - 20
        mss_idx = max(i for i, m in enumerate(COOKIE_MSS) if m <= max(peer_mss, 536))
        count = now // COOKIE_PERIOD
        iss = self._cookie(dst_ip, dport, src_ip, sport, seg.seq, count, mss_idx)
        ws = sack = ts = None
        rcv_wscale = 0
        if seg.opts.timestamp is not None and cfg.timestamps:
            if seg.opts.wscale is not None and cfg.win_scale:
                space = lst.rcvbuf if lst.explicit_rcvbuf or not cfg.recvbuf_auto else \
                    max(lst.rcvbuf, cfg.recvbuf_max)   # as Connection._choose_wscale
                while rcv_wscale < 14 and (space >> rcv_wscale) > 0xFFFF:
                    rcv_wscale += 1
                ws = rcv_wscale
            sack = bool(seg.opts.sack_permitted and cfg.sack)
            clock = now // 1000 + self.ts_offset(dst_ip, dport, src_ip, sport)
            # the *peer's* shift is what we must remember; ours follows from rcvbuf.
            bits = (seg.opts.wscale if ws is not None else 0xF) | (sack << 4) | 0x20
            ts = (((clock - 64) & ~0x3F | bits) & MASK, seg.opts.timestamp[0])
        opts = encode_options(min(mtu_mss, 65535), ws, bool(sack), ts)
        out = build_segment(dst_ip, src_ip, dport, sport, iss, seq_add(seg.seq, 1), SYN | ACK,
                            min(lst.rcvbuf, 0xFFFF), opts)
        stats.sndtotal += 1
        self.output(dst_ip, src_ip, out)

    def _cookie_ack(self, lst: TcpSocket, src_ip, dst_ip, sport, dport, seg: Segment,
                    now: Instant) -> bool:
        iss = seq_add(seg.ack, -1)
        irs = seq_add(seg.seq, -1)
        mss_idx = (iss >> 25) & 3
        count = now // COOKIE_PERIOD
        for c in (count, count - 1):
            if (c & 0x1F) == iss >> 27 and \
                    self._cookie(dst_ip, dport, src_ip, sport, irs, c, mss_idx) == iss:
                break
        else:
            self.stats.sc_bad_cookie += 1
            return False
        if len(lst.accept_queue) >= lst.backlog:
            self.stats.listendrop += 1
            return True   # silently: the client's retransmission may find room later
        self.stats.sc_recvcookie += 1
        ws, sack = None, False
        ts = seg.opts.timestamp
        if ts is not None and ts[1] & 0x20:
            code = ts[1] & 0xF
            ws = None if code == 0xF else code
            sack = bool(ts[1] & 0x10)
        cfg = self.config
        conn = Connection(self, cfg, dst_ip, dport, src_ip, sport, now,
                          sndbuf=lst.explicit_sndbuf, rcvbuf=lst.explicit_rcvbuf,
                          mtu=self.route_mtu(src_ip))
        lst.inherit(conn)
        conn.listener = lst
        self.register(conn)
        conn.open_from_cookie(seg, iss, COOKIE_MSS[mss_idx], ws, sack, now)
        if conn.state != CLOSED:
            conn.segment_arrived(seg, now)
        return True
