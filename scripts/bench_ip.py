"""IPv4 measuring helpers for scripts/bench.py (ping, UDP floods counted in a namespace).

    sudo .venv/bin/python scripts/bench_ip.py [--seconds 2]
    (the same as: scripts/bench.py --only ping,udp,forward)

* ping RTT kernel -> stack over TAP (median of 100) vs kernel -> kernel over a veth pair;
* UDP datagrams/s the stack takes in from the kernel (64-byte payloads);
* forwarding: packets/s from namespace L through the stack (two TAPs) to namespace R,
  vs the same through a kernel router namespace.

Everything runs in network namespaces made here and deleted at the end; traffic goes only
to their addresses. Prints figures; asserts nothing.
"""

import os
import statistics
import subprocess
import sys
import time  # noqa: F401  (FLOOD/COUNT run elsewhere)

BIN = os.path.dirname(sys.executable)
TAG = f"bip{os.getpid() % 10000}"


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def ns_py(ns, code, timeout=60):
    return sh("ip", "netns", "exec", ns, sys.executable, "-c", code, timeout=timeout).stdout


def ping_times(ns, dst, count=100):
    """The RTTs (ms) of count pings 5 ms apart from namespace ns to dst."""
    out = sh("ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.005", "-W", "1", dst,
             check=False, timeout=60).stdout
    return [float(l.split("time=")[1].split()[0]) for l in out.splitlines() if "time=" in l]


def ping_median(ns, dst, count=100):
    times = ping_times(ns, dst, count)
    return statistics.median(times) if times else float("nan"), len(times)


FLOOD = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
data = b'x' * 64; end = time.monotonic() + {secs}; n = 0
while time.monotonic() < end:
    for _ in range(100):
        try:
            s.sendto(data, ('{dst}', 5000)); n += 1
        except OSError:
            pass
print(n)
"""

COUNT = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(('0.0.0.0', 5000)); s.settimeout(0.5)
print('ready', flush=True)
n = 0; first = last = None
while True:
    try:
        s.recv(2048)
    except socket.timeout:
        if first is not None:
            break
        continue
    n += 1; last = time.monotonic(); first = first or last
print(n, (last - first) if first else 0, flush=True)
"""


def counted_flow(src_ns, dst_ns, dst, seconds):
    rx = subprocess.Popen(["ip", "netns", "exec", dst_ns, sys.executable, "-c", COUNT],
                          stdout=subprocess.PIPE, text=True)
    assert rx.stdout.readline().strip() == "ready"
    sent = int(ns_py(src_ns, FLOOD.format(secs=seconds, dst=dst)))
    got, span = rx.communicate(timeout=30)[0].split()
    return sent, int(got), float(span)


if __name__ == "__main__":
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                           "bench.py"),
                              "--only", "ping,udp,forward", *sys.argv[1:]])
