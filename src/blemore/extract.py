"""The extraction runner: media files in, a resumable feature store out.

::

    from blemore.extract import extract
    summary = extract(["clips/"], "STORE", ["face-mesh", "face-expression", "egemaps"], workers=2)
    print(summary.format())

For every clip (clip id = file name without extension, :func:`blemore.labels.clip_id_from_path`)
and every extractor, the features land in ``STORE/<extractor>/`` (see :mod:`blemore.store`).
Clips already in a folder's manifest are skipped; ``failed`` ones are retried only with
``retry_failed``. A folder made with another config is refused (:class:`~blemore.store.ConfigMismatchError`)
unless ``overwrite``. Face extractors with the same frame rate / size / tracker settings share one
decoding + MediaPipe pass per clip (:func:`blemore.extractors._face.run_face_pass`); in that case
each one's ``time_s`` in the manifest is the time of the shared pass.

Work runs on an engine (:mod:`blemore.engines`): by default ``workers`` local processes
(default: all cores), or a Ray cluster (``engine="ray"``); each worker loads its models once;
the main process does all writing, so a killed run loses at most the clips in flight. If a
worker process dies (a crash in native code, out of memory), the clips it held are retried
once, one at a time on a fresh worker, then recorded as ``failed``; the run goes on. One run per store at a time (a lock file
guards each extractor folder).
"""
from __future__ import annotations

import dataclasses
import os
import time
import shutil
import sys
import tempfile
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from blemore.engines import WORKER_DIED, Engine, create_engine
from blemore.errors import BlemoreError
from blemore.extractors.base import Extractor, ExtractResult, get_extractor_class
from blemore.labels import clip_id_from_path
from blemore.media import MEDIA_EXTENSIONS
from blemore.store import ManifestRow, StoreWriter
from blemore.validate import SettingsError, coerce_settings
from blemore.extractors._face import FaceExtractor, run_face_pass

__all__ = [
    "DEFAULT_EXTRACTORS",
    "ExtractError",
    "ExtractorUnavailableError",
    "ExtractorTally",
    "ExtractionSummary",
    "find_media",
    "build_extractors",
    "extract",
]

DEFAULT_EXTRACTORS = ("face-mesh", "face-expression", "egemaps")

from blemore.extractors.base import ExtractorUnavailableError  # noqa: E402  (one class for the whole package)


class ExtractError(BlemoreError, ValueError):
    """The inputs or the extractor selection of an extraction run cannot be used."""


# ----------------------------------------------------------------------------- inputs
def find_media(inputs: Iterable[str | Path], extensions: Sequence[str] = MEDIA_EXTENSIONS) -> dict[str, Path]:
    """``{clip_id: path}`` for media files given directly or found (recursively) in folders.

    Files named directly are taken whatever their extension; in folders only ``extensions``
    count (hidden files are skipped). Two files with the same clip id are an error.
    """
    found: dict[str, list[Path]] = {}
    exts = {e.lower() for e in extensions}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            files = [p]
        else:
            raise FileNotFoundError(f"input {str(p)!r} is neither a media file nor a folder")
        for f in files:
            found.setdefault(clip_id_from_path(f), []).append(f)
    dups = {cid: ps for cid, ps in found.items() if len(set(map(os.path.realpath, ps))) > 1}
    if dups:
        lines = "; ".join(f"{cid}: {', '.join(map(str, ps[:3]))}" for cid, ps in list(dups.items())[:5])
        raise ExtractError(f"{len(dups)} clip id(s) come from more than one file ({lines}); "
                           "clip ids are file names without extension and must be unique")
    return {cid: ps[0] for cid, ps in sorted(found.items())}


def build_extractors(names: Sequence[str], fps: float | None = None,
                     settings: Mapping[str, Mapping[str, Any]] | None = None) -> list[Extractor]:
    """Instantiate extractors by name. ``fps`` goes to every extractor whose config has an
    ``fps`` field; ``settings`` maps an extractor name to config overrides."""
    settings = dict(settings or {})
    unknown = set(settings) - set(names)
    if unknown:
        raise ExtractError(f"settings given for extractors not selected: {sorted(unknown)}")
    if len(set(names)) != len(names):
        raise ExtractError(f"extractor listed twice in {list(names)}")
    out = []
    for name in names:
        cls = get_extractor_class(name)
        over = dict(settings.get(name, {}))
        field_names = {f.name for f in dataclasses.fields(cls.config_class)}
        bad = set(over) - field_names
        if bad:
            raise ExtractError(f"{name}: unknown setting(s) {sorted(bad)}; known: {sorted(field_names)}")
        if fps is not None and "fps" in field_names:
            over.setdefault("fps", float(fps))
        # typed: face-mesh.landmarks=maybe is an error, "false" is False, "3" for an int is 3
        over = coerce_settings(cls.config_class, over, owner=name)
        try:
            out.append(cls(**over))
        except SettingsError as e:  # a value of the right type but out of range: name the extractor
            raise SettingsError(f"extractor {name}: {e}") from None
    return out


