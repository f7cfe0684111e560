"""One registry of ONNX op handlers, shared by the converters that read ONNX (-> Caffe, -> PyTorch).

Handlers are registered with ``@registry.register("OpType", ...)``; registering an op twice is an
error, so two modules can never silently fight over an op type. The handler modules are imported
explicitly (an ``ALL_MODULES`` list in the ops package), never found by scanning the filesystem.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[..., None]


@dataclass(frozen=True)
class HandlerInfo:
    op_type: str
    handler: Handler
    family: str  # module name, e.g. "conv"
    notes: str  # one line for generated documentation


class OpRegistry:
    def __init__(self, ops_package: str, label: str = "") -> None:
        self._ops_package = ops_package  # imported on first lookup: it registers every handler
        self._label = label  # says which converter in the duplicate-registration error
        self._handlers: dict[str, HandlerInfo] = {}

    def register(self, *op_types: str, notes: str = "") -> Callable[[Handler], Handler]:
        """Register ``fn`` as the handler of each ONNX op type in ``op_types``."""

        def deco(fn: Handler) -> Handler:
            family = fn.__module__.rsplit(".", 1)[-1]
            doc = (fn.__doc__ or "").strip()
            doc_line = notes or (doc.splitlines()[0] if doc else "")
            for name in op_types:
                if name in self._handlers:
                    other = self._handlers[name]
                    raise RuntimeError(
                        f"ONNX op {name!r} registered twice{self._label}: "
                        f"{other.family}.{other.handler.__name__} and {family}.{fn.__name__}"
                    )
                self._handlers[name] = HandlerInfo(name, fn, family, doc_line)
            return fn

        return deco

    def get_handler(self, op_type: str) -> HandlerInfo | None:
        self._load_ops()
        return self._handlers.get(op_type)

    def supported_ops(self) -> list[HandlerInfo]:
        self._load_ops()
        return sorted(self._handlers.values(), key=lambda h: (h.family, h.op_type))

    def _load_ops(self) -> None:
        importlib.import_module(self._ops_package)
