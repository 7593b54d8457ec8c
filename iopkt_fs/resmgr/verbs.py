"""ctl verbs: one line is one command, whitespace-separated fields (Plan 9's parsecmd).

Interface ctl (``if/<name>/ctl``)::

    up | down
    add ADDR[/LEN] [netmask M] [broadcast B] [dest D]     an alias (SIOCAIFADDR)
        [anycast] [tentative] [deprecated] [pltime N] [vltime N] IPv6 (SIOCAIFADDR_IN6: flags, lifetimes)
    set ADDR[/LEN] [netmask M] [broadcast B] [dest D]     replace the primary address
    del ADDR                                              (SIOCDIFADDR)
    mtu N | metric N
    debug | -debug | promisc | -promisc | arp | -arp | link0..2 | -link0..2
    [-]tso4 [-]tso6 [-]ip4csum[-rx|-tx] [-]tcp4csum[-rx|-tx] [-]udp4csum[-rx|-tx]
        [-]tcp6csum[-rx|-tx] [-]udp6csum[-rx|-tx] ...    offloads (SIOCSIFCAP), several a line
    destroy
    vlan TAG vlanif IF | -vlanif                          vlan(4) only (SIOCSETVLAN)
    tunnel SRC DST | deletetunnel                         gre, gif (SIOCSLIFPHYADDR, SIOCDIFPHYADDR)
    add IF | delete IF | [-]discover IF | [-]learn IF | maxaddr N | timeout S
        | static IF MAC | deladdr MAC | flush | flushall     bridge (brconfig's requests)

Stack ctl (``ctl``)::

    mount SPEC [OPTIONS]     load a driver (what ``mount -T io-pkt`` sends; root only)
    unmount NAME             unload a legacy io-net driver by its /dev/io-net name
    create IF | destroy IF   clone interfaces (``ifconfig IF create``)

A refused line raises StackError; the resmgr answers its errno and logs the message.
"""

import errno
import ipaddress

from ..stack.errors import StackError
from ..stack.iface.interface import (
    IFCAP_CSUM_IPv4_Rx, IFCAP_CSUM_IPv4_Tx, IFCAP_CSUM_TCPv4_Rx, IFCAP_CSUM_TCPv4_Tx,
    IFCAP_CSUM_TCPv6_Rx, IFCAP_CSUM_TCPv6_Tx, IFCAP_CSUM_UDPv4_Rx, IFCAP_CSUM_UDPv4_Tx,
    IFCAP_CSUM_UDPv6_Rx, IFCAP_CSUM_UDPv6_Tx, IFCAP_TSOv4, IFCAP_TSOv6,
    IFF_DEBUG, IFF_LINK0, IFF_LINK1, IFF_LINK2, IFF_NOARP, IFF_PROMISC, Interface,
)
from ..stack.inet6.ndisc import IN6_IFF_ANYCAST, IN6_IFF_DEPRECATED, IN6_IFF_TENTATIVE
from ..stack.stack import Stack

IF_HELP = """\
up | down
add ADDR[/LEN] [netmask M] [broadcast B] [dest D] [anycast] [tentative] [deprecated] [pltime N] [vltime N]
set ADDR[/LEN] [netmask M] [broadcast B] [dest D]
del ADDR
mtu N
metric N
debug | -debug | promisc | -promisc | arp | -arp | link0 | -link0 | link1 | -link1 | link2 | -link2
tso4 | -tso4 | tso6 | -tso6 | ip4csum | -ip4csum | ip4csum-rx | -ip4csum-rx | ip4csum-tx | -ip4csum-tx
tcp4csum[-rx|-tx] | udp4csum[-rx|-tx] | tcp6csum[-rx|-tx] | udp6csum[-rx|-tx]  (each also with '-'; several a line)
destroy
vlan TAG vlanif IF | -vlanif  (vlan interfaces)
tunnel SRC DST | deletetunnel  (gre, gif)
add IF | delete IF | discover IF | -discover IF | learn IF | -learn IF | maxaddr N | timeout S | static IF MAC | deladdr MAC | flush | flushall  (bridge)
"""

