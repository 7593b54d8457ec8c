"""IPv4 figures over real TAP devices, each against the Linux kernel in the same run.

    sudo .venv/bin/python scripts/bench_ip.py [--seconds 2]

* ping RTT kernel -> stack over TAP (median of 100) vs kernel -> kernel over a veth pair;
* UDP datagrams/s the stack takes in from the kernel (64-byte payloads);
* forwarding: packets/s from namespace L through the stack (two TAPs) to namespace R,
  vs the same through a kernel router namespace.

Everything runs in network namespaces made here and deleted at the end; traffic goes only
to their addresses. Prints figures; asserts nothing.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)
TAG = f"bip{os.getpid() % 10000}"


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def ns_py(ns, code, timeout=60):
    return sh("ip", "netns", "exec", ns, sys.executable, "-c", code, timeout=timeout).stdout


def ping_median(ns, dst, count=100):
    out = sh("ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.005", "-W", "1", dst,
             check=False, timeout=60).stdout
    times = [float(l.split("time=")[1].split()[0]) for l in out.splitlines() if "time=" in l]
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


class Stack:
    def __init__(self, prefix, args):
        self.prefix = prefix
        sh(os.path.join(BIN, "io-pkt-v4-hc"), *args, "-ptcpip", f"prefix={prefix}")
        self.env = dict(os.environ, SOCK=prefix)

    def tool(self, *args):
        return sh(os.path.join(BIN, args[0]), *args[1:], env=self.env)

    def stop(self):
        pid = int(open(f"{self.prefix}/dev/socket/status").read().split("pid: ")[1].split()[0])
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_ip: needs root (namespaces, TAP)")
    nss = [f"{TAG}-{n}" for n in ("peer", "kA", "kB", "L", "R", "kL", "kR", "kRt")]
    stacks = []
    base = tempfile.mkdtemp(prefix="iopkt-bench-ip-")
    try:
        for ns in nss:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        peer, kA, kB, L, R, kL, kR, kRt = nss
        # Stack with one TAP; the kernel in `peer`.
        s1 = Stack(f"{base}/one", ["-d", "tap", f"dev={TAG}t0,netns={peer}"])
        stacks.append(s1)
        s1.tool("iopkt", "ifconfig", "tap0", "10.210.0.2/24")
        sh("ip", "-n", peer, "addr", "add", "10.210.0.1/24", "dev", f"{TAG}t0")
        sh("ip", "-n", peer, "link", "set", f"{TAG}t0", "up")
        s1.tool("if_up", "-l", "-m", "100", "-r", "50", "tap0")
        # Kernel to kernel over a veth pair.
        sh("ip", "link", "add", f"{TAG}va", "netns", kA, "type", "veth", "peer", "name", f"{TAG}vb", "netns", kB)
        for ns, dev, addr in ((kA, f"{TAG}va", "10.211.0.1/24"), (kB, f"{TAG}vb", "10.211.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        ping_median(peer, "10.210.0.2", 5)
        ping_median(kA, "10.211.0.2", 5)
        ours, n1 = ping_median(peer, "10.210.0.2")
        kern, n2 = ping_median(kA, "10.211.0.2")
        print(f"ping RTT, median of {n1}/{n2}: stack over TAP {ours * 1000:.0f} us, "
              f"kernel over veth {kern * 1000:.0f} us (ratio {ours / kern:.1f}x)")
        before = int(open(f"{base}/one/dev/socket/stats/udp").read().split("ipackets: ")[1].split()[0])
        t0 = time.monotonic()
        sent = int(ns_py(peer, FLOOD.format(secs=args.seconds, dst="10.210.0.2")))
        time.sleep(0.3)
        after = int(open(f"{base}/one/dev/socket/stats/udp").read().split("ipackets: ")[1].split()[0])
        took = time.monotonic() - t0 - 0.3
        print(f"UDP kernel -> stack: {(after - before) / took:,.0f} datagrams/s taken in "
              f"({sent / took:,.0f}/s offered, {after - before} of {sent})")
        # Forwarding through the stack: L - tapL [stack] tapR - R.
        s2 = Stack(f"{base}/router", ["-d", "tap", f"dev={TAG}tl,netns={L}", "-d", "tap", f"dev={TAG}tr,netns={R}"])
        stacks.append(s2)
        s2.tool("iopkt", "ifconfig", "tap0", "10.212.1.1/24")
        s2.tool("iopkt", "ifconfig", "tap1", "10.212.2.1/24")
        s2.tool("iopkt", "sysctl", "-w", "net.inet.ip.forwarding=1")
        for ns, dev, addr, gw in ((L, f"{TAG}tl", "10.212.1.2/24", "10.212.1.1"),
                                  (R, f"{TAG}tr", "10.212.2.2/24", "10.212.2.1")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", gw)
        s2.tool("if_up", "-a", "-l", "-m", "100", "-r", "50", "tap0", "tap1")
        ping_median(L, "10.212.2.2", 3)
        sent, got, span = counted_flow(L, R, "10.212.2.2", args.seconds)
        ours_pps = got / span if span else 0
        # The same through a kernel router namespace.
        for a, b, ns_a in ((f"{TAG}la", f"{TAG}lb", kL), (f"{TAG}ra", f"{TAG}rb", kR)):
            sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", kRt)
        sh("ip", "netns", "exec", kRt, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns, dev, addr, gw in ((kL, f"{TAG}la", "10.213.1.2/24", "10.213.1.1"),
                                  (kR, f"{TAG}ra", "10.213.2.2/24", "10.213.2.1")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", gw)
        for dev, addr in ((f"{TAG}lb", "10.213.1.1/24"), (f"{TAG}rb", "10.213.2.1/24")):
            sh("ip", "-n", kRt, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", kRt, "link", "set", dev, "up")
        ping_median(kL, "10.213.2.2", 3)
        ksent, kgot, kspan = counted_flow(kL, kR, "10.213.2.2", args.seconds)
        kern_pps = kgot / kspan if kspan else 0
        print(f"forwarding, 64-byte UDP: stack {ours_pps:,.0f} pkt/s ({got} of {sent} arrived), "
              f"kernel router {kern_pps:,.0f} pkt/s ({kgot} of {ksent}); ratio {ours_pps / kern_pps:.2f}")
    finally:
        for s in stacks:
            try:
                s.stop()
            except Exception:
                pass
        for ns in nss:
            sh("ip", "netns", "del", ns, check=False)


if __name__ == "__main__":
    main()
