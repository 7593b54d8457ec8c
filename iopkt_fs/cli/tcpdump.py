"""tcpdump over the stack's live capture (``P/dev/socket/if/IF/pcap``).

    iopkt tcpdump [-i IF] [-w FILE] [-c N] [-n] [expression]

The expression is compiled by libpcap (``pcapfilter.py``), so it means what it means to
tcpdump. Without ``-w`` each matching frame is printed in tcpdump's one-line form
(``12:00:00.123456 IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 1, length 64``,
the common protocols decoded); with ``-w`` the matching records are written to a pcap file
(``-`` for stdout). On exit, as tcpdump does, stderr gets the counts: captured, received by
the filter (the frames the stack handed this reader) and dropped (those it lost for reading
too slowly: its ``pcapstat`` line). Names are never resolved, so ``-n`` changes nothing.
"""

import ipaddress
import os
import struct
import sys
import time

from ..drivers.pcapfile import PcapReader, PcapWriter
from .common import ToolError, parse_fields, read_text, require_stack
from .pcapfilter import Filter, FilterError

USAGE = "usage: tcpdump [-n] [-c count] [-i interface] [-w file] [expression]"
LINK_NAMES = {1: "EN10MB (Ethernet)", 101: "RAW (Raw IP)"}


def _parse(argv: list[str]) -> dict:
    opts = {"i": None, "w": None, "c": None, "n": False}
    words: list[str] = []
    while argv:
        word = argv.pop(0)
        if word == "--":
            words += argv
            break
        if not word.startswith("-") or word == "-":
            words.append(word)
            continue
        letters = word[1:]
        while letters:
            c, letters = letters[0], letters[1:]
            if c in "nN":
                opts["n"] = True
            elif c in "iwc":
                value = letters or (argv.pop(0) if argv else None)
                letters = ""
                if value is None:
                    raise ToolError(f"tcpdump: option requires an argument -- '{c}'\n{USAGE}")
                opts[c] = value
            else:
                raise ToolError(f"tcpdump: invalid option -- '{c}'\n{USAGE}")
    if opts["c"] is not None:
        try:
            opts["c"] = int(opts["c"])
        except ValueError:
            raise ToolError(f"tcpdump: invalid packet count {opts['c']}") from None
        if opts["c"] <= 0:
            raise ToolError(f"tcpdump: invalid packet count {opts['c']}")
    opts["expression"] = " ".join(words)
    return opts


def _default_interface(sock: str) -> str:
    names = parse_fields(read_text(os.path.join(sock, "status"))).get("interfaces", "").split()
    for name in names:
        if not name.startswith("lo"):
            return name
    if names:
        return names[0]
    raise ToolError("tcpdump: no suitable device found")


def _own_stats(sock: str, name: str) -> tuple[int, int] | None:
    """(recv, drop) of this process's reader, from ``pcapstat``."""
    try:
        text = read_text(os.path.join(sock, "if", name, "pcapstat"))
    except OSError:
        return None
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] == str(os.getpid()):
            return int(f[3]), int(f[5])
    return None


def main(argv: list[str]) -> int:
    opts = _parse(list(argv))
    sock = require_stack("tcpdump")
    name = opts["i"] or _default_interface(sock)
    path = os.path.join(sock, "if", name, "pcap")
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ToolError(f"tcpdump: {name}: {os.strerror(exc.errno) if exc.errno else exc}") from None
    captured = 0
    out = writer = None
    try:
        reader = PcapReader(f, linktype=None)
        flt = None
        if opts["expression"]:
            try:
                flt = Filter(opts["expression"], reader.linktype)
            except FilterError as exc:
                raise ToolError(f"tcpdump: {exc}") from None
        if opts["w"] is not None:
            out = sys.stdout.buffer if opts["w"] == "-" else open(opts["w"], "wb")
            writer = PcapWriter(out, linktype=reader.linktype, snaplen=reader.snaplen)
            out.flush()
        kind = LINK_NAMES.get(reader.linktype, str(reader.linktype))
        print(f"tcpdump: listening on {name}, link-type {kind}, snapshot length {reader.snaplen} bytes",
              file=sys.stderr, flush=True)
        limit = opts["c"]
        try:
            for ts, frame in reader:
                if flt is not None and not flt.matches(frame):
                    continue
                captured += 1
                if writer is not None:
                    writer.write(frame, ts)
                    out.flush()
                else:
                    print(f"{_stamp(ts)} {describe(frame, reader.linktype)}", flush=True)
                if limit is not None and captured >= limit:
                    break
        except KeyboardInterrupt:
            pass
        stats = _own_stats(sock, name)
    finally:
        f.close()
        if out is not None and out is not sys.stdout.buffer:
            out.close()
    recv, drop = stats if stats is not None else (captured, 0)
    print(f"{captured} packet{'s' if captured != 1 else ''} captured\n"
          f"{recv} packet{'s' if recv != 1 else ''} received by filter\n"
          f"{drop} packet{'s' if drop != 1 else ''} dropped by kernel", file=sys.stderr)
    return 0


def _stamp(ts: float) -> str:
    sec = int(ts)
    return time.strftime("%H:%M:%S", time.localtime(sec)) + f".{int((ts - sec) * 1e6):06d}"


