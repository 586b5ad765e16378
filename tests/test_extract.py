"""The extraction runner and its CLI: statuses, resume, retries, config refusal, kill + rerun."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from media_fixtures import make_clip, make_voice_file, truncate

from blemore.cli import cli
from blemore.extract import DEFAULT_EXTRACTORS, build_extractors, extract, find_media
from blemore.store import ConfigMismatchError, import_features, open_source, open_store

LIGHT = {"face-mesh": {"landmarks": False}}  # smaller arrays, same pass


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    (d / "sub").mkdir()
    make_clip(d / "A1_ang_int1_ver1.mp4", seconds=0.6)
    make_clip(d / "sub" / "A1_hap_int2_ver1.mov", seconds=0.4, audio="silent")
    make_clip(d / "A2_mix_ang_hap_70_30_ver1.mkv", seconds=0.4, audio=None, blank=tuple(range(10)))
    truncate(d / "A1_ang_int1_ver1.mp4", d / "A3_fea_int1_ver1.mp4")
    make_voice_file(d / "A4_neu_sit1_ver1.wav", seconds=0.5)
    (d / "notes.txt").write_text("not media")
    return d


EXPECTED = {
    "face-mesh": {"A1_ang_int1_ver1": "ok", "A1_hap_int2_ver1": "ok", "A2_mix_ang_hap_70_30_ver1": "no-face",
                  "A3_fea_int1_ver1": "failed", "A4_neu_sit1_ver1": "no-video"},
    "egemaps": {"A1_ang_int1_ver1": "ok", "A1_hap_int2_ver1": "no-audio", "A2_mix_ang_hap_70_30_ver1": "no-audio",
                "A3_fea_int1_ver1": "failed", "A4_neu_sit1_ver1": "ok"},
}
EXPECTED["face-expression"] = EXPECTED["face-mesh"]


def test_find_media(corpus, tmp_path):
    found = find_media([corpus])
    assert sorted(found) == sorted(EXPECTED["egemaps"])  # recursive, .txt skipped
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "X1.mp4").write_bytes(b"")
    (tmp_path / "b" / "X1.mov").write_bytes(b"")
    with pytest.raises(ValueError, match="X1"):
        find_media([tmp_path])
    with pytest.raises(FileNotFoundError, match="nope"):
        find_media([tmp_path / "nope"])


def test_build_extractors_validates():
    with pytest.raises(KeyError, match="unknown extractor"):
        build_extractors(["face-mush"])
    with pytest.raises(ValueError, match="unknown setting"):
        build_extractors(["egemaps"], settings={"egemaps": {"hop": 2}})
    fm, eg = build_extractors(["face-mesh", "egemaps"], fps=5)
    assert fm.config.fps == 5.0 and not hasattr(eg.config, "fps")


def test_extract_statuses_resume_and_retry(corpus, tmp_path):
    store = tmp_path / "S"
    s = extract([corpus], store, workers=1, progress=False, settings=LIGHT)
    assert s.completed and s.clips == 5 and s.attempted == 5
    for name in DEFAULT_EXTRACTORS:
        src = open_source(store / name)
        assert src.status() == EXPECTED[name], name
        assert s.tallies[name].statuses["failed"] == 1
    assert sorted(c for c, _, _ in s.failures) == ["A3_fea_int1_ver1"] * 3
    mesh = open_source(store / "face-mesh")
    assert mesh.clip_ids == ["A1_ang_int1_ver1", "A1_hap_int2_ver1"]
    x = mesh.load("A1_ang_int1_ver1")
    assert x.shape == (15, mesh.dim) and mesh.columns[-1] == "face_found"
    np.testing.assert_allclose(mesh.times("A1_ang_int1_ver1"), np.arange(15) / 25, atol=1e-3)
    assert np.isnan(mesh.load("A2_mix_ang_hap_70_30_ver1")[:, :-1]).all()  # no-face: NaN rows kept
    row = mesh.manifest()["A3_fea_int1_ver1"]
    assert row.status == "failed" and "Invalid data" in row.error and row.source.endswith("A3_fea_int1_ver1.mp4")
    assert open_source(store / "egemaps").load("A4_neu_sit1_ver1").shape[1] == 25
    assert "A3_fea_int1_ver1 [face-mesh]" in s.format()

    again = extract([corpus], store, workers=1, progress=False, settings=LIGHT)  # resume: all done
    assert again.attempted == 0 and again.completed and again.tallies["egemaps"].skipped == 5
    retry = extract([corpus], store, workers=1, progress=False, settings=LIGHT, retry_failed=True)
    assert retry.attempted == 1 and retry.tallies["face-mesh"].statuses == {"failed": 1}
    os.unlink(store / "egemaps" / "A1_ang_int1_ver1.npy")  # a lost file is redone
    redo = extract([corpus], store, ["egemaps"], workers=1, progress=False)
    assert redo.attempted == 1 and open_source(store / "egemaps").status()["A1_ang_int1_ver1"] == "ok"


def test_config_change_is_refused(corpus, tmp_path):
    store = tmp_path / "S"
    one = corpus / "A1_ang_int1_ver1.mp4"
    extract([one], store, ["face-mesh"], workers=1, progress=False, settings=LIGHT)
    with pytest.raises(ConfigMismatchError, match="fps"):
        extract([one], store, ["face-mesh"], fps=10, workers=1, progress=False, settings=LIGHT)
    s = extract([one], store, ["face-mesh"], fps=10, workers=1, progress=False, settings=LIGHT, overwrite=True)
    assert s.attempted == 1
    src = open_source(store / "face-mesh")
    assert src.config["settings"]["fps"] == 10.0 and src.rate == 10.0
    np.testing.assert_allclose(src.times("A1_ang_int1_ver1"), np.arange(6) / 10, atol=0.021)


def test_nothing_could_run(tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "X1.mp4").write_bytes(b"junk" * 100)
    s = extract([bad], tmp_path / "S", ["egemaps"], workers=1, progress=False)
    assert not s.completed and s.failures
    r = CliRunner().invoke(cli, ["extract", str(bad), "--out", str(tmp_path / "S2"), "-e", "egemaps", "-q"])
    assert r.exit_code == 1 and "X1" in r.output
    r = CliRunner().invoke(cli, ["extract", str(bad), "--out", str(tmp_path / "S3"), "-e", "nope"])
    assert r.exit_code != 0 and "unknown extractor" in r.output


def test_cli_extractors_and_features(corpus, tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["extractors", "--json"])
    assert r.exit_code == 0, r.output
    rows = {d["name"]: d for d in json.loads(r.output)}
    assert rows["face-mesh"]["dim"] == 1454 and rows["face-expression"]["dim"] == 7 and rows["egemaps"]["dim"] == 25
    assert rows["egemaps"]["rate"] == 100.0 and rows["face-mesh"]["modality"] == "face"
    assert all(rows[n]["available_offline"] for n in DEFAULT_EXTRACTORS)
    assert "face-expression" in runner.invoke(cli, ["extractors"]).output

    store = tmp_path / "S"
    r = runner.invoke(cli, ["extract", str(corpus), "--out", str(store), "-j", "1", "-q",
                            "--set", "face-mesh.landmarks=false", "--set", "egemaps.functionals=true"])
    assert r.exit_code == 0, r.output
    assert "A3_fea_int1_ver1 [egemaps]" in r.output  # failures are listed
    r = runner.invoke(cli, ["features", str(store), "--json"])
    inv = json.loads(r.output)
    assert set(inv) == {"extractors"}
    eg = inv["extractors"]["egemaps"]
    assert eg["dim"] == 88 and eg["mean_frames"] == 1.0
    assert {k: eg["clips"][k] for k in ("ok", "failed", "no-face", "no-audio")} == \
        {"ok": 2, "failed": 1, "no-face": 0, "no-audio": 2}
    fm = inv["extractors"]["face-mesh"]
    assert fm["clips"]["ok"] == 2 and fm["clips"]["no-face"] == 1 and fm["mean_frames"] == pytest.approx(12.5)
    assert "face-mesh" in runner.invoke(cli, ["features", str(store)]).output
    r = runner.invoke(cli, ["extract", str(corpus), "--out", str(store), "-j", "1", "-q", "-e", "egemaps"])
    assert r.exit_code != 0 and "another config" in r.output  # functionals vs LLDs


def test_import_features(tmp_path):
    src = tmp_path / "WavLM_large_train"
    src.mkdir()
    rng = np.random.default_rng(0)
    np.save(src / "A1_ang_int1_ver1.npy", rng.normal(size=(12, 8)))
    np.save(src / "A1_sad_int1_ver1.npy", rng.normal(size=(8,)))
    np.save(src / "A2_hap_int1_ver1.npy", rng.normal(size=(3, 5)))  # wrong width
    r = CliRunner().invoke(cli, ["import-features", str(src), "--store", str(tmp_path / "S"), "--name", "WavLM_large",
                                 "--modality", "audio"])
    assert r.exit_code == 0, r.output
    assert "A2_hap_int1_ver1" in r.output
    got = open_store(tmp_path / "S")["WavLM_large"]
    assert got.clip_ids == ["A1_ang_int1_ver1", "A1_sad_int1_ver1"] and got.dim == 8
    assert got.status()["A2_hap_int1_ver1"] == "failed"
    np.testing.assert_allclose(got.load("A1_ang_int1_ver1"), np.load(src / "A1_ang_int1_ver1.npy").astype(np.float32))
    assert got.load("A1_sad_int1_ver1").shape == (1, 8) and got.config["modality"] == "audio"
    again = import_features(src, tmp_path / "S", "WavLM_large")  # resume: nothing to redo
    assert again.clip_ids == got.clip_ids


def _cli(*args):
    return [sys.executable, "-c", "from blemore.cli import main; main()", *map(str, args)]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(8):
        make_clip(clips / f"A{i}_ang_int1_ver1.mp4", seconds=0.8 + 0.1 * i)
    args = ["-e", "face-mesh,egemaps", "--set", "face-mesh.landmarks=false", "-q"]
    ref = tmp_path / "ref"
    assert subprocess.run(_cli("extract", clips, "--out", ref, "-j", "1", *args), capture_output=True).returncode == 0

    store = tmp_path / "S"
    proc = subprocess.Popen(_cli("extract", clips, "--out", store, "-j", "2", *args), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = store / "face-mesh" / "manifest.csv"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 3:  # header + 2 clips
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run, workers included
    proc.wait()
    partial = open_source(store / "face-mesh").status()
    assert 2 <= len(partial) < 8, "the kill should land mid-run"

    r = subprocess.run(_cli("extract", clips, "--out", store, "-j", "2", *args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{len(partial)} already done" in r.stdout
    for name in ("face-mesh", "egemaps"):
        a, b = open_source(ref / name), open_source(store / name)
        assert a.status() == b.status() and len(b.clip_ids) == 8
        for cid in a.clip_ids:
            np.testing.assert_array_equal(a.load(cid), b.load(cid))
            np.testing.assert_array_equal(a.times(cid), b.times(cid))
        assert not [p for p in b.root.iterdir() if p.name.startswith(".")]  # no temp or lock files left
