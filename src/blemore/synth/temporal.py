"""A *temporal* synthetic BLEMORE corpus: per-frame features where emotions are short events.

:func:`generate_temporal_corpus` writes the same layout as
:func:`blemore.synth.features.generate_feature_corpus` (one blemore store folder per source,
``<clip_id>.npy`` float32 ``(T, D)``, ``train_metadata.csv`` with actor-disjoint folds,
``test_metadata.csv``), so every feature reader (``--features DIR/video``) loads it. What differs
is where the emotion lives:

* **Identity-dominated background.** Every frame carries the actor's identity offset (inside and
  outside the expression latent space) plus a slow drift and frame noise; it is most of the
  variance, as on the real features.
* **Emotions are short events at random times.** A single-emotion clip holds one event of
  ``event`` frames (about 6-14 by default) placed at a random time: a raised-cosine bump of the
  emotion's latent prototype (plus the actor's idiosyncrasy, scaled by the actor's
  expressivity and the clip's intensity). Between events the clip is background only, so the
  longer the clip, the more the event is diluted in clip statistics (mean, percentiles).
* **Blends are two events** at independent random times (they may overlap or not), whose
  durations *and* intensities follow the saliences: the 70 % emotion's event is longer and
  stronger than the 30 % one (duration and amplitude scale with ``0.4 + 1.2 * s``).
* **Uninformative modality.** For a random share ``dropout`` of clips (default 0.3), one source
  chosen at random carries no event at all (background only): a per-sample source selector can
  ignore it, a fixed-weight fusion cannot. The metadata's extra ``muted`` column names that
  source (empty when none), the known answer for checking a gate; the runner ignores it, like
  every column it does not know.
* **Variable lengths** (``frames=(min, max)``, default 60-140 frames) and **no-face NaN runs**
  (all-NaN frames) in a share ``nan_rate`` of clips of face-like sources (names containing
  ``video``/``face``).
* **Per-actor expressivity** (log-normal gain, ``expressivity`` its spread) moves every
  actor's margins up or down, which favours per-actor thresholds; a **test-set shift** (a
  fixed per-source offset and scale on every test clip, ``shift``) favours train-to-test
  feature adaptation.

Which method each part favours (the known answer): the short events at random times and the
long variable lengths favour order-aware heads that attend to a few frames (``attn-pool``,
``bigru-attn``, ``transformer``) over clip statistics (``mlp-512`` on pooled stats), which
average the event with the background; the uninformative modality favours per-sample source
selection (``--fusion gated``) over early or fixed-weight late fusion; the identity background
favours per-actor normalisation (``--transforms actor-norm``); expressivity favours per-actor
thresholds; the test shift favours ``--adapt``.

Everything is deterministic for a ``seed``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from blemore._io import atomic_write_text
from blemore.labels import EMOTIONS, NEUTRAL
from blemore.store import ManifestRow
from blemore.synth import SynthError
from blemore.synth.features import (
    SynthFeatureCorpus,
    _finish_corpus,
    _nan_run,
    _open_writers,
    _plan_clips,
    _split_counts,
    _stable_seed,
    _with_progress,
)

__all__ = ["generate_temporal_corpus", "event_shape"]

_INTENSITY = {1: 0.6, 2: 0.75, 3: 0.9, 4: 1.0}


def event_shape(n: int) -> np.ndarray:
    """A raised-cosine bump of ``n`` frames (peak 1, both ends above 0)."""
    n = max(1, int(n))
    return (0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(n) + 1) / (n + 1))).astype(np.float64)


class _TSource:
    def __init__(self, name: str, dim: int, latent: int, rng: np.random.Generator):
        self.name, self.dim, self.latent = name, dim, latent
        self.mix = rng.standard_normal((latent, dim)) / np.sqrt(latent)
        self.id_mix = rng.standard_normal((latent, dim)) / np.sqrt(latent)
        proto = rng.standard_normal((len(EMOTIONS), latent))
        proto /= np.linalg.norm(proto, axis=1, keepdims=True) / np.sqrt(latent)
        proto[EMOTIONS.index(NEUTRAL)] *= 0.5
        self.proto = proto
        self.reliability = rng.uniform(0.7, 1.2, size=len(EMOTIONS))
        self.face_like = any(k in name.lower() for k in ("video", "face", "vis"))
        self.test_offset = rng.standard_normal(dim)
        self.test_scale = np.exp(rng.normal(0.0, 0.2, size=dim))


def generate_temporal_corpus(
    out: str | Path,
    *,
    n_train_actors: int = 43,
    n_test_actors: int = 15,
    n_train_clips: int | None = 2456,
    n_test_clips: int | None = 594,
    sources: Sequence[str] = ("video", "audio"),
    dim: int = 1024,
    latent: int = 16,
    frames: tuple[int, int] = (60, 140),
    event: tuple[int, int] = (6, 14),
    rate: float = 25.0,
    signal: float = 1.0,
    actor_scale: float = 1.0,
    noise: float = 1.0,
    expressivity: float = 0.35,
    dropout: float = 0.3,
    nan_rate: float = 0.15,
    shift: float = 0.5,
    folds: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> SynthFeatureCorpus:
    """Write a temporal synthetic corpus (see the module docstring) and return its paths.

    ``frames`` (min, max) clip lengths; ``event`` (min, max) event length in frames at salience
    1 (a blend's events scale with ``0.4 + 1.2 * salience``); ``dropout`` the share of clips with
    one uninformative source; ``shift`` the strength of the test-set feature shift (0: none).
    """
    out = Path(out)
    problems = []
    if not sources:
        problems.append("at least one source name is needed")
    if len(set(sources)) != len(sources):
        problems.append(f"source names must be unique, got {list(sources)}")
    if frames[0] < 2 or frames[1] < frames[0]:
        problems.append(f"frames must be (min, max) with 2 <= min <= max, got {tuple(frames)}")
    if event[0] < 1 or event[1] < event[0]:
        problems.append(f"event must be (min, max) with 1 <= min <= max, got {tuple(event)}")
    if not 0.0 <= dropout <= 1.0:
        problems.append(f"dropout must be in [0, 1], got {dropout}")
    if not 0.0 <= nan_rate <= 1.0:
        problems.append(f"nan_rate must be in [0, 1], got {nan_rate}")
    if n_train_actors < folds:
        problems.append(f"{n_train_actors} training actors cannot fill {folds} actor-disjoint folds")
    if dim < 1 or latent < 1:
        problems.append(f"dim and latent must be >= 1, got {dim} and {latent}")
    for what, total, n in (("training", n_train_clips, n_train_actors), ("test", n_test_clips, n_test_actors)):
        if total is not None and n > 0 and total < 36 * n:
            problems.append(f"{total} {what} clips cannot give each of {n} actors all 36 targets (need >= {36 * n})")
    if problems:
        raise SynthError("temporal synthetic corpus: " + "; ".join(problems))
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def per_actor(total: int | None, n: int) -> list[int]:
        if n == 0:
            return []
        return [54] * n if total is None else _split_counts(total, n)

    counts = per_actor(n_train_clips, n_train_actors) + per_actor(n_test_clips, n_test_actors)
    actors, rows = _plan_clips(rng, n_train_actors, n_test_actors, counts)

    srcs = {name: _TSource(name, dim, latent, np.random.default_rng(rng.integers(2**63))) for name in sources}
    actor_par = {}
    for a in actors:
        r = np.random.default_rng(rng.integers(2**63))
        actor_par[a] = {
            "gain": float(np.exp(r.normal(0.0, expressivity))),
            "rest": r.standard_normal(latent) * 1.5,
            "ident": r.standard_normal(latent) * 1.5,
            "idio": r.standard_normal((len(EMOTIONS), latent)) * 0.4,
        }
    settings = dict(kind="temporal", n_train_actors=n_train_actors, n_test_actors=n_test_actors, dim=dim,
                    latent=latent, frames=list(frames), event=list(event), rate=rate, signal=signal,
                    actor_scale=actor_scale, noise=noise, expressivity=expressivity, dropout=dropout,
                    nan_rate=nan_rate, shift=shift, seed=seed)
    writers = _open_writers(out, srcs, "synth-temporal-1", settings, dim, rate)
    it = _with_progress(rows, progress, "synth temporal features")
    names = list(sources)
    muted: dict[str, str] = {}
    try:
        for cid, a, sp, lab, lvl, _g in it:
            r = np.random.default_rng(_stable_seed(seed, cid))
            ap = actor_par[a]
            intensity = _INTENSITY[lvl] if not lab.is_blend else float(r.uniform(0.8, 1.0))
            t = int(r.integers(frames[0], frames[1] + 1))
            # the events: (class, salience, start, length), shared by every source of the clip
            evs = []
            for e, s in zip(lab.emotions, lab.saliences):
                s = s / 100.0
                scale = 1.0 if not lab.is_blend else 0.4 + 1.2 * s
                n = max(1, min(t, int(round(r.integers(event[0], event[1] + 1) * scale))))
                evs.append((EMOTIONS.index(e), s, int(r.integers(0, t - n + 1)), n, scale))
            mute = names[int(r.integers(len(names)))] if r.random() < dropout else None
            muted[cid] = mute or ""
            drift = np.cumsum(r.standard_normal((t, latent)), axis=0) / np.sqrt(max(t, 1)) * 0.5
            for name in names:
                src = srcs[name]
                lat = np.zeros((t, latent))
                if name != mute:
                    for k, _s, start, n, scale in evs:
                        vec = src.proto[k] + ap["idio"][k]
                        amp = 1.6 * signal * ap["gain"] * intensity * src.reliability[k] * scale
                        lat[start:start + n] += event_shape(n)[:, None] * vec[None, :] * amp
                lat += noise * (0.4 * drift + 0.3 * r.standard_normal((t, latent)))
                lat += actor_scale * ap["rest"][None, :]
                x = lat @ src.mix + (actor_scale * ap["ident"]) @ src.id_mix
                x = x + 0.5 * noise * r.standard_normal((t, dim))
                if sp == "test" and shift:
                    x = x * (1.0 + shift * (src.test_scale - 1.0)) + shift * src.test_offset
                x = x.astype(np.float32)
                if src.face_like and r.random() < nan_rate and t > 4:
                    _nan_run(x, r, 4)
                writers[name].write(ManifestRow(cid, f"{cid}.synth", "ok", frames=t, seconds=t / rate), x)
    finally:
        for w in writers.values():
            w.close()

    corpus = _finish_corpus(out, rows, sources, folds, seed, settings)
    for csv in (corpus.train_metadata, corpus.test_metadata):  # + the muted source of each clip
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        df["muted"] = [muted[c] for c in df["filename"]]
        atomic_write_text(csv, df.to_csv(index=False))
    return corpus
