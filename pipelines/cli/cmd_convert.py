"""``zoomake convert``: one conversion without a recipe, in zoomake's, Model Optimizer's or
mmconvert's spelling, verified like a build target and summarized.

No spelling means two things. zoomake's own flags keep their names except the multiplying
``--scale``, now ``--multiply``: ``--scale`` is Model Optimizer's (one divisor), as are
``--output`` (the outputs to cut at; the output file is ``-o``) and ``--input`` (the inputs the
other flags refer to, optionally with shapes). The README's table maps every flag to its recipe
key. Flags with the same meaning write the same destination, so ``--mean`` and
``--mean_values`` are interchangeable and accept the same values: ``104,117,123``,
``[104,117,123]``, ``(104,117,123)`` and ``data[104,117,123],info[1,2,3]``.

The converted model is written into a temporary directory beside the output, verified there
(``pipelines.verify.measure.measure``: the source model in its own framework's runtime against the
result in the target's runtime, on one seeded input, at the schema's default tolerances) and
moved into place only when it passed: a failed conversion or verification leaves no output.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from converters.io import refuse_directories
from pipelines.errors import ZoomakeError

log = logging.getLogger("zoomake.convert")

# Output suffixes, --to/-sf choices, source flags and artifact files all come from the format
# registry (formats/): a new format appears here without an edit.
_VERIFY_SAMPLES = 1
_VERIFY_SEED = 0


# -- value syntax ----------------------------------------------------------------------------
_GROUP = re.compile(r"\s*([^\[\]()=,\s]*)\s*=?\s*[\[(]([^\[\]()]*)[\])]\s*(?:,|$)")


def _groups(text: str, what: str) -> list[tuple[str | None, str]]:
    """``a,b`` | ``[a,b]`` | ``(a,b)`` | ``NAME=a,b`` | ``NAME[a,b],OTHER[c]`` -> (name, body)."""
    text = text.strip()
    if not any(ch in text for ch in "[("):
        name, sep, body = text.rpartition("=")
        if sep and not name:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        return [(name or None, body)]
    groups, pos = [], 0
    while pos < len(text):
        m = _GROUP.match(text, pos)
        if not m or m.end() == pos:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        groups.append((m.group(1) or None, m.group(2)))
        pos = m.end()
    return groups


def _items(body: str) -> list[str]:
    """``1,3,224,224`` / ``1 3 224 224`` / ``1x3x224x224`` -> items; an empty item is ValueError."""
    body = re.sub(r"(?<=\d)x(?=\d)", ",", body.strip())
    items = re.split(r"\s*,\s*|\s+", body)
    if not all(items):
        raise ValueError(body)
    return items


def values_arg(text: str) -> list[tuple[str | None, list[float]]]:
    """Numbers per input: ``104,117,123``, ``[104,117,123]``, ``data[104,117,123],...``."""
    what = "numbers like 104,117,123, [104,117,123] or data[104,117,123]"
    out = []
    for name, body in _groups(text, what):
        try:
            numbers = [float(v) for v in _items(body)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        if not numbers:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        out.append((name, numbers))
    return out


def shapes_arg(text: str) -> list[tuple[str | None, list[int]]]:
    """Shapes: ``1,3,224,224``, ``[1,3,224,224]``, ``data=1,3,224,224``, ``data[1 3 224 224]``,
    several as ``(1,3,227,227),[1,6,1,1]`` (Model Optimizer)."""
    what = "a shape like 1,3,224,224, [1,3,224,224] or NAME=1,3,224,224 (positive integers)"
    out = []
    for name, body in _groups(text, what):
        try:
            shape = [int(d) for d in _items(body)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        if not shape or any(d <= 0 for d in shape):
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        out.append((name, shape))
    return out


def inputs_arg(text: str) -> list[tuple[str, list[int] | None]]:
    """Model Optimizer's ``--input``: ``data``, ``data,rois``, ``data[1,3,224,224],rois``."""
    out = []
    for part in re.finditer(r"\s*([^,\[\]\s]+)\s*(?:\[([^\]]*)\])?\s*(?:,|$)", text):
        if not part.group(1):
            continue
        shape = None
        if part.group(2) is not None:
            shape = shapes_arg(f"[{part.group(2)}]")[0][1]
        out.append((part.group(1), shape))
    if not out:
        raise argparse.ArgumentTypeError(
            f"expected input names like data or data[1,3,224,224], got '{text}'"
        )
    return out


