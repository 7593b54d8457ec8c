"""devnp-tap: a Linux TAP device as the NIC; the host kernel is the peer on the other side.

Options (comma-separated, as every io-pkt driver takes them):

``dev=NAME``   the Linux device. Attached if it exists (e.g. made by ``ip tuntap add``),
               created otherwise; a device we created disappears when we detach. Default:
               the kernel picks ``tapN``.
``netns=NS``   the Linux side lives in the named network namespace (``ip netns add NS``).
``mac=MAC``    our station address; default a random locally administered MAC.
``mtu=N``      our MTU, also set on the Linux side (default: 1500 for a device we create,
               the device's own MTU for one we found).

Link state follows the Linux side: the interface has carrier while the Linux device is up
(``ip link set NAME up``) and loses it when that device goes down.
"""

import errno
import fcntl
import os
import struct

import trio

from ..stack import slog
from ..stack.errors import StackError
from ..stack.iface.interface import IFF_BROADCAST, IFF_MULTICAST, IFF_SIMPLEX, IFT_ETHER
from . import _linux
from .base import Driver

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000        # no 4-byte packet-information prefix: reads and writes are bare frames
IFF_VNET_HDR = 0x4000     # reserved for the offload work (TUNSETOFFLOAD / virtio_net_hdr)
TUN_DEV = "/dev/net/tun"

MEDIA_UP = "Ethernet autoselect (tap full-duplex)"
MEDIA_DOWN = "Ethernet autoselect (none)"


