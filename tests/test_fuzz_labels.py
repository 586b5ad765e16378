"""Property-based tests (Hypothesis) of the clip-id grammar: every string parses to the right
ClipInfo or raises ClipIdError naming it; nothing else (issue 11). Profiles: tests/conftest.py."""
from __future__ import annotations

import re

import pytest

hyp = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from blemore.labels import (  # noqa: E402
    BLEND_EMOTIONS,
    TARGETS,
    ClipIdError,
    format_clip_id,
    parse_clip_id,
    parse_clip_ids,
)

# other scripts' digits (Arabic-Indic, Devanagari, fullwidth, mathematical) that \d matches
UNICODE_DIGITS = "\u0660\u0661\u0662\u06f3\u0967\u096a\uff11\uff19\U0001d7cf"
_ASCII_ID = re.compile(
    r"(A[0-9]{1,9}_(ang|disg|fea|hap|sad)_int[1-4]_ver[0-9]{1,9}|A[0-9]{1,9}_neu_sit[1-4]_ver[0-9]{1,9}"
    r"|A[0-9]{1,9}_mix_(ang|disg|fea|hap|sad)_(ang|disg|fea|hap|sad)_(50_50|70_30|30_70)_ver[0-9]{1,9}|test_[0-9]+)")

numbers = st.one_of(st.integers(0, 10**12).map(str), st.text("0123456789", min_size=1, max_size=30),
                    st.text("0123456789" + UNICODE_DIGITS, min_size=1, max_size=6),
                    st.integers(4000, 6000).map(lambda n: "9" * n), st.just(""), st.just("-1"), st.just("1e3"))
words = st.sampled_from(["ang", "disg", "fea", "hap", "sad", "neu", "mix", "ANG", "joy", "", "int", "sit", "ver"])
seps = st.sampled_from(["_", "-", " ", "", "__", "\n", "\t", "/", ".", "\x00", "\u200b"])


@st.composite
def near_ids(draw):
    """Ids assembled from the grammar's parts with hostile numbers, words and separators."""
    parts = [draw(st.sampled_from(["A", "a", "", "test"])) + draw(numbers)]
    for _ in range(draw(st.integers(1, 6))):
        parts.append(draw(st.one_of(words, numbers, words.flatmap(lambda w: numbers.map(lambda n: w + n)))))
    sep = draw(seps)
    s = sep.join(parts)
    return s + draw(st.sampled_from(["", ".mov", ".mp4", ".tar.gz", "\n", " "]))


@st.composite
def valid_ids(draw):
    t = draw(st.sampled_from(TARGETS))
    return t, format_clip_id(draw(st.integers(0, 10**9 - 1)), t, level=draw(st.integers(1, 4)),
                             version=draw(st.integers(0, 10**9 - 1)))


def _check(s: str) -> None:
    try:
        info = parse_clip_id(s)
    except ClipIdError as e:
        assert len(e.bad) == 1 and e.bad[0][0] == str(s)
        assert repr(str(s))[:40] in str(e) or len(repr(str(s))) > 80, str(e)
        return
    # a right result: the id (without folders and extension) is ASCII and in the grammar
    cid = info.clip_id
    assert cid.isascii() and _ASCII_ID.fullmatch(cid), cid
    if info.kind != "test":
        assert format_clip_id(info.actor, info.label, level=info.level or 1, version=info.version) == cid
        assert info.label.set_index() >= 0


@given(st.text(max_size=60))
def test_fuzz_any_text(s):
    _check(s)


@given(near_ids())
def test_fuzz_near_misses(s):
    _check(s)


@given(st.text(alphabet="A_0123456789" + UNICODE_DIGITS + "".join(BLEND_EMOTIONS) + "intsverx", max_size=40))
def test_fuzz_grammar_alphabet(s):
    _check(s)


@given(valid_ids())
def test_fuzz_valid_ids_round_trip(tv):
    t, cid = tv
    info = parse_clip_id(cid + ".mov")
    assert info.label == t and info.clip_id == cid


@given(st.lists(st.one_of(near_ids(), valid_ids().map(lambda tv: tv[1])), max_size=8))
def test_fuzz_many_ids_list_every_bad_one(ids):
    bad = []
    for s in ids:
        try:
            parse_clip_id(s)
        except ClipIdError:
            bad.append(s)
    if bad:
        with pytest.raises(ClipIdError) as e:
            parse_clip_ids(ids)
        assert [b for b, _ in e.value.bad] == bad
    else:
        assert len(parse_clip_ids(ids)) == len(ids)
