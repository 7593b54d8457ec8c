"""Errors a user can cause: an errno (what crosses FUSE) plus a sentence (what the log says).

Bad input from the *wire* never raises: it is a counted drop. Bad input from a *user*
(a malformed ctl line, an unknown interface) raises ``StackError``; the resmgr turns it
into ``FUSEError(errno)`` and writes the message to the stack log or the connection's err.
"""

import errno as _errno
import os


class StackError(Exception):
    """A request the stack refuses: ``errno`` for the caller, ``message`` for humans."""

    def __init__(self, errno: int, message: str | None = None):
        self.errno = errno
        self.message = message or os.strerror(errno)
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"StackError({_errno.errorcode.get(self.errno, self.errno)}, {self.message!r})"
