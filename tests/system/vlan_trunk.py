"""An 802.1Q trunk end for kernels without CONFIG_VLAN_8021Q (no ``ip link ... type vlan``).

    vlan_trunk.py TRUNK_DEV ACCESS_DEV VID

Run in the test's namespace. TRUNK_DEV is the Linux side of our devnp-tap (it carries
tagged frames); ACCESS_DEV is a Linux TAP this script creates, on which the kernel has the
vlan's address and speaks plain Ethernet. Frames tagged VID read from the trunk (an
AF_PACKET socket) lose their tag and go to the kernel through ACCESS_DEV; frames the
kernel sends on ACCESS_DEV get the tag (priority 0) and leave on the trunk: what the
kernel's own vlan device would do. Prints ``ready``; at SIGTERM prints the counts.
"""

import fcntl
import os
import select
import signal
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID = 0x10
# struct tpacket_auxdata: status, len, snaplen, mac, net, vlan_tci, vlan_tpid
AUXDATA = struct.Struct("IIIHHHH")

trunk_name, access_name, vid = sys.argv[1], sys.argv[2], int(sys.argv[3])
trunk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
trunk.bind((trunk_name, 0))
# Linux takes the tag off every received frame (skb_vlan_untag, 8021q or not) and hands
# it to packet sockets beside the frame, in the auxiliary data (as libpcap reads it).
trunk.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
trunk.setblocking(False)
access = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
fcntl.ioctl(access, TUNSETIFF, struct.pack("16sH", access_name.encode(), IFF_TAP | IFF_NO_PI))
tag = struct.pack("!HH", 0x8100, vid & 0x0FFF)
counts = {"untagged": 0, "tagged": 0, "other": 0}
running = True


def tagged_vid(frame: bytes, ancillary) -> int | None:
    for level, kind, data in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUXDATA.size:
            status, _, _, _, _, tci, _ = AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID:
                return tci & 0x0FFF
    if frame[12:14] == b"\x81\x00":
        return struct.unpack_from("!H", frame, 14)[0] & 0x0FFF
    return None


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
poller = select.poll()
poller.register(trunk.fileno(), select.POLLIN)
poller.register(access, select.POLLIN)
while running:
    try:
        events = poller.poll(250)
    except InterruptedError:
        continue
    for fd, _ in events:
        for _ in range(256):
            try:
                if fd == access:
                    frame = os.read(access, 65536)
                else:
                    frame, anc, _, addr = trunk.recvmsg(65536, socket.CMSG_SPACE(AUXDATA.size))
            except (BlockingIOError, InterruptedError):
                break
            if fd == access:
                trunk.send(frame[:12] + tag + frame[12:])
                counts["tagged"] += 1
            elif addr[2] == PACKET_OUTGOING:
                continue                      # our own sends, seen again on the socket
            elif tagged_vid(frame, anc) == vid:
                if frame[12:14] == b"\x81\x00":
                    frame = frame[:12] + frame[16:]
                try:
                    os.write(access, frame)
                    counts["untagged"] += 1
                except OSError:
                    pass
            else:
                counts["other"] += 1
print("done", " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
