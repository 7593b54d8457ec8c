"""io-pkt's namespace under the prefix, built from a running instance.

::

    dev/socket/1 2 17 [24] [29]     address-family nodes (24 on v6-hc; 29 with ipsec)
    dev/socket/ctl status log       stack-wide verbs, what runs, the slog ring
    dev/socket/route arp pcb        routing table, ARP cache, sockets (tables.py)
    dev/socket/route6 ndp           IPv6 routes and neighbour cache (v6-hc; tables6.py)
    dev/socket/mbuf                 packet-buffer pool figures (stack/mbuf.py; netstat -m)
    dev/socket/stats/ip icmp udp arp [ip6 icmp6]   protocol counters, "name: value" lines
    dev/socket/if/<name>/ctl status stats
    dev/socket/if/<name>/pcap pcapstat  live capture stream, its readers (capture.py)
    dev/socket/if/bridgeN/bridge    what brconfig shows (iface/if_bridge.py)
    dev/socket/sysctl/<a>/<b>/...   one file per tunable (/proc/sys style)
    dev/io-net/enN                  interfaces of legacy devn- drivers only (QNX)
    dev/tun0.. dev/tunN.ctl dev/tap dev/tapK   tun/tap device nodes (devices.py)
"""

import errno

from ..runtime import now_us
from ..stack.errors import StackError
from ..stack.iface.interface import IFF_SHIM, Interface
from ..runtime import now_us
from . import capture, devices, render, tables, tables6, verbs
from .nodes import DynamicDir, Namespace, StaticDir, TextFile
from .sockfs import SocketFS

# Interface entries may be cached this long (s): the kernel then skips the lookups on
# every open. When an interface goes, its entries are invalidated at once (Instance).
ENTRY_CACHE = 10.0

# AF numbers and names as in QNX's <sys/socket.h> (reference/qnx.md §3.4).
FAMILIES = ((1, "local"), (2, "inet"), (17, "route"))
AF_INET6 = (24, "inet6")
AF_KEY = (29, "key")


def build(ns: Namespace, inst) -> StaticDir:
    root = StaticDir(ns, "", root=True)
    dev = root.add(devices.DevDir(ns, inst))     # socket/, io-net/ and the tun/tap nodes
    sock = dev.add(StaticDir(ns, "socket"))
    cfg = inst.stack.config
    families = list(FAMILIES)
    if cfg.variant.inet6:
        families.append(AF_INET6)
    if cfg.variant.crypto and cfg.ipsec:
        families.append(AF_KEY)
    for number, label in sorted(families):
        sock.add(TextFile(ns, str(number), render=(lambda label=label: label + "\n"), timeout=60.0))
    sock.add(TextFile(ns, "ctl", render=lambda: verbs.STACK_HELP,
                      write_fn=lambda text, h: inst.stack_ctl(text, h)))
    sock.add(TextFile(ns, "status", render=lambda: render.stack_status(inst)))
    sock.add(TextFile(ns, "log", render=inst.slog.render, write_fn=lambda text, h: _log_ctl(inst, text, h)))
    sock.add(_interfaces_dir(ns, inst))
    stack = inst.stack
    sock.add(TextFile(ns, "route", render=lambda: tables.route_table(stack),
                      write_fn=lambda text, h: _table_ctl(inst, tables.route_ctl, text)))
    sock.add(TextFile(ns, "arp", render=lambda: tables.arp_table(stack),
                      write_fn=lambda text, h: _table_ctl(inst, tables.arp_ctl, text)))
    if stack.inet6 is not None:     # v6-hc: the Internet6 routes and the neighbour cache
        sock.add(TextFile(ns, "route6", render=lambda: tables6.route6_table(stack),
                          write_fn=lambda text, h: _table_ctl(inst, tables6.route6_ctl, text)))
        sock.add(TextFile(ns, "ndp", render=lambda: tables6.ndp_table(stack, now_us()),
                          write_fn=lambda text, h: _table_ctl(inst, lambda st, f: tables6.ndp_ctl(st, f, now_us()),
                                                              text)))
    sock.add(TextFile(ns, "pcb", render=lambda: tables.sockets(stack)))
    sock.add(TextFile(ns, "mbuf", render=stack.mbufs.render))     # netstat -m
    inst.sockets = SocketFS(ns, inst)
    for d in inst.sockets.directories():
        sock.add(d)
    stats = sock.add(StaticDir(ns, "stats"))
    for proto, fn in {**tables.protocol_stats(stack), **tables6.stats6(stack)}.items():
        stats.add(TextFile(ns, proto, render=fn, label=f"stats/{proto}"))
    sock.add(_sysctl_dir(ns, inst, "", "sysctl"))
    dev.add(_ionet_dir(ns, inst))
    return root


def _table_ctl(inst, fn, text: str):
    answer = None
    for fields in verbs.lines(text):
        answer = fn(inst.stack, fields)
    inst.runtime.kick()
    return answer


