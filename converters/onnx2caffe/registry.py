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

from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[..., None]


@dataclass(frozen=True)
class HandlerInfo:
    op_type: str
    handler: Handler
    family: str  # module name, e.g. "conv"
    notes: str  # one line for generated documentation


_HANDLERS: dict[str, HandlerInfo] = {}


def register(*op_types: str, notes: str = "") -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of each ONNX op type in ``op_types``."""

    def deco(fn: Handler) -> Handler:
        family = fn.__module__.rsplit(".", 1)[-1]
        doc = (fn.__doc__ or "").strip()
        doc_line = notes or (doc.splitlines()[0] if doc else "")
        for name in op_types:
            if name in _HANDLERS:
                other = _HANDLERS[name]
                raise RuntimeError(
                    f"ONNX op {name!r} registered twice: "
                    f"{other.family}.{other.handler.__name__} and {family}.{fn.__name__}"
                )
            _HANDLERS[name] = HandlerInfo(name, fn, family, doc_line)
        return fn

    return deco


def get_handler(op_type: str) -> HandlerInfo | None:
    _load_ops()
    return _HANDLERS.get(op_type)


def supported_ops() -> list[HandlerInfo]:
    _load_ops()
    return sorted(_HANDLERS.values(), key=lambda h: (h.family, h.op_type))


def _load_ops() -> None:
    # Explicit import list (no filesystem scanning): the registry is exactly these modules.
    from converters.onnx2caffe.ops import ALL_MODULES  # noqa: F401
