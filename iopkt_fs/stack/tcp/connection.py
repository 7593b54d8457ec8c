"""One TCP connection: the RFC 9293 state machine and everything that moves data.

Theory of operation
-------------------
A ``Connection`` is a transmission control block (RFC 9293 3.3.1) plus the code that acts
on it. It is driven from three directions, always with ``now`` (integer microseconds) as
an argument, and it never reads a clock or does I/O:

1. ``segment_arrived(seg, now)`` - the layer found this connection for an incoming segment.
   Processing follows RFC 9293 3.10.7.4 step by step ("first check sequence number" ...
   "eighth, check the FIN bit"), with RFC 5961's challenge ACKs replacing the old RST and
   SYN handling and RFC 7323's PAWS check in front.
2. User calls made by the socket layer (``open_active``, ``send``, ``recv_into``,
   ``shutdown``, ``close``, ``abort``), RFC 9293 3.10.1-3.10.6.
3. ``on_timer(now)`` - the layer's heap says one of our deadlines passed.

Every path ends in ``_output(now)``, the one place that decides what to transmit (BSD's
``tcp_output``): SYN/SYN-ACK, new data under the send window, the congestion window,
Nagle and sender silly-window avoidance, retransmissions during loss recovery, FIN, and a
bare ACK or window update when one is owed. Segments leave through ``layer.emit``.

Rules:

* State changes only through ``_set_state``, which logs ``old -> new`` and wakes the socket.
* Timers are data: ``t_rexmt``, ``t_persist``, ``t_keep``, ``t_2msl``, ``t_delack`` are
  deadlines (or None), BSD's TCPT_REXMT/PERSIST/KEEP/2MSL plus the delayed-ACK timer;
  ``poll_at()`` is their minimum and the layer keeps them in a heap.
* Sequence numbers are 32-bit and compared only through ``seq.py``.
* The send buffer holds bytes from ``snd_buf_seq`` (SND.UNA once the SYN is acknowledged);
  the receive buffer holds unread bytes, then out-of-order data in place (``buffers.py``).
* Loss recovery: with SACK, RFC 6675's pipe/NextSeg conservative recovery; without, NewReno
  (RFC 6582). Either way ``cwnd``/``ssthresh`` belong to the congestion controller
  (``congestion.py``: NewReno or CUBIC), the retransmission timer to RFC 6298
  (``rtt.py``), round-trip samples come from timestamps (RFC 7323 4) or one timed segment
  per RTT with Karn's rule (and no timestamp sample echoing a TSval older than the last
  timeout retransmission).
* Invariant: data in flight always has a timer that will recover it (REXMT, or PERSIST
  when the peer's window is shut); every entry point ends with ``layer.touch(self)`` so
  the heap knows the next deadline.

Standards: RFC 9293 (state machine, MSS, SWS avoidance both sides, persist, URG ignored as
in RFC 6093), RFC 1122 (delayed ACK, keepalive, ICMP soft/hard errors), RFC 5961
(challenge ACKs, rate limit), RFC 6298 (RTO, Karn, backoff, 5.7), RFC 5681 (slow start,
congestion avoidance, restart after idle, immediate ACKs out of order), RFC 3042 (limited
transmit), RFC 6582 (NewReno), RFC 2018 + RFC 6675 (SACK and SACK-based recovery),
RFC 7323 (window scale, timestamps, PAWS), RFC 9438 (CUBIC), RFC 6528 (ISNs, in the
layer), RFC 4987 (SYN cookies, in the layer), RFC 6191 (TIME-WAIT reuse), RFC 1191/5927
(PMTU, ICMP checks).
"""

from __future__ import annotations

import errno as _errno
from enum import IntEnum
from typing import TYPE_CHECKING

from ..time import Instant, seconds
from ..wire.tcp import NO_OPTIONS, TcpOptions, build_segment, encode_options
from . import congestion
from .buffers import Assembler, Ring
from .config import TcpConfig
from .rtt import RttEstimator
from .seq import MASK, seq_add, seq_ge, seq_gt, seq_in, seq_le, seq_lt, seq_sub

if TYPE_CHECKING:
    from .layer import TcpLayer
    from .socket import TcpSocket

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

DUPTHRESH = 3                     # RFC 5681 3.2 / RFC 6675 2
PERSIST_MIN = seconds(5)          # BSD TCPTV_PERSMIN
PERSIST_MAX = seconds(60)         # BSD TCPTV_PERSMAX
SWS_OVERRIDE = seconds(1)         # RFC 1122 4.2.3.4: 0.1 - 1.0 s
OOW_ACK_INTERVAL = 500_000        # Linux net.ipv4.tcp_invalid_ratelimit (500 ms)
TS_24_DAYS_MS = 24 * 86400 * 1000  # RFC 7323 5.5: TS.Recent is invalid after 24 days idle
MAX_SACK_SCOREBOARD = 64
MAX_RXT_LOG = 64                  # recovery retransmissions watched for loss (RACK-style)
RACK_MIN_REO_WND = 1000           # µs: the reordering window's floor (RFC 8985 6.2)
PTO_MIN = 10_000                  # µs: the probe timeout's floor (Linux TCP_TIMEOUT_MIN)
AUTOSIZE_MIN_INTERVAL = 1000      # µs: shortest receive-autosizing measurement


class State(IntEnum):
    """RFC 9293 3.3.2 states, numbered as BSD's ``tcp_fsm.h`` so ordering predicates work."""

    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    CLOSE_WAIT = 5
    FIN_WAIT_1 = 6
    CLOSING = 7
    LAST_ACK = 8
    FIN_WAIT_2 = 9
    TIME_WAIT = 10

    def __str__(self) -> str:
        return self.name.replace("_", "-")

    @property
    def synchronized(self) -> bool:
        """BSD ``TCPS_HAVERCVDSYN``: every state from SYN-RECEIVED on."""
        return self >= State.SYN_RECEIVED

    @property
    def established(self) -> bool:
        """BSD ``TCPS_HAVEESTABLISHED``."""
        return self >= State.ESTABLISHED

    @property
    def can_receive_data(self) -> bool:
        """States in which segment text is still accepted (RFC 9293 3.10.7.4 seventh)."""
        return self in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2)

    @property
    def can_send_data(self) -> bool:
        return self in (State.ESTABLISHED, State.CLOSE_WAIT)


class Segment:
    """An incoming segment, decoded once by the layer (fields plus payload view)."""

    __slots__ = ("seq", "ack", "flags", "wnd", "opts", "payload")

    def __init__(self, seq: int, ack: int, flags: int, wnd: int, opts: TcpOptions = NO_OPTIONS,
                 payload=b""):
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.wnd = wnd
        self.opts = opts
        self.payload = payload

    @property
    def seg_len(self) -> int:
        return len(self.payload) + (self.flags & SYN and 1) + (self.flags & FIN)