def one_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected one number (Model Optimizer's --scale divides every channel by it; "
            f"per-channel divisors are --scale_values or --std), got '{text}'"
        ) from None


def offsets_arg(text: str) -> list[int]:
    """Model Optimizer's ``--mean_file_offsets (a,b)``."""
    what = "two integers >= 0 like (16,16)"
    groups = _groups(text, what)
    try:
        numbers = [int(v) for v in _items(groups[0][1])] if len(groups) == 1 else []
    except ValueError:
        numbers = []
    if len(numbers) != 2 or any(v < 0 for v in numbers) or groups[0][0]:
        raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
    return numbers


def bool_arg(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got '{text}'")


def names_arg(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


# -- the parser ------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    import formats

    src = p.add_argument_group("source (zoomake / Model Optimizer / mmconvert spellings)")
    for fmt in formats.sources():  # each source file role's flags, as the format declares them
        for role in fmt.source.cli_roles():
            src.add_argument(*role.cli_flags(), dest=role.name, type=Path, metavar="FILE",
                             help=role.help)  # fmt: skip
    model_suffixes = " or ".join(f"the {f.source.model_suffix}" for f in formats.sources()
                                 if f.source.model_suffix)  # fmt: skip
    src.add_argument(
        "--input_model",
        type=Path,
        metavar="FILE",
        help=f"Model Optimizer: {model_suffixes} (a Caffe .prototxt is --input_proto or the "
        "file of the same name beside the .caffemodel)",
    )
    src.add_argument("-sf", "--srcFramework", dest="src_framework",
                     choices=formats.source_names(),
                     help="mmconvert: the source framework (checked against the files)")  # fmt: skip

    out = p.add_argument_group("output")
    out.add_argument("-o", "--output-file", "-om", "--outputModel", dest="out", type=Path,
                     metavar="FILE", help="the output file (mmconvert: -om)")  # fmt: skip
    out.add_argument("--output_dir", type=Path, metavar="DIR",
                     help="Model Optimizer: write DIR/NAME.xml (NAME: --model_name)")  # fmt: skip
    out.add_argument("--model_name", metavar="NAME",
                     help="Model Optimizer: the output's base name (default: the source's)")  # fmt: skip
    out.add_argument("--to", "-df", "--dstFramework", dest="to",
                     choices=formats.target_names(),
                     help="output format (default: from the output suffix; mmconvert: -df)")  # fmt: skip
    out.add_argument("--outputs", "--output", dest="outputs", type=names_arg, metavar="A,B",
                     help="cut the graph at these blobs (Model Optimizer: --output)")  # fmt: skip
    out.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")

    inp = p.add_argument_group("inputs")
    inp.add_argument(
        "--input",
        type=inputs_arg,
        action="append",
        default=[],
        metavar="NAMES",
        help="Model Optimizer: the inputs the other flags refer to, in order, optionally with "
        "a shape: data or data[1,3,224,224],rois",
    )
    inp.add_argument(
        "--input-shape",
        "--input_shape",
        "--inputShape",
        dest="input_shape",
        type=shapes_arg,
        action="append",
        default=[],
        metavar="SHAPE",
        help="an input's shape: 1,3,224,224 (a one-input model), [1,3,224,224], "
        "NAME=1,3,224,224 or NAME[1,3,224,224]; repeatable (mmconvert: --inputShape)",
    )

    pre = p.add_argument_group("preprocessing built into the model (README, Preprocessing)")
    pre.add_argument("--mean", "--mean_values", dest="mean", type=values_arg, action="append",
                     default=[], metavar="VALUES",
                     help="subtract: one value or one per channel of the original model, "
                     "e.g. 104,117,123 or data[104,117,123]")  # fmt: skip
    pre.add_argument("--std", "--scale_values", dest="std", type=values_arg, action="append",
                     default=[], metavar="VALUES",
                     help="then divide by: one value or one per channel (recipe key std)")  # fmt: skip
    pre.add_argument("--scale", dest="mo_scale", type=one_number, metavar="X",
                     help="Model Optimizer: divide every channel by X (same as --std X)")  # fmt: skip
    pre.add_argument("--multiply", type=values_arg, action="append", default=[],
                     metavar="VALUES",
                     help="then multiply by: one value or one per channel (recipe key scale, "
                     "Caffe's transform_param scale)")  # fmt: skip
    pre.add_argument("--reverse-channels", "--reverse_input_channels", dest="reverse",
                     action="store_true",
                     help="the deployed model takes the channels reversed (RGB<->BGR)")  # fmt: skip
    pre.add_argument("--mean_file", "--mean-file", dest="mean_file", type=Path, metavar="FILE",
                     help="subtract this Caffe .binaryproto mean image instead of --mean")  # fmt: skip
    pre.add_argument("--mean_file_offsets", "--mean-file-offset", dest="mean_file_offsets",
                     type=offsets_arg, metavar="(R,C)",
                     help="crop the mean image at row R, column C (default: centred)")  # fmt: skip
    pre.add_argument("--input-layout", choices=["NCHW", "NHWC"], help="deployed input layout")
    pre.add_argument("--input-dtype", choices=["float32", "uint8"], help="deployed input dtype")

    opt = p.add_argument_group("optimization and precision")
    opt.add_argument("--optimize", nargs="?", const="default", type=str, metavar="PASSES",
                     help="run the default passes, or the named ones (a,b)")  # fmt: skip
    opt.add_argument("--fp16", "--compress_to_fp16", dest="fp16", nargs="?", const=True,
                     default=False, type=bool_arg, metavar="BOOL",
                     help="float16 weights, inputs and outputs stay float32 "
                     "(Model Optimizer: --compress_to_fp16[=True|False])")  # fmt: skip
    opt.add_argument("--data_type", choices=["FP16", "FP32", "half", "float"],
                     help="Model Optimizer: FP16/half is --fp16, FP32/float the default")  # fmt: skip

    ver = p.add_argument_group("verification")
    ver.add_argument("--no-verify", dest="verify", action="store_false",
                     help="do not run the source and the result on a seeded input")  # fmt: skip
    ver.add_argument("--verify", dest="verify", action="store_true", default=True,
                     help="run the source and the result on a seeded input (the default)")  # fmt: skip
    ver.add_argument("--bisect", action="store_true",
                     help="when verification fails, run both layer by layer and name the first "
                     "layer out of tolerance")  # fmt: skip


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help="convert one model without a recipe",
        description="Convert a Caffe or ONNX model to ONNX, OpenVINO IR or Caffe, verify the "
        "result against the source model and print a summary. The output format follows "
        "-o's suffix (.onnx, .xml, .prototxt) unless --to is given. Model Optimizer's and "
        "mmconvert's flags are accepted with their own meaning (README, Migrating from "
        "OpenVINO's Model Optimizer).",
    )
    add_arguments(p)
    return p


# -- from flags to a conversion --------------------------------------------------------------
@dataclass
class Request:
    framework: str
    files: dict[str, Path]
    out: Path
    fmt: str
    precision: str
    shapes: dict[str, list[int]] = field(default_factory=dict)
    specs: dict[str | None, dict] = field(default_factory=dict)  # None: the default image input
    inputs: list[str] = field(default_factory=list)  # --input names, in order
    outputs: list[str] | None = None  # cut points (--outputs / --output)
    digests: _Digests | None = None  # the source files' sha256, hashed in a thread


def _source(args) -> tuple[str, dict[str, Path]]:
    """The source format and its files, from the flags each format declares (its roles) and
    Model Optimizer's ``--input_model`` (the format whose ``model_suffix`` it has)."""
    import formats

    given = {f.name: {r.name: getattr(args, r.name) for r in f.source.cli_roles()
                      if getattr(args, r.name, None) is not None}
             for f in formats.sources()}  # fmt: skip
    if args.input_model is not None:
        suffix = args.input_model.suffix.lower()
        owner = next((f for f in formats.sources() if f.source.model_suffix == suffix), None)
        if owner is None:
            takes = " or ".join(f.source.model_suffix for f in formats.sources()
                                if f.source.model_suffix)  # fmt: skip
            raise ZoomakeError(f"{args.input_model}: --input_model takes a {takes} file")
        given[owner.name] = owner.source.cli_files(given[owner.name], args.input_model)
    claimed = {name: files for name, files in given.items() if files}
    if len(claimed) > 1:
        flags = ["/".join(r.cli_flags()[0] for r in formats.source(n).cli_roles())
                 for n in claimed]  # fmt: skip
        raise ZoomakeError(f"give either {' or '.join(flags)}, not both")
    if not claimed:
        usage = " or ".join(f.source.usage for f in formats.sources())
        raise ZoomakeError(f"no source: give {usage}")
    ((framework, files),) = claimed.items()
    files = formats.source(framework).cli_files(files, None)
    if args.src_framework and args.src_framework != framework:
        raise ZoomakeError(f"-sf {args.src_framework} but the source files are {framework}")
    for role, path in files.items():
        if not path.is_file():
            raise ZoomakeError(f"{path}: --{role} file not found")
    return framework, files


def _output(args, files: dict[str, Path]) -> tuple[Path, str]:
    from pipelines.build import steps as build

    if args.out is not None and args.output_dir is not None:
        raise ZoomakeError("give either -o FILE or --output_dir DIR, not both")
    if args.output_dir is not None:
        fmt = args.to or "openvino"  # what Model Optimizer writes
        stem = args.model_name or next(iter(files.values())).stem
        from formats import target

        return args.output_dir / f"{stem}{target(fmt).suffix}", fmt
    if args.model_name is not None:
        raise ZoomakeError("--model_name goes with --output_dir DIR (or name the file: -o FILE)")
    if args.out is None:
        hint = ""
        if args.outputs and len(args.outputs) == 1 and Path(args.outputs[0]).suffix:
            hint = " (--output names the blobs to cut at, as in Model Optimizer)"
        raise ZoomakeError(f"no output: give -o FILE or --output_dir DIR{hint}")
    if args.out.is_dir() or not args.out.suffix:
        raise ZoomakeError(
            f"{args.out}: -o names the output file (e.g. model.onnx); for a directory use "
            "--output_dir DIR [--model_name NAME]"
        )
    return args.out, build.output_format(args.out, args.to)


def _precision(args) -> str:
    if args.data_type is not None:
        wanted = "fp16" if args.data_type in ("FP16", "half") else "fp32"
        if args.fp16 and wanted == "fp32":
            raise ZoomakeError("--data_type FP32 contradicts --fp16/--compress_to_fp16")
        return wanted
    return "fp16" if args.fp16 else "fp32"


def source_inputs(framework: str, files: dict[str, Path]) -> list[str]:
    """The source model's input names, in its order (before any conversion)."""
    from formats import source

    return source(framework).input_names(files)


def _pick(name: str | None, inputs: list[str], named: list[str], flag: str) -> str:
    """The input an unnamed value refers to: the one --input, else the model's only input."""
    if name is not None:
        return name
    pool = named or inputs
    if len(pool) != 1:
        raise ZoomakeError(
            f"{flag}: the model has inputs {', '.join(inputs)}; say which one: "
            f"NAME[...] or --input NAME"
        )
    return pool[0]


def make_request(args) -> Request:
    framework, files = _source(args)
    digests = _Digests(files.values())  # first: it hashes while the rest imports and converts
    out, fmt = _output(args, files)
    # The rename into place comes after the whole conversion: refuse a directory now.
    from pipelines.build.steps import output_files

    refuse_directories(output_files(out, fmt))
    from formats import get

    spec = get(fmt)
    if "fp16" not in spec.target.precisions and (args.fp16 or args.data_type in ("FP16", "half")):
        raise ZoomakeError(
            f"--fp16 is not available for {spec.short} output "
            f"({spec.short} is {' or '.join(p.replace('fp', 'float') for p in spec.target.precisions)})"
        )
    req = Request(framework, files, out, fmt, _precision(args), outputs=args.outputs,
                  digests=digests)  # fmt: skip
    listed = [(n, s) for group in args.input for n, s in group]
    req.inputs = [n for n, _ in listed]
    needs_names = any(n is None for g in args.input_shape for n, _ in g) or listed
    model_inputs = source_inputs(framework, files) if needs_names else []
    for name, _ in listed:
        if name not in model_inputs:
            raise ZoomakeError(
                f"--input {name}: not an input of the model ({', '.join(model_inputs)}); "
                "cutting the graph at a new input is not supported"
            )
    req.shapes = {n: s for n, s in listed if s is not None}
    unnamed = [s for g in args.input_shape for n, s in g if n is None]
    if unnamed and req.inputs and len(unnamed) == len(req.inputs) > 1:
        req.shapes.update(zip(req.inputs, unnamed, strict=True))  # MO: paired in order
    else:
        for group in args.input_shape:
            for name, shape in group:
                req.shapes[_pick(name, model_inputs, req.inputs, "--input-shape")] = shape
    _preprocessing(args, req)
    return req


def _preprocessing(args, req: Request) -> None:
    given: dict[tuple[str | None, str], str] = {}

    def put(name, key, value, flag):
        spec = req.specs.setdefault(name, {})
        if (name, key) in given:
            first, which = given[name, key], name or "(the image input)"
            if first == flag:
                raise ZoomakeError(f"{flag} is given twice for input {which}")
            raise ZoomakeError(f"{first} and {flag} both set the {key} of input {which}: give one")
        given[name, key] = flag
        spec[key] = value[0] if len(value) == 1 else value

    for key, flag, groups in (("mean", "--mean/--mean_values", args.mean),
                              ("std", "--std/--scale_values", args.std),
                              ("scale", "--multiply", args.multiply)):  # fmt: skip
        for name, values in (item for g in groups for item in g):
            put(name, key, values, flag)
    if args.mo_scale is not None:
        if 0 < abs(args.mo_scale) < 1:  # zoomake's old --scale multiplied: 0.0078125 was 1/128
            log.warning("--scale %g divides (Model Optimizer's meaning); to multiply by it, use "
                        "--multiply %g", args.mo_scale, args.mo_scale)  # fmt: skip
        put(None, "std", [args.mo_scale], "--scale")
    for name, spec in req.specs.items():
        if "std" in spec and "scale" in spec:
            raise ZoomakeError(
                f"input {name or '(the image input)'}: --multiply and a divisor "
                "(--std/--scale/--scale_values) are mutually exclusive"
            )
    default = req.specs.setdefault(None, {})
    if args.reverse:
        default["reverse_channels"] = True
    if args.input_layout:
        default["layout"] = args.input_layout
    if args.input_dtype:
        default["dtype"] = args.input_dtype
    if args.mean_file is not None:
        if not args.mean_file.is_file():
            raise ZoomakeError(f"{args.mean_file}: --mean_file not found")
        if "mean" in default:
            raise ZoomakeError("--mean_file and --mean/--mean_values are mutually exclusive")
        default["mean_file"] = str(args.mean_file)
    if args.mean_file_offsets is not None:
        if args.mean_file is None:
            raise ZoomakeError("--mean_file_offsets needs --mean_file")
        # Model Optimizer's -mo (a,b) adds a to the row and b to the column index of the mean
        # image (mo/front/caffe/loader.py); its help calls them (x,y). Our key is [row, column].
        default["mean_file_offset"] = list(args.mean_file_offsets)
    if not default:
        del req.specs[None]


# -- running it ------------------------------------------------------------------------------
def run(args) -> int:
    t0 = time.perf_counter()
    req = make_request(args)
    model = _convert(req, args)
    info = _describe(model, req)
    written, report = _write_verified(model, req, args.verify, getattr(args, "bisect", False))
    if not args.quiet:
        _print_summary(req, info, written, report, time.perf_counter() - t0)
    return 0


def _convert(req: Request, args):
    from pipelines.build import steps as build

    inputs = {n: {"shape": s} for n, s in req.shapes.items()}
    # The big weights stay in the caffemodel (converters.lazy) for the formats that take that:
    # they go from file to file when written, converted to float16 on the way for --fp16.
    from formats import target

    model = build.convert_source(req.framework, req.files, inputs, args.outputs, args.opset,
                                 lazy=target(req.fmt).takes_lazy)  # fmt: skip
    if req.specs:
        from converters.preprocess import embed_preprocessing

        if None in req.specs:  # unnamed flags: the one --input, else the only image input
            target = req.inputs[0] if len(req.inputs) == 1 else _image_input(model)
            spec = req.specs.pop(None)
            named = req.specs.setdefault(target, {})
            twice = sorted(set(spec) & set(named))
            if twice:
                raise ZoomakeError(f"input {target}: {', '.join(twice)} given twice")
            named.update(spec)
        files = dict(req.files)
        for name, spec in req.specs.items():
            if spec.get("mean_file"):
                files[f"mean_file:{name}"] = Path(spec["mean_file"])
        model = embed_preprocessing(model, req.specs, files=files)
    if args.optimize:
        passes = None if args.optimize == "default" else names_arg(args.optimize)
        model = build.optimize(model, passes)
    if req.precision == "fp16" and req.fmt == "onnx":
        from converters.fp16 import to_fp16

        model = to_fp16(model, keep_io_types=True, copy=False)
    _stamp(model, req, args)
    return model


def _image_input(model) -> str:
    images = [vi.name for vi in model.graph.input if len(vi.type.tensor_type.shape.dim) == 4]
    if len(images) != 1:
        names = ", ".join(vi.name for vi in model.graph.input)
        raise ZoomakeError(f"the model has inputs {names}; say which one with --input NAME")
    return images[0]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Digests:
    """``_digest`` of some files in a thread (hashlib releases the GIL): the provenance hash of
    a 550 MB caffemodel (~0.4 s) overlaps the imports and the conversion instead of following
    them. ``get(path)`` waits for it and raises what hashing raised; other paths are hashed
    when asked."""

    def __init__(self, paths):
        from pipelines.background import Background

        self._paths = list(dict.fromkeys(Path(p) for p in paths))
        self._done = Background(lambda: {p: _digest(p) for p in self._paths}, "digests")

    def get(self, path: Path) -> str:
        if Path(path) not in self._paths:
            return _digest(path)
        return self._done.result()[Path(path)]


def _stamp(model, req: Request, args) -> None:
    """Provenance in ``metadata_props`` (OpenVINO copies them into the IR's rt_info)."""
    from pipelines import version

    files = dict(req.files)
    for name, spec in req.specs.items():
        if spec.get("mean_file"):
            files[f"mean_file:{name}"] = Path(spec["mean_file"])
    digest = req.digests.get if req.digests is not None else _digest
    source = {
        "framework": req.framework,
        "files": {
            role: {"name": p.name, "size": p.stat().st_size, "sha256": digest(p)}
            for role, p in files.items()
        },
    }
    preprocess = {
        name: {k: (Path(v).name if k == "mean_file" else v) for k, v in spec.items()}
        for name, spec in req.specs.items()
    }
    options = {
        "format": req.fmt,
        "precision": req.precision,
        "opset": args.opset,
        "outputs": args.outputs,
        "input_shapes": req.shapes,
        "optimize": args.optimize,
    }
    record = {
        "zoomake.version": version(),
        "zoomake.source": json.dumps(source, sort_keys=True),
        "zoomake.preprocess": json.dumps(preprocess, sort_keys=True),
        "zoomake.options": json.dumps(options, sort_keys=True),
    }
    keep = [p for p in model.metadata_props if p.key not in record]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in record.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


@dataclass
class Port:
    name: str
    shape: list
    dtype: str


def _ports(values) -> list[Port]:
    import onnx

    out = []
    for vi in values:
        t = vi.type.tensor_type
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim
        ]
        out.append(Port(vi.name, dims, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name))
    return out


