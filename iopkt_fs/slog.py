"""The stack's slogger ring: what ``sloginfo`` prints and what ``P/dev/socket/log`` serves.

Each entry is stamped with wall-clock time here (never in the core). The ring is bounded;
``-v`` copies messages to stderr as io-pkt's ``_SLOG_TEXTBIT`` does, and when ``/dev/log``
exists they also go to syslog so a Linux host's journal sees them.
"""

import collections
import os
import sys
import syslog
import time

import attrs

from .stack import slog as sev

# sloginfo's line format (OQ sloginfo.c): strftime("%h %d %T") then "    %d %5d   %3d ".
HEADER = "Time             Sev Major Minor Args"

# slog severity -> syslog priority (the inverse of io-pkt's level-1 mapping).
_SYSLOG = {sev.SHUTDOWN: syslog.LOG_EMERG, sev.CRITICAL: syslog.LOG_CRIT,
           sev.ERROR: syslog.LOG_ERR, sev.WARNING: syslog.LOG_WARNING,
           sev.NOTICE: syslog.LOG_NOTICE, sev.INFO: syslog.LOG_INFO,
           sev.DEBUG1: syslog.LOG_DEBUG, sev.DEBUG2: syslog.LOG_DEBUG}


@attrs.frozen
class Entry:
    seq: int
    when: float
    severity: int
    major: int
    minor: int
    text: str

    def line(self) -> str:
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(self.when))
        return f"{stamp}    {self.severity} {self.major:5d}   {self.minor:3d} {self.text}"


class SlogRing:
    def __init__(self, capacity: int = 4096, *, console: bool = False,
                 syslog_ident: str | None = None, stderr=None):
        self.entries: collections.deque[Entry] = collections.deque(maxlen=capacity)
        self.console = console
        self._stderr = stderr
        self._seq = 0
        self._once: set[str] = set()
        self._syslog = syslog_ident is not None and os.path.exists("/dev/log")
        if self._syslog:
            syslog.openlog(syslog_ident, syslog.LOG_PID, syslog.LOG_DAEMON)
        # Listeners (e.g. ``sloginfo -w`` readers) are woken on every new entry.
        self.listeners: list = []

    def __call__(self, severity: int, text: str, major: int = sev.SLOGC_TCPIP, minor: int = 0) -> None:
        self._seq += 1
        entry = Entry(self._seq, time.time(), severity, major, minor, text)
        self.entries.append(entry)
        if self.console:
            stream = self._stderr or sys.stderr
            try:
                stream.write(text + "\n")
                stream.flush()
            except (OSError, ValueError):
                self.console = False   # stderr went away (daemon detached): stop copying
        if self._syslog:
            syslog.syslog(_SYSLOG.get(severity, syslog.LOG_INFO), text)
        for fn in self.listeners:
            fn()

    def once(self, key: str, severity: int, text: str) -> None:
        """Log a message only the first time (``Threads exhausted`` and friends)."""
        if key not in self._once:
            self._once.add(key)
            self(severity, text)

    def clear(self) -> None:
        self.entries.clear()

    def render(self) -> str:
        return "".join(e.line() + "\n" for e in self.entries)
