"""The network of selective (gated) fusion, ``--fusion gated`` (:mod:`blemore.fusion_gated`).

After Lee et al. (FG 2026 BLEMORE challenge, 2nd place, "rank-aware selective fusion"): every
source's pooled features are projected into one shared space (``Linear -> ReLU``, width
``shared``, default 256), a gate scores each source per clip from its projection, a softmax over
all sources' scores gives their weights, and only the ``top`` best-scored sources of that clip
keep theirs (the others get 0; the kept weights are not renormalised, as in switch routing, so
the gate's scores get gradients even with ``top=1``); the fused vector goes through the configured head's
own network (e.g. ``mlp-512``'s hidden layer and output), with that head's loss, outputs and
decoder. ``top`` = number of sources is a soft (attention) fusion; ``top=1`` picks one source
per clip.

How it plugs in: :class:`blemore.fusion_gated.GatedFusion` puts all sources in one group (like
early fusion) and wraps the head the runner made (``head.wrapped("gated", ...)``, registry
:data:`blemore.heads.base.HEAD_WRAPPERS`) in a :class:`GatedHead` that knows each source's width;
bundles rebuild the wrapper from the saved state.

With a sequence head each source gets its own sequence encoder of that kind (its attention-pooled
embedding is the source's projection) and the output layer is a LayerNorm and a linear layer.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from blemore.heads.base import DelegatesToBase, Head, HeadError, register_head_wrapper
from blemore.heads.sequence import build_sequence_net
from blemore.heads.training import TorchHead

__all__ = ["GatedHead"]


@register_head_wrapper("gated")
class GatedHead(DelegatesToBase, TorchHead):
    """A head behind per-source projections and a per-clip top-N gate (see the module doc)."""

    name = "gated"

    def __init__(self, base: Head, dims: Sequence[int] | None = None, top: int = 1, shared: int = 256):
        if not isinstance(base, TorchHead):
            raise HeadError(f"gated fusion needs a torch head (e.g. mlp-512 or a sequence head), got {base.name!r}")
        super().__init__(**base.options)
        self.base, self.top, self.shared = base, int(top), int(shared)
        self.dims = None if dims is None else [int(d) for d in dims]
        self.output_dim = base.output_dim  # type: ignore[misc]

    # delegated to the wrapped head: its loss and outputs (and, by DelegatesToBase, its
    # probabilities, decoder, fusion, pooling and config)
    def loss(self, logits, y_soft, target):
        return self.base.loss(logits, y_soft, target)

    def logits_to_outputs(self, logits):
        return self.base.logits_to_outputs(logits)

    def fit(self, X, Y_soft, **kwargs):  # type: ignore[override]
        """Train as :class:`TorchHead` with torch's global generator (dropout masks) seeded from
        ``seed`` for the duration, so the same seed gives the same model."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(kwargs.get("seed", 0)) + 7919)
            return super().fit(X, Y_soft, **kwargs)

    def _forward_clips(self, X, owner, chunk: int = 512):
        return super()._forward_clips(X, owner, chunk=chunk)

    def build_module(self, in_dim: int):
        import torch
        from torch import nn

        dims = self.dims
        if not dims or sum(dims) != in_dim:
            raise HeadError(f"gated fusion: source widths {dims} do not add up to the input width {in_dim}")
        top = max(1, min(self.top, len(dims)))
        self_shared = self.shared
        frames = getattr(self.base, "frames", None) if getattr(self.base, "input", "") == "sequence" else None
        if frames:  # sequence heads: one encoder per source (its pooled embedding), rows are (L, sum D) frames
            b = self.base
            encoders = [build_sequence_net(b.kind, d, frames, self_shared, b.heads, b.layers, b.dropout, b.center)
                        for d in dims]
            for e in encoders:
                e.out = nn.Identity()
            body = nn.Sequential(nn.LayerNorm(self_shared), nn.Linear(self_shared, 6))
        else:
            encoders = None
            body = self.base.build_module(self.shared)

        class GatedNet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.splits = list(dims) if not frames else [d // frames for d in dims]
                self.proj = nn.ModuleList(encoders if encoders is not None else
                                          [nn.Sequential(nn.Linear(d, self_shared), nn.ReLU()) for d in dims])
                self.gate = nn.Linear(self_shared, 1)
                self.bias = nn.Parameter(torch.zeros(len(dims)))
                self.body = body

            def gates(self, x):
                if frames:
                    parts = [xs.reshape(len(x), -1) for xs in torch.split(x.reshape(len(x), frames, -1), self.splits, dim=2)]
                else:
                    parts = torch.split(x, self.splits, dim=1)
                z = torch.stack([p(xs) for p, xs in zip(self.proj, parts)], dim=1)
                s = self.gate(torch.tanh(z)).squeeze(2) + self.bias  # (b, sources)
                keep = torch.zeros_like(s, dtype=torch.bool).scatter_(1, s.topk(top, dim=1).indices, True)
                # softmax over all sources, the top N kept (not renormalised, as in switch routing):
                # the kept weights still depend on every score, so the gate learns even with top=1
                return torch.softmax(s, dim=1) * keep, z

            def forward(self, x):
                g, z = self.gates(x)
                return self.body((g[:, :, None] * z).sum(dim=1))

        return GatedNet()

    def gates(self, X: np.ndarray) -> np.ndarray:
        """Per-row gate weights ``(n, sources)`` (0 for sources not selected)."""
        import torch

        if self.module is None:
            raise RuntimeError("gated head is not trained")
        with torch.no_grad():
            return self.module.gates(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))[0].numpy()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "gated_dims": list(self.dims or []), "gated_top": self.top,
                "gated_shared": self.shared}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dims = [int(d) for d in np.asarray(state["gated_dims"]).ravel()]
        self.top, self.shared = int(np.asarray(state["gated_top"])), int(np.asarray(state["gated_shared"]))
        super().load_state_dict(state)
