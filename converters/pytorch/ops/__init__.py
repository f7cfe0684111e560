"""ONNX op families for the PyTorch code generator (imported explicitly, no scanning)."""

from converters.pytorch.ops import (
    activation,
    conv,
    eltwise,
    gemm,
    norm,
    pooling,
    reduce,
    resize,
    shape,
    slicing,
    softmax,
)

ALL_MODULES = (activation, conv, eltwise, gemm, norm, pooling, reduce, resize, shape, slicing,
               softmax)  # fmt: skip
