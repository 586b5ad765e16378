"""The wav2vec2 family: any wav2vec2 / HuBERT / WavLM / data2vec-audio checkpoint by id, with layer
ranges, and audEERING's dimensional emotion model with its arousal/dominance/valence head.

Extractors (same input pipeline, chunking and 20 ms rows as :mod:`blemore.extractors.hf_audio`):

* ``wav2vec2``: default ``facebook/wav2vec2-large-lv60`` (24 layers, 1024-d). ``--weights`` takes
  any checkpoint whose ``config.json`` has a wav2vec2-style ``model_type`` (:data:`MODEL_TYPES`);
  the base model is built with ``transformers.AutoModel`` (a fine-tuned checkpoint's task head,
  stored under ``wav2vec2.`` / ``hubert.`` prefixes beside it, is skipped).
* ``wav2vec2-emotion``: default ``audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim``
  (wav2vec2-large-robust pruned to 12 layers and fine-tuned on MSP-Podcast for arousal, dominance
  and valence). ``output="avd"`` gives one row per clip with its three regression outputs, from
  the checkpoint's head: the mean over time of the last hidden state, then ``classifier.dense``,
  tanh, ``classifier.out_proj`` (:class:`AVDHead` has exactly those parameter names and loads
  them strictly). The clip is encoded in the usual chunks (``chunk_seconds``), so clips longer
  than one chunk are pooled over chunked rows rather than one pass over the whole clip.

Layer selection (``layers``): unset = the last hidden state; ``"12"`` one hidden state;
``"6-12"`` the mean of states 6..12 (index 0 = the transformer input, ``L`` = the last layer), or
their concatenation with ``layer_pool="concat"`` (``(12 - 6 + 1) x D`` columns); ``"all"`` keeps
every hidden state: each clip's array is ``(T, L + 1, D)``, a layer axis the feature store keeps
(``config.json`` records it under ``layer_axis``), so that a benchmark can pick a range later with
``--features STORE/wav2vec2[layers=6-12]`` without extracting again (see :mod:`blemore.store`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from blemore.extractors._hf import (
    ExtractorUnavailableError,
    finite_or_fail,
    folder_state_dict,
    from_pretrained_quiet,
    parse_layers,
    read_json,
)
from blemore.extractors.base import ExtractResult, register_extractor
from blemore.extractors.hf_audio import AudioEncoder, AudioEncoderConfig
from blemore.extractors._hf import pick_device
from blemore.validate import SettingsError
from blemore.weights import WeightsError

__all__ = ["Wav2Vec2Config", "Wav2Vec2Family", "Wav2Vec2Emotion", "AVDHead", "build_avd_head", "MODEL_TYPES"]

#: ``model_type`` values of the wav2vec2-style encoders (conv front end, 20 ms rows, hidden states)
MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "wav2vec2-conformer", "unispeech",
               "unispeech-sat", "wav2vec2-bert")
_POOLS = ("mean", "concat")
_OUTPUTS = ("frames", "avd")
AVD_COLUMNS = ("arousal", "dominance", "valence")


@dataclass
class Wav2Vec2Config(AudioEncoderConfig):
    """Settings of the wav2vec2 family (see the module docstring).

    ``layers``: None, ``"N"``, ``"A-B"`` or ``"all"``. ``layer_pool``: ``mean`` or ``concat`` for
    a range. ``output``: ``frames`` (hidden-state rows every 20 ms) or ``avd`` (one row per clip:
    arousal, dominance, valence; needs a checkpoint with that head).
    """

    layer_pool: str = "mean"
    output: str = "frames"

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = []
        if self.layer_pool not in _POOLS:
            problems.append(f"layer_pool must be one of {_POOLS}, got {self.layer_pool!r}")
        if self.output not in _OUTPUTS:
            problems.append(f"output must be one of {_OUTPUTS}, got {self.output!r}")
        elif self.output == "avd" and self.layers is not None:
            problems.append("output='avd' reads the last layer (the head's input): leave layers unset")
        spec = parse_layers(self.layers)
        if self.layer_pool == "concat" and spec is not None and spec.every:
            problems.append("layer_pool='concat' needs a range (e.g. layers='6-12'), not layers='all'")
        if problems:
            raise SettingsError("; ".join(problems))


def build_avd_head(hidden: int, n_out: int = 3):
    """audEERING's regression head: ``classifier.dense`` (hidden x hidden), tanh, ``classifier.out_proj``
    (n_out x hidden); dropout is inactive at inference. Returns a ``torch.nn.Module``."""
    import torch
    from torch import nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(hidden, hidden)
            self.out_proj = nn.Linear(hidden, n_out)

        def forward(self, x):
            return self.out_proj(torch.tanh(self.dense(x)))

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = Classifier()

        def forward(self, pooled):
            return self.classifier(pooled)

    return Head()


class AVDHead:
    """Documentation anchor: :func:`build_avd_head` returns the module (built lazily: no torch at import)."""


@register_extractor
class Wav2Vec2Family(AudioEncoder):
    """Any wav2vec2-style encoder by id, folder or file; layer ranges, concatenation, every layer."""

    name = "wav2vec2"
    version = "1"
    default_weights = "facebook/wav2vec2-large-lv60"
    description = ("wav2vec2-style encoder by id (default wav2vec2-large-lv60): 1024-d per 20 ms; --layers N, "
                   "A-B (mean, or layer_pool=concat) or all (layer axis)")
    config_class = Wav2Vec2Config
    model_types: ClassVar[tuple[str, ...]] = MODEL_TYPES
    column_prefix = "w2v"
    nominal_layers: ClassVar[int] = 24

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.head = None

    # -- shape ---------------------------------------------------------------------------------------
    def _width(self) -> int:
        return super()._infer_dim()

    def _n_selected(self) -> int:
        spec = parse_layers(self.config.layers)
        return 1 if spec is None else spec.last - spec.first + 1

    def _infer_dim(self) -> int:
        if self.config.output == "avd":
            return len(AVD_COLUMNS)
        width = self._width()
        return width * self._n_selected() if self.config.layer_pool == "concat" else width

    def _model_dim(self) -> int:
        if self.config.output == "avd":
            return len(AVD_COLUMNS)
        width = int(self.model.config.hidden_size)
        return width * self._n_selected() if self.config.layer_pool == "concat" else width

    @property
    def columns(self) -> list[str]:
        if self.config.output == "avd":
            return list(AVD_COLUMNS)
        return super().columns

    @property
    def rate(self) -> float | None:
        return None if self.config.output == "avd" else super().rate

    # -- loading -------------------------------------------------------------------------------------
    def _load_model(self, path: Path) -> None:
        import transformers

        if path.is_file():
            raise WeightsError(f"{self.name}: expected a transformers model folder (config.json + weights), got the "
                             f"file {path}; convert fairseq checkpoints with transformers' conversion script first")
        cfg = read_json(path / "config.json")
        if cfg.get("model_type") not in self.model_types:
            raise WeightsError(f"{self.name}: {path} holds a {cfg.get('model_type')!r} model; expected a wav2vec2-style "
                             f"model_type, one of {', '.join(self.model_types)}")
        self.model = from_pretrained_quiet(transformers.AutoModel, path)
        self.head = self._load_head(path) if self.config.output == "avd" else None
        self._setup(self.model, read_json(path / "preprocessor_config.json"))

    def _load_head(self, path: Path):
        sd = folder_state_dict(path)
        head_sd = {k: v.float() for k, v in sd.items() if k.startswith("classifier.")}
        if not {"classifier.dense.weight", "classifier.out_proj.weight"} <= set(head_sd):
            raise ExtractorUnavailableError(
                f"{self.name}: output='avd' needs a checkpoint with audEERING's regression head (classifier.dense, "
                f"classifier.out_proj); {path} has {sorted(head_sd) or 'no classifier.* tensors'}")
        head = build_avd_head(int(head_sd["classifier.dense.weight"].shape[1]),
                              int(head_sd["classifier.out_proj.weight"].shape[0]))
        head.load_state_dict(head_sd, strict=True)
        return head

    def _finish_loading(self) -> None:
        super()._finish_loading()
        if self.head is not None:
            self.head.eval().requires_grad_(False).to(self.device)

    @classmethod
    def from_model(cls, model, preprocessor_config=None, head=None, **settings):
        """As :meth:`HFExtractor.from_model`; ``head``: an :func:`build_avd_head` module for ``output='avd'``."""
        e = cls(**settings)
        e.head = head
        e.device = pick_device(e.config.device)
        e.model = model
        e._setup(model, preprocessor_config or {})
        e._finish_loading()
        return e

    # -- computing -----------------------------------------------------------------------------------
    def pool_hidden(self, res):
        import torch

        spec = parse_layers(self.config.layers)
        if spec is not None and not spec.every and self.config.layer_pool == "concat":
            return torch.cat([h.float() for h in res.hidden_states[spec.first: spec.last + 1]], dim=-1)
        return super().pool_hidden(res)  # last state, mean of a range, or every state stacked

    def embed(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.config.output != "avd":
            return super().embed(wave)
        import torch

        self.load()
        frames_dim, self._dim = self._dim, int(self.model.config.hidden_size)
        try:
            frames, _ = super().embed(wave)  # last hidden state rows
        finally:
            self._dim = frames_dim
        with torch.inference_mode():
            pooled = torch.from_numpy(frames.mean(axis=0, keepdims=True)).to(self.device)
            avd = self.head(pooled).float().cpu().numpy()
        return finite_or_fail(avd.astype(np.float32)), np.zeros(1)

    def extract(self, path: str | Path) -> ExtractResult:
        r = super().extract(path)
        if self.config.output == "avd" and r.status == "ok":
            r.info["rows"] = "one per clip (utterance-level arousal, dominance, valence)"
        return r


@register_extractor
class Wav2Vec2Emotion(Wav2Vec2Family):
    """audEERING's wav2vec2-large-robust-12-ft-emotion-msp-dim (12 layers, 1024-d; A/D/V head)."""

    name = "wav2vec2-emotion"
    version = "1"
    default_weights = "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"
    description = ("wav2vec2 fine-tuned for arousal/dominance/valence (audEERING, MSP-Podcast): 1024-d per 20 ms, "
                   "or output=avd (3 columns per clip); --layers as wav2vec2")
    column_prefix = "w2vemo"
    nominal_layers = 12

