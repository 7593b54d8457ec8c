"""nicinfo: driver and counter report for network interfaces (reference/qnx.md §4.3).

    nicinfo [-a] [interface ...]

Without names it reports every interface except loopbacks (nicinfo is about NICs); ``-a``
includes them. Labels are padded with dots to column 44, as on QNX.
"""

import argparse
import os
import re

from .common import ToolError, parse_fields, read_text, require_stack, run

IFT_LOOP = 0x18


def _row(label: str, value) -> str:
    return f"{label} ".ljust(44, ".") + f" {value}\n"


def _rate(media: str) -> str | None:
    m = re.search(r"(\d+)base\w*(?:\s+(full|half)-duplex)?", media)
    if not m:
        return None
    duplex = f" {m.group(2)}-duplex" if m.group(2) else ""
    return f"{int(m.group(1)):.2f} Mb/s{duplex}"


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
