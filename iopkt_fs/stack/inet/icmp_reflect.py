"""The common ICMP echo request answered in place (BSD icmp_reflect).

BSD turns an echo request's mbuf around: type 0, the addresses swapped, out through
ip_output. Our general path builds the objects every layer uses (Ipv4Packet, Ipv4Repr,
IpInput, IcmpPacket, the reply's Ipv4Repr) - some ninety Python calls per echo. That is
12.6 µs on a busy loop, but ping's requests arrive 5 ms or more apart, and on this VM
the first pass through code after an idle period runs many times slower: 127 µs of CPU
for that path after a 5 ms sleep against 24 µs for the few lines below
(docs/performance.md, "Ping, side by side"). The ping RTT is mostly that.

``reflect`` takes only what is certain to be a plain echo request to one of our unicast
addresses - an Ethernet frame to our MAC, IPv4 without options, not a fragment, both
checksums right, a valid unicast source, no raw socket wanting a copy, a route back
that needs no fragmentation - and answers it exactly as the general path would: the
same reply bytes (ident from the same counter, TTL from net.inet.ip.ttl, TOS copied,
DF clear), the same counters, the same link output. Anything else returns False before
touching any state, and the general path takes the frame (and counts what is wrong
with it). ``Ipv4Layer.fast_echo`` turns it off, to compare the two paths.
"""

from ..iface.route import RTF_BLACKHOLE, RTF_REJECT
from ..time import Instant
from ..wire.checksum import ones_sum
from ..wire.ipv4 import plain_header
from .icmp import echo_reply_message
from .stats import ICMP_ECHO, ICMP_ECHOREPLY


def reflect(ip, iface, frame, now: Instant) -> bool:
    """Answer ``frame`` (Ethernet, to our MAC, IPv4 with IHL 5, protocol ICMP, type 8:
    the caller checked those bytes) if it is a plain echo request; False to leave it to
    the general path, with nothing changed."""
    n = len(frame)
    if n < 42 or frame[35] != 0:                 # ICMP header present, code 0
        return False
    total = (frame[16] << 8) | frame[17]
    if total < 28 or 14 + total > n or frame[20] & 0x3F or frame[21]:
        return False                             # short, padded wrong, or a fragment (MF/offset)
    src = bytes(frame[26:30])
    dst = bytes(frame[30:34])
    first = src[0]
    if (dst not in ip._local or first == 0 or first == 127 or first >= 224 or src in ip._bcast
            or src in ip._local):
        return False
    if ip.raw.sockets:
        return False                             # rip_input: raw sockets see every message
    mv = memoryview(frame)
    if ones_sum(mv[14:34]) != 0xFFFF or ones_sum(mv[34:14 + total]) != 0xFFFF:
        return False                             # the general path counts the bad checksum
    # The route back, as route_to finds it but without counting a miss: a reply with no
    # route, a reject or blackhole route, or one that needs fragmenting is the general
    # path's to count and handle.
    route = ip.routes.lookup(int.from_bytes(src, "big"), ip._usable)
    if route is None or route.flags & (RTF_REJECT | RTF_BLACKHOLE) or total > (route.mtu or route.iface.mtu):
        return False
    out = route.iface
    nexthop = src if route.gateway is None else route.gateway.to_bytes(4, "big")
    # From here on the frame is answered; the counters are those the general path keeps
    # (ipv4 process_ipv4/_deliver, icmp input/_echo_reply, output).
    st = ip.stats
    st.total += 1
    st.delivered += 1
    icmp = ip.icmp.stats
    icmp.inhist[ICMP_ECHO] += 1
    icmp.reflect += 1
    icmp.outhist[ICMP_ECHOREPLY] += 1
    route.use += 1
    st.localout += 1
    message = echo_reply_message(mv[34:14 + total])
    header = plain_header(dst, src, 1, len(message), ip._node_ttl.value, frame[15], ip.next_ident(), False)
    ip._link_output(out, nexthop, header + message, now)
    return True
