"""`zoomake convert`: the one-shot CLI, run as a user runs it (a separate process)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tests.caffe.helpers import (
    assert_caffe_outputs,
    assert_same_outputs,
    caffe_available,
    final_blobs,
    run_opencv,
    run_ort,
)


def zoomake(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)  # fmt: skip


def test_convert_real_model_matches_opencv(models_dir, tmp_path):
    proto, weights = models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"
    out = tmp_path / "det1.onnx"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out,
                "--input-shape", "data=1,3,24,30")  # fmt: skip
    assert r.returncode == 0, r.stderr
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 24, 30)).astype(np.float32)
    got = run_ort(model, {"data": x})
    expected = final_blobs(proto)
    assert_same_outputs(got, expected)
    want = run_opencv(proto, weights, {"data": x}, expected)
    for name in expected:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_convert_outputs_cut_and_opset(models_dir, tmp_path):
    out = tmp_path / "cut.onnx"
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "--caffemodel",
                models_dir / "mtcnn/det1.caffemodel", "-o", out, "--outputs", "conv3",
                "--opset", "13")  # fmt: skip
    assert r.returncode == 0, r.stderr
    model = onnx.load(out)
    assert [o.name for o in model.graph.output] == ["conv3"]
    assert model.opset_import[0].version == 13


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--prototxt", "missing.prototxt", "-o", "x.onnx"], "missing.prototxt: --prototxt file not found"),
        (["-o", "x.onnx"], "no source"),
        (["--onnx", "a.onnx", "--prototxt", "b", "-o", "x.onnx"], "not both"),
    ],
)  # fmt: skip
def test_convert_usage_errors(tmp_path, args, needle):
    r = zoomake("convert", *args, cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoomake: error: ")
    assert needle in r.stderr


def test_unknown_output_suffix(models_dir, tmp_path):
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "-o",
                tmp_path / "x.tflite")  # fmt: skip
    assert r.returncode == 1 and "suffix '.tflite'" in r.stderr


def test_bad_input_shape_is_usage_error(models_dir, tmp_path):
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "-o",
                tmp_path / "x.onnx", "--input-shape", "data=1,3,x")  # fmt: skip
    assert r.returncode == 2 and "NAME=1,3,224,224" in r.stderr


def test_python_m_and_console_script_agree():
    r = zoomake("layers")
    assert r.returncode == 0
    assert "Convolution" in r.stdout and "Pooling" in r.stdout


def test_onnx_to_openvino_ir(models_dir, tmp_path):
    import openvino as ov

    src = models_dir / "ultraface/version-RFB-320_without_postprocessing.onnx"
    out = tmp_path / "ir" / "rfb.xml"
    r = zoomake("convert", "--onnx", src, "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and out.with_suffix(".bin").is_file()
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 240, 320)).astype(np.float32)
    compiled = ov.Core().compile_model(str(out), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled({"input": x})
    want = run_ort(onnx.load(src), {"input": x})
    ports = {port.get_any_name(): port for port in compiled.outputs}
    assert_same_outputs(ports, list(want))
    for name, value in want.items():
        np.testing.assert_allclose(got[ports[name]], value, atol=1e-4, err_msg=name)


def test_onnx_to_caffe_pair(models_dir, tmp_path):
    src = models_dir / "ultraface/version-slim-320_without_postprocessing.onnx"
    out = tmp_path / "slim.prototxt"
    r = zoomake("convert", "--onnx", src, "-o", out)
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 240, 320)).astype(np.float32)
    want = run_ort(onnx.load(src), {"input": x})
    assert_caffe_outputs(out, list(want))
    got = run_opencv(out, out.with_suffix(".caffemodel"), {"input": x}, list(want))
    for name in want:
        np.testing.assert_allclose(got[name].reshape(want[name].shape), want[name], atol=1e-4)


def test_preprocessing_optimize_fp16_flags(models_dir, tmp_path):
    """uint8 NHWC input with mean/scale baked in, optimized, FP16 weights, float32 I/O."""
    proto, weights = models_dir / "mtcnn/det2.prototxt", models_dir / "mtcnn/det2.caffemodel"
    out = tmp_path / "det2.onnx"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out,
                "--mean", "127.5", "--multiply", "0.0078125", "--input-layout", "NHWC",
                "--input-dtype", "uint8", "--optimize", "--fp16")  # fmt: skip
    assert r.returncode == 0, r.stderr
    model = onnx.load(out)
    vi = model.graph.input[0]
    assert vi.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in vi.type.tensor_type.shape.dim] == [1, 24, 24, 3]
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)
    raw = np.random.default_rng(3).integers(0, 256, (1, 24, 24, 3), dtype=np.uint8)
    got = run_ort(model, {"data": raw})
    x = ((raw.astype(np.float64).transpose(0, 3, 1, 2) - 127.5) * 0.0078125).astype(np.float32)
    expected = final_blobs(proto)
    assert_same_outputs(got, expected)
    want = run_opencv(proto, weights, {"data": x}, expected)
    for name in expected:
        np.testing.assert_allclose(got[name], want[name], atol=1e-2, err_msg=name)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--scale", "2", "--std", "3"], "--std/--scale_values and --scale both set the std of "
         "input (the image input): give one"),
        (["--multiply", "2", "--std", "3"], "input (the image input): --multiply and a divisor "
         "(--std/--scale/--scale_values) are mutually exclusive"),
        (["--mean", "1", "--mean_values", "2"], "--mean/--mean_values is given twice for input "
         "(the image input)"),
    ],
)  # fmt: skip
def test_one_divisor_or_multiplier_per_input(models_dir, tmp_path, flags, message):
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "-o",
                tmp_path / "x.onnx", *flags)  # fmt: skip
    assert (r.returncode, r.stderr) == (1, f"zoomake: error: {message}\n")
    assert not list(tmp_path.iterdir())


def test_to_overrides_the_suffix(models_dir, tmp_path):
    out = tmp_path / "det1.model"
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "--caffemodel",
                models_dir / "mtcnn/det1.caffemodel", "-o", out, "--to", "onnx")  # fmt: skip
    assert r.returncode == 0, r.stderr
    onnx.checker.check_model(onnx.load(out), full_check=True)


def test_build_runs_doit_on_the_zoo_of_the_current_directory(repo_root, tmp_path):
    shutil.copytree(repo_root / "recipes", tmp_path / "recipes")
    r = zoomake("build", "list", "--all", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert {"fetch", "convert", "optimize", "export", "measure", "verify", "report"} <= {
        line.split()[0] for line in r.stdout.splitlines() if line.strip()
    }
    ids = {p.stem for p in (repo_root / "recipes").glob("*.yaml")}
    assert {line.split()[0] for line in r.stdout.splitlines() if line.startswith("convert:")} == {
        f"convert:{i}" for i in ids
    }
    assert (tmp_path / "build" / ".doit.db").exists()  # the state lives in ./build


def test_build_recipes_and_build_flags(repo_root, tmp_path):
    (tmp_path / "zoo").mkdir()
    shutil.copy(repo_root / "recipes" / "mtcnn-det2.yaml", tmp_path / "zoo")
    r = zoomake("build", "--recipes", "zoo", "--build", "out", "list", "--all", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "convert:mtcnn-det2" in r.stdout.split() and "convert:mtcnn-det1" not in r.stdout
    assert (tmp_path / "out" / ".doit.db").exists() and not (tmp_path / "build").exists()


def test_build_without_recipes_folder_is_one_line(tmp_path):
    r = zoomake("build", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"zoomake: error: {tmp_path / 'recipes'}: recipes folder not found; run zoomake build "
        "in a zoo directory (one with recipes/) or give --recipes DIR"
    ]


def test_validate_honours_zoomake_recipes_and_the_flag(repo_root, tmp_path):
    (tmp_path / "zoo").mkdir()
    shutil.copy(repo_root / "recipes" / "mtcnn-det2.yaml", tmp_path / "zoo")
    env = {**os.environ, "ZOOMAKE_RECIPES": str(tmp_path / "zoo")}
    r = subprocess.run([sys.executable, "-m", "pipelines", "validate"], cwd=repo_root, env=env,
                       capture_output=True, text=True)  # fmt: skip
    assert (r.returncode, r.stdout.strip()) == (0, "1 recipe(s) valid"), r.stderr
    r = zoomake("validate", "--recipes", tmp_path / "zoo", cwd=repo_root)
    assert (r.returncode, r.stdout.strip()) == (0, "1 recipe(s) valid"), r.stderr


def test_version():
    from pipelines import version

    r = zoomake("--version")
    assert (r.returncode, r.stdout.strip()) == (0, f"zoomake {version()}")
    assert version()[0].isdigit()


def test_validate_reports_every_error_and_exits_1(repo_root, tmp_path):
    good = (repo_root / "recipes" / "mtcnn-det1.yaml").read_text()
    bad = (
        good.replace("shape: [1, 3, 12, 12]", "shape: [1, 3]")
        .replace("onnx: {format: onnx", "onnx: {format: tflite")
        .replace("reverse_channels: false", "reverse_channels: maybe")
    )
    (tmp_path / "det1.yaml").write_text(bad)
    r = zoomake("validate", "det1.yaml", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[:-1] == [
        "det1.yaml#/inputs/data/shape: expected array of 4 integers, got [1, 3]",
        "det1.yaml#/inputs/data/preprocess/reverse_channels: expected true or false, got 'maybe'",
        "det1.yaml#/targets/onnx/format: expected one of caffe, onnx, openvino, got 'tflite'",
    ]
    assert lines[-1] == "3 error(s) in 1 recipe(s)"


def test_validate_default_zoo(repo_root):
    r = zoomake("validate", cwd=repo_root)
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.strip() == f"{len(list((repo_root / 'recipes').glob('*.yaml')))} recipe(s) valid"
    )


# -- summary, verification, provenance -----------------------------------------------------------
REAL_CAFFE = ["mtcnn/det1", "mtcnn/det2", "mtcnn/det3", "mtcnn/det4", "ultraface/RFB-320",
              "ultraface/slim-320"]  # fmt: skip


def _summary(stdout: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        key, _, rest = line.partition(" ")
        out.setdefault(key, []).append(rest.strip())
    return out


@pytest.mark.parametrize("std", [None, "0.5"], ids=["plain", "wrong-std"])
@pytest.mark.parametrize("model", REAL_CAFFE)
def test_convert_summary_and_verification_on_real_models(models_dir, tmp_path, model, std):
    proto, weights = models_dir / f"{model}.prototxt", models_dir / f"{model}.caffemodel"
    out = tmp_path / "m.onnx"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out,
                *(["--std", std] if std else []))  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = _summary(r.stdout)
    assert set(summary) == {"source", "input", "output", "verify", "wrote", "done"}, r.stdout
    assert summary["source"] == [f"caffe: {proto} + {weights}"]
    onnx_model = onnx.load(out)
    (inp,) = onnx_model.graph.input
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    pre = f"model sees x / {std}" if std else "none"
    assert summary["input"] == [f"{inp.name}: float32{dims} NCHW, preprocessing: {pre}"]
    names = [o.name for o in onnx_model.graph.output]
    assert [line.split(":")[0] for line in summary["output"]] == names
    (verify,) = summary["verify"]
    ref = "caffe" if caffe_available() else "opencv"  # real Caffe once set up (CI)
    assert verify.startswith(f"passed: onnxruntime vs {ref} (caffe) on 1 seeded input: ")
    errors = re.findall(r"(\S+) max \|err\| (\S+?),? ", verify + " ")
    assert [n for n, _ in errors] == names and all(float(e) <= 1e-3 for _, e in errors), verify
    (wrote,) = summary["wrote"]
    m = re.fullmatch(rf"{re.escape(str(out))} \(([\d.]+) (kB|MB)\)", wrote)
    assert m, wrote
    unit = {"kB": 1e3, "MB": 1e6}[m.group(2)]
    assert abs(float(m.group(1)) * unit - out.stat().st_size) <= 0.05 * unit
    meta = {
        p.key: json.loads(p.value) for p in onnx_model.metadata_props if p.key != "zoomake.version"
    }
    assert meta["zoomake.preprocess"] == ({inp.name: {"std": float(std)}} if std else {})


def test_failed_verification_writes_nothing(models_dir, tmp_path):
    """FP16 weights cannot hold P-Net's response to inputs scaled by 128: the check catches it."""
    proto, weights = models_dir / "mtcnn/det2.prototxt", models_dir / "mtcnn/det2.caffemodel"
    out = tmp_path / "sub" / "m.onnx"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out,
                "--std", "0.0078125", "--fp16")  # fmt: skip
    assert r.returncode == 1
    (line,) = r.stderr.splitlines()
    assert line.startswith("zoomake: error: verification failed, no output written: FAILED output")
    assert line.endswith("(--no-verify writes it anyway)")
    assert not (tmp_path / "sub").exists()
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out,
                "--std", "0.0078125", "--fp16", "--no-verify")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "verify   skipped" in r.stdout and out.is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.onnx"]  # no temporary left


