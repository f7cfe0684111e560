"""One recipe: load safely, validate against the JSON Schema, fill defaults.

Every validation problem becomes one line ``<file>#<json-pointer>: expected ..., got ...``,
all of them at once, sorted by position in the file. A whole zoo is loaded through the cache
above this module (``pipelines.recipes.cache.load_zoo``): validated recipes keyed by each
file's stat signature and by a fingerprint of the schema and of this code, so that listing the
tasks of a 500-recipe zoo costs ~500 ``stat`` calls instead of 500 YAML parses and schema
validations.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from pathlib import Path

from pipelines.errors import ZoomakeError
from pipelines.recipes.stages import (  # noqa: F401  (public API of this module)
    canonical_json,
    recipe_files,
    stage_config,
    subtree,
    tolerance,
)

# YAML, jsonschema and the error translation are imported only when a recipe must really be
# parsed: a warm cache.load_zoo (every `doit list`) needs none of them (~140 ms of imports).

# The schema is edited in schemas/recipe.schema.json; pipelines/recipes/recipe.schema.json links to it so
# that it ships inside the package (package data) and is found the same way when installed.
SCHEMA_PATH = Path(__file__).resolve().with_name("recipe.schema.json")
MODEL_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
RECIPE_SUFFIX = ".yaml"


@functools.cache
def schema() -> dict:
    """The recipe JSON Schema (parsed once per process)."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


@functools.cache
def _validator():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    return Draft202012Validator(schema())


def recipe_id(path: str | os.PathLike) -> str:
    """The model id of a recipe file: its name without ``.yaml``."""
    return Path(path).name.removesuffix(RECIPE_SUFFIX)


def _sort_key(positions: dict, pointer: str) -> tuple[int, int]:
    # A missing property has no position: use its nearest existing ancestor's.
    while pointer not in positions and pointer:
        pointer = pointer.rsplit("/", 1)[0]
    return positions.get(pointer, (1, 1))


def _check_text(path: str | os.PathLike, text: str) -> tuple[dict | None, list[str]]:
    """Parse and validate one recipe; return (data, error lines)."""
    from pipelines.recipes import checks as recipe_checks
    from pipelines.recipes import schema_errors
    from pipelines.recipes.yaml import parse_yaml

    name = str(path)
    data, positions, issues = parse_yaml(text)
    if issues:
        lines = []
        for issue in sorted(issues, key=lambda i: (i.line, i.column)):
            where = (
                f"#{issue.pointer}"
                if issue.pointer is not None
                else f":{issue.line}:{issue.column}"
            )
            lines.append(f"{name}{where}: {issue.message}")
        return None, lines
    found: list[tuple[str, str]] = []
    rid = recipe_id(path)
    if not Path(path).name.endswith(RECIPE_SUFFIX) or not MODEL_ID.fullmatch(rid):
        found.append(
            (
                "",
                f"expected a file name <model-id>.yaml with the id matching {MODEL_ID.pattern}, got '{Path(path).name}'",
            )
        )
    if not isinstance(data, dict):
        found.append(("", f"expected a mapping (the recipe), got {schema_errors.render(data)}"))
    else:
        for error in _validator().iter_errors(data):
            found.extend(schema_errors.translate(error))
        found.extend(recipe_checks.check(data))
    unique = sorted(set(found), key=lambda pm: (*_sort_key(positions, pm[0]), pm[0], pm[1]))
    return data, [f"{name}#{pointer}: {message}" for pointer, message in unique]


def _read(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ZoomakeError(f"{path}: cannot read recipe ({exc.strerror})") from None


def _decode(path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ZoomakeError(f"{path}: recipe is not UTF-8 (byte {exc.start})") from None


def validate_recipe_file(path: str | os.PathLike) -> list[str]:
    """All problems of one recipe file, one line each (empty list: the recipe is valid)."""
    try:
        text = _decode(path, _read(path))
    except ZoomakeError as exc:
        return [str(exc)]
    return _check_text(path, text)[1]


def _resolve(node: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}


def _complete(node: dict, value):
    """``value`` with schema defaults filled in and integral floats of integer fields made
    ints (JSON Schema accepts ``samples: 3.0`` as an integer; ``range()`` would not)."""
    node = _resolve(node)
    if node.get("type") == "integer" and isinstance(value, float):
        return int(value)
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key in list(value):
            sub = props.get(key, extra)
            if isinstance(sub, dict):
                value[key] = _complete(sub, value[key])
        for key, sub in props.items():
            sub = _resolve(sub)
            if key not in value and "default" in sub and sub.get("x-default-unless") not in value:
                value[key] = _complete(sub, copy.deepcopy(sub["default"]))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value[:] = [_complete(node["items"], item) for item in value]
    return value


def _load_text(path, text: str) -> dict:
    data, errors = _check_text(path, text)
    if errors:
        raise ZoomakeError("\n".join(errors))
    _complete(schema(), data)
    return data


def load_recipe(path: str | os.PathLike) -> dict:
    """The validated recipe with every default filled in; ZoomakeError lists all problems."""
    return _load_text(path, _decode(path, _read(path)))


def recipe_paths(recipes_dir: str | os.PathLike) -> list[Path]:
    """The recipe files of a zoo directory, sorted by name."""
    base = Path(recipes_dir)
    try:
        names = sorted(e.name for e in os.scandir(base) if e.name.endswith(RECIPE_SUFFIX))
    except OSError as exc:
        raise ZoomakeError(f"{base}: cannot list recipes ({exc.strerror})") from None
    return [base / n for n in names]
