"""Big weights left in their files (converters.lazy): the build's streamed convert, optimize and
export steps give the bytes of the in-memory path, and the artifacts compute what OpenCV
computes from the Caffe model.

The model is a synthesized 24 MB VGG-style net (a 4.7 MB convolution followed by BatchNorm +
Scale, which the default passes fold from the weights left in the file; a 16.8 MB and a 2 MB
InnerProduct) with mean/std preprocessing, as the zoo's recipes have. Memory and time are the
benchmark's (bench/bench_convert.py), not asserted here.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from converters.io import load_onnx, save_onnx
from converters.lazy import load_lazy, placeholders, save_streamed, tensor_array

MID = """
name: "mid"
input: "data"
input_shape { dim: 1 dim: 3 dim: 16 dim: 16 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 64 pad: 1 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 256 pad: 1 kernel_size: 3 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
        convolution_param { num_output: 512 pad: 1 kernel_size: 3 } }
layer { name: "bn3" type: "BatchNorm" bottom: "conv3" top: "conv3" }
layer { name: "scale3" type: "Scale" bottom: "conv3" top: "conv3" scale_param { bias_term: true } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool3" top: "fc1"
        inner_product_param { num_output: 512 } }
layer { name: "relu4" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
        inner_product_param { num_output: 1000 } }
"""
PREPROCESS = {"mean": [104.0, 117.0, 123.0], "std": 58.0}
INPUTS = {"data": {"shape": [1, 3, 16, 16], "preprocess": PREPROCESS}}
TARGETS = {
    "onnx": {"format": "onnx", "precision": "fp32", "opset": 17},
    "onnx-fp16": {"format": "onnx", "precision": "fp16", "opset": 17},
    "openvino": {"format": "openvino", "precision": "fp32"},
    "openvino-fp16": {"format": "openvino", "precision": "fp16"},
}


@pytest.fixture(scope="module")
def mid(tmp_path_factory):
    """The build's steps on the mid-size model twice: streamed (what the doit actions run)
    into ``streamed/``, and with every weight in memory (load_onnx/save_onnx, the single-file
    OpenVINO export) into ``memory/``."""
    from converters.fp16 import to_fp16
    from converters.openvino_export import export_openvino
    from pipelines.build.steps import convert_source, export, optimize
    from tests.caffe.synth import synthesize_weights

    tmp = tmp_path_factory.mktemp("mid")
    proto = tmp / "mid.prototxt"
    proto.write_text(MID)
    weights = synthesize_weights(proto, tmp / "mid.caffemodel", seed=4)
    files = {"prototxt": proto, "caffemodel": weights}
    s, m = tmp / "streamed", tmp / "memory"

    lazy = convert_source("caffe", files, INPUTS, None, 17, lazy=True)
    converted_placeholders = [t.name for t in placeholders(lazy)]
    save_streamed(lazy, s / "convert/model.onnx")
    save_onnx(convert_source("caffe", files, INPUTS, None, 17), m / "convert/model.onnx")

    read = load_lazy(s / "convert/model.onnx")
    read_placeholders = [t.name for t in placeholders(read)]
    save_streamed(optimize(read, None), s / "optimize/model.onnx")
    save_onnx(optimize(load_onnx(m / "convert/model.onnx"), None), m / "optimize/model.onnx")

    for name, target in TARGETS.items():
        export(s / "optimize/model.onnx", target, s / name)
        (m / name).mkdir()
        if target["format"] == "openvino":
            export_openvino(m / "optimize/model.onnx", m / name / "model.xml", target["precision"])
        else:
            model = load_onnx(m / "optimize/model.onnx")
            if target["precision"] == "fp16":
                model = to_fp16(model, keep_io_types=True)
            save_onnx(model, m / name / "model.onnx")
    return {"tmp": tmp, "files": files, "converted": converted_placeholders,
            "read": read_placeholders}  # fmt: skip


def test_the_weights_stay_in_their_files(mid):
    """The converter leaves the big weights in the caffemodel and the optimize step reads them
    from convert's file: no step had them in memory before writing."""
    assert mid["converted"] == ["conv3/W", "fc1/W", "fc2/W"]
    assert mid["read"] == ["conv3/W", "fc1/W", "fc2/W"]


