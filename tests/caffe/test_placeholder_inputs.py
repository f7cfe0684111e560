"""A 1x1 placeholder input (OpenPose style, reshaped at run time) gets one warning line that
points at --input-shape, instead of silently building a meaningless 1x3x1x1 model."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from tests.caffe.helpers import convert_and_compare, write_net

f32 = np.float32


def _net(h: int, w: int, pad: int = 1, second_kernel: int | None = None, input_layer=False):
    head = (
        f'layer {{ name: "image" type: "Input" top: "image"\n'
        f"  input_param {{ shape {{ dim: 1 dim: 3 dim: {h} dim: {w} }} }} }}\n"
        if input_layer
        else f'input: "image"\ninput_dim: 1 input_dim: 3 input_dim: {h} input_dim: {w}\n'
    )
    net = head + (
        'layer { name: "conv1_1" type: "Convolution" bottom: "image" top: "conv1_1"\n'
        f"  convolution_param {{ num_output: 2 kernel_size: 3 pad: {pad} }} }}\n"
    )
    if second_kernel is not None:
        net += (
            'layer { name: "side" type: "Convolution" bottom: "image" top: "side"\n'
            f"  convolution_param {{ num_output: 2 kernel_size: {second_kernel} }} }}\n"
        )
    return net


W = {
    "conv1_1": [np.full((2, 3, 3, 3), 0.1, f32), np.zeros(2, f32)],
    "side": [np.full((2, 3, 1, 1), 0.1, f32), np.zeros(2, f32)],
}


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("input_layer", [False, True], ids=["input-dim", "input-layer"])
def test_placeholder_input_warns_once_and_points_at_input_shape(tmp_path, caplog, input_layer):
    proto, model = write_net(tmp_path, _net(1, 1, input_layer=input_layer), W)
    with caplog.at_level(logging.WARNING, logger="zoomake.caffe"):
        caffe_to_onnx(proto, model)
    (msg,) = _warnings(caplog)
    assert msg == (
        f"{proto}: input 'image' is 1x1, smaller than the 3x3 kernel of layer 'conv1_1' "
        "(a placeholder size?); give the real size with --input-shape image=1,3,H,W"
    )


def test_real_size_and_partly_small_inputs_do_not_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="zoomake.caffe"):
        convert_and_compare(tmp_path, _net(8, 6), W)
        proto, model = write_net(tmp_path, _net(1, 1), W, name="again")
        caffe_to_onnx(proto, model, input_shapes={"image": [1, 3, 9, 7]})
        # Smaller than one kernel but not every one: a deliberate small input.
        proto, model = write_net(tmp_path, _net(2, 2, second_kernel=1), W, name="mixed")
        caffe_to_onnx(proto, model)
    assert _warnings(caplog) == []


def test_warning_also_comes_when_the_placeholder_breaks_conversion(tmp_path, caplog):
    proto, model = write_net(tmp_path, _net(1, 1, pad=0), W)
    with (
        caplog.at_level(logging.WARNING, logger="zoomake.caffe"),
        pytest.raises(ConversionError, match="non-positive dimension"),
    ):
        caffe_to_onnx(proto, model)
    (msg,) = _warnings(caplog)
    assert "--input-shape image=1,3,H,W" in msg
