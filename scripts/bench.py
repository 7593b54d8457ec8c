#!/usr/bin/env python3
"""The benchmark: every figure of the stack with its reference, measured in the same run.

    sudo .venv/bin/python scripts/bench.py [--quick] [--seconds S] [--only NAME,...]
                                           [--json FILE] [--markdown]

Groups (``--only``; references a group needs are measured with it):

    files    kernel -> stack through tcp/N/data (dd, cat, sha256sum, the last also next to
             sha256sum's own rate from a pipe and over minimal_fuse.py's zero stream, that
             also with both pinned to one CPU), stack -> kernel (cat FILE > data, dd
             of=data), stack CPU per segment and per byte; after one unmeasured warm-up
    inproc   the same two directions with the stack in this process (tcpstream); in-core
             TCP between two stacks in memory
    offload  files and in-process kernel -> stack with the TAP driver's offloads off
    vxlan    stack -> stack over devnp-vxlan, two instances, through the data files
    ping     RTT kernel -> stack, in turns with the raw peer's
    cps      connections/s: in-process, threaded server on iopkt_fs.client, bash server
             (next to the same bash loop over tmpfs files, what bash itself allows, and
             over minimal_fuse.py's listen, 1/data and 1/ctl, what pyfuse3 allows)
    udp      UDP datagrams/s taken in
    forward  forwarding packets/s through the stack (two TAPs)
    memory   memory per idle established connection (in-process)
    ctl      control-file reads/s against a minimal pyfuse3 file; stack CPU per data READ
             served at once against the minimal file's CPU per READ
    ipv6     io-pkt-v6-hc: TCP over IPv6 kernel -> stack (dd of data) and stack -> kernel
             (dd of=data), each next to the same over IPv4 on the same TAP in the same
             run (the ratio is the figure); ping6 RTT next to ping's

References: scripts/rawtap_peer.py (a raw Python TAP peer, plain and IFF_VNET_HDR), kernel
<-> kernel over veth, a kernel router namespace, scripts/minimal_fuse.py (a pyfuse3
filesystem that answers at once). The kernel's side is tests/kernel/kpeer.py. Everything
runs in network namespaces made here (``bnPID-*``) or on loopback; namespaces, TAPs,
mounts and processes (by PID) are removed at the end, also after Ctrl-C. Prints a table
and, with --json, writes the rows. Asserts nothing.
"""

import argparse
import datetime
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import trio  # noqa: E402

import bench_files  # noqa: E402
import bench_fuse  # noqa: E402
import bench_ip  # noqa: E402
import bench_tcp  # noqa: E402
from bench_tcp import link_stats, proc_cpu  # noqa: E402

BIN = pathlib.Path(sys.executable).parent
PY = sys.executable
KPEER = str(ROOT / "tests" / "kernel" / "kpeer.py")
RAWPEER = str(HERE / "rawtap_peer.py")
MB = 1_000_000
GROUPS = ("files", "inproc", "offload", "vxlan", "ping", "cps", "udp", "forward", "memory", "ctl", "ipv6")
CPS_MAX = 30000            # connections per cps run (ephemeral ports, TIME_WAIT)
# An instance moves data once, unmeasured, before its first measured transfer. This VM's
# balloon has free page reporting (virtio_balloon feature bit 5): memory the guest frees is
# handed back to the host, and the first touch of it afterwards faults on the host. A
# stack's first transfer grows its rings into such memory: the first dd on an instance
# took 103-155 µs of stack CPU per super-frame against 62-82 µs for every later reader
# on the same instance, also after 65 s idle (docs/performance.md, "Warm-up").
WARMUP_SECONDS = 1.5
VXLAN_MBS = 200            # the usual stack <-> stack rate over vxlan: sizes its dd to ~s seconds
OFFLOAD_FLAGS = ("-tso4", "-tso6", "-tcp4csum", "-udp4csum", "-tcp6csum", "-udp6csum")


def interrupted(exc: BaseException) -> bool:
    """Ctrl-C/SIGTERM, also when trio hands it over inside an exception group."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.subgroup(
        (KeyboardInterrupt, SystemExit)) is not None


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*args, check=True, timeout=30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=check, capture_output=True, text=True,
                          timeout=timeout, **kw)


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


# -- what we start, and how it all goes away ---------------------------------------------------

class Instance:
    """An io-pkt-v4-hc (or ``binary``) started as a user starts it; stopped by its PID."""

    def __init__(self, env, name: str, args: list[str], instance: int | None = None,
                 binary: str = "io-pkt-v4-hc"):
        self.prefix = os.path.join(env.base, name)
        cmd = [BIN / binary] + (["-i", str(instance)] if instance else [])
        sh(*cmd, *args, "-ptcpip", f"prefix={self.prefix}", timeout=30)
        status = open(f"{self.prefix}/dev/socket/status").read()
        self.pid = int(status.split("pid: ")[1].split()[0])
        env.instances.append(self)
        self.env = dict(os.environ, SOCK=self.prefix)
        self.tcp = f"{self.prefix}/dev/socket/tcp"

    def tool(self, *args, check=True):
        return sh(BIN / args[0], *args[1:], env=self.env, check=check)

    def clone(self) -> str:
        with open(f"{self.tcp}/clone") as f:
            return f.read().strip()

    def ctl(self, n: str, line: str) -> None:
        with open(f"{self.tcp}/{n}/ctl", "w") as f:
            f.write(line + "\n")

    def connect(self, addr: str, tries: int = 100) -> str:
        """A new connection to addr (HOST!PORT), retried while the peer is not listening."""
        for _ in range(tries):
            n = self.clone()
            try:
                self.ctl(n, f"connect {addr}")
                return n
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"connect {addr}: no answer")

    def accept(self, n: str, timeout: float = 30) -> str:
        """The next call on announced connection n (``cat listen``, bounded)."""
        return sh("cat", f"{self.tcp}/{n}/listen", timeout=timeout).stdout.strip()

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            if not os.path.exists(f"/proc/{self.pid}"):
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.2)
        unmount(self.prefix)


class Env:
    def __init__(self):
        self.tag = f"bn{os.getpid() % 100000}"
        self.base = tempfile.mkdtemp(prefix="iopkt-bench-")
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.instances: list[Instance] = []
        self.mounts: list[str] = []           # minimal_fuse.py mounts, unmounted if left
        self.cache: dict = {}

    def ns(self, name: str) -> str:
        full = f"{self.tag}-{name}"
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        sh("ip", "-n", full, "link", "set", "lo", "up")
        return full

    def popen(self, argv, **kw) -> subprocess.Popen:
        p = subprocess.Popen([str(a) for a in argv], start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def finish(self, p: subprocess.Popen, timeout: float) -> str:
        """Wait for p (killing its process group after timeout); its stdout."""
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(p)
            out, _ = p.communicate(timeout=10)
        return out or ""

    @staticmethod
    def kill(p: subprocess.Popen) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)     # the group we made for it
                p.wait(3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)

    def once(self, key, make):
        """Shared set-ups and references: made at most once per run."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def close(self) -> None:
        for p in reversed(self.procs):
            try:
                self.kill(p)
            except Exception as exc:          # keep cleaning
                log(f"cleanup: {exc}")
        for inst in reversed(self.instances):
            try:
                inst.stop()
            except Exception as exc:
                log(f"cleanup: {exc}")
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        for d in self.mounts:
            unmount(d)
        shutil.rmtree(self.base, ignore_errors=True)


