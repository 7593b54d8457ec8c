"""bridge(4) of the hc variants: a learning Ethernet bridge between member interfaces
(reference/pseudo-if.md §4; NetBSD if_bridge.c as QNX ships it).

Theory of operation
-------------------
``ifconfig bridge0 create`` makes an IFT_BRIDGE interface with no link address whose
``driver`` is its ``Bridge``; ``brconfig`` talks to it through the interface ctl
(``Bridge.verbs``: add, delete, [-]discover, [-]learn, maxaddr, timeout, static, deladdr,
flush, flushall; up/down are the ordinary flags) and reads ``Bridge.render(now)`` from
``if/bridge0/bridge``. Forwarding happens only while bridge0 is RUNNING (up).

A member (Ethernet only, the bridge's MTU, in no other bridge) is put in promiscuous
mode, which its driver carries to the device (a TAP's Linux side), and gets two hooks:
``iface.bridge`` (``Stack.input`` hands the member's batches to ``input``) and
``iface.if_output`` (what the stack sends on the member goes through ``output``).

Input, per frame (bridge_input): frames from one of our own members' MACs are dropped;
802.1D BPDUs are consumed (no STP here); the source is learned on a LEARNING member (not
over a static entry, not past ``maxaddr``); a frame for a member's MAC is ours, delivered
with that member as the receiving interface; a broadcast or multicast is forwarded to the
other members and delivered locally on the arrival member if it has an address, else on
the first member that has one (QNX); other unicast goes where its address was learned
(never back out the arrival port) or, unknown, to every DISCOVER member but the arrival.
Output (bridge_output): to the member the destination was learned on, else to the
sending member and every DISCOVER member; broadcasts to all members.

Frames keep their virtio header between members that carry one (the device finishes
the work); toward a member without one, the work is done in software (inet/gso.py).

Timers are data: dynamic entries carry their expiry; ``poll(now)`` prunes every 300 s
(NetBSD's bridge_timer period, so ageing has 5-minute granularity); timeout 0 keeps
entries forever.
"""

from __future__ import annotations

import errno

import attrs

from ..errors import StackError
from ..inet import gso
from ..time import MICROS_PER_SECOND, Instant
from .interface import (
    IFF_PROMISC, IFF_RUNNING, IFF_SHIM, IFF_UP, IFT_BRIDGE, IFT_ETHER, Interface, flag_names,
)

IFBIF_LEARNING = 0x1
IFBIF_DISCOVER = 0x2
IFBIF_STP = 0x4
IFBAF_STATIC = 0x1
MEMBER_BITS = ((IFBIF_LEARNING, "LEARNING"), (IFBIF_DISCOVER, "DISCOVER"), (IFBIF_STP, "STP"))
MAXADDR = 100             # BRIDGE_RTABLE_MAX
TIMEOUT = 1200            # BRIDGE_RTABLE_TIMEOUT (s)
PRUNE_PERIOD = 300 * MICROS_PER_SECOND   # BRIDGE_RTABLE_PRUNE_PERIOD
BPDU_DST = bytes.fromhex("0180c2000000")


@attrs.define
class Member:
    iface: Interface
    flags: int = IFBIF_LEARNING | IFBIF_DISCOVER
    priority: int = 128
    path_cost: int = 55


@attrs.define
class Entry:
    mac: bytes
    iface: Interface
    expire: Instant | None        # None: static
    flags: int = 0


