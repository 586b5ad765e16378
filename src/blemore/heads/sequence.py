"""Sequence heads: per-frame features in, no pooling.

Registered names:

* ``attn-pool``: a per-frame projection and multi-head attention pooling (each head scores
  every frame, softmax over the clip's frames, a weighted sum of its slice of the projection).
* ``bigru-attn``: the projection, a bidirectional GRU over the frames, attention pooling.
* ``transformer``: the projection plus learned positions, a small pre-norm transformer
  encoder (``layers`` x ``heads``), attention pooling.

Input: a head's :meth:`input_pooling` asks the runner (and model bundles) for frame sequences,
``Pooling(kind="frames", window=frames, stride=stride)``: every clip resampled onto ``frames``
time slots (default; all sources on that common time base, concatenated per frame: early
fusion), or with ``stride`` NaN-padded to ``frames`` frames and long clips cut in windows every
``stride`` frames whose logits are averaged per clip. Rows reach the head flattened
frame-major ``(N, frames * D)``; transforms are fitted per frame
(:class:`blemore.features.TransformChain` with ``frames``) and leave frames without data all-NaN.

Masks: frames that are all-NaN (no face, padding) are **masked, never imputed**: each clip's
valid frames are moved to the front in their order, the encoder sees only them (packed GRU,
key-padding mask, masked softmax), so inserting or appending NaN frames never changes the
output (tests/test_heads_sequence.py proves it). A clip without any valid frame gets the
output of an empty pooling (zeros into the output layer). Positions count valid frames.

Options: ``frames`` (64), ``stride`` (None: resample), ``hidden`` (128), ``heads`` (4),
``layers`` (2, transformer), ``dropout`` (0.1), ``center`` (True: subtract each clip's mean
valid frame first, removing what is constant within a clip such as the identity), ``loss`` (``kl``, ``weighted-kl`` with
``single_weight``, ``focal`` with ``gamma``; :mod:`blemore.heads.losses`).
"""
from __future__ import annotations

from typing import Any

from blemore.heads.base import HeadError, register_head
from blemore.heads.losses import check_loss, soft_loss
from blemore.heads.training import TorchHead
from blemore.pooling import Pooling

__all__ = ["SequenceHead", "AttnPoolHead", "BiGRUAttnHead", "TransformerHead", "build_sequence_net"]


