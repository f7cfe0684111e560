"""MXNet 1.x as a target (ONNX -> symbol JSON + params) and as a source (symbol + params ->
ONNX), with MXNet 1.9.1 itself as the runtime (a side environment, ``runner``).

No mxnet import here: both files are written and read by our own code (``symbol``,
``ndarray_file``, ``export``, ``source``).
"""
