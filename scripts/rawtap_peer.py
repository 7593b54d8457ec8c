#!/usr/bin/env python3
"""A minimal raw Python TAP peer: the ceiling any Python stack on a TAP can reach.

    ip netns exec NS python scripts/rawtap_peer.py --dev NAME --ip ADDR [--vnet] [--seconds S]
                                                   [--send HOST:PORT]

Not a stack: no trio, no timers, no checksum checks, one ``os.read``/``os.write`` per frame.

* receive (default): answers ARP for ADDR, ICMP echo, the TCP handshake on any port
  (MSS 1460, window scale 9, no SACK or timestamps), takes in-order data and ACKs each
  connection once per drained batch (at most 64 frames); a FIN is answered with FIN+ACK.
* ``--send HOST:PORT``: connects to a kernel receiver and sends for ``--seconds``, then FIN.
  Plain frames carry one MSS with a checksum computed here; with ``--vnet`` every write is a
  64 KB GSO_TCPV4 + NEEDS_CSUM frame with only the pseudo-header sum in the checksum field
  (the kernel segments and checksums). No SACK; three duplicate ACKs or
  a 20 ms stall go back to the last ACK (go-back-N).
* ``--vnet``: IFF_VNET_HDR + TUNSETOFFLOAD(CSUM|TSO4|TSO6), so the kernel also hands us
  64 KB super-frames; we strip the 10-byte virtio_net_hdr and never verify checksums.

The TAP is created in the namespace this runs in; the caller gives its Linux side an
address and brings it up after the line ``{"ready": ...}``. It runs until SIGTERM/SIGINT,
``--seconds`` (sender) or ``--limit`` seconds, and prints one JSON line: bytes, frames in and
out, CPU seconds of this process.
"""

