"""``zoomake build``: run doit on the zoo in ./recipes (no dodo.py needed); every argument
zoomake does not know goes to doit."""

from __future__ import annotations

import argparse
import os

from pipelines.errors import ZoomakeError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of workers, found '{text}'")
    return value


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
    b.add_argument(
        "--remote-cache",
        metavar="URL",
        help="the shared artifact cache, any fsspec URL (a directory, s3://bucket/prefix); "
        "append ?readonly to never write it (default: $ZOOMAKE_REMOTE_CACHE)",
    )
    where = b.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run one unit of work per model on this Dask scheduler (tcp://host:8786)",
    )
    where.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="run one unit of work per model on a Dask cluster of N local worker processes",
    )
    return b


def run(args) -> int:
    from doit.doit_cmd import DoitMain

    from pipelines.locations import recipes_dir

    if not recipes_dir().is_dir():
        raise ZoomakeError(
            f"{recipes_dir()}: recipes folder not found; run zoomake build in a zoo directory "
            "(one with recipes/) or give --recipes DIR"
        )
    if args.remote_cache:
        os.environ["ZOOMAKE_REMOTE_CACHE"] = args.remote_cache

    def run_doit() -> int:
        from pipelines.build import tasks  # what dodo.py re-exports: task_* creators, DOIT_CONFIG
        from pipelines.build.doit_loader import ZooModuleLoader

        return DoitMain(ZooModuleLoader(tasks)).run(args.doit_args)

    if args.scheduler or args.workers:
        from pipelines.build.distributed import build

        return build(args.scheduler, args.workers, run_doit)
    return run_doit()
