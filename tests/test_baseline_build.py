"""`doit --baseline <previous build>`: a real two-model zoo, rebuilt after one model's mean
changed, shows exactly that model as changed since the baseline, in report.json, junit.xml
and the page; `doit baseline=DIR`, `ZOOMAKE_BASELINE` and `zoomake build --baseline` agree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.zoo_env import offline_zoo_env

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two real builds of two models (~40 s on 2 loaded cores)
MODELS = ("mtcnn-det1", "mtcnn-det2")
TARGETS = ("onnx", "openvino")


def _doit(env: dict, *args: str) -> subprocess.CompletedProcess:
    # cwd=REPO: doit reads the repository's pyproject.toml, whose loader plugin gives --baseline
    return subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900)  # fmt: skip


def _states(build: Path) -> dict[str, str]:
    report = json.loads((build / "report" / "report.json").read_text())
    return {
        f"{m['id']}:{t['name']}": t["baseline"]["status"]
        for m in report["models"]
        for t in m["targets"]
    }


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory, models_dir):
    base = tmp_path_factory.mktemp("baseline-zoo")
    recipes = base / "recipes"
    recipes.mkdir()
    for model_id in MODELS:  # two cheap models, two targets each
        recipe = yaml.safe_load((REPO / "recipes" / f"{model_id}.yaml").read_text())
        recipe["targets"] = {t: recipe["targets"][t] for t in TARGETS}
        (recipes / f"{model_id}.yaml").write_text(yaml.safe_dump(recipe))
    env = offline_zoo_env(base, recipes, models_dir)
    first = _doit(env)
    assert first.returncode == 0, first.stdout + first.stderr
    previous = base / "previous-build"
    shutil.copytree(base / "build", previous)
    path = recipes / "mtcnn-det1.yaml"
    recipe = yaml.safe_load(path.read_text())
    recipe["inputs"]["data"]["preprocess"]["mean"] = 120.0  # was 127.5
    path.write_text(yaml.safe_dump(recipe))
    second = _doit(env, "--baseline", str(previous))
    assert second.returncode == 0, second.stdout + second.stderr
    return {"env": env, "build": base / "build", "previous": previous, "run": second}


def test_doit_baseline_shows_exactly_the_changed_model(rebuilt):
    build = rebuilt["build"]
    assert _states(build) == {
        "mtcnn-det1:onnx": "changed",
        "mtcnn-det1:openvino": "changed",
        "mtcnn-det2:onnx": "unchanged",
        "mtcnn-det2:openvino": "unchanged",
    }
    report = json.loads((build / "report" / "report.json").read_text())
    assert report["summary"]["changed"] == 2 and report["summary"]["passed"] == 4
    assert report["baseline"]["source"] == str(rebuilt["previous"])
    t = next(t for m in report["models"] if m["id"] == "mtcnn-det1" for t in m["targets"])
    assert t["baseline"]["max_abs_change"] > 1e-3  # a mean shift of 7.5 / 128 at the input
    assert t["baseline"]["message"].startswith("output '")
    html = (build / "report" / "index.html").read_text()
    assert 'id="problem-mtcnn-det1-onnx" data-model="mtcnn-det1" data-kind="changed"' in html
    assert "problem-mtcnn-det2" not in html
    cases = {c.get("name"): c for c in ET.parse(build / "report" / "junit.xml").iter("testcase")}
    props = {
        p.get("name"): p.get("value") for p in cases["verify:mtcnn-det1:onnx"].iter("property")
    }
    assert props["baseline"].startswith("changed: output '")
    assert "zoo: 4 targets, 4 passed, 0 failed" in rebuilt["run"].stdout


def test_other_ways_to_name_the_baseline_agree(rebuilt, repo_root):
    env, build, previous = rebuilt["env"], rebuilt["build"], rebuilt["previous"]
    expected = _states(build)
    (build / "report" / "report.json").unlink()
    r = _doit(env, f"baseline={previous}")  # doit's command-line variable; a no-op build
    assert r.returncode == 0, r.stderr
    assert _states(build) == expected
    r = subprocess.run([sys.executable, "-m", "pipelines", "build", "--baseline", str(previous)],
                       capture_output=True, text=True, env=env, cwd=repo_root, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _states(build) == expected
    r = _doit({**env, "ZOOMAKE_BASELINE": str(previous / "report")})  # a report bundle
    assert r.returncode == 0, r.stderr
    states = _states(build)
    assert states["mtcnn-det2:onnx"] == "unchanged" and states["mtcnn-det1:onnx"] == "changed"


def test_an_unusable_baseline_is_one_line_and_the_report_is_written(rebuilt, tmp_path):
    env, build = rebuilt["env"], rebuilt["build"]
    r = _doit(env, "--baseline", str(tmp_path / "no-such-build"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        f"doit: baseline {tmp_path / 'no-such-build'}: no such build directory or report "
        "(no vs-baseline column)"
    ]
    report = json.loads((build / "report" / "report.json").read_text())
    assert report["summary"]["passed"] == 4 and "error" in report["baseline"]
