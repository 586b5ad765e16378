"""The head protocol and the heads registry.

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
  :class:`~blemore.heads.training.FitHistory` holding the outputs on every eval set after each
  evaluated epoch, so that the runner can pick the training length and thresholds without
  retraining.
* ``predict_outputs(X, owner=None) -> (n_clips, K)``: per-clip outputs (for the paper's
  heads: the 6 class probabilities, with window *logits* averaged per clip before the
  softmax when ``owner`` maps rows to clips).
* ``predict_proba(X, owner=None) -> (n_clips, 6)``: class probabilities for reports.
* ``decoder()``: a :class:`~blemore.decoders.Decoder` that calibrates its parameters on
  labelled outputs (the paper's alpha/beta grid search for probability heads) and decodes
  outputs into ``(mask, target)`` codes. Structured heads return a decoder with no parameters
  (e.g. :class:`~blemore.decoders.ArgmaxTargetDecoder`), which bypasses thresholds.
* ``fuse(outputs_list, weights, mode)``: combine outputs of several heads of the same
  kind (late fusion); the default averages probabilities or logits
  (:func:`blemore.fusion.fuse_probabilities`).
* ``state_dict()`` / ``load_state_dict(state)`` and ``config()``: what a model bundle saves.

Where the rest lives: decoders in :mod:`blemore.decoders` (beside :mod:`blemore.decode`),
probability fusion in :mod:`blemore.fusion`, the training loop (``TrainSpec``, ``EvalSet``,
``FitHistory``, ``aggregate_rows``, ``TorchHead``) in :mod:`blemore.heads.training`. The
decoder names are re-exported here for old imports.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from blemore.decoders import ArgmaxTargetDecoder, Decoder, DecoderFit, ThresholdDecoder
from blemore.errors import BlemoreError
from blemore.fusion import fuse_probabilities
from blemore.labels import EMOTIONS
from blemore.pooling import Pooling
from blemore.registry import Registry

if TYPE_CHECKING:  # annotations only: the training module builds on this one
    from blemore.heads.training import EvalSet, FitHistory, TrainSpec

__all__ = [
    "Head", "HeadError", "HEADS", "BUILTIN_HEADS", "register_head", "create_head", "head_class", "list_heads",
    # re-exported from blemore.decoders and blemore.fusion for old imports
    "Decoder", "DecoderFit", "ThresholdDecoder", "ArgmaxTargetDecoder", "fuse_probabilities",
]


class HeadError(BlemoreError, ValueError):
    """A head name or head setting that is not known."""


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

    def wrapped(self, kind: str, **options: Any) -> "Head":
        """This head inside a wrapper from :data:`HEAD_WRAPPERS` (e.g. ``"gated"``, the network of
        gated fusion), which keeps this head's loss, outputs and decoder."""
        return HEAD_WRAPPERS.create(kind, base=self, **options)

    def input_pooling(self, pooling: Pooling) -> Pooling:
        """How the runner and bundles turn clips into this head's rows, given the configured
        ``pooling``. Default: as configured (pooled statistics or windows); sequence heads
        (:mod:`blemore.heads.sequence`) return frame sequences (``Pooling(kind="frames")``)."""
        return pooling

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


class DelegatesToBase:
    """Mixin for a head wrapper (``self.base``: the wrapped head): probabilities, decoder,
    fusion, input pooling and config are the wrapped head's. List it before the head class."""

    base: Head

    def outputs_to_proba(self, outputs):
        return self.base.outputs_to_proba(outputs)

    def decoder(self, *a, **k):
        return self.base.decoder(*a, **k)

    def fuse(self, *a, **k):
        return self.base.fuse(*a, **k)

    def input_pooling(self, pooling):
        return self.base.input_pooling(pooling)

    def config(self) -> dict:
        return self.base.config()


# ----------------------------------------------------------------------------- registry
BUILTIN_HEADS: tuple[str, ...] = (
    "blemore.heads.mlp",         # linear, mlp-256, mlp-512 (the paper's)
    "blemore.heads.regularise",  # mlp-reg
    "blemore.heads.structured",  # structured, flat36
    "blemore.heads.multitask",   # multitask
    "blemore.heads.sequence",    # attn-pool, bigru-attn, transformer (frame sequences)
)
"""The modules that define the built-in heads; :data:`HEADS` imports them on first lookup."""

HEADS: Registry[type[Head]] = Registry("head", builtins=BUILTIN_HEADS, error=HeadError)
"""Head name -> class; unknown names raise :class:`HeadError` listing every registered head."""


HEAD_WRAPPERS: Registry[type[Head]] = Registry(
    "head wrapper", builtins=("blemore.heads.gated", "blemore.heads.xattn", "blemore.heads.seeds"), error=HeadError)
"""Wrapper name -> class taking ``base=`` (a head) and options; see :meth:`Head.wrapped`."""
register_head_wrapper = HEAD_WRAPPERS.register


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
