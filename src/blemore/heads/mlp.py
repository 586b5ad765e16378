"""The paper's heads: a linear layer or an MLP with one hidden ReLU layer, softmax over the
six classes (ang, disg, fea, hap, sad, neu), trained with the KL divergence to the soft
target (one-hot for single emotions, saliences / 100 for blends).

Registered names: ``linear``, ``mlp-256``, ``mlp-512`` (and ``mlp`` with a ``hidden`` option).
Options: ``hidden`` (hidden width; 0 = linear), ``dropout`` (before the output layer; the
paper uses none).
"""
from __future__ import annotations

from blemore.heads.base import HeadError, register_head
from blemore.heads.training import TorchHead

__all__ = ["KLHead", "LinearHead", "MLP256Head", "MLP512Head"]


@register_head("mlp")
class KLHead(TorchHead):
    """Softmax head with KL-divergence loss to soft targets (the paper's formulation)."""

    default_hidden: int = 512

    def __init__(self, hidden: int | None = None, dropout: float = 0.0):
        hidden = self.default_hidden if hidden is None else int(hidden)
        if hidden < 0:
            raise HeadError(f"hidden must be >= 0, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise HeadError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(hidden=hidden, dropout=float(dropout))
        self.hidden = hidden
        self.dropout = float(dropout)

    def build_module(self, in_dim: int):
        from torch import nn

        if self.hidden == 0:
            return nn.Sequential(nn.Linear(in_dim, 6))
        layers = [nn.Linear(in_dim, self.hidden), nn.ReLU()]
        if self.dropout > 0:
            layers.append(nn.Dropout(self.dropout))
        layers.append(nn.Linear(self.hidden, 6))
        return nn.Sequential(*layers)

    def loss(self, logits, y_soft, target):
        import torch.nn.functional as F

        return F.kl_div(F.log_softmax(logits, dim=1), y_soft, reduction="batchmean")

    def config(self) -> dict:
        return {"hidden": self.hidden, "dropout": self.dropout}


@register_head("linear")
class LinearHead(KLHead):
    default_hidden = 0

    def __init__(self, hidden: int | None = 0, dropout: float = 0.0):
        super().__init__(hidden=0 if hidden is None else hidden, dropout=dropout)


@register_head("mlp-256")
class MLP256Head(KLHead):
    default_hidden = 256


@register_head("mlp-512")
class MLP512Head(KLHead):
    default_hidden = 512