STEP_FILES = ["convert/model.onnx", "optimize/model.onnx", "onnx/model.onnx", "onnx-fp16/model.onnx",
              "openvino/model.xml", "openvino/model.bin", "openvino-fp16/model.xml",
              "openvino-fp16/model.bin"]  # fmt: skip


@pytest.mark.parametrize("name", STEP_FILES)
def test_streamed_steps_write_the_in_memory_bytes(mid, name):
    streamed = (mid["tmp"] / "streamed" / name).read_bytes()
    assert streamed == (mid["tmp"] / "memory" / name).read_bytes()


def test_the_batchnorm_fold_read_the_weights_from_the_file(mid):
    """fold_batchnorm computed conv3's folded weights from the placeholder: the optimized
    graph has no BatchNormalization, and its conv3 weights are W * s of the converted file."""
    conv = load_onnx(mid["tmp"] / "streamed" / "convert/model.onnx")
    opt = load_onnx(mid["tmp"] / "streamed" / "optimize/model.onnx")
    assert "BatchNormalization" in {n.op_type for n in conv.graph.node}
    assert "BatchNormalization" not in {n.op_type for n in opt.graph.node}
    folded = next(n for n in opt.graph.node if n.op_type == "Conv" and "conv3" in n.input[1])
    w = next(t for t in opt.graph.initializer if t.name == folded.input[1])
    w0 = next(t for t in conv.graph.initializer if t.name == "conv3/W")
    assert w.name != "conv3/W" and list(w.dims) == list(w0.dims)
    assert not np.array_equal(onnx.numpy_helper.to_array(w), onnx.numpy_helper.to_array(w0))


def _reference(mid, x):
    """OpenCV's run of the Caffe model on the deployed input preprocessed in numpy."""
    from converters.preprocess import preprocess_numpy
    from tests.caffe.helpers import run_opencv

    files = mid["files"]
    feed = preprocess_numpy(x, PREPROCESS)
    return run_opencv(files["prototxt"], files["caffemodel"], {"data": feed}, ["fc2"])["fc2"]


# fp32: float32 rounding over a 4608- and an 8192-term sum; fp16: float16 weights and values
# (logits of magnitude ~10).
TOLERANCE = {"fp32": (1e-4, 1e-4), "fp16": (0.15, 0.02)}


@pytest.mark.parametrize("target", list(TARGETS))
def test_streamed_artifacts_compute_what_opencv_computes(mid, target):
    from tests.caffe.helpers import run_ort

    rng = np.random.default_rng(11)
    x = rng.uniform(0, 255, (1, 3, 16, 16)).astype(np.float32)
    want = _reference(mid, x)
    out = mid["tmp"] / "streamed" / target
    if TARGETS[target]["format"] == "onnx":
        got = run_ort((out / "model.onnx").read_bytes(), {"data": x})["fc2"]
    else:
        from tests.test_openvino_export import _run_ir

        got = _run_ir(out / "model.xml", {"data": x})["fc2"]
    atol, rtol = TOLERANCE[TARGETS[target]["precision"]]
    assert np.abs(want).max() > 1  # a real signal, not a dead net
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)


