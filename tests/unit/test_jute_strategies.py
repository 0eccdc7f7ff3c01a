"""Hypothesis strategies for Jute records, derived from the construct declarations.

``record_strategy(Rec)`` walks ``Rec.construct`` field by field (Int, Long, Bool, UString,
Buffer, Vector, nested record, Trailing) and builds values of ``Rec``; nothing here is written
per record, so a record added to ``jute.records`` is covered as soon as it is declared. The other
test modules import from here; the tests in this file check the walker itself.
"""

from __future__ import annotations

import construct as cs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from jute import records as r
from jute.opcodes import MULTI_OP_RECORDS, MultiOp, MultiResult, _RESULT_RECORDS
from jute.constants import OpCode
from jute.primitives import Buffer, Trailing, UString, Vector

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
# Any Unicode scalar value (no lone surrogates, which UTF-8 cannot carry); paths are short.
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
BYTES = st.binary(max_size=24)
MAX_VECTOR = 4

RECORD_BY_STRUCT = {id(rec.construct): rec for rec in r.ALL_RECORDS}

# Moderate budgets: every record gets its own test, so the files stay well under a minute.
FAST = settings(max_examples=40, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def field_kind(subcon: cs.Construct) -> str:
    """What a declared field is: int, long, bool, ustring, buffer, vector, record, trailing."""
    if isinstance(subcon, cs.FormatField):
        return {">l": "int", ">q": "long"}[subcon.fmtstr]
    if subcon is cs.Flag:
        return "bool"
    if subcon is UString:
        return "ustring"
    if subcon is Buffer:
        return "buffer"
    if isinstance(subcon, Vector):
        return "vector"
    if isinstance(subcon, Trailing):
        return "trailing"
    if id(subcon) in RECORD_BY_STRUCT:
        return "record"
    raise TypeError(f"not a Jute type: {subcon!r}")


def fields_of(rec: type) -> list[tuple[str, cs.Construct]]:
    return [(sub.name, sub.subcon) for sub in rec.construct.subcons]


def value_strategy(subcon: cs.Construct) -> st.SearchStrategy:
    """Values one declared field can hold."""
    kind = field_kind(subcon)
    if kind == "int":
        return INT32
    if kind == "long":
        return INT64
    if kind == "bool":
        return st.booleans()
    if kind == "ustring":
        return st.none() | TEXT
    if kind == "buffer":
        return st.none() | BYTES
    if kind == "vector":
        return st.none() | st.lists(value_strategy(subcon.subcon), max_size=MAX_VECTOR)
    if kind == "trailing":
        return st.none() | value_strategy(subcon.subcon)
    return record_strategy(RECORD_BY_STRUCT[id(subcon)])


_STRATEGIES: dict[type, st.SearchStrategy] = {}


def record_strategy(rec: type) -> st.SearchStrategy:
    """Records of type ``rec``, every field drawn from its declaration."""
    if rec not in _STRATEGIES:
        _STRATEGIES[rec] = st.builds(rec, *[value_strategy(sub) for _, sub in fields_of(rec)])
    return _STRATEGIES[rec]


def minimal_value(subcon: cs.Construct):
    """The smallest value of a field: 0, False, "", b"", [], a minimal record, or None."""
    kind = field_kind(subcon)
    if kind in ("int", "long"):
        return 0
    if kind == "bool":
        return False
    if kind == "ustring":
        return ""
    if kind == "buffer":
        return b""
    if kind == "vector":
        return []
    if kind == "trailing":
        return None
    return minimal_record(RECORD_BY_STRUCT[id(subcon)])


def minimal_record(rec: type):
    return rec(*[minimal_value(sub) for _, sub in fields_of(rec)])


def to_plain(value):
    """Records and construct Containers alike as plain dicts and lists (construct's ``_io``
    bookkeeping dropped), so the generated codec and construct's interpreter can be compared."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {name: to_plain(item) for name, item in zip(value._fields, value)}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value


# -- multi ------------------------------------------------------------------------------------


def multi_op_strategy() -> st.SearchStrategy:
    return st.sampled_from(sorted(MULTI_OP_RECORDS)).flatmap(
        lambda op: record_strategy(MULTI_OP_RECORDS[op]).map(lambda req: MultiOp(op, req)))


def multi_result_strategy() -> st.SearchStrategy:
    def for_type(op):
        record = _RESULT_RECORDS[op]
        if op == OpCode.error:
            return INT32.map(lambda err: MultiResult(op, err, r.ErrorResponse(err)))
        body = st.none() if record is None else record_strategy(record)
        return body.map(lambda resp: MultiResult(op, 0, resp))

    return st.sampled_from(sorted(_RESULT_RECORDS)).flatmap(for_type)


MULTI_REQUESTS = st.lists(multi_op_strategy(), max_size=5)
MULTI_RESPONSES = st.lists(multi_result_strategy(), max_size=5)


# -- tests of the walker ------------------------------------------------------------------------


def test_every_record_has_a_strategy_and_a_minimal_value() -> None:
    assert len(r.ALL_RECORDS) > 50
    for rec in r.ALL_RECORDS:
        record_strategy(rec)
        value = minimal_record(rec)
        assert rec.decode(rec.encode(value)) == value


def test_every_field_kind_is_declared_somewhere() -> None:
    kinds = {field_kind(sub) for rec in r.ALL_RECORDS for _, sub in fields_of(rec)}
    assert kinds == {"int", "long", "bool", "ustring", "buffer", "vector", "record", "trailing"}
