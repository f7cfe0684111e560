"""Measure time of a 4-target model: the reference run once per model vs once per target.

Usage:  python bench/bench_measure.py [--baseline main] [--repeat 3] [--recipe ultraface-rfb-320]
                                     [--zoo K]

The model is ``--recipe`` with four targets (onnx, onnx-fp16, openvino, caffe). For this
worktree and for ``git archive --baseline`` (runs alternating in one loop, same machine load),
from a build where everything up to ``export`` is done: wall time of ``doit measure`` (on this
worktree that includes ``reference:<id>``, which measure depends on), the same minus a no-op
``doit measure`` (doit start-up and task loading), and the seconds the tasks themselves
report (``verify.json`` ``seconds`` of every measure, plus ``reference/stats.json``), split
into the candidate's latency timing (runs x median: 50 runs per target on old code, until the
median is known to +-5% on new, ``pipelines.verify.measure.LATENCY_RUNS``) and the rest (the reference, the artifact's runs on the samples, golden files). The
reference runtime is what a user's build picks: real Caffe when its side runtime is set up
(``~/.cache/zoomake/runtimes`` is linked into the benchmark's cache), else OpenCV.

One model in a fresh ``doit`` process pays what a zoo build pays once per process: the runtimes'
imports (onnxruntime, OpenVINO, OpenCV), real Caffe's side process start-up, doit's own start.
``--zoo K`` also measures K copies of the model (ids ``<recipe>``, ``<recipe>-2``, ...) in one
``doit measure`` and prints the cost of one more model at zoo scale, ``(T(K) - T(1)) / (K - 1)``,
for old and new measured in the same loop.
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
    estimate for old and new; how many runs: ``pipelines.verify.measure.LATENCY_RUNS``; no
    part of the reference's cost)."""
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


def _zoo(tmp: Path, recipe: dict, name: str, k: int) -> tuple[Path, list[str]]:
    """A recipes directory with ``k`` copies of ``recipe`` (four targets each)."""
    recipes = tmp / f"recipes-{k}"
    recipes.mkdir()
    ids = [name] + [f"{name}-{i}" for i in range(2, k + 1)]
    for model_id in ids:
        (recipes / f"{model_id}.yaml").write_text(yaml.safe_dump(recipe))
    return recipes, ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="main")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--recipe", default="ultraface-rfb-320")
    ap.add_argument("--new", help="git ref to run as 'new' (default: this worktree as it is)")
    ap.add_argument("--zoo", type=int, default=0, metavar="K",
                    help="also measure K copies of the model in one build (K >= 2)")  # fmt: skip
    args = ap.parse_args()
    if args.zoo == 1 or args.zoo < 0:
        ap.error("--zoo needs K >= 2 models")
    mirror = os.environ.get("ZOOMAKE_MIRROR") or str(REPO.parent / "shared" / "models")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        recipe = yaml.safe_load((REPO / "recipes" / f"{args.recipe}.yaml").read_text())
        recipe["targets"] = TARGETS
        sizes = [1] + ([args.zoo] if args.zoo else [])
        zoos = {k: _zoo(tmp, recipe, args.recipe, k) for k in sizes}
        (tmp / "cache").mkdir()
        runtimes = Path.home() / ".cache" / "zoomake" / "runtimes"
        if runtimes.is_dir():
            (tmp / "cache" / "runtimes").symlink_to(runtimes)
        roots = {args.baseline: tree(args.baseline, tmp),
                 "new": tree(args.new, tmp) if args.new else REPO}  # fmt: skip
        keys = ("wall", "net", "tasks", "lat", "rest")
        rows = {(label, k): {m: [] for m in keys} for label in roots for k in sizes}
        runtime = {}
        for _ in range(args.repeat):
            for k in sizes:
                recipes, ids = zoos[k]
                for label, root in roots.items():
                    build = tmp / "build" / f"{label}-{k}"
                    shutil.rmtree(build, ignore_errors=True)
                    env = {**os.environ, "ZOOMAKE_RECIPES": str(recipes),
                           "ZOOMAKE_BUILD": str(build), "ZOOMAKE_CACHE": str(tmp / "cache"),
                           "ZOOMAKE_MIRROR": mirror, "ZOOMAKE_OFFLINE": "1"}  # fmt: skip
                    doit(root, env, "export")
                    wall = doit(root, env, "measure")
                    idle = doit(root, env, "measure")
                    row = rows[label, k]
                    row["wall"].append(wall)
                    row["net"].append(wall - idle)
                    row["tasks"].append(sum(task_seconds(build, i) for i in ids))
                    row["lat"].append(sum(latency_seconds(build, i) for i in ids))
                    row["rest"].append(row["tasks"][-1] - row["lat"][-1])
                    v = json.loads((build / args.recipe / "onnx" / "verify.json").read_text())
                    runtime[label] = v["reference"]["runtime"]
        load = os.getloadavg()
        print(f"{args.recipe}, 4 targets ({', '.join(TARGETS)}); medians of {args.repeat}; "
              f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
        med = {key: {m: statistics.median(v) for m, v in r.items()} for key, r in rows.items()}
        tables = [("one model, one doit process", {label: med[label, 1] for label in roots})]
        if args.zoo:
            k = args.zoo
            tables.append((f"one more model in a zoo of {k}: (T({k}) - T(1)) / {k - 1}",
                           {label: {m: (med[label, k][m] - med[label, 1][m]) / (k - 1)
                                    for m in keys} for label in roots}))  # fmt: skip
        for title, table in tables:
            print(f"\n{title}")
            print(f"{'code':10} {'reference':>10} {'doit measure s':>15} {'- no-op s':>10} "
                  f"{'task s':>8} {'latency s':>10} {'task - latency s':>17}")  # fmt: skip
            for label in roots:
                m = table[label]
                print(f"{label:10} {runtime[label]:>10} {m['wall']:15.2f} {m['net']:10.2f} "
                      f"{m['tasks']:8.2f} {m['lat']:10.2f} {m['rest']:17.2f}")  # fmt: skip
            old, new = table[args.baseline], table["new"]
            print(f"{'new/old':10} {'':>10} "
                  + " ".join(f"{new[m] / old[m]:{w}.2f}" if old[m] > 0 else f"{'-':>{w}}"
                             for m, w in zip(keys, (15, 10, 8, 10, 17), strict=True)))  # fmt: skip


if __name__ == "__main__":
    main()
