"""``timesformer``: TimeSformer (divided space-time attention) via ``transformers.TimesformerModel``.

Default weights ``facebook/timesformer-base-finetuned-k400`` (ViT-B, 8 frames of 224 x 224,
Kinetics-400); any TimeSformer folder or id works (``model_type`` ``timesformer``: the HR and
large variants, SSv2 fine-tunes); the classification head of a ``...ForVideoClassification``
checkpoint is skipped.

One row per segment, exactly as ``videomae-v2-base`` (:class:`~blemore.extractors.hf_video.
SegmentEncoder`: streaming decode, segments of ``num_frames`` frames ``frame_step`` apart
starting every ``segment_stride`` frames, a tail segment, centre time stamps). The segment length
is the checkpoint's ``num_frames`` (8 for the base model); the defaults here (``frame_step=2``,
``segment_stride=16``) make 8-frame segments that cover the clip without overlap, about 0.5 s
each at 30 fps (Kinetics models were trained on sparser samples, 1 frame in 32 for the base model:
set ``frame_step`` to taste; it is recorded in ``config.json``).

A row is the final-LayerNorm CLS token (what ``TimesformerForVideoClassification`` feeds to its
classifier), or with ``layers`` the mean of the CLS token over a range of hidden states.

Input pipeline: ``VideoMAEImageProcessor`` as configured by the checkpoint's
``preprocessor_config.json`` (for the K400 base model: shorter side to 224 bilinear, centre crop
224, mean 0.45 / std 0.225 per channel); without one, those values.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from blemore.extractors._hf import ImagePreprocess, from_pretrained_quiet, parse_layers, read_json
from blemore.extractors.base import register_extractor
from blemore.extractors.hf_video import VideoEncoderConfig, VideoMAEv2Base
from blemore.weights import WeightsError

__all__ = ["TimesformerConfig", "Timesformer", "TIMESFORMER_PREPROCESS"]

#: the K400 checkpoints' ``preprocessor_config.json`` (VideoMAEImageProcessor settings)
TIMESFORMER_PREPROCESS = ImagePreprocess(size=224, crop=(224, 224), mean=(0.45, 0.45, 0.45),
                                         std=(0.225, 0.225, 0.225), resample="bilinear")


@dataclass
class TimesformerConfig(VideoEncoderConfig):
    """Settings of ``timesformer``: those of the segment encoders, with 8-frame defaults."""

    frame_step: int = 2
    segment_stride: int = 16


@register_extractor
class Timesformer(VideoMAEv2Base):
    """TimeSformer (K400 base by default): one 768-d CLS row per 8-frame segment.

    Shares :class:`VideoMAEv2Base`'s input pipeline set-up (processor config, crop check, segment
    length from the model config, layer check); loading and the row differ.
    """

    name = "timesformer"
    version = "1"
    default_weights = "facebook/timesformer-base-finetuned-k400"
    description = "TimeSformer-B (K400): 768-d CLS per 8-frame segment (frame_step 2); --layers"
    config_class = TimesformerConfig
    default_preprocess: ClassVar[ImagePreprocess] = TIMESFORMER_PREPROCESS
    nominal_dim = 768
    column_prefix = "timesformer"

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.num_frames = 8

    def _load_model(self, path: Path) -> None:
        import transformers

        if path.is_file():
            raise WeightsError(f"{self.name}: expected a transformers TimeSformer folder (config.json + weights), got "
                             f"the file {path}")
        cfg = read_json(path / "config.json")
        if cfg.get("model_type") != "timesformer":
            raise WeightsError(f"{self.name}: {path} holds a {cfg.get('model_type')!r} model; expected model_type "
                             "'timesformer'")
        self.model = from_pretrained_quiet(transformers.TimesformerModel, path)
        self._setup(self.model, read_json(path / "preprocessor_config.json"))

    def forward_segments(self, clips):
        spec = parse_layers(self.config.layers)
        res = self.model(pixel_values=clips, output_hidden_states=spec is not None)
        if spec is not None:
            return spec.pool([h[:, 0].float() for h in res.hidden_states])
        return res.last_hidden_state[:, 0]
