"""IGMP host side (RFC 3376, with RFC 2236 IGMPv2 and RFC 1112 IGMPv1 compatibility):
the reports that let routers and snooping switches deliver the groups joined with
IP_ADD_MEMBERSHIP. The IPv4 counterpart of inet6/mld6.py, in the same shape.

Theory of operation
-------------------
The IPv4 layer's ``groups`` (group -> joins) are the stack's memberships; they are not
per interface, so every up Ethernet interface with an IPv4 address reports them (a host
with one link, the usual case, reports exactly where it listens). 224.0.0.1 is never
reported (RFC 3376 6, RFC 2236 6).

Host Compatibility Mode per interface (RFC 3376 7.2.1): IGMPv3, or IGMPv2 / IGMPv1 for
the Older Version Querier Present Timeout (260 s, 8.12) after a v2 / v1 query.

* Join: v3 a State Change Report (CHANGE_TO_EXCLUDE_MODE {}) at once and once more within
  the Unsolicited Report Interval (1 s, 8.11); v2/v1 a Report to the group, again within
  10 s (RFC 2236 8.10).
* Leave: v3 CHANGE_TO_INCLUDE_MODE {} likewise; v2 one Leave Group to 224.0.0.2; v1 none.
* Queries (checksum verified, to 224.0.0.1 or a group we are in): general -> one v3
  Current State Report of every group (MODE_IS_EXCLUDE {}) within Max Resp Time; group ->
  that group; group-and-source -> IS_INCLUDE of the queried sources. In v1/v2 mode each
  group gets a Report at a random time in the delay, and another host's Report for it
  cancels ours (RFC 2236 3 suppression).

Messages go with TTL 1, TOS 0xc0 and a Router Alert option (RFC 2113; RFC 3376 4, RFC
2236 2 ask for it), from the interface's address; v3 reports to 224.0.0.22.
"""

import attrs

from ..iface.interface import IFT_ETHER, Interface
from ..time import Instant, seconds
from ..wire.errors import Malformed
from ..wire.igmp import (
    ALL_ROUTERS, ALL_SYSTEMS, ALL_V3_ROUTERS, CHANGE_TO_EXCLUDE_MODE, CHANGE_TO_INCLUDE_MODE, MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE, QUERY, V1_REPORT, V2_LEAVE, V2_REPORT, IgmpQuery, IgmpRecord, v2_message, v3_report, verify,
)
from ..wire.ipv4 import Ipv4Repr
from .mcast import Pending, ReportTimers

PROTO = 2
ROBUSTNESS = 2
UNSOLICITED_REPORT_INTERVAL = seconds(1)      # RFC 3376 8.11
V2_UNSOLICITED_REPORT_INTERVAL = seconds(10)  # RFC 2236 8.10
OLDER_VERSION_QUERIER_TIMEOUT = seconds(ROBUSTNESS * 125 + 10)
ROUTER_ALERT = bytes((0x94, 0x04, 0, 0))
TOS_INTERNETWORK_CONTROL = 0xC0


@attrs.define
class IgmpStat:
    rcv_total: int = 0
    rcv_badsum: int = 0
    rcv_tooshort: int = 0
    rcv_queries: int = 0
    rcv_reports: int = 0
    rcv_ourreports: int = 0      # other hosts' reports that suppressed ours (v1/v2)
    snd_reports: int = 0         # reports and leaves sent


