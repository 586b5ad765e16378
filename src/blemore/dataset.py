"""The clip table: which clips exist, what they are labelled, which fold and split they are in.

A **clip table** is a :class:`pandas.DataFrame` with one row per clip and these columns
(:data:`CLIP_COLUMNS`, always present, in this order):

==============  ========  ==================================================================
column          dtype     meaning
==============  ========  ==================================================================
``clip_id``     object    the clip id without folder or extension (``A102_ang_int1_ver1``,
                          ``test_0001``, or any id given by metadata with label and actor
                          columns, e.g. ``03a01Wa``); unique
``actor``       object    ``"A102"``; ``None`` for anonymised test ids whose actor is unknown
``split``       object    ``"train"`` or ``"test"``
``fold``        int64     cross-validation fold 0..k-1; ``-1`` when the clip has none
``label``       object    a :class:`blemore.labels.Label`, or ``None`` when unknown
``target``      int64     the label's target index 0..35; ``-1`` without a label
``is_blend``    bool      the label is a blend (``False`` without a label)
``path``        object    the media file (``str``) when known, else ``None``
==============  ========  ==================================================================

plus ``gender`` (object: ``"f"``, ``"m"``, another lower-case string, or ``None``) when the
metadata has a gender column (:data:`OPTIONAL_COLUMNS`), and ``corpus`` (object) when it has a
corpus column (metadata written by :mod:`blemore.corpora`).

Tables come from the official metadata CSVs (:func:`load_metadata`), from a folder of media
files named by the clip-id grammar (:func:`index_folder`), or from both (:func:`build_index`).
:func:`make_folds` / :func:`ensure_folds` make actor-disjoint folds; :func:`write_metadata`
writes the official CSV layout back (for generated corpora).
"""
from __future__ import annotations

import csv
import math
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from blemore._io import atomic_path
from blemore.errors import BlemoreError, format_problems
from blemore.labels import (
    ClipIdError,
    ClipInfo,
    Label,
    LabelError,
    clip_id_from_path,
    parse_clip_id,
    parse_clip_ids,
)
from blemore.media import MEDIA_EXTENSIONS  # one list; its order is the preference when a clip has several
from blemore.validate import delimiter_hint

CLIP_COLUMNS: tuple[str, ...] = ("clip_id", "actor", "split", "fold", "label", "target", "is_blend", "path")
"""The columns every clip table has, in order (see the module docstring)."""

OPTIONAL_COLUMNS: tuple[str, ...] = ("gender",)
"""Columns a clip table has when the source provides them."""

SPLITS: tuple[str, ...] = ("train", "test")

METADATA_COLUMNS: tuple[str, ...] = (
    "filename", "video_id", "gender", "mix", "emotion_1", "version", "intensity_level",
    "situation", "emotion_2", "emotion_1_salience", "emotion_2_salience", "fold",
)
"""The official ``train_metadata.csv`` layout, as written by :func:`write_metadata`
(``video_id`` is the actor, e.g. ``A102``; ``mix`` is 1 for blends, 0 for singles)."""

# Tolerated spellings of the columns load_metadata looks for (matched case-insensitively).
_FILENAME_NAMES = ("filename", "file_name", "file", "clip_id", "clip")
_ACTOR_NAMES = ("actor", "actor_id", "speaker", "speaker_id", "subject", "subject_id", "video_id")
_GENDER_NAMES = ("gender", "sex")
_FOLD_NAMES = ("fold",)
_LABEL_NAMES = ("label",)
_CORPUS_NAMES = ("corpus",)
_ACTOR_VALUE = re.compile(r"^A?([0-9]+)\Z")


