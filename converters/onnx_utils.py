"""Small ONNX facts every converter and pass needs, each written once.

Neutral ground: this module imports nothing of zoomake but ``converters.errors``, so the Caffe
reader, the Caffe writer, the PyTorch writer, the passes and ``pipelines`` can all use it
without an arrow back up the house.
"""

from __future__ import annotations

import onnx
from onnx import helper

from converters.errors import ConversionError

# ONNX ops whose result is not a pure function of their inputs: never folded at conversion time,
# and kept in float32 by the fp16 conversion (halving a seeded generator changes its stream).
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
     "Multinomial"}
)  # fmt: skip

DEFAULT_DOMAINS = ("", "ai.onnx")


def model_opset(model: onnx.ModelProto) -> int | None:
    """The version of the default-domain ONNX opset ``model`` imports; None if it imports none."""
    return next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)


def require_opset(model: onnx.ModelProto, where: str) -> int:
    """``model_opset``, or one error line when the model imports no default-domain opset."""
    opset = model_opset(model)
    if opset is None:
        raise ConversionError(f"{where}: the model imports no default-domain ONNX opset")
    return opset


def convert_opset(model: onnx.ModelProto, opset: int, where: str = "") -> onnx.ModelProto:
    """``model`` converted to ``opset`` by onnx's version converter (a no-op at its own opset),
    stamped with the lowest IR version that opset needs: exporters often stamp IR versions newer
    than the runtimes we deploy to accept, although nothing in the model needs them."""
    current = model_opset(model)
    if current != opset:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, opset)
        except Exception as exc:  # the converter raises bare RuntimeErrors, names no type
            lines = str(exc).strip().splitlines()
            first = lines[0] if lines else type(exc).__name__
            prefix = f"{where}: " if where else ""
            raise ConversionError(
                f"{prefix}cannot convert the model from opset {current} to {opset}: {first}"
            ) from None
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    return model
