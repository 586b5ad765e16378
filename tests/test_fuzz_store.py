"""Property-based tests (Hypothesis) of the feature-store reader and the metadata reader: a
right result or a BlemoreError naming the input, nothing else (issue 11). Profiles:
tests/conftest.py."""
from __future__ import annotations

import io

import numpy as np
import pytest

hyp = pytest.importorskip("hypothesis")
from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from blemore.dataset import DatasetError, load_metadata  # noqa: E402
from blemore.errors import BlemoreError  # noqa: E402
from blemore.labels import TARGETS, format_clip_id  # noqa: E402
from blemore.store import StoreError, open_source  # noqa: E402

dtypes = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes(),
                   hnp.complex_number_dtypes(), hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3),
                   hnp.datetime64_dtypes())
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
                    elements=None)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


@st.composite
def npy_files(draw):
    """Bytes of a clip file: a real array of any dtype/shape, possibly truncated or with junk
    appended, an object array, or random bytes."""
    kind = draw(st.sampled_from(["array", "array", "truncated", "junk", "object", "random", "empty"]))
    if kind == "random":
        return draw(st.binary(max_size=300)), None
    if kind == "empty":
        return b"", None
    if kind == "object":
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        return buf.getvalue(), None
    a = draw(arrays)
    raw = _npy_bytes(a)
    if kind == "truncated":
        return raw[: draw(st.integers(0, max(len(raw) - 1, 0)))], None
    if kind == "junk":
        return raw + draw(st.binary(min_size=1, max_size=20)), a
    return raw, a


@given(npy_files())
def test_fuzz_store_load(tmp_path_factory, f):
    raw, arr = f
    d = tmp_path_factory.mktemp("s")
    (d / "A1_ang_int1_ver1.npy").write_bytes(raw)
    np.save(d / "A2_hap_int1_ver1.npy", np.ones((2, 3), np.float32))  # a good clip beside it
    src = open_source(d)
    assert src.dim == 3 or arr is not None  # one bad file cannot make the good one unreadable
    try:
        x = src.load("A1_ang_int1_ver1")
    except StoreError as e:
        assert "A1_ang_int1_ver1.npy" in str(e), str(e)
        return
    # a right result: a (T, D) float32 copy of a real-number array with T, D >= 1
    assert arr is not None and x.dtype == np.float32 and x.ndim == 2 and x.shape[0] >= 1 and x.shape[1] >= 1
    assert arr.dtype.kind in "biuf" and arr.ndim in (1, 2)
    np.testing.assert_array_equal(x, np.asarray(arr, dtype=np.float32).reshape(x.shape))


# -- metadata ------------------------------------------------------------------------------------
UNICODE_DIGITS = "\u0660\u0661\u06f3\u0967\uff11"
meta_cols = st.sampled_from(["filename", "emotion_1", "emotion_2", "emotion_1_salience", "emotion_2_salience",
                             "fold", "actor", "gender", "mix", "label", "Filename", "\ufefffilename", "junk", ""])
meta_cells = st.one_of(
    st.sampled_from(["ang", "hap", "neu", "sad", "disg", "fea", "mix", "joy", "", "70", "30", "50", "100", "-5",
                     "0", "1", "4", "-1", "M", "F", "A12", "12", "nan", "inf", "1e400", "ang+hap 70/30"]),
    st.text(max_size=6), st.text(UNICODE_DIGITS, min_size=1, max_size=3), st.integers(4000, 5000).map(lambda n: "9" * n),
)


@st.composite
def metadata_csv(draw):
    if draw(st.booleans()):
        cols = ["filename", "emotion_1", "emotion_2", "emotion_1_salience", "emotion_2_salience", "fold"]
    else:
        cols = draw(st.lists(meta_cols, max_size=7))
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        row = []
        for c in cols:
            if c.strip().lstrip("\ufeff").lower() == "filename":
                t = draw(st.sampled_from(TARGETS))
                good = format_clip_id(draw(st.integers(1, 999)), t, version=1) + ".mov"
                row.append(draw(st.one_of(st.just(good), meta_cells)))
            else:
                row.append(draw(meta_cells))
        rows.append(row)
    sep = draw(st.sampled_from([",", ",", ";"]))
    q = (lambda v: '"' + v.replace('"', '""') + '"') if sep == "," else (lambda v: v)
    return "\n".join([sep.join(q(c) for c in cols)] + [sep.join(q(v) for v in r) for r in rows]) + "\n"


@given(metadata_csv())
@example('"filename","mix","fold"\n"A1_ang_int1_ver1.mov","' + "9" * 400 + '","1e300"\n')  # found by make fuzz
def test_fuzz_load_metadata(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("m") / "meta.csv"
    path.write_text(text, encoding="utf-8")
    try:
        t = load_metadata(path)
    except BlemoreError as e:
        assert str(path) in str(e) or isinstance(e, DatasetError), str(e)
        return
    # a right result: one row per clip, unique ids, labels (when present) are valid targets
    assert t["clip_id"].is_unique
    for lab in t["label"] if "label" in t.columns else []:
        assert lab is None or lab.target_index() >= 0


@given(st.binary(max_size=300))
def test_fuzz_load_metadata_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("mb") / "meta.csv"
    path.write_bytes(raw)
    try:
        load_metadata(path)
    except BlemoreError as e:
        assert str(path) in str(e), str(e)
