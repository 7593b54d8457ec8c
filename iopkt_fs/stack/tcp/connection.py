"""One TCP connection: the transmission control block and the user calls on it.

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

The behaviour lives in mixins, one module per RFC seam, all acting on this one object
(``self`` is the connection; no delegation objects on the per-segment path):

* ``input.py`` - SEGMENT ARRIVES, RFC 9293 3.10.7.3-4, steps one to eight;
* ``recovery.py`` - the ACK field: RTT samples, fast recovery (RFC 6675 / RFC 6582),
  recovery after a timeout and F-RTO (RFC 5682);
* ``rack.py`` - RACK-TLP loss detection (RFC 8985) and what DSACKs (RFC 2883) change;
* ``sack.py`` - the SACK scoreboard (RFC 2018, RFC 6675 IsLost/pipe/NextSeg) and the
  blocks we report as a receiver;
* ``output.py`` - ``_output`` and the segment builder;
* ``timers.py`` - the timers as data, and what each does when it expires.

``state.py`` holds the states, ``Segment`` and the flag bits; ``status.py`` the
``TcpStatus`` value; ``services.py`` the Protocol of what the layer provides, so nothing
here imports the layer.

Every path ends in ``_output(now)``, the one place that decides what to transmit (BSD's
``tcp_output``): SYN/SYN-ACK, new data under the send window, the congestion window,
Nagle and sender silly-window avoidance, retransmissions during loss recovery, FIN, and a
bare ACK or window update when one is owed. Segments leave through ``layer.emit``.

Rules:

* State changes only through ``_set_state``, which logs ``old -> new`` and wakes the socket.
* Timers are data: ``t_rexmt``, ``t_persist``, ``t_keep``, ``t_2msl``, ``t_delack``,
  ``t_tlp``, ``t_rack`` are deadlines (or None), BSD's TCPT_REXMT/PERSIST/KEEP/2MSL plus
  the delayed-ACK timer, RFC 8985's probe timeout and reorder timer;
  ``poll_at()`` is their minimum and the layer keeps them in a heap.
* Sequence numbers are 32-bit and compared only through ``seq.py``.
* The send buffer holds bytes from ``snd_buf_seq`` (SND.UNA once the SYN is acknowledged);
  the receive buffer holds unread bytes, then out-of-order data in place (``buffers.py``).
* Loss recovery: with SACK, RACK-TLP decides what is lost and RFC 6675's pipe/NextSeg
  conservative recovery resends it; without, NewReno (RFC 6582). Either way ``cwnd``/``ssthresh`` belong to the congestion controller
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
RFC 8985 (RACK-TLP), RFC 2883 (DSACK), RFC 5682 (F-RTO),
RFC 7323 (window scale, timestamps, PAWS), RFC 9438 (CUBIC), RFC 6528 (ISNs, in the
layer), RFC 4987 (SYN cookies, in the layer), RFC 6191 (TIME-WAIT reuse), RFC 1191/5927
(PMTU, ICMP checks).
"""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING

from ..time import Instant, seconds
from . import congestion
from .buffers import Assembler, Ring
from .config import TcpConfig
from .input import OOW_ACK_INTERVAL, InputMixin
from .output import OutputMixin
from .rack import RackMixin
from .recovery import RecoveryMixin
from .rtt import RttEstimator
from .sack import SackMixin
from .seq import _HALF, MASK, MOD, seq_add, seq_gt
from .state import (
    CLOSED, CLOSE_WAIT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, LISTEN, SYN_RECEIVED,
    SYN_SENT, TIME_WAIT, Segment, State,
)
from .status import TcpStatus
from .timers import TimerMixin

if TYPE_CHECKING:
    from .services import TcpServices
    from .socket import TcpSocket

__all__ = ["Connection", "Segment", "State"]