def _log_ctl(inst, text: str, handle) -> None:
    for fields in verbs.lines(text):
        if fields == ["clear"]:
            inst.slog.clear()
        else:
            raise StackError(errno.EINVAL, f"unknown log request {' '.join(fields)!r}")


def _interface_dir(ns: Namespace, inst, iface: Interface) -> DynamicDir:
    stack = inst.stack
    index = iface.index

    def alive() -> bool:
        return stack.interfaces.get(index) is iface

    def lifetimes_at(now):
        rtr = stack.inet6.rtr if stack.inet6 is not None else None
        return lambda ifa: None if rtr is None else rtr.lifetimes(iface, ifa, now)

    def make():
        files = {}

        def ctl(text, handle):
            verbs.interface_ctl(stack, iface, text, now_us())
            inst.runtime.kick()

        async def stats():
            # A driver may refresh counters from its device first (a sysfs read, a
            # hardware query): that is time spent serving, bounded by threads_max.
            refresh = getattr(iface.driver, "refresh_stats", None)
            if refresh is not None:
                await refresh(iface)
            return render.interface_stats(iface)

        cap = capture.Capture(inst, iface)
        for name, fn, writer in (
            ("ctl", lambda: verbs.IF_HELP, ctl),
            ("status", lambda: render.ifconfig_block(iface), None),
            # ifconfig -L: the same block with the inet6 addresses' lifetimes left.
            ("lstatus", lambda: render.ifconfig_block(iface, lifetimes_at(now_us())), None),
            ("stats", stats, None),
            ("pcapstat", cap.status, None),
        ):
            files[name] = TextFile(ns, name, ("if", index, name), render=fn, write_fn=writer,
                                   alive_fn=alive, label=f"if/{iface.name}/{name}",
                                   timeout=ENTRY_CACHE)
        # A pseudo-interface's own files (a bridge's brconfig view), rendered at now.
        for fname, fn in getattr(iface.driver, "files", {}).items():
            files[fname] = TextFile(ns, fname, ("if", index, fname), render=lambda fn=fn: fn(now_us()),
                                    alive_fn=alive, label=f"if/{iface.name}/{fname}", timeout=ENTRY_CACHE)
        files["pcap"] = capture.PcapFile(ns, "pcap", ("if", index, "pcap"), capture=cap, alive_fn=alive,
                                         label=f"if/{iface.name}/pcap")
        return DynamicDir(ns, iface.name, ("if", index), lambda: files.items(),
                          lambda n: files.get(n), alive, timeout=ENTRY_CACHE)

    return ns.cached(("if", index), make)


def _interfaces_dir(ns: Namespace, inst) -> DynamicDir:
    stack = inst.stack

    def listing():
        return [(i.name, _interface_dir(ns, inst, i)) for i in list(stack.interfaces.values())]

    def lookup(name):
        try:
            iface = stack.interface(name)   # enX names map as on io-pkt (enmap)
        except StackError:
            return None
        return _interface_dir(ns, inst, iface)

    return DynamicDir(ns, "if", ("if",), listing, lookup, timeout=60.0)


def _sysctl_dir(ns: Namespace, inst, prefix: str, name: str) -> DynamicDir:
    tree = inst.stack.sysctl

    def node_for(component: str, is_leaf: bool):
        full = f"{prefix}.{component}" if prefix else component
        if is_leaf:
            def make_leaf():
                node = tree.node(full)

                def write(text, handle, full=full):
                    tree.set(full, text)   # EPERM for a read-only tunable, even for root
                    inst.runtime.kick()

                return TextFile(ns, component, ("sysctl", full), label="sysctl",
                                render=lambda: f"{tree.node(full).render()}\n",
                                write_fn=write, mode=0o644 if node.writable else 0o444)
            return ns.cached(("sysctl", full), make_leaf)
        return ns.cached(("sysctl-dir", full), lambda: _sysctl_dir(ns, inst, full, component))

    def listing():
        return [(c, node_for(c, leaf)) for c, leaf in tree.children(prefix)]

    def lookup(component):
        for c, leaf in tree.children(prefix):
            if c == component:
                return node_for(c, leaf)
        return None

    return DynamicDir(ns, name, ("sysctl-dir", prefix), listing, lookup, timeout=0.0)


def _ionet_dir(ns: Namespace, inst) -> DynamicDir:
    stack = inst.stack

    def shims():
        return [i for i in stack.interfaces.values() if i.flags & IFF_SHIM]

    def node(iface):
        index = iface.index
        return ns.cached(("io-net", index), lambda: TextFile(
            ns, iface.name, ("io-net", index), render=lambda: render.ifconfig_block(iface),
            alive_fn=lambda: stack.interfaces.get(index) is iface))

    def listing():
        return [(i.name, node(i)) for i in shims()]

    def lookup(name):
        for i in shims():
            if i.name == name:
                return node(i)
        return None

    return DynamicDir(ns, "io-net", ("io-net",), listing, lookup, timeout=60.0)
