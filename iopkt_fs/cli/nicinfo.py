"""nicinfo: driver and counter report for network interfaces (reference/qnx.md §4.3).

    nicinfo [-a] [interface ...]

Without names it reports every interface except loopbacks (nicinfo is about NICs); ``-a``
includes them. Labels are padded with dots to column 44, as on QNX.

An interface with offloads (the ``capabilities``/``enabled`` rows of its stats file, NetBSD
IFCAP_* bits) gets three more rows after the MTUs: ``Receive Checksumming Enabled`` and
``Transmit Checksumming Enabled`` (QNX's labels; the enabled protocols space-separated in
QNX's spelling, ``IPv4 TCPv4 UDPv4 TCPv6 UDPv6``) and ``TCP Segmentation Offload Enabled``
(``TSOv4 TSOv6``); ``None`` when nothing of that kind is enabled.
"""

import argparse
import os
import re

from .common import ToolError, parse_fields, read_text, require_stack, run

IFT_LOOP = 0x18

# (label, ((IFCAP_* bit, name), ...)): NetBSD sys/net/if.h bits, QNX nicinfo names.
_OFFLOAD_ROWS = (
    ("Receive Checksumming Enabled", ((0x00100, "IPv4"), (0x00400, "TCPv4"), (0x01000, "UDPv4"),
                                      (0x04000, "TCPv6"), (0x10000, "UDPv6"))),
    ("Transmit Checksumming Enabled", ((0x00200, "IPv4"), (0x00800, "TCPv4"), (0x02000, "UDPv4"),
                                       (0x08000, "TCPv6"), (0x20000, "UDPv6"))),
    ("TCP Segmentation Offload Enabled", ((0x00080, "TSOv4"), (0x40000, "TSOv6"))),
)


def _row(label: str, value) -> str:
    return f"{label} ".ljust(44, ".") + f" {value}\n"


def _rate(media: str) -> str | None:
    m = re.search(r"(\d+)base\w*(?:\s+(full|half)-duplex)?", media)
    if not m:
        return None
    duplex = f" {m.group(2)}-duplex" if m.group(2) else ""
    return f"{int(m.group(1)):.2f} Mb/s{duplex}"


def _offload_rows(s: dict[str, str]) -> str:
    if not int(s.get("capabilities", "0"), 16):
        return ""
    enabled = int(s.get("enabled", "0"), 16)
    return "".join(_row(label, " ".join(name for bit, name in bits if enabled & bit) or "None")
                   for label, bits in _OFFLOAD_ROWS)


def report(s: dict[str, str]) -> str:
    n = lambda k: int(s.get(k, 0))  # noqa: E731
    mac = s.get("address", "-")
    node = mac.replace(":", "").upper()
    node = f"{node[:6]} {node[6:]}" if len(node) == 12 else "-"
    out = f"{s['name']}:\n  {s.get('description', '-')}\n\n"
    out += f"  Link is {'UP' if s.get('link') == 'up' else 'DOWN'}\n\n"
    out += _row("Physical Node ID", node)
    out += _row("Current Physical Node ID", node)
    rate = _rate(s.get("media", ""))
    if rate:
        out += _row("Current Operation Rate", rate)
    mtu = n("mtu")
    header = 14 if node != "-" else 0
    out += _row("Maximum Transmittable data Unit", mtu + header)
    out += _row("Maximum Receivable data Unit", mtu + header)
    out += _offload_rows(s)
    flags = int(s.get("flags", "0"), 16)
    out += _row("Promiscuous Mode", "On" if flags & 0x100 else "Off")
    out += _row("Multicast Support", "Enabled" if flags & 0x8000 else "Disabled")
    out += "\n"
    out += _row("Packets Transmitted OK", n("opackets"))
    out += _row("Bytes Transmitted OK", n("obytes"))
    out += _row("Multicast Packets Transmitted OK", n("omcasts"))
    out += _row("Transmit Errors", n("oerrors"))
    out += _row("Collisions on Transmit", n("collisions"))
    out += "\n"
    out += _row("Packets Received OK", n("ipackets"))
    out += _row("Bytes Received OK", n("ibytes"))
    out += _row("Multicast Packets Received OK", n("imcasts"))
    out += _row("Receive Errors", n("ierrors"))
    out += _row("Packets Dropped on Receive", n("iqdrops"))
    out += _row("Unknown Protocol on Receive", n("noproto"))
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="nicinfo", description="Show network interface information and counters.")
    p.add_argument("-a", action="store_true", help="include loopback interfaces")
    p.add_argument("interfaces", nargs="*", metavar="interface")
    args = p.parse_args(argv)
    sock = require_stack("nicinfo")
    names = args.interfaces or os.listdir(os.path.join(sock, "if"))
    reports = []
    for name in names:
        try:
            s = parse_fields(read_text(os.path.join(sock, "if", name, "stats")))
        except OSError:
            raise ToolError(f"nicinfo: {name}: No such device or address") from None
        if not args.interfaces and not args.a and int(s.get("type", "0"), 16) == IFT_LOOP:
            continue
        reports.append((int(s.get("index", 0)), report(s)))
    if not reports and not args.interfaces:
        raise ToolError("nicinfo: no network interfaces other than loopback (use -a to include them)")
    print("\n".join(r for _, r in sorted(reports)), end="")
    return 0


def entry() -> int:
    return run(main)
