"""Side runtimes (pipelines.runtimes.side, side_runners/): the protocol, failure modes, setup,
doctor, verify.reference, and real Caffe / MXNet as references.

The failure-mode tests run a fake ``caffe`` package in zoomake's own Python (the runner only
needs ``import caffe``), so they run everywhere; the real-framework tests need
``zoomake setup-runtime caffe`` / ``mxnet`` and skip without it (CI sets both up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import ZoomakeError
from pipelines.runtimes import side as side_runtime
from pipelines.runtimes.side_runners import sideproto
from tests.caffe.helpers import caffe_available, require_caffe, run_caffe, run_opencv, run_ort

REPO = Path(__file__).resolve().parents[1]


def test_protocol_round_trip_keeps_names_dtypes_and_0d():
    import io

    arrays = {
        "file": np.arange(6, dtype=np.float32).reshape(2, 3),  # np.savez's own argument name
        "scalar": np.array(2.5, np.float32),
        "conv4-2/x": np.ones((1, 0, 3), np.float64),
        "ints": np.array([1, 2], np.int64),
    }
    frame = sideproto.encode({"op": "run", "model": "1"}, arrays)
    header, got = sideproto.read_frame(io.BytesIO(frame))
    assert header["op"] == "run" and header["arrays"] == list(arrays)
    for name, value in arrays.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape
        np.testing.assert_array_equal(got[name], value)
    assert sideproto.read_frame(io.BytesIO(frame[:-1])) is None  # a cut frame is end of file


FAKE_CAFFE = """
import os, sys, time
if os.environ.get("FAKE_CAFFE_MODE") == "import":
    sys.stderr.write("F20261201 12:00:00.000000 1234 common.cpp:9] Check failed: no BLAS\\n")
    sys.stderr.flush()
    os.abort()
__version__ = "0.0-fake"
TEST = 1
def set_mode_cpu(): pass
def layer_type_list(): return ["Input", "Power"]
class Net:
    def __init__(self, prototxt, phase, weights=None):
        mode = os.environ.get("FAKE_CAFFE_MODE", "")
        if mode == "abort":
            sys.stderr.write("F20261201 12:00:00.000000 1234 net.cpp:42] Check failed: fake (1 vs. 0)\\n")
            sys.stderr.write("*** Check failure stack trace: ***\\n")
            sys.stderr.flush()
            os.abort()
        if mode == "hang":
            time.sleep(3600)
        self.inputs, self.outputs, self.blobs = [], [], {}
