"""Nothing a program writes to a tun or tap device, or to a tun's ctl, crashes the stack:
it is injected (and counted as a drop if broken) or refused with an errno."""

import errno

from hypothesis import given, settings
from hypothesis import strategies as st

from iopkt_fs.resmgr import verbs
from iopkt_fs.stack.config import V6_HC
from iopkt_fs.stack.errors import StackError

from .pseudo_helpers import pump, stack

WRITE_ERRNOS = {errno.EIO, errno.EAFNOSUPPORT}


@settings(max_examples=150)
@given(mode=st.sampled_from([None, "ifhead", "slmode"]),
       packets=st.lists(st.binary(max_size=1600), max_size=8))
def test_random_tun_writes(mode, packets):
    s = stack(variant=V6_HC)
    dev = s.tun.open(0)
    if mode:
        dev.mode_ctl([mode])
    verbs.interface_ctl(s, dev.iface, "set 10.0.0.1 dest 10.0.0.2")
    for i, p in enumerate(packets):
        try:
            dev.write(p, i)
        except StackError as exc:
            assert exc.errno in WRITE_ERRNOS
        pump(s, i)
    while dev.read(2000) is not None:
        pass


@settings(max_examples=150)
@given(frames=st.lists(st.tuples(st.booleans(), st.one_of(st.just(5), st.just(0x2005), st.integers(0, 0xFFFF)), st.binary(max_size=1600)), max_size=8))
def test_random_tap_writes_with_a_vlan_on_it(frames):
    s = stack(variant=V6_HC)
    dev = s.tap.clone()
    verbs.interface_ctl(s, dev.iface, "set 10.1.0.1/24")
    vlan = s.create("vlan0")
    verbs.interface_ctl(s, vlan, "vlan 5 vlanif tap0")
    verbs.interface_ctl(s, vlan, "set 10.5.0.1/24")
    for i, (tagged, tci, body) in enumerate(frames):
        # Half of them 802.1Q frames to our MAC (tag 5 or any other), the rest anything.
        frame = dev.iface.mac + bytes(6) + b"\x81\x00" + tci.to_bytes(2, "big") + body if tagged else body
        assert dev.write(frame, i) == len(frame)
        pump(s, i)


@settings(max_examples=100)
@given(words=st.lists(st.sampled_from(["ifhead", "-ifhead", "slmode", "-slmode", "ifmode", "broadcast",
                                       "pointopoint", "debug", "7", "x", ""]), min_size=1, max_size=4))
def test_random_tun_ctl(words):
    s = stack()
    dev = s.tun.device(0)
    fields = [w for w in words if w] or ["x"]
    try:
        dev.mode_ctl(fields)
    except StackError as exc:
        assert exc.errno in (errno.EINVAL, errno.ENXIO, errno.EBUSY)
    assert not (dev.ifhead and dev.slmode)
