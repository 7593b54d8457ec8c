"""The Linux kernel's side of the kernel tests: run inside the test's namespace with
``ip netns exec NS python kpeer.py MODE ...``; prints one JSON line with what it saw.

    send HOST PORT NBYTES SEED     connect, send NBYTES of seeded data, shut down, wait EOF
    recv PORT                      listen, accept one, read to EOF, close
    echo HOST PORT                 connect, send b"hello", read the echo, close (SYN flood)
    idle HOST PORT SECONDS         connect and sit idle (keepalive, ss -tin)
    flood HOST PORT COUNT SECONDS  COUNT SYNs from spoofed sources SRC_NET.100-199 with
                                   random ports, paced to take about SECONDS and stopped
                                   at 4 x SECONDS if the machine is slower (raw socket)

    echos HOST PORT COUNT          COUNT clients at once (threads), each as echo; reports
                                   how many got their echo and the errors of the rest
    oooflood HOST PORT SPORT SEQ ACK COUNT NBYTES SEED
                                   COUNT raw 100-byte segments of our connection from SPORT
                                   (timestamps off), at random 200-byte-aligned offsets of
                                   the NBYTES that connection will send, each carrying the
                                   right bytes (chunks(NBYTES, SEED)), never the first: out
                                   of order, full of holes, and in the window
    fragflood HOST COUNT SECONDS   COUNT first fragments (MF set, 1,000 bytes of UDP) with
                                   distinct IP ids that never complete, paced over SECONDS
    idlesend HOST PORT NBYTES SEED connect, wait for a line on stdin, then as send
    echomany HOST PORT COUNT [GO]  COUNT connections open at once (non-blocking, 256
                                   connecting at a time), each sending its 8-byte number
                                   and reading it back; all stay open until every echo
                                   came; with GO, each waits for a line on stdin before
                                   sending (the server's readers park first)

    For scripts/bench_tcp.py (no hashing, one reused buffer, so Python costs little):
    blast HOST PORT NBYTES         connect, send NBYTES, shut down, time until the EOF
    sink PORT                      accept one, read and discard to EOF, close
    rr HOST PORT COUNT             COUNT times: connect, send "GET\n", read to EOF, close
    hold HOST PORT COUNT SECONDS   open COUNT connections, keep them SECONDS, close

    For scripts/bench.py (bounded by time, not size):
    blastfor HOST PORT SECONDS     connect, send for SECONDS, shut down, time until the EOF;
                                   reports bytes and TCP_INFO bytes_acked
    cps HOST PORT SECONDS MAX      connect, send one byte, shut down, read to EOF, close;
                                   again until SECONDS or MAX connections
    (sink also reports first_to_eof: seconds from its first byte to the EOF)

Data comes from ``chunks(nbytes, seed)``; both sides hash what they sent or received.
"""

import hashlib
import json
import random
import socket
import struct
import sys
import time

CHUNK = 1 << 20


def _dual_listener(port: int) -> socket.socket:
    """A listener on :: that takes IPv4 too (IPV6_V6ONLY off): the IPv6 tests share it."""
    lst = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    lst.bind(("::", port))
    return lst


def chunks(nbytes: int, seed: int):
    rng = random.Random(seed)
    left = nbytes
    while left:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def info(sock: socket.socket) -> dict:
    # struct tcp_info: tcpi_options is byte 5 (TCPI_OPT_TIMESTAMPS 1, SACK 2, WSCALE 4),
    # byte 6 the send/receive window scales (4 bits each).
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return {"options": raw[5], "wscale": raw[6], "retrans": int.from_bytes(raw[100:104], "little")}


def bytes_acked(sock: socket.socket) -> int:
    # struct tcp_info: tcpi_bytes_acked is the u64 at byte 120.
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 128)
    return int.from_bytes(raw[120:128], "little") if len(raw) >= 128 else -1


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def flood(host: str, port: int, count: int, seconds: float) -> dict:
    """A bounded SYN flood: spoofed sources in the target's /24 (.100-.199) that will
    never answer, random source ports and sequence numbers."""
    rng = random.Random(99)
    dst = socket.inet_aton(host)
    net = host.rsplit(".", 1)[0]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    sent = 0
    deadline = time.monotonic() + 4 * seconds
    pause = seconds / count / 2      # sendto and the loop take about as long again
    while sent < count and time.monotonic() < deadline:
        src = socket.inet_aton(f"{net}.{rng.randrange(100, 200)}")
        sport = rng.randrange(1024, 65536)
        opts = struct.pack("!BBH", 2, 4, 1460)
        tcp = struct.pack("!HHIIBBHHH", sport, port, rng.getrandbits(32), 0, (6 << 4), 0x02,
                          64240, 0, 0) + opts
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rng.getrandbits(16), 0,
                         64, 6, 0, src, dst)
        s.sendto(ip + tcp, (host, 0))
        sent += 1
        if pause:
            time.sleep(pause)
    return {"sent": sent}


