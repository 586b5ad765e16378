"""Tests for blemore.dataset: metadata loading, folder indexing, joins, folds, writing."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from blemore.dataset import (
    CLIP_COLUMNS,
    METADATA_COLUMNS,
    clip_table,
    DatasetError,
    build_index,
    ensure_folds,
    fold_summary,
    index_folder,
    load_metadata,
    make_folds,
    truth_from_table,
    write_metadata,
)
from blemore.labels import TARGETS, ClipIdError, Label, format_clip_id


def _official_rows():
    """Rows in the official train_metadata.csv layout (extra columns included)."""
    return [
        # filename, video_id, gender, mix, emotion_1, version, intensity_level, situation,
        # emotion_2, emotion_1_salience, emotion_2_salience, fold
        ["A102_ang_int1_ver1", "A102", "f", "0", "ang", "1", "1.0", "", "", "", "", "1"],
        ["A102_mix_disg_hap_30_70_ver1", "A102", "f", "1", "disg", "1", "", "", "hap", "30.0", "70.0", "1"],
        ["A303_neu_sit2_ver1", "A303", "m", "0", "neu", "1", "", "2.0", "", "", "", "0"],
        ["A303_mix_ang_sad_50_50_ver2", "A303", "m", "1", "ang", "2", "", "", "sad", "50", "50", "0"],
    ]


def _write_official(path, rows=None, columns=METADATA_COLUMNS):
    pd.DataFrame(rows or _official_rows(), columns=list(columns)).to_csv(path, index=False)
    return path


def test_load_official_metadata(tmp_path):
    t = load_metadata(_write_official(tmp_path / "train_metadata.csv"))
    assert list(t.columns) == list(CLIP_COLUMNS) + ["gender"]
    assert t["clip_id"].tolist()[1] == "A102_mix_disg_hap_30_70_ver1"
    assert t["actor"].tolist() == ["A102", "A102", "A303", "A303"]
    assert t["gender"].tolist() == ["f", "f", "m", "m"]
    assert t["fold"].tolist() == [1, 1, 0, 0]
    assert t["split"].tolist() == ["train"] * 4
    assert t["label"][1] == Label.blend("hap", 70, "disg", 30)
    assert t["target"].tolist() == [lab.target_index() for lab in t["label"]]
    assert t["is_blend"].tolist() == [False, True, False, True]
    assert t["path"].tolist() == [None] * 4
    assert t["fold"].dtype == np.int64 and t["target"].dtype == np.int64 and t["is_blend"].dtype == bool


def test_load_tolerates_extra_columns_case_and_fraction_saliences(tmp_path):
    df = pd.DataFrame({
        "Filename": ["A102_mix_disg_hap_30_70_ver1.mov", "A102_hap_int3_ver2.mov"],
        "Emotion_1": ["disg", "hap"], "emotion_2": ["hap", ""],
        "emotion_1_salience": ["0.3", ""], "emotion_2_salience": ["0.7", ""],
        "whatever": ["x", "y"], "Sex": ["Female", "F"],
    })
    df.to_csv(tmp_path / "m.csv", index=False)
    t = load_metadata(tmp_path / "m.csv")
    assert t["clip_id"].tolist() == ["A102_mix_disg_hap_30_70_ver1", "A102_hap_int3_ver2"]
    assert t["label"][0] == Label.blend("disg", 30, "hap", 70)
    assert t["gender"].tolist() == ["f", "f"]
    assert t["fold"].tolist() == [-1, -1]


def test_load_test_metadata_without_labels(tmp_path):
    pd.DataFrame({"filename": ["test_0001.mov", "test_0002.mov"]}).to_csv(tmp_path / "t.csv", index=False)
    t = load_metadata(tmp_path / "t.csv")
    assert t["split"].tolist() == ["test", "test"]
    assert t["label"].tolist() == [None, None]
    assert t["actor"].tolist() == [None, None]
    assert t["target"].tolist() == [-1, -1]
    assert truth_from_table(t) == {}


def test_anonymised_ids_take_labels_from_columns(tmp_path):
    pd.DataFrame({
        "filename": ["test_0001", "test_0002"], "emotion_1": ["sad", "ang"], "emotion_2": ["", "hap"],
        "emotion_1_salience": ["", "70"], "emotion_2_salience": ["", "30"], "actor": ["A7", "8"],
    }).to_csv(tmp_path / "t.csv", index=False)
    t = load_metadata(tmp_path / "t.csv")
    assert truth_from_table(t) == {"test_0001": Label.single("sad"), "test_0002": Label.blend("ang", 70, "hap", 30)}
    assert t["actor"].tolist() == ["A7", "A8"]
    assert load_metadata(tmp_path / "t.csv", split="train")["split"].tolist() == ["train", "train"]


def test_label_disagreement_lists_every_clip(tmp_path):
    rows = _official_rows()
    rows[0][4] = "sad"                      # name says ang
    rows[1][9], rows[1][10] = "70", "30"    # name says 30_70
    with pytest.raises(DatasetError) as e:
        load_metadata(_write_official(tmp_path / "m.csv", rows))
    msg = str(e.value)
    assert "A102_ang_int1_ver1" in msg and "A102_mix_disg_hap_30_70_ver1" in msg
    assert len(e.value.problems) == 2


def test_other_metadata_problems(tmp_path):
    rows = _official_rows()
    rows[2][3] = "1"          # mix flag says blend for a neutral clip
    rows[3][11] = "two"       # fold not an integer
    rows.append(list(rows[0]))  # duplicate id
    with pytest.raises(DatasetError) as e:
        load_metadata(_write_official(tmp_path / "m.csv", rows))
    assert len(e.value.problems) == 3
    with pytest.raises(DatasetError, match="no 'filename' column"):
        pd.DataFrame({"name": ["x"]}).to_csv(tmp_path / "n.csv", index=False)
        load_metadata(tmp_path / "n.csv")
    with pytest.raises(DatasetError, match="file not found"):
        load_metadata(tmp_path / "absent.csv")


def test_bad_ids_reported_together(tmp_path):
    pd.DataFrame({"filename": ["A1_ang_int1_ver1", "A1_ang_int9_ver1", "nonsense", "A2_mix_hap_ang_50_50_ver1"]}
                 ).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ClipIdError) as e:
        load_metadata(tmp_path / "m.csv")
    assert [b for b, _ in e.value.bad] == ["A1_ang_int9_ver1", "nonsense", "A2_mix_hap_ang_50_50_ver1"]


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_index_folder(tmp_path):
    _touch(tmp_path / "a" / "A102_ang_int1_ver1.mov")
    _touch(tmp_path / "a" / "A102_ang_int1_ver1.wav")       # the video wins
    _touch(tmp_path / "b" / "A438_mix_disg_hap_30_70_ver1.MP4")
    _touch(tmp_path / "test_0003.mov")
    _touch(tmp_path / "notes.txt")                          # not media: ignored
    _touch(tmp_path / ".hidden.mov")
    t = index_folder(tmp_path)
    assert t["clip_id"].tolist() == ["A102_ang_int1_ver1", "A438_mix_disg_hap_30_70_ver1", "test_0003"]
    assert t["path"][0].endswith("A102_ang_int1_ver1.mov")
    assert t["split"].tolist() == ["train", "train", "test"]
    assert t["label"][1] == Label.blend("disg", 30, "hap", 70)
    assert index_folder(tmp_path, recursive=False)["clip_id"].tolist() == ["test_0003"]


def test_index_folder_bad_names_and_clashes(tmp_path):
    _touch(tmp_path / "bad_one.mov")
    _touch(tmp_path / "x" / "A1_sad_int0_ver1.wav")
    _touch(tmp_path / "A1_sad_int1_ver1.mov")
    with pytest.raises(ClipIdError) as e:
        index_folder(tmp_path)
    assert len(e.value.bad) == 2
    with pytest.warns(UserWarning, match="skipped 2"):
        assert index_folder(tmp_path, strict=False)["clip_id"].tolist() == ["A1_sad_int1_ver1"]
    _touch(tmp_path / "y" / "A1_sad_int1_ver1.mov")
    with pytest.raises(DatasetError, match="two files"), pytest.warns(UserWarning):
        index_folder(tmp_path, strict=False)


def test_build_index_joins(tmp_path):
    meta = _write_official(tmp_path / "train_metadata.csv")
    pd.DataFrame({"filename": ["test_0001.mov"]}).to_csv(tmp_path / "test_metadata.csv", index=False)
    media = tmp_path / "media"
    _touch(media / "A102_ang_int1_ver1.mov")
    _touch(media / "test_0001.mov")
    _touch(media / "A999_sad_int1_ver1.mov")   # not in the metadata
    t = build_index(meta, media, tmp_path / "test_metadata.csv")
    assert len(t) == 6
    by = t.set_index("clip_id")
    assert by.loc["A102_ang_int1_ver1", "path"].endswith(".mov")
    assert by.loc["A303_neu_sit2_ver1", "path"] is None
    assert by.loc["test_0001", "split"] == "test"
    assert by.loc["A999_sad_int1_ver1", "fold"] == -1
    assert by.loc["A102_ang_int1_ver1", "gender"] == "f"
    assert by.loc["A999_sad_int1_ver1", "gender"] is None
    assert len(build_index(meta, media, tmp_path / "test_metadata.csv", how="left")) == 5
    assert sorted(build_index(meta, media, how="inner")["clip_id"]) == ["A102_ang_int1_ver1"]
    assert len(build_index(folder=media)) == 3
    assert len(build_index(meta)) == 4
    with pytest.raises(ValueError):
        build_index()


def _synthetic_table(n_actors=43, seed=1, gender=True):
    rng = np.random.default_rng(seed)
    ids, genders = [], []
    for a in range(n_actors):
        for j in range(int(rng.integers(40, 75))):
            ids.append(format_clip_id(100 + a, TARGETS[int(rng.integers(36))], level=1 + j % 4, version=j))
            genders.append("f" if a % 3 else "m")
    return clip_table(ids, gender=genders if gender else None)


def test_make_folds_actor_disjoint_balanced_deterministic():
    t = _synthetic_table()
    f = make_folds(t, k=5, seed=0)
    assert set(f["fold"]) == set(range(5))
    assert (f.groupby("actor")["fold"].nunique() == 1).all()
    sizes = f["fold"].value_counts()
    per_actor = t["actor"].value_counts()
    assert sizes.max() - sizes.min() <= per_actor.min()  # tighter than the greedy bound
    assert f["fold"].tolist() == make_folds(t, k=5, seed=0)["fold"].tolist()
    assert f["fold"].tolist() != make_folds(t, k=5, seed=1)["fold"].tolist()
    assert t["fold"].tolist() == [-1] * len(t)  # the input is not modified


def test_make_folds_gender_balance():
    t = _synthetic_table()
    f = make_folds(t, k=5, seed=3, gender_column="gender")
    s = fold_summary(f, gender_column="gender")
    for g in ("actors_f", "actors_m"):
        assert s[g].max() - s[g].min() <= 1
    assert s["clips"].max() - s["clips"].min() <= t["actor"].value_counts().max()
    with pytest.raises(ValueError, match="no column"):
        make_folds(t, gender_column="sex")


def test_make_folds_leaves_test_rows_and_needs_actors():
    t = _synthetic_table(n_actors=6, gender=False)
    t.loc[t.index[:5], "split"] = "test"
    f = make_folds(t, k=3)
    assert (f["fold"][:5] == -1).all() and (f["fold"][5:] >= 0).all()
    with pytest.raises(DatasetError, match="cannot fill"):
        make_folds(_synthetic_table(n_actors=2), k=5)
    t2 = t.copy()
    t2.loc[t2.index[10], "actor"] = None
    with pytest.raises(DatasetError, match="no actor"):
        make_folds(t2, k=3)


def test_ensure_folds_keeps_and_completes():
    t = _synthetic_table(n_actors=10)
    f = make_folds(t, k=5, seed=2)
    assert ensure_folds(f, k=3)["fold"].tolist() == f["fold"].tolist()
    assert ensure_folds(t, k=5, seed=2)["fold"].tolist() == f["fold"].tolist()
    partial = f.copy()
    new_actors = partial["actor"].isin(["A100", "A101"])
    partial.loc[new_actors, "fold"] = -1
    partial.loc[partial.index[(partial["actor"] == "A102").to_numpy()][:3], "fold"] = -1
    done = ensure_folds(partial, k=5)
    kept = ~new_actors.to_numpy()
    assert done["fold"][kept].tolist() == f["fold"][kept].tolist()
    assert (done["fold"] >= 0).all()
    assert (done.groupby("actor")["fold"].nunique() == 1).all()


def test_write_metadata_round_trip(tmp_path):
    t = make_folds(_synthetic_table(n_actors=6), k=3)
    test = _synthetic_table(n_actors=1, gender=False).head(4).copy()
    test["clip_id"] = [f"test_{i:04d}" for i in range(1, 5)]
    test["actor"] = None
    test["split"] = "test"
    p = write_metadata(t, tmp_path / "sub" / "train_metadata.csv")
    assert list(pd.read_csv(p).columns) == list(METADATA_COLUMNS)
    back = load_metadata(p)
    pd.testing.assert_frame_equal(back, t)
    write_metadata(test, tmp_path / "test_metadata.csv")
    back = load_metadata(tmp_path / "test_metadata.csv")
    assert truth_from_table(back) == truth_from_table(test)
    write_metadata(test, tmp_path / "hidden.csv", labels=False)
    assert truth_from_table(load_metadata(tmp_path / "hidden.csv")) == {}
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_labels_for_clips(tmp_path):
    from blemore.dataset import labels_for_clips

    pd.DataFrame({"filename": ["test_0001", "test_0002"], "emotion_1": ["sad", ""]}).to_csv(
        tmp_path / "t.csv", index=False)
    table = load_metadata(tmp_path / "t.csv")
    labels, unlabelled = labels_for_clips(["test_0001.mov", "test_0002.mov", "A1_hap_int1_ver1.mov"], table)
    assert labels == {"test_0001": Label.single("sad"), "A1_hap_int1_ver1": Label.single("hap")}
    assert unlabelled == ["test_0002"]
    labels, unlabelled = labels_for_clips(["test_0001", "A1_mix_ang_hap_50_50_ver1"])
    assert labels == {"A1_mix_ang_hap_50_50_ver1": Label.blend("ang", 50, "hap", 50)} and unlabelled == ["test_0001"]
    with pytest.raises(ClipIdError) as e:
        labels_for_clips(["x1", "A1_hap_int1_ver1", "x2"])
    assert [b for b, _ in e.value.bad] == ["x1", "x2"]


def test_clip_table():
    t = clip_table(["A1_hap_int1_ver1.mov", "test_0002"], labels=[None, Label.single("sad")],
                   paths=["/x/A1_hap_int1_ver1.mov", None])
    assert list(t.columns) == list(CLIP_COLUMNS)
    assert t["label"].tolist() == [None, Label.single("sad")]  # a given None keeps the label unknown
    assert t["actor"].tolist() == ["A1", None] and t["split"].tolist() == ["train", "test"]
    t = clip_table(["test_0001"], actors=["7"], split="test", folds=[2], gender=["f"])
    assert (t["actor"][0], t["fold"][0], t["gender"][0]) == ("A7", 2, "f")
    assert clip_table(["A1_hap_int1_ver1"])["label"][0] == Label.single("hap")
    with pytest.raises(DatasetError) as e:
        clip_table(["A1_hap_int1_ver1", "A1_hap_int1_ver1.mov"], labels=[Label.single("sad"), None])
    assert len(e.value.problems) == 2
    with pytest.raises(DatasetError, match="1 folds for 2 clip ids"):
        clip_table(["test_0001", "test_0002"], folds=[1])
    with pytest.raises(ClipIdError):
        clip_table(["oops"])


def test_nan_text_in_emotion_2(tmp_path):
    pd.DataFrame({"filename": ["A1_hap_int1_ver1"], "emotion_1": ["hap"], "emotion_2": ["nan"]}).to_csv(
        tmp_path / "m.csv", index=False)
    assert load_metadata(tmp_path / "m.csv")["label"][0] == Label.single("hap")


def test_actor_in_two_folds_is_refused():
    """issue 11: an actor whose clips sit in two folds was accepted and reported as actor-disjoint."""
    from blemore.dataset import DatasetError, clip_table, ensure_folds, fold_problems
    from blemore.labels import TARGETS, format_clip_id

    ids = [format_clip_id(a, TARGETS[i], version=i) for a in (1, 2, 3) for i in range(4)]
    t = clip_table(ids)
    t["fold"] = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2]
    assert fold_problems(t) == ["actor A2 is in several folds: [1, 2]"]
    with pytest.raises(DatasetError, match=r"actor A2 is in several folds: \[1, 2\]"):
        ensure_folds(t)
    t["fold"] = [0] * 4 + [1] * 4 + [2] * 4
    assert ensure_folds(t)["fold"].tolist() == t["fold"].tolist()


def test_semicolon_metadata_gets_a_delimiter_hint(tmp_path):
    """issue 11: a semicolon CSV said "no 'filename' column" without suggesting the delimiter."""
    from blemore.dataset import DatasetError, load_metadata

    f = tmp_path / "m.csv"
    f.write_text("filename;emotion_1;fold\nA1_ang_int1_ver1;ang;0\n")
    with pytest.raises(DatasetError, match=r"(?s)m\.csv.*no .filename. column.*looks semicolon-separated"):
        load_metadata(f)
    with pytest.raises(DatasetError, match="is a folder"):
        load_metadata(tmp_path)


def test_duplicate_metadata_columns_are_an_error(tmp_path):
    """found by make fuzz: 'filename, filename' silently dropped one column (pandas warning)."""
    from blemore.dataset import DatasetError, load_metadata

    f = tmp_path / "m.csv"
    f.write_text("filename, filename\nA1_ang_int1_ver1.mov,x\n")
    with pytest.raises(DatasetError, match="column 'filename' appears more than once"):
        load_metadata(f)
