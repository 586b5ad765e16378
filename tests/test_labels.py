"""Tests for blemore.labels: the clip-id grammar, Label, codes and the 36 targets."""
from __future__ import annotations

import numpy as np
import pytest

from blemore.labels import (
    EMOTIONS,
    INVALID,
    MASK_TO_SET,
    N_SETS,
    N_TARGETS,
    PAIRS,
    SET_TO_MASK,
    TARGET_NAMES,
    TARGET_SOFT,
    TARGET_TO_MASK,
    TARGETS,
    ClipIdError,
    Label,
    LabelError,
    clip_id_from_path,
    encode_labels,
    encode_prediction,
    format_clip_id,
    mask_names,
    parse_clip_id,
    parse_clip_ids,
    soft_targets,
    target_to_label,
)


def test_codes_and_order():
    assert EMOTIONS == ("ang", "disg", "fea", "hap", "sad", "neu")
    assert len(PAIRS) == 10 and all(EMOTIONS.index(a) < EMOTIONS.index(b) for a, b in PAIRS)
    assert N_SETS == 16 and N_TARGETS == 36 and len(TARGETS) == 36 and len(set(TARGETS)) == 36


@pytest.mark.parametrize("raw, actor, label, kind, level, version", [
    ("A102_ang_int1_ver1", "A102", Label.single("ang"), "single", 1, 1),
    ("A7_sad_int4_ver12.mov", "A7", Label.single("sad"), "single", 4, 12),
    ("/data/x/A303_neu_sit2_ver1.mp4", "A303", Label.single("neu"), "neutral", 2, 1),
    ("A438_mix_disg_hap_30_70_ver1", "A438", Label.blend("disg", 30, "hap", 70), "blend", None, 1),
    ("A438_mix_ang_sad_50_50_ver2.mov", "A438", Label.blend("ang", 50, "sad", 50), "blend", None, 2),
    ("A438_mix_fea_hap_70_30_ver3", "A438", Label.blend("hap", 30, "fea", 70), "blend", None, 3),
    ("test_0001.mov", None, None, "test", None, None),
    ("test_0594", None, None, "test", None, None),
])
def test_grammar_forms(raw, actor, label, kind, level, version):
    info = parse_clip_id(raw)
    assert info.clip_id == clip_id_from_path(raw)
    assert "." not in info.clip_id and "/" not in info.clip_id
    assert (info.actor, info.label, info.kind, info.level, info.version) == (actor, label, kind, level, version)


@pytest.mark.parametrize("bad", [
    "", "A102", "A102_ang_int5_ver1", "A102_ang_int0_ver1", "A102_neu_int1_ver1", "A102_ang_sit1_ver1",
    "A102_joy_int1_ver1", "B102_ang_int1_ver1", "A102_ang_int1", "A102_ang_int1_ver",
    "A438_mix_disg_hap_40_60_ver1", "A438_mix_disg_disg_50_50_ver1", "A438_mix_hap_disg_70_30_ver1",
    "A438_mix_neu_hap_50_50_ver1", "A438_mix_disg_hap_30_70", "test_", "test_abc", "a102_ang_int1_ver1",
    "A102_ang_int1_ver1_extra",
])
def test_malformed_ids(bad):
    with pytest.raises(ClipIdError) as e:
        parse_clip_id(bad)
    assert repr(bad) in str(e.value) and "Expected grammar" in str(e.value)


def test_batch_lists_all_bad_ids():
    ids = ["A1_ang_int1_ver1", "bad1", "A2_hap_int9_ver1", "test_0003", "A3_mix_ang_ang_50_50_ver1"]
    with pytest.raises(ClipIdError) as e:
        parse_clip_ids(ids)
    assert [b for b, _ in e.value.bad] == ["bad1", "A2_hap_int9_ver1", "A3_mix_ang_ang_50_50_ver1"]
    assert all(b in str(e.value) for b in ("bad1", "A2_hap_int9_ver1", "A3_mix_ang_ang_50_50_ver1"))
    assert "3 malformed" in str(e.value)
    many = [f"x{i}" for i in range(60)]
    with pytest.raises(ClipIdError, match="and 10 more"):
        parse_clip_ids(many)
    assert [i.clip_id for i in parse_clip_ids(["A1_ang_int1_ver1.mov", "test_0003"])] == ["A1_ang_int1_ver1", "test_0003"]


def test_label_parse_rejects_test_ids():
    with pytest.raises(ClipIdError, match="no label"):
        Label.parse("test_0001.mov")
    assert Label.parse("A1_hap_int2_ver1") == Label.single("hap")


def test_label_constructors_and_validation():
    b = Label.blend("hap", 70, "disg", 30)
    assert b.emotions == ("disg", "hap") and b.saliences == (30, 70)
    assert Label.blend("disg", "30", "hap", 70.0) == b == Label.blend("disg", 29.6, "hap", 70.4)
    assert Label.from_pairs([("hap", 70), ("disg", 30)]) == b
    assert Label.from_prediction([{"emotion": "disg", "salience": 30}, {"emotion": "hap", "salience": "70"}]) == b
    assert Label.from_prediction([{"emotion": "sad", "salience": 100.0}]) == Label.single("sad")
    for args in [("hap", 60, "disg", 40), ("hap", 50, "hap", 50), ("neu", 50, "hap", 50), ("joy", 50, "hap", 50),
                 ("hap", "x", "disg", 30), ("hap", float("inf"), "disg", 30)]:
        with pytest.raises(LabelError):
            Label.blend(*args)
    with pytest.raises(LabelError):
        Label.single("joy")
    with pytest.raises(LabelError):
        Label.from_pairs([])
    with pytest.raises(LabelError):
        Label.from_pairs([("ang", 30), ("hap", 30), ("sad", 40)])


