"""The recipe schema's format parts, generated from the registry.

``schemas/recipe.schema.json`` stays the one schema file (editors, ``docs/recipe-reference.md``
and the recipe cache read it); the parts listed in ``OWNED`` are the registry's: a test checks
they equal ``fragment()``, and ``python -m formats --write-schema`` rewrites exactly those values
in place (the rest of the file, its hand formatting included, is left as it is).
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "recipe.schema.json"

OWNED = (
    ("$defs", "source", "properties"),
    ("$defs", "source", "allOf"),
    ("$defs", "target", "properties", "format", "enum"),
    ("$defs", "target", "properties", "format", "description"),
    ("$defs", "target", "properties", "precision", "enum"),
    ("$defs", "verify", "properties", "reference", "enum"),
)


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _a(short: str) -> str:
    return ("an " if short[:1] in "AEIOU" else "a ") + short


def _needs(fmt, quote: str = "") -> str:
    """``a and b`` (its required roles), or ``one of a or b`` (its ``one_of`` roles, or all its
    roles when none is required)."""
    roles = [f"{quote}{r}{quote}" for r in _alternatives(fmt)]
    required = [f"{quote}{r.name}{quote}" for r in fmt.source.roles if r.required]
    return _and(required) if required else "one of " + _or(roles)


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _alternatives(fmt) -> list[str]:
    return list(fmt.source.one_of) or [r.name for r in fmt.source.roles]


def _property(role) -> dict:
    """A source role's schema: a pinned file, a list of pinned files with paths, or a value."""
    if role.kind == "file":
        return {"$ref": "#/$defs/file", "description": role.description}
    if role.kind == "tree":
        return {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/$defs/tree_file"},
            "description": role.description,
        }
    return {**role.schema, "description": role.description}


def _goes_with(f) -> list[dict]:
    """``not`` rules: a role that ``needs`` some of the ``one_of`` roles, given with another."""
    out = []
    for r in f.source.roles:
        for other in (a for a in f.source.one_of if r.needs and a not in r.needs):
            out.append(
                {
                    "not": {"required": [r.name, other]},
                    "x-pointer": r.name,
                    "x-message": f"'{r.name}' goes with {_or([repr(n) for n in r.needs])}, "
                    f"not with '{other}'",
                }
            )
    return out


def fragment(formats) -> dict:
    """``{owned path: value}`` for ``formats`` (``formats.all_formats()``)."""
    sources = [f for f in formats if f.source]
    targets = [f for f in formats if f.target]
    needs = ", ".join(f"`{f.name}` needs {_needs(f, '`')}" for f in sources)
    properties = {
        "framework": {
            "type": "string",
            "enum": [f.name for f in sources],
            "description": f"Framework of the original model; {needs}.",
        }
    }
    for f in sources:
        for r in f.source.roles:
            properties[r.name] = _property(r)
    rules = []
    for f in sources:
        required = [r.name for r in f.source.roles if r.required]
        others = [(o, r.name) for o in sources if o is not f for r in o.source.roles]
        # No role always needed (PyTorch: an archive, a TorchScript file or code): exactly one,
        # as "at least one" (anyOf; its error says x-expected) and "no two" (not rules).
        one = [] if required else _alternatives(f)
        pairs = [(a, b) for i, a in enumerate(one) for b in one[i + 1 :]]
        rules.append(
            {
                "if": {"required": ["framework"], "properties": {"framework": {"const": f.name}}},
                "then": {
                    "required": required,
                    "x-why": f"framework {f.name} needs {_needs(f)}",
                    **(
                        {
                            "anyOf": [{"required": [r]} for r in one],
                            "x-expected": f"one of {_or(one)} (framework {f.name})",
                        }
                        if one
                        else {}
                    ),
                    "allOf": [
                        {
                            "not": {"required": [a, b]},
                            "x-pointer": b,
                            "x-message": f"'{a}' and '{b}' exclude each other (framework "
                            f"{f.name} takes one of {_or(one)})",
                        }
                        for a, b in pairs
                    ]
                    + _goes_with(f)
                    + [
                        {
                            "not": {"required": [role]},
                            "x-pointer": role,
                            "x-message": f"'{role}' is not allowed with framework {f.name} "
                            f"(use 'framework: {o.name}' for {_a(o.short)} source)",
                        }
                        for o, role in others
                    ],
                },
            }
        )
    described = ", ".join(f"`{f.name}` ({' + '.join(f.target.files)})" for f in targets)
    precisions, references = [], []
    for f in targets:
        precisions += [p for p in f.target.precisions if p not in precisions]
    for f in sources:
        references += [r for r in f.source.references if r not in references]
    return {
        OWNED[0]: properties,
        OWNED[1]: rules,
        OWNED[2]: [f.name for f in targets],
        OWNED[3]: f"Artifact format: {described}.",
        OWNED[4]: precisions,
        OWNED[5]: references,
    }


