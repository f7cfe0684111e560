"""A Caffe mean image (``.binaryproto``) -> an MXNet NDArray file (``.nd``), the job of MXNet's
``tools/caffe_converter/convert_mean.py``: one array ``mean_image`` of shape (C, H, W), float32,
with channels 0 and 2 swapped for a 3-channel image (Caffe's BGR -> MXNet's RGB, as that tool
and the converted models' first convolution do) unless ``keep_bgr``."""

from __future__ import annotations

import os

import numpy as np

from converters.mxnet import ndarray_file
from converters.preprocess import load_mean_file

KEY = "mean_image"


def convert_mean(binaryproto: str | os.PathLike, output: str | os.PathLike,
                 keep_bgr: bool = False) -> np.ndarray:  # fmt: skip
    """Write ``output`` atomically; returns the array written."""
    image = load_mean_file(binaryproto).astype(np.float32)
    if image.shape[0] == 3 and not keep_bgr:
        image = image[::-1].copy()
    ndarray_file.save(output, {KEY: image})
    return image
