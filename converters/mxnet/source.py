"""MXNet 1.x checkpoint (``<prefix>-symbol.json`` + ``<prefix>-NNNN.params``) -> ONNX.

Both files are read here (no mxnet): the symbol's nodes in order, the params' ``arg:``/``aux:``
arrays. Each MXNet op is turned into ONNX nodes by a handler registered for its op name
(``converters.mxnet.importers``, on ``converters.op_registry``); an op or attribute value
without an exact ONNX equivalent stops the conversion with one line naming the node.

Names: graph inputs keep their MXNet names; a single-output node's ONNX value is the node's
name (MXNet's ``<name>_output`` without the suffix, what ``runner.MxnetRunner`` calls it), the
k-th output of a multi-output node ``<name>_output<k>``. Graph outputs are the symbol's heads
(or the ``outputs`` asked for, any internal output by those names). Arguments that are neither
weights nor given inputs are loss labels (``SoftmaxOutput``'s ``<name>_label``) and are dropped.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converters.errors import ConversionError, UnsupportedError
from converters.mxnet import ndarray_file
from converters.names import unique_name
from converters.op_registry import OpRegistry

_REGISTRY = OpRegistry("converters.mxnet.importers", label=" for MXNet -> ONNX")
register = _REGISTRY.register
DEFAULT_OPSET = 17


class SymNode:
    """One MXNet node as handlers see it: op, name, parsed attributes, errors naming it."""

    def __init__(self, index: int, raw: dict, source: str):
        self.index = index
        self.op: str = raw.get("op", "")
        self.name: str = raw.get("name", f"node{index}")
        # 1.x writes "attrs"; 0.x files used "attr" or "param"
        self.attrs: dict = dict(raw.get("attrs") or raw.get("attr") or raw.get("param") or {})
        self.inputs = [tuple(e[:2]) for e in raw.get("inputs", [])]
        self.source = source

    def error(self, reason: str) -> UnsupportedError:
        return UnsupportedError(f"{self.source}: node '{self.name}' ({self.op}): {reason}")

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.attrs.get(key)
        return default if value is None or value == "None" else str(value)

    def tuple(self, key: str, default=()) -> tuple[int, ...]:
        value = self.text(key)
        if value is None:
            return tuple(default)
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise self.error(f"attribute {key}={value!r} is not a tuple") from None
        parsed = parsed if isinstance(parsed, tuple | list) else (parsed,)
        return tuple(None if v is None else int(v) for v in parsed)

    def int(self, key: str, default: int) -> int:
        value = self.text(key)
        return default if value is None else int(float(value))

    def float(self, key: str, default: float) -> float:
        value = self.text(key)
        return default if value is None else float(value)

    def bool(self, key: str, default: bool) -> bool:
        value = self.text(key)
        if value is None:
            return default
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise self.error(f"attribute {key}={value!r} is not a boolean")


class ImportContext:
    def __init__(self, nodes: list[SymNode], params: dict, source: str, opset: int):
        self.nodes = nodes
        self.params = params  # name without prefix -> array
        self.source = source
        self.opset = opset
        self.onnx_nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.values: dict[tuple[int, int], str] = {}  # (node, output) -> ONNX value
        self.used: set[str] = set()
        self._shapes: dict[str, tuple[int, ...]] = {}

    # -- names -------------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        return unique_name(hint, self.used)

    def out(self, node: SymNode, k: int = 0, count: int = 1) -> str:
        """The ONNX name of output ``k`` of ``node`` (see the module docstring)."""
        key = (node.index, k)
        if key not in self.values:
            hint = node.name if count == 1 else f"{node.name}_output{k}"
            self.values[key] = self.fresh(hint)
        return self.values[key]

    # -- reading -----------------------------------------------------------------------------
    def input(self, node: SymNode, i: int) -> str:
        if i >= len(node.inputs):
            raise node.error(f"expected an input {i}, it has {len(node.inputs)}")
        src, k = node.inputs[i]
        if (src, k) in self.values:
            return self.values[(src, k)]
        other = self.nodes[src]
        if other.op == "null" and other.name in self.params:
            name = self.fresh(other.name)
            self.initializers.append(numpy_helper.from_array(self.params[other.name], name))
            self.values[(src, k)] = name
            return name
        raise node.error(f"input {i} ('{other.name}') is neither a weight nor a given input")

    def param(self, node: SymNode, i: int, what: str) -> np.ndarray:
        if i >= len(node.inputs):
            raise node.error(f"{what} (input {i}) is missing")
        other = self.nodes[node.inputs[i][0]]
        if other.op != "null" or other.name not in self.params:
            raise node.error(f"{what} (input {i}, '{other.name}') is not in the params file")
        return self.params[other.name]

    def shape(self, node: SymNode, value: str) -> tuple[int, ...]:
        """The static shape of an ONNX value emitted so far (ONNX shape inference)."""
        if value not in self._shapes:
            self._infer()
        if value not in self._shapes:
            raise node.error(f"the shape of its input '{value}' cannot be inferred")
        return self._shapes[value]

    def _infer(self) -> None:
        graph = helper.make_graph(self.onnx_nodes, "partial", list(self.inputs), [])
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                           for t in self.initializers if t.data_type != TensorProto.INT64)  # fmt: skip
        graph.initializer.extend(t for t in self.initializers if t.data_type == TensorProto.INT64)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        for vi in [*inferred.graph.input, *inferred.graph.value_info]:
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self._shapes[vi.name] = tuple(d.dim_value for d in dims)

    # -- writing -----------------------------------------------------------------------------
    def const(self, hint: str, value, dtype=np.float32) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, hint: str, values) -> str:
        return self.const(hint, np.asarray(values, dtype=np.int64).reshape(-1), np.int64)

    def emit(self, op_type: str, inputs: list[str], outputs: list[str] | str | None = None,
             hint: str = "", **attrs) -> str:  # fmt: skip
        """Append an ONNX node; returns its (first) output name."""
        if outputs is None:
            outputs = [self.fresh(hint or op_type.lower())]
        elif isinstance(outputs, str):
            outputs = [outputs]
        self.onnx_nodes.append(helper.make_node(op_type, inputs, outputs,
                                                name=outputs[0], **attrs))  # fmt: skip
        return outputs[0]


def read_symbol(path: str | os.PathLike) -> dict:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConversionError(f"{p}: cannot read the MXNet symbol: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{p}: not an MXNet symbol file (JSON: {exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or "heads" not in doc:
        raise ConversionError(f"{p}: not an MXNet symbol file (expected 'nodes' and 'heads')")
    return doc


def read_params(path: str | os.PathLike | None) -> dict[str, np.ndarray]:
    """Weights by argument name (``arg:``/``aux:`` prefixes dropped; unprefixed keys, as Gluon's
    ``save_parameters`` writes, are taken as they are)."""
    if path is None:
        return {}
    out = {}
    for key, value in ndarray_file.load(path).items():
        name = key.split(":", 1)[1] if key.startswith(("arg:", "aux:")) else key
        out[name] = value
    return out


def input_names(files: dict) -> list[str]:
    """The symbol's data inputs, in order: arguments that are not weights nor loss labels."""
    doc = read_symbol(files["symbol"])
    params = read_params(files.get("params")) if files.get("params") else {}
    nodes = [SymNode(i, raw, str(files["symbol"])) for i, raw in enumerate(doc["nodes"])]
    needed = _needed(nodes, [tuple(h[:2]) for h in doc["heads"]])
    return [n.name for n in nodes if n.op == "null" and n.index in needed
            and n.name not in params and not n.name.endswith("_label")]  # fmt: skip


