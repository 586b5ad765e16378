"""Time the (alpha, beta) calibration on the paper's 20 x 20 grid.

Measures, on one thread, the median wall time of :func:`blemore.decode.calibrate` on 490
clips (one validation fold) and on 4,900 clips, and, in the same run, a straightforward
reference written the way the public code works (for every grid pair: decode each clip into
the challenge dict, then score through per-clip dictionaries, re-deriving each clip's label
from its file name) on 490 clips. Prints both timings, their ratio, and checks that both
choose the same (alpha, beta) with the same scores.

    python benchmarks/bench_calibration.py [--repeats 30] [--reference-repeats 3]
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy is imported

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from blemore.decode import PAPER_GRID, calibrate  # noqa: E402
from blemore.labels import EMOTIONS, TARGETS, encode_labels, format_clip_id  # noqa: E402


# -- the reference: per pair, per clip, through dictionaries -------------------------------
def _label_from_name(name: str) -> list[dict]:
    """The label of a training file name as a challenge-style list of dicts."""
    parts = name.split("_")
    if parts[1] == "mix":
        return [{"emotion": parts[2], "salience": float(parts[4])},
                {"emotion": parts[3], "salience": float(parts[5])}]
    return [{"emotion": parts[1], "salience": 100.0}]


def _decode_clip(p: np.ndarray, alpha: float, beta: float) -> list[dict]:
    order = np.argsort(-p, kind="stable")
    i1, i2 = int(order[0]), int(order[1])
    p1, p2 = float(p[i1]), float(p[i2])
    e1, e2 = EMOTIONS[i1], EMOTIONS[i2]
    if p1 < alpha or p2 < alpha:
        return [{"emotion": e1, "salience": 100.0}]
    if "neu" in (e1, e2):
        keep = e2 if (e1 == "neu" and p1 == p2) else e1
        return [{"emotion": keep, "salience": 100.0}]
    if abs(p1 - p2) <= beta:
        return [{"emotion": e1, "salience": 50.0}, {"emotion": e2, "salience": 50.0}]
    return [{"emotion": e1, "salience": 70.0}, {"emotion": e2, "salience": 30.0}]


def _presence(preds: dict) -> float:
    res = []
    for name, pred in preds.items():
        label = _label_from_name(name)
        res.append({d["emotion"] for d in label} == {d["emotion"] for d in pred})
    return float(np.mean(res))


def _salience(preds: dict) -> float:
    res = []
    for name, pred in preds.items():
        label = _label_from_name(name)
        if len(label) != 2:
            continue
        if len(pred) != 2:
            res.append(False)
            continue
        res.append({d["emotion"]: round(float(d["salience"])) for d in label}
                   == {d["emotion"]: round(float(d["salience"])) for d in pred})
    return float(np.mean(res)) if res else 0.0


def reference_calibrate(names: list[str], probs: np.ndarray, grid: np.ndarray) -> tuple:
    """(best (score, alpha, beta, presence, salience), presence grid, salience grid)."""
    best = None
    pres_grid = np.zeros((len(grid), len(grid)))
    sal_grid = np.zeros((len(grid), len(grid)))
    for a, alpha in enumerate(grid):
        for b, beta in enumerate(grid):
            preds = {n: _decode_clip(p, alpha, beta) for n, p in zip(names, probs)}
            pres, sal = _presence(preds), _salience(preds)
            pres_grid[a, b], sal_grid[a, b] = pres, sal
            score = 0.5 * pres + 0.5 * sal
            if best is None or score > best[0]:
                best = (score, float(alpha), float(beta), pres, sal)
    return best, pres_grid, sal_grid


# -- data -----------------------------------------------------------------------------------
def make_problem(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """n labelled clips (46 % singles, 54 % blends, as in BLEMORE) with noisy probabilities."""
    rng = np.random.default_rng(seed)
    idx = np.where(rng.random(n) < 1390 / 3050, rng.integers(0, 6, n), rng.integers(6, 36, n))
    labels = [TARGETS[i] for i in idx]
    names = [format_clip_id(100 + i % 40, lab, level=1 + i % 4, version=i) for i, lab in enumerate(labels)]
    soft = np.stack([lab.soft() for lab in labels]).astype(np.float64)
    logits = 3.0 * soft + rng.normal(0, 1.5, size=soft.shape)  # scores near the paper's (~0.35 / 0.13)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    _, target = encode_labels(labels)
    return names, probs, target


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--reference-repeats", type=int, default=3)
    args = ap.parse_args()
    grid = PAPER_GRID
    print(f"python {platform.python_version()}, numpy {np.__version__}, one thread, "
          f"grid {len(grid)} x {len(grid)} = {len(grid) ** 2} pairs")

    results = {}
    for n in (490, 4900):
        names, probs, target = make_problem(n)
        t = median_time(lambda probs=probs, target=target: calibrate(probs, target), args.repeats)
        results[n] = (names, probs, target, t)
        print(f"blemore calibrate, {n:>5} clips: {t * 1e3:8.2f} ms  (median of {args.repeats})")

    names, probs, target, t_fast = results[490]
    t_ref = median_time(lambda: reference_calibrate(names, probs, grid), args.reference_repeats)
    print(f"reference (per pair, per clip dicts), 490 clips: {t_ref * 1e3:8.1f} ms  "
          f"(median of {args.reference_repeats})")
    print(f"speed-up on 490 clips: {t_ref / t_fast:,.0f}x")

    ref, ref_pres, ref_sal = reference_calibrate(names, probs, grid)
    cal = calibrate(probs, target)
    same = (cal.alpha, cal.beta) == ref[1:3] and (cal.acc_presence, cal.acc_salience) == ref[3:5]
    grids_equal = bool(np.all(ref_pres == cal.presence_grid[:, None]) and np.all(ref_sal == cal.salience_grid))
    print(f"all {len(grid) ** 2} (presence, salience) grid values identical to the reference: {grids_equal}")
    same = same and grids_equal
    print(f"best pair: blemore alpha={cal.alpha:.4f} beta={cal.beta:.4f} "
          f"presence={cal.acc_presence:.4f} salience={cal.acc_salience:.4f}; "
          f"reference alpha={ref[1]:.4f} beta={ref[2]:.4f} presence={ref[3]:.4f} salience={ref[4]:.4f}; "
          f"{'SAME' if same else 'DIFFERENT'}")
    target_ms = 20.0
    print(f"target < {target_ms:.0f} ms for 490 clips: {'met' if t_fast * 1e3 < target_ms else 'NOT met'}")
    if not same:
        raise SystemExit("calibrate and the reference disagree")


if __name__ == "__main__":
    main()
