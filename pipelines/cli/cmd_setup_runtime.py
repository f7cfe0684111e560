"""``zoomake setup-runtime``: create a side runtime's environment (real Caffe, MXNet) and
check it with a tiny model."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
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
    return s


def run(args) -> int:
    from pipelines.runtimes.setup_runtime import setup_runtime

    setup_runtime(args.framework, args.from_dir)
    return 0