def _raw() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return s


def _ip(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int, frag: int = 0) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                       src, dst) + payload


def _source_for(host: str) -> bytes:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect((host, 9))
    src = socket.inet_aton(probe.getsockname()[0])
    probe.close()
    return src


def oooflood(host, port, sport, seq0, ack, count, nbytes, seed) -> dict:
    data = b"".join(chunks(nbytes, seed))
    rng = random.Random(seed)
    dst, src = socket.inet_aton(host), _source_for(host)
    s = _raw()
    slots = min(nbytes, 200_000) // 200       # offsets 200, 400, ...: the first 200 bytes never come
    for i in range(count):
        off = 200 * rng.randrange(1, slots)
        payload = data[off:off + 100]
        seq = (seq0 + off) & 0xFFFFFFFF
        tcp = struct.pack("!HHIIBBHHH", sport, port, seq, ack, 5 << 4, 0x18, 64240, 0, 0) + payload
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
        s.sendto(_ip(src, dst, 6, tcp, i & 0xFFFF), (host, 0))
    return {"sent": count}


def fragflood(host, count, seconds) -> dict:
    dst, src = socket.inet_aton(host), _source_for(host)
    s = _raw()
    udp = struct.pack("!HHHH", 40000, 9, 8 + 3000, 0) + bytes(992)   # claims 3,000 bytes
    pause = seconds / count / 2
    deadline = time.monotonic() + 4 * seconds
    sent = 0
    while sent < count and time.monotonic() < deadline:
        s.sendto(_ip(src, dst, 17, udp, sent & 0xFFFF, 0x2000), (host, 0))   # MF, offset 0
        sent += 1
        if pause:
            time.sleep(pause)
    return {"sent": sent}


def echos(host: str, port: int, count: int) -> dict:
    import threading
    got, errors = [], []

    def one():
        try:
            s = socket.create_connection((host, port), timeout=30)
            s.settimeout(30)
            s.sendall(b"hello")
            buf = b""
            while len(buf) < 5:
                c = s.recv(5 - len(buf))
                if not c:
                    break
                buf += c
            s.close()
            (got if buf == b"hello" else errors).append(buf.decode(errors="replace"))
        except OSError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return {"served": len(got), "errors": errors}


def echomany(host: str, port: int, count: int, go: bool) -> dict:
    import errno as _errno
    import resource
    import selectors
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 100
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    sel = selectors.DefaultSelector()
    socks, got, errors = {}, {}, []
    started = done = 0
    deadline = time.monotonic() + 170

    def start(i):
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err not in (0, _errno.EINPROGRESS):
            errors.append(f"{i}: {_errno.errorcode.get(err, err)}")
            s.close()
            return
        socks[i] = s
        got[i] = b""
        sel.register(s, selectors.EVENT_WRITE, i)

    connected = 0
    while (started < count or connected < len(socks)) and time.monotonic() < deadline:
        while started < count and started - connected - len(errors) < 256:
            start(started)
            started += 1
        for key, _ in sel.select(0.5):
            i = key.data
            s = socks[i]
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            sel.unregister(s)
            if err:
                errors.append(f"{i}: connect {_errno.errorcode.get(err, err)}")
                del socks[i]
                s.close()
                continue
            connected += 1
    print(json.dumps({"connected": connected}), flush=True)
    if go:
        sys.stdin.readline()
    for i, s in socks.items():
        s.send(struct.pack("!Q", i))
        sel.register(s, selectors.EVENT_READ, i)
    while done < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            i = key.data
            try:
                data = socks[i].recv(8 - len(got[i]))
            except OSError as exc:
                data = b""
                errors.append(f"{i}: {exc}")
            if not data:
                sel.unregister(socks[i])
                done += 1
                continue
            got[i] += data
            if len(got[i]) == 8:
                sel.unregister(socks[i])
                done += 1
    echoed = sum(1 for i, g in got.items() if g == struct.pack("!Q", i))
    for s in socks.values():
        s.close()
    return {"connected": connected, "echoed": echoed, "errors": errors[:20], "nerrors": len(errors)}


def send_stream(s, nbytes: int, seed: int) -> dict:
    """Send the seeded stream of nbytes, shut down, wait for the peer's end: the digest
    sent, whether EOF came back, and TCP_INFO; the socket is closed."""
    h = hashlib.sha256()
    for c in chunks(nbytes, seed):
        h.update(c)
        s.sendall(c)
    s.shutdown(socket.SHUT_WR)
    tail = s.recv(1)
    out = {"sha256": h.hexdigest(), "eof": tail == b"", "tcp": info(s)}
    s.close()
    return out


