"""devnp-packet: take over an existing Linux interface with an AF_PACKET raw socket.

The Linux interface keeps working for the kernel; we are a second station on the same
wire. By default we use our own (random) MAC and put the interface into promiscuous mode
through a packet-socket membership (PACKET_MR_PROMISC: counted by the kernel, dropped
automatically when the socket closes, unlike ``ip link set promisc on``).

Choosing the interface:

``if=NAME``        by name.
``vid=``/``did=``  a USB adapter by vendor and product id (hex like ``0x0b95`` or decimal),
``devno=``/``busno=``  narrowed by USB device and bus number, as QNX's USB network drivers
                   take them (reference/qnx.md §1.4). Matched through sysfs: for each
                   ``class/net/NAME`` the USB device is ``device/..`` (``device`` is the USB
                   interface, e.g. ``1-1:1.0``; its parent holds ``idVendor``, ``idProduct``,
                   ``devnum``, ``busnum``). The first match in name order wins.
``sysfs=PATH``     where sysfs is (default ``/sys``), so tests can point at a fake tree.

Other options: ``netns=NS`` (the interface lives in that namespace), ``mac=MAC`` (our
address; ``mac=device`` uses the Linux interface's own, which needs no promiscuous mode
but shares the address with the kernel), ``mtu=N`` (default: the Linux interface's),
``promisc=0`` (no promiscuous membership). Link state follows the Linux interface.
"""

import errno
import os
import socket
import struct

import trio

from ..stack.errors import StackError
from ..stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER
from . import _linux
from .base import Driver

# <linux/if_ether.h>, <linux/if_packet.h>
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4            # sll_pkttype of frames this host sends: not ours to input
PACKET_IGNORE_OUTGOING = 23    # Linux 4.20+: do not even queue them

MEDIA_UP = "Ethernet autoselect (packet)"
MEDIA_DOWN = "Ethernet autoselect (none)"


def _read_int(path: str, base: int) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip(), base)
    except (OSError, ValueError):
        return None


def usb_ids(sysfs: str, ifname: str) -> dict[str, int | None] | None:
    """The USB identity of network interface ``ifname`` or None when it is not on USB."""
    device = os.path.join(sysfs, "class", "net", ifname, "device")
    if not os.path.exists(device):
        return None
    # device -> the USB interface (1-1:1.0); its parent is the USB device with the ids.
    # Some trees (and usbnet on old kernels) point device at the USB device itself.
    for usb_dev in (os.path.realpath(os.path.join(device, "..")), os.path.realpath(device)):
        vid = _read_int(os.path.join(usb_dev, "idVendor"), 16)
        if vid is not None:
            return {
                "vid": vid,
                "did": _read_int(os.path.join(usb_dev, "idProduct"), 16),
                "devno": _read_int(os.path.join(usb_dev, "devnum"), 10),
                "busno": _read_int(os.path.join(usb_dev, "busnum"), 10),
            }
    return None


def find_usb_interface(sysfs: str, wanted: dict[str, int]) -> str:
    """The first network interface (by name) whose USB ids match every given one."""
    net = os.path.join(sysfs, "class", "net")
    try:
        names = sorted(os.listdir(net))
    except OSError as exc:
        raise StackError(errno.ENODEV, f"{net}: {exc.strerror}") from None
    for name in names:
        ids = usb_ids(sysfs, name)
        if ids is not None and all(ids.get(k) == v for k, v in wanted.items()):
            return name
    spec = ",".join(f"{k}={v:#06x}" if k in ("vid", "did") else f"{k}={v}" for k, v in wanted.items())
    raise StackError(errno.ENODEV, f"no network interface matches {spec}")


