"""Severities and codes of QNX's slogger, as io-pkt uses them (reference/qnx.md §1.6).

The core only *emits* messages through the ``log(severity, text)`` callable it was given;
the ring that stamps them with wall-clock time lives in ``iopkt_fs.slog``.
"""

# _SLOG_* severities. io-pkt maps syslog levels with ``level > 1 ? level - 1 : level``,
# so LOG_ERR -> 2, LOG_WARNING -> 3, LOG_INFO -> 5.
SHUTDOWN = 0
CRITICAL = 1
ERROR = 2
WARNING = 3
NOTICE = 4
INFO = 5
DEBUG1 = 6
DEBUG2 = 7

# _SLOGC_* major codes: io-pkt itself logs as TCPIP, drivers through libnetdrvr as NETWORK.
SLOGC_NETWORK = 10
SLOGC_TCPIP = 14


def discard(severity: int, text: str, major: int = SLOGC_TCPIP) -> None:
    """A log sink for tests and tools that do not care."""
