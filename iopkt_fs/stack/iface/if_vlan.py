"""vlan(4): IEEE 802.1Q virtual LANs over an Ethernet parent.

NetBSD 4 semantics as io-pkt ships them (reference/pseudo-if.md §7):

* ``ifconfig vlan0 create; ifconfig vlan0 vlan 5 vlanif wan0`` (SIOCSETVLAN, here the
  interface ctl verb ``vlan 5 vlanif wan0``) attaches vlan0 to wan0 with tag 5;
  ``-vlanif`` detaches it (mtu 0, down, no link address). A tag must fit 12 bits (EINVAL); a configured
  vlan must be detached first (EBUSY); the parent must be Ethernet (EPROTONOSUPPORT, as
  NetBSD: QNX's dummy link address for other parents is not copied); the same tag twice
  on one parent is EEXIST (there could be no telling their frames apart).
* The vlan takes the parent's MAC and its BROADCAST|SIMPLEX|MULTICAST flags, and comes up
  with it. Its MTU is the parent's when the parent's driver says ETHERCAP_VLAN_MTU (it
  carries 1518-byte tagged frames: the tap pseudo-interface, devnp-tap), else the
  parent's less the 4 tag bytes (NetBSD's "fudge"); SIOCSIFMTU only lowers it.
* Output: the 802.1Q header (TPID 0x8100, TCI = priority 0 and the VID) goes in after the
  source MAC and the frame is padded to 64 bytes (60 + tag), then it leaves on the parent.
  Input: a tagged frame on the parent is untagged and handed to Ethernet input as
  received on the vlan whose (parent, VID) it carries; no such vlan: the parent's
  ``noproto`` and the link's ``vlan`` counter, as before.
* When the parent goes, its vlans are detached.

The vlan is an IFT_ETHER interface to the rest of the stack (ARP, ND and IPv6 link-local
addresses treat it as Ethernet); NetBSD's IFT_L2VLAN only shows in ``if/vlanN/stats``
``type`` here as 0x6. ifconfig prints ``vlan: TAG parent: IF`` (``parent: <none>``
without one) and no media lines.
"""

import errno
import struct

from ..errors import StackError
from ..wire.virtio import GSO_NONE, HDR as VNET_HDR, NEEDS_CSUM
from .interface import (
    IFF_BROADCAST, IFF_MULTICAST, IFF_RUNNING, IFF_SIMPLEX, IFF_UP, IFT_ETHER, Interface,
)

EVL_VLANOFTAG = 0x0FFF
ETHERCAP_VLAN_MTU = 0x1          # as in if_tap.py (NetBSD if_ether.h)
ETHER_VLAN_ENCAP_LEN = 4
_TPID = b"\x81\x00"
_TCI = struct.Struct("!H")
_MIN_TAGGED = 64                 # 60-byte minimum frame + the tag (vlan_zero_pad_buff)
_INHERITED = IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST


class VlanSoftc:
    """One vlan interface's configuration and its driver (output tagging)."""

    def __init__(self, cloner: "VlanCloner", iface: Interface):
        self.cloner = cloner
        self.stack = cloner.stack
        self.iface = iface
        self.tag = 0
        self.parent: Interface | None = None

    @property
    def max_mtu(self) -> int:
        parent = self.parent
        if parent is None:
            return 0
        if getattr(parent.driver, "ethercap", 0) & ETHERCAP_VLAN_MTU:
            return parent.mtu
        return parent.mtu - ETHER_VLAN_ENCAP_LEN

    def transmit(self, iface: Interface, frames) -> None:
        parent = self.parent
        if parent is None:
            iface.stats.oerrors += len(frames)
            return
        tag = _TPID + _TCI.pack(self.tag)
        for frame in frames:
            tagged = b"".join((frame[:12], tag, frame[12:]))
            if len(tagged) < _MIN_TAGGED:
                tagged += bytes(_MIN_TAGGED - len(tagged))
            self.stack.transmit(parent, tagged)

    def destroy_interface(self, iface: Interface) -> None:
        self.cloner.unconfig(self)

    # -- ifconfig ---------------------------------------------------------------------

    def status_lines(self, iface: Interface) -> list[str]:
        """NetBSD 4 vlan_status(): printed when a tag or a parent is set."""
        if not self.tag and self.parent is None:
            return []
        parent = self.parent.name if self.parent is not None else "<none>"
        return [f"\tvlan: {self.tag} parent: {parent}"]

    def media_lines(self, iface: Interface) -> list[str]:
        return []        # a vlan has no media (SIOCGIFMEDIA fails): no media/status lines

    def ctl(self, fields: list[str]) -> bool:
        """The interface ctl verbs of a vlan; False for a verb that is not one of them."""
        if fields == ["-vlanif"]:
            self.cloner.unconfig(self)
            return True
        if fields[0] != "vlan":
            return False
        if len(fields) == 4 and fields[2] == "vlanif":
            self.cloner.config(self, _tag(fields[1]), fields[3])
            return True
        if len(fields) == 2:
            _tag(fields[1])
            if self.parent is not None:
                raise StackError(errno.EBUSY, f"{self.iface.name} is attached to {self.parent.name}")
            return True      # NB4: a tag alone with no parent changes nothing
        raise StackError(errno.EINVAL, "usage: vlan TAG vlanif PARENT")