# -- reading and writing any ONNX file lazily ------------------------------------------------------
def test_lazy_read_and_streamed_write_of_a_publisher_model(models_dir, tmp_path):
    """UltraFace RFB-320 as its publisher wrote it, with every initializer over 256 bytes left
    in the file (floats, int64 shapes): the values are those onnx reads, and writing it back
    gives the bytes of writing the model onnx.load read."""
    src = models_dir / "ultraface" / "version-RFB-320_without_postprocessing.onnx"
    full = load_onnx(src)
    lazy = load_lazy(src, limit=256)
    assert len(placeholders(lazy)) > 50
    for t, want in zip(lazy.graph.initializer, full.graph.initializer, strict=True):
        np.testing.assert_array_equal(tensor_array(t), onnx.numpy_helper.to_array(want))
    save_streamed(lazy, tmp_path / "streamed.onnx")
    save_onnx(full, tmp_path / "plain.onnx")
    assert (tmp_path / "streamed.onnx").read_bytes() == (tmp_path / "plain.onnx").read_bytes()


def test_lazy_read_of_a_file_with_its_own_external_data_resolves_it(tmp_path, models_dir):
    """A user's file with external data is read by load_onnx (its location checks): the
    weights come in memory, no placeholder points at a file the model names."""
    model = load_onnx(models_dir / "ultraface" / "version-RFB-320_without_postprocessing.onnx")
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, size_threshold=0)
    got = load_lazy(tmp_path / "ext.onnx", limit=256)
    assert placeholders(got) == []
    assert got == load_onnx(tmp_path / "ext.onnx")


def test_lazy_read_of_a_file_that_is_no_onnx_is_load_onnx_error(tmp_path):
    from converters.errors import ConversionError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff" * (2 << 20))
    with pytest.raises(ConversionError) as lazy_err:
        load_lazy(bad)
    with pytest.raises(ConversionError) as plain_err:
        load_onnx(bad)
    assert str(lazy_err.value) == str(plain_err.value)


def test_float16_range_check_skips_inf_and_nan_like_numpy(tmp_path, monkeypatch):
    """The range check's max |x| over finite values, chunk by chunk from the file (small
    chunks: some hold an inf or a NaN, some not), equals numpy's over the whole array."""
    from converters.io import FileRange
    from converters.lazy import HalfBytes, max_abs_finite

    rng = np.random.default_rng(2)
    w = rng.normal(0, 100, 10_000).astype(np.float32)
    w[[5, 4000]] = np.inf
    w[7000] = -np.inf
    w[[6, 9000]] = np.nan
    w[8500] = -60000.5
    path = tmp_path / "w.bin"
    path.write_bytes(b"pad" + w.tobytes())
    want = float(np.max(np.abs(w[np.isfinite(w)])))
    monkeypatch.setattr(HalfBytes, "CHUNK", 1000)
    half = HalfBytes(FileRange(path, 3, w.nbytes))
    assert half.max_abs_finite() == want == 60000.5
    assert max_abs_finite(w, chunk=1000) == want
    got = np.frombuffer(half.read(), dtype="<f2")
    np.testing.assert_array_equal(got, w.astype(np.float16))  # inf, -inf and NaN kept


