"""``emotion2vec`` and ``emotion2vec-plus-large``: the emotion2vec speech-emotion encoders
(Ma et al., 2023; a data2vec 2.0 audio model pre-trained for emotion), with our own loader.

``funasr``, the library that publishes them, installs beside this project's pins but pulls
modelscope, numba, librosa, umap and a dozen more packages for one model, so blemore reads the
published ``model.pt`` (Hugging Face ``emotion2vec/emotion2vec_base``,
``emotion2vec/emotion2vec_plus_large``: ``model.pt`` + ``config.yaml``) into
:func:`build_emotion2vec`, our definition of the inference path, written from the publicly
documented architecture (the FunASR ``Emotion2vec`` model and data2vec 2.0); the parameter names
are the published ones and loading is strict over them:

* ``modality_encoders.AUDIO.local_encoder.conv_layers.{i}``: 7 bias-free 1-D convolutions
  (512 channels; kernels 10, 3, 3, 3, 3, 2, 2; strides 5, 2, 2, 2, 2, 2, 2: 400-sample windows
  every 320 samples, 50 rows/s), each followed by a LayerNorm over channels (``.2.1``) and GELU;
* ``...project_features``: LayerNorm(512) then Linear(512 -> D);
* ``...relative_positional_encoder.{1..5}.0``: grouped 1-D convolutions (kernel 19, 16 groups,
  "same" padding), each followed by a LayerNorm without parameters and GELU; their output is
  added to the projected features;
* ALiBi attention biases (symmetric, ``-|i - j|`` times the standard per-head slopes, scaled by
  the learned ``...alibi_scale`` clamped at 0), shared by every layer; ``...extra_tokens``
  (10) are prepended and dropped at the end;
* ``...context_encoder``: LayerNorm then 4 post-norm transformer blocks (``norm1``, ``attn.qkv``,
  ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``; ``x = norm1(x + attn(x));
  x = norm2(x + mlp(x))``), then ``blocks.{0..7}`` of the same kind (8 in base and in plus-large,
  whose ``config.yaml`` says depth 8 with width 1024).

Decoder, EMA and classification-head tensors (``proj``) in the file are ignored and counted.
Sizes (width, heads from ``alibi_scale``, depths, kernels, groups, extra tokens) are read from the
tensor shapes. The waveform is normalised over the whole clip as ``F.layer_norm`` does (zero
mean, unit variance, eps 1e-5) when ``config.yaml`` says ``normalize: true`` (the default).

Rows (``granularity``): ``frame`` = one row per 20 ms (the last block's output, or ``layers``
as for ``wav2vec2``: hidden state 0 = the input to ``blocks``, i.e. after the context encoder);
``utterance`` = their mean, one row per clip (FunASR's utterance embedding). Long clips are
encoded in chunks with context as the other speech encoders (:mod:`blemore.extractors.hf_audio`);
ALiBi makes the model position-free, so chunking only limits the attention span.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np

from blemore.extractors._hf import (
    CHECKPOINT_SUFFIXES,
    checkpoint_shapes,
    find_local,
    finite_or_fail,
    load_state_dict,
)
from blemore.extractors.base import register_extractor
from blemore.extractors.wav2vec2 import Wav2Vec2Config, Wav2Vec2Family
from blemore.validate import SettingsError
from blemore.weights import WeightsError

__all__ = ["Emotion2vecConfig", "Emotion2vec", "Emotion2vecPlusLarge", "build_emotion2vec",
           "emotion2vec_config_from_state_dict", "load_emotion2vec", "alibi_slopes"]

PREFIX = "modality_encoders.AUDIO."
#: the conv front end's strides (not stored in the weights); kernels are checked against the file
CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
_GRANULARITY = ("frame", "utterance")


@dataclass
class Emotion2vecConfig(Wav2Vec2Config):
    """Settings of the emotion2vec extractors: the speech-encoder settings (``layers``,
    ``layer_pool``, chunking, runtime) and ``granularity`` (frame | utterance)."""

    granularity: str = "frame"

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = []
        if self.granularity not in _GRANULARITY:
            problems.append(f"granularity must be one of {_GRANULARITY}, got {self.granularity!r}")
        if self.output != "frames":
            problems.append("emotion2vec has no output='avd' head; use granularity=utterance for one row per clip")
        if problems:
            raise SettingsError("; ".join(problems))


def alibi_slopes(heads: int) -> list[float]:
    """The ALiBi head slopes: a geometric series for a power of two, interleaved otherwise."""
    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


def _count(shapes: dict, prefix: str) -> int:
    idx = {int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix)}
    return max(idx) + 1 if idx else 0


def emotion2vec_config_from_state_dict(shapes: dict, num_heads: int | None = None) -> dict:
    """The architecture of an emotion2vec checkpoint from its tensor shapes; ``ValueError`` naming
    what is missing when it is not one."""
    need = [PREFIX + "local_encoder.conv_layers.0.0.weight", PREFIX + "project_features.2.weight",
            PREFIX + "relative_positional_encoder.1.0.weight", PREFIX + "extra_tokens",
            PREFIX + "context_encoder.blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc1.weight"]
    missing = [k for k in need if k not in shapes]
    if missing:
        raise WeightsError(f"not an emotion2vec (data2vec 2.0 audio) checkpoint: missing {', '.join(missing)}")
    n_conv = _count(shapes, PREFIX + "local_encoder.conv_layers.")
    kernels = tuple(int(shapes[f"{PREFIX}local_encoder.conv_layers.{i}.0.weight"][2]) for i in range(n_conv))
    if kernels != CONV_KERNELS:
        raise WeightsError(f"unexpected conv front end kernels {kernels}; emotion2vec uses {CONV_KERNELS}")
    if f"{PREFIX}local_encoder.conv_layers.0.2.1.weight" not in shapes:
        raise WeightsError("only the layer-norm conv front end (extractor_mode layer_norm) is supported")
    proj = shapes[need[1]]
    dim = int(proj[0])
    pos = shapes[need[2]]
    alibi = shapes.get(PREFIX + "alibi_scale")
    if alibi is not None and len(alibi) == 4:  # older files: the per-layer axis was added later
        alibi = (1, *alibi)
    if alibi is None or alibi[0] != 1:
        raise WeightsError(f"unsupported ALiBi scale {alibi}: expected one learned scale shared by all layers "
                         "(learned_alibi_scale_per_layer = false)")
    if PREFIX + "relative_positional_encoder.0.weight" in shapes:
        raise WeightsError("unsupported variant: a LayerNorm before the convolutional positional encoder (conv_pos_pre_ln)")
    heads = int(num_heads or (alibi[2] if alibi is not None and len(alibi) == 5 and alibi[2] > 1 else dim // 64))
    return {
        "dim": dim, "feature_dim": int(proj[1]), "conv_channels": [int(shapes[f"{PREFIX}local_encoder.conv_layers."
                                                                            f"{i}.0.weight"][0]) for i in range(n_conv)],
        "pos_depth": len([k for k in shapes if re.fullmatch(re.escape(PREFIX) + r"relative_positional_encoder\.\d+\.0\.weight",
                                                               k)]),
        "pos_kernel": int(pos[2]), "pos_groups": dim // int(pos[1]),
        "prenet_depth": _count(shapes, PREFIX + "context_encoder.blocks."),
        "depth": _count(shapes, "blocks."), "num_heads": heads,
        "mlp_hidden": int(shapes["blocks.0.mlp.fc1.weight"][0]),
        "extra_tokens": int(shapes[need[3]][1]),
        "prenet_norm": PREFIX + "context_encoder.norm.weight" in shapes,
        "alibi_scale_shape": list(alibi) if alibi is not None else None,
    }


def build_emotion2vec(cfg: dict):
    """The network for a config dict (see :func:`emotion2vec_config_from_state_dict`), random weights.

    ``model(wave (B, N), output_hidden_states=False)`` returns an object with ``last_hidden_state``
    ``(B, T, D)`` and, when asked, ``hidden_states`` (the input to ``blocks`` and each block's
    output), like a ``transformers`` speech model; ``model.config`` has ``hidden_size``,
    ``num_hidden_layers``, ``conv_kernel`` and ``conv_stride``."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    dim, heads = cfg["dim"], cfg["num_heads"]

    class Transpose(nn.Module):
        def forward(self, x):
            return x.transpose(-2, -1)

    class SamePad(nn.Module):
        """Drop the extra last step a symmetric padding gives an even kernel."""

        def __init__(self, kernel: int):
            super().__init__()
            self.remove = 1 if kernel % 2 == 0 else 0

        def forward(self, x):
            return x[:, :, : -self.remove] if self.remove else x

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x, bias):
            b, t, _ = x.shape
            q, k, v = self.qkv(x).reshape(b, t, 3, heads, -1).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
            return self.proj(out.transpose(1, 2).reshape(b, t, dim))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(dim, cfg["mlp_hidden"])
            self.act = nn.GELU()
            self.fc2 = nn.Linear(cfg["mlp_hidden"], dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Block(nn.Module):  # post-norm (layer_norm_first = false)
        def __init__(self):
            super().__init__()
            self.norm1, self.attn = nn.LayerNorm(dim), Attention()
            self.norm2, self.mlp = nn.LayerNorm(dim), Mlp()

        def forward(self, x, bias):
            x = self.norm1(x + self.attn(x, bias))
            return self.norm2(x + self.mlp(x))

    class ContextEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(cfg["prenet_depth"]))
            self.norm = nn.LayerNorm(dim) if cfg["prenet_norm"] else None

        def forward(self, x, bias):
            if self.norm is not None:
                x = self.norm(x)
            for blk in self.blocks:
                x = blk(x, bias)
            return x

    class LocalEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c_in = [], 1
            for c, k, s in zip(cfg["conv_channels"], CONV_KERNELS, CONV_STRIDES):
                layers.append(nn.Sequential(nn.Conv1d(c_in, c, k, stride=s, bias=False), nn.Identity(),
                                            nn.Sequential(Transpose(), nn.LayerNorm(c), Transpose()), nn.GELU()))
                c_in = c
            self.conv_layers = nn.ModuleList(layers)

        def forward(self, wave):
            x = wave.unsqueeze(1)
            for layer in self.conv_layers:
                x = layer(x)
            return x

    class AudioEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            k = cfg["pos_kernel"]
            self.local_encoder = LocalEncoder()
            self.project_features = nn.Sequential(Transpose(), nn.LayerNorm(cfg["feature_dim"]),
                                                  nn.Linear(cfg["feature_dim"], dim))
            self.relative_positional_encoder = nn.Sequential(Transpose(), *[
                nn.Sequential(nn.Conv1d(dim, dim, k, padding=k // 2, groups=cfg["pos_groups"]), SamePad(k),
                              Transpose(), nn.LayerNorm(dim, elementwise_affine=False), Transpose(), nn.GELU())
                for _ in range(cfg["pos_depth"])], Transpose())
            self.context_encoder = ContextEncoder()
            self.extra_tokens = nn.Parameter(torch.zeros(1, cfg["extra_tokens"], dim))
            shape = cfg.get("alibi_scale_shape") or [1, 1, heads, 1, 1]
            self.alibi_scale = nn.Parameter(torch.ones(shape))
            self.register_buffer("slopes", torch.tensor(alibi_slopes(heads)), persistent=False)

        def forward(self, wave):
            x = self.project_features(self.local_encoder(wave))
            x = x + self.relative_positional_encoder(x)
            t = x.shape[1]
            idx = torch.arange(t, device=x.device)
            dist = -(idx[None, :] - idx[:, None]).abs().float()
            bias = self.slopes.view(1, -1, 1, 1) * dist  # (1, H, T, T)
            bias = bias * self.alibi_scale.clamp_min(0).reshape(1, -1, 1, 1)
            n = self.extra_tokens.shape[1]
            bias = F.pad(bias, (n, 0, n, 0))
            x = torch.cat([self.extra_tokens.expand(x.shape[0], -1, -1), x], dim=1)
            return self.context_encoder(x, bias), bias

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.modality_encoders = nn.ModuleDict({"AUDIO": AudioEncoder()})
            self.blocks = nn.ModuleList(Block() for _ in range(cfg["depth"]))
            self.cfg = dict(cfg)
            self.config = SimpleNamespace(hidden_size=dim, num_hidden_layers=cfg["depth"],
                                          conv_kernel=list(CONV_KERNELS), conv_stride=list(CONV_STRIDES))

        def forward(self, wave, output_hidden_states: bool = False):
            x, bias = self.modality_encoders["AUDIO"](wave)
            n = cfg["extra_tokens"]
            states = [x[:, n:]]
            for blk in self.blocks:
                x = blk(x, bias)
                states.append(x[:, n:])
            return SimpleNamespace(last_hidden_state=states[-1],
                                   hidden_states=tuple(states) if output_hidden_states else None)

    return Model()


def load_emotion2vec(path: Path, num_heads: int | None = None) -> tuple[object, dict]:
    """Build the network for a ``model.pt`` (or a folder holding one) and load it strictly."""
    path = Path(path)
    if path.is_dir():
        files = [path / "model.pt"] if (path / "model.pt").is_file() else sorted(
            p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        if not files:
            raise WeightsError(f"{path}: no model.pt (or other checkpoint file) in the folder")
        file = files[0]
    else:
        file = path
    try:
        sd = dict(load_state_dict(file))
    except Exception as exc:  # e.g. fairseq checkpoints that pickle their config objects
        raise WeightsError(f"{file}: cannot be read as a tensor checkpoint ({type(exc).__name__}: {exc}); use the "
                         "model.pt of the Hugging Face emotion2vec/* repositories") from exc
    key = PREFIX + "alibi_scale"
    if key in sd and sd[key].dim() == 4:
        sd[key] = sd[key].unsqueeze(0)
    cfg = emotion2vec_config_from_state_dict({k: tuple(v.shape) for k, v in sd.items()}, num_heads=num_heads)
    model = build_emotion2vec(cfg)
    own = model.state_dict()
    missing = sorted(k for k in own if k not in sd)
    wrong = sorted(f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own
                   if k in sd and tuple(sd[k].shape) != tuple(own[k].shape))
    if missing or wrong:
        raise WeightsError(f"{file}: does not load into emotion2vec strictly: "
                         + "; ".join(p for p in (f"missing {', '.join(missing[:6])}" if missing else "",
                                                 f"shape mismatches {'; '.join(wrong[:4])}" if wrong else "") if p))
    model.load_state_dict({k: sd[k].float() for k in own}, strict=True)
    ignored = [k for k in sd if k not in own]
    normalize = True
    yaml_file = (path if path.is_dir() else path.parent) / "config.yaml"
    if yaml_file.is_file():
        m = re.search(r"^\s*normalize:\s*(true|false)\s*$", yaml_file.read_text(), re.MULTILINE | re.IGNORECASE)
        normalize = m is None or m.group(1).lower() == "true"
    return model, {"config": cfg, "ignored": len(ignored), "normalize": normalize, "file": str(file)}


@register_extractor
class Emotion2vec(Wav2Vec2Family):
    """emotion2vec base (768-d, 8 + 4 layers): frame (50/s) or utterance embeddings."""

    name = "emotion2vec"
    version = "1"
    default_weights = "emotion2vec/emotion2vec_base"
    description = "emotion2vec base (data2vec 2.0, emotion pre-training): 768-d per 20 ms or per clip; --layers"
    config_class = Emotion2vecConfig
    download_patterns: ClassVar[tuple[str, ...]] = ("model.pt", "config.yaml", "tokens.txt")
    nominal_dim = 768
    nominal_layers = 8
    column_prefix = "e2v"

    def _file_config(self) -> dict | None:
        """The architecture of local weights, read from the tensor shapes (None when not local)."""
        local = find_local(self.weights_spec)
        if local is not None and local.is_dir():
            local = local / "model.pt"
        if local is None or not local.is_file():
            return None
        try:
            shapes = checkpoint_shapes(local)
            key = PREFIX + "alibi_scale"
            if key in shapes and len(shapes[key]) == 4:
                shapes[key] = (1, *shapes[key])
            return emotion2vec_config_from_state_dict(shapes)
        except Exception:  # load() will say why
            return None

    def _width(self) -> int:
        return int((self._file_config() or {}).get("dim", self.nominal_dim))

    def layer_count(self) -> int:
        if self.model is not None:
            return super().layer_count()
        return int((self._file_config() or {}).get("depth", self.nominal_layers))

    def _load_model(self, path: Path) -> None:
        self.model, self.load_info = load_emotion2vec(path)
        self._setup(self.model, {"do_normalize": self.load_info["normalize"]})

    @property
    def rate(self) -> float | None:
        return None if self.config.granularity == "utterance" else super().rate

    def preprocess(self, wave: np.ndarray) -> np.ndarray:
        """``F.layer_norm`` over the whole clip (eps 1e-5) when the checkpoint normalises, then
        zero-padding to one 25 ms window."""
        w = np.asarray(wave, dtype=np.float32).reshape(-1)
        if self.do_normalize and w.size:
            w = ((w - w.mean()) / np.sqrt(w.var() + 1e-5)).astype(np.float32)
        if 0 < len(w) < self.field:
            w = np.pad(w, (0, self.field - len(w)))
        return w

    def embed(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows, times = super().embed(wave)
        if self.config.granularity == "utterance" and len(rows):
            return finite_or_fail(rows.mean(axis=0, keepdims=True).astype(np.float32)), np.zeros(1)
        return rows, times


@register_extractor
class Emotion2vecPlusLarge(Emotion2vec):
    """emotion2vec+ large (1024-d): frame or utterance embeddings."""

    name = "emotion2vec-plus-large"
    default_weights = "emotion2vec/emotion2vec_plus_large"
    description = "emotion2vec+ large (data2vec 2.0, emotion pre-training): 1024-d per 20 ms or per clip; --layers"
    nominal_dim = 1024
    nominal_layers = 8
    column_prefix = "e2vpl"
