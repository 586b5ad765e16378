"""Time the experiment engine against the straightforward loop, with identical training math.

One feature set like WavLM's (2,456 training clips, 1,024-d frames pooled into 7 x 1,024 =
7,168 statistics), MLP-512, the paper preset (Adam, lr 5e-6, weight decay 1e-3, batch 32,
200 epochs), the paper's per-fold selection of the best epoch and (alpha, beta):

* **engine**: blemore's runner (``Experiment.train_job`` + ``Experiment.select``): the training
  matrix stays one tensor, batches are index slices, Adam's fused kernel, one forward pass per
  epoch for the validation fold, and the vectorised 20 x 20 threshold search per epoch.
* **straightforward**: the loop as the paper's protocol implies it: a ``Dataset`` returning one
  clip at a time, a new ``DataLoader`` every epoch, ``torch.optim.Adam`` with its defaults, the
  validation fold through a ``DataLoader``, and per epoch a threshold search that builds a
  ``{clip: [{"emotion", "salience"}]}`` dictionary for each of the 400 (alpha, beta) pairs and
  scores it clip by clip.

Both start from the same initial weights and see the same batches in the same order (a sampler
replays the engine's permutations), so the trained weights agree to float rounding; the
benchmark prints the largest difference of the validation probabilities and whether both loops
chose the same epoch and thresholds.

Then the ``fast`` preset: seconds per fold and accuracy under nested selection (its default
use), and under the paper's selection on the same folds for a like-for-like comparison with the
paper preset.

Usage::

    python benchmarks/bench_engine.py                       # full: 5 folds x 200 epochs (long)
    python benchmarks/bench_engine.py --folds 1 --epochs 20 # reduced; figures extrapolate linearly in epochs

The CPU may be shared with other work: wall times then depend on the load at each moment, so
the benchmark also reports the CPU time of this process (``time.process_time``), which other
processes barely change when the loops run on one thread (``--threads 1``); quote the CPU-time
ratio when the machine is busy.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from blemore.config import ExperimentConfig
from blemore.dataset import load_metadata
from blemore.decode import PAPER_GRID
from blemore.experiment import Experiment, set_threads
from blemore.features import load_features
from blemore.labels import EMOTIONS, TARGET_SOFT, TARGETS
from blemore.pooling import Pooling
from blemore.synth.features import generate_feature_corpus


# ----------------------------------------------------------------------------- the straightforward loop
class ClipDataset(torch.utils.data.Dataset):
    """One standardised clip vector and its soft target per item."""

    def __init__(self, X: np.ndarray, Y: np.ndarray):
        self.X, self.Y = X, Y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i):
        return torch.tensor(self.X[i]), torch.tensor(self.Y[i])


class ReplaySampler(torch.utils.data.Sampler):
    """Yields ``torch.randperm(n, generator)``: the engine's batch order, epoch by epoch."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.g = n, generator

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.g).tolist())

    def __len__(self) -> int:
        return self.n


def probs_to_dict(probs: np.ndarray, clip_ids: list[str], alpha: float, beta: float) -> dict:
    """The paper's decoding rule, clip by clip, into the challenge dictionary."""
    out = {}
    for cid, p in zip(clip_ids, probs):
        order = sorted(range(6), key=lambda i: -p[i])[:2]
        i1, i2 = order
        keep = [i for i in (i1, i2) if p[i] >= alpha] or [i1]
        if len(keep) == 2 and EMOTIONS[5] in (EMOTIONS[i1], EMOTIONS[i2]):
            keep = [i2] if (EMOTIONS[i1] == "neu" and p[i1] == p[i2]) else [i1]
        if len(keep) == 1:
            out[cid] = [{"emotion": EMOTIONS[keep[0]], "salience": 100.0}]
        elif abs(p[i1] - p[i2]) <= beta:
            out[cid] = [{"emotion": EMOTIONS[i1], "salience": 50.0}, {"emotion": EMOTIONS[i2], "salience": 50.0}]
        else:
            out[cid] = [{"emotion": EMOTIONS[i1], "salience": 70.0}, {"emotion": EMOTIONS[i2], "salience": 30.0}]
    return out


