"""eliminate_dead_nodes: nodes none of whose outputs reach a graph output are removed.

Liveness is computed backwards from the graph outputs (and from values read inside subgraphs);
every initializer nobody reads is dropped too (other passes drop only those they orphaned). A node with any
live output stays whole (ONNX nodes cannot drop an output's computation separately); a node
whose outputs are unused but is in a non-default domain stays too, because custom ops may have
side effects this pass cannot see.
"""

from __future__ import annotations

from converters.passes.graph import Rule


def _live(g) -> set[int]:
    live_values = set(g.outputs)
    live_nodes: set[int] = set()
    for node in reversed(g.nodes):  # graphs are topologically sorted: readers come later
        if any(o in live_values or g.read_in_subgraph(o) for o in node.output if o) or (
            node.domain not in ("", "ai.onnx")
        ):
            live_nodes.add(id(node))
            live_values.update(i for i in node.input if i)
    return live_nodes


class EliminateDeadNodes(Rule):
    name = "eliminate_dead_nodes"
    drops_unused_initializers = True

    def match(self, g):
        live = _live(g)
        return [n for n in g.nodes if id(n) not in live]

    def rewrite(self, g, node):
        g.remove(node)


RULE = EliminateDeadNodes()
