"""What the Ray engine costs on one machine, against the local engine.

* Extraction of a generated corpus (``--clips`` clips of ``--seconds`` s: face-mesh without
  landmarks + egemaps): clips per second with the local engine (1 process = inline, 2 =
  process pool) and the Ray engine (1 and 2 actors), worker start-up included, and the per-clip
  overhead of Ray in ms (Ray 1 actor minus local inline, per clip).
* Per-item overhead of each engine alone: a no-op ``map`` over ``--items`` items (start-up
  excluded: a first map warms the workers).
* Wall time of a small ablation grid (generated features, fast preset, 2 heads x 2 actor-norm
  modes) run one configuration after another here vs as Ray tasks (2 CPUs).

Network hygiene: Ray only ever runs inside a private network namespace. The script re-executes
itself under ``unshare -n`` with loopback up (so every Ray address is 127.0.0.1), sets
``RAY_USAGE_STATS_ENABLED=0``, keeps the dashboard off and stops the cluster at the end.

Run (as root, or where ``unshare -n`` is allowed): ``.venv/bin/python benchmarks/bench_ray.py``
(``--clips 16 --seconds 1 --items 300``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

EXTRACTORS = ["face-mesh", "egemaps"]
LIGHT = {"face-mesh": {"landmarks": False}}


def _noop(state, x):
    return x


def _setup(shared):
    return shared


def _corpus(d: Path, n: int, seconds: float) -> Path:
    from media_fixtures import make_clip

    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_clip(d / f"A{i + 1}_ang_int1_ver1.mp4", seconds=seconds)
    return d


def _extract(corpus: Path, store: Path, **kw) -> float:
    from blemore.extract import extract

    t = time.perf_counter()
    s = extract([corpus], store, EXTRACTORS, progress=False, settings=LIGHT, **kw)
    wall = time.perf_counter() - t
    bad = [f for f in s.failures]
    if bad:
        raise SystemExit(f"extraction failures: {bad[:3]}")
    return wall


def _map_ms(engine, items: int) -> float:
    list(engine.map(_noop, range(8), shared=b"", setup=_setup))  # start-up, not measured
    t = time.perf_counter()
    n = sum(1 for o in engine.map(_noop, range(items), shared=b"", setup=_setup) if o.ok)
    assert n == items
    return (time.perf_counter() - t) / items * 1000


def inside(args) -> dict:
    import ray

    from blemore.engines import create_engine

    out: dict = {"clips": args.clips, "seconds_per_clip": args.seconds, "load_avg_start": os.getloadavg()}
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    corpus = _corpus(tmp / "corpus", args.clips, args.seconds)
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    out["ray_start_s"] = time.perf_counter() - t
    try:
        out["node_addresses"] = sorted({n["NodeManagerAddress"] for n in ray.nodes()})
        ext = {}
        for label, kw in (("local-1", {"workers": 1}), ("local-2", {"workers": 2}),
                          ("ray-1", {"engine": "ray", "workers": 1}), ("ray-2", {"engine": "ray", "workers": 2})):
            wall = _extract(corpus, tmp / f"store-{label}", **kw)
            ext[label] = {"wall_s": round(wall, 2), "clips_per_s": round(args.clips / wall, 2)}
            print(f"extract {label}: {wall:.2f} s, {args.clips / wall:.2f} clips/s", flush=True)
        ext["ray_overhead_ms_per_clip"] = round((ext["ray-1"]["wall_s"] - ext["local-1"]["wall_s"]) / args.clips * 1000, 1)
        out["extract"] = ext
        per_item = {}
        for label, (name, w) in {"local-2": ("local", 2), "ray-1": ("ray", 1), "ray-2": ("ray", 2)}.items():
            with create_engine(name, workers=w) as eng:
                per_item[label] = round(_map_ms(eng, args.items), 2)
            print(f"no-op map {label}: {per_item[label]} ms per item", flush=True)
        out["noop_ms_per_item"] = per_item
        out["ablation"] = _ablation(tmp, args)
    finally:
        ray.shutdown()
    out["load_avg_end"] = os.getloadavg()
    return out


def _ablation(tmp: Path, args) -> dict:
    from blemore.ablation import run_ablation
    from blemore.config import ExperimentConfig
    from blemore.engines import create_engine
    from blemore.synth.features import generate_feature_corpus

    c = generate_feature_corpus(tmp / "features", n_train_actors=9, n_test_actors=0, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=32, frames=(8, 16), signal=2.0,
                                folds=3, seed=1)
    base = ExperimentConfig(metadata=str(c.train_metadata), features=[str(c.sources["video"]), str(c.sources["audio"])],
                            preset="fast", train={"epochs": args.epochs}, threads=1, plots=False)
    res = {}
    t = time.perf_counter()
    a = run_ablation(base, ["linear", "mlp-512"], ["off", "on"], out=tmp / "abl-local", progress=False)
    res["local_s"] = round(time.perf_counter() - t, 2)
    with create_engine("ray", workers=2) as eng:
        t = time.perf_counter()
        b = run_ablation(base, ["linear", "mlp-512"], ["off", "on"], out=tmp / "abl-ray", progress=False, engine=eng)
        res["ray_s"] = round(time.perf_counter() - t, 2)
    res["configurations"] = len(a.rows)
    res["identical"] = [r.validation for r in a.rows] == [r.validation for r in b.rows]
    print(f"ablation ({len(a.rows)} configurations): local {res['local_s']} s, ray {res['ray_s']} s, "
          f"identical results: {res['identical']}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.inside:  # re-run in a private network namespace: Ray sees loopback only
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1")
        cmd = ("ip link set lo up && exec " + " ".join([sys.executable, os.path.abspath(__file__), "--inside",
                                                         *sys.argv[1:]]))
        try:
            p = subprocess.run(["unshare", "-n", "sh", "-c", cmd], env=env, timeout=1800)
        except FileNotFoundError:
            raise SystemExit("unshare not found: this benchmark only runs Ray in a private network namespace") from None
        raise SystemExit(p.returncode)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    out = inside(args)
    if out["node_addresses"] != ["127.0.0.1"]:
        raise SystemExit(f"Ray used {out['node_addresses']}, not only 127.0.0.1")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