class IgmpProtocol(ReportTimers):
    proto = PROTO

    def __init__(self, ip):
        super().__init__(ip.stack)
        self.ip = ip
        self.stats = IgmpStat()
        self.older: dict[int, tuple[int, Instant]] = {}      # ifindex -> (1 or 2, until)

    def _speaks(self, iface: Interface) -> bool:
        return iface.kind == IFT_ETHER and iface.mac is not None and iface.is_up and bool(iface.inet_addrs())

    def version(self, iface: Interface, now: Instant) -> int:
        older = self.older.get(iface.index)
        return older[0] if older is not None and now < older[1] else 3

    def _groups(self) -> list[bytes]:
        return sorted(g for g in self.ip.groups if g != ALL_SYSTEMS)

    def _interfaces(self):
        return [i for i in self.stack.interfaces.values() if self._speaks(i)]

    # -- membership changes --------------------------------------------------------------

    def joined(self, group: bytes) -> None:
        if group != ALL_SYSTEMS:
            for iface in self._interfaces():
                self._unsolicited(iface, group, True, self._now)

    def left(self, group: bytes) -> None:
        if group != ALL_SYSTEMS:
            for iface in self._interfaces():
                self._unsolicited(iface, group, False, self._now)

    # The latest ``now`` seen (poll runs every runtime turn): joins come from socket calls,
    # which carry none; a deadline already past is simply due at the next poll.
    _now = 0

    def _unsolicited(self, iface, group, join: bool, now: Instant) -> None:
        v = self.version(iface, now)
        if v == 3:
            kind, count = (CHANGE_TO_EXCLUDE_MODE if join else CHANGE_TO_INCLUDE_MODE), ROBUSTNESS
        elif join:
            kind, count = (V2_REPORT if v == 2 else V1_REPORT), ROBUSTNESS
        elif v == 2:
            kind, count = V2_LEAVE, 1
        else:
            self.pending.pop((iface.index, group), None)      # IGMPv1 has no leave
            self.stack.timers_changed()
            return
        self.pending[(iface.index, group)] = Pending(iface, group, kind, count, now)
        self.stack.timers_changed()

    def interface_up(self, iface: Interface) -> None:
        if self._speaks(iface):
            for group in self._groups():
                self._unsolicited(iface, group, True, self._now)

    def interface_gone(self, iface: Interface) -> None:
        super().interface_gone(iface)
        self.older.pop(iface.index, None)

    # -- input (the protocol switch's entry) ---------------------------------------------

    def input(self, ctx, payload, now: Instant) -> None:
        st = self.stats
        st.rcv_total += 1
        self._now = now
        iface = ctx.iface
        if len(payload) < 8:
            st.rcv_tooshort += 1
            return
        if not verify(payload):
            st.rcv_badsum += 1
            return
        kind = payload[0]
        if kind in (V1_REPORT, V2_REPORT):
            st.rcv_reports += 1
            key = (iface.index, bytes(payload[4:8]))
            p = self.pending.get(key)
            if p is not None and p.kind in (V1_REPORT, V2_REPORT) and p.left == 1:
                del self.pending[key]              # RFC 2236 3: someone answered for the group
                self.stack.timers_changed()
                st.rcv_ourreports += 1
            return
        if kind != QUERY or not self._speaks(iface):
            return
        try:
            q = IgmpQuery.parse(payload)
        except Malformed:
            st.rcv_tooshort += 1
            return
        st.rcv_queries += 1
        if q.version < 3:
            self.older[iface.index] = (q.version, now + OLDER_VERSION_QUERIER_TIMEOUT)
        general = q.group == bytes(4)
        if not general and q.group not in self.ip.groups:
            return
        delay = q.max_resp * 100_000                    # tenths of a second -> us
        v = self.version(iface, now)
        if v < 3:
            report = V2_REPORT if v == 2 else V1_REPORT
            for g in (self._groups() if general else [q.group] if q.group != ALL_SYSTEMS else []):
                self._schedule(iface, g, report, now + self._random(delay))
        elif general:
            self._schedule(iface, None, MODE_IS_EXCLUDE, now + self._random(delay))
        elif q.group != ALL_SYSTEMS:
            self._schedule(iface, q.group, MODE_IS_INCLUDE if q.sources else MODE_IS_EXCLUDE,
                           now + self._random(delay), q.sources)

    def ctlinput(self, *_args) -> None:
        return None

    # -- output ---------------------------------------------------------------------------

    def _send(self, p: Pending, now: Instant) -> None:
        iface = p.iface
        if p.kind in (V1_REPORT, V2_REPORT, V2_LEAVE):
            dst = ALL_ROUTERS if p.kind == V2_LEAVE else p.group
            message = v2_message(p.kind, p.group)
        else:
            dst = ALL_V3_ROUTERS
            if p.group is None:
                groups = self._groups()
                if not groups:
                    return
                records = [IgmpRecord(p.kind, g) for g in groups]
            else:
                records = [IgmpRecord(p.kind, p.group, p.sources)]
            message = v3_report(records)
        src = iface.inet_addrs()[0].address.packed
        header = Ipv4Repr(src, dst, PROTO, len(message), 1, TOS_INTERNETWORK_CONTROL, self.ip.next_ident(),
                          True, options=ROUTER_ALERT).header_bytes()
        self.stats.snd_reports += 1
        self.ip.stats.localout += 1
        self.ip._link_output(iface, dst, header + message, now)

    def _span(self, p: Pending) -> int:
        if p.kind in (CHANGE_TO_EXCLUDE_MODE, CHANGE_TO_INCLUDE_MODE):
            return UNSOLICITED_REPORT_INTERVAL
        return V2_UNSOLICITED_REPORT_INTERVAL

    def poll(self, now: Instant) -> None:
        self._now = now
        super().poll(now)
