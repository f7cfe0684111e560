"""MXNet -> ONNX handlers, one module per op family (imported explicitly, registering on import)."""

from converters.mxnet.importers import act, conv, dense, eltwise, norm, pool, shape

ALL_MODULES = [act, conv, dense, eltwise, norm, pool, shape]
