"""egemaps: openSMILE eGeMAPS v02 descriptors from a clip's audio track."""
from __future__ import annotations

import numpy as np
import pytest
from media_fixtures import make_clip, make_voice_file, truncate

from blemore.extractors import create_extractor
from blemore.extractors.egemaps import LLD_COLUMNS


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("voice")
    return {
        "voice": make_clip(d / "voice.mp4", seconds=1.5),
        "silent": make_clip(d / "silent.mov", seconds=0.5, audio="silent"),
        "mute": make_clip(d / "mute.mp4", seconds=0.5, audio=None),
        "wav": make_voice_file(d / "voice.wav", seconds=1.0),
    }


def test_lld_shape_times_and_pitch(clips):
    e = create_extractor("egemaps")
    assert e.columns == list(LLD_COLUMNS) and e.dim == 25 and e.rate == 100.0 and e.modality == "audio"
    r = e.extract(clips["voice"])
    assert r.status == "ok" and r.features.dtype == np.float32
    assert r.features.shape[1] == 25 and abs(len(r.features) - 150) <= 6
    np.testing.assert_allclose(np.diff(r.times), 0.01, atol=1e-9)
    assert r.times[0] == 0 and r.info["seconds"] == pytest.approx(1.5, abs=1e-3)
    f0 = r.features[:, e.columns.index("F0semitoneFrom27.5Hz_sma3nz")]
    voiced = f0[f0 > 0]
    assert len(voiced) > 0.5 * len(f0)
    # the test voice glides between 110 and 210 Hz: 12*log2(f/27.5) semitones
    assert 12 * np.log2(105 / 27.5) < np.median(voiced) < 12 * np.log2(215 / 27.5)


def test_functionals(clips):
    e = create_extractor("egemaps", functionals=True)
    assert e.dim == 88 and e.rate is None
    r = e.extract(clips["wav"])
    assert r.status == "ok" and r.features.shape == (1, 88) and np.isfinite(r.features).all()
    assert e.config_hash() != create_extractor("egemaps").config_hash()


def test_missing_or_silent_audio(clips, tmp_path):
    e = create_extractor("egemaps")
    r = e.extract(clips["silent"])
    assert r.status == "no-audio" and "silent" in r.error and r.features.shape == (0, 25)
    r = e.extract(clips["mute"])
    assert r.status == "no-audio" and "no audio stream" in r.error
    r = e.extract(truncate(clips["voice"], tmp_path / "cut.mp4"))
    assert r.status == "failed" and "cut.mp4" in r.error
