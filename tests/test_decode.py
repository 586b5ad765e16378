"""Tests for blemore.decode: the paper's decoding rules and the vectorised (alpha, beta) search."""
from __future__ import annotations

import numpy as np
import pytest

from blemore.decode import (
    PAPER_GRID,
    calibrate,
    decode_probabilities,
    decode_to_labels,
    decode_to_predictions,
    load_probabilities,
    save_probabilities,
)
from blemore.labels import EMOTIONS, NEUTRAL, TARGETS, Label, encode_labels
from blemore.metrics import score_predictions


def decode_one(p, alpha: float, beta: float) -> list[dict]:
    """FACTS.md pipeline step 6, written out for one clip with plain Python scalars."""
    p = [float(x) for x in p]
    order = sorted(range(6), key=lambda i: (-p[i], i))
    (i1, p1), (i2, p2) = (order[0], p[order[0]]), (order[1], p[order[1]])
    if p1 < alpha or p2 < alpha:
        return [{"emotion": EMOTIONS[i1], "salience": 100.0}]
    if NEUTRAL in (EMOTIONS[i1], EMOTIONS[i2]):
        if p1 == p2:
            keep = i1 if EMOTIONS[i1] != NEUTRAL else i2
        else:
            keep = i1
        return [{"emotion": EMOTIONS[keep], "salience": 100.0}]
    if abs(p1 - p2) <= beta:
        return [{"emotion": EMOTIONS[i1], "salience": 50}, {"emotion": EMOTIONS[i2], "salience": 50}]
    return [{"emotion": EMOTIONS[i1], "salience": 70}, {"emotion": EMOTIONS[i2], "salience": 30}]


def brute_force_calibrate(probs, truth_labels, alphas, betas, weights=(0.5, 0.5)):
    """Decode every clip for every grid pair and score through the challenge dict form."""
    ids = [f"c{i}" for i in range(len(probs))]
    truth = dict(zip(ids, truth_labels))
    best = None
    pres = np.zeros(len(alphas))
    sal = np.zeros((len(alphas), len(betas)))
    for a, alpha in enumerate(alphas):
        for b, beta in enumerate(betas):
            preds = {c: decode_one(p, alpha, beta) for c, p in zip(ids, probs)}
            s = score_predictions(preds, truth)
            pres[a], sal[a, b] = s.acc_presence, s.acc_salience
            score = weights[0] * s.acc_presence + weights[1] * s.acc_salience
            if best is None or score > best[0]:
                best = (score, float(alpha), float(beta), s.acc_presence, s.acc_salience)
    return best, pres, sal


def _dec(p, alpha, beta):
    return decode_to_labels(np.array([p], dtype=float), alpha, beta)[0]


@pytest.mark.parametrize("p, alpha, beta, expected", [
    # below alpha: the top one is still predicted, alone
    ([0.30, 0.25, 0.20, 0.10, 0.10, 0.05], 0.40, 0.1, Label.single("ang")),
    # top one above alpha, second below: single
    ([0.05, 0.05, 0.60, 0.20, 0.05, 0.05], 0.30, 0.1, Label.single("fea")),
    # two survivors, gap > beta: 70/30 toward the larger (larger second in canonical order)
    ([0.00, 0.00, 0.00, 0.55, 0.45, 0.00], 0.30, 0.05, Label.blend("hap", 70, "sad", 30)),
    # larger first in canonical order is the smaller one here
    ([0.45, 0.00, 0.00, 0.55, 0.00, 0.00], 0.30, 0.05, Label.blend("ang", 30, "hap", 70)),
    # gap <= beta: 50/50
    ([0.45, 0.00, 0.00, 0.55, 0.00, 0.00], 0.30, 0.20, Label.blend("ang", 50, "hap", 50)),
    # beta boundary equality (exact binary fractions): |0.75 - 0.25| == 0.5 <= beta
    ([0.00, 0.75, 0.00, 0.00, 0.25, 0.00], 0.25, 0.50, Label.blend("disg", 50, "sad", 50)),
    ([0.00, 0.75, 0.00, 0.00, 0.25, 0.00], 0.25, 0.4999, Label.blend("disg", 70, "sad", 30)),
    # alpha boundary equality: p2 == alpha survives
    ([0.00, 0.75, 0.00, 0.00, 0.25, 0.00], 0.2500001, 0.5, Label.single("disg")),
    # neutral never in a blend: the larger one alone
    ([0.00, 0.00, 0.00, 0.45, 0.00, 0.55], 0.30, 0.5, Label.single("neu")),
    ([0.00, 0.00, 0.00, 0.55, 0.00, 0.45], 0.30, 0.5, Label.single("hap")),
    # a neutral/emotion tie goes to the emotion
    ([0.00, 0.00, 0.00, 0.50, 0.00, 0.50], 0.30, 0.5, Label.single("hap")),
    ([0.00, 0.00, 0.00, 0.20, 0.00, 0.20], 0.90, 0.5, Label.single("hap")),
    # neutral as a non-surviving second: the top emotion alone
    ([0.00, 0.00, 0.00, 0.70, 0.00, 0.30], 0.40, 0.5, Label.single("hap")),
    # ties among emotions keep the lower class index; only the top two count
    ([0.30, 0.30, 0.30, 0.10, 0.00, 0.00], 0.20, 0.0, Label.blend("ang", 50, "disg", 50)),
    ([0.00, 0.00, 0.35, 0.35, 0.30, 0.00], 0.20, 0.01, Label.blend("fea", 50, "hap", 50)),
    # a top-one tie below alpha: the lower index
    ([0.00, 0.00, 0.00, 0.00, 0.50, 0.50], 0.90, 0.0, Label.single("sad")),
])
def test_decoding_branches(p, alpha, beta, expected):
    assert _dec(p, alpha, beta) == expected
    assert Label.from_prediction(decode_one(p, alpha, beta)) == expected


