"""Registry of Caffe layer handlers.

A handler converts one Caffe layer into ONNX nodes: ``handler(layer, ctx) -> None``. It reads
its bottoms with ``ctx.input(layer, i)``, emits nodes with ``ctx.node(...)`` and declares each
top with ``ctx.set_top(layer, i, onnx_name, shape)`` where ``shape`` is computed by Caffe's own
rules (the converter checks it against ONNX shape inference afterwards).

Handlers are registered with ``@register("TypeName", ...)``; registering a type twice is an
error, so two modules can never silently fight over a layer type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[..., None]


@dataclass(frozen=True)
class HandlerInfo:
    type_name: str
    handler: Handler
    family: str  # module name, e.g. "conv"
    notes: str  # one line for docs/supported_layers.md


_HANDLERS: dict[str, HandlerInfo] = {}

# Layers that compute post-processing (NMS, proposal decoding, ...) outside what a deployed
# ONNX graph should contain. The converter asks for a cut before them instead of failing vaguely.
# Yolov3DetectionOutput/YoloDetectionOutput: MobileNet-YOLO (eric612); Region: YOLOv2 Caffe ports.
POSTPROCESSING_TYPES = frozenset(
    {"Proposal", "Python", "PSROIPooling", "YoloDetectionOutput",
     "Yolov3DetectionOutput", "Region"}
)  # fmt: skip


def register(*type_names: str, notes: str = "") -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of each Caffe layer type in ``type_names``."""

    def deco(fn: Handler) -> Handler:
        family = fn.__module__.rsplit(".", 1)[-1]
        doc = (fn.__doc__ or "").strip()
        doc_line = notes or (doc.splitlines()[0] if doc else "")
        for name in type_names:
            if name in _HANDLERS:
                other = _HANDLERS[name]
                raise RuntimeError(
                    f"Caffe layer type {name!r} registered twice: "
                    f"{other.family}.{other.handler.__name__} and {family}.{fn.__name__}"
                )
            _HANDLERS[name] = HandlerInfo(name, fn, family, doc_line)
        return fn

    return deco


def get_handler(type_name: str) -> HandlerInfo | None:
    _load_layers()
    return _HANDLERS.get(type_name)


def supported_types() -> list[HandlerInfo]:
    _load_layers()
    return sorted(_HANDLERS.values(), key=lambda h: (h.family, h.type_name))


def _load_layers() -> None:
    # Explicit import list (no filesystem scanning): the registry is exactly these modules.
    from converters.caffe.layers import ALL_MODULES  # noqa: F401
