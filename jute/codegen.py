"""Fast codecs derived from the construct declarations.

``make_record(name, struct)`` turns one declaration into a NamedTuple class with two extra
static methods:

* ``decode_from(buf, offset) -> (record, new_offset)`` reads one record from ``bytes``;
* ``encode(record) -> bytes`` writes it.

The generated functions are straight-line Python over precompiled ``struct.Struct`` objects:
runs of fixed-width fields (including nested records made only of fixed-width fields, such as
Stat) are read and written with one ``unpack_from``/``pack`` call. Every length read from the
wire is checked against the bytes that remain before anything is sliced or allocated, so a
hostile length can only produce ``JuteDecodeError``.

The construct declaration stays attached as ``cls.construct`` and is the reference the tests
compare the generated codec against.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from typing import Any, Callable

import construct as cs

from jute.errors import JuteDecodeError
from jute.primitives import Buffer, UString, Vector, Trailing

_FIXED_FORMATS = {">l": "i", ">q": "q"}
_RECORDS_BY_STRUCT: dict[int, type] = {}


class _Field:
    """One field of a declaration, classified for code generation."""

    __slots__ = ("name", "kind", "fmt", "element", "record")

    def __init__(self, name: str, kind: str, fmt: str = "", element: "_Field | None" = None,
                 record: type | None = None) -> None:
        self.name = name
        self.kind = kind  # fixed | ustring | buffer | vector | record | trailing
        self.fmt = fmt  # struct format of a fixed field or a fixed record
        self.element = element
        self.record = record


def _classify(name: str, subcon: cs.Construct) -> _Field:
    if isinstance(subcon, cs.FormatField):
        return _Field(name, "fixed", fmt=_FIXED_FORMATS[subcon.fmtstr])
    if subcon is cs.Flag:
        return _Field(name, "fixed", fmt="?")
    if subcon is UString:
        return _Field(name, "ustring")
    if subcon is Buffer:
        return _Field(name, "buffer")
    if isinstance(subcon, Vector):
        return _Field(name, "vector", element=_classify(name + "_item", subcon.subcon))
    if isinstance(subcon, Trailing):
        return _Field(name, "trailing", element=_classify(name, subcon.subcon))
    record = _RECORDS_BY_STRUCT.get(id(subcon))
    if record is None:
        raise TypeError(f"field {name}: {subcon!r} is not a Jute type or a declared record")
    if record.fixed_format:
        return _Field(name, "fixed", fmt=record.fixed_format, record=record)
    return _Field(name, "record", record=record)


class _Emitter:
    """Accumulates generated source and the globals it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "JuteDecodeError": JuteDecodeError,
            "_I": struct.Struct(">i"),
            "_NULL": struct.pack(">i", -1),
            "_new": tuple.__new__,
            "struct_error": struct.error,
        }
        self._counter = 0

    def name(self, prefix: str, value: Any) -> str:
        self._counter += 1
        key = f"{prefix}{self._counter}"
        self.env[key] = value
        return key

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _fixed_runs(fields: list[_Field]) -> list[list[_Field] | _Field]:
    """Group consecutive fixed-width fields so each group is one struct call."""
    groups: list[list[_Field] | _Field] = []
    for field in fields:
        if field.kind == "fixed":
            if groups and isinstance(groups[-1], list):
                groups[-1].append(field)
            else:
                groups.append([field])
        else:
            groups.append(field)
    return groups


# ---------------------------------------------------------------------------------------------
# decoding


