"""Small ONNX facts every converter and pass needs, each written once.

Neutral ground: this module imports nothing of zoomake but ``converters.errors``, so the Caffe
reader, the Caffe writer, the PyTorch writer, the passes and ``pipelines`` can all use it
without an arrow back up the house.
"""

from __future__ import annotations

import onnx

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
