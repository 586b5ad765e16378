"""Generated BLEMORE-shaped corpora with a known ground truth.

* :mod:`blemore.synth.media`: video clips with an audio track (a deformed real face and a
  synthesised non-verbal voice) named by the BLEMORE grammar, with official-format metadata.
* :mod:`blemore.synth.features`: per-clip feature time series with the real corpus' shape, for
  fast tests and benchmarks at full scale.

Submodules are imported on demand (``from blemore.synth import media``).
"""
from __future__ import annotations

from blemore.errors import BlemoreError

__all__ = ["SynthError"]


class SynthError(BlemoreError, ValueError):
    """A setting of a synthetic corpus that cannot be used; the message names it."""
