"""Sequence heads (blemore.heads.sequence): frame pooling, per-frame transforms, masks (NaN and
padding frames never change an output), the runner feeding frames, bundle round trip."""
import numpy as np
import pytest

from blemore.bundle import ModelBundle
from blemore.experiment import Experiment, run_experiment
from blemore.features import Standardize, TransformChain
from blemore.heads.base import HeadError, create_head
from blemore.heads.losses import soft_loss
from blemore.heads.training import TrainSpec
from blemore.pooling import Pooling, frame_slots, frame_windows
from helpers import fit_sequence_head, mark_as_egemaps, padded_and_spread, tiny_config, tiny_temporal_corpus

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEQ = ("attn-pool", "bigru-attn", "transformer")


def test_frame_slots_against_a_loop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((23, 3)).astype(np.float32)
    x[4:7] = np.nan
    x[10, 1] = np.nan
    got = frame_slots(x, 5)
    for i in range(5):
        seg = x[i * 23 // 5:(i + 1) * 23 // 5]
        seg = seg[~np.isnan(seg).all(axis=1)]
        want = np.nanmean(seg, axis=0) if len(seg) else np.full(3, np.nan)
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)
    short = frame_slots(x[:3], 6)  # fewer frames than slots: repeated in order
    np.testing.assert_array_equal(short, x[[0, 0, 1, 1, 2, 2]])
    w = frame_windows(x[:5], 8, 4)
    assert w.shape == (1, 8, 3) and np.isnan(w[0, 5:]).all() and np.array_equal(w[0, :5], x[:5], equal_nan=True)
    ramp = np.arange(23, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    w = frame_windows(ramp, 8, 6)  # starts 0, 6, 12 and a last window ending at frame 22
    assert w.shape == (4, 8, 2) and [int(s[0, 0]) for s in w] == [0, 6, 12, 15]
    p = Pooling(kind="frames", window=5)
    assert p.per_clip and p.apply(x).shape == (1, 15)
    assert not Pooling(kind="frames", window=5, stride=5).per_clip
    a, b = np.arange(2 * 3 * 2).reshape(2, 6), 100 + np.arange(2 * 3 * 1).reshape(2, 3)
    j = Pooling(kind="frames", window=3).join([a, b]).reshape(2, 3, 3)  # per-frame concatenation
    np.testing.assert_array_equal(j[..., :2], a.reshape(2, 3, 2))
    np.testing.assert_array_equal(j[..., 2], b.reshape(2, 3))


def test_per_frame_transforms_keep_masked_frames():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 4, 3)).astype(np.float32) * 3 + 1
    X[0, 2] = np.nan
    X[3, :] = np.nan  # a clip without any frame
    chain = TransformChain(["standardize"], frames=4)
    Z = chain.fit_transform(X.reshape(6, -1), clip_ids=[f"c{i}" for i in range(6)]).reshape(6, 4, 3)
    valid = ~np.isnan(X).all(axis=2)
    assert np.isnan(Z[~valid]).all() and not np.isnan(Z[valid]).any()
    ref = Standardize().fit(X[valid], clip_ids=list(range(valid.sum())))  # fitted on valid frames only
    np.testing.assert_allclose(Z[valid], ref.transform(X[valid], clip_ids=[]), rtol=1e-5, atol=1e-6)


def _trained(name, frames=10, dim=4, n=48, seed=0):
    return fit_sequence_head(create_head(name, frames=frames, hidden=8, heads=2, layers=1, dropout=0.0),
                             frames, dim, n, seed)


