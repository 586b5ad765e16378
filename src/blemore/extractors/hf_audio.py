"""Self-supervised speech encoders: ``hubert-large`` and ``wavlm-large`` (via ``transformers``).

Both read 16 kHz mono audio and give one 1024-d row per 20 ms (50 rows/s), as in the
BLEMORE paper. By default a row is the model's last hidden state; ``layers="12"`` takes
one hidden state and ``layers="6-12"`` the mean of a range (index 0 is the transformer
input, index 24 the last layer of a Large model): middle layers are known to carry more
paralinguistic information than the last one.

Input pipeline (what ``Wav2Vec2FeatureExtractor`` does for these checkpoints): the clip is
decoded to mono float32 at 16 kHz, and normalised to zero mean and unit variance over the
whole clip when the checkpoint's ``preprocessor_config.json`` says ``do_normalize`` (the
``normalize`` setting overrides it; with no preprocessor config the large models'
recipe, normalisation on, is used).

Timing: the convolutional front end has a receptive field of 400 samples (25 ms) and a hop
of 320 samples (20 ms), so a clip of N samples gives ``(N - 400) // 320 + 1`` rows; row
``i`` covers samples ``[320 i, 320 i + 400)`` and its time stamp is the start of that
window, ``i / 50`` s. A clip shorter than 25 ms is zero-padded to one window.

Long clips are cut into chunks of ``chunk_seconds`` on the 20 ms grid, each run with
``context_seconds`` of extra audio on both sides whose rows are dropped, so every kept
row saw at least that much context; the rows are then concatenated. Chunks of equal length
are batched (``batch_size`` chunks per forward pass). Memory is bounded by the chunk size,
whatever the clip's length.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from blemore.extractors._hf import (
    HFConfig,
    HFExtractor,
    find_local,
    finite_or_fail,
    from_pretrained_quiet,
    media_status,
    parse_layers,
    read_audio_16k,
    read_json,
)
from blemore.extractors.base import ExtractResult, register_extractor
from blemore.validate import SettingsError
from blemore.weights import WeightsError

__all__ = ["AudioEncoderConfig", "AudioEncoder", "HubertLarge", "WavLMLarge", "frame_geometry", "num_frames"]

SAMPLE_RATE = 16000


@dataclass
class AudioEncoderConfig(HFConfig):
    """Settings of the speech encoders (see the module docstring).

    ``normalize``: zero-mean unit-variance waveform normalisation; None = the checkpoint's
    ``do_normalize``. ``chunk_seconds``/``context_seconds``: chunking of long clips.
    """

    normalize: bool | None = None
    chunk_seconds: float = 20.0
    context_seconds: float = 2.0
    batch_size: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chunk_seconds <= 0:
            raise SettingsError(f"chunk_seconds must be > 0, got {self.chunk_seconds}")
        if self.context_seconds < 0:
            raise SettingsError(f"context_seconds must be >= 0, got {self.context_seconds}")


def frame_geometry(conv_kernel: list[int], conv_stride: list[int]) -> tuple[int, int]:
    """(receptive field, hop) in samples of a stack of 1-D convolutions."""
    field, jump = 1, 1
    for k, s in zip(conv_kernel, conv_stride):
        field += (k - 1) * jump
        jump *= s
    return field, jump


def num_frames(n_samples: int, field: int, hop: int) -> int:
    """Rows a convolutional front end gives for ``n_samples`` (0 when shorter than one window)."""
    return 0 if n_samples < field else (n_samples - field) // hop + 1


def zero_mean_unit_var(wave: np.ndarray) -> np.ndarray:
    """The normalisation of ``Wav2Vec2FeatureExtractor(do_normalize=True)`` for one clip."""
    w = wave.astype(np.float32)
    return ((w - w.mean()) / np.sqrt(w.var() + 1e-7)).astype(np.float32)


class AudioEncoder(HFExtractor):
    """Base of the speech encoders; subclasses set the name, default weights and model type."""

    modality: ClassVar[str] = "audio"
    config_class = AudioEncoderConfig
    nominal_dim: ClassVar[int] = 1024
    nominal_layers: ClassVar[int] = 24  # the Large models
    model_types: ClassVar[tuple[str, ...]] = ()
    model_class_name: ClassVar[str] = ""

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.field, self.hop = 400, 320
        self.do_normalize = True
        self.num_layers: int | None = None

    @property
    def rate(self) -> float:
        return SAMPLE_RATE / self.hop

    def _infer_dim(self) -> int:
        folder = find_local(self.weights_spec)
        if folder is not None and folder.is_dir():
            return int(read_json(folder / "config.json").get("hidden_size", self.nominal_dim))
        return self.nominal_dim

    # -- loading ------------------------------------------------------------------------------
    def _load_model(self, path: Path) -> None:
        import transformers

        if path.is_file():
            raise WeightsError(
                f"{self.name}: expected a transformers model folder (config.json + weights), got the file "
                f"{path}; convert fairseq checkpoints with transformers' conversion script first"
            )
        cfg = read_json(path / "config.json")
        if self.model_types and cfg.get("model_type") not in self.model_types:
            raise WeightsError(
                f"{self.name}: {path} holds a {cfg.get('model_type')!r} model; expected one of {self.model_types}"
            )
        model_cls = getattr(transformers, self.model_class_name)
        self.model = from_pretrained_quiet(model_cls, path)
        self._setup(self.model, read_json(path / "preprocessor_config.json"))

    def _setup(self, model, prep: dict) -> None:
        mcfg = model.config
        self.field, self.hop = frame_geometry(list(mcfg.conv_kernel), list(mcfg.conv_stride))
        self.num_layers = int(mcfg.num_hidden_layers)
        if prep.get("sampling_rate", SAMPLE_RATE) != SAMPLE_RATE:
            raise WeightsError(f"{self.name}: the checkpoint expects {prep['sampling_rate']} Hz audio; "
                             "only 16 kHz is supported")
        if self.config.normalize is not None:
            self.do_normalize = bool(self.config.normalize)
        else:
            self.do_normalize = bool(prep.get("do_normalize", True))
        self._check_layers()

    def _check_layers(self) -> None:
        spec = parse_layers(self.config.layers)
        if spec is not None:
            spec.check(self.num_layers, self.name)

    def _model_dim(self) -> int:
        return int(self.model.config.hidden_size)

    # -- computing -----------------------------------------------------------------------------
    def preprocess(self, wave: np.ndarray) -> np.ndarray:
        """The model input for a 16 kHz mono clip: normalised as the checkpoint expects, and
        zero-padded to one window when shorter."""
        w = np.asarray(wave, dtype=np.float32).reshape(-1)
        if self.do_normalize:
            w = zero_mean_unit_var(w)
        if 0 < len(w) < self.field:
            w = np.pad(w, (0, self.field - len(w)))
        return w

    def chunk_plan(self, n_samples: int) -> list[tuple[int, int, int, int]]:
        """Chunks as ``(first_input_row, end_input_row, first_kept_row, end_kept_row)``, in rows.

        Input rows ``[a, b)`` need samples ``[a * hop, (b - 1) * hop + field)``.
        """
        total = num_frames(n_samples, self.field, self.hop)
        core = max(1, int(round(self.config.chunk_seconds * SAMPLE_RATE / self.hop)))
        ctx = int(round(self.config.context_seconds * SAMPLE_RATE / self.hop))
        if total <= core + ctx:  # one pass: no chunk boundary anywhere
            return [(0, total, 0, total)] if total else []
        plan = []
        for a in range(0, total, core):
            b = min(a + core, total)
            plan.append((max(0, a - ctx), min(total, b + ctx), a, b))
        return plan

    # -- what a row is (``row_shape``: (dim,), or (L + 1, dim) with layers="all") -----------------
    @property
    def wants_hidden_states(self) -> bool:
        return parse_layers(self.config.layers) is not None

    def pool_hidden(self, res):
        """``(B, T, *row_shape)`` tensor from a model output: the last hidden state, the mean of
        the selected hidden states, or all of them stacked (``layers="all"``)."""
        spec = parse_layers(self.config.layers)
        return spec.pool(res.hidden_states) if spec is not None else res.last_hidden_state

    def embed(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``(T, D)`` float32 and their times ``(T,)`` for a 16 kHz mono waveform."""
        import torch

        self.load()
        w = self.preprocess(wave)
        plan = self.chunk_plan(len(w))
        out = np.zeros((plan[-1][3] if plan else 0, *self.row_shape), dtype=np.float32)
        groups: dict[int, list[tuple[int, int, int, int]]] = {}
        for c in plan:
            groups.setdefault(c[1] - c[0], []).append(c)
        n_batches = sum(-(-len(g) // self.config.batch_size) for g in groups.values())
        with self._progress(n_batches, f"{self.name} chunks") as bar, torch.inference_mode():
            for _, chunks in sorted(groups.items()):
                for i in range(0, len(chunks), self.config.batch_size):
                    batch = chunks[i: i + self.config.batch_size]
                    x = np.stack([w[a * self.hop: (b - 1) * self.hop + self.field] for a, b, _, _ in batch])
                    x_t = torch.from_numpy(x).to(self.device)
                    with self._autocast():
                        res = self.model(x_t, output_hidden_states=self.wants_hidden_states)
                    h = self.pool_hidden(res).float().cpu().numpy()
                    for row, (a, b, ka, kb) in zip(h, batch):
                        if row.shape[0] != b - a:
                            raise RuntimeError(f"{self.name}: expected {b - a} rows for a chunk, got {row.shape[0]}")
                        out[ka:kb] = row[ka - a: kb - a]
                    bar.update(1)
        times = np.arange(len(out), dtype=np.float64) * self.hop / SAMPLE_RATE
        return finite_or_fail(out), times

    def extract(self, path: str | Path) -> ExtractResult:
        self.load()
        try:
            wave = read_audio_16k(path)
        except Exception as exc:  # no audio stream or unreadable media: record, do not raise
            return self._failed(exc, media_status(exc))
        if wave.size == 0:
            return ExtractResult(np.zeros((0, self.dim), np.float32), np.zeros(0), status="no-audio",
                                 error="no audio stream or empty audio")
        try:
            feats, times = self.embed(wave)
        except Exception as exc:
            return self._failed(exc)
        return ExtractResult(feats, times, info={"frames": int(len(feats)), "seconds": len(wave) / SAMPLE_RATE})


@register_extractor
class HubertLarge(AudioEncoder):
    """HuBERT Large pretrained on Libri-Light 60k h (``facebook/hubert-large-ll60k``)."""

    name = "hubert-large"
    version = "1"
    default_weights = "facebook/hubert-large-ll60k"
    description = "HuBERT Large (LL-60k): 1024-d per 20 ms from 16 kHz audio; last layer or --layers"
    model_types = ("hubert",)
    model_class_name = "HubertModel"
    column_prefix = "hubert"


@register_extractor
class WavLMLarge(AudioEncoder):
    """WavLM Large (``microsoft/wavlm-large``)."""

    name = "wavlm-large"
    version = "1"
    default_weights = "microsoft/wavlm-large"
    description = "WavLM Large: 1024-d per 20 ms from 16 kHz audio; last layer or --layers"
    model_types = ("wavlm",)
    model_class_name = "WavLMModel"
    column_prefix = "wavlm"

