"""The head protocol, the heads registry, decoders, and the PyTorch training engine.

A *head* maps a feature matrix to per-clip outputs and knows how to turn those outputs
into predictions. The runner (:mod:`blemore.experiment`) only talks to this interface and
never branches on a head's name, so a new head is one registered class::

    @register_head("my-head")
    class MyHead(TorchHead):
        def build_module(self, in_dim): ...
        def loss(self, logits, y_soft, target): ...

The contract (see :class:`Head`):

* ``fit(X, Y_soft, target=..., groups=..., eval_sets=..., spec=..., seed=...)`` trains on
  rows of ``X`` (clips, or windows of clips for subsampling) and returns a
  :class:`FitHistory` holding the outputs on every eval set after each evaluated epoch,
  so that the runner can pick the training length and thresholds without retraining.
* ``predict_outputs(X, owner=None) -> (n_clips, K)``: per-clip outputs (for the paper's
  heads: the 6 class probabilities, with window *logits* averaged per clip before the
  softmax when ``owner`` maps rows to clips).
* ``predict_proba(X, owner=None) -> (n_clips, 6)``: class probabilities for reports.
* ``decoder()``: a :class:`Decoder` that calibrates its parameters on labelled outputs
  (the paper's alpha/beta grid search for probability heads) and decodes outputs into
  ``(mask, target)`` codes. Structured heads return a decoder with no parameters
  (e.g. :class:`ArgmaxTargetDecoder`), which bypasses thresholds.
* ``fuse(outputs_list, weights, mode)``: combine outputs of several heads of the same
  kind (late fusion); the default averages probabilities or logits.
* ``state_dict()`` / ``load_state_dict(state)`` and ``config()``: what a model bundle saves.

Determinism: :class:`TorchHead` draws its initial weights and its batch order from
generators seeded by ``seed`` only, so the same data, spec and seed give the same model
(for a fixed number of torch threads).
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from blemore.decode import PAPER_GRID, calibrate as _calibrate, decode_probabilities
from blemore.errors import BlemoreError
from blemore.labels import EMOTIONS, TARGET_TO_MASK
from blemore.registry import Registry

__all__ = [
    "TrainSpec", "EvalSet", "FitHistory", "Head", "TorchHead", "Decoder", "DecoderFit",
    "ThresholdDecoder", "ArgmaxTargetDecoder", "register_head", "create_head", "head_class",
    "list_heads", "HeadError", "aggregate_rows",
]


class HeadError(BlemoreError, ValueError):
    """A head name or head setting that is not known."""


# ----------------------------------------------------------------------------- specs
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

    def __post_init__(self) -> None:
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


def aggregate_rows(values: np.ndarray, owner: np.ndarray | None, n: int | None = None) -> np.ndarray:
    """Mean of the rows of ``values`` per owner (clip): ``(M, K) -> (n, K)``."""
    if owner is None:
        return values
    owner = np.asarray(owner, dtype=np.int64)
    n = int(owner.max()) + 1 if n is None else n
    out = np.zeros((n, values.shape[1]), dtype=np.float64)
    np.add.at(out, owner, values)
    cnt = np.bincount(owner, minlength=n).astype(np.float64)
    if np.any(cnt == 0):
        raise ValueError("some clips have no rows (windows) to aggregate")
    return (out / cnt[:, None]).astype(values.dtype)


# ----------------------------------------------------------------------------- decoders
@dataclass
class DecoderFit:
    """Calibrated decoder parameters and the scores they reach on the calibration data."""

    params: dict
    acc_presence: float
    acc_salience: float
    score: float


class Decoder(abc.ABC):
    """Turns per-clip outputs into ``(mask, target)`` codes; may calibrate parameters."""

    @abc.abstractmethod
    def calibrate(self, outputs: np.ndarray, true_target: np.ndarray) -> DecoderFit:
        """Choose parameters on labelled outputs (maximising the composite score)."""

    @abc.abstractmethod
    def decode(self, outputs: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
        """``(mask, target)`` int64 codes."""

    def scores(self, outputs_per_epoch: np.ndarray, true_target: np.ndarray) -> list[DecoderFit]:
        """Calibrate on each epoch's outputs ``(E, n, K)``."""
        return [self.calibrate(o, true_target) for o in outputs_per_epoch]


