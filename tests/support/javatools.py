"""Java helpers for the compatibility tests: find Debian's jars and compile small Java programs.

The Curator scenarios (tests/compat/java/*.java) are compiled with ``javac`` against the jars
Debian installs under /usr/share/java. Jars there carry ``Class-Path`` manifests naming their own
dependencies, so :func:`resolve_classpath` expands those transitively. :func:`compile_java` caches
the classes under ``build/java/<hash>``, where the hash covers the sources, the classpath and the
javac version: a second run (or a second test) reuses them, and a change to a source recompiles.

A missing tool or jar raises ``RuntimeError`` whose message says what to install; the tests let it
fail rather than skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from tests.support.servers import REPO_ROOT

JAVA_DIR = Path("/usr/share/java")
BUILD_DIR = REPO_ROOT / "build" / "java"
INSTALL_HINT = ("run `make reference` (apt-get install -y zookeeper zookeeper-bin "
                "libcurator-client-java libcurator-framework-java libcurator-recipes-java "
                "libcurator-discovery-java) and make sure a JDK 17 (javac) is installed "
                "(apt-get install -y openjdk-17-jdk-headless)")

# What the Curator scenarios need; their manifests bring ZooKeeper, Guava, Jackson, SLF4J, Netty.
CURATOR_JARS = ("curator-client.jar", "curator-framework.jar", "curator-recipes.jar",
                "curator-x-discovery.jar")
# Optional: silences SLF4J's "no binding" warnings when present (it comes with libslf4j-java).
OPTIONAL_JARS = ("slf4j-nop.jar",)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"`{name}` is not on PATH: {INSTALL_HINT}")
    return path


def manifest_class_path(jar: Path) -> list[Path]:
    """The jars named by a jar's ``Class-Path`` manifest attribute (absolute or jar-relative)."""
    try:
        with zipfile.ZipFile(jar) as archive:
            try:
                text = archive.read("META-INF/MANIFEST.MF").decode("utf-8", errors="replace")
            except KeyError:
                return []
    except (OSError, zipfile.BadZipFile):
        return []
    # Manifest lines are wrapped at 72 bytes; a continuation line starts with one space.
    logical: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith(" ") and logical:
            logical[-1] += line[1:]
        else:
            logical.append(line)
    entries: list[Path] = []
    for line in logical:
        if line.lower().startswith("class-path:"):
            for item in line.split(":", 1)[1].split():
                if item.startswith("file:"):
                    item = item[len("file:"):]
                path = Path(item)
                entries.append(path if path.is_absolute() else jar.parent / path)
    return entries


def resolve_classpath(jars: tuple[str, ...] | list[str], optional: tuple[str, ...] = OPTIONAL_JARS,
                      java_dir: Path = JAVA_DIR) -> list[str]:
    """Jars (names under ``java_dir`` or paths) plus, transitively, their manifest Class-Paths.

    A named jar that is missing is an error; a manifest entry that is missing is dropped, as the
    JVM itself would do (Debian manifests sometimes name optional jars).
    """
    missing = [name for name in jars if not (java_dir / name).exists() and not Path(name).exists()]
    if missing:
        raise RuntimeError(f"missing jars {missing} under {java_dir}: {INSTALL_HINT}")
    ordered: list[str] = []
    seen: set[str] = set()
    pending = [Path(name) if Path(name).is_absolute() else java_dir / name for name in jars]
    pending += [java_dir / name for name in optional if (java_dir / name).exists()]
    while pending:
        jar = pending.pop(0)
        key = os.path.realpath(jar)
        if key in seen or not jar.exists():
            continue
        seen.add(key)
        ordered.append(str(jar))
        pending.extend(manifest_class_path(jar))
    return ordered


def curator_classpath() -> list[str]:
    return resolve_classpath(CURATOR_JARS)


def javac_version() -> str:
    javac = require_tool("javac")
    result = subprocess.run([javac, "-version"], capture_output=True, text=True, timeout=60)
    return (result.stdout + result.stderr).strip()


def compile_java(sources: list[Path], classpath: list[str], build_dir: Path = BUILD_DIR) -> Path:
    """Compile ``sources`` into a cached directory and return it (for use on the classpath).

    The cache key hashes every source file, the classpath (jar paths and sizes) and the javac
    version. Concurrent callers (pytest-xdist) serialise on a lock file; a finished build is
    marked by a ``.complete`` file, so an interrupted one is redone.
    """
    require_tool("java")
    digest = hashlib.sha256()
    digest.update(javac_version().encode())
    for jar in classpath:
        digest.update(jar.encode())
        try:
            digest.update(str(os.path.getsize(jar)).encode())
        except OSError:
            pass
    for source in sorted(Path(s) for s in sources):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    out_dir = Path(build_dir) / digest.hexdigest()[:16]
    marker = out_dir / ".complete"
    if marker.exists():
        return out_dir
    Path(build_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(build_dir) / (out_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return out_dir
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        command = [require_tool("javac"), "-nowarn", "-encoding", "UTF-8", "-d", str(out_dir),
                   "-cp", ":".join(classpath), *[str(s) for s in sources]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise RuntimeError(f"javac failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        marker.write_text(" ".join(command))
    return out_dir


def java_command(main_class: str, classpath: list[str], args: list[str],
                 jvm_options: list[str] | None = None) -> list[str]:
    return [require_tool("java"), *(jvm_options or []), "-cp", ":".join(classpath), main_class, *args]
