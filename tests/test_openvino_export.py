"""ONNX -> OpenVINO IR: fp32 really stores float32, fp16 half of it, numbers match onnxruntime,
and the .xml/.bin pair is written atomically."""

from __future__ import annotations

import re

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.io import save_onnx
from converters.onnx_source import load_onnx_source
from converters.openvino_export import export_openvino
from tests.caffe.helpers import run_ort

RFB_ONNX = "ultraface/version-RFB-320_without_postprocessing.onnx"


@pytest.fixture(scope="module")
def rfb(models_dir, tmp_path_factory):
    """The publisher's RFB-320 ONNX (opset 17, static), saved once for the module."""
    model = load_onnx_source(models_dir / RFB_ONNX)
    path = tmp_path_factory.mktemp("rfb") / "model.onnx"
    save_onnx(model, path)
    return model, path


def _run_ir(xml, feeds):
    import openvino as ov

    # f32 explicitly: recent CPUs default to bf16 inference, which would hide fp32 errors.
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(feeds)
    return {port.get_any_name(): result[port] for port in compiled.outputs}


def _feeds(seed):
    rng = np.random.default_rng(seed)
    return {"input": rng.uniform(-1, 1, (1, 3, 240, 320)).astype(np.float32)}


def _float_bytes(model):
    return sum(int(np.prod(t.dims)) * 4 for t in model.graph.initializer if t.data_type == 1)


@pytest.mark.parametrize(
    ("precision", "atol", "rtol", "bin_ratio"),
    # fp16: boxes (|boxes| <= 7) differ by up to 0.025 from float32, as much as onnxruntime's
    # own float16 conversion of the same model (measured on these inputs).
    [("fp32", 1e-4, 1e-5, 1.0), ("fp16", 3e-2, 1e-2, 0.5)],
)
def test_export_matches_onnxruntime(tmp_path, rfb, precision, atol, rtol, bin_ratio):
    model, onnx_path = rfb
    xml = tmp_path / "model.xml"
    export_openvino(onnx_path, xml, precision)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]
    # The IR keeps (almost) every float weight; fp32 stores 4 bytes each, fp16 2.
    ratio = xml.with_suffix(".bin").stat().st_size / _float_bytes(model)
    assert bin_ratio * 0.95 <= ratio <= bin_ratio * 1.01, ratio
    assert ('element_type="f16"' in xml.read_text()) == (precision == "fp16")
    for seed in (0, 1):
        feeds = _feeds(seed)
        want = run_ort(model, feeds)
        got = _run_ir(xml, feeds)
        assert set(got) == {"scores", "boxes"}
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=atol, rtol=rtol, err_msg=name)


def test_fp16_bin_is_half_of_fp32(tmp_path, rfb):
    _, onnx_path = rfb
    export_openvino(onnx_path, tmp_path / "a" / "model.xml", "fp32")
    export_openvino(onnx_path, tmp_path / "b" / "model.xml", "fp16")
    full = (tmp_path / "a" / "model.bin").stat().st_size
    half = (tmp_path / "b" / "model.bin").stat().st_size
    assert 0.49 <= half / full <= 0.51


def test_unreadable_onnx_is_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as err:
        export_openvino(bad, out / "model.xml", "fp32")
    assert str(err.value).startswith(f"{bad}: not ")  # not readable / not an ONNX model
    assert "\n" not in str(err.value)
    assert not out.exists() or not list(out.iterdir())


