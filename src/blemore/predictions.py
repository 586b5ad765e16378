"""Prediction tables and challenge entries: read every probability table blemore writes or the
challenge uses, and validate one clip's challenge entry the same way everywhere.

**Probability tables** (:func:`read_probabilities`). One reader for all the CSVs that hold six
class probabilities per clip:

* blemore's own: a ``clip_id`` column and ``p_ang, p_disg, p_fea, p_hap, p_sad, p_neu``
  (run folders' ``predictions/validation.csv`` and ``test.csv``, ``blemore predict``'s CSV,
  the demo's ``predictions.csv``; other columns are ignored);
* the official/legacy form: a ``filename`` column and ``ang, disg, fea, hap, sad, neu``.

Column names are matched case-insensitively after stripping blanks (and a UTF-8 BOM). The
result keeps the ids exactly as written (``test_0001.mov`` stays ``test_0001.mov``) and an
``(n, 6)`` float64 array in :data:`~blemore.labels.EMOTIONS` order. Every problem is a
:class:`ProbabilityTableError` (a :class:`~blemore.errors.BlemoreError`) that names the file and
lists everything wrong at once: missing columns (with the columns found, and a hint when the file
looks semicolon- or tab-separated), ambiguous columns, empty or duplicate ids, values that are not
finite numbers or lie outside [0, 1] (with their rows).

**Challenge entries** (:func:`entry_problems`). A clip's prediction is a list of one or two
``{"emotion", "salience"}`` objects: a single emotion with salience 100, or a blend of two
distinct non-neutral emotions with saliences 50/50, 70/30 or 30/70. ``blemore submit`` and
``blemore score`` both use this one check, so a file scored locally is a file the challenge
accepts (``score`` additionally accepts numeric strings such as ``"70"``).

**From codes** (:func:`code_name`, :func:`code_entries`, :func:`prediction_table`): decoded
``(mask, target)`` codes -> readable names (``ang+hap 70/30``) -> one clip's challenge entry ->
a readable table; every module that shows or submits predictions (runner, model bundles,
:func:`blemore.submission.submission_dict`, demo) goes through these.

**JSON** (:func:`load_json_strict`): duplicate keys in any JSON object are an error naming the
file and the key (``json`` would silently keep the last one).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from blemore.errors import BlemoreError
from blemore.labels import BLEND_EMOTIONS, EMOTIONS, INVALID, NEUTRAL, TARGETS, mask_names
from blemore.validate import delimiter_hint

__all__ = [
    "ProbabilityTableError", "PredictionFileError", "ProbabilityTable", "read_probabilities", "ID_COLUMNS", "PROB_PREFIXES",
    "entry_problems", "load_json_strict", "code_name", "code_names", "code_entries", "prediction_table",
    "prediction_frame", "FRAME_COLUMNS",
]

ID_COLUMNS = ("clip_id", "filename")
"""Accepted names of the id column, in order of preference."""

PROB_PREFIXES = ("p_", "")
"""Accepted probability column forms: ``p_ang`` (blemore) and ``ang`` (official)."""

_VALID_RATIOS = ((50, 50), (70, 30), (30, 70))
_TOL = 1e-6


class ProbabilityTableError(BlemoreError, ValueError):
    """A probability table that cannot be read; the message names the file and every problem."""


class PredictionFileError(BlemoreError, ValueError):
    """A predictions/JSON file that cannot be read; the message names the file."""


class ProbabilityTable(NamedTuple):
    """Ids as written in the table and an ``(n, 6)`` float64 array (EMOTIONS order).
    Unpacks as ``ids, proba = read_probabilities(...)``."""

    ids: list[str]
    proba: np.ndarray


def _head(items: Sequence[str], n: int = 10) -> str:
    s = ", ".join(items[:n])
    return s + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def _read_bytes(path: str | os.PathLike, error: type[BlemoreError], expected: str) -> bytes:
    """The bytes of ``path``; ``error`` naming the file when it is missing, a folder (not
    ``expected``) or unreadable."""
    src = str(path)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise error(f"{src}: file not found") from None
    except IsADirectoryError:
        raise error(f"{src}: is a folder, expected {expected}") from None
    except OSError as e:
        raise error(f"{src}: cannot be read ({e.strerror or e})") from None


def _read_frame(path: str | os.PathLike) -> tuple[Any, str]:
    import pandas as pd

    src = str(path)
    raw = _read_bytes(path, ProbabilityTableError, "a CSV file")
    if not raw.strip():
        raise ProbabilityTableError(f"{src}: the file is empty (expected a CSV header and one row per clip)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProbabilityTableError(f"{src}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    if "\x00" in text:
        raise ProbabilityTableError(f"{src}: not a text CSV file (it contains NUL bytes)")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as e:
        raise ProbabilityTableError(f"{src}: not a readable CSV file ({str(e).strip()})") from None
    return df, text


def _delimiter_hint(text: str) -> str:
    return delimiter_hint(text.splitlines()[0] if text else "")


def read_probabilities(path_or_frame: Any) -> ProbabilityTable:
    """Read a probability table (a CSV path or a DataFrame) in any of the accepted forms
    (module docstring). Raises :class:`ProbabilityTableError` naming the input."""
    import pandas as pd

    if isinstance(path_or_frame, pd.DataFrame):
        df, text, src = path_or_frame.copy(), "", "<DataFrame>"
        df.columns = [str(c) for c in df.columns]
    elif isinstance(path_or_frame, (str, os.PathLike)):
        src = str(path_or_frame)
        df, text = _read_frame(path_or_frame)
    else:
        raise ProbabilityTableError(
            f"expected a CSV path or a pandas DataFrame of probabilities, got {type(path_or_frame).__name__}")

    norm: dict[str, list[Any]] = {}
    for c in df.columns:
        norm.setdefault(str(c).strip().lstrip("\ufeff").lower(), []).append(c)
    found = ", ".join(repr(str(c)) for c in df.columns[:20]) + (" ..." if len(df.columns) > 20 else "")
    problems: list[str] = []

    id_name = next((n for n in ID_COLUMNS if n in norm), None)
    prefix = next((p for p in PROB_PREFIXES if all(p + e in norm for e in EMOTIONS)), None)
    if id_name is None or prefix is None:
        missing, why = [], []
        if id_name is None:
            missing.append(" or ".join(ID_COLUMNS))
            why.append("an id column")
        if prefix is None:
            best = max(PROB_PREFIXES, key=lambda p: sum(p + e in norm for e in EMOTIONS))
            missing.extend(best + e for e in EMOTIONS if best + e not in norm)
            why.append("one probability column per emotion, named p_ang... or ang...")
        raise ProbabilityTableError(
            f"{src}: missing column(s) {', '.join(missing)} ({'; '.join(why)}); found {found or 'no columns'}"
            + _delimiter_hint(text))
    cols = [id_name] + [prefix + e for e in EMOTIONS]
    for c in cols:
        if len(norm[c]) > 1:
            problems.append(f"column {c!r} appears {len(norm[c])} times ({', '.join(map(repr, norm[c]))})")
    if problems:
        raise ProbabilityTableError(f"{src}: " + "; ".join(problems))
    if len(df) == 0:
        raise ProbabilityTableError(f"{src}: no rows (a header but no clips)")

    ids = [str(v).strip() for v in df[norm[id_name][0]]]
    empty = [str(i + 2) for i, v in enumerate(ids) if not v]
    if empty:
        problems.append(f"empty {id_name} in row(s) {_head(empty)}")
    seen: set[str] = set()
    dup = sorted({v for v in ids if v and (v in seen or seen.add(v))})  # type: ignore[func-returns-value]
    if dup:
        problems.append(f"{len(dup)} id(s) appear more than once: {_head(dup)}")
    proba = np.empty((len(df), len(EMOTIONS)), dtype=np.float64)
    bad: list[str] = []
    for j, e in enumerate(EMOTIONS):
        col = df[norm[prefix + e][0]]
        vals = pd.to_numeric(col.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
        for i in np.flatnonzero(~np.isfinite(vals)):
            bad.append(f"row {i + 2} ({ids[i]}), column {prefix + e}: {col.iloc[i]!r} is not a finite number")
        out = np.isfinite(vals) & ((vals < -_TOL) | (vals > 1 + _TOL))
        for i in np.flatnonzero(out):
            bad.append(f"row {i + 2} ({ids[i]}), column {prefix + e}: {vals[i]:g} is not a probability in [0, 1]")
        proba[:, j] = vals
    if bad:
        problems.append(f"{len(bad)} bad value(s):\n  " + "\n  ".join(bad[:20])
                        + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""))
    if problems:
        raise ProbabilityTableError(f"{src}: " + "; ".join(problems))
    return ProbabilityTable(ids, proba)


# -- challenge entries ---------------------------------------------------------------------
def _number(x: object, strings: bool) -> float | None:
    """``x`` as a finite float, or None (bools are not numbers; strings only when allowed)."""
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        try:
            v = float(x)
        except OverflowError:  # a huge JSON integer
            return None
        return v if math.isfinite(v) else None
    if strings and isinstance(x, str) and len(x) <= 64:
        try:
            v = float(x.strip())
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def entry_problems(key: str, value: object, *, numeric_strings: bool = False, strict: bool = True) -> list[str]:
    """Every problem of one clip's challenge entry (empty when valid), each prefixed with ``key``.

    Valid: a list of one ``{"emotion", "salience"}`` object with a known emotion and salience
    100, or of two with distinct non-neutral emotions whose saliences round to 50/50, 70/30 or
    30/70. Saliences are JSON numbers (``numeric_strings`` also accepts ``"70"``); they must be
    finite, within [0, 100] and sum to 100. ``strict=False`` only checks the form (a list of
    objects with known emotions and finite numeric saliences, any length): what a scorer needs
    to count a prediction as wrong rather than refuse it.
    """
    where = f"{key}:"
    if not isinstance(value, (list, tuple)):
        return [f"{where} the prediction must be a list of {{'emotion', 'salience'}} objects, "
                f"got {type(value).__name__}"]
    if strict and len(value) not in (1, 2):
        return [f"{where} one or two emotions expected, got {len(value)}"
                + (" (an empty list)" if not value else "")]
    problems: list[str] = []
    emotions: list[str] = []
    saliences: list[float] = []
    for d in value:
        if not isinstance(d, Mapping) or "emotion" not in d or "salience" not in d:
            problems.append(f"{where} each entry must be an object with 'emotion' and 'salience', got {d!r:.80}")
            continue
        extra = sorted(str(k) for k in d if k not in ("emotion", "salience"))
        if extra and strict:
            problems.append(f"{where} unexpected field(s) {', '.join(map(repr, extra))}")
        e, s = d["emotion"], d["salience"]
        if not isinstance(e, str) or e not in EMOTIONS:
            problems.append(f"{where} unknown emotion {e!r:.40} (expected one of {', '.join(EMOTIONS)})")
        v = _number(s, numeric_strings)
        if v is None:
            kind = "a number" if numeric_strings else "a JSON number"
            problems.append(f"{where} salience {s!r:.40} of {e!r:.20} is not {kind} (finite)")
        elif strict and (v < -_TOL or v > 100 + _TOL):
            problems.append(f"{where} salience {v:g} of {e!r:.20} is outside [0, 100]")
        emotions.append(e if isinstance(e, str) else repr(e))
        saliences.append(v if v is not None else float("nan"))
    if problems or not strict:
        return problems
    total = sum(saliences)
    if abs(total - 100) > 1e-6:
        problems.append(f"{where} saliences {' + '.join(f'{s:g}' for s in saliences)} sum to {total:g}, not 100")
    if len(value) == 2:
        if emotions[0] == emotions[1]:
            problems.append(f"{where} the same emotion {emotions[0]!r} twice")
        elif NEUTRAL in emotions:
            problems.append(f"{where} neutral cannot be part of a blend (two emotions must both be among "
                            f"{', '.join(BLEND_EMOTIONS)})")
        elif not problems and tuple(int(round(s)) for s in saliences) not in _VALID_RATIOS:
            problems.append(f"{where} blend saliences {saliences[0]:g}/{saliences[1]:g} are not 50/50, 70/30 "
                            "or 30/70")
    return problems


# -- JSON ------------------------------------------------------------------------------------
class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def load_json_strict(path: str | os.PathLike, error: type[BlemoreError] = PredictionFileError) -> Any:
    """Read a JSON file; ``error`` (a BlemoreError class) naming the file for a missing or
    unreadable file, invalid JSON, a duplicate key in any object, or a number too large."""
    src = str(path)
    raw = _read_bytes(path, error, "a JSON file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{src}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise error(f"{src}: the file is empty (expected a JSON object)")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as e:
        raise error(f"{src}: the key {str(e.args[0])!r:.80} appears twice in one JSON object "
                    "(each clip may be predicted once)") from None
    except json.JSONDecodeError as e:
        raise error(f"{src}: not valid JSON ({e})") from None
    except (ValueError, RecursionError) as e:  # int-conversion limit, absurd nesting
        raise error(f"{src}: not usable JSON ({str(e)[:120]})") from None


# ----------------------------------------------------------------------------- from codes
# Decoded codes -> names -> challenge entries -> prediction table. Every place that turns
# ``(mask, target)`` codes (:mod:`blemore.decode`, :mod:`blemore.decoders`) into something a
# person or the challenge reads goes through these: the runner's prediction CSVs, model
# bundles' tables, the challenge JSON (:func:`blemore.submission.submission_dict`), the demo.

def code_name(mask: int, target: int) -> str:
    """A readable prediction: the target's name (``hap``, ``ang+hap 70/30``) when ``target``
    is valid, else the emotions present in ``mask`` joined by ``+`` (``""`` for none)."""
    if int(target) != INVALID:
        return TARGETS[int(target)].name()
    return "+".join(mask_names(int(mask)))


def code_names(mask: Sequence[int], target: Sequence[int]) -> list[str]:
    """:func:`code_name` of every clip."""
    return [code_name(m, t) for m, t in zip(mask, target)]


def code_entries(mask: int, target: int) -> list[dict]:
    """One clip's challenge entry ``[{"emotion", "salience"}, ...]``: the target's own entry
    when valid; otherwise the emotions present with equal saliences (``neu`` when none)."""
    if int(target) != INVALID:
        return TARGETS[int(target)].to_prediction()
    emos = mask_names(int(mask)) or [NEUTRAL]
    return [{"emotion": e, "salience": round(100.0 / len(emos), 1)} for e in emos]


def prediction_table(clip_ids: Sequence[str], proba: np.ndarray, mask: Sequence[int], target: Sequence[int],
                     decimals: int = 4) -> Any:
    """A readable pandas DataFrame, one row per clip: ``clip_id``, ``emotions`` (``ang+hap``),
    ``salience`` (``70/30``; empty when the target is invalid) and ``p_<emotion>`` probabilities
    rounded to ``decimals``."""
    import pandas as pd

    rows = []
    for cid, m, t, p in zip(clip_ids, mask, target, np.asarray(proba)):
        if int(t) != INVALID:
            lab = TARGETS[int(t)]
            emos, sal = "+".join(lab.emotions), "/".join(str(s) for s in lab.saliences)
        else:
            emos, sal = "+".join(mask_names(int(m))), ""
        rows.append({"clip_id": cid, "emotions": emos, "salience": sal,
                     **{f"p_{e}": round(float(v), decimals) for e, v in zip(EMOTIONS, p)}})
    return pd.DataFrame(rows, columns=["clip_id", "emotions", "salience", *[f"p_{e}" for e in EMOTIONS]])


FRAME_COLUMNS: tuple[str, ...] = ("clip", "emotions", "saliences", "label", *[f"p_{e}" for e in EMOTIONS])
"""The columns of :func:`prediction_frame` (what ``blemore.load_model(...).predict`` returns)."""


def prediction_frame(clip_ids: Sequence[str], proba: np.ndarray, mask: Sequence[int], target: Sequence[int],
                     decimals: int = 4) -> Any:
    """The API's prediction DataFrame, one row per clip, columns :data:`FRAME_COLUMNS`:

    ``clip``: the clip id; ``emotions``: the predicted emotions joined by ``+`` (``ang+hap``,
    ``hap``); ``saliences``: their saliences in the same order joined by ``/`` (``70/30``,
    ``100``; empty when the decoded target is invalid); ``label``: the composite form
    (:func:`code_name`: ``ang+hap 70/30``, ``hap``); ``p_ang`` ... ``p_neu``: the six class
    probabilities (rounded to ``decimals``). Built from :func:`prediction_table`.
    """
    t = prediction_table(clip_ids, proba, mask, target, decimals=decimals)
    t = t.rename(columns={"clip_id": "clip", "salience": "saliences"})
    t.insert(3, "label", code_names(mask, target))
    return t[list(FRAME_COLUMNS)]
