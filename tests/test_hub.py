"""Model bundles as safetensors + JSON, checked on load; push/load through a local fake Hub."""
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fake_hub import FakeHub

import blemore
from blemore.bundle import BundleError, ModelBundle, _to_saveable
from blemore.cli import cli
from blemore.hub import HubError, model_card, parse_hf, push_model, resolve_model
from blemore.labels import EMOTIONS
from blemore.synth.features import generate_feature_corpus
from blemore.weights import WeightsError, load_state, save_state

hf_constants = pytest.importorskip("huggingface_hub.constants")
FAST = ["--preset", "fast", "--epochs", "2", "--batch-size", "128", "--lr", "0.01", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    c = generate_feature_corpus(root / "corpus", n_train_actors=10, n_test_actors=2, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=4, frames=(4, 6), signal=2.5, seed=2)
    r = CliRunner().invoke(cli, ["train", "--metadata", str(c.train_metadata), "--features", str(c.sources["audio"]),
                                 "--head", "linear", "--out", str(root / "model"), *FAST], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root / "model", c.sources["audio"]


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)


def test_weights_round_trip_and_refusals(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "scaler": {"mean": np.array([1.5, 2.0])},
             "n": 3, "name": "x", "flags": [True, None, 0.25], "pair": (np.int64(4), np.zeros(0))}
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert isinstance(back["w"], torch.Tensor) and torch.equal(back["w"], state["w"])
    np.testing.assert_array_equal(back["scaler"]["mean"], state["scaler"]["mean"])
    assert back["n"] == 3 and back["name"] == "x" and back["flags"] == [True, None, 0.25] and back["pair"][0] == 4
    with pytest.raises(WeightsError, match=r"(?s)bad: .*o: object arrays.*key 1 is not a string"):
        save_state(tmp_path / "b.safetensors", {"bad": object(), "o": np.array([None]), 1: 2})
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="junk.safetensors"):
        load_state(tmp_path / "junk.safetensors")


def test_bundle_is_safetensors_and_tampering_is_refused(trained, tmp_path):
    model_dir, feats = trained
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == ["bundle.json", "part0.safetensors"]
    m = json.loads((model_dir / "bundle.json").read_text())
    assert m["format_version"] == 2 and set(m["files"]) == {"part0.safetensors"}
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    raw = bytearray((bad / "part0.safetensors").read_bytes())
    raw[-1] ^= 1
    (bad / "part0.safetensors").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"part0.safetensors: SHA-256 .* \(tampered or corrupted\)"):
        ModelBundle.load(bad)
    m2 = dict(m, files={})
    (bad / "bundle.json").write_text(json.dumps(m2))
    with pytest.raises(BundleError, match="no SHA-256 recorded"):
        ModelBundle.load(bad)


def test_format_1_torch_bundles_still_load(trained, tmp_path):
    model_dir, feats = trained
    model = ModelBundle.load(model_dir)
    old = tmp_path / "old"
    old.mkdir()
    m = json.loads((model_dir / "bundle.json").read_text())
    for i, (p, pm) in enumerate(zip(model.parts, m["parts"])):
        torch.save({"head": _to_saveable(p.head.state_dict()), "transforms": _to_saveable(p.chain.state_dict())},
                   old / f"part{i}.pt")
        pm["file"] = f"part{i}.pt"
    m["format_version"] = 1
    m.pop("files")
    (old / "bundle.json").write_text(json.dumps(m))
    a, b = model.predict(feats), ModelBundle.load(old).predict(feats)
    np.testing.assert_array_equal(a.proba, b.proba)


def test_push_load_round_trip_offline_and_tampered(trained, tmp_path, online, monkeypatch):
    model_dir, feats = trained
    cache = tmp_path / "cache"
    local = ModelBundle.load(model_dir).predict(feats)
    with FakeHub(lifetime=60) as hub:
        url = push_model(model_dir, "me/blemore-audio", endpoint=hub.url, token="t")
        assert url.startswith(hub.url) and "/commit/" in url
        files = hub.files("me/blemore-audio")
        assert sorted(files) == ["README.md", "bundle.json", "part0.safetensors"]
        card = files["README.md"].decode()
        for part in ("## Training data", "## Protocol", "## Validation scores", "## Extractors and their weights",
                     "## Intended use and limits", "library_name: blemore"):
            assert part in card
        assert card == model_card(model_dir, "me/blemore-audio")
        loaded = resolve_model("hf://me/blemore-audio", endpoint=hub.url, cache_dir=cache)
        np.testing.assert_array_equal(loaded.predict(feats).proba, local.proba)
        frame = blemore.load_model("hf://me/blemore-audio", endpoint=hub.url, cache_dir=cache).predict(str(feats))
        assert list(frame["clip"]) == local.clip_ids
        np.testing.assert_allclose(frame[[f"p_{e}" for e in EMOTIONS]].to_numpy(), local.proba, atol=1e-4)
        # a branch: push to it, load it by revision
        push_model(model_dir, "me/blemore-audio", revision="v2", endpoint=hub.url, token="t")
        assert "v2" in hub.repos["me/blemore-audio"]["branches"]
        assert isinstance(resolve_model("hf://me/blemore-audio@v2", endpoint=hub.url, cache_dir=cache), ModelBundle)
        with pytest.raises(HubError, match="not found"):
            resolve_model("hf://me/nothing", endpoint=hub.url, cache_dir=cache)
        # tampered weights on the server: refused on load, naming the file
        repo = hub.repos["me/blemore-audio"]
        sha = repo["branches"]["main"]
        w = bytearray(repo["commits"][sha]["part0.safetensors"])
        w[-2] ^= 1
        repo["commits"]["f" * 40] = dict(repo["commits"][sha], **{"part0.safetensors": bytes(w)})
        repo["branches"]["evil"] = "f" * 40
        with pytest.raises(BundleError, match="part0.safetensors.*tampered"):
            resolve_model("hf://me/blemore-audio@evil", endpoint=hub.url, cache_dir=cache)
        n_requests = len(hub.requests)
    # offline: the cached model loads without the server, an uncached one fails clearly
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    again = resolve_model("hf://me/blemore-audio", endpoint=hub.url, cache_dir=cache)
    np.testing.assert_array_equal(again.predict(feats).proba, local.proba)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set and it is not in the local cache"):
        resolve_model("hf://me/other", endpoint=hub.url, cache_dir=cache)
    assert len(hub.requests) == n_requests


def test_cli_push_model_and_predict_hf(trained, tmp_path, online, monkeypatch):
    model_dir, feats = trained
    with FakeHub(lifetime=60) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        r = CliRunner().invoke(cli, ["push-model", str(model_dir), "me/m", "--token", "t", "--private"],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "Pushed" in r.stdout and hub.repos["me/m"]["private"] is True
        r = CliRunner().invoke(cli, ["predict", "hf://me/m", str(feats), "--json"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        local = ModelBundle.load(model_dir).predict(feats).submission()
        assert json.loads(r.stdout) == local
        r = CliRunner().invoke(cli, ["push-model", str(model_dir), "not-a-repo-id"])
        assert r.exit_code == 2 and "owner/name" in r.stderr


def test_parse_hf():
    assert parse_hf("hf://a/b") == ("a/b", None) and parse_hf("hf://a/b@v1.0") == ("a/b", "v1.0")
    for bad in ("hf://a", "hf://a/b/c", "hf:///b", "a/b"):
        with pytest.raises(HubError, match="hf://owner/repo"):
            parse_hf(bad)
