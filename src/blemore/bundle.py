"""Model bundles: a trained model saved as a self-contained folder, loaded, and used to predict.

Layout of ``MODEL_DIR``::

    bundle.json     format and versions, label order, head name and options, fusion, pooling,
                    feature sources (name, dimension, extractor config), transforms, decoder
                    parameters (alpha, beta; per-actor thresholds: mode, shrink, levels),
                    --adapt mode, training length and settings, CV summary
    part0.safetensors   head weights, fitted transforms (e.g. the scaler) and --adapt training
                        statistics of fusion group 0; with per-actor thresholds also the
                        training actors' identity directions (``identity``)
    part1.safetensors   ... one per fusion group (late fusion)

Weights are safetensors with the structure around the arrays as JSON
(:mod:`blemore.weights`): loading a bundle never executes code from it. ``bundle.json``
records each weights file's SHA-256 (``files``); a file that differs (tampered or corrupted) is
refused, naming it. Bundles of format version 1 (``part0.pt``, written before 0.3) are still
read, with ``torch.load(weights_only=True)`` (tensors and plain values only, no pickled code).

**Transductive decoding.** A model trained with ``--adapt meanvar|coral`` saves, in each part's
weights file (so under its SHA-256), the training statistics :func:`blemore.adapt.fit_stats`
made (mean/std per column; for CORAL the training data's principal basis and covariance there;
never training clips), and ``bundle.json`` records the mode (``adapt``). A model trained with
``--thresholds per-actor`` records the mode and shrinkage (``decoder.thresholds``) next to the
label-free levels ``q_alpha``/``q_beta`` in ``decoder.params``. :meth:`ModelBundle.predict`
then does what the run did to its test clips: the clips predicted together are one evaluated
set (their own statistics are aligned to the saved ones; fewer than
:data:`blemore.adapt.MIN_CLIPS` are left unadapted, with a warning), and each group of
``groups`` (clip -> actor) is decoded with its own shrunk pair (clips without a group keep the
global pair, as in the run); clips without a group (all of them when ``groups`` is None) are
split into **identity groups by clustering** as the run split its test clips of unknown actor
(:mod:`blemore.thresholds`: the training actors' identity directions, saved in part 0's
weights as ``identity``, and ``decoder.thresholds.identity_groups``, the ``--identity-groups``
setting). A per-actor bundle saved before identity directions were kept (format 3 without
``identity``) decodes clips without groups as **one group**. ``Predictions.decoding`` says
what ran. Bundles with identity directions are written as format 4, other transductive ones
as format 3 (an older blemore refuses them rather than decoding differently); others stay
format 2, and bundles without these fields load as before (global thresholds, no adaptation).

Use::

    model = ModelBundle.load("MODEL_DIR")
    pred = model.predict({"wavlm": "features/wavlm"})       # or a FeatureSet / one source
    pred.table()                                             # clip, emotions, salience, probabilities
    pred.submission()                                        # challenge JSON
    times, probs = model.timeline({"wavlm": x})              # per-window probabilities of one clip
"""
from __future__ import annotations

import json
import os
import pickle
import platform
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from blemore import __version__
from blemore._io import atomic_folder
from blemore.adapt import ADAPT_MODES, MIN_CLIPS, apply_stats
from blemore.errors import BlemoreError
from blemore.extract import extract, find_media
from blemore.features import FeatureSet, TransformChain, load_features, open_features
from blemore.fusion import Fusion, create_fusion
from blemore.heads.base import Head, create_head
from blemore.labels import EMOTIONS
from blemore.pooling import Pooling, pool_stats, windows
from blemore.weights import WeightsError, load_state, save_state, sha256_file
from blemore.predictions import code_names, load_json_strict, prediction_table
from blemore.store import open_store
from blemore.submission import submission_dict
from blemore.normalise import IdentityProjector, identity_rows, is_unknown_group
from blemore.thresholds import ActorThresholds, ThresholdError
from blemore.validate import InputWarning, input_problems

