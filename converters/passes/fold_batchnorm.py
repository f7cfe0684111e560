"""fold_batchnorm: BatchNormalization and per-channel affine ops folded into Conv/ConvTranspose/Gemm.

Caffe's BatchNorm + Scale pair arrives as ``BatchNormalization -> Mul(gamma) -> Add(beta)``; a
whole chain of per-channel affine steps after a linear op is folded at once. Each step maps
``y = x * s + t`` per output channel ``o`` and the chain composes in float64:
  BatchNormalization:  s = g / sqrt(v + eps),  t = beta - m * s
  Mul(k): s = k, t = 0    Div(k): s = 1 / k, t = 0    Add(k): s = 1, t = k    Sub(x, k): t = -k
  (s2, t2) after (s1, t1):  s = s1 * s2,  t = t1 * s2 + t2
Then, with the op's weights ``W`` and bias ``b`` (0 if absent), cast to float32 once:
  Conv           W'[o, ...] = W[o, ...] * s[o]                      b' = b * s + t
  ConvTranspose  W'[i, j, ...] = W[i, j, ...] * s[g(i) * C_out/g + j]  (weights are (C_in, C_out/g, ...))
  Gemm (Y = alpha A B + beta C)   B' scaled along N;  C' = beta * C * s + t,  beta' = 1
The constant of a Mul/Add/Sub/Div must act per channel: after right-aligned broadcasting it is
1 everywhere except (optionally) the channel axis, and it must not raise the output's rank.

Refused (reported, graph unchanged) when the weights, bias or step parameters are not constants,
the linear op's output has other consumers or is a graph output, or a BatchNormalization is in
training mode. Why our own rule rather than onnxslim's/onnxoptimizer's ConvBN fusion: those
compute in float32, fold one BatchNormalization at a time (the Scale Mul/Add stays behind, or
needs a second fusion and a constant-folding pass), and know no Gemm.
"""

from __future__ import annotations

import numpy as np

from converters.passes.graph import Graph, Rule, attr

LINEAR = ("Conv", "ConvTranspose", "Gemm")
AFFINE = ("BatchNormalization", "Mul", "Add", "Sub", "Div")


def _channels_and_rank(g: Graph, node) -> tuple[int, int] | None:
    w = g.const(node.input[1])
    if w is None:
        return None
    if node.op_type == "Conv":
        return w.shape[0], w.ndim
    if node.op_type == "ConvTranspose":
        return w.shape[1] * attr(node, "group", 1), w.ndim
    return (w.shape[0] if attr(node, "transB", 0) else w.shape[1]), 2


def _step(g: Graph, node, value: str, channels: int, rank: int):
    """``(s, t, None)`` for an affine step reading ``value``, or ``(None, None, reason)``."""
    if node.op_type == "BatchNormalization":
        if node.input[0] != value:
            return None, None, "reads the linear output as a parameter"
        if attr(node, "training_mode", 0):
            return None, None, "BatchNormalization is in training mode"
        if any(o and g.used(o) for o in node.output[1:]):
            return None, None, "BatchNormalization's running-statistics outputs are used"
        params = [g.const(i) for i in node.input[1:5]]
        if any(p is None for p in params):
            return None, None, "BatchNormalization parameters are not constants"
        gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
        if not all(p.size == channels for p in (gamma, beta, mean, var)):
            return None, None, f"BatchNormalization parameters are not {channels} per channel"
        s = gamma / np.sqrt(var + attr(node, "epsilon", 1e-5))
        return s, beta - mean * s, None
    other = [i for i in node.input if i != value]
    if len(other) != 1 or (node.op_type in ("Sub", "Div") and node.input[0] != value):
        return None, None, f"{node.op_type} does not take the linear output as its first operand"
    k = g.const(other[0])
    if k is None:
        return None, None, f"{node.op_type} operand '{other[0]}' is not a constant"
    if not np.issubdtype(k.dtype, np.floating) or k.ndim > rank:
        return None, None, f"{node.op_type} operand has shape {list(k.shape)}, not per channel"
    full = [1] * (rank - k.ndim) + list(k.shape)
    if any(d != 1 for i, d in enumerate(full) if i != 1) or full[1] not in (1, channels):
        return None, None, f"{node.op_type} operand has shape {list(k.shape)}, not per channel"
    k = np.broadcast_to(k.astype(np.float64).reshape(-1), (channels,))
    if node.op_type == "Div" and np.any(k == 0):
        return None, None, "Div by a zero constant"
    one, zero = np.ones(channels), np.zeros(channels)
    return {"Mul": (k, zero), "Div": (1 / k, zero), "Add": (one, k), "Sub": (one, -k)}[
        node.op_type
    ] + (None,)


