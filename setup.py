"""Build hook: the etcd front end's gRPC code is generated from its .proto files at build time.

Everything else about the package is in pyproject.toml. The generated modules
(zkpy/frontends/etcd/proto/*_pb2*.py) are not in git: `pip install .` writes them through
build_py below, and the Makefile's venv step runs ``generate_protos`` for the editable install.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROTO_DIR = Path("zkpy/frontends/etcd/proto")


def generate_protos(root: Path = Path(".")) -> None:
    """protoc (from grpcio-tools) over every .proto, message and service code beside it."""
    from grpc_tools import protoc  # a build requirement, never the server's

    protos = sorted(str(p.relative_to(root)) for p in (root / PROTO_DIR).glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    status = protoc.main(["grpc_tools.protoc", f"-I{root}", f"-I{include}",
                          f"--python_out={root}", f"--grpc_python_out={root}", *protos])
    if status != 0:
        raise SystemExit(f"protoc failed ({status}) on {protos}")


class BuildWithProtos(build_py):
    def run(self):
        generate_protos()
        super().run()


if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildWithProtos})
