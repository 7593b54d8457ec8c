"""The MLD listener (RFC 3810 host side, with RFC 2710 MLDv1 compatibility).

Theory of operation
-------------------
Group membership is the IPv6 layer's ``groups`` ((ifindex, group) -> joins); its
``join_group``/``leave_group`` tell us of the first join and the last leave. Groups of
scope 0 or 1 and ff02::1 are never reported (RFC 3810 6, RFC 2710 5); every other one,
the solicited-node groups of our addresses included (so MLD-snooping switches let ND
through), is. Only Ethernet interfaces that are up speak MLD; one coming up reports what
it holds.

Host Compatibility Mode (RFC 3810 8.2): MLDv2 unless an MLDv1 query was heard on the
link within the Older Version Querier Present Timeout (260 s with the defaults, 9.12);
QNX 6.6 (KAME mld6.c) speaks only MLDv1, which this mode also is.

* Join: MLDv2 sends a State Change Report (CHANGE_TO_EXCLUDE_MODE, no sources, 6.1) at
  once and again Robustness - 1 times within the Unsolicited Report Interval (1 s);
  MLDv1 sends a Report to the group at once and again within 10 s (RFC 2710 4).
* Leave: MLDv2 CHANGE_TO_INCLUDE_MODE {} the same way; MLDv1 one Done to ff02::2.
* Queries (link-local source, hop limit 1, else dropped: RFC 3810 5.1.14, RFC 2710 5),
  to ff02::1 or a group we are in: a general query schedules one Current State Report of
  every reportable group (MODE_IS_EXCLUDE {}, we listen to all sources) within the Maximum
  Response Delay; a group query one for that group; a group-and-source query IS_INCLUDE of
  the queried sources (6.3: EXCLUDE {} minus nothing). In MLDv1 mode each group gets its
  own Report at a random time in the delay, and another host's Report for it cancels ours
  (RFC 2710 4 suppression). An earlier pending answer is never pushed back.

Every message carries a hop-by-hop Router Alert (RFC 2711, value 0 = MLD), hop limit 1,
from our link-local address, or from :: while it is still tentative (RFC 3810 5.2.13
allows that for the reports DAD needs). Timers are data: ``Pending`` entries with a
deadline and a count of messages still to send.
"""

import attrs

from ..iface.interface import IFT_ETHER, Interface
from ..time import Instant, ms, seconds
from ..wire.errors import Malformed
from ..wire.icmpv6 import Icmpv6Type as T
from ..wire.ipv6 import ALL_NODES, ALL_ROUTERS, UNSPECIFIED, Ipv6Repr, is_link_local
from ..wire.mld import (
    ALL_MLDV2_ROUTERS, CHANGE_TO_EXCLUDE_MODE, CHANGE_TO_INCLUDE_MODE, MODE_IS_EXCLUDE, MODE_IS_INCLUDE,
    Mld2Record, Mld2Report, MldQuery, mldv1,
)
from ..inet.mcast import Pending, ReportTimers
from .ndisc import IN6_IFF_DUPLICATED, IN6_IFF_TENTATIVE

ROBUSTNESS = 2
UNSOLICITED_REPORT_INTERVAL = seconds(1)       # RFC 3810 9.11
V1_UNSOLICITED_REPORT_INTERVAL = seconds(10)   # RFC 2710 7.10
OLDER_VERSION_QUERIER_TIMEOUT = seconds(ROBUSTNESS * 125 + 10)   # RFC 3810 9.12
# Hop-by-hop header: next header ICMPv6, length 0, Router Alert (type 5, length 2, value
# 0 = MLD), PadN of 2.
HBH_ROUTER_ALERT = bytes((58, 0, 5, 2, 0, 0, 1, 0))


def reportable(group: bytes) -> bool:
    return group[1] & 0x0F >= 2 and group != ALL_NODES


@attrs.define
class MldStat:
    queries: int = 0        # queries taken (v1 + v2)
    v1queries: int = 0
    badquery: int = 0       # not link-local, hop limit not 1, malformed
    reports: int = 0        # reports and Done sent
    suppressed: int = 0     # v1 reports cancelled by another host's


