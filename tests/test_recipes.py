"""pipelines.recipes: safe YAML, schema validation messages, defaults, zoo cache, stage configs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pipelines.errors import ZoomakeError
from pipelines.recipes import cache as recipe_cache
from pipelines.recipes import load as recipes
from pipelines.verify import measure as verify

REPO = Path(__file__).resolve().parents[1]
ZOO = sorted((REPO / "recipes").glob("*.yaml"))
SHA_A = "a" * 64
SHA_B = "b" * 64

VALID = f"""\
description: A test model.
license: MIT
task: face_detection
source:
  framework: caffe
  prototxt: {{url: https://example.org/m/net.prototxt, sha256: {SHA_A}, size: 10}}
  caffemodel: {{url: https://example.org/m/net.caffemodel, sha256: {SHA_B}, size: 20}}
inputs:
  data:
    shape: [1, 3, 12, 12]
    preprocess:
      mean: 127.5
      scale: 0.0078125
targets:
  onnx: {{format: onnx}}
  onnx-fp16: {{format: onnx, precision: fp16}}
"""


def write(directory: Path, text: str, name: str = "model-x.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str, name: str = "model-x.yaml") -> list[str]:
    return recipes.validate_recipe_file(write(tmp_path, text, name))


# -- the default zoo -------------------------------------------------------------------------


def _onnx_io(path) -> tuple[dict[str, list[int]], set[str]]:
    """Inputs (name -> shape, initializers excluded) and outputs of an ONNX file."""
    import onnx

    model = onnx.load(path)
    weights = {t.name for t in model.graph.initializer}
    inputs = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in model.graph.input
        if vi.name not in weights
    }
    return inputs, {o.name for o in model.graph.output}


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_checked_in_recipe_is_valid(path):
    assert recipes.validate_recipe_file(path) == []
    recipe = recipes.load_recipe(path)
    assert recipe["targets"]["onnx"] == {"format": "onnx", "precision": "fp32", "opset": 17}
    # Every zoo model has an fp16 target, except the whole detectors: fp16 moves their boxes
    # past the IoU at which detections match (see recipes/yufacedetectnet-v*.yaml).
    if recipe.get("task") != "face_detection" or "outputs" in recipe:
        assert recipe["targets"]["onnx-fp16"]["precision"] == "fp16"


def test_default_zoo_is_complete():
    assert [p.stem for p in ZOO] == [
        "mtcnn-det1",
        "mtcnn-det2",
        "mtcnn-det3",
        "mtcnn-det4",
        "ultraface-rfb-320-onnx",
        "ultraface-rfb-320-pytorch",
        "ultraface-rfb-320",
        "ultraface-slim-320-pytorch",
        "ultraface-slim-320",
        "yufacedetectnet-v1",
        "yufacedetectnet-v2",
    ]


def _prototxt_io(text: str) -> tuple[dict[str, list[int]], set[str]]:
    """Inputs (name -> shape) and final blobs of a deploy prototxt, read with regexes."""
    inputs = {}
    legacy = re.search(r'^input:\s*"([^"]+)"((?:\s*input_dim:\s*\d+)+)', text, re.M)
    if legacy:
        inputs[legacy[1]] = [int(d) for d in re.findall(r"\d+", legacy[2])]
    for name, dims in re.findall(r'^input:\s*"([^"]+)"\s*input_shape\s*\{([^}]*)\}', text, re.M):
        inputs[name] = [int(d) for d in re.findall(r"dim:\s*(\d+)", dims)]
    for name, dims in re.findall(
        r'top:\s*"([^"]+)"\s*input_param\s*\{\s*shape\s*\{([^}]*)\}', text
    ):
        inputs[name] = [int(d) for d in re.findall(r"dim:\s*(\d+)", dims)]
    layers = re.findall(r"\nlayer\s*\{(.*?)\n\}", text, re.S)
    tops, bottoms = set(), set()
    for layer in layers:
        tops.update(re.findall(r'^\s*top:\s*"([^"]+)"', layer, re.M))
        bottoms.update(re.findall(r'^\s*bottom:\s*"([^"]+)"', layer, re.M))
    return inputs, tops - bottoms


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_zoo_recipe_matches_the_shared_model(path, manifest, models_dir):
    recipe = recipes.load_recipe(path)
    by_url = {entry["url"]: (key, entry) for key, entry in manifest.items()}
    if recipe["source"]["framework"] == "pytorch":
        _matches_the_shared_code(recipe, by_url, path)
        return
    local = {}
    roles = ("onnx",) if recipe["source"]["framework"] == "onnx" else ("prototxt", "caffemodel")
    for role in roles:
        ref = recipe["source"][role]
        key, entry = by_url[ref["url"]]
        assert (ref["sha256"], ref["size"]) == (entry["sha256"], entry["size"])
        assert recipe["license"] == entry["license"]
        local[role] = models_dir / key
    if "onnx" in local:
        inputs, finals = _onnx_io(local["onnx"])
    else:
        inputs, finals = _prototxt_io(local["prototxt"].read_text())
    assert {name: spec["shape"] for name, spec in recipe["inputs"].items()} == inputs
    if "outputs" in recipe:
        assert set(recipe["outputs"]) == finals
    else:  # the whole network: its one final blob
        assert len(finals) == 1


def _matches_the_shared_code(recipe: dict, by_url: dict, path: Path) -> None:
    """A code + checkpoint recipe: every file pinned as the manifest has it, each code file at
    its repository path (the manifest keeps them at that path under ultraface/pytorch/), and
    the inputs and outputs of the Caffe recipe of the same network."""
    src = recipe["source"]
    for ref in [src["checkpoint"], *src["code"]]:
        key, entry = by_url[ref["url"]]
        assert (ref["sha256"], ref["size"]) == (entry["sha256"], entry["size"])
        assert recipe["license"] == entry["license"]
        if "path" in ref:
            assert key == f"ultraface/pytorch/{ref['path']}"
    # The network's import path never reaches torchvision: predictor.py is no file of the tree.
    paths = [ref["path"] for ref in src["code"]]
    assert "vision/ssd/predictor.py" not in paths and src["stub_modules"] == [
        "vision.ssd.predictor"
    ]
    assert not [p for p in paths if p.startswith("vision/transforms/")]
    caffe = recipes.load_recipe(path.with_name(path.name.replace("-pytorch", "")))
    assert recipe["inputs"] == caffe["inputs"] and recipe["outputs"] == caffe["outputs"]
    assert recipe["verify"]["tolerances"] == caffe["verify"]["tolerances"]


# -- error messages --------------------------------------------------------------------------


def test_three_mistakes_give_three_precise_lines(tmp_path, monkeypatch):
    text = (
        VALID.replace("shape: [1, 3, 12, 12]", "shape: [1, 3]")
        .replace("mean: 127.5", "mena: 127.5")
        .replace("onnx: {format: onnx}", "onnx: {format: tflite}")
    )
    write(tmp_path / "recipes", text, "det.yaml")
    monkeypatch.chdir(tmp_path)
    assert recipes.validate_recipe_file("recipes/det.yaml") == [
        "recipes/det.yaml#/inputs/data/shape: expected array of 4 integers, got [1, 3]",
        "recipes/det.yaml#/inputs/data/preprocess/mena: unknown property 'mena' (did you mean 'mean'?)",
        "recipes/det.yaml#/targets/onnx/format: expected one of caffe, onnx, openvino, pytorch, mxnet, got 'tflite'",
    ]


def test_load_recipe_raises_every_error_one_per_line(tmp_path):
    path = write(tmp_path, VALID.replace("license: MIT\n", "").replace("size: 20", "size: -1"))
    with pytest.raises(ZoomakeError) as err:
        recipes.load_recipe(path)
    assert str(err.value).splitlines() == [
        f"{path}#/license: missing required property 'license'",
        f"{path}#/source/caffemodel/size: expected integer >= 0, got -1",
    ]


def test_duplicate_keys_are_errors(tmp_path):
    text = VALID.replace("      scale: 0.0078125\n", "      scale: 0.0078125\n      mean: 1\n")
    assert errors_of(tmp_path, text) == [
        f"{tmp_path}/model-x.yaml#/inputs/data/preprocess/mean: duplicate key 'mean' at line 14:7 (first at line 12:7)"
    ]


@pytest.mark.parametrize(
    "tag", ["!!python/object:os.system", "!!python/name:os.system", "!!set", "!custom"]
)
def test_object_tags_are_rejected(tmp_path, tag):
    text = VALID.replace("description: A test model.", f"description: {tag} {{}}")
    assert errors_of(tmp_path, text) == [
        f"{tmp_path}/model-x.yaml#/description: YAML tag '{tag}' is not allowed"
    ]


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    lines = errors_of(tmp_path, VALID.replace("shape: [1, 3, 12, 12]", "shape: [1, 3, 12, 12"))
    assert len(lines) == 1
    assert re.fullmatch(
        rf"{re.escape(str(tmp_path))}/model-x\.yaml:\d+:\d+: YAML syntax error: .+", lines[0]
    )


def test_scale_and_std_are_mutually_exclusive(tmp_path):
    text = VALID.replace("scale: 0.0078125", "scale: 0.0078125\n      std: 128")
    assert errors_of(tmp_path, text) == [
        f"{tmp_path}/model-x.yaml#/inputs/data/preprocess: 'scale' and 'std' are mutually exclusive: "
        "give scale (multiply) or std (divide), not both"
    ]


def test_mean_and_mean_file_are_mutually_exclusive(tmp_path):
    ref = f"{{url: https://example.org/m/mean.binaryproto, sha256: {SHA_A}, size: 5}}"
    text = VALID.replace("mean: 127.5", f"mean: 127.5\n      mean_file: {ref}")
    [line] = errors_of(tmp_path, text)
    assert line.endswith("#/inputs/data/preprocess: 'mean' and 'mean_file' are mutually exclusive: "
                         "give a mean value or a mean image file, not both")  # fmt: skip


def test_framework_decides_the_source_files(tmp_path):
    no_weights = re.sub(r"  caffemodel: .*\n", "", VALID)
    assert errors_of(tmp_path, no_weights) == [
        f"{tmp_path}/model-x.yaml#/source/caffemodel: missing required property 'caffemodel' "
        "(framework caffe needs prototxt and caffemodel)"
    ]
    as_onnx = VALID.replace("framework: caffe", "framework: onnx")
    assert [line.split("#", 1)[1] for line in errors_of(tmp_path, as_onnx)] == [
        "/source/onnx: missing required property 'onnx' (framework onnx needs onnx)",
        "/source/prototxt: 'prototxt' is not allowed with framework onnx (use 'framework: caffe' for a Caffe source)",
        "/source/caffemodel: 'caffemodel' is not allowed with framework onnx (use 'framework: caffe' for a Caffe source)",
    ]


@pytest.mark.parametrize(
    ("old", "new", "pointer_and_message"),  # new may hold several edits, joined by " && "
    [
        ("mean: 127.5", "mean: [1, 2]", "/inputs/data/preprocess/mean: expected one number or 3 values "
         "(one per channel of shape [1, 3, 12, 12]), got 2 values"),
        ("mean: 127.5 && [1, 3, 12, 12]", "reverse_channels: true && [1, 15, 12, 12]",
         "/inputs/data/preprocess/reverse_channels: expected false for an input with 15 channels, got true "
         "(reversing swaps RGB and BGR and needs exactly 3 channels)"),
        ("scale: 0.0078125", "scale: [1, 0, 1]", "/inputs/data/preprocess/scale/1: expected number > 0, got 0"),
        ("mean: 127.5", "mean: [1, 'x', 3]", "/inputs/data/preprocess/mean/1: expected number, got 'x'"),
        ("shape: [1, 3, 12, 12]", "shape: [1, 3, 12, 12]\n    layout: NHWC",
         "/inputs/data/layout: expected NCHW (Caffe inputs are NCHW), got 'NHWC'"),
        ("onnx: {format: onnx}", "ONNX: {format: onnx}",
         "/targets/ONNX: expected target name matching [a-z0-9][a-z0-9._-]*, got 'ONNX'"),
        ("onnx: {format: onnx}", "onnx: {format: onnx, opset: 22}",
         "/targets/onnx/opset: expected integer between 13 and 21, got 22"),
        ("license: MIT", "license: MIT\nid: model-x",
         "/id: unknown property 'id' (a recipe's id is its file name; do not repeat it inside)"),
        ("m/net.caffemodel", "other/net.prototxt", "/source/caffemodel/url: expected a file name different from "
         "#/source/prototxt/url, got 'net.prototxt' again (both would be build/<id>/source/net.prototxt)"),
        ("sha256: " + SHA_A, "sha256: " + SHA_A.upper(),
         f"/source/prototxt/sha256: expected 64 lowercase hex digits, got '{SHA_A.upper()}'"),
        ("https://example.org/m/net.prototxt", "ftp://example.org/m/net.prototxt",
         "/source/prototxt/url: expected http://, https:// or file:// URL ending in a file name, "
         "got 'ftp://example.org/m/net.prototxt'"),
    ],
)  # fmt: skip
def test_single_mistake_messages(tmp_path, old, new, pointer_and_message):
    text = VALID
    for a, b in zip(old.split(" && "), new.split(" && "), strict=True):
        text = text.replace(a, b, 1)
    assert [line.split("#", 1)[1] for line in errors_of(tmp_path, text)] == [pointer_and_message]


def test_file_name_must_be_a_model_id(tmp_path):
    [line] = errors_of(tmp_path, VALID, "Bad Name.yaml")
    assert line == (
        f"{tmp_path}/Bad Name.yaml#: expected a file name <model-id>.yaml with the id matching "
        "[a-z0-9][a-z0-9._-]*, got 'Bad Name.yaml'"
    )


# -- defaults ----------------------------------------------------------------------------------


def test_defaults_are_filled(tmp_path):
    recipe = recipes.load_recipe(write(tmp_path, VALID))
    data = recipe["inputs"]["data"]
    assert data["layout"] == "NCHW"
    assert data["preprocess"] == {
        "mean": 127.5,
        "scale": 0.0078125,
        "reverse_channels": False,
        "layout": "NCHW",
        "dtype": "float32",
    }
    assert recipe["targets"]["onnx"] == {"format": "onnx", "precision": "fp32", "opset": 17}
    assert recipe["verify"] == {
        "samples": 3,
        "seed": 0,
        "tolerances": {"fp32": {"atol": 1e-4, "rtol": 1e-3}, "fp16": {"atol": 1e-2, "rtol": 1e-2}},
        "outputs": {},
        "files": [],
        "topk": 5,
        "reference": "auto",
    }
    assert "optimize" not in recipe and "outputs" not in recipe  # absent = converter defaults


def test_integral_floats_become_ints(tmp_path):
    text = VALID.replace("[1, 3, 12, 12]", "[1, 3.0, 12, 12]") + "verify: {samples: 2.0}\n"
    recipe = recipes.load_recipe(write(tmp_path, text))
    assert recipe["verify"]["samples"] == 2 and isinstance(recipe["verify"]["samples"], int)
    assert [type(d) for d in recipe["inputs"]["data"]["shape"]] == [int] * 4
    assert isinstance(recipe["inputs"]["data"]["preprocess"]["mean"], float)  # numbers stay


def test_exclusive_partners_suppress_defaults(tmp_path):
    ref = f"{{url: https://example.org/m/mean.binaryproto, sha256: {SHA_A}, size: 5}}"
    text = VALID.replace("mean: 127.5", f"mean_file: {ref}").replace(
        "scale: 0.0078125", "std: 58.8"
    )
    pre = recipes.load_recipe(write(tmp_path, text))["inputs"]["data"]["preprocess"]
    assert "mean" not in pre and "scale" not in pre
    assert pre["std"] == 58.8


def test_tolerance_merges_per_output_overrides(tmp_path):
    """pipelines.verify.tolerance, the one the verify stage and the gate use."""
    text = VALID + "outputs: [prob1, conv4-2]\nverify:\n  outputs: {prob1: {fp16: {atol: 0.05}}}\n"
    recipe = recipes.load_recipe(write(tmp_path, text))
    assert verify.tolerance(recipe, "prob1", "fp16") == {"atol": 0.05, "rtol": 0.01}
    assert verify.tolerance(recipe, "conv4-2", "fp16") == {"atol": 0.01, "rtol": 0.01}
    assert verify.tolerance(recipe, "prob1", "fp32") == {"atol": 1e-4, "rtol": 1e-3}
    # A recipe dict without a verify block (a test's, a one-shot convert's): the schema's presets.
    assert verify.tolerance({}, "prob1", "fp16") == {"atol": 0.01, "rtol": 0.01}
    partial = {"verify": {"tolerances": {"fp32": {"rtol": 0.5}}}}
    assert verify.tolerance(partial, "prob1", "fp32") == {"atol": 1e-4, "rtol": 0.5}
    bad = VALID + "outputs: [prob1]\nverify:\n  outputs: {prob: {fp16: {atol: 0.05}}}\n"
    assert [e.split("#")[1] for e in errors_of(tmp_path, bad)] == [
        "/verify/outputs/prob: expected one of the recipe's outputs (prob1), got 'prob'"
    ]


# -- the zoo cache -----------------------------------------------------------------------------


def _make_zoo(directory: Path, n: int, *, age_s: float = 0) -> list[Path]:
    paths = [
        write(directory, VALID.replace("A test model.", f"Test model {i}."), f"m{i}.yaml")
        for i in range(n)
    ]
    if age_s:
        for p in paths:
            st = p.stat()
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - int(age_s * 1e9)))
    return paths


@pytest.fixture
def counters(monkeypatch):
    calls = {"parse": 0, "read": 0}
    check, read = recipes._check_text, recipes._read

    def counting_check(*args):
        calls["parse"] += 1
        return check(*args)

    def counting_read(*args):
        calls["read"] += 1
        return read(*args)

    monkeypatch.setattr(recipes, "_check_text", counting_check)
    monkeypatch.setattr(recipes, "_read", counting_read)
    return calls


def test_warm_load_only_stats_the_files(tmp_path, counters):
    _make_zoo(tmp_path / "recipes", 3, age_s=60)
    cold = recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    assert counters == {"parse": 3, "read": 3}
    warm = recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    assert counters == {"parse": 3, "read": 3}  # nothing read, nothing parsed
    assert warm == cold
    assert sorted(warm) == ["m0", "m1", "m2"]
    assert warm["m1"]["description"] == "Test model 1."


def test_just_written_files_are_rechecked_by_content_not_reparsed(tmp_path, counters):
    # Files modified within the file system's timestamp granularity of the cache write
    # could change again unnoticed by stat: they are re-read and hashed (not re-parsed).
    _make_zoo(tmp_path / "recipes", 2)
    recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    assert counters == {"parse": 2, "read": 4}


@pytest.mark.parametrize("age_s", [0, 60])
def test_edited_recipe_is_reloaded(tmp_path, counters, age_s):
    paths = _make_zoo(tmp_path / "recipes", 3, age_s=age_s)
    recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    before = paths[1].stat()
    # Same size, and the old mtime put back: only the content (and ctime) differ.
    paths[1].write_text(paths[1].read_text().replace("mean: 127.5", "mean: 127.0"))
    os.utime(paths[1], ns=(before.st_atime_ns, before.st_mtime_ns))
    assert paths[1].stat().st_size == before.st_size
    zoo = recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    assert zoo["m1"]["inputs"]["data"]["preprocess"]["mean"] == 127.0
    assert zoo["m0"]["inputs"]["data"]["preprocess"]["mean"] == 127.5
    assert counters["parse"] == 4  # 3 cold + the edited one


def test_invalid_recipe_stops_the_zoo_and_is_named(tmp_path):
    _make_zoo(tmp_path / "recipes", 2)
    write(tmp_path / "recipes", VALID.replace("task: face_detection", "task: faces"), "bad.yaml")
    write(tmp_path / "recipes", VALID, "old.yml")
    with pytest.raises(ZoomakeError) as err:
        recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    assert str(err.value).splitlines() == [
        f"{tmp_path}/recipes/bad.yaml#/task: expected one of classification, detection, face_detection, "
        "face_landmarks, segmentation, other, got 'faces'",
        f"{tmp_path}/recipes/old.yml: recipe files must end in .yaml (rename to old.yaml)",
    ]


def test_unusable_cache_is_rebuilt(tmp_path, counters, monkeypatch):
    _make_zoo(tmp_path / "recipes", 2, age_s=60)
    recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    [cache_file] = (tmp_path / "cache").iterdir()
    cache_file.write_text("{not json")
    assert len(recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")) == 2
    assert counters["parse"] == 4
    # New schema or loader code: every recipe is validated again.
    monkeypatch.setattr(recipe_cache, "_code_fingerprint", lambda: "another version")
    recipe_cache.load_zoo(tmp_path / "recipes", tmp_path / "cache")
    assert counters["parse"] == 6
    assert json.loads(cache_file.read_text())["code"] == "another version"


# -- what each stage reads ---------------------------------------------------------------------


def _configs(recipe: dict) -> dict[str, str]:
    out = {stage: recipes.stage_config(recipe, stage) for stage in ("fetch", "convert", "optimize")}
    for target in recipe["targets"]:
        for stage in ("export", "verify"):
            out[f"{stage}:{target}"] = recipes.stage_config(recipe, stage, target)
    return out


def _changed(tmp_path: Path, old: str, new: str, base: str = VALID) -> list[str]:
    a = recipes.load_recipe(write(tmp_path / "a", base))
    b = recipes.load_recipe(write(tmp_path / "b", base.replace(old, new)))
    ca, cb = _configs(a), _configs(b)
    return sorted(k for k in ca if ca[k] != cb[k])


def test_verify_change_touches_only_verify(tmp_path):
    assert _changed(tmp_path, "license: MIT", "license: MIT\nverify: {samples: 5}") == [
        "verify:onnx",
        "verify:onnx-fp16",
    ]


def test_tolerance_change_touches_only_that_precision(tmp_path):
    new = "license: MIT\nverify: {tolerances: {fp32: {atol: 1.0e-6}}}"
    assert _changed(tmp_path, "license: MIT", new) == ["verify:onnx"]


def test_mean_change_touches_convert_and_verify(tmp_path):
    assert _changed(tmp_path, "mean: 127.5", "mean: 127") == [
        "convert",
        "verify:onnx",
        "verify:onnx-fp16",
    ]


def test_equal_numbers_written_differently_change_nothing(tmp_path):
    assert _changed(tmp_path, "mean: 127.5", "mean: 127.50") == []
    base = VALID.replace("mean: 127.5", "mean: 127")
    assert _changed(tmp_path, "mean: 127", "mean: 127.0", base) == []


def test_target_change_touches_only_its_export(tmp_path):
    assert _changed(tmp_path, "onnx: {format: onnx}", "onnx: {format: onnx, opset: 18}") == [
        "export:onnx"
    ]


def test_moved_url_refetches_but_rebuilds_nothing(tmp_path):
    assert _changed(tmp_path, "https://example.org/m/", "https://mirror.example.org/m/") == [
        "fetch"
    ]


def test_optimize_list_is_its_own_config(tmp_path):
    assert _changed(tmp_path, "license: MIT", "license: MIT\noptimize: []") == ["optimize"]


def test_unknown_target_is_an_error(tmp_path):
    recipe = recipes.load_recipe(write(tmp_path, VALID))
    with pytest.raises(ZoomakeError, match="unknown target 'openvino'"):
        recipes.stage_config(recipe, "export", "openvino")