def _describe(model, req: Request) -> dict:
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    return {"inputs": _ports(vi for vi in graph.input if vi.name not in weights),
            "outputs": _ports(graph.output)}  # fmt: skip


def _write_verified(
    model, req: Request, verify: bool, bisect: bool = False
) -> tuple[list[Path], dict | None]:
    """Write into a temporary directory beside the output, verify, then move into place."""
    from pipelines.build import steps as build

    parent = req.out.parent
    created = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{req.out.name}.", suffix=".tmp", dir=parent))
    try:
        from formats import target

        files = target(req.fmt).companion_suffixes()
        main_file = tmp / files[-1][0]
        build.write_model(model, main_file, req.fmt, req.precision)  # big weights streamed
        report = _verify(req, tmp, bisect) if verify else None
        if report is not None and not report["passed"]:
            where = report.get("first_divergence")
            raise ZoomakeError(
                f"verification failed, no output written: {report['failures'][0]}"
                + (f"; {where['message']}" if where else "")
                + " (--no-verify writes it anyway)"
            )
        written = []
        for name, suffix in files:  # the .xml / .prototxt last: a pair is complete
            dest = target(req.fmt).user_path(req.out, name, suffix)
            os.replace(tmp / name, dest)
            written.append(dest)
        return written[::-1], report
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                parent.rmdir()  # leave no trace of a failed conversion
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _verify(req: Request, out_dir: Path, bisect: bool = False) -> dict | None:
    from formats import get
    from pipelines.verify.measure import measure

    spec = get(req.framework)
    missing = [r for r in spec.source.roles if r.required and r.name not in req.files]
    if missing:  # e.g. a Caffe network without its weights
        role = missing[0]
        log.warning(f"not verified: the {spec.short} reference needs {role.noun or role.name} "
                    f"({role.cli_flags()[0]})")  # fmt: skip
        return None
    recipe = {
        "source": {"framework": req.framework},
        "inputs": {n: {"preprocess": s} for n, s in req.specs.items()},
        "outputs": req.outputs,
        "targets": {"convert": {"format": req.fmt, "precision": req.precision}},
        "verify": {"samples": _VERIFY_SAMPLES, "seed": _VERIFY_SEED},
    }
    sources = dict(req.files)
    for name, spec in req.specs.items():
        if spec.get("mean_file"):
            sources[f"mean_file:{name}"] = Path(spec["mean_file"])
    if req.framework == "onnx" and req.shapes:
        sources["onnx"] = _reshaped_onnx(req.files["onnx"], req.shapes, out_dir / "source.onnx")
    log.info("verifying %s against the source model", req.out.name)
    return measure(req.out.stem, recipe, "convert", sources, out_dir, bisect=bisect)