def _tag(text: str) -> int:
    try:
        tag = int(text, 0)
    except ValueError:
        raise StackError(errno.EINVAL, f"vlan tag {text!r} is not a number") from None
    if tag < 0 or tag != tag & EVL_VLANOFTAG:
        raise StackError(errno.EINVAL, f"vlan tag {tag} does not fit in 12 bits")
    return tag


class VlanCloner:
    """The ``vlan`` cloner; also a stack layer (told when a parent goes) and the input
    demultiplexer (``stack.vlan_input``)."""

    prefix = "vlan"

    def __init__(self, stack):
        self.stack = stack
        self.by_tag: dict[tuple[int, int], VlanSoftc] = {}   # (parent index, VID) -> vlan

    def create(self, prefix: str, unit: int) -> Interface:
        iface = self.stack.new_interface(self.prefix, unit, kind=IFT_ETHER, mtu=0, mac=None,
                                         flags=0, description="802.1Q VLAN")
        iface.driver = VlanSoftc(self, iface)
        iface.cloner = self.prefix
        return iface

    def config(self, sc: VlanSoftc, tag: int, parent_name: str) -> None:
        """SIOCSETVLAN with a parent (NetBSD vlan_config)."""
        if sc.parent is not None:
            raise StackError(errno.EBUSY, f"{sc.iface.name} is attached to {sc.parent.name}: -vlanif first")
        parent = self.stack.interface(parent_name)
        if parent is sc.iface:
            raise StackError(errno.EINVAL, f"{parent.name} cannot be its own parent")
        if parent.kind != IFT_ETHER or parent.mac is None:
            raise StackError(errno.EPROTONOSUPPORT, f"{parent.name} is not an Ethernet interface")
        key = (parent.index, tag)
        if key in self.by_tag:
            raise StackError(errno.EEXIST, f"{self.by_tag[key].iface.name} has tag {tag} on {parent.name}")
        iface = sc.iface
        sc.tag, sc.parent = tag, parent
        self.by_tag[key] = sc
        iface.mac = parent.mac
        iface.mtu = sc.max_mtu
        iface.flags = (iface.flags & ~_INHERITED) | (parent.flags & _INHERITED)
        self.stack._notify("interface_changed", iface)
        if parent.flags & IFF_UP:
            self.stack.up(iface)

    def unconfig(self, sc: VlanSoftc) -> None:
        """``-vlanif`` (and the parent or the vlan going): no parent, no tag, mtu 0, down."""
        if sc.parent is not None:
            self.by_tag.pop((sc.parent.index, sc.tag), None)
        sc.tag, sc.parent = 0, None
        iface = sc.iface
        iface.mtu = 0
        iface.mac = None          # ether_ifdetach: the link address goes with the parent
        if iface.flags & (IFF_UP | IFF_RUNNING):
            iface.flags &= ~(IFF_UP | IFF_RUNNING)
            self.stack._notify("interface_changed", iface)

    # -- a stack layer ------------------------------------------------------------------

    def interface_detached(self, iface: Interface) -> None:
        for (index, _tag_), sc in list(self.by_tag.items()):
            if index == iface.index and sc.parent is iface:
                self.unconfig(sc)

    # -- input --------------------------------------------------------------------------

    def input(self, parent: Interface, frame, now, vh=None) -> bool:
        """A tagged frame on ``parent``: untagged into its vlan's Ethernet input. False
        when no vlan has that tag there (the caller counts it)."""
        vid = _TCI.unpack_from(frame, 14)[0] & EVL_VLANOFTAG
        sc = self.by_tag.get((parent.index, vid))
        if sc is None:
            return False
        iface = sc.iface
        stats = iface.stats
        stats.ipackets += 1
        stats.ibytes += len(frame) - ETHER_VLAN_ENCAP_LEN
        if not iface.flags & IFF_UP:
            stats.iqdrops += 1
            return True
        inner = memoryview(b"".join((frame[:12], frame[16:])))
        self.stack.frame_input(iface, inner, now, _untagged_vh(vh))
        return True


def _untagged_vh(vh):
    """The frame's virtio header with its offsets moved 4 bytes forward (the tag went)."""
    if vh is None:
        return None
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(vh, 0)
    if flags & NEEDS_CSUM:
        csum_start -= ETHER_VLAN_ENCAP_LEN
    if gso_type != GSO_NONE:
        hdr_len = max(0, hdr_len - ETHER_VLAN_ENCAP_LEN)
    return memoryview(VNET_HDR.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset))


def install(stack) -> VlanCloner:
    cloner = VlanCloner(stack)
    stack.cloners[cloner.prefix] = cloner.create
    stack.layers.append(cloner)
    stack.vlan_input = cloner.input
    stack.vlan = cloner
    return cloner
