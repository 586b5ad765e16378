"""A media-level synthetic BLEMORE corpus: video clips with a voice track and a known answer.

:func:`generate_media_corpus` writes, under ``out``::

    <out>/train/<clip_id>.mov     training clips (H.264 video + AAC audio at 16 kHz)
    <out>/test/<clip_id>.mov      held-out actors' clips (or test_0001.mov ... when anonymised)
    <out>/train_metadata.csv      official layout, actor-disjoint folds 0..k-1, gender-balanced
    <out>/test_metadata.csv       held-out actors, labelled (empty labels when anonymised)
    <out>/test_answers.csv        only when anonymised: the labels of test_0001 ...
    <out>/synth.json              the configuration, the actors and the generator version

Every actor performs every one of the 36 targets (the five emotions at ``intensities``
intensity levels, neutral in as many situations, and the 10 pairs at 30/70, 50/50, 70/30),
named by the BLEMORE clip-id grammar.

* **Face** (:mod:`blemore.synth.face`): a real portrait deformed by action-unit displacement
  fields placed on MediaPipe FaceMesh landmarks, the emotions' AU sets mixed by salience, with an
  onset-apex-offset time course; actors differ by identity warps, colour, lighting, size,
  background, mirror image, head motion and expressivity.
* **Voice** (:mod:`blemore.synth.voice`): non-verbal vocalisations synthesised from per-emotion
  prosodic and spectral parameters, blends alternating the two emotions in proportion to their
  saliences, with actor voice traits.
* **Difficulty** (0..1, or ``easy`` / ``medium`` / ``hard``) scales actor variation, clip
  noise (idle facial movements, stray action units, parameter noise, image and audio noise)
  and lowers the expression amplitude, so that the default corpus is neither trivial nor
  hopeless.
* **No signal** (``signal=False``): each actor's clips are rendered from a random permutation
  of that actor's labels, so a clip's content is unrelated to its name: any model must score
  at chance on held-out actors.

Everything is deterministic for a ``seed`` (each clip has its own seed, so the worker count
does not change the output).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from blemore.labels import EMOTIONS, NEUTRAL, TARGETS, Label, format_clip_id
from blemore.synth import SynthError
from blemore.synth import face as _face
from blemore.synth import voice as _voice
from blemore.media import write_video
from blemore import dataset
from blemore._io import atomic_write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "DIFFICULTY_LEVELS",
    "SynthConfig",
    "SynthActor",
    "SynthClip",
    "MediaCorpus",
    "parse_difficulty",
    "plan_corpus",
    "render_clip",
    "generate_media_corpus",
]

GENERATOR_VERSION = 1

DIFFICULTY_LEVELS: dict[str, float] = {"easy": 0.2, "medium": 0.45, "hard": 0.75}
"""Named difficulties (the default is ``medium``)."""

INTENSITY_AMPLITUDE: dict[int, float] = {1: 0.6, 2: 0.75, 3: 0.9, 4: 1.05}
"""Expression amplitude of intensity levels int1..int4 (before the actor's expressivity)."""

BLEND_GAIN = 1.2
"""A blend's emotions are rendered at ``BLEND_GAIN * salience`` of a single emotion's amplitude."""

FORMATS = ("mov", "mp4")


def parse_difficulty(value: float | str) -> float:
    """A difficulty in 0..1 from a number or a name in :data:`DIFFICULTY_LEVELS`."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in DIFFICULTY_LEVELS:
            return DIFFICULTY_LEVELS[v]
        try:
            value = float(v)
        except ValueError:
            raise SynthError(f"difficulty {value!r} is neither a number in 0..1 nor one of "
                             f"{', '.join(DIFFICULTY_LEVELS)}") from None
    d = float(value)
    if not 0.0 <= d <= 1.0:
        raise SynthError(f"difficulty must be in 0..1, got {d}")
    return d


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``actors``: training actors (at least ``folds``); ``test_actors``:
    held-out actors (0 for none); ``size``: frame (width, height); ``duration``: seconds per
    clip; ``fps``: frames per second; ``intensities``: intensity levels (and neutral
    situations) per emotion per actor (1..4; 1 gives 36 clips per actor, 4 gives 54);
    ``anonymise_test``: name test clips ``test_0001`` ... and write the labels to
    ``test_answers.csv`` only; ``signal``: False for the no-signal control."""

    actors: int = 10
    test_actors: int = 3
    folds: int = 5
    seed: int = 0
    difficulty: float = DIFFICULTY_LEVELS["medium"]
    size: tuple[int, int] = (192, 192)
    duration: float = 2.0
    fps: float = 12.0
    format: str = "mov"
    intensities: int = 1
    signal: bool = True
    anonymise_test: bool = False
    sample_rate: int = _voice.SAMPLE_RATE

    def __post_init__(self) -> None:
        problems = []
        if self.folds < 2:
            problems.append(f"folds must be at least 2, got {self.folds}")
        if self.actors < self.folds:
            problems.append(f"{self.actors} training actors cannot fill {self.folds} actor-disjoint folds "
                            f"(need --actors >= {self.folds})")
        if self.test_actors < 0:
            problems.append(f"test_actors must be >= 0, got {self.test_actors}")
        if self.actors + self.test_actors > 900:
            problems.append(f"at most 900 actors (ids A100..A999), got {self.actors + self.test_actors}")
        if not 0.0 <= float(self.difficulty) <= 1.0:
            problems.append(f"difficulty must be in 0..1, got {self.difficulty}")
        w, h = self.size
        if w < 96 or h < 96 or w % 2 or h % 2:
            problems.append(f"size must be even and at least 96x96, got {w}x{h}")
        if not 0.5 <= self.duration <= 30:
            problems.append(f"duration must be 0.5..30 s, got {self.duration}")
        if not 2 <= self.fps <= 60:
            problems.append(f"fps must be 2..60, got {self.fps}")
        if self.format not in FORMATS:
            problems.append(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 1 <= self.intensities <= 4:
            problems.append(f"intensities must be 1..4, got {self.intensities}")
        if problems:
            raise SynthError("invalid synthetic corpus configuration:\n  " + "\n  ".join(problems))

    @property
    def frames(self) -> int:
        return max(2, int(round(self.duration * self.fps)))


@dataclass(frozen=True)
class SynthActor:
    """One synthetic actor: id (``A123``), gender (``f``/``m``), split, and their traits."""

    actor_id: str
    gender: str
    split: str
    face: _face.FaceIdentity
    voice: _voice.VoiceIdentity


@dataclass(frozen=True)
class SynthClip:
    """One clip to render. ``clip_id`` is its file name stem (the grammar id, or ``test_NNNN``);
    ``label`` the label it is filed under; ``content`` the label its face and voice express
    (the same unless the corpus has no signal); ``level`` the intensity / situation."""

    clip_id: str
    grammar_id: str
    actor: str
    split: str
    label: Label
    content: Label
    level: int
    seed: int

    def relpath(self, fmt: str) -> str:
        return f"{self.split}/{self.clip_id}.{fmt}"


def _stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def _actor_plan(rng: np.random.Generator, intensities: int) -> list[tuple[Label, int]]:
    """``(label, level)`` for one actor: every target; singles at ``intensities`` distinct levels."""
    plan: list[tuple[Label, int]] = []
    for t in TARGETS:
        if t.is_blend:
            plan.append((t, 1))
        else:
            levels = sorted(rng.choice(np.arange(1, 5), size=intensities, replace=False).tolist())
            plan += [(t, int(lv)) for lv in levels]
    return plan


def plan_corpus(config: SynthConfig) -> tuple[list[SynthActor], list[SynthClip]]:
    """The actors and clips of a corpus (no rendering). Deterministic for ``config``."""
    rng = np.random.default_rng(_stable_seed("actors", config.seed))
    n = config.actors + config.test_actors
    ids = sorted(rng.choice(np.arange(100, 1000), size=n, replace=False).tolist())
    order = rng.permutation(n)  # which ids are held out
    test_idx = set(order[: config.test_actors].tolist())
    d = float(config.difficulty)
    actors: list[SynthActor] = []
    for split in ("train", "test"):
        members = [i for i in range(n) if (i in test_idx) == (split == "test")]
        genders = (["f", "m"] * len(members))[: len(members)]
        rng.shuffle(genders)
        for i, g in zip(members, genders):
            arng = np.random.default_rng(_stable_seed("actor", config.seed, ids[i]))
            actors.append(SynthActor(
                actor_id=f"A{ids[i]}",
                gender=g,
                split=split,
                face=_face.draw_identity(arng, d),
                voice=_voice.draw_voice(arng, g, d, noise=d),
            ))
    clips: list[SynthClip] = []
    for a in actors:
        prng = np.random.default_rng(_stable_seed("plan", config.seed, a.actor_id))
        plan = _actor_plan(prng, config.intensities)
        contents = [lab for lab, _ in plan]
        if not config.signal:
            contents = [contents[j] for j in prng.permutation(len(contents))]
        for (lab, level), content in zip(plan, contents):
            gid = format_clip_id(a.actor_id, lab, level=level, version=1)
            clips.append(SynthClip(gid, gid, a.actor_id, a.split, lab, content, level,
                                   _stable_seed("clip", config.seed, gid)))
    if config.anonymise_test:
        test = [c for c in clips if c.split == "test"]
        perm = np.random.default_rng(_stable_seed("anon", config.seed)).permutation(len(test))
        names = {test[j].grammar_id: f"test_{k + 1:04d}" for k, j in enumerate(perm)}
        clips = [c if c.split != "test" else SynthClip(names[c.grammar_id], c.grammar_id, c.actor, c.split,
                                                        c.label, c.content, c.level, c.seed)
                 for c in clips]
    return actors, clips


# -- rendering ------------------------------------------------------------------------------------
def _envelope(t: np.ndarray, onset: float, apex: float, offset: float, end: float) -> np.ndarray:
    """Onset-apex-offset time course in 0..1 (smoothstep ramps)."""

    def ramp(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0.0, 1.0)
        return x * x * (3 - 2 * x)

    up = ramp((t - onset) / max(apex - onset, 1e-6))
    down = 1 - ramp((t - offset) / max(end - offset, 1e-6))
    return up * down


def _smooth(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(n,) smooth unit-scale noise with about ``k`` knots over the clip."""
    knots = rng.normal(0, 1, k + 2)
    return np.interp(np.linspace(0, k + 1, n), np.arange(k + 2), knots)


def _face_weights(clip: SynthClip, actor: SynthActor, cfg: SynthConfig, rng: np.random.Generator,
                  env: np.ndarray) -> np.ndarray:
    """(T, A) AU activations of a clip."""
    au_of = _face.emotion_au_matrix()
    d = float(cfg.difficulty)
    lab = clip.content
    amp = INTENSITY_AMPLITUDE[clip.level] if not lab.is_blend else 1.0
    amp *= actor.face.expressivity * (1.0 - 0.25 * d) * math.exp(rng.normal(0, 0.05 + 0.15 * d))
    emo = np.zeros(len(EMOTIONS), np.float32)
    for e, s in zip(lab.emotions, lab.saliences):
        if e != NEUTRAL:
            emo[EMOTIONS.index(e)] = amp * (BLEND_GAIN * s / 100.0 if lab.is_blend else 1.0)
    w = env[:, None] * (emo @ au_of)[None, :]
    t = len(env)
    # idle facial activity: every AU drifts a little; plus a stray emotion at a low level
    idle = 0.04 + 0.22 * d
    w += idle * np.abs(np.stack([_smooth(rng, t, 3) for _ in _face.AU_NAMES], 1)) * 0.6
    stray = rng.integers(0, len(EMOTIONS) - 1)  # any emotion but neutral
    stray_env = _envelope(np.linspace(0, 1, t), *sorted(rng.uniform(0, 1, 3)), 1.0)
    w += (0.05 + 0.3 * d) * rng.uniform(0, 1) * stray_env[:, None] * au_of[stray][None, :]
    return w.astype(np.float32)


def _pose(actor: SynthActor, cfg: SynthConfig, rng: np.random.Generator, t: int) -> np.ndarray:
    """(T, 4) roll (deg), dx, dy (frame fractions), log-scale: smooth head motion."""
    m = actor.face.motion * (0.5 + float(cfg.difficulty))
    k = max(2, int(cfg.duration * 1.5))
    return np.stack([
        1.5 * m * _smooth(rng, t, k),
        0.012 * m * _smooth(rng, t, k),
        0.008 * m * _smooth(rng, t, k),
        0.015 * m * _smooth(rng, t, k),
    ], 1).astype(np.float32)


_RIGS: dict[int, _face.FaceRig] = {}


def _rig(size: int) -> _face.FaceRig:
    if size not in _RIGS:
        _RIGS[size] = _face.FaceRig(size)
    return _RIGS[size]


def render_clip(clip: SynthClip, actor: SynthActor, config: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Render one clip: ``(frames (T, H, W, 3) uint8 RGB, audio (n,) float32 at config.sample_rate)``."""
    rng = np.random.default_rng(clip.seed)
    dur, t = float(config.duration), config.frames
    d = float(config.difficulty)
    # shared time course: onset, apex, offset, end (fractions of the clip)
    onset = rng.uniform(0.03, 0.2)
    apex = onset + rng.uniform(0.15, 0.3)
    offset = rng.uniform(max(apex + 0.15, 0.6), 0.88)
    times = (np.arange(t) + 0.5) / t
    env = _envelope(times, onset, apex, offset, min(1.0, offset + 0.25))
    w, h = config.size
    rig = _rig(min(w, h))
    au = _face_weights(clip, actor, config, rng, env)
    pose = _pose(actor, config, rng, t)
    frames = rig.render(au, actor.face, pose, (w, h), noise=1.0 + 4.0 * d, rng=rng)
    lab = clip.content
    level_amp = INTENSITY_AMPLITUDE[clip.level] if not lab.is_blend else 1.0
    audio = _voice.synthesize(
        lab.emotions, tuple(float(s) for s in lab.saliences), actor.voice, dur, rng,
        active=(max(0.0, onset + 0.02), min(1.0, offset + 0.12)),
        intensity=min(1.0, level_amp) * (1.0 - 0.2 * d),
        variation=d, mix=0.25, sr=config.sample_rate,
    )
    return frames, audio


# -- writing ---------------------------------------------------------------------------------------
@dataclass
class MediaCorpus:
    """A generated corpus: where its files are and what it holds."""

    root: Path
    train_metadata: Path
    test_metadata: Path | None
    answers: Path | None
    table: "pd.DataFrame"  # clip table (blemore.dataset columns, plus gender) of every clip
    actors: list[SynthActor]
    config: SynthConfig
    seconds: float = 0.0
    written: int = 0
    skipped: int = 0

    @property
    def train_dir(self) -> Path:
        return self.root / "train"

    @property
    def test_dir(self) -> Path:
        return self.root / "test"


def _write_clip(path: Path, frames: np.ndarray, audio: np.ndarray, fps: float, sr: int) -> None:
    write_video(path, frames, fps=fps, audio=audio, sr=sr)


_WORKER: dict = {}


def _single_threaded() -> None:
    """One thread per worker for BLAS and OpenCV: a multi-threaded BLAS makes the small per-frame
    products several times slower when the workers already fill the cores."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover
        pass


def _init_worker(config: SynthConfig, actors: list[SynthActor], root: str, limit_threads: bool = True) -> None:
    if limit_threads:
        _single_threaded()
    _WORKER["config"] = config
    _WORKER["actors"] = {a.actor_id: a for a in actors}
    _WORKER["root"] = Path(root)


def _work(clip: SynthClip) -> str:
    cfg: SynthConfig = _WORKER["config"]
    actor = _WORKER["actors"][clip.actor]
    frames, audio = render_clip(clip, actor, cfg)
    _write_clip(_WORKER["root"] / clip.relpath(cfg.format), frames, audio, cfg.fps, cfg.sample_rate)
    return clip.clip_id


def _config_json(config: SynthConfig, actors: Sequence[SynthActor]) -> str:
    return json.dumps({
        "generator": "blemore.synth.media",
        "version": GENERATOR_VERSION,
        "config": asdict(config),
        "actors": [{"actor": a.actor_id, "gender": a.gender, "split": a.split,
                    "face": asdict(a.face), "voice": asdict(a.voice)} for a in actors],
    }, indent=2)


def generate_media_corpus(
    out: str | os.PathLike,
    config: SynthConfig | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    **overrides,
) -> MediaCorpus:
    """Generate a corpus under ``out`` (see the module docstring) and return where it is.

    ``config`` (or keyword ``overrides`` of :class:`SynthConfig` fields, e.g. ``actors=6``);
    ``workers``: processes (default: all cores; 1 renders in this process); an existing
    clip file is kept unless ``overwrite`` (so an interrupted run resumes), but only when the
    folder's ``synth.json`` describes the same corpus.
    """
    import multiprocessing as mp

    from tqdm.auto import tqdm

    if config is None:
        config = SynthConfig(**overrides)
    elif overrides:
        from dataclasses import replace

        config = replace(config, **overrides)
    root = Path(out)
    t0 = time.perf_counter()
    actors, clips = plan_corpus(config)
    meta = root / "synth.json"
    text = _config_json(config, actors)
    if meta.exists() and not overwrite:
        old = meta.read_text(encoding="utf-8")
        if old != text:
            raise FileExistsError(
                f"{root} already holds a different synthetic corpus (its synth.json differs); "
                "choose another folder or pass overwrite=True (--overwrite)")
    for split in ("train", "test"):
        if any(c.split == split for c in clips):
            (root / split).mkdir(parents=True, exist_ok=True)
    atomic_write_text(meta, text)
    # the base face (and its MediaPipe landmarks) once, here, before any worker needs it
    _face.base_face()
    todo = [c for c in clips if overwrite or not (root / c.relpath(config.format)).exists()]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(total=len(todo), unit="clip", desc="synth media", disable=not progress)
    try:
        if n_workers == 1 or len(todo) <= 2:
            from contextlib import nullcontext

            try:
                from threadpoolctl import threadpool_limits
                limits = threadpool_limits(1)
            except Exception:  # pragma: no cover - threadpoolctl comes with scikit-learn
                limits = nullcontext()
            _init_worker(config, actors, str(root), limit_threads=False)
            with limits:
                for c in todo:
                    _work(c)
                    bar.update(1)
        else:
            ctx = mp.get_context("spawn")
            with ctx.Pool(n_workers, initializer=_init_worker, initargs=(config, actors, str(root))) as pool:
                for _ in pool.imap_unordered(_work, todo, chunksize=2):
                    bar.update(1)
    finally:
        bar.close()

    table = dataset.clip_table(
        [c.clip_id for c in clips],
        labels=[c.label for c in clips],
        actors=[c.actor for c in clips],
        split=[c.split for c in clips],
        paths=[str(root / c.relpath(config.format)) for c in clips],
        gender=[{a.actor_id: a.gender for a in actors}[c.actor] for c in clips],
    )
    table = dataset.make_folds(table, k=config.folds, seed=config.seed, gender_column="gender")
    train = table[table["split"] == "train"]
    test = table[table["split"] == "test"]
    train_csv = dataset.write_metadata(train, root / "train_metadata.csv")
    test_csv = answers = None
    if len(test):
        if config.anonymise_test:
            test = test.sort_values("clip_id", kind="stable")
            hidden = test.copy()
            hidden["actor"] = None
            hidden["gender"] = None
            test_csv = dataset.write_metadata(hidden, root / "test_metadata.csv", labels=False)
            answers = dataset.write_metadata(test, root / "test_answers.csv")
        else:
            test_csv = dataset.write_metadata(test, root / "test_metadata.csv")
    return MediaCorpus(root=root, train_metadata=train_csv, test_metadata=test_csv, answers=answers,
                       table=table, actors=actors, config=config, seconds=time.perf_counter() - t0,
                       written=len(todo), skipped=len(clips) - len(todo))
