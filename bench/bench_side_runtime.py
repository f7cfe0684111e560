"""Benchmark: per-call overhead of the side-runtime protocol (real Caffe as a subprocess).

    PYTHONPATH=. python bench/bench_side_runtime.py [--iterations 30] [--model ultraface/RFB-320]

Needs ``zoomake setup-runtime caffe``. One persistent runner loads the model once; each call
sends the input as an ``.npz`` frame and receives every output. ``caffe`` is the forward time
the runner measures itself, ``overhead`` = wall time of the call minus that (framing, npz
encode/decode on both sides, two pipe copies, scheduling). Also the npz encode+decode of the
same tensors alone, in this process, and process start-up (spawn + ``import caffe``).
Medians over ``--iterations`` calls.

Then the first forward of a freshly loaded net, as a zoo pays it once per model: ``--nets`` loads
(load, two forwards, free) in one runner, with the runner's malloc tuning
(``pipelines.runtimes.side.MALLOC_TUNING``) and without it (glibc's defaults), alternating, in
the same run; the first net of a runner is left out of the medians (nothing was freed before it).
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
    ap.add_argument("--nets", type=int, default=6, help="nets loaded one after another")
    ap.add_argument("--rounds", type=int, default=3, help="runners per setting, alternating")
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
    first_forwards(proto, weights, {name: x}, args.nets, args.rounds)


def first_forwards(proto: Path, weights: Path, feeds: dict, nets: int, rounds: int) -> None:
    """Caffe's own seconds of the first and second forward of nets 2..N loaded in one runner,
    with and without the malloc tuning (a fresh runner each round, the two alternating)."""
    from pipelines.runtimes import side

    tuning = dict(side.MALLOC_TUNING)
    found = {"tuned": ([], []), "glibc default": ([], [])}
    for _ in range(rounds):
        for label, (first, second) in found.items():
            side.MALLOC_TUNING = tuning if label == "tuned" else {}
            for proc in side._PROCESSES.values():
                proc.close()
            side._PROCESSES.clear()
            for k in range(nets):
                model = SideModel("caffe", {"prototxt": proto, "caffemodel": weights})
                model.run(feeds)
                one = model.last_seconds
                model.run(feeds)
                if k:  # the runner's first net: nothing was freed before it
                    first.append(one)
                    second.append(model.last_seconds)
                del model  # frees the net in the runner
    side.MALLOC_TUNING = tuning
    print(f"\nnets 2-{nets} of a runner, {rounds} runners each (median ms of Caffe's own time)")
    print("| runner malloc | 1st forward | 2nd forward | 1st / 2nd |")
    print("|---|---|---|---|")
    for label, (first, second) in found.items():
        a, b = statistics.median(first) * 1e3, statistics.median(second) * 1e3
        print(f"| {label} | {a:8.2f} | {b:8.2f} | {a / b:5.2f} |")
    a = statistics.median(found["tuned"][0])
    b = statistics.median(found["glibc default"][0])
    print(f"1st forward tuned / glibc default: {a / b:.2f}")


if __name__ == "__main__":
    main()
