"""Graph inputs in all four Caffe spellings (converters/caffe/layers/inputs.py, convert.py).

``input:`` + ``input_dim:``, ``input:`` + ``input_shape {}`` and an ``Input`` layer with one
``shape`` per top are compared with OpenCV DNN reading the same files (atol 1e-5). Two spellings
OpenCV 4.14 cannot run are compared with OpenCV running the *same body* declared with
``input:`` + ``input_shape`` instead (the converted numbers must not depend on the spelling):
an ``Input`` layer with one shape for several tops (Caffe's ``InputLayer`` gives every top that
shape; OpenCV asserts one shape per top) and deploy-time data layers (OpenCV's importer turns
them into an input it cannot feed by name).
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from tests.caffe.helpers import (
    assert_same_outputs,
    convert_and_compare,
    final_blobs,
    run_opencv,
    run_ort,
    write_net,
)

# conv(data) -> ReLU in place, then concatenated with the second input when there is one.
BODY = (
    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
    "convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }\n"
    'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
)
CAT = 'layer { name: "cat" type: "Concat" bottom: "conv" bottom: "aux" top: "cat" }\n'
V1_BODY = (
    'layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" '
    "convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }\n"
    'layers { name: "relu" type: RELU bottom: "conv" top: "conv" }\n'
)
rng = np.random.default_rng(7)
WEIGHTS = {"conv": [rng.standard_normal((2, 3, 3, 3)).astype(np.float32),
                    rng.standard_normal(2).astype(np.float32)]}  # fmt: skip


def _input_shape(**shapes) -> str:
    """The reference spelling: ``input:`` + ``input_shape {}`` per input."""
    return "".join(
        f'input: "{n}"\ninput_shape {{ {" ".join(f"dim: {d}" for d in s)} }}\n'
        for n, s in shapes.items()
    )


def _graph_inputs(model) -> list[tuple[str, list[int]]]:
    return [
        (vi.name, [d.dim_value for d in vi.type.tensor_type.shape.dim]) for vi in model.graph.input
    ]


def _compare_with_equivalent(tmp_path, net: str, equivalent: str, input_shapes=None, outputs=None):
    """Convert ``net`` (ORT) and run ``equivalent`` (same body, ``input_shape`` inputs) in OpenCV."""
    (tmp_path / "net").mkdir()
    (tmp_path / "ref").mkdir()
    proto, caffemodel = write_net(tmp_path / "net", net, WEIGHTS)
    model = caffe_to_onnx(proto, caffemodel, input_shapes=input_shapes, outputs=outputs)
    feeds = {
        name: np.random.default_rng(i).standard_normal(shape).astype(np.float32)
        for i, (name, shape) in enumerate(_graph_inputs(model))
    }
    got = run_ort(model, feeds)
    ref_proto, ref_model = write_net(tmp_path / "ref", equivalent, WEIGHTS)
    expected = list(outputs) if outputs else final_blobs(ref_proto)
    assert_same_outputs(got, expected)
    want = run_opencv(ref_proto, ref_model, feeds, expected)
    for name in expected:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, err_msg=name)
    return model, got


def test_input_dim_two_inputs(tmp_path):
    net = (
        'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 5\ninput_dim: 6\n'
        'input: "aux"\ninput_dim: 1\ninput_dim: 4\ninput_dim: 5\ninput_dim: 6\n' + BODY + CAT
    )
    model, got, _ = convert_and_compare(tmp_path, net, WEIGHTS)
    assert _graph_inputs(model) == [("data", [1, 3, 5, 6]), ("aux", [1, 4, 5, 6])]
    assert got["cat"].shape == (1, 6, 5, 6)


def test_input_shape_two_inputs(tmp_path):
    net = _input_shape(data=(2, 3, 4, 4), aux=(2, 1, 4, 4)) + BODY + CAT
    model, got, _ = convert_and_compare(tmp_path, net, WEIGHTS)
    assert _graph_inputs(model) == [("data", [2, 3, 4, 4]), ("aux", [2, 1, 4, 4])]
    assert got["cat"].shape == (2, 3, 4, 4)


def test_input_layer_one_shape_per_top(tmp_path):
    net = (
        'layer { name: "in" type: "Input" top: "data" top: "aux" input_param { '
        "shape { dim: 1 dim: 3 dim: 4 dim: 5 } shape { dim: 1 dim: 2 dim: 4 dim: 5 } } }\n"
        + BODY
        + CAT
    )
    model, got, _ = convert_and_compare(tmp_path, net, WEIGHTS)
    assert _graph_inputs(model) == [("data", [1, 3, 4, 5]), ("aux", [1, 2, 4, 5])]
    assert got["cat"].shape == (1, 4, 4, 5)


def test_input_layer_one_shape_for_two_tops(tmp_path):
    net = (
        'layer { name: "in" type: "Input" top: "data" top: "aux" '
        "input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n" + BODY + CAT
    )
    equivalent = _input_shape(data=(1, 3, 4, 4), aux=(1, 3, 4, 4)) + BODY + CAT
    model, got = _compare_with_equivalent(tmp_path, net, equivalent)
    assert _graph_inputs(model) == [("data", [1, 3, 4, 4]), ("aux", [1, 3, 4, 4])]
    assert got["cat"].shape == (1, 5, 4, 4)


def test_input_layer_second_top_shape_override(tmp_path):
    # --input-shape may name any top of an Input layer, not only the first.
    net = (
        'layer { name: "in" type: "Input" top: "data" top: "aux" '
        "input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n" + BODY + CAT
    )
    equivalent = _input_shape(data=(1, 3, 4, 4), aux=(1, 6, 4, 4)) + BODY + CAT
    model, _ = _compare_with_equivalent(
        tmp_path, net, equivalent, input_shapes={"aux": [1, 6, 4, 4]}
    )
    assert _graph_inputs(model) == [("data", [1, 3, 4, 4]), ("aux", [1, 6, 4, 4])]


@pytest.mark.parametrize(
    "data_layer",
    [
        'layers { name: "d" type: DATA top: "data" top: "label" '
        'data_param { source: "train_lmdb" batch_size: 64 backend: LMDB } }',
        'layers { name: "d" type: IMAGE_DATA top: "data" top: "label" '
        'image_data_param { source: "list.txt" batch_size: 8 } }',
        'layers { name: "d" type: HDF5_DATA top: "data" top: "label" '
        'hdf5_data_param { source: "h5.txt" batch_size: 8 } }',
        'layers { name: "d" type: WINDOW_DATA top: "data" top: "label" }',
        'layers { name: "d" type: DATA top: "data" }',
    ],
    ids=["DATA", "IMAGE_DATA", "HDF5_DATA", "WINDOW_DATA", "DATA-no-label"],
)
def test_v1_data_layer_with_input_shape(tmp_path, data_layer):
    net = f"{data_layer}\n{V1_BODY}"
    equivalent = _input_shape(data=(2, 3, 5, 5)) + BODY
    model, _ = _compare_with_equivalent(
        tmp_path, net, equivalent, input_shapes={"data": [2, 3, 5, 5]}
    )
    # The label top is dropped: neither an input nor an output.
    assert _graph_inputs(model) == [("data", [2, 3, 5, 5])]
    assert [o.name for o in model.graph.output] == ["conv"]


def test_modern_data_layer_with_include_phase(tmp_path):
    # A train/test prototxt: the TRAIN data layer is skipped, the TEST one becomes the input.
    net = (
        'layer { name: "train" type: "Data" top: "data" top: "label" include { phase: TRAIN } '
        'data_param { source: "a" batch_size: 64 } }\n'
        'layer { name: "test" type: "Data" top: "data" top: "label" include { phase: TEST } '
        'data_param { source: "b" batch_size: 100 } }\n' + BODY
    )
    model, _ = _compare_with_equivalent(
        tmp_path, net, _input_shape(data=(1, 3, 4, 4)) + BODY, input_shapes={"data": [1, 3, 4, 4]}
    )
    assert _graph_inputs(model) == [("data", [1, 3, 4, 4])]


@pytest.mark.parametrize(
    ("data_layer", "shape"),
    [
        ('layer { name: "d" type: "MemoryData" top: "data" top: "label" '
         "memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } }", [2, 3, 4, 5]),
        ('layer { name: "d" type: "DummyData" top: "data" '
         "dummy_data_param { shape { dim: 1 dim: 3 dim: 6 dim: 4 } } }", [1, 3, 6, 4]),
        ('layer { name: "d" type: "DummyData" top: "data" top: "label" dummy_data_param { '
         "shape { dim: 1 dim: 3 dim: 3 dim: 3 } shape { dim: 1 } } }", [1, 3, 3, 3]),
        ('layer { name: "d" type: "DummyData" top: "data" '
         "dummy_data_param { num: 2 channels: 3 height: 3 width: 5 } }", [2, 3, 3, 5]),
        ('layers { name: "d" type: MEMORY_DATA top: "data" top: "label" '
         "memory_data_param { batch_size: 1 channels: 3 height: 5 width: 4 } }", [1, 3, 5, 4]),
        ('layers { name: "d" type: DUMMY_DATA top: "data" '
         "dummy_data_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }", [2, 3, 4, 4]),
    ],
    ids=["MemoryData", "DummyData-shape", "DummyData-two-tops", "DummyData-legacy",
         "V1-MEMORY_DATA", "V1-DUMMY_DATA"],
)  # fmt: skip
def test_data_layer_shape_from_params(tmp_path, data_layer, shape):
    body = V1_BODY if data_layer.startswith("layers") else BODY
    model, _ = _compare_with_equivalent(
        tmp_path, f"{data_layer}\n{body}", _input_shape(data=shape) + BODY
    )
    assert _graph_inputs(model) == [("data", shape)]


def test_input_shapes_override_declared_shapes(tmp_path):
    net = 'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n' + BODY
    model, got = _compare_with_equivalent(
        tmp_path, net, _input_shape(data=(3, 3, 5, 7)) + BODY, input_shapes={"data": [3, 3, 5, 7]}
    )
    assert _graph_inputs(model) == [("data", [3, 3, 5, 7])]
    assert got["conv"].shape == (3, 2, 5, 7)


def _error(tmp_path, net: str, **kwargs) -> str:
    proto, caffemodel = write_net(tmp_path, net, WEIGHTS)
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto, caffemodel, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{proto}: "), msg
    return msg


@pytest.mark.parametrize(
    ("head", "fragments"),
    [
        ('input: "data"\n', ["input 'data' has no shape", "give --input-shape data=N,C,H,W"]),
        ('layers { name: "d" type: DATA top: "data" top: "label" }\n',
         ["layer 'd' (Data)", "input 'data' has no shape in the prototxt",
          "give --input-shape data=N,C,H,W"]),
        ('layer { name: "d" type: "ImageData" top: "data" top: "label" }\n',
         ["layer 'd' (ImageData)", "give --input-shape data=N,C,H,W"]),
        ('layer { name: "in" type: "Input" top: "data" }\n',
         ["layer 'in' (Input)", "give --input-shape data=N,C,H,W"]),
        ('layer { name: "d" type: "DummyData" top: "data" dummy_data_param { num: 2 } }\n',
         ["layer 'd' (DummyData)", "give --input-shape data=N,C,H,W"]),
        ('layer { name: "d" type: "MemoryData" top: "data" }\n',
         ["layer 'd' (MemoryData)", "input 'data' has shape [0, 0, 0, 0] with a non-positive",
          "give --input-shape data=N,C,H,W"]),
        ('input: "data"\ninput_shape { dim: 1 dim: 0 dim: 4 dim: 4 }\n',
         ["input 'data' has shape [1, 0, 4, 4] with a non-positive size",
          "give --input-shape data=N,C,H,W"]),
    ],
    ids=["input-no-dims", "V1-DATA", "ImageData", "Input-no-shape", "DummyData-partial-legacy",
         "MemoryData-no-param", "zero-dim"],
)  # fmt: skip
def test_missing_shape_names_the_input_shape_option(tmp_path, head, fragments):
    body = V1_BODY if head.startswith("layers") else BODY
    msg = _error(tmp_path, head + body)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        ('input: "data"\ninput: "aux"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 4\ninput_dim: 4\n',
         "2 input(s) need 8 input_dim values, got 4"),
        ('input: "data"\ninput: "aux"\ninput_shape { dim: 1 dim: 3 dim: 4 dim: 4 }\n',
         "2 input(s) but 1 input_shape block(s)"),
        ('layer { name: "in" type: "Input" top: "data" top: "aux" top: "x" input_param { '
         "shape { dim: 1 dim: 3 dim: 4 dim: 4 } shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n",
         "layer 'in' (Input): 3 tops but 2 input_param shapes"),
    ],
    ids=["input_dim-count", "input_shape-count", "Input-shape-count"],
)  # fmt: skip
def test_inconsistent_declarations(tmp_path, head, fragment):
    assert fragment in _error(tmp_path, head + BODY)


def test_unknown_input_shape_name_lists_every_input(tmp_path):
    net = (
        'layer { name: "in" type: "Input" top: "data" top: "aux" '
        "input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n" + BODY + CAT
    )
    msg = _error(tmp_path, net, input_shapes={"img": [1, 3, 4, 4]})
    assert "--input-shape names unknown input(s) img; the net's inputs are: aux, data" in msg


LABELLED = (
    'layer { name: "d" type: "Data" top: "data" top: "label" }\n' + BODY
    + 'layer { name: "acc" type: "Accuracy" bottom: "conv" bottom: "label" top: "acc" }\n'
)  # fmt: skip


def test_label_consumer_is_refused_with_a_cut_hint_without_the_label(tmp_path):
    # A TEST-phase Accuracy reads the dropped label: it is training-only and must be cut, at
    # the blobs that exist in the deployed graph (not at the label).
    msg = _error(tmp_path, LABELLED, input_shapes={"data": [1, 3, 4, 4]})
    assert "layer 'acc' (Accuracy) is a training-only layer" in msg
    assert msg.endswith("cut the graph before it with --outputs conv (recipe: outputs: [conv])")
    # Following the hint converts.
    model, _ = _compare_with_equivalent(
        tmp_path, LABELLED, _input_shape(data=(1, 3, 4, 4)) + BODY,
        input_shapes={"data": [1, 3, 4, 4]}, outputs=["conv"],
    )  # fmt: skip
    assert [o.name for o in model.graph.output] == ["conv"]


def test_requesting_a_label_is_a_clear_error(tmp_path):
    msg = _error(tmp_path, LABELLED, input_shapes={"data": [1, 3, 4, 4]}, outputs=["conv", "label"])
    assert "requested output 'label' is a data layer's label top" in msg
