"""Cross-modal attention fusion (``--fusion xattn``, blemore.fusion_xattn / blemore.heads.xattn):
masks (NaN and padding frames of either source never change outputs), the sources really
attend to each other (against a naive attention written here), refusals, the runner, bundle
round trip, ``blemore benchmark``/``predict`` through the CLI, the registry."""
import json

import numpy as np
import pytest

from blemore.bundle import ModelBundle
from blemore.experiment import Experiment, run_experiment
from blemore.fusion import FusionError, create_fusion, list_fusions
from blemore.heads.base import HeadError, create_head
from helpers import fit_sequence_head, padded_and_spread, tiny_config, tiny_temporal_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEQ = ("attn-pool", "bigru-attn", "transformer")
F, DA, DB = 10, 4, 3  # frames, per-frame widths of sources A and B


def _xattn(name, heads=None, seed=0):
    head = create_fusion("xattn", heads=heads).head_for(
        create_head(name, frames=F, hidden=8, heads=2, layers=1, dropout=0.0), [F * DA, F * DB])
    return fit_sequence_head(head, F, DA + DB, seed=seed)


def _rows(a, b):
    """Rows of two sources' frame sequences ``(n, F, DA)`` and ``(n, F, DB)``, joined per frame."""
    return np.concatenate([a, b], axis=2).reshape(len(a), -1)


@pytest.mark.parametrize("name", SEQ)
def test_nan_and_padding_frames_of_either_source_never_change_outputs(name):
    h = _xattn(name)
    rng = np.random.default_rng(5)
    a_pad, a_spread = padded_and_spread(rng.standard_normal((5, 6, DA)).astype(np.float32), F, rng)
    b_pad, b_spread = padded_and_spread(rng.standard_normal((5, 4, DB)).astype(np.float32), F, rng)
    ref = h.predict_outputs(_rows(a_pad, b_pad))
    emb = h.embeddings(_rows(a_pad, b_pad))
    for rows in (_rows(a_spread, b_pad), _rows(a_pad, b_spread), _rows(a_spread, b_spread)):
        np.testing.assert_allclose(h.predict_outputs(rows), ref, atol=1e-5)
        np.testing.assert_allclose(h.embeddings(rows), emb, atol=1e-5)
    alone = h.predict_outputs(_rows(a_pad[:1], b_pad[:1]))  # batch of one: the frames removed
    np.testing.assert_allclose(alone[0], ref[0], atol=1e-5)
    full_a, full_b = rng.standard_normal((1, F, DA)).astype(np.float32), rng.standard_normal((1, F, DB)).astype(np.float32)
    mixed = h.predict_outputs(np.concatenate([_rows(a_pad[:1], b_pad[:1]), _rows(full_a, full_b)]))  # a longer clip
    np.testing.assert_allclose(mixed[0], ref[0], atol=1e-5)
    for src in (a_pad, b_pad):  # a valid frame of either source does change it (the comparison can fail)
        changed = src.copy()
        changed[0, 2] += 1.0
        rows = _rows(changed, b_pad) if src is a_pad else _rows(a_pad, changed)
        assert np.abs(h.predict_outputs(rows[:1])[0] - ref[0]).max() > 1e-4
    no_b = h.predict_outputs(_rows(a_pad, np.full_like(b_pad, np.nan)))  # a source without any frame
    empty = h.predict_outputs(np.full((2, F * (DA + DB)), np.nan, np.float32))
    for out in (no_b, empty):
        assert np.isfinite(out).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-5)


