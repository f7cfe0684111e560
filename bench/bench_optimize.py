"""Benchmark: onnxruntime latency of optimized vs unoptimized models, and FP16 vs FP32 size.

    PYTHONPATH=. python bench/bench_optimize.py [--iterations 20] [--threads 1] [--models ...]

For each model: convert (Caffe, preprocessing as in its recipe), run the default passes, convert
the optimized model to float16. Latencies are medians over ``--iterations`` runs, the two
sessions of a pair alternating run by run in one process (same load, same machine state).
Two onnxruntime settings are reported: graph optimizations disabled (what our passes alone
save) and enabled (ORT_ENABLE_ALL, what a deployment sees; ORT folds BatchNorm itself there,
so the ratio there is near 1). ResNet-50 has no published weights here: they are synthesized
(tests/caffe/synth.py), which does not change the timing.

    PYTHONPATH=. python bench/bench_optimize.py --scaling [--baseline main] [--old-timeout 300]

How the default passes scale with graph size: an Identity chain (250 and 1000 nodes) and a
synthetic network of Conv/BatchNorm/Mul/Add/Relu/Dropout/Identity blocks with shape and dead
branches (1000 and 10,000 nodes). Each (graph, implementation) is timed in its own process: this
worktree's ``converters/`` against the baseline's (``git archive`` of ``--baseline`` into a
temporary folder), in the same run so the machine's load is shared; wall and CPU seconds of
``run_passes`` alone (imports paid before), the ratio old/new, and whether both wrote the same
bytes. A baseline run past ``--old-timeout`` is shown as ">T".
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
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

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
    from converters.caffe.convert import caffe_to_onnx
    from converters.fp16 import to_fp16
    from converters.passes import run_passes
    from converters.preprocess import embed_preprocessing

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


def identity_chain(n: int):
    """``x -> Relu -> Identity x n -> y``: every Identity goes, Relu ends up writing ``y``."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["v0"])]
    nodes += [helper.make_node("Identity", [f"v{k}"], [f"v{k + 1}"]) for k in range(n - 1)]
    nodes[-1].output[0] = "y"
    vi = [helper.make_tensor_value_info(v, TensorProto.FLOAT, [1, 8]) for v in ("x", "y")]
    return _model(helper.make_graph(nodes, f"chain{n}", vi[:1], vi[1:]))


