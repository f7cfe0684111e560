"""Seeded fuzzing of zoomake's five input kinds through the real CLI, in this process.

A case is ``(kind, index)``; its input is derived from the seeds with ``random.Random`` seeded by
``"<seed>:<kind>:<index>"``, so any failure is reproduced by its case name and the run's seed
(``python bench/fuzz.py --kind caffemodel --index 123 --seed 0``). ``bench/fuzz.py`` also
seeds from Ultra-Light-Fast's slim-320 (Caffe and ONNX); the suite keeps to the small models.
Kinds:

- ``prototxt``: mutated network text (numbers swapped for zeros, negatives, huge or fractional
  values and words; layers deleted, duplicated or swapped; lines dropped or repeated; types,
  bottoms and tops renamed; byte flips and truncation), converted with the real weights;
- ``caffemodel``: mutated MTCNN det1 weights (byte flips, truncation, inserted or deleted runs,
  varint and length corruption), converted with their prototxt;
- ``onnx``: a converted model, mutated structurally (attributes, dims, initializer data,
  opset, deleted or duplicated nodes, renamed values, bad UTF-8) or as bytes, converted to ONNX
  or to Caffe;
- ``recipe``: the zoo's recipes, mutated as YAML values (wrong types, zeros, negatives, huge
  numbers, missing and unknown keys) or as text, run through ``zoomake validate`` and, when
  valid, through every doit task creator (what ``doit list`` reads);
- ``cli``: random ``zoomake convert`` flag combinations and values on the real models.

Each case runs ``pipelines.cli.main.main`` with its output in an empty directory and is judged:
``ok`` (exit 0, every output present and loadable), ``error`` (exit 1 with a one-line
``zoomake: error:`` message), ``usage`` (argparse's exit 2), or a failure: ``traceback`` (an
exception escaped ``main``), ``internal`` (main reported a bug: ``internal error``), ``partial``
(a failed run left a file behind, or a successful one left a temporary or an unloadable
output), ``multiline`` (an error message of more than one line) or ``hang`` (over the per-case
timeout).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import random
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KINDS = ("prototxt", "caffemodel", "onnx", "recipe", "cli")
FAILURES = ("traceback", "internal", "partial", "multiline", "hang")

_HUGE_INTS = [2**31 - 1, 2**31, 2**32, 2**40, 2**63 - 1, 10**30]
_WEIRD_NUMBERS = ["0", "-1", "-7", "1", "2", "3", "1000", "65536", "0.5", "-0.0", "1e30",
                  "-1e30", "nan", "inf"] + [str(v) for v in _HUGE_INTS]  # fmt: skip
_WORDS = ["true", "false", "MAX", "AVE", "SUM", "FLOOR", "data", "conv1", '"x"', '""', "{", "}"]


def models_dir() -> Path:
    shared = os.environ.get("ZOOMAKE_SHARED") or REPO.parent / "shared"
    return Path(shared).resolve() / "models"


@dataclass
class Seeds:
    """The unmutated inputs every case starts from (read once)."""

    prototxts: list[tuple[str, str, Path | None]]  # (name, text, caffemodel or None)
    det1_prototxt: Path
    det1_caffemodel: Path
    det1_weights: bytes
    onnx_models: list[bytes]
    recipes: list[tuple[str, str]]  # (file name, text)

    @classmethod
    def load(cls, work: Path, with_slim: bool = False) -> Seeds:
        mtcnn = models_dir() / "mtcnn"
        det1_proto, det1_model = mtcnn / "det1.prototxt", mtcnn / "det1.caffemodel"
        layers = HERE / "seed_layers.prototxt"
        prototxts = [
            ("det1", det1_proto.read_text(), det1_model),
            ("det2", (mtcnn / "det2.prototxt").read_text(), mtcnn / "det2.caffemodel"),
            ("layers", layers.read_text(), None),
        ]
        if with_slim:  # 42 convolutions: ten times det1's conversion time, so off in the suite
            ultra = models_dir() / "ultraface"
            prototxts.append(("slim", (ultra / "slim-320.prototxt").read_text(),
                              ultra / "slim-320.caffemodel"))  # fmt: skip
        from converters.caffe.convert import caffe_to_onnx

        onnx_models = [
            caffe_to_onnx(det1_proto, det1_model).SerializeToString(),
            caffe_to_onnx(layers).SerializeToString(),
        ]
        if with_slim:  # a PyTorch export (shape subgraphs, Transpose/Reshape heads)
            name = "ultraface/version-slim-320_without_postprocessing.onnx"
            onnx_models.append((models_dir() / name).read_bytes())
        recipes = [(p.name, p.read_text()) for p in sorted((REPO / "recipes").glob("*.yaml"))]
        return cls(prototxts, det1_proto, det1_model, det1_model.read_bytes(), onnx_models,
                   recipes)  # fmt: skip


# -- mutations -----------------------------------------------------------------------------------
def mutate_bytes(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    """Byte flips, random bytes, truncation, inserted, deleted and duplicated runs."""
    buf = bytearray(data)
    for _ in range(rounds or rng.choice([1, 1, 1, 2, 3, 8])):
        if not buf:
            buf += bytes([rng.randrange(256)])
            continue
        op = rng.randrange(7)
        i = rng.randrange(len(buf))
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif op == 2:
            del buf[i:]
        elif op == 3:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4:
            del buf[i : i + rng.randint(1, 64)]
        elif op == 5:
            n = rng.randint(1, 64)
            buf[i:i] = buf[i : i + n]
        else:  # a varint of maximal length: corrupts protobuf lengths and field keys
            buf[i : i + 1] = b"\xff" * rng.randint(2, 10) + b"\x01"
    return bytes(buf)


def _layer_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every top-level ``layer {...}`` / ``layers {...}`` block."""
    spans = []
    for m in re.finditer(r"^\s*layers? \{", text, re.M):
        depth, j = 0, m.end() - 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    spans.append((m.start(), j + 1))
                    break
            j += 1
    return spans