def dict_scores(pred: dict, truth: dict) -> tuple[float, float]:
    """ACC_presence and ACC_salience from dictionaries, clip by clip."""
    pres, sal, nb = 0, 0, 0
    for cid, lab in truth.items():
        entries = pred[cid]
        emos = {d["emotion"] for d in entries}
        pres += emos == set(lab.emotions)
        if lab.is_blend:
            nb += 1
            want = {e: s for e, s in zip(lab.emotions, lab.saliences)}
            got = {d["emotion"]: int(round(d["salience"])) for d in entries}
            sal += len(entries) == 2 and got == want
    return pres / len(truth), (sal / nb if nb else 0.0)


def dict_grid_search(probs: np.ndarray, clip_ids: list[str], truth: dict) -> tuple[float, float, float, float, float]:
    best = None
    for a in PAPER_GRID:
        for b in PAPER_GRID:
            p, s = dict_scores(probs_to_dict(probs, clip_ids, a, b), truth)
            score = 0.5 * p + 0.5 * s
            if best is None or score > best[0]:
                best = (score, float(a), float(b), p, s)
    return best


def straightforward_fold(exp: Experiment, k: int, spec, seed: int, init_state: dict):
    """Train + per-epoch validation + per-epoch dict-based threshold search."""
    from sklearn.preprocessing import StandardScaler

    from blemore.heads import create_head

    tr, va = exp.positions_without(frozenset({k})), exp.fold_positions(k)
    X, _ = exp.features.rows(exp.groups[0], tr)
    Xv, _ = exp.features.rows(exp.groups[0], va)
    sc = StandardScaler().fit(X)
    X, Xv = np.nan_to_num(sc.transform(X)).astype(np.float32), np.nan_to_num(sc.transform(Xv)).astype(np.float32)
    Y, Yv = TARGET_SOFT[exp.target[tr]].astype(np.float32), TARGET_SOFT[exp.target[va]].astype(np.float32)
    ids = exp.clip_ids[va].tolist()
    truth = {c: TARGETS[t] for c, t in zip(ids, exp.target[va])}
    model = create_head(exp.cfg.head).build_module(X.shape[1])
    model.load_state_dict(init_state)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    gen = torch.Generator().manual_seed(seed + 1)
    t_train = t_search = c_train = c_search = 0.0
    records, val_probs = [], []
    for epoch in range(1, spec.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        loader = torch.utils.data.DataLoader(ClipDataset(X, Y), batch_size=spec.batch_size,
                                             sampler=ReplaySampler(len(X), gen))
        model.train()
        for xb, yb in loader:
            loss = torch.nn.functional.kl_div(torch.log_softmax(model(xb), 1), yb, reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        probs = []
        with torch.no_grad():
            for xb, _ in torch.utils.data.DataLoader(ClipDataset(Xv, Yv), batch_size=spec.batch_size):
                probs.append(torch.softmax(model(xb), 1))
        probs = torch.cat(probs).numpy()
        val_probs.append(probs)
        t1, c1 = time.perf_counter(), time.process_time()
        records.append((epoch, *dict_grid_search(probs, ids, truth)))
        t_search += time.perf_counter() - t1
        c_search += time.process_time() - c1
        t_train += t1 - t0
        c_train += c1 - c0
    best = max(records, key=lambda r: r[1])  # first best epoch
    return {"train_s": t_train, "search_s": t_search, "train_cpu": c_train, "search_cpu": c_search,
            "epoch": best[0], "alpha": best[2], "beta": best[3],
            "acc_presence": best[4], "acc_salience": best[5], "val_probs": np.stack(val_probs)}


def engine_fold(exp: Experiment, k: int):
    t0, c0 = time.perf_counter(), time.process_time()
    job = exp.train_job(frozenset({k}), {f"fold{k}": exp.fold_positions(k)})
    t1, c1 = time.perf_counter(), time.process_time()
    sel = exp.select(job.outputs(f"fold{k}"), exp.target[exp.fold_positions(k)], job.epochs)
    t2, c2 = time.perf_counter(), time.process_time()
    return job, sel, (t1 - t0, t2 - t1), (c1 - c0, c2 - c1)


def initial_state(exp: Experiment, k: int, in_dim: int) -> tuple[dict, int]:
    """The engine's initial weights for fold k (same seed derivation as the runner)."""
    from blemore.experiment import _seed_for
    from blemore.heads import create_head

    seed = _seed_for(exp.cfg.seed, frozenset({k}), 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = create_head(exp.cfg.head).build_module(in_dim)
    return {n: v.clone() for n, v in m.state_dict().items()}, seed


# ----------------------------------------------------------------------------- main
def _summary(args, rows: list[dict], folds: list[int]) -> None:
    scale = 200 / args.epochs
    eng = np.mean([r["engine_s"] for r in rows])
    eng_cpu = np.mean([r["engine_cpu"] for r in rows])
    summary = [f"engine: {eng:.1f} s per fold ({eng_cpu:.1f} CPU s) at {args.epochs} epochs "
               f"(x{scale:g} -> {eng * scale:.0f} s at 200 epochs)"]
    if not args.skip_straightforward:
        st = np.mean([r["straight_s"] for r in rows])
        st_cpu = np.mean([r["straight_cpu"] for r in rows])
        srch = np.mean([r["straight_search_s"] for r in rows])
        summary.append(f"straightforward: {st:.1f} s per fold ({st_cpu:.1f} CPU s; {srch:.1f} s of it in threshold "
                       f"searches) -> {st * scale:.0f} s at 200 epochs")
        summary.append(f"ratio: {st / eng:.2f}x wall, {st_cpu / eng_cpu:.2f}x CPU time")
    pres = [r["acc_presence"] for r in rows]
    sal = [r["acc_salience"] for r in rows]
    summary.append(f"paper preset, paper selection: presence {np.mean(pres):.3f} ± {np.std(pres):.3f}, "
                   f"salience {np.mean(sal):.3f} ± {np.std(sal):.3f} over folds {folds}")
    print("\n" + "\n".join(summary), flush=True)


def _paper_rows(args, exp, fs, folds) -> list[dict]:
    rows = []
    # warm-up (first use of the kernels, allocator) so that neither loop pays it in the timings
    from dataclasses import replace

    exp.train_job(frozenset({folds[0]}), {}, spec=replace(exp.spec, epochs=1))
    for k in folds:
        in_dim = fs.dim("wavlm")
        init, seed = initial_state(exp, k, in_dim)
        job, sel, (e_train, e_sel), (ce_train, ce_sel) = engine_fold(exp, k)
        row = {"fold": k, "engine_train_s": e_train, "engine_select_s": e_sel, "engine_s": e_train + e_sel,
               "engine_cpu": ce_train + ce_sel, "epoch": sel.epoch, "alpha": sel.params["alpha"],
               "beta": sel.params["beta"], "acc_presence": sel.acc_presence, "acc_salience": sel.acc_salience}
        eng_txt = f"{row['engine_s']:7.1f} ({e_train:.1f} + {e_sel:.2f}) [{row['engine_cpu']:.1f}]"
        if not args.skip_straightforward:
            ref = straightforward_fold(exp, k, exp.spec, seed, init)
            dp = float(np.abs(ref["val_probs"] - job.outputs(f"fold{k}")[0]).max())
            same = (ref["epoch"], round(ref["alpha"], 6), round(ref["beta"], 6)) == \
                   (sel.epoch, round(sel.params["alpha"], 6), round(sel.params["beta"], 6))
            st_cpu = ref["train_cpu"] + ref["search_cpu"]
            row.update(straight_train_s=ref["train_s"], straight_search_s=ref["search_s"],
                       straight_s=ref["train_s"] + ref["search_s"], straight_cpu=st_cpu,
                       straight_search_cpu=ref["search_cpu"],
                       ratio=(ref["train_s"] + ref["search_s"]) / row["engine_s"], ratio_cpu=st_cpu / row["engine_cpu"],
                       max_prob_diff=dp, same_choice=same, straight_acc=(ref["acc_presence"], ref["acc_salience"]))
            print(f"{k:>4}  {eng_txt:32s}  {row['straight_s']:7.1f} ({ref['train_s']:.1f} + {ref['search_s']:.1f}) "
                  f"[{st_cpu:.1f}]     {row['ratio']:5.2f} [{row['ratio_cpu']:5.2f}]   {dp:.1e}  {same}", flush=True)
        else:
            print(f"{k:>4}  {eng_txt}", flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="reuse a corpus made by `blemore synth features` (needs a 'wavlm' source)")
    ap.add_argument("--clips", type=int, default=2456)
    ap.add_argument("--dim", type=int, default=1024, help="per-frame dimension (pooled: 7 x dim)")
    ap.add_argument("--folds", type=int, default=5, help="how many of the 5 folds to time (paper preset)")
    ap.add_argument("--epochs", type=int, default=200, help="paper-preset epochs (200 in the paper)")
    ap.add_argument("--skip-straightforward", action="store_true")
    ap.add_argument("--paper-nested", action="store_true",
                    help="also run the paper preset under nested selection (15 trainings: long)")
    ap.add_argument("--fast-folds", type=int, default=5, help="folds for the fast preset (nested); 0 skips it")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    print(f"torch {torch.__version__}, {threads} thread(s), {os.cpu_count()} CPU(s); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    tmp = None
    if args.data:
        root = Path(args.data)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-engine-")
        root = Path(tmp.name)
        t = time.perf_counter()
        actors = min(43, args.clips // 54)  # BLEMORE: 43 actors, about 57 clips each
        generate_feature_corpus(root, n_train_actors=actors, n_train_clips=args.clips, n_test_actors=0,
                                sources=("wavlm",), dim=args.dim)
        print(f"generated {args.clips} clips x {args.dim} dims in {time.perf_counter() - t:.1f} s", flush=True)
    table = load_metadata(root / "train_metadata.csv")
    t = time.perf_counter()
    fs = load_features([root / "wavlm"], table["clip_id"].tolist(), Pooling())
    print(f"pooled into {fs.dim('wavlm')} statistics per clip in {time.perf_counter() - t:.1f} s", flush=True)
    out: dict = {"threads": threads, "clips": len(fs), "pooled_dim": fs.dim("wavlm"), "epochs": args.epochs}

    cfg = ExperimentConfig(metadata=str(root / "train_metadata.csv"), head="mlp-512", preset="paper",
                           selection="paper", train={"epochs": args.epochs}, plots=False, threads=threads)
    exp = Experiment(cfg, table=table, features=fs, progress=False)
    folds = exp.folds[: args.folds]
    rows: list[dict] = []
    if folds:
        print(f"\npaper preset, MLP-512, {args.epochs} epochs, per fold: wall seconds [CPU seconds of this process]",
              flush=True)
        print("fold  engine (train + select)         straightforward (train + search)      ratio wall [CPU]  "
              "max|dp|  same choice", flush=True)
        rows = _paper_rows(args, exp, fs, folds)
        _summary(args, rows, folds)
    out["paper_preset"] = rows
    if args.paper_nested:
        pexp = Experiment(cfg.replace(selection="nested"), table=table, features=fs, progress=False)
        t, c = time.perf_counter(), time.process_time()
        cv = pexp.cross_validate()
        el, cel = time.perf_counter() - t, time.process_time() - c
        p = [f["score"]["acc_presence"] for f in cv["folds"]]
        s = [f["score"]["acc_salience"] for f in cv["folds"]]
        out["paper_preset_nested"] = {"seconds_per_fold": el / len(cv["folds"]), "cpu_per_fold": cel / len(cv["folds"]),
                                      "acc_presence": p, "acc_salience": s,
                                      "epochs": [f["selection"].epoch for f in cv["folds"]]}
        print(f"paper preset, nested selection ({args.epochs} epochs): {el / len(cv['folds']):.1f} s per fold "
              f"[{cel / len(cv['folds']):.1f} CPU s]; presence {np.mean(p):.3f} ± {np.std(p):.3f}, "
              f"salience {np.mean(s):.3f} ± {np.std(s):.3f}", flush=True)

    if args.fast_folds:
        fast_rows = {}
        for selection in ("paper", "nested"):
            fcfg = cfg.replace(preset="fast", selection=selection, train={})
            fexp = Experiment(fcfg, table=table, features=fs, progress=False)
            t, c = time.perf_counter(), time.process_time()
            cv = fexp.cross_validate()
            el, cel = time.perf_counter() - t, time.process_time() - c
            fl = [f for f in cv["folds"] if f["fold"] in exp.folds[: args.fast_folds]]
            p = [f["score"]["acc_presence"] for f in fl]
            s = [f["score"]["acc_salience"] for f in fl]
            fast_rows[selection] = {"seconds_per_fold": el / len(cv["folds"]), "cpu_per_fold": cel / len(cv["folds"]),
                                    "trainings": len(fexp.jobs),
                                    "acc_presence": p, "acc_salience": s,
                                    "epochs": [f["selection"].epoch for f in fl]}
            print(f"fast preset, {selection} selection: {el / len(cv['folds']):.1f} s per fold "
                  f"[{cel / len(cv['folds']):.1f} CPU s] "
                  f"({len(fexp.jobs)} trainings for {len(cv['folds'])} folds); presence {np.mean(p):.3f} ± {np.std(p):.3f}, "
                  f"salience {np.mean(s):.3f} ± {np.std(s):.3f} (folds {[f['fold'] for f in fl]})", flush=True)
        out["fast_preset"] = fast_rows
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
