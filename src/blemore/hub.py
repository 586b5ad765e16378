"""Model bundles on the Hugging Face Hub, and one resolver for every way to name a model.

- :func:`push_model` uploads a bundle folder (``bundle.json``, ``part*.safetensors``) with a
  generated model card (``README.md``: training data, protocol, validation scores, extractors
  and their weights, intended use and limits) to ``REPO_ID`` (optionally a branch ``revision``).
- :func:`download_model` fetches ``hf://owner/repo[@revision]`` with ``huggingface_hub``'s
  ``snapshot_download``: its cache (``HF_HOME`` / ``HF_HUB_CACHE``), revisions and offline mode
  (``HF_HUB_OFFLINE=1``: a cached model loads, an uncached one fails with a clear message) are
  honoured; ``HF_ENDPOINT`` or ``endpoint=`` chooses the server. Only ``bundle.json``,
  ``*.safetensors`` and ``README.md`` are downloaded: no code and no pickles.
- :func:`resolve_model` turns a model name into a model: ``face-zero-shot`` (the built-in
  uncalibrated face model, :mod:`blemore.zeroshot`), ``hf://...``, or a bundle folder. Bundles
  are checked on load (format version, label order, SHA-256 of every weights file;
  :meth:`blemore.bundle.ModelBundle.load`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from blemore import __version__
from blemore.bundle import ModelBundle
from blemore.errors import BlemoreError
from blemore.extractors.base import get_extractor_class
from blemore.zeroshot import NAME, FaceZeroShot

__all__ = ["HubError", "HF_PREFIX", "parse_hf", "is_model_spec", "download_model", "resolve_model", "push_model",
           "model_card", "BUNDLE_PATTERNS"]

HF_PREFIX = "hf://"
BUNDLE_PATTERNS = ["bundle.json", "*.safetensors", "README.md"]


class HubError(BlemoreError, RuntimeError):
    """A model that cannot be pushed to or fetched from the Hub (names the repository)."""


def parse_hf(spec: str) -> tuple[str, str | None]:
    """``hf://owner/repo[@revision]`` -> ``("owner/repo", revision or None)``."""
    if not spec.startswith(HF_PREFIX):
        raise HubError(f"{spec!r}: a Hub model is written hf://owner/repo[@revision]")
    rest = spec[len(HF_PREFIX):]
    repo, _, rev = rest.partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo):
        raise HubError(f"{spec!r}: a Hub model is written hf://owner/repo[@revision]")
    return repo, (rev or None)


def is_model_spec(text: str) -> bool:
    """True for ``face-zero-shot``, ``hf://...`` and folders holding a ``bundle.json``."""
    return text == NAME or text.startswith(HF_PREFIX) or (Path(text) / "bundle.json").is_file()