def _emit_decode_value(em: _Emitter, indent: int, field: _Field, target: str) -> None:
    """Emit statements that read one non-fixed value at ``off`` into ``target``."""
    if field.kind in ("ustring", "buffer"):
        em.add(indent, "n = _I.unpack_from(buf, off)[0]; off += 4")
        em.add(indent, "if n < 0:")
        em.add(indent + 1, "if n != -1: raise JuteDecodeError('negative length %d' % n)")
        em.add(indent + 1, f"{target} = None")
        em.add(indent, "else:")
        em.add(indent + 1, "end = off + n")
        em.add(indent + 1, "if end > size: raise JuteDecodeError('length %d past end of record' % n)")
        if field.kind == "ustring":
            em.add(indent + 1, f"{target} = buf[off:end].decode(); off = end")
        else:
            em.add(indent + 1, f"{target} = buf[off:end]; off = end")
    elif field.kind == "vector":
        em.add(indent, "count = _I.unpack_from(buf, off)[0]; off += 4")
        em.add(indent, "if count < 0:")
        em.add(indent + 1, "if count != -1: raise JuteDecodeError('negative count %d' % count)")
        em.add(indent + 1, f"{target} = None")
        em.add(indent, "else:")
        em.add(indent + 1, "if count > size - off: raise JuteDecodeError('count %d past end of record' % count)")
        items = f"items{indent}"
        em.add(indent + 1, f"{items} = []")
        em.add(indent + 1, "for _ in range(count):")
        _emit_decode_single(em, indent + 2, field.element, "item")
        em.add(indent + 2, f"{items}.append(item)")
        em.add(indent + 1, f"{target} = {items}")
    elif field.kind == "record":
        fn = em.name("_dec", field.record.decode_from)
        em.add(indent, f"{target}, off = {fn}(buf, off)")
    elif field.kind == "trailing":
        em.add(indent, "if off >= size:")
        em.add(indent + 1, f"{target} = None")
        em.add(indent, "else:")
        _emit_decode_single(em, indent + 1, field.element, target)
    else:  # pragma: no cover - the classifier admits nothing else
        raise AssertionError(field.kind)


def _emit_decode_single(em: _Emitter, indent: int, field: _Field, target: str) -> None:
    if field.kind == "fixed":
        _emit_decode_fixed(em, indent, [field], [target])
    else:
        _emit_decode_value(em, indent, field, target)


def _emit_decode_fixed(em: _Emitter, indent: int, run: list[_Field], targets: list[str]) -> None:
    fmt = ">" + "".join(f.fmt for f in run)
    packer = struct.Struct(fmt)
    codec = em.name("_S", packer)
    if len(run) == 1 and run[0].record is None:
        em.add(indent, f"{targets[0]} = {codec}.unpack_from(buf, off)[0]; off += {packer.size}")
        return
    em.add(indent, f"vals = {codec}.unpack_from(buf, off); off += {packer.size}")
    position = 0
    for field, target in zip(run, targets):
        if field.record is None:
            em.add(indent, f"{target} = vals[{position}]")
            position += 1
        else:
            width = len(field.record._fields)
            cls = em.name("_C", field.record)
            em.add(indent, f"{target} = _new({cls}, vals[{position}:{position + width}])")
            position += width


def _build_decoder(cls_name: str, fields: list[_Field], em: _Emitter) -> str:
    fn = f"decode_{cls_name}"
    em.add(0, f"def {fn}(buf, off=0):")
    em.add(1, "size = len(buf)")
    em.add(1, "try:")
    targets = [f"f_{f.name}" for f in fields]
    index = 0
    for group in _fixed_runs(fields):
        if isinstance(group, list):
            _emit_decode_fixed(em, 2, group, targets[index:index + len(group)])
            index += len(group)
        else:
            _emit_decode_value(em, 2, group, targets[index])
            index += 1
    em.add(1, "except struct_error as exc:")
    em.add(2, f"raise JuteDecodeError('truncated {cls_name}') from exc")
    em.add(1, "except UnicodeDecodeError as exc:")
    em.add(2, f"raise JuteDecodeError('invalid UTF-8 in {cls_name}') from exc")
    tuple_items = ", ".join(targets) + ("," if len(targets) == 1 else "")
    em.add(1, f"return _new(_CLS, ({tuple_items})), off")
    return fn


