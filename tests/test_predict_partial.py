"""blemore predict on batches where some clips cannot be predicted (issue 11): every skipped clip
is listed with its reason, and the batch fails unless --allow-partial."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from blemore.bundle import BundleError, ModelBundle
from blemore.cli import cli
from blemore.store import ManifestRow, StoreWriter, open_source
from blemore.synth.features import generate_feature_corpus

FAST = ["--preset", "fast", "--epochs", "2", "--batch-size", "128", "--lr", "0.01", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pp")
    c = generate_feature_corpus(root / "c", n_train_actors=5, n_test_actors=1, n_train_clips=None, n_test_clips=None,
                                clips_per_actor=36, dim=4, frames=(4, 6), seed=3, folds=5)
    r = CliRunner().invoke(cli, ["train", "--metadata", str(c.train_metadata), "--features", str(c.sources["audio"]),
                                 "--head", "linear", "--out", str(root / "m"), *FAST])
    assert r.exit_code == 0, r.output
    return c, root / "m"


def _store(tmp_path, corpus, n_ok, n_noaudio):
    """A store whose 'audio' source has n_ok clips with features and n_noaudio video-only clips."""
    src = open_source(corpus.sources["audio"])
    cfg = json.loads((corpus.sources["audio"] / "config.json").read_text())
    w = StoreWriter(tmp_path / "S", cfg)
    ids = src.clip_ids[: n_ok + n_noaudio]
    dim = src.load(ids[0]).shape[1]
    for cid in ids[:n_ok]:
        a = src.load(cid)
        w.write(ManifestRow(cid, f"{cid}.mp4", "ok", frames=len(a)), a)
    for cid in ids[n_ok:]:
        w.write(ManifestRow(cid, f"{cid}.mp4", "no-audio", "the file has no audio stream"),
                np.zeros((0, dim), np.float32))
    w.close()
    return tmp_path / "S", ids[:n_ok], ids[n_ok:]


def test_predict_lists_skipped_clips_and_fails_without_allow_partial(trained, tmp_path):
    corpus, model = trained
    store, ok, noaudio = _store(tmp_path, corpus, 3, 2)
    out = tmp_path / "p.json"
    r = CliRunner().invoke(cli, ["predict", str(model), str(store), "-o", str(out)])
    assert r.exit_code != 0 and not out.exists(), r.output
    for cid in noaudio:
        assert f"skipped {cid}: audio: no audio" in r.output
    assert "--allow-partial" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["predict", str(model), str(store), "-o", str(out), "--allow-partial"])
    assert r.exit_code == 0, r.output
    assert sorted(k[:-4] for k in json.loads(out.read_text())["predictions"]) == sorted(ok)
    assert all(f"skipped {cid}: audio: no audio" in r.output for cid in noaudio)
    pred = ModelBundle.load(model).predict(open_source(store / "audio"))
    assert pred.clip_ids == sorted(ok) and set(pred.skipped) == set(noaudio)


def test_predict_all_video_only_says_no_audio(trained, tmp_path):
    corpus, model = trained
    store, _, noaudio = _store(tmp_path, corpus, 0, 2)
    with pytest.raises(BundleError, match=r"none of the 2 clip\(s\) can be predicted.*\n.*audio: no audio"):
        ModelBundle.load(model).predict(open_source(store / "audio"))
    r = CliRunner().invoke(cli, ["predict", str(model), str(store)])
    assert r.exit_code == 2 and "no audio" in r.output and "0 clips asked for" not in r.output, r.output


def test_nan_and_out_of_range_inputs_are_named_in_a_warning(trained, tmp_path):
    """issue 11: all-NaN/inf rows and inputs far outside the training range were predicted silently."""
    from blemore.validate import InputWarning

    corpus, model = trained
    src = open_source(corpus.sources["audio"])
    cfg = json.loads((corpus.sources["audio"] / "config.json").read_text())
    w = StoreWriter(tmp_path / "S", cfg)
    ids = src.clip_ids[:4]
    arrays = {ids[0]: src.load(ids[0]), ids[1]: np.full_like(src.load(ids[1]), np.nan),
              ids[2]: np.full_like(src.load(ids[2]), np.inf), ids[3]: src.load(ids[3]) * 1e4}
    for cid, a in arrays.items():
        w.write(ManifestRow(cid, f"{cid}.mp4", "ok", frames=len(a)), a)
    w.close()
    with pytest.warns(InputWarning) as rec:
        pred = ModelBundle.load(model).predict(open_source(tmp_path / "S" / "audio"))
    msg = "\n".join(str(r.message) for r in rec)
    assert len(pred.clip_ids) == 4 and "3 of 4 clip(s)" in msg and ids[0] not in msg
    assert f"{ids[1]}: every feature is NaN" in msg and f"{ids[2]}: every feature is NaN" in msg
    assert f"{ids[3]}: far outside the training range" in msg


def test_feature_size_mismatch_names_the_setting_that_differs(trained, tmp_path):
    """issue 11: '10178 pooled features; the model was trained on 140' did not name the setting."""
    corpus, model = trained
    src = open_source(corpus.sources["audio"])
    cfg = json.loads((corpus.sources["audio"] / "config.json").read_text())
    cfg["settings"] = {**(cfg.get("settings") or {}), "landmarks": True}
    cfg["dim"] = src.dim + 3
    cfg.pop("columns", None)
    w = StoreWriter(tmp_path / "S", cfg)
    for cid in src.clip_ids[:2]:
        a = np.concatenate([src.load(cid), np.zeros((len(src.load(cid)), 3), np.float32)], axis=1)
        w.write(ManifestRow(cid, f"{cid}.mp4", "ok", frames=len(a)), a)
    w.close()
    with pytest.raises(BundleError, match=r"the extractor settings differ: audio\.landmarks: model None, features True"):
        ModelBundle.load(model).predict(open_source(tmp_path / "S" / "audio"))


def _broken_copy(model, dst, edit):
    import shutil

    shutil.copytree(model, dst)
    m = json.loads((dst / "bundle.json").read_text())
    text = edit(dst, m)
    (dst / "bundle.json").write_text(text if isinstance(text, str) else json.dumps(m))
    return dst


@pytest.mark.parametrize("case, why", [
    ("pt-empty", "part0.pt: not a readable weights file"),
    ("pt-truncated", "part0.pt: not a readable weights file"),
    ("outside", "points outside the bundle folder"),
    ("huge-version", "bundle.json"),
    ("no-decoder", "a required field is missing"),
    ("not-json", "not valid JSON"),
])
def test_broken_bundles_are_clear_errors(trained, tmp_path, case, why):
    """issue 11: 0-byte / truncated part0.pt, parts[].file outside the bundle, a 5,000-digit
    version and hand-edited bundle.json gave 'Aborted!' or tracebacks."""
    _, model = trained

    def edit(d, m):
        if case.startswith("pt-"):
            m["format_version"] = 1
            m.pop("files", None)
            m["parts"][0]["file"] = "part0.pt"
            (d / "part0.pt").write_bytes(b"" if case == "pt-empty" else b"PK\x03\x04" + b"\x00" * 40)
        elif case == "outside":
            outside = tmp_path / "elsewhere.safetensors"
            outside.write_bytes((d / m["parts"][0]["file"]).read_bytes())
            (d / "link.safetensors").symlink_to(outside)
            m["files"]["link.safetensors"] = m["files"][m["parts"][0]["file"]]
            m["parts"][0]["file"] = "link.safetensors"
        elif case == "huge-version":
            return json.dumps(m).replace('"format_version": ', '"format_version": ' + "9" * 5000 + ", \"x\": ", 1)
        elif case == "no-decoder":
            del m["decoder"]
        elif case == "not-json":
            return "{not json"
        return None

    bad = _broken_copy(model, tmp_path / "m", edit)
    with pytest.raises(BundleError, match=re.escape(why)):
        ModelBundle.load(bad)
    r = CliRunner().invoke(cli, ["predict", str(bad), str(corpus_dir(trained))])
    assert r.exit_code == 2 and "Traceback" not in r.output and "Aborted" not in r.output, r.output


def corpus_dir(trained):
    return trained[0].sources["audio"]


def test_predict_says_challenge_keys_are_mov(trained, tmp_path):
    """issue 11: prediction keys got .mov appended whatever the input's extension, without a word."""
    corpus, model = trained
    store, ok, _ = _store(tmp_path, corpus, 2, 0)
    out = tmp_path / "p.json"
    r = CliRunner().invoke(cli, ["predict", str(model), str(store), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "keys <clip id>.mov" in r.output
    assert sorted(json.loads(out.read_text())["predictions"]) == sorted(f"{c}.mov" for c in ok)
