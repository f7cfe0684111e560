"""What the builds left behind: per task, is it current, and if it failed, why.

doit skips every task downstream of a failed one and stops at the first failure without
``--continue``, so the artifacts on disk alone cannot tell a fresh pass from yesterday's. The
run's reporter (``pipelines.zoo_reporter``) therefore records, at the end of every run, the
one-line error of each task that failed (``<build>/.status.json``, kept across runs until the
task succeeds) and which tasks are not current (this run's knowledge: skipped because an
upstream task failed, or not reached and out of date in doit's own database). The report
reads the verdict of each target from here before it looks at ``verify.json``.

A target's chain is ``fetch:<id> convert:<id> optimize:<id> export:<id>:<t> reference:<id>
measure:<id>:<t>``;
the ``verify`` gate's verdict is ``verify.json`` itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from converters.io import atomic_output

STATUS_NAME = ".status.json"
MODEL_STAGES = ("fetch", "convert", "optimize")  # one task per model ...
TARGET_STAGES = ("export", "measure")  # ... then one per target


def chain(model_id: str, target: str) -> list[str]:
    """The tasks a target's artifact and verify.json come from, upstream first (``reference``:
    the source model's outputs on the samples, read by every measure of the model)."""
    return [f"{s}:{model_id}" for s in MODEL_STAGES] + [
        f"export:{model_id}:{target}",
        f"reference:{model_id}",
        f"measure:{model_id}:{target}",
    ]


def stage_of(task_name: str) -> str:
    return task_name.split(":", 1)[0]


def downstream(task_name: str, targets: list[str]) -> list[str]:
    """The chain tasks after ``task_name`` of the same model (``targets``: its target names)."""
    stage, _, rest = task_name.partition(":")
    model_id, _, target = rest.partition(":")
    if stage == "reference":  # only the measures read it
        return [f"measure:{model_id}:{t}" for t in targets]
    order = MODEL_STAGES + TARGET_STAGES
    if stage not in order:
        return []
    later = order[order.index(stage) + 1 :]
    names = [f"{s}:{model_id}" for s in later if s in MODEL_STAGES]
    if stage == "fetch":
        names.append(f"reference:{model_id}")
    for t in [target] if target else targets:
        names += [f"{s}:{model_id}:{t}" for s in later if s in TARGET_STAGES]
    return names


@dataclass
class BuildState:
    """``failed``: task -> the one-line error of its last run; ``stale``: task -> why it is not
    current; ``invalid``: recipe id -> its validation errors (the recipe was not built)."""

    failed: dict[str, str] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, list[str]] = field(default_factory=dict)

    def verdict(self, model_id: str, target: str) -> tuple[str, str, str] | None:
        """``(status, stage, message)`` when the chain says failed / not built, else None
        (the chain is current: ``verify.json`` decides)."""
        tasks = chain(model_id, target)
        for task in tasks:
            if task in self.failed:
                return "failed", stage_of(task), f"{task} failed: {self.failed[task]}"
        for task in tasks:
            if task in self.stale:
                return "not_built", stage_of(task), f"{task} {self.stale[task]}"
        return None


def _status(build_dir) -> dict:
    try:
        data = json.loads((Path(build_dir) / STATUS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_failures(build_dir: str | os.PathLike) -> dict[str, str]:
    failed = _status(build_dir).get("failed")
    if not isinstance(failed, dict):
        return {}
    return {k: v for k, v in failed.items() if isinstance(k, str) and isinstance(v, str)}


def report_key(build_dir: str | os.PathLike) -> str | None:
    """The key the last written report was made with (see pipelines.tasks.finish_run)."""
    return _status(build_dir).get("report_key")


def save_failures(build_dir: str | os.PathLike, failed: dict[str, str], key: str) -> None:
    data = {"failed": dict(sorted(failed.items())), "report_key": key}
    with atomic_output(Path(build_dir) / STATUS_NAME) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


REPORT_FILES = ("report.json", "junit.xml", "index.html")


def _report_key(names: set[str], report_code: str) -> str:
    """What a no-op run's report depends on besides the build tree: the targets and the code."""
    return hashlib.sha256(json.dumps([sorted(names), report_code]).encode()).hexdigest()


def finish_run(
    build: Path,
    zoo: dict[str, dict],
    invalid: dict[str, list[str]],
    tasks: dict,
    events: dict,
    dep_file: str,
    report_code: str,
    started: float | None = None,
    baseline: str | None = None,
) -> None:
    """End of a doit run: record failures, drop the stale outputs of models whose stage
    failed, rewrite the report. ``tasks``: doit's Task objects by name; ``events``: task ->
    None (up to date), ``"ran"`` or ``(kind, message)``, kind ``failed`` / ``blocked``;
    ``report_code``: the fingerprint of the code that writes the report; ``started``: when
    the run began; ``baseline``: a previous build or report to compare with (``pipelines.baseline``).

    A run in which every task of the zoo was up to date changed nothing the report reads, so
    the report it would write is the one on disk: it is kept unless the set of targets or the
    report code changed (a no-op build stays cheap on a big zoo).
    """
    names = {t for i, recipe in zoo.items() for name in recipe["targets"] for t in chain(i, name)}
    gates = {f"verify:{i}:{t}" for i, recipe in zoo.items() for t in recipe["targets"]}
    key = _report_key(names, report_code + (baseline or ""))
    previous = load_failures(build)
    if (
        all(name in events and events[name] is None for name in names | gates)
        and not invalid
        and not previous
        and not baseline  # a baseline (it may have changed) is compared on every run
        and report_key(build) == key
        and all((build / "report" / f).is_file() for f in REPORT_FILES)
    ):
        return
    state = BuildState(invalid=invalid)
    state.failed = {k: v for k, v in previous.items() if k in names}
    for name, event in events.items():
        if name not in names:
            continue
        state.failed.pop(name, None)
        if event is None or event == "ran":
            continue
        kind, message = event
        if kind != "failed":
            state.stale[name] = message
            continue
        state.failed[name] = message
        model_id = name.split(":")[1]
        for stale in [name, *downstream(name, list(zoo[model_id]["targets"]))]:
            _remove_outputs(tasks.get(stale))
    unreached = sorted(n for n in names - set(events) if n in tasks and n not in state.failed)
    if unreached:
        # Not reached in this run (a partial selection, or stopped at a failure): doit's own
        # database says whether each is still current.
        from doit.dependency import Dependency, MD5Checker, SqliteDB

        deps = Dependency(SqliteDB, dep_file, checker_cls=MD5Checker)
        for name in unreached:
            if deps.get_status(tasks[name], tasks).status != "up-to-date":
                state.stale[name] = "is out of date (not run since its inputs changed)"
    from pipelines.report import write_report  # after the no-op check: ~20 ms of imports

    report = write_report(zoo, build, build / "report", state, started=started, baseline=baseline)
    if (report.get("baseline") or {}).get("error"):  # the report is written; say why it lacks it
        import sys

        print(f"doit: {report['baseline']['error']} (no vs-baseline column)", file=sys.stderr)
    save_failures(build, state.failed, key)


def _remove_outputs(task) -> None:
    """A failed model's outputs from an earlier build: gone, so nothing can take them as current."""
    if task is None:
        return
    for target in task.targets:
        Path(target).unlink(missing_ok=True)
    if task.name.startswith(("measure:", "reference:")):  # golden sets as stale as the index
        import shutil

        from pipelines.golden import golden_sets

        for golden in golden_sets(Path(task.targets[0]).parent):
            shutil.rmtree(golden, ignore_errors=True)