def main(argv):
    mode = argv[0]
    t0 = time.monotonic()
    if mode == "send":
        host, port, nbytes, seed = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        s = socket.create_connection((host, port), timeout=60)
        out = send_stream(s, nbytes, seed)
    elif mode == "recv":
        lst = _dual_listener(int(argv[1]))
        lst.listen(1)
        lst.settimeout(30)
        print(json.dumps({"listening": True}), flush=True)
        s, _ = lst.accept()
        s.settimeout(60)
        h = hashlib.sha256()
        n = 0
        buf = bytearray(1 << 20)
        while True:
            k = s.recv_into(buf)
            if not k:
                break
            h.update(memoryview(buf)[:k])
            n += k
        out = {"sha256": h.hexdigest(), "bytes": n, "tcp": info(s)}
        s.close()
    elif mode == "echo":
        s = socket.create_connection((argv[1], int(argv[2])), timeout=20)
        s.sendall(b"hello")
        got = b""
        while len(got) < 5:
            c = s.recv(5 - len(got))
            if not c:
                break
            got += c
        out = {"echo": got.decode(errors="replace"), "tcp": info(s)}
        s.close()
    elif mode == "idle":
        s = socket.create_connection((argv[1], int(argv[2])), timeout=20)
        time.sleep(float(argv[3]))
        s.settimeout(0.5)
        try:
            alive = s.recv(1) != b""
        except socket.timeout:
            alive = True     # nothing to read and no error: the connection is up
        out = {"alive": alive, "tcp": info(s)}
        s.close()
    elif mode == "blast":
        s = socket.create_connection((argv[1], int(argv[2])), timeout=60)
        block = memoryview(bytes(CHUNK))
        left = int(argv[3])
        t1 = time.monotonic()
        while left:
            n = s.send(block[:min(left, CHUNK)])
            left -= n
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        out = {"transfer_seconds": time.monotonic() - t1}
        s.close()
    elif mode == "sink":
        lst = _dual_listener(int(argv[1]))
        lst.listen(1)
        lst.settimeout(30)
        s, _ = lst.accept()
        s.settimeout(120)
        buf = bytearray(CHUNK)
        n = k = s.recv_into(buf)
        first = time.monotonic()
        while k:
            k = s.recv_into(buf)
            n += k
        s.close()
        out = {"bytes": n, "first_to_eof": time.monotonic() - first}
    elif mode == "blastfor":
        s = socket.create_connection((argv[1], int(argv[2])), timeout=60)
        block = memoryview(bytes(CHUNK))
        t1 = time.monotonic()
        end = t1 + float(argv[3])
        sent = 0
        while time.monotonic() < end:
            sent += s.send(block)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        out = {"bytes": sent, "transfer_seconds": time.monotonic() - t1,
               "bytes_acked": bytes_acked(s)}
        s.close()
    elif mode == "cps":
        host, port, seconds, most = argv[1], int(argv[2]), float(argv[3]), int(argv[4])
        t1 = time.monotonic()
        end = t1 + seconds
        count = 0
        while count < most and time.monotonic() < end:
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"x")
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
            s.close()
            count += 1
        out = {"count": count, "cps_seconds": time.monotonic() - t1}
    elif mode == "rr":
        host, port, count = argv[1], int(argv[2]), int(argv[3])
        t1 = time.monotonic()
        for _ in range(count):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"GET\n")
            while s.recv(4096):
                pass
            s.close()
        out = {"count": count, "rr_seconds": time.monotonic() - t1}
    elif mode == "hold":
        import resource
        host, port, count = argv[1], int(argv[2]), int(argv[3])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = count + 100
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
        held = [socket.create_connection((host, port), timeout=10) for _ in range(count)]
        print(json.dumps({"held": len(held)}), flush=True)
        time.sleep(float(argv[4]))
        for s in held:
            s.close()
        out = {"held": len(held)}
    elif mode == "echomany":
        out = echomany(argv[1], int(argv[2]), int(argv[3]), len(argv) > 4)
    elif mode == "echos":
        out = echos(argv[1], int(argv[2]), int(argv[3]))
    elif mode == "oooflood":
        out = oooflood(argv[1], *map(int, argv[2:9]))
    elif mode == "fragflood":
        out = fragflood(argv[1], int(argv[2]), float(argv[3]))
    elif mode == "idlesend":
        host, port, nbytes, seed = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        s = socket.create_connection((host, port), timeout=60)
        print(json.dumps({"port": s.getsockname()[1]}), flush=True)
        sys.stdin.readline()
        out = send_stream(s, nbytes, seed)
    elif mode == "flood":
        out = flood(argv[1], int(argv[2]), int(argv[3]), float(argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    out["seconds"] = time.monotonic() - t0
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
