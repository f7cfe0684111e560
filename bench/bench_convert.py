"""Whole-process `zoomake convert` time and peak RSS on the real models and a VGG-16-size model.

Usage:  python bench/bench_convert.py [--models DIR] [--repeat 3] [--skip-vgg] [--skip-real]
                                    [--skip-cli] [--skip-build] [--baseline main]
                                    [--baseline-python /work/main/.venv/bin/python]

Each conversion runs as its own process (`python -m pipelines convert ...`), exactly as a user
types it; wall time is the median of ``--repeat`` runs and peak RSS is the child's ru_maxrss.
The floor for the big model is what any converter must pay on this machine: reading the
caffemodel's bytes and writing the ONNX file's bytes (measured here with plain file I/O, page
cache warm, no fsync: zoomake's writes do fsync their outputs, ``converters.io``, and that
cost is in the measured times), per output: the caffemodel read plus the output's bytes
(``.onnx``, or ``.xml`` + ``.bin``) written.

The big model is converted four ways (ONNX, OpenVINO IR, FP16 ONNX, FP16 OpenVINO IR) by this
worktree and by ``--baseline`` (``git archive`` of its code, run from a temporary folder), runs
of the two alternating in the same loop, so both see the same machine load; the table gives
each median as a multiple of its floor and peak RSS as a multiple of the weights' bytes.

A second table does the same for the build's own stages (``pipelines.build.actions``: what
``doit`` runs for a recipe): convert (with mean/std preprocessing, as the zoo's recipes have),
optimize (the default passes), and the exports to ONNX, FP16 ONNX, OpenVINO IR and FP16 IR,
each stage in its own process reading the previous stage's file; its floor is reading that
input and writing the stage's output bytes, and old and new outputs are compared by sha256.

``--baseline-python`` runs the old side with another interpreter (the baseline's own virtual
environment: its dependency versions, e.g. a slower ``ml_dtypes``); by default both sides run
with this one, so the table compares the code alone. "start s" is always this interpreter's.
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


PYTHON = {"old": sys.executable, "new": sys.executable}  # --baseline-python sets "old"


def run_convert(
    args: list[str], root: Path = REPO, python: str = sys.executable
) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of one `python -m pipelines convert` process."""
    env = dict(os.environ, PYTHONPATH=str(root))
    t0 = time.perf_counter()
    # The conversion alone: a tree whose convert verifies (pipelines/cli/cmd_convert.py) skips that.
    verifies = ("convert_cli.py", "cli/cmd_convert.py")  # before and after pipelines/cli/
    no_verify = ["--no-verify"] if any((root / "pipelines" / f).is_file() for f in verifies) else []
    proc = subprocess.Popen([python, "-m", "pipelines", "convert", *no_verify, *args],
                            cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"convert failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss * 1024


def floor_io(src: Path, nbytes: int, tmp: Path) -> float:
    """Seconds to read ``src`` and write ``nbytes`` to a new file: the I/O any converter pays.

    Measured in a child process: Linux carries a parent's peak RSS into the children it forks
    later (the high-water mark survives exec), so holding the bytes here would inflate every
    conversion's peak RSS measured after it.
    """
    code = "import sys, bench_convert as b; print(b._floor_io(*sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "bench")]))
    cmd = [sys.executable, "-c", code, str(src), str(nbytes), str(tmp)]
    return float(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)


def _floor_io(src: str, nbytes: str, tmp: str) -> float:
    src, nbytes, tmp = Path(src), int(nbytes), Path(tmp)
    t0 = time.perf_counter()
    with open(src, "rb") as f:
        data = f.read()
    with open(tmp / "floor.bin", "wb") as f:
        f.write(data[:nbytes] if nbytes <= len(data) else data + bytes(nbytes - len(data)))
    elapsed = time.perf_counter() - t0
    (tmp / "floor.bin").unlink()
    return elapsed


def baseline_tree(ref: str, tmp: Path) -> Path:
    """The code of git ``ref`` (``converters/``, ``pipelines/``, ``formats/``, ``schemas/``:
    those it has) unpacked under ``tmp``: without its own ``formats/`` the baseline would
    import this worktree's."""
    root = tmp / "baseline"
    root.mkdir()
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", ref],
                            check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    dirs = [d for d in ("converters", "pipelines", "formats", "schemas") if d in listed]
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, *dirs],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


