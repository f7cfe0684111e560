"""The whole-zoo stamp (pipelines/build/stamp.py) serves a plain no-op ``doit`` without loading
the tasks, and never serves a run in which something the tasks read changed: each test builds
(or reuses) a real zoo, lets a no-op run write the stamp, changes one thing as a user would and
checks that the next ``doit`` reran exactly what the ordinary path reruns (or, for a change that
reruns nothing, that the run was not served from the stamp).

A run served by the stamp leaves doit's database untouched; a run that loads the tasks rewrites
it (doit's sqlite backend commits on close), which is what ``served`` looks at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.build.stamp import RACY_S, STAMP_NAME
from tests.test_build_trust import _copy_code, _touch_code, make_zoo, ok
from tests.test_zoo_build import executed

REPO = Path(__file__).resolve().parents[1]
MODEL = "mtcnn-det1"
LOADER = """[tool.doit]
loader = "zoomake"
[tool.doit.plugins.loader]
zoomake = "pipelines.build.doit_loader:ZooLoader"
"""


def _zoo(base: Path, models_dir: Path, code: Path | None = None) -> dict:
    zoo = make_zoo(base, models_dir, {MODEL: ["onnx"]})
    # doit reads its loader from the working directory's pyproject.toml, as in a user's zoo.
    (zoo["base"] / "pyproject.toml").write_text(LOADER)
    extra = base / "site"  # a sys.path entry the dist-info test installs into
    extra.mkdir()
    zoo["site"] = extra
    zoo["code"] = code or REPO
    zoo["env"] = {**zoo["env"], "PYTHONPATH": os.pathsep.join([str(zoo["code"]), str(extra)])}
    return zoo


def doit(zoo: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "doit", "-f", str(zoo["code"] / "dodo.py"), *args],
        capture_output=True, text=True, env=zoo["env"], cwd=zoo["base"], timeout=900,
    )  # fmt: skip


def stamp(zoo: dict) -> Path:
    return zoo["build"] / ".cache" / STAMP_NAME


def settle(zoo: dict) -> None:
    """Build until current, then one no-op run writes the stamp (past the racy window)."""
    ok(doit(zoo))
    time.sleep(RACY_S + 0.2)
    r = ok(doit(zoo))
    assert executed(r) == set(), r.stdout
    assert stamp(zoo).is_file(), f"a clean no-op run wrote no stamp:\n{r.stdout}\n{r.stderr}"


def served(zoo: dict, check: bool = True) -> tuple[bool, subprocess.CompletedProcess]:
    """Run `doit`: (was it served by the stamp, the run)."""
    db = zoo["build"] / ".doit.db"
    before = db.stat().st_mtime_ns
    r = doit(zoo)
    if check:
        ok(r)
    return db.stat().st_mtime_ns == before, r


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, models_dir):
    return _zoo(tmp_path_factory.mktemp("stamp"), models_dir)


def test_a_no_op_is_served_by_the_stamp_and_prints_the_same_line(zoo):
    settle(zoo)
    line = ok(doit(zoo)).stdout  # a served run; settle's last run was the full no-op
    was_served, r = served(zoo)
    assert was_served, "the stamp did not serve a no-op"
    assert r.stdout == line
    assert "zoo: 1 targets, 1 passed, 0 failed" in r.stdout and "(all up to date)" in r.stdout
    # `doit list` only reads: it keeps the stamp.
    ok(doit(zoo, "list"))
    assert served(zoo)[0]


def test_editing_the_recipe_reruns_its_stages(zoo):
    settle(zoo)
    path = zoo["recipes"] / f"{MODEL}.yaml"
    original = path.read_text()
    recipe = yaml.safe_load(original)
    recipe["verify"]["seed"] = recipe["verify"].get("seed", 0) + 1  # other samples
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    try:
        was_served, r = served(zoo)
        assert not was_served
        ran = executed(r)
        assert {f"reference:{MODEL}", f"measure:{MODEL}:onnx", f"verify:{MODEL}:onnx"} <= ran, ran
        assert f"convert:{MODEL}" not in ran  # the seed is not the converter's
    finally:
        path.write_text(original)


def test_editing_a_fetched_source_model_file_reruns_convert(zoo):
    settle(zoo)
    src = zoo["build"] / MODEL / "source" / "det1.prototxt"
    original = src.read_bytes()
    src.chmod(0o644)
    src.write_bytes(original + b"\n# an edit that changes no layer\n")
    was_served, r = served(zoo, check=False)
    assert not was_served
    # convert reruns and refuses the file that is no longer the recipe's (the next run fetches).
    assert f"convert:{MODEL}" in executed(r)
    assert f"convert:{MODEL} failed:" in r.stderr and "changed after fetch" in r.stderr, r.stderr


def test_a_changed_file_in_the_download_cache_is_not_served(zoo):
    settle(zoo)
    cached = next(p for p in (zoo["base"] / "cache").rglob("*") if p.is_file())
    st = cached.stat()
    os.utime(cached, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not served(zoo)[0]


def test_deleting_or_editing_an_artifact_reruns_what_made_it(zoo):
    settle(zoo)
    artifact = zoo["build"] / MODEL / "onnx" / "model.onnx"
    artifact.unlink()
    was_served, r = served(zoo)
    assert not was_served
    assert f"export:{MODEL}:onnx" in executed(r)

    settle(zoo)
    golden = next((zoo["build"] / MODEL / "onnx").glob("test_data_set_*/output_0.pb"))
    data = golden.read_bytes()
    golden.write_bytes(data[:-4] + bytes(4))  # a tampered golden output
    try:
        was_served, r = served(zoo, check=False)
        assert not was_served
        assert f"verify:{MODEL}:onnx failed:" in r.stderr and "golden file" in r.stderr, r.stderr
    finally:
        golden.write_bytes(data)


def test_a_new_distribution_on_sys_path_is_not_served(zoo):
    settle(zoo)
    dist = zoo["site"] / "onnxruntime_extra-9.9.dist-info"
    dist.mkdir()
    try:
        assert not served(zoo)[0]
    finally:
        shutil.rmtree(dist)


def test_other_commands_remove_the_stamp(zoo):
    settle(zoo)
    ok(doit(zoo, "-a", f"verify:{MODEL}:onnx"))
    assert not stamp(zoo).exists()
    settle(zoo)
    r = ok(doit(zoo, "--reporter", "console"))
    assert not stamp(zoo).exists(), r.stdout


def test_editing_a_stage_code_file_reruns_that_stage(tmp_path, models_dir):
    code = tmp_path / "code"
    _copy_code(code)
    shutil.copy(REPO / "pyproject.toml", code / "pyproject.toml")
    zoo = _zoo(tmp_path / "zoo", models_dir, code=code)
    settle(zoo)
    # Only the exporters import fp16.py (tests/test_build_trust.py): export reruns, and only it.
    _touch_code(code / "converters" / "fp16.py")
    was_served, r = served(zoo)
    assert not was_served
    assert executed(r) == {f"export:{MODEL}:onnx"}


def test_doit_list_is_served_from_the_last_listing_until_a_recipe_or_the_code_changes(
    tmp_path, models_dir
):
    code = tmp_path / "code"
    _copy_code(code)
    shutil.copy(REPO / "pyproject.toml", code / "pyproject.toml")
    zoo = _zoo(tmp_path / "zoo", models_dir, code=code)
    time.sleep(RACY_S + 0.2)  # the recipes and the code were just written
    first = ok(doit(zoo, "list", "--all")).stdout
    assert f"measure:{MODEL}:onnx" in first
    assert list((zoo["build"] / ".cache").glob("list-*.json")), "no listing recorded"
    assert ok(doit(zoo, "list", "--all")).stdout == first
    plain = ok(doit(zoo, "list")).stdout  # other options: its own listing
    assert f"measure:{MODEL}" not in plain and "measure" in plain

    # A new recipe: its tasks are listed.
    from tests.test_build_trust import write_recipe

    write_recipe(zoo["recipes"], "mtcnn-det2", ["onnx"])
    listed = ok(doit(zoo, "list", "--all")).stdout
    assert "measure:mtcnn-det2:onnx" in listed and f"measure:{MODEL}:onnx" in listed
    time.sleep(RACY_S + 0.2)
    assert "Run each artifact against" in ok(doit(zoo, "list")).stdout  # recorded
    assert ok(doit(zoo, "list")).stdout == ok(doit(zoo, "list")).stdout
    # A task creator's doc (pipelines/build/tasks.py is no stage's code): the new doc is listed.
    tasks = code / "pipelines" / "build" / "tasks.py"
    tasks.write_text(
        tasks.read_text().replace('"""Run each artifact against', '"""Check each artifact against')
    )
    assert "Check each artifact against" in ok(doit(zoo, "list")).stdout
