"""Sockets as files, used the way a person would: shell scripts and the Python client,
against the Linux kernel in a namespace over TAP (the tap_stack fixture), plus the
stack-internal protocols (unix, loopback TCP/UDP)."""

import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import textwrap
import threading
import time

import pytest

from iopkt_fs import client
from iopkt_testutil import answer_udp_readers, parked_udp_readers, wait_until

pytestmark = pytest.mark.system
KERNEL, STACK = "10.203.0.1", "10.203.0.2"


def bash(sp, script, timeout=60, **kw):
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=sp.env,
                          timeout=timeout, **kw)


def loopback_pair(stack, port: int):
    """(listener, client end, server end) of a TCP connection over lo0, all through the files."""
    listener = client.announce(f"tcp!*!{port}", prefix=stack.prefix)
    box = []
    th = threading.Thread(target=lambda: box.append(listener.accept()))
    th.start()
    conn = client.dial(f"tcp!127.0.0.1!{port}", prefix=stack.prefix)
    th.join(10)
    return listener, conn, box[0]


def in_ns(sp, *argv, **kw):
    return subprocess.Popen(["ip", "netns", "exec", sp.ns, *argv], **kw)


def test_curl_fetches_a_page_served_by_bash(tap_stack):
    sp = tap_stack
    server = textwrap.dedent("""\
        S=$SOCK/dev/socket/tcp
        N=$(cat $S/clone)
        echo "announce 8080" > $S/$N/ctl
        M=$(cat $S/$N/listen)
        exec 3<>$S/$M/data
        while IFS= read -r line <&3; do [ "${line%$'\\r'}" = "" ] && break; done
        printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 12\\r\\n\\r\\nhello world\\n' >&3
        exec 3>&-
        echo close > $S/$M/ctl
        """)
    srv = subprocess.Popen(["bash", "-c", server], env=sp.env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: "LISTEN" in sp.run("iopkt", "netstat", "-an").stdout, 5)
        curl = subprocess.run(["ip", "netns", "exec", sp.ns, "curl", "-sS", "--max-time", "10",
                               f"http://{STACK}:8080/"], capture_output=True, text=True, timeout=20)
        assert curl.returncode == 0, curl.stderr
        assert curl.stdout == "hello world\n"
        assert srv.wait(timeout=10) == 0, srv.stderr.read()
    finally:
        srv.kill()


def test_shell_client_fetches_from_a_kernel_http_server(tap_stack, tmp_path):
    sp = tap_stack
    (tmp_path / "page.txt").write_text("served by the Linux kernel's peer\n")
    http = in_ns(sp, "python3", "-m", "http.server", "8000", "--bind", KERNEL, "--directory", str(tmp_path),
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: subprocess.run(["ip", "netns", "exec", sp.ns, "ss", "-ltn"], capture_output=True,
                                                 text=True).stdout.count(":8000") > 0, 10)
        out = bash(sp, textwrap.dedent(f"""\
            S=$SOCK/dev/socket/tcp
            N=$(cat $S/clone)
            echo "connect {KERNEL}!8000" > $S/$N/ctl
            exec 3<>$S/$N/data
            printf 'GET /page.txt HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3
            cat <&3
            """))
        assert out.returncode == 0, out.stderr
        # (text mode folds the CRLFs)
        assert out.stdout.startswith("HTTP/1.0 200 OK\n")
        assert out.stdout.endswith("\n\nserved by the Linux kernel's peer\n")
    finally:
        http.kill()
        http.wait()


def test_100mb_kernel_to_stack_through_data(tap_stack):
    sp = tap_stack
    sender = textwrap.dedent(f"""\
        import hashlib, socket, sys
        s = socket.create_connection(('{STACK}', 5001), timeout=60)
        h = hashlib.sha256(); block = bytes(range(256)) * 4096
        for i in range(100):
            chunk = block[i:] + block[:i]
            h.update(chunk); s.sendall(chunk)
        s.shutdown(socket.SHUT_WR); s.recv(1)
        print(h.hexdigest())
        """)
    listener = client.announce("tcp!*!5001", prefix=sp.prefix)
    try:
        proc = in_ns(sp, "python3", "-c", sender, stdout=subprocess.PIPE, text=True)
        conn = listener.accept()
        n = conn.number
        got = bash(sp, f"dd if=$SOCK/dev/socket/tcp/{n}/data bs=1M 2>/dev/null | sha256sum", timeout=120)
        conn.close()
        sent = proc.communicate(timeout=60)[0].strip()
        assert got.stdout.split()[0] == sent
    finally:
        listener.close()


