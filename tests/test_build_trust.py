"""A build never lies after a failure, and rebuilds are exact (issue 9), tried with real doit runs.

Each test builds a small zoo of real MTCNN stages in its own directory (``ZOOMAKE_RECIPES``,
``ZOOMAKE_BUILD``) from the shared model files, breaks something as a user would (a recipe
naming a blob the model does not have, an invalid recipe, a second build, kill -9, an edited
helper) and checks what doit, the build tree and the report say afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_zoo_build import executed
from tests.zoo_env import offline_zoo_env

REPO = Path(__file__).resolve().parents[1]
TEMP_MARKS = ("zoomake-tmp", ".tmp")  # ours, and what the OpenVINO export used to leave


def run_doit(env: dict, *args: str, cwd: Path, dodo: Path = REPO / "dodo.py"):
    return subprocess.run(
        [sys.executable, "-m", "doit", "-f", str(dodo), *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=900,
    )  # fmt: skip


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    return r


def write_recipe(recipes: Path, model_id: str, targets: list[str]) -> Path:
    recipe = yaml.safe_load((REPO / "recipes" / f"{model_id}.yaml").read_text())
    recipe["targets"] = {t: recipe["targets"][t] for t in targets}
    recipe["verify"]["samples"] = 1
    path = recipes / f"{model_id}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def make_zoo(base: Path, models_dir: Path, models: dict[str, list[str]]) -> dict:
    recipes = base / "recipes"
    recipes.mkdir(parents=True)
    for model_id, targets in models.items():
        write_recipe(recipes, model_id, targets)
    env = offline_zoo_env(base, recipes, models_dir)
    return {"base": base, "recipes": recipes, "build": base / "build", "env": env}


def report(build: Path) -> dict[tuple[str, str], dict]:
    data = json.loads((build / "report" / "report.json").read_text())
    return {(m["id"], t["name"]): t for m in data["models"] for t in m["targets"]}


def temporaries(build: Path) -> list[Path]:
    return [p for p in build.rglob("*") if any(m in p.name for m in TEMP_MARKS)]


def artifact_digests(build: Path) -> dict[str, str]:
    out = {}
    for f in sorted(build.rglob("*")):
        rel = f.relative_to(build).as_posix()
        if f.is_file() and (f.name.startswith("model.") or f.suffix == ".pb"):  # + golden
            out[rel] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# -- the report and the build never lie after a failure ---------------------------------------
def test_failed_convert_rewrites_the_report_and_drops_stale_artifacts(tmp_path, models_dir):
    zoo = make_zoo(tmp_path, models_dir, {"mtcnn-det1": ["onnx"], "mtcnn-det2": ["onnx"]})
    env, build, cwd = zoo["env"], zoo["build"], zoo["base"]
    ok(run_doit(env, cwd=cwd))
    assert {k: t["status"] for k, t in report(build).items()} == {
        ("mtcnn-det1", "onnx"): "passed",
        ("mtcnn-det2", "onnx"): "passed",
    }
    recipe = zoo["recipes"] / "mtcnn-det2.yaml"
    recipe.write_text(recipe.read_text().replace("- prob1", "- prob"))
    # (recipes/mtcnn-det2.yaml#... for the default zoo: the path is shown relative to the repo)
    pointer = f"{recipe}#/outputs/1: the model has no blob 'prob'; did you mean 'prob1'?"

    for args in ((), ("--continue",)):
        r = run_doit(env, *args, cwd=cwd)
        assert r.returncode != 0
        out = r.stdout + r.stderr
        # One line against the recipe; no CLI flag, no doit banner or function repr.
        assert f"convert:mtcnn-det2 failed: {pointer}\n" in r.stderr, out
        for noise in ("Python Task failed", "TaskFailed", "<function", "--outputs", "Traceback"):
            assert noise not in out, out
        entries = report(build)
        bad = entries[("mtcnn-det2", "onnx")]
        assert (bad["status"], bad["stage"], bad["passed"]) == ("failed", "convert", False)
        assert bad["message"] == f"convert:mtcnn-det2 failed: {pointer}"
        assert bad["files"] == [] and bad["verify_json"] is None
        assert entries[("mtcnn-det1", "onnx")]["status"] == "passed"
        # Yesterday's artifacts of the failed model are gone, never linked as current.
        assert not (build / "mtcnn-det2" / "onnx" / "model.onnx").exists()
        assert not (build / "mtcnn-det2" / "onnx" / "verify.json").exists()
        assert not list((build / "mtcnn-det2" / "onnx").glob("test_data_set_*"))
        html = (build / "report" / "index.html").read_text()
        assert "mtcnn-det2/onnx/model.onnx" not in html and "mtcnn-det1/onnx/model.onnx" in html
        junit = (build / "report" / "junit.xml").read_text()
        assert 'failures="1"' in junit and "the model has no blob" in junit

    recipe.write_text(recipe.read_text().replace("- prob\n", "- prob1\n"))
    ok(run_doit(env, cwd=cwd))
    assert {t["status"] for t in report(build).values()} == {"passed"}
    assert json.loads((build / ".status.json").read_text())["failed"] == {}


def test_a_stopped_build_reports_what_it_did_not_reach_as_not_built(tmp_path, models_dir):
    zoo = make_zoo(tmp_path, models_dir, {"mtcnn-det1": ["onnx"], "mtcnn-det2": ["onnx"]})
    env, build, cwd = zoo["env"], zoo["build"], zoo["base"]
    ok(run_doit(env, cwd=cwd))
    # det1's new mean reconverts it; det2's bad output stops doit before det1's optimize.
    det1 = zoo["recipes"] / "mtcnn-det1.yaml"
    det1.write_text(det1.read_text().replace("mean: 127.5", "mean: 127.0"))
    det2 = zoo["recipes"] / "mtcnn-det2.yaml"
    det2.write_text(det2.read_text().replace("- prob1", "- prob"))
    r = run_doit(env, cwd=cwd)
    assert r.returncode != 0
    assert "convert:mtcnn-det1" in executed(r) and "optimize:mtcnn-det1" not in executed(r)
    entries = report(build)
    stale = entries[("mtcnn-det1", "onnx")]
    # Its artifact and verify.json are yesterday's: not a pass, and not linked.
    assert (stale["status"], stale["stage"]) == ("not_built", "optimize"), stale
    assert "optimize:mtcnn-det1 is out of date" in stale["message"]
    assert stale["files"] == [] and stale["verify_json"] is None
    assert entries[("mtcnn-det2", "onnx")]["status"] == "failed"


def test_invalid_recipe_does_not_stop_the_zoo(tmp_path, models_dir):
    zoo = make_zoo(tmp_path, models_dir, {"mtcnn-det1": ["onnx"], "mtcnn-det3": ["onnx"]})
    env, build, cwd = zoo["env"], zoo["build"], zoo["base"]
    (zoo["recipes"] / "mtcnn-aa.yaml").write_text(
        "description: x\nlicense: MIT\ntask: classification\nsource: {framework: tf}\n"
    )
    pointer = f"{zoo['recipes']}/mtcnn-aa.yaml#/source/framework"
    listed = ok(run_doit(env, "list", cwd=cwd))
    assert "convert" in listed.stdout and "recipe" in listed.stdout
    assert pointer in listed.stderr

    for args in ((), ("--continue",), ("-n", "2", "-P", "process")):
        r = run_doit(env, *args, cwd=cwd)
        assert r.returncode != 0, r.stdout
        assert pointer in r.stderr
        for model_id in ("mtcnn-det1", "mtcnn-det3"):  # sorted after the invalid one: built
            verify = json.loads((build / model_id / "onnx" / "verify.json").read_text())
            assert verify["passed"] is True
        entries = report(build)
        bad = entries[("mtcnn-aa", "recipe")]
        assert (bad["status"], bad["stage"]) == ("failed", "recipe") and pointer in bad["message"]
        assert entries[("mtcnn-det1", "onnx")]["status"] == "passed"
        summary = json.loads((build / "report" / "report.json").read_text())["summary"]
        assert summary == {"targets": 3, "passed": 2, "failed": 1, "not_built": 0}
        # The closing line agrees with the report: the invalid recipe is a failed target.
        line = f"zoo: 3 targets, 2 passed, 1 failed, report: {build}/report/index.html\n"
        assert line in r.stdout, r.stdout
    strict = subprocess.run(
        [sys.executable, "-m", "pipelines", "validate", str(zoo["recipes"] / "mtcnn-aa.yaml")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert strict.returncode == 1 and "#/source/framework" in strict.stderr


# -- rebuilds are exact -----------------------------------------------------------------------
def test_second_build_on_the_same_dir_is_refused_while_the_first_holds_the_lock(
    tmp_path, models_dir
):
    zoo = make_zoo(tmp_path, models_dir, {"mtcnn-det1": ["onnx"]})
    env, build, cwd = zoo["env"], zoo["build"], zoo["base"]
    build.mkdir()
    # Another build, as the lock protocol sees it: an flock on build/.lock holding its pid.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; "
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
         "os.write(fd, b'%d' % os.getpid()); print('held', flush=True); time.sleep(120)",
         str(build / ".lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        r = run_doit(env, cwd=cwd)
        assert r.returncode != 0
        assert r.stderr == f"doit: another build holds {build}/.lock (pid {holder.pid})\n"
        assert executed(r) == set() and not (build / "mtcnn-det1").exists()
        assert not (build / "report").exists()
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock with the process
        holder.wait()
    ok(run_doit(env, cwd=cwd))
    assert report(build)[("mtcnn-det1", "onnx")]["status"] == "passed"


def _killed_build(env: dict, cwd: Path, build: Path, at_temporary: str | None, rng) -> None:
    """Start a build and kill -9 its whole process group: the moment a temporary appears
    under ``build / at_temporary`` (or after a random delay)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + (120 if at_temporary else rng.uniform(0.5, 6.0))
    while time.monotonic() < deadline and proc.poll() is None:
        if at_temporary and (build / at_temporary).is_dir() and temporaries(build / at_temporary):
            break
        time.sleep(0.002)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_leaves_no_temporary_and_the_same_artifacts(tmp_path, models_dir):
    from pipelines.build import tasks
    from pipelines.verify import golden

    assert tasks.GOLDEN_STAGING == golden.GOLDEN  # measure sweeps the golden staging dirs
    models = {"mtcnn-det1": ["onnx", "openvino"]}
    clean = make_zoo(tmp_path / "clean", models_dir, models)
    ok(run_doit(clean["env"], cwd=clean["base"]))
    want = artifact_digests(clean["build"])
    assert any(k.endswith("model.bin") for k in want)

    zoo = make_zoo(tmp_path / "killed", models_dir, models)
    rng = random.Random(9)
    for round_ in range(3):
        # The first kill lands while a temporary exists (the OpenVINO export's directory).
        (zoo["build"] / ".doit.db").unlink(missing_ok=True)  # a full rebuild each time
        where = "mtcnn-det1/openvino" if round_ == 0 else None
        _killed_build(zoo["env"], zoo["base"], zoo["build"], where, rng)
    ok(run_doit(zoo["env"], cwd=zoo["base"]))
    assert temporaries(zoo["build"]) == []
    assert artifact_digests(zoo["build"]) == want
    assert {t["status"] for t in report(zoo["build"]).values()} == {"passed"}