class DatasetError(BlemoreError, ValueError):
    """A metadata file or folder that cannot be turned into a clip table (lists every problem)."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        super().__init__(format_problems(source, self.problems))


# -- building tables ---------------------------------------------------------------------
def _table(
    clip_ids: Sequence[str],
    actors: Sequence[str | None],
    splits: Sequence[str],
    folds: Sequence[int],
    labels: Sequence[Label | None],
    paths: Sequence[str | None] | None = None,
    gender: Sequence[str | None] | None = None,
) -> pd.DataFrame:
    """A clip table with the documented dtypes (object columns keep ``None``, not NaN)."""
    n = len(clip_ids)
    paths = [None] * n if paths is None else list(paths)
    cols: dict[str, pd.Series] = {
        "clip_id": pd.Series(list(clip_ids), dtype=object),
        "actor": pd.Series(list(actors), dtype=object),
        "split": pd.Series(list(splits), dtype=object),
        "fold": pd.Series(list(folds), dtype=np.int64),
        "label": pd.Series(list(labels), dtype=object),
        "target": pd.Series([lab.target_index() if lab is not None else -1 for lab in labels], dtype=np.int64),
        "is_blend": pd.Series([bool(lab is not None and lab.is_blend) for lab in labels], dtype=bool),
        "path": pd.Series(paths, dtype=object),
    }
    if gender is not None:
        cols["gender"] = pd.Series(list(gender), dtype=object)
    return pd.DataFrame(cols)


def clip_table(
    clip_ids: Sequence[str],
    *,
    labels: Sequence[Label | None] | None = None,
    actors: Sequence[str | None] | None = None,
    split: str | Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    paths: Sequence[str | None] | None = None,
    gender: Sequence[str | None] | None = None,
) -> pd.DataFrame:
    """A clip table from clip ids (or file names) and optional per-clip values.

    Defaults come from the clip-id grammar: labels and actors parsed from the ids (``None`` for
    anonymised ids), split ``"test"`` for anonymised ids else ``"train"``, folds ``-1``.
    Given ``labels`` replace the ids' (they must agree with a label-carrying id; a ``None``
    leaves that clip unlabelled), e.g. for anonymised test ids of a generated corpus; ``split``
    may be one string for all rows. With both ``labels`` and ``actors`` given, ids outside the
    grammar are taken as they are (other corpora; actors verbatim; :func:`free_id_problem`
    says which are refused). Raises :class:`~blemore.labels.ClipIdError` listing every
    malformed id and :class:`DatasetError` for duplicate ids, disagreeing labels or lengths
    that do not match.
    """
    free_ok = labels is not None and actors is not None
    infos: list[ClipInfo] = []
    bad: list[tuple[str, str]] = []
    refused: list[str] = []
    for raw in (str(c) for c in clip_ids):
        try:
            infos.append(parse_clip_ids([raw])[0])
        except ClipIdError as e:
            if not free_ok:
                bad.extend(e.bad)
                continue
            why = free_id_problem(raw)
            if why is not None:
                refused.append(why)
            infos.append(ClipInfo(raw.split(".", 1)[0], None, None, "free"))
    if bad:
        raise ClipIdError(bad)
    if refused:
        raise DatasetError("clip_table", refused)
    n = len(infos)
    problems = []
    for name, vals in (("labels", labels), ("actors", actors), ("folds", folds), ("paths", paths),
                       ("gender", gender)) + ((("split", split),) if not isinstance(split, str) else ()):
        if vals is not None and len(vals) != n:
            problems.append(f"{len(vals)} {name} for {n} clip ids")
    if problems:
        raise DatasetError("clip_table", problems)
    ids = [i.clip_id for i in infos]
    dup = sorted({c for c in ids if ids.count(c) > 1}) if len(set(ids)) != n else []
    problems += [f"clip {c!r} appears more than once" for c in dup]
    labs = [i.label for i in infos] if labels is None else list(labels)
    for i, lab in zip(infos, labs):
        if labels is not None and i.label is not None and lab is not None and lab != i.label:
            problems.append(f"clip {i.clip_id!r}: given label {lab.name()!r} but the id says {i.label.name()!r}")
    if problems:
        raise DatasetError("clip_table", problems)
    acts = [i.actor for i in infos] if actors is None else [
        None if a is None else str(a) if i.kind == "free" else (_actor_value(str(a)) or str(a))
        for i, a in zip(infos, actors)]
    if split is None or isinstance(split, str):
        if split is not None and split not in SPLITS:
            raise DatasetError("split", [f"must be one of {SPLITS}, got {split!r}"])
        splits = [split or _default_split(i) for i in infos]
    else:
        splits = list(split)
    return _table(ids, acts, splits, [-1] * n if folds is None else [int(f) for f in folds], labs,
                  paths, None if gender is None else list(gender))


def empty_table(gender: bool = False) -> pd.DataFrame:
    """A clip table with no rows."""
    return _table([], [], [], [], [], [], [] if gender else None)


def _default_split(info: ClipInfo) -> str:
    return "test" if info.kind == "test" else "train"


def _find_column(columns: Iterable[str], names: Sequence[str]) -> str | None:
    lower = {str(c).strip().lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _percent(s1: float, s2: float) -> tuple[float, float]:
    """Saliences given as fractions (0.7 / 0.3) become percent; percent stays as it is."""
    if 0 <= s1 <= 1 and 0 <= s2 <= 1 and abs(s1 + s2 - 1) < 1e-6:
        return s1 * 100, s2 * 100
    return s1, s2


def _label_from_columns(row: Mapping[str, str], cols: Mapping[str, str | None]) -> Label | None:
    """The label in the label columns of one metadata row (``None`` when they are empty)."""
    e1 = row[cols["emotion_1"]].strip() if cols["emotion_1"] else ""
    if e1 == "":
        return None
    e2 = row[cols["emotion_2"]].strip() if cols["emotion_2"] else ""
    if e2.lower() in ("", "nan", "none", "null"):
        return Label.single(e1)
    try:
        s1 = float(row[cols["emotion_1_salience"]]) if cols["emotion_1_salience"] else float("nan")
        s2 = float(row[cols["emotion_2_salience"]]) if cols["emotion_2_salience"] else float("nan")
    except ValueError:
        raise LabelError(
            f"saliences {row.get(cols['emotion_1_salience'] or '', '')!r} / "
            f"{row.get(cols['emotion_2_salience'] or '', '')!r} are not numbers"
        ) from None
    if math.isnan(s1) or math.isnan(s2):
        raise LabelError(f"blend {e1}+{e2} needs emotion_1_salience and emotion_2_salience")
    s1, s2 = _percent(s1, s2)
    return Label.blend(e1, s1, e2, s2)


def _actor_value(v: str) -> str | None:
    m = _ACTOR_VALUE.match(v.strip())
    return f"A{m.group(1)}" if m else None


def _gender_value(v: str) -> str | None:
    v = v.strip().lower()
    if v == "":
        return None
    if v in ("f", "female", "w", "woman"):
        return "f"
    if v in ("m", "male", "man"):
        return "m"
    return v


_FREE_ID_BAD_CHARS = ("/", "\\", "\x00")


def free_id_problem(raw: str) -> str | None:
    """Why ``raw`` cannot be a clip id given by metadata (``None`` when it can).

    Outside the BLEMORE grammar a clip id may hold any character a file name can, but not a
    path separator (``/``, ``\\``) or NUL, and not be empty, ``.`` or ``..`` (ids become file
    names in feature stores and run folders, so one that could escape a folder is refused).
    A clip id ends at its first dot: what follows is the file extension
    (:func:`blemore.labels.clip_id_from_path`), so ``x.wav`` is the clip ``x``.
    """
    if raw.strip() in ("", ".", ".."):
        return f"clip id {raw!r} is empty or a folder reference"
    bad = [c for c in _FREE_ID_BAD_CHARS if c in raw]
    if bad:
        return f"clip id {raw!r} contains {', '.join(repr(c) for c in bad)} (a path separator or NUL)"
    if raw.strip().split(".", 1)[0] == "":
        return f"clip id {raw!r} starts with a dot, so nothing is left of it without the extension"
    return None


def parse_label_name(name: str) -> Label:
    """A label from its composite name (:meth:`Label.name`): ``hap`` or ``ang+hap 70/30``."""
    s = name.strip()
    if "+" not in s:
        return Label.single(s)
    m = re.match(r"^([A-Za-z]+)\s*\+\s*([A-Za-z]+)\s+([0-9]+(?:\.[0-9]+)?)\s*/\s*([0-9]+(?:\.[0-9]+)?)\Z", s)
    if m is None:
        raise LabelError(f"label {name!r} is not 'emotion' or 'e1+e2 s1/s2' (e.g. 'ang+hap 70/30')")
    return Label.blend(m.group(1), float(m.group(3)), m.group(2), float(m.group(4)))


def _read_csv_strings(csv_path: str | os.PathLike, expected: str) -> pd.DataFrame:
    """Every cell of ``csv_path`` as a string (no NA parsing), column names stripped of
    spaces and a byte-order mark; any failure to read is a :class:`DatasetError` naming the
    file (``expected`` says what a folder should have been, e.g. "a CSV file")."""
    src = str(csv_path)
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DatasetError(src, ["file not found"]) from None
    except IsADirectoryError:
        raise DatasetError(src, [f"is a folder, expected {expected}"]) from None
    except OSError as e:
        raise DatasetError(src, [f"cannot be read ({e.strerror or e})"]) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, csv.Error) as e:
        raise DatasetError(src, [f"not a readable CSV file ({str(e).strip()[:200]})"]) from None
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    return df


def load_metadata(csv_path: str | os.PathLike, split: str | None = None) -> pd.DataFrame:
    """Read an official ``train_metadata.csv`` / ``test_metadata.csv`` into a clip table.

    Columns used: ``filename`` (required; ``.mov`` and folders are stripped), and when present
    ``emotion_1``, ``emotion_2``, ``emotion_1_salience``, ``emotion_2_salience``, ``mix``,
    ``fold``, an actor column (``actor``, ``actor_id``, ``speaker``, ``subject`` or the official
    ``video_id`` when its values look like ``A102``) and a gender column (``gender`` or ``sex``;
    values normalised to ``"f"`` / ``"m"``). Column names match case-insensitively; other
    columns are ignored. Empty ``emotion_2`` means a single emotion; saliences may be percent or
    fractions. Rows without label columns (test metadata) take their label from the clip id, or
    none for anonymised ``test_NNNN`` ids.

    ``split`` forces the split of every row; by default it is ``"test"`` for anonymised ids and
    ``"train"`` otherwise.

    **Other corpora.** When the metadata has label columns (``emotion_1`` [+ ``emotion_2`` and
    saliences], or one ``label`` column in the composite form ``hap`` / ``ang+hap 70/30``) and
    an actor column (``actor``, ``actor_id``, ``speaker``, ``subject``; any values, kept
    verbatim), a clip id outside the BLEMORE grammar is valid as it is (``03a01Wa``,
    ``01-01-03-01-01-01-12``, ids with spaces or non-ASCII letters): see
    :func:`free_id_problem` for the ids that are refused (path separators, NUL, ``.``, ``..``).
    BLEMORE ids in the same file are still parsed and checked against the columns. A
    ``corpus`` column is kept in the table and namespaces actors (``ravdess:01``), so actor
    ``01`` of two corpora never merge.

    Raises :class:`~blemore.labels.ClipIdError` listing every malformed id, and
    :class:`DatasetError` listing every other problem: duplicate ids, invalid labels,
    labels that disagree with the clip id, a ``mix`` flag that disagrees with the label,
    folds that are not integers, an actor that disagrees with the id.
    """
    if split is not None and split not in SPLITS:
        raise DatasetError("split", [f"must be one of {SPLITS} or None, got {split!r}"])
    src = str(csv_path)
    df = _read_csv_strings(csv_path, "a metadata CSV file")
    dup_cols = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup_cols:
        raise DatasetError(src, [f"column {c!r} appears more than once (after removing blanks around names)"
                                 for c in dup_cols])
    fcol = _find_column(df.columns, _FILENAME_NAMES)
    if fcol is None:
        raise DatasetError(src, [f"no 'filename' column (columns: {', '.join(df.columns) or 'none'})"
                                 + delimiter_hint(",".join(df.columns))])
    cols = {c: _find_column(df.columns, (c,)) for c in
            ("emotion_1", "emotion_2", "emotion_1_salience", "emotion_2_salience", "mix")}
    fold_col = _find_column(df.columns, _FOLD_NAMES)
    gender_col = _find_column(df.columns, _GENDER_NAMES)
    actor_col = None
    for name in _ACTOR_NAMES:
        c = _find_column(df.columns, (name,))
        if c is not None and all(v.strip() == "" or _actor_value(v) for v in df[c]):
            actor_col = c
            break
    # for clip ids outside the BLEMORE grammar: any actor value, taken verbatim
    free_actor_col = actor_col or next(
        (c for c in (_find_column(df.columns, (n,)) for n in _ACTOR_NAMES) if c is not None), None)
    label_col = _find_column(df.columns, _LABEL_NAMES)
    corpus_col = _find_column(df.columns, _CORPUS_NAMES)
    has_labels = cols["emotion_1"] is not None or label_col is not None

    raw = [v.strip() for v in df[fcol]]
    infos: list[ClipInfo] = []
    bad: list[tuple[str, str]] = []
    problems: list[str] = []
    for i, r in enumerate(raw):
        try:
            infos.append(parse_clip_ids([r])[0])
            continue
        except ClipIdError as e:
            why = e.bad[0][1]
        if not (has_labels and free_actor_col is not None):
            bad.append((r, why))
            continue
        # metadata-driven: labels and actors come from the columns, the id is free-form
        why_free = free_id_problem(r)
        if why_free is not None:
            problems.append(f"row {i + 2}: {why_free}")
            infos.append(ClipInfo(r, None, None, "free"))
        else:
            infos.append(ClipInfo(r.split(".", 1)[0], None, None, "free"))
    if bad:
        raise ClipIdError([(b, w + (" (ids outside the grammar need label columns, emotion_1 or label, "
                                    "and an actor column in the metadata)" if i == 0 else ""))
                           for i, (b, w) in enumerate(bad)], source=src)
    seen: dict[str, int] = {}
    for i, info in enumerate(infos):
        if info.clip_id in seen:
            problems.append(f"row {i + 2}: clip {info.clip_id!r} also appears in row {seen[info.clip_id] + 2}")
        else:
            seen[info.clip_id] = i

    records = df.to_dict("records")
    labels: list[Label | None] = []
    actors: list[str | None] = []
    folds: list[int] = []
    for i, (info, row) in enumerate(zip(infos, records)):
        where = f"row {i + 2} ({info.clip_id})"
        lab = info.label
        if cols["emotion_1"] is not None or label_col is not None:
            try:
                if cols["emotion_1"] is not None:
                    col_lab = _label_from_columns(row, cols)
                else:
                    col_lab = parse_label_name(row[label_col]) if row[label_col].strip() else None
            except LabelError as e:
                problems.append(f"{where}: {e}")
                col_lab = None
            if col_lab is not None:
                if info.label is not None and col_lab != info.label:
                    problems.append(
                        f"{where}: label columns say {col_lab.name()!r} but the clip id says {info.label.name()!r}"
                    )
                lab = col_lab
        if cols["mix"] is not None and lab is not None and row[cols["mix"]].strip() != "":
            try:
                mix = int(float(row[cols["mix"]]))
            except (ValueError, OverflowError):  # "x", "inf", a 5,000-digit number
                mix = -1
            if mix != int(lab.is_blend):
                problems.append(f"{where}: mix={row[cols['mix']]!r} but the label {lab.name()!r} is "
                                f"{'a blend' if lab.is_blend else 'a single emotion'}")
        labels.append(lab)

        actor = info.actor
        if info.kind == "free":
            actor = row[free_actor_col].strip() or None  # type: ignore[index]
            if actor is None and info.clip_id:
                problems.append(f"{where}: no actor (clip ids outside the BLEMORE grammar need one)")
        elif actor_col is not None and row[actor_col].strip() != "":
            col_actor = _actor_value(row[actor_col])
            if actor is not None and col_actor != actor:
                problems.append(f"{where}: actor column says {row[actor_col]!r} but the clip id says {actor!r}")
            actor = actor or col_actor
        corpus = row[corpus_col].strip() if corpus_col is not None else ""
        if corpus and actor is not None and not actor.startswith(corpus + ":"):
            actor = f"{corpus}:{actor}"  # actor "01" of two corpora are two people
        actors.append(actor)

        fold = -1
        if fold_col is not None and row[fold_col].strip() != "":
            try:
                f = float(row[fold_col])
                if not f.is_integer() or f < -1 or f > 10**6:
                    raise ValueError
                fold = int(f)
            except ValueError:
                problems.append(f"{where}: fold {row[fold_col]!r} is not a non-negative integer")
        folds.append(fold)
    if problems:
        raise DatasetError(src, problems)

    splits = [split or _default_split(info) for info in infos]
    gender = [_gender_value(v) for v in df[gender_col]] if gender_col is not None else None
    out = _table([i.clip_id for i in infos], actors, splits, folds, labels, None, gender)
    if corpus_col is not None:
        out["corpus"] = pd.Series([v.strip() or None for v in df[corpus_col]], dtype=object)
    return out


def index_folder(
    folder: str | os.PathLike, recursive: bool = True, strict: bool = True
) -> pd.DataFrame:
    """A clip table of the media files in ``folder`` (extensions :data:`MEDIA_EXTENSIONS`,
    case-insensitive; hidden files skipped), labelled from their names.

    When one clip id has several files (``x.mov`` and ``x.wav``), the extension earlier in
    :data:`MEDIA_EXTENSIONS` wins; the same id with the same extension in two places is an
    error. Names outside the grammar raise one :class:`~blemore.labels.ClipIdError` listing
    them all, or are skipped with a warning when ``strict=False``. Folds are ``-1``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(str(folder), ["not a folder"])
    it = root.rglob("*") if recursive else root.glob("*")
    files = sorted(
        p for p in it
        if p.suffix.lower() in MEDIA_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )
    good: list[tuple[Path, ClipInfo]] = []
    bad: list[tuple[str, str]] = []
    for p in files:
        try:
            good.append((p, parse_clip_ids([p.name])[0]))
        except ClipIdError as e:
            bad.extend((str(p.relative_to(root)), why) for _, why in e.bad)
    if bad:
        if strict:
            raise ClipIdError(bad)
        warnings.warn(f"{folder}: skipped {len(bad)} media file(s) not named by the clip-id grammar: "
                      + ", ".join(b for b, _ in bad[:10]), stacklevel=2)
    rank = {e: i for i, e in enumerate(MEDIA_EXTENSIONS)}
    chosen: dict[str, tuple[Path, ClipInfo]] = {}
    clashes: list[str] = []
    for p, info in good:
        prev = chosen.get(info.clip_id)
        if prev is None or rank[p.suffix.lower()] < rank[prev[0].suffix.lower()]:
            chosen[info.clip_id] = (p, info)
        elif rank[p.suffix.lower()] == rank[prev[0].suffix.lower()]:
            clashes.append(f"clip {info.clip_id!r} has two files: {prev[0]} and {p}")
    if clashes:
        raise DatasetError(str(folder), clashes)
    items = [chosen[c] for c in sorted(chosen)]
    return _table(
        [i.clip_id for _, i in items], [i.actor for _, i in items],
        [_default_split(i) for _, i in items], [-1] * len(items), [i.label for _, i in items],
        [str(p) for p, _ in items],
    )


