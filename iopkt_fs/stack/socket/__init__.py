"""Socket state machines of the core (UDP here; TCP lives in stack/tcp/).

A socket is a plain object with synchronous calls that raise ``StackError`` and report
readiness changes through ``stack.notify_socket``; the file layer turns those into FUSE
reads, writes and polls.
"""
