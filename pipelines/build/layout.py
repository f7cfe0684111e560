"""Where a zoo build reads and writes: the recipes, the build tree, each model's fetched files
and each target's artifact files. The task creators (``pipelines.build.tasks``) and the actions
(``pipelines.build.actions``) both name files through this module.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pipelines.locations import CODE_ROOT, build_dir, recipes_dir

REPO = CODE_ROOT  # zoomake's code, for the fingerprints: never where the zoo or the build is
# ./recipes and ./build of the current directory, or ZOOMAKE_RECIPES / ZOOMAKE_BUILD (tests,
# benchmarks, a CI job that builds a subset; `zoomake build --recipes/--build` set them).
RECIPES = recipes_dir()
BUILD = build_dir()


def source_files(model_id: str, recipe: dict) -> dict[str, Path]:
    """role -> path under build/<id>/source/ for every file the recipe fetches."""
    from pipelines.fetch.cache import url_basename
    from pipelines.recipes.stages import recipe_files

    src = BUILD / model_id / "source"
    return {role: src / url_basename(ref["url"]) for role, ref in recipe_files(recipe).items()}


def artifact_files(out_dir: Path, fmt: str) -> list[Path]:
    from formats import target

    return [out_dir / n for n in target(fmt).files]


def recipe_path(model_id: str) -> str:
    """The recipe file as the user names it: relative to the working directory when inside."""
    path = RECIPES / f"{model_id}.yaml"
    with contextlib.suppress(ValueError):
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    return str(path)


# doit's state database (DOIT_CONFIG["dep_file"]); the end of a run reads it too.
DEP_FILE = str(BUILD / ".doit.db")
