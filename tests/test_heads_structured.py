"""Structured heads: the 16-way set + pair-conditioned ratio head and the flat 36-way head.

The decoder must only ever emit valid labels, the ratio index must follow the clip-id grammar
(``mix_ang_hap_30_70``: pair (ang, hap), ratio 0, happiness dominant), and the heads must learn
compositional data, deterministically for a seed."""
import numpy as np
import pytest
import torch

from blemore.heads import EvalSet, HeadError, TrainSpec, create_head
from blemore.heads.structured import (
    BIAS_GRID,
    TARGET_PAIR,
    TARGET_RATIO,
    StructuredDecoder,
    joint_from_parts,
    set_marginal,
)
from blemore.labels import (
    EMOTIONS,
    N_TARGETS,
    PAIRS,
    RATIOS,
    TARGET_IS_BLEND,
    TARGET_SOFT,
    TARGET_TO_MASK,
    TARGET_TO_SET,
    TARGETS,
    Label,
)
from blemore.metrics import score_codes


pytestmark = pytest.mark.usefixtures("one_torch_thread")




SPEC = TrainSpec(lr=1e-2, batch_size=128, epochs=15, eval_every=5)


def test_ratio_index_follows_the_clip_id_grammar():
    lab = Label.parse("A438_mix_ang_hap_30_70_ver1")
    t = lab.target_index()
    assert PAIRS[TARGET_PAIR[t]] == ("ang", "hap")
    assert TARGET_RATIO[t] == 0 and RATIOS[TARGET_RATIO[t]] == 30  # ang at 30 -> hap dominant
    # every blend target: the tables agree with Label.ratio_index / the canonical pair
    for i, target in enumerate(TARGETS):
        if target.is_blend:
            assert PAIRS[TARGET_PAIR[i]] == target.emotions
            assert TARGET_RATIO[i] == target.ratio_index()
            assert target.saliences[0] == RATIOS[TARGET_RATIO[i]]
        else:
            assert TARGET_PAIR[i] == -1 and TARGET_RATIO[i] == -1
    # a structured output certain of "pair (ang, hap), ratio 0" decodes to hap 70 / ang 30
    set_p = np.zeros((1, 16))
    set_p[0, 6 + PAIRS.index(("ang", "hap"))] = 1.0
    ratio_p = np.full((1, 10, 3), 1 / 3)
    ratio_p[0, PAIRS.index(("ang", "hap"))] = [0.8, 0.15, 0.05]
    _, target = StructuredDecoder().decode(joint_from_parts(set_p, ratio_p), {})
    pred = {d["emotion"]: d["salience"] for d in TARGETS[target[0]].to_prediction()}
    assert pred == {"ang": 30.0, "hap": 70.0}
    assert TARGETS[target[0]] == lab


def test_ratio_head_learns_the_grammar_order():
    """Train on clips where the *second* emotion dominates: the head must predict ratio 0."""
    rng = np.random.default_rng(1)
    proto = rng.standard_normal((6, 16)) * 3
    pair = PAIRS.index(("ang", "hap"))
    t_30 = 6 + 3 * pair + 0  # ang 30 / hap 70
    t_70 = 6 + 3 * pair + 2  # ang 70 / hap 30
    t = np.array([t_30, t_70] * 100)
    X = (TARGET_SOFT[t] @ proto + 0.2 * rng.standard_normal((len(t), 16))).astype(np.float32)
    head = create_head("structured", hidden=16)
    head.fit(X, TARGET_SOFT[t], target=t, spec=TrainSpec(lr=1e-2, batch_size=50, epochs=30), seed=0)
    hap_dominant = (TARGET_SOFT[[t_30]] @ proto).astype(np.float32)  # 0.3 * ang + 0.7 * hap
    out = head.predict_outputs(hap_dominant)
    _, target = head.decoder().decode(out, {})
    assert target[0] == t_30
    assert TARGETS[target[0]].name() == "ang+hap 30/70"


