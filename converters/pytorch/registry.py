"""Registry of ONNX op handlers for the ONNX -> PyTorch code generator.

A handler turns one ONNX node into lines of a generated ``nn.Module``: ``handler(node, ctx)``.
It reads inputs with ``ctx.var(node, i)`` (a Python expression) or ``ctx.const(node, i)`` (a
constant's array), declares layers with ``ctx.add_module(...)``, and assigns outputs with
``ctx.assign(node, expr)``. Anything torch cannot express exactly raises ``ctx.refuse(node, why)``.

Registering an op twice is an error, so two modules can never silently fight over an op type.
"""

from __future__ import annotations

from converters.op_registry import Handler, HandlerInfo, OpRegistry

_REGISTRY = OpRegistry("converters.pytorch.ops", label=" for PyTorch")
register = _REGISTRY.register
get_handler = _REGISTRY.get_handler
supported_ops = _REGISTRY.supported_ops

__all__ = ["Handler", "HandlerInfo", "get_handler", "register", "supported_ops"]
