"""Benchmark: per-call overhead of the side-runtime protocol (real Caffe as a subprocess).

    PYTHONPATH=. python bench/bench_side_runtime.py [--iterations 30] [--model ultraface/RFB-320]

Needs ``zoomake setup-runtime caffe``. One persistent runner loads the model once; each call
sends the input as an ``.npz`` frame and receives every output. ``caffe`` is the forward time
the runner measures itself, ``overhead`` = wall time of the call minus that (framing, npz
encode/decode on both sides, two pipe copies, scheduling). Also the npz encode+decode of the
same tensors alone, in this process, and process start-up (spawn + ``import caffe``).
Medians over ``--iterations`` calls.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.runtimes.side import SideModel, SideProcess, locate, process  # noqa: E402
from pipelines.runtimes.side_runners import sideproto  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--model", default="ultraface/RFB-320")
    args = ap.parse_args()
    models = Path(os.environ.get("ZOOMAKE_SHARED") or REPO.parent / "shared") / "models"
    proto, weights = models / f"{args.model}.prototxt", models / f"{args.model}.caffemodel"

    t0 = time.perf_counter()
    SideProcess(locate("caffe")).close()
    startup = time.perf_counter() - t0
    process("caffe")
    t0 = time.perf_counter()
    model = SideModel("caffe", {"prototxt": proto, "caffemodel": weights})
    load = time.perf_counter() - t0
    (name, shape), *_ = model.inputs
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    out = model.run({name: x})  # warm-up
    walls, inner = [], []
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        model.run({name: x})
        walls.append(time.perf_counter() - t0)
        inner.append(model.last_seconds)
    codec = []
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        for arrays in ({name: x}, out):
            sideproto.read_frame(io.BytesIO(sideproto.encode({"op": "run"}, arrays)))
        codec.append(time.perf_counter() - t0)

    def ms(values) -> str:
        return f"{statistics.median(values) * 1e3:8.2f}"

    nbytes = x.nbytes + sum(v.nbytes for v in out.values())
    print(f"model {args.model}: input {list(shape)}, outputs "
          f"{ {k: list(v.shape) for k, v in out.items()} }, {nbytes / 1e6:.2f} MB per call")  # fmt: skip
    print(
        f"runner start-up (spawn + import caffe): {startup * 1e3:.0f} ms; model load {load * 1e3:.0f} ms"
    )
    print("| per call (median ms) | wall | caffe forward | overhead | npz codec alone |")
    print("|---|---|---|---|---|")
    over = [w - i for w, i in zip(walls, inner, strict=True)]
    print(f"| {args.model} | {ms(walls)} | {ms(inner)} | {ms(over)} | {ms(codec)} |")
    print(f"overhead / wall: {statistics.median(over) / statistics.median(walls):.1%}")


if __name__ == "__main__":
    main()