"""


@pytest.fixture
def fake_caffe(tmp_path, monkeypatch):
    """ZOOMAKE_CAFFE_PYTHON = this Python with a fake ``caffe`` package on its path."""
    pkg = tmp_path / "fake" / "caffe"
    (pkg / "proto").mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_CAFFE)
    (pkg / "proto" / "__init__.py").write_text("")
    (pkg / "proto" / "caffe_pb2.py").write_text(
        "from converters.caffe.proto.caffe_pb2 import *  # noqa\n"
    )
    monkeypatch.setenv("ZOOMAKE_CAFFE_PYTHON", sys.executable)
    monkeypatch.setenv("ZOOMAKE_CAFFE_PYTHONPATH", os.pathsep.join([str(pkg.parent), str(REPO)]))
    monkeypatch.setattr(side_runtime, "_PROCESSES", {})
    proto = tmp_path / "net.prototxt"
    proto.write_text('input: "data"\ninput_shape { dim: 1 }\n')
    yield proto
    for proc in side_runtime._PROCESSES.values():
        proc.close(kill=True)


def _runner_environ(proc) -> dict[str, str]:
    raw = Path(f"/proc/{proc.proc.pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="needs Linux /proc")
def test_runner_keeps_freed_memory_for_the_next_net_unless_the_user_says_otherwise(
    fake_caffe, monkeypatch
):
    """The runner's glibc malloc: 32 MiB mmap threshold, 256 MiB trim threshold (a zoo's
    next net reuses the last one's pages; bench/bench_side_runtime.py), a user's value kept."""
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    env = _runner_environ(side_runtime.process("caffe"))
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 * 1024 * 1024)
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(256 * 1024 * 1024)
    for proc in side_runtime._PROCESSES.values():
        proc.close()
    monkeypatch.setattr(side_runtime, "_PROCESSES", {})
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    env = _runner_environ(side_runtime.process("caffe"))
    assert env["MALLOC_TRIM_THRESHOLD_"] == "131072"
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 * 1024 * 1024)


def test_the_reference_task_starts_the_caffe_runner_before_its_own_work(
    fake_caffe, monkeypatch, tmp_path
):
    """act_reference starts real Caffe's runner first (it imports pycaffe while this process
    imports numpy and hashes the sources), only when real Caffe is the reference."""
    import threading

    from pipelines.build import actions
    from pipelines.verify import reference

    seen = []

    def run_reference(model_id, recipe, sources, ref_dir):
        proc = side_runtime._PROCESSES.get(("caffe", threading.get_ident()))
        seen.append(proc is not None and proc.alive)
        return {}

    monkeypatch.setattr(reference, "run_reference", run_reference)
    monkeypatch.setattr(actions, "_roles", lambda model_id, recipe: {})
    for choice in ("auto", "opencv"):
        monkeypatch.setattr(side_runtime, "_PROCESSES", {})
        recipe = {"source": {"framework": "caffe"}, "verify": {"reference": choice}}
        actions.act_reference("m", recipe, str(tmp_path / choice))
        for proc in side_runtime._PROCESSES.values():
            proc.close(kill=True)
    assert seen == [True, False]


def test_the_reference_run_imports_its_tensor_codec_before_it_opens_the_runtime(monkeypatch):
    """run_reference imports onnx's codec (~0.2 s in a fresh process) before it waits for the
    reference runtime (real Caffe's runner, started by act_reference, imports pycaffe then)."""
    from pipelines.verify import reference

    order = []

    class Opened(Exception):
        pass

    def open_reference(*args, **kwargs):
        order.append("open")
        raise Opened

    monkeypatch.setattr(reference, "import_codec", lambda: order.append("codec"))
    monkeypatch.setattr(reference, "open_reference", open_reference)
    recipe = {"source": {"framework": "caffe"}}
    with pytest.raises(Opened):
        reference.run_reference("m", recipe, {}, Path("/nonexistent/reference"))
    assert order == ["codec", "open"]


def test_crash_is_one_line_with_the_fatal_reason(fake_caffe, monkeypatch):
    monkeypatch.setenv("FAKE_CAFFE_MODE", "abort")
    with pytest.raises(ZoomakeError) as err:
        side_runtime.SideModel("caffe", {"prototxt": fake_caffe})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("caffe runtime crashed (exit code -6) loading ")
    assert msg.endswith(": Check failed: fake (1 vs. 0)")
    # The next call starts a fresh runner instead of talking to the dead one.
    monkeypatch.setenv("FAKE_CAFFE_MODE", "")
    assert side_runtime.process("caffe").alive


def test_a_hung_runtime_times_out_and_is_killed(fake_caffe, monkeypatch):
    monkeypatch.setenv("FAKE_CAFFE_MODE", "hang")
    monkeypatch.setenv("ZOOMAKE_SIDE_TIMEOUT", "1.5")
    proc = side_runtime.process("caffe")
    t0 = time.monotonic()
    with pytest.raises(ZoomakeError) as err:
        side_runtime.SideModel("caffe", {"prototxt": fake_caffe})
    assert time.monotonic() - t0 < 10
    assert "did not answer within 1.5 s loading" in str(err.value)
    assert "ZOOMAKE_SIDE_TIMEOUT" in str(err.value)
    assert not proc.alive


def test_runner_dies_with_its_parent(fake_caffe, tmp_path):
    # A parent that starts a runner and is then SIGKILLed (no atexit, no closed pipes first).
    script = textwrap.dedent(
        """
        import os, sys, time
        from pipelines.runtimes.side import process
        print(process("caffe").proc.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        runner_pid = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(runner_pid):
        time.sleep(0.05)
    assert not _alive(runner_pid), "the runner outlived its parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_unknown_layer_is_a_clean_error_not_a_crash(fake_caffe):
    proto = fake_caffe.with_name("odd.prototxt")
    proto.write_text('input: "data"\nlayer { name: "i" type: "Interp" bottom: "data" top: "y" }\n')
    with pytest.raises(ZoomakeError, match="layer 'i': this Caffe has no layer type 'Interp'"):
        side_runtime.SideModel("caffe", {"prototxt": proto})
    assert side_runtime.process("caffe").alive  # refused before caffe.Net could abort


def _no_runtimes(monkeypatch, tmp_path):
    for fw in ("CAFFE", "MXNET"):
        monkeypatch.delenv(f"ZOOMAKE_{fw}_PYTHON", raising=False)
        monkeypatch.delenv(f"ZOOMAKE_{fw}_PYTHONPATH", raising=False)
    monkeypatch.setenv("ZOOMAKE_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(side_runtime, "_PROCESSES", {})


def test_missing_runtime_names_the_setup_command(monkeypatch, tmp_path):
    from pipelines.runtimes.choose import caffe_reference

    _no_runtimes(monkeypatch, tmp_path)
    with pytest.raises(ZoomakeError) as err:
        side_runtime.process("caffe")
    assert str(err.value) == "the caffe runtime is not set up: run `zoomake setup-runtime caffe`"
    assert caffe_reference("auto") == "opencv" and caffe_reference("opencv") == "opencv"
    with pytest.raises(ZoomakeError, match=r"run `zoomake setup-runtime caffe`"):
        caffe_reference("caffe")


def test_measure_fails_in_one_line_when_the_requested_caffe_is_missing(monkeypatch, tmp_path):
    from pipelines.verify.measure import measure
    from tests.verify_helpers import build_sources, fake_build, make_recipe, write_tiny

    _no_runtimes(monkeypatch, tmp_path)
    sources = write_tiny(tmp_path / "src")
    recipe = make_recipe(verify={"samples": 1, "seed": 0, "reference": "caffe"})
    out_dir = fake_build(tmp_path / "build", "tiny", sources, recipe)
    with pytest.raises(ZoomakeError) as err:
        measure("tiny", recipe, "onnx", build_sources(tmp_path / "build", "tiny", sources), out_dir)
    assert "\n" not in str(err.value)
    assert "verify.reference is 'caffe' but the Caffe runtime is not set up" in str(err.value)
    assert "zoomake setup-runtime caffe" in str(err.value)
    assert not (out_dir / "verify.json").exists()


def test_doctor_without_side_runtimes(monkeypatch, tmp_path, capsys):
    from pipelines.cli.main import main

    _no_runtimes(monkeypatch, tmp_path)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "not set up (run `zoomake setup-runtime caffe`)" in out
    assert "not set up (run `zoomake setup-runtime mxnet`)" in out
    import cv2

    assert f"available: OpenCV {cv2.__version__}" in out


def test_setup_runtime_refuses_a_dir_without_pycaffe(monkeypatch, tmp_path, capsys):
    from pipelines.cli.main import main

    _no_runtimes(monkeypatch, tmp_path)
    assert main(["setup-runtime", "caffe", "--from", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"zoomake: error: {tmp_path}: no pycaffe here (expected {tmp_path}/python/caffe/"
        "__init__.py); give --from DIR with the prebuilt Caffe"
    )
    assert not (tmp_path / "empty-cache" / "runtimes" / "caffe" / "runtime.json").exists()


def test_setup_runtime_with_a_python_that_lacks_caffe(monkeypatch, tmp_path, capsys):
    from pipelines.cli.main import main

    _no_runtimes(monkeypatch, tmp_path)
    monkeypatch.setenv("ZOOMAKE_CAFFE_PYTHON", sys.executable)
    monkeypatch.setenv("ZOOMAKE_CAFFE_PYTHONPATH", str(tmp_path))
    assert main(["setup-runtime", "caffe"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("zoomake: error: caffe runtime crashed (exit code 1) starting: ")
    assert "No module named 'caffe'" in err


def test_onnx_source_refuses_a_caffe_reference(tmp_path):
    from pipelines.recipes.checks import check

    recipe = {"source": {"framework": "onnx"}, "verify": {"reference": "caffe"}}
    assert check(recipe) == [
        ("/verify/reference", "expected auto for an ONNX source (run by onnxruntime), got 'caffe'")
    ]


# --- real Caffe ---------------------------------------------------------------------------

TRANSPOSED_IP = """
name: "tip"
input: "data"
input_shape { dim: 1 dim: 3 dim: 2 dim: 2 }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 5 transpose: true } }
"""


def _transposed_ip(tmp_path):
    from tests.verify_helpers import write_tiny

    rng = np.random.default_rng(4)
    weights = {"fc": [rng.standard_normal((12, 5)) * 0.05, rng.standard_normal(5)]}
    return write_tiny(tmp_path / "src", TRANSPOSED_IP, weights)


@pytest.mark.parametrize("reference", ["caffe", "opencv"])
def test_transposed_inner_product_artifact_matches_caffe_not_opencv(tmp_path, reference):
    """OpenCV ignores inner_product_param.transpose: measured against it, zoomake's correct
    artifact fails; against real Caffe it passes, and verify.json says which one ran."""
    from pipelines.verify.measure import measure
    from tests.verify_helpers import build_sources, fake_build, make_recipe

    require_caffe()
    sources = _transposed_ip(tmp_path)
    recipe = make_recipe(
        task="face_detection",
        inputs={"data": {"shape": [1, 3, 2, 2], "preprocess": {"mean": 127.5, "scale": 0.01}}},
        verify={"samples": 3, "seed": 0, "reference": reference},
    )
    out_dir = fake_build(tmp_path / "build", "tip", sources, recipe)
    report = measure(
        "tip", recipe, "onnx", build_sources(tmp_path / "build", "tip", sources), out_dir
    )
    data = json.loads((out_dir / "verify.json").read_text())
    assert data["reference"]["runtime"] == reference and data["reference"]["requested"] == reference
    fc = report["outputs"]["fc"]
    if reference == "caffe":
        assert report["passed"] and fc["max_abs_error"] < 1e-5
        assert data["reference"]["version"] == "1.0.0"
        assert "9b89154" in data["reference"]["build"]
    else:
        assert not report["passed"] and fc["max_abs_error"] > 0.1


def test_transposed_inner_product_layer_level(tmp_path):
    """The same at layer level: the converted model equals Caffe and numpy, OpenCV differs."""
    from converters.caffe.convert import caffe_to_onnx

    require_caffe()
    sources = _transposed_ip(tmp_path)
    model = caffe_to_onnx(sources["prototxt"], sources["caffemodel"])
    x = np.random.default_rng(0).standard_normal((1, 3, 2, 2)).astype(np.float32)
    got = run_ort(model, {"data": x})["fc"]
    caffe = run_caffe(sources["prototxt"], sources["caffemodel"], {"data": x}, ["fc"])["fc"]
    opencv = run_opencv(sources["prototxt"], sources["caffemodel"], {"data": x}, ["fc"])["fc"]
    np.testing.assert_allclose(got, caffe, atol=1e-6)
    assert np.abs(opencv - caffe).max() > 0.05


def test_one_runner_serves_many_models_and_returns_blobs(models_dir):
    require_caffe()
    proc = side_runtime.process("caffe")
    proto, weights = (
        models_dir / "mtcnn" / "det1.prototxt",
        models_dir / "mtcnn" / "det1.caffemodel",
    )
    a = side_runtime.SideModel("caffe", {"prototxt": proto, "caffemodel": weights})
    b = side_runtime.SideModel("caffe", {"prototxt": proto, "caffemodel": weights})
    assert a.proc is b.proc is proc and a.key != b.key
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 24, 30)).astype(np.float32)  # reshaped
    final = a.run({"data": x})
    assert set(final) == {"conv4-2", "prob1"} and final["prob1"].shape == (1, 2, 7, 10)
    every = b.run({"data": x}, "all")
    assert {"conv1", "conv2", "conv3", "conv4-2", "prob1"} <= set(every)
    for name, value in final.items():
        np.testing.assert_array_equal(every[name], value)


def test_doctor_shows_caffe_with_version_and_commit(capsys):
    from pipelines.cli.main import main

    require_caffe()
    assert main(["doctor"]) == 0
    caffe_line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.split()[0] == "caffe")
    assert "available: Caffe 1.0.0" in caffe_line and "BVLC commit 9b89154" in caffe_line


# --- MXNet ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "shape", "pairs"),
    [
        ("det2", (1, 3, 24, 24), {"conv5_2_output": "conv5-2", "prob1_output": "prob1",
                                  "conv5_1_output": "conv5-1"}),
        ("det3", (1, 3, 48, 48), {"conv6_2_output": "conv6-2", "conv6_3_output": "conv6-3",
                                  "prob1_output": "prob1", "conv6_1_output": "conv6-1"}),
    ],
)  # fmt: skip
def test_mxnet_runner_matches_caffe_on_the_shared_mtcnn(models_dir, net, shape, pairs):
    """MXNet's own converter output (models/mxnet/README.md: its first conv takes RGB, so it
    is fed the Caffe input with channels reversed; the SoftmaxOutput label is bound to zeros)."""
    if not side_runtime.available("mxnet"):
        reason = "MXNet is not set up: run `zoomake setup-runtime mxnet`"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    require_caffe()
    mx = models_dir / "mxnet"
    model = side_runtime.SideModel(
        "mxnet",
        {"symbol": mx / f"mtcnn-{net}-symbol.json", "params": mx / f"mtcnn-{net}-0000.params"},
    )
    assert [name for name, _ in model.inputs] == ["data"]
    pre_softmax = {"conv5_1_output", "conv6_1_output"}  # internal: asked for by name
    assert set(model.outputs) == set(pairs) - pre_softmax
    x = (np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32) - 127.5) / 128
    got = model.run({"data": np.ascontiguousarray(x[:, ::-1])}, list(pairs))
    mtcnn = models_dir / "mtcnn"
    want = run_caffe(mtcnn / f"{net}.prototxt", mtcnn / f"{net}.caffemodel", {"data": x},
                     list(pairs.values()))  # fmt: skip
    for mx_name, caffe_name in pairs.items():
        ref = want[caffe_name]
        err = float(np.abs(got[mx_name] - ref).max()) / max(1.0, float(np.abs(ref).max()))
        assert err <= 1e-4, f"{net} {mx_name}: relative error {err}"


def test_caffe_available_is_what_ci_set_up():
    if os.environ.get("CI"):
        assert caffe_available(), "CI must set up real Caffe (.ci/run)"
        assert side_runtime.available("mxnet"), "CI must set up MXNet (.ci/run)"


def test_measure_reruns_when_the_chosen_reference_changes(monkeypatch, tmp_path, fake_caffe):
    """auto picks real Caffe once it is set up: the measure task's config says so."""
    from pipelines.runtimes.side import reference_config as _reference_config

    caffe_recipe = {"source": {"framework": "caffe"}, "verify": {"reference": "auto"}}
    with_caffe = _reference_config(caffe_recipe)
    assert with_caffe["reference"] == "caffe" and with_caffe["python"] == sys.executable
    opencv = {"source": {"framework": "caffe"}, "verify": {"reference": "opencv"}}
    assert _reference_config(opencv)["reference"] == "opencv"
    assert _reference_config({"source": {"framework": "onnx"}}) == {}
    _no_runtimes(monkeypatch, tmp_path)
    assert _reference_config(caffe_recipe) == {"reference": "opencv"}