import argparse
import fcntl
import json
import os
import random
import select
import signal
import socket
import struct
import time

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
VNET_NONE = bytes(10)
MSS = 1460
WSCALE = 9
BATCH = 64
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ones_sum(data) -> int:
    """The 16-bit one's complement sum of data (not inverted)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    n = int.from_bytes(data, "big")
    total = n % 0xFFFF
    return 0xFFFF if total == 0 and n else total


def checksum(data) -> int:
    return ~ones_sum(data) & 0xFFFF


def pseudo(src: bytes, dst: bytes, length: int) -> int:
    return ones_sum(src + dst + struct.pack("!BBH", 0, 6, length))


class Peer:
    def __init__(self, args):
        self.args = args
        self.ip = socket.inet_aton(args.ip)
        self.vnet = args.vnet
        self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if args.vnet else 0)
        fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH22x", args.dev.encode(), flags))
        if args.vnet:
            fcntl.ioctl(self.fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        self.mac = bytes([2, 0x52, 0x41, 0x57, random.randrange(256), 1])
        self.conns: dict = {}          # (peer ip, peer port, our port) -> [rcv_nxt, snd_nxt, mac, dirty]
        self.bytes = self.frames_in = self.frames_out = 0
        self.peer_mac = None           # sender mode: the kernel's MAC
        self.stop = False

    # -- output -----------------------------------------------------------------------------

    def write(self, frame: bytes, vnet: bytes = VNET_NONE) -> None:
        try:
            os.write(self.fd, vnet + frame if self.vnet else frame)
            self.frames_out += 1
        except BlockingIOError:
            pass

    def tcp_frame(self, mac, dst, sport, dport, seq, ack, flags, window=0xFFFF,
                  options=b"", payload=b"") -> bytes:
        doff = (20 + len(options)) // 4
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          doff << 4, flags, window, 0, 0) + options
        csum = checksum(struct.pack("!4s4sBBH", self.ip, dst, 0, 6, len(tcp) + len(payload))
                        + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
        return self.eth_ip(mac, dst, 6, tcp + payload)

    def eth_ip(self, mac, dst, proto, body, ident=0) -> bytes:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, 0x4000, 64, proto, 0,
                         self.ip, dst)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        return mac + self.mac + b"\x08\x00" + ip + body

    # -- input ------------------------------------------------------------------------------

    def drain(self) -> list:
        frames = []
        skip = 10 if self.vnet else 0
        while len(frames) < BATCH:
            try:
                frame = os.read(self.fd, 65536 + 10)
            except BlockingIOError:
                break
            frames.append(memoryview(frame)[skip:])
        self.frames_in += len(frames)
        return frames

    def arp(self, f) -> None:
        op, sha, spa, tpa = struct.unpack_from("!6xH6s4s6x4s", f, 14)
        if op == 1 and tpa == self.ip:
            reply = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, self.mac, self.ip, sha, spa)
            self.write(sha + self.mac + b"\x08\x06" + reply)
        elif op == 2 and self.peer_mac is None:
            self.peer_mac = bytes(sha)

    def ipv4(self, f):
        """Returns (src ip, tcp header offset, payload length, tcp fields) for TCP to us."""
        vihl, total, proto, src, dst = struct.unpack_from("!BxH5xB2x4s4s", f, 14)
        if dst != self.ip:
            return None
        ihl = (vihl & 15) * 4
        if proto == 1:
            if f[14 + ihl] == 8:            # echo request -> reply
                icmp = bytearray(f[14 + ihl:14 + total])
                icmp[0] = 0
                icmp[2:4] = b"\0\0"
                icmp[2:4] = struct.pack("!H", checksum(icmp))
                self.write(self.eth_ip(bytes(f[6:12]), src, 1, bytes(icmp)))
            return None
        if proto != 6:
            return None
        t = 14 + ihl
        sport, dport, seq, ack, doff, flags, window = struct.unpack_from("!HHIIBBH", f, t)
        plen = total - ihl - (doff >> 4) * 4
        return src, t, plen, sport, dport, seq, ack, flags, window

    def receive_batch(self, frames) -> None:
        dirty = []
        for f in frames:
            etype = f[12:14]
            if etype == b"\x08\x06":
                self.arp(f)
                continue
            if etype != b"\x08\x00":
                continue
            got = self.ipv4(f)
            if got is None:
                continue
            src, t, plen, sport, dport, seq, ack, flags, window = got
            key = (src, sport, dport)
            c = self.conns.get(key)
            if flags & RST:
                self.conns.pop(key, None)
                continue
            if flags & SYN:
                iss = random.getrandbits(32)
                c = self.conns[key] = [seq + 1, iss + 1, bytes(f[6:12]), False]
                opts = struct.pack("!BBHBBBB", 2, 4, MSS, 1, 3, 3, WSCALE)
                self.write(self.tcp_frame(c[2], src, dport, sport, iss, seq + 1, SYN | ACK,
                                          options=opts))
                continue
            if c is None:
                continue
            if plen and seq == c[0]:
                c[0] = (c[0] + plen) & 0xFFFFFFFF
                self.bytes += plen
                if not c[3]:
                    c[3] = True
                    dirty.append(key)
            elif plen and not c[3]:
                c[3] = True                  # out of order: a duplicate ACK
                dirty.append(key)
            if flags & FIN and (seq + plen) & 0xFFFFFFFF == c[0]:
                c[0] = (c[0] + 1) & 0xFFFFFFFF
                self.write(self.tcp_frame(c[2], src, dport, sport, c[1], c[0], FIN | ACK))
                del self.conns[key]
                if c[3]:
                    dirty.remove(key)
        for key in dirty:
            c = self.conns[key]
            c[3] = False
            self.write(self.tcp_frame(c[2], key[0], key[2], key[1], c[1], c[0], ACK))

    def serve(self) -> None:
        end = time.monotonic() + self.args.limit
        while not self.stop and time.monotonic() < end:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
            except InterruptedError:
                continue
            if ready:
                self.receive_batch(self.drain())

    # -- sender -----------------------------------------------------------------------------

    def send(self) -> None:
        host, port = self.args.send.rsplit(":", 1)
        dst, dport = socket.inet_aton(host), int(port)
        sport = random.randrange(20000, 60000)
        deadline = time.monotonic() + 5
        while self.peer_mac is None and time.monotonic() < deadline:       # ARP
            req = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, self.mac, self.ip,
                              bytes(6), dst)
            self.write(b"\xff" * 6 + self.mac + b"\x08\x06" + req)
            select.select([self.fd], [], [], 0.1)
            for f in self.drain():
                if f[12:14] == b"\x08\x06":
                    self.arp(f)
        if self.peer_mac is None:
            raise SystemExit("rawtap_peer: no ARP answer from " + host)
        mac = self.peer_mac
        iss = random.getrandbits(32)
        opts = struct.pack("!BBHBBBB", 2, 4, MSS, 1, 3, 3, WSCALE)
        rcv = scale = wnd = None
        deadline = time.monotonic() + 5
        while rcv is None and time.monotonic() < deadline:
            self.write(self.tcp_frame(mac, dst, sport, dport, iss, 0, SYN, options=opts))
            select.select([self.fd], [], [], 0.2)
            for f in self.drain():
                got = f[12:14] == b"\x08\x00" and self.ipv4(f)
                if got and got[7] & (SYN | ACK) == SYN | ACK and got[3] == dport:
                    rcv = (got[5] + 1) & 0xFFFFFFFF
                    scale = self.wscale_of(f, got[1])
                    wnd = got[8] << scale
        if rcv is None:
            raise SystemExit("rawtap_peer: no SYN+ACK from " + self.args.send)
        self.write(self.tcp_frame(mac, dst, sport, dport, iss + 1, rcv, ACK))
        seg = 44 * MSS if self.vnet else MSS
        payload = bytes(range(256)) * (seg // 256) + bytes(seg % 256)
        base = iss + 1                      # sequence number of byte 0
        una = nxt = 0                       # offsets from base
        ps = pseudo(self.ip, dst, 0)
        last_progress = time.monotonic()
        dups = 0
        end = time.monotonic() + self.args.seconds
        high = 0                            # the most ever sent: after `end`, only resends
        while not self.stop:
            now = time.monotonic()
            if now >= end and (una >= high or now > end + 3):
                break
            limit = min(wnd, 8 << 20)
            while nxt - una + seg <= limit and (now < end or nxt < high):
                self.write_segment(mac, dst, sport, dport, base + nxt, rcv, payload, ps)
                nxt += seg
                high = max(high, nxt)
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            for f in self.drain():
                got = f[12:14] == b"\x08\x00" and self.ipv4(f)
                if got and got[3] == dport and got[7] & ACK:
                    # offsets are unbounded, sequence numbers wrap: compare relative to una
                    adv = (got[6] - base - una) & 0xFFFFFFFF
                    if 0 < adv <= nxt - una:
                        una, last_progress, dups = una + adv, time.monotonic(), 0
                    elif adv == 0 and nxt > una:
                        dups += 1
                    wnd = got[8] << scale
            if nxt > una and (dups >= 3 or time.monotonic() - last_progress > 0.02):
                nxt, last_progress, dups = una, time.monotonic(), 0     # go back N
        fin = base + nxt
        deadline = time.monotonic() + 3
        done = False
        while not done and time.monotonic() < deadline:
            self.write(self.tcp_frame(mac, dst, sport, dport, fin, rcv, FIN | ACK))
            select.select([self.fd], [], [], 0.2)
            for f in self.drain():
                got = f[12:14] == b"\x08\x00" and self.ipv4(f)
                if got and got[3] == dport and got[7] & FIN:
                    done = True
                    self.write(self.tcp_frame(mac, dst, sport, dport, fin + 1, got[5] + 1, ACK))
        self.bytes = una

    def write_segment(self, mac, dst, sport, dport, seq, ack, payload, ps) -> None:
        n = len(payload)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          5 << 4, ACK | PSH, 0xFFFF, 0, 0)
        if self.vnet:
            # CHECKSUM_PARTIAL: the field holds the pseudo-header sum (with this length),
            # the kernel completes it for every segment it cuts.
            csum = fold(ps + 20 + n)
            vnet = struct.pack("<BBHHHH", 1, 1, 54, MSS, 34, 16)
        else:
            csum = checksum(tcp + payload + struct.pack("!4s4sBBH", self.ip, dst, 0, 6, 20 + n))
            vnet = VNET_NONE
        tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
        self.write(self.eth_ip(mac, dst, 6, tcp + payload), vnet)

    @staticmethod
    def wscale_of(f, t) -> int:
        doff = (f[t + 12] >> 4) * 4
        i, end = t + 20, t + doff
        while i < end:
            kind = f[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if kind == 3:
                return f[i + 2]
            i += max(2, f[i + 1])
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", required=True)
    ap.add_argument("--ip", required=True, help="our address on the TAP")
    ap.add_argument("--vnet", action="store_true", help="IFF_VNET_HDR + TUNSETOFFLOAD")
    ap.add_argument("--send", metavar="HOST:PORT", help="be the sender")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the sender sends")
    ap.add_argument("--limit", type=float, default=600.0, help="receive mode: exit after this")
    args = ap.parse_args()
    peer = Peer(args)

    def stop(*_):
        peer.stop = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"ready": args.dev, "mac": peer.mac.hex(":")}), flush=True)
    if args.send:
        input()                              # the caller says go once the link is up
        peer.send()
    else:
        peer.serve()
    t = os.times()
    print(json.dumps({"bytes": peer.bytes, "frames_in": peer.frames_in,
                      "frames_out": peer.frames_out, "cpu": t.user + t.system}), flush=True)


if __name__ == "__main__":
    main()