def test_a_thousand_connections_at_once(tap_stack):
    sp = tap_stack
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    server = textwrap.dedent(f"""\
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('{KERNEL}', 7000)); s.listen(2048); s.settimeout(60)
        print('ready', flush=True)
        held = [s.accept()[0] for _ in range(1000)]
        print(len(held), flush=True)
        import sys; sys.stdin.read()
        """)
    srv = in_ns(sp, "python3", "-c", server, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    conns = []
    try:
        assert srv.stdout.readline().strip() == "ready"
        for _ in range(1000):
            conns.append(client.dial(f"tcp!{KERNEL}!7000", prefix=sp.prefix))
        assert srv.stdout.readline().strip() == "1000"
        table = sp.run("iopkt", "netstat", "-n").stdout
        assert table.count("ESTABLISHED") == 1000
        assert len({c.number for c in conns}) == 1000
        # Every one is usable.
        conns[0].write(b"x")
        conns[-1].write(b"y")
    finally:
        for c in conns:
            c.close()
        srv.stdin.close()
        srv.kill()
        srv.wait()


def test_interrupted_reader_loses_nothing(tap_stack):
    sp = tap_stack
    listener = client.announce("tcp!*!5002", prefix=sp.prefix)
    peer = in_ns(sp, "python3", "-c", textwrap.dedent(f"""\
        import socket, sys
        s = socket.create_connection(('{STACK}', 5002), timeout=30)
        sys.stdin.readline()
        s.sendall(b'after the interrupt\\n'); s.shutdown(socket.SHUT_WR); s.recv(1)
        """), stdin=subprocess.PIPE, text=True)
    try:
        conn = listener.accept()
        data = f"{sp.prefix}/dev/socket/tcp/{conn.number}/data"
        reader = subprocess.Popen(["cat", data], stdout=subprocess.PIPE)
        time.sleep(0.5)
        assert reader.poll() is None                 # blocked: nothing to read yet
        before = int(sp.status()["parked_signalled"])
        t0 = time.monotonic()
        reader.send_signal(signal.SIGINT)
        reader.wait(timeout=5)
        assert time.monotonic() - t0 < 1.0           # Ctrl-C returns promptly ...
        assert int(sp.status()["parked_signalled"]) == before + 1   # ... seen as a signal
        peer.stdin.write("go\n")
        peer.stdin.flush()
        assert conn.read_all() == b"after the interrupt\n"   # nothing was lost
        conn.close()
    finally:
        listener.close()
        peer.kill()
        peer.wait()


def test_a_reader_survives_a_pause_and_a_handled_signal_interrupts_it(tap_stack):
    """No EINTR without a signal: sha256sum (stdio, which does not retry EINTR) reads
    across a 2.5 s pause of the sender and hashes every byte; a Python reader with a
    SIGINT handler is answered by the signal path at once, not after a timeout."""
    sp = tap_stack
    listener = client.announce("tcp!*!5006", prefix=sp.prefix)
    payload = os.urandom(300_000)
    peer = in_ns(sp, "python3", "-c", textwrap.dedent(f"""\
        import socket, sys, time
        data = bytes.fromhex(sys.stdin.readline())
        s = socket.create_connection(('{STACK}', 5006), timeout=30)
        s.sendall(data[:100_000]); time.sleep(2.5); s.sendall(data[100_000:])
        s.shutdown(socket.SHUT_WR); s.recv(1)
        """), stdin=subprocess.PIPE, text=True)
    try:
        peer.stdin.write(payload.hex() + "\n")
        peer.stdin.flush()
        conn = listener.accept()
        data = f"{sp.prefix}/dev/socket/tcp/{conn.number}/data"
        out = subprocess.run(["sha256sum"], stdin=open(data, "rb"), capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == hashlib.sha256(payload).hexdigest()
        conn.close()
    finally:
        peer.kill()
        peer.wait()
    # A handled SIGINT (Python's KeyboardInterrupt) while parked with nothing to read.
    peer = in_ns(sp, "python3", "-c", textwrap.dedent(f"""\
        import socket, sys
        s = socket.create_connection(('{STACK}', 5006), timeout=30)
        sys.stdin.readline()
        """), stdin=subprocess.PIPE, text=True)
    try:
        conn = listener.accept()
        data = f"{sp.prefix}/dev/socket/tcp/{conn.number}/data"
        reader = subprocess.Popen([shutil.which("python3"), "-c", textwrap.dedent(f"""\
            import os, sys
            fd = os.open({data!r}, os.O_RDONLY)
            print("reading", flush=True)
            try:
                os.read(fd, 4096)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            """)], stdout=subprocess.PIPE, text=True)
        assert reader.stdout.readline() == "reading\n"
        time.sleep(1.5)                              # longer than any old heartbeat
        assert reader.poll() is None
        before = int(sp.status()["parked_signalled"])
        t0 = time.monotonic()
        reader.send_signal(signal.SIGINT)
        assert reader.stdout.readline() == "interrupted\n"
        reader.wait(timeout=5)
        assert time.monotonic() - t0 < 1.0
        assert int(sp.status()["parked_signalled"]) == before + 1
        conn.close()
    finally:
        listener.close()
        peer.kill()
        peer.wait()


def test_blocked_listen_is_interruptible(stack):
    listener = client.announce("tcp!*!5003", prefix=stack.prefix)
    try:
        listen = f"{stack.prefix}/dev/socket/tcp/{os.path.basename(listener.dir)}/listen"
        waiter = subprocess.Popen(["cat", listen], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        assert waiter.poll() is None
        before = int(stack.status()["parked_signalled"])
        t0 = time.monotonic()
        waiter.send_signal(signal.SIGINT)
        waiter.wait(timeout=5)
        assert time.monotonic() - t0 < 1.0
        # The signal path answered it: a listen open has no heartbeat to fall back on.
        assert int(stack.status()["parked_signalled"]) == before + 1
        # The listener still works, and the call that comes next is not lost.
        conn_box = []
        th = threading.Thread(target=lambda: conn_box.append(listener.accept()))
        th.start()
        c = client.dial("tcp!127.0.0.1!5003", prefix=stack.prefix)
        th.join(10)
        assert conn_box and conn_box[0].remote.startswith("127.0.0.1!")
        c.close()
        conn_box[0].close()
    finally:
        listener.close()


WRITER = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)      # Ctrl-C is fatal, as for cat
fd = os.open(sys.argv[1], os.O_WRONLY)
pattern = b"".join(i.to_bytes(4, "big") for i in range(1 << 18))
print("writing", flush=True)
while True:
    os.write(fd, pattern)
"""


def test_interrupted_writer_loses_nothing(stack):
    """A writer parked on a full send buffer: Ctrl-C returns at once, through the signal
    check (not a timeout), and what the stack took arrives whole, in order."""
    listener, conn, server = loopback_pair(stack, 5004)
    writer = subprocess.Popen([shutil.which("python3"), "-c", WRITER, f"{conn.dir}/data"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        time.sleep(0.5)    # parked: the peer's window and our send buffer fill in ms
        assert writer.poll() is None
        before = int(stack.status()["parked_signalled"])
        t0 = time.monotonic()
        writer.send_signal(signal.SIGINT)
        writer.wait(timeout=5)
        assert time.monotonic() - t0 < 1.0
        assert writer.returncode == -signal.SIGINT
        assert int(stack.status()["parked_signalled"]) == before + 1
        conn.close()
        got = server.read_all()
        pattern = b"".join(i.to_bytes(4, "big") for i in range(1 << 18))
        assert got and got == (pattern * (len(got) // len(pattern) + 1))[:len(got)]
        server.close()
    finally:
        writer.kill()
        writer.wait()
        listener.close()


def test_a_short_read_ends_on_a_stdio_block_boundary(stack):
    """A read of data that finds less than it asked for ends on an 8 KiB boundary of the
    reader's offset, and the rest is the next read's: stdio's whole-block reads stay
    whole (one READ per 32 KiB fread of sha256sum, not two)."""
    listener, conn, server = loopback_pair(stack, 5006)
    try:
        payload = bytes(range(256)) * 78 + b"tail"            # 19,972 bytes
        conn.write(payload)
        assert wait_until(lambda: f"recvq {len(payload)} " in server.status, timeout=10)
        fd = os.open(f"{server.dir}/data", os.O_RDONLY)
        try:
            first = os.read(fd, 65536)
            assert len(first) == 16384                        # not 19,972: ends on 2 x 8 KiB
            assert f"recvq {len(payload) - 16384} " in server.status
            second = os.read(fd, 65536)                       # under a block left: all of it
            assert first + second == payload
            conn.write(b"x" * 9000)
            assert wait_until(lambda: "recvq 9000 " in server.status, timeout=10)
            third = os.read(fd, 65536)                        # offset 19,972: boundary 24,576
            assert len(third) == 24576 - len(payload)
        finally:
            os.close(fd)
    finally:
        conn.close()
        server.close()
        listener.close()


def test_data_prefers_what_is_left_once_nothing_more_can_arrive(stack):
    """data's st_blksize is 1 MiB while more may come, and what is left to read (a power
    of two, at least a page) once the peer's FIN is in; cat then sizes its buffer by it
    (coreutils' floor, 128 KiB) and still reads everything."""
    payload = bytes(range(256)) * 78                          # 19,968 bytes: the buffer holds it
    listener, conn, server = loopback_pair(stack, 5007)
    try:
        conn.write(payload)
        assert wait_until(lambda: f"recvq {len(payload)} " in server.status, timeout=10)
        assert os.stat(f"{server.dir}/data").st_blksize == 1 << 20
    finally:
        for c in (conn, server, listener):
            c.close()
    # As a shell server meets it: the call, its data and FIN are in before anything
    # looks up data (the client's accept() would open it at once).
    listener = client.announce("tcp!*!5008", prefix=stack.prefix)
    conn = client.dial("tcp!127.0.0.1!5008", prefix=stack.prefix)
    fd = os.open(f"{listener.dir}/listen", os.O_RDWR)
    try:
        conv = os.path.join(os.path.dirname(listener.dir), os.read(fd, 64).decode().strip())
        conn.write(payload)
        conn.shutdown()
        assert wait_until(lambda: "CLOSE-WAIT" in client._read_small(f"{conv}/status"), timeout=10)
        assert os.stat(f"{conv}/data").st_blksize == 32768
        out = subprocess.run(["strace", "-e", "trace=read", "cat", f"{conv}/data"],
                             capture_output=True, timeout=30)
        assert out.stdout == payload
        trace = out.stderr.decode()
        assert ", 131072) = 16384" in trace and ", 1048576)" not in trace   # a 128 KiB buffer
    finally:
        os.write(fd, b"close\n")
        os.close(fd)
        conn.close()
        listener.close()


def test_udp_both_ways_and_headers(tap_stack):
    sp = tap_stack
    echo = in_ns(sp, "python3", "-c", textwrap.dedent(f"""\
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('{KERNEL}', 9999))
        print('ready', flush=True)
        for _ in range(2):
            data, addr = s.recvfrom(2048); s.sendto(data.upper(), addr)
        """), stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout.readline().strip() == "ready"
        out = bash(sp, textwrap.dedent(f"""\
            S=$SOCK/dev/socket/udp
            N=$(cat $S/clone)
            echo "connect {KERNEL}!9999" > $S/$N/ctl
            exec 3<>$S/$N/data
            printf 'ping one' >&3
            timeout 5 dd bs=2048 count=1 status=none <&3
            """))
        assert "PING ONE" in out.stdout
        # One announced socket, many peers: with headers each datagram names its peer.
        base = f"{sp.prefix}/dev/socket/udp"
        ctl = os.open(f"{base}/clone", os.O_RDWR)
        n = os.read(ctl, 16).decode().strip()
        os.write(ctl, b"announce 0\n")
        os.write(ctl, b"headers\n")
        data = os.open(f"{base}/{n}/data", os.O_RDWR)
        os.write(data, f"{KERNEL}!9999\nping two".encode())
        assert os.read(data, 2048) == f"{KERNEL}!9999\n".encode() + b"PING TWO"
        os.close(data)
        os.close(ctl)
    finally:
        echo.kill()
        echo.wait()


def test_udp_to_a_closed_port_is_refused(tap_stack):
    c = client.dial(f"udp!{KERNEL}!9", prefix=tap_stack.prefix)
    c.write(b"anyone?")
    time.sleep(0.3)
    with pytest.raises(OSError) as e:
        c.read()
    assert e.value.errno == errno.ECONNREFUSED
    c.close()


def test_connect_refused_and_err_file(tap_stack):
    with pytest.raises(OSError) as e:
        client.dial(f"tcp!{KERNEL}!1", prefix=tap_stack.prefix)
    assert e.value.errno == errno.ECONNREFUSED
    assert "refused" in str(e.value).lower()


def test_ping_from_the_stack(tap_stack):
    out = tap_stack.run("iopkt", "ping", "-c", "3", "-i", "0.2", KERNEL)
    assert out.returncode == 0
    assert out.stdout.count(f"bytes from {KERNEL}: icmp_seq=") == 3
    assert "3 packets transmitted, 3 packets received, 0.0% packet loss" in out.stdout


MALFORMED = [
    ("tcp", "connect", errno.EINVAL), ("tcp", "connect 10.203.0.1", errno.EINVAL),
    ("tcp", "connect bogus!80", errno.EINVAL), ("tcp", "connect 10.203.0.1!99999", errno.EINVAL),
    ("tcp", "announce x", errno.EINVAL), ("tcp", "keepalive soon", errno.EINVAL),
    ("tcp", "ttl many", errno.EINVAL), ("tcp", "frobnicate", errno.EINVAL),
    ("tcp", "shutdown sideways", errno.EINVAL), ("udp", "connect", errno.EINVAL),
    ("udp", "headers now", errno.EINVAL), ("udp", "announce 70000", errno.EINVAL),
    ("raw", "connect", errno.EINVAL), ("unix", "connect", errno.EINVAL),
    ("unix", "connect nobody-here", errno.ECONNREFUSED), ("unix", "announce a b", errno.EINVAL),
]


def test_malformed_ctl_verbs(tap_stack):
    """Every verb with bad arguments: the errno a program would get, a reason in err, and
    the stack serving on."""
    sp = tap_stack
    for proto, line, code in MALFORMED:
        base = f"{sp.prefix}/dev/socket/{proto}"
        fd = os.open(f"{base}/clone", os.O_RDWR)
        try:
            n = os.read(fd, 16).decode().strip()
            with pytest.raises(OSError) as e:
                os.write(fd, (line + "\n").encode())
            assert e.value.errno == code, (proto, line)
            assert open(f"{base}/{n}/err").read().strip() != "", (proto, line)
        finally:
            os.close(fd)
    assert sp.run("iopkt", "ifconfig", "ltap0").returncode == 0   # still serving
    assert sp.alive()


def test_port_in_use(stack):
    a = client.announce("tcp!*!6000", prefix=stack.prefix)
    try:
        with pytest.raises(OSError) as e:
            client.announce("tcp!*!6000", prefix=stack.prefix)
        assert e.value.errno == errno.EADDRINUSE
    finally:
        a.close()


def test_unix_stream_and_datagrams_between_processes(stack):
    server = subprocess.Popen(["bash", "-c", textwrap.dedent("""\
        S=$SOCK/dev/socket/unix
        N=$(cat $S/clone); echo "announce svc" > $S/$N/ctl
        echo ready
        M=$(cat $S/$N/listen)
        exec 3<>$S/$M/data
        read -r line <&3
        echo "echo: $line" >&3
        echo close > $S/$M/ctl
        """)], env=stack.env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        c = client.dial("unix!svc", prefix=stack.prefix)
        c.write(b"hello over unix\n")
        assert c.read_all() == b"echo: hello over unix\n"
        c.close()
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
    # Datagrams keep their boundaries; headers name the sender.
    rx = client.announce("unix!box", prefix=stack.prefix)
    tx = client.dial("unix!box", prefix=stack.prefix)
    del rx, tx
    base = f"{stack.prefix}/dev/socket/unix"
    r = subprocess.run(["bash", "-c", textwrap.dedent(f"""\
        A=$(cat {base}/clone); exec 4<>{base}/$A/ctl; echo dgram >&4; echo "announce inbox" >&4; echo headers >&4
        B=$(cat {base}/clone); exec 5<>{base}/$B/ctl; echo dgram >&5; echo "announce sender" >&5; echo "connect inbox" >&5
        exec 6<>{base}/$B/data; printf one >&6; printf two >&6
        exec 7<>{base}/$A/data
        python3 -c 'import os; print(os.read(7, 100)); print(os.read(7, 100))'
        """)], capture_output=True, text=True, timeout=20, pass_fds=())
    assert r.stdout.splitlines() == ["b'sender\\none'", "b'sender\\ntwo'"], r.stderr


def test_connection_directories_belong_to_their_owner(make_stack):
    base = tempfile.mkdtemp(prefix="iopkt-perm-")
    os.chmod(base, 0o755)
    sp = make_stack(name=os.path.join(base, "p"))
    try:
        assert sp.start().returncode == 0
        tcp = f"{sp.prefix}/dev/socket/tcp"
        mine = client.announce("tcp!*!6100", prefix=sp.prefix)
        n = os.path.basename(mine.dir)
        # bash, not dash: dash's echo reports every write error as "I/O error".
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "bash", "-c"]
        denied = sp.run(*nobody, f"cat {tcp}/{n}/ctl")
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        own = sp.run(*nobody, f"N=$(cat {tcp}/clone) && cat {tcp}/$N/ctl && "
                              f"echo 'announce 6200' > {tcp}/$N/ctl && cat {tcp}/$N/local")
        assert own.returncode == 0, own.stderr
        assert own.stdout.split() [1:] == ["*!6200"]
        low = sp.run(*nobody, f"N=$(cat {tcp}/clone) && echo 'announce 80' > {tcp}/$N/ctl")
        assert low.returncode != 0 and "Permission denied" in low.stderr
        mine.close()
    finally:
        sp.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def test_connections_go_away_when_done(stack):
    tcp = f"{stack.prefix}/dev/socket/tcp"
    with open(f"{tcp}/clone") as f:
        n = f.read().strip()
    # Unused, it outlives its last close for a grace period (N=$(cat clone) works) ...
    assert os.path.isdir(f"{tcp}/{n}")
    with open(f"{tcp}/{n}/ctl") as f:
        assert f.read().strip() == n
    old = os.stat(f"{tcp}/{n}/ctl").st_ino
    # ... then it goes, although the kernel may cache its entries for a minute: freeing
    # it invalidated them (without that, these stats would answer from the cache) ...
    assert wait_until(lambda: not os.path.exists(f"{tcp}/{n}"), 10)
    assert not os.path.exists(f"{tcp}/{n}/ctl")
    # ... and its number is free again once the kernel has forgotten it; the new
    # connection N is reached by path, never the old one through a stale entry.
    held = []

    def clone_gives_n():
        fd = os.open(f"{tcp}/clone", os.O_RDWR)
        held.append(fd)
        return os.read(fd, 64).decode().strip() == n
    try:
        assert wait_until(clone_gives_n, 5)
        with open(f"{tcp}/{n}/ctl") as f:
            assert f.read().strip() == n
        assert os.stat(f"{tcp}/{n}/ctl").st_ino != old
        with open(f"{tcp}/{n}/ctl", "w") as f:
            f.write("announce 0\n")
        assert open(f"{tcp}/{n}/status").read().startswith("Listen")
    finally:
        for fd in held:
            os.close(fd)


def test_listen_and_clone_fds_are_the_new_connections_ctl(stack):
    """Plan 9: the fd an open of clone or listen returns is the new connection's ctl."""
    tcp = f"{stack.prefix}/dev/socket/tcp"
    with client.announce("tcp!*!7070", prefix=stack.prefix) as lst:
        fd = os.open(f"{tcp}/clone", os.O_RDWR)
        try:
            n = os.read(fd, 64).decode().strip()
            os.write(fd, b"connect 127.0.0.1!7070\n")      # the clone fd as n's ctl
            assert open(f"{tcp}/{n}/status").read().startswith("ESTABLISHED")
            lfd = os.open(f"{lst.dir}/listen", os.O_RDWR)
            try:
                m = os.read(lfd, 64).decode().strip()
                assert m not in (n, os.path.basename(lst.dir))
                assert open(f"{tcp}/{m}/remote").read().strip() == \
                    open(f"{tcp}/{n}/local").read().strip().replace("*", "127.0.0.1")
                os.write(lfd, b"close\n")                   # the listen fd as m's ctl: FIN
                data = os.open(f"{tcp}/{n}/data", os.O_RDONLY)
                try:
                    assert os.read(data, 100) == b""        # n sees m's end of stream
                finally:
                    os.close(data)
                with pytest.raises(OSError) as bad:
                    os.write(lfd, b"frobnicate\n")
                assert bad.value.errno == errno.EINVAL
                assert "frobnicate" in open(f"{tcp}/{m}/err").read()
            finally:
                os.close(lfd)
            # The listener itself still takes calls and verbs on its own ctl.
            assert open(f"{lst.dir}/status").read().startswith("Listen")
        finally:
            os.close(fd)


def test_parked_readers_hold_no_threads(make_stack):
    """Ten readers blocked in data with threads_max=4: the mount still serves everyone."""
    sp = make_stack(tcpip="threads_min=4,threads_max=4")
    assert sp.start().returncode == 0
    with parked_udp_readers(sp.prefix, 10, 7100) as readers:
        time.sleep(0.5)
        assert all(r.poll() is None for r in readers)          # all parked
        t0 = time.monotonic()
        assert sp.run("iopkt", "ifconfig", "lo0").returncode == 0
        assert time.monotonic() - t0 < 2
        outs = answer_udp_readers(sp.prefix, readers, 7100)
        assert outs == [f"datagram {i}".encode() for i in range(10)]
        assert 'Threads exhausted' not in sp.run("sloginfo").stdout


async def test_trio_stream_over_the_files(stack):
    import trio
    listener = client.announce("tcp!*!6300", prefix=stack.prefix)
    try:
        async with trio.open_nursery() as nursery:
            async def serve():
                s = await client.accept_stream(listener)
                data = b""
                while True:
                    chunk = await s.receive_some(65536)
                    if not chunk:
                        break
                    data += chunk
                await s.send_all(hashlib.sha256(data).hexdigest().encode())
                await s.aclose()
            nursery.start_soon(serve)
            stream = await client.open_stream("tcp!127.0.0.1!6300", prefix=stack.prefix)
            payload = os.urandom(3 << 20)
            await stream.send_all(payload)
            await stream.send_eof()
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
            assert answer.decode() == hashlib.sha256(payload).hexdigest()
            await stream.aclose()
    finally:
        listener.close()


def test_tcp_over_ipv6_through_the_files(make_stack):
    """v6-hc: `connect ADDR6!PORT` and `announce PORT` through ctl, both ways against the
    Linux kernel over a TAP; `local`/`remote` print the IPv6 addresses."""
    ns = f"sys6-{os.getpid()}"
    dev = f"s6{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    sp = make_stack(variant="io-pkt-v6-hc", args=["-d", "tap", f"dev={dev},netns={ns}"])
    try:
        assert sp.start().returncode == 0
        S = f"{sp.prefix}/dev/socket"
        with open(f"{S}/if/ltap0/ctl", "w") as f:
            f.write("add fd00:203::2/64\n")
        for cmd in (["link", "set", "lo", "up"], ["addr", "add", "fd00:203::1/64", "dev", dev, "nodad"],
                    ["link", "set", dev, "up"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        # The kernel serves a greeting on [fd00:203::1]:7006 and echoes a caller's bytes upper-cased.
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", textwrap.dedent("""\
            import socket
            s = socket.socket(socket.AF_INET6); s.bind(('fd00:203::1', 7006)); s.listen(1)
            print('ready', flush=True)
            c, _ = s.accept(); c.sendall(b'hello over ipv6\\n'); c.close()
            c = socket.create_connection(('fd00:203::2', 7007), timeout=20)
            c.sendall(b'from the kernel'); c.shutdown(socket.SHUT_WR)
            print(c.recv(100).decode(), flush=True)
            """)], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline() == "ready\n"
        out = subprocess.run(["bash", "-c", textwrap.dedent(f"""\
            S={S}/tcp
            L=$(cat $S/clone); echo "announce 7007" > $S/$L/ctl
            N=$(cat $S/clone)
            for i in $(seq 50); do echo "connect fd00:203::1!7006" > $S/$N/ctl 2>/dev/null && break; sleep 0.1; done
            cat $S/$N/remote; timeout 10 cat $S/$N/data
            M=$(cat $S/$L/listen); cat $S/$M/remote $S/$M/local
            exec 3<>$S/$M/data; timeout 10 cat <&3 | tr a-z A-Z >&3
            echo close > $S/$M/ctl
            """)], capture_output=True, text=True, timeout=60)
        lines = out.stdout.splitlines()
        assert lines[0] == "fd00:203::1!7006", out.stderr
        assert lines[1] == "hello over ipv6"
        assert lines[2].startswith("fd00:203::1!") and lines[3] == "fd00:203::2!7007"
        assert server.stdout.readline().strip() == "FROM THE KERNEL"
        server.wait(timeout=10)
    finally:
        sp.cleanup()
        subprocess.run(["ip", "netns", "del", ns])
