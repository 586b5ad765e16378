"""``layers="all"`` on every transformer-encoder family: rows ``(L + 1, D)`` whose slice ``k`` equals
what ``layers="k"`` gives, and a ``layer_axis`` in the store config (tiny random models)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from blemore.extractors._hf import parse_layers  # noqa: E402
from blemore.extractors.hf_audio import HubertLarge  # noqa: E402
from blemore.extractors.hf_image import ClipViTB32  # noqa: E402
from blemore.extractors.hf_video import VideoMAEv2Base  # noqa: E402
from blemore.extractors.timesformer import Timesformer  # noqa: E402

from test_extractors_hf_audio import TINY as AUDIO_TINY  # noqa: E402
from test_extractors_hf_audio import _wave  # noqa: E402
from test_extractors_hf_video import TINY as VIDEO_TINY  # noqa: E402
from test_extractors_hf_video import _frames  # noqa: E402


def _check(make, run, n_layers):
    every = make("all")
    stacked = np.asarray(run(every))
    assert stacked.shape[1:] == (n_layers + 1, every.dim) and every.row_shape == (n_layers + 1, every.dim)
    assert every.config_dict()["layer_axis"] == {"size": n_layers + 1, "first": 0,
                                                 "note": every.config_dict()["layer_axis"]["note"]}
    for k in range(n_layers + 1):
        np.testing.assert_allclose(stacked[:, k], np.asarray(run(make(str(k)))), atol=1e-5)
    assert "layer_axis" not in make("1").config_dict()


def test_parse_all():
    spec = parse_layers("all")
    assert spec.every and str(spec) == "all" and spec.check(3) is spec
    assert parse_layers(" ALL ").every


def test_speech_encoder():
    torch.manual_seed(0)
    model = transformers.HubertModel(transformers.HubertConfig(**AUDIO_TINY)).eval()
    wave = _wave(0.6)
    _check(lambda layers: HubertLarge.from_model(model, {"do_normalize": True}, layers=layers),
           lambda e: e.embed(wave)[0], 3)


def test_image_encoder():
    torch.manual_seed(0)
    model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
        patch_size=16, projection_dim=16)).eval()
    frames = _frames(3)
    _check(lambda layers: ClipViTB32.from_model(model, layers=layers), lambda e: e.embed_frames(frames), 2)


@pytest.mark.parametrize("kind", ["videomae", "timesformer"])
def test_segment_encoders(kind):
    torch.manual_seed(0)
    if kind == "videomae":
        model, cls = transformers.VideoMAEModel(transformers.VideoMAEConfig(**VIDEO_TINY)).eval(), VideoMAEv2Base
    else:
        model = transformers.TimesformerModel(transformers.TimesformerConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
            patch_size=8, num_frames=4)).eval()
        cls = Timesformer
    frames = _frames(10)

    def run(e):
        return e.embed_video(iter((f, i / 25) for i, f in enumerate(frames)))[0]

    _check(lambda layers: cls.from_model(model, layers=layers, segment_stride=4), run, 2)
