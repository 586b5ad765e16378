"""The temporal synthetic corpus (blemore.synth.temporal): layout, events, blends, muted sources."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from blemore.dataset import load_metadata
from blemore.labels import TARGETS, parse_clip_id
from blemore.store import open_source
from blemore.synth import SynthError
from blemore.synth.temporal import event_shape, generate_temporal_corpus

KW = dict(n_train_actors=5, n_test_actors=1, n_train_clips=180, n_test_clips=36, dim=8, latent=4,
          frames=(20, 40), event=(4, 8), seed=3)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """No background at all (noise 0, no identity, no shift): what remains is the events."""
    return generate_temporal_corpus(tmp_path_factory.mktemp("tc"), noise=0.0, actor_scale=0.0, shift=0.0,
                                    nan_rate=0.0, dropout=0.5, **KW)


def test_layout_every_target_and_readable(tmp_path):
    c = generate_temporal_corpus(tmp_path / "t", **KW)
    train = load_metadata(c.train_metadata)
    assert len(train) == 180 and set(train["fold"]) == {0, 1, 2, 3, 4}
    for _, g in train.groupby("actor"):
        assert set(g["target"]) == set(range(len(TARGETS)))
    v, a = open_source(c.sources["video"]), open_source(c.sources["audio"])
    lens = {v.load(cid).shape[0] for cid in v.clip_ids}
    assert min(lens) >= 20 and max(lens) <= 40 and len(lens) > 5  # variable lengths
    assert all(v.load(cid).shape == (a.load(cid).shape[0], 8) for cid in v.clip_ids)  # same time base
    assert any(np.isnan(v.load(cid)).all(axis=1).any() for cid in v.clip_ids)  # no-face runs
    assert not any(np.isnan(a.load(cid)).any() for cid in a.clip_ids)
    again = generate_temporal_corpus(tmp_path / "u", **KW)
    cid = v.clip_ids[7]
    np.testing.assert_array_equal(v.load(cid), open_source(again.sources["video"]).load(cid))


def _active(x):
    return np.abs(x).sum(axis=1) > 1e-9


def test_events_short_blends_follow_salience_and_muted_sources(clean):
    v, a = open_source(clean.sources["video"]), open_source(clean.sources["audio"])
    column = {}  # the metadata's muted column (train and test), read back by load_metadata too
    for csv in (clean.train_metadata, clean.test_metadata):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        column.update(zip(df["filename"], df["muted"]))
        assert len(load_metadata(csv)) == len(df)
    assert sorted(column) == sorted(v.clip_ids)
    muted = 0
    total_blend = 0
    for cid in v.clip_ids:
        lab = parse_clip_id(cid).label
        xv, xa = v.load(cid), a.load(cid)
        on_v, on_a = _active(xv), _active(xa)
        assert column[cid] == ("video" if not on_v.any() else "audio" if not on_a.any() else ""), cid
        if not on_v.any() or not on_a.any():
            muted += 1
            assert on_v.any() or on_a.any()  # never both sources muted
            continue
        assert on_v.sum() < len(xv)  # an event, not the whole clip
        if not lab.is_blend:
            assert 4 <= on_v.sum() <= 8  # one event of 4-8 frames
            np.testing.assert_array_equal(on_v, on_a)  # at the same time in both sources
        elif lab.saliences[0] != lab.saliences[1]:
            total_blend += 1
    share = muted / len(v.clip_ids)
    assert 0.35 < share < 0.65  # dropout=0.5
    assert total_blend > 0


def test_event_shape():
    assert event_shape(5).shape == (5,) and event_shape(5).max() == pytest.approx(1.0)
    assert (event_shape(7) > 0).all()


def test_bad_settings_listed_at_once(tmp_path):
    with pytest.raises(SynthError) as e:
        generate_temporal_corpus(tmp_path, frames=(1, 0), dropout=2.0, n_train_actors=3, folds=5)
    msg = str(e.value)
    assert "frames" in msg and "dropout" in msg and "3 training actors" in msg


def test_cli_temporal(tmp_path):
    from blemore.cli import cli

    r = CliRunner().invoke(cli, ["synth", "features", str(tmp_path / "c"), "--temporal", "--clips", "180",
                                  "--actors", "5", "--test-actors", "1", "--test-clips", "36", "--dim", "6",
                                  "--frames", "10,20"])
    assert r.exit_code == 0, r.output
    x = open_source(tmp_path / "c" / "audio").load(open_source(tmp_path / "c" / "audio").clip_ids[0])
    assert x.shape[1] == 6 and 10 <= x.shape[0] <= 20
