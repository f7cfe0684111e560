"""``zoomake`` command line (also ``python -m pipelines``).

Subcommands:
  convert    one-shot conversion without a recipe (mmconvert / OpenVINO ``mo`` style)
  validate   check recipes against the schema, print every error one per line
  build      build the zoo in ./recipes (runs doit on pipelines.build.tasks; extra args go to doit)
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

from pipelines.cli import (
    cmd_build,
    cmd_convert,
    cmd_doctor,
    cmd_layers,
    cmd_regress,
    cmd_setup_runtime,
    cmd_validate,
)
from pipelines.errors import describe

# Subcommand -> its module: ``add_parser(sub)`` declares it, ``run(args)`` runs it.
COMMANDS = {"convert": cmd_convert, "validate": cmd_validate, "build": cmd_build,
            "regress": cmd_regress, "layers": cmd_layers,
            "setup-runtime": cmd_setup_runtime, "doctor": cmd_doctor}  # fmt: skip


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


def make_parser() -> argparse.ArgumentParser:
    from pipelines import version

    parser = argparse.ArgumentParser(
        prog="zoomake",
        description="Build a model zoo into verified artifacts, or convert one model.",
    )
    parser.add_argument("--version", action="version", version=f"zoomake {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        p = command.add_parser(sub)
        _dirs_options(p)
        if name != "build":  # doit has its own -v/--verbosity
            _log_options(p)
    return parser


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
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("zoomake: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for every failure; bugs are labelled as such
        code, line = describe(exc)
        print(f"zoomake: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
