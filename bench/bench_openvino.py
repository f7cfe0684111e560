"""Benchmark: OpenVINO IR export time per target of the default zoo, old vs new, same run.

    PYTHONPATH=. python bench/bench_openvino.py [--build DIR] [--baseline main] [--repeat 2]

The models are the zoo's optimized ONNX files (``build/<id>/optimize/model.onnx``; without
``--build`` they are built first with ``doit optimize`` into a temporary build directory, which
needs ``ZOOMAKE_MIRROR``). Every ``format: openvino`` target of every recipe is exported
``--repeat`` times, in the order a serial build runs them, by one process per implementation:
this worktree's ``export_openvino`` and the baseline's (``git archive`` of ``--baseline``; on
today's main each export starts a child process that imports OpenVINO). The first export of
a process pays the OpenVINO import, as the first export task of a build does; the table shows
it apart and the medians over all exports, plus whether the IR bytes of all exports of one
target were identical within and across the two processes of the new implementation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from converters.openvino_export import export_openvino
jobs, out, repeat = json.loads(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
rows = []
for r in range(repeat):
    for k, (label, src, precision) in enumerate(jobs):
        xml = out / f"{k}-{r}" / "model.xml"
        t0 = time.perf_counter()
        export_openvino(src, xml, precision)
        dt = time.perf_counter() - t0
        digest = hashlib.sha256(xml.read_bytes() + xml.with_suffix(".bin").read_bytes())
        rows.append([label, dt, digest.hexdigest()[:16]])
print(json.dumps(rows))
"""


def zoo_jobs(build: Path) -> list[tuple[str, str, str]]:
    jobs = []
    for recipe in sorted((REPO / "recipes").glob("*.yaml")):
        spec = yaml.safe_load(recipe.read_text())
        for name, target in (spec.get("targets") or {}).items():
            if target.get("format") == "openvino":
                src = build / recipe.stem / "optimize" / "model.onnx"
                jobs.append((f"{recipe.stem}:{name}", str(src), target.get("precision", "fp32")))
    return jobs


def run_impl(root: Path, jobs, out: Path, repeat: int) -> list:
    # cwd = the implementation's root: the baseline's child (`python -m converters...`)
    # must import the baseline's module, not this worktree's.
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [sys.executable, "-c", CHILD, str(root), json.dumps(jobs), str(out), str(repeat)]
    r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"{root}: export failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def baseline_tree(ref: str, tmp: Path) -> Path:
    root = tmp / "baseline"
    root.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "converters"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, help="a build dir holding <id>/optimize/model.onnx")
    ap.add_argument("--baseline", default="main")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        build = args.build
        if build is None:
            build = tmp / "build"
            env = dict(os.environ, ZOOMAKE_BUILD=str(build))
            subprocess.run(
                [sys.executable, "-m", "doit", "optimize"],
                cwd=REPO,
                env=env,
                check=True,
                timeout=1800,
            )
        jobs = zoo_jobs(build)
        old_root = baseline_tree(args.baseline, tmp)
        new = run_impl(REPO, jobs, tmp / "new", args.repeat)
        old = run_impl(old_root, jobs, tmp / "old", args.repeat)
        new2 = run_impl(REPO, jobs, tmp / "new2", 1)  # a second process: same bytes?
    print(f"OpenVINO export, {len(jobs)} targets x {args.repeat}; old = {args.baseline}, "
          f"new = this worktree; seconds per export_openvino call")  # fmt: skip
    head = f"{'target':40} {'old median':>10} {'new median':>10} {'old/new':>8} | new IR bytes"
    print(head)
    print("-" * len(head))
    for label, *_ in jobs:
        o = [t for lab, t, _ in old if lab == label]
        n = [t for lab, t, _ in new if lab == label]
        digests = {d for lab, _, d in new + new2 if lab == label}
        same = "identical (2 processes)" if len(digests) == 1 else f"DIFFER ({len(digests)})"
        mo, mn = statistics.median(o), statistics.median(n)
        print(f"{label:40} {mo:10.3f} {mn:10.3f} {mo / mn:8.1f} | {same}")
    mo, mn = statistics.median(t for _, t, _ in old), statistics.median(t for _, t, _ in new)
    print("-" * len(head))
    print(f"{'median over all exports':40} {mo:10.3f} {mn:10.3f} {mo / mn:8.1f}")
    print(f"{'first export of the process':40} {old[0][1]:10.3f} {new[0][1]:10.3f} "
          f"{old[0][1] / new[0][1]:8.1f}")  # fmt: skip
    sha = hashlib.sha256(json.dumps(sorted({d for _, _, d in new})).encode()).hexdigest()[:12]
    print(f"(digest of the new IR set: {sha})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
