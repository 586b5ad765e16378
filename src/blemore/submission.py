"""Challenge submission files: the predictions JSON, the CodaBench zip, and their validation.

The challenge format is ``{"predictions": {KEY: [{"emotion": CODE, "salience": NUMBER}, ...]}}``.

**Keys.** The official template names every test clip by its file name, ``test_0001.mov`` ...
``test_0594.mov``. blemore works with clip ids (no extension) internally, so
:func:`make_submission` maps every clip id or file name to ``<clip id>.mov``
(:func:`submission_key`): ``test_0001``, ``test_0001.mov`` and ``/x/test_0001.mp4`` all become
``test_0001.mov``. Two inputs that map to the same key are an error.

**Values.** A single emotion carries salience ``100.0``; a blend two distinct non-neutral
emotions with saliences 50/50, 70/30 or 30/70 (the order of the two entries is free).

:func:`validate_submission` checks a submission against the official template
(:func:`load_template`; a copy ships inside the package) and lists *every* problem;
:func:`write_submission` validates and writes the CodaBench zip, whose single member is
``submission_template.json``. All writes are atomic.
"""
from __future__ import annotations

import difflib
import json
import os
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from blemore._io import atomic_write_bytes as _atomic_write_bytes
from blemore.errors import BlemoreError, format_problems
from blemore.labels import Label, clip_id_from_path
from blemore.metrics import unwrap_predictions
from blemore.predictions import PredictionFileError, code_entries, entry_problems, load_json_strict

SUBMISSION_EXTENSION = ".mov"
"""The extension of every key in the challenge JSON (the clips are ``.mov`` files)."""

ZIP_MEMBER = "submission_template.json"
"""The name CodaBench expects for the JSON inside the zip."""


class SubmissionError(BlemoreError, ValueError):
    """A submission that is not valid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str], source: str = "submission"):
        self.problems = list(problems)
        super().__init__(format_problems(source, self.problems))


def submission_key(clip_id: str) -> str:
    """The challenge key of a clip id or file name: ``test_0001`` -> ``test_0001.mov``."""
    return clip_id_from_path(clip_id) + SUBMISSION_EXTENSION


# -- reading and writing -------------------------------------------------------------------
def load_template(template: str | os.PathLike | Mapping | None = None) -> dict:
    """The official template: the copy shipped with blemore when ``template`` is None,
    else a JSON file path, or a mapping returned as it is."""
    if isinstance(template, Mapping):
        return dict(template)
    if template is None:
        text = resources.files("blemore").joinpath("data", "submission_template.json").read_text("utf-8")
        return json.loads(text)
    return load_json(template)


def template_keys(template: str | os.PathLike | Mapping | None = None) -> list[str]:
    """The keys (``test_0001.mov`` ...) of the template's predictions, in file order."""
    return list(unwrap_predictions(load_template(template)).keys())


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a ``BlemoreError`` (``ValueError``) naming the file for a missing or
    unreadable file, invalid JSON or a key that appears twice in one object."""
    return load_json_strict(path)


def load_predictions(path: str | os.PathLike) -> dict:
    """Read a predictions JSON (with or without the top-level ``"predictions"`` key) and
    return the ``{key: [entries]}`` mapping."""
    obj = load_json(path)
    preds = unwrap_predictions(obj) if isinstance(obj, Mapping) else obj
    if not isinstance(preds, Mapping):
        raise PredictionFileError(f"{path}: expected a JSON object {{clip: [{{'emotion', 'salience'}}, ...]}}, "
                                  f"got {type(preds).__name__}")
    return dict(preds)


def _entries(value: Label | Sequence[Mapping]) -> list[dict]:
    if isinstance(value, Label):
        return value.to_prediction()
    return [dict(d) if isinstance(d, Mapping) else d for d in value]  # validated later


def make_submission(predictions: Mapping[str, Label | Sequence[Mapping]]) -> dict:
    """``{"predictions": {submission_key(id): entries}}`` sorted by key, from a mapping of clip
    ids or file names (optionally wrapped in ``"predictions"``) to :class:`Label` values or
    challenge-format entry lists. Raises :class:`SubmissionError` when two inputs share a key."""
    preds = unwrap_predictions(predictions)
    if not isinstance(preds, Mapping):
        raise SubmissionError([f"expected a mapping of clips to predictions, got {type(preds).__name__}"])
    out: dict[str, list] = {}
    origin: dict[str, str] = {}
    problems = []
    for k, v in preds.items():
        key = submission_key(str(k))
        if key in out:
            problems.append(f"{k!r} and {origin[key]!r} are both clip {key!r}")
            continue
        origin[key] = str(k)
        out[key] = _entries(v)
    if problems:
        raise SubmissionError(problems)
    return {"predictions": {k: out[k] for k in sorted(out)}}


def submission_dict(clip_ids: Sequence[str], mask: Sequence[int], target: Sequence[int]) -> dict:
    """The challenge JSON ``{"predictions": {"<clip_id>.mov": [{"emotion", "salience"}, ...]}}``
    from decoded ``(mask, target)`` codes (entries by :func:`blemore.predictions.code_entries`,
    keys by :func:`submission_key`)."""
    return make_submission({cid: code_entries(int(m), int(t)) for cid, m, t in zip(clip_ids, mask, target)})




def write_predictions(predictions: Mapping, path: str | os.PathLike) -> Path:
    """Write ``{"predictions": {...}}`` (keys as given, :class:`Label` values converted) as
    indented JSON, atomically."""
    preds = unwrap_predictions(predictions)
    obj = {"predictions": {str(k): _entries(v) for k, v in preds.items()}}
    return _atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def _zip_bytes(obj: Mapping) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(ZIP_MEMBER, json.dumps(obj, indent=2) + "\n")
    return buf.getvalue()


def write_submission(
    predictions: Mapping,
    zip_path: str | os.PathLike,
    template: str | os.PathLike | Mapping | None = None,
    validate: bool = True,
) -> Path:
    """Write the CodaBench zip (one member, ``submission_template.json``), atomically.

    ``predictions`` maps clip ids or file names to labels or entry lists (see
    :func:`make_submission`). With ``validate`` (the default) nothing is written unless
    :func:`validate_submission` finds no problem; otherwise :class:`SubmissionError`."""
    obj = make_submission(predictions)
    if validate:
        validate_submission(obj, template, raise_error=True)
    return _atomic_write_bytes(Path(zip_path), _zip_bytes(obj))


def read_submission(zip_path: str | os.PathLike) -> dict:
    """The JSON object inside a CodaBench zip (a ``BlemoreError``/``ValueError`` naming the file when it is not one)."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            if ZIP_MEMBER not in zf.namelist():
                raise PredictionFileError(f"{zip_path}: no {ZIP_MEMBER} inside (members: {', '.join(zf.namelist())})")
            return json.loads(zf.read(ZIP_MEMBER).decode("utf-8"))
    except (zipfile.BadZipFile, FileNotFoundError) as e:
        raise PredictionFileError(f"{zip_path}: not a readable zip file ({e})") from None


