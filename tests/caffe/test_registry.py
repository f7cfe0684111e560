"""The layer registry: complete, duplicate-free, and the generated support table is current."""

from __future__ import annotations

import pytest

from converters.caffe import registry
from converters.supported import render
from formats import markdown
from tests.conftest import REPO_ROOT

# Every layer family the converter issue lists.
REQUIRED = [
    "Input",
    "Convolution",
    "ConvolutionDepthwise",
    "Deconvolution",
    "InnerProduct",
    "Pooling",
    "BatchNorm",
    "Scale",
    "Bias",
    "ReLU",
    "ReLU6",
    "Clip",
    "PReLU",
    "ELU",
    "Sigmoid",
    "TanH",
    "AbsVal",
    "BNLL",
    "Power",
    "Exp",
    "Log",
    "Threshold",
    "Softmax",
    "LRN",
    "Concat",
    "Slice",
    "Split",
    "Eltwise",
    "Flatten",
    "Reshape",
    "Permute",
    "Crop",
    "Dropout",
    "ShuffleChannel",
    "Normalize",
    "PriorBox",
    "Interp",
    "Upsample",
    "ArgMax",
    "Reduction",
    "Tile",
    "MVN",
    "Axpy",
    "Silence",
]


def test_every_required_layer_is_registered():
    have = {h.type_name for h in registry.supported_types()}
    assert sorted(set(REQUIRED) - have) == []


def test_registering_a_type_twice_is_refused():
    with pytest.raises(RuntimeError, match="'Convolution' registered twice"):
        registry.register("Convolution")(lambda layer, ctx: None)


def test_every_handler_has_a_one_line_note():
    assert all(h.notes and "\n" not in h.notes for h in registry.supported_types())


def test_supported_layers_doc_is_generated_and_current():
    doc = (REPO_ROOT / "docs" / "supported_layers.md").read_text()
    assert doc == render(markdown()), "run `doit docs` to regenerate docs/supported_layers.md"
