import warnings

import numpy as np
import pytest

from blemore.features import FeatureError, Standardize, TransformChain, load_features
from blemore.fusion import EarlyFusion, LateFusion, create_fusion, early_fusion, late_fusion, list_fusions
from blemore.pooling import Pooling


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_early_fusion_concatenates_rows():
    a, b = np.ones((3, 2)), np.zeros((3, 4))
    assert early_fusion([a, b]).shape == (3, 6)
    with pytest.raises(ValueError, match="same number of rows"):
        early_fusion([a, np.zeros((2, 4))])


def test_late_fusion_probabilities_and_logits():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    p1, p2 = _softmax(z1), _softmax(z2)
    np.testing.assert_allclose(late_fusion([p1, p2], [3, 1]), 0.75 * p1 + 0.25 * p2, rtol=1e-5)
    # averaging logits == geometric mean of softmax outputs, renormalised
    np.testing.assert_allclose(late_fusion([p1, p2], [3, 1], mode="logit"), _softmax(0.75 * z1 + 0.25 * z2),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        late_fusion([p1, p2], [1])
    with pytest.raises(ValueError, match="mode"):
        late_fusion([p1, p2], mode="max")


def test_fusion_strategies_group_sources():
    assert set(list_fusions()) >= {"early", "late"}
    assert create_fusion("early").groups(["v", "a"]) == [("v", "a")]
    late = create_fusion("late", weights=[2, 1], mode="logit")
    assert isinstance(late, LateFusion) and late.groups(["v", "a"]) == [("v",), ("a",)]
    assert late.select_weights([None, None], None, None, None) == [2.0, 1.0]
    assert isinstance(create_fusion("early"), EarlyFusion)
    with pytest.raises(ValueError, match="unknown fusion"):
        create_fusion("middle")


def _write_source(root, name, ids, order, dim, value_of, missing=()):
    d = root / name
    d.mkdir()
    for i in order:  # files written in a shuffled order
        if ids[i] in missing:
            continue
        np.save(d / f"{ids[i]}.npy", np.full((3, dim), value_of(i), dtype=np.float32))
    return d


IDS = [f"A10{a}_{e}_int1_ver1" for a in range(3) for e in ("ang", "hap", "sad")]


def test_sources_join_by_clip_id_not_file_order(tmp_path):
    rng = np.random.default_rng(0)
    v = _write_source(tmp_path, "video", IDS, rng.permutation(len(IDS)), 2, lambda i: i)
    a = _write_source(tmp_path, "audio", IDS, rng.permutation(len(IDS)), 3, lambda i: 100 + i)
    asked = list(reversed(IDS))
    fs = load_features([v, a], asked, Pooling())
    assert fs.clip_ids == asked
    X, owner = fs.rows(["video", "audio"], np.arange(len(asked)))
    assert owner is None and X.shape == (9, 7 * 2 + 7 * 3)
    for r, cid in enumerate(asked):
        i = IDS.index(cid)
        assert X[r, 0] == i and X[r, 14] == 100 + i  # means of both sources belong to the same clip


def test_missing_clips_dropped_imputed_or_error(tmp_path):
    v = _write_source(tmp_path, "video", IDS, range(len(IDS)), 2, lambda i: i, missing={IDS[4]})
    a = _write_source(tmp_path, "audio", IDS, range(len(IDS)), 2, lambda i: i)
    with pytest.warns(UserWarning, match=r"dropped.*video: 1 clip"):
        fs = load_features([v, a], IDS, Pooling())
    assert IDS[4] not in fs.clip_ids and len(fs) == 8
    assert fs.missing.missing["video"] == [IDS[4]]
    with pytest.warns(UserWarning, match="imputed"):
        fs2 = load_features([v, a], IDS, Pooling(), missing="impute")
    assert len(fs2) == 9 and np.isnan(fs2.blocks["video"][4]).all()
    with pytest.raises(FeatureError, match="missing"):
        load_features([v, a], IDS, Pooling(), missing="error")
    with pytest.raises(FeatureError, match="none of the"):
        load_features([v], ["A999_ang_int1_ver1"], Pooling())


def test_windowed_rows_follow_clip_selection(tmp_path):
    d = tmp_path / "seg"
    d.mkdir()
    for i, cid in enumerate(IDS):
        np.save(d / f"{cid}.npy", np.full((2 + i, 2), i, dtype=np.float32))
    fs = load_features([d], IDS, Pooling(kind="windows", window=1))
    X, owner = fs.rows(["seg"], np.array([5, 1]))
    assert (X[owner == 0] == 5).all() and (X[owner == 1] == 1).all()
    assert (owner == 0).sum() == 7 and (owner == 1).sum() == 3
    with pytest.raises(FeatureError, match="do not line up"):
        fs2 = load_features([d, d], IDS, Pooling(kind="windows", window=1))
        fs2.rows(fs2.sources, np.arange(3))


def test_standardize_uses_fit_rows_only_and_imputes_nan():
    X = np.array([[0.0, 1.0], [2.0, 1.0], [100.0, 5.0]], dtype=np.float32)
    s = Standardize().fit(X[:2], clip_ids=["a", "b"])
    Z = s.transform(np.array([[1.0, np.nan]], dtype=np.float32), clip_ids=["c"])
    np.testing.assert_allclose(Z, [[0.0, 0.0]])  # mean of the fit rows; NaN -> 0; constant column scale 1
    chain = TransformChain(["standardize"])
    out = chain.fit_transform(X, clip_ids=["a", "b", "c"])
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-6)
    state = chain.state_dict()
    chain2 = TransformChain(chain.specs())
    chain2.load_state_dict(state)
    np.testing.assert_allclose(chain2.transform(X, clip_ids=["a", "b", "c"]), out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Standardize().fit(np.full((3, 2), np.nan), clip_ids=["a", "b", "c"])