def test_onnx_openvino_cannot_convert(tmp_path):
    """A valid ONNX file with an op OpenVINO does not know: OpenVINO's reason, one line."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], domain="zoo.test")],
                              "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                      [1, 2])])  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("zoo.test", 1)]
    )
    path = tmp_path / "custom.onnx"
    save_onnx(model, path)
    with pytest.raises(ConversionError) as err:
        export_openvino(path, tmp_path / "out" / "model.xml", "fp32")
    assert str(err.value).startswith(f"{path}: OpenVINO cannot convert the model: ")
    assert "zoo.test.NoSuchOp" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_missing_onnx(tmp_path):
    with pytest.raises(ConversionError, match="ONNX file not found"):
        export_openvino(tmp_path / "nope.onnx", tmp_path / "model.xml", "fp32")


def test_bad_precision(tmp_path, rfb):
    with pytest.raises(ConversionError, match="precision must be one of fp32, fp16, got 'int8'"):
        export_openvino(rfb[1], tmp_path / "model.xml", "int8")


def test_failed_save_leaves_old_pair_and_no_temp(tmp_path, rfb, monkeypatch):
    """save_model dies after writing half its output: the old pair stays, no temp remains."""
    import openvino as ov

    xml, bin_ = tmp_path / "model.xml", tmp_path / "model.bin"
    xml.write_text("old xml")
    bin_.write_bytes(b"old bin")

    def broken_save(model, path, compress_to_fp16):
        (tmp_path / path).with_suffix(".bin").write_bytes(b"partial")
        raise RuntimeError("disk full\nmore detail")

    monkeypatch.setattr(ov, "save_model", broken_save)
    with pytest.raises(
        ConversionError, match=r"model.xml: OpenVINO cannot save the IR: disk full more detail$"
    ):
        export_openvino(rfb[1], xml, "fp32")
    assert xml.read_text() == "old xml" and bin_.read_bytes() == b"old bin"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]


def test_compress_flag_is_always_explicit(tmp_path, rfb, monkeypatch):
    """openvino.save_model compresses to FP16 unless told not to: fp32 must pass False."""
    import openvino as ov

    seen = []
    real = ov.save_model

    def spy(model, path, *args, **kwargs):
        seen.append((args, kwargs))
        return real(model, path, *args, **kwargs)

    monkeypatch.setattr(ov, "save_model", spy)
    export_openvino(rfb[1], tmp_path / "a" / "model.xml", "fp32")
    export_openvino(rfb[1], tmp_path / "b" / "model.xml", "fp16")
    assert seen == [((), {"compress_to_fp16": False}), ((), {"compress_to_fp16": True})]


def _other_model(path):
    """A small different model: converting it first moves OpenVINO's node-name counter on."""
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 1, 1], [0.5] * 12)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        initializer=[w],
    )
    save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _pair(d):
    return [(d / name).read_bytes() for name in ("model.xml", "model.bin")]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ir_is_reproducible_in_one_process_and_across_processes(
    tmp_path, rfb, precision, monkeypatch
):
    """OpenVINO invents node names from a process-wide counter; the IR must not depend on it:
    the same model exported after other conversions in this process (no child process), again,
    and in a fresh process gives the same bytes."""
    import subprocess
    import sys

    real_run = subprocess.run

    def no_child(*args, **kwargs):
        raise AssertionError("export_openvino started a process")

    other = _other_model(tmp_path / "other.onnx")
    monkeypatch.setattr(subprocess, "run", no_child)
    monkeypatch.setattr(subprocess, "Popen", no_child)
    export_openvino(rfb[1], tmp_path / "a" / "model.xml", precision)
    export_openvino(other, tmp_path / "o1" / "model.xml", precision)
    export_openvino(rfb[1], tmp_path / "b" / "model.xml", precision)
    export_openvino(other, tmp_path / "o2" / "model.xml", precision)
    monkeypatch.undo()
    assert subprocess.run is real_run
    code = (
        "import sys; from converters.openvino_export import export_openvino as e; "
        "e(sys.argv[1], sys.argv[2], sys.argv[3])"
    )
    out = tmp_path / "child" / "model.xml"
    subprocess.run([sys.executable, "-c", code, str(rfb[1]), str(out), precision], check=True)
    assert _pair(tmp_path / "a") == _pair(tmp_path / "b") == _pair(tmp_path / "child")
    assert _pair(tmp_path / "o1") == _pair(tmp_path / "o2")
    xml = (tmp_path / "a" / "model.xml").read_text()
    assert 'name="Reshape_' not in xml and 'name="Constant_' not in xml  # no counter names


def test_ir_equals_convert_model_but_for_invented_names(tmp_path, rfb):
    """Our conversion runs OpenVINO's converter steps itself: the IR must be what
    ``openvino.convert_model`` + ``save_model`` write (here in a fresh process), the same
    layers, ports, edges, rt_info and weights, with only the names OpenVINO invents changed."""
    import re
    import subprocess
    import sys

    export_openvino(rfb[1], tmp_path / "ours" / "model.xml", "fp16")
    ref = tmp_path / "ref" / "model.xml"
    ref.parent.mkdir()
    code = (
        "import sys, openvino as ov; "
        "ov.save_model(ov.convert_model(sys.argv[1]), sys.argv[2], compress_to_fp16=True)"
    )
    subprocess.run([sys.executable, "-c", code, str(rfb[1]), str(ref)], check=True)
    ours_bin, ref_bin = (tmp_path / "ours" / "model.bin").read_bytes(), ref.with_suffix(".bin")
    assert ours_bin == ref_bin.read_bytes()
    ours, theirs = (tmp_path / "ours" / "model.xml").read_text(), ref.read_text()
    renamed = sum(a != b for a, b in zip(ours.splitlines(), theirs.splitlines(), strict=True))
    assert renamed > 0  # the reference does have counter names to replace

    def masked(text):
        return re.sub(r' name="[^"]*"', "", text)

    assert masked(ours) == masked(theirs)


