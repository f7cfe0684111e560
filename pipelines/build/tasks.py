"""doit task generators for the zoo (``dodo.py`` only re-exports these).

Nothing here fetches, parses a model or converts while tasks are being described: loading the
zoo costs a stat per recipe when the recipe cache is warm (see ``pipelines.recipes.load``), and the
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
of every run, whatever failed, by the run's reporter (``pipelines.report.zoo_reporter``): doit skips
every task downstream of a failed one, so no task could be trusted to do it. The reporter also
takes the build-directory lock.

Each task reruns when, and only when, what it reads changes: its ``file_dep`` (doit compares
content digests), the recipe sub-tree the stage uses and the fingerprint of the code that does
the work (both through ``config_changed``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from doit.tools import config_changed

from pipelines.build.actions import (
    act_convert,
    act_export,
    act_fetch,
    act_measure,
    act_optimize,
    act_reference,
    act_setup_runtime,
    act_verify,
    runtime_ready,
    sweep,
)
from pipelines.build.actions import (
    guarded as _guarded,
)
from pipelines.build.layout import (
    BUILD,
    BUILD_S,
    DEP_FILE,
    RECIPES,
    REFERENCE_DIR,
    REFERENCE_INDEX,
    REPO,
    artifact_paths,
    dep_sources,
)
from pipelines.build.run import code_fingerprint, invalid_recipes, zoo
from pipelines.errors import ZoomakeError
from pipelines.locations import is_checkout
from pipelines.report.zoo_reporter import ZooReporter

# One wrapper per action function, not one per task (35,000 on a big zoo). Here, not on
# actions.guarded itself: actions.py is the stages' code (pipelines.build.fingerprints), and an
# edit there would rerun every stage of every zoo.
guarded = functools.cache(_guarded)


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
    "dep_file": DEP_FILE,
    "backend": "sqlite3",
    "verbosity": 1,
    # Executed tasks and one closing line for the zoo (`--reporter console`: doit's own output);
    # the reporter also takes the build lock and writes the report (pipelines.report.zoo_reporter).
    "reporter": ZooReporter,
    "default_tasks": [
        "runtime",
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
    sha256 of the recipe sub-tree the stage reads (``recipes.stages.stage_config``, kept in the
    recipe cache), the code fingerprint and ``extra``, as one string (saved as it is)."""
    from pipelines.recipes.cache import meta

    stage_digest = meta(recipe)["stages"][f"{stage}:{target}" if target else stage]
    code = code or stage
    value = f"recipe {stage_digest} code {code_fingerprint(code, _uses(recipe, code, target))}"
    return config_changed(f"{value} extra {extra}" if extra else value)


