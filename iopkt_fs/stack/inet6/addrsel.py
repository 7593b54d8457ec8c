"""Default source address selection (RFC 6724 5), as a sort key over candidates.

Candidates are our unicast addresses that are neither tentative nor duplicated nor
anycast (RFC 6724 4, RFC 4862 5.4); for a destination of link-local scope only those on
the outgoing interface (RFC 6724 4: "the set of candidate source addresses MUST only
include addresses assigned to interfaces belonging to the same link"). The rules applied,
in order: 1 prefer the destination itself, 2 appropriate scope, 3 avoid deprecated,
5 prefer the outgoing interface, 6 matching label (the default policy table of 2.1),
8 longest matching prefix. Rule 4 (home addresses, Mobile IPv6) and 7 (temporary
addresses, none are made yet) have nothing to choose between here.
"""

import ipaddress

from ..wire.ipv6 import scope

# RFC 6724 2.1 default policy table: (prefix, length, precedence, label), longest first.
_POLICY = sorted((
    (ipaddress.IPv6Network("::1/128"), 50, 0),
    (ipaddress.IPv6Network("::/0"), 40, 1),
    (ipaddress.IPv6Network("::ffff:0:0/96"), 35, 4),
    (ipaddress.IPv6Network("2002::/16"), 30, 2),
    (ipaddress.IPv6Network("2001::/32"), 5, 5),
    (ipaddress.IPv6Network("fc00::/7"), 3, 13),
    (ipaddress.IPv6Network("::/96"), 1, 3),
    (ipaddress.IPv6Network("fec0::/10"), 1, 11),
    (ipaddress.IPv6Network("3ffe::/16"), 1, 12),
), key=lambda row: -row[0].prefixlen)


def label(addr: bytes) -> int:
    a = ipaddress.IPv6Address(addr)
    for net, _prec, lab in _POLICY:
        if a in net:
            return lab
    return 1


def common_prefix(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 128 - x.bit_length()


def select_source(dst: bytes, candidates, out_index: int | None) -> bytes | None:
    """The best of ``candidates`` ((address bytes, ifindex, deprecated) tuples) for
    ``dst`` leaving by interface ``out_index``; None if there are none."""
    best = None
    best_key = None
    dscope = scope(dst)
    dlabel = label(dst)
    for addr, ifindex, deprecated in candidates:
        if dscope <= 2 and out_index is not None and ifindex != out_index and addr != dst:
            continue
        s = scope(addr)
        key = (
            addr == dst,                                   # rule 1
            (s >= dscope, -s if s >= dscope else s),       # rule 2: smallest sufficient scope
            not deprecated,                                # rule 3
            ifindex == out_index,                          # rule 5
            label(addr) == dlabel,                         # rule 6
            common_prefix(addr, dst),                      # rule 8
        )
        if best_key is None or key > best_key:
            best, best_key = addr, key
    return best