def _layer_types() -> list[str]:
    from converters.caffe.registry import supported_types

    return [info.type_name for info in supported_types()]


def mutate_prototxt(rng: random.Random, text: str) -> str:
    for _ in range(rng.choice([1, 1, 2, 3])):
        op = rng.randrange(12)
        numbers = list(re.finditer(r"(?<=: )-?[0-9][0-9.e+-]*", text))
        spans = _layer_spans(text)
        if op <= 2 and numbers:  # the most productive one: a number becomes something odd
            m = rng.choice(numbers)
            text = text[: m.start()] + rng.choice(_WEIRD_NUMBERS) + text[m.end() :]
        elif op == 3 and spans:
            a, b = rng.choice(spans)
            text = text[:a] + text[b:]
        elif op == 4 and spans:
            a, b = rng.choice(spans)
            text = text[:b] + "\n" + text[a:b] + text[b:]
        elif op == 5 and len(spans) >= 2:
            (a1, b1), (a2, b2) = sorted(rng.sample(spans, 2))
            text = text[:a1] + text[a2:b2] + text[b1:a2] + text[a1:b1] + text[b2:]
        elif op == 6:
            lines = text.splitlines()
            i = rng.randrange(len(lines))
            if rng.random() < 0.5:
                del lines[i]
            else:
                lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == 7:  # rename a type, bottom, top or name
            fields = list(re.finditer(r'(type|bottom|top|name): "([^"]*)"', text))
            if fields:
                m = rng.choice(fields)
                new = rng.choice(["Convolution", "Pooling", "InnerProduct", "Softmax", "Concat",
                                  "Eltwise", "PriorBox", "Reshape", "Nope", "", "data", "prob1",
                                  "conv1", "\\xff", m.group(2) * 2])  # fmt: skip
                text = text[: m.start(2)] + new + text[m.end(2) :]
        elif op == 8 and numbers:  # an enum or word where a number was
            m = rng.choice(numbers)
            text = text[: m.start()] + rng.choice(_WORDS) + text[m.end() :]
        elif op == 9:  # a layer becomes another supported type, keeping its bottoms and params
            types = list(re.finditer(r'type: "([^"]*)"', text))
            if types:
                m = rng.choice(types)
                text = text[: m.start(1)] + rng.choice(_layer_types()) + text[m.end(1) :]
        elif op == 10 and spans:  # a new layer of any supported type reading existing blobs
            blobs = sorted(set(re.findall(r'top: "([^"]*)"', text)) | {"data"})
            picked = rng.sample(blobs, min(len(blobs), rng.randint(1, 2)))
            bottoms = " ".join(f'bottom: "{b}"' for b in picked)
            layer = (f'\nlayer {{ name: "fz" type: "{rng.choice(_layer_types())}" {bottoms} '
                     f'top: "fz" }}\n')  # fmt: skip
            at = rng.choice(spans)[1]
            text = text[:at] + layer + text[at:]
        else:
            raw = mutate_bytes(rng, text.encode("utf-8", errors="surrogateescape"), rounds=1)
            text = raw.decode("utf-8", errors="surrogateescape")
    return text


