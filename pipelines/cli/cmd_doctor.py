"""``zoomake doctor``: list the reference and artifact runtimes available, with versions."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    return sub.add_parser("doctor", help="list available reference and artifact runtimes")


def run(args) -> int:
    from pipelines.runtimes.setup_runtime import doctor

    lines, healthy = doctor()
    print("\n".join(lines))
    return 0 if healthy else 1
