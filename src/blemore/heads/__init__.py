"""Prediction heads and their registry.

``create_head("mlp-512")`` builds a registered head; ``list_heads()`` names them all.
Built-in heads: ``linear``, ``mlp-256``, ``mlp-512`` (the paper's, :mod:`blemore.heads.mlp`);
``mlp-reg`` (the paper's head with regularisation options, :mod:`blemore.heads.regularise`);
``structured`` and ``flat36`` (:mod:`blemore.heads.structured`); ``multitask``
(:mod:`blemore.heads.multitask`).
Add a head by subclassing :class:`~blemore.heads.base.Head` (or ``TorchHead``) in a module
of this package, decorating it with :func:`register_head`, and importing the module below.
"""
from blemore.heads.base import (  # noqa: F401
    ArgmaxTargetDecoder,
    Decoder,
    DecoderFit,
    EvalSet,
    FitHistory,
    Head,
    HeadError,
    ThresholdDecoder,
    TorchHead,
    TrainSpec,
    aggregate_rows,
    create_head,
    fuse_probabilities,
    head_class,
    list_heads,
    register_head,
)
from blemore.heads import mlp  # noqa: F401,E402  (registers linear, mlp-256, mlp-512)
from blemore.heads import regularise, structured, multitask  # noqa: F401,E402  (mlp-reg, structured, flat36, multitask)
# The options that go with these heads register on import here, so that every entry point that
# builds heads (runner, config, model bundles) also knows them: the "actor-norm" feature
# transform (blemore.normalise) and the "late-learned" fusion (blemore.late_fusion).
from blemore import late_fusion, normalise  # noqa: F401,E402

__all__ = [
    "ArgmaxTargetDecoder", "Decoder", "DecoderFit", "EvalSet", "FitHistory", "Head", "HeadError",
    "ThresholdDecoder", "TorchHead", "TrainSpec", "aggregate_rows", "create_head", "fuse_probabilities",
    "head_class", "list_heads", "register_head",
]