def _as_table(x: str | os.PathLike | pd.DataFrame, split: str | None = None) -> pd.DataFrame:
    if isinstance(x, pd.DataFrame):
        return x.copy()
    return load_metadata(x, split=split)


def concat_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stack clip tables, keeping the documented dtypes (``gender`` kept when any has it).
    Raises :class:`DatasetError` when a clip id appears twice."""
    tables = [t for t in tables if t is not None]
    has_gender = any("gender" in t.columns for t in tables)
    has_corpus = any("corpus" in t.columns for t in tables)
    parts = []
    for t in tables:
        t = t.copy()
        if has_gender and "gender" not in t.columns:
            t["gender"] = pd.Series([None] * len(t), dtype=object, index=t.index)
        if has_corpus and "corpus" not in t.columns:
            t["corpus"] = pd.Series([None] * len(t), dtype=object, index=t.index)
        parts.append(t)
    if not parts:
        return empty_table()
    out = pd.concat(parts, ignore_index=True)
    dup = out["clip_id"][out["clip_id"].duplicated()].tolist()
    if dup:
        raise DatasetError("clip tables", [f"clip {c!r} appears in more than one table" for c in dup])
    return _normalise(out)


def _normalise(t: pd.DataFrame) -> pd.DataFrame:
    """Re-apply the documented dtypes and column order (object columns hold None, not NaN)."""
    t = t.reset_index(drop=True)
    out = _table(
        t["clip_id"].tolist(), [_none(v) for v in t["actor"]], t["split"].tolist(),
        t["fold"].astype(np.int64).tolist(), [_none(v) for v in t["label"]],
        [_none(v) for v in t["path"]],
        [_none(v) for v in t["gender"]] if "gender" in t.columns else None,
    )
    extra = [c for c in t.columns if c not in out.columns]
    for c in extra:
        out[c] = t[c].values
    return out


def _none(v: object) -> object:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v


def build_index(
    metadata: str | os.PathLike | pd.DataFrame | None = None,
    folder: str | os.PathLike | None = None,
    test_metadata: str | os.PathLike | pd.DataFrame | None = None,
    how: str = "outer",
    recursive: bool = True,
) -> pd.DataFrame:
    """One clip table from metadata CSVs (paths or tables), a media folder, or both.

    ``metadata`` (usually ``train_metadata.csv``) and ``test_metadata`` (split forced to
    ``"test"``) are stacked; the folder's files are joined on clip id and fill ``path``.
    Labels, folds and actors come from the metadata; for a clip in both, a label that
    disagrees with the file name is an error. ``how`` says what to do with clips found on
    only one side: ``"outer"`` keeps all (folder-only clips get fold -1), ``"left"`` keeps the
    metadata clips, ``"inner"`` keeps clips that have both an entry and a file.
    """
    if how not in ("outer", "left", "inner"):
        raise DatasetError("build_index(how=...)", [f"must be 'outer', 'left' or 'inner', got {how!r}"])
    if metadata is None and folder is None and test_metadata is None:
        raise DatasetError("build_index", ["needs metadata, a folder, or both"])
    tables = []
    if metadata is not None:
        tables.append(_as_table(metadata))
    if test_metadata is not None:
        tables.append(_as_table(test_metadata, split="test"))
    meta = concat_tables(tables) if tables else None
    if folder is None:
        return meta  # type: ignore[return-value]
    files = index_folder(folder, recursive=recursive)
    if meta is None:
        return files
    by_id = dict(zip(files["clip_id"], zip(files["path"], files["label"])))
    problems = []
    paths = []
    for cid, lab in zip(meta["clip_id"], meta["label"]):
        hit = by_id.get(cid)
        if hit is not None and hit[1] is not None and lab is not None and hit[1] != lab:
            problems.append(f"clip {cid!r}: metadata says {lab.name()!r}, file name says {hit[1].name()!r}")
        paths.append(hit[0] if hit is not None else None)
    if problems:
        raise DatasetError(str(folder), problems)
    meta = meta.copy()
    meta["path"] = pd.Series(paths, dtype=object)
    if how == "inner":
        meta = meta[meta["path"].notna()]
    if how == "outer":
        extra = files[~files["clip_id"].isin(set(meta["clip_id"]))]
        if len(extra):
            return concat_tables([meta, extra])
    return _normalise(meta)


# -- folds ---------------------------------------------------------------------------------
def _fold_rows(table: pd.DataFrame) -> np.ndarray:
    """Rows that take part in cross-validation: the training split."""
    return (table["split"] == "train").to_numpy()


def make_folds(
    table: pd.DataFrame, k: int = 5, seed: int = 0, gender_column: str | None = None
) -> pd.DataFrame:
    """A copy of ``table`` with ``fold`` filled for its training rows (test rows get -1):
    ``k`` actor-disjoint folds, balanced by clip count and, when ``gender_column`` names a
    column, by the number of actors of each gender. Deterministic for a given ``seed``
    (the seed breaks ties between equally sized actors).

    Method: actors in decreasing clip count go, one by one, to the fold with the fewest
    actors of their gender (when balancing gender), then the fewest clips; then pairs of
    actors (of the same gender) are swapped between folds while that narrows the spread of
    fold sizes.
    """
    out = table.copy()
    rows = _fold_rows(out)
    folds = np.full(len(out), -1, dtype=np.int64)
    if rows.any():
        folds[rows] = _assign_folds(out[rows], k, seed, gender_column, existing=None)
    out["fold"] = folds
    return out


def leave_one_actor_out(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with one fold per actor of its training rows (actors in sorted
    order get folds 0, 1, ...; test rows get -1): the leave-one-speaker-out protocol of
    small corpora. Raises :class:`DatasetError` naming clips without an actor."""
    out = table.copy()
    rows = _fold_rows(out)
    missing = [c for c, a, r in zip(out["clip_id"], out["actor"], rows) if r and _none(a) is None]
    if missing:
        raise DatasetError("leave_one_actor_out", [f"clip {c!r} has no actor" for c in missing])
    names = sorted({a for a, r in zip(out["actor"], rows) if r})
    idx = {a: i for i, a in enumerate(names)}
    out["fold"] = np.array([idx[a] if r else -1 for a, r in zip(out["actor"], rows)], dtype=np.int64)
    return out