def _copy_code(dest: Path) -> Path:
    for name in ("converters", "formats", "pipelines", "schemas"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dodo.py", dest / "dodo.py")
    return dest / "dodo.py"


def _touch_code(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit that changes no behaviour\n")


def test_editing_a_helper_reruns_exactly_the_stages_that_import_it(tmp_path, models_dir):
    zoo = make_zoo(tmp_path / "zoo", models_dir, {"mtcnn-det1": ["onnx"]})
    code = tmp_path / "code"
    dodo = _copy_code(code)
    env, cwd = zoo["env"], zoo["base"]
    ok(run_doit(env, cwd=cwd, dodo=dodo))
    assert executed(ok(run_doit(env, cwd=cwd, dodo=dodo))) == set()

    # Only the exporters import fp16.py; the ONNX bytes do not change, so measure stays.
    _touch_code(code / "converters" / "fp16.py")
    assert executed(ok(run_doit(env, cwd=cwd, dodo=dodo))) == {"export:mtcnn-det1:onnx"}
    # names.py: the Caffe converter, preprocessing and ONNX->Caffe import it; of this model's
    # tasks only convert (a Caffe source) uses them: the ONNX target's export does not (each
    # task's fingerprint covers the formats it uses, see formats.fingerprint_entries), no
    # optimization pass does, nor the verifier (its reference shares no converter code).
    _touch_code(code / "converters" / "names.py")
    ran = executed(ok(run_doit(env, cwd=cwd, dodo=dodo)))
    assert ran == {"convert:mtcnn-det1"}, ran
    # metrics.py: only the verifier (measure, and the gate that re-derives the verdict).
    _touch_code(code / "pipelines" / "verify" / "metrics.py")
    ran = executed(ok(run_doit(env, cwd=cwd, dodo=dodo)))
    assert ran == {"measure:mtcnn-det1:onnx", "verify:mtcnn-det1:onnx"}, ran
    # The report and the task creators are no stage's code.
    _touch_code(code / "pipelines" / "report" / "html.py")
    tasks = code / "pipelines" / "build" / "tasks.py"
    tasks.write_text(tasks.read_text().replace('"""Regenerate docs/', '"""Regenerate the docs/'))
    assert executed(ok(run_doit(env, cwd=cwd, dodo=dodo))) == set()


def test_code_closure_covers_what_the_hand_kept_list_missed():
    from formats import fingerprint_entries, source_names, target_names
    from pipelines.build import fingerprints as code_closure
    from pipelines.build.fingerprints import Scanner

    scanner = Scanner(REPO)
    what = {"act_export": ["from_onnx"], "act_convert": ["to_onnx"],
            "act_measure": ["reference", "runner"]}  # fmt: skip

    def closure(_, module, action):  # the stage's code, with every format's (formats registry)
        names = {"to_onnx": source_names(), "reference": source_names()}
        uses = [(w, n) for w in what[action] for n in names.get(w, target_names())]
        files, third = code_closure.closure(scanner, module, action)
        files, third = dict(files), set(third)
        for mod, fn in fingerprint_entries(*uses):
            more, more_third = code_closure.closure(scanner, mod, fn)
            files.update(more)
            third |= more_third
        return files, third

    export, export_libs = closure(scanner, "pipelines.build.actions", "act_export")
    for f in ("converters/names.py", "converters/passes/graph.py", "converters/fp16.py",
              "converters/caffe/proto/caffe.proto", "converters/openvino_export.py"):  # fmt: skip
        assert f in export, f
    convert, convert_libs = closure(scanner, "pipelines.build.actions", "act_convert")
    assert "converters/names.py" in convert and "converters/caffe/layers/conv.py" in convert
    assert not {"converters/fp16.py", "converters/openvino_export.py"} & set(convert)
    assert not any(f.startswith("converters/passes/") for f in convert)
    measure, measure_libs = closure(scanner, "pipelines.build.actions", "act_measure")
    assert {"pipelines/runtimes/caffe.py", "pipelines/verify/reference_preprocess.py"} <= set(
        measure
    )
    assert "converters/caffe/convert.py" not in measure  # the reference is independent
    assert (
        "pipelines/runtimes/side_runners/run_caffe.py" in measure
    )  # a script real Caffe's Python runs
    # Third-party imports by stage: only the verifier runs onnxruntime, OpenCV and OpenVINO.
    assert {"onnxruntime", "cv2", "openvino", "numpy", "onnx"} <= measure_libs
    assert "onnxruntime" not in convert_libs and "cv2" not in convert_libs
    # A string literal naming a package ("build" in locations.py) is no file of a stage: the
    # task creators and the report are no stage's code.
    for files in (export, convert, measure):
        assert not {"pipelines/build/tasks.py", "pipelines/report/html.py"} & set(files)
    assert "openvino" in export_libs and "onnxruntime" not in export_libs


def test_upgrading_onnxruntime_reverifies_but_does_not_reconvert(monkeypatch):
    from importlib import metadata

    from pipelines.build.fingerprints import Scanner, fingerprint

    def prints():
        scanner = Scanner(REPO)  # no cache file: recomputed from the installed metadata
        return {s: fingerprint(scanner, "pipelines.build.actions", f"act_{s}")[0]
                for s in ("convert", "optimize", "export", "measure")}  # fmt: skip

    before = prints()
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda d: "99.0" if d == "onnxruntime" else real(d))
    after = prints()
    assert after["measure"] != before["measure"]
    assert {s: after[s] == before[s] for s in ("convert", "optimize", "export")} == {
        "convert": True, "optimize": True, "export": True,
    }  # fmt: skip


def test_recipe_mismatches_carry_the_recipe_pointer(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from converters.errors import ModelMismatch
    from converters.onnx_source import load_onnx_source

    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["data"], ["scores"])], "g", [x], [y])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    cases = [
        ({"data": [1, 3, 4]}, None, "/inputs/data/shape", "input 'data' has rank 4 in the model"),
        ({"date": [1, 3, 4, 4]}, None, "/inputs/date", "no input 'date'; did you mean 'data'?"),
        ({}, ["data", "score"], "/outputs/1", "no value 'score'; did you mean 'scores'?"),
    ]
    for shapes, outputs, pointer, detail in cases:
        with pytest.raises(ModelMismatch) as info:
            load_onnx_source(path, shapes, outputs=outputs)
        assert info.value.pointer() == pointer
        assert detail in info.value.detail
        assert str(info.value).startswith(f"{path}: ")  # the CLI keeps naming the file


