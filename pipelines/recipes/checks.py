"""Recipe rules a JSON Schema cannot express (they relate one field to another).

Each check returns ``(json_pointer, message)`` pairs and tolerates structurally invalid
recipes (the schema reports those): it only looks at values of the expected type.
"""

from __future__ import annotations


def escape_pointer(key: str) -> str:
    # Same as recipe_yaml.escape_pointer; not imported from there because recipe_files() runs
    # while doit loads tasks and must not pull in the YAML library.
    return key.replace("~", "~0").replace("/", "~1")


def _is_shape(shape) -> bool:
    return (
        isinstance(shape, list)
        and len(shape) == 4
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    )


def _is_file(ref) -> bool:
    return isinstance(ref, dict) and isinstance(ref.get("url"), str)


def _plain(ref: dict) -> dict:
    # A file outside a tree has no path: the schema refuses a stray one, and the checks (which
    # run on refused recipes too) must not take the file for a tree's (``tree_of``).
    return ref if "path" not in ref else {k: v for k, v in ref.items() if k != "path"}


def recipe_files(recipe: dict) -> dict[str, dict]:
    """``{role: file ref}`` for every file the recipe fetches, in a fixed order; a source
    tree's files are ``source/<tree>/<N>`` and carry their ``path`` (no other file does)."""
    files: dict[str, dict] = {}
    source = recipe.get("source")
    if isinstance(source, dict):
        for role, kind in _source_roles():
            value = source.get(role)
            if kind == "file" and _is_file(value):
                files[f"source/{role}"] = _plain(value)
            elif kind == "tree" and isinstance(value, list):
                for i, ref in enumerate(value):
                    if _is_file(ref) and isinstance(ref.get("path"), str):
                        files[f"source/{role}/{i}"] = ref
    inputs = recipe.get("inputs")
    if isinstance(inputs, dict):
        for name, spec in inputs.items():
            pre = spec.get("preprocess") if isinstance(spec, dict) else None
            if isinstance(pre, dict) and _is_file(pre.get("mean_file")):
                files[f"inputs/{escape_pointer(name)}/preprocess/mean_file"] = _plain(
                    pre["mean_file"]
                )
    verify = recipe.get("verify")
    if isinstance(verify, dict) and isinstance(verify.get("files"), list):
        for i, ref in enumerate(verify["files"]):
            if _is_file(ref):
                files[f"verify/files/{i}"] = _plain(ref)
    return files


def tree_of(role: str) -> str:
    """The tree of a source tree's file role ``source/<tree>/<N>`` (``source/code/3`` ->
    ``code``), as ``recipe_files`` names them; anything else is one clear error, not an
    ``IndexError`` deep in a build."""
    parts = role.split("/")
    if len(parts) != 3 or parts[0] != "source" or not parts[1] or not parts[2].isdigit():
        from pipelines.errors import ZoomakeError

        raise ZoomakeError(
            f"expected a source tree file role 'source/<tree>/<N>' (as recipe_files names "
            f"them), got '{role}'"
        )
    return parts[1]


def _source_roles() -> list[tuple[str, str]]:
    """``(name, kind)`` of every source role that fetches files (``file`` and ``tree``) of
    every format (``formats``), in registry order."""
    from formats import sources

    return [(r.name, r.kind) for f in sources() for r in f.source.roles if r.kind != "value"]


def fetched_name(role: str, ref: dict) -> str:
    """Where ``recipe_files``' file ``role`` lands under ``build/<id>/source/``: its URL's base
    name, or for a tree's file ``<tree role>/<path>``."""
    if "path" in ref:
        return f"{tree_of(role)}/{ref['path']}"
    from pipelines.fetch.cache import url_basename  # urllib is slow to import

    return url_basename(ref["url"])


def _check_input(name: str, spec: dict, framework) -> list[tuple[str, str]]:
    from formats import sources

    where = f"/inputs/{escape_pointer(name)}"
    out: list[tuple[str, str]] = []
    layout = spec.get("layout", "NCHW")
    fmt = next((f for f in sources() if f.name == framework), None)
    if fmt is not None and layout not in fmt.source.layouts:
        expected = " or ".join(fmt.source.layouts)
        out.append(
            (f"{where}/layout", f"expected {expected} ({fmt.short} inputs are {expected}), "
             f"got '{layout}'")
        )  # fmt: skip
    shape = spec.get("shape")
    pre = spec.get("preprocess")
    if not _is_shape(shape) or not isinstance(pre, dict):
        return out
    channels = shape[3] if layout == "NHWC" else shape[1]
    for key in ("mean", "scale", "std"):
        values = pre.get(key)
        if isinstance(values, list) and len(values) not in (1, channels):
            out.append(
                (
                    f"{where}/preprocess/{key}",
                    f"expected one number or {channels} values (one per channel of shape {shape}), "
                    f"got {len(values)} values",
                )
            )
    if pre.get("reverse_channels") is True and channels != 3:
        out.append(
            (
                f"{where}/preprocess/reverse_channels",
                f"expected false for an input with {channels} channels, got true "
                "(reversing swaps RGB and BGR and needs exactly 3 channels)",
            )
        )
    return out


