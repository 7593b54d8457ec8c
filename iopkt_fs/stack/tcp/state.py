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
        return self >= State.SYN_RECEIVED

    @property
    def established(self) -> bool:
        """BSD ``TCPS_HAVEESTABLISHED``."""
        return self >= State.ESTABLISHED

    @property
    def can_receive_data(self) -> bool:
        """States in which segment text is still accepted (RFC 9293 3.10.7.4 seventh)."""
        return self in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2)

    @property
    def can_send_data(self) -> bool:
        return self in (State.ESTABLISHED, State.CLOSE_WAIT)


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