def to_onnx(files: dict, inputs: dict[str, list[int]] | None = None, outputs=None,
            opset: int = DEFAULT_OPSET, *, lazy: bool = False) -> onnx.ModelProto:  # fmt: skip
    """Convert ``files`` (roles ``symbol`` and ``params``) to ONNX; ``inputs``: name -> shape
    of every data input (required: a symbol does not record shapes)."""
    if "symbol" not in files:
        raise ConversionError("an MXNet source needs its symbol file (-symbol.json)")
    source = str(files["symbol"])
    doc = read_symbol(files["symbol"])
    params = read_params(files.get("params"))
    nodes = [SymNode(i, raw, source) for i, raw in enumerate(doc["nodes"])]
    ctx = ImportContext(nodes, params, source, opset)
    shapes = {k: [int(d) for d in v] for k, v in (inputs or {}).items()}
    heads = [tuple(h[:2]) for h in doc["heads"]]
    needed = _needed(nodes, heads)
    labels = {n.name for n in nodes if n.op == "null" and n.name.endswith("_label")}
    args = [n for n in nodes if n.op == "null" and n.name not in params and n.index in needed]
    data_args = [n for n in args if n.name in shapes or n.name not in labels]
    unknown = sorted(set(shapes) - {n.name for n in data_args})
    if unknown:
        names = ", ".join(n.name for n in data_args) or "(none)"
        raise ConversionError(f"{source}: the symbol has no data input '{unknown[0]}' "
                              f"(its inputs: {names})")  # fmt: skip
    for n in data_args:
        if n.name not in shapes:
            where = "the params file" if files.get("params") else "a params file (none given)"
            raise ConversionError(
                f"{source}: argument '{n.name}' is neither in {where} nor a data input "
                f"with a shape (recipe inputs.{n.name}.shape, or --input-shape {n.name}=N,C,H,W)"
            )
        ctx.used.add(n.name)
        ctx.values[(n.index, 0)] = n.name
        ctx.inputs.append(helper.make_tensor_value_info(n.name, TensorProto.FLOAT, shapes[n.name]))
    for node in nodes:
        if node.op == "null" or node.index not in needed:
            continue
        info = _REGISTRY.get_handler(node.op)
        if info is None:
            ops = ", ".join(sorted(h.op_type for h in _REGISTRY.supported_ops()))
            raise node.error(f"no ONNX equivalent here; supported MXNet ops: {ops}")
        info.handler(node, ctx)
    names = _output_names(ctx, nodes, heads, outputs)
    graph = helper.make_graph(ctx.onnx_nodes, Path(source).stem, ctx.inputs,
                              [onnx.ValueInfoProto(name=n) for n in names],
                              ctx.initializers)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="zoomake", producer_version="mxnet")  # fmt: skip
    model.ir_version = min(model.ir_version, 8)
    model = onnx.shape_inference.infer_shapes(model)
    _typed_outputs(model)
    return model


def _needed(nodes: list[SymNode], heads) -> set[int]:
    seen, stack = set(), [h[0] for h in heads]
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(src for src, _ in nodes[i].inputs)
    return seen


def _output_names(ctx: ImportContext, nodes, heads, outputs) -> list[str]:
    by_name = {}
    for (node, _k), value in ctx.values.items():
        if nodes[node].op != "null":
            by_name[value] = value
    if not outputs:
        return [ctx.values[h] if h in ctx.values else ctx.input(nodes[h[0]], 0) for h in heads]
    missing = [o for o in outputs if o not in by_name]
    if missing:
        from converters.errors import did_you_mean

        raise ConversionError(
            f"{ctx.source}: the symbol has no output '{missing[0]}'{did_you_mean(missing[0], by_name)}"
        )
    return list(outputs)


def _typed_outputs(model: onnx.ModelProto) -> None:
    known = {vi.name: vi for vi in model.graph.value_info}
    for out in model.graph.output:
        if out.name in known and not out.HasField("type"):
            out.CopyFrom(known[out.name])


def supported_ops():
    return _REGISTRY.supported_ops()
