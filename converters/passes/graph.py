"""The editable graph view every pass works on, and the rule protocol.

A rule is three methods (the onnxscript rewriter's shape): ``match(graph)`` yields anchor nodes,
``check(graph, node)`` returns why the rule must not fire there (or None), ``rewrite(graph,
node)`` edits the graph. ``apply_rule`` runs a rule to a fixed point; every rewrite removes at
least one node, so it terminates.

Nodes are held as standalone ``NodeProto`` copies in a Python list (stable identities while
editing) and written back once by ``commit``; initializers are read in place and only the
added/removed ones are touched, so multi-hundred-MB weights are never copied wholesale, and a
weight left in its file (``converters.lazy``) is read only when a rule needs its value.

Pass time is linear in the graph: the producer and reader indexes are built once per pass and
updated by each edit (a removal or rewire touches only the readers of the values involved; a
removed node is only marked dead and the list compacted once per sweep), and ``apply_rule``
consumes ``match`` lazily so a rewrite can enable later matches in the same sweep.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from converters.errors import ConversionError
from converters.lazy import tensor_array
from converters.onnx_utils import light_copy, model_opset

log = logging.getLogger("zoomake.passes")


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
    """Nodes plus producer/reader indexes that every edit keeps up to date (no rebuilds).

    Edits go through ``remove``, ``replace_uses``, ``bypass`` and ``edit`` (a node whose
    inputs/outputs a rule changes in place); each costs time in the number of readers touched,
    not in the graph's size, so a pass over the whole graph is linear.
    """

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self._nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in model.graph.node]
        self.graph_inputs = {v.name for v in model.graph.input}
        self.outputs = {v.name for v in model.graph.output}
        self.inits = {t.name: t for t in model.graph.initializer}
        self.new_inits: list[tuple[int, onnx.TensorProto]] = []
        self.opset = model_opset(model)  # None: no default-domain node can be evaluated
        self._shapes: dict[str, list[int | None]] | None = None
        self.scratch: dict = {}  # a rule's per-node results between check() and rewrite()
        self._added: set[str] = set()
        self.producer: dict[str, onnx.NodeProto] = {}
        # value -> {id(node): [node, how many of its inputs read the value]}, in reading order
        self._readers: dict[str, dict[int, list]] = {}
        self._subgraph_reads: dict[str, int] = defaultdict(int)  # value -> nodes reading it inside
        self._alive: dict[int, onnx.NodeProto] = {}
        self._removed: list[onnx.NodeProto] = []  # held so no id() is reused while we run
        self._stale = False  # _nodes still lists removed nodes
        for node in self._nodes:
            self._alive[id(node)] = node
            self._index(node)
        self._used_at_start = set(self._readers) | set(self._subgraph_reads) | self.outputs

    # -- index bookkeeping ---------------------------------------------------------------------
    def _index(self, node) -> None:
        for o in node.output:
            if o:
                self.producer[o] = node
        for i in node.input:
            if i:
                entry = self._readers.setdefault(i, {}).setdefault(id(node), [node, 0])
                entry[1] += 1
        for name in subgraph_names(node):
            self._subgraph_reads[name] += 1

    def _unindex(self, node) -> None:
        for o in node.output:
            if o and self.producer.get(o) is node:
                del self.producer[o]
        for i in node.input:
            if i:
                readers = self._readers[i]
                entry = readers[id(node)]
                entry[1] -= 1
                if not entry[1]:
                    del readers[id(node)]
                    if not readers:
                        del self._readers[i]
        for name in subgraph_names(node):
            self._subgraph_reads[name] -= 1
            if not self._subgraph_reads[name]:
                del self._subgraph_reads[name]

    @property
    def nodes(self) -> list[onnx.NodeProto]:
        """The live nodes in graph order (a fresh list after removals: safe to hold while editing)."""
        if self._stale:
            self._nodes = [n for n in self._nodes if id(n) in self._alive]
            self._stale = False
        return self._nodes

    def alive(self, node) -> bool:
        return id(node) in self._alive

    def alive_id(self, key: int) -> bool:
        return key in self._alive

    # -- queries -------------------------------------------------------------------------------
    def readers(self, value: str) -> list[onnx.NodeProto]:
        """The nodes reading ``value``, once per input slot (a node reading it twice: twice)."""
        return [node for node, count in self._readers.get(value, {}).values() for _ in range(count)]

    def read_in_subgraph(self, value: str) -> bool:
        return value in self._subgraph_reads

    def const(self, name: str) -> np.ndarray | None:
        """The value of ``name`` if it is a constant (an initializer no graph input overrides)."""
        if name in self.inits and name not in self.graph_inputs:
            return tensor_array(self.inits[name])
        return None

    def is_const(self, name: str) -> bool:
        return name in self.inits and name not in self.graph_inputs

    def single_use(self, value: str) -> bool:
        """Read by exactly one node input, and not a graph output nor inside a subgraph."""
        readers = self._readers.get(value, {})
        if len(readers) != 1 or value in self.outputs or value in self._subgraph_reads:
            return False
        return next(iter(readers.values()))[1] == 1

    def used(self, value: str) -> bool:
        return value in self._readers or value in self._subgraph_reads or value in self.outputs

    def shape(self, name: str) -> list[int | None] | None:
        """Static shape from ONNX shape inference (of the model as it was before any rewrite)."""
        if self._shapes is None:
            self._shapes = _infer_shapes(self.model)  # self.model is untouched until commit
        return self._shapes.get(name)

    # -- edits ---------------------------------------------------------------------------------
    def add_const(self, hint: str, array: np.ndarray, exact: bool = False, rank: int = 0) -> str:
        """A new initializer named ``hint`` (made unique unless ``exact``: replacing a node).

        New initializers are written in order of ``rank``, then of creation (see fold_constants).
        """

        def taken(n: str) -> bool:
            return n in self.inits or n in self.producer or n in self.graph_inputs

        name, k = hint, 0
        while taken(name) and not exact:
            k += 1
            name = f"{hint}_{k}"
        t = numpy_helper.from_array(np.asarray(array), name)
        self.inits[name] = t
        self.new_inits.append((rank, t))
        self._added.add(name)
        return name

    def remove(self, *nodes) -> None:
        for node in nodes:
            if self._alive.pop(id(node), None) is not None:
                self._unindex(node)
                self._removed.append(node)
                self._stale = True

    @contextlib.contextmanager
    def edit(self, node) -> Iterator[onnx.NodeProto]:
        """Change ``node``'s inputs/outputs in place inside this block; the indexes follow."""
        self._unindex(node)
        try:
            yield node
        finally:
            self._index(node)

    def replace_uses(self, old: str, new: str) -> None:
        """Every node input reading ``old`` reads ``new`` (subgraph bodies are not touched)."""
        moved = self._readers.pop(old, {})
        target = self._readers.setdefault(new, {}) if moved else {}
        for key, (node, count) in moved.items():
            for k, i in enumerate(node.input):
                if i == old:
                    node.input[k] = new
            entry = target.setdefault(key, [node, 0])
            entry[1] += count

    def bypass_refusal(self, src: str, dst: str) -> str | None:
        """Why a node whose output ``dst`` equals its input ``src`` cannot be removed, or None."""
        if self.read_in_subgraph(dst) or self.read_in_subgraph(src):
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
        self.remove(node)
        if dst not in self.outputs:
            self.replace_uses(dst, src)
        else:
            producer = self.producer[src]
            with self.edit(producer):
                producer.output[list(producer.output).index(src)] = dst
            self.replace_uses(src, dst)

    def commit(self, drop_all_unused: bool = False) -> onnx.ModelProto:
        """Write the nodes back; drop the initializers the edits orphaned (or all unused ones)."""
        g = self.model.graph
        del g.node[:]
        g.node.extend(self.nodes)
        g.initializer.extend(t for _, t in sorted(self.new_inits, key=lambda rt: rt[0]))
        self.new_inits = []
        used = set(self._readers) | set(self._subgraph_reads) | self.outputs
        droppable = set(self.inits) if drop_all_unused else self._used_at_start | self._added
        for k in reversed(range(len(g.initializer))):
            name = g.initializer[k].name
            if name not in used and name not in self.graph_inputs and name in droppable:
                del g.initializer[k]
        values = used | set(self.producer)
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
    while True:  # a sweep; the indexes follow each rewrite, so one sweep is linear
        changed = False
        # Lazily: a rewrite can make a later node match in the same sweep (a chain of
        # constants folds front to back in one sweep, as the graph is topologically sorted).
        for node in rule.match(g):
            if not g.alive(node):
                continue
            reason = rule.check(g, node)
            if reason:
                label = node.name or node.output[0]
                refused[id(node)] = f"{rule.name}: {node.op_type} '{label}': {reason}"
                continue
            rule.rewrite(g, node)
            refused.pop(id(node), None)
            changed = True
            fired += 1
        if not changed:
            break
    for key, message in refused.items():
        if not g.alive_id(key):
            continue
        log.debug("not applied: %s", message)
        if report is not None:
            report.append(message)
    g.commit(drop_all_unused=rule.drops_unused_initializers)
    return fired
