"""The built wheel works on its own: installed (not editable) into a fresh venv, run outside
the checkout, on a one-recipe zoo in a temporary directory.

Offline and fast: the wheel is built with ``--no-build-isolation`` (setuptools comes with the
test extras), and the fresh venv gets the test venv's site-packages as a plain path entry for
the dependencies. A plain entry does not run that directory's ``.pth`` files, so the editable
install of this checkout stays invisible: ``pipelines`` can only come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.caffe.helpers import run_opencv, run_ort
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

_NOT_SOURCE_ANYWHERE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".setuptools-build",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
)


def _NOT_SOURCE(directory: str, names: list[str]) -> set[str]:
    """What the copy leaves out: the zoo's build/ at the top, never pipelines/build/ (code)."""
    ignored = set(_NOT_SOURCE_ANYWHERE(directory, names))
    if Path(directory) == REPO_ROOT and "build" in names:
        ignored.add("build")
    return ignored


PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools writes its scratch space and *.egg-info into the tree.
    src = base / "src"
    shutil.copytree(REPO_ROOT, src, ignore=_NOT_SOURCE, symlinks=True)
    run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", base, src])
    (whl,) = base.glob("zoomake-*.whl")
    assert not (src / "build").exists(), "setuptools must not write into the zoo's build/"
    return whl


def _venv(base: Path, wheel: Path, hide: tuple[str, ...] = ()) -> dict:
    """A fresh venv with the wheel; ``hide`` packages look uninstalled (an optional extra)."""
    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([*PIP, "--python", python, "install", "--no-deps", "--no-index", wheel])
    fresh_site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    lines = [sysconfig.get_paths()["purelib"]]
    # sys.modules[name] = None makes the import fail and find_spec() say "not installed".
    lines += [f"import sys; sys.modules[{name!r}] = None" for name in hide]
    (fresh_site / "zz_test_deps.pth").write_text("\n".join(lines) + "\n")
    return {"base": base, "bin": venv / "bin", "site": fresh_site, "wheel": wheel}


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel) -> dict:
    return _venv(tmp_path_factory.mktemp("install"), wheel)


@pytest.fixture(scope="module")
def installed_without_openvino(tmp_path_factory, wheel) -> dict:
    return _venv(tmp_path_factory.mktemp("install-no-ov"), wheel, hide=("openvino",))


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}:\n{r.stdout}\n{r.stderr}"
    return r


def zoomake(installed: dict, *args, cwd: Path, env: dict | None = None):
    base = {k: v for k, v in os.environ.items()
            if k not in ("ZOOMAKE_RECIPES", "ZOOMAKE_BUILD", "PYTHONPATH")}  # fmt: skip
    env = {**base, **(env or {})}
    return subprocess.run([str(installed["bin"] / "zoomake"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture
def zoo_dir(tmp_path) -> Path:
    (tmp_path / "recipes").mkdir()
    shutil.copy(REPO_ROOT / "recipes" / "mtcnn-det1.yaml", tmp_path / "recipes")
    return tmp_path


def test_wheel_ships_schema_and_tasks(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert {"pipelines/recipes/recipe.schema.json", "pipelines/build/tasks.py",
            "converters/caffe/proto/caffe.proto"} <= names  # fmt: skip
    probe = "import pipelines, converters; print(pipelines.__file__, converters.__file__)"
    r = run([installed["bin"] / "python", "-c", probe], cwd=installed["base"])
    for path in r.stdout.split():
        assert Path(path).is_relative_to(installed["site"]), r.stdout


def test_version(installed, tmp_path):
    r = zoomake(installed, "--version", cwd=tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, "zoomake 0.1.0"), r.stderr


def test_validate_in_a_zoo_dir_and_with_flags(installed, zoo_dir, tmp_path_factory):
    r = zoomake(installed, "validate", cwd=zoo_dir)
    assert (r.returncode, r.stdout.strip()) == (0, "1 recipe(s) valid"), r.stderr
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    for how in (["--recipes", zoo_dir / "recipes"], []):
        env = {} if how else {"ZOOMAKE_RECIPES": str(zoo_dir / "recipes")}
        r = zoomake(installed, "validate", *how, cwd=elsewhere, env=env)
        assert (r.returncode, r.stdout.strip()) == (0, "1 recipe(s) valid"), r.stderr


def test_convert(installed, models_dir, tmp_path):
    proto, weights = models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"
    r = zoomake(installed, "convert", "--prototxt", proto, "--caffemodel", weights,
                "-o", "det1.onnx", "--input-shape", "data=1,3,12,12", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)
    got = run_ort(onnx.load(tmp_path / "det1.onnx"), {"data": x})
    want = run_opencv(proto, weights, {"data": x}, list(got))
    for name in got:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, err_msg=name)


def test_build_in_a_zoo_dir_without_dodo(installed, zoo_dir, models_dir, tmp_path_factory):
    env = {"ZOOMAKE_MIRROR": str(models_dir), "ZOOMAKE_OFFLINE": "1",
           "ZOOMAKE_CACHE": str(tmp_path_factory.mktemp("cache"))}  # fmt: skip
    r = zoomake(installed, "build", cwd=zoo_dir, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    build = zoo_dir / "build"
    for target in ("onnx", "onnx-fp16", "openvino"):
        assert (build / "mtcnn-det1" / target / "verify.json").is_file()
    assert (build / "report" / "index.html").is_file()
    assert not any((installed["site"]).glob("build")), "nothing may be written into site-packages"


def test_openvino_is_an_extra(installed_without_openvino, models_dir, zoo_dir, tmp_path_factory):
    inst = installed_without_openvino
    proto, weights = models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"
    src = ["--prototxt", proto, "--caffemodel", weights]
    r = zoomake(inst, "convert", *src, "-o", "det1.onnx", cwd=zoo_dir)
    assert r.returncode == 0, r.stderr  # ONNX needs no OpenVINO
    r = zoomake(inst, "convert", *src, "-o", "det1.xml", cwd=zoo_dir)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "zoomake: error: OpenVINO IR (format: openvino, -o model.xml) needs openvino, which is "
        'not installed: pip install "zoomake[openvino]"'
    ]
    assert not list(zoo_dir.glob("det1.xml")) and not list(zoo_dir.glob("det1.bin"))
    env = {"ZOOMAKE_MIRROR": str(models_dir), "ZOOMAKE_OFFLINE": "1",
           "ZOOMAKE_CACHE": str(tmp_path_factory.mktemp("cache"))}  # fmt: skip
    r = zoomake(inst, "build", "--continue", cwd=zoo_dir, env=env)
    assert r.returncode != 0
    assert 'pip install "zoomake[openvino]"' in r.stderr and "Traceback" not in r.stderr
    passed = zoo_dir / "build" / "mtcnn-det1" / "onnx" / "verify.json"
    assert passed.is_file()  # the rest of the zoo still builds
