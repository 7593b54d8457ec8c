"""What a connection and a socket need from the layer that owns them, as Protocols.

``Connection`` and ``TcpSocket`` are written against these, never against ``TcpLayer``
itself: the layer imports them to build them, and they import nothing of the layer, so the
package has no import cycle (``layer -> socket -> connection``, each one way). ``TcpLayer`` is
the one implementation; a test could drive a connection with any object that has these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

from ..time import Instant

if TYPE_CHECKING:
    from .config import TcpConfig
    from .connection import Connection
    from .socket import TcpSocket
    from .state import State
    from .stats import TcpStats


class TcpServices(Protocol):
    """The layer as one connection sees it."""

    stats: TcpStats
    # Connections whose output is deferred to the end of the current input batch (a dict
    # used as an ordered set), or None outside ``begin_input``/``end_input``.
    pending: dict[Connection, None] | None
    csum_offload: bool           # segments leave with a partial checksum (the NIC ends it)
    route_gen: int               # bumped when a route's TSO limit may have changed
    route_tso: Callable[[bytes], int]

    def emit(self, conn: Connection, segment: bytes, now: Instant,
             gso: int | None = None) -> None: ...

    def touch(self, conn: Connection) -> None:
        """The connection's earliest deadline may have moved: re-file it in the heap."""

    def wake(self, conn: Connection) -> None:
        """Readiness of the connection's socket may have changed."""

    def log_state(self, conn: Connection, old: State, new: State) -> None: ...

    # net.inet.tcp.debug (None: no such sysctl): log_state is called only while it is set.
    debug: object | None
    # Told of a socket whose readiness may have changed (what wake() calls).
    notify: Callable[[TcpSocket], None]

    def connection_established(self, conn: Connection, old: State) -> None: ...

    def connection_closed(self, conn: Connection, old: State) -> None: ...

    def challenge_ack_allowed(self, now: Instant) -> bool:
        """RFC 5961 7: the stack-wide challenge ACK budget."""

    def fmt_ep(self, ip: bytes, port: int) -> str: ...


class TcpHost(TcpServices, Protocol):
    """The layer as a socket sees it: the connection's services plus the port and
    connection tables, addresses, ISNs and readiness signalling."""

    config: TcpConfig
    connections: dict[tuple[bytes, int, bytes, int], Connection]
    listeners: dict[tuple[bytes, int], TcpSocket]
    bound: dict[tuple[bytes, int], set[TcpSocket]]
    source_address: Callable[[bytes], bytes | None] | None
    route_mtu: Callable[[bytes], int]

    def ephemeral_port(self, lip: bytes, rip: bytes | None = None, rport: int = 0) -> int: ...

    def _port_taken(self, ip: bytes, port: int, for_connect: bool = False) -> bool: ...

    def isn(self, lip: bytes, lport: int, rip: bytes, rport: int, now: Instant) -> int: ...

    def register(self, conn: Connection) -> None: ...

    def signal(self, sock: TcpSocket) -> None: ...
