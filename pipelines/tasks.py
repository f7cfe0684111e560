"""doit task generators for the zoo (``dodo.py`` only re-exports these).

Nothing here fetches, parses a model or converts while tasks are being described: loading the
zoo costs a stat per recipe when the recipe cache is warm (see ``pipelines.recipes``), and the
code fingerprints hash a few dozen small source files. Every action is a module-level function
called with plain arguments, so ``doit -n N -P process`` can run them in worker processes.

Per model ``<id>``::

  fetch:<id>              source files -> build/<id>/source/
  convert:<id>            -> build/<id>/convert/model.onnx   (preprocessing embedded)
  optimize:<id>           -> build/<id>/optimize/model.onnx
  export:<id>:<target>    -> build/<id>/<target>/model.*
  reference:<id>          -> build/<id>/reference/reference.json + test_data_set_N/ (the source
                             model's outputs on the samples, once per model)
  measure:<id>:<target>   -> build/<id>/<target>/verify.json + golden test_data_set_N/
  verify:<id>:<target>    fails unless verify.json says passed
  recipe:<id>             fails: the recipe is invalid (the rest of the zoo still builds)

``measure`` never fails on a numerical mismatch (it records it); ``verify`` is the gate that
fails. The zoo report (build/report/{report.json,junit.xml,index.html}) is written at the end
of every run, whatever failed, by the run's reporter (``pipelines.zoo_reporter``): doit skips
every task downstream of a failed one, so no task could be trusted to do it. The reporter also
takes the build-directory lock.

Each task reruns when, and only when, what it reads changes: its ``file_dep`` (doit compares
content digests), the recipe sub-tree the stage uses and the fingerprint of the code that does
the work (both through ``config_changed``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import shutil
import sys
from pathlib import Path

from doit.tools import config_changed

from pipelines.errors import ZoomakeError
from pipelines.locations import CODE_ROOT, build_dir, is_checkout, recipes_dir
from pipelines.zoo_reporter import ZooReporter

REPO = CODE_ROOT  # zoomake's code, for the fingerprints: never where the zoo or the build is
# ./recipes and ./build of the current directory, or ZOOMAKE_RECIPES / ZOOMAKE_BUILD (tests,
# benchmarks, a CI job that builds a subset; `zoomake build --recipes/--build` set them).
RECIPES = recipes_dir()
BUILD = build_dir()
BUILD_S = str(BUILD)  # task creators join strings: 35,000 tasks of a big zoo, no Path objects


def _usable_build_dir() -> None:
    """doit opens its state database in BUILD before any task: refuse an unusable one in one
    line (this runs while dodo.py loads, so a traceback is the only other outcome)."""
    from pipelines.builddir import check_build_dir

    try:
        check_build_dir(BUILD)
    except ZoomakeError as exc:
        print(f"doit: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


_usable_build_dir()
DOIT_CONFIG = {
    "dep_file": str(BUILD / ".doit.db"),
    "backend": "sqlite3",
    "verbosity": 1,
    # Executed tasks and one closing line for the zoo (`--reporter console`: doit's own output);
    # the reporter also takes the build lock and writes the report (pipelines.zoo_reporter).
    "reporter": ZooReporter,
    "default_tasks": [
        "fetch",
        "convert",
        "optimize",
        "export",
        "reference",
        "measure",
        "verify",
        "recipe",
        "report",
    ],
}

# The action each stage runs; its code fingerprint is that function's import closure
# (pipelines.code_closure): project files it can reach and the third-party versions it imports.
STAGE_ACTIONS = {"fetch": "act_fetch", "convert": "act_convert", "optimize": "act_optimize",
                 "export": "act_export", "reference": "act_reference", "measure": "act_measure", "verify": "act_verify",
                 "report": "pipelines.report:write_report"}  # fmt: skip


@functools.cache
def _scanner():
    from pipelines.code_closure import Scanner

    return Scanner(REPO, BUILD / ".cache" / "code-closure.json")


@functools.cache
def code_fingerprint(stage: str, uses: tuple[tuple[str, str], ...] = ()) -> str:
    """sha256 over the code a stage runs and the versions of the libraries it imports.

    ``uses``: the ``(function, format)`` the task calls (``formats.fingerprint_entries``); the
    stage reaches them through the ``formats`` registry, so their closures are added here (a
    Caffe source's converter is in convert:<id>'s fingerprint, not in an ONNX-source model's)."""
    from formats import fingerprint_entries
    from pipelines.code_closure import fingerprint

    scanner = _scanner()
    module, _, function = STAGE_ACTIONS[stage].rpartition(":")
    extra = fingerprint_entries(*uses)
    digest, _ = fingerprint(scanner, module or "pipelines.tasks", function, extra)
    scanner.save()
    return digest


def _pause_gc() -> None:
    """Python's cyclic collector off while doit loads the tasks and checks which are current.

    doit makes a dozen objects per task; on a zoo of 5,000 recipes (35,000 tasks) the collector,
    running again and again over all of them, triples the time of `doit list` and of a no-op
    build (bench/bench_doit.py). Nothing made before an action runs is cyclic garbage worth
    collecting; the first action (``_sweep``, ``_guarded``) and the end of the run switch it
    back on (``resume_gc``), in the main process and in every doit worker."""
    gc.disable()


def resume_gc() -> None:
    if not gc.isenabled():
        gc.enable()


@functools.cache
def _load() -> tuple[dict[str, dict], dict[str, list[str]]]:
    from pipelines.recipes import load_zoo_partial

    _pause_gc()
    try:
        valid, invalid = load_zoo_partial(RECIPES, BUILD / ".cache")
    except ZoomakeError as exc:  # the recipe directory itself is unusable
        print(f"doit: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    for lines in invalid.values():
        for line in lines:
            print(line, file=sys.stderr)
    if invalid:
        print(
            f"doit: {len(invalid)} invalid recipe(s) not built, each fails as recipe:<id> "
            "(`zoomake validate` lists the errors)",
            file=sys.stderr,
        )
    return valid, invalid


def zoo() -> dict[str, dict]:
    """The valid recipes (an invalid one is reported and left out, see ``invalid_recipes``)."""
    return _load()[0]


def invalid_recipes() -> dict[str, list[str]]:
    """``{id: error lines}`` of the recipes that fail validation."""
    return _load()[1]


def _meta(recipe: dict) -> dict:
    from pipelines.recipe_cache import meta

    return meta(recipe)


def _uses(recipe: dict, stage: str, target: str | None) -> tuple[tuple[str, str], ...]:
    """The formats a task of ``stage`` works with (for its code fingerprint)."""
    framework = (recipe.get("source") or {}).get("framework", "")
    fmt = ((recipe.get("targets") or {}).get(target) or {}).get("format", "onnx")
    # measure runs the reference itself for a sample reference:<id> did not store.
    return {"convert": (("to_onnx", framework),), "export": (("from_onnx", fmt),),
            "reference": (("reference", framework),),
            "measure": (("reference", framework), ("runner", fmt)),
            "verify": (("files", fmt),)}.get(stage, ())  # fmt: skip


def _uptodate(
    recipe: dict, stage: str, target: str | None = None, code: str | None = None, extra: str = ""
):
    """One ``config_changed`` per task (doit keeps a single saved value for all of them): the
    sha256 of the recipe sub-tree the stage reads (``recipe_stages.stage_config``, kept in the
    recipe cache), the code fingerprint and ``extra``, as one string (saved as it is)."""
    stage_digest = _meta(recipe)["stages"][f"{stage}:{target}" if target else stage]
    code = code or stage
    value = f"recipe {stage_digest} code {code_fingerprint(code, _uses(recipe, code, target))}"
    return config_changed(f"{value} extra {extra}" if extra else value)


def source_files(model_id: str, recipe: dict) -> dict[str, Path]:
    """role -> path under build/<id>/source/ for every file the recipe fetches."""
    from pipelines.fetch import url_basename
    from pipelines.recipes import recipe_files

    src = BUILD / model_id / "source"
    return {role: src / url_basename(ref["url"]) for role, ref in recipe_files(recipe).items()}


@functools.cache
def _artifact_names(fmt: str) -> tuple[str, ...]:
    from formats import target

    return tuple(target(fmt).files)


def _artifact_files(out_dir: str, fmt: str) -> list[str]:
    return [f"{out_dir}/{n}" for n in _artifact_names(fmt)]


def _dep_sources(model_id: str, recipe: dict) -> list[str]:
    """``source_files`` as the task creators need them: strings, from the recipe cache."""
    src = f"{BUILD_S}/{model_id}/source/"
    return [src + name for name in _meta(recipe)["files"].values()]


def _rmtree(path: Path) -> None:
    """`doit clean`'s action: never under a running build's feet."""
    from pipelines import build_lock

    try:
        build_lock.hold(BUILD)
    except ZoomakeError as exc:
        print(f"doit: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    shutil.rmtree(path, ignore_errors=True)


# -- actions (run in doit workers) -------------------------------------------------------------
def act_fetch(model_id: str, recipe: dict) -> None:
    from pipelines.fetch import fetch_file, materialize
    from pipelines.recipes import recipe_files

    dests = source_files(model_id, recipe)
    for role, ref in recipe_files(recipe).items():
        cached = fetch_file(ref["url"], ref["sha256"], ref["size"])
        materialize(cached, dests[role], ref["sha256"])


def _roles(model_id: str, recipe: dict) -> dict[str, Path]:
    """The fetched files by short role: prototxt, caffemodel, onnx (the source), mean_file:<input>
    (a preprocessing mean image) and file:<N> (verify sample N), each re-hashed first: a byte
    flipped in build/<id>/source/ after the fetch fails here instead of being converted and then
    verified against itself (~1 s per GB, once per task that reads the sources)."""
    from pipelines.fetch import check_fetched
    from pipelines.recipes import recipe_files

    refs = recipe_files(recipe)
    out = {}
    for role, path in source_files(model_id, recipe).items():
        check_fetched(path, refs[role], f"fetch:{model_id}")
        parts = role.split("/")
        if parts[0] == "source":
            out[parts[1]] = path
        elif parts[-1] == "mean_file":
            out[f"mean_file:{parts[1]}"] = path
        elif parts[:2] == ["verify", "files"]:
            out[f"file:{parts[2]}"] = path
    return out


def _timed(fn, stats_path: Path, *args) -> None:
    import json
    import time

    from converters.io import atomic_output

    t0 = time.perf_counter()
    fn(*args)
    with atomic_output(stats_path) as tmp:
        tmp.write_text(json.dumps({"seconds": round(time.perf_counter() - t0, 4)}))


def recipe_path(model_id: str) -> str:
    """The recipe file as the user names it: relative to the working directory when inside."""
    path = RECIPES / f"{model_id}.yaml"
    with contextlib.suppress(ValueError):
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    return str(path)


def act_convert(model_id: str, recipe: dict, out: str) -> None:
    from converters.errors import ModelMismatch
    from converters.io import save_onnx
    from pipelines.build import convert_source

    def run():
        src = recipe["source"]
        try:
            model = convert_source(
                src["framework"],
                _roles(model_id, recipe),
                recipe.get("inputs"),
                recipe.get("outputs"),
                src.get("opset", 17),
            )
        except ModelMismatch as exc:  # the recipe asked for it: say so against the recipe
            raise ZoomakeError(f"{recipe_path(model_id)}#{exc.pointer()}: {exc.detail}") from None
        save_onnx(model, out)

    _timed(run, Path(out).with_name("stats.json"))


def act_optimize(recipe: dict, src: str, out: str) -> None:
    from converters.io import load_onnx, save_onnx
    from pipelines.build import optimize

    _timed(
        lambda: save_onnx(optimize(load_onnx(src), recipe.get("optimize")), out),
        Path(out).with_name("stats.json"),
    )


def act_export(target: dict, src: str, out_dir: str) -> None:
    from pipelines.build import export

    _timed(export, Path(out_dir) / "export-stats.json", Path(src), target, Path(out_dir))


def act_reference(model_id: str, recipe: dict, ref_dir: str) -> None:
    from pipelines.reference_outputs import run_reference

    _timed(run_reference, Path(ref_dir) / "stats.json", model_id, recipe,
           _roles(model_id, recipe), Path(ref_dir))  # fmt: skip


def act_measure(model_id: str, recipe: dict, target_name: str, out_dir: str) -> None:
    from pipelines.verify import measure

    ref_dir = Path(out_dir).parent / REFERENCE_DIR
    measure(model_id, recipe, target_name, _roles(model_id, recipe), Path(out_dir),
            reference_dir=ref_dir)  # fmt: skip


def act_verify(model_id: str, recipe: dict, target_name: str, verify_json: str):
    import io

    from doit.exceptions import TaskFailed

    from pipelines.verify import gate

    said = io.StringIO()  # the gate's lines become the task's failure (printed once, by tag)
    with contextlib.redirect_stderr(said):
        passed = gate(model_id, target_name, Path(verify_json), recipe, _roles(model_id, recipe))
    if passed:
        return True
    tag = f"verify:{model_id}:{target_name}: "
    lines = [ln.removeprefix(tag) for ln in said.getvalue().splitlines() if ln.strip()]
    return TaskFailed("\n".join(lines) or f"{verify_json} records no passing result")


def _guarded(fn):
    """Wrap an action so any failure fails the task with one line (no traceback; the reporter
    prints it as ``<task> failed: <line>``): bad input and environment errors (disk full) as
    such, bugs as ``internal error`` lines (pipelines.errors.describe)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        resume_gc()
        from doit.exceptions import TaskFailed

        from pipelines.errors import describe

        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # describe() tells bad input from bugs; see pipelines.errors
            return TaskFailed(describe(exc)[1])
        return result if isinstance(result, TaskFailed) else result is not False

    return run


# pipelines.golden.GOLDEN, the name its staging directory is a temporary of (not imported:
# golden imports numpy, ~200 ms on every `doit list`).
GOLDEN_STAGING = "golden"
# pipelines.reference_outputs.DIR / INDEX (not imported, for the same reason).
REFERENCE_DIR, REFERENCE_INDEX = "reference", "reference.json"


def _sweep(paths: list[str]) -> None:
    """First action of every task: remove what a killed earlier run left beside its outputs."""
    from converters.io import sweep_temporaries

    resume_gc()
    for path in paths:
        sweep_temporaries(path)


def finish_run(tasks: dict, events: dict, started: float | None = None) -> None:
    """End of every doit run (the reporter calls it): see ``pipelines.build_state.finish_run``."""
    from pipelines.build_state import finish_run as finish
    from pipelines.doit_loader import baseline

    resume_gc()
    finish(BUILD, zoo(), invalid_recipes(), tasks, events, DOIT_CONFIG["dep_file"],
           code_fingerprint("report"), started=started, baseline=baseline())  # fmt: skip


# -- task creators ---------------------------------------------------------------------------------
def _schema_path() -> Path:
    from pipelines.recipes import SCHEMA_PATH

    return SCHEMA_PATH


def task_validate():
    """Validate every recipe against the schema (all errors, one per line)."""

    def validate():
        from pipelines.recipes import validate_recipe_file

        errors = [e for p in sorted(RECIPES.glob("*.yaml")) for e in validate_recipe_file(p)]
        for line in errors:
            print(line, file=sys.stderr)
        return not errors

    return {
        "actions": [validate],
        "file_dep": [str(p) for p in sorted(RECIPES.glob("*.yaml"))] + [str(_schema_path())],
        "verbosity": 2,
    }


def task_fetch():
    """Download (or find in ZOOMAKE_MIRROR) and checksum each model's source files."""
    for model_id, recipe in zoo().items():
        targets = _dep_sources(model_id, recipe)
        yield {
            "name": model_id,
            "actions": [(_sweep, [targets]), (_guarded(act_fetch), [model_id, recipe])],
            "targets": targets,
            "uptodate": [_uptodate(recipe, "fetch")],
            "clean": [(_rmtree, [f"{BUILD_S}/{model_id}/source"])],
        }


def task_convert():
    """Convert each source model to ONNX with its preprocessing embedded."""
    for model_id, recipe in zoo().items():
        out_dir = f"{BUILD_S}/{model_id}/convert"
        out = f"{out_dir}/model.onnx"
        targets = [out, f"{out_dir}/stats.json"]
        yield {
            "name": model_id,
            "actions": [(_sweep, [targets]), (_guarded(act_convert), [model_id, recipe, out])],
            "file_dep": _dep_sources(model_id, recipe),
            "targets": targets,
            "uptodate": [_uptodate(recipe, "convert")],
            "clean": [(_rmtree, [out_dir])],
        }


def task_optimize():
    """Run each recipe's optimization passes."""
    for model_id, recipe in zoo().items():
        src = f"{BUILD_S}/{model_id}/convert/model.onnx"
        out_dir = f"{BUILD_S}/{model_id}/optimize"
        out = f"{out_dir}/model.onnx"
        targets = [out, f"{out_dir}/stats.json"]
        yield {
            "name": model_id,
            "actions": [(_sweep, [targets]), (_guarded(act_optimize), [recipe, src, out])],
            "file_dep": [src],
            "targets": targets,
            "uptodate": [_uptodate(recipe, "optimize")],
            "clean": [(_rmtree, [out_dir])],
        }


def task_export():
    """Write each target artifact (ONNX, FP16 ONNX, OpenVINO IR, Caffe)."""
    for model_id, recipe in zoo().items():
        src = f"{BUILD_S}/{model_id}/optimize/model.onnx"
        for name, target in recipe["targets"].items():
            out_dir = f"{BUILD_S}/{model_id}/{name}"
            targets = [*_artifact_files(out_dir, target["format"]), f"{out_dir}/export-stats.json"]
            yield {
                "name": f"{model_id}:{name}",
                "actions": [(_sweep, [targets]), (_guarded(act_export), [target, src, out_dir])],
                "file_dep": [src],
                "targets": targets,
                "uptodate": [_uptodate(recipe, "export", name)],
                "clean": [(_rmtree, [out_dir])],
            }


@functools.cache
def _reference_key(framework: str | None, choice) -> str:
    from pipelines.side_runtime import reference_config

    found = reference_config({"source": {"framework": framework}, "verify": {"reference": choice}})
    return json.dumps(found, sort_keys=True) if found else ""


def _reference_config(recipe: dict) -> str:
    """What the source's reference runtime is (``side_runtime.reference_config``, which reads
    the framework and ``verify.reference`` alone), once per distinct pair of those."""
    verify = recipe.get("verify") or {}
    return _reference_key((recipe.get("source") or {}).get("framework"), verify.get("reference"))


def task_reference():
    """Run each source model's reference once on its samples: the golden reference outputs
    every target's measure reads."""
    for model_id, recipe in zoo().items():
        ref_dir = f"{BUILD_S}/{model_id}/{REFERENCE_DIR}"
        targets = [f"{ref_dir}/{REFERENCE_INDEX}", f"{ref_dir}/stats.json"]
        yield {
            "name": model_id,
            "actions": [
                (_sweep, [[*targets, f"{ref_dir}/{GOLDEN_STAGING}"]]),
                (_guarded(act_reference), [model_id, recipe, ref_dir]),
            ],
            "file_dep": _dep_sources(model_id, recipe),
            "targets": targets,
            "uptodate": [
                _uptodate(recipe, "reference", extra=_reference_config(recipe)),
                golden_unchanged(ref_dir),
            ],
            "clean": [(_rmtree, [ref_dir])],
        }


def task_measure():
    """Run each artifact against its model's stored reference; write verify.json and golden."""
    for model_id, recipe in zoo().items():
        sources = _dep_sources(model_id, recipe)
        reference = f"{BUILD_S}/{model_id}/{REFERENCE_DIR}/{REFERENCE_INDEX}"
        extra = _reference_config(recipe)
        for name, target in recipe["targets"].items():
            out_dir = f"{BUILD_S}/{model_id}/{name}"
            yield {
                "name": f"{model_id}:{name}",
                "actions": [
                    (_sweep, [[f"{out_dir}/verify.json", f"{out_dir}/{GOLDEN_STAGING}"]]),
                    (_guarded(act_measure), [model_id, recipe, name, out_dir]),
                ],
                "file_dep": [*_artifact_files(out_dir, target["format"]), *sources, reference],
                "targets": [f"{out_dir}/verify.json"],
                "uptodate": [_uptodate(recipe, "verify", name, "measure", extra)],
            }


class golden_unchanged:
    """doit ``uptodate``: the golden files under ``out_dir`` are as the last successful run saw
    them (names, sizes, mtimes, as doit checks a ``file_dep``). Their names are only known once
    measure has written them, so they cannot be listed as ``file_dep`` when tasks are created."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = str(out_dir)

    def _state(self) -> list:
        """``[[test_data_set_N/name, size, mtime_ns], ...]`` by path (``glob`` would make a
        Path per file: a no-op build of a big zoo calls this once per verify task)."""
        found = []
        try:
            sets = [e.path for e in os.scandir(self.out_dir)
                    if e.name.startswith("test_data_set_") and e.is_dir()]  # fmt: skip
        except FileNotFoundError:
            return []
        for path in sets:
            set_name = os.path.basename(path)
            with os.scandir(path) as it:
                for f in it:
                    if not f.name.startswith("."):
                        st = f.stat()
                        found.append([f"{set_name}/{f.name}", st.st_size, st.st_mtime_ns])
        found.sort()
        return found

    def configure_task(self, task):
        # Saved after the action: a task that writes them (reference:<id>) saves what it wrote.
        task.value_savers.append(lambda: {"_golden_files": self._state()})

    def __call__(self, task, values):
        return values.get("_golden_files") == self._state()


def task_verify():
    """Fail for every artifact whose verify.json does not stand: recorded sha256 of artifact,
    sources and golden files, and the verdict derived again from the golden data."""
    for model_id, recipe in zoo().items():
        sources = _dep_sources(model_id, recipe)
        reference = f"{BUILD_S}/{model_id}/{REFERENCE_DIR}/{REFERENCE_INDEX}"
        for name, target in recipe["targets"].items():
            out_dir = f"{BUILD_S}/{model_id}/{name}"
            verify_json = f"{out_dir}/verify.json"
            artifact = _artifact_files(out_dir, target["format"])
            yield {
                "name": f"{model_id}:{name}",
                "actions": [(_guarded(act_verify), [model_id, recipe, name, verify_json])],
                "file_dep": [verify_json, *artifact, *sources, reference],
                "uptodate": [
                    _uptodate(recipe, "verify", name),
                    # The reference files measure read are reference:<id>'s to keep: its own
                    # golden_unchanged reruns it (same bytes) when one is touched.
                    golden_unchanged(out_dir),
                ],
                "verbosity": 2,
            }


def task_recipe():
    """Fail for each invalid recipe, after the rest of the zoo was built and verified."""
    gates = [f"verify:{i}:{name}" for i, recipe in zoo().items() for name in recipe["targets"]]
    for model_id, errors in invalid_recipes().items():
        yield {
            "name": model_id,
            "actions": [(_fail, ["\n".join(errors)])],
            # After every gate: in a parallel build an early failure would stop the others.
            "task_dep": gates,
            "verbosity": 2,
        }


def _fail(message: str):
    from doit.exceptions import TaskFailed

    return TaskFailed(message)


def task_report():
    """build/report/{report.json,junit.xml,index.html}: written at the end of every run."""
    # No action: the reporter writes the report when any run ends (see the module docstring);
    # this task names it for `doit report` (only the report) and `doit clean report`.
    return {"actions": [], "clean": [(_rmtree, [BUILD / "report"])]}


def task_docs():
    """Regenerate docs/supported_layers.md (from the registries) and docs/recipe-reference.md."""
    if not is_checkout():  # an installed zoomake has no docs/ of its own to regenerate
        return

    def layers():
        from converters.caffe.supported import write_support_table
        from formats import markdown

        write_support_table(REPO / "docs" / "supported_layers.md", markdown())

    def reference():
        from pipelines.schemadoc import write_reference

        write_reference(REPO / "docs" / "recipe-reference.md")

    yield {
        "name": "supported_layers",
        "actions": [layers],
        "file_dep": [
            str(p)
            for sub in ("converters/caffe", "converters/onnx2caffe", "formats")
            for p in sorted((REPO / sub).rglob("*.py"))
        ],
        "targets": [str(REPO / "docs" / "supported_layers.md")],
    }
    yield {
        "name": "recipe_reference",
        "actions": [reference],
        "file_dep": [
            str(REPO / "schemas" / "recipe.schema.json"),
            str(REPO / "pipelines" / "schemadoc.py"),
        ],
        "targets": [str(REPO / "docs" / "recipe-reference.md")],
    }
