"""``zoomake build``: run doit on the zoo in ./recipes (no dodo.py needed); every argument
zoomake does not know goes to doit."""

from __future__ import annotations

import argparse

from pipelines.errors import ZoomakeError


def add_parser(sub) -> argparse.ArgumentParser:
    # No positional arguments: everything zoomake does not know goes to doit, in order (see
    # pipelines.cli.main).
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
    return b


def run(args) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain

    from pipelines.locations import recipes_dir

    if not recipes_dir().is_dir():
        raise ZoomakeError(
            f"{recipes_dir()}: recipes folder not found; run zoomake build in a zoo directory "
            "(one with recipes/) or give --recipes DIR"
        )
    from pipelines.build import tasks  # what dodo.py re-exports: task_* creators and DOIT_CONFIG

    return DoitMain(ModuleTaskLoader(tasks)).run(args.doit_args)
