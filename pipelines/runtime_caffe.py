"""Caffe models in OpenCV DNN 4.x (``DNN_BACKEND_OPENCV``, CPU): the reference runtime for
Caffe sources and the deployment runtime of Caffe targets.

OpenCV addresses outputs by the LAYER that last writes a blob, not by the blob name the ONNX
graph (and the golden data) carries; a layer with several tops is asked for all of them with
``forwardAndRetrieve`` (``forward`` only returns each layer's first top).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError
from pipelines.runtimes import Port, Runner, need_files, static_shape


def caffe_blob_writers(prototxt: Path) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """``{blob: (layer that writes it last, top index)}`` and the net's final blobs in order.

    Final blobs (what the converter makes graph outputs when no cut points are given) are the
    tops no later layer reads; in-place layers read and rewrite a blob, so it stays open.
    """
    from converters.caffe.convert import is_active  # the converter's TEST-phase rule
    from converters.caffe.prototxt import parse_prototxt

    net = parse_prototxt(prototxt)
    writers: dict[str, tuple[str, int]] = {}
    open_blobs: dict[str, None] = {}
    for layer in [*net.layer, *net.layers]:
        if not is_active(layer):
            continue
        for b in layer.bottom:
            open_blobs.pop(b, None)
        for i, top in enumerate(layer.top):
            writers[top] = (layer.name, i)
            open_blobs.pop(top, None)
            open_blobs[top] = None
    return writers, list(open_blobs)


def caffe_inputs(prototxt: Path) -> list[Port]:
    """The inputs a Caffe net declares (``input`` + shapes, or Input layers), float32."""
    from converters.caffe.prototxt import parse_prototxt

    net = parse_prototxt(prototxt)
    ports = []
    dims = list(net.input_dim)
    for i, name in enumerate(net.input):
        if len(net.input_shape) > i:
            shape = static_shape(list(net.input_shape[i].dim))
        else:
            shape = static_shape(dims[4 * i : 4 * i + 4]) if len(dims) >= 4 * i + 4 else None
        ports.append(Port(name, shape, np.dtype(np.float32)))
    for layer in net.layer:
        if layer.type == "Input":
            shapes = list(layer.input_param.shape)
            for i, top in enumerate(layer.top):
                shape = shapes[min(i, len(shapes) - 1)].dim if shapes else []
                ports.append(Port(top, static_shape(list(shape)), np.dtype(np.float32)))
    return ports


class OpenCvCaffeRunner(Runner):
    runtime = "opencv"

    def __init__(self, prototxt: Path, caffemodel: Path):
        import cv2

        need_files(prototxt, caffemodel)
        try:
            self.net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        except cv2.error as exc:
            raise ZoomakeError(f"{prototxt}: OpenCV cannot read the Caffe model: {exc}") from None
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.writers, self.outputs = caffe_blob_writers(prototxt)
        self.inputs = caffe_inputs(prototxt)

    def run(self, feeds, outputs=None):
        import cv2

        names = list(outputs or self.outputs)
        missing = [n for n in names if n not in self.writers]
        if missing:
            raise ZoomakeError(f"Caffe net has no blob {', '.join(map(repr, missing))}")
        layers = list(dict.fromkeys(self.writers[n][0] for n in names))
        for name, value in feeds.items():
            self.net.setInput(np.ascontiguousarray(value, dtype=np.float32), name)
        try:
            # forwardAndRetrieve returns every top of each layer; forward() only the first.
            results = dict(zip(layers, self.net.forwardAndRetrieve(layers), strict=True))
        except cv2.error as exc:
            raise ZoomakeError(f"OpenCV DNN failed to run the Caffe model: {exc}") from None
        return {n: np.asarray(results[self.writers[n][0]][self.writers[n][1]]) for n in names}
