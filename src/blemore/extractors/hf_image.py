"""Frame-level image encoders: ``clip-vit-b32`` and ``imagebind-vision`` (via ``transformers``).

Each decoded frame (every frame, or ``fps`` frames per second) becomes one row: by
default the model's image embedding (``output="embeds"``: CLS token, final LayerNorm,
projection), or the pooled 768/1280-d CLS before the projection (``output="pooled"``), or
the mean of the CLS token over a range of hidden states (``layers="6-12"``). Optionally the
face is cropped first (``face_crop=True``, the face-mesh box; frames without a face give
NaN rows, a clip without any face the status ``no-face``).

Input pipeline: resize the shorter side to 224 (bicubic), centre-crop 224 x 224, scale to
[0, 1], normalise with the CLIP mean/std, as ``CLIPImageProcessor`` does; when the
checkpoint folder has a ``preprocessor_config.json`` its values are used. Frames are moved
to the device as uint8 and resized there.

**ImageBind.** The ImageBind paper (Girdhar et al., CVPR 2023, sec. 3.3 and 4) states that
its image encoder is the pretrained OpenCLIP ViT-H (630M parameters) and that the image
and text encoders are kept frozen during ImageBind training; its zero-shot image results
"match those of OpenCLIP". ImageBind's code stores that encoder in its own layout: images
are repeated into 2-frame clips and embedded by a Conv3d with kernel (2, 14, 14) (the
temporally inflated 2-D patch projection), all LayerNorms use eps 1e-6, and the output is
the L2-normalised 1024-d projection of the CLS token. So, per frame:

* ``--weights /path/imagebind_huge.pth`` (the released checkpoint) maps the vision branch
  onto ``CLIPVisionModelWithProjection`` **exactly**: the Conv3d kernel summed over its two
  time steps equals the 2-D patch projection on a repeated image, eps 1e-6, exact GELU,
  and the ImageBind pipeline (bicubic resize, centre crop with torchvision's rounding,
  CLIP mean/std, L2 normalisation). Only the vision keys are read.
* the default ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (OpenCLIP ViT-H/14 on LAION-2B in
  Hugging Face format) is the same network; its outputs equal ImageBind's up to the
  LayerNorm eps (1e-5 instead of 1e-6) *provided that* ImageBind's frozen copy is
  bit-identical to this LAION release, which the paper implies but which we could not
  check offline. Prefer the ``.pth`` to reproduce the paper's ImageBind rows.

The ``open_clip`` package is not used: with our torch pin, PyPI's torchvision (an
``open_clip`` dependency) does not import.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from blemore.extractors._hf import (
    ExtractorUnavailableError,
    HFConfig,
    HFExtractor,
    ImagePreprocess,
    batched,
    checkpoint_shapes,
    find_local,
    from_pretrained_quiet,
    iter_video_frames,
    load_state_dict,
    media_status,
    parse_layers,
    read_json,
)
from blemore.extractors import _face
from blemore.extractors.base import ExtractResult, register_extractor
from blemore.validate import SettingsError
from blemore.weights import WeightsError

__all__ = [
    "ImageEncoderConfig",
    "ImageEncoder",
    "ClipViTB32",
    "ImageBindVision",
    "imagebind_vision_to_clip",
    "CLIP_PREPROCESS",
    "IMAGEBIND_PREPROCESS",
]

CLIP_PREPROCESS = ImagePreprocess(size=224, crop=(224, 224), resample="bicubic")
#: ImageBind's ``load_and_transform_vision_data``: torchvision Resize(224, bicubic) + CenterCrop(224)
IMAGEBIND_PREPROCESS = ImagePreprocess(size=224, crop=(224, 224), resample="bicubic", crop_offset="round")
_OUTPUTS = ("embeds", "pooled")


@dataclass
class ImageEncoderConfig(HFConfig):
    """Settings of the frame-level image encoders (see the module docstring).

    ``fps``: frames per second to encode (None: every decoded frame). ``output``: ``embeds``
    or ``pooled``. ``normalize``: L2-normalise each row. ``face_crop``: encode the face box.
    ``num_heads``: attention heads when mapping a raw checkpoint (None: inferred).
    """

    fps: float | None = None
    output: str = "embeds"
    normalize: bool = False
    face_crop: bool = False
    num_heads: int | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.output not in _OUTPUTS:
            raise SettingsError(f"output must be one of {_OUTPUTS}, got {self.output!r}")
        if self.fps is not None and float(self.fps) <= 0:
            raise SettingsError(f"fps must be > 0 or None, got {self.fps}")


def imagebind_vision_to_clip(sd: dict, num_heads: int | None = None) -> tuple[dict, dict]:
    """Map ImageBind's vision branch onto ``CLIPVisionModelWithProjection``.

    Returns ``(config_kwargs, state_dict)``. Raises ``ValueError`` naming the missing keys
    when ``sd`` is not an ImageBind checkpoint.
    """
    pre, trunk, head = "modality_preprocessors.vision.", "modality_trunks.vision.", "modality_heads.vision."
    need = [pre + "cls_token", pre + "rgbt_stem.proj.1.weight", pre + "pos_embedding_helper.pos_embed",
            trunk + "pre_transformer_layer.0.weight", head + "0.weight", head + "2.weight"]
    missing = [k for k in need if k not in sd]
    if missing:
        raise WeightsError(f"not an ImageBind checkpoint: missing {', '.join(missing)}")
    conv = sd[pre + "rgbt_stem.proj.1.weight"]  # (D, 3, T, p, p)
    if conv.ndim != 5 or conv.shape[3] != conv.shape[4]:
        raise WeightsError(f"unexpected ImageBind patch projection shape {tuple(conv.shape)}")
    hidden, patch = int(conv.shape[0]), int(conv.shape[3])
    pos = sd[pre + "pos_embedding_helper.pos_embed"].reshape(-1, hidden)
    grid = int(round((pos.shape[0] - 1) ** 0.5))
    if grid * grid + 1 != pos.shape[0]:
        raise WeightsError(f"ImageBind position embedding has {pos.shape[0]} rows; expected 1 + a square")
    n_layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith(trunk + "blocks."))
    fc1 = sd[f"{trunk}blocks.0.mlp.fc1.weight"]
    proj = sd[head + "2.weight"]
    heads = num_heads or (16 if hidden in (1024, 1280) else max(1, hidden // 64))
    cfg = dict(hidden_size=hidden, intermediate_size=int(fc1.shape[0]), num_hidden_layers=n_layers,
               num_attention_heads=heads, image_size=grid * patch, patch_size=patch,
               projection_dim=int(proj.shape[0]), hidden_act="gelu", layer_norm_eps=1e-6)
    v = "vision_model."
    out = {
        v + "embeddings.class_embedding": sd[pre + "cls_token"].reshape(hidden),
        v + "embeddings.patch_embedding.weight": conv.sum(dim=2),  # repeated frames: kernel sums over time
        v + "embeddings.position_embedding.weight": pos,
        v + "pre_layrnorm.weight": sd[trunk + "pre_transformer_layer.0.weight"],
        v + "pre_layrnorm.bias": sd[trunk + "pre_transformer_layer.0.bias"],
        v + "post_layernorm.weight": sd[head + "0.weight"],
        v + "post_layernorm.bias": sd[head + "0.bias"],
        "visual_projection.weight": proj,
    }
    for i in range(n_layers):
        b, o = f"{trunk}blocks.{i}.", f"{v}encoder.layers.{i}."
        w, bias = sd[b + "attn.in_proj_weight"], sd[b + "attn.in_proj_bias"]
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[o + f"self_attn.{name}.weight"] = w[j * hidden:(j + 1) * hidden]
            out[o + f"self_attn.{name}.bias"] = bias[j * hidden:(j + 1) * hidden]
        out[o + "self_attn.out_proj.weight"] = sd[b + "attn.out_proj.weight"]
        out[o + "self_attn.out_proj.bias"] = sd[b + "attn.out_proj.bias"]
        for src, dst in (("norm_1", "layer_norm1"), ("norm_2", "layer_norm2"), ("mlp.fc1", "mlp.fc1"),
                         ("mlp.fc2", "mlp.fc2")):
            out[o + f"{dst}.weight"] = sd[b + f"{src}.weight"]
            out[o + f"{dst}.bias"] = sd[b + f"{src}.bias"]
    return cfg, out


class _FaceCropper:
    """Face-mesh box of each frame (tracking mode, reset per clip), cropped at full resolution.

    Uses the face extractors' helpers (:mod:`blemore.extractors._face`); the box is square,
    1.1 times the landmark extent, zero-padded where it leaves the frame. The crop is then
    resized by the model's own pipeline.
    """

    def __init__(self) -> None:
        self._face = _face
        try:
            self.tracker = _face.get_tracker()
        except ImportError as exc:  # mediapipe missing
            raise ExtractorUnavailableError(f"face_crop needs the face-mesh helpers (mediapipe): {exc}") from exc

    def reset(self) -> None:
        self.tracker.reset()

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        landmarks = self.tracker(np.ascontiguousarray(frame))
        if landmarks is None:
            return None
        x0, y0, x1, y1 = self._face.face_box(landmarks=landmarks)
        w, h = int(round(x1)) - int(round(x0)), int(round(y1)) - int(round(y0))
        if w < 2 or h < 2:
            return None
        return self._face.crop_face(frame, (x0, y0, x1, y1), size=(w, h))


class ImageEncoder(HFExtractor):
    """Base of the frame-level image encoders."""

    modality: ClassVar[str] = "video"
    config_class = ImageEncoderConfig
    default_preprocess: ClassVar[ImagePreprocess] = CLIP_PREPROCESS

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.preprocess = self.default_preprocess
        self._face = None

    @property
    def rate(self) -> float | None:
        return float(self.config.fps) if self.config.fps else None

    def _infer_dim(self) -> int:
        folder = find_local(self.weights_spec)
        if folder is not None and folder.is_dir():
            cfg = read_json(folder / "config.json")
            vis = cfg.get("vision_config", cfg)
            if self.config.layers or self.config.output == "pooled":
                return int(vis.get("hidden_size", self.nominal_dim))
            return int(cfg.get("projection_dim", vis.get("projection_dim", self.nominal_dim)))
        return self.nominal_dim if not (self.config.layers or self.config.output == "pooled") else self.nominal_width

    nominal_width: ClassVar[int] = 768

    # -- loading ------------------------------------------------------------------------------
    def _load_model(self, path: Path) -> None:
        import transformers

        if path.is_file():
            self._load_checkpoint_file(path)
            self._setup(self.model, {}, self.file_preprocess)
        else:
            cfg = read_json(path / "config.json")
            if cfg.get("model_type") not in ("clip", "clip_vision_model"):
                raise WeightsError(f"{self.name}: {path} holds a {cfg.get('model_type')!r} model; expected a CLIP "
                                 "model folder (model_type 'clip' or 'clip_vision_model')")
            kwargs = {}
            if cfg.get("model_type") == "clip":  # a full CLIP folder: its projection size is top-level
                vis = dict(cfg.get("vision_config") or {})
                vis.pop("model_type", None)
                if "projection_dim" in cfg:
                    vis["projection_dim"] = cfg["projection_dim"]
                kwargs["config"] = transformers.CLIPVisionConfig(**vis)
            self.model = from_pretrained_quiet(transformers.CLIPVisionModelWithProjection, path, **kwargs)
            self._setup(self.model, read_json(path / "preprocessor_config.json"))

    #: the pipeline for checkpoint files (ImageBind's); folders use ``default_preprocess``
    file_preprocess: ClassVar[ImagePreprocess] = CLIP_PREPROCESS

    def _setup(self, model, prep: dict, default: ImagePreprocess | None = None) -> None:
        side = int(model.config.image_size)  # 224 for the public models; the pipeline scales with it
        default = dataclasses.replace(default or self.default_preprocess, size=side, crop=(side, side))
        self.preprocess = ImagePreprocess.from_processor_config(prep, default)
        if self.preprocess.crop != (side, side):
            raise SettingsError(f"{self.name}: the preprocessing crops {self.preprocess.crop} but the model expects "
                             f"{side} x {side} images")
        spec = parse_layers(self.config.layers)
        if spec is not None:
            spec.check(model.config.num_hidden_layers, self.name)
        if self.config.face_crop:
            self._face = _FaceCropper()

    def _load_checkpoint_file(self, path: Path) -> None:
        raise WeightsError(f"{self.name}: expected a transformers CLIP folder (config.json + weights), got the file {path}")

    def _model_dim(self) -> int:
        cfg = self.model.config
        if self.config.layers or self.config.output == "pooled":
            return int(cfg.hidden_size)
        return int(cfg.projection_dim)

    # -- computing -----------------------------------------------------------------------------
    def embed_frames(self, frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """Rows ``(N, D)`` for RGB uint8 frames: an ``(N, H, W, 3)`` array, or a list of
        ``(H, W, 3)`` arrays of any sizes (face crops)."""
        import torch

        self.load()
        if isinstance(frames, np.ndarray) and frames.ndim == 3:
            frames = frames[None]
        if len(frames) == 0:
            return np.zeros((0, self.dim), np.float32)
        if isinstance(frames, np.ndarray):
            x = self.preprocess(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device))
        else:  # different sizes: preprocess one by one, then batch
            x = torch.cat([self.preprocess(torch.from_numpy(np.ascontiguousarray(f))[None].to(self.device))
                           for f in frames])
        spec = parse_layers(self.config.layers)
        with torch.inference_mode(), self._autocast():
            res = self.model(pixel_values=x, output_hidden_states=spec is not None)
            if spec is not None:
                h = spec.pool([hs[:, 0] for hs in res.hidden_states])
            elif self.config.output == "pooled":
                h = res.last_hidden_state[:, 0]
                h = self.model.vision_model.post_layernorm(h)
            else:
                h = res.image_embeds
            h = h.float()
            if self.config.normalize:
                h = torch.nn.functional.normalize(h, dim=-1)
        return h.cpu().numpy()

    def extract(self, path: str | Path) -> ExtractResult:
        self.load()
        rows: list[np.ndarray] = []
        times: list[float] = []
        faces = 0
        try:
            if self._face is not None:
                self._face.reset()  # one clip's face never seeds the next
            frames = iter_video_frames(path, fps=self.config.fps)
            for batch in batched(frames, self.config.batch_size):
                imgs = [f for f, _ in batch]
                times += [t for _, t in batch]
                if self._face is None:
                    rows.append(self.embed_frames(np.stack(imgs)))
                    continue
                block = np.full((len(imgs), *self.row_shape), np.nan, np.float32)
                crops, where = [], []
                for i, img in enumerate(imgs):
                    crop = self._face(img)
                    if crop is not None:
                        crops.append(crop)
                        where.append(i)
                if crops:
                    block[where] = self.embed_frames(crops)
                    faces += len(crops)
                rows.append(block)
        except Exception as exc:
            return self._failed(exc, media_status(exc))
        if not times:
            return ExtractResult(np.zeros((0, self.dim), np.float32), np.zeros(0), status="no-video",
                                 error="no decodable video frames")
        feats = np.concatenate(rows).astype(np.float32)
        info = {"frames": len(times), "seconds": float(times[-1]) if times else 0.0}
        if self._face is not None:
            info["faces"] = faces
            if faces == 0:
                return ExtractResult(feats, np.asarray(times), status="no-face", error="no face in any frame", info=info)
        elif not np.isfinite(feats).all():
            return self._failed(FloatingPointError("the model produced non-finite values (try --set "
                                                   f"{self.name}.precision=fp32)"))
        return ExtractResult(feats, np.asarray(times, dtype=np.float64), info=info)


@register_extractor
class ClipViTB32(ImageEncoder):
    """OpenAI CLIP ViT-B/32 image embeddings per frame (512-d)."""

    name = "clip-vit-b32"
    version = "1"
    default_weights = "openai/clip-vit-base-patch32"
    description = "CLIP ViT-B/32 image embedding per frame (512-d); --set fps=, face_crop="
    nominal_dim = 512
    nominal_width = 768
    column_prefix = "clip"


@dataclass
class ImageBindConfig(ImageEncoderConfig):
    normalize: bool = True  # ImageBind L2-normalises its vision embeddings


@register_extractor
class ImageBindVision(ImageEncoder):
    """ImageBind's image encoder (OpenCLIP ViT-H/14, frozen): 1024-d per frame, L2-normalised."""

    name = "imagebind-vision"
    version = "1"
    default_weights = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    description = ("ImageBind vision = frozen OpenCLIP ViT-H/14 (1024-d, L2-normalised) per frame; "
                   "--weights imagebind_huge.pth for the exact ImageBind layout")
    config_class = ImageBindConfig
    file_preprocess = IMAGEBIND_PREPROCESS
    nominal_dim = 1024
    nominal_width = 1280
    nominal_layers = 32  # ViT-H/14
    column_prefix = "imagebind"

    def _infer_dim(self) -> int:
        p = find_local(self.weights_spec)
        if p is not None and p.is_file():
            try:
                shapes = checkpoint_shapes(p)
                proj = shapes["modality_heads.vision.2.weight"]
            except Exception:  # unreadable or not ImageBind: load() will say why
                return self.nominal_dim
            return int(proj[1] if (self.config.layers or self.config.output == "pooled") else proj[0])
        return super()._infer_dim()

    def _load_checkpoint_file(self, path: Path) -> None:
        import torch
        import transformers

        sd = load_state_dict(path)
        cfg_kwargs, mapped = imagebind_vision_to_clip(sd, self.config.num_heads)
        del sd
        model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**cfg_kwargs))
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in mapped.items()}, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise WeightsError(f"{self.name}: mapping {path} left missing={missing[:5]} unexpected={unexpected[:5]}")
        self.model = model.to(torch.float32)
