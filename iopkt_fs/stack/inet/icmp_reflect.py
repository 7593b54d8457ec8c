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
DF clear), the same counters, the same link output. A source answered before is in
the output route cache (output.py OutRoute; the first reply fills it, as ``output``
does), whose route and Ethernet header then stand for the route lookup, the ARP look-up
and the link output's steps. Anything else returns False before
touching any state, and the general path takes the frame (and counts what is wrong
with it). ``Ipv4Layer.fast_echo`` turns it off, to compare the two paths.
"""

import struct

from ..iface.interface import IFF_UP
from ..iface.route import RTF_BLACKHOLE, RTF_REJECT
from ..time import Instant
from .output import _PLAIN_VH as PLAIN_VH
from .stats import ICMP_ECHO, ICMP_ECHOREPLY

# wire/ipv4.py's header layout (plain_header): version/IHL, TOS, total length, ident,
# flags/offset, TTL, protocol, checksum, source, destination.
_HDR = struct.Struct("!BBHHHBBH4s4s")


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
    # Both checksums (RFC 1071): a header or message is intact when its one's-complement
    # sum is 0xffff, i.e. the bytes as one big number are a non-zero multiple of 0xffff
    # (wire/checksum.ones_sum, written out: each call here is microseconds on a CPU
    # that was idle; a message of odd length is padded with a zero byte).
    mv = memoryview(frame)
    header_sum = int.from_bytes(mv[14:34], "big")
    message = mv[34:14 + total]
    message_sum = int.from_bytes(message, "big") << (8 if total & 1 else 0)
    if header_sum % 0xFFFF or not header_sum or message_sum % 0xFFFF or not message_sum:
        return False                             # the general path counts the bad checksum
    # The route back, as route_to finds it but without counting a miss: a reply with no
    # route, a reject or blackhole route, or one that needs fragmenting is the general
    # path's to count and handle.
    # A source seen before is in the output route cache (output.py OutRoute: a usable
    # unicast route, never reject or blackhole, and the Ethernet header toward a
    # REACHABLE or permanent neighbour, for which arp.resolve only returns the MAC):
    # the lookup, the ARP look-up and the link output's steps are then taken from it.
    ro = ip._out_routes.get(src)
    if ro is not None and ro.head is not None and ro.route is not None and total >= 46:
        route = ro.route
        cached = True
    else:
        route = ip.routes.lookup(int.from_bytes(src, "big"), ip._usable)
        if route is None or route.flags & (RTF_REJECT | RTF_BLACKHOLE):
            return False
        cached = False
    if total > (route.mtu or route.iface.mtu):
        return False
    out = route.iface
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
    # The reply, as icmp.echo_reply_message and wire/ipv4.plain_header make it: type 0,
    # the checksum updated for that one word (RFC 1624 eqn. 3; the request's was right),
    # and a new header - no options, DF clear, TTL net.inet.ip.ttl, TOS copied, the next
    # ident (Ipv4Output.next_ident) - with its checksum summed as above.
    reply = bytearray(message)
    cksum = (~((reply[2] << 8) | reply[3]) & 0xFFFF) + (~((reply[0] << 8) | reply[1]) & 0xFFFF)
    cksum = (cksum & 0xFFFF) + (cksum >> 16)
    cksum = (cksum & 0xFFFF) + (cksum >> 16)
    cksum = (~cksum & 0xFFFF) or 0xFFFF          # never 0x0000 (echo_reply_message)
    reply[0] = reply[1] = 0
    reply[2] = cksum >> 8
    reply[3] = cksum & 0xFF
    ident = ip._ident = (ip._ident + 1) & 0xFFFF
    ttl = ip._node_ttl.value
    tos = frame[15]
    # The header's words summed modulo 0xFFFF (each 16-bit word weighs 1, as 2**16 is 1
    # modulo 0xFFFF): the request's eight address bytes, read as one number, carry the
    # same sum for the swapped pair.
    hsum = ((0x4500 | tos) + total + ident + (ttl << 8 | 1) + int.from_bytes(mv[26:34], "big")) % 0xFFFF
    header = _HDR.pack(0x45, tos, total, ident, 0, ttl, 1, 0xFFFF - hsum if hsum else 0, dst, src)
    if cached:
        # _link_output -> _ether_output written out for a neighbour we know: no padding
        # (an IP packet of 46 bytes or more fills the minimum frame), and on a virtio
        # link the all-zero header _tx_header gives a packet without offload work.
        # On a plain up Ethernet link without captures, Stack.link_transmit's queueing
        # is written out too (the counters it keeps, the frame on the txq).
        hl = out.vnet_hdr
        if hl:
            frame = b"".join((PLAIN_VH, ro.head, header, reply))
        else:
            frame = b"".join((ro.head, header, reply))
        if out.if_output is None and out.flags & IFF_UP and not out.bpf:
            stats = out.stats
            stats.opackets += 1
            stats.obytes += len(frame) - hl
            out.txq.append(frame)
            ip.stack.tx_pending[out.index] = out
        else:
            ip.stack.transmit(out, frame, bool(hl))
        return True
    nexthop = src if route.gateway is None else route.gateway.to_bytes(4, "big")
    epoch = ip._route_epoch
    ip._link_output(out, nexthop, header + reply, now)
    if epoch == ip._route_epoch:                  # nothing moved meanwhile (as output does)
        ip._remember_route(src, out, nexthop, route, False)
    return True
