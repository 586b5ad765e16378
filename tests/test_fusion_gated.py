"""Gated (selective) fusion: top-N gate, the wrapped head's network, report, bundle round trip."""
import numpy as np
import pytest

from blemore.bundle import ModelBundle
from blemore.experiment import run_experiment
from blemore.fusion import create_fusion
from blemore.heads.base import HeadError, create_head
from blemore.fusion_gated import gate_summary
from blemore.heads.gated import GatedHead
from blemore.heads.training import TrainSpec
from blemore.report import results_markdown
from helpers import tiny_config, tiny_temporal_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_top_n_gate_keeps_n_sources_per_clip():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 9)).astype(np.float32)
    Y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, 40)]
    for top in (1, 2, 3):
        h = GatedHead(create_head("mlp", hidden=8), dims=[3, 4, 2], top=top, shared=6)
        h.fit(X, Y, spec=TrainSpec(lr=1e-2, epochs=2, batch_size=16))
        g = h.gates(X)
        assert g.shape == (40, 3) and ((g > 0).sum(axis=1) == top).all()
        assert (g.sum(axis=1) <= 1 + 1e-6).all() and (top < 3 or np.allclose(g.sum(axis=1), 1.0, atol=1e-6))
        kept = np.sort(g, axis=1)[:, ::-1][:, :top]
        assert (kept > 0).all()  # the top weights are the largest softmax weights
        out = h.predict_outputs(X)
        assert out.shape == (40, 6) and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(Exception, match="top"):
        create_fusion("gated", top=0)


def test_gate_summary_against_a_loop():
    g = np.array([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0], [0.6, 0.4]])
    t = np.array([0, 0, 3, 3])
    s = gate_summary(g, t, ["video", "audio"])
    assert s["overall"]["video"] == {"selected": 0.75, "weight": pytest.approx(0.475)}
    ang = s["per_configuration"]["ang"]
    assert ang["audio"]["selected"] == 0.5 and ang["audio"]["weight"] == pytest.approx(0.35)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny_temporal_corpus(tmp_path_factory.mktemp("gated"), dim=5, frames=(12, 24), seed=2)


def test_gated_run_report_and_bundle(corpus, tmp_path):
    cfg = tiny_config(corpus, head="mlp", head_options={"hidden": 8}, fusion="gated",
                      fusion_options={"top": 1, "shared": 8}, model_dir=str(tmp_path / "model"))
    r = run_experiment(cfg, progress=False, write=False)
    g = r.results["gating"]
    assert set(g["overall"]) == {"video", "audio"}
    assert sum(v["selected"] for v in g["overall"].values()) == pytest.approx(1.0)  # top=1
    assert 0.5 <= sum(v["weight"] for v in g["overall"].values()) < 1.0  # the kept softmax weight
    assert len(g["per_configuration"]) == 36
    md = results_markdown(r.results)
    assert "Gated fusion: source selection" in md
    assert all(f"| {name} | " in md for name in g["per_configuration"])
    model = ModelBundle.load(tmp_path / "model")
    assert isinstance(model.parts[0].head, GatedHead) and model.parts[0].head.dims == [5 * 7, 5 * 7]
    pred = model.predict({"video": corpus.sources["video"], "audio": corpus.sources["audio"]},
                         clip_ids=r.test_predictions["clip_id"].tolist())
    np.testing.assert_array_equal(pred.target, r.test_predictions["pred_target"].to_numpy())


def test_gated_over_sequence_heads_one_encoder_per_source(corpus):
    cfg = tiny_config(corpus, test=False, head="attn-pool", head_options={"frames": 6, "hidden": 8, "heads": 2},
                      fusion="gated", fusion_options={"top": 2, "shared": 8})
    r = run_experiment(cfg, progress=False, write=False, final=False)
    g = r.results["gating"]["overall"]
    assert g["video"]["selected"] == g["audio"]["selected"] == 1.0  # top=2 of 2
    assert g["video"]["weight"] + g["audio"]["weight"] == pytest.approx(1.0)
    assert r.results["pooling"]["kind"] == "frames"
    with pytest.raises(HeadError, match="torch head"):
        GatedHead(_NotTorch(), dims=[3])


class _NotTorch:
    name = "not-torch"


def test_the_gate_gets_gradients_with_top_one():
    import torch

    h = GatedHead(create_head("mlp", hidden=8), dims=[3, 4], top=1, shared=6)
    net = h.build_module(7)
    x = torch.randn(16, 7)
    y = torch.softmax(torch.randn(16, 6), dim=1)
    h.loss(net(x), y, None).backward()
    assert net.gate.weight.grad is not None and net.gate.weight.grad.abs().sum() > 0
    assert net.bias.grad.abs().sum() > 0
