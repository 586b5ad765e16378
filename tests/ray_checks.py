"""The Ray checks of tests/test_engines_ray.py, run as a script inside a private network
namespace (``unshare -n`` with only loopback up), so the cluster can use nothing but 127.0.0.1.

    python tests/ray_checks.py OUT_DIR     # writes OUT_DIR/report.json and the stores / results

One cluster for every check (``ray.cluster_utils.Cluster``: a head with 1 CPU plus one added
worker node process with its own CPU and a custom resource), stopped at the end whatever
happens. Checks:

1. ``ray.nodes()``: every node's address;
2. extraction of a generated corpus with the local runner (in-process) and with the Ray engine
   (2 actors, one per node) into two stores; the test compares the arrays;
3. extraction where a busy worker process is killed (SIGKILL) after the first clip: the store
   must still have every clip ``ok``; the report records the pid and the attempts seen;
4. a benchmark run (generated features, fast preset, few epochs) with no engine and with the
   Ray engine, and a two-configuration ablation both ways (on Ray with the feature folders
   renamed away while the configurations run: the driver loaded them and shipped them once);
   results written for the test.
Nothing here is a test on its own; it only writes what it saw.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

EXTRACTORS = ["egemaps", "face-mesh"]
LIGHT = {"face-mesh": {"landmarks": False}}


def _corpus(d: Path, n: int) -> Path:
    from media_fixtures import make_clip, make_voice_file

    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if i % 3 == 2:
            make_voice_file(d / f"A{i + 1}_neu_sit1_ver1.wav", seconds=0.5)
        else:
            make_clip(d / f"A{i + 1}_ang_int1_ver1.mp4", seconds=0.4 + 0.1 * (i % 2))
    return d


def _comparable(results: dict) -> dict:
    """results.json without what legitimately differs between two runs (wall times)."""
    r = json.loads(json.dumps(results, default=str))
    r.pop("timing", None)
    r.get("final", {}).pop("train_seconds", None)
    for f in r.get("validation", {}).get("folds", []):
        f.pop("train_seconds", None)
    return r


def main(out: Path) -> int:
    import ray
    from ray.cluster_utils import Cluster

    from blemore.engines.ray import RayEngine

    report: dict = {"started": time.time()}
    (out / "netns.txt").write_text(os.readlink("/proc/self/ns/net"))  # lets the test kill leftovers
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, resources={"second_node": 1})
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes(timeout=60)
        report["startup_s"] = time.perf_counter() - t0
        report["nodes"] = [{"address": n["NodeManagerAddress"], "alive": n["Alive"],
                            "resources": n["Resources"]} for n in ray.nodes()]
        report["gcs_address"] = cluster.address
        _extraction(out, report, RayEngine)
        _killed_worker(out, report, RayEngine)
        _benchmark(out, report, RayEngine)
    except BaseException:
        report["error"] = traceback.format_exc()
    finally:
        try:
            ray.shutdown()
        finally:
            cluster.shutdown()
        report["total_s"] = time.perf_counter() - t0
        (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return 0 if "error" not in report else 1


def _extraction(out: Path, report: dict, RayEngine) -> None:
    from blemore.extract import extract

    corpus = _corpus(out / "corpus", 4)
    t = time.perf_counter()
    local = extract([corpus], out / "store_local", EXTRACTORS, workers=1, progress=False, settings=LIGHT)
    report["extract_local_s"] = time.perf_counter() - t
    eng = RayEngine(workers=2)
    t = time.perf_counter()
    remote = extract([corpus], out / "store_ray", EXTRACTORS, engine=eng, progress=False, settings=LIGHT)
    report["extract_ray_s"] = time.perf_counter() - t
    report["extract_local"] = local.to_dict()
    report["extract_ray"] = remote.to_dict()


class _KillingRay:
    """Wraps a RayEngine's map: after the first outcome, SIGKILLs a worker that holds a clip."""

    def __init__(self, RayEngine):
        class Killing(RayEngine):
            killed: list = []
            attempts: list = []

            def map(self, *a, **k):
                for i, o in enumerate(super().map(*a, **k)):
                    self.attempts.append(o.attempts)
                    if i == 0:
                        busy = [p for p, n in zip(self.actor_pids, self.actor_load) if n > 0]
                        pid = (busy or self.actor_pids)[0]
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append({"pid": pid, "busy": bool(busy)})
                    yield o

        self.engine = Killing(workers=2)


def _killed_worker(out: Path, report: dict, RayEngine) -> None:
    from blemore.extract import extract

    corpus = _corpus(out / "corpus_kill", 6)
    k = _KillingRay(RayEngine).engine
    s = extract([corpus], out / "store_kill", ["egemaps"], engine=k, progress=False)
    report["kill"] = {"summary": s.to_dict(), "killed": k.killed, "attempts": k.attempts}


def _benchmark(out: Path, report: dict, RayEngine) -> None:
    from blemore.ablation import run_ablation
    from blemore.config import ExperimentConfig
    from blemore.experiment import run_experiment
    from blemore.synth.features import generate_feature_corpus

    c = generate_feature_corpus(out / "features", n_train_actors=6, n_test_actors=2, n_train_clips=None,
                                n_test_clips=None, clips_per_actor=36, dim=8, frames=(4, 8), signal=2.5,
                                folds=3, seed=3)
    cfg = ExperimentConfig(metadata=str(c.train_metadata), test_metadata=str(c.test_metadata),
                           features=[str(c.sources["video"]), str(c.sources["audio"])], head="mlp-512",
                           preset="fast", train={"epochs": 4, "batch_size": 64}, threads=1, plots=False)
    eng = RayEngine()
    t = time.perf_counter()
    a = run_experiment(cfg, progress=False, write=False)
    report["benchmark_local_s"] = time.perf_counter() - t
    t = time.perf_counter()
    b = run_experiment(cfg, progress=False, write=False, engine=eng)
    report["benchmark_ray_s"] = time.perf_counter() - t
    report["benchmark"] = {"local": _comparable(a.results), "ray": _comparable(b.results),
                           "trainings": a.results["timing"]["trainings"]}
    a.predictions.to_csv(out / "pred_local.csv", index=False)
    b.predictions.to_csv(out / "pred_ray.csv", index=False)
    a.test_predictions.to_csv(out / "test_local.csv", index=False)
    b.test_predictions.to_csv(out / "test_ray.csv", index=False)
    base = cfg.replace(test_metadata=None)
    t = time.perf_counter()
    la = run_ablation(base, ["linear", "mlp-512"], out=out / "abl_local", progress=False)
    report["ablation_local_s"] = time.perf_counter() - t
    feats = out / "features"

    class Hiding(RayEngine):  # the feature folders are away while the configurations run
        def map(self, *a, **k):
            hidden = feats.with_name("features-hidden")
            feats.rename(hidden)
            try:
                yield from super().map(*a, **k)
            finally:
                hidden.rename(feats)
                report["ablation_features_hidden"] = True

    t = time.perf_counter()
    ra = run_ablation(base, ["linear", "mlp-512"], out=out / "abl_ray", progress=False, engine=Hiding())
    report["ablation_ray_s"] = time.perf_counter() - t
    report["ablation"] = {"local": [{"key": r.key, "validation": r.validation} for r in la.rows],
                          "ray": [{"key": r.key, "validation": r.validation} for r in ra.rows]}


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    sys.exit(main(target))
