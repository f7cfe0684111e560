"""Caffe layers recorded in the converted ONNX model, so that the ONNX -> Caffe writer can put
them back (``converters/onnx2caffe/caffe_layers.py``).

Some Caffe layers have no single ONNX op: zoomake decomposes DetectionOutput into a Loop-based
NMS graph, Normalize into a sum of squares and a division, and folds PriorBox into a constant.
No ONNX -> Caffe mapping can rebuild those layers from their ONNX pieces with certainty, so the
converter writes down what it decomposed: one entry per such layer in the model's
``metadata_props`` under ``zoomake.caffe_layers`` (a JSON list), each entry holding

- ``layer``: the Caffe ``LayerParameter`` in protobuf text (parameters only; no blobs, phase
  rules or loss fields) whose ``bottom``/``top`` are the *ONNX value names* of its inputs and
  output;
- ``blobs``: the initializer names holding its weights, and ``blob_shapes``: their Caffe shapes;
- ``const``: the top is a constant (PriorBox, and the Concat/Flatten/Reshape chains of priors).

The ONNX value names are what ties an entry to the graph; the writer checks that the graph
between the recorded bottoms and top reads nothing else, and recomputes constant tops, so a
graph edited after conversion is refused rather than written back wrong.
"""

from __future__ import annotations

import json

from google.protobuf import text_format

from converters.caffe.proto import caffe_pb2

METADATA_KEY = "zoomake.caffe_layers"

# Decomposed layers whose ONNX form the writer cannot map back op by op.
RECORDED_TYPES = frozenset({"DetectionOutput", "PriorBox", "Normalize"})
# Layers recorded when they only reshape or join recorded constants (the concatenated priors).
CONST_CHAIN_TYPES = frozenset({"Concat", "Flatten", "Reshape"})
_DROPPED = ("blobs", "bottom", "top", "include", "exclude", "phase", "loss_weight", "param",
            "propagate_down")  # fmt: skip


def record(ctx, layer, bottoms: list[str]) -> None:
    """Remember ``layer`` (after its handler ran; ``bottoms``: the ONNX values it read) as a
    Caffe layer the writer may restore."""
    if not isinstance(layer.proto, caffe_pb2.LayerParameter):
        return  # V1/V0 layers: left to the op-by-op writer (which refuses what it lacks)
    p = caffe_pb2.LayerParameter()
    p.CopyFrom(layer.proto)
    for field in _DROPPED:
        p.ClearField(field)
    p.bottom.extend(bottoms)
    p.top.extend(ctx.top_name(layer, i) for i in range(len(layer.tops)))
    blobs, blob_shapes = ctx.layer_blobs.pop(layer.index, ((), ()))
    const = layer.type == "PriorBox" or layer.type in CONST_CHAIN_TYPES
    ctx.layer_records.append({
        "layer": text_format.MessageToString(p, as_one_line=True),
        "blobs": list(blobs),
        "blob_shapes": [list(s) for s in blob_shapes],
        "const": const,
    })  # fmt: skip
    if const:
        ctx.recorded_consts.update(p.top)


def wants_record(ctx, layer) -> bool:
    if layer.type in RECORDED_TYPES:
        return True
    if layer.type in CONST_CHAIN_TYPES and layer.bottoms:
        return all(ctx.blob_map.get(b) in ctx.recorded_consts for b in layer.bottoms)
    return False


def attach(model, records: list[dict]) -> None:
    if records:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(records)


def tops(rec: dict) -> list[str]:
    """The ONNX values an entry's layer writes."""
    layer = caffe_pb2.LayerParameter()
    text_format.Parse(rec["layer"], layer)
    return list(layer.top)


def read(model) -> list[dict]:
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return []