def _rmtree(path: Path) -> None:
    """`doit clean`'s action: never under a running build's feet."""
    from pipelines.build import lock as build_lock

    try:
        build_lock.hold(BUILD)
    except ZoomakeError as exc:
        print(f"doit: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    shutil.rmtree(path, ignore_errors=True)


# pipelines.verify.golden.GOLDEN, the name its staging directory is a temporary of (not imported:
# golden imports numpy, ~200 ms on every `doit list`).
GOLDEN_STAGING = "golden"


def _schema_path() -> Path:
    from pipelines.recipes.load import SCHEMA_PATH

    return SCHEMA_PATH


def task_validate():
    """Validate every recipe against the schema (all errors, one per line)."""

    def validate():
        from pipelines.recipes.load import validate_recipe_file

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
        targets = dep_sources(model_id, recipe)
        yield {
            "name": model_id,
            "actions": [(sweep, [targets]), (guarded(act_fetch), [model_id, recipe])],
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
            "actions": [(sweep, [targets]), (guarded(act_convert), [model_id, recipe, out])],
            "file_dep": dep_sources(model_id, recipe),
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
            "actions": [(sweep, [targets]), (guarded(act_optimize), [recipe, src, out])],
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
            targets = [*artifact_paths(out_dir, target["format"]), f"{out_dir}/export-stats.json"]
            yield {
                "name": f"{model_id}:{name}",
                "actions": [(sweep, [targets]), (guarded(act_export), [target, src, out_dir])],
                "file_dep": [src],
                "targets": targets,
                "uptodate": [_uptodate(recipe, "export", name), artifacts_unchanged(targets)],
                "clean": [(_rmtree, [out_dir])],
            }


@functools.cache
def _side_runtime(kind: str, name: str) -> str:
    """The side runtime a source framework's reference or a target format's runner runs in
    (``formats.base.Source.side_runtime``), '' for none or an unknown name (the recipe check
    says that one)."""
    import formats

    try:
        spec = formats.source(name) if kind == "source" else formats.target(name)
    except Exception:  # an unknown name is the recipe check's to report
        return ""
    return spec.side_runtime


def _runtime_deps(recipe: dict, target: dict | None = None) -> dict:
    """``task_dep`` on ``runtime:<name>`` for the side runtimes a task runs in, or nothing."""
    names = {_side_runtime("source", (recipe.get("source") or {}).get("framework", ""))}
    if target is not None:
        names.add(_side_runtime("target", target.get("format", "")))
    names.discard("")
    return {"task_dep": [f"runtime:{n}" for n in sorted(names)]} if names else {}


def task_runtime():
    """Set up each side runtime the zoo's references or runners need and that installs from
    the package registry alone (``zoomake setup-runtime mxnet``): once, before the first task
    that runs in it, so the README's one line builds the zoo on a fresh machine. Real Caffe
    needs its prebuilt files and Debian libraries (``zoomake setup-runtime caffe --from``);
    until then ``verify.reference: auto`` runs OpenCV. ``ZOOMAKE_AUTO_RUNTIME=0`` turns this
    off: a task needing a missing runtime then fails with the one line saying how to set it up."""
    from pipelines.runtimes.side import AUTO_SETUP

    needed = set()
    for recipe in zoo().values():
        needed.update(_runtime_deps(recipe).get("task_dep", []))
        for target in recipe["targets"].values():
            needed.update(_runtime_deps(recipe, target).get("task_dep", []))
    for dep in sorted(needed):
        name = dep.split(":", 1)[1]
        if name not in AUTO_SETUP:
            continue
        yield {
            "name": name,
            "actions": [(guarded(act_setup_runtime), [name])],
            "uptodate": [functools.partial(runtime_ready, name)],
            "verbosity": 2,
        }


@functools.cache  # per process: locate() reads the runtime record, 10,000 times on a big zoo
def _reference_key(framework: str | None, choice) -> str:
    from pipelines.runtimes.side import reference_config

    found = reference_config({"source": {"framework": framework}, "verify": {"reference": choice}})
    return json.dumps(found, sort_keys=True) if found else ""


def _reference_config(recipe: dict) -> str:
    """What the source's reference runtime is (``runtimes.side.reference_config``, which reads
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
                (sweep, [[*targets, f"{ref_dir}/{GOLDEN_STAGING}"]]),
                (guarded(act_reference), [model_id, recipe, ref_dir]),
            ],
            "file_dep": dep_sources(model_id, recipe),
            "targets": targets,
            "uptodate": [
                _uptodate(recipe, "reference", extra=_reference_config(recipe)),
                golden_unchanged(ref_dir),
            ],
            "clean": [(_rmtree, [ref_dir])],
            **_runtime_deps(recipe),
        }


def task_measure():
    """Run each artifact against its model's stored reference; write verify.json and golden."""
    for model_id, recipe in zoo().items():
        sources = dep_sources(model_id, recipe)
        reference = f"{BUILD_S}/{model_id}/{REFERENCE_DIR}/{REFERENCE_INDEX}"
        extra = _reference_config(recipe)
        for name, target in recipe["targets"].items():
            out_dir = f"{BUILD_S}/{model_id}/{name}"
            yield {
                "name": f"{model_id}:{name}",
                "actions": [
                    (sweep, [[f"{out_dir}/verify.json", f"{out_dir}/{GOLDEN_STAGING}"]]),
                    (guarded(act_measure), [model_id, recipe, name, out_dir]),
                ],
                "file_dep": [*artifact_paths(out_dir, target["format"]), *sources, reference],
                "targets": [f"{out_dir}/verify.json"],
                "uptodate": [_uptodate(recipe, "verify", name, "measure", extra)],
                **_runtime_deps(recipe, target),
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


class artifacts_unchanged:
    """doit ``uptodate``: the files export wrote still hold the bytes it wrote. doit checks a
    task's ``targets`` for existence only, so an artifact replaced after export (another
    target's model, an edited file) was measured and passed as it was, never exported again:
    an fp32 model in an ``onnx-fp16`` target went green. Size and mtime as export left them
    are trusted; a file whose either differs is hashed (a touch reruns nothing)."""

    def __init__(self, paths: list[str]):
        self.paths = list(paths)

    def _state(self, known: dict | None = None) -> dict:
        known = known or {}
        state = {}
        for path in self.paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                state[path] = None
                continue
            old = known.get(path)
            if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
                state[path] = old
                continue
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            state[path] = [st.st_size, st.st_mtime_ns, digest]
        return state

    def configure_task(self, task):
        task.value_savers.append(lambda: {"_artifacts": self._state()})

    def __call__(self, task, values):
        saved = values.get("_artifacts")
        if not isinstance(saved, dict):
            return True  # a build from before this check: doit's own checks stand
        current = self._state(saved)
        return {p: v and v[2] for p, v in current.items()} == {
            p: v and v[2] for p, v in saved.items()
        }


def task_verify():
    """Fail for every artifact whose verify.json does not stand: recorded sha256 of artifact,
    sources and golden files, and the verdict derived again from the golden data."""
    for model_id, recipe in zoo().items():
        sources = dep_sources(model_id, recipe)
        reference = f"{BUILD_S}/{model_id}/{REFERENCE_DIR}/{REFERENCE_INDEX}"
        for name, target in recipe["targets"].items():
            out_dir = f"{BUILD_S}/{model_id}/{name}"
            verify_json = f"{out_dir}/verify.json"
            artifact = artifact_paths(out_dir, target["format"])
            yield {
                "name": f"{model_id}:{name}",
                "actions": [(guarded(act_verify), [model_id, recipe, name, verify_json])],
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
        from converters.supported import write_support_table
        from formats import markdown

        write_support_table(REPO / "docs" / "supported_layers.md", markdown())

    def reference():
        from pipelines.recipes.schemadoc import write_reference

        write_reference(REPO / "docs" / "recipe-reference.md")

    yield {
        "name": "supported_layers",
        "actions": [layers],
        "file_dep": [str(REPO / "converters" / "supported.py")]
        + [
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
            str(REPO / "pipelines" / "recipes" / "schemadoc.py"),
        ],
        "targets": [str(REPO / "docs" / "recipe-reference.md")],
    }


# The shared artifact cache (ZOOMAKE_REMOTE_CACHE, pipelines.build.remote_cache): with one configured,
# each stage task looks its action key up before running and stores its outputs after.
def _cacheable():
    from pipelines.build.remote_cache import cacheable

    g = globals()
    for stage in ("fetch", "convert", "optimize", "export", "reference", "measure"):
        g[f"task_{stage}"] = cacheable(g[f"task_{stage}"])


_cacheable()
