"""The network of cross-modal attention fusion, ``--fusion xattn`` (:mod:`blemore.fusion_xattn`).

For sequence heads (``attn-pool``, ``bigru-attn``, ``transformer``) and two or more sources.
Rows are frame sequences of all sources side by side per frame (as for early fusion,
``(frames, D1 + D2 + ...)`` flattened frame-major); the network

1. encodes each source's frames separately with its own encoder of the head's kind
   (:func:`blemore.heads.sequence.build_sequence_net`, width the head's ``hidden``): each clip's
   valid frames of that source, moved to the front in order, and their mask;
2. lets every source's frame encodings attend to the other sources' frames (one pre-norm
   cross-attention block per source: ``h + MHA(LN(h), LN(others))`` and a feed-forward
   ``h + FF(LN(h))``; ``heads`` attention heads, default the head's ``heads``). Keys are the
   valid frames of all the other sources (key padding masks for NaN, no-face and padding
   frames); attention is by content (no time positions across sources: a source's order is
   its encoder's); a clip where the other sources have no valid frame gets no attention
   update (the feed-forward still applies); query frames that are masked stay masked (zeroed,
   never pooled);
3. pools each source's frames by its encoder's masked multi-head attention pooling,
   concatenates the pooled vectors of all sources, and applies the head's kind of output layer
   (``LayerNorm`` and a linear layer, on ``sources x hidden``).

The wrapped head keeps its loss, outputs and decoder (and its ``prepare``); its options (frames,
stride, hidden, heads, layers, dropout, center) shape the encoders. NaN and padding frames of any
source never change an output (tests/test_fusion_xattn.py). Bundles save ``xattn_dims`` (the
sources' row widths) and ``xattn_heads`` and rebuild the network from them. Pooled heads
(``mlp-512`` ...) have no frames to attend over and are refused (:class:`HeadError` naming the
head); so is a single source.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from blemore.heads.base import DelegatesToBase, Head, HeadError, register_head_wrapper
from blemore.heads.sequence import build_sequence_net
from blemore.heads.training import TorchHead, WrapsTorchHead

__all__ = ["XAttnHead", "build_cross_attention"]


def build_cross_attention(hidden: int, heads: int, dropout: float):
    """One cross-attention block ``(h, mask, kv, kv_mask) -> h'`` (shapes ``(b, m, hidden)``,
    ``(b, m)``, ``(b, n, hidden)``, ``(b, n)``; masks True where valid). Its parameters:
    ``q``, ``k``, ``v``, ``o`` (linear maps), ``ln_q``, ``ln_kv``, ``ln_ff`` and ``ff``."""
    import torch
    from torch import nn

    class CrossAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = heads
            self.ln_q, self.ln_kv, self.ln_ff = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
            self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
            self.drop = nn.Dropout(dropout)
            self.ff = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Dropout(dropout),
                                    nn.Linear(2 * hidden, hidden))

        def attend(self, h, kv, kv_mask):
            """The attention update ``(b, m, hidden)`` (zeros where no key is valid)."""
            b, m, c = h.shape
            n, d = kv.shape[1], c // self.heads
            q = self.q(self.ln_q(h)).reshape(b, m, self.heads, d).transpose(1, 2)  # (b, H, m, d)
            kvn = self.ln_kv(kv)
            k = self.k(kvn).reshape(b, n, self.heads, d).transpose(1, 2)
            v = self.v(kvn).reshape(b, n, self.heads, d).transpose(1, 2)
            s = (q @ k.transpose(2, 3)) / d ** 0.5  # (b, H, m, n)
            s = s.masked_fill(~kv_mask[:, None, None, :], float("-inf"))
            w = torch.nan_to_num(torch.softmax(s, dim=3), nan=0.0)  # no valid key: no update
            return self.o((self.drop(w) @ v).transpose(1, 2).reshape(b, m, c))

        def forward(self, h, mask, kv, kv_mask):
            h = h + self.drop(self.attend(h, kv, kv_mask))
            h = h + self.drop(self.ff(self.ln_ff(h)))
            return h * mask[:, :, None]  # a masked query frame stays masked

    return CrossAttention()


@register_head_wrapper("xattn")
class XAttnHead(WrapsTorchHead, DelegatesToBase, TorchHead):
    """A sequence head's encoder per source, cross-modal attention between sources, pooling per
    source, concatenation and an output layer (see the module doc)."""

    name = "xattn"

    def __init__(self, base: Head, dims: Sequence[int] | None = None, heads: int | None = None):
        if not isinstance(base, TorchHead) or getattr(base, "input", "") != "sequence":
            raise HeadError(f"xattn fusion needs a sequence head (attn-pool, bigru-attn or transformer: "
                            f"frames to attend over), got {base.name!r}, which sees one pooled vector per clip; "
                            "use --fusion early, late or gated with it")
        hidden = int(base.hidden)  # type: ignore[attr-defined]
        heads = int(base.heads if heads is None else heads)  # type: ignore[attr-defined]
        problems = []
        if heads < 1 or hidden % heads:
            problems.append(f"heads ({heads}) must be a positive divisor of the {base.name} head's hidden ({hidden})")
        if dims is not None and len(dims) < 2:
            problems.append(f"needs at least two sources to attend across, got {len(dims)} (use --fusion early "
                            "with one source)")
        if problems:
            raise HeadError(f"xattn fusion with {base.name!r}: " + "; ".join(problems))
        super().__init__(**base.options)
        self.base, self.heads = base, heads
        self.dims = None if dims is None else [int(d) for d in dims]
        self.output_dim = base.output_dim  # type: ignore[misc]

    # the wrapped head's loss and outputs (and, by DelegatesToBase, its probabilities, decoder,
    # fusion, pooling and config)
    def loss(self, logits, y_soft, target):
        return self.base.loss(logits, y_soft, target)

    def build_module(self, in_dim: int):
        import torch
        from torch import nn

        b = self.base
        frames, hidden, dims = int(b.frames), int(b.hidden), self.dims  # type: ignore[attr-defined]
        problems = []
        if not dims or sum(dims) != in_dim:
            problems.append(f"source widths {dims} do not add up to the input width {in_dim}")
        elif any(d % frames for d in dims):
            problems.append(f"source widths {dims} are not frames ({frames}) x features per frame")
        if problems:
            raise HeadError("xattn fusion: " + "; ".join(problems))
        encoders = [build_sequence_net(b.kind, d, frames, hidden, b.heads, b.layers, b.dropout, b.center)  # type: ignore[attr-defined]
                    for d in dims]
        for e in encoders:
            e.out = nn.Identity()  # the output layer is on the concatenation
        n_src, out_dim = len(dims), int(self.output_dim)
        blocks = [build_cross_attention(hidden, self.heads, float(b.dropout)) for _ in dims]  # type: ignore[attr-defined]

        class XAttnNet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.splits = [d // frames for d in dims]
                self.enc = nn.ModuleList(encoders)
                self.xattn = nn.ModuleList(blocks)
                self.out = nn.Sequential(nn.LayerNorm(n_src * hidden), nn.Linear(n_src * hidden, out_dim))

            def encode(self, x):
                """Each source's frame encodings and masks, before cross-attention."""
                parts = torch.split(x.reshape(len(x), frames, -1), self.splits, dim=2)
                return [e.encode(p.reshape(len(x), -1)) for e, p in zip(self.enc, parts)]

            def embed(self, x):
                """Each source's pooled embedding after cross-attention, ``(b, sources, hidden)``."""
                enc = self.encode(x)
                pooled = []
                for i, (h, mask) in enumerate(enc):
                    others = [enc[j] for j in range(n_src) if j != i]
                    kv = torch.cat([o[0] for o in others], dim=1)
                    kv_mask = torch.cat([o[1] for o in others], dim=1)
                    pooled.append(self.enc[i].pool(self.xattn[i](h, mask, kv, kv_mask), mask))
                return torch.stack(pooled, dim=1)

            def forward(self, x):
                z = self.embed(x)
                return self.out(z.reshape(len(z), -1))

        return XAttnNet()

    def embeddings(self, X: np.ndarray) -> np.ndarray:
        """Per-row pooled embedding of every source after cross-attention ``(n, sources, hidden)``."""
        import torch

        if self.module is None:
            raise RuntimeError("xattn head is not trained")
        self.module.eval()
        with torch.no_grad():
            return self.module.embed(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "xattn_dims": list(self.dims or []), "xattn_heads": self.heads}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dims = [int(d) for d in np.asarray(state["xattn_dims"]).ravel()]
        self.heads = int(np.asarray(state["xattn_heads"]))
        super().load_state_dict(state)