def mutate_caffemodel(rng: random.Random, data: bytes) -> bytes:
    if rng.random() < 0.5:  # keep the framing, corrupt a blob's declared shape or a count
        buf = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            # BlobShape.dim (field 1, packed): find `0a <len>` runs and poke a varint inside.
            hits = [m.start() for m in re.finditer(rb"\x3a.\x0a", bytes(buf))]
            if hits:
                at = rng.choice(hits)
                i = at + 4 + rng.randrange(max(1, buf[at + 3]))  # a byte of the packed dims
                if i < len(buf) and buf[i] < 0x80:  # keep it a one-byte varint: framing stays
                    buf[i] = rng.choice([0, 1, 2, 0x7F, rng.randrange(128)])
        return bytes(buf)
    return mutate_bytes(rng, data)


def mutate_onnx(rng: random.Random, data: bytes) -> bytes:
    import onnx
    from onnx import TensorProto

    if rng.random() < 0.3:
        return mutate_bytes(rng, data)
    model = onnx.ModelProto.FromString(data)
    g = model.graph
    for _ in range(rng.choice([1, 1, 2])):
        op = rng.randrange(11)
        node = rng.choice(g.node) if g.node else None
        if op <= 2 and node is not None and node.attribute:
            attr = rng.choice(node.attribute)
            value = rng.choice([0, -1, 1, 3, 2**31, 2**33, 2**62])
            if attr.ints:
                attr.ints[rng.randrange(len(attr.ints))] = value
            elif attr.type == onnx.AttributeProto.INT:
                attr.i = value
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = rng.choice([0.0, -1.0, 1e30, float("nan")])
        elif op == 3 and g.initializer:
            t = rng.choice(g.initializer)
            if t.dims:
                t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 2, 3, 2**31, -1])
        elif op == 4 and g.initializer:
            t = rng.choice(g.initializer)
            t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data) + 1)]
        elif op == 5 and node is not None:
            g.node.remove(node)
        elif op == 6 and node is not None:
            g.node.append(node)
        elif op == 7 and node is not None and node.input:
            node.input[rng.randrange(len(node.input))] = rng.choice(["", "nope", g.input[0].name])
        elif op == 8 and g.input:
            dims = g.input[0].type.tensor_type.shape.dim
            if dims:
                dims[rng.randrange(len(dims))].dim_value = rng.choice([0, 1, 2, 5, 2**31])
        elif op == 9:
            model.opset_import[0].version = rng.choice([1, 6, 12, 18, 21, 99, 10**6])
        elif node is not None:
            node.op_type = rng.choice(["Conv", "Relu", "Nope", "Reshape", "Softmax", "Add"])
        if rng.random() < 0.05 and g.initializer:
            t = rng.choice(g.initializer)
            t.data_location = TensorProto.EXTERNAL
            entry = t.external_data.add()
            entry.key, entry.value = "location", rng.choice(["../x.bin", "/etc/hostname", "w.bin"])
    out = model.SerializeToString()
    if rng.random() < 0.05 and g.node:  # a name that is not UTF-8
        name = g.node[0].op_type.encode()
        out = out.replace(name, b"\xff" + name[1:], 1)
    return out


