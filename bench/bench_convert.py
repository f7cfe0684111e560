"""Whole-process `zoomake convert` time and peak RSS on the real models and a VGG-16-size model.

Usage:  python bench/bench_convert.py [--models DIR] [--repeat 3] [--skip-vgg]

Each conversion runs as its own process (`python -m pipelines convert ...`), exactly as a user
types it; wall time is the median of ``--repeat`` runs and peak RSS is the child's ru_maxrss.
The floor for the big model is what any converter must pay on this machine: reading the
caffemodel's bytes and writing the ONNX file's bytes (measured here with plain file I/O, page
cache warm, fsync excluded as the converter does not fsync either).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from converters.io import len_field, varint

REPO = Path(__file__).resolve().parents[1]
REAL = ["mtcnn/det1", "mtcnn/det2", "mtcnn/det3", "mtcnn/det4", "ultraface/RFB-320",
        "ultraface/slim-320"]  # fmt: skip

VGG_CONVS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]


def vgg16_prototxt() -> str:
    layers = ['name: "VGG16-synthetic"',
              'layer { name: "data" type: "Input" top: "data" '
              "input_param { shape { dim: 1 dim: 3 dim: 224 dim: 224 } } }"]  # fmt: skip
    bottom = "data"
    for block, (ch, reps) in enumerate(VGG_CONVS, start=1):
        for r in range(1, reps + 1):
            name = f"conv{block}_{r}"
            layers.append(
                f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
                f"convolution_param {{ num_output: {ch} pad: 1 kernel_size: 3 }} }}"
            )
            layers.append(
                f'layer {{ name: "relu{block}_{r}" type: "ReLU" bottom: "{name}" top: "{name}" }}'
            )
            bottom = name
        layers.append(
            f'layer {{ name: "pool{block}" type: "Pooling" bottom: "{bottom}" top: "pool{block}" '
            f"pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}"
        )
        bottom = f"pool{block}"
    for name, n in (("fc6", 4096), ("fc7", 4096), ("fc8", 1000)):
        layers.append(
            f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" '
            f"inner_product_param {{ num_output: {n} }} }}"
        )
        bottom = name
    layers.append(f'layer {{ name: "prob" type: "Softmax" bottom: "{bottom}" top: "prob" }}')
    return "\n".join(layers) + "\n"


def _field(num: int, payload: bytes) -> bytes:
    return len_field(num, len(payload)) + payload


def _blob(arr: np.ndarray) -> bytes:
    dims = b"".join(varint(d) for d in arr.shape)
    shape = _field(1, dims)  # BlobShape.dim, packed
    data = arr.astype("<f4").tobytes()
    return _field(7, shape) + len_field(5, len(data)) + data


def write_vgg16_caffemodel(path: Path, seed: int = 0) -> int:
    """Stream a VGG-16-shaped caffemodel (138 M float32 weights) to ``path``; returns its size.

    Written directly in protobuf wire format (NetParameter.layer=100, LayerParameter name=1,
    type=2, blobs=7) one layer at a time so the generator itself needs little memory.
    """
    rng = np.random.default_rng(seed)
    shapes = []
    cin = 3
    for block, (ch, reps) in enumerate(VGG_CONVS, start=1):
        for r in range(1, reps + 1):
            shapes.append((f"conv{block}_{r}", "Convolution", (ch, cin, 3, 3), ch))
            cin = ch
    shapes += [("fc6", "InnerProduct", (4096, 512 * 7 * 7), 4096),
               ("fc7", "InnerProduct", (4096, 4096), 4096),
               ("fc8", "InnerProduct", (1000, 4096), 1000)]  # fmt: skip
    with open(path, "wb") as f:
        for name, typ, wshape, nout in shapes:
            w = rng.standard_normal(wshape, dtype=np.float32) * np.float32(0.01)
            b = rng.standard_normal(nout, dtype=np.float32) * np.float32(0.01)
            body = _field(1, name.encode()) + _field(2, typ.encode())
            blobs = _field(7, _blob(w)) + _field(7, _blob(b))
            f.write(len_field(100, len(body) + len(blobs)) + body + blobs)
    return path.stat().st_size


def run_convert(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of one `python -m pipelines convert` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "convert", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"convert failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss * 1024


def floor_io(src: Path, nbytes: int, tmp: Path) -> float:
    """Seconds to read ``src`` and write ``nbytes`` to a new file: the I/O any converter pays."""
    t0 = time.perf_counter()
    with open(src, "rb") as f:
        data = f.read()
    with open(tmp / "floor.bin", "wb") as f:
        f.write(data[:nbytes] if nbytes <= len(data) else data + bytes(nbytes - len(data)))
    elapsed = time.perf_counter() - t0
    (tmp / "floor.bin").unlink()
    return elapsed


def baseline_python() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import onnx, numpy"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=REPO.parent / "shared" / "models")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-vgg", action="store_true")
    ap.add_argument("--write-vgg", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_vgg:
        write_vgg16_caffemodel(args.write_vgg)
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        print(f"interpreter + `import onnx, numpy` alone: {baseline_python():.3f} s\n")
        print(f"{'model':22} {'weights MB':>10} {'median s':>9} {'min s':>7} {'peak RSS MB':>12}")
        for name in REAL:
            proto, weights = args.models / f"{name}.prototxt", args.models / f"{name}.caffemodel"
            out = tmp / "out.onnx"
            runs = [run_convert(["--prototxt", str(proto), "--caffemodel", str(weights),
                                 "-o", str(out)]) for _ in range(args.repeat)]  # fmt: skip
            times = [t for t, _ in runs]
            print(
                f"{name:22} {weights.stat().st_size / 1e6:10.2f} {statistics.median(times):9.3f} "
                f"{min(times):7.3f} {max(r for _, r in runs) / 1e6:12.1f}"
            )
        if args.skip_vgg:
            return
        proto = tmp / "vgg16.prototxt"
        proto.write_text(vgg16_prototxt())
        weights = tmp / "vgg16.caffemodel"
        # In a child process: Linux carries a parent's peak RSS into children it forks (the
        # high-water mark survives exec), so generating 550 MB here would inflate the figures.
        subprocess.run([sys.executable, __file__, "--write-vgg", str(weights)], check=True)
        size = weights.stat().st_size
        out = tmp / "vgg16.onnx"
        runs = [run_convert(["--prototxt", str(proto), "--caffemodel", str(weights),
                             "-o", str(out)]) for _ in range(args.repeat)]  # fmt: skip
        times = [t for t, _ in runs]
        peak = max(r for _, r in runs)
        floor = min(floor_io(weights, out.stat().st_size, tmp) for _ in range(args.repeat))
        print(
            f"{'vgg16-synthetic':22} {size / 1e6:10.2f} {statistics.median(times):9.3f} "
            f"{min(times):7.3f} {peak / 1e6:12.1f}"
        )
        print(
            f"\nVGG-16 size: caffemodel {size / 1e6:.1f} MB, ONNX {out.stat().st_size / 1e6:.1f} MB"
        )
        print(f"peak RSS / weight bytes: {peak / size:.2f}x (target < 3x)")
        print(
            f"I/O floor (read caffemodel + write ONNX bytes): {floor:.3f} s; "
            f"convert is {statistics.median(times) / floor:.1f}x the floor"
        )


if __name__ == "__main__":
    main()
