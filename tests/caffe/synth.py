"""Synthesize a ``.caffemodel`` for a deploy prototxt that ships without weights.

The blob shapes come from our own converter: it is run once with a recording weight source
that answers every ``layer.blob(i, shape)`` request with freshly drawn values of exactly the
requested shape, by layer type and blob role, in ranges that keep activations sane through 50+
layers (He-scaled convolutions, BatchNorm statistics with variance in [0.5, 1.5] and a non-unit
moving-average factor, Scale gamma near 1). The recorded blobs are then written with our schema,
so OpenCV reads the very same weights as the converter.

The reference comparison does not depend on the converter's shapes being right: OpenCV refuses
a caffemodel whose blobs don't fit the layers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from converters.caffe import context
from converters.caffe.proto import caffe_pb2
from converters.io import len_field

# How many blobs each weighted layer type carries (handlers may ask ``layer.num_blobs``).
_BLOB_COUNT = {
    "Convolution": lambda p: 1 + p.convolution_param.bias_term,
    "ConvolutionDepthwise": lambda p: 1 + p.convolution_param.bias_term,
    "DepthwiseConvolution": lambda p: 1 + p.convolution_param.bias_term,
    "BN": lambda p: 2,
    "Deconvolution": lambda p: 1 + p.convolution_param.bias_term,
    "InnerProduct": lambda p: 1 + p.inner_product_param.bias_term,
    "BatchNorm": lambda p: 3,
    "Scale": lambda p: (len(p.bottom) < 2) + p.scale_param.bias_term,
    "Bias": lambda p: int(len(p.bottom) < 2),
    "PReLU": lambda p: 1,
    "Normalize": lambda p: 1,
}


def _draw(layer_type: str, index: int, shape, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(int(d) for d in shape)
    if layer_type == "BatchNorm":
        c = shape
        if index == 0:
            values = rng.normal(0.0, 0.2, c)
        elif index == 1:
            values = rng.uniform(0.5, 1.5, c)
        else:
            return np.full(shape, 0.999, np.float32)  # Caffe stores mean*s, var*s, s
        return (values * 0.999).astype(np.float32)
    if layer_type in ("Scale", "Normalize", "BN") and index == 0:
        return rng.uniform(0.7, 1.3, shape).astype(np.float32)
    if layer_type == "PReLU":
        return rng.uniform(0.0, 0.3, shape).astype(np.float32)
    if index == 0 and len(shape) >= 2:  # conv / fc weights: He initialisation keeps scale ~1
        fan_in = math.prod(shape[1:]) if layer_type != "Deconvolution" else shape[0]
        if layer_type == "InnerProduct":
            fan_in = shape[-1]
        return rng.normal(0.0, math.sqrt(2.0 / max(fan_in, 1)), shape).astype(np.float32)
    return rng.normal(0.0, 0.1, shape).astype(np.float32)


def synthesize_weights(
    prototxt: str | Path,
    out_path: str | Path,
    seed: int = 0,
    input_shapes: dict[str, list[int]] | None = None,
    outputs: list[str] | None = None,
) -> Path:
    """Write ``out_path`` (a .caffemodel) with weights for every weighted layer of ``prototxt``."""
    from converters.caffe.convert import caffe_to_onnx

    rng = np.random.default_rng(seed)
    recorded: dict[str, tuple[str, dict[int, np.ndarray]]] = {}

    def blob(self, i, shape=None, what=""):
        assert shape is not None, f"{self.name}: handler asked for blob {i} without a shape"
        blobs = recorded.setdefault(self.name, (self.type, {}))[1]
        if i not in blobs:
            blobs[i] = _draw(self.type, i, shape, rng)
        return blobs[i].reshape(shape)

    def num_blobs(self):
        count = _BLOB_COUNT.get(self.type)
        return count(self.proto) if count else 0

    view = context.LayerView
    saved = view.blob, view.stored_blob, view.num_blobs
    view.blob, view.stored_blob, view.num_blobs = blob, blob, property(num_blobs)
    try:
        caffe_to_onnx(prototxt, None, input_shapes=input_shapes, outputs=outputs)
    finally:
        view.blob, view.stored_blob, view.num_blobs = saved

    # Serialized by hand, field by field in field-number order (what SerializeToString writes,
    # byte for byte): going through ``data.extend(arr.tolist())`` made a Python float per
    # weight, 2 GB of them and half a minute for AlexNet's 61M.
    parts = []
    for name, (layer_type, blobs) in recorded.items():
        layer = [caffe_pb2.LayerParameter(name=name, type=layer_type).SerializeToString()]
        for i in range(len(blobs)):
            arr = blobs[i]
            shape = caffe_pb2.BlobProto()
            shape.shape.dim.extend(arr.shape)
            data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
            blob = (_field(5, data) if data else b"") + shape.SerializeToString()
            layer.append(_field(7, blob))  # LayerParameter.blobs (BlobProto.data = 5, packed)
        parts.append(_field(100, b"".join(layer)))  # NetParameter.layer
    out = Path(out_path)
    out.write_bytes(b"".join(parts))
    return out


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return len_field(number, len(payload)) + payload
