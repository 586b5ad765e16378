"""Input validation shared by the readers: typed settings and feature arrays.

**Typed settings** (:func:`coerce_settings`). Settings given as text (``--set
face-mesh.landmarks=false``) or as Python values are checked against the *declared types* of a
config dataclass's fields and converted: ``bool`` takes ``true/false/yes/no/on/off/1/0``
(any case) or a real bool, never ``"maybe"``; ``int`` takes integers or ASCII-digit text (not
bools, not ``2.5``); ``float`` takes finite numbers; ``X | None`` also takes
``none``/``null``/an empty string; ``str`` takes text. Every bad setting is listed in one
:class:`SettingsError` naming the owner (e.g. the extractor) and the field.

**Feature arrays** (:func:`array_problem`, :func:`nonfinite_rows`). What makes a loaded
feature array unusable (not numeric, object dtype, not 1-D/2-D, zero frames, zero columns)
and which rows are all NaN/inf, so that readers and predictors name the clip instead of
failing later or predicting garbage silently.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping

import numpy as np

from blemore.errors import BlemoreError

__all__ = ["delimiter_hint", "SettingsError", "InputWarning", "coerce_settings", "coerce_value", "array_problem", "nonfinite_rows",
           "input_problems"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", ""}


def delimiter_hint(header: str) -> str:
    """A hint for a CSV whose header line looks separated by something other than commas
    (``" (the file looks semicolon-separated: ...)"``), else ``""``."""
    for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        if header.count(sep) >= 1 and header.count(",") < header.count(sep):
            return (f" (the file looks {name}-separated; blemore reads comma-separated CSV: save it with commas, "
                    f"e.g. pandas.read_csv(path, sep={sep!r}).to_csv(path, index=False))")
    return ""


class SettingsError(BlemoreError, ValueError):
    """One or more settings whose value does not fit the declared type (lists them all)."""


class InputWarning(UserWarning):
    """Inputs a model can score but whose scores mean little (NaN rows, far outside training)."""


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return tp, False


def coerce_value(tp: Any, value: Any) -> Any:
    """``value`` converted to the type ``tp`` (bool, int, float, str, or ``X | None``);
    ``ValueError`` with a short reason when it does not fit."""
    base, optional = _unwrap_optional(tp)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE)):
        return None
    text = value.strip() if isinstance(value, str) else None
    if base is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError("expected true or false (also yes/no, on/off, 1/0)")
    if base is int:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        if text is not None and text.lstrip("+-").isascii() and text.lstrip("+-").isdigit() and len(text) <= 18:
            return int(text)
        raise ValueError("expected a whole number")
    if base is float:
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            v = float(value)
        elif text is not None and text.isascii() and 0 < len(text) <= 64:
            try:
                v = float(text)
            except ValueError:
                raise ValueError("expected a number") from None
        else:
            raise ValueError("expected a number")
        if not math.isfinite(v):
            raise ValueError("expected a finite number")
        return v
    if base is str:
        if isinstance(value, str):
            return value
        raise ValueError("expected text")
    return value  # a type this layer does not know: left to the dataclass


def coerce_settings(cls: type, settings: Mapping[str, Any], owner: str = "") -> dict[str, Any]:
    """Check and convert ``settings`` against the fields of the dataclass ``cls``. Unknown
    fields and values that do not fit are listed in one :class:`SettingsError`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    where = f"{owner}." if owner else ""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for k, v in settings.items():
        if k not in fields:
            problems.append(f"{where}{k}: unknown setting; known: {', '.join(sorted(fields))}")
            continue
        try:
            out[k] = coerce_value(hints.get(k, Any), v)
        except ValueError as e:
            tp = hints.get(k)
            tname = getattr(tp, "__name__", None) or str(tp)
            problems.append(f"{where}{k}={str(v)[:60]!r}: {e} ({tname})")
    if problems:
        raise SettingsError("invalid setting(s):\n  " + "\n  ".join(problems))
    return out


# -- feature arrays --------------------------------------------------------------------------
def array_problem(arr: Any) -> str | None:
    """Why a loaded feature array cannot be used as ``(frames, dims)`` features (None if it can).
    1-D arrays are one frame of features."""
    if not isinstance(arr, np.ndarray):
        return f"not an array (got {type(arr).__name__})"
    if arr.dtype == object:
        return "an object array (features must be numbers)"
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.issubdtype(arr.dtype, np.complexfloating):
        return f"dtype {arr.dtype} is not a real number type"
    if arr.ndim not in (1, 2):
        return f"{arr.ndim}-D array of shape {arr.shape}; expected (T, D) = (frames, features) or (D,)"
    if arr.ndim == 2 and arr.shape[0] == 0:
        return f"zero frames (shape {arr.shape})"
    if arr.shape[-1] == 0:
        return f"zero features (shape {arr.shape})"
    return None


def nonfinite_rows(X: np.ndarray) -> np.ndarray:
    """Indices of rows of a 2-D array whose values are all NaN or infinite."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(~np.isfinite(X).any(axis=1))


def input_problems(X: np.ndarray, clip_ids: Any, mean: np.ndarray | None = None, scale: np.ndarray | None = None,
                   *, z_limit: float = 10.0, share: float = 0.1) -> dict[str, str]:
    """Rows of a model's input ``X`` (pooled features, one row per clip) whose predictions mean
    little, by clip id -> why: every value NaN/infinite, more than half of them, or (with the
    training ``mean`` and ``scale``) more than ``share`` of the finite values beyond ``z_limit``
    standard deviations of the training data."""
    X = np.asarray(X, dtype=np.float64)
    ids = list(clip_ids)
    out: dict[str, str] = {}
    if X.ndim != 2 or X.shape[1] == 0:
        return out
    finite = np.isfinite(X)
    n_bad = (~finite).sum(axis=1)
    far = np.zeros(len(X), dtype=np.int64)
    if mean is not None and scale is not None and len(mean) == X.shape[1]:
        with np.errstate(invalid="ignore", over="ignore"):
            z = np.abs((X - np.asarray(mean, np.float64)) / np.asarray(scale, np.float64))
        far = (finite & (z > z_limit)).sum(axis=1)
    D = X.shape[1]
    for i, cid in enumerate(ids):
        if n_bad[i] == D:
            out[str(cid)] = "every feature is NaN or infinite (the model sees the training mean)"
        elif n_bad[i] * 2 > D:
            out[str(cid)] = f"{int(n_bad[i])} of {D} features are NaN or infinite"
        elif far[i] > share * (D - n_bad[i]):
            out[str(cid)] = (f"far outside the training range: {int(far[i])} of {D - int(n_bad[i])} features "
                             f"beyond {z_limit:g} standard deviations (other data or other extractor settings?)")
    return out
