"""The editable graph view every pass works on, and the rule protocol.

A rule is three methods (the onnxscript rewriter's shape): ``match(graph)`` yields anchor nodes,
``check(graph, node)`` returns why the rule must not fire there (or None), ``rewrite(graph,
node)`` edits the graph. ``apply_rule`` runs a rule to a fixed point; every rewrite removes at
least one node, so it terminates.

Nodes are held as standalone ``NodeProto`` copies in a Python list (stable identities while
editing) and written back once by ``commit``; initializers are read in place and only the
added/removed ones are touched, so multi-hundred-MB weights are never copied wholesale.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from converters.errors import ConversionError

log = logging.getLogger("zoomake.passes")

SUBGRAPH_USE = None  # consumer marker: the value is read inside an If/Loop/Scan body


class Rule:
    """Base of a pass: ``name`` and the match/check/rewrite triple."""

    name = ""
    drops_unused_initializers = False  # only dead-code elimination removes pre-existing ones

    def match(self, g: Graph) -> Iterator[onnx.NodeProto]:
        raise NotImplementedError

    def check(self, g: Graph, node: onnx.NodeProto) -> str | None:
        return None

    def rewrite(self, g: Graph, node: onnx.NodeProto) -> None:
        raise NotImplementedError


def subgraph_names(node) -> set[str]:
    names: set[str] = set()
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for n in sub.node:
                names.update(n.input)
                names |= subgraph_names(n)
    return names


class Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in model.graph.node]
        self.graph_inputs = {v.name for v in model.graph.input}
        self.outputs = {v.name for v in model.graph.output}
        self.inits = {t.name: t for t in model.graph.initializer}
        self.new_inits: list[onnx.TensorProto] = []
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self._shapes: dict[str, list[int | None]] | None = None
        self.scratch: dict = {}  # a rule's per-node results between check() and rewrite()
        self._added: set[str] = set()
        self.refresh()
        self._used_at_start = set(self.consumers) | self.outputs

    def refresh(self) -> None:
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in self.nodes:
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i in node.input:
                if i:
                    self.consumers[i].append(node)
            for name in subgraph_names(node):
                self.consumers[name].append(SUBGRAPH_USE)
        self._alive = {id(n) for n in self.nodes}

    def alive(self, node) -> bool:
        return id(node) in self._alive

    # -- queries -------------------------------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is a constant (an initializer no graph input overrides)."""
        if name in self.inits and name not in self.graph_inputs:
            return numpy_helper.to_array(self.inits[name])
        return None

    def is_const(self, name: str) -> bool:
        return name in self.inits and name not in self.graph_inputs

    def single_use(self, value: str) -> bool:
        """Read by exactly one node input, and not a graph output."""
        uses = self.consumers.get(value, [])
        return len(uses) == 1 and uses[0] is not None and value not in self.outputs

    def used(self, value: str) -> bool:
        return bool(self.consumers.get(value)) or value in self.outputs

    def shape(self, name: str) -> list[int | None] | None:
        """Static shape from ONNX shape inference (computed once, before any rewrite)."""
        if self._shapes is None:
            self._shapes = _infer_shapes(self.model)
        return self._shapes.get(name)

    # -- edits ---------------------------------------------------------------------------------
    def add_const(self, hint: str, array: np.ndarray, exact: bool = False) -> str:
        """A new initializer named ``hint`` (made unique unless ``exact``: replacing a node)."""
        taken = set(self.inits) | set(self.producer) | self.graph_inputs
        name, k = hint, 0
        while name in taken and not exact:
            k += 1
            name = f"{hint}_{k}"
        t = numpy_helper.from_array(np.asarray(array), name)
        self.inits[name] = t
        self.new_inits.append(t)
        self._added.add(name)
        return name

    def remove(self, *nodes) -> None:
        gone = {id(n) for n in nodes}
        self.nodes = [n for n in self.nodes if id(n) not in gone]

    def replace_uses(self, old: str, new: str) -> None:
        for node in self.nodes:
            for k, i in enumerate(node.input):
                if i == old:
                    node.input[k] = new

    def bypass_refusal(self, src: str, dst: str) -> str | None:
        """Why a node whose output ``dst`` equals its input ``src`` cannot be removed, or None."""
        if SUBGRAPH_USE in self.consumers.get(dst, []) + self.consumers.get(src, []):
            return "a value is read inside a subgraph"
        if dst in self.outputs and (src not in self.producer or src in self.outputs):
            kind = "a graph output" if src in self.outputs else "a graph input or constant"
            return f"its output '{dst}' is a graph output and its input '{src}' is {kind}"
        return None

    def bypass(self, node, src: str, dst: str) -> None:
        """Remove ``node`` (``dst == src``); readers of ``dst`` read ``src``.

        A graph output keeps its name: then the producer of ``src`` writes ``dst`` instead.
        """
        assert self.bypass_refusal(src, dst) is None
        if dst not in self.outputs:
            self.replace_uses(dst, src)
        else:
            producer = self.producer[src]
            producer.output[list(producer.output).index(src)] = dst
            self.replace_uses(src, dst)
        self.remove(node)

    def commit(self, drop_all_unused: bool = False) -> onnx.ModelProto:
        """Write the nodes back; drop the initializers the edits orphaned (or all unused ones)."""
        g = self.model.graph
        del g.node[:]
        g.node.extend(self.nodes)
        g.initializer.extend(self.new_inits)
        self.new_inits = []
        used = {i for n in self.nodes for i in n.input} | self.outputs
        used |= {name for n in self.nodes for name in subgraph_names(n)}
        droppable = set(self.inits) if drop_all_unused else self._used_at_start | self._added
        for k in reversed(range(len(g.initializer))):
            name = g.initializer[k].name
            if name not in used and name not in self.graph_inputs and name in droppable:
                del g.initializer[k]
        values = used | {o for n in self.nodes for o in n.output}
        keep = [vi for vi in g.value_info if vi.name in values]
        if len(keep) != len(g.value_info):
            del g.value_info[:]
            g.value_info.extend(keep)
        return self.model


def attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def light_copy(model: onnx.ModelProto, limit: int = 1 << 16) -> onnx.ModelProto:
    """The model with large initializers turned into graph inputs (same types, no bytes)."""
    m = onnx.ModelProto()
    m.ir_version, m.producer_name = model.ir_version, model.producer_name
    m.opset_import.extend(model.opset_import)
    g = m.graph
    g.name = model.graph.name
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    names = {v.name for v in model.graph.input}
    for t in model.graph.initializer:
        if t.name in names:
            continue
        if t.ByteSize() > limit:  # sized without copying the bytes out of protobuf
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            g.initializer.append(t)
    return m


def check_graph(model: onnx.ModelProto, what: str) -> None:
    """Full ONNX check (with shape inference) of ``model``'s structure; one-line error on failure.

    ``what`` names the transformation, e.g. "fp16: conversion", for the message.
    """
    try:
        onnx.checker.check_model(light_copy(model), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConversionError(f"{what} produced an invalid graph ({first})") from None


def _infer_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(light_copy(model), data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError):
        return {}
    shapes = {}
    graph = inferred.graph
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [
                d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim
            ]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    return shapes


def apply_rule(model: onnx.ModelProto, rule: Rule, report: list | None = None) -> int:
    """Run ``rule`` on ``model`` in place until it no longer fires; returns how often it fired."""
    g = Graph(model)
    fired = 0
    refused: dict[int, str] = {}
    while True:
        changed = False
        for node in list(rule.match(g)):
            if not g.alive(node):
                continue
            reason = rule.check(g, node)
            if reason:
                label = node.name or node.output[0]
                refused[id(node)] = f"{rule.name}: {node.op_type} '{label}': {reason}"
                continue
            rule.rewrite(g, node)
            refused.pop(id(node), None)
            g.refresh()
            changed = True
            fired += 1
        if not changed:
            break
    for key, message in refused.items():
        if key not in g._alive:
            continue
        log.debug("not applied: %s", message)
        if report is not None:
            report.append(message)
    g.commit(drop_all_unused=rule.drops_unused_initializers)
    return fired
