"""Relay between one of our device nodes (P/dev/tun0, P/dev/tap ...) and a Linux TUN/TAP.

    pseudo_relay.py OUR_NODE LINUX_DEV tun|tap [ifhead]

Run inside the test's network namespace with ``nsenter --net=`` (the mount namespace, and
so our FUSE mount, stays the test's). Opens our node (O_NONBLOCK), prints ``ifname NAME``
(the ``user.ifname`` attribute: TAPGIFNAME's stand-in), creates the Linux device with
IFF_TUN|IFF_NO_PI (raw IP, like our default tun framing) or IFF_TAP|IFF_NO_PI (frames),
prints ``ready``, then copies one packet per read each way until SIGTERM, in one thread
with poll(): a FUSE file shared by threads serialises read and write on the file's
position lock, so a blocked read would hold up a write from another thread
(docs/pseudo-interfaces.md). With ``ifhead`` our side carries the BSD 4-byte address
family, translated from/to the IP version (never passed through); a header other than 2
or 24 is counted, and the counts are printed at exit.
"""

import errno
import fcntl
import os
import select
import signal
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_TAP, IFF_NO_PI = 0x0001, 0x0002, 0x1000
AF = {4: 2, 6: 24}

ours_path, linux_name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ifhead = "ifhead" in sys.argv[4:]
bad = 0
seen = {2: 0, 24: 0}

ours = os.open(ours_path, os.O_RDWR | os.O_NONBLOCK)
print("ifname", os.getxattr(ours, "user.ifname").decode(), flush=True)
linux = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
flags = (IFF_TUN if mode == "tun" else IFF_TAP) | IFF_NO_PI
fcntl.ioctl(linux, TUNSETIFF, struct.pack("16sH", linux_name.encode(), flags))
print("ready", flush=True)
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
poller = select.poll()
poller.register(ours, select.POLLIN)
poller.register(linux, select.POLLIN)
while running:
    try:
        events = poller.poll(250)
    except InterruptedError:
        continue
    for fd, _ in events:
        # Drain what is there, one packet per read, bounded per wakeup.
        for _ in range(256):
            try:
                pkt = os.read(fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.EHOSTDOWN:    # ours, not configured yet
                    break
                raise
            if fd == linux:
                if ifhead:
                    pkt = struct.pack("!I", AF.get(pkt[0] >> 4, 0)) + pkt
                try:
                    os.write(ours, pkt)
                except OSError:
                    pass          # what our side refuses (EIO, EAFNOSUPPORT) is dropped
            else:
                if ifhead:
                    family = struct.unpack_from("!I", pkt)[0]
                    if family not in seen:
                        bad += 1
                        continue
                    seen[family] += 1
                    pkt = pkt[4:]
                try:
                    os.write(linux, pkt)
                except OSError:
                    pass          # Linux side down (EIO) or full: dropped, as a wire would
print(f"done bad={bad} inet={seen[2]} inet6={seen[24]}", flush=True)
