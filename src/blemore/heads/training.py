"""The training loop of blemore's heads: optimisation settings, eval sets, the recorded
history, and :class:`TorchHead`, the PyTorch engine most heads subclass.

* :class:`TrainSpec`: optimisation settings (what a preset fixes; :mod:`blemore.config` builds
  one per preset).
* :class:`EvalSet`: rows to evaluate during training (``owner`` maps window rows to clips).
* :class:`FitHistory`: the outputs on every eval set after each recorded epoch, so the runner
  picks the training length and decoder parameters without retraining.
* :func:`aggregate_rows`: mean of rows per clip (defined in :mod:`blemore.features`, where rows
  and their owners come from; re-exported here).
* :class:`TorchHead`: mini-batch training on in-memory tensors; subclasses implement
  :meth:`TorchHead.build_module` and :meth:`TorchHead.loss`.

Determinism: :class:`TorchHead` draws its initial weights and its batch order from generators
seeded by ``seed`` only, so the same data, spec and seed give the same model (for a fixed
number of torch threads). torch is imported inside the methods that need it.

The head protocol and registry are in :mod:`blemore.heads.base`; this module builds on them.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from blemore.features import aggregate_rows
from blemore.heads.base import Head, HeadError
from blemore.labels import EMOTIONS

__all__ = ["TrainSpec", "EvalSet", "FitHistory", "aggregate_rows", "resolve_device", "TorchHead", "WrapsTorchHead"]


@dataclass
class TrainSpec:
    """Optimisation settings (what a preset fixes).

    ``batch_size`` 0 means full batch. ``epochs`` is the maximum training length; the
    runner chooses the length actually used from the recorded history. ``eval_every``
    records eval-set outputs every that many epochs (and always at the last epoch).
    """

    optimizer: str = "adam"
    lr: float = 5e-6
    weight_decay: float = 1e-3
    batch_size: int = 32
    epochs: int = 200
    eval_every: int = 1
    min_epochs: int = 1
    device: str = "auto"  # "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:N", "mps"
    amp: bool = True  # mixed precision (bfloat16 autocast) when training on a GPU

    def __post_init__(self) -> None:
        if not (self.device in ("auto", "cpu", "cuda", "mps") or str(self.device).startswith("cuda:")):
            raise HeadError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise HeadError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.epochs < 1 or self.eval_every < 1:
            raise HeadError(f"epochs and eval_every must be >= 1, got {self.epochs} and {self.eval_every}")
        if self.batch_size < 0:
            raise HeadError(f"batch_size must be >= 0 (0 = full batch), got {self.batch_size}")

    def eval_epochs(self) -> list[int]:
        """The (1-based) epochs after which outputs are recorded."""
        ep = [e for e in range(1, self.epochs + 1) if e % self.eval_every == 0 and e >= self.min_epochs]
        if not ep or ep[-1] != self.epochs:
            ep.append(self.epochs)
        return ep

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class EvalSet:
    """Rows to evaluate during training. ``owner[i]`` is the clip of row ``i`` (windows);
    ``None`` means one row per clip."""

    X: np.ndarray
    owner: np.ndarray | None = None

    @property
    def n_clips(self) -> int:
        if self.owner is None:
            return len(self.X)
        return int(self.owner.max()) + 1 if len(self.owner) else 0


@dataclass
class FitHistory:
    """What :meth:`Head.fit` recorded: ``epochs[i]`` is the epoch after which
    ``outputs[name][i]`` (shape ``(n_clips, K)``) was computed; ``train_loss`` has one value
    per epoch (mean over batches)."""

    epochs: list[int] = field(default_factory=list)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (E, n_clips, K)
    train_loss: list[float] = field(default_factory=list)

    def at(self, name: str, epoch: int) -> np.ndarray:
        """Outputs on eval set ``name`` after ``epoch``."""
        try:
            i = self.epochs.index(epoch)
        except ValueError:
            raise KeyError(f"epoch {epoch} was not recorded (recorded: {self.epochs[:5]}...)") from None
        return self.outputs[name][i]


def resolve_device(name: str = "auto"):
    """The ``torch.device`` for ``name``: ``auto`` is cuda when available, else cpu; asking for
    cuda or mps where it is not available is a :class:`HeadError`."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HeadError(f"device {name!r}: CUDA is not available on this machine (use --device cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise HeadError("device 'mps': Apple MPS is not available on this machine (use --device cpu)")
    return torch.device(name)


class TorchHead(Head):
    """A head trained with PyTorch mini-batch optimisation on in-memory tensors.

    Subclasses implement :meth:`build_module` and :meth:`loss`, and may override
    :meth:`logits_to_outputs` (default: softmax) and :meth:`train_targets`.

    The loop keeps the whole training matrix as one tensor and indexes random batches from
    it (no DataLoader), uses Adam's fused kernel where available, and evaluates all eval
    sets with one forward pass each after every recorded epoch. Row outputs of windows are
    averaged per clip in *logit* space before :meth:`logits_to_outputs`.
    """

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.module = None
        self.in_dim: int | None = None

    # -- to implement ------------------------------------------------------------------
    @abc.abstractmethod
    def build_module(self, in_dim: int):
        """The ``torch.nn.Module`` mapping (B, in_dim) to logits (B, n_logits)."""

    @abc.abstractmethod
    def loss(self, logits, y_soft, target):
        """Scalar training loss of a batch."""

    def logits_to_outputs(self, logits):
        """Per-clip outputs from per-clip logits (torch tensors). Default: softmax."""
        import torch

        return torch.softmax(logits, dim=1)

    def prepare(self, X: np.ndarray, Y_soft: np.ndarray, target: np.ndarray) -> None:
        """Check and fit what training needs from the training rows before the network is built
        (e.g. target checks, class-balance weights; default: nothing). :meth:`fit` calls it, and so
        does a wrapper that trains this head's network inside its own (gated fusion), so a head's
        options apply behind it. ``target`` is -1 for rows without one."""

    # -- engine --------------------------------------------------------------------------
    def _optimizer(self, spec: TrainSpec, params):
        import torch

        kw: dict[str, Any] = {"lr": spec.lr, "weight_decay": spec.weight_decay}
        if spec.optimizer == "sgd":
            return torch.optim.SGD(params, momentum=0.9, **kw)
        cls = torch.optim.Adam if spec.optimizer == "adam" else torch.optim.AdamW
        try:
            return cls(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):  # fused kernel unavailable
            return cls(params, **kw)

    def _forward_clips(self, X, owner: np.ndarray | None, chunk: int = 4096):
        """Per-clip logits (rows averaged per owner), no grad."""
        import torch

        outs = [self.module(X[i:i + chunk]) for i in range(0, len(X), chunk)]
        z = torch.cat(outs) if outs else torch.zeros((0, 1))
        if owner is None:
            return z
        own = torch.as_tensor(owner, dtype=torch.long, device=z.device)
        n = int(own.max()) + 1
        s = torch.zeros((n, z.shape[1]), dtype=z.dtype).index_add_(0, own, z)
        cnt = torch.bincount(own, minlength=n).clamp_min(1).to(z.dtype)
        return s / cnt[:, None]

    def fit(self, X, Y_soft, *, target=None, groups=None, eval_sets=None, spec=None, seed=0, progress=None):
        import torch

        spec = spec or TrainSpec()
        X = np.asarray(X)
        if X.ndim != 2 or len(X) == 0:
            raise HeadError(f"X must be a non-empty (N, F) matrix, got shape {X.shape}")
        Y_soft = np.asarray(Y_soft, dtype=np.float32)
        if Y_soft.shape != (len(X), len(EMOTIONS)):
            raise HeadError(f"Y_soft must have shape ({len(X)}, {len(EMOTIONS)}), got {Y_soft.shape}")
        if target is None:
            target = np.full(len(X), -1, dtype=np.int64)
        self.prepare(X, Y_soft, target)
        dev = resolve_device(spec.device)
        amp = bool(spec.amp) and dev.type == "cuda"
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(dev)
        Yt = torch.from_numpy(np.ascontiguousarray(Y_soft)).to(dev)
        Tt = torch.from_numpy(np.asarray(target, dtype=np.int64)).to(dev)
        evals = {k: (torch.from_numpy(np.ascontiguousarray(v.X, dtype=np.float32)).to(dev), v.owner)
                 for k, v in (eval_sets or {}).items()}

        self.in_dim = X.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.module = self.build_module(self.in_dim)
        self.module.to(dev)
        gen = torch.Generator().manual_seed(seed + 1)
        opt = self._optimizer(spec, self.module.parameters())
        n = len(X)
        bs = spec.batch_size or n
        record = set(spec.eval_epochs())
        hist = FitHistory()
        store: dict[str, list[np.ndarray]] = {k: [] for k in evals}
        for epoch in range(1, spec.epochs + 1):
            self.module.train()
            perm = torch.randperm(n, generator=gen)
            tot, nb = 0.0, 0
            for i in range(0, n, bs):
                idx = perm[i:i + bs].to(dev)
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
                    logits = self.module(Xt[idx])
                loss = self.loss(logits.float(), Yt[idx], Tt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += float(loss.detach())
                nb += 1
            hist.train_loss.append(tot / max(nb, 1))
            if epoch in record and evals:
                self.module.eval()
                with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
                    for k, (xe, own) in evals.items():
                        z = self._forward_clips(xe, own).float()
                        store[k].append(self.logits_to_outputs(z).cpu().numpy().astype(np.float32))
                hist.epochs.append(epoch)
            elif epoch in record:
                hist.epochs.append(epoch)
            if progress is not None:
                progress(1)
        self.module.eval()
        self.module.to("cpu")  # predictions and bundles on the CPU
        hist.outputs = {k: np.stack(v) if v else np.zeros((0, 0, self.output_dim), np.float32)
                        for k, v in store.items()}
        return hist

    def predict_outputs(self, X, owner=None):
        import torch

        if self.module is None:
            raise RuntimeError(f"head {self.name!r} is not trained (call fit or load_state_dict first)")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.in_dim:
            raise HeadError(f"X must have shape (n, {self.in_dim}), got {X.shape}")
        self.module.eval()
        with torch.no_grad():
            xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
            return self.logits_to_outputs(self._forward_clips(xt, owner)).numpy().astype(np.float32)

    def predict_logits(self, X, owner=None) -> np.ndarray:
        """Per-row (or per-clip when ``owner`` is given) logits."""
        import torch

        if self.module is None:
            raise RuntimeError(f"head {self.name!r} is not trained")
        self.module.eval()
        with torch.no_grad():
            xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
            return self._forward_clips(xt, owner).numpy()

    def state_dict(self) -> dict[str, Any]:
        if self.module is None:
            raise RuntimeError(f"head {self.name!r} is not trained")
        return {"in_dim": self.in_dim,
                "module": {k: v.detach().clone() for k, v in self.module.state_dict().items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.in_dim = int(state["in_dim"])
        self.module = self.build_module(self.in_dim)
        self.module.load_state_dict(state["module"])
        self.module.eval()


class WrapsTorchHead:
    """Mixin for a fusion wrapper around a torch head (``self.base``; gated and cross-attention
    fusion): the wrapped head's outputs and fit-time preparation, training with torch's global
    generator (dropout masks) seeded from ``seed`` for the duration (the same seed gives the
    same model), clips forwarded 512 at a time. List it first:
    ``class X(WrapsTorchHead, DelegatesToBase, TorchHead)``."""

    base: Any

    def logits_to_outputs(self, logits):
        return self.base.logits_to_outputs(logits)

    def prepare(self, X, Y_soft, target) -> None:
        """The wrapped head's preparation (its target checks, class-balance weights ...)."""
        self.base.prepare(X, Y_soft, target)

    def fit(self, X, Y_soft, **kwargs):
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(kwargs.get("seed", 0)) + 7919)
            return super().fit(X, Y_soft, **kwargs)  # type: ignore[misc]

    def _forward_clips(self, X, owner, chunk: int = 512):
        return super()._forward_clips(X, owner, chunk=chunk)  # type: ignore[misc]
