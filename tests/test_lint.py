"""The tree is clean under the project's ruff configuration (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True)  # fmt: skip


def test_ruff_check():
    r = _ruff("check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format():
    r = _ruff("format", "--check", ".")
    assert r.returncode == 0, r.stdout + r.stderr