def download_model(spec: str, *, cache_dir: str | os.PathLike | None = None, token: str | None = None,
                   endpoint: str | None = None) -> Path:
    """The local folder of ``hf://owner/repo[@revision]`` (downloaded or from the cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = parse_hf(spec)
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None  # read now, not when huggingface_hub was imported
    cache_dir = cache_dir or os.environ.get("HF_HUB_CACHE") or None
    try:
        path = snapshot_download(repo_id, revision=revision, repo_type="model", allow_patterns=BUNDLE_PATTERNS,
                                 cache_dir=cache_dir, token=token, endpoint=endpoint)
    except LocalEntryNotFoundError as e:
        from huggingface_hub import constants

        offline = constants.is_offline_mode()
        why = ("HF_HUB_OFFLINE is set and it is not in the local cache" if offline else
               "it is not in the local cache and the Hub cannot be reached")
        raise HubError(f"{spec}: cannot load the model: {why} ({e.__class__.__name__})") from None
    except RevisionNotFoundError:
        raise HubError(f"{spec}: revision {revision!r} not found in {repo_id}") from None
    except RepositoryNotFoundError:
        raise HubError(f"{spec}: repository {repo_id} not found (or private: pass a token / HF_TOKEN)") from None
    except (EntryNotFoundError, HfHubHTTPError) as e:
        raise HubError(f"{spec}: download failed: {e}") from None
    root = Path(path)
    if not (root / "bundle.json").is_file():
        raise HubError(f"{spec}: the repository holds no bundle.json (not a blemore model)")
    return root


def resolve_model(spec: str | os.PathLike, **hub_kwargs: Any):
    """A model from its name: ``face-zero-shot``, ``hf://owner/repo[@revision]`` or a bundle
    folder. Returns a :class:`~blemore.zeroshot.FaceZeroShot` or a
    :class:`~blemore.bundle.ModelBundle`."""
    s = str(spec)
    if s == NAME:
        return FaceZeroShot()
    if s.startswith(HF_PREFIX):
        return ModelBundle.load(download_model(s, **hub_kwargs))
    p = Path(s)
    if not p.exists():
        raise HubError(f"{s}: no such model (expected a bundle folder, hf://owner/repo[@revision] or {NAME})")
    return ModelBundle.load(p)


# ----------------------------------------------------------------------------- model card
def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _weights_of(config: dict) -> str:
    """The pretrained weights an extractor config used: its ``weights`` setting, else the
    extractor's default (``-`` when it has none or is unknown here)."""
    w = (config.get("settings") or {}).get("weights")
    if w:
        return str(w)
    try:
        return str(get_extractor_class(config["extractor"]).default_weights or "(ships with its package)")
    except (KeyError, BlemoreError):  # no extractor name, or one not registered here
        return "-"


def _transductive_lines(m: Mapping[str, Any]) -> list[str]:
    """The model card's line on transductive decoding (``--adapt``, per-actor thresholds), if any."""
    what = []
    if (m.get("adapt") or {}).get("mode", "none") != "none":
        what.append(f"`--adapt {m['adapt']['mode']}` (the clips predicted together are aligned to saved training statistics)")
    th = (m.get("decoder") or {}).get("thresholds") or {}
    if th.get("mode", "global") != "global":
        what.append(f"`--thresholds {th['mode']}` (alpha/beta per group of clips, shrink {th.get('shrink')}; "
                    "`blemore predict --groups FILE`, otherwise the clips predicted together are "
                    + ("split into identity groups by clustering)" if "identity_dims" in th else "one group)"))
    return [f"- decoding is transductive: {'; '.join(what)}"] if what else []


