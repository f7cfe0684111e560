"""The README's set-up lines are the ones CI runs."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT


def _setup_lines() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_lines():
    lines = _setup_lines()
    assert len(lines) == 2
    assert lines[0].endswith("pip install -e . && doit")
    assert lines[1].endswith('pip install -e ".[test]" && pytest')


def test_ci_runs_the_readme_test_line():
    ci = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == _setup_lines()[1]
    assert "ZOOMAKE_MIRROR" in "\n".join(ci)