def test_decode_random_matches_scalar_rules():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6) * 0.7, size=400)
    probs[:100] = np.round(probs[:100] * 20) / 20  # many exact ties and boundary gaps
    for alpha, beta in [(0.1, 0.1), (0.3, 0.05), (0.25, 0.5), (0.05, 0.95), (0.9, 0.2)]:
        labels = decode_to_labels(probs, alpha, beta)
        assert labels == [Label.from_prediction(decode_one(p, alpha, beta)) for p in probs]
        mask, target = decode_probabilities(probs, alpha, beta)
        em, et = encode_labels(labels)
        np.testing.assert_array_equal(mask, em)
        np.testing.assert_array_equal(target, et)


def test_decode_to_predictions_format():
    out = decode_to_predictions(["a", "b"], np.array([[0, 0, 0, 1.0, 0, 0], [0.5, 0, 0, 0.5, 0, 0]]), 0.3, 0.1)
    assert out == {"a": [{"emotion": "hap", "salience": 100.0}],
                   "b": [{"emotion": "ang", "salience": 50.0}, {"emotion": "hap", "salience": 50.0}]}


def test_decode_input_errors():
    with pytest.raises(ValueError, match="shape"):
        decode_probabilities(np.zeros((3, 5)), 0.3, 0.1)
    with pytest.raises(ValueError, match="finite"):
        decode_probabilities(np.array([[np.nan, 0, 0, 0, 0, 1.0]]), 0.3, 0.1)


def _problem(n, seed, quantise=False):
    rng = np.random.default_rng(seed)
    truth = [TARGETS[i] for i in rng.integers(0, 36, n)]
    soft = np.stack([t.soft() for t in truth])
    probs = 0.6 * soft + 0.4 * rng.dirichlet(np.ones(6), size=n)
    if quantise:
        probs = np.round(probs * 20) / 20
    return probs, truth


@pytest.mark.parametrize("seed, quantise, grid", [
    (0, False, None), (1, True, None), (2, True, np.round(np.arange(0.05, 1.0, 0.05), 2)),
])
def test_calibrate_equals_brute_force(seed, quantise, grid):
    probs, truth = _problem(60, seed, quantise)
    grid_ = PAPER_GRID if grid is None else grid
    _, tt = encode_labels(truth)
    cal = calibrate(probs, tt, alphas=grid, betas=grid)
    best, pres, sal = brute_force_calibrate(probs, truth, grid_, grid_)
    assert (cal.score, cal.alpha, cal.beta, cal.acc_presence, cal.acc_salience) == best
    np.testing.assert_array_equal(cal.presence_grid, pres)
    np.testing.assert_array_equal(cal.salience_grid, sal)
    assert cal.presence_only == pres.max() and cal.salience_only == sal.max()