def fold_problems(table: pd.DataFrame) -> list[str]:
    """Every actor of the training rows whose clips sit in more than one fold (one line each)."""
    rows = _fold_rows(table)
    sub = table[rows]
    sub = sub[(sub["fold"].to_numpy() >= 0) & sub["actor"].notna().to_numpy()]
    out = []
    for actor, folds in sub.groupby("actor", sort=True)["fold"]:
        fs = sorted(set(int(x) for x in folds))
        if len(fs) > 1:
            out.append(f"actor {actor} is in several folds: {fs}")
    return out


def ensure_folds(
    table: pd.DataFrame, k: int = 5, seed: int = 0, gender_column: str | None = None
) -> pd.DataFrame:
    """Keep the folds a table has; make them where they are missing.

    If every training row has a fold, returns an unchanged copy. If none has, the same as
    :func:`make_folds`. If some have, an actor that already has a fold keeps it for all its
    clips, and the remaining actors are added to the existing folds with the same balancing
    rule (``k`` is then the number of existing folds, or ``k`` if larger).
    """
    rows = _fold_rows(table)
    f = table["fold"].to_numpy()
    if not rows.any():
        return table.copy()
    if np.all(f[rows] >= 0):
        problems = fold_problems(table)
        if problems:
            raise DatasetError("ensure_folds", problems + [
                "the folds must be actor-disjoint (an actor's clips all in one fold); fix the 'fold' column "
                "or leave it empty to have blemore make the folds"])
        return table.copy()
    if np.all(f[rows] < 0):
        return make_folds(table, k=k, seed=seed, gender_column=gender_column)
    out = table.copy()
    sub = out[rows]
    k = max(k, int(f[rows].max()) + 1)
    new = _assign_folds(sub, k, seed, gender_column, existing=sub["fold"].to_numpy())
    folds = f.copy()
    folds[rows] = new
    out["fold"] = folds
    return out


