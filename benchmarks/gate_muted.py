"""Which source a saved top-N gated model (``--fusion gated``) selects on clips of a temporal
synthetic corpus, split by the metadata's ``muted`` column (the source that carries no event in
that clip; :mod:`blemore.synth.temporal`). Prints, for clips with no muted source, with video
muted and with audio muted, the share of clips in which each source was selected (gate > 0), and
the share of muted clips in which the muted source was selected (lower is better).

    blemore benchmark ... --fusion gated --gate-top 1 --model-dir MODEL  # on a temporal corpus
    PYTHONPATH=src python3 benchmarks/gate_muted.py MODEL CORPUS [--split test|train]

``--split test`` (default) reads ``CORPUS/test_metadata.csv``: clips of actors the model never
saw. The features are read from ``CORPUS/<source>`` for each of the model's sources.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from blemore.bundle import ModelBundle
from blemore.features import load_features
from blemore.store import open_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("corpus")
    ap.add_argument("--split", choices=["test", "train"], default="test")
    a = ap.parse_args()
    model = ModelBundle.load(a.model)
    part = model.parts[0]
    if not hasattr(part.head, "gates"):
        raise SystemExit(f"{a.model}: not a gated model (trained with --fusion {model.fusion.as_dict()['kind']})")
    meta = pd.read_csv(Path(a.corpus) / f"{a.split}_metadata.csv", dtype=str, keep_default_na=False)
    if "muted" not in meta.columns:
        raise SystemExit(f"{a.corpus}: the metadata has no muted column (not a temporal synthetic corpus?)")
    names = list(model.source_names)
    fs = load_features([open_source(Path(a.corpus) / n) for n in names], meta["filename"].tolist(),
                       model.pooling, missing="impute")
    fs.blocks = dict(zip(names, fs.blocks.values()))
    fs.owners = dict(zip(names, fs.owners.values()))
    X, _ = fs.rows(part.sources, np.arange(len(fs)))
    X = part.chain.transform(X, clip_ids=list(fs.clip_ids), groups=None)
    gates = part.head.gates(X)
    muted = meta.set_index("filename").loc[list(fs.clip_ids), "muted"].to_numpy()
    print(f"{a.model}: {len(muted)} {a.split} clips, top={part.head.top} of sources {names}")
    for k in [""] + names:
        m = muted == k
        if not m.any():
            continue
        shares = ", ".join(f"{s} {np.mean(gates[m, i] > 0):.3f}" for i, s in enumerate(names))
        extra = f"; muted source selected in {np.mean(gates[m, names.index(k)] > 0):.3f}" if k else ""
        print(f"  muted {k or 'none':>6}: {m.sum():4d} clips, selected: {shares}{extra}")
    m = muted != ""
    hit = np.mean([gates[i, names.index(muted[i])] > 0 for i in np.flatnonzero(m)]) if m.any() else float("nan")
    print(f"  all {m.sum()} muted clips: the muted source selected in {hit:.3f}")


if __name__ == "__main__":
    main()