def _on_accelerator(e: Extractor) -> bool:
    device = str(getattr(e.config, "device", "cpu") or "cpu")
    if device == "auto":
        try:
            import torch

            return bool(torch.cuda.is_available())
        except Exception:  # pragma: no cover - torch missing
            return False
    return device.startswith(("cuda", "mps"))


def _check_available(e: Extractor) -> None:
    # An instance may check its own configured weights (e.g. --weights DIR); the class method
    # answers for the default weights only.
    ready = getattr(e, "weights_ready", None)
    if ready() if callable(ready) else type(e).weights_available():
        return
    try:
        e.load()  # fails fast with the reason, or fetches weights that can be downloaded
    except Exception as err:
        raise ExtractorUnavailableError(f"extractor {e.name!r} cannot run here: {err}") from err


# ----------------------------------------------------------------------------- workers
_W: dict[str, Extractor] = {}
_W_ERR: dict[str, str] = {}


def _spec(e: Extractor) -> tuple[str, dict]:
    return e.name, dataclasses.asdict(e.config)


def _init_worker(specs: Sequence[tuple[str, dict]], threads: int | None = None) -> None:
    """Build and load every extractor once in this process."""
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
    _W.clear()
    _W_ERR.clear()
    for name, cfg in specs:
        try:
            e = get_extractor_class(name)(**cfg)
            e.load()
            _W[name] = e
        except Exception as err:  # reported per clip, so the run's summary shows it
            _W_ERR[name] = f"could not load {name}: {err.__class__.__name__}: {err}"


def _failed(e_dim: int, error: str) -> ExtractResult:
    return ExtractResult(np.zeros((0, e_dim), np.float32), np.zeros(0), status="failed", error=error,
                         info={"frames": 0, "seconds": 0.0, "time_s": 0.0})


def _run_clip(path: str, names: Sequence[str]) -> dict[str, ExtractResult]:
    """Run the named extractors on one clip (in a worker). Never raises for one clip's problems."""
    out: dict[str, ExtractResult] = {}
    groups: dict[tuple, list[FaceExtractor]] = {}
    for name in names:
        if name in _W_ERR:
            out[name] = _failed(0, _W_ERR[name])
            continue
        e = _W[name]
        if isinstance(e, FaceExtractor):
            groups.setdefault(e.pass_key(), []).append(e)
            continue
        t0 = time.perf_counter()
        try:
            r = e.extract(path)
        except Exception as err:
            r = _failed(e.dim, f"{err.__class__.__name__}: {err}")
        r.info.setdefault("time_s", time.perf_counter() - t0)
        out[name] = r
    for group in groups.values():
        try:
            results = run_face_pass(path, group)
        except Exception as err:
            results = [_failed(e.dim, f"{err.__class__.__name__}: {err}") for e in group]
        for e, r in zip(group, results):
            out[e.name] = r
    return out


@dataclass
class _ClipJob:
    """One clip for an engine: its path, the extractors it needs and, for engines whose
    workers may be on other machines, the file's bytes (``read_error`` when it could not be read)."""

    cid: str
    path: str
    need: list[str]
    data: bytes | None = None
    read_error: str | None = None


def _setup_worker(shared: tuple) -> None:
    """Engine ``setup``: load the extractors once in this worker (see :func:`_init_worker`)."""
    _init_worker(*shared)


def _clip_task(_state: Any, job: _ClipJob) -> dict[str, ExtractResult]:
    """Engine ``fn``: run one clip. Shipped bytes are written to a private temporary folder
    under the clip's own file name (extractors see the same name and content as locally)."""
    if job.read_error is not None:
        return {n: _failed(0, job.read_error) for n in job.need}
    if job.data is None:
        return _run_clip(job.path, job.need)
    tmp = tempfile.mkdtemp(prefix="blemore-clip-")
    try:
        local = Path(tmp) / Path(job.path).name
        local.write_bytes(job.data)
        return _run_clip(str(local), job.need)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _clip_jobs(tasks: Sequence[tuple[str, Path, list[str]]], ship: bool):
    """Clip jobs, made lazily (with ``ship``, a file is read only when its job is submitted)."""
    for cid, path, need in tasks:
        if not ship:
            yield _ClipJob(cid, str(path), list(need))
            continue
        try:
            yield _ClipJob(cid, str(path), list(need), data=Path(path).read_bytes())
        except OSError as err:
            yield _ClipJob(cid, str(path), list(need), read_error=f"cannot read the file: {err}")


