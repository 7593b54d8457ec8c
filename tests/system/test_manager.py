"""The io-pkt manager end to end: real FUSE mounts, real processes, the real tools."""

import concurrent.futures
import errno
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from iopkt_testutil import mounted, tool, wait_until

pytestmark = pytest.mark.system
TESTETHER = str(pathlib.Path(__file__).parent / "drivers" / "devnp-testether.py")


def test_starts_serving_and_returns(stack):
    st = stack.status()
    assert st["variant"] == "io-pkt-v4-hc" and st["name"] == "io-pkt" and st["instance"] == "0"
    assert stack.alive()
    assert sorted(os.listdir(stack.sock())) == ["1", "17", "2", "arp", "ctl", "if", "log", "mbuf", "pcb", "raw", "route",
                                                "stats", "status", "sysctl", "tcp", "udp", "unix"]
    # The FUSE fsname is the instance name, so tools find instances in mountinfo.
    with open("/proc/self/mountinfo") as f:
        line = next(l for l in f if l.split()[4] == stack.prefix)
    assert line.split(" - ")[1].split()[:2] == ["fuse.iopkt", "io-pkt"]


@pytest.mark.parametrize("variant,tcpip,families", [
    ("io-pkt-v4", "", ["1", "17", "2"]),
    ("io-pkt-v4", "ipsec", ["1", "17", "2"]),
    ("io-pkt-v4-hc", "ipsec", ["1", "17", "2", "29"]),
    ("io-pkt-v6-hc", "", ["1", "17", "2", "24"]),
])
def test_variant_decides_families(make_stack, variant, tcpip, families):
    sp = make_stack(variant=variant, tcpip=tcpip)
    assert sp.start().returncode == 0
    assert sorted(n for n in os.listdir(sp.sock()) if n.isdigit()) == families
    lo0 = sp.run("iopkt", "ifconfig", "lo0").stdout
    assert ("inet6 ::1 prefixlen 128" in lo0) == (variant == "io-pkt-v6-hc")


def test_startup_log_and_console_copy(make_stack):
    sp = make_stack(tcpip="bogus", args=["-v", "-d", "nothere", "-x"])
    sp.argv.insert(1, "--foreground")
    proc = subprocess.Popen(sp.argv, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: os.path.exists(sp.sock("status")), 10)
        sp.pid = proc.pid
        assert wait_until(lambda: "Unable to load" in sp.run("sloginfo").stdout, 5)
        out = sp.run("sloginfo").stdout.splitlines()
        assert out[0] == "Time             Sev Major Minor Args"
        texts = [line[33:] if len(line) > 33 else line for line in out[1:]]
        assert texts[:3] == ["tcpip starting", 'Using pseudo random generator.  See "random" option',
                             'tcpip: unrecognized option: "bogus"']
        assert out[1][15:33] == "    5    14     0 "
        assert "nothere (null)" in texts
        assert any(t.startswith("Unable to load nothere: devnp-nothere: no such driver") for t in texts)
        assert sp.alive()   # a failed driver never stops the stack
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert "io-pkt-v4-hc: illegal option -- x" in err
    assert "tcpip starting" in err and "Unable to load nothere" in err   # -v copies to stderr


def test_random_option_silences_the_prng_warning(make_stack):
    sp = make_stack(tcpip="random")
    assert sp.start().returncode == 0
    assert "pseudo random" not in sp.run("sloginfo").stdout
    assert sp.status()["random"] == "os"


