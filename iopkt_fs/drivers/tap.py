"""devnp-tap: a Linux TAP device as the NIC; the host kernel is the peer on the other side.

Options (comma-separated, as every io-pkt driver takes them):

``dev=NAME``   the Linux device. Attached if it exists (e.g. made by ``ip tuntap add``),
               created otherwise; a device we created disappears when we detach. Default:
               the kernel picks ``tapN``.
``netns=NS``   the Linux side lives in the named network namespace (``ip netns add NS``).
``mac=MAC``    our station address; default a random locally administered MAC.
``mtu=N``      our MTU, also set on the Linux side (default: 1500 for a device we create,
               the device's own MTU for one we found).
``offload=0``  start with every offload switched off (``enabled=0``); ``ifconfig ltapN tso4
               tcp4csum ...`` can still switch them on. Default 1: all the kernel takes.

Offloads: the device is opened with ``IFF_VNET_HDR``, so every frame, both ways, starts with
a 10-byte struct virtio_net_hdr (wire/virtio.py; the stack strips and writes it, this
driver moves buffers untouched). ``TUNSETOFFLOAD`` is probed at attach with
CSUM|TSO4|TSO6|USO4|USO6; what the kernel takes becomes the interface's IFCAP_*
capabilities (TSO4/TSO6, TCP/UDP v4/v6 checksums). ``ifconfig ltapN -tso4 ...`` (SIOCSIFCAP)
is carried back to the kernel by ``apply_config``: with everything off the kernel hands us
plain frames of at most MTU + 14 bytes (after a zero header).

Link state follows the Linux side: the interface has carrier while the Linux device is up
(``ip link set NAME up``) and loses it when that device goes down.

Names: our interfaces are ``ltapN`` ("Linux TAP"); ``tapN`` belongs to the tap(4)
pseudo-interface behind ``P/dev/tap`` (stack/iface/if_tap.py). ``name=`` still chooses
any prefix, and enmap's ``en0`` still reaches the first Ethernet interface.
A vlan over this interface keeps the full MTU (ETHERCAP_VLAN_MTU): a Linux TAP carries
tagged frames of MTU + 18 bytes both ways.
"""

import errno
import fcntl
import os
import struct

import trio

from ..stack import slog
from ..stack.errors import StackError
from ..stack.iface.interface import (
    IFCAP_CSUM_TCPv4_Rx, IFCAP_CSUM_TCPv4_Tx, IFCAP_CSUM_TCPv6_Rx, IFCAP_CSUM_TCPv6_Tx,
    IFCAP_CSUM_UDPv4_Rx, IFCAP_CSUM_UDPv4_Tx, IFCAP_CSUM_UDPv6_Rx, IFCAP_CSUM_UDPv6_Tx,
    IFCAP_TSOv4, IFCAP_TSOv6, IFF_BROADCAST, IFF_MULTICAST, IFF_PROMISC, IFF_SIMPLEX, IFT_ETHER,
)
from ..stack.iface.if_vlan import ETHERCAP_VLAN_MTU
from ..stack.wire.virtio import VNET_HDR_LEN
from . import _linux
from ._linux import TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO
from .base import Driver

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000        # no 4-byte packet-information prefix: reads and writes are bare frames
IFF_VNET_HDR = 0x4000     # a struct virtio_net_hdr before every frame, both ways
TUN_DEV = "/dev/net/tun"
TAP_FLAGS = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR

# The largest frame a read can return: a GSO super-frame is at most GSO_LEGACY_MAX_SIZE
# (65536) bytes of IP, plus the Ethernet header and a VLAN tag.
GSO_FRAME_MAX = 65536 + 18
# A batch of at most this many frames is followed by another look at the queue before
# waiting (_receive): request/response traffic, whose answer the kernel queued during
# our own write(); a larger one is a bulk flow, left to grow its next batch.
REDRAIN_MAX = 4
# A wake-up that took a single frame no longer than this (with its virtio_net_hdr) makes
# the next one read one frame first (_receive): shorter than any full-sized segment.
LONE_MAX = 512