def build_sequence_net(kind: str, in_dim: int, frames: int, hidden: int, heads: int, layers: int, dropout: float,
                       center: bool = False):
    """The ``torch.nn.Module`` of a sequence head: ``(B, frames * D)`` rows -> ``(B, 6)`` logits."""
    import torch
    from torch import nn

    if in_dim % frames:
        raise HeadError(f"sequence head: input width {in_dim} is not frames ({frames}) x features per frame")
    dim = in_dim // frames

    class SequenceNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.frames, self.dim, self.hidden, self.heads = frames, dim, hidden, heads
            self.proj = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout))
            self.gru = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True) if kind == "bigru-attn" else None
            if kind == "transformer":
                self.pos = nn.Parameter(torch.randn(1, frames, hidden) * 0.02)
                layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout, batch_first=True,
                                                   norm_first=True)
                self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            else:
                self.pos, self.enc = None, None
            self.score = nn.Linear(hidden, heads)
            self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 6))

        def forward(self, x):
            return self.out(self.embed(x))

        def embed(self, x):
            """The pooled clip representation ``(b, hidden)`` (before the output layer)."""
            return self.pool(*self.encode(x))

        def encode(self, x):
            """Per-frame encodings ``h`` ``(b, m, hidden)`` of each clip's valid frames, moved to the
            front in their order (``m``: the batch's most valid frames), and their ``mask``
            ``(b, m)`` (False: padding); cross-modal fusion (:mod:`blemore.heads.xattn`) works between
            this and :meth:`pool`."""
            b = x.shape[0]
            x = x.reshape(b, self.frames, self.dim)
            valid = ~torch.isnan(x).all(dim=2)
            order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)  # valid frames first, in order
            x = torch.gather(x, 1, order[:, :, None].expand(-1, -1, self.dim))
            lengths = valid.sum(dim=1)
            m = max(1, int(lengths.max())) if b else 1
            x = x[:, :m]
            mask = torch.arange(m, device=x.device)[None, :] < lengths[:, None]
            x = torch.nan_to_num(x, nan=0.0) * mask[:, :, None]
            if center:  # remove each clip's mean frame (over its valid frames): what stays constant in a clip
                mean = x.sum(dim=1, keepdim=True) / lengths.clamp_min(1)[:, None, None]
                x = (x - mean) * mask[:, :, None]
            h = self.proj(x)
            if self.gru is not None:
                packed = nn.utils.rnn.pack_padded_sequence(h, lengths.clamp_min(1).cpu(), batch_first=True,
                                                           enforce_sorted=False)
                out, _ = self.gru(packed)
                h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=m)
            if self.enc is not None:
                h = h + self.pos[:, :m]
                pad = ~mask
                pad[:, 0] = False  # a clip without valid frames attends its (zero) first slot
                h = self.enc(h, src_key_padding_mask=pad)
            return h, mask

        def pool(self, h, mask):
            """Masked multi-head attention pooling of frame encodings ``(b, m, hidden)`` -> ``(b, hidden)``."""
            b, m = mask.shape
            s = self.score(h).masked_fill(~mask[:, :, None], float("-inf"))
            w = torch.nan_to_num(torch.softmax(s, dim=1), nan=0.0)  # (b, m, heads); empty clips: 0
            hv = h.reshape(b, m, self.heads, self.hidden // self.heads)
            return torch.einsum("bmh,bmhc->bhc", w, hv).reshape(b, self.hidden)

    return SequenceNet()


class SequenceHead(TorchHead):
    """Base of the sequence heads (``kind`` picks the encoder)."""

    input = "sequence"
    kind = "attn-pool"

    def __init__(self, frames: int = 64, stride: int | None = None, hidden: int = 128, heads: int = 4,
                 layers: int = 2, dropout: float = 0.1, loss: str = "kl", single_weight: float = 2.0,
                 gamma: float = 2.0, center: bool = True):
        problems = check_loss(loss, single_weight, gamma)
        if int(frames) < 1:
            problems.append(f"frames must be >= 1, got {frames}")
        if stride is not None and int(stride) < 1:
            problems.append(f"stride must be >= 1 or None, got {stride}")
        if int(heads) < 1 or int(hidden) < 1 or int(hidden) % int(heads) or (self.kind == "bigru-attn" and int(hidden) % 2):
            problems.append(f"hidden ({hidden}) must be a positive multiple of heads ({heads})"
                            + (" and even" if self.kind == "bigru-attn" else ""))
        if int(layers) < 1:
            problems.append(f"layers must be >= 1, got {layers}")
        if not 0.0 <= float(dropout) < 1.0:
            problems.append(f"dropout must be in [0, 1), got {dropout}")
        if problems:
            raise HeadError(f"head {self.name!r}: " + "; ".join(problems))
        opts: dict[str, Any] = dict(frames=int(frames), stride=None if stride is None else int(stride),
                                    hidden=int(hidden), heads=int(heads), layers=int(layers), dropout=float(dropout),
                                    loss=str(loss), single_weight=float(single_weight), gamma=float(gamma),
                                    center=bool(center))
        super().__init__(**opts)
        for k, v in opts.items():
            if k != "loss":  # the option; the method of that name computes it
                setattr(self, k, v)

    def input_pooling(self, pooling: Pooling) -> Pooling:
        return Pooling(kind="frames", window=self.frames, stride=self.stride)

    def fit(self, X, Y_soft, **kwargs):  # type: ignore[override]
        """Train as :class:`TorchHead` with torch's global generator (dropout masks) seeded from
        ``seed`` for the duration, so the same seed gives the same model."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(kwargs.get("seed", 0)) + 7919)
            return super().fit(X, Y_soft, **kwargs)

    def build_module(self, in_dim: int):
        return build_sequence_net(self.kind, in_dim, self.frames, self.hidden, self.heads, self.layers, self.dropout,
                                  self.center)

    def loss(self, logits, y_soft, target):
        return soft_loss(logits, y_soft, self.options["loss"], self.single_weight, self.gamma)

    def _forward_clips(self, X, owner, chunk: int = 512):
        return super()._forward_clips(X, owner, chunk=chunk)

    def config(self) -> dict:
        return dict(self.options)


@register_head("attn-pool")
class AttnPoolHead(SequenceHead):
    kind = "attn-pool"


@register_head("bigru-attn")
class BiGRUAttnHead(SequenceHead):
    kind = "bigru-attn"


@register_head("transformer")
class TransformerHead(SequenceHead):
    kind = "transformer"
