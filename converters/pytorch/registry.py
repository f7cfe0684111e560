"""Registry of ONNX op handlers for the ONNX -> PyTorch code generator.

A handler turns one ONNX node into lines of a generated ``nn.Module``: ``handler(node, ctx)``.
It reads inputs with ``ctx.var(node, i)`` (a Python expression) or ``ctx.const(node, i)`` (a
constant's array), declares layers with ``ctx.add_module(...)``, and assigns outputs with
``ctx.assign(node, expr)``. Anything torch cannot express exactly raises ``ctx.refuse(node, why)``.

Registering an op twice is an error, so two modules can never silently fight over an op type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[..., None]


@dataclass(frozen=True)
class HandlerInfo:
    op_type: str
    handler: Handler
    family: str
    notes: str


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
                    f"ONNX op {name!r} registered twice for PyTorch: "
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
    from converters.pytorch.ops import ALL_MODULES  # noqa: F401