# -- results --------------------------------------------------------------------------------

class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, figure, value, unit, ref_name=None, ref_value=None, note="", digits=1):
        ratio = value / ref_value if value is not None and ref_value else None
        row = {"figure": figure, "value": value, "unit": unit, "reference": ref_name,
               "reference_value": ref_value, "ratio": ratio, "note": note, "digits": digits}
        self.rows.append(row)
        log(f"{figure}: {fmt(value, digits)} {unit}" + (f"  ({ref_name} {fmt(ref_value, digits)})" if ref_name else ""))

    def text(self) -> str:
        head = ("figure", "value", "unit", "reference", "ref. value", "ratio")
        cells = [head] + [(r["figure"], fmt(r["value"], r["digits"]), r["unit"], r["reference"] or "-",
                           fmt(r["reference_value"], r["digits"]), fmt(r["ratio"], 3))
                          for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
        lines = []
        for k, c in enumerate(cells):
            lines.append("  ".join(s.rjust(w) if i in (1, 4, 5) else s.ljust(w)
                                   for i, (s, w) in enumerate(zip(c, widths))).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        notes = [f"  {r['figure']}: {r['note']}" for r in self.rows if r["note"]]
        return "\n".join(lines + (["", "notes:"] + notes if notes else []))

    def markdown(self) -> str:
        lines = ["| figure | value | unit | reference | ref. value | ratio | note |",
                 "|---|---:|---|---|---:|---:|---|"]
        for r in self.rows:
            lines.append(f"| {r['figure']} | {fmt(r['value'], r['digits'])} | {r['unit']} | "
                         f"{r['reference'] or '-'} | {fmt(r['reference_value'], r['digits'])} | "
                         f"{fmt(r['ratio'], 3)} | {r['note']} |")
        return "\n".join(lines)


def fmt(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v != v:
        return "nan"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


# -- links ----------------------------------------------------------------------------------

def tap_instance(env: Env, key: str, net: int, driver_extra: str = "", ns: str | None = None) -> tuple:
    """io-pkt-v4-hc -d tap into a namespace of its own: stack 10.231.NET.2, kernel .1.
    Returns (instance, namespace, device)."""
    ns = ns or env.ns(key)
    dev = f"{env.tag}{key}"[:15]
    opts = f"dev={dev},netns={ns}" + (f",{driver_extra}" if driver_extra else "")
    inst = Instance(env, key, ["-d", "tap", opts])
    inst.host, inst.peer = f"10.231.{net}.2", f"10.231.{net}.1"
    inst.tool("iopkt", "ifconfig", "ltap0", f"10.231.{net}.2/24")
    sh("ip", "-n", ns, "addr", "add", f"10.231.{net}.1/24", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")
    inst.tool("if_up", "-l", "-m", "100", "-r", "50", "ltap0")
    return inst, ns, dev


def main_tap(env: Env):
    return env.once("tap", lambda: tap_instance(env, "t", 1))


def offload_tap(env: Env):
    """The stack with the TAP driver's offloads off, or (None, ..., note) if it cannot."""
    def make():
        notes = []
        ns = env.ns("o")
        # io-pkt keeps running when a driver refuses its options (as on QNX): whether the
        # option exists shows as ltap0 being there or not.
        probe = Instance(env, "oprobe", ["-d", "tap", f"dev={env.tag}op,netns={ns},offload=0"])
        accepted = os.path.isdir(f"{probe.prefix}/dev/socket/if/ltap0")
        probe.stop()
        if not accepted:
            notes.append("offload option not available")
        inst, ns, dev = tap_instance(env, "o", 4, "offload=0" if accepted else "", ns=ns)
        r = inst.tool("iopkt", "ifconfig", "ltap0", *OFFLOAD_FLAGS, check=False)
        if r.returncode:
            notes.append("ifconfig " + " ".join(OFFLOAD_FLAGS) + " not available")
        return inst, ns, dev, "; ".join(notes)
    return env.once("offload-tap", make)


def veth_pair(env: Env):
    """Two namespaces joined by a veth pair: 10.231.3.1 (a) and 10.231.3.2 (b)."""
    def make():
        a, b = env.ns("va"), env.ns("vb")
        sh("ip", "-n", a, "link", "add", "bnva", "type", "veth", "peer", "name", "bnvb", "netns", b)
        sh("ip", "-n", a, "addr", "add", "10.231.3.1/24", "dev", "bnva")
        sh("ip", "-n", b, "addr", "add", "10.231.3.2/24", "dev", "bnvb")
        sh("ip", "-n", a, "link", "set", "bnva", "up")
        sh("ip", "-n", b, "link", "set", "bnvb", "up")
        return a, b
    return env.once("veth", make)


def kpeer(env: Env, ns: str, *args) -> subprocess.Popen:
    return env.popen(["ip", "netns", "exec", ns, PY, KPEER, *args], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)


# -- references -----------------------------------------------------------------------------

class RawPeer:
    """rawtap_peer.py in namespace ns (its TAP 10.231.NET.2, the kernel .1)."""

    def __init__(self, env: Env, ns: str, net: int, vnet: bool, send: str | None = None,
                 seconds: float = 0):
        self.env, self.ns = env, ns
        self.dev = f"{env.tag}r{'v' if vnet else 'p'}{'s' if send else ''}"[:15]
        argv = ["ip", "netns", "exec", ns, PY, RAWPEER, "--dev", self.dev, "--ip", f"10.231.{net}.2"]
        argv += ["--vnet"] if vnet else []
        argv += ["--send", send, "--seconds", str(seconds)] if send else ["--limit", "900"]
        self.proc = env.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("{"):
            raise RuntimeError("rawtap_peer did not start")
        sh("ip", "-n", ns, "addr", "add", f"10.231.{net}.1/24", "dev", self.dev)
        sh("ip", "-n", ns, "link", "set", self.dev, "up")

    def go(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 30) -> dict:
        out = self.env.finish(self.proc, timeout)
        try:
            return last_json(out)
        except (ValueError, IndexError):
            return {}

    def terminate(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        return self.stop()


def raw_ns(env: Env) -> str:
    def make():
        ns = env.ns("r")
        # The raw peer has no timestamps, so the kernel client cannot reuse TIME_WAIT ports:
        # give it all of them (the kernel's side only; the stack gets no sysctl).
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535")
        return ns
    return env.once("raw-ns", make)


def raw_rx(env: Env, vnet: bool, seconds: float) -> dict:
    """The kernel sends to the raw peer for seconds: MB/s and CPU per frame."""
    def make():
        ns = raw_ns(env)
        peer = RawPeer(env, ns, 2 if vnet else 5, vnet)
        dst = "10.231.2.2" if vnet else "10.231.5.2"
        try:
            out = last_json(env.finish(kpeer(env, ns, "blastfor", dst, "5000", str(seconds)), seconds + 60))
            extra = {}
            if vnet:
                bench_ip.ping_median(ns, dst, 5)
                extra["rtt"] = bench_ip.ping_median(ns, dst, 100)[0]
                # The peer's own CPU over the connections alone: most of it is the kernel
                # client's receive path, run inside the peer's TAP writes.
                cpu0 = proc_cpu(peer.proc.pid)
                c = last_json(env.finish(kpeer(env, ns, "cps", dst, "5001", str(seconds), str(CPS_MAX)), seconds + 60))
                extra["cps"] = c["count"] / c["cps_seconds"]
                extra["cps_cpu_us"] = (proc_cpu(peer.proc.pid) - cpu0) / max(1, c["count"]) * 1e6
        finally:
            stats = peer.terminate()
        return {"mbs": out["bytes"] / out["transfer_seconds"] / MB,
                "us_per_frame": stats["cpu"] / max(1, stats["frames_in"]) * 1e6 if stats else None,
                "mean_frame": stats["bytes"] / max(1, stats["frames_in"]) if stats else None,
                **extra}
    return env.once(("raw-rx", vnet), make)


def raw_tx(env: Env, vnet: bool, seconds: float) -> float:
    """The raw peer sends to a kernel sink for seconds: MB/s as the kernel counted."""
    def make():
        # A namespace of its own: the receiver's (raw_ns) is left with tens of thousands
        # of TIME_WAIT sockets by the connections/s run, and a sender there got no answer.
        ns = env.ns("rs" if vnet else "rsp")
        net = 6 if vnet else 7
        peer = RawPeer(env, ns, net, vnet, send=f"10.231.{net}.1:5002", seconds=seconds)
        sink = kpeer(env, ns, "sink", "5002")
        time.sleep(0.3)
        peer.go()
        sent = peer.stop(seconds + 30)
        text = env.finish(sink, 5)
        if text.strip():
            out = last_json(text)
            return out["bytes"] / out["first_to_eof"] / MB
        # No EOF at the sink (the peer's FIN went unanswered): what the kernel ACKed.
        log("raw peer sender: no EOF at the kernel sink; using the bytes it acknowledged")
        return sent.get("bytes", 0) / seconds / MB

    def measured():
        # A run that reports nothing (the peer stopped without its summary) is run once
        # more, so a reference is never a silent 0.
        for _ in range(2):
            value = make()
            if value:
                return value
            log("raw peer sender: no figure; measuring again")
        return None
    return env.once(("raw-tx", vnet), measured)


def veth_mbs(env: Env, seconds: float) -> float:
    def make():
        a, b = veth_pair(env)
        sink = kpeer(env, b, "sink", "5100")
        time.sleep(0.3)
        out = last_json(env.finish(kpeer(env, a, "blastfor", "10.231.3.2", "5100", str(seconds)), seconds + 60))
        env.finish(sink, 30)
        return out["bytes"] / out["transfer_seconds"] / MB
    return env.once("veth-mbs", make)


def veth_rtt(env: Env) -> float:
    def make():
        a, _ = veth_pair(env)
        bench_ip.ping_median(a, "10.231.3.2", 5)
        return bench_ip.ping_median(a, "10.231.3.2", 100)[0]
    return env.once("veth-rtt", make)


def refs_rx(env, t, s):
    return raw_rx(env, True, s)["mbs"]


# -- the stack through its files ------------------------------------------------------------

READERS = {"dd": "dd if={data} of=/dev/null bs=1M", "cat": "cat {data} > /dev/null",
           "sha256sum": "sha256sum < {data} > /dev/null"}
WRITERS = {"cat": "cat {file} > {data}", "dd": "dd if=/dev/zero of={data} bs=1M count={mb}"}


def files_rx(env: Env, inst: Instance, ns: str, dev: str, reader: str, seconds: float,
             port: int) -> dict:
    """A kernel sender for seconds -> tcp/M/data -> a reader started on the host."""
    n = inst.clone()
    inst.ctl(n, f"announce {port}")
    sender = kpeer(env, ns, "blastfor", inst.host, str(port), str(seconds))
    m = inst.accept(n)
    data = f"{inst.tcp}/{m}/data"
    cpu0, st0 = inst.cpu(), link_stats(ns, dev)
    t0 = time.monotonic()
    r = sh("bash", "-c", READERS[reader].format(data=data), timeout=seconds * 4 + 60)
    took = time.monotonic() - t0
    cpu1, st1 = inst.cpu(), link_stats(ns, dev)
    for conn in (m, n):             # our FIN now, not when the files' linger runs out
        try:
            inst.ctl(conn, "close")
        except OSError:
            pass
    out = last_json(env.finish(sender, 60))
    got = out["bytes"]
    if reader == "dd":
        got = int(r.stderr.split(" bytes")[0].split("\n")[-1].strip())
    frames = st1["tx"]["packets"] - st0["tx"]["packets"]
    return {"mbs": got / took / MB, "bytes": got, "sent": out["bytes"], "cpu": cpu1 - cpu0,
            "frames": frames, "acks": st1["rx"]["packets"] - st0["rx"]["packets"]}


def files_tx(env: Env, inst: Instance, ns: str, writer: str, seconds: float, port: int,
             guess_mbs: float) -> dict:
    """A writer on the host -> tcp/N/data -> a kernel sink that counts."""
    mb = max(8, int(guess_mbs * seconds))
    sink = kpeer(env, ns, "sink", str(port))
    time.sleep(0.3)
    n = inst.connect(f"{inst.peer}!{port}")
    data = f"{inst.tcp}/{n}/data"
    src = os.path.join("/dev/shm", f"{env.tag}-src")
    if writer == "cat":
        with open(src, "wb") as f:
            f.truncate(mb * 1 << 20)
    try:
        sh("bash", "-c", WRITERS[writer].format(file=src, data=data, mb=mb), timeout=seconds * 6 + 60)
        inst.ctl(n, "close")
    finally:
        if os.path.exists(src):
            os.unlink(src)
    out = last_json(env.finish(sink, 60))
    return {"mbs": out["bytes"] / out["first_to_eof"] / MB, "bytes": out["bytes"]}


def sha256sum_mbs(seconds: float) -> float:
    """What sha256sum hashes per second here, fed by a pipe from /dev/zero (~seconds):
    the ceiling of any `sha256sum < data` figure on this machine."""
    probe = 256
    t0 = time.monotonic()
    sh("bash", "-c", f"dd if=/dev/zero bs=1M count={probe} status=none | sha256sum > /dev/null")
    rate = probe * (1 << 20) / max(1e-3, time.monotonic() - t0)
    mb = max(probe, int(rate * seconds / (1 << 20)))
    t0 = time.monotonic()
    sh("bash", "-c", f"dd if=/dev/zero bs=1M count={mb} status=none | sha256sum > /dev/null",
       timeout=seconds * 4 + 60)
    return mb * (1 << 20) / (time.monotonic() - t0) / MB


def sha256sum_minimal_mbs(env: Env, seconds: float, guess_mbs: float, cpu: int | None = None) -> float:
    """What sha256sum hashes per second from minimal_fuse.py's zero stream (~seconds): a
    pyfuse3 file that answers every READ at once, so the ceiling of `sha256sum < data`
    through any pyfuse3 filesystem here. With cpu, both pinned to that one CPU, so that
    neither waits for the other's idle CPU to wake (a diagnosis, not a ceiling)."""
    nbytes = max(64 << 20, int(guess_mbs * MB * seconds))
    m = MinimalFuse(env, nbytes, cpu)
    pin = "" if cpu is None else f"taskset -c {cpu} "
    try:
        t0 = time.monotonic()
        sh("bash", "-c", f"{pin}sha256sum < {m.dir}/zero > /dev/null", timeout=seconds * 6 + 60)
        return nbytes / (time.monotonic() - t0) / MB
    finally:
        m.close()


def g_files(env: Env, t: Table, s: float) -> None:
    inst, ns, dev = main_tap(env)
    ref = raw_rx(env, True, s)
    port = 5200
    files_rx(env, inst, ns, dev, "dd", WARMUP_SECONDS, 5199)      # not a figure: WARMUP_SECONDS
    dd = None
    for reader in READERS:
        r = files_rx(env, inst, ns, dev, reader, s, port)
        port += 1
        t.add(f"kernel -> stack, `{READERS[reader].format(data='data')}`", r["mbs"], "MB/s",
              "raw peer, vnet", ref["mbs"])
        if reader == "dd":
            dd = r
        if reader == "sha256sum":
            pipe = sha256sum_mbs(s)
            t.add("the same, against sha256sum's own rate on this machine", r["mbs"], "MB/s",
                  "sha256sum of a pipe", pipe)
            ceiling = sha256sum_minimal_mbs(env, s, pipe)
            t.add("the same, against sha256sum of a minimal pyfuse3 file", r["mbs"], "MB/s",
                  "minimal_fuse.py zero stream", ceiling)
            t.add("reference: sha256sum of a minimal pyfuse3 file", ceiling, "MB/s",
                  "raw peer, vnet", ref["mbs"],
                  note="no stack: every READ answered at once; the ceiling of the row two above")
            t.add("reference: the same, sha256sum and minimal_fuse.py on one CPU", sha256sum_minimal_mbs(env, s, pipe, 0),
                  "MB/s", "minimal_fuse.py zero stream", ceiling,
                  note="taskset -c 0 for both: what waking the other, idle CPU costs each READ")
    t.add("stack CPU per received segment (files, dd)", dd["cpu"] / max(1, dd["frames"]) * 1e6,
          "µs", "raw peer, plain", raw_rx(env, False, s)["us_per_frame"],
          note=f"{dd['frames']:,} frames, {dd['acks'] / max(1, dd['frames']):.2f} ACKs per frame")
    t.add("stack CPU per received byte (files, dd)", dd["cpu"] / max(1, dd["bytes"]) * 1e9, "ns",
          "raw peer, vnet", ref["us_per_frame"] * 1e3 / ref["mean_frame"] if ref["mean_frame"] else None,
          digits=2)
    tx_ref = raw_tx(env, True, s)
    for writer in WRITERS:
        r = files_tx(env, inst, ns, writer, s, port, dd["mbs"])
        port += 1
        t.add(f"stack -> kernel, `{WRITERS[writer].format(file='FILE', data='data', mb='N')}`",
              r["mbs"], "MB/s", "raw peer sender, vnet", tx_ref)


# -- in-process ------------------------------------------------------------------------------

def inproc(env: Env, key: str, jobs: dict, driver_opts: str = "") -> dict:
    ns = env.ns(key)
    if "cps" in jobs:
        # The kernel client here gets the port range raw_ns gives it for the reference
        # (the kernel's side only; the stack gets no sysctl). With the default 28,232
        # ports, TIME_WAIT fills them within a 10 s run and connect()'s port search, not
        # the stack, set the rate: 2,111/s over 3 s but 1,539/s over 10 s at the same
        # stack CPU per connection (472 and 436 µs).
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535")
    dev = f"{env.tag}{key}"[:15]
    net = {"i": "10.231.10", "io": "10.231.11", "ic": "10.231.12", "im": "10.231.13"}[key]
    return trio.run(bench_tcp.run, ns, dev, jobs, net, driver_opts)


def g_inproc(env: Env, t: Table, s: float) -> None:
    ref = raw_rx(env, True, s)
    r = inproc(env, "i", {"k2s": ("k2s", (s,)), "s2k": ("s2k", (s,))})
    k, o = r["k2s"], r["s2k"]
    t.add("kernel -> stack, in-process sink (default buffers)", k["bytes"] / k["seconds"] / MB,
          "MB/s", "raw peer, vnet", ref["mbs"])
    t.add("stack CPU per received segment (in-process)", k["cpu"] / max(1, k["frames"]) * 1e6, "µs",
          "raw peer, plain", raw_rx(env, False, s)["us_per_frame"],
          note=f"{k['frames']:,} frames, {k['acks'] / max(1, k['frames']):.2f} ACKs per frame")
    t.add("stack CPU per received byte (in-process)", k["cpu"] / max(1, k["bytes"]) * 1e9, "ns",
          "raw peer, vnet", ref["us_per_frame"] * 1e3 / ref["mean_frame"] if ref["mean_frame"] else None,
          digits=2)
    t.add("stack -> kernel, in-process sender", o["bytes"] / o["seconds"] / MB, "MB/s",
          "raw peer sender, vnet", raw_tx(env, True, s))
    mb = max(10, int(10 * s))
    t.add("in-core TCP, two stacks over an in-memory link (no I/O)", bench_files.in_core(mb),
          "MB/s", note=f"{mb} MiB; both ends in this one process, no files, drivers or kernel")


def g_offload(env: Env, t: Table, s: float) -> None:
    ref = raw_rx(env, True, s)
    inst, ns, dev, note = offload_tap(env)
    if "offload option not available" in note and "ifconfig" in note:
        t.add("kernel -> stack, `dd` of data, offloads off", None, "MB/s", "raw peer, vnet",
              ref["mbs"], note=note)
    else:
        r = files_rx(env, inst, ns, dev, "dd", s, 5300)
        # Plain frames both ways: the peer to match is the raw peer on plain frames.
        t.add("kernel -> stack, `dd` of data, offloads off", r["mbs"], "MB/s", "raw peer, plain",
              raw_rx(env, False, s)["mbs"], note=note)
        t.add("stack CPU per received segment, offloads off", r["cpu"] / max(1, r["frames"]) * 1e6,
              "µs", "raw peer, plain", raw_rx(env, False, s)["us_per_frame"])
    try:
        r = inproc(env, "io", {"k2s": ("k2s", (s,))}, "offload=0")["k2s"]
        t.add("kernel -> stack, in-process, offloads off", r["bytes"] / r["seconds"] / MB, "MB/s",
              "raw peer, plain", raw_rx(env, False, s)["mbs"])
    except BaseException as exc:      # trio wraps the driver's StackError in a group
        if interrupted(exc):
            raise
        t.add("kernel -> stack, in-process, offloads off", None, "MB/s", "raw peer, plain",
              raw_rx(env, False, s)["mbs"], note="offload option not available")


# -- vxlan ----------------------------------------------------------------------------------

def g_vxlan(env: Env, t: Table, s: float) -> None:
    a = Instance(env, "xa", ["-d", "vxlan", "vni=7,bind=127.0.0.2:4789,peer=127.0.0.3:4789"], instance=1)
    b = Instance(env, "xb", ["-d", "vxlan", "vni=7,bind=127.0.0.3:4789,peer=127.0.0.2:4789"], instance=2)
    a.tool("iopkt", "ifconfig", "vx0", "10.231.9.1/24")
    b.tool("iopkt", "ifconfig", "vx0", "10.231.9.2/24")
    vxlan_dd(a, b, 5399, int(VXLAN_MBS * WARMUP_SECONDS), 15)      # not a figure: WARMUP_SECONDS
    mb = max(8, int(VXLAN_MBS * s))     # about s seconds at the usual rate
    got = vxlan_dd(a, b, 5400, mb, s)
    value = got["bytes"] / got["seconds"] / MB if "bytes" in got else None
    t.add("stack -> stack over devnp-vxlan, `dd` both ends", value, "MB/s", "kernel <-> kernel, veth",
          veth_mbs(env, s), note=got.get("error", f"{mb} MB"))


def vxlan_dd(a: Instance, b: Instance, port: int, mb: int, s: float) -> dict:
    """dd of mb MB into a's connection to b, dd of b's end to /dev/null: what b's dd got."""
    n = b.clone()
    b.ctl(n, f"announce {port}")
    got = {}

    def reader():
        try:
            m = b.accept(n)
            t0 = time.monotonic()
            r = sh("dd", f"if={b.tcp}/{m}/data", "of=/dev/null", "bs=1M", timeout=s * 6 + 60)
            got["bytes"] = int(r.stderr.split(" bytes")[0].split("\n")[-1].strip())
            got["seconds"] = time.monotonic() - t0
        except Exception as exc:
            got["error"] = str(exc)
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    time.sleep(0.2)
    na = a.connect(f"10.231.9.2!{port}")
    sh("dd", "if=/dev/zero", f"of={a.tcp}/{na}/data", "bs=1M", f"count={mb}", timeout=s * 6 + 60)
    a.ctl(na, "close")
    th.join(s * 6 + 90)
    for c in (n,):
        try:
            b.ctl(c, "close")
        except OSError:
            pass
    return got


# -- small figures ---------------------------------------------------------------------------

def g_ping(env: Env, t: Table, s: float) -> None:
    """The stack and a raw peer (vnet) answer pings in turns, 5 blocks of 60 each: an
    idle process's wakeup on this VM moves either median by 2x from one minute to the
    next, so the two are measured side by side, not minutes apart."""
    inst, ns, dev = main_tap(env)
    rns = raw_ns(env)
    peer = RawPeer(env, rns, 4, True)
    ours, raw = [], []
    try:
        bench_ip.ping_median(ns, "10.231.1.2", 5)
        bench_ip.ping_median(rns, "10.231.4.2", 5)
        for _ in range(5):
            ours += bench_ip.ping_times(ns, "10.231.1.2", 60)
            raw += bench_ip.ping_times(rns, "10.231.4.2", 60)
    finally:
        peer.terminate()
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    ours_m = med(ours)
    t.add("ping RTT kernel -> stack (median)", ours_m, "ms", "raw peer, vnet", med(raw), digits=3,
          note=f"{len(ours)} / {len(raw)} replies, in 5 alternating blocks")
    t.add("ping RTT kernel -> stack (median), vs veth", ours_m, "ms", "kernel <-> kernel, veth",
          veth_rtt(env), digits=3)


def g_cps(env: Env, t: Table, s: float) -> None:
    raw = raw_rx(env, True, s)
    ref = raw["cps"]
    r = inproc(env, "ic", {"cps": ("cps", (s,))})["cps"]
    cps = r["count"] / r["cps_seconds"]
    t.add("connections/s in-process (connect, 1 byte, close)", cps, "1/s", "raw peer", ref,
          note=f"{r['cpu'] / max(1, r['count']) * 1e6:.0f} µs stack CPU per connection "
               f"(the raw peer's own: {raw['cps_cpu_us']:.0f} µs)")
    inst, ns, dev = main_tap(env)
    t.add("connections/s to a threaded server on iopkt_fs.client", files_cps_threaded(env, inst, ns, s),
          "1/s", "raw peer", ref)
    floor = bash_floor(env, s)
    bash = files_cps_bash(env, inst, ns, s)
    t.add("connections/s to `while M=$(cat listen)` in bash", bash,
          "1/s", "the same loop over tmpfs files", floor,
          note=f"raw peer {ref:,.0f}/s")
    t.add("the same, against the loop over a minimal pyfuse3 filesystem", bash, "1/s",
          "the loop over minimal_fuse.py", bash_minimal(env, s))


def files_cps_threaded(env: Env, inst: Instance, ns: str, s: float) -> float:
    from iopkt_fs import client
    stop = threading.Event()
    lst = client.announce("tcp!*!5500", prefix=inst.prefix)

    def handle(conn):
        try:
            conn.read_all()
        finally:
            conn.close()

    def serve():
        while not stop.is_set():
            try:
                conn = lst.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    out = last_json(env.finish(kpeer(env, ns, "cps", "10.231.1.2", "5500", str(s), str(CPS_MAX)), s + 60))
    stop.set()
    env.finish(kpeer(env, ns, "cps", "10.231.1.2", "5500", "1", "1"), 20)   # wakes accept()
    th.join(10)
    lst.close()
    return out["count"] / out["cps_seconds"]


def files_cps_bash(env: Env, inst: Instance, ns: str, s: float) -> float:
    script = (f'D={inst.tcp}; N=$(cat $D/clone); echo "announce 5501" > $D/$N/ctl; echo ready; '
              'while M=$(cat $D/$N/listen); do cat $D/$M/data > /dev/null; '
              'echo close > $D/$M/ctl 2>/dev/null; done')
    server = env.popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
    server.stdout.readline()
    time.sleep(0.2)
    out = last_json(env.finish(kpeer(env, ns, "cps", "10.231.1.2", "5501", str(s), str(CPS_MAX)), s + 60))
    env.kill(server)
    return out["count"] / out["cps_seconds"]


BASH_TURN = ('while [ $n -lt 100000 ] && [ ${EPOCHREALTIME/./} -lt $end ] && M=$(cat $D/listen); do '
             'cat $D/$M/data > /dev/null; echo close > $D/$M/ctl 2>/dev/null; n=$((n + 1)); done; ')


def bash_loop(env: Env, d: str, s: float) -> float:
    """Turns/s of the bash server's loop over d/listen, d/1/data and d/1/ctl for s seconds
    (at most 100,000 turns): the same two `cat`s and the `echo` a connection costs it."""
    script = (f'D={d}; n=0; now=${{EPOCHREALTIME/./}}; end=$((now + {int(s * 1e6)})); '
              + BASH_TURN + 'echo $n $(( ${EPOCHREALTIME/./} - now ))')
    out = env.finish(env.popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True), s + 60)
    n, us = (int(x) for x in out.split()[-2:])
    return n / (us / 1e6)


def bash_floor(env: Env, s: float) -> float:
    """The bash server's loop with no stack under it, over small files on tmpfs: what bash
    and its two fork+exec a turn cost on this machine now, the ceiling of the bash row."""
    top = "/dev/shm" if os.path.isdir("/dev/shm") else env.base
    d = tempfile.mkdtemp(prefix="iopkt-bash-floor-", dir=top)
    try:
        os.mkdir(os.path.join(d, "1"))
        for name, text in (("listen", "1\n"), ("1/data", "x"), ("1/ctl", "")):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        return bash_loop(env, d, s)
    finally:
        shutil.rmtree(d, ignore_errors=True)


class MinimalFuse:
    """scripts/minimal_fuse.py mounted under the run's directory, for the references that
    need a pyfuse3 filesystem with nothing behind it; each open of its ``zero`` gives
    stream_bytes zero bytes."""

    def __init__(self, env: Env, stream_bytes: int = 1 << 30, cpu: int | None = None):
        self.env, self.dir = env, os.path.join(env.base, f"minimal-{len(env.procs)}")
        pin = [] if cpu is None else ["taskset", "-c", str(cpu)]
        self.proc = env.popen([*pin, PY, HERE / "minimal_fuse.py", self.dir, str(stream_bytes)])
        env.mounts.append(self.dir)
        bench_fuse.wait_for(os.path.join(self.dir, "status"))

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.env.finish(self.proc, 10)
        unmount(self.dir)


def unmount(d: str) -> None:
    """Lazily unmount d if a FUSE filesystem is still mounted there (its server gone)."""
    if os.path.ismount(d):
        sh("fusermount3", "-u", "-z", d, check=False)


def bash_minimal(env: Env, s: float) -> float:
    """The bash server's loop over a minimal pyfuse3 filesystem (listen, 1/data, 1/ctl
    answered at once): what any pyfuse3 filesystem gives this loop here now."""
    m = MinimalFuse(env)
    try:
        return bash_loop(env, m.dir, s)
    finally:
        m.close()


def udp_stat(inst: Instance) -> int:
    text = open(f"{inst.prefix}/dev/socket/stats/udp").read()
    return int(text.split("ipackets: ")[1].split()[0])


def g_udp(env: Env, t: Table, s: float) -> None:
    inst, ns, dev = main_tap(env)
    before = udp_stat(inst)
    t0 = time.monotonic()
    sent = int(bench_ip.ns_py(ns, bench_ip.FLOOD.format(secs=s, dst="10.231.1.2"), timeout=s + 60))
    time.sleep(0.3)
    took = time.monotonic() - t0 - 0.3
    ours = (udp_stat(inst) - before) / took
    a, b = veth_pair(env)
    ksent, kgot, kspan = bench_ip.counted_flow(a, b, "10.231.3.2", s)
    t.add("UDP datagrams/s taken in (64-byte payloads)", ours, "1/s", "kernel <-> kernel, veth",
          kgot / kspan if kspan else None, note=f"{sent / took:,.0f}/s offered")


def g_forward(env: Env, t: Table, s: float) -> None:
    L, R = env.ns("fl"), env.ns("fr")
    inst = Instance(env, "router", ["-d", "tap", f"dev={env.tag}fl,netns={L}",
                                    "-d", "tap", f"dev={env.tag}fr,netns={R}"])
    inst.tool("iopkt", "ifconfig", "ltap0", "10.231.20.1/24")
    inst.tool("iopkt", "ifconfig", "ltap1", "10.231.21.1/24")
    inst.tool("iopkt", "sysctl", "-w", "net.inet.ip.forwarding=1")
    for ns, dev, net in ((L, f"{env.tag}fl", 20), (R, f"{env.tag}fr", 21)):
        sh("ip", "-n", ns, "addr", "add", f"10.231.{net}.2/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", f"10.231.{net}.1")
    inst.tool("if_up", "-a", "-l", "-m", "100", "-r", "50", "ltap0", "ltap1")
    bench_ip.ping_median(L, "10.231.21.2", 3)
    sent, got, span = bench_ip.counted_flow(L, R, "10.231.21.2", s)
    kL, kR, kRt = env.ns("kl"), env.ns("kr"), env.ns("krt")
    for a, b, ns_a in (("bnla", "bnlb", kL), ("bnra", "bnrb", kR)):
        sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", kRt)
    sh("ip", "netns", "exec", kRt, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    for ns, dev, net in ((kL, "bnla", 22), (kR, "bnra", 23)):
        sh("ip", "-n", ns, "addr", "add", f"10.231.{net}.2/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", f"10.231.{net}.1")
    for dev, net in (("bnlb", 22), ("bnrb", 23)):
        sh("ip", "-n", kRt, "addr", "add", f"10.231.{net}.1/24", "dev", dev)
        sh("ip", "-n", kRt, "link", "set", dev, "up")
    bench_ip.ping_median(kL, "10.231.23.2", 3)
    ksent, kgot, kspan = bench_ip.counted_flow(kL, kR, "10.231.23.2", s)
    t.add("forwarding, 64-byte UDP, through the stack", got / span if span else 0, "pkt/s",
          "kernel router namespace", kgot / kspan if kspan else None,
          note=f"{got} of {sent} arrived (kernel: {kgot} of {ksent})")


def g_memory(env: Env, t: Table, s: float, count: int) -> None:
    r = inproc(env, "im", {"idle": ("idle_memory", (count,))})["idle"]
    t.add(f"memory per idle established connection ({count:,} open)", r["per_connection"], "bytes",
          note=f"{r['established']:,} established; RSS growth of the in-process stack / {count}")


class PreadFloor:
    """µs of pid's CPU per pread(4096) of path (the minimal pyfuse3 file's floor), taken
    in slices (``run``) so that it can alternate with the measurement it is the floor of
    and both see the machine in the same state."""

    def __init__(self, path: str, pid: int):
        self.pid, self.cpu, self.n = pid, 0.0, 0
        self.fd = os.open(path, os.O_RDONLY)
        for _ in range(500):
            os.pread(self.fd, 4096, 0)

    def run(self, seconds: float) -> None:
        c0, t0 = proc_cpu(self.pid), time.monotonic()
        while time.monotonic() - t0 < seconds:
            os.pread(self.fd, 4096, 0)
            self.n += 1
        self.cpu += proc_cpu(self.pid) - c0

    @property
    def us(self) -> float:
        return self.cpu / max(1, self.n) * 1e6

    def close(self) -> None:
        os.close(self.fd)


def data_read_cpu(inst: Instance, seconds: float, size: int = 4096, burst: int = 1 << 20,
                  floor: PreadFloor | None = None) -> dict:
    """Stack CPU per READ of tcp/N/data when the data is already there: a connection over
    lo0; each round one 1 MiB write, a wait until the receive buffer stops growing, then
    READs of size until what was buffered is read (counted), then the rest (not counted).
    The CPU of the counted phases only, per READ: the file layer, pyfuse3 and the window
    updates the reads send. With ``floor``, half a second of it follows every second of
    rounds (in turns: a machine whose speed moves moves both)."""
    from iopkt_fs import client
    lst = client.announce("tcp!*!5510", prefix=inst.prefix)
    box = []
    th = threading.Thread(target=lambda: box.append(lst.accept()), daemon=True)
    th.start()
    conn = client.dial("tcp!127.0.0.1!5510", prefix=inst.prefix)
    th.join(10)
    srv = box[0]
    fd = os.open(f"{srv.dir}/data", os.O_RDONLY)

    def recvq() -> int:
        return int(srv.status.split("recvq ")[1].split()[0])

    def drain(n: int) -> None:
        while n > 0:
            n -= len(os.read(fd, min(1 << 20, n)))
    try:
        # The receive buffer autotunes up first (a writer thread: the buffers may not
        # hold a burst yet).
        warm = threading.Thread(target=lambda: [conn.write(bytes(burst)) for _ in range(16)],
                                daemon=True)
        warm.start()
        drain(16 * burst)
        warm.join(30)
        reads, cpu, buffered = 0, 0.0, 0
        t0 = turn = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if floor is not None and time.monotonic() - turn >= 1.0:
                floor.run(0.5)
                turn = time.monotonic()
            conn.write(bytes(burst))
            last, q = -1, 0
            for _ in range(200):
                q = recvq()
                if q == last:
                    break
                last = q
                time.sleep(0.005)
            buffered = q
            if q < burst // 2:
                raise RuntimeError(f"only {q} of {burst} bytes buffered: the receive buffer did not grow")
            c0 = inst.cpu()
            left = q
            while left > 0:
                left -= len(os.read(fd, min(size, left)))
                reads += 1
            cpu += inst.cpu() - c0
            drain(burst - q)
        return {"us": cpu / max(1, reads) * 1e6, "reads": reads, "buffered": buffered}
    finally:
        os.close(fd)
        for c in (conn, srv, lst):
            c.close()


def g_ctl(env: Env, t: Table, s: float) -> None:
    inst, ns, dev = main_tap(env)
    minimal = MinimalFuse(env)
    try:
        status = os.path.join(minimal.dir, "status")
        ours = bench_fuse.measure(f"{inst.prefix}/dev/socket/if/lo0/status", s / 2)
        ceiling = bench_fuse.measure(status, s / 2)
        probe = PreadFloor(status, minimal.proc.pid)
        try:
            reads = data_read_cpu(inst, s / 2, floor=probe)
            probe.run(0.5)
            floor = probe.us
        finally:
            probe.close()
    finally:
        minimal.close()
    t.add("stack CPU per data READ served at once (4 KiB, from a full receive buffer)",
          reads["us"], "µs", "minimal pyfuse3 file, its CPU per READ", floor,
          note=f"{reads['reads']:,} READs; lo0, {reads['buffered'] >> 10} KiB buffered before each burst; "
               "in turns with the minimal file")
    t.add("control file pread(4096) on an open fd (if/lo0/status)", ours[0], "1/s",
          "minimal pyfuse3 file", ceiling[0])
    t.add("control file open+read+close (if/lo0/status)", ours[1], "1/s", "minimal pyfuse3 file",
          ceiling[1])


def v6_tap(env: Env):
    """io-pkt-v6-hc -d tap into a namespace of its own, both families on the one link:
    stack 10.231.14.2 and fd00:231:14::2, kernel .1 and ::1 (no DAD wait on its side)."""
    def make():
        ns = env.ns("6")
        dev = f"{env.tag}6"[:15]
        inst = Instance(env, "v6", ["-d", "tap", f"dev={dev},netns={ns}"], binary="io-pkt-v6-hc")
        inst.tool("iopkt", "ifconfig", "ltap0", "10.231.14.2/24")
        inst.tool("iopkt", "ifconfig", "ltap0", "inet6", "fd00:231:14::2/64")
        sh("ip", "-n", ns, "addr", "add", "10.231.14.1/24", "dev", dev)
        sh("ip", "-n", ns, "-6", "addr", "add", "fd00:231:14::1/64", "dev", dev, "nodad")
        sh("ip", "-n", ns, "link", "set", dev, "up")
        inst.tool("if_up", "-l", "-m", "100", "-r", "50", "ltap0")
        inst.tool("if_up", "-6", "-i", "-m", "100", "-r", "50", "ltap0")
        return inst, ns, dev
    return env.once("v6-tap", make)


V6_FAMILIES = {"IPv4": ("10.231.14.2", "10.231.14.1"), "IPv6": ("fd00:231:14::2", "fd00:231:14::1")}


def g_ipv6(env: Env, t: Table, s: float) -> None:
    """Each family twice, alternating (the machine's load moves under a run); the better
    of each pair is kept, so the ratio compares like with like."""
    inst, ns, dev = v6_tap(env)
    port = 5400
    rx = {f: [] for f in V6_FAMILIES}
    tx = {f: [] for f in V6_FAMILIES}
    for _ in range(2):
        for fam, (host, peer) in V6_FAMILIES.items():
            inst.host, inst.peer = host, peer
            rx[fam].append(files_rx(env, inst, ns, dev, "dd", s, port)["mbs"])
            port += 1
    guess = max(rx["IPv4"])
    for _ in range(2):
        for fam, (host, peer) in V6_FAMILIES.items():
            inst.host, inst.peer = host, peer
            tx[fam].append(files_tx(env, inst, ns, "dd", s, port, guess)["mbs"])
            port += 1
    note = "better of two runs each, alternating: IPv4 {} / IPv6 {} MB/s"
    t.add("TCP over IPv6 kernel -> stack, `dd if=data bs=1M` (v6-hc)", max(rx["IPv6"]), "MB/s",
          "the same over IPv4", max(rx["IPv4"]),
          note=note.format(*(", ".join(f"{v:.0f}" for v in rx[f]) for f in V6_FAMILIES)))
    t.add("TCP over IPv6 stack -> kernel, `dd of=data bs=1M` (v6-hc)", max(tx["IPv6"]), "MB/s",
          "the same over IPv4", max(tx["IPv4"]),
          note=note.format(*(", ".join(f"{v:.0f}" for v in tx[f]) for f in V6_FAMILIES)))
    rtt = {}
    for fam, (host, _peer) in V6_FAMILIES.items():
        bench_ip.ping_median(ns, host, 5)
        rtt[fam] = bench_ip.ping_median(ns, host, 100)
    t.add("ping6 RTT kernel -> stack (median, v6-hc)", rtt["IPv6"][0], "ms", "ping, IPv4", rtt["IPv4"][0],
          digits=3, note=f"{rtt['IPv6'][1]} / {rtt['IPv4'][1]} replies")


def references(env: Env, t: Table, s: float) -> None:
    """The reference rows themselves, for whatever the groups measured."""
    c = env.cache
    for vnet, name in ((False, "plain"), (True, "vnet")):
        r = c.get(("raw-rx", vnet))
        if r:
            t.add(f"reference: kernel -> raw peer, {name}", r["mbs"], "MB/s",
                  note=f"{r['us_per_frame']:.1f} µs CPU per frame, mean frame {r['mean_frame'] / 1000:.1f} KB")
        if ("raw-tx", vnet) in c:
            t.add(f"reference: raw peer -> kernel, {name}", c[("raw-tx", vnet)], "MB/s")
    if "veth-mbs" in c:
        t.add("reference: kernel -> kernel over veth", c["veth-mbs"], "MB/s")


# -- main -----------------------------------------------------------------------------------

def run(args, env: Env, table: Table) -> None:
    s = args.seconds
    only = args.only
    start = time.monotonic()
    steps = {
        "files": lambda: g_files(env, table, s),
        "inproc": lambda: g_inproc(env, table, s),
        "offload": lambda: g_offload(env, table, s),
        "vxlan": lambda: g_vxlan(env, table, s),
        "ping": lambda: g_ping(env, table, s),
        "cps": lambda: g_cps(env, table, s),
        "udp": lambda: g_udp(env, table, s),
        "forward": lambda: g_forward(env, table, s),
        "memory": lambda: g_memory(env, table, s, args.idle),
        "ctl": lambda: g_ctl(env, table, s),
        "ipv6": lambda: g_ipv6(env, table, s),
    }
    for name in GROUPS:
        if name not in only:
            continue
        if time.monotonic() - start > args.budget:
            table.add(f"({name})", None, "", note=f"skipped: over the {args.budget:.0f} s budget")
            continue
        log(f"group {name}")
        try:
            steps[name]()
        except BaseException as exc:        # one broken group must not lose the rest
            if interrupted(exc):
                raise
            table.add(f"({name})", None, "", note=f"failed: {type(exc).__name__}: {str(exc)[:200]}")
    references(env, table, s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="groups: " + ", ".join(GROUPS))
    ap.add_argument("--seconds", type=float, help="per transfer/rate measurement (default 10, as speed.md; --quick 2)")
    ap.add_argument("--quick", action="store_true", help="short runs (about 3 minutes in all)")
    ap.add_argument("--only", help="comma-separated groups to run")
    ap.add_argument("--idle", type=int, help="connections held for the memory figure (10000; --quick 2000)")
    ap.add_argument("--budget", type=float, default=600, help="skip groups started after this many seconds")
    ap.add_argument("--json", metavar="FILE", help="write the rows and the run's facts as JSON")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = ap.parse_args()
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.idle = args.idle or (2000 if args.quick else 10000)
    args.only = set(GROUPS) if not args.only else set(args.only.split(","))
    unknown = args.only - set(GROUPS)
    if unknown:
        ap.error(f"unknown group(s) {', '.join(sorted(unknown))}; groups: {', '.join(GROUPS)}")
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (namespaces, TAP devices, FUSE mounts)")

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    env, table = Env(), Table()
    t0 = time.monotonic()
    try:
        run(args, env, table)
    except BaseException as exc:
        if not interrupted(exc):
            raise
        log("interrupted: cleaning up")
        table.add("(run)", None, "", note="interrupted")
    finally:
        env.close()
    facts = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip(),
        "kernel": os.uname().release, "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "seconds": args.seconds, "groups": sorted(args.only),
        "wall_seconds": round(time.monotonic() - t0, 1), "MB": MB,
    }
    head = (f"iopkt_fs benchmark, commit {facts['commit']}, Linux {facts['kernel']}, Python "
            f"{facts['python']}, {facts['cpus']} CPUs, {args.seconds:g} s per measurement, "
            f"{facts['wall_seconds']:.0f} s in all; MB = 10^6 bytes")
    print(head)
    print(table.markdown() if args.markdown else table.text())
    if args.json:
        rows = [{k: v for k, v in r.items() if k != "digits"} for r in table.rows]
        with open(args.json, "w") as f:
            json.dump({"facts": facts, "rows": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
