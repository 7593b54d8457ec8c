#!/usr/bin/env python3
"""FUSE requests and stack CPU per connection for the cps servers of scripts/bench.py.

    sudo PYTHONPATH=$PWD .venv/bin/python scripts/cps_requests.py threaded|bash SECONDS [--spy FILE]

Sets up bench.py's TAP instance, runs the threaded iopkt_fs.client server or the bash
`while M=$(cat listen)` server, warms up for 0.5 s, then records
`perf record -a -e fuse:fuse_request_send --filter 'connection == DEV'` while the kernel
client (`kpeer.py cps`) connects for SECONDS, and prints requests per connection by
opcode, connections/s and stack CPU per connection (docs/performance.md, The file path).
With --spy, py-spy (on PATH or /tmp/pyspy/bin) records the stack meanwhile (raw format,
200 Hz, blocking mode). Everything started is removed at the end (bench.Env).
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CPS_MAX, Env, kpeer, last_json, main_tap  # noqa: E402

OPS = {1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 14: "OPEN", 15: "READ", 16: "WRITE",
       18: "RELEASE", 25: "FLUSH", 27: "OPENDIR", 28: "READDIR", 29: "RELEASEDIR", 40: "POLL",
       42: "BATCH_FORGET", 44: "READDIRPLUS"}
def run(mode: str, secs: float, spy: str | None) -> None:
    env = Env()
    try:
        inst, ns, _ = main_tap(env)
        dev = os.stat(inst.prefix).st_dev
        data = os.path.join(env.base, "perf.data")
        if mode == "threaded":
            from iopkt_fs import client
            stop = threading.Event()
            lst = client.announce("tcp!*!5500", prefix=inst.prefix)
            def handle(conn):
                try: conn.read_all()
                finally: conn.close()
            def serve():
                while not stop.is_set():
                    try: conn = lst.accept()
                    except OSError: return
                    threading.Thread(target=handle, args=(conn,), daemon=True).start()
            th = threading.Thread(target=serve, daemon=True); th.start(); port = "5500"
        else:
            script = (f'D={inst.tcp}; N=$(cat $D/clone); echo "announce 5501" > $D/$N/ctl; echo ready; '
                      'while M=$(cat $D/$N/listen); do cat $D/$M/data > /dev/null; '
                      'echo close > $D/$M/ctl 2>/dev/null; done')
            server = env.popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
            server.stdout.readline(); time.sleep(0.2); port = "5501"
        # warm up
        env.finish(kpeer(env, ns, "cps", "10.231.1.2", port, "0.5", "200"), 30)
        perf = env.popen(["perf", "record", "-q", "-a", "-e", "fuse:fuse_request_send", "--filter",
                          f"connection == {dev}", "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sp = None
        if spy:
            pyspy = shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy"
            sp = env.popen([pyspy, "record", "--pid", str(inst.pid), "--format", "raw",
                            "-d", str(int(secs)), "-r", "200", "-o", spy],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        c0 = inst.cpu()
        out = last_json(env.finish(kpeer(env, ns, "cps", "10.231.1.2", port, str(secs), str(CPS_MAX)), secs + 60))
        c1 = inst.cpu()
        time.sleep(0.3)
        perf.send_signal(2); perf.wait(10)
        if sp: sp.wait(30)
        n = out["count"]
        cps = n / out["cps_seconds"]
        txt = subprocess.run(["perf", "script", "-i", data, "-F", "trace"], capture_output=True, text=True).stdout
        cnt = collections.Counter()
        for line in txt.splitlines():
            parts = line.split()
            if "opcode" in parts:
                cnt[int(parts[parts.index("opcode") + 1])] += 1
        print(f"{mode}: {cps:.0f} conn/s, {n} conns, stack CPU {(c1-c0)/n*1e6:.0f} us/conn")
        tot = 0
        for op, k in sorted(cnt.items()):
            print(f"  {str(OPS.get(op, op)):12s} {k/n:6.2f}/conn")
            tot += k
        print(f"  {'total':12s} {tot/n:6.2f}/conn (incl. warm-up tail)")
    finally:
        env.close()

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("server", choices=("threaded", "bash"))
    ap.add_argument("seconds", type=float)
    ap.add_argument("--spy", metavar="FILE", help="py-spy raw profile of the stack to FILE")
    args = ap.parse_args()
    run(args.server, args.seconds, args.spy)