def _check_file_names(recipe: dict) -> list[tuple[str, str]]:
    # All fetched files land in build/<id>/source/, side by side or (a source tree's) at their
    # path under <tree role>/: each URL must end in a plain file name (a '..%2F' would write
    # outside it; the mirror is searched by that name) and no two files may land in one place.
    from pipelines.fetch.cache import name_problem  # urllib is slow to import

    out = []
    first: dict[str, str] = {}  # landed name -> the pointer of its field (url or path)
    reported: set[tuple] = set()
    for role, ref in recipe_files(recipe).items():
        problem = name_problem(ref["url"])
        if problem:
            out.append(
                (
                    f"/{role}/url",
                    f"expected a URL ending in a plain file name, got '{ref['url']}': {problem}",
                )
            )
            continue
        name = fetched_name(role, ref)
        here = f"/{role}/{'path' if 'path' in ref else 'url'}"
        if name in first:
            what = "a file name" if here.endswith("/url") else "a path"
            out.append(
                (
                    here,
                    f"expected {what} different from #{first[name]}, got '{name}' again "
                    f"(both would be build/<id>/source/{name})",
                )
            )
        # A plain file named like a tree's directory (or one of its directories): build/<id>/
        # source/<name> cannot be a file and a directory.
        dirs = ["/".join(name.split("/")[:n]) for n in range(1, name.count("/") + 1)]
        clash = next((first[d] for d in dirs if d in first), None)
        clash = clash or next((f for n, f in first.items() if n.startswith(name + "/")), None)
        pair = (role.rsplit("/", 1)[0] if "path" in ref else role, clash)
        if clash is not None and pair not in reported:  # once per tree, not once per file
            reported.add(pair)
            out.append(
                (
                    here,
                    f"expected a place apart from #{clash}, got '{name}': "
                    "build/<id>/source/ cannot hold a file and a directory of one name",
                )
            )
        first.setdefault(name, here)
    return out


def _check_verify_outputs(recipe: dict) -> list[tuple[str, str]]:
    outputs = recipe.get("outputs")
    verify = recipe.get("verify")
    if not isinstance(outputs, list) or not isinstance(verify, dict):
        return []
    overrides = verify.get("outputs")
    if not isinstance(overrides, dict):
        return []
    known = ", ".join(dict.fromkeys(str(o) for o in outputs))
    return [
        (
            f"/verify/outputs/{escape_pointer(name)}",
            f"expected one of the recipe's outputs ({known}), got '{name}'",
        )
        for name in overrides
        if name not in outputs
    ]


def _check_reference(recipe: dict, framework) -> list[tuple[str, str]]:
    verify = recipe.get("verify")
    choice = verify.get("reference") if isinstance(verify, dict) else None
    from formats import sources

    spec = next((f for f in sources() if f.name == framework), None)
    if spec is None or not isinstance(choice, str) or choice in spec.source.references:
        return []  # an unknown framework or choice is the schema's to refuse
    expected = " or ".join(spec.source.references)
    article = "an" if spec.short[:1] in "AEIOU" else "a"
    return [
        (
            "/verify/reference",
            f"expected {expected} for {article} {spec.short} source "
            f"(run by {spec.source.reference_runtime}), got '{choice}'",
        )
    ]


def check(recipe: dict) -> list[tuple[str, str]]:
    """Cross-field problems of a (possibly schema-invalid) recipe."""
    out: list[tuple[str, str]] = []
    source = recipe.get("source")
    framework = source.get("framework") if isinstance(source, dict) else None
    inputs = recipe.get("inputs")
    if isinstance(inputs, dict):
        for name, spec in inputs.items():
            if isinstance(spec, dict):
                out.extend(_check_input(name, spec, framework))
    out.extend(_check_file_names(recipe))
    out.extend(_check_verify_outputs(recipe))
    out.extend(_check_reference(recipe, framework))
    return out
