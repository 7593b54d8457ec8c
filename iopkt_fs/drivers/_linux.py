"""Linux plumbing shared by the native drivers: MACs, network namespaces, ifreq ioctls,
link-state watching and batched fd draining.

Nothing here knows about the stack; the drivers combine these pieces.
"""

import ctypes
import errno
import fcntl
import os
import random
import socket
import struct
import threading

import trio

from ..stack import slog
from ..stack.errors import StackError

# Frames handed to the stack per trio wakeup. A wakeup costs ~10 us; a batch bounded at
# this size keeps one busy driver from starving the loop while amortising that cost.
BATCH = 256
BATCH_BYTES = 512 * 1024

# <linux/sockios.h>
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCGIFHWADDR = 0x8927
# <linux/if.h>: ifr_flags bits we read.
LINUX_IFF_UP = 0x1
LINUX_IFF_RUNNING = 0x40
IFNAMSIZ = 16
# <sched.h>
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"      # where `ip netns add NAME` puts its bind mounts

# <linux/rtnetlink.h>: the multicast group that reports link changes.
RTMGRP_LINK = 0x1

_libc = ctypes.CDLL(None, use_errno=True)


# -- MAC addresses ----------------------------------------------------------------------------

def parse_mac(text: str) -> bytes:
    """``aa:bb:cc:dd:ee:ff`` (also ``-`` separated, or 12 hex digits as QNX's mac= takes)."""
    raw = text.replace(":", "").replace("-", "").replace(".", "")
    try:
        mac = bytes.fromhex(raw)
    except ValueError:
        mac = b""
    if len(mac) != 6:
        raise StackError(errno.EINVAL, f"option mac={text}: not a MAC address")
    if mac[0] & 1:
        raise StackError(errno.EINVAL, f"option mac={text}: a multicast address cannot be a station address")
    return mac


