"""Measure time of a 4-target model: the reference run once per model vs once per target.

Usage:  python bench/bench_measure.py [--baseline main] [--repeat 3] [--recipe ultraface-rfb-320]

The model is ``--recipe`` with four targets (onnx, onnx-fp16, openvino, caffe). For this
worktree and for ``git archive --baseline`` (runs alternating in one loop, same machine load),
from a build where everything up to ``export`` is done: wall time of ``doit measure`` (on this
worktree that includes ``reference:<id>``, which measure depends on), the same minus a no-op
``doit measure`` (doit start-up and task loading), and the seconds the tasks themselves
report (``verify.json`` ``seconds`` of every measure, plus ``reference/stats.json``), split
into the candidate's latency timing (runs x median, a fixed budget per target in old and new
alike) and the rest (the reference, the artifact's runs on the samples, golden files). The
reference runtime is what a user's build picks: real Caffe when its side runtime is set up
(``~/.cache/zoomake/runtimes`` is linked into the benchmark's cache), else OpenCV.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_parallel import doit, tree  # noqa: E402

TARGETS = {
    "onnx": {"format": "onnx", "precision": "fp32", "opset": 17},
    "onnx-fp16": {"format": "onnx", "precision": "fp16", "opset": 17},
    "openvino": {"format": "openvino", "precision": "fp32"},
    "caffe": {"format": "caffe", "precision": "fp32"},
}


def latency_seconds(build: Path, model_id: str) -> float:
    """The time the measures spent timing the candidate (runs x median latency, the same
    estimate for old and new; the timed runs are a fixed budget per target, see
    ``pipelines.verify.measure.LATENCY_BUDGET_S``, and no part of the reference's cost)."""
    total = 0.0
    for t in TARGETS:
        lat = json.loads((build / model_id / t / "verify.json").read_text())["candidate"]
        total += lat["latency_ms"]["runs"] * lat["latency_ms"]["median"] / 1000.0
    return total


def task_seconds(build: Path, model_id: str) -> float:
    total = sum(json.loads((build / model_id / t / "verify.json").read_text())["seconds"]
                for t in TARGETS)  # fmt: skip
    stats = build / model_id / "reference" / "stats.json"
    return total + (json.loads(stats.read_text())["seconds"] if stats.is_file() else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="main")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--recipe", default="ultraface-rfb-320")
    ap.add_argument("--new", help="git ref to run as 'new' (default: this worktree as it is)")
    args = ap.parse_args()
    mirror = os.environ.get("ZOOMAKE_MIRROR") or str(REPO.parent / "shared" / "models")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        recipe = yaml.safe_load((REPO / "recipes" / f"{args.recipe}.yaml").read_text())
        recipe["targets"] = TARGETS
        (tmp / "recipes").mkdir()
        (tmp / "recipes" / f"{args.recipe}.yaml").write_text(yaml.safe_dump(recipe))
        (tmp / "cache").mkdir()
        runtimes = Path.home() / ".cache" / "zoomake" / "runtimes"
        if runtimes.is_dir():
            (tmp / "cache" / "runtimes").symlink_to(runtimes)
        roots = {args.baseline: tree(args.baseline, tmp),
                 "new": tree(args.new, tmp) if args.new else REPO}  # fmt: skip
        rows: dict[str, dict[str, list[float]]] = {k: {"wall": [], "net": [], "tasks": [], "lat": [], "rest": []}
                                                    for k in roots}  # fmt: skip
        runtime = {}
        for _ in range(args.repeat):
            for label, root in roots.items():
                build = tmp / "build" / label
                shutil.rmtree(build, ignore_errors=True)
                env = {**os.environ, "ZOOMAKE_RECIPES": str(tmp / "recipes"),
                       "ZOOMAKE_BUILD": str(build), "ZOOMAKE_CACHE": str(tmp / "cache"),
                       "ZOOMAKE_MIRROR": mirror, "ZOOMAKE_OFFLINE": "1"}  # fmt: skip
                doit(root, env, "export")
                wall = doit(root, env, "measure")
                idle = doit(root, env, "measure")
                rows[label]["wall"].append(wall)
                rows[label]["net"].append(wall - idle)
                rows[label]["tasks"].append(task_seconds(build, args.recipe))
                rows[label]["lat"].append(latency_seconds(build, args.recipe))
                rows[label]["rest"].append(rows[label]["tasks"][-1] - rows[label]["lat"][-1])
                v = json.loads((build / args.recipe / "onnx" / "verify.json").read_text())
                runtime[label] = v["reference"]["runtime"]
        load = os.getloadavg()
        print(f"{args.recipe}, 4 targets ({', '.join(TARGETS)}); medians of {args.repeat}; "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
        print(f"{'code':10} {'reference':>10} {'doit measure s':>15} {'- no-op s':>10} "
              f"{'task s':>8} {'latency s':>10} {'task - latency s':>17}")  # fmt: skip
        med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in rows.items()}
        for label in roots:
            m = med[label]
            print(f"{label:10} {runtime[label]:>10} {m['wall']:15.2f} {m['net']:10.2f} "
                  f"{m['tasks']:8.2f} {m['lat']:10.2f} {m['rest']:17.2f}")  # fmt: skip
        old, new = med[args.baseline], med["new"]
        print(f"{'new/old':10} {'':>10} {new['wall'] / old['wall']:15.2f} "
              f"{new['net'] / old['net']:10.2f} {new['tasks'] / old['tasks']:8.2f} "
              f"{new['lat'] / old['lat']:10.2f} {new['rest'] / old['rest']:17.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
