"""The Ray engine on a real local cluster, against the local runner.

One cluster start for the whole module: tests/ray_checks.py runs in a child process inside a
private network namespace (``unshare -n``, loopback up), where Ray can reach nothing but
127.0.0.1; it starts a head plus one added worker node process (``ray.cluster_utils.Cluster``),
runs extraction, a killed-worker extraction, a benchmark and a small ablation both ways, stops
everything and writes what it saw. The tests here compare the outputs. Where a private
namespace cannot be made, they skip with that reason (never run Ray on the machine's address).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent


def _namespace_problem() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip not found: cannot make a private network namespace for Ray"
    try:
        p = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot make a private network namespace (unshare -n): {err}"
    if p.returncode != 0:
        return f"cannot make a private network namespace (unshare -n): {p.stderr.strip() or p.returncode}"
    return None


def _namespace_pids(ns: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.readlink(d / "ns" / "net") == ns:
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def _kill_namespace(ns: str, grace_s: float = 10.0) -> list[int]:
    """The processes still alive in the private network namespace ``ns`` after ``grace_s``,
    SIGKILLed (only the checks' own processes live there; Ray's daemons start their own
    sessions, so a process-group kill would miss them)."""
    deadline = time.monotonic() + grace_s
    while (left := _namespace_pids(ns)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    return left


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'blemore[distributed]')")
    why = _namespace_problem()
    if why:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1")
    cmd = f"ip link set lo up && exec {sys.executable} {HERE / 'ray_checks.py'} {out}"
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        log, _ = proc.communicate()
        pytest.fail(f"the Ray checks did not finish in 600 s:\n{log[-4000:]}")
    finally:  # whatever happened: nothing started in the private namespace outlives the checks
        ns_file = out / "netns.txt"
        ns = ns_file.read_text().strip() if ns_file.exists() else None
        leftovers = _kill_namespace(ns) if ns and ns != os.readlink("/proc/self/ns/net") else []
    report_file = out / "report.json"
    assert report_file.exists(), f"the Ray checks wrote no report (exit {proc.returncode}):\n{log[-4000:]}"
    report = json.loads(report_file.read_text())
    assert "error" not in report, report["error"]
    report["leftover_pids"] = leftovers
    return out, report


def _manifest(store: Path, extractor: str) -> dict[str, str]:
    with open(store / extractor / "manifest.csv", newline="") as f:
        return {row["clip_id"]: row["status"] for row in csv.DictReader(f)}


def test_every_node_is_on_loopback(checks):
    _, report = checks
    nodes = report["nodes"]
    assert len(nodes) >= 2 and all(n["alive"] for n in nodes)
    assert {n["address"] for n in nodes} == {"127.0.0.1"}
    assert report["gcs_address"].startswith("127.0.0.1:")
    assert any("second_node" in n["resources"] for n in nodes)  # the added worker node process
    assert report["leftover_pids"] == []  # ray.shutdown + cluster.shutdown stopped everything


def test_extraction_on_ray_is_bit_identical_to_the_local_runner(checks):
    out, report = checks
    local, remote = out / "store_local", out / "store_ray"
    for name in ("egemaps", "face-mesh"):
        statuses = _manifest(local, name)
        assert statuses == _manifest(remote, name)
        assert "ok" in statuses.values()
        files = sorted(p.name for p in (local / name).glob("*.npy"))
        assert files and files == sorted(p.name for p in (remote / name).glob("*.npy"))
        for fname in files:
            a, b = np.load(local / name / fname), np.load(remote / name / fname)
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True), fname
    assert report["extract_ray"]["failures"] == []


def test_a_killed_worker_loses_no_clip(checks):
    out, report = checks
    kill = report["kill"]
    assert kill["killed"] and kill["killed"][0]["busy"]  # a worker holding a clip was SIGKILLed
    assert max(kill["attempts"]) == 2  # its clip(s) ran again on a fresh worker
    statuses = _manifest(out / "store_kill", "egemaps")
    assert len(statuses) == 6 and set(statuses.values()) == {"ok"}
    assert len(list((out / "store_kill" / "egemaps").glob("*.npy"))) == 6
    assert kill["summary"]["failures"] == []


def test_benchmark_and_ablation_on_ray_match_the_local_runner(checks):
    out, report = checks
    bench = report["benchmark"]
    assert bench["trainings"] == 3 + 3  # 3 outer folds + 3 inner pairs (nested), then the final model
    assert bench["ray"] == bench["local"]
    assert "test" in bench["ray"] and bench["ray"]["validation"]["acc_presence"]["folds"]
    for a, b in (("pred_local.csv", "pred_ray.csv"), ("test_local.csv", "test_ray.csv")):
        assert (out / a).read_bytes() == (out / b).read_bytes()
    abl = report["ablation"]
    assert [r["key"] for r in abl["ray"]] == [r["key"] for r in abl["local"]] and len(abl["ray"]) == 2
    assert abl["ray"] == abl["local"]
    assert report["ablation_features_hidden"]  # the Ray configurations ran without the feature folders
    for run in ("linear_norm-off_early", "mlp-512_norm-off_early"):  # run folders written by the driver
        assert (out / "abl_ray" / run / "results.json").exists()