# TUNSETOFFLOAD bit -> the capabilities it gives the interface. TUN_F_CSUM ("you can hand
# me unchecksummed packets") is what makes the kernel's frames carry NEEDS_CSUM; we offer
# the Tx checksums with it, as the kernel takes NEEDS_CSUM/GSO frames from us either way
# (tun_get_user -> virtio_net_hdr_to_skb). USO has no IFCAP bit: it rides on tso4.
IFCAP_RX_CSUM = IFCAP_CSUM_TCPv4_Rx | IFCAP_CSUM_UDPv4_Rx | IFCAP_CSUM_TCPv6_Rx | IFCAP_CSUM_UDPv6_Rx
IFCAP_TX_CSUM = IFCAP_CSUM_TCPv4_Tx | IFCAP_CSUM_UDPv4_Tx | IFCAP_CSUM_TCPv6_Tx | IFCAP_CSUM_UDPv6_Tx
CAPS_FOR_TUN = ((TUN_F_CSUM, IFCAP_RX_CSUM | IFCAP_TX_CSUM), (TUN_F_TSO4, IFCAP_TSOv4), (TUN_F_TSO6, IFCAP_TSOv6))

# Back from ``enabled`` to TUNSETOFFLOAD (apply_config): CSUM while any Rx checksum is on;
# each further bit needs CSUM (tun.c set_offload ignores TSO without it) and every
# capability listed beside it.
TUN_FOR_ENABLED = ((TUN_F_TSO4, IFCAP_TSOv4), (TUN_F_TSO6, IFCAP_TSOv6),
                   (TUN_F_USO, IFCAP_TSOv4 | IFCAP_CSUM_UDPv4_Rx | IFCAP_CSUM_UDPv6_Rx))


def capabilities_for(tun_flags: int) -> int:
    """What the TUNSETOFFLOAD bits the kernel accepted let the interface offload."""
    return sum(caps for bit, caps in CAPS_FOR_TUN if tun_flags & bit)


def tun_offload_for(enabled: int, accepted: int) -> int:
    """The TUNSETOFFLOAD bits for an interface's ``enabled`` capabilities."""
    if not enabled & IFCAP_RX_CSUM:
        return 0
    flags = TUN_F_CSUM
    for bit, needs in TUN_FOR_ENABLED:
        if enabled & needs == needs:
            flags |= bit
    return flags & accepted


