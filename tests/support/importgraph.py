"""The import graph of jute and zkpy, read from the source (nothing is imported), with the
layers the architecture puts every module in.

Every import counts, module-level or inside a function: a deferred import is still a
dependency. ``from package import name`` is an edge to ``package.name`` when that is a module,
else to the package. ``python -m tests.support.importgraph --write docs/architecture.md``
rewrites the generated picture in that page (``make architecture``).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from typing import NamedTuple

# Lowest first: a module may import its own layer and the layers below it, never above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("wire", ("jute",)),
    ("state", ("zkpy.tree", "zkpy.sessions", "zkpy.auth")),
    ("storage", ("zkpy.storage",)),
    ("replica", ("zkpy.replica",)),
    ("replication", ("zkpy.zab", "zkpy.ensemble")),
    ("frontends", ("zkpy.frontends",)),
    ("configuration", ("zkpy.config",)),
    ("runtime", ("zkpy.runtime", "zkpy.logging", "zkpy.status")),
    ("commands", ("zkpy.tools", "zkpy.cli", "zkpy.__main__")),
)
PACKAGE_ROOTS = ("jute", "zkpy")


def layer_of(module: str) -> str | None:
    if module == "zkpy":
        return "wire"  # the bare package: its __init__ only names the version
    for name, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return None


def rank(module: str) -> int:
    layer = layer_of(module)
    return [name for name, _ in LAYERS].index(layer) if layer else len(LAYERS)


class ImportGraph(NamedTuple):
    modules: tuple[str, ...]
    internal: dict        # module -> set of modules of jute/zkpy it imports
    external: dict        # module -> set of other top-level imports (asyncio, rocksdict, ...)

    def edges(self) -> list[tuple[str, str]]:
        return sorted((m, t) for m, targets in self.internal.items() for t in targets)

    def external_edges(self) -> list[tuple[str, str]]:
        return sorted((m, t) for m, targets in self.external.items() for t in targets)

    def cycles(self) -> list[list[str]]:
        """Every strongly connected component of more than one module, sorted."""
        return sorted(sorted(c) for c in _strongly_connected(self.internal) if len(c) > 1)


def build(root: Path) -> ImportGraph:
    files = _module_files(root)
    internal: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for module, path in files.items():
        targets, others = _imports_of(module, path, files)
        internal[module] = targets - {module}
        external[module] = others
    return ImportGraph(tuple(sorted(files)), internal, external)


def _module_files(root: Path) -> dict[str, Path]:
    files = {}
    for package in PACKAGE_ROOTS:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


def _imports_of(module: str, path: Path, files: dict) -> tuple[set[str], set[str]]:
    internal: set[str] = set()
    external: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                _add(alias.name, files, internal, external)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.module, node.level)
            if base is None:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                _add(submodule if submodule in files else base, files, internal, external)
    return internal, external


def _absolute(module: str, is_package: bool, name: str | None, level: int) -> str | None:
    if level == 0:
        return name
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[:len(parts) - level + 1]
    return ".".join(parts + ([name] if name else [])) or None


def _add(name: str, files: dict, internal: set, external: set) -> None:
    if name.split(".")[0] in PACKAGE_ROOTS:
        while name not in files and "." in name:
            name = name.rsplit(".", 1)[0]
        internal.add(name)
    elif name != "__future__":
        external.add(name.split(".")[0])


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (the graph is small, but recursion limits are not)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


# -- the picture in docs/architecture.md ---------------------------------------------------------

BEGIN = "<!-- import graph: generated by `make architecture`, do not edit -->"
END = "<!-- end of the generated import graph -->"


def package_of(module: str) -> str:
    """The unit the picture draws: a subpackage of zkpy, a top module, or jute."""
    if module.startswith("jute"):
        return "jute"
    parts = module.split(".")
    return ".".join(parts[:2])


def mermaid(graph: ImportGraph) -> str:
    """A Mermaid flowchart: one box per layer (top: commands), packages inside, package-level
    imports as arrows."""
    packages: dict[str, set[str]] = {}
    for module in graph.modules:
        packages.setdefault(layer_of(module) or "unplaced", set()).add(package_of(module))
    lines = ["```mermaid", "flowchart TB"]
    for layer, _ in reversed(LAYERS):
        members = sorted(packages.get(layer, ()))
        if not members:
            continue
        lines.append(f"  subgraph {layer}")
        lines.extend(f"    {_node_id(p)}[\"{p}\"]" for p in members)
        lines.append("  end")
    arrows = sorted({(package_of(m), package_of(t)) for m, t in graph.edges()
                     if package_of(m) != package_of(t) and package_of(t) != "zkpy"})
    lines.extend(f"  {_node_id(a)} --> {_node_id(b)}" for a, b in arrows)
    lines.append("```")
    return "\n".join(lines)


def _node_id(package: str) -> str:
    return re.sub(r"\W", "_", package)


def write_picture(page: Path, graph: ImportGraph) -> None:
    text = page.read_text()
    start, end = text.index(BEGIN), text.index(END)
    page.write_text(text[:start + len(BEGIN)] + "\n" + mermaid(graph) + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="the page whose generated graph to rewrite")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    graph = build(root)
    if args.write:
        write_picture(args.write, graph)
    else:
        print(mermaid(graph))
    return 0


if __name__ == "__main__":
    sys.exit(main())
