"""Cross-modal attention fusion of sources: ``--fusion xattn`` with option ``heads`` (attention
heads of the cross-modal blocks; default the sequence head's ``heads``; ``--xattn-heads`` on the
command line).

For sequence heads only (``attn-pool``, ``bigru-attn``, ``transformer``): where early fusion
joins the sources per frame on a common time base and encodes them together, this strategy
encodes each source separately with the head's kind of sequence encoder, lets each source's
frames attend to the other sources' frames (masked: NaN, no-face and padding frames are never
attended to), pools each source and classifies the concatenation (the network:
:mod:`blemore.heads.xattn`). All sources are one group (like early and gated fusion) and the
configured head is wrapped (``head.wrapped("xattn", dims=..., heads=...)``), so it keeps its
own loss, outputs and decoder; bundles rebuild the wrapper from the saved state. A pooled head
(``mlp-512`` ...) is refused before any training with a :class:`~blemore.heads.base.HeadError`
naming it. No torch at import.
"""
from __future__ import annotations

from typing import Any, Sequence

from blemore.fusion import Fusion, FusionError, register_fusion

__all__ = ["XAttnFusion"]


@register_fusion("xattn")
class XAttnFusion(Fusion):
    """All sources in one head: per-source sequence encoders and cross-modal attention."""

    def __init__(self, heads: int | None = None, **options: Any):
        if heads is not None and not int(heads) >= 1:
            raise FusionError(f"xattn fusion: heads must be >= 1, got {heads}")
        super().__init__(heads=None if heads is None else int(heads), **options)

    def groups(self, sources):
        return [tuple(sources)]

    def head_for(self, head, dims: Sequence[int] | None):
        return head.wrapped("xattn", dims=dims, heads=self.options["heads"])
