"""Training losses over soft targets shared by heads that offer a ``loss`` option.

* ``"kl"``: the paper's KL divergence to the soft target (one-hot for single emotions,
  saliences / 100 for blends), mean over the batch.
* ``"weighted-kl"``: the same with single-emotion clips weighted by ``single_weight`` (a public
  fork of the official code weights them twice): the weighted mean over the batch.
* ``"focal"``: soft focal cross-entropy ``-sum_c y_c (1 - p_c)^gamma log p_c``, which lowers
  the weight of classes the model already gives a high probability (``gamma`` 0 is the
  cross-entropy, equal to KL up to the targets' constant entropy).

torch is imported inside :func:`soft_loss`.
"""
from __future__ import annotations

from blemore.heads.base import HeadError

__all__ = ["LOSSES", "soft_loss", "check_loss"]

LOSSES: tuple[str, ...] = ("kl", "weighted-kl", "focal")


def check_loss(loss: str, single_weight: float, gamma: float) -> list[str]:
    """Problems with loss settings (empty when valid)."""
    out = []
    if loss not in LOSSES:
        out.append(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if not single_weight > 0:
        out.append(f"single_weight must be > 0, got {single_weight}")
    if not gamma >= 0:
        out.append(f"gamma must be >= 0, got {gamma}")
    return out


def soft_loss(logits, y_soft, loss: str = "kl", single_weight: float = 2.0, gamma: float = 2.0):
    """Scalar loss of a batch of ``logits`` (B, 6) against soft targets ``y_soft`` (B, 6)."""
    import torch
    import torch.nn.functional as F

    logp = F.log_softmax(logits, dim=1)
    if loss == "kl":
        return F.kl_div(logp, y_soft, reduction="batchmean")
    if loss == "weighted-kl":
        per = F.kl_div(logp, y_soft, reduction="none").sum(dim=1)
        single = y_soft.max(dim=1).values > 0.999
        w = torch.where(single, torch.full_like(per, float(single_weight)), torch.ones_like(per))
        return (w * per).sum() / w.sum()
    if loss == "focal":
        p = logp.exp()
        return -(y_soft * (1.0 - p).pow(gamma) * logp).sum(dim=1).mean()
    raise HeadError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
