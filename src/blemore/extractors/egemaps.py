"""``egemaps``: openSMILE's eGeMAPS v02 voice features from the clip's audio track.

By default the 25 low-level descriptors (loudness, spectral balance, MFCC 1-4, pitch, jitter,
shimmer, HNR, formants, ...) every 10 ms (row times are window starts); with
``functionals=True`` the 88 per-file functionals as a single row. The audio is decoded with
:func:`blemore.media.read_audio` (16 kHz mono, channels averaged).

A clip without an audio stream, or whose track is silent (peak below ``silence_db`` dBFS),
gets the status ``no-audio`` and no features.
"""
from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blemore.extractors.base import Extractor, ExtractorConfig, ExtractResult, register_extractor
from blemore.media import MediaError, NoAudioError, is_silent, read_audio

LLD_COLUMNS = (
    "Loudness_sma3", "alphaRatio_sma3", "hammarbergIndex_sma3", "slope0-500_sma3", "slope500-1500_sma3",
    "spectralFlux_sma3", "mfcc1_sma3", "mfcc2_sma3", "mfcc3_sma3", "mfcc4_sma3",
    "F0semitoneFrom27.5Hz_sma3nz", "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz", "HNRdBACF_sma3nz",
    "logRelF0-H1-H2_sma3nz", "logRelF0-H1-A3_sma3nz", "F1frequency_sma3nz", "F1bandwidth_sma3nz",
    "F1amplitudeLogRelF0_sma3nz", "F2frequency_sma3nz", "F2bandwidth_sma3nz", "F2amplitudeLogRelF0_sma3nz",
    "F3frequency_sma3nz", "F3bandwidth_sma3nz", "F3amplitudeLogRelF0_sma3nz",
)

_FUNCTIONAL_COLUMNS: list[str] | None = None


@dataclass
class EGeMAPSConfig(ExtractorConfig):
    """``functionals``: 88 per-file statistics instead of 25 descriptors per 10 ms;
    ``sample_rate``: decoding rate (Hz); ``silence_db``: peak level under which a track is silent."""

    functionals: bool = False
    sample_rate: int = 16000
    silence_db: float = -80.0


def _smile(functionals: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import opensmile

    level = opensmile.FeatureLevel.Functionals if functionals else opensmile.FeatureLevel.LowLevelDescriptors
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=level)


@register_extractor
class EGeMAPS(Extractor):
    """openSMILE eGeMAPS v02: 25 voice descriptors per 10 ms (or 88 functionals per clip)."""

    name = "egemaps"
    modality = "audio"
    version = "1"
    config_class = EGeMAPSConfig
    default_weights = None  # a feature definition shipped with opensmile, no weights
    description = "openSMILE eGeMAPSv02 low-level descriptors (25 per 10 ms) or functionals (88 per clip)"

    @property
    def columns(self) -> list[str]:
        global _FUNCTIONAL_COLUMNS
        if not self.config.functionals:
            return list(LLD_COLUMNS)
        if _FUNCTIONAL_COLUMNS is None:
            _FUNCTIONAL_COLUMNS = list(_smile(True).feature_names)
        return list(_FUNCTIONAL_COLUMNS)

    @property
    def rate(self) -> float | None:
        return None if self.config.functionals else 100.0

    @classmethod
    def weights_available(cls) -> bool:
        return importlib.util.find_spec("opensmile") is not None

    def load(self) -> None:
        if getattr(self, "_smile_obj", None) is None:
            self._smile_obj = _smile(self.config.functionals)
        super().load()

    def features_from_signal(self, y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
        """``(features (T, D) float32, times (T,) seconds)`` for a mono signal."""
        self.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Segment too short, filling with NaN."
            df = self._smile_obj.process_signal(np.asarray(y, dtype=np.float32), sr)
        x = df.to_numpy(dtype=np.float32)
        if self.config.functionals:
            t = np.zeros(len(x))
        else:
            t = df.index.get_level_values("start").total_seconds().to_numpy(dtype=np.float64)
        return x, t

    def extract(self, path: str | Path) -> ExtractResult:
        t0 = time.perf_counter()
        d = self.dim

        def empty(status: str, error: str, seconds: float = 0.0) -> ExtractResult:
            return ExtractResult(np.zeros((0, d), np.float32), np.zeros(0), status=status, error=error,
                                 info={"frames": 0, "seconds": seconds, "time_s": time.perf_counter() - t0})

        try:
            y, sr = read_audio(path, sr=self.config.sample_rate)
        except NoAudioError as e:
            return empty("no-audio", str(e))
        except MediaError as e:
            return empty("failed", str(e))
        seconds = len(y) / sr
        if is_silent(y, self.config.silence_db):
            return empty("no-audio", f"silent audio track (peak below {self.config.silence_db:g} dBFS)", seconds)
        try:
            x, t = self.features_from_signal(y, sr)
        except Exception as e:  # an openSMILE error: record it, keep the run going
            return empty("failed", f"{e.__class__.__name__}: {e}", seconds)
        return ExtractResult(x, t, status="ok",
                             info={"frames": len(x), "seconds": seconds, "time_s": time.perf_counter() - t0})
