"""``zoomake validate``: check recipes against the schema, every error one per line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.errors import ZoomakeError


def add_parser(sub) -> argparse.ArgumentParser:
    v = sub.add_parser("validate", help="validate recipes against the schema")
    v.add_argument("recipes", nargs="*", type=Path, help="recipe files (default: recipes/*.yaml)")
    return v


def run(args) -> int:
    from pipelines.locations import recipes_dir
    from pipelines.recipes.load import validate_recipe_file

    paths = args.recipes or sorted(recipes_dir().glob("*.yaml"))
    if not paths:
        raise ZoomakeError(f"no recipes to validate in {recipes_dir()}")
    errors = []
    for path in paths:
        errors.extend(validate_recipe_file(Path(path)))
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s) in {len(paths)} recipe(s)", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{len(paths)} recipe(s) valid")
    return 0
