"""pipelines.verify.regress: rerun today's artifacts on their golden inputs, compare with yesterday's."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from converters.io import load_onnx, save_onnx
from pipelines.errors import ZoomakeError
from pipelines.verify.measure import measure
from pipelines.verify.regress import regress
from tests.verify_helpers import (
    build_sources,
    corrupt,
    fake_build,
    initializer_feeding,
    make_recipe,
    write_tiny,
)


@pytest.fixture
def builds(tmp_path):
    """``(yesterday, today, recipe, sources)``: two identical measured build trees."""
    sources = write_tiny(tmp_path / "src")
    recipe = make_recipe(targets={"onnx": {"format": "onnx", "precision": "fp32"}})
    before = tmp_path / "before"
    for model_id in ("m", "n"):
        out_dir = fake_build(before, model_id, sources, recipe)
        measure(model_id, recipe, "onnx", build_sources(before, model_id, sources), out_dir)
    today = tmp_path / "today"
    shutil.copytree(before, today)
    return before, today, recipe, sources


def test_unchanged_zoo_prints_nothing(builds, capsys):
    before, today, _, _ = builds
    assert regress(today, before) == 0
    assert capsys.readouterr().out == ""


def test_changed_weight_is_drift_naming_the_output(builds, capsys):
    before, today, _, _ = builds
    path = today / "m" / "onnx" / "model.onnx"
    model = load_onnx(path)
    save_onnx(corrupt(model, initializer_feeding(model, "Conv", "score", which=2), (1,), 0.5), path)
    assert regress(today, before) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("regress: m:onnx: output 'score' drifted: max abs error 0.5 > atol")
    assert "of test_data_set_" in lines[0] and "previous" in lines[0]
    assert lines[1] == f"regress: 1 of 2 artifact(s) changed since {before}"


def test_a_change_within_tolerance_is_not_drift(builds, capsys):
    before, today, _, _ = builds
    path = today / "m" / "onnx" / "model.onnx"
    model = load_onnx(path)
    save_onnx(
        corrupt(model, initializer_feeding(model, "Conv", "score", which=2), (1,), 1e-6), path
    )
    assert regress(today, before) == 0  # atol 1e-4 from the recipe's verify.json
    assert capsys.readouterr().out == ""


def test_missing_and_new_counterparts(builds, capsys):
    before, today, _, _ = builds
    shutil.rmtree(before / "n")
    assert regress(today, before) == 0  # a new artifact is listed, not drift
    assert capsys.readouterr().out.strip() == (
        f"regress: n:onnx: new artifact (no golden data in {before}), not compared"
    )
    assert regress(before, today) == 1  # ... but one that disappeared is
    assert f"regress: n:onnx: in {today} but missing from {before}" in capsys.readouterr().out


def test_changed_golden_inputs_are_not_comparable(builds, capsys):
    before, today, recipe, sources = builds
    reseeded = make_recipe(targets=recipe["targets"], verify={"samples": 2, "seed": 8})
    measure("m", reseeded, "onnx", build_sources(today, "m", sources), today / "m" / "onnx")
    assert regress(today, before) == 1
    assert "m:onnx: golden inputs of test_data_set_0 differ" in capsys.readouterr().out


def test_cli_exit_code_and_bad_directory(builds, tmp_path, repo_root):
    before, today, _, _ = builds
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "regress",
        "--against",
        str(before),
        "--build",
        str(today),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=repo_root)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    with pytest.raises(ZoomakeError, match="build directory not found"):
        regress(today, tmp_path / "nope")
