"""``zoomake`` command line (also ``python -m pipelines``).

Subcommands:
  convert    one-shot conversion without a recipe (mmconvert / OpenVINO ``mo`` style)
  validate   check recipes against the schema, print every error one per line
  build      build the zoo in ./recipes (runs doit on pipelines.tasks; extra args go to doit)
  regress    compare a build's golden outputs with an earlier build's
  layers     list the supported Caffe layer types
  setup-runtime  create a side runtime's environment (real Caffe, MXNet) and check it
  doctor     list the reference and artifact runtimes available, with versions

Errors in the user's input or environment print one line ``zoomake: error: ...`` and exit 1;
usage errors exit 2 (argparse); a bug in zoomake prints one ``internal error (please report)``
line and exits 70 (``ZOOMAKE_TRACEBACK=1`` shows the traceback; see ``pipelines.errors``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pipelines.errors import ZoomakeError, describe


def _add_convert(sub) -> None:
    from pipelines import convert_cli

    p = sub.add_parser(
        "convert",
        help="convert one model without a recipe",
        description="Convert a Caffe or ONNX model to ONNX, OpenVINO IR or Caffe, verify the "
        "result against the source model and print a summary. The output format follows "
        "-o's suffix (.onnx, .xml, .prototxt) unless --to is given. Model Optimizer's and "
        "mmconvert's flags are accepted with their own meaning (README, Migrating from "
        "OpenVINO's Model Optimizer).",
    )
    convert_cli.add_arguments(p)


def cmd_convert(args) -> int:
    from pipelines import convert_cli

    return convert_cli.run(args)


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
    if not args.quiet:
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
        metavar="DIR",
        help="the zoo's recipe folder (default: $ZOOMAKE_RECIPES or ./recipes)",
    )
    parser.add_argument(
        "--build",
        dest="build_dir",
        type=Path,
        metavar="DIR",
        help="the build folder (default: $ZOOMAKE_BUILD or ./build)",
    )


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")


def cmd_setup_runtime(args) -> int:
    from pipelines.runtime_setup import setup_runtime

    setup_runtime(args.framework, args.from_dir)
    return 0


def cmd_doctor(args) -> int:
    from pipelines.runtime_setup import doctor

    lines, healthy = doctor()
    print("\n".join(lines))
    return 0 if healthy else 1


def make_parser() -> argparse.ArgumentParser:
    from pipelines import version

    parser = argparse.ArgumentParser(
        prog="zoomake",
        description="Build a model zoo into verified artifacts, or convert one model.",
    )
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
    b.add_argument(
        "--baseline",
        metavar="DIR_OR_URL",
        help="a previous build directory or report (report.json, its folder or URL): the "
        "report shows each target's drift against it (sets $ZOOMAKE_BASELINE)",
    )
    r = sub.add_parser("regress", help="compare golden outputs with an earlier build")
    r.add_argument("--against", required=True, help="the earlier build directory")
    sub.add_parser("layers", help="list supported Caffe layer types")
    s = sub.add_parser(
        "setup-runtime",
        help="set up a side runtime (its own Python environment) for verification",
        description="Create the environment of a reference framework that cannot share "
        "zoomake's (under the zoomake cache dir), or use ZOOMAKE_<FW>_PYTHON and "
        "ZOOMAKE_<FW>_PYTHONPATH when set; then check it with a tiny model.",
    )
    s.add_argument("framework", choices=["caffe", "mxnet"])
    s.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        help="caffe: the prebuilt pycaffe directory (default: ../shared/tools/caffe)",
    )
    sub.add_parser("doctor", help="list available reference and artifact runtimes")
    for p in sub.choices.values():
        _dirs_options(p)
        if p is not b:  # doit has its own -v/--verbosity
            _log_options(p)
    return parser


COMMANDS = {"convert": cmd_convert, "validate": cmd_validate, "build": cmd_build,
            "regress": cmd_regress, "layers": cmd_layers,
            "setup-runtime": cmd_setup_runtime, "doctor": cmd_doctor}  # fmt: skip


def _apply_dirs(args) -> None:
    """--recipes/--build become the environment, seen by doit's workers and child processes."""
    for attr, var in (("recipes_dir", "ZOOMAKE_RECIPES"), ("build_dir", "ZOOMAKE_BUILD")):
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[var] = str(value.absolute())


def _setup_logging(args) -> None:
    """Diagnostics go through logging to stderr: warnings by default, -v info, -vv debug,
    -q errors only (what a command prints as its result is not a diagnostic)."""
    verbose = getattr(args, "verbose", 0)
    level = logging.WARNING
    if getattr(args, "quiet", False):
        level = logging.ERROR
    elif verbose:
        level = logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="zoomake: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "build":
        args.doit_args = extra
        if args.baseline:
            os.environ["ZOOMAKE_BASELINE"] = args.baseline
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _apply_dirs(args)
    _setup_logging(args)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("zoomake: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for every failure; bugs are labelled as such
        code, line = describe(exc)
        print(f"zoomake: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
