"""The multi-task head: sigmoid presence + pairwise salience share, calibrated (alpha, beta)."""
import numpy as np
import pytest

from blemore.decode import PAPER_GRID
from blemore.heads import EvalSet, HeadError, TrainSpec, create_head
from blemore.heads.multitask import BETA_GRID, MultitaskDecoder, decode_multitask
from blemore.labels import EMOTIONS, N_TARGETS, PAIRS, TARGET_SOFT, TARGET_TO_MASK, TARGETS, Label
from blemore.metrics import score_codes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _out(presence, dominance):
    return np.concatenate([np.asarray(presence, float), np.asarray(dominance, float)], axis=1)




def test_decoding_rules():
    ang, hap, neu = EMOTIONS.index("ang"), EMOTIONS.index("hap"), EMOTIONS.index("neu")
    pres = np.full((5, 6), 0.05)
    dom = np.zeros((5, 6))
    pres[0, [ang, hap]] = [0.9, 0.8]
    dom[0, [ang, hap]] = [0.0, 2.0]  # share(ang) = sigmoid(-2) = 0.12 -> hap dominant
    pres[1, [ang, hap]] = [0.9, 0.8]  # equal dominance -> 50/50
    pres[2, [ang, hap]] = [0.9, 0.1]  # second below alpha -> ang alone
    pres[3, [neu, hap]] = [0.9, 0.8]  # neutral among the two -> the larger alone
    pres[4, [hap, neu]] = [0.7, 0.7]  # tie with neutral -> the emotion
    mask, target = decode_multitask(_out(pres, dom), alpha=0.5, beta=0.1)
    names = [TARGETS[t].name() for t in target]
    assert names == ["ang+hap 30/70", "ang+hap 50/50", "ang", "neu", "hap"]
    assert np.array_equal(mask, TARGET_TO_MASK[target])
    # the grammar: ang+hap 30/70 is mix_ang_hap_30_70 (happiness dominant)
    assert TARGETS[target[0]] == Label.parse("A1_mix_ang_hap_30_70_ver1")
    # the dominant emotion is decided by the dominance scores, not by presence order
    dom[0, [ang, hap]] = [2.0, 0.0]
    _, t2 = decode_multitask(_out(pres, dom), alpha=0.5, beta=0.1)
    assert TARGETS[t2[0]].name() == "ang+hap 70/30"


def test_decoder_emits_valid_labels_on_random_outputs():
    rng = np.random.default_rng(0)
    out = _out(rng.random((400, 6)), rng.normal(0, 3, (400, 6)))
    for a in (0.0, 0.3, 1.1):
        for b in (0.0, 0.2, 0.6):
            mask, target = decode_multitask(out, a, b)
            assert np.all((target >= 0) & (target < N_TARGETS))
            assert np.array_equal(mask, TARGET_TO_MASK[target])


def test_calibration_equals_brute_force_decoding():
    rng = np.random.default_rng(1)
    true = rng.integers(0, N_TARGETS, 300)
    noisy_p = np.clip(TARGET_SOFT[true] > 0, 0, 1) * 0.6 + 0.4 * rng.random((300, 6))
    dom = rng.normal(0, 1, (300, 6)) + 2 * TARGET_SOFT[true]
    out = _out(noisy_p, dom)
    dec = MultitaskDecoder(np.linspace(0.1, 0.9, 7), np.linspace(0, 0.4, 5))
    fit = dec.calibrate(out, true)
    best = None
    for a in dec.alphas:
        for b in dec.betas:
            m, t = decode_multitask(out, a, b)
            s = score_codes(m, t, true)
            sc = 0.5 * s["acc_presence"] + 0.5 * s["acc_salience"]
            if best is None or sc > best[0] + 1e-12:
                best = (sc, a, b, s)
    assert fit.score == pytest.approx(best[0])
    assert (fit.params["alpha"], fit.params["beta"]) == (pytest.approx(best[1]), pytest.approx(best[2]))
    assert fit.acc_presence == pytest.approx(best[3]["acc_presence"])
    assert fit.acc_salience == pytest.approx(best[3]["acc_salience"])
    d = create_head("multitask").decoder()
    np.testing.assert_allclose(d.alphas, PAPER_GRID)
    np.testing.assert_allclose(d.betas, BETA_GRID)
    with pytest.raises(ValueError, match="shape"):
        dec.calibrate(np.ones((3, 6)), true[:3])


def test_head_learns_presence_and_salience_deterministically(compositional):
    X, t = compositional(900)
    Xv, tv = compositional(300, seed=1)
    spec = TrainSpec(lr=1e-2, batch_size=128, epochs=15, eval_every=5)
    h = create_head("multitask", hidden=32)
    hist = h.fit(X, TARGET_SOFT[t], target=t, eval_sets={"v": EvalSet(Xv)}, spec=spec, seed=2)
    out = hist.outputs["v"][-1]
    assert out.shape == (300, 12)
    assert np.all((out[:, :6] >= 0) & (out[:, :6] <= 1))
    fit = h.decoder().calibrate(out, tv)
    assert fit.acc_presence > 0.5 and fit.acc_salience > 0.3
    # salience output: for true blends, the first emotion's predicted share follows the truth
    blend = tv >= 6
    pair = (tv[blend] - 6) // 3
    a = np.array([EMOTIONS.index(PAIRS[p][0]) for p in pair])
    b = np.array([EMOTIONS.index(PAIRS[p][1]) for p in pair])
    rows = np.flatnonzero(blend)
    share = 1 / (1 + np.exp(-(out[rows, 6 + a] - out[rows, 6 + b])))
    ratio = (tv[blend] - 6) % 3
    assert share[ratio == 2].mean() > share[ratio == 1].mean() > share[ratio == 0].mean()
    h2 = create_head("multitask", hidden=32)
    h2.fit(X, TARGET_SOFT[t], target=t, spec=spec, seed=2)
    np.testing.assert_array_equal(h.predict_outputs(Xv), h2.predict_outputs(Xv))
    p6 = h.predict_proba(Xv)
    np.testing.assert_allclose(p6.sum(axis=1), 1.0, atol=1e-5)
    h3 = create_head("multitask", hidden=32)
    h3.load_state_dict(h.state_dict())
    np.testing.assert_array_equal(h3.predict_outputs(Xv), h.predict_outputs(Xv))


def test_fuse_averages_each_part():
    h = create_head("multitask")
    o1 = _out(np.full((2, 6), 0.2), np.ones((2, 6)))
    o2 = _out(np.full((2, 6), 0.8), -np.ones((2, 6)))
    f = h.fuse([o1, o2], [0.75, 0.25], "prob")
    np.testing.assert_allclose(f[:, :6], 0.35, rtol=1e-6)
    np.testing.assert_allclose(f[:, 6:], 0.5, rtol=1e-6)
    g = h.fuse([o1, o2], None, "logit")
    np.testing.assert_allclose(g[:, :6], 0.5, rtol=1e-5)  # logits -1.386 and +1.386 average to 0
    with pytest.raises(ValueError, match="weights"):
        h.fuse([o1, o2], [1.0], "prob")


def test_options_are_checked(compositional):
    with pytest.raises(HeadError, match="salience_weight"):
        create_head("multitask", salience_weight=-1)
    with pytest.raises(HeadError, match="target"):
        X, t = compositional(10)
        create_head("multitask").fit(X, TARGET_SOFT[t], spec=TrainSpec(epochs=1))
