"""The vocabulary every part of a connection shares: RFC 9293 3.3.2 states, the decoded
incoming segment, the header flag bits and the duplicate-ACK threshold.

Kept apart from ``connection.py`` so the modules that hold the connection's behaviour
(``input``, ``recovery``, ``sack``, ``output``, ``timers``) and the layer can import it without
importing each other.
"""

from __future__ import annotations

from enum import IntEnum

from ..wire.tcp import NO_OPTIONS, TcpOptions

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

DUPTHRESH = 3                     # RFC 5681 3.2 / RFC 6675 2


class State(IntEnum):
    """RFC 9293 3.3.2 states, numbered as BSD's ``tcp_fsm.h`` so ordering predicates work."""

    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    CLOSE_WAIT = 5
    FIN_WAIT_1 = 6
    CLOSING = 7
    LAST_ACK = 8
    FIN_WAIT_2 = 9
    TIME_WAIT = 10

    def __str__(self) -> str:
        return self.name.replace("_", "-")

    @property
    def synchronized(self) -> bool:
        """BSD ``TCPS_HAVERCVDSYN``: every state from SYN-RECEIVED on."""
        return self >= SYN_RECEIVED

    @property
    def established(self) -> bool:
        """BSD ``TCPS_HAVEESTABLISHED``."""
        return self >= ESTABLISHED

    @property
    def can_receive_data(self) -> bool:
        """States in which segment text is still accepted (RFC 9293 3.10.7.4 seventh)."""
        return self in _RECEIVING

    @property
    def can_send_data(self) -> bool:
        return self in _SENDING


class Segment:
    """An incoming segment, decoded once by the layer (fields plus payload view)."""

    __slots__ = ("seq", "ack", "flags", "wnd", "opts", "payload")

    def __init__(self, seq: int, ack: int, flags: int, wnd: int, opts: TcpOptions = NO_OPTIONS,
                 payload=b""):
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.wnd = wnd
        self.opts = opts
        self.payload = payload

    @property
    def seg_len(self) -> int:
        return len(self.payload) + (self.flags & SYN and 1) + (self.flags & FIN)


# The members as module constants: ``State.X`` on an Enum class is an ~80 ns attribute
# lookup (EnumType), a module global ~20 ns, and a connection compares its state dozens
# of times per segment (bench_tcp_core.py --only cps: ~5 % of a connection).
(CLOSED, LISTEN, SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING,
 LAST_ACK, FIN_WAIT_2, TIME_WAIT) = State
_RECEIVING = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))
_SENDING = frozenset((ESTABLISHED, CLOSE_WAIT))