@attrs.define
class BridgeStat:
    own: int = 0          # frames from one of our members' MACs, heard again
    bpdu: int = 0         # spanning-tree frames consumed
    filtered: int = 0     # unicast whose destination is on the arrival port
    forwarded: int = 0    # frames sent on to another member
    runt: int = 0         # shorter than an Ethernet header


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    try:
        mac = bytes(int(p, 16) for p in parts)
    except ValueError:
        mac = b""
    if len(parts) != 6 or len(mac) != 6 or any(len(p) > 2 or not p for p in parts):
        raise StackError(errno.EINVAL, f"bad link-level address {text!r}")
    return mac


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class Bridge:
    """One bridge interface (NetBSD's bridge_softc)."""

    def __init__(self, stack, iface: Interface):
        self.stack = stack
        self.iface = iface
        self.members: list[Member] = []     # newest first, as brconfig lists them
        self.cache: dict[bytes, Entry] = {}
        self.maxaddr = MAXADDR
        self.timeout = TIMEOUT
        self.next_prune: Instant | None = None
        self.stats = BridgeStat()
        self.interfaces = [iface]
        self.files = {"bridge": self.render}
        self.verbs = {
            "add": self._add, "delete": self._delete, "maxaddr": self._maxaddr,
            "timeout": self._timeout, "static": self._static, "deladdr": self._deladdr,
            "flush": lambda a: self._flush(a, static=False), "flushall": lambda a: self._flush(a, static=True),
        }
        for word, bit in (("discover", IFBIF_DISCOVER), ("learn", IFBIF_LEARNING)):
            self.verbs[word] = lambda a, bit=bit: self._member_flag(a, bit, True)
            self.verbs[f"-{word}"] = lambda a, bit=bit: self._member_flag(a, bit, False)

    # -- configuration ------------------------------------------------------------------

    def _args(self, args: list[str], n: int) -> list[str]:
        if len(args) != n:
            raise StackError(errno.EINVAL, f"expected {n} argument(s)")
        return args

    def _member(self, name: str) -> Member:
        for m in self.members:
            if m.iface.name == name:
                return m
        raise StackError(errno.ENOENT, f"{name} is not a member of {self.iface.name}")

    def _add(self, args) -> None:
        (name,) = self._args(args, 1)
        iface = self.stack._by_name.get(name)
        if iface is None:
            raise StackError(errno.ENOENT, f"no interface {name}")
        if iface.flags & IFF_SHIM:
            raise StackError(errno.EOPNOTSUPP, f"{name} is an io-net interface")
        if iface.kind != IFT_ETHER or iface.mac is None:
            raise StackError(errno.EINVAL, f"{name} is not an Ethernet interface")
        if iface.mtu != self.iface.mtu:
            raise StackError(errno.EINVAL, f"{name} has mtu {iface.mtu}, {self.iface.name} {self.iface.mtu}")
        if iface.bridge is self:
            raise StackError(errno.EEXIST, f"{name} is already a member")
        if iface.bridge is not None or iface.if_output is not None:
            raise StackError(errno.EBUSY, f"{name} belongs to another bridge")
        self.members.insert(0, Member(iface))
        iface.bridge = self
        iface.if_output = self.output
        self.stack.set_flags(iface, set_bits=IFF_PROMISC)

    def _delete(self, args) -> None:
        (name,) = self._args(args, 1)
        self.release(self._member(name))

    def release(self, m: Member) -> None:
        self.members.remove(m)
        iface = m.iface
        iface.bridge = None
        iface.if_output = None
        self.cache = {k: e for k, e in self.cache.items() if e.iface is not iface}
        if iface.index in self.stack.interfaces:
            self.stack.set_flags(iface, clear_bits=IFF_PROMISC)

    def _member_flag(self, args, bit: int, on: bool) -> None:
        (name,) = self._args(args, 1)
        m = self._member(name)
        m.flags = m.flags | bit if on else m.flags & ~bit

    def _number(self, word: str, low: int = 0, high: int = 0xFFFFFFFF) -> int:
        try:
            value = int(word, 0)
        except ValueError:
            raise StackError(errno.EINVAL, f"invalid value {word!r}") from None
        if not low <= value <= high:
            raise StackError(errno.EINVAL, f"value {value} out of range")
        return value

    def _maxaddr(self, args) -> None:
        (word,) = self._args(args, 1)
        self.maxaddr = self._number(word)
        # Shrinking trims: dynamic entries first, oldest expiry first (bridge_rttrim).
        dynamic = sorted((e for e in self.cache.values() if e.expire is not None), key=lambda e: e.expire)
        while len(self.cache) > self.maxaddr and dynamic:
            del self.cache[dynamic.pop(0).mac]

    def _timeout(self, args) -> None:
        (word,) = self._args(args, 1)
        self.timeout = self._number(word)

    def _static(self, args) -> None:
        name, text = self._args(args, 2)
        m = self._member(name)
        mac = parse_mac(text)
        if mac[0] & 1:
            raise StackError(errno.EINVAL, f"{text} is a multicast address")
        if mac not in self.cache and len(self.cache) >= self.maxaddr:
            raise StackError(errno.ENOSPC, "the address cache is full")
        self.cache[mac] = Entry(mac, m.iface, None, IFBAF_STATIC)

    def _deladdr(self, args) -> None:
        (text,) = self._args(args, 1)
        if self.cache.pop(parse_mac(text), None) is None:
            raise StackError(errno.ENOENT, f"{text} is not in the address cache")

    def _flush(self, args, static: bool) -> None:
        self._args(args, 0)
        self.cache = {k: e for k, e in self.cache.items() if e.expire is None and not static}

    def destroy_interface(self, iface: Interface) -> None:
        for m in list(self.members):
            self.release(m)
        self.stack.bridges.pop(iface.index, None)
        self.stack.timers_changed()

    # -- learning and ageing ----------------------------------------------------------------

    def learn(self, mac: bytes, iface: Interface, now: Instant) -> None:
        entry = self.cache.get(mac)
        expire = now + self.timeout * MICROS_PER_SECOND if self.timeout else now + (1 << 62)
        if entry is None:
            if len(self.cache) >= self.maxaddr:
                return
            self.cache[mac] = Entry(mac, iface, expire)
            if self.next_prune is None:
                self.next_prune = now + PRUNE_PERIOD
                self.stack.timers_changed()    # Stack.poll_at caches the earliest deadline
        elif entry.expire is not None:
            entry.iface = iface            # a host that moved ports
            entry.expire = expire

    def poll(self, now: Instant) -> None:
        if self.next_prune is None or now < self.next_prune:
            return
        self.cache = {k: e for k, e in self.cache.items() if e.expire is None or e.expire > now}
        dynamic = any(e.expire is not None for e in self.cache.values())
        self.next_prune = now + PRUNE_PERIOD if dynamic else None
        self.stack.timers_changed()

    # -- the data path --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self.iface.flags & IFF_RUNNING)

    def _send(self, out: Interface, frame, vh) -> None:
        """One frame out of a member: its virtio header kept where the member carries one."""
        if not out.flags & IFF_UP:
            return
        if vh is None:
            self.stack.link_transmit(out, bytes(frame))
        elif out.vnet_hdr:
            self.stack.link_transmit(out, bytes(vh) + bytes(frame), framed=True)
        else:
            # The offload work the header asked for (IPv4 or IPv6), done here.
            tx = gso.rx_offload(vh, frame[14:]) if frame[12:14] in (b"\x08\x00", b"\x86\xdd") else None
            if tx is None:
                self.stack.link_transmit(out, bytes(frame))
                return
            head = bytes(frame[:14])
            for p in gso.finalize(bytes(frame[14:]), tx, out.mtu):
                self.stack.link_transmit(out, head + p)

    def _local_iface(self, arrival: Interface) -> Interface:
        """Where a broadcast is ours (QNX): the arrival member if it has an address, else
        the first member with an IPv4 or a global IPv6 one, else the arrival member."""
        if arrival.addrs:
            return arrival
        for m in self.members:
            for ifa in m.iface.addrs:
                if ifa.address.version == 4 or not ifa.address.is_link_local:
                    return m.iface
        return arrival

    def input(self, arrival: Interface, items, now: Instant) -> list:
        """A member's batch: forward; return the ``(iface, frame, vh)`` items that are ours."""
        if not self.running:
            return [(arrival, mv, vh) for mv, vh in items]
        mine = []
        st = self.stats
        macs = {m.iface.mac: m for m in self.members}
        arriving = macs.get(arrival.mac)
        for mv, vh in items:
            if len(mv) < 14:
                st.runt += 1
                continue
            dst = bytes(mv[:6])
            src = bytes(mv[6:12])
            if src in macs:
                st.own += 1
                continue
            if dst == BPDU_DST:
                st.bpdu += 1
                continue
            if arriving is not None and arriving.flags & IFBIF_LEARNING and not src[0] & 1:
                self.learn(src, arrival, now)
            if dst[0] & 1:
                for m in self.members:
                    if m.iface is not arrival:
                        st.forwarded += 1
                        self._send(m.iface, mv, vh)
                mine.append((self._local_iface(arrival), mv, vh))
                continue
            member = macs.get(dst)
            if member is not None:
                mine.append((member.iface, mv, vh))
                continue
            entry = self.cache.get(dst)
            if entry is not None:
                if entry.iface is arrival:
                    st.filtered += 1
                else:
                    st.forwarded += 1
                    self._send(entry.iface, mv, vh)
                continue
            for m in self.members:
                if m.iface is not arrival and m.flags & IFBIF_DISCOVER:
                    st.forwarded += 1
                    self._send(m.iface, mv, vh)
        return mine

    def output(self, iface: Interface, frame, framed: bool = False) -> None:
        """What the stack sends on a member (bridge_output)."""
        stack = self.stack
        if not self.running:
            stack.link_transmit(iface, frame, framed)
            return
        hl = iface.vnet_hdr if framed else 0
        mv = memoryview(frame)
        vh, body = (mv[:hl], mv[hl:]) if hl else (None, mv)
        dst = bytes(body[:6])
        if dst[0] & 1:
            targets = [m.iface for m in self.members]
        else:
            entry = self.cache.get(dst)
            if entry is not None:
                targets = [entry.iface]
            else:
                targets = [m.iface for m in self.members if m.iface is iface or m.flags & IFBIF_DISCOVER]
        for out in targets:
            if out is iface:
                stack.link_transmit(iface, frame, framed)
            else:
                self._send(out, body, vh)

    # -- brconfig's view -----------------------------------------------------------------

    def render(self, now: Instant) -> str:
        """``brconfig bridge0`` (NB4 brconfig.c status()): printb always shows <>."""
        f = self.iface.flags
        lines = [f"{self.iface.name}: flags={f:x}<{flag_names(f)}>",
                 "\tConfiguration:",
                 "\t\tpriority 32768 hellotime 2 fwddelay 15 maxage 20",
                 "\t\tipfilter disabled flags 0x0",
                 "\tInterfaces:"]
        for m in self.members:
            names = ",".join(n for bit, n in MEMBER_BITS if m.flags & bit)
            lines.append(f"\t\t{m.iface.name} flags={m.flags:x}<{names}>")
            lines.append(f"\t\t\tport {m.iface.index & 0xFF} priority {m.priority}")
        lines.append(f"\tAddress cache (max cache: {self.maxaddr}, timeout: {self.timeout}):")
        lines += ["\t" + line for line in self.addresses(now)]
        return "\n".join(lines) + "\n"

    def addresses(self, now: Instant) -> list[str]:
        """The cache lines (``brconfig bridge0 addr`` prints them with one tab)."""
        out = []
        for e in self.cache.values():
            if e.expire is None:
                left = 0
            elif not self.timeout:
                left = 0
            else:
                left = max(0, (e.expire - now) // MICROS_PER_SECOND)
            word = "STATIC" if e.flags & IFBAF_STATIC else ""
            out.append(f"\t{mac_text(e.mac)} {e.iface.name} {left} flags={e.flags:x}<{word}>")
        return out


class BridgeLayer:
    """The ``bridge`` cloner and the hooks every bridge needs (ageing, departed members)."""

    def __init__(self, stack):
        self.stack = stack
        stack.bridges = {}
        stack.cloners["bridge"] = self.create
        stack.layers.append(self)

    def create(self, prefix: str, unit: int) -> Interface:
        iface = Interface(name=f"{prefix}{unit}", index=0, kind=IFT_BRIDGE, mtu=1500, flags=0,
                          description="bridge")
        bridge = Bridge(self.stack, iface)
        iface.driver = bridge
        iface.if_output = _no_output
        self.stack.attach(iface)
        self.stack.bridges[iface.index] = bridge
        return iface

    def interface_detached(self, iface: Interface) -> None:
        bridge = iface.bridge
        if bridge is not None:
            for m in list(bridge.members):
                if m.iface is iface:
                    bridge.release(m)
        gone = self.stack.bridges.pop(iface.index, None)
        self.stack.timers_changed()
        if gone is not None:
            for m in list(gone.members):
                gone.release(m)

    def poll(self, now: Instant) -> None:
        for bridge in self.stack.bridges.values():
            bridge.poll(now)

    def poll_at(self) -> Instant | None:
        if not self.stack.bridges:   # the usual case, asked after every request
            return None
        return min((b.next_prune for b in self.stack.bridges.values() if b.next_prune is not None), default=None)


def _no_output(iface: Interface, frame, framed: bool = False) -> None:
    # bridge0 has no link address: the stack's own traffic uses the members (NetBSD 4).
    iface.stats.oerrors += 1


def install(stack) -> BridgeLayer:
    return BridgeLayer(stack)
