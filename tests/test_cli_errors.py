"""The command line's one error adapter (blemore.cli._errors): a user's mistake is one
``error: ...`` paragraph on stderr and exit status 2; a bug keeps its traceback."""
from __future__ import annotations

import json
import traceback

import pytest
from click.testing import CliRunner

from blemore.cli import cli, format_error
from blemore.errors import BlemoreError
from blemore.synth.features import generate_feature_corpus


def _invoke(args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def wavlm_model(tmp_path_factory):
    """A tiny model whose one feature source says it was made by the wavlm-large extractor
    (the synthetic corpus names the extractor after the source), so predicting media needs
    wavlm-large's pretrained weights."""
    root = tmp_path_factory.mktemp("cli_errors")
    c = generate_feature_corpus(root / "corpus", n_train_actors=5, n_test_actors=0, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, sources=["wavlm-large"], dim=4,
                                frames=(2, 3), folds=5, seed=1, progress=False)
    cfg_path = c.sources["wavlm-large"] / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["settings"] = {}  # the encoder's own (default) settings, as `blemore extract` would record them
    cfg_path.write_text(json.dumps(cfg))
    model = root / "model"
    r = _invoke(["train", "--metadata", c.train_metadata, "--features", c.sources["wavlm-large"], "--head", "linear",
                 "--out", model, "--preset", "fast", "--epochs", "1", "--threads", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    return model


def test_predict_without_encoder_weights_is_one_paragraph(wavlm_model, tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing cached
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # and nothing downloadable
    clip = tmp_path / "A1_ang_int1_ver1.wav"
    clip.write_bytes(b"RIFF")
    r = _invoke(["predict", wavlm_model, clip])
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output
    err = r.stderr
    assert err.startswith("error: ") and err.count("error:") == 1, err
    assert "\n\n" not in err.strip(), err  # one paragraph
    assert "wavlm-large" in err and "microsoft/wavlm-large" in err, err
    assert r.stdout == ""


def test_debug_flag_shows_the_traceback_of_a_user_error(wavlm_model, tmp_path):
    r = _invoke(["--debug", "predict", tmp_path, tmp_path])  # not a model folder
    assert isinstance(r.exception, BlemoreError) and r.exit_code == 1
    assert "not a blemore model" in str(r.exception)
    r = _invoke(["predict", tmp_path, tmp_path])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "not a blemore model" in r.stderr


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    import blemore.submission

    def broken(path):
        raise RuntimeError("a bug, not a user mistake")

    monkeypatch.setattr(blemore.submission, "load_predictions", broken)
    (tmp_path / "p.json").write_text("{}")
    r = _invoke(["score", tmp_path / "p.json"])
    assert isinstance(r.exception, RuntimeError) and r.exit_code == 1
    assert "error:" not in r.output
    tb = "".join(traceback.format_exception(type(r.exception), r.exception, r.exception.__traceback__))
    assert "broken" in tb  # the traceback reaches the failing function
    with pytest.raises(RuntimeError, match="a bug"):
        _invoke(["score", tmp_path / "p.json"], catch_exceptions=False)


def test_path_errors_name_the_path(monkeypatch, tmp_path):
    import blemore.submission

    def missing(path):
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "gone.json"))

    monkeypatch.setattr(blemore.submission, "load_predictions", missing)
    (tmp_path / "p.json").write_text("{}")
    r = _invoke(["score", tmp_path / "p.json"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert r.stderr == f"error: {tmp_path / 'gone.json'}: No such file or directory\n"


def test_usage_errors_keep_clicks_behaviour(tmp_path):
    r = _invoke(["score", tmp_path / "nope.json"])
    assert r.exit_code == 2 and "Usage:" in r.output and "does not exist" in r.output


def test_format_error_wraps_the_first_line_only():
    msg = "x.csv: " + "word " * 40 + "\n  problem one\n  problem two"
    out = format_error(msg, width=60)
    lines = out.splitlines()
    assert lines[0].startswith("error: x.csv:") and all(len(line) <= 60 for line in lines)
    assert lines[-2:] == ["  problem one", "  problem two"]
    assert format_error("a b c") == "error: a b c"


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_bad_options")
    c = generate_feature_corpus(root / "corpus", n_train_actors=5, n_test_actors=0, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, sources=["a"], dim=4,
                                frames=(2, 3), folds=5, seed=1, progress=False)
    return c


# Each of these showed a traceback (a builtin ValueError from blemore.pooling) before the
# raises became PoolingError; they fail before any training starts, so they are fast.
@pytest.mark.parametrize("extra, needle", [
    (["--pooling", "windows", "--window", "0"], "--window"),
    (["--pooling", "windows", "--stride", "-1"], "--stride"),
    (["--pooling", "windows", "--window", "-3"], "--window"),
])
def test_bad_user_options_are_one_paragraph(tiny_corpus, tmp_path, extra, needle):
    r = _invoke(["train", "--metadata", tiny_corpus.train_metadata, "--features", tiny_corpus.sources["a"],
                 "--out", tmp_path / "model", "--preset", "fast", "--epochs", "1", "--threads", "1", "--quiet",
                 *extra])
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output
    err = r.stderr
    assert err.startswith("error: ") and err.count("error:") == 1, err
    assert "\n\n" not in err.strip(), err
    assert needle in err, err


def test_library_option_errors_are_blemore_errors():
    """Raises that a user's option reaches are the owning module's BlemoreError, and still the
    builtin ValueError that older callers catch."""
    import numpy as np

    from blemore.dataset import DatasetError, build_index
    from blemore.decode import DecodeError, calibrate, decode_probabilities
    from blemore.fusion import FusionError, fuse_probabilities
    from blemore.heads.base import HeadError
    from blemore.heads.mlp import MLP256Head
    from blemore.late_fusion import weight_grid
    from blemore.pooling import PoolingError, pool_stats, windows
    from blemore.media import MediaArgumentError, write_audio
    from blemore.metrics import ScoringError, acc_presence
    from blemore.synth import SynthError
    from blemore.synth.face import FaceRig

    cases = [
        (PoolingError, lambda: windows(np.zeros((4, 2)), size=0)),
        (PoolingError, lambda: pool_stats(np.zeros((4, 2)), stats=["mode"])),
        (FusionError, lambda: fuse_probabilities([np.zeros((2, 6))], mode="median")),
        (FusionError, lambda: weight_grid(2, step=0.3)),
        (DecodeError, lambda: decode_probabilities(np.zeros((2, 5)), 0.5, 0.1)),
        (DecodeError, lambda: calibrate(np.full((1, 6), 1 / 6), [0], alphas=[], betas=[0.1])),
        (DatasetError, lambda: build_index(None, None)),
        (HeadError, lambda: MLP256Head(dropout=2.0)),
        (HeadError, lambda: MLP256Head(hidden=-1)),
        (HeadError, lambda: MLP256Head(hidden=0).fit(np.zeros((3, 4)), np.zeros((3, 5)))),
        (ScoringError, lambda: acc_presence(np.zeros((2, 6), bool), np.zeros((3, 6), bool))),
        (MediaArgumentError, lambda: write_audio("out.xyz", np.zeros(10, np.float32))),
        (SynthError, lambda: FaceRig(size=32)),
    ]
    for cls, call in cases:
        with pytest.raises(cls) as info:
            call()
        assert isinstance(info.value, BlemoreError) and isinstance(info.value, ValueError), info.value


def test_bad_weights_and_settings_of_pretrained_encoders_are_blemore_errors(tmp_path):
    """A --weights file or folder that is not the encoder's checkpoint (WeightsError) and an
    out-of-range layer choice (SettingsError) are user errors, and still ValueErrors."""
    import torch

    from blemore.extractors._hf import parse_layers
    from blemore.extractors.emotion2vec import load_emotion2vec
    from blemore.validate import SettingsError
    from blemore.weights import WeightsError

    (tmp_path / "empty").mkdir()
    torch.save({"a": torch.zeros(2)}, tmp_path / "model.pt")
    for call, cls, needle in [
        (lambda: load_emotion2vec(tmp_path / "empty"), WeightsError, "no model.pt"),
        (lambda: load_emotion2vec(tmp_path / "model.pt"), WeightsError, "not an emotion2vec"),
        (lambda: parse_layers("30").check(24), SettingsError, "out of range"),
    ]:
        with pytest.raises(cls, match=needle) as info:
            call()
        assert isinstance(info.value, BlemoreError) and isinstance(info.value, ValueError)


# Extractor settings of the right type but out of range were builtin ValueErrors raised in the
# configs' __post_init__ (a traceback) before they became SettingsError; the extractor is named.
@pytest.mark.parametrize("extra, needle", [
    (["-e", "wavlm-large", "--set", "wavlm-large.chunk_seconds=0"], "chunk_seconds"),
    (["-e", "wavlm-large", "--set", "wavlm-large.precision=fp8"], "precision"),
    (["-e", "wavlm-large", "--layers", "12-6"], "layers"),
    (["-e", "clip-vit-b32", "--set", "clip-vit-b32.fps=-1"], "fps"),
    (["-e", "hsemotion", "--set", "hsemotion.output=logits"], "output"),
])
def test_bad_extractor_settings_are_one_paragraph(tmp_path, extra, needle):
    clip = tmp_path / "A1_ang_int1_ver1.wav"
    clip.write_bytes(b"RIFF")
    r = _invoke(["extract", clip, "-o", tmp_path / "store", "-q", *extra])
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output
    err = r.stderr
    assert err.startswith("error: extractor ") and err.count("error:") == 1, err
    assert "\n\n" not in err.strip() and needle in err, err
