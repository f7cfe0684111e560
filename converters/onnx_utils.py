"""Small ONNX facts every converter and pass needs, each written once.

Neutral ground: this module imports nothing of zoomake but ``converters.errors``, so the Caffe
reader, the Caffe writer, the PyTorch writer, the passes and ``pipelines`` can all use it
without an arrow back up the house.
"""

from __future__ import annotations

# ONNX ops whose result is not a pure function of their inputs: never folded at conversion time,
# and kept in float32 by the fp16 conversion (halving a seeded generator changes its stream).
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
     "Multinomial"}
)  # fmt: skip
