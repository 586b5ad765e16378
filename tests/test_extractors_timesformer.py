"""timesformer with a tiny random TimesformerModel: preprocessing vs the published image processor,
rows per segment, CLS / layer selection, errors."""
from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from blemore.extractors import get_extractor_class  # noqa: E402
from blemore.extractors._hf import WeightsUnavailableError  # noqa: E402
from blemore.extractors.timesformer import TIMESFORMER_PREPROCESS, Timesformer  # noqa: E402
from test_extractors_hf_video import _frames  # noqa: E402  (the astronaut frames, shifted per frame)

K400 = dict(image_mean=[0.45, 0.45, 0.45], image_std=[0.225, 0.225, 0.225])
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
            patch_size=8, num_frames=4)


def _processor(side: int | None = None):
    """The published processor class with the K400 checkpoints' mean/std (default sizes: 224)."""
    sizes = {} if side is None else {"size": {"shortest_edge": side}, "crop_size": {"height": side, "width": side}}
    return transformers.VideoMAEImageProcessorPil(**sizes, **K400)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_timesformer")
    torch.manual_seed(0)
    model = transformers.TimesformerModel(transformers.TimesformerConfig(**TINY)).eval()
    for obj in (model, _processor(32)):
        obj.save_pretrained(folder)
    return folder, model


def test_registered_defaults():
    cls = get_extractor_class("timesformer")
    assert cls.default_weights == "facebook/timesformer-base-finetuned-k400"
    e = cls()
    assert (e.dim, e.modality, e.config.frame_step, e.config.segment_stride) == (768, "video", 2, 16)


@pytest.mark.parametrize("side", [None, 32])
def test_preprocessing_matches_the_published_processor(tiny, side):
    """The default pipeline (224) and the one read from the tiny checkpoint's saved processor (32)."""
    pre = TIMESFORMER_PREPROCESS if side is None else Timesformer(weights=str(tiny[0]))
    if side is not None:
        pre.load()
        pre = pre.preprocess
    frames = np.stack(_frames(2, 240, 320))
    ref = _processor(side)(list(frames), return_tensors="np")["pixel_values"][0]
    got = pre(torch.from_numpy(frames)).numpy()
    assert got.shape == ref.shape == (2, 3, side or 224, side or 224)
    err = np.abs(got - ref)
    assert err.mean() < 0.02 and err.max() < 0.3


def _ref_rows(e, model, frames, starts, layers=None):
    rows = []
    for s in starts:
        idx = [min(s + k * e.config.frame_step, len(frames) - 1) for k in range(4)]
        x = e.preprocess(torch.from_numpy(frames[idx]))[None]
        with torch.no_grad():
            out = model(pixel_values=x, output_hidden_states=True)
        if layers is None:
            rows.append(out.last_hidden_state[0, 0].numpy())
        else:
            rows.append(np.mean([out.hidden_states[i][0, 0].numpy() for i in layers], axis=0))
    return np.stack(rows)


def test_segments_rows_and_layers(tiny):
    folder, model = tiny
    frames = _frames(20)
    e = Timesformer(weights=str(folder), frame_step=2, segment_stride=4, device="cpu")
    feats, times, n = e.embed_video(iter((f, i / 25) for i, f in enumerate(frames)))
    # span (4 - 1) * 2 + 1 = 7 frames; starts 0, 4, 8, 12 and a tail at 13
    assert n == 20 and feats.shape == (5, 32) and e.dim == 32
    np.testing.assert_allclose(feats, _ref_rows(e, model, frames, [0, 4, 8, 12, 13]), atol=1e-5)
    np.testing.assert_allclose(times, [(s + s + 6) / 2 / 25 for s in (0, 4, 8, 12, 13)])
    lay = Timesformer(weights=str(folder), frame_step=2, segment_stride=8, layers="1-2")
    feats, _, _ = lay.embed_video(iter((f, i / 25) for i, f in enumerate(frames)))
    np.testing.assert_allclose(feats, _ref_rows(lay, model, frames, [0, 8, 13], layers=[1, 2]), atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        Timesformer(weights=str(folder), layers="3").load()


def test_refusals_and_missing_weights(tiny, tmp_path, monkeypatch):
    (tmp_path / "vmae").mkdir()
    transformers.VideoMAEModel(transformers.VideoMAEConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                           intermediate_size=32, image_size=32, patch_size=16,
                                                           num_frames=2)).save_pretrained(tmp_path / "vmae")
    with pytest.raises(ValueError, match="expected model_type 'timesformer'"):
        Timesformer(weights=str(tmp_path / "vmae")).load()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    assert not Timesformer.weights_available()
    with pytest.raises(WeightsUnavailableError, match="hf download facebook/timesformer-base-finetuned-k400"):
        Timesformer().load()
    assert time.perf_counter() - t0 < 2.0


def test_extract_clip(tiny, tmp_path):
    from media_fixtures import make_clip

    folder, _ = tiny
    r = Timesformer(weights=str(folder), frame_step=1, segment_stride=4).extract(
        make_clip(tmp_path / "A1_ang_int1_ver1.mp4", seconds=0.6, size=(48, 64)))
    assert r.status == "ok" and r.features.shape == (4, 32) and r.info["frames"] == 15