def test_help(tmp_path):
    out = subprocess.run([tool("io-pkt-v6-hc"), "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert "io-pkt-v6-hc [-P priority] [-i instance]" in out.stdout and "forward6" in out.stdout
    assert "prefix=" in out.stdout and "devnp-loop" in out.stdout


def test_unusable_prefix_is_a_clear_error(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    out = subprocess.run([tool("io-pkt-v4"), "-ptcpip", f"prefix={afile}"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1
    assert f"prefix {afile}" in out.stderr
    bad = subprocess.run([tool("io-pkt-v4"), "-i", "x1"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and bad.stderr.strip() == "io-pkt-v4: Invalid instance number: x1"


def test_prefix_in_use_is_refused(stack, make_stack):
    again = make_stack(name="stack")   # same prefix
    out = again.start()
    assert out.returncode == 1 and "already served by io-pkt" in out.stderr
    assert stack.alive()


def test_sigterm_unmounts_within_two_seconds(stack):
    t0 = time.monotonic()
    assert stack.stop(signal.SIGTERM, 2.0)
    assert time.monotonic() - t0 < 2.0
    assert not mounted(stack.prefix)


def test_kill_9_then_restart_on_same_prefix(stack, make_stack):
    stack.stop(signal.SIGKILL)
    with pytest.raises(OSError) as e:
        os.stat(stack.sock("status"))
    assert e.value.errno in (errno.ENOTCONN, errno.ENOENT, errno.ECONNABORTED)
    again = make_stack(name="stack")
    out = again.start()
    assert out.returncode == 0, out.stderr
    assert again.run("iopkt", "ifconfig", "lo0").returncode == 0
    assert "clearing stale mount" in again.run("sloginfo").stdout


def test_echo_to_ctl_from_a_shell(stack):
    sh = lambda cmd: subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=stack.env)  # noqa: E731
    ctl = stack.sock("if", "lo0", "ctl")
    assert sh(f"echo down > {ctl}").returncode == 0
    assert stack.run("iopkt", "ifconfig", "lo0").stdout.startswith("lo0: flags=8048<LOOPBACK,RUNNING,MULTICAST>")
    assert sh(f"echo up > {ctl} && echo 'add 10.9.0.1/16' >> {ctl}").returncode == 0
    assert "\tinet 10.9.0.1 netmask 0xffff0000" in stack.run("iopkt", "ifconfig", "lo0").stdout
    bad = sh(f"echo 'mtu lots' > {ctl}")
    assert bad.returncode == 1 and "Invalid argument" in bad.stderr
    assert "if/lo0/ctl: mtu 'lots' is not a number" in stack.run("sloginfo").stdout
    # bash's read builtin reads ahead and seeks back: the snapshot serves it.
    r = sh(f"{{ read a; read b; }} < {stack.sock('status')}; echo \"$a|$b\"")
    assert r.stdout.strip() == "variant: io-pkt-v4-hc|instance: 0"


def test_garbage_writes_never_crash_the_stack(stack):
    import random
    rng = random.Random(7)
    targets = [stack.sock("ctl"), stack.sock("if", "lo0", "ctl"), stack.sock("log"),
               stack.sock("sysctl", "net", "inet", "ip", "ttl"), stack.sock("sysctl", "kern", "hostname")]
    codes = set()
    for i in range(300):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        if i % 3 == 0:
            payload = rng.choice([b"add", b"add 1.2.3.4/99", b"mtu -1", b"del ::1", b"mount", b"create x",
                                  b"destroy lo0", b"up up", b"\n\n", b"set 300.1.1.1", b"unmount en9"])
        fd = os.open(rng.choice(targets), os.O_WRONLY)
        try:
            os.write(fd, payload)
        except OSError as exc:
            codes.add(exc.errno)
        finally:
            os.close(fd)
    assert codes <= {errno.EINVAL, errno.EPERM, errno.ENXIO, errno.ENOENT, errno.EADDRNOTAVAIL,
                     errno.EAFNOSUPPORT, errno.EEXIST}
    assert errno.EINVAL in codes
    assert stack.alive()
    assert stack.run("iopkt", "ifconfig", "lo0").stdout.startswith("lo0: ")


def test_ifconfig_tool(stack):
    r = stack.run
    assert r("iopkt", "ifconfig").stdout == r("iopkt", "ifconfig", "-a").stdout
    bad = r("iopkt", "ifconfig", "xx0")
    assert bad.returncode == 1 and bad.stderr == "ifconfig: SIOCGIFFLAGS xx0: No such device or address\n"
    # Every variant has lo, tun, tap and vlan (reference/qnx.md §3.3); hc adds bridge, gif, gre.
    assert r("iopkt", "ifconfig", "-C").stdout.split() == ["bridge", "gif", "gre", "lo", "tap", "tun", "vlan"]   # v4-hc
    assert r("iopkt", "ifconfig", "lo1", "create").returncode == 0
    dup = r("iopkt", "ifconfig", "lo1", "create")
    assert dup.returncode == 1 and dup.stderr == "ifconfig: SIOCIFCREATE: File exists\n"
    assert r("iopkt", "ifconfig", "-l").stdout.split() == ["lo0", "lo1"]
    assert r("iopkt", "ifconfig", "lo1", "10.1.0.1", "netmask", "255.255.255.0").returncode == 0
    assert r("iopkt", "ifconfig", "lo1", "inet", "10.2.0.1/8", "alias").returncode == 0
    assert r("iopkt", "ifconfig", "lo1", "mtu", "1500").returncode == 0
    assert r("iopkt", "ifconfig", "lo1").stdout == (
        "lo1: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 1500\n"
        "\tinet 10.1.0.1 netmask 0xffffff00\n"
        "\tinet 10.2.0.1 netmask 0xff000000\n")
    assert r("iopkt", "ifconfig", "lo1", "10.1.0.1", "delete").returncode == 0
    assert r("iopkt", "ifconfig", "lo1", "down").returncode == 0
    assert r("iopkt", "ifconfig", "-l", "-u").stdout.split() == ["lo0"]
    both = r("iopkt", "ifconfig", "lo1", "10.3.0.1", "alias", "delete")
    assert both.returncode == 1 and "Only one use of alias, -alias or delete is valid." in both.stderr
    need = r("iopkt", "ifconfig", "lo1", "10.3.0.1", "netmask")
    assert need.returncode == 1 and need.stderr == "ifconfig: 'netmask' requires argument\n"
    assert r("iopkt", "ifconfig", "lo1", "mtu", "20").stderr == "ifconfig: SIOCSIFMTU: Invalid argument\n"
    assert r("iopkt", "ifconfig", "lo0", "destroy").stderr == "ifconfig: SIOCIFDESTROY: Operation not permitted\n"
    assert r("iopkt", "ifconfig", "lo1", "destroy").returncode == 0
    assert r("iopkt", "ifconfig", "-l").stdout.split() == ["lo0"]
    verbose = r("iopkt", "ifconfig", "-v", "lo0").stdout.splitlines()
    assert verbose[1].startswith("\tinput: ") and verbose[2].startswith("\toutput: ")


def test_sysctl_tool(stack):
    r = stack.run
    assert r("iopkt", "sysctl", "-w", "net.inet.ip.forwarding=1").stdout == "net.inet.ip.forwarding: 0 -> 1\n"
    assert r("iopkt", "sysctl", "net.inet.ip.forwarding").stdout == "net.inet.ip.forwarding = 1\n"
    assert r("iopkt", "sysctl", "-n", "net.inet.ip.ttl").stdout == "64\n"
    assert r("iopkt", "sysctl", "-e", "qnx.kern.enmap").stdout == "qnx.kern.enmap=1\n"
    every = r("iopkt", "sysctl", "-a").stdout.splitlines()
    names = [l.split(" = ")[0] for l in every]
    for name in ("kern.hostname", "net.inet.ip.forwarding", "net.inet.ip.ttl", "net.inet.tcp.sendspace",
                 "net.inet.tcp.recvspace", "qnx.kern.enmap"):
        assert name in names
    assert names == sorted(names)
    bad = r("iopkt", "sysctl", "net.inet.bogus")
    assert bad.returncode == 1 and bad.stderr == "sysctl: third level name 'bogus' in 'net.inet.bogus' is invalid\n"
    ro = r("iopkt", "sysctl", "-w", "kern.ostype=Linux")
    assert ro.returncode == 1 and ro.stderr == "sysctl: kern.ostype: Operation not permitted\n"
    big = r("iopkt", "sysctl", "-w", "net.inet.ip.ttl=256")
    assert big.returncode == 1 and big.stderr == "sysctl: net.inet.ip.ttl: Invalid argument\n"
    assert open(stack.sock("sysctl", "net", "inet", "ip", "forwarding")).read() == "1\n"
    assert "sysctl: net.inet.ip.ttl must be <= 255" in r("sloginfo").stdout


def test_if_up(stack):
    r = stack.run
    assert r("if_up", "-p", "lo0").returncode == 0
    assert r("if_up", "lo0").returncode == 0
    t0 = time.monotonic()
    miss = r("if_up", "-r", "3", "-m", "100", "lo7")
    assert miss.returncode == 1 and "lo7 (not present)" in miss.stderr
    assert 0.15 < time.monotonic() - t0 < 3
    # Present but not configured: -p is satisfied, the default is not.
    r("iopkt", "ifconfig", "lo2", "create")
    assert r("if_up", "-p", "-r1", "lo2").returncode == 0
    assert r("if_up", "-r1", "lo2").returncode == 1
    # Any one vs all.
    assert r("if_up", "-r1", "lo0", "lo2").returncode == 0
    assert r("if_up", "-a", "-r1", "lo0", "lo2").returncode == 1
    # A wait that ends when the interface appears.
    waiter = subprocess.Popen([tool("if_up"), "-p", "-r", "20", "-m", "100", "lo5"], env=stack.env)
    time.sleep(0.4)
    r("iopkt", "ifconfig", "lo5", "create")
    assert waiter.wait(timeout=10) == 0


def test_if_up_link_and_enmap_with_a_path_driver(stack):
    r = stack.run
    out = r("iopkt", "mount", "-T", "io-pkt", "-o", "count=2,nolink", TESTETHER)
    assert out.returncode == 0, out.stderr
    assert r("iopkt", "ifconfig", "-l").stdout.split() == ["lo0", "te0", "te1"]
    assert r("iopkt", "ifconfig", "en1", "10.5.0.1/24").returncode == 0   # enmap: en1 is te1
    te1 = r("iopkt", "ifconfig", "te1").stdout
    assert te1.startswith("te1: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n")
    assert "\taddress: 02:00:5e:00:00:11\n\tmedia: Ethernet autoselect (1000baseT full-duplex)\n\tstatus: no carrier\n" in te1
    assert r("if_up", "-r1", "te1").returncode == 0
    assert r("if_up", "-l", "-r1", "te1").returncode == 1
    r("iopkt", "sysctl", "-w", "qnx.kern.enmap=0")
    assert r("iopkt", "ifconfig", "en1").returncode == 1
    nic = r("nicinfo", "te1").stdout
    assert "Physical Node ID ........................... 02005E 000011\n" in nic
    assert "Current Operation Rate ..................... 1000.00 Mb/s full-duplex\n" in nic
    assert "Link is DOWN" in nic


def test_mount_errors_and_unload(stack):
    r = stack.run
    missing = r("iopkt", "mount", "-T", "io-pkt", "devnp-nothere.so")
    assert missing.returncode == 1
    assert missing.stderr == ("mount: Can't mount devnp-nothere.so (type io-pkt) \n"
                              "mount: Possible reason: No such device or address \n")
    nobody = r("iopkt", "mount", "-T", "io-pkt7", TESTETHER)
    assert nobody.returncode == 1 and "Possible reason: No such file or directory" in nobody.stderr
    fails = r("iopkt", "mount", "-T", "io-pkt", "-o", "fail", TESTETHER)
    assert fails.returncode == 1
    assert "Unable to init " + TESTETHER + ": no such device" in r("sloginfo").stdout
    dup = r("iopkt", "mount", "-T", "io-pkt", "-o", "unit=0", TESTETHER)
    assert dup.returncode == 0
    again = r("iopkt", "mount", "-T", "io-pkt", "-o", "unit=0", TESTETHER)
    assert again.returncode == 1 and "Operation already in progress" in again.stderr
    # Native drivers go with their last interface (ifconfig destroy), not umount.
    assert r("iopkt", "ifconfig", "te0", "destroy").returncode == 0
    assert "driver" not in stack.status()   # the driver went with its last interface
    assert stack.alive()


def test_non_root_users(make_stack):
    """Reads work for everyone (allow_other); writes and driver loads need root."""
    base = tempfile.mkdtemp(prefix="iopkt-nonroot-")
    os.chmod(base, 0o755)
    sp = make_stack(name=os.path.join(base, "p"))
    try:
        assert sp.start().returncode == 0
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c"]
        show = sp.run(*as_nobody, f"cat {sp.sock('if', 'lo0', 'status')}")
        assert show.returncode == 0 and show.stdout.startswith("lo0: flags=8049")
        down = sp.run(*as_nobody, f"echo down > {sp.sock('if', 'lo0', 'ctl')}")
        assert down.returncode != 0 and "Permission denied" in down.stderr
        mnt = sp.run(*as_nobody, f"echo mount {TESTETHER} > {sp.sock('ctl')}")
        assert mnt.returncode != 0 and "Permission denied" in mnt.stderr
        assert sp.run("iopkt", "ifconfig", "-l").stdout.split() == ["lo0"]
    finally:
        sp.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def test_two_instances_selected_by_sock(stack, make_stack):
    one = make_stack(name="alt", args=["-i1"])
    assert one.start().returncode == 0
    assert one.status()["name"] == "io-pkt1"
    assert one.run("iopkt", "ifconfig", "lo3", "create").returncode == 0
    assert one.run("iopkt", "ifconfig", "-l").stdout.split() == ["lo0", "lo3"]
    assert stack.run("iopkt", "ifconfig", "-l").stdout.split() == ["lo0"]
    # mount -T io-pkt1 reaches instance 1 whatever SOCK says.
    out = stack.run("iopkt", "mount", "-T", "io-pkt1", TESTETHER)
    assert out.returncode == 0, out.stderr
    assert "te0" in one.run("iopkt", "ifconfig", "-l").stdout
    assert "te0" not in stack.run("iopkt", "ifconfig", "-l").stdout


def test_two_instance_zeros_mount_into_the_one_sock_names(stack, make_stack):
    """Two stacks at different prefixes can both be io-pkt (instance 0); SOCK decides
    which one ``mount -T io-pkt`` loads into, whichever was mounted first."""
    other = make_stack(name="zero2")
    assert other.start().returncode == 0
    assert other.status()["name"] == stack.status()["name"] == "io-pkt"
    for target, bystander in ((other, stack), (stack, other)):
        before = bystander.run("iopkt", "ifconfig", "-l").stdout.split()
        out = target.run("iopkt", "mount", "-T", "io-pkt", "loop")
        assert out.returncode == 0, out.stderr
        assert "lo1" in target.run("iopkt", "ifconfig", "-l").stdout.split()
        assert bystander.run("iopkt", "ifconfig", "-l").stdout.split() == before


def test_threads_exhausted_is_logged_once_and_requests_still_complete(make_stack):
    sp = make_stack(tcpip="threads_min=4,threads_max=4", args=["-d", TESTETHER, "slowstats=400"])
    assert sp.start().returncode == 0
    stats = sp.sock("if", "te0", "stats")

    def read(_):
        with open(stats) as f:
            return f.read()

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(read, range(10)))
    assert all("ipackets: 0" in text for text in results)
    log = sp.run("sloginfo").stdout
    assert log.count('Threads exhausted.  See "threads_max" option') == 1
    assert sp.status()["threads_peak"] == "4"


def test_interface_entries_are_cached_but_never_stale(stack):
    """Interface entries are cached by the kernel; destroying one invalidates them at once."""
    r = stack.run
    for round_ in range(3):
        assert r("iopkt", "ifconfig", "lo4", "create").returncode == 0
        with open(stack.sock("if", "lo4", "status")) as f:
            assert f.read().startswith("lo4: flags=8048")
        r("iopkt", "ifconfig", "lo4", f"10.4.{round_}.1/24")
        assert f"inet 10.4.{round_}.1 " in open(stack.sock("if", "lo4", "status")).read()
        assert r("iopkt", "ifconfig", "lo4", "destroy").returncode == 0
        assert wait_until(lambda: not os.path.exists(stack.sock("if", "lo4", "status")), 1.0)
