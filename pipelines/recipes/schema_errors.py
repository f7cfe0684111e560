"""Turn jsonschema validation errors into ``(json_pointer, "expected ..., got ...")`` pairs.

jsonschema's own messages are Python reprs ("[1, 3] is too short"); users need to know what
was expected and what they wrote. Human descriptions come from the schema: an ``x-expected``
keyword where the generic wording would be poor (shapes, hashes, URLs), ``x-message`` for
``not`` rules (mutually exclusive options), ``x-why`` for conditional ``required`` rules and
``x-pointer`` to point at the offending property of a ``not`` rule.
"""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING

from pipelines.recipes.yaml import escape_pointer

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

_TYPE_WORDS = {
    "object": "mapping",
    "array": "array",
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "true or false",
    "null": "null",
}
_PY_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def render(value, limit: int = 80) -> str:
    """Show a YAML value compactly, the way a user would recognise it."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, list):
        text = "[" + ", ".join(render(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {render(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_type(value, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _PY_TYPES.get(type_name, object))


def _types(schema: dict) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def describe(schema) -> str:
    """What a (sub)schema accepts, in words."""
    if not isinstance(schema, dict):
        return "nothing" if schema is False else "anything"
    if "x-expected" in schema:
        return schema["x-expected"]
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return render(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(describe(s) for s in schema[key])
    words = " or ".join(_TYPE_WORDS.get(t, t) for t in _types(schema)) or "value"
    low = schema.get("minimum")
    high = schema.get("maximum")
    if low is not None and high is not None:
        return f"{words} between {low} and {high}"
    if low is not None:
        return f"{words} >= {low}"
    if high is not None:
        return f"{words} <= {high}"
    if "exclusiveMinimum" in schema:
        return f"{words} > {schema['exclusiveMinimum']}"
    if schema.get("minLength") == 1:
        return f"non-empty {words}"
    if "pattern" in schema:
        return f"{words} matching {schema['pattern']}"
    return words


def _pointer(path) -> str:
    return "".join("/" + escape_pointer(str(p)) for p in path)


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_properties(error: ValidationError, pointer: str) -> list[tuple[str, str]]:
    schema = error.schema
    known = schema.get("properties", {})
    out = []
    for key in error.instance:
        if key in known:
            continue
        hint = _did_you_mean(key, known)
        if not hint and pointer == "" and key in ("id", "name"):
            hint = " (a recipe's id is its file name; do not repeat it inside)"
        elif not hint:
            hint = " (expected one of " + ", ".join(known) + ")"
        out.append((f"{pointer}/{escape_pointer(key)}", f"unknown property '{key}'{hint}"))
    return out


def _any_of(error: ValidationError, pointer: str) -> list[tuple[str, str]]:
    # Report the branch whose type matches what the user wrote (e.g. the list branch of
    # `mean` for `mean: [1, 'x']`), otherwise "expected A or B".
    for index, branch in enumerate(error.validator_value):
        if any(_is_type(error.instance, t) for t in _types(branch)):
            sub = [e for e in error.context if e.relative_schema_path[0] == index]
            if sub:
                return [pair for e in sub for pair in translate(e)]
    return [(pointer, f"expected {describe(error.schema)}, got {render(error.instance)}")]


def translate(error: ValidationError) -> list[tuple[str, str]]:
    """One jsonschema error -> list of (pointer, message); most errors give one pair."""
    pointer = _pointer(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    got = render(error.instance)
    if "propertyNames" in error.relative_schema_path:
        # jsonschema validates names without extending the path: point at the name itself.
        return [
            (
                f"{pointer}/{escape_pointer(error.instance)}",
                f"expected {describe(schema)}, got {got}",
            )
        ]
    if kind == "required":
        missing = next(
            (p for p in error.validator_value if error.message == f"{p!r} is a required property"),
            error.message,
        )
        why = f" ({schema['x-why']})" if "x-why" in schema else ""
        return [
            (f"{pointer}/{escape_pointer(missing)}", f"missing required property '{missing}'{why}")
        ]
    if kind == "additionalProperties":
        return _unknown_properties(error, pointer)
    if kind in ("anyOf", "oneOf"):
        return _any_of(error, pointer)
    if kind == "not":
        target = schema.get("x-pointer")
        where = f"{pointer}/{escape_pointer(target)}" if target else pointer
        return [(where, schema.get("x-message", f"not allowed: {got}"))]
    if kind == "enum":
        hint = (
            _did_you_mean(error.instance, map(str, error.validator_value))
            if isinstance(error.instance, str)
            else ""
        )
        return [(pointer, f"expected {describe(schema)}, got {got}{hint}")]
    if kind == "uniqueItems":
        seen, dupes = [], []
        for item in error.instance:
            (dupes if item in seen else seen).append(item)
        return [(pointer, f"expected unique items, got {render(dupes[0])} more than once")]
    if kind == "minProperties":
        return [(pointer, f"expected {describe(schema)}, got {got}")]
    if kind is False or kind == "false":
        return [(pointer, f"property not allowed here, got {got}")]
    # type, pattern, minimum/maximum, minItems/maxItems, minLength, const, ...
    return [(pointer, f"expected {describe(schema)}, got {got}")]
