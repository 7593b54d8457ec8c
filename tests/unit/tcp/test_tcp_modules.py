"""The shape of the TCP package: one job per module, no import cycle, a slotted TCB."""

import ast
import pathlib

import iopkt_fs.stack.tcp as tcp
from iopkt_fs.stack.tcp.connection import Connection

PKG = pathlib.Path(tcp.__file__).parent


def _imports(path: pathlib.Path) -> set[str]:
    """Sibling modules a module imports (``from .x import`` / ``from . import x``), at run
    time or under TYPE_CHECKING alike."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_nothing_the_layer_builds_imports_the_layer():
    # Only the package and the IP glue that constructs a TcpLayer (inet.py) may name it;
    # connections and sockets see it through services.py's Protocols.
    users = sorted(p.name for p in PKG.glob("*.py")
                   if p.name not in ("__init__.py", "layer.py", "inet.py") and "layer" in _imports(p))
    assert users == []


def test_sibling_imports_form_no_cycle_at_run_time():
    graph = {}
    for p in PKG.glob("*.py"):
        if p.name == "__init__.py":
            continue
        tree = ast.parse(p.read_text())
        deps = set()
        for node in tree.body:           # module level only: TYPE_CHECKING blocks are skipped
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.add(node.module.split(".")[0] if node.module else node.names[0].name)
        graph[p.stem] = deps
    seen, stack = set(), []

    def visit(m):
        assert m not in stack, f"import cycle: {' -> '.join(stack + [m])}"
        if m in seen or m not in graph:
            return
        stack.append(m)
        for d in graph[m]:
            visit(d)
        stack.pop()
        seen.add(m)
    for m in graph:
        visit(m)
    assert {"layer", "socket"} & graph["connection"] == set()


def test_every_module_is_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in PKG.glob("*.py")}
    assert max(sizes.values()) <= 600, sizes


def test_the_connection_stays_slotted_through_its_mixins():
    assert "__dict__" not in dir(Connection)      # no per-instance dict: every base is slotted
    for base in Connection.__mro__[1:-1]:
        assert base.__dict__.get("__slots__") == (), base
