"""ONNX -> Caffe: ``onnx_to_caffe(model, prototxt_path, caffemodel_path)``."""

from __future__ import annotations


def onnx_to_caffe(model, prototxt_path, caffemodel_path) -> None:
    """Write ``model`` as ``prototxt_path`` + ``caffemodel_path`` (both or neither)."""
    from converters.onnx2caffe.convert import onnx_to_caffe as run

    run(model, prototxt_path, caffemodel_path)


__all__ = ["onnx_to_caffe"]