class PacketDriver(_linux.LinkFollower, Driver):
    MEDIA_UP, MEDIA_DOWN = MEDIA_UP, MEDIA_DOWN
    name = "devnp-packet"
    description = "Linux AF_PACKET attachment"
    KNOWN = frozenset({"if", "vid", "did", "devno", "busno", "sysfs", "netns", "mac", "mtu", "promisc"})
    max_mtu = 65521

    def __init__(self, ctx, options):
        super().__init__(ctx, options)
        self.sock: socket.socket | None = None
        self.watcher: _linux.LinkWatcher | None = None
        self.dev: str | None = None
        self.netns: str | None = None
        self.promisc = False

    def attach(self):
        opts = self.options
        opts.check_known(self.KNOWN)
        dev = opts.get("if")
        wanted = {k: v for k in ("vid", "did") if (v := opts.get_int(k, None, minimum=0, maximum=0xFFFF)) is not None}
        wanted.update({k: v for k in ("devno", "busno") if (v := opts.get_int(k, None, minimum=0)) is not None})
        sysfs = opts.get("sysfs") or "/sys"
        if dev and wanted:
            raise StackError(errno.EINVAL, "give either if= or vid=/did=/devno=/busno=, not both")
        if not dev:
            if not wanted:
                raise StackError(errno.EINVAL, "option if= (or vid=/did=) is required")
            dev = find_usb_interface(sysfs, wanted)
        self.dev = dev
        self.netns = opts.get("netns") or None
        mtu_opt = opts.get_int("mtu", None, minimum=68, maximum=self.max_mtu)
        mac_text = opts.get("mac")
        promisc = opts.get("promisc") is None or opts.get_flag("promisc")

        self.sock, self.watcher, hwaddr, linux_mtu, ifindex = _linux.in_netns(self.netns, self._open, dev)
        try:
            if mac_text == "device":
                mac = hwaddr
            else:
                mac = _linux.mac_option(opts, getattr(self.ctx.stack, "rng", None))
            # Our own MAC differs from the device's: without promiscuous mode the NIC
            # would filter out every unicast frame addressed to us.
            if promisc and mac != hwaddr:
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")   # struct packet_mreq
                self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
                self.promisc = True
            iface = self.ctx.new_interface(
                "pkt", kind=IFT_ETHER, mtu=mtu_opt or linux_mtu, mac=mac,
                flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST, media=MEDIA_DOWN,
                description=f"AF_PACKET on {dev}" + (f" (netns {self.netns})" if self.netns else ""))
        except BaseException:
            self._close()
            raise
        return self._adopt(iface)

    def _open(self, dev: str):
        if not _linux.exists(dev):
            raise StackError(errno.ENODEV, f"no Linux interface {dev}")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                 socket.htons(ETH_P_ALL))
        except OSError as exc:
            raise StackError(exc.errno, f"AF_PACKET socket: {exc.strerror}") from None
        watcher = None
        try:
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass    # older kernel: the pkttype check in run() does the same
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
                except OSError:
                    pass
            sock.bind((dev, ETH_P_ALL))
            watcher = _linux.LinkWatcher(dev)
            return (sock, watcher, _linux.get_hwaddr(watcher.ctl, dev), _linux.get_mtu(watcher.ctl, dev),
                    socket.if_nametoindex(dev))
        except BaseException as exc:
            if watcher is not None:
                watcher.close()
            sock.close()
            if isinstance(exc, OSError):
                raise StackError(exc.errno or errno.EIO, f"{dev}: {exc.strerror}") from None
            raise

    def _close(self):
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        if self.sock is not None:
            _linux.close_fd(self.sock)   # the promiscuous membership goes with it
            self.sock = None

    def detach(self):
        self._close()
        self.interfaces = []

    def _attached(self) -> bool:
        return self.sock is not None

    async def _receive(self):
        sock = self.sock
        if sock is None:
            return      # detached before this task first ran
        iface = self.interfaces[0]
        recvfrom = sock.recvfrom
        while await _linux.wait_readable(sock) and self.sock is sock:
            frames = []
            for _ in range(_linux.BATCH):
                try:
                    data, addr = recvfrom(65536)
                except BlockingIOError:
                    break
                except OSError:
                    iface.stats.ierrors += 1
                    break
                # addr = (ifname, proto, pkttype, hatype, hwaddr)
                if addr[2] != PACKET_OUTGOING:
                    frames.append(data)
            if frames:
                self.ctx.input(iface, frames)

    def transmit(self, iface, frames):
        sock = self.sock
        if sock is None:
            iface.stats.oerrors += len(frames)
            return
        send = sock.send
        for frame in frames:
            try:
                send(frame)
            except OSError:
                # ENOBUFS/EAGAIN: the device queue is full; ENETDOWN: the Linux side is down.
                iface.stats.oerrors += 1


iopkt_drvr_entry = PacketDriver