@pytest.mark.parametrize("name", SEQ)
def test_masks_nan_and_padding_frames_never_change_outputs(name):
    h = _trained(name)
    rng = np.random.default_rng(5)
    base = rng.standard_normal((5, 6, 4)).astype(np.float32)  # 6 valid frames each
    padded, spread = padded_and_spread(base, 10, rng)  # NaN padding at the end / NaN frames in between
    out_pad = h.predict_outputs(padded.reshape(5, -1))
    out_spread = h.predict_outputs(spread.reshape(5, -1))
    np.testing.assert_allclose(out_pad, out_spread, atol=1e-5)
    alone = h.predict_outputs(padded[:1].reshape(1, -1))  # batch of one: shorter padded batch
    np.testing.assert_allclose(alone[0], out_pad[0], atol=1e-5)
    full = rng.standard_normal((1, 10, 4)).astype(np.float32)
    mixed = h.predict_outputs(np.concatenate([padded[:1], full]).reshape(2, -1))  # with a longer clip
    np.testing.assert_allclose(mixed[0], out_pad[0], atol=1e-5)
    changed = padded.copy()
    changed[0, 2] += 1.0  # a valid frame does change it (the comparison can fail)
    assert np.abs(h.predict_outputs(changed[:1].reshape(1, -1))[0] - out_pad[0]).max() > 1e-4
    empty = h.predict_outputs(np.full((2, 40), np.nan, np.float32))  # no frame at all: defined output
    assert np.isfinite(empty).all() and np.allclose(empty.sum(axis=1), 1.0, atol=1e-5)


def test_order_matters_for_recurrent_and_transformer_heads():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 10, 4)).astype(np.float32)
    rev = x[:, ::-1].copy()
    diffs = {n: np.abs(_trained(n).predict_outputs(x.reshape(1, -1)) - _trained(n).predict_outputs(rev.reshape(1, -1))).max()
             for n in SEQ}
    assert diffs["attn-pool"] < 1e-5  # attention pooling is a set function
    assert diffs["bigru-attn"] > 1e-5 and diffs["transformer"] > 1e-5


def test_bad_options_listed_at_once_and_losses():
    with pytest.raises(HeadError) as e:
        create_head("transformer", frames=0, hidden=10, heads=4, loss="hinge", dropout=1.5)
    msg = str(e.value)
    assert all(k in msg for k in ("frames", "hidden", "loss", "dropout"))
    import torch

    logits = torch.tensor([[2.0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0]])
    y = torch.tensor([[1.0, 0, 0, 0, 0, 0], [0.3, 0.7, 0, 0, 0, 0]])
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits, 1), y, reduction="none").sum(1)
    w = soft_loss(logits, y, "weighted-kl", single_weight=3.0)
    assert float(w) == pytest.approx(float((3 * kl[0] + kl[1]) / 4), rel=1e-6)
    assert float(soft_loss(logits, y, "focal", gamma=0.0)) == pytest.approx(
        float(-(y * torch.log_softmax(logits, 1)).sum(1).mean()), rel=1e-6)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny_temporal_corpus(tmp_path_factory.mktemp("seq"), dim=6, frames=(12, 30), seed=1)


