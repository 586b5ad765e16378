"""Weights files that load without executing code: safetensors for arrays, JSON for the rest.

:func:`save_state` writes a nested state (dicts with string keys, lists, tuples, numbers,
strings, booleans, None, numpy arrays and torch tensors) to one ``.safetensors`` file: every
array becomes a named tensor, and the structure around them (with ``{"__tensor__": name}``
placeholders) is stored as JSON in the file's metadata. :func:`load_state` reads it back
(torch tensors come back as torch tensors, numpy arrays as numpy arrays; tuples as lists).
Nothing is unpickled. :func:`sha256_file` is the content hash a bundle records per file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from blemore._io import atomic_write_bytes
from blemore.errors import BlemoreError

__all__ = ["save_state", "load_state", "sha256_file", "WeightsError"]

_META_KEY = "blemore_state"


class WeightsError(BlemoreError, ValueError):
    """A state that cannot be stored as safetensors + JSON, or a weights file that cannot be read."""


def _is_torch_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach") and hasattr(obj, "numpy")


def _flatten(obj: Any, path: str, tensors: dict[str, np.ndarray], problems: list[str]) -> Any:
    if isinstance(obj, np.ndarray) or _is_torch_tensor(obj):
        torch_ = not isinstance(obj, np.ndarray)
        arr = obj.detach().cpu().numpy() if torch_ else obj
        if arr.dtype == object:
            problems.append(f"{path or '<root>'}: object arrays cannot be stored")
            return None
        name = path or "root"
        tensors[name] = np.ascontiguousarray(arr)
        return {"__tensor__": name, "torch": torch_}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                problems.append(f"{path or '<root>'}: key {k!r} is not a string")
                continue
            if "/" in k or k.startswith("__"):
                problems.append(f"{path or '<root>'}: key {k!r} may not contain '/' or start with '__'")
                continue
            out[k] = _flatten(v, f"{path}/{k}" if path else k, tensors, problems)
        return out
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{path}/{i}" if path else str(i), tensors, problems) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    problems.append(f"{path or '<root>'}: a {type(obj).__name__} cannot be stored (arrays and plain values only)")
    return None


def save_state(path: str | os.PathLike, state: Any) -> Path:
    """Write ``state`` to ``path`` (a ``.safetensors`` file). Raises :class:`WeightsError`
    listing every value that cannot be stored."""
    from safetensors.numpy import save

    tensors: dict[str, np.ndarray] = {}
    problems: list[str] = []
    structure = _flatten(state, "", tensors, problems)
    if problems:
        raise WeightsError(f"{path}: cannot store the state:\n  " + "\n  ".join(problems))
    # bytes, then blemore's atomic write: the file gets the umask's mode (save_file makes it 0600)
    return atomic_write_bytes(path, save(tensors, metadata={_META_KEY: json.dumps(structure)}))


def _restore(obj: Any, tensors: Mapping[str, np.ndarray], path: Path) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            name = obj["__tensor__"]
            if name not in tensors:
                raise WeightsError(f"{path}: tensor {name!r} named in the structure is missing")
            arr = tensors[name]
            if obj.get("torch"):
                import torch

                return torch.from_numpy(arr.copy())
            return arr
        return {k: _restore(v, tensors, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_restore(v, tensors, path) for v in obj]
    return obj


def load_state(path: str | os.PathLike) -> Any:
    """Read a state written by :func:`save_state` (no code is executed)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{p}: not a readable safetensors file ({e})") from None
    if _META_KEY not in meta:
        raise WeightsError(f"{p}: a safetensors file without blemore's state structure")
    try:
        structure = json.loads(meta[_META_KEY])
    except json.JSONDecodeError as e:
        raise WeightsError(f"{p}: the state structure is not valid JSON ({e})") from None
    return _restore(structure, tensors, p)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
