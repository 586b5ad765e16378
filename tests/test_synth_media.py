"""The media-level synthetic corpus generator: plan, face, voice, files and metadata."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from blemore.labels import EMOTIONS, TARGETS, Label, parse_clip_ids
from blemore.synth import face as F
from blemore.synth import voice as V
from blemore.synth.media import (
    DIFFICULTY_LEVELS,
    SynthConfig,
    generate_media_corpus,
    parse_difficulty,
    plan_corpus,
    render_clip,
)


# -- configuration and plan --------------------------------------------------------------------
def test_parse_difficulty_names_numbers_and_errors():
    assert parse_difficulty("medium") == DIFFICULTY_LEVELS["medium"]
    assert parse_difficulty("HARD") == DIFFICULTY_LEVELS["hard"]
    assert parse_difficulty("0.3") == 0.3
    assert parse_difficulty(1) == 1.0
    with pytest.raises(ValueError, match="0..1"):
        parse_difficulty(1.5)
    with pytest.raises(ValueError, match="easy"):
        parse_difficulty("impossible")


def test_config_rejects_bad_values_and_names_them():
    with pytest.raises(ValueError, match="cannot fill 5 actor-disjoint folds"):
        SynthConfig(actors=4)
    with pytest.raises(ValueError, match="size must be even"):
        SynthConfig(size=(101, 100))
    with pytest.raises(ValueError, match="format"):
        SynthConfig(format="avi")
    with pytest.raises(ValueError, match="intensities"):
        SynthConfig(intensities=5)


@pytest.mark.parametrize("intensities", [1, 4])
def test_plan_every_actor_performs_every_target_with_grammar_ids(intensities):
    cfg = SynthConfig(actors=6, test_actors=2, intensities=intensities, seed=3)
    actors, clips = plan_corpus(cfg)
    assert len(actors) == 8 and len({a.actor_id for a in actors}) == 8
    assert Counter(a.split for a in actors) == {"train": 6, "test": 2}
    assert Counter(a.gender for a in actors if a.split == "train") == {"f": 3, "m": 3}
    infos = parse_clip_ids([c.clip_id for c in clips])  # raises on any malformed id
    per_actor: dict[str, set[int]] = {}
    for c, info in zip(clips, infos):
        assert info.actor == c.actor and info.label == c.label == c.content
        per_actor.setdefault(c.actor, set()).add(c.label.target_index())
    assert all(s == set(range(len(TARGETS))) for s in per_actor.values())
    n_per_actor = 36 if intensities == 1 else 6 * 4 + 30
    assert len(clips) == 8 * n_per_actor
    assert len({c.clip_id for c in clips}) == len(clips)
    assert len({c.seed for c in clips}) == len(clips)


def test_plan_is_deterministic_and_seed_dependent():
    a1, c1 = plan_corpus(SynthConfig(actors=5, seed=1))
    a2, c2 = plan_corpus(SynthConfig(actors=5, seed=1))
    a3, c3 = plan_corpus(SynthConfig(actors=5, seed=2))
    assert c1 == c2 and a1 == a2
    assert [c.clip_id for c in c1] != [c.clip_id for c in c3]


def test_no_signal_permutes_content_within_each_actor():
    _, clips = plan_corpus(SynthConfig(actors=5, test_actors=1, signal=False, seed=0))
    moved = 0
    for actor in {c.actor for c in clips}:
        mine = [c for c in clips if c.actor == actor]
        # the same labels are rendered, but not for the clips they name
        assert Counter(c.content for c in mine) == Counter(c.label for c in mine)
        moved += sum(c.content != c.label for c in mine)
    assert moved > 0.8 * len(clips)


def test_anonymised_test_ids():
    _, clips = plan_corpus(SynthConfig(actors=5, test_actors=2, anonymise_test=True))
    test = [c for c in clips if c.split == "test"]
    assert sorted(c.clip_id for c in test) == [f"test_{i:04d}" for i in range(1, 73)]
    assert all(c.grammar_id.startswith(c.actor) for c in test)
    assert all(not c.clip_id.startswith("test_") for c in clips if c.split == "train")


# -- voice ----------------------------------------------------------------------------------------
def _voice(gender: str = "f") -> V.VoiceIdentity:
    return V.draw_voice(np.random.default_rng(0), gender, 0.0, 0.1)


def _f0(y: np.ndarray, sr: int = 16000) -> float:
    """Mean pitch (semitones from 27.5 Hz) as the eGeMAPS extractor measures it."""
    opensmile = pytest.importorskip("opensmile")
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    return float(smile.process_signal(y, sr)["F0semitoneFrom27.5Hz_sma3nz_amean"].iloc[0])


def test_voice_is_deterministic_bounded_and_emotion_dependent():
    ident = _voice()
    y1 = V.synthesize(("hap",), (100,), ident, 1.5, np.random.default_rng(5))
    y2 = V.synthesize(("hap",), (100,), ident, 1.5, np.random.default_rng(5))
    assert y1.dtype == np.float32 and y1.shape == (24000,)
    assert np.array_equal(y1, y2)
    assert np.abs(y1).max() < 1.0
    rms = {e: float(np.sqrt(np.mean(V.synthesize((e,), (100,), ident, 2.0, np.random.default_rng(1),
                                                      variation=0.0) ** 2))) for e in EMOTIONS}
    assert rms["ang"] > 2 * rms["neu"] and rms["ang"] > 2 * rms["sad"]
    f0 = {e: _f0(V.synthesize((e,), (100,), ident, 2.0, np.random.default_rng(1), variation=0.0))
          for e in ("ang", "fea", "neu")}
    assert f0["fea"] > f0["neu"] + 3 and f0["neu"] > f0["ang"] + 1  # semitones


def test_voice_blend_spends_time_by_salience():
    """A 70/30 blend of a loud and a soft emotion: the loud part covers about 70 % of the voiced time."""
    ident = _voice("m")
    shares = []
    for s_ang in (70, 30):
        y = V.synthesize(("ang", "sad"), (s_ang, 100 - s_ang), ident, 4.0, np.random.default_rng(2),
                         active=(0.0, 1.0), variation=0.0, mix=0.0)
        env = np.sqrt(np.convolve(y ** 2, np.ones(1600) / 1600, "same"))
        loud = env > 0.5 * env.max()
        shares.append(loud.mean())
    assert shares[0] > shares[1] + 0.15


def test_voice_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown emotion"):
        V.synthesize(("joy",), (100,), _voice(), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="one or two emotions"):
        V.synthesize(("ang", "sad"), (100,), _voice(), 1.0, np.random.default_rng(0))


# -- face -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rig() -> F.FaceRig:
    return F.FaceRig(160)


def test_base_face_landmarks_come_from_mediapipe(rig):
    f = F.base_face()
    assert f.landmarks.shape == (478, 2) and f.image.shape[:2] == f.matte.shape
    # irises inside the crop, eyes above the mouth, left/right eyes apart by a sensible distance
    assert 0.15 * f.size < f.iod < 0.4 * f.size
    assert f.landmarks[468, 1] < f.landmarks[13, 1] and f.landmarks[473, 1] < f.landmarks[14, 1]
    assert f.matte[f.size // 2, f.size // 2] > 0.9 and f.matte[2, 2] < 0.1


def test_emotion_fields_never_fold(rig):
    w = rig.emotion_au_weights()
    for e, aw in zip(EMOTIONS, w):
        for gain in (1.0, 1.5):
            field = F._unfold((gain * aw @ rig.au_fields.reshape(len(F.AU_NAMES), -1)).reshape(160, 160, 2))
            assert F._min_jacobian(field) >= F.MIN_JACOBIAN - 1e-3, e


def test_render_shapes_and_neutral_is_still(rig):
    ident = F.draw_identity(np.random.default_rng(0), 0.5)
    frames = rig.render(np.zeros((3, len(F.AU_NAMES))), ident, np.zeros((3, 4)), (192, 160))
    assert frames.shape == (3, 160, 192, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], frames[2])  # no noise, no motion, no expression: identical frames
    with pytest.raises(ValueError, match="au_weights"):
        rig.render(np.zeros((3, 2)), ident, np.zeros((3, 4)), (160, 160))


def test_expressions_move_the_landmark_measures_as_intended(rig):
    """MediaPipe on rendered apex frames: each emotion's AUs move the geometry the intended way
    (relative to the same actor's neutral face), averaged over three actors."""
    W = rig.emotion_au_weights()
    rng = np.random.default_rng(7)
    deltas = []
    for _ in range(3):
        ident = F.draw_identity(rng, DIFFICULTY_LEVELS["medium"])
        frames = rig.render(W, ident, np.zeros((len(W), 4)), (160, 160))
        geo = []
        for f in frames:
            lm = F.facemesh_landmarks(f)
            assert lm is not None, "MediaPipe lost the face"
            geo.append(F.geometry_from_landmarks(lm))
        geo = np.array(geo)
        deltas.append(geo - geo[EMOTIONS.index("neu")])
    d = {e: dict(zip(F.GEOMETRY, v)) for e, v in zip(EMOTIONS, np.mean(deltas, 0))}
    assert d["hap"]["corner_lift"] > 0.05 and d["hap"]["mouth_width"] > 0.05
    assert d["sad"]["corner_lift"] < -0.05 and d["sad"]["inner_brow_height"] > 0.03
    assert d["ang"]["brow_height"] < -0.03 and d["ang"]["eye_open"] < -0.02
    assert d["fea"]["brow_height"] > 0.05 and d["fea"]["eye_open"] > 0.02 and d["fea"]["mouth_width"] > 0.05
    assert d["disg"]["mouth_open"] > 0.05 and d["disg"]["nose_lip"] < -0.02


def test_render_clip_matches_config(rig):
    cfg = SynthConfig(actors=5, test_actors=0, size=(128, 96), duration=1.0, fps=8)
    actors, clips = plan_corpus(cfg)
    a = {x.actor_id: x for x in actors}
    frames, audio = render_clip(clips[40], a[clips[40].actor], cfg)
    assert frames.shape == (8, 96, 128, 3)
    assert audio.shape == (16000,) and audio.dtype == np.float32
    again = render_clip(clips[40], a[clips[40].actor], cfg)
    assert np.array_equal(frames, again[0]) and np.array_equal(audio, again[1])


# -- files ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny corpus: 2 folds of 1 actor each + 1 test actor, 4 frames of 128x128 per clip."""
    out = tmp_path_factory.mktemp("synth") / "corpus"
    cfg = SynthConfig(actors=2, test_actors=1, folds=2, size=(128, 128), duration=0.5, fps=8, seed=11)
    return generate_media_corpus(out, cfg, workers=1, progress=False)


def test_corpus_files_are_decodable_with_audio(corpus):
    from blemore.media import probe, read_audio

    files = sorted(corpus.root.glob("*/*.mov"))
    assert len(files) == 3 * 36
    assert {p.stem for p in files} == set(corpus.table["clip_id"])
    for p in files:
        info = probe(p)
        assert info.has_video and info.has_audio, p
        assert info.size == (128, 128) and info.sample_rate == 16000
        assert info.duration == pytest.approx(0.5, abs=0.15)
    y, sr = read_audio(files[0])
    assert sr == 16000 and np.abs(y).max() > 0.01


def test_corpus_metadata_round_trips_with_actor_disjoint_folds(corpus):
    from blemore.dataset import load_metadata

    train = load_metadata(corpus.train_metadata)
    test = load_metadata(corpus.test_metadata)
    assert len(train) == 72 and len(test) == 36
    assert set(train["fold"]) == {0, 1}
    assert train.groupby("actor")["fold"].nunique().max() == 1  # one fold per actor
    assert train.groupby("fold")["actor"].nunique().min() == 1
    assert set(train["actor"]).isdisjoint(set(test["actor"]))
    assert all(lab == Label.parse(cid) for cid, lab in zip(test["clip_id"], test["label"]))
    assert sorted(test["target"]) == list(range(36))
    assert (corpus.root / "synth.json").exists()


def test_existing_clips_are_kept_and_a_different_corpus_is_refused(corpus):
    again = generate_media_corpus(corpus.root, corpus.config, workers=1, progress=False)
    assert again.written == 0 and again.skipped == 108
    with pytest.raises(FileExistsError, match="different synthetic corpus"):
        generate_media_corpus(corpus.root, corpus.config, workers=1, progress=False, seed=12)


def test_same_seed_gives_byte_identical_files(tmp_path):
    """Two generations (one in this process, one in two worker processes) write the same bytes.

    Before libx264 was kept to its AVX2 code, 49 of these 108 clips differed on an AVX-512 CPU,
    in their decoded frames, not only in container bytes (96x96 frames show it; 128x128 did
    not, which is why this does not reuse the ``corpus`` fixture)."""
    cfg = SynthConfig(actors=2, test_actors=1, folds=2, size=(96, 96), duration=0.5, fps=8, seed=5)
    first = generate_media_corpus(tmp_path / "a", cfg, workers=1, progress=False)
    again = generate_media_corpus(tmp_path / "b", cfg, workers=2, progress=False)
    files = sorted(p.relative_to(first.root) for p in first.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again.root) for p in again.root.rglob("*") if p.is_file())
    assert sum(p.suffix == ".mov" for p in files) == 108
    differ = [str(p) for p in files if (first.root / p).read_bytes() != (again.root / p).read_bytes()]
    assert differ == []