# -- one-line decoding, in tcpdump's words (print-*.c) -----------------------------------

_TCP_FLAGS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
              (0x40, "E"), (0x80, "W"))
_ICMP = {0: "echo reply", 8: "echo request", 3: "unreachable", 11: "time exceeded",
         5: "redirect", 12: "parameter problem"}
_ICMP6 = {128: "echo request", 129: "echo reply", 1: "destination unreachable",
          2: "packet too big", 3: "time exceeded", 133: "router solicitation",
          134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement"}


def describe(frame: bytes, linktype: int) -> str:
    try:
        if linktype == 1:
            return _ether(frame)
        return _ip(frame)
    except (struct.error, IndexError, ValueError):
        return f"[|truncated] length {len(frame)}"


def _ether(frame: bytes) -> str:
    etype = struct.unpack_from("!H", frame, 12)[0]
    body = frame[14:]
    if etype == 0x8100:
        tci, etype = struct.unpack_from("!HH", frame, 14)
        return f"vlan {tci & 0xFFF}, p {tci >> 13}, " + _by_type(etype, frame[18:])
    return _by_type(etype, body)


def _by_type(etype: int, body: bytes) -> str:
    if etype == 0x0800 or etype == 0x86DD:
        return _ip(body)
    if etype == 0x0806:
        return _arp(body)
    return f"ethertype 0x{etype:04x}, length {len(body) + 14}"


def _arp(body: bytes) -> str:
    op = struct.unpack_from("!H", body, 6)[0]
    sha, spa = body[8:14], body[14:18]
    tpa = body[24:28]
    s, t = ipaddress.IPv4Address(spa), ipaddress.IPv4Address(tpa)
    if op == 1:
        return f"ARP, Request who-has {t} tell {s}, length {len(body)}"
    if op == 2:
        mac = ":".join(f"{b:02x}" for b in sha)
        return f"ARP, Reply {s} is-at {mac}, length {len(body)}"
    return f"ARP, op {op}, length {len(body)}"


def _ip(pkt: bytes) -> str:
    version = pkt[0] >> 4
    if version == 4:
        ihl = (pkt[0] & 0xF) * 4
        total = struct.unpack_from("!H", pkt, 2)[0]
        proto = pkt[9]
        frag = struct.unpack_from("!H", pkt, 6)[0]
        src, dst = ipaddress.IPv4Address(pkt[12:16]), ipaddress.IPv4Address(pkt[16:20])
        payload = pkt[ihl:total]
        if frag & 0x1FFF:
            return f"IP {src} > {dst}: ip-proto-{proto}"
        return _transport("IP", src, dst, proto, payload)
    if version == 6:
        plen, nh = struct.unpack_from("!HB", pkt, 4)
        src, dst = ipaddress.IPv6Address(pkt[8:24]), ipaddress.IPv6Address(pkt[24:40])
        return _transport("IP6", src, dst, nh, pkt[40:40 + plen])
    return f"IP{version} [|ip], length {len(pkt)}"


def _transport(fam: str, src, dst, proto: int, p: bytes) -> str:
    if proto == 6:
        sport, dport, seq, ack, off, flags, win = struct.unpack_from("!HHIIBBH", p, 0)
        data = len(p) - (off >> 4) * 4
        names = "".join(n for bit, n in _TCP_FLAGS if flags & bit) or "none"
        text = f"{fam} {src}.{sport} > {dst}.{dport}: Flags [{names}]"
        if data or flags & 0x03:
            text += f", seq {seq}" + (f":{seq + data}" if data else "")
        if flags & 0x10:
            text += f", ack {ack}"
        return text + f", win {win}, length {data}"
    if proto == 17:
        sport, dport, length = struct.unpack_from("!HHH", p, 0)
        return f"{fam} {src}.{sport} > {dst}.{dport}: UDP, length {length - 8}"
    if proto == 1:
        kind, code = p[0], p[1]
        word = _ICMP.get(kind, f"type-#{kind}")
        if kind in (0, 8):
            ident, seq = struct.unpack_from("!HH", p, 4)
            word += f", id {ident}, seq {seq}"
        return f"{fam} {src} > {dst}: ICMP {word}, length {len(p)}"
    if proto == 58:
        kind = p[0]
        word = _ICMP6.get(kind, f"type-#{kind}")
        if kind in (128, 129):
            ident, seq = struct.unpack_from("!HH", p, 4)
            word += f", id {ident}, seq {seq}"
        return f"{fam} {src} > {dst}: ICMP6, {word}, length {len(p)}"
    if proto == 47:
        flags, ptype = struct.unpack_from("!HH", p, 0)
        text = f"{fam} {src} > {dst}: GREv{flags & 7}, proto 0x{ptype:04x}, length {len(p)}"
        # The optional words (RFC 2890): checksum+reserved, key, sequence number.
        inner = 4 + 4 * sum(1 for bit in (0x8000, 0x2000, 0x1000) if flags & bit)
        return text + (": " + _ip(p[inner:]) if ptype in (0x0800, 0x86DD) else "")
    if proto in (4, 41):
        return f"{fam} {src} > {dst}: " + _ip(p)
    return f"{fam} {src} > {dst}: ip-proto-{proto} {len(p)}"