# -- the build's convert stage: the sources' re-hash overlaps the conversion ------------------------
def _stage_recipe(files: dict) -> dict:
    import hashlib

    def ref(p):
        data = p.read_bytes()
        return {"url": f"https://example.invalid/mid/{p.name}", "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip

    return {"source": {"framework": "caffe", "prototxt": ref(files["prototxt"]),
                       "caffemodel": ref(files["caffemodel"])},
            "inputs": INPUTS, "targets": {"onnx": TARGETS["onnx"]}}  # fmt: skip


def test_build_convert_writes_the_bytes_only_once_the_hash_is_checked(mid, tmp_path, monkeypatch):
    """act_convert hashes the fetched files in a thread while it converts: intact, it writes
    the in-memory path's bytes; with a weight byte flipped after the fetch (the file still
    parses) it fails with check_fetched's line, removes the bad file and leaves no output and
    no temporary, where the conversion itself would have succeeded."""

    from pipelines.build import actions
    from pipelines.errors import ZoomakeError

    recipe, src = _fetched_build(mid, tmp_path, monkeypatch)
    out = tmp_path / "build" / "mid" / "convert" / "model.onnx"
    actions.act_convert("mid", recipe, str(out))
    assert out.read_bytes() == (mid["tmp"] / "memory" / "convert/model.onnx").read_bytes()

    for f in out.parent.iterdir():  # the output and its stats.json
        f.unlink()
    weights = src / "mid.caffemodel"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40  # inside conv3's float32 weights
    weights.write_bytes(bytes(data))
    with pytest.raises(ZoomakeError) as err:
        actions.act_convert("mid", recipe, str(out))
    assert str(err.value).startswith(f"{weights}: sha256 ")
    assert str(err.value).endswith(
        "the file changed after fetch:mid; removed it, the next doit fetches it again"
    )
    assert not weights.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no output, no temporary


def _fetched_build(mid, tmp_path, monkeypatch):
    """A build dir under tmp_path holding mid's fetched sources: (its recipe, source dir)."""
    import shutil

    from pipelines.build import layout

    monkeypatch.setattr(layout, "BUILD", tmp_path / "build")
    src = tmp_path / "build" / "mid" / "source"
    src.mkdir(parents=True)
    for p in mid["files"].values():
        shutil.copy(p, src / p.name)
    return _stage_recipe(mid["files"]), src


def test_build_convert_reports_the_hash_when_a_changed_file_fails_the_parse(mid, tmp_path,
                                                                            monkeypatch):  # fmt: skip
    """A source changed so that the converter fails on it: the hash's line is reported (the
    cause), not the converter's."""

    from pipelines.build import actions
    from pipelines.errors import ZoomakeError

    recipe, src = _fetched_build(mid, tmp_path, monkeypatch)
    (src / "mid.prototxt").write_text(MID.replace('type: "Pooling"', 'type: "NoSuchLayer"', 1))
    from converters.errors import ConversionError
    from pipelines.build.steps import convert_source

    with pytest.raises(ConversionError, match="NoSuchLayer"):  # what the converter says alone
        convert_source("caffe", {"prototxt": src / "mid.prototxt",
                                 "caffemodel": src / "mid.caffemodel"}, INPUTS, lazy=True)  # fmt: skip
    out = tmp_path / "build" / "mid" / "convert" / "model.onnx"
    with pytest.raises(ZoomakeError) as err:
        actions.act_convert("mid", recipe, str(out))
    assert str(err.value).startswith(f"{src / 'mid.prototxt'}: more than ")  # a longer file
    assert str(err.value).endswith(
        "the file changed after fetch:mid; removed it, the next doit fetches it again"
    )
    assert not out.exists()


# -- ONNX sources: the big weights stay in the source file --------------------------------------
RFB_INPUTS = {"input": {"shape": [1, 3, 240, 320], "preprocess": {"mean": 127, "scale": 0.0078125}}}


@pytest.fixture(scope="module")
def rfb17(tmp_path_factory, models_dir):
    """UltraFace RFB-320 (the publisher's opset-9 file) and the same model at opset 17, the
    target opset, as an ONNX source that can stay in its file."""
    from converters.onnx_source import load_onnx_source

    tmp = tmp_path_factory.mktemp("rfb17")
    original = models_dir / "ultraface" / "version-RFB-320_without_postprocessing.onnx"
    src = tmp / "rfb17.onnx"
    save_onnx(load_onnx_source(original, {"input": [1, 3, 240, 320]}, None, 17), src)
    return {"original": original, "src": src}


@pytest.mark.parametrize("outputs", [None, ["scores"]])
def test_lazy_onnx_source_writes_the_in_memory_bytes(rfb17, tmp_path, monkeypatch, outputs):
    """The build's convert of an ONNX source at the target opset (with preprocessing, and
    cut at an output) leaves the initializers over 256 bytes in the source file and writes
    exactly the bytes of the model converted with every weight in memory."""
    from converters import lazy
    from pipelines.build.steps import convert_source

    files = {"onnx": rfb17["src"]}
    memory = convert_source("onnx", files, RFB_INPUTS, outputs, 17)
    monkeypatch.setattr(lazy, "BIG", 256)
    streamed = convert_source("onnx", files, RFB_INPUTS, outputs, 17, lazy=True)
    assert len(placeholders(streamed)) > 50
    assert all(lazy.file_range(t).path == rfb17["src"] for t in placeholders(streamed))
    save_streamed(streamed, tmp_path / "streamed.onnx")
    save_onnx(memory, tmp_path / "memory.onnx")
    assert (tmp_path / "streamed.onnx").read_bytes() == (tmp_path / "memory.onnx").read_bytes()


def test_lazy_onnx_source_computes_what_onnxruntime_computes_on_the_publisher_file(
    rfb17, tmp_path, monkeypatch
):
    """The streamed conversion, run by onnxruntime on a raw image, against onnxruntime on the
    publisher's file (opset 9, every weight loaded by onnxruntime itself) fed the image
    preprocessed in numpy. fp32: the recipe's measured 9.3e-6 at opset 17, bound 1e-4."""
    from converters import lazy
    from pipelines.build.steps import convert_source
    from tests.caffe.helpers import run_ort

    monkeypatch.setattr(lazy, "BIG", 256)
    streamed = convert_source("onnx", {"onnx": rfb17["src"]}, RFB_INPUTS, None, 17, lazy=True)
    assert placeholders(streamed)
    save_streamed(streamed, tmp_path / "streamed.onnx")
    x = np.random.default_rng(5).uniform(0, 255, (1, 3, 240, 320)).astype(np.float32)
    got = run_ort((tmp_path / "streamed.onnx").read_bytes(), {"input": x})
    want = run_ort(rfb17["original"].read_bytes(), {"input": (x - 127.0) * np.float32(1 / 128)})
    assert set(got) == set(want) == {"scores", "boxes"}
    for name in want:
        assert np.abs(want[name]).max() > 0.5  # a real signal
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=1e-4)


