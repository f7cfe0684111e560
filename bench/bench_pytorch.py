"""PyTorch as a source and as a target: conversion times on the real UltraFace models.

Usage:  python bench/bench_pytorch.py [--models DIR] [--repeat 3]

Source rows: ``converters.pytorch.plugin.to_onnx`` (the format function the build calls) on
UltraFace RFB-320 and slim-320 kept three ways: the authors' code + checkpoint, TorchScript
(``torch.jit.trace`` of the same net, saved once before timing) and a ``torch.export`` archive
(``.pt2``). Each export runs in a fresh worker process, so the floor is what any PyTorch source
pays here: starting Python and importing torch (``python -c "import torch"``, measured in the
same loop). Target rows: ``from_onnx`` writing model.py + model.pth + model.pt2 from the Caffe
model's ONNX (Caffe -> ONNX by converters.caffe, timed too for scale), in this process.

Runs of every row alternate in one loop, so all see the same machine load; the table gives
the median wall time and its ratio to the floor, and the median CPU time (this process and its
finished children, user + sys: what the row costs on a loaded machine, where wall time mostly
measures the other users). The load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ULTRAFACE = {
    "RFB-320": ("vision.ssd.mb_tiny_RFB_fd:create_Mb_Tiny_RFB_fd", "version-RFB-320.pth"),
    "slim-320": ("vision.ssd.mb_tiny_fd:create_mb_tiny_fd", "version-slim-320.pth"),
}
SHAPE = {"input": [1, 3, 240, 320]}
OUTPUTS = ["scores", "boxes"]


def code_files(models: Path, name: str) -> dict:
    entry, ckpt = ULTRAFACE[name]
    code = models / "ultraface" / "pytorch"
    return {
        "entry": entry,
        "kwargs": {"num_classes": 2, "is_test": False},
        "code": code,
        "checkpoint": code / ckpt,
        "stub_modules": ["torchvision"],
    }


def save_forms(models: Path, name: str, out: Path) -> dict[str, dict]:
    """The same network as TorchScript and as a .pt2 archive, written by a worker (its code
    goes on sys.path there only)."""
    script = (
        "import sys, torch\n"
        "from converters.pytorch.worker import load\n"
        "from converters.pytorch.plugin import torch_source\n"
        "import json\n"
        "files = json.loads(sys.argv[1])\n"
        "net = load(__import__('dataclasses').asdict(torch_source(files)))\n"
        "x = torch.zeros(1, 3, 240, 320)\n"
        "with torch.no_grad():\n"
        "    torch.jit.save(torch.jit.trace(net, (x,)), sys.argv[2])\n"
        "    torch.export.save(torch.export.export(net, (x,)), sys.argv[3])\n"
    )
    import json

    files = {k: str(v) if isinstance(v, Path) else v for k, v in code_files(models, name).items()}
    pt, pt2 = out / f"{name}.pt", out / f"{name}.pt2"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script, json.dumps(files), pt, pt2],
        check=True,
        env=env,
    )
    return {"checkpoint": code_files(models, name), "torchscript": {"torchscript": pt},
            "pt2": {"pt2": pt2}}  # fmt: skip


def cpu() -> float:
    """User + sys seconds of this process and its waited-for children."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=REPO.parent / "shared" / "models")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from converters.caffe.convert import caffe_to_onnx
    from converters.pytorch.plugin import from_onnx, to_onnx

    floor = "floor: python -c 'import torch'"
    jobs = {floor: ("floor", None)}
    with tempfile.TemporaryDirectory(prefix="bench-pytorch-") as tmp:
        tmp = Path(tmp)
        for name in ULTRAFACE:
            for form, files in save_forms(args.models, name, tmp).items():
                jobs[f"source {name} {form} -> onnx"] = ("src", files)
        for name in ULTRAFACE:
            stem = args.models / "ultraface" / name
            jobs[f"caffe {name} -> onnx (for scale)"] = ("caffe", stem)
            jobs[f"target onnx -> {name} pytorch"] = ("tgt", stem)
        rows = {label: [] for label in jobs}
        onnx_of = {}
        for _ in range(args.repeat):
            for label, (kind, what) in jobs.items():
                t, c = time.perf_counter(), cpu()
                if kind == "floor":
                    subprocess.run([sys.executable, "-c", "import torch"], check=True)
                elif kind == "src":
                    to_onnx(what, SHAPE, OUTPUTS)
                elif kind == "caffe":
                    onnx_of[what] = caffe_to_onnx(
                        what.with_suffix(".prototxt"), what.with_suffix(".caffemodel"),
                        outputs=OUTPUTS,
                    )  # fmt: skip
                else:
                    out = tmp / f"target-{what.name}"
                    from_onnx(onnx_of[what], out, {"precision": "fp32"})
                rows[label].append((time.perf_counter() - t, cpu() - c))
    base = statistics.median(w for w, _ in rows[floor])
    load = os.getloadavg()
    print(f"\n{args.repeat} runs each, interleaved; load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f} on {os.cpu_count()} cores\n")  # fmt: skip
    print(f"| {'conversion':<44} | median s | x floor | CPU s |")
    print(f"|{'-' * 46}|---------:|--------:|------:|")
    for label, times in rows.items():
        med = statistics.median(w for w, _ in times)
        med_cpu = statistics.median(c for _, c in times)
        print(f"| {label:<44} | {med:8.2f} | {med / base:7.2f} | {med_cpu:5.2f} |")


if __name__ == "__main__":
    main()