def _assign_folds(
    sub: pd.DataFrame, k: int, seed: int, gender_column: str | None, existing: np.ndarray | None
) -> np.ndarray:
    if k < 2:
        raise DatasetError("folds", [f"the number of folds k must be at least 2, got {k}"])
    actors = sub["actor"].tolist()
    missing = [c for c, a in zip(sub["clip_id"], actors) if a is None]
    if missing:
        raise DatasetError("make_folds", [f"clip {c!r} has no actor, so it cannot join an actor-disjoint fold"
                                          for c in missing])
    if gender_column is not None and gender_column not in sub.columns:
        raise DatasetError("gender column", [f"no column {gender_column!r} in the table (columns: {', '.join(sub.columns)})"])
    names = sorted(set(actors))
    idx = {a: i for i, a in enumerate(names)}
    a_of_row = np.array([idx[a] for a in actors], dtype=np.int64)
    count = np.bincount(a_of_row, minlength=len(names))
    if gender_column is not None:
        g_rows = sub[gender_column].tolist()
        genders: list[str] = []
        problems = []
        for a in names:
            gs = {_none(g) for g, ar in zip(g_rows, actors) if ar == a}
            if len(gs) > 1:
                problems.append(f"actor {a} has clips with different genders: {sorted(map(str, gs))}")
            genders.append(str(next(iter(gs))))
        if problems:
            raise DatasetError("make_folds", problems)
    else:
        genders = ["*"] * len(names)
    g_codes = {g: i for i, g in enumerate(sorted(set(genders)))}
    gen = np.array([g_codes[g] for g in genders], dtype=np.int64)

    fold_of = np.full(len(names), -1, dtype=np.int64)
    if existing is not None:
        problems = []
        for a in range(len(names)):
            fs = set(existing[a_of_row == a].tolist()) - {-1}
            if len(fs) > 1:
                problems.append(f"actor {names[a]} is in several folds: {sorted(fs)}")
            elif fs:
                fold_of[a] = fs.pop()
        if problems:
            raise DatasetError("ensure_folds", problems)
    free = np.flatnonzero(fold_of < 0)
    if existing is None and len(names) < k:
        raise DatasetError("make_folds", [f"{len(names)} actor(s) cannot fill {k} actor-disjoint folds"])

    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(len(names))
    order = sorted(free.tolist(), key=lambda a: (-count[a], tiebreak[a]))
    totals = np.zeros(k, dtype=np.int64)
    n_gender = np.zeros((k, len(g_codes)), dtype=np.int64)
    for a in np.flatnonzero(fold_of >= 0):
        totals[fold_of[a]] += count[a]
        n_gender[fold_of[a], gen[a]] += 1
    fold_pref = rng.permutation(k)  # seeded tie-break between equal folds
    for a in order:
        f = min(range(k), key=lambda j: (n_gender[j, gen[a]], totals[j], fold_pref[j]))
        fold_of[a] = f
        totals[f] += count[a]
        n_gender[f, gen[a]] += 1

    # improve the clip balance by swapping same-gender actors (only those assigned here)
    movable = set(free.tolist())
    for _ in range(100):
        best = None
        cur = float(np.var(totals))
        for i in movable:
            for j in movable:
                if i >= j or gen[i] != gen[j] or fold_of[i] == fold_of[j] or count[i] == count[j]:
                    continue
                t = totals.copy()
                d = count[i] - count[j]
                t[fold_of[i]] -= d
                t[fold_of[j]] += d
                v = float(np.var(t))
                if v < cur - 1e-9 and (best is None or v < best[0]):
                    best = (v, i, j)
        if best is None:
            break
        _, i, j = best
        d = count[i] - count[j]
        totals[fold_of[i]] -= d
        totals[fold_of[j]] += d
        fold_of[i], fold_of[j] = fold_of[j], fold_of[i]
    return fold_of[a_of_row]