def random_mac(rng: random.Random | None = None) -> bytes:
    """A locally administered unicast MAC (IEEE 802: bit 1 of the first octet set, bit 0 clear).

    ``rng`` makes it reproducible (tests, the stack's seed); otherwise os.urandom.
    """
    raw = bytearray(rng.randbytes(6) if rng is not None else os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return bytes(raw)


def mac_option(options, rng: random.Random | None = None, default: bytes | None = None) -> bytes:
    text = options.get("mac")
    if text is not None:
        return parse_mac(text)
    return default if default is not None else random_mac(rng)


# -- network namespaces -----------------------------------------------------------------------

def netns_path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise StackError(errno.EINVAL, f"option netns={name}: not a namespace name")
    path = os.path.join(NETNS_DIR, name)
    if not os.path.exists(path):
        raise StackError(errno.ENOENT, f"option netns={name}: no such network namespace")
    return path


def in_netns(name: str | None, fn, *args):
    """Run ``fn(*args)`` with the calling context switched into network namespace ``name``.

    setns(2) with CLONE_NEWNET changes only the calling *thread*, so a throwaway thread
    enters the namespace, makes its sockets/devices and exits; the fds it created stay bound
    to that namespace (a socket's netns is fixed at creation, a tun device's at TUNSETIFF).
    """
    if name is None:
        return fn(*args)
    path = netns_path(name)
    result: list = []

    def body():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise StackError(err, f"setns({name}): {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append((True, fn(*args)))
        except BaseException as exc:  # handed back to the caller's thread
            result.append((False, exc))

    thread = threading.Thread(target=body, name=f"netns-{name}")
    thread.start()
    thread.join()
    ok, value = result[0]
    if not ok:
        raise value
    return value


# -- ifreq ioctls on a control socket ---------------------------------------------------------

def _ifreq(name: str, payload: bytes = b"") -> bytearray:
    encoded = name.encode()
    if not encoded or len(encoded) >= IFNAMSIZ:
        raise StackError(errno.EINVAL, f"bad Linux interface name {name!r}")
    return bytearray(struct.pack("16s24s", encoded, payload))   # struct ifreq is 40 bytes


def control_socket() -> socket.socket:
    """A datagram socket for SIOC* ioctls; its netns is the caller's at creation."""
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)


def get_flags(ctl: socket.socket, name: str) -> int:
    req = _ifreq(name)
    fcntl.ioctl(ctl.fileno(), SIOCGIFFLAGS, req)
    return struct.unpack_from("H", req, 16)[0]


def set_promisc(ctl: socket.socket, name: str, on: bool) -> None:
    """IFF_PROMISC on the Linux device (what ``ip link set NAME promisc on`` does)."""
    flags = get_flags(ctl, name)
    wanted = flags | 0x100 if on else flags & ~0x100
    if wanted != flags:
        fcntl.ioctl(ctl.fileno(), SIOCSIFFLAGS, _ifreq(name, struct.pack("H", wanted)))


def get_mtu(ctl: socket.socket, name: str) -> int:
    req = _ifreq(name)
    fcntl.ioctl(ctl.fileno(), SIOCGIFMTU, req)
    return struct.unpack_from("i", req, 16)[0]


def set_mtu(ctl: socket.socket, name: str, mtu: int) -> None:
    fcntl.ioctl(ctl.fileno(), SIOCSIFMTU, _ifreq(name, struct.pack("i", mtu)))


def get_hwaddr(ctl: socket.socket, name: str) -> bytes:
    req = _ifreq(name)
    fcntl.ioctl(ctl.fileno(), SIOCGIFHWADDR, req)
    return bytes(req[18:24])    # struct sockaddr: sa_family (2) then sa_data


def exists(name: str) -> bool:
    """Is there a Linux interface ``name`` in the caller's (thread's) namespace?"""
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


# -- link state -------------------------------------------------------------------------------

class LinkWatcher:
    """Follows a Linux interface's state: RTM_NEWLINK events wake it, SIOCGIFFLAGS decides.

    Made inside the interface's namespace (see ``in_netns``). "Up" means the Linux side is
    administratively up and running (IFF_UP and IFF_RUNNING, i.e. it has carrier). A slow
    poll backs the netlink events in case a notification is lost (ENOBUFS on overrun).
    """

    POLL_SECONDS = 1.0

    def __init__(self, name: str):
        self.name = name
        self.ctl = control_socket()
        try:
            self.nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                    socket.NETLINK_ROUTE)
            self.nl.bind((0, RTMGRP_LINK))
        except OSError:
            self.nl = None    # no rtnetlink (odd container): polling alone still works

    def is_up(self) -> bool | None:
        """None when the interface is gone (deleted, or moved to another namespace)."""
        try:
            flags = get_flags(self.ctl, self.name)
        except (OSError, ValueError):   # ValueError: our control socket is already closed
            return None
        return bool(flags & LINUX_IFF_UP) and bool(flags & LINUX_IFF_RUNNING)

    async def watch(self, report) -> None:
        """Call ``report(up)`` now and whenever the state changes (``up`` is None once the
        device is gone: deleted, or moved out of the namespace); runs until cancelled."""
        last = object()
        while self.ctl.fileno() >= 0:
            state = self.is_up()
            if state != last:
                last = state
                report(state)
            with trio.move_on_after(self.POLL_SECONDS):
                if self.nl is None:
                    await trio.sleep_forever()
                if not await wait_readable(self.nl):
                    return
            if self.nl is not None:
                # Drain the notifications: their content does not matter, the ioctl does.
                for _ in range(64):
                    try:
                        self.nl.recv(65536)
                    except BlockingIOError:
                        break
                    except (OSError, ValueError):   # ENOBUFS: we missed some; the ioctl catches up
                        break

    def close(self) -> None:
        self.ctl.close()
        if self.nl is not None:
            close_fd(self.nl)


def close_fd(fd_or_sock) -> None:
    """Close something a trio task may be waiting on: wake the waiter first.

    trio requires notify_closing() before closing an fd another task waits on (it then gets
    ClosedResourceError); outside a trio run there is no waiter to tell.
    """
    try:
        trio.lowlevel.notify_closing(fd_or_sock)
    except RuntimeError:
        pass
    if isinstance(fd_or_sock, int):
        os.close(fd_or_sock)
    else:
        fd_or_sock.close()


async def wait_readable(fd_or_sock) -> bool:
    """Wait until readable; False once the fd has been closed under us (detach)."""
    try:
        await trio.lowlevel.wait_readable(fd_or_sock)
    except (trio.ClosedResourceError, ValueError, OSError):
        return False
    return not (hasattr(fd_or_sock, "fileno") and fd_or_sock.fileno() < 0)


# -- tun offloads (<linux/if_tun.h>) -------------------------------------------------------

TUNSETOFFLOAD = 0x400454D0      # _IOW('T', 208, unsigned int)
TUNSETVNETHDRSZ = 0x400454D8    # _IOW('T', 216, int)
TUN_F_CSUM = 0x01               # "You can hand me unchecksummed packets."
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_USO4 = 0x20               # Linux 6.2+; USO4 and USO6 only together
TUN_F_USO6 = 0x40
TUN_F_USO = TUN_F_USO4 | TUN_F_USO6
TUN_F_NAMES = ((TUN_F_CSUM, "CSUM"), (TUN_F_TSO4, "TSO4"), (TUN_F_TSO6, "TSO6"), (TUN_F_USO, "USO4|USO6"))