def test_caffe_reference_parses_while_the_runner_starts_and_loads_with_the_same_outputs(
    models_dir, monkeypatch
):
    """RealCaffeRunner parses the prototxt in a thread while the main thread waits for the
    runner's start-up and load (the two overlap: the parse here waits until the load request
    is on its way, and would time out if they ran one after the other), and gives bit for bit
    what a runner loaded without it gives."""
    import threading

    from pipelines.runtimes import caffe as caffe_runtime

    require_caffe()
    proto, weights = (
        models_dir / "mtcnn" / "det1.prototxt",
        models_dir / "mtcnn" / "det1.caffemodel",
    )
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)
    parse, request = caffe_runtime.deploy_net, side_runtime.SideProcess.request
    loading, seen = threading.Event(), []

    def deploy_net(path):
        seen.append((threading.current_thread() is threading.main_thread(), loading.wait(60)))
        return parse(path)

    def traced_request(self, header, *args, **kwargs):
        if header.get("op") == "load":
            loading.set()
        return request(self, header, *args, **kwargs)

    outputs = []
    for overlap in (True, False):
        monkeypatch.setattr(side_runtime, "_PROCESSES", {})
        try:
            if overlap:
                monkeypatch.setattr(caffe_runtime, "deploy_net", deploy_net)
                monkeypatch.setattr(side_runtime.SideProcess, "request", traced_request)
                runner = caffe_runtime.RealCaffeRunner(proto, weights)
                assert runner.version and runner.outputs == ["conv4-2", "prob1"]
                assert runner.inputs[0].name == "data"
                outputs.append(runner.run({"data": x}))
            else:
                model = side_runtime.SideModel("caffe", {"prototxt": proto, "caffemodel": weights})
                outputs.append(model.run({"data": x}, ["conv4-2", "prob1"]))
        finally:
            for proc in side_runtime._PROCESSES.values():
                proc.close()
    assert seen == [(False, True)]  # parsed in another thread, while the load was under way
    assert outputs[0].keys() == outputs[1].keys() == {"conv4-2", "prob1"}
    for name, value in outputs[1].items():
        np.testing.assert_array_equal(outputs[0][name], value, strict=True)