# -- writing and views ---------------------------------------------------------------------
def _fmt(x: float | int | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)


def write_metadata(table: pd.DataFrame, csv_path: str | os.PathLike, labels: bool = True) -> Path:
    """Write a clip table in the official metadata layout (:data:`METADATA_COLUMNS`), atomically.

    ``video_id`` is the actor, ``mix`` 1/0, the emotions of a blend in canonical order with
    saliences in percent, ``version`` / ``intensity_level`` / ``situation`` from the clip id
    (empty for anonymised ids), ``fold`` empty for -1, ``gender`` empty when unknown.
    ``labels=False`` leaves the label columns empty (a test set with hidden labels).
    :func:`load_metadata` reads the file back to the same table (without ``path``).
    """
    rows = []
    has_gender = "gender" in table.columns
    for r in table.itertuples(index=False):
        try:
            info = parse_clip_id(r.clip_id)
        except ClipIdError:  # an id given by metadata: nothing to read from it
            info = ClipInfo(r.clip_id, None, None, "free")
        lab = _none(r.label) if labels else None
        row = dict.fromkeys(METADATA_COLUMNS, "")
        row["filename"] = r.clip_id
        row["video_id"] = _none(r.actor) or ""
        row["gender"] = (_none(r.gender) or "") if has_gender else ""
        if lab is not None:
            row["mix"] = str(int(lab.is_blend))
            row["emotion_1"] = lab.emotions[0]
            if lab.is_blend:
                row["emotion_2"] = lab.emotions[1]
                row["emotion_1_salience"] = str(lab.saliences[0])
                row["emotion_2_salience"] = str(lab.saliences[1])
        if info.version is not None:
            row["version"] = str(info.version)
        if info.kind == "single":
            row["intensity_level"] = _fmt(info.level)
        elif info.kind == "neutral":
            row["situation"] = _fmt(info.level)
        row["fold"] = str(int(r.fold)) if int(r.fold) >= 0 else ""
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(METADATA_COLUMNS), dtype=object)
    if "corpus" in table.columns:
        df["corpus"] = [_none(c) or "" for c in table["corpus"]]
    return _atomic_write_csv(df, Path(csv_path))


