"""Registry of ONNX op handlers for the ONNX -> MXNet symbol writer.

A handler turns one ONNX node into MXNet nodes: ``handler(node, ctx)``. It reads data inputs
with ``ctx.sym(node, i)`` (a constant read as data becomes a weight in the params file),
constants with ``ctx.const(node, i, what)``, adds intermediate nodes with ``ctx.op(...)`` and
the node's result with ``ctx.out(node, ...)``. Anything MXNet 1.x cannot express exactly
raises ``node.error(why)``.
"""

from __future__ import annotations

from converters.op_registry import Handler, HandlerInfo, OpRegistry

_REGISTRY = OpRegistry("converters.mxnet.ops", label=" for MXNet")
register = _REGISTRY.register
get_handler = _REGISTRY.get_handler
supported_ops = _REGISTRY.supported_ops

__all__ = ["Handler", "HandlerInfo", "get_handler", "register", "supported_ops"]