BIG_OUTPUTS = [("onnx", "vgg16.onnx", []), ("openvino", "vgg16.xml", []),
               ("fp16 onnx", "vgg16.onnx", ["--fp16"]), ("fp16 openvino", "vgg16.xml", ["--fp16"])]  # fmt: skip


def _output_bytes(out: Path) -> int:
    files = [out, out.with_suffix(".bin")] if out.suffix == ".xml" else [out]
    return sum(f.stat().st_size for f in files)


SAME = r"""
import re, sys
from pathlib import Path
a, b = Path(sys.argv[1]), Path(sys.argv[2])
if a.suffix == ".onnx":
    import onnx
    print("same model" if onnx.load(a) == onnx.load(b) else "DIFFERENT")
else:
    def masked(p):
        return re.sub(r' name="[^"]*"', "", p.read_text())
    same_bin = a.with_suffix(".bin").read_bytes() == b.with_suffix(".bin").read_bytes()
    same_xml = a.read_text() == b.read_text()
    print("same IR" if same_bin and same_xml else
          "same .bin, .xml but names" if same_bin and masked(a) == masked(b) else "DIFFERENT")
"""


def same_output(a: Path, b: Path) -> str:
    """Old and new output compared as models, in a child (see floor_io on peak RSS)."""
    r = subprocess.run([sys.executable, "-c", SAME, str(a), str(b)], check=True,
                       capture_output=True, text=True)  # fmt: skip
    return r.stdout.strip()


def _head(first: str, width: int) -> None:
    head = (f"{first:{width}} {'floor s':>7} {'start s':>7} | {'old s':>6} {'x floor':>7} "
            f"{'RSS/w':>5} | {'new s':>6} {'x floor':>7} {'-start':>6} {'RSS/w':>5} | "
            f"{'old/new':>7} old vs new")  # fmt: skip
    print(head)
    print("-" * len(head))


def _row(label: str, width: int, floors, starts, runs: dict, size: int, same: str) -> None:
    """One row: medians of the floors, start-ups and old/new times; peak RSS over the runs."""
    floor, start = statistics.median(floors), statistics.median(starts)
    o = statistics.median(t for t, _ in runs["old"])
    n = statistics.median(t for t, _ in runs["new"])
    orss = max(r for _, r in runs["old"]) / size
    nrss = max(r for _, r in runs["new"]) / size
    print(f"{label:{width}} {floor:7.2f} {start:7.2f} | {o:6.2f} {o / floor:7.2f} {orss:5.2f} | "
          f"{n:6.2f} {n / floor:7.2f} {(n - start) / floor:6.2f} {nrss:5.2f} | "
          f"{o / n:7.2f} {same}", flush=True)  # fmt: skip


