"""ONNX -> MXNet handlers, one module per op family (imported explicitly, registering on import)."""

from converters.mxnet.ops import (
    activation,
    conv,
    eltwise,
    gemm,
    norm,
    pooling,
    resize,
    shape,
    slicing,
    softmax,
)

ALL_MODULES = [activation, conv, eltwise, gemm, norm, pooling, resize, shape, slicing, softmax]
