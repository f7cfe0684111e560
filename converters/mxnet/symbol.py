"""MXNet 1.x symbol JSON (``<prefix>-symbol.json``): a graph builder that writes it.

Layout (what ``mx.sym.Symbol.tojson()`` writes in 1.x and ``mx.sym.load`` reads)::

    {"nodes": [{"op": "null" | "<Op>", "name": str, "attrs": {str: str}, "inputs": [[node, out, 0]]}],
     "arg_nodes": [indices of the "null" nodes],
     "node_row_ptr": [prefix sums of each node's output count],
     "heads": [[node, out, 0], ...],
     "attrs": {"mxnet_version": ["int", 10901]}}

Every attribute value is a string (tuples as ``(3, 3)``, booleans ``True``/``False``). Weights
are ``null`` nodes (with their ``__shape__``); MXNet decides which of them are auxiliary states (BatchNorm's moving
statistics) from the op, and the params file stores them as ``aux:<name>``, the rest ``arg:``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from converters.names import unique_name

MXNET_VERSION = 10901  # the JSON records the writer's version; 1.9.1 is what we verify with
# Ops with more than one output node entry (BatchNorm keeps its mean/var outputs hidden).
_OUTPUTS = {"BatchNorm": 3}


@dataclass(frozen=True)
class Ref:
    """One output of one node."""

    node: int
    index: int = 0


def attr_str(value) -> str:
    """An attribute as MXNet writes it: tuples ``(1, 2)``, ``True``/``False``, exact floats."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(attr_str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, float | np.floating):
        # The shortest text that reads back as the same double; float32 values stay exact.
        return repr(float(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value)


@dataclass
class Graph:
    nodes: list[dict] = field(default_factory=list)
    params: dict[str, np.ndarray] = field(default_factory=dict)  # "arg:x" / "aux:x" -> value
    heads: list[Ref] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    reserved: set[str] = field(default_factory=set)  # graph output names, for their nodes only
    n_outputs: list[int] = field(default_factory=list)

    def reserve(self, names) -> None:
        self.reserved.update(names)
        self.used.update(names)

    def name(self, hint: str, exact: bool = False) -> str:
        """``hint`` made unique; a reserved name only when ``exact`` (and only once)."""
        if exact and hint in self.reserved:
            self.reserved.discard(hint)
            return hint
        return unique_name(hint, self.used)

    def variable(self, hint: str, value: np.ndarray | None = None, aux: bool = False,
                 exact: bool = False, shape=None) -> Ref:  # fmt: skip
        """A ``null`` node: a graph input (no value; its static ``shape`` recorded) or a weight
        stored in the params file."""
        name = self.name(hint, exact)
        node = {"op": "null", "name": name, "inputs": []}
        self.nodes.append(node)
        self.n_outputs.append(1)
        if shape is not None:  # what mx.sym.var(name, shape=...) writes
            node["attrs"] = {"__shape__": attr_str(tuple(int(d) for d in shape))}
        if value is not None:
            # The shape is recorded on the variable: a broadcast operand's shape cannot be
            # inferred from the op, and infer_shape / SymbolBlock need every argument's.
            node["attrs"] = {"__shape__": attr_str(tuple(np.shape(value)) or (1,))}
            self.params[("aux:" if aux else "arg:") + name] = np.ascontiguousarray(value)
        return Ref(len(self.nodes) - 1)

    def op(self, op: str, inputs: list[Ref], attrs: dict | None = None, hint: str = "",
           n_out: int = 1, exact: bool = False) -> list[Ref]:  # fmt: skip
        node = {"op": op, "name": self.name(hint or op.lower(), exact)}
        if attrs:
            node["attrs"] = {k: attr_str(v) for k, v in attrs.items() if v is not None}
        node["inputs"] = [[r.node, r.index, 0] for r in inputs]
        self.nodes.append(node)
        self.n_outputs.append(max(n_out, _OUTPUTS.get(op, 1)))
        k = len(self.nodes) - 1
        return [Ref(k, i) for i in range(n_out)]

    def node_name(self, ref: Ref) -> str:
        return self.nodes[ref.node]["name"]

    def to_json(self) -> str:
        arg_nodes = [i for i, n in enumerate(self.nodes) if n["op"] == "null"]
        row_ptr = [0]
        for count in self.n_outputs:
            row_ptr.append(row_ptr[-1] + count)
        doc = {
            "nodes": self.nodes,
            "arg_nodes": arg_nodes,
            "node_row_ptr": row_ptr,
            "heads": [[h.node, h.index, 0] for h in self.heads],
            "attrs": {"mxnet_version": ["int", MXNET_VERSION]},
        }
        return json.dumps(doc, indent=2) + "\n"


def output_name(node: dict, index: int, n_visible: int) -> str:
    """The name ``sym.list_outputs()`` gives output ``index`` of ``node``."""
    return f"{node['name']}_output" + (str(index) if n_visible > 1 else "")
