"""Prediction heads and their registry.

``create_head("mlp-512")`` builds a registered head; ``list_heads()`` names them all.
Built-in heads: ``linear``, ``mlp-256``, ``mlp-512`` (the paper's, :mod:`blemore.heads.mlp`);
``mlp-reg`` (the paper's head with regularisation options, :mod:`blemore.heads.regularise`);
``structured`` and ``flat36`` (:mod:`blemore.heads.structured`); ``multitask``
(:mod:`blemore.heads.multitask`).
Add a head by subclassing :class:`~blemore.heads.base.Head` (or ``TorchHead``) in a module
of this package, decorating it with :func:`register_head`, and adding the module's dotted name
to :data:`blemore.heads.base.BUILTIN_HEADS` (the registry imports the built-ins itself).
"""
from blemore.heads.base import (  # noqa: F401
    BUILTIN_HEADS,
    HEADS,
    ArgmaxTargetDecoder,
    Decoder,
    DecoderFit,
    Head,
    HeadError,
    ThresholdDecoder,
    create_head,
    fuse_probabilities,
    head_class,
    list_heads,
    register_head,
)
from blemore.heads.training import EvalSet, FitHistory, TorchHead, TrainSpec, aggregate_rows  # noqa: F401

__all__ = [
    "ArgmaxTargetDecoder", "Decoder", "DecoderFit", "EvalSet", "FitHistory", "Head", "HeadError",
    "ThresholdDecoder", "TorchHead", "TrainSpec", "aggregate_rows", "create_head", "fuse_probabilities",
    "head_class", "list_heads", "register_head",
]
