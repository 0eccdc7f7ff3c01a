"""Path validation: the regular-expression fast path never accepts what the rules reject."""

from hypothesis import given, settings
from hypothesis import strategies as st

from zkpy.tree.paths import path_error, path_error_by_rules

ALPHABET = st.sampled_from(["/", ".", "a", "b", "\x00", "\x1f", "\x7f", "\x85", "\x9f", "\xa0",
                            "\ud7ff", "\ue000", "\uf8ff", "\uf900", "\ufff0", "é", "-", " "])


@settings(max_examples=3000)
@given(st.lists(ALPHABET, max_size=12).map("".join))
def test_fast_path_agrees_with_the_rules(path):
    assert (path_error(path) is None) == (path_error_by_rules(path) is None)


def test_examples():
    assert path_error("/a/b") is None
    assert path_error("/") is None
    for bad in ("a", "", "/a/", "/a//b", "/a/./b", "/a/..", "/\x00", "/\ue000"):
        assert path_error(bad) is not None, bad
    assert path_error("/a/", sequential=True) is None
