"""End-to-end: `doit` builds the default zoo offline, incrementally, in parallel, and cleanly.

One build directory is shared by the tests of this module, which run in order (pytest-xdist's
``--dist loadfile`` keeps a module on one worker): build from nothing, a no-op rebuild, a
verify-only change, a preprocessing change, a broken artifact. The recipes are copied to a
temporary directory so the tests can edit them (``ZOOMAKE_RECIPES``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.caffe.helpers import caffe_available
from tests.zoo_env import offline_zoo_env

REPO = Path(__file__).resolve().parents[1]
# The default zoo's real Caffe models, each with a `pytorch` target (Caffe -> ONNX -> PyTorch).
CAFFE_TO_PYTORCH = ["mtcnn-det1", "mtcnn-det2", "mtcnn-det3", "mtcnn-det4", "ultraface-rfb-320",
                    "ultraface-slim-320"]  # fmt: skip


def run_doit(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), *args],
        capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    if check and r.returncode != 0:
        pytest.fail(f"doit {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}", pytrace=False)
    return r


def executed(result: subprocess.CompletedProcess) -> set[str]:
    """Tasks whose actions ran (doit prints '.  name'; up-to-date ones are '-- name')."""
    return {m.group(1) for m in re.finditer(r"^\.\s+(\S+)", result.stdout, re.M)}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, models_dir):
    base = tmp_path_factory.mktemp("zoo")
    recipes = base / "recipes"
    shutil.copytree(REPO / "recipes", recipes)
    env = offline_zoo_env(base, recipes, models_dir)
    first = run_doit(env)
    return {"env": env, "recipes": recipes, "build": base / "build", "cache": base / "cache",
            "first": first}  # fmt: skip


def recipe_targets(recipes: Path) -> list[tuple[str, str]]:
    out = []
    for path in sorted(recipes.glob("*.yaml")):
        for target in yaml.safe_load(path.read_text())["targets"]:
            out.append((path.stem, target))
    return out


def test_build_from_nothing_verifies_every_artifact(zoo):
    pairs = recipe_targets(zoo["recipes"])
    assert len(pairs) >= 45  # 39 targets, and a pytorch target on each of the six Caffe models
    assert {(m, "pytorch") for m in CAFFE_TO_PYTORCH} <= set(pairs)
    for model_id, target in pairs:
        report = json.loads((zoo["build"] / model_id / target / "verify.json").read_text())
        assert report["passed"] is True, (model_id, target)
        assert next(iter(report)) == "passed"
        assert (zoo["build"] / model_id / target / "test_data_set_0" / "input_0.pb").is_file()
        if (
            yaml.safe_load((zoo["recipes"] / f"{model_id}.yaml").read_text())["source"]["framework"]
            == "caffe"
        ):
            # verify.reference: auto -> real Caffe when set up (CI does; see test_side_runtime).
            expected = "caffe" if caffe_available() else "opencv"
            assert report["reference"]["runtime"] == expected, (model_id, target)
    for name in ("report.json", "junit.xml", "index.html"):
        assert (zoo["build"] / "report" / name).is_file()
    report = json.loads((zoo["build"] / "report" / "report.json").read_text())
    assert {m["id"] for m in report["models"]} == {p.stem for p in zoo["recipes"].glob("*.yaml")}
    # The report says which reference ran for each target.
    caffe_ref = "caffe" if caffe_available() else "opencv"
    refs = {t["reference"] for m in report["models"] for t in m["targets"]}
    assert refs == {caffe_ref, "onnxruntime", "torch"}, refs
    # Caffe -> PyTorch on the six real Caffe models: model.pt2 run in torch, listed in the report.
    torch_targets = {(m["id"], t["name"]): t for m in report["models"] for t in m["targets"]
                     if t["format"] == "pytorch"}  # fmt: skip
    assert set(torch_targets) >= {(m, "pytorch") for m in CAFFE_TO_PYTORCH}, torch_targets
    for (model_id, target), entry in torch_targets.items():
        assert entry["status"] == "passed" and entry["reference"] == caffe_ref, model_id
        names = [f["path"].rsplit("/", 1)[1] for f in entry["files"]]
        assert names == ["model.pt2", "model.py", "model.pth"], model_id
        verify = json.loads((zoo["build"] / model_id / target / "verify.json").read_text())
        assert verify["candidate"]["runtime"] == "torch", model_id
    # The page names the reference runtime and its version ("vs caffe 1.0.0", "vs opencv 4.14.0").
    page = (zoo["build"] / "report" / "index.html").read_text()
    assert re.search(rf'<span class="reference">vs {caffe_ref} [0-9][^<]*</span>', page), caffe_ref


def test_second_run_does_nothing(zoo):
    r = run_doit(zoo["env"])
    assert executed(r) == set(), r.stdout
    n = len(recipe_targets(zoo["recipes"]))
    report = zoo["build"] / "report" / "index.html"
    assert r.stdout.splitlines() == [
        f"zoo: {n} targets, {n} passed, 0 failed, report: {report} (all up to date)"
    ]
    verbose = run_doit(zoo["env"], "--reporter", "console")  # doit's own output stays available
    assert sum(line.startswith("-- ") for line in verbose.stdout.splitlines()) >= n


RFB_FORMS = {  # recipe -> what its reference runs
    "ultraface-rfb-320-pytorch": "the checkpoint in eager torch",
    "ultraface-rfb-320": "the Caffe files in Caffe or OpenCV",
    "ultraface-rfb-320-onnx": "the publisher's ONNX in onnxruntime",
}


def test_three_published_forms_of_rfb_320_agree_through_the_recipes(zoo):
    """The PyTorch checkpoint, the Caffe files and the publisher's ONNX of RFB-320, each built
    by its recipe: every ONNX artifact (run here in onnxruntime) and every source model's own
    run (what reference:<id> stored) agree within 1e-4 on every output of the same deployed
    inputs, so each oracle checks the others (the library-level version:
    tests/pytorch/test_three_forms.py)."""
    import onnx

    from pipelines.verify.golden import golden_sets, read_tensors
    from tests.pytorch.helpers import ULTRAFACE_SHAPES, assert_forms_agree, run_ort

    sets = {m: golden_sets(zoo["build"] / m / "reference") for m in RFB_FORMS}
    assert {len(found) for found in sets.values()} == {4}  # the face photo + 3 random inputs
    for n in range(4):
        inputs = {m: read_tensors(sets[m][n], "input") for m in RFB_FORMS}
        # Same recipe inputs, seed and sample count: byte-identical deployed inputs.
        first = inputs["ultraface-rfb-320-pytorch"]
        assert list(first) == ["input"] and first["input"].shape == (1, 3, 240, 320)
        assert all(x["input"].tobytes() == first["input"].tobytes() for x in inputs.values())
        forms = {}
        for model_id, what in RFB_FORMS.items():
            forms[what] = read_tensors(sets[model_id][n], "reference")
            artifact = onnx.load(zoo["build"] / model_id / "onnx" / "model.onnx")
            forms[f"{model_id} ONNX artifact"] = run_ort(artifact, first)
        assert_forms_agree(forms, ULTRAFACE_SHAPES, atol=1e-4)


def _sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pytorch_source_values_and_code_files_are_in_the_cache_keys(zoo, tmp_path):
    """A kwarg (a value of the source) and one code file (a file of its tree) each rerun what
    reads the model's code: convert and reference, then measure and verify; the exporter gives
    the same bytes for the same network, so optimize and export find their input unchanged."""
    model_id = "ultraface-slim-320-pytorch"
    path = zoo["recipes"] / f"{model_id}.yaml"
    text = path.read_text()
    targets = yaml.safe_load(text)["targets"]
    onnx_file = zoo["build"] / model_id / "convert" / "model.onnx"
    before = _sha_of(onnx_file)
    downstream = {f"{s}:{model_id}:{t}" for s in ("measure", "verify") for t in targets}
    # `device` is read only with is_test (vision/ssd/ssd.py line 40): same network.
    old = "kwargs: {num_classes: 2, is_test: false}"
    assert old in text
    path.write_text(text.replace(old, "kwargs: {num_classes: 2, is_test: false, device: cpu}"))
    ran = executed(run_doit(zoo["env"]))
    assert ran == {f"convert:{model_id}", f"reference:{model_id}"} | downstream, ran
    assert _sha_of(onnx_file) == before

    # One code file replaced by a copy with one more comment line (its own url, sha256, size).
    recipe = yaml.safe_load(path.read_text())
    [ref] = [r for r in recipe["source"]["code"] if r["path"] == "vision/nn/mb_tiny.py"]
    edited = tmp_path / "mb_tiny.py"
    original = zoo["build"] / model_id / "source" / "code" / "vision" / "nn" / "mb_tiny.py"
    edited.write_bytes(original.read_bytes() + b"# edited\n")
    ref.update(url=edited.as_uri(), sha256=_sha_of(edited), size=edited.stat().st_size)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    ran = executed(run_doit(zoo["env"]))
    expected = {f"{s}:{model_id}" for s in ("fetch", "convert", "reference")} | downstream
    assert ran == expected, ran
    assert original.read_bytes() == edited.read_bytes()
    assert _sha_of(onnx_file) == before
    assert executed(run_doit(zoo["env"])) == set()


def test_verify_change_reruns_only_that_models_verification(zoo):
    path = zoo["recipes"] / "mtcnn-det1.yaml"
    recipe = yaml.safe_load(path.read_text())
    path.write_text(path.read_text().replace("samples: 3", "samples: 2"))
    report = zoo["build"] / "report" / "report.json"
    before = report.stat().st_mtime_ns
    ran = executed(run_doit(zoo["env"]))
    targets = recipe["targets"]
    expected = {f"{s}:mtcnn-det1:{t}" for s in ("measure", "verify") for t in targets}
    assert ran == expected | {"reference:mtcnn-det1"}, ran  # fewer samples: a new reference
    assert report.stat().st_mtime_ns > before  # the report is rewritten at the end of a run


def test_tolerance_change_reruns_measure_but_not_the_models_reference(zoo):
    """The reference ran once for the model (every measure read it) and has its own key: an
    fp16 tolerance is no part of it."""
    path = zoo["recipes"] / "mtcnn-det3.yaml"
    recipe = yaml.safe_load(path.read_text())
    for target in recipe["targets"]:
        verify_json = json.loads((zoo["build"] / "mtcnn-det3" / target / "verify.json").read_text())
        assert verify_json["reference"]["stored_sets"] == recipe["verify"]["samples"], target
        assert "../reference/reference.json" in verify_json["sha256"]["reference"]
    recipe["verify"]["tolerances"]["fp16"]["atol"] = 0.02
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    ran = executed(run_doit(zoo["env"]))
    fp16 = [t for t, spec in recipe["targets"].items() if spec.get("precision") == "fp16"]
    assert fp16 and ran == {f"{s}:mtcnn-det3:{t}" for s in ("measure", "verify") for t in fp16}


def test_mean_change_reruns_that_model_from_convert(zoo):
    path = zoo["recipes"] / "mtcnn-det2.yaml"
    text = path.read_text()
    assert "mean: 127.5" in text
    path.write_text(text.replace("mean: 127.5", "mean: 127.0"))
    ran = executed(run_doit(zoo["env"]))
    targets = yaml.safe_load(text)["targets"]
    expected = {"convert:mtcnn-det2", "optimize:mtcnn-det2", "reference:mtcnn-det2"}
    expected |= {f"{s}:mtcnn-det2:{t}" for s in ("export", "measure", "verify") for t in targets}
    # optimize/export may find their input unchanged only if the model bytes are equal, which a
    # new mean cannot give: every stage downstream of convert reruns, and nothing else.
    assert ran == expected, ran


def test_invalid_recipe_fails_the_build_but_not_the_zoo(zoo):
    bad = zoo["recipes"] / "zz-broken.yaml"
    bad.write_text("description: x\nlicense: MIT\ntask: classification\nsource: {framework: tf}\n")
    try:
        r = run_doit(zoo["env"], check=False)
    finally:
        bad.unlink()
    assert r.returncode != 0
    assert "zz-broken.yaml#/source/framework" in r.stderr
    assert executed(r) == {"recipe:zz-broken"}  # the valid zoo is up to date: nothing else


def _flip_last_byte(path: Path) -> bytes:
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    return original


def test_hand_changes_after_measure_fail_the_gate(zoo):
    """doit reruns the gate when a golden file, verify.json or the artifact changes, and the
    gate recomputes their sha256 and its verdict: none of these edits passes. Each is undone."""
    out = zoo["build"] / "mtcnn-det3" / "onnx"
    task = "verify:mtcnn-det3:onnx"
    golden = out / "test_data_set_0" / "output_0.pb"
    original = _flip_last_byte(golden)
    r = run_doit(zoo["env"], check=False)
    assert r.returncode != 0 and executed(r) == {task}, r.stdout
    assert re.search(rf"{task} failed: \S+/output_0\.pb: sha256 [0-9a-f]{{64}} differs", r.stderr)
    golden.write_bytes(original)

    verify_json = out / "verify.json"
    original = verify_json.read_text()
    data = json.loads(original)
    data["outputs"]["prob1"]["max_abs_error"] = 0.0
    verify_json.write_text(json.dumps(data))
    r = run_doit(zoo["env"], check=False)
    assert r.returncode != 0 and task in executed(r)
    assert "recorded per-output results differ from those its golden data gives" in r.stderr
    verify_json.write_text(original)

    # The artifact changed under an up-to-date measure: `-s` runs the gate without it.
    artifact = out / "model.onnx"
    original = _flip_last_byte(artifact)
    r = run_doit(zoo["env"], "-s", task, check=False)
    assert r.returncode != 0 and executed(r) == {task}, r.stdout
    assert re.search(r"model\.onnx: sha256 [0-9a-f]{64} differs from [0-9a-f]{64}", r.stderr)
    artifact.write_bytes(original)
    assert executed(run_doit(zoo["env"])) <= {task, "report"}


def test_broken_artifact_fails_its_verify_and_report_shows_it(zoo):
    """A wrong model out of a stage (here: a weight changed in optimize's output, which export
    reads) gives an artifact that fails its verify on the numbers. (An artifact edited in place
    is exported again: tests/test_build_trust.py.)"""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    artifact = zoo["build"] / "mtcnn-det1" / "optimize" / "model.onnx"
    model = onnx.load(artifact)
    conv = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    w = numpy_helper.to_array(conv).copy()
    w.flat[0] += 5.0
    conv.CopyFrom(numpy_helper.from_array(w, conv.name))
    onnx.save(model, artifact)

    r = run_doit(zoo["env"], "--continue", check=False)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "verify:mtcnn-det1:onnx" in out
    assert re.search(r"verify:mtcnn-det1:onnx failed: FAILED output '(prob1|conv4-2)'", out), out
    assert "Python Task failed" not in out and "TaskFailed" not in out
    n = len(recipe_targets(zoo["recipes"]))
    report_html = zoo["build"] / "report" / "index.html"
    report = json.loads((zoo["build"] / "report" / "report.json").read_text())
    status = {(m["id"], t["name"]): t for m in report["models"] for t in m["targets"]}
    failed = {k for k, t in status.items() if not t["passed"]}
    # every target exported from the broken model that its tolerances do not absorb, no other
    assert ("mtcnn-det1", "onnx") in failed and {m for m, _ in failed} == {"mtcnn-det1"}
    assert all(status[k]["message"].startswith("FAILED output") for k in failed), {
        k: status[k]["message"][:200] for k in failed
    }
    assert r.stdout.splitlines()[-1] == (
        f"zoo: {n} targets, {n - len(failed)} passed, {len(failed)} failed, report: {report_html}"
    )


ARTIFACT_SUFFIXES = {".onnx", ".xml", ".bin", ".prototxt", ".caffemodel", ".pt2", ".pth", ".py"}


def _digests(build: Path, model_ids: list[str]) -> dict[str, str]:
    out = {}
    for model_id in model_ids:
        for f in sorted((build / model_id).rglob("*")):
            artifact = f.suffix in ARTIFACT_SUFFIXES
            reference = "reference" in f.relative_to(build / model_id).parts  # reference:<id>
            if f.is_file() and (artifact or reference) and f.name != "stats.json":
                out[str(f.relative_to(build))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def test_parallel_build_gives_the_same_artifacts(zoo, tmp_path, models_dir):
    # yufacedetectnet: its DetectionOutput is a Loop, whose body OpenVINO names from a counter.
    ids = ["mtcnn-det3", "ultraface-slim-320", "yufacedetectnet-v1"]
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for i in ids:
        shutil.copy(REPO / "recipes" / f"{i}.yaml", recipes)
    env = {**zoo["env"], "ZOOMAKE_RECIPES": str(recipes), "ZOOMAKE_BUILD": str(tmp_path / "b")}
    run_doit(env, "-n", "2", "-P", "process")
    parallel = _digests(tmp_path / "b", ids)
    assert any(k.endswith("openvino/model.xml") and k.startswith("yuface") for k in parallel)
    assert any("/reference/test_data_set_0/" in k for k in parallel)
    assert parallel and parallel == _digests(zoo["build"], ids)


def test_clean_keeps_the_download_cache(zoo):
    cached = [p for p in zoo["cache"].rglob("*") if p.is_file()]
    assert cached
    run_doit(zoo["env"], "clean")
    assert not list(zoo["build"].glob("*/convert/model.onnx"))
    assert not list(zoo["build"].glob("*/onnx/model.onnx"))
    assert [p for p in zoo["cache"].rglob("*") if p.is_file()] == cached
