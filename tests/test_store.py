"""Feature folders: reading stores and plain pre-extracted folders, atomic writes, resume."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from blemore.store import (
    OPENFACE2_COLUMNS,
    ConfigMismatchError,
    ManifestRow,
    StoreError,
    StoreWriter,
    import_features,
    open_source,
    open_store,
    read_manifest,
)

CFG = {"extractor": "toy", "version": "1", "modality": "audio", "settings": {"hop": 0.01},
       "dim": 3, "columns": ["a", "b", "c"], "rate": 100.0}


def _write_toy(store, rng, overwrite=False, config=CFG):
    w = StoreWriter(store, config, overwrite=overwrite)
    x1 = rng.normal(size=(5, 3)).astype(np.float32)
    w.write(ManifestRow("A1_ang_int1_ver1", "/m/A1_ang_int1_ver1.mov", "ok", frames=5, seconds=0.05),
            x1, np.arange(5) / 100.0)
    x2 = rng.normal(size=(4, 3)).astype(np.float32)
    t2 = np.array([0.0, 0.1, 0.15, 0.4])
    w.write(ManifestRow("A1_sad_int2_ver1", "/m/A1_sad_int2_ver1.mov", "ok", frames=4), x2, t2)
    nan = np.full((3, 3), np.nan, np.float32)
    w.write(ManifestRow("A2_hap_int1_ver1", "/m/x.mov", "no-face", frames=3), nan, np.arange(3) / 100.0)
    w.write(ManifestRow("A2_fea_int1_ver1", "/m/y.mov", "failed", error="corrupt: bad\nthing"))
    w.close()
    return x1, x2, t2


def test_store_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    x1, x2, t2 = _write_toy(tmp_path, rng)
    src = open_source(tmp_path / "toy")
    assert src.kind == "store" and src.name == "toy"
    assert src.clip_ids == ["A1_ang_int1_ver1", "A1_sad_int2_ver1"]  # no-face and failed are left out
    assert src.status() == {"A1_ang_int1_ver1": "ok", "A1_sad_int2_ver1": "ok",
                            "A2_fea_int1_ver1": "failed", "A2_hap_int1_ver1": "no-face"}
    np.testing.assert_array_equal(src.load("A1_ang_int1_ver1"), x1)
    assert src.load("A1_ang_int1_ver1").dtype == np.float32
    # evenly spaced rows: no times file; times derived from the rate
    assert not (tmp_path / "toy" / "A1_ang_int1_ver1.times.npy").exists()
    np.testing.assert_allclose(src.times("A1_ang_int1_ver1"), np.arange(5) / 100.0)
    # uneven rows: times file kept
    assert (tmp_path / "toy" / "A1_sad_int2_ver1.times.npy").exists()
    np.testing.assert_allclose(src.times("A1_sad_int2_ver1"), t2)
    assert np.isnan(src.load("A2_hap_int1_ver1")).all()
    assert src.columns == ["a", "b", "c"] and src.dim == 3 and src.config["settings"] == {"hop": 0.01}
    assert src.manifest()["A2_fea_int1_ver1"].error == "corrupt: bad thing"
    with pytest.raises(KeyError, match="A9"):
        src.load("A9_ang_int1_ver1")
    # no temporary files left behind
    assert not [p for p in (tmp_path / "toy").iterdir() if p.name.startswith(".tmp")]
    stores = open_store(tmp_path)
    assert list(stores) == ["toy"] and stores["toy"].clip_ids == src.clip_ids


def test_config_mismatch_refused_and_overwrite(tmp_path):
    rng = np.random.default_rng(1)
    _write_toy(tmp_path, rng)
    other = dict(CFG, settings={"hop": 0.02})
    with pytest.raises(ConfigMismatchError, match="hop"):
        StoreWriter(tmp_path, other)
    # the same config resumes: finished clips are known
    w = StoreWriter(tmp_path, CFG)
    assert set(w.done) == {"A1_ang_int1_ver1", "A1_sad_int2_ver1", "A2_hap_int1_ver1", "A2_fea_int1_ver1"}
    w.close()
    w = StoreWriter(tmp_path, other, overwrite=True)
    assert w.done == {}
    w.close()
    src = open_source(tmp_path / "toy")
    assert src.clip_ids == [] and src.config["settings"] == {"hop": 0.02}


def test_manifest_tolerates_cut_line(tmp_path):
    _write_toy(tmp_path, np.random.default_rng(2))
    man = tmp_path / "toy" / "manifest.csv"
    with open(man, "a") as f:
        f.write("A3_ang_int1_ver1,/m/z.mov,o")  # a killed writer's half line
    rows = read_manifest(man)
    assert "A3_ang_int1_ver1" not in rows and len(rows) == 4
    w = StoreWriter(tmp_path, CFG)  # compacts before appending
    w.write(ManifestRow("A3_ang_int1_ver1", "/m/z.mov", "no-audio"))
    w.close()
    assert read_manifest(man)["A3_ang_int1_ver1"].status == "no-audio"
    assert open_source(tmp_path / "toy").status()["A3_ang_int1_ver1"] == "no-audio"


def test_plain_npy_folder(tmp_path):
    d = tmp_path / "WavLM_large_train"
    d.mkdir()
    rng = np.random.default_rng(3)
    a = rng.normal(size=(7, 4))
    b = rng.normal(size=(4,))
    np.save(d / "A1_ang_int1_ver1.npy", a)
    np.save(d / "A2_mix_ang_hap_70_30_ver1.npy", b)
    src = open_source(d)
    assert src.kind == "npy" and src.config is None and src.columns is None
    assert src.clip_ids == ["A1_ang_int1_ver1", "A2_mix_ang_hap_70_30_ver1"]
    assert src.dim == 4
    assert src.load("A2_mix_ang_hap_70_30_ver1").shape == (1, 4)
    np.testing.assert_allclose(src.load("A1_ang_int1_ver1"), a.astype(np.float32))
    assert src.times("A1_ang_int1_ver1") is None
    assert set(src.status().values()) == {"ok"}


def test_bad_arrays_and_folders(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        open_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no <clip>.npy"):
        open_source(tmp_path / "empty")
    d = tmp_path / "cube"
    d.mkdir()
    np.save(d / "c1.npy", np.zeros((2, 2, 2)))
    with pytest.raises(StoreError, match=r"\(T, D\)"):
        open_source(d).load("c1")


def test_plain_csv_folder_generic(tmp_path):
    d = tmp_path / "OpenFace_3_train"
    d.mkdir()
    for cid, n in (("A1_ang_int1_ver1", 6), ("A1_hap_int1_ver1", 3)):
        df = pd.DataFrame({
            "frame": np.arange(n), "face_id": 0, "timestamp": np.arange(n) * 0.04,
            "confidence": 0.9, "success": 1,
            "au_1": np.linspace(0, 1, n), "emotion_happy": np.ones(n), "label": "x",
        })
        df.to_csv(d / f"{cid}.csv", index=False)
    src = open_source(d)
    assert src.kind == "csv"
    assert src.columns == ["au_1", "emotion_happy"] and src.dim == 2
    x = src.load("A1_ang_int1_ver1")
    assert x.shape == (6, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], np.linspace(0, 1, 6), rtol=1e-6)
    np.testing.assert_allclose(src.times("A1_ang_int1_ver1"), np.arange(6) * 0.04)


def _openface2_frame(n, rng):
    cols = {"frame": np.arange(1, n + 1), "face_id": 0, "timestamp": np.arange(n) / 30,
            "confidence": 0.98, "success": [1] * (n - 1) + [0]}
    for c in ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z", "gaze_angle_x", "gaze_angle_y"]:
        cols[c] = rng.normal(size=n)
    for i in range(3):
        cols[f"eye_lmk_x_{i}"] = rng.normal(size=n)
    for c in ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]:
        cols[c] = rng.normal(size=n)
    for i in range(3):
        cols[f"x_{i}"] = rng.normal(size=n)
        cols[f"p_{i}"] = rng.normal(size=n)
    for c in OPENFACE2_COLUMNS[:17]:
        cols[c] = rng.uniform(0, 5, size=n)
    for c in ["AU01_c", "AU02_c", "AU28_c"]:
        cols[c] = rng.integers(0, 2, size=n)
    return pd.DataFrame(cols)


def test_openface2_csv_gives_the_papers_31_columns(tmp_path):
    d = tmp_path / "openface"
    d.mkdir()
    rng = np.random.default_rng(4)
    df = _openface2_frame(5, rng)
    # OpenFace writes ", " separated headers: leading spaces must not matter
    text = df.to_csv(index=False).splitlines()
    text[0] = ", ".join(text[0].split(","))
    (d / "A5_sad_int3_ver2.csv").write_text("\n".join(text) + "\n")
    src = open_source(d)
    assert src.columns == list(OPENFACE2_COLUMNS) and src.dim == 31
    x = src.load("A5_sad_int3_ver2")
    assert x.shape == (5, 31)
    np.testing.assert_allclose(x[0, :17], df.loc[0, list(OPENFACE2_COLUMNS[:17])].to_numpy(float), rtol=1e-6)
    assert np.isnan(x[-1]).all() and not np.isnan(x[:-1]).any()  # success == 0 -> no face


def test_open_store_rejects_a_single_folder(tmp_path):
    _write_toy(tmp_path, np.random.default_rng(5))
    with pytest.raises(StoreError, match="open_source"):
        open_store(tmp_path / "toy")
    cfg = json.loads((tmp_path / "toy" / "config.json").read_text())
    assert cfg["extractor"] == "toy" and cfg["columns"] == ["a", "b", "c"]


# -- issue 11: malformed clip files ------------------------------------------------------------
def _bad_npy_folder(root):
    root.mkdir()
    np.save(root / "A100_ang_int1_ver1.npy", np.zeros((3, 5), np.float32))  # malformed FIRST file
    for i in range(2, 12):
        np.save(root / f"A1{i:02d}_ang_int1_ver1.npy", np.ones((4, 8), np.float32))
    np.save(root / "A200_hap_int1_ver1.npy", np.zeros((0, 8), np.float32))
    np.save(root / "A201_hap_int1_ver1.npy", np.full((4, 8), np.nan, np.float32))
    (root / "A202_hap_int1_ver1.npy").write_bytes(b"")
    (root / "A203_hap_int1_ver1.npy").write_text("garbage, not an array\n")
    np.save(root / "A204_hap_int1_ver1.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(root / "A205_hap_int1_ver1.npy", np.zeros((2, 2, 8)))
    return root


def test_import_features_survives_a_malformed_first_file(tmp_path):
    """issue 11: a malformed first file failed the good clips; 0-length was ok; all-NaN audio was no-face."""
    src = import_features(_bad_npy_folder(tmp_path / "src"), tmp_path / "S", "X", modality="audio")
    st = src.status()
    assert src.dim == 8 and len(src.clip_ids) == 10
    assert st["A100_ang_int1_ver1"] == "failed"
    assert st["A200_hap_int1_ver1"] == "failed" and "zero frames" in src.manifest()["A200_hap_int1_ver1"].error
    assert st["A201_hap_int1_ver1"] == "failed"  # audio: not "no-face"
    face = import_features(tmp_path / "src", tmp_path / "S", "F", modality="face")
    assert face.status()["A201_hap_int1_ver1"] == "no-face"


@pytest.mark.parametrize("clip, why", [
    ("A202_hap_int1_ver1", "empty file (0 bytes)"), ("A203_hap_int1_ver1", "not a .npy file"),
    ("A204_hap_int1_ver1", "pickled Python objects"), ("A205_hap_int1_ver1", "3-D array"),
    ("A200_hap_int1_ver1", "zero frames"),
])
def test_bad_npy_files_are_store_errors_naming_the_file(tmp_path, clip, why):
    """issue 11: 0-byte / garbage / object / 3-D / 0-length .npy gave numpy messages or tracebacks."""
    src = open_source(_bad_npy_folder(tmp_path / "src"))
    with pytest.raises(StoreError, match=re.escape(why)) as e:
        src.load(clip)
    assert f"{clip}.npy" in str(e.value)


def test_features_command_shows_no_video_and_import_of_nothing_fails(tmp_path):
    from click.testing import CliRunner

    from blemore.cli import cli

    w = StoreWriter(tmp_path / "S", CFG)
    w.write(ManifestRow("A1_ang_int1_ver1", "a.mp4", "no-video", "no video stream"))
    w.close()
    r = CliRunner().invoke(cli, ["features", str(tmp_path / "S")])
    assert r.exit_code == 0 and "no-video" in r.output.splitlines()[0], r.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "A1_ang_int1_ver1.npy").write_bytes(b"")
    r = CliRunner().invoke(cli, ["import-features", str(bad), "--store", str(tmp_path / "T"), "--name", "X"])
    assert r.exit_code == 2 and "bad" in r.output and "readable" in r.output, r.output


def test_symlink_to_a_text_file_is_named(tmp_path):
    """issue 11: a .npy symlink to a text file gave numpy's 'If you trust the file...' without the name."""
    (tmp_path / "notes.txt").write_text("hello\n")
    d = tmp_path / "f"
    d.mkdir()
    np.save(d / "A1_ang_int1_ver1.npy", np.ones((2, 3), np.float32))
    (d / "A2_ang_int1_ver1.npy").symlink_to(tmp_path / "notes.txt")
    src = open_source(d)
    with pytest.raises(StoreError, match=r"A2_ang_int1_ver1\.npy: not a \.npy file"):
        src.load("A2_ang_int1_ver1")
    assert src.dim == 3