def test_lazy_onnx_source_at_another_opset_is_filled_in(rfb17, tmp_path, monkeypatch):
    """The publisher's opset-9 file brought to opset 17: onnx's version converter needs every
    value, so nothing stays in the file, and the bytes are those of the plain path."""
    from converters import lazy
    from pipelines.build.steps import convert_source

    files = {"onnx": rfb17["original"]}
    memory = convert_source("onnx", files, RFB_INPUTS, None, 17)
    monkeypatch.setattr(lazy, "BIG", 256)
    streamed = convert_source("onnx", files, RFB_INPUTS, None, 17, lazy=True)
    assert placeholders(streamed) == []
    assert streamed.SerializeToString() == memory.SerializeToString()


def test_lazy_read_of_external_data_in_a_subgraph_resolves_it(tmp_path):
    """External data anywhere in the model (here: a Constant in an If branch, beside a big
    inline initializer) sends the file to load_onnx: no placeholder, onnx's values."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(300_000, dtype=np.float32)  # 1.2 MB inline: a placeholder candidate
    ext = TensorProto(name="cv", data_type=TensorProto.FLOAT, dims=[3])
    ext.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "cv.bin"), ("offset", "0"), ("length", "12")):
        entry = ext.external_data.add()
        entry.key, entry.value = key, value
    (tmp_path / "cv.bin").write_bytes(np.array([1, 2, 3], np.float32).tobytes())
    branch = helper.make_graph([helper.make_node("Constant", [], ["t"], value=ext)], "b", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])])  # fmt: skip
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["o"], then_branch=branch, else_branch=branch),
         helper.make_node("ReduceSum", ["w"], ["s"])],
        "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, [1])],
        initializer=[numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    got = load_lazy(path)
    assert placeholders(got) == []
    assert got == load_onnx(path)
    const = got.graph.node[0].attribute[0].g.node[0].attribute[0].t
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(const), [1, 2, 3])
