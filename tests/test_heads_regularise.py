"""Regularisation options (dropout, label smoothing, mixup, class balance) and ``mlp-reg``."""
import numpy as np
import pytest
import torch

from blemore.heads import HeadError, TrainSpec, create_head
from blemore.labels import EMOTIONS, N_TARGETS, TARGET_SOFT

SPEC = TrainSpec(lr=1e-2, batch_size=64, epochs=6)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=300, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    proto = rng.standard_normal((len(EMOTIONS), dim)) * 2
    t = rng.integers(0, N_TARGETS, n)
    return (TARGET_SOFT[t] @ proto + 0.5 * rng.standard_normal((n, dim))).astype(np.float32), t


def test_mlp_reg_without_options_is_the_paper_head():
    X, t = _data()
    a = create_head("mlp", hidden=32)  # the paper's KL head (mlp-512 with a small hidden layer)
    b = create_head("mlp-reg", hidden=32)
    a.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=3)
    b.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=3)
    np.testing.assert_allclose(a.predict_outputs(X), b.predict_outputs(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mlp-reg", "structured", "flat36", "multitask"])
def test_mixup_is_seeded_changes_training_and_is_off_at_inference(name):
    X, t = _data()
    plain = create_head(name, hidden=16)
    plain.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=1)
    m1 = create_head(name, hidden=16, mixup=0.4)
    m1.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=1)
    m2 = create_head(name, hidden=16, mixup=0.4)
    m2.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=1)
    o1 = m1.predict_outputs(X)
    np.testing.assert_array_equal(o1, m2.predict_outputs(X))  # deterministic for a seed
    np.testing.assert_array_equal(o1, m1.predict_outputs(X))  # no mixing at inference
    assert not np.allclose(o1, plain.predict_outputs(X))  # it did change training
    m3 = create_head(name, hidden=16, mixup=0.4)
    m3.load_state_dict(m1.state_dict())
    np.testing.assert_array_equal(m3.predict_outputs(X), o1)


def test_dropout_is_deterministic_for_a_seed_whatever_ran_before():
    X, t = _data()
    a = create_head("structured", hidden=16, dropout=0.5)
    a.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=2)
    torch.rand(1000)  # move the global generator
    b = create_head("structured", hidden=16, dropout=0.5)
    b.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=2)
    np.testing.assert_array_equal(a.predict_outputs(X), b.predict_outputs(X))
    c = create_head("structured", hidden=16, dropout=0.5)
    c.fit(X, TARGET_SOFT[t], target=t, spec=SPEC, seed=3)
    assert not np.allclose(a.predict_outputs(X), c.predict_outputs(X))


def test_mixup_batch_is_a_convex_combination():
    head = create_head("flat36", hidden=4, mixup=0.5)
    torch.manual_seed(0)
    head.module = head.build_module(3)
    head.module.train()
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    seen = {}
    head.module.inner.register_forward_pre_hook(lambda m, inp: seen.setdefault("x", inp[0].clone()))
    head.module(x)
    perm, lam = head.module.last
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == [0, 1, 2, 3]
    torch.testing.assert_close(seen["x"], lam * x + (1 - lam) * x[perm])
    head.module.eval()
    head.module(x)
    assert head.module.last is None


def test_label_smoothing_and_class_balance_change_the_loss():
    X, t = _data(64)
    y = torch.from_numpy(TARGET_SOFT[t])
    tt = torch.from_numpy(t)
    z = torch.zeros((64, 36))
    h0 = create_head("flat36", hidden=4)
    h1 = create_head("flat36", hidden=4, label_smoothing=0.2)
    h0.module = h0.build_module(12)
    h1.module = h1.build_module(12)
    # uniform logits: cross-entropy is log(36) with or without smoothing
    assert float(h0.loss(z, y, tt)) == pytest.approx(np.log(36), rel=1e-5)
    assert float(h1.loss(z, y, tt)) == pytest.approx(np.log(36), rel=1e-5)
    zc = torch.zeros((64, 36))
    zc[torch.arange(64), tt] = 10.0  # confident and right: smoothing penalises it
    assert float(h1.loss(zc, y, tt)) > float(h0.loss(zc, y, tt)) + 0.5
    # class balance: rows of rare targets weigh more, weights average 1 over training rows
    hb = create_head("flat36", hidden=4, class_balance=True)
    t_bal = np.array([0] * 30 + [7] * 10)
    Xb = np.random.default_rng(0).standard_normal((40, 12)).astype(np.float32)
    hb.fit(Xb, TARGET_SOFT[t_bal], target=t_bal, spec=TrainSpec(epochs=1), seed=0)
    w = hb._row_weight.numpy()
    assert w[7] == pytest.approx(3 * w[0]) and w[t_bal].mean() == pytest.approx(1.0)


def test_bad_settings_are_named():
    for kw, word in (({"dropout": 1.0}, "dropout"), ({"label_smoothing": -0.1}, "label_smoothing"),
                     ({"mixup": -1}, "mixup")):
        with pytest.raises(HeadError, match=word):
            create_head("structured", **kw)
    with pytest.raises(HeadError, match="class_balance"):
        X, _ = _data(10)
        create_head("mlp-reg", class_balance=True).fit(X, TARGET_SOFT[np.zeros(10, int)], spec=TrainSpec(epochs=1))