# -- validation ------------------------------------------------------------------------------
def _entry_problems(key: str, value: object) -> list[str]:
    """One clip's problems: the shared check of :func:`blemore.predictions.entry_problems`
    (the same one ``blemore score`` applies), saliences as JSON numbers."""
    return entry_problems(key, value)


def validate_submission(
    obj: object,
    template: str | os.PathLike | Mapping | None = None,
    *,
    raise_error: bool = False,
) -> list[str]:
    """Every problem of a submission object against the official template.

    Checks: a JSON object with a ``"predictions"`` object; every template key present and no
    other key (a key that only differs in extension gets a hint); each value a list of one
    or two ``{"emotion", "salience"}`` objects with known emotions and numeric saliences
    summing to 100; two emotions only as a valid blend (distinct, not neutral, 50/50, 70/30
    or 30/70). Returns the list of problems (empty when valid); with ``raise_error`` a
    non-empty list raises :class:`SubmissionError` instead.
    """
    problems: list[str] = []
    if not isinstance(obj, Mapping) or not isinstance(obj.get("predictions"), Mapping):
        problems.append("the submission must be a JSON object with a 'predictions' object "
                        "{\"predictions\": {\"test_0001.mov\": [...], ...}}")
    else:
        preds = obj["predictions"]
        expected = template_keys(template)
        exp_set = set(expected)
        extra = [k for k in preds if k not in exp_set]
        by_id = {clip_id_from_path(k): k for k in expected}
        for i, k in enumerate(extra):
            hint = by_id.get(clip_id_from_path(str(k)))
            if hint is None and i < 20:  # fuzzy hints for the first few only (cost)
                close = difflib.get_close_matches(str(k), expected, n=1)
                hint = close[0] if close else None
            problems.append(f"{k}: not a clip of the test set" + (f" (did you mean {hint!r}?)" if hint else ""))
        for k in expected:
            if k not in preds:
                problems.append(f"{k}: no prediction")
        for k, v in preds.items():
            problems.extend(_entry_problems(str(k), v))
    if problems and raise_error:
        raise SubmissionError(problems)
    return problems


__all__ = [
    "SUBMISSION_EXTENSION", "ZIP_MEMBER", "SubmissionError", "submission_key", "load_template",
    "template_keys", "load_json", "load_predictions", "make_submission", "submission_dict", "write_predictions",
    "write_submission", "read_submission", "validate_submission",
]
