"""QNX's per-interface IPv6 nodes, ``net.inet6.ip6.ifconf.IF.*`` (QSRC ip6_ifconf.c).

Made when an interface attaches and removed when it detaches, for every interface but
loopback (QNX skips IFT_LOOP and bridges: "some interfaces are not IPv6 capable"):

* ``accept_rtadv`` and ``forwarding`` are views of the interface flags
  ``IFF_ACCEPTRTADV`` / ``IFF_IP6FORWARDING`` (0 or 1 in the tree, a bit in
  ``if_flags``), which ifconfig prints; router discovery (nd6_rtr.py) and forwarding
  (forward6.py) read the flags;
* ``dad_count``: the interface's DupAddrDetectTransmits. QNX starts it at a "use the
  global one" value (if_extra.c ``DAD_COUNT_GLOBAL``, whose number the reference does
  not give): here -1, meaning ``net.inet6.ip6.dad_count``.
"""

from ..iface.interface import IFF_ACCEPTRTADV, IFF_IP6FORWARDING, IFT_LOOP, Interface

_FLAGS = (("accept_rtadv", IFF_ACCEPTRTADV, "Accept router advertisements"),
          ("forwarding", IFF_IP6FORWARDING, "Allow IPv6 forwarding"))
DAD_COUNT_GLOBAL = -1


class IfConf:
    def __init__(self, stack, policy_changed):
        self.stack = stack
        self._policy_changed = policy_changed     # accept_rtadv / forwarding moved
        self._node_dad = stack.sysctl.node("net.inet6.ip6.dad_count")

    @staticmethod
    def _name(iface: Interface, leaf: str) -> str:
        return f"net.inet6.ip6.ifconf.{iface.name}.{leaf}"

    def add(self, iface: Interface) -> None:
        if iface.kind == IFT_LOOP:
            return
        sysctl = self.stack.sysctl
        for leaf, bit, text in _FLAGS:
            def changed(value, iface=iface, bit=bit):
                iface.flags = iface.flags | bit if value else iface.flags & ~bit
                self._policy_changed()

            sysctl.add(self._name(iface, leaf), int(bool(iface.flags & bit)), text, minimum=0, maximum=1,
                       on_change=changed)
        sysctl.add(self._name(iface, "dad_count"), DAD_COUNT_GLOBAL, "Duplicate address detection count",
                   minimum=-1, maximum=15)

    def remove(self, iface: Interface) -> None:
        for leaf in ("accept_rtadv", "forwarding", "dad_count"):
            self.stack.sysctl.remove(self._name(iface, leaf))

    def dad_count(self, iface: Interface) -> int:
        name = self._name(iface, "dad_count")
        own = self.stack.sysctl.get(name) if name in self.stack.sysctl else DAD_COUNT_GLOBAL
        return self._node_dad.value if own == DAD_COUNT_GLOBAL else own
