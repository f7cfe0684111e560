"""The README's set-up lines are the ones CI runs."""

from __future__ import annotations

import os
import re

from tests.conftest import REPO_ROOT


def _setup_lines() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_lines():
    lines = _setup_lines()
    assert len(lines) == 2
    # [all]: the default zoo needs every optional runtime (OpenVINO targets on every model).
    assert lines[0].endswith('pip install -e ".[all]" && doit')
    assert lines[1].endswith('pip install -e ".[all,test]" && pytest')


def test_all_extra_installs_every_optional_runtime():
    import tomllib

    from formats import extras

    EXTRAS = extras()  # the optional packages every format declares

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert extras["all"] == [f"zoomake[{','.join(sorted({e for e, _ in EXTRAS.values()}))}]"]
    assert not any(d.startswith(tuple(EXTRAS)) for d in project["dependencies"])


def test_ci_runs_the_readme_test_line():
    ci = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == _setup_lines()[1]
    assert "ZOOMAKE_MIRROR" in "\n".join(ci)


def test_one_variable_locates_the_shared_data(tmp_path, monkeypatch):
    from tests.conftest import shared_path

    (tmp_path / "elsewhere" / "models").mkdir(parents=True)
    (tmp_path / "elsewhere" / "models" / "MANIFEST.yaml").write_text("files: []\n")
    monkeypatch.delenv("ZOOMAKE_SHARED", raising=False)
    mirror = f"{tmp_path / 'nothing'}{os.pathsep}{tmp_path / 'elsewhere' / 'models'}"
    monkeypatch.setenv("ZOOMAKE_MIRROR", mirror)
    assert shared_path() == (tmp_path / "elsewhere").resolve()
    monkeypatch.setenv("ZOOMAKE_SHARED", str(tmp_path / "other"))
    assert shared_path() == (tmp_path / "other").resolve()
    monkeypatch.delenv("ZOOMAKE_SHARED")
    monkeypatch.delenv("ZOOMAKE_MIRROR")
    assert shared_path() == (REPO_ROOT.parent / "shared").resolve()
    readme = (REPO_ROOT / "README.md").read_text()
    assert "either `ZOOMAKE_SHARED=/path/shared` or\n`ZOOMAKE_MIRROR=/path/shared/models`" in readme