def _naive_embedding(net, x, i):
    """Source ``i``'s pooled embedding of one clip ``x`` (one row), by loops over heads and
    query frames from the module's parameters (the within-source encoders are the sequence
    heads', tested in test_heads_sequence.py)."""
    import torch

    with torch.no_grad():
        enc = [(h[0].numpy().astype(np.float64), m[0].numpy()) for h, m in net.encode(torch.from_numpy(x[None]))]
    blk = net.xattn[i]
    p = {k: v.detach().numpy().astype(np.float64) for k, v in blk.state_dict().items()}
    lin = lambda z, n: z @ p[n + ".weight"].T + p[n + ".bias"]  # noqa: E731
    ln = lambda z, n: (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5) * p[n + ".weight"] + p[n + ".bias"]  # noqa: E731,E501
    h, mask = enc[i]
    h = h[mask]  # the query source's valid frames
    kv = np.concatenate([e[0][e[1]] for j, e in enumerate(enc) if j != i])  # the other sources' valid frames
    heads, c = blk.heads, h.shape[1]
    d = c // heads
    q, k, v = lin(ln(h, "ln_q"), "q"), lin(ln(kv, "ln_kv"), "k"), lin(ln(kv, "ln_kv"), "v")
    att = np.zeros_like(h)
    for t in range(len(h)):
        for a in range(heads):
            sl = slice(a * d, (a + 1) * d)
            s = np.array([q[t, sl] @ k[u, sl] / np.sqrt(d) for u in range(len(kv))])
            w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
            att[t, sl] = sum(w[u] * v[u, sl] for u in range(len(kv)))
    h = h + lin(att, "o")
    z = lin(ln(h, "ln_ff"), "ff.0")
    z = 0.5 * z * (1 + np.vectorize(__import__("math").erf)(z / np.sqrt(2)))  # exact GELU
    h = h + lin(z, "ff.3")
    pool = net.enc[i]
    sw, sb = (pool.score.weight.detach().numpy().astype(np.float64), pool.score.bias.detach().numpy().astype(np.float64))
    s = h @ sw.T + sb  # (frames, pooling heads)
    w = np.exp(s - s.max(0)) / np.exp(s - s.max(0)).sum(0)
    ph = pool.heads
    return np.concatenate([(w[:, a:a + 1] * h[:, a * (c // ph):(a + 1) * (c // ph)]).sum(0) for a in range(ph)])


@pytest.mark.parametrize("name", ("bigru-attn", "transformer"))
def test_each_source_attends_to_the_others_as_a_naive_attention_does(name):
    h = _xattn(name, heads=4)  # 4 cross-attention heads, 2 pooling heads
    assert h.module.xattn[0].heads == 4
    rng = np.random.default_rng(7)
    a, _ = padded_and_spread(rng.standard_normal((1, 7, DA)).astype(np.float32), F, rng)
    b, _ = padded_and_spread(rng.standard_normal((1, 5, DB)).astype(np.float32), F, rng)
    x = _rows(a, b)
    emb = h.embeddings(x)[0]
    for i in (0, 1):
        np.testing.assert_allclose(emb[i], _naive_embedding(h.module, x[0], i), rtol=1e-4, atol=1e-5)
    b2 = b.copy()
    b2[0, :5] = rng.standard_normal((5, DB))  # other frames of source B ...
    emb2 = h.embeddings(_rows(a, b2))[0]
    assert np.abs(emb2[0] - emb[0]).max() > 1e-3  # ... change source A's pooled embedding
    np.testing.assert_allclose(emb2[0], _naive_embedding(h.module, _rows(a, b2)[0], 0), rtol=1e-4, atol=1e-5)


def test_pooled_heads_one_source_and_bad_options_are_refused():
    with pytest.raises(HeadError, match="'mlp-512'.*pooled"):
        create_fusion("xattn").head_for(create_head("mlp-512"), None)
    with pytest.raises(HeadError, match="at least two sources"):
        create_fusion("xattn").head_for(create_head("attn-pool", frames=4, hidden=8, heads=2), [12])
    with pytest.raises(HeadError, match=r"heads \(3\).*hidden \(8\)"):
        create_fusion("xattn", heads=3).head_for(create_head("attn-pool", frames=4, hidden=8, heads=2), [12, 8])
    with pytest.raises(FusionError, match="heads"):
        create_fusion("xattn", heads=0)
    assert "xattn" in list_fusions()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny_temporal_corpus(tmp_path_factory.mktemp("xattn"), dim=5, frames=(12, 24), seed=3)


def test_pooled_head_refused_by_the_runner_before_training(corpus):
    with pytest.raises(HeadError, match="mlp-512"):
        Experiment(tiny_config(corpus, head="mlp-512", fusion="xattn"), progress=False)


def test_runner_bundle_round_trip_and_cli(corpus, tmp_path):
    from click.testing import CliRunner

    from blemore.cli import cli

    cfg = tiny_config(corpus, head="bigru-attn", head_options={"frames": 8, "hidden": 8, "heads": 2},
                      fusion="xattn", fusion_options={"heads": 4}, model_dir=str(tmp_path / "m"))
    r = run_experiment(cfg, progress=False, write=False)
    assert r.results["fusion"] == {"kind": "xattn", "heads": 4}
    model = ModelBundle.load(tmp_path / "m")
    head = model.parts[0].head
    assert head.name == "xattn" and head.heads == 4 and head.dims == [8 * 5, 8 * 5]
    pred = model.predict({"video": corpus.sources["video"], "audio": corpus.sources["audio"]},
                         clip_ids=r.test_predictions["clip_id"].tolist())
    np.testing.assert_array_equal(pred.target, r.test_predictions["pred_target"].to_numpy())
    rows = np.random.default_rng(0).standard_normal((3, head.in_dim)).astype(np.float32)
    again = create_fusion("xattn").head_for(create_head("bigru-attn", frames=8, hidden=8, heads=2), None)
    again.load_state_dict(head.state_dict())  # saved heads, not the fusion's option, set the network
    np.testing.assert_array_equal(again.predict_outputs(rows), head.predict_outputs(rows))
    from blemore.store import open_source

    v, a = open_source(corpus.sources["video"]), open_source(corpus.sources["audio"])
    centres, proba = model.timeline({"video": v.load(v.clip_ids[0]), "audio": a.load(v.clip_ids[0])})
    assert proba.shape == (len(centres), 6) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    res = CliRunner().invoke(cli, ["predict", str(tmp_path / "m"), str(corpus.sources["video"]),
                                   str(corpus.sources["audio"]), "--json"])
    assert res.exit_code == 0, res.output
    assert '"predictions"' in res.output
    res = CliRunner().invoke(cli, [
        "benchmark", "--metadata", str(corpus.train_metadata), "--features", str(corpus.sources["video"]),
        "--features", str(corpus.sources["audio"]), "--head", "attn-pool[frames=6,hidden=8,heads=2]",
        "--fusion", "xattn", "--xattn-heads", "2", "--preset", "fast", "--epochs", "1", "--threads", "1",
        "--no-plots", "--quiet", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "results.json").read_text())["fusion"] == {"kind": "xattn", "heads": 2}
    res = CliRunner().invoke(cli, [
        "benchmark", "--metadata", str(corpus.train_metadata), "--features", str(corpus.sources["video"]),
        "--features", str(corpus.sources["audio"]), "--head", "mlp-512", "--fusion", "xattn", "--quiet",
        "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "mlp-512" in res.output and "Traceback" not in res.output