def open_tap(dev: str | None, flags: int = TAP_FLAGS) -> tuple[int, str]:
    """Open /dev/net/tun and TUNSETIFF it -> (fd, device name), in the caller's namespace."""
    try:
        fd = os.open(TUN_DEV, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise StackError(exc.errno, f"{TUN_DEV}: {exc.strerror}") from None
    req = bytearray(struct.pack("16sH22x", (dev or "tap%d").encode(), flags))
    try:
        fcntl.ioctl(fd, TUNSETIFF, req)
    except OSError as exc:
        os.close(fd)
        # EBUSY: another process holds it; EINVAL: a tun, not a tap; EPERM: not ours.
        raise StackError(exc.errno, f"TUNSETIFF {dev or 'tap%d'}: {exc.strerror}") from None
    return fd, req[:16].rstrip(b"\0").decode()


def setup_offload(fd: int) -> tuple[int, int]:
    """A 10-byte vnet header, then as many offloads as the kernel takes -> (accepted, refused)."""
    _linux.tun_set_vnet_hdr_len(fd, VNET_HDR_LEN)
    return _linux.tun_probe_offload(fd, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO)

MEDIA_UP = "Ethernet autoselect (tap full-duplex)"
MEDIA_DOWN = "Ethernet autoselect (none)"


class TapDriver(_linux.LinkFollower, Driver):
    MEDIA_UP, MEDIA_DOWN = MEDIA_UP, MEDIA_DOWN
    name = "devnp-tap"
    description = "Linux TAP device"
    KNOWN = frozenset({"dev", "netns", "mac", "mtu", "offload"})
    max_mtu = 65521   # tun.c: MAX_MTU minus the Ethernet header
    ethercap = ETHERCAP_VLAN_MTU

    def __init__(self, ctx, options):
        super().__init__(ctx, options)
        self.fd: int | None = None
        self.dev: str | None = None
        self.netns: str | None = None
        self.created = False
        self.watcher: _linux.LinkWatcher | None = None
        self.bufsize = GSO_FRAME_MAX + VNET_HDR_LEN
        self.accepted = 0     # TUNSETOFFLOAD bits this kernel takes (the probe's answer)
        self.refused = 0      # ... and those it refused (logged once, at attach)
        self.offload = 0      # TUNSETOFFLOAD bits set on the device now
        self.promisc = False  # IFF_PROMISC carried to the Linux side

    # -- attach / detach --------------------------------------------------------------------

    def attach(self):
        opts = self.options
        opts.check_known(self.KNOWN)
        dev = opts.get("dev")
        self.netns = opts.get("netns") or None
        mtu = opts.get_int("mtu", None, minimum=68, maximum=self.max_mtu)
        offload = opts.get_int("offload", 1, minimum=0, maximum=1)
        mac = _linux.mac_option(opts, getattr(self.ctx.stack, "rng", None))
        if dev is not None and (not dev or len(dev.encode()) >= _linux.IFNAMSIZ or "/" in dev):
            raise StackError(errno.EINVAL, f"option dev={dev}: not a Linux interface name")
        self.fd, self.dev, self.created, self.watcher, mtu = _linux.in_netns(self.netns, self._open, dev, mtu)
        self.bufsize = self._bufsize(mtu)
        try:
            caps = capabilities_for(self.accepted)
            iface = self.ctx.new_interface(
                "ltap", kind=IFT_ETHER, mtu=mtu, mac=mac,
                flags=IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST,
                media=MEDIA_DOWN, description=f"TAP {self.dev}" + (f" (netns {self.netns})" if self.netns else ""),
                capabilities=caps, enabled=caps if offload else 0, vnet_hdr=VNET_HDR_LEN)
            self._set_offload(iface)
        except BaseException:
            self._close()
            raise
        refused = self.refused
        if refused:
            self.ctx.log(slog.NOTICE, f"{iface.name}: {self.dev}: the kernel refused offloads "
                                      f"{_linux.tun_flag_names(refused)}")
        return self._adopt(iface)

    @staticmethod
    def _bufsize(mtu: int) -> int:
        return max(GSO_FRAME_MAX, mtu + 18) + VNET_HDR_LEN

    def _open(self, dev: str | None, mtu: int | None):
        """In the device's namespace: open (or create) the tap, size it, watch its link.

        Without mtu=, a device we create gets 1500 and one we found keeps its own MTU,
        which we then use too.
        """
        existed = dev is not None and _linux.exists(dev)
        fd, name = open_tap(dev)
        watcher = None
        try:
            try:
                self.accepted, self.refused = setup_offload(fd)
                self.offload = self.accepted    # the probe leaves these set
            except OSError as exc:
                raise StackError(exc.errno, f"TUNSETOFFLOAD {name}: {exc.strerror}") from None
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
            if not self.created and self.offload:
                # The offloads of a persistent tap outlive our fd (tun->set_features): the
                # next opener may read without a vnet header, so it gets plain frames back.
                try:
                    _linux.tun_set_offload(self.fd, 0)
                except OSError:
                    pass
            self.offload = 0
            _linux.close_fd(self.fd)   # a tap we created goes away with its last fd
            self.fd = None

    def detach(self):
        self._close()
        self.interfaces = []

    def apply_config(self, iface) -> None:
        """``ifconfig ltapN mtu N``: the Linux side follows, so full-size frames pass both
        ways; the receive buffer grows with it. ``ifconfig ltapN [-]tso4 ...``: the
        kernel's offloads follow ``enabled``; IFF_PROMISC (a bridge member) is set on
        the Linux device too."""
        if self.watcher is None or self.dev is None:
            return
        if _linux.get_mtu(self.watcher.ctl, self.dev) != iface.mtu:
            _linux.set_mtu(self.watcher.ctl, self.dev, iface.mtu)
        self.bufsize = self._bufsize(iface.mtu)
        self._set_offload(iface)
        # A bridge member is promiscuous (ifpromisc): so is the Linux side.
        promisc = bool(iface.flags & IFF_PROMISC)
        if promisc != self.promisc:
            _linux.set_promisc(self.watcher.ctl, self.dev, promisc)
            self.promisc = promisc

    def _set_offload(self, iface) -> None:
        """Re-issue TUNSETOFFLOAD when ``enabled`` maps to other bits than the device has."""
        flags = tun_offload_for(iface.enabled, self.accepted)
        if flags != self.offload and self.fd is not None:
            _linux.tun_set_offload(self.fd, flags)
            self.offload = flags

    # -- data path (link reports and run(): _linux.LinkFollower) ---------------------------

    def _attached(self) -> bool:
        return self.fd is not None

    async def _receive(self):
        fd = self.fd
        if fd is None:
            return      # detached before this task first ran
        iface = self.interfaces[0]
        ctx = self.ctx
        wait_readable = trio.lowlevel.wait_readable
        read = os.read
        failing = False
        # The last wake-up took one short frame in all (a ping, a slow request/response):
        # the next one most likely brings one too, so its first read takes one frame and
        # hands it to the stack at once - the read that finds the queue empty comes after
        # the answer is written, not before. Any other traffic, and a lone full-sized
        # segment (a bulk flow the stack keeps up with, whose next batch should stay
        # whole for GRO), reads up to the budget.
        lone = False
        while True:
            # trio's wait itself, not _linux.wait_readable around it: a ping's frame
            # arrives after the CPU idled, when each Python call costs microseconds, and
            # every frame between the task's top and trio's trap is resumed before the
            # frame is read (docs/performance.md, "Ping, side by side").
            try:
                await wait_readable(fd)
            except (trio.ClosedResourceError, ValueError, OSError):
                return      # closed under us (detach)
            if self.fd != fd:
                return
            # After a small batch the queue is looked at again at once (NAPI's poll
            # loop), within one budget: what the stack sent while processing it often
            # has its answer queued by the time write() returns (the kernel runs its
            # receive path inside the write: a SYN-ACK's ACK, a FIN's ACK), and reading
            # it now saves a wait for readiness (an epoll re-arm and a pass through the
            # run loop). After a larger batch - a bulk flow - the task waits as before:
            # the next batch then has time to grow, and coalesces better (inet/gro.py).
            frames_left, bytes_left = _linux.BATCH, _linux.BATCH_BYTES
            limit = 1 if lone else frames_left
            ctx.hold()
            try:
                while True:
                    try:
                        # apply_config may grow bufsize
                        if limit == 1:
                            frames = [read(fd, self.bufsize)]     # drain_fd's loop, once
                        else:
                            frames = _linux.drain_fd(fd, self.bufsize, limit, bytes_left)
                        failing = False
                    except BlockingIOError:
                        frames = []
                        failing = False
                    except OSError as exc:
                        # EIO/EBADFD: the device is going away under us. Count every
                        # failure, log the first of a streak, and back off (below) so a
                        # dead fd cannot spin the loop.
                        iface.stats.ierrors += 1
                        if not failing:
                            self.ctx.log(slog.WARNING, f"{iface.name}: read {self.dev}: {exc.strerror}")
                        failing = True
                        break
                    if not frames:
                        break
                    # Each still starts with its virtio_net_hdr: the stack strips it.
                    ctx.input(iface, frames)
                    if len(frames) > REDRAIN_MAX or self.fd != fd:
                        break          # a bulk batch (or a detach): wait for readiness
                    frames_left -= len(frames)
                    bytes_left -= sum(map(len, frames))
                    if frames_left <= 0 or bytes_left <= 0:
                        break
                    limit = frames_left
            finally:
                ctx.release()
            lone = frames_left == _linux.BATCH - 1 and bytes_left > _linux.BATCH_BYTES - LONE_MAX
            if failing:
                if self.watcher is not None and self.watcher.is_up() is None:
                    return    # the device is gone for good: the watcher reported it
                await trio.sleep(0.1)

    def transmit(self, iface, frames):
        """Frames from the stack already start with their virtio_net_hdr: written as-is."""
        fd = self.fd
        if fd is None:
            iface.stats.oerrors += len(frames)
            return
        write = os.write
        for frame in frames:
            try:
                write(fd, frame)
            except BlockingIOError:
                # The tap's queue (txqueuelen) is full: drop, as a NIC with a full ring does.
                iface.stats.oerrors += 1
            except OSError:
                # EIO: the Linux side is down; the kernel would not take it anyway.
                iface.stats.oerrors += 1


iopkt_drvr_entry = TapDriver