def _reshaped_onnx(src: Path, shapes: dict[str, list[int]], dest: Path) -> Path:
    """The source ONNX graph unchanged but for the requested input shapes (onnxruntime refuses
    other shapes than an input declares). Inner and output shapes are dropped: they are
    annotations onnxruntime would check against the old input shape."""
    import onnx

    from converters.io import load_onnx

    model = load_onnx(src)
    for vi in model.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[vi.name]:
                dims.add().dim_value = d
    del model.graph.value_info[:]
    for vi in model.graph.output:
        vi.type.tensor_type.ClearField("shape")
    onnx.save(model, str(dest))
    return dest


# -- the summary -----------------------------------------------------------------------------
def _num(v) -> str:
    return f"{v:.3g}" if isinstance(v, float | int) else str(v)


def _values(v) -> str:
    return "[" + ", ".join(f"{x:g}" for x in v) + "]" if isinstance(v, list) else f"{v:g}"


def describe_preprocess(spec: dict | None) -> str:
    """The embedded preprocessing as a formula over the deployed input x."""
    if not spec:
        return "none"
    steps = []
    if spec.get("dtype", "float32") != "float32":
        steps.append(f"{spec['dtype']} input")
    if spec.get("layout", "NCHW") != "NCHW":
        steps.append(f"{spec['layout']} layout")
    if spec.get("reverse_channels"):
        steps.append("channels reversed")
    x = "x"
    if spec.get("mean_file"):
        offset = spec.get("mean_file_offset")
        where = f" at [{offset[0]}, {offset[1]}]" if offset else ", centred"
        x = f"(x - mean image {Path(spec['mean_file']).name}{where})"
    elif spec.get("mean") is not None:
        x = f"(x - {_values(spec['mean'])})"
    if spec.get("std") is not None:
        x = f"{x} / {_values(spec['std'])}"
    elif spec.get("scale") is not None:
        x = f"{x} * {_values(spec['scale'])}"
    if x != "x":
        steps.append(f"model sees {x}")
    return ", ".join(steps) or "none"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _print_summary(req, info, written, report, seconds) -> None:
    lines = [f"source   {req.framework}: " + " + ".join(str(p) for p in req.files.values())]
    for port in info["inputs"]:
        spec = req.specs.get(port.name)
        layout = (spec or {}).get("layout", "NCHW")
        lines.append(f"input    {port.name}: {port.dtype}{port.shape} {layout}, "
                     f"preprocessing: {describe_preprocess(spec)}")  # fmt: skip
    for port in info["outputs"]:
        lines.append(f"output   {port.name}: {port.dtype}{port.shape}")
    if report is None:
        lines.append("verify   skipped")
    else:
        ref, cand = report["reference"]["runtime"], report["candidate"]["runtime"]
        worst = ", ".join(
            f"{name} max |err| {_num(r.get('max_abs_error', '?'))}"
            for name, r in report["outputs"].items()
        )
        any_tol = next(iter(report["tolerances"]["outputs"].values()), {})
        lines.append(
            f"verify   passed: {cand} vs {ref} ({req.framework}) on {_VERIFY_SAMPLES} seeded "
            f"input: {worst} (atol {_num(any_tol.get('atol'))}, rtol {_num(any_tol.get('rtol'))})"
        )
    for path in written:
        lines.append(f"wrote    {path} ({_size(path.stat().st_size)})")
    lines.append(f"done     in {seconds:.2f} s")
    print("\n".join(lines), file=sys.stdout)
