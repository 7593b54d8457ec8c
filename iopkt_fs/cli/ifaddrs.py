"""Reading addresses back out of an interface's ifconfig block (for netstat -i, if_up)."""

import ipaddress

from ..resmgr.tables import _net_text


def inet_rows(block: str) -> list[tuple[str, str]]:
    """(network in netstat's short form, address) for each ``inet`` line of a status block."""
    rows = []
    for line in block.splitlines():
        words = line.split()
        if not words or words[0] != "inet":
            continue
        address = words[1]
        mask = words[words.index("netmask") + 1] if "netmask" in words else "0xffffffff"
        net = ipaddress.IPv4Network(f"{address}/{bin(int(mask, 16)).count('1')}", strict=False)
        rows.append((_net_text(str(net)) if net.prefixlen < 32 else address, address))
    return rows


def inet6_rows(block: str) -> list[tuple[str, str]]:
    """(network, address) for each ``inet6`` line (NetBSD netstat -i: netname6 as
    PREFIX/LEN, a link-local one with its %zone)."""
    rows = []
    for line in block.splitlines():
        words = line.split()
        if len(words) < 4 or words[0] != "inet6" or "prefixlen" not in words:
            continue
        address = words[1]
        host, _, zone = address.partition("%")
        plen = int(words[words.index("prefixlen") + 1])
        net = ipaddress.IPv6Network(f"{host}/{plen}", strict=False)
        network = f"{net.network_address}%{zone}/{plen}" if zone else str(net)
        rows.append((network if plen < 128 else address, address))
    return rows