def test_caffe_reference_of_a_prototxt_nothing_can_read_fails_with_the_parse_line(
    monkeypatch, tmp_path
):
    """Parse and load run at once; a prototxt both refuse fails with this process's parse
    line (the one it gave when the parse came first), and the runner stays usable."""
    from pipelines.runtimes.caffe import RealCaffeRunner

    require_caffe()
    proto = tmp_path / "broken.prototxt"
    proto.write_text('name: "x"\nlayer { name: "a" type: "Input" top: "data"\n')  # no "}"
    monkeypatch.setattr(side_runtime, "_PROCESSES", {})
    try:
        with pytest.raises(ZoomakeError) as err:
            RealCaffeRunner(proto, None)
        assert str(err.value).startswith(f"{proto}: cannot read the Caffe net (")
        assert "\n" not in str(err.value)
        assert side_runtime.process("caffe").alive
    finally:
        for proc in side_runtime._PROCESSES.values():
            proc.close()


def test_caffe_reference_with_a_missing_runtime_is_one_line(monkeypatch, tmp_path):
    from pipelines.runtimes.caffe import RealCaffeRunner

    proto, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    proto.write_text('input: "data"\n')
    weights.write_bytes(b"")
    missing = tmp_path / "no-venv" / "bin" / "python"
    monkeypatch.setenv("ZOOMAKE_CAFFE_PYTHON", str(missing))
    monkeypatch.setattr(side_runtime, "_PROCESSES", {})
    with pytest.raises(ZoomakeError) as err:
        RealCaffeRunner(proto, weights)
    assert str(err.value) == (
        f"caffe runtime: {missing} (from ZOOMAKE_CAFFE_PYTHON) does not exist; "
        "run `zoomake setup-runtime caffe`"
    )
    _no_runtimes(monkeypatch, tmp_path)
    with pytest.raises(ZoomakeError) as err:
        RealCaffeRunner(proto, weights)
    assert str(err.value) == "the caffe runtime is not set up: run `zoomake setup-runtime caffe`"


def test_a_runner_that_crashes_while_starting_unwaited_is_one_line(fake_caffe, monkeypatch):
    """Started without waiting (the overlap), a crash shows at the first request, one line."""
    monkeypatch.setenv("FAKE_CAFFE_MODE", "import")
    proc = side_runtime.process("caffe", wait=False)
    assert not proc._greeted
    with pytest.raises(ZoomakeError) as err:
        side_runtime.SideModel("caffe", {"prototxt": fake_caffe})
    assert str(err.value) == "caffe runtime crashed (exit code -6) starting: Check failed: no BLAS"
    monkeypatch.setenv("FAKE_CAFFE_MODE", "")
    model = side_runtime.SideModel("caffe", {"prototxt": fake_caffe})  # a fresh runner
    assert model.proc is not proc and model.proc.info["version"] == "0.0-fake"
