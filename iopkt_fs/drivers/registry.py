"""Finding a driver the way io-pkt does (reference/qnx.md §1.2, §1.5).

* A spec containing ``/`` is a path, loaded as given (a ``.py`` file), no fallback.
* A bare name (``tap``) means ``devnp-tap``; if there is none, the legacy ``devn-tap``
  loaded through the shim. ``devnp-x`` given in full also falls back to ``devn-x``.
  A trailing ``.so`` is ignored, so QNX buildfile lines work unchanged.
* Names are looked up among the built-in drivers, then the ``iopkt_fs.drivers``
  entry-point group of installed packages.

A module is a driver by what it exports, as a QNX DLL is: ``iopkt_drvr_entry`` (a native
``Driver`` class) or ``io_net_dll_entry`` (a legacy io-net driver, run through the shim).
"""

import errno
import importlib
import importlib.metadata
import importlib.util
import os

import attrs

from ..stack.errors import StackError

BUILTIN: dict[str, str] = {
    "devnp-loop": "iopkt_fs.drivers.loop",
    "devnp-tap": "iopkt_fs.drivers.tap",
    "devnp-vxlan": "iopkt_fs.drivers.vxlan",
    "devnp-packet": "iopkt_fs.drivers.packet",
    "devn-pcap": "iopkt_fs.drivers.pcap",
}
ENTRY_POINT_GROUP = "iopkt_fs.drivers"


@attrs.frozen
class Resolved:
    name: str          # what the log shows: "devnp-tap" or the path as given
    entry: type        # the Driver class (native) or the legacy driver class
    legacy: bool


def _entry_of(module, where: str) -> tuple[type, bool]:
    native = getattr(module, "iopkt_drvr_entry", None)
    if native is not None:
        return native, False
    legacy = getattr(module, "io_net_dll_entry", None)
    if legacy is not None:
        return legacy, True
    raise StackError(errno.ENXIO, f"{where}: not a driver (exports neither iopkt_drvr_entry nor io_net_dll_entry)")


def _load_path(path: str) -> Resolved:
    if not os.path.isfile(path):
        raise StackError(errno.ENXIO, f"{path}: No such file or directory")
    modname = "iopkt_fs_ext_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise StackError(errno.ENXIO, f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken driver file must not stop the stack
        raise StackError(errno.ENXIO, f"{path}: {type(exc).__name__}: {exc}") from None
    entry, legacy = _entry_of(module, path)
    return Resolved(path, entry, legacy)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata must not stop the stack
        return {}
    return {ep.name: ep for ep in eps}


def _load_name(name: str) -> Resolved | None:
    if name in BUILTIN:
        try:
            module = importlib.import_module(BUILTIN[name])
        except ModuleNotFoundError as exc:
            if exc.name == BUILTIN[name]:
                return None    # listed but not built yet: behave as "not found"
            raise
        entry, legacy = _entry_of(module, name)
        return Resolved(name, entry, legacy)
    ep = _entry_points().get(name)
    if ep is None:
        return None
    try:
        obj = ep.load()
    except Exception as exc:
        raise StackError(errno.ENXIO, f"{name}: {type(exc).__name__}: {exc}") from None
    if isinstance(obj, type):
        return Resolved(name, obj, bool(getattr(obj, "legacy", False)))
    entry, legacy = _entry_of(obj, name)
    return Resolved(name, entry, legacy)


def resolve(spec: str) -> Resolved:
    """Find the driver ``spec`` names, or raise StackError(ENXIO) saying what was tried."""
    if "/" in spec:
        return _load_path(spec)
    name = spec[:-3] if spec.endswith(".so") else spec
    if name.startswith("devn-"):
        candidates = [name]
    elif name.startswith("devnp-"):
        candidates = [name, "devn-" + name[len("devnp-"):]]
    else:
        candidates = ["devnp-" + name, "devn-" + name]
    for candidate in candidates:
        found = _load_name(candidate)
        if found is not None:
            return found
    raise StackError(errno.ENXIO, f"{candidates[0]}: no such driver (tried {', '.join(candidates)})")


def is_shim(spec: str) -> bool:
    """``shim`` / ``devnp-shim[.so]``: the shim itself, told which io-net driver to run."""
    name = spec[:-3] if spec.endswith(".so") else spec
    return name in ("shim", "devnp-shim")


def available() -> list[str]:
    names = set(BUILTIN) | set(_entry_points())
    return sorted(n for n in names if n not in BUILTIN or _importable(BUILTIN[n]))


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