STACK_HELP = """\
mount SPEC [OPTIONS]
unmount NAME
create IF
destroy IF
"""

# flag word -> (bits, set when the word has no '-'?)
_FLAG_WORDS = {
    "debug": (IFF_DEBUG, True), "promisc": (IFF_PROMISC, True),
    "arp": (IFF_NOARP, False),   # "arp" clears NOARP, "-arp" sets it
    "link0": (IFF_LINK0, True), "link1": (IFF_LINK1, True), "link2": (IFF_LINK2, True),
}


# Capability word -> IFCAP_* bits, as NetBSD's ifconfig names them (sbin/ifconfig ifcaps):
# the bare checksum word is both directions, ``-rx``/``-tx`` one; ``-WORD`` clears.
_CSUM_WORDS = (
    ("ip4csum", IFCAP_CSUM_IPv4_Rx, IFCAP_CSUM_IPv4_Tx),
    ("tcp4csum", IFCAP_CSUM_TCPv4_Rx, IFCAP_CSUM_TCPv4_Tx),
    ("udp4csum", IFCAP_CSUM_UDPv4_Rx, IFCAP_CSUM_UDPv4_Tx),
    ("tcp6csum", IFCAP_CSUM_TCPv6_Rx, IFCAP_CSUM_TCPv6_Tx),
    ("udp6csum", IFCAP_CSUM_UDPv6_Rx, IFCAP_CSUM_UDPv6_Tx),
)
CAP_WORDS = {"tso4": IFCAP_TSOv4, "tso6": IFCAP_TSOv6}
for _word, _rx, _tx in _CSUM_WORDS:
    CAP_WORDS.update({_word: _rx | _tx, f"{_word}-rx": _rx, f"{_word}-tx": _tx})
del _word, _rx, _tx


def parse_caps(words: list[str]) -> tuple[int, int]:
    """``-tso4 tcp4csum ...`` -> (enable, disable) bits; later words win, as NetBSD's
    ifconfig applies each to the running mask in order."""
    enable = disable = 0
    for word in words:
        bits = CAP_WORDS.get(word.removeprefix("-"))
        if bits is None:
            raise StackError(errno.EINVAL, f"unknown capability {word!r}")
        if word.startswith("-"):
            enable, disable = enable & ~bits, disable | bits
        else:
            enable, disable = enable | bits, disable & ~bits
    return enable, disable


def lines(text: str) -> list[list[str]]:
    cmds = [line.split() for line in text.splitlines()]
    cmds = [c for c in cmds if c]
    if not cmds:
        raise StackError(errno.EINVAL, "short control request")
    return cmds


def _int(word: str, what: str) -> int:
    try:
        return int(word, 0)
    except ValueError:
        raise StackError(errno.EINVAL, f"{what} {word!r} is not a number") from None


# SIOCAIFADDR_IN6's ifra_flags words (NB4 ifconfig.c cmds[]): '-WORD' asks for none.
_IN6_WORDS = {"anycast": IN6_IFF_ANYCAST, "tentative": IN6_IFF_TENTATIVE, "deprecated": IN6_IFF_DEPRECATED}


