"""ONNX op handler modules, one per family. Importing this package registers every handler.

The list is explicit on purpose (no directory scanning): what is registered is what is listed.
"""

from converters.onnx2caffe.ops import (
    activation,
    conv,
    eltwise,
    gemm,
    norm,
    passthrough,
    pooling,
    resize,
    roi_pooling,
    shape,
    slicing,
    softmax,
)

ALL_MODULES = (activation, conv, eltwise, gemm, norm, passthrough, pooling, resize, roi_pooling,
               shape, slicing, softmax)  # fmt: skip