def big_model_table(proto: Path, weights: Path, tmp: Path, repeat: int, baseline: str) -> None:
    size = weights.stat().st_size
    old_root = baseline_tree(baseline, tmp)
    print(f"\nVGG-16 size ({size / 1e6:.1f} MB of weights): old = {baseline}, new = this "
          f"worktree; medians of {repeat} rounds, each round: floor, start-up, old, new; "
          f"old runs {PYTHON['old']}, new {PYTHON['new']}")  # fmt: skip
    _head("output", 14)
    for label, name, flags in BIG_OUTPUTS:
        runs: dict[str, list[tuple[float, int]]] = {"old": [], "new": []}
        floors, starts = [], []
        for _ in range(repeat):
            for which, root in (("old", old_root), ("new", REPO)):
                out = tmp / which / name
                out.parent.mkdir(exist_ok=True)
                args = ["--prototxt", str(proto), "--caffemodel", str(weights), *flags]
                files = [out, out.with_suffix(".bin")] if out.suffix == ".xml" else [out]
                for f in files:  # a first conversion: no 550 MB old output to free on rename
                    f.unlink(missing_ok=True)
                runs[which].append(run_convert([*args, "-o", str(out)], root, PYTHON[which]))
            floors.append(floor_io(weights, _output_bytes(tmp / "new" / name), tmp))
            starts.append(baseline_python())
        same = same_output(tmp / "old" / name, tmp / "new" / name)
        _row(label, 14, floors, starts, runs, size, same)
    print(
        "floor: read the caffemodel + write the output's bytes, plain file I/O; start: the "
        "interpreter + `import onnx, numpy`;\n-start: (new - start) / floor; RSS/w: peak "
        "RSS / weight bytes; old vs new: compared as models (IR: .bin bytes, .xml text)"
    )


# -- the build's path: the doit actions of one model, one child process per stage ------------
BUILD_INPUTS = {"data": {"shape": [1, 3, 224, 224],
                         "preprocess": {"mean": [103.94, 116.78, 123.68], "std": 58.0}}}  # fmt: skip
BUILD_TARGETS = {"onnx": {"format": "onnx", "precision": "fp32", "opset": 17},
                 "onnx-fp16": {"format": "onnx", "precision": "fp16", "opset": 17},
                 "openvino": {"format": "openvino", "precision": "fp32"},
                 "openvino-fp16": {"format": "openvino", "precision": "fp16"}}  # fmt: skip
ACTION = r"""
import json, sys
from pipelines.build import actions
getattr(actions, sys.argv[1])(*json.loads(sys.argv[2]))
"""


def _sha256(path: Path) -> str:
    from pipelines.safe_read import hash_stream

    with open(path, "rb") as f:
        return hash_stream(f, os.fstat(f.fileno()).st_size)[0]


def vgg_recipe(proto: Path, weights: Path) -> dict:
    """A recipe as the build loads it: the VGG files, mean/std preprocessing, four targets."""

    def ref(p: Path) -> dict:
        return {"url": f"https://example.invalid/vgg16/{p.name}", "sha256": _sha256(p),
                "size": p.stat().st_size}  # fmt: skip

    return {"source": {"framework": "caffe", "prototxt": ref(proto), "caffemodel": ref(weights)},
            "inputs": BUILD_INPUTS, "targets": BUILD_TARGETS}  # fmt: skip


