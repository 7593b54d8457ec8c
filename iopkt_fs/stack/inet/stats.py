"""Protocol counters with NetBSD's names (netinet/ip_var.h, icmp_var.h, udp_var.h).

Each field is NetBSD's ``IP_STAT_X`` / ``ICMP_STAT_X`` / ``UDP_STAT_X`` lower-cased, so the
``netstat -s`` renderer can follow NetBSD's inet.c line by line. Every drop on the receive
path increments exactly one reason counter. ``snapshot()`` gives a plain dict for tools.
"""

import attrs


def _snapshot(obj) -> dict:
    return attrs.asdict(obj)


@attrs.define
class IpStat:
    total: int = 0          # total packets received
    badsum: int = 0         # checksum bad
    tooshort: int = 0       # packet too short
    toosmall: int = 0       # not enough data for a header
    badhlen: int = 0        # ip header length < data size
    badlen: int = 0         # ip length < ip header length
    fragments: int = 0      # fragments received
    fragdropped: int = 0    # frags dropped (dups, out of space, overlaps)
    fragtimeout: int = 0    # fragments timed out
    forward: int = 0        # packets forwarded
    fastforward: int = 0    # packets forwarded through the flow cache
    cantforward: int = 0    # packets rcvd for unreachable dest (or forwarding off)
    redirectsent: int = 0   # packets forwarded on same net
    noproto: int = 0        # unknown or unsupported protocol
    delivered: int = 0      # datagrams delivered to upper level
    localout: int = 0       # total ip packets generated here
    odropped: int = 0       # lost packets due to nobufs, unresolved ARP, etc.
    reassembled: int = 0    # total packets reassembled ok
    fragmented: int = 0     # datagrams successfully fragmented
    ofragments: int = 0     # output fragments created
    cantfrag: int = 0       # don't fragment flag was set, etc.
    badoptions: int = 0     # error in option processing
    noroute: int = 0        # packets discarded due to no route
    badvers: int = 0        # ip version != 4
    rawout: int = 0         # total raw ip packets generated
    badfrags: int = 0       # malformed fragments (bad length)
    rcvmemdrop: int = 0     # frags dropped for lack of memory (the reassembly limits)
    toolong: int = 0        # ip length > max ip packet size
    badaddr: int = 0        # invalid address on header

    def snapshot(self) -> dict:
        return _snapshot(self)


# ICMP types (RFC 792) used by the counters' histograms and the layer.
ICMP_ECHOREPLY = 0
ICMP_UNREACH = 3
ICMP_SOURCEQUENCH = 4
ICMP_REDIRECT = 5
ICMP_ECHO = 8
ICMP_TIMXCEED = 11
ICMP_PARAMPROB = 12
ICMP_TSTAMP = 13
ICMP_TSTAMPREPLY = 14
ICMP_MASKREQ = 17
ICMP_MASKREPLY = 18
ICMP_MAXTYPE = 40

# Unreachable codes (RFC 792, RFC 1122 3.2.2.1).
UNREACH_NET = 0
UNREACH_HOST = 1
UNREACH_PROTOCOL = 2
UNREACH_PORT = 3
UNREACH_NEEDFRAG = 4
UNREACH_SRCFAIL = 5
# Time exceeded codes.
TIMXCEED_INTRANS = 0
TIMXCEED_REASS = 1


@attrs.define
class IcmpStat:
    error: int = 0          # calls to icmp_error
    oldshorticmp: int = 0   # no error (old ip too short)
    oldicmp: int = 0        # no error (old was icmp)
    badcode: int = 0        # icmp code out of range
    tooshort: int = 0       # packet < ICMP_MINLEN
    checksum: int = 0       # bad checksum
    badlen: int = 0         # calculated bound mismatch
    reflect: int = 0        # number of responses
    bmcastecho: int = 0     # b/mcast echo requests dropped
    pmtuchg: int = 0        # number of times PMTU changed
    ratelim: int = 0        # ours: errors not sent because of the rate limit (icmperrppslim)
    outhist: list = attrs.Factory(lambda: [0] * (ICMP_MAXTYPE + 1))
    inhist: list = attrs.Factory(lambda: [0] * (ICMP_MAXTYPE + 1))

    def snapshot(self) -> dict:
        return _snapshot(self)


@attrs.define
class UdpStat:
    ipackets: int = 0       # total input packets
    hdrops: int = 0         # packet shorter than header
    badsum: int = 0         # checksum error
    badlen: int = 0         # data length larger than packet
    noport: int = 0         # no socket on port
    noportbcast: int = 0    # of above, arrived as broadcast
    fullsock: int = 0       # not delivered, input socket full
    pcbhashmiss: int = 0    # input packets missing pcb cache
    opackets: int = 0       # total output packets

    def snapshot(self) -> dict:
        return _snapshot(self)
