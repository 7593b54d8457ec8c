"""Hypothesis fuzzing of every writable control file of a mounted stack (issue 12, item
8): each write is one line, built from that file's own verbs and plausible, boundary and
nonsense arguments, or plain random text or bytes. Every write either succeeds or fails
with a user errno (never EIO, which is what an exception inside a handler becomes) and,
when it fails, the reason is in the stack's log; "internal error" never appears there.
Used by tests/system/test_ctl_fuzz.py and ``scripts/fuzz.py --controls``.

Data files and tun/tap nodes are not control files and are left out; so are ``mount``
lines naming a real driver that would make host devices (tap, packet, vxlan, pcap).
"""

import errno
import os
import signal

from hypothesis import strategies as st

ADDRS = ["127.0.0.1", "10.0.0.1/24", "10.0.0.1/33", "0.0.0.0/0", "256.1.1.1", "fd00::1/64",
         "::1", "::", "fe80::1%lo0", "fe80::1%nope0", "1.2.3.4", "255.255.255.255", "10.0.0.1/-1"]
INTS = ["-1", "0", "1", "68", "1500", "65535", "65536", "2147483648", "99999999999999999999", "0x10", "1e3"]
WORDS = ["", "x", "lo0", "lo1", "lo99", "tun0", "bogus", "default", "-net", "-host", "netmask",
         "broadcast", "dest", "02:00:00:00:00:01", "zz:zz", "\u00e9", "\t", "!", "*", "wr", "rd"]
ENDPOINTS = ["127.0.0.1!1", "127.0.0.1!65536", "*!0", "*!5000", "5000", "x!y", "::1!80",
             "[::1]!80", "1.2.3.4!80", "unix!fz", "127.0.0.1!-1", "!", "tcp!*!80"]

VERBS = {
    "if": ["up", "down", "add", "set", "del", "mtu", "metric", "debug", "-debug", "promisc",
           "-promisc", "arp", "-arp", "link0", "-link1", "tso4", "-tso4", "tcp4csum", "-udp6csum-rx",
           "ip4csum-tx", "destroy", "nonsense"],
    "stack": ["mount", "unmount", "create", "destroy", "help", "nonsense"],
    "route": ["add", "del", "delete", "flush", "get", "change", "nonsense"],
    "arp": ["add", "del", "delete", "flush", "nonsense"],
    "log": ["clear", "nonsense"],
    "sysctl": [],
    "sock": ["connect", "announce", "bind", "hangup", "close", "shutdown", "keepalive", "nodelay",
             "ttl", "tos", "reuseport", "headers", "nonsense"],
}
SYSCTL_VALUES = INTS + ["", "abc", "1 2", "newreno", "cubic", "bogus", "hostname-" + "x" * 300]
REAL_DRIVERS = ("tap", "packet", "vxlan", "pcap")
USER_ERRNOS = {errno.EINVAL, errno.ENOENT, errno.EEXIST, errno.EADDRINUSE, errno.ENXIO,
               errno.EPERM, errno.EACCES, errno.ECONNREFUSED, errno.EHOSTUNREACH,
               errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EOPNOTSUPP, errno.EAFNOSUPPORT,
               errno.EISCONN, errno.ENOTCONN, errno.EBUSY, errno.ERANGE, errno.EDESTADDRREQ,
               errno.EALREADY, errno.ENODEV, errno.ETIMEDOUT, errno.EPROTONOSUPPORT,
               errno.ENOTSUP, errno.ESRCH, errno.ENOTDIR, errno.EINPROGRESS, errno.EPIPE,
               errno.ENAMETOOLONG, errno.EOVERFLOW, errno.ENOBUFS}


def kind_of(path: str) -> str:
    rel = path.split("/dev/socket/", 1)[1]
    if rel.startswith("sysctl/"):
        return "sysctl"
    if rel.startswith("if/"):
        return "if"
    if rel in ("route", "arp", "log"):
        return rel
    if rel == "ctl":
        return "stack"
    return "sock"         # tcp/clone, udp/3/ctl ...


def writable_files(prefix: str) -> list[str]:
    """Every writable control file, with a connection of each protocol made first so
    the N/ctl files exist (their clone stays open: the caller keeps the fds)."""
    sock = os.path.join(prefix, "dev", "socket")
    found = []
    for root, dirs, files in os.walk(sock):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if name in ("data", "listen", "pcap") or "/dev/tun" in path or "/dev/tap" in path:
                continue
            if os.stat(path).st_mode & 0o222:
                found.append(path)
    return found


def lines_for(kind: str):
    verb = st.sampled_from(VERBS[kind]) if VERBS[kind] else st.just("")
    arg = st.one_of(st.sampled_from(ADDRS + INTS + WORDS + ENDPOINTS),
                    st.text(max_size=12))
    if kind == "sysctl":
        built = st.sampled_from(SYSCTL_VALUES)
    else:
        built = st.builds(lambda v, a: " ".join([v, *a]).strip(), verb, st.lists(arg, max_size=4))
    text = st.one_of(built, built, built, st.text(max_size=40))
    return st.one_of(text.map(lambda t: (t + "\n").encode("utf-8", "surrogatepass")),
                     st.binary(max_size=40))


def harmful(kind: str, line: bytes) -> bool:
    words = line.decode("utf-8", "replace").split()
    return (kind == "stack" and len(words) > 1 and words[0] == "mount"
            and any(d in words[1] for d in REAL_DRIVERS))


class Blocked(Exception):
    pass


def _alarm(signum, frame):
    raise Blocked()


def read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def write_one(prefix: str, path: str, kind: str, line: bytes, seconds: float = 3.0) -> str:
    """Write one line and judge the answer; returns "ok", "refused" or "blocked" (a
    verb that waits, e.g. a connect with nobody answering, cut off by a signal)."""
    log = os.path.join(prefix, "dev", "socket", "log")
    with open(log, "w") as f:
        f.write("clear\n")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    outcome = "ok"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except Blocked:
        outcome = "blocked"
    except OSError as exc:
        outcome = "refused"
        assert exc.errno in USER_ERRNOS, (path, line, exc)
        text = read(log)
        assert text.strip(), f"{path}: {line!r} refused ({exc}) with nothing logged"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    text = read(log)
    assert "internal error" not in text, text
    if outcome == "blocked":
        # Only a verb that legitimately waits may block: a TCP connect, or a write to a
        # clone/ctl that is one.
        assert b"connect" in line, (path, line)
    return outcome
