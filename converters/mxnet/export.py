"""ONNX -> MXNet 1.x checkpoint: ``<prefix>-symbol.json`` + ``<prefix>-0000.params``.

Loadable by ``mx.model.load_checkpoint(prefix, 0)`` and ``mx.gluon.SymbolBlock.imports``. Both
files are written here without mxnet (``symbol``, ``ndarray_file``). Static shapes and constant
folding come from the ONNX -> Caffe preparation (``onnx2caffe.prepare``); one registered handler
per live node then emits MXNet ops (``converters.mxnet.ops``). An op, or an attribute value,
MXNet cannot express exactly stops the conversion with one line naming the node; the two files
are written together or not at all.

Names: graph inputs keep their ONNX names; the node computing a graph output is named after it,
so MXNet lists it as ``<name>_output`` (``runner.MxnetRunner`` maps it back). An output that is a
constant or an input, or the second output of a node, gets its own ``_copy`` node.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx

from converters.errors import ConversionError
from converters.mxnet import ndarray_file
from converters.mxnet.context import Context, MxNode
from converters.mxnet.registry import get_handler, supported_ops
from converters.onnx2caffe import prepare
from converters.onnx_utils import require_opset

ARTIFACT_FILES = ("model-symbol.json", "model-0000.params")


def build(model: onnx.ModelProto) -> Context:
    """The MXNet graph and params for ``model``; raises ``ConversionError`` if it can't."""
    opset = require_opset(model, "MXNet export")
    inferred = prepare.infer(model)
    g = inferred.graph
    shapes = prepare.static_shapes(inferred)
    nodes = [MxNode(n, opset) for n in g.node]
    consts = prepare.fold_constants(nodes, shapes, opset, prepare.initializer_consts(model))
    outputs = [vi.name for vi in g.output]
    ctx = Context(opset, shapes, consts, outputs)
    for vi in prepare.real_inputs(inferred, model):
        if vi.name not in shapes:
            raise ConversionError(
                f"MXNet export: input '{vi.name}' has no static shape; fix it first "
                f"(--input-shape {vi.name}=D1,D2,...)"
            )
        ctx.graph.reserve([vi.name])
        ctx.refs[vi.name] = ctx.graph.variable(vi.name, exact=True, shape=shapes[vi.name])
    for node in prepare.live_nodes(nodes, outputs):
        if all(o is None or o in consts for o in node.outputs):
            continue  # folded
        if node.proto.domain not in ("", "ai.onnx"):
            raise node.error(f"operator domain '{node.proto.domain}' has no MXNet equivalent")
        info = get_handler(node.op)
        if info is None:
            ops = ", ".join(sorted(h.op_type for h in supported_ops()))
            raise node.error(f"no exact MXNet equivalent; supported ONNX ops: {ops}")
        info.handler(node, ctx)
    _heads(ctx, outputs)
    return ctx


def _heads(ctx: Context, outputs: list[str]) -> None:
    graph = ctx.graph
    for name in outputs:
        ref = ctx.refs.get(name)
        if ref is None:
            if name not in ctx.consts:
                raise ConversionError(f"MXNet export: graph output '{name}' is not produced")
            value = np.asarray(ctx.consts[name], dtype=np.float32)
            ref = ctx.weight(f"{name}/value", value)
        node = graph.nodes[ref.node]
        if node["name"] != name or ref.index != 0 or graph.n_outputs[ref.node] != 1 or \
                node["op"] == "null" or ref in graph.heads:  # fmt: skip
            ref = graph.op("_copy", [ref], hint=name, exact=True)[0]
            if graph.nodes[ref.node]["name"] != name:
                raise ConversionError(
                    f"MXNet export: graph output '{name}' clashes with another node's name"
                )
        graph.heads.append(ref)


def from_onnx(model, out_dir: str | os.PathLike, options: dict | None = None):
    """Write ``<prefix>-symbol.json`` and ``<prefix>-<epoch>.params`` (prefix ``model``, epoch 0
    unless ``options`` say otherwise) into ``out_dir``; returns both paths. ``model``: an
    ``onnx.ModelProto`` or the path of an ONNX file."""
    options = options or {}
    if isinstance(model, str | os.PathLike):
        from converters.io import load_onnx

        model = load_onnx(model)
    prefix = str(options.get("prefix", "model"))
    epoch = int(options.get("epoch", 0))
    symbol, params = checkpoint_paths(Path(out_dir) / prefix, epoch)
    write_checkpoint(model, symbol, params)
    return [symbol, params]


def checkpoint_paths(prefix: str | os.PathLike, epoch: int = 0) -> tuple[Path, Path]:
    prefix = str(prefix)
    return Path(f"{prefix}-symbol.json"), Path(f"{prefix}-{epoch:04d}.params")


def write_checkpoint(model: onnx.ModelProto, symbol: Path, params: Path) -> None:
    from converters.io import write_together

    ctx = build(model)
    write_together(
        [(Path(symbol), ctx.graph.to_json().encode()),
         (Path(params), ndarray_file.chunks(ctx.graph.params))]
    )  # fmt: skip
