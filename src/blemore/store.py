"""Feature folders: read and write per-clip feature arrays.

A *feature folder* holds one time series per clip. Two layouts are read the same way:

**A blemore store subfolder** ``STORE/<extractor>/`` (written by :func:`blemore.extract.extract`)::

    config.json              extractor name, version, settings, columns, dim, rate
    manifest.csv             one row per clip: clip_id, source, status, error, frames, seconds, time_s
    <clip_id>.npy            float32 (T, D); NaN rows where a frame had no face
    <clip_id>.times.npy      float64 (T,) seconds; only when rows are not evenly spaced at ``rate``

A store written with every hidden layer of an encoder (``blemore extract -e wav2vec2 --layers
all``) holds ``(T, L, D)`` arrays, a *layer axis*, and its ``config.json`` says so under
``layer_axis`` (``{"size": L, "first": 0}``: hidden state 0 is the transformer input). Reading
it, ``open_source("STORE/wav2vec2[layers=6-12]")`` (and ``--features STORE/wav2vec2[layers=6-12]``)
gives the mean of hidden states 6..12, ``[layers=9]`` one state; without a selector a clip
reads as its last layer. A selector on a folder without a layer axis is an error.

**A plain folder** such as the official pre-extracted release
(``pre_extracted_train_data/WavLM_large_train/``): either one ``<clip>.npy`` per clip of shape
``(T, D)`` or ``(D,)``, or one per-frame ``<clip>.csv`` per clip (OpenFace style). For CSVs the
feature columns are the numeric columns minus :data:`SKIP_COLUMNS`; an OpenFace 2.x
``FeatureExtraction`` CSV is recognised by its header and reduced to the paper's 31 columns
(:data:`OPENFACE2_COLUMNS`: 17 AU intensities, 6 head pose, 8 gaze), with the rows where
OpenFace reports ``success == 0`` set to NaN.

Reading::

    src = open_source("STORE/face-mesh")       # or a plain folder
    src.clip_ids                                # clips with usable features (status "ok")
    x = src.load("A102_ang_int1_ver1")          # (T, D) float32
    sources = open_store("STORE")               # {"face-mesh": FeatureSource, ...}

Which clips are listed: :attr:`FeatureSource.clip_ids` holds the clips whose status is ``"ok"``
(at least one valid row) and whose array is on disk. Clips marked ``no-face`` (an all-NaN array
is stored, so :meth:`FeatureSource.load` still works), ``no-audio``, ``no-video`` or ``failed``
are left out of ``clip_ids``; :meth:`FeatureSource.status` reports every clip of the manifest.

Writing goes through :class:`StoreWriter`, one per extractor folder: every file is written
under a temporary name and renamed into place, and the manifest is appended one line per
finished clip, so a killed run loses at most the clips in flight.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from blemore._io import _unlink_quiet, atomic_path, atomic_write_bytes, atomic_write_text
from blemore.errors import BlemoreError
from blemore.labels import clip_id_from_path
from blemore.validate import array_problem

__all__ = [
    "FeatureSource",
    "StoreError",
    "ConfigMismatchError",
    "ManifestRow",
    "StoreWriter",
    "open_source",
    "open_store",
    "import_features",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_save_npy",
    "SKIP_COLUMNS",
    "OPENFACE2_COLUMNS",
    "STATUSES",
]

STATUSES = ("ok", "failed", "no-face", "no-audio", "no-video")
"""Every status a clip can have in ``manifest.csv`` (extractors report one of these)."""

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.csv"
TIMES_SUFFIX = ".times.npy"

#: Per-frame CSV columns that are bookkeeping, not features (compared case-insensitively,
#: after stripping spaces). Everything else that is numeric is a feature column.
SKIP_COLUMNS: tuple[str, ...] = (
    "frame", "frame_id", "frame_idx", "frame_index", "frame_number", "frame_num",
    "face_id", "face", "face_idx", "person_id",
    "timestamp", "time", "times", "time_s", "timestamp_s", "seconds", "pts",
    "confidence", "success", "face_found",
    "clip", "clip_id", "video", "filename", "file", "path", "image", "input",
    "unnamed: 0", "index",
)

_AU_R = ["AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU06_r", "AU07_r", "AU09_r", "AU10_r", "AU12_r",
         "AU14_r", "AU15_r", "AU17_r", "AU20_r", "AU23_r", "AU25_r", "AU26_r", "AU45_r"]
_POSE = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
_GAZE = ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y"]
#: The paper's OpenFace 2.0 feature set: 17 AU intensities + 6 head pose + 8 gaze = 31 columns.
OPENFACE2_COLUMNS: tuple[str, ...] = tuple(_AU_R + _POSE + _GAZE)


class StoreError(BlemoreError):
    """A feature folder is missing, malformed or not what was expected."""


def read_npy(path: str | Path, *, mmap: bool = False) -> np.ndarray:
    """Load one ``.npy`` safely (never unpickles): a :class:`StoreError` naming the file for an
    empty, truncated or garbage file, a pickled/object array, or a non-numeric dtype."""
    p = Path(path)
    try:
        if p.stat().st_size == 0:
            raise StoreError(f"{p}: empty file (0 bytes), not a .npy array")
        with open(p, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise StoreError(f"{p}: not a .npy file (no NumPy header; a text file or another format?)")
        a = np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None)
    except StoreError:
        raise
    except FileNotFoundError:
        raise StoreError(f"{p}: file not found") from None
    except (ValueError, EOFError, OSError) as e:
        text = str(e)
        if "pickle" in text or "Object arrays" in text:
            why = "it holds pickled Python objects, not a numeric array (blemore never loads pickles)"
        elif isinstance(e, EOFError) or "No data" in text or "truncated" in text or "size" in text:
            why = f"truncated or not a .npy file ({text})"
        else:
            why = f"not a readable .npy array ({text})"
        raise StoreError(f"{p}: {why}") from None
    if not isinstance(a, np.ndarray):  # np.load of a .npz gives an NpzFile
        raise StoreError(f"{p}: not a single .npy array")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) \
            or np.issubdtype(a.dtype, np.complexfloating):
        raise StoreError(f"{p}: dtype {a.dtype} is not a real number type")
    return a


class ConfigMismatchError(StoreError):
    """The folder holds features made with another extractor config."""


# ----------------------------------------------------------------------------- atomic writes
# (blemore._io owns them; re-exported here because store users import them from here)
def atomic_save_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` through a hidden ``.tmp-*`` file and ``os.replace`` (see :mod:`blemore._io`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)


# ----------------------------------------------------------------------------- manifest
@dataclass
class ManifestRow:
    """One clip's record in ``manifest.csv``."""

    clip_id: str
    source: str
    status: str
    error: str = ""
    frames: int = 0
    seconds: float = 0.0
    time_s: float = 0.0

    @classmethod
    def header(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_list(self) -> list[str]:
        return [self.clip_id, self.source, self.status, self.error.replace("\n", " ").replace("\r", " "),
                str(int(self.frames)), f"{self.seconds:.4f}", f"{self.time_s:.4f}"]

    @classmethod
    def from_list(cls, row: list[str]) -> "ManifestRow":
        cid, src, status, err, frames, secs, t = row
        if status not in STATUSES:
            raise ValueError(f"bad status {status!r}")
        return cls(cid, src, status, err, int(frames), float(secs), float(t))


def read_manifest(path: str | Path) -> dict[str, ManifestRow]:
    """Parse ``manifest.csv``; the last row of a clip wins. Malformed lines (e.g. a line cut
    short by a killed run) are skipped."""
    path = Path(path)
    rows: dict[str, ManifestRow] = {}
    if not path.exists():
        return rows
    text = path.read_text(encoding="utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != ManifestRow.header():
        raise StoreError(f"{path}: unexpected manifest header {header}; expected {ManifestRow.header()}")
    complete = text.endswith("\n")
    lines = list(reader)
    for i, row in enumerate(lines):
        if i == len(lines) - 1 and not complete:
            break  # cut short by a killed writer
        try:
            r = ManifestRow.from_list(row)
        except (ValueError, TypeError):
            continue
        rows[r.clip_id] = r
    return rows


def _manifest_text(rows: Iterable[ManifestRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ManifestRow.header())
    for r in sorted(rows, key=lambda r: r.clip_id):
        w.writerow(r.to_list())
    return buf.getvalue()


# ----------------------------------------------------------------------------- reading
def _is_clip_npy(p: Path) -> bool:
    return p.suffix == ".npy" and not p.name.endswith(TIMES_SUFFIX) and not p.name.startswith(".")


def _is_clip_csv(p: Path) -> bool:
    return p.suffix.lower() == ".csv" and p.name != MANIFEST_FILE and not p.name.startswith(".")


def _norm(col: str) -> str:
    return col.strip()


class FeatureSource:
    """One feature folder (a store subfolder or a plain pre-extracted folder), read lazily.

    Attributes: ``name`` (folder name), ``root`` (its path), ``kind`` (``"store"``, ``"npy"``
    or ``"csv"``), ``config`` (``config.json`` as a dict, None for plain folders),
    ``columns`` (list of names or None when unknown), ``dim``, ``clip_ids``.
    """

    def __init__(self, root: str | Path, layers: str | None = None):
        root = Path(root)
        if not root.is_dir():
            raise StoreError(f"feature folder {str(root)!r} does not exist or is not a folder")
        self.root = root
        self.name = root.name
        self.layers = _parse_layer_range(layers, root) if layers is not None else None
        #: ``"[layers=A-B]"`` when a layer range is selected (part of the name and of cache keys)
        self.selector = f"[layers={self.layers[0]}-{self.layers[1]}]" if self.layers else ""
        self.name += self.selector
        self._manifest: dict[str, ManifestRow] | None = None
        self._clip_ids: list[str] | None = None
        self._csv_columns: list[str] | None = None
        self._csv_openface = False
        self._dim: int | None = None
        cfg = root / CONFIG_FILE
        if cfg.exists() or (root / MANIFEST_FILE).exists():
            self.kind = "store"
            self.config: dict | None = json.loads(cfg.read_text()) if cfg.exists() else None
            files = {clip_id_from_path(p): p for p in root.iterdir() if _is_clip_npy(p)}
        else:
            self.config = None
            npys = {clip_id_from_path(p): p for p in root.iterdir() if _is_clip_npy(p)}
            csvs = {clip_id_from_path(p): p for p in root.iterdir() if _is_clip_csv(p)}
            if npys and csvs:
                raise StoreError(f"{root}: holds both .npy and .csv clip files; expected one kind")
            if not npys and not csvs:
                subs = [p.name for p in root.iterdir() if p.is_dir()]
                hint = f" (it has subfolders {subs[:5]}: a store root? use open_store)" if subs else ""
                raise StoreError(f"{root}: no <clip>.npy or <clip>.csv feature files found{hint}")
            self.kind = "npy" if npys else "csv"
            files = npys or csvs
        self._files: dict[str, Path] = files
        if self.layers is not None:
            axis = (self.config or {}).get("layer_axis")
            if not axis:
                raise StoreError(f"{root}: has no layer axis (extract with --layers all), so {self.selector} "
                                 "cannot select layers")
            first, size = int(axis.get("first", 0)), int(axis["size"])
            lo, hi = self.layers
            if not (first <= lo <= hi < first + size):
                raise StoreError(f"{root}: {self.selector} is out of range: the store holds hidden states "
                                 f"{first}..{first + size - 1}")

    def _select_layers(self, a: np.ndarray) -> np.ndarray:
        """``(T, L, D)`` -> ``(T, D)``: the mean over the selected layers (default: the last one) of a
        store with a layer axis; other arrays unchanged."""
        axis = (self.config or {}).get("layer_axis")
        if a.ndim != 3 or not axis:
            return a
        first = int(axis.get("first", 0))
        lo, hi = self.layers if self.layers is not None else (first + a.shape[1] - 1,) * 2
        return a[:, lo - first: hi - first + 1].mean(axis=1, dtype=np.float64).astype(np.float32)

    def __repr__(self) -> str:
        return f"FeatureSource(name={self.name!r}, kind={self.kind!r}, clips={len(self.clip_ids)}, root={str(self.root)!r})"

    # -- inventory -------------------------------------------------------------------
    def _rows(self) -> dict[str, ManifestRow]:
        if self._manifest is None:
            self._manifest = read_manifest(self.root / MANIFEST_FILE) if self.kind == "store" else {}
        return self._manifest

    def status(self) -> dict[str, str]:
        """Status of every known clip: from the manifest for a store (clips with a file but no
        manifest row count as ``"ok"``), ``"ok"`` for every file of a plain folder."""
        out = {cid: "ok" for cid in self._files}
        for cid, r in self._rows().items():
            out[cid] = r.status
        return dict(sorted(out.items()))

    def manifest(self) -> dict[str, ManifestRow]:
        """The manifest rows by clip id (empty for plain folders)."""
        return dict(self._rows())

    @property
    def clip_ids(self) -> list[str]:
        """Sorted ids of the clips with usable features: status ``"ok"`` and an array on disk.

        A snapshot taken when the folder was opened (open it again to see later changes)."""
        if self._clip_ids is None:
            st = self.status()
            self._clip_ids = sorted(cid for cid in self._files if st.get(cid) == "ok")
        return list(self._clip_ids)

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._files

    # -- shape -----------------------------------------------------------------------
    @property
    def columns(self) -> list[str] | None:
        if self.config is not None and self.config.get("columns"):
            return list(self.config["columns"])
        if self.kind == "csv":
            self._ensure_csv_columns()
            return list(self._csv_columns or [])
        return None

    @property
    def rate(self) -> float | None:
        """Rows per second from ``config.json`` (None when unknown or not evenly spaced)."""
        return None if self.config is None else self.config.get("rate")

    @property
    def dim(self) -> int:
        """Feature dimension D (from the config, the CSV header or the first array's header)."""
        if self._dim is None:
            if self.config is not None and self.config.get("dim"):
                self._dim = int(self.config["dim"])
            elif self.kind == "csv":
                self._dim = len(self.columns or [])
            else:
                if not self._files:
                    raise StoreError(f"{self.root}: no feature arrays to read a dimension from")
                self._dim = self._majority_dim()
        return self._dim

    def _majority_dim(self, sample: int = 200) -> int:
        """The most common width among the first ``sample`` readable arrays (ties: the first
        seen), so one malformed first file does not set the folder's dimension."""
        widths: dict[int, int] = {}
        for cid in sorted(self._files)[: max(sample, 1) * 2]:
            try:
                a = read_npy(self._files[cid], mmap=True)
            except StoreError:
                continue
            if a.ndim in (1, 2) and a.shape[-1] > 0:
                widths[int(a.shape[-1])] = widths.get(int(a.shape[-1]), 0) + 1
            if sum(widths.values()) >= sample:
                break
        if not widths:
            raise StoreError(f"{self.root}: none of the {len(self._files)} .npy files is a readable (T, D) array")
        return max(widths, key=lambda w: widths[w])

    # -- loading ---------------------------------------------------------------------
    def path(self, clip_id: str) -> Path:
        try:
            return self._files[clip_id]
        except KeyError:
            raise KeyError(f"clip {clip_id!r} has no features in {self.root}") from None

    def load(self, clip_id: str) -> np.ndarray:
        """The clip's features as float32 ``(T, D)`` (a ``(D,)`` array becomes ``(1, D)``)."""
        p = self.path(clip_id)
        if self.kind == "csv":
            x, _ = self._load_csv(p)
            return x
        a = read_npy(p)
        a = self._select_layers(a)
        problem = array_problem(a)
        if problem is not None:
            raise StoreError(f"{p}: {problem}")
        if a.ndim == 1:
            a = a[None, :]
        return np.ascontiguousarray(a, dtype=np.float32)

    def times(self, clip_id: str) -> np.ndarray | None:
        """Per-row timestamps in seconds, or None when unknown.

        From ``<clip>.times.npy`` when present, else ``arange(T) / rate`` when the config
        declares a rate, else the CSV's timestamp column when there is one.
        """
        p = self.path(clip_id)
        if self.kind == "csv":
            return self._load_csv(p)[1]
        tp = p.with_name(clip_id + TIMES_SUFFIX)
        if tp.exists():
            return read_npy(tp).astype(np.float64).reshape(-1)
        rate = self.rate
        if rate:
            n = read_npy(p, mmap=True).shape[0]
            return np.arange(n, dtype=np.float64) / float(rate)
        return None

    def load_all(self, clip_ids: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """``{clip_id: (T, D) array}`` for the given clips (default: :attr:`clip_ids`)."""
        return {cid: self.load(cid) for cid in (self.clip_ids if clip_ids is None else clip_ids)}

    # -- CSV -------------------------------------------------------------------------
    def _ensure_csv_columns(self) -> None:
        if self._csv_columns is not None:
            return
        if not self._files:
            self._csv_columns = []
            return
        import pandas as pd

        first = self._files[min(self._files)]
        df = pd.read_csv(first, nrows=50, skipinitialspace=True)
        self._csv_columns, self._csv_openface = _csv_feature_columns(df, first)

    def _load_csv(self, p: Path) -> tuple[np.ndarray, np.ndarray | None]:
        import pandas as pd

        self._ensure_csv_columns()
        df = pd.read_csv(p, skipinitialspace=True)
        df.columns = [_norm(c) for c in df.columns]
        cols = self._csv_columns or []
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise StoreError(f"{p}: missing columns {missing[:5]} that other files of {self.root} have")
        x = np.array(df[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32), copy=True)
        if self._csv_openface and "success" in df.columns:
            x[df["success"].to_numpy() == 0] = np.nan
        times = None
        lower = {c.lower(): c for c in df.columns}
        for key in ("timestamp", "time", "time_s", "timestamp_s"):
            if key in lower:
                times = pd.to_numeric(df[lower[key]], errors="coerce").to_numpy(dtype=np.float64)
                break
        return x, times


def _csv_feature_columns(df: Any, path: Path) -> tuple[list[str], bool]:
    """Pick the feature columns of a per-frame CSV; returns (columns, is_openface2)."""
    import pandas as pd

    df.columns = [_norm(c) for c in df.columns]
    if all(c in df.columns for c in OPENFACE2_COLUMNS):
        return list(OPENFACE2_COLUMNS), True
    skip = {s.lower() for s in SKIP_COLUMNS}
    cols = []
    for c in df.columns:
        if c.lower() in skip:
            continue
        if pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            cols.append(c)
    if not cols:
        raise StoreError(f"{path}: no numeric feature columns (after skipping {', '.join(SKIP_COLUMNS[:6])}, ...)")
    return cols, False


def split_selector(path: str | Path) -> tuple[str | Path, str | None]:
    """``"STORE/wav2vec2[layers=6-12]"`` -> ``("STORE/wav2vec2", "6-12")``; other paths unchanged."""
    m = re.fullmatch(r"(.+?)\[\s*layers\s*=\s*([^\]]*)\]", str(path))
    if m is None:
        return path, None
    return m.group(1), m.group(2)


def _parse_layer_range(spec: str, root: Path) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(spec))
    if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
        raise StoreError(f"{root}: [layers={spec}] must be a hidden-state index or an increasing range like 6-12")
    lo = int(m.group(1))
    return lo, int(m.group(2)) if m.group(2) is not None else lo


def open_source(path: str | Path) -> FeatureSource:
    """Open one feature folder: a store subfolder ``STORE/<extractor>/`` or a plain folder of
    per-clip ``.npy`` / ``.csv`` files (see the module docstring). A trailing ``[layers=A-B]``
    selects hidden states of a store with a layer axis."""
    root, layers = split_selector(path)
    return FeatureSource(root, layers=layers)


def open_store(path: str | Path) -> dict[str, FeatureSource]:
    """Open a store root: ``{subfolder name: FeatureSource}`` for each subfolder holding features."""
    root = Path(path)
    if not root.is_dir():
        raise StoreError(f"store {str(root)!r} does not exist or is not a folder")
    if (root / CONFIG_FILE).exists() or (root / MANIFEST_FILE).exists():
        raise StoreError(f"{root} is a single feature folder, not a store root: use open_source")
    out: dict[str, FeatureSource] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            out[sub.name] = FeatureSource(sub)
        except StoreError:
            continue
    return out


# ----------------------------------------------------------------------------- writing
def _identity(cfg: Mapping[str, Any]) -> dict:
    return {k: cfg.get(k) for k in ("extractor", "version", "settings")}


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: stored {a!r}, requested {b!r}"]


class StoreWriter:
    """Writes one extractor's folder ``STORE/<name>/`` (config.json, arrays, manifest.csv).

    Opening checks ``config.json``: a folder made with another extractor version or other
    settings raises :class:`ConfigMismatchError` unless ``overwrite``, which deletes the old
    features, times and manifest first. ``done`` maps clip ids to their manifest rows.
    """

    def __init__(self, store: str | Path, config: Mapping[str, Any], *, overwrite: bool = False):
        name = config.get("extractor")
        if not name:
            raise StoreError("extractor config has no 'extractor' name")
        self.root = Path(store) / str(name)
        self.config = dict(config)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = _acquire_lock(self.root)
        try:
            self._open(overwrite)
        except BaseException:
            _unlink_quiet(self._lock)
            raise

    def _open(self, overwrite: bool) -> None:
        for p in self.root.glob(".tmp-*"):  # left by a killed run (one writer per folder: locked)
            _unlink_quiet(p)
        cfg_path = self.root / CONFIG_FILE
        if overwrite:
            self._clear()
        elif cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            diffs = _diff(_identity(old), _identity(self.config))
            if diffs:
                raise ConfigMismatchError(
                    f"{self.root} holds features made with another config ({'; '.join(diffs[:5])}). "
                    "Extract into another store, or pass overwrite=True (--overwrite) to delete them."
                )
        elif any(_is_clip_npy(p) for p in self.root.iterdir()):
            raise ConfigMismatchError(f"{self.root} has feature files but no {CONFIG_FILE}; "
                                      "refusing to mix (use overwrite=True / --overwrite)")
        atomic_write_text(cfg_path, json.dumps(self.config, indent=2, default=str) + "\n")
        self.done: dict[str, ManifestRow] = read_manifest(self.root / MANIFEST_FILE)
        self._compact()  # drops a half-written last line before appending
        self._fh = open(self.root / MANIFEST_FILE, "a", encoding="utf-8", newline="")
        self._csv = csv.writer(self._fh, lineterminator="\n")

    def _clear(self) -> None:
        for p in self.root.iterdir():
            if p.is_file() and (p.suffix == ".npy" or p.name in (MANIFEST_FILE, CONFIG_FILE)):
                p.unlink()

    def _compact(self) -> None:
        atomic_write_text(self.root / MANIFEST_FILE, _manifest_text(self.done.values()))

    def write(self, row: ManifestRow, features: np.ndarray | None = None, times: np.ndarray | None = None) -> None:
        """Store one clip: its arrays first (atomically), then its manifest line.

        ``times`` is written only when it is not ``arange(T) / rate`` for the config's rate.
        """
        cid = row.clip_id
        feat_path = self.root / f"{cid}.npy"
        times_path = self.root / f"{cid}{TIMES_SUFFIX}"
        if features is not None:
            features = np.asarray(features, dtype=np.float32)
            axis = self.config.get("layer_axis")
            if features.ndim != (3 if axis else 2):
                want = "(T, layers, D) (the config declares a layer axis)" if axis else "(T, D)"
                raise StoreError(f"features of {cid!r} must be {want}, got shape {features.shape}")
            if axis and features.shape[1] != int(axis["size"]):
                raise StoreError(f"features of {cid!r} have {features.shape[1]} layers; the config declares "
                                 f"{axis['size']}")
            dim = self.config.get("dim")
            if dim and features.shape[-1] != dim:
                raise StoreError(f"features of {cid!r} have {features.shape[-1]} columns; the config declares {dim}")
            if times is not None and not _evenly_spaced(times, self.config.get("rate")):
                atomic_save_npy(times_path, np.asarray(times, dtype=np.float64))
            else:
                _unlink_quiet(times_path)
            atomic_save_npy(feat_path, features)
        else:
            _unlink_quiet(feat_path)
            _unlink_quiet(times_path)
        self._csv.writerow(row.to_list())
        self._fh.flush()
        self.done[cid] = row

    def close(self) -> None:
        """Flush and rewrite the manifest sorted, one row per clip."""
        if not self._fh.closed:
            self._fh.close()
            self._compact()
            _unlink_quiet(self._lock)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _acquire_lock(root: Path) -> Path:
    """Create ``root/.lock`` holding our pid; refuse when a live process holds it."""
    lock = root / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise StoreError(f"{root} is being written by another process (pid {pid}); "
                                 f"if that is wrong, delete {lock}") from None
            _unlink_quiet(lock)  # stale: its writer is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return lock
    raise StoreError(f"could not lock {root}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _evenly_spaced(times: np.ndarray, rate: float | None) -> bool:
    if not rate:
        return False
    t = np.asarray(times, dtype=np.float64)
    expect = np.arange(len(t)) / float(rate)
    return bool(len(t) == 0 or np.allclose(t, expect, atol=1e-4, rtol=0))


# ----------------------------------------------------------------------------- import
def import_features(src_dir: str | Path, store: str | Path, name: str, *, modality: str | None = None,
                    overwrite: bool = False, progress: bool = False) -> FeatureSource:
    """Copy a pre-extracted feature folder (e.g. the official ``WavLM_large_train/``) into
    ``STORE/<name>/`` as a regular store folder and return it opened.

    ``src_dir``: anything :func:`open_source` reads (``.npy`` (T, D) or (D,) per clip,
    per-frame CSVs, OpenFace 2.x CSVs -> 31 columns). Each clip becomes float32 (T, D) with its
    timestamps when known. The folder's width is the most common one among its arrays (one
    malformed first file does not decide it). A clip whose values are all NaN is marked
    ``no-face`` for face/video features (``failed`` otherwise); one that cannot be read, has
    zero frames or another width is marked ``failed`` with the reason. Resumable like
    extraction: clips already imported are skipped; another source folder under the same
    ``name`` is refused unless ``overwrite``.
    """
    import time

    from tqdm import tqdm

    src = open_source(src_dir)
    if not name or "/" in name or name.startswith("."):
        raise StoreError(f"bad feature name {name!r}: expected a plain folder name such as 'WavLM_large'")
    base = dict(src.config or {})
    config = {
        "extractor": name,
        "version": "imported",
        "modality": modality or base.get("modality"),
        "settings": {"format": src.kind, "source_name": src.name, "source_settings": base.get("settings")},
        "dim": src.dim,
        "columns": src.columns,
        "rate": src.rate,
        "source": str(Path(src_dir).resolve()),
    }
    status = src.status()
    face = config["modality"] in ("face", "video") or bool(getattr(src, "_csv_openface", False))
    with StoreWriter(store, config, overwrite=overwrite) as w:
        todo = [cid for cid in sorted(src._files) if cid not in w.done]
        for cid in tqdm(todo, desc=f"import {name}", unit="clip", disable=not progress):
            t0 = time.perf_counter()
            path = str(src.path(cid))
            try:
                x = src.load(cid)
                t = src.times(cid)
                if x.shape[1] != config["dim"]:
                    raise StoreError(f"{x.shape[1]} columns where the folder's clips have {config['dim']}")
            except Exception as err:
                w.write(ManifestRow(cid, path, "failed", f"{err.__class__.__name__}: {err}"))
                continue
            st = status.get(cid, "ok")
            if st == "ok" and x.size and not np.isfinite(x).any():
                if not face:  # all-NaN audio is a broken clip, not a missing face
                    w.write(ManifestRow(cid, path, "failed", "every value is NaN or infinite"))
                    continue
                st = "no-face"
            secs = float(t[-1] - t[0]) if t is not None and len(t) > 1 else 0.0
            if st in ("ok", "no-face"):
                w.write(ManifestRow(cid, path, st, "", len(x), secs, time.perf_counter() - t0), x, t)
            else:
                w.write(ManifestRow(cid, path, st, "not usable in the source folder"))
    return open_source(Path(store) / name)