@pytest.mark.parametrize("link", [True, False], ids=["hard-link", "copied"])
def test_big_caffe_model_to_ir_through_external_data(tmp_path, monkeypatch, link):
    """A Caffe model whose big weights stay in the caffemodel reaches OpenVINO as ONNX with
    external data in the caffemodel itself (a hard link to it; copied out where no link can be
    made), mapped by OpenVINO, never parsed: the IR is byte-identical to the one made from the
    model materialized in memory, and its numbers are OpenCV's."""
    import os

    from converters.caffe.convert import convert_caffe
    from converters.lazy import placeholders
    from pipelines.build.steps import write_model
    from tests.caffe.helpers import run_opencv, write_net

    rng = np.random.default_rng(5)
    proto, weights = write_net(
        tmp_path,
        """
name: "big"
input: "data"
input_dim: 1 input_dim: 256 input_dim: 4 input_dim: 4
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 500 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
""",
        {
            "fc": [
                rng.normal(0, 0.05, (500, 4096)).astype(np.float32),
                rng.normal(0, 0.1, 500).astype(np.float32),
            ]
        },
    )
    lazy = convert_caffe(proto, weights).materialize(lazy=True)
    assert [t.name for t in placeholders(lazy)] == ["fc/W"]
    if not link:

        def cross_device(*args, **kwargs):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(os, "link", cross_device)
    streamed = write_model(lazy, tmp_path / "a" / "model.xml", "openvino")
    write_model(
        convert_caffe(proto, weights).materialize(), tmp_path / "b" / "model.xml", "openvino"
    )
    assert _pair(tmp_path / "a") == _pair(tmp_path / "b")
    assert [p.name for p in streamed] == ["model.xml", "model.bin"]
    x = rng.standard_normal((1, 256, 4, 4)).astype(np.float32)
    got = _run_ir(tmp_path / "a" / "model.xml", {"data": x})["prob"]
    want = run_opencv(proto, weights, {"data": x}, ["prob"])["prob"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def _loop_model(path):
    """A Loop whose body holds constants of its own and a Result read from a Constant (the
    condition), as DetectionOutput's ONNX form has: nodes only a sub-graph's names can name."""
    from onnx import TensorProto, helper

    step = helper.make_tensor("step", TensorProto.FLOAT, [1, 4], [0.5, 1.0, 1.5, 2.0])
    body = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["two"], value=helper.make_tensor("t", TensorProto.FLOAT, [], [2.0])
            ),
            helper.make_node("Mul", ["v_in", "two"], ["m"]),
            helper.make_node("Add", ["m", "step"], ["v_out"]),
            helper.make_node(
                "Constant",
                [],
                ["keep"],
                value=helper.make_tensor("k", TensorProto.BOOL, [], [True]),
            ),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, 4]),
        ],
        [
            helper.make_tensor_value_info("keep", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, 4]),
        ],
        initializer=[step],
    )
    trips = helper.make_tensor("trips", TensorProto.INT64, [], [3])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)],
        "loop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[trips, cond],
    )
    save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_ir_of_a_loop_body_is_reproducible_in_one_process(tmp_path):
    """The nodes of a Loop body get derived names too: the IR does not depend on how many
    nodes the process created before (serial builds export every target in one process),
    and it still computes what onnxruntime does."""
    loop, other = _loop_model(tmp_path / "loop.onnx"), _other_model(tmp_path / "other.onnx")
    export_openvino(loop, tmp_path / "a" / "model.xml", "fp32")
    export_openvino(other, tmp_path / "o" / "model.xml", "fp32")
    export_openvino(loop, tmp_path / "b" / "model.xml", "fp32")
    assert _pair(tmp_path / "a") == _pair(tmp_path / "b")
    xml = (tmp_path / "a" / "model.xml").read_text()
    assert not re.search(r'name="[A-Z][A-Za-z]*_\d+[/"]', xml)  # no counter names, bodies too
    import onnx

    x = np.array([[1.0, -2.0, 3.0, 0.25]], np.float32)
    want = run_ort(onnx.load(loop), {"x": x})["y"]
    step = np.array([0.5, 1.0, 1.5, 2.0], np.float32)
    np.testing.assert_allclose(want, ((x * 2 + step) * 2 + step) * 2 + step, rtol=1e-6)
    got = _run_ir(tmp_path / "a" / "model.xml", {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
