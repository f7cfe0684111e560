"""State of one ONNX -> PyTorch generation: static shapes, constants, layers and forward lines."""

from __future__ import annotations

import keyword
import re

import numpy as np
import onnx
from onnx import helper, numpy_helper

from converters.errors import UnsupportedError
from converters.onnx_utils import require_opset


class Context:
    def __init__(self, model: onnx.ModelProto, source: str):
        self.model = model
        self.source = source
        self.opset = require_opset(model, source)
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in model.graph.initializer
        }
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
            dims = vi.type.tensor_type.shape.dim
            if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(d.dim_value for d in dims)
        self.vars: dict[str, str] = {}
        self.used_names: set[str] = set()
        self.modules: list[tuple[str, str]] = []  # (attribute, constructor expression)
        self.state: dict[str, np.ndarray] = {}  # state_dict key -> value
        self.buffers: list[tuple[str, tuple[int, ...], str]] = []  # (attr, shape, dtype)
        self.lines: list[str] = []
        self.helpers: set[str] = set()  # module-level functions model.py needs ("ssd")

    # ---- names -------------------------------------------------------------------------
    def _ident(self, raw: str, prefix: str) -> str:
        base = re.sub(r"\W", "_", raw).strip("_") or prefix
        if base[0].isdigit() or keyword.iskeyword(base):
            base = f"{prefix}_{base}"
        name, k = base, 1
        while name in self.used_names:
            k += 1
            name = f"{base}_{k}"
        self.used_names.add(name)
        return name

    def bind_input(self, onnx_name: str) -> str:
        self.vars[onnx_name] = self._ident(onnx_name, "x")
        return self.vars[onnx_name]

    # ---- reading inputs -----------------------------------------------------------------
    def has_input(self, node, i: int) -> bool:
        return len(node.input) > i and node.input[i] != ""

    def is_const(self, node, i: int) -> bool:
        return self.has_input(node, i) and node.input[i] in self.consts

    def const(self, node, i: int, what: str = "input") -> np.ndarray:
        if not self.is_const(node, i):
            raise self.refuse(node, f"{what} (input {i}) must be a constant")
        return self.consts[node.input[i]]

    def var(self, node, i: int) -> str:
        name = node.input[i]
        if name in self.vars:
            return self.vars[name]
        if name in self.consts:  # a constant read as data: a buffer in the state_dict
            return self.add_buffer(node, self.consts[name], name)
        raise self.refuse(node, f"input {name!r} is produced by no earlier node")

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise UnsupportedError(
                f"{self.source}: value {name!r} has no static shape (give fixed input shapes)"
            )
        return self.shapes[name]

    def attr(self, node, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    # ---- writing ------------------------------------------------------------------------
    def add_module(self, node, ctor: str, params: dict[str, np.ndarray]) -> str:
        attr = self._ident(node.name or f"{node.op_type}_{node.output[0]}", "layer")
        self.modules.append((attr, ctor))
        for key, value in params.items():
            self.state[f"{attr}.{key}"] = np.ascontiguousarray(value)
        return f"self.{attr}"

    def add_buffer(self, node, value: np.ndarray, raw_name: str) -> str:
        attr = self._ident(f"const_{raw_name}", "const")
        value = np.asarray(value)
        self.buffers.append((attr, tuple(value.shape), str(value.dtype)))
        self.state[attr] = np.ascontiguousarray(value)
        self.vars[raw_name] = f"self.{attr}"
        return f"self.{attr}"

    def assign(self, node, expr: str, n_outputs: int = 1) -> None:
        names = [self._ident(o, "v") for o in node.output[:n_outputs]]
        for o, n in zip(node.output, names, strict=False):
            self.vars[o] = n
        lhs = ", ".join(names) + ("," if n_outputs > 1 and len(names) == 1 else "")
        label = f"  # {node.op_type} {node.name}" if node.name else f"  # {node.op_type}"
        self.lines.append(f"{lhs} = {expr}{label}")

    def alias(self, node, i: int = 0) -> None:
        self.vars[node.output[0]] = self.var(node, i)

    def refuse(self, node, reason: str) -> UnsupportedError:
        return UnsupportedError(
            f"{self.source}: node {node.name or node.output[0]!r} ({node.op_type}): {reason}"
        )