class Connection:
    __slots__ = ("ack_now", "cc", "config", "created", "dupacks", "error", "fin_queued",
                 "fin_seq", "high_rxt", "in_recovery", "ip_header", "irs", "iss",
                 "keep_probes", "keepalive", "key", "last_ack_sent", "last_data_snd",
                 "last_oow_ack",
                 "last_rcv", "last_snd", "layer", "listener", "local_ip", "local_port",
                 "max_sndwnd", "mtu", "nodelay", "ooo", "orphaned", "our_mss", "peer_fin",
                 "peer_mss", "persist_shift", "rcv_adv", "rcv_buf", "rcv_nxt", "rcv_shut",
                 "rcv_wscale", "rcv_auto", "rcv_rtt", "recover", "remote_ip", "rfbuf_cnt", "rfbuf_ts",
                 "snd_auto", "tso", "tso_gen", "remote_port", "req_sack", "req_ts",
                 "rescue_rxt", "rxt_log",
                 "req_ws", "retransmits", "rexmt_shift", "rexmt_tsval", "rtt", "rtt_seq",
                 "rtt_time",
                 "sack_ok", "sack_recent", "sacked", "sched", "smss", "snd_buf",
                 "snd_buf_seq", "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2",
                 "snd_wnd", "snd_wscale", "socket", "soft_error", "state", "syn_queued",
                 "t_2msl", "t_delack", "t_keep", "t_persist", "t_rexmt", "t_tlp",
                 "tlp_high", "ts_offset",
                 "ts_ok", "ts_recent", "ts_recent_age", "unacked_bytes", "ws_ok")

    def __init__(self, layer: TcpLayer, config: TcpConfig, local_ip: bytes, local_port: int,
                 remote_ip: bytes, remote_port: int, now: Instant, *,
                 sndbuf: int | None = None, rcvbuf: int | None = None, mtu: int = 1500):
        self.layer = layer
        self.config = config
        self.local_ip, self.local_port = local_ip, local_port
        self.remote_ip, self.remote_port = remote_ip, remote_port
        self.key = (local_ip, local_port, remote_ip, remote_port)
        self.state = State.CLOSED
        self.socket: TcpSocket | None = None
        self.listener: TcpSocket | None = None     # set for passive opens until accepted
        self.error = 0                             # errno reported to the user, once
        self.soft_error = 0                        # ICMP soft error (RFC 1122 4.2.3.9)
        self.created = now

        # Buffers given no explicit size (SO_SNDBUF/SO_RCVBUF) grow with the transfer
        # (NetBSD SB_AUTOSIZE; net.inet.tcp.{recv,send}buf_auto).
        self.snd_auto = sndbuf is None and config.sendbuf_auto
        self.rcv_auto = rcvbuf is None and config.recvbuf_auto
        self.snd_buf = Ring(sndbuf or config.sendspace)
        self.rcv_buf = Ring(rcvbuf or config.recvspace)
        self.rfbuf_ts = 0            # start of the current receive-autosizing measurement
        self.rfbuf_cnt = 0           # bytes received in it
        self.rcv_rtt = 0             # receiver's RTT estimate from echoed timestamps (µs)
        self.tso = 0                 # payload of one super-segment (0: one SMSS)
        self.tso_gen = -1            # layer.route_gen when tso was computed
        self.ooo = Assembler(config.max_ooo_ranges)

        # Send sequence space (RFC 9293 3.3.1). snd_max is BSD's: the highest sequence
        # number sent, which differs from snd_nxt after a timeout pulls snd_nxt back.
        self.iss = 0
        self.snd_una = self.snd_nxt = self.snd_max = 0
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_sndwnd = 0
        self.snd_buf_seq = 0
        self.fin_queued = False      # the user shut down sending: FIN after the buffer
        self.syn_queued = False
        # Receive sequence space.
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0             # right edge of the window we advertised
        self.fin_seq: int | None = None   # peer's FIN, seen ahead of a hole
        self.rcv_shut = False        # user shut down receiving
        self.peer_fin = False

        # Negotiated options.
        self.mtu = mtu
        self.ip_header = 20 if len(local_ip) == 4 else 40
        self.our_mss = mtu - self.ip_header - 20
        self.peer_mss = config.mssdflt
        self.smss = min(self.peer_mss, self.our_mss)
        self.snd_wscale = 0          # shift applied to windows the peer sends us
        self.rcv_wscale = 0          # shift we apply to windows we send
        self.ws_ok = self.ts_ok = self.sack_ok = False
        self.req_ws = config.win_scale
        self.req_ts = config.timestamps
        self.req_sack = config.sack
        self.ts_recent = 0
        self.ts_recent_age = 0       # ms clock when ts_recent was stored
        self.ts_offset = 0
        self.last_ack_sent = 0

        # Timing and congestion.
        self.rtt = RttEstimator(config.rto_initial, config.rto_min, config.rto_max)
        self.rtt_seq: int | None = None
        self.rtt_time = 0
        self.rexmt_tsval: int | None = None   # TSval of the last timeout retransmission
        self.cc = congestion.make(config.congctl, self.smss)
        self.dupacks = 0
        self.in_recovery = False
        self.recover = 0             # RFC 6582 "recover" / RFC 6675 RecoveryPoint
        self.high_rxt = 0            # RFC 6675 HighRxt
        self.rxt_log: list | tuple = ()   # (seq, end, sent_at) of recovery retransmissions
        self.t_tlp: Instant | None = None   # RFC 8985 7 probe timeout (PTO)
        self.tlp_high: int | None = None    # TLP.end_seq: SND.MAX when the probe left
        self.rescue_rxt: int | None = None   # RFC 6675 RescueRxt
        self.sacked: list[list[int]] = []   # scoreboard: sorted disjoint [start, end)
        self.rexmt_shift = 0         # consecutive retransmission timeouts
        self.retransmits = 0         # total segments retransmitted (status)
        self.persist_shift = 0
        self.keep_probes = 0
        self.last_rcv = now
        self.last_snd = now
        self.last_data_snd = 0       # when data was last sent (RFC 5681 4.1 idle restart)

        # Timers (deadlines in µs, None = not armed).
        self.t_rexmt: Instant | None = None
        self.t_persist: Instant | None = None
        self.t_keep: Instant | None = None
        self.t_2msl: Instant | None = None
        self.t_delack: Instant | None = None

        # ACK policy.
        self.ack_now = False
        self.unacked_bytes = 0       # in-order bytes received since our last ACK
        self.last_oow_ack = -OOW_ACK_INTERVAL   # when we last answered an out-of-window ACK
        self.sack_recent: list[int] = []   # starts of recently received OOO ranges (RFC 2018 4)

        # User options (mirrored from the socket).
        self.nodelay = False
        self.keepalive = False
        self.orphaned = False        # closed by the user; no one will read
        self.sched: Instant | None = None   # the deadline the layer's heap knows about

    # -- small helpers ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"<Connection {self.layer.fmt_ep(self.local_ip, self.local_port)} -> "
                f"{self.layer.fmt_ep(self.remote_ip, self.remote_port)} {self.state}>")

    def _set_state(self, new: State, now: Instant) -> None:
        old = self.state
        if old == new:
            return
        self.state = new
        self.layer.log_state(self, old, new)
        if new == State.TIME_WAIT:
            # RFC 9293 3.10.7.4: "start the time-wait timer" for 2 MSL; nothing else runs.
            self.t_rexmt = self.t_persist = self.t_keep = self.t_delack = self.t_tlp = None
            self.t_2msl = now + 2 * self.config.msl
            self.snd_buf.release()     # a TIME-WAIT block keeps no buffers
            if not self.ooo:
                self.rcv_buf.release()
        if new == State.CLOSED:
            self.t_rexmt = self.t_persist = self.t_keep = self.t_2msl = self.t_delack = None
            self.t_tlp = None
            self.layer.connection_closed(self, old)
        elif new.established and not old.established:
            if self.retransmits and self.rtt.srtt is None:
                # RFC 6298 5.7: the SYN (or SYN-ACK) timed out and no RTT was measured:
                # start data transmission with RTO = 3 s.
                self.rtt.reset(seconds(3))
            self._arm_keep(now)
            self.layer.connection_established(self, old)
        if new == State.FIN_WAIT_2 and self.orphaned:
            # Nobody can ever close the peer's half for us; BSD's tcp_maxidle / Linux's
            # tcp_fin_timeout: give an orphaned FIN-WAIT-2 a bounded life (2 MSL).
            self.t_2msl = now + 2 * self.config.msl
        self.layer.wake(self)

    def ts_now(self, now: Instant) -> int:
        """Our RFC 7323 TSval clock: milliseconds plus a per-connection offset (5.4)."""
        return (now // 1000 + self.ts_offset) & MASK

    @property
    def flight(self) -> int:
        """FlightSize (RFC 5681 2): data sent but not yet acknowledged."""
        return seq_sub(self.snd_max, self.snd_una)

    @property
    def rcv_wnd(self) -> int:
        """The window we advertised: RCV.ADV - RCV.NXT."""
        return max(0, seq_sub(self.rcv_adv, self.rcv_nxt))

    def _accept_window(self) -> int:
        return max(self.rcv_wnd, self.rcv_buf.free)

    def poll_at(self) -> Instant | None:
        ts = [t for t in (self.t_rexmt, self.t_persist, self.t_keep, self.t_2msl, self.t_delack,
                          self.t_tlp) if t is not None]
        return min(ts) if ts else None

    def _update_smss(self) -> None:
        # RFC 9293 3.7.1: effective send MSS = min(SendMSS, MMS_S) - TCP/IP options size;
        # our IP header carries no options, the TCP options are the 12-byte timestamps.
        eff = min(self.peer_mss, self.our_mss) - (12 if self.ts_ok else 0)
        self.smss = max(eff, 64)
        self.cc.set_smss(self.smss)

    def _rcv_mss(self) -> int:
        return max(self.our_mss - (12 if self.ts_ok else 0), 64)

    # -- opening ------------------------------------------------------------------------

    def _choose_wscale(self) -> int:
        """RFC 7323 2.2: the smallest shift that lets the whole buffer be advertised."""
        cap = self.rcv_buf.capacity
        if self.rcv_auto:
            cap = max(cap, self.config.recvbuf_max)   # room for what autosizing may reach
        shift = 0
        while shift < 14 and (cap >> shift) > 0xFFFF:
            shift += 1
        return shift

    def open_active(self, iss: int, now: Instant) -> None:
        """OPEN call, active (RFC 9293 3.10.1): send SYN, enter SYN-SENT."""
        self._init_send(iss)
        self.rcv_wscale = self._choose_wscale() if self.req_ws else 0
        self.syn_queued = True
        self._set_state(State.SYN_SENT, now)
        self._output(now)

    def open_passive(self, seg: Segment, iss: int, now: Instant) -> None:
        """A SYN reached a listener (RFC 9293 3.10.7.2 third): SYN-RECEIVED, send SYN-ACK."""
        self._init_send(iss)
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        self.rcv_adv = self.rcv_nxt
        self._take_syn_options(seg, now)
        # RFC 9293 3.10.7.2: SND.WND from the SYN, never scaled (RFC 7323 2.2).
        self.snd_wnd = seg.wnd
        self.max_sndwnd = seg.wnd
        self.snd_wl1, self.snd_wl2 = seg.seq, iss
        self.syn_queued = True
        self._set_state(State.SYN_RECEIVED, now)
        self._arm_keep(now)
        self._output(now)

    def open_from_cookie(self, seg: Segment, iss: int, mss: int, wscale: int | None,
                         sack: bool, now: Instant) -> None:
        """Rebuild an established connection from a valid SYN-cookie ACK (RFC 4987 3.6)."""
        self._init_send(iss)
        self.snd_una = self.snd_nxt = self.snd_max = self.snd_buf_seq = seq_add(iss, 1)
        self.irs = seq_add(seg.seq, -1)
        self.rcv_nxt = seg.seq
        self.peer_mss = mss
        if wscale is not None and self.req_ws:
            self.ws_ok = True
            self.snd_wscale = wscale
            self.rcv_wscale = self._choose_wscale()
        self.sack_ok = sack and self.req_sack
        if seg.opts.timestamp is not None and self.req_ts:
            self.ts_ok = True
            self.ts_recent = seg.opts.timestamp[0]
            self.ts_recent_age = now // 1000
        self._update_smss()
        # The window field of this ACK is scaled (it is not a SYN).
        self.snd_wnd = seg.wnd << self.snd_wscale
        self.max_sndwnd = self.snd_wnd
        self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
        self.rcv_adv = seq_add(self.rcv_nxt, self._advertisable_window())
        self._set_state(State.ESTABLISHED, now)

    def _init_send(self, iss: int) -> None:
        self.iss = iss
        self.snd_una = self.snd_nxt = self.snd_max = iss
        self.snd_buf_seq = seq_add(iss, 1)
        self.recover = iss
        self.high_rxt = iss

    def _take_syn_options(self, seg: Segment, now: Instant) -> None:
        o = seg.opts
        if o.mss is not None and o.mss > 0:
            self.peer_mss = o.mss
        else:
            # RFC 9293 3.7.1 (MUST-15): no MSS option means 536 (IPv4) / 1220 (IPv6).
            self.peer_mss = self.config.mssdflt if self.ip_header == 20 else 1220
        if o.wscale is not None and self.req_ws:
            self.ws_ok = True
            self.snd_wscale = o.wscale
            if self.state != State.SYN_SENT:
                self.rcv_wscale = self._choose_wscale()
        else:
            # RFC 7323 2.2: scaling only if both sides sent the option.
            self.ws_ok = False
            self.snd_wscale = self.rcv_wscale = 0
        self.sack_ok = o.sack_permitted and self.req_sack
        if o.timestamp is not None and self.req_ts:
            self.ts_ok = True
            self.ts_recent = o.timestamp[0]
            self.ts_recent_age = now // 1000
        else:
            self.ts_ok = False
        self._update_smss()

    # -- user calls ---------------------------------------------------------------------

    def send(self, data, now: Instant) -> int:
        """SEND (RFC 9293 3.10.2): queue what fits in the send buffer, then try to send."""
        n = self.snd_buf.write(data)
        if n:
            self._output(now)
        return n

    def recv_into(self, out, now: Instant) -> int:
        """RECEIVE (3.10.3): copy out buffered data; reopen the window when it is worth it."""
        n = self.rcv_buf.read_into(out)
        if n and self.state.synchronized and self.state not in (State.TIME_WAIT, State.CLOSED):
            # Receiver SWS avoidance (RFC 9293 3.8.6.2.2; BSD tcp_output): a window update
            # only once the window can move by 2 segments or half the buffer.
            if self._advertisable_window() - self.rcv_wnd >= min(2 * self._rcv_mss(),
                                                                 self.rcv_buf.capacity // 2):
                self.ack_now = True
                self.layer.stats.sndwinup += 1
                self._output(now)
        return n

    def shutdown_send(self, now: Instant) -> None:
        """CLOSE of the sending half (3.10.4): FIN after the queued data."""
        st = self.state
        if st in (State.CLOSED, State.LISTEN):
            return
        if st == State.SYN_SENT:
            # "Delete the TCB and return 'error: closing' responses to any queued SENDs".
            self._set_state(State.CLOSED, now)
            return
        if self.fin_queued:
            return
        self.fin_queued = True
        if st in (State.SYN_RECEIVED, State.ESTABLISHED):
            # SYN-RECEIVED: "If no SENDs have been issued and there is no pending data to
            # send, then form a FIN segment ... and enter FIN-WAIT-1" - we always queue the
            # FIN behind the data and let _output send it once the handshake is done.
            self._set_state(State.FIN_WAIT_1, now)
        elif st == State.CLOSE_WAIT:
            self._set_state(State.LAST_ACK, now)
        self._output(now)

    def close(self, now: Instant) -> None:
        """The user closed the socket: unread data means ABORT (RFC 1122 4.2.2.13, RFC 2525
        2.17), otherwise an orderly FIN and the connection lives on as an orphan."""
        self.orphaned = True
        self.socket = None
        if len(self.rcv_buf) and self.state.synchronized:
            self.abort(now, _errno.ECONNABORTED)
            return
        self.shutdown_send(now)
        self.layer.touch(self)

    def abort(self, now: Instant, err: int = _errno.ECONNABORTED) -> None:
        """ABORT (3.10.5): a RST in synchronized states, then CLOSED."""
        if self.state in (State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1,
                          State.FIN_WAIT_2, State.CLOSE_WAIT):
            self._send_rst(self.snd_nxt, now)
        self._drop(err, now)

    def _drop(self, err: int, now: Instant) -> None:
        if self.state.synchronized:
            self.layer.stats.drops += 1
        elif self.state == State.SYN_SENT:
            self.layer.stats.conndrops += 1
        self.error = err
        self._set_state(State.CLOSED, now)

    # -- input --------------------------------------------------------------------------

    def segment_arrived(self, seg: Segment, now: Instant) -> None:
        """SEGMENT ARRIVES for every state but LISTEN and CLOSED (RFC 9293 3.10.7.3-4)."""
        if self.state == State.SYN_SENT:
            self._input_syn_sent(seg, now)
        else:
            self._input_synchronized(seg, now)
        pending = self.layer.pending
        if pending is not None and not self.ooo:
            # Output once, at the end of the input batch. While there is a hole every
            # segment is answered at once (RFC 5681 4.2: duplicate ACKs, SACK news).
            pending[self] = None
            return
        if self.state != State.CLOSED:
            self._output(now)
        self.layer.touch(self)

    def _input_syn_sent(self, seg: Segment, now: Instant) -> None:
        f = seg.flags
        # first, check the ACK bit
        if f & ACK and (seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max)):
            # "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is
            # set, if so drop the segment and return) <SEQ=SEG.ACK><CTL=RST>".
            if not f & RST:
                self._send_rst(seg.ack, now, with_ack=False)
            return
        # second, check the RST bit
        if f & RST:
            # RFC 5961 3.2 / RFC 9293: a RST is only believed if it acknowledges our SYN.
            if f & ACK:
                self.layer.stats.conndrops += 1
                self.error = _errno.ECONNREFUSED
                self._set_state(State.CLOSED, now)
            return
        # fourth, check the SYN bit
        if not f & SYN:
            return  # fifth: "if neither of the SYN or RST bits is set, drop the segment"
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        # Our SYN offered min(buffer, 65535), unscaled (RFC 7323 2.2).
        self.rcv_adv = seq_add(self.rcv_nxt, min(self.rcv_buf.free, 0xFFFF))
        self._take_syn_options(seg, now)
        self.last_rcv = now
        if f & ACK:
            # Our SYN is acknowledged: ESTABLISHED. RFC 9293: SND.WND <- SEG.WND (unscaled
            # in a SYN), SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK.
            self._ack_advances(seg.ack, now, seg)
            self.snd_wnd = seg.wnd
            self.max_sndwnd = max(self.max_sndwnd, seg.wnd)
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
            self._set_state(State.ESTABLISHED, now)
            self.layer.stats.connects += 1
            self._arm_keep(now)
            self.ack_now = True
            # "If there are other controls or text in the segment then continue processing
            # at the sixth step below where the URG bit is checked".
            if seg.payload or f & FIN:
                rest = Segment(seq_add(seg.seq, 1), seg.ack, f & ~SYN, seg.wnd, seg.opts,
                               seg.payload)
                self._trim_to_window(rest)
                self._process_text(rest, now)
        else:
            # Simultaneous open (RFC 9293 3.5 figure 8, MUST-10): SYN-RECEIVED and a SYN,ACK.
            self.snd_wnd = seg.wnd
            self.max_sndwnd = seg.wnd
            self.snd_wl1 = seg.seq
            self.snd_nxt = self.iss      # the SYN-ACK reuses our ISS
            self.syn_queued = True
            self._set_state(State.SYN_RECEIVED, now)

    def _input_synchronized(self, seg: Segment, now: Instant) -> None:
        f = seg.flags
        stats = self.layer.stats
        st = self.state
        ts = seg.opts.timestamp if self.ts_ok else None

        if self.ts_ok and seg.opts.timestamp is None and not f & RST:
            # RFC 7323 3.2: "If a non-<RST> segment is received without a TSopt, a TCP
            # SHOULD silently drop the segment."
            stats.rcvnots += 1
            return

        # RFC 7323 5.3 R1: PAWS, before the sequence number check.
        if ts is not None and not f & RST and seq_lt(ts[0], self.ts_recent):
            if (now // 1000 - self.ts_recent_age) < TS_24_DAYS_MS:
                stats.pawsdrop += 1
                self._ack_and_drop(now)
                return
            self.ts_recent = ts[0]  # 5.5: an idle connection's TS.Recent is stale

        if st == State.SYN_RECEIVED and f & SYN and not f & (ACK | RST) and seg.seq == self.irs:
            # The peer repeats its SYN: our SYN-ACK was lost. Repeat it (what BSD's
            # syncache does) rather than treating the old SYN as out of window.
            self.snd_nxt = self.iss
            self.syn_queued = True
            return

        # first, check sequence number (RFC 9293 3.10.7.4 table). RCV.WND is what we
        # advertised or, if more, the room we really have (BSD tcp_input: a window held
        # back for SWS avoidance still takes the data it has room for).
        wnd = self._accept_window()
        seg_len = seg.seg_len
        rcv_nxt = self.rcv_nxt
        if seg_len == 0:
            ok = seg.seq == rcv_nxt if wnd == 0 else seq_in(seg.seq, rcv_nxt, seq_add(rcv_nxt, wnd))
        elif wnd == 0:
            ok = False
            if seg.seq == rcv_nxt and f & ACK and not f & (SYN | RST):
                # "special allowance should be made to accept valid ACKs, URGs, and RSTs":
                # a zero-window probe - process its ACK, keep none of its data.
                stats.rcvwinprobe += 1
                seg = Segment(seg.seq, seg.ack, f & ~FIN, seg.wnd, seg.opts, b"")
                self.ack_now = True
                ok = True
        else:
            end = seq_add(rcv_nxt, wnd)
            ok = seq_in(seg.seq, rcv_nxt, end) or \
                seq_in(seq_add(seg.seq, seg_len - 1), rcv_nxt, end)
        if not ok:
            if seg_len and seq_le(seq_add(seg.seq, seg_len), rcv_nxt):
                stats.rcvduppack += 1
                stats.rcvdupbyte += len(seg.payload)
            elif seg_len:
                stats.rcvpackafterwin += 1
                stats.rcvbyteafterwin += len(seg.payload)
            if not f & RST:
                if st == State.TIME_WAIT and f & FIN:
                    # A retransmitted FIN: ACK it and restart the 2 MSL timer.
                    self.t_2msl = now + 2 * self.config.msl
                if seg.payload or f & FIN or now - self.last_oow_ack >= OOW_ACK_INTERVAL:
                    # Out-of-window pure ACKs and SYNs get at most one answer per 500 ms
                    # (Linux tcp_invalid_ratelimit): two ends answering each other's
                    # unacceptable ACKs would otherwise loop for ever (an "ACK war").
                    if not seg.payload and not f & FIN:
                        self.last_oow_ack = now
                    self._ack_and_drop(now)
            return
        self._trim_to_window(seg)

        # RFC 7323 4.3 (2): remember TSval if the segment covers Last.ACK.sent.
        if ts is not None and seq_ge(ts[0], self.ts_recent) and seq_le(seg.seq, self.last_ack_sent):
            self.ts_recent = ts[0]
            self.ts_recent_age = now // 1000

        # second, check the RST bit (RFC 5961 3.2).
        if f & RST:
            if seg.seq != rcv_nxt:
                # In the window but not exact: a challenge ACK, the peer must prove itself.
                self._challenge_ack(now)
                return
            if st == State.SYN_RECEIVED:
                # "If this connection was initiated with a passive OPEN, return to LISTEN"
                # (for us: forget the embryonic connection); if active, "connection
                # refused".
                self._drop(0 if self.listener is not None else _errno.ECONNREFUSED, now)
            elif st in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT):
                self._drop(_errno.ECONNRESET, now)
            else:  # CLOSING, LAST-ACK, TIME-WAIT
                self._set_state(State.CLOSED, now)
            return

        # fourth, check the SYN bit (RFC 5961 4.2; RFC 9293 3.10.7.4 fourth).
        if f & SYN:
            stats.badsyn += 1
            self._challenge_ack(now)
            return

        # fifth, check the ACK field.
        if not f & ACK:
            return  # "if the ACK bit is off, drop the segment and return"
        self.last_rcv = now
        self.keep_probes = 0
        ack = seg.ack
        if st == State.SYN_RECEIVED:
            if seq_gt(ack, self.snd_una) and seq_le(ack, self.snd_max):
                # RFC 9293: "enter ESTABLISHED state and continue processing with the
                # variables SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK".
                self.snd_wnd = seg.wnd << self.snd_wscale
                self.max_sndwnd = max(self.max_sndwnd, self.snd_wnd)
                self.snd_wl1, self.snd_wl2 = seg.seq, ack
                stats.connects += 1     # NetBSD: "established (including accepts)"
                self._set_state(State.ESTABLISHED, now)
            else:
                # "If the segment acknowledgment is not acceptable, form a reset segment
                # <SEQ=SEG.ACK><CTL=RST> and send it".
                self._send_rst(ack, now, with_ack=False)
                return
            st = self.state
            if self.fin_queued and st == State.ESTABLISHED:
                self._set_state(State.FIN_WAIT_1, now)
                st = self.state
        # RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.MAX.
        if seq_gt(ack, self.snd_max):
            stats.rcvacktoomuch += 1
            self._challenge_ack(now)
            return
        if seq_lt(ack, seq_sub(self.snd_una, self.max_sndwnd) & MASK):
            self._challenge_ack(now)
            return
        self._process_ack(seg, now)
        if self.state == State.CLOSED:
            return
        st = self.state
        fin_acked = self.fin_queued and self.snd_una == self.snd_max and seq_gt(
            self.snd_max, seq_add(self.snd_buf_seq, len(self.snd_buf)))
        if st == State.FIN_WAIT_1 and fin_acked:
            self._set_state(State.FIN_WAIT_2, now)
        elif st == State.CLOSING and fin_acked:
            self._set_state(State.TIME_WAIT, now)
        elif st == State.LAST_ACK and fin_acked:
            self._set_state(State.CLOSED, now)
            return
        elif st == State.TIME_WAIT:
            # "The only thing that can arrive in this state is a retransmission of the
            # remote FIN. Acknowledge it, and restart the 2 MSL timeout."
            if f & FIN:
                self.ack_now = True
                self.t_2msl = now + 2 * self.config.msl
            return

        # sixth, URG: we implement no urgent mode (RFC 6093: treat as ordinary data).
        # seventh, process the segment text; eighth, the FIN bit.
        if seg.payload or f & FIN:
            self._process_text(seg, now)

    def _trim_to_window(self, seg: Segment) -> None:
        """Cut what lies before RCV.NXT or past the window (RFC 9293 3.10.7.4 first)."""
        d = seq_sub(self.rcv_nxt, seg.seq)
        if d > 0:
            if seg.flags & SYN:
                seg.flags &= ~SYN
                seg.seq = seq_add(seg.seq, 1)
                d -= 1
            if d > 0:
                if d >= len(seg.payload) and not (seg.flags & FIN and d == len(seg.payload)):
                    self.layer.stats.rcvduppack += 1
                    self.layer.stats.rcvdupbyte += len(seg.payload)
                    seg.flags &= ~FIN
                else:
                    self.layer.stats.rcvpartduppack += 1
                    self.layer.stats.rcvpartdupbyte += d
                seg.payload = seg.payload[d:]
                seg.seq = seq_add(seg.seq, d)
        room = seq_sub(seq_add(self.rcv_nxt, self._accept_window()), seg.seq)
        if len(seg.payload) > room:
            cut = len(seg.payload) - max(room, 0)
            self.layer.stats.rcvpackafterwin += 1
            self.layer.stats.rcvbyteafterwin += cut
            seg.payload = seg.payload[:max(room, 0)]
            seg.flags &= ~FIN

    def _ack_and_drop(self, now: Instant) -> None:
        self.ack_now = True
        self._output(now)

    def _challenge_ack(self, now: Instant) -> None:
        """RFC 5961 3.2/4.2/5.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, rate limited (7)."""
        if self.layer.challenge_ack_allowed(now):
            self.layer.stats.challenge_ack += 1
            self.ack_now = True
            self._output(now)
        else:
            self.layer.stats.challenge_ack_limited += 1

    # -- acknowledgments ----------------------------------------------------------------

    def _process_ack(self, seg: Segment, now: Instant) -> None:
        stats = self.layer.stats
        ack = seg.ack
        acked = seq_sub(ack, self.snd_una)
        wnd = seg.wnd << self.snd_wscale
        if self.sack_ok and seg.opts.sack_blocks:
            stats.sack_rcvblocks += len(seg.opts.sack_blocks)
            sack_grew = self._update_scoreboard(seg.opts.sack_blocks, ack)
        else:
            sack_grew = False
        if acked > 0:
            stats.rcvackpack += 1
            stats.rcvackbyte += acked
            self._ack_advances(ack, now, seg)
        elif acked == 0 and self.flight > 0 and not seg.payload and not seg.flags & (SYN | FIN) \
                and (wnd == self.snd_wnd or sack_grew):
            # RFC 5681 2 "DUPLICATE ACKNOWLEDGMENT" (a)-(e); RFC 6675 5: with SACK, an ACK
            # that brings new SACK information counts too.
            stats.rcvdupack += 1
            self._dup_ack(now)
        # Window update (RFC 9293 3.10.7.4 fifth, ESTABLISHED): "If SND.UNA =< SEG.ACK =<
        # SND.NXT, the send window should be updated" - from newer segments only (WL1/WL2).
        if acked >= 0 and (seq_lt(self.snd_wl1, seg.seq) or
                           (self.snd_wl1 == seg.seq and seq_le(self.snd_wl2, ack))):
            if wnd != self.snd_wnd and acked <= 0 and not seg.payload:
                stats.rcvwinupd += 1
            self.snd_wnd = wnd
            self.max_sndwnd = max(self.max_sndwnd, wnd)
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            if wnd > 0 and self.t_persist is not None:
                # The window opened: leave persist mode. A probe byte beyond SND.UNA is
                # sent again as ordinary data (go back to SND.UNA, as after a timeout).
                self.t_persist = None
                self.persist_shift = 0
                self.snd_nxt = self.snd_una
        if self.in_recovery and self.rxt_log:
            self._lost_retransmissions(now)

    def _lost_retransmissions(self, now: Instant) -> None:
        """A retransmission lost during SACK recovery: RFC 6675 alone only finds it by
        the RTO (one second at least here, and the whole window stalls meanwhile).
        RFC 8985 (RACK) 6.2's rule, applied to our recovery retransmissions: a segment
        is lost once a segment sent after it was delivered and a reordering window has
        passed; an ACK arriving RTT + reo_wnd after the retransmission was sent was
        triggered by something sent later, so the retransmission, still neither ACKed
        nor SACKed, is deemed lost. HighRxt goes back to it and NextSeg (rule 1) sends
        it again; the pipe stops counting it."""
        srtt = self.rtt.srtt
        if srtt is None:
            return
        wait = srtt + max(srtt // 4, RACK_MIN_REO_WND)   # RACK.rtt + RACK.reo_wnd (6.2)
        una = self.snd_una
        lowest = None
        keep = []
        for entry in self.rxt_log:
            seq, end, sent = entry
            if seq_le(end, una) or any(seq_le(s, seq) and seq_le(end, e)
                                       for s, e in self.sacked):
                continue                  # delivered
            if now - sent < wait:
                keep.append(entry)
                continue
            if lowest is None or seq_lt(seq, lowest):
                lowest = seq
        self.rxt_log = keep
        if lowest is not None:
            self.layer.stats.rxtlost += 1
            if seq_lt(lowest, una):
                lowest = una
            if seq_lt(lowest, self.high_rxt):
                self.high_rxt = lowest

    def _ack_advances(self, ack: int, now: Instant, seg: Segment) -> None:
        """SND.UNA < SEG.ACK: new data (or our SYN/FIN) acknowledged."""
        acked = seq_sub(ack, self.snd_una)
        flight_before = self.flight
        if self.snd_una == self.iss:
            acked -= 1   # the SYN's sequence number is not data for congestion control
        # Round-trip sample: RFC 7323 4.1 from TSecr, else the timed segment with Karn's
        # rule (RFC 6298 3: never from a retransmitted segment; rtt_seq is cleared then).
        ts = seg.opts.timestamp
        if self.ts_ok and ts is not None and ts[1]:
            r = seq_sub(self.ts_now(now), ts[1])
            if self.rexmt_tsval is not None and seq_lt(ts[1], self.rexmt_tsval):
                # The ACK echoes a transmission older than our last timeout
                # retransmission: an ACK of the original that got lost, answered again
                # only because of the duplicate (the Eifel case, RFC 3522). Its "RTT"
                # includes the whole timeout; taking it would feed RTO into SRTT and
                # inflate RTO without bound. Karn's rule, applied to timestamps.
                self.layer.stats.rttskipped += 1
            elif r >= 0:
                self.rtt.sample(max(r, 1) * 1000)
                self.layer.stats.rttupdated += 1
            if self.rexmt_tsval is not None and seq_ge(ts[1], self.rexmt_tsval):
                self.rexmt_tsval = None
        elif self.rtt_seq is not None and seq_gt(ack, self.rtt_seq):
            self.rtt.sample(now - self.rtt_time)
            self.layer.stats.rttupdated += 1
            self.rtt_seq = None
        # Free acknowledged bytes from the send buffer.
        freed = seq_sub(ack, self.snd_buf_seq)
        if freed > 0:
            n = min(freed, len(self.snd_buf))
            self.snd_buf.consume(n)
            self.snd_buf_seq = seq_add(self.snd_buf_seq, n)
            if n:
                self.layer.wake(self)
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if self.sacked:
            self._prune_scoreboard()
        self.rexmt_shift = 0
        # Congestion control and loss recovery.
        if self.in_recovery:
            if seq_ge(ack, self.recover):
                # Full acknowledgment: leave recovery. RFC 6582 3.2 step 3 option (1):
                # cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS); RFC 6675 likewise
                # ends recovery at RecoveryPoint.
                self.in_recovery = False
                self.rxt_log = ()
                self.cc.cwnd = min(self.cc.ssthresh, max(self.flight, self.smss) + self.smss)
            else:
                self.layer.stats.partialack += 1
                if not self.sack_ok:
                    # RFC 6582 3.2 step 4: retransmit the first unacknowledged segment,
                    # deflate cwnd by the amount acked, add back one SMSS if >= SMSS.
                    self._retransmit_una(now)
                    back = self.smss if acked >= self.smss else 0
                    self.cc.cwnd = max(self.cc.cwnd - acked + back, self.smss)
        elif self.state.established and acked > 0 and self._cwnd_limited(flight_before):
            self.cc.on_ack(acked, now, self.rtt.srtt)
        self.dupacks = 0
        # RFC 6298 5.2/5.3: stop the timer when all is acked, else restart it.
        if self.snd_una == self.snd_max:
            self.t_rexmt = None
        else:
            self.t_rexmt = now + self.rtt.rto
        # RFC 8985 7.2: restart the PTO on an ACK of new data; a probe is answered.
        self.tlp_high = None
        if self.snd_una == self.snd_max:
            self.t_tlp = None
        else:
            self._arm_probe(now, self.snd_max)

    def _cwnd_limited(self, flight: int) -> bool:
        """Grow cwnd only while it is what limits sending (RFC 5681 3.1 / RFC 7661): an
        application- or receiver-limited sender would otherwise inflate it without ever
        testing it. In slow start, half used is enough (Linux tcp_is_cwnd_limited)."""
        cwnd = self.cc.cwnd
        if self.cc.in_slow_start:
            return 2 * flight >= cwnd
        return flight + self.smss >= cwnd

    def _dup_ack(self, now: Instant) -> None:
        self.dupacks += 1
        if self.in_recovery:
            if not self.sack_ok:
                # RFC 6582 3.2 step 3: inflate cwnd by SMSS for each additional dup ACK.
                self.cc.cwnd += self.smss
            return
        lost = self.sack_ok and self._is_lost(self.snd_una)
        if self.tlp_high is not None and self.sacked and \
                seq_ge(self.sacked[-1][1], self.tlp_high):
            # RFC 8985 7.4 with 6.2: the loss probe was delivered and SND.UNA, sent before
            # it, was not: lost, whatever the duplicate ACK count.
            lost = True
            self.tlp_high = None
        if self.dupacks >= DUPTHRESH or lost:
            # RFC 6582 3.2 step 2 / 4.1: no new recovery unless the ACK covers more than
            # "recover" (guards against a second reduction after a timeout).
            if not seq_gt(self.snd_una, self.recover) and self.recover != self.iss:
                if seq_lt(self.snd_una, self.recover):
                    return
            self._enter_recovery(now)

    def _enter_recovery(self, now: Instant) -> None:
        stats = self.layer.stats
        stats.fastrexmt += 1
        stats.recovery += 1
        self.in_recovery = True
        self.recover = self.snd_max
        self.rxt_log = []
        self.cc.on_congestion(now, self.flight)
        self.rtt_seq = None
        if self.sack_ok:
            # RFC 6675 5 step (4): RecoveryPoint = HighData, cwnd = ssthresh, retransmit
            # the first segment presumed dropped whatever the pipe says, HighRxt = its end;
            # the pipe loop in _output does the rest.
            stats.sack_recovery += 1
            self.rescue_rxt = None
            self._retransmit_una(now)
            self.high_rxt = seq_add(self.snd_una, min(self.smss, self.flight))
        else:
            # RFC 6582 3.2 step 2-3: retransmit, cwnd = ssthresh + 3*SMSS.
            self._retransmit_una(now)
            self.cc.cwnd = self.cc.ssthresh + DUPTHRESH * self.smss

    def _retransmit_una(self, now: Instant) -> None:
        n = min(self.smss, seq_sub(self.snd_max, self.snd_una))
        end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
        data_len = max(0, min(n, seq_sub(end_data, self.snd_una)))
        fin = self.fin_queued and seq_add(self.snd_una, data_len) == end_data and \
            seq_gt(self.snd_max, end_data)
        if data_len or fin:
            self._send_data(self.snd_una, data_len, fin, now)

    # -- SACK scoreboard (RFC 6675) -------------------------------------------------------

    def _update_scoreboard(self, blocks, ack: int) -> bool:
        """Merge reported blocks; True if any byte is newly SACKed."""
        grew = False
        base = ack if seq_gt(ack, self.snd_una) else self.snd_una
        for left, right in blocks:
            # Ignore blocks below the cumulative ACK (D-SACK, RFC 2883) or beyond SND.MAX.
            if not seq_lt(left, right) or seq_le(right, base) or seq_gt(right, self.snd_max):
                continue
            if seq_lt(left, base):
                left = base
            grew |= self._sack_insert(left, right)
        return grew

    def _sack_insert(self, left: int, right: int) -> bool:
        sb = self.sacked
        una = self.snd_una
        lo, hi = seq_sub(left, una), seq_sub(right, una)
        before = sum(seq_sub(e, s) for s, e in sb)
        out = []
        placed = False
        for s, e in sb:
            so, eo = seq_sub(s, una), seq_sub(e, una)
            if eo < lo:
                out.append([s, e])
            elif so > hi:
                if not placed:
                    out.append([seq_add(una, lo), seq_add(una, hi)])
                    placed = True
                out.append([s, e])
            else:
                lo, hi = min(lo, so), max(hi, eo)
        if not placed:
            out.append([seq_add(una, lo), seq_add(una, hi)])
        if len(out) > MAX_SACK_SCOREBOARD:
            out = out[:MAX_SACK_SCOREBOARD]
        self.sacked = out
        return sum(seq_sub(e, s) for s, e in out) > before

    def _prune_scoreboard(self) -> None:
        una = self.snd_una
        out = []
        for s, e in self.sacked:
            if seq_le(e, una):
                continue
            out.append([una if seq_lt(s, una) else s, e])
        self.sacked = out

    def _offsets(self) -> list[tuple[int, int]]:
        """The scoreboard as offsets from SND.UNA (one conversion per computation)."""
        una = self.snd_una
        return [(seq_sub(s, una), seq_sub(e, una)) for s, e in self.sacked]

    def _is_lost(self, seq: int) -> bool:
        """RFC 6675 4 IsLost: DupThresh SACKed segments above, counted in bytes: more than
        (DupThresh - 1) * SMSS bytes SACKed above ``seq``."""
        if not self.sacked:
            return False
        x = seq_sub(seq, self.snd_una)
        above = 0
        for s, e in self._offsets():
            if s <= x < e:
                return False
            if e > x:
                above += e - max(s, x)
        return above > (DUPTHRESH - 1) * self.smss

    def _holes(self):
        """(start, end, sacked_above) offsets of each unSACKed range below the highest
        SACKed byte; ``sacked_above`` is the same for every byte of a hole."""
        blocks = self._offsets()
        above = sum(e - s for s, e in blocks)
        pos = 0
        for s, e in blocks:
            if s > pos:
                yield pos, s, above
            above -= e - s
            pos = max(pos, e)

    def _pipe(self) -> int:
        """RFC 6675 4 SetPipe, hole by hole: octets not lost count once, octets
        retransmitted (below HighRxt) count again; all octets above the highest SACKed
        one are in flight."""
        thresh = (DUPTHRESH - 1) * self.smss
        hr = seq_sub(self.high_rxt, self.snd_una)
        pipe = 0
        for a, b, above in self._holes():
            if above <= thresh:
                pipe += b - a
            if hr > a:
                pipe += min(b, hr) - a
        top = seq_sub(self.sacked[-1][1], self.snd_una) if self.sacked else 0
        return pipe + max(0, seq_sub(self.snd_max, self.snd_una) - max(top, 0))

    def _next_seg(self) -> tuple[int, int, int] | None:
        """RFC 6675 4 NextSeg for retransmissions: ``(seq, length, rule)`` with rule 1 (a
        lost octet) or 3 (an unSACKed octet below the highest SACKed one), or None. Rule
        (2), new data, is the caller's and goes before rule 3."""
        thresh = (DUPTHRESH - 1) * self.smss
        hr = max(0, seq_sub(self.high_rxt, self.snd_una))
        rule3 = None
        for a, b, above in self._holes():
            start = max(a, hr)
            if start >= b:
                continue
            n = min(self.smss, b - start)
            if above > thresh:
                return seq_add(self.snd_una, start), n, 1
            if rule3 is None:
                rule3 = (seq_add(self.snd_una, start), n, 3)
        return rule3

    # -- text and FIN ---------------------------------------------------------------------

    def _process_text(self, seg: Segment, now: Instant) -> None:
        stats = self.layer.stats
        payload = seg.payload
        st = self.state
        if payload and not st.can_receive_data:
            payload = b""  # CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "ignore the text"
        if payload and self.orphaned:
            # RFC 9293 3.10.7.4 / RFC 1122 4.2.2.13: data for a closed socket cannot be
            # delivered: reset the connection (what Linux and BSD do).
            stats.rcvafterclose += 1
            self._send_rst(self.snd_nxt, now)
            self._drop(_errno.ECONNRESET, now)
            return
        off = seq_sub(seg.seq, self.rcv_nxt)
        n = len(payload)
        room = self.rcv_buf.free
        fin = bool(seg.flags & FIN)
        if off + n > room:
            n = max(0, room - off)
            payload = payload[:n]
            fin = False
        if n:
            if off == 0:
                self.rcv_buf.write(payload)
                stats.rcvpack += 1
                stats.rcvbyte += n
                if n > self.smss:
                    stats.rcvgso += 1
                advance = n
                if self.ooo:
                    self.ooo.shift(n)
                    extra = self.ooo.take_front()
                    if extra:
                        self.rcv_buf.commit(extra)
                        advance += extra
                        # RFC 5681 4.2: an ACK SHOULD be sent at once when a segment
                        # fills in all or part of a gap.
                        self.ack_now = True
                self.rcv_nxt = seq_add(self.rcv_nxt, advance)
                if self.rcv_shut:
                    # shutdown(SHUT_RD): acknowledge and discard (BSD sorflush).
                    self.rcv_buf.consume(len(self.rcv_buf))
                self.sack_recent = [s for s in self.sack_recent if seq_gt(s, self.rcv_nxt)]
                self.unacked_bytes += n
                if self.rcv_auto:
                    self._autosize_rcv(n, seg, now)
                # RFC 1122 4.2.3.2 / RFC 5681 4.2: ACK at least every second full-sized
                # segment; otherwise delay up to delack_time (< 500 ms).
                if not self.config.delack or self.unacked_bytes >= 2 * self._rcv_mss():
                    self.ack_now = True
                elif self.t_delack is None:
                    self.t_delack = now + self.config.delack_time
                self.layer.wake(self)
            else:
                # Out of order: keep it in place if a hole can be tracked (bounded memory),
                # and ACK at once so the sender sees the duplicate (RFC 5681 4.2 / 3.2).
                if self.ooo.add(off, off + n):
                    self.rcv_buf.write_at(off, payload)
                    stats.rcvoopack += 1
                    stats.rcvoobyte += n
                    self.sack_recent = [seg.seq] + [s for s in self.sack_recent if s != seg.seq][:3]
                else:
                    stats.rcvoodrop += 1
                    fin = False
                self.ack_now = True
        if fin:
            self.fin_seq = seq_add(seg.seq, n)
        if self.fin_seq is not None and self.fin_seq == self.rcv_nxt and not self.peer_fin:
            self._fin_arrived(now)

    def _autosize_rcv(self, n: int, seg: Segment, now: Instant) -> None:
        """Receive buffer autosizing (NetBSD tcp_input, after FreeBSD): count the bytes
        that arrive in one round trip; when the peer filled more than 7/8 of the buffer
        in it, the buffer is what holds the transfer back, so it grows - doubling, as
        FreeBSD and Linux grow it, by at least recvbuf_inc - up to recvbuf_max.

        A pure receiver has no RTT samples of its own; the echoed timestamp gives one
        (Linux tcp_rcv_rtt_measure_ts), at millisecond resolution, so 1 ms is the floor.
        """
        ts = seg.opts.timestamp
        if ts is not None and ts[1]:
            sample = ((self.ts_now(now) - ts[1]) & MASK) * 1000
            if sample < 60_000_000:
                self.rcv_rtt = sample
        if not self.rfbuf_ts:
            self.rfbuf_ts, self.rfbuf_cnt = now, n
            return
        self.rfbuf_cnt += n
        if now - self.rfbuf_ts < max(self.rtt.srtt or 0, self.rcv_rtt, AUTOSIZE_MIN_INTERVAL):
            return
        cap = self.rcv_buf.capacity
        top = self.config.recvbuf_max
        if self.rfbuf_cnt > cap // 8 * 7 and cap < top:
            self.rcv_buf.grow(min(max(cap + self.config.recvbuf_inc, 2 * cap), top))
            self.layer.stats.rcvbufauto += 1
            self.ack_now = True       # tell the sender about the room at once
        self.rfbuf_ts, self.rfbuf_cnt = now, 0

    def _autosize_snd(self) -> None:
        """Send buffer autosizing (NetBSD tcp_output): grow when the peer's window is
        most of the buffer, the buffer is nearly full and the windows would let all of
        its unsent data go - the buffer, not the network, is then the limit."""
        buf = self.snd_buf
        cap = buf.capacity
        top = self.config.sendbuf_max
        queued = len(buf)
        if cap < top and self.snd_wnd // 4 * 5 >= cap and queued >= cap // 8 * 7 and \
                min(self.snd_wnd, self.cc.cwnd) >= queued - self.flight:
            buf.grow(min(max(cap + self.config.sendbuf_inc, 2 * cap), top))
            self.layer.stats.sndbufauto += 1
            self.layer.wake(self)     # room for the writer

    def _tso_payload(self) -> int:
        """Bytes of payload one super-segment may carry on the current route: a whole
        number of SMSS under the IP packet limit, 0 where the route takes none."""
        layer = self.layer
        limit = layer.route_tso(self.remote_ip) if layer.csum_offload else 0
        self.tso_gen = layer.route_gen
        hdr = self.ip_header + 20 + (12 if self.ts_ok else 0)
        n = (limit - hdr) // self.smss * self.smss if limit else 0
        self.tso = n if n >= 2 * self.smss else 0
        return self.tso

    def _fin_arrived(self, now: Instant) -> None:
        """Eighth, check the FIN bit (RFC 9293 3.10.7.4)."""
        self.peer_fin = True
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self.ack_now = True
        st = self.state
        if st in (State.SYN_RECEIVED, State.ESTABLISHED):
            self._set_state(State.CLOSE_WAIT, now)
        elif st == State.FIN_WAIT_1:
            fin_acked = self.snd_una == self.snd_max and self.fin_queued and seq_gt(
                self.snd_max, seq_add(self.snd_buf_seq, len(self.snd_buf)))
            # "If our FIN has been ACKed (perhaps in this segment), then enter TIME-WAIT
            # ... otherwise enter the CLOSING state" (simultaneous close, figure 13).
            self._set_state(State.TIME_WAIT if fin_acked else State.CLOSING, now)
        elif st == State.FIN_WAIT_2:
            self._set_state(State.TIME_WAIT, now)
        self.layer.wake(self)

    # -- timers ---------------------------------------------------------------------------

    def _arm_keep(self, now: Instant) -> None:
        if self.keepalive or not self.state.established:
            # Before ESTABLISHED the keep timer is the connection-establishment limit (BSD
            # TCPTV_KEEP_INIT, 75 s); after, the keepalive idle time.
            self.t_keep = now + (self.config.keepidle if self.state.established else seconds(75))
        else:
            self.t_keep = None

    def set_keepalive(self, on: bool, now: Instant) -> None:
        self.keepalive = on
        if self.state.established and self.state != State.TIME_WAIT:
            self._arm_keep(now)
            self.layer.touch(self)

    def time_wait_reusable(self, seg: Segment) -> bool:
        """A new SYN may reopen a TIME-WAIT connection (RFC 9293 3.10.7.4 note, RFC 1122
        4.2.2.13, RFC 6191): with timestamps if its TSval is newer than TS.Recent, without
        if its sequence number is beyond RCV.NXT."""
        if self.ts_ok and seg.opts.timestamp is not None:
            return seq_gt(seg.opts.timestamp[0], self.ts_recent)
        return seq_gt(seg.seq, self.rcv_nxt)

    def reap(self, now: Instant) -> None:
        """Close at once (TIME-WAIT reused by a new SYN)."""
        self._set_state(State.CLOSED, now)

    def icmp_error(self, kind: str, mtu: int | None, now: Instant) -> None:
        """An ICMP error quoting one of our segments (RFC 5927 checks done by the layer).

        ``frag_needed``: RFC 1191 path MTU discovery: shrink the MSS and resend from SND.UNA.
        ``refused`` (protocol/port unreachable): a hard error while connecting (RFC 1122
        4.2.3.9: codes 2-4), soft otherwise (RFC 5461). Anything else is a soft error,
        reported only if the connection then times out."""
        if kind == "frag_needed" and mtu:
            mss = mtu - self.ip_header - 20
            if 68 <= mtu and mss < self.our_mss:
                self.our_mss = mss
                self.mtu = mtu
                self._update_smss()
                self.snd_nxt = self.snd_una     # resend what was too big (BSD tcp_mtudisc)
                self._output(now)
            return
        if kind == "refused" and self.state == State.SYN_SENT:
            self._drop(_errno.ECONNREFUSED, now)
            return
        self.soft_error = _errno.ECONNREFUSED if kind == "refused" else _errno.EHOSTUNREACH

    def on_timer(self, now: Instant) -> None:
        if self.t_2msl is not None and now >= self.t_2msl:
            self.t_2msl = None
            # TIME-WAIT over (RFC 9293 3.10.8), or an orphaned FIN-WAIT-2 gave up.
            self._set_state(State.CLOSED, now)
            return
        if self.t_rexmt is not None and now >= self.t_rexmt:
            self.t_rexmt = None
            self._rexmt_timeout(now)
            if self.state == State.CLOSED:
                return
        if self.t_tlp is not None and now >= self.t_tlp:
            self.t_tlp = None
            self._probe_timeout(now)
        if self.t_persist is not None and now >= self.t_persist:
            self.t_persist = None
            self._persist_timeout(now)
        if self.t_keep is not None and now >= self.t_keep:
            self.t_keep = None
            self._keep_timeout(now)
            if self.state == State.CLOSED:
                return
        if self.t_delack is not None and now >= self.t_delack:
            self.t_delack = None
            if self.unacked_bytes:
                self.layer.stats.delack += 1
                self.ack_now = True
        self._output(now)

    def _arm_probe(self, now: Instant, end: int) -> None:
        """RFC 8985 7.2: PTO = 2 * SRTT (+ the worst-case delayed ACK when one segment is
        in flight), no later than the RTO; only with SACK and an RTT sample."""
        srtt = self.rtt.srtt
        if not self.sack_ok or srtt is None or not self.state.established or \
                self.t_persist is not None:
            self.t_tlp = None
            return
        pto = max(2 * srtt, PTO_MIN)
        if seq_sub(end, self.snd_una) <= self.smss:
            pto += self.config.delack_time
        deadline = now + pto
        if self.t_rexmt is not None and deadline >= self.t_rexmt:
            self.t_tlp = None
            return
        self.t_tlp = deadline

    def _probe_timeout(self, now: Instant) -> None:
        """RFC 8985 7.3: the PTO fired with data outstanding and no ACK since. Send one
        probe: new data if the windows allow, else the last segment sent again; then wait
        for the RTO, not another PTO. In SACK recovery (our extension) the probe is the
        oldest recovery retransmission still undelivered, which 6.2 cannot judge while
        nothing sent later is acknowledged."""
        if self.snd_una == self.snd_max or not self.state.established or \
                self.t_persist is not None:
            return
        stats = self.layer.stats
        end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
        if self.in_recovery:
            if not self.rxt_log:
                return
            seq, end, _sent = self.rxt_log.pop(0)
            if seq_lt(seq, self.snd_una):
                seq = self.snd_una
            if not seq_lt(seq, end):
                return
            stats.tlp_probes += 1
            self._send_data(seq, seq_sub(end, seq), False, now)
        else:
            avail = seq_sub(end_data, self.snd_nxt)
            usable = seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)
            if avail > 0 and usable > 0 and self.snd_nxt == self.snd_max:
                n = min(avail, usable, self.smss)
                stats.tlp_probes += 1
                self._send_data(self.snd_nxt, n, False, now)
                self.snd_nxt = seq_add(self.snd_nxt, n)
            else:
                last = self.snd_max if seq_le(self.snd_max, end_data) else end_data
                if not seq_gt(last, self.snd_una):
                    return            # only a FIN is outstanding: the RTO resends it
                start = seq_add(last, -min(self.smss, seq_sub(last, self.snd_una)))
                stats.tlp_probes += 1
                self._send_data(start, seq_sub(last, start), False, now)
        self.tlp_high = self.snd_max
        self.t_tlp = None
        if self.t_rexmt is None:
            self.t_rexmt = now + self.rtt.rto

    def _rexmt_timeout(self, now: Instant) -> None:
        """RFC 6298 5.4-5.6 plus RFC 5681 3.1 and RFC 6582 4.1 on timeout."""
        stats = self.layer.stats
        self.rexmt_shift += 1
        limit = self.config.syn_retries if not self.state.established else self.config.data_retries
        if self.rexmt_shift > limit:
            stats.timeoutdrop += 1
            if self.state.synchronized:
                self._send_rst(self.snd_nxt, now)
            self._drop(self.soft_error or _errno.ETIMEDOUT, now)
            return
        stats.rexmttimeo += 1
        self.t_tlp = None
        self.tlp_high = None
        self.rtt.back_off()                  # (5.5) RTO <- RTO * 2
        self.rtt_seq = None                  # Karn: no sample from retransmitted data
        self.rexmt_tsval = self.ts_now(now)  # ... nor from ACKs echoing older TSvals
        if self.snd_una == self.iss:
            # Our SYN is not acknowledged yet (SYN-SENT, SYN-RECEIVED, or a FIN-WAIT-1
            # reached from SYN-RECEIVED): the SYN goes again, data and FIN after it.
            self.snd_nxt = self.iss
            self.syn_queued = True
            return
        if self.rexmt_shift == 1:
            self.cc.on_rto(now, self.flight)
        else:
            self.cc.cwnd = self.smss
        self.in_recovery = False
        self.rxt_log = ()
        self.dupacks = 0
        self.recover = self.snd_max          # RFC 6582 4.1
        self.sacked = []                     # RFC 2018 8: forget SACKed bits after RTO
        self.high_rxt = self.snd_una
        self.snd_nxt = self.snd_una          # (5.4) retransmit from the earliest unacked

    def _persist_timeout(self, now: Instant) -> None:
        """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: probe a zero window with one byte."""
        stats = self.layer.stats
        stats.persisttimeo += 1
        off = seq_sub(self.snd_nxt, self.snd_buf_seq)
        avail = len(self.snd_buf) - off
        usable = seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)
        if avail > 0 and usable > 0 and self.snd_una == self.snd_max:
            # RFC 1122 4.2.3.4: the sender's SWS "override timeout": a window too small
            # for a full segment is used after all once the timer runs out.
            n = min(avail, usable, self.smss)
            self._send_data(self.snd_nxt, n, False, now)
            self.snd_nxt = seq_add(self.snd_nxt, n)
            return
        if self.snd_wnd == 0 and avail > 0:
            stats.sndprobe += 1
            self._send_data(self.snd_nxt, 1, False, now)
            self.snd_nxt = seq_add(self.snd_nxt, 1)
            if seq_gt(self.snd_nxt, self.snd_max):
                self.snd_max = self.snd_nxt
        if self.persist_shift < 12:
            self.persist_shift += 1
        self._arm_persist(now)

    def _arm_persist(self, now: Instant) -> None:
        if self.snd_wnd > 0:
            # The window is open but too small to use (sender SWS avoidance): RFC 1122
            # 4.2.3.4's override timeout, "in the range 0.1 - 1.0 seconds".
            self.t_persist = now + min(self.rtt.rto, SWS_OVERRIDE)
            return
        # A shut window: probe with BSD's backed-off persist interval (5 s .. 60 s).
        base = max(self.rtt.srtt or self.rtt.rto, self.config.rto_min)
        t = min(max(base << self.persist_shift, PERSIST_MIN), PERSIST_MAX)
        self.t_persist = now + t

    def _keep_timeout(self, now: Instant) -> None:
        stats = self.layer.stats
        if not self.state.established:
            # Connection-establishment timer expired (BSD tcp_keepinit).
            stats.keeptimeo += 1
            self._drop(_errno.ETIMEDOUT, now)
            return
        if not self.keepalive or self.state == State.TIME_WAIT:
            return
        idle = now - self.last_rcv
        if idle < self.config.keepidle:
            self.t_keep = self.last_rcv + self.config.keepidle
            return
        stats.keeptimeo += 1
        if self.keep_probes >= self.config.keepcnt:
            stats.keepdrops += 1
            self._send_rst(self.snd_nxt, now)
            self._drop(_errno.ETIMEDOUT, now)
            return
        # RFC 1122 4.2.3.6: a probe is a segment with SEG.SEQ = SND.NXT - 1 and no data;
        # the peer answers with an ACK for the sequence it expects.
        stats.keepprobe += 1
        self.keep_probes += 1
        self._emit(seq_add(self.snd_una, -1), ACK, b"", now)
        self.t_keep = now + self.config.keepintvl

    # -- output ---------------------------------------------------------------------------

    def _advertisable_window(self) -> int:
        return min(self.rcv_buf.free, 0xFFFF << self.rcv_wscale)

    def _window_field(self) -> int:
        """The window to send, never shrinking the right edge (RFC 9293 3.8.6.2.2 MUST-34 /
        RFC 7323 2.4) and not moving it by less than an SMSS (receiver SWS avoidance)."""
        cur = self.rcv_wnd
        win = self._advertisable_window()
        if win < cur:
            win = cur
        elif win - cur < min(self.rcv_buf.capacity // 2, self._rcv_mss()):
            win = cur
        field = min(win >> self.rcv_wscale, 0xFFFF)
        edge = seq_add(self.rcv_nxt, field << self.rcv_wscale)
        if seq_gt(edge, self.rcv_adv):
            self.rcv_adv = edge
        return field

    def _options(self, syn: bool, now: Instant) -> bytes:
        ts = (self.ts_now(now), self.ts_recent) if (self.ts_ok or (syn and self.req_ts and (
            self.state == State.SYN_SENT or self.ts_ok))) else None
        if syn:
            active = self.state == State.SYN_SENT
            ws = self.rcv_wscale if (self.ws_ok or (active and self.req_ws)) else None
            sack = self.sack_ok or (active and self.req_sack)
            if active and not self.ts_ok and ts is not None:
                ts = (ts[0], 0)
            return encode_options(self.our_mss, ws, sack, ts)
        blocks = ()
        if self.sack_ok and self.ooo:
            blocks = self._sack_blocks()
            if blocks:
                self.layer.stats.sackblocks_sent += 1
        if ts is None and not blocks:
            return b""
        return encode_options(timestamp=ts, sack_blocks=blocks)

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """RFC 2018 4: the block holding the most recent segment first, then the others
        most recently reported first."""
        nxt = self.rcv_nxt
        ranges = [(seq_add(nxt, s), seq_add(nxt, e)) for s, e in self.ooo.ranges()]
        out = []
        for recent in self.sack_recent:
            for r in ranges:
                if r not in out and seq_ge(recent, r[0]) and seq_lt(recent, r[1]):
                    out.append(r)
        out.extend(r for r in ranges if r not in out)
        return tuple(out[:4])

    def _emit(self, seq: int, flags: int, payload, now: Instant, gso: int = 0) -> None:
        syn = bool(flags & SYN)
        if self.state != State.SYN_SENT or not syn:
            flags |= ACK
        opts = self._options(syn, now)
        win = self._window_field() if not syn else min(self.rcv_buf.free, 0xFFFF)
        if syn:
            edge = seq_add(self.rcv_nxt, win)
            if self.state != State.SYN_SENT and seq_gt(edge, self.rcv_adv):
                self.rcv_adv = edge
        ack = self.rcv_nxt if flags & ACK else 0
        partial = self.layer.csum_offload
        seg = build_segment(self.local_ip, self.remote_ip, self.local_port, self.remote_port,
                            seq, ack, flags, win, opts, payload, partial=partial)
        if flags & ACK:
            self.last_ack_sent = ack
            self.ack_now = False
            self.unacked_bytes = 0
            self.t_delack = None
        self.last_snd = now
        self.layer.emit(self, seg, now, gso if partial else None)

    def _send_rst(self, seq: int, now: Instant, with_ack: bool = True) -> None:
        flags = RST | (ACK if with_ack else 0)
        ack = self.rcv_nxt if with_ack else 0
        seg = build_segment(self.local_ip, self.remote_ip, self.local_port, self.remote_port,
                            seq, ack, flags, 0)
        self.layer.stats.sndrst += 1
        self.layer.emit(self, seg, now)

    def _send_data(self, seq: int, length: int, fin: bool, now: Instant) -> None:
        """Transmit ``length`` bytes from the send buffer starting at ``seq`` (+ FIN)."""
        stats = self.layer.stats
        payload = self.snd_buf.peek(seq_sub(seq, self.snd_buf_seq), length) if length else b""
        flags = ACK | (FIN if fin else 0)
        end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
        if length and seq_add(seq, length) == end_data:
            flags |= PSH   # BSD: push when this segment empties the send buffer
        rexmit = seq_lt(seq, self.snd_max)
        if rexmit:
            stats.sndrexmitpack += 1
            stats.sndrexmitbyte += length
            self.retransmits += 1
            if self.in_recovery and self.sack_ok and length:
                log = self.rxt_log
                if len(log) >= MAX_RXT_LOG:
                    del log[0]
                log.append((seq, seq_add(seq, length), now))
            if self.rtt_seq is not None and seq_le(seq, self.rtt_seq):
                self.rtt_seq = None  # Karn's rule
        elif length:
            stats.sndpack += 1
            stats.sndbyte += length
            if length > self.smss:
                stats.sndgso += 1
            if not self.ts_ok and self.rtt_seq is None:
                self.rtt_seq = seq
                self.rtt_time = now
                stats.segstimed += 1
        if length and self.tlp_high is None:
            self._arm_probe(now, seq_add(seq, length))
        self._emit(seq, flags, payload, now, self.smss if length > self.smss else 0)
        self.last_data_snd = now
        end = seq_add(seq, length + (1 if fin else 0))
        if seq_gt(end, self.snd_max):
            self.snd_max = end
        if self.t_rexmt is None and self.t_persist is None:
            self.t_rexmt = now + self.rtt.rto    # RFC 6298 5.1

    def _output(self, now: Instant) -> None:
        st = self.state
        if st in (State.CLOSED, State.LISTEN):
            return
        sent = False
        if self.syn_queued and self.snd_nxt == self.iss:
            self.syn_queued = False
            flags = SYN if st == State.SYN_SENT else SYN | ACK
            if seq_lt(self.iss, self.snd_max):
                self.layer.stats.sndrexmitpack += 1
                self.retransmits += 1
            else:
                self.layer.stats.sndctrl += 1
                if st == State.SYN_SENT:
                    self.layer.stats.connattempt += 1
                # Time the SYN (RFC 6298 2 allows it); Karn's rule clears this on a
                # retransmission.
                self.rtt_seq = self.iss
                self.rtt_time = now
                self.layer.stats.segstimed += 1
            self._emit(self.iss, flags, b"", now)
            self.snd_nxt = seq_add(self.iss, 1)
            if seq_gt(self.snd_nxt, self.snd_max):
                self.snd_max = self.snd_nxt
            if self.t_rexmt is None:
                self.t_rexmt = now + self.rtt.rto
            return
        if st in (State.SYN_SENT, State.SYN_RECEIVED, State.TIME_WAIT):
            if self.ack_now and st != State.SYN_SENT:
                self._emit(self._ack_seq(), ACK, b"", now)
            return
        if self.in_recovery and self.sack_ok:
            # Conservative SACK recovery sends everything, new data included; a FIN
            # waits for the end of recovery.
            sent = self._output_sack_recovery(now)
        else:
            sent = self._output_window(now)
        if not sent and self.ack_now:
            self.layer.stats.sndacks += 1
            self._emit(self._ack_seq(), ACK, b"", now)
        if self.t_rexmt is None and self.t_persist is None and self.snd_max != self.snd_una:
            # Invariant: data in flight always has a timer that will recover it.
            self.t_rexmt = now + self.rtt.rto

    def _ack_seq(self) -> int:
        """The sequence number of a bare ACK: SND.MAX, not SND.NXT, while retransmitting
        after a timeout (BSD tcp_output): SND.NXT then points into data the peer may
        already hold, the ACK would be out of its window, dropped with its news, and
        answered - by an ACK just as unacceptable. In persist state SND.MAX may lie
        beyond the window, so SND.NXT it is."""
        return self.snd_nxt if self.t_persist is not None else self.snd_max

    def _output_sack_recovery(self, now: Instant) -> bool:
        """RFC 6675 5 step (C): while cwnd - pipe >= 1 SMSS, send NextSeg: a lost
        octet (rule 1), else new data (rule 2), else an unSACKed octet (rule 3)."""
        sent = False
        for _ in range(64):
            if self.cc.cwnd - self._pipe() < self.smss:
                break
            nxt = self._next_seg()
            if nxt is None or nxt[2] == 3:
                end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
                avail = seq_sub(end_data, self.snd_nxt)
                usable = seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)
                if avail > 0 and usable >= min(avail, self.smss) and self.snd_nxt == self.snd_max:
                    n = min(avail, usable, self.smss)
                    self._send_data(self.snd_nxt, n, False, now)
                    self.snd_nxt = seq_add(self.snd_nxt, n)
                    sent = True
                    continue
                if nxt is None:
                    sent |= self._rescue_retransmission(now)
                    break
            seq, length, _rule = nxt
            self._send_data(seq, length, False, now)
            end = seq_add(seq, length)
            if seq_gt(end, self.high_rxt):
                self.high_rxt = end
            sent = True
        return sent

    def _rescue_retransmission(self, now: Instant) -> bool:
        """RFC 6675 4 NextSeg rule (4): once per recovery, resend the segment holding the
        highest outstanding unSACKed octet, so a lost tail does not wait for the RTO."""
        if self.rescue_rxt is not None and not seq_gt(self.snd_una, self.rescue_rxt):
            return False
        top = self.sacked[-1][1] if self.sacked else self.snd_una
        end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
        last = self.snd_max if seq_le(self.snd_max, end_data) else end_data  # data only
        if not seq_gt(last, top):
            return False
        start = seq_add(last, -min(self.smss, seq_sub(last, top)))
        self._send_data(start, seq_sub(last, start), False, now)
        self.rescue_rxt = self.recover     # RescueRxt = RecoveryPoint; HighRxt untouched
        return True

    def _output_window(self, now: Instant) -> bool:
        """Send new (or go-back-N retransmitted) data from SND.NXT within min(wnd, cwnd)."""
        sent = False
        if self.snd_una == self.snd_max and self.last_data_snd and len(self.snd_buf) and \
                now - self.last_data_snd > self.rtt.rto:
            # RFC 5681 4.1: restart from the restart window after an idle period > RTO.
            self.cc.after_idle(now)
        if self.snd_auto:
            self._autosize_snd()
        maxseg = self.tso if self.tso_gen == self.layer.route_gen else self._tso_payload()
        smss = self.smss
        if maxseg < smss:
            maxseg = smss
        st = self.state
        fin_allowed = self.fin_queued and st in (State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK)
        for _ in range(10_000):
            end_data = seq_add(self.snd_buf_seq, len(self.snd_buf))
            off = seq_sub(self.snd_nxt, self.snd_buf_seq)
            if off < 0:
                break       # SND.NXT is still on our SYN: nothing but the SYN may go
            avail = len(self.snd_buf) - off
            cwnd = self.cc.cwnd
            if not self.in_recovery and 0 < self.dupacks < DUPTHRESH:
                # RFC 3042 limited transmit (RFC 5681 3.2 SHOULD): each of the first two
                # duplicate ACKs lets one new segment out beyond cwnd.
                cwnd += self.dupacks * self.smss
            usable = seq_sub(seq_add(self.snd_una, min(self.snd_wnd, cwnd)), self.snd_nxt)
            fin_pending = fin_allowed and seq_le(self.snd_nxt, end_data) and not (
                self.snd_nxt == seq_add(end_data, 1))
            if avail <= 0 and not (fin_pending and avail == 0):
                break
            if self.snd_wnd == 0 and avail > 0:
                # Zero window (RFC 9293 3.8.6.1): pull back what lies beyond it, stop the
                # retransmission timer and let the persist timer probe (BSD tcp_output).
                if seq_gt(self.snd_nxt, self.snd_una) and self.t_persist is None:
                    self.snd_nxt = self.snd_una
                    self.t_rexmt = None
                if self.t_persist is None and self.t_rexmt is None:
                    self._arm_persist(now)
                break
            n = max(0, min(avail, usable, maxseg))
            if n > smss and n < avail:
                n -= n % smss         # a super-segment is whole MSS pieces, but for the tail
            fin = fin_pending and n == avail
            if avail > 0 and n == 0:
                if self.t_rexmt is None and self.t_persist is None and self.snd_una == self.snd_max:
                    self._arm_persist(now)
                break
            if n < self.smss and n == avail and not fin:
                # Sender SWS avoidance (RFC 9293 3.8.6.2.1) and Nagle (RFC 896, RFC 1122
                # 4.2.3.4): a short segment only if it empties the buffer and either
                # nothing is in flight or TCP_NODELAY is set; or if it is at least half
                # the largest window the peer offered.
                idle = self.snd_una == self.snd_max
                retransmitting = seq_lt(self.snd_nxt, self.snd_max)
                if not (idle or self.nodelay or retransmitting or
                        (self.max_sndwnd and n >= self.max_sndwnd // 2)):
                    break
            elif n < self.smss and n < avail:
                # Window- or cwnd-limited short segment: only with half the max window.
                if not (self.max_sndwnd and n >= self.max_sndwnd // 2) and \
                        not seq_lt(self.snd_nxt, self.snd_max):
                    if self.t_rexmt is None and self.t_persist is None:
                        self._arm_persist(now)
                    break
            if n == 0 and not fin:
                break
            self._send_data(self.snd_nxt, n, fin, now)
            self.snd_nxt = seq_add(self.snd_nxt, n + (1 if fin else 0))
            sent = True
            if fin:
                break
        return sent

    # -- status ---------------------------------------------------------------------------

    def status(self):
        from .layer import TcpStatus
        return TcpStatus(
            state=str(self.state), local=(self.local_ip, self.local_port),
            remote=(self.remote_ip, self.remote_port), sendq=len(self.snd_buf),
            recvq=len(self.rcv_buf), srtt=self.rtt.srtt, rttvar=self.rtt.rttvar,
            rto=self.rtt.rto, cwnd=self.cc.cwnd, ssthresh=self.cc.ssthresh, smss=self.smss,
            snd_wnd=self.snd_wnd, rcv_wnd=self.rcv_wnd, retransmits=self.retransmits,
            sack=self.sack_ok, timestamps=self.ts_ok,
            wscale=(self.snd_wscale, self.rcv_wscale) if self.ws_ok else None,
            congctl=self.cc.name, in_recovery=self.in_recovery)