def run_action(
    root: Path, build: Path, name: str, args: list, python: str = sys.executable
) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of one build action (``pipelines.build.actions``) run in
    its own process, as a doit worker runs it (start-up and imports included)."""
    import json

    env = dict(os.environ, PYTHONPATH=str(root), ZOOMAKE_BUILD=str(build))
    t0 = time.perf_counter()
    proc = subprocess.Popen([python, "-c", ACTION, name, json.dumps(args)], cwd=root,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{name} failed ({root}): {proc.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


def build_stages(build: Path) -> list[tuple[str, str, list, Path, list[Path]]]:
    """(label, action, its arguments after the recipe/target, input file, output files)."""
    model = build / "vgg16"
    conv, opt = model / "convert" / "model.onnx", model / "optimize" / "model.onnx"
    stages = [("convert", "act_convert", [str(conv)], None, [conv]),
              ("optimize", "act_optimize", [str(conv), str(opt)], conv, [opt])]  # fmt: skip
    for name, target in BUILD_TARGETS.items():
        files = ["model.onnx"] if target["format"] == "onnx" else ["model.xml", "model.bin"]
        stages.append((f"export {name}", "act_export", [str(opt), str(model / name)], opt,
                       [model / name / f for f in files]))  # fmt: skip
    return stages


def doit_table(proto: Path, weights: Path, tmp: Path, repeat: int, baseline: str) -> None:
    """Each stage of the build for the VGG-size model (convert, optimize, four exports) by
    ``baseline`` and by this worktree, alternating, each reading its own previous stage."""
    size = weights.stat().st_size
    recipe = vgg_recipe(proto, weights)
    old_root = tmp / "baseline" if (tmp / "baseline").is_dir() else baseline_tree(baseline, tmp)
    roots = {"old": old_root, "new": REPO}
    builds = {}
    for which in roots:
        src = tmp / which / "build" / "vgg16" / "source"
        src.mkdir(parents=True)
        for f in (proto, weights):
            os.link(f, src / f.name)
        builds[which] = tmp / which / "build"
    hashes = [floor_hash(weights) for _ in range(repeat)]
    print(f"\nThe build's stages (pipelines.build.actions, one process each) on the same model "
          f"with mean/std preprocessing; old = {baseline}, new = this worktree; medians of "
          f"{repeat} rounds; convert re-hashes the caffemodel (sha256 alone: "
          f"{statistics.median(hashes):.2f} s)")  # fmt: skip
    _head("stage", 20)
    for k, (label, action, _, _, _) in enumerate(build_stages(builds["new"])):
        runs: dict[str, list[tuple[float, int]]] = {"old": [], "new": []}
        floors, starts = [], []
        for _ in range(repeat):
            for which, root in roots.items():
                _, _, args, src, outs = build_stages(builds[which])[k]
                for f in outs:  # a first write: no 550 MB old output to free on rename
                    f.unlink(missing_ok=True)
                first = recipe if action != "act_export" else BUILD_TARGETS[label.split()[1]]
                lead = ["vgg16", recipe] if action == "act_convert" else [first]
                runs[which].append(
                    run_action(root, builds[which], action, [*lead, *args], PYTHON[which])
                )
            _, _, _, src, outs = build_stages(builds["new"])[k]
            floors.append(floor_io(src or weights, sum(f.stat().st_size for f in outs), tmp))
            starts.append(baseline_python())
        old_outs = build_stages(builds["old"])[k][4]
        same = all(_sha256(a) == _sha256(b) for a, b in zip(old_outs, outs, strict=True))
        _row(label, 20, floors, starts, runs, size, "same bytes" if same else "DIFFERENT")
    print(
        "floor: read the stage's input (the caffemodel, or the previous stage's model.onnx) + "
        "write its output's bytes;\n-start: (new - interpreter start-up) / floor; RSS/w: peak "
        "RSS / weight bytes; old vs new: sha256 of every output file"
    )


def floor_hash(path: Path) -> float:
    """Seconds to sha256 ``path`` in a child process (see floor_io on peak RSS)."""
    code = "import sys, bench_convert as b; print(b._hash_seconds(sys.argv[1]))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "bench")]))
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return float(out)


def _hash_seconds(path: str) -> float:
    t0 = time.perf_counter()
    _sha256(Path(path))
    return time.perf_counter() - t0


def baseline_python() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import onnx, numpy"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=REPO.parent / "shared" / "models")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-vgg", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-cli", action="store_true", help="no `zoomake convert` VGG table")
    ap.add_argument("--skip-build", action="store_true", help="no build-stage VGG table")
    ap.add_argument("--baseline", default="main", help="git ref to compare the big model with")
    ap.add_argument("--baseline-python", help="interpreter of the old side (default: this one)")
    ap.add_argument("--write-vgg", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_python:
        PYTHON["old"] = args.baseline_python
    if args.write_vgg:
        write_vgg16_caffemodel(args.write_vgg)
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        print(f"interpreter + `import onnx, numpy` alone: {baseline_python():.3f} s\n")
        print(f"{'model':22} {'weights MB':>10} {'median s':>9} {'min s':>7} {'peak RSS MB':>12}")
        for name in [] if args.skip_real else REAL:
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
        if not args.skip_cli:
            big_model_table(proto, weights, tmp, args.repeat, args.baseline)
        if not args.skip_build:
            doit_table(proto, weights, tmp, args.repeat, args.baseline)


if __name__ == "__main__":
    main()