def test_quiet_and_unverifiable(models_dir, tmp_path):
    proto = models_dir / "mtcnn/det1.prototxt"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", models_dir / "mtcnn/det1.caffemodel",
                "-o", tmp_path / "a.onnx", "-q")  # fmt: skip
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    weightless = tmp_path / "pool.prototxt"  # a net without weights needs no caffemodel
    weightless.write_text('input: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
                          'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
                          'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')  # fmt: skip
    r = zoomake("convert", "--prototxt", weightless, "-o", tmp_path / "b.onnx")
    assert r.returncode == 0, r.stderr
    assert (
        r.stderr == "zoomake: not verified: the Caffe reference needs the weights (--caffemodel)\n"
    )
    assert "verify   skipped" in r.stdout


def test_provenance_in_onnx_and_openvino_ir(models_dir, tmp_path):
    import hashlib

    import openvino as ov

    from pipelines import version

    proto, weights = models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"
    flags = ["--mean", "[127.5,127.5,127.5]", "--scale", "128", "--reverse-channels"]
    for out in (tmp_path / "m.onnx", tmp_path / "m.xml"):
        r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out, *flags)
        assert r.returncode == 0, r.stderr
    meta = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert meta["zoomake.version"] == version()
    source = json.loads(meta["zoomake.source"])
    assert source["framework"] == "caffe"
    for role, path in (("prototxt", proto), ("caffemodel", weights)):
        assert source["files"][role] == {"name": path.name, "size": path.stat().st_size,
                                         "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}  # fmt: skip
    assert json.loads(meta["zoomake.preprocess"]) == {
        "data": {"mean": [127.5, 127.5, 127.5], "std": 128.0, "reverse_channels": True}
    }
    options = json.loads(meta["zoomake.options"])
    assert options["format"] == "onnx" and options["precision"] == "fp32" and options["opset"] == 17
    ir = ov.Core().read_model(str(tmp_path / "m.xml"))
    for key in ("zoomake.version", "zoomake.source", "zoomake.preprocess"):
        assert ir.get_rt_info(["framework", key]).astype(str) == meta[key], key
    assert json.loads(ir.get_rt_info(["framework", "zoomake.options"]).astype(str))["format"] == (
        "openvino"
    )


@pytest.mark.parametrize("name", ["mtcnn/det1.prototxt", "mtcnn/det1.caffemodel"])
def test_onnx_flag_refuses_other_files(models_dir, tmp_path, name):
    r = zoomake("convert", "--onnx", models_dir / name, "-o", tmp_path / "x.onnx")
    assert r.returncode == 1
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"zoomake: error: {models_dir / name}: not an ONNX model")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", [[], ["convert"], ["validate"], ["build"], ["regress"],
                                     ["layers"]])  # fmt: skip