def _atomic_write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            df.to_csv(fh, index=False)
    return path


def truth_from_table(table: pd.DataFrame) -> dict[str, Label]:
    """``{clip_id: Label}`` for every row that has a label."""
    return {c: lab for c, lab in zip(table["clip_id"], table["label"]) if _none(lab) is not None}


def labels_for_clips(
    clip_ids: Iterable[str], table: pd.DataFrame | None = None
) -> tuple[dict[str, Label], list[str]]:
    """Labels of the given clip ids (or file names): from ``table`` when it has the clip with a
    label, else from the clip-id grammar. Returns ``({clip_id: Label}, unlabelled_ids)``;
    anonymised test ids that the table does not label end up in ``unlabelled_ids``. Ids that
    are neither in the table nor valid clip ids raise one :class:`~blemore.labels.ClipIdError`
    listing them all."""
    known = truth_from_table(table) if table is not None else {}
    in_table = set(table["clip_id"]) if table is not None else set()
    labels: dict[str, Label] = {}
    unlabelled: list[str] = []
    bad: list[tuple[str, str]] = []
    for raw in clip_ids:
        cid = clip_id_from_path(str(raw))
        if cid in known:
            labels[cid] = known[cid]
            continue
        try:
            info = parse_clip_id(str(raw))
        except ClipIdError as e:
            if cid in in_table:
                unlabelled.append(cid)
            else:
                bad.extend(e.bad)
            continue
        if info.label is None:
            unlabelled.append(cid)
        else:
            labels[cid] = info.label
    if bad:
        raise ClipIdError(bad)
    return labels, unlabelled


