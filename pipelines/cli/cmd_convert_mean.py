"""``zoomake convert-mean``: a Caffe mean image (.binaryproto) -> an MXNet NDArray file (.nd),
the job of MXNet caffe_converter's ``convert_mean.py``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    m = sub.add_parser("convert-mean", help="Caffe mean .binaryproto -> MXNet .nd file")
    m.add_argument("mean", type=Path, help="the Caffe mean image (.binaryproto)")
    m.add_argument("-o", "--output", type=Path, required=True, help="the .nd file to write")
    m.add_argument("--keep-bgr", action="store_true", help="keep Caffe's channel order")
    return m


def run(args) -> int:
    from converters.mxnet.mean import convert_mean

    image = convert_mean(args.mean, args.output, keep_bgr=args.keep_bgr)
    print(f"{args.output}: mean_image {list(image.shape)} float32")
    return 0