def synthetic_net(n: int, seed: int = 0):
    """About ``n`` nodes of blocks every default pass has work in (and refusals to give).

    Block: Conv -> BatchNormalization -> Mul -> Add -> Relu -> Dropout -> Identity (7 nodes,
    the folds leave Conv -> Relu); every 4th block also reshapes to its own ``Shape`` (folded
    to a constant) and every 5th grows a dead Sigmoid; every 6th Conv output is read twice
    (by its BatchNorm and by a Sub later), so that fold is refused.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    c = 4
    nodes, inits = [], []

    def const(name, shape, offset=0.0):
        a = (rng.standard_normal(shape) * 0.1 + offset).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        return name

    h, k = "x", 0
    while len(nodes) < n:
        p = f"b{k}_"
        conv = p + "conv"
        nodes.append(
            helper.make_node(
                "Conv", [h, const(p + "W", [c, c, 1, 1]), const(p + "B", [c])], [conv], name=conv
            )
        )
        bn_in = [
            conv,
            const(p + "g", [c], 1),
            const(p + "beta", [c]),
            const(p + "m", [c]),
            const(p + "v", [c], 2),
        ]
        nodes.append(helper.make_node("BatchNormalization", bn_in, [p + "bn"]))
        nodes.append(
            helper.make_node("Mul", [p + "bn", const(p + "s", [1, c, 1, 1], 1)], [p + "mul"])
        )
        nodes.append(
            helper.make_node("Add", [p + "mul", const(p + "t", [1, c, 1, 1])], [p + "add"])
        )
        nodes.append(helper.make_node("Relu", [p + "add"], [p + "relu"]))
        nodes.append(helper.make_node("Dropout", [p + "relu"], [p + "drop"]))
        nodes.append(helper.make_node("Identity", [p + "drop"], [p + "id"]))
        h = p + "id"
        if k % 4 == 3:
            nodes.append(helper.make_node("Shape", [h], [p + "shape"]))
            nodes.append(helper.make_node("Reshape", [h, p + "shape"], [p + "rs"]))
            h = p + "rs"
        if k % 5 == 4:
            nodes.append(helper.make_node("Sigmoid", [h], [p + "dead"]))
        if k % 6 == 5:
            nodes.append(helper.make_node("Sub", [h, conv], [p + "sub"]))
            h = p + "sub"
        k += 1
    nodes[-1].output[0] = "y"
    vi = [helper.make_tensor_value_info(v, TensorProto.FLOAT, [1, c, 2, 2]) for v in ("x", "y")]
    return _model(helper.make_graph(nodes, f"synth{n}", vi[:1], vi[1:], initializer=inits))


def _model(graph):
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


SCALING = {
    "identity-chain-250": lambda: identity_chain(250),
    "identity-chain-1000": lambda: identity_chain(1000),
    "synthetic-1000": lambda: synthetic_net(1000),
    "synthetic-10000": lambda: synthetic_net(10_000),
}


def time_passes(path: str) -> None:
    """Child: run the default passes on the model at ``path``; print seconds and digest."""
    import onnx

    from converters.passes import run_passes

    run_passes(identity_chain(8))  # pay the one-off imports before the clock starts
    model = onnx.load(path)
    c0, t0 = time.process_time(), time.perf_counter()
    out = run_passes(model)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    digest = hashlib.sha256(out.SerializeToString()).hexdigest()[:12]
    print(json.dumps({"wall": wall, "cpu": cpu, "sha": digest, "nodes": len(out.graph.node)}))


def _timed_child(impl: Path, path: Path, timeout: float) -> dict | None:
    env = dict(os.environ, PYTHONPATH=str(impl))
    cmd = [sys.executable, __file__, "--time-passes", str(path), "--impl", str(impl)]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        raise SystemExit(f"{impl}: passes failed on {path.name}:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def baseline_tree(ref: str, tmp: Path) -> Path:
    """``converters/`` of git ``ref`` unpacked under ``tmp`` (no worktree, no checkout)."""
    root = tmp / "baseline"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "converters"],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def scaling(baseline: str, old_timeout: float) -> None:
    head = (f"{'graph':20} {'nodes':>12} | {'old wall s':>10} {'new wall s':>10} "
            f"{'old/new':>8} | {'old cpu s':>9} {'new cpu s':>9} {'old/new':>8} | same bytes")  # fmt: skip
    print(f"default passes, old = {baseline}, new = this worktree; one process per cell")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        old_root = baseline_tree(baseline, Path(tmp))
        for name, make in SCALING.items():
            model = make()
            path = Path(tmp) / f"{name}.onnx"
            path.write_bytes(model.SerializeToString())
            new = _timed_child(REPO, path, 3600)
            old = _timed_child(old_root, path, old_timeout)
            nodes = f"{len(model.graph.node)}->{new['nodes']}"
            if old is None:
                ow = oc = f">{old_timeout:.0f}"
                rw = f">{old_timeout / new['wall']:.0f}"
                rc = f">{old_timeout / new['cpu']:.0f}"
                same = "(old timed out)"
            else:
                ow, oc = f"{old['wall']:.3f}", f"{old['cpu']:.3f}"
                rw, rc = f"{old['wall'] / new['wall']:.1f}", f"{old['cpu'] / new['cpu']:.1f}"
                same = "yes" if old["sha"] == new["sha"] else f"NO {old['sha']} {new['sha']}"
            print(f"{name:20} {nodes:>12} | {ow:>10} {new['wall']:>10.3f} {rw:>8} | "
                  f"{oc:>9} {new['cpu']:>9.3f} {rc:>8} | {same}", flush=True)  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--scaling", action="store_true", help="pass time vs graph size")
    parser.add_argument("--baseline", default="main", help="git ref of the old passes")
    parser.add_argument("--old-timeout", type=float, default=300.0)
    parser.add_argument("--time-passes", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.time_passes:
        sys.path.insert(0, args.impl)
        time_passes(args.time_passes)
        return 0
    if args.scaling:
        scaling(args.baseline, args.old_timeout)
        return 0
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
