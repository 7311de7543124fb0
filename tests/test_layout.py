"""The package layout's rules, read from the source: imports only, nothing runs.

- ``engines`` never imports ``gateway``;
- the API faces under ``gateway/apis/`` never import each other (what they share
  is in ``gateway/apis/_common.py``);
- the modules of ``gateway`` and ``engines`` import each other without cycles, at
  load time or for the type checker (``if TYPE_CHECKING`` imports count; imports
  inside functions, deferred on purpose, do not, though the rules above count them).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path, *, deferred: bool = True) -> set[str]:
    """The modules ``path`` imports, resolved to absolute names.

    ``deferred``: with the imports inside functions.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if not deferred and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            # `from . import tracing` imports a module, not a name.
            found.update(f"{name}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph(*, deferred: bool = True) -> dict[str, set[str]]:
    files = [p for top in ("engines", "gateway") for p in (ROOT / top).rglob("*.py")]
    modules = {_module(p): p for p in files}
    return {
        name: {m for m in _runtime_imports(path, deferred=deferred) if m in modules and m != name}
        for name, path in modules.items()
    }


def test_engines_never_import_the_gateway() -> None:
    offenders = {
        name: sorted(m for m in deps if m.startswith("gateway"))
        for name, deps in _graph().items()
        if name.startswith("engines")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_faces_never_import_each_other() -> None:
    def face(module: str) -> str | None:
        parts = module.split(".")
        if parts[:2] == ["gateway", "apis"] and len(parts) > 2 and parts[2] != "_common":
            return parts[2]
        return None

    crossings = sorted(
        (name, dep)
        for name, deps in _graph().items()
        for dep in deps
        if face(name) and face(dep) and face(name) != face(dep)
    )
    assert crossings == []


def test_no_import_cycles() -> None:
    graph = _graph(deferred=False)

    # A package imports its own modules through its __init__; only cycles between
    # modules that are not each other's package count.
    def edges(name: str) -> set[str]:
        return {d for d in graph[name] if not d.startswith(name + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def walk(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(edges(name)):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                walk(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    assert cycles == []