_YAML_VALUES = [None, 0, -1, 1, 2**31, 2**64, 1e308, -0.5, "", "x", "a" * 300, True, [], [0],
                [1, 2, 3], {}, {"k": 1}, "../../etc/passwd", "file:///dev/null", [1, 3, 0, 12]]  # fmt: skip


def _yaml_value(rng: random.Random):
    # A copy: a shared list or dict would be mutated by later steps and could come to hold
    # itself (a cyclic document).
    return copy.deepcopy(rng.choice(_YAML_VALUES))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def mutate_recipe(rng: random.Random, text: str) -> str:
    if rng.random() < 0.25:
        return mutate_bytes(rng, text.encode(), rounds=rng.randint(1, 3)).decode(
            "utf-8", errors="replace"
        )
    doc = yaml.safe_load(text)
    for _ in range(rng.choice([1, 1, 2, 3])):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        op = rng.randrange(4)
        if op == 0 and isinstance(parent, dict):
            del parent[last]
        elif op == 1 and isinstance(parent, dict):
            parent[rng.choice(["extra", "shape", "url", "size", "format"])] = _yaml_value(rng)
        else:
            parent[last] = _yaml_value(rng)
    return yaml.safe_dump(doc, sort_keys=False)


def cli_argv(rng: random.Random, seeds: Seeds, work: Path, out: Path) -> list[str]:
    """A random ``zoomake convert`` command on the real det1 model or a seed ONNX."""
    argv = ["convert"]
    if rng.random() < 0.75:
        argv += ["--prototxt", str(seeds.det1_prototxt)]
        if rng.random() < 0.9:
            argv += ["--caffemodel", str(seeds.det1_caffemodel)]
    else:
        src = work / "in.onnx"
        src.write_bytes(seeds.onnx_models[0])
        argv += ["--onnx", str(src)]
    suffix = rng.choice([".onnx", ".onnx", ".onnx", ".prototxt", ".txt", "", ".ONNX"])
    target = out / f"model{suffix}"
    if rng.random() < 0.03:
        target.mkdir()  # -o names an existing directory
    argv += ["-o", str(target)]
    numbers = ["0", "1", "-1", "127.5", "1e30", "nan", "inf", "x", "", ",", "1,2", "1,2,3",
               "1,2,3,4", "255,255,255"]  # fmt: skip
    flags = {
        "--to": lambda: rng.choice(["onnx", "caffe", "openvino2", ""]),
        "--input-shape": lambda: rng.choice(
            [
                "data=1,3,12,12",
                "data=1,3,12",
                "data=1,3,24,24",
                "data=0,3,12,12",
                "data=1,3,1,1",
                "data=1,3,2,2",
                "data=1,3,100000,1",
                "x=1,3,12,12",
                "data=",
                "=1,2",
                "data=1x3x12x12",
                "data=1,3,12,12,1",
                "data=1,2,12,12",
                "data=2,3,13,17",
            ]
        ),
        "--outputs": lambda: rng.choice(
            ["prob1", "conv4-2,prob1", "conv1", "nope", ",", "data", "conv4-1", "prob1,prob1"]
        ),
        "--opset": lambda: rng.choice(["13", "17", "18", "0", "-1", "12", "99", "x"]),
        "--input": lambda: rng.choice(["data", "nope", ""]),
        "--mean": lambda: rng.choice(numbers),
        "--scale": lambda: rng.choice(numbers),
        "--std": lambda: rng.choice(numbers),
        "--reverse-channels": None,
        "--input-layout": lambda: rng.choice(["NCHW", "NHWC", "nchw"]),
        "--input-dtype": lambda: rng.choice(["float32", "uint8", "int8"]),
        "--optimize": lambda: rng.choice(["", "default", "nope", "fold_batchnorm"]),
        "--fp16": None,
    }
    for flag in rng.sample(sorted(flags), rng.randint(0, 5)):
        value = flags[flag]
        argv += [flag] if value is None else [flag, value()]
    if rng.random() < 0.05:
        argv.append(rng.choice(["--bogus", "extra", "-o"]))
    return argv


