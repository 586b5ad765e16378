"""The network of selective (gated) fusion, ``--fusion gated`` (:mod:`blemore.fusion_gated`).

After Lee et al. (FG 2026 BLEMORE challenge, 2nd place, "rank-aware selective fusion"): every
source's pooled features are projected into one shared space (``Linear -> ReLU``, width
``shared``, default 256 for pooled heads), a gate scores each source per clip from its projection, a softmax over
all sources' scores gives their weights, and only the ``top`` best-scored sources of that clip
keep theirs (the others get 0; the kept weights are not renormalised, as in switch routing, so
the gate's scores get gradients even with ``top=1``); the fused vector goes through the configured head's
own network (e.g. ``mlp-512``'s hidden layer and output), with that head's loss, outputs and
decoder. ``top`` = number of sources is a soft (attention) fusion; ``top=1`` picks one source
per clip.

How it plugs in: :class:`blemore.fusion_gated.GatedFusion` puts all sources in one group (like
early fusion) and wraps the head the runner made (``head.wrapped("gated", ...)``, registry
:data:`blemore.heads.base.HEAD_WRAPPERS`) in a :class:`GatedHead` that knows each source's width;
bundles rebuild the wrapper from the saved state.

With a sequence head each source gets its own sequence encoder of that kind (its attention-pooled
embedding is the source's projection) and the output layer is a LayerNorm and a linear layer. The
encoders are the head's ``hidden`` wide (the shared space: ``shared`` defaults to it, and a
different ``shared`` is refused); a model saved when they were ``shared`` wide whatever
``hidden`` (before this rule) is rebuilt as saved.

Rank-aware gate training (training only; after Lee et al.'s ranking of encoders). With ``top=1``
plain training collapses: the unselected source's encoder gets no gradient, so it never becomes
useful, and the gate has no signal about which source would have done better, so it ends up
picking the same source for every clip. Two terms fix this, both added to the wrapped head's loss
by :meth:`GatedHead.loss` from what the network's forward pass kept in training mode:

* ``rank`` (weight, default 1; 0 turns both parts off): every source's projection alone also goes
  through the shared output body (the auxiliary classifier; no extra parameters, so bundles keep
  their layout, and it is the path a ``top=1`` clip takes at inference), trained with the wrapped
  head's own loss averaged over sources, so every encoder learns whatever the routing; and the
  gate's softmax over sources is pulled (KL, weight ``rank``) towards
  ``softmax(-aux_loss / tau)``, the per-clip ranking of the sources by their detached auxiliary
  losses (``tau``, default 0.1).
* ``balance`` (weight, default 0.01): the switch-transformer load-balancing term
  ``sources * sum_i f_i * P_i`` (``f_i`` the share of the batch's kept slots that go to source
  ``i``, ``P_i`` its mean gate probability), which discourages routing everything to one source.

The wrapped head's options apply as they do without the gate: its :meth:`prepare` (target checks,
``class_balance`` weights) runs before training, and its network on the shared space is its
``module``, so its ``mixup`` (``mlp-reg``, ``structured``, ``multitask`` ...) mixes the body's input,
the fused vectors, with one ``(perm, lam)`` per batch, each source's projection the same way for the
auxiliary classifier, and every loss term (fused, auxiliary, ranking) mixes the targets alike; the
gate scores the clips unmixed.

At evaluation the forward pass is the fused path only (same outputs, same top-N gate); the
options are recorded in the bundle (``gated_rank`` ...), bundles without them load as trained
without (0).
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np

from blemore.heads.base import DelegatesToBase, Head, HeadError, register_head_wrapper
from blemore.heads.sequence import build_sequence_net
from blemore.heads.training import TorchHead, WrapsTorchHead

__all__ = ["GatedHead"]


@register_head_wrapper("gated")
class GatedHead(WrapsTorchHead, DelegatesToBase, TorchHead):
    """A head behind per-source projections and a per-clip top-N gate (see the module doc)."""

    name = "gated"

    def __init__(self, base: Head, dims: Sequence[int] | None = None, top: int = 1, shared: int | None = None,
                 rank: float = 1.0, balance: float = 0.01, tau: float = 0.1):
        if not isinstance(base, TorchHead):
            raise HeadError(f"gated fusion needs a torch head (e.g. mlp-512 or a sequence head), got {base.name!r}")
        problems = [f"{k} must be >= 0, got {v}" for k, v in (("rank", rank), ("balance", balance))
                    if not float(v) >= 0]
        width = getattr(base, "hidden", None) if getattr(base, "input", "") == "sequence" else None
        if shared is None:
            shared = width or 256
        elif width is not None and dims is not None and int(shared) != int(width):  # dims None: a saved model
            problems.append(f"shared ({shared}) must equal the sequence head's hidden ({width}): each source's "
                            f"{base.name} encoder is its projection into the shared space (leave shared unset, "
                            "or set the head's hidden)")
        if not float(tau) > 0:
            problems.append(f"tau must be > 0, got {tau}")
        if problems:
            raise HeadError("gated fusion: " + "; ".join(problems))
        super().__init__(**base.options)
        self.base, self.top, self.shared = base, int(top), int(shared)
        self.rank, self.balance, self.tau = float(rank), float(balance), float(tau)
        self.dims = None if dims is None else [int(d) for d in dims]
        self.output_dim = base.output_dim  # type: ignore[misc]

    # the wrapped head's loss (plus, in training, the rank and balance terms of the module doc)
    # and outputs (and, by DelegatesToBase, its probabilities, decoder, fusion, pooling and config)
    def loss(self, logits, y_soft, target):
        import torch
        import torch.nn.functional as F

        total = self.base.loss(logits, y_soft, target)
        kept = getattr(self.module, "kept", None)  # set by the module's forward in training mode
        if kept is None:
            return total
        self.module.kept = None
        aux, s, keep = kept
        s, n_src = s.float(), s.shape[1]
        if aux is not None:
            aux = aux.float()
            total = total + sum(self.base.loss(aux[:, i], y_soft, target) for i in range(n_src)) / n_src
            with torch.no_grad():
                goal = torch.softmax(-self._row_losses(aux, y_soft, target) / self.tau, dim=1)
            total = total + self.rank * F.kl_div(F.log_softmax(s, dim=1), goal, reduction="batchmean")
        if self.balance > 0:
            share = keep.float().mean(dim=0) / keep.float().sum(dim=1).mean()
            total = total + self.balance * n_src * (share * torch.softmax(s, dim=1).mean(dim=0)).sum()
        return total

    def _row_losses(self, aux, y_soft, target):
        """The wrapped head's loss of each clip and source, ``(b, sources)``, from the auxiliary
        logits ``aux`` ``(b, sources, K)``: the head's ``row_losses`` when it has one (the
        regularised heads: mlp-reg, structured, multitask ...), else its batch loss of each row
        alone (vectorised with ``torch.func.vmap``; a loop over rows for a loss vmap cannot trace)."""
        import torch

        b, n_src = aux.shape[:2]
        if hasattr(self.base, "row_losses"):  # one source at a time: a mixup batch's (perm, lam) is per clip
            return torch.stack([self.base.row_losses(aux[:, i], y_soft, target) for i in range(n_src)], dim=1)
        z = aux.reshape(b * n_src, -1)
        y = y_soft.repeat_interleave(n_src, dim=0)
        t = target.repeat_interleave(n_src, dim=0)
        one = lambda zi, yi, ti: self.base.loss(zi[None], yi[None], ti[None])  # noqa: E731
        try:
            with warnings.catch_warnings():  # "performance drop": ops without a batching rule (kl_div) loop inside
                warnings.filterwarnings("ignore", message=".*performance drop.*", category=UserWarning)
                rows = torch.func.vmap(one)(z, y, t)
        except Exception:  # a loss with data-dependent control flow
            rows = torch.stack([one(z[i], y[i], t[i]) for i in range(len(z))])
        return rows.reshape(b, n_src)

    def build_module(self, in_dim: int):
        import torch
        from torch import nn

        dims = self.dims
        if not dims or sum(dims) != in_dim:
            raise HeadError(f"gated fusion: source widths {dims} do not add up to the input width {in_dim}")
        top = max(1, min(self.top, len(dims)))
        self_shared = self.shared
        keep_terms, rank_on = self.rank > 0 or self.balance > 0, self.rank > 0
        frames = getattr(self.base, "frames", None) if getattr(self.base, "input", "") == "sequence" else None
        if frames:  # sequence heads: one encoder per source (its pooled embedding), rows are (L, sum D) frames
            b = self.base
            encoders = [build_sequence_net(b.kind, d, frames, self_shared, b.heads, b.layers, b.dropout, b.center)
                        for d in dims]
            for e in encoders:
                e.out = nn.Identity()
            body = nn.Sequential(nn.LayerNorm(self_shared), nn.Linear(self_shared, 6))
        else:
            encoders = None
            # the wrapped head's own network on the shared space: its loss finds a mixup there
            body = self.base.module = self.base.build_module(self.shared)

        class GatedNet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.splits = list(dims) if not frames else [d // frames for d in dims]
                self.proj = nn.ModuleList(encoders if encoders is not None else
                                          [nn.Sequential(nn.Linear(d, self_shared), nn.ReLU()) for d in dims])
                self.gate = nn.Linear(self_shared, 1)
                self.bias = nn.Parameter(torch.zeros(len(dims)))
                self.body = body
                self.kept = None  # training mode: (aux logits, gate scores, kept mask) for GatedHead.loss

            def route(self, x):
                """Projections ``z`` (b, sources, shared), gate scores ``s`` and the top-N mask."""
                if frames:
                    parts = [xs.reshape(len(x), -1) for xs in torch.split(x.reshape(len(x), frames, -1), self.splits, dim=2)]
                else:
                    parts = torch.split(x, self.splits, dim=1)
                z = torch.stack([p(xs) for p, xs in zip(self.proj, parts)], dim=1)
                s = self.gate(torch.tanh(z)).squeeze(2) + self.bias  # (b, sources)
                keep = torch.zeros_like(s, dtype=torch.bool).scatter_(1, s.topk(top, dim=1).indices, True)
                return z, s, keep

            def gates(self, x):
                z, s, keep = self.route(x)
                # softmax over all sources, the top N kept (not renormalised, as in switch routing):
                # the kept weights still depend on every score, so the gate learns even with top=1
                return torch.softmax(s, dim=1) * keep, z

            def forward(self, x):
                z, s, keep = self.route(x)
                out = self.body(((torch.softmax(s, dim=1) * keep)[:, :, None] * z).sum(dim=1))
                if self.training and keep_terms:  # each source alone through the body: the auxiliary classifier
                    b, n_src, w = z.shape
                    aux = None
                    if rank_on:  # mixed as the fused rows were (mixup: the body remembers its (perm, lam))
                        mix = getattr(self.body, "last", None)
                        if mix is not None:
                            z = mix[1] * z + (1.0 - mix[1]) * z[mix[0]]
                        aux = getattr(self.body, "inner", self.body)(z.reshape(b * n_src, w)).reshape(b, n_src, -1)
                    self.kept = (aux, s, keep)
                else:
                    self.kept = None
                return out

        return GatedNet()

    def gates(self, X: np.ndarray) -> np.ndarray:
        """Per-row gate weights ``(n, sources)`` (0 for sources not selected)."""
        import torch

        if self.module is None:
            raise RuntimeError("gated head is not trained")
        with torch.no_grad():
            return self.module.gates(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))[0].numpy()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "gated_dims": list(self.dims or []), "gated_top": self.top,
                "gated_shared": self.shared, "gated_rank": self.rank, "gated_balance": self.balance,
                "gated_tau": self.tau}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.dims = [int(d) for d in np.asarray(state["gated_dims"]).ravel()]
        self.top, self.shared = int(np.asarray(state["gated_top"])), int(np.asarray(state["gated_shared"]))
        # training-only settings; a bundle saved before they existed was trained without them
        self.rank, self.balance = (float(np.asarray(state.get(k, 0.0))) for k in ("gated_rank", "gated_balance"))
        self.tau = float(np.asarray(state.get("gated_tau", self.tau)))
        super().load_state_dict(state)
