"""Spatiotemporal video encoders: ``videomae-v2-base`` (via ``transformers``) and ``video-swin``.

Both encode a sliding sequence of fixed-length segments (16 frames for the paper's
models) and give one row per segment, time-stamped at the segment's centre: a
``(segments x D)`` series that the pooling stage aggregates (the paper's aggregation
mode) or that the subsampling mode treats as separate samples.

Segments: frames are decoded at the video's own rate (or resampled to ``fps``); a segment
takes ``num_frames`` frames ``frame_step`` apart (its span is ``(num_frames - 1) *
frame_step + 1`` frames) and segments start every ``segment_stride`` frames. With
``cover_tail`` a last segment aligned to the final frame is added when the regular ones
leave frames out, so every frame is seen; a clip shorter than one span gives one segment
whose missing frames repeat the last frame. The paper states 16-frame segments but not
the frame step or the stride; the defaults here (consecutive frames, non-overlapping
segments) are our choice, recorded in each store's ``config.json``.

Input pipeline of ``videomae-v2-base``: per frame, resize the shorter side to 224
(bilinear), centre-crop 224 x 224, scale to [0, 1], normalise with the ImageNet mean/std
(the VideoMAE V2 recipe; a ``preprocessor_config.json`` in the weights folder takes
precedence, as ``VideoMAEImageProcessor`` would read it). The row of a segment is the
mean of the last layer's tokens followed by the checkpoint's ``fc_norm`` LayerNorm when
it has one (VideoMAE V2's ``use_mean_pooling`` feature), or the mean of the tokens over a
range of hidden states (``layers``).

Weights of ``videomae-v2-base`` may be

* a ``transformers`` VideoMAE folder or repository (``model_type`` ``videomae``);
* the public ``OpenGVLab/VideoMAEv2-Base`` repository (remote-code layout: its
  ``config.json`` has a ``model_config`` block): its tensors are mapped onto
  ``transformers.VideoMAEModel`` (no remote code is executed);
* a local VideoMAE V2 checkpoint file (``.pth``/``.bin``/``.safetensors``, e.g.
  ``vit_b_k710_dl_from_giant.pth``): the architecture is read from the tensor shapes
  (``num_heads`` defaults to ``hidden / 64``; set it for other layouts).

``video-swin`` uses torchvision's Swin3D (Kinetics-400). torchvision cannot be installed
beside this project's torch pin (PyPI's torchvision wheels do not import with it), so it is
an optional extra: on an environment whose torch and torchvision match, it works as
described; otherwise ``load()`` raises :class:`ExtractorUnavailableError` saying so.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from blemore.extractors._hf import (
    ExtractorUnavailableError,
    HFConfig,
    HFExtractor,
    ImagePreprocess,
    WeightsUnavailableError,
    batched,
    checkpoint_shapes,
    find_local,
    finite_or_fail,
    folder_state_dict,
    from_pretrained_quiet,
    iter_video_frames,
    load_state_dict,
    media_status,
    parse_layers,
    read_json,
)
from blemore.extractors.base import ExtractResult, register_extractor
from blemore.validate import SettingsError
from blemore.weights import WeightsError

__all__ = [
    "VideoEncoderConfig",
    "SegmentEncoder",
    "VideoMAEv2Base",
    "VideoSwin",
    "segment_starts",
    "videomae_v2_to_hf",
    "VIDEOMAE_PREPROCESS",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIDEOMAE_PREPROCESS = ImagePreprocess(size=224, crop=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                      resample="bilinear")


@dataclass
class VideoEncoderConfig(HFConfig):
    """Settings of the segment encoders (see the module docstring).

    ``fps``: resample the video to this rate first (None: native rate). ``frame_step``:
    frames between the sampled frames of a segment. ``segment_stride``: frames between
    segment starts. ``cover_tail``: add a final segment ending on the last frame.
    ``num_heads``: attention heads when mapping a raw checkpoint (None: hidden / 64).
    ``batch_size``: segments per forward pass.
    """

    fps: float | None = None
    frame_step: int = 1
    segment_stride: int = 16
    cover_tail: bool = True
    num_heads: int | None = None
    batch_size: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.frame_step) < 1 or int(self.segment_stride) < 1:
            raise SettingsError(f"frame_step and segment_stride must be >= 1, got {self.frame_step}, "
                             f"{self.segment_stride}")
        if self.fps is not None and float(self.fps) <= 0:
            raise SettingsError(f"fps must be > 0 or None, got {self.fps}")


def segment_starts(n_frames: int, span: int, stride: int, cover_tail: bool = True) -> list[int]:
    """First frame of every segment of ``span`` frames in a clip of ``n_frames`` frames."""
    if n_frames <= 0:
        return []
    if n_frames <= span:
        return [0]
    starts = list(range(0, n_frames - span + 1, stride))
    if cover_tail and starts[-1] + span < n_frames:
        starts.append(n_frames - span)
    return starts


# ----------------------------------------------------------------------------- VideoMAE V2 mapping
_PREFIXES = ("module.", "model.", "backbone.", "encoder.")


def _strip_prefixes(sd: dict) -> dict:
    """Drop wrapper prefixes until the VideoMAE V2 ``patch_embed`` keys are at the top."""
    for _ in range(3):
        if "patch_embed.proj.weight" in sd:
            return sd
        for p in _PREFIXES:
            if any(k.startswith(p + "patch_embed.") for k in sd):
                sd = {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}
                break
    if "patch_embed.proj.weight" not in sd:
        raise WeightsError("not a VideoMAE V2 checkpoint: no 'patch_embed.proj.weight' (looked under the prefixes "
                         f"{', '.join(_PREFIXES)})")
    return sd


def videomae_v2_to_hf(sd: dict, *, num_heads: int | None = None, num_frames: int = 16,
                      image_size: int | None = None, layer_norm_eps: float = 1e-6
                      ) -> tuple[dict, dict, dict | None]:
    """Map a VideoMAE V2 (timm-style) state dict onto ``transformers.VideoMAEModel``.

    Returns ``(config_kwargs, state_dict, extra)`` where ``extra`` holds ``fc_norm`` weights
    (or None) and a learnable ``pos_embed`` when the checkpoint has one. Every encoder key
    must be used: an unknown block parameter (e.g. layer scale) raises ``ValueError``.
    """
    sd = _strip_prefixes(sd)
    proj = sd["patch_embed.proj.weight"]  # (D, 3, tubelet, p, p)
    hidden, tubelet, patch = int(proj.shape[0]), int(proj.shape[2]), int(proj.shape[3])
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    heads = num_heads or max(1, hidden // 64)
    fc1 = sd["blocks.0.mlp.fc1.weight"]
    qkv_bias = "blocks.0.attn.q_bias" in sd or "blocks.0.attn.qkv.bias" in sd
    pos = sd.get("pos_embed")
    if image_size is None:
        image_size = 224
        if pos is not None:  # learnable: infer the grid from it
            n_spatial = pos.shape[-2] // max(1, num_frames // tubelet)
            image_size = int(round(n_spatial ** 0.5)) * patch
    cfg = dict(hidden_size=hidden, num_hidden_layers=depth, num_attention_heads=heads,
               intermediate_size=int(fc1.shape[0]), patch_size=patch, tubelet_size=tubelet,
               num_frames=num_frames, image_size=image_size, hidden_act="gelu",
               layer_norm_eps=layer_norm_eps, use_mean_pooling="fc_norm.weight" in sd or "norm.weight" not in sd,
               qkv_bias=qkv_bias)
    out: dict = {
        "embeddings.patch_embeddings.projection.weight": proj,
    }
    if "patch_embed.proj.bias" in sd:
        out["embeddings.patch_embeddings.projection.bias"] = sd["patch_embed.proj.bias"]
    used = {"patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed"}
    for i in range(depth):
        b, o = f"blocks.{i}.", f"encoder.layer.{i}."
        qkv = sd[b + "attn.qkv.weight"]
        out[o + "attention.attention.query.weight"] = qkv[:hidden]
        out[o + "attention.attention.key.weight"] = qkv[hidden:2 * hidden]
        out[o + "attention.attention.value.weight"] = qkv[2 * hidden:]
        used.add(b + "attn.qkv.weight")
        if b + "attn.q_bias" in sd:
            out[o + "attention.attention.query.bias"] = sd[b + "attn.q_bias"]
            out[o + "attention.attention.value.bias"] = sd[b + "attn.v_bias"]
            used |= {b + "attn.q_bias", b + "attn.v_bias"}
        elif b + "attn.qkv.bias" in sd:
            bias = sd[b + "attn.qkv.bias"]
            if bias[hidden:2 * hidden].abs().max() > 0:
                raise WeightsError("checkpoint has a non-zero key bias, which VideoMAE's attention does not have")
            out[o + "attention.attention.query.bias"] = bias[:hidden]
            out[o + "attention.attention.value.bias"] = bias[2 * hidden:]
            used.add(b + "attn.qkv.bias")
        for src, dst in (("attn.proj", "attention.output.dense"), ("norm1", "layernorm_before"),
                         ("norm2", "layernorm_after"), ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
            for p in ("weight", "bias"):
                out[f"{o}{dst}.{p}"] = sd[f"{b}{src}.{p}"]
                used.add(f"{b}{src}.{p}")
    extra: dict = {}
    if "fc_norm.weight" in sd:
        extra["fc_norm"] = (sd["fc_norm.weight"], sd["fc_norm.bias"])
        used |= {"fc_norm.weight", "fc_norm.bias"}
    elif "norm.weight" in sd:  # no mean pooling: a final LayerNorm on every token
        out["layernorm.weight"], out["layernorm.bias"] = sd["norm.weight"], sd["norm.bias"]
        used |= {"norm.weight", "norm.bias"}
    if pos is not None:
        extra["pos_embed"] = pos.reshape(1, -1, hidden)
    leftover = [k for k in sd if k not in used and not k.startswith(("head.", "fc_dropout", "decoder", "mask_token",
                                                                       "encoder_to_decoder"))]
    if leftover:
        raise WeightsError(f"unmapped VideoMAE V2 parameters (unsupported variant?): {', '.join(sorted(leftover)[:8])}")
    return cfg, out, extra or None


def _videomae_config(**kwargs: Any):
    import transformers

    probe = transformers.VideoMAEConfig().to_dict()
    bias_key = "qv_bias" if "qv_bias" in probe else "qkv_bias"  # renamed between transformers versions
    kwargs[bias_key] = kwargs.pop("qkv_bias", True)
    return transformers.VideoMAEConfig(**kwargs)


# ----------------------------------------------------------------------------- base
class SegmentEncoder(HFExtractor):
    """Base of the segment encoders: frame streaming, segmenting, batching on the device."""

    modality: ClassVar[str] = "video"
    config_class = VideoEncoderConfig
    default_preprocess: ClassVar[ImagePreprocess] = VIDEOMAE_PREPROCESS

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.preprocess = self.default_preprocess
        self.num_frames = 16
        self.frame_batch = 64

    @property
    def rate(self) -> float | None:
        return float(self.config.fps) / self.config.segment_stride if self.config.fps else None

    @property
    def span(self) -> int:
        return (self.num_frames - 1) * self.config.frame_step + 1

    def forward_segments(self, clips):
        """``(B, T, 3, H, W)`` float tensor on the device -> ``(B, D)`` tensor."""
        raise NotImplementedError

    def embed_segments(self, clips: np.ndarray) -> np.ndarray:
        """Rows ``(B, D)`` for preprocessed segments ``(B, num_frames, 3, H, W)`` float32."""
        import torch

        self.load()
        x = torch.as_tensor(clips, dtype=torch.float32, device=self.device)
        with torch.inference_mode(), self._autocast():
            return self.forward_segments(x).float().cpu().numpy()

    def embed_video(self, frames: Iterator[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray, int]:
        """Segment rows, their centre times and the frame count, from (frame, time) pairs.

        Frames are preprocessed in batches on the device; at most one span of frames plus
        one batch of segments is held at a time.
        """
        import torch

        self.load()
        step, span, stride = self.config.frame_step, self.span, self.config.segment_stride
        buf: deque = deque()  # (index, preprocessed frame tensor, time)
        ready: list = []  # (segment tensor, centre time)
        rows: list[np.ndarray] = []
        times: list[float] = []
        next_start, last_start, n = 0, -1, 0

        def segment(start: int, total: int | None):
            idx = [min(start + k * step, (total or 10**12) - 1) for k in range(self.num_frames)]
            by_index = {i: (f, t) for i, f, t in buf}
            frames_ = [by_index[i][0] for i in idx]
            t0, t1 = by_index[idx[0]][1], by_index[idx[-1]][1]
            return torch.stack(frames_), (t0 + t1) / 2.0

        def flush(force: bool = False):
            while ready and (force or len(ready) >= self.config.batch_size):
                chunk = ready[: self.config.batch_size]
                del ready[: self.config.batch_size]
                x = torch.stack([c for c, _ in chunk])
                with torch.inference_mode(), self._autocast():
                    rows.append(self.forward_segments(x).float().cpu().numpy())
                times.extend(t for _, t in chunk)

        with torch.inference_mode():
            for batch in batched(frames, self.frame_batch):
                arr = torch.from_numpy(np.ascontiguousarray(np.stack([f for f, _ in batch]))).to(self.device)
                pre = self.preprocess(arr)
                for j, (_, t) in enumerate(batch):
                    buf.append((n, pre[j], float(t)))
                    n += 1
                    while next_start + span <= n:  # a full regular segment is available
                        ready.append(segment(next_start, None))
                        last_start = next_start
                        next_start += stride
                        flush()
                    keep_from = min(next_start, n - span)  # frames a later segment (or the tail) may need
                    while buf and buf[0][0] < keep_from:
                        buf.popleft()
            if n:
                if last_start < 0:  # shorter than one span: one padded segment
                    ready.append(segment(0, n))
                elif self.config.cover_tail and last_start + span < n:
                    ready.append(segment(n - span, n))
            flush(force=True)
        feats = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)
        return finite_or_fail(feats), np.asarray(times, dtype=np.float64), n

    def extract(self, path: str | Path) -> ExtractResult:
        self.load()
        try:
            feats, times, n = self.embed_video(iter_video_frames(path, fps=self.config.fps))
        except Exception as exc:
            return self._failed(exc, media_status(exc))
        if n == 0:
            return ExtractResult(np.zeros((0, self.dim), np.float32), np.zeros(0), status="no-video",
                                 error="no decodable video frames")
        return ExtractResult(feats, times, info={"frames": n, "segments": int(len(feats))})


# ----------------------------------------------------------------------------- VideoMAE V2
@register_extractor
class VideoMAEv2Base(SegmentEncoder):
    """VideoMAE V2 ViT-B/16 (16 x 224 x 224, tubelet 2): one 768-d row per 16-frame segment."""

    name = "videomae-v2-base"
    version = "1"
    default_weights = "OpenGVLab/VideoMAEv2-Base"
    description = "VideoMAE V2 ViT-B/16: 768-d per 16-frame segment (mean tokens + fc_norm)"
    nominal_dim = 768
    column_prefix = "videomae"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.fc_norm = None

    def _infer_dim(self) -> int:
        folder = find_local(self.weights_spec)
        if folder is not None and folder.is_dir():
            cfg = read_json(folder / "config.json")
            return int(cfg.get("hidden_size", (cfg.get("model_config") or {}).get("embed_dim", self.nominal_dim)))
        if folder is not None and folder.is_file():
            try:
                shapes = checkpoint_shapes(folder)
                key = next(k for k in shapes if k.endswith("patch_embed.proj.weight"))
                return int(shapes[key][0])
            except Exception:  # unreadable or not VideoMAE V2: load() will say why
                return self.nominal_dim
        return self.nominal_dim

    def _load_model(self, path: Path) -> None:
        import transformers

        extra = None
        if path.is_file():
            cfg_kwargs, sd, extra = videomae_v2_to_hf(load_state_dict(path), num_heads=self.config.num_heads)
            self.model = self._build(cfg_kwargs, sd, extra, path)
        else:
            cfg = read_json(path / "config.json")
            if cfg.get("model_type") == "videomae":
                self.model = from_pretrained_quiet(transformers.VideoMAEModel, path)
                sd = folder_state_dict(path)
                for prefix in ("", "videomae."):
                    if prefix + "fc_norm.weight" in sd:
                        extra = {"fc_norm": (sd[prefix + "fc_norm.weight"], sd[prefix + "fc_norm.bias"])}
                self._set_fc_norm(extra)
            elif isinstance(cfg.get("model_config"), dict):  # OpenGVLab remote-code layout
                mc = cfg["model_config"]
                cfg_kwargs, sd, extra = videomae_v2_to_hf(
                    folder_state_dict(path), num_heads=self.config.num_heads or mc.get("num_heads"),
                    num_frames=int(mc.get("num_frames", 16)), image_size=int(mc.get("img_size", 224)),
                    layer_norm_eps=float(mc.get("layer_norm_eps", 1e-6)))
                self.model = self._build(cfg_kwargs, sd, extra, path)
            else:
                raise WeightsError(f"{self.name}: {path} is neither a transformers VideoMAE folder (model_type "
                                 f"'videomae') nor a VideoMAE V2 repository (config with 'model_config')")
        self._setup(self.model, read_json(path / "preprocessor_config.json") if path.is_dir() else {})

    def _setup(self, model, prep: dict) -> None:
        mcfg = model.config
        side = int(mcfg.image_size)  # 224 for the public models; the recipe's resize scales with it
        default = dataclasses.replace(self.default_preprocess, size=side, crop=(side, side))
        self.preprocess = ImagePreprocess.from_processor_config(prep, default)
        self.num_frames = int(mcfg.num_frames)
        if self.preprocess.crop != (mcfg.image_size, mcfg.image_size):
            raise SettingsError(f"{self.name}: preprocessing crops {self.preprocess.crop} but the model expects "
                             f"{mcfg.image_size} x {mcfg.image_size} frames")
        spec = parse_layers(self.config.layers)
        if spec is not None:
            spec.check(mcfg.num_hidden_layers, self.name)

    def _build(self, cfg_kwargs: dict, sd: dict, extra: dict | None, path: Path):
        import transformers

        model = transformers.VideoMAEModel(_videomae_config(**cfg_kwargs))
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
        if missing or unexpected:
            raise WeightsError(f"{self.name}: mapping {path} left missing={missing[:5]} unexpected={unexpected[:5]}")
        if extra and "pos_embed" in extra:
            pe = extra["pos_embed"].float()
            if pe.shape != model.embeddings.position_embeddings.shape:
                raise WeightsError(f"{self.name}: learnable pos_embed {tuple(pe.shape)} does not fit "
                                 f"{tuple(model.embeddings.position_embeddings.shape)}")
            model.embeddings.position_embeddings = pe
        self._set_fc_norm(extra, eps=cfg_kwargs.get("layer_norm_eps", 1e-6))
        return model

    def _set_fc_norm(self, extra: dict | None, eps: float = 1e-6) -> None:
        import torch

        self.fc_norm = None
        if extra and "fc_norm" in extra:
            w, b = extra["fc_norm"]
            ln = torch.nn.LayerNorm(w.shape[0], eps=eps)
            ln.weight.data.copy_(w.float())
            ln.bias.data.copy_(b.float())
            self.fc_norm = ln.eval().requires_grad_(False)

    def _finish_loading(self) -> None:
        super()._finish_loading()
        if self.fc_norm is not None:
            self.fc_norm.to(self.device)

    def _model_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward_segments(self, clips):
        spec = parse_layers(self.config.layers)
        res = self.model(pixel_values=clips, output_hidden_states=spec is not None)
        if spec is not None:
            return spec.pool([h.float().mean(dim=1) for h in res.hidden_states])
        h = res.last_hidden_state.float().mean(dim=1)
        if self.fc_norm is not None:
            h = self.fc_norm(h)
        return h


# ----------------------------------------------------------------------------- Video Swin
_SWIN_TORCHVISION_NOTE = (
    "video-swin needs torchvision's Swin3D (torchvision.models.video.swin3d_b), and torchvision cannot be "
    "installed beside this project's torch pin: PyPI's torchvision wheels are built against other torch "
    "releases and fail to import with it. Install a torch/torchvision pair that match (e.g. in a separate "
    "environment: pip install torch torchvision, then pip install -e .[encoders]) to use this extractor."
)


def _torchvision_ok() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        from torchvision.models.video import swin3d_b  # noqa: F401
    except Exception:
        return False
    return True


@dataclass
class VideoSwinConfig(VideoEncoderConfig):
    arch: str = "swin3d_b"  # swin3d_t | swin3d_s | swin3d_b


@register_extractor
class VideoSwin(SegmentEncoder):
    """Video Swin Transformer (torchvision Swin3D, Kinetics-400): one row per 16-frame segment.

    ``weights``: ``torchvision:NAME`` with a torchvision weights name (``KINETICS400_V1``, the
    default, or ``KINETICS400_IMAGENET22K_V1`` for swin3d_b) found in torch's hub cache, or a
    local ``.pth`` with a torchvision Swin3D state dict. Optional: needs torchvision (see the module
    docstring).
    """

    name = "video-swin"
    version = "1"
    default_weights = "torchvision:KINETICS400_V1"
    description = "Video Swin-B (torchvision Swin3D, K400): 1024-d per 16-frame segment [needs torchvision]"
    config_class = VideoSwinConfig
    nominal_dim = 1024
    column_prefix = "swin"
    default_preprocess = ImagePreprocess(size=224, crop=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                         resample="bilinear")
    _ARCH_DIMS: ClassVar[dict[str, int]] = {"swin3d_t": 768, "swin3d_s": 768, "swin3d_b": 1024}

    def _infer_dim(self) -> int:
        return self._ARCH_DIMS.get(self.config.arch, self.nominal_dim)

    @classmethod
    def weights_available(cls) -> bool:
        return cls(weights=None).weights_ready()

    def weights_ready(self) -> bool:
        local = find_local(self.weights_spec)
        if local is not None:
            return local.is_file()
        if not _torchvision_ok():
            return False
        try:
            return self._cached_torchvision_file() is not None
        except Exception:
            return False

    def _weights_enum(self):
        from torchvision.models import get_model_weights

        name = self.weights_spec.split(":", 1)[1] if self.weights_spec.startswith("torchvision:") else self.weights_spec
        return get_model_weights(self.config.arch)[name]

    def _cached_torchvision_file(self) -> Path | None:
        import os

        import torch

        url = self._weights_enum().url
        f = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        return f if f.is_file() else None

    def resolve(self) -> Path:
        local = find_local(self.weights_spec)
        if local is not None:
            return local
        if not _torchvision_ok():
            raise ExtractorUnavailableError(_SWIN_TORCHVISION_NOTE)
        f = self._cached_torchvision_file()
        if f is None:
            import torch

            raise WeightsUnavailableError(
                f"{self.name}: torchvision weights {self.config.arch} {self._weights_enum()} are not in torch's hub "
                f"cache ({Path(torch.hub.get_dir()) / 'checkpoints'}). Pre-download them on a machine with internet "
                f"(python -c \"import torchvision; torchvision.models.get_weight('{self._weights_enum()}')"
                f".get_state_dict()\") and copy that folder, or pass --weights FILE.pth"
            )
        return f

    def _load_model(self, path: Path) -> None:
        if not _torchvision_ok():
            raise ExtractorUnavailableError(_SWIN_TORCHVISION_NOTE)
        from torchvision.models import get_model

        model = get_model(self.config.arch, weights=None)
        model.load_state_dict(load_state_dict(path))
        self.model = model
        self._setup(model, {})

    def _setup(self, model, prep: dict) -> None:
        import torch

        model.head = torch.nn.Identity()  # the pooled features, not the Kinetics logits
        try:  # the input pipeline that comes with torchvision's weights
            tf = self._weights_enum().transforms()
            self.preprocess = ImagePreprocess(size=int(tf.resize_size[0]), crop=tuple(int(c) for c in tf.crop_size),
                                              mean=tuple(tf.mean), std=tuple(tf.std), resample="bilinear")
        except Exception:
            self.preprocess = ImagePreprocess.from_processor_config(prep, self.default_preprocess)
        self.num_frames = 16
        if self.config.layers:
            raise SettingsError(f"{self.name}: layer selection is not supported (Swin stages have different widths)")

    def _model_dim(self) -> int:
        return self._ARCH_DIMS.get(self.config.arch, self.nominal_dim)

    def forward_segments(self, clips):
        return self.model(clips.permute(0, 2, 1, 3, 4))  # (B, C, T, H, W)