@pytest.mark.parametrize("mode", ["set", "joint"])
def test_decoder_only_emits_valid_labels(mode):
    rng = np.random.default_rng(0)
    outs = [rng.dirichlet(np.full(N_TARGETS, a), size=300) for a in (0.05, 1.0, 50.0)]
    outs.append(np.full((5, N_TARGETS), 1 / N_TARGETS))  # all ties
    outs.append(np.eye(N_TARGETS))  # every target certain
    z = np.zeros((3, N_TARGETS))
    z[:, 0] = 1.0  # zeros elsewhere (log 0)
    outs.append(z)
    dec = StructuredDecoder(mode, BIAS_GRID)
    for out in outs:
        for b in (-5.0, 0.0, 0.7, 5.0):
            mask, target = dec.decode(out, {"blend_bias": b})
            assert target.dtype == np.int64 and mask.dtype == np.int64
            assert np.all((target >= 0) & (target < N_TARGETS))
            assert np.array_equal(mask, TARGET_TO_MASK[target])
    mask, target = dec.decode(np.eye(N_TARGETS), {})
    assert np.array_equal(target, np.arange(N_TARGETS))
    with pytest.raises(ValueError, match="shape"):
        dec.decode(np.ones((2, 6)) / 6, {})
    with pytest.raises(ValueError, match="finite"):
        dec.decode(np.full((1, N_TARGETS), np.nan), {})


def test_set_mode_marginalises_over_ratios_joint_mode_does_not():
    out = np.zeros((1, N_TARGETS))
    out[0, EMOTIONS.index("hap")] = 0.3
    p = PAIRS.index(("ang", "hap"))
    out[0, 6 + 3 * p: 9 + 3 * p] = [0.25, 0.25, 0.2]
    _, tj = StructuredDecoder("joint").decode(out, {})
    _, ts = StructuredDecoder("set").decode(out, {})
    assert TARGETS[tj[0]].name() == "hap"
    assert ts[0] == 6 + 3 * p + 0  # the pair wins on its marginal (0.7); first of the tied ratios
    np.testing.assert_allclose(set_marginal(out)[0, 6 + p], 0.7)
    # a large negative blend bias turns the set decision back to the single
    _, tb = StructuredDecoder("set").decode(out, {"blend_bias": -2.0})
    assert TARGETS[tb[0]].name() == "hap"


def test_blend_bias_calibration():
    """When every blend is slightly less probable than a wrong single, a positive bias
    recovers the blends; with the default grid the decoder has no parameters."""
    rng = np.random.default_rng(3)
    true = rng.choice(np.flatnonzero(TARGET_IS_BLEND), 200)
    out = np.full((200, N_TARGETS), 1e-3)
    out[np.arange(200), true] = 0.3
    out[:, 0] = 0.4
    out /= out.sum(axis=1, keepdims=True)
    fit0 = StructuredDecoder("set").calibrate(out, true)
    assert fit0.params == {"blend_bias": 0.0} and fit0.acc_salience == 0.0
    fit = StructuredDecoder("set", BIAS_GRID).calibrate(out, true)
    assert fit.params["blend_bias"] > 0 and fit.acc_salience == 1.0 and fit.acc_presence == 1.0
    head = create_head("structured", blend_bias="calibrate")
    assert list(head.decoder().bias_grid) == sorted(BIAS_GRID, key=abs)
    with pytest.raises(HeadError, match="blend_bias"):
        create_head("structured", blend_bias="sometimes")


def test_joint_from_parts_is_a_distribution():
    rng = np.random.default_rng(0)
    s = rng.dirichlet(np.ones(16), 50)
    r = rng.dirichlet(np.ones(3), (50, 10))
    j = joint_from_parts(s, r)
    np.testing.assert_allclose(j.sum(axis=1), 1.0)
    np.testing.assert_allclose(set_marginal(j), s)
    np.testing.assert_allclose(j[:, 6 + 3 * 4 + 1], s[:, 6 + 4] * r[:, 4, 1])
    with pytest.raises(ValueError, match="shape"):
        joint_from_parts(s[:, :6], r)


