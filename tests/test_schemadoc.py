"""pipelines.recipes.schemadoc: the checked-in recipe reference is the one generated from the schema."""

from __future__ import annotations

from pipelines.recipes import load as recipes
from pipelines.recipes import schemadoc


def test_checked_in_reference_is_up_to_date(repo_root):
    generated = schemadoc.render_reference()
    checked_in = (repo_root / "docs" / "recipe-reference.md").read_text(encoding="utf-8")
    assert checked_in == generated, (
        "docs/recipe-reference.md is stale: run python -m pipelines.recipes.schemadoc"
    )


def test_every_property_is_documented():
    # The style rule: every option has a type and a description (defaults where sensible).
    text = schemadoc.render_reference()
    missing = []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        for key, sub in node.get("properties", {}).items():
            resolved = schemadoc._resolve(sub)[0]
            if not resolved.get("description"):
                missing.append(f"{path}/{key}")
            if f"| `{key}` |" not in text:
                missing.append(f"{path}/{key} (not in the reference)")
        for key in ("additionalProperties", "items"):
            if isinstance(node.get(key), dict):
                walk(schemadoc._resolve(node[key])[0], f"{path}/{key}")
        for key, sub in node.get("properties", {}).items():
            walk(schemadoc._resolve(sub)[0], f"{path}/{key}")

    schema = recipes.schema()
    walk(schema, "")
    for name, node in schema["$defs"].items():
        walk(node, f"$defs/{name}")
    assert missing == []


def test_every_object_forbids_unknown_properties():
    loose = []

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node:
                loose.append(path)
            for key, sub in node.items():
                walk(sub, f"{path}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{path}/{i}")

    walk(recipes.schema(), "")
    assert loose == []