# ----------------------------------------------------------------------------- summary
@dataclass
class ExtractorTally:
    """One extractor's counts in a run (``skipped``: already done before the run)."""

    name: str
    modality: str
    statuses: Counter = field(default_factory=Counter)
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"modality": self.modality, "statuses": dict(self.statuses), "skipped": self.skipped,
                "frames": self.frames, "seconds": round(self.seconds, 3)}


@dataclass
class ExtractionSummary:
    """What a run did. ``completed``: False only when there was work and nothing could run
    (every attempted clip failed for every extractor), or the run was interrupted."""

    store: Path
    clips: int
    attempted: int
    wall_s: float
    tallies: dict[str, ExtractorTally]
    failures: list[tuple[str, str, str]]  # (clip_id, extractor, error)
    interrupted: bool = False

    @property
    def completed(self) -> bool:
        if self.interrupted:
            return False
        if self.attempted == 0:
            return True
        return any(n for t in self.tallies.values() for s, n in t.statuses.items() if s != "failed")

    def frames_per_second(self) -> float:
        """Video frames analysed per wall-clock second (face/video extractors; shared passes counted once)."""
        frames = max((t.frames for t in self.tallies.values() if t.modality in ("face", "video")), default=0)
        return frames / self.wall_s if self.wall_s > 0 else 0.0

    def audio_speed(self) -> float:
        """Seconds of audio processed per wall-clock second."""
        secs = max((t.seconds for t in self.tallies.values() if t.modality == "audio"), default=0.0)
        return secs / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "store": str(self.store), "clips": self.clips, "attempted": self.attempted,
            "wall_s": round(self.wall_s, 3), "completed": self.completed, "interrupted": self.interrupted,
            "frames_per_s": round(self.frames_per_second(), 2), "audio_s_per_s": round(self.audio_speed(), 2),
            "extractors": {n: t.to_dict() for n, t in self.tallies.items()},
            "failures": [{"clip_id": c, "extractor": e, "error": m} for c, e, m in self.failures],
        }

    def format(self, max_failures: int = 20) -> str:
        lines = [f"{self.clips} clips found, {self.attempted} extracted in {self.wall_s:.1f} s -> {self.store}"]
        for t in self.tallies.values():
            st = ", ".join(f"{k} {v}" for k, v in sorted(t.statuses.items())) or "nothing to do"
            lines.append(f"  {t.name:<18} {st}; {t.skipped} already done")
        if self.frames_per_second():
            lines.append(f"  video: {self.frames_per_second():.1f} frames/s")
        if self.audio_speed():
            lines.append(f"  audio: {self.audio_speed():.1f} s of audio per second")
        if self.failures:
            lines.append(f"{len(self.failures)} failure(s) (rerun with --retry-failed to retry):")
            for cid, name, err in self.failures[:max_failures]:
                lines.append(f"  {cid} [{name}]: {err}")
            if len(self.failures) > max_failures:
                lines.append(f"  ... and {len(self.failures) - max_failures} more (see each manifest.csv)")
        if self.interrupted:
            lines.append("interrupted: rerun the same command to resume")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the runner
