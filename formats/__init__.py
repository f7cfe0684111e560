"""The format registry: one module per model format, each declaring everything zoomake knows
about that format in one place (see ``docs/formats.md``, "Adding a format").

Where and why
-------------
- The format modules live in this top-level ``formats/`` package, beside ``converters/`` and
  ``pipelines/``: a format is the glue between the two (its converter functions live in
  ``converters/<format>/``, the build and the CLI in ``pipelines/``), and adding one must not
  touch ``pipelines/``. Layering: ``pipelines`` -> ``formats`` -> ``converters``. The built-in
  runtimes (onnxruntime, OpenVINO, OpenCV, the Caffe side runtime) are implemented in
  ``pipelines/runtimes*`` today; their format modules import them inside the runner functions
  only, so the only arrow back up is lazy and names a concrete runtime. A new format ships its
  runner in its own ``converters/<format>/`` package (subclassing ``formats.runner.Runner``)
  and needs nothing from ``pipelines``.
- Registration is explicit: ``MODULES`` below lists the format modules (one line per format),
  imported on first lookup. Never discovered by scanning the filesystem (an installed zoomake
  and a checkout must see the same formats), and imported by name, not with an ``import``
  statement, so a stage's code fingerprint (``pipelines.build.fingerprints``) does not swallow every
  format: the build adds, per task, the closure of the functions of the formats that task uses
  (``fingerprint_entries``).
- A name registered twice is an error at import (like ``converters.op_registry``); an unknown
  name is one line naming the known ones (``ConversionError``).

Everything that lists formats is derived from here: the recipe schema's ``source.framework``
and ``target.format`` enums and per-framework file rules (``schema_fragment``, checked equal to
``schemas/recipe.schema.json`` by a test, rewritten by ``python -m formats --write-schema``),
the CLI's ``--to``/``-sf`` choices, source flags and output suffixes, the artifact file lists of
tasks/verify/report, the runners, the optional extras and the formats table of
``docs/supported_layers.md``.
"""

from __future__ import annotations

import importlib

from converters.errors import ConversionError
from formats.base import Format, Role, Source, Target

__all__ = ["MODULES", "Format", "Role", "Source", "Target"]

# One line per format: the module that calls ``register``. Order = the order of every generated
# list (schema enums, CLI choices, docs); keep the built-in ones first.
MODULES = (
    "formats.caffe",
    "formats.onnx",
    "formats.openvino",
    "formats.pytorch",
    "formats.mxnet",
)

_REGISTRY: dict[str, Format] = {}
_loaded = False


def register(fmt: Format) -> Format:
    """Add ``fmt``; a second format of the same name (or claiming the same CLI suffix or source
    role) is refused."""
    if fmt.name in _REGISTRY:
        raise RuntimeError(f"format {fmt.name!r} registered twice")
    if fmt.target and not fmt.target.files[0].endswith(fmt.target.suffix):
        raise RuntimeError(
            f"format {fmt.name!r}: the main artifact file {fmt.target.files[0]} (the first of "
            f"Target.files) must have the output suffix {fmt.target.suffix}"
        )
    if fmt.source:
        names = {r.name for r in fmt.source.roles}
        named = [*fmt.source.one_of, *(n for r in fmt.source.roles for n in r.needs)]
        unknown = [n for n in named if n not in names]
        if unknown:
            raise RuntimeError(f"format {fmt.name!r}: one_of/needs name no role {unknown[0]!r}")
        loose = [
            r.name for r in fmt.source.roles if any(n not in fmt.source.one_of for n in r.needs)
        ]
        if loose:
            raise RuntimeError(
                f"format {fmt.name!r}: role {loose[0]!r} needs roles outside Source.one_of"
            )
    for other in _REGISTRY.values():
        if fmt.target and other.target and fmt.target.suffix == other.target.suffix:
            raise RuntimeError(
                f"format {fmt.name!r}: output suffix {fmt.target.suffix} is taken by "
                f"format {other.name!r}"
            )
        if fmt.source and other.source:
            clash = {r.name for r in fmt.source.roles} & {r.name for r in other.source.roles}
            if clash:
                raise RuntimeError(
                    f"format {fmt.name!r}: source role {sorted(clash)[0]!r} is taken by "
                    f"format {other.name!r}"
                )
    _REGISTRY[fmt.name] = fmt
    return fmt


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in MODULES:
            importlib.import_module(module)


def all_formats() -> list[Format]:
    _load()
    return list(_REGISTRY.values())


def sources() -> list[Format]:
    return [f for f in all_formats() if f.source is not None]


def targets() -> list[Format]:
    return [f for f in all_formats() if f.target is not None]


def source_names() -> list[str]:
    return [f.name for f in sources()]


def target_names() -> list[str]:
    return [f.name for f in targets()]


