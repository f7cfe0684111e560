"""Shared fixtures: where the repository and the shared model files are.

The shared material (real Caffe models, MANIFEST.yaml) lives next to the repository:
``<X>/p`` is the clone and ``<X>/shared`` the data, in CI as on developer machines.
One variable is enough to point elsewhere: ``ZOOMAKE_SHARED`` (the shared folder) or
``ZOOMAKE_MIRROR`` (its ``models/``, the build's mirror); each is derived from the other.
Missing data is a failure, not a skip: CI always has it, and a silently skipped numerical test
proves nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

# As in the build (pipelines/build/tasks.py): OpenBLAS worker threads next to OpenVINO's and
# onnxruntime's pools were seen spinning forever; numpy is not imported yet at this point.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_path() -> Path:
    """$ZOOMAKE_SHARED, else the parent of the $ZOOMAKE_MIRROR entry holding MANIFEST.yaml,
    else ``../shared`` next to the repository."""
    if os.environ.get("ZOOMAKE_SHARED"):
        return Path(os.environ["ZOOMAKE_SHARED"]).resolve()
    for entry in (os.environ.get("ZOOMAKE_MIRROR") or "").split(os.pathsep):
        if entry and (Path(entry) / "MANIFEST.yaml").is_file():
            return Path(entry).resolve().parent
    return (REPO_ROOT.parent / "shared").resolve()


# The builds the tests run find the model files through the mirror, as CI sets it.
os.environ.setdefault("ZOOMAKE_MIRROR", str(shared_path() / "models"))


def _pin_side_runtimes() -> None:
    """Name the side runtimes set up in the zoomake cache by environment variable, so tests
    that point ZOOMAKE_CACHE elsewhere (zoo builds in a temp dir) still find them."""
    from pipelines.runtimes.side import locate

    for framework in ("caffe", "mxnet"):
        var = f"ZOOMAKE_{framework.upper()}_PYTHON"
        env = None if os.environ.get(var) else locate(framework)
        if env is not None:
            os.environ[var] = env.python
            os.environ[f"{var}PATH"] = os.pathsep.join(env.pythonpath)


_pin_side_runtimes()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top directory (where dodo.py and recipes/ are)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` next to the repository, or as ``$ZOOMAKE_SHARED``/``$ZOOMAKE_MIRROR`` say."""
    path = shared_path()
    if not (path / "models" / "MANIFEST.yaml").is_file():
        pytest.fail(
            f"shared test data not found: {path}/models/MANIFEST.yaml is missing "
            "(clone the repository next to shared/, or set ZOOMAKE_SHARED or ZOOMAKE_MIRROR)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    """The shared model files (mtcnn/, ultraface/, architectures/ and MANIFEST.yaml)."""
    return shared_dir / "models"


@pytest.fixture(scope="session")
def manifest(models_dir: Path) -> dict[str, dict]:
    """MANIFEST.yaml entries keyed by their path relative to ``models_dir``."""
    with open(models_dir / "MANIFEST.yaml", encoding="utf-8") as f:
        return {entry["path"]: entry for entry in yaml.safe_load(f)["files"]}
