"""Regularisation options shared by the heads of this package: dropout, label smoothing and
mixup on pooled features, plus ``mlp-reg``, the paper's KL head with those options.

With 2,456 training clips of 43 actors, a head with a 512-unit hidden layer on thousands of
pooled dimensions overfits quickly; these are the usual cheap remedies:

* ``dropout`` (0..1): dropout on the hidden layer (before the output layers).
* ``label_smoothing`` (0..1): targets are mixed with the uniform distribution
  (``(1 - eps) * y + eps / K``); for multi-label presence targets, ``y * (1 - eps) + eps / 2``.
* ``class_balance`` (bool): each training row's loss is weighted by the inverse frequency of
  its target among the training rows (normalised to mean 1), so the 30 blend configurations
  (about 3 clips per actor each) weigh as much as the single emotions (4+ per actor).
* ``mixup`` (alpha > 0): each training batch is replaced by convex combinations of its rows
  and a random permutation of them, with one weight ``lam ~ Beta(alpha, alpha)`` per batch; the
  loss is ``lam * L(y) + (1 - lam) * L(y[perm])`` (the usual mixup loss, valid for any loss
  that is a mean over rows). Mixing happens only in training mode, so evaluation and
  prediction see the clips unchanged.

Mixup is implemented by a wrapper module (:class:`MixupInput`) around the network, so the
training loop of :class:`~blemore.heads.training.TorchHead` stays as it is; the wrapper draws its
random numbers from a generator seeded when the module is built (itself seeded by the
head's ``seed``), so training stays deterministic. The paper's heads (``linear``,
``mlp-256``, ``mlp-512``) and the ``paper`` preset are not changed by any of this.
"""
from __future__ import annotations

import functools
from typing import Any

from blemore.heads.base import HeadError, register_head
from blemore.heads.training import TorchHead

__all__ = ["RegularisedMixin", "MixupInput", "RegularisedKLHead", "check_regularisation", "trunk"]


def check_regularisation(dropout: float, label_smoothing: float, mixup: float) -> None:  # noqa: D401
    """Raise :class:`HeadError` naming the bad setting."""
    if not 0.0 <= float(dropout) < 1.0:
        raise HeadError(f"dropout must be in [0, 1), got {dropout}")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise HeadError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if float(mixup) < 0.0:
        raise HeadError(f"mixup must be >= 0 (the Beta(alpha, alpha) parameter; 0 = off), got {mixup}")


def trunk(in_dim: int, hidden: int, dropout: float):
    """``(module, out_dim)``: identity for ``hidden == 0``, else Linear-ReLU(-Dropout)."""
    from torch import nn

    if hidden == 0:
        return nn.Identity(), in_dim
    layers: list = [nn.Linear(in_dim, hidden), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers), hidden


@functools.lru_cache(maxsize=None)
def _mixup_module_class():
    import torch
    from torch import nn

    class _MixupInput(nn.Module):
        """Wraps ``inner``; in training mode with ``alpha > 0`` mixes each batch with a
        permutation of itself and remembers ``(perm, lam)`` for the loss."""

        def __init__(self, inner: nn.Module, alpha: float, seed: int):
            super().__init__()
            self.inner = inner
            self.alpha = float(alpha)
            self.gen = torch.Generator().manual_seed(int(seed))
            self.last: tuple | None = None

        def forward(self, x):
            self.last = None
            if self.training and self.alpha > 0 and len(x) > 1:
                u = float(torch.rand(1, generator=self.gen, dtype=torch.float64))
                lam = _beta_quantile(self.alpha, u)
                perm = torch.randperm(len(x), generator=self.gen)
                self.last = (perm, lam)
                x = lam * x + (1.0 - lam) * x[perm]
            return self.inner(x)

    return _MixupInput


def _beta_quantile(alpha: float, u: float) -> float:
    """The ``u``-quantile of Beta(alpha, alpha): a draw from a seeded uniform, so mixup
    weights follow the head's seed."""
    from scipy.special import betaincinv

    return float(betaincinv(alpha, alpha, u))


def MixupInput(inner, alpha: float, seed: int):  # noqa: N802 - a factory that reads like a class
    """The mixup wrapper module (torch is imported lazily)."""
    return _mixup_module_class()(inner, alpha, seed)


