"""Caffe's window arithmetic, shared by the Caffe reader (``converters/caffe``) and the Caffe
writer (``converters/onnx2caffe``), which must not import each other's layer code."""

from __future__ import annotations


def caffe_pool_size(size: int, k: int, s: int, pad: int, ceil: bool = True) -> int:
    """Caffe's pooling output size along one axis (``PoolingLayer::Reshape``)::

    out = ceil_or_floor((H + 2p - k) / s) + 1    # round_mode CEIL (the default) or FLOOR
    if p > 0 and (out - 1) * s >= H + p: out -= 1  # the last window must start inside H + p
    """
    span = size + 2 * pad - k
    out = (-(-span // s) if ceil else span // s) + 1
    if pad > 0 and (out - 1) * s >= size + pad:
        out -= 1
    return out
