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
    ``verify/files/0``, and ``source/code/3`` for the files of a source tree, which also carry
    their ``path``)."""
    from pipelines.recipes import checks as recipe_checks

    return recipe_checks.recipe_files(recipe)


def fetched_name(role: str, ref: dict) -> str:
    """Where ``recipe_files``' file ``role`` lands under ``build/<id>/source/``."""
    from pipelines.recipes import checks as recipe_checks

    return recipe_checks.fetched_name(role, ref)


def _source_roles(recipe: dict, kinds: tuple[str, ...]) -> list[str]:
    """The source format's role names of ``kinds`` (``formats.base.Role.kind``); none for an
    unknown framework (the schema refuses it)."""
    from formats import sources

    framework = (recipe.get("source") or {}).get("framework")
    fmt = next((f for f in sources() if f.name == framework), None)
    return [r.name for r in fmt.source.roles if r.kind in kinds] if fmt else []


def source_values(recipe: dict) -> dict:
    """The source's parts that are no single pinned file (its ``value`` and ``tree`` roles:
    an entry point, keyword arguments, the list of code files with their paths). They are
    part of the reference and verify views: the reference runs the model they describe."""
    source = recipe.get("source") or {}
    return {k: source[k] for k in _source_roles(recipe, ("value", "tree")) if k in source}


def format_files(recipe: dict, sources: dict) -> dict:
    """What the source format's ``to_onnx`` and ``reference`` get (``formats.base``) from the
    build's fetched files by short role (``pipelines.build.actions``: ``prototxt``,
    ``mean_file:<input>``, ``code/<path>`` for a tree's files, ...): each tree's files replaced
    by the directory they landed in, ``build/<id>/source/<tree role>``, and the recipe's value
    roles added."""
    from pathlib import Path, PurePosixPath

    source = recipe.get("source") or {}
    out = dict(sources)
    for tree in _source_roles(recipe, ("tree",)):
        members = [k for k in sources if k.startswith(tree + "/")]
        for k in members:
            del out[k]
        if members:
            depth = len(PurePosixPath(members[0]).parts) - 1  # code/vision/ssd.py: 2
            out[tree] = Path(sources[members[0]]).parents[depth - 1]
    for name in _source_roles(recipe, ("value",)):
        if name in source:
            out[name] = source[name]
    return out


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
    (framework, the source's values and trees, inputs, outputs, the sample set, the reference
    runtime asked for), ``verify`` (verify block, inputs, outputs, task, the target's precision
    and the source's values and trees).
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
    # The source's values and trees (PyTorch: entry, kwargs, the code files) describe the
    # model that runs; its single files are file_dep. A Caffe or ONNX source has neither, so
    # its view is the framework alone.
    return {
        "source": {"framework": (recipe.get("source") or {}).get("framework"),
                   **source_values(recipe)},
        "verify": {k: verify.get(k) for k in ("samples", "seed", "files", "reference")},
        **{k: recipe.get(k) for k in ("inputs", "outputs")},
    }  # fmt: skip


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
    # measure runs the source model itself for a sample the reference did not store: what
    # describes that model (see _reference_view) is read here too, when the source has any.
    values = source_values(recipe)
    return {
        "verify": picked,
        "precision": precision,
        **{k: recipe.get(k) for k in ("task", "inputs", "outputs")},
        **({"source": values} if values else {}),
    }