class TapDriver(_linux.LinkFollower, Driver):
    MEDIA_UP, MEDIA_DOWN = MEDIA_UP, MEDIA_DOWN
    name = "devnp-tap"
    description = "Linux TAP device"
    KNOWN = frozenset({"dev", "netns", "mac", "mtu"})
    max_mtu = 65521   # tun.c: MAX_MTU minus the Ethernet header

    # Hooks for IFF_VNET_HDR offloads: a subclass sets ``vnet_hdr_len`` (10 or 12, see
    # <linux/virtio_net.h>), adds IFF_VNET_HDR in ``tun_flags`` and overrides ``rx_frames``/
    # ``tx_frame`` to strip and prepend the header. Plain frames need none of it.
    tun_flags = IFF_TAP | IFF_NO_PI
    vnet_hdr_len = 0

    def __init__(self, ctx, options):
        super().__init__(ctx, options)
        self.fd: int | None = None
        self.dev: str | None = None
        self.netns: str | None = None
        self.created = False
        self.watcher: _linux.LinkWatcher | None = None
        self.bufsize = 65536

    # -- attach / detach --------------------------------------------------------------------

    def attach(self):
        opts = self.options
        opts.check_known(self.KNOWN)
        dev = opts.get("dev")
        self.netns = opts.get("netns") or None
        mtu = opts.get_int("mtu", None, minimum=68, maximum=self.max_mtu)
        mac = _linux.mac_option(opts, getattr(self.ctx.stack, "rng", None))
        if dev is not None and (not dev or len(dev.encode()) >= _linux.IFNAMSIZ or "/" in dev):
            raise StackError(errno.EINVAL, f"option dev={dev}: not a Linux interface name")
        self.fd, self.dev, self.created, self.watcher, mtu = _linux.in_netns(self.netns, self._open, dev, mtu)
        self.bufsize = max(65536, mtu + 18) + self.vnet_hdr_len
        try:
            iface = self.ctx.new_interface(
                "tap", kind=IFT_ETHER, mtu=mtu, mac=mac,
                flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST,
                media=MEDIA_DOWN, description=f"TAP {self.dev}" + (f" (netns {self.netns})" if self.netns else ""))
        except BaseException:
            self._close()
            raise
        return self._adopt(iface)

    def _open(self, dev: str | None, mtu: int | None):
        """In the device's namespace: open (or create) the tap, size it, watch its link.

        Without mtu=, a device we create gets 1500 and one we found keeps its own MTU,
        which we then use too.
        """
        existed = dev is not None and _linux.exists(dev)
        try:
            fd = os.open(TUN_DEV, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise StackError(exc.errno, f"{TUN_DEV}: {exc.strerror}") from None
        watcher = None
        try:
            req = bytearray(struct.pack("16sH22x", (dev or "tap%d").encode(), self.tun_flags))
            try:
                fcntl.ioctl(fd, TUNSETIFF, req)
            except OSError as exc:
                # EBUSY: another process holds it; EINVAL: a tun, not a tap; EPERM: not ours.
                raise StackError(exc.errno, f"TUNSETIFF {dev or 'tap%d'}: {exc.strerror}") from None
            name = req[:16].rstrip(b"\0").decode()
            watcher = _linux.LinkWatcher(name)
            if not existed:
                # A device we create must not outlive us: closing the fd of a non-persistent
                # tap removes it (TUNSETPERSIST 0 is the default, said again for clarity).
                fcntl.ioctl(fd, TUNSETPERSIST, 0)
            if mtu is None:
                try:
                    mtu = 1500 if not existed else _linux.get_mtu(watcher.ctl, name)
                except OSError:
                    mtu = 1500
            elif mtu != 1500 or existed:
                try:
                    _linux.set_mtu(watcher.ctl, name, mtu)
                except OSError:
                    pass    # e.g. not ours to change: our side still uses mtu=
            return fd, name, not existed, watcher, mtu
        except BaseException:
            if watcher is not None:
                watcher.close()
            os.close(fd)
            raise

    def _close(self):
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        if self.fd is not None:
            _linux.close_fd(self.fd)   # a tap we created goes away with its last fd
            self.fd = None

    def detach(self):
        self._close()
        self.interfaces = []

    def apply_config(self, iface) -> None:
        """``ifconfig tapN mtu N``: the Linux side follows, so full-size frames pass both
        ways; the receive buffer grows with it."""
        if self.watcher is None or self.dev is None:
            return
        if _linux.get_mtu(self.watcher.ctl, self.dev) != iface.mtu:
            _linux.set_mtu(self.watcher.ctl, self.dev, iface.mtu)
        self.bufsize = max(65536, iface.mtu + 18) + self.vnet_hdr_len

    # -- data path (link reports and run(): _linux.LinkFollower) ---------------------------

    def _attached(self) -> bool:
        return self.fd is not None

    async def _receive(self):
        fd = self.fd
        iface = self.interfaces[0]
        bufsize = self.bufsize
        failing = False
        while await _linux.wait_readable(fd) and self.fd == fd:
            try:
                frames = _linux.drain_fd(fd, bufsize)
                failing = False
            except OSError as exc:
                # EIO/EBADFD: the device is going away under us. Count every failure, log
                # the first of a streak, and back off so a dead fd cannot spin the loop.
                iface.stats.ierrors += 1
                if not failing:
                    self.ctx.log(slog.WARNING, f"{iface.name}: read {self.dev}: {exc.strerror}")
                failing = True
                await trio.sleep(0.1)
                continue
            if frames:
                self.ctx.input(iface, self.rx_frames(frames))

    def rx_frames(self, frames: list[bytes]) -> list[bytes]:
        """Hook: turn what the fd gave into Ethernet frames (identity without a vnet header)."""
        return frames

    def tx_frame(self, frame) -> bytes:
        """Hook: what to write for one Ethernet frame (identity without a vnet header)."""
        return frame

    def transmit(self, iface, frames):
        fd = self.fd
        if fd is None:
            iface.stats.oerrors += len(frames)
            return
        write = os.write
        for frame in frames:
            try:
                write(fd, self.tx_frame(frame))
            except BlockingIOError:
                # The tap's queue (txqueuelen) is full: drop, as a NIC with a full ring does.
                iface.stats.oerrors += 1
            except OSError:
                # EIO: the Linux side is down; the kernel would not take it anyway.
                iface.stats.oerrors += 1


iopkt_drvr_entry = TapDriver