def test_targets_both_ways_and_views():
    for i, t in enumerate(TARGETS):
        assert t.target_index() == i and Label.from_target(i) == t and target_to_label(i) == t
        assert TARGET_NAMES[i] == t.name()
        assert MASK_TO_SET[t.mask] == t.set_index() and SET_TO_MASK[t.set_index()] == t.mask
        assert TARGET_TO_MASK[i] == t.mask
        np.testing.assert_allclose(TARGET_SOFT[i], t.soft())
        assert abs(t.soft().sum() - 1) < 1e-6
    assert target_to_label(INVALID) is None
    b = Label.blend("hap", 70, "sad", 30)
    np.testing.assert_allclose(b.soft(), [0, 0, 0, 0.7, 0.3, 0], atol=1e-7)
    assert b.name() == "hap+sad 70/30" and b.ratio_index() == 2 and b.is_blend
    assert Label.blend("hap", 30, "sad", 70).ratio_index() == 0
    assert Label.single("neu").soft().tolist() == [0, 0, 0, 0, 0, 1]
    with pytest.raises(LabelError):
        Label.single("hap").ratio_index()
    assert mask_names(b.mask) == ["hap", "sad"]
    assert soft_targets([b, Label.single("ang")]).shape == (2, 6)
    # the 16 sets: every valid mask maps to a set, every other mask to INVALID
    valid = {t.mask for t in TARGETS}
    assert len(valid) == 16
    assert all((MASK_TO_SET[m] >= 0) == (m in valid) for m in range(64))


def test_format_round_trip():
    for t in TARGETS:
        for level in (1, 4):
            cid = format_clip_id(438, t, level=level, version=2)
            assert parse_clip_id(cid).label == t and parse_clip_id(cid).actor == "A438"
    assert format_clip_id("A438", Label.blend("disg", 30, "hap", 70)) == "A438_mix_disg_hap_30_70_ver1"
    assert format_clip_id(303, Label.single("neu"), level=2) == "A303_neu_sit2_ver1"


def test_encode_predictions_and_labels():
    hap_sad = [{"emotion": "sad", "salience": 30}, {"emotion": "hap", "salience": 70.0}]
    assert encode_prediction(hap_sad) == (Label.blend("hap", 70, "sad", 30).mask,
                                          Label.blend("hap", 70, "sad", 30).target_index())
    # outside the label space: the set still has a mask, the target is INVALID
    m, t = encode_prediction([{"emotion": "hap", "salience": 60}, {"emotion": "sad", "salience": 40}])
    assert m == Label.blend("hap", 50, "sad", 50).mask and t == INVALID
    m, t = encode_prediction([{"emotion": "neu", "salience": 50}, {"emotion": "sad", "salience": 50}])
    assert m == 0b100000 | 0b10000 and t == INVALID
    assert encode_prediction([]) == (0, INVALID)
    assert encode_prediction([{"emotion": "hap", "salience": float("inf")}, {"emotion": "sad", "salience": 0}])[1] == INVALID
    with pytest.raises(LabelError, match="joy"):
        encode_prediction([{"emotion": "joy", "salience": 100}])
    mask, target = encode_labels([Label.single("ang"), None])
    assert mask.tolist() == [1, 0] and target.tolist() == [0, INVALID]


def test_direct_construction_is_validated():
    assert Label(("disg", "hap"), (30, 70)) == Label.blend("hap", 70, "disg", 30)
    for e, sal in [(("hap", "disg"), (70, 30)), (("hap",), (50,)), (("joy",), (100,)), (("hap", "sad"), (60, 40)),
                   (("hap", "sad"), (70.0, 30.0)), (("neu", "sad"), (50, 50)), ((), ())]:
        with pytest.raises(LabelError):
            Label(e, sal)


# -- issue 11: hostile clip ids ------------------------------------------------------------
@pytest.mark.parametrize("cid", ["A\u0661\u0660\u0662_ang_int1_ver1", "A102_ang_int1_ver\u0661",
                                 "test_\u0661\u0662", "A102_mix_ang_hap_\u0667\u0660_30_ver1", "A102_ang_int1_ver1\n"])
def test_clip_id_grammar_rejects_non_ascii_digits_and_trailing_newline(cid):
    with pytest.raises(ClipIdError):
        parse_clip_id(cid)


def test_clip_id_near_misses_get_a_specific_message():
    with pytest.raises(ClipIdError, match="neutral clips use sit<n>"):
        parse_clip_id("A1_neu_int1_ver1")
    with pytest.raises(ClipIdError, match="emotion clips use int<n>"):
        parse_clip_id("A1_hap_sit2_ver1")


def test_huge_version_number_is_a_clip_id_error():
    with pytest.raises(ClipIdError, match=r"version number has 5000 digits") as e:
        parse_clip_id("A1_ang_int1_ver" + "9" * 5000)
    assert len(str(e.value)) < 2000