def test_runner_feeds_frames_and_bundle_round_trips(corpus, tmp_path):
    cfg = tiny_config(corpus, head="attn-pool", head_options={"frames": 8, "hidden": 8, "heads": 2},
                      model_dir=str(tmp_path / "model"))
    exp = Experiment(cfg, progress=False)
    assert exp.pooling == Pooling(kind="frames", window=8)  # asked for by the head, not by its name
    assert exp.features.rows(exp.groups[0], exp.train_pos[:2])[0].shape == (2, 8 * 12)
    r = run_experiment(cfg.replace(out=str(tmp_path / "run"), plots=True), progress=False)
    assert (tmp_path / "run" / "results.json").exists() and (tmp_path / "run" / "plots" / "pca.png").exists()
    assert r.pca["X"].shape == (len(exp.train_pos), 12)  # mean frame of video + audio (6 + 6)
    assert r.results["pooling"]["kind"] == "frames"
    model = ModelBundle.load(tmp_path / "model")
    assert model.pooling.sequence_length == 8 and model.parts[0].chain.frames == 8
    pred = model.predict({"video": corpus.sources["video"], "audio": corpus.sources["audio"]},
                         clip_ids=r.test_predictions["clip_id"].tolist())
    np.testing.assert_array_equal(pred.target, r.test_predictions["pred_target"].to_numpy())
    from blemore.store import open_source

    v, a = open_source(corpus.sources["video"]), open_source(corpus.sources["audio"])
    cid = v.clip_ids[0]
    centres, proba = model.timeline({"video": v.load(cid), "audio": a.load(cid)})
    assert proba.shape == (len(centres), 6) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_windowed_frames_single_source(corpus):
    cfg = tiny_config(corpus, ("audio",), test=False, head="bigru-attn",
                      head_options={"frames": 10, "stride": 5, "hidden": 8, "heads": 2}, selection="paper")
    exp = Experiment(cfg, progress=False)
    X, owner = exp.features.rows(["audio"], exp.train_pos)
    assert X.shape[1] == 60 and owner is not None and len(X) > len(exp.train_pos)  # long clips in windows
    r = run_experiment(cfg, progress=False, write=False, final=False)
    assert len(r.predictions) == len(exp.train_pos)


def test_device_option_cpu_is_the_default_here_and_unavailable_devices_are_named():
    import torch

    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 8 * 3)).astype(np.float32)
    Y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, 30)]
    outs = []
    for device in ("auto", "cpu"):
        h = create_head("transformer", frames=8, hidden=8, heads=2, layers=1)
        h.fit(X, Y, spec=TrainSpec(lr=1e-2, epochs=2, batch_size=8, device=device), seed=1)
        outs.append(h.predict_outputs(X))
    if not torch.cuda.is_available():
        np.testing.assert_array_equal(outs[0], outs[1])
        with pytest.raises(HeadError, match="CUDA is not available"):
            create_head("mlp", hidden=4).fit(X, Y, spec=TrainSpec(epochs=1, device="cuda"))
    with pytest.raises(HeadError, match="device"):
        TrainSpec(device="tpu")


def test_padded_windows_raise_no_input_warning(corpus, tmp_path):
    import warnings

    from blemore.validate import InputWarning

    cfg = tiny_config(corpus, ("audio",), head="attn-pool",
                      head_options={"frames": 40, "stride": 20, "hidden": 8, "heads": 2},  # mostly padding
                      train={"epochs": 1, "batch_size": 32, "lr": 1e-2}, selection="paper",
                      model_dir=str(tmp_path / "m"))
    r = run_experiment(cfg, progress=False, write=False)
    model = ModelBundle.load(tmp_path / "m")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model.predict({"audio": corpus.sources["audio"]}, clip_ids=r.test_predictions["clip_id"].tolist())
    assert not [x for x in w if issubclass(x.category, InputWarning)]


def test_sequence_bundle_predicts_media(tmp_path):
    """A sequence-head model whose store says its features are eGeMAPS descriptors extracts
    them from a media file and predicts it (frames resampled like training clips)."""
    import blemore
    from media_fixtures import make_voice_file

    c = tiny_temporal_corpus(tmp_path / "c", sources=("audio",), dim=25, frames=(12, 24), seed=9)
    mark_as_egemaps(c.sources["audio"])
    blemore.train(tiny_config(c, ("audio",), test=False, head="bigru-attn",
                              head_options={"frames": 8, "hidden": 8, "heads": 2},
                              train={"epochs": 2, "batch_size": 32}, model_dir=str(tmp_path / "m")), progress=False)
    media = make_voice_file(tmp_path / "A999_hap_int1_ver1.wav", seconds=1.0)
    table = blemore.load_model(tmp_path / "m").predict([media], progress=False)
    assert list(table["clip"]) == ["A999_hap_int1_ver1"]
    assert np.isclose(table[[c for c in table.columns if c.startswith("p_")]].sum(axis=1), 1, atol=1e-3).all()