def model_card(model_dir: str | os.PathLike, repo_id: str | None = None) -> str:
    """The README.md (model card) of a bundle folder, from its ``bundle.json``."""
    m = json.loads((Path(model_dir) / "bundle.json").read_text())
    info = m.get("info") or {}
    cv = info.get("cv") or {}
    name = repo_id or Path(model_dir).name
    lines = ["---", "library_name: blemore", "tags:", "- emotion-recognition", "- blended-emotions", "- blemore",
             "---", "", f"# {name}", "",
             f"A blemore model bundle (format {m.get('format')} v{m.get('format_version')}): "
             f"head `{m['head']['name']}`, features {', '.join(s['name'] for s in m.get('sources', []))}, "
             f"fusion `{m.get('fusion', {}).get('kind')}`.", "",
             "## Training data", "",
             f"- metadata: `{info.get('train_metadata', 'unknown')}`",
             f"- training clips: {info.get('train_clips', 'unknown')}",
             f"- run: {info.get('run', '-')}, created {info.get('created', '-')}", "",
             "## Protocol", "",
             f"- pooling: {json.dumps(m.get('pooling'))}",
             f"- transforms per part: {json.dumps([p.get('transforms') for p in m.get('parts', [])])}",
             f"- epochs: {m.get('epochs')}; training settings: {json.dumps(m.get('train_spec'))}",
             f"- decoder parameters: {json.dumps((m.get('decoder') or {}).get('params'))}",
             *_transductive_lines(m),
             f"- selection: {json.dumps(info.get('selection'), default=str)}", "",
             "## Validation scores", ""]
    if cv:
        lines += [f"Out-of-fold ({cv.get('selection', 'cross-validation')}): presence {_fmt(cv.get('acc_presence'))}, "
                  f"salience {_fmt(cv.get('acc_salience'))}. These are optimistic: the epoch and thresholds were "
                  "chosen on the same outputs.", "", "| fold | presence | salience |", "|---|---|---|"]
        lines += [f"| {f.get('fold')} | {_fmt(f.get('acc_presence'))} | {_fmt(f.get('acc_salience'))} |"
                  for f in cv.get("folds", [])]
    else:
        lines.append("No cross-validation scores were recorded with this bundle.")
    lines += ["", "## Extractors and their weights", "", "| source | dim | extractor | weights | settings |",
              "|---|---|---|---|---|"]
    for s in m.get("sources", []):
        c = s.get("config") or {}
        c = c if isinstance(c, dict) else {}
        lines.append(f"| {s['name']} | {s.get('dim')} | {c.get('extractor', '(plain feature folder)')} | "
                     f"{_weights_of(c)} | {json.dumps(c.get('settings') or {})} |")
    files = m.get("files") or {}
    lines += ["", "Weights files (SHA-256, checked on load): "
              + ", ".join(f"`{k}` {v.get('sha256', '')[:16]}..." for k, v in files.items()), "",
              "## Intended use and limits", "",
              "- Research on blended emotion recognition with relative salience (BLEMORE protocol): "
              "predicting which of ang, disg, fea, hap, sad, neu are present in an acted clip and, for "
              "blends of two, their salience (50/50, 70/30, 30/70).",
              "- Trained on acted, studio-recorded clips of professional actors; not validated on spontaneous "
              "expressions, other cultures, recording conditions or languages. Not for decisions about people "
              "(hiring, health, security, policing).",
              "- Scores above are cross-validated on the training actors; the hidden test set is scored on CodaBench.",
              "", "## Use", "", "```", f"blemore predict hf://{name} clip.mov -o predictions.json", "```", "",
              "```python", "from blemore.hub import resolve_model", f'model = resolve_model("hf://{name}")', "```", "",
              f"Written by blemore {__version__} (`blemore push-model`). The bundle loads without executing code "
              "(safetensors + JSON).", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- push
def push_model(model_dir: str | os.PathLike, repo_id: str, *, revision: str | None = None, private: bool = False,
               token: str | None = None, endpoint: str | None = None, commit_message: str | None = None) -> str:
    """Upload a bundle folder (checked by loading it first) and its model card; returns the
    commit URL. Only ``bundle.json``, the weights files it names and ``README.md`` are sent."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    root = Path(model_dir)
    ModelBundle.load(root)  # refuses broken or tampered bundles before anything is sent
    m = json.loads((root / "bundle.json").read_text())
    files = [p["file"] for p in m.get("parts", [])]
    old = [f for f in files if not f.endswith(".safetensors")]
    if old:
        raise HubError(f"{root}: weights {old} are in the old torch format; load and save the bundle with this "
                       "blemore (ModelBundle.load(d).save(d)) to convert them to safetensors before pushing")
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise HubError(f"{repo_id!r}: a repository id is written owner/name")
    card = model_card(root, repo_id).encode()
    ops = [CommitOperationAdd(path_in_repo="bundle.json", path_or_fileobj=str(root / "bundle.json"))]
    ops += [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(root / f)) for f in files]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.create_commit(repo_id, operations=ops, revision=revision, repo_type="model",
                                 commit_message=commit_message or f"blemore push-model ({__version__})")
    except HfHubHTTPError as e:
        raise HubError(f"pushing {root} to {repo_id} failed: {e}") from None
    return str(info.commit_url)
