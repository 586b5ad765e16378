"""Shared machinery of the pretrained-encoder extractors (HuBERT, WavLM, CLIP, ImageBind, VideoMAE).

Nothing here imports torch or transformers at module import time: the functions that need
them import them when called, so that listing the registry stays fast.

Four concerns live here:

* **Weights.** An extractor's ``weights`` setting is a Hugging Face repository id
  (``facebook/hubert-large-ll60k``), a local folder (a ``save_pretrained`` folder, or a
  snapshot copied from another machine) or a local checkpoint file (``.pth``, ``.bin``,
  ``.safetensors``). :func:`resolve_weights` turns it into a local path without ever waiting
  on the network: a local path is used as is, a cached repository is used from the Hugging
  Face cache, and only when neither holds and downloads are allowed (``HF_HUB_OFFLINE`` /
  ``TRANSFORMERS_OFFLINE`` unset, the hub host reachable within a few seconds) is the
  repository downloaded. Otherwise :class:`WeightsUnavailableError` says at once which id
  was looked for, where, and how to pre-download it.
  :func:`weights_available` answers the same question offline, in milliseconds.
* **Devices and precision.** ``device`` is ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``) or
  ``mps``; ``precision`` ``auto`` runs float16 autocast on CUDA and float32 elsewhere.
* **Layer selection.** ``layers`` is ``None`` (the model's final output), one hidden-state
  index (``"12"``), an inclusive range whose hidden states are averaged (``"6-12"``), or
  ``"all"``: every hidden state, stacked on a layer axis (rows ``(L + 1, D)``; the store keeps
  it and ``config.json`` records it as ``layer_axis``, see :mod:`blemore.store`). Index 0 is the
  transformer input (the embeddings), index ``L`` the last layer's output, as in
  ``transformers``' ``output_hidden_states``.
* **Image preprocessing on the device.** :class:`ImagePreprocess` resizes the shorter side,
  centre-crops and normalises a batch of uint8 frames with torch operations on the model's
  device; its parameters are read from the checkpoint's ``preprocessor_config.json`` when
  there is one, so it follows the checkpoint's documented pipeline.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence
from urllib.parse import urlparse

import numpy as np

from blemore import media
from blemore.errors import BlemoreError
from blemore.extractors.base import Extractor, ExtractorConfig, ExtractResult
from blemore.validate import SettingsError
from blemore.weights import WeightsError

__all__ = [
    "WeightsUnavailableError",
    "ExtractorUnavailableError",
    "HFConfig",
    "HFExtractor",
    "ImagePreprocess",
    "LayerSpec",
    "parse_layers",
    "resolve_weights",
    "weights_available",
    "find_local",
    "hub_cache_dir",
    "pick_device",
    "autocast",
    "RUNTIME_FIELDS",
]

#: Files that make a folder a loadable model (a config plus some weights).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")
#: Files that describe a model folder: transformers' ``config.json``, or the ``config.yaml`` of
#: FunASR-format repositories (emotion2vec) that ship a ``model.pt``.
CONFIG_FILES = ("config.json", "config.yaml")
#: What a download fetches: the transformers config and weights only (some repositories also
#: hold the same weights in other formats, e.g. OpenCLIP's, several GB each).
DOWNLOAD_PATTERNS = ("config.json", "preprocessor_config.json", "model.safetensors",
                     "model.safetensors.index.json", "model-*-of-*.safetensors")

#: Config fields that say *how* features are computed on this machine, not *what* they are:
#: they are kept out of the store identity (``settings``) and reported under ``runtime``.
RUNTIME_FIELDS = ("device", "batch_size", "precision", "allow_download", "progress")


class WeightsUnavailableError(BlemoreError, RuntimeError):
    """The weights of an extractor are neither local, nor cached, nor downloadable now."""


from blemore.extractors.base import ExtractorUnavailableError  # noqa: E402,F401  (re-exported)


# ----------------------------------------------------------------------------- weights
def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE`` / ``HF_HOME`` aware)."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9_.\-]+\Z")


def _looks_like_repo_id(spec: str) -> bool:
    return bool(_REPO_ID.match(spec)) and not spec.startswith((".", "~")) and not spec.endswith(CHECKPOINT_SUFFIXES)


def _offline_env() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(k, "").strip().lower() in truthy for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _cached_snapshot(repo_id: str) -> Path | None:
    """The newest cached snapshot folder of ``repo_id`` that has a config and weights, or None."""
    repo_dir = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        return None
    candidates: list[Path] = []
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        candidates.append(snaps / ref.read_text().strip())
    candidates += sorted((p for p in snaps.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for snap in candidates:
        if _folder_has_model(snap):
            return snap
    return None


def _folder_has_model(folder: Path) -> bool:
    if not any((folder / c).is_file() for c in CONFIG_FILES):
        return False
    if any((folder / f).is_file() for f in WEIGHT_FILES):
        return True
    return any(p.suffix in CHECKPOINT_SUFFIXES for p in folder.iterdir() if p.is_file())


def _local_path(spec: str) -> Path | None:
    p = Path(spec).expanduser()
    return p if p.exists() else None


def find_local(spec: str) -> Path | None:
    """The local file or folder for ``spec`` (as given, or a cached snapshot), or None. Offline."""
    local = _local_path(spec)
    if local is not None:
        return local
    return _cached_snapshot(spec) if _looks_like_repo_id(spec) else None


def weights_available(spec: str) -> bool:
    """Whether ``spec`` (a repo id, folder or file) can be loaded here without a download.

    Looks only at the file system (the local path or the Hugging Face cache): never the network.
    """
    local = _local_path(spec)
    if local is not None:
        return local.is_file() or _folder_has_model(local)
    if _looks_like_repo_id(spec):
        return _cached_snapshot(spec) is not None
    return False


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _how_to_get(spec: str, extractor: str) -> str:
    return (
        f"Pre-download it on a machine with internet (`hf download {spec}`, or "
        f"`python -c \"from huggingface_hub import snapshot_download; snapshot_download('{spec}')\"`) "
        f"and copy the cache folder {hub_cache_dir()} here (or set HF_HOME to a copy), or pass a local "
        f"folder or checkpoint file: `blemore extract ... --extractor {extractor} --weights PATH`."
    )


def resolve_weights(spec: str, *, extractor: str = "?", allow_download: bool = True,
                    allow_patterns: Sequence[str] | None = None) -> Path:
    """A local folder or file for ``spec``, downloading only when allowed and possible.

    Raises :class:`WeightsUnavailableError` at once (no retries) when the weights are not
    local, not cached, and downloads are disabled or the hub is unreachable.
    """
    local = _local_path(spec)
    if local is not None:
        if local.is_dir() and not _folder_has_model(local):
            raise WeightsUnavailableError(
                f"{extractor}: weights folder {local} has no config.json with model weights "
                f"(expected config.json (or config.yaml) and one of {', '.join(WEIGHT_FILES)} or a *.pth / *.pt "
                "checkpoint)"
            )
        return local
    if not _looks_like_repo_id(spec):
        raise WeightsUnavailableError(
            f"{extractor}: weights {spec!r} is neither an existing file or folder nor a Hugging Face "
            "repository id of the form 'owner/name'"
        )
    snap = _cached_snapshot(spec)
    if snap is not None:
        return snap
    where = f"not in the Hugging Face cache ({hub_cache_dir()})"
    if _offline_env():
        raise WeightsUnavailableError(
            f"{extractor}: weights {spec!r} are {where} and downloads are disabled "
            f"(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set). {_how_to_get(spec, extractor)}"
        )
    if not allow_download:
        raise WeightsUnavailableError(
            f"{extractor}: weights {spec!r} are {where} and allow_download is off. {_how_to_get(spec, extractor)}"
        )
    if not _hub_reachable():
        raise WeightsUnavailableError(
            f"{extractor}: weights {spec!r} are {where} and the hub "
            f"({os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}) cannot be reached from here. "
            f"{_how_to_get(spec, extractor)}"
        )
    from huggingface_hub import snapshot_download

    patterns = list(allow_patterns or DOWNLOAD_PATTERNS)
    try:
        path = Path(snapshot_download(spec, allow_patterns=patterns))
    except Exception as exc:  # network errors, gated or missing repositories
        raise WeightsUnavailableError(f"{extractor}: downloading {spec!r} failed: {exc}. "
                                      f"{_how_to_get(spec, extractor)}") from exc
    if not _folder_has_model(path):
        try:  # repositories that only ship pytorch_model.bin
            path = Path(snapshot_download(spec, allow_patterns=patterns + ["pytorch_model*.bin"]))
        except Exception as exc:
            raise WeightsUnavailableError(f"{extractor}: downloading {spec!r} failed: {exc}") from exc
    return path


def local_model_config(spec: str) -> dict:
    """``config.json`` of the local folder or cached snapshot ``spec`` names ({} when none). Offline."""
    folder = find_local(spec)
    return read_json(folder / "config.json") if folder is not None and folder.is_dir() else {}


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load_state_dict(path: Path) -> dict:
    """Tensors of a checkpoint file (``.safetensors`` or a torch pickle), unwrapped.

    Torch pickles are read with ``weights_only=True``; a top-level ``model``, ``module`` or
    ``state_dict`` entry holding the tensors is unwrapped.
    """
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("model", "module", "state_dict", "model_state"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise WeightsError(f"{path}: expected a dict of tensors, got {type(sd).__name__}")
    return {k: v for k, v in sd.items() if hasattr(v, "shape")}


def checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a checkpoint file without reading its data (memory-mapped)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) torch files cannot be memory-mapped
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("model", "module", "state_dict", "model_state"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return {k: tuple(v.shape) for k, v in sd.items() if hasattr(v, "shape")}


def folder_state_dict(folder: Path) -> dict:
    """All tensors of a model folder (single or sharded safetensors / torch files)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return load_state_dict(folder / name)
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            files = sorted(set(read_json(folder / index).get("weight_map", {}).values()))
            sd: dict = {}
            for f in files:
                sd.update(load_state_dict(folder / f))
            return sd
    ckpts = sorted(p for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
    if ckpts:
        return load_state_dict(ckpts[0])
    raise FileNotFoundError(f"no weights file in {folder}")


# ----------------------------------------------------------------------------- devices
def pick_device(spec: str = "auto"):
    """A ``torch.device`` for ``auto``/``cpu``/``cuda[:N]``/``mps``; a clear error if absent."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ExtractorUnavailableError(f"device {spec!r} requested but CUDA is not available to torch {torch.__version__}")
        return torch.device(spec)
    if spec == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ExtractorUnavailableError("device 'mps' requested but the MPS backend is not available")
        return torch.device("mps")
    if spec == "cpu":
        return torch.device("cpu")
    raise SettingsError(f"unknown device {spec!r}; expected auto, cpu, cuda, cuda:N or mps")


_PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def autocast(device, precision: str = "auto"):
    """A context manager running the forward pass in the requested precision.

    ``auto``: float16 autocast on CUDA, float32 elsewhere (CPU autocast is slower than fp32
    for these models, and MPS autocast is not reliable across torch versions).
    """
    import torch

    if precision not in _PRECISIONS:
        raise SettingsError(f"unknown precision {precision!r}; expected one of {_PRECISIONS}")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class LayerSpec:
    """An inclusive range of hidden-state indices (``first == last`` for a single layer), or
    every hidden state (``every``: ``layers="all"``)."""

    first: int
    last: int
    every: bool = False

    def check(self, num_layers: int, what: str = "model") -> "LayerSpec":
        if self.every:
            return self
        if not (0 <= self.first <= self.last <= num_layers):
            raise SettingsError(
                f"layers {self} out of range: the {what} has {num_layers} layers, so hidden-state "
                f"indices run from 0 (embeddings) to {num_layers} (last layer)"
            )
        return self

    def __str__(self) -> str:
        if self.every:
            return "all"
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    def pool(self, hidden_states: Sequence[Any]):
        """Mean of ``hidden_states[first..last]`` (tensors of equal shape); with ``every``, all of
        them stacked on a new second-to-last axis (``(..., L + 1, D)``)."""
        if self.every:
            import torch

            return torch.stack([h.float() for h in hidden_states], dim=-2)
        sel = hidden_states[self.first: self.last + 1]
        out = sel[0].float()
        for h in sel[1:]:
            out = out + h.float()
        return out / len(sel)


def parse_layers(spec: str | int | None) -> LayerSpec | None:
    """``None``/``""``/``"last"`` -> None (final output); ``"12"`` -> 12; ``"6-12"`` -> 6..12."""
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise SettingsError(f"layers must be an index or a range like '6-12', got {spec!r}")
    if isinstance(spec, int):
        return LayerSpec(spec, spec) if spec >= 0 else _bad_layers(spec)
    s = str(spec).strip().lower()
    if s in ("", "last", "none"):
        return None
    if s == "all":
        return LayerSpec(0, 0, every=True)
    m = re.fullmatch(r"([0-9]+)\s*(?:-|:|\.\.)\s*([0-9]+)", s)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if a > b:
            _bad_layers(spec)
        return LayerSpec(a, b)
    if s.isdigit():
        return LayerSpec(int(s), int(s))
    return _bad_layers(spec)


def _bad_layers(spec: Any):
    raise SettingsError(f"layers must be a hidden-state index (e.g. '12') or an inclusive range "
                     f"(e.g. '6-12'), got {spec!r}")


# ----------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImagePreprocess:
    """Resize the shorter side, centre-crop, rescale to [0, 1] and normalise (on any device).

    Mirrors the ``transformers`` image processors (``shortest_edge`` resize with the longer
    side ``int(size * long / short)``, crop offsets ``(H - h) // 2``), with torch's
    antialiased interpolation standing in for PIL's resampling filters.
    """

    size: int = 224
    crop: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resample: str = "bicubic"  # "bicubic" | "bilinear"
    crop_offset: str = "floor"  # "floor": (H - h) // 2 as transformers; "round": round((H - h) / 2) as torchvision

    _PIL_RESAMPLE: ClassVar[dict[int, str]] = {2: "bilinear", 3: "bicubic"}

    @classmethod
    def from_processor_config(cls, cfg: dict, default: "ImagePreprocess") -> "ImagePreprocess":
        """Read a ``preprocessor_config.json`` dict; missing keys keep ``default``'s values."""
        if not cfg:
            return default
        size = cfg.get("size", default.size)
        if isinstance(size, dict):
            size = size.get("shortest_edge", size.get("height", default.size))
        crop = cfg.get("crop_size", default.crop)
        if isinstance(crop, dict):
            crop = (crop.get("height", default.crop[0]), crop.get("width", default.crop[1]))
        elif isinstance(crop, int):
            crop = (crop, crop)
        resample = cls._PIL_RESAMPLE.get(cfg.get("resample"), default.resample)
        return cls(
            size=int(size),
            crop=(int(crop[0]), int(crop[1])),
            mean=tuple(float(x) for x in cfg.get("image_mean", default.mean)),
            std=tuple(float(x) for x in cfg.get("image_std", default.std)),
            resample=resample,
            crop_offset=default.crop_offset,
        )

    def resized_hw(self, h: int, w: int) -> tuple[int, int]:
        if h <= w:
            return self.size, int(self.size * w / h)
        return int(self.size * h / w), self.size

    def __call__(self, frames):
        """uint8 ``(N, H, W, 3)`` tensor (any device) -> float32 ``(N, 3, crop_h, crop_w)``."""
        import torch
        import torch.nn.functional as F

        x = frames.permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        nh, nw = self.resized_hw(h, w)
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode=self.resample, align_corners=False, antialias=True)
            x = x.round().clamp_(0, 255)  # the processors resize 8-bit images: keep that quantisation
        ch, cw = self.crop
        if nh < ch or nw < cw:  # pad like the processors do when the crop is larger than the image
            ph, pw = max(ch - nh, 0), max(cw - nw, 0)
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            nh, nw = x.shape[-2:]
        if self.crop_offset == "round":
            top, left = int(round((nh - ch) / 2.0)), int(round((nw - cw) / 2.0))
        else:
            top, left = (nh - ch) // 2, (nw - cw) // 2
        x = x[..., top: top + ch, left: left + cw]
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x / 255.0 - mean) / std