# ---------------------------------------------------------------------------------------------
# encoding


def _encode_expr(em: _Emitter, field: _Field, value: str) -> str:
    """An expression that evaluates to the bytes of one non-fixed value."""
    if field.kind == "ustring":
        return f"(_NULL if {value} is None else (_I.pack(len(b := {value}.encode())) + b))"
    if field.kind == "buffer":
        return f"(_NULL if {value} is None else (_I.pack(len({value})) + {value}))"
    if field.kind == "record":
        fn = em.name("_enc", field.record.encode)
        return f"{fn}({value})"
    if field.kind == "vector":
        element = field.element
        if element.kind == "fixed":
            codec = em.name("_S", struct.Struct(">" + element.fmt))
            star = "*" if element.record is not None else ""
            item = f"{codec}.pack({star}e)"
        else:
            item = _encode_expr(em, element, "e")
        return (f"(_NULL if {value} is None else "
                f"(_I.pack(len({value})) + b''.join([{item} for e in {value}])))")
    if field.kind == "trailing":
        return f"(b'' if {value} is None else {_encode_single(em, field.element, value)})"
    raise AssertionError(field.kind)  # pragma: no cover


def _encode_single(em: _Emitter, field: _Field, value: str) -> str:
    if field.kind == "fixed":
        codec = em.name("_S", struct.Struct(">" + field.fmt))
        star = "*" if field.record is not None else ""
        return f"{codec}.pack({star}{value})"
    return _encode_expr(em, field, value)


def _build_encoder(cls_name: str, fields: list[_Field], em: _Emitter) -> str:
    fn = f"encode_{cls_name}"
    em.add(0, f"def {fn}(r):")
    names = [f"f_{f.name}" for f in fields]
    em.add(1, ", ".join(names) + (", = r" if len(names) == 1 else " = r"))
    parts = []
    index = 0
    for group in _fixed_runs(fields):
        if isinstance(group, list):
            codec = em.name("_S", struct.Struct(">" + "".join(f.fmt for f in group)))
            args = []
            for field in group:
                star = "*" if field.record is not None else ""
                args.append(star + names[index])
                index += 1
            parts.append(f"{codec}.pack({', '.join(args)})")
        else:
            parts.append(_encode_expr(em, group, names[index]))
            index += 1
    em.add(1, "return " + (" + ".join(parts) if parts else "b''"))
    return fn


# ---------------------------------------------------------------------------------------------


def make_record(name: str, declaration: cs.Struct) -> type:
    """Build the record class for one declaration and register it for nesting."""
    fields = [_classify(sub.name, sub.subcon) for sub in declaration.subcons]
    base = namedtuple(name, [f.name for f in fields])
    cls = type(name, (base,), {"__slots__": ()})
    fixed = all(f.kind == "fixed" for f in fields)
    cls.fixed_format = "".join(f.fmt for f in fields) if fixed else ""
    cls.construct = declaration

    em = _Emitter()
    em.env["_CLS"] = cls
    decoder = _build_decoder(name, fields, em)
    em.add(0, "")
    encoder = _build_encoder(name, fields, em)
    source = "\n".join(em.lines) + "\n"
    exec(compile(source, f"<jute {name}>", "exec"), em.env)  # noqa: S102 - generated codec
    cls.decode_from = staticmethod(em.env[decoder])
    cls.encode = staticmethod(em.env[encoder])
    cls.decode = staticmethod(_whole_decoder(name, em.env[decoder]))
    cls.codec_source = source
    _RECORDS_BY_STRUCT[id(declaration)] = cls
    return cls


def _whole_decoder(name: str, decode_from: Callable) -> Callable:
    def decode(buf: bytes):
        """Decode a record that must fill ``buf`` exactly."""
        record, end = decode_from(buf, 0)
        if end != len(buf):
            raise JuteDecodeError(f"{len(buf) - end} trailing bytes after {name}")
        return record

    return decode