def current(schema: dict) -> dict:
    """The owned values as ``schema`` has them (``None`` where a path is missing)."""
    out = {}
    for path in OWNED:
        node = schema
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        out[path] = node
    return out


def differences(schema: dict, formats) -> list[str]:
    """One line per owned part of ``schema`` that is not what the registry generates."""
    want = fragment(formats)
    have = current(schema)
    return [
        f"recipe schema {'/'.join(path)}: expected {json.dumps(want[path])}, "
        f"found {json.dumps(have[path])}"
        for path in OWNED
        if want[path] != have[path]
    ]


# -- rewriting owned values in place -------------------------------------------------------------
def _span(text: str, path: tuple[str, ...], pos: int = 0) -> tuple[int, int]:
    """Character span of the value at ``path`` in the JSON ``text`` (value starting at ``pos``)."""
    decoder = json.JSONDecoder()
    ws = " \t\r\n"
    while text[pos] in ws:
        pos += 1
    if not path:
        _, end = decoder.raw_decode(text, pos)
        return pos, end
    if text[pos] != "{":
        raise ValueError(f"no object at {'/'.join(path)}")
    pos += 1
    while True:
        while text[pos] in ws + ",":
            pos += 1
        if text[pos] == "}":
            raise KeyError("/".join(path))
        key, pos = decoder.raw_decode(text, pos)
        while text[pos] in ws + ":":
            pos += 1
        if key == path[0]:
            return _span(text, path[1:], pos)
        _, pos = decoder.raw_decode(text, pos)


def _dump(value, indent: int, width: int = 100) -> str:
    """JSON in the schema file's style: on one line when it fits, else one item per line."""
    flat = json.dumps(value, ensure_ascii=False)
    if indent + len(flat) <= width or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list):
        items = [pad + _dump(v, indent + 2, width) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = [
        f"{pad}{json.dumps(k)}: " + _dump(v, indent + 2, width - len(json.dumps(k)) - 2)
        for k, v in value.items()
    ]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def rewrite(text: str, formats) -> str:
    """``text`` (the schema file) with every owned value that differs replaced."""
    want = fragment(formats)
    have = current(json.loads(text))
    for path in sorted(OWNED, key=lambda p: -_span(text, p)[0] if have[p] is not None else 0):
        if want[path] == have[path]:
            continue
        if have[path] is None:
            raise KeyError(f"recipe schema has no {'/'.join(path)} to rewrite")
        start, end = _span(text, path)
        indent = start - text.rfind("\n", 0, start) - 1
        line_start = text.rfind("\n", 0, start) + 1
        indent = len(text[line_start:start]) - len(text[line_start:start].lstrip())
        text = text[:start] + _dump(want[path], indent) + text[end:]
    return text


def write(formats, path: Path = SCHEMA) -> bool:
    """Rewrite the schema's owned parts; True when something changed."""
    from converters.io import atomic_output

    text = path.read_text(encoding="utf-8")
    new = rewrite(text, formats)
    if new == text:
        return False
    with atomic_output(path) as tmp:
        Path(tmp).write_text(new, encoding="utf-8")
    return True