class ThresholdDecoder(Decoder):
    """The paper's rule: top two classes, presence threshold alpha, 50/50 gap beta.

    ``calibrate`` is the vectorised grid search of :func:`blemore.decode.calibrate`
    (the paper's 20 x 20 grid by default; ties go to the first pair, alpha-major)."""

    def __init__(self, alphas: Sequence[float] | None = None, betas: Sequence[float] | None = None,
                 weights: tuple[float, float] = (0.5, 0.5)):
        self.alphas = PAPER_GRID if alphas is None else np.asarray(alphas, dtype=np.float64)
        self.betas = PAPER_GRID if betas is None else np.asarray(betas, dtype=np.float64)
        self.weights = weights

    def calibrate(self, outputs: np.ndarray, true_target: np.ndarray) -> DecoderFit:
        c = _calibrate(outputs, true_target, self.alphas, self.betas, self.weights)
        return DecoderFit({"alpha": c.alpha, "beta": c.beta}, c.acc_presence, c.acc_salience, c.score)

    def decode(self, outputs: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
        return decode_probabilities(outputs, float(params["alpha"]), float(params["beta"]))


class ArgmaxTargetDecoder(Decoder):
    """For heads whose outputs are a distribution over the 36 targets: predict the most
    probable target; no parameters (always a valid label)."""

    def __init__(self, weights: tuple[float, float] = (0.5, 0.5)):
        self.weights = weights

    def calibrate(self, outputs: np.ndarray, true_target: np.ndarray) -> DecoderFit:
        from blemore.metrics import score_codes

        m, t = self.decode(outputs, {})
        s = score_codes(m, t, true_target)
        wp, ws = self.weights
        return DecoderFit({}, s["acc_presence"], s["acc_salience"], wp * s["acc_presence"] + ws * s["acc_salience"])

    def decode(self, outputs: np.ndarray, params: Mapping) -> tuple[np.ndarray, np.ndarray]:
        t = np.argmax(np.asarray(outputs), axis=1).astype(np.int64)
        return TARGET_TO_MASK[t].astype(np.int64), t


# ----------------------------------------------------------------------------- protocol
class Head(abc.ABC):
    """Base class of every head. Subclasses set ``name`` (the registry key) and
    ``output_dim`` (K, the width of :meth:`predict_outputs`)."""

    name: ClassVar[str] = ""
    output_dim: ClassVar[int] = len(EMOTIONS)

    def __init__(self, **options: Any):
        self.options = dict(options)

    # -- training and inference ------------------------------------------------------
    @abc.abstractmethod
    def fit(
        self,
        X: np.ndarray,
        Y_soft: np.ndarray,
        *,
        target: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        eval_sets: Mapping[str, EvalSet] | None = None,
        spec: TrainSpec | None = None,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> FitHistory:
        """Train on rows ``X`` (N, F) with soft targets ``Y_soft`` (N, 6) and target indices
        ``target`` (N,) (rows of windows repeat their clip's label); ``groups`` (N,) are
        actor ids (never labels). Returns the outputs on ``eval_sets`` per evaluated epoch.
        ``progress(1)`` is called once per finished epoch."""

    @abc.abstractmethod
    def predict_outputs(self, X: np.ndarray, owner: np.ndarray | None = None) -> np.ndarray:
        """Per-clip outputs (n_clips, K)."""

    def predict_proba(self, X: np.ndarray, owner: np.ndarray | None = None) -> np.ndarray:
        """Per-clip probabilities over the six classes (n_clips, 6)."""
        return self.outputs_to_proba(self.predict_outputs(X, owner))

    def outputs_to_proba(self, outputs: np.ndarray) -> np.ndarray:
        """Six-class probabilities from outputs (identity for the paper's heads)."""
        return outputs

    def decoder(self, alphas: Sequence[float] | None = None, betas: Sequence[float] | None = None,
                weights: tuple[float, float] = (0.5, 0.5)) -> Decoder:
        """The decoder for this head's outputs (default: the paper's alpha/beta rule)."""
        return ThresholdDecoder(alphas, betas, weights)

    # -- late fusion -----------------------------------------------------------------
    def fuse(self, outputs: Sequence[np.ndarray], weights: Sequence[float] | None = None,
             mode: str = "prob") -> np.ndarray:
        """Weighted combination of several heads' outputs (same shape).

        ``mode="prob"``: weighted mean of probabilities. ``mode="logit"``: weighted mean of
        log-probabilities, renormalised, which equals averaging the logits of softmax heads.
        """
        return fuse_probabilities(outputs, weights, mode)

    # -- persistence -----------------------------------------------------------------
    def config(self) -> dict:
        """Constructor options (JSON-serialisable) to rebuild this head."""
        return dict(self.options)

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to predict (arrays/tensors and plain values)."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


def fuse_probabilities(outputs: Sequence[np.ndarray], weights: Sequence[float] | None = None,
                       mode: str = "prob") -> np.ndarray:
    """Weighted mean of probability arrays (``mode="prob"``) or of their logs, renormalised
    (``mode="logit"``: for softmax outputs the same as averaging logits)."""
    if not outputs:
        raise ValueError("nothing to fuse")
    shapes = {np.shape(o) for o in outputs}
    if len(shapes) != 1:
        raise ValueError(f"outputs to fuse must have one shape, got {sorted(shapes)}")
    w = np.ones(len(outputs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(outputs) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"need {len(outputs)} non-negative weights with a positive sum, got {list(w)}")
    w = w / w.sum()
    stack = np.stack([np.asarray(o, dtype=np.float64) for o in outputs])
    if mode == "prob":
        out = np.tensordot(w, stack, axes=1)
    elif mode == "logit":
        z = np.tensordot(w, np.log(np.clip(stack, 1e-12, None)), axes=1)
        z -= z.max(axis=-1, keepdims=True)
        out = np.exp(z)
        out /= out.sum(axis=-1, keepdims=True)
    else:
        raise ValueError(f"fusion mode must be 'prob' or 'logit', got {mode!r}")
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- registry
BUILTIN_HEADS: tuple[str, ...] = (
    "blemore.heads.mlp",         # linear, mlp-256, mlp-512 (the paper's)
    "blemore.heads.regularise",  # mlp-reg
    "blemore.heads.structured",  # structured, flat36
    "blemore.heads.multitask",   # multitask
)
"""The modules that define the built-in heads; :data:`HEADS` imports them on first lookup."""

HEADS: Registry[type[Head]] = Registry("head", builtins=BUILTIN_HEADS, error=HeadError)
"""Head name -> class; unknown names raise :class:`HeadError` listing every registered head."""


def register_head(name: str) -> Callable[[type[Head]], type[Head]]:
    """Class decorator: make a head available as ``create_head(name)`` / ``--head name``."""
    return HEADS.register(name)


def list_heads() -> list[str]:
    """Registered head names."""
    return HEADS.names()


def head_class(name: str) -> type[Head]:
    return HEADS.get(name)


def create_head(name: str, **options: Any) -> Head:
    """A new, untrained head of the registered kind ``name`` with constructor ``options``."""
    cls = head_class(name)
    try:
        return cls(**options)
    except TypeError as e:
        raise HeadError(f"head {name!r}: bad options {options}: {e}") from None


# ----------------------------------------------------------------------------- torch engine
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
        own = torch.as_tensor(owner, dtype=torch.long)
        n = int(own.max()) + 1
        s = torch.zeros((n, z.shape[1]), dtype=z.dtype).index_add_(0, own, z)
        cnt = torch.bincount(own, minlength=n).clamp_min(1).to(z.dtype)
        return s / cnt[:, None]

    def fit(self, X, Y_soft, *, target=None, groups=None, eval_sets=None, spec=None, seed=0, progress=None):
        import torch

        spec = spec or TrainSpec()
        X = np.asarray(X)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"X must be a non-empty (N, F) matrix, got shape {X.shape}")
        Y_soft = np.asarray(Y_soft, dtype=np.float32)
        if Y_soft.shape != (len(X), len(EMOTIONS)):
            raise ValueError(f"Y_soft must have shape ({len(X)}, {len(EMOTIONS)}), got {Y_soft.shape}")
        if target is None:
            target = np.full(len(X), -1, dtype=np.int64)
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        Yt = torch.from_numpy(np.ascontiguousarray(Y_soft))
        Tt = torch.from_numpy(np.asarray(target, dtype=np.int64))
        evals = {k: (torch.from_numpy(np.ascontiguousarray(v.X, dtype=np.float32)), v.owner)
                 for k, v in (eval_sets or {}).items()}

        self.in_dim = X.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.module = self.build_module(self.in_dim)
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
                idx = perm[i:i + bs]
                loss = self.loss(self.module(Xt[idx]), Yt[idx], Tt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += float(loss.detach())
                nb += 1
            hist.train_loss.append(tot / max(nb, 1))
            if epoch in record and evals:
                self.module.eval()
                with torch.no_grad():
                    for k, (xe, own) in evals.items():
                        store[k].append(self.logits_to_outputs(self._forward_clips(xe, own)).numpy().astype(np.float32))
                hist.epochs.append(epoch)
            elif epoch in record:
                hist.epochs.append(epoch)
            if progress is not None:
                progress(1)
        self.module.eval()
        hist.outputs = {k: np.stack(v) if v else np.zeros((0, 0, self.output_dim), np.float32)
                        for k, v in store.items()}
        return hist

    def predict_outputs(self, X, owner=None):
        import torch

        if self.module is None:
            raise RuntimeError(f"head {self.name!r} is not trained (call fit or load_state_dict first)")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.in_dim:
            raise ValueError(f"X must have shape (n, {self.in_dim}), got {X.shape}")
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