# -- running and judging ---------------------------------------------------------------------------
class _Timeout(BaseException):
    pass


@dataclass
class Result:
    kind: str
    index: int
    verdict: str  # ok, error, usage, or one of FAILURES
    detail: str
    seconds: float

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.index}"

    @property
    def failed(self) -> bool:
        return self.verdict in FAILURES


def _odd_shape(rng: random.Random, name: str) -> str:
    dims = [rng.choice([1, 1, 2]), rng.choice([1, 3, 3, 4, 5]), *rng.choices(range(1, 41), k=2)]
    if rng.random() < 0.2:
        dims = dims[: rng.randint(1, 3)] if rng.random() < 0.5 else [*dims, 2]
    return f"{name}={','.join(map(str, dims))}"


def _prepare(kind: str, rng: random.Random, seeds: Seeds, work: Path, out: Path) -> list[str]:
    if kind == "prototxt":
        name, text, weights = rng.choice(seeds.prototxts)
        src = work / f"{name}.prototxt"
        src.write_bytes(mutate_prototxt(rng, text).encode("utf-8", errors="surrogateescape"))
        argv = ["convert", "--prototxt", str(src)]
        if weights is not None:
            argv += ["--caffemodel", str(weights)]
        if rng.random() < 0.3:  # odd sizes reach the handlers' shape arithmetic
            argv += ["--input-shape", _odd_shape(rng, "input" if name == "slim" else "data")]
        suffix = rng.choice([".onnx", ".onnx", ".onnx", ".prototxt"])
        return [*argv, "-o", str(out / f"model{suffix}")]
    if kind == "caffemodel":
        src = work / "det1.caffemodel"
        src.write_bytes(mutate_caffemodel(rng, seeds.det1_weights))
        return ["convert", "--prototxt", str(seeds.det1_prototxt), "--caffemodel", str(src),
                "-o", str(out / "model.onnx")]  # fmt: skip
    if kind == "onnx":
        src = work / "model.onnx"
        src.write_bytes(mutate_onnx(rng, rng.choice(seeds.onnx_models)))
        suffix = rng.choice([".onnx", ".prototxt"])
        argv = ["convert", "--onnx", str(src), "-o", str(out / f"model{suffix}")]
        if rng.random() < 0.2:
            argv += ["--input-shape", _odd_shape(rng, "data")]
        return argv
    if kind == "recipe":
        name, text = rng.choice(seeds.recipes)
        src = work / name
        src.write_text(mutate_recipe(rng, text))
        return ["validate", str(src)]
    if kind == "cli":
        return cli_argv(rng, seeds, work, out)
    raise ValueError(f"unknown fuzz kind {kind!r}")


def describe_tasks(recipe_path: Path) -> None:
    """What ``doit list`` does with a recipe that validates: every task creator reads it."""
    import sys

    if "pipelines.build.tasks" not in sys.modules and not os.environ.get("ZOOMAKE_BUILD"):
        # Importing the task module creates its build directory: not in the repository.
        os.environ["ZOOMAKE_BUILD"] = str(recipe_path.parent.parent / "build")
        try:
            from pipelines.build import tasks
        finally:
            del os.environ["ZOOMAKE_BUILD"]
    from pipelines.build import tasks
    from pipelines.recipes.load import load_recipe

    recipe = load_recipe(recipe_path)
    cached = tasks.zoo
    tasks.zoo = lambda: {recipe_path.stem: recipe}
    try:
        for creator in (tasks.task_fetch, tasks.task_convert, tasks.task_optimize,
                        tasks.task_export, tasks.task_reference, tasks.task_measure,
                        tasks.task_verify):  # fmt: skip
            list(creator())  # each reads its recipe sub-tree (stage_config) and file names
        tasks.task_report()
    finally:
        tasks.zoo = cached


