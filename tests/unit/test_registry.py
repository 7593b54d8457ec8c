"""Driver lookup as io-pkt does it: devnp- first, then devn- through the shim; paths as
given; installed packages through the entry-point group (qnx.md §1.2)."""

import errno
import textwrap

import pytest

from iopkt_fs.drivers import registry
from iopkt_fs.drivers.base import DriverOptions
from iopkt_fs.drivers.loop import LoopDriver
from iopkt_fs.stack.errors import StackError

NATIVE = """
from iopkt_fs.drivers.base import Driver
class Extra(Driver):
    name = "devnp-extra"
iopkt_drvr_entry = Extra
"""
LEGACY = """
class Old:
    pass
io_net_dll_entry = Old
"""


def test_bare_name_means_devnp():
    r = registry.resolve("loop")
    assert r.name == "devnp-loop" and r.entry is LoopDriver and not r.legacy
    assert registry.resolve("devnp-loop.so").entry is LoopDriver


def test_unknown_names_say_what_was_tried():
    with pytest.raises(StackError) as e:
        registry.resolve("nothere")
    assert e.value.errno == errno.ENXIO
    assert "devnp-nothere" in e.value.message and "devn-nothere" in e.value.message


def test_path_is_loaded_as_given(tmp_path):
    good = tmp_path / "devnp-extra.py"
    good.write_text(NATIVE)
    r = registry.resolve(str(good))
    assert r.name == str(good) and r.entry.__name__ == "Extra" and not r.legacy
    old = tmp_path / "devn-old.py"
    old.write_text(LEGACY)
    assert registry.resolve(str(old)).legacy


@pytest.mark.parametrize("body", ["x = 1\n", "def broken(:\n", "raise RuntimeError('boom')\n"])
def test_broken_or_foreign_modules_are_load_errors(tmp_path, body):
    path = tmp_path / "devnp-bad.py"
    path.write_text(body)
    with pytest.raises(StackError) as e:
        registry.resolve(str(path))
    assert e.value.errno == errno.ENXIO


def test_missing_path(tmp_path):
    with pytest.raises(StackError) as e:
        registry.resolve(str(tmp_path / "nope.py"))
    assert e.value.errno == errno.ENXIO


def _install(tmp_path, monkeypatch, entries: dict[str, str], modules: dict[str, str]):
    """A real installed distribution on sys.path: dist-info + modules."""
    for name, body in modules.items():
        (tmp_path / f"{name}.py").write_text(body)
    info = tmp_path / "iopkt_extra-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: iopkt-extra\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{lines}")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_installed_packages_add_drivers(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, {"devnp-extra": "extra_drv:Extra", "devn-oldie": "oldie_drv"},
             {"extra_drv": NATIVE, "oldie_drv": LEGACY})
    assert registry.resolve("extra").entry.__name__ == "Extra"
    # No devnp-oldie: the bare name falls back to the legacy devn-oldie.
    r = registry.resolve("oldie")
    assert r.name == "devn-oldie" and r.legacy
    assert "devnp-extra" in registry.available()


def test_driver_options():
    o = DriverOptions("dev=t0,name=wan,unit=3,peer=a:1,peer=b:2,verbose,mtu=0x2328")
    assert o.take_stack_options() == ("wan", 3)
    assert "name" not in o and o.get("dev") == "t0" and o.get_all("peer") == ["a:1", "b:2"]
    assert o.get_flag("verbose") and o.get_int("mtu") == 9000
    assert DriverOptions("lan=2").take_stack_options() == (None, 2)
    with pytest.raises(StackError):
        DriverOptions("mtu=x").get_int("mtu")
    with pytest.raises(StackError) as e:
        DriverOptions("bogus=1").check_known({"dev"})
    assert "unknown option" in e.value.message
