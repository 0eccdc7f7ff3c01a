"""Jute's primitive types as construct classes.

Jute (ZooKeeper's IDL) has int (4 bytes), long (8 bytes), boolean (1 byte), ustring and buffer
(a 4-byte signed length then the bytes; -1 means null), vector<T> (a 4-byte count then the
elements; -1 means null) and nested records. All integers are big-endian and signed.

These classes are what record declarations are written in (see ``jute.records``). They parse
with construct's interpreter and, through ``_emitparse``/``_emitbuild``, with
``construct.compile()``; the hot-path codec in ``jute.codegen`` is derived from the same
declarations and is what the server uses.
"""

from __future__ import annotations

import struct

import construct as cs

from jute.errors import JuteDecodeError

Int = cs.Int32sb
Long = cs.Int64sb
Bool = cs.Flag

_I32 = struct.Struct(">i")


def _read_length(stream, path, what: str) -> int:
    raw = stream.read(4)
    if len(raw) != 4:
        raise cs.StreamError(f"truncated {what} length", path=path)
    return _I32.unpack(raw)[0]


def _read_exact(stream, count: int, path, what: str) -> bytes:
    if count < -1:
        raise cs.StreamError(f"negative {what} length {count}", path=path)
    data = stream.read(count)
    if len(data) != count:
        raise cs.StreamError(f"{what} of {count} bytes is truncated", path=path)
    return data


# The compiled parsers' length reader: a short read or a length below -1 is an error.
_EMIT_LENGTH = (
    "def parse_jute_length(io):\n"
    "    raw = io.read(4)\n"
    "    n = int.from_bytes(raw, 'big', signed=True)\n"
    "    if len(raw) != 4 or n < -1:\n"
    "        raise StreamError('bad length')\n"
    "    return n\n"
)


class _UString(cs.Construct):
    """A UTF-8 string with an int32 length; length -1 is null (None)."""

    def _parse(self, stream, context, path):
        length = _read_length(stream, path, "ustring")
        if length == -1:
            return None
        data = _read_exact(stream, length, path, "ustring")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise cs.StringError(f"invalid UTF-8: {exc}", path=path) from exc

    def _build(self, obj, stream, context, path):
        if obj is None:
            stream.write(_I32.pack(-1))
            return obj
        data = obj.encode("utf-8")
        stream.write(_I32.pack(len(data)))
        stream.write(data)
        return obj

    def _emitparse(self, code):
        code.append(_EMIT_LENGTH)
        code.append(
            "def parse_jute_ustring(io):\n"
            "    n = parse_jute_length(io)\n"
            "    if n == -1:\n"
            "        return None\n"
            "    data = io.read(n)\n"
            "    if len(data) != n:\n"
            "        raise StreamError('bad ustring')\n"
            "    try:\n"
            "        return data.decode('utf-8')\n"
            "    except UnicodeDecodeError:\n"
            "        raise StringError('invalid UTF-8')\n"
        )
        return "parse_jute_ustring(io)"


class _Buffer(cs.Construct):
    """Raw bytes with an int32 length; length -1 is null (None)."""

    def _parse(self, stream, context, path):
        length = _read_length(stream, path, "buffer")
        if length == -1:
            return None
        return _read_exact(stream, length, path, "buffer")

    def _build(self, obj, stream, context, path):
        if obj is None:
            stream.write(_I32.pack(-1))
            return obj
        stream.write(_I32.pack(len(obj)))
        stream.write(obj)
        return obj

    def _emitparse(self, code):
        code.append(_EMIT_LENGTH)
        code.append(
            "def parse_jute_buffer(io):\n"
            "    n = parse_jute_length(io)\n"
            "    if n == -1:\n"
            "        return None\n"
            "    data = io.read(n)\n"
            "    if len(data) != n:\n"
            "        raise StreamError('bad buffer')\n"
            "    return data\n"
        )
        return "parse_jute_buffer(io)"


class Vector(cs.Subconstruct):
    """vector<T>: an int32 count then the elements; count -1 is null (None)."""

    def _parse(self, stream, context, path):
        count = _read_length(stream, path, "vector")
        if count == -1:
            return None
        if count < 0:
            raise cs.StreamError(f"negative vector count {count}", path=path)
        return [self.subcon._parsereport(stream, context, path) for _ in range(count)]

    def _build(self, obj, stream, context, path):
        if obj is None:
            stream.write(_I32.pack(-1))
            return obj
        stream.write(_I32.pack(len(obj)))
        for item in obj:
            self.subcon._build(item, stream, context, path)
        return obj

    def _emitparse(self, code):
        element = self.subcon._compileparse(code)
        code.append(_EMIT_LENGTH)
        return (
            f"(lambda n: None if n == -1 else ListContainer(({element}) for _ in range(n)))"
            f"(parse_jute_length(io))"
        )


UString = _UString()
Buffer = _Buffer()


def record_struct(*fields: cs.Subconstruct) -> cs.Struct:
    """A Jute record: its fields in wire order, each ``"name" / type``."""
    return cs.Struct(*fields)


__all__ = ["Int", "Long", "Bool", "UString", "Buffer", "Vector", "record_struct", "JuteDecodeError"]


class Trailing(cs.Subconstruct):
    """A last field that older peers omit (ConnectRequest/Response's readOnly flag).

    Parsing at the end of the input gives None; building None writes nothing.
    """

    def _parse(self, stream, context, path):
        position = stream.tell()
        if stream.read(1) == b"":
            return None
        stream.seek(position)
        return self.subcon._parsereport(stream, context, path)

    def _build(self, obj, stream, context, path):
        if obj is None:
            return obj
        return self.subcon._build(obj, stream, context, path)