@pytest.mark.parametrize("name,opts", [("structured", {}), ("structured", {"ratio": "ordinal"}), ("flat36", {})])
def test_heads_learn_compositional_data_and_are_deterministic(name, opts, compositional):
    X, t = compositional(900)
    Xv, tv = compositional(300, seed=1)
    h1 = create_head(name, hidden=32, **opts)
    hist = h1.fit(X, TARGET_SOFT[t], target=t, eval_sets={"v": EvalSet(Xv)}, spec=SPEC, seed=4)
    out = hist.outputs["v"]
    assert out.shape == (len(SPEC.eval_epochs()), 300, N_TARGETS)
    np.testing.assert_allclose(out.sum(axis=2), 1.0, atol=1e-5)
    fit = h1.decoder().calibrate(out[-1], tv)
    assert fit.acc_presence > 0.5 and fit.acc_salience > 0.3  # chance: ~1/16 and 1/30
    assert hist.train_loss[-1] < hist.train_loss[0]
    h2 = create_head(name, hidden=32, **opts)
    h2.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=4)
    np.testing.assert_array_equal(h1.predict_outputs(Xv), h2.predict_outputs(Xv))
    # state round trip and six-class probabilities for reports
    h3 = create_head(name, hidden=32, **opts)
    h3.load_state_dict(h1.state_dict())
    np.testing.assert_array_equal(h3.predict_outputs(Xv), h1.predict_outputs(Xv))
    p6 = h1.predict_proba(Xv)
    assert p6.shape == (300, 6)
    np.testing.assert_allclose(p6.sum(axis=1), 1.0, atol=1e-5)
    # decoding trained outputs: valid labels only
    mask, target = h1.decoder().decode(h1.predict_outputs(Xv), fit.params)
    assert np.all(target >= 0) and np.array_equal(mask, TARGET_TO_MASK[target])
    s = score_codes(mask, target, tv)
    assert s["acc_presence"] == pytest.approx(fit.acc_presence)


def test_windows_are_averaged_in_logit_space_per_clip(compositional):
    X, t = compositional(300)
    head = create_head("structured", hidden=16)
    head.fit(X, TARGET_SOFT[t], target=t, spec=TrainSpec(lr=3e-3, batch_size=64, epochs=3), seed=0)
    owner = np.array([0, 0, 0, 1, 1])
    rows = X[:5]
    per_clip = head.predict_outputs(rows, owner)
    z = head.predict_logits(rows)
    zc = torch.from_numpy(np.stack([z[:3].mean(0), z[3:].mean(0)]))
    np.testing.assert_allclose(per_clip, head.logits_to_outputs(zc).numpy(), rtol=1e-5, atol=1e-6)
    # ... which is not the mean of the per-window outputs
    pw = head.predict_outputs(rows)
    assert not np.allclose(per_clip[0], pw[:3].mean(0), atol=1e-6)


def test_structured_heads_need_targets_and_check_options(compositional):
    X, t = compositional(20)
    for name in ("structured", "flat36"):
        with pytest.raises(HeadError, match="target"):
            create_head(name).fit(X, TARGET_SOFT[t], spec=TrainSpec(epochs=1))
    with pytest.raises(HeadError, match="ratio"):
        create_head("structured", ratio="ranked")
    with pytest.raises(HeadError, match="decode"):
        create_head("flat36", decode="threshold")
    with pytest.raises(HeadError, match="hidden"):
        create_head("flat36", hidden=-1)
    assert create_head("flat36").decoder().mode == "joint"
    assert create_head("structured").decoder().mode == "set"
    assert create_head("structured").output_dim == N_TARGETS
    assert np.array_equal(TARGET_TO_SET[:6], np.arange(6))
