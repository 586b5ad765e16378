"""emotion2vec: our loader reads a tiny checkpoint saved with the published parameter names
(FunASR's Emotion2vec layout) strictly, matches a naive re-implementation of the documented
forward pass, and gives frame / utterance rows at 50 per second."""
from __future__ import annotations

import collections

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from blemore.extractors import create_extractor  # noqa: E402
from blemore.extractors.emotion2vec import (  # noqa: E402
    Emotion2vec,
    Emotion2vecPlusLarge,
    alibi_slopes,
    build_emotion2vec,
    emotion2vec_config_from_state_dict,
)

from helpers import assert_missing_weights_fail_fast  # noqa: E402
from test_extractors_hf_audio import _wave  # noqa: E402

P = "modality_encoders.AUDIO."
TINY = {"dim": 32, "feature_dim": 16, "conv_channels": [16] * 7, "pos_depth": 2, "pos_kernel": 5, "pos_groups": 4,
        "prenet_depth": 1, "depth": 2, "num_heads": 4, "mlp_hidden": 64, "extra_tokens": 3, "prenet_norm": True,
        "alibi_scale_shape": [1, 1, 4, 1, 1]}


def published_names(n_conv=7, pos_depth=2, prenet=1, depth=2):
    """Parameter names of FunASR's Emotion2vec (audio modality, layer-norm conv front end, no
    decoder), written out from its module structure, independently of our definition."""
    block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
             "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
    names = [f"{P}local_encoder.conv_layers.{i}.{s}" for i in range(n_conv)
             for s in ("0.weight", "2.1.weight", "2.1.bias")]
    names += [f"{P}project_features.1.weight", f"{P}project_features.1.bias", f"{P}project_features.2.weight",
              f"{P}project_features.2.bias", f"{P}extra_tokens", f"{P}alibi_scale",
              f"{P}context_encoder.norm.weight", f"{P}context_encoder.norm.bias"]
    names += [f"{P}relative_positional_encoder.{i}.0.{w}" for i in range(1, pos_depth + 1) for w in ("weight", "bias")]
    names += [f"{P}context_encoder.blocks.{i}.{b}" for i in range(prenet) for b in block]
    names += [f"blocks.{i}.{b}" for i in range(depth) for b in block]
    return sorted(names)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = build_emotion2vec(TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.modality_encoders["AUDIO"].alibi_scale.copy_(torch.tensor([0.5, 1.0, -0.2, 2.0]).view(1, 1, 4, 1, 1))
    folder = tmp_path_factory.mktemp("e2v")
    sd = collections.OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    sd[f"{P}decoder.blocks.0.0.weight"] = torch.zeros(8, 2, 7)  # pre-training decoder: ignored
    sd["proj.weight"], sd["proj.bias"] = torch.zeros(9, 32), torch.zeros(9)  # fine-tuned 9-class head: ignored
    torch.save(sd, folder / "model.pt")  # FunASR's model.pt: the state dict itself
    (folder / "config.yaml").write_text("model: Emotion2vec\nmodel_conf:\n    embed_dim: 32\n    normalize: true\n")
    (folder / "tokens.txt").write_text("angry\nhappy\n")
    return folder, model


def test_parameter_names_are_the_published_ones(tiny):
    _, model = tiny
    assert sorted(model.state_dict()) == published_names()
    cfg = emotion2vec_config_from_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()})
    assert cfg == TINY