def test_replaced_artifact_is_exported_again_and_a_touch_reruns_nothing(tmp_path, models_dir):
    """An fp32 model copied over the fp16 target's was measured and passed as the fp16
    artifact (doit checks a target for existence only); export must write it again."""
    zoo = make_zoo(tmp_path, models_dir, {"mtcnn-det1": ["onnx", "onnx-fp16"]})
    env, build, cwd = zoo["env"], zoo["build"], zoo["base"]
    ok(run_doit(env, cwd=cwd))
    fp16 = build / "mtcnn-det1" / "onnx-fp16" / "model.onnx"
    fp32 = build / "mtcnn-det1" / "onnx" / "model.onnx"
    exported = fp16.read_bytes()
    assert len(exported) < 0.75 * len(fp32.read_bytes())  # float16 weights: a smaller file

    os.utime(fp16)
    os.utime(fp32)
    assert executed(ok(run_doit(env, cwd=cwd))) == set()

    shutil.copyfile(fp32, fp16)
    r = ok(run_doit(env, cwd=cwd))
    assert "export:mtcnn-det1:onnx-fp16" in executed(r)
    assert fp16.read_bytes() == exported
    verify = json.loads((fp16.parent / "verify.json").read_text())
    assert verify["passed"] is True
    assert executed(ok(run_doit(env, cwd=cwd))) == set()
