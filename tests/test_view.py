"""blemore view: the HTML of a run folder, a comparison, an ablation and a predictions file."""
import html
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from media_fixtures import make_voice_file

from blemore.cli import cli
from blemore.labels import EMOTIONS
from blemore.synth.features import generate_feature_corpus
from blemore.view import ViewError, read_timelines, render_view, timelines_path, write_timelines

FAST = ["--preset", "fast", "--epochs", "2", "--batch-size", "128", "--lr", "0.01", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_feature_corpus(tmp_path_factory.mktemp("view") / "corpus", n_train_actors=10, n_test_actors=2,
                                   n_train_clips=None, n_test_clips=None, clips_per_actor=36, dim=4, frames=(4, 6),
                                   signal=2.5, seed=3)


@pytest.fixture(scope="module")
def run_dir(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("viewrun")
    c = corpus
    r = CliRunner().invoke(cli, ["benchmark", "--metadata", str(c.train_metadata), "--features", str(c.sources["video"]),
                                 "--test-metadata", str(c.test_metadata), "--selection", "paper",
                                 "--out", str(root / "run"), *FAST], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root / "run"


def _data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="blemore-data">(.*?)</script>', text, re.S)
    assert m, "no inline data"
    return json.loads(m.group(1))


def _tables(text: str) -> list[str]:
    return re.findall(r'<table class="([^"]*)">', text)


def test_run_folder(run_dir, tmp_path):
    out = tmp_path / "r.html"
    r = CliRunner().invoke(cli, ["view", str(run_dir), "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    text = out.read_text()
    res = json.loads((run_dir / "results.json").read_text())
    assert {"headline", "folds", "confusion", "perconf"} <= set(_tables(text))
    # headline: validation mean ± std as results.json has it; one row per fold
    v = res["validation"]["acc_presence"]
    assert f"{v['mean']:.3f} ± {v['std']:.3f}" in text
    folds = re.search(r'<table class="folds">.*?<tbody>(.*?)</tbody>', text, re.S).group(1)
    assert folds.count("<tr>") == len(res["validation"]["folds"])
    assert f"<td>{res['validation']['folds'][0]['selection_score']:.3f}</td></tr>" in folds
    # confusion: counts in the cells equal a count from the predictions CSV, clip lists too
    pv = pd.read_csv(run_dir / "predictions" / "validation.csv")
    data = _data(text)
    cells = data["r0-validation"]["cells"]
    for (t, p), g in pv.groupby(["true_target", "pred_target"]):
        assert sorted(row[0] for row in cells[f"{t},{p}"]) == sorted(g["clip_id"])
        assert re.search(rf'data-key="r0-validation" data-cell="{t},{p}" [^>]*>{len(g)}</td>', text)
    assert sum(len(v) for v in cells.values()) == len(pv)
    # plots inlined, nothing fetched from elsewhere
    assert text.count("data:image/png;base64,") == len(list((run_dir / "plots").glob("*.png")))
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text


def test_comparison_and_ablation(run_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    res = json.loads((other / "results.json").read_text())
    res["run"] = "second <run>"
    (other / "results.json").write_text(json.dumps(res))
    abl = tmp_path / "abl"
    abl.mkdir()
    (abl / "ablation.json").write_text(json.dumps({"reference": "mlp", "selection": "paper", "winners": {"x": "mlp"},
                                                   "rows": [{"key": "mlp", "head_label": "mlp-512", "fusion": None,
                                                             "actor_norm": "off", "validation": res["validation"],
                                                             "test": None, "seconds": 1.5, "run_dir": str(other)}]}))
    text = render_view([run_dir, other, abl], output=tmp_path / "c.html")
    assert {"compare", "ablation"} <= set(_tables(text)) and _tables(text).count("headline") == 2
    assert "second &lt;run&gt;" in text and "second <run>" not in text
    with pytest.raises(ViewError, match="nope"):
        render_view([tmp_path / "nope", run_dir / "config.json"])


WEIRD = 'A1_<script>alert("x")</script> & \'q\''


def test_predictions_file(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    a = make_voice_file(media / "A101_hap_int1_ver1.wav", seconds=0.5)
    b = make_voice_file(media / "weird #1 ü.wav", seconds=0.5)
    out = tmp_path / "preds" / "pred.json"
    out.parent.mkdir()
    ids = ["A101_hap_int1_ver1", "A102_mix_ang_sad_70_30_ver1", WEIRD]
    labels = ["hap", "ang+sad 50/50", "neu"]
    recs = []
    for i, (cid, lab) in enumerate(zip(ids, labels)):
        t = np.linspace(0.05, 0.45, 5)
        p = np.full((5, 6), 1 / 6)
        p[:, i] += 0.1 * np.arange(5)
        recs.append({"clip_id": cid, "label": lab, "proba": p.mean(0), "times": t, "timeline": p,
                     "media": [a, None, b][i], "duration": 0.5})
    write_timelines(timelines_path(out), recs, model="m", notice="uncalibrated <test>")
    pd.DataFrame({"clip_id": ids, "emotions": ["hap", "ang+sad", "neu"], "salience": ["100", "50/50", "100"],
                  **{f"p_{e}": [0.1] * 3 for e in EMOTIONS}}).to_csv(out.with_suffix(".csv"), index=False)
    out.write_text("{}")
    view = tmp_path / "site" / "v.html"
    view.parent.mkdir()
    r = CliRunner().invoke(cli, ["view", str(out), "-o", str(view)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    text = view.read_text()
    # every clip in the server-rendered table, escaped
    assert "predtable" in _tables(text)
    assert html.escape(WEIRD, quote=True) in text and "<script>alert" not in text
    assert "uncalibrated &lt;test&gt;" in text
    clips = _data(text)["p0"]["clips"]
    assert [c["id"] for c in clips] == ids
    by = {c["id"]: c for c in clips}
    # right/wrong from the labels in the clip ids; unknown where the id carries none
    assert by[ids[0]]["ok"] is True and by[ids[1]]["ok"] is False and by[ids[2]]["ok"] is None
    assert by[ids[1]]["true"] == "ang+sad 70/30" and by[ids[1]]["conf"] == "70/30"
    # links to media that exist, relative to the HTML file
    for c, m in zip(clips, [a, None, b]):
        if m is None:
            assert c["media"] is None
        else:
            assert not c["media"].startswith("/") and (view.parent / unquote(c["media"])).resolve() == m.resolve()
            assert c["kind"] == "audio"
    # timeline data per clip, as written
    for c, rec in zip(clips, recs):
        np.testing.assert_allclose(c["times"], rec["times"], atol=1e-4)
        np.testing.assert_allclose(np.array(c["timeline"]), rec["timeline"], atol=1e-4)
    # --copy-media copies beside the HTML file
    r = CliRunner().invoke(cli, ["view", str(timelines_path(out)), "-o", str(view), "--copy-media"],
                           catch_exceptions=False)
    assert r.exit_code == 0
    copied = _data(view.read_text())["p0"]["clips"]
    assert copied[0]["media"].startswith("v_media/") and (view.parent / unquote(copied[2]["media"])).is_file()


def test_timelines_file_checks(tmp_path):
    p = tmp_path / "x.timelines.json"
    p.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ViewError, match="not a blemore timeline file"):
        read_timelines(p)
    assert timelines_path("a/b/pred.json") == Path("a/b/pred.timelines.json")
    assert timelines_path("pred.csv") == Path("pred.timelines.json")


def test_predict_with_a_bundle_writes_what_view_needs(corpus, tmp_path):
    c = corpus
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "--metadata", str(c.train_metadata), "--features", str(c.sources["audio"]),
                            "--head", "linear", "--out", str(tmp_path / "model"), *FAST], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(c.sources["audio"].glob("A*.npy"))[:4]:
        (few / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "pred.json"
    r = runner.invoke(cli, ["predict", str(tmp_path / "model"), str(few), "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = read_timelines(timelines_path(out))
    table = pd.read_csv(out.with_suffix(".csv"))
    assert [x["clip_id"] for x in doc["clips"]] == list(table["clip_id"]) and len(doc["clips"]) == 4
    assert doc["notice"] is None and "NOTICE" not in r.stdout
    for x in doc["clips"]:
        assert len(x["times"]) >= 1 and np.array(x["timeline"]).shape == (len(x["times"]), 6)
    text = render_view([out], output=tmp_path / "v.html")
    clips = _data(text)["p0"]["clips"]
    assert [x["id"] for x in clips] == list(table["clip_id"]) and all(x["timeline"] for x in clips)


def test_long_timelines_are_thinned_against_block_means(tmp_path):
    from blemore.view import thin_timeline

    rng = np.random.default_rng(4)
    t = np.arange(1001) / 25
    p = rng.random((1001, 6))
    p[10:13] = np.nan  # frames without a face
    p[297:308] = np.nan  # a whole block (rows 27 * 11 ... 27 * 11 + 10)
    tt, pp = thin_timeline(t, p, 100)
    k = 11  # ceil(1001 / 100)
    assert len(tt) == len(pp) == -(-1001 // k) <= 100
    for b in range(len(tt)):
        rows = p[b * k:(b + 1) * k]
        ok = np.isfinite(rows).all(1)
        np.testing.assert_allclose(tt[b], t[b * k:(b + 1) * k].mean())
        if ok.any():
            np.testing.assert_allclose(pp[b], rows[ok].mean(0))
        else:
            assert np.isnan(pp[b]).all()
    short_t, short_p = thin_timeline(t[:50], p[:50], 100)
    np.testing.assert_array_equal(short_t, t[:50])
    np.testing.assert_array_equal(short_p, p[:50])
    write_timelines(tmp_path / "x.timelines.json", [{"clip_id": "c", "label": "hap", "proba": np.full(6, 1 / 6),
                                                     "times": t, "timeline": p}], max_points=100)
    c = read_timelines(tmp_path / "x.timelines.json")["clips"][0]
    assert len(c["times"]) == len(tt) and c["timeline"][27] == [None] * 6
