"""Size and render time of ``blemore view`` for a predictions file with many clips.

Writes a timelines file for ``--clips`` clips (BLEMORE-style ids, a ``--windows``-point
timeline each, no media), renders it with :func:`blemore.view.write_view`, and prints the
wall time of writing the timelines file and of rendering, and the HTML size. (In the browser,
clip cards are built 40 at a time as the page scrolls: tests/test_view_browser.py checks it.)

    python benchmarks/bench_view.py [--clips 3000] [--windows 100]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from blemore.labels import TARGETS, format_clip_id
from blemore.view import timelines_path, write_timelines, write_view


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=3000)
    ap.add_argument("--windows", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recs = []
        for i in range(args.clips):
            lab = TARGETS[i % len(TARGETS)]
            cid = format_clip_id(100 + i % 43, lab, level=1, version=i // len(TARGETS) + 1)
            p = rng.dirichlet(np.ones(6), size=args.windows)
            recs.append({"clip_id": cid, "label": TARGETS[rng.integers(len(TARGETS))].name(), "proba": p.mean(0),
                         "times": np.linspace(0.1, 5.0, args.windows), "timeline": p, "duration": 5.1})
        out = tmp / "pred.json"
        t0 = time.perf_counter()
        write_timelines(timelines_path(out), recs)
        t1 = time.perf_counter()
        html = write_view([timelines_path(out)], tmp / "view.html")
        t2 = time.perf_counter()
        print(f"{args.clips} clips x {args.windows} windows: timelines file {timelines_path(out).stat().st_size / 1e6:.1f} MB "
              f"written in {t1 - t0:.2f} s; HTML {html.stat().st_size / 1e6:.1f} MB rendered in {t2 - t1:.2f} s")


if __name__ == "__main__":
    main()