def parse_address(fields: list[str]):
    """ADDR[/LEN] [netmask M] [broadcast B] [dest D] [anycast] [tentative] [deprecated]
    [pltime N] [vltime N] -> (address, prefixlen|None, bcast, dest, inet6 extras for add_address)."""
    if not fields:
        raise StackError(errno.EINVAL, "missing address")
    text, _, plen = fields[0].partition("/")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise StackError(errno.EINVAL, f"bad address {text!r}") from None
    prefixlen = _int(plen, "prefix length") if plen else None
    broadcast = dest = None
    extra: dict = {}
    rest = fields[1:]
    while rest:
        key = rest.pop(0)
        if key.removeprefix("-") in _IN6_WORDS:
            bit = _IN6_WORDS[key.removeprefix("-")]
            flags = extra.get("flags6", 0)
            extra["flags6"] = flags & ~bit if key.startswith("-") else flags | bit
            continue
        if not rest:
            raise StackError(errno.EINVAL, f"'{key}' requires argument")
        value = rest.pop(0)
        if key == "netmask":
            prefixlen = netmask_to_prefix(value, address.version)
        elif key == "prefixlen":
            prefixlen = _int(value, "prefix length")
        elif key in ("pltime", "vltime"):
            extra[key] = _int(value, key)
        elif key in ("broadcast", "dest"):
            try:
                parsed = ipaddress.ip_address(value)
            except ValueError:
                raise StackError(errno.EINVAL, f"bad {key} address {value!r}") from None
            if key == "broadcast":
                broadcast = parsed
            else:
                dest = parsed
        else:
            raise StackError(errno.EINVAL, f"unknown address parameter {key!r}")
    return address, prefixlen, broadcast, dest, extra


def netmask_to_prefix(text: str, version: int = 4) -> int:
    """A netmask as dotted quad or 0x hex (both ifconfig forms) -> prefix length."""
    try:
        if text.lower().startswith("0x"):
            value = int(text, 16)
        else:
            value = int(ipaddress.ip_address(text))
    except ValueError:
        raise StackError(errno.EINVAL, f"bad netmask {text!r}") from None
    bits = 32 if version == 4 else 128
    inverted = ~value & ((1 << bits) - 1)
    if value >> bits or inverted & (inverted + 1):
        raise StackError(errno.EINVAL, f"netmask {text} is not contiguous")
    return bits - inverted.bit_length()


def interface_ctl(stack: Stack, iface: Interface, text: str, now: int | None = None) -> None:
    own = getattr(iface.driver, "verbs", {})
    for fields in lines(text):
        verb, args = fields[0], fields[1:]
        if verb in own:
            # A pseudo-interface's own requests, before the common ones (gre/gif: tunnel,
            # deletetunnel; bridge: brconfig's add IF, delete IF, static IF MAC ...).
            own[verb](args)
        elif verb == "up" and not args:
            stack.up(iface)
        elif verb == "down" and not args:
            stack.down(iface)
        elif verb in ("add", "set"):
            address, prefixlen, broadcast, dest, extra = parse_address(args)
            stack.add_address(iface, address, prefixlen, broadcast=broadcast, dest=dest,
                              replace_primary=verb == "set", now=now, **extra)
        elif verb in ("del", "delete") and len(args) == 1:
            try:
                address = ipaddress.ip_address(args[0].partition("/")[0])
            except ValueError:
                raise StackError(errno.EINVAL, f"bad address {args[0]!r}") from None
            stack.delete_address(iface, address)
        elif verb == "mtu" and len(args) == 1:
            stack.set_mtu(iface, _int(args[0], "mtu"))
        elif verb == "metric" and len(args) == 1:
            iface.metric = max(0, _int(args[0], "metric"))
        elif verb.lstrip("-") in _FLAG_WORDS and not args:
            bits, positive = _FLAG_WORDS[verb.lstrip("-")]
            on = not verb.startswith("-")
            if on == positive:
                stack.set_flags(iface, set_bits=bits)
            else:
                stack.set_flags(iface, clear_bits=bits)
        elif verb.removeprefix("-") in CAP_WORDS:
            enable, disable = parse_caps(fields)
            stack.set_capabilities(iface, enable=enable, disable=disable)
        elif verb == "destroy" and not args:
            stack.destroy(iface.name)
        elif (own := getattr(iface.driver, "ctl", None)) is not None and own(fields):
            pass   # a pseudo-interface's own verbs (vlan: ``vlan TAG vlanif IF``, ``-vlanif``)
        else:
            raise StackError(errno.EINVAL, f"unknown control request {' '.join(fields)!r}")
