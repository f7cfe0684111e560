"""``zoomake`` command line (also ``python -m pipelines``).

Subcommands:
  convert    one-shot conversion without a recipe (mmconvert / OpenVINO ``mo`` style)
  validate   check recipes against the schema, print every error one per line
  build      build the zoo in ./recipes (runs doit on pipelines.tasks; extra args go to doit)
  regress    compare a build's golden outputs with an earlier build's
  layers     list the supported Caffe layer types

Errors in the user's input print one line ``zoomake: error: ...`` and exit 1; usage errors
exit 2 (argparse). A traceback means a bug in zoomake.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from converters.errors import ConversionError
from converters.io import SplitModel
from pipelines.errors import ZoomakeError


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got '{text}'"
        ) from None


def _shape_arg(text: str) -> tuple[str, list[int]]:
    name, sep, dims = text.rpartition("=")
    try:
        shape = [int(d) for d in dims.replace("x", ",").split(",")]
        if not sep or not name or any(d <= 0 for d in shape):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=D1,D2,... with positive integers, got '{text}'"
        ) from None
    return name, shape


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _add_convert(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert one model without a recipe",
        description="Convert a Caffe or ONNX model to ONNX, OpenVINO IR or Caffe. The output "
        "format follows -o's suffix (.onnx, .xml, .prototxt) unless --to is given.",
    )
    src = p.add_argument_group("source")
    src.add_argument("--prototxt", type=Path, help="Caffe network definition (.prototxt)")
    src.add_argument("--caffemodel", type=Path, help="Caffe weights (.caffemodel)")
    src.add_argument("--onnx", type=Path, help="an ONNX model as the source")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file")
    p.add_argument("--to", choices=["onnx", "openvino", "caffe"], help="output format")
    p.add_argument(
        "--input-shape",
        type=_shape_arg,
        action="append",
        default=[],
        metavar="NAME=N,C,H,W",
        help="set an input's shape (repeatable)",
    )
    p.add_argument("--outputs", type=_names, help="cut the graph at these blobs (a,b,...)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    pre = p.add_argument_group("preprocessing baked into the model (see README)")
    pre.add_argument(
        "--input",
        dest="pre_input",
        help="input the preprocessing applies to (default: the only image input)",
    )
    pre.add_argument(
        "--mean",
        type=_floats,
        help="mean, one value or one per channel (original model's channel order)",
    )
    scale = pre.add_mutually_exclusive_group()
    scale.add_argument("--scale", type=_floats, help="multiply by this after the mean")
    scale.add_argument("--std", type=_floats, help="divide by this after the mean")
    pre.add_argument(
        "--reverse-channels",
        action="store_true",
        help="the deployed model takes channels reversed (RGB<->BGR)",
    )
    pre.add_argument("--input-layout", choices=["NCHW", "NHWC"], help="deployed input layout")
    pre.add_argument("--input-dtype", choices=["float32", "uint8"], help="deployed input dtype")
    opt = p.add_argument_group("optimization")
    opt.add_argument(
        "--optimize",
        nargs="?",
        const="default",
        type=str,
        help="run the default passes, or the named ones (a,b)",
    )
    opt.add_argument("--fp16", action="store_true", help="float16 weights (I/O stay float32)")


def _preprocess_spec(args) -> dict:
    spec = {}
    if args.mean is not None:
        spec["mean"] = args.mean if len(args.mean) > 1 else args.mean[0]
    if args.scale is not None:
        spec["scale"] = args.scale if len(args.scale) > 1 else args.scale[0]
    if args.std is not None:
        spec["std"] = args.std if len(args.std) > 1 else args.std[0]
    if args.reverse_channels:
        spec["reverse_channels"] = True
    if args.input_layout:
        spec["layout"] = args.input_layout
    if args.input_dtype:
        spec["dtype"] = args.input_dtype
    return spec


def cmd_convert(args) -> int:
    from pipelines import build

    if args.onnx and (args.prototxt or args.caffemodel):
        raise ZoomakeError("give either --onnx or --prototxt/--caffemodel, not both")
    if args.onnx:
        framework, files = "onnx", {"onnx": args.onnx}
    elif args.prototxt:
        framework, files = "caffe", {"prototxt": args.prototxt}
        if args.caffemodel:
            files["caffemodel"] = args.caffemodel
    else:
        raise ZoomakeError("no source: give --prototxt P [--caffemodel W] or --onnx FILE")
    for role, path in files.items():
        if not path.is_file():
            raise ZoomakeError(f"{path}: --{role} file not found")
    fmt = build.output_format(args.output, args.to)
    inputs = {name: {"shape": shape} for name, shape in args.input_shape}
    spec = _preprocess_spec(args)
    # Nothing to transform but FP16: the weights go from the caffemodel to the file unparsed
    # (OpenVINO compresses to FP16 itself; to_fp16_split converts them as they are written).
    plain = fmt in ("onnx", "openvino") and not (spec or args.optimize)
    model = build.convert_source(framework, files, inputs, args.outputs, args.opset, lazy=plain)
    if isinstance(model, SplitModel):
        if args.fp16 and fmt == "onnx":
            from converters.fp16 import to_fp16_split

            model = to_fp16_split(model, keep_io_types=True)
        written = build.write_model(model, args.output, fmt, "fp16" if args.fp16 else "fp32")
        print(" ".join(str(p) for p in written))
        return 0
    if spec:
        from converters.preprocess import embed_preprocessing

        target = args.pre_input or _image_input(model)
        model = embed_preprocessing(model, {target: spec})
    if args.optimize:
        passes = None if args.optimize == "default" else _names(args.optimize)
        model = build.optimize(model, passes)
    precision = "fp16" if args.fp16 else "fp32"
    if args.fp16 and fmt == "onnx":
        from converters.fp16 import to_fp16

        model = to_fp16(model, keep_io_types=True, copy=False)
    if args.fp16 and fmt == "caffe":
        raise ZoomakeError("--fp16 is not available for Caffe output (Caffe is float32)")
    written = build.write_model(model, args.output, fmt, precision)
    print(" ".join(str(p) for p in written))
    return 0


def _image_input(model) -> str:
    images = [vi.name for vi in model.graph.input if len(vi.type.tensor_type.shape.dim) == 4]
    if len(images) != 1:
        names = ", ".join(vi.name for vi in model.graph.input)
        raise ZoomakeError(f"the model has inputs {names}; say which one with --input NAME")
    return images[0]


def cmd_validate(args) -> int:
    from pipelines.locations import recipes_dir
    from pipelines.recipes import validate_recipe_file

    paths = args.recipes or sorted(recipes_dir().glob("*.yaml"))
    if not paths:
        raise ZoomakeError(f"no recipes to validate in {recipes_dir()}")
    errors = []
    for path in paths:
        errors.extend(validate_recipe_file(Path(path)))
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s) in {len(paths)} recipe(s)", file=sys.stderr)
        return 1
    print(f"{len(paths)} recipe(s) valid")
    return 0


def cmd_build(args) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from pipelines.locations import recipes_dir

    if not recipes_dir().is_dir():
        raise ZoomakeError(
            f"{recipes_dir()}: recipes folder not found; run zoomake build in a zoo directory "
            "(one with recipes/) or give --recipes DIR"
        )
    from pipelines import tasks  # what dodo.py re-exports: task_* creators and DOIT_CONFIG

    return DoitMain(ModuleTaskLoader(tasks)).run(args.doit_args)


def cmd_regress(args) -> int:
    from pipelines.locations import build_dir
    from pipelines.regress import regress

    return regress(build_dir(), Path(args.against))


def cmd_layers(args) -> int:
    from converters.caffe.registry import supported_types

    for info in supported_types():
        print(f"{info.type_name:24} {info.family:16} {info.notes}")
    return 0


def _dirs_options(parser: argparse.ArgumentParser) -> None:
    """--recipes/--build, on every subcommand (they set ZOOMAKE_RECIPES/ZOOMAKE_BUILD)."""
    parser.add_argument(
        "--recipes",
        dest="recipes_dir",
        type=Path,
        help="the zoo's recipe folder (default: $ZOOMAKE_RECIPES or ./recipes)",
    )
    parser.add_argument(
        "--build",
        dest="build_dir",
        type=Path,
        help="the build folder (default: $ZOOMAKE_BUILD or ./build)",
    )


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")


def make_parser() -> argparse.ArgumentParser:
    from pipelines import version

    parser = argparse.ArgumentParser(prog="zoomake", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"zoomake {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_convert(sub)
    v = sub.add_parser("validate", help="validate recipes against the schema")
    v.add_argument("recipes", nargs="*", type=Path, help="recipe files (default: recipes/*.yaml)")
    # No positional arguments: everything zoomake does not know goes to doit, in order (see main).
    b = sub.add_parser(
        "build",
        help="build the zoo with doit (other arguments go to doit)",
        description="Run doit on the zoo in ./recipes (no dodo.py needed). Every argument "
        "other than --recipes/--build goes to doit, e.g. zoomake build list, "
        "zoomake build -n 2 -P process, zoomake build --verbosity 2.",
    )
    r = sub.add_parser("regress", help="compare golden outputs with an earlier build")
    r.add_argument("--against", required=True, help="the earlier build directory")
    sub.add_parser("layers", help="list supported Caffe layer types")
    for p in sub.choices.values():
        _dirs_options(p)
        if p is not b:  # doit has its own -v/--verbosity
            _log_options(p)
    return parser


COMMANDS = {"convert": cmd_convert, "validate": cmd_validate, "build": cmd_build,
            "regress": cmd_regress, "layers": cmd_layers}  # fmt: skip


def _apply_dirs(args) -> None:
    """--recipes/--build become the environment, seen by doit's workers and child processes."""
    for attr, var in (("recipes_dir", "ZOOMAKE_RECIPES"), ("build_dir", "ZOOMAKE_BUILD")):
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[var] = str(value.absolute())


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "build":
        args.doit_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _apply_dirs(args)
    try:
        return COMMANDS[args.command](args)
    except (ConversionError, ZoomakeError) as exc:
        print(f"zoomake: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("zoomake: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
