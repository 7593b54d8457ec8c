"""The tunables tree: ``net.inet.ip.forwarding``, ``kern.hostname``, ``qnx.kern.enmap`` ...

A flat dict keyed by the dotted name; the resmgr shows it as a directory tree
(``sysctl/net/inet/ip/forwarding``, /proc/sys style) and ``iopkt sysctl`` prints it as
``name = value`` lines. Values are ints or strings, validated here so every writer (file,
tool, tcpip option) gets the same errors: ENOENT for an unknown name, EPERM for a
read-only one, EINVAL for a value of the wrong type or out of range.
"""

import errno
from typing import Callable

import attrs

from .errors import StackError


@attrs.define(eq=False)
class Sysctl:
    name: str
    value: int | str
    description: str = ""
    writable: bool = True
    minimum: int | None = None
    maximum: int | None = None
    # Called with the new value after it is stored (e.g. enmap, forwarding).
    on_change: Callable[[int | str], None] | None = None

    @property
    def is_int(self) -> bool:
        return isinstance(self.value, int)

    def render(self) -> str:
        return str(self.value)


class SysctlTree:
    def __init__(self) -> None:
        self._nodes: dict[str, Sysctl] = {}
        # Bumped by every add and set: readers that derive values from many nodes (the
        # TCP layer's TcpConfig) rebuild them only when it moved.
        self.generation = 0

    def add(self, name: str, value: int | str, description: str = "", **kw) -> Sysctl:
        node = Sysctl(name, value, description, **kw)
        self._nodes[name] = node
        self.generation += 1
        return node

    def remove(self, name: str) -> None:
        """Drop a node that belonged to something gone (a detached interface's)."""
        if self._nodes.pop(name, None) is not None:
            self.generation += 1

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def node(self, name: str) -> Sysctl:
        try:
            return self._nodes[name]
        except KeyError:
            raise StackError(errno.ENOENT, f"unknown name {name!r}") from None

    def get(self, name: str) -> int | str:
        return self.node(name).value

    def set(self, name: str, value: int | str | bytes, *, force: bool = False) -> Sysctl:
        """Store ``value`` (text is parsed) in ``name``; ``force`` bypasses read-only."""
        node = self.node(name)
        if not node.writable and not force:
            raise StackError(errno.EPERM, f"{name} is read-only")
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if node.is_int:
            try:
                parsed: int | str = int(str(value).strip(), 0)
            except ValueError:
                raise StackError(errno.EINVAL, f"{name} takes an integer, not {value!r}") from None
            if node.minimum is not None and parsed < node.minimum:
                raise StackError(errno.EINVAL, f"{name} must be >= {node.minimum}")
            if node.maximum is not None and parsed > node.maximum:
                raise StackError(errno.EINVAL, f"{name} must be <= {node.maximum}")
        else:
            parsed = str(value).rstrip("\n")
            if "\n" in parsed or "\0" in parsed:
                raise StackError(errno.EINVAL, f"{name} takes one line of text")
        node.value = parsed
        self.generation += 1
        if node.on_change is not None:
            node.on_change(parsed)
        return node

    def names(self, prefix: str = "") -> list[str]:
        """All names, sorted, optionally under a dotted prefix (``net.inet``)."""
        if not prefix:
            return sorted(self._nodes)
        dotted = prefix + "."
        return sorted(n for n in self._nodes if n == prefix or n.startswith(dotted))

    def children(self, prefix: str) -> list[tuple[str, bool]]:
        """Direct children of a dotted prefix as (component, is_leaf) pairs."""
        depth = len(prefix.split(".")) if prefix else 0
        seen: dict[str, bool] = {}
        for name in self.names(prefix):
            parts = name.split(".")
            if len(parts) <= depth:
                continue
            comp = parts[depth]
            is_leaf = len(parts) == depth + 1
            seen[comp] = seen.get(comp, False) or is_leaf
        return sorted(seen.items())

    def is_branch(self, prefix: str) -> bool:
        dotted = prefix + "."
        return any(n.startswith(dotted) for n in self._nodes)
