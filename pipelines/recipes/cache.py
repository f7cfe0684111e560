"""The zoo loader's cache: validated recipes keyed by each file's stat signature.

A warm load (every ``doit list``, every no-op ``doit``) costs one ``scandir``, one ``stat``
per recipe and one JSON read; no YAML parsing, no schema validation. An entry is reused
only when mtime, size, inode and ctime are unchanged and the schema and loader code have
the same fingerprint. Entries written within 2 s of a file's modification are "racy" (the
file could change again inside the same timestamp tick, git's racily-clean problem): they
are re-read and compared by SHA-256 on the next load (still no parse).

Beside each recipe the cache keeps what every doit task creator derives from it (``meta``): the
sha256 of each stage's recipe sub-tree (``pipelines.recipes.stages.stage_config``) and the file
name of each fetched file, so creating the tasks of a warm zoo does no per-task JSON work.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

from pipelines.errors import ZoomakeError
from pipelines.recipes import load as recipes

_HERE = Path(__file__).resolve().parent
# Files whose content decides what a cached recipe looks like (the cache key's code part).
_FINGERPRINTED = [
    recipes.SCHEMA_PATH,
    *(
        _HERE / name
        for name in ("load.py", "cache.py", "yaml.py", "schema_errors.py", "checks.py",
                     "stages.py")
    ),
    _HERE.parent / "fetch" / "cache.py",
]  # fmt: skip
_RACY_NS = 2_000_000_000
_CACHE_VERSION = 2
# id(recipe dict) -> (that dict, its meta) for the recipes this process loaded
_META: dict[int, tuple[dict, dict]] = {}


@functools.cache
def _code_fingerprint() -> str:
    digest = hashlib.sha256(str(_CACHE_VERSION).encode())
    for path in _FINGERPRINTED:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _signature(st: os.stat_result) -> list[int]:
    # ctime changes on every write (and on utime), so restoring an old mtime still invalidates.
    return [st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns]


def _cache_path(recipes_dir: Path, cache_dir: Path) -> Path:
    tag = hashlib.sha256(str(recipes_dir.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"recipes-{tag}.json"


def _read_cache(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(cached, dict) or cached.get("code") != _code_fingerprint():
        return {}
    entries = cached.get("entries")
    return entries if isinstance(entries, dict) else {}


def _write_cache(path: Path, entries: dict) -> None:
    from converters.io import atomic_output, sweep_temporaries

    try:
        sweep_temporaries(path)  # a killed run's; a concurrent writer's loses its rename below
        with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump({"code": _code_fingerprint(), "entries": entries}, f, separators=(",", ":"))
    except FileNotFoundError:
        pass  # another process swept our temporary while writing the same cache: it wins
    except OSError as exc:
        raise ZoomakeError(f"{path}: cannot write the recipe cache ({exc.strerror})") from None


def compute_meta(recipe: dict) -> dict:
    """``{"stages": {stage or stage:target: sha256 of its stage_config}, "files": {role: name}}``."""
    from pipelines.recipes.stages import fetched_name, recipe_files, stage_config

    def digest(stage: str, target: str | None = None) -> str:
        return hashlib.sha256(stage_config(recipe, stage, target).encode()).hexdigest()

    stages = {s: digest(s) for s in ("fetch", "convert", "optimize", "reference")}
    for target in recipe.get("targets") or {}:
        stages[f"export:{target}"] = digest("export", target)
        stages[f"verify:{target}"] = digest("verify", target)
    files = {role: fetched_name(role, ref) for role, ref in recipe_files(recipe).items()}
    return {"stages": stages, "files": files}


def meta(recipe: dict) -> dict:
    """``compute_meta(recipe)``, from the cache for a recipe ``load_zoo_partial`` returned."""
    hit = _META.get(id(recipe))
    if hit is not None and hit[0] is recipe:
        return hit[1]
    found = compute_meta(recipe)
    _META[id(recipe)] = (recipe, found)
    return found


def load_zoo(recipes_dir: str | os.PathLike, cache_dir: str | os.PathLike) -> dict[str, dict]:
    """All recipes of ``recipes_dir`` as ``{model_id: recipe}`` (validated, defaults filled).

    Unchanged files are served from the cache in ``cache_dir`` without being read. Raises
    ZoomakeError listing every problem of every invalid recipe, and ``.yml`` files (which would
    otherwise be silently ignored).
    """
    zoo, invalid = load_zoo_partial(recipes_dir, cache_dir)
    if invalid:
        raise ZoomakeError("\n".join(line for lines in invalid.values() for line in lines))
    return zoo


def load_zoo_partial(
    recipes_dir: str | os.PathLike, cache_dir: str | os.PathLike
) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Like load_zoo, but an invalid recipe does not stop the others: returns
    ``(valid recipes by id, {id: its error lines} of the invalid ones)``."""
    base = Path(recipes_dir)
    cache_file = _cache_path(base, Path(cache_dir))
    old = _read_cache(cache_file)
    new: dict[str, dict] = {}
    zoo: dict[str, dict] = {}
    invalid: dict[str, list[str]] = {}
    now = time.time_ns()
    try:
        with os.scandir(base) as it:
            found = sorted(
                (e.name, e) for e in it if e.name.endswith((recipes.RECIPE_SUFFIX, ".yml"))
            )
    except OSError as exc:
        raise ZoomakeError(f"{base}: cannot list recipes ({exc.strerror})") from None
    for name, entry in found:
        path = base / name
        if name.endswith(".yml"):
            invalid[name] = [f"{path}: recipe files must end in .yaml (rename to {name[:-4]}.yaml)"]
            continue
        sig = _signature(entry.stat())
        hit = old.get(name)
        raw = None
        if hit and hit["sig"] == sig and hit["racy"]:
            raw = recipes._read(path)
            if hashlib.sha256(raw).hexdigest() != hit["digest"]:
                hit = None
        if not hit or hit["sig"] != sig:
            raw = raw if raw is not None else recipes._read(path)
            try:
                recipe = recipes._load_text(path, recipes._decode(path, raw))
                found_meta = compute_meta(recipe)
            except ZoomakeError as exc:
                invalid[recipes.recipe_id(name)] = str(exc).splitlines()
                continue
            hit = {"digest": hashlib.sha256(raw).hexdigest(), "recipe": recipe,
                   "meta": found_meta}  # fmt: skip
        new[name] = {**hit, "sig": sig, "racy": sig[0] >= now - _RACY_NS}
        zoo[recipes.recipe_id(name)] = hit["recipe"]
        _META[id(hit["recipe"])] = (hit["recipe"], hit["meta"])
    if new != old:
        _write_cache(cache_file, new)
    return zoo, invalid