# Probe order: each group is tried on top of what was accepted before it. drivers/net/tun.c
# set_offload() honours TSO and USO only together with CSUM and answers -EINVAL for any bit
# it does not consume ("a way to test for new features"), so a group the kernel refuses
# costs one failed ioctl and the rest still get their turn.
OFFLOAD_GROUPS = (TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO)


def tun_flag_names(flags: int) -> str:
    return ",".join(name for bit, name in TUN_F_NAMES if flags & bit == bit) or "none"


def tun_set_vnet_hdr_len(fd: int, length: int) -> None:
    """TUNSETVNETHDRSZ: bytes of struct virtio_net_hdr in front of every frame (tun.c
    refuses fewer than sizeof(struct virtio_net_hdr), 10)."""
    fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", length))


def tun_set_offload(fd: int, flags: int) -> None:
    """TUNSETOFFLOAD: what the kernel may hand us (and so what it segments for us)."""
    fcntl.ioctl(fd, TUNSETOFFLOAD, flags)


def tun_probe_offload(fd: int, wanted: int) -> tuple[int, int]:
    """Switch on as much of ``wanted`` as this kernel takes -> (accepted, refused).

    One ioctl when the kernel knows every bit; otherwise group by group (OFFLOAD_GROUPS).
    The device is left with exactly ``accepted`` set.
    """
    try:
        tun_set_offload(fd, wanted)
        return wanted, 0
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    accepted = 0
    for group in OFFLOAD_GROUPS:
        if not wanted & group:
            continue
        try:
            tun_set_offload(fd, accepted | group)
            accepted |= group
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    tun_set_offload(fd, accepted)
    return accepted, wanted & ~accepted


# -- reading in batches -----------------------------------------------------------------------

def drain_fd(fd: int, bufsize: int, limit: int = BATCH, budget: int = BATCH_BYTES) -> list[bytes]:
    """Read frames from a non-blocking packet fd (tun) until EAGAIN, ``limit`` frames or
    ``budget`` bytes (NAPI's budget: with 64 KB super-frames 256 of them would hold the
    loop for milliseconds while FUSE requests - a reader waiting for this very data -
    queue behind them)."""
    frames = []
    read = os.read
    got = 0
    try:
        while len(frames) < limit and got < budget:
            frame = read(fd, bufsize)
            frames.append(frame)
            got += len(frame)
    except BlockingIOError:
        pass
    return frames


class LinkFollower:
    """For drivers whose one interface follows a Linux device's link (tap, packet).

    ``run`` keeps the driver's ``watcher`` (a LinkWatcher) reporting carrier changes beside
    the receive loop ``_receive``; ``_report_link`` passes them to the stack with the
    driver's ``MEDIA_UP``/``MEDIA_DOWN`` texts. A subclass says whether it still holds its
    device with ``_attached()``.
    """

    MEDIA_UP = "Ethernet autoselect"
    MEDIA_DOWN = "Ethernet autoselect (none)"

    def _attached(self) -> bool:
        raise NotImplementedError

    def _adopt(self, iface) -> list:
        """Finish attach: the interface is ours, and its carrier is the device's right now."""
        iface.link_up = False
        iface.driver = self
        self.interfaces = [iface]
        self._report_link(bool(self.watcher.is_up()))
        return self.interfaces

    def _report_link(self, up: bool | None) -> None:
        if not self.interfaces:
            return
        iface = self.interfaces[0]
        if up is None and getattr(self, "dev", None) is not None and self._attached():
            # The Linux device went away under us (ip link del, its namespace deleted):
            # nothing will come back on this fd. Say so once, and take the interface
            # down as a NIC whose hardware vanished (NetBSD if_detach would remove it;
            # we keep it, so ifconfig shows what happened and "destroy" or an unmount
            # cleans up). The rest of the stack is untouched.
            self.ctx.log(slog.WARNING, f"{iface.name}: {self.dev}: the Linux device is gone; "
                                       f"interface down")
            set_down = getattr(self.ctx, "set_down", None)
            if set_down is not None:
                set_down(iface)
        media = self.MEDIA_UP if up else self.MEDIA_DOWN
        set_link = getattr(self.ctx, "set_link", None)
        if set_link is not None:
            set_link(iface, up, media)
        else:
            iface.link_up, iface.media = up, media

    async def run(self):
        if not self._attached():
            return   # detached before the task first ran
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.watcher.watch, self._report_link)
            # The receive loop is a task of its own rather than awaited here: each
            # wake-up resumes every coroutine frame from the task's top down to trio's
            # trap, and this way Runtime._run_driver and run() are not among them.
            # (_receive returns at once if the device went away before it started.)
            nursery.start_soon(self._receive)
