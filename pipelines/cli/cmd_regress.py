"""``zoomake regress``: compare a build's golden outputs with an earlier build's."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("regress", help="compare golden outputs with an earlier build")
    r.add_argument("--against", required=True, help="the earlier build directory")
    return r


def run(args) -> int:
    from pipelines.locations import build_dir
    from pipelines.verify.regress import regress

    return regress(build_dir(), Path(args.against))