def fold_summary(table: pd.DataFrame, gender_column: str | None = None) -> pd.DataFrame:
    """Per fold: number of clips, actors, blends (and actors per gender when given)."""
    t = table[table["fold"] >= 0]
    g = t.groupby("fold")
    out = pd.DataFrame({
        "clips": g.size(),
        "actors": g["actor"].nunique(),
        "blends": g["is_blend"].sum(),
    })
    if gender_column is not None:
        per = t.drop_duplicates("actor").groupby(["fold", gender_column]).size().unstack(fill_value=0)
        out = out.join(per.add_prefix("actors_"))
    return out


__all__ = [
    "CLIP_COLUMNS", "OPTIONAL_COLUMNS", "MEDIA_EXTENSIONS", "METADATA_COLUMNS", "SPLITS",
    "DatasetError", "ClipIdError", "clip_table", "load_metadata", "index_folder", "build_index", "concat_tables",
    "empty_table", "make_folds", "ensure_folds", "fold_problems", "write_metadata", "truth_from_table", "labels_for_clips",
    "fold_summary", "free_id_problem", "parse_label_name", "leave_one_actor_out", "load_groups",
]


def load_groups(csv_path: str | os.PathLike) -> dict[str, str | None]:
    """Clip id -> actor (group) from a CSV: a metadata file as :func:`load_metadata` reads it
    (its actor column or the actor in BLEMORE clip ids, named as a run names them), else any
    CSV with a clip column (``clip_id``, ``clip``, ``filename``, ...; folders and extensions
    stripped) and an actor column (``actor``, ``speaker``, ``subject``, ... or ``group``; values
    verbatim). An empty actor is None (no group). For per-actor thresholds and per-actor
    normalisation of clips a model predicts. Raises :class:`DatasetError` listing every problem."""
    src = str(csv_path)
    try:
        table = load_metadata(csv_path)
        if table["actor"].notna().any():
            return {str(c): (None if _none(a) is None else str(a)) for c, a in zip(table["clip_id"], table["actor"])}
    except (DatasetError, ClipIdError):
        pass  # not a metadata file: read it as a plain clip -> actor table below
    df = _read_csv_strings(csv_path, "a CSV file")
    ccol = _find_column(df.columns, _FILENAME_NAMES)
    acol = _find_column(df.columns, _ACTOR_NAMES + ("group",))
    problems = []
    if ccol is None:
        problems.append(f"no clip column ({', '.join(_FILENAME_NAMES)}; columns: {', '.join(df.columns) or 'none'})"
                        + delimiter_hint(",".join(df.columns)))
    if acol is None:
        problems.append(f"no actor column ({', '.join(_ACTOR_NAMES + ('group',))}; "
                        f"columns: {', '.join(df.columns) or 'none'})")
    if problems:
        raise DatasetError(src, problems)
    out: dict[str, str | None] = {}
    for i, (c, a) in enumerate(zip(df[ccol], df[acol])):
        cid = Path(c.strip().replace("\\", "/")).name.split(".", 1)[0]
        if not cid:
            problems.append(f"row {i + 2}: empty clip id {c!r}")
            continue
        actor = a.strip() or None
        if cid in out and out[cid] != actor:
            problems.append(f"row {i + 2}: clip {cid} is given two actors, {out[cid]!r} and {actor!r}")
        out[cid] = actor
    if problems:
        raise DatasetError(src, problems)
    return out
