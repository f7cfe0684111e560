"""Where a zoo build reads and writes: the recipes, the build tree, each model's fetched files
and each target's artifact files. The task creators (``pipelines.build.tasks``) and the actions
(``pipelines.build.actions``) both name files through this module.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from pipelines.locations import CODE_ROOT, build_dir, recipes_dir

REPO = CODE_ROOT  # zoomake's code, for the fingerprints: never where the zoo or the build is
# ./recipes and ./build of the current directory, or ZOOMAKE_RECIPES / ZOOMAKE_BUILD (tests,
# benchmarks, a CI job that builds a subset; `zoomake build --recipes/--build` set them).
RECIPES = recipes_dir()
BUILD = build_dir()
BUILD_S = str(BUILD)  # task creators join strings: 35,000 tasks of a big zoo, no Path objects
# pipelines.verify.reference.DIR / INDEX (not imported: it imports numpy, ~200 ms on every
# `doit list`): the model's reference run, build/<id>/reference/reference.json.
REFERENCE_DIR, REFERENCE_INDEX = "reference", "reference.json"


def source_files(model_id: str, recipe: dict) -> dict[str, Path]:
    """role -> path under build/<id>/source/ for every file the recipe fetches: its URL's base
    name, or for a file of a source tree (``source/code/3``) ``<tree role>/<its path>``."""
    from pipelines.recipes.stages import fetched_name, recipe_files

    src = BUILD / model_id / "source"
    return {role: src / fetched_name(role, ref) for role, ref in recipe_files(recipe).items()}


def tree_dirs(model_id: str, recipe: dict) -> dict[str, Path]:
    """``{tree role: build/<id>/source/<role>}`` for the source's trees (its code files)."""
    from pipelines.recipes.checks import recipe_files, tree_of

    trees = {tree_of(role) for role, ref in recipe_files(recipe).items() if "path" in ref}
    return {t: BUILD / model_id / "source" / t for t in sorted(trees)}


def dep_sources(model_id: str, recipe: dict) -> list[str]:
    """``source_files`` as the task creators need them: strings, from the recipe cache."""
    from pipelines.recipes.cache import meta

    src = f"{BUILD_S}/{model_id}/source/"
    return [src + name for name in meta(recipe)["files"].values()]


@functools.cache
def artifact_names(fmt: str) -> tuple[str, ...]:
    from formats import target

    return tuple(target(fmt).files)


def artifact_files(out_dir: Path, fmt: str) -> list[Path]:
    return [out_dir / n for n in artifact_names(fmt)]


def artifact_paths(out_dir: str, fmt: str) -> list[str]:
    """``artifact_files`` as strings (the task creators')."""
    return [f"{out_dir}/{n}" for n in artifact_names(fmt)]


def recipe_path(model_id: str) -> str:
    """The recipe file as the user names it: relative to the working directory when inside."""
    path = RECIPES / f"{model_id}.yaml"
    with contextlib.suppress(ValueError):
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    return str(path)


# doit's state database (DOIT_CONFIG["dep_file"]); the end of a run reads it too.
DEP_FILE = str(BUILD / ".doit.db")