def test_face_found_by_the_default_extractor(corpus, tmp_path):
    """The face-mesh extractor finds the face in at least 95 % of frames of a sample of clips."""
    from blemore.extract import extract
    from blemore.store import open_store

    sample = sorted(corpus.root.glob("*/*.mov"))[::6]  # 18 clips, every target kind and actor
    extract(sample, tmp_path / "feat", extractors=["face-mesh"], workers=1, progress=False,
            settings={"face-mesh": {"landmarks": False}})
    src = open_store(tmp_path / "feat")["face-mesh"]
    col = src.columns.index("face_found")
    found = np.concatenate([src.load(p.stem)[:, col] for p in sample])
    assert len(found) == 4 * len(sample)
    assert found.mean() >= 0.95


# -- command line --------------------------------------------------------------------------------
def test_cli_synth_media_reports_bad_values():
    from click.testing import CliRunner

    from blemore.cli import cli

    r = CliRunner().invoke(cli, ["synth", "media", "x", "--actors", "3"])
    assert r.exit_code != 0 and "3 training actors cannot fill 5 actor-disjoint folds" in r.output
    r = CliRunner().invoke(cli, ["synth", "media", "x", "--size", "big"])
    assert r.exit_code != 0 and "WIDTHxHEIGHT" in r.output
    r = CliRunner().invoke(cli, ["synth", "media", "x", "--difficulty", "extreme"])
    assert r.exit_code != 0 and "easy" in r.output
    assert "features" in CliRunner().invoke(cli, ["synth", "--help"]).output  # the engine's command joins the group


@pytest.mark.slow
def test_cli_synth_media_writes_an_anonymised_no_signal_corpus(tmp_path):
    from click.testing import CliRunner

    from blemore.cli import cli
    from blemore.dataset import load_metadata

    out = tmp_path / "c"
    r = CliRunner().invoke(cli, ["synth", "media", str(out), "--actors", "2", "--folds", "2", "--test-actors", "1",
                                 "--duration", "0.5", "--fps", "4", "--size", "96x96", "--no-signal",
                                 "--anonymise-test", "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "NO SIGNAL" in r.output and "test answers" in r.output
    test = load_metadata(out / "test_metadata.csv")
    answers = load_metadata(out / "test_answers.csv")
    assert list(test["clip_id"]) == [f"test_{i:04d}" for i in range(1, 37)]
    assert test["label"].isna().all() and test["actor"].isna().all()
    assert list(answers["clip_id"]) == list(test["clip_id"]) and answers["label"].notna().all()
    assert sorted(answers["target"]) == list(range(36))
    assert len(list((out / "test").glob("test_*.mov"))) == 36
