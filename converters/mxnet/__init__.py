"""MXNet 1.x as a target (ONNX -> symbol JSON + params) and as a source (symbol + params ->
ONNX), with MXNet 1.9.1 itself as the runtime (a side environment, ``runner``).

No mxnet import here: both files are written and read by our own code (``symbol``,
``ndarray_file``, ``export``, ``source``); ``mean`` is the caffe_converter's convert_mean.

Gluon -> Caffe (GluonConverter's job) goes MXNet -> ONNX -> Caffe. Gluon's ReLU6,
``clip(0, 6)``, becomes ONNX ``Clip(0, 6)`` and then ``converters/onnx2caffe``'s ``ReLU6``
layer: exact (``min(max(x, 0), 6)`` computed as such), a layer of OpenCV's Caffe importer and of
the Caffe forks (the brocolli-caffe build we verify with has it); BVLC Caffe has no bounded ReLU.
GluonConverter's plain ReLU is wrong for every value above 6. A net for BVLC Caffe alone could
use the exact chain ``-max(-relu(x), -6)``: ReLU, Power(scale -1), Eltwise MAX with
Power(scale 0, shift -6) of the same blob, Power(scale -1) (negation and max are exact).
"""
