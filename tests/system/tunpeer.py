"""The Linux side of a GRE or IP-in-IP tunnel, for kernels built without ip_gre/ipip.

This machine's kernel has no gre, ipip or sit devices (CONFIG_NET_IPGRE, CONFIG_NET_IPIP
and CONFIG_IPV6_SIT are off), so the kernel's tunnel end is made of what it does have: a
TUN device (``ktun``) carrying the kernel's own inner traffic (ping, TCP), and this relay,
which encapsulates what the kernel routes into ``ktun`` and sends it to the stack through
a raw socket, and hands the inner packet of every tunnel packet from the stack back to
the kernel through ``ktun``. The encapsulation is written here from the RFCs (RFC 2784's
4-byte header, protocol 47; RFC 2003, protocol 4; RFC 4213, protocol 41), independently
of the stack's code.

    python3 tunpeer.py gre|ipip|sit LOCAL REMOTE      (run in the namespace; stops when stdin closes)

Prints ``ready`` once ``ktun`` exists; counts what it relayed on exit (stderr).
"""

import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
PROTO = {"gre": 47, "ipip": 4, "sit": 41}
# What each mode carries: inner IP versions, and GRE's protocol type for each.
VERSIONS = {"gre": (4, 6), "ipip": (4,), "sit": (6,)}
GRE_TYPE = {4: 0x0800, 6: 0x86DD}
IP_MTU_DISCOVER, IP_PMTUDISC_DONT = 10, 0     # <linux/in.h>


def main() -> int:
    mode, local, remote = sys.argv[1], sys.argv[2], sys.argv[3]
    proto = PROTO[mode]
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH22x", b"ktun", IFF_TUN | IFF_NO_PI))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    raw.bind((local, 0))
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
    # No DF on the outer packet: a full-size inner packet is fragmented outside (RFC 2003 5.1).
    raw.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
    print("ready", flush=True)
    sent = received = skipped = 0
    while True:
        ready = select.select([tun, raw, sys.stdin], [], [], 30)[0]
        if not ready or sys.stdin in ready:
            break
        if tun in ready:
            inner = os.read(tun, 65536)
            if inner and inner[0] >> 4 in VERSIONS[mode]:
                # RFC 2784: C=0, reserved 0, version 0, then the EtherType of the payload.
                head = struct.pack("!HH", 0, GRE_TYPE[inner[0] >> 4]) if mode == "gre" else b""
                raw.sendto(head + inner, (remote, 0))
                sent += 1
        if raw in ready:
            pkt, (src, _) = raw.recvfrom(65536)
            if src != remote:
                continue
            ihl = (pkt[0] & 0x0F) * 4
            body = pkt[ihl:]
            if mode == "gre":
                flags, ptype = struct.unpack_from("!HH", body)
                if flags & 0x0007 or ptype not in GRE_TYPE.values():
                    skipped += 1
                    continue
                # Optional words (checksum, key, sequence) are skipped, as QNX does.
                body = body[4 + 4 * sum(1 for bit in (0x8000, 0x2000, 0x1000) if flags & bit):]
            os.write(tun, body)
            received += 1
    print(f"sent {sent} received {received} skipped {skipped}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