def test_help_is_plain_text(command):
    r = zoomake(*command, "--help")
    assert r.returncode == 0, r.stderr
    assert "`" not in r.stdout and "``" not in r.stdout and ":func:" not in r.stdout


def test_onnx_source_with_a_new_input_shape_verifies(models_dir, tmp_path):
    import cv2

    src = models_dir / "ultraface/version-slim-320_without_postprocessing.onnx"
    out = tmp_path / "small.onnx"
    r = zoomake("convert", "--onnx", src, "-o", out, "--input-shape", "1,3,120,160")
    assert r.returncode == 0, r.stderr
    assert "verify   passed: onnxruntime vs onnxruntime (onnx)" in r.stdout
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 120, 160)).astype(np.float32)
    got = run_ort(onnx.load(out), {"input": x})
    net = cv2.dnn.readNetFromONNX(str(src))  # OpenCV runs the original at any input size
    net.setInput(x, "input")
    want = dict(
        zip(
            net.getUnconnectedOutLayersNames(),
            net.forward(net.getUnconnectedOutLayersNames()),
            strict=True,
        )
    )
    assert got["scores"].shape == (1, 1118, 2)
    for name in got:
        np.testing.assert_allclose(
            got[name], want[name].reshape(got[name].shape), atol=1e-4, err_msg=name
        )


def test_cut_conversion_verifies_the_cut_outputs(models_dir, tmp_path):
    proto, weights = models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o",
                tmp_path / "cut.xml", "--output", "conv3")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (verify,) = [line for line in r.stdout.splitlines() if line.startswith("verify")]
    ref = "caffe" if caffe_available() else "opencv"
    assert verify.startswith(
        f"verify   passed: openvino vs {ref} (caffe) on 1 seeded input: conv3 "
    )
