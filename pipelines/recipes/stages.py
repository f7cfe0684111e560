"""The parts of a recipe each build stage reads: doit ``config_changed`` values.

A task must rerun when, and only when, something it reads changes. Each value is canonical
JSON (sorted keys, ``1.0`` written ``1``) of exactly the recipe sub-tree the stage uses, with
URLs dropped where a sha256 pins the content (a moved URL is the same file).
"""

from __future__ import annotations

import json

from pipelines.errors import ZoomakeError


def _normalize_numbers(value):
    # `mean: 127` and `mean: 127.0` are the same recipe: they must give the same config.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalize_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize_numbers(v) for v in value]
    return value


def canonical_json(value) -> str:
    """Deterministic JSON (sorted keys, no whitespace, 1.0 written 1): equal data -> equal string."""
    return json.dumps(
        _normalize_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def subtree(recipe: dict, *keys: str | tuple[str, ...]) -> str:
    """Canonical JSON of ``{key: recipe[key]}``; a tuple key is a path (``("targets", "onnx")``)."""
    picked = {}
    for key in keys:
        path = (key,) if isinstance(key, str) else tuple(key)
        value = recipe
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        picked["/".join(path)] = value
    return canonical_json(picked)


def recipe_files(recipe: dict) -> dict[str, dict]:
    """Every file a recipe fetches, ``{role: {url, sha256, size}}``; roles are JSON pointers
    without the leading slash (``source/prototxt``, ``inputs/data/preprocess/mean_file``,
    ``verify/files/0``)."""
    from pipelines.recipes import checks as recipe_checks

    return recipe_checks.recipe_files(recipe)


def _without_urls(value):
    # A moved URL with the same sha256 is the same file: it must not rebuild anything.
    if isinstance(value, dict):
        return {
            k: _without_urls(v) for k, v in value.items() if k != "url" or "sha256" not in value
        }
    if isinstance(value, list):
        return [_without_urls(v) for v in value]
    return value


def stage_config(recipe: dict, stage: str, target: str | None = None) -> str:
    """Canonical JSON of exactly what ``stage`` reads from the recipe (besides its files).

    stage: ``fetch`` (file list), ``convert`` (source, inputs, outputs), ``optimize``
    (pass list; null = default passes), ``export`` (the target block), ``reference``
    (framework, inputs, outputs, the sample set, the reference runtime asked for), ``verify``
    (verify block, inputs, outputs, task and the target's precision).
    """
    if stage == "fetch":
        return canonical_json({"files": recipe_files(recipe)})
    if stage == "convert":
        return canonical_json(
            _without_urls({k: recipe.get(k) for k in ("source", "inputs", "outputs")})
        )
    if stage == "optimize":
        return canonical_json({"optimize": recipe.get("optimize")})
    if stage == "reference":
        return canonical_json(_without_urls(_reference_view(recipe)))
    if stage in ("export", "verify"):
        if target not in recipe.get("targets", {}):
            raise ZoomakeError(
                f"stage {stage}: unknown target {target!r} (recipe has {', '.join(recipe.get('targets', {}))})"
            )
        block = recipe["targets"][target]
        if stage == "export":
            return canonical_json({"target": block})
        return canonical_json(_without_urls(_verify_view(recipe, block.get("precision", "fp32"))))
    raise ValueError(f"unknown stage {stage!r}")


def _reference_view(recipe: dict) -> dict:
    # What running the source model on the samples reads: the source (framework; its files are
    # file_dep), the inputs (shapes, layouts, preprocessing), the cut points and the sample set
    # (count, seed, files) and the reference runtime asked for; never targets or tolerances.
    verify = recipe.get("verify", {})
    return {
        "source": {"framework": (recipe.get("source") or {}).get("framework")},
        "verify": {k: verify.get(k) for k in ("samples", "seed", "files", "reference")},
        **{k: recipe.get(k) for k in ("inputs", "outputs")},
    }


def _verify_view(recipe: dict, precision: str) -> dict:
    # Only what verifying a target of this precision reads: the other precision's
    # tolerances, or top-k for a detector, must not rerun it.
    verify = recipe.get("verify", {})
    picked = {k: verify.get(k) for k in ("samples", "seed", "files", "reference")}
    picked["tolerance"] = verify.get("tolerances", {}).get(precision)
    picked["output_tolerances"] = {
        name: per[precision] for name, per in verify.get("outputs", {}).items() if precision in per
    }
    if recipe.get("task") == "classification":
        picked["topk"] = verify.get("topk")
    return {
        "verify": picked,
        "precision": precision,
        **{k: recipe.get(k) for k in ("task", "inputs", "outputs")},
    }