__all__ = ["ModelBundle", "BundlePart", "Predictions", "BundleError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "blemore-model"
FORMAT_VERSION = 4
"""Written for per-actor-threshold bundles with identity directions (clips without a group are
clustered); 3 for the other transductive bundles (``--adapt`` / per-actor thresholds); the
others are written as version 2, which older blemore versions read the same way."""


class BundleError(BlemoreError, ValueError):
    """A model folder that cannot be read, or inputs that do not match the model."""


_SKIP_REASONS = {"no-audio": "no audio", "no-video": "no video", "no-face": "no face found",
                 "failed": "extraction failed"}


def _warn_inputs(part: "BundlePart", X: np.ndarray, clip_ids: Sequence[str]) -> None:
    """One warning naming every clip whose input is NaN/inf or far outside the training range
    (measured with the part's first fitted standardisation, when it has one)."""
    std = next((t for t in part.chain.transforms if hasattr(t, "mean_") and hasattr(t, "scale_")), None)
    if getattr(part.chain, "frames", None):  # frame sequences: judge each clip's mean valid frame (padding is no problem)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            X = np.nanmean(np.asarray(X, dtype=np.float32).reshape(len(X), part.chain.frames, -1), axis=1)
    bad = input_problems(X, clip_ids, getattr(std, "mean_", None), getattr(std, "scale_", None))
    if bad:
        lines = [f"  {c}: {why}" for c, why in list(bad.items())[:20]]
        more = [f"  ... and {len(bad) - 20} more"] if len(bad) > 20 else []
        warnings.warn(f"{len(bad)} of {len(clip_ids)} clip(s) have inputs the model was not trained on; their "
                      "predictions are unreliable:\n" + "\n".join(lines + more), InputWarning, stacklevel=3)


def _config_difference(trained: Any, given: Any) -> str:
    """``; the settings differ: face-mesh.landmarks: model False, features True`` (or ``""``),
    comparing the extractor config recorded in the bundle with the feature folder's config.json."""
    if not isinstance(trained, Mapping) or not isinstance(given, Mapping):
        return ""

    def flat(d: Any, prefix: str) -> dict[str, Any]:
        if isinstance(d, Mapping):
            out: dict[str, Any] = {}
            for k, v in d.items():
                out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
            return out
        return {prefix: d}

    name = str(trained.get("extractor") or given.get("extractor") or "")
    a = flat({"extractor": trained.get("extractor"), "settings": trained.get("settings")}, "")
    b = flat({"extractor": given.get("extractor"), "settings": given.get("settings")}, "")
    diffs = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            key = k if k == "extractor" else f"{name}.{k.removeprefix('settings.')}"
            diffs.append(f"{key}: model {a.get(k)!r}, features {b.get(k)!r}")
    if not diffs:
        return ""
    return "; the extractor settings differ: " + "; ".join(diffs[:10]) + (
        " (extract again with the model's settings, e.g. --set " + diffs[0].split(":")[0] + "=...)"
        if diffs[0].split(":")[0] != "extractor" else "")


def _nothing_to_predict(skipped: Mapping[str, str]) -> str:
    lines = [f"  {c}: {why}" for c, why in list(skipped.items())[:20]]
    more = [f"  ... and {len(skipped) - 20} more"] if len(skipped) > 20 else []
    return (f"none of the {len(skipped)} clip(s) can be predicted with this model:\n"
            + "\n".join(lines + more))


@dataclass
class BundlePart:
    """One fusion group: its sources, fitted transforms and trained head."""

    sources: tuple[str, ...]
    chain: TransformChain
    head: Head
    adapt: dict | None = None
    """``--adapt``: the training statistics of :func:`blemore.adapt.fit_stats` (None: no adaptation)."""


@dataclass
class Predictions:
    """Per-clip predictions: outputs, six-class probabilities and decoded codes."""

    clip_ids: list[str]
    proba: np.ndarray
    mask: np.ndarray
    target: np.ndarray
    skipped: dict[str, str] = field(default_factory=dict)
    """Clips that were asked for but could not be predicted -> why (e.g. ``"wavlm: no audio"``)."""
    decoding: dict = field(default_factory=dict)
    """How the clips were decoded: ``transductive`` (whether a clip's prediction depends on the
    other clips predicted with it), ``adapt`` and ``thresholds`` (mode and what ran), ``notes``
    (one line each, for people; ``warned``: those also raised as warnings)."""

    def labels(self) -> list[str]:
        """Readable predictions (``hap``, ``ang+hap 70/30``; :func:`blemore.predictions.code_name`)."""
        return code_names(self.mask, self.target)

    def table(self) -> pd.DataFrame:
        """Readable table: clip, emotions, salience, probabilities
        (:func:`blemore.predictions.prediction_table`)."""
        return prediction_table(self.clip_ids, self.proba, self.mask, self.target)

    def submission(self) -> dict:
        """The challenge JSON (keys ``<clip_id>.mov``)."""
        return submission_dict(self.clip_ids, self.mask, self.target)


def _to_saveable(obj: Any) -> Any:
    import torch

    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, Mapping):
        return {str(k): _to_saveable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_saveable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _from_saved(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: _from_saved(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_saved(v) for v in obj]
    return obj


def _versions() -> dict:
    import torch

    return {"blemore": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _hf_cache_blob(root: Path, f: Path) -> bool:
    """Whether ``f`` links into the ``blobs`` folder of the same repository of a Hugging Face
    cache (``models--owner--repo/snapshots/<rev>/<file> -> ../../blobs/<hash>``), the layout
    ``hf://`` models are downloaded into (their content is still checked by SHA-256)."""
    return root.resolve().parent.name == "snapshots" and \
        f.resolve().parent == (root.resolve().parent.parent / "blobs")


class ModelBundle:
    """A trained model: transforms + head per fusion group, fusion weights, decoder parameters."""

    def __init__(self, parts: Sequence[BundlePart], *, head: str, head_options: Mapping[str, Any],
                 fusion: Fusion, fusion_weights: Sequence[float] | None, params: Mapping[str, Any],
                 pooling: Pooling, sources: Sequence[Mapping[str, Any]], epochs: int,
                 train_spec: Mapping[str, Any] | None = None, alphas: Sequence[float] | None = None,
                 betas: Sequence[float] | None = None, score_weights: Sequence[float] = (0.5, 0.5),
                 info: Mapping[str, Any] | None = None, thresholds: str = "global",
                 threshold_shrink: float = 20.0, adapt: str = "none", adapt_eps: float = 0.1,
                 identity: IdentityProjector | None = None, identity_groups: int | str = "auto"):
        problems = []
        try:
            ActorThresholds(thresholds, threshold_shrink, identity_groups)
        except ThresholdError as e:
            problems.append(str(e))
        if adapt not in ADAPT_MODES:
            problems.append(f"adapt must be one of {', '.join(ADAPT_MODES)}, got {adapt!r}")
        elif adapt != "none":
            problems += [f"part {i} ({'+'.join(p.sources)}) has no training statistics for --adapt {adapt}"
                         for i, p in enumerate(parts) if not p.adapt or p.adapt.get("mode") != adapt]
        if problems:
            raise BundleError("cannot make the model bundle: " + "; ".join(problems))
        self.thresholds, self.threshold_shrink = thresholds, float(threshold_shrink)
        self.identity, self.identity_groups = identity, identity_groups  # clusters clips without a group
        self.adapt, self.adapt_eps = adapt, float(adapt_eps)
        self.parts = list(parts)
        self.head = head
        self.head_options = dict(head_options)
        self.fusion = fusion
        self.fusion_weights = None if fusion_weights is None else [float(w) for w in fusion_weights]
        self.params = dict(params)
        self.pooling = pooling
        self.sources = [dict(s) for s in sources]
        self.epochs = int(epochs)
        self.train_spec = dict(train_spec or {})
        self.alphas = None if alphas is None else [float(a) for a in alphas]
        self.betas = None if betas is None else [float(b) for b in betas]
        self.score_weights = tuple(float(w) for w in score_weights)
        self.info = dict(info or {})

    @property
    def source_names(self) -> list[str]:
        return [s["name"] for s in self.sources]

    def decoder(self):
        return self.parts[0].head.decoder(self.alphas, self.betas, self.score_weights)

    @property
    def transductive(self) -> bool:
        """Whether a clip's prediction depends on the clips predicted with it (``--adapt`` or
        per-actor thresholds with the levels they need)."""
        return self.adapt != "none" or (self.thresholds == "per-actor" and "q_alpha" in self.params)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_job(cls, exp, job, sel) -> "ModelBundle":
        """From a final training job of :class:`blemore.experiment.Experiment`."""
        cfg = exp.cfg
        fs = exp.features
        sources = []
        for name in fs.sources:
            c = fs.configs.get(name, {})
            sources.append({"name": name, "dim": int(c.get("dim") or 0), "pooled_dim": fs.dim(name),
                            "root": c.get("root"), "config": c.get("config")})
        parts = [BundlePart(p.sources, p.chain, p.head, getattr(p, "adapt", None)) for p in job.parts]
        info = {"run": cfg.run_name(), "train_clips": len(job.train_clips),
                "train_metadata": cfg.metadata, "selection": sel.as_dict(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        per_actor = exp.thresholds.active and "q_alpha" in sel.params
        return cls(parts, head=cfg.head, head_options=cfg.head_options, fusion=exp.fusion,
                   fusion_weights=sel.weights, params=sel.params, pooling=exp.pooling, sources=sources,
                   epochs=sel.epoch, train_spec=exp.spec.as_dict(), alphas=cfg.alphas, betas=cfg.betas,
                   score_weights=cfg.score_weights, info=info, thresholds=exp.thresholds.mode,
                   threshold_shrink=exp.thresholds.shrink, adapt=cfg.adapt,
                   identity=exp.identity_projector() if per_actor else None,
                   identity_groups=exp.thresholds.identity_groups)

    # -- persistence --------------------------------------------------------------------
    def manifest(self) -> dict:
        return {
            "format": FORMAT, "versions": _versions(),
            "format_version": FORMAT_VERSION if self.identity is not None else 3 if self.transductive else 2,
            "labels": list(EMOTIONS), "head": {"name": self.head, "options": self.head_options},
            "fusion": self.fusion.as_dict(), "fusion_weights": self.fusion_weights,
            "pooling": self.pooling.as_dict(), "sources": self.sources,
            "parts": [{"file": f"part{i}.safetensors", "sources": list(p.sources), "transforms": p.chain.specs()}
                      for i, p in enumerate(self.parts)],
            "decoder": {"params": self.params, "alphas": self.alphas, "betas": self.betas,
                        "score_weights": list(self.score_weights),
                        **({"thresholds": {"mode": self.thresholds, "shrink": self.threshold_shrink,
                                           **({"identity_groups": self.identity_groups,
                                               "identity_dims": int(self.identity.components.shape[1])}
                                              if self.identity is not None else {})}}
                           if self.thresholds != "global" else {})},
            **({"adapt": {"mode": self.adapt, "eps": self.adapt_eps, "min_clips": MIN_CLIPS}}
               if self.adapt != "none" else {}),
            "epochs": self.epochs, "train_spec": self.train_spec, "info": self.info,
        }

    def save(self, model_dir: str | os.PathLike) -> Path:
        """Write the bundle folder atomically (a temporary folder renamed into place)."""
        dest = Path(model_dir)
        with atomic_folder(dest) as tmp:
            manifest = self.manifest()
            for i, (p, pm) in enumerate(zip(self.parts, manifest["parts"])):
                save_state(tmp / pm["file"], {"head": p.head.state_dict(), "transforms": p.chain.state_dict(),
                                              **({"adapt": p.adapt} if self.adapt != "none" else {}),
                                              **({"identity": self.identity.state_dict()}
                                                 if i == 0 and self.identity is not None else {})})
            manifest["files"] = {pm["file"]: {"sha256": sha256_file(tmp / pm["file"])} for pm in manifest["parts"]}
            (tmp / "bundle.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        return dest

    @staticmethod
    def _check_files(root: Path, m: Mapping[str, Any]) -> None:
        """Every weights file named by the parts exists, is listed in ``files`` (format 2) and
        has the SHA-256 recorded there; lists every problem at once."""
        files = m.get("files") or {}
        problems = []
        for pm in m.get("parts", []):
            name = str(pm.get("file", ""))
            f = root / name
            if Path(name).name != name or not name:
                problems.append(f"{name!r}: a weights file must be a plain file name inside the bundle folder")
            elif not f.is_file():
                problems.append(f"{name}: missing")
            elif not (f.resolve().is_relative_to(root.resolve()) or _hf_cache_blob(root, f)):
                problems.append(f"{name}: a link that points outside the bundle folder ({f.resolve()})")
            elif int(m.get("format_version", 1)) >= 2 and name not in files:
                problems.append(f"{name}: no SHA-256 recorded in bundle.json")
            elif name in files and sha256_file(f) != files[name].get("sha256"):
                problems.append(f"{name}: SHA-256 {sha256_file(f)[:12]}... differs from the {str(files[name].get('sha256'))[:12]}... "
                                "recorded in bundle.json (tampered or corrupted)")
        if problems:
            raise BundleError(f"{root}: refusing to load the model bundle:\n  " + "\n  ".join(problems))

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> "ModelBundle":
        root = Path(model_dir)
        mf = root / "bundle.json"
        if not mf.exists():
            raise BundleError(f"{root} is not a blemore model folder (no bundle.json)")
        m = load_json_strict(mf, error=BundleError)
        if not isinstance(m, dict):
            raise BundleError(f"{mf}: expected a JSON object, got {type(m).__name__}")
        try:
            return cls._from_manifest(root, mf, m)
        except (KeyError, TypeError, AttributeError) as e:
            raise BundleError(f"{mf}: a required field is missing or malformed ({e.__class__.__name__}: {e}); "
                              "was the file edited by hand?") from None

    @classmethod
    def _from_manifest(cls, root: Path, mf: Path, m: dict) -> "ModelBundle":
        if m.get("format") != FORMAT:
            raise BundleError(f"{mf}: format {m.get('format')!r} is not {FORMAT!r}")
        fv = m.get("format_version", 0)
        if not isinstance(fv, int) or isinstance(fv, bool) or fv < 0:
            raise BundleError(f"{mf}: format_version {str(fv)[:20]!r} is not a version number")
        if fv > FORMAT_VERSION:
            raise BundleError(f"{mf}: format version {str(fv)[:20]} is newer than this blemore "
                              f"({FORMAT_VERSION}); upgrade blemore")
        if list(m.get("labels", [])) != list(EMOTIONS):
            raise BundleError(f"{mf}: label order {m.get('labels')} differs from {list(EMOTIONS)}")
        cls._check_files(root, m)
        fus = dict(m["fusion"])
        fusion = create_fusion(fus.pop("kind"), **fus)
        pool = m["pooling"]
        pooling = Pooling(kind=pool["kind"], stats=tuple(pool["stats"]), window=pool["window"], stride=pool["stride"])
        parts = []
        identity = None
        for pm in m["parts"]:
            if str(pm["file"]).endswith(".safetensors"):
                try:
                    state = load_state(root / pm["file"])
                except WeightsError as e:
                    raise BundleError(str(e)) from None
            else:  # format version 1: tensors and plain values only, no code
                import torch

                try:
                    state = torch.load(root / pm["file"], weights_only=True)
                except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
                    raise BundleError(f"{root / pm['file']}: not a readable weights file, truncated or corrupted "
                                      f"({e.__class__.__name__}: {str(e)[:200]})") from None
            chain = TransformChain(pm["transforms"], frames=pooling.sequence_length)
            chain.load_state_dict(_from_saved(state["transforms"]))
            head = fusion.head_for(create_head(m["head"]["name"], **m["head"]["options"]), None)
            if "seeds_k" in state["head"]:  # --seeds K: a seed ensemble (blemore.heads.seeds)
                head = head.wrapped("seeds", k=int(np.asarray(_from_saved(state["head"]["seeds_k"]))))
            head.load_state_dict(_from_saved(state["head"]))
            stats = state.get("adapt")
            parts.append(BundlePart(tuple(pm["sources"]), chain, head, dict(stats) if stats else None))
            if not parts[1:] and state.get("identity"):  # part 0: the training actors' identity directions
                identity = IdentityProjector.from_state(_from_saved(state["identity"]))
        d = m["decoder"]
        th = d.get("thresholds") or {}
        ad = m.get("adapt") or {}
        try:
            shrink, eps = float(th.get("shrink", 20.0)), float(ad.get("eps", 0.1))
        except (TypeError, ValueError):
            raise BundleError(f"{mf}: decoder.thresholds.shrink and adapt.eps must be numbers, got "
                              f"{th.get('shrink')!r} and {ad.get('eps')!r}") from None
        try:
            return cls(parts, head=m["head"]["name"], head_options=m["head"]["options"], fusion=fusion,
                       fusion_weights=m.get("fusion_weights"), params=d["params"], pooling=pooling,
                       sources=m["sources"], epochs=m["epochs"], train_spec=m.get("train_spec"),
                       alphas=d.get("alphas"), betas=d.get("betas"), score_weights=d.get("score_weights", (0.5, 0.5)),
                       info=m.get("info"), thresholds=th.get("mode", "global"), threshold_shrink=shrink,
                       adapt=ad.get("mode", "none"), adapt_eps=eps, identity=identity,
                       identity_groups=th.get("identity_groups", "auto"))
        except BundleError as e:
            raise BundleError(f"{mf}: {e}") from None

    # -- prediction ---------------------------------------------------------------------
    def _feature_set(self, features: Any, clip_ids: Sequence[str] | None, missing: str) -> FeatureSet:
        if isinstance(features, FeatureSet):
            fs = features
            absent = [n for n in self.source_names if n not in fs.blocks]
            if absent:
                raise BundleError(f"the feature set lacks source(s) {absent} the model needs ({self.source_names})")
            return fs if clip_ids is None else fs.subset(list(clip_ids))
        srcs = self._sources(features)
        if clip_ids is None:
            clip_ids, _ = self.coverage(srcs)
        fs = load_features(srcs, list(clip_ids), self.pooling, missing=missing)
        renamed = dict(zip(list(fs.blocks), self.source_names))
        fs.blocks = {renamed[k]: v for k, v in fs.blocks.items()}
        fs.owners = {renamed[k]: v for k, v in fs.owners.items()}
        for name, src, opened in zip(self.source_names, self.sources, srcs):
            if fs.dim(name) != src["pooled_dim"]:
                raise BundleError(f"source {name!r} ({getattr(opened, 'root', opened)}) gives {fs.dim(name)} pooled "
                                  f"features; the model was trained on {src['pooled_dim']}"
                                  + _config_difference(src.get("config"), getattr(opened, "config", None)))
        return fs

    def _sources(self, features: Any) -> list:
        """The model's sources, in order, opened from a mapping name -> source/path or a list."""
        if isinstance(features, Mapping):
            by_name = {str(k): open_features(v) for k, v in features.items()}
        else:
            seq = features if isinstance(features, (list, tuple)) else [features]
            opened = [open_features(s) for s in seq]
            by_name = {getattr(s, "name", f"source{i}"): s for i, s in enumerate(opened)}
            if len(opened) == len(self.sources) == 1 and self.source_names[0] not in by_name:
                by_name = {self.source_names[0]: opened[0]}
        absent = [n for n in self.source_names if n not in by_name]
        if absent:
            raise BundleError(f"the model needs feature source(s) {self.source_names}; missing {absent} "
                              f"(given: {sorted(by_name)})")
        return [by_name[n] for n in self.source_names]

    def coverage(self, sources: Sequence[Any], clip_ids: Sequence[str] | None = None) -> tuple[list[str], dict[str, str]]:
        """Which clips every one of the model's ``sources`` (in :attr:`source_names` order) has
        features for, and why each other clip cannot be predicted (``"wavlm-large: no audio"``).
        ``clip_ids`` defaults to every clip any source knows (its files and manifest)."""
        known = [set(s.clip_ids) for s in sources]
        status = [s.status() if hasattr(s, "status") else {} for s in sources]
        rows = [s.manifest() if hasattr(s, "manifest") else {} for s in sources]
        if clip_ids is None:
            every: set[str] = set()
            for k, st in zip(known, status):
                every |= k | set(st)
            clip_ids = sorted(every)
        ok, skipped = [], {}
        for cid in dict.fromkeys(clip_ids):
            why = []
            for name, k, st, rw in zip(self.source_names, known, status, rows):
                if cid in k:
                    continue
                code = st.get(cid)
                err = getattr(rw.get(cid), "error", "") or ""
                text = _SKIP_REASONS.get(code, f"status {code}") if code else "no features for this clip"
                why.append(f"{name}: {text}" + (f" ({err[:120]})" if err and code == "failed" else ""))
            if why:
                skipped[cid] = "; ".join(why)
            else:
                ok.append(cid)
        return ok, skipped

    def outputs(self, fs: FeatureSet, groups: Mapping[str, Any] | None = None,
                decoding: dict | None = None) -> np.ndarray:
        """Combined per-clip outputs for every clip of ``fs`` (with ``--adapt``, the clips of
        ``fs`` are one evaluated set; ``decoding``, when given, gets what adaptation did)."""
        pos = np.arange(len(fs), dtype=np.int64)
        ids = np.array(fs.clip_ids, dtype=object)
        outs = []
        for p in self.parts:
            X, owner = fs.rows(p.sources, pos)
            rc = pos if owner is None else pos[owner]
            g = None if groups is None else [groups.get(c) for c in ids[rc]]
            _warn_inputs(p, X, ids[rc].tolist())
            X = p.chain.transform(X, clip_ids=ids[rc].tolist(), groups=g)
            X = self._adapt(p, X, len(fs), decoding)
            outs.append(p.head.predict_outputs(X, owner))
        return self.fusion.combine(outs, self.fusion_weights, self.parts[0].head)

    def _adapt(self, part: BundlePart, X: np.ndarray, n_clips: int, decoding: dict | None) -> np.ndarray:
        """``X`` (transformed rows of the clips predicted together) aligned to the part's saved
        training statistics, as the run aligned its test clips; fewer than MIN_CLIPS rows: unchanged, with a warning."""
        if self.adapt == "none" or part.adapt is None:
            return X
        applied = len(X) >= MIN_CLIPS
        what = "+".join(part.sources)
        rank = None
        if applied:
            note = (f"--adapt {self.adapt} (transductive): the features of the {n_clips} clip(s) predicted together "
                    f"were aligned to the training statistics saved in the model" + (f" (part {what})" if len(self.parts) > 1 else ""))
            if self.adapt == "coral":  # the covariance step works in min(saved basis, rows - 1) dimensions
                frames = self.pooling.sequence_length
                rows = len(X) if not frames else \
                    int((~np.isnan(np.asarray(X).reshape(len(X) * frames, -1)).all(axis=1)).sum())
                basis = part.adapt.get("basis")
                rank = 0 if basis is None else int(min(np.shape(basis)[1], rows - 1))
                if rank < 2:
                    note += (f"; CORAL's covariance step needs at least 3 rows with data ({rows} here), so only the "
                             "mean and standard deviation were aligned")
        else:
            note = (f"--adapt {self.adapt} skipped" + (f" for part {what}" if len(self.parts) > 1 else "") +
                    f": {len(X)} row(s) of {n_clips} clip(s) predicted together, it needs at least {MIN_CLIPS} "
                    "(the statistics of the evaluated set); predicted without adaptation")
            warnings.warn(note, InputWarning, stacklevel=4)
            if decoding is not None:
                decoding.setdefault("warned", []).append(note)
        if decoding is not None:
            decoding.setdefault("adapt", {"mode": self.adapt, "parts": []})["parts"].append(
                {"sources": list(part.sources), "applied": applied, "rows": int(len(X)), "clips": int(n_clips),
                 **({"coral_rank": rank} if rank is not None else {})})
            decoding.setdefault("notes", []).append(note)
        return apply_stats(part.adapt, X, self.pooling.sequence_length, self.adapt_eps)

    def decode(self, out: np.ndarray, clip_ids: Sequence[str], groups: Mapping[str, Any] | None = None,
               decoding: dict | None = None, features: FeatureSet | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mask, target)`` of combined outputs: the global pair, or with per-actor thresholds
        each group of ``groups`` (clip -> actor) with its own shrunk pair. Clips without a group
        (all of them when ``groups`` is None) are clustered into identity groups on their
        ``features`` (the :class:`FeatureSet` they were predicted from, in ``clip_ids`` order)
        with the saved identity directions, as the run did with its test clips of unknown actor.
        A model without identity directions (or no ``features``): clips without a group keep the
        global pair, and with no ``groups`` at all the ``clip_ids`` are one group."""
        th = ActorThresholds(self.thresholds, self.threshold_shrink, self.identity_groups)
        if not th.active:
            return self.decoder().decode(out, self.params)
        shrunk = ("alpha/beta from its own predicted top-two probabilities, shrunk towards the global pair "
                  f"with n / (n + {th.shrink:g})")
        how = None
        if "q_alpha" not in self.params:
            note = ("per-actor thresholds: this head's decoder has no alpha/beta, so every clip was decoded with "
                    "the decoder's own parameters")
            g = None
        else:
            given = [None] * len(clip_ids) if groups is None else [groups.get(c) for c in clip_ids]
            given = [None if is_unknown_group(x) else x for x in given]
            unknown = sum(1 for x in given if x is None)
            named = len({str(x) for x in given if x is not None})
            what = [f"each of the {named} group(s) given"] if named else []
            if unknown and self.identity is not None and features is not None:
                g = th.resolve_groups(given, self.identity, lambda: identity_rows(
                    features, np.arange(len(features), dtype=np.int64), self.pooling.sequence_length))
                how = "clustered" if not named else "given+clustered"
                what.append(f"the {unknown} clip(s) {'predicted together' if groups is None else 'without a group'}, "
                            f"split into {th.identity[-1]['groups']} identity group(s) by clustering (groups found "
                            "on the training actors' identity directions saved in the model, --identity-groups "
                            f"{self.identity_groups})")
                note = f"per-actor thresholds (transductive): {' and '.join(what)}, each group decoded with {shrunk}"
            elif groups is None:
                g = ["all clips"] * len(clip_ids)
                how = "one group"
                why = ("this model has no saved identity directions to cluster them (saved before blemore kept them)"
                       if self.identity is None else "no features to cluster them were given")
                note = (f"per-actor thresholds (transductive): no groups given and {why}, so the {len(clip_ids)} "
                        f"clip(s) predicted together were one group: {shrunk}")
            else:
                g = given
                how = "given"
                note = (f"per-actor thresholds (transductive): each of the {named} group(s) given was decoded with "
                        f"{shrunk}" + (f"; {unknown} clip(s) without a group kept the global pair" if unknown else ""))
        mask, target = th.decode(self.decoder(), out, self.params, g)
        if decoding is not None:
            decoding["thresholds"] = {"mode": self.thresholds, "shrink": th.shrink, "groups": how,
                                      "pairs": th.log[-1] if th.log else {},
                                      **({"identity": th.identity[-1]} if th.identity else {})}
            decoding.setdefault("notes", []).append(note)
        return mask, target

    def predict(self, features: Any, clip_ids: Sequence[str] | None = None, *,
                groups: Mapping[str, Any] | None = None, missing: str = "impute") -> Predictions:
        """Predict clips from feature sources (a mapping name -> source/path, one source or a
        list, or a :class:`FeatureSet`). ``groups`` maps clip ids to actor/group ids for
        transforms that use them and for per-actor thresholds (see the module docstring: the
        clips predicted in one call are one evaluated set for ``--adapt``; clips without a group,
        all of them when ``groups`` is None, are split into identity groups by clustering).
        Missing clips are imputed by default (with a warning).
        ``Predictions.decoding`` says whether and how decoding was transductive."""
        skipped: dict[str, str] = {}
        if clip_ids is None and not isinstance(features, FeatureSet):
            features = dict(zip(self.source_names, self._sources(features)))
            clip_ids, skipped = self.coverage(list(features.values()))
            if not clip_ids:
                raise BundleError(_nothing_to_predict(skipped))
        fs = self._feature_set(features, clip_ids, missing)
        decoding: dict = {"transductive": self.transductive}
        out = self.outputs(fs, groups, decoding)
        mask, target = self.decode(out, list(fs.clip_ids), groups, decoding, features=fs)
        proba = self.parts[0].head.outputs_to_proba(out)
        return Predictions(list(fs.clip_ids), np.asarray(proba), mask, target, skipped=skipped, decoding=decoding)

    def extractors(self) -> tuple[list[str], dict[str, dict]]:
        """The extractor names and settings that made the model's feature sources (from their
        ``config.json``); raises :class:`BundleError` for sources made outside blemore."""
        names: list[str] = []
        settings: dict[str, dict] = {}
        for s in self.sources:
            cfg = s.get("config") or {}
            if not isinstance(cfg, Mapping) or not cfg.get("extractor"):
                raise BundleError(
                    f"the model's source {s['name']!r} has no extractor config (it was trained on a plain feature "
                    "folder), so media cannot be predicted with it: extract its features and pass the feature folder")
            if cfg["extractor"] not in names:
                names.append(cfg["extractor"])
            if cfg.get("settings"):
                settings[cfg["extractor"]] = dict(cfg["settings"])
        return names, settings

    def predict_media(self, paths: Sequence[str | os.PathLike], store: str | os.PathLike, *,
                      workers: int | None = None, progress: bool = True, groups: Mapping[str, Any] | None = None):
        """Extract the features the model needs from media files (or folders of them) into the
        store ``store`` with the model's extractors and settings, then predict (``groups``: as
        for :meth:`predict`).
        Returns ``(Predictions, {source name: FeatureSource})``."""
        names, settings = self.extractors()
        asked = list(find_media([str(p) for p in paths]))
        extract([str(p) for p in paths], store, extractors=names, workers=workers, settings=settings,
                progress=progress)
        st = open_store(store)
        sources = {s["name"]: st[s["config"]["extractor"]] for s in self.sources}
        ok, skipped = self.coverage([sources[n] for n in self.source_names], asked)
        if not ok:
            raise BundleError(_nothing_to_predict(skipped))
        pred = self.predict(sources, ok, missing="error", groups=groups)
        pred.skipped = skipped
        return pred, sources

    def timeline(self, arrays: Mapping[str, np.ndarray], window_s: float | None = None, hop_s: float | None = None,
                 rates: Mapping[str, float | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-window probabilities of one clip: ``(centres_s (W,), proba (W, 6))``.

        ``arrays`` maps each of the model's sources to the clip's ``(T, D)`` features; windows
        of ``window_s`` seconds every ``hop_s`` seconds are pooled like training clips (the
        7 statistics, or the window mean for windowed models) and predicted one by one. A
        source without a known rate is assumed to span the same duration as the others.
        By default the window is a quarter of the clip (at most 2 s) and the hop a quarter
        of the window. Windows are not clips: a model's ``--adapt`` is not applied to them.
        """
        rates = dict(rates or {})
        absent = [n for n in self.source_names if n not in arrays]
        if absent:
            raise BundleError(f"timeline needs features of {self.source_names}; missing {absent}")
        arrs = {n: np.asarray(arrays[n], dtype=np.float32) for n in self.source_names}
        for n, s in zip(self.source_names, self.sources):
            if rates.get(n) is None:
                cfg = s.get("config") or {}
                rates[n] = cfg.get("rate") if isinstance(cfg, Mapping) else None
        durations = [len(arrs[n]) / rates[n] for n in self.source_names if rates.get(n)]
        duration = max(durations) if durations else float(len(arrs[self.source_names[0]]))
        if not durations:  # no rate anywhere: one "second" per row of the first source
            rates = {n: len(arrs[n]) / duration for n in self.source_names}
        for n in self.source_names:
            if not rates.get(n):
                rates[n] = len(arrs[n]) / duration
        if window_s is None:
            window_s = min(2.0, duration / 4)
        window_s = min(window_s, duration)
        if hop_s is None:
            hop_s = window_s / 4
        if hop_s <= 0 or window_s <= 0:
            raise BundleError(f"window and hop must be positive, got {window_s} and {hop_s}")
        starts = np.arange(0.0, max(duration - window_s, 0.0) + 1e-9, hop_s)
        rows: dict[str, list[np.ndarray]] = {n: [] for n in self.source_names}
        for t0 in starts:
            for n in self.source_names:
                a, r = arrs[n], rates[n]
                i0 = int(np.floor(t0 * r))
                i1 = max(i0 + 1, int(np.ceil((t0 + window_s) * r)))
                seg = a[i0:min(i1, len(a))]
                if len(seg) == 0:
                    seg = a[-1:]
                if self.pooling.sequence_length:  # frame sequences: the segment on the head's time base
                    rows[n].append(replace(self.pooling, stride=None).apply(seg)[0])
                elif self.pooling.per_clip:
                    rows[n].append(pool_stats(seg, self.pooling.stats))
                else:
                    w = windows(seg, self.pooling.window, self.pooling.stride)
                    rows[n].append(np.nanmean(w, axis=0) if len(w) > 1 else w[0])
        outs = []
        for p in self.parts:
            X = self.pooling.join([np.stack(rows[n]) for n in p.sources])
            ids = [f"w{i}" for i in range(len(X))]
            X = p.chain.transform(X, clip_ids=ids, groups=None)
            outs.append(p.head.predict_outputs(X, None))
        out = self.fusion.combine(outs, self.fusion_weights, self.parts[0].head)
        return starts + window_s / 2, np.asarray(self.parts[0].head.outputs_to_proba(out))
