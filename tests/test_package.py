"""The package as a whole: its import graph has no circle, importing it does no work, and each
import deferred into a function says why (the start-up it saves, or an optional dependency).

A circle makes the import order matter (a module sees its partner half-initialised) and hides
which module owns what; work at import time (reading config/features.yaml, probing TA-Lib,
starting a process) makes every command and worker pay for it and lets a stale global stand in
for the feature set a run was given.
"""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = SRC.parent / "config"


def _module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.Module, package: str, modules: set[str]) -> set[str]:
    """The package's modules ``tree`` imports, deferred imports included, ``if TYPE_CHECKING``
    blocks excluded (they never run)."""
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from package import module` imports the module; `from module import name` the module.
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    return found & modules


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    files = {_module_name(p, src): p for p in src.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = _imported(ast.parse(path.read_text()), package, set(files)) - {name}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_no_import_circles_in_the_package() -> None:
    circle = find_circle(import_graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


# What each package may import (docs/architecture.md, "Packages"); the top-level modules are
# everyone's. Dependencies point down: storage imports no other package.
MAY_IMPORT = {
    "storage": set(),
    "sources": {"storage"},
    "ingest": {"sources", "storage"},
    "features": {"storage", "sources"},  # sources: the synthetic market calibrates the drift check
    "aggregates": {"storage"},
    "dataset": {"storage"},
    "provisioning": {"storage", "aggregates", "features"},
    "orchestration": {"storage", "sources", "ingest", "features", "aggregates", "dataset"},
    "dashboard": {"storage", "orchestration"},
}


def test_each_package_imports_only_what_it_may() -> None:
    def package(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else None

    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if package(module) in MAY_IMPORT
        and package(target) not in (None, package(module))
        and package(target) not in MAY_IMPORT[package(module)]  # type: ignore[index]
    )
    assert not wrong, "imports against the package contracts: " + "; ".join(wrong)


def unexplained_deferred_imports(src: Path = SRC) -> list[str]:
    """Imports inside functions (``if TYPE_CHECKING`` aside) with no ``deferred``/``optional``
    comment on them or in the comment lines just above their group of imports."""
    found = []
    for path in sorted(src.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if not isinstance(node, ast.Import | ast.ImportFrom) or _under_type_checking(function, node):
                    continue
                first = node.lineno - 1
                while first > 0 and lines[first - 1].lstrip().startswith(("import ", "from ")):
                    first -= 1
                while first > 0 and lines[first - 1].lstrip().startswith("#"):
                    first -= 1
                said = lines[first : node.end_lineno]
                if not any("#" in ln and ("deferred" in ln.lower() or "optional" in ln.lower()) for ln in said):
                    found.append(f"{path.relative_to(src)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def _under_type_checking(function: ast.AST, node: ast.AST) -> bool:
    return any(
        isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test) and node in ast.walk(block)
        for block in ast.walk(function)
    )


def test_each_deferred_import_says_why() -> None:
    assert unexplained_deferred_imports() == []


def test_the_deferred_import_check_finds_one_without_a_reason(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "def f():\n    import json  # deferred: 1 ms\n\n\ndef g():\n    import csv\n    return csv\n"
    )
    assert unexplained_deferred_imports(tmp_path) == ["m.py:6: import csv"]


def test_the_check_finds_a_circle(tmp_path: Path) -> None:
    """The check itself can fail: two modules that import each other."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg.a import x\n")
    assert set(find_circle(import_graph(tmp_path)) or []) == {"pkg.a", "pkg.b"}


# Run in a fresh interpreter: records the files opened under config/ and the processes started
# while every module of the package is imported (an audit hook sees both).
_PROBE = """
import json, pkgutil, importlib, sys
config, events = sys.argv[1], []
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(config):
        events.append(f"opened {args[0]}")
    elif event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork", "os.system", "os.spawn"):
        events.append(f"{event} {args[0]!r}")
sys.addaudithook(hook)
import mfs
for info in pkgutil.walk_packages(mfs.__path__, "mfs."):
    if not info.name.endswith("__main__"):
        before = len(events)
        importlib.import_module(info.name)
        events[before:] = [f"{info.name}: {e}" for e in events[before:]]
print(json.dumps(events))
"""


def imports_with_side_effects(extra: str = "") -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE + extra, str(CONFIG)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_every_module_reads_no_config_file_and_starts_nothing() -> None:
    assert imports_with_side_effects() == []


def test_the_probe_sees_a_file_read_at_import() -> None:
    """The probe itself can fail: a read of config/ at import time is reported."""
    extra = "\nopen(sys.argv[1] + '/features.yaml').close()\nprint(json.dumps(events))\n"
    assert any("features.yaml" in e for e in imports_with_side_effects(extra))
