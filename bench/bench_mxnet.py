"""Benchmark: writing the MXNet target (``-symbol.json`` + ``-0000.params``) for ResNet-50 against
the floor of moving its bytes.

    PYTHONPATH=. python bench/bench_mxnet.py [--repeat 5]

ResNet-50 (``architectures/ResNet-50-deploy.prototxt``, weights synthesized as in the tests,
which does not change the timing) is converted Caffe -> ONNX and optimized with the default
passes (what a recipe's ``optimize`` stage hands the exporter), saved as ``model.onnx``. Then,
alternating in one loop so both see the same machine load (median of ``--repeat``):

- ``mxnet target``: ``converters.mxnet.export.from_onnx(Path("model.onnx"), out)`` — load the
  ONNX file, build the graph (shape inference, folding, handlers), encode both files, write
  them atomically (fsync + rename, as every artifact is written).
- ``floor``: read ``model.onnx``'s bytes and write the same number of bytes as the two
  artifact files, each to a temporary name, fsynced and renamed (the same durability).

The table gives both medians and their ratio; a phase split (load / build / encode / write) of
one extra run shows where the time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("ZOOMAKE_MIRROR") or REPO.parent / "shared" / "models")


def _floor(src: Path, sizes: list[int], out: Path) -> None:
    view = memoryview(src.read_bytes())
    for i, size in enumerate(sizes):
        tmp = out / f".floor{i}.tmp"
        with open(tmp, "wb") as f:
            written = 0
            while written < size:  # the ONNX bytes again as needed, no copies
                n = min(len(view), size - written)
                f.write(view[:n])
                written += n
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out / f"floor{i}")
    fd = os.open(out, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from converters.caffe.convert import caffe_to_onnx
    from converters.io import load_onnx, save_onnx
    from converters.mxnet import ndarray_file
    from converters.mxnet.export import build, from_onnx
    from converters.passes import run_passes
    from tests.caffe.synth import synthesize_weights

    with tempfile.TemporaryDirectory(prefix="bench-mxnet-") as tmp:
        tmp = Path(tmp)
        proto = SHARED / "architectures" / "ResNet-50-deploy.prototxt"
        weights = synthesize_weights(proto, tmp / "resnet50.caffemodel", seed=0)
        src = tmp / "model.onnx"
        save_onnx(run_passes(caffe_to_onnx(proto, weights)), src)
        out = tmp / "out"
        files = from_onnx(src, out)  # warm-up: imports, page cache
        sizes = [p.stat().st_size for p in files]
        floor_dir = tmp / "floor"
        floor_dir.mkdir()
        target_s, floor_s = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            from_onnx(src, out)
            target_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _floor(src, sizes, floor_dir)
            floor_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model = load_onnx(src)
        t1 = time.perf_counter()
        ctx = build(model)
        t2 = time.perf_counter()
        blobs = [ctx.graph.to_json().encode(), ndarray_file.chunks(ctx.graph.params)]
        t3 = time.perf_counter()
        from converters.io import write_together

        write_together([(tmp / "p-symbol.json", blobs[0]), (tmp / "p-0000.params", blobs[1])])
        t4 = time.perf_counter()

    med_t, med_f = statistics.median(target_s), statistics.median(floor_s)
    print(f"ResNet-50: model.onnx {src.name} -> symbol {sizes[0]} B + params {sizes[1]} B, "
          f"{len(ctx.graph.nodes)} MXNet nodes, {args.repeat} runs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"| {'what':<38} | {'median s':>9} |")
    print(f"|{'-' * 40}|{'-' * 11}|")
    print(f"| {'mxnet target (from_onnx, file in)':<38} | {med_t:9.3f} |")
    print(f"| {'floor (read onnx + write same bytes)':<38} | {med_f:9.3f} |")
    print(f"| {'ratio target / floor':<38} | {med_t / med_f:9.2f} |")
    print(
        f"phases (one run): load {t1 - t0:.3f} s, build {t2 - t1:.3f} s, "
        f"encode {t3 - t2:.3f} s, write {t4 - t3:.3f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
