"""The extractor protocol and registry.

Built-in extractor modules are listed once, in :data:`BUILTIN_EXTRACTORS`; the registry
(:data:`EXTRACTORS`, wrapped by :func:`register_extractor`, :func:`create_extractor`,
:func:`extractor_names`, :func:`get_extractor_class`) imports them itself on first lookup.

An extractor turns one media file into a per-clip time series ``(T, D)`` float32 with
per-row timestamps. It declares its name, modality, output rate, dimension and column
names, and a config dataclass whose values are stored with its features (``config.json``)
so that features made with other settings are never mixed into the same folder.

Modules that define extractors must not import heavy libraries (mediapipe, transformers,
opensmile, ...) at import time: import them inside :meth:`Extractor.load`, so that listing
the registry stays fast and works where an optional dependency is missing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from blemore.errors import BlemoreError, RegistryError
from blemore.registry import Registry
from blemore.store import STATUSES  # one list of clip statuses, owned by the store


class ExtractorUnavailableError(BlemoreError, RuntimeError):
    """An extractor cannot run here: a missing package, model file or optional dependency."""


@dataclass
class ExtractResult:
    """What one clip gave: features (T, D) float32, times (T,) seconds, and a status."""

    features: np.ndarray
    times: np.ndarray
    status: str = "ok"
    error: str | None = None
    info: dict = field(default_factory=dict)  # e.g. {"frames": n, "seconds": s}

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {STATUSES}")


@dataclass
class ExtractorConfig:
    """Base config: subclasses add their own fields (all JSON-serialisable)."""


class Extractor(ABC):
    """Base class. Subclasses set the class attributes and implement ``extract``."""

    name: ClassVar[str]
    modality: ClassVar[str]  # "face", "video" or "audio"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type[ExtractorConfig]] = ExtractorConfig
    default_weights: ClassVar[str | None] = None  # e.g. a Hugging Face id; None = ships in a package
    description: ClassVar[str] = ""

    def __init__(self, config: ExtractorConfig | None = None, **overrides: Any):
        cfg = config if config is not None else self.config_class()
        if overrides:
            cfg = dataclasses.replace(cfg, **overrides)
        self.config = cfg
        self._loaded = False

    # -- declared shape ------------------------------------------------------------
    @property
    @abstractmethod
    def columns(self) -> list[str]:
        """Column names, ``len(columns) == dim``."""

    @property
    def dim(self) -> int:
        return len(self.columns)

    @property
    @abstractmethod
    def rate(self) -> float | None:
        """Output rows per second (None when rows are not evenly spaced)."""

    # -- life cycle ----------------------------------------------------------------
    def load(self) -> None:
        """Load models once per worker (idempotent)."""
        self._loaded = True

    @classmethod
    def weights_available(cls) -> bool:
        """Whether the weights can be used here without a download."""
        return True

    @abstractmethod
    def extract(self, path: str | Path) -> ExtractResult:
        """Extract one clip. Never raises for bad media: returns a failed result instead."""

    # -- identity --------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {
            "extractor": self.name,
            "version": self.version,
            "modality": self.modality,
            "settings": dataclasses.asdict(self.config),
            "dim": self.dim,
            "columns": list(self.columns),
            "rate": self.rate,
        }

    def config_hash(self) -> str:
        d = self.config_dict()
        key = json.dumps({k: d[k] for k in ("extractor", "version", "settings")}, sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


BUILTIN_EXTRACTORS: tuple[str, ...] = (
    "blemore.extractors.face_mesh",
    "blemore.extractors.face_expression",
    "blemore.extractors.egemaps",
    "blemore.extractors.hf_audio",
    "blemore.extractors.hf_image",
    "blemore.extractors.hf_video",
    "blemore.extractors.hicmae",
    "blemore.extractors.wav2vec2",
    "blemore.extractors.timesformer",
    "blemore.extractors.hsemotion",
    "blemore.extractors.emotion2vec",
)
"""The modules that define the built-in extractors: **the single place to list a new one.**
:data:`EXTRACTORS` imports them on its first lookup, so ``create_extractor(name)`` works after
importing this module alone (no import-time registration elsewhere)."""

EXTRACTORS: Registry[type[Extractor]] = Registry("extractor", builtins=BUILTIN_EXTRACTORS, error=RegistryError,
                                                 set_name=False)
"""Extractor name -> class. Unknown names raise :class:`~blemore.errors.RegistryError` (a
``KeyError``) listing every registered name."""


def register_extractor(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator: make an extractor available by its ``name`` (a different class under a
    taken name is refused). Built-in modules must also be listed in :data:`BUILTIN_EXTRACTORS`."""
    return EXTRACTORS.register()(cls)


def extractor_names() -> list[str]:
    """Every registered extractor name (built-ins included), sorted."""
    return EXTRACTORS.names()


def get_extractor_class(name: str) -> type[Extractor]:
    """The extractor class registered as ``name``."""
    return EXTRACTORS.get(name)


def create_extractor(name: str, **settings: Any) -> Extractor:
    """Instantiate a registered extractor with config overrides."""
    return get_extractor_class(name)(**settings)