class MldListener(ReportTimers):
    def __init__(self, ip):
        super().__init__(ip.stack)
        self.ip = ip
        self.stats = MldStat()
        self.v1_until: dict[int, Instant] = {}

    def _speaks(self, iface: Interface) -> bool:
        return iface.kind == IFT_ETHER and iface.mac is not None and iface.is_up

    def v1_mode(self, iface: Interface, now: Instant) -> bool:
        until = self.v1_until.get(iface.index)
        return until is not None and now < until

    # -- membership changes -------------------------------------------------------------

    def joined(self, iface: Interface, group: bytes) -> None:
        if not reportable(group) or not self._speaks(iface):
            return
        self._unsolicited(iface, group, True, self.ip.stack_now())

    def left(self, iface: Interface, group: bytes) -> None:
        if not reportable(group) or not self._speaks(iface):
            return
        self._unsolicited(iface, group, False, self.ip.stack_now())

    def _unsolicited(self, iface, group, join: bool, now: Instant) -> None:
        if self.v1_mode(iface, now):
            kind, count = (T.MLD_REPORT, ROBUSTNESS) if join else (T.MLD_DONE, 1)
        else:
            kind, count = (CHANGE_TO_EXCLUDE_MODE if join else CHANGE_TO_INCLUDE_MODE), ROBUSTNESS
        self.pending[(iface.index, group)] = Pending(iface, group, kind, count, now)
        self.stack.timers_changed()

    def interface_up(self, iface: Interface) -> None:
        for (index, group) in list(self.ip.groups):
            if index == iface.index:
                self.joined(iface, group)

    def interface_gone(self, iface: Interface) -> None:
        super().interface_gone(iface)
        self.v1_until.pop(iface.index, None)

    # -- input --------------------------------------------------------------------------

    def input(self, ctx, pkt, now: Instant) -> None:
        st = self.stats
        iface = ctx.iface
        if not self._speaks(iface):
            return
        if pkt.type == T.MLD_REPORT:
            # RFC 2710 4: another listener answered for the group; an MLDv1 host stays quiet.
            key = (iface.index, bytes(pkt.payload[:16]))
            p = self.pending.get(key)
            if p is not None and p.kind == T.MLD_REPORT and p.left == 1 and self.v1_mode(iface, now):
                del self.pending[key]
                self.stack.timers_changed()
                st.suppressed += 1
            return
        if pkt.type != T.MLD_QUERY:
            return                             # reports of MLDv2 and Done are for routers
        if not is_link_local(ctx.ip.src) or ctx.ip.hop_limit != 1:
            st.badquery += 1
            return
        try:
            q = MldQuery.parse(pkt._buf)
        except Malformed:
            st.badquery += 1
            return
        st.queries += 1
        if q.version == 1:
            st.v1queries += 1
            self.v1_until[iface.index] = now + OLDER_VERSION_QUERIER_TIMEOUT
        general = q.group == UNSPECIFIED
        if not general and (iface.index, q.group) not in self.ip.groups:
            return
        delay = ms(q.max_resp)
        if self.v1_mode(iface, now):
            groups = [g for (i, g) in self.ip.groups if i == iface.index and reportable(g)] if general \
                else [q.group] if reportable(q.group) else []
            for g in groups:
                self._schedule(iface, g, T.MLD_REPORT, now + self._random(delay))
            return
        if general:
            self._schedule(iface, None, MODE_IS_EXCLUDE, now + self._random(delay))
        elif reportable(q.group):
            record = MODE_IS_INCLUDE if q.sources else MODE_IS_EXCLUDE
            self._schedule(iface, q.group, record, now + self._random(delay), q.sources)

    # -- output -------------------------------------------------------------------------

    def _source(self, iface: Interface) -> bytes:
        for ifa in iface.inet6_addrs():
            addr = ifa.address.packed
            if is_link_local(addr) and not ifa.flags6 & (IN6_IFF_TENTATIVE | IN6_IFF_DUPLICATED):
                return addr
        return UNSPECIFIED

    def _send(self, p: Pending, now: Instant) -> None:
        iface = p.iface
        src = self._source(iface)
        if p.kind in (T.MLD_REPORT, T.MLD_DONE):
            dst = p.group if p.kind == T.MLD_REPORT else ALL_ROUTERS
            message = mldv1(p.kind, p.group, src, dst)
        else:
            dst = ALL_MLDV2_ROUTERS
            if p.group is None:
                groups = sorted(g for (i, g) in self.ip.groups if i == iface.index and reportable(g))
                if not groups:
                    return
                records = tuple(Mld2Record(p.kind, g) for g in groups)
            else:
                records = (Mld2Record(p.kind, p.group, p.sources),)
            message = Mld2Report(records).to_bytes(src, dst)
        header = Ipv6Repr(src, dst, 0, len(HBH_ROUTER_ALERT) + len(message), 1).header_bytes()
        self.stats.reports += 1
        self.ip.icmp.stats.count_out(message[0])
        self.ip.stats.localout += 1
        self.ip._link_output(iface, dst, header + HBH_ROUTER_ALERT + message, now)

    def _span(self, p: Pending) -> int:
        return V1_UNSOLICITED_REPORT_INTERVAL if p.kind == T.MLD_REPORT else UNSOLICITED_REPORT_INTERVAL