def test_calibrate_weights_ties_and_errors():
    probs, truth = _problem(80, 3, quantise=True)
    _, tt = encode_labels(truth)
    grid = PAPER_GRID[::2]
    for w in [(1.0, 0.0), (0.0, 1.0), (0.3, 0.7)]:
        cal = calibrate(probs, tt, alphas=grid, betas=grid, weights=w)
        best, _, _ = brute_force_calibrate(probs, truth, grid, grid, weights=w)
        assert (cal.alpha, cal.beta) == best[1:3]
    # all-equal scores: the first pair in alpha-major order wins
    single = np.tile([0, 0, 0, 1.0, 0, 0], (5, 1))
    cal = calibrate(single, np.full(5, 3), alphas=[0.2, 0.1], betas=[0.9, 0.3])
    assert (cal.alpha, cal.beta, cal.acc_presence, cal.acc_salience) == (0.2, 0.9, 1.0, 0.0)
    d = cal.as_dict(grid=True)
    assert d["alpha"] == 0.2 and d["salience_grid"] == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="rows"):
        calibrate(probs, tt[:-1])
    with pytest.raises(ValueError, match="valid target"):
        calibrate(probs, np.full(len(probs), -1))
    with pytest.raises(ValueError, match="empty"):
        calibrate(probs, tt, alphas=[])
    with pytest.raises(ValueError, match="zero clips"):
        calibrate(np.zeros((0, 6)), np.zeros(0, dtype=int))


def test_probability_files(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), size=5)
    ids = [f"test_{i:04d}.mov" for i in range(1, 6)]
    p = save_probabilities(tmp_path / "p" / "probs.csv", ids, probs)
    names, back = load_probabilities(p)
    assert names == ids
    np.testing.assert_array_equal(back, probs)  # full precision
    # columns in another order and case, plus extra columns
    (tmp_path / "q.csv").write_text("NEU,sad,hap,fea,disg,ang,filename,model\n0.1,0,0,0,0,0.9,x,m\n")
    names, back = load_probabilities(tmp_path / "q.csv")
    assert names == ["x"] and back.tolist() == [[0.9, 0, 0, 0, 0, 0.1]]
    (tmp_path / "r.csv").write_text("filename,ang,disg,fea,hap\nx,1,0,0,0\n")
    with pytest.raises(ValueError, match="missing column.*sad, neu"):
        load_probabilities(tmp_path / "r.csv")
    (tmp_path / "s.csv").write_text("filename,ang,disg,fea,hap,sad,neu\nx,1,0,0,0,0,oops\nx,1,0,0,0,0,0\n")
    with pytest.raises(ValueError, match="more than once"):
        load_probabilities(tmp_path / "s.csv")
    (tmp_path / "t.csv").write_text("filename,ang,disg,fea,hap,sad,neu\nx,1,0,0,0,0,oops\n")
    with pytest.raises(ValueError, match="row 2 .x., column neu: 'oops'"):
        load_probabilities(tmp_path / "t.csv")
    with pytest.raises(ValueError, match="not found"):
        load_probabilities(tmp_path / "absent.csv")


@pytest.mark.parametrize("alpha,beta", [(float("nan"), 0.1), (0.3, float("inf")), (float("-inf"), float("nan"))])
def test_non_finite_thresholds_are_refused(alpha, beta):
    from blemore.decode import DecodeError, calibrate, decode_probabilities

    p = np.full((2, 6), 1 / 6)
    with pytest.raises(DecodeError, match="finite"):
        decode_probabilities(p, alpha, beta)
    with pytest.raises(DecodeError, match="finite"):
        calibrate(p, np.array([0, 1]), alphas=[alpha], betas=[beta])


def test_cli_decode_with_nan_alpha_is_one_error(tmp_path):
    from click.testing import CliRunner

    from blemore.cli import cli

    csv = tmp_path / "p.csv"
    csv.write_text("filename,ang,disg,fea,hap,sad,neu\nA1_ang_int1_ver1,0.5,0.1,0.1,0.1,0.1,0.1\n")
    res = CliRunner().invoke(cli, ["decode", str(csv), "--alpha", "nan", "--beta", "0.1", "-o", str(tmp_path / "o.json")])
    assert res.exit_code == 2, res.output
    assert "finite" in res.output and not (tmp_path / "o.json").exists()