def extract(
    inputs: str | Path | Iterable[str | Path],
    out: str | Path,
    extractors: Sequence[str] = DEFAULT_EXTRACTORS,
    *,
    workers: int | None = None,
    fps: float | None = None,
    retry_failed: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    engine: str | Engine | None = None,
    address: str | None = None,
    gpus_per_worker: float = 0.0,
) -> ExtractionSummary:
    """Extract features of every clip under ``inputs`` into the store ``out``.

    ``inputs``: media files and/or folders (searched recursively). ``extractors``: registered
    names. ``workers``: processes (default ``os.cpu_count()``; 1 runs in this process).
    ``fps``: frames per second for video/face extractors (default: every frame).
    ``retry_failed``: redo clips recorded as failed. ``overwrite``: delete the selected
    extractors' existing features first (needed when their config changed). ``settings``:
    ``{extractor: {config field: value}}`` overrides.

    ``engine``: where clips run (:mod:`blemore.engines`): ``"local"`` (default; ``workers``
    processes) or ``"ray"`` (``workers`` actors, default one per CPU, or per
    ``gpus_per_worker`` GPUs, of the cluster at ``address``), or an engine instance (left
    open). Whatever the engine, this process writes the store; engines other than ``local``
    get each file's bytes from this process (their workers need no shared file system), at
    most ``2 * workers`` clips in flight.

    Raises before doing any work for unknown extractors or settings, missing inputs,
    duplicate clip ids, an unavailable model (:class:`ExtractorUnavailableError`) or a config
    mismatch (:class:`~blemore.store.ConfigMismatchError`). Per-clip problems never raise:
    they are recorded in the manifests and listed in the returned summary.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if isinstance(extractors, str):
        extractors = [s.strip() for s in extractors.split(",") if s.strip()]
    if not extractors:
        raise ExtractError("no extractors selected")
    exs = build_extractors(list(extractors), fps=fps, settings=settings)
    eng: Engine | None = None  # a remote engine starts (or fails) before anything is written
    if engine is not None and engine != "local":
        eng = create_engine(engine, workers=workers, address=address, gpus_per_worker=gpus_per_worker)
    try:
        for e in exs:
            _check_available(e)
        return _extract(inputs, out, exs, eng, workers, retry_failed, overwrite, progress)
    finally:
        if eng is not None and not isinstance(engine, Engine):
            eng.close()


def _extract(inputs, out, exs: list[Extractor], eng: Engine | None, workers: int | None, retry_failed: bool,
             overwrite: bool, progress: bool) -> ExtractionSummary:
    from tqdm import tqdm

    clips = find_media(inputs)
    if not clips:  # before anything is written: an empty or wrong folder is the user's mistake
        raise ExtractError(f"no media files found in {', '.join(map(str, inputs))} (looked for "
                           f"{', '.join(sorted(MEDIA_EXTENSIONS))}, recursively; hidden files are skipped)")
    store = Path(out)
    store.mkdir(parents=True, exist_ok=True)
    writers: dict[str, StoreWriter] = {}
    try:
        for e in exs:
            writers[e.name] = StoreWriter(store, e.config_dict(), overwrite=overwrite)
    except BaseException:
        for w in writers.values():
            w.close()
        raise
    tallies = {e.name: ExtractorTally(e.name, e.modality) for e in exs}

    # plan: which extractors each clip still needs
    tasks: list[tuple[str, Path, list[str]]] = []
    for cid, path in clips.items():
        need = []
        for e in exs:
            row = writers[e.name].done.get(cid)
            if row is None or (row.status == "failed" and retry_failed) or (
                    row.status in ("ok", "no-face") and not (writers[e.name].root / f"{cid}.npy").exists()):
                need.append(e.name)
            else:
                tallies[e.name].skipped += 1
        if need:
            tasks.append((cid, path, need))

    specs = [_spec(e) for e in exs]
    if eng is None:
        if not workers and any(_on_accelerator(e) for e in exs):
            workers = 1  # one model copy per GPU: worker processes would each load their own
        n_workers = max(1, int(workers) if workers else (os.cpu_count() or 1))
        n_workers = min(n_workers, max(1, len(tasks)))
        eng = create_engine("local", workers=n_workers)
        # inline: this process's threads as they are; a pool: the cores shared out
        shared: tuple = (specs, None if eng.inline else max(1, (os.cpu_count() or 1) // n_workers))
    else:
        shared = (specs, max(1, int(eng.cpus_per_worker)))
    failures: list[tuple[str, str, str]] = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(tasks), unit="clip", desc="extract", disable=not progress, dynamic_ncols=True)
    interrupted = False

    def record(cid: str, path: Path, results: Mapping[str, ExtractResult]) -> None:
        for name, r in results.items():
            keep = r.status in ("ok", "no-face") and len(r.features) > 0
            row = ManifestRow(cid, str(path), r.status, r.error or "", int(r.info.get("frames", len(r.features))),
                              float(r.info.get("seconds", 0.0)), float(r.info.get("time_s", 0.0)))
            writers[name].write(row, r.features if keep else None, r.times if keep else None)
            t = tallies[name]
            t.statuses[r.status] += 1
            t.frames += row.frames if r.status in ("ok", "no-face") else 0
            t.seconds += row.seconds if r.status in ("ok", "no-face") else 0.0
            if r.status == "failed":
                failures.append((cid, name, r.error or ""))
        bar.update(1)
        if failures:
            bar.set_postfix(failed=len(failures), refresh=False)

    try:
        if tasks:
            jobs = _clip_jobs(tasks, ship=eng.name != "local")
            for o in eng.map(_clip_task, jobs, shared=shared, setup=_setup_worker, retries=1):
                if o.ok:
                    results = o.value
                elif o.error.startswith(WORKER_DIED):
                    results = {n: _failed(0, "the worker process died while extracting this clip "
                                             f"{o.error[len(WORKER_DIED):].strip()}") for n in o.item.need}
                else:
                    results = {n: _failed(0, o.error) for n in o.item.need}
                record(o.item.cid, Path(o.item.path), results)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        for w in writers.values():
            w.close()
    return ExtractionSummary(store, len(clips), len(tasks), time.perf_counter() - t0, tallies, failures, interrupted)


class _CallableModule(types.ModuleType):
    """``blemore.extract`` is both this module and the function :func:`extract`: once the module
    is imported Python binds the name ``extract`` on the package to the module, so calling it
    calls the function (``blemore.extract(inputs, out)`` works however it was reached)."""

    def __call__(self, *args: Any, **kwargs: Any) -> ExtractionSummary:
        return extract(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
