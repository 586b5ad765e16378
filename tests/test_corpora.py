"""Corpus recipes on tiny fake trees that use each corpus's real naming (empty files)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from blemore import corpora
from blemore.corpora import CorpusError, prepare
from blemore.dataset import load_metadata


def _touch(root: Path, *names: str) -> None:
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def _by_id(meta: pd.DataFrame) -> dict:
    return {r["filename"]: r for r in meta.to_dict("records")}


def test_ravdess_labels_actors_gender_and_dropped(tmp_path):
    _touch(tmp_path,
           "Actor_01/03-01-05-02-01-01-01.wav",   # angry strong, actor 1 (male)
           "Actor_01/03-01-02-01-01-01-01.wav",   # calm -> dropped
           "Actor_02/03-01-08-01-02-02-02.wav",   # surprised -> dropped
           "Actor_02/01-01-03-01-01-01-02.mp4",   # happy, AV
           "Actor_02/02-02-04-02-01-01-02.mp4",   # sad, video only, song
           "Actor_03/03-01-01-01-01-01-03.wav",   # neutral
           "Actor_03/notes.wav")                  # not RAVDESS naming -> skipped
    res = prepare("ravdess", tmp_path, folds=3)
    m = _by_id(res.metadata)
    assert set(m) == {"03-01-05-02-01-01-01", "01-01-03-01-01-01-02", "02-02-04-02-01-01-02", "03-01-01-01-01-01-03"}
    r = m["03-01-05-02-01-01-01"]
    assert (r["emotion_1"], r["actor"], r["gender"], r["intensity"], r["modality"]) == ("ang", "01", "m", "2", "audio")
    assert m["01-01-03-01-01-01-02"]["gender"] == "f" and m["01-01-03-01-01-01-02"]["emotion_1"] == "hap"
    assert m["02-02-04-02-01-01-02"]["channel"] == "song" and m["02-02-04-02-01-01-02"]["emotion_1"] == "sad"
    assert m["03-01-01-01-01-01-03"]["emotion_1"] == "neu"
    assert res.dropped == {"calm": 1, "surprised": 1}
    assert res.skipped == ["Actor_03/notes.wav"]
    text = "\n".join(res.summary())
    assert "calm 1" in text and "surprised 1" in text and "skipped 1" in text
    # actor-disjoint folds: one actor, one fold
    assert res.metadata.groupby("actor")["fold"].nunique().max() == 1
    assert res.metadata["fold"].nunique() == 3


def test_ravdess_map_synonyms_and_modality(tmp_path):
    _touch(tmp_path, "03-01-02-01-01-01-01.wav", "03-01-08-01-01-01-02.wav", "01-01-08-01-01-01-02.mp4",
           "03-01-05-01-01-01-03.wav")
    res = prepare("ravdess", tmp_path, map=["calm=neutral", "surprise=fea"], folds=2, modality="audio")
    m = _by_id(res.metadata)
    assert set(m) == {"03-01-02-01-01-01-01", "03-01-08-01-01-01-02", "03-01-05-01-01-01-03"}
    assert m["03-01-02-01-01-01-01"]["emotion_1"] == "neu" and m["03-01-08-01-01-01-02"]["emotion_1"] == "fea"
    assert res.mapped_counts == {"calm": 1, "surprised": 1} and res.dropped == {}
    assert "calm -> neu (1)" in "\n".join(res.summary())


def test_unknown_codes_and_bad_maps_are_named(tmp_path):
    _touch(tmp_path, "03-01-09-01-01-01-01.wav", "03-01-05-01-01-01-02.wav")
    with pytest.raises(CorpusError, match=r"unknown ravdess emotion code '09'.*03-01-09-01-01-01-01\.wav"):
        prepare("ravdess", tmp_path)
    with pytest.raises(CorpusError, match="'boredom' is not a ravdess emotion category"):
        prepare("ravdess", tmp_path, map=["boredom=neu"])
    with pytest.raises(CorpusError, match="'xyz' is not one of"):
        prepare("ravdess", tmp_path, map=["calm=xyz"])
    with pytest.raises(CorpusError, match="not CATEGORY=CODE"):
        prepare("ravdess", tmp_path, map=["calm"])
    with pytest.raises(CorpusError, match="unknown corpus recipe 'nope'.*ravdess"):
        prepare("nope", tmp_path)


def test_crema_d_demographics_levels_and_one_file_per_clip(tmp_path):
    _touch(tmp_path, "VideoFlash/1001_DFA_ANG_XX.flv", "AudioWAV/1001_DFA_ANG_XX.wav",
           "AudioWAV/1002_IEO_HAP_HI.wav", "AudioWAV/1003_TIE_DIS_LO.wav", "AudioWAV/1003_TIE_NEU_XX.wav")
    (tmp_path / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n")
    res = prepare("crema-d", tmp_path, folds=3)
    m = _by_id(res.metadata)
    assert set(m) == {"1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1003_TIE_DIS_LO", "1003_TIE_NEU_XX"}
    assert m["1001_DFA_ANG_XX"]["path"] == "VideoFlash/1001_DFA_ANG_XX.flv"  # video preferred
    assert (m["1001_DFA_ANG_XX"]["gender"], m["1002_IEO_HAP_HI"]["gender"], m["1003_TIE_DIS_LO"]["gender"]) == ("m", "f", "")
    assert (m["1001_DFA_ANG_XX"]["intensity"], m["1002_IEO_HAP_HI"]["intensity"], m["1003_TIE_DIS_LO"]["intensity"]) \
        == ("", "3", "1")
    assert [m[c]["emotion_1"] for c in sorted(m)] == ["ang", "hap", "disg", "neu"]
    _touch(tmp_path, "AudioWAV/1004_XYZ_SAD_XX.wav")
    with pytest.raises(CorpusError, match="unknown sentence code 'XYZ'"):
        prepare("crema-d", tmp_path)


def test_mead_release_and_flat_layouts(tmp_path):
    _touch(tmp_path, "M003/video/front/angry/level_1/001.mp4", "M003/video/left_30/angry/level_1/001.mp4",
           "M003/audio/contempt/level_2/003.m4a", "W009/video/front/happy/level_3/002.mp4",
           "flat/M030_front_sad_level_3_001.mp4", "flat/W011_front_surprised_level3_004.mp4",
           "flat/W012_down_neutral_level1_001.mp4")
    res = prepare("mead", tmp_path, folds=2)
    m = _by_id(res.metadata)
    assert set(m) == {"M003_front_angry_level_1_001", "M003_left_30_angry_level_1_001",
                      "W009_front_happy_level_3_002", "M030_front_sad_level_3_001", "W012_down_neutral_level1_001"}
    r = m["W009_front_happy_level_3_002"]
    assert (r["actor"], r["gender"], r["emotion_1"], r["intensity"], r["view"]) == ("W009", "f", "hap", "3", "front")
    assert m["M030_front_sad_level_3_001"]["gender"] == "m" and m["W012_down_neutral_level1_001"]["emotion_1"] == "neu"
    assert res.dropped == {"contempt": 1, "surprised": 1}
    front = prepare("mead", tmp_path, folds=2, view="front", map={"contempt": "disg"})
    assert set(front.metadata["view"]) == {"front"} and front.dropped == {"surprised": 1}


def test_emodb_letters_gender_and_boredom(tmp_path):
    _touch(tmp_path, "wav/03a01Wa.wav", "wav/08a02Lb.wav", "wav/10b01Ec.wav", "wav/13a05Ad.wav",
           "wav/16b10Fa.wav", "wav/03a01Ta.wav", "wav/09a01Na.wav", "wav/bad.wav")
    res = prepare("emodb", tmp_path, folds="loso")
    m = _by_id(res.metadata)
    assert {c: r["emotion_1"] for c, r in m.items()} == {
        "03a01Wa": "ang", "10b01Ec": "disg", "13a05Ad": "fea", "16b10Fa": "hap", "03a01Ta": "sad", "09a01Na": "neu"}
    assert {c: r["gender"] for c, r in m.items()} == {
        "03a01Wa": "m", "10b01Ec": "m", "13a05Ad": "f", "16b10Fa": "f", "03a01Ta": "m", "09a01Na": "f"}
    assert res.dropped == {"L": 1} and res.skipped == ["wav/bad.wav"]
    assert res.metadata["fold"].nunique() == 5  # one per speaker
    mapped = prepare("emodb", tmp_path, map=["boredom=neu"], folds=2)
    assert _by_id(mapped.metadata)["08a02Lb"]["emotion_1"] == "neu" and mapped.mapped_counts == {"L": 1}


def test_generic_pattern_map_and_unknown_values(tmp_path):
    _touch(tmp_path, "s1/s1_ANGRY_x.wav", "s1/s1_hap_y.wav", "s2/s2_BORED_z.wav", "s2/s2_anger_q.wav", "s2/other.wav")
    pat = r"(?P<actor>s\d+)_(?P<emotion>[A-Za-z]+)_"
    with pytest.raises(CorpusError, match=r"(?s)unknown generic emotion code .ANGRY.*BORED"):
        prepare("generic", tmp_path, pattern=pat, folds=2)
    res = prepare("generic", tmp_path, pattern=pat, folds=2, map=["ANGRY=ang", "BORED=drop"])
    m = _by_id(res.metadata)
    assert {c: r["emotion_1"] for c, r in m.items()} == {"s1_ANGRY_x": "ang", "s1_hap_y": "hap", "s2_anger_q": "ang"}
    assert res.dropped == {"BORED": 1} and res.skipped == ["s2/other.wav"]
    with pytest.raises(CorpusError, match="no named group"):
        prepare("generic", tmp_path, pattern=r"(?P<actor>s\d+)")


def test_recipe_metadata_loads_with_namespaced_actors(tmp_path):
    _touch(tmp_path / "r", "03-01-05-01-01-01-01.wav", "03-01-03-01-01-01-02.wav")
    _touch(tmp_path / "e", "01a01Wa.wav", "02a01Fa.wav")  # EmoDB-style names, speakers 01/02
    a = prepare("ravdess", tmp_path / "r", folds=2)
    a.write(tmp_path / "r.csv")
    b = prepare("emodb", tmp_path / "e", folds=2)
    b.write(tmp_path / "e.csv")
    ta, tb = load_metadata(tmp_path / "r.csv"), load_metadata(tmp_path / "e.csv")
    assert sorted(ta["actor"]) == ["ravdess:01", "ravdess:02"] and sorted(tb["actor"]) == ["emodb:01", "emodb:02"]
    assert [lab.name() for lab in ta.sort_values("clip_id")["label"]] == ["hap", "ang"]
    both, line = corpora.combine([tmp_path / "r.csv", tmp_path / "e.csv"], folds=2)
    both.to_csv(tmp_path / "both.csv", index=False)
    t = load_metadata(tmp_path / "both.csv")
    assert t["actor"].nunique() == 4 and set(t["corpus"]) == {"ravdess", "emodb"}
    assert t.groupby("actor")["fold"].nunique().max() == 1 and "2 actor-disjoint folds" in line


def test_blemore_release_layout(tmp_path):
    from blemore.dataset import clip_table, write_metadata
    from blemore.labels import Label

    ids = ["A102_ang_int1_ver1", "A102_mix_disg_hap_30_70_ver1", "A103_neu_sit2_ver1", "A104_sad_int2_ver1"]
    t = clip_table(ids, folds=[0, 0, 1, 1])
    write_metadata(t, tmp_path / "train_metadata.csv")
    _touch(tmp_path, *[f"train/{c}.mov" for c in ids], "test/test_0001.mov")
    res = prepare("blemore", tmp_path)
    m = _by_id(res.metadata)
    assert m["A102_mix_disg_hap_30_70_ver1"]["emotion_2"] == "hap" and m["A102_ang_int1_ver1"]["fold"] == "0"
    res.write(tmp_path / "out.csv")
    back = load_metadata(tmp_path / "out.csv")
    assert dict(zip(back["clip_id"], back["label"]))["A102_mix_disg_hap_30_70_ver1"] == Label.blend("disg", 30, "hap", 70)
    assert dict(zip(back["clip_id"], back["actor"]))["A103_neu_sit2_ver1"] == "blemore:A103"


def test_cli_corpus_config_link_media_and_combine(tmp_path):
    from click.testing import CliRunner

    from blemore.cli import cli
    from blemore.extract import find_media

    _touch(tmp_path / "mead", "M003/video/front/angry/level_1/001.mp4", "W009/video/front/surprised/level_2/001.mp4",
           "W009/video/front/happy/level_2/001.mp4")
    cfg = tmp_path / "c.toml"
    cfg.write_text('folds = 2\n[map]\nsurprise = "fea"\n[options]\nview = "front"\n')
    r = CliRunner().invoke(cli, ["corpus", "mead", str(tmp_path / "mead"), "-o", str(tmp_path / "mead.csv"),
                                 "--config", str(cfg), "--link-media", str(tmp_path / "links")])
    assert r.exit_code == 0, r.output
    meta = pd.read_csv(tmp_path / "mead.csv", dtype=str, keep_default_na=False)
    assert dict(zip(meta["filename"], meta["emotion_1"]))["W009_front_surprised_level_2_001"] == "fea"
    assert sorted(find_media([tmp_path / "links"])) == sorted(meta["filename"])  # unique names for extract
    _touch(tmp_path / "emo", "03a01Wa.wav", "08a01Fa.wav")
    r = CliRunner().invoke(cli, ["corpus", "emodb", str(tmp_path / "emo"), "-o", str(tmp_path / "emo.csv"),
                                 "--map", "nonsense"])
    assert r.exit_code == 2 and "not CATEGORY=CODE" in r.output
    r = CliRunner().invoke(cli, ["corpus", "emodb", str(tmp_path / "emo"), "-o", str(tmp_path / "emo.csv")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["corpus", "combine", str(tmp_path / "mead.csv"), str(tmp_path / "emo.csv"),
                                 "-o", str(tmp_path / "both.csv"), "--folds", "loso"])
    assert r.exit_code == 0, r.output
    t = load_metadata(tmp_path / "both.csv")
    assert set(t["corpus"]) == {"mead", "emodb"} and t["fold"].nunique() == t["actor"].nunique() == 4
