"""Every ONNX -> MXNet op family on tiny graphs: our checkpoint run by MXNet 1.9.1 against
onnxruntime on the ONNX graph, max abs error <= 1e-5 x max(1, output magnitude). Pooling covers
both conventions, the extra-window slice and both divisors; refusals are one line and write
nothing."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from converters.errors import UnsupportedError
from tests.caffe.helpers import run_ort
from tests.mxnet.helpers import run_mxnet

RNG = np.random.default_rng(0)


def _w(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def _model(nodes, inputs: dict, inits: dict | None = None, outputs=("y",), opset=17):
    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _n(op, ins, outs=("y",), **attrs):
    return helper.make_node(op, list(ins), list(outs), **attrs)


X4 = {"x": [1, 4, 6, 6]}
I64 = np.int64
CASES = {
    "maxpool_full": _model([_n("MaxPool", "x", kernel_shape=[3, 3], strides=[2, 2],
                                pads=[0, 0, 1, 1])], X4),
    "maxpool_valid_pad": _model([_n("MaxPool", "x", kernel_shape=[2, 2], strides=[2, 2],
                                     pads=[1, 1, 1, 1])], {"x": [1, 2, 5, 5]}),
    "maxpool_fewer_windows": _model([_n("MaxPool", "x", kernel_shape=[3, 3], strides=[1, 1],
                                         pads=[2, 2, 0, 0])], {"x": [1, 2, 4, 4]}),
    "avgpool_ceil_excl_pad": _model([_n("AveragePool", "x", kernel_shape=[3, 3], strides=[2, 2],
                                         pads=[1, 1, 1, 1], ceil_mode=1)], X4),
    "avgpool_incl_pad": _model([_n("AveragePool", "x", kernel_shape=[3, 3], strides=[1, 1],
                                    pads=[1, 1, 1, 1], count_include_pad=1)], {"x": [1, 2, 5, 5]}),
    "global_pools": _model([_n("GlobalAveragePool", "x", ["a"]), _n("GlobalMaxPool", "x", ["b"])],
                           X4, outputs=("a", "b")),
    "conv_asym_group_dilate": _model(
        [_n("Conv", ["x", "w", "b"], pads=[0, 0, 1, 1], group=2, dilations=[2, 2])], X4,
        {"w": _w(6, 2, 3, 3), "b": _w(6)}),
    "conv_transpose": _model(
        [_n("ConvTranspose", ["x", "w"], strides=[2, 2], pads=[1, 1, 1, 1],
            output_padding=[1, 1])], X4, {"w": _w(4, 3, 3, 3)}),
    "batchnorm_lrn_prelu": _model(
        [_n("BatchNormalization", ["x", "g", "be", "m", "v"], ["bn"], epsilon=1e-3),
         _n("LRN", ["bn"], ["l"], size=3, alpha=1e-2, beta=0.75, bias=2.0),
         _n("PRelu", ["l", "s"], ["y"])], X4,
        {"g": _w(4), "be": _w(4), "m": _w(4), "v": _w(4, lo=0.5, hi=1.5),
         "s": _w(4, 1, 1, lo=0, hi=0.5)}),
    "gemm_matmul": _model(
        [_n("Gemm", ["x", "b", "c"], ["g"], alpha=0.5, beta=2.0),
         _n("Reshape", ["g", "shp"], ["r"]), _n("MatMul", ["r", "m"], ["y"])],
        {"x": [2, 8]}, {"b": _w(8, 6), "c": _w(6), "shp": np.array([2, 3, 2], I64),
                         "m": _w(2, 5)}),
    "activations": _model(
        [_n("Clip", ["x", "lo", "hi"], ["c"]), _n("LeakyRelu", ["c"], ["l"], alpha=0.2),
         _n("Elu", ["x"], ["e"], alpha=0.7), _n("Sigmoid", ["e"], ["s"]),
         _n("HardSigmoid", ["x"], ["h"], alpha=0.3, beta=0.4), _n("Exp", ["h"], ["ex"]),
         _n("Clip", ["x", "lo2"], ["c2"]), _n("Add", ["l", "s"], ["a1"]),
         _n("Add", ["a1", "ex"], ["a2"]), _n("Add", ["a2", "c2"], ["y"])],
        {"x": [1, 3, 4, 4]}, {"lo": np.float32(0), "hi": np.float32(6), "lo2": np.float32(-0.5)}),
    "eltwise": _model(
        [_n("Sub", ["k", "x"], ["a"]), _n("Div", ["a", "k2"], ["b"]), _n("Add", ["b", "cb"], ["c"]),
         _n("Mul", ["c", "z"], ["d"]), _n("Max", ["d", "x", "c"], ["e"]),
         _n("Mean", ["e", "x"], ["y"])],
        {"x": [1, 3, 4, 4], "z": [1, 1, 4, 4]},
        {"k": np.float32(1.5), "k2": np.float32(3.0), "cb": _w(3, 1, 1)}),
    "shapes": _model(
        [_n("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), _n("Flatten", ["t"], ["f"], axis=2),
         _n("Reshape", ["f", "shp"], ["r"]), _n("Concat", ["r", "x"], ["cat"], axis=1),
         _n("Split", ["cat"], ["s1", "s2"], axis=1), _n("Split", ["x", "parts"], ["u1", "u2"], axis=1),
         _n("Slice", ["s2", "st", "en", "ax", "sp"], ["sl"]),
         _n("Pad", ["u2", "pads", "pv"], ["p"])],
        {"x": [1, 4, 4, 4]},
        {"shp": np.array([1, 4, 4, 4], I64), "parts": np.array([1, 3], I64),
         "st": np.array([0, 1], I64), "en": np.array([4, 4], I64), "ax": np.array([2, 3], I64),
         "sp": np.array([1, 2], I64), "pads": np.array([0, 0, 1, 0, 0, 0, 0, 2], I64),
         "pv": np.float32(1.5)}, outputs=("s1", "sl", "u1", "p")),
    "softmax_coerced_opset11": _model([_n("Softmax", ["x"], axis=1)], X4, opset=11),
    "softmax_axis_log": _model([_n("Softmax", ["x"], ["a"], axis=1),
                                _n("LogSoftmax", ["x"], ["b"], axis=-1)], X4, outputs=("a", "b")),
    "resize": _model(
        [_n("Resize", ["x", "", "sc"], ["n"], mode="nearest",
            coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
         _n("Resize", ["x", "", "", "sz"], ["ac"], mode="linear",
            coordinate_transformation_mode="align_corners"),
         _n("Resize", ["x", "", "", "sz"], ["hp"], mode="linear",
            coordinate_transformation_mode="half_pixel")],
        {"x": [1, 2, 5, 5]}, {"sc": np.array([1, 1, 2, 2], np.float32),
                              "sz": np.array([1, 2, 9, 7], I64)}, outputs=("n", "ac", "hp")),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_family_matches_onnxruntime(case, tmp_path):
    from converters.mxnet.export import from_onnx

    model = CASES[case]
    feeds = {vi.name: RNG.uniform(-3, 3, [d.dim_value for d in vi.type.tensor_type.shape.dim])
             .astype(np.float32) for vi in model.graph.input}  # fmt: skip
    want = run_ort(model, feeds)
    symbol, params = from_onnx(model, tmp_path)
    got = run_mxnet(symbol, params, feeds)
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape, (name, got[name].shape, want[name].shape)
        tol = 1e-5 * max(1.0, float(np.abs(want[name]).max()))
        np.testing.assert_allclose(got[name], want[name], atol=tol, rtol=0, err_msg=name)


REFUSED = {
    "avgpool_overhang": (_model([_n("AveragePool", "x", kernel_shape=[3, 3], strides=[2, 2],
                                     pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1)], X4),
                         r"node 'y' \(AveragePool\): count_include_pad=1 with a window "
                         r"overhanging"),
    "nearest_fraction": (_model([_n("Resize", ["x", "", "sc"], mode="nearest")], X4,
                                {"sc": np.array([1, 1, 1.5, 1.5], np.float32)}),
                         r"node 'y' \(Resize\): nearest resize \[6, 6\] -> \[9, 9\] is not one integer"),
    "no_equivalent": (_model([_n("Mod", ["x", "x"], fmod=1)], X4),
                      r"node 'y' \(Mod\): no exact MXNet equivalent; supported ONNX ops: Abs, Add"),
    "edge_pad": (_model([_n("Pad", ["x", "pads"], mode="edge")], X4,
                        {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], I64)}),
                 r"node 'y' \(Pad\): mode 'edge' \(only constant\)"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_one_line_and_nothing_written(case, tmp_path):
    from converters.mxnet.export import from_onnx

    model, message = REFUSED[case]
    with pytest.raises(UnsupportedError, match=f"^MXNet export: {message}") as info:
        from_onnx(model, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
