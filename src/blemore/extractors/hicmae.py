"""``hicmae``: the HiCMAE audio-visual encoder (Sun et al., Information Fusion 2024).

HiCMAE is the encoder behind the BLEMORE paper's best salience result. Its released checkpoints
(the VoxCeleb2 pre-trained ``checkpoint-99.pth`` and the fine-tuned CREMA-D / MAFW models, all
distributed by the authors through the links in the README of ``github.com/sunlicai/HiCMAE``,
not on the Hugging Face hub) are loaded into :class:`HiCMAEModel`, our own definition of the
network whose parameter names are the authors' (read from their ``modeling_finetune_av.py`` /
``modeling_pretrain_av.py``; no code of theirs is used):

* ``encoder.*``: the video ViT (tubelet 2 x 16 x 16 patches, sinusoidal positions that are
  not parameters, blocks ``norm1 / attn.qkv, attn.q_bias, attn.v_bias, attn.proj / norm2 /
  mlp.fc1, mlp.fc2``, a final ``norm`` applied to every layer's tokens);
* ``encoder_audio.*``: the same ViT over a log-Mel spectrogram (16 x 16 patches of a
  256 x 128 time x frequency image, one input channel);
* ``encoder_fusion.*``: cross-modal blocks (``blocks`` for video, ``blocks_audio`` for audio:
  ``cross_attn.q, cross_attn.kv, cross_attn.q_bias, cross_attn.v_bias, cross_attn.proj,
  cross_norm1, cross_norm2`` then a self-attention block), with ``norm`` and ``norm_audio``;
* fine-tuned checkpoints also hold ``video_layer_weights``, ``audio_layer_weights`` (softmax
  weights over the layers of each encoder) and ``fc_norm`` over the concatenated 4 features;
  pre-trained checkpoints lack them and get the fine-tuning starting point (uniform layer
  weights, an identity-initialised ``fc_norm``).

Loading is strict: every parameter of the encoders and the fusion blocks must be in the
checkpoint with the right shape and no unknown parameter may sit under those prefixes
(decoders, mask tokens and the classification ``head`` of a checkpoint are ignored and
counted). Sizes (width, depth, MLP width, patch and tubelet size, fusion depth) are read from
the tensor shapes; attention heads are ``width / 64`` as in the authors' three variants
(256/4, 384/6, 512/8; ``num_heads`` overrides). Torch checkpoints are read with
``weights_only=True`` (``argparse.Namespace``, which the authors store beside the weights, is
allowed).

**Clip sampling and preprocessing** (the authors' test mode): frames are taken every
``frame_step`` = 4 frames of the source video, 16 of them form a segment (span 61 frames,
about 2 s at 30 fps); segments start every ``segment_stride`` sampled frames (16:
non-overlapping) and a last one is aligned to the end when frames would be left out; a clip
shorter than one segment repeats its last frame. Each frame is the face crop (the face-mesh
box, ``face_crop=True``; HiCMAE was trained on aligned faces; a frame without a face reuses the
clip's last box) or the whole frame, resized to
160 x 160 (bilinear; shorter side + centre crop for non-square inputs), scaled to [0, 1] and
normalised with the ImageNet mean/std. The segment's audio runs from its first sampled frame
to one frame step after its last one; it becomes a Kaldi-compatible log-Mel filterbank (128
bins, 25 ms Hanning windows every 10 ms), zero-padded or cut to 256 frames and normalised as
``(x + 4.2677393) / (2 * 4.5689974)``, which is exactly what ``transformers``'
``ASTFeatureExtractor`` (the AudioMAE / AST recipe HiCMAE inherits) computes, so that processor
is used. A clip without an audio stream gets the spectrogram of silence (and a note in
``info``); a clip with no video fails.

**Output** (one row per segment, time-stamped at the segment's centre), ``output``:

* ``fused`` (default): ``fc_norm([visual, audio, fusion_visual, fusion_audio])``, the
  2 x (video width + audio width) vector the authors' classification head reads (2048-d for
  the base model);
* ``visual`` / ``audio``: the layer-weighted mean-pooled tokens of one encoder (512-d);
* ``fusion``: the mean-pooled tokens of the fusion blocks, video then audio (1024-d).
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from blemore.extractors import _face
from blemore.extractors._hf import (
    ExtractorUnavailableError,
    HFConfig,
    HFExtractor,
    ImagePreprocess,
    WeightsUnavailableError,
    checkpoint_shapes,
    find_local,
    finite_or_fail,
    iter_video_frames,
    load_state_dict,
    media_status,
    read_audio_16k,
)
from blemore.extractors.base import ExtractResult, register_extractor
from blemore.extractors.hf_video import IMAGENET_MEAN, IMAGENET_STD, segment_starts
from blemore.validate import SettingsError
from blemore.weights import WeightsError

__all__ = ["HiCMAEConfig", "HiCMAE", "HiCMAEModel", "hicmae_config_from_state_dict", "build_hicmae",
           "load_hicmae_checkpoint", "HICMAE_AUDIO", "HICMAE_PREPROCESS"]

SAMPLE_RATE = 16000
#: the authors' audio settings (AudioMAE's AudioSet statistics, 256 frames of 10 ms, 128 bins)
HICMAE_AUDIO = {"num_mel_bins": 128, "max_length": 256, "mean": -4.2677393, "std": 4.5689974}
HICMAE_PREPROCESS = ImagePreprocess(size=160, crop=(160, 160), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                    resample="bilinear")
_OUTPUTS = ("fused", "visual", "audio", "fusion")
#: parameters a pre-trained (not fine-tuned) checkpoint lacks; they keep their initial values
OPTIONAL_KEYS = ("fc_norm.weight", "fc_norm.bias", "video_layer_weights", "audio_layer_weights")
_MODULE_PREFIXES = ("encoder.", "encoder_audio.", "encoder_fusion.")
WEIGHTS_SOURCE = ("the authors' checkpoints (README of https://github.com/sunlicai/HiCMAE: the VoxCeleb2 "
                  "pre-trained checkpoint-99.pth, fine-tuned CREMA-D/MAFW models)")


@dataclass
class HiCMAEConfig(HFConfig):
    """Settings of ``hicmae`` (see the module docstring).

    ``output``: fused | visual | audio | fusion. ``frame_step``: source frames between sampled
    frames (4). ``segment_stride``: sampled frames between segment starts (16). ``face_crop``:
    encode the face-mesh crop. ``image_size``/``num_frames``: the video input the checkpoint was
    trained with (160, 16). ``num_heads``: attention heads (None: width / 64).
    """

    output: str = "fused"
    frame_step: int = 4
    segment_stride: int = 16
    face_crop: bool = True
    image_size: int = 160
    num_frames: int = 16
    num_heads: int | None = None
    batch_size: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = []
        if self.output not in _OUTPUTS:
            problems.append(f"output must be one of {_OUTPUTS}, got {self.output!r}")
        for name in ("frame_step", "segment_stride", "image_size", "num_frames"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.layers is not None:
            problems.append("hicmae takes no layers setting (its fine-tuned layer weights pool the layers)")
        if problems:
            raise SettingsError("; ".join(problems))


# ----------------------------------------------------------------------------- the network
def _torch_modules():
    """The network's module classes, built on first use (torch is imported lazily)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    def sincos_table(n: int, d: int) -> "torch.Tensor":
        pos = np.arange(n, dtype=np.float64)[:, None]
        j = np.arange(d)[None, :]
        angle = pos / np.power(10000.0, 2 * (j // 2) / d)
        table = np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
        return torch.tensor(table, dtype=torch.float32)[None]

    def ln(d: int) -> nn.LayerNorm:
        return nn.LayerNorm(d, eps=1e-6)

    def attend(q, k, v, heads: int):
        b, tq, c = q.shape
        tk = k.shape[1]
        q = q.reshape(b, tq, heads, -1).transpose(1, 2)
        k = k.reshape(b, tk, heads, -1).transpose(1, 2)
        v = v.reshape(b, tk, heads, -1).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, tq, c)

    class SelfAttention(nn.Module):
        def __init__(self, dim: int, heads: int):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
            q, k, v = F.linear(x, self.qkv.weight, bias).chunk(3, dim=-1)
            return self.proj(attend(q, k, v, self.heads))

    class CrossAttention(nn.Module):
        def __init__(self, dim: int, context_dim: int, heads: int):
            super().__init__()
            self.heads = heads
            self.q = nn.Linear(dim, dim, bias=False)
            self.kv = nn.Linear(context_dim, 2 * dim, bias=False)
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
            self.proj = nn.Linear(dim, dim)

        def forward(self, x, context):
            q = F.linear(x, self.q.weight, self.q_bias)
            kv_bias = torch.cat([torch.zeros_like(self.v_bias), self.v_bias])
            k, v = F.linear(context, self.kv.weight, kv_bias).chunk(2, dim=-1)
            return self.proj(attend(q, k, v, self.heads))

    class Mlp(nn.Module):
        def __init__(self, dim: int, hidden: int):
            super().__init__()
            self.fc1 = nn.Linear(dim, hidden)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self, dim: int, heads: int, hidden: int):
            super().__init__()
            self.norm1, self.attn = ln(dim), SelfAttention(dim, heads)
            self.norm2, self.mlp = ln(dim), Mlp(dim, hidden)

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class CrossBlock(Block):
        def __init__(self, dim: int, context_dim: int, heads: int, hidden: int):
            super().__init__(dim, heads, hidden)
            self.cross_attn = CrossAttention(dim, context_dim, heads)
            self.cross_norm1, self.cross_norm2 = ln(dim), ln(context_dim)

        def forward(self, x, context):
            x = x + self.cross_attn(self.cross_norm1(x), self.cross_norm2(context))
            return super().forward(x)

    class Patches(nn.Module):
        def __init__(self, conv: nn.Module):
            super().__init__()
            self.proj = conv

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class Encoder(nn.Module):
        """A ViT whose forward returns every layer's normalised tokens, stacked: (B, N, L, D)."""

        def __init__(self, conv: nn.Module, n_tokens: int, dim: int, depth: int, heads: int, hidden: int):
            super().__init__()
            self.patch_embed = Patches(conv)
            self.register_buffer("pos_embed", sincos_table(n_tokens, dim), persistent=False)
            self.blocks = nn.ModuleList([Block(dim, heads, hidden) for _ in range(depth)])
            self.norm = ln(dim)

        def forward(self, x):
            x = self.patch_embed(x)
            if x.shape[1] != self.pos_embed.shape[1]:
                raise ValueError(f"input gives {x.shape[1]} tokens; the encoder was built for {self.pos_embed.shape[1]}")
            x = x + self.pos_embed.to(x.dtype)
            layers = []
            for blk in self.blocks:
                x = blk(x)
                layers.append(x)
            return self.norm(torch.stack(layers, dim=2))

    class Fusion(nn.Module):
        def __init__(self, dim_v: int, dim_a: int, depth: int, heads: int, hidden_v: int, hidden_a: int):
            super().__init__()
            self.blocks = nn.ModuleList([CrossBlock(dim_v, dim_a, heads, hidden_v) for _ in range(depth)])
            self.norm = ln(dim_v)
            self.blocks_audio = nn.ModuleList([CrossBlock(dim_a, dim_v, heads, hidden_a) for _ in range(depth)])
            self.norm_audio = ln(dim_a)

        def forward(self, v, a):
            for blk, blk_a in zip(self.blocks, self.blocks_audio):
                v, a = blk(v, a), blk_a(a, v)
            return self.norm(v), self.norm_audio(a)

    class Model(nn.Module):
        def __init__(self, cfg: dict):
            super().__init__()
            self.cfg = dict(cfg)
            dv, da, heads = cfg["dim"], cfg["dim_audio"], cfg["num_heads"]
            p, t = cfg["patch_size"], cfg["tubelet_size"]
            n_v = (cfg["num_frames"] // t) * (cfg["image_size"] // p) ** 2
            pa = cfg["patch_size_audio"]
            n_a = (cfg["audio_length"] // pa) * (cfg["num_mel_bins"] // pa)
            self.encoder = Encoder(nn.Conv3d(3, dv, (t, p, p), stride=(t, p, p)), n_v, dv, cfg["depth"], heads,
                                   cfg["mlp_hidden"])
            self.encoder_audio = Encoder(nn.Conv2d(1, da, pa, stride=pa), n_a, da, cfg["depth_audio"], heads,
                                         cfg["mlp_hidden_audio"])
            self.encoder_fusion = Fusion(dv, da, cfg["fusion_depth"], cfg.get("fusion_num_heads", heads),
                                         cfg["mlp_hidden"], cfg["mlp_hidden_audio"])
            self.fc_norm = ln(2 * (dv + da))
            self.video_layer_weights = nn.Parameter(torch.ones(cfg["depth"]) / cfg["depth"])
            self.audio_layer_weights = nn.Parameter(torch.ones(cfg["depth_audio"]) / cfg["depth_audio"])

        def forward(self, video, audio):
            """``video`` (B, 3, T, H, W), ``audio`` (B, 1, time, mel) -> dict of (B, D) tensors."""
            xv = self.encoder(video)  # (B, N, L, D)
            xa = self.encoder_audio(audio)
            wv = torch.softmax(self.video_layer_weights, dim=0).view(1, -1, 1)
            wa = torch.softmax(self.audio_layer_weights, dim=0).view(1, -1, 1)
            visual = (xv.mean(dim=1) * wv).sum(dim=1)
            aud = (xa.mean(dim=1) * wa).sum(dim=1)
            fv, fa = self.encoder_fusion(xv[:, :, -1], xa[:, :, -1])
            fusion = torch.cat([fv.mean(dim=1), fa.mean(dim=1)], dim=-1)
            fused = self.fc_norm(torch.cat([visual, aud, fusion], dim=-1))
            return {"visual": visual, "audio": aud, "fusion": fusion, "fused": fused}

    return Model


def build_hicmae(cfg: dict):
    """A :class:`HiCMAEModel` (randomly initialised) for a config dict (see
    :func:`hicmae_config_from_state_dict` for the keys)."""
    return _torch_modules()(cfg)


class HiCMAEModel:
    """Documentation anchor: ``build_hicmae(cfg)`` returns the ``torch.nn.Module`` described in
    the module docstring (defined lazily so that importing this module needs no torch)."""


def _depth(shapes: dict, prefix: str) -> int:
    idx = {int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix)}
    return max(idx) + 1 if idx else 0


def hicmae_config_from_state_dict(shapes: dict, *, num_heads: int | None = None, image_size: int = 160,
                                  num_frames: int = 16, audio_length: int = 256) -> dict:
    """The architecture of a HiCMAE checkpoint from its tensor shapes (``name -> shape``).

    Raises ``ValueError`` listing the missing entry points when it is not one."""
    need = ["encoder.patch_embed.proj.weight", "encoder_audio.patch_embed.proj.weight",
            "encoder.blocks.0.mlp.fc1.weight", "encoder_audio.blocks.0.mlp.fc1.weight",
            "encoder_fusion.blocks.0.cross_attn.q.weight"]
    missing = [k for k in need if k not in shapes]
    if missing:
        raise WeightsError(f"not a HiCMAE checkpoint (authors' parameter names): missing {', '.join(missing)}")
    pv, pa = tuple(shapes[need[0]]), tuple(shapes[need[1]])
    if len(pv) != 5 or len(pa) != 4:
        raise WeightsError(f"unexpected HiCMAE patch projections {pv} (video) and {pa} (audio)")
    dim, dim_a = int(pv[0]), int(pa[0])
    heads = int(num_heads or max(1, dim // 64))
    return {
        "dim": dim, "dim_audio": dim_a, "num_heads": heads, "fusion_num_heads": heads,
        "tubelet_size": int(pv[2]), "patch_size": int(pv[3]), "patch_size_audio": int(pa[2]),
        "depth": _depth(shapes, "encoder.blocks."), "depth_audio": _depth(shapes, "encoder_audio.blocks."),
        "fusion_depth": _depth(shapes, "encoder_fusion.blocks."),
        "mlp_hidden": int(shapes[need[2]][0]), "mlp_hidden_audio": int(shapes[need[3]][0]),
        "image_size": int(image_size), "num_frames": int(num_frames), "audio_length": int(audio_length),
        "num_mel_bins": HICMAE_AUDIO["num_mel_bins"],
    }


def _read_checkpoint(path: Path, shapes_only: bool = False) -> dict:
    """Tensors (or shapes) of a checkpoint file; the authors' ``argparse.Namespace`` is allowed."""
    import torch

    with torch.serialization.safe_globals([argparse.Namespace]):
        return checkpoint_shapes(path) if shapes_only else load_state_dict(path)


def load_hicmae_checkpoint(path: Path, *, num_heads: int | None = None, image_size: int = 160,
                           num_frames: int = 16) -> tuple[object, dict]:
    """Build the network for a checkpoint file and load it strictly (see the module docstring).

    Returns ``(model, info)``; ``info`` counts the ignored tensors and says whether the
    fine-tuned pooling parameters were present."""
    sd = _read_checkpoint(Path(path))
    cfg = hicmae_config_from_state_dict({k: tuple(v.shape) for k, v in sd.items()}, num_heads=num_heads,
                                        image_size=image_size, num_frames=num_frames)
    model = build_hicmae(cfg)
    own = model.state_dict()
    ours = {k: v for k, v in sd.items() if k.startswith(_MODULE_PREFIXES) or k in OPTIONAL_KEYS}
    ignored = sorted(k for k in sd if k not in ours)
    unexpected = sorted(k for k in ours if k not in own)
    missing = sorted(k for k in own if k not in ours and k not in OPTIONAL_KEYS)
    wrong = sorted(f"{k} {tuple(ours[k].shape)} vs {tuple(own[k].shape)}" for k in ours
                   if k in own and tuple(ours[k].shape) != tuple(own[k].shape))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} parameters (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"unknown parameters under the encoder prefixes (unsupported variant, e.g. layer scale?): "
                        f"{', '.join(unexpected[:5])}")
    if wrong:
        problems.append(f"shape mismatches: {'; '.join(wrong[:5])}")
    if problems:
        raise WeightsError(f"{path}: does not load into HiCMAE strictly: " + "; ".join(problems))
    model.load_state_dict({k: v.float() for k, v in ours.items()}, strict=False)
    finetuned = all(k in ours for k in OPTIONAL_KEYS)
    return model, {"config": cfg, "ignored": len(ignored), "finetuned": finetuned}


# ----------------------------------------------------------------------------- the extractor
@register_extractor
class HiCMAE(HFExtractor):
    """HiCMAE audio-visual encoder: one row per 16-frame (every 4th frame) segment."""

    name = "hicmae"
    modality: ClassVar[str] = "video"
    version = "1"
    #: shown by ``blemore extractors``; the checkpoint is always given with ``--weights``
    default_weights = "authors' checkpoint-99.pth via --weights"
    description = ("HiCMAE audio-visual MAE (authors' checkpoint via --weights): per 16x4-frame segment, fused "
                   "2048-d (or visual/audio 512-d, fusion 1024-d)")
    config_class = HiCMAEConfig
    nominal_dim = 2048
    column_prefix = "hicmae"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.preprocess = dataclasses.replace(HICMAE_PREPROCESS, size=self.config.image_size,
                                              crop=(self.config.image_size, self.config.image_size))
        self.audio_processor = None
        self.load_info: dict = {}
        self._face = None  # the face-mesh helper module, when face_crop
        self._tracker = None
        self._nofaces = 0

    @property
    def rate(self) -> float | None:
        return None  # segments follow the video's own frame rate

    @property
    def weights_spec(self) -> str:
        return str(self.config.weights) if self.config.weights else ""

    @classmethod
    def weights_available(cls) -> bool:
        return False  # no public hub copy: the checkpoint is always a local file

    def weights_ready(self) -> bool:
        local = find_local(self.weights_spec) if self.weights_spec else None
        return local is not None and local.is_file()

    @staticmethod
    def _dims(cfg: dict) -> dict[str, int]:
        dv, da = cfg["dim"], cfg["dim_audio"]
        return {"fused": 2 * (dv + da), "visual": dv, "audio": da, "fusion": dv + da}

    def _infer_dim(self) -> int:
        local = find_local(self.weights_spec) if self.weights_spec else None
        if local is not None and local.is_file():
            try:
                cfg = hicmae_config_from_state_dict(_read_checkpoint(local, shapes_only=True),
                                                    num_heads=self.config.num_heads)
                return self._dims(cfg)[self.config.output]
            except Exception:  # load() will say why
                pass
        return {"fused": 2048, "visual": 512, "audio": 512, "fusion": 1024}[self.config.output]

    def resolve(self) -> Path:
        if not self.weights_spec:
            raise WeightsUnavailableError(
                f"{self.name}: no weights given. HiCMAE's checkpoints are not on the Hugging Face hub: download "
                f"{WEIGHTS_SOURCE} and pass the .pth file: `blemore extract ... --extractor hicmae --weights "
                "PATH/checkpoint-99.pth`")
        local = find_local(self.weights_spec)
        if local is None or not local.is_file():
            raise WeightsUnavailableError(
                f"{self.name}: weights {self.weights_spec!r} is not an existing checkpoint file. Download "
                f"{WEIGHTS_SOURCE} and pass the .pth file with --weights")
        return local

    def _load_model(self, path: Path) -> None:
        model, self.load_info = load_hicmae_checkpoint(path, num_heads=self.config.num_heads,
                                                       image_size=self.config.image_size,
                                                       num_frames=self.config.num_frames)
        self.model = model
        self._setup(model, {})

    def _setup(self, model, prep: dict) -> None:
        import warnings

        from transformers import ASTFeatureExtractor

        cfg = model.cfg
        if cfg["image_size"] != self.config.image_size or cfg["num_frames"] != self.config.num_frames:
            raise SettingsError(f"{self.name}: the model takes {cfg['num_frames']} x {cfg['image_size']}^2 clips; the "
                             f"settings say {self.config.num_frames} x {self.config.image_size}^2")
        with warnings.catch_warnings():  # "a mel filter has all zero values": also true of Kaldi's 128-bin bank
            warnings.simplefilter("ignore", UserWarning)
            self.audio_processor = ASTFeatureExtractor(
                feature_size=1, sampling_rate=SAMPLE_RATE, num_mel_bins=cfg["num_mel_bins"],
                max_length=cfg["audio_length"], mean=HICMAE_AUDIO["mean"], std=HICMAE_AUDIO["std"],
                do_normalize=True)
        if self.config.face_crop and self._tracker is None:
            try:
                self._tracker = _face.get_tracker()
            except ImportError as exc:  # mediapipe missing
                raise ExtractorUnavailableError(f"{self.name}: face_crop needs MediaPipe's face mesh ({exc}); install "
                                                "the extract extra or set face_crop=false") from exc
            self._face = _face

    def _model_dim(self) -> int:
        return self._dims(self.model.cfg)[self.config.output]

    # -- inputs ------------------------------------------------------------------------------------
    def audio_input(self, wave: np.ndarray) -> np.ndarray:
        """The normalised log-Mel input ``(1, 256, 128)`` float32 for one segment's 16 kHz audio."""
        w = np.asarray(wave, dtype=np.float32).reshape(-1)
        if len(w) < 400:  # shorter than one 25 ms window: pad with silence
            w = np.pad(w, (0, 400 - len(w)))
        feats = self.audio_processor(w, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"]
        return feats.astype(np.float32)  # (1, time, mel)

    def sample_frames(self, path: str | Path) -> tuple[list[np.ndarray], list[float], int, float | None]:
        """Every ``frame_step``-th frame (face crop or whole frame), its time, the number of source
        frames and the source frame interval (seconds). A sampled frame without a face reuses the
        last face box of the clip (the whole frame before the first face); they are counted."""
        frames, times, n = [], [], 0
        dt = None
        box = None
        if self._tracker is not None:
            self._tracker.reset()  # one clip's face never seeds the next
        last = None
        for i, (frame, t) in enumerate(iter_video_frames(path)):
            n += 1
            if last is not None and dt is None:
                dt = float(t) - last
            last = float(t)
            if i % self.config.frame_step:
                continue
            img = frame
            if self._tracker is not None:
                landmarks = self._tracker(np.ascontiguousarray(frame))
                if landmarks is not None:
                    box = self._face.face_box(landmarks=landmarks)
                else:
                    self._nofaces += 1
                if box is not None:
                    img = self._face.crop_face(frame, box, size=self.config.image_size)
            frames.append(np.ascontiguousarray(img))
            times.append(float(t))
        return frames, times, n, dt

    def segments(self, n_sampled: int) -> list[list[int]]:
        """Sampled-frame indices of every segment (the last frame repeats in a short clip)."""
        k = self.config.num_frames
        starts = segment_starts(n_sampled, k, self.config.segment_stride, cover_tail=True)
        return [[min(s + j, n_sampled - 1) for j in range(k)] for s in starts]

    def embed_clip(self, frames: list[np.ndarray], times: list[float], wave: np.ndarray | None,
                   frame_dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Segment rows and centre times from sampled frames, their times and the clip's audio."""
        import torch

        self.load()
        if not frames:
            return np.zeros((0, self.dim), np.float32), np.zeros(0)
        with torch.inference_mode():
            pre = torch.cat([self.preprocess(torch.from_numpy(f)[None].to(self.device)) for f in frames])  # (N,3,H,W)
        rows, centres = [], []
        segs = self.segments(len(frames))
        hop = self.config.frame_step * frame_dt
        for i in range(0, len(segs), self.config.batch_size):
            batch = segs[i: i + self.config.batch_size]
            video = torch.stack([pre[idx].permute(1, 0, 2, 3) for idx in batch])  # (B, 3, T, H, W)
            specs = []
            for idx in batch:
                t0, t1 = times[idx[0]], times[idx[-1]] + hop
                a = np.zeros(0, np.float32) if wave is None else wave[int(round(t0 * SAMPLE_RATE)):
                                                                     int(round(t1 * SAMPLE_RATE))]
                specs.append(self.audio_input(a))
                centres.append((times[idx[0]] + times[idx[-1]]) / 2.0)
            audio = torch.from_numpy(np.stack(specs)).to(self.device)  # (B, 1, time, mel)
            with torch.inference_mode(), self._autocast():
                out = self.model(video, audio)[self.config.output]
            rows.append(out.float().cpu().numpy())
        return finite_or_fail(np.concatenate(rows).astype(np.float32)), np.asarray(centres, dtype=np.float64)

    def extract(self, path: str | Path) -> ExtractResult:
        self.load()
        self._nofaces = 0
        try:
            frames, times, n, dt = self.sample_frames(path)
        except Exception as exc:
            return self._failed(exc, media_status(exc))
        if not frames:
            return ExtractResult(np.zeros((0, self.dim), np.float32), np.zeros(0), status="no-video",
                                 error="no decodable video frames")
        info = {"frames": n, "sampled": len(frames)}
        try:
            wave = read_audio_16k(path)
        except Exception as exc:
            if media_status(exc) != "no-audio":
                return self._failed(exc)
            wave, info["audio"] = None, "none (silence used)"
        if self._tracker is not None:
            info["no_face_frames"] = self._nofaces
        try:
            feats, centres = self.embed_clip(frames, times, wave, dt or 1 / 25.0)
        except Exception as exc:
            return self._failed(exc)
        info["segments"] = int(len(feats))
        info["seconds"] = float(n * (dt or 1 / 25.0))
        return ExtractResult(feats, centres, info=info)