def get(name: str, kind: str | None = None) -> Format:
    """The format ``name``; with ``kind`` ("source"/"target") it must be one. Unknown: one line
    naming the known ones."""
    _load()
    fmt = _REGISTRY.get(name)
    if kind == "source" and (fmt is None or fmt.source is None):
        raise ConversionError(
            f"source framework '{name}' is not supported ({', '.join(source_names())})"
        )
    if kind == "target" and (fmt is None or fmt.target is None):
        raise ConversionError(
            f"target format '{name}' is not supported ({', '.join(target_names())})"
        )
    if fmt is None:
        raise ConversionError(f"unknown format '{name}' ({', '.join(_REGISTRY)})")
    return fmt


def source(name: str) -> Source:
    return get(name, "source").source


def target(name: str) -> Target:
    return get(name, "target").target


def artifact_names(fmt: str) -> list[str]:
    """The artifact files a ``fmt`` target writes (``[]`` for an unknown one: the recipe's
    validation refuses it with its own line)."""
    _load()
    found = _REGISTRY.get(fmt)
    return list(found.target.files) if found and found.target else []


def by_suffix(suffix: str) -> str | None:
    """The target format whose main artifact file has ``suffix`` (``.xml`` -> openvino)."""
    return next((f.name for f in targets() if f.target.suffix == suffix.lower()), None)


def suffixes() -> dict[str, str]:
    """``{suffix: format}`` of the CLI outputs, e.g. ``{".onnx": "onnx", ...}``."""
    return {f.target.suffix: f.name for f in targets()}


_PARTS = {"to_onnx": "source", "reference": "source", "from_onnx": "target", "runner": "target",
          "files": "target"}  # fmt: skip


def fingerprint_entries(*uses: tuple[str, str]) -> list[tuple[str, str | None]]:
    """``[(module, function)]`` whose import closures a task's code fingerprint must add.

    ``uses`` are ``(what, format name)`` pairs, ``what`` one of ``to_onnx`` and ``reference``
    (of a source), ``from_onnx``, ``runner`` and ``files`` (of a target: its declaration only,
    function ``None``). Unknown names are skipped: the task fails on them with its own line."""
    _load()
    entries = []
    for what, name in uses:
        fmt = _REGISTRY.get(name or "")
        part = getattr(fmt, _PARTS[what], None) if fmt else None
        if part is None:
            continue
        fn = getattr(part, what) if what != "files" else None
        module = fn.__module__ if fn is not None else type(fmt).__module__
        if fn is None:  # the module that registered the format declares its files
            module = next(
                (f.__module__ for f in part.functions() if f.__module__.startswith("formats.")),
                module,
            )
        entries.append((module, fn.__name__ if fn is not None else None))
    return entries


def extras() -> dict[str, tuple[str, str]]:
    """``{import name: (pip extra, what needs it)}`` for ``converters.optional``."""
    out = {}
    for f in all_formats():
        for module in f.packages:
            out[module] = (f.extra or module, f.purpose)
    return out


_KIND_NOTE = {"file": "", "tree": " (files with paths)", "value": " (value)"}


def _source_cell(src: Source) -> str:
    def shown(r: Role) -> str:
        return f"`{r.name}`{_KIND_NOTE[r.kind]}"

    if not src.one_of:
        return " + ".join(shown(r) + ("" if r.required else " (optional)") for r in src.roles)
    one = [shown(r) for r in src.roles if r.name in src.one_of]
    rest = [shown(r) for r in src.roles if not r.required and r.name not in src.one_of]
    cell = " + ".join([shown(r) for r in src.roles if r.required] + ["one of " + " / ".join(one)])
    return cell + (f"; optional: {', '.join(rest)}" if rest else "")


def markdown() -> str:
    """The formats table of ``docs/supported_layers.md``."""
    rows = []
    for f in all_formats():
        src = _source_cell(f.source) if f.source else "—"
        tgt = (
            " + ".join(f"`{n}`" for n in f.target.files)
            + f" ({', '.join(f.target.precisions)}; `-o x{f.target.suffix}`)"
            if f.target
            else "—"
        )
        extra = f'`pip install "zoomake[{f.extra}]"`' if f.extra else "core"
        rows.append(f"| `{f.name}` | {f.title} | {src} | {tgt} | {extra} |")
    return (
        "## Formats\n\n"
        "Generated from the format registry (`formats/`, see `docs/formats.md`).\n\n"
        "| format | what | as a source: recipe files | as a target: artifact files | needs |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def schema_fragment() -> dict:
    """The parts of the recipe schema the registry owns: ``source.framework`` enum, the source
    file roles (``properties``), the per-framework required/forbidden roles (``allOf``), and
    ``target.format`` enum (see ``formats.schema``)."""
    from formats.schema import fragment

    return fragment(all_formats())
