"""TCP (RFC 9293 and friends), sans-IO.

Modules: ``seq`` (modular sequence arithmetic), ``buffers`` (ring buffer and reassembly
map), ``rtt`` (RFC 6298), ``congestion`` (NewReno, CUBIC), ``connection`` (the TCB and
user calls: *Theory of operation* there) with ``input``, ``recovery``, ``rack``, ``sack``,
``output`` and ``timers`` (its behaviour, one RFC seam each), ``state`` (states, ``Segment``, flags),
``status`` (``TcpStatus``), ``services`` (what the layer provides, as Protocols), ``layer``
(demux, listeners, SYN cookies, timers, integration points for the IP layer), ``socket``
(the socket calls), ``stats`` (NetBSD ``tcpstat`` counters), ``config`` (the tunables).
"""

from .config import TcpConfig
from .connection import Connection
from .layer import TcpLayer
from .socket import (
    IPPROTO_TCP, SHUT_RD, SHUT_RDWR, SHUT_WR, SO_ERROR, SO_KEEPALIVE, SO_RCVBUF, SO_REUSEADDR,
    SO_SNDBUF, SOL_SOCKET, TCP_NODELAY, TcpSocket,
)
from .state import State
from .stats import TcpStats
from .status import TcpStatus

__all__ = [
    "Connection", "IPPROTO_TCP", "SHUT_RD", "SHUT_RDWR", "SHUT_WR", "SOL_SOCKET", "SO_ERROR",
    "SO_KEEPALIVE", "SO_RCVBUF", "SO_REUSEADDR", "SO_SNDBUF", "State", "TCP_NODELAY",
    "TcpConfig", "TcpLayer", "TcpSocket", "TcpStats", "TcpStatus",
]
