"""Fake build trees for the verify / report / regress tests.

A tiny Caffe classifier (conv -> in-place ReLU -> max pool -> {InnerProduct -> Softmax 'prob',
1x1 conv 'score'}) is written with ``tests.caffe.helpers.write_net``, converted with the real
``caffe_to_onnx`` and laid out as ``build/<id>/source/`` + ``build/<id>/<target>/model.onnx``,
the way the doit tasks leave it.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from converters.caffe.convert import caffe_to_onnx
from converters.io import save_onnx
from tests.caffe.helpers import write_net

TINY = """
name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
        inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
layer { name: "score" type: "Convolution" bottom: "pool1" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 } }
"""


def tiny_weights(seed: int = 0, scale: float = 0.01) -> dict[str, list[np.ndarray]]:
    """Weights sized for inputs in [0, 255] (``scale``) so the softmax is not saturated."""
    rng = np.random.default_rng(seed)
    return {
        "conv1": [rng.standard_normal((4, 3, 3, 3)) * scale, rng.standard_normal(4)],
        "fc": [rng.standard_normal((10, 64)) * 0.1, rng.standard_normal(10) * 0.1],
        "score": [rng.standard_normal((2, 4, 1, 1)) * 0.1, rng.standard_normal(2)],
    }


def write_tiny(directory: Path, prototxt: str = TINY, weights=None) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    proto, model = write_net(directory, prototxt, weights or tiny_weights(), name="tiny")
    return {"prototxt": proto, "caffemodel": model}


def make_recipe(**changes) -> dict:
    """A recipe as ``load_recipe`` returns it (defaults of the verify block left to measure)."""
    recipe = {
        "description": "tiny test classifier",
        "license": "MIT",
        "task": "classification",
        "source": {"framework": "caffe"},
        "inputs": {
            "data": {"shape": [1, 3, 8, 8], "preprocess": {"mean": 127.5, "scale": 0.0078125}}
        },
        "targets": {"onnx": {"format": "onnx", "precision": "fp32"}},
        "verify": {"samples": 2, "seed": 7},
    }
    for key, value in changes.items():
        recipe[key] = value
    return recipe


def deployed_model(sources: dict[str, Path], recipe: dict) -> onnx.ModelProto:
    """The source converted and its preprocessing embedded, as convert:<id> does."""
    from pipelines.build.steps import convert_source

    return convert_source("caffe", sources, recipe["inputs"], recipe.get("outputs"))


def fake_build(
    root: Path,
    model_id: str,
    sources: dict[str, Path],
    recipe: dict,
    model: onnx.ModelProto | None = None,
    target: str = "onnx",
) -> Path:
    """Copy the sources into ``root/<id>/source`` and save ``model``; returns the target dir."""
    src = root / model_id / "source"
    src.mkdir(parents=True, exist_ok=True)
    for path in sources.values():
        shutil.copy(path, src / Path(path).name)
    out_dir = root / model_id / target
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is None:
        model = deployed_model(sources, recipe)
    save_onnx(model, out_dir / "model.onnx")
    return out_dir


def build_sources(root: Path, model_id: str, sources: dict[str, Path]) -> dict[str, Path]:
    """The role -> path map ``actions._roles`` hands measure (the copies under source/)."""
    return {role: root / model_id / "source" / Path(p).name for role, p in sources.items()}


def corrupt(model: onnx.ModelProto, initializer: str, index: tuple, delta: float):
    """A copy of ``model`` with one element of one initializer shifted by ``delta``."""
    out = copy.deepcopy(model)
    for i, tensor in enumerate(out.graph.initializer):
        if tensor.name == initializer:
            arr = numpy_helper.to_array(tensor).copy()
            arr[index] += delta
            out.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, tensor.name))
            return out
    raise KeyError(f"no initializer {initializer}: {[t.name for t in out.graph.initializer]}")


def initializer_feeding(model: onnx.ModelProto, op: str, output: str, which: int = 1) -> str:
    """Name of input ``which`` (1: weights, 2: bias) of the ``op`` node writing ``output``."""
    node = next(n for n in model.graph.node if n.op_type == op and output in n.output)
    return node.input[which]


def convert_tiny(sources: dict[str, Path], outputs=None) -> onnx.ModelProto:
    return caffe_to_onnx(sources["prototxt"], sources["caffemodel"], outputs=outputs)


def built_with_reference(tmp_path: Path, **verify) -> tuple[dict, Path, Path, dict[str, Path]]:
    """The tiny net built as model ``m`` with its reference run stored (``reference:<id>``):
    ``(recipe, build dir, the onnx target's dir, sources)``; ``verify``: the recipe's block."""
    from pipelines.verify.reference import run_reference

    tiny = write_tiny(tmp_path / "src")
    recipe = make_recipe(verify=verify)
    build = tmp_path / "build"
    out_dir = fake_build(build, "m", tiny, recipe)
    sources = build_sources(build, "m", tiny)
    run_reference("m", recipe, sources, build / "m" / "reference")
    return recipe, build, out_dir, sources