def test_alibi_slopes_follow_the_alibi_recipe():
    np.testing.assert_allclose(alibi_slopes(4), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8])
    want12 = [2.0 ** -i for i in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    np.testing.assert_allclose(alibi_slopes(12), want12)


def _naive(model, wave):
    """The documented inference path with explicit loops and attention matrices (reference)."""
    F = torch.nn.functional
    sd = {k: v.double() for k, v in model.state_dict().items()}
    x = torch.from_numpy(wave).double()[None, None]
    for i, s in enumerate((5, 2, 2, 2, 2, 2, 2)):
        x = F.conv1d(x, sd[f"{P}local_encoder.conv_layers.{i}.0.weight"], stride=s)
        x = F.layer_norm(x.transpose(1, 2), (x.shape[1],), sd[f"{P}local_encoder.conv_layers.{i}.2.1.weight"],
                         sd[f"{P}local_encoder.conv_layers.{i}.2.1.bias"]).transpose(1, 2)
        x = F.gelu(x)
    x = x.transpose(1, 2)
    x = F.layer_norm(x, (16,), sd[f"{P}project_features.1.weight"], sd[f"{P}project_features.1.bias"])
    x = x @ sd[f"{P}project_features.2.weight"].T + sd[f"{P}project_features.2.bias"]
    pos = x.transpose(1, 2)
    for i in (1, 2):
        pos = F.conv1d(pos, sd[f"{P}relative_positional_encoder.{i}.0.weight"],
                       sd[f"{P}relative_positional_encoder.{i}.0.bias"], padding=2, groups=4)
        pos = F.gelu(F.layer_norm(pos.transpose(1, 2), (32,)).transpose(1, 2))
    x = x + pos.transpose(1, 2)
    t = x.shape[1]
    scale = sd[f"{P}alibi_scale"].reshape(4).clamp(min=0)
    slopes = torch.tensor([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8], dtype=torch.float64)
    bias = torch.zeros(4, t + 3, t + 3, dtype=torch.float64)
    for h in range(4):
        for a in range(t):
            for b in range(t):
                bias[h, a + 3, b + 3] = -abs(a - b) * slopes[h] * scale[h]
    x = torch.cat([sd[f"{P}extra_tokens"], x], dim=1)[0]

    def block(pre, x):
        qkv = x @ sd[pre + "attn.qkv.weight"].T + sd[pre + "attn.qkv.bias"]
        q, k, v = qkv[:, :32], qkv[:, 32:64], qkv[:, 64:]
        heads = []
        for h in range(4):
            sl = slice(8 * h, 8 * h + 8)
            att = torch.softmax(q[:, sl] @ k[:, sl].T / np.sqrt(8) + bias[h], dim=-1)
            heads.append(att @ v[:, sl])
        a = torch.cat(heads, dim=1) @ sd[pre + "attn.proj.weight"].T + sd[pre + "attn.proj.bias"]
        x = F.layer_norm(x + a, (32,), sd[pre + "norm1.weight"], sd[pre + "norm1.bias"])
        m = F.gelu(x @ sd[pre + "mlp.fc1.weight"].T + sd[pre + "mlp.fc1.bias"]) @ sd[pre + "mlp.fc2.weight"].T \
            + sd[pre + "mlp.fc2.bias"]
        return F.layer_norm(x + m, (32,), sd[pre + "norm2.weight"], sd[pre + "norm2.bias"])

    x = F.layer_norm(x, (32,), sd[f"{P}context_encoder.norm.weight"], sd[f"{P}context_encoder.norm.bias"])
    x = block(f"{P}context_encoder.blocks.0.", x)
    states = [x[3:]]
    for i in range(2):
        x = block(f"blocks.{i}.", x)
        states.append(x[3:])
    return [s.numpy() for s in states]


def test_forward_matches_a_naive_reference(tiny):
    _, model = tiny
    wave = _wave(0.3, seed=5)
    ref = _naive(model, wave)
    with torch.no_grad():
        out = model(torch.from_numpy(wave)[None], output_hidden_states=True)
    assert out.last_hidden_state.shape == (1, 14, 32)  # (4800 - 400) // 320 + 1 rows
    for got, want in zip(out.hidden_states, ref):
        np.testing.assert_allclose(got[0].numpy(), want, atol=2e-5)


def test_extractor_loads_the_folder_strictly(tiny, tmp_path):
    folder, model = tiny
    e = Emotion2vec(weights=str(folder))
    assert e.dim == 32 and e.rate == 50.0  # read from the file before loading
    wave = _wave(1.0, seed=2)
    rows, times = e.embed(wave)
    assert e.load_info["ignored"] == 3 and e.load_info["normalize"]
    norm = ((wave - wave.mean()) / np.sqrt(wave.var() + 1e-5)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(norm)[None], output_hidden_states=True)
    np.testing.assert_allclose(rows, want.last_hidden_state[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(times, np.arange(49) / 50)
    utt, t = Emotion2vec(weights=str(folder), granularity="utterance").embed(wave)
    np.testing.assert_allclose(utt, rows.mean(axis=0, keepdims=True), atol=1e-6)
    assert t.tolist() == [0.0] and Emotion2vec(granularity="utterance").rate is None
    mid, _ = Emotion2vec(weights=str(folder), layers="0-1").embed(wave)
    np.testing.assert_allclose(mid, (want.hidden_states[0][0] + want.hidden_states[1][0]).numpy() / 2, atol=1e-5)
    sd = torch.load(folder / "model.pt")
    del sd["blocks.1.norm2.bias"]
    (tmp_path / "broken").mkdir()
    torch.save(sd, tmp_path / "broken" / "model.pt")
    with pytest.raises(ValueError, match="missing blocks.1.norm2.bias"):
        Emotion2vec(weights=str(tmp_path / "broken" / "model.pt")).load()


def test_missing_weights_and_bad_settings_fail_fast(tmp_path, monkeypatch):
    assert_missing_weights_fail_fast((Emotion2vec, Emotion2vecPlusLarge), tmp_path, monkeypatch)
    assert create_extractor("emotion2vec-plus-large").dim == 1024
    with pytest.raises(ValueError, match="granularity"):
        Emotion2vec(granularity="word")
    with pytest.raises(ValueError, match="no output='avd' head"):
        Emotion2vec(output="avd")
