"""Registry of ONNX op handlers for the ONNX -> Caffe converter.

A handler turns one ONNX node into Caffe layers: ``handler(node, ctx) -> None``. It reads its
data inputs with ``ctx.bottom(node, i)`` (the Caffe blob holding that value), constant inputs with
``ctx.const(node, i)``, emits layers with ``ctx.add_layer(...)`` and names each output's Caffe top
exactly as the ONNX value (or aliases it with ``ctx.alias``). It raises ``node.error(reason)``
for anything Caffe cannot express: nothing is written then.

Handlers are registered with ``@register("OpType", ...)``; registering an op twice is an error,
so two modules can never silently fight over an op type.
"""

from __future__ import annotations

from converters.op_registry import Handler, HandlerInfo, OpRegistry

_REGISTRY = OpRegistry("converters.onnx2caffe.ops", label="")
register = _REGISTRY.register
get_handler = _REGISTRY.get_handler
supported_ops = _REGISTRY.supported_ops

__all__ = ["Handler", "HandlerInfo", "get_handler", "register", "supported_ops"]
