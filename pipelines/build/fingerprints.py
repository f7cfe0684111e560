"""Code fingerprints: the import closure of what a stage runs, read from the source with ``ast``.

A stage's fingerprint covers every project file (``converters/``, ``formats/``, ``pipelines/``)
its action can reach through imports (and, per task, the functions of the formats it uses, which
it finds in the ``formats`` registry by name: ``fingerprint(extra=...)``), plus the versions of
the third-party distributions those files import (onnx, onnxruntime, openvino, opencv, numpy,
...). Nothing is kept by hand, so a new helper is covered the day it is imported, and a file no
stage imports reruns nothing.

Reachability is by name, one level finer than whole modules: ``from m import f`` follows ``f``
and the functions and classes of ``m`` that ``f`` names (plus everything ``m`` imports at
module level, which runs when ``m`` is imported, e.g. handler registries); ``import m`` or a
module imported as a name follows all of ``m``. Imports inside functions count (the code base
imports lazily). The entry module (``pipelines/build/actions.py``) counts only the source of the action
and of the helpers and module-level constants it names, so editing another stage's action
reruns nothing (and the task creators, in ``pipelines/build/tasks.py``, are no stage's code).

Files a module names in a string literal (``"side_runners"``, a directory of runner scripts other
Pythons execute) count as code of that module. A literal naming a package beside it (``"build"``
or ``"recipes"`` next to ``pipelines/build/``) does not: a package is code, reached through its
imports like any other.

An import line marked ``# fingerprint: ignore`` (with the reason beside it) is not followed:
for a library consulted only to refuse input (``max_opset`` asks onnxruntime which opsets it
loads), whose upgrade cannot change an artifact.

Parsing ~100 files costs ~100 ms, so each file's analysis is cached by (mtime, size, inode) in
``<build>/.cache/code-closure.json``; a no-op ``doit`` then costs one ``stat`` per file.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
from pathlib import Path

PROJECT = ("converters", "formats", "pipelines")
IGNORE_MARK = "# fingerprint: ignore"
DATA_SUFFIXES = (".proto",)  # files read at run time beside a package's modules
_CACHE_VERSION = 6
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class Scanner:
    """Per-file analyses of the project under ``root`` (cached in ``cache_file``)."""

    def __init__(self, root: Path, cache_file: Path | None = None):
        self.root = Path(root)
        self.cache_file = cache_file
        self.cache: dict = {}
        self.dirty = False
        if cache_file is not None:
            try:
                data = json.loads(Path(cache_file).read_text(encoding="utf-8"))
                if data.get("version") == _CACHE_VERSION:
                    self.cache = data["files"]
            except (OSError, ValueError, KeyError, AttributeError):
                self.cache = {}

    def save(self) -> None:
        if not self.dirty or self.cache_file is None:
            return
        from converters.io import atomic_output, sweep_temporaries

        try:
            sweep_temporaries(self.cache_file)  # a killed run's (see pipelines.recipes.cache)
            with atomic_output(self.cache_file) as tmp:
                tmp.write_text(json.dumps({"version": _CACHE_VERSION, "files": self.cache}))
        except OSError:
            pass  # a cache: the next run recomputes
        self.dirty = False

    def module_file(self, name: str) -> Path | None:
        if name.split(".")[0] not in PROJECT:
            return None
        base = self.root.joinpath(*name.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    def signature(self, rel: str) -> list[int] | None:
        try:
            st = os.stat(self.root / rel)
        except OSError:
            return None
        return [st.st_mtime_ns, st.st_size, st.st_ino]

    def info(self, path: Path) -> dict:
        rel = path.relative_to(self.root).as_posix()
        sig = self.signature(rel)
        hit = self.cache.get(rel)
        if hit and hit["sig"] == sig:
            return hit
        data = path.read_bytes()
        hit = {"sig": sig, "sha": hashlib.sha256(data).hexdigest()}
        if path.suffix == ".py":
            hit.update(_analyse(data.decode("utf-8"), self._package(path)))
        self.cache[rel] = hit
        self.dirty = True
        return hit

    def _package(self, path: Path) -> str:
        parts = list(path.relative_to(self.root).with_suffix("").parts)
        return ".".join(parts if parts[-1] == "__init__" and parts.pop() else parts[:-1])


def _imports(node: ast.AST, package: str, lines: list[str]) -> list[list]:
    """``[module, name-or-None]`` for every import statement under ``node``."""
    found = []
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Import | ast.ImportFrom):
            continue
        if IGNORE_MARK in lines[sub.lineno - 1]:
            continue
        if isinstance(sub, ast.Import):
            found += [[a.name, None] for a in sub.names]
            continue
        base = sub.module or ""
        if sub.level:
            parts = package.split(".")
            parts = parts[: len(parts) - sub.level + 1]
            base = ".".join(p for p in [*parts, base] if p)
        found += [[base, a.name] for a in sub.names if a.name != "*"] or [[base, None]]
    return found


def _analyse(source: str, package: str) -> dict:
    tree = ast.parse(source)
    lines = source.splitlines()
    top, defs, assigns = [], {}, {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(stmt) if isinstance(n, ast.Attribute)}
            defs[stmt.name] = {
                "imports": _imports(stmt, package, lines),
                "names": sorted(names),
                "sha": hashlib.sha256(
                    (ast.get_source_segment(source, stmt) or "").encode()
                ).hexdigest(),
            }
        else:
            top += _imports(stmt, package, lines)
            if isinstance(stmt, ast.Assign | ast.AnnAssign):  # a constant a function may read
                seg = (ast.get_source_segment(source, stmt) or "").encode()
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for name in (n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)):
                    assigns[name] = hashlib.sha256(seg).hexdigest()
    # Plain names in string literals ("side_runners"): checked against the module's directory
    # when the closure is taken, so a runner script or data file it names is covered.
    literals = sorted(
        {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and 0 < len(n.value) < 64
            and _PLAIN_NAME.fullmatch(n.value)
        }
    )
    return {"top": top, "defs": defs, "assigns": assigns, "literals": literals}


def closure(scanner: Scanner, entry_module: str, entry: str) -> tuple[dict[str, str], set[str]]:
    """``({project file: sha256}, {third-party top-level import names})`` reached from the
    function ``entry`` of ``entry_module`` (see the module docstring).

    The answer is cached with the stat signature of every file it read: while none of them
    changed (an edit that adds an import changes the file that has it), it is still right.
    """
    slot = f":closure:{entry_module}:{entry}"
    hit = scanner.cache.get(slot)
    if hit and all(scanner.signature(rel) == sig for rel, sig in hit["sigs"].items()):
        return hit["files"], set(hit["third"])
    files, third = _closure(scanner, entry_module, entry)
    sigs = {rel: scanner.signature(rel) for rel in files if ":" not in rel}
    sigs[scanner.module_file(entry_module).relative_to(scanner.root).as_posix()] = None
    for rel in sigs:
        sigs[rel] = scanner.signature(rel)
    scanner.cache[slot] = {"sigs": sigs, "files": files, "third": sorted(third)}
    scanner.dirty = True
    return files, third


def _closure(scanner: Scanner, entry_module: str, entry: str) -> tuple[dict[str, str], set[str]]:
    files: dict[str, str] = {}
    third: set[str] = set()
    seen: set[tuple[str, str | None]] = set()
    work: list[tuple[str, str | None]] = []

    def want(module: str, name: str | None) -> None:
        path = scanner.module_file(module)
        if path is None:
            top = module.split(".")[0]
            if top and top not in PROJECT and top not in sys.stdlib_module_names:
                third.add(top)
            return
        if name is not None:
            sub = f"{module}.{name}"
            if scanner.module_file(sub) is not None:  # ``from pkg import module``
                module, name = sub, None
        if (module, None) in seen or (module, name) in seen:
            return
        seen.add((module, name))
        work.append((module, name))

    root = scanner.info(scanner.module_file(entry_module))
    bound = {imp[1] or imp[0].split(".")[0]: imp for imp in root["top"]}
    todo, done = [entry], set()
    while todo:  # the entry module: only the named functions, and the imports they use
        fn = todo.pop()
        if fn in done or fn not in root["defs"]:
            continue
        done.add(fn)
        d = root["defs"][fn]
        files[f"{entry_module}:{fn}"] = d["sha"]
        for module, name in d["imports"]:
            want(module, name)
        for ref in d["names"]:
            if ref in root["defs"]:
                todo.append(ref)
            elif ref in bound:
                want(*bound[ref])
            elif ref in root["assigns"]:
                files[f"{entry_module}:{ref}"] = root["assigns"][ref]

    while work:
        module, name = work.pop()
        path = scanner.module_file(module)
        info = scanner.info(path)
        files[path.relative_to(scanner.root).as_posix()] = info["sha"]
        parts = module.split(".")
        for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
            want(".".join(parts[:i]), None)
        for data in sorted(path.parent.iterdir()):
            if data.suffix in DATA_SUFFIXES:
                files[data.relative_to(scanner.root).as_posix()] = scanner.info(data)["sha"]
        for literal in info.get("literals", []):  # files it names: run by other Pythons, read
            data = path.parent / literal
            if (data / "__init__.py").is_file():
                continue  # a package, not data: its modules count when they are imported
            for f in sorted(data.rglob("*")) if data.is_dir() else [data] if data.is_file() else []:
                if f.is_file() and "__pycache__" not in f.parts:
                    files[f.relative_to(scanner.root).as_posix()] = scanner.info(f)["sha"]
        for imp in info["top"]:
            want(*imp)
        defs = info["defs"]
        names = list(defs) if name is None else [name]
        done = set()
        while names:
            fn = names.pop()
            if fn in done or fn not in defs:
                continue
            done.add(fn)
            for imp in defs[fn]["imports"]:
                want(*imp)
            names += [r for r in defs[fn]["names"] if r in defs]
    return dict(sorted(files.items())), third


def distribution_versions(scanner: Scanner, import_names: set[str]) -> dict[str, str]:
    """``{distribution: version}`` of the installed distributions providing ``import_names``.

    Mapping import names to distributions reads every installed distribution's metadata
    (~200 ms), so the answer is cached with the mtimes of the ``sys.path`` directories, which
    change whenever a distribution is installed, upgraded or removed.
    """
    key = [[p, os.stat(p).st_mtime_ns] for p in sys.path if p and os.path.isdir(p)]
    names = sorted(import_names)
    slot = ":dists:" + ",".join(names)
    hit = scanner.cache.get(slot)
    if hit and hit["key"] == key and hit["names"] == names:
        return hit["versions"]
    from importlib import metadata

    provided = metadata.packages_distributions()
    versions = {}
    for name in names:
        for dist in provided.get(name, []):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    versions = dict(sorted(versions.items()))
    scanner.cache[slot] = {"key": key, "names": names, "versions": versions}
    scanner.dirty = True
    return versions


def fingerprint(
    scanner: Scanner, entry_module: str, entry: str, extra: list[tuple[str, str | None]] = ()
) -> tuple[str, dict]:
    """``(sha256, what it covers)`` of the code ``entry`` runs and the libraries it imports.

    ``extra``: more ``(module, function)`` entries the stage calls through a lookup the import
    scan cannot see (a format's functions, found in the ``formats`` registry by name): their
    closures are added, and each such module's whole file (its declarations are data the stage
    reads; function ``None``: that file alone)."""
    files, third = closure(scanner, entry_module, entry)
    files, third = dict(files), set(third)
    for module, function in extra:
        path = scanner.module_file(module)
        if path is None:  # not project code (a test's stand-in)
            continue
        if function is not None:
            more, more_third = closure(scanner, module, function)
            files.update(more)
            third |= more_third
        files[path.relative_to(scanner.root).as_posix()] = scanner.info(path)["sha"]
    files = dict(sorted(files.items()))
    covered = {"files": files, "libraries": distribution_versions(scanner, third)}
    digest = hashlib.sha256(json.dumps(covered, sort_keys=True).encode()).hexdigest()
    return digest, covered
