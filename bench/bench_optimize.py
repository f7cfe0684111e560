"""Benchmark: onnxruntime latency of optimized vs unoptimized models, and FP16 vs FP32 size.

    PYTHONPATH=. python bench/bench_optimize.py [--iterations 20] [--threads 1] [--models ...]

For each model: convert (Caffe, preprocessing as in its recipe), run the default passes, convert
the optimized model to float16. Latencies are medians over ``--iterations`` runs, the two
sessions of a pair alternating run by run in one process (same load, same machine state).
Two onnxruntime settings are reported: graph optimizations disabled (what our passes alone
save) and enabled (ORT_ENABLE_ALL, what a deployment sees; ORT folds BatchNorm itself there,
so the ratio there is near 1). ResNet-50 has no published weights here: they are synthesized
(tests/caffe/synth.py), which does not change the timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from converters.caffe.convert import caffe_to_onnx  # noqa: E402
from converters.fp16 import to_fp16  # noqa: E402
from converters.passes import run_passes  # noqa: E402
from converters.preprocess import embed_preprocessing  # noqa: E402

SHARED = Path(os.environ.get("ZOOMAKE_SHARED") or REPO.parent / "shared") / "models"
MODELS = {
    # name: (prototxt, caffemodel or None = synthesize, outputs, input, preprocess)
    "resnet50": ("architectures/ResNet-50-deploy.prototxt", None, ["fc1000", "prob"], "data",
                 {"mean": [104, 117, 123]}),
    "ultraface-rfb-320": ("ultraface/RFB-320.prototxt", "ultraface/RFB-320.caffemodel",
                          ["scores", "boxes"], "input",
                          {"mean": 127, "scale": 0.0078125, "reverse_channels": True}),
    "ultraface-slim-320": ("ultraface/slim-320.prototxt", "ultraface/slim-320.caffemodel",
                           ["scores", "boxes"], "input",
                           {"mean": 127, "scale": 0.0078125, "reverse_channels": True}),
    "mtcnn-det3": ("mtcnn/det3.prototxt", "mtcnn/det3.caffemodel",
                   ["conv6-2", "conv6-3", "prob1"], "data", {"mean": 127.5, "scale": 0.0078125}),
    "mtcnn-det4": ("mtcnn/det4.prototxt", "mtcnn/det4.caffemodel",
                   ["fc5_1", "fc5_2", "fc5_3", "fc5_4", "fc5_5"], "data",
                   {"mean": 127.5, "scale": 0.0078125}),
}  # fmt: skip


def _session(model, ort_opt: bool, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if ort_opt
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )  # fmt: skip
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _paired_medians(sessions, feeds, iterations: int) -> list[float]:
    for s in sessions:  # warm-up
        s.run(None, feeds)
    times = [[] for _ in sessions]
    for _ in range(iterations):
        for k, s in enumerate(sessions):
            t0 = time.perf_counter()
            s.run(None, feeds)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def bench(name: str, iterations: int, threads: int, tmp: Path) -> dict:
    proto, weights, outputs, inp, spec = MODELS[name]
    proto = SHARED / proto
    if weights is None:
        from tests.caffe.synth import synthesize_weights

        weights = synthesize_weights(proto, tmp / f"{name}.caffemodel", seed=0)
    else:
        weights = SHARED / weights
    base = embed_preprocessing(caffe_to_onnx(proto, weights, outputs=outputs), {inp: spec})
    run_passes(base)  # the first call pays one-off imports (onnx.reference) and caches
    t0 = time.perf_counter()
    opt = run_passes(base)
    pass_ms = (time.perf_counter() - t0) * 1e3
    half = to_fp16(opt)
    shape = [d.dim_value for d in base.graph.input[0].type.tensor_type.shape.dim]
    feeds = {inp: np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)}
    row = {"model": name, "nodes": f"{len(base.graph.node)}->{len(opt.graph.node)}",
           "passes_ms": pass_ms}  # fmt: skip
    for label, ort_opt in (("ort_off", False), ("ort_all", True)):
        sessions = [_session(m, ort_opt, threads) for m in (base, opt)]
        unopt, optd = _paired_medians(sessions, feeds, iterations)
        row[label] = (unopt, optd)
    ref = _session(opt, True, threads).run(None, feeds)
    got = _session(half, True, threads).run(None, feeds)
    row["fp16_err"] = max(
        float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))
        for a, b in zip(ref, got, strict=True)
    )
    row["size"] = (opt.ByteSize(), half.ByteSize())
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, {args.threads} thread(s), median of "
          f"{args.iterations} alternating runs; latency in ms")  # fmt: skip
    head = (f"{'model':20} {'nodes':>9} {'passes':>7} | {'ORT opt off: unopt':>18} {'opt':>7} "
            f"{'ratio':>6} | {'ORT_ENABLE_ALL: unopt':>21} {'opt':>7} {'ratio':>6} | "
            f"{'FP32 bytes':>11} {'FP16 bytes':>11} {'ratio':>6} {'fp16 rel.err':>12}")  # fmt: skip
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            r = bench(name, args.iterations, args.threads, Path(tmp))
            (u0, o0), (u1, o1), (s32, s16) = r["ort_off"], r["ort_all"], r["size"]
            print(f"{name:20} {r['nodes']:>9} {r['passes_ms']:>5.0f}ms | {u0:>18.2f} {o0:>7.2f} "
                  f"{o0 / u0:>6.3f} | {u1:>21.2f} {o1:>7.2f} {o1 / u1:>6.3f} | "
                  f"{s32:>11,} {s16:>11,} {s16 / s32:>6.3f} {r['fp16_err']:>12.2e}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
