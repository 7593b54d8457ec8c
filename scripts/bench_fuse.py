"""Benchmark the manager: start-to-serving time, and reads per second of
``dev/socket/if/lo0/status`` against a minimal pyfuse3 file measured in the same run.

    .venv/bin/python scripts/bench_fuse.py [--seconds 2] [--starts 5]

Prints figures and same-run ratios; asserts nothing (benchmarks are not tests).
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
HERE = os.path.dirname(os.path.abspath(__file__))


def wait_for(path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {path}")


def rate(fn, seconds):
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(50):
            fn()
        n += 50
    return n / (time.perf_counter() - t0)


def measure(path, seconds):
    fd = os.open(path, os.O_RDONLY)
    try:
        pread = rate(lambda: os.pread(fd, 4096, 0), seconds)
    finally:
        os.close(fd)

    def whole():
        with open(path, "rb", buffering=0) as f:
            f.read(4096)
    return pread, rate(whole, seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--starts", type=int, default=5, help="start/stop cycles to time")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="iopkt-bench-")
    prefix = os.path.join(base, "stack")
    starts = []
    for _ in range(args.starts):
        t0 = time.perf_counter()
        subprocess.run([os.path.join(BIN, "io-pkt-v4-hc"), "-ptcpip", f"prefix={prefix}"], check=True)
        starts.append(time.perf_counter() - t0)
        pid = int(open(os.path.join(prefix, "dev/socket/status")).read().split("pid: ")[1].split()[0])
        os.kill(pid, signal.SIGTERM)
        while os.path.ismount(prefix):
            time.sleep(0.01)
    subprocess.run([os.path.join(BIN, "io-pkt-v4-hc"), "-ptcpip", f"prefix={prefix}"], check=True)
    status = os.path.join(prefix, "dev/socket/if/lo0/status")
    minimal_dir = os.path.join(base, "minimal")
    minimal = subprocess.Popen([sys.executable, os.path.join(HERE, "minimal_fuse.py"), minimal_dir])
    try:
        wait_for(os.path.join(minimal_dir, "status"))
        ours = measure(status, args.seconds)
        ceiling = measure(os.path.join(minimal_dir, "status"), args.seconds)
    finally:
        minimal.send_signal(signal.SIGTERM)
        minimal.wait(10)
        pid = int(open(os.path.join(prefix, "dev/socket/status")).read().split("pid: ")[1].split()[0])
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.5)
    print(f"start-to-serving: median {statistics.median(starts) * 1000:.0f} ms "
          f"(min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f}, n={len(starts)})")
    print(f"{'':36} {'iopkt_fs':>10} {'minimal':>10} {'ratio':>7}")
    for label, a, b in (("pread(4096) on an open fd, /s", ours[0], ceiling[0]),
                        ("open+read+close, /s", ours[1], ceiling[1])):
        print(f"{label:36} {a:10.0f} {b:10.0f} {a / b:7.2f}")


if __name__ == "__main__":
    main()