class Connection(InputMixin, RecoveryMixin, RackMixin, SackMixin, OutputMixin, TimerMixin):
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
                 "ts_ok", "ts_recent", "ts_recent_age", "unacked_bytes", "ws_ok",
                 # RACK-TLP (rack.py), DSACK, undo, F-RTO
                 "dsack", "frto", "rack_dsack_round", "rack_end", "rack_lost_to",
                 "rack_min_rtt", "rack_ok", "rack_reo_mult", "rack_reo_persist",
                 "rack_reord", "rack_rtt", "rack_scan", "rack_xmit", "rto_recovery",
                 "t_rack", "tx_head", "tx_log", "undo_cwnd", "undo_high", "undo_low",
                 "undo_retrans", "undo_ssthresh")

    def __init__(self, layer: TcpServices, config: TcpConfig, local_ip: bytes, local_port: int,
                 remote_ip: bytes, remote_port: int, now: Instant, *,
                 sndbuf: int | None = None, rcvbuf: int | None = None, mtu: int = 1500):
        self.layer = layer
        self.config = config
        self.local_ip, self.local_port = local_ip, local_port
        self.remote_ip, self.remote_port = remote_ip, remote_port
        self.key = (local_ip, local_port, remote_ip, remote_port)
        self.state = CLOSED
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
        self.rxt_log: list = []      # (seq, end, sent_at) of retransmissions (RACK)
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

        # RACK-TLP (RFC 8985, rack.py): on with SACK unless the config turns it off.
        self.rack_ok = False
        self.tx_log: list = []       # (seq, end, sent_at) of new data, in sequence order
        self.tx_head = 0             # first entry not cumulatively acknowledged
        self.rack_scan = 0           # first entry not yet judged delivered or lost
        self.rack_xmit: Instant | None = None   # RACK.xmit_ts
        self.rack_end = 0            # RACK.end_seq
        self.rack_rtt = 0            # RACK.rtt
        self.rack_min_rtt: int | None = None    # RACK.min_RTT
        self.rack_reord = False      # RACK.reordering_seen
        self.rack_reo_mult = 1       # RACK.reo_wnd_mult
        self.rack_reo_persist = 0    # RACK.reo_wnd_persist
        self.rack_dsack_round: int | None = None
        self.rack_lost_to: int | None = None    # unSACKed bytes below this are lost
        self.rto_recovery = False    # the recovery under way began with a timeout
        self.frto = 0                # RFC 5682 step awaited (0: not in F-RTO)
        self.undo_retrans: int | None = None    # retransmissions not yet DSACKed
        self.undo_cwnd = self.undo_ssthresh = 0
        self.undo_low = self.undo_high = 0
        self.dsack: tuple[int, int] | None = None   # RFC 2883: a duplicate to report
        self.t_rack: Instant | None = None      # RFC 8985 6.3 reorder timer

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

    def __repr__(self) -> str:
        return (f"<Connection {self.layer.fmt_ep(self.local_ip, self.local_port)} -> "
                f"{self.layer.fmt_ep(self.remote_ip, self.remote_port)} {self.state}>")

    def _set_state(self, new: State, now: Instant) -> None:
        old = self.state
        if old == new:
            return
        self.state = new
        layer = self.layer
        debug = layer.debug
        if debug is not None and debug.value:
            layer.log_state(self, old, new)
        if new == TIME_WAIT:
            # RFC 9293 3.10.7.4: "start the time-wait timer" for 2 MSL; nothing else runs.
            self.t_rexmt = self.t_persist = self.t_keep = self.t_delack = self.t_tlp = None
            self.t_rack = None
            self.t_2msl = now + 2 * self.config.msl
            self.snd_buf.release()     # a TIME-WAIT block keeps no buffers
            if not self.ooo:
                self.rcv_buf.release()
        if new == CLOSED:
            self.t_rexmt = self.t_persist = self.t_keep = self.t_2msl = self.t_delack = None
            self.t_tlp = self.t_rack = None
            self.layer.connection_closed(self, old)
        elif new >= ESTABLISHED > old:     # (State.established, written out)
            if self.retransmits and self.rtt.srtt is None:
                # RFC 6298 5.7: the SYN (or SYN-ACK) timed out and no RTT was measured:
                # start data transmission with RTO = 3 s.
                self.rtt.reset(seconds(3))
            self._arm_keep(now)
            self.layer.connection_established(self, old)
        if new == FIN_WAIT_2 and self.orphaned:
            # Nobody can ever close the peer's half for us; BSD's tcp_maxidle / Linux's
            # tcp_fin_timeout: give an orphaned FIN-WAIT-2 a bounded life (2 MSL).
            self.t_2msl = now + 2 * self.config.msl
        sock = self.socket
        if sock is not None:
            layer.notify(sock)       # layer.wake(self), written out: five a connection

    def ts_now(self, now: Instant) -> int:
        """Our RFC 7323 TSval clock: milliseconds plus a per-connection offset (5.4)."""
        return (now // 1000 + self.ts_offset) & MASK

    @property
    def flight(self) -> int:
        """FlightSize (RFC 5681 2): data sent but not yet acknowledged."""
        # seq_sub(SND.MAX, SND.UNA) written out (RFC 9293 3.4): asked about twice an ACK.
        d = (self.snd_max - self.snd_una) & MASK
        return d - MOD if d >= _HALF else d

    @property
    def rcv_wnd(self) -> int:
        """The window we advertised: RCV.ADV - RCV.NXT."""
        # max(0, seq_sub(RCV.ADV, RCV.NXT)) written out (RFC 9293 3.4's modular
        # distance: at or past 2**31 means RCV.NXT is ahead): asked on every segment.
        d = (self.rcv_adv - self.rcv_nxt) & MASK
        return d if d < _HALF else 0

    def _accept_window(self) -> int:
        d = (self.rcv_adv - self.rcv_nxt) & MASK
        buf = self.rcv_buf
        free = buf.cap - buf.used
        return free if d >= _HALF or free > d else d

    def _update_smss(self) -> None:
        # RFC 9293 3.7.1: effective send MSS = min(SendMSS, MMS_S) - TCP/IP options size;
        # our IP header carries no options, the TCP options are the 12-byte timestamps.
        eff = min(self.peer_mss, self.our_mss) - (12 if self.ts_ok else 0)
        self.smss = max(eff, 64)
        self.cc.set_smss(self.smss)

    def _rcv_mss(self) -> int:
        return max(self.our_mss - (12 if self.ts_ok else 0), 64)

    def _choose_wscale(self) -> int:
        """RFC 7323 2.2: the smallest shift that lets the whole buffer be advertised."""
        cap = self.rcv_buf.cap
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
        self._set_state(SYN_SENT, now)
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
        self._set_state(SYN_RECEIVED, now)
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
        self.rack_ok = self.sack_ok and self.config.rack
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
        self._set_state(ESTABLISHED, now)

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
            if self.state != SYN_SENT:
                self.rcv_wscale = self._choose_wscale()
        else:
            # RFC 7323 2.2: scaling only if both sides sent the option.
            self.ws_ok = False
            self.snd_wscale = self.rcv_wscale = 0
        self.sack_ok = o.sack_permitted and self.req_sack
        self.rack_ok = self.sack_ok and self.config.rack
        if o.timestamp is not None and self.req_ts:
            self.ts_ok = True
            self.ts_recent = o.timestamp[0]
            self.ts_recent_age = now // 1000
        else:
            self.ts_ok = False
        self._update_smss()

    def send(self, data, now: Instant) -> int:
        """SEND (RFC 9293 3.10.2): queue what fits in the send buffer, then try to send."""
        n = self.snd_buf.write(data)
        if n:
            self._output(now)
        return n

    def recv_into(self, out, now: Instant) -> int:
        """RECEIVE (3.10.3): copy out buffered data; reopen the window when it is worth it.
        Only a window update changes the timers, so only then is the layer told."""
        buf = self.rcv_buf
        n = buf.read_into(out)
        st = self.state
        # State.synchronized (st >= SYN_RECEIVED) written out, as are _advertisable_window,
        # rcv_wnd and _rcv_mss below: every read() of a data file passes here.
        if n and st >= SYN_RECEIVED and st != TIME_WAIT:
            # Receiver SWS avoidance (RFC 9293 3.8.6.2.2): a window update only once the
            # window can move by 2 segments or half the buffer (BSD tcp_output). A window
            # that is shut (the peer may send less than that) reopens by a quarter of the
            # buffer at once: 4.3BSD's silly-window rule (a window under sb_hiwat / 4 was
            # advertised as 0; tcp_output keeps it for windows under a segment, and Linux
            # holds a window shut until 1/16 of the buffer is free). Without it a reader
            # taking 32 KiB at a time from a full buffer (sha256sum) cost a window update,
            # a data frame and its ACK every read(). An open window keeps BSD's rule:
            # there the update is also the ACK that clocks the sender.
            win = min(buf.cap - buf.used, 0xFFFF << self.rcv_wscale)
            adv = (self.rcv_adv - self.rcv_nxt) & MASK
            if adv >= _HALF:
                adv = 0
            mss = self.our_mss - (12 if self.ts_ok else 0)
            need = 2 * mss if mss > 64 else 128
            cap = buf.cap
            if adv < need and need < cap >> 2:
                need = cap >> 2
                if need > 0x7FFF << self.rcv_wscale:
                    need = 0x7FFF << self.rcv_wscale
            if need > cap >> 1:
                need = cap >> 1
            if win - adv >= need:
                self.ack_now = True
                self.layer.stats.sndwinup += 1
                self._output(now)
                self.layer.touch(self)
        return n

    def shutdown_send(self, now: Instant) -> None:
        """CLOSE of the sending half (3.10.4): FIN after the queued data."""
        st = self.state
        if st in (CLOSED, LISTEN):
            return
        if st == SYN_SENT:
            # "Delete the TCB and return 'error: closing' responses to any queued SENDs".
            self._set_state(CLOSED, now)
            return
        if self.fin_queued:
            return
        self.fin_queued = True
        if st in (SYN_RECEIVED, ESTABLISHED):
            # SYN-RECEIVED: "If no SENDs have been issued and there is no pending data to
            # send, then form a FIN segment ... and enter FIN-WAIT-1" - we always queue the
            # FIN behind the data and let _output send it once the handshake is done.
            self._set_state(FIN_WAIT_1, now)
        elif st == CLOSE_WAIT:
            self._set_state(LAST_ACK, now)
        self._output(now)

    def close(self, now: Instant) -> None:
        """The user closed the socket: unread data means ABORT (RFC 1122 4.2.2.13, RFC 2525
        2.17), otherwise an orderly FIN and the connection lives on as an orphan."""
        self.orphaned = True
        self.socket = None
        if self.rcv_buf.used and self.state.synchronized:
            self.abort(now, _errno.ECONNABORTED)
            return
        self.shutdown_send(now)
        self.layer.touch(self)

    def abort(self, now: Instant, err: int = _errno.ECONNABORTED) -> None:
        """ABORT (3.10.5): a RST in synchronized states, then CLOSED."""
        if self.state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1,
                          FIN_WAIT_2, CLOSE_WAIT):
            self._send_rst(self.snd_nxt, now)
        self._drop(err, now)

    def _drop(self, err: int, now: Instant) -> None:
        if self.state.synchronized:
            self.layer.stats.drops += 1
        elif self.state == SYN_SENT:
            self.layer.stats.conndrops += 1
        self.error = err
        self._set_state(CLOSED, now)

    def time_wait_reusable(self, seg: Segment) -> bool:
        """A new SYN may reopen a TIME-WAIT connection (RFC 9293 3.10.7.4 note, RFC 1122
        4.2.2.13, RFC 6191): with timestamps if its TSval is newer than TS.Recent, without
        if its sequence number is beyond RCV.NXT."""
        if self.ts_ok and seg.opts.timestamp is not None:
            return seq_gt(seg.opts.timestamp[0], self.ts_recent)
        return seq_gt(seg.seq, self.rcv_nxt)

    def reap(self, now: Instant) -> None:
        """Close at once (TIME-WAIT reused by a new SYN)."""
        self._set_state(CLOSED, now)

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
        if kind == "refused" and self.state == SYN_SENT:
            self._drop(_errno.ECONNREFUSED, now)
            return
        self.soft_error = _errno.ECONNREFUSED if kind == "refused" else _errno.EHOSTUNREACH

    def status(self):
        return TcpStatus(
            state=str(self.state), local=(self.local_ip, self.local_port),
            remote=(self.remote_ip, self.remote_port), sendq=len(self.snd_buf),
            recvq=len(self.rcv_buf), srtt=self.rtt.srtt, rttvar=self.rtt.rttvar,
            rto=self.rtt.rto, cwnd=self.cc.cwnd, ssthresh=self.cc.ssthresh, smss=self.smss,
            snd_wnd=self.snd_wnd, rcv_wnd=self.rcv_wnd, retransmits=self.retransmits,
            sack=self.sack_ok, timestamps=self.ts_ok,
            wscale=(self.snd_wscale, self.rcv_wscale) if self.ws_ok else None,
            congctl=self.cc.name, in_recovery=self.in_recovery)
