"""The wire package stays sans-IO: no trio, no scapy, no clock (DESIGN.md "Layers")."""

import ast
import pathlib
import subprocess
import sys

import iopkt_fs.stack.wire as wire_pkg

WIRE_DIR = pathlib.Path(wire_pkg.__file__).parent
MODULES = ["ethernet", "arp", "ipv4", "icmp", "udp", "checksum", "errors"]
FORBIDDEN_IMPORTS = {"trio", "scapy", "time", "datetime", "asyncio", "socket", "random"}


def test_importing_wire_loads_neither_trio_nor_scapy():
    code = (
        "import sys\n"
        + "".join(f"import iopkt_fs.stack.wire.{m}\n" for m in MODULES)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'scapy')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_imports_a_clock_or_io_framework():
    for name in MODULES:
        tree = ast.parse((WIRE_DIR / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & FORBIDDEN_IMPORTS, f"{name}.py imports {roots & FORBIDDEN_IMPORTS}"