# ----------------------------------------------------------------------------- media
def read_audio_16k(path: str | Path) -> np.ndarray:
    """Mono float32 waveform at 16 kHz (channels averaged; see :func:`blemore.media.read_audio`).

    Raises :class:`blemore.media.NoAudioError` when the file has no audio stream."""
    wave, sr = media.read_audio(path, sr=16000)
    if sr != 16000:
        raise RuntimeError(f"blemore.media.read_audio returned {sr} Hz for {path}; expected 16000")
    return np.asarray(wave, dtype=np.float32).reshape(-1)


def iter_video_frames(path: str | Path, fps: float | None = None, max_side: int | None = None
                      ) -> Iterator[tuple[np.ndarray, float]]:
    """(RGB uint8 (H, W, 3) frame, time in seconds) pairs, decoded in bounded memory.

    Raises :class:`blemore.media.NoVideoError` when the file has no video stream."""
    yield from media.iter_frames(path, fps=fps, max_side=max_side)


def media_status(exc: BaseException) -> str:
    """The manifest status for a decoding error: ``no-audio``, ``no-video`` or ``failed``."""
    if isinstance(exc, media.NoAudioError):
        return "no-audio"
    if isinstance(exc, media.NoVideoError):
        return "no-video"
    return "failed"


def batched(items: Iterator[Any], n: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for it in items:
        buf.append(it)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf


# ----------------------------------------------------------------------------- base class
@dataclass
class HFConfig(ExtractorConfig):
    """Settings common to the pretrained-encoder extractors.

    ``weights``: repository id, folder or checkpoint file (None: the extractor's default).
    ``layers``: None (final output), ``"12"`` or ``"6-12"`` (mean of hidden states).
    Runtime only (not part of the store identity): ``device``, ``batch_size``,
    ``precision`` (auto/fp32/fp16/bf16), ``allow_download``, ``progress``.
    """

    weights: str | None = None
    layers: str | None = None
    device: str = "auto"
    batch_size: int = 8
    precision: str = "auto"
    allow_download: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        if self.layers is not None and not isinstance(self.layers, str):
            self.layers = str(self.layers)
        parse_layers(self.layers)  # validate early, with the bad value in the message
        if int(self.batch_size) < 1:
            raise SettingsError(f"batch_size must be >= 1, got {self.batch_size}")
        self.batch_size = int(self.batch_size)
        if self.precision not in _PRECISIONS:
            raise SettingsError(f"unknown precision {self.precision!r}; expected one of {_PRECISIONS}")


class HFExtractor(Extractor):
    """Base of the pretrained-encoder extractors: weights, device, runtime settings.

    Subclasses implement :meth:`_load_model` (set ``self.model`` and whatever they need),
    and ``extract``. ``load()`` resolves the weights, builds the model once, moves it to
    the device and puts it in eval mode.
    """

    config_class: ClassVar[type[ExtractorConfig]] = HFConfig
    #: file patterns to download besides :data:`DOWNLOAD_PATTERNS`
    download_patterns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ExtractorConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.model = None
        self.device = None
        self._dim: int | None = None

    # -- identity: runtime fields are reported apart from the settings ------------------
    def config_dict(self) -> dict:
        d = super().config_dict()
        settings = dict(d["settings"])
        settings["weights"] = self.weights_spec
        d["runtime"] = {k: settings.pop(k) for k in RUNTIME_FIELDS if k in settings}
        d["settings"] = settings
        if self.every_layer:
            d["layer_axis"] = {"size": self.layer_count() + 1, "first": 0,
                               "note": "arrays are (T, layers, D); hidden state 0 = the transformer input"}
        return d

    # -- layers --------------------------------------------------------------------------------
    #: transformer layers of the default checkpoint (the layer axis size before loading)
    nominal_layers: ClassVar[int] = 12

    @property
    def every_layer(self) -> bool:
        """``layers="all"``: rows carry every hidden state on a layer axis."""
        spec = parse_layers(getattr(self.config, "layers", None))
        return spec is not None and spec.every

    def layer_count(self) -> int:
        """Transformer layers L (hidden states 0..L): the loaded model's, else the local weights'
        config, else :attr:`nominal_layers`."""
        if self.model is not None and hasattr(getattr(self.model, "config", None), "num_hidden_layers"):
            return int(self.model.config.num_hidden_layers)
        cfg = local_model_config(self.weights_spec) if self.weights_spec else {}
        n = cfg.get("num_hidden_layers") or (cfg.get("vision_config") or {}).get("num_hidden_layers") \
            or (cfg.get("model_config") or {}).get("depth")
        return int(n or self.nominal_layers)

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one output row: ``(dim,)``, or ``(L + 1, dim)`` with ``layers="all"``."""
        return (self.layer_count() + 1, self.dim) if self.every_layer else (self.dim,)

    def config_hash(self) -> str:
        import hashlib

        d = self.config_dict()
        key = json.dumps({k: d[k] for k in ("extractor", "version", "settings")}, sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def weights_spec(self) -> str:
        return str(self.config.weights or self.default_weights)

    @classmethod
    def weights_available(cls) -> bool:
        return cls.default_weights is not None and weights_available(cls.default_weights)

    def weights_ready(self) -> bool:
        """Whether this instance's weights (default or configured) are usable offline."""
        return weights_available(self.weights_spec)

    # -- declared shape ----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._infer_dim()
        return self._dim

    @property
    def columns(self) -> list[str]:
        return [f"{self.column_prefix}_{i}" for i in range(self.dim)]

    column_prefix: ClassVar[str] = "f"
    #: output dimension of the default checkpoint with default settings (before loading)
    nominal_dim: ClassVar[int] = 0

    def _infer_dim(self) -> int:
        """Output dimension without building the model: read the weights' config when local."""
        return self.nominal_dim

    # -- life cycle ----------------------------------------------------------------------------
    def resolve(self) -> Path:
        return resolve_weights(self.weights_spec, extractor=self.name,
                               allow_download=self.config.allow_download,
                               allow_patterns=[*DOWNLOAD_PATTERNS, *self.download_patterns])

    def load(self) -> None:
        if self._loaded:
            return
        path = self.resolve()
        self.device = pick_device(self.config.device)
        self._load_model(path)
        self._finish_loading()

    def _finish_loading(self) -> None:
        self.model.eval().requires_grad_(False)
        self.model.to(self.device)
        self._dim = self._model_dim()
        self._loaded = True

    @classmethod
    def from_model(cls, model: Any, preprocessor_config: dict | None = None, **settings: Any) -> "HFExtractor":
        """Wrap a model already built in memory (e.g. random weights for benchmarks, or a fine-tuned
        model) instead of loading ``weights``. ``preprocessor_config``: what a checkpoint's
        ``preprocessor_config.json`` would hold (None: the extractor's documented defaults)."""
        e = cls(**settings)
        e.device = pick_device(e.config.device)
        e.model = model
        e._setup(model, preprocessor_config or {})
        e._finish_loading()
        return e

    def _load_model(self, path: Path) -> None:
        """Build ``self.model`` from a resolved folder or file, then call :meth:`_setup`."""
        raise NotImplementedError

    def _setup(self, model: Any, preprocessor_config: dict) -> None:
        """Derive the input pipeline and check the settings against a built model."""
        raise NotImplementedError

    def _model_dim(self) -> int:
        raise NotImplementedError

    def _autocast(self):
        return autocast(self.device, self.config.precision)

    def _failed(self, exc: BaseException, status: str = "failed") -> ExtractResult:
        return ExtractResult(features=np.zeros((0, self.dim), np.float32), times=np.zeros(0),
                             status=status, error=f"{type(exc).__name__}: {exc}")

    def _progress(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="batch", leave=False,
                    disable=not self.config.progress or total <= 1)


def from_pretrained_quiet(cls: Any, path: Path, **kwargs: Any):
    """``cls.from_pretrained(path, local_files_only=True)``: never touches the network, and
    without transformers' own loading progress bar (our runner shows one per clip)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # e.g. the text-tower keys a vision model skips are expected
    try:
        return cls.from_pretrained(str(path), local_files_only=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


def finite_or_fail(arr: np.ndarray) -> np.ndarray:
    if arr.size and not np.isfinite(arr).all():
        raise FloatingPointError("the model produced non-finite values (try the setting precision=fp32)")
    return arr