class FoldBatchNorm(Rule):
    name = "fold_batchnorm"

    def match(self, g):
        for node in g.nodes:
            if node.op_type in LINEAR and any(
                c.op_type in AFFINE for c in g.readers(node.output[0])
            ):
                yield node

    def chain(self, g: Graph, node):
        """(steps, s, t, reason): the longest foldable affine chain after ``node``."""
        shape = _channels_and_rank(g, node)
        if shape is None:
            return [], None, None, "weights are not a constant"
        channels, rank = shape
        if any(i and not g.is_const(i) for i in node.input[2:3]):
            return [], None, None, "bias is not a constant"
        steps, s, t = [], np.ones(channels), np.zeros(channels)
        value = node.output[0]
        while g.single_use(value):
            follower = g.readers(value)[0]
            if follower.op_type not in AFFINE:
                break
            s2, t2, reason = _step(g, follower, value, channels, rank)
            if reason:
                return steps, s, t, (None if steps else reason)
            steps.append(follower)
            s, t = s * s2, t * s2 + t2
            value = follower.output[0]
        if not steps:
            used = "is a graph output" if value in g.outputs else "has other consumers"
            return steps, s, t, f"its output {used}"
        return steps, s, t, None

    def check(self, g, node):
        return self.chain(g, node)[3]

    def rewrite(self, g, node):
        steps, s, t, _ = self.chain(g, node)
        w = g.const(node.input[1]).astype(np.float64)
        has_bias = len(node.input) > 2 and bool(node.input[2])
        b = g.const(node.input[2]).astype(np.float64) if has_bias else np.zeros(1)
        label = node.name or node.output[0]
        if node.op_type == "Conv":
            w = w * s.reshape(-1, *[1] * (w.ndim - 1))
            bias = b * s + t
        elif node.op_type == "ConvTranspose":
            group = attr(node, "group", 1)
            grouped = w.reshape(group, w.shape[0] // group, *w.shape[1:])
            grouped = grouped * s.reshape(group, 1, w.shape[1], *[1] * (w.ndim - 2))
            w, bias = grouped.reshape(w.shape), b * s + t
        else:  # Gemm: Y[:, n] scales with column n of op(B)
            w = w * (s[:, None] if attr(node, "transB", 0) else s[None, :])
            beta = attr(node, "beta", 1.0) if has_bias else 0.0
            bias = beta * np.broadcast_to(b, np.broadcast_shapes(b.shape, s.shape)) * s + t
            _set_attr(node, "beta", 1.0)
        dtype = g.const(node.input[1]).dtype
        w_name = g.add_const(f"{label}/W_folded", w.astype(dtype))
        b_name = g.add_const(f"{label}/B_folded", bias.astype(dtype))
        g.remove(*steps)
        with g.edit(node):
            node.input[1] = w_name
            if has_bias:
                node.input[2] = b_name
            else:
                node.input.append(b_name)
            node.output[0] = steps[-1].output[0]


def _set_attr(node, name: str, value: float) -> None:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
            break
    node.attribute.append(helper.make_attribute(name, value))


RULE = FoldBatchNorm()
