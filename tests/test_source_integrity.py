"""End-to-end: a byte flipped in a build's source file or in the download cache never builds green.

A one-model zoo (MTCNN P-Net, its ONNX target only: the smallest real model) is built offline
from the shared mirror; then its weights are damaged in the build directory, in the cache
used by that build, and in the cache used by a fresh build directory. Each time the next
``doit`` either fails with one line naming the file and both hashes, or rebuilds artifacts
byte-identical to the ones built from the intact weights, and the run after a failure heals.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from tests.test_zoo_build import executed, run_doit
from tests.zoo_env import offline_zoo_env

REPO = Path(__file__).resolve().parents[1]
MODEL = "mtcnn-det1"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip_weight_byte(path: Path) -> None:
    # Mid-file lies inside the conv weights' float data: the file still parses, only the
    # numbers change (the case verification cannot see when both sides read the same file).
    path.chmod(0o644)  # root writes read-only files anyway; do what a careful user must
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, models_dir):
    base = tmp_path_factory.mktemp("integrity")
    recipes = base / "recipes"
    recipes.mkdir()
    recipe = yaml.safe_load((REPO / "recipes" / f"{MODEL}.yaml").read_text())
    recipe["targets"] = {"onnx": recipe["targets"]["onnx"]}
    (recipes / f"{MODEL}.yaml").write_text(yaml.safe_dump(recipe))
    env = offline_zoo_env(base, recipes, models_dir)
    run_doit(env)
    ref = recipe["source"]["caffemodel"]
    artifact = base / "build" / MODEL / "onnx" / "model.onnx"
    return {
        "env": env,
        "base": base,
        "ref": ref,
        "build": base / "build",
        "entry": base / "cache" / "sha256" / ref["sha256"][:2] / ref["sha256"],
        "artifact_sha": _sha(artifact),
    }


def _caffemodel(build: Path) -> Path:
    return build / MODEL / "source" / "det1.caffemodel"


def test_flipped_byte_in_the_build_source_fails_loudly_then_heals(zoo):
    source = _caffemodel(zoo["build"])
    _flip_weight_byte(source)
    bad = _sha(source)
    r = run_doit(zoo["env"], check=False)
    assert r.returncode != 0, r.stdout + r.stderr
    assert (
        f"convert:{MODEL} failed: {source}: sha256 {bad} ({zoo['ref']['size']} bytes), "
        f"the recipe says sha256 "
        f"{zoo['ref']['sha256']} ({zoo['ref']['size']} bytes): the file changed after "
        f"fetch:{MODEL}; removed it, the next doit fetches it again"
    ) in r.stderr.splitlines(), r.stderr
    assert "measure:" not in " ".join(executed(r))  # nothing was verified on the bad weights
    assert _sha(zoo["entry"]) == zoo["ref"]["sha256"]  # a copy, not the cache entry itself

    healed = run_doit(zoo["env"])
    assert f"fetch:{MODEL}" in executed(healed)
    assert _sha(source) == zoo["ref"]["sha256"]
    assert _sha(zoo["build"] / MODEL / "onnx" / "model.onnx") == zoo["artifact_sha"]


def test_flipped_byte_in_the_cache_never_reaches_a_build(zoo):
    _flip_weight_byte(zoo["entry"])
    bad = _sha(zoo["entry"])
    try:
        # The existing build holds its own intact copy: nothing to redo, and that is true.
        assert executed(run_doit(zoo["env"])) == set()
        assert _sha(_caffemodel(zoo["build"])) == zoo["ref"]["sha256"]

        # A fresh build directory on the same cache: the damaged entry is found and evicted.
        fresh = {**zoo["env"], "ZOOMAKE_BUILD": str(zoo["base"] / "fresh")}
        r = run_doit(fresh, check=False)
        assert r.returncode != 0, r.stdout + r.stderr
        line = (
            f"fetch:{MODEL} failed: {zoo['entry']}: corrupt cache entry for {zoo['ref']['url']}: "
            f"sha256 {bad} "
            f"({zoo['ref']['size']} bytes), expected sha256 {zoo['ref']['sha256']} "
            f"({zoo['ref']['size']} bytes); removed it, the next build fetches the file again"
        )
        assert line in r.stderr.splitlines(), r.stderr
        assert not zoo["entry"].exists()

        run_doit(fresh)  # refetched from the mirror
        assert _sha(zoo["entry"]) == zoo["ref"]["sha256"]
        artifact = zoo["base"] / "fresh" / MODEL / "onnx" / "model.onnx"
        assert _sha(artifact) == zoo["artifact_sha"]
    finally:
        shutil.rmtree(zoo["base"] / "fresh", ignore_errors=True)


def test_flipped_byte_in_a_fresh_build_dir_stays_in_that_build_dir(zoo):
    # Two build directories on one cache: damage in one must reach neither the cache nor
    # the other (with hard links all three were one inode).
    fresh = {**zoo["env"], "ZOOMAKE_BUILD": str(zoo["base"] / "fresh2")}
    try:
        run_doit(fresh)
        source = _caffemodel(zoo["base"] / "fresh2")
        _flip_weight_byte(source)
        bad = _sha(source)

        assert executed(run_doit(zoo["env"])) == set()  # the first build: intact, nothing to do
        assert _sha(_caffemodel(zoo["build"])) == zoo["ref"]["sha256"]
        assert _sha(zoo["entry"]) == zoo["ref"]["sha256"]

        r = run_doit(fresh, check=False)
        assert r.returncode != 0, r.stdout + r.stderr
        assert any(
            line.startswith(f"convert:{MODEL} failed: {source}: sha256 {bad} ")
            and "changed after" in line
            for line in r.stderr.splitlines()
        ), r.stderr
        run_doit(fresh)
        artifact = zoo["base"] / "fresh2" / MODEL / "onnx" / "model.onnx"
        assert _sha(artifact) == zoo["artifact_sha"]
    finally:
        shutil.rmtree(zoo["base"] / "fresh2", ignore_errors=True)
