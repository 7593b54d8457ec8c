"""devnp-packet on one end of a veth pair inside a test namespace; USB matching via fake sysfs."""

import errno
import os

import pytest
import trio

from iopkt_fs.drivers.packet import find_usb_interface, usb_ids
from iopkt_fs.stack.errors import StackError

from drvtest_util import needs_root, responder, sh, wait_until

OUR_MAC = "02:00:5e:20:00:02"


def fake_usb_tree(root, entries):
    """entries: {ifname: (vid, did, devnum, busnum) or None}; laid out as Linux does."""
    for n, (ifname, ids) in enumerate(sorted(entries.items())):
        netdir = root / "class" / "net" / ifname
        netdir.mkdir(parents=True)
        if ids is None:
            pci = root / "devices" / "pci0000:00" / f"0000:00:0{n}.0"
            pci.mkdir(parents=True)
            (pci / "vendor").write_text("0x8086\n")
            os.symlink(os.path.relpath(pci, netdir), netdir / "device")
            continue
        vid, did, devnum, busnum = ids
        usb_dev = root / "devices" / "pci0000:00" / f"usb{busnum}" / f"{busnum}-{n}"
        usb_if = usb_dev / f"{busnum}-{n}:1.0"
        usb_if.mkdir(parents=True)
        (usb_dev / "idVendor").write_text(f"{vid:04x}\n")
        (usb_dev / "idProduct").write_text(f"{did:04x}\n")
        (usb_dev / "devnum").write_text(f"{devnum}\n")
        (usb_dev / "busnum").write_text(f"{busnum}\n")
        os.symlink(os.path.relpath(usb_if, netdir), netdir / "device")


def test_sysfs_usb_matching(tmp_path):
    fake_usb_tree(tmp_path, {"eth0": None, "usb0": (0x0B95, 0x772B, 3, 1), "usb1": (0x0B95, 0x772B, 5, 2),
                             "wlan0": (0x0BDA, 0x8179, 4, 1)})
    assert usb_ids(str(tmp_path), "eth0") is None
    assert usb_ids(str(tmp_path), "usb1") == {"vid": 0x0B95, "did": 0x772B, "devno": 5, "busno": 2}
    assert find_usb_interface(str(tmp_path), {"vid": 0x0B95, "did": 0x772B}) == "usb0"
    assert find_usb_interface(str(tmp_path), {"vid": 0x0B95, "devno": 5}) == "usb1"
    assert find_usb_interface(str(tmp_path), {"busno": 1, "did": 0x8179}) == "wlan0"
    with pytest.raises(StackError) as info:
        find_usb_interface(str(tmp_path), {"vid": 0x0B95, "did": 0x772B, "busno": 3})
    assert info.value.errno == errno.ENODEV and "vid=0x0b95" in info.value.message


async def test_option_errors(harness, tmp_path):
    fake_usb_tree(tmp_path, {"usb0": (1, 2, 3, 4)})
    for options, text in [("", "if= (or vid=/did=) is required"), ("if=x,vid=1", "not both"),
                          ("vid=0x10000", "out of range"), (f"vid=9,sysfs={tmp_path}", "no network interface matches"),
                          ("if=drvtest-no-such", "no Linux interface"), ("if=lo,speed=9", "unknown option")]:
        with pytest.raises(StackError) as info:
            await harness.runtime.load_driver("devnp-packet", options)
        assert text in info.value.message, options


def _veth(netns):
    ns = netns()
    sh("ip", "-n", ns, "link", "add", "pa", "type", "veth", "peer", "name", "pb")
    sh("ip", "-n", ns, "addr", "add", "10.80.0.1/24", "dev", "pb")
    sh("ip", "-n", ns, "link", "set", "pa", "up")
    sh("ip", "-n", ns, "link", "set", "pb", "up")
    return ns


@pytest.mark.kernel
@needs_root
async def test_packet_on_veth_kernel_pings(harness, netns):
    ns = _veth(netns)
    driver = await harness.load("devnp-packet", f"if=pa,netns={ns},mac={OUR_MAC}")
    iface = driver.interfaces[0]
    assert iface.name == "pkt0" and iface.mtu == 1500 and driver.promisc
    assert "promiscuity 1" in sh("ip", "-n", ns, "-d", "link", "show", "pa").stdout
    await wait_until(lambda: iface.link_up)
    counts = responder(harness, "10.80.0.2", OUR_MAC)
    result = await trio.run_process(
        ["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.80.0.2"],
        capture_stdout=True, check=False)
    assert result.returncode == 0, result.stdout
    assert counts["arp"] >= 1 and counts["echo"] == 3
    # Our own transmissions are not read back as input (PACKET_OUTGOING filtered).
    assert all(bytes.fromhex(OUR_MAC.replace(":", "")) != f[6:12] for f in harness.frames["pkt0"])
    assert OUR_MAC in sh("ip", "-n", ns, "neigh", "show", "10.80.0.2").stdout

    # A veth end loses carrier when its peer goes down.
    sh("ip", "-n", ns, "link", "set", "pb", "down")
    await wait_until(lambda: not iface.link_up)
    sh("ip", "-n", ns, "link", "set", "pb", "up")
    await wait_until(lambda: iface.link_up)

    harness.runtime.unload_driver(driver)
    assert "promiscuity 0" in sh("ip", "-n", ns, "-d", "link", "show", "pa").stdout


@pytest.mark.kernel
@needs_root
async def test_packet_chosen_by_usb_ids_in_fake_sysfs(harness, netns, tmp_path):
    ns = _veth(netns)
    # The fake tree says the veth end "pa" is a USB adapter 0b95:772b on bus 1, device 3.
    fake_usb_tree(tmp_path, {"pa": (0x0B95, 0x772B, 3, 1), "pb": (0x0B95, 0x1790, 4, 1)})
    driver = await harness.load("devnp-packet", f"vid=0x0b95,did=0x772b,devno=3,sysfs={tmp_path},netns={ns},mac=device")
    iface = driver.interfaces[0]
    assert driver.dev == "pa" and not driver.promisc
    linux_mac = sh("ip", "-n", ns, "link", "show", "pa").stdout.split("link/ether ")[1].split()[0]
    assert iface.mac.hex(":") == linux_mac
