"""The architecture, checked from the import graph (every import, module-level or deferred):

* no import circle among jute's and zkpy's modules;
* no import runs back up a layer (LAYERS, lowest first);
* jute imports nothing of zkpy;
* the sans-IO layers (state, the replica core, replication and the front ends) import none of
  asyncio, uvloop, sockets, time, threads or RocksDB: only the runtime, storage and
  command-line edges do. Front ends sit above replication, so replication never imports one.

docs/architecture.md draws the same graph (``make architecture`` regenerates it).
"""

from __future__ import annotations

from pathlib import Path

from tests.support import importgraph

REPO_ROOT = Path(__file__).resolve().parents[2]

SANS_IO_LAYERS = ("wire", "state", "replica", "replication", "frontends")
IO_MODULES = frozenset(("asyncio", "uvloop", "socket", "time", "threading", "selectors",
                        "rocksdict"))


def graph() -> importgraph.ImportGraph:
    return importgraph.build(REPO_ROOT)


def test_no_import_circle():
    cycles = graph().cycles()
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_runs_up_a_layer():
    found = graph()
    upward = [f"{module} ({importgraph.layer_of(module)}) imports {target} "
              f"({importgraph.layer_of(target)})"
              for module, target in found.edges()
              if importgraph.rank(target) > importgraph.rank(module)]
    assert not upward, "\n".join(upward)


def test_every_module_has_a_layer():
    assert [m for m in graph().modules if importgraph.layer_of(m) is None] == []


def test_jute_imports_nothing_of_zkpy():
    assert [(m, t) for m, t in graph().edges() if m.startswith("jute") and t.startswith("zkpy")] == []


def test_sans_io_layers_import_no_io():
    found = graph()
    offending = sorted((module, external) for module, external in found.external_edges()
                       if importgraph.layer_of(module) in SANS_IO_LAYERS
                       and external.split(".")[0] in IO_MODULES)
    assert offending == [], offending


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path):
    """The rules above are only as good as the graph: a planted circle and an upward import
    must be found."""
    package = tmp_path / "zkpy"
    (package / "tree").mkdir(parents=True)
    (package / "runtime").mkdir()
    (tmp_path / "jute").mkdir()
    for path in (package / "__init__.py", package / "tree" / "__init__.py",
                 package / "runtime" / "__init__.py", tmp_path / "jute" / "__init__.py"):
        path.write_text("")
    (package / "tree" / "a.py").write_text("from zkpy.tree import b\n")
    (package / "tree" / "b.py").write_text("def f():\n    from zkpy.tree import a\n"
                                           "    import zkpy.runtime.loop\n")
    (package / "runtime" / "loop.py").write_text("import asyncio\n")
    planted = importgraph.build(tmp_path)
    assert planted.cycles() == [["zkpy.tree.a", "zkpy.tree.b"]]
    assert ("zkpy.tree.b", "zkpy.runtime.loop") in set(planted.edges())
    assert ("zkpy.runtime.loop", "asyncio") in set(planted.external_edges())
