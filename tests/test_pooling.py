import numpy as np
import pytest

from blemore.pooling import STATS, Pooling, pool_many, pool_stats, stat_columns, window_many, windows


def _reference(x):
    return np.concatenate([x.mean(0), x.std(0), *np.percentile(x, [10, 25, 50, 75, 90], axis=0)])


def test_seven_statistics_statistic_major():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 5)).astype(np.float32)
    out = pool_stats(x)
    assert out.shape == (7 * 5,) and out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    # statistic-major: the first D values are the means, the next D the stds
    np.testing.assert_allclose(out[:5], x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(out[5:10], x.std(0), rtol=1e-5)
    assert stat_columns(["a", "b"])[:3] == ["mean:a", "mean:b", "std:a"]
    assert len(stat_columns(5)) == 35


def test_nan_rows_are_ignored():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = x.copy()
    y[[0, 3, 7]] = np.nan  # frames without a face
    np.testing.assert_allclose(pool_stats(y), pool_stats(np.delete(x, [0, 3, 7], axis=0)), rtol=1e-6)


def test_isolated_nan_values_and_all_nan_clip():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = x.copy()
    y[2, 1] = np.nan
    out = pool_stats(y)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[1], np.delete(x[:, 1], 2).mean())
    assert np.isnan(pool_stats(np.full((5, 3), np.nan))).all()


def test_vector_input_and_subset_of_stats():
    v = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    out = pool_stats(v, stats=("mean", "std"))
    np.testing.assert_allclose(out, [1, 2, 3, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown statistic"):
        pool_stats(v, stats=("mean", "max"))
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        pool_stats(np.zeros((2, 2, 2)))
    assert pool_many([v[None], v[None]]).shape == (2, 21)


def test_windows_means_and_lengths():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    w = windows(x, size=4)
    assert w.shape == (5, 2)
    np.testing.assert_allclose(w[0], x[:4].mean(0))
    np.testing.assert_allclose(w[-1], x[16:20].mean(0))
    assert windows(x, size=4, stride=2).shape == (9, 2)
    # a clip shorter than the window gives one window over all its rows
    np.testing.assert_allclose(windows(x[:3], size=16), x[:3].mean(0, keepdims=True))
    # size 1 = the valid rows themselves (per-segment features)
    y = x.copy()
    y[5] = np.nan
    assert windows(y, size=1).shape == (19, 2)


def test_windows_nan_robust_and_owner():
    x = np.ones((8, 2), dtype=np.float32)
    x[:4] = np.nan
    w = windows(x, size=4)
    assert w.shape == (1, 2) and np.allclose(w, 1.0)  # the all-NaN window is dropped
    assert np.isnan(windows(np.full((6, 2), np.nan), size=4)).all()
    rows, owner = window_many([np.zeros((8, 2)), np.ones((4, 2))], size=4)
    assert rows.shape == (3, 2) and owner.tolist() == [0, 0, 1]


def test_pooling_spec():
    p = Pooling()
    assert p.per_clip and p.apply(np.zeros((3, 2))).shape == (1, 14)
    q = Pooling(kind="windows", window=2)
    assert not q.per_clip and q.apply(np.zeros((6, 2))).shape == (3, 2)
    assert Pooling(**{k: v for k, v in p.as_dict().items() if k != "stats"}, stats=tuple(p.as_dict()["stats"])) == p
    with pytest.raises(ValueError, match="pooling must be"):
        Pooling(kind="max")
    assert STATS == ("mean", "std", "p10", "p25", "p50", "p75", "p90")