def _format(argv: list[str]) -> str | None:
    """The output format a convert command asked for (``--to`` wins over -o's suffix)."""
    if "--to" in argv:
        return argv[argv.index("--to") + 1]
    out = Path(argv[argv.index("-o") + 1]) if "-o" in argv else None
    return {".onnx": "onnx", ".prototxt": "caffe"}.get(out.suffix.lower()) if out else None


def _outputs_ok(out: Path, fmt: str | None) -> str:
    """'' if every file in ``out`` is a complete, loadable artifact; else what is wrong."""
    import onnx

    for f in sorted(out.rglob("*")):
        if f.is_dir():
            continue
        if f.name.startswith(".") or f.name.endswith(".tmp"):
            return f"temporary left behind: {f.name}"
        if f.suffix == ".caffemodel":
            continue
        if fmt == "onnx":
            try:
                onnx.checker.check_model(onnx.ModelProto.FromString(f.read_bytes()))
            except Exception as exc:
                return f"{f.name} does not load: {type(exc).__name__}: {exc}"[:300]
        elif fmt == "caffe":
            from converters.caffe.prototxt import parse_prototxt

            try:
                parse_prototxt(f)
            except Exception as exc:
                return f"{f.name} does not parse: {type(exc).__name__}: {exc}"[:300]
            if not f.with_suffix(".caffemodel").is_file():
                return f"{f.name} without its .caffemodel"
    return ""


def run_case(kind: str, index: int, seeds: Seeds, root: Path, *, seed: int = 0,
             timeout: float = 30.0) -> Result:  # fmt: skip
    """Run one case in this process (main thread: the timeout uses SIGALRM)."""
    from pipelines.cli.main import main

    rng = random.Random(f"{seed}:{kind}:{index}")
    case_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-{index}-", dir=root))
    work, out = case_dir / "in", case_dir / "out"
    work.mkdir()
    out.mkdir()
    argv = _prepare(kind, rng, seeds, work, out)
    premade = {p for p in out.iterdir()}  # a directory the case made on purpose (-o DIR)
    stderr, stdout = io.StringIO(), io.StringIO()
    verdict, detail = "ok", ""

    def alarm(_signum, _frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            code = main(argv)
            if kind == "recipe" and code == 0:
                describe_tasks(Path(argv[1]))
    except _Timeout:
        code, verdict, detail = None, "hang", f"over {timeout:.0f} s"
    except SystemExit as exc:  # argparse
        code = exc.code
    except BaseException as exc:  # judging whatever escaped main() is the point
        code, verdict = None, "traceback"
        detail = f"{type(exc).__name__}: {exc}"[:400]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - t0
    err = stderr.getvalue()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if verdict == "ok":
        if "internal error" in err:  # pipelines.errors.INTERNAL_PREFIX
            verdict, detail = "internal", err.strip()[:400]
        elif code == 0:
            detail = _outputs_ok(out, _format(argv))
            verdict = "partial" if detail else "ok"
        elif code == 2:
            verdict, detail = "usage", lines[-1] if lines else ""
        elif code == 1:
            verdict, detail = "error", lines[0] if lines else ""
            errors = [ln for ln in lines if ln.startswith("zoomake: error:")]
            if kind != "recipe" and (len(errors) != 1 or len(lines) != 1):
                verdict, detail = "multiline", err.strip()[:400]
            left = [p.name for p in out.rglob("*") if p not in premade]
            if left:
                verdict, detail = "partial", f"failed run left {left}: {detail}"
        else:
            verdict, detail = "traceback", f"exit code {code}: {err.strip()[:400]}"
    if verdict in FAILURES:
        detail = f"{detail} | argv: {' '.join(argv)}"
        keep = root / "failures" / f"{kind}-{index}"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(case_dir, keep)
    shutil.rmtree(case_dir, ignore_errors=True)
    return Result(kind, index, verdict, detail, seconds)
