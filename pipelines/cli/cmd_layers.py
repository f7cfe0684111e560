"""``zoomake layers``: list the supported Caffe layer types."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    return sub.add_parser("layers", help="list supported Caffe layer types")


def run(args) -> int:
    from converters.caffe.registry import supported_types

    for info in supported_types():
        print(f"{info.type_name:24} {info.family:16} {info.notes}")
    return 0