class RegularisedMixin:
    """Adds ``dropout``, ``label_smoothing``, ``class_balance`` and ``mixup`` to a
    :class:`TorchHead` subclass (put the mixin first in the bases).

    Subclasses build their network with :meth:`wrap` (which adds the mixup wrapper when
    ``mixup > 0``) and compute their loss through :meth:`mixed_loss`, passing a function
    ``row_losses(logits, y_soft, target) -> (B,)`` (one loss per row).
    """

    dropout: float = 0.0
    label_smoothing: float = 0.0
    mixup: float = 0.0
    class_balance: bool = False
    _per_row: bool = False  # set by row_losses() for one call of loss()

    def _init_regularisation(self, dropout: float = 0.0, label_smoothing: float = 0.0, mixup: float = 0.0,
                             class_balance: bool = False) -> None:
        check_regularisation(dropout, label_smoothing, mixup)
        self.dropout = float(dropout)
        self.label_smoothing = float(label_smoothing)
        self.mixup = float(mixup)
        self.class_balance = bool(class_balance)
        self._row_weight = None

    def regularisation(self) -> dict[str, Any]:
        return {"dropout": self.dropout, "label_smoothing": self.label_smoothing, "mixup": self.mixup,
                "class_balance": self.class_balance}

    def prepare(self, X, Y_soft, target) -> None:
        """Fit the class-balance weights from the training targets (run by :meth:`fit`, and by
        gated fusion for the head it wraps)."""
        import numpy as np
        import torch

        super().prepare(X, Y_soft, target)  # type: ignore[misc]
        self._row_weight = None
        if self.class_balance:
            if target is None or np.any(np.asarray(target) < 0):
                raise HeadError(f"head {self.name!r}: class_balance needs valid targets (0..35) for every row")
            t = np.asarray(target, dtype=np.int64)
            counts = np.bincount(t, minlength=36).astype(np.float64)
            w = np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0)
            w /= (w[t]).mean()
            self._row_weight = torch.as_tensor(w, dtype=torch.float32)

    def fit(self, X, Y_soft, *, target=None, **kwargs):  # type: ignore[override]
        """Train as usual (class-balance weights from :meth:`prepare`), with dropout masks drawn
        from a generator seeded by ``seed``."""
        import torch

        # Dropout masks come from torch's global generator: seed it from the head's seed for
        # the duration of training (and restore it afterwards), so that results do not depend
        # on what ran before in the process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(kwargs.get("seed", 0)) + 7919)
            return super().fit(X, Y_soft, target=target, **kwargs)  # type: ignore[misc]

    def wrap(self, net):
        """``net`` wrapped for mixup when enabled (the seed comes from torch's global RNG,
        which :meth:`TorchHead.fit` seeds before building the module)."""
        if self.mixup <= 0:
            return net
        import torch

        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        return MixupInput(net, self.mixup, seed)

    def row_losses(self, logits, y_soft, target):
        """The loss of each row, ``(B,)``: what :meth:`loss` averages, without the class-balance
        weights (gated fusion ranks its sources per clip by it, :mod:`blemore.heads.gated`)."""
        self._per_row = True
        try:
            return self.loss(logits, y_soft, target)  # type: ignore[attr-defined]
        finally:
            self._per_row = False

    def _reduce(self, losses, target):
        if self._per_row:
            return losses
        if self._row_weight is None:
            return losses.mean()
        return (losses * self._row_weight.to(losses.device)[target]).mean()

    def mixed_loss(self, row_losses, logits, y_soft, target):
        """Mean (class-balanced when asked) of ``row_losses`` over the batch, mixed as mixup
        requires when the last forward pass mixed its inputs."""
        last = getattr(self.module, "last", None) if self.mixup > 0 else None
        if last is None:
            return self._reduce(row_losses(logits, y_soft, target), target)
        perm, lam = last
        return (lam * self._reduce(row_losses(logits, y_soft, target), target)
                + (1.0 - lam) * self._reduce(row_losses(logits, y_soft[perm], target[perm]), target[perm]))


@register_head("mlp-reg")
class RegularisedKLHead(RegularisedMixin, TorchHead):
    """The paper's formulation (softmax over six classes, KL divergence to the soft target,
    alpha/beta threshold decoding) with the regularisation options; ``hidden`` 512 by default
    (0 = linear). With every option off it trains the same network as ``mlp-512``."""

    def __init__(self, hidden: int = 512, dropout: float = 0.0, label_smoothing: float = 0.0,
                 mixup: float = 0.0, class_balance: bool = False, **options: Any):
        hidden = int(hidden)
        if hidden < 0:
            raise HeadError(f"hidden must be >= 0, got {hidden}")
        self._init_regularisation(dropout, label_smoothing, mixup, class_balance)
        super().__init__(hidden=hidden, **self.regularisation(), **options)
        self.hidden = hidden

    def build_module(self, in_dim: int):
        from torch import nn

        body, width = trunk(in_dim, self.hidden, self.dropout)
        return self.wrap(nn.Sequential(body, nn.Linear(width, 6)))

    def loss(self, logits, y_soft, target):
        import torch.nn.functional as F

        eps = self.label_smoothing

        def row_losses(z, y, t):
            if eps > 0:
                y = (1.0 - eps) * y + eps / y.shape[1]
            # per-row KL(y || softmax(z)); 0 * log 0 counts as 0
            return F.kl_div(F.log_softmax(z, dim=1), y, reduction="none").sum(dim=1)

        return self.mixed_loss(row_losses, logits, y_soft, target)
